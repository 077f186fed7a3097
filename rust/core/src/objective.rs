//! Score-matching objectives (math.md, "Objectives"): each turns the forward-Laplacian
//! outputs of a chunk into per-sample losses and the adjoint that [`crate::backward`] needs.
//!
//! ```text
//! ISM  l = tr(∇ₓs) + ½‖s‖² = −ΔE + ½‖∇E‖²      Ē = 0, λ̄ = −1/N, ḡ = ∇E/N
//! ESM  l = ½‖s − s*‖² = ½‖∇E + s*‖²           Ē = 0, λ̄ = 0,    ḡ = (∇E + s*)/N
//! ```
//!
//! ∇E and ΔE include the confining term: +αx and +αd. It has no parameters, so it changes
//! the adjoint but adds nothing to the gradient directly.

use crate::laplacian::LapWorkspace;
use crate::matrix::Rows;
use crate::real::Real;

/// A loss of the score whose gradient goes through the forward-Laplacian tape.
#[derive(Clone, Copy)]
pub enum Objective<'a, T> {
    /// Implicit score matching (Hyvärinen 2005).
    Ism,
    /// Explicit score matching against a given target score, one row per sample.
    Esm { target: Rows<'a, T> },
}

impl<T: Real> Objective<'_, T> {
    /// The loss name used in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Ism => "ism_loss",
            Objective::Esm { .. } => "esm_loss",
        }
    }

    /// Sum of the per-sample losses of the chunk starting at batch row `start`; when `adjoint`
    /// is set, `ws.out` is overwritten with the adjoint of the mean over `n_total` samples.
    pub fn chunk_loss(
        &self,
        ws: &mut LapWorkspace<T>,
        start: usize,
        alpha: T,
        n_total: usize,
        adjoint: bool,
    ) -> f64 {
        let (c, m) = (ws.c, ws.m);
        let dim = ws.x.len() / c;
        let inv_n = T::one() / T::c(n_total as f64);
        let mut total = 0.0f64;
        for b in 0..c {
            let x = &ws.x[b * dim..(b + 1) * dim];
            let gbase = 2 * c + b * m;
            let lap = ws.out[c + b] + alpha * T::c(dim as f64);
            let (loss, lap_bar) = match self {
                Objective::Ism => {
                    let mut sq = T::zero();
                    for k in 0..m {
                        let g = ws.out[gbase + k] + alpha * x[k];
                        sq += g * g;
                        ws.out[gbase + k] = g * inv_n;
                    }
                    (-lap + T::c(0.5) * sq, -inv_n)
                }
                Objective::Esm { target } => {
                    let mut sq = T::zero();
                    for k in 0..m {
                        let u = ws.out[gbase + k] + alpha * x[k] + target.at(start + b, k);
                        sq += u * u;
                        ws.out[gbase + k] = u * inv_n;
                    }
                    (T::c(0.5) * sq, T::zero())
                }
            };
            total += loss.to_f64_exact();
            if adjoint {
                ws.out[b] = T::zero();
                ws.out[c + b] = lap_bar;
            }
        }
        total
    }
}
