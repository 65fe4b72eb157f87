//! Resumable training checkpoints, for every job: one safetensors file holding the weights, the
//! optimizer's state, NT-ASGD's averages, the job's own tensors (the language model's carried
//! hidden state) and, as JSON metadata, the job's description, the progress and the RNG
//! positions. Written atomically, so a killed run always leaves the previous checkpoint whole.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param, ParamId};
use burn::optim::OptimizerRecord;
use burn::tensor::{Bytes, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::optim::Averager;
use super::optim_config::OptimConfig;
use super::step::TrainStep;
use crate::checkpoint::safetensors::{Entry, parse_entries, serialize_entries};
use crate::checkpoint::{awd_metadata, read_awd_metadata, write_atomic};
use crate::dropout::{Masks, RngMasks};
use crate::error::{AwdError, Result};
use crate::params::{
    HostTensor, ParamMapper, ParamVisitor, load_values, map_params, named_values, visit_params,
};

const FORMAT: &str = "awd-train-state/2";

/// What a checkpoint holds of a job beyond the learner's state: JSON, and tensors by name.
#[derive(Debug, Clone, Default)]
pub struct JobState {
    pub json: serde_json::Value,
    pub tensors: BTreeMap<String, HostTensor>,
}

/// Where a run stands.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    pub epoch: usize,
    /// Position inside the current epoch (the job's unit: tokens, batches).
    pub pos: usize,
    pub step: usize,
    pub best_val: Option<f64>,
    pub val_losses: Vec<f64>,
    pub averaging: bool,
    pub masks_rng: Vec<u8>,
    /// Parameter ids by path (the optimizer's state is keyed by them).
    pub param_ids: BTreeMap<String, u64>,
    pub tokens: u64,
}

/// Everything needed to continue a run exactly where it stopped.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// What rebuilds the job (`Job::describe`).
    pub job: serde_json::Value,
    /// The job's state (`Job::capture`).
    pub job_state: JobState,
    pub progress: Progress,
    pub model: BTreeMap<String, HostTensor>,
    pub optimizer: Vec<u8>,
    pub averages: BTreeMap<String, HostTensor>,
    pub averaged_count: usize,
}

impl Checkpoint {
    /// The checkpoint of a run: `progress` with the mask RNG's position and the parameter ids
    /// filled in.
    pub fn capture<M: Module>(
        job: serde_json::Value,
        job_state: JobState,
        mut progress: Progress,
        model: &M,
        step: &TrainStep,
        masks: &Masks,
    ) -> Result<Self> {
        progress.masks_rng = masks.state().unwrap_or_default();
        progress.param_ids = param_ids(model);
        let averager = step.averager.as_ref();
        let averages = averager
            .map(|a| {
                a.sums
                    .iter()
                    .map(|(k, v)| (k.clone(), HostTensor::from_tensor(v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        let optimizer = step
            .optim
            .to_record()
            .into_bytes()
            .map_err(|e| AwdError::Config(format!("optimizer state: {e:?}")))?;
        Ok(Self {
            job,
            job_state,
            model: named_values(model).into_iter().collect(),
            optimizer: canonical_optimizer_bytes(optimizer.to_vec())?,
            averages,
            averaged_count: averager.map_or(0, |a| a.count),
            progress,
        })
    }

    /// The masks the run drew from, at the position it had reached.
    pub fn masks(&self, path: &Path) -> Result<Masks> {
        let rng = RngMasks::from_state(&self.progress.masks_rng)
            .ok_or_else(|| AwdError::checkpoint(path, "mask RNG state unreadable"))?;
        Ok(Masks::new(rng))
    }

    /// The run as it was: `model` (built as the job builds it, on these masks) with the
    /// checkpoint's weights and parameter ids, and the step with the optimizer's state and
    /// NT-ASGD's averages. `path` names the checkpoint in errors.
    pub fn restore<M: Module>(
        &self,
        path: &Path,
        model: M,
        optim: &OptimConfig,
        device: &Device,
    ) -> Result<(M, TrainStep)> {
        let bad = |what: &str| AwdError::checkpoint(path, format!("{what} unreadable"));
        let model = load_values(model, &self.model)
            .map_err(|e| AwdError::checkpoint(path, e.to_string()))?;
        let model = restore_param_ids(model, &self.progress.param_ids);
        let mut step = TrainStep::new(optim);
        if self.progress.averaging {
            step.start_averaging(optim);
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
        Ok((model, step))
    }
}

pub fn save(path: &Path, c: &Checkpoint) -> Result<()> {
    let mut entries = BTreeMap::new();
    for (k, v) in &c.model {
        entries.insert(format!("model/{k}"), Entry::F32(v.clone()));
    }
    for (k, v) in &c.averages {
        entries.insert(format!("average/{k}"), Entry::F32(v.clone()));
    }
    for (k, v) in &c.job_state.tensors {
        entries.insert(format!("job/{k}"), Entry::F32(v.clone()));
    }
    entries.insert("optimizer".into(), Entry::Bytes(c.optimizer.clone()));
    let header = serde_json::json!({
        "format": FORMAT,
        "job": c.job,
        "job_state": c.job_state.json,
        "progress": c.progress,
        "averaged_count": c.averaged_count,
    });
    write_atomic(path, &serialize_entries(&entries, awd_metadata(&header))?)
}

/// Reads a checkpoint; a missing file says how to start over.
pub fn load(path: &Path) -> Result<Checkpoint> {
    if !path.exists() {
        let dir = path.parent().unwrap_or(Path::new("."));
        return Err(AwdError::Config(format!(
            "{} holds no checkpoint to resume: the run stopped before its first one (written at the end of each epoch). Start it over with --force --out {} instead of --resume",
            dir.display(),
            dir.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| AwdError::io(path, e))?;
    let bad = |reason: String| AwdError::checkpoint(path, reason);
    let (entries, meta) = parse_entries(&bytes).map_err(bad)?;
    let meta = read_awd_metadata(Some(&meta), FORMAT)
        .ok_or_else(|| bad("not an awd training checkpoint (of this version)".into()))?;
    fn field<T: serde::de::DeserializeOwned>(
        meta: &serde_json::Map<String, serde_json::Value>,
        k: &str,
    ) -> std::result::Result<T, String> {
        let v = meta
            .get(k)
            .ok_or_else(|| format!("metadata `{k}` missing"))?;
        serde_json::from_value(v.clone()).map_err(|e| format!("metadata `{k}`: {e}"))
    }
    let mut c = Checkpoint {
        job: field(&meta, "job").map_err(bad)?,
        job_state: JobState {
            json: field(&meta, "job_state").map_err(bad)?,
            tensors: BTreeMap::new(),
        },
        progress: field(&meta, "progress").map_err(bad)?,
        averaged_count: field(&meta, "averaged_count").map_err(bad)?,
        model: BTreeMap::new(),
        optimizer: Vec::new(),
        averages: BTreeMap::new(),
    };
    for (k, e) in entries {
        match (k.split_once('/'), e) {
            (Some(("model", name)), Entry::F32(t)) => {
                c.model.insert(name.to_string(), t);
            }
            (Some(("average", name)), Entry::F32(t)) => {
                c.averages.insert(name.to_string(), t);
            }
            (Some(("job", name)), Entry::F32(t)) => {
                c.job_state.tensors.insert(name.to_string(), t);
            }
            (None, Entry::Bytes(b)) if k == "optimizer" => c.optimizer = b,
            _ => return Err(bad(format!("unexpected entry `{k}`"))),
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
