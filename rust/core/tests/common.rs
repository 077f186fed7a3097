#![allow(dead_code)]
//! Shared helpers of the integration tests.

use scorematch_core::engine;
use scorematch_core::objective::Objective;
use scorematch_core::rng::Stream;
use scorematch_core::{Activation, Mlp, Model, Real, Rows};

/// Step of the central finite differences in float64.
pub const H: f64 = 1e-5;
/// Their tolerance: O(h²) truncation (≈1e-10) plus rounding ε/h (≈1e-11), with margin.
pub const TOL: f64 = 1e-7;

/// |a − b| within `tol`, absolute near zero and relative away from it.
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

pub fn model<T: Real>(
    dim: usize,
    hidden: &[usize],
    act: Activation,
    alpha: f64,
    seed: u64,
) -> Model<T> {
    Model::new(Mlp::new(dim, hidden, act, alpha, seed).unwrap()).unwrap()
}

/// n × d standard normal values scaled by `scale`.
pub fn data(n: usize, d: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut s = Stream::new(seed, 999);
    (0..n * d).map(|_| scale * s.normal()).collect()
}

pub fn cast<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::c(x)).collect()
}

pub fn energy<T: Real>(m: &Model<T>, x: &[T]) -> Vec<T> {
    let d = m.mlp().dim();
    let mut out = vec![T::zero(); x.len() / d];
    engine::energy(m, Rows::from_slice(x, x.len() / d, d).unwrap(), &mut out).unwrap();
    out
}

pub fn score<T: Real>(m: &Model<T>, x: &[T]) -> Vec<T> {
    let d = m.mlp().dim();
    let mut out = vec![T::zero(); x.len()];
    engine::score(m, Rows::from_slice(x, x.len() / d, d).unwrap(), &mut out).unwrap();
    out
}

pub fn trace<T: Real>(m: &Model<T>, x: &[T]) -> Vec<T> {
    let d = m.mlp().dim();
    let mut out = vec![T::zero(); x.len() / d];
    engine::hessian_trace(m, Rows::from_slice(x, x.len() / d, d).unwrap(), &mut out).unwrap();
    out
}

pub fn ism<T: Real>(m: &Model<T>, x: &[T]) -> (f64, Vec<T>) {
    let d = m.mlp().dim();
    let mut g = vec![T::zero(); m.mlp().n_params()];
    let rows = Rows::from_slice(x, x.len() / d, d).unwrap();
    let l = engine::loss_and_grad(m, rows, Objective::Ism, &mut g).unwrap();
    (l, g)
}

pub fn esm<T: Real>(m: &Model<T>, x: &[T], target: &[T]) -> (f64, Vec<T>) {
    let d = m.mlp().dim();
    let mut g = vec![T::zero(); m.mlp().n_params()];
    let rows = Rows::from_slice(x, x.len() / d, d).unwrap();
    let target = Rows::from_slice(target, x.len() / d, d).unwrap();
    let l = engine::loss_and_grad(m, rows, Objective::Esm { target }, &mut g).unwrap();
    (l, g)
}

/// The same model with parameter `k` moved by `h`.
pub fn nudged<T: Real>(m: &Model<T>, k: usize, h: f64) -> Model<T> {
    let mut mlp = m.mlp().clone();
    let mut p = mlp.params().to_vec();
    p[k] += T::c(h);
    mlp.set_params(&p).unwrap();
    Model::new(mlp).unwrap()
}
