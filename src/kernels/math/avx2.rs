//! Eight-lane versions for AVX2 + FMA: the same polynomials and operations as [`super::avx512`]
//! (so the same results in the normal range), with `2^n` built from exponent bits where
//! AVX-512 has `scalef`, and masked loads and stores for a partial last vector.
use std::arch::x86_64::*;

/// The lane mask of the first `k < 8` lanes, for `maskload`/`maskstore`.
#[inline]
#[target_feature(enable = "avx2")]
fn first_lanes(k: usize) -> __m256i {
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(k as i32), idx)
}

/// Slice versions of the lane functions below.
macro_rules! slice_map {
    ($name:ident, $f:ident) => {
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn $name(xs: &mut [f32]) {
            let n = xs.len();
            let p = xs.as_mut_ptr();
            let mut i = 0;
            while i + 8 <= n {
                // SAFETY: `i + 8 <= n`: the 8 lanes are inside the slice.
                unsafe { _mm256_storeu_ps(p.add(i), $f(_mm256_loadu_ps(p.add(i)))) };
                i += 8;
            }
            if i < n {
                let m = first_lanes(n - i);
                // SAFETY: the mask covers only the `n - i` lanes inside the slice.
                unsafe {
                    let v = _mm256_maskload_ps(p.add(i), m);
                    _mm256_maskstore_ps(p.add(i), m, $f(v));
                }
            }
        }
    };
}
slice_map!(sigmoid_slice, sigmoid);
slice_map!(tanh_slice, tanh);

/// `2^n` for integral `n` in [-128, 128], as two factors so that each is a normal number.
#[inline]
#[target_feature(enable = "avx2")]
fn pow2(n: __m256) -> (__m256, __m256) {
    let n = _mm256_cvtps_epi32(n);
    let half = _mm256_srai_epi32::<1>(n);
    let rest = _mm256_sub_epi32(n, half);
    let bits = |k: __m256i| {
        _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            k,
            _mm256_set1_epi32(127),
        )))
    };
    (bits(half), bits(rest))
}

/// `e^x` (inputs clamped to ±88.38: the result saturates at the f32 range ends).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn exp(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-88.376_26)),
        _mm256_set1_ps(88.376_26),
    );
    // x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in two for an exact product.
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_2e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let p = _mm256_fmadd_ps(
        p,
        _mm256_mul_ps(r, r),
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let (a, b) = pow2(n);
    _mm256_mul_ps(_mm256_mul_ps(p, a), b)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn sigmoid(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let e = exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
    _mm256_div_ps(one, _mm256_add_ps(one, e))
}

/// tanh: an odd polynomial below |x| = 0.625 (where `1 - 2/(e^2x + 1)` would cancel),
/// the exponential form above it.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub fn tanh(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let sign_bit = _mm256_set1_ps(-0.0);
    let ax = _mm256_andnot_ps(sign_bit, x);
    let z = _mm256_mul_ps(x, x);
    let mut p = _mm256_set1_ps(-5.704_988_7e-3);
    for c in [2.063_909e-2, -5.373_971_6e-2, 0.133_314_42, -0.333_332_8] {
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(c));
    }
    let small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
    let e = exp(_mm256_add_ps(ax, ax));
    let large = _mm256_sub_ps(
        one,
        _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)),
    );
    // Give the large form the sign of x.
    let large = _mm256_or_ps(large, _mm256_and_ps(x, sign_bit));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(ax, _mm256_set1_ps(0.625));
    _mm256_blendv_ps(large, small, is_small)
}

#[target_feature(enable = "avx2,fma")]
pub unsafe fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
    let s = _mm256_set1_ps(shift);
    let mut acc = _mm256_setzero_ps();
    let n = xs.len();
    let p = xs.as_mut_ptr();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`.
        unsafe {
            let v = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), s));
            acc = _mm256_add_ps(acc, v);
            _mm256_storeu_ps(p.add(i), v);
        }
        i += 8;
    }
    if i < n {
        let m = first_lanes(n - i);
        // SAFETY: the mask covers only lanes inside the slice.
        unsafe {
            let v = exp(_mm256_sub_ps(_mm256_maskload_ps(p.add(i), m), s));
            acc = _mm256_add_ps(acc, _mm256_and_ps(v, _mm256_castsi256_ps(m)));
            _mm256_maskstore_ps(p.add(i), m, v);
        }
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: eight lanes into an eight-element array.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    lanes.iter().sum()
}
