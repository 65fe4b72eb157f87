//! The classifier as a [`Job`] of the learner (fastai's `text_classifier_learner` with gradual
//! unfreezing): documents batched by similar lengths in a seeded order each epoch, cross-entropy
//! (binary for multi-label) with AR/TAR on the encoder's output, fastai's `awd_lstm_clas_split`,
//! loss and accuracy on the validation documents, the classifier's files.

use std::rc::Rc;

use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::batches::train_batches;
use super::config::ClassifyConfig;
use super::data::Labelled;
use super::saved::{self, ClassifierInfo, Encoder};
use super::scores::{Scores, probabilities_on};
use crate::checkpoint::fastai;
use crate::data::{Vocab, fastai_vocab};
use crate::dist::Dist;
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::loss::{ClassTargets, activation_reg, temporal_activation_reg};
use crate::model::{ClassifierConfig, DocBatch, TextClassifier};
use crate::nn::batch_norm::RunningStats;
use crate::params::HostTensor;
use crate::params::groups::Group;
use crate::train::state::{Checkpoint, Progress, structural_param_ids};
use crate::train::step::{StepStats, TrainStep};
use crate::train::{
    Batch, Ended, Fitted, Job, JobState, Learner, Plan, Prepared, RunOptions, Scored,
};

impl Scored for Scores {
    fn loss(&self) -> f64 {
        self.loss
    }
    fn accuracy(&self) -> Option<f64> {
        Some(self.accuracy)
    }
}

/// What a checkpoint says of a classifier run: enough to read its documents again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClasRun {
    pub config: ClassifyConfig,
    pub classifier: ClassifierConfig,
    pub vocab: Vec<String>,
    pub classes: Vec<String>,
    pub backwards: bool,
}

/// The classifier's part of a run.
pub struct ClasJob {
    pub cfg: ClassifyConfig,
    pub data: Labelled,
    pub info: ClassifierInfo,
    lengths: Vec<usize>,
    /// The current epoch's batches (indices into `data.train`).
    batches: (usize, Vec<Vec<usize>>),
    device: Device,
    /// The ranks of a data-parallel job: each encodes its share of every batch's documents and
    /// validates its share of the batches.
    dist: Rc<Dist>,
}

/// A classifier's training run.
pub type ClassifierTrainer = Learner<ClasJob>;

impl ClasJob {
    fn new(
        cfg: ClassifyConfig,
        data: Labelled,
        info: ClassifierInfo,
        opts: &RunOptions,
    ) -> Result<Self> {
        cfg.validate()?;
        let ranks = opts.dist.size();
        if cfg.batch_size < ranks {
            return Err(AwdError::Config(format!(
                "--batch-size {} among {ranks} ranks: each rank needs one document at least",
                cfg.batch_size
            )));
        }
        let lengths: Vec<usize> = data.train.iter().map(|e| e.ids.len()).collect();
        Ok(Self {
            batches: (0, train_batches(&lengths, cfg.batch_size, cfg.seed)),
            lengths,
            device: opts.device.clone(),
            dist: opts.dist.clone(),
            cfg,
            data,
            info,
        })
    }
}

impl Learner<ClasJob> {
    /// A new run: the encoder from `encoder` (its vocabulary is `vocab`) or untrained, the head
    /// fresh; seeded by the configuration.
    pub fn new(
        cfg: ClassifyConfig,
        data: Labelled,
        vocab: Vocab,
        encoder: Option<&Encoder>,
        backwards: bool,
        prepared: Prepared,
    ) -> Result<Self> {
        let device = prepared.options().device.clone();
        device.seed(cfg.seed);
        let masks = Masks::seeded(cfg.seed);
        let sizes = match encoder {
            Some(e) => e.config.clone(),
            None => cfg.model.with_vocab(vocab.len()),
        };
        let config = cfg.classifier(&sizes, data.classes.len());
        let mut model = TextClassifier::new(&config, &masks, &device)?;
        if let Some(e) = encoder {
            model = model
                .load_encoder(&e.tensors)
                .map_err(|err| AwdError::checkpoint(&e.source, err.to_string()))?;
        }
        model.parts.encoder.precision = cfg.precision.resolve();
        let info = ClassifierInfo {
            config,
            vocab,
            classes: data.classes.clone(),
            backwards,
            threshold: cfg.threshold,
        };
        let job = ClasJob::new(cfg, data, info, prepared.options())?;
        Learner::start(job, structural_param_ids(model), masks, prepared)
    }

    /// Continues the run of checkpoint `ck` on `data`, the documents it started on, read with
    /// the run's vocabulary (`ClasRun`); the classes are checked.
    pub fn from_checkpoint(
        ck: Checkpoint,
        run: ClasRun,
        data: Labelled,
        opts: RunOptions,
    ) -> Result<Self> {
        let path = opts.state_path();
        if data.classes != run.classes {
            return Err(AwdError::checkpoint(
                &path,
                format!(
                    "its classes ({}) are not this data's ({}): resume with the data the run started on",
                    run.classes.join(", "),
                    data.classes.join(", ")
                ),
            ));
        }
        let masks = ck.masks(&path)?;
        let mut model = TextClassifier::new(&run.classifier, &masks, &opts.device)?;
        model.parts.encoder.precision = run.config.precision.resolve();
        let info = ClassifierInfo {
            config: run.classifier,
            vocab: Vocab::from_itos(run.vocab),
            classes: run.classes,
            backwards: run.backwards,
            threshold: run.config.threshold,
        };
        let job = ClasJob::new(run.config, data, info, &opts)?;
        Learner::resume(job, model, masks, ck, opts)
    }

    /// Trains every stage (or up to `max_steps`, or a stop request).
    pub fn run(&mut self) -> Result<Ended<Scores>> {
        self.fit()
    }
}

/// A finished classifier run's figures.
pub type ClasSummary = Fitted<Scores>;

impl Job for ClasJob {
    type Model = TextClassifier;
    /// Indices into `data.train`.
    type Batch = Vec<usize>;
    type Metrics = Scores;

    fn plan(&self) -> Plan {
        self.cfg.plan()
    }

    fn groups(&self, model: &TextClassifier) -> Vec<Group> {
        model.layer_groups()
    }

    /// fastai's `SortedDL` drops an incomplete last batch: as many in every epoch.
    fn steps_per_epoch(&self) -> usize {
        self.batches.1.len()
    }

    fn epoch_end(&self) -> usize {
        self.steps_per_epoch()
    }

    fn batch(&mut self, epoch: usize, pos: usize) -> Result<Batch<Vec<usize>>> {
        if self.batches.0 != epoch {
            let seed = self.cfg.seed.wrapping_add(epoch as u64);
            self.batches = (
                epoch,
                train_batches(&self.lengths, self.cfg.batch_size, seed),
            );
        }
        let docs = self.batches.1[pos].clone();
        let tokens = docs.iter().map(|&i| self.lengths[i] as u64).sum();
        Ok(Batch {
            data: docs,
            end: pos + 1,
            tokens,
            lr_factor: 1.0,
        })
    }

    fn step(
        &self,
        step: &mut TrainStep,
        model: TextClassifier,
        batch: Vec<usize>,
        lr: f64,
    ) -> Result<(TextClassifier, StepStats)> {
        let (alpha, beta) = (self.cfg.optim.alpha, self.cfg.optim.beta);
        let (bptt, pad) = (self.cfg.bptt, self.info.config.encoder.pad_token as u32);
        let docs: Vec<&[u32]> = batch
            .iter()
            .map(|&i| self.data.train[i].ids.as_slice())
            .collect();
        let labels: Vec<&[usize]> = batch
            .iter()
            .map(|&i| self.data.train[i].labels.as_slice())
            .collect();
        let input = DocBatch::new(&docs, bptt, pad)?;
        let n = self.data.classes.len();
        let target = ClassTargets::new(&labels, n, self.cfg.multi_label, &self.device);
        let dist = &self.dist;
        step.run(
            model,
            lr,
            |m| {
                let out = m.forward_on(&input, dist)?;
                let ce = target.loss(out.logits);
                // fastai's RNNRegularizer on the encoder's output (AR and TAR alike here): the
                // means are the whole batch's; a rank's rows' part of them, times the ranks
                // (their gradients are averaged), is `share` times the mean over its rows.
                let [rows, width, _] = out.enc.dims();
                let share = (dist.size() * rows) as f64 / input.rows as f64;
                let mut total = ce.clone();
                if alpha > 0.0 {
                    total = total + activation_reg(out.enc.clone()).mul_scalar(alpha * share);
                }
                if beta > 0.0 && width > 1 {
                    total = total + temporal_activation_reg(out.enc, 1).mul_scalar(beta * share);
                }
                Ok((total, ce))
            },
            |_, _| (),
        )
    }

    fn validate(&self, model: &TextClassifier) -> Result<Scores> {
        let mut model = model.valid();
        let docs: Vec<Vec<u32>> = self.data.valid.iter().map(|e| e.ids.clone()).collect();
        let labels: Vec<Vec<usize>> = self.data.valid.iter().map(|e| e.labels.clone()).collect();
        let probs = probabilities_on(&mut model, &docs, self.cfg.batch_size, &self.dist)?;
        let n = self.data.classes.len();
        let (multi, threshold) = (self.cfg.multi_label, self.cfg.threshold);
        Ok(Scores::new(&probs, &labels, n, multi, threshold))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value(ClasRun {
            config: self.cfg.clone(),
            classifier: self.info.config.clone(),
            vocab: self.info.vocab.itos().to_vec(),
            classes: self.info.classes.clone(),
            backwards: self.info.backwards,
        })
        .expect("a run's description is JSON")
    }

    /// The head's batch-norm running statistics (no parameters, so not in the learner's
    /// state); the batches follow from the seed and the epoch.
    fn capture(&self, model: &TextClassifier, _progress: &Progress) -> Result<JobState> {
        let mut state = JobState::default();
        let mut batches = Vec::new();
        for (i, block) in model.parts.layers.iter().enumerate() {
            let s = &block.bn.stats;
            let n = s.mean.len();
            state.tensors.insert(
                format!("bn/{i}/mean"),
                HostTensor::new(vec![n], s.mean.clone()),
            );
            state.tensors.insert(
                format!("bn/{i}/var"),
                HostTensor::new(vec![n], s.var.clone()),
            );
            batches.push(s.batches);
        }
        state.json = serde_json::json!({ "bn_batches": batches });
        Ok(state)
    }

    fn restore(&mut self, mut model: TextClassifier, state: &JobState) -> Result<TextClassifier> {
        let bad = |what: String| AwdError::Config(format!("the checkpoint's {what} is missing"));
        for (i, block) in model.parts.layers.iter_mut().enumerate() {
            let get = |which: &str| {
                state
                    .tensors
                    .get(&format!("bn/{i}/{which}"))
                    .map(|t| t.values.clone())
                    .ok_or_else(|| bad(format!("batch norm {i}'s running {which}")))
            };
            let batches = state.json["bn_batches"][i]
                .as_i64()
                .ok_or_else(|| bad(format!("batch norm {i}'s batch count")))?;
            block.bn.stats = RunningStats {
                mean: get("mean")?,
                var: get("var")?,
                batches,
            };
        }
        Ok(model)
    }

    /// The model file, fastai's `.pth` of the classifier and the vocabulary.
    fn publish(&self, model: &TextClassifier, _: &Progress, opts: &RunOptions) -> Result<()> {
        saved::save(&opts.model_path(), model, &self.info)?;
        let pth = opts.out_dir.join("classifier.pth");
        fastai::write_tensors(&pth, &model.state_dict())?;
        fastai_vocab::write_pickle(&opts.vocab_path(), &self.info.vocab)
    }
}
