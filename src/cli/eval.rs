//! `awd eval`: perplexity of a trained model on a split.

use std::path::PathBuf;

use anyhow::bail;

use crate::checkpoint::native;
use crate::data::corpus::{Level, emit_docs};
use crate::data::dataset::{encode_file, reverse_documents};
use crate::data::{DocOptions, Source, Vocab, vocab::UNK};
use crate::device::{self, Device};
use crate::dropout::Masks;
use crate::kernels::Precision;
use crate::model::LanguageModel;
use crate::train::eval::{CacheConfig, bits, mean_loss, mean_loss_with_cache};

/// The model a command reads, and its vocabulary.
#[derive(Debug, clap::Args)]
pub struct ModelSource {
    /// A model file written by `awd train` (model.safetensors), or its run directory; or a fastai
    /// language model's weights (.pth) with --vocab.
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
    /// The products' operands: f32, or bf16 with f32 sums.
    #[arg(long, value_enum, default_value_t)]
    pub precision: Precision,
}

/// A model read with what it needs to read text.
pub struct Loaded {
    pub model: LanguageModel,
    pub vocab: Vocab,
    pub level: Level,
    /// Trained on each document backwards.
    pub backwards: bool,
}

impl ModelSource {
    /// The model, its vocabulary and how it reads text (word level, forwards, unless it says
    /// otherwise).
    pub fn load(&self, device: &Device) -> crate::Result<Loaded> {
        let masks = Masks::default();
        let (mut model, info) =
            native::load_with_vocab(&self.model, self.vocab.as_deref(), &masks, device)?;
        model.set_precision(self.precision);
        super::note_precision(self.precision, device);
        let level = self.level.unwrap_or_else(|| {
            serde_json::from_value(info.extra["level"].clone()).unwrap_or(Level::Word)
        });
        let backwards = self.backwards || info.extra["backwards"].as_bool().unwrap_or(false);
        Ok(Loaded {
            model,
            vocab: Vocab::from_itos(info.vocab),
            level,
            backwards,
        })
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
    if args.batch_size == 0 || args.bptt == 0 {
        bail!("--batch-size and --bptt must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.cache_lambda) {
        bail!("--cache-lambda must lie in [0, 1]");
    }
    let device = device::select(&args.device)?;
    let Loaded {
        mut model,
        vocab,
        level,
        backwards,
    } = args.source.load(&device)?;
    if backwards && level != Level::Fastai {
        bail!("a backward model reads documents backwards: it needs --level fastai");
    }
    let docs = DocOptions {
        valid_fraction: 0.1,
        text_col: &args.text_col,
        seed: 0,
    };
    let (path, mut ids) = match Source::from_path(&args.data, &docs)? {
        Source::File { path, .. } => {
            let ids = encode_file(&path, &vocab, level)?;
            (path.display().to_string(), ids)
        }
        Source::Dir { valid, test, .. } => {
            let path = match (args.split.as_deref(), test) {
                (Some("valid"), _) | (None, None) => valid,
                (Some("test") | None, Some(t)) => t,
                (Some("test"), None) => bail!("{} has no test.txt", args.data.display()),
                (Some(other), _) => bail!("--split must be valid or test, not `{other}`"),
            };
            let ids = encode_file(&path, &vocab, level)?;
            (path.display().to_string(), ids)
        }
        Source::Docs {
            description,
            docs,
            is_valid,
            given,
        } => {
            // A CSV's validation rows where it marks them, else every document.
            let docs = if given {
                Source::split_docs(&docs, &is_valid).1
            } else {
                docs
            };
            let mut ids = Vec::new();
            emit_docs(&docs, level, &mut |t: &str| ids.push(vocab.id(t)));
            (format!("{description} ({} documents)", docs.len()), ids)
        }
    };
    if backwards {
        reverse_documents(&mut ids, vocab.id(crate::text::rules::BOS));
    }
    let unknown = ids.iter().filter(|&&i| i == UNK).count() as f64 / ids.len() as f64;
    if unknown > 0.5 {
        bail!(
            "the model's vocabulary does not fit {}: {:.0}% of its tokens are unknown to the model (trained at {:?} level, {} tokens)",
            path,
            100.0 * unknown,
            level,
            vocab.len()
        );
    }
    let loss = if args.cache_window > 0 {
        let cache = CacheConfig {
            window: args.cache_window,
            theta: args.cache_theta,
            lambda: args.cache_lambda,
        };
        mean_loss_with_cache(&mut model, &ids, args.batch_size, args.bptt, cache, &device)?
    } else {
        mean_loss(&mut model, &ids, args.batch_size, args.bptt, &device)?
    };
    let mut line = format!(
        "{}: {} tokens, loss {loss:.4}, perplexity {:.2}",
        path,
        ids.len(),
        loss.exp()
    );
    if level == Level::Char {
        line += &format!(", {:.4} bits per character", bits(loss));
    }
    println!("{line}");
    Ok(true)
}
