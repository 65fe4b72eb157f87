//! Dropout on activations (plain, and locked across timesteps), and of whole embedding rows.

use burn::module::{Flag, Module, Param};
use burn::tensor::{Int, Tensor};

use super::mask::{MaskOwner, Masks};
use crate::error::{Result, check_probability};

/// fastai's `RNNDropout`: one mask `[B, 1, F]` per call, shared by every timestep of `[B, T, F]`.
#[derive(Module, Debug)]
pub struct RnnDropout {
    pub p: f64,
    pub training: Param<Flag>,
    #[module(skip)]
    pub masks: Masks,
}

impl RnnDropout {
    pub fn new(p: f64, masks: Masks) -> Result<Self> {
        check_probability("p", p)?;
        Ok(Self {
            p,
            training: Param::from_bool(true),
            masks,
        })
    }

    fn active(&self, on_autodiff: bool) -> bool {
        self.p > 0.0 && self.training.is_enabled() && on_autodiff
    }

    /// `x`: `[B, T, F]` → `[B, T, F]`.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>> {
        self.locked(x, 0)
    }

    /// The same on time-major `x` `[T, B, F]`, the mask applied as `[1, B, F]`.
    pub fn forward_time_major(&self, x: Tensor<3>) -> Result<Tensor<3>> {
        self.locked(x, 1)
    }

    /// One mask over the batch axis `batch` and the features, drawn in fastai's shape
    /// `[B, 1, F]` whatever the layout (the same values in the same order, so masks replayed
    /// from fastai fit either way), shared along the other axis.
    fn locked(&self, x: Tensor<3>, batch: usize) -> Result<Tensor<3>> {
        if !self.active(x.is_autodiff()) {
            return Ok(x);
        }
        let (b, f) = (x.dims()[batch], x.dims()[2]);
        let mask = self.masks.draw([b, 1, f], self.p, &x.device())?;
        let mut shape = [1, 1, f];
        shape[batch] = b;
        Ok(x * mask.reshape(shape))
    }
}

/// PyTorch's `nn.Dropout`: a mask the shape of the input, new at every call.
#[derive(Module, Debug)]
pub struct Dropout {
    pub p: f64,
    pub training: Param<Flag>,
    #[module(skip)]
    pub masks: Masks,
}

impl Dropout {
    pub fn new(p: f64, masks: Masks) -> Result<Self> {
        check_probability("p", p)?;
        Ok(Self {
            p,
            training: Param::from_bool(true),
            masks,
        })
    }

    /// `x`: `[B, F]` → `[B, F]`.
    pub fn forward(&self, x: Tensor<2>) -> Result<Tensor<2>> {
        if !(self.p > 0.0 && self.training.is_enabled() && x.is_autodiff()) {
            return Ok(x);
        }
        let mask = self.masks.draw(x.dims(), self.p, &x.device())?;
        Ok(x * mask)
    }
}

/// fastai's `EmbeddingDropout`: drops whole rows of the embedding matrix (mask `[V, 1]`) before
/// the lookup, so a dropped word is dropped at every position of the batch. The gradient reaches
/// the embedding weight through the mask; as with PyTorch's `padding_idx`, lookups of the pad
/// token send no gradient to its row.
#[derive(Module, Debug)]
pub struct EmbeddingDropout {
    pub p: f64,
    pub pad_token: Option<usize>,
    pub training: Param<Flag>,
    #[module(skip)]
    pub masks: Masks,
}

impl EmbeddingDropout {
    pub fn new(p: f64, pad_token: Option<usize>, masks: Masks) -> Result<Self> {
        check_probability("embed_p", p)?;
        Ok(Self {
            p,
            pad_token,
            training: Param::from_bool(true),
            masks,
        })
    }

    /// `weight` `[V, E]` (the embedding parameter), `words` `[B, T]` → `[B, T, E]` (or
    /// `[T, B]` → `[T, B, E]`: the lookup keeps the layout of the ids).
    pub fn forward(&self, weight: &Param<Tensor<2>>, words: Tensor<2, Int>) -> Result<Tensor<3>> {
        let id = weight.id;
        let weight = weight.val();
        let [v, _] = weight.dims();
        let mask = match self.p > 0.0 && self.training.is_enabled() && weight.is_autodiff() {
            true => Some(self.masks.draw_for(
                MaskOwner::Embedding(id),
                [v, 1],
                self.p,
                &weight.device(),
            )?),
            false => None,
        };
        let out = burn::tensor::module::embedding(weight, words.clone());
        // fastai multiplies the whole matrix by the row mask and then looks rows up; scaling
        // the rows looked up by their mask entries gives the same values and gradients
        // without two passes over all V rows (the product and its backward).
        let out = match mask {
            Some(mask) => {
                let [a, b] = words.dims();
                let at = words.clone().reshape([a * b]);
                out * mask.reshape([v]).select(0, at).reshape([a, b, 1])
            }
            None => out,
        };
        Ok(match self.pad_token {
            Some(pad) if out.is_autodiff() => {
                let is_pad = words.equal_elem(pad as i64);
                if !is_pad.clone().any().into_scalar::<bool>() {
                    return Ok(out);
                }
                // Same values; the pad positions' gradient is cut.
                let keep = is_pad.bool_not().float().unsqueeze_dim::<3>(2);
                out.clone() * keep.clone() + out.detach() * (keep.neg() + 1.0)
            }
            _ => out,
        })
    }
}
