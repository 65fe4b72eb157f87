//! The training loop: AWD-LSTM windows, AR/TAR, clipping, NT-ASGD, checkpoints and resume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Bytes, Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::config::{OptimizerKind, TrainConfig};
use super::eval::mean_loss;
use super::metrics::{Metrics, Row};
use super::optim::{
    Averager, build, clip_global_norm, grad_norms, non_finite_gradient, scheduled_lr,
};
use super::state::{self, Progress, TrainCheckpoint};
use crate::checkpoint::native::{self, ModelInfo};
use crate::data::{Dataset, Rows, WindowLengths};
use crate::dropout::{Masks, RngMasks};
use crate::error::{AwdError, Result};
use crate::model::LanguageModel;
use crate::nn::LstmState;
use crate::params::{HostTensor, load_values, named_values};

/// Where a run writes, and how it is driven.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    pub device: Device,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// Set (by Ctrl-C) to stop after the current step, saving a checkpoint.
    pub stop: Arc<AtomicBool>,
}

impl RunOptions {
    pub fn model_path(&self) -> PathBuf {
        self.out_dir.join("model.safetensors")
    }
    pub fn state_path(&self) -> PathBuf {
        self.out_dir.join("train-state.safetensors")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.out_dir.join("metrics.csv")
    }
    pub fn plot_path(&self) -> PathBuf {
        self.out_dir.join("curves.png")
    }
}

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
    /// The least loss possible on this data, when known.
    pub entropy_rate: Option<f64>,
    pub model_path: PathBuf,
    pub metrics_path: PathBuf,
    pub plot_path: PathBuf,
}

/// A training run in progress.
pub struct Trainer {
    pub cfg: TrainConfig,
    pub data: Dataset,
    pub opts: RunOptions,
    model: Option<LanguageModel>,
    optim: ModuleOptimizer,
    masks: Masks,
    windows: WindowLengths,
    progress: Progress,
    averager: Option<Averager>,
    metrics: Metrics,
    /// Seconds the run had trained before this process (from its metrics).
    elapsed_before: f64,
}

impl Trainer {
    /// Starts a new run in `opts.out_dir` (which must not hold a run already).
    pub fn new(cfg: TrainConfig, data: Dataset, opts: RunOptions, overwrite: bool) -> Result<Self> {
        cfg.validate()?;
        if cfg.asgd && cfg.optimizer != OptimizerKind::Sgd {
            return Err(AwdError::Config(
                "--asgd (NT-ASGD) averages SGD iterates: use it with --optimizer sgd".into(),
            ));
        }
        prepare_out_dir(&opts, overwrite)?;
        opts.device.seed(cfg.seed);
        let masks = Masks::seeded(cfg.seed);
        let model = LanguageModel::new(&cfg.model(data.vocab.len()), &masks, &opts.device)?;
        let model = state::structural_param_ids(model);
        let progress = Progress {
            epoch: 0,
            pos: 0,
            step: 0,
            best_val: None,
            val_losses: Vec::new(),
            optimizer: cfg.optimizer,
            averaging: false,
            masks_rng: Vec::new(),
            windows_rng: (String::new(), 0),
            param_ids: BTreeMap::new(),
            tokens: 0,
            finished: false,
        };
        Ok(Self {
            optim: build(&cfg, cfg.optimizer),
            windows: WindowLengths::new(cfg.bptt, cfg.variable_bptt, cfg.seed.wrapping_add(1)),
            metrics: Metrics::open(&opts.metrics_path(), false)?,
            model: Some(model),
            masks,
            progress,
            averager: None,
            elapsed_before: 0.0,
            cfg,
            data,
            opts,
        })
    }

    /// Continues the run whose checkpoint is in `opts.out_dir`. `data` must be the same data
    /// (its vocabulary is checked against the checkpoint's).
    pub fn resume(data: Dataset, opts: RunOptions) -> Result<Self> {
        let path = opts.state_path();
        let ck = state::load(&path)?;
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
        let cfg = ck.config.clone();
        let p = &ck.progress;
        let masks = Masks::new(
            RngMasks::from_state(&p.masks_rng)
                .ok_or_else(|| AwdError::checkpoint(&path, "mask RNG state unreadable"))?,
        );
        let model = LanguageModel::new(&cfg.model(ck.vocab.len()), &masks, &opts.device)?;
        let model = load_values(model, &ck.model)
            .map_err(|e| AwdError::checkpoint(&path, e.to_string()))?;
        let mut model = state::restore_param_ids(model, &p.param_ids);
        if !ck.hidden.is_empty() {
            let hidden = ck
                .hidden
                .iter()
                .map(|(h, c)| {
                    Ok(LstmState {
                        h: h.to_tensor(&opts.device)?,
                        c: c.to_tensor(&opts.device)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            model.parts.encoder.hidden = Some(hidden);
        }
        let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(ck.optimizer.clone()))
            .map_err(|e| AwdError::checkpoint(&path, format!("optimizer state: {e:?}")))?;
        let optim = build(&cfg, p.optimizer).load_record(record);
        let mut windows = WindowLengths::new(cfg.bptt, cfg.variable_bptt, cfg.seed.wrapping_add(1));
        let pos: u128 = p
            .windows_rng
            .0
            .parse()
            .map_err(|_| AwdError::checkpoint(&path, "window RNG state unreadable"))?;
        windows.restore((pos, p.windows_rng.1));
        let averager = p.averaging.then(|| Averager {
            count: ck.averaged_count,
            sums: ck
                .averages
                .iter()
                .map(|(k, v)| {
                    let flat = HostTensor::new(vec![v.values.len()], v.values.clone());
                    (
                        k.clone(),
                        flat.to_tensor::<1>(&opts.device.clone().without_autodiff())
                            .expect("rank 1"),
                    )
                })
                .collect(),
        });
        Ok(Self {
            elapsed_before: super::metrics::last_elapsed(&opts.metrics_path()),
            metrics: Metrics::open(&opts.metrics_path(), true)?,
            optim,
            windows,
            masks,
            averager,
            progress: ck.progress,
            model: Some(model),
            cfg,
            data,
            opts,
        })
    }

    fn model(&mut self) -> &mut LanguageModel {
        self.model
            .as_mut()
            .expect("the model is only moved out during a step")
    }

    /// The weights to evaluate and publish: the averaged ones once NT-ASGD averages.
    fn eval_model(&self) -> LanguageModel {
        let m = self.model.as_ref().expect("model present").clone();
        let m = match &self.averager {
            Some(a) => a.apply(m),
            None => m,
        };
        let mut m = burn::module::Module::valid(&m);
        m.reset();
        m
    }

    fn evaluate(&self, ids: &[u32]) -> Result<f64> {
        let mut m = self.eval_model();
        let device = self.opts.device.clone().without_autodiff();
        mean_loss(
            &mut m,
            ids,
            self.cfg.eval_batch_size,
            self.cfg.bptt,
            &device,
        )
    }

    fn save(&mut self) -> Result<()> {
        self.progress.masks_rng = self.masks.state().unwrap_or_default();
        let (pos, stream) = self.windows.state();
        self.progress.windows_rng = (pos.to_string(), stream);
        let model = self.model.as_ref().expect("model present");
        self.progress.param_ids = state::param_ids(model);
        let hidden = model
            .encoder()
            .state()
            .filter(|_| self.progress.pos > 0)
            .map(|s| {
                s.iter()
                    .map(|l| {
                        (
                            HostTensor::from_tensor(l.h.clone()),
                            HostTensor::from_tensor(l.c.clone()),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let averages = self
            .averager
            .as_ref()
            .map(|a| {
                a.sums
                    .iter()
                    .map(|(k, v)| (k.clone(), HostTensor::from_tensor(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let ck = TrainCheckpoint {
            config: self.cfg.clone(),
            vocab: self.data.vocab.itos().to_vec(),
            level: self.data.level,
            progress: self.progress.clone(),
            model: named_values(model).into_iter().collect(),
            optimizer: state::canonical_optimizer_bytes(
                self.optim
                    .to_record()
                    .into_bytes()
                    .map_err(|e| AwdError::Config(format!("optimizer state: {e:?}")))?
                    .to_vec(),
            )?,
            averages,
            hidden,
            averaged_count: self.averager.as_ref().map_or(0, |a| a.count),
        };
        state::save(&self.opts.state_path(), &ck)?;
        self.metrics.flush()?;
        super::plot::plot(self.metrics.path(), &self.opts.plot_path())?;
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

    /// Runs to the end (or to a stop request).
    pub fn run(&mut self) -> Result<Outcome> {
        let cfg = self.cfg.clone();
        let device = self.opts.device.clone();
        let rows = Rows::new(&self.data.train, cfg.batch_size)?;
        let steps_per_epoch = (rows.len - 1).div_ceil(cfg.bptt);
        let planned = cfg.epochs * steps_per_epoch;
        let total_steps = if cfg.max_steps > 0 {
            cfg.max_steps.min(planned)
        } else {
            planned
        };
        let started = Instant::now();
        let elapsed0 = self.elapsed_before;
        let elapsed = |s: &Instant| elapsed0 + s.elapsed().as_secs_f64();
        let mut last_val: Option<f64> = None;

        while self.progress.epoch < cfg.epochs && !self.steps_done(total_steps) {
            if self.progress.pos == 0 {
                self.model().reset();
            }
            let bar = self.bar(rows.len as u64);
            bar.set_position(self.progress.pos as u64);
            let (mut log_loss, mut log_n, mut log_tokens) = (0.0, 0usize, 0u64);
            let mut log_start = Instant::now();
            let mut lr = cfg.lr;
            while self.progress.pos < rows.len.saturating_sub(2) && !self.steps_done(total_steps) {
                if self.opts.stop.load(Ordering::SeqCst) {
                    bar.abandon();
                    self.save()?;
                    return Ok(Outcome::Interrupted {
                        step: self.progress.step,
                        checkpoint: self.opts.state_path(),
                    });
                }
                let want = self.windows.next_len();
                let (x, y) = rows.window(self.progress.pos, want, &device);
                let seq = x.dims()[1];
                let base = scheduled_lr(cfg.schedule, cfg.lr, self.progress.step, total_steps);
                lr = if cfg.variable_bptt {
                    base * seq as f64 / cfg.bptt as f64
                } else {
                    base
                };
                let ce = self.step(x, y, lr)?;
                self.progress.pos += seq;
                self.progress.step += 1;
                self.progress.tokens += (cfg.batch_size * seq) as u64;
                log_loss += ce;
                log_n += 1;
                log_tokens += (cfg.batch_size * seq) as u64;
                bar.set_position(self.progress.pos as u64);
                if self.progress.step.is_multiple_of(cfg.log_every) {
                    let tps = log_tokens as f64 / log_start.elapsed().as_secs_f64().max(1e-9);
                    let mean = log_loss / log_n as f64;
                    bar.set_message(format!(
                        "epoch {} loss {mean:.3} ppl {:.1} {tps:.0} tok/s",
                        self.progress.epoch + 1,
                        mean.exp()
                    ));
                    self.metrics.write(&Row {
                        step: self.progress.step,
                        epoch: self.progress.epoch + 1,
                        train_loss: Some(mean),
                        val_loss: None,
                        lr,
                        tokens_per_s: tps,
                        elapsed_s: elapsed(&started),
                    })?;
                    (log_loss, log_n, log_tokens) = (0.0, 0, 0);
                    log_start = Instant::now();
                }
            }
            bar.finish_and_clear();
            let epoch_done = self.progress.pos >= rows.len.saturating_sub(2);
            let val = self.evaluate(&self.data.valid)?;
            if !val.is_finite() {
                return Err(self.non_finite(format!(
                    "the validation loss is {val} after step {}",
                    self.progress.step
                )));
            }
            last_val = Some(val);
            self.after_validation(val);
            if epoch_done {
                self.progress.epoch += 1;
                self.progress.pos = 0;
            }
            self.metrics.write(&Row {
                step: self.progress.step,
                epoch: self.progress.epoch,
                train_loss: (log_n > 0).then(|| log_loss / log_n as f64),
                val_loss: Some(val),
                lr,
                tokens_per_s: self.progress.tokens as f64 / elapsed(&started).max(1e-9),
                elapsed_s: elapsed(&started),
            })?;
            if self.opts.progress {
                eprintln!(
                    "epoch {:>3}  step {:>6}  valid loss {val:.4}  ppl {:.2}",
                    self.progress.epoch,
                    self.progress.step,
                    val.exp()
                );
            }
            self.save()?;
        }

        let valid_loss = match last_val {
            Some(v) => v,
            None => self.evaluate(&self.data.valid)?,
        };
        let test_loss = match &self.data.test {
            Some(t) => Some(self.evaluate(t)?),
            None => None,
        };
        self.progress.finished = true;
        self.save()?;
        Ok(Outcome::Finished(Summary {
            valid_loss,
            test_loss,
            steps: self.progress.step,
            tokens: self.progress.tokens,
            elapsed_s: elapsed(&started),
            entropy_rate: self.data.entropy_rate,
            model_path: self.opts.model_path(),
            metrics_path: self.metrics.path().to_path_buf(),
            plot_path: self.opts.plot_path(),
        }))
    }

    fn steps_done(&self, total: usize) -> bool {
        self.cfg.max_steps > 0 && self.progress.step >= total
    }

    /// One optimizer step on one window; returns the window's cross-entropy.
    fn step(
        &mut self,
        x: Tensor<2, burn::tensor::Int>,
        y: Tensor<2, burn::tensor::Int>,
        lr: f64,
    ) -> Result<f64> {
        let (alpha, beta, clip) = (self.cfg.alpha, self.cfg.beta, self.cfg.clip);
        let step = self.progress.step + 1;
        let (_, loss) = self.model().loss(x, y, alpha, beta)?;
        let ce = loss.cross_entropy.clone().into_scalar::<f64>();
        let total = loss.total.clone().into_scalar::<f64>();
        if !ce.is_finite() || !total.is_finite() {
            return Err(self.non_finite(format!("the loss is {total} at step {step}")));
        }
        let mut model = self.model.take().expect("model present");
        let mut grads = GradientsParams::from_grads(loss.total.backward(), &model);
        let norms = grad_norms(&model, &grads);
        if let Some((name, n)) = non_finite_gradient(&norms) {
            self.model = Some(model);
            return Err(self.non_finite(format!(
                "the gradient of `{name}` has norm {n} at step {step}"
            )));
        }
        clip_global_norm(&model, &mut grads, &norms, clip);
        model = self.optim.step(lr, model, grads);
        if let Some(a) = self.averager.as_mut() {
            a.update(&model);
        }
        self.model = Some(model);
        Ok(ce)
    }

    fn non_finite(&self, what: String) -> AwdError {
        let state = self.opts.state_path();
        let kept = if state.exists() {
            format!("the last good checkpoint is {}", state.display())
        } else {
            "no checkpoint had been written yet".to_string()
        };
        AwdError::Diverged(format!("{what}; {kept}"))
    }

    /// Records a validation loss; NT-ASGD switches to averaged SGD when the loss has not improved
    /// on the best of all but the last `nonmono` checks.
    fn after_validation(&mut self, val: f64) {
        let p = &mut self.progress;
        let n = self.cfg.nonmono;
        if self.cfg.asgd && !p.averaging && super::optim::non_monotone(&p.val_losses, val, n) {
            p.averaging = true;
            p.optimizer = OptimizerKind::Sgd;
            let plain = TrainConfig {
                beta1: 0.0,
                ..self.cfg.clone()
            };
            self.optim = build(&plain, OptimizerKind::Sgd);
            self.averager = Some(Averager::default());
            if self.opts.progress {
                eprintln!(
                    "NT-ASGD: validation stopped improving, averaging from step {}",
                    p.step
                );
            }
        }
        p.val_losses.push(val);
        p.best_val = Some(p.best_val.map_or(val, |b| b.min(val)));
    }

    fn bar(&self, len: u64) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(
            Some(len),
            if self.opts.progress {
                ProgressDrawTarget::stderr()
            } else {
                ProgressDrawTarget::hidden()
            },
        );
        bar.set_style(
            ProgressStyle::with_template("{msg:40} [{bar:30}] {percent:>3}% {elapsed_precise}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(format!("epoch {}", self.progress.epoch + 1));
        bar
    }
}

/// Creates the output directory; refuses to overwrite an earlier run unless asked to.
pub fn prepare_out_dir(opts: &RunOptions, overwrite: bool) -> Result<()> {
    let dir = &opts.out_dir;
    std::fs::create_dir_all(dir).map_err(|e| AwdError::io(dir, e))?;
    for p in [opts.state_path(), opts.model_path()] {
        if p.exists() && !overwrite {
            return Err(AwdError::Config(format!(
                "{} holds a run already ({}): pass --resume to continue it or --force to start over",
                dir.display(),
                file_name(&p)
            )));
        }
    }
    // Fail now, not at the first checkpoint, if the directory cannot be written.
    let probe = tempfile::NamedTempFile::new_in(dir).map_err(|e| AwdError::io(dir, e))?;
    drop(probe);
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default()
}
