//! `awd bench --roofline`: each product of a training step, and the whole step, held against the
//! machine's measured peak ([`crate::kernels::peak`]) for the step's precision: the f32 FMA peak,
//! or with `--precision bf16` the bf16 unit's (AMX tiles or AVX512-BF16).

use std::time::Instant;

use crate::classify::ClassifyConfig;
use crate::kernels::Precision;
use crate::kernels::bf16::Unit;
use crate::kernels::gemm::{Mat, Rhs, gemm, product_in};
use crate::kernels::panels::Panels;
use crate::kernels::peak::{self, Peak};
use crate::model::AwdLstmConfig;
use crate::train::TrainConfig;

/// One product of the step, `[m, k] · [k, n]` (either operand read transposed, as the step
/// reads it), run `count` times a step.
#[derive(Debug, Clone)]
pub struct Shape {
    pub what: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a_t: bool,
    pub b_t: bool,
    /// Run as the LSTM's per-step recurrent products are: the weight laid out in
    /// [`Panels`] once a window (the layout pass not timed), then one product a time step.
    pub panels: bool,
    pub count: usize,
}

impl Shape {
    /// Operands of the shape's sizes, `A` `m x k` and `B` `k x n` (constants), stored as
    /// [`Shape::views`] reads them.
    pub fn operands(&self) -> (Vec<f32>, Vec<f32>) {
        (vec![0.01; self.m * self.k], vec![0.02; self.k * self.n])
    }

    /// `a` and `b` seen as the step orients them (transposed where `a_t`, `b_t`).
    pub fn views<'a>(&self, a: &'a [f32], b: &'a [f32]) -> (Mat<'a>, Mat<'a>) {
        let am = match self.a_t {
            true => Mat::t(a, self.k, self.m),
            false => Mat::new(a, self.m, self.k),
        };
        let bm = match self.b_t {
            true => Mat::t(b, self.n, self.k),
            false => Mat::new(b, self.k, self.n),
        };
        (am, bm)
    }

    /// Floating-point operations a step (a multiply-add counts two).
    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k * self.count) as f64
    }
}

/// The products of one training step of `cfg` on `vocab` words: the LSTM's over one window
/// ([`lstm_shapes`]) and the tied decoder's logits and its two gradients. The rest of the step
/// (the LSTM cell, softmax, dropout, AdamW) is not a product.
pub fn step_shapes(cfg: &TrainConfig, vocab: usize) -> Vec<Shape> {
    let (b, t) = (cfg.batch_size, cfg.bptt);
    let mut shapes = lstm_shapes(&cfg.model, b, &[(t, 1)]);
    let (rows, e) = (b * t, cfg.model.emb_size);
    let decoder = [
        ("x.W^T (logits)", (rows, vocab, e), (false, true)),
        ("dL.W (dx)", (rows, e, vocab), (false, false)),
        ("dL^T.x (dW)", (vocab, e, rows), (true, false)),
    ];
    for (what, (m, n, k), (a_t, b_t)) in decoder {
        shapes.push(Shape {
            what: format!("decoder {what}"),
            m,
            n,
            k,
            a_t,
            b_t,
            panels: false,
            count: 1,
        });
    }
    shapes
}

/// The products of one classifier training step at `cfg`'s sizes on documents of `doc_len`
/// tokens: the encoder reads them in chunks of `cfg.bptt` (every chunk pooled and trained, as
/// for documents under `max_len`); the head's small products are left out.
pub fn clas_shapes(cfg: &ClassifyConfig, doc_len: usize) -> Vec<Shape> {
    let (full, rest) = (doc_len / cfg.bptt, doc_len % cfg.bptt);
    let windows: Vec<(usize, usize)> = [(cfg.bptt, full), (rest, 1)]
        .into_iter()
        .filter(|&(t, n)| t > 0 && n > 0)
        .collect();
    lstm_shapes(&cfg.model, cfg.batch_size, &windows)
}

/// Per LSTM layer and direction, over windows of `(steps, how many)` on a batch of `b`: the
/// input projection of each window length and the recurrent product of each time step, with
/// their three backward products each.
fn lstm_shapes(model: &AwdLstmConfig, b: usize, windows: &[(usize, usize)]) -> Vec<Shape> {
    let steps: usize = windows.iter().map(|(t, n)| t * n).sum();
    // The per-step products run on panels where the LSTM kernel lays them out (f32, a batch
    // of 4 rows or more, windows of 2 steps or more: kernels/lstm.rs).
    let panels = b >= 4 && windows.iter().all(|&(t, _)| t >= 2);
    let mut shapes = Vec::new();
    for l in 0..model.n_layers {
        let (d_in, h) = model.layer_sizes(l);
        let g = 4 * h;
        let mut push = |what: &str, (m, n, k), (a_t, b_t), count, panels| {
            shapes.push(Shape {
                what: format!("lstm{l} {what}"),
                m,
                n,
                k,
                a_t,
                b_t,
                panels,
                count: model.directions() * count,
            })
        };
        for &(t, n) in windows {
            let rows = b * t;
            push("x.Wih^T", (rows, g, d_in), (false, true), n, false);
            push("dG.Wih (dx)", (rows, d_in, g), (false, false), n, false);
            push("dG^T.x (dWih)", (g, d_in, rows), (true, false), n, false);
            push("dG^T.h (dWhh)", (g, h, rows), (true, false), n, false);
        }
        push(
            "h.Whh^T, each step",
            (b, g, h),
            (false, true),
            steps,
            panels,
        );
        push(
            "dG.Whh (dh), each step",
            (b, h, g),
            (false, false),
            steps,
            panels,
        );
    }
    shapes
}

/// GFLOP/s of `shape` through awd's products in `precision` (`kernels::gemm`, or [`Panels`];
/// in bf16 the operands' packing included, as the step packs them: the per-step products' weight
/// once a window, untimed), timed for about `seconds` after one warm-up product.
pub fn time_shape(shape: &Shape, precision: Precision, seconds: f64) -> f64 {
    let s = shape;
    let (a, b) = s.operands();
    let mut c = vec![0f32; s.m * s.n];
    let (am, bm) = s.views(&a, &b);
    match (precision, s.panels) {
        (Precision::F32, true) => {
            let w = Panels::pack(&b, s.n, s.k);
            timed(s, seconds, || w.mul_into(&mut c, &a, s.m, false))
        }
        (Precision::F32, false) => timed(s, seconds, || gemm(&mut c, am, bm, false)),
        (Precision::Bf16, true) => {
            let w = Rhs::new(precision, bm);
            timed(s, seconds, || {
                w.mul_into(&mut c, Mat::new(&a, s.m, s.k), false)
            })
        }
        (Precision::Bf16, false) => timed(s, seconds, || {
            std::hint::black_box(product_in(precision, am, bm, 1.0));
        }),
    }
}

/// GFLOP/s of `product` (one `s`) after a warm-up: the best of three runs of a third of
/// `seconds` each (a shared machine only ever slows a run down).
fn timed(s: &Shape, seconds: f64, mut product: impl FnMut()) -> f64 {
    product();
    let mut best = 0f64;
    for _ in 0..3 {
        let (start, mut reps) = (Instant::now(), 0usize);
        while reps == 0 || start.elapsed().as_secs_f64() < seconds / 3.0 {
            product();
            reps += 1;
        }
        let gflops = 2.0 * (s.m * s.n * s.k * reps) as f64 / start.elapsed().as_secs_f64() / 1e9;
        best = best.max(gflops);
    }
    best
}

/// A step's products measured against the peak.
#[derive(Debug, Clone)]
pub struct Roofline {
    pub peak: Peak,
    /// The products' operands.
    pub precision: Precision,
    /// Each product and its measured GFLOP/s.
    pub products: Vec<(Shape, f64)>,
    pub tokens_per_step: usize,
}

impl Roofline {
    /// The peak on every thread awd computes on, for `precision`, and each of a step's
    /// `shapes` in it; the step reads `tokens_per_step` tokens.
    pub fn measure(precision: Precision, shapes: Vec<Shape>, tokens_per_step: usize) -> Self {
        let threads = rayon::current_num_threads();
        let probe = |seconds| match precision {
            Precision::F32 => peak::measure(threads, seconds),
            // The emulated unit multiplies in f32: its peak is f32's.
            Precision::Bf16 => peak::measure_bf16(Unit::get(), threads, seconds)
                .unwrap_or_else(|| peak::measure(threads, seconds)),
        };
        let faster = |a: Peak, b: Peak| if b.gflops > a.gflops { b } else { a };
        // The best of three runs first, then of a short one after each product: a shared host
        // that slows the machine for a moment only ever lowers a run, so the products (each the
        // best of its own runs) are held against the best the peak reached around them.
        let mut peak = (0..2).map(|_| probe(0.1)).fold(probe(0.1), faster);
        let products = shapes
            .into_iter()
            .map(|s| {
                let gflops = time_shape(&s, precision, 0.09);
                peak = faster(peak, probe(0.03));
                (s, gflops)
            })
            .collect();
        Self {
            peak,
            precision,
            products,
            tokens_per_step,
        }
    }

    pub fn step_flops(&self) -> f64 {
        self.products.iter().map(|(s, _)| s.flops()).sum()
    }

    /// Milliseconds a step spends in its products at their measured speeds.
    pub fn products_ms(&self) -> f64 {
        self.products
            .iter()
            .map(|(s, gflops)| s.flops() / gflops / 1e6)
            .sum()
    }

    /// A step of `step_ms`: its GFLOP/s and the share of the peak.
    pub fn step(&self, step_ms: f64) -> (f64, f64) {
        let gflops = self.step_flops() / step_ms / 1e6;
        (gflops, gflops / self.peak.gflops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// P2 is "~145 MFLOP a token" (the speed issue's own count, made by hand from the sizes).
    #[test]
    fn p2_products_are_145_mflop_a_token() {
        let cfg = crate::bench::p2();
        let flops: f64 = step_shapes(&cfg, crate::bench::VOCAB)
            .iter()
            .map(Shape::flops)
            .sum();
        let per_token = flops / (cfg.batch_size * cfg.bptt) as f64;
        assert!((per_token / 145.0e6 - 1.0).abs() < 0.01, "{per_token}");
    }

    /// The classifier's encoder over documents of 250 tokens in chunks of 72 (three full ones
    /// and one of 34): three products a layer's forward product, `2 · 4h · (in + h)` a token.
    #[test]
    fn clas_products_are_the_encoders_over_every_chunk() {
        let cfg = crate::bench::clas_config();
        let shapes = clas_shapes(&cfg, 250);
        let flops: f64 = shapes.iter().map(Shape::flops).sum();
        let per_token: f64 = (0..cfg.model.n_layers)
            .map(|l| {
                let (d_in, h) = cfg.model.layer_sizes(l);
                3.0 * 2.0 * (4 * h * (d_in + h)) as f64
            })
            .sum();
        let tokens = (cfg.batch_size * 250) as f64;
        assert!((flops / tokens / per_token - 1.0).abs() < 1e-9, "{flops}");
        let rows: Vec<usize> = shapes
            .iter()
            .filter(|s| s.what == "lstm0 x.Wih^T")
            .map(|s| s.m)
            .collect();
        assert_eq!(rows, [64 * 72, 64 * 34]);
    }
}
