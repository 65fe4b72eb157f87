//! Single-precision GEMM on host slices, through the `gemm` crate (the one Burn's CPU backend
//! uses, with its AVX-512 kernels enabled), with both cores.

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
}

impl<'a> Product<'a> {
    fn new(a: Mat<'a>, b: Mat<'a>) -> Self {
        Self {
            a,
            b,
            accumulate: false,
            scale: 1.0,
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

/// `c = accumulate * c + a · b` with `c` row-major `a.rows x b.cols`.
pub fn gemm(c: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    Product {
        accumulate,
        ..Product::new(a, b)
    }
    .into_slice(c)
}

/// `scale · a · b` as a new row-major `a.rows x b.cols` buffer, written by the product alone:
/// large results skip the zero-filling pass of `vec![0.0; n]` (a memset of up to 90 MB a step).
pub fn product(a: Mat<'_>, b: Mat<'_>, scale: f32) -> Vec<f32> {
    Product {
        scale,
        ..Product::new(a, b)
    }
    .into_vec()
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
        } = self;
        let (m, k, n) = (a.rows, a.cols, b.cols);
        assert_eq!(k, b.rows, "inner dimensions");
        assert!(k > 0, "empty inner dimension");
        if m == 0 || n == 0 {
            return;
        }
        let (dst_cs, dst_rs) = (1, n as isize);
        let (a_cs, a_rs) = a.strides();
        let (b_cs, b_rs) = b.strides();
        let parallelism = if m * n * k >= 1 << 18 {
            gemm::Parallelism::Rayon(0)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the views' strides and sizes stay inside their slices (checked above), the
        // destination holds `m * n` values and does not alias `a` or `b` (the caller's contract).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c,
                dst_cs,
                dst_rs,
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
}
