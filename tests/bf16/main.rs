//! `--precision bf16`: the products against f64 references at the bound bf16's rounding
//! allows, every unit this CPU has (AMX, AVX512-BF16, emulated), and training, evaluation and
//! generation in bf16 against f32.

#[path = "../common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Output};

use awd::kernels::Precision;
use awd::kernels::bf16::{Unit, product_on, round, to_bf16};
use awd::kernels::gemm::{Mat, Rhs, gemm_in, product_in};
use common::{ok, s};

/// bf16's unit roundoff: 8 significant bits, rounded to nearest.
const U: f64 = 1.0 / 256.0;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mixed signs and magnitudes over four binades.
            ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * (1 << (x % 4)) as f32
        })
        .collect()
}

/// Element `(r, c)` of a view.
fn at(m: &Mat<'_>, r: usize, c: usize) -> f32 {
    if m.transposed {
        m.data[c * m.rows + r]
    } else {
        m.data[r * m.cols + c]
    }
}

/// Checks `got` (`a · b`, `[M, N]`) element by element against f64 references:
/// - exactly rounded operands: `|got − Σ r(a)·r(b)| ≤ (K + 2)·2⁻²⁴·Σ |r(a)·r(b)|` (the f32
///   sums' error alone: this fails if an operand is rounded otherwise than to nearest even, or
///   misplaced by the packing);
/// - the f32 product: `|got − Σ a·b| ≤ (2u + u² + (K + 2)·2⁻²⁴)·Σ |a·b|`, u = 2⁻⁸.
fn check(what: &str, got: &[f32], a: Mat<'_>, b: Mat<'_>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(got.len(), m * n, "{what}: size");
    let acc = (k as f64 + 2.0) * f64::powi(2.0, -24);
    for r in 0..m {
        for c in 0..n {
            let (mut exact, mut rounded, mut abs, mut rabs) = (0f64, 0f64, 0f64, 0f64);
            for kk in 0..k {
                let (x, y) = (at(&a, r, kk) as f64, at(&b, kk, c) as f64);
                let (rx, ry) = (round(x as f32) as f64, round(y as f32) as f64);
                exact += x * y;
                abs += (x * y).abs();
                rounded += rx * ry;
                rabs += (rx * ry).abs();
            }
            let g = got[r * n + c] as f64;
            assert!(
                (g - rounded).abs() <= acc * rabs + 1e-30,
                "{what} ({m}x{k}x{n}) [{r},{c}]: {g} vs rounded operands' {rounded}"
            );
            assert!(
                (g - exact).abs() <= (2.0 * U + U * U + acc) * abs + 1e-30,
                "{what} ({m}x{k}x{n}) [{r},{c}]: {g} vs f32's {exact}"
            );
        }
    }
}

#[test]
fn every_unit_multiplies_within_the_bf16_bound_in_every_orientation() {
    let units = Unit::available();
    eprintln!("bf16 units on this CPU: {units:?}");
    // Sizes around the tiles (16 rows, 32 deep, 32 x 32 blocks) and multi-task products (a
    // task: 4 x 16 blocks), split along the rows and along the columns.
    for (m, k, n) in [
        (1, 1, 1),
        (3, 5, 7),
        (16, 32, 16),
        (17, 33, 31),
        (32, 64, 32),
        (45, 70, 100),
        (300, 200, 130),
        (70, 40, 600),
    ] {
        let (da, db) = (values(m * k, 1), values(k * n, 2));
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = if ta {
                Mat::t(&da, k, m)
            } else {
                Mat::new(&da, m, k)
            };
            let b = if tb {
                Mat::t(&db, n, k)
            } else {
                Mat::new(&db, k, n)
            };
            for &unit in &units {
                let got = product_on(unit, a, b);
                check(&format!("{unit:?} a^T={ta} b^T={tb}"), &got, a, b);
            }
        }
    }
}

#[test]
fn the_units_agree_with_each_other() {
    let (m, k, n) = (70, 300, 90);
    let (da, db) = (values(m * k, 3), values(k * n, 4));
    let (a, b) = (Mat::new(&da, m, k), Mat::t(&db, n, k));
    let want = product_on(Unit::Emulated, a, b);
    let scale = want.iter().fold(0f32, |s, v| s.max(v.abs()));
    for unit in Unit::available() {
        let got = product_on(unit, a, b);
        // The same rounded operands; only the order of the f32 sums differs.
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * scale, "{unit:?}: {g} vs {w}");
        }
    }
}

#[test]
fn accumulation_scale_and_a_shared_right_operand_follow_the_f32_contract() {
    let (m, k, n) = (37, 50, 45);
    let (da, db) = (values(m * k, 5), values(k * n, 6));
    let (a, b) = (Mat::new(&da, m, k), Mat::new(&db, k, n));
    let plain = product_in(Precision::Bf16, a, b, 1.0);
    check("process unit", &plain, a, b);
    let half = product_in(Precision::Bf16, a, b, 0.5);
    for (h, p) in half.iter().zip(&plain) {
        assert_eq!(*h, 0.5 * p, "scale");
    }
    let mut acc = vec![1.0f32; m * n];
    gemm_in(Precision::Bf16, &mut acc, a, b, true);
    for (x, p) in acc.iter().zip(&plain) {
        assert!(
            (x - (p + 1.0)).abs() <= 1e-5 * (1.0 + p.abs()),
            "accumulate"
        );
    }
    // The recurrent products' form: the weight prepared once, then used step after step.
    let w = Rhs::new(Precision::Bf16, b);
    let mut out = vec![0f32; m * n];
    for _ in 0..2 {
        w.mul_into(&mut out, a, false);
        assert_eq!(
            out, plain,
            "a prepared right operand gives the same product"
        );
    }
}

#[test]
fn rounding_is_to_nearest_even_and_keeps_nan_and_infinity() {
    let one = 1.0f32.to_bits();
    // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even one (1).
    assert_eq!(to_bf16(f32::from_bits(one + 0x8000)), 0x3f80);
    // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ and 1 + 2·2⁻⁷: to the even one (1 + 2·2⁻⁷).
    assert_eq!(to_bf16(f32::from_bits(one + 0x18000)), 0x3f82);
    // Just above a tie rounds up, just below rounds down.
    assert_eq!(to_bf16(f32::from_bits(one + 0x8001)), 0x3f81);
    assert_eq!(to_bf16(f32::from_bits(one + 0x7fff)), 0x3f80);
    assert_eq!(to_bf16(-2.5), 0xc020);
    assert!(round(f32::NAN).is_nan());
    // A NaN whose payload sits in the low bits only must not turn into infinity.
    assert!(round(f32::from_bits(0x7f80_0001)).is_nan());
    assert_eq!(round(f32::INFINITY), f32::INFINITY);
    assert_eq!(round(f32::NEG_INFINITY), f32::NEG_INFINITY);
}

fn awd(args: &[&str], unit: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_awd"));
    cmd.args(args);
    if let Some(u) = unit {
        cmd.env("AWD_BF16_UNIT", u);
    }
    cmd.output().unwrap()
}

/// The last validation loss in a run's metrics.csv.
fn final_val_loss(run: &Path) -> f64 {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "val_loss").unwrap();
    csv.lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(col)?.parse::<f64>().ok())
        .last()
        .expect("a validation loss")
}

fn train(run: &Path, precision: &str, unit: Option<&str>) -> Output {
    awd(
        &[
            "train",
            "--quiet",
            "--out",
            s(run),
            "--grammar-tokens",
            "6000",
            "--epochs",
            "3",
            "--batch-size",
            "8",
            "--bptt",
            "16",
            "--emb-size",
            "48",
            "--hidden-size",
            "96",
            "--seed",
            "3",
            "--precision",
            precision,
        ],
        unit,
    )
}

#[test]
fn bf16_training_learns_like_f32_and_eval_and_generate_run_in_bf16() {
    let tmp = tempfile::tempdir().unwrap();
    let f32_run = tmp.path().join("f32");
    ok(&train(&f32_run, "f32", None));
    let reference = final_val_loss(&f32_run);
    // A uniform guess over the grammar's vocabulary scores ln(V) ≈ 4; the model learns far
    // below it.
    assert!(reference < 3.5, "f32 learns: {reference}");
    // The best unit of this CPU, then the emulated one (which every CPU has).
    for unit in ["best", "emulated"] {
        let run = tmp.path().join(unit);
        let out = train(&run, "bf16", (unit != "best").then_some(unit));
        ok(&out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("precision bf16: products on"), "{stderr}");
        if unit == "emulated" {
            assert!(stderr.contains("emulated"), "{stderr}");
        }
        let loss = final_val_loss(&run);
        assert!(
            (loss - reference).abs() <= 0.02 * reference,
            "{unit}: bf16 validation loss {loss} vs f32 {reference}"
        );
    }

    let model = f32_run.join("model.safetensors");
    let text = tmp.path().join("text.txt");
    let words = awd::data::Grammar::builtin().sample(3000, 9).join(" ");
    std::fs::write(&text, words.replace(" <eos> ", "\n")).unwrap();
    let ppl = |precision: &str| -> f64 {
        let out = ok(&awd(
            &[
                "eval",
                "--model",
                s(&model),
                "--data",
                s(&text),
                "--precision",
                precision,
            ],
            None,
        ));
        let line = out.lines().find(|l| l.contains("perplexity")).unwrap();
        line.split_whitespace()
            .filter_map(|w| w.trim_end_matches([',', ';']).parse::<f64>().ok())
            .next()
            .unwrap_or_else(|| panic!("a perplexity in {line}"))
    };
    let (p32, p16) = (ppl("f32"), ppl("bf16"));
    assert!(
        (p16 - p32).abs() <= 0.01 * p32,
        "eval: bf16 {p16} vs f32 {p32}"
    );

    let text_out = ok(&awd(
        &[
            "generate",
            "--model",
            s(&model),
            "--prompt",
            "the old",
            "--tokens",
            "10",
            "--precision",
            "bf16",
        ],
        None,
    ));
    assert!(text_out.starts_with("the old "), "{text_out}");
}

mod decoder_and_auto;
