//! awd's jobs as library functions with typed inputs and outputs: train or fine-tune a language
//! model and train a classifier ([`train`]), load a language model and score it on a text
//! ([`lm`]), score a text token by token ([`score`]), continue a prompt ([`generate`]), load
//! classifiers and classify documents ([`classify`]), tokenize as fastai does ([`tokenize`]).
//! Each loader also reads fastai's `export.pkl`. The `awd` command line parses flags, calls these and prints.

pub mod classify;
pub mod generate;
pub mod lm;
pub mod models;
pub mod score;
pub mod train;

/// fastai's default tokenization of each text (its rules, then spaCy's English tokenizer), in
/// parallel: what fastai's `Tokenizer` gives, token for token.
///
/// ```
/// let tokens = awd::jobs::tokenize(&["Hello WORLD, it's <b>me</b>!"]);
/// assert_eq!(tokens[0][..4], ["xxbos", "xxmaj", "hello", "xxup"]);
/// ```
pub fn tokenize<S: AsRef<str> + Sync>(texts: &[S]) -> Vec<Vec<String>> {
    crate::text::tokenize_all(texts)
}
