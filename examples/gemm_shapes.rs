//! GFLOP/s of the GEMM shapes an LSTM step uses, in both orientations (for choosing the fused
//! kernel's layout). `cargo run --release --example gemm_shapes`
use awd::kernels::gemm::{Mat, gemm};

#[path = "common/timing.rs"]
mod timing;

fn time(label: &str, m: usize, n: usize, k: usize, f: &mut dyn FnMut()) {
    timing::time(label, (m, n, k), 200, f);
}

fn decoder(n: usize, e: usize, v: usize) {
    let x = vec![0.1f32; n * e];
    let w = vec![0.2f32; v * e];
    let mut logits = vec![0.0f32; n * v];
    time(&format!("x[{n},{e}] . W^T[{e},{v}]"), n, v, e, &mut || {
        gemm(&mut logits, Mat::new(&x, n, e), Mat::t(&w, v, e), false)
    });
    let mut logits_t = vec![0.0f32; v * n];
    time(
        &format!("W[{v},{e}] . x^T[{e},{n}] (transposed logits)"),
        v,
        n,
        e,
        &mut || gemm(&mut logits_t, Mat::new(&w, v, e), Mat::t(&x, n, e), false),
    );
    let d = vec![0.01f32; n * v];
    let mut dw = vec![0.0f32; v * e];
    time(&format!("d^T[{v},{n}] . x[{n},{e}]"), v, e, n, &mut || {
        gemm(&mut dw, Mat::t(&d, n, v), Mat::new(&x, n, e), false)
    });
    let mut dw_t = vec![0.0f32; e * v];
    time(
        &format!("x^T[{e},{n}] . d[{n},{v}] (transposed dW)"),
        e,
        v,
        n,
        &mut || gemm(&mut dw_t, Mat::t(&x, n, e), Mat::new(&d, n, v), false),
    );
    for rows in [128usize, 256, 512] {
        let mut part = vec![0.0f32; rows * v];
        time(
            &format!("x[{rows},{e}] . W^T[{e},{v}] (row chunk)"),
            rows,
            v,
            e,
            &mut || {
                gemm(
                    &mut part,
                    Mat::new(&x[..rows * e], rows, e),
                    Mat::t(&w, v, e),
                    false,
                )
            },
        );
    }
    let mut dx = vec![0.0f32; n * e];
    time(&format!("d[{n},{v}] . W[{v},{e}]"), n, e, v, &mut || {
        gemm(&mut dx, Mat::new(&d, n, v), Mat::new(&w, v, e), false)
    });
    let mut dx_t = vec![0.0f32; e * n];
    time(
        &format!("W^T[{e},{v}] . d^T[{v},{n}] (transposed dx)"),
        e,
        n,
        v,
        &mut || gemm(&mut dx_t, Mat::t(&w, v, e), Mat::t(&d, n, v), false),
    );
}

fn main() {
    decoder(1120, 200, 10000);
    decoder(2240, 400, 10000);
    if std::env::args().any(|a| a == "--decoder") {
        return;
    }
    for (b, h) in [(32usize, 200usize), (32, 400), (32, 512), (32, 1152)] {
        let g4 = 4 * h;
        let hprev = vec![0.5f32; b * h];
        let w = vec![0.25f32; g4 * h];
        let mut out = vec![0.0f32; b * g4];
        time(
            &format!("h[{b},{h}] . W^T[{h},{g4}]"),
            b,
            g4,
            h,
            &mut || gemm(&mut out, Mat::new(&hprev, b, h), Mat::t(&w, g4, h), true),
        );
        let mut out_t = vec![0.0f32; g4 * b];
        time(
            &format!("W[{g4},{h}] . h^T[{h},{b}] (transposed gates)"),
            g4,
            b,
            h,
            &mut || gemm(&mut out_t, Mat::new(&w, g4, h), Mat::t(&hprev, b, h), true),
        );
        let w_cm = vec![0.25f32; h * g4];
        let mut out_t2 = vec![0.0f32; g4 * b];
        time(
            &format!("W[{g4},{h}] column-major . h^T[{h},{b}] (transposed gates)"),
            g4,
            b,
            h,
            &mut || {
                gemm(
                    &mut out_t2,
                    Mat::t(&w_cm, h, g4),
                    Mat::t(&hprev, b, h),
                    true,
                )
            },
        );
        let mut out_t3 = vec![0.0f32; g4 * b];
        time(
            &format!("W[{g4},{h}] column-major . h^T[{h},{b}] (h col-major)"),
            g4,
            b,
            h,
            &mut || {
                gemm(
                    &mut out_t3,
                    Mat::t(&w_cm, h, g4),
                    Mat::new(&hprev, h, b),
                    true,
                )
            },
        );
        let dg = vec![0.1f32; b * g4];
        let mut dh = vec![0.0f32; b * h];
        time(
            &format!("dG[{b},{g4}] . W[{g4},{h}]"),
            b,
            h,
            g4,
            &mut || gemm(&mut dh, Mat::new(&dg, b, g4), Mat::new(&w, g4, h), false),
        );
        let mut dh_t = vec![0.0f32; h * b];
        time(
            &format!("W^T[{h},{g4}] . dG^T[{g4},{b}] (transposed dh)"),
            h,
            b,
            g4,
            &mut || gemm(&mut dh_t, Mat::t(&w, g4, h), Mat::t(&dg, b, g4), false),
        );
        let wt = vec![0.25f32; h * g4];
        let mut dh_t2 = vec![0.0f32; h * b];
        time(
            &format!("Wt[{h},{g4}] (row-major copy) . dG^T[{g4},{b}]"),
            h,
            b,
            g4,
            &mut || gemm(&mut dh_t2, Mat::new(&wt, h, g4), Mat::t(&dg, b, g4), false),
        );
        let tb = 35 * b;
        let big = vec![0.1f32; tb * g4];
        let x = vec![0.2f32; tb * h];
        let mut dw = vec![0.0f32; g4 * h];
        time(
            &format!("dG^T[{g4},{tb}] . X[{tb},{h}]"),
            g4,
            h,
            tb,
            &mut || gemm(&mut dw, Mat::t(&big, tb, g4), Mat::new(&x, tb, h), false),
        );
    }
}
