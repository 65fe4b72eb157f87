//! Layer groups: parameters that train together, with one learning-rate factor, frozen or not
//! (fastai's parameter groups); each model names its own split beside it.

use burn::module::{Module, ParamId};

use super::param_ids_by_path;

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

/// Groups named `names`, each parameter of `model` in the group `group_of(its path)`; rates 1,
/// none frozen.
pub fn groups_by_path<M: Module>(
    model: &M,
    names: Vec<String>,
    group_of: impl Fn(&str) -> usize,
) -> Vec<Group> {
    let mut groups: Vec<Group> = names
        .into_iter()
        .map(|name| Group {
            name,
            ids: Vec::new(),
            lr_factor: 1.0,
            frozen: false,
            momentum: None,
        })
        .collect();
    for (path, id) in param_ids_by_path(model) {
        groups[group_of(&path)].ids.push(id);
    }
    groups
}

/// The LSTM layer a parameter path names after `prefix` (`{prefix}{l}.…`).
pub fn lstm_layer(path: &str, prefix: &str) -> Option<usize> {
    path.strip_prefix(prefix)?.split('.').next()?.parse().ok()
}
