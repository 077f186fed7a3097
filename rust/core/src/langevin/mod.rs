//! Langevin sampling: ULA, MALA and annealed Langevin over many chains at once.
//!
//! ```text
//! ULA   x' = x + (ε/2)·s(x) + √ε·ξ,   s = −∇ₓE / T,  ξ ~ N(0, I)
//! MALA  y  = ULA proposal,  accept with probability min(1, exp(a)),
//!       a = (E(x) − E(y))/T − ‖x − y − (ε/2)s(y)‖²/(2ε) + ‖y − x − (ε/2)s(x)‖²/(2ε)
//! ```
//!
//! `step_size = ε` everywhere. Chains are cut into chunks of [`forward::chunk_rows`] (fixed
//! by the model's shape, never by the thread count: the score pass's chunk, whose buffers a
//! chunk of chains reuses at every step); a chunk runs all the steps of a block on its own,
//! one batched forward + reverse pass per step ([`forward::energy_and_grad`], which gives MALA the energy
//! and the score from the same pass). Chain `i` draws from its own [`Stream`] `(seed, i)` in
//! a fixed order — the initial point (dim normals, when no init is given), then per step dim
//! normals and, for MALA, one uniform — and per-row results of a pass do not depend on the
//! chunk, so chain `i` is the same whatever the number of chains or threads.
//!
//! All state lives in [`Sampler`], so a run can be advanced in blocks (the binding returns to
//! Python between blocks to honour Ctrl-C) with results bit-identical to a single block.
//! Buffers are sized when the sampler is built: no step allocates.

mod chain;
mod config;

pub use config::{check_chain_range, Config, Level, Method};

use crate::error::{check_reservable, try_filled, Error, Result};
use crate::forward::{self, ScoreWorkspace};
use crate::matrix::Rows;
use crate::model::Model;
use crate::parallel::install;
use crate::real::Real;
use crate::rng::Stream;
use crate::workspace::{with_workspace, workspaces_bytes};
use chain::Chain;

/// The state of one chunk of chains, with its scratch buffers.
struct Chunk<T> {
    c: usize,
    x: Vec<T>,
    /// ∇ₓE(x) and E(x) of the current states (MALA), valid when `cached`.
    g: Vec<T>,
    e: Vec<T>,
    cached: bool,
    y: Vec<T>,
    gy: Vec<T>,
    ey: Vec<T>,
    streams: Vec<Stream>,
    chains: Vec<Chain>,
}

impl<T: Real> Chunk<T> {
    /// `c` chains starting at `x` (c × dim): the one place that sizes a chunk's buffers.
    fn new(x: Vec<T>, dim: usize, mala: bool, streams: Vec<Stream>, chain: Chain) -> Self {
        let c = streams.len();
        // MALA alone keeps energies and a proposal beside the states.
        let (energies, proposal) = if mala { (c, c * dim) } else { (0, 0) };
        Chunk {
            c,
            x,
            g: vec![T::zero(); c * dim],
            e: vec![T::zero(); energies],
            cached: false,
            y: vec![T::zero(); proposal],
            gy: vec![T::zero(); proposal],
            ey: vec![T::zero(); energies],
            streams,
            chains: vec![chain; c],
        }
    }

    /// What [`Chunk::new`] allocates per chain, in bytes.
    fn bytes_per_chain(dim: usize, mala: bool) -> usize {
        let per_proposal = if mala { 2 * dim + 2 } else { 0 };
        std::mem::size_of::<Stream>()
            + std::mem::size_of::<Chain>()
            + (2 * dim + per_proposal) * std::mem::size_of::<T>()
    }
}

/// All chains of one run; advance it with [`Sampler::run`].
pub struct Sampler<T> {
    config: Config,
    /// [`Config::level_ends`] of `config`.
    ends: Vec<usize>,
    dim: usize,
    n_chains: usize,
    /// [`forward::chunk_rows`] of the model: every chunk but the last holds this many chains.
    chunk: usize,
    chunks: Vec<Chunk<T>>,
    step: usize,
}

/// Where divergence was seen: the first step (0-based, burn-in included) at which a chain
/// left the finite numbers, and how many chains left them at that step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    pub chains: usize,
    pub first_step: usize,
}

impl<T: Real> Sampler<T> {
    /// Chains `0..n_chains` of `config`, started at the rows of `init` or, without it, at
    /// N(0, I) drawn from each chain's stream.
    pub fn new(
        model: &Model<T>,
        n_chains: usize,
        init: Option<Rows<'_, T>>,
        config: Config,
    ) -> Result<Self> {
        config.check(n_chains)?;
        let dim = model.mlp().dim();
        if let Some(x0) = &init {
            if x0.rows() != n_chains || x0.cols() != dim {
                return Err(Error::Shape(format!(
                    "init must have shape ({n_chains}, {dim}) (n_samples, dim), got ({}, {})",
                    x0.rows(),
                    x0.cols()
                )));
            }
            x0.check_finite("init")?;
        }
        let eps0 = config.levels[0].step_size;
        // Every chain's buffers and the threads' score workspaces, counted and reserved once
        // (then released) before any is made: a request the allocator refuses outright is an
        // error here, not an abort halfway through.
        let mala = config.method == Method::Mala;
        let per_chain = Chunk::<T>::bytes_per_chain(dim, mala);
        let chunk = forward::chunk_rows(model);
        let workspaces = workspaces_bytes(n_chains, chunk, |c| ScoreWorkspace::bytes(model, c));
        let bytes = n_chains
            .checked_mul(per_chain)
            .zip(workspaces)
            .and_then(|(a, b)| a.checked_add(b));
        let refusal = || {
            format!(
                "cannot allocate {n_chains} chains of dimension {dim} ({per_chain} bytes each, \
                 plus the working buffers of this model's score)"
            )
        };
        check_reservable(bytes, refusal)?;
        let mut chunks = Vec::new();
        chunks
            .try_reserve_exact(n_chains.div_ceil(chunk))
            .map_err(|_| Error::OutOfMemory(refusal()))?;
        let mut start = 0;
        while start < n_chains {
            let c = chunk.min(n_chains - start);
            let mut streams: Vec<Stream> = (start..start + c)
                .map(|i| Stream::new(config.seed, config.first_chain + i as u64))
                .collect();
            let mut x = vec![T::zero(); c * dim];
            match &init {
                Some(x0) => x0.copy_rows(start, c, &mut x),
                None => {
                    for (row, s) in x.chunks_exact_mut(dim).zip(&mut streams) {
                        for v in row {
                            *v = T::c(s.normal());
                        }
                    }
                }
            }
            chunks.push(Chunk::new(x, dim, mala, streams, Chain::new(eps0)));
            start += c;
        }
        Ok(Sampler {
            ends: config.level_ends(),
            config,
            dim,
            n_chains,
            chunk,
            chunks,
            step: 0,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bytes of the chains' own state (positions, gradients, random streams, ...), without
    /// the threads' score workspaces.
    pub fn state_bytes(&self) -> usize {
        let mala = self.config.method == Method::Mala;
        self.n_chains * Chunk::<T>::bytes_per_chain(self.dim, mala)
    }

    pub fn n_chains(&self) -> usize {
        self.n_chains
    }

    /// Steps run so far (burn-in included).
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// The dimension of the chains' states.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Trajectory slabs recorded so far.
    pub fn kept_so_far(&self) -> usize {
        self.step.saturating_sub(self.config.burn_in) / self.config.thin
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.config.total_steps()
    }

    /// Runs up to `max_steps` more steps (fewer at the end of the run) and returns how many
    /// ran. `trajectory`, when given, is the whole (n_kept, n_chains, dim) record, row-major;
    /// the states this block keeps are written into it.
    pub fn run(
        &mut self,
        model: &Model<T>,
        max_steps: usize,
        trajectory: Option<&mut [T]>,
    ) -> Result<usize> {
        if model.mlp().dim() != self.dim {
            return Err(Error::Shape(format!(
                "the model has dim {} but the sampler was built for dim {}",
                model.mlp().dim(),
                self.dim
            )));
        }
        let (t0, n, d) = (self.step, self.n_chains, self.dim);
        let t1 = t0.saturating_add(max_steps).min(self.config.total_steps());
        if t1 == t0 {
            return Ok(0);
        }
        // Per chunk, the pieces of the trajectory slabs this block writes.
        let mut pieces: Vec<Vec<&mut [T]>> = (0..self.chunks.len()).map(|_| Vec::new()).collect();
        if let Some(traj) = trajectory {
            let want = self.config.n_kept() * n * d;
            if traj.len() != want {
                return Err(Error::Shape(format!(
                    "the trajectory buffer must hold {want} values, got {}",
                    traj.len()
                )));
            }
            if let Some((lo, hi)) = self.config.kept_range(t0, t1) {
                let slabs = traj[lo * n * d..(hi + 1) * n * d].chunks_mut((n * d).max(1));
                for slab in slabs {
                    for (p, piece) in pieces
                        .iter_mut()
                        .zip(slab.chunks_mut((self.chunk * d).max(1)))
                    {
                        p.push(piece);
                    }
                }
            }
        }
        let (config, ends) = (&self.config, &self.ends[..]);
        install(|| {
            use rayon::prelude::*;
            self.chunks
                .par_iter_mut()
                .zip(pieces.into_par_iter())
                .with_max_len(1)
                .for_each(|(chunk, mut pieces)| {
                    with_workspace(|ws: &mut ScoreWorkspace<T>| {
                        run_chunk(model, config, ends, ws, chunk, t0..t1, &mut pieces)
                    })
                })
        })?;
        self.step = t1;
        Ok(t1 - t0)
    }

    /// Current states, (n_chains × dim).
    pub fn positions(&self, out: &mut [T]) {
        let mut pos = 0;
        for ch in &self.chunks {
            out[pos..pos + ch.x.len()].copy_from_slice(&ch.x);
            pos += ch.x.len();
        }
    }

    fn chains(&self) -> impl Iterator<Item = &Chain> {
        self.chunks.iter().flat_map(|c| &c.chains)
    }

    /// Per chain, the fraction of accepted proposals after burn-in (1 for ULA).
    pub fn acceptance(&self) -> Vec<f64> {
        let steps = self.step.saturating_sub(self.config.burn_in);
        self.chains()
            .map(|ch| match self.config.method {
                Method::Ula => 1.0,
                Method::Mala if steps == 0 => f64::NAN,
                Method::Mala => f64::from(ch.accepted) / steps as f64,
            })
            .collect()
    }

    /// Per chain, the step size in use (adapted and frozen, or the last level's).
    pub fn step_sizes(&self) -> Vec<f64> {
        let (level, _) = self
            .config
            .level_at(&self.ends, self.step.saturating_sub(1));
        self.chains()
            .map(|ch| {
                if self.config.adapt.is_some() {
                    ch.eps
                } else {
                    level.step_size
                }
            })
            .collect()
    }

    /// Per chain, the first step at which it left the finite numbers, if it did.
    pub fn diverged_at(&self) -> Vec<Option<usize>> {
        self.chains().map(|ch| ch.diverged_at).collect()
    }

    /// The earliest step at which a chain diverged, and how many diverged at that step, if
    /// any did. Not how many had diverged when the run stopped: that depends on the length of
    /// the blocks the run is checked between (`scorematch.langevin` stops at the first step).
    pub fn divergence(&self) -> Option<Divergence> {
        let first_step = self.chains().filter_map(|ch| ch.diverged_at).min()?;
        let chains = self
            .chains()
            .filter(|ch| ch.diverged_at == Some(first_step))
            .count();
        Some(Divergence { chains, first_step })
    }

    /// [`Error::Diverged`] if any chain diverged: [`Error::DivergedAtStart`] for MALA,
    /// whose chains diverge only there (it rejects non-finite proposals).
    pub fn check_divergence(&self) -> Result<()> {
        match self.divergence() {
            None => Ok(()),
            Some(d) if self.config.method == Method::Mala => Err(Error::DivergedAtStart {
                chains: d.chains,
                n_chains: self.n_chains,
            }),
            Some(d) => Err(Error::Diverged {
                chains: d.chains,
                n_chains: self.n_chains,
                first_step: d.first_step,
            }),
        }
    }
}

/// Fills the chunk's input rows with `x` and runs one forward + reverse pass.
fn pass<T: Real>(
    model: &Model<T>,
    ws: &mut ScoreWorkspace<T>,
    c: usize,
    x: &[T],
    energy: Option<&mut [T]>,
    grad: &mut [T],
) {
    ws.input(model, c).copy_from_slice(x);
    forward::energy_and_grad(model, ws, c, energy, Some(grad));
}

fn run_chunk<T: Real>(
    model: &Model<T>,
    config: &Config,
    ends: &[usize],
    ws: &mut ScoreWorkspace<T>,
    ch: &mut Chunk<T>,
    steps: std::ops::Range<usize>,
    pieces: &mut [&mut [T]],
) {
    let d = model.mlp().dim();
    let c = ch.c;
    let mut next_piece = 0;
    for t in steps {
        let (level, burning) = config.level_at(ends, t);
        let inv_t = 1.0 / level.temperature;
        match config.method {
            Method::Ula => ula_step(model, ws, ch, level, inv_t, t, d),
            Method::Mala => {
                if !ch.cached {
                    pass(model, ws, c, &ch.x, Some(&mut ch.e), &mut ch.g);
                    ch.cached = true;
                    // A start whose score or energy is NaN or Inf (a float overflow at a
                    // finite point) leaves the acceptance test undefined: NaN rejects every
                    // proposal, +Inf accepts the first finite one whatever the target.
                    // Such a chain diverges here, and stays frozen, as a ULA chain would.
                    for ((e, g), chain) in ch.e.iter().zip(ch.g.chunks_exact(d)).zip(&mut ch.chains)
                    {
                        if !(e.is_finite() && g.iter().all(|v| v.is_finite())) {
                            chain.diverged_at = Some(t);
                        }
                    }
                }
                let adapt = if burning { config.adapt } else { None };
                let tuned = config.adapt.is_some();
                mala_step(model, ws, ch, level, inv_t, adapt, tuned, !burning, d);
            }
        }
        if config.adapt.is_some() && t + 1 == config.burn_in {
            ch.chains.iter_mut().for_each(Chain::freeze);
        }
        if config.kept_index(t).is_some() && !pieces.is_empty() {
            pieces[next_piece].copy_from_slice(&ch.x);
            next_piece += 1;
        }
    }
}

/// ULA: x ← x − (ε/(2T))·∇E(x) + √ε·ξ, i.e. x + (ε/2)·s(x) + √ε·ξ with s = −∇E/T.
fn ula_step<T: Real>(
    model: &Model<T>,
    ws: &mut ScoreWorkspace<T>,
    ch: &mut Chunk<T>,
    level: &Level,
    inv_t: f64,
    t: usize,
    d: usize,
) {
    pass(model, ws, ch.c, &ch.x, None, &mut ch.g);
    let eps = level.step_size;
    // The step x + (r·ξ − coef·g): drift and noise summed first, then added to x once. Left
    // to right, (x − coef·g) + r·ξ, rounds the drift to x's ulps on its own, and in f32 a
    // drift below half an ulp of x (ε ≲ 1e-7 at |x| ~ 1) was lost at every step: the chain
    // became a random walk. Summed with the noise first, it survives the rounding on average.
    // The Python path (scorematch.langevin) computes x + (coef·s + r·ξ) with these same
    // constants (s = −g exactly), so both agree to the last bit.
    let coef = T::c(0.5 * eps * inv_t);
    let r = T::c(eps.sqrt());
    for (((x, g), s), chain) in
        ch.x.chunks_exact_mut(d)
            .zip(ch.g.chunks_exact(d))
            .zip(&mut ch.streams)
            .zip(&mut ch.chains)
    {
        if chain.diverged_at.is_some() {
            continue; // frozen: its values stay as they were when it diverged
        }
        let mut finite = true;
        for (x, &g) in x.iter_mut().zip(g) {
            *x += r * T::c(s.normal()) - coef * g;
            finite &= x.is_finite();
        }
        if !finite {
            chain.diverged_at = Some(t);
        }
    }
}

/// MALA: ULA proposal y, accepted with probability min(1, exp(a)) (see the module doc).
/// A proposal with NaN or Inf is rejected, so MALA chains stay finite.
#[allow(clippy::too_many_arguments)]
fn mala_step<T: Real>(
    model: &Model<T>,
    ws: &mut ScoreWorkspace<T>,
    ch: &mut Chunk<T>,
    level: &Level,
    inv_t: f64,
    adapt: Option<f64>,
    tuned: bool,
    count: bool,
    d: usize,
) {
    let per_chain_eps = |chain: &Chain| if tuned { chain.eps } else { level.step_size };
    for (((y, (x, g)), s), chain) in
        ch.y.chunks_exact_mut(d)
            .zip(ch.x.chunks_exact(d).zip(ch.g.chunks_exact(d)))
            .zip(&mut ch.streams)
            .zip(&ch.chains)
    {
        if chain.diverged_at.is_some() {
            y.copy_from_slice(x); // frozen; a finite row for the pass below
            continue;
        }
        let eps = per_chain_eps(chain);
        let coef = T::c(0.5 * eps * inv_t);
        let r = T::c(eps.sqrt());
        for ((y, &x), &g) in y.iter_mut().zip(x).zip(g) {
            // Drift and noise first, as in `ula_step`.
            *y = x + (r * T::c(s.normal()) - coef * g);
        }
    }
    pass(model, ws, ch.c, &ch.y, Some(&mut ch.ey), &mut ch.gy);
    for (i, (s, chain)) in ch.streams.iter_mut().zip(&mut ch.chains).enumerate() {
        if chain.diverged_at.is_some() {
            continue;
        }
        let u = s.uniform();
        let eps = per_chain_eps(chain);
        let coef = 0.5 * eps * inv_t;
        let rows = i * d..(i + 1) * d;
        let (x, y) = (&ch.x[rows.clone()], &ch.y[rows.clone()]);
        let (gx, gy) = (&ch.g[rows.clone()], &ch.gy[rows.clone()]);
        // ‖y − x − (ε/2)s(x)‖² and ‖x − y − (ε/2)s(y)‖², s = −∇E/T, in f64 from the stored values.
        let (mut fwd, mut rev) = (0.0, 0.0);
        for k in 0..d {
            let (xk, yk) = (x[k].to_f64_exact(), y[k].to_f64_exact());
            let f = yk - xk + coef * gx[k].to_f64_exact();
            let b = xk - yk + coef * gy[k].to_f64_exact();
            fwd += f * f;
            rev += b * b;
        }
        let de = (ch.e[i].to_f64_exact() - ch.ey[i].to_f64_exact()) * inv_t;
        let a = de - rev / (2.0 * eps) + fwd / (2.0 * eps);
        // ln u < 0 ≤ a needs no logarithm (u < 1). NaN (a non-finite proposal) compares
        // false: rejected.
        let accept =
            (a >= 0.0 || u.ln() < a) && y.iter().all(|v| v.is_finite()) && ch.ey[i].is_finite();
        if accept {
            ch.x[rows.clone()].copy_from_slice(&ch.y[rows.clone()]);
            ch.g[rows.clone()].copy_from_slice(&ch.gy[rows]);
            ch.e[i] = ch.ey[i];
            if count {
                chain.accepted += 1;
            }
        }
        if let Some(target) = adapt {
            // The acceptance probability min(1, eᵃ), 0 for NaN; only adaptation reads it.
            let prob = if a >= 0.0 {
                1.0
            } else if a.is_nan() {
                0.0
            } else {
                a.exp()
            };
            chain.adapt(target, prob);
        }
    }
}

/// Runs `config` to the end on `n_chains` chains in one go.
pub fn sample<T: Real>(
    model: &Model<T>,
    n_chains: usize,
    init: Option<Rows<'_, T>>,
    config: Config,
    want_trajectory: bool,
) -> Result<Output<T>> {
    let mut sampler = Sampler::new(model, n_chains, init, config)?;
    let d = model.mlp().dim();
    let mut trajectory = if want_trajectory {
        let len = (sampler.config().n_kept())
            .checked_mul(n_chains * d)
            .ok_or_else(|| Error::OutOfMemory("the trajectory's length overflows usize".into()))?;
        try_filled(len, T::zero(), "the trajectory")?
    } else {
        Vec::new()
    };
    let total = sampler.config().total_steps();
    sampler.run(model, total, want_trajectory.then_some(&mut trajectory[..]))?;
    let mut samples = vec![T::zero(); n_chains * d];
    sampler.positions(&mut samples);
    Ok(Output {
        samples,
        trajectory,
        acceptance: sampler.acceptance(),
        step_sizes: sampler.step_sizes(),
        diverged_at: sampler.diverged_at(),
    })
}

/// The results of [`sample`].
#[derive(Debug, Clone, PartialEq)]
pub struct Output<T> {
    /// Final states, (n_chains × dim).
    pub samples: Vec<T>,
    /// (n_kept × n_chains × dim), or empty when not asked for.
    pub trajectory: Vec<T>,
    pub acceptance: Vec<f64>,
    pub step_sizes: Vec<f64>,
    pub diverged_at: Vec<Option<usize>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_check_counts_what_a_chunk_holds() {
        for mala in [false, true] {
            let (c, dim) = (3, 5);
            let streams = (0..c as u64).map(|i| Stream::new(0, i)).collect();
            let k = Chunk::<f32>::new(vec![0.0; c * dim], dim, mala, streams, Chain::new(0.1));
            let values = [&k.x, &k.g, &k.e, &k.y, &k.gy, &k.ey].map(|v| v.len());
            let bytes = values.iter().sum::<usize>() * 4
                + k.streams.len() * std::mem::size_of::<Stream>()
                + k.chains.len() * std::mem::size_of::<Chain>();
            assert_eq!(
                bytes,
                c * Chunk::<f32>::bytes_per_chain(dim, mala),
                "mala {mala}"
            );
        }
    }
}
