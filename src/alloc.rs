//! Allocator settings for training-sized tensors.
//!
//! glibc serves allocations above 32 MB (its dynamic mmap threshold tops out there) with fresh
//! `mmap`s and returns them to the kernel on `free`: every step then page-faults its activations
//! and gradients in again (a fifth of a P1 step's time in `clear_page`, measured with perf).
//! Raising the mmap and trim thresholds keeps freed memory in the heap for the next step.
//!
//! Steps run on rayon's threads ([`crate::kernels::workers`]), and glibc gives each thread but
//! the first an arena of its own whose heaps hold at most 64 MB: larger tensors would be
//! `mmap`ped and unmapped every step again whatever the thresholds (the classifier's step
//! 11.0 → 12.2 s, its peak RSS 2.1 → 3.3 GB, measured). One arena keeps every thread on the
//! main heap.

/// Applies the settings (Linux/glibc; elsewhere nothing).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
