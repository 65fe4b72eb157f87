//! The fused kernels against the reference implementations, on random shapes.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use awd::device::{self, Device};
use awd::dropout::{MaskSource, Masks, WeightDropout};
use awd::kernels::Precision;
use awd::kernels::lstm_op::lstm_sequence;
use awd::nn::lstm::{Direction, lstm_direction};
use awd::nn::{LstmConfig, LstmState};
use awd::params::{HostTensor, named_grads};
use burn::tensor::{Distribution, Tensor};
use proptest::prelude::*;

/// Hands back the same mask at every call.
struct Constant(Vec<f32>);
impl MaskSource for Constant {
    fn mask(&mut self, _: &[usize], _: f64) -> awd::Result<Vec<f32>> {
        Ok(self.0.clone())
    }
}

/// Every entry within `tol · (|want_i| + max |want|)`.
fn close(name: &str, got: &HostTensor, want: &HostTensor, tol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.shape, &want.shape);
    let scale = want.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (g, w) in got.values.iter().zip(&want.values) {
        prop_assert!(
            (g - w).abs() <= tol * (w.abs() + scale) + 1e-7,
            "{}: {} vs {} (scale {})",
            name,
            g,
            w,
            scale
        );
    }
    Ok(())
}

type Run = (
    HostTensor,
    HostTensor,
    HostTensor,
    BTreeMap<String, HostTensor>,
    HostTensor,
);

/// The fused LSTM direction with f32 products.
fn fused_f32(
    x: Tensor<3>,
    w_ih: Tensor<2>,
    w_hh: Tensor<2>,
    bias: Option<Tensor<1>>,
    state: (Tensor<2>, Tensor<2>),
    reverse: bool,
) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
    lstm_sequence(x, w_ih, w_hh, bias, state, reverse, Precision::F32)
}

fn run(
    wd: &WeightDropout<awd::nn::Lstm>,
    x: &Tensor<3>,
    state: &LstmState,
    r: &Tensor<3>,
    fused: bool,
) -> Run {
    let x = x.clone().require_grad();
    let (y, s) = wd.dropped().unwrap().forward_window_with(
        x.clone(),
        Some(state.clone()),
        if fused {
            &fused_f32 as Direction
        } else {
            &lstm_direction
        },
    );
    let grads = (y.clone() * r.clone()).sum().backward();
    let g = named_grads(wd, &grads)
        .into_iter()
        .map(|(k, v)| (k, v.expect("every parameter gets a gradient")))
        .collect();
    let dx = HostTensor::from_tensor(x.grad(&grads).unwrap());
    (
        HostTensor::from_tensor(y),
        HostTensor::from_tensor(s.h),
        HostTensor::from_tensor(s.c),
        g,
        dx,
    )
}

/// The fused LSTM against the reference ops on `dev` (tracked): outputs, final state, every
/// weight gradient and the input gradient, within `tol` of each tensor's scale.
#[allow(clippy::too_many_arguments)]
fn check_fused_lstm(
    (dev, tol): (&Device, f32),
    (t, b, i, h): (usize, usize, usize, usize),
    layers: usize,
    bidirectional: bool,
    bias: bool,
    batch_first: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let dev = dev.clone();
    dev.seed(seed);
    let lstm = LstmConfig::new(i, h)
        .with_num_layers(layers)
        .with_bidirectional(bidirectional)
        .with_bias(bias)
        .with_batch_first(batch_first)
        .init(&dev);
    let mask: Vec<f32> = (0..4 * h * h)
        .map(|k| {
            if (k as u64 + seed).is_multiple_of(3) {
                0.0
            } else {
                2.0
            }
        })
        .collect();
    let wd = WeightDropout::new(lstm, &["weight_hh_l0"], 0.5, Masks::new(Constant(mask))).unwrap();
    let shape = if batch_first { [b, t, i] } else { [t, b, i] };
    let x: Tensor<3> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev);
    let dirs = if bidirectional { 2 } else { 1 };
    let state = LstmState {
        h: Tensor::random([layers * dirs, b, h], Distribution::Normal(0.0, 1.0), &dev),
        c: Tensor::random([layers * dirs, b, h], Distribution::Normal(0.0, 1.0), &dev),
    };
    let yshape = if batch_first {
        [b, t, dirs * h]
    } else {
        [t, b, dirs * h]
    };
    let r: Tensor<3> = Tensor::random(yshape, Distribution::Normal(0.0, 1.0), &dev);
    let fused = run(&wd, &x, &state, &r, true);
    let reference = run(&wd, &x, &state, &r, false);
    close("y", &fused.0, &reference.0, tol)?;
    close("h", &fused.1, &reference.1, tol)?;
    close("c", &fused.2, &reference.2, tol)?;
    for (k, v) in &reference.3 {
        close(k, &fused.3[k], v, tol)?;
    }
    close("dx", &fused.4, &reference.4, tol)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn fused_lstm_matches_the_reference_ops(
        t in 1usize..13, b in 1usize..9, i in 1usize..7, h in 1usize..20,
        layers in 1usize..3, bidirectional: bool, bias: bool, batch_first: bool, seed in 0u64..1000,
    ) {
        let cpu = (&device::cpu_autodiff(), 1e-5);
        check_fused_lstm(cpu, (t, b, i, h), layers, bidirectional, bias, batch_first, seed)?;
    }
}

/// A window wide enough for the recurrent weight's panel layout, with 4H = 280 rows: four full
/// panels and a partial one.
#[test]
fn fused_lstm_with_the_panel_layout_matches_the_reference_ops() {
    for bidirectional in [false, true] {
        let cpu = (&device::cpu_autodiff(), 1e-5);
        check_fused_lstm(cpu, (12, 6, 5, 70), 2, bidirectional, true, true, 3).unwrap();
    }
}

/// The GPU kernels (CubeCL, on Mesa's software Vulkan in CI) against the reference ops on the
/// same device: a few shapes, both directions, with and without bias, tracked and plain. f32
/// on the GPU, so 1e-4 of each tensor's scale.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn gpu_lstm_kernels_match_the_reference_ops() {
    let gpu = common::gpu();
    let tracked = (&gpu.clone().autodiff(), 1e-4);
    check_fused_lstm(tracked, (7, 3, 5, 6), 2, true, true, false, 1).unwrap();
    check_fused_lstm(tracked, (1, 1, 1, 1), 1, false, false, true, 2).unwrap();
    check_fused_lstm(tracked, (12, 6, 5, 70), 1, false, true, true, 3).unwrap();
    // Without autodiff (evaluation): the same values.
    let lstm = LstmConfig::new(3, 4).with_batch_first(true).init(&gpu);
    let x: Tensor<3> = Tensor::random([2, 5, 3], Distribution::Normal(0.0, 1.0), &gpu);
    let (a, sa) = lstm.forward_window_with(x.clone(), None, &fused_f32);
    let (b, sb) = lstm.forward_window(x, None);
    let host = HostTensor::from_tensor;
    close("y", &host(a), &host(b), 1e-4).unwrap();
    close("h", &host(sa.h), &host(sb.h), 1e-4).unwrap();
    close("c", &host(sa.c), &host(sb.c), 1e-4).unwrap();
}

#[test]
fn fused_lstm_runs_without_autodiff_too() {
    let dev = device::cpu();
    let lstm = LstmConfig::new(3, 4).with_batch_first(true).init(&dev);
    let x: Tensor<3> = Tensor::random([2, 5, 3], Distribution::Normal(0.0, 1.0), &dev);
    let (a, sa) = lstm.forward_window_with(x.clone(), None, &fused_f32);
    let (b, sb) = lstm.forward_window(x, None);
    let host = HostTensor::from_tensor;
    for (what, got, want) in [
        ("y", host(a), host(b)),
        ("h", host(sa.h), host(sb.h)),
        ("c", host(sa.c), host(sb.c)),
    ] {
        assert_eq!(got.shape, want.shape, "{what}");
        for (g, w) in got.values.iter().zip(&want.values) {
            assert!((g - w).abs() < 1e-5, "{what}: {g} vs {w}");
        }
    }
}

/// Hidden sizes whose recurrent weight exceeds the cache take another GEMM formulation in the
/// fused backward; it must give the same gradients.
#[test]
fn fused_lstm_matches_the_reference_with_a_large_hidden_size() {
    let dev = device::cpu_autodiff();
    dev.seed(5);
    let h = 740; // 4H x H floats > 8 MB
    let lstm = LstmConfig::new(3, h).with_batch_first(true).init(&dev);
    let mask: Vec<f32> = (0..4 * h * h)
        .map(|k| if k % 4 == 0 { 0.0 } else { 4.0 / 3.0 })
        .collect();
    let wd = WeightDropout::new(lstm, &["weight_hh_l0"], 0.25, Masks::new(Constant(mask))).unwrap();
    let x: Tensor<3> = Tensor::random([2, 3, 3], Distribution::Normal(0.0, 1.0), &dev);
    let state = LstmState {
        h: Tensor::random([1, 2, h], Distribution::Normal(0.0, 1.0), &dev),
        c: Tensor::random([1, 2, h], Distribution::Normal(0.0, 1.0), &dev),
    };
    let r: Tensor<3> = Tensor::random([2, 3, h], Distribution::Normal(0.0, 1.0), &dev);
    let fused = run(&wd, &x, &state, &r, true);
    let reference = run(&wd, &x, &state, &r, false);
    let check = |name: &str, a: &HostTensor, b: &HostTensor| close(name, a, b, 1e-5).unwrap();
    check("y", &fused.0, &reference.0);
    for (k, v) in &reference.3 {
        check(k, &fused.3[k], v);
    }
    check("dx", &fused.4, &reference.4);
}

mod adam;
mod decoder;
mod frozen;
