//! Experiment: recurrent product W[4H,H] . h^T[H,B] with W pre-packed in 64-row panels.
use std::time::Instant;
use rayon::prelude::*;

fn time(label: &str, flops: f64, f: &mut dyn FnMut()) {
    f();
    let reps = 100;
    let t = Instant::now();
    for _ in 0..reps { f(); }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!("{label:60} {:8.1} us {:6.1} GFLOP/s", s * 1e6, flops / s / 1e9);
}

#[derive(Clone, Copy)]
struct P(*mut f32);
unsafe impl Send for P {}
unsafe impl Sync for P {}

fn main() {
    awd::alloc::tune();
    for h in [200usize, 512, 1152] {
        let b = 32usize;
        let g4 = 4 * h;
        let mr = 64usize;
        let flops = 2.0 * (g4 * h * b) as f64;
        let w: Vec<f32> = (0..g4 * h).map(|i| (i % 7) as f32 * 0.01).collect();
        // panels: for panel p, [k][64]
        let np = g4.div_ceil(mr);
        let mut wp = vec![0.0f32; np * mr * h];
        for r in 0..g4 { for k in 0..h { wp[(r / mr) * mr * h + k * mr + r % mr] = w[r * h + k]; } }
        let hk: Vec<f32> = (0..h * b).map(|i| (i % 5) as f32 * 0.1).collect(); // [H, B] k-major
        let hb: Vec<f32> = (0..b * h).map(|i| (i % 5) as f32 * 0.1).collect(); // [B, H]
        // reference: existing path
        let mut out = vec![0.0f32; g4 * b];
        time(&format!("H={h} existing W[g4,h].h^T -> [g4,b]"), flops, &mut || {
            awd::kernels::gemm::gemm(&mut out, awd::kernels::gemm::Mat::new(&w, g4, h), awd::kernels::gemm::Mat::t(&hb, b, h), false)
        });
        for (name, dst_rs, dst_cs, rhs_k_major) in [
            ("panels, dst [g4,b] rowmajor, h [H,B]", b as isize, 1isize, true),
            ("panels, dst [b,g4] (gates layout), h [H,B]", 1, g4 as isize, true),
            ("panels, dst [b,g4] (gates layout), h [B,H]", 1, g4 as isize, false),
        ] {
            let mut dst = vec![0.0f32; g4 * b];
            let d = P(dst.as_mut_ptr());
            time(&format!("H={h} {name}"), flops, &mut || {
                let d = d;
                (0..np).into_par_iter().for_each(|p| {
                    let d = d;
                    let rows = mr.min(g4 - p * mr);
                    let (rhs, rcs, rrs) = if rhs_k_major { (hk.as_ptr(), 1isize, b as isize) } else { (hb.as_ptr(), h as isize, 1isize) };
                    unsafe {
                        gemm::gemm(rows, b, h, d.0.offset(p as isize * mr as isize * dst_rs), dst_cs, dst_rs, true,
                            wp.as_ptr().add(p * mr * h), mr as isize, 1, rhs, rcs, rrs, 1.0, 1.0, false, false, false, gemm::Parallelism::None);
                    }
                });
            });
        }
        // backward: dh[b,h] = dG[b,g4] . W[g4,h]  ==  (W^T[h,g4] . dG^T)^T, panels of W^T
        let dg: Vec<f32> = (0..b * g4).map(|i| (i % 3) as f32 * 0.1).collect();
        let mut dh = vec![0.0f32; b * h];
        time(&format!("H={h} bwd existing dG.W"), flops, &mut || {
            awd::kernels::gemm::gemm(&mut dh, awd::kernels::gemm::Mat::new(&dg, b, g4), awd::kernels::gemm::Mat::new(&w, g4, h), false)
        });
        let npt = h.div_ceil(mr);
        let mut wt = vec![0.0f32; npt * mr * g4];
        for r in 0..h { for k in 0..g4 { wt[(r / mr) * mr * g4 + k * mr + r % mr] = w[k * h + r]; } }
        let d = P(dh.as_mut_ptr());
        time(&format!("H={h} bwd panels of W^T into dh[b,h]"), flops, &mut || {
            let d = d;
            (0..npt).into_par_iter().for_each(|p| {
                let d = d;
                let rows = mr.min(h - p * mr);
                unsafe {
                    gemm::gemm(rows, b, g4, d.0.add(p * mr), h as isize, 1, false,
                        wt.as_ptr().add(p * mr * g4), mr as isize, 1, dg.as_ptr(), g4 as isize, 1, 1.0, 1.0, false, false, false, gemm::Parallelism::None);
                }
            });
        });
    }
}
