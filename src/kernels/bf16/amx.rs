//! Intel AMX: one 32 × 32 block of the product in four tile registers, `tdpbf16ps` (bf16 pairs
//! multiplied, summed into f32) over the whole depth. AMX intrinsics are not stable Rust, so the
//! tile instructions are written with `asm!`; the tile registers are not allocated by the
//! compiler and keep their values between the `asm!` statements of one call.
//!
//! Linux lends a process the tile state only after `arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)` ([`request`]), and each thread loads the tile configuration before its
//! first tile instruction ([`Tiles::load`]).

use std::arch::asm;

use super::pack::TILE;

/// Whether the CPU has AMX-BF16 and the kernel lent this process the tile state.
pub fn request() -> bool {
    #[cfg(target_os = "linux")]
    {
        // CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a system call that only asks for a permission.
        let granted = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        granted == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// The tile configuration `ldtilecfg` reads (palette 1): eight tiles of 16 rows × 64 bytes
/// (tmm0–3: the block's f32 accumulators, tmm4–5: two A tiles, tmm6–7: two B tiles).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// The tile registers configured on this thread, released on drop.
pub struct Tiles(());

impl Tiles {
    /// # Safety
    /// [`request`] must have returned true in this process.
    pub unsafe fn load() -> Self {
        let mut cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            (cfg.rows[t], cfg.colsb[t]) = (16, 64);
        }
        // SAFETY: the permission was granted (the caller's contract); the configuration is a
        // valid palette-1 one.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack)) };
        Tiles(())
    }

    /// `out` (32 × 32, row-major) = the two 16-row strips of A (`a0`, `a1`) times the two
    /// 16-column strips of B (`b0`, `b1`), over `chunks` tiles of depth 32 each.
    pub fn block(&self, a: [&[u16]; 2], b: [&[u16]; 2], chunks: usize, out: &mut [f32; 1024]) {
        // SAFETY: `out` is 32 rows of 32 floats.
        unsafe { self.block_into(a, b, chunks, out.as_mut_ptr(), 32, false) }
    }

    /// [`Tiles::block`] straight into the destination: `c` (32 × 32 at row stride `ldc`
    /// floats) is overwritten, or added to when `accumulate`.
    ///
    /// # Safety
    /// `c` must be valid for reads and writes of 32 rows of 32 floats at stride `ldc`.
    pub unsafe fn block_into(
        &self,
        a: [&[u16]; 2],
        b: [&[u16]; 2],
        chunks: usize,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        for s in a.iter().chain(&b) {
            assert!(s.len() >= chunks * TILE);
        }
        const STRIDE: usize = 64;
        // SAFETY: as in `block`; `c` is the caller's contract.
        unsafe {
            if accumulate {
                asm!(
                    "tileloadd tmm0, [{c00} + {s}*1]",
                    "tileloadd tmm1, [{c01} + {s}*1]",
                    "tileloadd tmm2, [{c10} + {s}*1]",
                    "tileloadd tmm3, [{c11} + {s}*1]",
                    c00 = in(reg) c,
                    c01 = in(reg) c.add(16),
                    c10 = in(reg) c.add(16 * ldc),
                    c11 = in(reg) c.add(16 * ldc + 16),
                    s = in(reg) 4 * ldc,
                    options(nostack, readonly),
                );
            } else {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
            }
            for k in 0..chunks {
                let at = k * TILE;
                asm!(
                    "tileloadd tmm4, [{a0} + {s}*1]",
                    "tileloadd tmm5, [{a1} + {s}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    "tileloadd tmm7, [{b1} + {s}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a[0].as_ptr().add(at),
                    a1 = in(reg) a[1].as_ptr().add(at),
                    b0 = in(reg) b[0].as_ptr().add(at),
                    b1 = in(reg) b[1].as_ptr().add(at),
                    s = in(reg) STRIDE,
                    options(nostack, readonly),
                );
            }
            Self::store(c, ldc);
        }
    }

    /// `iters` rounds of four independent tile products (tmm0–3 += tmm4/5 · tmm6/7) on operands
    /// loaded once: the tiles' compute rate with no memory traffic (what
    /// [`crate::kernels::peak`] measures). Returns an accumulator's first value (`8 · iters`),
    /// so that the work is kept.
    pub fn chains(&self, iters: u64) -> f32 {
        // 0.5 in bf16: each product adds 32 × 0.25 to every accumulator.
        let half = [0x3f00u16; 16 * 32];
        let mut c = [0f32; 16 * 16];
        // SAFETY: the tiles are configured (16 rows × 64 bytes each); every load and the store
        // cover 16 rows of 64 bytes of a buffer that long.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "tileloadd tmm4, [{p} + {s}*1]",
                "tileloadd tmm5, [{p} + {s}*1]",
                "tileloadd tmm6, [{p} + {s}*1]",
                "tileloadd tmm7, [{p} + {s}*1]",
                p = in(reg) half.as_ptr(),
                s = in(reg) 64usize,
                options(nostack, readonly),
            );
            for _ in 0..iters {
                asm!(
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    options(nostack, nomem)
                );
            }
            asm!(
                "tilestored [{p} + {s}*1], tmm0",
                p = in(reg) c.as_mut_ptr(),
                s = in(reg) 64usize,
                options(nostack),
            );
        }
        c[0]
    }

    /// tmm0–3 into the 32 × 32 block at `o` (row stride `ldc` floats).
    unsafe fn store(o: *mut f32, ldc: usize) {
        // SAFETY: the caller's: `o` holds 32 rows of 32 floats at stride `ldc`.
        unsafe {
            asm!(
                "tilestored [{c00} + {s}*1], tmm0",
                "tilestored [{c01} + {s}*1], tmm1",
                "tilestored [{c10} + {s}*1], tmm2",
                "tilestored [{c11} + {s}*1], tmm3",
                c00 = in(reg) o,
                c01 = in(reg) o.add(16),
                c10 = in(reg) o.add(16 * ldc),
                c11 = in(reg) o.add(16 * ldc + 16),
                s = in(reg) 4 * ldc,
                options(nostack),
            );
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `load`; releasing them returns the thread to the
        // initial tile state.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}
