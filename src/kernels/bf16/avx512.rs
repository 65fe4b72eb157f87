//! AVX512-BF16: the same 32 × 32 block as [`super::amx`], from the same tiles, with
//! `vdpbf16ps` (16 lanes, each summing two bf16 products into f32): 8 rows × 32 columns of
//! accumulators at a time, the A pair broadcast, the B row loaded.

use std::arch::x86_64::*;

use super::pack::TILE;

/// Whether the CPU has AVX512-BF16.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
}

/// See [`super::amx::Tiles::block`].
///
/// # Safety
/// The CPU must have AVX512-BF16 ([`available`]).
#[target_feature(enable = "avx512f,avx512bf16")]
pub unsafe fn block(a: [&[u16]; 2], b: [&[u16]; 2], chunks: usize, out: &mut [f32; 1024]) {
    for s in a.iter().chain(&b) {
        assert!(s.len() >= chunks * TILE);
    }
    for group in 0..4 {
        // Rows 8·group .. 8·group + 8 of the block: strip group / 2, tile rows from (group % 2)·8.
        let strip = a[group / 2].as_ptr() as *const u32;
        let r0 = (group % 2) * 8;
        let mut acc = [[_mm512_setzero_ps(); 2]; 8];
        for k in 0..chunks {
            let at = k * TILE;
            for p in 0..16 {
                // SAFETY: a tile row is 16 u32s at `at + 32p` bf16s, inside the strips (asserted);
                // __m512bh is 32 bf16s in a 512-bit register.
                unsafe {
                    let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                        b[0].as_ptr().add(at + 32 * p) as *const _,
                    ));
                    let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(
                        b[1].as_ptr().add(at + 32 * p) as *const _,
                    ));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let pair = *strip.add(at / 2 + (r0 + r) * 16 + p);
                        let a: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair as i32));
                        acc[0] = _mm512_dpbf16_ps(acc[0], a, b0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], a, b1);
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let row = group * 8 + r;
            // SAFETY: row < 32, so both 16-float stores stay inside `out`.
            unsafe {
                _mm512_storeu_ps(out.as_mut_ptr().add(row * 32), acc[0]);
                _mm512_storeu_ps(out.as_mut_ptr().add(row * 32 + 16), acc[1]);
            }
        }
    }
}
