//! The AVX-512 product of one 32-row panel of [`super::panels::Panels`] with a batch:
//! [`super::panel_avx2`]'s design at sixteen lanes.
//!
//! A panel's `[k][32]` step is two registers; a block of up to twelve batch columns keeps 24
//! accumulators, so each step issues two panel loads and twelve broadcasts for 24
//! multiply-adds, and a depth block of `KC` steps of the panel (16 KB) stays in L1 while the
//! batch's column groups stream past it, read in place ([`Batch`]). A short last panel is
//! stored through masks. The `gemm` crate, on 64-row panels, packs the batch on every call.
//! Measured by `examples/panel_vs_crate.rs` on an Intel Xeon (Emerald Rapids, two cores; peak
//! ~350 GFLOP/s), each product alternated with the crate's in one process: at batch 32,
//! 1.00–1.21x over the forward and backward recurrent products at H = 200–1152 (219–302
//! GFLOP/s); at batch 64, 1.00–1.22x (190–306). On a Zen 4 (512-bit FMAs run as two halves;
//! peak ~234 GFLOP/s): 0.87–1.03x at batch 32 (147–219 GFLOP/s), 0.95–1.16x at batch 64
//! (149–220); in alternated P1, P2 and classifier steps 0.96–1.11x (most 1.00–1.05x), so it
//! is kept there too.
//! `AWD_PANELS=gemm` keeps the crate, for comparing.

use std::arch::x86_64::*;

/// Rows of a panel: two sixteen-lane registers.
pub const ROWS: usize = 32;
/// Steps of depth a block: the panel's `[KC][32]` slice, 16 KB, stays in L1 beside the batch's
/// lines (256 steps, 32 KB, measured the same on the Xeon's 48 KB L1; Zen 4's is 32 KB).
const KC: usize = 128;
/// Columns a block: 24 accumulators, two panel registers and a broadcast of the 32.
pub(super) const NR: usize = 12;

/// The batch `x` `[n, k]` as it is (row-major): a block's broadcasts read its rows' steps in
/// place, twelve sequential streams. A copy packed `[k][12]` (as `panel_avx2` makes) cost a
/// fifth of the product's time at 32 × 2,048 and made it 0.5–0.9x the crate on the backward
/// products; read in place, 1.00–1.22x.
pub struct Batch<'a> {
    x: &'a [f32],
    n: usize,
    k: usize,
}

impl<'a> Batch<'a> {
    pub fn new(x: &'a [f32], n: usize, k: usize) -> Self {
        assert!(x.len() >= n * k);
        Self { x, n, k }
    }
}

/// `out[j·ldo + r] = Σ_kk panel[kk·32 + r] · x[j·k + kk]` for `r < m`, `j < n` (added to `out`
/// with `accumulate`): one `[32, k]` panel stored `[k][32]` (rows from `m` on zero) times the
/// batch `x` `[n, k]` (read in place), into a batch-major `out`. With `stream`, each depth block
/// prefetches the next one as [`super::panel_avx2::panel_product`] does.
///
/// # Safety
/// The CPU has AVX-512F; `out` is valid for writes at `j·ldo + r`, `j < n`, `r < m ≤ 32`, and
/// no other thread touches those elements during the call.
#[target_feature(enable = "avx512f")]
pub unsafe fn panel_product(
    panel: &[f32],
    x: &Batch,
    m: usize,
    out: *mut f32,
    ldo: usize,
    accumulate: bool,
    stream: bool,
) {
    let (n, k) = (x.n, x.k);
    assert!(panel.len() >= k * ROWS && m <= ROWS);
    let mask = |rows: usize| ((1u32 << rows.min(16)) - 1) as __mmask16;
    let masks = (mask(m), mask(m.saturating_sub(16)));
    let groups = n.div_ceil(NR);
    for k0 in (0..k).step_by(KC) {
        let depth = KC.min(k - k0);
        let a = panel[k0 * ROWS..].as_ptr();
        let (next, step) = super::panel_avx2::next_block(a, (ROWS, KC), (k0, depth, k), groups);
        for (g, (j0, cols)) in super::panel_avx2::groups(n, NR).enumerate() {
            let b = x.x[j0 * k + k0..].as_ptr();
            let c = out.wrapping_add(j0 * ldo);
            let add = accumulate || k0 > 0;
            let prefetch = stream.then(|| (next.wrapping_add(g * depth * step), step));
            // SAFETY: rows 0..m of columns j0..j0+cols at `c` are inside `out` (contract), the
            // stores masked to them; the batch's rows j0..j0+cols hold k steps each (checked by
            // `Batch::new`), the panel `[k][32]` (checked above).
            unsafe { columns(cols, a, (b, k), depth, (c, ldo, masks), add, prefetch) }
        }
    }
}

/// The result's columns: the first one's pointer, their stride, the masks of a column's two
/// sixteen-row halves.
type Out = (*mut f32, usize, (__mmask16, __mmask16));

/// [`block`] for `cols` ≤ 12 columns, chosen at run time.
///
/// # Safety
/// [`block`]'s, with `N = cols`.
#[inline(always)]
unsafe fn columns(
    cols: usize,
    a: *const f32,
    b: (*const f32, usize),
    depth: usize,
    out: Out,
    accumulate: bool,
    prefetch: Option<(*const u8, usize)>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let p = prefetch.unwrap_or((a.cast(), 0));
        macro_rules! run {
            ($($n:literal)*) => {
                match cols {
                    $($n => match prefetch.is_some() {
                        true => block::<$n, true>(a, b, depth, out, accumulate, p),
                        false => block::<$n, false>(a, b, depth, out, accumulate, p),
                    },)*
                    _ => unreachable!("at most {NR} columns a group"),
                }
            };
        }
        run!(1 2 3 4 5 6 7 8 9 10 11 12)
    }
}

/// `N` columns of 32 rows over `depth` steps: `a` at `[kk][32]`, column j's value at step kk
/// at `b.0 + j·b.1 + kk`, the result's column j at `out.0 + j·out.1` (its rows masked by `out.2`).
/// With `PREFETCH`, step kk also prefetches the line at `prefetch.0 + kk · prefetch.1` bytes.
///
/// # Safety
/// The CPU has AVX-512F (the caller is compiled with it); the reads and the masked rows of
/// each column lie inside their buffers.
#[inline(always)]
unsafe fn block<const N: usize, const PREFETCH: bool>(
    a: *const f32,
    (b, ldb): (*const f32, usize),
    depth: usize,
    (c, ldc, (lo_mask, hi_mask)): Out,
    accumulate: bool,
    prefetch: (*const u8, usize),
) {
    // SAFETY: the caller's bounds (see `panel_product`); called from an AVX-512F function.
    unsafe {
        for j in 0..N {
            _mm_prefetch::<_MM_HINT_T0>(c.add(j * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.wrapping_add(j * ldc + 31) as *const i8);
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; N];
        for kk in 0..depth {
            if PREFETCH {
                _mm_prefetch::<_MM_HINT_T0>(prefetch.0.wrapping_add(kk * prefetch.1) as *const i8);
            }
            let a0 = _mm512_loadu_ps(a.add(kk * ROWS));
            let a1 = _mm512_loadu_ps(a.add(kk * ROWS + 16));
            for (j, acc) in acc.iter_mut().enumerate() {
                let bj = _mm512_set1_ps(*b.add(j * ldb + kk));
                acc[0] = _mm512_fmadd_ps(a0, bj, acc[0]);
                acc[1] = _mm512_fmadd_ps(a1, bj, acc[1]);
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let (lo, hi) = (c.add(j * ldc), c.wrapping_add(j * ldc + 16));
            let (mut s0, mut s1) = (acc[0], acc[1]);
            if accumulate {
                s0 = _mm512_add_ps(_mm512_maskz_loadu_ps(lo_mask, lo), s0);
                s1 = _mm512_add_ps(_mm512_maskz_loadu_ps(hi_mask, hi), s1);
            }
            _mm512_mask_storeu_ps(lo, lo_mask, s0);
            _mm512_mask_storeu_ps(hi, hi_mask, s1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the naive sums, wherever the CPU has AVX-512F: short panels on both sides of
    /// sixteen rows and full ones, column counts around the block's twelve, depths around `KC`,
    /// written and accumulated, with and without the prefetch.
    #[test]
    fn panel_product_matches_the_naive_sums() {
        if !is_x86_feature_detected!("avx512f") {
            return;
        }
        for (m, n, k) in [
            (32, 1, 1),
            (32, 12, 127),
            (32, 13, 129),
            (32, 32, 300),
            (20, 7, 600),
            (16, 25, 40),
            (5, 64, 3),
        ] {
            let panel: Vec<f32> = (0..k * ROWS)
                .map(|i| match i % ROWS < m {
                    true => ((i * 37) % 11) as f32 - 5.0,
                    false => 0.0,
                })
                .collect();
            let x: Vec<f32> = (0..n * k).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            let ldo = m + 3;
            for (accumulate, stream) in [(false, false), (true, false), (false, true), (true, true)]
            {
                // Rows past m hold 7: a store there would show.
                let mut out: Vec<f32> = (0..n * ldo)
                    .map(|i| if i % ldo < m { 9.0 } else { 7.0 })
                    .collect();
                let shift = if accumulate { 9.0 } else { 0.0 };
                let want: Vec<f32> = (0..n * ldo)
                    .map(|i| match (i / ldo, i % ldo) {
                        (j, r) if r < m => {
                            let sum: f32 =
                                (0..k).map(|kk| panel[kk * ROWS + r] * x[j * k + kk]).sum();
                            sum + shift
                        }
                        _ => 7.0,
                    })
                    .collect();
                // SAFETY: checked the feature above; `out` holds n columns of `ldo` ≥ m rows.
                unsafe {
                    let x = Batch::new(&x, n, k);
                    panel_product(&panel, &x, m, out.as_mut_ptr(), ldo, accumulate, stream)
                };
                assert_eq!(
                    out, want,
                    "m {m} n {n} k {k} accumulate {accumulate} stream {stream}"
                );
            }
        }
    }
}
