//! awd's bf16 products (`--precision bf16`) against its f32 ones on the training step's GEMM
//! shapes, each held against the machine's measured peaks: GFLOP/s of the whole product as the
//! step runs it (operands' packing included), of the packing alone and of the tile products on
//! packed operands alone; and the bf16 result's error against f32, beside the bound bf16's
//! rounding allows. The unit is the best this CPU has; `AWD_BF16_UNIT=avx512|emulated` picks a
//! lesser one. `cargo run --release --example bf16_gemm`.
use awd::kernels::Precision;
use awd::kernels::bf16::{PackedA, PackedB, Unit};
use awd::kernels::gemm::{Mat, Rhs, packed_product, product, product_in};
use awd::kernels::peak;

#[path = "common/timing.rs"]
mod timing;

fn main() {
    awd::alloc::tune();
    let unit = Unit::get();
    let threads = rayon::current_num_threads();
    // Best of three: a shared machine only ever slows a run down.
    let best = |m: &dyn Fn() -> Option<peak::Peak>| {
        (0..3)
            .filter_map(|_| m())
            .max_by(|a, b| a.gflops.total_cmp(&b.gflops))
    };
    let f32_peak = best(&|| Some(peak::measure(threads, 0.2))).map_or(0.0, |p| p.gflops);
    let bf16_peak = best(&|| peak::measure_bf16(unit, threads, 0.2));
    println!("bf16 unit: {}", unit.describe());
    println!(
        "peaks on {threads} threads: f32 {f32_peak:.0} GFLOP/s; bf16 {}",
        bf16_peak.map_or("none (emulated)".into(), |p| format!(
            "{:.0} GFLOP/s ({})",
            p.gflops, p.isa
        ))
    );
    let bf16_peak = bf16_peak.map(|p| p.gflops).unwrap_or(f32_peak);
    // (m, k, n, b transposed): P2's window input projection (layers 0 and 1), its recurrent
    // step, the weight gradient over a window, the decoder; P1's recurrent step.
    for (label, m, k, n, b_t) in [
        ("P2 input projection, layer 0", 2240, 400, 4608, true),
        ("P2 input projection, layer 1", 2240, 1152, 4608, true),
        ("P2 weight gradient dW_hh", 4608, 2240, 1152, false),
        ("P2 decoder logits", 2240, 400, 10000, true),
        ("P2 recurrent step (batch 32)", 32, 1152, 4608, true),
        ("P1 recurrent step (batch 32)", 32, 512, 2048, true),
    ] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        let am = Mat::new(&a, m, k);
        let bm = match b_t {
            true => Mat::t(&b, n, k),
            false => Mat::new(&b, k, n),
        };
        let dims = (m, n, k);
        let reps = (2e10 / (2.0 * (m * n * k) as f64)).clamp(3.0, 200.0) as usize;
        let flops = 2.0 * (m * n * k) as f64;
        let mut want = Vec::new();
        let s = timing::time(&format!("{label}: f32"), dims, reps, &mut || {
            want = product(am, bm, 1.0);
        });
        println!(
            "{:56} {:5.1}% of the f32 peak",
            "",
            100.0 * flops / s / 1e9 / f32_peak
        );
        let mut got = Vec::new();
        let s = timing::time(
            &format!("{label}: bf16, packing included"),
            dims,
            reps,
            &mut || {
                got = product_in(Precision::Bf16, am, bm, 1.0);
            },
        );
        println!(
            "{:56} {:5.1}% of the bf16 peak",
            "",
            100.0 * flops / s / 1e9 / bf16_peak
        );
        if unit != Unit::Emulated {
            let (mut pa, mut pb) = (PackedA::new(am), PackedB::new(bm));
            timing::time(&format!("{label}: packing A"), dims, reps, &mut || {
                pa = PackedA::new(am);
            });
            timing::time(&format!("{label}: packing B"), dims, reps, &mut || {
                pb = PackedB::new(bm);
            });
            let s = timing::time(
                &format!("{label}: tile products alone"),
                dims,
                reps,
                &mut || {
                    std::hint::black_box(packed_product(&pa, &pb, 1.0));
                },
            );
            println!(
                "{:56} {:5.1}% of the bf16 peak",
                "",
                100.0 * flops / s / 1e9 / bf16_peak
            );
        }
        if m <= 64 && unit != Unit::Emulated {
            // The recurrent product: the weight packed once a window, the state every step.
            let packed = Rhs::new(Precision::Bf16, bm);
            let s = timing::time(
                &format!("{label}: bf16, weight packed once"),
                dims,
                reps * 10,
                &mut || {
                    packed.mul_into(&mut got, am, false);
                },
            );
            println!(
                "{:56} {:5.1}% of the bf16 peak",
                "",
                100.0 * flops / s / 1e9 / bf16_peak
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
