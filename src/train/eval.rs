//! Evaluation: perplexity over a whole split, stateful across windows, and the neural cache.

use burn::tensor::activation::softmax;
use std::collections::VecDeque;

use burn::tensor::Device;

use crate::data::Rows;
use crate::error::Result;
use crate::model::LanguageModel;
use crate::params::HostTensor;

/// Mean cross-entropy (nats per token) of `model` on `ids`, read as `batch` rows in windows of
/// `bptt`, the hidden state carried over the whole text. `model` should be a `valid()` copy.
pub fn mean_loss(
    model: &mut LanguageModel,
    ids: &[u32],
    batch: usize,
    bptt: usize,
    device: &Device,
) -> Result<f64> {
    let (total, count) = loss_sum(model, &Rows::new(ids, batch)?, bptt, device)?;
    Ok(total / count.max(1) as f64)
}

/// The summed cross-entropy of `model` over `rows` and the number of targets (a rank's share of
/// an evaluation, to be summed over the ranks).
pub fn loss_sum(
    model: &mut LanguageModel,
    rows: &Rows,
    bptt: usize,
    device: &Device,
) -> Result<(f64, usize)> {
    let batch = rows.batch;
    model.reset();
    let (mut total, mut count) = (0.0f64, 0usize);
    let mut i = 0;
    while i < rows.row_len - 1 {
        let (x, y) = rows.window(i, bptt, device);
        let seq = x.dims()[1];
        let (_, loss) = model.loss(x, y, 0.0, 0.0)?;
        let loss = loss.cross_entropy.into_scalar::<f64>();
        total += loss * (seq * batch) as f64;
        count += seq * batch;
        i += seq;
    }
    model.reset();
    Ok((total, count))
}

/// The neural cache pointer (Grave et al., 2017) as the AWD-LSTM paper applies it.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Number of past positions kept.
    pub window: usize,
    /// Flatness of the pointer distribution.
    pub theta: f64,
    /// Weight of the cache in the mixture.
    pub lambda: f64,
}

/// Mean cross-entropy with the cache mixed in: `p = (1-λ) p_model + λ p_cache`, where
/// `p_cache(w) ∝ Σ_{past i with target w} exp(θ h_t · h_i)` over the last `window` positions of
/// each row (h: the last layer's output).
pub fn mean_loss_with_cache(
    model: &mut LanguageModel,
    ids: &[u32],
    batch: usize,
    bptt: usize,
    cache: CacheConfig,
    device: &Device,
) -> Result<f64> {
    let rows = Rows::new(ids, batch)?;
    let vocab = model.config().vocab_size;
    model.reset();
    // Per row: past hidden states [n, E] and their targets.
    let mut past_h: Vec<VecDeque<Vec<f32>>> = vec![VecDeque::new(); batch];
    let mut past_y: Vec<VecDeque<usize>> = vec![VecDeque::new(); batch];
    let (mut total, mut count) = (0.0f64, 0usize);
    let mut i = 0;
    while i < rows.row_len - 1 {
        let (x, y) = rows.window(i, bptt, device);
        let [b, seq] = x.dims();
        let out = model.forward(x)?;
        let logits = out.logits.expect("forward forms the logits");
        let probs = HostTensor::from_tensor(softmax(logits, 2)).values;
        let hidden = HostTensor::from_tensor(out.activations).values;
        let targets: Vec<i64> = y
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap_or_default();
        let emb = hidden.len() / (b * seq);
        for r in 0..b {
            for t in 0..seq {
                let target = targets[r * seq + t] as usize;
                let h = &hidden[(r * seq + t) * emb..(r * seq + t + 1) * emb];
                let p_model = probs[(r * seq + t) * vocab + target] as f64;
                let p = if past_h[r].is_empty() {
                    p_model
                } else {
                    let scores: Vec<f64> = past_h[r]
                        .iter()
                        .map(|q| {
                            cache.theta * q.iter().zip(h).map(|(a, b)| (a * b) as f64).sum::<f64>()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = weights.iter().sum();
                    let p_cache: f64 = past_y[r]
                        .iter()
                        .zip(&weights)
                        .filter(|(y, _)| **y == target)
                        .map(|(_, w)| w / z)
                        .sum();
                    (1.0 - cache.lambda) * p_model + cache.lambda * p_cache
                };
                total -= p.max(1e-30).ln();
                count += 1;
                past_h[r].push_back(h.to_vec());
                past_y[r].push_back(target);
                if past_h[r].len() > cache.window {
                    past_h[r].pop_front();
                    past_y[r].pop_front();
                }
            }
        }
        i += seq;
    }
    model.reset();
    Ok(total / count.max(1) as f64)
}

/// Bits per token of a mean cross-entropy in nats (bits per character for a char model).
pub fn bits(loss: f64) -> f64 {
    loss / std::f64::consts::LN_2
}
