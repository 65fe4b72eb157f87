//! Vocabularies: token ↔ id, with special tokens as fastai or PTB name them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{AwdError, Result};

/// What fastai pads its vocabularies with, to a multiple of 8.
pub const FAKE: &str = "xxfake";

/// Which special tokens a vocabulary starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Specials {
    /// fastai's: `xxunk` (0), `xxpad` (1), `xxbos`, `xxeos`, `xxfld`, `xxrep`, `xxwrep`, `xxup`, `xxmaj`.
    Fastai,
    /// PTB style: `<unk>` (0), `<pad>` (1), `<eos>` (2).
    Ptb,
}

impl Specials {
    pub fn tokens(self) -> &'static [&'static str] {
        match self {
            Specials::Fastai => &[
                "xxunk", "xxpad", "xxbos", "xxeos", "xxfld", "xxrep", "xxwrep", "xxup", "xxmaj",
            ],
            Specials::Ptb => &["<unk>", "<pad>", "<eos>"],
        }
    }
}

/// Id of the unknown token in every vocabulary awd builds.
pub const UNK: u32 = 0;
/// Id of the padding token (fastai's `pad_token = 1`).
pub const PAD: u32 = 1;

/// A vocabulary: `itos[id]` is the token of `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    itos: Vec<String>,
    stoi: HashMap<String, u32>,
}

impl Vocab {
    /// Builds a vocabulary from token counts: the specials, then every token seen at least
    /// `min_freq` times, most frequent first (ties in byte order), at most `max_vocab` in all.
    /// The raw unknown markers `<unk>`/`xxunk` map to the unknown id.
    pub fn build<'a>(
        tokens: impl IntoIterator<Item = &'a str>,
        specials: Specials,
        min_freq: usize,
        max_vocab: usize,
    ) -> Result<Self> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in tokens {
            *counts.entry(t.to_string()).or_default() += 1;
        }
        Self::from_counts(&counts, specials, min_freq, max_vocab)
    }

    /// [`build`](Self::build) from token counts (gathered while streaming a corpus).
    pub fn from_counts(
        counts: &HashMap<String, usize>,
        specials: Specials,
        min_freq: usize,
        max_vocab: usize,
    ) -> Result<Self> {
        let mut itos: Vec<String> = specials.tokens().iter().map(|s| s.to_string()).collect();
        if max_vocab < itos.len() {
            return Err(AwdError::Config(format!(
                "max_vocab {max_vocab} is smaller than the {} special tokens",
                itos.len()
            )));
        }
        let mut ranked: Vec<(&str, usize)> = counts
            .iter()
            .map(|(t, c)| (t.as_str(), *c))
            .filter(|(t, c)| *c >= min_freq.max(1) && !is_unknown(t))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (t, _) in ranked {
            if itos.len() >= max_vocab {
                break;
            }
            if !itos.iter().any(|s| s == t) {
                itos.push(t.to_string());
            }
        }
        Ok(Self::from_itos(itos))
    }

    /// A vocabulary from its token list (as saved with a model). fastai's padding entries
    /// (`xxfake`) get no id of their own: that token reads as unknown, as in fastai.
    pub fn from_itos(itos: Vec<String>) -> Self {
        let stoi = itos
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_str() != FAKE)
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Self { itos, stoi }
    }

    pub fn len(&self) -> usize {
        self.itos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.itos.is_empty()
    }

    pub fn itos(&self) -> &[String] {
        &self.itos
    }

    /// The id of `token`, or [`UNK`].
    pub fn id(&self, token: &str) -> u32 {
        if is_unknown(token) {
            return UNK;
        }
        self.stoi.get(token).copied().unwrap_or(UNK)
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn get(&self, token: &str) -> Option<u32> {
        self.stoi.get(token).copied()
    }

    pub fn token(&self, id: u32) -> &str {
        self.itos.get(id as usize).map_or("<?>", |s| s.as_str())
    }
}

fn is_unknown(t: &str) -> bool {
    t == "<unk>" || t == "xxunk"
}
