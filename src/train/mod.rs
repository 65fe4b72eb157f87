//! Training: configuration and presets, optimizers and schedules, the loop, checkpoints,
//! evaluation and metrics.

pub mod config;
pub mod eval;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod pretrained;
pub mod ranks;
pub mod report;
pub mod run_dir;
pub mod state;
pub mod step;
pub mod trainer;

pub use config::{OptimizerKind, Preset, Schedule, TrainConfig, TrainFlags};
pub use run_dir::{Outcome, Prepared, RunOptions, Summary};
pub use state::init_model;
pub use step::{Group, StepStats, TrainStep, lm_groups};
pub use trainer::Trainer;
