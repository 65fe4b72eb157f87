//! Issue 16: the bf16 rate of Intel AMX (`tdpbf16ps` on 16×16 f32 tiles), which this machine's
//! CPU has beside AVX512-BF16, on one core: a chain of tile products with no memory traffic,
//! checked by its result. AMX intrinsics are not stable in Rust, so the instructions are written
//! with `asm!`; Linux lends a process the tile registers only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`.
//! `cargo run --release --example amx_peak`.
use std::arch::asm;

use awd::kernels::bf16::amx::{self, Tiles};

fn main() {
    if !amx::request() {
        println!("this CPU has no AMX-BF16, or the kernel did not grant the tile state");
        return;
    }
    // tmm0: C, 16 rows of 16 f32; tmm1: A, 16 rows of 32 bf16; tmm2: B, 16 rows of 16 bf16 pairs
    // (awd's tile configuration: eight tiles of 16 rows × 64 bytes).
    // SAFETY: the tile state was granted just above.
    let tiles = unsafe { Tiles::load() };
    let one = 0x3f80u16; // 1.0 in bf16
    let (a, b) = (vec![one; 16 * 32], vec![one; 16 * 32]);
    let mut c = vec![0f32; 16 * 16];
    let n = 5_000_000u64;
    let started = std::time::Instant::now();
    // SAFETY: the tile state was granted; every tile load/store covers 16 rows of 64 bytes of a
    // buffer that long.
    unsafe {
        asm!("tileloadd tmm0, [{p} + {s}*1]", p = in(reg) c.as_ptr(), s = in(reg) 64usize);
        asm!("tileloadd tmm1, [{p} + {s}*1]", p = in(reg) a.as_ptr(), s = in(reg) 64usize);
        asm!("tileloadd tmm2, [{p} + {s}*1]", p = in(reg) b.as_ptr(), s = in(reg) 64usize);
        for _ in 0..n {
            asm!("tdpbf16ps tmm0, tmm1, tmm2");
        }
        asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) c.as_mut_ptr(), s = in(reg) 64usize);
    }
    drop(tiles);
    let secs = started.elapsed().as_secs_f64();
    // Each product: 16 × 16 outputs, 32 products each.
    let flops = 2.0 * 16.0 * 16.0 * 32.0 * n as f64;
    println!(
        "tdpbf16ps: {:.0} GFLOP/s on one core (one dependent chain: a lower bound); c[0] = {} (expected {})",
        flops / secs / 1e9,
        c[0],
        32.0 * n as f64
    );
}
