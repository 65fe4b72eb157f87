//! Text files → token strings: word level (PTB/WikiText style) or character level.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AwdError, Result};

/// How text is cut into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Whitespace-separated words, `<eos>` at every line end (as PTB and WikiText are prepared).
    Word,
    /// Unicode characters, newlines included.
    Char,
}

/// The end-of-line token of word-level text.
pub const EOS: &str = "<eos>";

/// Reads `path` and calls `emit` with every token, streaming line by line.
///
/// Invalid UTF-8, a binary file (NUL bytes) and a file with no token are errors naming the file
/// (and, for bad bytes, the line).
pub fn for_each_token(path: &Path, level: Level, mut emit: impl FnMut(&str)) -> Result<usize> {
    let file = File::open(path).map_err(|e| AwdError::io(path, e))?;
    let bad = |reason: String| AwdError::Corpus {
        path: path.display().to_string(),
        reason,
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut count = 0usize;
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| AwdError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.contains(&0) {
            return Err(bad(format!(
                "line {line_no} holds NUL bytes: this looks like a binary file, not text"
            )));
        }
        let text = std::str::from_utf8(&line).map_err(|e| {
            bad(format!(
                "line {line_no} is not valid UTF-8 (byte {} of the line)",
                e.valid_up_to() + 1
            ))
        })?;
        match level {
            Level::Word => {
                for w in text.split_whitespace() {
                    emit(w);
                    count += 1;
                }
                emit(EOS);
                count += 1;
            }
            Level::Char => {
                let mut buf = [0u8; 4];
                for c in text.chars().filter(|&c| c != '\r') {
                    emit(c.encode_utf8(&mut buf));
                    count += 1;
                }
            }
        }
    }
    let words = match level {
        Level::Word => count.saturating_sub(line_no),
        Level::Char => count,
    };
    if words == 0 {
        return Err(bad("holds no text".into()));
    }
    Ok(count)
}

/// Reads every token of `path`.
pub fn read_tokens(path: &Path, level: Level) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for_each_token(path, level, |t| out.push(t.to_string()))?;
    Ok(out)
}

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
}

impl Source {
    /// Interprets `path`: a directory must hold `train.txt` and `valid.txt`.
    pub fn from_path(path: &Path, valid_fraction: f64) -> Result<Self> {
        if path.is_dir() {
            let split = |name: &str| {
                ["", "wiki."]
                    .iter()
                    .map(|pre| path.join(format!("{pre}{name}.txt")))
                    .find(|p| p.is_file())
            };
            let need = |name: &str| {
                split(name).ok_or_else(|| AwdError::Corpus {
                    path: path.display().to_string(),
                    reason: format!("the directory has no {name}.txt (expected train.txt, valid.txt and optionally test.txt)"),
                })
            };
            Ok(Source::Dir {
                train: need("train")?,
                valid: need("valid")?,
                test: split("test"),
            })
        } else if path.is_file() {
            Ok(Source::File {
                path: path.to_path_buf(),
                valid_fraction,
            })
        } else {
            Err(AwdError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ))
        }
    }
}
