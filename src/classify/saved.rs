//! The classifier's files: awd's model file (one safetensors file, fastai's names, the
//! configuration, vocabulary and classes in its header), and the encoders a classifier starts
//! from (a fine-tuned run, an awd model file, or fastai's `save_encoder` / language-model `.pth`
//! with its vocabulary pickle).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::checkpoint::export::{self, ExportKind};
use crate::checkpoint::model_file;
use crate::checkpoint::{fastai, native};
use crate::data::{Vocab, fastai_vocab};
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::{AwdLstmConfig, ClassifierConfig, TextClassifier};
use crate::params::HostTensor;

/// The format tag of awd's classifier files.
pub const FORMAT: &str = "awd-text-classifier/1";

/// What a classifier file holds besides its tensors.
#[derive(Debug, Clone)]
pub struct ClassifierInfo {
    pub config: ClassifierConfig,
    pub vocab: Vocab,
    pub classes: Vec<String>,
    /// Reads each document backwards (fastai's `backwards=True`).
    pub backwards: bool,
    /// A multi-label prediction's threshold.
    pub threshold: f64,
}

/// Writes the classifier and what it needs to read text, atomically.
pub fn save(path: &Path, model: &TextClassifier, info: &ClassifierInfo) -> Result<()> {
    let header = serde_json::json!({
        "format": FORMAT,
        "config": info.config,
        "vocab": info.vocab.itos(),
        "classes": info.classes,
        "backwards": info.backwards,
        "threshold": info.threshold,
    });
    let bytes = crate::checkpoint::safetensors::serialize(
        &model.state_dict(),
        Some(crate::checkpoint::awd_metadata(&header)),
    )?;
    crate::checkpoint::write_atomic(path, &bytes)
}

/// Reads a classifier written by [`save`] (a run directory stands for its model file), or —
/// given `fastai` = (its vocabulary pickle, its classes) — a fastai classifier's `.pth`
/// (`get_text_classifier`'s state dict; sizes read from the tensors; classes `0`, `1`, ... when
/// none are named).
pub fn load(
    path: &Path,
    fastai: Option<(&Path, &[String])>,
    masks: &Masks,
    device: &Device,
) -> Result<(TextClassifier, ClassifierInfo)> {
    let path = &model_file(path);
    if export::is_export(path) {
        return load_export(path, masks, device);
    }
    if let Some((vocab, classes)) = fastai {
        return load_fastai(path, vocab, classes, masks, device);
    }
    let bytes = std::fs::read(path).map_err(|e| AwdError::io(path, e))?;
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(bad(
            "a PyTorch checkpoint (a fastai classifier?): give its vocabulary with --vocab VOCAB.pkl".into(),
        ));
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
    let meta = crate::checkpoint::read_awd_metadata(header.metadata().as_ref(), FORMAT)
        .ok_or_else(|| {
            bad(format!(
                "not an awd text classifier (no `{FORMAT}` format tag)"
            ))
        })?;
    let field = |k: &str| {
        meta.get(k)
            .cloned()
            .ok_or_else(|| bad(format!("metadata `{k}` missing")))
    };
    let config: ClassifierConfig = serde_json::from_value(field("config")?)
        .map_err(|e| bad(format!("metadata `config`: {e}")))?;
    let vocab: Vec<String> = serde_json::from_value(field("vocab")?)
        .map_err(|e| bad(format!("metadata `vocab`: {e}")))?;
    let classes: Vec<String> = serde_json::from_value(field("classes")?)
        .map_err(|e| bad(format!("metadata `classes`: {e}")))?;
    let backwards = meta
        .get("backwards")
        .and_then(|b| b.as_bool())
        .unwrap_or(false);
    let threshold = meta
        .get("threshold")
        .and_then(|t| t.as_f64())
        .unwrap_or(0.5);
    let tensors = crate::checkpoint::safetensors::parse(&bytes).map_err(bad)?;
    let model = TextClassifier::from_state_dict(&tensors, &config, masks, device)
        .map_err(|e| bad(e.to_string()))?;
    let info = ClassifierInfo {
        config,
        vocab: Vocab::from_itos(vocab),
        classes,
        backwards,
        threshold,
    };
    Ok((model, info))
}

/// A fastai `export.pkl` of a `text_classifier_learner`: its weights, vocabulary, classes and
/// `SentenceEncoder` settings.
fn load_export(
    path: &Path,
    masks: &Masks,
    device: &Device,
) -> Result<(TextClassifier, ClassifierInfo)> {
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    let e = export::read(path)?;
    if e.kind != ExportKind::Classifier {
        return Err(bad(
            "a language model learner's export: it generates and scores text (awd eval, awd generate), it does not classify".into(),
        ));
    }
    let mut config = ClassifierConfig::infer(&e.tensors).map_err(|x| bad(x.to_string()))?;
    config.bptt = e.bptt.unwrap_or(config.bptt);
    config.max_len = e.max_len.unwrap_or(config.max_len);
    config.multi_label = e.multi_label;
    if e.vocab.len() != config.encoder.vocab_size || e.classes.len() != config.n_classes {
        return Err(bad(format!(
            "its model has {} embedding rows and {} outputs, its data pipeline {} tokens and {} classes",
            config.encoder.vocab_size,
            config.n_classes,
            e.vocab.len(),
            e.classes.len()
        )));
    }
    let model = TextClassifier::from_state_dict(&e.tensors, &config, masks, device)
        .map_err(|x| bad(x.to_string()))?;
    let info = ClassifierInfo {
        config,
        vocab: Vocab::from_itos(e.vocab),
        classes: e.classes,
        backwards: e.backwards,
        threshold: e.threshold,
    };
    Ok((model, info))
}

fn load_fastai(
    path: &Path,
    vocab: &Path,
    classes: &[String],
    masks: &Masks,
    device: &Device,
) -> Result<(TextClassifier, ClassifierInfo)> {
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    let tensors = fastai::read_tensors(path)?;
    let config = ClassifierConfig::infer(&tensors).map_err(|e| bad(e.to_string()))?;
    let vocab = fastai_vocab::read_pickle(vocab)?;
    if vocab.len() != config.encoder.vocab_size {
        return Err(bad(format!(
            "its embedding has {} rows, the vocabulary {} tokens",
            config.encoder.vocab_size,
            vocab.len()
        )));
    }
    let classes: Vec<String> = if classes.is_empty() {
        (0..config.n_classes).map(|c| c.to_string()).collect()
    } else {
        classes.to_vec()
    };
    if classes.len() != config.n_classes {
        return Err(bad(format!(
            "its head has {} outputs, but {} classes were named",
            config.n_classes,
            classes.len()
        )));
    }
    let model = TextClassifier::from_state_dict(&tensors, &config, masks, device)
        .map_err(|e| bad(e.to_string()))?;
    let info = ClassifierInfo {
        config,
        vocab,
        classes,
        backwards: false,
        threshold: 0.5,
    };
    Ok((model, info))
}

/// A pretrained encoder: its tensors in `save_encoder`'s names, its vocabulary and sizes.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub source: PathBuf,
    pub tensors: BTreeMap<String, HostTensor>,
    pub vocab: Vocab,
    pub config: AwdLstmConfig,
    /// Trained on documents read backwards.
    pub backwards: bool,
}

/// Reads the encoder `path` names: a fine-tuning run's directory (its `encoder.pth` and
/// `itos.pkl`, or its model file), an awd model file, or fastai's `save_encoder` `.pth` or
/// language-model weights with their vocabulary pickle (`vocab`, else the one `.pkl` beside them).
pub fn read_encoder(path: &Path, vocab: Option<&Path>) -> Result<Encoder> {
    if path.is_dir() {
        let (enc, pkl) = (path.join("encoder.pth"), path.join("itos.pkl"));
        if enc.is_file() && vocab.is_none() && pkl.is_file() {
            let mut e = read_encoder(&enc, Some(&pkl))?;
            e.backwards = run_backwards(path);
            return Ok(e);
        }
        return read_encoder(&model_file(path), vocab);
    }
    let is_awd = path.extension().is_some_and(|e| e == "safetensors") && vocab.is_none();
    if is_awd {
        let (model, info) = native::load(path, &Masks::default(), &crate::device::cpu())?;
        let backwards = info.extra["backwards"].as_bool().unwrap_or(false);
        let config = model.config().clone();
        return Ok(Encoder {
            source: path.to_path_buf(),
            tensors: fastai::encoder_state_dict(&model),
            vocab: Vocab::from_itos(info.vocab),
            config,
            backwards,
        });
    }
    let vocab_path = match vocab {
        Some(v) => v.to_path_buf(),
        None => beside(path)?,
    };
    let mut tensors = fastai::read_tensors(path)?;
    // A language model's weights: the encoder is its `0.*`.
    if tensors.keys().any(|k| k.starts_with("0.")) {
        tensors = tensors
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("0.").map(|k| (k.to_string(), v)))
            .collect();
    }
    let as_lm: BTreeMap<String, HostTensor> = tensors
        .iter()
        .map(|(k, v)| (format!("0.{k}"), v.clone()))
        .collect();
    let config = fastai::infer_config(&as_lm)
        .map_err(|e| AwdError::checkpoint(path, format!("not an AWD-LSTM encoder: {e}")))?;
    let vocab = fastai_vocab::read_pickle(&vocab_path)?;
    if vocab.len() != config.vocab_size {
        return Err(AwdError::checkpoint(
            path,
            format!(
                "its embedding has {} rows but the vocabulary {} has {} tokens: not the vocabulary it was trained with",
                config.vocab_size,
                vocab_path.display(),
                vocab.len()
            ),
        ));
    }
    Ok(Encoder {
        source: path.to_path_buf(),
        tensors,
        vocab,
        config,
        backwards: false,
    })
}

/// Whether the run in `dir` trained a backward model (its model file says so).
fn run_backwards(dir: &Path) -> bool {
    let Ok(bytes) = std::fs::read(model_file(dir)) else {
        return false;
    };
    safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, h)| {
            let text = h.metadata().as_ref()?.get("awd")?.clone();
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["extra"]["backwards"].as_bool()
        })
        .unwrap_or(false)
}

/// The vocabulary pickle beside `weights`: `itos.pkl`, else the only `.pkl` there.
fn beside(weights: &Path) -> Result<PathBuf> {
    let dir = weights
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let itos = dir.join("itos.pkl");
    if itos.is_file() {
        return Ok(itos);
    }
    let pkls: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| AwdError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pkl"))
        .collect();
    match &pkls[..] {
        [one] => Ok(one.clone()),
        _ => Err(AwdError::Config(format!(
            "{} needs its vocabulary: --vocab VOCAB.pkl (no single .pkl beside it)",
            weights.display()
        ))),
    }
}
