//! scorematch-core: energy MLPs with exact scores, Hessian traces and score-matching
//! gradients, for whole batches, in parallel and deterministically.
//!
//! Where each equation lives (README's "The mathematics in brief" states them all):
//!
//! | equations | module |
//! |---|---|
//! | Model, parameter layout | [`mlp`] |
//! | Activations | [`activation`] |
//! | Energy and score (forward + reverse pass) | [`forward`] |
//! | Exact Laplacian (forward-Laplacian propagation) | [`laplacian`] |
//! | ISM gradient (reverse mode through the propagation) | [`backward`] |
//! | Objectives (ISM, ESM, SSM, DSM) | [`objective`] |
//! | Langevin sampling (ULA, MALA, annealed) | [`langevin`] |
//! | Training (optimizers, epoch loop) | [`optim`], [`train`] |
//!
//! [`engine`] runs all of these over a batch, chunk by chunk, on a Rayon pool; [`gemm`] is
//! the one file that names the matrix-product backend.

// The maths loops index several arrays of the same length in lockstep, as the equations do;
// iterator chains over four zipped slices would hide the formulas they implement.
#![allow(clippy::needless_range_loop)]

pub mod activation;
pub mod backward;
pub mod engine;
pub mod error;
pub mod forward;
pub mod gemm;
pub mod langevin;
pub mod laplacian;
pub mod matrix;
pub mod mlp;
pub mod model;
pub mod objective;
pub mod optim;
pub mod parallel;
pub mod real;
pub mod rng;
pub mod simd;
pub mod train;
pub mod vmath;
pub mod workspace;

pub use activation::Activation;
pub use error::{Error, Result};
pub use matrix::Rows;
pub use mlp::Mlp;
pub use model::Model;
pub use real::Real;
