//! A prepared data set: vocabulary and the token ids of each split.

use std::collections::HashMap;
use std::path::Path;

use super::corpus::{Level, for_each_token};
use super::grammar::Grammar;
use super::source::Source;
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

/// Tokens in one pass: the distinct tokens in first-seen order, and the text as indices into them.
/// `read` calls its argument with every token.
fn index_tokens(
    read: impl FnOnce(&mut dyn FnMut(&str)) -> Result<usize>,
) -> Result<(Vec<String>, Vec<u32>)> {
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut words = Vec::new();
    let mut text = Vec::new();
    read(&mut |t: &str| {
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

fn read_indexed(path: &Path, level: Level) -> Result<(Vec<String>, Vec<u32>)> {
    index_tokens(|emit| for_each_token(path, level, emit))
}

/// How a vocabulary is made.
#[derive(Debug, Clone, Copy)]
pub struct VocabRules {
    pub specials: Specials,
    pub min_freq: usize,
    pub max_vocab: usize,
}

/// The vocabulary of the first `limit` tokens of an indexed text, and the whole text's ids in it.
/// At the fastai level the vocabulary follows fastai's `make_vocab`.
fn vocab_and_ids(
    (words, text): (Vec<String>, Vec<u32>),
    limit: usize,
    level: Level,
    rules: VocabRules,
) -> Result<(Vocab, Vec<u32>)> {
    let mut counts = vec![0usize; words.len()];
    for &i in &text[..limit.min(text.len())] {
        counts[i as usize] += 1;
    }
    let vocab = if level == Level::Fastai {
        // `words` is in first-seen order, as fastai's Counter is.
        let ranked = words.iter().map(|w| w.as_str()).zip(counts.iter().copied());
        super::fastai_vocab::make_vocab_counted(ranked, rules.min_freq, rules.max_vocab)
    } else {
        let counts: HashMap<String, usize> = words
            .iter()
            .zip(counts)
            .filter(|(_, c)| *c > 0)
            .map(|(w, c)| (w.clone(), c))
            .collect();
        Vocab::from_counts(&counts, rules.specials, rules.min_freq, rules.max_vocab)?
    };
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

/// Each document's tokens in reverse order, as fastai's `reverse_text` gives a backward model
/// its data: a document is a run of ids that starts at `bos` (`[bos a b][bos c]` → `[b a bos][c bos]`).
pub fn reverse_documents(ids: &mut [u32], bos: u32) {
    let mut start = 0;
    for i in 1..=ids.len() {
        if i == ids.len() || ids[i] == bos {
            ids[start..i].reverse();
            start = i;
        }
    }
}

impl Dataset {
    /// Every split's documents backwards (fastai level, where `xxbos` starts each document).
    pub fn reverse_documents(&mut self) {
        let bos = self.vocab.id(crate::text::rules::BOS);
        for ids in [&mut self.train, &mut self.valid]
            .into_iter()
            .chain(self.test.as_mut())
        {
            reverse_documents(ids, bos);
        }
    }

    /// Reads a data set from a file or a PTB/WikiText directory; the vocabulary comes from the
    /// training text.
    pub fn from_source(source: &Source, level: Level, rules: VocabRules) -> Result<Self> {
        // Each file is read once; its distinct tokens are held as strings, the text as ids.
        match source {
            Source::Dir { train, valid, test } => {
                let indexed = read_indexed(train, level)?;
                let (vocab, train_ids) = vocab_and_ids(indexed, usize::MAX, level, rules)?;
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
                let (vocab, mut ids) = vocab_and_ids(indexed, split, level, rules)?;
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
            Source::Docs {
                description,
                docs,
                is_valid,
                ..
            } => {
                let n_valid = is_valid.iter().filter(|&&v| v).count();
                // The vocabulary counts every document, validation ones included, in their order:
                // fastai's `Numericalize` takes the counts its `Tokenizer` made over all the data.
                let mut lengths = Vec::new();
                let indexed = index_tokens(|emit| {
                    lengths = super::corpus::emit_docs(docs, level, emit);
                    Ok(lengths.iter().sum())
                })?;
                let (vocab, all_ids) = vocab_and_ids(indexed, usize::MAX, level, rules)?;
                let (mut train_ids, mut valid_ids) = (Vec::new(), Vec::new());
                let mut at = 0;
                for (&n, &v) in lengths.iter().zip(is_valid.iter()) {
                    let ids = &all_ids[at..at + n];
                    if v {
                        valid_ids.extend_from_slice(ids)
                    } else {
                        train_ids.extend_from_slice(ids)
                    }
                    at += n;
                }
                if train_ids.len() < 2 || valid_ids.len() < 2 {
                    return Err(AwdError::Corpus {
                        path: description.clone(),
                        reason: "holds too little text to train on".into(),
                    });
                }
                Ok(Self {
                    train: train_ids,
                    valid: valid_ids,
                    test: None,
                    description: format!(
                        "{description} ({} training and {} validation documents)",
                        docs.len() - n_valid,
                        n_valid
                    ),
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
