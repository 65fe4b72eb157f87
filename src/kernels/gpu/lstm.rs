//! The fused weight-dropped LSTM direction on the GPU: the counterpart of
//! [`crate::kernels::lstm_op`], one autodiff node per window.
//!
//! Forward: `proj = x W_ihᵀ + b` for the whole window in one matmul; per timestep
//! `rec = h W_hhᵀ` (one matmul) and [`cell_forward`] (gates, cell, output in one kernel).
//! Backward, from the last step processed to the first: [`cell_backward`] turns the output's
//! gradient into the gates' pre-activation gradient and the previous cell's, and one matmul
//! carries it to the previous output (`dG W_hh`); then `dX = dG W_ih`, `dW_ih = dGᵀ X`,
//! `dW_hh = dGᵀ H_prev` and `db = Σ dG` over the whole window. PyTorch's gate order (i, f, g, o).

use std::sync::Arc;

use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_cubecl::tensor::CubeTensor;

use super::{Cube, elem, elementwise, empty, tensor, value};
use crate::kernels::lstm_op::lowered_inputs;
use crate::kernels::op::fused_op;

/// The CubeCL kernels (CubeCL's own `Tensor` type, apart from Burn's).
mod kernel {
    use burn_cubecl::cubecl;
    use burn_cubecl::cubecl::prelude::*;

    /// `1 / (1 + e^-x)`.
    #[cube]
    fn sigmoid<F: Float>(x: F) -> F {
        F::new(1.0) / (F::new(1.0) + (-x).exp())
    }

    /// `tanh`, its argument clamped where the f32 result is ±1 anyway (some drivers compute tanh as
    /// a ratio of exponentials that overflows to NaN for large arguments).
    #[cube]
    fn tanh_clamped<F: Float>(x: F) -> F {
        x.clamp(F::new(-15.0), F::new(15.0)).tanh()
    }

    /// One timestep, one unit per `(b, j)`: `pre = proj[row0 + b] + rec[b]` `[4H]`,
    /// `i, f, o = σ(pre_i, pre_f, pre_o)`, `g = tanh(pre_g)`, `c = f c_prev + i g`, `h = o tanh(c)`.
    /// `gates` `[B, 4H]` keeps the activated gates for the backward.
    #[cube(launch)]
    pub(super) fn cell_forward<F: Float>(
        proj: &Tensor<F>,
        rec: &Tensor<F>,
        c_prev: &Tensor<F>,
        gates: &mut Tensor<F>,
        c: &mut Tensor<F>,
        h: &mut Tensor<F>,
        row0: u32,
        hidden: u32,
        #[define(F)] _dtype: ElemType,
    ) {
        let unit = ABSOLUTE_POS;
        if unit >= c.len() {
            terminate!();
        }
        let hd = hidden as usize;
        let b = unit / hd;
        let j = unit % hd;
        let p = (row0 as usize + b) * 4 * hd + j;
        let r = b * 4 * hd + j;
        let gi = sigmoid::<F>(proj[p] + rec[r]);
        let gf = sigmoid::<F>(proj[p + hd] + rec[r + hd]);
        let gg = tanh_clamped::<F>(proj[p + 2 * hd] + rec[r + 2 * hd]);
        let go = sigmoid::<F>(proj[p + 3 * hd] + rec[r + 3 * hd]);
        let cell = gf * c_prev[unit] + gi * gg;
        c[unit] = cell;
        h[unit] = go * tanh_clamped::<F>(cell);
        gates[r] = gi;
        gates[r + hd] = gf;
        gates[r + 2 * hd] = gg;
        gates[r + 3 * hd] = go;
    }

    /// The backward of [`cell_forward`] for one timestep: `dh = dy[row0 + b] + dh_rec[b]`,
    /// `dc = dc_next + dh o (1 - tanh²c)`; writes the pre-activation gradients `dgates` `[B, 4H]`
    /// and `dc_prev = dc f`.
    #[cube(launch)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cell_backward<F: Float>(
        gates: &Tensor<F>,
        c_prev: &Tensor<F>,
        c: &Tensor<F>,
        dy: &Tensor<F>,
        dh_rec: &Tensor<F>,
        dc_next: &Tensor<F>,
        dgates: &mut Tensor<F>,
        dc_prev: &mut Tensor<F>,
        row0: u32,
        hidden: u32,
        #[define(F)] _dtype: ElemType,
    ) {
        let unit = ABSOLUTE_POS;
        if unit >= c.len() {
            terminate!();
        }
        let hd = hidden as usize;
        let b = unit / hd;
        let j = unit % hd;
        let r = b * 4 * hd + j;
        let one = F::new(1.0);
        let (gi, gf, gg, go) = (
            gates[r],
            gates[r + hd],
            gates[r + 2 * hd],
            gates[r + 3 * hd],
        );
        let tc = tanh_clamped::<F>(c[unit]);
        let dh = dy[(row0 as usize + b) * hd + j] + dh_rec[unit];
        let dc = dc_next[unit] + dh * go * (one - tc * tc);
        dgates[r] = dc * gg * gi * (one - gi);
        dgates[r + hd] = dc * c_prev[unit] * gf * (one - gf);
        dgates[r + 2 * hd] = dc * gi * (one - gg * gg);
        dgates[r + 3 * hd] = dh * tc * go * (one - go);
        dc_prev[unit] = dc * gf;
    }
}

/// What the backward needs, each per-step list in time order.
#[derive(Debug, Clone)]
struct Saved {
    /// `(T, B, I, H)`.
    dims: (usize, usize, usize, usize),
    reverse: bool,
    /// `[T·B, I]`.
    x: CubeTensor,
    w_ih: CubeTensor,
    w_hh: CubeTensor,
    /// Per step: activated gates `[B, 4H]`, the cell before and after, the output before `[B, H]`.
    gates: Vec<CubeTensor>,
    c_prev: Vec<CubeTensor>,
    c: Vec<CubeTensor>,
    h_prev: Vec<CubeTensor>,
}

#[derive(Debug)]
struct LstmBackward;

impl Backward<Cube, 4> for LstmBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = &ops.state;
        let (t, b, i, h) = s.dims;
        let dy = value(tensor::<3>(grads.consume::<Cube>(&ops.node)).reshape([t * b, h]));
        let w_hh = tensor::<2>(s.w_hh.clone());
        let zeros = || value(Tensor::<2>::zeros([b, h], &w_hh.device()));
        let (mut dh_rec, mut dc) = (zeros(), zeros());
        let mut dgates: Vec<Option<CubeTensor>> = vec![None; t];
        for (k, step) in order(t, !s.reverse).enumerate() {
            let dg = empty(&dy, &[b, 4 * h]);
            let dc_prev = empty(&dy, &[b, h]);
            let (count, dim) = elementwise(&dy, b * h);
            kernel::cell_backward::launch(
                &dy.client,
                count,
                dim,
                s.gates[step].clone().into_tensor_arg(),
                s.c_prev[step].clone().into_tensor_arg(),
                s.c[step].clone().into_tensor_arg(),
                dy.clone().into_tensor_arg(),
                dh_rec.clone().into_tensor_arg(),
                dc.into_tensor_arg(),
                dg.clone().into_tensor_arg(),
                dc_prev.clone().into_tensor_arg(),
                (step * b) as u32,
                h as u32,
                elem(&dy),
            );
            // The initial state takes no gradient: the first step's needs no product.
            if k + 1 < t {
                dh_rec = value(tensor::<2>(dg.clone()).matmul(w_hh.clone()));
            }
            dc = dc_prev;
            dgates[step] = Some(dg);
        }
        let all =
            |list: Vec<CubeTensor>| Tensor::cat(list.into_iter().map(tensor::<2>).collect(), 0);
        let dg = all(dgates.into_iter().map(|d| d.expect("every step")).collect());
        let dg_t = dg.clone().transpose();
        let [px, pwih, pwhh, pb] = ops.parents;
        if let Some(node) = px {
            let dx = dg.clone().matmul(tensor(s.w_ih.clone())).reshape([t, b, i]);
            grads.register::<Cube>(node.id, value(dx));
        }
        if let Some(node) = pwih {
            grads.register::<Cube>(node.id, value(dg_t.clone().matmul(tensor(s.x.clone()))));
        }
        if let Some(node) = pwhh {
            let h_prev = all(s.h_prev.clone());
            grads.register::<Cube>(node.id, value(dg_t.matmul(h_prev)));
        }
        if let Some(node) = pb {
            grads.register::<Cube>(node.id, value(dg.sum_dim(0).reshape([4 * h])));
        }
    }
}

/// The time indices in the order a direction processes them.
fn order(t: usize, reverse: bool) -> Box<dyn Iterator<Item = usize>> {
    if reverse {
        Box::new((0..t).rev())
    } else {
        Box::new(0..t)
    }
}

/// [`crate::kernels::lstm_op::lstm_sequence`] on the GPU, in f32: `x` `[T, B, I]`, `w_ih`
/// `[4H, I]`, `w_hh` `[4H, H]`, `bias` `[4H]`, state `[B, H]` each. Returns the outputs
/// `[T, B, H]` (differentiable with respect to `x` and the weights) and the final `(h, c)`,
/// which carry no gradient.
pub fn lstm_sequence(
    x: Tensor<3>,
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Option<Tensor<1>>,
    (h0, c0): (Tensor<2>, Tensor<2>),
    reverse: bool,
) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
    let [t, b, i] = x.dims();
    let h = w_hh.dims()[1];
    let (inputs, (h0, c0)) = lowered_inputs::<Cube>(x, w_ih, w_hh, bias, (h0, c0));
    let mut finals = None;
    let y = fused_op(LstmBackward, inputs, |[x, w_ih, w_hh, bias], tracked| {
        let x2 = value(tensor::<3>(x.clone()).reshape([t * b, i]));
        let proj = tensor::<2>(x2.clone()).matmul(tensor::<2>(w_ih.clone()).transpose())
            + tensor::<1>(bias.clone()).unsqueeze_dim(0);
        let proj = value(proj);
        let w_hh_t = tensor::<2>(w_hh.clone()).transpose();
        let (mut hc, mut cc) = (
            value(tensor::<2>(h0.value().clone())),
            value(tensor::<2>(c0.value().clone())),
        );
        let mut saved = Saved {
            dims: (t, b, i, h),
            reverse,
            x: x2,
            w_ih: w_ih.clone(),
            w_hh: w_hh.clone(),
            gates: Vec::new(),
            c_prev: Vec::new(),
            c: Vec::new(),
            h_prev: Vec::new(),
        };
        // Per time index: (gates, c_prev, c, h_prev).
        let mut steps: Vec<Option<[CubeTensor; 4]>> = vec![None; t];
        let mut outputs: Vec<Option<CubeTensor>> = vec![None; t];
        for step in order(t, reverse) {
            let rec = value(tensor::<2>(hc.clone()).matmul(w_hh_t.clone()));
            let gates = empty(&proj, &[b, 4 * h]);
            let (c_new, h_new) = (empty(&proj, &[b, h]), empty(&proj, &[b, h]));
            let (count, dim) = elementwise(&proj, b * h);
            kernel::cell_forward::launch(
                &proj.client,
                count,
                dim,
                proj.clone().into_tensor_arg(),
                rec.into_tensor_arg(),
                cc.clone().into_tensor_arg(),
                gates.clone().into_tensor_arg(),
                c_new.clone().into_tensor_arg(),
                h_new.clone().into_tensor_arg(),
                (step * b) as u32,
                h as u32,
                elem(&proj),
            );
            if tracked {
                steps[step] = Some([gates, cc, c_new.clone(), hc]);
            }
            outputs[step] = Some(h_new.clone());
            (hc, cc) = (h_new, c_new);
        }
        for [gates, c_prev, c, h_prev] in steps.into_iter().flatten() {
            saved.gates.push(gates);
            saved.c_prev.push(c_prev);
            saved.c.push(c);
            saved.h_prev.push(h_prev);
        }
        finals = Some((hc, cc));
        let y = Tensor::<2>::stack::<3>(
            outputs
                .into_iter()
                .map(|o| tensor::<2>(o.expect("every step")))
                .collect(),
            0,
        );
        (tracked.then(|| Arc::new(saved)), value(y))
    });
    let (hn, cn) = finals.expect("the forward ran");
    (y.tensor(), h0.like(hn).tensor(), c0.like(cn).tensor())
}
