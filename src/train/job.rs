//! What a job plugs into the [`Learner`](super::Learner): its model, its batches, its step, its
//! validation, its layer groups and what it saves. The language model and the classifier are
//! the two jobs; everything else (schedules, stages, checkpoints, resume, Ctrl-C, divergence,
//! data-parallel ranks, progress and metrics) is the learner's.

use burn::module::Module;

use super::optim_config::OptimConfig;
use super::stage::Stage;
pub use super::state::JobState;
use super::state::Progress;
use super::step::{StepStats, TrainStep};
use crate::error::Result;
use crate::params::groups::Group;
use crate::train::RunOptions;

/// The run a job asks of the learner.
#[derive(Debug, Clone)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub optim: OptimConfig,
    /// Stop after this many steps in all (0: no limit).
    pub max_steps: usize,
    /// Log the training loss every this many steps.
    pub log_every: usize,
}

/// One training batch and what the loop needs to know of it.
pub struct Batch<B> {
    pub data: B,
    /// The epoch position after this batch (the job's unit: tokens, batches).
    pub end: usize,
    /// Tokens it holds (throughput).
    pub tokens: u64,
    /// Its learning rate over the scheduled one (the language model's window length over bptt).
    pub lr_factor: f64,
}

/// A job's validation result: its loss, and its accuracy where it has one.
pub trait Scored: Clone {
    fn loss(&self) -> f64;
    fn accuracy(&self) -> Option<f64> {
        None
    }
}

impl Scored for f64 {
    fn loss(&self) -> f64 {
        *self
    }
}

/// A training job.
pub trait Job {
    /// The model trained (on an autodiff device).
    type Model: Module + Clone;
    /// A training batch.
    type Batch;
    /// What a validation measures.
    type Metrics: Scored;

    fn plan(&self) -> Plan;
    /// The model's layer groups, first to last (fastai's splitter for this model).
    fn groups(&self, model: &Self::Model) -> Vec<Group>;
    /// Steps in an epoch, as the schedule counts them.
    fn steps_per_epoch(&self) -> usize;
    /// The position at which an epoch is over.
    fn epoch_end(&self) -> usize;
    /// An epoch begins at its start (not when a resumed run continues inside it).
    fn start_epoch(&mut self, _model: &mut Self::Model, _epoch: usize) {}
    /// The batch at position `pos` of `epoch`.
    fn batch(&mut self, epoch: usize, pos: usize) -> Result<Batch<Self::Batch>>;
    /// One optimizer step on `batch` at rate `lr`.
    fn step(
        &self,
        step: &mut TrainStep,
        model: Self::Model,
        batch: Self::Batch,
        lr: f64,
    ) -> Result<(Self::Model, StepStats)>;
    /// Scores `model` (the weights to publish) on the validation data.
    fn validate(&self, model: &Self::Model) -> Result<Self::Metrics>;

    /// What rebuilds this job on resume (its configuration, vocabulary, ...).
    fn describe(&self) -> serde_json::Value;
    /// This job's state at a checkpoint (called on every rank: the ranks may take part).
    fn capture(&self, model: &Self::Model, progress: &Progress) -> Result<JobState>;
    /// The state of [`capture`](Self::capture) put back.
    fn restore(&mut self, model: Self::Model, state: &JobState) -> Result<Self::Model>;
    /// Writes the files a user reads (the model file, fastai's files), on the writing rank.
    fn publish(&self, model: &Self::Model, progress: &Progress, opts: &RunOptions) -> Result<()>;
}
