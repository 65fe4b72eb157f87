//! The gradient audit: the real WeightDropout passes, broken variants are flagged.

mod common;

use std::process::Command;

use awd::audit::step::audit_step;
use awd::audit::{Problem, Regularizer, audit};
use awd::dropout::{MaskOwner, Masks, WeightDropout};
use awd::nn::{Linear, LinearConfig};
use awd::train::{OptimConfig, TrainStep};
use awd::{checkpoint::fastai, device};
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Tensor};

/// The training step with the default configuration's Adam.
fn adam() -> TrainStep {
    TrainStep::new(&OptimConfig::default())
}

fn input(dev: &burn::tensor::Device) -> Tensor<2> {
    Tensor::random([5, 6], Distribution::Normal(0.0, 1.0), dev)
}

#[test]
fn the_real_weight_dropout_passes_with_the_raw_weight_reached_through_its_mask() {
    let dev = device::cpu_autodiff();
    let masks = Masks::seeded(3);
    let wd = WeightDropout::new(
        LinearConfig::new(6, 4).init(&dev),
        &["weight"],
        0.5,
        masks.clone(),
    )
    .unwrap();
    let x = input(&dev);
    let (report, _) = audit_step(&mut adam(), wd, &masks, 1e-3, |m| {
        Ok(m.dropped()?.forward(x).powi_scalar(2).sum())
    })
    .unwrap();
    assert!(report.is_clean(), "{report:?}");
    let raw = report.get("weight_raw").unwrap();
    assert!(raw.is_trained());
    assert_eq!(raw.regularizers, [Regularizer::WeightDropout { p: 0.5 }]);
    assert!(
        raw.zero_fraction > 0.0,
        "dropped entries have zero gradient"
    );
}

/// The seed's bug: the forward uses a copy of the raw weight made outside the graph.
#[test]
fn a_weight_dropout_that_detaches_the_raw_weight_is_flagged() {
    let dev = device::cpu_autodiff();
    let masks = Masks::seeded(3);
    let wd = WeightDropout::new(
        LinearConfig::new(6, 4).init(&dev),
        &["weight"],
        0.5,
        masks.clone(),
    )
    .unwrap();
    let x = input(&dev);
    let (report, _) = audit_step(&mut adam(), wd, &masks, 1e-3, |wd| {
        let mut m: Linear = wd.module().clone();
        let raw = m.weight.val();
        let mask = masks.draw_for(
            MaskOwner::Weight(m.weight.id),
            raw.dims(),
            wd.p(),
            &raw.device(),
        )?;
        m.weight = Param::from_tensor((raw.detach() * mask).detach());
        Ok(m.forward(x).powi_scalar(2).sum())
    })
    .unwrap();
    assert!(!report.is_clean());
    let raw = report.get("weight_raw").unwrap();
    assert_eq!(raw.problems, [Problem::NoGradient]);
    assert!(report.get("module.bias").unwrap().problems.is_empty());
}

/// A variant that draws the mask but runs the forward on the undropped raw weight.
#[test]
fn a_mask_that_was_not_applied_is_flagged() {
    let dev = device::cpu_autodiff();
    let masks = Masks::seeded(5);
    let wd = WeightDropout::new(
        LinearConfig::new(6, 4).init(&dev),
        &["weight"],
        0.5,
        masks.clone(),
    )
    .unwrap();
    let x = input(&dev);
    let (report, _) = audit_step(&mut adam(), wd, &masks, 1e-3, |wd| {
        let m = wd.module().clone();
        let raw = m.weight.val();
        let _unused = masks.draw_for(
            MaskOwner::Weight(m.weight.id),
            raw.dims(),
            wd.p(),
            &raw.device(),
        )?;
        Ok(m.forward(x).powi_scalar(2).sum())
    })
    .unwrap();
    let raw = report.get("weight_raw").unwrap();
    assert!(
        matches!(raw.problems.as_slice(), [Problem::MaskMismatch { leaked }] if *leaked > 0),
        "{:?}",
        raw.problems
    );
}

#[derive(Module, Debug)]
struct Twice {
    a: Linear,
    b: Linear,
}

#[test]
fn a_parameter_counted_twice_is_flagged() {
    let dev = device::cpu_autodiff();
    let a = LinearConfig::new(6, 4).init(&dev);
    let twice = Twice { b: a.clone(), a };
    let x = input(&dev);
    let grads = (twice.a.forward(x.clone()) + twice.b.forward(x))
        .sum()
        .backward();
    let grads = GradientsParams::from_grads(grads, &twice);
    let report = audit(&twice, &grads, &[]);
    assert!(
        report
            .params
            .iter()
            .all(|p| p.problems.contains(&Problem::CountedTwice { times: 2 }))
    );
}

fn awd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_awd"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn awd_audit_on_the_tiny_preset_passes_and_marks_the_raw_weights() {
    let out = awd(&["audit", "--preset", "tiny"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in text
        .lines()
        .filter(|l| l.starts_with("0.") || l.starts_with("1."))
    {
        assert!(line.contains(" yes "), "{line}");
        if line.contains("weight_hh_l0_raw") {
            assert!(line.contains("weight dropout"), "{line}");
        }
    }
    let json = awd(&[
        "audit",
        "--preset",
        "awd-lstm-lm",
        "--json",
        "--batch-size",
        "2",
        "--bptt",
        "5",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let params = report["params"].as_array().unwrap();
    let emb = params
        .iter()
        .find(|p| p["path"] == "0.encoder.weight")
        .unwrap();
    assert_eq!(emb["regularizers"][0]["kind"], "embedding_dropout");
    assert!(
        params
            .iter()
            .all(|p| p["grad_norm"].as_f64().unwrap() > 0.0)
    );
}

#[test]
fn awd_audit_exits_non_zero_when_a_parameter_gets_no_useful_gradient() {
    // A checkpoint whose embedding is all zeros: the first layer's input weights get a zero
    // gradient everywhere, which the audit must flag.
    let tmp = tempfile::tempdir().unwrap();
    let mut t = common::load("fastai_lm.safetensors");
    for k in [
        "0.encoder.weight",
        "0.encoder_dp.emb.weight",
        "1.decoder.weight",
    ] {
        t.get_mut(k)
            .unwrap()
            .values
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
    let path = tmp.path().join("zero.safetensors");
    fastai::write_tensors(&path, &t).unwrap();
    let out = awd(&["audit", "--model", path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("0.rnns.0.module.weight_ih_l0: its gradient is zero everywhere"),
        "{text}"
    );
}

#[test]
fn awd_explain_prints_the_path_of_every_layers_raw_weight() {
    let out = awd(&[
        "explain",
        "--preset",
        "awd-lstm-lm",
        "--batch-size",
        "2",
        "--bptt",
        "5",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for l in 0..3 {
        let raw = format!("0.rnns.{l}.weight_hh_l0_raw → weight dropout");
        assert!(text.contains(&raw), "{text}");
    }
    assert!(text.contains("→ loss"));
    let dot = awd(&["explain", "--param", "0.encoder.weight", "--dot"]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(dot.starts_with("digraph gradient {"), "{dot}");
    assert!(
        dot.contains("\"0.encoder.weight\" -> \"decoder"),
        "tied weight reaches the decoder"
    );
    let bad = awd(&["explain", "--param", "0.rnns.7.weight_hh_l0_raw"]);
    assert!(!bad.status.success());
}

/// The routes follow the model: its layer count, its dropouts' probabilities and the
/// implementation that runs (the fused kernel is one node; the reference ops a recurrent matmul).
#[test]
fn explain_reads_the_model_and_the_kernels_that_run() {
    use awd::audit::explain::explain;
    use awd::kernels::Compute;
    use awd::model::{AwdLstmConfig, LanguageModel};
    let config = AwdLstmConfig {
        vocab_size: 10,
        emb_size: 4,
        hidden_size: 6,
        n_layers: 4,
        hidden_p: 0.35,
        ..AwdLstmConfig::default()
    };
    let mut model =
        LanguageModel::new(&config, &Masks::default(), &device::cpu_autodiff()).unwrap();
    let raw = "0.rnns.0.weight_hh_l0_raw";
    let fused = explain(&model, raw).unwrap().to_text();
    assert!(fused.contains("LSTM layer 3"), "{fused}");
    assert!(fused.contains("hidden dropout 2 (p=0.35)"), "{fused}");
    assert!(
        fused.contains("fused kernel") && !fused.contains("recurrent matmul"),
        "{fused}"
    );
    model.set_compute(Compute::Reference);
    let reference = explain(&model, raw).unwrap().to_text();
    assert!(
        reference.contains("LSTM layer 0 recurrent matmul"),
        "{reference}"
    );
    assert!(!reference.contains("fused"), "{reference}");
    let unknown = explain(&model, "0.rnns.4.weight_hh_l0_raw")
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("0.rnns.3.weight_hh_l0_raw"),
        "lists what exists: {unknown}"
    );
}
