//! The engine's GEMM alone on shapes named on the command line, one thread: ns per call and
//! GFLOP/s, the median of the rounds. For A/B runs of two builds of `gemm/`.
//!
//! cargo run --release --example gemm_shapes -- <f32|f64> <rounds> <op>:<m>x<k>x<n> ...
//!
//! `op`: `mul` (`c (m×n) = a (m×k) · B`, `B` packed once, as `Rhs::mul`), `mula` (the same
//! with `c +=`), `tn` (`c (m×n) += aᵀ · b` with `a (k×m)`, `b (k×n)`, as `matmul_tn`: `k` is
//! the number of rows `r`). Every round times calls filling at least 20 ms, after one untimed
//! call.

use scorematch_core::gemm::{backend, matmul_tn, Rhs};
use scorematch_core::Real;
use std::hint::black_box;
use std::time::Duration;

#[path = "support/timing.rs"]
mod timing;
use timing::{median, time_block};

fn vals<T: Real>(len: usize, salt: usize) -> Vec<T> {
    (0..len)
        .map(|i| T::c(((i * 7 + salt) % 13) as f64 * 0.05 - 0.3))
        .collect()
}

fn shape<T: Real>(spec: &str, rounds: usize) {
    let (op, dims) = spec.split_once(':').expect("op:mxkxn");
    let d: Vec<usize> = dims.split('x').map(|x| x.parse().unwrap()).collect();
    let (m, k, n) = (d[0], d[1], d[2]);
    let block = Duration::from_millis(20);
    let mut times = Vec::new();
    match op {
        "mul" | "mula" => {
            let rhs = Rhs::new(&vals::<T>(k * n, 1), k, n);
            let a = vals::<T>(m * k, 2);
            let mut c = vec![T::zero(); m * n];
            let acc = op == "mula";
            for _ in 0..rounds {
                times.push(time_block(block, || {
                    rhs.mul(black_box(&a), &mut c, acc);
                    black_box(&mut c);
                }));
            }
        }
        "tn" => {
            let a = vals::<T>(k * m, 3);
            let b = vals::<T>(k * n, 4);
            let mut c = vec![T::zero(); m * n];
            for _ in 0..rounds {
                times.push(time_block(block, || {
                    c.fill(T::zero());
                    matmul_tn(black_box(&a), black_box(&b), &mut c, m, n);
                    black_box(&mut c);
                }));
            }
        }
        _ => panic!("op must be mul, mula or tn, got {op}"),
    }
    let t = median(times);
    let gf = 2.0 * (m * k * n) as f64 / t / 1e9;
    println!("{spec}\t{:.1} ns\t{gf:.2} GFLOP/s", t * 1e9);
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rounds: usize = a[2].parse().unwrap();
    eprintln!("# backend {}", backend());
    for spec in &a[3..] {
        match a[1].as_str() {
            "f32" => shape::<f32>(spec, rounds),
            "f64" => shape::<f64>(spec, rounds),
            other => panic!("the dtype must be f32 or f64, got {other}"),
        }
    }
}
