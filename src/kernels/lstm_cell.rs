//! The LSTM cell's elementwise work on one batch row, forward and backward: gates `[4H]` in
//! PyTorch's order i, f, g, o, states `[H]`.
//!
//! The loops run as AVX-512 code where the CPU has it ([`vectorized!`]) and are written over
//! slices cut to one length, so they compile without bounds checks; each is the same operations
//! in the same order as the scalar formula, so the results are the same to the bit.

use super::math::{self, vectorized};

/// Hidden units of `tanh(c_t)` the backward holds on the stack at once.
const BLOCK: usize = 256;

/// Activates the row's `gates` in place, then `c = f·c_prev + i·g` and `y = o·tanh(c)`.
pub fn forward(gates: &mut [f32], c_prev: &[f32], c: &mut [f32], y: &mut [f32]) {
    let h = c.len();
    math::sigmoid(&mut gates[..2 * h]);
    math::tanh(&mut gates[2 * h..3 * h]);
    math::sigmoid(&mut gates[3 * h..]);
    cell_state(gates, c_prev, c);
    y.copy_from_slice(c);
    math::tanh(y);
    mul_assign(y, &gates[3 * h..]);
}

vectorized! {
    /// `c ← f·c_prev + i·g`, from activated gates `[4H]`.
    fn cell_state(gates: &[f32], c_prev: &[f32], c: &mut [f32]) = cell_state_lanes
}

#[inline(always)]
fn cell_state_lanes(gates: &[f32], c_prev: &[f32], c: &mut [f32]) {
    let n = c.len();
    let (ig, fg, gg, cp) = (
        &gates[..n],
        &gates[n..2 * n],
        &gates[2 * n..3 * n],
        &c_prev[..n],
    );
    for j in 0..n {
        c[j] = fg[j] * cp[j] + ig[j] * gg[j];
    }
}

vectorized! {
    /// `y ← y·o` elementwise.
    fn mul_assign(y: &mut [f32], o: &[f32]) = mul_assign_lanes
}

#[inline(always)]
fn mul_assign_lanes(y: &mut [f32], o: &[f32]) {
    y.iter_mut().zip(o).for_each(|(y, o)| *y *= o);
}

/// What one row's backward reads: its activated `gates` `[4H]`, `c_t` and `c_{t-1}`, and the
/// gradient of `h_t` in two parts, from above (`dy`) and from the next step (`dh`), `[H]` each.
pub struct RowBack<'a> {
    pub gates: &'a [f32],
    pub c: &'a [f32],
    pub c_prev: &'a [f32],
    pub dy: &'a [f32],
    pub dh: &'a [f32],
}

/// The row's gate gradients (before the activations) into `dg` `[4H]`; `dc` `[H]` holds the
/// gradient of `c_t` on entry and that of `c_{t-1}` on return.
pub fn backward(x: &RowBack, dc: &mut [f32], dg: &mut [f32]) {
    let h = dc.len();
    let mut tc = [0.0f32; BLOCK];
    let (di, rest) = dg.split_at_mut(h);
    let (df, rest) = rest.split_at_mut(h);
    let (dgg, d_o) = rest.split_at_mut(h);
    for j0 in (0..h).step_by(BLOCK) {
        let j = j0..(j0 + BLOCK).min(h);
        let tc = &mut tc[..j.len()];
        tc.copy_from_slice(&x.c[j.clone()]);
        math::tanh(tc);
        let gate = |k: usize| &x.gates[k * h + j.start..k * h + j.end];
        let block = Block {
            gates: [gate(0), gate(1), gate(2), gate(3)],
            tc,
            c_prev: &x.c_prev[j.clone()],
            dy: &x.dy[j.clone()],
            dh: &x.dh[j.clone()],
        };
        let out = [
            &mut di[j.clone()],
            &mut df[j.clone()],
            &mut dgg[j.clone()],
            &mut d_o[j.clone()],
        ];
        block_backward(&block, &mut dc[j], out);
    }
}

/// A block of hidden units of [`RowBack`], with `tanh(c_t)` formed.
struct Block<'a> {
    gates: [&'a [f32]; 4],
    tc: &'a [f32],
    c_prev: &'a [f32],
    dy: &'a [f32],
    dh: &'a [f32],
}

vectorized! {
    fn block_backward(x: &Block<'_>, dc: &mut [f32], out: [&mut [f32]; 4]) = block_backward_lanes
}

#[inline(always)]
fn block_backward_lanes(x: &Block<'_>, dc: &mut [f32], out: [&mut [f32]; 4]) {
    let n = dc.len();
    let [ig, fg, gg, og] = x.gates.map(|g| &g[..n]);
    let (tc, cp, dy, dh) = (&x.tc[..n], &x.c_prev[..n], &x.dy[..n], &x.dh[..n]);
    let [oi, of, og_, oo] = out.map(|o| &mut o[..n]);
    for j in 0..n {
        let dht = dy[j] + dh[j];
        let d_o = dht * tc[j];
        let dct = dc[j] + dht * og[j] * (1.0 - tc[j] * tc[j]);
        dc[j] = dct * fg[j];
        oi[j] = dct * gg[j] * ig[j] * (1.0 - ig[j]);
        of[j] = dct * cp[j] * fg[j] * (1.0 - fg[j]);
        og_[j] = dct * ig[j] * (1.0 - gg[j] * gg[j]);
        oo[j] = d_o * og[j] * (1.0 - og[j]);
    }
}
