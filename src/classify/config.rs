//! The configuration of a classifier run: data columns, sizes, the optimizer, and the stages of
//! gradual unfreezing (fastai's ULMFiT tutorial recipe by default).

use crate::kernels::PrecisionChoice;

use crate::error::{AwdError, Result};
use crate::model::{AwdLstmConfig, ClassifierConfig, ModelFlags};
use crate::train::{OptimConfig, OptimFlags, Plan, Stage};

crate::hyper_params! {
    /// A classifier run (also the `--config` TOML file's fields; the encoder's in `[model]`).
    ClassifyConfig / ClassifyFlags {
    fixed {
        /// The stages of gradual unfreezing, in order (`[[stages]]` tables in TOML).
        stages: Vec<Stage> = Stage::ulmfit(),
    }
    nested {
        /// An untrained encoder's sizes, and the encoder's dropouts (before --drop-mult).
        model: AwdLstmConfig / ModelFlags,
        /// The optimizer, its schedule and the loss's regularizers (the `[optim]` table).
        optim: OptimConfig / OptimFlags,
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
        /// The products' operands: f32, bf16 with f32 sums, or auto (see `awd train --precision`).
        precision: PrecisionChoice = PrecisionChoice::F32,
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
            optim: OptimConfig::fastai(),
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

    /// The run the learner makes of this configuration.
    pub fn plan(&self) -> Plan {
        Plan {
            stages: self.stages.clone(),
            optim: self.optim.clone(),
            max_steps: self.max_steps,
            log_every: self.log_every,
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
        Stage::validate(&self.stages)?;
        self.optim.validate()?;
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return bad("--threshold must lie in (0, 1)");
        }
        crate::error::check_probability("head-p", self.head_p)
    }
}
