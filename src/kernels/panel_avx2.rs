//! The AVX2 + FMA product of one 16-row panel of [`super::panels::Panels`] with a batch.
//!
//! The `gemm` crate repacks a panel on every call where the batch is over 48 columns (the
//! classifier's 64) and reads taller panels one 16-row block at a time; here the panel is
//! already in the microkernel's layout (`[k][16]`), so nothing is packed. A depth block of
//! `KC` steps of the panel (16 KB) stays in L1 while the batch's column groups, packed once a
//! product ([`Batch`]), stream past it from L2. Measured by `examples/panel_gemm.rs` run
//! alternately as it is and with `AWD_SIMD=portable` (the `gemm` crate on 32-row panels): on a
//! Zen 3 (AVX2, no AVX-512), the medians of six paired runs 1.04–1.37x on the forward and
//! backward recurrent products at H = 200, 400, 512 and 1152, batch 32 and 64 (best 122–170
//! GFLOP/s against 111–153), before the batch was packed in even groups (a further 1.0–1.12x,
//! medians of six) and a weight streamed from memory prefetched (see [`panel_product`]).

use std::arch::x86_64::*;

/// Rows of a panel: two eight-lane registers.
pub const ROWS: usize = 16;
/// Steps of depth a block: the panel's `[KC][16]` slice, 16 KB, fits L1 beside the columns.
const KC: usize = 256;
/// Columns a block: 12 accumulators, two panel registers and a broadcast of the 16.
const NR: usize = 6;

/// The batch `x` `[n, k]` laid out for [`panel_product`]: its columns (the batch's rows) in
/// groups of at most six, as even as possible (32: 5, 5, 6, 5, 5, 6; a narrow last group would
/// run fewer multiply-add chains than the FMA units hide), each group `[k][6]`, so that a
/// block's broadcasts read one cache line every few steps instead of six rows `k` apart.
pub struct Batch {
    data: Vec<f32>,
    n: usize,
    k: usize,
}

impl Batch {
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack(x: &[f32], n: usize, k: usize) -> Self {
        assert!(x.len() >= n * k);
        let mut data = vec![0.0f32; n.div_ceil(NR) * NR * k];
        for ((j0, cols), group) in groups(n, NR).zip(data.chunks_exact_mut(NR * k)) {
            let rows: [&[f32]; NR] = std::array::from_fn(|j| match j < cols {
                true => &x[(j0 + j) * k..][..k],
                false => &[][..],
            });
            // SAFETY: the CPU has AVX2 (this fn's contract).
            unsafe { super::gemm_avx2::pack_rows(&rows, 1.0, group) };
        }
        Self { data, n, k }
    }
}

/// `(first column, columns)` of each group of at most `nr` of a batch of `n`.
pub(super) fn groups(n: usize, nr: usize) -> impl Iterator<Item = (usize, usize)> {
    let g = n.div_ceil(nr);
    (0..g).map(move |i| (i * n / g, (i + 1) * n / g - i * n / g))
}

/// `out[j·ldo + r] = Σ_kk panel[kk·16 + r] · x[j·k + kk]` for `r < m`, `j < n` (added to `out`
/// with `accumulate`): one `[16, k]` panel stored `[k][16]` (rows from `m` on zero) times the
/// batch `x` `[n, k]` (packed), into a batch-major `out`.
///
/// With `stream` (a weight too large to stay in cache between calls), each depth block also
/// prefetches the next one (or the next panel's first), a little at every step of every
/// group: the first group would otherwise wait on memory for the whole block at once and the
/// others on nothing. Measured by `examples/panel_gemm.rs` on a Zen 3 at H = 1152 (21 MB),
/// alternated with the prefetch off: 1.17x and 1.22x (medians of ten).
///
/// # Safety
/// The CPU has AVX2 and FMA; `out` is valid for writes at `j·ldo + r`, `j < n`, `r < m ≤ 16`,
/// and no other thread touches those elements during the call.
#[target_feature(enable = "avx2,fma")]
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
    if m < ROWS {
        // A short last panel: whole columns into a scratch block, then its m rows.
        let mut block = vec![0.0f32; n * ROWS];
        // SAFETY: `block` holds n columns of 16; the CPU has the features (this fn's contract).
        unsafe { panel_product(panel, x, ROWS, block.as_mut_ptr(), ROWS, false, stream) };
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
        let (next, step) = next_block(a, (ROWS, KC), (k0, depth, k), n.div_ceil(NR));
        for (g, (j0, cols)) in groups(n, NR).enumerate() {
            let b = x.data[(g * k + k0) * NR..].as_ptr();
            let c = out.wrapping_add(j0 * ldo);
            let add = accumulate || k0 > 0;
            let prefetch = stream.then(|| (next.wrapping_add(g * depth * step), step));
            // SAFETY: rows 0..16 of columns j0..j0+cols at `c` are inside `out` (contract); the
            // group holds `[k][6]` steps of its columns, the panel `[k][16]` (checked above).
            unsafe { columns(cols, a, b, (1, NR), depth, c, ldo, add, prefetch) }
        }
    }
}

/// Where the depth block after the one at `a` (steps `k0..k0 + depth` of `k` in a panel of
/// `rows`, blocks of `kc` steps) starts, or the next panel's first block after the last one,
/// and how many of its bytes to prefetch at each step of each of `groups` column groups: its
/// lines spread evenly over the block's steps.
pub(super) fn next_block(
    a: *const f32,
    (rows, kc): (usize, usize),
    (k0, depth, k): (usize, usize, usize),
    groups: usize,
) -> (*const u8, usize) {
    let next_depth = match k0 + kc < k {
        true => kc.min(k - k0 - kc),
        false => kc.min(k),
    };
    let step = (next_depth * rows * 4).div_ceil(groups * depth);
    (a.wrapping_add(depth * rows) as *const u8, step)
}

/// [`block`] for `cols` ≤ 6 columns, chosen at run time; with `prefetch`, one line of it a
/// step (see [`block`]).
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
    prefetch: Option<(*const u8, usize)>,
) {
    // SAFETY: the caller's contract.
    unsafe {
        // Without a prefetch the block's pointer is never read.
        let p = prefetch.unwrap_or((a.cast(), 0));
        macro_rules! run {
            ($n:literal) => {
                match prefetch.is_some() {
                    true => block::<$n, true>(a, b, strides, depth, c, ldc, accumulate, p),
                    false => block::<$n, false>(a, b, strides, depth, c, ldc, accumulate, p),
                }
            };
        }
        match cols {
            6 => run!(6),
            5 => run!(5),
            4 => run!(4),
            3 => run!(3),
            2 => run!(2),
            _ => run!(1),
        }
    }
}

/// `N` columns of 16 rows over `depth` steps: `a` at `[kk][16]`, the broadcast value of column
/// j at step kk at `b + j·sj + kk·sk` (`strides = (sj, sk)`), the result's column j at
/// `c + j·ldc`. With `PREFETCH`, step kk also prefetches the line at `prefetch.0 + kk ·
/// prefetch.1` bytes (any address: a prefetch never faults).
///
/// # Safety
/// The CPU has AVX2 and FMA (the caller is compiled with them); the reads and the 16 values
/// of each column at `c` lie inside their buffers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<const N: usize, const PREFETCH: bool>(
    a: *const f32,
    b: *const f32,
    (sj, sk): (usize, usize),
    depth: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    prefetch: (*const u8, usize),
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
            if PREFETCH {
                _mm_prefetch::<_MM_HINT_T0>(prefetch.0.wrapping_add(kk * prefetch.1) as *const i8);
            }
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
    /// panels' choice on this CPU): short and full panels, column counts around the block's six
    /// (in even groups), depths around `KC`, written and accumulated, with and without the
    /// prefetch.
    #[test]
    fn panel_product_matches_the_naive_sums() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        for (m, n, k) in [
            (16, 1, 1),
            (16, 6, 255),
            (16, 13, 257),
            (16, 32, 300),
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
            for (accumulate, stream) in [(false, false), (true, false), (false, true), (true, true)]
            {
                let mut out: Vec<f32> = (0..n * ldo)
                    .map(|i| if i % ldo < m { 9.0 } else { 0.0 })
                    .collect();
                // SAFETY: checked the features above; `out` holds n columns of `ldo` ≥ m rows.
                unsafe {
                    let x = Batch::pack(&x, n, k);
                    panel_product(&panel, &x, m, out.as_mut_ptr(), ldo, accumulate, stream)
                };
                let shift = if accumulate { 9.0 } else { 0.0 };
                let want: Vec<f32> = want
                    .iter()
                    .enumerate()
                    .map(|(i, w)| if i % ldo < m { w + shift } else { 0.0 })
                    .collect();
                assert_eq!(
                    out, want,
                    "m {m} n {n} k {k} accumulate {accumulate} stream {stream}"
                );
            }
        }
    }
}
