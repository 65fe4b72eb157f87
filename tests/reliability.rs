//! Faults, hostile input, numerical guards and determinism.

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

#[test]
fn a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("ckpt.bin");
    write_atomic(&good, b"old and good").unwrap();
    // The target is a directory: the final rename fails.
    let blocked = tmp.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("inside"), "x").unwrap();
    assert!(write_atomic(&blocked, b"new").is_err());
    assert_eq!(std::fs::read(&good).unwrap(), b"old and good");
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 2, "no temporary left behind: {names:?}");
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

#[test]
fn fuzz_corpus_reader_never_panics() {
    timed("corpus reader", || {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.txt");
        proptest!(ProptestConfig::with_cases(cases()), |(bytes in proptest::collection::vec(any::<u8>(), 0..400), char_level: bool)| {
            std::fs::write(&path, &bytes).unwrap();
            let level = if char_level { Level::Char } else { Level::Word };
            let _ = for_each_token(&path, level, |_| {});
        });
    });
}

#[test]
fn fuzz_checkpoint_readers_never_panic_on_mutated_files() {
    let (st, pt) = small_files();
    let tmp = tempfile::tempdir().unwrap();
    timed("safetensors and pth readers (mutations)", || {
        proptest!(ProptestConfig::with_cases(cases()), |(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), which: bool)| {
            let mut bytes = if which { st.clone() } else { pt.clone() };
            for (i, b) in &flips {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            if flips.len() % 2 == 0 {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let path = tmp.path().join(if which { "m.safetensors" } else { "m.pth" });
            std::fs::write(&path, &bytes).unwrap();
            // Either read (the flips hit tensor values only) or refused with the file named.
            let named = |e: String| e.contains(path.to_str().unwrap());
            if let Err(e) = fastai::read_tensors(&path) {
                prop_assert!(named(e.to_string()), "{e}");
            }
            if let Err(e) = native::load(&path, &Masks::default(), &device::cpu()) {
                prop_assert!(named(e.to_string()), "{e}");
            }
        });
    });
}

#[test]
fn fuzz_random_bytes_as_checkpoints_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    timed("checkpoint readers (random bytes)", || {
        proptest!(ProptestConfig::with_cases(cases()), |(bytes in proptest::collection::vec(any::<u8>(), 0..300), ext in 0usize..3)| {
            let name = ["x.pth", "x.safetensors", "x.pt"][ext];
            let path = tmp.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            // 300 random bytes are never a checkpoint.
            prop_assert!(fastai::read_tensors(&path).is_err());
        });
    });
}

#[test]
fn hostile_headers_are_refused_without_allocating_what_they_declare() {
    let tmp = tempfile::tempdir().unwrap();
    // safetensors declaring a 2^40-element tensor over 8 bytes of data.
    let header = br#"{"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,8]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0u8; 8]);
    let p = tmp.path().join("huge.safetensors");
    std::fs::write(&p, &st).unwrap();
    assert!(fastai::read_tensors(&p).is_err());
    // A header that claims to be larger than the file.
    let mut st2 = (u64::MAX / 2).to_le_bytes().to_vec();
    st2.extend_from_slice(b"{}");
    std::fs::write(&p, &st2).unwrap();
    assert!(fastai::read_tensors(&p).is_err());

    // A .pth whose pickle declares a shape of 2^40 elements for a tiny storage.
    let mut state = BTreeMap::new();
    state.insert("w".to_string(), HostTensor::new(vec![2], vec![1.0, 2.0]));
    let good = pth::serialize(&state).unwrap();
    let p = tmp.path().join("huge.pth");
    let patched = patch_pickle_shape(&good);
    std::fs::write(&p, &patched).unwrap();
    let t = Instant::now();
    let r = fastai::read_tensors(&p);
    assert!(
        r.is_err(),
        "a shape larger than its storage must be refused"
    );
    assert!(t.elapsed() < Duration::from_secs(5));

    // A zip whose data.pkl is not a pickle.
    let bad_pickle = replace_entry(
        &good,
        "archive/data.pkl",
        b"\x80\x02garbage that is not a pickle",
    );
    std::fs::write(&p, bad_pickle).unwrap();
    let e = fastai::read_tensors(&p).unwrap_err().to_string();
    assert!(e.contains("huge.pth"), "{e}");
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

#[test]
fn gradient_clipping_is_pytorchs_total_norm_over_all_parameters() {
    let (model, mut grads) = tiny_model_and_grads();
    let before = host_grads(&model, &grads);
    let total: f64 = before
        .iter()
        .flatten()
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt();
    let norms = grad_norms(&model, &grads);
    let max_norm = total / 3.0;
    let reported = clip_global_norm(&model, &mut grads, &norms, max_norm);
    assert!((reported - total).abs() <= 1e-6 * total);
    let factor = max_norm / (total + 1e-6);
    let after = host_grads(&model, &grads);
    for (b, a) in before.iter().flatten().zip(after.iter().flatten()) {
        assert!(((*b as f64) * factor - *a as f64).abs() <= 1e-6 * (1.0 + b.abs() as f64));
    }
    // Below the bound, nothing changes.
    let norms = grad_norms(&model, &grads);
    clip_global_norm(&model, &mut grads, &norms, total * 10.0);
    assert_eq!(host_grads(&model, &grads), after);
}

#[test]
fn a_non_finite_gradient_is_named_by_its_parameter() {
    let (model, mut grads) = tiny_model_and_grads();
    let norms = grad_norms(&model, &grads);
    assert!(non_finite_gradient(&norms).is_none());
    let (path, id, _) = norms
        .iter()
        .find(|n| n.0.contains("weight_hh_l0_raw"))
        .unwrap()
        .clone();
    let g: Tensor<2> = grads.remove(id).unwrap();
    grads.register(id, g.mul_scalar(f32::NAN));
    let norms = grad_norms(&model, &grads);
    assert_eq!(
        non_finite_gradient(&norms).map(|n| n.0),
        Some(path.as_str())
    );
}

#[test]
fn two_runs_with_the_same_seed_write_byte_identical_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        let mut args = run_args(d);
        if let Some(e) = args.iter_mut().skip_while(|s| *s != "--epochs").nth(1) {
            *e = "2".into();
        }
        let o = awd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.status.success());
    }
    for f in ["train-state.safetensors", "model.safetensors"] {
        assert!(
            std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn the_mask_stream_does_not_depend_on_the_thread_count() {
    let masks_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let dev = device::cpu_autodiff();
            let masks = Masks::seeded(11);
            let config = AwdLstmConfig {
                vocab_size: 20,
                emb_size: 8,
                hidden_size: 16,
                n_layers: 3,
                ..AwdLstmConfig::default()
            };
            let mut m = set_training(LanguageModel::new(&config, &masks, &dev).unwrap(), true);
            masks.start_recording();
            for _ in 0..3 {
                let x: Tensor<2, Int> = Tensor::from_data(
                    TensorData::new((0..40).map(|i| i % 20).collect::<Vec<i64>>(), [4, 10]),
                    &dev,
                );
                m.forward(x).unwrap();
            }
            masks
                .take_records()
                .into_iter()
                .map(|r| (r.shape, r.values))
                .collect::<Vec<_>>()
        })
    };
    let one = masks_with(1);
    assert!(one.len() >= 3 * 7);
    assert_eq!(one, masks_with(2));
}
