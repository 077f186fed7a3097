//! Langevin sampling: the stationary variances of a Gaussian target (ULA's biased one, MALA's
//! exact one), MALA's acceptance, adaptation, and the
//! determinism guarantees (prefix property, thread count, blocks), and bad arguments.

mod common;
use common::*;
use rayon::ThreadPoolBuilder;
use scorematch_core::forward::chunk_rows;
use scorematch_core::langevin::{
    check_chain_range, sample, Config, Level, Method, Output, Sampler,
};
use scorematch_core::rng::Stream;
use scorematch_core::{Activation, Error, Mlp, Model, Real, Rows};

/// The energy (1/(2σ²))‖x‖²: all network weights zero, alpha = 1/σ². Target N(0, σ² I).
fn gaussian<T: Real>(dim: usize, sigma2: f64) -> Model<T> {
    Model::new(Mlp::zeros(dim, &[8], Activation::Softplus, 1.0 / sigma2).unwrap()).unwrap()
}

/// mean(x²) over every coordinate of every chain's final state — independent draws (the
/// chains are independent), so the effective sample size is their number N and the standard
/// error of the variance estimate is v·√(2/N).
fn check_variance<T: Real>(out: &Output<T>, want: f64, what: &str) {
    let n = out.samples.len() as f64;
    let v = out
        .samples
        .iter()
        .map(|x| x.to_f64_exact().powi(2))
        .sum::<f64>()
        / n;
    let se = want * (2.0 / n).sqrt();
    assert!(
        (v - want).abs() < 4.5 * se,
        "{what}: variance {v:.4}, expected {want:.4} ± {:.4} (4.5 s.e.)",
        4.5 * se
    );
}

#[test]
fn ula_and_mala_reach_the_known_stationary_variances() {
    let (sigma2, eps, dim, n) = (2.0, 1.0, 4, 4096);
    let m = gaussian::<f64>(dim, sigma2);
    let ula = sample(
        &m,
        n,
        None,
        Config::new(Method::Ula, 120, eps, 1.0, 1),
        false,
    )
    .unwrap();
    // ULA's bias: σ²/(1 − ε/(4σ²)) = 2.286, 14% above σ² (8 standard errors).
    check_variance(&ula, sigma2 / (1.0 - eps / (4.0 * sigma2)), "ULA");
    let mala = sample(
        &m,
        n,
        None,
        Config::new(Method::Mala, 200, eps, 1.0, 2),
        false,
    )
    .unwrap();
    check_variance(&mala, sigma2, "MALA");
    let acc = mala.acceptance.iter().sum::<f64>() / n as f64;
    assert!(acc > 0.5 && acc < 1.0, "MALA acceptance {acc}");
    // float32 runs the same maths.
    let m32 = gaussian::<f32>(dim, sigma2);
    let ula32 = sample(
        &m32,
        n,
        None,
        Config::new(Method::Ula, 120, eps, 1.0, 3),
        false,
    )
    .unwrap();
    check_variance(&ula32, sigma2 / (1.0 - eps / (4.0 * sigma2)), "ULA f32");
}

#[test]
fn temperature_and_annealing_scale_the_target() {
    let (sigma2, eps, dim, n, temp) = (1.0, 0.4, 4, 4096, 2.5);
    let m = gaussian::<f64>(dim, sigma2);
    // Target exp(−E/T) = N(0, Tσ²): ULA's variance is Tσ²/(1 − ε/(4Tσ²)).
    let hot = sample(
        &m,
        n,
        None,
        Config::new(Method::Ula, 150, eps, temp, 4),
        false,
    )
    .unwrap();
    check_variance(
        &hot,
        temp * sigma2 / (1.0 - eps / (4.0 * temp * sigma2)),
        "T = 2.5",
    );
    // MALA's acceptance test tempers the energy too (ΔE/T): its variance is Tσ² exactly,
    // at a step size (ε = 1) where ULA's would be 10 standard errors high.
    let eps_mala = 2.5 * eps;
    let mala = sample(
        &m,
        n,
        None,
        Config::new(Method::Mala, 150, eps_mala, temp, 6),
        false,
    )
    .unwrap();
    check_variance(&mala, temp * sigma2, "MALA, T = 2.5");
    // Annealing ends at the last temperature with ε itself.
    let cfg = Config::annealed(&[10.0, 3.0, 1.0], eps, 100, 5).unwrap();
    assert_eq!(cfg.levels[0].step_size, eps * 10.0);
    assert_eq!(cfg.levels[2].step_size, eps);
    let ann = sample(&m, n, None, cfg, true).unwrap();
    check_variance(&ann, sigma2 / (1.0 - eps / (4.0 * sigma2)), "annealed");
    assert_eq!(ann.trajectory.len(), 300 * n * dim);
    assert!(ann.step_sizes.iter().all(|&s| s == eps));
}

#[test]
fn mala_acceptance_tends_to_one_as_the_step_shrinks() {
    let m = model::<f64>(3, &[16, 16], Activation::Tanh, 0.5, 7);
    let mut last = 0.0;
    for eps in [0.5, 0.05, 0.005, 0.0005] {
        let out = sample(
            &m,
            256,
            None,
            Config::new(Method::Mala, 40, eps, 1.0, 8),
            false,
        )
        .unwrap();
        let acc = out.acceptance.iter().sum::<f64>() / 256.0;
        assert!(
            acc >= last - 0.01,
            "acceptance {acc} at ε = {eps} below {last}"
        );
        last = acc;
    }
    assert!(last > 0.995, "acceptance at ε = 5e-4: {last}");
}

#[test]
fn adaptation_reaches_the_target_acceptance() {
    let m = gaussian::<f64>(8, 1.0);
    for (target, eps0) in [(0.574, 1e-3), (0.8, 5.0)] {
        let mut cfg = Config::new(Method::Mala, 300, eps0, 1.0, 9);
        cfg.burn_in = 400;
        cfg.adapt = Some(target);
        let out = sample(&m, 512, None, cfg, false).unwrap();
        let acc = out.acceptance.iter().sum::<f64>() / 512.0;
        assert!(
            (acc - target).abs() < 0.05,
            "acceptance {acc}, target {target}"
        );
        // Per-chain step sizes are tuned and then frozen: each its own, all positive.
        assert!(out.step_sizes.iter().all(|&s| s > 0.0 && s != eps0));
        let mut sorted = out.step_sizes.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        assert_eq!(sorted.len(), 512, "chains share tuned step sizes");
    }
}

/// ε is tuned by dual averaging during burn-in (each step uses the current iterate) and
/// frozen at the averaged iterate exactly when burn-in ends: two runs that differ only in
/// burn-in (10 and 11 steps) take the same first 10 steps, then part.
#[test]
fn adaptation_freezes_exactly_when_burn_in_ends() {
    let m = gaussian::<f64>(4, 1.0);
    let n = 40;
    let run = |burn_in: usize| {
        let mut cfg = Config::new(Method::Mala, 5, 0.05, 1.0, 21);
        cfg.burn_in = burn_in;
        cfg.adapt = Some(0.574);
        let mut s = Sampler::new(&m, n, None, cfg).unwrap();
        let mut eps = vec![];
        let mut x10 = vec![0.0; n * 4];
        while !s.is_done() {
            s.run(&m, 1, None).unwrap();
            eps.push(s.step_sizes());
            if s.steps_done() == 10 {
                s.positions(&mut x10);
            }
        }
        (eps, x10)
    };
    let (a, xa) = run(10);
    let (b, xb) = run(11);
    assert_eq!(xa, xb, "burn-in's length changed its first steps");
    assert_eq!(a[..9], b[..9], "step sizes during burn-in");
    // After step 10: a's ε is frozen at the averaged iterate, b's is still the iterate.
    let parted = a[9].iter().zip(&b[9]).filter(|(x, y)| x != y).count();
    assert!(
        parted > n / 2,
        "only {parted} of {n} chains froze at another ε"
    );
    // Then a's ε never moves.
    assert!(a[9..].iter().all(|e| *e == a[9]), "ε moved after burn-in");
}

/// A run of no chains costs nothing, however long: its one block of 2**32 − 1 steps, with a
/// trajectory, used to list every step it keeps (a 32 GiB vector) before running none.
#[test]
fn a_run_of_no_chains_takes_the_longest_run_in_one_block() {
    let model = gaussian::<f32>(2, 1.0);
    let steps = u32::MAX as usize;
    let out = sample(
        &model,
        0,
        None,
        Config::new(Method::Ula, steps, 0.1, 1.0, 0),
        true,
    )
    .unwrap();
    assert!(out.samples.is_empty() && out.trajectory.is_empty());
    let mut cfg = Config::new(Method::Mala, steps - 3, 0.1, 1.0, 0);
    (cfg.burn_in, cfg.thin) = (3, 7);
    let mut sampler = Sampler::new(&model, 0, None, cfg).unwrap();
    assert_eq!(
        sampler.run(&model, usize::MAX, Some(&mut [])).unwrap(),
        steps
    );
    assert!(sampler.is_done());
}

fn configs() -> Vec<(Config, bool)> {
    let mut adapt = Config::new(Method::Mala, 30, 0.1, 1.0, 11);
    adapt.burn_in = 20;
    adapt.adapt = Some(0.6);
    adapt.thin = 3;
    let mut ula = Config::new(Method::Ula, 25, 0.05, 0.7, 12);
    ula.burn_in = 5;
    ula.thin = 2;
    vec![
        (ula, true),
        (Config::new(Method::Mala, 20, 0.2, 1.0, 13), true),
        (adapt, true),
        (Config::annealed(&[4.0, 1.0], 0.05, 10, 14).unwrap(), false),
    ]
}

#[test]
fn the_first_chains_do_not_depend_on_how_many_run() {
    let m = model::<f32>(3, &[16, 16], Activation::Silu, 0.3, 10);
    let (big, small) = (chunk_rows(&m) + 45, 17);
    for (cfg, traj) in configs() {
        let a = sample(&m, big, None, cfg.clone(), traj).unwrap();
        let b = sample(&m, small, None, cfg.clone(), traj).unwrap();
        assert_eq!(&a.samples[..small * 3], &b.samples[..], "{cfg:?}");
        assert_eq!(&a.acceptance[..small], &b.acceptance[..]);
        assert_eq!(&a.step_sizes[..small], &b.step_sizes[..]);
        let kept = if traj { cfg.n_kept() } else { 0 };
        for k in 0..kept {
            let ra = &a.trajectory[k * big * 3..(k * big + small) * 3];
            let rb = &b.trajectory[k * small * 3..(k + 1) * small * 3];
            assert_eq!(ra, rb, "trajectory slab {k}");
        }
    }
}

/// Chains a..b of a run equal a run of b − a chains started at `first_chain = a`: how a
/// run is cut into blocks on a cluster.
#[test]
fn a_range_of_chains_runs_on_its_own() {
    let m = model::<f64>(2, &[8], Activation::Tanh, 0.5, 4);
    let (n, a, b) = (chunk_rows(&m) + 30, 40, chunk_rows(&m) + 7);
    for (cfg, traj) in configs() {
        let whole = sample(&m, n, None, cfg.clone(), traj).unwrap();
        let mut part_cfg = cfg.clone();
        part_cfg.first_chain = a as u64;
        let part = sample(&m, b - a, None, part_cfg, traj).unwrap();
        assert_eq!(&whole.samples[a * 2..b * 2], &part.samples[..], "{cfg:?}");
        assert_eq!(&whole.step_sizes[a..b], &part.step_sizes[..]);
    }
}

#[test]
fn results_are_bit_identical_for_any_thread_count_and_block_size() {
    let m = model::<f64>(2, &[32, 32], Activation::Softplus, 0.1, 11);
    let n = 3 * chunk_rows(&m) + 11;
    for (cfg, traj) in configs() {
        let run = || sample(&m, n, None, cfg.clone(), traj).unwrap();
        let one = ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(run);
        let three = ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap()
            .install(run);
        assert!(one == three, "{cfg:?}: 1 and 3 threads differ");
        // The same run advanced in blocks of 7 steps.
        let mut s = Sampler::new(&m, n, None, cfg.clone()).unwrap();
        let mut t = vec![0.0; cfg.n_kept() * n * 2];
        while !s.is_done() {
            s.run(&m, 7, traj.then_some(&mut t[..])).unwrap();
        }
        let mut x = vec![0.0; n * 2];
        s.positions(&mut x);
        assert_eq!(x, one.samples);
        if traj {
            assert_eq!(t, one.trajectory);
        }
        assert_eq!(s.acceptance(), one.acceptance);
    }
}

/// What the binding reads between blocks (a progress bar, the states kept so far).
#[test]
fn a_sampler_counts_its_steps_and_kept_states() {
    let m = gaussian::<f64>(3, 1.0);
    let mut cfg = Config::new(Method::Ula, 9, 0.1, 1.0, 5);
    cfg.burn_in = 4;
    cfg.thin = 2;
    let mut s = Sampler::new(&m, 7, None, cfg).unwrap();
    assert_eq!((s.n_chains(), s.dim()), (7, 3));
    let mut seen = vec![];
    while !s.is_done() {
        let ran = s.run(&m, 3, None).unwrap();
        seen.push((ran, s.steps_done(), s.kept_so_far()));
    }
    // 13 steps in blocks of 3; after burn-in 4, every second state is kept: steps 6, 8, ...
    assert_eq!(
        seen,
        vec![(3, 3, 0), (3, 6, 1), (3, 9, 2), (3, 12, 4), (1, 13, 4)]
    );
    assert_eq!(s.run(&m, 3, None).unwrap(), 0);
}

#[test]
fn trajectories_keep_every_thin_th_state_after_burn_in() {
    let m = model::<f64>(2, &[8], Activation::Tanh, 0.5, 12);
    let mut cfg = Config::new(Method::Ula, 10, 0.1, 1.0, 15);
    let full = sample(&m, 5, None, cfg.clone(), true).unwrap();
    assert_eq!(full.trajectory.len(), 10 * 5 * 2);
    assert_eq!(&full.trajectory[9 * 10..], &full.samples[..]);
    // Burn-in 4 then 10 steps, every 3rd kept: states after steps 7, 10, 13 (1-based).
    cfg.levels[0].n_steps = 10;
    cfg.burn_in = 4;
    cfg.thin = 3;
    let longer = Config::new(Method::Ula, 14, 0.1, 1.0, 15);
    let every = sample(&m, 5, None, longer, true).unwrap();
    let thin = sample(&m, 5, None, cfg, true).unwrap();
    assert_eq!(thin.trajectory.len(), 3 * 5 * 2);
    for (k, step) in [7usize, 10, 13].into_iter().enumerate() {
        assert_eq!(
            &thin.trajectory[k * 10..(k + 1) * 10],
            &every.trajectory[(step - 1) * 10..step * 10]
        );
    }
    assert_eq!(thin.samples, every.samples);
}

#[test]
fn init_is_used_as_given() {
    let m = model::<f64>(2, &[8], Activation::Tanh, 0.5, 13);
    let x0: Vec<f64> = (0..6).map(|i| i as f64).collect();
    let rows = Rows::from_slice(&x0, 3, 2).unwrap();
    let out = sample(
        &m,
        3,
        Some(rows),
        Config::new(Method::Ula, 1, 1e-12, 1.0, 1),
        false,
    )
    .unwrap();
    assert_eq!(out.samples.len(), x0.len());
    for (a, b) in out.samples.iter().zip(&x0) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn divergent_chains_are_reported() {
    // ε·α/2 = 5: x is multiplied by −4 each step; float32 overflows after about 64 steps,
    // at once from 1e38.
    let m = gaussian::<f32>(2, 1.0);
    let mut x0 = vec![1.0f32; 8];
    x0[2] = 1e38;
    x0[7] = -1e38;
    let rows = Rows::from_slice(&x0, 4, 2).unwrap();
    let mut s = Sampler::new(
        &m,
        4,
        Some(rows),
        Config::new(Method::Ula, 10, 10.0, 1.0, 1),
    )
    .unwrap();
    s.run(&m, 10, None).unwrap();
    assert_eq!(s.diverged_at(), vec![None, Some(0), None, Some(0)]);
    let err = s.check_divergence().unwrap_err();
    assert_eq!(
        err,
        Error::Diverged {
            chains: 2,
            n_chains: 4,
            first_step: 0
        }
    );
    assert!(err.to_string().contains("2 of 4 chains diverged"), "{err}");
    // Counted at the first step where any diverged, not at the end of the block run: chain 1
    // diverges at step 0, chain 3 (from 1e36, x·(−4)^t) a few steps later; either way the
    // error is the same, in blocks of 1 or of 10 steps (scorematch.langevin stops at the
    // first step). It counted the chains diverged by the block's end.
    x0[2] = 1e38;
    x0[7] = -1e36;
    for block in [1, 10] {
        let rows = Rows::from_slice(&x0, 4, 2).unwrap();
        let cfg = Config::new(Method::Ula, 10, 10.0, 1.0, 1);
        let mut s = Sampler::new(&m, 4, Some(rows), cfg).unwrap();
        while s.check_divergence().is_ok() && !s.is_done() {
            s.run(&m, block, None).unwrap();
        }
        assert_eq!(
            s.check_divergence().unwrap_err(),
            Error::Diverged {
                chains: 1,
                n_chains: 4,
                first_step: 0
            },
            "blocks of {block}"
        );
        let later = s.diverged_at()[3];
        assert!(
            later.is_some_and(|t| t > 0) || block == 1,
            "{:?}",
            s.diverged_at()
        );
    }
    // MALA rejects such proposals instead. From 1e19 the energy (5e37) is finite in float32,
    // the proposal's (from about −4e19) is not.
    x0[2] = 1e19;
    x0[7] = -1e19;
    let rows = Rows::from_slice(&x0, 4, 2).unwrap();
    let mut s = Sampler::new(
        &m,
        4,
        Some(rows),
        Config::new(Method::Mala, 10, 10.0, 1.0, 1),
    )
    .unwrap();
    s.run(&m, 10, None).unwrap();
    assert!(s.check_divergence().is_ok());
    let mut x = vec![0.0f32; 8];
    s.positions(&mut x);
    assert!(x.iter().all(|v| v.is_finite()), "{x:?}");
}

#[test]
fn mala_chains_whose_start_overflows_diverge_there() {
    // At 1e20 the energy ½‖x‖² overflows float32: the acceptance test at such a start is
    // NaN (every proposal rejected) or +Inf (the first finite one taken whatever the
    // target). Before, those chains ran on without an error.
    let m = gaussian::<f32>(2, 1.0);
    let good = [0.5f32, -0.25, 1.0, 0.0, -1.0, 2.0];
    let mut bad = good;
    bad[2] = 1e20;
    let run = |x0: &[f32]| {
        let rows = Rows::from_slice(x0, 3, 2).unwrap();
        let mut s = Sampler::new(
            &m,
            3,
            Some(rows),
            Config::new(Method::Mala, 20, 0.5, 1.0, 7),
        )
        .unwrap();
        s.run(&m, 20, None).unwrap();
        let mut x = vec![0.0f32; 6];
        s.positions(&mut x);
        (s, x)
    };
    let (s, x) = run(&bad);
    assert_eq!(s.diverged_at(), vec![None, Some(0), None]);
    let err = s.check_divergence().unwrap_err();
    assert_eq!(
        err,
        Error::DivergedAtStart {
            chains: 1,
            n_chains: 3
        }
    );
    assert!(
        err.to_string().starts_with(
            "1 of 3 chains diverged (NaN or Inf score or energy) at step 0: the model's \
             score or energy is NaN or Inf at 1 of the starting points"
        ),
        "{err}"
    );
    // The diverged chain is frozen at its start; the others are those of a finite start.
    assert_eq!(&x[2..4], &bad[2..4]);
    assert_eq!(s.acceptance()[1], 0.0);
    let (ok, y) = run(&good);
    assert!(ok.check_divergence().is_ok());
    assert_eq!((&x[..2], &x[4..]), (&y[..2], &y[4..]));
    assert!(ok.acceptance()[0] > 0.0 && s.acceptance()[0] == ok.acceptance()[0]);
}

#[test]
fn bad_arguments_are_errors() {
    let m = model::<f64>(2, &[8], Activation::Tanh, 0.5, 14);
    let bad = |cfg: Config| {
        Sampler::new(&m, 4, None, cfg)
            .err()
            .expect("must fail")
            .to_string()
    };
    let ok = Config::new(Method::Mala, 10, 0.1, 1.0, 0);
    assert!(Sampler::new(&m, 4, None, ok.clone()).is_ok());
    let msg = bad(Config::new(Method::Ula, 0, 0.1, 1.0, 0));
    assert!(msg.contains("at least 1"), "{msg}");
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let msg = bad(Config::new(Method::Ula, 10, eps, 1.0, 0));
        assert!(
            msg.contains("step_size must be a finite number > 0"),
            "{msg}"
        );
    }
    assert!(bad(Config::new(Method::Ula, 10, 0.1, 0.0, 0)).contains("temperature"));
    let mut c = ok.clone();
    c.thin = 0;
    assert!(bad(c).contains("thin"));
    let mut c = ok.clone();
    c.adapt = Some(0.5);
    assert!(bad(c.clone()).contains("burn_in"));
    c.burn_in = 5;
    c.method = Method::Ula;
    assert!(bad(c.clone()).contains("'mala'"));
    c.method = Method::Mala;
    c.adapt = Some(1.5);
    assert!(bad(c).contains("target_accept"));
    assert!(Config::annealed(&[], 0.1, 10, 0).is_err());
    assert!(Config::annealed(&[1.0, -1.0], 0.1, 10, 0).is_err());
    // ε·T_i/T_last past the floats' range: Inf, then 0.
    for (temps, eps) in [([1e300, 1e-300], 0.1), ([1e-300, 1e300], 1e-10)] {
        match Config::annealed(&temps, eps, 10, 0) {
            Err(Error::Value(m)) => assert!(m.contains("narrower range"), "{m}"),
            other => panic!("{temps:?}: {other:?}"),
        }
    }
    let x0 = vec![0.0; 6];
    let rows = Rows::from_slice(&x0, 2, 3).unwrap();
    let err = Sampler::new(&m, 2, Some(rows), ok.clone()).err().unwrap();
    assert!(matches!(err, Error::Shape(_)), "{err}");
    let mut x0 = vec![0.0; 8];
    x0[5] = f64::NAN;
    let rows = Rows::from_slice(&x0, 4, 2).unwrap();
    let err = Sampler::new(&m, 4, Some(rows), ok).err().unwrap();
    assert_eq!(
        err,
        Error::NonFinite {
            what: "init",
            row: 2
        }
    );
}

/// ULA and MALA take the steps of their formulas, replayed here from the engine's energy and
/// score and each chain's stream `Stream::new(seed, i)` (x₀ ~ N(0, I), then per step d normals
/// and, for MALA, one uniform), at a temperature T ≠ 1:
/// ULA y = x + (ε/2)·s(x) + √ε·ξ with s = −∇E/T; MALA accepts y when
/// ln u < (E(x) − E(y))/T − ‖x − y − (ε/2)s(y)‖²/(2ε) + ‖y − x − (ε/2)s(x)‖²/(2ε).
/// The statistical tests above cannot see, e.g., a flipped sign of ξ.
#[test]
fn ula_and_mala_take_the_steps_of_their_formulas() {
    let m = model::<f64>(2, &[8, 8], Activation::Softplus, 0.5, 21);
    let (n, d, steps, eps, temp, seed) = (64, 2, 10, 2.5, 0.7, 5);
    for method in [Method::Ula, Method::Mala] {
        let out = sample(
            &m,
            n,
            None,
            Config::new(method, steps, eps, temp, seed),
            true,
        )
        .unwrap();
        assert_eq!(out.trajectory.len(), steps * n * d, "{method:?}");
        let mut accepted = 0;
        for i in 0..n {
            let mut s = Stream::new(seed, i as u64);
            let mut x: Vec<f64> = (0..d).map(|_| s.normal()).collect();
            let mut n_acc = 0;
            for t in 0..steps {
                let sx: Vec<f64> = score(&m, &x).iter().map(|v| v / temp).collect();
                let y: Vec<f64> = (0..d)
                    .map(|k| x[k] + 0.5 * eps * sx[k] + eps.sqrt() * s.normal())
                    .collect();
                let take = match method {
                    Method::Mala => {
                        let u = s.uniform();
                        let sy: Vec<f64> = score(&m, &y).iter().map(|v| v / temp).collect();
                        let q = |to: &[f64], from: &[f64], s_from: &[f64]| {
                            (0..d)
                                .map(|k| (to[k] - from[k] - 0.5 * eps * s_from[k]).powi(2))
                                .sum::<f64>()
                                / (2.0 * eps)
                        };
                        let a = (energy(&m, &x)[0] - energy(&m, &y)[0]) / temp - q(&x, &y, &sy)
                            + q(&y, &x, &sx);
                        u.ln() < a
                    }
                    _ => true,
                };
                if take {
                    x = y;
                    n_acc += 1;
                }
                let got = &out.trajectory[(t * n + i) * d..(t * n + i + 1) * d];
                for k in 0..d {
                    assert!(
                        close(got[k], x[k], 1e-12),
                        "{method:?} chain {i} step {t} coordinate {k}: {} vs {}",
                        got[k],
                        x[k]
                    );
                }
            }
            if method == Method::Mala {
                assert_eq!(out.acceptance[i], n_acc as f64 / steps as f64, "chain {i}");
                accepted += n_acc;
            }
        }
        if method == Method::Mala {
            // Both outcomes occur, so both branches were checked.
            assert!(
                0 < accepted && accepted < n * steps,
                "{accepted} of {}",
                n * steps
            );
        }
    }
}

/// A run of several levels of unequal length after a burn-in takes burn-in steps at the first
/// level, then each level for exactly its own steps, in order: replayed step by step as in
/// the test above (ULA, s = −∇E/T), with the level of each step counted here independently.
#[test]
fn each_level_runs_for_its_own_steps_after_burn_in() {
    let m = model::<f64>(2, &[8], Activation::Tanh, 0.5, 22);
    let level = |temperature, step_size, n_steps| Level {
        temperature,
        step_size,
        n_steps,
    };
    let levels = vec![level(3.0, 0.4, 3), level(0.5, 0.05, 2), level(1.0, 0.2, 4)];
    let (n, d, burn_in, seed) = (8, 2, 2, 9);
    let cfg = Config {
        method: Method::Ula,
        levels: levels.clone(),
        burn_in,
        thin: 1,
        adapt: None,
        seed,
        first_chain: 0,
    };
    let out = sample(&m, n, None, cfg, true).unwrap();
    let schedule: Vec<Level> = std::iter::repeat_n(levels[0], burn_in)
        .chain(
            levels
                .iter()
                .flat_map(|l| std::iter::repeat_n(*l, l.n_steps)),
        )
        .collect();
    assert_eq!(out.trajectory.len(), (schedule.len() - burn_in) * n * d);
    for i in 0..n {
        let mut s = Stream::new(seed, i as u64);
        let mut x: Vec<f64> = (0..d).map(|_| s.normal()).collect();
        for (t, l) in schedule.iter().enumerate() {
            let sx = score(&m, &x);
            x = (0..d)
                .map(|k| {
                    x[k] + 0.5 * l.step_size * sx[k] / l.temperature
                        + l.step_size.sqrt() * s.normal()
                })
                .collect();
            if t >= burn_in {
                let r = (t - burn_in) * n + i;
                let got = &out.trajectory[r * d..(r + 1) * d];
                for k in 0..d {
                    assert!(
                        close(got[k], x[k], 1e-12),
                        "chain {i} step {t} coordinate {k}: {} vs {}",
                        got[k],
                        x[k]
                    );
                }
            }
        }
        let last = &out.samples[i * d..(i + 1) * d];
        assert!(last.iter().zip(&x).all(|(a, b)| close(*a, *b, 1e-12)));
    }
}

/// Each bound of `Config::validate` sits where its message says, and each message names its
/// own case.
#[test]
fn run_options_are_checked_at_their_bounds() {
    let cfg = |levels: Vec<(usize, f64, f64)>, burn_in: usize| Config {
        method: Method::Ula,
        levels: levels
            .into_iter()
            .map(|(n_steps, step_size, temperature)| Level {
                temperature,
                step_size,
                n_steps,
            })
            .collect(),
        burn_in,
        thin: 1,
        adapt: None,
        seed: 0,
        first_chain: 0,
    };
    let err = |c: Config| c.validate().unwrap_err().to_string();
    let max = u32::MAX as usize;
    // At most u32::MAX steps, burn-in included; the message names the run's shape.
    cfg(vec![(1, 0.1, 1.0)], max - 1).validate().unwrap();
    let e = err(cfg(vec![(1, 0.1, 1.0)], max));
    assert!(
        e.contains(&format!("burn_in + n_steps = {} steps", max as u64 + 1)),
        "{e}"
    );
    cfg(vec![(max / 2, 0.1, 1.0), (max - max / 2, 0.1, 1.0)], 0)
        .validate()
        .unwrap();
    let e = err(cfg(vec![(max / 2 + 1, 0.1, 1.0); 2], 0));
    assert!(e.contains("2 temperatures × steps_per_level"), "{e}");
    let e = err(cfg(
        vec![(max / 2 + 1, 0.1, 1.0), (max / 2 + 2, 0.1, 1.0)],
        0,
    ));
    assert!(e.contains("burn_in + the levels' steps"), "{e}");
    assert!(
        e.contains(&format!("{} steps, at most {max}", max as u64 + 2)),
        "{e}"
    );
    // The drift coefficient ε/(2T) must be a float: 0.5·1e10/1e-300 is not, 0.5·3e298/1e-10
    // is (1.5e308).
    let e = err(cfg(vec![(1, 1e10, 1e-300)], 0));
    assert!(
        e.contains("step_size / temperature = 1e10/1e-300 overflows"),
        "{e}"
    );
    cfg(vec![(1, 3e298, 1e-10)], 0).validate().unwrap();
    // target_accept is in the open interval (0, 1), and only for MALA.
    let mut c = cfg(vec![(5, 0.1, 1.0)], 3);
    c.method = Method::Mala;
    for ok in [1e-9, 0.5, 1.0 - 1e-9] {
        c.adapt = Some(ok);
        c.validate().unwrap();
    }
    for bad in [0.0, 1.0, -0.5, f64::NAN] {
        c.adapt = Some(bad);
        assert!(err(c.clone()).contains(&format!("target_accept must be in (0, 1), got {bad}")));
    }
    c.method = Method::Ula;
    c.adapt = Some(0.5);
    assert!(err(c).contains("it needs method 'mala', got 'ula'"));
    assert_eq!(Method::Mala.name(), "mala");
    // Annealed step sizes scale with T_i / T_last, whatever T_last is.
    let a = Config::annealed(&[8.0, 2.0, 0.5], 0.1, 7, 0).unwrap();
    let eps: Vec<f64> = a.levels.iter().map(|l| l.step_size).collect();
    assert_eq!(eps, [0.1 * 16.0, 0.1 * 4.0, 0.1]);
    assert!(a.levels.iter().all(|l| l.n_steps == 7));
    // Chains first_chain .. first_chain + n end at i64::MAX at most.
    let top = i64::MAX as u64;
    check_chain_range(top - 5, 5).unwrap();
    check_chain_range(0, 0).unwrap();
    for (first, n) in [(top - 5, 6), (top + 1, 0), (u64::MAX, 1)] {
        let e = check_chain_range(first, n).unwrap_err().to_string();
        assert!(e.contains(&format!("got {first} + {n}")), "{e}");
    }
}

#[test]
fn a_mala_start_whose_score_alone_overflows_diverges_there() {
    // E = w·tanh(W x) is 0 at x = 0, but its gradient w·W = 1e400 is not finite: every
    // proposal from there holds an Inf and is rejected, so the chain must be reported, not
    // left stuck in silence (mutation audit: a check of the energy alone passed).
    let mut m = Model::new(Mlp::<f64>::new(1, &[1], Activation::Tanh, 0.0, 0).unwrap()).unwrap();
    m.set_params(&[1e200, 0.0, 1e200, 0.0]).unwrap();
    let x0 = [0.0f64];
    let rows = Rows::from_slice(&x0, 1, 1).unwrap();
    let cfg = Config::new(Method::Mala, 5, 0.1, 1.0, 0);
    let mut s = Sampler::new(&m, 1, Some(rows), cfg).unwrap();
    s.run(&m, 5, None).unwrap();
    assert_eq!(s.diverged_at(), vec![Some(0)]);
}

#[test]
fn step_sizes_between_blocks_are_those_of_the_last_step_taken() {
    // A block that ends on a level's last step reports that level's ε, not the next one's
    // (a Ctrl-C's partial result of an annealed run; mutation audit).
    let m = gaussian::<f64>(2, 1.0);
    // Levels of ε = 0.25·4/1 = 1 then 0.25, three steps each.
    let cfg = Config::annealed(&[4.0, 1.0], 0.25, 3, 0).unwrap();
    let mut s = Sampler::new(&m, 2, None, cfg).unwrap();
    s.run(&m, 3, None).unwrap();
    assert_eq!(s.step_sizes(), vec![1.0; 2]);
    s.run(&m, 3, None).unwrap();
    assert_eq!(s.step_sizes(), vec![0.25; 2]);
}
