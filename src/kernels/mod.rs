//! Fused CPU kernels on Burn's extension points, checked against the reference implementations.

pub mod adam;
pub mod decoder_ce;
pub mod gemm;
pub mod lstm;
pub mod lstm_op;
pub mod math;
pub mod panels;
