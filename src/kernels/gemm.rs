//! GEMM on host slices: f32 through the `gemm` crate (the one Burn's CPU backend uses, with its
//! AVX-512 kernels enabled) or, on CPUs with AVX2 but not AVX-512, awd's own blocked GEMM
//! ([`super::gemm_avx2`]) where both operands are large enough to pack; or bf16 operands with
//! f32 sums ([`super::bf16`]); with both cores.

use super::bf16::{self, PackedA, PackedB, Precision, Unit};

/// A row-major matrix view, optionally transposed: `rows x cols` as seen by the product.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    /// The storage is the transpose (`cols x rows`, row-major).
    pub transposed: bool,
}

impl<'a> Mat<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols);
        Self {
            data,
            rows,
            cols,
            transposed: false,
        }
    }
    /// The transpose of a row-major `rows x cols` matrix, seen as `cols x rows`.
    pub fn t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        debug_assert!(data.len() >= rows * cols);
        Self {
            data,
            rows: cols,
            cols: rows,
            transposed: true,
        }
    }
    /// (column stride, row stride) of the view.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (self.rows as isize, 1)
        } else {
            (1, self.cols as isize)
        }
    }
}

/// One product `scale · a · b`, and how it lands in its destination.
#[derive(Clone, Copy)]
struct Product<'a> {
    a: Mat<'a>,
    b: Mat<'a>,
    /// Add to the destination instead of overwriting it.
    accumulate: bool,
    scale: f32,
    precision: Precision,
}

impl<'a> Product<'a> {
    fn new(a: Mat<'a>, b: Mat<'a>) -> Self {
        Self {
            a,
            b,
            accumulate: false,
            scale: 1.0,
            precision: Precision::F32,
        }
    }

    /// Into the initialized slice `c`.
    fn into_slice(self, c: &mut [f32]) {
        let n = self.a.rows * self.b.cols;
        assert!(c.len() >= n);
        if self.a.cols == 0 {
            if !self.accumulate {
                c[..n].fill(0.0);
            }
            return;
        }
        // SAFETY: `c` is an initialized slice of at least `n` values, so reading it (when
        // accumulating) is sound, and a `&mut` cannot alias the operands.
        unsafe { self.into_ptr(c.as_mut_ptr()) }
    }

    /// Into a new buffer, written by the product alone.
    fn into_vec(self) -> Vec<f32> {
        let n = self.a.rows * self.b.cols;
        if self.a.cols == 0 {
            return vec![0.0; n];
        }
        let mut c: Vec<f32> = Vec::with_capacity(n);
        // SAFETY: without `accumulate` and with an inner dimension > 0 the product writes
        // every one of the `n` values without reading any, so all are initialized before
        // `set_len`; the new buffer aliases nothing.
        unsafe {
            Product {
                accumulate: false,
                ..self
            }
            .into_ptr(c.as_mut_ptr());
            c.set_len(n);
        }
        c
    }
}

/// `c = accumulate * c + a · b` with `c` row-major `a.rows x b.cols`, in f32.
pub fn gemm(c: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    gemm_in(Precision::F32, c, a, b, accumulate)
}

/// [`gemm`] with operands in `precision`.
pub fn gemm_in(precision: Precision, c: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    Product {
        accumulate,
        precision,
        ..Product::new(a, b)
    }
    .into_slice(c)
}

/// `scale · a · b` as a new row-major `a.rows x b.cols` buffer, written by the product alone:
/// large results skip the zero-filling pass of `vec![0.0; n]` (a memset of up to 90 MB a step).
pub fn product(a: Mat<'_>, b: Mat<'_>, scale: f32) -> Vec<f32> {
    product_in(Precision::F32, a, b, scale)
}

/// [`product`] with operands in `precision`.
pub fn product_in(precision: Precision, a: Mat<'_>, b: Mat<'_>, scale: f32) -> Vec<f32> {
    Product {
        scale,
        precision,
        ..Product::new(a, b)
    }
    .into_vec()
}

/// `a · b` for each `b` of `bs`, in `precision`: the shared left operand is packed once.
pub fn products_in(precision: Precision, a: Mat<'_>, bs: &[Mat<'_>]) -> Vec<Vec<f32>> {
    if precision == Precision::F32 || Unit::get() == Unit::Emulated || a.rows == 0 || a.cols == 0 {
        return bs
            .iter()
            .map(|&b| product_in(precision, a, b, 1.0))
            .collect();
    }
    let pa = PackedA::new(a);
    bs.iter()
        .map(|&b| {
            assert_eq!(a.cols, b.rows, "inner dimensions");
            packed_product(&pa, &PackedB::new(b), 1.0)
        })
        .collect()
}

/// `scale · a · b` `[M, N]` of packed operands, as a new buffer (not on [`Unit::Emulated`]).
pub fn packed_product(a: &PackedA, b: &PackedB, scale: f32) -> Vec<f32> {
    let n = a.rows() * b.cols();
    let mut c: Vec<f32> = Vec::with_capacity(n);
    // SAFETY: without accumulation the product writes all `M x N` values before `set_len`;
    // the new buffer aliases nothing.
    unsafe {
        bf16::packed_product_into(c.as_mut_ptr(), b.cols(), a, b, false, scale);
        c.set_len(n);
    }
    c
}

/// A right operand `[K, N]` that many products share (a weight over a window), prepared once
/// for the precision: as it is (f32), packed in bf16 tiles, or rounded to bf16 values where the
/// CPU multiplies bf16 by emulation.
pub enum Rhs<'a> {
    F32(Mat<'a>),
    Packed(PackedB),
    Rounded { data: Vec<f32>, k: usize, n: usize },
}

impl<'a> Rhs<'a> {
    pub fn new(precision: Precision, b: Mat<'a>) -> Self {
        match (precision, Unit::get()) {
            (Precision::F32, _) => Rhs::F32(b),
            (Precision::Bf16, Unit::Emulated) => Rhs::Rounded {
                data: bf16::rounded(b),
                k: b.rows,
                n: b.cols,
            },
            (Precision::Bf16, _) => Rhs::Packed(PackedB::new(b)),
        }
    }

    /// `a · self` `[M, N]` as a new buffer (written by the product alone where it can be).
    pub fn product(&self, a: Mat<'_>) -> Vec<f32> {
        match self {
            Rhs::Packed(b) if a.cols == b.depth() => packed_product(&PackedA::new(a), b, 1.0),
            _ => {
                let mut out = vec![0f32; a.rows * self.cols()];
                self.mul_into(&mut out, a, false);
                out
            }
        }
    }

    /// N.
    pub fn cols(&self) -> usize {
        match self {
            Rhs::F32(b) => b.cols,
            Rhs::Packed(b) => b.cols(),
            Rhs::Rounded { n, .. } => *n,
        }
    }

    /// `out = a · self` (or `out += …`): `a` `[M, K]`, `out` `[M, N]` row-major.
    pub fn mul_into(&self, out: &mut [f32], a: Mat<'_>, accumulate: bool) {
        match self {
            Rhs::F32(b) => gemm(out, a, *b, accumulate),
            Rhs::Rounded { data, k, n } => {
                let ra = bf16::rounded(a);
                gemm(
                    out,
                    Mat::new(&ra, a.rows, a.cols),
                    Mat::new(data, *k, *n),
                    accumulate,
                )
            }
            Rhs::Packed(b) => {
                let (rows, cols) = (a.rows, b.cols());
                assert!(
                    out.len() >= rows * cols && a.cols == b.depth(),
                    "product shapes"
                );
                if rows == 0 || cols == 0 {
                    return;
                }
                let pa = PackedA::new(a);
                // SAFETY: `out` holds `rows x cols` values (checked) and, a `&mut`, aliases
                // nothing.
                unsafe {
                    bf16::packed_product_into(out.as_mut_ptr(), cols, &pa, b, accumulate, 1.0)
                }
            }
        }
    }
}

impl Product<'_> {
    /// The product into the `a.rows * b.cols` floats at `c`, which must be valid for writes,
    /// initialized if `accumulate`, and must not overlap `a` or `b`; the inner dimension must be
    /// > 0.
    unsafe fn into_ptr(self, c: *mut f32) {
        let Product {
            a,
            b,
            accumulate,
            scale,
            precision,
        } = self;
        let (m, k, n) = (a.rows, a.cols, b.cols);
        assert_eq!(k, b.rows, "inner dimensions");
        assert!(k > 0, "empty inner dimension");
        if m == 0 || n == 0 {
            return;
        }
        if precision == Precision::Bf16 {
            if Unit::get() == Unit::Emulated {
                let (ra, rb) = (bf16::rounded(a), bf16::rounded(b));
                let f32_product = Product {
                    a: Mat::new(&ra, m, k),
                    b: Mat::new(&rb, k, n),
                    precision: Precision::F32,
                    ..self
                };
                // SAFETY: the caller's contract, for operands of the same shapes.
                return unsafe { f32_product.into_ptr(c) };
            }
            let (pa, pb) = (PackedA::new(a), PackedB::new(b));
            // SAFETY: the caller's contract: `c` holds `m x n` values at row stride `n`.
            return unsafe { bf16::packed_product_into(c, n, &pa, &pb, accumulate, scale) };
        }
        #[cfg(target_arch = "x86_64")]
        if own_blocked(m, n, k) {
            // SAFETY: `own_blocked` means `Simd::Avx2`: the CPU has AVX2 and FMA; the caller's
            // contract.
            return unsafe { super::gemm_avx2::gemm(c, a, b, accumulate, scale) };
        }
        // SAFETY: the caller's contract.
        unsafe { crate_gemm(c, a, b, accumulate, scale) }
    }
}

/// Whether an f32 product `[m, k] · [k, n]` runs awd's own blocked GEMM here
/// ([`super::gemm_avx2`]: CPUs with AVX2 and FMA but no AVX-512, operands big enough to pack)
/// rather than the `gemm` crate; the two favour different orientations of some products.
pub fn own_blocked(m: usize, n: usize, k: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::math::simd() == super::math::Simd::Avx2 && super::gemm_avx2::suits(m, n, k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (m, n, k);
        false
    }
}

/// `c = accumulate·c + scale · a · b` through the `gemm` crate, on rayon's pool where the
/// product is large: the f32 products everywhere but where [`super::gemm_avx2`] takes them,
/// and what `examples/blocked_gemm.rs` holds that against.
///
/// # Safety
/// `c` holds `a.rows · b.cols` values, valid for writes, initialized if `accumulate`, and does
/// not overlap `a` or `b`.
pub unsafe fn crate_gemm(c: *mut f32, a: Mat<'_>, b: Mat<'_>, accumulate: bool, scale: f32) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        k == b.rows && a.data.len() >= m * k && b.data.len() >= k * n,
        "product shapes"
    );
    let (a_cs, a_rs) = a.strides();
    let (b_cs, b_rs) = b.strides();
    let parallelism = if m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: each view's strides and sizes stay inside its slice (checked), the destination
    // holds `m * n` values and does not alias `a` or `b` (the caller's contract).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}
