//! A weight laid out once per window for the LSTM's per-step recurrent products.
//!
//! The `gemm` crate repacks a row-major left operand into column-major panels on every call: at
//! batch 32 the recurrent product `h · W_hhᵀ` runs once per timestep over the same weight, and
//! the repacking (21 MB at H = 1152) is a fifth of its time. [`Panels`] stores the weight in
//! that layout once, 32 or 64 rows a panel (below), each panel column-major, and multiplies
//! panel by panel, so the microkernel reads it as it is; the result is written (or added)
//! straight into a batch-major buffer such as the gates. Measured by `examples/panel_gemm.rs`:
//! 1.2x (forward) and 1.2–2.5x (backward) over the best plain orientation at H = 200, 512 and
//! 1152.
//!
//! With AVX-512 a panel is 32 rows and [`super::panel_avx512`] multiplies it (on an Intel Xeon,
//! `examples/panel_vs_crate.rs`: 1.00–1.22x the `gemm` crate on its 64-row panels, which are
//! what `AWD_PANELS=gemm` keeps). With AVX2 + FMA a panel is 16 rows and [`super::panel_avx2`]
//! multiplies it (`gemm` repacked the panel at batches over 48; on a Zen 3, paired runs:
//! 1.04–1.37x `gemm` on 32-row panels, themselves 1.0–1.3x 64-row ones). Elsewhere 32 rows
//! through `gemm`.

use rayon::prelude::*;

use super::op::SharedOut;
use super::transpose::transpose_into;
#[cfg(target_arch = "x86_64")]
use super::{panel_avx2, panel_avx512};

/// Panels at least this large (bytes), more than two cores' L2 holds, come from L3 or memory
/// on every product: [`panel_avx2`] prefetches them ahead. On a Zen 3 (512 KB L2 a core),
/// alternated with the prefetch off (medians of eight): 0.96-1.11x at H = 400, 512 and 640
/// (2.5-6.5 MB) at batch 32 and 64, 1.17-1.22x at H = 1152 (21 MB).
#[cfg(target_arch = "x86_64")]
const STREAM_BYTES: usize = 2 << 20;

/// How the panels are multiplied on this CPU, and their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// The `gemm` crate, on panels of at most two of its microkernel row blocks.
    Gemm(usize),
    /// [`panel_avx2`]'s microkernel, on 16-row panels.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// [`panel_avx512`]'s microkernel, on 32-row panels.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// On AVX-512, `AWD_PANELS=gemm` (for comparing the two) keeps the `gemm` crate.
    fn get() -> Self {
        use super::math::{Simd, simd};
        match simd() {
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 if std::env::var("AWD_PANELS").as_deref() != Ok("gemm") => Kernel::Avx512,
            Simd::Avx512 => Kernel::Gemm(64),
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => Kernel::Avx2,
            _ => Kernel::Gemm(32),
        }
    }

    fn rows(self) -> usize {
        match self {
            Kernel::Gemm(rows) => rows,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => panel_avx2::ROWS,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => panel_avx512::ROWS,
        }
    }
}

/// A `[rows, k]` matrix in panels of `panel` rows, each stored `[k][panel]` (zero-padded).
#[derive(Debug, Clone)]
pub struct Panels {
    rows: usize,
    k: usize,
    panel: usize,
    kernel: Kernel,
    data: Vec<f32>,
}

impl Panels {
    /// Zeroed panels, `fill(r0, n, width, panel)` writing rows `r0..r0 + n` into each (in
    /// parallel).
    fn build(rows: usize, k: usize, fill: impl Fn(usize, usize, usize, &mut [f32]) + Sync) -> Self {
        let kernel = Kernel::get();
        let width = kernel.rows();
        let mut data = vec![0.0f32; rows.div_ceil(width) * width * k];
        if k > 0 {
            data.par_chunks_mut(width * k)
                .enumerate()
                .for_each(|(p, panel)| fill(p * width, width.min(rows - p * width), width, panel));
        }
        Self {
            rows,
            k,
            panel: width,
            kernel,
            data,
        }
    }

    /// From a row-major `[rows, k]` matrix: each panel the transpose of its rows.
    pub fn pack(w: &[f32], rows: usize, k: usize) -> Self {
        assert!(w.len() >= rows * k);
        Self::build(rows, k, |r0, n, width, panel| {
            transpose_into(&w[r0 * k..], n, k, k, panel, width)
        })
    }

    /// The transpose of a row-major `[k, rows]` matrix, as a `[rows, k]` one.
    pub fn pack_transposed(w: &[f32], k: usize, rows: usize) -> Self {
        assert!(w.len() >= rows * k);
        Self::build(rows, k, |r0, n, width, panel| {
            for (kk, col) in panel.chunks_mut(width).enumerate() {
                col[..n].copy_from_slice(&w[kk * rows + r0..kk * rows + r0 + n]);
            }
        })
    }

    /// `out = x · selfᵀ` (or `out += …` with `accumulate`): `x` `[n, k]` and `out` `[n, rows]`,
    /// both row-major.
    pub fn mul_into(&self, out: &mut [f32], x: &[f32], n: usize, accumulate: bool) {
        let (rows, k, width) = (self.rows, self.k, self.panel);
        assert!(x.len() >= n * k && out.len() >= n * rows);
        if rows == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                out[..n * rows].fill(0.0);
            }
            return;
        }
        let dst = SharedOut(out.as_mut_ptr());
        // AVX2's microkernel reads the batch packed, once for every panel.
        #[cfg(target_arch = "x86_64")]
        let packed = match self.kernel {
            // SAFETY: `Kernel::Avx2` is chosen only where the CPU has AVX2 and FMA.
            Kernel::Avx2 => Some(unsafe { panel_avx2::Batch::pack(x, n, k) }),
            _ => None,
        };
        #[cfg(target_arch = "x86_64")]
        let stream = self.data.len() * 4 >= STREAM_BYTES;
        let panels = rows.div_ceil(width);
        // Fewer than eight panels a thread (the backward's H rows at H = 200: 7 panels) leave a
        // thread idle for a panel's time at the end: on AVX-512 each task then takes one
        // panel's product with one group of the batch's columns (the batch is read in place,
        // so a task's columns are just its rows of `x`).
        let span = match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 if panels < 8 * rayon::current_num_threads() => panel_avx512::NR,
            _ => n,
        };
        let parts = n.div_ceil(span);
        // Task `p · parts + q`: panel p with the batch's columns j0..j1 of group q.
        let task = |i: usize| {
            let (p, j0) = (i / parts, i % parts * span);
            let j1 = n.min(j0 + span);
            let r0 = p * width;
            let m = width.min(rows - r0);
            let data = &self.data[p * width * k..(p + 1) * width * k];
            let out = dst.at(j0 * rows + r0);
            // Each task writes `out[j * rows + r0 + r]` for r < m, j0 ≤ j < j1 ≤ n, inside `out`
            // (checked above), and no other task writes those elements.
            match self.kernel {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx2 => {
                    let x = packed.as_ref().expect("the batch is packed for AVX2");
                    // SAFETY: chosen only where the CPU has AVX2 and FMA; the task's elements.
                    unsafe { panel_avx2::panel_product(data, x, m, out, rows, accumulate, stream) }
                }
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512 => {
                    let x = panel_avx512::Batch::new(&x[j0 * k..j1 * k], j1 - j0, k);
                    // SAFETY: chosen only where the CPU has AVX-512F; the task's elements.
                    unsafe {
                        panel_avx512::panel_product(data, &x, m, out, rows, accumulate, stream)
                    }
                }
                // SAFETY: the left operand is the panel's `[k][width]` block (column stride
                // `width`, row stride 1) inside `data`; the right operand `xᵀ` (`k x n`, element
                // (kk, j) at `j * k + kk`) lies inside `x` (checked above); the task's elements.
                Kernel::Gemm(_) => unsafe {
                    gemm::gemm(
                        m,
                        j1 - j0,
                        k,
                        out,
                        rows as isize,
                        1,
                        accumulate,
                        data.as_ptr(),
                        width as isize,
                        1,
                        x[j0 * k..].as_ptr(),
                        k as isize,
                        1,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                },
            }
        };
        if rows * n * k >= 1 << 18 {
            (0..panels * parts).into_par_iter().for_each(task);
        } else {
            (0..panels * parts).for_each(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(w: &[f32], rows: usize, k: usize, x: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; n * rows];
        for j in 0..n {
            for r in 0..rows {
                out[j * rows + r] = (0..k).map(|c| w[r * k + c] * x[j * k + c]).sum();
            }
        }
        out
    }

    /// Both packings against the naive product, for sizes around the panel height, with and
    /// without accumulation, on few panels (their tasks split over the batch on AVX-512) and on
    /// many.
    #[test]
    fn panel_products_match_the_naive_product() {
        for (rows, k, n) in [
            (1, 1, 1),
            (5, 3, 2),
            (64, 7, 3),
            (65, 33, 32),
            (200, 130, 32),
            (70, 20, 100),
            (40, 600, 13),
            (600, 40, 30),
        ] {
            let w: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 37) % 11) as f32 - 5.0)
                .collect();
            let x: Vec<f32> = (0..n * k).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            let want = naive(&w, rows, k, &x, n);
            let mut out = vec![0.0f32; n * rows];
            Panels::pack(&w, rows, k).mul_into(&mut out, &x, n, false);
            assert_eq!(out, want, "{rows}x{k}, n = {n}");
            let mut wt = vec![0.0f32; rows * k];
            for r in 0..rows {
                for c in 0..k {
                    wt[c * rows + r] = w[r * k + c];
                }
            }
            let mut acc = vec![1.0f32; n * rows];
            Panels::pack_transposed(&wt, k, rows).mul_into(&mut acc, &x, n, true);
            let plus_one: Vec<f32> = want.iter().map(|v| v + 1.0).collect();
            assert_eq!(acc, plus_one, "transposed, accumulated");
        }
    }
}
