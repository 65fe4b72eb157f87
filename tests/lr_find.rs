//! The learning-rate finder: fastai's suggestions on curves fastai recorded, and `awd lr-find`
//! on a real model (weights and optimizer put back, a suggestion and a plot).

mod common;

use std::process::Command;

use awd::data::Dataset;
use awd::device;
use awd::params::named_values;
use awd::train::lr_find::{Curve, Suggestion, Sweep};
use awd::train::{Preset, RunOptions, Trainer};
use common::{ok, s};

/// `tests/vectors/lr_find.json`: curves from fastai 2.8.12's `lr_find` (two real sweeps, six
/// synthetic curves smoothed as fastai smooths), each with what fastai suggested
/// (`tests/vectors/make_lr_find.py`).
fn curves() -> Vec<serde_json::Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/lr_find.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["curves"].as_array().unwrap().clone()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Every method on every recorded curve gives fastai's rate (to f32's rounding, as fastai
/// computes in f32) and the point fastai marks; where fastai had none, neither does awd.
#[test]
fn suggestions_match_fastais_on_recorded_curves() {
    let methods = [
        ("valley", Suggestion::Valley),
        ("slide", Suggestion::Slide),
        ("minimum", Suggestion::Minimum),
        ("steep", Suggestion::Steep),
    ];
    let mut compared = 0;
    for c in curves() {
        let curve = Curve {
            lrs: floats(&c["lrs"]),
            losses: floats(&c["losses"]),
            iterations: c["num_it"].as_u64().unwrap() as usize,
        };
        for (name, method) in methods {
            let want = &c["suggestions"][name];
            let got = curve.suggest(method);
            let label = format!("{} / {name}", c["name"]);
            match (want.is_null(), got) {
                (true, None) => {}
                (false, Some(got)) => {
                    let lr = want["lr"].as_f64().unwrap();
                    let point = floats(&want["point"]);
                    assert!(
                        (got.lr - lr).abs() <= 1e-6 * lr,
                        "{label}: {} vs fastai {lr}",
                        got.lr
                    );
                    assert!(
                        (got.point.0 - point[0]).abs() <= 1e-6 * point[0],
                        "{label}: point x"
                    );
                    assert!(
                        (got.point.1 - point[1]).abs() <= 1e-5 * point[1].abs().max(1.0),
                        "{label}: point y {} vs {}",
                        got.point.1,
                        point[1]
                    );
                    compared += 1;
                }
                (fastai_none, got) => panic!("{label}: fastai none = {fastai_none}, awd {got:?}"),
            }
        }
    }
    assert!(compared >= 28, "only {compared} suggestions compared");
}

/// Model initialization draws from the device's global RNG, seeded per run: the tests that
/// build models in this process take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A sweep on a real (tiny) language model leaves its weights as they were, and records a falling
/// then rising loss over growing rates.
#[test]
fn a_sweep_puts_the_model_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Preset::Tiny.config();
    let data = Dataset::grammar(20_000, cfg.specials, 0).unwrap();
    let opts = RunOptions::quiet(tmp.path().join("run"), device::cpu_autodiff());
    let mut learner = Trainer::new(cfg, data, opts.prepare(false).unwrap(), None).unwrap();
    let before = named_values(&learner.published());
    let curve = learner
        .lr_find(&Sweep {
            iterations: 60,
            ..Sweep::default()
        })
        .unwrap();
    assert!(curve.lrs.len() >= 20, "{} points", curve.lrs.len());
    assert!(curve.lrs.windows(2).all(|w| w[1] > w[0]), "rates grow");
    assert_eq!(curve.lrs[0], 1e-7);
    let least = curve.losses.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        least < curve.losses[0] - 0.1,
        "the loss fell: {:?}",
        curve.losses
    );
    assert_eq!(
        named_values(&learner.published()),
        before,
        "weights put back"
    );
    let valley = curve.suggest(Suggestion::Valley).unwrap();
    assert!(valley.lr > 1e-5 && valley.lr < 1.0, "valley {}", valley.lr);
}

/// After a sweep the optimizer is as it was too: without dropout (so that the masks' RNG, which
/// the sweep advances, does not matter) and at a fixed window length, two steps after a sweep
/// give the weights two steps give without one (an optimizer left with the sweep's Adam moments
/// would not).
#[test]
fn after_a_sweep_training_continues_as_without_one() {
    use awd::train::Job;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = Preset::Tiny.config();
    let m = &mut cfg.model;
    (m.output_p, m.hidden_p, m.input_p, m.embed_p, m.weight_p) = (0.0, 0.0, 0.0, 0.0, 0.0);
    cfg.variable_bptt = false;
    let run = |sweep: bool, dir: &str| {
        let data = Dataset::grammar(20_000, cfg.specials, 0).unwrap();
        let opts = RunOptions::quiet(tmp.path().join(dir), device::cpu_autodiff());
        let mut learner =
            Trainer::new(cfg.clone(), data, opts.prepare(false).unwrap(), None).unwrap();
        if sweep {
            let sweep = Sweep {
                iterations: 30,
                ..Sweep::default()
            };
            assert!(learner.lr_find(&sweep).unwrap().lrs.len() > 5);
        }
        for pos in [0, cfg.bptt] {
            let batch = learner.job.batch(0, pos).unwrap();
            learner.step_once(batch.data, 5e-3).unwrap();
        }
        named_values(&learner.published())
    };
    assert_eq!(run(true, "swept"), run(false, "plain"));
}

/// `awd lr-find` for both jobs: a suggestion each, and a PNG.
#[test]
fn the_cli_suggests_a_rate_and_plots_the_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let awd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_awd"))
            .args(args)
            .output()
            .unwrap()
    };
    let png = tmp.path().join("lm.png");
    let out = ok(&awd(&[
        "lr-find",
        "lm",
        "--grammar-tokens",
        "20000",
        "--num-it",
        "40",
        "--quiet",
        "--suggest",
        "valley,minimum,steep,slide",
        "--plot",
        s(&png),
    ]));
    for name in ["valley", "minimum", "steep", "slide"] {
        assert!(out.contains(&format!("{name}: ")), "{out}");
    }
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    let data = common::reviews(tmp.path(), 120);
    let png = tmp.path().join("clas.png");
    let out = ok(&awd(&[
        "lr-find",
        "classify",
        "--data",
        s(&data),
        "--num-it",
        "20",
        "--quiet",
        "--emb-size",
        "16",
        "--hidden-size",
        "24",
        "--n-layers",
        "1",
        "--batch-size",
        "16",
        "--plot",
        s(&png),
    ]));
    assert!(out.contains("valley: "), "{out}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}
