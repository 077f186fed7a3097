//! Per-thread workspaces that outlive a call.
//!
//! Every worker thread keeps one workspace of each kind it has used. A chunk borrows its
//! thread's workspace, grows it if the shape needs more room, and gives it back: after the
//! first call of a given shape no pass allocates, and memory stays one workspace per thread.

use std::any::Any;
use std::cell::RefCell;

thread_local! {
    static CACHE: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's workspace of type `W`.
///
/// The workspace is taken out of the cache while `f` runs, so a re-entrant call (none is
/// expected) would get a fresh one instead of a borrow error.
pub fn with_workspace<W: Any + Default, R>(f: impl FnOnce(&mut W) -> R) -> R {
    let taken = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let pos = c.iter().position(|b| b.is::<W>());
        pos.map(|p| c.swap_remove(p))
    });
    let mut ws: Box<W> = match taken {
        Some(b) => b.downcast().expect("found by type"),
        None => Box::default(),
    };
    let out = f(&mut ws);
    CACHE.with(|c| c.borrow_mut().push(ws));
    out
}

/// Resizes `v` to `len` without ever shrinking its allocation. Contents are unspecified:
/// every pass writes a buffer before it reads it.
#[inline]
pub fn fit<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    } else {
        v.truncate(len);
    }
}

/// Resizes a list of buffers to `lens`, reusing the buffers already there.
pub fn fit_all<T: Copy + Default>(
    vs: &mut Vec<Vec<T>>,
    lens: impl ExactSizeIterator<Item = usize>,
) {
    vs.resize_with(lens.len(), Vec::new);
    for (v, len) in vs.iter_mut().zip(lens) {
        fit(v, len);
    }
}
