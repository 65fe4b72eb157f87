//! Burn's Adam in one pass per parameter (CPU backend).
//!
//! Burn's `Adam` forms each update from about a dozen whole-tensor operations (moments, square,
//! bias corrections, square root, division, learning rate), each a pass over the parameter:
//! ~10 ms of a P1 step and ~60 ms of a P2 step. [`FusedAdam`] computes the same formulas in the
//! same order, in one pass over parameter, gradient and moments, updating them in place when
//! nothing else holds them. It implements Burn's [`Optimizer`] with Burn's own [`AdamState`], so
//! it plugs into `ModuleOptimizer` and its records are Burn's; on other backends it runs
//! Burn's `Adam`.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, LearningRate, ModuleOptimizer, Optimizer};
use burn::optim::{AdamState, AdaptiveMomentumState};
use burn::tensor::{Device, Tensor};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::math::vectorized;

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

/// How weight decay enters the update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    None,
    /// L2: `wd·p` added to the gradient, as Burn's and PyTorch's `Adam` do.
    L2(f32),
    /// Decoupled (AdamW, fastai's `true_wd`): `p ← p·(1 − lr·wd)` before the Adam update, as
    /// Burn's and PyTorch's `AdamW` do.
    Decoupled(f32),
}

/// A setting shared with the optimizer that owns it, so a loop can move it between steps.
#[derive(Debug, Clone)]
pub struct SharedF32(Arc<AtomicU32>);

impl SharedF32 {
    fn new(v: f32) -> Self {
        Self(Arc::new(AtomicU32::new(v.to_bits())))
    }
    pub fn set(&self, v: f32) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// What a loop moves in a [`FusedAdam`] between steps.
#[derive(Debug, Clone)]
pub struct AdamControls {
    /// β₁, the momentum (fastai's one-cycle cycles it; parameter groups may each have their own).
    pub beta_1: SharedF32,
    /// A factor on every gradient, 1 unless the step clips: the global-norm clipping folded into
    /// the update's single pass instead of a pass of its own.
    pub grad_scale: SharedF32,
}

/// Adam, with L2 or decoupled weight decay.
#[derive(Clone)]
pub struct FusedAdam {
    controls: AdamControls,
    beta_2: f32,
    epsilon: f32,
    decay: Decay,
}

impl FusedAdam {
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, decay: Decay) -> Self {
        Self {
            controls: AdamControls {
                beta_1: SharedF32::new(beta_1),
                grad_scale: SharedF32::new(1.0),
            },
            beta_2,
            epsilon,
            decay,
        }
    }

    /// The handles that move this optimizer's β₁ and gradient factor.
    pub fn controls(&self) -> AdamControls {
        self.controls.clone()
    }

    /// As a module optimizer.
    pub fn init(self) -> ModuleOptimizer {
        ModuleOptimizer::from(self)
    }

    /// Burn's Adam with the current settings, for tensors that are not on the flex backend.
    fn reference(&self) -> Adam {
        let l2 = match self.decay {
            Decay::L2(wd) => Some(WeightDecayConfig::new(wd)),
            _ => None,
        };
        AdamConfig::new()
            .with_beta_1(self.controls.beta_1.get())
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(l2)
            .build()
    }
}

/// A flex tensor's primitive covering its whole buffer (so `storage_mut` is exactly its values;
/// a view of part of a buffer is copied out), or `None` on another backend.
fn primitive<const D: usize>(t: Tensor<D>) -> Option<FlexTensor> {
    let p: FlexTensor = t.try_into_primitive::<Flex>().ok()?;
    // `to_contiguous` returns the same buffer when it already is the whole tensor; `p` is
    // dropped here, so the result's buffer is not shared on that account.
    Some(p.to_contiguous())
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let flex = |t: &Tensor<D>| t.clone().try_into_primitive::<Flex>().is_ok();
        let state_on_flex = state
            .as_ref()
            .is_none_or(|s| flex(&s.momentum.moment_1) && flex(&s.momentum.moment_2));
        if !(flex(&tensor) && flex(&grad) && state_on_flex)
            || state
                .as_ref()
                .is_some_and(|s| s.momentum.max_moment_2.is_some())
        {
            let scale = self.controls.grad_scale.get();
            let grad = if scale == 1.0 {
                grad
            } else {
                grad.mul_scalar(scale)
            };
            let (stepped, state) = self.reference().step(lr, tensor.clone(), grad, state);
            return match self.decay {
                // AdamW's update is Adam's minus lr·wd·p.
                Decay::Decoupled(wd) => (stepped - tensor.mul_scalar(lr * wd as f64), state),
                _ => (stepped, state),
            };
        }
        let shape = tensor.shape();
        let (time, moments) = match state {
            Some(s) => (
                s.momentum.time + 1,
                Some((s.momentum.moment_1, s.momentum.moment_2)),
            ),
            None => (1, None),
        };
        let mut p = primitive(tensor).expect("checked above");
        let g = primitive(grad).expect("checked above");
        let (mut m, mut v) = match moments {
            Some((m, v)) => (
                primitive(m).expect("checked above"),
                primitive(v).expect("checked above"),
            ),
            None => {
                let zeros = || FlexTensor::zeros(shape.clone(), p.dtype());
                (zeros(), zeros())
            }
        };
        // Burn's formulas (adam.rs, decay.rs), operation for operation.
        let (b1, b2, scale) = (
            self.controls.beta_1.get(),
            self.beta_2,
            self.controls.grad_scale.get(),
        );
        let (l2, keep) = match self.decay {
            Decay::None => (None, 1.0),
            Decay::L2(wd) => (Some(wd), 1.0),
            Decay::Decoupled(wd) => (None, 1.0 - lr as f32 * wd),
        };
        let t = time as i32;
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let c = Coefs {
            b1,
            f1: 1.0 - b1,
            b2,
            f2: 1.0 - b2,
            scale,
            l2: l2.unwrap_or(0.0),
            keep,
            combined: bc2_sqrt / (1.0 - b1.powi(t)),
            eps: self.epsilon * bc2_sqrt,
            lr: lr as f32,
        };
        let gs = g.as_slice::<f32>().expect("contiguous f32");
        p.storage_mut::<f32>()
            .par_chunks_mut(CHUNK)
            .zip(m.storage_mut::<f32>().par_chunks_mut(CHUNK))
            .zip(v.storage_mut::<f32>().par_chunks_mut(CHUNK))
            .zip(gs.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| update(p, m, v, g, &c, l2.is_some()));
        let tensor = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
        let momentum = AdaptiveMomentumState::new(time, tensor(m), tensor(v));
        (tensor(p), Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

/// The constants of one step's update.
struct Coefs {
    b1: f32,
    f1: f32,
    b2: f32,
    f2: f32,
    /// The gradient factor (clipping).
    scale: f32,
    /// L2 weight decay (used when the update is told so).
    l2: f32,
    /// `1 − lr·wd` for decoupled decay, else 1.
    keep: f32,
    /// `√(1 − β₂ᵗ) / (1 − β₁ᵗ)`
    combined: f32,
    /// `ε·√(1 − β₂ᵗ)`
    eps: f32,
    lr: f32,
}

/// One chunk's update, with L2 weight decay or without.
fn update(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &Coefs, l2: bool) {
    match l2 {
        true => update_l2(p, m, v, g, c),
        false => update_plain(p, m, v, g, c),
    }
}

vectorized! {
    fn update_l2(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &Coefs) =
        update_lanes::<true>
}

vectorized! {
    fn update_plain(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &Coefs) =
        update_lanes::<false>
}

/// Burn's formulas (adam.rs, decay.rs), operation for operation, element by element (zipped,
/// so the compiler vectorizes the loop).
#[inline(always)]
fn update_lanes<const L2: bool>(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: &Coefs) {
    for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
        let g = if L2 {
            *p * c.l2 + g * c.scale
        } else {
            g * c.scale
        };
        *m = *m * c.b1 + g * c.f1;
        *v = *v * c.b2 + (g * g) * c.f2;
        let update = (*m * c.combined) / (v.sqrt() + c.eps);
        *p = *p * c.keep - update * c.lr;
    }
}
