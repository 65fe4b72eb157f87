//! DropConnect on the weights of any module: fastai's `WeightDropout`, for any Burn [`Module`].
//!
//! # Why the raw weight gets its gradient
//!
//! [`WeightDropout`] keeps the trained tensor, the *raw* weight, as the module's parameter (saved
//! as `<path>_raw`, as fastai names it). Each forward pass, [`WeightDropout::dropped`] returns a
//! copy of the wrapped module in which the selected parameter is the tensor `raw * mask`, computed
//! by an ordinary tensor op on the autodiff device. The wrapped module's own forward runs on that
//! copy unchanged; because the dropped weight is an intermediate of the graph, backward passes
//! through the multiplication and the gradient lands on `raw`: `mask * dL/dW`, exactly zero where
//! the mask dropped an entry and scaled by `1/(1-p)` elsewhere. The optimizer steps `raw` alone;
//! dropout never writes it.
//!
//! The seed's version (and an early fastai) built the copy from `raw_w.data`: `.data` is a view
//! outside the graph, so the dropped weight was a fresh leaf, `raw` received no gradient at all,
//! and it was silently never trained. Here the mask is applied to the tracked tensor itself, and
//! the audit and the tests check that the raw weight's gradient is non-zero and zero exactly where
//! the mask is.

use std::sync::Arc;

use burn::module::{Flag, Module, ModuleDisplay, Param};
use burn::tensor::Tensor;

use super::mask::{MaskOwner, Masks};
use crate::error::{AwdError, Result, check_probability};
use crate::params::rename::PathRenamer;
use crate::params::{ParamMapper, map_params};

/// Any Burn module (the derive gives both traits).
pub trait AnyModule: Module + ModuleDisplay {}
impl<M: Module + ModuleDisplay> AnyModule for M {}

/// The trainable state of a [`WeightDropout`]: the wrapped module (holding the raw weights) and
/// the train/eval flag.
#[derive(Module, Debug)]
pub struct WeightDropoutState<M: AnyModule> {
    pub module: M,
    pub training: Param<Flag>,
}

/// A module whose selected parameters are dropped (DropConnect) at every training forward pass.
#[derive(Debug, Clone)]
pub struct WeightDropout<M: AnyModule> {
    pub state: WeightDropoutState<M>,
    p: f64,
    variational: bool,
    selected: Arc<Vec<String>>,
    masks: Masks,
}

/// Shows the selected parameters as `<path>_raw` and the rest under `module.`, as fastai saves them.
pub struct RawNames {
    selected: Arc<Vec<String>>,
}

impl PathRenamer for RawNames {
    fn rename(&self, inner: &[String]) -> Vec<String> {
        if let [first, rest @ ..] = inner
            && first == "module"
            && self.selected.contains(&rest.join("."))
        {
            return vec![format!("{}_raw", rest.join("."))];
        }
        inner.to_vec()
    }
}

crate::renamed_module!(WeightDropout<M: AnyModule>, state, |s: &Self| RawNames {
    selected: s.selected.clone()
});

impl<M: AnyModule> WeightDropout<M> {
    /// Wraps `module`, dropping with probability `p` every parameter whose path matches one of
    /// `patterns` (an exact path such as `weight_hh_l0`, or a glob such as `*.weight_hh_l*`).
    ///
    /// A pattern that matches nothing is an error naming the paths the module has.
    pub fn new(module: M, patterns: &[&str], p: f64, masks: Masks) -> Result<Self> {
        check_probability("weight_p", p)?;
        let available = crate::params::param_paths(&module);
        let mut selected = Vec::new();
        for pattern in patterns {
            let matcher = glob::Pattern::new(pattern).map_err(|e| AwdError::UnknownPath {
                pattern: format!("{pattern} ({e})"),
                available: available.clone(),
            })?;
            let hits: Vec<&String> = available
                .iter()
                .filter(|path| path.as_str() == *pattern || matcher.matches(path))
                .collect();
            if hits.is_empty() {
                return Err(AwdError::UnknownPath {
                    pattern: pattern.to_string(),
                    available,
                });
            }
            selected.extend(hits.into_iter().cloned());
        }
        selected.sort();
        selected.dedup();
        Ok(Self {
            state: WeightDropoutState {
                module,
                training: Param::from_bool(true),
            },
            p,
            variational: false,
            selected: Arc::new(selected),
            masks,
        })
    }

    /// Drops whole rows (mask `[rows, 1, ...]`), as salesforce's `WeightDrop(variational=True)`.
    pub fn with_variational(mut self, variational: bool) -> Self {
        self.variational = variational;
        self
    }

    /// The wrapped module, holding the raw weights.
    pub fn module(&self) -> &M {
        &self.state.module
    }

    /// The wrapped module's paths of the dropped parameters.
    pub fn selected(&self) -> &[String] {
        &self.selected
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    /// Turns dropping on (training) or off (evaluation) without leaving the autodiff device.
    pub fn set_training(mut self, training: bool) -> Self {
        self.state.training = self.state.training.with_value(training);
        self
    }

    /// The module to run for one forward pass.
    ///
    /// Training (flag on, autodiff device, p > 0): each selected parameter is replaced by
    /// `raw * mask`, one fresh mask per call, computed in the graph from the raw parameter.
    /// Otherwise: the raw module unchanged.
    pub fn dropped(&self) -> Result<M> {
        let module = self.state.module.clone();
        if self.p == 0.0 || !self.state.training.is_enabled() {
            return Ok(module);
        }
        let mut mapper = DropMapper {
            owner: self,
            error: None,
        };
        let module = map_params(module, &mut mapper);
        match mapper.error {
            Some(e) => Err(e),
            None => Ok(module),
        }
    }
}

struct DropMapper<'a, M: AnyModule> {
    owner: &'a WeightDropout<M>,
    error: Option<AwdError>,
}

impl<M: AnyModule> ParamMapper for DropMapper<'_, M> {
    fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() || !self.owner.selected.iter().any(|s| s == path) {
            return param;
        }
        let raw = param.val();
        if !raw.is_autodiff() {
            // Evaluation on a plain device: the raw weight is the weight.
            return param;
        }
        let mut shape = raw.dims();
        if self.owner.variational {
            shape[1..].iter_mut().for_each(|d| *d = 1);
        }
        let owner = MaskOwner::Weight(param.id);
        match self
            .owner
            .masks
            .draw_for(owner, shape, self.owner.p, &raw.device())
        {
            Ok(mask) => param.map(|raw| raw * mask),
            Err(e) => {
                self.error = Some(e);
                param
            }
        }
    }
}
