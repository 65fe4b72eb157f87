//! The fused kernels against the reference implementations, on random shapes.

use std::collections::BTreeMap;

use awd::device;
use awd::dropout::{MaskSource, Masks, WeightDropout};
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

fn close(name: &str, got: &HostTensor, want: &HostTensor) -> Result<(), TestCaseError> {
    prop_assert_eq!(&got.shape, &want.shape);
    let scale = want.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (g, w) in got.values.iter().zip(&want.values) {
        prop_assert!(
            (g - w).abs() <= 1e-5 * (w.abs() + scale) + 1e-7,
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

fn run(
    wd: &WeightDropout<awd::nn::Lstm>,
    x: &Tensor<3>,
    state: &LstmState,
    r: &Tensor<3>,
    fused: bool,
) -> Run {
    let x = x.clone().require_grad();
    let (y, s) = wd
        .dropped()
        .unwrap()
        .forward_window(x.clone(), Some(state.clone()), fused);
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn fused_lstm_matches_the_reference_ops(
        t in 1usize..9, b in 1usize..6, i in 1usize..7, h in 1usize..9,
        layers in 1usize..3, bidirectional: bool, bias: bool, batch_first: bool, seed in 0u64..1000,
    ) {
        let dev = device::cpu_autodiff();
        dev.seed(seed);
        let lstm = LstmConfig::new(i, h)
            .with_num_layers(layers)
            .with_bidirectional(bidirectional)
            .with_bias(bias)
            .with_batch_first(batch_first)
            .init(&dev);
        let mask: Vec<f32> = (0..4 * h * h).map(|k| if (k as u64 + seed) % 3 == 0 { 0.0 } else { 2.0 }).collect();
        let wd = WeightDropout::new(lstm, &["weight_hh_l0"], 0.5, Masks::new(Constant(mask))).unwrap();
        let shape = if batch_first { [b, t, i] } else { [t, b, i] };
        let x: Tensor<3> = Tensor::random(shape, Distribution::Normal(0.0, 1.0), &dev);
        let dirs = if bidirectional { 2 } else { 1 };
        let state = LstmState {
            h: Tensor::random([layers * dirs, b, h], Distribution::Normal(0.0, 1.0), &dev),
            c: Tensor::random([layers * dirs, b, h], Distribution::Normal(0.0, 1.0), &dev),
        };
        let yshape = if batch_first { [b, t, dirs * h] } else { [t, b, dirs * h] };
        let r: Tensor<3> = Tensor::random(yshape, Distribution::Normal(0.0, 1.0), &dev);
        let fused = run(&wd, &x, &state, &r, true);
        let reference = run(&wd, &x, &state, &r, false);
        close("y", &fused.0, &reference.0)?;
        close("h", &fused.1, &reference.1)?;
        close("c", &fused.2, &reference.2)?;
        for (k, v) in &reference.3 {
            close(k, &fused.3[k], v)?;
        }
        close("dx", &fused.4, &reference.4)?;
    }
}

#[test]
fn fused_lstm_runs_without_autodiff_too() {
    let dev = device::cpu();
    let lstm = LstmConfig::new(3, 4).with_batch_first(true).init(&dev);
    let x: Tensor<3> = Tensor::random([2, 5, 3], Distribution::Normal(0.0, 1.0), &dev);
    let (a, sa) = lstm.forward_window(x.clone(), None, true);
    let (b, sb) = lstm.forward_window(x, None, false);
    let (a, b) = (HostTensor::from_tensor(a), HostTensor::from_tensor(b));
    for (g, w) in a.values.iter().zip(&b.values) {
        assert!((g - w).abs() < 1e-5);
    }
    assert_eq!(sa.h.dims(), sb.h.dims());
}
