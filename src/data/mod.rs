//! Text, vocabularies and batches.

pub mod batches;
pub mod corpus;
pub mod dataset;
pub mod download;
pub mod fastai_vocab;
pub mod grammar;
pub mod reader;
pub mod source;
pub mod vocab;

pub use batches::{Rows, WindowLengths};
pub use corpus::Level;
pub use dataset::{Dataset, VocabRules};
pub use grammar::Grammar;
pub use source::{DocOptions, Source};
pub use vocab::{Specials, Vocab};
