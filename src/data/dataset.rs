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

/// A file's tokens in one pass: its distinct tokens in first-seen order, and the text as indices
/// into them.
fn read_indexed(path: &Path, level: Level) -> Result<(Vec<String>, Vec<u32>)> {
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut words = Vec::new();
    let mut text = Vec::new();
    for_each_token(path, level, |t| {
        let i = match index.get(t) {
            Some(&i) => i,
            None => {
                let i = words.len() as u32;
                index.insert(t.to_string(), i);
                words.push(t.to_string());
                i
            }
        };
        text.push(i);
    })?;
    Ok((words, text))
}

/// The vocabulary of the first `limit` tokens of an indexed text, and the whole text's ids in it.
fn vocab_and_ids(
    (words, text): (Vec<String>, Vec<u32>),
    limit: usize,
    specials: Specials,
    min_freq: usize,
    max_vocab: usize,
) -> Result<(Vocab, Vec<u32>)> {
    let mut counts = vec![0usize; words.len()];
    for &i in &text[..limit.min(text.len())] {
        counts[i as usize] += 1;
    }
    let counts: HashMap<String, usize> = words
        .iter()
        .zip(counts)
        .filter(|(_, c)| *c > 0)
        .map(|(w, c)| (w.clone(), c))
        .collect();
    let vocab = Vocab::from_counts(&counts, specials, min_freq, max_vocab)?;
    let ids_of: Vec<u32> = words.iter().map(|w| vocab.id(w)).collect();
    let ids = text.iter().map(|&i| ids_of[i as usize]).collect();
    Ok((vocab, ids))
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
        // Each file is read once; its distinct tokens are held as strings, the text as ids.
        match source {
            Source::Dir { train, valid, test } => {
                let indexed = read_indexed(train, level)?;
                let (vocab, train_ids) =
                    vocab_and_ids(indexed, usize::MAX, specials, min_freq, max_vocab)?;
                Ok(Self {
                    train: train_ids,
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
                let indexed = read_indexed(path, level)?;
                let total = indexed.1.len();
                let n_valid = ((total as f64) * valid_fraction).round() as usize;
                if n_valid < 2 || total - n_valid < 2 {
                    return Err(AwdError::Corpus {
                        path: path.display().to_string(),
                        reason: format!("{total} tokens are too few to hold out a validation part"),
                    });
                }
                let split = total - n_valid;
                let (vocab, mut ids) =
                    vocab_and_ids(indexed, split, specials, min_freq, max_vocab)?;
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
