//! A blocked f32 GEMM on AVX2 + FMA (CPUs without AVX-512) around the panels' 16-wide block
//! ([`super::panel_avx2`]): the window products of a step (input projections, the weight
//! gradients, the decoder's logits and gradients), in BLIS's layout for a 16 x 6 register block.
//!
//! `C[m, n] (+)= s · A[m, k] · B[k, n]`, `C` row-major. For each pass over up to `NC` columns
//! (as many as keep 8 MB of `B`), `B` is packed once over the whole depth into strips of 16
//! columns and `KC` steps (`[KC][16]`, 16 KB: the block's two vector loads a step, kept in L1).
//! Tasks are row blocks of whole panels (and column groups where the rows are few), a multiple
//! of the threads in number, on rayon's pool; each walks the depth, packing its `KC` steps of `A` into
//! panels of 6 rows (`[KC][6]`, the block's broadcasts, kept in L2) and sweeping them under its
//! strips. On a Zen 3 the `gemm` crate reached 45–67% of the FMA peak on these shapes with
//! both cores busy; `examples/blocked_gemm.rs` compares the two shape by shape.

use std::cell::RefCell;

use rayon::prelude::*;

use super::gemm::Mat;
use super::op::SharedOut;
use super::panel_avx2::{self, ROWS as NR};
use super::transpose::avx2::transpose8;
use super::transpose::transpose_into;

/// Rows of `C` a register block (its broadcasts).
const MR: usize = 6;
/// Steps of depth a block: a strip of `B` is `KC x 16` (16 KB).
const KC: usize = 256;
/// Rows of `A` a task packs: `MC x KC` (144 KB) stays in a 512 KB L2.
const MC: usize = 144;
/// Columns of `B` packed at once, at most.
const NC: usize = 4096;
/// Values of `B` packed at once (over the whole depth), at most: 8 MB, in L3.
const B_FLOATS: usize = 1 << 21;

thread_local! {
    /// A task's packed block of `A`, reused across calls.
    static PACKED_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`gemm()`] is worth its packing here: the `gemm` crate multiplies thin products
/// (a few rows or columns) without packing both operands.
pub fn suits(m: usize, n: usize, k: usize) -> bool {
    m >= 2 * MR && n >= NR && k >= 8
}

/// `c = accumulate·c + scale · a · b`, `c` row-major `a.rows x b.cols`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `c` holds `a.rows · b.cols` values, initialized if `accumulate`,
/// and does not overlap `a` or `b`; `a.cols == b.rows > 0`.
pub unsafe fn gemm(c: *mut f32, a: Mat<'_>, b: Mat<'_>, accumulate: bool, scale: f32) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert!(k == b.rows && k > 0);
    if m == 0 || n == 0 {
        return;
    }
    let parallel = m * n * k >= 1 << 18;
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };
    let mut packed_b = Vec::new();
    let c = SharedOut(c);
    // Row blocks of whole panels, as even as the panels allow and a multiple of the threads
    // (a last, short block left a thread idle), and as many column groups as keep every
    // thread busy.
    let panels = m.div_ceil(MR);
    let row_blocks = panels
        .div_ceil(MC / MR)
        .next_multiple_of(threads)
        .min(panels);
    // Columns a pass: `B` packed over the whole depth, at most `B_FLOATS`.
    let ncb = (B_FLOATS / k / NR * NR).clamp(NR, NC);
    for jc in (0..n).step_by(ncb) {
        let nc = ncb.min(n - jc);
        let strips = nc.div_ceil(NR);
        packed_b.resize(strips * k * NR, 0.0);
        pack_b(b, (jc, nc), &mut packed_b, parallel);
        let groups = (2 * threads).div_ceil(row_blocks).min(strips);
        let per_group = strips.div_ceil(groups);
        let task = |t: usize| {
            let (rb, g) = (t / groups, t % groups);
            let ic = rb * panels / row_blocks * MR;
            let rows = (ic, ((rb + 1) * panels / row_blocks * MR).min(m) - ic);
            let s = (g * per_group)..((g + 1) * per_group).min(strips);
            for pc in (0..k).step_by(KC) {
                let block = Block {
                    rows,
                    cols: (jc, nc),
                    depth: (pc, KC.min(k - pc)),
                };
                let strips_b = &packed_b[pc * strips * NR..][..strips * block.depth.1 * NR];
                PACKED_A.with_borrow_mut(|packed_a| {
                    block.pack_a(a, scale, packed_a);
                    // SAFETY: the caller's contract for `c`; this task writes the rows of
                    // its block in the columns of its strips alone.
                    let add = accumulate || pc > 0;
                    unsafe { block.multiply(packed_a, strips_b, s.clone(), c, n, add) }
                });
            }
        };
        if parallel {
            (0..row_blocks * groups).into_par_iter().for_each(task);
        } else {
            (0..row_blocks * groups).for_each(task);
        }
    }
}

/// Packs `B[.., jc..jc + nc]` into depth blocks of strips, `[k / KC][strips][kc][16]`, zero
/// past column `nc`.
fn pack_b(b: Mat<'_>, (jc, nc): (usize, usize), out: &mut [f32], par: bool) {
    let strips = nc.div_ceil(NR);
    let mut jobs = Vec::with_capacity(b.rows.div_ceil(KC) * strips);
    let mut rest = out;
    for pc in (0..b.rows).step_by(KC) {
        let kc = KC.min(b.rows - pc);
        for s in 0..strips {
            let (dst, tail) = rest.split_at_mut(kc * NR);
            jobs.push((pc, kc, s, dst));
            rest = tail;
        }
    }
    let strip = |(pc, kc, s, dst): (usize, usize, usize, &mut [f32])| {
        let j0 = jc + s * NR;
        let w = NR.min(jc + nc - j0);
        if b.transposed {
            // Stored `[n][k]`: a transpose of `w` rows of the storage.
            transpose_into(&b.data[j0 * b.rows + pc..], w, kc, b.rows, dst, NR);
            if w < NR {
                dst.chunks_exact_mut(NR).for_each(|row| row[w..].fill(0.0));
            }
        } else {
            for (kk, row) in dst.chunks_exact_mut(NR).enumerate() {
                let src = &b.data[(pc + kk) * b.cols + j0..][..w];
                row[..w].copy_from_slice(src);
                row[w..].fill(0.0);
            }
        }
    };
    if par {
        jobs.into_par_iter().for_each(strip);
    } else {
        jobs.into_iter().for_each(strip);
    }
}

/// Writes `scale ·` six rows (an empty or short one reads as zeros past its end) into `panel`
/// `[kc][6]`: eight steps at a time through a register transpose where the rows are all as long
/// (or empty), the last steps one value at a time.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_rows(rows: &[&[f32]; MR], scale: f32, panel: &mut [f32]) {
    // SAFETY: the CPU has AVX2 (this fn's contract).
    let done = unsafe { pack_rows_transposed(rows, scale, panel) };
    for (kk, dst) in panel.chunks_exact_mut(MR).enumerate().skip(done) {
        for (d, row) in dst.iter_mut().zip(rows) {
            *d = row.get(kk).map_or(0.0, |v| v * scale);
        }
    }
}

/// [`pack_rows`]'s eight-step groups; returns the steps written (those of the last group that
/// would store past `panel`, and all when the rows differ in length, are left to the caller).
#[target_feature(enable = "avx2")]
unsafe fn pack_rows_transposed(rows: &[&[f32]; MR], scale: f32, panel: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let kc = rows[0].len();
    if rows.iter().any(|r| !r.is_empty() && r.len() != kc) {
        return 0;
    }
    let s = _mm256_set1_ps(scale);
    let mut kk = 0;
    // Each column of eight is stored whole at its six-value slot, the next slot's store
    // overwriting the two extra values: the last store reaches 8 values past its slot.
    while kk + 8 <= kc && (kk + 7) * MR + 8 <= panel.len() {
        let r: [__m256; 8] = std::array::from_fn(|i| match i < MR && !rows[i].is_empty() {
            // SAFETY: kk + 8 <= kc, the row's length.
            true => _mm256_mul_ps(s, unsafe { _mm256_loadu_ps(rows[i].as_ptr().add(kk)) }),
            false => _mm256_setzero_ps(),
        });
        for (c, col) in transpose8(r).into_iter().enumerate() {
            // SAFETY: (kk + c) * 6 + 8 <= (kk + 7) * 6 + 8 <= panel.len().
            unsafe { _mm256_storeu_ps(panel.as_mut_ptr().add((kk + c) * MR), col) };
        }
        kk += 8;
    }
    kk
}

/// Writes `scale ·` six adjacent values a step (steps `ld` apart in `src`) into `panel`
/// `[kc][6]` as eight-value loads and stores, each store's two extra values overwritten by the
/// next; returns the steps written (the rest, where a load or store would pass the end of
/// `src` or `panel`, are left to the caller).
#[target_feature(enable = "avx2")]
unsafe fn pack_steps(src: &[f32], ld: usize, scale: f32, panel: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let s = _mm256_set1_ps(scale);
    let mut kk = 0;
    while kk * MR + 8 <= panel.len() && kk * ld + 8 <= src.len() {
        // SAFETY: the loop's bounds.
        unsafe {
            let v = _mm256_mul_ps(s, _mm256_loadu_ps(src.as_ptr().add(kk * ld)));
            _mm256_storeu_ps(panel.as_mut_ptr().add(kk * MR), v);
        }
        kk += 1;
    }
    kk
}

/// One task's share of a depth block: `(first, count)` of its rows, columns and depth.
struct Block {
    rows: (usize, usize),
    cols: (usize, usize),
    depth: (usize, usize),
}

impl Block {
    /// Packs `scale · A[rows, depth]` into panels `[kc][6]`, zero past the last row.
    fn pack_a(&self, a: Mat<'_>, scale: f32, out: &mut Vec<f32>) {
        let ((i0, mc), (pc, kc)) = (self.rows, self.depth);
        out.resize(mc.div_ceil(MR) * kc * MR, 0.0);
        for (p, panel) in out.chunks_exact_mut(kc * MR).enumerate() {
            let r0 = i0 + p * MR;
            let r = MR.min(i0 + mc - r0);
            if a.transposed {
                // Stored `[k][m]`: each step's `r` rows are adjacent.
                let src = &a.data[pc * a.rows + r0..];
                // SAFETY: `gemm`'s contract: the CPU has AVX2.
                let done = match r == MR {
                    true => unsafe { pack_steps(src, a.rows, scale, panel) },
                    false => 0,
                };
                for (kk, dst) in panel.chunks_exact_mut(MR).enumerate().skip(done) {
                    let src = &src[kk * a.rows..][..r];
                    dst[..r]
                        .iter_mut()
                        .zip(src)
                        .for_each(|(d, s)| *d = s * scale);
                    dst[r..].fill(0.0);
                }
            } else {
                let rows: [&[f32]; MR] = std::array::from_fn(|rr| match rr < r {
                    true => &a.data[(r0 + rr) * a.cols + pc..][..kc],
                    false => &[][..],
                });
                // SAFETY: `gemm`'s contract: the CPU has AVX2.
                unsafe { pack_rows(&rows, scale, panel) };
            }
        }
    }

    /// `C[rows, strips' columns] (+)= packed A · packed B` (added with `add`).
    ///
    /// # Safety
    /// AVX2 and FMA; `c` holds the rows and columns of this block at row stride `ldc`, and no
    /// other thread touches them during the call.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn multiply(
        &self,
        packed_a: &[f32],
        packed_b: &[f32],
        strips: std::ops::Range<usize>,
        c: SharedOut,
        ldc: usize,
        add: bool,
    ) {
        let ((i0, mc), (jc, nc), (_, kc)) = (self.rows, self.cols, self.depth);
        let mut edge = [0.0f32; MR * NR];
        for s in strips {
            let strip = packed_b[s * kc * NR..][..kc * NR].as_ptr();
            let j0 = jc + s * NR;
            let w = NR.min(jc + nc - j0);
            for (p, panel) in packed_a.chunks_exact(kc * MR).enumerate() {
                let r0 = i0 + p * MR;
                let r = MR.min(i0 + mc - r0);
                let out = c.at(r0 * ldc + j0);
                // SAFETY: the strip and panel hold kc steps of 16 and 6; rows r0..r0 + r of
                // columns j0..j0 + 16 lie inside `c` where w = 16 (the contract).
                unsafe {
                    if w == NR {
                        panel_avx2::columns(
                            r,
                            strip,
                            panel.as_ptr(),
                            (1, MR),
                            kc,
                            out,
                            ldc,
                            add,
                            None,
                        );
                        continue;
                    }
                    // A last, narrower strip: through a register block's scratch.
                    let scratch = edge.as_mut_ptr();
                    panel_avx2::columns(
                        r,
                        strip,
                        panel.as_ptr(),
                        (1, MR),
                        kc,
                        scratch,
                        NR,
                        false,
                        None,
                    );
                    for (rr, row) in edge.chunks_exact(NR).take(r).enumerate() {
                        let dst = std::slice::from_raw_parts_mut(out.add(rr * ldc), w);
                        for (d, v) in dst.iter_mut().zip(row) {
                            *d = if add { *d + v } else { *v };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the naive sums (exact: small integers) wherever the CPU has AVX2 + FMA: both
    /// orientations of each operand, shapes around the blocks (6 rows, 16 columns, 256 steps,
    /// 144 rows a task) and scaled, written and accumulated.
    #[test]
    fn blocked_gemm_matches_the_naive_sums() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return;
        }
        for (m, n, k) in [
            (12, 16, 8),
            (13, 17, 257),
            (150, 40, 600),
            (300, 33, 70),
            (7, 300, 9),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            let at: Vec<f32> = (0..m * k).map(|i| a[(i % m) * k + i / m]).collect();
            let bt: Vec<f32> = (0..k * n).map(|i| b[(i % k) * n + i / k]).collect();
            let want: Vec<f32> = (0..m * n)
                .map(|i| {
                    (0..k)
                        .map(|kk| a[i / n * k + kk] * b[kk * n + i % n])
                        .sum::<f32>()
                        * 2.0
                })
                .collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let av = if ta {
                    Mat::t(&at, k, m)
                } else {
                    Mat::new(&a, m, k)
                };
                let bv = if tb {
                    Mat::t(&bt, n, k)
                } else {
                    Mat::new(&b, k, n)
                };
                for accumulate in [false, true] {
                    let mut c = vec![3.0f32; m * n];
                    // SAFETY: checked the features; `c` holds m x n values.
                    unsafe { gemm(c.as_mut_ptr(), av, bv, accumulate, 2.0) };
                    let shift = if accumulate { 3.0 } else { 0.0 };
                    let want: Vec<f32> = want.iter().map(|w| w + shift).collect();
                    assert_eq!(
                        c, want,
                        "{m}x{n}x{k} ta {ta} tb {tb} accumulate {accumulate}"
                    );
                }
            }
        }
    }
}
