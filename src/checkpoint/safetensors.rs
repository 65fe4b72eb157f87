//! safetensors files as maps from name to [`HostTensor`].

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{AwdError, Result};
use crate::params::HostTensor;

/// Reads every tensor of a safetensors file (float and integer types become f32).
pub fn read(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = std::fs::read(path).map_err(|e| AwdError::io(path, e))?;
    parse(&bytes).map_err(|reason| AwdError::checkpoint(path, reason))
}

/// Parses safetensors bytes; the error says what is wrong with them.
pub fn parse(bytes: &[u8]) -> std::result::Result<BTreeMap<String, HostTensor>, String> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a readable safetensors file ({e})"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let values = to_f32(&view).ok_or_else(|| {
            format!(
                "tensor `{name}` has dtype {:?}, which awd does not read",
                view.dtype()
            )
        })?;
        out.insert(name, HostTensor::new(view.shape().to_vec(), values));
    }
    Ok(out)
}

fn to_f32(view: &TensorView<'_>) -> Option<Vec<f32>> {
    let d = view.data();
    let le = |n: usize| d.chunks_exact(n);
    Some(match view.dtype() {
        Dtype::F32 => le(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F64 => le(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        Dtype::I32 => le(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        Dtype::I64 => le(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        _ => return None,
    })
}

/// The bytes of a safetensors file holding `tensors` as f32 (and `metadata`, if any).
pub fn serialize(
    tensors: &BTreeMap<String, HostTensor>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| {
            let b = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (k.clone(), b, t.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| AwdError::Shape(format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, metadata).map_err(|e| AwdError::Shape(e.to_string()))
}

/// Writes `tensors` to `path` atomically.
pub fn write(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    super::write_atomic(path, &serialize(tensors, None)?)
}

/// A tensor of a mixed file: float values, or opaque bytes (stored as a `U8` tensor).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    F32(HostTensor),
    Bytes(Vec<u8>),
}

/// The bytes of a safetensors file holding `entries` and `metadata`.
pub fn serialize_entries(
    entries: &BTreeMap<String, Entry>,
    metadata: std::collections::HashMap<String, String>,
) -> Result<Vec<u8>> {
    let owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = entries
        .iter()
        .map(|(k, e)| match e {
            Entry::F32(t) => (
                k.clone(),
                Dtype::F32,
                t.shape.clone(),
                t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Entry::Bytes(b) => (k.clone(), Dtype::U8, vec![b.len()], b.clone()),
        })
        .collect();
    let views = owned
        .iter()
        .map(|(k, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| AwdError::Shape(format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| AwdError::Shape(e.to_string()))
}

/// A mixed file's entries and its header metadata.
pub type Entries = (
    BTreeMap<String, Entry>,
    std::collections::HashMap<String, String>,
);

/// Parses a file written by [`serialize_entries`]; the error says what is wrong with the bytes.
pub fn parse_entries(bytes: &[u8]) -> std::result::Result<Entries, String> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format!("not a readable safetensors file ({e})"))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a readable safetensors file ({e})"))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let entry = if view.dtype() == Dtype::U8 {
            Entry::Bytes(view.data().to_vec())
        } else {
            let values = to_f32(&view)
                .ok_or_else(|| format!("tensor `{name}` has dtype {:?}", view.dtype()))?;
            Entry::F32(HostTensor::new(view.shape().to_vec(), values))
        };
        out.insert(name, entry);
    }
    Ok((out, metadata))
}
