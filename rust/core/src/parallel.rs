//! The thread pool and the two deterministic parallel patterns of the engine.
//!
//! Work is cut into chunks whose size depends only on the problem's shape, never on the
//! number of threads. Per-row outputs are written to disjoint slices; sums (losses,
//! gradients) are combined over a binary tree fixed by the chunk count, so the result is
//! bit-identical for any number of threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// The pool calls run in: set by [`set_num_threads`], or started with the default count on
/// first use ([`default_threads`]). Rayon's global pool is never used: it panics when its
/// threads cannot start, and then on every later use, where ours is an error and is tried
/// again on the next call.
static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

/// Set in a child process after `fork` (see [`forget_threads_after_fork`]).
static FORKED: AtomicBool = AtomicBool::new(false);

/// Upper bound on [`set_num_threads`]: well past any machine, low enough to refuse typos.
pub const MAX_THREADS: usize = 4096;

/// Uses `n` worker threads for all later calls (1 ≤ n ≤ [`MAX_THREADS`]).
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 || n > MAX_THREADS {
        return Err(Error::Value(format!(
            "the number of threads must be between 1 and {MAX_THREADS}, got {n}"
        )));
    }
    replace_pool(Arc::new(build(n)?));
    Ok(())
}

/// Makes `pool` the one calls use. In the child of a fork, the pool it replaces is leaked,
/// not dropped: its threads are not here to be stopped.
fn replace_pool(pool: Arc<ThreadPool>) {
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    let old = slot.replace(pool);
    // Under the lock: of two threads of a child replacing at once, only the first takes the
    // parent's pool, and the second drops the first's, whose threads are here.
    let forked = FORKED.swap(false, Ordering::SeqCst);
    drop(slot);
    if forked {
        std::mem::forget(old);
    }
}

fn build(n: usize) -> Result<ThreadPool> {
    // Before any worker exists: a fork between this pool's start and its first use must be
    // seen too.
    watch_forks();
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("scorematch-{i}"))
        .build()
        .map_err(|e| {
            Error::System(format!(
                "cannot start {n} worker threads ({e}): the system refused a thread; ask for \
                 fewer with set_num_threads or RAYON_NUM_THREADS"
            ))
        })
}

/// Declares that this process is the child of a `fork`: only the forking thread exists here,
/// so a pool whose workers ran in the parent would wait for them forever. The next call
/// starts a new pool of the same size instead. Registered with `pthread_atfork` before any
/// pool of ours starts, so that `multiprocessing` workers, Dask's process scheduler and
/// forking servers compute instead of hanging. It only stores a flag: async-signal-safe, as
/// a fork handler must be.
extern "C" fn forget_threads_after_fork() {
    FORKED.store(true, Ordering::SeqCst);
}

#[cfg(unix)]
fn watch_forks() {
    unsafe extern "C" {
        // POSIX; in the C library every unix target links.
        fn pthread_atfork(
            prepare: Option<extern "C" fn()>,
            parent: Option<extern "C" fn()>,
            child: Option<extern "C" fn()>,
        ) -> std::ffi::c_int;
    }
    static ONCE: Once = Once::new();
    // SAFETY: registers a handler that only stores to an atomic.
    ONCE.call_once(|| unsafe {
        pthread_atfork(None, None, Some(forget_threads_after_fork));
    });
}

#[cfg(not(unix))]
fn watch_forks() {}

/// The pool to run in: the configured one, a new one after a fork, or one of the default
/// size on first use; an error if its threads cannot start (under a process or memory
/// limit), to be tried again by the next call.
fn current_pool() -> Result<Arc<ThreadPool>> {
    watch_forks();
    if FORKED.load(Ordering::SeqCst) {
        let parents = POOL.read().unwrap_or_else(|e| e.into_inner()).clone();
        let n = parents.map_or_else(default_threads, |p| p.current_num_threads());
        // Fewer threads if the system refuses n.
        let pool = Arc::new(build(n).or_else(|_| build(1))?);
        replace_pool(pool.clone());
        return Ok(pool);
    }
    let configured = || POOL.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(pool) = configured() {
        return Ok(pool);
    }
    // One thread starts the default pool while others wait: two pools at once could fail
    // where one fits (a process limit). Not under POOL's lock: a fork while the threads
    // start (seconds, for thousands) would leave the child waiting for it forever, and
    // `num_threads`, called with the GIL held, would stall the interpreter meanwhile. A
    // child never waits here: its first call takes the fork's path above.
    static STARTING: Mutex<()> = Mutex::new(());
    let _starting = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pool) = configured() {
        return Ok(pool);
    }
    let pool = Arc::new(build(default_threads())?);
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = slot.clone() {
        // A set_num_threads meanwhile wins; this pool's threads are stopped outside the lock.
        drop(slot);
        drop(pool);
        return Ok(set);
    }
    *slot = Some(pool.clone());
    Ok(pool)
}

/// The thread count where [`set_num_threads`] did not choose: `RAYON_NUM_THREADS` as Rayon
/// reads it (a count > 0 by `usize::from_str`, untrimmed; here also at most
/// [`MAX_THREADS`]), else `OMP_NUM_THREADS` ([`omp_threads`]), else one per CPU this process
/// may use, as Rayon's default.
fn default_threads() -> usize {
    let rayon = std::env::var("RAYON_NUM_THREADS").ok();
    rayon
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=MAX_THREADS).contains(n))
        .or_else(|| omp_threads(std::env::var("OMP_NUM_THREADS").ok().as_deref()))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_THREADS)
        })
}

/// The thread count that `OMP_NUM_THREADS` asks for (its first entry, as OpenMP reads a list
/// of nesting levels), when valid: 1 to [`MAX_THREADS`]. It is the default where neither
/// [`set_num_threads`] nor `RAYON_NUM_THREADS` chose, because the launchers of worker
/// processes set it to share the cores among them (joblib's loky: cores / n_jobs each;
/// Dask's nanny: 1); every worker starting one thread per core would oversubscribe them
/// n_jobs times over.
fn omp_threads(value: Option<&str>) -> Option<usize> {
    let first = value?.split(',').next()?.trim();
    first
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_THREADS).contains(n))
}

/// The number of worker threads calls will use (the pool's, or the default count before
/// the pool starts: asking does not start it).
pub fn num_threads() -> usize {
    match &*POOL.read().unwrap_or_else(|e| e.into_inner()) {
        Some(pool) => pool.current_num_threads(),
        None => default_threads(),
    }
}

/// Runs `f` inside the pool calls use; on a worker thread of a Rayon pool already (ours, or
/// a caller's own, as Rayon runs nested parallel work), in that pool. So a Rust caller
/// chooses the threads by running us inside its pool (the tests compare thread counts so),
/// and a call from a Python library's Rayon pool (a polars function) runs on that pool's
/// threads instead of starting ours.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    if rayon::current_thread_index().is_some() {
        return Ok(f());
    }
    Ok(current_pool()?.install(f))
}

/// Runs `f` once on every thread of the pool calls use, and waits for all of them; nothing
/// if that pool's threads cannot start (then no thread of it holds anything).
pub fn on_every_thread(f: impl Fn() + Sync) {
    let _ = install(|| {
        rayon::broadcast(|_| f());
    });
}

/// Calls `f(i, piece)` for the pieces `out.chunks_mut(piece_len)`, in parallel.
pub fn for_each_chunk_mut<T: Send>(
    out: &mut [T],
    piece_len: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) -> Result<()> {
    use rayon::prelude::*;
    let piece_len = piece_len.max(1);
    if out.len() <= piece_len {
        if !out.is_empty() {
            f(0, out);
        }
        return Ok(());
    }
    install(|| {
        out.par_chunks_mut(piece_len)
            .enumerate()
            .with_max_len(1)
            .for_each(|(i, piece)| f(i, piece))
    })
}

/// `leaf(0) ⊕ leaf(1) ⊕ … ⊕ leaf(n−1)` over a balanced binary tree fixed by `n` alone, so the
/// floating-point result does not depend on the number of threads. `n` must be ≥ 1.
///
/// Gives up (`None`) once `cancel` is raised: every subtree not yet started is skipped whole,
/// so a cancelled reduction returns within the time of the leaves already running. (Skipping
/// only the leaves still visited, and combined, all the others: 0.2 s for an SSM gradient
/// over 3·10⁶ rows.) The flag is only read, so the result does not depend on it otherwise.
/// An error if the pool's threads cannot start.
pub fn tree_reduce<A: Send>(
    n: usize,
    leaf: impl Fn(usize) -> A + Sync + Send,
    combine: impl Fn(&mut A, A) + Sync + Send,
    cancel: &AtomicBool,
) -> Result<Option<A>> {
    assert!(n >= 1, "tree_reduce needs at least one leaf");
    if n == 1 {
        return Ok(reduce_here(1, &leaf, &combine, cancel));
    }
    install(|| reduce_here(n, &leaf, &combine, cancel))
}

/// [`tree_reduce`] in the pool of the calling thread (Rayon's global one outside any).
fn reduce_here<A: Send>(
    n: usize,
    leaf: &(impl Fn(usize) -> A + Sync),
    combine: &(impl Fn(&mut A, A) + Sync),
    cancel: &AtomicBool,
) -> Option<A> {
    fn node<A: Send>(
        lo: usize,
        hi: usize,
        leaf: &(impl Fn(usize) -> A + Sync),
        combine: &(impl Fn(&mut A, A) + Sync),
        cancel: &AtomicBool,
    ) -> Option<A> {
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        if hi - lo == 1 {
            return Some(leaf(lo));
        }
        let mid = lo + (hi - lo) / 2;
        let (a, b) = rayon::join(
            || node(lo, mid, leaf, combine, cancel),
            || node(mid, hi, leaf, combine, cancel),
        );
        let (mut a, b) = (a?, b?);
        combine(&mut a, b);
        Some(a)
    }
    node(0, n, leaf, combine, cancel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omp_num_threads_is_read_as_openmp_reads_it() {
        assert_eq!(omp_threads(Some("3")), Some(3));
        assert_eq!(omp_threads(Some(" 4 ,2")), Some(4));
        for bad in ["", "0", "-1", "abc", "4097", ",2"] {
            assert_eq!(omp_threads(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(omp_threads(None), None);
    }

    #[test]
    fn tree_sums_do_not_depend_on_threads() {
        let xs: Vec<f32> = (0..1000).map(|i| 1.0 / (1.0 + i as f32)).collect();
        let sum = || {
            reduce_here(
                xs.len(),
                &|i| xs[i],
                &|a, b| *a += b,
                &AtomicBool::new(false),
            )
        };
        let one = ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(sum);
        let three = ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(sum);
        assert_eq!(one.unwrap().to_bits(), three.unwrap().to_bits());
    }

    #[test]
    fn a_cancelled_tree_skips_the_leaves_not_started() {
        use std::sync::atomic::AtomicUsize;
        let (cancel, visited) = (AtomicBool::new(false), AtomicUsize::new(0));
        let leaf = |i: usize| {
            visited.fetch_add(1, Ordering::Relaxed);
            if i == 10 {
                cancel.store(true, Ordering::Relaxed);
            }
            i
        };
        let one = ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let out = one.install(|| reduce_here(100_000, &leaf, &|a, b| *a += b, &cancel));
        assert_eq!(out, None);
        // One thread visits leaves in order: the eleventh raises the flag, no other runs.
        assert_eq!(visited.load(Ordering::Relaxed), 11);
    }

    #[test]
    fn calls_run_in_the_pool_that_was_set() {
        // The one test that sets the process's pool (results never depend on it).
        set_num_threads(3).unwrap();
        assert_eq!(num_threads(), 3);
        assert_eq!(install(rayon::current_num_threads).unwrap(), 3);
        let runs = std::sync::atomic::AtomicUsize::new(0);
        on_every_thread(|| {
            runs.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(runs.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn chunks_are_the_pieces_of_their_length() {
        for (len, piece) in [(10, 3), (9, 3), (3, 3), (2, 3), (1, 1), (0, 4), (5, 0)] {
            let mut out = vec![usize::MAX; len];
            for_each_chunk_mut(&mut out, piece, |i, p| p.fill(i)).unwrap();
            let piece = piece.max(1);
            let want: Vec<usize> = (0..len).map(|r| r / piece).collect();
            assert_eq!(out, want, "{len} values in pieces of {piece}");
        }
    }

    #[test]
    fn thread_counts_are_validated() {
        assert!(set_num_threads(0).is_err());
        assert!(set_num_threads(MAX_THREADS + 1).is_err());
    }
}
