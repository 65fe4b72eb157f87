//! Predictions and how good they are: class probabilities of documents (batched by length, given
//! back in input order), and loss, accuracy, per-class precision/recall/F1 and (one label per
//! document) the confusion matrix against the true labels.

use burn::tensor::activation::{sigmoid, softmax};

use super::batches::eval_batches;
use crate::dist::Dist;
use crate::error::Result;
use crate::model::{DocBatch, TextClassifier};
use crate::params::HostTensor;

/// Class probabilities `[docs][classes]` of each document, in the order given: a softmax over
/// the classes, or each class's own sigmoid for a multi-label model. `model` should be a
/// `valid()` copy (no dropout, BatchNorm's running statistics).
pub fn probabilities(
    model: &mut TextClassifier,
    docs: &[Vec<u32>],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    probabilities_on(model, docs, batch_size, &Dist::single())
}

/// [`probabilities`] in a data-parallel job: each rank classifies every `ranks`-th batch, and
/// one sum gives every rank all of them (the same batches as one process, so the same values).
pub fn probabilities_on(
    model: &mut TextClassifier,
    docs: &[Vec<u32>],
    batch_size: usize,
    dist: &Dist,
) -> Result<Vec<Vec<f32>>> {
    let (bptt, pad) = (model.config.bptt, model.config.encoder.pad_token as u32);
    let multi = model.config.multi_label;
    let c = model.config.n_classes;
    let lengths: Vec<usize> = docs.iter().map(|d| d.len()).collect();
    let mut flat = vec![0f32; docs.len() * c];
    let batches = eval_batches(&lengths, batch_size);
    for batch in batches.iter().skip(dist.rank()).step_by(dist.size()) {
        let rows: Vec<&[u32]> = batch.iter().map(|&i| docs[i].as_slice()).collect();
        let logits = model.forward(&DocBatch::new(&rows, bptt, pad)?)?.logits;
        let [_, c] = logits.dims();
        let probs = if multi {
            sigmoid(logits)
        } else {
            softmax(logits, 1)
        };
        let probs = HostTensor::from_tensor(probs);
        for (k, &i) in batch.iter().enumerate() {
            flat[i * c..(i + 1) * c].copy_from_slice(&probs.values[k * c..(k + 1) * c]);
        }
    }
    if dist.size() > 1 {
        dist.sum_f32(&mut flat);
    }
    Ok(flat.chunks(c.max(1)).map(|p| p.to_vec()).collect())
}

/// Each classifier's probabilities of `docs` (raw text, read as each model reads it: its
/// vocabulary, forwards or backwards), averaged: ULMFiT's forward + backward ensemble.
pub fn ensemble(
    models: &mut [(TextClassifier, super::saved::ClassifierInfo)],
    docs: &[String],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut all = Vec::new();
    for (model, info) in models.iter_mut() {
        let ids = super::data::numericalize(docs, &info.vocab, info.backwards);
        all.push(probabilities(model, &ids, batch_size.max(1))?);
    }
    Ok(average(&all))
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

/// The classes a document is predicted to have: the most probable one, or (multi-label) every
/// class above `threshold`.
pub fn predicted(p: &[f32], multi_label: bool, threshold: f64) -> Vec<usize> {
    if multi_label {
        (0..p.len()).filter(|&c| p[c] as f64 > threshold).collect()
    } else {
        vec![argmax(p)]
    }
}

/// Predictions scored against labels.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Mean cross-entropy (binary cross-entropy per class, multi-label).
    pub loss: f64,
    /// Share of documents right; multi-label: of (document, class) decisions right (fastai's
    /// `accuracy_multi`).
    pub accuracy: f64,
    /// Per class: true positives, false positives, false negatives.
    pub counts: Vec<[usize; 3]>,
    /// `confusion[true][predicted]` (one label per document).
    pub confusion: Option<Vec<Vec<usize>>>,
}

impl Scores {
    /// `labels[d]`: document `d`'s classes (sorted; one unless `multi_label`).
    pub fn new(
        probs: &[Vec<f32>],
        labels: &[Vec<usize>],
        n_classes: usize,
        multi_label: bool,
        threshold: f64,
    ) -> Self {
        let mut counts = vec![[0usize; 3]; n_classes];
        let mut confusion = vec![vec![0; n_classes]; n_classes];
        let (mut loss, mut right, mut decisions) = (0.0, 0usize, 0usize);
        for (p, y) in probs.iter().zip(labels) {
            let guess = predicted(p, multi_label, threshold);
            for (c, count) in counts.iter_mut().enumerate() {
                match (guess.contains(&c), y.contains(&c)) {
                    (true, true) => count[0] += 1,
                    (true, false) => count[1] += 1,
                    (false, true) => count[2] += 1,
                    (false, false) => {}
                }
            }
            if multi_label {
                for (c, &pc) in p.iter().enumerate() {
                    let (pc, yes) = ((pc as f64).clamp(1e-7, 1.0 - 1e-7), y.contains(&c));
                    loss -= if yes { pc.ln() } else { (1.0 - pc).ln() } / n_classes as f64;
                    right += (guess.contains(&c) == yes) as usize;
                }
                decisions += n_classes;
            } else {
                confusion[y[0]][guess[0]] += 1;
                loss -= (p[y[0]] as f64).max(1e-30).ln();
                right += (guess[0] == y[0]) as usize;
                decisions += 1;
            }
        }
        Self {
            loss: loss / labels.len().max(1) as f64,
            accuracy: right as f64 / decisions.max(1) as f64,
            counts,
            confusion: (!multi_label).then_some(confusion),
        }
    }

    /// Precision, recall and F1 of class `c` (0 where undefined), and its support.
    pub fn per_class(&self, c: usize) -> (f64, f64, f64, usize) {
        let [tp, fp, fn_] = self.counts[c];
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (p, r) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        let f1 = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        (p, r, f1, tp + fn_)
    }

    /// The scores as a text table: accuracy and loss, each class's precision, recall, F1 and
    /// support, and (one label per document) the confusion matrix.
    pub fn report(&self, classes: &[String]) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let docs: usize = (0..classes.len()).map(|c| self.per_class(c).3).sum();
        let what = if self.confusion.is_some() {
            "documents"
        } else {
            "labels"
        };
        let _ = writeln!(
            out,
            "{docs} {what}: accuracy {:.2}%, loss {:.4}",
            100.0 * self.accuracy,
            self.loss
        );
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>9} {:>8}",
            "class", "precision", "recall", "f1", "support"
        );
        for (c, name) in classes.iter().enumerate() {
            let (p, r, f1, support) = self.per_class(c);
            let _ = writeln!(out, "{name:<20} {p:>9.4} {r:>9.4} {f1:>9.4} {support:>8}");
        }
        if let Some(confusion) = &self.confusion {
            let _ = writeln!(out, "confusion (rows: true, columns: predicted)");
            let head: String = classes.iter().map(|c| format!("{c:>10}")).collect();
            let _ = writeln!(out, "{:<20} {head}", "");
            for (name, row) in classes.iter().zip(confusion) {
                let row: String = row.iter().map(|n| format!("{n:>10}")).collect();
                let _ = writeln!(out, "{name:<20} {row}");
            }
        }
        out
    }
}
