//! The fused weight-dropped LSTM sequence as one Burn autodiff operation (CPU backend).
//!
//! Burn records one graph node per tensor op; the reference [`crate::nn::lstm`] makes ~15 nodes
//! per timestep, and the backward of each per-step recurrent matmul forms a `[4H, H]` gradient
//! and adds it in, step by step. Here the whole window is one node: its forward runs
//! [`super::lstm::forward`] on the tensors' host data, its backward (a handwritten
//! [`Backward`]) runs BPTT and forms the weight gradients in three large products. The
//! recurrent weight it receives is the dropped copy `raw * mask`, an ordinary graph tensor, so the
//! gradient still reaches the raw weight through the mask.
//!
//! It applies on Burn's `flex` backend (plain or `Autodiff<Flex>` without gradient
//! checkpointing); on any other backend [`lstm_sequence`] returns `None` and the caller runs the
//! reference implementation.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::BackendTypes;
use burn_flex::{Flex, FlexTensor};

use super::lstm::{Buf, LstmSaved, backward, forward};

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

/// The host copy of a flex tensor's values (row-major).
pub(crate) fn host(t: &FlexTensor) -> Vec<f32> {
    let t = t.to_contiguous();
    t.as_slice::<f32>()
        .expect("a contiguous f32 tensor")
        .to_vec()
}

pub(crate) fn flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

#[derive(Debug)]
struct LstmBackward;

impl Backward<Flex, 4> for LstmBackward {
    type State = Arc<LstmSaved>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = &ops.state;
        // Borrowed without a copy when the incoming gradient is contiguous.
        let dy = Buf::from_flex(&grads.consume::<Flex>(&ops.node));
        let (dx, dw_ih, dw_hh, db) = backward(s, &dy);
        let [px, pwih, pwhh, pb] = ops.parents;
        let g4 = 4 * s.h;
        for (parent, value, shape) in [
            (px, dx, vec![s.t, s.b, s.i]),
            (pwih, dw_ih, vec![g4, s.i]),
            (pwhh, dw_hh, vec![g4, s.h]),
            (pb, db, vec![g4]),
        ] {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex(value, shape));
            }
        }
    }
}

/// Runs the forward on the flex tensors; the outputs `y` `[T, B, H]`, kept in the saved state
/// without a copy, and the final `(h, c)` `[B, H]`.
fn run(
    [x, w_ih, w_hh, bias, h0, c0]: [&FlexTensor; 6],
    (t, b, i, h): (usize, usize, usize, usize),
    reverse: bool,
) -> (LstmSaved, FlexTensor, FlexTensor, FlexTensor) {
    let bias = host(bias);
    let mut saved = forward(
        Buf::from_flex(x),
        Buf::from_flex(w_ih),
        Buf::from_flex(w_hh),
        Some(&bias),
        host(h0),
        host(c0),
        (t, b, i, h),
        reverse,
    );
    let (hn, cn) = saved.final_state();
    let y = match std::mem::replace(&mut saved.y, Buf::Owned(Vec::new())) {
        Buf::Owned(v) => flex(v, vec![t, b, h]),
        Buf::Flex(f) => f,
    };
    saved.y = Buf::Flex(y.clone());
    (saved, y, flex(hn, vec![b, h]), flex(cn, vec![b, h]))
}

/// One direction of one LSTM layer over the window, fused: `x` `[T, B, I]`, `w_ih` `[4H, I]`,
/// `w_hh` `[4H, H]`, `bias` `[4H]`, state `[B, H]` each. Returns the outputs `[T, B, H]` (in
/// input order, differentiable with respect to `x` and the weights) and the final `(h, c)`,
/// which carry no gradient, nor does the initial state receive one: the caller detaches them, as
/// AWD-LSTM does between windows. `None` when the tensors are not on the flex backend.
pub fn lstm_sequence(
    x: Tensor<3>,
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Option<Tensor<1>>,
    (h0, c0): (Tensor<2>, Tensor<2>),
    reverse: bool,
) -> Option<(Tensor<3>, Tensor<2>, Tensor<2>)> {
    let [t, b, i] = x.dims();
    let h = w_hh.dims()[1];
    let dims = (t, b, i, h);
    let bias = bias.unwrap_or_else(|| Tensor::zeros([4 * h], &x.device()));
    if x.is_autodiff() {
        let ad = |t: Tensor<2>| t.try_into_primitive::<Ad>().ok();
        let xa: AdTensor = x.try_into_primitive::<Ad>().ok()?;
        let (wih, whh) = (ad(w_ih)?, ad(w_hh)?);
        let ba: AdTensor = bias.try_into_primitive::<Ad>().ok()?;
        let (h0, c0) = (ad(h0.detach())?, ad(c0.detach())?);
        let inputs = [&xa, &wih, &whh, &ba, &h0, &c0].map(|t| t.primitive());
        let (saved, y, hn, cn) = run(inputs, dims, reverse);
        let out = match LstmBackward
            .prepare::<NoCheckpointing>([xa.node(), wih.node(), whh.node(), ba.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(Arc::new(saved), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        let constant = |v: FlexTensor| Tensor::<2>::from_primitive::<Ad>(AdTensor::new(v));
        Some((
            Tensor::from_primitive::<Ad>(out),
            constant(hn),
            constant(cn),
        ))
    } else {
        let plain = |t: Tensor<2>| t.try_into_primitive::<Flex>().ok();
        let xf: FlexTensor = x.try_into_primitive::<Flex>().ok()?;
        let bf: FlexTensor = bias.try_into_primitive::<Flex>().ok()?;
        let (wih, whh, h0, c0) = (plain(w_ih)?, plain(w_hh)?, plain(h0)?, plain(c0)?);
        let (_, y, hn, cn) = run([&xf, &wih, &whh, &bf, &h0, &c0], dims, reverse);
        Some((
            Tensor::from_primitive::<Flex>(y),
            Tensor::from_primitive::<Flex>(hn),
            Tensor::from_primitive::<Flex>(cn),
        ))
    }
}
