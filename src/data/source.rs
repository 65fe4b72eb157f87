//! Where a data set's text is and how it splits: a PTB/WikiText directory, one file with a held-out
//! tail, or documents (a directory of `.txt` files, a CSV's rows, fastai's WikiText CSV pair),
//! split as they say or at random.

use std::path::{Path, PathBuf};

use super::reader::{self, Columns, corpus, random_split, read_text_file};
use crate::error::{AwdError, Result};

/// Where the splits of a data set are.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory with `train.txt`, `valid.txt` and optionally `test.txt` (PTB/WikiText layout).
    Dir {
        train: PathBuf,
        valid: PathBuf,
        test: Option<PathBuf>,
    },
    /// One file; the last `valid_fraction` of its tokens is held out for validation.
    File { path: PathBuf, valid_fraction: f64 },
    /// Documents: the `.txt` files under a directory (one document each), the rows of a CSV
    /// file, or of fastai's WikiText pair of CSV files, in their order; those marked `is_valid`
    /// are held out for validation.
    Docs {
        description: String,
        docs: Vec<String>,
        is_valid: Vec<bool>,
        /// The split came with the data (a CSV's `is_valid` column), not drawn at random.
        given: bool,
    },
}

/// How documents are read and split.
#[derive(Debug, Clone)]
pub struct DocOptions<'a> {
    /// The share of documents (or of a single file's tokens) held out for validation.
    pub valid_fraction: f64,
    /// A CSV file's text column.
    pub text_col: &'a str,
    /// Seeds the random choice of validation documents (fastai's `RandomSplitter`).
    pub seed: u64,
}

pub use super::reader::VALID_COL;

impl Source {
    /// A document source's training and validation documents, each in their order.
    pub fn split_docs(docs: &[String], is_valid: &[bool]) -> (Vec<String>, Vec<String>) {
        let (mut train, mut valid) = (Vec::new(), Vec::new());
        for (d, &v) in docs.iter().zip(is_valid) {
            if v {
                valid.push(d.clone())
            } else {
                train.push(d.clone())
            }
        }
        (train, valid)
    }

    /// Interprets `path`: a directory holding `train.txt` and `valid.txt` (WikiText layout), one
    /// holding `train.csv` and `valid.csv` or `test.csv` (fastai's WikiText), a directory of `.txt`
    /// documents, a `.csv` file of documents, or a text file.
    pub fn from_path(path: &Path, opts: &DocOptions) -> Result<Self> {
        if path.is_dir() {
            let split = |name: &str| {
                ["", "wiki."]
                    .iter()
                    .map(|pre| path.join(format!("{pre}{name}.txt")))
                    .find(|p| p.is_file())
            };
            match (split("train"), split("valid")) {
                (Some(train), Some(valid)) => {
                    return Ok(Source::Dir {
                        train,
                        valid,
                        test: split("test"),
                    });
                }
                (None, None) => {}
                (train, _) => {
                    let missing = if train.is_none() { "train" } else { "valid" };
                    return Err(corpus(
                        path,
                        format!(
                            "the directory has no {missing}.txt (expected train.txt, valid.txt and optionally test.txt)"
                        ),
                    ));
                }
            }
            let csv = |name: &str| Some(path.join(format!("{name}.csv"))).filter(|p| p.is_file());
            if let (Some(train), Some(valid)) = (csv("train"), csv("valid").or_else(|| csv("test")))
            {
                return Self::csv_pair(path, &train, &valid);
            }
            let docs = read_txt_dir(path)?;
            Self::docs(path, docs, opts)
        } else if path.is_file() && path.extension().is_some_and(|e| e == "csv") {
            read_csv(path, opts)
        } else if path.is_file() {
            Ok(Source::File {
                path: path.to_path_buf(),
                valid_fraction: opts.valid_fraction,
            })
        } else {
            Err(AwdError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ))
        }
    }

    /// fastai's WikiText layout: `train.csv` and `valid.csv` (or `test.csv`), a document in the
    /// first column of each row, no header; the second file's documents are for validation.
    fn csv_pair(dir: &Path, train: &Path, valid: &Path) -> Result<Self> {
        let (train, valid) = (first_column(train)?, first_column(valid)?);
        let is_valid = (0..train.len() + valid.len())
            .map(|i| i >= train.len())
            .collect();
        Ok(Source::Docs {
            description: dir.display().to_string(),
            docs: train.into_iter().chain(valid).collect(),
            is_valid,
            given: true,
        })
    }

    /// Documents split at random: `valid_fraction` of them (at least one) for validation.
    fn docs(path: &Path, docs: Vec<String>, opts: &DocOptions) -> Result<Self> {
        let is_valid = random_split(path, docs.len(), opts.valid_fraction, opts.seed)?;
        Ok(Source::Docs {
            description: path.display().to_string(),
            docs,
            is_valid,
            given: false,
        })
    }
}

/// The `.txt` files under `dir` (sorted, subdirectories included), one document each.
fn read_txt_dir(dir: &Path) -> Result<Vec<String>> {
    let pattern = format!(
        "{}/**/*.txt",
        glob::Pattern::escape(&dir.display().to_string())
    );
    let mut files: Vec<PathBuf> = glob::glob(&pattern)
        .map_err(|e| corpus(dir, e.to_string()))?
        .filter_map(|p| p.ok())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(corpus(
            dir,
            "the directory has no .txt files (and no train.txt/valid.txt)".into(),
        ));
    }
    files.iter().map(|f| read_text_file(f)).collect()
}

/// The first column of a CSV file without a header, a document a row.
fn first_column(path: &Path) -> Result<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| corpus(path, e.to_string()))?;
    let mut docs = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| corpus(path, format!("row {}: {e}", i + 1)))?;
        let doc = row.get(0).unwrap_or_default();
        if !doc.trim().is_empty() {
            docs.push(doc.to_string());
        }
    }
    if docs.is_empty() {
        return Err(corpus(path, "holds no text".into()));
    }
    Ok(docs)
}

/// The documents of a CSV file's text column; its `is_valid` column, where there is one, splits
/// them, as fastai's `ColSplitter` does; else a seeded random share is held out.
fn read_csv(path: &Path, opts: &DocOptions) -> Result<Source> {
    let columns = Columns {
        text: opts.text_col,
        label: None,
    };
    let read = reader::read_csv(path, columns)?;
    if read.is_valid.is_empty() {
        return Source::docs(path, read.docs, opts);
    }
    let n_valid = read.is_valid.iter().filter(|&&v| v).count();
    if n_valid == 0 || n_valid == read.docs.len() {
        return Err(corpus(
            path,
            format!(
                "its `{VALID_COL}` column leaves {} training and {n_valid} validation rows: both are needed",
                read.docs.len() - n_valid
            ),
        ));
    }
    Ok(Source::Docs {
        description: path.display().to_string(),
        docs: read.docs,
        is_valid: read.is_valid,
        given: true,
    })
}
