use awd::device::{self, Device};
use awd::kernels::Precision;
use awd::kernels::decoder_ce::{CHUNK_ROWS, decoder_cross_entropy};
use awd::model::loss::cross_entropy;
use awd::nn::linear::linear;
use awd::params::HostTensor;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use proptest::prelude::*;

fn rel_close(a: &HostTensor, b: &HostTensor, tol: f32) -> bool {
    let scale = b.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.values
        .iter()
        .zip(&b.values)
        .all(|(x, y)| (x - y).abs() <= tol * (y.abs() + scale) + 1e-8)
}

fn targets(n: usize, v: usize, seed: u64, dev: &Device) -> Tensor<1, Int> {
    let t: Vec<i64> = (0..n)
        .map(|i| ((i as u64 * 7919 + seed) % v as u64) as i64)
        .collect();
    Tensor::from_data(TensorData::new(t, [n]), dev)
}

fn reference(x: Tensor<2>, w: Tensor<2>, b: Option<Tensor<1>>, t: Tensor<1, Int>) -> Tensor<1> {
    let logits = linear(x.unsqueeze_dim::<3>(0), w, b);
    cross_entropy(logits, t.unsqueeze_dim::<2>(0))
}

/// The fused decoder + loss against the reference ops on `dev` (tracked): the loss and the
/// gradients of `x`, the weight and the bias, within `tol` of each tensor's scale; without
/// autodiff, the same loss.
fn check_decoder(
    (dev, tol): (&Device, f32),
    (n, e, v): (usize, usize, usize),
    bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    dev.seed(seed);
    let x: Tensor<2> = Tensor::random([n, e], Distribution::Normal(0.0, 2.0), dev).require_grad();
    let w: Tensor<2> = Tensor::random([v, e], Distribution::Normal(0.0, 1.0), dev).require_grad();
    let b: Option<Tensor<1>> =
        bias.then(|| Tensor::random([v], Distribution::Normal(0.0, 1.0), dev).require_grad());
    let t = targets(n, v, seed, dev);

    let fused = decoder_cross_entropy(x.clone(), w.clone(), b.clone(), t.clone(), Precision::F32);
    let g1 = fused.clone().backward();
    let want = reference(x.clone(), w.clone(), b.clone(), t.clone());
    let g2 = want.clone().backward();
    let host = |t: Tensor<1>| HostTensor::from_tensor(t);
    prop_assert!(rel_close(&host(fused), &host(want.clone()), tol));
    let grad = |t: &Tensor<2>, g| HostTensor::from_tensor(t.grad(g).unwrap());
    prop_assert!(rel_close(&grad(&x, &g1), &grad(&x, &g2), tol));
    prop_assert!(rel_close(&grad(&w, &g1), &grad(&w, &g2), tol));
    if let Some(b) = &b {
        let gb = |g| host(b.grad(g).unwrap());
        prop_assert!(rel_close(&gb(&g1), &gb(&g2), tol));
    }
    let plain = |t: Tensor<2>| t.inner();
    let eval = decoder_cross_entropy(
        plain(x),
        plain(w),
        b.map(|b| b.inner()),
        Tensor::from_data(t.into_data(), &dev.clone().inner()),
        Precision::F32,
    );
    prop_assert!(rel_close(&host(eval), &host(want), tol));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn fused_decoder_cross_entropy_matches_the_reference(
        n in 1usize..40, e in 1usize..9, v in 2usize..300, bias: bool, seed in 0u64..1000,
    ) {
        check_decoder((&device::cpu_autodiff(), 1e-5), (n, e, v), bias, seed)?;
    }
}

/// The GPU's softmax + cross-entropy kernel (one cube of 256 units per row) against the
/// reference ops on the same device: vocabularies below, at and past one cube's width.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn gpu_decoder_cross_entropy_matches_the_reference() {
    let gpu = crate::common::gpu().autodiff();
    for (k, (n, e, v)) in [
        (1, 3, 2),
        (9, 5, 255),
        (17, 4, 256),
        (33, 8, 257),
        (40, 6, 1000),
    ]
    .into_iter()
    .enumerate()
    {
        check_decoder((&gpu, 1e-4), (n, e, v), k % 2 == 0, k as u64).unwrap();
    }
    // Out-of-range ids are clamped into the vocabulary, as on the CPU: -3 reads as 0, not as
    // V - 1. Compared within a tolerance, not bit for bit: Burn's autotune may run the logits'
    // matmul with another kernel (another summation order) from one call to the next.
    let plain = gpu.inner();
    let x: Tensor<2> = Tensor::random([3, 4], Distribution::Normal(0.0, 1.0), &plain);
    let w: Tensor<2> = Tensor::random([300, 4], Distribution::Normal(0.0, 1.0), &plain);
    let loss = |ids: [i64; 3]| {
        let t = Tensor::from_data(TensorData::new(ids.to_vec(), [3]), &plain);
        let l = decoder_cross_entropy(x.clone(), w.clone(), None, t, Precision::F32);
        l.into_scalar::<f32>()
    };
    let (clamped, zero, wrapped) = (loss([-3, 305, 7]), loss([0, 299, 7]), loss([299, 299, 7]));
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs();
    assert!(close(clamped, zero), "{clamped} against {zero}");
    assert!(!close(clamped, wrapped), "-3 read as V - 1: {clamped}");
}

#[test]
fn without_autodiff_the_loss_is_computed_in_row_chunks_with_the_same_value() {
    let dev = device::cpu();
    for n in [
        1,
        CHUNK_ROWS - 1,
        CHUNK_ROWS,
        CHUNK_ROWS + 1,
        2 * CHUNK_ROWS + 100,
    ] {
        let x: Tensor<2> = Tensor::random([n, 5], Distribution::Normal(0.0, 2.0), &dev);
        let w: Tensor<2> = Tensor::random([37, 5], Distribution::Normal(0.0, 1.0), &dev);
        let b: Tensor<1> = Tensor::random([37], Distribution::Normal(0.0, 1.0), &dev);
        let t = targets(n, 37, 3, &dev);
        let fused = decoder_cross_entropy(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            t.clone(),
            Precision::F32,
        );
        let want = reference(x, w, Some(b), t);
        assert!(
            rel_close(
                &HostTensor::from_tensor(fused),
                &HostTensor::from_tensor(want),
                1e-5
            ),
            "n = {n}"
        );
    }
}
