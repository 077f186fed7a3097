//! Every derivative the engine computes, against central finite differences of the quantity
//! below it, in float64 for every activation: ∇E → score, ∇·score → Hessian trace, and the
//! ISM/ESM losses → their parameter gradients.
//!
//! Tolerances: central differences with step h have error O(h²·f''') ≈ 1e-10 at h = 1e-5 plus
//! rounding ε/h ≈ 1e-11; we allow 1e-7 absolute + relative.

#![allow(clippy::needless_range_loop)] // finite differences walk parameters by index

mod common;
use common::*;
use scorematch_core::{Activation, Model};

fn models() -> Vec<(Model<f64>, usize)> {
    let mut out = Vec::new();
    for (i, act) in Activation::ALL.into_iter().enumerate() {
        out.push((model(3, &[5, 4], act, 0.0, i as u64), 3));
        out.push((model(2, &[6], act, 0.7, 10 + i as u64), 2));
        out.push((model(4, &[3, 5, 2], act, 0.2, 20 + i as u64), 4));
    }
    out
}

#[test]
fn score_is_minus_the_gradient_of_the_energy() {
    for (m, d) in models() {
        let x = data(5, d, 1.5, 1);
        let s = score(&m, &x);
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += H;
            xm[k] -= H;
            let b = k / d;
            let fd = (energy(&m, &xp)[b] - energy(&m, &xm)[b]) / (2.0 * H);
            assert!(
                close(-fd, s[k], TOL),
                "{:?} coord {k}: fd {} vs score {}",
                m.mlp().activation(),
                -fd,
                s[k]
            );
        }
    }
}

#[test]
fn hessian_trace_is_the_divergence_of_the_score() {
    for (m, d) in models() {
        let x = data(6, d, 1.5, 2);
        let tr = trace(&m, &x);
        for b in 0..6 {
            let mut div = 0.0;
            for k in 0..d {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[b * d + k] += H;
                xm[b * d + k] -= H;
                div += (score(&m, &xp)[b * d + k] - score(&m, &xm)[b * d + k]) / (2.0 * H);
            }
            assert!(
                close(div, tr[b], 1e-6),
                "{:?} row {b}: fd {div} vs trace {}",
                m.mlp().activation(),
                tr[b]
            );
        }
    }
}

#[test]
fn ism_gradient_matches_finite_differences() {
    for (m, d) in models() {
        let x = data(7, d, 1.5, 3);
        let (loss, g) = ism(&m, &x);
        let direct: f64 = trace(&m, &x)
            .iter()
            .zip(score(&m, &x).chunks(d))
            .map(|(t, s)| t + 0.5 * s.iter().map(|v| v * v).sum::<f64>())
            .sum::<f64>()
            / 7.0;
        assert!(
            close(loss, direct, 1e-12),
            "loss {loss} vs trace + score {direct}"
        );
        for k in 0..m.mlp().n_params() {
            let fd = (ism(&nudged(&m, k, H), &x).0 - ism(&nudged(&m, k, -H), &x).0) / (2.0 * H);
            assert!(
                close(fd, g[k], TOL),
                "{:?} param {k}: fd {fd} vs grad {}",
                m.mlp().activation(),
                g[k]
            );
        }
    }
}

#[test]
fn esm_gradient_matches_finite_differences() {
    for (m, d) in models() {
        let x = data(7, d, 1.5, 4);
        let target = data(7, d, 1.0, 5);
        let (loss, g) = esm(&m, &x, &target);
        let s = score(&m, &x);
        let direct: f64 = s
            .iter()
            .zip(&target)
            .map(|(a, b)| 0.5 * (a - b) * (a - b))
            .sum::<f64>()
            / 7.0;
        assert!(close(loss, direct, 1e-12), "loss {loss} vs direct {direct}");
        for k in 0..m.mlp().n_params() {
            let fd = (esm(&nudged(&m, k, H), &x, &target).0
                - esm(&nudged(&m, k, -H), &x, &target).0)
                / (2.0 * H);
            assert!(
                close(fd, g[k], TOL),
                "{:?} param {k}: fd {fd} vs grad {}",
                m.mlp().activation(),
                g[k]
            );
        }
    }
}

/// float32 runs the same code; against the float64 result of the same parameters, errors
/// stay at a few hundred float32 ulps of the values' scale (we allow 2e-4 relative).
#[test]
fn float32_agrees_with_float64() {
    for act in Activation::ALL {
        let m64 = model::<f64>(3, &[16, 16], act, 0.5, 9);
        let p32: Vec<f32> = m64.mlp().params().iter().map(|&v| v as f32).collect();
        let mut mlp32 = scorematch_core::Mlp::<f32>::zeros(3, &[16, 16], act, 0.5).unwrap();
        mlp32.set_params(&p32).unwrap();
        let m32 = Model::new(mlp32).unwrap();
        let m64 = Model::new({
            let mut mm = m64.mlp().clone();
            mm.set_params(&p32.iter().map(|&v| v as f64).collect::<Vec<_>>())
                .unwrap();
            mm
        })
        .unwrap();
        let x64 = cast::<f32>(&data(50, 3, 1.5, 6))
            .iter()
            .map(|&v| v as f64)
            .collect::<Vec<_>>();
        let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let pairs: [(Vec<f64>, Vec<f32>); 4] = [
            (energy(&m64, &x64), energy(&m32, &x32)),
            (score(&m64, &x64), score(&m32, &x32)),
            (trace(&m64, &x64), trace(&m32, &x32)),
            (ism(&m64, &x64).1, ism(&m32, &x32).1),
        ];
        for (what, (a, b)) in ["energy", "score", "trace", "ism grad"].iter().zip(pairs) {
            let scale = a.iter().fold(0.0f64, |s, v| s.max(v.abs()));
            assert_eq!(a.len(), b.len(), "{act:?} {what}: lengths");
            for (u, v) in a.iter().zip(&b) {
                assert!(
                    (u - *v as f64).abs() <= 2e-4 * scale.max(1.0),
                    "{act:?} {what}: {u} vs {v}"
                );
            }
        }
    }
}

/// The energy itself, against the network written out from the public parameter layout
/// `[W_1, b_1, ..., W_L, b_L, w, c]` and the widths the models were built with (not the
/// model's own layer accessors), with the activations from std: the derivative tests above
/// compare the engine with itself, so they would pass on a consistently wrong network.
#[test]
fn the_energy_is_the_network_written_out() {
    fn act(a: Activation, z: f64) -> f64 {
        match a {
            Activation::Softplus => z.max(0.0) + (-z.abs()).exp().ln_1p(),
            Activation::Tanh => z.tanh(),
            Activation::Silu => z / (1.0 + (-z).exp()),
        }
    }
    for (i, a) in Activation::ALL.into_iter().enumerate() {
        for (d, hidden, alpha) in [
            (3, vec![5, 4], 0.0),
            (4, vec![3, 5, 2], 0.2),
            (2, vec![6], 0.7),
        ] {
            let m = model::<f64>(d, &hidden, a, alpha, 30 + i as u64);
            let p = m.mlp().params();
            let x = data(7, d, 1.5, 31 + i as u64);
            let got = energy(&m, &x);
            for r in 0..7 {
                let mut h: Vec<f64> = x[r * d..(r + 1) * d].to_vec();
                let mut at = 0;
                for &n in hidden.iter().chain([1].iter()) {
                    let (w, b) = (
                        &p[at..at + n * h.len()],
                        &p[at + n * h.len()..at + n * h.len() + n],
                    );
                    at += n * h.len() + n;
                    let z: Vec<f64> = (0..n)
                        .map(|j| {
                            b[j] + (0..h.len()).map(|k| w[j * h.len() + k] * h[k]).sum::<f64>()
                        })
                        .collect();
                    h = if at == p.len() {
                        z
                    } else {
                        z.iter().map(|&z| act(a, z)).collect()
                    };
                }
                assert_eq!(at, p.len());
                let xr = &x[r * d..(r + 1) * d];
                let want = h[0] + 0.5 * alpha * xr.iter().map(|v| v * v).sum::<f64>();
                assert!(
                    close(got[r], want, 1e-13),
                    "{a:?} {hidden:?} row {r}: {} vs {want}",
                    got[r]
                );
            }
        }
    }
}
