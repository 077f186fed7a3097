//! Score-matching objectives (ISM, ESM, SSM, DSM): each turns the
//! forward-Laplacian outputs of a chunk into per-sample losses and the adjoint that
//! [`crate::backward`] needs. With g = ∇ₓE (so s = −g), N the batch size and M tangents:
//!
//! ```text
//! ISM  l = tr(∇ₓs) + ½‖s‖² = −ΔE + ½‖g‖²          T = I,  Ē = 0, λ̄ = −1/N,     ḡ = g/N
//! ESM  l = ½‖s − s*‖² = ½‖g + s*‖²               T = I,  Ē = 0, λ̄ = 0,        ḡ = (g + s*)/N
//!      or, for d ≥ 2, with u = g + s* from the tape's values:  T = u (M = 1),  ḡ = 1/N
//! DSM  x̃ = x + σε,  l = ½‖s(x̃) + ε/σ‖²          ESM at x̃ with s* = −ε/σ
//! SSM  l = (1/M) Σ_m [−t_mᵀ ∇²E t_m + ½ (t_mᵀ g)²]  T = random, λ̄ = −1/(MN), ḡ_m = t_mᵀg/(MN)
//! ```
//!
//! SSM (Song et al. 2019) is the ISM loss with the trace and the squared norm replaced by
//! their Hutchinson estimates: for t with E[t tᵀ] = I (standard normal or Rademacher),
//! `E[tᵀHt] = tr H` and `E[(tᵀg)²] = ‖g‖²`, so `E_t[l_SSM] = l_ISM`. It runs the same
//! forward-Laplacian code with the tangents t_m in place of the identity.
//!
//! ESM and DSM need only ∂g/∂θ, not the Laplacian. With T = I their first-order tape [h; J]
//! carries d tangents: d + 1 rows per sample, forward and reverse, about 3(d + 1) forward
//! passes. But ∂l/∂θ = uᵀ ∂g/∂θ = ∂(uᵀg)/∂θ with the residual u held fixed, and uᵀg is the
//! derivative of E along u: so the tape with the single tangent t = u gives the gradient by
//! the same backward pass. u needs the score, which the tape provides: its value rows are
//! propagated first, the score is taken from them by a reverse pass, and the tangent rows
//! follow (`engine::tape_chunk`): about 7 forward passes for any d (values 1, the score's
//! reverse 1, tangent rows 1, the tape's reverse over 2 rows 4). By that count the paths tie
//! between d = 1 and 2; at d = 2 the one-tangent path measured 15–17 % faster (DSM loss and
//! gradient, width 128, depth 3, batch 512: float64 5.5 → 4.6 ms, float32 2.4 → 2.1 ms).
//! [`SCORE_TANGENT_MIN_DIM`] picks the path.
//!
//! ∇E and ΔE include the confining term: +αx and +αd (for SSM, tᵀ(αI)t = α‖t‖² and
//! tᵀ(αx)). It has no parameters, so it changes the adjoint but adds nothing to the gradient
//! directly.
//!
//! Random draws (SSM tangents, DSM noise) come from [`Stream::new`]`(seed, row)` with `row`
//! the sample's index in the batch (or the key [`Keys::Given`] assigns it): they depend on
//! the seed and the row alone, never on the chunking or the number of threads. For fixed seed the loss is a deterministic function
//! of the parameters, and its gradient is exact.

use crate::error::{Error, Result};
use crate::laplacian::{LapWorkspace, Order, Tangents};
use crate::matrix::Rows;
use crate::real::Real;
use crate::rng::Stream;

/// From this input dimension on, ESM and DSM run the one-tangent tape (tangent u = g + s*,
/// the score taken from the tape's own value rows) instead of the d-tangent tape (see the
/// module doc).
pub const SCORE_TANGENT_MIN_DIM: usize = 2;

/// Distribution of the SSM projections t_m; both have E[t tᵀ] = I.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Projection {
    /// t ~ N(0, I).
    #[default]
    Gaussian,
    /// Independent ±1 entries (lower variance of the trace estimate).
    Rademacher,
}

impl Projection {
    pub const ALL: [Projection; 2] = [Projection::Gaussian, Projection::Rademacher];

    pub fn name(self) -> &'static str {
        match self {
            Projection::Gaussian => "gaussian",
            Projection::Rademacher => "rademacher",
        }
    }

    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                Error::Value(format!(
                    "projection must be 'gaussian' or 'rademacher', got '{name}'"
                ))
            })
    }

    #[inline]
    fn draw(self, s: &mut Stream) -> f64 {
        match self {
            Projection::Gaussian => s.normal(),
            Projection::Rademacher => {
                if s.uniform() < 0.5 {
                    -1.0
                } else {
                    1.0
                }
            }
        }
    }
}

/// Largest number of SSM projections per sample: far past any useful value (M = d is the
/// exact ISM cost), small enough that a chunk's buffers cannot overflow.
pub const MAX_PROJECTIONS: usize = 4096;

/// A loss of the score whose gradient goes through the forward-Laplacian tape.
#[derive(Clone, Copy)]
pub enum Objective<'a, T> {
    /// Implicit score matching (Hyvärinen 2005).
    Ism,
    /// Explicit score matching against a given target score, one row per sample.
    Esm { target: Rows<'a, T> },
    /// Sliced score matching (Song et al. 2019) with `n_projections` tangents per sample.
    Ssm {
        n_projections: usize,
        projection: Projection,
        seed: u64,
        keys: Keys<'a>,
    },
    /// Denoising score matching (Vincent 2011) at noise level `noise_std`.
    Dsm {
        noise_std: f64,
        seed: u64,
        keys: Keys<'a>,
    },
}

/// Which random stream of the seed each batch row draws from (SSM tangents, DSM noise).
#[derive(Clone, Copy, Debug, Default)]
pub enum Keys<'a> {
    /// Row `i` draws from stream `i`.
    #[default]
    Position,
    /// Row `i` draws from stream `keys[i]`: a batch split across machines draws exactly
    /// what the whole batch would, each part passing its rows' positions in the whole.
    Given(&'a [u64]),
}

impl Keys<'_> {
    #[inline]
    fn stream(self, seed: u64, row: usize) -> Stream {
        match self {
            Keys::Position => Stream::new(seed, row as u64),
            Keys::Given(keys) => Stream::new(seed, keys[row]),
        }
    }
}

impl<T: Real> Objective<'_, T> {
    /// The loss name used in error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Objective::Ism => "ism_loss",
            Objective::Esm { .. } => "esm_loss",
            Objective::Ssm { .. } => "ssm_loss",
            Objective::Dsm { .. } => "dsm_loss",
        }
    }

    /// The explicit stream keys of the rows, if the objective draws random numbers by key.
    pub fn keys(&self) -> Option<&[u64]> {
        match *self {
            Objective::Ssm {
                keys: Keys::Given(k),
                ..
            }
            | Objective::Dsm {
                keys: Keys::Given(k),
                ..
            } => Some(k),
            _ => None,
        }
    }

    /// Checks the objective's own parameters (not the batch).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Objective::Ssm { n_projections, .. }
                if n_projections == 0 || n_projections > MAX_PROJECTIONS =>
            {
                Err(Error::Value(format!(
                    "n_projections must be between 1 and {MAX_PROJECTIONS}, got {n_projections}"
                )))
            }
            Objective::Dsm { noise_std, .. } if !(noise_std.is_finite() && noise_std > 0.0) => {
                Err(Error::Value(format!(
                    "noise_std must be a finite number > 0, got {noise_std}"
                )))
            }
            // The target −(x̃ − x)/σ² and the loss scale as 1/σ and 1/σ²: past the type's range
            // they are Inf, and the loss NaN.
            Objective::Dsm { noise_std, .. }
                if !T::c(1.0 / (noise_std * noise_std)).is_finite() =>
            {
                Err(Error::Value(format!(
                    "noise_std = {noise_std:e} is too small for {}: 1/noise_std² overflows",
                    T::NAME
                )))
            }
            // The noisy points x + σε, with |ε| up to ~6 in practice (64 leaves a margin):
            // past the type's range they are Inf, and every gradient NaN.
            Objective::Dsm { noise_std, .. } if !T::c(64.0 * noise_std).is_finite() => {
                Err(Error::Value(format!(
                    "noise_std = {noise_std:e} is too large for {}: the noisy points x + \
                     noise_std·ε overflow (at most {:.1e})",
                    T::NAME,
                    T::max_value().to_f64_exact() / 64.0
                )))
            }
            _ => Ok(()),
        }
    }

    /// The input tangents of the propagation this objective needs for inputs of `dim`.
    pub fn tangents(&self, dim: usize) -> Tangents {
        match *self {
            Objective::Ssm { n_projections, .. } => Tangents::PerSample(n_projections),
            Objective::Esm { .. } | Objective::Dsm { .. } if dim >= SCORE_TANGENT_MIN_DIM => {
                Tangents::PerSample(1)
            }
            _ => Tangents::Identity,
        }
    }

    /// The derivatives the tape must carry: ESM and DSM are losses of the score alone.
    pub fn order(&self) -> Order {
        match self {
            Objective::Esm { .. } | Objective::Dsm { .. } => Order::First,
            Objective::Ism | Objective::Ssm { .. } => Order::Second,
        }
    }

    /// Draws the chunk's random inputs after its rows `start..start + c` were copied into
    /// the workspace: SSM tangents into [`LapWorkspace::tangents_mut`], DSM noise onto x.
    pub fn prepare_chunk(&self, ws: &mut LapWorkspace<T>, start: usize) {
        let c = ws.c;
        match *self {
            Objective::Ssm {
                projection,
                seed,
                keys,
                ..
            } => {
                let per_sample = ws.t.len() / c;
                for (b, tb) in ws.t.chunks_exact_mut(per_sample).enumerate() {
                    let mut s = keys.stream(seed, start + b);
                    for v in tb {
                        *v = T::c(projection.draw(&mut s));
                    }
                }
            }
            Objective::Dsm {
                noise_std,
                seed,
                keys,
            } => {
                let dim = ws.x.len() / c;
                for (b, xb) in ws.x.chunks_exact_mut(dim).enumerate() {
                    let mut s = keys.stream(seed, start + b);
                    for v in xb {
                        *v += T::c(noise_std * s.normal());
                    }
                }
            }
            Objective::Ism | Objective::Esm { .. } => {}
        }
    }

    /// Whether the tape's tangent is the residual u = ∇ₓE + s* (the one-tangent ESM/DSM
    /// path), which the caller computes with [`Self::complete_residuals`].
    pub fn residual_tangent(&self, ws: &LapWorkspace<T>) -> bool {
        matches!(self, Objective::Esm { .. } | Objective::Dsm { .. })
            && ws.tangents == Tangents::PerSample(1)
    }

    /// u = ∇ₓE(x) + s*(x) for each row of the chunk (s* = −ε/σ for DSM), in the tangents,
    /// which hold ∇ₓE(x) on entry.
    pub fn complete_residuals(&self, ws: &mut LapWorkspace<T>, start: usize) {
        let dim = ws.x.len() / ws.c;
        for (b, u) in ws.t.chunks_exact_mut(dim).enumerate() {
            match *self {
                Objective::Esm { target } => {
                    for (k, v) in u.iter_mut().enumerate() {
                        *v += target.at(start + b, k);
                    }
                }
                Objective::Dsm {
                    noise_std,
                    seed,
                    keys,
                } => {
                    // The same stream as the noise drawn onto x gives ε again.
                    let mut s = keys.stream(seed, start + b);
                    for v in u.iter_mut() {
                        *v -= T::c(s.normal() / noise_std);
                    }
                }
                _ => unreachable!("residuals are for ESM and DSM"),
            }
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
        let j0 = ws.j_start();
        let dim = ws.x.len() / c;
        let inv_n = T::one() / T::c(n_total as f64);
        let half = T::c(0.5);
        let mut total = 0.0f64;
        if matches!(self, Objective::Esm { .. } | Objective::Dsm { .. })
            && ws.tangents == Tangents::PerSample(1)
        {
            // One-tangent path: l = ½‖u‖², and ∂l/∂θ = ∂(uᵀg)/∂θ / N with u fixed.
            for b in 0..c {
                let u = &ws.t[b * dim..(b + 1) * dim];
                total += (half * u.iter().map(|&v| v * v).sum::<T>()).to_f64_exact();
                if adjoint {
                    ws.out[b] = T::zero();
                    ws.out[j0 + b] = inv_n;
                }
            }
            return total;
        }
        for b in 0..c {
            let x = &ws.x[b * dim..(b + 1) * dim];
            let gbase = j0 + b * m;
            let (loss, lap_bar) = match *self {
                Objective::Ism => {
                    let lap = ws.out[c + b] + alpha * T::c(dim as f64);
                    let mut sq = T::zero();
                    for k in 0..m {
                        let g = ws.out[gbase + k] + alpha * x[k];
                        sq += g * g;
                        ws.out[gbase + k] = g * inv_n;
                    }
                    (-lap + half * sq, -inv_n)
                }
                Objective::Esm { target } => {
                    let mut sq = T::zero();
                    for k in 0..m {
                        let u = ws.out[gbase + k] + alpha * x[k] + target.at(start + b, k);
                        sq += u * u;
                        ws.out[gbase + k] = u * inv_n;
                    }
                    (half * sq, T::zero())
                }
                Objective::Dsm {
                    noise_std,
                    seed,
                    keys,
                } => {
                    // x holds x̃ = x + σε; the same stream gives ε again for the target −ε/σ.
                    let mut s = keys.stream(seed, start + b);
                    let mut sq = T::zero();
                    for k in 0..m {
                        let eps_over_sigma = T::c(s.normal() / noise_std);
                        let u = ws.out[gbase + k] + alpha * x[k] - eps_over_sigma;
                        sq += u * u;
                        ws.out[gbase + k] = u * inv_n;
                    }
                    (half * sq, T::zero())
                }
                Objective::Ssm { .. } => {
                    let inv_m = T::one() / T::c(m as f64);
                    let t = &ws.t[b * m * dim..(b + 1) * m * dim];
                    // Σ_m t_mᵀ(∇²E)t_m, confining part α‖t_m‖² included.
                    let mut quad = ws.out[c + b];
                    let mut sq = T::zero();
                    for (k, tk) in t.chunks_exact(dim).enumerate() {
                        let (mut tt, mut tx) = (T::zero(), T::zero());
                        for j in 0..dim {
                            tt += tk[j] * tk[j];
                            tx += tk[j] * x[j];
                        }
                        quad += alpha * tt;
                        let u = ws.out[gbase + k] + alpha * tx;
                        sq += u * u;
                        ws.out[gbase + k] = u * inv_m * inv_n;
                    }
                    ((-quad + half * sq) * inv_m, -inv_m * inv_n)
                }
            };
            total += loss.to_f64_exact();
            if adjoint {
                ws.out[b] = T::zero();
                if ws.k == 1 {
                    ws.out[c + b] = lap_bar;
                }
            }
        }
        total
    }
}
