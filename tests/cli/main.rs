//! The command line as a user meets it: train, eval, generate, resume, and every bad input.

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use awd::checkpoint::safetensors;
use common::{fails_with, ok, s};

fn awd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(args)
        .env(
            "AWD_CACHE",
            std::env::temp_dir().join("awd-test-cache-nonexistent"),
        )
        .output()
        .unwrap()
}

/// A small, quick run: these defaults, with `extra` flags replacing any of them.
fn small_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let defaults = [
        ("--grammar-tokens", "4000"),
        ("--epochs", "2"),
        ("--batch-size", "8"),
        ("--bptt", "12"),
        ("--log-every", "5"),
    ];
    let mut args: Vec<String> = ["train", "--quiet", "--out", s(out)]
        .map(String::from)
        .to_vec();
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn train_small(out: &Path, extra: &[&str]) -> Output {
    let args = small_args(out, extra);
    awd(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn train_eval_generate_end_to_end_on_the_builtin_grammar() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let stdout = ok(&train_small(&run, &[]));
    assert!(stdout.contains("validation perplexity"), "{stdout}");
    assert!(stdout.contains("best possible"), "{stdout}");
    let model = run.join("model.safetensors");
    assert!(model.is_file() && run.join("metrics.csv").is_file());
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with("step,epoch,train_loss,val_loss,val_ppl,lr,tokens_per_s,elapsed_s"));
    assert!(csv.lines().count() >= 3, "{csv}");

    // A grammar text file to evaluate on, written the way the reader expects it.
    let text = tmp.path().join("text.txt");
    let words = awd::data::Grammar::builtin().sample(3000, 9).join(" ");
    std::fs::write(&text, words.replace(" <eos> ", "\n")).unwrap();
    let out = ok(&awd(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&text),
        "--batch-size",
        "4",
    ]));
    assert!(out.contains("perplexity"), "{out}");
    let cached = ok(&awd(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&text),
        "--cache-window",
        "50",
    ]));
    assert!(cached.contains("perplexity"), "{cached}");

    let text_out = ok(&awd(&[
        "generate",
        "--model",
        s(&model),
        "--prompt",
        "the old",
        "--tokens",
        "12",
        "--seed",
        "1",
    ]));
    assert!(text_out.starts_with("the old "), "{text_out}");
    assert!(text_out.split_whitespace().count() >= 3);
    let again = ok(&awd(&[
        "generate",
        "--model",
        s(&model),
        "--prompt",
        "the old",
        "--tokens",
        "12",
        "--seed",
        "1",
    ]));
    assert_eq!(text_out, again, "the same seed gives the same text");
}

#[test]
fn char_level_training_reports_bits_per_character() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("chars.txt");
    std::fs::write(
        &text,
        "to be or not to be, that is the question.\n".repeat(60),
    )
    .unwrap();
    let run = tmp.path().join("run");
    let out = ok(&awd(&[
        "train",
        "--data",
        s(&text),
        "--level",
        "char",
        "--out",
        s(&run),
        "--quiet",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--bptt",
        "10",
    ]));
    assert!(out.contains("bits/char"), "{out}");
    let model = run.join("model.safetensors");
    let ev = ok(&awd(&["eval", "--model", s(&model), "--data", s(&text)]));
    assert!(ev.contains("bits per character"), "{ev}");
    let text_out = ok(&awd(&[
        "generate",
        "--model",
        s(&model),
        "--prompt",
        "to b",
        "--tokens",
        "5",
    ]));
    assert!(text_out.starts_with("to b"));
}

fn tensors(p: &Path) -> std::collections::BTreeMap<String, Vec<u32>> {
    safetensors::read(p)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.values.iter().map(|x| x.to_bits()).collect()))
        .collect()
}

/// The names of the tensors that differ between two model files (empty: bit-identical).
fn differing(a: &Path, b: &Path) -> Vec<String> {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    ta.into_iter()
        .filter(|(k, v)| tb[k] != *v)
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn interrupted_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let extra = ["--grammar-tokens", "20000", "--epochs", "3"];
    ok(&train_small(&whole, &extra));

    // Ctrl-C at two moments (as soon as the run has opened its metrics, in its first epoch; and
    // once its first checkpoint is written), then --resume. Each stop must land mid-run.
    for (i, marker) in ["metrics.csv", "train-state.safetensors"]
        .into_iter()
        .enumerate()
    {
        let cut = tmp.path().join(format!("cut{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_awd"))
            .args(small_args(&cut, &extra))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        while !cut.join(marker).exists() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the run ended before {marker}"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let interrupted = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&interrupted.stderr);
        assert_eq!(
            interrupted.status.code(),
            Some(130),
            "not stopped mid-run: {stderr}"
        );
        assert!(stderr.contains("--resume"), "{stderr}");
        ok(&awd(&["train", "--resume", "--out", s(&cut), "--quiet"]));
        let diff = differing(
            &whole.join("model.safetensors"),
            &cut.join("model.safetensors"),
        );
        assert!(
            diff.is_empty(),
            "after a stop at {marker}, these differ: {diff:?}"
        );
    }
}

#[test]
fn same_seed_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    ok(&train_small(&a, &[]));
    ok(&train_small(&b, &[]));
    let diff = differing(&a.join("model.safetensors"), &b.join("model.safetensors"));
    assert!(diff.is_empty(), "{diff:?}");
    let bytes = |p: &Path| std::fs::read(p.join("model.safetensors")).unwrap();
    assert!(
        bytes(&a) == bytes(&b),
        "the model files are not byte for byte the same"
    );
}

mod failures;
