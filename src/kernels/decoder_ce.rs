//! The decoder (tied weight, bias) and cross-entropy as one operation (CPU backend).
//!
//! Op by op, the decoder's logits `[N, V]` go through six passes of `log_softmax`, a gather and
//! the backward of each. Here one pass per row computes the log-sum-exp and the loss and leaves
//! the softmax in place; the backward turns it into `softmax - onehot` and forms the three
//! gradients with two products and a column sum. Without autodiff (evaluation), rows are taken
//! in chunks so the full logits matrix is never held.

use std::sync::Arc;

use burn::tensor::{Int, Tensor};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_backend::BackendTypes;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::gemm::{Mat, gemm};
use super::lstm::Buf;
use super::lstm_op::{flex, host};
use super::math;

type Ad = Autodiff<Flex>;
type AdTensor = <Ad as BackendTypes>::FloatTensorPrimitive;

/// Rows of logits computed at once when only the loss is needed.
const CHUNK_ROWS: usize = 256;

#[derive(Debug, Clone)]
struct Saved {
    n: usize,
    e: usize,
    v: usize,
    x: Buf,
    w: Buf,
    /// Softmax of the logits `[N, V]`.
    probs: Vec<f32>,
    targets: Vec<usize>,
}

/// Logits of `rows` rows into `out` (`[rows, V]`), then each row turned into its softmax;
/// returns the summed negative log-likelihood of the targets.
fn logits_softmax_nll(
    out: &mut [f32],
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    targets: &[usize],
    (rows, e, v): (usize, usize, usize),
) -> f64 {
    gemm(out, Mat::new(x, rows, e), Mat::t(w, v, e), false);
    out.par_chunks_mut(v)
        .zip(targets.par_iter())
        .map(|(row, &t)| {
            row.iter_mut().zip(bias).for_each(|(l, b)| *l += b);
            let max = math::max(row);
            let target_logit = row[t];
            let sum = math::exp_shifted_sum(row, max);
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|p| *p *= inv);
            (max + sum.ln() - target_logit) as f64
        })
        .sum()
}

#[derive(Debug)]
struct DecoderCeBackward;

impl Backward<Flex, 3> for DecoderCeBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = host(&grads.consume::<Flex>(&ops.node))[0] / ops.state.n as f32;
        // The graph is done with the forward's state: take its softmax buffer over instead of
        // copying it (a copy only if something else still holds it).
        let mut s = Arc::try_unwrap(ops.state).unwrap_or_else(|shared| (*shared).clone());
        let mut d = std::mem::take(&mut s.probs);
        d.par_chunks_mut(s.v)
            .zip(s.targets.par_iter())
            .for_each(|(row, &t)| {
                row[t] -= 1.0;
                row.iter_mut().for_each(|p| *p *= g);
            });
        let [px, pw, pb] = ops.parents;
        if let Some(node) = px {
            let mut dx = vec![0.0f32; s.n * s.e];
            gemm(
                &mut dx,
                Mat::new(&d, s.n, s.v),
                Mat::new(&s.w, s.v, s.e),
                false,
            );
            grads.register::<Flex>(node.id, flex(dx, vec![s.n, s.e]));
        }
        if let Some(node) = pw {
            let mut dw = vec![0.0f32; s.v * s.e];
            gemm(
                &mut dw,
                Mat::t(&d, s.n, s.v),
                Mat::new(&s.x, s.n, s.e),
                false,
            );
            grads.register::<Flex>(node.id, flex(dw, vec![s.v, s.e]));
        }
        if let Some(node) = pb {
            let db = math::column_sums(&d, s.v);
            grads.register::<Flex>(node.id, flex(db, vec![s.v]));
        }
    }
}

/// Mean cross-entropy of `x` `[N, E]` · `weight^T` (`[V, E]`) + `bias` against `targets` `[N]`,
/// as one operation; differentiable with respect to `x`, `weight` and `bias`. `None` when the
/// tensors are not on the flex backend (the caller then runs the reference ops).
pub fn decoder_cross_entropy(
    x: Tensor<2>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    targets: Tensor<1, Int>,
) -> Option<Tensor<1>> {
    let [n, e] = x.dims();
    let v = weight.dims()[0];
    let bias = bias.unwrap_or_else(|| Tensor::zeros([v], &x.device()));
    let targets: Vec<usize> = targets
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .ok()?
        .into_iter()
        .map(|t| t.clamp(0, v as i64 - 1) as usize)
        .collect();
    if x.is_autodiff() {
        let xa: AdTensor = x.try_into_primitive::<Ad>().ok()?;
        let wa: AdTensor = weight.try_into_primitive::<Ad>().ok()?;
        let ba: AdTensor = bias.try_into_primitive::<Ad>().ok()?;
        let (xv, wv, bv) = (
            Buf::from_flex(xa.primitive()),
            Buf::from_flex(wa.primitive()),
            Buf::from_flex(ba.primitive()),
        );
        let mut probs = vec![0.0f32; n * v];
        let nll = logits_softmax_nll(&mut probs, &xv, &wv, &bv, &targets, (n, e, v));
        let loss = flex(vec![(nll / n as f64) as f32], vec![1]);
        let saved = Saved {
            n,
            e,
            v,
            x: xv,
            w: wv,
            probs,
            targets,
        };
        let out = match DecoderCeBackward
            .prepare::<NoCheckpointing>([xa.node(), wa.node(), ba.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(Arc::new(saved), loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        };
        Some(Tensor::from_primitive::<Ad>(out))
    } else {
        let xf: FlexTensor = x.try_into_primitive::<Flex>().ok()?;
        let wf: FlexTensor = weight.try_into_primitive::<Flex>().ok()?;
        let bf: FlexTensor = bias.try_into_primitive::<Flex>().ok()?;
        let (xv, wv, bv) = (
            Buf::from_flex(&xf),
            Buf::from_flex(&wf),
            Buf::from_flex(&bf),
        );
        let mut buf = vec![0.0f32; CHUNK_ROWS.min(n) * v];
        let mut nll = 0.0f64;
        for start in (0..n).step_by(CHUNK_ROWS) {
            let rows = CHUNK_ROWS.min(n - start);
            nll += logits_softmax_nll(
                &mut buf[..rows * v],
                &xv[start * e..(start + rows) * e],
                &wv,
                &bv,
                &targets[start..start + rows],
                (rows, e, v),
            );
        }
        Some(Tensor::from_primitive::<Flex>(flex(
            vec![(nll / n as f64) as f32],
            vec![1],
        )))
    }
}
