//! The one training step: `awd bench` and `awd train` run it, parameter groups, divergence,
//! and a short run that learns.

use awd::bench;
use awd::checkpoint::native;
use awd::data::{Dataset, Rows, Specials};
use awd::device;
use awd::dropout::Masks;
use awd::error::AwdError;
use awd::model::AwdLstmConfig;
use awd::params::named_values;
use awd::train::init_model;
use awd::train::{
    Group, OptimConfig, OptimizerKind, Outcome, Preset, RunOptions, Schedule, Summary, TrainConfig,
    TrainStep, Trainer,
};
use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;

/// Model initialization draws from the device's global RNG, seeded per run: tests that
/// initialize models in parallel threads would interleave their draws.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn small() -> TrainConfig {
    TrainConfig {
        model: AwdLstmConfig {
            emb_size: 8,
            hidden_size: 12,
            n_layers: 2,
            ..AwdLstmConfig::default()
        },
        batch_size: 4,
        bptt: 8,
        variable_bptt: false,
        optim: OptimConfig {
            schedule: Schedule::Constant,
            optimizer: OptimizerKind::Adamw,
            weight_decay: 0.01,
            clip: 0.1,
            ..OptimConfig::default()
        },
        lr: 3e-3,
        ..TrainConfig::default()
    }
}

fn train(cfg: TrainConfig, data: Dataset, dir: &std::path::Path) -> awd::Result<Summary> {
    let opts = RunOptions {
        out_dir: dir.to_path_buf(),
        device: device::cpu_autodiff(),
        progress: false,
        stop: Default::default(),
        dist: Default::default(),
    };
    match Trainer::new(cfg, data, opts.prepare(false)?, None)?.run()? {
        Outcome::Finished(s) => Ok(s),
        Outcome::Interrupted { .. } => panic!("nothing asked the run to stop"),
    }
}

/// The benchmark's entry point and `awd train` take the same steps: the same parameters after
/// five steps on the same windows (AdamW, weight decay, clipping, AR/TAR, dropout masks).
#[test]
fn bench_and_trainer_run_the_same_step() {
    let _serial = serial();
    let data = Dataset::grammar(2000, Specials::Ptb, 3).unwrap();
    let cfg = TrainConfig {
        max_steps: 5,
        ..small()
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = train(cfg.clone(), data.clone(), &tmp.path().join("run")).unwrap();
    assert_eq!(s.fit.steps, 5);
    let (trained, _) = native::load(&s.model_path, &Masks::default(), &device::cpu()).unwrap();

    let dev = device::cpu_autodiff();
    let rows = Rows::new(&data.train, cfg.batch_size).unwrap();
    let batches = (0..5)
        .map(|k| rows.window(k * cfg.bptt, cfg.bptt, &dev))
        .collect();
    let (benched, _) = bench::run_steps(&cfg, data.vocab.len(), batches, &dev).unwrap();

    let want: std::collections::BTreeMap<_, _> = named_values(&trained).into_iter().collect();
    let got = named_values(&benched);
    assert_eq!(got.len(), want.len());
    let start = init_model(&cfg, data.vocab.len(), &device::cpu())
        .unwrap()
        .0;
    let start: std::collections::BTreeMap<_, _> = named_values(&start).into_iter().collect();
    for (path, g) in got {
        let w = &want[&path];
        let diff = g
            .values
            .iter()
            .zip(&w.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff <= 1e-6, "{path}: differs by {diff}");
        assert_ne!(start[&path].values, w.values, "{path} was trained");
    }
}

/// Two parameters of three ones each, ids 1 and 2.
#[derive(Module, Debug)]
struct Two {
    a: Param<Tensor<1>>,
    b: Param<Tensor<1>>,
}

impl Two {
    fn ones(dev: &burn::tensor::Device) -> Self {
        let p =
            |id: u64| Param::initialized(ParamId::from(id), Tensor::ones([3], dev).require_grad());
        Two { a: p(1), b: p(2) }
    }

    /// The values of `a` and of `b`.
    fn values(&self) -> (Vec<f32>, Vec<f32>) {
        let v = |p: &Param<Tensor<1>>| p.val().into_data().try_to_vec::<f32>().unwrap();
        (v(&self.a), v(&self.b))
    }
}

/// Plain SGD, loss a·x + b·x: group `a` at half the step's rate moves half as far; a frozen
/// group gets no gradient and does not move.
#[test]
fn groups_scale_the_learning_rate_and_frozen_groups_stay() {
    let _serial = serial();
    let dev = device::cpu_autodiff();
    let make = || Two::ones(&dev);
    let cfg = OptimConfig {
        optimizer: OptimizerKind::Sgd,
        beta1: 0.0,
        ..OptimConfig::default()
    };
    let x: Tensor<1> = Tensor::from_floats([1.0, 2.0, 3.0], &dev);
    let run = |groups: Vec<Group>| {
        let mut step = TrainStep::new(&cfg);
        let m = step.set_groups(make(), groups).unwrap();
        let (m, _) = step
            .run(
                m,
                0.1,
                |m: &mut Two| {
                    let l = (m.a.val() * x.clone()).sum() + (m.b.val() * x.clone()).sum();
                    Ok((l.clone(), l))
                },
                |_, _| (),
            )
            .unwrap();
        m.values()
    };
    let group = |id: u64, lr_factor: f64, frozen: bool| Group {
        name: format!("p{id}"),
        ids: vec![ParamId::from(id)],
        lr_factor,
        frozen,
        momentum: None,
    };
    let (a, b) = run(vec![group(1, 0.5, false), group(2, 1.0, false)]);
    for k in 0..3 {
        let xk = (k + 1) as f32;
        assert!((a[k] - (1.0 - 0.05 * xk)).abs() < 1e-6, "a: {a:?}");
        assert!((b[k] - (1.0 - 0.1 * xk)).abs() < 1e-6, "b: {b:?}");
    }
    let (a, b) = run(vec![group(1, 1.0, true), group(2, 1.0, false)]);
    assert_eq!(a, vec![1.0; 3], "the frozen group did not move");
    assert!((b[0] - 0.9).abs() < 1e-6, "b: {b:?}");
}

/// Adam, two steps, the same gradients for both parameters: a group with its own β₁ moves as a
/// one-group Adam with that β₁ would, the other as the configured one; SGD refuses a group
/// momentum.
#[test]
fn a_group_momentum_is_that_groups_adam_beta1() {
    let _serial = serial();
    let dev = device::cpu_autodiff();
    let make = || Two::ones(&dev);
    let cfg = OptimConfig {
        optimizer: OptimizerKind::Adam,
        beta1: 0.9,
        ..OptimConfig::default()
    };
    // Loss a·x_k² + b·x_k²... with a different x at each step, so momentum matters.
    let xs: Vec<Tensor<1>> = [[1.0, -2.0, 0.5], [-3.0, 1.0, 2.0]]
        .into_iter()
        .map(|v| Tensor::from_floats(v, &dev))
        .collect();
    let run = |cfg: &OptimConfig, groups: Vec<Group>| {
        let mut step = TrainStep::new(cfg);
        let mut m = step.set_groups(make(), groups).unwrap();
        for x in &xs {
            let loss = |m: &mut Two| {
                let l = (m.a.val() * x.clone()).sum() + (m.b.val() * x.clone()).sum();
                Ok((l.clone(), l))
            };
            m = step.run(m, 0.1, loss, |_, _| ()).unwrap().0;
        }
        m.values()
    };
    let own = Group {
        name: "a".into(),
        ids: vec![ParamId::from(1)],
        lr_factor: 1.0,
        frozen: false,
        momentum: Some(0.0),
    };
    let (a, b) = run(&cfg, vec![own.clone()]);
    let (a0, _) = run(
        &OptimConfig {
            beta1: 0.0,
            ..cfg.clone()
        },
        vec![],
    );
    let (_, b9) = run(&cfg, vec![]);
    assert_eq!(a, a0, "group a moves with beta1 0");
    assert_eq!(b, b9, "b keeps the configured 0.9");
    assert_ne!(a, b, "the two momenta give different updates");
    let sgd = OptimConfig {
        optimizer: OptimizerKind::Sgd,
        ..cfg
    };
    assert!(TrainStep::new(&sgd).set_groups(make(), vec![own]).is_err());
}

/// Clipping folded into Adam's pass gives what clipping the gradients first gives (AdamW and
/// Adam with L2 decay, a norm far above the limit).
#[test]
fn clipping_inside_adam_equals_clipping_the_gradients() {
    use awd::kernels::adam::{Decay, FusedAdam};
    use awd::train::optim::{clip_global_norm, grad_norms};
    use burn::optim::GradientsParams;
    let _serial = serial();
    let dev = device::cpu_autodiff();
    let make = || Two::ones(&dev);
    let x: Tensor<1> = Tensor::from_floats([3.0, -4.0, 12.0], &dev);
    let loss = |m: &Two| (m.a.val() * x.clone()).sum() + (m.b.val() * x.clone() * 2.0).sum();
    let v = |m: &Two| {
        let (a, b) = m.values();
        [a, b].concat()
    };
    for (kind, decay) in [
        (OptimizerKind::Adamw, Decay::Decoupled(0.1)),
        (OptimizerKind::Adam, Decay::L2(0.1)),
    ] {
        let cfg = OptimConfig {
            optimizer: kind,
            weight_decay: 0.1,
            clip: 0.5,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-5,
            ..OptimConfig::default()
        };
        let mut step = TrainStep::new(&cfg);
        let (folded, stats) = step
            .run(make(), 0.01, |m| Ok((loss(m), loss(m))), |_, _| ())
            .unwrap();
        let m = make();
        let mut grads = GradientsParams::from_grads(loss(&m).backward(), &m);
        let norms = grad_norms(&m, &grads);
        let total = clip_global_norm(&m, &mut grads, &norms, 0.5);
        assert!((total - stats.grad_norm).abs() < 1e-9 && total > 10.0);
        let mut adam = FusedAdam::new(0.9, 0.99, 1e-5, decay).init();
        let separate = adam.step(0.01, m, grads);
        for (f, s) in v(&folded).iter().zip(v(&separate)) {
            assert!((f - s).abs() <= 1e-7, "{kind:?}: {f} vs {s}");
        }
    }
}

/// A learning rate far too large: the run stops with an error naming the step and what to do,
/// instead of finishing with an infinite perplexity.
#[test]
fn a_diverging_run_is_an_error_naming_the_step() {
    let _serial = serial();
    let data = Dataset::grammar(3000, Specials::Ptb, 0).unwrap();
    let cfg = TrainConfig {
        lr: 1e9,
        max_steps: 50,
        ..small()
    };
    let tmp = tempfile::tempdir().unwrap();
    match train(cfg, data, &tmp.path().join("run")) {
        Err(AwdError::Diverged(msg)) => {
            assert!(msg.contains("at step"), "{msg}");
            assert!(msg.contains("lower learning rate"), "{msg}");
        }
        other => panic!("expected a divergence error, got {other:?}"),
    }
}

mod learning;
