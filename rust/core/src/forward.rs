//! Energy and score of a chunk of rows: one forward pass and one reverse pass.
//!
//! ```text
//! forward: z_l = W_l h_{l-1} + b_l,  h_l = σ(z_l),  E = w·h_L + c + (α/2)‖x‖²
//! reverse: h̄_L = wᵀ,  z̄_l = σ'(z_l) ⊙ h̄_l,  h̄_{l-1} = W_lᵀ z̄_l,  ∇ₓE = h̄_0 + αx
//! ```
//!
//! The cost is about twice the forward pass whatever the input dimension; the score never
//! goes through the Jacobian propagation of [`crate::laplacian`].

use crate::activation::{apply_rows, derivative_rows};
use crate::model::Model;
use crate::real::Real;
use crate::simd::multiversion;
use crate::workspace::{fit, fit_all};

/// Bytes a chunk's buffers may take, so that they stay in a 512 KiB L2 (Zen 3) beside the
/// weights while the GEMMs stream over them. Fixed 256-row chunks took 0.5–1 MiB at widths
/// 128–256 and spilled: energy and score ran 5–16 % slower than with chunks in this budget
/// (S1–S3, float32 and float64, 2 threads, medians of 6–10 alternated runs). Langevin
/// chunks take the same size: float32 ULA at dim 16, width 128 ran 12 % faster than with
/// 256-chain chunks, the width-64 rows within ±3 %.
const CHUNK_BYTES: usize = 256 << 10;

/// Rows per chunk of the energy and score passes (and chains per chunk of a Langevin run):
/// the largest power of two from 16 to 256 whose buffers fit in `CHUNK_BYTES` (256 KiB). It
/// depends on the model's shape alone; and since every row's result depends only on that
/// row, it changes no value, only speed.
pub fn chunk_rows<T: Real>(model: &Model<T>) -> usize {
    let per_row = ScoreWorkspace::bytes(model, 1).unwrap_or(usize::MAX).max(1);
    let rows = (CHUNK_BYTES / per_row).clamp(16, 256);
    1 << rows.ilog2()
}

/// Buffers of one chunk; reused across chunks and calls.
#[derive(Default)]
pub struct ScoreWorkspace<T> {
    x: Vec<T>,
    /// Per hidden layer, `h_l` (c × n_l), then σ'(z_l) when the score is wanted.
    h: Vec<Vec<T>>,
    d1: Vec<Vec<T>>,
    bar: [Vec<T>; 2],
}

impl<T: Real> ScoreWorkspace<T> {
    /// Bytes of the buffers of a chunk of `c` rows (`None`: more than `usize` holds), for a
    /// memory check before any is made; [`ScoreWorkspace::input`] sizes them the same way.
    pub fn bytes(model: &Model<T>, c: usize) -> Option<usize> {
        let mlp = model.mlp();
        // x, then per hidden layer h and σ′, then the two adjoint buffers.
        let values = mlp
            .hidden()
            .iter()
            .try_fold(mlp.dim(), |s, &n| s.checked_add(n.checked_mul(2)?))?
            .checked_add(2 * mlp.max_hidden())?;
        values.checked_mul(c)?.checked_mul(std::mem::size_of::<T>())
    }

    /// The chunk's input buffer, (c × dim), to be filled by the caller.
    pub fn input(&mut self, model: &Model<T>, c: usize) -> &mut [T] {
        let mlp = model.mlp();
        fit(&mut self.x, c * mlp.dim());
        fit_all(&mut self.h, mlp.hidden().iter().map(|n| c * n));
        fit_all(&mut self.d1, mlp.hidden().iter().map(|n| c * n));
        for b in &mut self.bar {
            fit(b, c * mlp.max_hidden());
        }
        &mut self.x
    }
}

multiversion! {
/// Energies and/or gradients ∇ₓE of the `c` rows placed by [`ScoreWorkspace::input`].
///
/// `energy` receives (c,) values, `grad` (c × dim) values of ∇ₓE (the score is its negative).
pub fn energy_and_grad<T>(model: &Model<T>, ws: &mut ScoreWorkspace<T>, c: usize, energy: Option<&mut [T]>, grad: Option<&mut [T]>) => energy_and_grad_impl
}

#[inline(always)]
fn energy_and_grad_impl<T: Real>(
    model: &Model<T>,
    ws: &mut ScoreWorkspace<T>,
    c: usize,
    energy: Option<&mut [T]>,
    grad: Option<&mut [T]>,
) {
    let mlp = model.mlp();
    let act = mlp.activation();
    let n_layers = mlp.n_layers();
    let want_grad = grad.is_some();
    let want_energy = energy.is_some();

    for l in 0..n_layers {
        let ly = mlp.layer(l);
        let (done, rest) = ws.h.split_at_mut(l);
        let h_prev: &[T] = if l == 0 { &ws.x } else { &done[l - 1] };
        let z = &mut rest[0];
        model.fwd[l].mul(h_prev, z, false);
        let n = ly.n_out;
        let (z, d1) = (&mut z[..c * n], &mut ws.d1[l][..c * n]);
        // Without the energy, the last layer's values h_L are never read: σ' alone will do.
        if want_grad && !want_energy && l == n_layers - 1 {
            derivative_rows(act, z, n, ly.b, d1);
        } else {
            apply_rows(act, z, n, ly.b, want_grad.then_some(d1));
        }
    }

    let out = mlp.layer(n_layers);
    let half_alpha = mlp.alpha() * T::c(0.5);
    let dim = mlp.dim();
    if let Some(energy) = energy {
        let h_last = &ws.h[n_layers - 1];
        for (r, e) in energy.iter_mut().enumerate() {
            let h = &h_last[r * out.n_in..(r + 1) * out.n_in];
            let x = &ws.x[r * dim..(r + 1) * dim];
            // Skipped at α = 0, where 0·‖x‖² would turn a finite energy at a huge x into NaN.
            let conf = if half_alpha == T::zero() {
                T::zero()
            } else {
                half_alpha * dot(x, x)
            };
            *e = dot(h, out.w) + out.b[0] + conf;
        }
    }

    let Some(grad) = grad else { return };
    let d1 = &ws.d1;
    reverse(model, c, |l| &d1[l][..], &ws.x, &mut ws.bar, None, grad);
}

/// The reverse pass of the score, from σ'(z_l) of each hidden layer (`s1(l)`, at least
/// c × n_l values): z̄_L = σ'(z_L) ⊙ w, h̄_{l-1} = z̄_l W_l, z̄_{l-1} = h̄_{l-1} ⊙ σ'(z_{l-1}), and
/// ∇ₓE = z̄_1 W_1 + αx into `grad` (c × dim). `bar` are two buffers of at least c × the
/// widest layer. With `keep`, h̄_{l-1} of each layer below the last stays there (c × n_{l-1}
/// each), for a reverse pass that needs it again.
///
/// Shared by [`energy_and_grad`] and the one-tangent ESM/DSM tape (`laplacian`), which so
/// get the same bits.
#[inline(always)] // into the multiversioned `energy_and_grad`, so its loops get the same ISA
pub(crate) fn reverse<'a, T: Real + 'a>(
    model: &Model<T>,
    c: usize,
    s1: impl Fn(usize) -> &'a [T],
    x: &[T],
    bar: &mut [Vec<T>; 2],
    mut keep: Option<&mut [Vec<T>]>,
    grad: &mut [T],
) {
    let mlp = model.mlp();
    let n_layers = mlp.n_layers();
    let out = mlp.layer(n_layers);
    let [cur, next] = bar;
    let n_last = out.n_in;
    for (zb, d) in cur[..c * n_last]
        .chunks_exact_mut(n_last)
        .zip(s1(n_layers - 1)[..c * n_last].chunks_exact(n_last))
    {
        for ((zb, &d), &w) in zb.iter_mut().zip(d).zip(out.w) {
            *zb = d * w;
        }
    }
    let (mut cur, mut next) = (cur, next);
    for l in (0..n_layers).rev() {
        let ly = mlp.layer(l);
        let zbar = &cur[..c * ly.n_out];
        if l == 0 {
            model.bwd[0].mul(zbar, grad, false);
            break;
        }
        let len = c * ly.n_in;
        let d = &s1(l - 1)[..len];
        let znext = &mut next[..len];
        match keep.as_deref_mut() {
            Some(keep) => {
                let hbar = &mut keep[l - 1][..len];
                model.bwd[l].mul(zbar, hbar, false);
                for ((z, &hb), &d) in znext.iter_mut().zip(&*hbar).zip(d) {
                    *z = hb * d;
                }
            }
            None => {
                model.bwd[l].mul(zbar, znext, false);
                for (z, &d) in znext.iter_mut().zip(d) {
                    *z *= d;
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    let alpha = mlp.alpha();
    if alpha != T::zero() {
        for (g, &x) in grad.iter_mut().zip(x) {
            *g += alpha * x;
        }
    }
}

/// Σ a[i]·b[i] in a fixed order that vectorizes: `LANES` running sums (sum j takes the
/// elements i ≡ j mod LANES, in order), then added pairwise.
///
/// One running sum would be a chain of dependent adds, about 3 cycles per element: the output
/// layer's dot products (one per row, one per stacked Laplacian row) took 10–20 % of the
/// energy and hessian_trace passes that way. The order depends only on the length, so a
/// row's value still depends only on that row.
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    const LANES: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); LANES];
    let full = n - n % LANES;
    for (ca, cb) in a[..full]
        .chunks_exact(LANES)
        .zip(b[..full].chunks_exact(LANES))
    {
        for j in 0..LANES {
            acc[j] += ca[j] * cb[j];
        }
    }
    for (j, (&x, &y)) in a[full..].iter().zip(&b[full..]).enumerate() {
        acc[j] += x * y;
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for j in 0..width {
            acc[j] += acc[j + width];
        }
    }
    acc[0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activation, Mlp};

    /// A score without the energy takes σ' alone at the last hidden layer: its pre-activations
    /// stay in `h` as the product left them (some negative), where an energy pass turns them
    /// into softplus values (all positive). Speed only, so no result would show it.
    #[test]
    fn a_score_alone_skips_the_last_layers_values() {
        let (dim, c) = (3, 20);
        let model =
            Model::new(Mlp::<f64>::new(dim, &[8, 6], Activation::Softplus, 0.0, 5).unwrap())
                .unwrap();
        let x: Vec<f64> = (0..c * dim)
            .map(|i| (i as f64 * 0.37).sin() * 3.0)
            .collect();
        let mut ws = ScoreWorkspace::default();
        let mut grad = vec![0.0; c * dim];
        let mut energy = vec![0.0; c];
        let last = |ws: &ScoreWorkspace<f64>| ws.h[1][..c * 6].to_vec();

        ws.input(&model, c).copy_from_slice(&x);
        energy_and_grad(&model, &mut ws, c, Some(&mut energy), Some(&mut grad));
        assert!(last(&ws).iter().all(|&h| h > 0.0), "softplus values");

        ws.input(&model, c).copy_from_slice(&x);
        energy_and_grad(&model, &mut ws, c, None, Some(&mut grad));
        assert!(last(&ws).iter().any(|&z| z < 0.0), "pre-activations");
    }

    #[test]
    fn the_memory_check_counts_what_a_chunk_holds() {
        for (dim, hidden) in [(3, vec![4]), (100, vec![6, 30, 5])] {
            let model =
                Model::new(Mlp::<f32>::new(dim, &hidden, Activation::Silu, 0.0, 0).unwrap())
                    .unwrap();
            let mut ws = ScoreWorkspace::default();
            ws.input(&model, 7);
            let lens = |vs: &[Vec<f32>]| vs.iter().map(Vec::len).sum::<usize>();
            let made = ws.x.len() + lens(&ws.h) + lens(&ws.d1) + lens(&ws.bar);
            assert_eq!(
                ScoreWorkspace::bytes(&model, 7),
                Some(made * 4),
                "{hidden:?}"
            );
        }
    }
}
