//! The recurrent products of an LSTM step at batch 32, with the weight laid out in panels once
//! (`awd::kernels::panels::Panels`) against the plain orientations the `gemm` crate repacks on
//! every call: `cargo run --release --example panel_gemm` (`BATCH=64` for the classifier's batch;
//! on an AVX2-only CPU `AWD_SIMD=portable` multiplies the panels with the `gemm` crate instead of
//! `kernels::panel_avx2`).
use awd::kernels::gemm::{Mat, gemm};
use awd::kernels::panels::Panels;

#[path = "common/batch.rs"]
mod batch;
#[path = "common/timing.rs"]
mod timing;

fn main() {
    awd::alloc::tune();
    let b = batch::batch();
    for h in [200usize, 400, 512, 1152] {
        let g4 = 4 * h;
        let dims = (g4, b, h);
        let w: Vec<f32> = (0..g4 * h).map(|i| (i % 7) as f32 * 0.01).collect();
        let hb: Vec<f32> = (0..b * h).map(|i| (i % 5) as f32 * 0.1).collect();
        let dg: Vec<f32> = (0..b * g4).map(|i| (i % 3) as f32 * 0.1).collect();

        let mut rec = vec![0.0f32; g4 * b];
        timing::time(
            &format!("H={h} forward  W . h^T (plain)"),
            dims,
            100,
            &mut || gemm(&mut rec, Mat::new(&w, g4, h), Mat::t(&hb, b, h), true),
        );
        let panels = Panels::pack(&w, g4, h);
        let mut gates = vec![0.0f32; b * g4];
        timing::time(
            &format!("H={h} forward  gates += h . W^T (panels)"),
            dims,
            100,
            &mut || panels.mul_into(&mut gates, &hb, b, true),
        );

        let mut dh = vec![0.0f32; b * h];
        timing::time(
            &format!("H={h} backward dG . W (plain)"),
            dims,
            100,
            &mut || gemm(&mut dh, Mat::new(&dg, b, g4), Mat::new(&w, g4, h), false),
        );
        let wt: Vec<f32> = (0..h * g4).map(|i| w[(i % g4) * h + i / g4]).collect();
        let mut dh_t = vec![0.0f32; h * b];
        timing::time(
            &format!("H={h} backward W^T copy . dG^T (plain)"),
            dims,
            100,
            &mut || gemm(&mut dh_t, Mat::new(&wt, h, g4), Mat::t(&dg, b, g4), false),
        );
        let panels_t = Panels::pack_transposed(&w, g4, h);
        timing::time(
            &format!("H={h} backward dh = dG . W (panels of W^T)"),
            dims,
            100,
            &mut || panels_t.mul_into(&mut dh, &dg, b, false),
        );
    }
}
