//! The AWD-LSTM language model (fastai's `text.models.awdlstm`).

pub mod classifier;
pub mod config;
pub mod decoder;
pub mod documents;
pub mod encoder;
pub mod lm;
pub mod loss;
mod sentence_encoder;

pub use classifier::{ClassifierConfig, DocBatch, TextClassifier};
pub use config::{AwdLstmConfig, ModelFlags};
pub use encoder::AwdLstm;
pub use lm::{LanguageModel, LmLoss, LmOutput};
