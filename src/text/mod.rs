//! fastai's text tokenization: its rules (`rules`), then spaCy's English tokenizer (`spacy`).
//!
//! `tokenize` is what fastai's `Tokenizer(WordTokenizer())` returns for one text; `for_corpus`
//! applies fastai's post-rule (`replace_space`: a space inside a token becomes `▁`), as fastai's
//! language-model data does before numericalizing.

pub mod pattern;
pub mod rules;
pub mod spacy;

use rayon::prelude::*;

/// fastai's tokens of one document (`xxbos` first).
pub fn tokenize(text: &str) -> Vec<String> {
    spacy::Spacy::english().tokenize(&rules::apply(text))
}

/// Many documents, tokenized in parallel, in input order.
pub fn tokenize_all<S: AsRef<str> + Sync>(texts: &[S]) -> Vec<Vec<String>> {
    texts.par_iter().map(|t| tokenize(t.as_ref())).collect()
}

/// fastai's `replace_space` post-rule.
pub fn replace_space(token: &str) -> String {
    token.replace(' ', "▁")
}

/// fastai's tokens of one document as its language-model data holds them (post-rules applied).
pub fn for_corpus(text: &str) -> Vec<String> {
    let mut tokens = tokenize(text);
    for t in tokens.iter_mut().filter(|t| t.contains(' ')) {
        *t = replace_space(t);
    }
    tokens
}

/// spaCy's English tokenizer alone, rules not applied (what fastai's `SpacyTokenizer` returns for
/// texts its `Tokenizer` has already passed through the rules), in parallel, in input order.
pub fn split_all<S: AsRef<str> + Sync>(texts: &[S]) -> Vec<Vec<String>> {
    texts
        .par_iter()
        .map(|t| spacy::Spacy::english().tokenize(t.as_ref()))
        .collect()
}
