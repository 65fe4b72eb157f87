//! The AWD-LSTM configuration, with fastai's defaults (`awd_lstm_lm_config`).

use crate::error::{AwdError, Result, check_probability};

crate::hyper_params! {
    /// Sizes and dropouts of an AWD-LSTM language model (fastai's `awd_lstm_lm_config`); the
    /// `[model]` table of a `--config` file.
    AwdLstmConfig / ModelFlags {
        fixed {
            /// Tokens in the vocabulary (set from the data or the checkpoint, never a flag).
            vocab_size: usize = 0,
        }
        nested {}
        fields {
            /// Embedding size.
            emb_size: usize = 400,
            /// Hidden size of the inner LSTM layers.
            hidden_size: usize = 1152,
            /// Number of LSTM layers.
            n_layers: usize = 3,
            /// Id of the padding token (its embedding row gets no gradient).
            pad_token: usize = 1,
            /// Bidirectional LSTM layers.
            bidirectional: bool = false,
            /// Dropout on the last layer's output (the decoder's input).
            output_p: f64 = 0.1,
            /// Dropout between LSTM layers.
            hidden_p: f64 = 0.15,
            /// Dropout on the embedded input.
            input_p: f64 = 0.25,
            /// Dropout of whole embedding rows.
            embed_p: f64 = 0.02,
            /// DropConnect on each layer's recurrent weight `weight_hh_l0`.
            weight_p: f64 = 0.2,
            /// Tie the decoder weight to the embedding (one parameter).
            tie_weights: bool = true,
            /// A bias in the decoder.
            out_bias: bool = true,
        }
    }
}

impl AwdLstmConfig {
    /// This configuration for a vocabulary of `vocab_size`.
    pub fn with_vocab(&self, vocab_size: usize) -> Self {
        Self {
            vocab_size,
            ..self.clone()
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
