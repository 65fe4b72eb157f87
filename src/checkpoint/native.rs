//! awd's own model files: one safetensors file whose tensors carry fastai's names and whose
//! header metadata holds the configuration and the vocabulary (JSON). Written atomically.

use std::path::Path;

use burn::tensor::Device;

use super::fastai;
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::{AwdLstmConfig, LanguageModel};

const FORMAT: &str = "awd-lstm-lm/1";

/// What a model file holds besides the tensors.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub vocab: Vec<String>,
    /// Free-form JSON (tokenizer settings, training summary).
    pub extra: serde_json::Value,
}

/// Writes `model` with its configuration and vocabulary to `path`, atomically.
pub fn save(path: &Path, model: &LanguageModel, info: &ModelInfo) -> Result<()> {
    let header = serde_json::json!({
        "format": FORMAT,
        "config": model.config(),
        "vocab": info.vocab,
        "extra": info.extra,
    });
    let tensors = fastai::to_state_dict(model);
    let bytes = super::safetensors::serialize(&tensors, Some(super::awd_metadata(&header)))?;
    super::write_atomic(path, &bytes)
}

/// A model to evaluate or sample from: an awd model file (or run directory), or — with the
/// vocabulary pickle `vocab` it came with — a fastai language model's weights (`.pth` or
/// `.safetensors`, sizes read from the tensors), reading text with fastai's tokenization.
pub fn load_with_vocab(
    path: &Path,
    vocab: Option<&Path>,
    masks: &Masks,
    device: &Device,
) -> Result<(LanguageModel, ModelInfo)> {
    if super::export::is_export(path) {
        return load_export(path, masks, device);
    }
    let Some(vocab_path) = vocab else {
        return load(path, masks, device);
    };
    let model = fastai::load(path, None, masks, device)?;
    let vocab = crate::data::fastai_vocab::read_pickle(vocab_path)?;
    let rows = model.config().vocab_size;
    if vocab.len() != rows {
        return Err(AwdError::checkpoint(
            vocab_path,
            format!(
                "{} tokens, but the weights in {} have {rows} embedding rows: not the vocabulary \
                 these weights were trained with",
                vocab.len(),
                path.display()
            ),
        ));
    }
    let extra = serde_json::json!({ "level": "fastai", "specials": "fastai" });
    Ok((
        model,
        ModelInfo {
            vocab: vocab.itos().to_vec(),
            extra,
        },
    ))
}

/// A fastai `export.pkl` of a `language_model_learner`: its weights and vocabulary, reading text
/// with fastai's tokenization.
fn load_export(path: &Path, masks: &Masks, device: &Device) -> Result<(LanguageModel, ModelInfo)> {
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    let e = super::export::read(path)?;
    if e.kind != super::export::ExportKind::LanguageModel {
        return Err(bad(
            "a text classifier learner's export: classify with it (awd classify predict, awd serve)".into(),
        ));
    }
    let config = fastai::infer_config(&e.tensors).map_err(|x| bad(x.to_string()))?;
    if e.vocab.len() != config.vocab_size {
        return Err(bad(format!(
            "its embedding has {} rows, its vocabulary {} tokens",
            config.vocab_size,
            e.vocab.len()
        )));
    }
    let model = fastai::from_state_dict(&e.tensors, &config, masks, device)
        .map_err(|x| bad(x.to_string()))?;
    let extra = serde_json::json!({
        "level": "fastai", "specials": "fastai", "backwards": e.backwards, "seq_len": e.seq_len,
    });
    Ok((
        model,
        ModelInfo {
            vocab: e.vocab,
            extra,
        },
    ))
}

/// Reads a model file written by [`save`]; a run directory (as `awd train` prints it) stands
/// for its model file.
pub fn load(path: &Path, masks: &Masks, device: &Device) -> Result<(LanguageModel, ModelInfo)> {
    let path = &super::model_file(path);
    if super::export::is_export(path) {
        return load_export(path, masks, device);
    }
    let bytes = std::fs::read(path).map_err(|e| AwdError::io(path, e))?;
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    // PyTorch's `.pth` files are zip archives.
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(bad(format!(
            "a PyTorch checkpoint (.pth, e.g. a fastai model), not an awd model file: give its \
             vocabulary with --vocab VOCAB.pkl, or convert the weights with \
             `awd convert {} model.safetensors` (its vocabulary is not inside it)",
            path.display()
        )));
    }
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a readable safetensors file ({e})")))?;
    let meta = super::read_awd_metadata(header.metadata().as_ref(), FORMAT).ok_or_else(|| {
        bad(format!(
            "not an awd model file (no `{FORMAT}` format tag); a fastai checkpoint can be converted with `awd convert`"
        ))
    })?;
    let field = |k: &str| {
        meta.get(k)
            .cloned()
            .ok_or_else(|| bad(format!("metadata `{k}` missing")))
    };
    let config: AwdLstmConfig = serde_json::from_value(field("config")?)
        .map_err(|e| bad(format!("metadata `config`: {e}")))?;
    let vocab: Vec<String> = serde_json::from_value(field("vocab")?)
        .map_err(|e| bad(format!("metadata `vocab`: {e}")))?;
    let extra = meta.get("extra").cloned().unwrap_or_default();
    if !vocab.is_empty() && vocab.len() != config.vocab_size {
        return Err(bad(format!(
            "vocabulary has {} words, the model {}",
            vocab.len(),
            config.vocab_size
        )));
    }
    let tensors = super::safetensors::parse(&bytes).map_err(bad)?;
    let model = fastai::from_state_dict(&tensors, &config, masks, device)
        .map_err(|e| bad(e.to_string()))?;
    Ok((model, ModelInfo { vocab, extra }))
}
