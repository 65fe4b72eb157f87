//! Text from a language model: a prompt continued token by token.

use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::lm::LoadedLm;
use crate::data::corpus::{EOS, Level};
use crate::data::{Specials, Vocab};
use crate::device::Device;
use crate::error::{AwdError, Result};
use crate::params::HostTensor;

/// How `generate` samples.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Tokens to produce.
    pub tokens: usize,
    /// Softmax temperature (> 0).
    pub temperature: f64,
    /// Sample among the k most likely tokens only (0: all).
    pub top_k: usize,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            tokens: 50,
            temperature: 1.0,
            top_k: 0,
            seed: 0,
        }
    }
}

/// Continues `prompt` (empty: the start of a line or document) with `sampling.tokens` tokens,
/// each handed to `emit` as it is drawn; returns them all. The same seed gives the same tokens.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let run = dir.path().join("run");
/// # let opts = awd::train::RunOptions::quiet(run.clone(), awd::device::cpu_autodiff());
/// # let flags = awd::train::TrainFlags { max_steps: Some(20), ..Default::default() };
/// # awd::jobs::train::train_lm(&awd::jobs::train::LmTraining { flags, ..Default::default() }, opts, false)?;
/// use awd::jobs::generate::{Sampling, generate};
/// use awd::jobs::lm::{LmSource, load_lm};
/// let device = awd::device::cpu();
/// let mut lm = load_lm(&LmSource { path: run, ..Default::default() }, &device)?;
/// let sampling = Sampling { tokens: 8, seed: 3, ..Default::default() };
/// let tokens = generate(&mut lm, "the", &sampling, &device, |_| ())?;
/// assert_eq!(tokens.len(), 8);
/// assert_eq!(tokens, generate(&mut lm, "the", &sampling, &device, |_| ())?);
/// # Ok(()) }
/// ```
pub fn generate(
    lm: &mut LoadedLm,
    prompt: &str,
    sampling: &Sampling,
    device: &Device,
    mut emit: impl FnMut(&str),
) -> Result<Vec<String>> {
    if !(sampling.temperature.is_finite() && sampling.temperature > 0.0) {
        return Err(AwdError::Config("--temperature must be > 0".into()));
    }
    if lm.backwards {
        return Err(AwdError::Config(
            "a backward model predicts the text before a prompt; generation writes forwards only"
                .into(),
        ));
    }
    let mut input = text_ids(prompt, lm.level, &lm.vocab)?;
    // Special tokens other than the end of line are never produced (unknown, padding, ...).
    let special = |t: &String| {
        let mut all = Specials::Fastai
            .tokens()
            .iter()
            .chain(Specials::Ptb.tokens());
        t != EOS && all.any(|s| s == t)
    };
    let banned: Vec<bool> = lm.vocab.itos().iter().map(special).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut out = Vec::with_capacity(sampling.tokens);
    lm.model.reset();
    for _ in 0..sampling.tokens {
        let n = input.len();
        let ids: Vec<i64> = input.iter().map(|&i| i as i64).collect();
        let x: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [1, n]), device);
        let logits = lm
            .model
            .forward(x)?
            .logits
            .expect("forward forms the logits");
        let last = HostTensor::from_tensor(logits.narrow(1, n - 1, 1)).values;
        let id = sample(&last, &banned, sampling, &mut rng);
        let token = lm.vocab.token(id).to_string();
        emit(&token);
        out.push(token);
        input = vec![id];
    }
    lm.model.reset();
    Ok(out)
}

/// A text's ids as the model reads text (a fastai model: `xxbos`, then fastai's tokens, an
/// unknown one as `xxunk`, as fastai numericalizes; other models refuse tokens they lack).
pub(crate) fn text_ids(prompt: &str, level: Level, vocab: &Vocab) -> Result<Vec<u32>> {
    let tokens: Vec<String> = match level {
        Level::Word => prompt.split_whitespace().map(String::from).collect(),
        Level::Char => prompt.chars().map(String::from).collect(),
        Level::Fastai => crate::text::for_corpus(prompt),
    };
    let unknown: Vec<&str> = tokens
        .iter()
        .filter(|t| vocab.get(t).is_none())
        .take(10)
        .map(|s| s.as_str())
        .collect();
    if !unknown.is_empty() && level != Level::Fastai {
        return Err(AwdError::Config(format!(
            "the prompt has tokens the model does not know: {}",
            unknown.join(", ")
        )));
    }
    let mut ids: Vec<u32> = tokens.iter().map(|t| vocab.id(t)).collect();
    if ids.is_empty() {
        let start = match level {
            Level::Word => EOS,
            Level::Char => "\n",
            Level::Fastai => crate::text::rules::BOS,
        };
        let id = vocab.get(start).ok_or_else(|| {
            AwdError::Config("the model has no start-of-line token: give a prompt".into())
        })?;
        ids.push(id);
    }
    Ok(ids)
}

/// One id drawn from `logits` `[V]` at the sampling's temperature and top-k, never a banned one.
fn sample(logits: &[f32], banned: &[bool], s: &Sampling, rng: &mut ChaCha8Rng) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).filter(|&i| !banned[i]).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / s.temperature).exp())
        .collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (&i, w) in order.iter().zip(&weights) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    order[order.len() - 1] as u32
}
