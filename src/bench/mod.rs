//! Benchmarks of the real model: the training step `awd train` runs, the training loop itself,
//! evaluation and generation, with peak memory; the step against the machine's peak
//! ([`roofline`]).

pub mod roofline;

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{Dataset, Level, Vocab};
use crate::dropout::set_training;
use crate::error::Result;
use crate::kernels::workers::on_pool_unsent;
use crate::model::{AwdLstmConfig, LanguageModel};
use crate::train::init_model;
use crate::train::{Outcome, Preset, RunOptions, TrainConfig, TrainStep, Trainer};

/// Vocabulary size of the benchmarks.
pub const VOCAB: usize = 10_000;

/// The preset whose optimizer, clipping, AR/TAR and dropouts the benchmarks train with.
pub const PRESET: Preset = Preset::AwdLstmLm;

/// A benchmark configuration: [`PRESET`] at the given sizes, batch 32, fixed windows of `bptt`.
fn shapes(emb_size: usize, hidden_size: usize, n_layers: usize, bptt: usize) -> TrainConfig {
    let preset = PRESET.config();
    TrainConfig {
        model: AwdLstmConfig {
            emb_size,
            hidden_size,
            n_layers,
            ..preset.model.clone()
        },
        batch_size: 32,
        bptt,
        variable_bptt: false,
        ..preset
    }
}

/// P1: vocab 10k, emb 200, hidden 512, 2 layers, batch 32, bptt 35.
pub fn p1() -> TrainConfig {
    shapes(200, 512, 2, 35)
}

/// P2 (AWD-LSTM): vocab 10k, emb 400, hidden 1152, 3 layers, batch 32, bptt 70.
pub fn p2() -> TrainConfig {
    shapes(400, 1152, 3, 70)
}

/// Timings of one benchmark.
#[derive(Debug, Clone)]
pub struct Timing {
    pub ms_per_step: f64,
    pub tokens_per_s: f64,
}

fn tokens(rng: &mut ChaCha8Rng, batch: usize, len: usize, device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = (0..batch * len)
        .map(|_| rng.random_range(0..VOCAB as i64))
        .collect();
    Tensor::from_data(TensorData::new(v, [batch, len]), device)
}

/// Runs the training step of `cfg` (the one `awd train` runs, at `cfg.lr`) over `batches`,
/// from the model a run of `cfg` starts from. Returns the model and the seconds taken by all
/// steps but the first (the warm-up).
pub fn run_steps(
    cfg: &TrainConfig,
    vocab: usize,
    batches: Vec<(Tensor<2, Int>, Tensor<2, Int>)>,
    device: &Device,
) -> Result<(LanguageModel, f64)> {
    let device = device.clone().autodiff();
    let (model, _masks) = init_model(cfg, vocab, &device)?;
    let mut model = set_training(model, true);
    let mut step = TrainStep::new(&cfg.optim);
    let mut start = Instant::now();
    for (i, (x, y)) in batches.into_iter().enumerate() {
        // On the pool, as the learner runs its steps (kernels::workers).
        // SAFETY: the step's `Rc<Dist>` (one rank) has its clones on this thread alone.
        model = unsafe { on_pool_unsent(|| step.lm(model, x, y, cfg.lr)) }?.0;
        if i == 0 {
            device.sync().ok();
            start = Instant::now();
        }
    }
    device.sync().ok();
    Ok((model, start.elapsed().as_secs_f64()))
}

/// `steps` training steps of `cfg` on random tokens, after one warm-up.
pub fn train(cfg: &TrainConfig, steps: usize, device: &Device) -> Result<Timing> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (b, t) = (cfg.batch_size, cfg.bptt);
    let dev = device.clone().autodiff();
    let batches = (0..=steps)
        .map(|_| (tokens(&mut rng, b, t, &dev), tokens(&mut rng, b, t, &dev)))
        .collect();
    let (_, secs) = run_steps(cfg, VOCAB, batches, device)?;
    Ok(timing(secs, steps, b * t))
}

/// `awd train` itself (data windows, step, progress, metrics) for `steps` steps after a first
/// one on random tokens; the time is the loop's own, without validation and checkpoints.
pub fn train_loop(cfg: &TrainConfig, steps: usize, device: &Device) -> Result<Timing> {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut ids =
        |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..VOCAB as u32)).collect() };
    let data = Dataset {
        vocab: Vocab::from_itos((0..VOCAB).map(|i| format!("t{i}")).collect()),
        level: Level::Word,
        train: ids(cfg.batch_size * (cfg.bptt * (steps + 1) + 2)),
        valid: ids(cfg.eval_batch_size * (cfg.bptt + 2)),
        test: None,
        description: "random tokens".into(),
        entropy_rate: None,
    };
    let (_dir, opts) = scratch_run(device)?;
    let cfg = TrainConfig {
        max_steps: steps + 1,
        epochs: 1,
        ..cfg.clone()
    };
    match Trainer::new(cfg, data, opts, None)?.run()? {
        Outcome::Finished(s) => Ok(timing(
            s.fit.train_s,
            s.fit.timed_steps,
            (s.fit.train_tokens as usize).div_ceil(s.fit.timed_steps.max(1)),
        )),
        Outcome::Interrupted { .. } => unreachable!("nothing asks this run to stop"),
    }
}

/// The classifier's shapes: fastai's default encoder (emb 400, hidden 1152, 3 layers) and
/// head, batch 64 of documents `doc_len` tokens long, two classes.
pub fn clas_config() -> crate::classify::ClassifyConfig {
    let mut cfg = crate::classify::ClassifyConfig::ulmfit();
    cfg.model.emb_size = 400;
    cfg.model.hidden_size = 1152;
    cfg.model.n_layers = 3;
    cfg.batch_size = 64;
    cfg
}

/// `steps` steps of the classifier's training (the step `awd classify train` runs, every layer
/// group unfrozen as in the recipe's last stage) on random documents of `doc_len` tokens, after
/// one warm-up.
pub fn clas(
    cfg: &crate::classify::ClassifyConfig,
    doc_len: usize,
    steps: usize,
    device: &Device,
) -> Result<Timing> {
    use crate::classify::ClassifierTrainer;
    use crate::classify::data::{Example, Labelled};
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut doc = |label| Example {
        ids: (0..doc_len)
            .map(|_| rng.random_range(2..VOCAB as u32))
            .collect(),
        labels: vec![label],
    };
    let b = cfg.batch_size;
    let data = Labelled {
        description: "random documents".into(),
        classes: vec!["a".into(), "b".into()],
        train: (0..b).map(|i| doc(i % 2)).collect(),
        valid: (0..2).map(&mut doc).collect(),
    };
    let vocab = Vocab::from_itos((0..VOCAB).map(|i| format!("t{i}")).collect());
    let (_dir, opts) = scratch_run(device)?;
    let last = *cfg.stages.last().expect("stages");
    let cfg = crate::classify::ClassifyConfig {
        stages: vec![crate::train::Stage { groups: 0, ..last }],
        ..cfg.clone()
    };
    let mut trainer = ClassifierTrainer::new(cfg, data, vocab, None, false, opts)?;
    let batch: Vec<usize> = (0..b).collect();
    trainer.step_once(batch.clone(), last.lr)?;
    device.sync().ok();
    let start = Instant::now();
    for _ in 0..steps {
        trainer.step_once(batch.clone(), last.lr)?;
    }
    device.sync().ok();
    Ok(timing(start.elapsed().as_secs_f64(), steps, b * doc_len))
}

/// Evaluation forward passes (no autodiff), after one warm-up.
pub fn eval(cfg: &TrainConfig, steps: usize, device: &Device) -> Result<Timing> {
    let device = device.clone().without_autodiff();
    let (mut model, _) = init_model(cfg, VOCAB, &device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (b, t) = (cfg.batch_size, cfg.bptt);
    let mut run = |model: &mut LanguageModel| -> Result<()> {
        let x = tokens(&mut rng, b, t, &device);
        let y = tokens(&mut rng, b, t, &device);
        let (_, loss) = model.loss(x, y, 0.0, 0.0)?;
        let _ = loss.cross_entropy.into_scalar::<f32>();
        Ok(())
    };
    run(&mut model)?;
    let start = Instant::now();
    for _ in 0..steps {
        run(&mut model)?;
    }
    Ok(timing(start.elapsed().as_secs_f64(), steps, b * t))
}

/// Generation at batch 1: one token in, one sampled token out, `tokens` times.
pub fn generate(cfg: &TrainConfig, tokens_out: usize, device: &Device) -> Result<Timing> {
    let device = device.clone().without_autodiff();
    let (mut model, _) = init_model(cfg, VOCAB, &device)?;
    let mut id = 0i64;
    let start = Instant::now();
    for _ in 0..tokens_out {
        let x: Tensor<2, Int> = Tensor::from_data(TensorData::new(vec![id], [1, 1]), &device);
        let logits = model.forward(x)?.logits.expect("forward forms the logits");
        id = logits.argmax(2).into_scalar::<i64>();
    }
    Ok(timing(start.elapsed().as_secs_f64(), tokens_out, 1))
}

/// A run directory in a temporary folder (removed when the guard drops), quiet, on `device`.
fn scratch_run(device: &Device) -> Result<(tempfile::TempDir, crate::train::Prepared)> {
    let dir = tempfile::tempdir().map_err(|e| crate::AwdError::io(std::env::temp_dir(), e))?;
    let opts = RunOptions {
        out_dir: dir.path().join("run"),
        device: device.clone().autodiff(),
        progress: false,
        stop: Default::default(),
        dist: Default::default(),
    };
    Ok((dir, opts.prepare(false)?))
}

fn timing(secs: f64, steps: usize, tokens_per_step: usize) -> Timing {
    let secs = secs / steps.max(1) as f64;
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
