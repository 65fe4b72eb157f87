//! Classifiers as a user has them: read from awd's files or fastai's `.pth`, one or an ensemble
//! (forward + backward), and the label of each document with every class's probability.

use std::path::{Path, PathBuf};

use crate::classify::LabelOptions;
use crate::classify::data::{LABEL_DELIM, read_raw};
use crate::classify::saved::{self, ClassifierInfo};
use crate::classify::scores::{Scores, argmax, ensemble, predicted};
use crate::device::Device;
use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::TextClassifier;

/// One classifier, or several whose probabilities are averaged, with the same classes.
pub struct Classifiers {
    pub models: Vec<(TextClassifier, ClassifierInfo)>,
}

/// A document's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The chosen classes: the most probable one, or for a multi-label model every class over
    /// its threshold (possibly none).
    pub labels: Vec<String>,
    /// Every class's probability, in [`Classifiers::classes`]' order.
    pub probabilities: Vec<f32>,
}

impl Classifiers {
    /// Reads the classifiers at `paths` (awd run directories or model files; or, with `fastai`
    /// = its vocabulary pickle and class names, fastai `.pth` files), which must agree on their
    /// classes.
    pub fn load(
        paths: &[PathBuf],
        fastai: Option<(&Path, &[String])>,
        device: &Device,
    ) -> Result<Self> {
        let models = paths
            .iter()
            .map(|p| saved::load(p, fastai, &Masks::default(), device))
            .collect::<Result<Vec<_>>>()?;
        let Some((_, first)) = models.first() else {
            return Err(AwdError::Config("no classifier given".into()));
        };
        if let Some((i, (_, other))) = models
            .iter()
            .enumerate()
            .find(|(_, (_, m))| m.classes != first.classes)
        {
            return Err(AwdError::Config(format!(
                "{} has the classes {:?}, {} has {:?}: an ensemble needs the same classes",
                paths[0].display(),
                first.classes,
                paths[i].display(),
                other.classes
            )));
        }
        Ok(Self { models })
    }

    /// The class names, in the order of a prediction's probabilities.
    pub fn classes(&self) -> &[String] {
        &self.models[0].1.classes
    }

    /// Whether a document may get several labels (sigmoid outputs and a threshold).
    pub fn multi_label(&self) -> bool {
        self.models[0].0.config.multi_label
    }

    /// Each document's prediction, `batch_size` documents a batch (sorted by length; a
    /// document's probabilities do not depend on its batch-mates).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use awd::classify::ClassifyConfig;
    /// # use awd::jobs::train::{ClassifierTraining, new_classifier};
    /// # use awd::train::{RunOptions, Stage};
    /// # let dir = tempfile::tempdir()?;
    /// # let csv = dir.path().join("docs.csv");
    /// # let rows: String = (0..40).map(|i| format!("{},{} film\n", ["neg", "pos"][i % 2], ["awful", "great"][i % 2])).collect();
    /// # std::fs::write(&csv, format!("label,text\n{rows}"))?;
    /// # let mut config = ClassifyConfig::ulmfit();
    /// # (config.model.emb_size, config.model.hidden_size, config.model.n_layers) = (8, 16, 1);
    /// # (config.batch_size, config.stages) = (8, vec![Stage { epochs: 1, lr: 1e-2, lr_low: 0.0, groups: 0 }]);
    /// # let spec = ClassifierTraining { config, data: csv, encoder: None, vocab: None, backwards: false };
    /// # let run = dir.path().join("run");
    /// # let opts = RunOptions::quiet(run.clone(), awd::device::cpu_autodiff());
    /// # new_classifier(&spec, opts, false)?.learner.run()?;
    /// use awd::jobs::classify::Classifiers;
    /// let mut clas = Classifiers::load(&[run], None, &awd::device::cpu())?;
    /// let docs = ["a great film".to_string(), "an awful film".to_string()];
    /// let predictions = clas.predict(&docs, 64)?;
    /// assert_eq!(clas.classes(), ["neg", "pos"]);
    /// assert_eq!(predictions[0].probabilities.len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn predict(&mut self, docs: &[String], batch_size: usize) -> Result<Vec<Prediction>> {
        let probs = ensemble(&mut self.models, docs, batch_size)?;
        let (multi, threshold) = (self.multi_label(), self.models[0].1.threshold);
        let classes = self.classes();
        Ok(probs
            .into_iter()
            .map(|p| {
                let chosen = match multi {
                    true => predicted(&p, true, threshold),
                    false => vec![argmax(&p)],
                };
                Prediction {
                    labels: chosen.iter().map(|&c| classes[c].clone()).collect(),
                    probabilities: p,
                }
            })
            .collect())
    }

    /// Scores the classifiers on the labelled documents at `data` (a CSV's every row; a
    /// directory's validation folder where it has one): loss, accuracy, per-class
    /// precision/recall/F1 and, for one label a document, the confusion matrix.
    pub fn evaluate(
        &mut self,
        data: &Path,
        columns: &LabelOptions,
        batch_size: usize,
    ) -> Result<Scores> {
        let raw = read_raw(data, columns)?;
        let keep: Vec<usize> = match data.is_dir() && raw.is_valid.iter().any(|&v| v) {
            true => (0..raw.docs.len()).filter(|&i| raw.is_valid[i]).collect(),
            false => (0..raw.docs.len()).collect(),
        };
        let (classes, multi) = (self.classes().to_vec(), self.multi_label());
        let mut labels = Vec::with_capacity(keep.len());
        for &i in &keep {
            let l = &raw.labels[i];
            let parts: Vec<&str> = match multi {
                true => l
                    .split(LABEL_DELIM)
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect(),
                false => vec![l.as_str()],
            };
            let ids =
                parts
                    .into_iter()
                    .map(|part| {
                        classes.binary_search_by(|c| c.as_str().cmp(part)).map_err(|_| {
                        AwdError::Config(format!(
                            "{}, {}: the label `{part}` is not one of the model's classes ({})",
                            data.display(),
                            raw.names[i],
                            classes.join(", ")
                        ))
                    })
                    })
                    .collect::<Result<Vec<usize>>>()?;
            labels.push(ids);
        }
        let docs: Vec<String> = keep.iter().map(|&i| raw.docs[i].clone()).collect();
        let probs = ensemble(&mut self.models, &docs, batch_size)?;
        let threshold = self.models[0].1.threshold;
        Ok(Scores::new(
            &probs,
            &labels,
            classes.len(),
            multi,
            threshold,
        ))
    }
}
