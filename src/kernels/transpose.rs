//! Transposes: a whole matrix (the decoder's weight gradient, formed transposed) and blocks of
//! one (a weight into the recurrent products' panels). Full 16 x 16 tiles go through vector
//! registers where the CPU has AVX-512 (sixteen row loads, four rounds of shuffles, sixteen row
//! stores) or AVX2 (as four 8 x 8 tiles, three rounds each); the edges, and CPUs without
//! either, element by element.

use rayon::prelude::*;

/// Tile side.
const T: usize = 16;

/// A register transpose of one `T x T` tile: rows of `src` (stride `ss`) to columns of `dst`
/// (stride `ds`); unsafe: the CPU must have its features, and the tile lie inside both.
type Tile = unsafe fn(src: *const f32, ss: usize, dst: *mut f32, ds: usize);

/// The transpose of a row-major `rows x cols` matrix, bands of 16 output rows split across
/// threads.
pub fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    assert!(m.len() >= rows * cols);
    let mut out = vec![0.0f32; rows * cols];
    if rows == 0 || cols == 0 {
        return out;
    }
    out.par_chunks_mut(T * rows)
        .enumerate()
        .for_each(|(band, dst)| {
            let c0 = band * T;
            transpose_into(&m[c0..], rows, dst.len() / rows, cols, dst, rows);
        });
    out
}

/// Writes the transpose of the `rows x cols` block at the start of `src` (row stride
/// `src_stride`) into `dst` as `cols x rows` (row stride `dst_stride`).
pub fn transpose_into(
    src: &[f32],
    rows: usize,
    cols: usize,
    src_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src.len() >= (rows - 1) * src_stride + cols && cols <= src_stride);
    assert!(dst.len() >= (cols - 1) * dst_stride + rows && rows <= dst_stride);
    let (full_r, full_c) = (rows / T * T, cols / T * T);
    #[cfg(target_arch = "x86_64")]
    let tile: Option<Tile> = match super::math::simd() {
        super::math::Simd::Avx512 => Some(avx512::tile),
        super::math::Simd::Avx2 => Some(avx2::tile),
        super::math::Simd::Portable => None,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let tile: Option<Tile> = None;
    let (tr, tc) = match tile {
        Some(_) => (full_r, full_c),
        None => (0, 0),
    };
    if let Some(tile) = tile {
        for r0 in (0..tr).step_by(T) {
            for c0 in (0..tc).step_by(T) {
                let s = src[r0 * src_stride + c0..].as_ptr();
                let d = dst[c0 * dst_stride + r0..].as_mut_ptr();
                // SAFETY: the CPU has the tile's features (`simd` chose it); rows r0..r0+16 of
                // columns c0..c0+16 lie inside `src` and their transpose inside `dst` (both
                // asserted above).
                unsafe { tile(s, src_stride, d, dst_stride) };
            }
        }
    }
    // What the tiles left: the columns right of them, then the rows below them.
    let scalar =
        |dst: &mut [f32], r_range: std::ops::Range<usize>, c_range: std::ops::Range<usize>| {
            for r in r_range {
                for c in c_range.clone() {
                    dst[c * dst_stride + r] = src[r * src_stride + c];
                }
            }
        };
    scalar(dst, 0..tr, tc..cols);
    scalar(dst, tr..rows, 0..cols);
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// One 16 x 16 tile: rows of `src` (stride `ss`) to columns of `dst` (stride `ds`).
    ///
    /// # Safety
    /// AVX-512F; 16 rows of 16 values readable at `src`, writable at `dst`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        // SAFETY: the caller's promise.
        let r: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * ss)) });
        // Pairs of rows interleaved: t[2i] = (r[2i][4b], r[2i+1][4b], r[2i][4b+1], ...) per
        // 128-bit block b, t[2i+1] the same with elements 4b+2, 4b+3.
        let t: [__m512; 16] = std::array::from_fn(|i| match i % 2 {
            0 => _mm512_unpacklo_ps(r[i], r[i + 1]),
            _ => _mm512_unpackhi_ps(r[i - 1], r[i]),
        });
        // u[c][g]: block b holds column 4b + c of rows 4g..4g+4.
        let pd = _mm512_castps_pd;
        let u: [[__m512; 4]; 4] = std::array::from_fn(|c| {
            std::array::from_fn(|g| {
                let (lo, hi) = (pd(t[4 * g + c / 2]), pd(t[4 * g + 2 + c / 2]));
                _mm512_castpd_ps(match c % 2 {
                    0 => _mm512_unpacklo_pd(lo, hi),
                    _ => _mm512_unpackhi_pd(lo, hi),
                })
            })
        });
        // Output row 4b + c is block b of u[c][0], u[c][1], u[c][2], u[c][3]: a transpose of
        // 128-bit blocks in two rounds.
        for (c, [g0, g1, g2, g3]) in u.into_iter().enumerate() {
            let x0 = _mm512_shuffle_f32x4::<0x88>(g0, g1);
            let x1 = _mm512_shuffle_f32x4::<0xdd>(g0, g1);
            let x2 = _mm512_shuffle_f32x4::<0x88>(g2, g3);
            let x3 = _mm512_shuffle_f32x4::<0xdd>(g2, g3);
            let rows = [
                _mm512_shuffle_f32x4::<0x88>(x0, x2),
                _mm512_shuffle_f32x4::<0x88>(x1, x3),
                _mm512_shuffle_f32x4::<0xdd>(x0, x2),
                _mm512_shuffle_f32x4::<0xdd>(x1, x3),
            ];
            for (b, v) in rows.into_iter().enumerate() {
                // SAFETY: the caller's promise.
                unsafe { _mm512_storeu_ps(dst.add((4 * b + c) * ds), v) };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    /// One 16 x 16 tile as four 8 x 8 ones.
    ///
    /// # Safety
    /// AVX2; 16 rows of 16 values readable at `src`, writable at `dst`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn tile(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        for (r, c) in [(0, 0), (0, 8), (8, 0), (8, 8)] {
            // SAFETY: the caller's promise covers each quarter.
            unsafe { tile8(src.add(r * ss + c), ss, dst.add(c * ds + r), ds) };
        }
    }

    /// One 8 x 8 tile through [`transpose8`].
    #[target_feature(enable = "avx2")]
    unsafe fn tile8(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
        // SAFETY: the caller's promise.
        let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * ss)) });
        for (c, col) in transpose8(r).into_iter().enumerate() {
            // SAFETY: the caller's promise.
            unsafe { _mm256_storeu_ps(dst.add(c * ds), col) };
        }
    }

    /// The columns of eight rows of eight in registers: pairs of rows interleaved, then pairs
    /// of pairs (each 128-bit half now holds four rows of one column), then the halves
    /// exchanged.
    #[target_feature(enable = "avx2")]
    pub fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t: [__m256; 8] = std::array::from_fn(|i| {
            let k = i / 2 * 2;
            match i % 2 {
                0 => _mm256_unpacklo_ps(r[k], r[k + 1]),
                _ => _mm256_unpackhi_ps(r[k], r[k + 1]),
            }
        });
        // s[4h + c]: columns c and c + 4 (c < 4) of rows 4h..4h+4, one per half.
        let s: [__m256; 8] = std::array::from_fn(|i| {
            let (h, c) = (i / 4, i % 4);
            let (a, b) = (t[4 * h + c / 2], t[4 * h + 2 + c / 2]);
            match c % 2 {
                0 => _mm256_shuffle_ps::<0x44>(a, b),
                _ => _mm256_shuffle_ps::<0xEE>(a, b),
            }
        });
        std::array::from_fn(|c| match c < 4 {
            true => _mm256_permute2f128_ps::<0x20>(s[c], s[4 + c]),
            false => _mm256_permute2f128_ps::<0x31>(s[c - 4], s[c]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_moves_every_element() {
        for (rows, cols) in [(1, 1), (3, 70), (70, 3), (33, 65), (16, 16), (48, 200)] {
            let m: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = transpose(&m, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], m[r * cols + c], "{rows}x{cols} at {r},{c}");
                }
            }
        }
    }

    /// Each register tile the CPU can run (whatever `simd` picked), on strided 16 x 16 blocks.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_register_tile_transposes() {
        use std::arch::is_x86_feature_detected as has;
        let (ss, ds) = (21, 19);
        let src: Vec<f32> = (0..16 * ss).map(|i| i as f32).collect();
        let tiles: [(&str, bool, Tile); 2] = [
            ("avx2", has!("avx2"), avx2::tile),
            ("avx512", has!("avx512f"), avx512::tile),
        ];
        for (name, _, tile) in tiles.into_iter().filter(|t| t.1) {
            let mut dst = vec![-1.0f32; 16 * ds];
            // SAFETY: the CPU has the tile's features (filtered above); 16 rows of 16 values
            // at strides 21 and 19 lie inside both buffers.
            unsafe { tile(src.as_ptr(), ss, dst.as_mut_ptr(), ds) };
            for c in 0..16 {
                for r in 0..ds {
                    let want = if r < 16 { src[r * ss + c] } else { -1.0 };
                    assert_eq!(dst[c * ds + r], want, "{name}: row {c}, column {r}");
                }
            }
        }
    }

    #[test]
    fn a_block_lands_inside_its_strides_and_nothing_else_moves() {
        let (rows, cols, ss, ds) = (35, 19, 40, 50);
        let src: Vec<f32> = (0..rows * ss).map(|i| i as f32).collect();
        let mut dst = vec![-1.0f32; cols * ds];
        transpose_into(&src, rows, cols, ss, &mut dst, ds);
        for c in 0..cols {
            for k in 0..ds {
                let want = if k < rows { src[k * ss + c] } else { -1.0 };
                assert_eq!(dst[c * ds + k], want, "row {c}, column {k}");
            }
        }
    }
}
