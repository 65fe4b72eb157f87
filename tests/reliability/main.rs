//! Faults, hostile input, numerical guards and determinism.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use awd::checkpoint::{fastai, native, pth, safetensors, write_atomic};
use awd::data::corpus::{Level, for_each_token};
use awd::device;
use awd::dropout::{Masks, set_training};
use awd::model::{AwdLstmConfig, LanguageModel};
use awd::params::HostTensor;
use awd::train::optim::{clip_global_norm, grad_norms, non_finite_gradient};
use awd::train::state;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn awd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(args)
        .output()
        .unwrap()
}

const RUN: &[&str] = &[
    "--quiet",
    "--grammar-tokens",
    "3000",
    "--epochs",
    "8",
    "--batch-size",
    "8",
    "--bptt",
    "12",
];

fn run_args(out: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec!["train".into(), "--out".into(), out.to_str().unwrap().into()];
    a.extend(RUN.iter().map(|s| s.to_string()));
    a
}

fn weights(p: &Path) -> BTreeMap<String, Vec<u32>> {
    safetensors::read(p)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.values.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

#[test]
fn sigkill_at_random_points_leaves_a_loadable_checkpoint_and_resume_matches() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let out = awd(&run_args(&whole)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = weights(&whole.join("model.safetensors"));

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut resumed = 0;
    // Four kills at random moments; on a slow machine, later ones until one lands after the
    // first checkpoint.
    for seed in 0..8 {
        if seed >= 4 && resumed > 0 {
            break;
        }
        let delay = if seed < 4 {
            rng.random_range(150..1200u64)
        } else {
            1200 * (seed as u64 - 2)
        };
        let dir = tmp.path().join(format!("killed{seed}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_awd"))
            .args(run_args(&dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL: no handler runs
        child.wait().unwrap();
        let ckpt = dir.join("train-state.safetensors");
        if !ckpt.exists() {
            assert!(
                !dir.join("model.safetensors").exists()
                    || native::load(
                        &dir.join("model.safetensors"),
                        &Masks::default(),
                        &device::cpu()
                    )
                    .is_ok()
            );
            continue;
        }
        state::load(&ckpt)
            .unwrap_or_else(|e| panic!("killed after {delay} ms: checkpoint unreadable: {e}"));
        native::load(
            &dir.join("model.safetensors"),
            &Masks::default(),
            &device::cpu(),
        )
        .unwrap_or_else(|e| panic!("killed after {delay} ms: model unreadable: {e}"));
        let r = awd(&[
            "train",
            "--resume",
            "--quiet",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert_eq!(
            weights(&dir.join("model.safetensors")),
            reference,
            "killed after {delay} ms"
        );
        resumed += 1;
    }
    assert!(resumed > 0, "no kill landed after a checkpoint");
}

#[test]
fn unwritable_output_fails_before_training_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    for out in [
        file.join("run"),
        Path::new("/proc/awd-cannot-write-here").to_path_buf(),
    ] {
        let o = awd(&["train", "--quiet", "--out", out.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains(out.to_str().unwrap()) || err.contains(file.to_str().unwrap()),
            "{err}"
        );
        assert!(
            !err.contains("training on"),
            "checked before any work: {err}"
        );
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
        let reason = line.rsplit(": ").next().unwrap_or("");
        assert_eq!(
            line.matches(reason).count(),
            1,
            "the reason said once: {line}"
        );
    }
}

/// A model file, a fastai state dict and a `.pth` of a small model, for mutation.
fn small_files() -> (Vec<u8>, Vec<u8>) {
    let config = AwdLstmConfig {
        vocab_size: 11,
        emb_size: 4,
        hidden_size: 6,
        n_layers: 2,
        ..AwdLstmConfig::default()
    };
    let model = LanguageModel::new(&config, &Masks::default(), &device::cpu()).unwrap();
    let state = fastai::to_state_dict(&model);
    (
        safetensors::serialize(&state, None).unwrap(),
        pth::serialize(&state).unwrap(),
    )
}

fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    eprintln!("fuzz target {name}: {:.2} s", t.elapsed().as_secs_f64());
    out
}

fn cases() -> u32 {
    std::env::var("AWD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Rewrites the size tuple `(2,)` of the first tensor to `(2^40,)` (BININT 2 → LONG1 2^40).
fn patch_pickle_shape(pth_bytes: &[u8]) -> Vec<u8> {
    let mut zip = zip_entries(pth_bytes);
    let pkl = zip
        .iter_mut()
        .find(|(n, _)| n.ends_with("data.pkl"))
        .unwrap();
    // `( J 02000000 t` is the size tuple (MARK, BININT 2, TUPLE) after the storage offset.
    let needle = [b'(', b'J', 2, 0, 0, 0, b't'];
    let at = pkl
        .1
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut huge = vec![b'(', 0x8a, 8];
    huge.extend_from_slice(&(1u64 << 40).to_le_bytes());
    huge.push(b't');
    pkl.1.splice(at..at + needle.len(), huge);
    rebuild_zip(&zip)
}

fn replace_entry(pth_bytes: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let mut zip = zip_entries(pth_bytes);
    zip.iter_mut().find(|(n, _)| n == name).unwrap().1 = data.to_vec();
    rebuild_zip(&zip)
}

fn zip_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let mut v = Vec::new();
            f.read_to_end(&mut v).unwrap();
            (f.name().to_string(), v)
        })
        .collect()
}

fn rebuild_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (n, d) in entries {
        w.start_file(n, opts).unwrap();
        w.write_all(d).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn tiny_model_and_grads() -> (LanguageModel, GradientsParams) {
    let dev = device::cpu_autodiff();
    let config = AwdLstmConfig {
        vocab_size: 9,
        emb_size: 4,
        hidden_size: 5,
        n_layers: 2,
        ..AwdLstmConfig::default()
    };
    let mut model = set_training(
        LanguageModel::new(&config, &Masks::seeded(1), &dev).unwrap(),
        true,
    );
    let ids: Vec<i64> = (0..12).map(|i| (i * 7) % 9).collect();
    let x: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids.clone(), [2, 6]), &dev);
    let y: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(ids.iter().map(|i| (i + 1) % 9).collect::<Vec<_>>(), [2, 6]),
        &dev,
    );
    let (_, loss) = model.loss(x, y, 2.0, 1.0).unwrap();
    let grads = GradientsParams::from_grads(loss.total.backward(), &model);
    (model, grads)
}

fn host_grads(model: &LanguageModel, grads: &GradientsParams) -> Vec<Vec<f32>> {
    grad_norms(model, grads)
        .iter()
        .map(|(path, id, _)| {
            let shape_rank = awd::params::named_values(model)
                .into_iter()
                .find(|(p, _)| p == path)
                .unwrap()
                .1
                .shape
                .len();
            match shape_rank {
                1 => HostTensor::from_tensor(grads.get::<1>(*id).unwrap()).values,
                _ => HostTensor::from_tensor(grads.get::<2>(*id).unwrap()).values,
            }
        })
        .collect()
}

mod inputs_and_numerics;
