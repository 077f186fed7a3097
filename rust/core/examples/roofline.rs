//! What bounds the passes on this machine, measured with the engine's own kernel: the rates
//! that decide whether a benchmark row can still get faster.
//!
//! cargo run --release --example roofline [-- --quick]
//!
//! 1. **Kernel rate, one thread**: `c = a·B` with `B` packed once, on the shapes of the passes
//!    (a chunk of rows through a hidden layer). A pass that is all GEMM cannot beat it.
//! 2. **Both cores at once**: the same products on two threads, each its own data, started
//!    together, against one thread alone, in alternating rounds. What each thread keeps bounds
//!    how well a 2-thread call can scale, whatever the code: a VM's cores can share clock and
//!    power headroom, the last-level cache, and the host's other tenants.
//! 3. **One row**: `m = 1` products cycling over four packed matrices, as one point's score
//!    does (the forward and reverse layouts of its two 64 × 64 hidden layers). Each weight is
//!    read once per call for one multiply-add, so the rate is bytes per ns from the cache level
//!    the matrices fit in (four do not fit a 32 KiB L1); one small matrix that stays in L1 is
//!    the contrast.
//!
//! Each figure is the median of the rounds (7, or 3 with `--quick`); every round times calls
//! filling at least 30 ms, after one untimed call.

use scorematch_core::gemm::{backend, Rhs};
use scorematch_core::Real;
use std::hint::black_box;
use std::time::Duration;

#[path = "support/timing.rs"]
mod timing;
use timing::{median, time_block};

/// A product `c (m×n) = a (m×k) · B` with its own operands.
struct Product<T> {
    rhs: Rhs<T>,
    a: Vec<T>,
    c: Vec<T>,
}

impl<T: Real> Product<T> {
    fn new(m: usize, k: usize, n: usize, salt: usize) -> Self {
        let w: Vec<T> = (0..k * n)
            .map(|i| T::c(((i * 7 + salt) % 13) as f64 * 0.05 - 0.3))
            .collect();
        let a = (0..m * k)
            .map(|i| T::c(((i * 5 + salt) % 11) as f64 * 0.1 - 0.5))
            .collect();
        Product {
            rhs: Rhs::new(&w, k, n),
            a,
            c: vec![T::zero(); m * n],
        }
    }

    fn run(&mut self) {
        self.rhs.mul(black_box(&self.a), &mut self.c, false);
        black_box(&self.c);
    }
}

fn flops(m: usize, k: usize, n: usize) -> f64 {
    2.0 * (m * k * n) as f64
}

/// Section 1 and 2 for one shape: GFLOP/s of one thread alone, and of each of two threads
/// running at once.
fn cores<T: Real>(m: usize, k: usize, n: usize, rounds: usize, block: Duration) -> (f64, f64) {
    let mut alone = Vec::new();
    let mut together = Vec::new();
    let mut p = Product::<T>::new(m, k, n, 0);
    for _ in 0..rounds {
        alone.push(time_block(block, || p.run()));
        let times: Vec<f64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|t| {
                    s.spawn(move || {
                        let mut q = Product::<T>::new(m, k, n, t + 1);
                        time_block(block, || q.run())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        together.extend(times);
    }
    let f = flops(m, k, n);
    (f / median(alone) / 1e9, f / median(together) / 1e9)
}

/// Section 3: KiB of weights per matrix, ns per one-row product and bytes of packed weights
/// read per ns, cycling over `mats` matrices of (k × n).
fn one_row<T: Real>(
    k: usize,
    n: usize,
    mats: usize,
    rounds: usize,
    block: Duration,
) -> (usize, f64, f64) {
    let mut ps: Vec<Product<T>> = (0..mats).map(|i| Product::new(1, k, n, i)).collect();
    let times: Vec<f64> = (0..rounds)
        .map(|_| {
            time_block(block, || {
                for p in ps.iter_mut() {
                    p.run();
                }
            }) / mats as f64
        })
        .collect();
    let ns = median(times) * 1e9;
    let bytes = k * n * std::mem::size_of::<T>();
    (bytes / 1024, ns, bytes as f64 / ns)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 7 };
    let block = Duration::from_millis(if quick { 10 } else { 30 });
    println!("# What bounds the passes: the engine's GEMM kernel on this machine\n");
    println!(
        "- GEMM kernel: {}; {} logical CPUs; {rounds} rounds, medians\n",
        backend(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    println!("## Kernel rate: one thread alone, and each of two threads computing at once\n");
    println!(
        "| dtype | shape (m, k, n) | pass | one thread GFLOP/s | each of two GFLOP/s | kept |"
    );
    println!("|---|---|---|---:|---:|---:|");
    // m: the rows of one float32 engine chunk at that width (forward::chunk_rows; float64
    // takes 16 at width 128), k × n: the layer.
    let shapes = [
        (32, 128, 128, "L2/S2 hidden layer, 32-row chunk"),
        (16, 256, 256, "S3 hidden layer, 16-row chunk"),
        (256, 256, 256, "S3 Laplacian rows (tall)"),
    ];
    for (m, k, n, what) in shapes {
        for dtype in ["float32", "float64"] {
            let (one, two) = if dtype == "float32" {
                cores::<f32>(m, k, n, rounds, block)
            } else {
                cores::<f64>(m, k, n, rounds, block)
            };
            println!(
                "| {dtype} | ({m}, {k}, {n}) | {what} | {one:.1} | {two:.1} | {:.0} % |",
                100.0 * two / one
            );
        }
    }

    println!("\n## One row: a single point's products (m = 1), one thread\n");
    println!(
        "| dtype | (k, n) | matrices cycled | packed bytes each | ns per product | bytes per ns |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for dtype in ["float32", "float64"] {
        for (k, n, mats) in [(64, 64, 4), (16, 64, 1)] {
            let (kib, ns, bpns) = if dtype == "float32" {
                one_row::<f32>(k, n, mats, rounds, block)
            } else {
                one_row::<f64>(k, n, mats, rounds, block)
            };
            println!("| {dtype} | ({k}, {n}) | {mats} | {kib} KiB | {ns:.0} | {bpns:.0} |");
        }
    }
}
