//! The AVX2 + FMA product of one 16-row panel of [`super::panels::Panels`] with a batch.
//!
//! The `gemm` crate repacks a panel on every call where the batch is over 48 columns (the
//! classifier's 64) and reads taller panels one 16-row block at a time; here the panel is
//! already in the microkernel's layout (`[k][16]`), so nothing is packed. A depth block of
//! `KC` steps of the panel (16 KB) stays in L1 while the batch's column blocks stream past it
//! from L2. Measured by `examples/panel_gemm.rs` run alternately as it is and with
//! `AWD_SIMD=portable` (the `gemm` crate on 32-row panels): on a Zen 3 (AVX2, no AVX-512), the
//! medians of six paired runs 1.04–1.37x on the forward and backward recurrent products at
//! H = 200, 400, 512 and 1152, batch 32 and 64 (best 122–170 GFLOP/s against 111–153).

use std::arch::x86_64::*;

/// Rows of a panel: two eight-lane registers.
pub const ROWS: usize = 16;
/// Steps of depth a block: the panel's `[KC][16]` slice, 16 KB, fits L1 beside the columns.
const KC: usize = 256;
/// Columns a block: 12 accumulators, two panel registers and a broadcast of the 16.
const NR: usize = 6;

/// `out[j·ldo + r] = Σ_kk panel[kk·16 + r] · x[j·k + kk]` for `r < m`, `j < n` (added to `out`
/// with `accumulate`): one `[16, k]` panel stored `[k][16]` (rows from `m` on zero) times the
/// row-major batch `x` `[n, k]`, into a batch-major `out`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `out` is valid for writes at `j·ldo + r`, `j < n`, `r < m ≤ 16`,
/// and no other thread touches those elements during the call.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn panel_product(
    panel: &[f32],
    x: &[f32],
    (m, n, k): (usize, usize, usize),
    out: *mut f32,
    ldo: usize,
    accumulate: bool,
) {
    assert!(panel.len() >= k * ROWS && x.len() >= n * k && m <= ROWS);
    if m < ROWS {
        // A short last panel: whole columns into a scratch block, then its m rows.
        let mut block = vec![0.0f32; n * ROWS];
        // SAFETY: `block` holds n columns of 16; the CPU has the features (this fn's contract).
        unsafe { panel_product(panel, x, (ROWS, n, k), block.as_mut_ptr(), ROWS, false) };
        for (j, col) in block.chunks_exact(ROWS).enumerate() {
            for (r, &v) in col[..m].iter().enumerate() {
                // SAFETY: j < n, r < m: inside `out` by the contract.
                let o = unsafe { &mut *out.add(j * ldo + r) };
                *o = if accumulate { *o + v } else { v };
            }
        }
        return;
    }
    for k0 in (0..k).step_by(KC) {
        let depth = KC.min(k - k0);
        let a = panel[k0 * ROWS..].as_ptr();
        for j in (0..n).step_by(NR) {
            let b = x[j * k + k0..].as_ptr();
            let c = out.wrapping_add(j * ldo);
            let add = accumulate || k0 > 0;
            // SAFETY: rows 0..16 of columns j..j+cols at `c` are inside `out` (contract); the
            // panel and batch reads stay inside the slices (checked above).
            unsafe { columns(NR.min(n - j), a, b, (k, 1), depth, c, ldo, add) }
        }
    }
}

/// [`block`] for `cols` ≤ 6 columns, chosen at run time.
///
/// # Safety
/// [`block`]'s, with `N = cols`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn columns(
    cols: usize,
    a: *const f32,
    b: *const f32,
    strides: (usize, usize),
    depth: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller's contract.
    unsafe {
        match cols {
            6 => block::<6>(a, b, strides, depth, c, ldc, accumulate),
            5 => block::<5>(a, b, strides, depth, c, ldc, accumulate),
            4 => block::<4>(a, b, strides, depth, c, ldc, accumulate),
            3 => block::<3>(a, b, strides, depth, c, ldc, accumulate),
            2 => block::<2>(a, b, strides, depth, c, ldc, accumulate),
            _ => block::<1>(a, b, strides, depth, c, ldc, accumulate),
        }
    }
}

/// `N` columns of 16 rows over `depth` steps: `a` at `[kk][16]`, the broadcast value of column
/// j at step kk at `b + j·sj + kk·sk` (`strides = (sj, sk)`), the result's column j at
/// `c + j·ldc`.
///
/// # Safety
/// The CPU has AVX2 and FMA (the caller is compiled with them); the reads and the 16 values
/// of each column at `c` lie inside their buffers.
#[inline(always)]
unsafe fn block<const N: usize>(
    a: *const f32,
    b: *const f32,
    (sj, sk): (usize, usize),
    depth: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: the caller's bounds (see `panel_product`); called from an AVX2 + FMA function.
    unsafe {
        // The result's rows are read (or written) only after the sums: fetched now, their
        // cache misses (a GEMM's result block outgrows L2) overlap the sums instead of
        // stalling the first multiply-adds.
        for j in 0..N {
            _mm_prefetch::<_MM_HINT_T0>(c.add(j * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(j * ldc + 15) as *const i8);
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        for kk in 0..depth {
            let a0 = _mm256_loadu_ps(a.add(kk * ROWS));
            let a1 = _mm256_loadu_ps(a.add(kk * ROWS + 8));
            for (j, acc) in acc.iter_mut().enumerate() {
                let bj = _mm256_broadcast_ss(&*b.add(j * sj + kk * sk));
                acc[0] = _mm256_fmadd_ps(a0, bj, acc[0]);
                acc[1] = _mm256_fmadd_ps(a1, bj, acc[1]);
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let (lo, hi) = (c.add(j * ldc), c.add(j * ldc + 8));
            match accumulate {
                true => {
                    _mm256_storeu_ps(lo, _mm256_add_ps(_mm256_loadu_ps(lo), acc[0]));
                    _mm256_storeu_ps(hi, _mm256_add_ps(_mm256_loadu_ps(hi), acc[1]));
                }
                false => {
                    _mm256_storeu_ps(lo, acc[0]);
                    _mm256_storeu_ps(hi, acc[1]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the naive sums, wherever the CPU has AVX2 + FMA (whatever `AWD_SIMD` and the
    /// panels' choice on this CPU): short and full panels, column counts around the block's six,
    /// depths around `KC`, written and accumulated.
    #[test]
    fn panel_product_matches_the_naive_sums() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        for (m, n, k) in [
            (16, 1, 1),
            (16, 6, 255),
            (16, 13, 257),
            (5, 7, 600),
            (1, 64, 3),
        ] {
            let panel: Vec<f32> = (0..k * ROWS)
                .map(|i| {
                    if i % ROWS < m {
                        ((i * 37) % 11) as f32 - 5.0
                    } else {
                        0.0
                    }
                })
                .collect();
            let x: Vec<f32> = (0..n * k).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            let ldo = m + 3;
            let want: Vec<f32> = (0..n * ldo)
                .map(|i| match (i / ldo, i % ldo) {
                    (j, r) if r < m => (0..k).map(|kk| panel[kk * ROWS + r] * x[j * k + kk]).sum(),
                    _ => 0.0,
                })
                .collect();
            for accumulate in [false, true] {
                let mut out: Vec<f32> = (0..n * ldo)
                    .map(|i| if i % ldo < m { 9.0 } else { 0.0 })
                    .collect();
                // SAFETY: checked the features above; `out` holds n columns of `ldo` ≥ m rows.
                unsafe { panel_product(&panel, &x, (m, n, k), out.as_mut_ptr(), ldo, accumulate) };
                let shift = if accumulate { 9.0 } else { 0.0 };
                let want: Vec<f32> = want
                    .iter()
                    .enumerate()
                    .map(|(i, w)| if i % ldo < m { w + shift } else { 0.0 })
                    .collect();
                assert_eq!(out, want, "m {m} n {n} k {k} accumulate {accumulate}");
            }
        }
    }
}
