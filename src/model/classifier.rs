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
use super::sentence_encoder::{Sorted, encode};
use crate::dist::Dist;
use crate::params::HostTensor;

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

    /// The document batch through the encoder, chunk by chunk (fastai's `SentenceEncoder`, see
    /// [`encode`]), then pooled over each row's last `max_len` positions and classified.
    pub fn forward(&mut self, batch: &DocBatch) -> Result<ClassifierOutput> {
        self.forward_on(batch, &Dist::single())
    }

    /// [`forward`](Self::forward) as one rank of a data-parallel job, each rank given the whole
    /// global batch: this rank encodes the rows at sorted positions `rank`, `rank + ranks`, ...,
    /// every rank's pooled features are gathered (one sum), and the head (its batch norm over
    /// the whole batch, its masks whole) runs on the global batch, as one process would.
    /// `logits` and `pooled` are the global batch's, `enc` this rank's rows. The gradient that
    /// reaches this rank's encoder through the head is `ranks` times its share, so that the
    /// step's average over the ranks is the whole batch's gradient.
    pub fn forward_on(&mut self, batch: &DocBatch, dist: &Dist) -> Result<ClassifierOutput> {
        let (rank, ranks) = (dist.rank(), dist.size());
        if batch.rows < ranks {
            return Err(AwdError::Config(format!(
                "a batch of {} documents among {ranks} ranks: each rank needs one at least",
                batch.rows
            )));
        }
        let sorted = Sorted::new(batch, self.config.bptt)?;
        let mine: Vec<usize> = (rank..batch.rows).step_by(ranks).collect();
        let masks = self.parts.encoder.encoder_dp.masks.clone();
        let before = (ranks > 1).then(|| masks.set_rows(None));
        let shape = (self.config.bptt, self.config.max_len, ranks > 1);
        let encoded = encode(&mut self.parts.encoder, batch, &sorted, &mine, shape);
        if ranks > 1 {
            masks.set_rows(None);
        }
        let head = encoded.and_then(|e| {
            let pooled = concat_pool(e.enc.clone(), &e.pooled_at)?;
            let pooled = gather_pooled(pooled, &mine, batch.rows, dist);
            let mut x = pooled.clone();
            for block in &mut self.parts.layers {
                x = block.forward(x)?;
            }
            Ok((x, pooled, e.enc))
        });
        if let Some(before) = before {
            masks.set_rows(before);
        }
        let (logits, pooled, enc) = head?;
        // Back to the caller's row order.
        let device = logits.device();
        let inverse =
            Tensor::<1, Int>::from_data(TensorData::new(sorted.inverse(), [batch.rows]), &device);
        Ok(ClassifierOutput {
            logits: logits.select(0, inverse.clone()),
            pooled: pooled.select(0, inverse.clone()),
            enc: if ranks == 1 {
                enc.select(1, inverse).swap_dims(0, 1)
            } else {
                enc.swap_dims(0, 1)
            },
        })
    }
}

/// `[rows, F]` in sorted order: this rank's pooled features `own` `[n, F]` (at sorted positions
/// `mine`) beside every other rank's, gathered by one sum; the other ranks' rows are constants,
/// and the gradient reaching `own` is scaled by the number of ranks. One process: `own`.
fn gather_pooled(own: Tensor<2>, mine: &[usize], rows: usize, dist: &Dist) -> Tensor<2> {
    let ranks = dist.size();
    if ranks == 1 {
        return own;
    }
    let [n, f] = own.dims();
    let device = own.device();
    let values = HostTensor::from_tensor(own.clone().detach()).values;
    let mut all = vec![0f32; rows * f];
    for (k, &p) in mine.iter().enumerate() {
        all[p * f..(p + 1) * f].copy_from_slice(&values[k * f..(k + 1) * f]);
    }
    dist.sum_f32(&mut all);
    let others = Tensor::<2>::from_data(TensorData::new(all, [rows, f]), &device);
    // `own` in value, `ranks · own` in gradient: the added term is exactly zero.
    let extra = own.clone().mul_scalar((ranks - 1) as f32);
    let own = own + (extra.clone() - extra.detach());
    let at: Vec<i64> = (0..rows)
        .map(|p| match mine.iter().position(|&q| q == p) {
            Some(k) => k as i64,
            None => (n + p) as i64,
        })
        .collect();
    let at = Tensor::<1, Int>::from_data(TensorData::new(at, [rows]), &device);
    Tensor::cat(vec![own, others], 0).select(0, at)
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
