//! Eight lanes through `wide`, for CPUs without AVX2: compiled for the build's target (SSE2 by
//! default), so each vector is two SSE operations.
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

pub fn sigmoid_slice(xs: &mut [f32]) {
    map8(xs, |v| f32x8::ONE / (f32x8::ONE + (-v).exp()));
}

pub fn tanh_slice(xs: &mut [f32]) {
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
