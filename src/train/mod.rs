//! Training: configuration and presets, optimizers and schedules, the loop, checkpoints,
//! evaluation and metrics.

pub mod config;
pub mod eval;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod state;
pub mod trainer;

pub use config::{OptimizerKind, Preset, Schedule, TrainConfig, TrainFlags};
pub use trainer::{Outcome, RunOptions, Summary, Trainer};
