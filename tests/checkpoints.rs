//! fastai checkpoints in and out, awd's own model files, and bad checkpoints.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use awd::checkpoint::{fastai, native, pth, safetensors};
use awd::device;
use awd::dropout::Masks;
use awd::model::{AwdLstmConfig, LanguageModel};
use awd::params::HostTensor;
use common::*;

fn bits(t: &HostTensor) -> Vec<u32> {
    t.values.iter().map(|v| v.to_bits()).collect()
}

fn assert_same_bits(a: &BTreeMap<String, HostTensor>, b: &BTreeMap<String, HostTensor>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in a {
        assert_eq!(t.shape, b[k].shape, "{k}: shape");
        assert_eq!(bits(t), bits(&b[k]), "{k}: values");
    }
}

#[test]
fn pth_and_safetensors_of_the_same_checkpoint_agree() {
    let dir = vectors_dir();
    let from_pth = pth::read(&dir.join("fastai_lm.pth")).unwrap();
    let from_st = safetensors::read(&dir.join("fastai_lm.safetensors")).unwrap();
    assert_same_bits(&from_pth, &from_st);
}

#[test]
fn configuration_is_inferred_from_shapes() {
    let t = load("fastai_lm.safetensors");
    let c = fastai::infer_config(&t).unwrap();
    let emb = &t["0.encoder.weight"].shape;
    assert_eq!((c.vocab_size, c.emb_size), (emb[0], emb[1]));
    let layers = t.keys().filter(|k| k.ends_with("weight_hh_l0_raw")).count();
    assert_eq!(c.n_layers, layers);
    assert!(c.tie_weights);
}

#[test]
fn convert_round_trips_every_tensor_bit_for_bit_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("model.safetensors");
    let back = tmp.path().join("back.pth");
    let awd = env!("CARGO_BIN_EXE_awd");
    let src = vectors_dir().join("fastai_lm.pth");
    for (i, o) in [
        (src.as_path(), st.as_path()),
        (st.as_path(), back.as_path()),
    ] {
        let out = Command::new(awd)
            .arg("convert")
            .arg(i)
            .arg(o)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let original = pth::read(&src).unwrap();
    assert_same_bits(&original, &safetensors::read(&st).unwrap());
    assert_same_bits(&original, &pth::read(&back).unwrap());

    // The output exists now: converting onto it again needs --force.
    let out = Command::new(awd)
        .arg("convert")
        .arg(&src)
        .arg(&st)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
}

#[test]
fn model_written_as_pth_reads_back_with_other_sizes_and_bidirectional() {
    let tmp = tempfile::tempdir().unwrap();
    for (layers, bidir) in [(1, false), (2, false), (4, false), (2, true)] {
        let config = AwdLstmConfig {
            vocab_size: 13,
            emb_size: 6,
            hidden_size: 10,
            n_layers: layers,
            bidirectional: bidir,
            ..AwdLstmConfig::default()
        };
        let model = LanguageModel::new(&config, &Masks::default(), &device::cpu()).unwrap();
        let state = fastai::to_state_dict(&model);
        let path = tmp.path().join(format!("m{layers}{bidir}.pth"));
        pth::write(&path, &state).unwrap();
        let read = pth::read(&path).unwrap();
        assert_same_bits(&state, &read);
        let inferred = fastai::infer_config(&read).unwrap();
        assert_eq!(
            (
                inferred.n_layers,
                inferred.hidden_size,
                inferred.bidirectional
            ),
            (layers, if layers == 1 { 6 } else { 10 }, bidir)
        );
    }
}

#[test]
fn native_model_file_keeps_config_and_vocab() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.safetensors");
    let config = AwdLstmConfig {
        vocab_size: 5,
        emb_size: 4,
        hidden_size: 6,
        n_layers: 2,
        ..AwdLstmConfig::default()
    };
    let model = LanguageModel::new(&config, &Masks::default(), &device::cpu()).unwrap();
    let info = native::ModelInfo {
        vocab: ["a", "b", "c", "d", "e"].map(String::from).to_vec(),
        extra: serde_json::json!({"level": "word"}),
    };
    native::save(&path, &model, &info).unwrap();
    let (back, info2) = native::load(&path, &Masks::default(), &device::cpu()).unwrap();
    assert_eq!(back.config(), &config);
    assert_eq!(info2.vocab, info.vocab);
    assert_eq!(info2.extra, info.extra);
    assert_same_bits(
        &fastai::to_state_dict(&model),
        &fastai::to_state_dict(&back),
    );
    // No temporary file is left beside it.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

fn load_error(tensors: &BTreeMap<String, HostTensor>) -> String {
    let config = fastai::infer_config(tensors).unwrap();
    fastai::from_state_dict(tensors, &config, &Masks::default(), &device::cpu())
        .expect_err("must not load")
        .to_string()
}

#[test]
fn misfit_checkpoints_list_the_offending_keys() {
    let good = load("fastai_lm.safetensors");

    let mut wrong_shape = good.clone();
    let w = wrong_shape.get_mut("0.rnns.1.module.weight_ih_l0").unwrap();
    w.shape = vec![w.shape[1], w.shape[0]];
    assert!(load_error(&wrong_shape).contains("0.rnns.1.module.weight_ih_l0"));

    let mut extra = good.clone();
    extra.insert(
        "0.rnns.0.surprise".into(),
        HostTensor::new(vec![1], vec![0.0]),
    );
    let mut missing = extra.clone();
    missing.remove("1.decoder.bias");
    let msg = {
        let config = AwdLstmConfig {
            out_bias: true,
            ..fastai::infer_config(&good).unwrap()
        };
        fastai::from_state_dict(&missing, &config, &Masks::default(), &device::cpu())
            .err()
            .unwrap()
            .to_string()
    };
    assert!(
        msg.contains("0.rnns.0.surprise") && msg.contains("1.decoder.bias"),
        "{msg}"
    );
}

fn cli_error(args: &[&Path]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_awd"))
        .arg("convert")
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn truncated_missing_and_non_checkpoint_files_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    for name in ["fastai_lm.pth", "fastai_lm.safetensors"] {
        let bytes = std::fs::read(vectors_dir().join(name)).unwrap();
        let cut = tmp.path().join(format!("cut-{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = cli_error(&[&cut, &out]);
        assert!(e.contains("cut-"), "{e}");
    }
    let text = tmp.path().join("notes.pth");
    std::fs::write(&text, "these are not tensors\n").unwrap();
    assert!(cli_error(&[&text, &out]).contains("notes.pth"));
    assert!(cli_error(&[&tmp.path().join("absent.pth"), &out]).contains("absent.pth"));
    assert!(!out.exists(), "nothing is written on failure");
}
