//! `awd explain`: the path a parameter's gradient takes from the loss back to it.
//!
//! The path is read off the model itself: its modules (layers, dropouts and their
//! probabilities, which parameters each `WeightDropout` drops, whether the decoder is tied) and
//! the implementation that runs them ([`Compute`](crate::kernels::Compute): a fused kernel is one node, the reference ops
//! several), so it follows the model when the model changes. Burn 0.22 does not expose its
//! autodiff graph's nodes, so what the structure claims is checked against the real backward
//! pass by the audit (see [`super::audit`]): that a gradient reached the parameter and that its
//! zeros match the weight mask it passed through.

use std::collections::BTreeSet;

use crate::error::{AwdError, Result};
use crate::model::LanguageModel;
use crate::params::param_paths;

/// The gradient's routes: a small DAG from the parameter to the loss.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub param: String,
    pub edges: Vec<(String, String)>,
}

const LOSS: &str = "loss";

/// The nodes of one model, named as its modules and kernels are.
struct Graph<'a> {
    model: &'a LanguageModel,
    fused: bool,
    edges: Vec<(String, String)>,
}

impl Graph<'_> {
    fn edge(&mut self, from: impl Into<String>, to: impl Into<String>) {
        self.edges.push((from.into(), to.into()));
    }

    /// Layer `l` as a whole (where its output leaves it).
    fn layer(&self, l: usize) -> String {
        if self.fused {
            format!("LSTM layer {l} (fused kernel: projection, recurrence, gates over steps 1..T)")
        } else {
            format!("LSTM layer {l} (steps 1..T)")
        }
    }

    /// Where parameter `name` of layer `l` enters it.
    fn entry(&self, l: usize, name: &str) -> String {
        if self.fused {
            return self.layer(l);
        }
        let part = if name.starts_with("weight_ih") {
            "input projection"
        } else if name.starts_with("weight_hh") {
            "recurrent matmul"
        } else {
            "gates"
        };
        format!("LSTM layer {l} {part}")
    }

    fn decoder(&self) -> String {
        if self.fused {
            "decoder + cross-entropy (fused kernel)".into()
        } else {
            "decoder".into()
        }
    }

    /// From the decoder's input (the output dropout) or the decoder itself to the loss.
    fn decoder_to_loss(&mut self) {
        let dec = self.decoder();
        if self.fused {
            self.edge(dec, LOSS);
        } else {
            self.edge(dec, "cross-entropy");
            self.edge("cross-entropy", LOSS);
        }
    }

    /// Edges from layer `l`'s output to the loss, through every later layer.
    fn tail(&mut self, l: usize) {
        let enc = &self.model.parts.encoder;
        let mut at = self.layer(l);
        for next in l + 1..enc.rnns.len() {
            let dp = format!(
                "hidden dropout {} (p={})",
                next - 1,
                enc.hidden_dps[next - 1].p
            );
            self.edge(at, dp.clone());
            let into = self.entry(next, "weight_ih");
            self.edge(dp, into.clone());
            if into != self.layer(next) {
                self.edge(into, self.layer(next));
            }
            at = self.layer(next);
        }
        let out_dp = format!(
            "output dropout (p={})",
            self.model.parts.decoder.output_dp.p
        );
        self.edge(at.clone(), out_dp.clone());
        self.edge(out_dp.clone(), self.decoder());
        self.decoder_to_loss();
        self.edge(out_dp, "AR (alpha)");
        self.edge("AR (alpha)", LOSS);
        self.edge(at, "TAR (beta)");
        self.edge("TAR (beta)", LOSS);
    }
}

/// Explains `param` (a fastai name such as `0.rnns.0.weight_hh_l0_raw`) in `model`.
pub fn explain(model: &LanguageModel, param: &str) -> Result<Explanation> {
    let paths = param_paths(model);
    if !paths.iter().any(|p| p == param) {
        return Err(AwdError::Config(format!(
            "`{param}` is not a parameter of this model (it has: {})",
            paths.join(", ")
        )));
    }
    let enc = &model.parts.encoder;
    let fused = enc.compute.fused_for(&enc.encoder.weight.val());
    let mut g = Graph {
        model,
        fused,
        edges: Vec::new(),
    };
    let parts: Vec<&str> = param.split('.').collect();
    match parts.as_slice() {
        ["0", "encoder", "weight"] => {
            let emb_dp = format!("embedding dropout (row mask, p={})", enc.encoder_dp.p);
            g.edge(param, emb_dp.clone());
            g.edge(emb_dp, "embedding lookup");
            let inp_dp = format!("input dropout (p={})", enc.input_dp.p);
            g.edge("embedding lookup", inp_dp.clone());
            let into = g.entry(0, "weight_ih");
            g.edge(inp_dp, into.clone());
            if into != g.layer(0) {
                g.edge(into, g.layer(0));
            }
            g.tail(0);
            if model.parts.decoder.decoder.weight.is_none() {
                g.edge(param, g.decoder());
            }
        }
        ["1", "decoder", ..] => {
            g.edge(param, g.decoder());
            g.decoder_to_loss();
        }
        ["0", "rnns", l, rest @ ..] => {
            let l: usize = l.parse().expect("a layer index: the path is the model's");
            let name = rest.join(".");
            let rnn = &enc.rnns[l];
            let entry = match name.strip_suffix("_raw") {
                Some(dropped) if rnn.selected().iter().any(|s| s == dropped) => {
                    let wd = format!("weight dropout (mask, x1/(1-p), p={})", rnn.p());
                    let copy = format!("{dropped} (dropped copy)");
                    g.edge(param, wd.clone());
                    g.edge(wd, copy.clone());
                    let entry = g.entry(l, dropped);
                    g.edge(copy, entry.clone());
                    entry
                }
                _ => {
                    let entry = g.entry(l, name.trim_start_matches("module."));
                    g.edge(param, entry.clone());
                    entry
                }
            };
            if entry != g.layer(l) {
                g.edge(entry, g.layer(l));
            }
            g.tail(l);
        }
        _ => unreachable!(
            "every parameter of a language model is under 0.encoder, 0.rnns or 1.decoder"
        ),
    }
    let mut seen = BTreeSet::new();
    let mut edges = g.edges;
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
