//! The AWD-LSTM configuration, with fastai's defaults (`awd_lstm_lm_config`).

use serde::{Deserialize, Serialize};

use crate::error::{AwdError, Result, check_probability};

/// Sizes and dropouts of an AWD-LSTM language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AwdLstmConfig {
    pub vocab_size: usize,
    pub emb_size: usize,
    pub hidden_size: usize,
    pub n_layers: usize,
    pub pad_token: usize,
    pub bidirectional: bool,
    /// Dropout on the decoder's input (the last layer's output).
    pub output_p: f64,
    /// Dropout between LSTM layers.
    pub hidden_p: f64,
    /// Dropout on the embedded input.
    pub input_p: f64,
    /// Dropout of whole embedding rows.
    pub embed_p: f64,
    /// DropConnect on each layer's `weight_hh_l0`.
    pub weight_p: f64,
    /// Decoder weight tied to the embedding (one parameter).
    pub tie_weights: bool,
    pub out_bias: bool,
}

impl Default for AwdLstmConfig {
    fn default() -> Self {
        Self {
            vocab_size: 0,
            emb_size: 400,
            hidden_size: 1152,
            n_layers: 3,
            pad_token: 1,
            bidirectional: false,
            output_p: 0.1,
            hidden_p: 0.15,
            input_p: 0.25,
            embed_p: 0.02,
            weight_p: 0.2,
            tie_weights: true,
            out_bias: true,
        }
    }
}

impl AwdLstmConfig {
    /// fastai's `awd_lstm_lm_config` for a vocabulary of `vocab_size`.
    pub fn fastai(vocab_size: usize) -> Self {
        Self {
            vocab_size,
            ..Self::default()
        }
    }

    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// (input size, hidden size per direction) of layer `l`, as fastai builds them.
    pub fn layer_sizes(&self, l: usize) -> (usize, usize) {
        let d_in = if l == 0 {
            self.emb_size
        } else {
            self.hidden_size
        };
        let d_out = if l + 1 == self.n_layers {
            self.emb_size
        } else {
            self.hidden_size
        };
        (d_in, d_out / self.directions())
    }

    /// Every size positive, every probability in [0, 1).
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("emb_size", self.emb_size),
            ("hidden_size", self.hidden_size),
            ("n_layers", self.n_layers),
        ] {
            if v == 0 {
                return Err(AwdError::Config(format!("{name} must be at least 1")));
            }
        }
        if self.bidirectional
            && (!self.emb_size.is_multiple_of(2) || !self.hidden_size.is_multiple_of(2))
        {
            return Err(AwdError::Config(
                "a bidirectional model needs even emb_size and hidden_size".into(),
            ));
        }
        for (name, p) in [
            ("output_p", self.output_p),
            ("hidden_p", self.hidden_p),
            ("input_p", self.input_p),
            ("embed_p", self.embed_p),
            ("weight_p", self.weight_p),
        ] {
            check_probability(name, p)?;
        }
        Ok(())
    }
}
