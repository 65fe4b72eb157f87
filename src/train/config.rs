//! Every hyper-parameter of a training run: one list, from which both the TOML/JSON config and
//! the command-line flags are generated, and the presets.

use crate::kernels::PrecisionChoice;

use super::optim_config::{OptimConfig, OptimFlags, OptimizerKind, Schedule};
use super::stage::Stage;
use crate::data::{Dataset, DocOptions, Level, Source, Specials, VocabRules};
use crate::error::{AwdError, Result};
use crate::model::{AwdLstmConfig, ModelFlags};

crate::hyper_params! {
    /// The configuration of a training run (also the `--config` TOML file's fields; the model's
    /// are its `[model]` table).
    TrainConfig / TrainFlags {
    fixed {}
    nested {
    /// The model's sizes and dropouts.
    model: AwdLstmConfig / ModelFlags,
    /// The optimizer, its schedule and the loss's regularizers (the `[optim]` table).
    optim: OptimConfig / OptimFlags,
    }
    fields {
    /// Token level: word or char.
    level: Level = Level::Word,
    /// Special tokens: fastai or ptb.
    specials: Specials = Specials::Fastai,
    /// Minimum count for a token to enter the vocabulary.
    min_freq: usize = 1,
    /// Largest vocabulary, special tokens included.
    max_vocab: usize = 60000,
    /// Share held out for validation: of a text file's tokens, or of the documents (a directory
    /// of .txt files, a CSV without an `is_valid` column; chosen at random with --seed).
    valid_fraction: f64 = 0.1,
    /// A CSV file's text column.
    text_col: String = "text".to_string(),
    /// Read each document backwards, for a backward model (fastai's `backwards=True`); fastai
    /// level only. `--pretrained wt103-bwd` sets it.
    backwards: bool = false,
    /// Epochs to train.
    epochs: usize = 1,
    /// Stop after this many steps in all (0: no limit).
    max_steps: usize = 0,
    /// Rows per batch.
    batch_size: usize = 64,
    /// Mean window length (backpropagation through time).
    bptt: usize = 70,
    /// Vary the window length as AWD-LSTM does (scaling the learning rate by len/bptt).
    variable_bptt: bool = true,
    /// Rows per batch when evaluating.
    eval_batch_size: usize = 10,
    /// Learning rate.
    lr: f64 = 2e-3,
    /// Discriminative learning rates: the layer groups (each LSTM layer, then embedding + decoder)
    /// train at rates from this up to --lr, evenly spaced on a log scale (fastai's
    /// `slice(lr_low, lr)`); 0: every group at --lr.
    lr_low: f64 = 0.0,
    /// Epochs trained first with only the last layer group (embedding + decoder) unfrozen, at
    /// --freeze-lr (fastai's `freeze()` + `fit_one_cycle`), before --epochs unfrozen.
    freeze_epochs: usize = 0,
    /// Learning rate of the frozen epochs.
    freeze_lr: f64 = 2e-2,
    /// Multiplies every dropout of the model (fastai's `drop_mult`).
    drop_mult: f64 = 1.0,
    /// Seed of initialization, masks and window lengths.
    seed: u64 = 0,
    /// The products' operands: f32, bf16 with f32 sums (weights, optimizer, losses and the LSTM
    /// cell stay f32), or auto (bf16 where a start-up probe finds it faster here); the reference
    /// ops are always f32.
    precision: PrecisionChoice = PrecisionChoice::F32,
    /// Log training loss every this many steps.
    log_every: usize = 50,
    /// Tokens of the built-in grammar corpus (when no --data is given).
    grammar_tokens: usize = 60000,
    }
    }
}

/// A named set of hyper-parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// Seconds on a laptop: a small model on the built-in corpus.
    #[default]
    Tiny,
    /// fastai's `awd_lstm_lm_config` with fastai-style training (AdamW, one cycle).
    AwdLstmLm,
    /// The paper's Penn Treebank setting (SGD, NT-ASGD).
    Ptb,
    /// The paper's WikiText-2 setting.
    Wt2,
    /// Fine-tuning a pretrained model as fastai's `language_model_learner` (ULMFiT): fastai's
    /// tokenization and vocabulary, drop_mult 0.3, Adam (eps 1e-5, decoupled wd 0.01), moms
    /// (0.8, 0.7, 0.8), one frozen epoch at 2e-2, then unfrozen epochs at 2e-3 (one cycle each).
    Finetune,
}

impl Preset {
    pub fn config(self) -> TrainConfig {
        let base = TrainConfig::default();
        match self {
            Preset::Tiny => TrainConfig {
                model: AwdLstmConfig {
                    emb_size: 32,
                    hidden_size: 64,
                    n_layers: 2,
                    output_p: 0.1,
                    hidden_p: 0.1,
                    input_p: 0.1,
                    embed_p: 0.0,
                    weight_p: 0.1,
                    ..base.model.clone()
                },
                specials: Specials::Ptb,
                epochs: 4,
                batch_size: 16,
                bptt: 20,
                eval_batch_size: 10,
                lr: 5e-3,
                optim: OptimConfig {
                    clip: 0.25,
                    ..base.optim.clone()
                },
                log_every: 20,
                ..base
            },
            Preset::AwdLstmLm => TrainConfig {
                lr: 2e-3,
                optim: OptimConfig {
                    optimizer: OptimizerKind::Adamw,
                    weight_decay: 0.01,
                    clip: 0.1,
                    schedule: Schedule::OneCycle,
                    ..base.optim.clone()
                },
                ..base
            },
            Preset::Ptb => TrainConfig {
                model: AwdLstmConfig {
                    emb_size: 400,
                    hidden_size: 1150,
                    output_p: 0.4,
                    hidden_p: 0.25,
                    input_p: 0.4,
                    embed_p: 0.1,
                    weight_p: 0.5,
                    ..base.model.clone()
                },
                specials: Specials::Ptb,
                min_freq: 1,
                epochs: 500,
                batch_size: 80,
                bptt: 70,
                lr: 30.0,
                optim: OptimConfig {
                    optimizer: OptimizerKind::Sgd,
                    beta1: 0.0,
                    weight_decay: 1.2e-6,
                    clip: 0.25,
                    asgd: true,
                    nonmono: 5,
                    ..base.optim.clone()
                },
                ..base
            },
            Preset::Finetune => TrainConfig {
                level: Level::Fastai,
                specials: Specials::Fastai,
                min_freq: crate::data::fastai_vocab::MIN_FREQ,
                max_vocab: crate::data::fastai_vocab::MAX_VOCAB,
                epochs: 1,
                freeze_epochs: 1,
                freeze_lr: 2e-2,
                lr: 2e-3,
                batch_size: 64,
                bptt: 72,
                variable_bptt: false,
                optim: OptimConfig::fastai(),
                drop_mult: 0.3,
                ..base
            },
            Preset::Wt2 => {
                let ptb = Preset::Ptb.config();
                TrainConfig {
                    model: AwdLstmConfig {
                        input_p: 0.65,
                        hidden_p: 0.2,
                        ..ptb.model.clone()
                    },
                    epochs: 750,
                    ..ptb
                }
            }
        }
    }
}

impl TrainConfig {
    /// The model's configuration for a vocabulary of `vocab` tokens, dropouts times `drop_mult`.
    pub fn model_config(&self, vocab: usize) -> AwdLstmConfig {
        let m = self.model.with_vocab(vocab);
        let d = self.drop_mult;
        AwdLstmConfig {
            output_p: m.output_p * d,
            hidden_p: m.hidden_p * d,
            input_p: m.input_p * d,
            embed_p: m.embed_p * d,
            weight_p: m.weight_p * d,
            ..m
        }
    }

    /// The run's stages: the frozen epochs (if any: the last layer group alone, fastai's
    /// `freeze()`), then the unfrozen ones.
    pub fn stages(&self) -> Vec<Stage> {
        let mut stages = Vec::new();
        if self.freeze_epochs > 0 {
            stages.push(Stage {
                epochs: self.freeze_epochs,
                lr: self.freeze_lr,
                lr_low: 0.0,
                groups: 1,
            });
        }
        stages.push(Stage {
            epochs: self.epochs,
            lr: self.lr,
            lr_low: self.lr_low,
            groups: 0,
        });
        stages
    }

    /// Reads a TOML file of fields (unknown fields are errors).
    pub fn from_toml_file(path: &std::path::Path, base: TrainConfig) -> Result<Self> {
        crate::hyper::from_toml_file(path, base)
    }

    /// The data set of a run: `path` (a file or a directory with train/valid/test) read at this
    /// level and vocabulary, or without one the built-in grammar's corpus.
    pub fn dataset(&self, path: Option<&std::path::Path>) -> Result<Dataset> {
        match path {
            None => Dataset::grammar(self.grammar_tokens, self.specials, self.seed),
            Some(p) => {
                let docs = DocOptions {
                    valid_fraction: self.valid_fraction,
                    text_col: &self.text_col,
                    seed: self.seed,
                };
                let rules = VocabRules {
                    specials: self.specials,
                    min_freq: self.min_freq,
                    max_vocab: self.max_vocab,
                };
                let mut data =
                    Dataset::from_source(&Source::from_path(p, &docs)?, self.level, rules)?;
                if self.backwards {
                    data.reverse_documents();
                }
                Ok(data)
            }
        }
    }

    /// Ranges every value must lie in; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("epochs", self.epochs),
            ("batch-size", self.batch_size),
            ("bptt", self.bptt),
            ("eval-batch-size", self.eval_batch_size),
            ("max-vocab", self.max_vocab),
            ("log-every", self.log_every),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(AwdError::Config(format!("--{name} must be at least 1")));
            }
        }
        let bad = |name: &str, v: f64, range: &str| {
            AwdError::Config(format!("--{name} = {v} is out of range ({range})"))
        };
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr, "> 0"));
        }
        self.optim.validate()?;
        if !(self.freeze_lr.is_finite() && self.freeze_lr > 0.0) {
            return Err(bad("freeze-lr", self.freeze_lr, "> 0"));
        }
        if !(self.lr_low >= 0.0 && self.lr_low <= self.lr) {
            return Err(bad("lr-low", self.lr_low, "[0, --lr]"));
        }
        if !(self.drop_mult.is_finite() && self.drop_mult >= 0.0) {
            return Err(bad("drop-mult", self.drop_mult, ">= 0"));
        }
        if self.level == Level::Fastai && self.specials != Specials::Fastai {
            return Err(AwdError::Config(
                "--level fastai makes fastai's special tokens: use --specials fastai".into(),
            ));
        }
        if self.backwards && self.level != Level::Fastai {
            return Err(AwdError::Config(
                "--backwards reads documents backwards: it needs --level fastai (where xxbos starts each document)".into(),
            ));
        }
        if !(self.valid_fraction > 0.0 && self.valid_fraction < 1.0) {
            return Err(bad("valid-fraction", self.valid_fraction, "(0, 1)"));
        }
        // Dropouts are checked as the model gets them, times --drop-mult.
        self.model_config(self.max_vocab.max(1)).validate()
    }
}
