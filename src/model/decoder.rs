//! fastai's `LinearDecoder`: output dropout, then a linear layer whose weight may be the
//! embedding itself (tied: one parameter, passed in, not a copy).

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::dropout::{Masks, RnnDropout};
use crate::error::Result;
use crate::nn::linear::linear;

/// The decoder's own parameters (fastai's `LinearDecoder.decoder`, an `nn.Linear`, whence the
/// saved names `1.decoder.weight` / `1.decoder.bias`): `weight` `[V, E]` only when untied,
/// `bias` `[V]`.
#[derive(Module, Debug)]
pub struct DecoderWeights {
    pub weight: Option<Param<Tensor<2>>>,
    pub bias: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct LinearDecoder {
    pub decoder: DecoderWeights,
    pub output_dp: RnnDropout,
}

impl LinearDecoder {
    /// Weight (untied only) U(-0.1, 0.1), bias zeros, as fastai initializes them.
    pub fn new(
        vocab: usize,
        emb: usize,
        tied: bool,
        bias: bool,
        output_p: f64,
        masks: &Masks,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            decoder: DecoderWeights {
                weight: (!tied).then(|| {
                    Param::from_tensor(Tensor::random(
                        [vocab, emb],
                        Distribution::Uniform(-0.1, 0.1),
                        device,
                    ))
                }),
                bias: bias.then(|| Param::from_tensor(Tensor::zeros([vocab], device))),
            },
            output_dp: RnnDropout::new(output_p, masks.clone())?,
        })
    }

    /// Output dropout on time-major `[T, B, E]`.
    pub fn dropout_time_major(&self, input: Tensor<3>) -> Result<Tensor<3>> {
        self.output_dp.forward_time_major(input)
    }

    /// The weight `[V, E]` (the embedding's when tied) and the bias `[V]`.
    pub fn weight_and_bias(&self, tied: Option<Tensor<2>>) -> (Tensor<2>, Option<Tensor<1>>) {
        let weight = match (&self.decoder.weight, tied) {
            (Some(w), _) => w.val(),
            (None, Some(w)) => w,
            (None, None) => unreachable!("an untied decoder always has its own weight"),
        };
        (weight, self.decoder.bias.as_ref().map(|b| b.val()))
    }

    /// Logits `[B, T, V]` of the (already dropped) input.
    pub fn logits(&self, dropped: Tensor<3>, tied: Option<Tensor<2>>) -> Tensor<3> {
        let (weight, bias) = self.weight_and_bias(tied);
        linear(dropped, weight, bias)
    }
}
