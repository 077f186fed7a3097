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

/// Only a strictly lower loss is an improvement: on a plateau (a rate so small that no
/// parameter moves, so every epoch's validation loss is the same number) the first epoch
/// stays the best and patience runs out.
#[test]
fn a_plateau_keeps_its_first_epoch_and_runs_out_of_patience() {
    let mut cfg = Config::new(10, 50, 1e-300, 5);
    cfg.method = Method::Sgd { momentum: 0.0 };
    cfg.patience = Some(2);
    let val = Some(train_data(100, 12));
    let (_, h) = fit(small_model(), train_data(200, 13), val, cfg).unwrap();
    assert!(h.val_loss.iter().all(|&l| l == h.val_loss[0]), "{h:?}");
    assert_eq!((h.best_epoch, h.val_loss.len()), (0, 3), "{h:?}");
    assert!(h.stopped_by_patience);
}

/// Parameters of a trainer, flat.
fn params(tr: &Trainer<f64>) -> Vec<f64> {
    tr.model().mlp().params().to_vec()
}

/// Runs SGD with momentum at `lr` one step at a time until it diverges: the error, the
/// trainer, and the parameters before the failing step and before the step preceding it.
fn run_until_divergence(lr: f64) -> (Error, Trainer<f64>, Vec<f64>, Vec<f64>) {
    let mut cfg = Config::new(20, 16, lr, 0);
    cfg.method = Method::Sgd { momentum: 0.9 };
    let mut tr = Trainer::new(small_model(), train_data(200, 12), None, cfg).unwrap();
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
    (err, tr, before, before_previous)
}

#[test]
fn divergence_is_reported_and_the_last_good_parameters_are_kept() {
    let (err, tr, before, before_previous) = run_until_divergence(1e6);
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

/// θ₁ = θ₀ − η·g, parameter by parameter, to 1e-12 relative.
fn assert_sgd_step(p0: &[f64], p1: &[f64], g: &[f64], lr: f64) {
    assert_eq!((p0.len(), p1.len()), (g.len(), g.len()));
    for k in 0..p0.len() {
        let want = p0[k] - lr * g[k];
        assert!(close(p1[k], want, 1e-12), "param {k}: {} vs {want}", p1[k]);
    }
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
    assert_sgd_step(&p0, p1, &g, lr);
}

/// ESM training gathers each minibatch's target rows in the order of its data rows, and
/// validates against the validation rows' own targets: a full-batch SGD step (rows visited
/// in a shuffled order) moves θ by −η·∇J_ESM, and the reported losses are J_ESM of the
/// training rows before the step and of the validation rows after it.
#[test]
fn an_esm_step_follows_the_targets_of_its_rows() {
    let (n, lr) = (64, 0.01);
    let (x, xv) = (gaussian(n, 21), gaussian(40, 22));
    // The true score of the data's Gaussian, so that every row has its own target.
    let truth = |x: &[f64]| -> Vec<f64> {
        x.chunks(2)
            .flat_map(|r| [-(r[0] - 1.0) / 0.25, -(r[1] + 0.5) / 2.25])
            .collect()
    };
    let (t, tv) = (truth(&x), truth(&xv));
    let (l0, g) = esm(&small_model(), &x, &t);
    let mut cfg = Config::new(1, n, lr, 3);
    cfg.loss = Loss::Esm;
    cfg.method = Method::Sgd { momentum: 0.0 };
    let data = Data::new(x, 2, "X")
        .unwrap()
        .with_target(t, 2, "target_score");
    let val =
        Data::new(xv.clone(), 2, "X_val")
            .unwrap()
            .with_target(tv.clone(), 2, "target_score_val");
    let (m1, h) = fit(small_model(), data.unwrap(), Some(val.unwrap()), cfg).unwrap();
    let (p0, p1) = (small_model().mlp().params().to_vec(), m1.mlp().params());
    assert_sgd_step(&p0, p1, &g, lr);
    assert!(
        close(h.train_loss[0], l0, 1e-12),
        "{} vs {l0}",
        h.train_loss[0]
    );
    let (lv, _) = esm(&m1, &xv, &tv);
    assert!(close(h.val_loss[0], lv, 1e-12), "{} vs {lv}", h.val_loss[0]);
}

/// A run takes the steps its schedule describes: epoch e visits the rows in
/// `permutation(e)`, in minibatches of `batch_size` (the last one shorter), and global step
/// k = e·steps_per_epoch + s draws its DSM noise from `step_seed(k)`. Replayed here with
/// the engine and plain SGD, the parameters and losses agree bit for bit, and the trainer
/// reports its position (epoch, step in the epoch) after every step.
#[test]
fn a_run_takes_the_steps_of_its_schedule() {
    use scorematch_core::engine;
    use scorematch_core::matrix::Rows;
    use scorematch_core::objective::{Keys, Objective};
    let (n, bs, lr, noise_std) = (48, 20, 0.02, 0.5);
    let x = gaussian(n, 23);
    let mut cfg = Config::new(2, bs, lr, 4);
    cfg.loss = Loss::Dsm { noise_std };
    cfg.method = Method::Sgd { momentum: 0.0 };
    let data = Data::new(x.clone(), 2, "X").unwrap();
    assert_eq!(data.rows(), n);
    let mut tr = Trainer::new(small_model(), data, None, cfg).unwrap();
    assert_eq!(tr.steps_per_epoch(), 3);

    let mut model = small_model();
    let mut params = model.mlp().params().to_vec();
    let mut grad = vec![0.0; params.len()];
    let (mut perm, mut xb) = (Vec::new(), Vec::new());
    for epoch in 0..2 {
        assert_eq!((tr.epoch(), tr.step_in_epoch()), (epoch, 0));
        tr.schedule().permutation(epoch, n, &mut perm).unwrap();
        let mut sum = 0.0;
        for (step, rows) in perm.chunks(bs).enumerate() {
            xb.clear();
            for &r in rows {
                xb.extend_from_slice(&x[2 * r..2 * r + 2]);
            }
            let objective = Objective::Dsm {
                noise_std,
                seed: tr.schedule().step_seed((3 * epoch + step) as u64),
                keys: Keys::Position,
            };
            let rows = Rows::from_slice(&xb, rows.len(), 2).unwrap();
            sum += engine::loss_and_grad(&model, rows, objective, &mut grad).unwrap();
            for (p, g) in params.iter_mut().zip(&grad) {
                *p -= lr * g;
            }
            model.set_params(&params).unwrap();

            let done = tr.run_for(Duration::ZERO).unwrap();
            assert_eq!((done, tr.step_in_epoch()), (step == 2, step + 1));
            assert_eq!(
                tr.model().mlp().params(),
                params.as_slice(),
                "epoch {epoch} step {step}"
            );
        }
        assert_eq!(tr.end_epoch().unwrap().train_loss, sum / 3.0);
    }
    assert_eq!(tr.epoch(), 2);
}

/// Fisher–Yates draws every order of the rows equally often: over 6 000 epochs each of the
/// 6 orders of 3 rows comes up 1 000 times, binomial sd 29; the band is ±5 sd. (Drawing the
/// swap index from 0..i instead of 0..=i, Sattolo's algorithm, would give only the two
/// cyclic orders.)
#[test]
fn the_permutations_are_uniform() {
    use scorematch_core::train::Schedule;
    let s = Schedule { seed: 11 };
    let mut counts = std::collections::BTreeMap::new();
    let mut p = Vec::new();
    for epoch in 0..6000 {
        s.permutation(epoch, 3, &mut p).unwrap();
        *counts.entry(p.clone()).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 6, "{counts:?}");
    assert!(
        counts.values().all(|&k| k.abs_diff(1000) <= 145),
        "{counts:?}"
    );
}

/// Each global step draws its SSM projections / DSM noise from its own seed, and the
/// validation seed is none of them; all of them change with the run's seed.
#[test]
fn every_step_has_its_own_seed() {
    use scorematch_core::train::Schedule;
    let seeds = |seed| {
        let s = Schedule { seed };
        let mut v: Vec<u64> = (0..1000).map(|k| s.step_seed(k)).collect();
        v.push(s.validation_seed());
        v
    };
    let (a, b) = (seeds(0), seeds(1));
    let mut all: Vec<u64> = a.iter().chain(&b).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), a.len() + b.len());
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

#[test]
fn an_update_that_blows_up_at_the_last_step_is_a_divergence() {
    // One epoch of one minibatch: no later step judges the update, so the run judges it at
    // its end, by the loss on the last minibatch. It kept a model whose loss was ~1e38.
    let mut cfg = Config::new(1, 500, 1e8, 0);
    cfg.method = Method::Sgd { momentum: 0.9 };
    let start = small_model();
    let err = fit(start.clone(), train_data(500, 2), None, cfg).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TrainingDiverged {
                epoch: 0,
                step: 1,
                cause: Divergence::Blowup { .. }
            }
        ),
        "{err}"
    );
    // With validation rows too: the one epoch is the best, its finite validation loss does
    // not judge the update, and its parameters are the last step's.
    let err = fit(
        start.clone(),
        train_data(500, 2),
        Some(train_data(100, 3)),
        cfg,
    );
    assert!(
        matches!(
            err,
            Err(Error::TrainingDiverged {
                step: 1,
                cause: Divergence::Blowup { .. },
                ..
            })
        ),
        "{err:?}"
    );
    let mut tr = Trainer::new(start.clone(), train_data(500, 2), None, cfg).unwrap();
    assert!(tr.run_for(Duration::MAX).unwrap());
    tr.end_epoch().unwrap();
    assert!(tr.check_last_step().is_err());
    assert_eq!(tr.model().mlp().params(), start.mlp().params());
    // A run that converges passes the check and keeps its last parameters.
    let cfg = Config::new(2, 100, 1e-2, 0);
    let mut tr = Trainer::new(start, train_data(500, 2), None, cfg).unwrap();
    for _ in 0..2 {
        while !tr.run_for(Duration::MAX).unwrap() {}
        tr.end_epoch().unwrap();
    }
    let last = tr.model().mlp().params().to_vec();
    tr.check_last_step().unwrap();
    assert_eq!(tr.model().mlp().params(), &last[..]);
}

#[test]
fn adam_whose_squared_gradient_overflows_diverges() {
    // weight_decay · p squared overflows: every later Adam step would be m/∞ = 0, and the
    // run ended "completed" with the initial parameters.
    let cfg = Config {
        weight_decay: 1e300,
        ..Config::new(2, 64, 1e-3, 0)
    };
    let err = fit(small_model(), train_data(200, 2), None, cfg).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TrainingDiverged {
                epoch: 0,
                step: 0,
                cause: Divergence::NonFinite(Quantity::SecondMoments)
            }
        ),
        "{err}"
    );
}

#[test]
fn a_divergence_after_good_steps_keeps_the_last_good_parameters_not_the_first() {
    // At lr 3 several steps succeed before the loss blows up. Every other divergence test
    // diverges at step 0 or 1, where the last good parameters are the initial ones whatever
    // the trainer keeps (mutation audit: never updating them went unseen).
    let initial = small_model().mlp().params().to_vec();
    let (err, tr, _, before_previous) = run_until_divergence(3.0);
    let Error::TrainingDiverged {
        epoch: 0,
        step,
        cause: Divergence::Blowup { .. },
    } = err
    else {
        panic!("{err}");
    };
    assert!(step >= 2, "{err}");
    // The loss of the parameters after step − 1 blew up: back to those that step started from.
    assert_eq!(params(&tr), before_previous);
    assert_ne!(params(&tr), initial);
}
