//! Forward-Laplacian propagation over a chunk of samples (Li et al., *Forward Laplacian*, 2023).
//!
//! Per sample, each hidden layer carries its value h_l, the M tangents J_l (directional
//! derivatives of h_l along the input tangents t_m) and `λ_l[i] = Σ_m t_mᵀ (∇²h_l[i]) t_m`:
//!
//! ```text
//! A_l = J_{l-1} W_lᵀ,  μ_l = W_l λ_{l-1},  q_l = Σ_m A_l[m]²
//! J_l = σ'(z_l) ⊙ A_l,  λ_l = σ'(z_l) ⊙ μ_l + σ''(z_l) ⊙ q_l
//! ```
//!
//! For a chunk of c samples the three are stacked as the rows of one matrix
//! `H_l = [h (c rows); λ (c rows); J (c·M rows)]`, so `P_l = H_{l-1} W_lᵀ = [z − b; μ; A]` is a
//! single GEMM of c·(M+2) rows. With T = I (the exact Laplacian) layer 1 needs no product for
//! its tangents: A_1 = W_1ᵀ for every sample, and λ_0 = 0.
//!
//! Objectives of the score alone (ESM, DSM) need no λ: their tape is prepared with
//! [`Order::First`] and stacks `[h; J]` only, c·(M+1) rows, skipping a third of the work of
//! the one-tangent path.
//!
//! Everything the reverse pass of [`crate::backward`] needs stays in the workspace after
//! [`Part::All`], or [`Part::Values`] then [`Part::Tangents`] ([`Part::Trace`] leaves out what
//! only that pass reads).

use crate::activation::derivs_rows;
use crate::forward::dot;
use crate::model::Model;
use crate::real::Real;
use crate::simd::multiversion;
use crate::workspace::{fit, fit_all};

/// The input tangents t_1..t_M.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tangents {
    /// T = I_d (M = d): exact Laplacian and gradient.
    #[default]
    Identity,
    /// M tangents per sample, given by the caller in [`LapWorkspace::tangents_mut`] as (c·M × d).
    PerSample(usize),
}

impl Tangents {
    /// Number of tangents M for a model of input dimension `dim`.
    pub fn count(self, dim: usize) -> usize {
        match self {
            Tangents::Identity => dim,
            Tangents::PerSample(m) => m,
        }
    }
}

/// Which derivatives the tape carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Value and tangents `[h; J]`: the energy and its directional derivatives.
    First,
    /// Value, λ and tangents `[h; λ; J]`: also Σ_m t_mᵀ(∇²E)t_m.
    #[default]
    Second,
}

/// Target number of stacked rows c·(M+2) per chunk: the GEMM runs at full speed well before
/// this, and a layer's buffers stay within a few hundred KiB, so that a chunk's tape stays in
/// a 512 KiB L2 (Zen 3). 512 rows spilled it at width 256: S3 f32 hessian_trace took 76–82 ms
/// against 65–74 ms with 256, measured alternately; the smaller widths did not move.
const TARGET_ROWS: usize = 256;

/// Samples per chunk for M tangents; depends on the shape alone, never on the thread count.
pub fn chunk_samples(m: usize) -> usize {
    (TARGET_ROWS / (m + 2)).clamp(1, 256)
}

/// The tape of one chunk: inputs, every layer's stacked rows, and the outputs.
#[derive(Default)]
pub struct LapWorkspace<T> {
    pub(crate) c: usize,
    pub(crate) m: usize,
    pub(crate) tangents: Tangents,
    /// Rows of λ per sample: 1 for [`Order::Second`], 0 for [`Order::First`].
    pub(crate) k: usize,
    /// Input rows x (c × d).
    pub(crate) x: Vec<T>,
    /// Per-sample tangents (c·M × d) for [`Tangents::PerSample`].
    pub(crate) t: Vec<T>,
    /// Per hidden layer: P_l = [z; μ; A], (c(M+2) × n_l); z includes the bias.
    pub(crate) p: Vec<Vec<T>>,
    /// Per hidden layer: H_l = [h; λ; J], (c(M+2) × n_l).
    pub(crate) h: Vec<Vec<T>>,
    /// Per hidden layer: σ', σ'', σ''' at z_l, then q_l; four (c × n_l) blocks. σ''' is
    /// written only on a second-order tape, and not by [`Part::Trace`].
    pub(crate) d: Vec<Vec<T>>,
    /// Network outputs per stacked row, (c(M+2)): [w·h; w·λ; w·J] (no c, no confining term).
    pub(crate) out: Vec<T>,
    /// Reverse-pass buffers.
    pub(crate) bar: [Vec<T>; 2],
    pub(crate) tmp: Vec<T>,
    /// Σ over the chunk's samples of Ā_1 (M × n_1), for the layer-1 gradient when T = I.
    pub(crate) sum: Vec<T>,
    /// Per hidden layer below the last, h̄ of the score's reverse pass (c × n_l), when
    /// [`gradient_into_tangents`] ran on this chunk (`has_score_bar`): on a first-order tape the
    /// adjoints of the tangent rows are multiples of it, which spares their product in the
    /// reverse pass (see `backward`).
    pub(crate) score_bar: Vec<Vec<T>>,
    pub(crate) has_score_bar: bool,
}

/// The sizes of a tape of `c` samples, computed in one place for [`LapWorkspace::prepare`],
/// which makes the buffers, and [`LapWorkspace::bytes`], which counts them beforehand.
struct TapeShape {
    /// Tangents M and λ rows per sample k.
    m: usize,
    k: usize,
    /// Stacked rows c·(M + 1 + k).
    rows: usize,
    /// Per-sample tangents: c·M·d, or 0 for T = I.
    t: usize,
    /// Values of the per-layer buffers (P, H, the four derivative blocks) over all hidden
    /// layers, and of all the others.
    layers: usize,
    fixed: usize,
}

impl TapeShape {
    /// `None` when a size overflows `usize` (no such tape can be allocated).
    fn of<T: Real>(model: &Model<T>, c: usize, tangents: Tangents, order: Order) -> Option<Self> {
        let mlp = model.mlp();
        let dim = mlp.dim();
        let m = tangents.count(dim);
        let k = match order {
            Order::First => 0,
            Order::Second => 1,
        };
        let rows = c.checked_mul(m.checked_add(1 + k)?)?;
        let t = match tangents {
            Tangents::PerSample(_) => c.checked_mul(m)?.checked_mul(dim)?,
            Tangents::Identity => 0,
        };
        // P and H: rows·n each; σ′, σ″, σ‴ and q: 4·c·n.
        let per_width = rows.checked_mul(2)?.checked_add(c.checked_mul(4)?)?;
        let hidden = mlp.hidden();
        let layers = hidden
            .iter()
            .try_fold(0usize, |s, &n| s.checked_add(per_width.checked_mul(n)?))?;
        // h̄ of the score pass below the last layer (`gradient_into_tangents`), out, two
        // adjoint buffers of the widest hidden layer, tmp, Σ Ā_1 and the inputs.
        let below_last: usize = hidden[..hidden.len() - 1].iter().sum();
        let fixed = [
            c.checked_mul(below_last),
            Some(rows),
            rows.checked_mul(2 * mlp.max_hidden()),
            Some(mlp.max_hidden()),
            m.checked_mul(mlp.widths()[1]),
            c.checked_mul(dim),
            Some(t),
        ]
        .into_iter()
        .try_fold(0usize, |s, v| s.checked_add(v?))?;
        Some(TapeShape {
            m,
            k,
            rows,
            t,
            layers,
            fixed,
        })
    }
}

impl<T: Real> LapWorkspace<T> {
    /// Bytes of a tape of `c` samples (`None`: more than `usize` holds), for a memory check
    /// before any tape is made.
    pub fn bytes(model: &Model<T>, c: usize, tangents: Tangents, order: Order) -> Option<usize> {
        let s = TapeShape::of(model, c, tangents, order)?;
        s.layers
            .checked_add(s.fixed)?
            .checked_mul(std::mem::size_of::<T>())
    }

    /// Sizes the workspace for `c` samples and returns the input buffer (c × dim) to fill.
    ///
    /// # Panics
    /// If a size overflows `usize`: callers check [`LapWorkspace::bytes`] first.
    pub fn prepare(
        &mut self,
        model: &Model<T>,
        c: usize,
        tangents: Tangents,
        order: Order,
    ) -> &mut [T] {
        let mlp = model.mlp();
        let s = TapeShape::of(model, c, tangents, order).expect("a tape whose size fits usize");
        let (m, rows, hidden) = (s.m, s.rows, mlp.hidden());
        self.c = c;
        self.m = m;
        self.k = s.k;
        self.tangents = tangents;
        fit(&mut self.t, s.t);
        fit_all(&mut self.p, hidden.iter().map(|n| rows * n));
        fit_all(&mut self.h, hidden.iter().map(|n| rows * n));
        fit_all(&mut self.d, hidden.iter().map(|n| 4 * c * n));
        fit(&mut self.out, rows);
        for b in &mut self.bar {
            fit(b, rows * mlp.max_hidden());
        }
        fit(&mut self.tmp, mlp.max_hidden());
        fit(&mut self.sum, m * mlp.widths()[1]);
        fit(&mut self.x, c * mlp.dim());
        self.has_score_bar = false;
        &mut self.x
    }

    /// The tangent buffer (c·M × d) for [`Tangents::PerSample`]; row b·M + m is t_m of sample b.
    pub fn tangents_mut(&mut self) -> &mut [T] {
        &mut self.t
    }

    /// Σ_m t_mᵀ ∇²E_net t_m of sample `b` (the exact Laplacian of the network part for T = I);
    /// only on a tape of [`Order::Second`].
    pub fn lap_net(&self, b: usize) -> T {
        debug_assert!(self.k == 1, "a first-order tape carries no λ");
        self.out[self.c + b]
    }

    /// Index in `out` of the first tangent row, (1 + k)·c.
    pub(crate) fn j_start(&self) -> usize {
        (1 + self.k) * self.c
    }
}

/// A_l of sample `b` (M × n_l, row-major): from the tape, or W_1ᵀ for layer 1 when T = I.
#[inline(always)]
pub(crate) fn layer_tangents<'a, T: Real>(
    model: &'a Model<T>,
    tangents: Tangents,
    l: usize,
    pa: &'a [T],
    b: usize,
    len: usize,
) -> &'a [T] {
    if l == 0 && tangents == Tangents::Identity {
        &model.w1t
    } else {
        &pa[b * len..(b + 1) * len]
    }
}

/// Which rows of the tape a call of [`forward`] computes. Rows are independent in every
/// product (see `gemm`), so [`Part::Values`] then [`Part::Tangents`] give the same bits as
/// [`Part::All`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything.
    All,
    /// The values: z, h and σ', σ'' (and σ''' on a second-order tape) of every layer, and the
    /// outputs w·h. This is the forward half of a score pass, which [`gradient_into_tangents`]
    /// completes.
    Values,
    /// What [`Part::Values`] left: λ, J and their outputs.
    Tangents,
    /// What [`LapWorkspace::lap_net`] reads, and nothing only a reverse pass reads: all but
    /// σ''', the last layer's J, and the outputs of the value and tangent rows. λ has the bits
    /// of [`Part::All`]. The hessian_trace pass; its tape is not fit for [`crate::backward`].
    Trace,
}

multiversion! {
/// Runs the propagation, or the part of it that `part` names, on the `c` samples placed by
/// [`LapWorkspace::prepare`].
pub fn forward<T>(model: &Model<T>, ws: &mut LapWorkspace<T>, part: Part) => forward_impl
}

#[inline(always)]
fn forward_impl<T: Real>(model: &Model<T>, ws: &mut LapWorkspace<T>, part: Part) {
    let mlp = model.mlp();
    let act = mlp.activation();
    let (c, m, k) = (ws.c, ws.m, ws.k);
    let values = part != Part::Tangents;
    let tangents = part != Part::Values;
    let trace = part == Part::Trace;
    debug_assert!(
        !trace || k == 1,
        "the trace pass needs a tape that carries λ"
    );
    for l in 0..mlp.n_layers() {
        // The trace needs the last layer's q, not its J.
        let keep_j = !(trace && l + 1 == mlp.n_layers());
        let ly = mlp.layer(l);
        let n = ly.n_out;
        let p = &mut ws.p[l];
        let (z, rest) = p.split_at_mut(c * n);
        if l == 0 {
            let (mu, a) = rest.split_at_mut(k * c * n);
            if values {
                model.fwd[0].mul(&ws.x, z, false);
            }
            if tangents {
                mu.fill(T::zero());
                // With T = I, A_1 = W_1ᵀ for every sample: it is read from the model
                // (`layer_tangents`), never copied into the tape.
                if let Tangents::PerSample(_) = ws.tangents {
                    model.fwd[0].mul(&ws.t, a, false);
                }
            }
        } else {
            let (h_prev, rest_prev) = ws.h[l - 1].split_at(c * ly.n_in);
            if values {
                model.fwd[l].mul(h_prev, z, false);
            }
            if tangents {
                model.fwd[l].mul(rest_prev, rest, false);
            }
        }

        let h = &mut ws.h[l];
        let d = &mut ws.d[l];
        let (s1s, rest) = d.split_at_mut(c * n);
        let (s2s, rest) = rest.split_at_mut(c * n);
        let (s3s, qs) = rest.split_at_mut(c * n);
        let (pz, prest) = p.split_at_mut(c * n);
        let (pmu, pa) = prest.split_at_mut(k * c * n);
        let (hh, hrest) = h.split_at_mut(c * n);
        let (hlam, hj) = hrest.split_at_mut(k * c * n);
        if values {
            // σ''' enters only the reverse pass of a second-order tape, and the trace never
            // reads the last layer's values.
            let hh = if keep_j { hh } else { &mut [][..] };
            derivs_rows(
                act,
                pz,
                n,
                ly.b,
                [hh, s1s, s2s],
                (k == 1 && !trace).then_some(s3s),
            );
        }
        if !tangents {
            continue;
        }
        for b in 0..c {
            let row = b * n..(b + 1) * n;
            let (s1, s2) = (&s1s[row.clone()], &s2s[row.clone()]);
            let a_b = layer_tangents(model, ws.tangents, l, pa, b, m * n);
            let j_b = &mut hj[b * m * n..(b + 1) * m * n];
            if k == 0 {
                for (arow, jrow) in a_b.chunks_exact(n).zip(j_b.chunks_exact_mut(n)) {
                    for i in 0..n {
                        jrow[i] = s1[i] * arow[i];
                    }
                }
                continue;
            }
            let q = &mut qs[row.clone()];
            if l == 0 && ws.tangents == Tangents::Identity {
                // A_1 = W_1ᵀ for every sample: its q is the model's, summed once.
                q.copy_from_slice(&model.q1);
                if keep_j {
                    for (arow, jrow) in a_b.chunks_exact(n).zip(j_b.chunks_exact_mut(n)) {
                        for i in 0..n {
                            jrow[i] = s1[i] * arow[i];
                        }
                    }
                }
            } else if keep_j {
                q.fill(T::zero());
                for (arow, jrow) in a_b.chunks_exact(n).zip(j_b.chunks_exact_mut(n)) {
                    for i in 0..n {
                        q[i] += arow[i] * arow[i];
                        jrow[i] = s1[i] * arow[i];
                    }
                }
            } else {
                q.fill(T::zero());
                for arow in a_b.chunks_exact(n) {
                    for i in 0..n {
                        q[i] += arow[i] * arow[i];
                    }
                }
            }
            let mu = &pmu[row.clone()];
            let lam = &mut hlam[row];
            for i in 0..n {
                lam[i] = s1[i] * mu[i] + s2[i] * q[i];
            }
        }
    }

    let out = mlp.layer(mlp.n_layers());
    let h_last = &ws.h[mlp.n_layers() - 1];
    let (first, last) = match part {
        Part::All => (0, ws.out.len()),
        Part::Values => (0, c),
        Part::Tangents => (c, ws.out.len()),
        Part::Trace => (c, (1 + k) * c),
    };
    for (o, hr) in ws.out[first..last]
        .iter_mut()
        .zip(h_last[first * out.n_in..].chunks_exact(out.n_in))
    {
        *o = dot(hr, out.w);
    }
}

/// ∇ₓE(x) of every sample into the tangent buffer (c × d), by a reverse pass over what
/// [`forward`] with [`Part::Values`] left in the tape: the score pass of the one-tangent
/// ESM/DSM path without a second forward pass, by the same code as
/// [`crate::forward::energy_and_grad`] (so the bits are the same too).
///
/// The h̄ of each hidden layer below the last stays in the tape, for [`crate::backward`].
pub fn gradient_into_tangents<T: Real>(model: &Model<T>, ws: &mut LapWorkspace<T>) {
    let mlp = model.mlp();
    let (c, n_layers) = (ws.c, mlp.n_layers());
    let widths = &mlp.widths()[1..n_layers];
    fit_all(&mut ws.score_bar, widths.iter().map(|n| c * n));
    ws.has_score_bar = true;
    let d = &ws.d;
    crate::forward::reverse(
        model,
        c,
        // σ' of layer l: the first c·n_l values of `d[l]`.
        |l| &d[l][..],
        &ws.x,
        &mut ws.bar,
        Some(&mut ws.score_bar),
        &mut ws.t[..c * mlp.dim()],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Mlp};

    #[test]
    fn the_memory_check_counts_what_a_tape_holds() {
        for hidden in [vec![4], vec![6, 3, 5]] {
            let model =
                Model::new(Mlp::<f64>::new(3, &hidden, Activation::Tanh, 0.0, 0).unwrap()).unwrap();
            for tangents in [Tangents::Identity, Tangents::PerSample(2)] {
                for order in [Order::First, Order::Second] {
                    let c = 4;
                    let mut ws = LapWorkspace::default();
                    ws.prepare(&model, c, tangents, order);
                    let lens = |vs: &[Vec<f64>]| vs.iter().map(Vec::len).sum::<usize>();
                    let made = [&ws.x, &ws.t, &ws.out, &ws.tmp, &ws.sum]
                        .map(|v| v.len())
                        .iter()
                        .sum::<usize>()
                        + lens(&ws.bar)
                        + lens(&ws.p)
                        + lens(&ws.h)
                        + lens(&ws.d);
                    // The score pass's h̄, which `gradient_into_tangents` makes later.
                    let score_bar = c * hidden[..hidden.len() - 1].iter().sum::<usize>();
                    assert_eq!(
                        LapWorkspace::bytes(&model, c, tangents, order),
                        Some((made + score_bar) * 8),
                        "{hidden:?} {tangents:?} {order:?}"
                    );
                }
            }
        }
    }

    /// The hessian_trace pass skips what only the reverse pass reads; λ keeps the bits of the
    /// full pass, for every activation, depth and a width that is not a multiple of the lanes.
    #[test]
    fn the_trace_part_gives_the_laplacian_of_the_full_pass() {
        for act in Activation::ALL {
            for hidden in [vec![5], vec![7, 3], vec![19, 33, 4]] {
                let model = Model::new(Mlp::<f64>::new(3, &hidden, act, 0.0, 2).unwrap()).unwrap();
                let c = 6;
                let x: Vec<f64> = (0..c * 3).map(|i| (i as f64 * 0.37).sin() * 2.0).collect();
                let laps = |part| {
                    let mut ws = LapWorkspace::default();
                    ws.prepare(&model, c, Tangents::Identity, Order::Second)
                        .copy_from_slice(&x);
                    forward(&model, &mut ws, part);
                    (0..c).map(|b| ws.lap_net(b).to_bits()).collect::<Vec<_>>()
                };
                let all = laps(Part::All);
                assert!(all.iter().all(|&v| f64::from_bits(v) != 0.0), "{all:?}");
                assert_eq!(laps(Part::Trace), all, "{act:?} {hidden:?}");
            }
        }
    }

    /// With T = I, layer 1's q is the model's, summed once (`Model::q1`): the same bits as the
    /// per-sample sum over the identity's tangent rows, which the general path takes.
    #[test]
    fn identity_tangents_give_the_bits_of_explicit_unit_tangents() {
        for act in Activation::ALL {
            for (dim, hidden) in [(3, vec![5]), (4, vec![7, 3]), (33, vec![19, 40])] {
                let model =
                    Model::new(Mlp::<f32>::new(dim, &hidden, act, 0.0, 4).unwrap()).unwrap();
                let c = 5;
                let x: Vec<f32> = (0..c * dim)
                    .map(|i| (i as f32 * 0.71).cos() * 1.5)
                    .collect();
                let laps = |tangents, part| {
                    let mut ws = LapWorkspace::default();
                    ws.prepare(&model, c, tangents, Order::Second)
                        .copy_from_slice(&x);
                    if let Tangents::PerSample(m) = tangents {
                        let t = ws.tangents_mut();
                        t.fill(0.0);
                        for (r, row) in t.chunks_exact_mut(dim).enumerate() {
                            row[r % m] = 1.0;
                        }
                    }
                    forward(&model, &mut ws, part);
                    (0..c).map(|b| ws.lap_net(b).to_bits()).collect::<Vec<_>>()
                };
                for part in [Part::All, Part::Trace] {
                    assert_eq!(
                        laps(Tangents::Identity, part),
                        laps(Tangents::PerSample(dim), part),
                        "{act:?} {dim} {hidden:?} {part:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn adjoint_buffers_do_not_grow_with_dim() {
        // h̄_0 (dim wide) goes straight to its output: a wide input must not make the
        // adjoint buffers dim² (they took 80 GB at dim 10⁵ and aborted).
        let model =
            Model::new(Mlp::<f32>::new(100_000, &[1], Activation::Softplus, 0.0, 0).unwrap())
                .unwrap();
        let bytes = LapWorkspace::bytes(&model, 1, Tangents::Identity, Order::Second).unwrap();
        assert!(bytes < 4_000_000, "{bytes} bytes");
    }

    #[test]
    fn a_tape_too_large_for_usize_is_none() {
        let model =
            Model::new(Mlp::<f64>::new(2, &[1 << 20], Activation::Tanh, 0.0, 0).unwrap()).unwrap();
        assert_eq!(
            LapWorkspace::bytes(&model, usize::MAX / 4, Tangents::Identity, Order::Second),
            None
        );
    }
}
