//! The public GEMM entry points (`gemm::Rhs`, `gemm::matmul_tn`) on edge shapes, through the
//! path this process dispatches to, and again in child processes capped to each other path
//! by `SCOREMATCH_GEMM`; plus a reproduction of a soundness bug of `matmul_tn`'s shape check.

use std::process::Command;

use scorematch_core::gemm::{backend, matmul_tn, Rhs};
use scorematch_core::Real;

/// Set in the child processes that run one test on a capped path, or a crash reproduction.
const CHILD: &str = "SCOREMATCH_GEMM_EDGES_CHILD";

fn values<T: Real>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            T::c((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

/// One output element: the sequential chain over `p` every path computes, fused on the SIMD
/// paths; on the portable path fused or not depending on the target, so it is compared with
/// a tolerance there.
fn chain<T: Real>(
    fused: bool,
    init: T,
    k: usize,
    a: impl Fn(usize) -> T,
    b: impl Fn(usize) -> T,
) -> T {
    (0..k).fold(init, |acc, p| {
        if fused {
            a(p).mul_add(b(p), acc)
        } else {
            a(p) * b(p) + acc
        }
    })
}

/// Exact on the SIMD paths; on the portable path (which may or may not fuse) within twice the
/// bound of `k + 1` roundings on a sum of `k + 1` terms of magnitude at most 1.
fn agree<T: Real>(got: T, want: T, k: usize, what: &dyn Fn() -> String) {
    if backend() == "portable" {
        let terms = k as f64 + 1.0;
        let tol = 2.0 * terms * T::epsilon().to_f64_exact() * terms;
        assert!(
            (got.to_f64_exact() - want.to_f64_exact()).abs() <= tol,
            "{}: {got} vs {want}",
            what()
        );
    } else {
        assert_eq!(
            got.to_f64_exact().to_bits(),
            want.to_f64_exact().to_bits(),
            "{}",
            what()
        );
    }
}

const GUARD: usize = 37;

fn sentinel<T: Real>() -> T {
    T::c(-4321.25)
}

fn untouched<T: Real>(x: &T) -> bool {
    x.to_f64_exact().to_bits() == sentinel::<T>().to_f64_exact().to_bits()
}

fn public_mul<T: Real>() {
    let fused = backend() != "portable";
    for m in 0..=14 {
        for k in [0, 1, 2, 3, 9, 257] {
            for n in 0..=36 {
                let a = values::<T>(m * k, 1 + (m * 7 + k + n * 3) as u64);
                let w = values::<T>(k * n, 2 + (m + k * 5 + n) as u64);
                let c0 = values::<T>(m * n, 3);
                let rhs = Rhs::new(&w, k, n);
                assert_eq!((rhs.k(), rhs.n()), (k, n));
                for accumulate in [false, true] {
                    let mut buf = vec![sentinel::<T>(); GUARD + m * n + GUARD];
                    buf[GUARD..GUARD + m * n].copy_from_slice(&c0);
                    rhs.mul(&a, &mut buf[GUARD..GUARD + m * n], accumulate);
                    let what = || {
                        format!(
                            "{} {} m={m} k={k} n={n} acc={accumulate}",
                            backend(),
                            T::NAME
                        )
                    };
                    for i in 0..m {
                        for j in 0..n {
                            let init = if accumulate { c0[i * n + j] } else { T::zero() };
                            let want = chain(fused, init, k, |p| a[i * k + p], |p| w[p * n + j]);
                            agree(buf[GUARD + i * n + j], want, k, &what);
                        }
                    }
                    let outside = buf[..GUARD].iter().chain(&buf[GUARD + m * n..]);
                    assert!(
                        outside.into_iter().all(untouched),
                        "write outside c: {}",
                        what()
                    );
                }
            }
        }
    }
}

fn public_tn<T: Real>() {
    let fused = backend() != "portable";
    for m in 1..=14 {
        for r in [0, 1, 2, 3, 9, 257] {
            for n in 0..=36 {
                let a = values::<T>(r * m, 4 + (m * 7 + r + n * 3) as u64);
                let b = values::<T>(r * n, 5 + (m + r * 5 + n) as u64);
                let c0 = values::<T>(m * n, 6);
                let mut buf = vec![sentinel::<T>(); GUARD + m * n + GUARD];
                buf[GUARD..GUARD + m * n].copy_from_slice(&c0);
                matmul_tn(&a, &b, &mut buf[GUARD..GUARD + m * n], m, n);
                let what = || format!("{} {} r={r} m={m} n={n}", backend(), T::NAME);
                for i in 0..m {
                    for j in 0..n {
                        let want =
                            chain(fused, c0[i * n + j], r, |p| a[p * m + i], |p| b[p * n + j]);
                        agree(buf[GUARD + i * n + j], want, r, &what);
                    }
                }
                let outside = buf[..GUARD].iter().chain(&buf[GUARD + m * n..]);
                assert!(
                    outside.into_iter().all(untouched),
                    "write outside c: {}",
                    what()
                );
            }
        }
    }
}

#[test]
fn public_mul_edges_f32() {
    public_mul::<f32>();
}

#[test]
fn public_mul_edges_f64() {
    public_mul::<f64>();
}

#[test]
fn public_tn_edges_f32() {
    public_tn::<f32>();
}

#[test]
fn public_tn_edges_f64() {
    public_tn::<f64>();
}

/// Runs this test binary again with `env`, on the tests whose names contain `filter`.
fn rerun(filter: &str, env: &[(&str, &str)], ignored: bool) -> std::process::Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([filter, "--test-threads=1"]).env(CHILD, "1");
    if ignored {
        cmd.arg("--ignored");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The public entry points on the capped paths too (AVX2 and portable, where this CPU has
/// better; `SCOREMATCH_GEMM` never raises the path, so on a smaller CPU these rerun the same).
#[test]
fn public_edges_on_every_path() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    for path in ["avx2", "portable"] {
        let out = rerun("public_", &[("SCOREMATCH_GEMM", path)], false);
        assert!(
            out.status.success(),
            "SCOREMATCH_GEMM={path}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `matmul_tn` is a safe public function: a shape whose sizes overflow must be refused, not
/// pass a wrapping check (`m = 2, n = 2⁶³` with an empty `b` and `c`: 2·2⁶³ wraps to 0) and
/// let the kernel write through the pointer of the empty `c`. It did, until the check used
/// `checked_mul` (a segmentation fault in release builds).
///
/// Run in a child process, so that a crash shows as a failed assertion here.
#[test]
fn matmul_tn_refuses_shapes_whose_size_overflows() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let out = rerun("child_matmul_tn_wrapping_shape", &[], true);
    // A panic (exit code 101) is the sound outcome; a signal (no exit code) is memory
    // corruption.
    assert!(
        out.status.code() == Some(101),
        "matmul_tn(a: [0; 4], b: [], c: [], m = 2, n = 2^63) crashed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The call of [`matmul_tn_refuses_shapes_whose_size_overflows`], run only in its child.
#[test]
#[ignore = "run by matmul_tn_refuses_shapes_whose_size_overflows in a child process"]
fn child_matmul_tn_wrapping_shape() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let n = 1usize << (usize::BITS - 1);
    let a = [0.0f32; 4];
    let mut c: [f32; 0] = [];
    matmul_tn(&a, &[], &mut c, 2, n);
}
