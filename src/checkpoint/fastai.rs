//! fastai AWD-LSTM language-model state dicts: names, configuration from shapes, in and out.
//!
//! fastai's `state_dict` of `get_language_model(AWD_LSTM, ...)` names the trained tensors
//! `0.encoder.weight`, `0.rnns.{l}.weight_hh_l0_raw`, `0.rnns.{l}.module.{weight_ih_l0,bias_ih_l0,
//! bias_hh_l0}`, `1.decoder.bias`, and repeats the embedding as `0.encoder_dp.emb.weight` (the
//! embedding dropout holds the same module) and, tied, as `1.decoder.weight`. awd's
//! [`LanguageModel`] paths are exactly the trained names; the two aliases are added on the way out
//! and checked on the way in.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;

use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::{AwdLstmConfig, LanguageModel};
use crate::params::{HostTensor, load_values, named_values};

const EMBEDDING: &str = "0.encoder.weight";
const EMBEDDING_DP_ALIAS: &str = "0.encoder_dp.emb.weight";
const DECODER_WEIGHT: &str = "1.decoder.weight";

const DECODER_BIAS: &str = "1.decoder.bias";

/// fastai's `match_embeds`: the pretrained `tensors` (trained with `old` vocabulary) rewritten
/// for the `new` one. A token of the new vocabulary found in the old takes its embedding row and
/// decoder bias (a token the old list holds twice, like `xxfake`, its last row, as fastai's
/// `{w: i}` dict makes it); a new token takes the mean row and the mean bias. The embedding's
/// aliases (the dropout's copy when present, the decoder weight) are set to the same rows.
pub fn match_embeds(
    tensors: &mut BTreeMap<String, HostTensor>,
    old: &[String],
    new: &[String],
) -> Result<()> {
    let emb = tensors
        .get(EMBEDDING)
        .ok_or_else(|| AwdError::Shape(format!("the weights have no `{EMBEDDING}`")))?;
    let [rows, e] = emb.shape[..] else {
        return Err(AwdError::Shape(format!(
            "`{EMBEDDING}` is not a matrix: {:?}",
            emb.shape
        )));
    };
    if rows != old.len() {
        return Err(AwdError::Shape(format!(
            "`{EMBEDDING}` has {rows} rows but the pretrained vocabulary {} tokens",
            old.len()
        )));
    }
    let old_id: std::collections::HashMap<&str, usize> = old
        .iter()
        .enumerate()
        .map(|(i, w)| (w.as_str(), i))
        .collect();
    let mean_row: Vec<f32> = (0..e)
        .map(|j| (0..rows).map(|i| emb.values[i * e + j] as f64).sum::<f64>() / rows as f64)
        .map(|m| m as f32)
        .collect();
    let mut values = Vec::with_capacity(new.len() * e);
    for w in new {
        match old_id.get(w.as_str()) {
            Some(&i) => values.extend_from_slice(&emb.values[i * e..(i + 1) * e]),
            None => values.extend_from_slice(&mean_row),
        }
    }
    let matched = HostTensor::new(vec![new.len(), e], values);
    if let Some(bias) = tensors.get(DECODER_BIAS) {
        let mean = (bias.values.iter().map(|&b| b as f64).sum::<f64>() / rows as f64) as f32;
        let values = new
            .iter()
            .map(|w| old_id.get(w.as_str()).map_or(mean, |&i| bias.values[i]))
            .collect();
        tensors.insert(
            DECODER_BIAS.into(),
            HostTensor::new(vec![new.len()], values),
        );
    }
    if tensors.contains_key(EMBEDDING_DP_ALIAS) {
        tensors.insert(EMBEDDING_DP_ALIAS.into(), matched.clone());
    }
    tensors.insert(DECODER_WEIGHT.into(), matched.clone());
    tensors.insert(EMBEDDING.into(), matched);
    Ok(())
}

/// Reads a checkpoint's tensors, choosing the format by extension (`.pth`/`.pt`/`.bin`: PyTorch,
/// `.safetensors`).
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    match extension(path).as_str() {
        "pth" | "pt" | "bin" => super::pth::read(path),
        "safetensors" => super::safetensors::read(path),
        other => Err(AwdError::checkpoint(
            path,
            format!("unknown format `.{other}` (use .pth, .pt or .safetensors)"),
        )),
    }
}

/// The encoder alone as fastai's `save_encoder` writes it (`get_model(model)[0].state_dict()`:
/// the language model's `0.*` tensors without the `0.` — `encoder.weight`,
/// `encoder_dp.emb.weight`, `rnns.{l}.weight_hh_l0_raw`, `rnns.{l}.module.*`), which fastai's
/// `load_encoder` and a text classifier take.
pub fn encoder_state_dict(model: &LanguageModel) -> BTreeMap<String, HostTensor> {
    to_state_dict(model)
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("0.").map(|k| (k.to_string(), v)))
        .collect()
}

/// Writes tensors in the format the extension names, atomically.
pub fn write_tensors(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    match extension(path).as_str() {
        "pth" | "pt" => super::pth::write(path, tensors),
        "safetensors" => super::safetensors::write(path, tensors),
        other => Err(AwdError::checkpoint(
            path,
            format!("unknown format `.{other}` (use .pth, .pt or .safetensors)"),
        )),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The configuration a fastai state dict was made with, from its names and shapes (dropouts are
/// not stored: fastai's defaults are used).
pub fn infer_config(tensors: &BTreeMap<String, HostTensor>) -> Result<AwdLstmConfig> {
    let shape_of = |k: &str| {
        tensors.get(k).map(|t| t.shape.clone()).ok_or_else(|| {
            AwdError::Config(format!(
                "not a fastai AWD-LSTM language model: `{k}` is missing (keys: {})",
                summarize(tensors.keys())
            ))
        })
    };
    let emb = shape_of(EMBEDDING)?;
    if emb.len() != 2 {
        return Err(AwdError::Shape(format!(
            "{EMBEDDING} has shape {emb:?}, expected [vocab, emb]"
        )));
    }
    let n_layers = (0..)
        .take_while(|l| tensors.contains_key(&format!("0.rnns.{l}.weight_hh_l0_raw")))
        .count();
    if n_layers == 0 {
        return Err(AwdError::Config(
            "not a fastai AWD-LSTM language model: no `0.rnns.0.weight_hh_l0_raw`".into(),
        ));
    }
    let bidirectional = tensors.contains_key("0.rnns.0.module.weight_ih_l0_reverse");
    let dirs = if bidirectional { 2 } else { 1 };
    let hidden_size = if n_layers > 1 {
        shape_of("0.rnns.0.weight_hh_l0_raw")?[1] * dirs
    } else {
        emb[1]
    };
    let tie_weights = match tensors.get(DECODER_WEIGHT) {
        None => true,
        Some(w) => w == &tensors[EMBEDDING],
    };
    let config = AwdLstmConfig {
        vocab_size: emb[0],
        emb_size: emb[1],
        hidden_size,
        n_layers,
        bidirectional,
        tie_weights,
        out_bias: tensors.contains_key("1.decoder.bias"),
        ..AwdLstmConfig::default()
    };
    config.validate()?;
    Ok(config)
}

/// The model's tensors under fastai's names, aliases included.
pub fn to_state_dict(model: &LanguageModel) -> BTreeMap<String, HostTensor> {
    let mut out: BTreeMap<String, HostTensor> = named_values(model).into_iter().collect();
    if let Some(emb) = out.get(EMBEDDING).cloned() {
        out.insert(EMBEDDING_DP_ALIAS.into(), emb.clone());
        if model.config().tie_weights {
            out.insert(DECODER_WEIGHT.into(), emb);
        }
    }
    out
}

/// Builds a model from a fastai state dict: `config` gives the dropouts (the sizes must agree with
/// the tensors). Missing, unexpected and misshapen keys are all listed in one error.
pub fn from_state_dict(
    tensors: &BTreeMap<String, HostTensor>,
    config: &AwdLstmConfig,
    masks: &Masks,
    device: &Device,
) -> Result<LanguageModel> {
    let model = LanguageModel::new(config, masks, device)?;
    let expected: BTreeMap<String, HostTensor> = to_state_dict(&model);
    let unexpected: Vec<&String> = tensors
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let mut problems: Vec<String> = unexpected
        .iter()
        .map(|k| format!("{k}: unexpected"))
        .collect();
    for (alias, of) in [(EMBEDDING_DP_ALIAS, EMBEDDING), (DECODER_WEIGHT, EMBEDDING)] {
        if (config.tie_weights || alias == EMBEDDING_DP_ALIAS)
            && let (Some(a), Some(e)) = (tensors.get(alias), tensors.get(of))
            && a != e
        {
            problems.push(format!("{alias}: differs from {of}, which it must repeat"));
        }
    }
    let trained: BTreeMap<String, HostTensor> = tensors
        .iter()
        .filter(|(k, _)| expected.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let loaded = load_values(model, &trained);
    match (loaded, problems.is_empty()) {
        (Ok(m), true) => Ok(m),
        (Ok(_), false) => Err(AwdError::Shape(problems.join("; "))),
        (Err(e), _) => {
            problems.insert(0, e.to_string());
            Err(AwdError::Shape(problems.join("; ")))
        }
    }
}

/// Loads a fastai checkpoint file, inferring the sizes; dropouts from `dropouts` if given.
pub fn load(
    path: &Path,
    dropouts: Option<&AwdLstmConfig>,
    masks: &Masks,
    device: &Device,
) -> Result<LanguageModel> {
    let tensors = read_tensors(path)?;
    let mut config =
        infer_config(&tensors).map_err(|e| AwdError::checkpoint(path, e.to_string()))?;
    if let Some(d) = dropouts {
        config.output_p = d.output_p;
        config.hidden_p = d.hidden_p;
        config.input_p = d.input_p;
        config.embed_p = d.embed_p;
        config.weight_p = d.weight_p;
        config.pad_token = d.pad_token;
    }
    from_state_dict(&tensors, &config, masks, device)
        .map_err(|e| AwdError::checkpoint(path, e.to_string()))
}

fn summarize<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<&String> = keys.collect();
    let shown: Vec<&str> = keys.iter().take(8).map(|k| k.as_str()).collect();
    if keys.len() > 8 {
        format!("{}, ... ({} in all)", shown.join(", "), keys.len())
    } else {
        shown.join(", ")
    }
}
