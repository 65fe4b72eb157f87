//! Training as a user asks for it: a language model (from scratch or fine-tuned from a fastai
//! model) or a classifier (from a fine-tuned encoder or none), new or resumed, as a
//! [`Learner`](crate::train::Learner) ready to `run`.

use std::path::{Path, PathBuf};

use crate::classify::data::read_raw;
use crate::classify::job::{ClasRun, ClassifierTrainer};
use crate::classify::saved::read_encoder;
use crate::classify::{ClassifyConfig, LabelOptions, Labelled};
use crate::data::download::PublicData;
use crate::data::{Dataset, Level, Specials, Vocab};
use crate::error::{AwdError, Result};
use crate::train::lm_job::LmRun;
use crate::train::pretrained::Pretrained;
use crate::train::state::Checkpoint;
use crate::train::{
    Outcome, Prepared, Preset, RunOptions, TrainConfig, TrainFlags, Trainer, state,
};

/// A language model to train: the hyper-parameters (a preset, a TOML file over it, flags over
/// both), the text, and the pretrained model to fine-tune if any.
#[derive(Debug, Clone, Default)]
pub struct LmTraining {
    pub preset: Preset,
    pub config_file: Option<PathBuf>,
    pub flags: TrainFlags,
    /// A text file, a directory (train/valid/test.txt, or `.txt` documents) or a CSV; with
    /// neither this nor `dataset`, awd's built-in grammar corpus.
    pub data: Option<PathBuf>,
    /// A public data set, downloaded once and cached.
    pub dataset: Option<PublicData>,
    /// fastai weights (`.pth`), a directory holding them with their vocabulary, or a model name.
    pub pretrained: Option<PathBuf>,
    pub pretrained_vocab: Option<PathBuf>,
}

/// A run ready to start, and what the user may want to read about it.
pub struct Started<L> {
    pub learner: L,
    /// One line each: the data, the pretrained model, the precision, ...
    pub notes: Vec<String>,
}

impl LmTraining {
    /// The run's configuration: the preset, the file over it, the flags over both.
    pub fn config(&self) -> Result<TrainConfig> {
        let mut cfg = self.preset.config();
        if let Some(path) = &self.config_file {
            cfg = TrainConfig::from_toml_file(path, cfg)?;
        }
        self.flags.apply(&mut cfg);
        Ok(cfg)
    }

    /// The text, read at `cfg`'s level (a public data set sets its own unless a flag says).
    fn dataset(&self, cfg: &mut TrainConfig) -> Result<Dataset> {
        let path = match (&self.data, self.dataset) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(public)) => {
                if self.flags.level.is_none() {
                    cfg.level = public.level();
                    if cfg.level == Level::Fastai && self.flags.specials.is_none() {
                        cfg.specials = Specials::Fastai;
                    }
                }
                Some(public.fetch()?)
            }
            (None, None) => None,
        };
        cfg.dataset(path.as_deref())
    }
}

/// A new language-model run of `spec` in the prepared directory.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use awd::jobs::train::{LmTraining, new_lm};
/// use awd::train::{Outcome, RunOptions, TrainFlags};
/// let dir = tempfile::tempdir()?;
/// let opts = RunOptions::quiet(dir.path().join("run"), awd::device::cpu_autodiff());
/// let flags = TrainFlags { max_steps: Some(3), ..Default::default() };
/// let spec = LmTraining { flags, ..Default::default() }; // the tiny preset, awd's grammar
/// let mut run = new_lm(&spec, opts.prepare(false)?)?.learner;
/// let Outcome::Finished(summary) = run.run()? else { unreachable!() };
/// assert_eq!(summary.fit.steps, 3);
/// assert!(summary.model_path.exists());
/// # Ok(()) }
/// ```
pub fn new_lm(spec: &LmTraining, opts: Prepared) -> Result<Started<Trainer>> {
    let mut cfg = spec.config()?;
    let pretrained = match &spec.pretrained {
        Some(p) => {
            let pre = Pretrained::locate(p, spec.pretrained_vocab.as_deref())?;
            pre.configure(&mut cfg, &spec.flags.model)?;
            Some(pre)
        }
        None => None,
    };
    let data = spec.dataset(&mut cfg)?;
    let mut notes = vec![format!(
        "training on {}: {} tokens, vocabulary {}, {} validation tokens",
        data.description,
        data.train.len(),
        data.vocab.len(),
        data.valid.len()
    )];
    if cfg.backwards {
        notes.push("each document is read backwards, for a backward model".into());
    }
    if let Some(p) = &pretrained {
        notes.push(format!(
            "from {}: {} of the {} tokens are in its vocabulary of {}; the others start at the mean embedding",
            p.weights.display(),
            p.known(&data.vocab),
            data.vocab.len(),
            p.vocab.len()
        ));
    }
    let learner = Trainer::new(cfg, data, opts, pretrained.as_ref())?;
    Ok(Started { learner, notes })
}

/// Continues the language-model run in `opts.out_dir` from its checkpoint, on the text `spec`
/// names (the text it started on; its hyper-parameters are the checkpoint's).
pub fn resume_lm(spec: &LmTraining, opts: RunOptions) -> Result<Started<Trainer>> {
    let (ck, run, note) = checkpoint::<LmRun>(&opts, "a classifier's", "awd classify train")?;
    let mut cfg = run.config;
    let data = spec.dataset(&mut cfg)?;
    let learner = Trainer::from_checkpoint(ck, data, opts)?;
    Ok(Started {
        learner,
        notes: vec![note],
    })
}

/// The checkpoint in `opts.out_dir`, the run it describes (a `R`, else an error naming the
/// `other` kind of run it holds and the `command` that continues it), and a note saying where it
/// resumes.
fn checkpoint<R: serde::de::DeserializeOwned>(
    opts: &RunOptions,
    other: &str,
    command: &str,
) -> Result<(Checkpoint, R, String)> {
    let ck = state::load(&opts.state_path())?;
    let dir = opts.out_dir.display();
    let run = serde_json::from_value(ck.job.clone()).map_err(|_| {
        AwdError::Config(format!(
            "{dir} holds {other} run: continue it with `{command} --resume`"
        ))
    })?;
    let p = &ck.progress;
    let note = format!("resuming {dir} at epoch {}, step {}", p.epoch + 1, p.step);
    Ok((ck, run, note))
}

/// Trains a language model to the end: a new run in `opts.out_dir` (refused where a run is
/// already, unless `overwrite`).
pub fn train_lm(spec: &LmTraining, opts: RunOptions, overwrite: bool) -> Result<Outcome> {
    new_lm(spec, opts.prepare(overwrite)?)?.learner.run()
}

/// A classifier to train: the hyper-parameters (fastai's ULMFiT recipe, a TOML file over it,
/// flags over both), the labelled documents and the encoder to start from.
#[derive(Debug, Clone)]
pub struct ClassifierTraining {
    pub config: ClassifyConfig,
    /// A CSV of texts and labels, or class folders.
    pub data: PathBuf,
    /// A fine-tuning run, an awd model file, or fastai's encoder / language model `.pth`.
    pub encoder: Option<PathBuf>,
    /// The vocabulary pickle of a `.pth` encoder.
    pub vocab: Option<PathBuf>,
    /// Read documents backwards (an awd encoder says so itself).
    pub backwards: bool,
}

/// A new classifier run of `spec` in `opts.out_dir` (claimed unless it holds a run and not
/// `overwrite`).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use awd::classify::ClassifyConfig;
/// use awd::jobs::train::{ClassifierTraining, new_classifier};
/// use awd::train::{Ended, RunOptions, Stage};
/// let dir = tempfile::tempdir()?;
/// let csv = dir.path().join("docs.csv");
/// let rows: String = (0..40).map(|i| format!("{},{} film\n", ["neg", "pos"][i % 2], ["awful", "great"][i % 2])).collect();
/// std::fs::write(&csv, format!("label,text\n{rows}"))?;
/// let mut config = ClassifyConfig::ulmfit();
/// (config.model.emb_size, config.model.hidden_size, config.model.n_layers) = (8, 16, 1);
/// (config.batch_size, config.stages) = (8, vec![Stage { epochs: 1, lr: 1e-2, lr_low: 0.0, groups: 0 }]);
/// let spec = ClassifierTraining { config, data: csv, encoder: None, vocab: None, backwards: false };
/// let opts = RunOptions::quiet(dir.path().join("run"), awd::device::cpu_autodiff());
/// let mut run = new_classifier(&spec, opts, false)?.learner;
/// let Ended::Finished(fit) = run.run()? else { unreachable!() };
/// assert!(fit.metrics.accuracy >= 0.0);
/// # Ok(()) }
/// ```
pub fn new_classifier(
    spec: &ClassifierTraining,
    opts: RunOptions,
    overwrite: bool,
) -> Result<Started<ClassifierTrainer>> {
    let cfg = spec.config.clone();
    cfg.validate()?;
    let encoder = spec
        .encoder
        .as_deref()
        .map(|e| read_encoder(e, spec.vocab.as_deref()))
        .transpose()?;
    let backwards = spec.backwards || encoder.as_ref().is_some_and(|e| e.backwards);
    let opts = opts.prepare(overwrite)?;
    let known = encoder.as_ref().map(|e| &e.vocab);
    let (data, vocab) = labelled(&spec.data, &cfg, known, backwards)?;
    let mut notes = vec![describe(&data)];
    notes.push(match &encoder {
        Some(e) => format!(
            "encoder from {}: vocabulary {}, {:.1}% of the tokens unknown to it{}",
            e.source.display(),
            e.vocab.len(),
            100.0 * data.unknown_share(),
            if backwards {
                "; documents read backwards"
            } else {
                ""
            }
        ),
        None => format!(
            "no encoder: the encoder starts untrained (vocabulary {} from these documents)",
            vocab.len()
        ),
    });
    let learner = ClassifierTrainer::new(cfg, data, vocab, encoder.as_ref(), backwards, opts)?;
    Ok(Started { learner, notes })
}

/// Continues the classifier run in `opts.out_dir` from its checkpoint, on `data` (the documents
/// it started on, read with the run's vocabulary; its hyper-parameters are the checkpoint's).
pub fn resume_classifier(data: &Path, opts: RunOptions) -> Result<Started<ClassifierTrainer>> {
    let (ck, run, note) = checkpoint::<ClasRun>(&opts, "a language model's", "awd train")?;
    let vocab = Vocab::from_itos(run.vocab.clone());
    let docs = labelled(data, &run.config, Some(&vocab), run.backwards)?.0;
    let notes = vec![describe(&docs), note];
    let learner = ClassifierTrainer::from_checkpoint(ck, run, docs, opts)?;
    Ok(Started { learner, notes })
}

/// The labelled documents at `path`, numericalized with `vocab` (else a vocabulary made from
/// them), split as `cfg` says where they do not.
fn labelled(
    path: &Path,
    cfg: &ClassifyConfig,
    vocab: Option<&Vocab>,
    backwards: bool,
) -> Result<(Labelled, Vocab)> {
    let columns = LabelOptions {
        text_col: &cfg.text_col,
        label_col: &cfg.label_col,
        valid_fraction: cfg.valid_fraction,
        seed: cfg.seed,
    };
    let raw = read_raw(path, &columns)?;
    let description = path.display().to_string();
    Labelled::new(&raw, vocab, backwards, cfg.multi_label, description)
}

fn describe(data: &Labelled) -> String {
    format!(
        "classifying {}: {} training and {} validation documents, {} classes ({})",
        data.description,
        data.train.len(),
        data.valid.len(),
        data.classes.len(),
        data.classes.join(", ")
    )
}
