//! A language model as a user has it: loaded from any file awd reads and scored on a text.

use std::path::{Path, PathBuf};

use crate::checkpoint::native;
use crate::data::corpus::{Level, emit_docs};
use crate::data::dataset::{encode_file, reverse_documents};
use crate::data::{DocOptions, Source, Vocab, vocab::UNK};
use crate::device::Device;
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::kernels::PrecisionChoice;
use crate::model::LanguageModel;
use crate::train::eval::{CacheConfig, mean_loss, mean_loss_with_cache};

/// Where a language model is and how to read it.
#[derive(Debug, Clone, Default)]
pub struct LmSource {
    /// An awd model file or run directory, or a fastai language model's `.pth` (with `vocab`).
    pub path: PathBuf,
    /// The fastai vocabulary pickle of a `.pth`.
    pub vocab: Option<PathBuf>,
    /// How text is cut into tokens (default: as the model was trained; fastai's for a fastai model).
    pub level: Option<Level>,
    /// The model reads documents backwards (awd's own models say so themselves).
    pub backwards: bool,
    /// The products' operands.
    pub precision: PrecisionChoice,
}

/// A language model with what it needs to read text.
pub struct LoadedLm {
    pub model: LanguageModel,
    pub vocab: Vocab,
    pub level: Level,
    /// Trained on each document backwards.
    pub backwards: bool,
}

/// Reads the language model `source` names onto `device`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let run = dir.path().join("run");
/// # let opts = awd::train::RunOptions::quiet(run.clone(), awd::device::cpu_autodiff());
/// # let flags = awd::train::TrainFlags { max_steps: Some(20), ..Default::default() };
/// # awd::jobs::train::train_lm(&awd::jobs::train::LmTraining { flags, ..Default::default() }, opts, false)?;
/// use awd::jobs::lm::{LmSource, load_lm};
/// let lm = load_lm(&LmSource { path: run, ..Default::default() }, &awd::device::cpu())?;
/// assert!(lm.vocab.len() > 10);
/// # Ok(()) }
/// ```
pub fn load_lm(source: &LmSource, device: &Device) -> Result<LoadedLm> {
    let masks = Masks::default();
    let (mut model, info) =
        native::load_with_vocab(&source.path, source.vocab.as_deref(), &masks, device)?;
    model.set_precision(source.precision.resolve());
    let level = source.level.unwrap_or_else(|| {
        serde_json::from_value(info.extra["level"].clone()).unwrap_or(Level::Word)
    });
    let backwards = source.backwards || info.extra["backwards"].as_bool().unwrap_or(false);
    if backwards && level != Level::Fastai {
        return Err(AwdError::Config(
            "a backward model reads documents backwards: it needs --level fastai".into(),
        ));
    }
    Ok(LoadedLm {
        model,
        vocab: Vocab::from_itos(info.vocab),
        level,
        backwards,
    })
}

/// How `evaluate` reads and scores a text.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// A directory's split: `test` (the default where there is one) or `valid`.
    pub split: Option<String>,
    /// A CSV file's text column.
    pub text_col: String,
    /// Rows read side by side, each carrying its state over its part of the text.
    pub batch_size: usize,
    pub bptt: usize,
    /// The neural cache, if any.
    pub cache: Option<CacheConfig>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            split: None,
            text_col: "text".into(),
            batch_size: 1,
            bptt: 70,
            cache: None,
        }
    }
}

/// What `evaluate` measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// What was read (a file, a split, documents).
    pub source: String,
    pub tokens: usize,
    /// Mean cross-entropy, nats a token.
    pub loss: f64,
}

impl Evaluation {
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }
}

/// Scores `lm` on `data`: a text file, a directory with train/valid/test.txt (its test split, or
/// `opts.split`), a directory of `.txt` documents or a CSV (its validation rows where an
/// `is_valid` column marks them, else every document).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let run = dir.path().join("run");
/// # let opts = awd::train::RunOptions::quiet(run.clone(), awd::device::cpu_autodiff());
/// # let flags = awd::train::TrainFlags { max_steps: Some(20), ..Default::default() };
/// # awd::jobs::train::train_lm(&awd::jobs::train::LmTraining { flags, ..Default::default() }, opts, false)?;
/// use awd::jobs::lm::{EvalOptions, LmSource, evaluate, load_lm};
/// let device = awd::device::cpu();
/// let mut lm = load_lm(&LmSource { path: run, ..Default::default() }, &device)?;
/// let text = dir.path().join("text.txt");
/// std::fs::write(&text, awd::data::Grammar::builtin().sample(300, 1).join(" "))?;
/// let e = evaluate(&mut lm, &text, &EvalOptions::default(), &device)?;
/// assert!(e.tokens > 0 && e.perplexity() < lm.vocab.len() as f64);
/// # Ok(()) }
/// ```
pub fn evaluate(
    lm: &mut LoadedLm,
    data: &Path,
    opts: &EvalOptions,
    device: &Device,
) -> Result<Evaluation> {
    if opts.batch_size == 0 || opts.bptt == 0 {
        return Err(AwdError::Config(
            "--batch-size and --bptt must be at least 1".into(),
        ));
    }
    let (vocab, level) = (&lm.vocab, lm.level);
    let docs = DocOptions {
        valid_fraction: 0.1,
        text_col: &opts.text_col,
        seed: 0,
    };
    let (source, mut ids) = match Source::from_path(data, &docs)? {
        Source::File { path, .. } => (
            path.display().to_string(),
            encode_file(&path, vocab, level)?,
        ),
        Source::Dir { valid, test, .. } => {
            let path = match (opts.split.as_deref(), test) {
                (Some("valid"), _) | (None, None) => valid,
                (Some("test") | None, Some(t)) => t,
                (Some("test"), None) => {
                    return Err(AwdError::Config(format!(
                        "{} has no test.txt",
                        data.display()
                    )));
                }
                (Some(other), _) => {
                    return Err(AwdError::Config(format!(
                        "--split must be valid or test, not `{other}`"
                    )));
                }
            };
            (
                path.display().to_string(),
                encode_file(&path, vocab, level)?,
            )
        }
        Source::Docs {
            description,
            docs,
            is_valid,
            given,
        } => {
            let docs = match given {
                true => Source::split_docs(&docs, &is_valid).1,
                false => docs,
            };
            let mut ids = Vec::new();
            emit_docs(&docs, level, &mut |t: &str| ids.push(vocab.id(t)));
            (format!("{description} ({} documents)", docs.len()), ids)
        }
    };
    if lm.backwards {
        reverse_documents(&mut ids, vocab.id(crate::text::rules::BOS));
    }
    let unknown = ids.iter().filter(|&&i| i == UNK).count() as f64 / ids.len().max(1) as f64;
    if ids.is_empty() || unknown > 0.5 {
        return Err(AwdError::Config(format!(
            "the model's vocabulary does not fit {source}: {:.0}% of its tokens are unknown to the model (trained at {level:?} level, {} tokens)",
            100.0 * unknown,
            vocab.len()
        )));
    }
    let (b, t) = (opts.batch_size, opts.bptt);
    let loss = match opts.cache {
        Some(cache) => mean_loss_with_cache(&mut lm.model, &ids, b, t, cache, device)?,
        None => mean_loss(&mut lm.model, &ids, b, t, device)?,
    };
    Ok(Evaluation {
        source,
        tokens: ids.len(),
        loss,
    })
}
