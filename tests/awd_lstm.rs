//! The AWD-LSTM language model against fastai: two consecutive batches, train mode (replaying
//! fastai's recorded masks) and eval mode. Every size comes from the vector files and meta.json.

mod common;

use std::collections::BTreeMap;

use awd::checkpoint::fastai;
use awd::device::{self, Device};
use awd::dropout::{Masks, set_training};
use awd::kernels::Compute;
use awd::model::{AwdLstmConfig, LanguageModel};
use awd::params::{HostTensor, named_grads};
use burn::tensor::{Int, Tensor, TensorData};
use common::*;

struct Meta {
    n_layers: usize,
    alpha: f64,
    beta: f64,
    config: AwdLstmConfig,
}

fn meta(tensors: &BTreeMap<String, HostTensor>) -> Meta {
    let path = vectors_dir().join("meta.json");
    let text = std::fs::read_to_string(&path).expect("meta.json");
    let m: serde_json::Value = serde_json::from_str(&text).expect("meta.json is JSON");
    let f = |v: &serde_json::Value, k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("meta.json lacks {k}"))
    };
    let d = &m["dropouts"];
    let mut config = fastai::infer_config(tensors).expect("a fastai LM");
    assert_eq!(config.vocab_size as f64, f(&m, "vocab"));
    assert_eq!(config.emb_size as f64, f(&m, "emb_sz"));
    assert_eq!(config.hidden_size as f64, f(&m, "n_hid"));
    assert_eq!(config.n_layers as f64, f(&m, "n_layers"));
    config.output_p = f(d, "output_p");
    config.hidden_p = f(d, "hidden_p");
    config.input_p = f(d, "input_p");
    config.embed_p = f(d, "embed_p");
    config.weight_p = f(d, "weight_p");
    if let Some(pad) = m["pad_token"].as_u64() {
        config.pad_token = pad as usize;
    }
    Meta {
        n_layers: config.n_layers,
        alpha: f(&m, "ar_alpha"),
        beta: f(&m, "tar_beta"),
        config,
    }
}

fn ints(t: &HostTensor, dev: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = t.values.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, t.shape.clone()), dev)
}

fn scalar(t: Tensor<1>) -> HostTensor {
    HostTensor::from_tensor(t)
}

/// The masks of one mode, all batches, in call order.
fn recorded_masks(v: &BTreeMap<String, HostTensor>, mode: &str) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for b in 0.. {
        let masks = under(v, &format!("{mode}.b{b}.mask"));
        if !v.contains_key(&format!("{mode}.b{b}.x")) {
            break;
        }
        // Keys are `{index}.{name}`; the zero-padded index gives the call order.
        out.extend(masks.into_values().map(|m| (m.shape, m.values)));
    }
    out
}

/// One mode of the fastai vectors on `dev`, every value within `tol` of each tensor's scale.
fn check_mode(mode: &str, training: bool, fused: bool, dev: &Device, tol: f32) {
    let v = load("vectors.safetensors");
    let lm = load("fastai_lm.safetensors");
    let meta = meta(&lm);
    let masks = if training {
        Masks::replay(recorded_masks(&v, mode))
    } else {
        // Eval draws no mask: an empty replay source makes any draw an error.
        Masks::replay(Vec::new())
    };
    let model = fastai::from_state_dict(&lm, &meta.config, &masks, dev).expect("loads");
    let mut model: LanguageModel = set_training(model, training);
    model.set_compute(if fused {
        Compute::Fused
    } else {
        Compute::Reference
    });

    let mut batches = 0;
    for b in 0.. {
        let p = format!("{mode}.b{b}");
        if !v.contains_key(&format!("{p}.x")) {
            break;
        }
        batches += 1;
        let (out, loss) = model
            .loss_with_logits(
                ints(get(&v, &format!("{p}.x")), dev),
                ints(get(&v, &format!("{p}.y")), dev),
                meta.alpha,
                meta.beta,
            )
            .expect("forward");
        assert_close(
            &format!("{p}.logits"),
            &HostTensor::from_tensor(out.logits.unwrap()),
            get(&v, &format!("{p}.logits")),
            tol,
        );
        for (name, t) in [
            ("loss", loss.cross_entropy.clone()),
            ("ar", loss.ar.clone()),
            ("tar", loss.tar.clone()),
            ("total", loss.total.clone()),
        ] {
            assert_close(
                &format!("{p}.{name}"),
                &scalar(t),
                get(&v, &format!("{p}.{name}")),
                tol,
            );
        }
        let state = model.encoder().state().expect("state kept").to_vec();
        assert_eq!(state.len(), meta.n_layers);
        for (l, s) in state.into_iter().enumerate() {
            assert_close(
                &format!("{p}.hidden.{l}.h"),
                &HostTensor::from_tensor(s.h),
                get(&v, &format!("{p}.hidden.{l}.h")),
                tol,
            );
            assert_close(
                &format!("{p}.hidden.{l}.c"),
                &HostTensor::from_tensor(s.c),
                get(&v, &format!("{p}.hidden.{l}.c")),
                tol,
            );
        }

        let grads = loss.total.backward();
        assert_grads(
            &p,
            named_grads(&model, &grads),
            &under(&v, &format!("{p}.grad")),
            tol,
        );
    }
    assert!(batches >= 2, "the vectors hold consecutive batches");
}

#[test]
fn train_mode_matches_fastai_with_replayed_masks() {
    check_mode("train", true, true, &device::cpu_autodiff(), 1e-5);
}

#[test]
fn eval_mode_matches_fastai() {
    check_mode("eval", false, true, &device::cpu_autodiff(), 1e-5);
}

#[test]
fn reference_lstm_ops_match_fastai_too() {
    check_mode("train", true, false, &device::cpu_autodiff(), 1e-5);
    check_mode("eval", false, false, &device::cpu_autodiff(), 1e-5);
}

/// The LM on the GPU (Mesa's software Vulkan in CI): the fused GPU kernels and the reference
/// ops both match fastai's logits, losses, states and gradients to 1e-4 of each tensor's scale
/// (f32; the GPU sums in other orders than PyTorch's CPU kernels).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn on_the_gpu_its_kernels_and_the_reference_ops_match_fastai() {
    let dev = common::gpu().autodiff();
    for fused in [true, false] {
        check_mode("train", true, fused, &dev, 1e-4);
        check_mode("eval", false, fused, &dev, 1e-4);
    }
}

#[test]
fn the_carried_state_follows_the_batch_size_as_fastai_change_hidden_does() {
    let dev = device::cpu();
    let config = AwdLstmConfig {
        vocab_size: 10,
        emb_size: 4,
        hidden_size: 6,
        n_layers: 2,
        ..AwdLstmConfig::default()
    };
    let mut m = LanguageModel::new(&config, &Masks::seeded(0), &dev).unwrap();
    let words = |b: usize| -> Tensor<2, Int> {
        Tensor::from_data(
            TensorData::new(
                (0..b as i64 * 3).map(|i| i % 10).collect::<Vec<_>>(),
                [b, 3],
            ),
            &dev,
        )
    };
    m.forward(words(4)).unwrap();
    let kept: Vec<HostTensor> = m
        .encoder()
        .state()
        .unwrap()
        .iter()
        .map(|s| HostTensor::from_tensor(s.h.clone()))
        .collect();
    // A smaller batch starts from the first rows of the carried state.
    let mut smaller = m.clone();
    smaller.forward(words(2)).unwrap();
    let mut fresh = m.clone();
    let cut = kept
        .iter()
        .map(|h| {
            let per_row = h.shape[2];
            HostTensor::new(vec![1, 2, per_row], h.values[..2 * per_row].to_vec())
        })
        .collect::<Vec<_>>();
    let cs: Vec<HostTensor> = m
        .encoder()
        .state()
        .unwrap()
        .iter()
        .map(|s| HostTensor::from_tensor(s.c.clone()))
        .collect();
    fresh.parts.encoder.hidden = Some(
        cut.iter()
            .zip(&cs)
            .map(|(h, c)| awd::nn::LstmState {
                h: h.to_tensor(&dev).unwrap(),
                c: HostTensor::new(h.shape.clone(), c.values[..h.values.len()].to_vec())
                    .to_tensor(&dev)
                    .unwrap(),
            })
            .collect(),
    );
    fresh.forward(words(2)).unwrap();
    for (a, b) in smaller
        .encoder()
        .state()
        .unwrap()
        .iter()
        .zip(fresh.encoder().state().unwrap())
    {
        assert_eq!(
            HostTensor::from_tensor(a.h.clone()),
            HostTensor::from_tensor(b.h.clone())
        );
    }
    // A larger batch keeps the old rows and starts the new ones from zeros.
    let mut larger = m.clone();
    larger.forward(words(6)).unwrap();
    assert_eq!(larger.encoder().state().unwrap()[0].h.dims(), [1, 6, 6]);
    m.reset();
    assert!(m.encoder().state().is_none());
}
