//! The configuration of a classifier run: data columns, sizes, the optimizer, and the stages of
//! gradual unfreezing (fastai's ULMFiT tutorial recipe by default).

use crate::kernels::Precision;
use serde::{Deserialize, Serialize};

use crate::error::{AwdError, Result};
use crate::model::{AwdLstmConfig, ClassifierConfig, ModelFlags};
use crate::train::TrainConfig;
use crate::train::config::{OptimizerKind, Schedule};

/// One `fit_one_cycle` of gradual unfreezing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClasStage {
    pub epochs: usize,
    /// The peak learning rate (of the head's group).
    pub lr: f64,
    /// The embedding's rate, the groups between geometric (fastai's `slice(lr_low, lr)`); 0: all at `lr`.
    #[serde(default)]
    pub lr_low: f64,
    /// Layer groups trained, counted from the head (fastai's `freeze_to(-n)`); 0: all.
    #[serde(default)]
    pub groups: usize,
}

impl ClasStage {
    /// fastai's tutorial: `fit_one_cycle(1, 2e-2)` frozen; `freeze_to(-2)`,
    /// `fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2))`; `freeze_to(-3)`, the same at 5e-3; unfreeze,
    /// `fit_one_cycle(2, slice(1e-3/2.6**4, 1e-3))`.
    pub fn ulmfit() -> Vec<ClasStage> {
        let slice = |epochs, lr: f64, groups| ClasStage {
            epochs,
            lr,
            lr_low: lr / 2.6f64.powi(4),
            groups,
        };
        vec![
            ClasStage {
                epochs: 1,
                lr: 2e-2,
                lr_low: 0.0,
                groups: 1,
            },
            slice(1, 1e-2, 2),
            slice(1, 5e-3, 3),
            slice(2, 1e-3, 0),
        ]
    }

    /// `EPOCHS:LR[:GROUPS]` stages, comma-separated (`1:2e-2:1,1:1e-2:2,1:5e-3:3,2:1e-3`); a
    /// stage training more than one group gets fastai's `slice(lr/2.6**4, lr)`.
    pub fn parse_list(spec: &str) -> Result<Vec<ClasStage>> {
        let bad = |s: &str, why: &str| {
            AwdError::Config(format!(
                "--stages: `{s}` {why} (expected EPOCHS:LR[:GROUPS], e.g. 1:2e-2:1,2:1e-3)"
            ))
        };
        spec.split(',')
            .map(|s| {
                let parts: Vec<&str> = s.trim().split(':').collect();
                if !(2..=3).contains(&parts.len()) {
                    return Err(bad(s, "has the wrong number of fields"));
                }
                let epochs = parts[0].parse().map_err(|_| bad(s, "has no epoch count"))?;
                let lr: f64 = parts[1]
                    .parse()
                    .map_err(|_| bad(s, "has no learning rate"))?;
                let groups = match parts.get(2) {
                    None => 0,
                    Some(g) => g.parse().map_err(|_| bad(s, "has no group count"))?,
                };
                Ok(ClasStage {
                    epochs,
                    lr,
                    lr_low: if groups == 1 {
                        0.0
                    } else {
                        lr / 2.6f64.powi(4)
                    },
                    groups,
                })
            })
            .collect()
    }
}

crate::hyper_params! {
    /// A classifier run (also the `--config` TOML file's fields; the encoder's in `[model]`).
    ClassifyConfig / ClassifyFlags {
    fixed {
        /// The stages of gradual unfreezing, in order (`[[stages]]` tables in TOML).
        stages: Vec<ClasStage> = ClasStage::ulmfit(),
    }
    nested {
        /// An untrained encoder's sizes, and the encoder's dropouts (before --drop-mult).
        model: AwdLstmConfig / ModelFlags,
    }
    fields {
        /// A CSV file's text column.
        text_col: String = "text".to_string(),
        /// A CSV file's label column.
        label_col: String = "label".to_string(),
        /// Documents may have several labels, joined by `;` (sigmoid outputs, binary
        /// cross-entropy, fastai's `accuracy_multi`).
        multi_label: bool = false,
        /// A multi-label prediction holds the classes whose probability is above this.
        threshold: f64 = 0.5,
        /// Share of documents held out for validation where the data does not say which.
        valid_fraction: f64 = 0.1,
        /// Documents per batch.
        batch_size: usize = 64,
        /// The products' operands: f32, or bf16 with f32 sums (see `awd train --precision`).
        precision: Precision = Precision::F32,
        /// Chunk length the encoder reads a document in (fastai's `seq_len`).
        bptt: usize = 72,
        /// Positions pooled at most: a document's last ones (fastai's `max_len`).
        max_len: usize = 72 * 20,
        /// The head's hidden layer size (fastai's `lin_ftrs`).
        lin_ftrs: usize = 50,
        /// The head's hidden layer dropout (fastai's `ps`; the first block takes the encoder's
        /// `output_p`).
        head_p: f64 = 0.1,
        /// Multiplies the encoder's dropouts (fastai's `drop_mult`).
        drop_mult: f64 = 0.5,
        /// Adam's beta 1 at the ends of each cycle.
        beta1: f64 = 0.8,
        /// Adam's beta 1 at the peak learning rate.
        beta1_low: f64 = 0.7,
        /// Adam's beta 2.
        beta2: f64 = 0.99,
        /// Adam's epsilon.
        eps: f64 = 1e-5,
        /// Decoupled weight decay.
        weight_decay: f64 = 0.01,
        /// AR coefficient (on the encoder's output).
        alpha: f64 = 2.0,
        /// TAR coefficient.
        beta: f64 = 1.0,
        /// Clip the gradient to this total 2-norm (0: no clipping).
        clip: f64 = 0.0,
        /// Stop after this many steps in all (0: no limit).
        max_steps: usize = 0,
        /// Seed of initialization, masks, the split and the batch order.
        seed: u64 = 0,
        /// Log the training loss every this many steps.
        log_every: usize = 20,
    }
    }
}

impl ClassifyConfig {
    /// fastai's `text_classifier_learner` defaults: `awd_lstm_clas_config`'s dropouts.
    pub fn ulmfit() -> Self {
        Self {
            model: AwdLstmConfig {
                output_p: 0.4,
                hidden_p: 0.3,
                input_p: 0.4,
                embed_p: 0.05,
                weight_p: 0.5,
                ..AwdLstmConfig::default()
            },
            ..Self::default()
        }
    }

    /// The classifier for an encoder of `encoder`'s sizes and `n_classes` classes; the encoder's
    /// dropouts are this run's times `drop_mult`.
    pub fn classifier(&self, encoder: &AwdLstmConfig, n_classes: usize) -> ClassifierConfig {
        let (m, d) = (&self.model, self.drop_mult);
        ClassifierConfig {
            encoder: AwdLstmConfig {
                output_p: m.output_p * d,
                hidden_p: m.hidden_p * d,
                input_p: m.input_p * d,
                embed_p: m.embed_p * d,
                weight_p: m.weight_p * d,
                pad_token: m.pad_token,
                ..encoder.clone()
            },
            n_classes,
            lin_ftrs: vec![self.lin_ftrs],
            head_ps: vec![m.output_p * d, self.head_p],
            bptt: self.bptt,
            max_len: self.max_len,
            multi_label: self.multi_label,
        }
    }

    /// The optimizer's settings as the training step takes them: AdamW, no schedule of its own.
    pub fn step_config(&self) -> TrainConfig {
        TrainConfig {
            optimizer: OptimizerKind::Adamw,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            clip: self.clip,
            alpha: self.alpha,
            beta: self.beta,
            schedule: Schedule::OneCycle,
            ..TrainConfig::default()
        }
    }

    /// Ranges every value must lie in; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(AwdError::Config(what.to_string()));
        if self.batch_size == 0 || self.bptt == 0 || self.max_len == 0 || self.lin_ftrs == 0 {
            return bad("--batch-size, --bptt, --max-len and --lin-ftrs must be at least 1");
        }
        if !(self.valid_fraction > 0.0 && self.valid_fraction < 1.0) {
            return bad("--valid-fraction must lie in (0, 1)");
        }
        if !(self.drop_mult.is_finite() && self.drop_mult >= 0.0) {
            return bad("--drop-mult must be >= 0");
        }
        if self.stages.is_empty() {
            return bad("a run needs at least one stage");
        }
        for s in &self.stages {
            if s.epochs == 0 || !(s.lr.is_finite() && s.lr > 0.0) || s.lr_low < 0.0 {
                return bad(&format!(
                    "stage {s:?}: epochs and lr must be positive, lr_low >= 0"
                ));
            }
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return bad("--threshold must lie in (0, 1)");
        }
        crate::error::check_probability("head-p", self.head_p)
    }
}
