//! A fastai pretrained language model with its vocabulary, as fastai ships them (`lm.pth` +
//! `itos.pkl` in `$AWD_ULMFIT`, default `../shared/testdata/ulmfit`).

use std::path::PathBuf;

use awd::checkpoint::native::load_with_vocab;
use awd::data::Vocab;
use awd::data::corpus::Level;
use awd::data::dataset::encode_file;
use awd::device;
use awd::dropout::Masks;
use awd::train::eval::mean_loss;
use sha2::{Digest, Sha256};

fn ulmfit() -> PathBuf {
    let dir = std::env::var_os("AWD_ULMFIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/ulmfit")
        });
    assert!(dir.is_dir(), "{} not found (set AWD_ULMFIT)", dir.display());
    dir
}

/// The weights load with their vocabulary (sizes read from the tensors) and evaluate three
/// documents to the loss fastai 2.8.12 computed on the same token stream (1e-4, f32 over 6k
/// tokens; recorded by tests/vectors/make_ulmfit_eval.py for the weights whose sha256 it
/// holds). Other weights of the same kind must predict better than a uniform guess.
#[test]
fn a_fastai_pretrained_model_evaluates_as_in_fastai() {
    let dir = ulmfit();
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(vectors.join("ulmfit_eval.json")).unwrap()).unwrap();
    let lines: Vec<String> = serde_json::from_value(rec["lines"].clone()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("three.txt");
    std::fs::write(&text, lines.join("\n") + "\n").unwrap();

    let dev = device::cpu();
    let (mut model, info) = load_with_vocab(
        &dir.join("lm.pth"),
        Some(&dir.join("itos.pkl")),
        &Masks::default(),
        &dev,
    )
    .unwrap();
    let vocab = Vocab::from_itos(info.vocab);
    let ids = encode_file(&text, &vocab, Level::Word).unwrap();
    assert_eq!(ids.len() as u64, rec["tokens"].as_u64().unwrap());
    let loss = mean_loss(
        &mut model,
        &ids,
        1,
        rec["bptt"].as_u64().unwrap() as usize,
        &dev,
    )
    .unwrap();

    let sha = format!(
        "{:x}",
        Sha256::digest(std::fs::read(dir.join("lm.pth")).unwrap())
    );
    if sha == rec["lm_sha256"].as_str().unwrap() {
        let want = rec["loss"].as_f64().unwrap();
        assert!((loss - want).abs() < 1e-4, "awd {loss} vs fastai {want}");
    } else {
        assert!(
            loss.is_finite() && loss < (vocab.len() as f64).ln(),
            "{loss}"
        );
    }
}

/// A vocabulary that is not the one the weights were trained with is refused, naming both sizes.
#[test]
fn a_vocabulary_of_another_size_is_refused() {
    let dir = ulmfit();
    let small = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/itos_p2.pkl");
    let err = load_with_vocab(
        &dir.join("lm.pth"),
        Some(&small),
        &Masks::default(),
        &device::cpu(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("44 tokens") && err.contains("embedding rows"),
        "{err}"
    );
}
