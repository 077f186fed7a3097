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

/// Frees the idle workspaces of this thread and of every thread of the pool (one in use by a
/// running chunk is not idle and stays). Blocks until every pool thread has taken its turn.
/// For a request the allocator refused ([`crate::error::check_reservable`]): the memory may
/// be held by workspaces that no call is using.
pub fn release_idle() {
    fn here() {
        // Taken out first: dropping a workspace runs no code that could touch the cache, but
        // the borrow then ends before any of them does.
        let idle = CACHE.with(|c| std::mem::take(&mut *c.borrow_mut()));
        drop(idle);
    }
    here();
    crate::parallel::on_every_thread(here);
}

/// Bytes of the workspaces of a call on `n` rows in chunks of `chunk`: `bytes(c)` for a chunk
/// of c rows, once per thread that gets a chunk (`None`: more than `usize` holds).
pub fn workspaces_bytes(
    n: usize,
    chunk: usize,
    bytes: impl Fn(usize) -> Option<usize>,
) -> Option<usize> {
    let chunks = n.div_ceil(chunk.max(1));
    // One chunk runs on one thread; the thread count (a lock to read) matters only for more.
    let holders = if chunks <= 1 {
        chunks
    } else {
        crate::parallel::num_threads().min(chunks)
    };
    bytes(chunk.min(n))?.checked_mul(holders)
}

/// Spare vectors of this thread, for reductions whose partial results are vectors (the
/// gradient of a chunk): a leaf takes one, a combine gives back the one it absorbed.
struct Spares<T>(Vec<Vec<T>>);

impl<T> Default for Spares<T> {
    fn default() -> Self {
        Spares(Vec::new())
    }
}

/// Most spare vectors a thread keeps: a reduction tree holds about log₂(chunks) partial
/// results per thread at once.
const MAX_SPARES: usize = 16;

/// A vector of `len` zeros, reusing a spare one of this thread when there is one.
pub fn take_zeroed<T: Any + Copy + Default>(len: usize) -> Vec<T> {
    match with_workspace(|s: &mut Spares<T>| s.0.pop()) {
        Some(mut v) => {
            v.clear();
            v.resize(len, T::default());
            v
        }
        None => vec![T::default(); len],
    }
}

/// Keeps `v` for a later [`take_zeroed`] on this thread.
pub fn give_back<T: Any>(v: Vec<T>) {
    with_workspace(|s: &mut Spares<T>| {
        if s.0.len() < MAX_SPARES {
            s.0.push(v);
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A value type of its own, so that no other test shares these spares.
    #[derive(Clone, Copy, Default, Debug, PartialEq)]
    struct Probe(u8);

    #[test]
    fn spares_are_zeroed_reused_and_capped() {
        let mut v = vec![Probe(9); 3];
        v.reserve(1000);
        give_back(v);
        let w = take_zeroed::<Probe>(5);
        assert_eq!(w, vec![Probe(0); 5]);
        assert!(w.capacity() >= 1003, "the spare was not reused");
        // One more than the cap is given back: the cap are kept, the last is dropped.
        for _ in 0..=MAX_SPARES {
            give_back(Vec::<Probe>::with_capacity(1000));
        }
        let reused = (0..=MAX_SPARES)
            .filter(|_| take_zeroed::<Probe>(1).capacity() >= 1000)
            .count();
        assert_eq!(reused, MAX_SPARES);
    }

    #[test]
    fn workspaces_are_counted_once_per_thread_that_gets_a_chunk() {
        let bytes = |c: usize| Some(10 * c);
        assert_eq!(workspaces_bytes(0, 8, bytes), Some(0));
        assert_eq!(workspaces_bytes(5, 8, bytes), Some(50));
        assert_eq!(workspaces_bytes(8, 8, bytes), Some(80));
        // Many chunks: one workspace per thread (the count may change under a concurrent
        // test that sets the pool, hence the two readings).
        let before = crate::parallel::num_threads();
        let got = workspaces_bytes(800, 8, bytes);
        let after = crate::parallel::num_threads();
        assert!(
            [before, after]
                .iter()
                .any(|&t| got == Some(80 * t.min(100))),
            "{got:?} for {before}/{after} threads"
        );
        assert_eq!(workspaces_bytes(3, 8, |_| None), None);
    }
}
