//! Regression tests for the failures the AWD-LSTM implementations awd learns from shipped with.

use awd::audit::step::audit_step;
use awd::device;
use awd::dropout::{Masks, WeightDropout, set_training};
use awd::model::{AwdLstmConfig, LanguageModel};
use awd::nn::{LinearConfig, LstmConfig};
use awd::params::{HostTensor, named_values, param_paths};
use awd::train::{OptimConfig, Outcome, RunOptions, TrainConfig, TrainStep, Trainer};
use burn::tensor::{Distribution, Int, Tensor, TensorData};

fn small_lm() -> (LanguageModel, Masks) {
    let masks = Masks::seeded(2);
    let config = AwdLstmConfig {
        vocab_size: 12,
        emb_size: 6,
        hidden_size: 8,
        n_layers: 2,
        weight_p: 0.5,
        ..AwdLstmConfig::default()
    };
    let m = LanguageModel::new(&config, &masks, &device::cpu_autodiff()).unwrap();
    (set_training(m, true), masks)
}

fn batch() -> (Tensor<2, Int>, Tensor<2, Int>) {
    let dev = device::cpu_autodiff();
    let ids: Vec<i64> = (0..24).map(|i| (i * 5) % 12).collect();
    let y: Vec<i64> = ids.iter().map(|i| (i + 3) % 12).collect();
    (
        Tensor::from_data(TensorData::new(ids, [3, 8]), &dev),
        Tensor::from_data(TensorData::new(y, [3, 8]), &dev),
    )
}

/// fastai2 built the dropped weight from `raw_w.data`: the raw weights were never trained.
#[test]
fn regression_data_detach_raw_weights_receive_gradients_and_are_trained() {
    let (model, masks) = small_lm();
    let (x, y) = batch();
    let mut step = TrainStep::new(&OptimConfig::default());
    let (report, stepped) = audit_step(&mut step, model.clone(), &masks, 1e-3, |m| {
        Ok(m.loss(x, y, 2.0, 1.0)?.1.total)
    })
    .unwrap();
    assert!(report.is_clean(), "{report:?}");
    let before: std::collections::BTreeMap<_, _> = named_values(&model).into_iter().collect();
    for (path, after) in named_values(&stepped) {
        if path.ends_with("_raw") {
            assert!(report.get(&path).unwrap().is_trained(), "{path}");
            assert_ne!(
                before[&path], after,
                "{path} was not moved by the optimizer"
            );
        }
    }
}

/// fastai left the wrapped module's `weight_hh_l0` a parameter beside `weight_hh_l0_raw`: the
/// optimizer and gradient clipping saw a non-leaf copy. In awd the raw weight is the only one.
#[test]
fn regression_raw_weight_is_the_only_parameter_the_optimizer_sees() {
    let (model, _) = small_lm();
    let paths = param_paths(&model);
    for l in 0..2 {
        assert!(paths.contains(&format!("0.rnns.{l}.weight_hh_l0_raw")));
        assert!(
            !paths
                .iter()
                .any(|p| p == &format!("0.rnns.{l}.module.weight_hh_l0"))
        );
    }
    // After a forward pass, every parameter is still a leaf that requires a gradient.
    let (x, y) = batch();
    let mut m = model.clone();
    let _ = m.loss(x, y, 2.0, 1.0).unwrap();
    struct Leaves(Vec<String>);
    impl awd::params::ParamVisitor for Leaves {
        fn visit<const D: usize>(&mut self, path: &str, p: &burn::module::Param<Tensor<D>>) {
            if !p.val().is_require_grad() {
                self.0.push(path.to_string());
            }
        }
    }
    let mut v = Leaves(Vec::new());
    awd::params::visit_params(&m, &mut v);
    assert!(v.0.is_empty(), "not trainable leaves: {:?}", v.0);
}

/// salesforce's WeightDrop(variational=True) kept dropping rows in eval mode.
#[test]
fn regression_variational_weight_drop_is_off_in_eval() {
    let dev = device::cpu_autodiff();
    let lstm = LstmConfig::new(3, 4).with_batch_first(true).init(&dev);
    let wd = WeightDropout::new(lstm, &["weight_hh_l0"], 0.5, Masks::seeded(1))
        .unwrap()
        .with_variational(true);
    let x: Tensor<3> = Tensor::random([2, 5, 3], Distribution::Normal(0.0, 1.0), &dev);
    let want = HostTensor::from_tensor(wd.module().forward(x.clone(), None).0);
    let eval = set_training(wd.clone(), false);
    for _ in 0..3 {
        let got = HostTensor::from_tensor(eval.dropped().unwrap().forward(x.clone(), None).0);
        assert_eq!(got, want);
    }
    // On a plain (inference) device, too.
    let plain = burn::module::Module::valid(&wd);
    let got = HostTensor::from_tensor(plain.dropped().unwrap().forward(x.inner(), None).0);
    assert_eq!(got, want);
}

/// A popular PyTorch LSTM package applied dropout to the weights in place, so dropped entries
/// stayed zero forever. Here the raw weights stay whole through many passes and training steps.
#[test]
fn regression_dropout_never_zeroes_raw_weights_in_place() {
    let dev = device::cpu_autodiff();
    let wd = WeightDropout::new(
        LinearConfig::new(10, 10).init(&dev),
        &["weight"],
        0.6,
        Masks::seeded(4),
    )
    .unwrap();
    let raw = HostTensor::from_tensor(wd.module().weight.val());
    for _ in 0..10 {
        let _ = wd.dropped().unwrap();
    }
    assert_eq!(
        HostTensor::from_tensor(wd.module().weight.val()),
        raw,
        "dropping wrote the raw weight"
    );
    assert!(raw.values.iter().all(|&v| v != 0.0));

    // A short training run: no raw weight entry ends stuck at exactly zero.
    let tmp = tempfile::tempdir().unwrap();
    let data = awd::data::Dataset::grammar(3000, awd::data::Specials::Ptb, 0).unwrap();
    let cfg = TrainConfig {
        model: AwdLstmConfig {
            emb_size: 8,
            hidden_size: 12,
            n_layers: 2,
            weight_p: 0.6,
            ..AwdLstmConfig::default()
        },
        epochs: 2,
        batch_size: 4,
        bptt: 10,
        ..TrainConfig::default()
    };
    let opts = RunOptions {
        out_dir: tmp.path().join("run"),
        device: device::cpu_autodiff(),
        progress: false,
        stop: Default::default(),
        dist: Default::default(),
    };
    let mut t = Trainer::new(cfg, data, opts.clone().prepare(false).unwrap(), None).unwrap();
    assert!(matches!(t.run().unwrap(), Outcome::Finished(_)));
    let trained = awd::checkpoint::safetensors::read(&opts.model_path()).unwrap();
    for (k, v) in trained.iter().filter(|(k, _)| k.ends_with("_raw")) {
        let zeros = v.values.iter().filter(|&&x| x == 0.0).count();
        assert_eq!(zeros, 0, "{k} has {zeros} entries stuck at zero");
    }
}
