//! Training: the fit loop every job runs ([`Learner`]), what a job plugs into it ([`Job`]), the
//! language model's job, configuration and presets, optimizers, schedules and stages,
//! checkpoints, evaluation and metrics.

pub mod config;
pub mod eval;
pub mod job;
pub mod learner;
pub mod lm_job;
pub mod lr_find;
pub mod metrics;
pub mod optim;
pub mod optim_config;
pub mod plot;
pub mod pretrained;
pub mod ranks;
pub mod report;
pub mod run_dir;
pub mod stage;
pub mod state;
pub mod step;

pub use crate::params::groups::Group;
pub use config::{Preset, TrainConfig, TrainFlags};
pub use job::{Batch, Job, JobState, Plan, Scored};
pub use learner::{Ended, Fitted, Learner};
pub use lm_job::{LmJob, Outcome, Summary, Trainer, init_model};
pub use optim_config::{OptimConfig, OptimFlags, OptimizerKind, Schedule};
pub use run_dir::{Prepared, RunOptions};
pub use stage::Stage;
pub use step::{StepStats, TrainStep};
