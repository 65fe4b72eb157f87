//! The optimizer's settings, one list for every job (the `[optim]` table of a `--config` file,
//! and the same fields as flags): the optimizer and its betas, weight decay, clipping, the
//! schedule of the learning rate and β₁, NT-ASGD, and the AR/TAR regularizers of the loss.

use serde::{Deserialize, Serialize};

use crate::error::{AwdError, Result};

/// Which optimizer steps the raw weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

/// How the learning rate moves over a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Constant,
    /// fastai's `fit_one_cycle`: cosine warm-up from lr/25 over 25% of the steps, then cosine
    /// annealing to lr/1e5.
    OneCycle,
}

crate::hyper_params! {
    /// How the raw weights are stepped (the `[optim]` table).
    OptimConfig / OptimFlags {
    fixed {}
    nested {}
    fields {
    /// adam, adamw or sgd.
    optimizer: OptimizerKind = OptimizerKind::Adam,
    /// Adam's beta 1 (SGD: momentum, 0 for none).
    beta1: f64 = 0.9,
    /// With the one-cycle schedule, Adam's beta1 falls from --beta1 to this while the learning
    /// rate rises and comes back as it falls (fastai's `moms`); 0: --beta1 throughout.
    beta1_low: f64 = 0.0,
    /// Adam's beta 2.
    beta2: f64 = 0.99,
    /// Adam's epsilon.
    eps: f64 = 1e-5,
    /// Weight decay (decoupled for adamw, L2 otherwise).
    weight_decay: f64 = 0.0,
    /// Clip the gradient to this total 2-norm over all parameters (0: no clipping).
    clip: f64 = 0.0,
    /// constant or one-cycle.
    schedule: Schedule = Schedule::Constant,
    /// NT-ASGD: switch to averaged SGD once validation has not improved for `nonmono` checks.
    asgd: bool = false,
    /// Checks without improvement before NT-ASGD switches.
    nonmono: usize = 5,
    /// AR coefficient (activation regularization of the last LSTM layer's dropped output).
    alpha: f64 = 2.0,
    /// TAR coefficient (temporal activation regularization).
    beta: f64 = 1.0,
    }
    }
}

impl OptimConfig {
    /// fastai's `Learner` defaults for text: AdamW (eps 1e-5, decoupled weight decay 0.01) and
    /// `fit_one_cycle` with β₁ cycled 0.8 → 0.7 → 0.8.
    pub fn fastai() -> Self {
        Self {
            optimizer: OptimizerKind::Adamw,
            beta1: 0.8,
            beta1_low: 0.7,
            weight_decay: 0.01,
            schedule: Schedule::OneCycle,
            ..Self::default()
        }
    }

    /// β₁ at position `pos` (0 to 1) of a stage: cycled under the one-cycle schedule when
    /// `beta1_low` is set, else `None` (the optimizer's own).
    pub fn momentum_at(&self, pos: f64) -> Option<f64> {
        (self.beta1_low > 0.0 && self.schedule == Schedule::OneCycle)
            .then(|| combined_cos(0.25, self.beta1, self.beta1_low, self.beta1, pos))
    }

    /// Ranges every value must lie in; the error names the flag.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, v: f64, range: &str| {
            Err(AwdError::Config(format!(
                "--{name} = {v} is out of range ({range})"
            )))
        };
        for (name, v) in [
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("beta1-low", self.beta1_low),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(name, v, "[0, 1)");
            }
        }
        for (name, v) in [
            ("eps", self.eps),
            ("weight-decay", self.weight_decay),
            ("clip", self.clip),
            ("alpha", self.alpha),
            ("beta", self.beta),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, v, ">= 0");
            }
        }
        if self.asgd && self.optimizer != OptimizerKind::Sgd {
            return Err(AwdError::Config(
                "--asgd (NT-ASGD) averages SGD iterates: use it with --optimizer sgd".into(),
            ));
        }
        Ok(())
    }
}

/// The learning rate at `step` of `total` steps.
pub fn scheduled_lr(schedule: Schedule, lr: f64, step: usize, total: usize) -> f64 {
    match schedule {
        Schedule::Constant => lr,
        Schedule::OneCycle => {
            let pos = step as f64 / total.max(1) as f64;
            combined_cos(0.25, lr / 25.0, lr, lr / 1e5, pos)
        }
    }
}

/// fastai's `combined_cos(pct, start, middle, end)` at `pos` in [0, 1]: a cosine from `start`
/// to `middle` over the first `pct` of the run, then from `middle` to `end` (what
/// `fit_one_cycle` schedules the learning rate and the momentum with).
pub fn combined_cos(pct: f64, start: f64, middle: f64, end: f64, pos: f64) -> f64 {
    let cos = |a: f64, b: f64, p: f64| {
        a + (1.0 + (std::f64::consts::PI * (1.0 - p)).cos()) * (b - a) / 2.0
    };
    if pos >= 1.0 {
        end
    } else if pos < pct {
        cos(start, middle, pos / pct)
    } else {
        cos(middle, end, (pos - pct) / (1.0 - pct))
    }
}
