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

/// `c = accumulate * c + a · b` with `c` row-major `a.rows x b.cols`.
pub fn gemm(c: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    gemm_to(c, a.rows, b.cols, false, a, b, accumulate, 1.0)
}

/// `c = scale · a · b` with `c` row-major `a.rows x b.cols` (the scale folded into the product).
pub fn gemm_scaled(c: &mut [f32], a: Mat<'_>, b: Mat<'_>, scale: f32) {
    gemm_to(c, a.rows, b.cols, false, a, b, false, scale)
}

/// `scale · a · b` as a new row-major `a.rows x b.cols` buffer, written by the product alone:
/// large results skip the zero-filling pass of `vec![0.0; n]` (a memset of up to 90 MB a step).
pub fn product(a: Mat<'_>, b: Mat<'_>, scale: f32) -> Vec<f32> {
    let len = a.rows * b.cols;
    if a.cols == 0 {
        return vec![0.0; len];
    }
    let mut c: Vec<f32> = Vec::with_capacity(len);
    // SAFETY: the product writes every element of the `len`-element destination without
    // reading it (`accumulate` false, inner dimension > 0), so all `len` values are initialized
    // before `set_len`.
    unsafe {
        gemm_raw(
            c.as_mut_ptr(),
            len,
            a.rows,
            b.cols,
            false,
            a,
            b,
            false,
            scale,
        );
        c.set_len(len);
    }
    c
}

/// [`gemm`] into `c` stored transposed: `c` holds the `b.cols x a.rows` row-major transpose of
/// the product (its element `(i, j)` at `j * a.rows + i`).
pub fn gemm_t(c: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    gemm_to(c, a.rows, b.cols, true, a, b, accumulate, 1.0)
}

#[allow(clippy::too_many_arguments)]
fn gemm_to(
    c: &mut [f32],
    rows: usize,
    cols: usize,
    c_transposed: bool,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
) {
    if a.cols == 0 {
        if !accumulate {
            c[..rows * cols].fill(0.0);
        }
        return;
    }
    // SAFETY: `c` is an initialized slice, so reading it (when accumulating) is sound.
    unsafe {
        gemm_raw(
            c.as_mut_ptr(),
            c.len(),
            rows,
            cols,
            c_transposed,
            a,
            b,
            accumulate,
            scale,
        )
    }
}

/// The product into `len` floats at `c`, which must be valid for writes (and initialized if
/// `accumulate`) and must not overlap `a` or `b`; the inner dimension must be > 0.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    c: *mut f32,
    len: usize,
    rows: usize,
    cols: usize,
    c_transposed: bool,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
) {
    let (dst_cs, dst_rs) = if c_transposed {
        (rows as isize, 1)
    } else {
        (1, cols as isize)
    };
    let (m, k, n) = (rows, a.cols, cols);
    assert_eq!(k, b.rows, "inner dimensions");
    assert!(len >= m * n);
    assert!(k > 0, "empty inner dimension");
    if m == 0 || n == 0 {
        return;
    }
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
