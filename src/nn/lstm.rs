//! The reference LSTM, in PyTorch's layout and names.
//!
//! Parameters per layer `k`: `weight_ih_l{k}` `[4H, in]`, `weight_hh_l{k}` `[4H, H]`,
//! `bias_ih_l{k}`, `bias_hh_l{k}` `[4H]`, gates in the order i, f, g, o; a bidirectional layer
//! adds the same four with the suffix `_reverse`. The input projection of all timesteps is one
//! matmul; each step adds one recurrent matmul. This op-by-op version is the oracle the fused
//! kernels are tested against.

use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor};

use crate::params::rename::PathRenamer;

/// Configuration of an [`Lstm`].
#[derive(Debug, Clone)]
pub struct LstmConfig {
    pub d_input: usize,
    pub d_hidden: usize,
    pub num_layers: usize,
    pub bias: bool,
    /// Input and output `[B, T, F]` when true, `[T, B, F]` when false (PyTorch's default).
    pub batch_first: bool,
    pub bidirectional: bool,
}

impl LstmConfig {
    pub fn new(d_input: usize, d_hidden: usize) -> Self {
        Self {
            d_input,
            d_hidden,
            num_layers: 1,
            bias: true,
            batch_first: false,
            bidirectional: false,
        }
    }
    pub fn with_num_layers(mut self, n: usize) -> Self {
        self.num_layers = n;
        self
    }
    pub fn with_batch_first(mut self, b: bool) -> Self {
        self.batch_first = b;
        self
    }
    pub fn with_bidirectional(mut self, b: bool) -> Self {
        self.bidirectional = b;
        self
    }
    pub fn with_bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }

    /// Initialized as PyTorch does: every tensor U(-k, k), k = 1/sqrt(H).
    pub fn init(&self, device: &Device) -> Lstm {
        let dirs = if self.bidirectional { 2 } else { 1 };
        let (h, g) = (self.d_hidden, 4 * self.d_hidden);
        let k = 1.0 / (h as f64).sqrt();
        let dist = Distribution::Uniform(-k, k);
        let layers = (0..self.num_layers * dirs)
            .map(|i| {
                let d_in = if i < dirs { self.d_input } else { h * dirs };
                LstmWeights {
                    weight_ih: Param::from_tensor(Tensor::random([g, d_in], dist, device)),
                    weight_hh: Param::from_tensor(Tensor::random([g, h], dist, device)),
                    bias_ih: self
                        .bias
                        .then(|| Param::from_tensor(Tensor::random([g], dist, device))),
                    bias_hh: self
                        .bias
                        .then(|| Param::from_tensor(Tensor::random([g], dist, device))),
                }
            })
            .collect();
        Lstm {
            params: LstmParams { layers },
            d_input: self.d_input,
            d_hidden: h,
            num_layers: self.num_layers,
            batch_first: self.batch_first,
            bidirectional: self.bidirectional,
        }
    }
}

/// The four tensors of one layer in one direction.
#[derive(Module, Debug)]
pub struct LstmWeights {
    /// `[4H, in]`
    pub weight_ih: Param<Tensor<2>>,
    /// `[4H, H]`
    pub weight_hh: Param<Tensor<2>>,
    /// `[4H]`
    pub bias_ih: Option<Param<Tensor<1>>>,
    /// `[4H]`
    pub bias_hh: Option<Param<Tensor<1>>>,
}

/// Storage: entry `layer * directions + direction`.
#[derive(Module, Debug)]
pub struct LstmParams {
    pub layers: Vec<LstmWeights>,
}

/// A multi-layer LSTM with PyTorch's parameter names and semantics.
#[derive(Debug, Clone)]
pub struct Lstm {
    pub params: LstmParams,
    pub d_input: usize,
    pub d_hidden: usize,
    pub num_layers: usize,
    pub batch_first: bool,
    pub bidirectional: bool,
}

/// `layers.{i}.{name}` → `{name}_l{layer}` (`_reverse` for the second direction).
pub struct LstmNames {
    directions: usize,
}

impl PathRenamer for LstmNames {
    fn rename(&self, inner: &[String]) -> Vec<String> {
        match inner {
            [layers, i, name] if layers == "layers" => {
                let i: usize = i.parse().unwrap_or(0);
                let suffix = if i % self.directions == 1 {
                    "_reverse"
                } else {
                    ""
                };
                vec![format!("{name}_l{}{suffix}", i / self.directions)]
            }
            other => other.to_vec(),
        }
    }
}

crate::renamed_module!(Lstm, params, |s: &Lstm| LstmNames {
    directions: s.directions()
});

/// Hidden and cell state, each `[num_layers * directions, B, H]`.
#[derive(Debug, Clone)]
pub struct LstmState {
    pub h: Tensor<3>,
    pub c: Tensor<3>,
}

impl LstmState {
    pub fn zeros(entries: usize, batch: usize, hidden: usize, device: &Device) -> Self {
        Self {
            h: Tensor::zeros([entries, batch, hidden], device),
            c: Tensor::zeros([entries, batch, hidden], device),
        }
    }

    /// The same values, cut from the graph (the state carried to the next batch).
    pub fn detach(self) -> Self {
        Self {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }
}

impl Lstm {
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// `input`: `[B, T, in]` (batch first) or `[T, B, in]`; `state`: zeros when `None`.
    /// Returns the last layer's outputs `[B, T, dirs*H]` (or `[T, B, dirs*H]`) and the final state.
    pub fn forward(&self, input: Tensor<3>, state: Option<LstmState>) -> (Tensor<3>, LstmState) {
        self.run(input, state, &lstm_direction)
    }

    /// [`forward`](Self::forward) for a window of a longer text (AWD-LSTM's use): the final state
    /// comes back detached and the initial state receives no gradient.
    pub fn forward_window(
        &self,
        input: Tensor<3>,
        state: Option<LstmState>,
    ) -> (Tensor<3>, LstmState) {
        self.forward_window_with(input, state, &lstm_direction)
    }

    /// [`forward_window`](Self::forward_window) with each direction of each layer computed by
    /// `direction`: [`lstm_direction`] (these reference ops) or a kernel with its contract, such
    /// as the fused [`crate::kernels::lstm_op::lstm_sequence`].
    pub fn forward_window_with(
        &self,
        input: Tensor<3>,
        state: Option<LstmState>,
        direction: Direction,
    ) -> (Tensor<3>, LstmState) {
        let (y, s) = self.run(input, state.map(LstmState::detach), direction);
        (y, s.detach())
    }

    fn run(
        &self,
        input: Tensor<3>,
        state: Option<LstmState>,
        direction: Direction,
    ) -> (Tensor<3>, LstmState) {
        let x = if self.batch_first {
            input.swap_dims(0, 1)
        } else {
            input
        };
        let [_, batch, _] = x.dims();
        let dirs = self.directions();
        let entries = self.num_layers * dirs;
        let state =
            state.unwrap_or_else(|| LstmState::zeros(entries, batch, self.d_hidden, &x.device()));
        let h0 = split_steps(state.h);
        let c0 = split_steps(state.c);

        let mut layer_input = x;
        let (mut hn, mut cn) = (Vec::with_capacity(entries), Vec::with_capacity(entries));
        for layer in 0..self.num_layers {
            let mut outputs = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let i = layer * dirs + dir;
                let w = &self.params.layers[i];
                let (out, h, c) = direction(
                    layer_input.clone(),
                    w.weight_ih.val(),
                    w.weight_hh.val(),
                    bias_sum(w),
                    (h0[i].clone(), c0[i].clone()),
                    dir == 1,
                );
                outputs.push(out);
                hn.push(h);
                cn.push(c);
            }
            // One direction: its output as it is (a concatenation would copy it).
            layer_input = match outputs.len() {
                1 => outputs.remove(0),
                _ => Tensor::cat(outputs, 2),
            };
        }
        let output = if self.batch_first {
            layer_input.swap_dims(0, 1)
        } else {
            layer_input
        };
        let state = LstmState {
            h: Tensor::stack(hn, 0),
            c: Tensor::stack(cn, 0),
        };
        (output, state)
    }
}

/// One direction of one layer over a window: `(x [T, B, in], w_ih [4H, in], w_hh [4H, H],
/// bias [4H], (h0, c0) [B, H], reverse)` → `(outputs [T, B, H] in input order, h, c)`.
pub type Direction<'a> = &'a dyn Fn(
    Tensor<3>,
    Tensor<2>,
    Tensor<2>,
    Option<Tensor<1>>,
    (Tensor<2>, Tensor<2>),
    bool,
) -> (Tensor<3>, Tensor<2>, Tensor<2>);

fn bias_sum(w: &LstmWeights) -> Option<Tensor<1>> {
    match (&w.bias_ih, &w.bias_hh) {
        (Some(a), Some(b)) => Some(a.val() + b.val()),
        (Some(a), None) | (None, Some(a)) => Some(a.val()),
        (None, None) => None,
    }
}

/// One direction of one layer over the whole sequence.
///
/// `x` `[T, B, in]`, `w_ih` `[4H, in]`, `w_hh` `[4H, H]`, `bias` `[4H]`, state `[B, H]` each.
/// Returns the outputs `[T, B, H]` (in input order) and the final `(h, c)`.
pub fn lstm_direction(
    x: Tensor<3>,
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Option<Tensor<1>>,
    (mut h, mut c): (Tensor<2>, Tensor<2>),
    reverse: bool,
) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
    let [t, b, d_in] = x.dims();
    let gates_n = w_ih.dims()[0];
    let mut proj = x.reshape([t * b, d_in]).matmul(w_ih.transpose());
    if let Some(bias) = bias {
        proj = proj + bias.unsqueeze_dim(0);
    }
    let steps = split_steps(proj.reshape([t, b, gates_n]));
    let w_hh_t = w_hh.transpose();

    let order: Vec<usize> = if reverse {
        (0..t).rev().collect()
    } else {
        (0..t).collect()
    };
    let mut outputs = Vec::with_capacity(t);
    for s in order {
        let gates = steps[s].clone() + h.matmul(w_hh_t.clone());
        let mut g = gates.chunk(4, 1).into_iter();
        let (i, f, gg, o) = (
            sigmoid(g.next().unwrap()),
            sigmoid(g.next().unwrap()),
            g.next().unwrap().tanh(),
            sigmoid(g.next().unwrap()),
        );
        c = f * c + i * gg;
        h = o * c.clone().tanh();
        outputs.push(h.clone());
    }
    if reverse {
        outputs.reverse();
    }
    (Tensor::stack(outputs, 0), h, c)
}

/// `[T, B, F]` → T tensors `[B, F]`.
///
/// The backward of a narrow pads its gradient with zeros to the full input size, so narrowing T
/// steps straight out of the sequence costs T full-size tensors in backward. Cutting blocks of
/// about sqrt(T) steps first, then steps out of the blocks, costs about 2*sqrt(T).
pub fn split_steps(x: Tensor<3>) -> Vec<Tensor<2>> {
    let [t, b, f] = x.dims();
    let block = ((t as f64).sqrt().ceil() as usize).max(1);
    let mut out = Vec::with_capacity(t);
    for start in (0..t).step_by(block) {
        let len = block.min(t - start);
        let chunk = if len == t {
            x.clone()
        } else {
            x.clone().narrow(0, start, len)
        };
        for s in 0..len {
            out.push(chunk.clone().narrow(0, s, 1).reshape([b, f]));
        }
    }
    out
}
