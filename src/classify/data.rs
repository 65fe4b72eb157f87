//! Labelled documents: a CSV (text and label columns; its `is_valid` column, where present,
//! splits it) or a folder per class (`train/<class>/*.txt`, with `valid/` or `test/` beside it as
//! IMDb is laid out); tokenized as fastai does, numericalized with the encoder's vocabulary, and
//! batched by similar lengths (fastai's `SortedDL`).

use std::path::{Path, PathBuf};

use crate::data::Vocab;
use crate::data::reader::{Columns, Documents, corpus, random_split, read_csv, read_text_file};
use crate::error::{AwdError, Result};

/// A tokenized, numericalized document and its classes (one, unless multi-label), sorted.
#[derive(Debug, Clone)]
pub struct Example {
    pub ids: Vec<u32>,
    pub labels: Vec<usize>,
}

/// A classification data set.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub description: String,
    /// Class names, sorted (fastai's `CategoryMap`).
    pub classes: Vec<String>,
    pub train: Vec<Example>,
    pub valid: Vec<Example>,
}

/// Where the columns are and how to split when the data does not say.
#[derive(Debug, Clone)]
pub struct LabelOptions<'a> {
    pub text_col: &'a str,
    pub label_col: &'a str,
    pub valid_fraction: f64,
    pub seed: u64,
}

/// Documents with their labels, before tokenization (as the shared reader gives them).
pub type RawLabelled = Documents;

/// Reads labelled documents from a CSV file or a directory of class folders; where the data
/// does not say which are held out, a seeded random share is (fastai's `RandomSplitter`).
pub fn read_raw(path: &Path, opts: &LabelOptions) -> Result<RawLabelled> {
    let mut raw = if path.is_dir() {
        read_folders(path)?
    } else if path.is_file() {
        let columns = Columns {
            text: opts.text_col,
            label: Some(opts.label_col),
        };
        read_csv(path, columns)?
    } else {
        return Err(AwdError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    };
    if raw.is_valid.is_empty() {
        raw.is_valid = random_split(path, raw.docs.len(), opts.valid_fraction, opts.seed)?;
    }
    Ok(raw)
}

/// `dir/train/<class>/*.txt` with `dir/valid/` or `dir/test/` laid out the same (the split), or
/// `dir/<class>/*.txt` (split at random).
fn read_folders(dir: &Path) -> Result<RawLabelled> {
    let mut raw = RawLabelled::default();
    let train = dir.join("train");
    if train.is_dir() {
        read_classes(&train, false, &mut raw)?;
        let valid = ["valid", "test"]
            .iter()
            .map(|v| dir.join(v))
            .find(|p| p.is_dir());
        if let Some(v) = valid {
            read_classes(&v, true, &mut raw)?;
        } else {
            raw.is_valid.clear();
        }
    } else {
        read_classes(dir, false, &mut raw)?;
        raw.is_valid.clear();
    }
    if raw.docs.is_empty() {
        return Err(corpus(
            dir,
            "holds no class folders with .txt documents (expected train/<class>/*.txt or <class>/*.txt)".into(),
        ));
    }
    Ok(raw)
}

fn read_classes(dir: &Path, valid: bool, raw: &mut RawLabelled) -> Result<()> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| AwdError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    for class in classes {
        let label = class
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&class)
            .map_err(|e| AwdError::io(&class, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for f in files {
            let text = read_text_file(&f)?;
            if text.trim().is_empty() {
                return Err(corpus(&f, "is empty".into()));
            }
            raw.docs.push(text);
            raw.labels.push(label.clone());
            raw.is_valid.push(valid);
            raw.names.push(f.display().to_string());
        }
    }
    Ok(())
}

/// What joins a multi-label document's labels (fastai's `label_delim`).
pub const LABEL_DELIM: char = ';';

/// fastai's tokens of each document (in parallel), as ids of `vocab`; each document reversed
/// for a backward model.
pub fn numericalize(docs: &[String], vocab: &Vocab, backwards: bool) -> Vec<Vec<u32>> {
    use rayon::prelude::*;
    docs.par_iter()
        .map(|d| ids(&crate::text::for_corpus(d), vocab, backwards))
        .collect()
}

fn ids(tokens: &[String], vocab: &Vocab, backwards: bool) -> Vec<u32> {
    let mut ids: Vec<u32> = tokens.iter().map(|t| vocab.id(t)).collect();
    if backwards {
        ids.reverse();
    }
    ids
}

/// fastai's vocabulary of the documents' tokens (`min_freq` 3, `max_vocab` 60000, counted in
/// first-seen order): a classifier's own when it has no pretrained encoder.
fn vocab_of(tokens: &[Vec<String>]) -> Vocab {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for t in tokens.iter().flatten() {
        match at.get(t.as_str()) {
            Some(&i) => counts[i].1 += 1,
            None => {
                at.insert(t, counts.len());
                counts.push((t, 1));
            }
        }
    }
    crate::data::fastai_vocab::make_vocab_counted(counts, 3, 60000)
}

impl Labelled {
    /// The share of all documents' tokens the vocabulary does not know.
    pub fn unknown_share(&self) -> f64 {
        let unk = crate::data::vocab::UNK;
        let (mut n, mut u) = (0usize, 0usize);
        for e in self.train.iter().chain(&self.valid) {
            n += e.ids.len();
            u += e.ids.iter().filter(|&&i| i == unk).count();
        }
        u as f64 / n.max(1) as f64
    }

    /// Tokenizes and numericalizes `raw` with `vocab` (none: fastai's vocabulary of these
    /// documents, returned with the data); each document reversed for a backward model. With
    /// `multi_label`, a label is several joined by `;`. The classes are the training labels,
    /// sorted; every validation label must be one of them, and there must be two or more.
    pub fn new(
        raw: &RawLabelled,
        vocab: Option<&Vocab>,
        backwards: bool,
        multi_label: bool,
        description: String,
    ) -> Result<(Self, Vocab)> {
        let split = |l: &str| -> Vec<String> {
            if multi_label {
                l.split(LABEL_DELIM)
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            } else {
                vec![l.to_string()]
            }
        };
        let mut classes: Vec<String> = raw
            .labels
            .iter()
            .zip(&raw.is_valid)
            .filter(|(_, v)| !**v)
            .flat_map(|(l, _)| split(l))
            .collect();
        classes.sort();
        classes.dedup();
        let corpus = |reason: String| AwdError::Corpus {
            path: description.clone(),
            reason,
        };
        if classes.len() < 2 {
            return Err(corpus(format!(
                "the training documents have {} class(es) ({}): a classifier needs two or more",
                classes.len(),
                classes.join(", ")
            )));
        }
        let tokens: Vec<Vec<String>> = {
            use rayon::prelude::*;
            raw.docs
                .par_iter()
                .map(|d| crate::text::for_corpus(d))
                .collect()
        };
        let vocab = vocab.cloned().unwrap_or_else(|| vocab_of(&tokens));
        let ids = tokens.iter().map(|t| ids(t, &vocab, backwards));
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (i, ids) in ids.into_iter().enumerate() {
            let mut labels = Vec::new();
            for l in split(&raw.labels[i]) {
                let Ok(c) = classes.binary_search(&l) else {
                    return Err(corpus(format!(
                        "{} (validation) has the label `{l}`, which no training document has (classes: {})",
                        raw.names[i],
                        classes.join(", ")
                    )));
                };
                labels.push(c);
            }
            labels.sort();
            labels.dedup();
            let ex = Example { ids, labels };
            if raw.is_valid[i] {
                valid.push(ex)
            } else {
                train.push(ex)
            }
        }
        if valid.is_empty() {
            return Err(corpus("no document is held out for validation".into()));
        }
        let data = Self {
            description,
            classes,
            train,
            valid,
        };
        Ok((data, vocab))
    }
}
