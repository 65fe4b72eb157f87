//! The language model: AWD-LSTM encoder + linear decoder, saved under fastai's names.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use super::config::AwdLstmConfig;
use super::decoder::LinearDecoder;
use super::encoder::AwdLstm;
use super::loss::{activation_reg, cross_entropy, temporal_activation_reg};
use crate::dropout::Masks;
use crate::error::Result;
use crate::nn::rename::PathRenamer;

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
    /// `[B, T, V]`
    pub logits: Tensor<3>,
    /// The last layer's output `[B, T, E]`, before output dropout (TAR is computed on it).
    pub raw: Tensor<3>,
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

    /// Forgets the carried hidden state.
    pub fn reset(&mut self) {
        self.parts.encoder.reset();
    }

    /// `words` `[B, T]` → logits and the last layer's outputs.
    pub fn forward(&mut self, words: Tensor<2, Int>) -> Result<LmOutput> {
        let raw = self.parts.encoder.forward(words)?;
        let tied = self
            .config()
            .tie_weights
            .then(|| self.parts.encoder.encoder.weight.val());
        let (logits, dropped) = self.parts.decoder.forward(raw.clone(), tied)?;
        Ok(LmOutput {
            logits,
            raw,
            dropped,
        })
    }

    /// Forward pass and the loss `CE + alpha * AR + beta * TAR` against `targets` `[B, T]`.
    pub fn loss(
        &mut self,
        words: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        alpha: f64,
        beta: f64,
    ) -> Result<(LmOutput, LmLoss)> {
        let out = self.forward(words)?;
        let ce = cross_entropy(out.logits.clone(), targets);
        let ar = activation_reg(out.dropped.clone());
        let tar = temporal_activation_reg(out.raw.clone());
        let total = ce.clone() + ar.clone().mul_scalar(alpha) + tar.clone().mul_scalar(beta);
        Ok((
            out,
            LmLoss {
                cross_entropy: ce,
                ar,
                tar,
                total,
            },
        ))
    }
}
