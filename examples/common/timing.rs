//! Timing shared by the GEMM examples.
use std::time::Instant;

/// Runs `f` once to warm up, then `reps` times, and prints the mean time and GFLOP/s of an
/// `m x n x k` product; returns the mean time in seconds.
pub fn time(
    label: &str,
    (m, n, k): (usize, usize, usize),
    reps: usize,
    f: &mut dyn FnMut(),
) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{label:56} {:8.1} us  {:6.1} GFLOP/s",
        s * 1e6,
        2.0 * (m * n * k) as f64 / s / 1e9
    );
    s
}
