//! Batch entry points: validate, cut the batch into chunks, run the per-chunk passes on the
//! pool with per-thread workspaces, and reduce in a fixed order.

use std::sync::atomic::AtomicBool;

use crate::backward;
use crate::error::{check_reservable, Error, Result};
use crate::forward::{self, ScoreWorkspace};
use crate::laplacian::{self, LapWorkspace, Order, Part, Tangents};
use crate::matrix::Rows;
use crate::model::Model;
use crate::objective::Objective;
use crate::parallel::{for_each_chunk_mut, tree_reduce};
use crate::real::Real;
use crate::workspace::{give_back, take_zeroed, with_workspace, workspaces_bytes};

fn check_input<T: Real>(model: &Model<T>, x: &Rows<'_, T>) -> Result<()> {
    let dim = model.mlp().dim();
    if x.cols() != dim {
        return Err(Error::Shape(format!(
            "X must have shape (n, {dim}) for this model (dim = {dim}), got ({}, {})",
            x.rows(),
            x.cols()
        )));
    }
    x.check_finite("X")
}

fn check_out(len: usize, want: usize, what: &str) -> Result<()> {
    if len != want {
        return Err(Error::Shape(format!(
            "{what} buffer must hold {want} values, got {len}"
        )));
    }
    Ok(())
}

/// Refuses a call on `n` rows, in chunks of `chunk`, whose workspaces (`bytes(c)` for a
/// chunk of c rows) cannot be allocated: their size grows with the model's widths and dim,
/// not only with the input, so a small X can ask for more memory than there is. An error,
/// where growing the workspaces would abort.
fn check_workspaces(
    n: usize,
    chunk: usize,
    what: &str,
    bytes: impl Fn(usize) -> Option<usize>,
) -> Result<()> {
    check_reservable(workspaces_bytes(n, chunk, &bytes), || {
        let size =
            bytes(chunk.min(n)).map_or("more than usize holds".into(), |b| format!("{b} bytes"));
        format!("cannot allocate the working buffers of {what} for this model: {size} per thread")
    })
}

/// A per-row entry point of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerRow {
    Energy,
    Score,
    HessianTrace,
}

/// Rows of one parallel task of `op`: fixed by the model's shape, never by the thread count.
/// Callers that split a batch themselves (the binding's GIL-free blocks) cut it in multiples
/// of this, so that no block ends with a ragged chunk.
pub fn chunk_rows<T: Real>(model: &Model<T>, op: PerRow) -> usize {
    match op {
        PerRow::Energy | PerRow::Score => forward::chunk_rows(model),
        PerRow::HessianTrace => laplacian::chunk_samples(model.mlp().dim()),
    }
}

/// Energies E(x) of every row of `x`, into `out` (n,).
pub fn energy<T: Real>(model: &Model<T>, x: Rows<'_, T>, out: &mut [T]) -> Result<()> {
    check_input(model, &x)?;
    check_out(out.len(), x.rows(), "energy")?;
    let chunk = chunk_rows(model, PerRow::Energy);
    check_workspaces(x.rows(), chunk, "energy", |c| {
        ScoreWorkspace::bytes(model, c)
    })?;
    for_each_chunk_mut(out, chunk, |i, e| {
        with_workspace(|ws: &mut ScoreWorkspace<T>| {
            let c = e.len();
            x.copy_rows(i * chunk, c, ws.input(model, c));
            forward::energy_and_grad(model, ws, c, Some(e), None);
        })
    })
}

/// Scores s(x) = −∇ₓE(x) of every row, into `out` (n × dim, row-major).
pub fn score<T: Real>(model: &Model<T>, x: Rows<'_, T>, out: &mut [T]) -> Result<()> {
    check_input(model, &x)?;
    let dim = model.mlp().dim();
    check_out(out.len(), x.rows() * dim, "score")?;
    let chunk = chunk_rows(model, PerRow::Score);
    check_workspaces(x.rows(), chunk, "score", |c| {
        ScoreWorkspace::bytes(model, c)
    })?;
    for_each_chunk_mut(out, chunk * dim, |i, s| {
        with_workspace(|ws: &mut ScoreWorkspace<T>| {
            let c = s.len() / dim;
            x.copy_rows(i * chunk, c, ws.input(model, c));
            forward::energy_and_grad(model, ws, c, None, Some(s));
            for v in s.iter_mut() {
                *v = -*v;
            }
        })
    })
}

/// Hessian traces tr(∇ₓs) = −ΔₓE of every row, exact, into `out` (n,).
pub fn hessian_trace<T: Real>(model: &Model<T>, x: Rows<'_, T>, out: &mut [T]) -> Result<()> {
    check_input(model, &x)?;
    check_out(out.len(), x.rows(), "hessian_trace")?;
    let mlp = model.mlp();
    let chunk = chunk_rows(model, PerRow::HessianTrace);
    check_workspaces(x.rows(), chunk, "hessian_trace", |c| {
        LapWorkspace::bytes(model, c, Tangents::Identity, Order::Second)
    })?;
    let lap_conf = mlp.alpha() * T::c(mlp.dim() as f64);
    for_each_chunk_mut(out, chunk, |i, tr| {
        with_workspace(|ws: &mut LapWorkspace<T>| {
            let c = tr.len();
            x.copy_rows(
                i * chunk,
                c,
                ws.prepare(model, c, Tangents::Identity, Order::Second),
            );
            laplacian::forward(model, ws, Part::Trace);
            for (b, t) in tr.iter_mut().enumerate() {
                *t = -(ws.lap_net(b) + lap_conf);
            }
        })
    })
}

fn check_loss_batch<T: Real>(x: &Rows<'_, T>, objective: &Objective<'_, T>) -> Result<()> {
    objective.validate()?;
    if x.rows() == 0 {
        return Err(Error::EmptyBatch(objective.name()));
    }
    if let Objective::Esm { target } = objective {
        if target.rows() != x.rows() || target.cols() != x.cols() {
            return Err(Error::Shape(format!(
                "target_score must have the shape of X, ({}, {}), got ({}, {})",
                x.rows(),
                x.cols(),
                target.rows(),
                target.cols()
            )));
        }
        target.check_finite("target_score")?;
    }
    if let Some(keys) = objective.keys() {
        if keys.len() != x.rows() {
            return Err(Error::Shape(format!(
                "row_keys must hold one key per row of X, {}, got {}",
                x.rows(),
                keys.len()
            )));
        }
    }
    Ok(())
}

/// Places the chunk of `c` rows starting at `start` in `ws`, draws its random inputs and
/// runs the forward-Laplacian propagation. On the one-tangent ESM/DSM path the tangent is the
/// residual, which needs the score: the values are propagated first, the score is taken from
/// them by a reverse pass, and then the tangent rows follow.
fn tape_chunk<T: Real>(
    model: &Model<T>,
    x: &Rows<'_, T>,
    objective: &Objective<'_, T>,
    ws: &mut LapWorkspace<T>,
    start: usize,
    c: usize,
) {
    let tangents = objective.tangents(model.mlp().dim());
    x.copy_rows(start, c, ws.prepare(model, c, tangents, objective.order()));
    objective.prepare_chunk(ws, start);
    if objective.residual_tangent(ws) {
        laplacian::forward(model, ws, Part::Values);
        laplacian::gradient_into_tangents(model, ws);
        objective.complete_residuals(ws, start);
        laplacian::forward(model, ws, Part::Tangents);
    } else {
        laplacian::forward(model, ws, Part::All);
    }
}

/// Samples per chunk for `objective`: fixed by the shape, never by the thread count. Checks
/// that the tapes of a batch of `n` rows can be allocated ([`check_workspaces`]).
fn loss_chunk<T: Real>(model: &Model<T>, objective: &Objective<'_, T>, n: usize) -> Result<usize> {
    let dim = model.mlp().dim();
    let tangents = objective.tangents(dim);
    let chunk = laplacian::chunk_samples(tangents.count(dim));
    check_workspaces(n, chunk, objective.name(), |c| {
        LapWorkspace::bytes(model, c, tangents, objective.order())
    })?;
    Ok(chunk)
}

/// Mean loss of `objective` over the batch.
pub fn loss<T: Real>(model: &Model<T>, x: Rows<'_, T>, objective: Objective<'_, T>) -> Result<f64> {
    loss_unless(model, x, objective, &AtomicBool::new(false))
}

/// [`loss`], which gives up with [`Error::Cancelled`] once `cancel` is raised: chunks not yet
/// started are skipped.
pub fn loss_unless<T: Real>(
    model: &Model<T>,
    x: Rows<'_, T>,
    objective: Objective<'_, T>,
    cancel: &AtomicBool,
) -> Result<f64> {
    check_input(model, &x)?;
    check_loss_batch(&x, &objective)?;
    let n = x.rows();
    let chunk = loss_chunk(model, &objective, n)?;
    let alpha = model.mlp().alpha();
    let total = tree_reduce(
        n.div_ceil(chunk),
        |i| {
            with_workspace(|ws: &mut LapWorkspace<T>| {
                let c = chunk.min(n - i * chunk);
                tape_chunk(model, &x, &objective, ws, i * chunk, c);
                objective.chunk_loss(ws, i * chunk, alpha, n, false)
            })
        },
        |a, b| *a += b,
        cancel,
    )?
    .ok_or(Error::Cancelled)?;
    Ok(total / n as f64)
}

/// Mean loss of `objective` and its exact gradient with respect to every parameter, written
/// to `grad` (flat, in the public layout of [`crate::Mlp::params`]).
pub fn loss_and_grad<T: Real>(
    model: &Model<T>,
    x: Rows<'_, T>,
    objective: Objective<'_, T>,
    grad: &mut [T],
) -> Result<f64> {
    loss_and_grad_unless(model, x, objective, grad, &AtomicBool::new(false))
}

/// [`loss_and_grad`], which gives up with [`Error::Cancelled`] once `cancel` is raised
/// (chunks not yet started are skipped), leaving `grad` as it was.
pub fn loss_and_grad_unless<T: Real>(
    model: &Model<T>,
    x: Rows<'_, T>,
    objective: Objective<'_, T>,
    grad: &mut [T],
    cancel: &AtomicBool,
) -> Result<f64> {
    check_input(model, &x)?;
    check_loss_batch(&x, &objective)?;
    check_out(grad.len(), model.mlp().n_params(), "gradient")?;
    let n = x.rows();
    let chunk = loss_chunk(model, &objective, n)?;
    let alpha = model.mlp().alpha();
    let n_params = grad.len();
    let (total, g) = tree_reduce(
        n.div_ceil(chunk),
        |i| {
            let mut g = take_zeroed::<T>(n_params);
            let loss = with_workspace(|ws: &mut LapWorkspace<T>| {
                let c = chunk.min(n - i * chunk);
                tape_chunk(model, &x, &objective, ws, i * chunk, c);
                let loss = objective.chunk_loss(ws, i * chunk, alpha, n, true);
                backward::backward(model, ws, &mut g);
                loss
            });
            (loss, g)
        },
        |(la, ga), (lb, gb)| {
            *la += lb;
            for (a, b) in ga.iter_mut().zip(&gb) {
                *a += *b;
            }
            give_back(gb);
        },
        cancel,
    )?
    .ok_or(Error::Cancelled)?;
    grad.copy_from_slice(&g);
    give_back(g);
    Ok(total / n as f64)
}
