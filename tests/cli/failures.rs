use super::*;

#[test]
fn bad_inputs_fail_cleanly_and_overwrite_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = s(&out);
    fails_with(
        &awd(&["train", "--data", "/nonexistent/corpus.txt", "--out", o]),
        "/nonexistent/corpus.txt",
    );
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("valid.txt"), "a b\n").unwrap();
    fails_with(&awd(&["train", "--data", s(&dir), "--out", o]), "train.txt");
    let bin = tmp.path().join("blob.txt");
    std::fs::write(&bin, [0u8, 159, 146, 150, 0, 1, 2, 3, 10, 0]).unwrap();
    fails_with(&awd(&["train", "--data", s(&bin), "--out", o]), "binary");
    let latin1 = tmp.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait\n").unwrap();
    fails_with(&awd(&["train", "--data", s(&latin1), "--out", o]), "UTF-8");
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "\n\n  \n").unwrap();
    fails_with(&awd(&["train", "--data", s(&empty), "--out", o]), "no text");
    fails_with(&awd(&["train", "--out", o, "--bptt", "0"]), "--bptt");
    fails_with(
        &awd(&["train", "--out", o, "--weight-p", "1.5"]),
        "weight_p",
    );
    fails_with(&awd(&["train", "--out", o, "--lr=-1"]), "--lr");
    fails_with(
        &awd(&["train", "--out", o, "--asgd", "true", "--optimizer", "adam"]),
        "sgd",
    );
    let clap = awd(&["train", "--no-such-flag"]);
    assert!(!clap.status.success());

    // A trained model, then inputs it cannot take.
    let run = tmp.path().join("run");
    ok(&train_small(&run, &[]));
    let model = run.join("model.safetensors");
    let before = std::fs::read(&model).unwrap();
    fails_with(&train_small(&run, &[]), "--resume");
    assert_eq!(
        std::fs::read(&model).unwrap(),
        before,
        "the earlier run is untouched"
    );
    fails_with(
        &awd(&["generate", "--model", s(&model), "--prompt", "the zebra"]),
        "zebra",
    );
    let shakespeare = tmp.path().join("verse.txt");
    std::fs::write(
        &shakespeare,
        "Shall I compare thee to a summer's day?\n".repeat(20),
    )
    .unwrap();
    fails_with(
        &awd(&["eval", "--model", s(&model), "--data", s(&shakespeare)]),
        "vocabulary does not fit",
    );
    fails_with(
        &awd(&[
            "eval",
            "--model",
            "/nonexistent/model.safetensors",
            "--data",
            s(&shakespeare),
        ]),
        "/nonexistent/model.safetensors",
    );
    fails_with(
        &awd(&["generate", "--model", s(&model), "--temperature", "0"]),
        "--temperature",
    );
    // The run directory `awd train` prints stands for its model; a fastai .pth says what it is.
    ok(&awd(&["generate", "--model", s(&run), "--tokens", "3"]));
    let pth = tmp.path().join("as_fastai.pth");
    ok(&awd(&["convert", s(&model), s(&pth)]));
    fails_with(
        &awd(&["eval", "--model", s(&pth), "--data", s(&shakespeare)]),
        "awd convert",
    );
}

/// The example: `--lr 1e9 --max-steps 50` used to run to the end, exit 0 and save a
/// model of infinite perplexity.
#[test]
fn a_learning_rate_far_too_large_is_an_error_not_a_result() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = train_small(&run, &["--lr", "1e9", "--max-steps", "50"]);
    fails_with(&out, "lower learning rate");
    assert!(
        !run.join("model.safetensors").exists(),
        "no model of a diverged run"
    );
}

#[test]
fn a_diverging_run_stops_naming_the_step_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let out = train_small(
        &run,
        &[
            "--lr",
            "1e38",
            "--clip",
            "0",
            "--optimizer",
            "sgd",
            "--beta1",
            "0",
        ],
    );
    fails_with(&out, "step");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checkpoint"), "{stderr}");
}

/// `--device wgpu` (or `cuda`) end to end (Mesa's software Vulkan in CI): the tiny preset trains on the
/// GPU kernels, and the model it saves evaluates and generates on the GPU.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn train_eval_generate_on_the_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let flags = [
        "--device",
        common::GPU,
        "--epochs",
        "1",
        "--grammar-tokens",
        "2000",
    ];
    let stdout = ok(&train_small(&run, &flags));
    assert!(stdout.contains("validation perplexity"), "{stdout}");
    let model = run.join("model.safetensors");
    assert!(model.is_file());
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let last = csv.lines().last().unwrap();
    let val_loss: f64 = last.split(',').nth(3).unwrap().parse().unwrap();
    assert!(val_loss.is_finite() && val_loss > 0.0, "{csv}");

    let text = tmp.path().join("text.txt");
    let words = awd::data::Grammar::builtin().sample(500, 9).join(" ");
    std::fs::write(&text, words.replace(" <eos> ", "\n")).unwrap();
    let m = s(&model);
    let out = ok(&awd(&[
        "eval",
        "--model",
        m,
        "--data",
        s(&text),
        "--device",
        common::GPU,
    ]));
    assert!(out.contains("perplexity"), "{out}");
    let args = [
        "generate", "--model", m, "--prompt", "the old", "--tokens", "8",
    ];
    let text_out = ok(&awd(&[
        &args[..],
        &["--seed", "1", "--device", common::GPU],
    ]
    .concat()));
    assert!(text_out.starts_with("the old "), "{text_out}");
}

/// With no adapter to serve it (the Vulkan and EGL drivers hidden from their loaders),
/// `--device wgpu` is a clear error, no panic trace, naming what it found.
#[cfg(feature = "wgpu")]
#[test]
fn wgpu_without_an_adapter_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(small_args(&tmp.path().join("run"), &["--device", "wgpu"]))
        .env("VK_DRIVER_FILES", "/nonexistent.json")
        .env("VK_ICD_FILENAMES", "/nonexistent.json")
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent.json")
        .output()
        .unwrap();
    fails_with(&out, "no usable GPU adapter");
    fails_with(&out, "adapters found: none");
}
