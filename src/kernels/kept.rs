//! Recurrent weights laid out once per loaded model, not once per batch: for a model whose
//! weights no longer change (a served model), a thread may keep each `W_hh`'s [`Panels`] across
//! calls. An entry is keyed by the weight's storage (address and length) and holds a clone of
//! that storage, so the address cannot be reused by other values while the entry lives, and no
//! in-place op can change the values under it (the storage is shared, so Burn copies before
//! writing). Off by default: in training every step brings new weights, and keeping them would
//! only hold memory. At most [`CAPACITY`] weights a thread, the oldest dropped first.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use burn_flex::FlexTensor;

use super::op::Buf;
use super::panels::Panels;

/// Weights kept per thread at most.
pub const CAPACITY: usize = 32;

struct Entry {
    at: (usize, usize),
    _storage: FlexTensor,
    panels: Arc<Panels>,
}

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static KEPT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    static HITS: Cell<u64> = const { Cell::new(0) };
}

/// Keeps (or, `false`, stops keeping and forgets) laid-out recurrent weights on this thread.
pub fn keep_laid_out_weights(on: bool) {
    ON.with(|o| o.set(on));
    if !on {
        KEPT.with(|k| k.borrow_mut().clear());
    }
}

/// Calls on this thread that found their weight already laid out.
pub fn reuses() -> u64 {
    HITS.with(|h| h.get())
}

/// `w`'s panels (`[rows, k]` from row-major `w`): kept ones when this thread keeps them and `w`
/// is a shared storage, else laid out now.
pub fn panels(w: &Buf, rows: usize, k: usize) -> Arc<Panels> {
    let Buf::Flex(t) = w else {
        return Arc::new(Panels::pack(w, rows, k));
    };
    if !ON.with(|o| o.get()) {
        return Arc::new(Panels::pack(w, rows, k));
    }
    let at = (w.as_ptr() as usize, w.len());
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some(e) = kept.iter().find(|e| e.at == at) {
            HITS.with(|h| h.set(h.get() + 1));
            return e.panels.clone();
        }
        let panels = Arc::new(Panels::pack(w, rows, k));
        if kept.len() == CAPACITY {
            kept.remove(0);
        }
        kept.push(Entry {
            at,
            _storage: t.clone(),
            panels: panels.clone(),
        });
        panels
    })
}
