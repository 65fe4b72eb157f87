//! Issue 16's first measurement: what AVX512-BF16 (`vdpbf16ps`, two bf16 products per f32 lane)
//! gives on the training step's GEMM shapes, against the f32 `gemm` crate path awd runs now.
//! A plain register-blocked bf16 kernel (6 rows x 32 columns of f32 accumulators, operands
//! rounded to bf16 to nearest-even, B packed in column panels of k-pairs, both cores over the
//! panels), not yet tuned; prints GFLOP/s of each and the bf16 result's error relative to the
//! f32 one, after each instruction's one-core peak (`vdpbf16ps` against f32 `vfmadd`): `cargo run
//! --release --example bf16_gemm`.
use awd::kernels::gemm::{Mat, product};
use rayon::prelude::*;

#[path = "common/timing.rs"]
mod timing;

/// f32 → bf16, round to nearest even (the conversion `vcvtne2ps2bf16` does).
fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// Rows of `a` `[m, k]` as k-pairs of bf16 (k padded to even): `[m, k/2]` u32s.
fn pack_a(a: &[f32], m: usize, k: usize) -> Vec<u32> {
    let kp = k.div_ceil(2);
    let mut out = vec![0u32; m * kp];
    for r in 0..m {
        for p in 0..kp {
            let lo = bf16(a[r * k + 2 * p]) as u32;
            let hi = if 2 * p + 1 < k {
                bf16(a[r * k + 2 * p + 1]) as u32
            } else {
                0
            };
            out[r * kp + p] = lo | (hi << 16);
        }
    }
    out
}

const NR: usize = 32;
const MR: usize = 6;

/// `b` `[k, n]` in panels of 32 columns: panel j holds, for each k-pair p, 32 u32s
/// (b[2p][j·32 + i], b[2p+1][j·32 + i]); columns past n are zeros.
fn pack_b(b: &[f32], k: usize, n: usize) -> Vec<u32> {
    let (kp, panels) = (k.div_ceil(2), n.div_ceil(NR));
    let mut out = vec![0u32; panels * kp * NR];
    for j in 0..panels {
        for p in 0..kp {
            for i in 0..NR {
                let c = j * NR + i;
                if c >= n {
                    continue;
                }
                let lo = bf16(b[2 * p * n + c]) as u32;
                let hi = if 2 * p + 1 < k {
                    bf16(b[(2 * p + 1) * n + c]) as u32
                } else {
                    0
                };
                out[(j * kp + p) * NR + i] = lo | (hi << 16);
            }
        }
    }
    out
}

/// `c` `[m, 32]` (row stride `ldc`) = rows of `a` (k-pairs) times one panel of `b`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn panel(c: &mut [f32], ldc: usize, a: &[u32], m: usize, kp: usize, b: &[u32]) {
    use std::arch::x86_64::*;
    let mut r0 = 0;
    while r0 < m {
        let rows = MR.min(m - r0);
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..kp {
            // SAFETY: a panel holds kp·32 u32s; __m512bh is 32 bf16 in a 512-bit register.
            let (b0, b1): (__m512bh, __m512bh) = unsafe {
                (
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        b.as_ptr().add(p * NR) as *const _,
                    )),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        b.as_ptr().add(p * NR + 16) as *const _,
                    )),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate().take(rows) {
                let a: __m512bh = unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                        a[(r0 + r) * kp + p] as i32,
                    ))
                };
                acc[0] = _mm512_dpbf16_ps(acc[0], a, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], a, b1);
            }
        }
        for (r, acc) in acc.iter().enumerate().take(rows) {
            unsafe {
                let dst = c.as_mut_ptr().add((r0 + r) * ldc);
                _mm512_storeu_ps(dst, acc[0]);
                _mm512_storeu_ps(dst.add(16), acc[1]);
            }
        }
        r0 += MR;
    }
}

/// `a` `[m, k]` · `b` `[k, n]` in bf16 with f32 accumulation; both cores over column panels.
/// `c` is `[m, panels·32]`.
fn gemm_bf16(c: &mut [f32], a: &[u32], m: usize, k: usize, b: &[u32], n: usize) {
    let (kp, panels) = (k.div_ceil(2), n.div_ceil(NR));
    let ldc = panels * NR;
    // Each task owns a strip of rows, all panels, so that writes never overlap.
    let rows_per = m.div_ceil(rayon::current_num_threads()).max(MR);
    c.par_chunks_mut(rows_per * ldc)
        .enumerate()
        .for_each(|(t, strip)| {
            let r0 = t * rows_per;
            let rows = strip.len() / ldc;
            let a = &a[r0 * kp..(r0 + rows) * kp];
            for j in 0..panels {
                // SAFETY: the CPU was checked for avx512bf16 in main.
                unsafe { panel(&mut strip[j * NR..], ldc, a, rows, kp, &b[j * kp * NR..]) };
            }
        });
}

/// One core's peak in GFLOP/s of `vdpbf16ps` (bf16 pairs into f32) or `vfmadd` (f32): 12
/// independent accumulators, no memory traffic.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn peak(bf16: bool) -> f64 {
    use std::arch::x86_64::*;
    let n = 20_000_000usize;
    let ones = _mm512_set1_epi32(0x3f80_3f80);
    let (a, b) = unsafe {
        (
            std::mem::transmute::<__m512i, __m512bh>(ones),
            std::mem::transmute::<__m512i, __m512bh>(ones),
        )
    };
    let x = _mm512_set1_ps(1.0);
    let mut acc = [_mm512_setzero_ps(); 12];
    let t = std::time::Instant::now();
    for _ in 0..n {
        for v in acc.iter_mut() {
            *v = if bf16 {
                _mm512_dpbf16_ps(*v, a, b)
            } else {
                _mm512_fmadd_ps(x, x, *v)
            };
        }
    }
    let s = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v));
    std::hint::black_box(_mm512_reduce_add_ps(s));
    let flops = if bf16 { 64.0 } else { 32.0 } * 12.0 * n as f64;
    flops / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    awd::alloc::tune();
    if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")) {
        println!("this CPU has no AVX512-BF16: nothing to measure");
        return;
    }
    // SAFETY: checked just above.
    let (pb, pf) = unsafe { (peak(true), peak(false)) };
    println!("one core's peak: vdpbf16ps {pb:.1} GFLOP/s, f32 vfmadd {pf:.1} GFLOP/s");
    // (m, k, n): the window's input projections of P2 and the classifier, the recurrent products.
    for (label, m, k, n) in [
        ("P2 input projection, layer 0", 2240, 400, 4608),
        ("P2 input projection, layer 1", 2240, 1152, 4608),
        ("P2 recurrent step (batch 32)", 32, 1152, 4608),
        ("classifier recurrent step (batch 64)", 64, 1152, 4608),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let dims = (m, n, k);
        let mut want = Vec::new();
        timing::time(&format!("{label}: f32 (gemm crate)"), dims, 5, &mut || {
            want = product(Mat::new(&a, m, k), Mat::new(&b, k, n), 1.0);
        });
        let (pa, pb) = (pack_a(&a, m, k), pack_b(&b, k, n));
        let ldc = n.div_ceil(NR) * NR;
        let mut got = vec![0f32; m * ldc];
        timing::time(
            &format!("{label}: bf16 (dpbf16, packed)"),
            dims,
            5,
            &mut || gemm_bf16(&mut got, &pa, m, k, &pb, n),
        );
        timing::time(
            &format!("{label}: bf16 with packing both"),
            dims,
            5,
            &mut || {
                let (pa, pb) = (pack_a(&a, m, k), pack_b(&b, k, n));
                gemm_bf16(&mut got, &pa, m, k, &pb, n)
            },
        );
        // bf16 keeps 8 bits of mantissa: each product is off by up to ~2^-8 relatively, and the
        // sum's error grows like sqrt(k) for these uncorrelated signs.
        let scale = (k as f64).sqrt();
        let worst = (0..m)
            .flat_map(|r| (0..n).map(move |c| (r, c)))
            .map(|(r, c)| (got[r * ldc + c] as f64 - want[r * n + c] as f64).abs())
            .fold(0.0, f64::max);
        println!(
            "{:56} max |error| {worst:.4} (sqrt(k)·2^-8 = {:.4})",
            "",
            scale / 256.0
        );
    }
}
