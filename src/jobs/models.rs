//! Any model awd reads, loaded as what it is (a classifier or a language model) and described by
//! a card: what `awd serve` and the Python package hold.

use std::path::PathBuf;

use crate::checkpoint::export::{self, ExportKind};
use crate::device::Device;
use crate::error::{AwdError, Result};
use crate::jobs::classify::Classifiers;
use crate::jobs::lm::{LmSource, LoadedLm, load_lm};
use crate::kernels::PrecisionChoice;

/// Where a served model comes from.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The name requests address it by.
    pub name: String,
    /// An awd run directory or model file, a fastai `export.pkl`, or a fastai `.pth`.
    pub path: PathBuf,
    /// A `.pth`'s vocabulary pickle.
    pub vocab: Option<PathBuf>,
    /// A fastai classifier `.pth`'s classes (given: the `.pth` is a classifier).
    pub classes: Vec<String>,
}

impl ModelSpec {
    /// `NAME=PATH`, or `PATH` (named after its file: `export.pkl` → `export`).
    pub fn parse(arg: &str) -> Self {
        let (name, path) = match arg.split_once('=') {
            Some((n, p)) if !n.is_empty() && !n.contains('/') => (n.to_string(), PathBuf::from(p)),
            _ => {
                let p = PathBuf::from(arg);
                let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
                (stem.unwrap_or_else(|| "model".into()), p)
            }
        };
        Self {
            name,
            path,
            vocab: None,
            classes: Vec::new(),
        }
    }
}

/// A loaded model.
pub enum Loaded {
    Classifier(Classifiers),
    Lm(Box<LoadedLm>),
}

/// What `GET /v1/models` says of a model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelCard {
    pub name: String,
    pub kind: &'static str,
    pub source: String,
    pub vocab_size: usize,
    pub emb_size: usize,
    pub hidden_size: usize,
    pub layers: usize,
    pub classes: Vec<String>,
    pub multi_label: bool,
}

/// The kind of model at `spec`: a classifier or a language model.
fn is_classifier(spec: &ModelSpec) -> Result<bool> {
    let file = crate::checkpoint::model_file(&spec.path);
    if export::is_export(&file) {
        return Ok(export::read(&file)?.kind == ExportKind::Classifier);
    }
    if !spec.classes.is_empty() {
        return Ok(true);
    }
    let bytes = std::fs::read(&file).map_err(|e| AwdError::io(&file, e))?;
    let tagged = safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, h)| {
            crate::checkpoint::read_awd_metadata(
                h.metadata().as_ref(),
                crate::classify::saved::FORMAT,
            )
        });
    Ok(tagged.is_some())
}

/// Loads the model `spec` names, its products in `precision`.
pub fn load(
    spec: &ModelSpec,
    precision: PrecisionChoice,
    device: &Device,
) -> Result<(Loaded, ModelCard)> {
    let source = spec.path.display().to_string();
    if is_classifier(spec)? {
        let fastai = spec.vocab.as_deref().map(|v| (v, &spec.classes[..]));
        let mut clas = Classifiers::load(std::slice::from_ref(&spec.path), fastai, device)?;
        let (model, info) = &mut clas.models[0];
        model.parts.encoder.precision = precision.resolve();
        let e = &info.config.encoder;
        let card = ModelCard {
            name: spec.name.clone(),
            kind: "classifier",
            source,
            vocab_size: e.vocab_size,
            emb_size: e.emb_size,
            hidden_size: e.hidden_size,
            layers: e.n_layers,
            classes: info.classes.clone(),
            multi_label: info.config.multi_label,
        };
        return Ok((Loaded::Classifier(clas), card));
    }
    let lm_source = LmSource {
        path: spec.path.clone(),
        vocab: spec.vocab.clone(),
        precision,
        ..Default::default()
    };
    let lm = load_lm(&lm_source, device)?;
    let c = lm.model.config();
    let card = ModelCard {
        name: spec.name.clone(),
        kind: "language_model",
        source,
        vocab_size: c.vocab_size,
        emb_size: c.emb_size,
        hidden_size: c.hidden_size,
        layers: c.n_layers,
        classes: Vec::new(),
        multi_label: false,
    };
    Ok((Loaded::Lm(Box::new(lm)), card))
}

/// Refuses two models of one name.
pub fn check_names(specs: &[ModelSpec]) -> Result<()> {
    if specs.is_empty() {
        return Err(AwdError::Config(
            "give a model to serve: --model PATH or --model NAME=PATH".into(),
        ));
    }
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(AwdError::Config(format!(
                "two models are named `{}`: name them with --model NAME=PATH",
                s.name
            )));
        }
    }
    Ok(())
}
