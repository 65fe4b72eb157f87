//! Reading and writing tensors by name: safetensors, PyTorch `.pth`, and awd's own checkpoints.

pub mod fastai;
pub mod fastai_clas;
pub mod native;
pub mod pth;
pub mod safetensors;

use std::io::Write;
use std::path::Path;

use crate::error::{AwdError, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over `path`. A crash leaves either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| AwdError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| AwdError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| AwdError::io(path, e))?;
    tmp.persist(path).map_err(|e| AwdError::io(path, e.error))?;
    Ok(())
}

/// The safetensors metadata awd writes: one key, `awd`, holding a JSON object. (One key, because
/// the header's metadata map has no fixed order and the same model must give the same bytes.)
pub fn awd_metadata(value: &serde_json::Value) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([("awd".to_string(), value.to_string())])
}

/// The `awd` metadata object of a file, if it carries `format`.
pub fn read_awd_metadata(
    metadata: Option<&std::collections::HashMap<String, String>>,
    format: &str,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = metadata?.get("awd")?;
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let map = value.as_object()?.clone();
    (map.get("format")?.as_str()? == format).then_some(map)
}
