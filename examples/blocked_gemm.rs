//! The window products of a P1, P2 and classifier step (`awd::bench::roofline`'s shapes, as the
//! step orients them) through awd's products against the `gemm` crate
//! (`kernels::gemm::crate_gemm`), one call each alternated 40 times, with the best GFLOP/s of
//! each (on a shared host the best of many short calls is steadier than a mean) and their
//! ratio: `cargo run --release --example blocked_gemm [p1|p2|clas]`. On an AVX2-only CPU awd's
//! products are `kernels::gemm_avx2`; elsewhere both sides are the `gemm` crate.
use std::time::Instant;

use awd::bench::roofline::{clas_shapes, step_shapes};
use awd::kernels::gemm::{crate_gemm, gemm};

/// Alternated calls of each side per shape.
const CALLS: usize = 40;

/// Seconds of one call of `f`.
fn time(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn main() {
    awd::alloc::tune();
    let which = std::env::args().nth(1).unwrap_or_else(|| "p2".into());
    let shapes = match which.as_str() {
        "p1" => step_shapes(&awd::bench::p1(), 10_000),
        "clas" => clas_shapes(&awd::classify::ClassifyConfig::default(), 250),
        _ => step_shapes(&awd::bench::p2(), 10_000),
    };
    println!("{which}: awd's products against the gemm crate, best of {CALLS} alternated calls");
    for s in shapes.iter().filter(|s| !s.panels) {
        let (a, b) = s.operands();
        let mut c = vec![0f32; s.m * s.n];
        let (am, bm) = s.views(&a, &b);
        let (mut own, mut other) = (f64::MAX, f64::MAX);
        for call in 0..CALLS + 2 {
            let x = time(|| gemm(&mut c, am, bm, false));
            // SAFETY: `c` holds `m x n` values and is not an operand.
            let y = time(|| unsafe { crate_gemm(c.as_mut_ptr(), am, bm, false, 1.0) });
            // The first two calls warm the caches and the pool.
            if call >= 2 {
                (own, other) = (own.min(x), other.min(y));
            }
        }
        let rate = |t: f64| 2.0 * (s.m * s.n * s.k) as f64 / t / 1e9;
        println!(
            "{:32} {:5} {:5} {:5}  awd {:6.1}  gemm crate {:6.1} GFLOP/s  {:4.2}x",
            s.what,
            s.m,
            s.n,
            s.k,
            rate(own),
            rate(other),
            other / own
        );
    }
}
