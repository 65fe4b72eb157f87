//! The fused kernels against the reference implementations, on random shapes.

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

mod decoder {
    use awd::device::{self, Device};
    use awd::kernels::Precision;
    use awd::kernels::decoder_ce::{CHUNK_ROWS, decoder_cross_entropy};
    use awd::model::loss::cross_entropy;
    use awd::nn::linear::linear;
    use awd::params::HostTensor;
    use burn::tensor::{Distribution, Int, Tensor, TensorData};
    use proptest::prelude::*;

    fn rel_close(a: &HostTensor, b: &HostTensor, tol: f32) -> bool {
        let scale = b.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.values
            .iter()
            .zip(&b.values)
            .all(|(x, y)| (x - y).abs() <= tol * (y.abs() + scale) + 1e-8)
    }

    fn targets(n: usize, v: usize, seed: u64, dev: &Device) -> Tensor<1, Int> {
        let t: Vec<i64> = (0..n)
            .map(|i| ((i as u64 * 7919 + seed) % v as u64) as i64)
            .collect();
        Tensor::from_data(TensorData::new(t, [n]), dev)
    }

    fn reference(x: Tensor<2>, w: Tensor<2>, b: Option<Tensor<1>>, t: Tensor<1, Int>) -> Tensor<1> {
        let logits = linear(x.unsqueeze_dim::<3>(0), w, b);
        cross_entropy(logits, t.unsqueeze_dim::<2>(0))
    }

    /// The fused decoder + loss against the reference ops on `dev` (tracked): the loss and the
    /// gradients of `x`, the weight and the bias, within `tol` of each tensor's scale; without
    /// autodiff, the same loss.
    fn check_decoder(
        (dev, tol): (&Device, f32),
        (n, e, v): (usize, usize, usize),
        bias: bool,
        seed: u64,
    ) -> Result<(), TestCaseError> {
        dev.seed(seed);
        let x: Tensor<2> =
            Tensor::random([n, e], Distribution::Normal(0.0, 2.0), dev).require_grad();
        let w: Tensor<2> =
            Tensor::random([v, e], Distribution::Normal(0.0, 1.0), dev).require_grad();
        let b: Option<Tensor<1>> =
            bias.then(|| Tensor::random([v], Distribution::Normal(0.0, 1.0), dev).require_grad());
        let t = targets(n, v, seed, dev);

        let fused =
            decoder_cross_entropy(x.clone(), w.clone(), b.clone(), t.clone(), Precision::F32);
        let g1 = fused.clone().backward();
        let want = reference(x.clone(), w.clone(), b.clone(), t.clone());
        let g2 = want.clone().backward();
        let host = |t: Tensor<1>| HostTensor::from_tensor(t);
        prop_assert!(rel_close(&host(fused), &host(want.clone()), tol));
        let grad = |t: &Tensor<2>, g| HostTensor::from_tensor(t.grad(g).unwrap());
        prop_assert!(rel_close(&grad(&x, &g1), &grad(&x, &g2), tol));
        prop_assert!(rel_close(&grad(&w, &g1), &grad(&w, &g2), tol));
        if let Some(b) = &b {
            let gb = |g| host(b.grad(g).unwrap());
            prop_assert!(rel_close(&gb(&g1), &gb(&g2), tol));
        }
        let plain = |t: Tensor<2>| t.inner();
        let eval = decoder_cross_entropy(
            plain(x),
            plain(w),
            b.map(|b| b.inner()),
            Tensor::from_data(t.into_data(), &dev.clone().inner()),
            Precision::F32,
        );
        prop_assert!(rel_close(&host(eval), &host(want), tol));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn fused_decoder_cross_entropy_matches_the_reference(
            n in 1usize..40, e in 1usize..9, v in 2usize..300, bias: bool, seed in 0u64..1000,
        ) {
            check_decoder((&device::cpu_autodiff(), 1e-5), (n, e, v), bias, seed)?;
        }
    }

    /// The GPU's softmax + cross-entropy kernel (one cube of 256 units per row) against the
    /// reference ops on the same device: vocabularies below, at and past one cube's width.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    #[test]
    fn gpu_decoder_cross_entropy_matches_the_reference() {
        let gpu = crate::common::gpu().autodiff();
        for (k, (n, e, v)) in [
            (1, 3, 2),
            (9, 5, 255),
            (17, 4, 256),
            (33, 8, 257),
            (40, 6, 1000),
        ]
        .into_iter()
        .enumerate()
        {
            check_decoder((&gpu, 1e-4), (n, e, v), k % 2 == 0, k as u64).unwrap();
        }
        // Out-of-range ids are clamped into the vocabulary, as on the CPU: -3 reads as 0.
        let plain = gpu.inner();
        let x: Tensor<2> = Tensor::random([3, 4], Distribution::Normal(0.0, 1.0), &plain);
        let w: Tensor<2> = Tensor::random([300, 4], Distribution::Normal(0.0, 1.0), &plain);
        let loss = |ids: [i64; 3]| {
            let t = Tensor::from_data(TensorData::new(ids.to_vec(), [3]), &plain);
            let l = decoder_cross_entropy(x.clone(), w.clone(), None, t, Precision::F32);
            l.into_scalar::<f32>()
        };
        assert_eq!(loss([-3, 305, 7]), loss([0, 299, 7]));
    }

    #[test]
    fn without_autodiff_the_loss_is_computed_in_row_chunks_with_the_same_value() {
        let dev = device::cpu();
        for n in [
            1,
            CHUNK_ROWS - 1,
            CHUNK_ROWS,
            CHUNK_ROWS + 1,
            2 * CHUNK_ROWS + 100,
        ] {
            let x: Tensor<2> = Tensor::random([n, 5], Distribution::Normal(0.0, 2.0), &dev);
            let w: Tensor<2> = Tensor::random([37, 5], Distribution::Normal(0.0, 1.0), &dev);
            let b: Tensor<1> = Tensor::random([37], Distribution::Normal(0.0, 1.0), &dev);
            let t = targets(n, 37, 3, &dev);
            let fused = decoder_cross_entropy(
                x.clone(),
                w.clone(),
                Some(b.clone()),
                t.clone(),
                Precision::F32,
            );
            let want = reference(x, w, Some(b), t);
            assert!(
                rel_close(
                    &HostTensor::from_tensor(fused),
                    &HostTensor::from_tensor(want),
                    1e-5
                ),
                "n = {n}"
            );
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

mod adam {
    use awd::device;
    use awd::kernels::adam::{Decay, FusedAdam};
    use awd::params::HostTensor;
    use burn::module::{Module, Param, ParamId};
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, Optimizer};
    use burn::tensor::{Distribution, Tensor};

    #[derive(Module, Debug)]
    struct Holder {
        w: Param<Tensor<2>>,
    }

    fn max_rel_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        let (a, b) = (HostTensor::from_tensor(a), HostTensor::from_tensor(b));
        let scale = b.values.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        a.values
            .iter()
            .zip(&b.values)
            .map(|(x, y)| (x - y).abs() / scale)
            .fold(0.0, f32::max)
    }

    /// Four steps with changing gradients, without weight decay, with L2 decay and with
    /// decoupled decay (a size that leaves a partial parallel chunk): parameters and both
    /// moments as Burn's Adam (or, decoupled, Burn's AdamW) computes them.
    #[test]
    fn fused_adam_matches_burns_adam() {
        let dev = device::cpu();
        for decay in [Decay::None, Decay::L2(0.01), Decay::Decoupled(0.1)] {
            let wd = match decay {
                Decay::L2(wd) => Some(wd),
                _ => None,
            };
            let fused = FusedAdam::new(0.9, 0.98, 1e-8, decay);
            let adamw = match decay {
                Decay::Decoupled(wd) => Some(
                    AdamWConfig::new()
                        .with_beta_1(0.9)
                        .with_beta_2(0.98)
                        .with_epsilon(1e-8)
                        .with_weight_decay(wd)
                        .init(),
                ),
                _ => None,
            };
            let burn = AdamConfig::new()
                .with_beta_1(0.9)
                .with_beta_2(0.98)
                .with_epsilon(1e-8)
                .with_weight_decay(wd.map(WeightDecayConfig::new))
                .build();
            let mut p: Tensor<2> = Tensor::random([37, 1000], Distribution::Normal(0.0, 1.0), &dev);
            let mut q = p.clone();
            let (mut sf, mut sb) = (None, None);
            let mut w = p.clone();
            let mut m = adamw;
            // One id for every step's module, so AdamW keeps its state.
            let id = ParamId::new();
            for step in 0..4 {
                let g: Tensor<2> = Tensor::random(
                    [37, 1000],
                    Distribution::Normal(0.0, 0.1 + step as f64),
                    &dev,
                );
                let lr = 1e-3 * (step + 1) as f64;
                (p, sf) = fused.step(lr, p, g.clone(), sf);
                if let Some(m) = m.as_mut() {
                    // Through a module, the way Burn's AdamW is used: d(sum(w·g))/dw = g.
                    let ad = dev.clone().autodiff();
                    let on = |t: &Tensor<2>| Tensor::<2>::from_data(t.to_data(), &ad);
                    let module = Holder {
                        w: Param::initialized(id, on(&w).require_grad()),
                    };
                    let loss = (module.w.val() * on(&g)).sum();
                    let grads = GradientsParams::from_grads(loss.backward(), &module);
                    w = m.step(lr, module, grads).w.val().inner();
                }
                (q, sb) = burn.step(lr, q, g, sb);
            }
            if matches!(decay, Decay::Decoupled(_)) {
                let d = max_rel_diff(p, w);
                assert!(d <= 1e-6, "parameters, {decay:?}: {d}");
                continue;
            }
            let (sf, sb) = (sf.unwrap().momentum, sb.unwrap().momentum);
            assert_eq!(sf.time, sb.time);
            assert!(max_rel_diff(p, q) <= 1e-6, "parameters, {decay:?}");
            assert!(
                max_rel_diff(sf.moment_1, sb.moment_1) <= 1e-6,
                "first moment"
            );
            assert!(
                max_rel_diff(sf.moment_2, sb.moment_2) <= 1e-6,
                "second moment"
            );
        }
    }

    /// A parameter that is a view into part of a larger buffer is updated as itself.
    #[test]
    fn fused_adam_updates_a_view_as_its_own_values() {
        let dev = device::cpu();
        let fused = FusedAdam::new(0.9, 0.999, 1e-8, Decay::None);
        let burn = AdamConfig::new().with_epsilon(1e-8).build();
        let big: Tensor<2> = Tensor::random([20, 30], Distribution::Normal(0.0, 1.0), &dev);
        let view = big.narrow(0, 5, 7);
        let g: Tensor<2> = Tensor::random([7, 30], Distribution::Normal(0.0, 1.0), &dev);
        let (p, _) = fused.step(1e-2, view.clone(), g.clone(), None);
        let (q, _) = burn.step(1e-2, view.clone(), g, None);
        assert!(max_rel_diff(p.clone(), q) <= 1e-6);
        assert!(max_rel_diff(p, view) > 1e-4, "the step moved the parameter");
    }
}
