//! A text scored by a language model: each token's log-probability given the tokens before it,
//! the perplexity, and the distribution of the token that would come next.

use burn::tensor::{Int, Tensor, TensorData};

use super::generate::text_ids;
use super::lm::LoadedLm;
use crate::device::Device;
use crate::error::{AwdError, Result};
use crate::params::HostTensor;

/// Positions read per forward pass (the state carries across them).
const CHUNK: usize = 512;

/// What [`score`] measured.
#[derive(Debug, Clone)]
pub struct TokenScores {
    /// The tokens read (a fastai model's start with `xxbos`) and their ids.
    pub tokens: Vec<String>,
    pub ids: Vec<u32>,
    /// `log p(token i | tokens before it)` for i ≥ 1 (the first token is given, not predicted).
    pub logprobs: Vec<f64>,
    /// The log-probability of every vocabulary entry coming next, `[V]`.
    pub next: Vec<f64>,
}

impl TokenScores {
    /// `exp(-mean log-probability)` over the predicted tokens (1 for a one-token text).
    pub fn perplexity(&self) -> f64 {
        let n = self.logprobs.len().max(1) as f64;
        (-self.logprobs.iter().sum::<f64>() / n).exp()
    }

    /// The `k` most likely next tokens and their log-probabilities, most likely first.
    pub fn top_next(&self, k: usize, lm: &LoadedLm) -> Vec<(String, f64)> {
        let mut order: Vec<usize> = (0..self.next.len()).collect();
        order.sort_by(|&a, &b| self.next[b].total_cmp(&self.next[a]));
        order
            .into_iter()
            .take(k)
            .map(|i| (lm.vocab.token(i as u32).to_string(), self.next[i]))
            .collect()
    }
}

/// Scores `text` from a fresh state (eval mode: the raw weights, no dropout).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let run = dir.path().join("run");
/// # let opts = awd::train::RunOptions::quiet(run.clone(), awd::device::cpu_autodiff());
/// # let flags = awd::train::TrainFlags { max_steps: Some(20), ..Default::default() };
/// # awd::jobs::train::train_lm(&awd::jobs::train::LmTraining { flags, ..Default::default() }, opts, false)?;
/// use awd::jobs::lm::{LmSource, load_lm};
/// use awd::jobs::score::score;
/// let device = awd::device::cpu();
/// let mut lm = load_lm(&LmSource { path: run, ..Default::default() }, &device)?;
/// let s = score(&mut lm, "the dog", &device)?;
/// assert_eq!(s.logprobs.len(), s.tokens.len() - 1);
/// assert!(s.perplexity() >= 1.0 && s.next.len() == lm.vocab.len());
/// # Ok(()) }
/// ```
pub fn score(lm: &mut LoadedLm, text: &str, device: &Device) -> Result<TokenScores> {
    if lm.backwards {
        return Err(AwdError::Config(
            "a backward model predicts each token from the ones after it: score with the forward model".into(),
        ));
    }
    let ids = text_ids(text, lm.level, &lm.vocab)?;
    let tokens = ids.iter().map(|&i| lm.vocab.token(i).to_string()).collect();
    let mut logprobs = Vec::with_capacity(ids.len());
    let mut next = Vec::new();
    lm.model.reset();
    let result = (|| -> Result<()> {
        for (c, chunk) in ids.chunks(CHUNK).enumerate() {
            let n = chunk.len();
            let x: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let x: Tensor<2, Int> = Tensor::from_data(TensorData::new(x, [1, n]), device);
            let logits = lm
                .model
                .forward(x)?
                .logits
                .expect("forward forms the logits");
            let rows = HostTensor::from_tensor(logits).values;
            let v = rows.len() / n;
            for (t, row) in rows.chunks_exact(v).enumerate() {
                let dist = log_softmax(row);
                match ids.get(c * CHUNK + t + 1) {
                    Some(&following) => logprobs.push(dist[following as usize]),
                    None => next = dist,
                }
            }
        }
        Ok(())
    })();
    lm.model.reset();
    result?;
    Ok(TokenScores {
        tokens,
        ids,
        logprobs,
        next,
    })
}

/// `log softmax(row)` in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let log_z = max + sum.ln();
    row.iter().map(|&x| x as f64 - log_z).collect()
}
