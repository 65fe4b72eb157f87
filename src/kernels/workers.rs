//! Running a job's work on the thread pool that its kernels split their work over.
//!
//! The kernels split each product, cell and pass across rayon's pool. Called from a thread
//! outside the pool (the process's main thread), every such region hands its work to the pool
//! and sleeps until it is done: two wake-ups through the kernel each, and a P1 step has about
//! 900 of them (~1,000 context switches a step against ~100). Called from one of the pool's own
//! threads, a region runs its first share on the calling thread while the other threads take the
//! rest, with no sleep in between: P1's step ran ~4% faster (2-core Zen 4, 2026-12-06).

/// Runs `f` on one of rayon's pool threads (here, when already on one) and returns its result.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::current_thread_index() {
        Some(_) => f(),
        None => rayon::scope(|_| f()),
    }
}

/// [`on_pool`] for work that holds values which are not `Send` (a job's `Rc<Dist>`), the
/// calling thread parked until it returns, so that those values are used by one thread at a time,
/// with rayon's latch ordering the handovers.
///
/// # Safety
/// Every value `f` holds that is not `Send` must be reachable from this thread alone (an `Rc`
/// whose clones all live here), and none may be bound to this thread (an MPI communicator used
/// in `f`, a thread-local that `f` expects to be this thread's).
pub unsafe fn on_pool_unsent<R>(f: impl FnOnce() -> R) -> R {
    struct Carried<T>(T);
    // SAFETY: the caller's promise above; the calling thread waits inside `on_pool`.
    unsafe impl<T> Send for Carried<T> {}
    let f = Carried(f);
    on_pool(move || {
        let f = f; // the whole wrapper moves in, not its (unsent) field alone
        Carried((f.0)())
    })
    .0
}

#[cfg(test)]
mod tests {
    use super::on_pool;

    #[test]
    fn runs_on_a_pool_thread_and_returns_its_result() {
        assert!(rayon::current_thread_index().is_none());
        let (inside, value) = on_pool(|| (rayon::current_thread_index(), 7));
        assert!(inside.is_some());
        assert_eq!(value, 7);
        // Nested: in place, on the same thread.
        let (outer, inner) = on_pool(|| {
            let here = std::thread::current().id();
            (here, on_pool(|| std::thread::current().id()))
        });
        assert_eq!(outer, inner);
    }

    #[test]
    fn unsent_work_runs_on_the_pool_and_its_rc_comes_back() {
        let shared = std::rc::Rc::new(5);
        let held = shared.clone();
        // SAFETY: both clones of the `Rc` live on this thread, which waits meanwhile.
        let (inside, back) =
            unsafe { super::on_pool_unsent(move || (rayon::current_thread_index(), held.clone())) };
        assert!(inside.is_some());
        assert_eq!((*back, std::rc::Rc::strong_count(&shared)), (5, 2));
    }
}
