//! Text files → token strings: word level (PTB/WikiText style) or character level.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

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
    /// fastai's tokenization (its rules, then spaCy's English tokenizer; `xxbos` starts each
    /// document), tokens as fastai's language-model data holds them. In a text file each
    /// non-blank line is a document.
    Fastai,
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
    let mut docs: Vec<String> = Vec::new();
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
            Level::Fastai => {
                if !text.trim().is_empty() {
                    docs.push(text.trim_end_matches(['\n', '\r']).to_string());
                }
                if docs.len() == DOC_BATCH {
                    count += emit_docs(&docs, level, &mut emit).iter().sum::<usize>();
                    docs.clear();
                }
            }
        }
    }
    count += emit_docs(&docs, level, &mut emit).iter().sum::<usize>();
    let words = match level {
        Level::Word => count.saturating_sub(line_no),
        Level::Char | Level::Fastai => count,
    };
    if words == 0 {
        return Err(bad("holds no text".into()));
    }
    Ok(count)
}

/// Documents tokenized together (in parallel) at the fastai level.
const DOC_BATCH: usize = 4096;

/// Calls `emit` with the tokens of each document in order; returns each document's count.
///
/// Word level: each line's words then `<eos>`; char level: the characters; fastai level: fastai's
/// tokens (tokenized in parallel).
pub fn emit_docs<S: AsRef<str> + Sync>(
    docs: &[S],
    level: Level,
    emit: &mut (impl FnMut(&str) + ?Sized),
) -> Vec<usize> {
    let mut counts = Vec::with_capacity(docs.len());
    match level {
        Level::Fastai => {
            use rayon::prelude::*;
            let tokens: Vec<Vec<String>> = docs
                .par_iter()
                .map(|d| crate::text::for_corpus(d.as_ref()))
                .collect();
            for doc in &tokens {
                doc.iter().for_each(|t| emit(t));
                counts.push(doc.len());
            }
        }
        Level::Word => {
            for d in docs {
                let mut n = 0;
                for line in d.as_ref().lines() {
                    for w in line.split_whitespace() {
                        emit(w);
                        n += 1;
                    }
                    emit(EOS);
                    n += 1;
                }
                counts.push(n);
            }
        }
        Level::Char => {
            let mut buf = [0u8; 4];
            for d in docs {
                let mut n = 0;
                for c in d.as_ref().chars().filter(|&c| c != '\r') {
                    emit(c.encode_utf8(&mut buf));
                    n += 1;
                }
                counts.push(n);
            }
        }
    }
    counts
}

/// Reads every token of `path`.
pub fn read_tokens(path: &Path, level: Level) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for_each_token(path, level, |t| out.push(t.to_string()))?;
    Ok(out)
}
