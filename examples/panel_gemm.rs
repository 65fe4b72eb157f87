//! The recurrent products of an LSTM step at batch 32, with the weight laid out in panels once
//! (`awd::kernels::panels::Panels`) against the plain orientations the `gemm` crate repacks on
//! every call: `cargo run --release --example panel_gemm`.
use std::time::Instant;

use awd::kernels::gemm::{Mat, gemm};
use awd::kernels::panels::Panels;

fn time(label: &str, flops: f64, f: &mut dyn FnMut()) {
    f();
    let reps = 100;
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{label:52} {:8.1} us {:6.1} GFLOP/s",
        s * 1e6,
        flops / s / 1e9
    );
}

fn main() {
    awd::alloc::tune();
    let b = 32usize;
    for h in [200usize, 400, 512, 1152] {
        let g4 = 4 * h;
        let flops = 2.0 * (g4 * h * b) as f64;
        let w: Vec<f32> = (0..g4 * h).map(|i| (i % 7) as f32 * 0.01).collect();
        let hb: Vec<f32> = (0..b * h).map(|i| (i % 5) as f32 * 0.1).collect();
        let dg: Vec<f32> = (0..b * g4).map(|i| (i % 3) as f32 * 0.1).collect();

        let mut rec = vec![0.0f32; g4 * b];
        time(
            &format!("H={h} forward  W . h^T (plain)"),
            flops,
            &mut || gemm(&mut rec, Mat::new(&w, g4, h), Mat::t(&hb, b, h), true),
        );
        let panels = Panels::pack(&w, g4, h);
        let mut gates = vec![0.0f32; b * g4];
        time(
            &format!("H={h} forward  gates += h . W^T (panels)"),
            flops,
            &mut || panels.mul_into(&mut gates, &hb, b, true),
        );

        let mut dh = vec![0.0f32; b * h];
        time(
            &format!("H={h} backward dG . W (plain)"),
            flops,
            &mut || gemm(&mut dh, Mat::new(&dg, b, g4), Mat::new(&w, g4, h), false),
        );
        let wt: Vec<f32> = (0..h * g4).map(|i| w[(i % g4) * h + i / g4]).collect();
        let mut dh_t = vec![0.0f32; h * b];
        time(
            &format!("H={h} backward W^T copy . dG^T (plain)"),
            flops,
            &mut || gemm(&mut dh_t, Mat::new(&wt, h, g4), Mat::t(&dg, b, g4), false),
        );
        let panels_t = Panels::pack_transposed(&w, g4, h);
        time(
            &format!("H={h} backward dh = dG . W (panels of W^T)"),
            flops,
            &mut || panels_t.mul_into(&mut dh, &dg, b, false),
        );
    }
}
