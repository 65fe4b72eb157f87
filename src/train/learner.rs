//! The fit loop every training job runs (fastai calls it the Learner): stage by stage, epoch by
//! epoch, batch → scheduled rate and β₁ → step → report; validation after each epoch, then a
//! checkpoint that resumes bit-identically. A job (the language model, the classifier) supplies
//! its batches, step, validation, layer groups and files ([`Job`]).

use crate::kernels::workers::on_pool_unsent;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::job::{Job, Plan, Scored};
use super::optim::non_monotone;
use super::optim_config::scheduled_lr;
use super::report::Reporter;
use super::run_dir::{Prepared, RunOptions};
use super::stage::{Stage, stage_at};
use super::state::{self, Checkpoint, Progress};
use super::step::{StepStats, TrainStep};
use crate::dropout::Masks;
use crate::error::{AwdError, Result};

/// A run in progress: the job, its model, the optimizer's step and where the run stands.
pub struct Learner<J: Job> {
    pub job: J,
    pub opts: RunOptions,
    pub(super) plan: Plan,
    /// `None` only while a step holds it.
    pub(super) model: Option<J::Model>,
    pub(super) step: TrainStep,
    masks: Masks,
    progress: Progress,
    report: Reporter,
    /// The stage whose layer groups the step holds (`None`: not set yet in this process).
    pub(super) stage: Option<usize>,
}

/// How a fit ended.
#[derive(Debug, Clone)]
pub enum Ended<M> {
    Finished(Fitted<M>),
    /// Stopped on request; the checkpoint continues it.
    Interrupted {
        step: usize,
        checkpoint: std::path::PathBuf,
    },
}

/// A finished fit.
#[derive(Debug, Clone)]
pub struct Fitted<M> {
    /// The last validation.
    pub metrics: M,
    pub steps: usize,
    pub tokens: u64,
    /// Seconds trained, earlier processes of a resumed run included.
    pub elapsed_s: f64,
    /// Seconds this process spent in training batches (not validation or checkpoints), over
    /// its steps but the first (which pays one-time allocations), and their tokens.
    pub train_s: f64,
    pub timed_steps: usize,
    pub train_tokens: u64,
}

impl<J: Job> Learner<J> {
    /// A new run of `job` from `model` (drawing its masks from `masks`) in a prepared directory.
    pub fn start(job: J, model: J::Model, masks: Masks, prepared: Prepared) -> Result<Self> {
        let plan = job.plan();
        plan.optim.validate()?;
        Stage::validate(&plan.stages)?;
        let step = TrainStep::new(&plan.optim);
        Self::assemble(
            job,
            model,
            step,
            masks,
            Progress::default(),
            prepared.into_options(),
            false,
        )
    }

    /// Continues the run of checkpoint `ck` (read from `opts.state_path()`): `model` is built as
    /// the job builds it, on `ck.masks()`.
    pub fn resume(
        mut job: J,
        model: J::Model,
        masks: Masks,
        ck: Checkpoint,
        opts: RunOptions,
    ) -> Result<Self> {
        let plan = job.plan();
        let (model, step) = ck.restore(&opts.state_path(), model, &plan.optim, &opts.device)?;
        let model = job.restore(model, &ck.job_state)?;
        Self::assemble(job, model, step, masks, ck.progress, opts, true)
    }

    fn assemble(
        job: J,
        model: J::Model,
        mut step: TrainStep,
        masks: Masks,
        progress: Progress,
        opts: RunOptions,
        resume: bool,
    ) -> Result<Self> {
        let plan = job.plan();
        let report = match opts.dist.is_writer() {
            true => Reporter::open(&opts.metrics_path(), resume, opts.progress, plan.log_every)?,
            false => Reporter::silent(),
        };
        // This rank's share of the job: gradients averaged over the ranks, activation masks of
        // its rows of the global batch.
        step.dist = opts.dist.clone();
        masks.share_rows(opts.dist.rank(), opts.dist.size());
        Ok(Self {
            job,
            opts,
            plan,
            model: Some(model),
            step,
            masks,
            progress,
            report,
            stage: None,
        })
    }

    /// Runs to the end (or to a stop request).
    pub fn fit(&mut self) -> Result<Ended<J::Metrics>> {
        let stages = self.plan.stages.clone();
        let per_epoch = self.job.steps_per_epoch();
        let epochs: usize = stages.iter().map(|s| s.epochs).sum();
        let total = match self.plan.max_steps {
            0 => epochs * per_epoch,
            max => max.min(epochs * per_epoch),
        };
        let (mut train_s, mut timed_steps, mut train_tokens) = (0.0, 0, 0u64);
        let (mut lr, mut last) = (stages[0].lr, None);
        let first_step = self.progress.step + 1;
        while self.progress.epoch < epochs && self.progress.step < total {
            let epoch = self.progress.epoch;
            if self.progress.pos == 0 {
                self.job
                    .start_epoch(self.model.as_mut().expect("model"), epoch);
            }
            let end = self.job.epoch_end();
            self.report.start_epoch(epoch, end, self.progress.pos);
            let (k, first, len) = stage_at(&stages, epoch, per_epoch, total);
            self.enter_stage(k)?;
            let mut started = Instant::now();
            while self.progress.pos < end && self.progress.step < total {
                if self.stop_requested() {
                    self.report.abandon();
                    self.save()?;
                    let (step, checkpoint) = (self.progress.step, self.opts.state_path());
                    return Ok(Ended::Interrupted { step, checkpoint });
                }
                let batch = self.job.batch(epoch, self.progress.pos)?;
                let at = self.progress.step.saturating_sub(first);
                if let Some(beta1) = self.plan.optim.momentum_at(at as f64 / len.max(1) as f64) {
                    self.step.set_momentum(beta1);
                }
                lr =
                    scheduled_lr(self.plan.optim.schedule, stages[k].lr, at, len) * batch.lr_factor;
                let model = self.model.take().expect("model present");
                let (job, step) = (&self.job, &mut self.step);
                let (model, stats) = pooled(self.opts.dist.size(), || {
                    job.step(step, model, batch.data, lr)
                })
                .map_err(|e| self.diverged(e, stages[k].lr))?;
                self.model = Some(model);
                let p = &mut self.progress;
                (p.pos, p.step, p.tokens) = (batch.end, p.step + 1, p.tokens + batch.tokens);
                if p.step == first_step {
                    started = Instant::now(); // one-time allocations: not timed
                } else {
                    (timed_steps, train_tokens) = (timed_steps + 1, train_tokens + batch.tokens);
                }
                self.report
                    .step(p.step, epoch, p.pos, stats.loss, batch.tokens, lr)?;
            }
            train_s += started.elapsed().as_secs_f64();
            let metrics = self.validate()?;
            self.after_validation(metrics.loss());
            if self.progress.pos >= end {
                (self.progress.epoch, self.progress.pos) = (epoch + 1, 0);
            }
            let p = &self.progress;
            self.report
                .validation(p.step, p.epoch, &metrics, lr, p.tokens)?;
            last = Some(metrics);
            self.save()?;
        }
        let metrics = match last {
            Some(m) => m,
            None => self.validate()?,
        };
        self.save()?;
        Ok(Ended::Finished(Fitted {
            metrics,
            steps: self.progress.step,
            tokens: self.progress.tokens,
            elapsed_s: self.report.elapsed(),
            train_s,
            timed_steps,
            train_tokens,
        }))
    }

    /// One step on `batch` at rate `lr` in the first stage's layer groups, outside the loop
    /// (what a benchmark times).
    pub fn step_once(&mut self, batch: J::Batch, lr: f64) -> Result<StepStats> {
        self.enter_stage(0)?;
        let model = self.model.take().expect("model present");
        let (job, step) = (&self.job, &mut self.step);
        let (model, stats) = pooled(self.opts.dist.size(), || job.step(step, model, batch, lr))?;
        self.model = Some(model);
        Ok(stats)
    }

    /// Whether to stop now: Ctrl-C here, or, in a data-parallel job, on any rank (the ranks
    /// decide together, so that all of them save and stop at the same step).
    fn stop_requested(&self) -> bool {
        let mut stop = [self.opts.stop.load(Ordering::SeqCst) as u8 as f64];
        if self.opts.dist.size() > 1 {
            self.opts.dist.sum_f64(&mut stop);
        }
        stop[0] > 0.0
    }

    /// Sets the layer groups of stage `k` (frozen or not, each group's rate) when it begins.
    fn enter_stage(&mut self, k: usize) -> Result<()> {
        let stages = &self.plan.stages;
        if self.stage == Some(k) || !Stage::uses_groups(stages) {
            return Ok(());
        }
        let (stage, n) = (stages[k], stages.len());
        let what = self.set_stage_groups(&stage)?;
        self.stage = Some(k);
        self.report.say(&format!("stage {} of {n}: {what}", k + 1));
        Ok(())
    }

    /// Puts the model's layer groups in the step as `stage` trains them; says what it trains.
    pub(super) fn set_stage_groups(&mut self, stage: &Stage) -> Result<String> {
        let model = self.model.take().expect("model present");
        let mut groups = self.job.groups(&model);
        let what = stage.configure(&mut groups);
        self.model = Some(self.step.set_groups(model, groups)?);
        Ok(what)
    }

    /// The weights to evaluate and publish: the averaged ones once NT-ASGD averages.
    pub fn published(&self) -> J::Model {
        let model = self.model.clone().expect("model present");
        match &self.step.averager {
            Some(a) => a.apply(model),
            None => model,
        }
    }

    /// Validates the published weights; a non-finite loss is a divergence.
    fn validate(&self) -> Result<J::Metrics> {
        let model = self.published();
        let metrics = pooled(self.opts.dist.size(), || self.job.validate(&model))?;
        if !metrics.loss().is_finite() {
            let e = AwdError::Diverged(format!("the validation loss is {}", metrics.loss()));
            return Err(self.diverged(e, self.plan.stages[0].lr));
        }
        Ok(metrics)
    }

    /// Records a validation loss; NT-ASGD switches to averaged SGD when the loss has not
    /// improved on the best of all but the last `nonmono` checks.
    fn after_validation(&mut self, val: f64) {
        let (p, optim) = (&mut self.progress, &self.plan.optim);
        if optim.asgd && !p.averaging && non_monotone(&p.val_losses, val, optim.nonmono) {
            p.averaging = true;
            self.step.start_averaging(optim);
            self.report.say(&format!(
                "NT-ASGD: validation stopped improving, averaging from step {}",
                p.step
            ));
        }
        p.val_losses.push(val);
        p.best_val = Some(p.best_val.map_or(val, |b| b.min(val)));
    }

    /// Writes the checkpoint (every rank takes part), the curves and the job's files.
    fn save(&mut self) -> Result<()> {
        let model = self.model.as_ref().expect("model present");
        let job_state = self.job.capture(model, &self.progress)?;
        let ck = Checkpoint::capture(
            self.job.describe(),
            job_state,
            self.progress.clone(),
            model,
            &self.step,
            &self.masks,
        )?;
        if !self.opts.dist.is_writer() {
            return Ok(());
        }
        state::save(&self.opts.state_path(), &ck)?;
        self.report.flush()?;
        super::plot::plot(&self.opts.metrics_path(), &self.opts.plot_path())?;
        self.job
            .publish(&self.published(), &self.progress, &self.opts)
    }

    /// A diverged step as the user sees it: which step, what to try, what was kept.
    fn diverged(&self, e: AwdError, lr: f64) -> AwdError {
        let AwdError::Diverged(what) = e else {
            return e;
        };
        let state = self.opts.state_path();
        let kept = match state.exists() {
            true => format!("the last good checkpoint is {}", state.display()),
            false => "no checkpoint had been written yet".to_string(),
        };
        AwdError::Diverged(format!(
            "{what} at step {} (epoch {}); try a lower learning rate than {lr:e}; {kept}",
            self.progress.step + 1,
            self.progress.epoch + 1,
        ))
    }
}

/// Runs `f` (a step, a validation) on the kernels' thread pool, which its kernels then split
/// their work over without a hand-over each ([`crate::kernels::workers`]); here in a
/// data-parallel job (`ranks` > 1), whose MPI calls belong to the thread that started MPI.
fn pooled<R>(ranks: usize, f: impl FnOnce() -> R) -> R {
    match ranks {
        // SAFETY: what `f` holds that is not `Send` is the job's `Rc<Dist>` (its clones all in
        // the learner, on this thread), and with one rank there is no MPI communicator.
        1 => unsafe { on_pool_unsent(f) },
        _ => f(),
    }
}
