//! WeightDropout: parity with fastai's seed cases, and the semantics every part of awd keeps.

#[path = "../common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};

use awd::dropout::{MaskSource, Masks, RngMasks, WeightDropout, set_training};
use awd::nn::{Linear, LinearConfig, Lstm, LstmConfig, LstmState};
use awd::params::{HostTensor, load_values, named_grads, named_values};
use awd::{AwdError, device};
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use common::*;
use proptest::prelude::*;

/// The masks a [`Recording`] saw: (shape, values) each, in draw order.
type Seen = Arc<Mutex<Vec<(Vec<usize>, Vec<f32>)>>>;

/// Passes masks through from an inner source and keeps a copy of each (shape, values).
struct Recording {
    inner: RngMasks,
    seen: Seen,
}

impl MaskSource for Recording {
    fn mask(&mut self, shape: &[usize], p: f64) -> awd::Result<Vec<f32>> {
        let m = self.inner.mask(shape, p)?;
        self.seen.lock().unwrap().push((shape.to_vec(), m.clone()));
        Ok(m)
    }
}

fn recording(seed: u64) -> (Masks, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let masks = Masks::new(Recording {
        inner: RngMasks::new(seed),
        seen: seen.clone(),
    });
    (masks, seen)
}

/// Hands back the same mask at every call.
struct Constant(Vec<f32>);
impl MaskSource for Constant {
    fn mask(&mut self, _shape: &[usize], _p: f64) -> awd::Result<Vec<f32>> {
        Ok(self.0.clone())
    }
}

fn t<const D: usize>(h: &HostTensor, dev: &Device) -> Tensor<D> {
    h.to_tensor(dev).unwrap()
}

fn grads_by_name(
    module: &impl burn::module::Module,
    grads: &burn::tensor::Gradients,
) -> std::collections::BTreeMap<String, Option<HostTensor>> {
    named_grads(module, grads).into_iter().collect()
}

#[test]
fn linear_matches_fastai_seed_case() {
    linear_case(&device::cpu_autodiff(), 1e-5);
}

#[test]
fn lstm_matches_fastai_test_case() {
    lstm_case(&device::cpu_autodiff(), 1e-5);
}

/// The seed cases on the GPU (Mesa's software Vulkan in CI), f32 there: the dropped copy and
/// the raw weights' gradients match fastai's to 1e-4 of each tensor's scale.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn weight_dropout_on_the_gpu_matches_fastai() {
    let dev = common::gpu().autodiff();
    linear_case(&dev, 1e-4);
    lstm_case(&dev, 1e-4);
}

fn linear_case(dev: &Device, tol: f32) {
    let dev = dev.clone();
    let v = under(&load("seed_cases.safetensors"), "linear");
    let linear = Linear {
        weight: Param::from_tensor(t(get(&v, "weight_raw"), &dev)),
        bias: Some(Param::from_tensor(t(get(&v, "bias_raw"), &dev))),
    };
    let (mw, mb) = (get(&v, "mask.weight"), get(&v, "mask.bias"));
    let p = p_of_mask(mw);
    let masks = Masks::replay(vec![
        (mw.shape.clone(), mw.values.clone()),
        (mb.shape.clone(), mb.values.clone()),
    ]);
    let wd = WeightDropout::new(linear, &["weight", "bias"], p, masks).unwrap();
    let names: Vec<String> = named_values(&wd).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        ["weight_raw", "bias_raw"],
        "saved names, as fastai's"
    );

    let y = wd.dropped().unwrap().forward(t::<2>(get(&v, "x"), &dev));
    assert_close("y", &HostTensor::from_tensor(y.clone()), get(&v, "y"), tol);
    let grads = (y.clone() * y).sum().backward();
    let g = grads_by_name(&wd, &grads);
    for name in ["weight_raw", "bias_raw"] {
        let got = g[name]
            .as_ref()
            .expect("the raw weight receives a gradient");
        assert_close(name, got, get(&v, &format!("grad.{name}")), tol);
    }
}

fn lstm_case(dev: &Device, tol: f32) {
    let dev = dev.clone();
    let v = under(&load("seed_cases.safetensors"), "lstm");
    let x = get(&v, "x");
    let h0 = get(&v, "h0");
    let w_ih = get(&v, "param.module.weight_ih_l0");
    let (d_in, d_hid) = (x.shape[2], h0.shape[2]);
    assert_eq!(w_ih.shape, [4 * d_hid, d_in]);
    let mask = get(&v, "mask.weight_hh_l0");
    let lstm = LstmConfig::new(d_in, d_hid)
        .with_num_layers(h0.shape[0])
        .init(&dev);
    let masks = Masks::replay(vec![(mask.shape.clone(), mask.values.clone())]);
    let wd = WeightDropout::new(lstm, &["weight_hh_l0"], p_of_mask(mask), masks).unwrap();
    let wd = load_values(wd, &under(&v, "param")).expect("fastai names load");

    let state = LstmState {
        h: t(h0, &dev),
        c: t(get(&v, "c0"), &dev),
    };
    let (y, s) = wd.dropped().unwrap().forward(t(x, &dev), Some(state));
    assert_close("y", &HostTensor::from_tensor(y.clone()), get(&v, "y"), tol);
    assert_close(
        "h",
        &HostTensor::from_tensor(s.h.clone()),
        get(&v, "h"),
        tol,
    );
    assert_close(
        "c",
        &HostTensor::from_tensor(s.c.clone()),
        get(&v, "c"),
        tol,
    );

    let loss = y.sum() + (s.h.clone() * s.h).sum() + s.c.sum();
    let grads = loss.backward();
    let g = grads_by_name(&wd, &grads);
    let want = under(&v, "grad");
    assert_eq!(
        g.len(),
        want.len(),
        "every parameter has a reference gradient"
    );
    for (name, w) in &want {
        let got = g[name]
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        assert_close(name, got, w, tol);
    }
}

#[test]
fn unknown_path_names_the_paths_that_exist() {
    let lstm = LstmConfig::new(3, 4).init(&device::cpu());
    let err = WeightDropout::new(lstm, &["weight_hh_l1"], 0.5, Masks::seeded(0)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, AwdError::UnknownPath { .. }));
    assert!(
        msg.contains("weight_hh_l1") && msg.contains("weight_hh_l0"),
        "{msg}"
    );
}

#[test]
fn globs_select_every_matching_parameter() {
    let lstm = LstmConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true)
        .init(&device::cpu());
    let wd = WeightDropout::new(lstm, &["weight_hh_l*"], 0.5, Masks::seeded(0)).unwrap();
    assert_eq!(
        wd.selected(),
        [
            "weight_hh_l0",
            "weight_hh_l0_reverse",
            "weight_hh_l1",
            "weight_hh_l1_reverse"
        ]
    );
}

#[test]
fn probability_outside_zero_one_is_an_error() {
    for p in [1.0, -0.1, 1.5, f64::NAN] {
        let lin = LinearConfig::new(2, 2).init(&device::cpu());
        let err = WeightDropout::new(lin, &["weight"], p, Masks::seeded(0)).unwrap_err();
        assert!(matches!(err, AwdError::BadProbability { .. }), "p = {p}");
    }
}

#[test]
fn replayed_mask_of_the_wrong_shape_is_an_error() {
    let dev = device::cpu_autodiff();
    let lin = LinearConfig::new(3, 2).init(&dev);
    let masks = Masks::replay(vec![(vec![3, 2], vec![2.0; 6])]);
    let wd = WeightDropout::new(lin, &["weight"], 0.5, masks).unwrap();
    let err = wd.dropped().unwrap_err();
    assert!(matches!(err, AwdError::MaskShape { .. }), "{err}");
    assert!(err.to_string().contains("[2, 3]"), "{err}");
}

#[test]
fn replayed_mask_for_another_p_is_an_error() {
    let dev = device::cpu_autodiff();
    let lin = LinearConfig::new(3, 2).init(&dev);
    let masks = Masks::replay(vec![(vec![2, 3], vec![2.0; 6])]);
    let wd = WeightDropout::new(lin, &["weight"], 0.4, masks).unwrap();
    assert!(matches!(
        wd.dropped().unwrap_err(),
        AwdError::MaskScale { .. }
    ));
}

#[test]
fn dropped_fraction_at_p_0_4_is_near_0_4() {
    let dev = device::cpu_autodiff();
    let (masks, seen) = recording(7);
    let lin = LinearConfig::new(40, 25).init(&dev);
    let wd = WeightDropout::new(lin, &["weight"], 0.4, masks).unwrap();
    wd.dropped().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].1.len(), 1000);
    let dropped = seen[0].1.iter().filter(|&&v| v == 0.0).count() as f64 / 1000.0;
    assert!((0.3..=0.5).contains(&dropped), "dropped fraction {dropped}");
}

/// A small random Linear: (module, input).
fn small_linear(d_in: usize, d_out: usize, dev: &Device) -> (Linear, Tensor<2>) {
    let lin = LinearConfig::new(d_in, d_out).init(dev);
    let x = Tensor::random([3, d_in], Distribution::Normal(0.0, 1.0), dev);
    (lin, x)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn eval_mode_plain_device_and_p_zero_are_identity(
        d_in in 1usize..6, d_out in 1usize..6, p in 0.0f64..0.9, seed in 0u64..1000
    ) {
        let dev = device::cpu_autodiff();
        let (lin, x) = small_linear(d_in, d_out, &dev);
        let want = HostTensor::from_tensor(lin.forward(x.clone()));
        let wd = WeightDropout::new(lin.clone(), &["weight", "bias"], p, Masks::seeded(seed)).unwrap();
        let eval = set_training(wd, false).dropped().unwrap();
        prop_assert_eq!(&HostTensor::from_tensor(eval.forward(x.clone())), &want);

        let zero = WeightDropout::new(lin.clone(), &["weight"], 0.0, Masks::seeded(seed)).unwrap();
        prop_assert_eq!(&HostTensor::from_tensor(zero.dropped().unwrap().forward(x.clone())), &want);

        let plain = WeightDropout::new(lin.valid(), &["weight"], p, Masks::seeded(seed)).unwrap();
        let y = plain.dropped().unwrap().forward(x.inner());
        prop_assert_eq!(&HostTensor::from_tensor(y), &want);
    }

    #[test]
    fn raw_gradient_is_mask_times_dropped_gradient_and_raw_is_untouched(
        d_in in 1usize..7, d_out in 1usize..7, p in 0.05f64..0.9, seed in 0u64..1000
    ) {
        let dev = device::cpu_autodiff();
        let (masks, seen) = recording(seed);
        let (lin, x) = small_linear(d_in, d_out, &dev);
        let before = named_values(&lin);
        let wd = WeightDropout::new(lin, &["weight"], p, masks).unwrap();
        let y = wd.dropped().unwrap().forward(x.clone());
        let grads = (y.clone() * y.clone()).sum().backward();
        prop_assert_eq!(named_values(wd.module()), before, "dropout never writes the raw weight");

        // d(sum y^2)/dW_dropped = 2 y^T x; the raw weight's gradient is that times the mask.
        let dw = HostTensor::from_tensor((y * 2.0).transpose().matmul(x));
        let mask = seen.lock().unwrap()[0].1.clone();
        let got = grads_by_name(&wd, &grads)["weight_raw"].clone().unwrap();
        for ((g, d), m) in got.values.iter().zip(&dw.values).zip(&mask) {
            if *m == 0.0 {
                prop_assert_eq!(*g, 0.0, "exactly zero where dropped");
            } else {
                prop_assert!((g - d * m).abs() <= 1e-4 * (1.0 + (d * m).abs()));
            }
        }
    }
}

mod masks_and_gradients;
