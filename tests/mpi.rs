//! Data-parallel training on MPI (`--features mpi`, run under `mpirun`; as root, OpenMPI needs
//! `OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`, which `.ci/run` sets): two ranks
//! compute the training of one process.
#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{ok, s};

/// A short run on the built-in grammar corpus: a global batch of 8 rows, evaluation rows 4.
fn args(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = ["train", "--quiet", "--max-steps", "8", "--batch-size", "8"]
        .map(String::from)
        .to_vec();
    v.extend(
        [
            "--eval-batch-size",
            "4",
            "--bptt",
            "12",
            "--grammar-tokens",
            "8000",
        ]
        .map(String::from),
    );
    v.extend(
        [
            "--seed",
            "3",
            "--clip",
            "0.25",
            "--log-every",
            "1",
            "--out",
            s(out),
        ]
        .map(String::from),
    );
    v
}

fn mpirun(ranks: usize, args: &[String]) -> Output {
    Command::new("mpirun")
        .args(["-np", &ranks.to_string(), "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_awd"))
        .args(args)
        .output()
        .expect("mpirun (OpenMPI) on the PATH")
}

/// The loss columns of a metrics file, row by row.
fn losses(run: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .skip(2)
                .take(2)
                .map(|c| c.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

/// Two ranks, each with half of the global batch's rows (its share of every activation mask,
/// the same weight and embedding masks), one all-reduce of the gradients per step, the
/// validation split between them: the same losses, step by step, and the same parameters as one
/// process. Tolerance 1e-5 relative to each tensor's scale (only the order of summation differs:
/// the gradient is averaged over the ranks' halves instead of over the whole batch). One writer:
/// the two-rank run has one metrics file, one model, and printed once.
#[test]
fn two_ranks_train_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(&Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(args(&one))
        .output()
        .unwrap());
    let out = mpirun(2, &args(&two));
    let stdout = ok(&out);
    assert_eq!(stdout.matches("done:").count(), 1, "{stdout}");

    assert_trained_alike(&one, &two);
}

/// The runs in `one` and `two` logged the same losses, row by row, and saved the same
/// parameters, each to 1e-5 of its scale.
fn assert_trained_alike(one: &Path, two: &Path) {
    let (a, b) = (losses(one), losses(two));
    assert_eq!(a.len(), b.len());
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        for (u, v) in x.iter().zip(y) {
            assert!(
                (u.is_nan() && v.is_nan()) || (u - v).abs() <= 1e-5 * u.abs().max(1.0),
                "row {step}: {x:?} vs {y:?}"
            );
        }
    }
    let read = |p: &Path| awd::checkpoint::safetensors::read(&p.join("model.safetensors")).unwrap();
    let (p1, p2) = (read(one), read(two));
    assert_eq!(p1.keys().collect::<Vec<_>>(), p2.keys().collect::<Vec<_>>());
    for (name, t) in &p1 {
        common::assert_close(name, &p2[name], t, 1e-5);
    }
}

/// A global batch that does not divide among the ranks is refused, naming both numbers.
#[test]
fn rows_must_divide_among_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(&tmp.path().join("odd"));
    let at = a.iter().position(|x| x == "--batch-size").unwrap();
    a[at + 1] = "7".into();
    let out = mpirun(2, &a);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--batch-size 7 does not divide evenly among 2 ranks"),
        "{stderr}"
    );
}

/// Ctrl-C reaches the ranks at slightly different moments; they agree to stop at the same step,
/// the checkpoint holds every rank's rows (the hidden state of the whole global batch), and a
/// resumed two-rank run ends bit-identical to an uninterrupted one.
#[test]
fn an_interrupted_two_rank_run_resumes_to_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let long = |out: &Path| {
        let mut a = args(out);
        let at = a.iter().position(|x| x == "--max-steps").unwrap();
        a.splice(at..at + 2, ["--epochs", "3"].map(String::from));
        let at = a.iter().position(|x| x == "--grammar-tokens").unwrap();
        a[at + 1] = "20000".into();
        a
    };
    let whole = tmp.path().join("whole");
    ok(&mpirun(2, &long(&whole)));
    let cut = tmp.path().join("cut");
    let child = Command::new("mpirun")
        .args(["-np", "2", "--oversubscribe"])
        .arg(env!("CARGO_BIN_EXE_awd"))
        .args(long(&cut))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    Command::new("pkill")
        .args(["-INT", "-f", &format!("--out {}", s(&cut))])
        .status()
        .unwrap();
    let stopped = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    if stderr.contains("interrupted") {
        let mut resume = vec!["train", "--resume", "--quiet", "--out", s(&cut)];
        resume.truncate(5);
        ok(&mpirun(
            2,
            &resume.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
        ));
    } else {
        ok(&stopped);
    }
    let bytes = |p: &Path| std::fs::read(p.join("model.safetensors")).unwrap();
    assert!(bytes(&whole) == bytes(&cut), "the resumed model differs");
}

/// 96 documents of 2 to 30 words (and one of 90, so that in its batch the other rank's rows
/// begin chunks later), labelled by which of three keywords they hold.
fn documents(path: &Path) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let words = [
        "the", "a", "film", "plot", "was", "and", "but", "very", "scene",
    ];
    let classes = [("pos", "great"), ("neg", "dull"), ("mixed", "odd")];
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["label", "text"]).unwrap();
    for i in 0..96 {
        let (label, key) = classes[rng.random_range(0..classes.len())];
        let n = if i == 7 { 90 } else { rng.random_range(2..30) };
        let mut text: Vec<&str> = (0..n)
            .map(|_| words[rng.random_range(0..words.len())])
            .collect();
        text.insert(rng.random_range(0..text.len()), key);
        w.write_record([label, &text.join(" ")]).unwrap();
    }
    w.flush().unwrap();
}

/// The classifier on two ranks: each encodes every other document of each batch (its rows of
/// every activation mask of the chunks, the weight and embedding masks whole), the pooled
/// features are gathered so that the head's batch norm sees the whole batch, and the
/// validation batches are shared. The losses step by step and every parameter (and the batch
/// norm's running statistics) as one process, to 1e-5 of each tensor's scale; one writer.
#[test]
fn a_classifier_on_two_ranks_trains_as_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("docs.csv");
    documents(&data);
    let args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = ["classify", "train", "--quiet", "--data", s(&data)]
            .map(String::from)
            .to_vec();
        a.extend(
            [
                "--emb-size",
                "16",
                "--hidden-size",
                "24",
                "--n-layers",
                "2",
                "--bptt",
                "4",
                "--max-len",
                "12",
                "--batch-size",
                "8",
                "--lin-ftrs",
                "6",
                "--drop-mult",
                "1",
                "--stages",
                "1:1e-2:1,2:5e-3:0",
                "--log-every",
                "1",
                "--seed",
                "2",
                "--out",
            ]
            .map(String::from),
        );
        a.push(s(out).to_string());
        a
    };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(&Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(args(&one))
        .output()
        .unwrap());
    let out = mpirun(2, &args(&two));
    let stdout = ok(&out);
    assert_eq!(stdout.matches("accuracy").count(), 1, "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data-parallel: 2 ranks"), "{stderr}");

    assert!(
        losses(&one).len() > 20,
        "{} metrics rows",
        losses(&one).len()
    );
    assert_trained_alike(&one, &two);
}
