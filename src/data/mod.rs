//! Text, vocabularies and batches.

pub mod batches;
pub mod corpus;
pub mod dataset;
pub mod download;
pub mod fastai_vocab;
pub mod grammar;
pub mod vocab;

pub use batches::{Rows, WindowLengths};
pub use corpus::{DocOptions, Level, Source};
pub use dataset::{Dataset, VocabRules};
pub use grammar::Grammar;
pub use vocab::{Specials, Vocab};
