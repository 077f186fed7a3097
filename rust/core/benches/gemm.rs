//! GEMM backends on the engine's exact shapes, one thread, f32 and f64, in GFLOP/s.
//!
//! `cargo bench -p scorematch-core --bench gemm` (release profile). Compare with
//! `benchmarks/gemm_numpy.py` (numpy/OpenBLAS, `OPENBLAS_NUM_THREADS=1`); the measured table
//! lives in `benchmarks/gemm_backends.md`. An optional argument filters the rows by backend
//! name (e.g. `cargo bench --bench gemm -- ours`).
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
const TN_SHAPES: &[(usize, usize, usize)] = &[(528, 256, 256), (512, 64, 64)];

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

/// Best time per call over a few repetitions of a batch lasting at least ~0.15 s.
fn time(mut f: impl FnMut()) -> Duration {
    f();
    let mut reps = 1u32;
    let batch = loop {
        let t0 = Instant::now();
        for _ in 0..reps {
            f();
        }
        let dt = t0.elapsed();
        if dt > Duration::from_millis(150) {
            break dt;
        }
        reps *= 2;
    };
    let mut best = batch / reps;
    for _ in 0..4 {
        let t0 = Instant::now();
        for _ in 0..reps {
            f();
        }
        best = best.min(t0.elapsed() / reps);
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

fn run<T: Backends>(filter: &str) {
    let want = |name: &str| filter.is_empty() || name.contains(filter);
    let ty = T::NAME;
    for &(m, k, n) in MUL_SHAPES {
        let a = fill::<T>(m * k, 1);
        let w = fill::<T>(k * n, 2);
        let mut c = vec![T::zero(); m * n];
        let flops = 2.0 * (m * k * n) as f64;
        let dims = format!("m={m:6} k={k:4} n={n:4}");
        if want("faer") {
            let dt = time(|| T::faer_mul(black_box(&a), &w, &mut c, m, k, n));
            report(ty, "mul", &dims, "faer", flops, dt);
        }
        if want("gemm-crate") {
            let dt = time(|| gemm_crate(m, n, k, &mut c, false, black_box(&a), k as isize, 1, &w));
            report(ty, "mul", &dims, "gemm-crate", flops, dt);
        }
        if want("matrixmultiply") {
            let dt = time(|| T::mm_mul(black_box(&a), &w, &mut c, m, k, n));
            report(ty, "mul", &dims, "matrixmultiply", flops, dt);
        }
        if want("ours") {
            let rhs = Rhs::new(&w, k, n);
            let dt = time(|| rhs.mul(black_box(&a), &mut c, false));
            report(ty, "mul", &dims, "ours", flops, dt);
        }
    }
    for &(r, m, n) in TN_SHAPES {
        let a = fill::<T>(r * m, 3);
        let b = fill::<T>(r * n, 4);
        let mut c = vec![T::zero(); m * n];
        let flops = 2.0 * (r * m * n) as f64;
        let dims = format!("r={r:6} m={m:4} n={n:4}");
        if want("faer") {
            let dt = time(|| T::faer_tn(black_box(&a), &b, &mut c, r, m, n));
            report(ty, "tn", &dims, "faer", flops, dt);
        }
        if want("gemm-crate") {
            let dt = time(|| gemm_crate(m, n, r, &mut c, true, black_box(&a), 1, m as isize, &b));
            report(ty, "tn", &dims, "gemm-crate", flops, dt);
        }
        if want("matrixmultiply") {
            let dt = time(|| T::mm_tn(black_box(&a), &b, &mut c, r, m, n));
            report(ty, "tn", &dims, "matrixmultiply", flops, dt);
        }
        if want("ours") {
            let dt = time(|| matmul_tn(black_box(&a), &b, &mut c, m, n));
            report(ty, "tn", &dims, "ours", flops, dt);
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
    run::<f32>(&filter);
    run::<f64>(&filter);
}
