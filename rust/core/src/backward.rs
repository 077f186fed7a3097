//! Reverse mode through the forward-Laplacian propagation: the exact parameter gradient of
//! any loss of (E, Laplacian, tangent derivatives), the ISM loss first among them.
//!
//! With adjoints [h̄; λ̄; J̄] of layer l stacked like its rows, and s1, s2, s3 = σ', σ'', σ'''
//! at z_l:
//!
//! ```text
//! Ā  = s1 ⊙ J̄ + 2 (s2 ⊙ λ̄) ⊙ A
//! z̄  = s2 ⊙ Σ_m J̄[m] ⊙ A[m] + (s2 ⊙ μ + s3 ⊙ q) ⊙ λ̄ + s1 ⊙ h̄
//! μ̄  = s1 ⊙ λ̄
//! W̄_l += [z̄; μ̄; Ā]ᵀ H_{l-1}   (one GEMM over the stacked rows: z̄hᵀ + μ̄λᵀ + ĀᵀJ)
//! b̄_l += Σ z̄,   [h̄; λ̄; J̄]_{l-1} = [z̄; μ̄; Ā] W_l
//! ```
//!
//! The adjoint of the outputs is given per stacked row, like the outputs themselves:
//! [Ē; λ̄_out; (T̄ᵀg)] — see [`crate::objective`]. A first-order tape has no λ rows: the same
//! formulas with λ̄ = 0. Then the tangent rows' adjoints follow J̄_{l-1} = (s1 ⊙ J̄_l) W_l from
//! J̄_L = out̄ ⊗ w: the recursion of the score's reverse pass, so J̄_l = out̄ · h̄_l of that pass.
//! When the tape kept h̄_l (the one-tangent ESM/DSM path computes the score from the tape),
//! that product is skipped and only the value rows are multiplied.

use crate::laplacian::{layer_tangents, LapWorkspace, Tangents};
use crate::model::Model;
use crate::real::Real;
use crate::simd::multiversion;

multiversion! {
/// Adds to `grad` (flat, public layout) the gradient of Σ_rows out̄ · out for the chunk in `ws`,
/// where out̄ is `ws.out` overwritten by the caller with the adjoint of each output row.
pub fn backward<T>(model: &Model<T>, ws: &mut LapWorkspace<T>, grad: &mut [T]) => backward_impl
}

#[inline(always)]
fn backward_impl<T: Real>(model: &Model<T>, ws: &mut LapWorkspace<T>, grad: &mut [T]) {
    let mlp = model.mlp();
    let (c, m, k) = (ws.c, ws.m, ws.k);
    let rows = c * (m + 1 + k);
    let n_layers = mlp.n_layers();
    let out = mlp.layer(n_layers);
    let out_bar = &ws.out[..rows];

    // Output layer: w̄ += Σ_r out̄_r H_L[r], c̄ += Σ_b Ē_b, H̄_L = out̄ ⊗ w.
    let span = mlp.layer_span(n_layers);
    let (gw, gc) = grad[span].split_at_mut(out.n_in);
    let h_last = &ws.h[n_layers - 1];
    for (&ob, hr) in out_bar.iter().zip(h_last.chunks_exact(out.n_in)) {
        if ob != T::zero() {
            for (g, &h) in gw.iter_mut().zip(hr) {
                *g += ob * h;
            }
        }
    }
    gc[0] += out_bar[..c].iter().copied().sum::<T>();
    let [cur, next] = &mut ws.bar;
    let (mut cur, mut next) = (cur, next);
    for (hb, &ob) in cur[..rows * out.n_in]
        .chunks_exact_mut(out.n_in)
        .zip(out_bar)
    {
        for (h, &w) in hb.iter_mut().zip(out.w) {
            *h = ob * w;
        }
    }

    for l in (0..n_layers).rev() {
        let ly = mlp.layer(l);
        let n = ly.n_out;
        let bar = &mut cur[..rows * n];
        let p = &ws.p[l];
        let d = &ws.d[l];
        let tmp = &mut ws.tmp[..n];
        {
            let (s1s, rest) = d.split_at(c * n);
            let (s2s, rest) = rest.split_at(c * n);
            let (s3s, qs) = rest.split_at(c * n);
            let (_, prest) = p.split_at(c * n);
            let (pmu, pa) = prest.split_at(k * c * n);
            let (hbar, brest) = bar.split_at_mut(c * n);
            let (lbar, jbar) = brest.split_at_mut(k * c * n);
            if k == 0 {
                // First order: Ā = s1 ⊙ J̄, z̄ = s2 ⊙ Σ_m J̄[m] ⊙ A[m] + s1 ⊙ h̄.
                for b in 0..c {
                    let row = b * n..(b + 1) * n;
                    let (s1, s2) = (&s1s[row.clone()], &s2s[row.clone()]);
                    let hb = &mut hbar[row];
                    let a_b = layer_tangents(model, ws.tangents, l, pa, b, m * n);
                    let j_b = &mut jbar[b * m * n..(b + 1) * m * n];
                    tmp.fill(T::zero());
                    for (arow, jrow) in a_b.chunks_exact(n).zip(j_b.chunks_exact_mut(n)) {
                        for i in 0..n {
                            tmp[i] += jrow[i] * arow[i];
                            jrow[i] = s1[i] * jrow[i];
                        }
                    }
                    for i in 0..n {
                        hb[i] = s2[i] * tmp[i] + s1[i] * hb[i];
                    }
                }
            }
            for b in 0..c * k {
                let row = b * n..(b + 1) * n;
                let (s1, s2, s3, q, mu) = (
                    &s1s[row.clone()],
                    &s2s[row.clone()],
                    &s3s[row.clone()],
                    &qs[row.clone()],
                    &pmu[row.clone()],
                );
                let (hb, lb) = (&mut hbar[row.clone()], &mut lbar[row]);
                let a_b = layer_tangents(model, ws.tangents, l, pa, b, m * n);
                let j_b = &mut jbar[b * m * n..(b + 1) * m * n];
                tmp.fill(T::zero());
                let two = T::c(2.0);
                for (arow, jrow) in a_b.chunks_exact(n).zip(j_b.chunks_exact_mut(n)) {
                    for i in 0..n {
                        tmp[i] += jrow[i] * arow[i];
                        jrow[i] = s1[i] * jrow[i] + two * s2[i] * lb[i] * arow[i];
                    }
                }
                for i in 0..n {
                    hb[i] = s2[i] * tmp[i] + (s2[i] * mu[i] + s3[i] * q[i]) * lb[i] + s1[i] * hb[i];
                    lb[i] = s1[i] * lb[i];
                }
            }
        }
        // bar now holds P̄_l = [z̄; μ̄; Ā].
        let span = mlp.layer_span(l);
        let (gw, gb) = grad[span].split_at_mut(n * ly.n_in);
        for zr in bar[..c * n].chunks_exact(n) {
            for (g, &z) in gb.iter_mut().zip(zr) {
                *g += z;
            }
        }
        if l == 0 {
            // W̄_1 += z̄ᵀ x + Āᵀ J_0 (λ_0 = 0).
            crate::gemm::matmul_tn(&bar[..c * n], &ws.x, gw, n, ly.n_in);
            let abar = &bar[(1 + k) * c * n..];
            match ws.tangents {
                // J_0 = I: W̄_1[i, m] += Σ_b Ā[b, m, i].
                // Summed over the chunk's samples first (contiguous, vectorized), then
                // transposed into the gradient once.
                Tangents::Identity => {
                    let sum = &mut ws.sum[..m * n];
                    sum.copy_from_slice(&abar[..m * n]);
                    for ab in abar.chunks_exact(m * n).skip(1) {
                        for (s, &a) in sum.iter_mut().zip(ab) {
                            *s += a;
                        }
                    }
                    for (mm, srow) in sum.chunks_exact(n).enumerate() {
                        for (i, &a) in srow.iter().enumerate() {
                            gw[i * ly.n_in + mm] += a;
                        }
                    }
                }
                Tangents::PerSample(_) => crate::gemm::matmul_tn(abar, &ws.t, gw, n, ly.n_in),
            }
        } else {
            crate::gemm::matmul_tn(bar, &ws.h[l - 1], gw, n, ly.n_in);
            let below = &mut next[..rows * ly.n_in];
            if k == 0 && ws.has_score_bar {
                let (hrows, jrows) = below.split_at_mut(c * ly.n_in);
                model.bwd[l].mul(&bar[..c * n], hrows, false);
                let score_bar = &ws.score_bar[l - 1];
                for ((jr, &ob), b) in jrows
                    .chunks_exact_mut(ly.n_in)
                    .zip(&out_bar[c..])
                    .zip((0..c).flat_map(|b| std::iter::repeat_n(b, m)))
                {
                    let sb = &score_bar[b * ly.n_in..(b + 1) * ly.n_in];
                    for (j, &s) in jr.iter_mut().zip(sb) {
                        *j = ob * s;
                    }
                }
            } else {
                model.bwd[l].mul(bar, below, false);
            }
            std::mem::swap(&mut cur, &mut next);
        }
    }
}
