//! `_core.Model`: a frozen handle on an immutable core model. Parameters never change in
//! place; `scorematch.EnergyMLP.set_params` swaps in a new handle, so a handle can be shared
//! with threads that run without the GIL.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use numpy::{PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use scorematch_core::engine::PerRow;
use scorematch_core::mlp::{self, fmt_shape};
use scorematch_core::objective::{Keys, Objective, Projection};
use scorematch_core::{engine, parallel, Activation, Error, Mlp, Model, Rows};

use crate::convert::{
    arrays, batch, check_param_ndim, output, param_list, readonly2, rows, rows_with_gil, Float,
};
use crate::errors::to_py;
use crate::interrupt::detach_interruptible;

pub(crate) enum Inner {
    F32(Arc<Model<f32>>),
    F64(Arc<Model<f64>>),
}

/// Calls a generic function with the model of whichever dtype this handle holds.
macro_rules! dispatch {
    ($self:expr, $m:ident => $body:expr) => {
        match &$self.inner {
            Inner::F32($m) => $body,
            Inner::F64($m) => $body,
        }
    };
}

#[pyclass(name = "Model", module = "scorematch._core", frozen)]
pub struct PyModel {
    pub(crate) inner: Inner,
}

fn parse_dtype(dtype: &str) -> PyResult<bool> {
    match dtype {
        "float32" => Ok(true),
        "float64" => Ok(false),
        _ => Err(PyValueError::new_err(format!(
            "dtype must be 'float32' or 'float64', got '{dtype}'"
        ))),
    }
}

impl PyModel {
    fn wrap<T: Float>(mlp: Mlp<T>, wrap: fn(Arc<Model<T>>) -> Inner) -> PyResult<Self> {
        Ok(PyModel {
            inner: wrap(Arc::new(Model::new(mlp).map_err(to_py)?)),
        })
    }
}

fn from_arrays<T: Float>(
    list: &[Bound<'_, PyAny>],
    act: Activation,
    alpha: f64,
) -> PyResult<Mlp<T>> {
    let owned = arrays::<T>(list)?;
    let parts: Vec<(&[usize], &[T])> = owned
        .iter()
        .map(|(s, v)| (s.as_slice(), v.as_slice()))
        .collect();
    Mlp::from_parts(&parts, act, alpha).map_err(to_py)
}

/// Multiply-adds per input row of `op`: one forward pass for the energy, about two for the
/// score (forward and reverse), d + 2 stacked rows for the forward Laplacian.
fn work_per_row<T: Float>(m: &Model<T>, op: PerRow) -> usize {
    let w = m.mlp().widths();
    let macs: usize = w.windows(2).map(|p| p[0] * p[1]).sum();
    let passes = match op {
        PerRow::Energy => 1,
        PerRow::Score => 2,
        PerRow::HessianTrace => m.mlp().dim() + 2,
    };
    macs.saturating_mul(passes).max(1)
}

/// A per-row call on at most [`HOLD_GIL_ROWS`] rows, [`HOLD_GIL_WORK`] multiply-adds and one
/// engine chunk (which bounds `hessian_trace` to 256/(dim + 2) rows) runs with the GIL held:
/// for a dim-2 model with hidden (64, 64, 64), `score` on up to 3 rows, `energy` on up to 7,
/// `hessian_trace` on 1, 2–13 µs here (a single-point `score`: 1.6–2.1 µs in float32,
/// 2.8–3.2 µs in float64). Releasing and re-taking the GIL costs ~0.1 µs even when
/// no other thread wants it, and next to a busy Python thread taking it back waits out that
/// thread's switch interval (5 ms by default): measured, single-point `score` calls beside a
/// spinning thread took a median of 5.2 ms releasing the GIL and 2–3 µs holding it. Holding
/// it this briefly delays other threads no more than a small numpy call does, and the engine
/// never calls into Python. Every larger call releases it.
const HOLD_GIL_WORK: usize = 1 << 16;
/// See [`HOLD_GIL_WORK`]; the row cap keeps tiny models, whose per-row cost multiply-adds
/// underestimate, from holding the GIL over long batches.
const HOLD_GIL_ROWS: usize = 16;

/// Whether a per-row call on `n` rows of `work` multiply-adds each, with engine chunks of
/// `chunk` rows, runs at once with the GIL held (see [`HOLD_GIL_WORK`]). One engine chunk at
/// most: two would go through the pool, which may be busy with another thread's detached
/// work, and hold the GIL meanwhile (measured: tens of ms).
fn holds_gil(n: usize, work: usize, chunk: usize) -> bool {
    n <= HOLD_GIL_ROWS && n <= chunk && n.saturating_mul(work) <= HOLD_GIL_WORK
}

/// Runs a per-row computation over the batch in blocks of about 2³⁰ multiply-adds (tens of
/// milliseconds), each without the GIL, checking for Ctrl-C between blocks. Rows are
/// independent, so the blocks change no result; a NaN reported by a block is renumbered to
/// its row in the whole batch.
fn per_row_blocks<T: Float>(
    py: Python<'_>,
    x: Rows<'_, T>,
    work: usize,
    chunk: usize,
    out_per_row: usize,
    out: &mut [T],
    f: impl Fn(Rows<'_, T>, &mut [T]) -> scorematch_core::Result<()> + Sync,
) -> PyResult<()> {
    let n = x.rows();
    // Whole multiples of (engine chunk × threads): every block then splits into full chunks
    // that share out evenly between the threads (910-row blocks of S3 `score`, 3.6 chunks of
    // 256 rows, left a thread idle for a third of each block).
    let round = chunk.max(1) * parallel::num_threads();
    let block = ((1usize << 30) / work).next_multiple_of(round).max(round);
    let mut start = 0;
    loop {
        let len = block.min(n - start);
        let piece = &mut out[start * out_per_row..(start + len) * out_per_row];
        py.detach(|| f(x.sub(start, len), piece)).map_err(|e| {
            to_py(match e {
                Error::NonFinite { what, row } => Error::NonFinite {
                    what,
                    row: row + start,
                },
                other => other,
            })
        })?;
        start += len;
        if start >= n {
            return Ok(());
        }
        py.check_signals()?;
    }
}

/// A per-row method of the engine on `x`: (n,) values, or (n, dim) for the score; a tiny call
/// with the GIL held ([`holds_gil`]), any other in blocks without it ([`per_row_blocks`]).
/// `x` is taken as the user passed it: see [`batch`] for what is read in place and what is
/// converted.
fn per_row<'py, T: Float>(
    py: Python<'py>,
    m: &Model<T>,
    x: &Bound<'py, PyAny>,
    op: PerRow,
) -> PyResult<Bound<'py, PyAny>> {
    let dim = m.mlp().dim();
    let arr = batch::<T>(x, dim, "X")?;
    let n = arr.shape()[0];
    let cols = if op == PerRow::Score { dim } else { 1 };
    let work = work_per_row(m, op);
    let (out, data) = match op {
        PerRow::Score => output::<T, 2>(py, [n, dim])?,
        _ => output::<T, 1>(py, [n])?,
    };
    let f = |x: Rows<'_, T>, o: &mut [T]| match op {
        PerRow::Energy => engine::energy(m, x, o),
        PerRow::Score => engine::score(m, x, o),
        PerRow::HessianTrace => engine::hessian_trace(m, x, o),
    };
    let chunk = engine::chunk_rows(m, op);
    if holds_gil(n, work, chunk) {
        // SAFETY: the view lives within this call, which keeps the GIL: the engine runs on
        // this thread (one chunk) and never calls into Python.
        f(unsafe { rows_with_gil(&arr) }, data).map_err(to_py)?;
    } else {
        let ro = arr.try_readonly()?;
        per_row_blocks(py, rows(&ro), work, chunk, cols, data, f)?;
    }
    Ok(out)
}

/// Multiply-adds above which a loss runs on a helper thread that Ctrl-C can stop
/// ([`detach_interruptible`]): tens of milliseconds, where the thread's start (~50 µs) is
/// lost in the noise.
const INTERRUPTIBLE_WORK: usize = 1 << 27;

/// Runs a loss computation without the GIL; a long one can be stopped by Ctrl-C. `n` rows of
/// the forward Laplacian's work each decide which (other objectives cost less: an estimate).
fn run_loss<T: Float, R: Send>(
    py: Python<'_>,
    m: &Model<T>,
    n: usize,
    f: impl FnOnce(&AtomicBool) -> scorematch_core::Result<R> + Send,
) -> PyResult<R> {
    if n.saturating_mul(work_per_row(m, PerRow::HessianTrace)) < INTERRUPTIBLE_WORK {
        return py.detach(|| f(&AtomicBool::new(false))).map_err(to_py);
    }
    detach_interruptible(py, f)?.map_err(to_py)
}

/// The arguments of an objective, before the borrowed arrays they refer to exist.
#[derive(Clone, Copy)]
enum ObjectiveSpec {
    Ism,
    Esm,
    Ssm(usize, Projection, u64),
    Dsm(f64, u64),
}

/// Calls `f` with the rows of `x` and the objective `spec` on them (`target` for ESM,
/// `row_keys` for SSM and DSM), the borrowed arrays held for the call.
fn with_objective<'py, T: Float, R>(
    x: &Bound<'py, PyAny>,
    spec: ObjectiveSpec,
    target: Option<&Bound<'py, PyAny>>,
    row_keys: Option<&PyReadonlyArray1<'py, u64>>,
    f: impl FnOnce(Rows<'_, T>, Objective<'_, T>) -> PyResult<R>,
) -> PyResult<R> {
    let arr = readonly2::<T>(x, "X")?;
    let keys = match row_keys {
        None => Keys::Position,
        Some(k) => Keys::Given(
            k.as_slice()
                .map_err(|_| PyValueError::new_err("row_keys must be a contiguous uint64 array"))?,
        ),
    };
    let tarr = target
        .map(|t| readonly2::<T>(t, "target_score"))
        .transpose()?;
    let objective = match (spec, &tarr) {
        (ObjectiveSpec::Esm, Some(t)) => Objective::Esm { target: rows(t) },
        (ObjectiveSpec::Ssm(n_projections, projection, seed), _) => Objective::Ssm {
            n_projections,
            projection,
            seed,
            keys,
        },
        (ObjectiveSpec::Dsm(noise_std, seed), _) => Objective::Dsm {
            noise_std,
            seed,
            keys,
        },
        _ => Objective::Ism,
    };
    f(rows(&arr), objective)
}

/// The objective's mean over the rows of `x`, without its gradient: [`loss_and_grad`] less
/// its reverse pass.
fn loss<'py, T: Float>(
    py: Python<'py>,
    m: &Model<T>,
    x: &Bound<'py, PyAny>,
    spec: ObjectiveSpec,
    target: Option<&Bound<'py, PyAny>>,
    row_keys: Option<&PyReadonlyArray1<'py, u64>>,
) -> PyResult<f64> {
    with_objective(x, spec, target, row_keys, |x, objective| {
        run_loss(py, m, x.rows(), |cancel| {
            engine::loss_unless(m, x, objective, cancel)
        })
    })
}

/// The objective's mean over the rows of `x` and its gradient, shaped like the parameters.
fn loss_and_grad<'py, T: Float>(
    py: Python<'py>,
    m: &Model<T>,
    x: &Bound<'py, PyAny>,
    spec: ObjectiveSpec,
    target: Option<&Bound<'py, PyAny>>,
    row_keys: Option<&PyReadonlyArray1<'py, u64>>,
) -> PyResult<(f64, Vec<Bound<'py, PyAny>>)> {
    let n_params = m.mlp().n_params();
    let (loss, grad) = with_objective(x, spec, target, row_keys, |x, objective| {
        run_loss(py, m, x.rows(), |cancel| {
            let mut grad = vec![T::zero(); n_params];
            engine::loss_and_grad_unless(m, x, objective, &mut grad, cancel).map(|l| (l, grad))
        })
    })?;
    Ok((loss, param_list(py, &grad, &m.mlp().param_shapes())?))
}

#[pymethods]
impl PyModel {
    /// A new model with parameters drawn from `seed`.
    #[staticmethod]
    fn create(
        dim: usize,
        hidden: Vec<usize>,
        activation: &str,
        dtype: &str,
        alpha: f64,
        seed: u64,
    ) -> PyResult<Self> {
        let act = Activation::from_name(activation).map_err(to_py)?;
        if parse_dtype(dtype)? {
            Self::wrap(
                Mlp::<f32>::new(dim, &hidden, act, alpha, seed).map_err(to_py)?,
                Inner::F32,
            )
        } else {
            Self::wrap(
                Mlp::<f64>::new(dim, &hidden, act, alpha, seed).map_err(to_py)?,
                Inner::F64,
            )
        }
    }

    /// A model from the public parameter list (arrays already of `dtype`).
    #[staticmethod]
    fn from_params(
        params: Vec<Bound<'_, PyAny>>,
        activation: &str,
        dtype: &str,
        alpha: f64,
    ) -> PyResult<Self> {
        let act = Activation::from_name(activation).map_err(to_py)?;
        if parse_dtype(dtype)? {
            Self::wrap(from_arrays::<f32>(&params, act, alpha)?, Inner::F32)
        } else {
            Self::wrap(from_arrays::<f64>(&params, act, alpha)?, Inner::F64)
        }
    }

    /// Checks the shapes of a parameter list for `from_params`, with its messages, before the
    /// Python layer converts (copies) any array.
    #[staticmethod]
    fn check_param_shapes(shapes: Vec<Vec<usize>>) -> PyResult<()> {
        for (i, s) in shapes.iter().enumerate() {
            check_param_ndim(i, s.len())?;
        }
        let shapes: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        Mlp::<f64>::architecture(&shapes).map_err(to_py)?;
        Ok(())
    }

    /// Checks the shapes of a parameter list for `with_params`, with its messages, before the
    /// Python layer converts (copies) any array.
    fn check_same_shapes(&self, shapes: Vec<Vec<usize>>) -> PyResult<()> {
        dispatch!(self, m => check_same_shapes(&m.mlp().param_shapes(), &shapes))
    }

    /// The same architecture with new parameters.
    fn with_params(&self, params: Vec<Bound<'_, PyAny>>) -> PyResult<Self> {
        let (act, alpha) = (dispatch!(self, m => m.mlp().activation()), self.alpha());
        match &self.inner {
            Inner::F32(m) => Self::wrap(same_shapes(m.mlp(), &params, act, alpha)?, Inner::F32),
            Inner::F64(m) => Self::wrap(same_shapes(m.mlp(), &params, act, alpha)?, Inner::F64),
        }
    }

    #[getter]
    fn dim(&self) -> usize {
        dispatch!(self, m => m.mlp().dim())
    }

    #[getter]
    fn hidden(&self) -> Vec<usize> {
        dispatch!(self, m => m.mlp().hidden().to_vec())
    }

    #[getter]
    fn activation(&self) -> &'static str {
        dispatch!(self, m => m.mlp().activation().name())
    }

    #[getter]
    fn alpha(&self) -> f64 {
        dispatch!(self, m => m.mlp().alpha_f64())
    }

    #[getter]
    fn dtype(&self) -> &'static str {
        match self.inner {
            Inner::F32(_) => "float32",
            Inner::F64(_) => "float64",
        }
    }

    #[getter]
    fn n_params(&self) -> usize {
        dispatch!(self, m => m.mlp().n_params())
    }

    fn params<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        dispatch!(self, m => param_list(py, m.mlp().params(), &m.mlp().param_shapes()))
    }

    fn energy<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        dispatch!(self, m => per_row(py, m, x, PerRow::Energy))
    }

    fn score<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        dispatch!(self, m => per_row(py, m, x, PerRow::Score))
    }

    fn hessian_trace<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        dispatch!(self, m => per_row(py, m, x, PerRow::HessianTrace))
    }

    fn ism_loss(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<f64> {
        dispatch!(self, m => loss(py, m, x, ObjectiveSpec::Ism, None, None))
    }

    fn esm_loss<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        target_score: &Bound<'py, PyAny>,
    ) -> PyResult<f64> {
        dispatch!(self, m => loss(py, m, x, ObjectiveSpec::Esm, Some(target_score), None))
    }

    #[pyo3(signature = (x, n_projections, seed, projection, row_keys=None))]
    fn ssm_loss<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        n_projections: usize,
        seed: u64,
        projection: &str,
        row_keys: Option<PyReadonlyArray1<'py, u64>>,
    ) -> PyResult<f64> {
        let projection = Projection::from_name(projection).map_err(to_py)?;
        let spec = ObjectiveSpec::Ssm(n_projections, projection, seed);
        dispatch!(self, m => loss(py, m, x, spec, None, row_keys.as_ref()))
    }

    #[pyo3(signature = (x, noise_std, seed, row_keys=None))]
    fn dsm_loss<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        noise_std: f64,
        seed: u64,
        row_keys: Option<PyReadonlyArray1<'py, u64>>,
    ) -> PyResult<f64> {
        let spec = ObjectiveSpec::Dsm(noise_std, seed);
        dispatch!(self, m => loss(py, m, x, spec, None, row_keys.as_ref()))
    }

    fn ism_loss_and_grad<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<(f64, Vec<Bound<'py, PyAny>>)> {
        dispatch!(self, m => loss_and_grad(py, m, x, ObjectiveSpec::Ism, None, None))
    }

    fn esm_loss_and_grad<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        target_score: &Bound<'py, PyAny>,
    ) -> PyResult<(f64, Vec<Bound<'py, PyAny>>)> {
        dispatch!(self, m => loss_and_grad(py, m, x, ObjectiveSpec::Esm, Some(target_score), None))
    }

    #[pyo3(signature = (x, n_projections, seed, projection, row_keys=None))]
    fn ssm_loss_and_grad<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        n_projections: usize,
        seed: u64,
        projection: &str,
        row_keys: Option<PyReadonlyArray1<'py, u64>>,
    ) -> PyResult<(f64, Vec<Bound<'py, PyAny>>)> {
        let projection = Projection::from_name(projection).map_err(to_py)?;
        let spec = ObjectiveSpec::Ssm(n_projections, projection, seed);
        dispatch!(self, m => loss_and_grad(py, m, x, spec, None, row_keys.as_ref()))
    }

    #[pyo3(signature = (x, noise_std, seed, row_keys=None))]
    fn dsm_loss_and_grad<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        noise_std: f64,
        seed: u64,
        row_keys: Option<PyReadonlyArray1<'py, u64>>,
    ) -> PyResult<(f64, Vec<Bound<'py, PyAny>>)> {
        let spec = ObjectiveSpec::Dsm(noise_std, seed);
        dispatch!(self, m => loss_and_grad(py, m, x, spec, None, row_keys.as_ref()))
    }
}

/// A model of `like`'s architecture from `params`, which must match its shapes exactly.
fn same_shapes<T: Float>(
    like: &Mlp<T>,
    params: &[Bound<'_, PyAny>],
    act: Activation,
    alpha: f64,
) -> PyResult<Mlp<T>> {
    let want = like.param_shapes();
    if params.len() != want.len() {
        return Err(count_error(want.len(), params.len()));
    }
    let owned = arrays::<T>(params)?;
    let shapes: Vec<Vec<usize>> = owned.iter().map(|(s, _)| s.clone()).collect();
    check_same_shapes(&want, &shapes)?;
    let parts: Vec<(&[usize], &[T])> = owned
        .iter()
        .map(|(s, v)| (s.as_slice(), v.as_slice()))
        .collect();
    Mlp::from_parts(&parts, act, alpha).map_err(to_py)
}

/// The error of parameters of shapes `got` for a model whose parameters have shapes `want`.
fn check_same_shapes(want: &[Vec<usize>], got: &[Vec<usize>]) -> PyResult<()> {
    if got.len() != want.len() {
        return Err(count_error(want.len(), got.len()));
    }
    for (i, s) in got.iter().enumerate() {
        check_param_ndim(i, s.len())?;
    }
    if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
        let (w, g) = (&want[i], &got[i]);
        let transposed = w.len() == 2 && w[0] != w[1] && g[..] == [w[1], w[0]];
        return Err(PyValueError::new_err(format!(
            "params[{i}] must have shape {} for this architecture, got {}{}",
            fmt_shape(w),
            fmt_shape(g),
            if transposed { mlp::TRANSPOSED } else { "" }
        )));
    }
    Ok(())
}

fn count_error(want: usize, got: usize) -> PyErr {
    PyValueError::new_err(format!(
        "params must be a list of {want} arrays [W_1, b_1, ..., w, c] for this architecture, got {got}"
    ))
}
