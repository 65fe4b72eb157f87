//! One LSTM direction over a whole sequence, forward and backward, on host slices.
//!
//! Layouts (row-major): `x` `[T*B, I]` time-major, `w_ih` `[4H, I]`, `w_hh` `[4H, H]`, `bias`
//! `[4H]`, states `[B, H]`; gates in PyTorch's order i, f, g, o. The forward keeps the activated
//! gates and cell states; the backward runs BPTT over the window and forms the weight gradients
//! as three large products over all timesteps at once instead of one small product per step.
//! The per-step recurrent products read `W_hh` (forward) and `W_hhᵀ` (backward) laid out once per
//! window for the GEMM ([`Panels`]), and write straight into the gates / `dh`; the step loops
//! allocate nothing.

use rayon::prelude::*;

use super::op::Buf;

use super::bf16::{self, Precision};
use super::gemm::{Mat, Rhs, gemm, product_in, products_in};
use super::lstm_cell;
use super::math;
use super::panels::Panels;

/// The recurrent weight `W_hh` `[4H, H]` (or its transpose) as the per-step products
/// `out = x · Wᵀ` use it: laid out in [`Panels`] once per window when the batch has rows enough
/// for a matrix product (at 32 rows the layout pass is repaid from the second step on, at
/// H = 200 to 1152: examples/panel_gemm.rs), used as it is for narrow batches, where the product
/// is a matrix-vector one (batch-1 generation runs one step per call, and laying out 21 MB for
/// it would triple its cost). In bf16, the weight is packed in tiles once a window.
enum Recurrent<'a> {
    Panels(std::sync::Arc<Panels>),
    Bf16(Rhs<'a>),
    /// `W_hh` row-major; `transposed`: the product is with `W_hhᵀ`.
    Plain {
        w: &'a [f32],
        transposed: bool,
        h: usize,
    },
}

impl<'a> Recurrent<'a> {
    fn new(
        w_hh: &'a Buf,
        (t, b, h): (usize, usize, usize),
        transposed: bool,
        precision: Precision,
    ) -> Self {
        if precision == Precision::Bf16 {
            // out = x · W_hhᵀ: the right operand is W_hhᵀ `[H, 4H]` (or W_hh `[4H, H]`).
            return Recurrent::Bf16(Rhs::new(
                precision,
                if transposed {
                    Mat::new(w_hh, 4 * h, h)
                } else {
                    Mat::t(w_hh, 4 * h, h)
                },
            ));
        }
        if t >= 2 && b >= 4 {
            Recurrent::Panels(if transposed {
                std::sync::Arc::new(Panels::pack_transposed(w_hh, 4 * h, h))
            } else {
                super::kept::panels(w_hh, 4 * h, h)
            })
        } else {
            Recurrent::Plain {
                w: w_hh,
                transposed,
                h,
            }
        }
    }

    /// `out = x · Wᵀ` (or `out += …`): `x` `[n, K]`, `out` `[n, rows]`; for `W_hh`, K = H and
    /// rows = 4H, for its transpose the other way round.
    fn mul_into(&self, out: &mut [f32], x: &[f32], n: usize, accumulate: bool) {
        match self {
            Recurrent::Panels(p) => p.mul_into(out, x, n, accumulate),
            Recurrent::Bf16(w) => {
                let k = x.len() / n.max(1);
                w.mul_into(out, Mat::new(x, n, k), accumulate)
            }
            Recurrent::Plain { w, transposed, h } => {
                let (h, g4) = (*h, 4 * *h);
                let w_t = if *transposed {
                    Mat::new(w, g4, h)
                } else {
                    Mat::t(w, g4, h)
                };
                gemm(out, Mat::new(x, n, w_t.rows), w_t, accumulate)
            }
        }
    }
}

/// What the forward keeps for the backward.
#[derive(Debug, Clone)]
pub struct LstmSaved {
    pub t: usize,
    pub b: usize,
    pub i: usize,
    pub h: usize,
    pub reverse: bool,
    /// The products' operand precision (the backward's as the forward's).
    pub precision: Precision,
    pub x: Buf,
    pub w_ih: Buf,
    pub w_hh: Buf,
    /// Activated gates `[T*B, 4H]` (σ(i), σ(f), tanh(g), σ(o)).
    pub gates: SavedGates,
    /// Cell states `[T*B, H]`.
    pub c: Vec<f32>,
    /// Outputs `[T*B, H]`.
    pub y: Buf,
    pub h0: Vec<f32>,
    pub c0: Vec<f32>,
}

/// The activated gates as the backward reads them: f32, or rounded to bf16 under
/// `--precision bf16` (half the memory of the largest saved activation; the cell states and
/// outputs stay f32).
#[derive(Debug, Clone)]
pub enum SavedGates {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

impl SavedGates {
    fn keep(gates: Vec<f32>, precision: Precision) -> Self {
        match precision {
            Precision::F32 => SavedGates::F32(gates),
            Precision::Bf16 => SavedGates::Bf16(bf16::to_bf16_vec(&gates)),
        }
    }

    /// Values `range` as f32: borrowed, or widened into `scratch`.
    fn read<'a>(&'a self, range: std::ops::Range<usize>, scratch: &'a mut Vec<f32>) -> &'a [f32] {
        match self {
            SavedGates::F32(g) => &g[range],
            SavedGates::Bf16(g) => {
                scratch.clear();
                scratch.extend(g[range].iter().map(|&v| bf16::from_bf16(v)));
                scratch
            }
        }
    }
}

/// Rows per parallel chunk of the elementwise work.
fn rows_per_task(b: usize) -> usize {
    b.div_ceil(rayon::current_num_threads().max(1)).max(1)
}

/// Block `prev` of `buf` to read and block `cur` (another one) to write, blocks of `len`.
fn prev_and_current(buf: &mut [f32], prev: usize, cur: usize, len: usize) -> (&[f32], &mut [f32]) {
    if prev < cur {
        let (a, b) = buf.split_at_mut(cur * len);
        (&a[prev * len..(prev + 1) * len], &mut b[..len])
    } else {
        let (a, b) = buf.split_at_mut(prev * len);
        (&b[..len], &mut a[cur * len..(cur + 1) * len])
    }
}

/// The forward pass. Returns the saved state (outputs in `y`, final `(h, c)` computable from it).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    x: Buf,
    w_ih: Buf,
    w_hh: Buf,
    bias: Option<&[f32]>,
    h0: Vec<f32>,
    c0: Vec<f32>,
    (t, b, i, h): (usize, usize, usize, usize),
    reverse: bool,
    precision: Precision,
) -> LstmSaved {
    let g4 = 4 * h;
    // Input projection for every timestep at once.
    let mut gates = product_in(precision, Mat::new(&x, t * b, i), Mat::t(&w_ih, g4, i), 1.0);
    if let Some(bias) = bias {
        gates.par_chunks_mut(g4).for_each(|row| {
            row.iter_mut().zip(bias).for_each(|(g, b)| *g += b);
        });
    }
    let mut c = vec![0.0f32; t * b * h];
    let mut y = vec![0.0f32; t * b * h];
    let rec = Recurrent::new(&w_hh, (t, b, h), false, precision);
    let order: Vec<usize> = if reverse {
        (0..t).rev().collect()
    } else {
        (0..t).collect()
    };
    let mut prev: Option<usize> = None;
    for &s in &order {
        let bh = b * h;
        let (h_prev, ys, c_prev, cs) = match prev {
            None => (
                &h0[..],
                &mut y[s * bh..(s + 1) * bh],
                &c0[..],
                &mut c[s * bh..(s + 1) * bh],
            ),
            Some(p) => {
                let (h_prev, ys) = prev_and_current(&mut y, p, s, bh);
                let (c_prev, cs) = prev_and_current(&mut c, p, s, bh);
                (h_prev, ys, c_prev, cs)
            }
        };
        let g = &mut gates[s * b * g4..(s + 1) * b * g4];
        // gates_t += h_{t-1} · W_hhᵀ
        rec.mul_into(g, h_prev, b, true);
        let rows = rows_per_task(b);
        g.par_chunks_mut(rows * g4)
            .zip(cs.par_chunks_mut(rows * h))
            .zip(ys.par_chunks_mut(rows * h))
            .zip(c_prev.par_chunks(rows * h))
            .for_each(|(((g, cs), ys), cp)| {
                for (((g, c), y), cp) in g
                    .chunks_mut(g4)
                    .zip(cs.chunks_mut(h))
                    .zip(ys.chunks_mut(h))
                    .zip(cp.chunks(h))
                {
                    lstm_cell::forward(g, cp, c, y);
                }
            });
        prev = Some(s);
    }
    LstmSaved {
        t,
        b,
        i,
        h,
        reverse,
        precision,
        x,
        w_ih,
        w_hh,
        gates: SavedGates::keep(gates, precision),
        c,
        y: Buf::Owned(y),
        h0,
        c0,
    }
}

impl LstmSaved {
    /// The final `(h, c)`, `[B, H]` each (of the last step processed).
    pub fn final_state(&self) -> (Vec<f32>, Vec<f32>) {
        if self.t == 0 {
            return (self.h0.clone(), self.c0.clone());
        }
        let (b, h) = (self.b, self.h);
        let last = if self.reverse { 0 } else { self.t - 1 };
        (
            self.y[last * b * h..(last + 1) * b * h].to_vec(),
            self.c[last * b * h..(last + 1) * b * h].to_vec(),
        )
    }
}

/// Which gradients a backward forms. A frozen weight or an input that carries no gradient (a
/// frozen embedding below the first layer) skips its product, as PyTorch's autograd skips what
/// requires no gradient: in fastai's frozen stages the LSTM's weight gradients are a third of its
/// backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub x: bool,
    pub w_ih: bool,
    pub w_hh: bool,
    pub bias: bool,
}

impl Wanted {
    pub const ALL: Self = Self {
        x: true,
        w_ih: true,
        w_hh: true,
        bias: true,
    };
}

/// The gradients a backward formed: `dx` `[T*B, I]`, `dw_ih` `[4H, I]`, `dw_hh` `[4H, H]`,
/// `dbias` `[4H]`, each `None` where it was not [`Wanted`].
pub struct LstmGrads {
    pub dx: Option<Vec<f32>>,
    pub dw_ih: Option<Vec<f32>>,
    pub dw_hh: Option<Vec<f32>>,
    pub dbias: Option<Vec<f32>>,
}

/// The `wanted` gradients of one direction ([`LstmGrads`]), given `dy` `[T*B, H]` (the final
/// state carries no gradient: AWD-LSTM detaches it).
pub fn backward(s: &LstmSaved, dy: &[f32], wanted: Wanted) -> LstmGrads {
    let (t, b, i, h) = (s.t, s.b, s.i, s.h);
    let g4 = 4 * h;
    let mut dgates = vec![0.0f32; t * b * g4];
    let mut dh = vec![0.0f32; b * h];
    let mut dc = vec![0.0f32; b * h];
    // dh_{t-1} = dG_t · W_hh = dG_t · (W_hhᵀ)ᵀ
    let rec_t = Recurrent::new(&s.w_hh, (t, b, h), true, s.precision);
    // h_{t-1} for every step, in time order: the product dW_hh = dG^T · H_prev needs it.
    let order: Vec<usize> = if s.reverse {
        (0..t).rev().collect()
    } else {
        (0..t).collect()
    };
    // In time order that is `h0` then the outputs but the last (reversed: the outputs but the
    // first, then `h0`), copied as two runs.
    let bh = b * h;
    let h_prev_all = match (wanted.w_hh && t > 0, s.reverse) {
        (false, _) => Vec::new(),
        (true, false) => [&s.h0[..], &s.y[..(t - 1) * bh]].concat(),
        (true, true) => [&s.y[bh..t * bh], &s.h0[..]].concat(),
    };
    let mut scratch = Vec::new();
    for (k, &st) in order.iter().enumerate().rev() {
        let c_prev: &[f32] = if k == 0 {
            &s.c0
        } else {
            &s.c[order[k - 1] * b * h..(order[k - 1] + 1) * b * h]
        };
        let gates = s.gates.read(st * b * g4..(st + 1) * b * g4, &mut scratch);
        let cs = &s.c[st * b * h..(st + 1) * b * h];
        let dys = &dy[st * b * h..(st + 1) * b * h];
        let dg = &mut dgates[st * b * g4..(st + 1) * b * g4];
        let rows = rows_per_task(b);
        dg.par_chunks_mut(rows * g4)
            .zip(dc.par_chunks_mut(rows * h))
            .enumerate()
            .for_each(|(chunk, (dg, dc))| {
                for (r, (dg, dc)) in dg.chunks_mut(g4).zip(dc.chunks_mut(h)).enumerate() {
                    let row = (chunk * rows + r) * h..(chunk * rows + r + 1) * h;
                    let x = lstm_cell::RowBack {
                        gates: &gates[row.start * 4..row.end * 4],
                        c: &cs[row.clone()],
                        c_prev: &c_prev[row.clone()],
                        dy: &dys[row.clone()],
                        dh: &dh[row],
                    };
                    lstm_cell::backward(&x, dc, dg);
                }
            });
        rec_t.mul_into(&mut dh, dg, b, false);
    }
    let p = s.precision;
    let dg_t = Mat::t(&dgates, t * b, g4);
    // The weight gradients share their left operand `dGᵀ` (packed once in bf16).
    let mut rights = Vec::new();
    if wanted.w_hh {
        rights.push(Mat::new(&h_prev_all, t * b, h));
    }
    if wanted.w_ih {
        rights.push(Mat::new(&s.x, t * b, i));
    }
    // Neither weight tracked (a frozen layer): nothing to pack or multiply.
    let dws = if rights.is_empty() {
        Vec::new()
    } else {
        products_in(p, dg_t, &rights)
    };
    let mut dws = dws.into_iter();
    let dw_hh = wanted.w_hh.then(|| dws.next().expect("dW_hh"));
    let dw_ih = wanted.w_ih.then(|| dws.next().expect("dW_ih"));
    let dx = wanted.x.then(|| {
        product_in(
            p,
            Mat::new(&dgates, t * b, g4),
            Mat::new(&s.w_ih, g4, i),
            1.0,
        )
    });
    let dbias = wanted.bias.then(|| math::column_sums(&dgates, g4));
    LstmGrads {
        dx,
        dw_ih,
        dw_hh,
        dbias,
    }
}
