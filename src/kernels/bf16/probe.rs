//! `--precision auto`: bf16 products where they pay on this CPU. A probe of a few milliseconds,
//! run once per process, times the f32 and the bf16 products on two shapes of a training step
//! (a window's input projection and one recurrent step) and keeps bf16 where it is the faster.
//! (On a CPU without AMX, AVX512-BF16 can run at half the rate of f32 FMAs, and emulated bf16 is
//! always slower.)

use std::sync::OnceLock;
use std::time::Instant;

use super::{Precision, Unit};
use crate::kernels::gemm::{Mat, product_in};

/// The precision a user asks for: f32, bf16, or whichever of the two is faster here.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    #[default]
    F32,
    Bf16,
    /// bf16 where this CPU's bf16 products beat its f32 ones (a probe at start-up), else f32.
    Auto,
}

/// What the probe measured: the bf16 products' speed over the f32 ones' (above 1: bf16 faster).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    pub unit: Unit,
    pub speedup: f64,
}

/// bf16 must beat f32 by this much to be chosen (the probe's own noise).
const MARGIN: f64 = 1.05;

impl Probe {
    /// The probe of this process (measured on the first call).
    pub fn get() -> Probe {
        static PROBE: OnceLock<Probe> = OnceLock::new();
        *PROBE.get_or_init(Probe::measure)
    }

    fn measure() -> Probe {
        // (m, k, n): P1's window input projection (32 rows × 35 steps, emb 200 → 4 × 512) and
        // its recurrent step (32 rows, 512 → 4 × 512).
        let shapes = [(1120, 200, 2048), (32, 512, 2048)];
        let (mut f32_s, mut bf16_s) = (0.0, 0.0);
        for (m, k, n) in shapes {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 104729 % 1000) as f32 - 500.0) / 500.0)
                .collect();
            let (a, b) = (Mat::new(&a, m, k), Mat::new(&b, k, n));
            let best = |precision: Precision| {
                (0..4)
                    .map(|_| {
                        let t = Instant::now();
                        std::hint::black_box(product_in(precision, a, b, 1.0));
                        t.elapsed().as_secs_f64()
                    })
                    .skip(1) // the first pays packing buffers and thread start-up
                    .fold(f64::INFINITY, f64::min)
            };
            f32_s += best(Precision::F32);
            bf16_s += best(Precision::Bf16);
        }
        Probe {
            unit: Unit::get(),
            speedup: f32_s / bf16_s.max(1e-12),
        }
    }

    /// Whether bf16 pays here.
    pub fn bf16_pays(&self) -> bool {
        self.unit != Unit::Emulated && self.speedup >= MARGIN
    }

    /// The measurement, for the user.
    pub fn describe(&self) -> String {
        format!(
            "bf16 products on {} ran at {:.2}x the f32 speed in a start-up probe",
            self.unit.describe_short(),
            self.speedup
        )
    }
}

impl PrecisionChoice {
    /// The products' precision: `auto` decided by the [`Probe`].
    pub fn resolve(self) -> Precision {
        match self {
            PrecisionChoice::F32 => Precision::F32,
            PrecisionChoice::Bf16 => Precision::Bf16,
            PrecisionChoice::Auto if Probe::get().bf16_pays() => Precision::Bf16,
            PrecisionChoice::Auto => Precision::F32,
        }
    }

    /// What a run with this choice tells the user about its products (`None`: plain f32).
    pub fn note(self) -> Option<String> {
        match self {
            PrecisionChoice::F32 => None,
            PrecisionChoice::Bf16 => {
                let p = Probe::get();
                Some(match p.bf16_pays() {
                    true => format!("precision bf16: products on {}", p.unit.describe()),
                    false => format!(
                        "precision bf16: products on {}, slower than f32 here ({}); --precision auto would use f32",
                        p.unit.describe(),
                        p.describe()
                    ),
                })
            }
            PrecisionChoice::Auto => {
                let p = Probe::get();
                let chosen = if p.bf16_pays() { "bf16" } else { "f32" };
                Some(format!("precision auto: {chosen} ({})", p.describe()))
            }
        }
    }
}
