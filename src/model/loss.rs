//! Cross-entropy and fastai's activation regularizers (AR and TAR).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

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

/// AR: `mean(dropped^2)` of the last layer's dropped output (`[B, T, E]` or `[T, B, E]`;
/// unscaled by alpha).
pub fn activation_reg(dropped: Tensor<3>) -> Tensor<1> {
    (dropped.clone() * dropped).mean()
}

/// TAR: `mean((h[:, 1:] - h[:, :-1])^2)` of the last layer's output `h` `[B, T, E]`, its time
/// along axis `time` (1; 0 for `[T, B, E]`), unscaled by beta; zero for a one-step sequence.
pub fn temporal_activation_reg(h: Tensor<3>, time: usize) -> Tensor<1> {
    let t = h.dims()[time];
    if t < 2 {
        return h.sum().mul_scalar(0.0);
    }
    let diff = h.clone().narrow(time, 1, t - 1) - h.narrow(time, 0, t - 1);
    (diff.clone() * diff).mean()
}

/// A batch's targets: class ids `[B]`, or multi-hot rows `[B, C]` (multi-label).
pub enum ClassTargets {
    Classes(Tensor<1, Int>),
    Multi(Tensor<2>),
}

impl ClassTargets {
    /// The targets of documents with classes `labels` (each one class unless `multi`, of `n`).
    pub fn new(labels: &[&[usize]], n: usize, multi: bool, device: &Device) -> Self {
        let rows = labels.len();
        if multi {
            let mut hot = vec![0f32; rows * n];
            for (r, ls) in labels.iter().enumerate() {
                ls.iter().for_each(|&c| hot[r * n + c] = 1.0);
            }
            Self::Multi(Tensor::from_data(TensorData::new(hot, [rows, n]), device))
        } else {
            let ids: Vec<i64> = labels.iter().map(|l| l[0] as i64).collect();
            Self::Classes(Tensor::from_data(TensorData::new(ids, [rows]), device))
        }
    }

    /// Cross-entropy of `logits` `[B, C]`, binary per class for multi-label targets.
    pub fn loss(&self, logits: Tensor<2>) -> Tensor<1> {
        match self {
            Self::Classes(y) => class_cross_entropy(logits, y.clone()),
            Self::Multi(hot) => multi_label_bce(logits, hot.clone()),
        }
    }
}
