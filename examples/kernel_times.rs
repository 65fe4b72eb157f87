//! Milliseconds of each fused kernel at the benchmark shapes (best of a few runs, since the
//! machine is shared), to see where a training step goes:
//! `cargo run --release --example kernel_times -- p1|p2 [bf16]`.
use std::time::Instant;

use awd::bench::{VOCAB, p1, p2};
use awd::kernels::Precision;
use awd::kernels::decoder_ce::{Shape, forward_train, grad_w, grad_x, nll_chunked};
use awd::kernels::lstm::{Wanted, backward, forward};
use awd::kernels::op::Buf;

fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn random(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 - 0.5) * 0.2
        })
        .collect()
}

fn main() {
    awd::alloc::tune();
    let s = match std::env::args().nth(1).as_deref() {
        Some("p2") => p2(),
        _ => p1(),
    };
    let precision = match std::env::args().nth(2).as_deref() {
        Some("bf16") => Precision::Bf16,
        _ => Precision::F32,
    };
    let reps = 5;
    let (t, b) = (s.bptt, s.batch_size);
    let m = &s.model;
    let n = t * b;
    let mut total = 0.0;
    for l in 0..m.n_layers {
        let (i, h) = m.layer_sizes(l);
        let x = random(n * i, 1);
        let w_ih = random(4 * h * i, 2);
        let w_hh = random(4 * h * h, 3);
        let bias = random(4 * h, 4);
        let run = || {
            forward(
                Buf::Owned(x.clone()),
                Buf::Owned(w_ih.clone()),
                Buf::Owned(w_hh.clone()),
                Some(&bias),
                vec![0.0; b * h],
                vec![0.0; b * h],
                (t, b, i, h),
                false,
                precision,
            )
        };
        let fwd = best(reps, || {
            run();
        });
        let saved = run();
        let dy = random(n * h, 5);
        let bwd = best(reps, || {
            backward(&saved, &dy, Wanted::ALL);
        });
        println!("lstm layer {l} ({i}->{h}): forward {fwd:7.2} ms  backward {bwd:7.2} ms");
        total += fwd + bwd;
    }
    let (e, v) = (m.emb_size, VOCAB);
    let x = random(n * e, 6);
    let w = random(v * e, 7);
    let bias = random(v, 8);
    let targets: Vec<usize> = (0..n).map(|k| k * 7919 % v).collect();
    let dims = Shape {
        dims: (n, e, v),
        precision,
    };
    let fwd = best(reps, || {
        forward_train(&x, &w, &bias, &targets, dims);
    });
    let g = forward_train(&x, &w, &bias, &targets, dims);
    let dx = best(reps, || {
        grad_x(&g.d, &w, 1.0, dims);
    });
    let dw = best(reps, || {
        grad_w(&g.d, &x, 1.0, dims);
    });
    let eval = best(reps, || {
        nll_chunked(&x, &w, &bias, &targets, dims);
    });
    println!(
        "decoder+CE: train forward {fwd:7.2} ms  dx {dx:7.2} ms  dW {dw:7.2} ms  (eval forward {eval:7.2} ms)"
    );
    total += fwd + dx + dw;
    println!("kernels of one training step: {total:.1} ms");
}
