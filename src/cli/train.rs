//! `awd train`.

use std::path::PathBuf;

use crate::data::Level;
use crate::data::download::PublicData;
use crate::device;
use crate::jobs::train::{LmTraining, new_lm, resume_lm};
use crate::train::{Outcome, Preset, RunOptions, TrainFlags};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training text: a text file (a validation tail is held out), a directory with train.txt,
    /// valid.txt and test.txt, a directory of .txt documents, or a CSV of documents (--text-col).
    /// Without it, awd trains on its built-in grammar corpus.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A public data set to download (once, checked) and cache instead of --data; fastai's are
    /// tokenized as fastai does unless --level says otherwise.
    #[arg(long, value_enum, conflicts_with = "data")]
    pub dataset: Option<PublicData>,
    /// Fine-tune a fastai pretrained model: its weights (.pth or .safetensors, fastai's names), a
    /// directory holding the weights and the vocabulary (.pth + .pkl), or a model by name to
    /// download (wt103, wt103-bwd). Its sizes are read from the tensors; the data's vocabulary is
    /// matched to the pretrained one (fastai's `match_embeds`). Use with --preset finetune.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// The pretrained model's vocabulary (fastai's pickled list of tokens, `itos_*.pkl`).
    #[arg(long, requires = "pretrained")]
    pub pretrained_vocab: Option<PathBuf>,
    /// Starting hyper-parameters (flags and --config override them).
    #[arg(long, value_enum, default_value = "tiny")]
    pub preset: Preset,
    /// A TOML file of hyper-parameters (field names as the flags, with underscores; the model's in a
    /// `[model]` table).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the checkpoints, metrics and model go (default: a new directory under runs/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Start over in --out even if it holds a run.
    #[arg(long)]
    pub force: bool,
    /// cpu (default), or cuda/wgpu when built with those features.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub flags: TrainFlags,
}

fn default_out(args: &TrainArgs) -> PathBuf {
    let name = match (&args.data, args.dataset) {
        (Some(p), _) => p
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "data".into()),
        (None, Some(public)) => public.remote().name.into(),
        (None, None) => "grammar".into(),
    };
    let preset = format!("{:?}", args.preset).to_lowercase();
    super::new_run_dir(&format!("{preset}-{name}"))
}

impl TrainArgs {
    /// What the library's training job takes of these flags.
    pub fn spec(&self) -> LmTraining {
        LmTraining {
            preset: self.preset,
            config_file: self.config.clone(),
            flags: self.flags.clone(),
            data: self.data.clone(),
            dataset: self.dataset,
            pretrained: self.pretrained.clone(),
            pretrained_vocab: self.pretrained_vocab.clone(),
        }
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<bool> {
    let device = device::select(&args.device)?.autodiff();
    let out_dir = args.out.clone().unwrap_or_else(|| default_out(&args));
    // Under an MPI launcher (the `mpi` feature): one rank of a data-parallel job; rank 0 alone
    // shows progress, prints and writes.
    let dist = std::rc::Rc::new(crate::dist::Dist::from_env()?);
    let writer = dist.is_writer();
    let opts = RunOptions {
        out_dir: out_dir.clone(),
        device,
        progress: !args.quiet && writer,
        stop: super::stop_on_ctrl_c(),
        dist: dist.clone(),
    };
    if dist.size() > 1 && writer {
        eprintln!("data-parallel: {} ranks", dist.size());
    }

    let started = if args.resume {
        resume_lm(&args.spec(), opts)?
    } else {
        let opts = opts.prepare(args.force)?;
        let started = new_lm(&args.spec(), opts)?;
        if writer {
            super::note_precision(
                started.learner.job.cfg.precision,
                &started.learner.opts.device,
            );
        }
        started
    };
    if writer {
        started.notes.iter().for_each(|n| eprintln!("{n}"));
    }
    let mut trainer = started.learner;
    match trainer.run()? {
        Outcome::Interrupted { step, checkpoint } => {
            if !writer {
                std::process::exit(130);
            }
            eprintln!(
                "interrupted at step {step}; checkpoint {} (continue with --resume --out {})",
                checkpoint.display(),
                out_dir.display()
            );
            std::process::exit(130);
        }
        Outcome::Finished(_) if !writer => Ok(true),
        Outcome::Finished(summary) => {
            let (s, fit) = (&summary, &summary.fit);
            let char_level = trainer.job.data.level == Level::Char;
            let mut line = format!(
                "done: {} steps, {:.0} tokens/s; validation perplexity {:.2}",
                fit.steps,
                fit.tokens as f64 / fit.elapsed_s.max(1e-9),
                fit.metrics.exp()
            );
            if char_level {
                line += &format!(" ({:.3} bits/char)", crate::train::eval::bits(fit.metrics));
            }
            if let Some(t) = s.test_loss {
                line += &format!(", test perplexity {:.2}", t.exp());
            }
            if let Some(h) = s.entropy_rate {
                line += &format!(
                    "; best possible {:.2} (the grammar's entropy), {:.1}% above it on test",
                    h.exp(),
                    100.0 * (s.test_loss.unwrap_or(fit.metrics).exp() / h.exp() - 1.0)
                );
            }
            println!("{line}");
            let r = dist.stats();
            if r.calls > 0 {
                println!(
                    "all-reduce: {:.2} MB a step (the gradients and losses, {} ranks), {:.1} ms a step in it, {:.1}% of the training time",
                    r.bytes as f64 / r.calls as f64 / 1e6,
                    dist.size(),
                    1e3 * r.seconds / r.calls as f64,
                    100.0 * r.seconds / fit.train_s.max(1e-9)
                );
            }
            println!("model:   {}", s.model_path.display());
            println!("metrics: {}", s.metrics_path.display());
            println!("plot:    {}", s.plot_path.display());
            Ok(true)
        }
    }
}
