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
