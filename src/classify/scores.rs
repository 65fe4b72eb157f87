//! Predictions and how good they are: class probabilities of documents (batched by length, given
//! back in input order), and loss, accuracy, per-class precision/recall/F1 and the confusion
//! matrix against the true labels.

use burn::tensor::activation::softmax;

use super::data::eval_batches;
use crate::error::Result;
use crate::model::{DocBatch, TextClassifier};
use crate::params::HostTensor;

/// Class probabilities `[docs][classes]` of each document, in the order given. `model` should
/// be a `valid()` copy (no dropout, BatchNorm's running statistics).
pub fn probabilities(
    model: &mut TextClassifier,
    docs: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let (bptt, pad) = (model.config.bptt, model.config.encoder.pad_token as u32);
    let lengths: Vec<usize> = docs.iter().map(|d| d.len()).collect();
    let mut out = vec![Vec::new(); docs.len()];
    for batch in eval_batches(&lengths, batch_size) {
        let rows: Vec<&[u32]> = batch.iter().map(|&i| docs[i].as_slice()).collect();
        let logits = model.forward(&DocBatch::new(&rows, bptt, pad)?)?.logits;
        let [_, c] = logits.dims();
        let probs = HostTensor::from_tensor(softmax(logits, 1));
        for (k, &i) in batch.iter().enumerate() {
            out[i] = probs.values[k * c..(k + 1) * c].to_vec();
        }
    }
    Ok(out)
}

/// The mean of several models' probabilities (ULMFiT's forward + backward ensemble).
pub fn average(all: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let n = all.len() as f32;
    (0..all[0].len())
        .map(|d| {
            (0..all[0][d].len())
                .map(|c| all.iter().map(|p| p[d][c]).sum::<f32>() / n)
                .collect()
        })
        .collect()
}

/// The most probable class.
pub fn argmax(p: &[f32]) -> usize {
    (0..p.len())
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .unwrap_or(0)
}

/// Predictions scored against labels.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Mean cross-entropy.
    pub loss: f64,
    pub accuracy: f64,
    /// `confusion[true][predicted]`
    pub confusion: Vec<Vec<usize>>,
}

impl Scores {
    pub fn new(probs: &[Vec<f32>], labels: &[usize], n_classes: usize) -> Self {
        let mut confusion = vec![vec![0; n_classes]; n_classes];
        let mut loss = 0.0;
        for (p, &y) in probs.iter().zip(labels) {
            confusion[y][argmax(p)] += 1;
            loss -= (p[y] as f64).max(1e-30).ln();
        }
        let n = labels.len().max(1) as f64;
        let correct: usize = (0..n_classes).map(|c| confusion[c][c]).sum();
        Self {
            loss: loss / n,
            accuracy: correct as f64 / n,
            confusion,
        }
    }

    /// Precision, recall and F1 of class `c` (0 where undefined).
    pub fn per_class(&self, c: usize) -> (f64, f64, f64) {
        let tp = self.confusion[c][c] as f64;
        let predicted: usize = self.confusion.iter().map(|row| row[c]).sum();
        let actual: usize = self.confusion[c].iter().sum();
        let ratio = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
        let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
        let f1 = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        (p, r, f1)
    }
}
