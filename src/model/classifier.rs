//! fastai's AWD-LSTM text classifier (`get_text_classifier`): the encoder run over each document
//! in chunks with its state carried (`SentenceEncoder`), concat pooling over the document's last
//! `max_len` positions (`masked_concat_pool`), and a head of BatchNorm → Dropout → Linear (→ ReLU)
//! blocks (`PoolingLinearClassifier`). Parameters carry fastai's names: `0.module.encoder.weight`,
//! `0.module.rnns.{l}.weight_hh_l0_raw`, ..., `1.layers.{i}.0.weight` (BatchNorm),
//! `1.layers.{i}.2.weight` (Linear).
//!
//! Unlike fastai, every row is masked by where its document is, never by its batch-mates: a
//! document's logits are the same alone and in any batch (eval mode).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::config::AwdLstmConfig;
use super::encoder::AwdLstm;
use crate::dropout::{Dropout, Masks};
use crate::error::{AwdError, Result};
use crate::nn::batch_norm::BatchNorm1d;
use crate::nn::linear::{Linear, LinearConfig};
use crate::params::groups::{Group, groups_by_path, lstm_layer};
use crate::params::rename::PathRenamer;

pub use super::documents::DocBatch;
use super::documents::concat_pool;

/// The classifier's sizes and dropouts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassifierConfig {
    /// The encoder (dropouts already times `drop_mult`, as fastai's `awd_lstm_clas_config`).
    pub encoder: AwdLstmConfig,
    pub n_classes: usize,
    /// The head's hidden sizes (fastai's `lin_ftrs`, default `[50]`).
    pub lin_ftrs: Vec<usize>,
    /// The head's dropouts: the first block's, then one per `lin_ftrs` entry (fastai's
    /// `[output_p] + ps`).
    pub head_ps: Vec<f64>,
    /// Chunk length (fastai's `seq_len`, 72).
    pub bptt: usize,
    /// Positions pooled at most (fastai's `max_len`, 72 × 20).
    pub max_len: usize,
    /// Each class a yes/no of its own (sigmoid outputs), not one class of several (softmax).
    #[serde(default)]
    pub multi_label: bool,
}

impl ClassifierConfig {
    /// Sizes of the head's layers: `[3·emb, *lin_ftrs, n_classes]`.
    pub fn head_dims(&self) -> Vec<usize> {
        std::iter::once(3 * self.encoder.emb_size)
            .chain(self.lin_ftrs.iter().copied())
            .chain(std::iter::once(self.n_classes))
            .collect()
    }

    pub fn validate(&self) -> Result<()> {
        self.encoder.validate()?;
        if self.n_classes < 2 {
            return Err(AwdError::Config(format!(
                "a classifier needs two classes or more, not {}",
                self.n_classes
            )));
        }
        if self.head_ps.len() != self.lin_ftrs.len() + 1 {
            return Err(AwdError::Config(format!(
                "{} head dropouts for {} head layers",
                self.head_ps.len(),
                self.lin_ftrs.len() + 1
            )));
        }
        if self.bptt == 0 || self.max_len == 0 || self.lin_ftrs.contains(&0) {
            return Err(AwdError::Config(
                "bptt, max_len and every head size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// fastai's `LinBnDrop(n_in, n_out, p, act)` with `bn=True, lin_first=False`: BatchNorm1d, Dropout
/// (absent when `p` is 0, which shifts the Linear's index from 2 to 1), Linear without bias, ReLU
/// unless it is the last block.
#[derive(Module, Debug)]
pub struct HeadBlock {
    pub bn: BatchNorm1d,
    pub dropout: Dropout,
    pub linear: Linear,
    pub relu: bool,
}

impl HeadBlock {
    /// `[B, n_in]` → `[B, n_out]`.
    fn forward(&mut self, x: Tensor<2>) -> Result<Tensor<2>> {
        let x = self.dropout.forward(self.bn.forward(x))?;
        let x = self.linear.forward(x);
        Ok(if self.relu {
            burn::tensor::activation::relu(x)
        } else {
            x
        })
    }

    /// The Linear's index in fastai's `LinBnDrop` sequence.
    fn linear_index(&self) -> &'static str {
        if self.dropout.p > 0.0 { "2" } else { "1" }
    }
}

#[derive(Module, Debug)]
pub struct ClassifierParts {
    pub encoder: AwdLstm,
    pub layers: Vec<HeadBlock>,
}

/// fastai's `SequentialRNN(SentenceEncoder(AWD_LSTM), PoolingLinearClassifier)`.
#[derive(Debug, Clone)]
pub struct TextClassifier {
    pub parts: ClassifierParts,
    pub config: ClassifierConfig,
}

/// `encoder.*` → `0.module.*`; `layers.{i}.bn.*` → `1.layers.{i}.0.*`; `layers.{i}.linear.*` →
/// `1.layers.{i}.{2|1}.*`.
pub struct ClassifierNames {
    linear_index: Vec<&'static str>,
}

impl PathRenamer for ClassifierNames {
    fn rename(&self, inner: &[String]) -> Vec<String> {
        let s = |v: &str| v.to_string();
        match inner {
            [first, rest @ ..] if first == "encoder" => [s("0"), s("module")]
                .into_iter()
                .chain(rest.iter().cloned())
                .collect(),
            [first, i, part, rest @ ..] if first == "layers" => {
                let index = match part.as_str() {
                    "bn" => "0",
                    "linear" => i.parse::<usize>().map_or("2", |i| self.linear_index[i]),
                    _ => part.as_str(),
                };
                [s("1"), s("layers"), i.clone(), s(index)]
                    .into_iter()
                    .chain(rest.iter().cloned())
                    .collect()
            }
            _ => inner.to_vec(),
        }
    }
}

crate::renamed_module!(TextClassifier, parts, |m: &Self| ClassifierNames {
    linear_index: m.parts.layers.iter().map(|b| b.linear_index()).collect(),
});

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct ClassifierOutput {
    /// `[B, n_classes]`
    pub logits: Tensor<2>,
    /// `[B, 3·emb]`: the output at the document's last token, the max and the mean over its
    /// pooled positions.
    pub pooled: Tensor<2>,
    /// `[B, W, emb]`: the encoder's output at the kept chunks, zeros where a row had no input.
    pub enc: Tensor<3>,
}

impl TextClassifier {
    /// A fresh classifier: the encoder as [`AwdLstm::new`], the head as fastai initializes it
    /// (BatchNorm weight 1 and bias 1e-3, Linear layers as PyTorch).
    pub fn new(config: &ClassifierConfig, masks: &Masks, device: &Device) -> Result<Self> {
        config.validate()?;
        let encoder = AwdLstm::new(&config.encoder, masks, device)?;
        let dims = config.head_dims();
        let last = dims.len() - 2;
        let layers = (0..dims.len() - 1)
            .map(|i| {
                Ok(HeadBlock {
                    bn: BatchNorm1d::new(dims[i], device),
                    dropout: Dropout::new(config.head_ps[i], masks.clone())?,
                    linear: LinearConfig::new(dims[i], dims[i + 1])
                        .with_bias(false)
                        .init(device),
                    relu: i < last,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            parts: ClassifierParts { encoder, layers },
            config: config.clone(),
        })
    }

    pub fn encoder(&self) -> &AwdLstm {
        &self.parts.encoder
    }

    /// The document batch through the encoder, chunk by chunk (fastai's `SentenceEncoder`), then
    /// pooled and classified. Rows are run in order of where their documents start (the longest
    /// first), a chunk taking only the rows whose document has begun, each joining with a zero
    /// state (fastai's `real_bs`); the state is carried across chunks, detached, as fastai's
    /// AWD-LSTM does. A chunk is kept for pooling where, counted from its document's start, it
    /// begins within the last `max_len` positions.
    pub fn forward(&mut self, batch: &DocBatch) -> Result<ClassifierOutput> {
        let device = self.parts.encoder.encoder.weight.device();
        let (bptt, max_len, pad) = (
            self.config.bptt,
            self.config.max_len,
            self.config.encoder.pad_token as u32,
        );
        let (rows, width) = (batch.rows, batch.width);
        // Rows by start, stably: those a chunk runs are then the first `real` rows.
        let mut order: Vec<usize> = (0..rows).collect();
        order.sort_by_key(|&r| batch.spans[r].0);
        let spans: Vec<(usize, usize)> = order.iter().map(|&r| batch.spans[r]).collect();
        if let Some(r) = (0..rows).find(|&r| !batch.spans[r].0.is_multiple_of(bptt)) {
            return Err(AwdError::Config(format!(
                "row {r}'s document starts at position {}, inside a chunk of {bptt}: pad at the front by whole chunks",
                batch.spans[r].0
            )));
        }
        let kept = |r: usize, i: usize| {
            let (start, end) = spans[r];
            i >= start && i < end && end - i <= max_len
        };

        self.parts.encoder.reset();
        let mut outs = Vec::new();
        let mut pooled_at: Vec<Vec<bool>> = vec![Vec::new(); rows];
        for i in (0..width).step_by(bptt) {
            let len = bptt.min(width - i);
            let real = spans.iter().take_while(|&&(s, _)| s <= i).count();
            if real == 0 {
                continue;
            }
            let ids: Vec<i64> = order[..real]
                .iter()
                .flat_map(|&r| batch.ids[r * width + i..r * width + i + len].iter())
                .map(|&t| t as i64)
                .collect();
            let words = Tensor::<2, Int>::from_data(TensorData::new(ids, [real, len]), &device);
            let out = self.parts.encoder.forward(words)?;
            if !(0..real).any(|r| kept(r, i)) {
                continue;
            }
            let [_, _, emb] = out.dims();
            let out = if real < rows {
                let zeros = Tensor::zeros([rows - real, len, emb], &device);
                Tensor::cat(vec![out, zeros], 0)
            } else {
                out
            };
            outs.push(out);
            for (r, at) in pooled_at.iter_mut().enumerate() {
                let (start, end) = spans[r];
                at.extend((i..i + len).map(|p| {
                    kept(r, i) && p >= start && p < end && batch.ids[order[r] * width + p] != pad
                }));
            }
        }
        if outs.is_empty() {
            return Err(AwdError::Config(
                "the batch has no document to encode".into(),
            ));
        }
        let enc = Tensor::cat(outs, 1);
        let pooled = concat_pool(enc.clone(), &pooled_at)?;
        let mut x = pooled.clone();
        for block in &mut self.parts.layers {
            x = block.forward(x)?;
        }
        // Back to the caller's row order.
        let mut inverse = vec![0i64; rows];
        for (sorted, &r) in order.iter().enumerate() {
            inverse[r] = sorted as i64;
        }
        let inverse = Tensor::<1, Int>::from_data(TensorData::new(inverse, [rows]), &device);
        Ok(ClassifierOutput {
            logits: x.select(0, inverse.clone()),
            pooled: pooled.select(0, inverse.clone()),
            enc: enc.select(0, inverse),
        })
    }
}

impl TextClassifier {
    /// fastai's `awd_lstm_clas_split`: the embedding (`0.module.encoder.*`), each LSTM layer
    /// (`0.module.rnns.{l}.*`), then the head (`1.*`), in that order.
    pub fn layer_groups(&self) -> Vec<Group> {
        let layers = self.encoder().rnns.len();
        let names = std::iter::once("embedding".to_string())
            .chain((0..layers).map(|l| format!("LSTM layer {l}")))
            .chain(["head".to_string()])
            .collect();
        groups_by_path(self, names, |path| {
            match lstm_layer(path, "0.module.rnns.") {
                Some(l) => 1 + l,
                None if path.starts_with("0.") => 0,
                None => layers + 1,
            }
        })
    }
}
