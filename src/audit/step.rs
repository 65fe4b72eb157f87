//! One audited training step: the training step every loop runs ([`TrainStep`]), with the
//! masks recorded during its forward, the gradients audited before clipping, and a check that
//! the optimizer moved every parameter that has a gradient.

use burn::module::Module;
use burn::tensor::Tensor;

use super::{Report, audit};
use crate::dropout::Masks;
use crate::error::Result;
use crate::train::TrainStep;

/// Runs `loss` on `module` (on an autodiff device, dropout on) through `step` at learning rate
/// `lr`, audits the gradients against the masks drawn from `masks`, and checks that the step
/// moved every parameter that has a gradient. Returns the report and the stepped module.
pub fn audit_step<M: Module>(
    step: &mut TrainStep,
    module: M,
    masks: &Masks,
    lr: f64,
    loss: impl FnOnce(&mut M) -> Result<Tensor<1>>,
) -> Result<(Report, M)> {
    let before = module.clone();
    let records = std::cell::RefCell::new(Vec::new());
    let mut report = None;
    let (after, _) = step.run(
        module,
        lr,
        |m| {
            masks.start_recording();
            let loss = loss(m);
            *records.borrow_mut() = masks.take_records();
            let loss = loss?;
            Ok((loss.clone(), loss))
        },
        |m, grads| report = Some(audit(m, grads, &records.borrow())),
    )?;
    let mut report = report.expect("the step inspects its gradients");
    report.check_updated(&before, &after);
    Ok((report, after))
}
