//! Reading and writing tensors by name: safetensors, PyTorch `.pth`, and awd's own checkpoints.

pub mod export;
pub mod fastai;
pub mod fastai_clas;
pub mod native;
pub mod pth;
pub mod safetensors;

pub use crate::files::write_atomic;

use std::path::{Path, PathBuf};

/// The model file of a run directory.
pub const MODEL_FILE: &str = "model.safetensors";

/// A model path as given: a run directory stands for its model file.
pub fn model_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(MODEL_FILE)
    } else {
        path.to_path_buf()
    }
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
