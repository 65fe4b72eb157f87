//! `awd classify train | predict | eval`: a text classifier on the AWD-LSTM encoder.

mod train;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::classify::LabelOptions;
use crate::classify::scores::argmax;
use crate::device;
use crate::jobs::classify::Classifiers;

pub use train::TrainArgs;

#[derive(Subcommand)]
pub enum ClassifyCommand {
    /// Train a classifier on labelled documents, from a pretrained encoder (ULMFiT) or none.
    Train(Box<TrainArgs>),
    /// The label of each input line (or JSON line), with its probability.
    Predict(PredictArgs),
    /// Accuracy, per-class precision/recall/F1 and the confusion matrix on labelled documents.
    Eval(EvalArgs),
}

/// The classifiers a command reads.
#[derive(Args)]
pub struct ClassifierSource {
    /// A classifier: an `awd classify train` run directory or model file, a fastai
    /// `text_classifier_learner`'s `export.pkl`, or a fastai classifier's `.pth` with --vocab. Twice (forward and backward) averages the two models'
    /// probabilities.
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// The vocabulary pickle of a fastai `.pth` --model (fastai's `dls.vocab[0]`).
    #[arg(long)]
    vocab: Option<PathBuf>,
    /// A fastai `.pth` --model's class names in its output order, comma-separated (fastai's
    /// `dls.vocab[1]`; default 0, 1, ...).
    #[arg(long, value_delimiter = ',', requires = "vocab")]
    classes: Vec<String>,
}

#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    source: ClassifierSource,
    /// The documents, one a line (`-` or nothing: standard input).
    input: Option<PathBuf>,
    /// JSON lines in (`{"text": ...}`) and out, with every class's probability.
    #[arg(long)]
    json: bool,
    /// Documents per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    source: ClassifierSource,
    /// Labelled documents, as `classify train` reads them: every document of a CSV, or the
    /// validation (or test) folder of a directory.
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value = "text")]
    text_col: String,
    #[arg(long, default_value = "label")]
    label_col: String,
    /// Also draw the confusion matrix as a PNG here.
    #[arg(long)]
    png: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

pub fn run(cmd: ClassifyCommand) -> anyhow::Result<bool> {
    match cmd {
        ClassifyCommand::Train(args) => train::run(*args),
        ClassifyCommand::Predict(args) => predict(args),
        ClassifyCommand::Eval(args) => eval(args),
    }
}

/// The classifiers named (on the CPU), which must agree on their classes.
fn load_models(source: &ClassifierSource) -> anyhow::Result<Classifiers> {
    let fastai = source
        .vocab
        .as_deref()
        .map(|v| (v, source.classes.as_slice()));
    Ok(Classifiers::load(&source.model, fastai, &device::cpu())?)
}

#[derive(serde::Deserialize)]
struct Doc {
    text: String,
}

fn predict(args: PredictArgs) -> anyhow::Result<bool> {
    let mut clas = load_models(&args.source)?;
    let name = match &args.input {
        Some(p) if p.as_os_str() != "-" => p.display().to_string(),
        _ => "standard input".into(),
    };
    let reader: Box<dyn BufRead> = match &args.input {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin().lock())),
    };
    let mut docs = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}, line {}: not UTF-8 text", i + 1))?;
        let text = if args.json {
            serde_json::from_str::<Doc>(&line)
                .with_context(|| {
                    format!(
                        "{name}, line {}: not a JSON object with a \"text\" string",
                        i + 1
                    )
                })?
                .text
        } else {
            line
        };
        docs.push(text);
    }
    if docs.is_empty() {
        bail!("{name} holds no document");
    }
    let predictions = clas.predict(&docs, args.batch_size)?;
    let (classes, multi) = (clas.classes(), clas.multi_label());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (text, p) in docs.iter().zip(&predictions) {
        let probs = &p.probabilities;
        if args.json {
            let all: serde_json::Map<String, serde_json::Value> = classes
                .iter()
                .zip(probs)
                .map(|(c, &v)| (c.clone(), serde_json::json!(v)))
                .collect();
            let row = if multi {
                serde_json::json!({"text": text, "labels": p.labels, "probabilities": all})
            } else {
                serde_json::json!({"text": text, "label": p.labels[0], "probabilities": all})
            };
            writeln!(out, "{row}")?;
        } else if multi {
            let shown: Vec<String> = classes
                .iter()
                .zip(probs)
                .filter(|(c, _)| p.labels.contains(c))
                .map(|(c, v)| format!("{c}:{v:.4}"))
                .collect();
            writeln!(out, "{}", shown.join(";"))?;
        } else {
            let best = argmax(probs);
            writeln!(out, "{}\t{:.4}", classes[best], probs[best])?;
        }
    }
    Ok(true)
}

fn eval(args: EvalArgs) -> anyhow::Result<bool> {
    let mut clas = load_models(&args.source)?;
    let columns = LabelOptions {
        text_col: &args.text_col,
        label_col: &args.label_col,
        valid_fraction: 0.5,
        seed: 0,
    };
    let s = clas.evaluate(&args.data, &columns, args.batch_size)?;
    let classes = clas.classes();
    print!("{}", s.report(classes));
    let Some(confusion) = &s.confusion else {
        if args.png.is_some() {
            bail!("a multi-label model has no confusion matrix to draw (--png)");
        }
        return Ok(true);
    };
    if let Some(png) = &args.png {
        crate::train::plot::confusion(confusion, classes, png)?;
        println!("confusion matrix: {}", png.display());
    }
    Ok(true)
}
