//! Resumable training checkpoints: one safetensors file holding the weights, the optimizer's
//! state, NT-ASGD's averages, the carried hidden state, and (as JSON metadata) the configuration,
//! vocabulary, RNG positions and progress. Written atomically, so a killed run always leaves the
//! previous checkpoint whole.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param, ParamId};
use burn::optim::OptimizerRecord;
use burn::tensor::{Bytes, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::optim::Averager;
use super::step::TrainStep;
use crate::checkpoint::native::ModelInfo;
use crate::checkpoint::safetensors::{Entry, parse_entries, serialize_entries};
use crate::checkpoint::{awd_metadata, read_awd_metadata, write_atomic};
use crate::data::{Dataset, Level, WindowLengths};
use crate::dropout::{Masks, RngMasks};
use crate::error::{AwdError, Result};
use crate::model::LanguageModel;
use crate::nn::LstmState;
use crate::params::{
    HostTensor, ParamMapper, ParamVisitor, load_values, map_params, named_values, visit_params,
};

const FORMAT: &str = "awd-train-state/1";

/// Where a run stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub epoch: usize,
    /// Token position inside the current epoch's rows.
    pub pos: usize,
    pub step: usize,
    pub best_val: Option<f64>,
    pub val_losses: Vec<f64>,
    pub averaging: bool,
    pub masks_rng: Vec<u8>,
    /// Window-length RNG: (word position as decimal, stream).
    pub windows_rng: (String, u64),
    /// Parameter ids by path (the optimizer's state is keyed by them).
    pub param_ids: BTreeMap<String, u64>,
    pub tokens: u64,
}

/// Everything needed to continue a run exactly where it stopped.
#[derive(Debug, Clone)]
pub struct TrainCheckpoint {
    pub config: TrainConfig,
    pub vocab: Vec<String>,
    pub level: Level,
    pub progress: Progress,
    pub model: BTreeMap<String, HostTensor>,
    pub optimizer: Vec<u8>,
    pub averages: BTreeMap<String, HostTensor>,
    /// Per layer: (h, c), the state carried into the next window.
    pub hidden: Vec<(HostTensor, HostTensor)>,
    pub averaged_count: usize,
}

/// What a run holds in memory beside the model, restored from a checkpoint or captured into one.
pub struct Live {
    pub step: TrainStep,
    pub masks: Masks,
    pub windows: WindowLengths,
}

impl Live {
    /// The weights to evaluate and publish (the averaged ones once NT-ASGD averages), in eval
    /// mode, without carried state.
    pub fn published(&self, model: &LanguageModel) -> LanguageModel {
        let m = match &self.step.averager {
            Some(a) => a.apply(model.clone()),
            None => model.clone(),
        };
        let mut m = m.valid();
        m.reset();
        m
    }
}

impl Progress {
    /// What the published model file says besides its weights.
    pub fn model_info(&self, cfg: &TrainConfig, data: &Dataset) -> ModelInfo {
        ModelInfo {
            vocab: data.vocab.itos().to_vec(),
            extra: serde_json::json!({
                "level": data.level,
                "specials": cfg.specials,
                "backwards": cfg.backwards,
                "steps": self.step,
                "epoch": self.epoch,
                "best_val_loss": self.best_val,
            }),
        }
    }

    /// A run that has not started.
    pub fn start() -> Self {
        Self {
            epoch: 0,
            pos: 0,
            step: 0,
            best_val: None,
            val_losses: Vec::new(),
            averaging: false,
            masks_rng: Vec::new(),
            windows_rng: (String::new(), 0),
            param_ids: BTreeMap::new(),
            tokens: 0,
        }
    }
}

/// The model a run of `cfg` starts from, and the masks it draws: seeded by `cfg.seed`, with
/// parameter ids that depend only on the structure.
pub fn init_model(
    cfg: &TrainConfig,
    vocab: usize,
    device: &Device,
) -> Result<(LanguageModel, Masks)> {
    device.seed(cfg.seed);
    let masks = Masks::seeded(cfg.seed);
    let mut model = LanguageModel::new(&cfg.model_config(vocab), &masks, device)?;
    model.set_precision(cfg.precision);
    Ok((structural_param_ids(model), masks))
}

/// The window-length RNG of a run of `cfg`.
pub fn window_lengths(cfg: &TrainConfig) -> WindowLengths {
    WindowLengths::new(cfg.bptt, cfg.variable_bptt, cfg.seed.wrapping_add(1))
}

impl TrainCheckpoint {
    /// The checkpoint of a run: `progress` with the RNG positions and parameter ids filled in.
    pub fn capture(
        cfg: &TrainConfig,
        data: &Dataset,
        mut progress: Progress,
        model: &LanguageModel,
        live: &Live,
    ) -> Result<Self> {
        progress.masks_rng = live.masks.state().unwrap_or_default();
        let (pos, stream) = live.windows.state();
        progress.windows_rng = (pos.to_string(), stream);
        progress.param_ids = param_ids(model);
        let host = |s: &LstmState| {
            (
                HostTensor::from_tensor(s.h.clone()),
                HostTensor::from_tensor(s.c.clone()),
            )
        };
        let hidden = match model.encoder().state() {
            Some(s) if progress.pos > 0 => s.iter().map(host).collect(),
            _ => Vec::new(),
        };
        let averager = live.step.averager.as_ref();
        let averages = averager
            .map(|a| {
                a.sums
                    .iter()
                    .map(|(k, v)| (k.clone(), HostTensor::from_tensor(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let optimizer = live
            .step
            .optim
            .to_record()
            .into_bytes()
            .map_err(|e| AwdError::Config(format!("optimizer state: {e:?}")))?;
        Ok(Self {
            config: cfg.clone(),
            vocab: data.vocab.itos().to_vec(),
            level: data.level,
            model: named_values(model).into_iter().collect(),
            optimizer: canonical_optimizer_bytes(optimizer.to_vec())?,
            averages,
            hidden,
            averaged_count: averager.map_or(0, |a| a.count),
            progress,
        })
    }

    /// The run as it was: weights, carried state, optimizer, averages and RNG positions, to
    /// continue on `data` (the data it started on: the vocabulary is checked). `path` names the
    /// checkpoint in errors.
    pub fn restore(
        &self,
        path: &Path,
        data: &Dataset,
        device: &Device,
    ) -> Result<(LanguageModel, Live)> {
        if data.vocab.itos() != self.vocab.as_slice() {
            return Err(AwdError::checkpoint(
                path,
                format!(
                    "its vocabulary ({} tokens) does not fit this data ({} tokens): resume with the data the run started on",
                    self.vocab.len(),
                    data.vocab.len()
                ),
            ));
        }
        let bad = |what: &str| AwdError::checkpoint(path, format!("{what} unreadable"));
        let (cfg, p) = (&self.config, &self.progress);
        let masks =
            Masks::new(RngMasks::from_state(&p.masks_rng).ok_or_else(|| bad("mask RNG state"))?);
        let model = LanguageModel::new(&cfg.model_config(self.vocab.len()), &masks, device)?;
        let model = load_values(model, &self.model)
            .map_err(|e| AwdError::checkpoint(path, e.to_string()))?;
        let mut model = restore_param_ids(model, &p.param_ids);
        model.set_precision(cfg.precision);
        if !self.hidden.is_empty() {
            let layer = |(h, c): &(HostTensor, HostTensor)| {
                Ok(LstmState {
                    h: h.to_tensor(device)?,
                    c: c.to_tensor(device)?,
                })
            };
            model.parts.encoder.hidden =
                Some(self.hidden.iter().map(layer).collect::<Result<_>>()?);
        }
        let mut step = TrainStep::new(cfg);
        if p.averaging {
            step.start_averaging(cfg);
            let plain = device.clone().without_autodiff();
            let mut sums = BTreeMap::new();
            for (k, v) in &self.averages {
                let flat = HostTensor::new(vec![v.values.len()], v.values.clone());
                sums.insert(k.clone(), flat.to_tensor::<1>(&plain)?);
            }
            step.averager = Some(Averager {
                count: self.averaged_count,
                sums,
            });
        }
        let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(self.optimizer.clone()))
            .map_err(|_| bad("optimizer state"))?;
        step.optim = step.optim.load_record(record);
        let mut windows = window_lengths(cfg);
        let pos: u128 = p
            .windows_rng
            .0
            .parse()
            .map_err(|_| bad("window RNG state"))?;
        windows.restore((pos, p.windows_rng.1));
        Ok((
            model,
            Live {
                step,
                masks,
                windows,
            },
        ))
    }
}

pub fn save(path: &Path, c: &TrainCheckpoint) -> Result<()> {
    let mut entries = BTreeMap::new();
    for (k, v) in &c.model {
        entries.insert(format!("model/{k}"), Entry::F32(v.clone()));
    }
    for (k, v) in &c.averages {
        entries.insert(format!("average/{k}"), Entry::F32(v.clone()));
    }
    for (l, (h, cc)) in c.hidden.iter().enumerate() {
        entries.insert(format!("hidden/{l}/h"), Entry::F32(h.clone()));
        entries.insert(format!("hidden/{l}/c"), Entry::F32(cc.clone()));
    }
    entries.insert("optimizer".into(), Entry::Bytes(c.optimizer.clone()));
    let header = serde_json::json!({
        "format": FORMAT,
        "config": c.config,
        "vocab": c.vocab,
        "level": c.level,
        "progress": c.progress,
        "averaged_count": c.averaged_count,
    });
    write_atomic(path, &serialize_entries(&entries, awd_metadata(&header))?)
}

pub fn load(path: &Path) -> Result<TrainCheckpoint> {
    let bytes = std::fs::read(path).map_err(|e| AwdError::io(path, e))?;
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    let (entries, meta) = parse_entries(&bytes).map_err(bad)?;
    let meta = read_awd_metadata(Some(&meta), FORMAT)
        .ok_or_else(|| bad("not an awd training checkpoint".into()))?;
    fn field<T: serde::de::DeserializeOwned>(
        meta: &serde_json::Map<String, serde_json::Value>,
        k: &str,
    ) -> std::result::Result<T, String> {
        let v = meta
            .get(k)
            .ok_or_else(|| format!("metadata `{k}` missing"))?;
        serde_json::from_value(v.clone()).map_err(|e| format!("metadata `{k}`: {e}"))
    }
    let mut c = TrainCheckpoint {
        config: field(&meta, "config").map_err(bad)?,
        vocab: field(&meta, "vocab").map_err(bad)?,
        level: field(&meta, "level").map_err(bad)?,
        progress: field(&meta, "progress").map_err(bad)?,
        averaged_count: field(&meta, "averaged_count").map_err(bad)?,
        model: BTreeMap::new(),
        optimizer: Vec::new(),
        averages: BTreeMap::new(),
        hidden: Vec::new(),
    };
    let mut hidden: BTreeMap<(usize, bool), HostTensor> = BTreeMap::new();
    for (k, e) in entries {
        match (k.split_once('/'), e) {
            (Some(("model", name)), Entry::F32(t)) => {
                c.model.insert(name.to_string(), t);
            }
            (Some(("average", name)), Entry::F32(t)) => {
                c.averages.insert(name.to_string(), t);
            }
            (Some(("hidden", rest)), Entry::F32(t)) => {
                let (l, which) = rest.split_once('/').unwrap_or((rest, ""));
                let l: usize = l.parse().map_err(|_| bad(format!("bad entry `{k}`")))?;
                hidden.insert((l, which == "c"), t);
            }
            (None, Entry::Bytes(b)) if k == "optimizer" => c.optimizer = b,
            _ => return Err(bad(format!("unexpected entry `{k}`"))),
        }
    }
    let layers = hidden.len() / 2;
    for l in 0..layers {
        match (hidden.remove(&(l, false)), hidden.remove(&(l, true))) {
            (Some(h), Some(cc)) => c.hidden.push((h, cc)),
            _ => return Err(bad(format!("hidden state of layer {l} incomplete"))),
        }
    }
    Ok(c)
}

/// Parameter ids by path.
pub fn param_ids<M: Module>(module: &M) -> BTreeMap<String, u64> {
    struct Ids(BTreeMap<String, u64>);
    impl ParamVisitor for Ids {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            self.0.insert(path.to_string(), param.id.val());
        }
    }
    let mut v = Ids(BTreeMap::new());
    visit_params(module, &mut v);
    v.0
}

/// Gives each parameter the id it had when the checkpoint was written.
pub fn restore_param_ids<M: Module>(module: M, ids: &BTreeMap<String, u64>) -> M {
    struct Set<'a>(&'a BTreeMap<String, u64>);
    impl ParamMapper for Set<'_> {
        fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            match self.0.get(path) {
                Some(&id) => {
                    let (_, value, mapper) = param.consume();
                    Param::from_mapped_value(ParamId::from(id), value, mapper)
                }
                None => param,
            }
        }
    }
    map_params(module, &mut Set(ids))
}

/// Parameter ids that depend only on the module's structure (1, 2, ... in visit order), so two
/// runs with the same seed write the same optimizer state.
pub fn structural_param_ids<M: Module>(module: M) -> M {
    let ids = param_ids(&module)
        .into_keys()
        .enumerate()
        .map(|(i, path)| (path, i as u64 + 1))
        .collect();
    restore_param_ids(module, &ids)
}

/// The optimizer's state as bytes in a fixed order (Burn writes it in hash-map order).
pub fn canonical_optimizer_bytes(bytes: Vec<u8>) -> Result<Vec<u8>> {
    use burn_pack::{Reader, Writer};
    let bad = |e: burn_pack::Error| AwdError::Config(format!("optimizer state: {e:?}"));
    let reader = Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(bad)?;
    let metadata = reader.metadata().clone();
    let scalars = reader.scalars().clone();
    let mut tensors = reader.into_tensors().map_err(bad)?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut writer = Writer::new(tensors);
    for (k, v) in &scalars {
        writer = writer.with_scalar(k, *v);
    }
    for (k, v) in &metadata {
        writer = writer.with_metadata(k, v);
    }
    Ok(writer.into_bytes().map_err(bad)?.to_vec())
}
