//! Issue 16: awd's bf16 products (`--precision bf16`) against its f32 ones on the training step's
//! GEMM shapes: GFLOP/s of each (operands' packing included, as the step runs them), and the bf16
//! result's error against f32, beside the bound bf16's rounding allows. The unit is the best
//! this CPU has; `AWD_BF16_UNIT=avx512|emulated` picks a lesser one.
//! `cargo run --release --example bf16_gemm`.
use awd::kernels::Precision;
use awd::kernels::bf16::Unit;
use awd::kernels::gemm::{Mat, Rhs, product, product_in};

#[path = "common/timing.rs"]
mod timing;

fn main() {
    awd::alloc::tune();
    println!("bf16 unit: {}", Unit::get().describe());
    // (m, k, n): P2's window input projection (layers 0 and 1), its recurrent step, the weight
    // gradient over a window, the decoder.
    for (label, m, k, n) in [
        ("P2 input projection, layer 0", 2240, 400, 4608),
        ("P2 input projection, layer 1", 2240, 1152, 4608),
        ("P2 weight gradient dW_hh", 4608, 2240, 1152),
        ("P2 decoder logits", 2240, 400, 10000),
        ("P2 recurrent step (batch 32)", 32, 1152, 4608),
        ("P1 recurrent step (batch 32)", 32, 512, 2048),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let (am, bm) = (Mat::new(&a, m, k), Mat::new(&b, k, n));
        let dims = (m, n, k);
        let mut want = Vec::new();
        timing::time(&format!("{label}: f32"), dims, 5, &mut || {
            want = product(am, bm, 1.0);
        });
        let mut got = Vec::new();
        timing::time(&format!("{label}: bf16"), dims, 5, &mut || {
            got = product_in(Precision::Bf16, am, bm, 1.0);
        });
        if m <= 64 && Unit::get() != Unit::Emulated {
            // The recurrent product: the weight packed once a window, the state every step.
            let packed = Rhs::new(Precision::Bf16, bm);
            timing::time(
                &format!("{label}: bf16, weight packed once"),
                dims,
                20,
                &mut || {
                    packed.mul_into(&mut got, am, false);
                },
            );
        }
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs() as f64)
            .fold(0.0, f64::max);
        println!(
            "{:56} max |error| {worst:.4} (√k·2⁻⁸ = {:.4})",
            "",
            (k as f64).sqrt() / 256.0
        );
    }
}
