//! fastai's `learn.export()` files read without Python: the classifier's probabilities equal
//! fastai's `learn.predict` (1e-4), alone and in a batch, and the language model's next-token
//! log-probabilities equal fastai's top 10 (1e-4). What awd cannot honor is refused by name.

use std::path::{Path, PathBuf};

use awd::checkpoint::export::{self, ExportKind};
use awd::jobs::classify::Classifiers;
use awd::jobs::lm::{LmSource, load_lm};
use awd::jobs::score::score;

fn export_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/fastai_export")
}

fn lines(name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(export_dir().join(name)).expect("probes");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).expect("numbers")
}

#[test]
fn the_classifier_export_reads_its_weights_vocabulary_classes_and_tokenizer() {
    let e = export::read(&export_dir().join("export.pkl")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(export_dir().join("export_meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(e.kind, ExportKind::Classifier);
    let classes: Vec<String> = serde_json::from_value(meta["classes"].clone()).unwrap();
    assert_eq!(e.classes, classes);
    let emb = &e.tensors["0.module.encoder.weight"];
    assert_eq!(
        emb.shape,
        [e.vocab.len(), meta["emb_sz"].as_u64().unwrap() as usize]
    );
    assert_eq!(&e.vocab[..3], ["xxunk", "xxpad", "xxbos"]);
    assert_eq!(e.rules, export::DEFAULT_RULES);
    assert_eq!((e.bptt, e.max_len), (Some(72), Some(72 * 20)));
    assert!(!e.multi_label && !e.backwards);
    assert!(e.tensors.contains_key("1.layers.0.0.running_mean"));
    assert!(!export::is_export(&export_dir().join("../ulmfit/lm.pth")));
}

#[test]
fn the_classifier_export_predicts_as_fastai_alone_and_batched() {
    predicts_as_fastai(&export_dir().join("export.pkl"), lines("probes.jsonl"));
}

/// A fastai pipeline that tokenized with awd's Python drop-in (`tok=awd.SpacyTokenizer()`):
/// its export is read, and predicts, as one with fastai's own spaCy tokenizer.
#[test]
fn an_export_whose_tokenizer_is_awds_drop_in_predicts_as_fastai() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/awd_tok_export");
    let probes = std::fs::read_to_string(dir.join("probes.jsonl")).expect("probes");
    let probes = probes
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"));
    predicts_as_fastai(&dir.join("export.pkl"), probes.collect());
}

/// The export's probabilities for each probe's text, alone and all in one batch, against
/// fastai's `learn.predict` (1e-4).
fn predicts_as_fastai(export: &Path, probes: Vec<serde_json::Value>) {
    let device = awd::device::cpu();
    let mut clas = Classifiers::load(&[export.to_path_buf()], None, &device).unwrap();
    let texts: Vec<String> = probes
        .iter()
        .map(|p| p["text"].as_str().unwrap().into())
        .collect();
    let batched = clas.predict(&texts, 64).unwrap();
    let mut worst = 0f64;
    for (i, p) in probes.iter().enumerate() {
        let want = floats(&p["probs"]);
        let alone = clas.predict(&texts[i..i + 1], 1).unwrap().remove(0);
        for (got, label) in [(&alone, "alone"), (&batched[i], "batched")] {
            assert_eq!(
                got.labels,
                [p["label"].as_str().unwrap()],
                "text {i} {label}"
            );
            for (g, w) in got.probabilities.iter().zip(&want) {
                worst = worst.max((*g as f64 - w).abs());
                assert!(
                    (*g as f64 - w).abs() < 1e-4,
                    "text {i} {label}: {g} vs fastai {w}"
                );
            }
        }
    }
    eprintln!("largest difference from fastai's learn.predict: {worst:.2e}");
}

#[test]
fn the_language_model_export_gives_fastais_next_token_log_probabilities() {
    let device = awd::device::cpu();
    let source = LmSource {
        path: export_dir().join("lm_export.pkl"),
        ..Default::default()
    };
    let mut lm = load_lm(&source, &device).unwrap();
    for p in lines("lm_probes.jsonl") {
        let prompt = p["prompt"].as_str().unwrap();
        let s = score(&mut lm, prompt, &device).unwrap();
        let ids: Vec<u32> = serde_json::from_value(p["ids"].clone()).unwrap();
        assert_eq!(s.ids, ids, "{prompt}: fastai's ids");
        for (rank, want) in p["top"].as_array().unwrap().iter().enumerate() {
            let (token, logp) = (want[0].as_str().unwrap(), want[1].as_f64().unwrap());
            let id = lm.vocab.get(token).unwrap() as usize;
            assert!(
                (s.next[id] - logp).abs() < 1e-4,
                "{prompt}: {token} {} vs fastai {logp}",
                s.next[id]
            );
            if rank < 3 {
                assert_eq!(s.top_next(3, &lm)[rank].0, token, "{prompt}: rank {rank}");
            }
        }
    }
}

#[test]
fn an_export_given_to_the_other_job_is_refused_by_name() {
    let device = awd::device::cpu();
    let lm = LmSource {
        path: export_dir().join("export.pkl"),
        ..Default::default()
    };
    let err = load_lm(&lm, &device).err().unwrap().to_string();
    assert!(err.contains("classifier learner's export"), "{err}");
    let err = Classifiers::load(&[export_dir().join("lm_export.pkl")], None, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("language model learner's export"), "{err}");
}

#[test]
fn a_pickle_is_parsed_without_running_anything_and_damage_is_an_error() {
    // `os.system('echo hi')` as a pickle: parsed into a call that is never made.
    let evil = b"\x80\x02cos\nsystem\nX\x07\x00\x00\x00echo hiq\x00\x85R.";
    let p = export::pickle::parse(evil).unwrap();
    assert!(matches!(p.get(p.root), export::pickle::Value::Call { .. }));
    for cut in [1, 5, 12, evil.len() - 1] {
        assert!(export::pickle::parse(&evil[..cut]).is_err(), "cut at {cut}");
    }
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(export_dir().join("export.pkl")).unwrap();
    let broken = dir.path().join("export.pkl");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let err = Classifiers::load(&[broken], None, &awd::device::cpu())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("export.pkl"), "{err}");
}

/// A copy of `export.pkl` whose pickle has `from` replaced by `to` (the archive rewritten).
fn patched(dir: &Path, from: &[u8], to: &[u8]) -> PathBuf {
    use std::io::{Read, Write};
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(export_dir().join("export.pkl")).unwrap())
            .unwrap();
    let out = dir.join("export.pkl");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&out).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        if entry.name().ends_with("data.pkl") {
            let at = bytes
                .windows(from.len())
                .position(|w| w == from)
                .expect("the pattern");
            bytes.splice(at..at + from.len(), to.iter().copied());
        }
        w.start_file(entry.name(), stored).unwrap();
        w.write_all(&bytes).unwrap();
    }
    w.finish().unwrap();
    out
}

#[test]
fn what_awd_cannot_honor_is_refused_naming_what_was_found() {
    let cases: [(&[u8], &[u8], &str); 3] = [
        (
            b"fastai.text.core\nlowercase\n",
            b"mytools\nstrip_accents\n",
            "mytools.strip_accents",
        ),
        (
            b"fastai.text.core\nSpacyTokenizer\n",
            b"fastai.text.core\nSentencePieceTokenizer\n",
            "SentencePieceTokenizer",
        ),
        (
            b"fastai.text.models.awdlstm\nAWD_LSTM\n",
            b"fastai.text.models.qrnn\nAWD_QRNN\n",
            "AWD_QRNN",
        ),
    ];
    for (from, to, named) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = patched(dir.path(), from, to);
        let err = export::read(&path).expect_err("refused").to_string();
        assert!(err.contains(named), "{err}");
    }
}

/// A served model lays its recurrent weights out once: kept across batches, the layouts are
/// reused and the probabilities are the same, bit for bit, as laid out anew each chunk.
#[test]
fn kept_weight_layouts_are_reused_and_change_nothing() {
    use awd::kernels::kept::{keep_laid_out_weights, reuses};
    let device = awd::device::cpu();
    let mut clas = Classifiers::load(&[export_dir().join("export.pkl")], None, &device).unwrap();
    let texts: Vec<String> = lines("probes.jsonl")
        .iter()
        .map(|p| p["text"].as_str().unwrap().into())
        .collect();
    let anew = clas.predict(&texts, 64).unwrap();
    keep_laid_out_weights(true);
    let before = reuses();
    let first = clas.predict(&texts, 64).unwrap();
    let second = clas.predict(&texts, 64).unwrap();
    let reused = reuses() - before;
    keep_laid_out_weights(false);
    assert!(reused > 0, "no layout was reused");
    assert_eq!(first, anew);
    assert_eq!(second, anew);
}
