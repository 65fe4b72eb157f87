//! The text classifier under fastai's names (`get_text_classifier`'s state dict): its tensors,
//! BatchNorm statistics included, both ways; a fastai encoder (`save_encoder`) loaded into it; and
//! the configuration a fastai classifier's tensors imply.

use std::collections::BTreeMap;

use burn::tensor::Device;

use crate::dropout::Masks;
use crate::error::{AwdError, Result};
use crate::model::{ClassifierConfig, TextClassifier};
use crate::nn::batch_norm::RunningStats;
use crate::params::{HostTensor, load_values, named_values};

const EMBEDDING: &str = "0.module.encoder.weight";
const EMBEDDING_DP_ALIAS: &str = "0.module.encoder_dp.emb.weight";

impl ClassifierConfig {
    /// The configuration a fastai classifier's state dict was made with, from its names and
    /// shapes: the encoder's sizes, the head's layers (a block whose Linear is at index 2 has a
    /// dropout; its probability is not stored, and evaluation does not need it), fastai's chunk
    /// length and `max_len` (72, 1,440).
    pub fn infer(tensors: &BTreeMap<String, HostTensor>) -> Result<Self> {
        let as_lm: BTreeMap<String, HostTensor> = tensors
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("0.module.")
                    .map(|k| (format!("0.{k}"), v.clone()))
            })
            .collect();
        let encoder = crate::checkpoint::fastai::infer_config(&as_lm)?;
        let (mut dims, mut head_ps) = (Vec::new(), Vec::new());
        for i in 0.. {
            let linear = |j: usize| tensors.get(&format!("1.layers.{i}.{j}.weight"));
            let Some((w, p)) = linear(2)
                .map(|w| (w, 0.1))
                .or_else(|| linear(1).map(|w| (w, 0.0)))
            else {
                break;
            };
            if w.shape.len() != 2 {
                return Err(AwdError::Shape(format!(
                    "1.layers.{i}: a Linear weight of shape {:?}",
                    w.shape
                )));
            }
            if dims.is_empty() {
                dims.push(w.shape[1]);
            }
            dims.push(w.shape[0]);
            head_ps.push(p);
        }
        if dims.len() < 2 || dims[0] != 3 * encoder.emb_size {
            return Err(AwdError::Config(format!(
                "not a fastai AWD-LSTM text classifier: no head of `1.layers.{{i}}` blocks taking {} pooled features",
                3 * encoder.emb_size
            )));
        }
        Ok(Self {
            encoder,
            n_classes: *dims.last().expect("two sizes or more"),
            lin_ftrs: dims[1..dims.len() - 1].to_vec(),
            head_ps,
            bptt: 72,
            max_len: 72 * 20,
            multi_label: false,
        })
    }
}

impl TextClassifier {
    /// The tensors under fastai's names: parameters, the encoder's embedding repeated as
    /// `0.module.encoder_dp.emb.weight`, and each BatchNorm's running statistics.
    pub fn state_dict(&self) -> BTreeMap<String, HostTensor> {
        let mut out: BTreeMap<String, HostTensor> = named_values(self).into_iter().collect();
        if let Some(emb) = out.get(EMBEDDING).cloned() {
            out.insert(EMBEDDING_DP_ALIAS.into(), emb);
        }
        for (i, block) in self.parts.layers.iter().enumerate() {
            let s = &block.bn.stats;
            let n = s.mean.len();
            let key = |k: &str| format!("1.layers.{i}.0.{k}");
            out.insert(
                key("running_mean"),
                HostTensor::new(vec![n], s.mean.clone()),
            );
            out.insert(key("running_var"), HostTensor::new(vec![n], s.var.clone()));
            out.insert(
                key("num_batches_tracked"),
                HostTensor::new(vec![], vec![s.batches as f32]),
            );
        }
        out
    }

    /// The encoder's weights replaced by those of a fastai encoder (`save_encoder`'s names:
    /// `encoder.weight`, `encoder_dp.emb.weight`, `rnns.{l}.*`), as fastai's `load_encoder`;
    /// a missing or misshapen tensor is named.
    pub fn load_encoder(self, encoder: &BTreeMap<String, HostTensor>) -> Result<Self> {
        let mut state = self.state_dict();
        let mut problems = Vec::new();
        for (key, slot) in state.iter_mut().filter(|(k, _)| k.starts_with("0.module.")) {
            let name = &key["0.module.".len()..];
            match encoder.get(name) {
                None => problems.push(format!("{name}: missing")),
                Some(t) if t.shape != slot.shape => problems.push(format!(
                    "{name}: shape {:?}, the classifier's encoder needs {:?}",
                    t.shape, slot.shape
                )),
                Some(t) => *slot = t.clone(),
            }
        }
        if !problems.is_empty() {
            return Err(AwdError::Shape(problems.join("; ")));
        }
        load_values(self, &state)
    }

    /// A classifier of `config` holding `tensors` (fastai's names); missing, unexpected and
    /// misshapen tensors are listed in one error.
    pub fn from_state_dict(
        tensors: &BTreeMap<String, HostTensor>,
        config: &ClassifierConfig,
        masks: &Masks,
        device: &Device,
    ) -> Result<Self> {
        let model = Self::new(config, masks, device)?;
        let expected = model.state_dict();
        let mut problems: Vec<String> = tensors
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .map(|k| format!("{k}: unexpected"))
            .collect();
        for (k, want) in &expected {
            match tensors.get(k) {
                None => problems.push(format!("{k}: missing")),
                Some(t) if t.shape != want.shape => problems.push(format!(
                    "{k}: shape {:?}, the model needs {:?}",
                    t.shape, want.shape
                )),
                _ => {}
            }
        }
        if let (Some(a), Some(e)) = (tensors.get(EMBEDDING_DP_ALIAS), tensors.get(EMBEDDING))
            && a != e
        {
            problems.push(format!(
                "{EMBEDDING_DP_ALIAS}: differs from {EMBEDDING}, which it must repeat"
            ));
        }
        if !problems.is_empty() {
            return Err(AwdError::Shape(problems.join("; ")));
        }
        let mut model = load_values(model, tensors)?;
        for (i, block) in model.parts.layers.iter_mut().enumerate() {
            let get = |k: &str| tensors[&format!("1.layers.{i}.0.{k}")].values.clone();
            block.bn.stats = RunningStats {
                mean: get("running_mean"),
                var: get("running_var"),
                batches: get("num_batches_tracked")[0] as i64,
            };
        }
        Ok(model)
    }
}
