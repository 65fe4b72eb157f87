//! Where a training step's time goes on the GPU: milliseconds of each LSTM layer and of the
//! decoder + loss at the benchmark shapes, forward and backward, through the fused GPU kernels
//! and through the reference ops on the same device (best of a few runs, each ended by reading
//! a value back): `cargo run --release --features wgpu --example gpu_times -- p1|p2 [wgpu|cuda]`
//! (`cpu` times the CPU's fused ops the same way).
use std::time::Instant;

use awd::bench::{VOCAB, p1, p2};
use awd::kernels::Precision;
use awd::kernels::decoder_ce::decoder_cross_entropy;
use awd::kernels::lstm_op::lstm_sequence;
use awd::model::loss::cross_entropy;
use awd::nn::linear::linear;
use awd::nn::lstm::lstm_direction;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

/// The best of `reps` runs of `f`, in ms; `f` returns a value to read back (the device's work
/// is asynchronous).
fn best(reps: usize, mut f: impl FnMut() -> Tensor<1>) -> f64 {
    f().into_scalar::<f32>();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f().into_scalar::<f32>();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn random<const D: usize>(shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 0.1), dev).require_grad()
}

fn main() -> anyhow::Result<()> {
    let s = match std::env::args().nth(1).as_deref() {
        Some("p2") => p2(),
        _ => p1(),
    };
    let name = std::env::args().nth(2).unwrap_or_else(|| "wgpu".into());
    let dev = awd::device::select(&name)?.autodiff();
    let reps = 5;
    let (t, b) = (s.bptt, s.batch_size);
    let m = &s.model;
    println!("{name}: T {t} B {b}; ms, forward + backward (fused GPU kernels | reference ops)");
    let (mut fused_total, mut reference_total) = (0.0, 0.0);
    for l in 0..m.n_layers {
        let (i, h) = m.layer_sizes(l);
        let (x, w_ih, w_hh) = (
            random([t, b, i], &dev),
            random([4 * h, i], &dev),
            random([4 * h, h], &dev),
        );
        let bias = random([4 * h], &dev);
        let state = (Tensor::zeros([b, h], &dev), Tensor::zeros([b, h], &dev));
        let step = |fused: bool| {
            let args = (x.clone(), w_ih.clone(), w_hh.clone(), Some(bias.clone()));
            let (y, _, _) = if fused {
                lstm_sequence(
                    args.0,
                    args.1,
                    args.2,
                    args.3,
                    state.clone(),
                    false,
                    Precision::F32,
                )
            } else {
                lstm_direction(args.0, args.1, args.2, args.3, state.clone(), false)
            };
            let grads = y.sum().backward();
            w_hh.grad(&grads).unwrap().sum()
        };
        let (f, r) = (best(reps, || step(true)), best(reps, || step(false)));
        println!("lstm layer {l} (I {i} H {h}): {f:9.2} | {r:9.2}");
        fused_total += f;
        reference_total += r;
    }
    let n = t * b;
    let x = random([n, m.emb_size], &dev);
    let w = random([VOCAB, m.emb_size], &dev);
    let bias = random([VOCAB], &dev);
    let ids: Vec<i64> = (0..n as i64).map(|k| (k * 7919) % VOCAB as i64).collect();
    let targets: Tensor<1, Int> = Tensor::from_data(TensorData::new(ids, [n]), &dev);
    let step = |fused: bool| {
        let (xs, ws, bs, ys) = (x.clone(), w.clone(), Some(bias.clone()), targets.clone());
        let loss = if fused {
            decoder_cross_entropy(xs, ws, bs, ys, Precision::F32)
        } else {
            let logits = linear(xs.unsqueeze_dim::<3>(0), ws, bs);
            cross_entropy(logits, ys.unsqueeze_dim::<2>(0))
        };
        let grads = loss.backward();
        w.grad(&grads).unwrap().sum()
    };
    let (f, r) = (best(reps, || step(true)), best(reps, || step(false)));
    println!("decoder + loss (V {VOCAB}): {f:9.2} | {r:9.2}");
    fused_total += f;
    reference_total += r;
    println!("total: {fused_total:9.2} | {reference_total:9.2}");
    Ok(())
}
