//! The language model: AWD-LSTM encoder + linear decoder, saved under fastai's names.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use super::config::AwdLstmConfig;
use super::decoder::LinearDecoder;
use super::encoder::AwdLstm;
use super::loss::{activation_reg, cross_entropy, temporal_activation_reg};
use crate::dropout::Masks;
use crate::error::Result;
use crate::kernels::decoder_ce::decoder_cross_entropy;
use crate::kernels::{Compute, Precision};
use crate::nn::linear::linear;
use crate::params::groups::{Group, groups_by_path, lstm_layer};
use crate::params::rename::PathRenamer;

#[derive(Module, Debug)]
pub struct LmParts {
    pub encoder: AwdLstm,
    pub decoder: LinearDecoder,
}

/// fastai's `SequentialRNN(AWD_LSTM, LinearDecoder)`: parameters are named `0.encoder.weight`,
/// `0.rnns.{l}.weight_hh_l0_raw`, `0.rnns.{l}.module.weight_ih_l0`, ..., `1.decoder.bias`.
#[derive(Debug, Clone)]
pub struct LanguageModel {
    pub parts: LmParts,
}

/// `encoder.*` → `0.*`, `decoder.*` → `1.*`, as fastai's `SequentialRNN` numbers them.
pub struct SequentialNames;

impl PathRenamer for SequentialNames {
    fn rename(&self, inner: &[String]) -> Vec<String> {
        let mut out = inner.to_vec();
        if let Some(first) = out.first_mut() {
            match first.as_str() {
                "encoder" => *first = "0".into(),
                "decoder" => *first = "1".into(),
                _ => {}
            }
        }
        out
    }
}

crate::renamed_module!(LanguageModel, parts, |_: &Self| SequentialNames);

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct LmOutput {
    /// `[B, T, V]`; `None` from [`LanguageModel::loss`] when the fused loss never formed them.
    pub logits: Option<Tensor<3>>,
    /// The last layer's output `[B, T, E]`, before output dropout (TAR is computed on it).
    pub activations: Tensor<3>,
    /// The same after output dropout (AR is computed on it).
    pub dropped: Tensor<3>,
}

/// The loss terms of one batch.
#[derive(Debug, Clone)]
pub struct LmLoss {
    pub cross_entropy: Tensor<1>,
    pub ar: Tensor<1>,
    pub tar: Tensor<1>,
    /// `cross_entropy + alpha * ar + beta * tar`
    pub total: Tensor<1>,
}

impl LanguageModel {
    pub fn new(config: &AwdLstmConfig, masks: &Masks, device: &Device) -> Result<Self> {
        let encoder = AwdLstm::new(config, masks, device)?;
        let decoder = LinearDecoder::new(
            config.vocab_size,
            config.emb_size,
            config.tie_weights,
            config.out_bias,
            config.output_p,
            masks,
            device,
        )?;
        Ok(Self {
            parts: LmParts { encoder, decoder },
        })
    }

    pub fn config(&self) -> &AwdLstmConfig {
        &self.parts.encoder.config
    }

    pub fn encoder(&self) -> &AwdLstm {
        &self.parts.encoder
    }

    /// Fused kernels where the backend has them (the default), or the reference ops everywhere:
    /// the two compute the same values and gradients.
    pub fn set_compute(&mut self, compute: Compute) {
        self.parts.encoder.compute = compute;
    }

    /// The fused kernels' product precision (f32 by default; the reference ops are f32).
    pub fn set_precision(&mut self, precision: Precision) {
        self.parts.encoder.precision = precision;
    }

    /// Forgets the carried hidden state.
    pub fn reset(&mut self) {
        self.parts.encoder.reset();
    }

    fn tied(&self) -> Option<Tensor<2>> {
        self.config()
            .tie_weights
            .then(|| self.parts.encoder.encoder.weight.val())
    }

    /// The last layer's output and the same after output dropout, time-major `[T, B, E]`.
    fn activations(&mut self, words: Tensor<2, Int>) -> Result<(Tensor<3>, Tensor<3>)> {
        let activations = self.parts.encoder.forward_time_major(words)?;
        let dropped = self.parts.decoder.dropout_time_major(activations.clone())?;
        Ok((activations, dropped))
    }

    /// `words` `[B, T]` → logits and the last layer's outputs.
    pub fn forward(&mut self, words: Tensor<2, Int>) -> Result<LmOutput> {
        let (activations, dropped) = self.activations(words)?;
        let (activations, dropped) = (activations.swap_dims(0, 1), dropped.swap_dims(0, 1));
        let logits = self.parts.decoder.logits(dropped.clone(), self.tied());
        Ok(LmOutput {
            logits: Some(logits),
            activations,
            dropped,
        })
    }

    /// Forward pass and the loss `CE + alpha * AR + beta * TAR` against `targets` `[B, T]`.
    /// With the fused decoder + cross-entropy, the logits are never formed (`logits: None`).
    pub fn loss(
        &mut self,
        words: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        alpha: f64,
        beta: f64,
    ) -> Result<(LmOutput, LmLoss)> {
        self.loss_inner(words, targets, alpha, beta, false)
    }

    /// [`loss`](Self::loss), with the logits also returned (formed outside the graph when the
    /// loss is fused, so the gradients are the same).
    pub fn loss_with_logits(
        &mut self,
        words: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        alpha: f64,
        beta: f64,
    ) -> Result<(LmOutput, LmLoss)> {
        self.loss_inner(words, targets, alpha, beta, true)
    }

    fn loss_inner(
        &mut self,
        words: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        alpha: f64,
        beta: f64,
        want_logits: bool,
    ) -> Result<(LmOutput, LmLoss)> {
        // Time-major throughout: the loss is a mean over every position, so its rows may come
        // in the order the encoder computes them, with the targets transposed to match.
        let (activations_tm, dropped_tm) = self.activations(words)?;
        let [t, b, e] = dropped_tm.dims();
        let (weight, bias) = self.parts.decoder.weight_and_bias(self.tied());
        let fused = self.parts.encoder.compute.fused_for(&dropped_tm).then(|| {
            decoder_cross_entropy(
                dropped_tm.clone().reshape([t * b, e]),
                weight.clone(),
                bias.clone(),
                targets.clone().swap_dims(0, 1).reshape([t * b]),
                self.parts.encoder.precision,
            )
        });
        let activations = activations_tm.clone().swap_dims(0, 1);
        let dropped = dropped_tm.clone().swap_dims(0, 1);
        let (ce, logits) = match fused {
            Some(ce) => {
                let logits = want_logits.then(|| {
                    linear(
                        dropped.clone().detach(),
                        weight.detach(),
                        bias.map(|b| b.detach()),
                    )
                });
                (ce, logits)
            }
            None => {
                let logits = linear(dropped.clone(), weight, bias);
                (cross_entropy(logits.clone(), targets), Some(logits))
            }
        };
        let ar = activation_reg(dropped_tm);
        let tar = temporal_activation_reg(activations_tm, 0);
        let total = ce.clone() + ar.clone().mul_scalar(alpha) + tar.clone().mul_scalar(beta);
        Ok((
            LmOutput {
                logits,
                activations,
                dropped,
            },
            LmLoss {
                cross_entropy: ce,
                ar,
                tar,
                total,
            },
        ))
    }
}

impl LanguageModel {
    /// fastai's `awd_lstm_lm_split`: one group per LSTM layer (`0.rnns.{l}.*`), then the embedding
    /// with the decoder (`0.encoder.*`, `1.decoder.*`), in that order; rates 1, none frozen.
    pub fn layer_groups(&self) -> Vec<Group> {
        let layers = self.encoder().rnns.len();
        let names = (0..layers)
            .map(|l| format!("LSTM layer {l}"))
            .chain(["embedding + decoder".to_string()])
            .collect();
        groups_by_path(self, names, |path| {
            lstm_layer(path, "0.rnns.").unwrap_or(layers)
        })
    }
}
