//! The language model as a [`Job`] of the learner: the token stream cut into rows, read in
//! windows of varying length with the hidden state carried between them; cross-entropy with
//! AR/TAR; fastai's `awd_lstm_lm_split`; the model file and, at the fastai level, fastai's
//! encoder and vocabulary.

use std::path::PathBuf;
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::eval::loss_sum;
use super::job::{Batch, Job, JobState, Plan};
use super::learner::{Ended, Fitted, Learner};
use super::pretrained::Pretrained;
use super::ranks::{gather_rows, own_rows};
use super::run_dir::{Prepared, RunOptions};
use super::state::{Checkpoint, Progress, structural_param_ids};
use super::step::{StepStats, TrainStep};
use crate::checkpoint::native::ModelInfo;
use crate::checkpoint::{fastai, native};
use crate::data::{Dataset, Level, Rows, WindowLengths, fastai_vocab};
use crate::dist::Dist;
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::LanguageModel;
use crate::nn::LstmState;
use crate::params::HostTensor;
use crate::params::groups::Group;

/// A language model's training run.
pub type Trainer = Learner<LmJob>;

/// What a checkpoint says of a language-model run: enough to read its data again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmRun {
    pub config: TrainConfig,
    pub vocab: Vec<String>,
    pub level: Level,
}

/// The language model's part of a run.
pub struct LmJob {
    pub cfg: TrainConfig,
    pub data: Dataset,
    /// This rank's rows of the training stream.
    rows: Rows,
    windows: WindowLengths,
    device: Device,
    dist: Rc<Dist>,
}

impl LmJob {
    fn new(cfg: TrainConfig, data: Dataset, opts: &RunOptions) -> Result<Self> {
        cfg.validate()?;
        let dist = opts.dist.clone();
        let (first, count) = dist.rows(cfg.batch_size, "--batch-size")?;
        // Checked now rather than at the first validation, an epoch later.
        dist.rows(cfg.eval_batch_size, "--eval-batch-size")?;
        let rows = Rows::new(&data.train, cfg.batch_size)?.share(first, count);
        Ok(Self {
            windows: WindowLengths::new(cfg.bptt, cfg.variable_bptt, cfg.seed.wrapping_add(1)),
            rows,
            device: opts.device.clone(),
            dist,
            cfg,
            data,
        })
    }

    /// Mean cross-entropy of `model` on `ids`, each rank evaluating its share of the rows.
    pub fn loss_on(&self, model: &LanguageModel, ids: &[u32]) -> Result<f64> {
        let (batch, bptt) = (self.cfg.eval_batch_size, self.cfg.bptt);
        let device = self.device.clone().without_autodiff();
        let (first, count) = self.dist.rows(batch, "--eval-batch-size")?;
        let rows = Rows::new(ids, batch)?.share(first, count);
        let mut model = model.valid();
        model.reset();
        let (total, n) = loss_sum(&mut model, &rows, bptt, &device)?;
        let mut sums = [total, n as f64];
        self.dist.sum_f64(&mut sums);
        Ok(sums[0] / sums[1].max(1.0))
    }
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
    let mut model = LanguageModel::new(&cfg.model_config(vocab), &masks, device)?;
    model.set_precision(cfg.precision.resolve());
    Ok((structural_param_ids(model), masks))
}

impl Learner<LmJob> {
    /// Starts a new run in the prepared directory, from random weights or from `pretrained` ones
    /// (matched to the data's vocabulary).
    pub fn new(
        cfg: TrainConfig,
        data: Dataset,
        prepared: Prepared,
        pretrained: Option<&Pretrained>,
    ) -> Result<Self> {
        let job = LmJob::new(cfg, data, prepared.options())?;
        let (cfg, device) = (&job.cfg, &prepared.options().device);
        let (mut model, masks) = init_model(cfg, job.data.vocab.len(), device)?;
        if let Some(p) = pretrained {
            model = p.model(cfg, &job.data.vocab, &masks, device)?;
            model.set_precision(cfg.precision.resolve());
        }
        Learner::start(job, model, masks, prepared)
    }

    /// Continues the run of checkpoint `ck` (read from `opts.state_path()`) on `data`, the data
    /// it started on (the vocabulary is checked).
    pub fn from_checkpoint(ck: Checkpoint, data: Dataset, opts: RunOptions) -> Result<Self> {
        let path = opts.state_path();
        let run: LmRun = serde_json::from_value(ck.job.clone())
            .map_err(|e| AwdError::checkpoint(&path, format!("not a language model's run: {e}")))?;
        if data.vocab.itos() != run.vocab.as_slice() {
            return Err(AwdError::checkpoint(
                &path,
                format!(
                    "its vocabulary ({} tokens) does not fit this data ({} tokens): resume with the data the run started on",
                    run.vocab.len(),
                    data.vocab.len()
                ),
            ));
        }
        let masks = ck.masks(&path)?;
        let cfg = run.config;
        let mut model =
            LanguageModel::new(&cfg.model_config(run.vocab.len()), &masks, &opts.device)?;
        model.set_precision(cfg.precision.resolve());
        let job = LmJob::new(cfg, data, &opts)?;
        Learner::resume(job, model, masks, ck, opts)
    }

    /// Runs to the end (or to a stop request), then scores the test text if there is one.
    pub fn run(&mut self) -> Result<Outcome> {
        let fitted = match self.fit()? {
            Ended::Interrupted { step, checkpoint } => {
                return Ok(Outcome::Interrupted { step, checkpoint });
            }
            Ended::Finished(f) => f,
        };
        let test_loss = match &self.job.data.test {
            Some(t) => Some(self.job.loss_on(&self.published(), t)?),
            None => None,
        };
        Ok(Outcome::Finished(Summary {
            fit: fitted,
            test_loss,
            entropy_rate: self.job.data.entropy_rate,
            model_path: self.opts.model_path(),
            metrics_path: self.opts.metrics_path(),
            plot_path: self.opts.plot_path(),
        }))
    }
}

type Window = (Tensor<2, Int>, Tensor<2, Int>);

impl Job for LmJob {
    type Model = LanguageModel;
    type Batch = Window;
    type Metrics = f64;

    fn plan(&self) -> Plan {
        Plan {
            stages: self.cfg.stages(),
            optim: self.cfg.optim.clone(),
            max_steps: self.cfg.max_steps,
            log_every: self.cfg.log_every,
        }
    }

    fn groups(&self, model: &LanguageModel) -> Vec<Group> {
        model.layer_groups()
    }

    fn steps_per_epoch(&self) -> usize {
        (self.rows.row_len - 1).div_ceil(self.cfg.bptt)
    }

    fn epoch_end(&self) -> usize {
        self.rows.row_len.saturating_sub(2)
    }

    fn start_epoch(&mut self, model: &mut LanguageModel, _epoch: usize) {
        model.reset();
    }

    fn batch(&mut self, _epoch: usize, pos: usize) -> Result<Batch<Window>> {
        let (x, y) = self.rows.window(pos, self.windows.next_len(), &self.device);
        let seq = x.dims()[1];
        let lr_factor = match self.cfg.variable_bptt {
            true => seq as f64 / self.cfg.bptt as f64,
            false => 1.0,
        };
        Ok(Batch {
            data: (x, y),
            end: pos + seq,
            tokens: (self.cfg.batch_size * seq) as u64,
            lr_factor,
        })
    }

    fn step(
        &self,
        step: &mut TrainStep,
        model: LanguageModel,
        (x, y): Window,
        lr: f64,
    ) -> Result<(LanguageModel, StepStats)> {
        step.lm(model, x, y, lr)
    }

    fn validate(&self, model: &LanguageModel) -> Result<f64> {
        self.loss_on(model, &self.data.valid)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value(LmRun {
            config: self.cfg.clone(),
            vocab: self.data.vocab.itos().to_vec(),
            level: self.data.level,
        })
        .expect("a run's description is JSON")
    }

    /// The window-length RNG's position and, inside an epoch, the hidden state carried into the
    /// next window, of the global batch's rows (every rank takes part).
    fn capture(&self, model: &LanguageModel, progress: &Progress) -> Result<JobState> {
        let (pos, stream) = self.windows.state();
        let mut tensors = std::collections::BTreeMap::new();
        if progress.pos > 0
            && let Some(states) = gather_rows(model, &self.dist).encoder().state()
        {
            for (l, s) in states.iter().enumerate() {
                tensors.insert(
                    format!("hidden/{l}/h"),
                    HostTensor::from_tensor(s.h.clone()),
                );
                tensors.insert(
                    format!("hidden/{l}/c"),
                    HostTensor::from_tensor(s.c.clone()),
                );
            }
        }
        Ok(JobState {
            json: serde_json::json!({ "windows_rng": [pos.to_string(), stream] }),
            tensors,
        })
    }

    fn restore(&mut self, mut model: LanguageModel, state: &JobState) -> Result<LanguageModel> {
        let bad = || AwdError::Config("the checkpoint's window RNG state is unreadable".into());
        let rng = &state.json["windows_rng"];
        let pos: u128 = rng[0]
            .as_str()
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)?;
        let stream = rng[1].as_u64().ok_or_else(bad)?;
        self.windows.restore((pos, stream));
        let layers = state.tensors.len() / 2;
        if layers > 0 {
            let tensor = |l: usize, which: &str| {
                state
                    .tensors
                    .get(&format!("hidden/{l}/{which}"))
                    .ok_or_else(|| {
                        AwdError::Config(format!(
                            "the checkpoint's hidden state of layer {l} is incomplete"
                        ))
                    })?
                    .to_tensor(&self.device)
            };
            let hidden = (0..layers)
                .map(|l| {
                    Ok(LstmState {
                        h: tensor(l, "h")?,
                        c: tensor(l, "c")?,
                    })
                })
                .collect::<Result<_>>()?;
            model.parts.encoder.hidden = Some(hidden);
        }
        own_rows(&mut model, &self.dist)?;
        Ok(model)
    }

    fn publish(&self, model: &LanguageModel, progress: &Progress, opts: &RunOptions) -> Result<()> {
        let mut model = model.valid();
        model.reset();
        let info = ModelInfo {
            vocab: self.data.vocab.itos().to_vec(),
            extra: serde_json::json!({
                "level": self.data.level,
                "specials": self.cfg.specials,
                "backwards": self.cfg.backwards,
                "steps": progress.step,
                "epoch": progress.epoch,
                "best_val_loss": progress.best_val,
            }),
        };
        native::save(&opts.model_path(), &model, &info)?;
        if self.data.level == Level::Fastai {
            // What fastai reads: the encoder alone (`load_encoder`) and the vocabulary.
            fastai::write_tensors(&opts.encoder_path(), &fastai::encoder_state_dict(&model))?;
            fastai_vocab::write_pickle(&opts.vocab_path(), &self.data.vocab)?;
        }
        Ok(())
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

/// A finished language-model run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The fit: its last validation loss (`metrics`), steps, tokens and times.
    pub fit: Fitted<f64>,
    pub test_loss: Option<f64>,
    /// The least loss possible on this data, when known.
    pub entropy_rate: Option<f64>,
    pub model_path: PathBuf,
    pub metrics_path: PathBuf,
    pub plot_path: PathBuf,
}
