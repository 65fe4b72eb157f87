//! `awd classify` as a user meets it: ULMFiT's last step from the shared fastai model, predictions
//! in input order, evaluation, the forward + backward ensemble, and every bad input named.

#[path = "../common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fails_with, ok, reviews, s};

fn awd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(args)
        .output()
        .unwrap()
}

/// The validation accuracy a `classify train` run printed.
fn accuracy(stdout: &str) -> f64 {
    let at = stdout.find("accuracy ").expect("an accuracy") + "accuracy ".len();
    stdout[at..].split('%').next().unwrap().parse().unwrap()
}

/// 600 documents of filler words, each with the keywords of one of `choices` (label, keywords)
/// inserted at random, the choice at random; a fifth held out.
fn keyword_csv(path: &Path, seed: u64, choices: &[(&str, &[&str])]) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let filler = [
        "the", "a", "film", "plot", "actor", "scene", "was", "and", "but", "very",
    ];
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["label", "text", "is_valid"]).unwrap();
    for i in 0..600 {
        let (label, keys) = choices[rng.random_range(0..choices.len())];
        let n = rng.random_range(5..30);
        let mut text: Vec<&str> = (0..n)
            .map(|_| filler[rng.random_range(0..filler.len())])
            .collect();
        for k in keys {
            text.insert(rng.random_range(0..text.len()), k);
        }
        let valid = if i % 5 == 0 { "True" } else { "False" };
        w.write_record([label, &text.join(" "), valid]).unwrap();
    }
    w.flush().unwrap();
}

/// Documents whose class is told by one keyword among filler words.
fn keyword_docs(dir: &Path) -> PathBuf {
    let path = dir.join("keywords.csv");
    let choices: [(&str, &[&str]); 6] = [
        ("pos", &["wonderful"]),
        ("pos", &["great"]),
        ("pos", &["superb"]),
        ("neg", &["awful"]),
        ("neg", &["terrible"]),
        ("neg", &["dull"]),
    ];
    keyword_csv(&path, 0, &choices);
    path
}

/// `awd classify train` of a small untrained classifier on `data` into `out`: 20 epochs of one
/// unfrozen stage, batches of 16; `extra` flags added.
fn train_untrained(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "classify",
        "train",
        "--data",
        s(data),
        "--out",
        s(out),
        "--quiet",
    ];
    args.extend(["--emb-size", "32", "--hidden-size", "64", "--n-layers", "2"]);
    args.extend(["--batch-size", "16", "--stages", "20:1e-2:0"]);
    args.extend(extra);
    awd(&args)
}

/// The training loop learns: an untrained classifier (its vocabulary from the documents) finds
/// the keyword that tells each document's class.
#[test]
fn an_untrained_classifier_learns_a_keyword_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let data = keyword_docs(tmp.path());
    let out = tmp.path().join("run");
    let stdout = ok(&train_untrained(&data, &out, &[]));
    assert!(accuracy(&stdout) >= 95.0, "{stdout}");
}

/// Multi-label: each document has `x`, `y` or both, told by keywords; sigmoid outputs and binary
/// cross-entropy learn both decisions (fastai's `accuracy_multi`), and predictions list every
/// label above the threshold.
#[test]
fn a_multi_label_classifier_learns_each_label() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("multi.csv");
    let choices: [(&str, &[&str]); 3] = [
        ("x", &["xylophone"]),
        ("y", &["yacht"]),
        ("x;y", &["xylophone", "yacht"]),
    ];
    keyword_csv(&data, 1, &choices);
    let out = tmp.path().join("run");
    let stdout = ok(&train_untrained(&data, &out, &["--multi-label", "true"]));
    assert!(accuracy(&stdout) >= 95.0, "{stdout}");
    let lines = tmp.path().join("lines.jsonl");
    std::fs::write(
        &lines,
        "{\"text\": \"the yacht and the xylophone\"}\n{\"text\": \"a yacht\"}\n",
    )
    .unwrap();
    let got = ok(&awd(&[
        "classify",
        "predict",
        "--json",
        "--model",
        s(&out),
        s(&lines),
    ]));
    let rows: Vec<serde_json::Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows[0]["labels"], serde_json::json!(["x", "y"]), "{got}");
    assert_eq!(rows[1]["labels"], serde_json::json!(["y"]), "{got}");
    let eval = ok(&awd(&[
        "classify",
        "eval",
        "--model",
        s(&out),
        "--data",
        s(&data),
    ]));
    assert!(
        eval.contains("precision") && !eval.contains("confusion"),
        "{eval}"
    );
}

/// ULMFiT end to end, scaled down: the shared fastai model fine-tuned on movie reviews (a few
/// steps), then a classifier on its encoder (the run directory's `encoder.pth` and `itos.pkl`)
/// with gradual unfreezing. Its predictions come back in input order (the same text twice, the
/// same answer) with probabilities that sum to one, `eval` reports per-class scores, and a
/// backward classifier makes an ensemble with it.
#[test]
fn ulmfit_end_to_end_from_a_fastai_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = reviews(tmp.path(), 3000);
    let u = common::ulmfit_dir();
    let (weights, itos) = (u.join("lm.pth"), u.join("itos.pkl"));
    let lm = tmp.path().join("lm");
    let mut args = vec!["train", "--preset", "finetune", "--pretrained", s(&weights)];
    args.extend([
        "--pretrained-vocab",
        s(&itos),
        "--data",
        s(&data),
        "--out",
        s(&lm),
    ]);
    args.extend(["--quiet", "--max-steps", "6"]);
    ok(&awd(&args));
    let run = tmp.path().join("clas");
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec!["classify", "train", "--data", s(&data), "--encoder", s(&lm)];
        args.extend(["--out", s(out), "--quiet", "--batch-size", "32"]);
        args.extend(["--stages", "1:2e-2:1,1:1e-2:2,1:5e-3:0"]);
        args.extend(extra);
        awd(&args)
    };
    let out = train(&run, &[]);
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("encoder.pth"), "{stderr}");
    // A validation row for each of the three stages' epochs.
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let validations = metrics
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(3).is_some_and(|v| !v.is_empty()));
    assert_eq!(validations.count(), 3, "{metrics}");
    let acc = accuracy(&stdout);
    assert!((0.0..=100.0).contains(&acc), "{stdout}");
    for f in [
        "model.safetensors",
        "classifier.pth",
        "itos.pkl",
        "metrics.csv",
        "curves.png",
    ] {
        assert!(run.join(f).is_file(), "{f} written");
    }

    let png = tmp.path().join("confusion.png");
    let eval = ok(&awd(&[
        "classify",
        "eval",
        "--model",
        s(&run),
        "--data",
        s(&data),
        "--png",
        s(&png),
    ]));
    assert!(
        eval.contains("precision") && eval.contains("confusion"),
        "{eval}"
    );
    assert!(png.is_file());

    let lines = tmp.path().join("lines.txt");
    std::fs::write(
        &lines,
        "a gorgeous, moving film\nthe worst movie of the year\na gorgeous, moving film\n",
    )
    .unwrap();
    let out = ok(&awd(&[
        "classify",
        "predict",
        "--model",
        s(&run),
        s(&lines),
    ]));
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0], rows[2], "input order, each line on its own");
    let json = tmp.path().join("lines.jsonl");
    std::fs::write(&json, "{\"text\": \"a gorgeous,\\nmoving film\"}\n").unwrap();
    let out = ok(&awd(&[
        "classify",
        "predict",
        "--json",
        "--model",
        s(&run),
        s(&json),
    ]));
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let p = first["probabilities"].as_object().unwrap();
    let total: f64 = p.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-4 && p.len() == 2, "{first}");

    let bwd = tmp.path().join("bwd");
    let out = train(&bwd, &["--backwards", "--max-steps", "5"]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("backwards"));
    let both = ok(&awd(&[
        "classify",
        "predict",
        "--model",
        s(&run),
        "--model",
        s(&bwd),
        s(&lines),
    ]));
    assert_eq!(both.lines().count(), 3);
}

mod inputs_and_resume;
