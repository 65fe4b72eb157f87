//! The training loop of a language model: batch → step → report → evaluate → save.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::config::{OptimizerKind, TrainConfig};
use super::eval::mean_loss;
use super::optim::{non_monotone, scheduled_lr};
use super::report::Reporter;
use super::run_dir::{Outcome, Prepared, RunOptions, Summary};
use super::state::{self, Live, Progress, TrainCheckpoint, init_model};
use super::step::TrainStep;
use crate::checkpoint::native;
use crate::data::{Dataset, Rows};
use crate::error::{AwdError, Result};
use crate::model::LanguageModel;

/// A training run in progress.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub data: Dataset,
    pub opts: RunOptions,
    /// `None` only while a step holds it.
    model: Option<LanguageModel>,
    live: Live,
    progress: Progress,
    report: Reporter,
}

impl Trainer {
    /// Starts a new run in the prepared directory.
    pub fn new(cfg: TrainConfig, data: Dataset, prepared: Prepared) -> Result<Self> {
        let opts = prepared.0;
        cfg.validate()?;
        if cfg.asgd && cfg.optimizer != OptimizerKind::Sgd {
            return Err(AwdError::Config(
                "--asgd (NT-ASGD) averages SGD iterates: use it with --optimizer sgd".into(),
            ));
        }
        let (model, masks) = init_model(&cfg, data.vocab.len(), &opts.device)?;
        let model = Some(model);
        let live = Live {
            step: TrainStep::new(&cfg),
            masks,
            windows: state::window_lengths(&cfg),
        };
        let report = Reporter::open(&opts.metrics_path(), false, opts.progress, cfg.log_every)?;
        Ok(Self {
            progress: Progress::start(),
            cfg,
            data,
            opts,
            model,
            live,
            report,
        })
    }

    /// Continues the run of checkpoint `ck` (read from `opts.state_path()`) on `data`, the data it
    /// started on (the vocabulary is checked).
    pub fn resume(ck: TrainCheckpoint, data: Dataset, opts: RunOptions) -> Result<Self> {
        let (model, live) = ck.restore(&opts.state_path(), &data, &opts.device)?;
        let report = Reporter::open(
            &opts.metrics_path(),
            true,
            opts.progress,
            ck.config.log_every,
        )?;
        Ok(Self {
            cfg: ck.config,
            progress: ck.progress,
            data,
            opts,
            model: Some(model),
            live,
            report,
        })
    }

    /// Runs to the end (or to a stop request).
    pub fn run(&mut self) -> Result<Outcome> {
        let cfg = self.cfg.clone();
        let rows = Rows::new(&self.data.train, cfg.batch_size)?;
        let last = rows.row_len.saturating_sub(2);
        let planned = cfg.epochs * (rows.row_len - 1).div_ceil(cfg.bptt);
        let total_steps = match cfg.max_steps {
            0 => planned,
            max => max.min(planned),
        };
        let (mut train_s, mut timed_steps, mut train_tokens, mut lr) = (0.0, 0, 0u64, cfg.lr);
        let mut last_val = None;
        let first_step = self.progress.step + 1;
        while self.progress.epoch < cfg.epochs && self.progress.step < total_steps {
            if self.progress.pos == 0
                && let Some(m) = self.model.as_mut()
            {
                m.reset();
            }
            let p = &self.progress;
            self.report.start_epoch(p.epoch, rows.row_len, p.pos);
            let mut started = Instant::now();
            while self.progress.pos < last && self.progress.step < total_steps {
                if self.opts.stop.load(Ordering::SeqCst) {
                    self.report.abandon();
                    self.save()?;
                    let (step, checkpoint) = (self.progress.step, self.opts.state_path());
                    return Ok(Outcome::Interrupted { step, checkpoint });
                }
                let (x, y) = rows.window(
                    self.progress.pos,
                    self.live.windows.next_len(),
                    &self.opts.device,
                );
                let seq = x.dims()[1];
                let base = scheduled_lr(cfg.schedule, cfg.lr, self.progress.step, total_steps);
                lr = if cfg.variable_bptt {
                    base * seq as f64 / cfg.bptt as f64
                } else {
                    base
                };
                let model = self.model.take().expect("model present");
                let (model, stats) = self
                    .live
                    .step
                    .lm(model, x, y, lr)
                    .map_err(|e| self.diverged(e))?;
                self.model = Some(model);
                let p = &mut self.progress;
                let tokens = (cfg.batch_size * seq) as u64;
                (p.pos, p.step, p.tokens) = (p.pos + seq, p.step + 1, p.tokens + tokens);
                if p.step == first_step {
                    // This process's first step pays one-time allocations: not timed.
                    started = Instant::now();
                } else {
                    (timed_steps, train_tokens) = (timed_steps + 1, train_tokens + tokens);
                }
                self.report
                    .step(p.step, p.epoch, p.pos, stats.loss, tokens, lr)?;
            }
            train_s += started.elapsed().as_secs_f64();
            let val = self.evaluate(&self.data.valid)?;
            if !val.is_finite() {
                let e = AwdError::Diverged(format!("the validation loss is {val}"));
                return Err(self.diverged(e));
            }
            last_val = Some(val);
            self.after_validation(val);
            if self.progress.pos >= last {
                self.progress.epoch += 1;
                self.progress.pos = 0;
            }
            let p = &self.progress;
            self.report.validation(p.step, p.epoch, val, lr, p.tokens)?;
            self.save()?;
        }
        let valid_loss = match last_val {
            Some(v) => v,
            None => self.evaluate(&self.data.valid)?,
        };
        let test_loss = self
            .data
            .test
            .as_ref()
            .map(|t| self.evaluate(t))
            .transpose()?;
        self.save()?;
        Ok(Outcome::Finished(Summary {
            valid_loss,
            test_loss,
            steps: self.progress.step,
            tokens: self.progress.tokens,
            elapsed_s: self.report.elapsed(),
            train_s,
            timed_steps,
            train_tokens,
            entropy_rate: self.data.entropy_rate,
            model_path: self.opts.model_path(),
            metrics_path: self.report.metrics_path().to_path_buf(),
            plot_path: self.opts.plot_path(),
        }))
    }

    /// The weights to evaluate and publish: the averaged ones once NT-ASGD averages.
    fn eval_model(&self) -> LanguageModel {
        self.live
            .published(self.model.as_ref().expect("model present"))
    }

    fn evaluate(&self, ids: &[u32]) -> Result<f64> {
        let (batch, bptt) = (self.cfg.eval_batch_size, self.cfg.bptt);
        let device = self.opts.device.clone().without_autodiff();
        mean_loss(&mut self.eval_model(), ids, batch, bptt, &device)
    }

    /// Writes the checkpoint, the curves and the model.
    fn save(&mut self) -> Result<()> {
        let model = self.model.as_ref().expect("model present");
        let ck = TrainCheckpoint::capture(
            &self.cfg,
            &self.data,
            self.progress.clone(),
            model,
            &self.live,
        )?;
        state::save(&self.opts.state_path(), &ck)?;
        self.report.flush()?;
        super::plot::plot(self.report.metrics_path(), &self.opts.plot_path())?;
        let info = self.progress.model_info(&self.cfg, &self.data);
        native::save(&self.opts.model_path(), &self.eval_model(), &info)
    }

    /// A diverged step as the user sees it: which step, what to try, what was kept.
    fn diverged(&self, e: AwdError) -> AwdError {
        let AwdError::Diverged(what) = e else {
            return e;
        };
        let state = self.opts.state_path();
        let kept = if state.exists() {
            format!("the last good checkpoint is {}", state.display())
        } else {
            "no checkpoint had been written yet".to_string()
        };
        AwdError::Diverged(format!(
            "{what} at step {} (epoch {}); try a lower learning rate than --lr {:e}; {kept}",
            self.progress.step + 1,
            self.progress.epoch + 1,
            self.cfg.lr
        ))
    }

    /// Records a validation loss; NT-ASGD switches to averaged SGD when the loss has not improved
    /// on the best of all but the last `nonmono` checks.
    fn after_validation(&mut self, val: f64) {
        let p = &mut self.progress;
        if self.cfg.asgd && !p.averaging && non_monotone(&p.val_losses, val, self.cfg.nonmono) {
            p.averaging = true;
            self.live.step.start_averaging(&self.cfg);
            self.report.say(&format!(
                "NT-ASGD: validation stopped improving, averaging from step {}",
                p.step
            ));
        }
        p.val_losses.push(val);
        p.best_val = Some(p.best_val.map_or(val, |b| b.min(val)));
    }
}
