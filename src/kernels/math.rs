//! Elementwise activations over slices, eight lanes at a time (the `wide` crate's vectorized
//! exp and tanh), instead of one libm call per element.

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

/// `x ← 1 / (1 + e^-x)`
pub fn sigmoid(xs: &mut [f32]) {
    map8(xs, |v| f32x8::ONE / (f32x8::ONE + (-v).exp()));
}

/// `x ← tanh(x)`
pub fn tanh(xs: &mut [f32]) {
    map8(xs, |v| v.tanh());
}

/// `x ← e^(x - shift)`; returns the sum of the results.
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

/// The largest element (`-inf` for an empty slice).
pub fn max(xs: &[f32]) -> f32 {
    let mut acc = f32x8::splat(f32::NEG_INFINITY);
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        acc = acc.max(f32x8::from(<[f32; 8]>::try_from(c).expect("8 lanes")));
    }
    let m = acc.to_array().into_iter().fold(f32::NEG_INFINITY, f32::max);
    chunks.remainder().iter().copied().fold(m, f32::max)
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
