use super::*;

#[test]
fn the_bf16_decoder_and_loss_follow_f32_across_row_chunks() {
    use awd::device;
    use awd::kernels::decoder_ce::{CHUNK_ROWS, decoder_cross_entropy};
    use awd::params::HostTensor;
    use burn::tensor::{Distribution, Int, Tensor, TensorData};
    let dev = device::cpu_autodiff();
    dev.seed(7);
    // More rows than one chunk of logits, so the chunked bf16 forward joins chunks.
    let (n, e, v) = (CHUNK_ROWS + 77, 40, 300);
    let x: Tensor<2> = Tensor::random([n, e], Distribution::Normal(0.0, 1.0), &dev).require_grad();
    let w: Tensor<2> = Tensor::random([v, e], Distribution::Normal(0.0, 0.3), &dev).require_grad();
    let b: Tensor<1> = Tensor::random([v], Distribution::Normal(0.0, 0.5), &dev).require_grad();
    let t: Vec<i64> = (0..n).map(|i| (i * 7919 % v) as i64).collect();
    let t: Tensor<1, Int> = Tensor::from_data(TensorData::new(t, [n]), &dev);
    let run = |p: Precision| {
        let loss = decoder_cross_entropy(x.clone(), w.clone(), Some(b.clone()), t.clone(), p);
        let g = loss.clone().backward();
        let grad2 = |p: &Tensor<2>| HostTensor::from_tensor(p.grad(&g).unwrap());
        let loss = loss.into_scalar::<f32>();
        (
            loss,
            grad2(&x),
            grad2(&w),
            HostTensor::from_tensor(b.grad(&g).unwrap()),
        )
    };
    let (l32, gx32, gw32, gb32) = run(Precision::F32);
    let (l16, gx16, gw16, gb16) = run(Precision::Bf16);
    assert!((l16 - l32).abs() <= 1e-2 * l32, "loss {l16} vs {l32}");
    // Products of operands rounded to 8 bits over sums of up to 377 rows: a few 2⁻⁸ relatively.
    common::assert_close("dx", &gx16, &gx32, 0.02);
    common::assert_close("dW", &gw16, &gw32, 0.02);
    common::assert_close("db", &gb16, &gb32, 0.02);
    // Without autodiff (evaluation) the same bf16 loss, chunk by chunk.
    let plain = device::cpu();
    let eval = decoder_cross_entropy(
        Tensor::from_data(x.to_data(), &plain),
        Tensor::from_data(w.to_data(), &plain),
        Some(Tensor::from_data(b.to_data(), &plain)),
        Tensor::from_data(t.to_data(), &plain),
        Precision::Bf16,
    )
    .into_scalar::<f32>();
    assert!(
        (eval - l16).abs() <= 1e-5 * l16,
        "eval {eval} vs train {l16}"
    );
}

/// `--precision auto` (issue 26): with emulated bf16, slower than f32 on every CPU, the start-up
/// probe picks f32, says so with the measured ratio, and the run is the f32 run exactly; asked
/// for bf16 there, awd says it is slower; with the CPU's best unit, auto says what it chose.
#[test]
fn precision_auto_picks_f32_where_bf16_is_slower_and_says_why() {
    use awd::kernels::{Precision, PrecisionChoice};
    assert_eq!(PrecisionChoice::F32.resolve(), Precision::F32);
    assert_eq!(PrecisionChoice::Bf16.resolve(), Precision::Bf16);
    let tmp = tempfile::tempdir().unwrap();
    let f32_run = tmp.path().join("f32");
    ok(&train(&f32_run, "f32", None));
    let auto = tmp.path().join("auto-emulated");
    let out = train(&auto, "auto", Some("emulated"));
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("precision auto: f32 (bf16 products on emulation"),
        "{stderr}"
    );
    assert!(
        stderr.contains("x the f32 speed in a start-up probe"),
        "{stderr}"
    );
    assert_eq!(
        final_val_loss(&auto),
        final_val_loss(&f32_run),
        "auto on emulation is f32"
    );

    let forced = train(&tmp.path().join("bf16-emulated"), "bf16", Some("emulated"));
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(stderr.contains("slower than f32 here"), "{stderr}");
    assert!(
        stderr.contains("--precision auto would use f32"),
        "{stderr}"
    );

    let best = train(&tmp.path().join("auto-best"), "auto", None);
    ok(&best);
    let stderr = String::from_utf8_lossy(&best.stderr);
    assert!(
        stderr.contains("precision auto: f32 (") || stderr.contains("precision auto: bf16 ("),
        "{stderr}"
    );
}
