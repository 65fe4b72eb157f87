//! The threads awd works on, made again in a forked child.
//!
//! fastai tokenizes in worker processes forked from the notebook's (`parallel_gen`). A fork
//! copies rayon's pool but not its threads, so work sent to the copied pool would wait forever;
//! each process therefore runs awd's work on a pool of its own, made on first use.

use std::sync::Mutex;

use rayon::{ThreadPool, ThreadPoolBuilder};

static POOL: Mutex<Option<(u32, &'static ThreadPool)>> = Mutex::new(None);

/// Runs `work` on this process's pool (its parallel iterators too).
pub fn install<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    pool().install(work)
}

fn pool() -> &'static ThreadPool {
    let pid = std::process::id();
    let mut slot = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match *slot {
        Some((owner, pool)) if owner == pid => pool,
        // A parent's pool (its threads are not in this process) is left as it is, never dropped:
        // dropping it would wait on threads that are not there.
        _ => {
            let pool = ThreadPoolBuilder::new()
                .thread_name(|i| format!("awd-{i}"))
                .build()
                .expect("the OS gives threads to a new process");
            let pool: &'static ThreadPool = Box::leak(Box::new(pool));
            *slot = Some((pid, pool));
            pool
        }
    }
}
