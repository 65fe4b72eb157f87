//! `awd classify train`: a new classifier run, or `--resume` of one.

use std::path::PathBuf;

use clap::Args;

use crate::classify::{ClassifyConfig, ClassifyFlags};
use crate::device;
use crate::jobs::train::{ClassifierTraining, new_classifier, resume_classifier};
use crate::train::{Ended, RunOptions, Stage};

#[derive(Args)]
pub struct TrainArgs {
    /// Labelled documents: a CSV (--text-col, --label-col; an `is_valid` column splits it), or a
    /// directory of class folders (`train/<class>/*.txt` with `valid/` or `test/` beside it, or
    /// `<class>/*.txt`).
    #[arg(long)]
    pub data: PathBuf,
    /// The pretrained encoder: a fine-tuning run's directory, its model file, or fastai's
    /// encoder (`save_encoder`) or language-model `.pth` with its vocabulary (--vocab, else the
    /// `.pkl` beside it). Without it the encoder starts untrained.
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// The fastai vocabulary pickle of a `.pth` --encoder.
    #[arg(long, requires = "encoder")]
    pub vocab: Option<PathBuf>,
    /// Read documents backwards (a backward encoder; awd's own runs say so themselves).
    #[arg(long)]
    pub backwards: bool,
    /// The stages of gradual unfreezing: `EPOCHS:LR[:GROUPS]`, comma-separated, GROUPS counted
    /// from the head (0 or absent: all); default fastai's `1:2e-2:1,1:1e-2:2,1:5e-3:3,2:1e-3`.
    #[arg(long)]
    pub stages: Option<String>,
    /// A TOML file of hyper-parameters (field names as the flags; `[[stages]]` tables).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the model, metrics and curves go (default: a new directory under runs/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Start over in --out even if it holds a run.
    #[arg(long)]
    pub force: bool,
    /// Continue the run in --out from its last checkpoint (with the same --data).
    #[arg(long, requires = "out", conflicts_with_all = ["encoder", "config", "stages", "force"])]
    pub resume: bool,
    /// cpu (default), or cuda/wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub flags: ClassifyFlags,
}

pub fn run(args: TrainArgs) -> anyhow::Result<bool> {
    let out_dir = args.out.clone().unwrap_or_else(|| default_out(&args.data));
    // Under an MPI launcher (the `mpi` feature): one rank of a data-parallel job; rank 0 alone
    // shows progress, prints and writes.
    let dist = std::rc::Rc::new(crate::dist::Dist::from_env()?);
    let writer = dist.is_writer();
    let opts = RunOptions {
        out_dir: out_dir.clone(),
        device: device::select(&args.device)?.autodiff(),
        progress: !args.quiet && writer,
        stop: super::super::stop_on_ctrl_c(),
        dist: dist.clone(),
    };
    if dist.size() > 1 && writer {
        eprintln!("data-parallel: {} ranks", dist.size());
    }
    let started = if args.resume {
        resume_classifier(&args.data, opts)?
    } else {
        let started = new_classifier(&args.spec()?, opts, args.force)?;
        let learner = &started.learner;
        if writer {
            super::super::note_precision(learner.job.cfg.precision, &learner.opts.device);
        }
        started
    };
    if writer {
        started.notes.iter().for_each(|n| eprintln!("{n}"));
    }
    let mut trainer = started.learner;
    let s = match trainer.run()? {
        Ended::Finished(_) if !writer => return Ok(true),
        Ended::Interrupted { .. } if !writer => std::process::exit(130),
        Ended::Finished(s) => s,
        Ended::Interrupted { step, checkpoint } => {
            eprintln!(
                "interrupted at step {step}; checkpoint {} (continue with `awd classify train --resume --out {} --data {}`)",
                checkpoint.display(),
                out_dir.display(),
                args.data.display()
            );
            std::process::exit(130);
        }
    };
    println!(
        "done: {} steps, {:.0} tokens/s; validation accuracy {:.2}%, loss {:.4}",
        s.steps,
        s.train_tokens as f64 / s.train_s.max(1e-9),
        100.0 * s.metrics.accuracy,
        s.metrics.loss
    );
    println!("model:   {}", trainer.opts.model_path().display());
    println!(
        "fastai:  {}",
        trainer.opts.out_dir.join("classifier.pth").display()
    );
    println!("metrics: {}", trainer.opts.metrics_path().display());
    Ok(true)
}

impl TrainArgs {
    /// What the library's training job takes of these flags: fastai's recipe, the `--config`
    /// file over it, the flags over both.
    pub fn spec(&self) -> anyhow::Result<ClassifierTraining> {
        let mut config = ClassifyConfig::ulmfit();
        if let Some(path) = &self.config {
            config = crate::hyper::from_toml_file(path, config)?;
        }
        self.flags.apply(&mut config);
        if let Some(spec) = &self.stages {
            config.stages = Stage::parse_list(spec)?;
        }
        Ok(ClassifierTraining {
            config,
            data: self.data.clone(),
            encoder: self.encoder.clone(),
            vocab: self.vocab.clone(),
            backwards: self.backwards,
        })
    }
}

fn default_out(data: &std::path::Path) -> PathBuf {
    let name = data
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "data".into());
    super::super::new_run_dir(&format!("classify-{name}"))
}
