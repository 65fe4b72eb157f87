//! The classifier's training loop (fastai's `text_classifier_learner` with gradual unfreezing):
//! stage by stage, each a one-cycle over its epochs with its layer groups unfrozen; batch → step
//! → report; validation loss and accuracy after each epoch; the model saved after each.

use std::sync::atomic::Ordering;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};

use super::config::{ClasStage, ClassifyConfig};
use super::data::{Labelled, train_batches};
use super::saved::{self, ClassifierInfo, Encoder};
use super::scores::{Scores, probabilities};
use crate::checkpoint::fastai;
use crate::data::{Vocab, fastai_vocab};
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::loss::{
    activation_reg, class_cross_entropy, multi_label_bce, temporal_activation_reg,
};
use crate::model::{DocBatch, TextClassifier};
use crate::train::optim::{combined_cos, scheduled_lr};
use crate::train::report::Reporter;
use crate::train::run_dir::{Prepared, RunOptions};
use crate::train::step::{Group, TrainStep, groups_by_path, lstm_layer};
use crate::train::trainer::discriminative_factor;

/// fastai's `awd_lstm_clas_split`: the embedding (`0.module.encoder.*`), each LSTM layer
/// (`0.module.rnns.{l}.*`), then the head (`1.*`), in that order.
pub fn clas_groups(model: &TextClassifier) -> Vec<Group> {
    let layers = model.encoder().rnns.len();
    let names = std::iter::once("embedding".to_string())
        .chain((0..layers).map(|l| format!("LSTM layer {l}")))
        .chain(["head".to_string()])
        .collect();
    groups_by_path(model, names, |path| {
        match lstm_layer(path, "0.module.rnns.") {
            Some(l) => 1 + l,
            None if path.starts_with("0.") => 0,
            None => layers + 1,
        }
    })
}

/// How a classifier run ended.
#[derive(Debug, Clone)]
pub struct ClasSummary {
    pub valid: Scores,
    pub steps: usize,
    pub elapsed_s: f64,
    /// Training tokens a second.
    pub tokens_per_s: f64,
    pub interrupted: bool,
}

/// A classifier run.
pub struct ClassifierTrainer {
    pub cfg: ClassifyConfig,
    pub data: Labelled,
    pub info: ClassifierInfo,
    pub opts: RunOptions,
    model: Option<TextClassifier>,
    step: TrainStep,
    report: Reporter,
    /// The last step's loss.
    last_loss: f64,
}

impl ClassifierTrainer {
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
        cfg.validate()?;
        let opts = prepared.0;
        let device = opts.device.clone();
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
        model.parts.encoder.precision = cfg.precision;
        let info = ClassifierInfo {
            config,
            vocab,
            classes: data.classes.clone(),
            backwards,
            threshold: cfg.threshold,
        };
        let report = Reporter::open(&opts.metrics_path(), false, opts.progress, cfg.log_every)?;
        Ok(Self {
            step: TrainStep::new(&cfg.step_config()),
            cfg,
            data,
            info,
            opts,
            model: Some(model),
            report,
            last_loss: 0.0,
        })
    }

    /// Trains every stage (or up to `max_steps`, or a stop request), saving after each epoch.
    pub fn run(&mut self) -> Result<ClasSummary> {
        let cfg = self.cfg.clone();
        let lengths: Vec<usize> = self.data.train.iter().map(|e| e.ids.len()).collect();
        let spe = train_batches(&lengths, cfg.batch_size, 0).len();
        let (mut step, mut epoch, mut tokens, mut train_s) = (0usize, 0usize, 0u64, 0.0);
        let mut valid = None;
        let limit = if cfg.max_steps == 0 {
            usize::MAX
        } else {
            cfg.max_steps
        };
        let mut interrupted = false;
        'stages: for (k, stage) in cfg.stages.iter().enumerate() {
            self.enter_stage(k, stage)?;
            let len = stage.epochs * spe;
            for e in 0..stage.epochs {
                let batches = train_batches(
                    &lengths,
                    cfg.batch_size,
                    cfg.seed.wrapping_add(epoch as u64),
                );
                self.report.start_epoch(epoch, batches.len(), 0);
                let started = Instant::now();
                for (b, batch) in batches.iter().enumerate() {
                    if step >= limit {
                        break;
                    }
                    if self.opts.stop.load(Ordering::SeqCst) {
                        interrupted = true;
                        self.report.abandon();
                        break 'stages;
                    }
                    let at = e * spe + b;
                    let lr =
                        scheduled_lr(crate::train::config::Schedule::OneCycle, stage.lr, at, len);
                    let pos = (at as f64 / len.max(1) as f64).min(1.0);
                    self.step.set_momentum(combined_cos(
                        0.25,
                        cfg.beta1,
                        cfg.beta1_low,
                        cfg.beta1,
                        pos,
                    ));
                    let n = self.train_step(batch, lr).map_err(|err| match err {
                        AwdError::Diverged(what) => AwdError::Diverged(format!(
                            "{what} at step {} (stage {}); try a lower learning rate than {:e}",
                            step + 1,
                            k + 1,
                            stage.lr
                        )),
                        other => other,
                    })?;
                    step += 1;
                    tokens += n as u64;
                    self.report
                        .step(step, epoch, b + 1, self.last_loss, n as u64, lr)?;
                }
                train_s += started.elapsed().as_secs_f64();
                epoch += 1;
                let scores = self.validate()?;
                self.report.classification(
                    step,
                    epoch,
                    scores.loss,
                    scores.accuracy,
                    stage.lr,
                    tokens,
                )?;
                valid = Some(scores);
                self.save()?;
                if step >= limit {
                    break 'stages;
                }
            }
        }
        let valid = match valid {
            Some(v) => v,
            None => self.validate()?,
        };
        self.save()?;
        Ok(ClasSummary {
            valid,
            steps: step,
            elapsed_s: self.report.elapsed(),
            tokens_per_s: tokens as f64 / train_s.max(1e-9),
            interrupted,
        })
    }

    /// Freezes all but the stage's last `groups` layer groups and sets their rates.
    pub fn enter_stage(&mut self, k: usize, stage: &ClasStage) -> Result<()> {
        let model = self.model.take().expect("model present");
        let mut groups = clas_groups(&model);
        let n = groups.len();
        let trained = if stage.groups == 0 {
            n
        } else {
            stage.groups.min(n)
        };
        for (i, g) in groups.iter_mut().enumerate() {
            g.frozen = i + trained < n;
            g.lr_factor = discriminative_factor(stage.lr, stage.lr_low, i, n);
        }
        self.model = Some(self.step.set_groups(model, groups)?);
        let what = if trained == n {
            "all layer groups".to_string()
        } else {
            format!("the last {trained} of {n} layer groups")
        };
        let rates = if stage.lr_low > 0.0 {
            format!("rates {:.1e} to {:.1e}", stage.lr_low, stage.lr)
        } else {
            format!("rate {:.1e}", stage.lr)
        };
        self.report.say(&format!(
            "stage {} of {}: {} epoch(s), training {what}, {rates}",
            k + 1,
            self.cfg.stages.len(),
            stage.epochs
        ));
        Ok(())
    }

    /// One step on the training documents `batch` (indices into `data.train`); returns the
    /// tokens it read.
    pub fn train_step(&mut self, batch: &[usize], lr: f64) -> Result<usize> {
        let (alpha, beta) = (self.cfg.alpha, self.cfg.beta);
        let (bptt, pad) = (self.cfg.bptt, self.info.config.encoder.pad_token as u32);
        let docs: Vec<&[u32]> = batch
            .iter()
            .map(|&i| self.data.train[i].ids.as_slice())
            .collect();
        let tokens = docs.iter().map(|d| d.len()).sum();
        let multi = self.cfg.multi_label;
        let n_classes = self.data.classes.len();
        let labels: Vec<&[usize]> = batch
            .iter()
            .map(|&i| self.data.train[i].labels.as_slice())
            .collect();
        let input = DocBatch::new(&docs, bptt, pad)?;
        let model = self.model.take().expect("model present");
        let device = model.encoder().encoder.weight.device();
        let rows = batch.len();
        let loss = move |logits: Tensor<2>| {
            if multi {
                let mut hot = vec![0f32; rows * n_classes];
                for (r, ls) in labels.iter().enumerate() {
                    ls.iter().for_each(|&c| hot[r * n_classes + c] = 1.0);
                }
                let t = Tensor::<2>::from_data(TensorData::new(hot, [rows, n_classes]), &device);
                multi_label_bce(logits, t)
            } else {
                let ids: Vec<i64> = labels.iter().map(|l| l[0] as i64).collect();
                let y = Tensor::<1, Int>::from_data(TensorData::new(ids, [rows]), &device);
                class_cross_entropy(logits, y)
            }
        };
        let (model, stats) = self.step.run(
            model,
            lr,
            |m| {
                let out = m.forward(&input)?;
                let ce = loss(out.logits);
                // fastai's RNNRegularizer on the encoder's output (AR and TAR alike here).
                let mut total = ce.clone();
                if alpha > 0.0 {
                    total = total + activation_reg(out.enc.clone()).mul_scalar(alpha);
                }
                if beta > 0.0 && out.enc.dims()[1] > 1 {
                    total = total + temporal_activation_reg(out.enc).mul_scalar(beta);
                }
                Ok((total, ce))
            },
            |_, _| (),
        )?;
        self.model = Some(model);
        self.last_loss = stats.loss;
        Ok(tokens)
    }

    /// Loss and accuracy on the validation documents.
    pub fn validate(&self) -> Result<Scores> {
        let mut model = self.model.as_ref().expect("model present").valid();
        let docs: Vec<Vec<u32>> = self.data.valid.iter().map(|e| e.ids.clone()).collect();
        let labels: Vec<Vec<usize>> = self.data.valid.iter().map(|e| e.labels.clone()).collect();
        let probs = probabilities(&mut model, &docs, self.cfg.batch_size)?;
        let (multi, threshold) = (self.cfg.multi_label, self.cfg.threshold);
        Ok(Scores::new(
            &probs,
            &labels,
            self.data.classes.len(),
            multi,
            threshold,
        ))
    }

    /// Writes the model file, fastai's `.pth` of the classifier and the vocabulary, the curves.
    fn save(&mut self) -> Result<()> {
        let model = self.model.as_ref().expect("model present");
        saved::save(&self.opts.model_path(), model, &self.info)?;
        fastai::write_tensors(
            &self.opts.out_dir.join("classifier.pth"),
            &model.state_dict(),
        )?;
        fastai_vocab::write_pickle(&self.opts.vocab_path(), &self.info.vocab)?;
        self.report.flush()?;
        crate::train::plot::plot(&self.opts.metrics_path(), &self.opts.plot_path())
    }
}
