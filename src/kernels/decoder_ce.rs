//! The decoder (tied weight, bias) and cross-entropy as one operation (CPU backend).
//!
//! Op by op, the decoder's logits `[N, V]` go through six passes of `log_softmax`, a gather and
//! the backward of each. Here, in training, one pass per row computes the log-sum-exp and the
//! loss and turns the row straight into the gradient of the summed loss with respect to the
//! logits, `softmax - onehot`, adding it into the bias gradient while the row is in cache: the
//! loss is the last operation of the graph, so its gradient is known up to the scalar that the
//! backward brings, and the backward is left with two products. Without a gradient to track
//! (evaluation), rows are taken in chunks so the full logits matrix is never held.

use std::sync::Arc;

use burn::tensor::{Int, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops};
use burn_flex::Flex;
use rayon::prelude::*;

use super::bf16::{PackedA, PackedB, Precision, Unit, to_bf16_uninit};
use super::gemm::{Mat, Rhs, own_blocked, packed_product, product, product_in};
use super::math;
use super::op::{Buf, Lowered, flex, fused_op, host};

/// Rows of logits computed at once when only the loss is needed (a 512-row product runs at
/// the full-matrix rate; examples/gemm_shapes.rs).
pub const CHUNK_ROWS: usize = 512;

/// `(rows, e, v)`: rows of `x`, embedding size, vocabulary size.
type Dims = (usize, usize, usize);

/// The products' precision and shapes.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub dims: Dims,
    pub precision: Precision,
}

/// `softmax(logits) - onehot(targets)` `[N, V]`, as the backward's products read it: f32, or
/// (bf16 products on a bf16 unit) rounded to bf16 already, which is all those products would
/// read of it, in half the memory.
#[derive(Debug)]
pub enum LogitGrad {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

/// What the training forward leaves for the backward.
#[derive(Debug)]
pub struct CeGrad {
    /// Summed negative log-likelihood of the targets.
    pub nll: f64,
    /// The gradient of the summed loss with respect to the logits.
    pub d: LogitGrad,
    /// Column sums of `d` `[V]`: the bias gradient of the summed loss.
    pub db: Vec<f32>,
}

/// Row blocks per thread for the row passes (a few, so a preempted thread is caught up).
fn row_block(n: usize) -> usize {
    n.div_ceil(4 * rayon::current_num_threads().max(1)).max(1)
}

/// Adds the bias to a row of logits and returns the negative log-likelihood of target `t` and
/// `Σ e^(l - max)`; the row is left holding `e^(l - max)`.
fn exp_row(row: &mut [f32], bias: &[f32], t: usize) -> (f64, f32) {
    let target_logit = row[t] + bias[t];
    let max = math::add_max(row, bias);
    let sum = math::exp_shifted_sum(row, max);
    ((max + sum.ln() - target_logit) as f64, sum)
}

/// Turns rows of logits `[rows, V]` into `softmax - onehot` in place; returns their summed
/// negative log-likelihood and column sums (the bias gradient).
fn grad_rows(d: &mut [f32], bias: &[f32], targets: &[usize]) -> (f64, Vec<f32>) {
    let v = bias.len();
    let rows = row_block(targets.len());
    let parts: Vec<(f64, Vec<f32>)> = d
        .par_chunks_mut(rows * v)
        .zip(targets.par_chunks(rows))
        .map(|(block, ts)| {
            let mut db = vec![0.0f32; v];
            let mut nll = 0.0f64;
            for (row, &t) in block.chunks_mut(v).zip(ts) {
                let (row_nll, sum) = exp_row(row, bias, t);
                nll += row_nll;
                math::scale_accumulate(row, 1.0 / sum, &mut db);
                row[t] -= 1.0;
                db[t] -= 1.0;
            }
            (nll, db)
        })
        .collect();
    // Blocks are added in order, so the result does not depend on scheduling.
    let mut db = vec![0.0f32; v];
    let mut nll = 0.0f64;
    for (part_nll, part_db) in parts {
        nll += part_nll;
        db.iter_mut().zip(&part_db).for_each(|(a, b)| *a += b);
    }
    (nll, db)
}

/// The training forward on host slices: logits, loss and the logit gradient, see [`CeGrad`].
/// `x` `[N, E]`, `w` `[V, E]`, `bias` `[V]`, targets `[N]` (each `< V`).
pub fn forward_train(x: &[f32], w: &[f32], bias: &[f32], targets: &[usize], s: Shape) -> CeGrad {
    let (n, e, v) = s.dims;
    if s.precision == Precision::F32 || Unit::get() == Unit::Emulated {
        let mut d = product_in(s.precision, Mat::new(x, n, e), Mat::t(w, v, e), 1.0);
        let (nll, db) = grad_rows(&mut d, bias, targets);
        return CeGrad {
            nll,
            d: LogitGrad::F32(d),
            db,
        };
    }
    // bf16: the logits a chunk of rows at a time, their gradient kept in bf16 only.
    let w_t = Rhs::new(s.precision, Mat::t(w, v, e));
    let mut d: Vec<u16> = Vec::with_capacity(n * v);
    let (mut nll, mut db) = (0.0f64, vec![0.0f32; v]);
    for start in (0..n).step_by(CHUNK_ROWS) {
        let rows = CHUNK_ROWS.min(n - start);
        let mut out = w_t.product(Mat::new(&x[start * e..(start + rows) * e], rows, e));
        let (chunk_nll, chunk_db) = grad_rows(&mut out, bias, &targets[start..start + rows]);
        nll += chunk_nll;
        db.iter_mut().zip(&chunk_db).for_each(|(a, b)| *a += b);
        d.spare_capacity_mut()[..rows * v]
            .par_chunks_mut(v)
            .zip(out.par_chunks(v))
            .for_each(|(o, r)| to_bf16_uninit(r, o));
        // SAFETY: the chunk's `rows * v` values were all written just above.
        unsafe { d.set_len((start + rows) * v) };
    }
    CeGrad {
        nll,
        d: LogitGrad::Bf16(d),
        db,
    }
}

/// Summed negative log-likelihood only, in chunks of [`CHUNK_ROWS`] rows.
pub fn nll_chunked(x: &[f32], w: &[f32], bias: &[f32], targets: &[usize], s: Shape) -> f64 {
    let (n, e, v) = s.dims;
    let w_t = Rhs::new(s.precision, Mat::t(w, v, e));
    let mut buf = vec![0.0f32; CHUNK_ROWS.min(n) * v];
    let mut nll = 0.0f64;
    for start in (0..n).step_by(CHUNK_ROWS) {
        let rows = CHUNK_ROWS.min(n - start);
        let out = &mut buf[..rows * v];
        let xs = &x[start * e..(start + rows) * e];
        w_t.mul_into(out, Mat::new(xs, rows, e), false);
        nll += out
            .par_chunks_mut(v)
            .zip(targets[start..start + rows].par_iter())
            .map(|(row, &t)| exp_row(row, bias, t).0)
            .sum::<f64>();
    }
    nll
}

/// `dx = scale · d · W` `[N, E]`.
pub fn grad_x(d: &LogitGrad, w: &[f32], scale: f32, s: Shape) -> Vec<f32> {
    let (n, e, v) = s.dims;
    match d {
        LogitGrad::F32(d) => product_in(s.precision, Mat::new(d, n, v), Mat::new(w, v, e), scale),
        LogitGrad::Bf16(d) => packed_product(
            &PackedA::from_bf16(d, n, v),
            &PackedB::new(Mat::new(w, v, e)),
            scale,
        ),
    }
}

/// `dW = scale · d^T · x` `[V, E]`. Where awd's own AVX2 GEMM runs it, as it is: 1.37–1.42x
/// faster than `x^T · d` at P1 and P2's shapes (`examples/gemm_shapes.rs --decoder`; `d` is
/// packed once instead of a pass of 448 columns at a time). Elsewhere as `x^T · d` `[E, V]`,
/// then transposed: with the long dimension V as the product's columns the `gemm` crate runs
/// it 10–20% faster.
pub fn grad_w(d: &LogitGrad, x: &[f32], scale: f32, s: Shape) -> Vec<f32> {
    let (n, e, v) = s.dims;
    if let LogitGrad::F32(d) = d
        && s.precision == Precision::F32
        && own_blocked(v, e, n)
    {
        return product(Mat::t(d, n, v), Mat::new(x, n, e), scale);
    }
    let dw_t = match d {
        LogitGrad::F32(d) => product_in(s.precision, Mat::t(x, n, e), Mat::new(d, n, v), scale),
        LogitGrad::Bf16(d) => packed_product(
            &PackedA::new(Mat::t(x, n, e)),
            &PackedB::from_bf16(d, n, v),
            scale,
        ),
    };
    super::transpose::transpose(&dw_t, e, v)
}

#[derive(Debug)]
struct Saved {
    shape: Shape,
    x: Buf,
    w: Buf,
    grad: CeGrad,
}

#[derive(Debug)]
struct DecoderCeBackward;

impl Backward<Flex, 3> for DecoderCeBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = &ops.state;
        let (n, e, v) = s.shape.dims;
        // The forward holds the gradient of the summed loss; the op's output is the mean.
        let scale = host(&grads.consume::<Flex>(&ops.node))[0] / n as f32;
        let [px, pw, pb] = ops.parents;
        if let Some(node) = px {
            let dx = grad_x(&s.grad.d, &s.w, scale, s.shape);
            grads.register::<Flex>(node.id, flex(dx, vec![n, e]));
        }
        if let Some(node) = pw {
            let dw = grad_w(&s.grad.d, &s.x, scale, s.shape);
            grads.register::<Flex>(node.id, flex(dw, vec![v, e]));
        }
        if let Some(node) = pb {
            let db = s.grad.db.iter().map(|g| g * scale).collect();
            grads.register::<Flex>(node.id, flex(db, vec![v]));
        }
    }
}

/// Mean cross-entropy of `x` `[N, E]` · `weight^T` (`[V, E]`) + `bias` against `targets` `[N]`,
/// as one operation on the flex backend, its products in `precision` (on the GPU with the `wgpu`
/// feature: `kernels::gpu::decoder`, f32); differentiable with respect to `x`, `weight` and `bias`.
pub fn decoder_cross_entropy(
    x: Tensor<2>,
    weight: Tensor<2>,
    bias: Option<Tensor<1>>,
    targets: Tensor<1, Int>,
    precision: Precision,
) -> Tensor<1> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if super::op::Kernels::of(&x) == Some(super::op::Kernels::Gpu) {
        return super::gpu::decoder::decoder_cross_entropy(x, weight, bias, targets);
    }
    let [n, e] = x.dims();
    let v = weight.dims()[0];
    let shape = Shape {
        dims: (n, e, v),
        precision,
    };
    let bias = bias.unwrap_or_else(|| Tensor::zeros([v], &x.device()));
    let targets: Vec<usize> = targets
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("integer targets")
        .into_iter()
        .map(|t| t.clamp(0, v as i64 - 1) as usize)
        .collect();
    let mean = |nll: f64| flex(vec![(nll / n as f64) as f32], vec![1]);
    let inputs = [
        Lowered::<Flex>::of(x),
        Lowered::<Flex>::of(weight),
        Lowered::<Flex>::of(bias),
    ];
    fused_op(DecoderCeBackward, inputs, |[x, w, b], tracked| {
        let (x, w, b) = (Buf::from_flex(x), Buf::from_flex(w), Buf::from_flex(b));
        if !tracked {
            return (None, mean(nll_chunked(&x, &w, &b, &targets, shape)));
        }
        let grad = forward_train(&x, &w, &b, &targets, shape);
        let loss = mean(grad.nll);
        (Some(Arc::new(Saved { shape, x, w, grad })), loss)
    })
    .tensor()
}
