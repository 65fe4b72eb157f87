//! The machine's multiply-add peaks, measured rather than taken from a data sheet: on every core
//! at once, independent chains of multiply-adds with no memory traffic (enough of them to hide
//! the latency on every port). f32: fused multiply-adds, AVX-512 where the CPU has it, else
//! AVX2 + FMA. bf16 (bf16 operands, f32 sums): the unit `--precision bf16` multiplies on, Intel
//! AMX tile products (four accumulator tiles) or AVX512-BF16 `vdpbf16ps` chains.

use std::sync::Barrier;
use std::time::Instant;

use super::bf16::Unit;

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
    /// The instructions used: "AVX-512", "AVX2+FMA", "scalar", "AMX" or "AVX512-BF16".
    pub isa: &'static str,
}

/// A loop of independent multiply-add chains: its instructions, the FLOPs of one iteration, and
/// the loop itself (run on the thread that times it).
struct Chains {
    isa: &'static str,
    flops_per_iter: f64,
    run: fn(u64) -> f32,
}

/// The f32 FMA peak of `threads` cores running at once, each for about `seconds`.
pub fn measure(threads: usize, seconds: f64) -> Peak {
    measure_chains(&f32_chains(), threads, seconds)
}

/// The bf16 products' peak (bf16 operands, f32 sums) of `threads` cores on `unit`; `None` for
/// [`Unit::Emulated`], whose products are f32 ones.
pub fn measure_bf16(unit: Unit, threads: usize, seconds: f64) -> Option<Peak> {
    #[cfg(target_arch = "x86_64")]
    {
        let chains = match unit {
            Unit::Amx => Chains {
                isa: "AMX",
                // Four tile products of 16 × 16 outputs, 32 multiply-adds each.
                flops_per_iter: 4.0 * 2.0 * (16 * 16 * 32) as f64,
                // SAFETY: the unit is AMX only once the tile state was granted.
                run: |n| unsafe { super::bf16::amx::Tiles::load() }.chains(n),
            },
            Unit::Avx512 => Chains {
                isa: "AVX512-BF16",
                // 16 lanes, two multiply-adds each.
                flops_per_iter: (CHAINS * 16 * 2 * 2) as f64,
                // SAFETY: the unit is AVX512-BF16 only where the CPU has it.
                run: |n| unsafe { x86::avx512_bf16(n) },
            },
            Unit::Emulated => return None,
        };
        Some(measure_chains(&chains, threads, seconds))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (unit, threads, seconds);
        None
    }
}

fn measure_chains(chains: &Chains, threads: usize, seconds: f64) -> Peak {
    // A short calibration on this thread sizes the timed run.
    let probe = 20_000u64;
    let per_iter = std::thread::scope(|s| {
        s.spawn(|| {
            let t = Instant::now();
            std::hint::black_box((chains.run)(probe));
            t.elapsed().as_secs_f64() / probe as f64
        })
        .join()
        .expect("a multiply-add loop does not panic")
    });
    let iters = ((seconds / per_iter.max(1e-12)) as u64).max(probe);
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    let times: Vec<f64> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    std::hint::black_box((chains.run)(iters));
                    t.elapsed().as_secs_f64()
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a multiply-add loop does not panic"))
            .collect()
    });
    let flops = iters as f64 * chains.flops_per_iter;
    let slowest = times.iter().copied().fold(0.0, f64::max);
    Peak {
        gflops: threads as f64 * flops / slowest / 1e9,
        per_core: flops / slowest / 1e9,
        threads,
        isa: chains.isa,
    }
}

/// The widest FMA loop this CPU runs.
fn f32_chains() -> Chains {
    let chains = |isa, lanes: usize, run| Chains {
        isa,
        flops_per_iter: 2.0 * (CHAINS * lanes) as f64,
        run,
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512.
            return chains("AVX-512", 16, |n| unsafe { x86::avx512(n) });
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA.
            return chains("AVX2+FMA", 8, |n| unsafe { x86::avx2(n) });
        }
    }
    chains("scalar", 1, scalar)
}

fn scalar(iters: u64) -> f32 {
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
        sum512(&acc)
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    pub fn avx512_bf16(iters: u64) -> f32 {
        // 0.5 in every bf16 lane. SAFETY: __m512bh and __m512i are both 512 bits.
        let half: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi16(0x3f00)) };
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..iters {
            for r in &mut acc {
                *r = _mm512_dpbf16_ps(*r, half, half);
            }
        }
        sum512(&acc)
    }

    /// The sum of every lane of the chains (so that their work is kept).
    #[target_feature(enable = "avx512f")]
    fn sum512(acc: &[__m512; CHAINS]) -> f32 {
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
