//! The gradient audit: for every parameter of a module, did the backward pass reach it, how
//! strongly, through which regularizer's mask, and is anything wrong with that.
//!
//! The audit reads three things, all real: the gradients Burn's autodiff computed, the masks the
//! regularizers drew during the forward pass (recorded by [`Masks::start_recording`]), and the
//! parameters before and after an optimizer step. It flags:
//! - a parameter no gradient reached (detached from the graph, like the seed's `.data` copy);
//! - a parameter whose gradient is zero everywhere;
//! - a weight-dropped parameter with gradient where its mask dropped the entry (the mask was not
//!   applied to the weight the forward used);
//! - a parameter counted twice (the same parameter registered in two places);
//! - a parameter with a gradient that the optimizer step did not change.
//!
//! [`Masks::start_recording`]: crate::dropout::Masks::start_recording

pub mod explain;
pub mod step;

use std::collections::HashMap;
use std::fmt;

use burn::module::{Module, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::Serialize;

use crate::dropout::{MaskOwner, MaskRecord};
use crate::params::{HostTensor, ParamVisitor, visit_params};

/// A mask a parameter passed through.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Regularizer {
    WeightDropout { p: f64 },
    EmbeddingDropout { p: f64 },
}

impl fmt::Display for Regularizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Regularizer::WeightDropout { p } => write!(f, "weight dropout p={p}"),
            Regularizer::EmbeddingDropout { p } => write!(f, "embedding dropout p={p}"),
        }
    }
}

/// Something wrong with a parameter's gradient.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// No gradient reached the parameter: it is not in the graph of the loss.
    NoGradient,
    /// A gradient reached it, zero everywhere.
    ZeroGradient,
    /// The gradient is non-zero at `leaked` entries the weight mask dropped.
    MaskMismatch { leaked: usize },
    /// The same parameter appears `times` times in the module.
    CountedTwice { times: usize },
    /// The optimizer step left the parameter unchanged despite its gradient.
    NotUpdated,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoGradient => f.write_str("no gradient reached it (detached from the loss)"),
            Problem::ZeroGradient => f.write_str("its gradient is zero everywhere"),
            Problem::MaskMismatch { leaked } => {
                write!(f, "gradient at {leaked} entries its mask dropped")
            }
            Problem::CountedTwice { times } => {
                write!(f, "the same parameter is counted {times} times")
            }
            Problem::NotUpdated => f.write_str("the optimizer step did not change it"),
        }
    }
}

/// One parameter's audit.
#[derive(Debug, Clone, Serialize)]
pub struct ParamReport {
    pub path: String,
    pub shape: Vec<usize>,
    /// `None`: no gradient reached the parameter.
    pub grad_norm: Option<f64>,
    /// Fraction of gradient entries exactly zero.
    pub zero_fraction: f64,
    pub regularizers: Vec<Regularizer>,
    pub problems: Vec<Problem>,
    #[serde(skip)]
    pub id: ParamId,
}

impl ParamReport {
    /// A gradient reached the parameter and is not zero everywhere.
    pub fn is_trained(&self) -> bool {
        self.grad_norm.is_some_and(|n| n > 0.0)
    }
}

/// The audit of a whole module.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub params: Vec<ParamReport>,
}

impl Report {
    /// No parameter was flagged.
    pub fn is_clean(&self) -> bool {
        self.params.iter().all(|p| p.problems.is_empty())
    }

    pub fn get(&self, path: &str) -> Option<&ParamReport> {
        self.params.iter().find(|p| p.path == path)
    }

    /// Flags every parameter with a gradient whose value `after` (the module after an optimizer
    /// step) still equals its value in `before`.
    pub fn check_updated<M: Module>(&mut self, before: &M, after: &M) {
        let old: HashMap<String, HostTensor> =
            crate::params::named_values(before).into_iter().collect();
        for (path, new) in crate::params::named_values(after) {
            if let Some(r) = self.params.iter_mut().find(|r| r.path == path)
                && r.is_trained()
                && old.get(&path) == Some(&new)
            {
                r.problems.push(Problem::NotUpdated);
            }
        }
    }
}

struct Collect<'g> {
    grads: &'g GradientsParams,
    out: Vec<(String, ParamId, Vec<usize>, Option<HostTensor>)>,
}

impl ParamVisitor for Collect<'_> {
    fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
        let shape = param.val().dims().to_vec();
        let grad = self.grads.get::<D>(param.id).map(HostTensor::from_tensor);
        self.out.push((path.to_string(), param.id, shape, grad));
    }
}

/// Audits `module` after a backward pass that produced `grads`, given the masks drawn in the
/// forward pass (empty when none were recorded).
pub fn audit<M: Module>(module: &M, grads: &GradientsParams, masks: &[MaskRecord]) -> Report {
    let mut c = Collect {
        grads,
        out: Vec::new(),
    };
    visit_params(module, &mut c);
    let mut times: HashMap<ParamId, usize> = HashMap::new();
    for (_, id, _, _) in &c.out {
        *times.entry(*id).or_default() += 1;
    }
    let params = c
        .out
        .into_iter()
        .map(|(path, id, shape, grad)| {
            let mut problems = Vec::new();
            let mut regularizers = Vec::new();
            let weight_masks: Vec<&MaskRecord> = masks
                .iter()
                .filter(|m| m.owner == MaskOwner::Weight(id))
                .collect();
            if let Some(m) = weight_masks.first() {
                regularizers.push(Regularizer::WeightDropout { p: m.p });
            }
            if let Some(m) = masks.iter().find(|m| m.owner == MaskOwner::Embedding(id)) {
                regularizers.push(Regularizer::EmbeddingDropout { p: m.p });
            }
            let (grad_norm, zero_fraction) = match &grad {
                None => {
                    problems.push(Problem::NoGradient);
                    (None, 1.0)
                }
                Some(g) => {
                    let zeros = g.values.iter().filter(|&&v| v == 0.0).count();
                    if zeros == g.values.len() {
                        problems.push(Problem::ZeroGradient);
                    }
                    let leaked = leaked_entries(g, &weight_masks);
                    if leaked > 0 {
                        problems.push(Problem::MaskMismatch { leaked });
                    }
                    (Some(g.norm()), zeros as f64 / g.values.len().max(1) as f64)
                }
            };
            if times[&id] > 1 {
                problems.push(Problem::CountedTwice { times: times[&id] });
            }
            ParamReport {
                path,
                shape,
                grad_norm,
                zero_fraction,
                regularizers,
                problems,
                id,
            }
        })
        .collect();
    Report { params }
}

/// Entries of `grad` that are non-zero although every mask dropped them (masks broadcast over
/// their size-1 dimensions, as variational masks `[rows, 1]` do).
fn leaked_entries(grad: &HostTensor, masks: &[&MaskRecord]) -> usize {
    let masks: Vec<&&MaskRecord> = masks
        .iter()
        .filter(|m| m.shape.len() == grad.shape.len())
        .collect();
    if masks.is_empty() {
        return 0;
    }
    let rank = grad.shape.len();
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * grad.shape[d + 1];
    }
    let mask_index = |m: &MaskRecord, flat: usize| {
        let mut idx = 0;
        let mut mstride = 1;
        for d in (0..rank).rev() {
            let coord = (flat / strides[d]) % grad.shape[d];
            let c = if m.shape[d] == 1 { 0 } else { coord };
            idx += c * mstride;
            mstride *= m.shape[d];
        }
        idx
    };
    grad.values
        .iter()
        .enumerate()
        .filter(|(i, g)| **g != 0.0 && masks.iter().all(|m| m.values[mask_index(m, *i)] == 0.0))
        .count()
}

/// The report as an aligned text table.
pub struct Table<'a>(pub &'a Report);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = &self.0.params;
        let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(4).max(9);
        writeln!(
            f,
            "{:<width$}  {:<12}  {:<8}  {:>12}  {:>6}  reached through",
            "parameter", "shape", "gradient", "norm", "zeros"
        )?;
        for r in rows {
            let (reached, norm) = match r.grad_norm {
                Some(n) => ("yes", format!("{n:.6e}")),
                None => ("NONE", "-".to_string()),
            };
            let via: Vec<String> = r.regularizers.iter().map(|g| g.to_string()).collect();
            writeln!(
                f,
                "{:<width$}  {:<12}  {:<8}  {:>12}  {:>5.1}%  {}",
                r.path,
                format!("{:?}", r.shape),
                reached,
                norm,
                100.0 * r.zero_fraction,
                if via.is_empty() {
                    "-".to_string()
                } else {
                    via.join(", ")
                }
            )?;
            for p in &r.problems {
                writeln!(f, "  !! {}: {p}", r.path)?;
            }
        }
        let flagged = rows.iter().filter(|r| !r.problems.is_empty()).count();
        if flagged == 0 {
            write!(
                f,
                "all {} parameters received a gradient; nothing flagged",
                rows.len()
            )
        } else {
            write!(f, "{flagged} of {} parameters flagged", rows.len())
        }
    }
}
