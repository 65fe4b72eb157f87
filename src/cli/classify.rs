//! `awd classify train | predict | eval`: a text classifier on the AWD-LSTM encoder.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::classify::data::{LABEL_DELIM, RawLabelled, read_raw};
use crate::classify::saved::{self, ClassifierInfo, read_encoder};
use crate::classify::scores::{Scores, argmax, ensemble, predicted};
use crate::classify::{
    ClasStage, ClassifierTrainer, ClassifyConfig, ClassifyFlags, LabelOptions, Labelled,
};
use crate::device;
use crate::dropout::Masks;
use crate::model::TextClassifier;
use crate::train::RunOptions;

#[derive(Subcommand)]
pub enum ClassifyCommand {
    /// Train a classifier on labelled documents, from a pretrained encoder (ULMFiT) or none.
    Train(Box<TrainArgs>),
    /// The label of each input line (or JSON line), with its probability.
    Predict(PredictArgs),
    /// Accuracy, per-class precision/recall/F1 and the confusion matrix on labelled documents.
    Eval(EvalArgs),
}

#[derive(Args)]
pub struct TrainArgs {
    /// Labelled documents: a CSV (--text-col, --label-col; an `is_valid` column splits it), or a
    /// directory of class folders (`train/<class>/*.txt` with `valid/` or `test/` beside it, or
    /// `<class>/*.txt`).
    #[arg(long)]
    data: PathBuf,
    /// The pretrained encoder: a fine-tuning run's directory, its model file, or fastai's
    /// encoder (`save_encoder`) or language-model `.pth` with its vocabulary (--vocab, else the
    /// `.pkl` beside it). Without it the encoder starts untrained.
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// The fastai vocabulary pickle of a `.pth` --encoder.
    #[arg(long, requires = "encoder")]
    vocab: Option<PathBuf>,
    /// Read documents backwards (a backward encoder; awd's own runs say so themselves).
    #[arg(long)]
    backwards: bool,
    /// The stages of gradual unfreezing: `EPOCHS:LR[:GROUPS]`, comma-separated, GROUPS counted
    /// from the head (0 or absent: all); default fastai's `1:2e-2:1,1:1e-2:2,1:5e-3:3,2:1e-3`.
    #[arg(long)]
    stages: Option<String>,
    /// A TOML file of hyper-parameters (field names as the flags; `[[stages]]` tables).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the model, metrics and curves go (default: a new directory under runs/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Start over in --out even if it holds a run.
    #[arg(long)]
    force: bool,
    /// cpu (default), or cuda/wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    flags: ClassifyFlags,
}

/// The classifiers a command reads.
#[derive(Args)]
pub struct ClassifierSource {
    /// A classifier: an `awd classify train` run directory or model file, or a fastai
    /// classifier's `.pth` with --vocab. Twice (forward and backward) averages the two models'
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
        ClassifyCommand::Train(args) => train(*args),
        ClassifyCommand::Predict(args) => predict(args),
        ClassifyCommand::Eval(args) => eval(args),
    }
}

fn train(args: TrainArgs) -> anyhow::Result<bool> {
    let mut cfg = ClassifyConfig::ulmfit();
    if let Some(path) = &args.config {
        cfg = crate::hyper::from_toml_file(path, cfg)?;
    }
    args.flags.apply(&mut cfg);
    if let Some(spec) = &args.stages {
        cfg.stages = ClasStage::parse_list(spec)?;
    }
    cfg.validate()?;
    let encoder = args
        .encoder
        .as_deref()
        .map(|e| read_encoder(e, args.vocab.as_deref()))
        .transpose()?;
    let backwards = args.backwards || encoder.as_ref().is_some_and(|e| e.backwards);
    let out_dir = args.out.clone().unwrap_or_else(|| default_out(&args.data));
    let opts = RunOptions {
        out_dir: out_dir.clone(),
        device: device::select(&args.device)?.autodiff(),
        progress: !args.quiet,
        stop: super::stop_on_ctrl_c(),
        dist: Default::default(),
    }
    .prepare(args.force)?;
    super::note_precision(cfg.precision, &opts.0.device);
    let opts_text = LabelOptions {
        text_col: &cfg.text_col,
        label_col: &cfg.label_col,
        valid_fraction: cfg.valid_fraction,
        seed: cfg.seed,
    };
    let raw = read_raw(&args.data, &opts_text)?;
    let (data, vocab) = Labelled::new(
        &raw,
        encoder.as_ref().map(|e| &e.vocab),
        backwards,
        cfg.multi_label,
        args.data.display().to_string(),
    )?;
    eprintln!(
        "classifying {}: {} training and {} validation documents, {} classes ({})",
        data.description,
        data.train.len(),
        data.valid.len(),
        data.classes.len(),
        data.classes.join(", ")
    );
    match &encoder {
        Some(e) => {
            let unknown = data.unknown_share();
            eprintln!(
                "encoder from {}: vocabulary {}, {:.1}% of the tokens unknown to it{}",
                e.source.display(),
                e.vocab.len(),
                100.0 * unknown,
                if backwards {
                    "; documents read backwards"
                } else {
                    ""
                }
            );
        }
        None => eprintln!(
            "no --encoder: the encoder starts untrained (vocabulary {} from these documents)",
            vocab.len()
        ),
    }
    let mut trainer = ClassifierTrainer::new(cfg, data, vocab, encoder.as_ref(), backwards, opts)?;
    let s = trainer.run()?;
    println!(
        "{}: {} steps, {:.0} tokens/s; validation accuracy {:.2}%, loss {:.4}",
        if s.interrupted { "interrupted" } else { "done" },
        s.steps,
        s.tokens_per_s,
        100.0 * s.valid.accuracy,
        s.valid.loss
    );
    println!("model:   {}", trainer.opts.model_path().display());
    println!(
        "fastai:  {}",
        trainer.opts.out_dir.join("classifier.pth").display()
    );
    println!("metrics: {}", trainer.opts.metrics_path().display());
    Ok(!s.interrupted)
}

fn default_out(data: &std::path::Path) -> PathBuf {
    let name = data
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "data".into());
    super::new_run_dir(&format!("classify-{name}"))
}

/// The classifiers named, which must agree on their classes.
fn load_models(source: &ClassifierSource) -> anyhow::Result<Vec<(TextClassifier, ClassifierInfo)>> {
    let dev = device::cpu();
    let paths = &source.model;
    let fastai = source
        .vocab
        .as_deref()
        .map(|v| (v, source.classes.as_slice()));
    let models = paths
        .iter()
        .map(|p| saved::load(p, fastai, &Masks::default(), &dev))
        .collect::<crate::Result<Vec<_>>>()?;
    if let Some((_, first)) = models.first()
        && let Some((i, (_, other))) = models
            .iter()
            .enumerate()
            .find(|(_, (_, m))| m.classes != first.classes)
    {
        bail!(
            "{} has the classes {:?}, {} has {:?}: an ensemble needs the same classes",
            paths[0].display(),
            first.classes,
            paths[i].display(),
            other.classes
        );
    }
    Ok(models)
}

#[derive(serde::Deserialize)]
struct Doc {
    text: String,
}

fn predict(args: PredictArgs) -> anyhow::Result<bool> {
    let mut models = load_models(&args.source)?;
    let classes = models[0].1.classes.clone();
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
    let probs = ensemble(&mut models, &docs, args.batch_size)?;
    let (multi, threshold) = (models[0].0.config.multi_label, models[0].1.threshold);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (text, p) in docs.iter().zip(&probs) {
        let chosen = predicted(p, multi, threshold);
        let names: Vec<&str> = chosen.iter().map(|&c| classes[c].as_str()).collect();
        if args.json {
            let all: serde_json::Map<String, serde_json::Value> = classes
                .iter()
                .zip(p)
                .map(|(c, &v)| (c.clone(), serde_json::json!(v)))
                .collect();
            let row = if multi {
                serde_json::json!({"text": text, "labels": names, "probabilities": all})
            } else {
                serde_json::json!({"text": text, "label": names[0], "probabilities": all})
            };
            writeln!(out, "{row}")?;
        } else if multi {
            let shown: Vec<String> = chosen
                .iter()
                .map(|&c| format!("{}:{:.4}", classes[c], p[c]))
                .collect();
            writeln!(out, "{}", shown.join(";"))?;
        } else {
            let best = argmax(p);
            writeln!(out, "{}\t{:.4}", classes[best], p[best])?;
        }
    }
    Ok(true)
}

fn eval(args: EvalArgs) -> anyhow::Result<bool> {
    let mut models = load_models(&args.source)?;
    let classes = models[0].1.classes.clone();
    let opts = LabelOptions {
        text_col: &args.text_col,
        label_col: &args.label_col,
        valid_fraction: 0.5,
        seed: 0,
    };
    let raw = read_raw(&args.data, &opts)?;
    // A directory's validation folder; a CSV's every row.
    let keep: Vec<usize> = if args.data.is_dir() && raw.is_valid.iter().any(|&v| v) {
        (0..raw.docs.len()).filter(|&i| raw.is_valid[i]).collect()
    } else {
        (0..raw.docs.len()).collect()
    };
    let sub = RawLabelled {
        docs: keep.iter().map(|&i| raw.docs[i].clone()).collect(),
        labels: keep.iter().map(|&i| raw.labels[i].clone()).collect(),
        is_valid: vec![true; keep.len()],
        names: keep.iter().map(|&i| raw.names[i].clone()).collect(),
    };
    let (multi, threshold) = (models[0].0.config.multi_label, models[0].1.threshold);
    let mut labels = Vec::with_capacity(sub.docs.len());
    for (l, name) in sub.labels.iter().zip(&sub.names) {
        let parts: Vec<&str> = if multi {
            l.split(LABEL_DELIM)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect()
        } else {
            vec![l.as_str()]
        };
        let mut ids = Vec::new();
        for part in parts {
            match classes.binary_search_by(|c| c.as_str().cmp(part)) {
                Ok(c) => ids.push(c),
                Err(_) => bail!(
                    "{}, {name}: the label `{part}` is not one of the model's classes ({})",
                    args.data.display(),
                    classes.join(", ")
                ),
            }
        }
        labels.push(ids);
    }
    let probs = ensemble(&mut models, &sub.docs, args.batch_size)?;
    let s = Scores::new(&probs, &labels, classes.len(), multi, threshold);
    print!("{}", s.report(&classes));
    let Some(confusion) = &s.confusion else {
        if args.png.is_some() {
            bail!("a multi-label model has no confusion matrix to draw (--png)");
        }
        return Ok(true);
    };
    if let Some(png) = &args.png {
        crate::train::plot::confusion(confusion, &classes, png)?;
        println!("confusion matrix: {}", png.display());
    }
    Ok(true)
}
