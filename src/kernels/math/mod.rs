//! Elementwise activations and passes over slices, vectorized for the CPU found at run time
//! (so the portable build still uses its widest registers): sixteen lanes with AVX-512, eight
//! with AVX2 + FMA, otherwise eight through the `wide` crate at the build's target (SSE2).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;

/// The widest vector instructions the elementwise kernels use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    Avx512,
    Avx2,
    Portable,
}

impl Simd {
    pub fn name(self) -> &'static str {
        match self {
            Simd::Avx512 => "AVX-512",
            Simd::Avx2 => "AVX2+FMA",
            Simd::Portable => "portable (SSE2)",
        }
    }
}

/// What the CPU has, capped by `AWD_SIMD` (`avx2` or `portable`, for comparing the paths).
/// Decided once per process.
#[inline]
pub fn simd() -> Simd {
    static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("AWD_SIMD").unwrap_or_default();
        detect(&cap)
    })
}

#[cfg(target_arch = "x86_64")]
fn detect(cap: &str) -> Simd {
    use std::arch::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma") && cap != "portable";
    match (has!("avx512f") && avx2 && cap != "avx2", avx2) {
        (true, _) => Simd::Avx512,
        (false, true) => Simd::Avx2,
        _ => Simd::Portable,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect(_cap: &str) -> Simd {
    Simd::Portable
}

/// Defines a function that runs an `#[inline(always)]` one compiled for AVX-512 or AVX2 + FMA
/// where the CPU has it (its loops then vectorize to sixteen or eight lanes; the same operations
/// in the same order, with no contraction into FMAs, so the same results) and as the build's
/// target allows elsewhere.
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
            #[target_feature(enable = "avx2,fma")]
            unsafe fn on_avx2($($a: $t),*) $(-> $r)? {
                $body($($a),*)
            }
            #[cfg(target_arch = "x86_64")]
            match $crate::kernels::math::simd() {
                // SAFETY: the CPU has the features (`simd` checked them).
                $crate::kernels::math::Simd::Avx512 => return unsafe { on_avx512($($a),*) },
                // SAFETY: as above.
                $crate::kernels::math::Simd::Avx2 => return unsafe { on_avx2($($a),*) },
                $crate::kernels::math::Simd::Portable => {}
            }
            $body($($a),*)
        }
    };
}
pub(crate) use vectorized;

/// Runs the AVX-512, AVX2 or portable version of a slice function, as [`simd`] decides.
macro_rules! dispatch {
    ($f:ident($($a:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        match simd() {
            // SAFETY: the CPU has the features (`simd` checked them).
            Simd::Avx512 => return unsafe { avx512::$f($($a),*) },
            // SAFETY: as above.
            Simd::Avx2 => return unsafe { avx2::$f($($a),*) },
            Simd::Portable => {}
        }
        portable::$f($($a),*)
    }};
}

/// `x ← 1 / (1 + e^-x)`
pub fn sigmoid(xs: &mut [f32]) {
    dispatch!(sigmoid_slice(xs))
}

/// `x ← tanh(x)`
pub fn tanh(xs: &mut [f32]) {
    dispatch!(tanh_slice(xs))
}

/// `x ← e^(x - shift)`; returns the sum of the results.
pub fn exp_shifted_sum(xs: &mut [f32], shift: f32) -> f32 {
    dispatch!(exp_shifted_sum(xs, shift))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path against libm, over a range that covers the saturated ends and the
    /// polynomial/exponential switch of tanh, with a length that leaves a partial vector.
    #[test]
    fn activations_match_libm() {
        check(sigmoid, tanh, exp_shifted_sum);
        check(
            portable::sigmoid_slice,
            portable::tanh_slice,
            portable::exp_shifted_sum,
        );
        #[cfg(target_arch = "x86_64")]
        if simd() != Simd::Portable {
            // SAFETY (each): the CPU has AVX2 and FMA (`simd` checked them).
            check(
                |x| unsafe { avx2::sigmoid_slice(x) },
                |x| unsafe { avx2::tanh_slice(x) },
                |x, s| unsafe { avx2::exp_shifted_sum(x, s) },
            );
        }
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
