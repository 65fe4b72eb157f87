//! `awd audit` and `awd explain`: one audited training step of a language model.

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::{Int, Tensor};

use crate::audit::explain::explain;
use crate::audit::step::audit_step;
use crate::audit::{Report, Table};
use crate::checkpoint::{fastai, native};
use crate::data::Rows;
use crate::device;
use crate::dropout::{Masks, set_training};
use crate::model::LanguageModel;
use crate::train::{Preset, TrainFlags, TrainStep};

#[derive(Debug, clap::Args)]
pub struct ModelArgs {
    /// A model file (awd's, or a fastai checkpoint .pth/.safetensors); default: a fresh model of --preset.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The preset of a fresh model.
    #[arg(long, value_enum, default_value = "tiny")]
    pub preset: Preset,
    /// Text for the batch (default: the built-in grammar corpus).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The training configuration over the preset's (the step's optimizer, clipping, AR/TAR;
    /// `--batch-size` and `--bptt` shape the one window).
    #[command(flatten)]
    pub flags: TrainFlags,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The parameter (fastai name); default: every layer's `weight_hh_l0_raw`.
    #[arg(long)]
    pub param: Option<String>,
    /// Print Graphviz DOT instead of text.
    #[arg(long)]
    pub dot: bool,
}

/// Builds the model and runs one audited step on one batch.
fn audited_step(args: &ModelArgs) -> anyhow::Result<(Report, LanguageModel)> {
    let mut cfg = args.preset.config();
    args.flags.apply(&mut cfg);
    cfg.validate()?;
    let dev = device::cpu_autodiff();
    dev.seed(cfg.seed);
    let masks = Masks::seeded(cfg.seed);
    let data = cfg.dataset(args.data.as_deref())?;
    let (model, vocab) = match &args.model {
        Some(path) => match native::load(path, &masks, &dev) {
            Ok((m, info)) => (m, Some(info.vocab)),
            Err(_) => (fastai::load(path, None, &masks, &dev)?, None),
        },
        // A fresh model takes the data's own vocabulary.
        None => {
            let m = LanguageModel::new(&cfg.model_config(data.vocab.len()), &masks, &dev)?;
            (m, None)
        }
    };
    let vocab_size = model.config().vocab_size as u32;
    let ids: Vec<u32> = match vocab {
        // Given text and a model with a vocabulary: the text's tokens in the model's ids.
        Some(v) if args.data.is_some() && !v.is_empty() => {
            let vocab = crate::data::Vocab::from_itos(v);
            data.train
                .iter()
                .map(|&i| vocab.id(data.vocab.token(i)))
                .collect()
        }
        _ => data.train.iter().map(|&i| i % vocab_size).collect(),
    };
    let rows = Rows::new(&ids, cfg.batch_size)?;
    let (x, y): (Tensor<2, Int>, Tensor<2, Int>) = rows.window(0, cfg.bptt, &dev);
    let model = set_training(model, true);
    // The training step of this configuration (optimizer, clipping, AR/TAR) at its rate.
    let mut step = TrainStep::new(&cfg.optim);
    let (alpha, beta) = (step.alpha, step.beta);
    let (report, model) = audit_step(&mut step, model, &masks, cfg.lr, |m| {
        Ok(m.loss(x, y, alpha, beta)?.1.total)
    })?;
    Ok((report, model))
}

pub fn run_audit(args: AuditArgs) -> anyhow::Result<bool> {
    let (report, _) = audited_step(&args.model)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", Table(&report));
    }
    Ok(report.is_clean())
}

pub fn run_explain(args: ExplainArgs) -> anyhow::Result<bool> {
    let (report, model) = audited_step(&args.model)?;
    let config = model.config();
    let params: Vec<String> = match &args.param {
        Some(p) => vec![p.clone()],
        None => (0..config.n_layers)
            .map(|l| format!("0.rnns.{l}.weight_hh_l0_raw"))
            .collect(),
    };
    for p in &params {
        let e = explain(&model, p).with_context(|| format!("explaining {p}"))?;
        if args.dot {
            print!("{}", e.to_dot());
            continue;
        }
        println!("{}", e.to_text());
        match report.get(p) {
            Some(r) => {
                let via: Vec<String> = r.regularizers.iter().map(|g| g.to_string()).collect();
                println!(
                    "  checked on one training step: gradient norm {}, {:.1}% zeros{}{}",
                    r.grad_norm.map_or("NONE".into(), |n| format!("{n:.4e}")),
                    100.0 * r.zero_fraction,
                    if via.is_empty() {
                        String::new()
                    } else {
                        format!(", through {}", via.join(", "))
                    },
                    if r.problems.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; FLAGGED: {}",
                            r.problems
                                .iter()
                                .map(|p| p.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    }
                );
            }
            None => println!("  (not a parameter of this model)"),
        }
        println!();
    }
    Ok(report.is_clean())
}
