//! Optimizers (Burn's), gradient-norm clipping as PyTorch defines it, learning-rate schedules
//! and the parameter averaging of NT-ASGD.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Tensor;

use super::optim_config::{OptimConfig, OptimizerKind};
pub use super::optim_config::{combined_cos, scheduled_lr};
use crate::kernels::adam::{AdamControls, Decay, FusedAdam};
use crate::kernels::op::sum_squares;
use crate::params::{ParamMapper, ParamVisitor, map_params, visit_params};

/// The optimizer for `kind` (Burn's, Adam computed in one pass: [`FusedAdam`]), with the run's betas, epsilon and weight decay. Clipping is done
/// by [`clip_global_norm`], not by the optimizer (Burn clips each tensor on its own).
/// Returns with it the handles of Adam's β₁ and gradient factor (none for SGD).
pub fn build(cfg: &OptimConfig, kind: OptimizerKind) -> (ModuleOptimizer, Option<AdamControls>) {
    let wd = cfg.weight_decay as f32;
    let adam = |decay| {
        let adam = FusedAdam::new(cfg.beta1 as f32, cfg.beta2 as f32, cfg.eps as f32, decay);
        let controls = adam.controls();
        (adam.init(), Some(controls))
    };
    match kind {
        OptimizerKind::Adam if wd > 0.0 => adam(Decay::L2(wd)),
        OptimizerKind::Adam => adam(Decay::None),
        OptimizerKind::Adamw => adam(Decay::Decoupled(wd)),
        OptimizerKind::Sgd => (
            SgdConfig::new()
                .with_weight_decay((wd > 0.0).then(|| WeightDecayConfig::new(wd)))
                .with_momentum((cfg.beta1 > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(cfg.beta1)
                        .with_dampening(0.0)
                }))
                .init(),
            None,
        ),
    }
}

/// The 2-norm of each parameter's gradient, by path (parameters without a gradient are absent):
/// summed on the host in one parallel pass where the gradients are there (CPU), else on the
/// device and read back in one transfer.
pub fn grad_norms<M: Module>(module: &M, grads: &GradientsParams) -> Vec<(String, ParamId, f64)> {
    struct Norms<'a> {
        grads: &'a GradientsParams,
        /// Path, id, and the sum of squares when it was taken on the host.
        found: Vec<(String, ParamId, Option<f64>)>,
        device: Vec<Tensor<1>>,
    }
    impl ParamVisitor for Norms<'_> {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let host = sum_squares(&g);
                if host.is_none() {
                    self.device.push(g.square().sum());
                }
                self.found.push((path.to_string(), param.id, host));
            }
        }
    }
    let mut v = Norms {
        grads,
        found: Vec::new(),
        device: Vec::new(),
    };
    visit_params(module, &mut v);
    let mut device = if v.device.is_empty() {
        Vec::new()
    } else {
        Tensor::cat(v.device, 0)
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .expect("f64 values")
    }
    .into_iter();
    v.found
        .into_iter()
        .map(|(path, id, host)| {
            let sq = host.unwrap_or_else(|| device.next().expect("one value per device sum"));
            (path, id, sq.sqrt())
        })
        .collect()
}

/// The first parameter whose gradient norm is NaN or infinite, by path.
pub fn non_finite_gradient(norms: &[(String, ParamId, f64)]) -> Option<(&str, f64)> {
    norms
        .iter()
        .find(|n| !n.2.is_finite())
        .map(|n| (n.0.as_str(), n.2))
}

/// `torch.nn.utils.clip_grad_norm_`'s factor: with the total 2-norm over all gradients above
/// `max_norm` (> 0), every gradient is to be scaled by `max_norm / (total + 1e-6)`. Returns the
/// total norm and the factor (`None`: no clipping).
pub fn clip_factor(norms: &[(String, ParamId, f64)], max_norm: f64) -> (f64, Option<f64>) {
    let total = norms.iter().map(|n| n.2 * n.2).sum::<f64>().sqrt();
    let clip = max_norm > 0.0 && total > max_norm;
    (total, clip.then(|| max_norm / (total + 1e-6)))
}

/// `torch.nn.utils.clip_grad_norm_`: every gradient scaled by [`clip_factor`]'s factor. Returns
/// the total norm.
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    norms: &[(String, ParamId, f64)],
    max_norm: f64,
) -> f64 {
    let (total, factor) = clip_factor(norms, max_norm);
    if let Some(factor) = factor {
        struct Scale<'a> {
            grads: &'a mut GradientsParams,
            factor: f64,
        }
        impl ModuleVisitor for Scale<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.grads.remove::<D>(param.id) {
                    self.grads.register(param.id, g.mul_scalar(self.factor));
                }
            }
        }
        module.visit(&mut Scale { grads, factor });
    }
    total
}

/// NT-ASGD's trigger (Merity et al., as in their code): with the validation losses of the
/// earlier checks in `history`, the new loss `val` is worse than the best of all but the last
/// `nonmono` of them.
pub fn non_monotone(history: &[f64], val: f64, nonmono: usize) -> bool {
    history.len() > nonmono
        && val
            > history[..history.len() - nonmono]
                .iter()
                .copied()
                .fold(f64::INFINITY, f64::min)
}

/// The running average of every parameter (NT-ASGD), by path, flattened.
#[derive(Debug, Clone, Default)]
pub struct Averager {
    pub count: usize,
    pub sums: BTreeMap<String, Tensor<1>>,
}

impl Averager {
    /// `avg += (p - avg) / (count + 1)` for every parameter of `module`.
    pub fn update<M: Module>(&mut self, module: &M) {
        struct Upd<'a>(&'a mut Averager);
        impl ParamVisitor for Upd<'_> {
            fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
                let p: Tensor<1> = param.val().detach().inner().flatten(0, D - 1);
                let n = self.0.count as f64;
                let next = match self.0.sums.remove(path) {
                    None => p,
                    Some(a) => a.clone() + (p - a).div_scalar(n + 1.0),
                };
                self.0.sums.insert(path.to_string(), next);
            }
        }
        visit_params(module, &mut Upd(self));
        self.count += 1;
    }

    /// `module` with every parameter replaced by its average (same ids, same devices).
    pub fn apply<M: Module>(&self, module: M) -> M {
        struct Put<'a>(&'a Averager);
        impl ParamMapper for Put<'_> {
            fn map<const D: usize>(
                &mut self,
                path: &str,
                param: Param<Tensor<D>>,
            ) -> Param<Tensor<D>> {
                let Some(a) = self.0.sums.get(path) else {
                    return param;
                };
                param.map(|old| {
                    let shape = old.shape();
                    let device = old.device();
                    let t: Tensor<D> = a.clone().reshape(shape).to_device(&device);
                    if old.is_require_grad() {
                        t.require_grad()
                    } else {
                        t
                    }
                })
            }
        }
        map_params(module, &mut Put(self))
    }
}
