//! `awd demo`: the seed's two examples, with the gradient of every parameter reported.

use burn::tensor::{Distribution, Tensor};

use crate::audit::{Table, grad_report};
use crate::device;
use crate::dropout::{Masks, WeightDropout};
use crate::nn::{LinearConfig, LstmConfig, LstmState};

pub fn run(seed: u64) -> anyhow::Result<bool> {
    let dev = device::cpu_autodiff();
    dev.seed(seed);
    let masks = Masks::seeded(seed);
    let mut all_trained = true;

    println!("Linear(2, 4), `weight` and `bias` dropped at p = 0.5; loss = sum(y^2)");
    let linear = WeightDropout::new(
        LinearConfig::new(2, 4).init(&dev),
        &["weight", "bias"],
        0.5,
        masks.clone(),
    )?;
    let x: Tensor<2> = Tensor::random([3, 2], Distribution::Normal(0.0, 1.0), &dev);
    let y = linear.dropped()?.forward(x);
    let report = grad_report(&linear, &(y.clone() * y).sum().backward());
    all_trained &= report.iter().all(|r| r.is_trained());
    println!("{}", Table(&report));

    println!(
        "LSTM(5, 7), sequence first, `weight_hh_l0` dropped at p = 0.4; loss = sum(y) + sum(h^2) + sum(c)"
    );
    let lstm = WeightDropout::new(
        LstmConfig::new(5, 7).init(&dev),
        &["weight_hh_l0"],
        0.4,
        masks,
    )?;
    let x: Tensor<3> = Tensor::random([10, 20, 5], Distribution::Normal(0.0, 1.0), &dev);
    let state = LstmState {
        h: Tensor::random([1, 20, 7], Distribution::Normal(0.0, 1.0), &dev),
        c: Tensor::random([1, 20, 7], Distribution::Normal(0.0, 1.0), &dev),
    };
    let (y, s) = lstm.dropped()?.forward(x, Some(state));
    let loss = y.sum() + (s.h.clone() * s.h).sum() + s.c.sum();
    let report = grad_report(&lstm, &loss.backward());
    all_trained &= report.iter().all(|r| r.is_trained());
    println!("{}", Table(&report));

    if all_trained {
        println!("Every parameter, the raw weights included, received a non-zero gradient.");
    } else {
        println!("Some parameter received no gradient: see the table.");
    }
    Ok(all_trained)
}
