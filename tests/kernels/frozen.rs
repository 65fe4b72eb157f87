//! The fused LSTM's backward forms only the gradients of tracked inputs (a frozen weight, an
//! input below a frozen embedding): each one it forms is the one it forms with all tracked.

use awd::device;
use awd::kernels::Precision;
use awd::kernels::lstm_op::lstm_sequence;
use awd::params::HostTensor;
use burn::tensor::{Tensor, TensorData};

use super::close;

fn tracked<const D: usize>(on: bool, t: Tensor<D>) -> Tensor<D> {
    if on { t.require_grad() } else { t }
}

/// `[x, w_ih, w_hh, bias]`, each tracked where `track` says so; returns each one's gradient of
/// `sum(y · r)` (`None` for an untracked one).
fn grads(track: [bool; 4], seed: u64) -> Vec<Option<HostTensor>> {
    let dev = device::cpu_autodiff();
    let (t, b, i, h) = (5, 3, 7, 9);
    // Values from the seed alone: the device's generator is shared with the tests running beside.
    let values = |n: usize, salt: u64| -> Vec<f32> {
        (0..n as u64)
            .map(|k| {
                (((k + 1) * 2_654_435_761 + salt * 40_503 + seed) % 1_000) as f32 / 500.0 - 1.0
            })
            .collect()
    };
    let tensor = |shape: Vec<usize>, salt: u64| {
        let n = shape.iter().product();
        TensorData::new(values(n, salt), shape)
    };
    let x: Tensor<3> = Tensor::from_data(tensor(vec![t, b, i], 1), &dev);
    let w_ih: Tensor<2> = Tensor::from_data(tensor(vec![4 * h, i], 2), &dev);
    let w_hh: Tensor<2> = Tensor::from_data(tensor(vec![4 * h, h], 3), &dev);
    let bias: Tensor<1> = Tensor::from_data(tensor(vec![4 * h], 4), &dev);
    let state = (
        Tensor::from_data(tensor(vec![b, h], 5), &dev),
        Tensor::from_data(tensor(vec![b, h], 6), &dev),
    );
    let r: Tensor<3> = Tensor::from_data(tensor(vec![t, b, h], 7), &dev);
    let x = tracked(track[0], x);
    let w_ih = tracked(track[1], w_ih);
    let w_hh = tracked(track[2], w_hh);
    let bias = tracked(track[3], bias);
    let (y, _, _) = lstm_sequence(
        x.clone(),
        w_ih.clone(),
        w_hh.clone(),
        Some(bias.clone()),
        state,
        false,
        Precision::F32,
    );
    let g = (y * r).sum().backward();
    vec![
        x.grad(&g).map(HostTensor::from_tensor),
        w_ih.grad(&g).map(HostTensor::from_tensor),
        w_hh.grad(&g).map(HostTensor::from_tensor),
        bias.grad(&g).map(HostTensor::from_tensor),
    ]
}

#[test]
fn frozen_weights_and_untracked_inputs_skip_only_their_own_gradients() {
    let all = grads([true; 4], 3);
    let names = ["x", "w_ih", "w_hh", "bias"];
    for track in [
        [true, false, false, false], // the LM's frozen stage: only the input's gradient
        [false, true, true, true],   // a layer over a frozen embedding
        [false, false, true, false],
        [true, true, false, true],
    ] {
        let got = grads(track, 3);
        for k in 0..4 {
            match (&got[k], track[k]) {
                (Some(g), true) => close(names[k], g, all[k].as_ref().unwrap(), 1e-6).unwrap(),
                (None, false) => {}
                (g, on) => panic!("{}: tracked {on}, gradient {}", names[k], g.is_some()),
            }
        }
    }
}
