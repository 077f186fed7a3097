//! The training loop: it fits a Gaussian, is bit-identical for any thread count and any
//! slicing of an epoch, restores the best validation epoch, stops on patience, and reports
//! divergence while keeping the last good parameters.

mod common;
use std::time::Duration;

use common::*;
use rayon::ThreadPoolBuilder;
use scorematch_core::error::{Divergence, Quantity};
use scorematch_core::objective::Projection;
use scorematch_core::optim::Method;
use scorematch_core::train::{fit, Config, Data, Loss, Trainer};
use scorematch_core::{Activation, Error, Model};

/// n rows of N(μ, diag(s²)) in 2-D.
fn gaussian(n: usize, seed: u64) -> Vec<f64> {
    let z = data(n, 2, 1.0, seed);
    z.chunks(2)
        .flat_map(|r| [1.0 + 0.5 * r[0], -0.5 + 1.5 * r[1]])
        .collect()
}

fn small_model() -> Model<f64> {
    model(2, &[16, 16], Activation::Softplus, 0.0, 1)
}

fn train_data(n: usize, seed: u64) -> Data<f64> {
    Data::new(gaussian(n, seed), 2, "X").unwrap()
}

#[test]
fn ism_fits_a_gaussian_score() {
    let mut cfg = Config::new(60, 64, 1e-2, 0);
    cfg.loss = Loss::Ism;
    let (m, h) = fit(small_model(), train_data(1000, 1), None, cfg).unwrap();
    assert!(h.train_loss.last().unwrap() < &h.train_loss[0]);
    // True score −Σ⁻¹(x − μ); ISM's optimum value is −½ E‖s‖² = −½ tr Σ⁻¹ = −(4 + 4/9)/2.
    let x = gaussian(500, 2);
    let s = score(&m, &x);
    let (mut err, mut norm) = (0.0, 0.0);
    for (xr, sr) in x.chunks(2).zip(s.chunks(2)) {
        let t = [-(xr[0] - 1.0) / 0.25, -(xr[1] + 0.5) / 2.25];
        err += (sr[0] - t[0]).powi(2) + (sr[1] - t[1]).powi(2);
        norm += t[0] * t[0] + t[1] * t[1];
    }
    let rel = (err / norm).sqrt();
    assert!(rel < 0.15, "relative score error {rel}");
}

fn run_all(loss: Loss, threads: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut cfg = Config::new(3, 50, 1e-2, 7);
    cfg.loss = loss;
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| {
            let val = Some(train_data(300, 9));
            let (m, h) = fit(small_model(), train_data(700, 8), val, cfg).unwrap();
            (m.mlp().params().to_vec(), h.train_loss, h.val_loss)
        })
}

#[test]
fn runs_are_bit_identical_for_any_thread_count() {
    for loss in [
        Loss::Ism,
        Loss::Ssm {
            n_projections: 2,
            projection: Projection::Rademacher,
        },
        Loss::Dsm { noise_std: 0.1 },
    ] {
        let a = run_all(loss, 1);
        let b = run_all(loss, 3);
        let bits = |v: &Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.0), bits(&b.0), "{loss:?} params");
        assert_eq!(bits(&a.1), bits(&b.1), "{loss:?} train loss");
        assert_eq!(bits(&a.2), bits(&b.2), "{loss:?} val loss");
    }
}

#[test]
fn slicing_an_epoch_does_not_change_the_run() {
    let cfg = Config::new(2, 32, 1e-2, 3);
    let run = |budget: Duration| {
        let mut tr = Trainer::new(small_model(), train_data(400, 4), None, cfg).unwrap();
        let mut losses = Vec::new();
        for _ in 0..2 {
            let mut slices = 0;
            while !tr.run_for(budget).unwrap() {
                slices += 1;
            }
            losses.push(tr.end_epoch().unwrap().train_loss);
            if budget.is_zero() {
                assert!(slices >= tr.steps_per_epoch() - 1);
            }
        }
        (tr.model().mlp().params().to_vec(), losses)
    };
    assert_eq!(run(Duration::ZERO), run(Duration::MAX));
}

#[test]
fn the_best_validation_epoch_is_restored() {
    // SGD at a rate that overshoots: validation loss does not improve monotonically.
    let mut cfg = Config::new(8, 20, 0.05, 5);
    cfg.method = Method::Sgd { momentum: 0.9 };
    let mut tr = Trainer::new(
        small_model(),
        train_data(200, 6),
        Some(train_data(100, 7)),
        cfg,
    )
    .unwrap();
    let mut at_end = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        while !tr.run_for(Duration::MAX).unwrap() {}
        let e = tr.end_epoch().unwrap();
        at_end.push((e.val_loss.unwrap(), tr.model().mlp().params().to_vec()));
        last = Some(e);
    }
    let best = last.unwrap().best_epoch;
    let min = at_end.iter().map(|(l, _)| *l).fold(f64::INFINITY, f64::min);
    assert_eq!(at_end[best].0, min);
    tr.restore_best();
    assert_eq!(tr.model().mlp().params(), at_end[best].1.as_slice());
}

#[test]
fn patience_stops_training() {
    // Validation data far from the training data: fitting the training data soon makes
    // the validation loss worse, so patience must end the run early.
    let mut cfg = Config::new(50, 50, 1e-2, 5);
    cfg.patience = Some(2);
    let far: Vec<f64> = gaussian(100, 11).iter().map(|v| v + 6.0).collect();
    let val = Data::new(far, 2, "X_val").unwrap();
    let (_, h) = fit(small_model(), train_data(300, 10), Some(val), cfg).unwrap();
    assert!(h.stopped_by_patience, "{h:?}");
    assert!(h.train_loss.len() < 50);
    assert_eq!(h.train_loss.len(), h.best_epoch + 3);
}

#[test]
fn divergence_is_reported_and_the_last_good_parameters_are_kept() {
    let mut cfg = Config::new(20, 16, 1e6, 0);
    cfg.method = Method::Sgd { momentum: 0.9 };
    let mut tr = Trainer::new(small_model(), train_data(200, 12), None, cfg).unwrap();
    // Parameters before the current step and before the one preceding it.
    let params = |tr: &Trainer<f64>| tr.model().mlp().params().to_vec();
    let (mut before, mut before_previous) = (params(&tr), params(&tr));
    let err = loop {
        // A zero budget runs exactly one step.
        match tr.run_for(Duration::ZERO) {
            Ok(true) => {
                tr.end_epoch().unwrap();
            }
            Ok(false) => {}
            Err(e) => break e,
        }
        assert!(tr.epoch() < 20, "did not diverge");
        before_previous = std::mem::replace(&mut before, params(&tr));
    };
    let Error::TrainingDiverged { cause, .. } = err else {
        panic!("{err}");
    };
    assert!(err.to_string().contains("epoch"), "{err}");
    // The last parameters whose loss and gradient were finite: those the failing step started
    // from when only its update overflowed, else those the step before it started from.
    let kept = params(&tr);
    match cause {
        Divergence::NonFinite(Quantity::UpdatedParameters) => assert_eq!(kept, before),
        Divergence::NonFinite(Quantity::Loss | Quantity::Gradient) | Divergence::Blowup { .. } => {
            assert_eq!(kept, before_previous)
        }
        other => panic!("unexpected cause {other}"),
    }
    let x = gaussian(200, 12);
    assert!(ism(tr.model(), &x).0.is_finite());
}

#[test]
fn bad_configurations_are_errors() {
    let base = Config::new(1, 8, 1e-3, 0);
    assert!(Trainer::new(small_model(), train_data(10, 0), None, base).is_ok());
    // Each bad configuration, and a word its message must contain.
    let bad = [
        (Config { epochs: 0, ..base }, "epochs"),
        (
            Config {
                batch_size: 0,
                ..base
            },
            "batch_size",
        ),
        (Config { lr: -1.0, ..base }, "lr"),
        (
            Config {
                lr: f64::NAN,
                ..base
            },
            "lr",
        ),
        (
            Config {
                patience: Some(0),
                ..base
            },
            "patience",
        ),
        (
            Config {
                loss: Loss::Esm,
                ..base
            },
            "target",
        ),
        (
            Config {
                loss: Loss::Dsm { noise_std: 0.0 },
                ..base
            },
            "noise_std",
        ),
        (
            Config {
                loss: Loss::Ssm {
                    n_projections: 0,
                    projection: Projection::Gaussian,
                },
                ..base
            },
            "n_projections",
        ),
    ];
    for (cfg, word) in bad {
        match Trainer::new(small_model(), train_data(10, 0), None, cfg) {
            Ok(_) => panic!("accepted {cfg:?}"),
            Err(e) => assert!(e.to_string().contains(word), "{cfg:?}: {e}"),
        }
    }
    assert!(Data::new(vec![f64::NAN, 0.0], 2, "X").is_err());
    assert!(Data::<f64>::new(vec![], 2, "X").is_err());
    let rows = || Data::new(vec![0.0; 4], 2, "X").unwrap();
    let err = |t: Vec<f64>, cols| rows().with_target(t, cols, "target_score").unwrap_err();
    assert_eq!(
        err(vec![0.0; 2], 2).to_string(),
        "target_score must have the shape of X, (2, 2), got (1, 2)"
    );
    assert_eq!(
        err(vec![0.0; 4], 1).to_string(),
        "target_score must have 2 columns like X, got 1"
    );
    assert_eq!(
        err(vec![0.0, f64::INFINITY, 0.0, 0.0], 2).to_string(),
        "target_score contains NaN or Inf (first at row 0)"
    );
    assert!(rows().with_target(vec![0.0; 4], 2, "target_score").is_ok());
}

/// One full-batch SGD step (no momentum) moves θ by −η·∇J, J the mean loss over the rows:
/// the minibatch gradient is averaged, not summed (Adam would hardly notice the difference).
#[test]
fn an_sgd_step_moves_by_the_mean_gradient() {
    let (n, lr) = (64, 0.01);
    let x = gaussian(n, 20);
    let (_, g) = ism(&small_model(), &x);
    let mut cfg = Config::new(1, n, lr, 0);
    cfg.method = Method::Sgd { momentum: 0.0 };
    let data = Data::new(x, 2, "X").unwrap();
    let (m1, _) = fit(small_model(), data, None, cfg).unwrap();
    let (p0, p1) = (small_model().mlp().params().to_vec(), m1.mlp().params());
    for k in 0..p0.len() {
        let want = p0[k] - lr * g[k];
        assert!(
            (p1[k] - want).abs() <= 1e-12 * (1.0 + want.abs()),
            "param {k}: {} vs {want}",
            p1[k]
        );
    }
}

/// Each epoch visits the rows in a new order, drawn from (seed, epoch) alone.
#[test]
fn every_epoch_draws_its_own_permutation() {
    use scorematch_core::train::Schedule;
    let s = Schedule { seed: 5 };
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    s.permutation(0, 50, &mut a).unwrap();
    s.permutation(1, 50, &mut b).unwrap();
    s.permutation(1, 50, &mut c).unwrap();
    let mut sorted = b.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    assert_ne!(a, b);
    assert_eq!(b, c);
}
