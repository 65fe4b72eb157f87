//! The training loop of a language model: batch → step → report → evaluate → save.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use burn::tensor::Device;

use super::config::{OptimizerKind, TrainConfig};
use super::eval::mean_loss;
use super::optim::{non_monotone, scheduled_lr};
use super::report::Reporter;
use super::run_dir::{Prepared, RunOptions};
use super::state::{self, Live, Progress, TrainCheckpoint};
use super::step::TrainStep;
use crate::checkpoint::native::{self, ModelInfo};
use crate::data::{Dataset, Rows};
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::LanguageModel;

/// How a run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Finished(Summary),
    /// Stopped on request; the checkpoint continues it.
    Interrupted {
        step: usize,
        checkpoint: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub valid_loss: f64,
    pub test_loss: Option<f64>,
    pub steps: usize,
    pub tokens: u64,
    pub elapsed_s: f64,
    /// Seconds this process spent in training windows (data, step, progress, metrics), without
    /// evaluation and checkpoints: what `awd bench --loop` compares with the step alone.
    pub train_s: f64,
    /// Tokens this process trained on.
    pub train_tokens: u64,
    /// The least loss possible on this data, when known.
    pub entropy_rate: Option<f64>,
    pub model_path: PathBuf,
    pub metrics_path: PathBuf,
    pub plot_path: PathBuf,
}

/// The model a run of `cfg` starts from, and the masks it draws: seeded by `cfg.seed`, with
/// parameter ids that depend only on the structure.
pub fn init_model(
    cfg: &TrainConfig,
    vocab: usize,
    device: &Device,
) -> Result<(LanguageModel, Masks)> {
    device.seed(cfg.seed);
    let masks = Masks::seeded(cfg.seed);
    let model = LanguageModel::new(&cfg.model.with_vocab(vocab), &masks, device)?;
    Ok((state::structural_param_ids(model), masks))
}

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
            progress: Progress::start(cfg.optimizer),
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
        let path = opts.state_path();
        if data.vocab.itos() != ck.vocab.as_slice() {
            return Err(AwdError::checkpoint(
                &path,
                format!(
                    "its vocabulary ({} tokens) does not fit this data ({} tokens): resume with the data the run started on",
                    ck.vocab.len(),
                    data.vocab.len()
                ),
            ));
        }
        let (model, live) = ck.restore(&path, &opts.device)?;
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
        let total_steps = if cfg.max_steps > 0 {
            cfg.max_steps.min(planned)
        } else {
            planned
        };
        let (mut train_s, mut train_tokens, mut lr) = (0.0, 0u64, cfg.lr);
        let mut last_val = None;
        while self.progress.epoch < cfg.epochs && self.progress.step < total_steps {
            if self.progress.pos == 0 {
                self.model().reset();
            }
            let p = &self.progress;
            self.report.start_epoch(p.epoch, rows.row_len, p.pos);
            let started = Instant::now();
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
                train_tokens += tokens;
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
        self.progress.finished = true;
        self.save()?;
        Ok(Outcome::Finished(Summary {
            valid_loss,
            test_loss,
            steps: self.progress.step,
            tokens: self.progress.tokens,
            elapsed_s: self.report.elapsed(),
            train_s,
            train_tokens,
            entropy_rate: self.data.entropy_rate,
            model_path: self.opts.model_path(),
            metrics_path: self.report.metrics_path().to_path_buf(),
            plot_path: self.opts.plot_path(),
        }))
    }

    fn model(&mut self) -> &mut LanguageModel {
        self.model
            .as_mut()
            .expect("the model is only moved out during a step")
    }

    /// The weights to evaluate and publish: the averaged ones once NT-ASGD averages.
    fn eval_model(&self) -> LanguageModel {
        let m = self.model.clone().expect("model present");
        let m = match &self.live.step.averager {
            Some(a) => a.apply(m),
            None => m,
        };
        let mut m = burn::module::Module::valid(&m);
        m.reset();
        m
    }

    fn evaluate(&self, ids: &[u32]) -> Result<f64> {
        let device = self.opts.device.clone().without_autodiff();
        mean_loss(
            &mut self.eval_model(),
            ids,
            self.cfg.eval_batch_size,
            self.cfg.bptt,
            &device,
        )
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
        let info = ModelInfo {
            vocab: self.data.vocab.itos().to_vec(),
            extra: serde_json::json!({
                "level": self.data.level,
                "specials": self.cfg.specials,
                "steps": self.progress.step,
                "epoch": self.progress.epoch,
                "best_val_loss": self.progress.best_val,
            }),
        };
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
            p.optimizer = OptimizerKind::Sgd;
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
