//! fastai's `AWD_LSTM` encoder: embedding → embedding dropout → input dropout → weight-dropped
//! LSTM layers with locked dropout between them. Stateful across batches.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Int, Tensor};

use super::config::AwdLstmConfig;
use crate::dropout::{EmbeddingDropout, Masks, RnnDropout, WeightDropout};
use crate::error::Result;
use crate::kernels::lstm_op::lstm_sequence;
use crate::kernels::{Compute, Precision};
use crate::nn::lstm::{Direction, lstm_direction};
use crate::nn::{Lstm, LstmConfig, LstmState};

/// The embedding matrix `[V, E]` (saved as `encoder.weight`).
#[derive(Module, Debug)]
pub struct Embedding {
    pub weight: Param<Tensor<2>>,
}

/// The AWD-LSTM encoder.
#[derive(Module, Debug)]
pub struct AwdLstm {
    pub encoder: Embedding,
    pub rnns: Vec<WeightDropout<Lstm>>,
    pub encoder_dp: EmbeddingDropout,
    pub input_dp: RnnDropout,
    pub hidden_dps: Vec<RnnDropout>,
    /// Final state of the last batch per layer (`[dirs, B, H_l]`), detached; `None` after reset.
    #[module(skip)]
    pub hidden: Option<Vec<LstmState>>,
    #[module(skip)]
    pub config: AwdLstmConfig,
    /// Fused kernels or reference ops, for the LSTM layers and the language model's loss: the
    /// model's one setting ([`Compute`]).
    #[module(skip)]
    pub compute: Compute,
    /// The fused kernels' product precision ([`Precision`]); the reference ops are f32.
    #[module(skip)]
    pub precision: Precision,
}

impl AwdLstm {
    /// A freshly initialized encoder (embedding U(-0.1, 0.1), LSTMs as PyTorch initializes them).
    pub fn new(config: &AwdLstmConfig, masks: &Masks, device: &Device) -> Result<Self> {
        config.validate()?;
        let weight = Tensor::random(
            [config.vocab_size, config.emb_size],
            Distribution::Uniform(-0.1, 0.1),
            device,
        );
        let rnns = (0..config.n_layers)
            .map(|l| {
                let (d_in, d_out) = config.layer_sizes(l);
                // Time-major, the fused kernels' layout: see `forward_time_major`.
                let lstm = LstmConfig::new(d_in, d_out)
                    .with_bidirectional(config.bidirectional)
                    .init(device);
                // As fastai: only `weight_hh_l0` is dropped, also in a bidirectional layer, so
                // the reverse direction's recurrent weight stays `module.weight_hh_l0_reverse`.
                WeightDropout::new(lstm, &["weight_hh_l0"], config.weight_p, masks.clone())
            })
            .collect::<Result<Vec<_>>>()?;
        let hidden_dps = (0..config.n_layers.saturating_sub(1))
            .map(|_| RnnDropout::new(config.hidden_p, masks.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            encoder: Embedding {
                weight: Param::from_tensor(weight),
            },
            rnns,
            encoder_dp: EmbeddingDropout::new(
                config.embed_p,
                Some(config.pad_token),
                masks.clone(),
            )?,
            input_dp: RnnDropout::new(config.input_p, masks.clone())?,
            hidden_dps,
            hidden: None,
            config: config.clone(),
            compute: Compute::default(),
            precision: Precision::default(),
        })
    }

    /// Forgets the carried state: the next batch starts from zeros.
    pub fn reset(&mut self) {
        self.hidden = None;
    }

    /// `words` `[B, T]` → the last layer's output `[B, T, E]` (before any output dropout).
    ///
    /// Starts from the state the previous batch ended in, resized to `B` rows as fastai's
    /// `_change_hidden` does (new rows are zeros), and keeps this batch's final state, detached.
    pub fn forward(&mut self, words: Tensor<2, Int>) -> Result<Tensor<3>> {
        Ok(self.forward_time_major(words)?.swap_dims(0, 1))
    }

    /// [`forward`](Self::forward) with the output time-major, `[T, B, E]`, the layout it is
    /// computed in: the ids are transposed once and every activation after the lookup stays
    /// in the fused LSTM's own layout (no copy between layers, nor in their gradients).
    pub fn forward_time_major(&mut self, words: Tensor<2, Int>) -> Result<Tensor<3>> {
        let [batch, _] = words.dims();
        let device = words.device();
        let hidden = self.initial_state(batch, &device);
        let words = words.swap_dims(0, 1);
        let mut out = self.encoder_dp.forward(&self.encoder.weight, words)?;
        out = self.input_dp.forward_time_major(out)?;
        let last = self.rnns.len() - 1;
        let mut new_hidden = Vec::with_capacity(self.rnns.len());
        let precision = self.precision;
        let fused = |x, w_ih, w_hh, bias, state, reverse| {
            lstm_sequence(x, w_ih, w_hh, bias, state, reverse, precision)
        };
        let direction: Direction = if self.compute.fused_for(&out) {
            &fused
        } else {
            &lstm_direction
        };
        for (l, (rnn, state)) in self.rnns.iter().zip(hidden).enumerate() {
            let (o, s) = rnn
                .dropped()?
                .forward_window_with(out, Some(state), direction);
            new_hidden.push(s);
            out = if l == last {
                o
            } else {
                self.hidden_dps[l].forward_time_major(o)?
            };
        }
        self.hidden = Some(new_hidden);
        Ok(out)
    }

    /// The final state of the last batch, per layer (`None` after a reset).
    pub fn state(&self) -> Option<&[LstmState]> {
        self.hidden.as_deref()
    }

    fn initial_state(&self, batch: usize, device: &Device) -> Vec<LstmState> {
        let dirs = self.config.directions();
        (0..self.rnns.len())
            .map(|l| {
                let h_size = self.config.layer_sizes(l).1;
                match self.hidden.as_ref().map(|h| h[l].clone()) {
                    None => LstmState::zeros(dirs, batch, h_size, device),
                    Some(s) => LstmState {
                        h: resize_rows(s.h, batch),
                        c: resize_rows(s.c, batch),
                    },
                }
            })
            .collect()
    }
}

/// `[D, B_old, H]` → `[D, batch, H]`: cut rows, or append zero rows.
fn resize_rows(t: Tensor<3>, batch: usize) -> Tensor<3> {
    let [d, old, h] = t.dims();
    if batch == old {
        t
    } else if batch < old {
        t.narrow(1, 0, batch)
    } else {
        let zeros = Tensor::zeros([d, batch - old, h], &t.device());
        Tensor::cat(vec![t, zeros], 1)
    }
}
