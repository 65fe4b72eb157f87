//! The training step, the one every loop runs (`awd train`, `awd bench`, `awd audit`, and any
//! later loop): forward and loss, backward, global-norm clipping, the optimizer step over
//! parameter groups, and NT-ASGD's averaging.

use std::collections::HashSet;

use burn::module::{Module, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Int, Tensor};

use super::config::{OptimizerKind, TrainConfig};
use super::optim::{
    Averager, build, clip_factor, clip_global_norm, grad_norms, non_finite_gradient,
};
use crate::error::{AwdError, Result};
use crate::kernels::adam::Knobs;
use crate::model::LanguageModel;
use crate::params::{ParamMapper, ParamVisitor, map_params, param_ids_by_path, visit_params};

/// Parameters that train together: one learning-rate factor, frozen or not.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub ids: Vec<ParamId>,
    /// This group's learning rate is the step's times `lr_factor` (fastai's discriminative rates).
    pub lr_factor: f64,
    /// A frozen group's parameters get no gradient (autodiff does not track them) and no update.
    pub frozen: bool,
    /// Adam's β₁ for this group (`None`: the configured one).
    pub momentum: Option<f64>,
}

/// fastai's `awd_lstm_lm_split`: one group per LSTM layer (`0.rnns.{l}.*`), then the embedding
/// with the decoder (`0.encoder.*`, `1.decoder.*`), in that order; rates 1, none frozen.
pub fn lm_groups(model: &LanguageModel) -> Vec<Group> {
    let layers = model.encoder().rnns.len();
    let mut groups: Vec<Group> = (0..=layers)
        .map(|l| Group {
            name: if l < layers {
                format!("LSTM layer {l}")
            } else {
                "embedding + decoder".into()
            },
            ids: Vec::new(),
            lr_factor: 1.0,
            frozen: false,
            momentum: None,
        })
        .collect();
    for (path, id) in param_ids_by_path(model) {
        let layer = path
            .strip_prefix("0.rnns.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|l| l.parse::<usize>().ok());
        groups[layer.unwrap_or(layers)].ids.push(id);
    }
    groups
}

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
    knobs: Option<Knobs>,
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
}

impl TrainStep {
    /// The step of `cfg`: its optimizer, clipping and AR/TAR.
    pub fn new(cfg: &TrainConfig) -> Self {
        let (optim, knobs) = build(cfg, cfg.optimizer);
        Self {
            optim,
            knobs,
            clip: cfg.clip,
            alpha: cfg.alpha,
            beta: cfg.beta,
            groups: Vec::new(),
            averager: None,
        }
    }

    /// NT-ASGD's switch: plain SGD from here on, and the parameters averaged.
    pub fn start_averaging(&mut self, cfg: &TrainConfig) {
        let plain = TrainConfig {
            beta1: 0.0,
            ..cfg.clone()
        };
        (self.optim, self.knobs) = build(&plain, OptimizerKind::Sgd);
        self.averager = Some(Averager::default());
    }

    /// Sets Adam's β₁ for every group without one of its own (fastai's cycled momentum); SGD has
    /// none and ignores it.
    pub fn set_momentum(&mut self, beta1: f64) {
        if let Some(k) = &self.knobs {
            k.beta_1.set(beta1 as f32);
        }
    }

    /// Sets the groups and marks the frozen ones' parameters as not tracked by autodiff.
    pub fn set_groups<M: Module>(&mut self, model: M, groups: Vec<Group>) -> Result<M> {
        if self.knobs.is_none() && groups.iter().any(|g| g.momentum.is_some()) {
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
        let values: Vec<f64> = Tensor::cat(vec![total.clone().detach(), reported], 0)
            .into_data()
            .convert::<f64>()
            .try_to_vec::<f64>()
            .expect("f64 values");
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
        let mut grads = GradientsParams::from_grads(total.backward(), &model);
        inspect(&model, &grads);
        let norms = grad_norms(&model, &grads);
        if let Some((name, n)) = non_finite_gradient(&norms) {
            return Err(AwdError::Diverged(format!(
                "the gradient of `{name}` has norm {n}"
            )));
        }
        // Clipping: folded into Adam's pass where the optimizer is Adam, a pass of its own else.
        let (grad_norm, factor) = clip_factor(&norms, self.clip);
        match (&self.knobs, factor) {
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
            let base = self.knobs.as_ref().map(|k| k.beta_1.get());
            for (g, grads) in self.groups.iter().zip(parts) {
                if let (Some(k), Some(beta_1)) = (&self.knobs, g.momentum) {
                    k.beta_1.set(beta_1 as f32);
                }
                model = self.optim.step(lr * g.lr_factor, model, grads);
                if let (Some(k), Some(b)) = (&self.knobs, base) {
                    k.beta_1.set(b);
                }
            }
            model = self.optim.step(lr, model, rest);
        }
        if let Some(k) = &self.knobs {
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
