//! The one document reader: a CSV's text column (with a label column when the job has labels,
//! and the `is_valid` column that splits it where there is one), text files checked as text,
//! and the one seeded random split for data that does not say which documents are held out.

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{AwdError, Result};

/// A CSV column that, where present, says which rows are validation rows (fastai's `is_valid`).
pub const VALID_COL: &str = "is_valid";

/// Documents as read, before tokenization.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    pub docs: Vec<String>,
    /// Each document's label (empty where the data has none).
    pub labels: Vec<String>,
    /// Which documents are held out for validation (empty where the data does not say).
    pub is_valid: Vec<bool>,
    /// Names each document for messages (`row 12`, a file's path).
    pub names: Vec<String>,
}

/// A CSV file's columns: the text's, and the label's where the job has labels.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub text: &'a str,
    pub label: Option<&'a str>,
}

pub fn corpus(path: &Path, reason: String) -> AwdError {
    AwdError::Corpus {
        path: path.display().to_string(),
        reason,
    }
}

/// The rows of a CSV file with a header: each row's text (and label), none empty; its
/// `is_valid` column, where there is one, marks the validation rows (`True`/`true`/`1`, as
/// fastai's `ColSplitter` reads it).
pub fn read_csv(path: &Path, columns: Columns) -> Result<Documents> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| corpus(path, e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| corpus(path, e.to_string()))?
        .clone();
    let col = |name: &str, flag: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            let all = headers.iter().collect::<Vec<_>>().join(", ");
            corpus(
                path,
                format!("has no column `{name}` (its columns: {all}); name it with {flag}"),
            )
        })
    };
    let text = col(columns.text, "--text-col")?;
    let label = columns.label.map(|l| col(l, "--label-col")).transpose()?;
    let valid = headers.iter().position(|h| h == VALID_COL);
    let mut out = Documents::default();
    for (i, row) in reader.records().enumerate() {
        let name = format!("row {}", i + 2);
        let row = row.map_err(|e| corpus(path, format!("{name}: {e}")))?;
        let cell = |c: usize, what: &str| {
            let v = row.get(c).unwrap_or_default();
            match v.trim().is_empty() {
                true => Err(corpus(path, format!("{name} has an empty `{what}`"))),
                false => Ok(v),
            }
        };
        out.docs.push(cell(text, columns.text)?.to_string());
        if let (Some(c), Some(l)) = (label, columns.label) {
            out.labels.push(cell(c, l)?.trim().to_string());
        }
        if let Some(c) = valid {
            let v = row.get(c).unwrap_or_default().trim().to_lowercase();
            out.is_valid.push(v == "true" || v == "1");
        }
        out.names.push(name);
    }
    if out.docs.is_empty() {
        return Err(corpus(path, "holds no rows".into()));
    }
    Ok(out)
}

/// A file's text: UTF-8, and not a binary file.
pub fn read_text_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| AwdError::io(path, e))?;
    if bytes.contains(&0) {
        return Err(corpus(
            path,
            "holds NUL bytes: this looks like a binary file, not text".into(),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to() + 1;
        corpus(path, format!("is not valid UTF-8 (byte {at})"))
    })
}

/// fastai's `RandomSplitter`: of `n` documents (at least 2), `valid_fraction` (at least one, not
/// all) chosen at random with `seed` for validation.
pub fn random_split(path: &Path, n: usize, valid_fraction: f64, seed: u64) -> Result<Vec<bool>> {
    if n < 2 {
        return Err(corpus(
            path,
            format!("{n} document(s) are too few to hold one out for validation"),
        ));
    }
    let n_valid = ((n as f64 * valid_fraction).round() as usize).clamp(1, n - 1);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut is_valid = vec![false; n];
    for &i in &order[..n_valid] {
        is_valid[i] = true;
    }
    Ok(is_valid)
}
