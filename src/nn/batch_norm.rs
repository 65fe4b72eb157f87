//! PyTorch's `BatchNorm1d` on `[B, F]`, in its names (`weight`, `bias`, `running_mean`,
//! `running_var`, `num_batches_tracked`) and with its running statistics: the variance kept is the
//! unbiased one (`n/(n-1)` times the batch's), while the batch is normalized by the biased one.
//! (Burn's `BatchNorm` keeps the biased variance, so its statistics would drift from fastai's.)

use burn::module::{Flag, Module, Param};
use burn::tensor::module::{batch_norm, batch_norm_train};
use burn::tensor::{Device, Tensor, TensorData};

use crate::params::HostTensor;

/// Running statistics, kept on the host (they are not trained and are read only to save them).
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats {
    /// `[F]`
    pub mean: Vec<f32>,
    /// `[F]`, unbiased.
    pub var: Vec<f32>,
    pub batches: i64,
}

/// fastai's `BatchNorm(nf, ndim=1)`: weight 1, bias 1e-3, eps 1e-5, momentum 0.1.
#[derive(Module, Debug)]
pub struct BatchNorm1d {
    /// `[F]`
    pub weight: Param<Tensor<1>>,
    /// `[F]`
    pub bias: Param<Tensor<1>>,
    pub training: Param<Flag>,
    #[module(skip)]
    pub stats: RunningStats,
}

const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

impl BatchNorm1d {
    pub fn new(features: usize, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([features], device)),
            bias: Param::from_tensor(Tensor::full([features], 1e-3, device)),
            training: Param::from_bool(true),
            stats: RunningStats {
                mean: vec![0.0; features],
                var: vec![1.0; features],
                batches: 0,
            },
        }
    }

    /// `x` `[B, F]` → `[B, F]`. Training (flag on, autodiff device): normalized by the batch's
    /// statistics, which update the running ones; otherwise by the running statistics.
    pub fn forward(&mut self, x: Tensor<2>) -> Tensor<2> {
        let device = x.device();
        let [rows, features] = x.dims();
        let running =
            |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [features]), &device);
        if !(self.training.is_enabled() && x.is_autodiff()) {
            let (mean, var) = (running(&self.stats.mean), running(&self.stats.var));
            return batch_norm(x, self.weight.val(), self.bias.val(), mean, var, EPS);
        }
        let out = batch_norm_train(x, self.weight.val(), self.bias.val(), EPS);
        let host = |t: Tensor<1>| HostTensor::from_tensor(t.detach()).values;
        let (mean, var) = (host(out.mean), host(out.variance));
        let unbiased = rows as f32 / (rows.max(2) - 1) as f32;
        let m = MOMENTUM as f32;
        for f in 0..features {
            self.stats.mean[f] = (1.0 - m) * self.stats.mean[f] + m * mean[f];
            self.stats.var[f] = (1.0 - m) * self.stats.var[f] + m * var[f] * unbiased;
        }
        self.stats.batches += 1;
        out.output
    }
}
