//! The training loop of a language model: batch → step → report → evaluate → save.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::config::{OptimizerKind, Schedule, Stage, TrainConfig};
use super::eval::loss_sum;
use super::optim::{combined_cos, non_monotone, scheduled_lr};
use super::pretrained::Pretrained;
use super::ranks::{gather_rows, join, own_rows, reporter};
use super::report::Reporter;
use super::run_dir::{Outcome, Prepared, RunOptions, Summary};
use super::state::{self, Live, Progress, TrainCheckpoint, init_model};
use super::step::{TrainStep, lm_groups};
use crate::checkpoint::{fastai, native};
use crate::data::{Dataset, Level, Rows, fastai_vocab};
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
    /// The stage whose layer groups the step holds (`None`: not set yet in this process).
    stage: Option<usize>,
}

impl Trainer {
    /// Starts a new run in the prepared directory, from random weights or from `pretrained` ones
    /// (matched to the data's vocabulary).
    pub fn new(
        cfg: TrainConfig,
        data: Dataset,
        prepared: Prepared,
        pretrained: Option<&Pretrained>,
    ) -> Result<Self> {
        let opts = prepared.0;
        cfg.validate()?;
        if cfg.asgd && cfg.optimizer != OptimizerKind::Sgd {
            return Err(AwdError::Config(
                "--asgd (NT-ASGD) averages SGD iterates: use it with --optimizer sgd".into(),
            ));
        }
        let (mut model, masks) = init_model(&cfg, data.vocab.len(), &opts.device)?;
        if let Some(p) = pretrained {
            model = p.model(&cfg, &data.vocab, &masks, &opts.device)?;
            model.set_precision(cfg.precision);
        }
        let model = Some(model);
        let live = Live {
            step: TrainStep::new(&cfg),
            masks,
            windows: state::window_lengths(&cfg),
        };
        let report = reporter(&opts, false, cfg.log_every)?;
        let live = join(live, &opts)?;
        Ok(Self {
            progress: Progress::start(),
            cfg,
            data,
            opts,
            model,
            live,
            report,
            stage: None,
        })
    }

    /// Continues the run of checkpoint `ck` (read from `opts.state_path()`) on `data`, the data it
    /// started on (the vocabulary is checked).
    pub fn resume(ck: TrainCheckpoint, data: Dataset, opts: RunOptions) -> Result<Self> {
        let (mut model, live) = ck.restore(&opts.state_path(), &data, &opts.device)?;
        own_rows(&mut model, &opts.dist)?;
        let live = join(live, &opts)?;
        let report = reporter(&opts, true, ck.config.log_every)?;
        Ok(Self {
            cfg: ck.config,
            progress: ck.progress,
            data,
            opts,
            model: Some(model),
            live,
            report,
            stage: None,
        })
    }

    /// Runs to the end (or to a stop request).
    pub fn run(&mut self) -> Result<Outcome> {
        let cfg = self.cfg.clone();
        let rows = Rows::new(&self.data.train, cfg.batch_size)?;
        let (first, count) = self.opts.dist.rows(cfg.batch_size, "--batch-size")?;
        let rows = rows.share(first, count);
        // Checked now rather than at the first validation, an epoch later.
        self.opts
            .dist
            .rows(cfg.eval_batch_size, "--eval-batch-size")?;
        let last = rows.row_len.saturating_sub(2);
        let stages = cfg.stages();
        let spe = (rows.row_len - 1).div_ceil(cfg.bptt);
        let epochs: usize = stages.iter().map(|s| s.epochs).sum();
        let planned = epochs * spe;
        let total_steps = match cfg.max_steps {
            0 => planned,
            max => max.min(planned),
        };
        let (mut train_s, mut timed_steps, mut train_tokens, mut lr) = (0.0, 0, 0u64, cfg.lr);
        let mut last_val = None;
        let first_step = self.progress.step + 1;
        while self.progress.epoch < epochs && self.progress.step < total_steps {
            if self.progress.pos == 0
                && let Some(m) = self.model.as_mut()
            {
                m.reset();
            }
            let p = &self.progress;
            self.report.start_epoch(p.epoch, rows.row_len, p.pos);
            let mut started = Instant::now();
            while self.progress.pos < last && self.progress.step < total_steps {
                if self.stop_requested() {
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
                let (k, first, len) = stage_at(&stages, self.progress.epoch, spe, total_steps);
                self.enter_stage(k, &stages)?;
                let at = self.progress.step.saturating_sub(first);
                let base = scheduled_lr(cfg.schedule, stages[k].lr, at, len);
                if cfg.beta1_low > 0.0 && cfg.schedule == Schedule::OneCycle {
                    let pos = (at as f64 / len.max(1) as f64).min(1.0);
                    let mom = combined_cos(0.25, cfg.beta1, cfg.beta1_low, cfg.beta1, pos);
                    self.live.step.set_momentum(mom);
                }
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
            metrics_path: self.opts.metrics_path(),
            plot_path: self.opts.plot_path(),
        }))
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
    fn enter_stage(&mut self, k: usize, stages: &[Stage]) -> Result<()> {
        if self.stage == Some(k) || !self.cfg.uses_groups() {
            return Ok(());
        }
        let stage = stages[k];
        let model = self.model.take().expect("model present");
        let mut groups = lm_groups(&model);
        let n = groups.len();
        for (i, g) in groups.iter_mut().enumerate() {
            g.frozen = stage.frozen && i + 1 < n;
            g.lr_factor = discriminative_factor(stage.lr, stage.lr_low, i, n);
        }
        self.model = Some(self.live.step.set_groups(model, groups)?);
        self.stage = Some(k);
        if stages.len() > 1 || stage.lr_low > 0.0 {
            let rates = if stage.lr_low > 0.0 {
                format!(
                    "rates {:.1e} to {:.1e} across the layer groups",
                    stage.lr_low, stage.lr
                )
            } else {
                format!("rate {:.1e}", stage.lr)
            };
            let what = if stage.frozen {
                "frozen but the embedding + decoder"
            } else {
                "unfrozen"
            };
            self.report.say(&format!(
                "stage {} of {}: {} epoch(s), {what}, {rates}",
                k + 1,
                stages.len(),
                stage.epochs
            ));
        }
        Ok(())
    }

    /// The weights to evaluate and publish: the averaged ones once NT-ASGD averages.
    fn eval_model(&self) -> LanguageModel {
        self.live
            .published(self.model.as_ref().expect("model present"))
    }

    /// Mean cross-entropy on `ids`, each rank evaluating its share of the rows.
    fn evaluate(&self, ids: &[u32]) -> Result<f64> {
        let (batch, bptt) = (self.cfg.eval_batch_size, self.cfg.bptt);
        let device = self.opts.device.clone().without_autodiff();
        let dist = &self.opts.dist;
        let (first, count) = dist.rows(batch, "--eval-batch-size")?;
        let rows = Rows::new(ids, batch)?.share(first, count);
        let (total, n) = loss_sum(&mut self.eval_model(), &rows, bptt, &device)?;
        let mut sums = [total, n as f64];
        dist.sum_f64(&mut sums);
        Ok(sums[0] / sums[1].max(1.0))
    }

    /// Writes the checkpoint, the curves and the model.
    fn save(&mut self) -> Result<()> {
        let model = self.model.as_ref().expect("model present");
        // Every rank takes part: the checkpoint holds the hidden state of the global batch's rows.
        let model = &gather_rows(model, &self.opts.dist);
        let ck = TrainCheckpoint::capture(
            &self.cfg,
            &self.data,
            self.progress.clone(),
            model,
            &self.live,
        )?;
        if !self.opts.dist.is_writer() {
            return Ok(());
        }
        state::save(&self.opts.state_path(), &ck)?;
        self.report.flush()?;
        super::plot::plot(&self.opts.metrics_path(), &self.opts.plot_path())?;
        let info = self.progress.model_info(&self.cfg, &self.data);
        let model = self.eval_model();
        native::save(&self.opts.model_path(), &model, &info)?;
        if self.data.level == Level::Fastai {
            // What fastai reads: the encoder alone (`load_encoder`) and the vocabulary.
            fastai::write_tensors(
                &self.opts.encoder_path(),
                &fastai::encoder_state_dict(&model),
            )?;
            fastai_vocab::write_pickle(&self.opts.vocab_path(), &self.data.vocab)?;
        }
        Ok(())
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

/// The stage of `epoch`, its first step and its length in steps (`spe` steps an epoch). A single
/// stage spans the run's `total` steps (which --max-steps may shorten).
fn stage_at(stages: &[Stage], epoch: usize, spe: usize, total: usize) -> (usize, usize, usize) {
    if stages.len() == 1 {
        return (0, 0, total);
    }
    let mut first_epoch = 0;
    for (k, s) in stages.iter().enumerate() {
        if epoch < first_epoch + s.epochs || k + 1 == stages.len() {
            return (k, first_epoch * spe, s.epochs * spe);
        }
        first_epoch += s.epochs;
    }
    unreachable!("stages are not empty")
}

/// fastai's `slice(lr_low, lr)` over `n` groups: group `i`'s rate over `lr`, geometric from
/// `lr_low` to `lr` (`even_mults`); 1 for every group without `lr_low`.
pub fn discriminative_factor(lr: f64, lr_low: f64, i: usize, n: usize) -> f64 {
    if lr_low <= 0.0 || n < 2 {
        return 1.0;
    }
    let step = (lr / lr_low).powf(1.0 / (n - 1) as f64);
    lr_low * step.powi(i as i32) / lr
}
