//! `awd explain`: the path a parameter's gradient takes from the loss back to it.
//!
//! The path is built from the module structure of the AWD-LSTM language model (its layers, the
//! regularizers and where each parameter enters), not read out of Burn's autodiff graph: Burn
//! 0.22 does not expose its graph's nodes for inspection. What the structure claims is then
//! checked against the real autodiff pass by the audit (see [`super::audit`]): that a gradient
//! reached the parameter and that its zeros match the weight mask it passed through.

use std::collections::BTreeSet;

use crate::error::{AwdError, Result};
use crate::model::AwdLstmConfig;

/// The gradient's routes: a small DAG from the parameter to the loss.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub param: String,
    pub edges: Vec<(String, String)>,
}

const LOSS: &str = "loss";

fn lstm(l: usize) -> String {
    format!("LSTM layer {l} (steps 1..T)")
}

/// Edges from layer `l`'s output to the loss.
fn tail(c: &AwdLstmConfig, l: usize, edges: &mut Vec<(String, String)>) {
    let mut at = lstm(l);
    for next in l + 1..c.n_layers {
        let dp = format!("hidden dropout {} (p={})", next - 1, c.hidden_p);
        edges.push((at.clone(), dp.clone()));
        let inp = format!("LSTM layer {next} input projection");
        edges.push((dp, inp.clone()));
        edges.push((inp, lstm(next)));
        at = lstm(next);
    }
    let out_dp = format!("output dropout (p={})", c.output_p);
    edges.push((at.clone(), out_dp.clone()));
    edges.push((out_dp.clone(), "decoder".into()));
    edges.push(("decoder".into(), "cross-entropy".into()));
    edges.push(("cross-entropy".into(), LOSS.into()));
    edges.push((out_dp, "AR (alpha)".into()));
    edges.push(("AR (alpha)".into(), LOSS.into()));
    edges.push((at, "TAR (beta)".into()));
    edges.push(("TAR (beta)".into(), LOSS.into()));
}

/// Explains `param` (a fastai name such as `0.rnns.0.weight_hh_l0_raw`) in a model of `config`.
pub fn explain(config: &AwdLstmConfig, param: &str) -> Result<Explanation> {
    let mut edges = Vec::new();
    let unknown = || AwdError::Config(format!("`{param}` is not a parameter of this model"));
    let parts: Vec<&str> = param.split('.').collect();
    match parts.as_slice() {
        ["0", "encoder", "weight"] => {
            let emb_dp = format!("embedding dropout (row mask, p={})", config.embed_p);
            edges.push((param.to_string(), emb_dp.clone()));
            edges.push((emb_dp, "embedding lookup".into()));
            let inp_dp = format!("input dropout (p={})", config.input_p);
            edges.push(("embedding lookup".into(), inp_dp.clone()));
            edges.push((inp_dp, "LSTM layer 0 input projection".into()));
            edges.push(("LSTM layer 0 input projection".into(), lstm(0)));
            tail(config, 0, &mut edges);
            if config.tie_weights {
                edges.push((param.to_string(), "decoder".into()));
            }
        }
        ["1", "decoder", "bias" | "weight"] => {
            edges.push((param.to_string(), "decoder".into()));
            edges.push(("decoder".into(), "cross-entropy".into()));
            edges.push(("cross-entropy".into(), LOSS.into()));
        }
        ["0", "rnns", l, rest @ ..] => {
            let l: usize = l.parse().map_err(|_| unknown())?;
            if l >= config.n_layers {
                return Err(unknown());
            }
            let name = rest.join(".");
            let entry = match name.as_str() {
                n if n.starts_with("weight_hh_l0") && n.ends_with("_raw") => {
                    let dropped = n.trim_end_matches("_raw").to_string();
                    let wd = format!("weight dropout (mask, x1/(1-p), p={})", config.weight_p);
                    edges.push((param.to_string(), wd.clone()));
                    edges.push((wd, format!("{dropped} (dropped copy)")));
                    edges.push((
                        format!("{dropped} (dropped copy)"),
                        format!("LSTM layer {l} recurrent matmul"),
                    ));
                    format!("LSTM layer {l} recurrent matmul")
                }
                n if n.starts_with("module.weight_hh") => {
                    format!("LSTM layer {l} recurrent matmul")
                }
                n if n.starts_with("module.weight_ih") => {
                    format!("LSTM layer {l} input projection")
                }
                n if n.starts_with("module.bias") => format!("LSTM layer {l} gates"),
                _ => return Err(unknown()),
            };
            if edges.is_empty() {
                edges.push((param.to_string(), entry.clone()));
            }
            edges.push((entry, lstm(l)));
            tail(config, l, &mut edges);
        }
        _ => return Err(unknown()),
    }
    let mut seen = BTreeSet::new();
    edges.retain(|e| seen.insert(e.clone()));
    Ok(Explanation {
        param: param.to_string(),
        edges,
    })
}

impl Explanation {
    /// Every route from the parameter to the loss.
    pub fn routes(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![vec![self.param.clone()]];
        while let Some(route) = stack.pop() {
            let last = route.last().expect("non-empty").clone();
            if last == LOSS {
                out.push(route);
                continue;
            }
            for (_, to) in self.edges.iter().filter(|(f, _)| *f == last).rev() {
                let mut r = route.clone();
                r.push(to.clone());
                stack.push(r);
            }
        }
        out
    }

    /// The routes as text, one per line, the cross-entropy route first.
    pub fn to_text(&self) -> String {
        self.routes()
            .iter()
            .map(|r| r.join(" → "))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The DAG in Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
        let mut out = format!(
            "digraph gradient {{\n  rankdir=LR;\n  {} [shape=box, style=bold];\n  {} [shape=doublecircle];\n",
            q(&self.param),
            q(LOSS)
        );
        for (a, b) in &self.edges {
            out += &format!("  {} -> {};\n", q(a), q(b));
        }
        out + "}\n"
    }
}
