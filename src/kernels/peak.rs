//! The machine's f32 multiply-add peak, measured rather than taken from a data sheet: on every
//! core at once, independent chains of fused multiply-adds (enough of them to hide the FMA
//! latency on both FMA ports), AVX-512 where the CPU has it, else AVX2 + FMA.

use std::sync::Barrier;
use std::time::Instant;

/// Independent accumulators per core: FMA latency (4 cycles) × 2 ports, with slack.
const CHAINS: usize = 12;

/// What the measurement found.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    /// All the cores together, GFLOP/s (a multiply-add counts two).
    pub gflops: f64,
    /// The slowest core alone, GFLOP/s.
    pub per_core: f64,
    pub threads: usize,
    /// The instructions used: "AVX-512", "AVX2+FMA" or "scalar".
    pub isa: &'static str,
}

/// The f32 FMA peak of `threads` cores running at once, each for about `seconds`.
pub fn measure(threads: usize, seconds: f64) -> Peak {
    let (isa, lanes) = isa();
    // A short calibration on this thread sizes the timed run.
    let probe = 200_000u64;
    let t = Instant::now();
    std::hint::black_box(chains(isa, probe));
    let per_iter = t.elapsed().as_secs_f64() / probe as f64;
    let iters = ((seconds / per_iter.max(1e-12)) as u64).max(probe);
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    let times: Vec<f64> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    std::hint::black_box(chains(isa, iters));
                    t.elapsed().as_secs_f64()
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("an FMA loop does not panic"))
            .collect()
    });
    let flops = 2.0 * (iters as usize * CHAINS * lanes) as f64;
    let slowest = times.iter().copied().fold(0.0, f64::max);
    Peak {
        gflops: threads as f64 * flops / slowest / 1e9,
        per_core: flops / slowest / 1e9,
        threads,
        isa,
    }
}

/// The widest FMA this CPU runs, and its f32 lanes.
fn isa() -> (&'static str, usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return ("AVX-512", 16);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return ("AVX2+FMA", 8);
        }
    }
    ("scalar", 1)
}

fn chains(isa: &str, iters: u64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `isa` names only instructions the CPU was found to have.
        if isa == "AVX-512" {
            return unsafe { x86::avx512(iters) };
        }
        if isa == "AVX2+FMA" {
            return unsafe { x86::avx2(iters) };
        }
    }
    let mut acc = [1.0f32; CHAINS];
    for _ in 0..iters {
        for a in &mut acc {
            *a = a.mul_add(0.999_999, 1e-7);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub fn avx512(iters: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for r in &mut acc {
                *r = _mm512_fmadd_ps(*r, a, b);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm512_setzero_ps(), |s, &r| _mm512_add_ps(s, r));
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn avx2(iters: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iters {
            for r in &mut acc {
                *r = _mm256_fmadd_ps(*r, a, b);
            }
        }
        let sum = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, &r| _mm256_add_ps(s, r));
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds the 8 floats the store writes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
        lanes.iter().sum()
    }
}
