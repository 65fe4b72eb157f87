//! Cross-entropy and fastai's activation regularizers (AR and TAR).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of `logits` `[B, T, V]` against `targets` `[B, T]`.
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    let logp = log_softmax(logits.reshape([b * t, v]), 1);
    let picked = logp.gather(1, targets.reshape([b * t, 1]));
    picked.mean().neg()
}

/// AR: `mean(dropped^2)` of the last layer's dropped output `[B, T, E]` (unscaled by alpha).
pub fn activation_reg(dropped: Tensor<3>) -> Tensor<1> {
    (dropped.clone() * dropped).mean()
}

/// TAR: `mean((raw[:, 1:] - raw[:, :-1])^2)` of the last layer's raw output `[B, T, E]`
/// (unscaled by beta); zero for a one-step sequence.
pub fn temporal_activation_reg(raw: Tensor<3>) -> Tensor<1> {
    let [_, t, _] = raw.dims();
    if t < 2 {
        return raw.sum().mul_scalar(0.0);
    }
    let diff = raw.clone().narrow(1, 1, t - 1) - raw.narrow(1, 0, t - 1);
    (diff.clone() * diff).mean()
}
