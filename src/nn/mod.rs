//! Layers in PyTorch's layout: the modules awd wraps and the models are built from.

pub mod batch_norm;
pub mod linear;
pub mod lstm;

pub use batch_norm::BatchNorm1d;
pub use linear::{Linear, LinearConfig};
pub use lstm::{Lstm, LstmConfig, LstmState};
