//! SharedF32 by the integration tests: where the fastai vectors are, and how tensors are compared.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use awd::params::HostTensor;

/// `$var`, or `../shared/{rel}` beside the checkout. A missing directory fails the test: parity
/// is not optional.
fn shared(var: &str, rel: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared")
            .join(rel)
    });
    assert!(dir.is_dir(), "{} not found (set {var})", dir.display());
    dir
}

/// The fastai LM vectors.
pub fn vectors_dir() -> PathBuf {
    shared("AWD_FASTAI_VECTORS", "testdata/fastai")
}

/// The shared real-text corpora.
pub fn data_dir() -> PathBuf {
    shared("AWD_DATA", "data")
}

/// A fastai-pretrained LM as fastai ships them (`lm.pth`, `itos.pkl`) and `tokens.jsonl`.
pub fn ulmfit_dir() -> PathBuf {
    shared("AWD_ULMFIT", "testdata/ulmfit")
}

/// The fastai text-classifier vectors.
pub fn clas_dir() -> PathBuf {
    shared("AWD_FASTAI_CLAS_VECTORS", "testdata/fastai_clas")
}

/// A safetensors file of the LM vectors.
pub fn load(file: &str) -> BTreeMap<String, HostTensor> {
    load_from(&vectors_dir(), file)
}

pub fn load_from(dir: &std::path::Path, file: &str) -> BTreeMap<String, HostTensor> {
    let path = dir.join(file);
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

/// Every gradient of `got` (path → gradient, `None` where none reached it) matches `want` to
/// `rtol`, and they name the same tensors: one gradient per trained tensor, under fastai's names.
pub fn assert_grads(
    what: &str,
    got: Vec<(String, Option<HostTensor>)>,
    want: &BTreeMap<String, HostTensor>,
    rtol: f32,
) {
    let got: BTreeMap<String, Option<HostTensor>> = got.into_iter().collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "one gradient per trained tensor, under fastai's names"
    );
    for (name, w) in want {
        let g = got[name]
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: {name} received no gradient"));
        assert_close(&format!("{what}.grad.{name}"), g, w, rtol);
    }
}

/// The drop probability a recorded mask was made for: its kept entries hold 1/(1-p).
pub fn p_of_mask(mask: &HostTensor) -> f64 {
    let kept = mask.values.iter().copied().find(|&v| v != 0.0);
    kept.map_or(0.0, |v| 1.0 - 1.0 / v as f64)
}

/// The standard output of a command that must have succeeded (its stderr shown if not).
pub fn ok(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Fails with exit code 2, a message containing `needle`, and no panic.
pub fn fails_with(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(needle), "expected `{needle}` in: {stderr}");
}

pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// The first `n` shared movie reviews (label,text,is_valid) as a CSV in `dir`.
pub fn reviews(dir: &std::path::Path, n: usize) -> PathBuf {
    let src = data_dir().join("rotten_tomatoes.csv");
    let mut reader = csv::Reader::from_path(&src).unwrap();
    let path = dir.join("reviews.csv");
    let mut w = csv::Writer::from_path(&path).unwrap();
    w.write_record(reader.headers().unwrap()).unwrap();
    for r in reader.records().take(n) {
        w.write_record(&r.unwrap()).unwrap();
    }
    w.flush().unwrap();
    path
}

/// The GPU the GPU tests run on: `wgpu`, or `cuda` in a build with that feature alone.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub const GPU: &str = if cfg!(feature = "wgpu") {
    "wgpu"
} else {
    "cuda"
};

/// The [`GPU`] device (plain; `.autodiff()` for a tracked one).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub fn gpu() -> awd::device::Device {
    awd::device::select(GPU).unwrap_or_else(|e| panic!("{e}"))
}
