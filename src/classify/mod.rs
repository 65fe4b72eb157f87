//! Text classification on the AWD-LSTM encoder (ULMFiT's last step): labelled data, the training
//! loop with gradual unfreezing, predictions and their scores, the classifier's files.

pub mod batches;
pub mod config;
pub mod data;
pub mod job;
pub mod saved;
pub mod scores;

pub use config::{ClassifyConfig, ClassifyFlags};
pub use data::{LabelOptions, Labelled};
pub use job::{ClasJob, ClassifierTrainer};
