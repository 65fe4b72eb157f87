//! Benchmarks of the real model: training steps, evaluation and generation, with peak memory.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dropout::{Masks, set_training};
use crate::error::Result;
use crate::kernels::adam::FusedAdam;
use crate::model::{AwdLstmConfig, LanguageModel};

/// The shapes of one benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Shapes {
    pub vocab: usize,
    pub emb: usize,
    pub hidden: usize,
    pub layers: usize,
    pub batch: usize,
    pub bptt: usize,
}

/// P1: vocab 10k, emb 200, hidden 512, 2 layers, batch 32, bptt 35.
pub const P1: Shapes = Shapes {
    vocab: 10_000,
    emb: 200,
    hidden: 512,
    layers: 2,
    batch: 32,
    bptt: 35,
};
/// P2 (AWD-LSTM): vocab 10k, emb 400, hidden 1152, 3 layers, batch 32, bptt 70.
pub const P2: Shapes = Shapes {
    vocab: 10_000,
    emb: 400,
    hidden: 1152,
    layers: 3,
    batch: 32,
    bptt: 70,
};

impl Shapes {
    /// fastai's dropouts (`awd_lstm_lm_config`) at these sizes.
    pub fn config(&self) -> AwdLstmConfig {
        AwdLstmConfig {
            vocab_size: self.vocab,
            emb_size: self.emb,
            hidden_size: self.hidden,
            n_layers: self.layers,
            ..AwdLstmConfig::default()
        }
    }
}

/// Timings of one benchmark.
#[derive(Debug, Clone)]
pub struct Timing {
    pub ms_per_step: f64,
    pub tokens_per_s: f64,
}

fn tokens(
    rng: &mut ChaCha8Rng,
    s: &Shapes,
    batch: usize,
    len: usize,
    device: &Device,
) -> Tensor<2, Int> {
    let v: Vec<i64> = (0..batch * len)
        .map(|_| rng.random_range(0..s.vocab as i64))
        .collect();
    Tensor::from_data(TensorData::new(v, [batch, len]), device)
}

/// Full training steps (forward, cross-entropy + AR + TAR, backward, Adam), after one warm-up.
pub fn train(s: &Shapes, steps: usize, device: &Device) -> Result<Timing> {
    let device = device.clone().autodiff();
    let masks = Masks::seeded(0);
    let mut model = set_training(LanguageModel::new(&s.config(), &masks, &device)?, true);
    let mut optim = FusedAdam::new(0.9, 0.999, 1e-8, None).init();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut step = |model: LanguageModel| -> Result<LanguageModel> {
        let mut model = model;
        let x = tokens(&mut rng, s, s.batch, s.bptt, &device);
        let y = tokens(&mut rng, s, s.batch, s.bptt, &device);
        let (_, loss) = model.loss(x, y, 2.0, 1.0)?;
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        Ok(optim.step(1e-3, model, grads))
    };
    model = step(model)?;
    let start = Instant::now();
    for _ in 0..steps {
        model = step(model)?;
    }
    device.sync().ok();
    Ok(timing(start, steps, s.batch * s.bptt))
}

/// Evaluation forward passes (no autodiff), after one warm-up.
pub fn eval(s: &Shapes, steps: usize, device: &Device) -> Result<Timing> {
    let device = device.clone().without_autodiff();
    let mut model = LanguageModel::new(&s.config(), &Masks::seeded(0), &device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut run = |model: &mut LanguageModel| -> Result<()> {
        let x = tokens(&mut rng, s, s.batch, s.bptt, &device);
        let y = tokens(&mut rng, s, s.batch, s.bptt, &device);
        let (_, loss) = model.loss(x, y, 0.0, 0.0)?;
        let _ = loss.cross_entropy.into_scalar::<f32>();
        Ok(())
    };
    run(&mut model)?;
    let start = Instant::now();
    for _ in 0..steps {
        run(&mut model)?;
    }
    Ok(timing(start, steps, s.batch * s.bptt))
}

/// Generation at batch 1: one token in, one sampled token out, `tokens` times.
pub fn generate(s: &Shapes, tokens_out: usize, device: &Device) -> Result<Timing> {
    let device = device.clone().without_autodiff();
    let mut model = LanguageModel::new(&s.config(), &Masks::seeded(0), &device)?;
    let mut id = 0i64;
    let start = Instant::now();
    for _ in 0..tokens_out {
        let x: Tensor<2, Int> = Tensor::from_data(TensorData::new(vec![id], [1, 1]), &device);
        let logits = model.forward(x)?.logits.expect("forward forms the logits");
        id = logits.argmax(2).into_scalar::<i64>();
    }
    Ok(timing(start, tokens_out, 1))
}

fn timing(start: Instant, steps: usize, tokens_per_step: usize) -> Timing {
    let secs = start.elapsed().as_secs_f64() / steps.max(1) as f64;
    Timing {
        ms_per_step: secs * 1e3,
        tokens_per_s: tokens_per_step as f64 / secs,
    }
}

/// The peak resident memory of this process so far, in MB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
