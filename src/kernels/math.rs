//! Elementwise activations over slices, vectorized: sixteen lanes with AVX-512 when the CPU has
//! it (checked at run time, so the portable build still uses it), otherwise eight lanes through
//! the `wide` crate (which picks the widest instructions the build's target allows).

use wide::f32x8;

fn map8(xs: &mut [f32], f: impl Fn(f32x8) -> f32x8) {
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = f(f32x8::from(<[f32; 8]>::try_from(&*c).expect("8 lanes")));
        c.copy_from_slice(&v.to_array());
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut lanes = [0.0f32; 8];
        lanes[..rest.len()].copy_from_slice(rest);
        let v = f(f32x8::from(lanes)).to_array();
        rest.copy_from_slice(&v[..rest.len()]);
    }
}

/// Whether the AVX-512 paths apply: the CPU has AVX-512F and `AWD_NO_AVX512` is not set (for
/// comparing the two paths). Decided once per process.
#[inline]
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *USE.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::env::var_os("AWD_NO_AVX512").is_none()
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines a function that runs an `#[inline(always)]` one compiled for AVX-512 where the CPU
/// has it (its loops then vectorize to sixteen lanes; the same operations in the same order, so
/// the same results) and as the build's target allows elsewhere.
macro_rules! vectorized {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),*) $(-> $r:ty)? = $body:expr) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn on_avx512($($a: $t),*) $(-> $r)? {
                $body($($a),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::kernels::math::avx512() {
                // SAFETY: the CPU supports AVX-512F (checked above).
                return unsafe { on_avx512($($a),*) };
            }
            $body($($a),*)
        }
    };
}
pub(crate) use vectorized;

/// `x ← 1 / (1 + e^-x)`
pub fn sigmoid(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU supports AVX-512F (checked above).
        return unsafe { avx512::sigmoid_slice(xs) };
    }
    portable::sigmoid(xs)
}

/// `x ← tanh(x)`
pub fn tanh(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: as in `sigmoid`.
        return unsafe { avx512::tanh_slice(xs) };
    }
    portable::tanh(xs)
}

/// `x ← e^(x - shift)`; returns the sum of the results.
pub fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: as in `sigmoid`.
        return unsafe { avx512::exp_shifted_sum(xs, shift) };
    }
    portable::exp_shifted_sum(xs, shift)
}

/// Eight lanes through `wide`, for CPUs without AVX-512.
mod portable {
    use super::map8;
    use wide::f32x8;

    pub fn sigmoid(xs: &mut [f32]) {
        map8(xs, |v| f32x8::ONE / (f32x8::ONE + (-v).exp()));
    }

    pub fn tanh(xs: &mut [f32]) {
        map8(xs, |v| v.tanh());
    }

    pub fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
        let s = f32x8::splat(shift);
        let mut acc = f32x8::ZERO;
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            let v = (f32x8::from(<[f32; 8]>::try_from(&*c).expect("8 lanes")) - s).exp();
            acc += v;
            c.copy_from_slice(&v.to_array());
        }
        let mut sum = acc.reduce_add();
        for x in chunks.into_remainder() {
            *x = (*x - shift).exp();
            sum += *x;
        }
        sum
    }
}

/// `Σ x²` in f64, in parallel blocks added in order (the same result however the blocks are
/// scheduled).
pub fn sum_squares(xs: &[f32]) -> f64 {
    use rayon::prelude::*;
    let blocks: Vec<f64> = xs.par_chunks(1 << 15).map(block_sum_squares).collect();
    blocks.into_iter().sum()
}

vectorized! {
    /// `Σ x²` of one block, in sixteen running sums (so the loop vectorizes).
    fn block_sum_squares(xs: &[f32]) -> f64 = sum_squares_lanes
}

#[inline(always)]
fn sum_squares_lanes(xs: &[f32]) -> f64 {
    let mut acc = [0.0f64; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        acc.iter_mut()
            .zip(c)
            .for_each(|(a, &v)| *a += v as f64 * v as f64);
    }
    let rest: f64 = chunks
        .remainder()
        .iter()
        .map(|&v| v as f64 * v as f64)
        .sum();
    acc.iter().sum::<f64>() + rest
}

vectorized! {
    /// `x ← x + b` elementwise (`b` as long as `x`); returns the largest result (`-inf` for
    /// empty slices).
    pub fn add_max(xs: &mut [f32], b: &[f32]) -> f32 = add_max_lanes
}

#[inline(always)]
fn add_max_lanes(xs: &mut [f32], b: &[f32]) -> f32 {
    assert_eq!(xs.len(), b.len());
    let mut acc = [f32::NEG_INFINITY; 16];
    let mut chunks = xs.chunks_exact_mut(16);
    let mut bs = b.chunks_exact(16);
    for (c, b) in (&mut chunks).zip(&mut bs) {
        for ((a, x), b) in acc.iter_mut().zip(c).zip(b) {
            *x += b;
            *a = a.max(*x);
        }
    }
    let mut m = acc.into_iter().fold(f32::NEG_INFINITY, f32::max);
    for (x, b) in chunks.into_remainder().iter_mut().zip(bs.remainder()) {
        *x += b;
        m = m.max(*x);
    }
    m
}

vectorized! {
    /// `x ← s·x`, then `acc ← acc + x`, elementwise (`acc` as long as `x`).
    pub fn scale_accumulate(xs: &mut [f32], s: f32, acc: &mut [f32]) = scale_accumulate_lanes
}

#[inline(always)]
fn scale_accumulate_lanes(xs: &mut [f32], s: f32, acc: &mut [f32]) {
    assert_eq!(xs.len(), acc.len());
    for (x, a) in xs.iter_mut().zip(acc) {
        *x *= s;
        *a += *x;
    }
}

/// Column sums of a row-major matrix with rows of `cols` values, rows split across threads.
/// The blocks' partial sums are added in block order, so the result does not depend on
/// scheduling.
pub fn column_sums(m: &[f32], cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let rows = m.len() / cols.max(1);
    let per_task = rows.div_ceil(rayon::current_num_threads().max(1)).max(1);
    m.par_chunks(per_task * cols)
        .map(|block| {
            let mut acc = vec![0.0f32; cols];
            for row in block.chunks(cols) {
                acc.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            acc
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(vec![0.0f32; cols], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        })
}

/// Sixteen-lane versions (Cephes' single-precision polynomials: within a few ulp of libm).
#[cfg(target_arch = "x86_64")]
mod avx512 {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path against libm, over a range that covers the saturated ends and the
    /// polynomial/exponential switch of tanh, with a length that leaves a partial vector.
    #[test]
    fn activations_match_libm() {
        check(sigmoid, tanh, exp_shifted_sum);
        check(portable::sigmoid, portable::tanh, portable::exp_shifted_sum);
    }

    fn check(
        sigmoid: fn(&mut [f32]),
        tanh: fn(&mut [f32]),
        exp_shifted_sum: fn(&mut [f32], f32) -> f32,
    ) {
        let xs: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.01).collect();
        let close = |a: f32, b: f32| (a - b).abs() <= 2e-7 * b.abs().max(1e-3) + 1e-9;
        let mut s = xs.clone();
        sigmoid(&mut s);
        let mut t = xs.clone();
        tanh(&mut t);
        for (k, &x) in xs.iter().enumerate() {
            let want_s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!(
                close(s[k], want_s as f32),
                "sigmoid({x}) = {} vs {want_s}",
                s[k]
            );
            let want_t = (x as f64).tanh() as f32;
            assert!(
                (t[k] - want_t).abs() <= 2e-7 * want_t.abs() + 1e-10,
                "tanh({x}) = {} vs {want_t}",
                t[k]
            );
        }
        let mut e = xs.clone();
        let sum = exp_shifted_sum(&mut e, 3.0);
        let want: f64 = xs.iter().map(|&x| (x as f64 - 3.0).exp()).sum();
        assert!((sum as f64 - want).abs() <= 1e-5 * want);
        for (k, &x) in xs.iter().enumerate() {
            let w = ((x - 3.0) as f64).exp(); // of the f32 argument the kernel sees
            assert!(
                (e[k] as f64 - w).abs() <= 3e-7 * w,
                "exp({x} - 3) = {} vs {w}",
                e[k]
            );
        }
    }
}
