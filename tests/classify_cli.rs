//! `awd classify` as a user meets it: ULMFiT's last step from the shared fastai model, predictions
//! in input order, evaluation, the forward + backward ensemble, and every bad input named.

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

/// Bad input is named, exits with 2, and leaves no half-written run.
#[test]
fn bad_classifier_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let train = |data: &Path, extra: &[&str]| {
        let out = tmp.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let mut args = vec![
            "classify",
            "train",
            "--data",
            s(data),
            "--out",
            s(&out),
            "--quiet",
        ];
        args.extend(extra);
        awd(&args)
    };
    let csv = write(
        "a.csv",
        "label,text\npos,good\nneg,bad\npos,fine\nneg,awful\n",
    );
    fails_with(
        &train(&csv, &["--text-col", "review"]),
        "no column `review`",
    );
    let one = write(
        "one.csv",
        "label,text,is_valid\npos,good,False\npos,fine,False\npos,great,True\n",
    );
    fails_with(&train(&one, &[]), "two or more");
    let unseen = write(
        "u.csv",
        "label,text,is_valid\npos,good,False\nneg,bad,False\nmeh,so so,True\n",
    );
    fails_with(
        &train(&unseen, &[]),
        "`meh`, which no training document has",
    );
    let empty = write("e.csv", "label,text\npos,good\nneg,\"  \"\n");
    fails_with(&train(&empty, &[]), "row 3 has an empty `text`");
    let u = common::ulmfit_dir();
    let wrong = write("wrong.pkl", "");
    fails_with(
        &train(
            &csv,
            &["--encoder", s(&u.join("lm.pth")), "--vocab", s(&wrong)],
        ),
        "wrong.pkl",
    );
    fails_with(&train(&csv, &["--stages", "2"]), "--stages");
    fails_with(
        &awd(&[
            "classify",
            "predict",
            "--model",
            s(&tmp.path().join("none")),
        ]),
        "none",
    );
}

/// fastai's own classifier `.pth` (the parity vectors' model) predicts through the command line
/// with its vocabulary pickle and class names; sizes come from its tensors.
#[test]
fn a_fastai_classifier_pth_predicts() {
    use awd::data::{Vocab, fastai_vocab::write_pickle};
    let tmp = tempfile::tempdir().unwrap();
    let pth = common::clas_dir().join("fastai_clas.pth");
    let state = awd::checkpoint::fastai::read_tensors(&pth).unwrap();
    let rows = state["0.module.encoder.weight"].shape[0];
    let mut itos: Vec<String> = ["xxunk", "xxpad", "xxbos"].map(String::from).to_vec();
    itos.extend((itos.len()..rows).map(|i| format!("w{i}")));
    let vocab = tmp.path().join("itos.pkl");
    write_pickle(&vocab, &Vocab::from_itos(itos)).unwrap();
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::clas_dir().join("meta.json")).unwrap(),
    )
    .unwrap();
    let n_classes = meta["n_class"].as_u64().unwrap() as usize;
    let classes: Vec<String> = (0..n_classes).map(|c| format!("c{c}")).collect();
    let lines = tmp.path().join("docs.txt");
    std::fs::write(&lines, "w3 w4 w5\nw7\n").unwrap();
    let out = ok(&awd(&[
        "classify",
        "predict",
        "--model",
        s(&pth),
        "--vocab",
        s(&vocab),
        "--classes",
        &classes.join(","),
        s(&lines),
    ]));
    assert_eq!(out.lines().count(), 2);
    assert!(
        out.lines()
            .all(|l| classes.iter().any(|c| l.starts_with(c.as_str()))),
        "{out}"
    );
    fails_with(
        &awd(&[
            "classify",
            "predict",
            "--model",
            s(&pth),
            "--vocab",
            s(&vocab),
            "--classes",
            "a",
            s(&lines),
        ]),
        "classes were named",
    );
    fails_with(
        &awd(&["classify", "predict", "--model", s(&pth), s(&lines)]),
        "--vocab",
    );
}

/// The classifier on the GPU (`--device wgpu`, Mesa's software Vulkan in CI): the encoder's
/// fused GPU LSTM and the head's ops learn the keyword rule as on the CPU.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn an_untrained_classifier_learns_on_the_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let data = keyword_docs(tmp.path());
    let out = tmp.path().join("run");
    let stdout = ok(&train_untrained(&data, &out, &["--device", common::GPU]));
    assert!(accuracy(&stdout) >= 95.0, "{stdout}");
}

/// A classifier run killed (SIGKILL) after its first checkpoint and resumed ends with the same
/// model file, byte for byte, as an uninterrupted run: two stages (the first training the head
/// alone), so the resumed run re-enters a stage's layer groups.
#[test]
fn a_killed_classifier_run_resumes_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = keyword_docs(tmp.path());
    let extra = ["--stages", "1:1e-2:1,5:5e-3:0", "--max-len", "40"];
    let whole = tmp.path().join("whole");
    let mut args: Vec<String> = ["classify", "train", "--data", s(&data), "--quiet"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.extend(
        [
            "--emb-size",
            "32",
            "--hidden-size",
            "64",
            "--n-layers",
            "2",
            "--batch-size",
            "16",
        ]
        .map(String::from),
    );
    args.extend(extra.map(String::from));
    let with_out = |out: &Path| {
        let mut a = args.clone();
        a.extend(["--out".to_string(), s(out).to_string()]);
        a
    };
    ok(&Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(with_out(&whole))
        .output()
        .unwrap());

    let cut = tmp.path().join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(with_out(&cut))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = cut.join("train-state.safetensors");
    while !state.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before its first checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before it was killed"
    );
    child.kill().unwrap(); // SIGKILL: no handler runs
    child.wait().unwrap();
    let resumed = awd(&[
        "classify",
        "train",
        "--resume",
        "--out",
        s(&cut),
        "--data",
        s(&data),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&resumed.stderr).to_string();
    ok(&resumed);
    assert!(stderr.contains("resuming"), "{stderr}");
    let bytes = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        bytes(&whole) == bytes(&cut),
        "the resumed classifier differs"
    );
}

/// `--resume` where no checkpoint was written says so, and how to start over.
#[test]
fn resuming_without_a_checkpoint_says_how_to_start_over() {
    let tmp = tempfile::tempdir().unwrap();
    let data = keyword_docs(tmp.path());
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = awd(&[
        "classify",
        "train",
        "--resume",
        "--out",
        s(&empty),
        "--data",
        s(&data),
    ]);
    fails_with(&out, "holds no checkpoint to resume");
    fails_with(&out, "--force");
    let out = awd(&["train", "--resume", "--out", s(&empty)]);
    fails_with(&out, "holds no checkpoint to resume");

    // A language model's run is not a classifier's.
    let lm = tmp.path().join("lm");
    ok(&awd(&[
        "train",
        "--quiet",
        "--out",
        s(&lm),
        "--max-steps",
        "3",
    ]));
    let out = awd(&[
        "classify",
        "train",
        "--resume",
        "--out",
        s(&lm),
        "--data",
        s(&data),
    ]);
    fails_with(&out, "awd train --resume");
}
