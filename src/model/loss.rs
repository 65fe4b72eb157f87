//! Cross-entropy and fastai's activation regularizers (AR and TAR).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of `logits` `[B, T, V]` against `targets` `[B, T]`.
pub fn cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    class_cross_entropy(logits.reshape([b * t, v]), targets.reshape([b * t]))
}

/// Mean binary cross-entropy of logits `[N, C]` against 0/1 targets `[N, C]` (each class its own
/// yes/no: PyTorch's `BCEWithLogitsLoss`), computed stably as
/// `max(x, 0) - x·t + ln(1 + exp(-|x|))`.
pub fn multi_label_bce(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let softplus = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    (logits.clone().clamp_min(0.0) - logits * targets + softplus).mean()
}

/// Mean cross-entropy of logits `[N, C]` against class ids `[N]`.
pub fn class_cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let logp = log_softmax(logits, 1);
    logp.gather(1, targets.reshape([n, 1])).mean().neg()
}

/// AR: `mean(dropped^2)` of the last layer's dropped output `[B, T, E]` (unscaled by alpha).
pub fn activation_reg(dropped: Tensor<3>) -> Tensor<1> {
    (dropped.clone() * dropped).mean()
}

/// TAR: `mean((h[:, 1:] - h[:, :-1])^2)` of the last layer's output `h` `[B, T, E]`
/// (unscaled by beta); zero for a one-step sequence.
pub fn temporal_activation_reg(h: Tensor<3>) -> Tensor<1> {
    let [_, t, _] = h.dims();
    if t < 2 {
        return h.sum().mul_scalar(0.0);
    }
    let diff = h.clone().narrow(1, 1, t - 1) - h.narrow(1, 0, t - 1);
    (diff.clone() * diff).mean()
}
