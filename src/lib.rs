//! awd: weight-dropped recurrent language models (AWD-LSTM) on Burn.
//!
//! - [`dropout`]: DropConnect on any module's weights ([`WeightDropout`]), and the masks.
//! - [`nn`]: PyTorch-layout [`nn::Lstm`] and [`nn::Linear`].
//! - [`params`]: parameters by name (values, gradients, loading).

pub mod alloc;
pub mod audit;
pub mod bench;
pub mod checkpoint;
pub mod classify;
pub mod cli;
pub mod data;
pub mod device;
pub mod dist;
pub mod dropout;
pub mod error;
pub mod files;
pub mod hyper;
pub mod jobs;
pub mod kernels;
pub mod model;
pub mod nn;
pub mod params;
pub mod serve;
pub mod text;
pub mod train;

pub use dropout::{Masks, WeightDropout};
pub use error::{AwdError, Result};
