//! Models from Python: any model awd reads (`awd::jobs::models`), classifying, scoring and
//! generating with the GIL released.

use std::path::PathBuf;
use std::sync::Mutex;

use awd::jobs::generate::{Sampling, generate};
use awd::jobs::models::{Loaded, ModelCard, ModelSpec, load};
use awd::jobs::score::score;
use awd::kernels::PrecisionChoice;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;

use crate::{err, pool};

/// Each text's labels, and each text's probability of every class.
type Predictions = (Vec<Vec<String>>, Vec<Vec<f32>>);
/// A text's tokens, each token's log-probability given the ones before, and its perplexity.
type TextScore = (Vec<String>, Vec<f64>, f64);

/// A loaded classifier or language model.
#[pyclass(module = "awd._awd", frozen)]
pub struct Model {
    inner: Mutex<Loaded>,
    card: ModelCard,
    vocab: Vec<String>,
}

impl Model {
    /// The model, for one call at a time (a call that panicked left it as whole as any other).
    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl Model {
    #[getter]
    fn kind(&self) -> &str {
        self.card.kind
    }
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.card.classes.clone()
    }
    #[getter]
    fn vocab(&self) -> Vec<String> {
        self.vocab.clone()
    }
    #[getter]
    fn multi_label(&self) -> bool {
        self.card.multi_label
    }
    /// `(vocabulary, embedding, hidden, layers)`.
    #[getter]
    fn sizes(&self) -> (usize, usize, usize, usize) {
        let c = &self.card;
        (c.vocab_size, c.emb_size, c.hidden_size, c.layers)
    }
    #[getter]
    fn source(&self) -> String {
        self.card.source.clone()
    }

    /// Each text's chosen labels and every class's probability.
    #[pyo3(signature = (texts, batch_size = 64))]
    fn predict(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        batch_size: usize,
    ) -> PyResult<Predictions> {
        py.detach(|| {
            let mut inner = self.lock();
            let Loaded::Classifier(c) = &mut *inner else {
                return Err(PyValueError::new_err("a language model does not classify"));
            };
            let p = pool::install(|| c.predict(&texts, batch_size.max(1))).map_err(err)?;
            Ok(p.into_iter().map(|p| (p.labels, p.probabilities)).unzip())
        })
    }

    /// Each text's tokens, their log-probabilities (each given the ones before), perplexity.
    fn score(&self, py: Python<'_>, texts: Vec<String>) -> PyResult<Vec<TextScore>> {
        py.detach(|| {
            let mut inner = self.lock();
            let Loaded::Lm(lm) = &mut *inner else {
                return Err(PyValueError::new_err("a classifier does not score text"));
            };
            let device = awd::device::cpu();
            pool::install(|| {
                texts
                    .iter()
                    .map(|t| {
                        let s = score(lm, t, &device).map_err(err)?;
                        let ppl = s.perplexity();
                        Ok((s.tokens, s.logprobs, ppl))
                    })
                    .collect()
            })
        })
    }

    /// `tokens` tokens continuing `prompt`; the same seed gives the same tokens.
    #[pyo3(signature = (prompt = String::new(), tokens = 50, temperature = 1.0, top_k = 0, seed = 0))]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: String,
        tokens: usize,
        temperature: f64,
        top_k: usize,
        seed: u64,
    ) -> PyResult<Vec<String>> {
        py.detach(|| {
            let mut inner = self.lock();
            let Loaded::Lm(lm) = &mut *inner else {
                return Err(PyValueError::new_err("a classifier does not generate text"));
            };
            let sampling = Sampling {
                tokens,
                temperature,
                top_k,
                seed,
            };
            pool::install(|| generate(lm, &prompt, &sampling, &awd::device::cpu(), |_| ()))
                .map_err(err)
        })
    }
}

/// Loads any model awd reads: a run directory or model file, fastai's `export.pkl`, or a fastai
/// `.pth` with its vocabulary pickle (and classes, for a classifier).
#[pyfunction]
#[pyo3(signature = (path, vocab = None, classes = Vec::new(), precision = "f32"))]
pub fn load_model(
    py: Python<'_>,
    path: PathBuf,
    vocab: Option<PathBuf>,
    classes: Vec<String>,
    precision: &str,
) -> PyResult<Model> {
    let precision = match precision {
        "f32" => PrecisionChoice::F32,
        "bf16" => PrecisionChoice::Bf16,
        "auto" => PrecisionChoice::Auto,
        other => {
            return Err(PyValueError::new_err(format!(
                "precision must be f32, bf16 or auto, not `{other}`"
            )));
        }
    };
    py.detach(|| {
        if !path.exists() {
            return Err(PyFileNotFoundError::new_err(format!(
                "{}: no such file or directory",
                path.display()
            )));
        }
        let spec = ModelSpec {
            vocab,
            classes,
            ..ModelSpec::parse(&path.to_string_lossy())
        };
        let spec = ModelSpec {
            path: path.clone(),
            ..spec
        };
        let (model, card) =
            pool::install(|| load(&spec, precision, &awd::device::cpu())).map_err(err)?;
        let vocab = match &model {
            Loaded::Classifier(c) => c.models[0].1.vocab.itos().to_vec(),
            Loaded::Lm(lm) => lm.vocab.itos().to_vec(),
        };
        Ok(Model {
            inner: Mutex::new(model),
            card,
            vocab,
        })
    })
}
