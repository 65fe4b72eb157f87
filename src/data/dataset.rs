//! A prepared data set: vocabulary and the token ids of each split.

use std::collections::HashMap;
use std::path::Path;

use super::corpus::{Level, Source, for_each_token};
use super::grammar::Grammar;
use super::vocab::{Specials, Vocab};
use crate::error::{AwdError, Result};

#[derive(Debug, Clone)]
pub struct Dataset {
    pub vocab: Vocab,
    pub level: Level,
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
    pub test: Option<Vec<u32>>,
    /// What the data is, for messages.
    pub description: String,
    /// The least cross-entropy per token any model can reach, when known (the built-in grammar).
    pub entropy_rate: Option<f64>,
}

/// Counts of the first `limit` tokens of a file.
fn count_tokens(path: &Path, level: Level, limit: usize) -> Result<HashMap<String, usize>> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut seen = 0usize;
    for_each_token(path, level, |t| {
        if seen < limit {
            match counts.get_mut(t) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(t.to_string(), 1);
                }
            }
        }
        seen += 1;
    })?;
    Ok(counts)
}

/// Token ids of a file under `vocab` (unknown tokens become the unknown id).
pub fn encode_file(path: &Path, vocab: &Vocab, level: Level) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for_each_token(path, level, |t| ids.push(vocab.id(t)))?;
    Ok(ids)
}

impl Dataset {
    /// Reads a data set from a file or a PTB/WikiText directory; the vocabulary comes from the
    /// training text.
    pub fn from_source(
        source: &Source,
        level: Level,
        specials: Specials,
        min_freq: usize,
        max_vocab: usize,
    ) -> Result<Self> {
        // Files are streamed: one pass counts tokens, the next encodes them; no token list is
        // held in memory.
        match source {
            Source::Dir { train, valid, test } => {
                let counts = count_tokens(train, level, usize::MAX)?;
                let vocab = Vocab::from_counts(&counts, specials, min_freq, max_vocab)?;
                Ok(Self {
                    train: encode_file(train, &vocab, level)?,
                    valid: encode_file(valid, &vocab, level)?,
                    test: test
                        .as_ref()
                        .map(|t| encode_file(t, &vocab, level))
                        .transpose()?,
                    description: format!("{}", train.parent().unwrap_or(train).display()),
                    vocab,
                    level,
                    entropy_rate: None,
                })
            }
            Source::File {
                path,
                valid_fraction,
            } => {
                let total = for_each_token(path, level, |_| {})?;
                let n_valid = ((total as f64) * valid_fraction).round() as usize;
                if n_valid < 2 || total - n_valid < 2 {
                    return Err(AwdError::Corpus {
                        path: path.display().to_string(),
                        reason: format!("{total} tokens are too few to hold out a validation part"),
                    });
                }
                let split = total - n_valid;
                let counts = count_tokens(path, level, split)?;
                let vocab = Vocab::from_counts(&counts, specials, min_freq, max_vocab)?;
                let mut ids = encode_file(path, &vocab, level)?;
                let valid = ids.split_off(split);
                Ok(Self {
                    train: ids,
                    valid,
                    test: None,
                    description: format!("{}", path.display()),
                    vocab,
                    level,
                    entropy_rate: None,
                })
            }
        }
    }

    /// The built-in grammar's corpus: `tokens` for training, a tenth as many for validation and
    /// for test, each sampled with its own seed.
    pub fn grammar(tokens: usize, specials: Specials, seed: u64) -> Result<Self> {
        let g = Grammar::builtin();
        let vocab = Vocab::build(g.words(), specials, 1, usize::MAX)?;
        let encode = |n: usize, s: u64| g.sample(n, s).into_iter().map(|w| vocab.id(w)).collect();
        let held = (tokens / 10).max(1000);
        Ok(Self {
            train: encode(tokens, seed),
            valid: encode(held, seed.wrapping_add(1)),
            test: Some(encode(held, seed.wrapping_add(2))),
            description: format!("the built-in grammar ({tokens} training tokens)"),
            vocab,
            level: Level::Word,
            entropy_rate: Some(g.entropy_rate()),
        })
    }
}
