//! Sixteen-lane versions (Cephes' single-precision polynomials: within a few ulp of libm).
use std::arch::x86_64::*;

/// Slice versions of the lane functions below: full vectors, then a partial last vector
/// through a masked load/store.
macro_rules! slice_map {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx512f")]
        pub unsafe fn $name(xs: &mut [f32]) {
            let n = xs.len();
            let p = xs.as_mut_ptr();
            let mut i = 0;
            while i + 16 <= n {
                // SAFETY: `i + 16 <= n`: the 16 lanes are inside the slice.
                unsafe { _mm512_storeu_ps(p.add(i), $f(_mm512_loadu_ps(p.add(i)))) };
                i += 16;
            }
            if i < n {
                let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
                // SAFETY: the mask covers only the `n - i` lanes inside the slice.
                unsafe {
                    let v = _mm512_maskz_loadu_ps(m, p.add(i));
                    _mm512_mask_storeu_ps(p.add(i), m, $f(v));
                }
            }
        }
    };
}
slice_map!(sigmoid_slice, sigmoid);
slice_map!(tanh_slice, tanh);

/// `e^x` (inputs clamped to ±88.38: the result saturates at the f32 range ends).
#[inline]
#[target_feature(enable = "avx512f")]
pub fn exp(x: __m512) -> __m512 {
    let x = _mm512_min_ps(
        _mm512_max_ps(x, _mm512_set1_ps(-88.376_26)),
        _mm512_set1_ps(88.376_26),
    );
    // x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in two for an exact product.
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let p = _mm512_fmadd_ps(
        p,
        _mm512_mul_ps(r, r),
        _mm512_add_ps(r, _mm512_set1_ps(1.0)),
    );
    _mm512_scalef_ps(p, n)
}

#[inline]
#[target_feature(enable = "avx512f")]
pub fn sigmoid(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
    _mm512_div_ps(one, _mm512_add_ps(one, e))
}

/// tanh: an odd polynomial below |x| = 0.625 (where `1 - 2/(e^2x + 1)` would cancel),
/// the exponential form above it.
#[inline]
#[target_feature(enable = "avx512f")]
pub fn tanh(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let ax = _mm512_abs_ps(x);
    let z = _mm512_mul_ps(x, x);
    let mut p = _mm512_set1_ps(-5.704_988_7e-3);
    for c in [2.063_909e-2, -5.373_971_6e-2, 0.133_314_42, -0.333_332_8] {
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(c));
    }
    let small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    let e = exp(_mm512_add_ps(ax, ax));
    let large = _mm512_sub_ps(
        one,
        _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, one)),
    );
    // Give the large form the sign of x.
    let sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN));
    let large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(large), sign));
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(ax, _mm512_set1_ps(0.625));
    _mm512_mask_blend_ps(is_small, large, small)
}

#[target_feature(enable = "avx512f")]
pub unsafe fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
    let s = _mm512_set1_ps(shift);
    let mut acc = _mm512_setzero_ps();
    let n = xs.len();
    let p = xs.as_mut_ptr();
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`.
        unsafe {
            let v = exp(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), s));
            acc = _mm512_add_ps(acc, v);
            _mm512_storeu_ps(p.add(i), v);
        }
        i += 16;
    }
    if i < n {
        let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
        // SAFETY: the mask covers only lanes inside the slice.
        unsafe {
            let v = exp(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p.add(i)), s));
            acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, v));
            _mm512_mask_storeu_ps(p.add(i), m, v);
        }
    }
    _mm512_reduce_add_ps(acc)
}
