//! GEMM backends on the engine's exact shapes, one thread, f32 and f64, in GFLOP/s.
//!
//! `cargo bench -p scorematch-core --bench gemm --features compare-backends` (release profile). Compare with
//! `benchmarks/gemm_numpy.py` (numpy/OpenBLAS, `OPENBLAS_NUM_THREADS=1`); the measured table
//! lives in `benchmarks/gemm_backends.md`. An optional argument filters the rows by backend
//! name (e.g. `cargo bench -p scorematch-core --bench gemm --features compare-backends -- ours`).
//!
//! `mul` rows: `c (m×n) = a (m×k) · w (k×n)`, all row-major, as [`Rhs::mul`] does (for the
//! library backends the weight is passed as a row-major matrix; they pack it on every call,
//! ours packs it once). `tn` rows: `c (m×n) += aᵀ · b` with `a (r×m)`, `b (r×n)`, as
//! [`matmul_tn`] does.

use std::hint::black_box;
use std::time::{Duration, Instant};

use scorematch_core::gemm::{matmul_tn, Rhs};
use scorematch_core::Real;

/// The engine's shapes: (m, k, n) for `mul`.
const MUL_SHAPES: &[(usize, usize, usize)] = &[
    (512, 64, 64),     // S1 (dim 2, width 64): TARGET_ROWS stacked rows
    (512, 128, 128),   // S2 (dim 16, width 128)
    (528, 256, 256),   // S3 (dim 64, width 256): 8 samples × 66 rows
    (16384, 256, 256), // a tall block, for the asymptotic rate
    (256, 16, 128),    // score pass, first layer of S2
    (256, 64, 256),    // score pass, first layer of S3
];
/// (r, m, n) for `tn`: the weight gradient of an S3 layer over one chunk.
const TN_SHAPES: &[(usize, usize, usize)] = &[(528, 256, 256), (528, 128, 128), (512, 64, 64)];

/// One backend's entry points for one scalar type.
trait Backends: Real {
    fn faer_mul(a: &[Self], w: &[Self], c: &mut [Self], m: usize, k: usize, n: usize);
    fn faer_tn(a: &[Self], b: &[Self], c: &mut [Self], r: usize, m: usize, n: usize);
    fn mm_mul(a: &[Self], w: &[Self], c: &mut [Self], m: usize, k: usize, n: usize);
    fn mm_tn(a: &[Self], b: &[Self], c: &mut [Self], r: usize, m: usize, n: usize);
}

macro_rules! backends {
    ($t:ty, $mm:ident) => {
        impl Backends for $t {
            fn faer_mul(a: &[$t], w: &[$t], c: &mut [$t], m: usize, k: usize, n: usize) {
                let a = faer::MatRef::from_row_major_slice(a, m, k);
                let w = faer::MatRef::from_row_major_slice(w, k, n);
                let c = faer::MatMut::from_row_major_slice_mut(c, m, n);
                faer::linalg::matmul::matmul(c, faer::Accum::Replace, a, w, 1.0, faer::Par::Seq);
            }
            fn faer_tn(a: &[$t], b: &[$t], c: &mut [$t], r: usize, m: usize, n: usize) {
                let a = faer::MatRef::from_row_major_slice(a, r, m);
                let b = faer::MatRef::from_row_major_slice(b, r, n);
                let c = faer::MatMut::from_row_major_slice_mut(c, m, n);
                faer::linalg::matmul::matmul(
                    c,
                    faer::Accum::Add,
                    a.transpose(),
                    b,
                    1.0,
                    faer::Par::Seq,
                );
            }
            fn mm_mul(a: &[$t], w: &[$t], c: &mut [$t], m: usize, k: usize, n: usize) {
                assert!(a.len() == m * k && w.len() == k * n && c.len() == m * n);
                // SAFETY: the lengths are checked; all three are contiguous row-major.
                unsafe {
                    matrixmultiply::$mm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        w.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            }
            fn mm_tn(a: &[$t], b: &[$t], c: &mut [$t], r: usize, m: usize, n: usize) {
                assert!(a.len() == r * m && b.len() == r * n && c.len() == m * n);
                // SAFETY: the lengths are checked; aᵀ is read through swapped strides.
                unsafe {
                    matrixmultiply::$mm(
                        m,
                        r,
                        n,
                        1.0,
                        a.as_ptr(),
                        1,
                        m as isize,
                        b.as_ptr(),
                        n as isize,
                        1,
                        1.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            }
        }
    };
}
backends!(f32, sgemm);
backends!(f64, dgemm);

/// `dst = [dst +] lhs · rhs` through the `gemm` crate, row-major, one thread.
#[allow(clippy::too_many_arguments)]
fn gemm_crate<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[T],
) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    // SAFETY: the lengths are checked and the strides describe those slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            1,
            n as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Repetitions per timed batch so that one batch lasts at least 2 ms.
fn calibrate(f: &mut dyn FnMut()) -> u32 {
    f();
    let mut reps = 1u32;
    loop {
        let t0 = Instant::now();
        for _ in 0..reps {
            f();
        }
        if t0.elapsed() >= Duration::from_millis(2) {
            return reps;
        }
        reps *= 2;
    }
}

/// Best time per call of each backend. This 2-core VM shares its host: its speed drifts by
/// tens of percent over seconds. So the backends take turns — `ROUNDS` rounds, each giving
/// every backend 60 ms of 2 ms batches — and each keeps its fastest batch: all meet the same
/// drift, and a batch interrupted by another process does not count.
/// A backend under test: its name and one timed call.
type Backend<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn time_all(backends: &mut [Backend<'_>]) -> Vec<Duration> {
    const ROUNDS: usize = 8;
    let reps: Vec<u32> = backends.iter_mut().map(|(_, f)| calibrate(f)).collect();
    let mut best = vec![Duration::MAX; backends.len()];
    for _ in 0..ROUNDS {
        for ((_, f), (&reps, best)) in backends.iter_mut().zip(reps.iter().zip(&mut best)) {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(60) {
                let t0 = Instant::now();
                for _ in 0..reps {
                    f();
                }
                *best = (*best).min(t0.elapsed() / reps);
            }
        }
    }
    best
}

fn fill<T: Real>(len: usize, seed: usize) -> Vec<T> {
    (0..len)
        .map(|i| T::c(((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.0 - 1.0))
        .collect()
}

fn report(ty: &str, label: &str, dims: &str, backend: &str, flops: f64, dt: Duration) {
    let gflops = flops / dt.as_secs_f64() / 1e9;
    println!("{ty:8} {label:6} {dims}  {backend:15} {gflops:7.1} GFLOP/s");
}

type Bench<'a> = Vec<(&'static str, Box<dyn FnMut() + 'a>)>;

fn measure(ty: &str, label: &str, dims: &str, flops: f64, filter: &str, mut backends: Bench) {
    backends.retain(|(name, _)| filter.is_empty() || name.contains(filter));
    let times = time_all(&mut backends);
    for ((name, _), dt) in backends.iter().zip(times) {
        report(ty, label, dims, name, flops, dt);
    }
}

fn run<T: Backends>(filter: &str) {
    let ty = T::NAME;
    for &(m, k, n) in MUL_SHAPES {
        let a = fill::<T>(m * k, 1);
        let w = fill::<T>(k * n, 2);
        let rhs = Rhs::new(&w, k, n);
        let mut c = [(); 4].map(|_| vec![T::zero(); m * n]);
        let [c0, c1, c2, c3] = &mut c;
        let (a, w) = (&a, &w);
        let backends: Bench = vec![
            (
                "faer",
                Box::new(move || T::faer_mul(black_box(a), w, c0, m, k, n)),
            ),
            (
                "gemm-crate",
                Box::new(move || gemm_crate(m, n, k, c1, false, black_box(a), k as isize, 1, w)),
            ),
            (
                "matrixmultiply",
                Box::new(move || T::mm_mul(black_box(a), w, c2, m, k, n)),
            ),
            ("ours", Box::new(|| rhs.mul(black_box(a), c3, false))),
        ];
        let dims = format!("m={m:6} k={k:4} n={n:4}");
        measure(ty, "mul", &dims, 2.0 * (m * k * n) as f64, filter, backends);
    }
    for &(r, m, n) in TN_SHAPES {
        let a = fill::<T>(r * m, 3);
        let b = fill::<T>(r * n, 4);
        let mut c = [(); 4].map(|_| vec![T::zero(); m * n]);
        let [c0, c1, c2, c3] = &mut c;
        let (a, b) = (&a, &b);
        let backends: Bench = vec![
            (
                "faer",
                Box::new(move || T::faer_tn(black_box(a), b, c0, r, m, n)),
            ),
            (
                "gemm-crate",
                Box::new(move || gemm_crate(m, n, r, c1, true, black_box(a), 1, m as isize, b)),
            ),
            (
                "matrixmultiply",
                Box::new(move || T::mm_tn(black_box(a), b, c2, r, m, n)),
            ),
            (
                "ours",
                Box::new(move || matmul_tn(black_box(a), b, c3, m, n)),
            ),
        ];
        let dims = format!("r={r:6} m={m:4} n={n:4}");
        measure(ty, "tn", &dims, 2.0 * (r * m * n) as f64, filter, backends);
    }
}

/// Our `mul` against the number of stacked rows per chunk (`TARGET_ROWS` in laplacian.rs):
/// `cargo bench -p scorematch-core --bench gemm --features compare-backends -- sweep`. The row counts of one width take turns, as the
/// backends do in [`time_all`].
fn sweep<T: Backends>() {
    const ROWS: [usize; 7] = [64, 128, 256, 512, 1024, 2048, 4096];
    for width in [64, 128, 256] {
        let w = fill::<T>(width * width, 2);
        let rhs = Rhs::new(&w, width, width);
        let a: Vec<Vec<T>> = ROWS.iter().map(|&m| fill::<T>(m * width, 1)).collect();
        let mut c: Vec<Vec<T>> = ROWS.iter().map(|&m| vec![T::zero(); m * width]).collect();
        let rhs = &rhs;
        let mut runs: Bench = a
            .iter()
            .zip(c.iter_mut())
            .map(|(a, c)| -> (&'static str, Box<dyn FnMut() + '_>) {
                ("ours", Box::new(move || rhs.mul(black_box(a), c, false)))
            })
            .collect();
        let times = time_all(&mut runs);
        for (&m, dt) in ROWS.iter().zip(times) {
            let dims = format!("m={m:6} k={width:4} n={width:4}");
            let flops = 2.0 * (m * width * width) as f64;
            report(T::NAME, "sweep", &dims, "ours", flops, dt);
        }
    }
}

fn main() {
    println!("# our path: {}", scorematch_core::gemm::backend());
    // `cargo bench` passes `--bench`; any other argument filters by backend name.
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_default();
    if filter == "sweep" {
        sweep::<f32>();
        sweep::<f64>();
        return;
    }
    run::<f32>(&filter);
    run::<f64>(&filter);
}
