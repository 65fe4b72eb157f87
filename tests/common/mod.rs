//! Shared by the integration tests: where the fastai vectors are, and how tensors are compared.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use awd::params::HostTensor;

/// `AWD_FASTAI_VECTORS`, or `../shared/testdata/fastai` beside the checkout. A missing directory
/// fails the test: parity is not optional.
pub fn vectors_dir() -> PathBuf {
    let dir = std::env::var_os("AWD_FASTAI_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/fastai")
        });
    assert!(
        dir.is_dir(),
        "fastai vectors not found at {} (set AWD_FASTAI_VECTORS)",
        dir.display()
    );
    dir
}

/// The shared real-text corpora: `AWD_DATA`, or `../shared/data` beside the checkout.
pub fn data_dir() -> PathBuf {
    let dir = std::env::var_os("AWD_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        dir.is_dir(),
        "shared data not found at {} (set AWD_DATA)",
        dir.display()
    );
    dir
}

pub fn load(file: &str) -> BTreeMap<String, HostTensor> {
    let path = vectors_dir().join(file);
    awd::checkpoint::safetensors::read(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The tensors under `prefix.`, with the prefix removed.
pub fn under(map: &BTreeMap<String, HostTensor>, prefix: &str) -> BTreeMap<String, HostTensor> {
    let p = format!("{prefix}.");
    map.iter()
        .filter_map(|(k, v)| k.strip_prefix(&p).map(|k| (k.to_string(), v.clone())))
        .collect()
}

pub fn get<'a>(map: &'a BTreeMap<String, HostTensor>, key: &str) -> &'a HostTensor {
    map.get(key)
        .unwrap_or_else(|| panic!("`{key}` missing from the vectors"))
}

/// Asserts `got` matches `want` to `rtol` relative to the tensor's scale: every entry within
/// `rtol * (|want_i| + max_j |want_j|)`. Zeros in `want` (dropped entries) must be zeros in `got`
/// up to the same bound.
pub fn assert_close(name: &str, got: &HostTensor, want: &HostTensor, rtol: f32) {
    assert_eq!(got.shape, want.shape, "{name}: shape");
    let scale = want.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.values.iter().zip(&want.values).enumerate() {
        let bound = rtol * (w.abs() + scale) + 1e-30;
        assert!(
            (g - w).abs() <= bound,
            "{name}[{i}]: got {g}, want {w} (|diff| {} > {bound}, scale {scale})",
            (g - w).abs()
        );
    }
}

/// The drop probability a recorded mask was made for: its kept entries hold 1/(1-p).
pub fn p_of_mask(mask: &HostTensor) -> f64 {
    let kept = mask.values.iter().copied().find(|&v| v != 0.0);
    kept.map_or(0.0, |v| 1.0 - 1.0 / v as f64)
}
