//! Batching must not change results: chunked batches equal row-by-row calls, results are
//! bit-identical for any number of threads, and bad input is an error, never a panic.

mod common;
use common::*;
use rayon::ThreadPoolBuilder;
use scorematch_core::engine;
use scorematch_core::objective::Objective;
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
