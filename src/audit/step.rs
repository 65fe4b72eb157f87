//! One audited training step: forward with the masks recorded, backward, audit, one optimizer
//! step, and a check that every parameter with a gradient moved.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Tensor;

use super::{Report, audit};
use crate::dropout::Masks;
use crate::error::Result;

/// Runs `loss` on `module` (on an autodiff device, dropout on), audits the gradients against the
/// masks drawn from `masks`, then takes one Adam step (lr 1e-3) and checks it moved every
/// parameter that has a gradient. Returns the report and the stepped module.
pub fn audit_step<M: Module>(
    module: M,
    masks: &Masks,
    loss: impl FnOnce(&mut M) -> Result<Tensor<1>>,
) -> Result<(Report, M)> {
    let mut module = module;
    masks.start_recording();
    let loss = loss(&mut module);
    let records = masks.take_records();
    let grads = loss?.backward();
    let mut report = audit(&module, &grads, &records);
    let grads = GradientsParams::from_grads(grads, &module);
    let before = module.clone();
    let after = AdamConfig::new().init().step(1e-3, module, grads);
    report.check_updated(&before, &after);
    Ok((report, after))
}
