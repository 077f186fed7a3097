//! No allocation per row, per chunk, per sampler step or per minibatch: once warm, a call
//! allocates a fixed number of times whatever its size. Counted by a global allocator, in
//! one test (the count is process-wide: other tests running beside it would add theirs).

mod common;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use scorematch_core::engine::PerRow;
use scorematch_core::langevin::{self, Config, Method};
use scorematch_core::objective::{Keys, Objective, Projection};
use scorematch_core::train::{self, Data, Loss, Trainer};
use scorematch_core::{engine, Activation, Model, Real, Rows};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counter has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations made (on any thread) while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// The allocations of `call(n)` for a small and a large `n` (many chunks, steps or
/// minibatches), after warm-up calls of both sizes (a small call runs on the calling thread,
/// a large one on the pool's: each thread sizes its workspaces once): at most `most` each.
fn fixed(what: &str, small: usize, large: usize, most: usize, mut call: impl FnMut(usize)) {
    for _ in 0..4 {
        call(large);
        call(small);
    }
    for _ in 0..3 {
        let a = allocations(|| call(small));
        let b = allocations(|| call(large));
        assert!(
            a <= most && b <= most,
            "{what}: {a} allocations for {small}, {b} for {large} (at most {most} allowed)"
        );
    }
}

fn per_row<T: Real>(m: &Model<T>) {
    let d = m.mlp().dim();
    let x: Vec<T> = cast(&data(20_000, d, 1.5, 3));
    let mut out = vec![T::zero(); x.len()];
    let rows = |n: usize| Rows::from_slice(&x[..n * d], n, d).unwrap();
    // None of ours (each thread's workspace is sized once); Rayon's queue of jobs sent to its
    // pool allocates a block every 63 calls, hence 1. 20 000 rows are tens of chunks or more.
    for op in [PerRow::Energy, PerRow::Score, PerRow::HessianTrace] {
        assert!(20_000 / engine::chunk_rows(m, op) >= 10, "{op:?}");
    }
    fixed("energy", 7, 20_000, 1, |n| {
        engine::energy(m, rows(n), &mut out[..n]).unwrap()
    });
    fixed("score", 7, 20_000, 1, |n| {
        engine::score(m, rows(n), &mut out[..n * d]).unwrap()
    });
    fixed("hessian_trace", 7, 20_000, 1, |n| {
        engine::hessian_trace(m, rows(n), &mut out[..n]).unwrap()
    });
    let target: Vec<T> = cast(&data(20_000, d, 1.0, 4));
    let mut grad = vec![T::zero(); m.mlp().n_params()];
    let objectives = |n: usize| {
        [
            Objective::Ism,
            Objective::Esm {
                target: Rows::from_slice(&target[..n * d], n, d).unwrap(),
            },
            Objective::Ssm {
                n_projections: 2,
                projection: Projection::Gaussian,
                seed: 5,
                keys: Keys::Position,
            },
            Objective::Dsm {
                noise_std: 0.1,
                seed: 6,
                keys: Keys::Position,
            },
        ]
    };
    for k in 0..4 {
        let name = objectives(1)[k].name();
        // Each chunk's partial gradient is a vector from a per-thread pool of spares, given
        // back to the pool of the thread that adds it into another: with work stealing, a
        // thread can run short and allocate a few (2-3 a call measured, at 1 to 18 000
        // chunks), never one per chunk (here 50 to 150 chunks).
        fixed(name, 7, 5_000, 16, |n| {
            let obj = objectives(n).into_iter().nth(k).unwrap();
            engine::loss_and_grad(m, rows(n), obj, &mut grad).unwrap();
        });
    }
}

fn sampler<T: Real>(m: &Model<T>) {
    for method in [Method::Ula, Method::Mala] {
        // The sampler's state (per chunk of chains) and the outputs are allocated when a run
        // starts and ends, not per step: about the same count for 2 steps as for 100 (Rayon's
        // job queues allocate now and then on their own: a few either way).
        let run = |steps: usize| {
            let cfg = Config::new(method, steps, 1e-2, 1.0, 7);
            allocations(|| {
                langevin::sample(m, 1000, None, cfg, false).unwrap();
            })
        };
        run(100);
        for _ in 0..3 {
            let (few, many) = (run(2), run(100));
            assert!(
                many <= few + 8,
                "{method:?}: {few} allocations for 2 steps, {many} for 100"
            );
        }
    }
}

fn trainer<T: Real>(m: &Model<T>) {
    let d = m.mlp().dim();
    let x = data(4096, d, 1.0, 8);
    for loss in [Loss::Ism, Loss::Dsm { noise_std: 0.1 }] {
        let cfg = train::Config {
            loss,
            ..train::Config::new(1, 32, 1e-3, 9)
        };
        let mut tr =
            Trainer::new(m.clone(), Data::new(cast(&x), d, "X").unwrap(), None, cfg).unwrap();
        // The first step sizes the minibatch buffers and the permutation. A minibatch of 32
        // rows is one chunk, computed on this thread (no Rayon job).
        assert!(!tr.run_for(Duration::ZERO).unwrap());
        // Minibatches: none at all, however many.
        let one = allocations(|| assert!(!tr.run_for(Duration::ZERO).unwrap()));
        let many = allocations(|| {
            for _ in 0..50 {
                tr.run_for(Duration::ZERO).unwrap();
            }
        });
        assert_eq!((one, many), (0, 0), "{loss:?} minibatches");
    }
}

#[test]
fn calls_allocate_a_fixed_number_of_times_whatever_their_size() {
    // Two threads, whatever the machine: each sizes its workspaces on its first chunk, and
    // the warm-up calls must have given every thread one (with 8 or more, a thread's first
    // chunk could fall in a measured call).
    scorematch_core::parallel::set_num_threads(2).unwrap();
    for act in [Activation::Softplus, Activation::Tanh] {
        let m32 = model::<f32>(5, &[32, 48], act, 0.5, 1);
        let m64 = model::<f64>(5, &[32, 48], act, 0.5, 1);
        per_row(&m32);
        per_row(&m64);
        sampler(&m32);
        sampler(&m64);
        trainer(&m32);
        trainer(&m64);
    }
}
