//! Resumable training checkpoints: one safetensors file holding the weights, the optimizer's
//! state, NT-ASGD's averages, the carried hidden state, and (as JSON metadata) the configuration,
//! vocabulary, RNG positions and progress. Written atomically, so a killed run always leaves the
//! previous checkpoint whole.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param, ParamId};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::config::{OptimizerKind, TrainConfig};
use crate::checkpoint::safetensors::{Entry, parse_entries, serialize_entries};
use crate::checkpoint::{awd_metadata, read_awd_metadata, write_atomic};
use crate::data::Level;
use crate::error::{AwdError, Result};
use crate::params::{HostTensor, ParamMapper, ParamVisitor, map_params, visit_params};

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
    /// The optimizer now in use (NT-ASGD switches to SGD).
    pub optimizer: OptimizerKind,
    pub averaging: bool,
    pub masks_rng: Vec<u8>,
    /// Window-length RNG: (word position as decimal, stream).
    pub windows_rng: (String, u64),
    /// Parameter ids by path (the optimizer's state is keyed by them).
    pub param_ids: BTreeMap<String, u64>,
    pub tokens: u64,
    pub finished: bool,
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
