use super::*;

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
