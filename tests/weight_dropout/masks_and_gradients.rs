use super::*;

#[test]
fn one_mask_per_pass_shared_by_every_timestep_and_new_next_pass() {
    let dev = device::cpu_autodiff();
    let (masks, seen) = recording(3);
    let lstm = LstmConfig::new(3, 5).with_batch_first(true).init(&dev);
    let wd = WeightDropout::new(lstm, &["weight_hh_l0"], 0.5, masks).unwrap();
    let x: Tensor<3> = Tensor::random([2, 9, 3], Distribution::Normal(0.0, 1.0), &dev);

    let (y1, _) = wd.dropped().unwrap().forward(x.clone(), None);
    let (y2, _) = wd.dropped().unwrap().forward(x.clone(), None);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one mask per forward pass");
    assert_ne!(seen[0].1, seen[1].1, "a new mask each pass");

    // A plain LSTM whose recurrent weight is raw * mask (the same at every step) gives y1.
    for (mask, y) in [(&seen[0], y1), (&seen[1], y2)] {
        let mut plain = wd.module().clone();
        let raw = plain.params.layers[0].weight_hh.val();
        let m: Tensor<2> = HostTensor::new(mask.0.clone(), mask.1.clone())
            .to_tensor(&dev)
            .unwrap();
        plain.params.layers[0].weight_hh = Param::from_tensor((raw * m).detach());
        let (want, _) = plain.forward(x.clone(), None);
        assert_close(
            "y",
            &HostTensor::from_tensor(y),
            &HostTensor::from_tensor(want),
            1e-6,
        );
    }
}

#[test]
fn variational_mode_drops_whole_rows_and_is_off_in_eval() {
    let dev = device::cpu_autodiff();
    let (masks, seen) = recording(5);
    let lin = LinearConfig::new(6, 8).init(&dev);
    let wd = WeightDropout::new(lin, &["weight"], 0.5, masks)
        .unwrap()
        .with_variational(true);
    let dropped = wd.dropped().unwrap();
    assert_eq!(seen.lock().unwrap()[0].0, [8, 1]);
    let w = HostTensor::from_tensor(dropped.weight.val());
    for row in w.values.chunks(6) {
        let zeros = row.iter().filter(|&&v| v == 0.0).count();
        assert!(zeros == 0 || zeros == 6, "a row is kept or dropped whole");
    }
    let eval = set_training(wd.clone(), false).dropped().unwrap();
    assert_eq!(
        HostTensor::from_tensor(eval.weight.val()),
        HostTensor::from_tensor(wd.module().weight.val())
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "no mask is drawn in eval");
}

#[test]
fn detached_copy_gets_no_gradient_but_awd_raw_weight_does() {
    // The seed's bug, reproduced with tensors: a weight built from a detached raw copy.
    let dev = device::cpu_autodiff();
    let lin = LinearConfig::new(4, 3).init(&dev);
    let wd = WeightDropout::new(lin, &["weight"], 0.3, Masks::seeded(1)).unwrap();
    let x: Tensor<2> = Tensor::random([5, 4], Distribution::Normal(0.0, 1.0), &dev);
    let grads = wd.dropped().unwrap().forward(x.clone()).sum().backward();
    assert!(grads_by_name(&wd, &grads)["weight_raw"].is_some());

    let raw = wd.module().weight.val();
    let detached = Linear {
        weight: Param::from_tensor((raw.clone().detach() * 2.0).detach()),
        bias: wd.module().bias.clone(),
    };
    let grads = detached.forward(x).sum().backward();
    assert!(raw.grad(&grads).is_none(), "a detached copy cuts the graph");
}

#[test]
fn finite_difference_gradient_of_a_tiny_weight_dropped_lstm() {
    let dev = device::cpu_autodiff();
    let (d_in, d_hid, steps, batch) = (3, 4, 5, 2);
    let lstm = LstmConfig::new(d_in, d_hid).init(&dev);
    let mask: Vec<f32> = (0..4 * d_hid * d_hid)
        .map(|i| if i % 3 == 0 { 0.0 } else { 1.0 / 0.7 })
        .collect();
    let wd = WeightDropout::new(lstm, &["weight_hh_l0"], 0.3, Masks::new(Constant(mask))).unwrap();
    let x: Tensor<3> = Tensor::random([steps, batch, d_in], Distribution::Normal(0.0, 1.0), &dev);
    let r: Tensor<3> = Tensor::random([steps, batch, d_hid], Distribution::Normal(0.0, 1.0), &dev);
    let loss_of = |wd: &WeightDropout<Lstm>| {
        let (y, _) = wd.dropped().unwrap().forward(x.clone(), None);
        (y * r.clone()).sum()
    };
    let grads = loss_of(&wd).backward();
    let analytic = grads_by_name(&wd, &grads);

    let values: std::collections::BTreeMap<_, _> = named_values(&wd).into_iter().collect();
    let eps = 1e-2f32;
    for name in [
        "weight_hh_l0_raw",
        "module.weight_ih_l0",
        "module.bias_hh_l0",
    ] {
        let ana = analytic[name].clone().unwrap();
        let scale = ana.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        for i in (0..ana.values.len()).step_by(5) {
            let eval_at = |delta: f32| {
                let mut vals = values.clone();
                vals.get_mut(name).unwrap().values[i] += delta;
                let moved = load_values(wd.clone(), &vals).unwrap();
                loss_of(&moved).into_scalar::<f32>()
            };
            let num = (eval_at(eps) - eval_at(-eps)) / (2.0 * eps);
            let a = ana.values[i];
            assert!(
                (num - a).abs() <= 1e-2 * scale + 1e-3,
                "{name}[{i}]: numeric {num}, analytic {a}"
            );
        }
    }
}
