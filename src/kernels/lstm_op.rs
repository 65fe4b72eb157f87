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
//! It runs on Burn's `flex` backend (plain or `Autodiff<Flex>` without gradient checkpointing),
//! where [`Compute::fused_for`](super::op::Compute::fused_for) says so; the caller decides.

use std::sync::Arc;

use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_flex::Flex;

use super::bf16::Precision;
use super::lstm::{LstmSaved, Wanted, backward, forward};
#[cfg(any(feature = "wgpu", feature = "cuda"))]
use super::op::Kernels;
use super::op::{Buf, KernelBackend, Lowered, flex, fused_op, host};

#[derive(Debug)]
struct LstmBackward;

impl Backward<Flex, 4> for LstmBackward {
    type State = Arc<LstmSaved>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = &ops.state;
        // Borrowed without a copy when the incoming gradient is contiguous.
        let dy = Buf::from_flex(&grads.consume::<Flex>(&ops.node));
        let [px, pwih, pwhh, pb] = ops.parents;
        // Only the gradients of tracked parents are formed (a frozen weight has none).
        let wanted = Wanted {
            x: px.is_some(),
            w_ih: pwih.is_some(),
            w_hh: pwhh.is_some(),
            bias: pb.is_some(),
        };
        let g = backward(s, &dy, wanted);
        let g4 = 4 * s.h;
        for (parent, value, shape) in [
            (px, g.dx, vec![s.t, s.b, s.i]),
            (pwih, g.dw_ih, vec![g4, s.i]),
            (pwhh, g.dw_hh, vec![g4, s.h]),
            (pb, g.dbias, vec![g4]),
        ] {
            if let (Some(node), Some(value)) = (parent, value) {
                grads.register::<Flex>(node.id, flex(value, shape));
            }
        }
    }
}

/// An LSTM op's `(h0, c0)`.
pub(crate) type InitialState<B> = (Lowered<B>, Lowered<B>);

/// An LSTM op's graph inputs `[x, w_ih, w_hh, bias]` lowered to `B` (a zero bias where there is
/// none), and its initial state, detached: the op neither tracks nor differentiates it.
pub(crate) fn lowered_inputs<B: KernelBackend>(
    x: Tensor<3>,
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Option<Tensor<1>>,
    (h0, c0): (Tensor<2>, Tensor<2>),
) -> ([Lowered<B>; 4], InitialState<B>) {
    let h = w_hh.dims()[1];
    let bias = bias.unwrap_or_else(|| Tensor::zeros([4 * h], &x.device()));
    let state = (Lowered::of(h0.detach()), Lowered::of(c0.detach()));
    let inputs = [
        Lowered::of(x),
        Lowered::of(w_ih),
        Lowered::of(w_hh),
        Lowered::of(bias),
    ];
    (inputs, state)
}

/// One direction of one LSTM layer over the window, fused: `x` `[T, B, I]`, `w_ih` `[4H, I]`,
/// `w_hh` `[4H, H]`, `bias` `[4H]`, state `[B, H]` each, all on the flex backend (or all on the
/// GPU, where `kernels::gpu::lstm` runs it, in f32, with the `wgpu` feature). Returns the
/// outputs `[T, B, H]` (in input order, differentiable with respect to `x` and the weights) and
/// the final `(h, c)`, which carry no gradient, nor does the initial state receive one: the
/// caller detaches them, as AWD-LSTM does between windows.
pub fn lstm_sequence(
    x: Tensor<3>,
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Option<Tensor<1>>,
    (h0, c0): (Tensor<2>, Tensor<2>),
    reverse: bool,
    precision: Precision,
) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if Kernels::of(&x) == Some(Kernels::Gpu) {
        return super::gpu::lstm::lstm_sequence(x, w_ih, w_hh, bias, (h0, c0), reverse);
    }
    let [t, b, i] = x.dims();
    let h = w_hh.dims()[1];
    let (inputs, (h0, c0)) = lowered_inputs::<Flex>(x, w_ih, w_hh, bias, (h0, c0));
    let mut finals = None;
    let y = fused_op(LstmBackward, inputs, |[x, w_ih, w_hh, bias], _| {
        let mut saved = forward(
            Buf::from_flex(x),
            Buf::from_flex(w_ih),
            Buf::from_flex(w_hh),
            Some(&host(bias)),
            host(h0.value()),
            host(c0.value()),
            (t, b, i, h),
            reverse,
            precision,
        );
        let (hn, cn) = saved.final_state();
        finals = Some((flex(hn, vec![b, h]), flex(cn, vec![b, h])));
        // The outputs are kept in the saved state without a copy.
        let y = std::mem::replace(&mut saved.y, Buf::Owned(Vec::new())).into_flex(vec![t, b, h]);
        saved.y = Buf::Flex(y.clone());
        (Some(Arc::new(saved)), y)
    });
    let (hn, cn) = finals.expect("the forward ran");
    (y.tensor(), h0.like(hn).tensor(), c0.like(cn).tensor())
}
