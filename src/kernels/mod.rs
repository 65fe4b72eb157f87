//! Fused kernels on Burn's extension points (CPU; GPU with `wgpu`), checked against the reference ops.
//!
//! - [`lstm`] / [`lstm_op`]: a weight-dropped LSTM direction over a window as one autodiff op;
//!   [`lstm_cell`]: its cell's elementwise work on a row.
//! - [`decoder_ce`]: tied decoder + cross-entropy as one op, chunked when only the loss is needed.
//! - [`adam`]: Burn's Adam in one pass per parameter.
//! - [`gemm`], [`panels`], [`math`], [`transpose`]: the products, vectorized activations (AVX-512,
//!   AVX2 or portable, picked at run time) and transposes they are made of; `panel_avx512` and
//!   `panel_avx2`: the recurrent panels' own microkernels, and `gemm_avx2` the blocked GEMM
//!   around the AVX2 one that multiplies the window products on CPUs without AVX-512;
//!   [`peak`]: the machine's measured f32 FMA peak they are held against.
//! - [`bf16`]: the products with bf16 operands and f32 sums (`--precision bf16`): Intel AMX tiles,
//!   AVX512-BF16, or emulated where the CPU has neither.
//! - `gpu` (the `wgpu` feature): the same LSTM and decoder operations on the GPU, CubeCL kernels
//!   for the LSTM cell (forward and backward) and the softmax + cross-entropy around Burn's matmuls.
//! - [`op`]: what they share: the choice of fused or reference ops ([`Compute`], made there alone),
//!   the autodiff-or-plain skeleton and host buffers; [`workers`]: running a job on the pool
//!   its kernels split their work over.
//!
//! `examples/kernel_times.rs`, `gemm_shapes.rs`, `panel_gemm.rs`, `panel_vs_crate.rs`, `blocked_gemm.rs` and `bf16_gemm.rs` measure
//! them.

pub mod adam;
pub mod bf16;
pub mod decoder_ce;
pub mod gemm;
#[cfg(target_arch = "x86_64")]
pub mod gemm_avx2;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod gpu;
pub mod kept;
pub mod lstm;
pub mod lstm_cell;
pub mod lstm_op;
pub mod math;
pub mod op;
#[cfg(target_arch = "x86_64")]
pub mod panel_avx2;
#[cfg(target_arch = "x86_64")]
pub mod panel_avx512;
pub mod panels;
pub mod peak;
pub mod transpose;
pub mod workers;

pub use bf16::{Precision, PrecisionChoice};
pub use op::{Compute, Kernels};
