//! A fixed workload for profilers (`perf record`, callgrind): one engine entry point, repeated.
//!
//! cargo run --release --example profile -- <op> <dim> <width> <depth> <batch> <reps> [f32|f64] [activation]
//!
//! `op`: energy, score, trace, ism, dsm (engine calls on `batch` rows); act, act0, act1 (the
//! activation pass alone); ula, mala (100 steps of `batch` chains). The activation is softplus
//! unless named.

use scorematch_core::engine;
use scorematch_core::langevin::{self, Config, Method};
use scorematch_core::objective::Objective;
use scorematch_core::rng::Stream;
use scorematch_core::{Activation, Mlp, Model, Real, Rows};

fn run<T: Real>(
    op: &str,
    act: Activation,
    (d, w, depth, n, reps): (usize, usize, usize, usize, usize),
) {
    let model = Model::new(Mlp::<T>::new(d, &vec![w; depth], act, 0.0, 0).unwrap()).unwrap();
    let mut s = Stream::new(1, 0);
    let x: Vec<T> = (0..n * d).map(|_| T::c(2.0 * s.normal())).collect();
    let rows = Rows::from_slice(&x, n, d).unwrap();
    let mut out = vec![T::zero(); n * d.max(1)];
    let mut grad = vec![T::zero(); model.mlp().n_params()];
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        match op {
            "energy" => engine::energy(&model, rows, &mut out[..n]).unwrap(),
            "score" => engine::score(&model, rows, &mut out).unwrap(),
            "trace" => engine::hessian_trace(&model, rows, &mut out[..n]).unwrap(),
            "ism" => {
                engine::loss_and_grad(&model, rows, Objective::Ism, &mut grad).unwrap();
            }
            "dsm" => {
                let obj = Objective::Dsm {
                    noise_std: 0.1,
                    seed: 1,
                    keys: scorematch_core::objective::Keys::Position,
                };
                engine::loss_and_grad(&model, rows, obj, &mut grad).unwrap();
            }
            "act" => {
                // The activation pass alone, as the engine runs it: one call on a chunk of 256
                // rows of `w` pre-activations (from L2 at width 64 and up), σ and σ' (`n` rows
                // in all).
                let mut z: Vec<T> = x.iter().cycle().take(256 * w).copied().collect();
                let z0 = z.clone();
                let b = vec![T::zero(); w];
                let mut s1 = vec![T::zero(); 256 * w];
                let t = std::time::Instant::now();
                for _ in 0..n.div_ceil(256) {
                    z.copy_from_slice(&z0);
                    scorematch_core::activation::apply_rows(act, &mut z, w, &b, Some(&mut s1));
                }
                std::hint::black_box(&z);
                let ns = t.elapsed().as_secs_f64() * 1e9 / (n.div_ceil(256) * 256 * w) as f64;
                if reps == 1 {
                    println!("activation: {ns:.2} ns per element");
                }
            }
            "act0" | "act1" => {
                // One L1-resident row of `w` elements, `n` times: σ alone (act0, the energy's
                // pass) or σ and σ' (act1).
                let z0: Vec<T> = x.iter().cycle().take(w).copied().collect();
                let mut z = z0.clone();
                let b = vec![T::zero(); w];
                let mut s1 = vec![T::zero(); w];
                let with_s1 = op == "act1";
                let t = std::time::Instant::now();
                for _ in 0..n {
                    z.copy_from_slice(&z0);
                    let d = with_s1.then_some(&mut s1[..]);
                    scorematch_core::activation::apply_rows(act, &mut z, w, &b, d);
                    std::hint::black_box((&z, &s1));
                }
                let ns = t.elapsed().as_secs_f64() * 1e9 / (n * w) as f64;
                println!("{op} (one row): {ns:.3} ns per element");
            }
            "ula" | "mala" => {
                // `n` chains, 100 steps.
                let method = if op == "ula" {
                    Method::Ula
                } else {
                    Method::Mala
                };
                let config = Config::new(method, 100, 1e-2, 1.0, 0);
                std::hint::black_box(langevin::sample(&model, n, None, config, false).unwrap());
            }
            _ => panic!("op must be energy, score, trace, ism, dsm, act, act0, act1, ula or mala"),
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!(
        "{op} {} {} d={d} w={w} depth={depth} n={n}: {ms:.6} ms/call",
        T::NAME,
        act.name()
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let num = |i: usize| a[i].parse::<usize>().unwrap();
    let shape = (num(2), num(3), num(4), num(5), num(6));
    let act = Activation::from_name(a.get(8).map_or("softplus", String::as_str)).unwrap();
    match a.get(7).map_or("f32", String::as_str) {
        "f32" => run::<f32>(&a[1], act, shape),
        "f64" => run::<f64>(&a[1], act, shape),
        other => panic!("the dtype must be f32 or f64, got {other}"),
    }
}
