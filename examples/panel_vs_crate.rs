//! The recurrent panels' own microkernel against the `gemm` crate's on the same panels, each
//! product alternated with the other in one process (best of 200 × 10 calls each), forward
//! (`rows = 4H`, depth `H`) and backward (`rows = H`, depth `4H`):
//! `cargo run --release --example panel_vs_crate` (`BATCH=64` for the classifier's batch). On a
//! CPU where the panels' kernel is the crate anyway (neither AVX2 nor AVX-512), both sides match.
use awd::kernels::panels::Panels;

#[path = "common/batch.rs"]
mod batch;

fn main() {
    awd::alloc::tune();
    let b = batch::batch();
    for h in [200usize, 400, 512, 1152] {
        for (rows, k) in [(4 * h, h), (h, 4 * h)] {
            let w: Vec<f32> = (0..rows * k).map(|i| (i % 7) as f32 * 0.01).collect();
            let x: Vec<f32> = (0..b * k).map(|i| (i % 5) as f32 * 0.1).collect();
            // SAFETY (of set_var): only this thread reads the environment (`Panels::pack` does,
            // here); the pool's threads sit idle between products.
            unsafe { std::env::remove_var("AWD_PANELS") };
            let own = Panels::pack(&w, rows, k);
            unsafe { std::env::set_var("AWD_PANELS", "gemm") };
            let krate = Panels::pack(&w, rows, k);
            let mut out = vec![0.0f32; b * rows];
            let mut best = [f64::MAX; 2];
            for _ in 0..200 {
                for (i, p) in [&own, &krate].into_iter().enumerate() {
                    let t = std::time::Instant::now();
                    for _ in 0..10 {
                        p.mul_into(&mut out, &x, b, false);
                    }
                    best[i] = best[i].min(t.elapsed().as_secs_f64() / 10.0);
                }
            }
            let gflops = |s: f64| 2.0 * (rows * b * k) as f64 / s / 1e9;
            println!(
                "H={h:5} {rows:5} x {k:5} batch {b}: own {:7.1} us {:5.0} GFLOP/s, crate {:7.1} us {:5.0} GFLOP/s: {:.2}x",
                best[0] * 1e6,
                gflops(best[0]),
                best[1] * 1e6,
                gflops(best[1]),
                best[1] / best[0]
            );
        }
    }
}
