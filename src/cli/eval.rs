//! `awd eval`: perplexity of a trained model on a split.

use std::path::PathBuf;

use anyhow::bail;

use crate::data::corpus::Level;
use crate::device::{self, Device};
use crate::jobs::lm::{EvalOptions, LmSource, LoadedLm, evaluate, load_lm};
use crate::kernels::PrecisionChoice;
use crate::train::eval::{CacheConfig, bits};

/// The model a command reads, and its vocabulary.
#[derive(Debug, clap::Args)]
pub struct ModelSource {
    /// A model file written by `awd train` (model.safetensors), or its run directory; a fastai
    /// `language_model_learner`'s `export.pkl`; or a fastai language model's weights (.pth) with
    /// --vocab.
    #[arg(long)]
    pub model: PathBuf,
    /// The fastai vocabulary pickle (itos.pkl) of a fastai --model.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// How text is cut into tokens (default: as the model was trained; a fastai model: fastai's
    /// tokenization). `word` reads text already tokenized, one token a space.
    #[arg(long, value_enum)]
    pub level: Option<Level>,
    /// The model reads each document backwards (a fastai backward model such as `wt103-bwd`'s;
    /// awd's own models say so themselves).
    #[arg(long)]
    pub backwards: bool,
    /// The products' operands: f32, bf16 with f32 sums, or auto (bf16 where it is faster here).
    #[arg(long, value_enum, default_value_t)]
    pub precision: PrecisionChoice,
}

impl ModelSource {
    /// The model, its vocabulary and how it reads text (word level, forwards, unless it says
    /// otherwise).
    pub fn load(&self, device: &Device) -> crate::Result<LoadedLm> {
        super::note_precision(self.precision, device);
        let source = LmSource {
            path: self.model.clone(),
            vocab: self.vocab.clone(),
            level: self.level,
            backwards: self.backwards,
            precision: self.precision,
        };
        load_lm(&source, device)
    }
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub source: ModelSource,
    /// A text file, or a directory with train/valid/test.txt.
    #[arg(long)]
    pub data: PathBuf,
    /// Which split of a directory: test (default when present) or valid.
    #[arg(long)]
    pub split: Option<String>,
    /// A CSV file's text column (its validation rows are evaluated where an `is_valid` column
    /// marks them, else every row; a directory of .txt files: every file).
    #[arg(long, default_value = "text")]
    pub text_col: String,
    /// Rows evaluated side by side (the state is carried over the whole text in each row).
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 70)]
    pub bptt: usize,
    /// Neural cache: number of past positions (0: no cache).
    #[arg(long, default_value_t = 0)]
    pub cache_window: usize,
    #[arg(long, default_value_t = 1.0)]
    pub cache_theta: f64,
    #[arg(long, default_value_t = 0.1)]
    pub cache_lambda: f64,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: EvalArgs) -> anyhow::Result<bool> {
    if !(0.0..=1.0).contains(&args.cache_lambda) {
        bail!("--cache-lambda must lie in [0, 1]");
    }
    let device = device::select(&args.device)?;
    let mut lm = args.source.load(&device)?;
    let cache = (args.cache_window > 0).then_some(CacheConfig {
        window: args.cache_window,
        theta: args.cache_theta,
        lambda: args.cache_lambda,
    });
    let opts = EvalOptions {
        split: args.split.clone(),
        text_col: args.text_col.clone(),
        batch_size: args.batch_size,
        bptt: args.bptt,
        cache,
    };
    let e = evaluate(&mut lm, &args.data, &opts, &device)?;
    let mut line = format!(
        "{}: {} tokens, loss {:.4}, perplexity {:.2}",
        e.source,
        e.tokens,
        e.loss,
        e.perplexity()
    );
    if lm.level == Level::Char {
        line += &format!(", {:.4} bits per character", bits(e.loss));
    }
    println!("{line}");
    Ok(true)
}
