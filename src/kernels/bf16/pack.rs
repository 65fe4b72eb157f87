//! Operands rounded to bf16 and laid out as the tile products read them.
//!
//! Both layouts are made of 1 KB tiles, 16 rows of 64 bytes, the shape of an AMX tile register:
//! - [`PackedA`] (the left operand, `[M, K]`): per block of 16 rows, per chunk of 32 k, a tile
//!   of 16 rows × 32 bf16 (row r, element kk = a[16·block + r][32·chunk + kk]);
//! - [`PackedB`] (the right operand, `[K, N]`): per block of 16 columns, per chunk of 32 k, a
//!   tile of 16 k-pairs × 16 columns × 2 (the "VNNI" layout `tdpbf16ps` and `vdpbf16ps` want:
//!   row p, element 2c + e = b[32·chunk + 2p + e][16·block + c]).
//!
//! M and N are padded to multiples of 32 (the kernels' 2 × 2 tile blocks) and K to a multiple
//! of 32, with zeros, which add nothing to the products.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::kernels::gemm::Mat;

/// Elements in a tile: 16 rows of 32 bf16.
pub(super) const TILE: usize = 16 * 32;

/// f32 → bf16, rounded to nearest even (as `vcvtne2ps2bf16`); a NaN stays a (quiet) NaN.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// `src` in bf16 as a new vector (no zero-filling pass before the conversion writes it).
pub fn to_bf16_vec(src: &[f32]) -> Vec<u16> {
    let mut v = Vec::with_capacity(src.len());
    let out = &mut v.spare_capacity_mut()[..src.len()];
    out.par_chunks_mut(1 << 14)
        .zip(src.par_chunks(1 << 14))
        .for_each(|(o, s)| to_bf16_uninit(s, o));
    // SAFETY: every one of the `src.len()` values was written just above.
    unsafe { v.set_len(src.len()) };
    v
}

/// `dst[i] = to_bf16(src[i])`, vectorized where the CPU converts to bf16 itself, into memory
/// that may not be initialized yet: every value of `dst` is written.
pub fn to_bf16_uninit(src: &[f32], dst: &mut [MaybeUninit<u16>]) {
    assert_eq!(src.len(), dst.len());
    #[cfg(target_arch = "x86_64")]
    if super::avx512_ok() {
        for (s, d) in src.chunks(32).zip(dst.chunks_mut(32)) {
            // SAFETY: AVX512-BF16 is present; `run` reads `s.len()` values of `s` and writes as
            // many of `d`.
            unsafe { x86::run(s.as_ptr(), s.len(), d.as_mut_ptr() as *mut u16) };
        }
        return;
    }
    for (o, &v) in dst.iter_mut().zip(src) {
        o.write(to_bf16(v));
    }
}

/// bf16 → f32 (exact).
#[inline]
pub fn from_bf16(x: u16) -> f32 {
    f32::from_bits((x as u32) << 16)
}

/// `x` rounded to the nearest bf16, as an f32.
#[inline]
pub fn round(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// A view's element `(r, c)`, read through its strides.
struct Strided<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    /// Distance between consecutive rows and columns.
    rs: usize,
    cs: usize,
}

impl<'a> Strided<'a> {
    fn new(m: Mat<'a>) -> Self {
        let (rs, cs) = if m.transposed {
            (1, m.rows)
        } else {
            (m.cols, 1)
        };
        Self {
            data: m.data,
            rows: m.rows,
            cols: m.cols,
            rs,
            cs,
        }
    }
}

/// Padded size: a multiple of 32.
pub(super) fn pad(n: usize) -> usize {
    n.div_ceil(32) * 32
}

/// The left operand `[M, K]`, tiled (see the module).
pub struct PackedA {
    pub(super) rows: usize,
    /// K padded, divided by 32.
    pub(super) chunks: usize,
    pub(super) data: Vec<u16>,
}

/// The right operand `[K, N]`, tiled (see the module).
pub struct PackedB {
    pub(super) k: usize,
    pub(super) cols: usize,
    pub(super) chunks: usize,
    pub(super) data: Vec<u16>,
}

/// A tile being written: 16 rows of 32 bf16, not all initialized yet.
type TileOut = [MaybeUninit<u16>];

/// The tiles of an operand: `len` (M for A, N for B) in strips of 16, each of `depth` (K) in
/// chunks of 32, one tile each; `fill(tile, (i0, n), (k0, kn))` writes the tile of strip
/// entries `i0 .. i0 + n` (n ≤ 16) and depth `k0 .. k0 + kn`: a whole tile (n = 16, kn = 32)
/// every one of its values, a partial one at least those. Partial tiles are zeroed first and
/// the strips past `len` are zeros (padding, which adds nothing to the products); whole tiles
/// are not zeroed first (a memset of every operand, 5% of a bf16 P1 step). Returns the chunks per
/// strip and the tiles.
fn tiled(
    len: usize,
    depth: usize,
    fill: impl Fn(&mut TileOut, (usize, usize), (usize, usize)) + Sync,
) -> (usize, Vec<u16>) {
    let chunks = pad(depth) / 32;
    let total = pad(len) * chunks * 32;
    let mut data = Vec::with_capacity(total);
    if total == 0 {
        return (chunks, data);
    }
    data.spare_capacity_mut()[..total]
        .par_chunks_mut(16 * chunks * 32)
        .enumerate()
        .for_each(|(block, strip)| {
            let i0 = block * 16;
            let n = 16.min(len.saturating_sub(i0));
            for (chunk, tile) in strip.chunks_mut(TILE).enumerate() {
                let k0 = chunk * 32;
                let kn = 32.min(depth - k0);
                if n < 16 || kn < 32 {
                    tile.fill(MaybeUninit::new(0));
                }
                if n > 0 {
                    fill(tile, (i0, n), (k0, kn));
                }
            }
        });
    // SAFETY: every tile was written whole above: zeroed (padding and partial tiles) and/or
    // filled (whole tiles, every value: `fill`'s contract).
    unsafe { data.set_len(total) };
    (chunks, data)
}

/// The tiles of 16-wide strip `block` of `data` (`chunks` tiles a strip).
fn strip(data: &[u16], chunks: usize, block: usize) -> &[u16] {
    &data[block * chunks * TILE..(block + 1) * chunks * TILE]
}

impl PackedA {
    pub fn new(a: Mat<'_>) -> Self {
        let s = Strided::new(a);
        let (chunks, data) = tiled(s.rows, s.cols, |tile, (r0, rn), (k0, kn)| {
            tile_a(
                &s.data[r0 * s.rs + k0 * s.cs..],
                (s.rs, s.cs),
                (rn, kn),
                tile,
            )
        });
        Self {
            rows: s.rows,
            chunks,
            data,
        }
    }

    /// M.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// From a row-major `[rows, cols]` matrix already in bf16 (copied, not rounded again).
    pub fn from_bf16(data: &[u16], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols);
        let (chunks, tiles) = tiled(rows, cols, |tile, (r0, rn), (k0, kn)| {
            for r in 0..rn {
                let src = &data[(r0 + r) * cols + k0..][..kn];
                for (o, &v) in tile[r * 32..r * 32 + kn].iter_mut().zip(src) {
                    o.write(v);
                }
            }
        });
        Self {
            rows,
            chunks,
            data: tiles,
        }
    }

    /// The first tile of the 16-row block `block` (its chunks follow, one tile each).
    pub(super) fn strip(&self, block: usize) -> &[u16] {
        strip(&self.data, self.chunks, block)
    }
}

impl PackedB {
    pub fn new(b: Mat<'_>) -> Self {
        let s = Strided::new(b);
        let (chunks, data) = tiled(s.cols, s.rows, |tile, (c0, cn), (k0, kn)| {
            tile_b(
                &s.data[k0 * s.rs + c0 * s.cs..],
                (s.rs, s.cs),
                (kn, cn),
                tile,
            )
        });
        Self {
            k: s.rows,
            cols: s.cols,
            chunks,
            data,
        }
    }

    /// From a row-major `[k, cols]` matrix already in bf16 (copied, not rounded again).
    pub fn from_bf16(data: &[u16], k: usize, cols: usize) -> Self {
        assert!(data.len() >= k * cols);
        let (chunks, tiles) = tiled(cols, k, |tile, (c0, cn), (k0, kn)| {
            for kk in 0..kn {
                let src = &data[(k0 + kk) * cols + c0..][..cn];
                let row = &mut tile[(kk / 2) * 32 + (kk & 1)..];
                for (c, &v) in src.iter().enumerate() {
                    row[2 * c].write(v);
                }
            }
        });
        Self {
            k,
            cols,
            chunks,
            data: tiles,
        }
    }

    /// The first tile of the 16-column block `block` (its chunks follow, one tile each).
    pub(super) fn strip(&self, block: usize) -> &[u16] {
        strip(&self.data, self.chunks, block)
    }

    /// N.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// K.
    pub fn depth(&self) -> usize {
        self.k
    }
}

/// One A tile: `tile[r][kk] = src[r·rs + kk·cs]` for r < rn, kk < kn (the rest stays zero).
fn tile_a(src: &[f32], (rs, cs): (usize, usize), (rn, kn): (usize, usize), tile: &mut TileOut) {
    assert!(rn <= 16 && kn <= 32 && tile.len() >= TILE);
    assert!(
        src.len() > (rn - 1) * rs + (kn - 1) * cs,
        "tile inside the operand"
    );
    #[cfg(target_arch = "x86_64")]
    if super::avx512_ok() {
        // SAFETY: the CPU has AVX512-BF16; the reads stay inside `src` and the writes inside
        // `tile` (asserted).
        return unsafe { x86::tile_a(src.as_ptr(), (rs, cs), (rn, kn), tile.as_mut_ptr().cast()) };
    }
    for r in 0..rn {
        for kk in 0..kn {
            tile[r * 32 + kk].write(to_bf16(src[r * rs + kk * cs]));
        }
    }
}

/// One B tile: `tile[p][2c + e] = src[(2p + e)·rs + c·cs]` for 2p + e < kn, c < cn.
fn tile_b(src: &[f32], (rs, cs): (usize, usize), (kn, cn): (usize, usize), tile: &mut TileOut) {
    assert!(kn <= 32 && cn <= 16 && tile.len() >= TILE);
    assert!(
        src.len() > (kn - 1) * rs + (cn - 1) * cs,
        "tile inside the operand"
    );
    #[cfg(target_arch = "x86_64")]
    if super::avx512_ok() {
        // SAFETY: as in `tile_a`.
        return unsafe { x86::tile_b(src.as_ptr(), (rs, cs), (kn, cn), tile.as_mut_ptr().cast()) };
    }
    for k in 0..kn {
        for c in 0..cn {
            tile[(k / 2) * 32 + 2 * c + (k & 1)].write(to_bf16(src[k * rs + c * cs]));
        }
    }
}

/// The tiles converted a contiguous run at a time (`vcvtne2ps2bf16`), then, where the
/// operand's runs lie across the tile's rows, moved into place.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `dst[..n] = bf16(src[..n])`, n ≤ 32; `dst[n..32]` is left as it is.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn run(src: *const f32, n: usize, dst: *mut u16) {
        let mask = |n: usize| ((1u32 << n.min(16)) - 1) as u16;
        let (lo, hi) = (n.min(16), n.saturating_sub(16));
        // SAFETY: the caller's contract: `src` holds `n` values, `dst` 32; masked lanes are
        // neither read nor written.
        unsafe {
            let a = _mm512_maskz_loadu_ps(mask(lo), src);
            let b = _mm512_maskz_loadu_ps(mask(hi), src.add(lo));
            let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
            let keep = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
            _mm512_mask_storeu_epi16(dst as *mut i16, keep, v);
        }
    }

    /// See [`super::tile_a`].
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn tile_a(
        src: *const f32,
        (rs, cs): (usize, usize),
        (rn, kn): (usize, usize),
        tile: *mut u16,
    ) {
        // SAFETY (all): the caller's contract bounds every read and write.
        unsafe {
            if cs == 1 {
                for r in 0..rn {
                    run(src.add(r * rs), kn, tile.add(r * 32));
                }
                return;
            }
            // Runs along the rows (kk fixed): converted, then transposed into place.
            let mut tmp = [0u16; 32 * 16];
            for kk in 0..kn {
                run(src.add(kk * cs), rn, tmp.as_mut_ptr().add(kk * 16));
            }
            for r in 0..rn {
                for kk in 0..kn {
                    *tile.add(r * 32 + kk) = tmp[kk * 16 + r];
                }
            }
        }
    }

    /// See [`super::tile_b`].
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub unsafe fn tile_b(
        src: *const f32,
        (rs, cs): (usize, usize),
        (kn, cn): (usize, usize),
        tile: *mut u16,
    ) {
        // SAFETY (all): the caller's contract bounds every read and write.
        unsafe {
            if cs == 1 {
                // Rows 2p and 2p + 1 converted, then interleaved as 32-bit pairs.
                let mask = ((1u32 << cn) - 1) as u16;
                for p in 0..kn.div_ceil(2) {
                    let half = |k: usize| {
                        let v = _mm512_maskz_loadu_ps(mask, src.add(k * rs));
                        let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                        _mm512_cvtepu16_epi32(h)
                    };
                    let mut v = half(2 * p);
                    if 2 * p + 1 < kn {
                        v = _mm512_or_si512(v, _mm512_slli_epi32(half(2 * p + 1), 16));
                    }
                    _mm512_storeu_si512(tile.add(p * 32) as *mut _, v);
                }
                return;
            }
            // Runs along k (c fixed): 32 values = 16 pairs, transposed into place as u32s.
            let mut pairs = [0u32; 16 * 16];
            for c in 0..cn {
                run(
                    src.add(c * cs),
                    kn,
                    (pairs.as_mut_ptr() as *mut u16).add(c * 32),
                );
            }
            let out = tile as *mut u32;
            for p in 0..kn.div_ceil(2) {
                for c in 0..cn {
                    out.add(p * 16 + c).write_unaligned(pairs[c * 16 + p]);
                }
            }
        }
    }
}
