//! Products with bf16 operands and f32 accumulation (`--precision bf16`).
//!
//! Both operands are rounded to bf16 (8 bits of mantissa) to nearest even and laid out in 1 KB
//! tiles ([`pack`]); a product of two bf16 values is exact in f32 and the sums are f32, so the
//! result differs from the f32 product only by the operands' rounding: relatively ≲ 2⁻⁸ per
//! term, growing like √K over a sum of K terms of mixed signs.
//!
//! The unit that multiplies ([`Unit`], chosen once per process, `AWD_BF16_UNIT` overrides):
//! - [`Unit::Amx`]: Intel AMX tiles (`tdpbf16ps`), the fastest by far where present;
//! - [`Unit::Avx512`]: AVX512-BF16 (`vdpbf16ps`), as on AMD Zen 4/5;
//! - [`Unit::Emulated`]: any other CPU: the operands rounded to bf16 as f32 values and multiplied
//!   by the f32 GEMM: the same numbers (up to the order of the sums), slower than f32.

pub mod amx;
pub mod avx512;
pub mod pack;
pub mod probe;

use std::sync::OnceLock;

use rayon::prelude::*;

pub use pack::{PackedA, PackedB, from_bf16, round, to_bf16, to_bf16_uninit, to_bf16_vec};
pub use probe::{PrecisionChoice, Probe};

use super::gemm::Mat;
use super::op::SharedOut;

/// The operands' precision in the fused kernels' products (`--precision`): f32, or bf16 with
/// f32 accumulation. Everything else (weights, optimizer state, gradients' sums, losses,
/// softmax, the LSTM cell) stays f32 either way.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

/// What multiplies bf16 operands on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Amx,
    Avx512,
    Emulated,
}

impl Unit {
    /// The unit of this process: the best the CPU has, or the one `AWD_BF16_UNIT`
    /// (`amx`, `avx512`, `emulated`) names when the CPU has it.
    pub fn get() -> Unit {
        static UNIT: OnceLock<Unit> = OnceLock::new();
        *UNIT.get_or_init(|| {
            let wanted = std::env::var("AWD_BF16_UNIT").ok();
            let best = Self::detect();
            match wanted.as_deref().map(Self::parse) {
                Some(Some(u)) if u.rank() <= best.rank() && (u != Unit::Avx512 || avx512_ok()) => u,
                _ => best,
            }
        })
    }

    /// The units this CPU has, best first ([`Unit::Emulated`] always).
    pub fn available() -> Vec<Unit> {
        let best = Self::detect();
        [Unit::Amx, Unit::Avx512, Unit::Emulated]
            .into_iter()
            .filter(|u| u.rank() <= best.rank() && (*u != Unit::Avx512 || avx512_ok()))
            .collect()
    }

    fn detect() -> Unit {
        // The packing converts with AVX512-BF16, which every AMX CPU has.
        if amx_ok() && avx512_ok() {
            Unit::Amx
        } else if avx512_ok() {
            Unit::Avx512
        } else {
            Unit::Emulated
        }
    }

    fn rank(self) -> u8 {
        match self {
            Unit::Amx => 2,
            Unit::Avx512 => 1,
            Unit::Emulated => 0,
        }
    }

    fn parse(s: &str) -> Option<Unit> {
        match s {
            "amx" => Some(Unit::Amx),
            "avx512" => Some(Unit::Avx512),
            "emulated" => Some(Unit::Emulated),
            _ => None,
        }
    }

    /// The unit's short name.
    pub fn describe_short(self) -> &'static str {
        match self {
            Unit::Amx => "Intel AMX tiles",
            Unit::Avx512 => "AVX512-BF16",
            Unit::Emulated => "emulation (f32 products of rounded operands)",
        }
    }

    /// How the unit is named to users.
    pub fn describe(self) -> &'static str {
        match self {
            Unit::Amx => "Intel AMX tiles",
            Unit::Avx512 => "AVX512-BF16",
            Unit::Emulated => {
                "emulated (this CPU has neither AMX nor AVX512-BF16: operands rounded to bf16, \
                 multiplied in f32; same results, slower than --precision f32)"
            }
        }
    }
}

fn amx_ok() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    #[cfg(target_arch = "x86_64")]
    return *OK.get_or_init(amx::request);
    #[cfg(not(target_arch = "x86_64"))]
    return *OK.get_or_init(|| false);
}

fn avx512_ok() -> bool {
    #[cfg(target_arch = "x86_64")]
    return avx512::available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// Blocks of 32 rows and of 32 columns one task runs, a row of blocks at a time: the two A
/// strips stay in L1 while the task walks the row, and the destination is written along its
/// rows (2 KB of each row at a time). Walking down columns instead (each block's 32 rows 18 KB
/// apart at P2's widths) made storing the f32 result cost more than the tile products: a
/// 2240 × 400 × 4608 product took 22 ms, 7.5 ms this way (`examples/bf16_gemm.rs`).
const TASK_ROWS: usize = 4;
const TASK_COLS: usize = 16;

/// `c = accumulate · c + scale · a · b` in bf16 × bf16 → f32 on the packed operands (`a`
/// `[M, K]`, `b` `[K, N]`), `c` row-major `M × N` with row stride `ldc`, on [`Unit::get`]'s unit
/// (not [`Unit::Emulated`], which multiplies [`rounded`] operands in f32).
///
/// # Safety
/// `c` must be valid for writes of `M` rows of `N` values at stride `ldc` (and initialized, for
/// reads, when accumulating) and must not overlap the operands.
pub unsafe fn packed_product_into(
    c: *mut f32,
    ldc: usize,
    a: &PackedA,
    b: &PackedB,
    accumulate: bool,
    scale: f32,
) {
    // SAFETY: the caller's contract.
    unsafe { packed_product_on(Unit::get(), c, ldc, a, b, accumulate, scale) }
}

/// [`packed_product_into`] on `unit`, which must be one of [`Unit::available`] other than
/// [`Unit::Emulated`].
unsafe fn packed_product_on(
    unit: Unit,
    c: *mut f32,
    ldc: usize,
    a: &PackedA,
    b: &PackedB,
    accumulate: bool,
    scale: f32,
) {
    let (m, n) = (a.rows, b.cols);
    assert_eq!(a.chunks, b.chunks, "inner dimensions");
    assert!(
        unit != Unit::Emulated && (unit == Unit::get() || Unit::available().contains(&unit)),
        "packed products need AMX or AVX512-BF16"
    );
    let (mb, nb) = (m.div_ceil(32), n.div_ceil(32));
    let (tm, tn) = (mb.div_ceil(TASK_ROWS), nb.div_ceil(TASK_COLS));
    let out = SharedOut(c);
    let task = |t: usize| {
        let (ti, tj) = (t / tn, t % tn);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Unit::Amx is only chosen once the tile state was granted.
        let tiles = (unit == Unit::Amx).then(|| unsafe { amx::Tiles::load() });
        let mut blk = [0f32; 1024];
        for i in ti * TASK_ROWS..((ti + 1) * TASK_ROWS).min(mb) {
            let as_ = [a.strip(2 * i), a.strip(2 * i + 1)];
            for j in tj * TASK_COLS..((tj + 1) * TASK_COLS).min(nb) {
                let bs = [b.strip(2 * j), b.strip(2 * j + 1)];
                let (rows, cols) = (32.min(m - 32 * i), 32.min(n - 32 * j));
                let corner = out.at(32 * i * ldc + 32 * j);
                #[cfg(target_arch = "x86_64")]
                match &tiles {
                    // A whole block at scale 1: the tiles load and store the destination.
                    // SAFETY: the block's 32 x 32 values lie inside `c` (the caller's contract).
                    Some(t) if rows == 32 && cols == 32 && scale == 1.0 => {
                        unsafe { t.block_into(as_, bs, a.chunks, corner, ldc, accumulate) };
                        continue;
                    }
                    Some(t) => t.block(as_, bs, a.chunks, &mut blk),
                    // SAFETY: Unit::Avx512 is only chosen where the CPU has it.
                    None => unsafe { avx512::block(as_, bs, a.chunks, &mut blk) },
                }
                for r in 0..rows {
                    // SAFETY: row 32i + r < M and columns 32j .. 32j + cols ≤ N of `c` (the
                    // caller's contract); no other task writes this block. Without
                    // `accumulate` the destination is only written (it may be uninitialized).
                    let dst = corner.wrapping_add(r * ldc);
                    let src = &blk[r * 32..r * 32 + cols];
                    if accumulate {
                        for (k, v) in src.iter().enumerate() {
                            unsafe { *dst.add(k) += scale * v };
                        }
                    } else {
                        for (k, v) in src.iter().enumerate() {
                            unsafe { dst.add(k).write(scale * v) };
                        }
                    }
                }
            }
        }
    };
    let work = m * n * b.k;
    if work >= 1 << 18 {
        (0..tm * tn).into_par_iter().for_each(task);
    } else {
        (0..tm * tn).for_each(task);
    }
}

/// A view with every element rounded to bf16, as a row-major f32 matrix (the emulated unit's
/// operands).
pub fn rounded(m: Mat<'_>) -> Vec<f32> {
    let mut v = vec![0f32; m.rows * m.cols];
    v.par_chunks_mut(m.cols.max(1))
        .enumerate()
        .for_each(|(r, row)| {
            for (c, o) in row.iter_mut().enumerate() {
                let x = if m.transposed {
                    m.data[c * m.rows + r]
                } else {
                    m.data[r * m.cols + c]
                };
                *o = round(x);
            }
        });
    v
}

/// `a · b` `[M, N]` in bf16 × bf16 → f32 on `unit` (one of [`Unit::available`]), whatever unit
/// the process uses: what the tests compare the units with.
pub fn product_on(unit: Unit, a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
    assert_eq!(a.cols, b.rows, "inner dimensions");
    let (m, n) = (a.rows, b.cols);
    if unit == Unit::Emulated {
        let (ra, rb) = (rounded(a), rounded(b));
        return super::gemm::product(Mat::new(&ra, m, a.cols), Mat::new(&rb, b.rows, n), 1.0);
    }
    let mut c = vec![0f32; m * n];
    if m == 0 || n == 0 || a.cols == 0 {
        return c;
    }
    let (pa, pb) = (PackedA::new(a), PackedB::new(b));
    // SAFETY: `c` holds `m x n` values and aliases nothing.
    unsafe { packed_product_on(unit, c.as_mut_ptr(), n, &pa, &pb, false, 1.0) };
    c
}
