//! Sliced (SSM) and denoising (DSM) score matching: loss values against an independent
//! computation from the energy alone, gradients against central finite differences of the
//! loss (the draws are fixed by the seed, so the loss is a deterministic function of θ), the
//! SSM loss's expectation against the exact ISM loss, and thread independence.
//!
//! Tolerances as in derivatives.rs: 1e-7 relative for first differences at h = 1e-5. The
//! loss values use second differences of E along t at h = 1e-4 (error ≈ 1e-8·|E''''| +
//! 1e-16/h² ≈ 1e-8): 1e-6.

#![allow(clippy::needless_range_loop)]

mod common;
use common::*;
use rayon::ThreadPoolBuilder;
use scorematch_core::engine;
use scorematch_core::objective::{Keys, Objective, Projection};
use scorematch_core::rng::Stream;
use scorematch_core::{Activation, Model, Rows};

fn models() -> Vec<(Model<f64>, usize)> {
    let mut out = Vec::new();
    for (i, act) in Activation::ALL.into_iter().enumerate() {
        out.push((model(3, &[5, 4], act, 0.0, i as u64), 3));
        out.push((model(2, &[6], act, 0.7, 10 + i as u64), 2));
        // ESM and DSM take their one-tangent path from d = 2 (SCORE_TANGENT_MIN_DIM) and the
        // general T = I path at d = 1: values must be checked on both, not only gradients
        // against finite differences of themselves.
        out.push((model(1, &[6, 5], act, 0.4, 20 + i as u64), 1));
    }
    out
}

fn ssm(n_projections: usize, projection: Projection, seed: u64) -> Objective<'static, f64> {
    Objective::Ssm {
        n_projections,
        projection,
        seed,
        keys: Keys::Position,
    }
}

fn loss_grad(m: &Model<f64>, x: &[f64], obj: Objective<'_, f64>) -> (f64, Vec<f64>) {
    let d = m.mlp().dim();
    let rows = Rows::from_slice(x, x.len() / d, d).unwrap();
    let mut g = vec![0.0; m.mlp().n_params()];
    let l = engine::loss_and_grad(m, rows, obj, &mut g).unwrap();
    let l2 = engine::loss(m, rows, obj).unwrap();
    assert_eq!(l, l2, "loss and loss_and_grad disagree");
    (l, g)
}

fn check_fd(m: &Model<f64>, x: &[f64], obj: Objective<'_, f64>) {
    let (_, g) = loss_grad(m, x, obj);
    for k in 0..m.mlp().n_params() {
        let fd = (loss_grad(&nudged(m, k, H), x, obj).0 - loss_grad(&nudged(m, k, -H), x, obj).0)
            / (2.0 * H);
        assert!(
            close(fd, g[k], TOL),
            "{} {:?} param {k}: fd {fd} vs grad {}",
            obj.name(),
            m.mlp().activation(),
            g[k]
        );
    }
}

#[test]
fn ssm_loss_is_the_projected_ism_loss() {
    let hh = 1e-4;
    for (m, d) in models() {
        for projection in Projection::ALL {
            let (n, mm, seed) = (6, 3, 17);
            let x = data(n, d, 1.5, 6);
            let (loss, _) = loss_grad(&m, &x, ssm(mm, projection, seed));
            // Independent value: tᵀHt and tᵀg by differences of E along t.
            let mut want = 0.0;
            for b in 0..n {
                let mut s = Stream::new(seed, b as u64);
                let xb = &x[b * d..(b + 1) * d];
                for _ in 0..mm {
                    let t: Vec<f64> = (0..d)
                        .map(|_| match projection {
                            Projection::Gaussian => s.normal(),
                            Projection::Rademacher => {
                                if s.uniform() < 0.5 {
                                    -1.0
                                } else {
                                    1.0
                                }
                            }
                        })
                        .collect();
                    let at = |h: f64| -> f64 {
                        let p: Vec<f64> = xb.iter().zip(&t).map(|(a, b)| a + h * b).collect();
                        energy(&m, &p)[0]
                    };
                    let (ep, e0, em) = (at(hh), at(0.0), at(-hh));
                    let tht = (ep - 2.0 * e0 + em) / (hh * hh);
                    let tg = (ep - em) / (2.0 * hh);
                    want += -tht + 0.5 * tg * tg;
                }
            }
            want /= (n * mm) as f64;
            assert!(
                close(loss, want, 1e-6),
                "{projection:?} {:?}: loss {loss} vs {want}",
                m.mlp().activation()
            );
        }
    }
}

#[test]
fn ssm_gradient_matches_finite_differences() {
    for (m, d) in models() {
        let x = data(7, d, 1.5, 7);
        check_fd(&m, &x, ssm(1, Projection::Gaussian, 3));
        check_fd(&m, &x, ssm(4, Projection::Rademacher, 4));
    }
}

/// E_t[l_SSM] = l_ISM. Over K = 40 seeds of n = 64 samples with M = 8 projections each, the
/// mean SSM loss must lie within 5 standard errors (of the 40 per-seed losses) of the exact
/// ISM loss, and that standard error must be below 2% of |ISM| + 1 (so the test has teeth).
#[test]
fn ssm_loss_is_unbiased_for_ism() {
    for projection in Projection::ALL {
        for (m, d) in [
            (model::<f64>(3, &[16, 16], Activation::Softplus, 0.3, 1), 3),
            (model::<f64>(5, &[12], Activation::Tanh, 0.0, 2), 5),
        ] {
            let x = data(64, d, 1.0, 8);
            let rows = Rows::from_slice(&x, 64, d).unwrap();
            let ism = engine::loss(&m, rows, Objective::Ism).unwrap();
            let k = 40;
            let losses: Vec<f64> = (0..k)
                .map(|s| engine::loss(&m, rows, ssm(8, projection, 100 + s)).unwrap())
                .collect();
            let mean = losses.iter().sum::<f64>() / k as f64;
            let var = losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
            let se = (var / k as f64).sqrt();
            assert!(
                (mean - ism).abs() < 5.0 * se,
                "{projection:?}: mean SSM {mean} vs ISM {ism} (se {se})"
            );
            assert!(se < 0.02 * (ism.abs() + 1.0), "se {se} too large to test");
        }
    }
}

#[test]
fn dsm_is_esm_at_the_noisy_points() {
    for (m, d) in models() {
        let (n, sigma, seed) = (7, 0.3, 9);
        let x = data(n, d, 1.5, 10);
        let obj = Objective::Dsm {
            noise_std: sigma,
            seed,
            keys: Keys::Position,
        };
        let (loss, g) = loss_grad(&m, &x, obj);
        let mut xt = x.clone();
        let mut target = vec![0.0; x.len()];
        for b in 0..n {
            let mut s = Stream::new(seed, b as u64);
            for k in 0..d {
                let eps = s.normal();
                xt[b * d + k] += sigma * eps;
                target[b * d + k] = -eps / sigma;
            }
        }
        let (want, gw) = esm(&m, &xt, &target);
        assert!(close(loss, want, 1e-12), "loss {loss} vs {want}");
        for k in 0..g.len() {
            assert!(
                close(g[k], gw[k], 1e-12),
                "param {k}: {} vs {}",
                g[k],
                gw[k]
            );
        }
        check_fd(&m, &x, obj);
    }
}

/// The one-tangent path's score comes from the tape's value rows (laplacian.rs) instead of a
/// separate score pass: the same products in the same order, so the same bits.
#[test]
fn the_tapes_score_is_the_score_pass_bit_for_bit() {
    use scorematch_core::laplacian::{self, LapWorkspace, Order, Part, Tangents};
    for act in Activation::ALL {
        let m = model::<f64>(5, &[16, 9, 12], act, 0.3, 40);
        let (n, d) = (37, 5);
        let x = data(n, d, 1.5, 41);
        let mut want = vec![0.0; n * d];
        engine::score(&m, Rows::from_slice(&x, n, d).unwrap(), &mut want).unwrap();
        let mut ws = LapWorkspace::default();
        ws.prepare(&m, n, Tangents::PerSample(1), Order::First)
            .copy_from_slice(&x);
        laplacian::forward(&m, &mut ws, Part::Values);
        laplacian::gradient_into_tangents(&m, &mut ws);
        let got = ws.tangents_mut();
        assert_eq!(got.len(), want.len(), "{act:?}: tangent buffer length");
        for (k, (g, s)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                (-s).to_bits(),
                "{act:?}, element {k}: {g} vs {}",
                -s
            );
        }
    }
}

#[test]
fn random_objectives_do_not_depend_on_threads() {
    // 600 rows: several chunks for each objective.
    let m = model::<f64>(4, &[32, 32], Activation::Silu, 0.1, 3);
    let x = data(600, 4, 1.0, 11);
    let objs = [
        ssm(2, Projection::Gaussian, 5),
        ssm(3, Projection::Rademacher, 5),
        Objective::Dsm {
            noise_std: 0.1,
            seed: 5,
            keys: Keys::Position,
        },
    ];
    for obj in objs {
        let run = |t: usize| {
            ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| loss_grad(&m, &x, obj))
        };
        let (l1, g1) = run(1);
        let (l3, g3) = run(3);
        assert_eq!(l1.to_bits(), l3.to_bits(), "{}", obj.name());
        assert!(g1.iter().zip(&g3).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

/// A batch cut into parts, each part keyed by its rows' positions in the whole, gives the
/// whole batch's loss and gradient as the row-weighted sum of the parts'.
#[test]
fn keyed_parts_add_up_to_the_whole_batch() {
    let m = model::<f64>(3, &[12, 12], Activation::Softplus, 0.2, 8);
    let n = 300;
    let x = data(n, 3, 1.0, 21);
    // Rows of the whole batch taken by the first part (the rest go to the second).
    let first: Vec<usize> = (0..n).filter(|i| i % 3 != 1).collect();
    let second: Vec<usize> = (0..n).filter(|i| i % 3 == 1).collect();
    let gather = |rows: &[usize]| -> (Vec<f64>, Vec<u64>) {
        let xs = rows
            .iter()
            .flat_map(|&r| x[r * 3..r * 3 + 3].to_vec())
            .collect();
        (xs, rows.iter().map(|&r| r as u64).collect())
    };
    let (x1, k1) = gather(&first);
    let (x2, k2) = gather(&second);
    for obj in [
        ssm(2, Projection::Gaussian, 7),
        ssm(1, Projection::Rademacher, 7),
    ]
    .into_iter()
    .chain([Objective::Dsm {
        noise_std: 0.3,
        seed: 7,
        keys: Keys::Position,
    }]) {
        let keyed = |keys| match obj {
            Objective::Ssm {
                n_projections,
                projection,
                seed,
                ..
            } => Objective::Ssm {
                n_projections,
                projection,
                seed,
                keys,
            },
            Objective::Dsm {
                noise_std, seed, ..
            } => Objective::Dsm {
                noise_std,
                seed,
                keys,
            },
            _ => unreachable!(),
        };
        let (l, g) = loss_grad(&m, &x, obj);
        let (l1, g1) = loss_grad(&m, &x1, keyed(Keys::Given(&k1)));
        let (l2, g2) = loss_grad(&m, &x2, keyed(Keys::Given(&k2)));
        let (w1, w2) = (
            first.len() as f64 / n as f64,
            second.len() as f64 / n as f64,
        );
        assert!(close(w1 * l1 + w2 * l2, l, 1e-12), "{}", obj.name());
        for i in 0..g.len() {
            assert!(
                close(w1 * g1[i] + w2 * g2[i], g[i], 1e-11),
                "{} grad {i}",
                obj.name()
            );
        }
    }
    // One key per row, or an error.
    let rows = Rows::from_slice(&x1, x1.len() / 3, 3).unwrap();
    let mut g = vec![0.0; m.mlp().n_params()];
    let short = Objective::Dsm {
        noise_std: 0.3,
        seed: 7,
        keys: Keys::Given(&k1[1..]),
    };
    assert!(engine::loss_and_grad(&m, rows, short, &mut g).is_err());
}

#[test]
fn bad_objective_parameters_are_errors() {
    let m = model::<f64>(2, &[4], Activation::Tanh, 0.0, 0);
    let x = data(3, 2, 1.0, 0);
    let rows = Rows::from_slice(&x, 3, 2).unwrap();
    for obj in [
        ssm(0, Projection::Gaussian, 0),
        Objective::Dsm {
            noise_std: 0.0,
            seed: 0,
            keys: Keys::Position,
        },
        Objective::Dsm {
            noise_std: f64::NAN,
            seed: 0,
            keys: Keys::Position,
        },
    ] {
        let err = engine::loss(&m, rows, obj).unwrap_err().to_string();
        assert!(
            err.contains("n_projections") || err.contains("noise_std"),
            "{err}"
        );
    }
}

/// Each guard of `Objective::validate` answers for its own case with its own message, and
/// each bound is where its message says: n_projections in 1..=MAX_PROJECTIONS; noise_std
/// finite and > 0, with 1/noise_std² and 64·noise_std inside the model's type.
#[test]
fn objective_parameters_are_checked_at_their_bounds() {
    fn dsm<T: scorematch_core::real::Real>(noise_std: f64) -> Objective<'static, T> {
        Objective::Dsm {
            noise_std,
            seed: 0,
            keys: Keys::Position,
        }
    }
    fn err<T: scorematch_core::real::Real>(obj: Objective<'_, T>) -> String {
        obj.validate().unwrap_err().to_string()
    }
    let max = scorematch_core::objective::MAX_PROJECTIONS;
    for n in [1, max] {
        ssm(n, Projection::Gaussian, 0).validate().unwrap();
    }
    for n in [0, max + 1] {
        let e = err(ssm(n, Projection::Rademacher, 0));
        assert!(e.contains(&format!("between 1 and {max}, got {n}")), "{e}");
    }
    // Not positive or not finite: the first guard, whatever the later ones would say.
    for bad in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for e in [err(dsm::<f64>(bad)), err(dsm::<f32>(bad))] {
            assert!(
                e.contains("noise_std must be a finite number > 0"),
                "{bad}: {e}"
            );
        }
    }
    // Too small: 1/σ² overflows f32 below ~5.4e-20, f64 below ~7.5e-155.
    for (e, sigma) in [
        (err(dsm::<f32>(1e-30)), "1e-30"),
        (err(dsm::<f32>(1e-20)), "1e-20"),
        (err(dsm::<f64>(1e-200)), "1e-200"),
    ] {
        assert!(
            e.contains(&format!("noise_std = {sigma} is too small")),
            "{e}"
        );
        assert!(e.contains("1/noise_std² overflows"), "{e}");
    }
    dsm::<f32>(1e-19).validate().unwrap();
    dsm::<f64>(1e-150).validate().unwrap();
    // Too large: 64σ overflows f32 above ~5.3e36, f64 above ~2.8e306.
    for (e, sigma) in [
        (err(dsm::<f32>(1e37)), "1e37"),
        (err(dsm::<f64>(1e307)), "1e307"),
    ] {
        assert!(
            e.contains(&format!("noise_std = {sigma} is too large")),
            "{e}"
        );
    }
    dsm::<f32>(5e36).validate().unwrap();
    dsm::<f64>(2e306).validate().unwrap();
    // A tiny σ is fine in f64 where f32 refuses it: the bounds are the type's.
    dsm::<f64>(1e-30).validate().unwrap();
    dsm::<f64>(1e37).validate().unwrap();
}

/// The binding turns names into projections and back with these two functions.
#[test]
fn projection_names_round_trip() {
    assert_eq!(Projection::Gaussian.name(), "gaussian");
    assert_eq!(Projection::Rademacher.name(), "rademacher");
    for p in Projection::ALL {
        assert_eq!(Projection::from_name(p.name()).unwrap(), p);
    }
    for bad in ["", "Gaussian", "normal", "xyzzy"] {
        let e = Projection::from_name(bad).unwrap_err().to_string();
        assert!(
            e.contains("'gaussian' or 'rademacher'") && e.contains(&format!("got '{bad}'")),
            "{e}"
        );
    }
}

/// At d = 1 ESM and DSM take the d-tangent tape, from d = 2 the one-tangent tape with the
/// score taken from its value rows (objective.rs): derivatives.rs covers d = 2, 3 and 4, this
/// test d = 1.
#[test]
fn esm_and_dsm_gradients_on_both_paths() {
    for act in Activation::ALL {
        let m = model::<f64>(1, &[6, 5], act, 0.4, 30);
        let x = data(9, 1, 1.5, 12);
        let target = data(9, 1, 1.0, 13);
        let t = Rows::from_slice(&target, 9, 1).unwrap();
        check_fd(&m, &x, Objective::Esm { target: t });
        check_fd(
            &m,
            &x,
            Objective::Dsm {
                noise_std: 0.2,
                seed: 1,
                keys: Keys::Position,
            },
        );
    }
    // The path each objective takes by dimension (a speed choice: both ESM/DSM paths give
    // the same numbers, so only this pins it).
    use scorematch_core::laplacian::Tangents;
    assert_eq!(scorematch_core::objective::SCORE_TANGENT_MIN_DIM, 2);
    let t = data(1, 1, 1.0, 0);
    let t = Rows::from_slice(&t, 1, 1).unwrap();
    let dsm: Objective<'_, f64> = Objective::Dsm {
        noise_std: 0.2,
        seed: 1,
        keys: Keys::Position,
    };
    for obj in [Objective::Esm { target: t }, dsm] {
        assert_eq!(obj.tangents(1), Tangents::Identity);
        assert_eq!(obj.tangents(2), Tangents::PerSample(1));
        assert_eq!(obj.tangents(64), Tangents::PerSample(1));
    }
    assert_eq!(Objective::<'_, f64>::Ism.tangents(64), Tangents::Identity);
    assert_eq!(
        ssm(3, Projection::Gaussian, 0).tangents(1),
        Tangents::PerSample(3)
    );
}

/// A batch of several chunks gives the mean of its rows' own losses and gradients: each
/// chunk reads the targets (ESM) and the keys (DSM) of its own rows. At d = 1 (the general
/// path, where the loss itself reads them) with 200 rows, three chunks of 85 samples; each
/// row is compared with a batch of that row alone, given its target or key.
#[test]
fn every_chunk_reads_its_own_rows_targets_and_keys() {
    /// The mean over the `n` rows of `x` of each row's loss and gradient alone.
    fn mean_of_rows<'a>(
        m: &Model<f64>,
        x: &[f64],
        row: impl Fn(usize) -> Objective<'a, f64>,
    ) -> (f64, Vec<f64>) {
        let n = x.len();
        let (mut loss, mut g) = (0.0, vec![0.0; m.mlp().n_params()]);
        for r in 0..n {
            let (l, gr) = loss_grad(m, &x[r..r + 1], row(r));
            loss += l / n as f64;
            for (w, v) in g.iter_mut().zip(&gr) {
                *w += v / n as f64;
            }
        }
        (loss, g)
    }
    fn dsm(keys: &[u64]) -> Objective<'_, f64> {
        Objective::Dsm {
            noise_std: 0.3,
            seed: 5,
            keys: Keys::Given(keys),
        }
    }
    let n = 200;
    for (i, act) in Activation::ALL.into_iter().enumerate() {
        let m = model(1, &[7, 5], act, 0.3, 40 + i as u64);
        let x = data(n, 1, 1.5, 41 + i as u64);
        let t = data(n, 1, 2.0, 42 + i as u64);
        let keys: Vec<u64> = (0..n as u64).map(|k| 1000 + 7 * k).collect();
        let esm = |r: std::ops::Range<usize>| Objective::Esm {
            target: Rows::from_slice(&t[r.clone()], r.len(), 1).unwrap(),
        };
        let cases = [
            (
                "esm",
                loss_grad(&m, &x, esm(0..n)),
                mean_of_rows(&m, &x, |r| esm(r..r + 1)),
            ),
            (
                "dsm",
                loss_grad(&m, &x, dsm(&keys)),
                mean_of_rows(&m, &x, |r| dsm(&keys[r..r + 1])),
            ),
        ];
        for (name, (loss, g), (want_loss, want_g)) in cases {
            assert!(
                close(loss, want_loss, 1e-12),
                "{name} {act:?}: {loss} vs {want_loss}"
            );
            assert_eq!(g.len(), want_g.len());
            for (k, (a, b)) in g.iter().zip(&want_g).enumerate() {
                assert!(close(*a, *b, 1e-11), "{name} {act:?} param {k}: {a} vs {b}");
            }
        }
    }
}

/// hessian_trace leaves a thread's tape without what only a gradient reads (σ''', the last
/// layer's J, some outputs), and first-order tapes skip σ''': a gradient computed on the same
/// thread afterwards, reusing those buffers, has the bits of one computed before.
#[test]
fn gradients_after_a_hessian_trace_on_the_same_thread_keep_their_bits() {
    let pool = ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut s = Stream::new(5, 0);
    for (m, d) in models() {
        let n = 37;
        let x: Vec<f64> = (0..n * d).map(|_| 1.5 * s.normal()).collect();
        // Other rows for the trace, so that what it leaves behind differs from the gradient's.
        let x2: Vec<f64> = (0..n * d).map(|_| 1.5 * s.normal()).collect();
        let rows2 = Rows::from_slice(&x2, n, d).unwrap();
        let dsm = Objective::Dsm {
            noise_std: 0.3,
            seed: 2,
            keys: Keys::Position,
        };
        for obj in [Objective::Ism, ssm(2, Projection::Gaussian, 4), dsm] {
            pool.install(|| {
                let before = loss_grad(&m, &x, obj);
                let mut tr = vec![0.0; n];
                engine::hessian_trace(&m, rows2, &mut tr).unwrap();
                assert!(tr.iter().all(|t| t.is_finite() && *t != 0.0));
                let after = loss_grad(&m, &x, obj);
                assert_eq!(before.0.to_bits(), after.0.to_bits(), "{}", obj.name());
                assert!(
                    before
                        .1
                        .iter()
                        .zip(&after.1)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} {:?}",
                    obj.name(),
                    m.mlp().activation()
                );
            });
        }
    }
}
