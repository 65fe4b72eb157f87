//! Which parameters did a backward pass reach, and how: the answer to "is this weight change
//! tracked by autograd?", for any module.

use std::fmt;

use burn::module::Module;
use burn::tensor::Gradients;

use crate::params::{HostTensor, named_grads};

/// One parameter's gradient, summarized.
#[derive(Debug, Clone)]
pub struct ParamReport {
    pub path: String,
    pub shape: Vec<usize>,
    /// `None`: no gradient reached the parameter at all (detached).
    pub grad_norm: Option<f64>,
    /// Fraction of gradient entries that are exactly zero.
    pub zero_fraction: f64,
}

impl ParamReport {
    /// A gradient reached the parameter and is not zero everywhere.
    pub fn is_trained(&self) -> bool {
        self.grad_norm.is_some_and(|n| n > 0.0)
    }
}

/// Summarizes the gradient of every parameter of `module`.
pub fn grad_report<M: Module>(module: &M, grads: &Gradients) -> Vec<ParamReport> {
    let shapes = crate::params::named_values(module);
    named_grads(module, grads)
        .into_iter()
        .zip(shapes)
        .map(|((path, grad), (_, value))| {
            let (grad_norm, zero_fraction) = match &grad {
                Some(g) => (Some(g.norm()), zero_fraction(g)),
                None => (None, 1.0),
            };
            ParamReport {
                path,
                shape: value.shape,
                grad_norm,
                zero_fraction,
            }
        })
        .collect()
}

fn zero_fraction(t: &HostTensor) -> f64 {
    if t.values.is_empty() {
        return 0.0;
    }
    t.values.iter().filter(|&&v| v == 0.0).count() as f64 / t.values.len() as f64
}

/// The report as an aligned text table.
pub struct Table<'a>(pub &'a [ParamReport]);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .0
            .iter()
            .map(|r| r.path.len())
            .max()
            .unwrap_or(4)
            .max(9);
        writeln!(
            f,
            "{:<width$}  {:<12}  {:<8}  {:>12}  {:>6}",
            "parameter", "shape", "gradient", "norm", "zeros"
        )?;
        for r in self.0 {
            let shape = format!("{:?}", r.shape);
            let (reached, norm) = match r.grad_norm {
                Some(n) => ("yes", format!("{n:.6e}")),
                None => ("NONE", "-".to_string()),
            };
            writeln!(
                f,
                "{:<width$}  {:<12}  {:<8}  {:>12}  {:>5.1}%",
                r.path,
                shape,
                reached,
                norm,
                100.0 * r.zero_fraction
            )?;
        }
        Ok(())
    }
}
