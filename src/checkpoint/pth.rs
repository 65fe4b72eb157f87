//! PyTorch `.pth` files (`torch.save`'s zip format) holding a flat `state_dict` of tensors.
//!
//! Reading goes through burn-store's PyTorch reader. Writing emits the small subset of the format
//! a `state_dict` needs: a zip (stored, not compressed) with `data.pkl`, one little-endian storage
//! per tensor under `data/`, and the version files. The pickle (protocol 2) is an
//! `OrderedDict` of `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False,
//! OrderedDict())`, all globals that `torch.load(weights_only=True)` accepts.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::Path;

use burn::store::pytorch_reader::{DType, PytorchReader};
use zip::write::SimpleFileOptions;

use crate::error::{AwdError, Result};
use crate::params::HostTensor;

/// Reads every tensor of a `.pth` state dict (a checkpoint saved as `{"model": state_dict, ...}`
/// is read from its `model` entry).
pub fn read(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    if !path.exists() {
        return Err(AwdError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let bad = |e: &dyn std::fmt::Display| {
        AwdError::checkpoint(path, format!("not a readable PyTorch file ({e})"))
    };
    let reader = PytorchReader::new(path).map_err(|e| bad(&e))?;
    let reader =
        if !reader.keys().is_empty() && reader.keys().iter().all(|k| k.starts_with("model.")) {
            PytorchReader::with_top_level_key(path, "model").map_err(|e| bad(&e))?
        } else {
            reader
        };
    let mut out = BTreeMap::new();
    for (name, t) in reader.tensors() {
        let bytes = t.read().map_err(|e| bad(&e))?;
        let values: Vec<f32> = match t.dtype() {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DType::F64 => bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            // Counters (BatchNorm's `num_batches_tracked`).
            DType::I64 => bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            other => {
                return Err(AwdError::checkpoint(
                    path,
                    format!(
                        "tensor `{name}` has dtype {other:?}; awd reads float32, float64 and int64"
                    ),
                ));
            }
        };
        if values.len() != t.num_elements() {
            return Err(AwdError::checkpoint(
                path,
                format!("tensor `{name}` is truncated"),
            ));
        }
        out.insert(name.clone(), HostTensor::new(t.shape().to_vec(), values));
    }
    if out.is_empty() {
        return Err(AwdError::checkpoint(path, "holds no tensors"));
    }
    Ok(out)
}

/// Writes `tensors` as a `.pth` state dict, atomically.
pub fn write(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    let bytes = serialize(tensors).map_err(|e| AwdError::io(path, e))?;
    super::write_atomic(path, &bytes)
}

/// Whether `name` is a counter PyTorch keeps as int64 (BatchNorm's `num_batches_tracked`).
fn is_counter(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// The bytes of a `.pth` file holding `tensors` (float32, contiguous; counters int64).
pub fn serialize(tensors: &BTreeMap<String, HostTensor>) -> std::io::Result<Vec<u8>> {
    let root = "archive";
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .with_alignment(64);
    let file = |zip: &mut zip::ZipWriter<_>, name: String, data: &[u8]| -> std::io::Result<()> {
        zip.start_file(name, stored)
            .map_err(std::io::Error::other)?;
        zip.write_all(data)
    };
    file(
        &mut zip,
        format!("{root}/data.pkl"),
        &pickle_state_dict(tensors),
    )?;
    file(&mut zip, format!("{root}/.format_version"), b"1")?;
    file(&mut zip, format!("{root}/.storage_alignment"), b"64")?;
    file(&mut zip, format!("{root}/byteorder"), b"little")?;
    for (key, (name, t)) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = if is_counter(name) {
            t.values
                .iter()
                .flat_map(|&v| (v as i64).to_le_bytes())
                .collect()
        } else {
            t.values.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        file(&mut zip, format!("{root}/data/{key}"), &bytes)?;
    }
    file(&mut zip, format!("{root}/version"), b"3\n")?;
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

/// Pickle opcodes (protocol 2) used by the writer.
mod op {
    pub const PROTO: u8 = 0x80;
    pub const GLOBAL: u8 = b'c';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const BINUNICODE: u8 = b'X';
    pub const BININT: u8 = b'J';
    pub const LONG1: u8 = 0x8a;
    pub const NEWFALSE: u8 = 0x89;
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const SETITEMS: u8 = b'u';
    pub const STOP: u8 = b'.';
}

struct Pickle(Vec<u8>);

impl Pickle {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(op::GLOBAL);
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn string(&mut self, s: &str) {
        self.0.push(op::BINUNICODE);
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        if let Ok(v) = i32::try_from(v) {
            self.0.push(op::BININT);
            self.0.extend_from_slice(&v.to_le_bytes());
        } else {
            self.0.push(op::LONG1);
            self.0.push(8);
            self.0.extend_from_slice(&(v as i64).to_le_bytes());
        }
    }
    fn tuple_of(&mut self, items: &[usize]) {
        self.0.push(op::MARK);
        items.iter().for_each(|&v| self.int(v));
        self.0.push(op::TUPLE);
    }
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.0.push(op::EMPTY_TUPLE);
        self.0.push(op::REDUCE);
    }
}

fn pickle_state_dict(tensors: &BTreeMap<String, HostTensor>) -> Vec<u8> {
    let mut p = Pickle(vec![op::PROTO, 2]);
    p.empty_ordered_dict();
    p.0.push(op::MARK);
    for (key, (name, t)) in tensors.iter().enumerate() {
        p.string(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.0.push(op::MARK);
        // The storage, by persistent id: ('storage', FloatStorage, key, 'cpu', numel).
        p.0.push(op::MARK);
        p.string("storage");
        let storage = if is_counter(name) {
            "LongStorage"
        } else {
            "FloatStorage"
        };
        p.global("torch", storage);
        p.string(&key.to_string());
        p.string("cpu");
        p.int(t.values.len());
        p.0.push(op::TUPLE);
        p.0.push(op::BINPERSID);
        p.int(0);
        p.tuple_of(&t.shape);
        p.tuple_of(&contiguous_strides(&t.shape));
        p.0.push(op::NEWFALSE);
        p.empty_ordered_dict();
        p.0.push(op::TUPLE);
        p.0.push(op::REDUCE);
    }
    p.0.push(op::SETITEMS);
    p.0.push(op::STOP);
    p.0
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}
