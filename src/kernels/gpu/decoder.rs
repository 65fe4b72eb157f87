//! The tied decoder with its loss on the GPU: the counterpart of
//! [`crate::kernels::decoder_ce`], one autodiff node.
//!
//! Forward: `logits = x Wᵀ + b` in one matmul, then [`softmax_cross_entropy`]: one cube per
//! row computes the row's maximum and `Σ exp` by shared-memory reductions, its loss, and (when a
//! backward follows) the logits' gradient `softmax - onehot` in the same pass. Backward:
//! `dx = dL W`, `dW = dLᵀ x`, `db = Σ dL`, scaled by the incoming gradient over `N`, without a
//! trip to the host.

use std::sync::Arc;

use burn::tensor::{Int, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;

use super::{Cube, elem, empty, tensor, value};
use crate::kernels::op::{Lowered, fused_op};

/// Units per cube (a power of two: the reductions halve it).
const BLOCK: usize = 256;
/// Cubes launched at most; each strides over the rows.
const MAX_CUBES: usize = 65_535;

/// The CubeCL kernels (CubeCL's own `Tensor` type, apart from Burn's).
mod kernel {
    use burn_cubecl::cubecl;
    use burn_cubecl::cubecl::prelude::*;

    /// The cube's reduction of `red[..CUBE_DIM_X]` (its maximum, or its sum), read by every
    /// unit.
    #[cube]
    fn reduce<F: Float>(red: &mut Shared<[F]>, #[comptime] max: bool) -> F {
        let unit = UNIT_POS_X as usize;
        let mut stride = CUBE_DIM_X as usize / 2;
        while stride > 0 {
            if unit < stride {
                if max {
                    red[unit] = red[unit].max(red[unit + stride]);
                } else {
                    red[unit] = red[unit] + red[unit + stride];
                }
            }
            sync_cube();
            stride /= 2;
        }
        let out = red[0];
        // Everyone has read the result before the memory is reused.
        sync_cube();
        out
    }

    /// Per row of `logits` `[N, V]`: `nll[row] = log Σ exp(logits) - logits[target]`, and with
    /// `with_grad` `dlogits[row] = softmax(logits[row]) - onehot(target)`. Targets are clamped into
    /// the vocabulary, as on the CPU.
    #[cube(launch)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn softmax_cross_entropy<F: Float, I: Numeric>(
        logits: &Tensor<F>,
        targets: &Tensor<I>,
        nll: &mut Tensor<F>,
        dlogits: &mut Tensor<F>,
        rows: u32,
        vocab: u32,
        #[comptime] block: usize,
        #[comptime] with_grad: bool,
        #[define(F, I)] _dtypes: [ElemType; 2],
    ) {
        let unit = UNIT_POS_X as usize;
        let v = vocab as usize;
        let mut red = Shared::new_slice(block);
        let mut row = CUBE_POS_X as usize;
        while row < rows as usize {
            let base = row * v;
            let mut local = F::new(-3.0e38);
            let mut k = unit;
            while k < v {
                local = local.max(logits[base + k]);
                k += block;
            }
            red[unit] = local;
            sync_cube();
            let m = reduce::<F>(&mut red, true);
            let mut sum = F::new(0.0);
            k = unit;
            while k < v {
                sum += (logits[base + k] - m).exp();
                k += block;
            }
            red[unit] = sum;
            sync_cube();
            let total = reduce::<F>(&mut red, false);
            // Clamped into [0, V) as the CPU does (a negative id to 0, not wrapped to V - 1).
            let mut id = i32::cast_from(targets[row]);
            if id < 0 {
                id = 0;
            }
            let target = u32::cast_from(id).min(vocab - 1) as usize;
            if unit == 0 {
                nll[row] = total.ln() + m - logits[base + target];
            }
            if with_grad {
                let inv = F::new(1.0) / total;
                k = unit;
                while k < v {
                    let mut p = (logits[base + k] - m).exp() * inv;
                    if k == target {
                        p -= F::new(1.0);
                    }
                    dlogits[base + k] = p;
                    k += block;
                }
            }
            row += CUBE_COUNT_X as usize;
        }
    }
}

#[derive(Debug, Clone)]
struct Saved {
    /// `[N, E]`, `[V, E]`, and the summed loss's gradient wrt the logits `[N, V]`.
    x: CubeTensor,
    w: CubeTensor,
    dlogits: CubeTensor,
}

#[derive(Debug)]
struct DecoderCeBackward;

impl Backward<Cube, 3> for DecoderCeBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = &ops.state;
        let n = s.x.meta.shape()[0];
        // The kernel's gradient is of the summed loss; the op's output is the mean.
        let scale = tensor::<1>(grads.consume::<Cube>(&ops.node)) / n as f32;
        let d = tensor::<2>(s.dlogits.clone()) * scale.unsqueeze_dim::<2>(0);
        let [px, pw, pb] = ops.parents;
        if let Some(node) = px {
            grads.register::<Cube>(node.id, value(d.clone().matmul(tensor(s.w.clone()))));
        }
        if let Some(node) = pw {
            let dw = d.clone().transpose().matmul(tensor(s.x.clone()));
            grads.register::<Cube>(node.id, value(dw));
        }
        if let Some(node) = pb {
            let v = s.w.meta.shape()[0];
            grads.register::<Cube>(node.id, value(d.sum_dim(0).reshape([v])));
        }
    }
}

/// The GPU value of integer targets (tracked devices hold them as the inner backend's).
fn targets_value(t: Tensor<1, Int>) -> CubeTensor {
    let p = match t.clone().try_into_primitive::<Cube>() {
        Ok(p) => p,
        Err(_) => t
            .try_into_primitive::<Autodiff<Cube>>()
            .expect("targets on the GPU"),
    };
    into_contiguous(p)
}

/// [`crate::kernels::decoder_ce::decoder_cross_entropy`] on the GPU, in f32: the mean
/// cross-entropy of `x` `[N, E]` · `weight^T` (`[V, E]`) + `bias` against `targets` `[N]`;
/// differentiable with respect to `x`, `weight` and `bias`.
pub fn decoder_cross_entropy(
    x: Tensor<2>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    targets: Tensor<1, Int>,
) -> Tensor<1> {
    let [n, _] = x.dims();
    let v = weight.dims()[0];
    let bias = bias.unwrap_or_else(|| Tensor::zeros([v], &x.device()));
    let targets = targets_value(targets);
    let inputs = [
        Lowered::<Cube>::of(x),
        Lowered::<Cube>::of(weight),
        Lowered::<Cube>::of(bias),
    ];
    fused_op(DecoderCeBackward, inputs, |[x, w, b], tracked| {
        let logits = tensor::<2>(x.clone()).matmul(tensor::<2>(w.clone()).transpose())
            + tensor::<1>(b.clone()).unsqueeze_dim(0);
        let logits = value(logits);
        let nll = empty(&logits, &[n]);
        // Without a backward the gradient is not written: a placeholder stands in.
        let dlogits = if tracked {
            empty(&logits, &[n, v])
        } else {
            empty(&logits, &[1])
        };
        let cubes = n.clamp(1, MAX_CUBES) as u32;
        kernel::softmax_cross_entropy::launch(
            &logits.client,
            CubeCount::Static(cubes, 1, 1),
            CubeDim::new_1d(BLOCK as u32),
            logits.clone().into_tensor_arg(),
            targets.clone().into_tensor_arg(),
            nll.clone().into_tensor_arg(),
            dlogits.clone().into_tensor_arg(),
            n as u32,
            v as u32,
            BLOCK,
            tracked,
            [elem(&logits), elem(&targets)],
        );
        let loss = value(tensor::<1>(nll).mean());
        let saved = tracked.then(|| {
            Arc::new(Saved {
                x: x.clone(),
                w: w.clone(),
                dlogits,
            })
        });
        (saved, loss)
    })
    .tensor()
}
