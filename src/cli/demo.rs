//! `awd demo`: the seed's two examples, each audited: every parameter's gradient, the mask it
//! passed through, and one optimizer step.

use burn::tensor::{Distribution, Tensor};

use crate::audit::Table;
use crate::audit::step::audit_step;
use crate::device;
use crate::dropout::{Masks, WeightDropout};
use crate::nn::{LinearConfig, LstmConfig, LstmState};
use crate::train::{OptimConfig, TrainStep};

pub fn run(seed: u64) -> anyhow::Result<bool> {
    let dev = device::cpu_autodiff();
    dev.seed(seed);
    let masks = Masks::seeded(seed);
    // The training step `awd train` runs, with the default configuration's Adam.
    let mut step = TrainStep::new(&OptimConfig::default());

    println!("Linear(2, 4), `weight` and `bias` dropped at p = 0.5; loss = sum(y^2)");
    let linear = WeightDropout::new(
        LinearConfig::new(2, 4).init(&dev),
        &["weight", "bias"],
        0.5,
        masks.clone(),
    )?;
    let x: Tensor<2> = Tensor::random([3, 2], Distribution::Normal(0.0, 1.0), &dev);
    let (linear_report, _) = audit_step(&mut step, linear, &masks, 1e-3, |m| {
        let y = m.dropped()?.forward(x);
        Ok((y.clone() * y).sum())
    })?;
    println!("{}\n", Table(&linear_report));

    println!(
        "LSTM(5, 7), sequence first, `weight_hh_l0` dropped at p = 0.4; loss = sum(y) + sum(h^2) + sum(c)"
    );
    let lstm = WeightDropout::new(
        LstmConfig::new(5, 7).init(&dev),
        &["weight_hh_l0"],
        0.4,
        masks.clone(),
    )?;
    let x: Tensor<3> = Tensor::random([10, 20, 5], Distribution::Normal(0.0, 1.0), &dev);
    let state = LstmState {
        h: Tensor::random([1, 20, 7], Distribution::Normal(0.0, 1.0), &dev),
        c: Tensor::random([1, 20, 7], Distribution::Normal(0.0, 1.0), &dev),
    };
    let (lstm_report, _) = audit_step(&mut step, lstm, &masks, 1e-3, |m| {
        let (y, s) = m.dropped()?.forward(x, Some(state));
        Ok(y.sum() + (s.h.clone() * s.h).sum() + s.c.sum())
    })?;
    println!("{}\n", Table(&lstm_report));

    let clean = linear_report.is_clean() && lstm_report.is_clean();
    if clean {
        println!(
            "Every parameter, the raw weights included, received a non-zero gradient, zero exactly where its mask dropped it, and was moved by the optimizer."
        );
    }
    Ok(clean)
}
