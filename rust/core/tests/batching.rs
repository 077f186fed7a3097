//! Batching must not change results: chunked batches equal row-by-row calls, results are
//! bit-identical for any number of threads, and bad input is an error, never a panic.

mod common;
use common::*;
use rayon::ThreadPoolBuilder;
use scorematch_core::engine;
use scorematch_core::objective::{Keys, Objective, Projection};
use scorematch_core::{Activation, Error, Rows};

#[test]
fn large_batches_equal_row_by_row_calls() {
    let m = model::<f64>(3, &[8, 8], Activation::Softplus, 0.1, 1);
    let n = 1000; // several chunks of every pass, the last one partial
    let x = data(n, 3, 2.0, 7);
    let (e, s, t) = (energy(&m, &x), score(&m, &x), trace(&m, &x));
    for b in [0, 1, 255, 256, 511, 999] {
        let xr = &x[3 * b..3 * b + 3];
        assert!((energy(&m, xr)[0] - e[b]).abs() < 1e-13);
        assert!((trace(&m, xr)[0] - t[b]).abs() < 1e-12);
        for k in 0..3 {
            assert!((score(&m, xr)[k] - s[3 * b + k]).abs() < 1e-13);
        }
    }
}

#[test]
fn results_are_bit_identical_for_any_thread_count() {
    for act in Activation::ALL {
        let m = model::<f32>(5, &[32, 32], act, 0.0, 2);
        let x: Vec<f32> = cast(&data(3000, 5, 2.0, 8));
        let target: Vec<f32> = cast(&data(3000, 5, 1.0, 9));
        let run = || {
            let (l, g) = ism(&m, &x);
            let (le, ge) = esm(&m, &x, &target);
            (energy(&m, &x), score(&m, &x), trace(&m, &x), l, g, le, ge)
        };
        let one = ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);
        for threads in [2, 3, 8] {
            let many = ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(run);
            assert!(one == many, "{act:?}: {threads} threads differ from 1");
        }
    }
}

#[test]
fn bad_input_is_an_error() {
    let m = model::<f64>(3, &[4], Activation::Tanh, 0.0, 3);
    let x = vec![0.0; 8];
    let rows = Rows::from_slice(&x, 4, 2).unwrap();
    let mut out = vec![0.0; 4];
    let err = engine::energy(&m, rows, &mut out).unwrap_err().to_string();
    assert!(err.contains("(n, 3)") && err.contains("(4, 2)"), "{err}");

    let mut x = vec![0.0; 9];
    x[7] = f64::NAN;
    let rows = Rows::from_slice(&x, 3, 3).unwrap();
    assert_eq!(
        engine::score(&m, rows, &mut [0.0; 9]),
        Err(Error::NonFinite { what: "X", row: 2 })
    );

    let empty = Rows::from_slice(&[], 0, 3).unwrap();
    assert!(engine::energy(&m, empty, &mut []).is_ok());
    assert!(engine::hessian_trace(&m, empty, &mut []).is_ok());
    let mut g = vec![0.0; m.mlp().n_params()];
    assert_eq!(
        engine::loss_and_grad(&m, empty, Objective::Ism, &mut g),
        Err(Error::EmptyBatch("ism_loss"))
    );

    let x = vec![0.0; 6];
    let t = vec![0.0; 3];
    let rows = Rows::from_slice(&x, 2, 3).unwrap();
    let target = Rows::from_slice(&t, 1, 3).unwrap();
    let err = engine::loss_and_grad(&m, rows, Objective::Esm { target }, &mut g).unwrap_err();
    assert!(matches!(err, Error::Shape(_)), "{err}");
}

/// MALA takes E(x) from the pass that also computes the score (σ and σ' together), while
/// `energy` runs the value-only activations; both must give the same bits, so that a
/// sampler's energies are the model's energies.
#[test]
fn energy_alone_equals_the_energy_of_the_score_pass_bit_for_bit() {
    use scorematch_core::forward::{self, ScoreWorkspace};
    fn check<T: scorematch_core::Real>() {
        for act in Activation::ALL {
            for alpha in [0.0, 0.7] {
                let m = model::<T>(3, &[16, 24, 16], act, alpha, 4);
                let n = 300;
                let x: Vec<T> = cast(&data(n, 3, 3.0, 11));
                let alone = energy(&m, &x);
                let mut ws = ScoreWorkspace::default();
                let c = forward::chunk_rows(&m).min(n);
                let (mut e, mut g) = (vec![T::zero(); c], vec![T::zero(); c * 3]);
                ws.input(&m, c).copy_from_slice(&x[..c * 3]);
                forward::energy_and_grad(&m, &mut ws, c, Some(&mut e), Some(&mut g));
                assert!(
                    alone[..c] == e[..],
                    "{act:?} {} alpha {alpha}: energies differ",
                    T::NAME
                );
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

/// Output buffers are checked against the batch before any work: a wrong length is a shape
/// error naming what was expected, never a short write or a panic.
#[test]
fn output_buffers_of_the_wrong_length_are_errors() {
    let m = model::<f64>(3, &[4], Activation::Softplus, 0.0, 3);
    let x = data(4, 3, 1.0, 1);
    let rows = Rows::from_slice(&x, 4, 3).unwrap();
    let shape = |r: scorematch_core::Result<()>| match r {
        Err(Error::Shape(msg)) => msg,
        other => panic!("expected a shape error, got {other:?}"),
    };
    for len in [3, 5] {
        let msg = shape(engine::energy(&m, rows, &mut vec![0.0; len]));
        assert_eq!(msg, format!("energy buffer must hold 4 values, got {len}"));
        let msg = shape(engine::hessian_trace(&m, rows, &mut vec![0.0; len]));
        assert_eq!(
            msg,
            format!("hessian_trace buffer must hold 4 values, got {len}")
        );
    }
    for len in [11, 13] {
        let msg = shape(engine::score(&m, rows, &mut vec![0.0; len]));
        assert_eq!(msg, format!("score buffer must hold 12 values, got {len}"));
    }
    let n = m.mlp().n_params();
    let err = engine::loss_and_grad(&m, rows, Objective::Ism, &mut vec![0.0; n - 1]);
    assert!(
        matches!(&err, Err(Error::Shape(msg)) if msg == &format!("gradient buffer must hold {n} values, got {}", n - 1)),
        "{err:?}"
    );
}

/// The chunk sizes are those documented: for energy and score the largest power of two from
/// 16 to 256 rows whose buffers fit in 256 KiB; for the Hessian trace 256 stacked rows' worth
/// of samples. They never change a value (the batching tests above), so only this pins them.
#[test]
fn chunks_have_their_documented_sizes() {
    use engine::{chunk_rows, PerRow};
    // (dim, width): per-row score buffers of dim + 8·width values (three layers) in f32 /
    // f64 give these row counts.
    for (d, w, f32_rows, f64_rows) in [
        (2, 64, 64, 32),   // 2056 / 4112 bytes a row
        (16, 128, 32, 16), // 4160 / 8320
        (64, 256, 16, 16), // 8448 / 16 896: 31 and 15 rows fit, 16 at least
        (1, 4, 256, 256),  // tiny rows: at most 256
    ] {
        let m32 = model::<f32>(d, &[w; 3], Activation::Softplus, 0.0, 0);
        let m64 = model::<f64>(d, &[w; 3], Activation::Softplus, 0.0, 0);
        for op in [PerRow::Energy, PerRow::Score] {
            assert_eq!(chunk_rows(&m32, op), f32_rows, "f32 d={d} w={w} {op:?}");
            assert_eq!(chunk_rows(&m64, op), f64_rows, "f64 d={d} w={w} {op:?}");
        }
        // 256 / (d + 2) samples of d + 2 stacked rows each, at least one.
        assert_eq!(
            chunk_rows(&m64, PerRow::HessianTrace),
            (256 / (d + 2)).max(1)
        );
    }
    let wide = model::<f64>(300, &[8], Activation::Tanh, 0.0, 0);
    assert_eq!(chunk_rows(&wide, PerRow::HessianTrace), 1);
}

/// Working buffers that cannot be allocated are an out-of-memory error, not an abort. The
/// case runs in a child process of this test binary under `ulimit -v` (3 GiB of address
/// space), where a chunk of the score pass at width 2²⁴ in f32 (16 rows, 4 GiB of buffers per
/// thread) cannot be had, nor an SSM tape of 4096 projections at width 10⁵: without the
/// checks, growing the buffers would abort the child.
#[cfg(unix)]
#[test]
fn workspaces_beyond_memory_are_errors() {
    const CHILD: &str = "SCOREMATCH_TEST_UNDER_ULIMIT";
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -v 3145728 && exec "$0" workspaces_beyond_memory_are_errors --exact --nocapture"#)
            .arg(exe)
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let m = model::<f32>(1, &[1 << 24], Activation::Softplus, 0.0, 0);
    let x = vec![0.0f32; 256];
    let rows = Rows::from_slice(&x, 256, 1).unwrap();
    for (what, r) in [
        ("energy", engine::energy(&m, rows, &mut vec![0.0; 256])),
        ("score", engine::score(&m, rows, &mut vec![0.0; 256])),
    ] {
        match r {
            Err(Error::OutOfMemory(msg)) => assert!(
                msg.starts_with(&format!(
                    "cannot allocate the working buffers of {what} for this model: "
                )) && msg.ends_with(" bytes per thread"),
                "{msg}"
            ),
            other => panic!("{what}: expected an out-of-memory error, got {other:?}"),
        }
    }
    // The forward-Laplacian tape of one sample with 4096 projections: 4097 stacked rows of
    // width 10⁵, 3.3 GB in f64.
    let m = model::<f64>(2, &[100_000], Activation::Softplus, 0.0, 0);
    let x = [0.5, -0.5];
    let ssm = Objective::Ssm {
        n_projections: 4096,
        projection: Projection::Gaussian,
        seed: 0,
        keys: Keys::Position,
    };
    let mut g = vec![0.0; m.mlp().n_params()];
    match engine::loss_and_grad(&m, Rows::from_slice(&x, 1, 2).unwrap(), ssm, &mut g) {
        Err(Error::OutOfMemory(msg)) => assert!(
            msg.starts_with("cannot allocate the working buffers of ssm_loss for this model: "),
            "{msg}"
        ),
        other => panic!("ssm: expected an out-of-memory error, got {other:?}"),
    }
}
