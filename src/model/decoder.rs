//! fastai's `LinearDecoder`: output dropout, then a linear layer whose weight may be the
//! embedding itself (tied: one parameter, passed in, not a copy).

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::dropout::{Masks, RnnDropout};
use crate::error::Result;
use crate::nn::linear::linear;

/// The decoder's own parameters: `weight` `[V, E]` only when untied, `bias` `[V]`.
#[derive(Module, Debug)]
pub struct DecoderLinear {
    pub weight: Option<Param<Tensor<2>>>,
    pub bias: Option<Param<Tensor<1>>>,
}

#[derive(Module, Debug)]
pub struct LinearDecoder {
    pub decoder: DecoderLinear,
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
            decoder: DecoderLinear {
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

    /// `input` `[B, T, E]`, `tied` the embedding `[V, E]` when weights are tied.
    /// Returns `(logits [B, T, V], dropped input [B, T, E])`.
    pub fn forward(
        &self,
        input: Tensor<3>,
        tied: Option<Tensor<2>>,
    ) -> Result<(Tensor<3>, Tensor<3>)> {
        let dropped = self.output_dp.forward(input)?;
        let weight = match (&self.decoder.weight, tied) {
            (Some(w), _) => w.val(),
            (None, Some(w)) => w,
            (None, None) => unreachable!("an untied decoder always has its own weight"),
        };
        let bias = self.decoder.bias.as_ref().map(|b| b.val());
        Ok((linear(dropped.clone(), weight, bias), dropped))
    }
}
