//! fastai's `learn.export()` files read without Python: a PyTorch zip whose `data.pkl` pickles
//! the whole `Learner`. Its pickle is parsed into plain values (nothing in it runs), then the
//! model's `state_dict()`, the vocabulary, the classes and the tokenizer's settings are read off
//! the object tree. What awd cannot honor — another architecture, another tokenizer, a rule that
//! is not fastai's default — is refused, naming what was found.

pub mod objects;
pub mod pickle;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use objects::Objects;

use crate::error::{AwdError, Result};
use crate::params::HostTensor;

/// Which learner was exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportKind {
    /// `text_classifier_learner`: `SequentialRNN(SentenceEncoder(AWD_LSTM), PoolingLinearClassifier)`.
    Classifier,
    /// `language_model_learner`: `SequentialRNN(AWD_LSTM, LinearDecoder)`.
    LanguageModel,
}

/// fastai's default text rules, `defaults.text_proc_rules`, in order: the only rules awd applies.
pub const DEFAULT_RULES: [&str; 8] = [
    "fix_html",
    "replace_rep",
    "replace_wrep",
    "spec_add_spaces",
    "rm_useless_spaces",
    "replace_all_caps",
    "replace_maj",
    "lowercase",
];

/// fastai's special tokens, `defaults.text_spec_tok`.
pub const SPECIAL_TOKENS: [&str; 9] = [
    "xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj",
];

/// What an `export.pkl` holds that awd uses.
#[derive(Debug, Clone)]
pub struct FastaiExport {
    pub kind: ExportKind,
    /// `learn.model.state_dict()`, in PyTorch's names.
    pub tensors: BTreeMap<String, HostTensor>,
    /// `Numericalize`'s vocabulary.
    pub vocab: Vec<String>,
    /// `Categorize`'s classes (empty for a language model).
    pub classes: Vec<String>,
    /// `MultiCategorize`: each class a yes/no, chosen over `threshold`.
    pub multi_label: bool,
    pub threshold: f64,
    /// `SentenceEncoder`'s chunk length and pooled positions (a classifier's).
    pub bptt: Option<usize>,
    pub max_len: Option<usize>,
    /// The data loaders' sequence length.
    pub seq_len: Option<usize>,
    /// The tokenizer's rules (fastai's defaults) and special tokens.
    pub rules: Vec<String>,
    pub special_tokens: Vec<String>,
    /// Texts are read backwards (`reverse_text` in the pipeline).
    pub backwards: bool,
}

/// Whether `path` is a PyTorch zip whose pickle holds a fastai `Learner` (not a state dict).
pub fn is_export(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(mut zip) = zip::ZipArchive::new(f) else {
        return false;
    };
    let Some(name) = zip
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(String::from)
    else {
        return false;
    };
    let mut head = [0u8; 64];
    let Ok(mut entry) = zip.by_name(&name) else {
        return false;
    };
    let n = entry.read(&mut head).unwrap_or(0);
    let head = String::from_utf8_lossy(&head[..n]);
    head.contains("Learner")
}

/// Reads an `export.pkl`.
pub fn read(path: &Path) -> Result<FastaiExport> {
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    let objects = open(path).map_err(&bad)?;
    let learner = objects.pickle.root;
    let class = objects.class(learner).unwrap_or_default();
    if !class.ends_with("Learner") {
        return Err(bad(format!(
            "not a fastai export: its pickle holds `{class}`, not a Learner"
        )));
    }
    let model = objects
        .attr(learner, "model")
        .ok_or_else(|| bad("the learner has no model".into()))?;
    let name = |id: Option<usize>| {
        id.and_then(|i| objects.class(i))
            .unwrap_or_else(|| "nothing".into())
    };
    let (first, second) = (objects.child(model, "0"), objects.child(model, "1"));
    let (kind, encoder) = match (name(first).as_str(), name(second).as_str()) {
        (
            "fastai.text.models.core.SentenceEncoder",
            "fastai.text.models.core.PoolingLinearClassifier",
        ) => {
            let inner = first.and_then(|e| objects.child(e, "module"));
            (ExportKind::Classifier, name(inner))
        }
        (enc, "fastai.text.models.core.LinearDecoder") => {
            (ExportKind::LanguageModel, enc.to_string())
        }
        (a, b) => {
            return Err(bad(format!(
                "its model is `{}` of `{a}` and `{b}`: awd reads fastai's AWD-LSTM language models and text classifiers",
                name(Some(model))
            )));
        }
    };
    if encoder != "fastai.text.models.awdlstm.AWD_LSTM" {
        return Err(bad(format!(
            "its encoder is `{encoder}`: awd reads fastai's AWD_LSTM"
        )));
    }
    let tensors = objects
        .state_dict(model)
        .map_err(|e| bad(format!("the model's weights: {e}")))?;
    let (rules, special_tokens) = tokenizer(&objects).map_err(&bad)?;
    let vocab = objects
        .all_of("fastai.text.data.Numericalize")
        .into_iter()
        .find_map(|n| objects.attr(n, "vocab").and_then(|v| objects.strings(v)))
        .ok_or_else(|| bad("no `Numericalize` vocabulary in its data pipeline".into()))?;
    let multi = objects.all_of("fastai.data.transforms.MultiCategorize");
    let categorize = match multi.is_empty() {
        true => objects.all_of("fastai.data.transforms.Categorize"),
        false => multi.clone(),
    };
    let classes = categorize
        .iter()
        .find_map(|&c| objects.attr(c, "vocab").and_then(|v| labels(&objects, v)))
        .unwrap_or_default();
    if kind == ExportKind::Classifier && classes.is_empty() {
        return Err(bad(
            "a classifier without `Categorize` classes in its data pipeline".into(),
        ));
    }
    let threshold = objects
        .attr(learner, "loss_func")
        .and_then(|l| objects.attr(l, "thresh"))
        .and_then(|t| objects.float(t))
        .unwrap_or(0.5);
    let encoder_attr = |a: &str| {
        first
            .filter(|_| kind == ExportKind::Classifier)
            .and_then(|e| objects.attr(e, a))
            .and_then(|v| objects.int(v))
            .map(|v| v as usize)
    };
    let seq_len = [
        "fastai.text.data.Pad_Chunk",
        "fastai.text.data.LMDataLoader",
    ]
    .iter()
    .flat_map(|c| objects.all_of(c))
    .find_map(|o| objects.attr(o, "seq_len").and_then(|v| objects.int(v)))
    .map(|v| v as usize);
    Ok(FastaiExport {
        kind,
        tensors,
        vocab,
        classes,
        multi_label: !multi.is_empty(),
        threshold,
        bptt: encoder_attr("bptt"),
        max_len: encoder_attr("max_len"),
        seq_len,
        rules,
        special_tokens,
        backwards: !objects
            .globals_under("fastai.text.data.reverse_text")
            .is_empty(),
    })
}

/// The zip's pickle, parsed, and its storages.
fn open(path: &Path) -> std::result::Result<Objects, String> {
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip =
        zip::ZipArchive::new(f).map_err(|e| format!("not a PyTorch zip archive ({e})"))?;
    let names: Vec<String> = zip.file_names().map(String::from).collect();
    let pkl = names
        .iter()
        .find(|n| n.ends_with("/data.pkl") || *n == "data.pkl");
    let pkl = pkl.ok_or("no data.pkl in the archive")?.clone();
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut read = |name: &str| -> std::result::Result<Vec<u8>, String> {
        let mut entry = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut buf)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(buf)
    };
    let pickle = pickle::parse(&read(&pkl)?)?;
    let mut storages = BTreeMap::new();
    for n in &names {
        if let Some(key) = n.strip_prefix(&format!("{prefix}data/")) {
            storages.insert(key.to_string(), read(n)?);
        }
    }
    Ok(Objects { pickle, storages })
}

/// The tokenizer's rules and special tokens, refused unless awd tokenizes as they say.
fn tokenizer(o: &Objects) -> std::result::Result<(Vec<String>, Vec<String>), String> {
    let tok = o.all_of("fastai.text.core.Tokenizer");
    let &[tok, ..] = &tok[..] else {
        return Err("no fastai `Tokenizer` in its data pipeline".into());
    };
    let inner = o
        .attr(tok, "tok")
        .and_then(|t| o.class(t))
        .unwrap_or_else(|| "nothing".into());
    // awd's Python drop-in (`awd.SpacyTokenizer`, English only) splits as fastai's does.
    if !["fastai.text.core.SpacyTokenizer", "awd.SpacyTokenizer"].contains(&inner.as_str()) {
        return Err(format!(
            "its tokenizer is `{inner}`: awd tokenizes as fastai's SpacyTokenizer (English)"
        ));
    }
    let langs = o.globals_under("spacy.lang.");
    if let Some(other) = langs.iter().find(|g| !g.starts_with("spacy.lang.en.")) {
        return Err(format!(
            "its spaCy tokenizer is `{other}`: awd tokenizes English"
        ));
    }
    let rules = o
        .attr(tok, "rules")
        .and_then(|r| o.items(r))
        .ok_or("the tokenizer has no rules")?;
    let rules: Vec<String> = rules
        .iter()
        .map(|&r| {
            o.global(r)
                .unwrap_or_else(|| "a function pickled by value (a custom rule)".into())
        })
        .collect();
    let short: Vec<&str> = rules
        .iter()
        .map(|r| r.trim_start_matches("fastai.text.core."))
        .collect();
    if short != DEFAULT_RULES {
        return Err(format!(
            "its tokenizer's rules are [{}]: awd applies fastai's defaults [{}]",
            short.join(", "),
            DEFAULT_RULES.join(", ")
        ));
    }
    let specials = o.attr(o.attr(tok, "tok").expect("checked above"), "special_toks");
    let specials = specials
        .and_then(|s| o.strings(s))
        .unwrap_or_else(|| SPECIAL_TOKENS.map(String::from).to_vec());
    if specials != SPECIAL_TOKENS {
        return Err(format!(
            "its special tokens are {specials:?}: awd uses fastai's {SPECIAL_TOKENS:?}"
        ));
    }
    Ok((short.into_iter().map(String::from).collect(), specials))
}

/// Class labels as strings (fastai's `CategoryMap` may hold ints or strings).
fn labels(o: &Objects, id: usize) -> Option<Vec<String>> {
    let items = o.items(id)?;
    items
        .iter()
        .map(|&i| {
            o.str(i)
                .map(String::from)
                .or_else(|| o.int(i).map(|v| v.to_string()))
        })
        .collect()
}
