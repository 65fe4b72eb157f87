//! Stages: a run is one `fit_one_cycle` or several in a row (fastai's `freeze` / `freeze_to` /
//! `unfreeze` recipes), each with its epochs, its peak rate, discriminative rates across the
//! layer groups, and how many groups it trains.

use serde::{Deserialize, Serialize};

use crate::error::{AwdError, Result};
use crate::params::groups::Group;

/// One `fit_one_cycle` of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub epochs: usize,
    /// The peak learning rate (of the last layer group).
    pub lr: f64,
    /// The first group's rate, the groups between geometric (fastai's `slice(lr_low, lr)`); 0:
    /// every group at `lr`.
    #[serde(default)]
    pub lr_low: f64,
    /// Layer groups trained, counted from the last (fastai's `freeze_to(-n)`); 0: all.
    #[serde(default)]
    pub groups: usize,
}

impl Stage {
    /// fastai's ULMFiT classifier recipe: `fit_one_cycle(1, 2e-2)` frozen; `freeze_to(-2)`,
    /// `fit_one_cycle(1, slice(1e-2/2.6**4, 1e-2))`; `freeze_to(-3)`, the same at 5e-3;
    /// unfreeze, `fit_one_cycle(2, slice(1e-3/2.6**4, 1e-3))`.
    pub fn ulmfit() -> Vec<Stage> {
        let slice = |epochs, lr: f64, groups| Stage {
            epochs,
            lr,
            lr_low: lr / 2.6f64.powi(4),
            groups,
        };
        vec![
            Stage {
                epochs: 1,
                lr: 2e-2,
                lr_low: 0.0,
                groups: 1,
            },
            slice(1, 1e-2, 2),
            slice(1, 5e-3, 3),
            slice(2, 1e-3, 0),
        ]
    }

    /// `EPOCHS:LR[:GROUPS]` stages, comma-separated (`1:2e-2:1,1:1e-2:2,1:5e-3:3,2:1e-3`); a
    /// stage training more than one group gets fastai's `slice(lr/2.6**4, lr)`.
    pub fn parse_list(spec: &str) -> Result<Vec<Stage>> {
        let bad = |s: &str, why: &str| {
            AwdError::Config(format!(
                "--stages: `{s}` {why} (expected EPOCHS:LR[:GROUPS], e.g. 1:2e-2:1,2:1e-3)"
            ))
        };
        spec.split(',')
            .map(|s| {
                let parts: Vec<&str> = s.trim().split(':').collect();
                if !(2..=3).contains(&parts.len()) {
                    return Err(bad(s, "has the wrong number of fields"));
                }
                let epochs = parts[0].parse().map_err(|_| bad(s, "has no epoch count"))?;
                let lr: f64 = parts[1]
                    .parse()
                    .map_err(|_| bad(s, "has no learning rate"))?;
                let groups = match parts.get(2) {
                    None => 0,
                    Some(g) => g.parse().map_err(|_| bad(s, "has no group count"))?,
                };
                let lr_low = if groups == 1 {
                    0.0
                } else {
                    lr / 2.6f64.powi(4)
                };
                Ok(Stage {
                    epochs,
                    lr,
                    lr_low,
                    groups,
                })
            })
            .collect()
    }

    /// Epochs positive, rates positive and finite, `lr_low` at most `lr`.
    pub fn validate(stages: &[Stage]) -> Result<()> {
        if stages.is_empty() {
            return Err(AwdError::Config("a run needs at least one stage".into()));
        }
        for s in stages {
            if s.epochs == 0
                || !(s.lr.is_finite() && s.lr > 0.0)
                || s.lr_low.is_nan()
                || s.lr_low < 0.0
            {
                return Err(AwdError::Config(format!(
                    "stage {s:?}: epochs and lr must be positive, lr_low >= 0"
                )));
            }
        }
        Ok(())
    }

    /// Sets `groups` (first to last) for this stage: all but the last `self.groups` frozen, each
    /// group's rate factor. Returns what the stage trains, for the user.
    pub fn configure(&self, groups: &mut [Group]) -> String {
        let n = groups.len();
        let trained = match self.groups {
            0 => n,
            k => k.min(n),
        };
        for (i, g) in groups.iter_mut().enumerate() {
            g.frozen = i + trained < n;
            g.lr_factor = discriminative_factor(self.lr, self.lr_low, i, n);
        }
        let what = if trained == n {
            "all layer groups".to_string()
        } else {
            let names: Vec<&str> = groups[n - trained..]
                .iter()
                .map(|g| g.name.as_str())
                .collect();
            format!(
                "the last {trained} of {n} layer groups ({})",
                names.join(", ")
            )
        };
        let rates = if self.lr_low > 0.0 {
            format!("rates {:.1e} to {:.1e}", self.lr_low, self.lr)
        } else {
            format!("rate {:.1e}", self.lr)
        };
        format!("{} epoch(s), training {what}, {rates}", self.epochs)
    }

    /// Whether a run of `stages` trains by layer groups (some frozen, or discriminative rates);
    /// otherwise every parameter steps at the scheduled rate.
    pub fn uses_groups(stages: &[Stage]) -> bool {
        stages.len() > 1 || stages.iter().any(|s| s.groups != 0 || s.lr_low > 0.0)
    }
}

/// The stage of `epoch`, its first step and its length in steps (`per_epoch` steps an epoch).
/// A single stage spans the run's `total` steps (which a step limit may shorten).
pub fn stage_at(
    stages: &[Stage],
    epoch: usize,
    per_epoch: usize,
    total: usize,
) -> (usize, usize, usize) {
    if stages.len() == 1 {
        return (0, 0, total);
    }
    let mut first_epoch = 0;
    for (k, s) in stages.iter().enumerate() {
        if epoch < first_epoch + s.epochs || k + 1 == stages.len() {
            return (k, first_epoch * per_epoch, s.epochs * per_epoch);
        }
        first_epoch += s.epochs;
    }
    unreachable!("stages are not empty")
}

/// fastai's `slice(lr_low, lr)` over `n` groups: group `i`'s rate over `lr`, geometric from
/// `lr_low` to `lr` (`even_mults`); 1 for every group without `lr_low`.
pub fn discriminative_factor(lr: f64, lr_low: f64, i: usize, n: usize) -> f64 {
    if lr_low <= 0.0 || n < 2 {
        return 1.0;
    }
    let step = (lr / lr_low).powf(1.0 / (n - 1) as f64);
    lr_low * step.powi(i as i32) / lr
}
