//! fastai's vocabularies: the rules of its `Numericalize` (`make_vocab`), and the vocabulary
//! pickles its pretrained models come with (`itos_wt103.pkl`: a pickled list of str).

use std::collections::HashMap;
use std::path::Path;

use super::vocab::{Specials, Vocab};
use crate::error::{AwdError, Result};

/// fastai's `Numericalize` defaults: tokens seen fewer times are unknown.
pub const MIN_FREQ: usize = 3;
/// fastai's `Numericalize` defaults: the largest vocabulary before padding.
pub const MAX_VOCAB: usize = 60000;
pub use super::vocab::FAKE;

/// fastai's `make_vocab` over the tokens of `docs`: tokens seen at least `min_freq` times, most
/// frequent first, ties in first-seen order (Python's `Counter.most_common`), at most
/// `max_vocab`; fastai's special tokens first, in fastai's order; then `xxfake` padding up to a
/// multiple of 8 (fastai adds 8 when the length already is one, and so does this).
pub fn make_vocab<'a, D>(docs: D, min_freq: usize, max_vocab: usize) -> Vocab
where
    D: IntoIterator,
    D::Item: IntoIterator<Item = &'a str>,
{
    // Token → (count, first position), in one pass.
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new();
    for token in docs.into_iter().flatten() {
        let seen = counts.len();
        counts.entry(token).or_insert((0, seen)).0 += 1;
    }
    let mut ranked: Vec<(&str, usize, usize)> = counts
        .into_iter()
        .map(|(t, (c, first))| (t, c, first))
        .collect();
    ranked.sort_by_key(|r| r.2);
    make_vocab_counted(
        ranked.into_iter().map(|(t, c, _)| (t, c)),
        min_freq,
        max_vocab,
    )
}

/// [`make_vocab`] from each distinct token's count, the tokens in first-seen order.
pub fn make_vocab_counted<'a>(
    counts: impl IntoIterator<Item = (&'a str, usize)>,
    min_freq: usize,
    max_vocab: usize,
) -> Vocab {
    let mut ranked: Vec<(&str, usize)> = counts.into_iter().filter(|(_, c)| *c > 0).collect();
    // A stable sort: ties keep first-seen order (Python's `Counter.most_common`).
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    let specials = Specials::Fastai.tokens();
    let mut itos: Vec<String> = specials.iter().map(|s| s.to_string()).collect();
    itos.extend(
        ranked
            .into_iter()
            .take(max_vocab)
            .filter(|(t, c)| *c >= min_freq && !specials.contains(t))
            .map(|(t, _)| t.to_string()),
    );
    itos.truncate(max_vocab);
    let pad = 8 - itos.len() % 8;
    itos.extend(std::iter::repeat_n(FAKE.to_string(), pad));
    Vocab::from_itos(itos)
}

/// Reads a fastai vocabulary pickle (a pickled list of str, protocols 2 to 5).
pub fn read_pickle(path: &Path) -> Result<Vocab> {
    let bytes = std::fs::read(path).map_err(|e| AwdError::io(path, e))?;
    let itos: Vec<String> = serde_pickle::from_slice(&bytes, serde_pickle::DeOptions::new())
        .map_err(|e| {
            AwdError::checkpoint(
                path,
                format!("not a fastai vocabulary (a pickled list of str): {e}"),
            )
        })?;
    if itos.is_empty() {
        return Err(AwdError::checkpoint(path, "the vocabulary is empty"));
    }
    Ok(Vocab::from_itos(itos))
}

/// Writes `vocab` as fastai writes its vocabularies (`pickle.dump(list_of_str)`), atomically.
pub fn write_pickle(path: &Path, vocab: &Vocab) -> Result<()> {
    let bytes = serde_pickle::to_vec(&vocab.itos(), serde_pickle::SerOptions::new())
        .map_err(|e| AwdError::checkpoint(path, format!("pickling the vocabulary: {e}")))?;
    crate::files::write_atomic(path, &bytes)
}
