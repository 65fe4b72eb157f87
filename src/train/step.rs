//! The training step, the one every loop runs (`awd train`, `awd bench`, `awd audit`, and any
//! later loop): forward and loss, backward, global-norm clipping, the optimizer step over
//! parameter groups, and NT-ASGD's averaging.

use std::collections::HashSet;

use burn::module::{Module, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use std::rc::Rc;

use burn::tensor::{Int, Tensor, TensorData};

use super::optim::{
    Averager, build, clip_factor, clip_global_norm, grad_norms, non_finite_gradient,
};
use super::optim_config::{OptimConfig, OptimizerKind};
use crate::dist::Dist;
use crate::error::{AwdError, Result};
use crate::kernels::adam::AdamControls;
use crate::model::LanguageModel;
use crate::params::groups::Group;
use crate::params::{HostTensor, ParamMapper, ParamVisitor, map_params, visit_params};

/// What one step measured.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    /// The loss the step reports (the language model's: cross-entropy without AR/TAR).
    pub loss: f64,
    /// The 2-norm of all gradients together, before clipping.
    pub grad_norm: f64,
}

/// Optimizer, clipping and groups: the state a loop keeps between steps.
#[derive(Clone)]
pub struct TrainStep {
    pub optim: ModuleOptimizer,
    /// The optimizer's β₁ and gradient factor (Adam and AdamW; `None` for SGD).
    controls: Option<AdamControls>,
    /// Clip the gradient to this global 2-norm (0: no clipping).
    pub clip: f64,
    /// AR and TAR coefficients of the language model's loss.
    pub alpha: f64,
    pub beta: f64,
    /// Empty: every parameter in one group at the step's learning rate. Parameters in no group
    /// train at the step's rate and the configured momentum.
    pub groups: Vec<Group>,
    /// NT-ASGD's running average, once it averages.
    pub averager: Option<Averager>,
    /// The ranks of a data-parallel job: each computes the gradient of its rows of the global
    /// batch, and one all-reduce averages them (with the losses) before clipping and the update.
    pub dist: Rc<Dist>,
}

impl TrainStep {
    /// The step of `cfg`: its optimizer, clipping and AR/TAR.
    pub fn new(cfg: &OptimConfig) -> Self {
        let (optim, controls) = build(cfg, cfg.optimizer);
        Self {
            optim,
            controls,
            clip: cfg.clip,
            alpha: cfg.alpha,
            beta: cfg.beta,
            groups: Vec::new(),
            averager: None,
            dist: Rc::new(Dist::single()),
        }
    }

    /// NT-ASGD's switch: plain SGD from here on, and the parameters averaged.
    pub fn start_averaging(&mut self, cfg: &OptimConfig) {
        let plain = OptimConfig {
            beta1: 0.0,
            ..cfg.clone()
        };
        (self.optim, self.controls) = build(&plain, OptimizerKind::Sgd);
        self.averager = Some(Averager::default());
    }

    /// Sets Adam's β₁ for every group without one of its own (fastai's cycled momentum); SGD has
    /// none and ignores it.
    pub fn set_momentum(&mut self, beta1: f64) {
        if let Some(k) = &self.controls {
            k.beta_1.set(beta1 as f32);
        }
    }

    /// Sets the groups and marks the frozen ones' parameters as not tracked by autodiff.
    pub fn set_groups<M: Module>(&mut self, model: M, groups: Vec<Group>) -> Result<M> {
        if self.controls.is_none() && groups.iter().any(|g| g.momentum.is_some()) {
            return Err(AwdError::Config(
                "a group's momentum is Adam's beta1: SGD has none to set".into(),
            ));
        }
        let frozen: HashSet<ParamId> = groups
            .iter()
            .filter(|g| g.frozen)
            .flat_map(|g| g.ids.iter().copied())
            .collect();
        self.groups = groups;
        struct Track(HashSet<ParamId>);
        impl ParamMapper for Track {
            fn map<const D: usize>(&mut self, _: &str, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let track = !self.0.contains(&p.id);
                p.set_require_grad(track)
            }
        }
        Ok(map_params(model, &mut Track(frozen)))
    }

    /// One step of the language model on a window: `x`, `y` `[B, T]`, loss CE + α·AR + β·TAR.
    pub fn lm(
        &mut self,
        model: LanguageModel,
        x: Tensor<2, Int>,
        y: Tensor<2, Int>,
        lr: f64,
    ) -> Result<(LanguageModel, StepStats)> {
        let (alpha, beta) = (self.alpha, self.beta);
        // A loss far above a uniform guess's (ln V) means the run has diverged.
        let uniform = (model.config().vocab_size.max(2) as f64).ln();
        let loss = |m: &mut LanguageModel| {
            let (_, loss) = m.loss(x, y, alpha, beta)?;
            Ok((loss.total, loss.cross_entropy))
        };
        self.step(
            model,
            lr,
            Some(("a uniform guess's", uniform, 3.0)),
            loss,
            |_, _| (),
        )
    }

    /// One step of any module: `loss` runs the forward and returns the loss to differentiate
    /// and the one to report (both `[1]`); `inspect` sees the gradients before clipping.
    /// Non-finite losses and gradients are errors naming what overflowed.
    pub fn run<M: Module>(
        &mut self,
        model: M,
        lr: f64,
        loss: impl FnOnce(&mut M) -> Result<(Tensor<1>, Tensor<1>)>,
        inspect: impl FnOnce(&M, &GradientsParams),
    ) -> Result<(M, StepStats)> {
        self.step(model, lr, None, loss, inspect)
    }

    /// [`run`](Self::run), where `limit` = (what, reference, factor) also makes a reported loss
    /// above `factor · reference` a divergence, found before any backward work.
    fn step<M: Module>(
        &mut self,
        mut model: M,
        lr: f64,
        limit: Option<(&str, f64, f64)>,
        loss: impl FnOnce(&mut M) -> Result<(Tensor<1>, Tensor<1>)>,
        inspect: impl FnOnce(&M, &GradientsParams),
    ) -> Result<(M, StepStats)> {
        let (total, reported) = loss(&mut model)?;
        let mut values: Vec<f64> = Tensor::cat(vec![total.clone().detach(), reported], 0)
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .expect("f64 values");
        let check = |values: &[f64]| {
            if !values.iter().all(|v| v.is_finite()) {
                return Err(AwdError::Diverged(format!("the loss is {}", values[0])));
            }
            if let Some((what, reference, factor)) = limit
                && values[1] > factor * reference
            {
                return Err(AwdError::Diverged(format!(
                    "the loss {:.3} is far above {what} {reference:.3}",
                    values[1]
                )));
            }
            Ok(())
        };
        let ranks = self.dist.size();
        // One process checks before any backward work; ranks decide together, on the averaged
        // loss, after the all-reduce (a rank that stopped alone would leave the others waiting).
        if ranks == 1 {
            check(&values)?;
        }
        let mut grads = GradientsParams::from_grads(total.backward(), &model);
        if ranks > 1 {
            average_over_ranks(&model, &mut grads, &mut values, &self.dist);
            check(&values)?;
        }
        inspect(&model, &grads);
        let norms = grad_norms(&model, &grads);
        if let Some((name, n)) = non_finite_gradient(&norms) {
            return Err(AwdError::Diverged(format!(
                "the gradient of `{name}` has norm {n}"
            )));
        }
        // Clipping: folded into Adam's pass where the optimizer is Adam, a pass of its own else.
        let (grad_norm, factor) = clip_factor(&norms, self.clip);
        match (&self.controls, factor) {
            (Some(k), Some(f)) => k.grad_scale.set(f as f32),
            (None, Some(_)) => {
                clip_global_norm(&model, &mut grads, &norms, self.clip);
            }
            (_, None) => {}
        }
        if self.groups.is_empty() {
            model = self.optim.step(lr, model, grads);
        } else {
            // One optimizer call per group, with its rate and momentum, on its gradients.
            let (parts, rest) = split_grads(&model, grads, &self.groups);
            let base = self.controls.as_ref().map(|k| k.beta_1.get());
            for (g, grads) in self.groups.iter().zip(parts) {
                if let (Some(k), Some(beta_1)) = (&self.controls, g.momentum) {
                    k.beta_1.set(beta_1 as f32);
                }
                model = self.optim.step(lr * g.lr_factor, model, grads);
                if let (Some(k), Some(b)) = (&self.controls, base) {
                    k.beta_1.set(b);
                }
            }
            model = self.optim.step(lr, model, rest);
        }
        if let Some(k) = &self.controls {
            k.grad_scale.set(1.0);
        }
        if let Some(a) = self.averager.as_mut() {
            a.update(&model);
        }
        Ok((
            model,
            StepStats {
                loss: values[1],
                grad_norm,
            },
        ))
    }
}

/// Every rank's gradients and `values` (the losses) averaged, in place: one all-reduce over one
/// flat buffer, parameters in visit order (the same on every rank), the losses at its end.
fn average_over_ranks<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    values: &mut [f64],
    dist: &Dist,
) {
    struct Gather<'g> {
        grads: &'g GradientsParams,
        flat: Vec<f32>,
    }
    impl ParamVisitor for Gather<'_> {
        fn visit<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.flat.extend(HostTensor::from_tensor(g).values);
            }
        }
    }
    struct Scatter<'g> {
        grads: &'g mut GradientsParams,
        flat: &'g [f32],
        at: usize,
    }
    impl ParamVisitor for Scatter<'_> {
        fn visit<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let (shape, device) = (g.shape(), g.device());
                let n = shape.num_elements();
                let data = TensorData::new(self.flat[self.at..self.at + n].to_vec(), shape);
                self.grads
                    .register(param.id, Tensor::<D>::from_data(data, &device));
                self.at += n;
            }
        }
    }
    let mut gather = Gather {
        grads,
        flat: Vec::new(),
    };
    visit_params(model, &mut gather);
    let mut flat = gather.flat;
    flat.extend(values.iter().map(|&v| v as f32));
    let started = std::time::Instant::now();
    dist.sum_f32(&mut flat);
    dist.record(flat.len() * 4, started.elapsed().as_secs_f64());
    let scale = 1.0 / dist.size() as f32;
    flat.iter_mut().for_each(|v| *v *= scale);
    let n = flat.len() - values.len();
    for (v, &s) in values.iter_mut().zip(&flat[n..]) {
        *v = s as f64;
    }
    visit_params(
        model,
        &mut Scatter {
            grads,
            flat: &flat[..n],
            at: 0,
        },
    );
}

/// `grads` split by group (in the groups' order), and the gradients of parameters in no group.
fn split_grads<M: Module>(
    model: &M,
    grads: GradientsParams,
    groups: &[Group],
) -> (Vec<GradientsParams>, GradientsParams) {
    struct Split {
        grads: GradientsParams,
        of: std::collections::HashMap<ParamId, usize>,
        parts: Vec<GradientsParams>,
    }
    impl ParamVisitor for Split {
        fn visit<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
            if let Some(&k) = self.of.get(&param.id)
                && let Some(g) = self.grads.remove::<D>(param.id)
            {
                self.parts[k].register(param.id, g);
            }
        }
    }
    let of = groups
        .iter()
        .enumerate()
        .flat_map(|(k, g)| g.ids.iter().map(move |&id| (id, k)))
        .collect();
    let mut split = Split {
        grads,
        of,
        parts: groups.iter().map(|_| GradientsParams::new()).collect(),
    };
    visit_params(model, &mut split);
    (split.parts, split.grads)
}
