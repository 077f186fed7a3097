//! `_core.Trainer`: a training run of the core ([`scorematch_core::train::Trainer`]) driven
//! epoch by epoch from Python.
//!
//! Each `run_epoch` call runs the epoch's minibatches without the GIL in slices of about
//! [`SLICE`]; between slices it takes the GIL back to check for Ctrl-C (`py.check_signals`,
//! which raises KeyboardInterrupt in the caller with the trainer left at its last completed
//! step) and to report progress. A slice, and the validation loss that ends an epoch, run on
//! a helper thread while this one watches for Ctrl-C (`detach_interruptible`), so a minibatch
//! that takes seconds is stopped too. Slicing does not change the result. The inputs are
//! copied once at construction, so Python code run between slices cannot change them under
//! us.

use std::sync::Arc;
use std::time::Duration;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2};
use pyo3::exceptions::{PyBaseException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use scorematch_core::error::{try_reserve, Divergence, Quantity};
use scorematch_core::objective::Projection;
use scorematch_core::optim::{Method, Optimizer};
use scorematch_core::train::{Config, Data, Loss, LossScale, Schedule, Trainer};
use scorematch_core::Model;

use crate::convert::{readonly2, Float};
use crate::errors::{to_py, training_diverged};
use crate::interrupt::detach_interruptible;
use crate::model::{Inner, PyModel};

/// Longest stretch run without the GIL: short enough for a responsive Ctrl-C and progress
/// bar, long enough that taking the GIL back costs nothing measurable.
const SLICE: Duration = Duration::from_millis(100);

enum TrainerInner {
    F32(Trainer<f32>),
    F64(Trainer<f64>),
}

macro_rules! dispatch_mut {
    ($self:expr, $t:ident => $body:expr) => {
        match &mut $self.inner {
            TrainerInner::F32($t) => $body,
            TrainerInner::F64($t) => $body,
        }
    };
}

#[pyclass(name = "Trainer", module = "scorematch._core")]
pub struct PyTrainer {
    inner: TrainerInner,
}

/// A copy of the 2-D array `obj` (the trainer keeps its data), and its column count.
/// `MemoryError` when the copy cannot be allocated.
fn owned<T: Float>(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<T>, usize)> {
    let arr: PyReadonlyArray2<'_, T> = readonly2(obj, what)?;
    let view = arr.as_array();
    let mut v = Vec::new();
    try_reserve(
        &mut v,
        view.len(),
        &format!("a copy of {what} for training"),
    )
    .map_err(to_py)?;
    v.extend(view.iter().copied());
    Ok((v, view.ncols()))
}

/// The rows `what` (`"X"` or `"X_val"`) and their targets, named `target_what` in errors.
fn data<T: Float>(
    x: &Bound<'_, PyAny>,
    target: Option<&Bound<'_, PyAny>>,
    what: &'static str,
    target_what: &'static str,
) -> PyResult<Data<T>> {
    let (xv, dim) = owned::<T>(x, what)?;
    let data = Data::new(xv, dim, what).map_err(to_py)?;
    match target {
        None => Ok(data),
        Some(t) => {
            let (tv, cols) = owned::<T>(t, target_what)?;
            data.with_target(tv, cols, target_what).map_err(to_py)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build<T: Float>(
    model: &Model<T>,
    x: &Bound<'_, PyAny>,
    target: Option<&Bound<'_, PyAny>>,
    x_val: Option<&Bound<'_, PyAny>>,
    target_val: Option<&Bound<'_, PyAny>>,
    cfg: Config,
) -> PyResult<Trainer<T>> {
    let train = data::<T>(x, target, "X", "target_score")?;
    let val = x_val
        .map(|v| data::<T>(v, target_val, "X_val", "target_val"))
        .transpose()?;
    Trainer::new(model.clone(), train, val, cfg).map_err(to_py)
}

fn run_epoch<T: Float>(
    py: Python<'_>,
    tr: &mut Trainer<T>,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<(f64, Option<f64>, usize, bool)> {
    loop {
        // A slice is one minibatch at least: a Ctrl-C during a long one stops it too.
        let done =
            detach_interruptible(py, |cancel| tr.run_for_unless(SLICE, cancel))?.map_err(to_py)?;
        py.check_signals()?;
        if let Some(p) = progress {
            p.call1((tr.step_in_epoch(), tr.steps_per_epoch()))?;
        }
        if done {
            break;
        }
    }
    // The validation loss can be as long as an epoch: Ctrl-C stops it too.
    let end = detach_interruptible(py, |cancel| tr.end_epoch_unless(cancel))?.map_err(to_py)?;
    Ok((
        end.train_loss,
        end.val_loss,
        end.best_epoch,
        end.patience_exhausted,
    ))
}

#[pymethods]
impl PyTrainer {
    #[new]
    #[pyo3(signature = (model, x, target, x_val, target_val, objective, epochs, batch_size, lr,
        optimizer, weight_decay, patience, seed, n_projections, projection, noise_std))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        model: &PyModel,
        x: &Bound<'_, PyAny>,
        target: Option<&Bound<'_, PyAny>>,
        x_val: Option<&Bound<'_, PyAny>>,
        target_val: Option<&Bound<'_, PyAny>>,
        objective: &str,
        epochs: usize,
        batch_size: usize,
        lr: f64,
        optimizer: &str,
        weight_decay: f64,
        patience: Option<usize>,
        seed: u64,
        n_projections: usize,
        projection: &str,
        noise_std: Option<f64>,
    ) -> PyResult<Self> {
        let loss = match objective {
            "ism" => Loss::Ism,
            "esm" => Loss::Esm,
            "ssm" => Loss::Ssm {
                n_projections,
                projection: Projection::from_name(projection).map_err(to_py)?,
            },
            "dsm" => Loss::Dsm {
                noise_std: noise_std.ok_or_else(|| {
                    PyValueError::new_err("objective 'dsm' needs noise_std (a number > 0)")
                })?,
            },
            _ => {
                return Err(PyValueError::new_err(format!(
                    "objective must be 'ism', 'ssm', 'dsm' or 'esm', got '{objective}'"
                )))
            }
        };
        let cfg = Config {
            loss,
            epochs,
            batch_size,
            method: Method::from_name(optimizer).map_err(to_py)?,
            lr,
            weight_decay,
            patience,
            seed,
        };
        let inner = match &model.inner {
            Inner::F32(m) => TrainerInner::F32(build(m, x, target, x_val, target_val, cfg)?),
            Inner::F64(m) => TrainerInner::F64(build(m, x, target, x_val, target_val, cfg)?),
        };
        Ok(PyTrainer { inner })
    }

    /// Minibatches per epoch.
    #[getter]
    fn steps_per_epoch(&mut self) -> usize {
        dispatch_mut!(self, t => t.steps_per_epoch())
    }

    /// Runs one epoch; returns (train_loss, val_loss or None, best_epoch, patience_exhausted).
    /// `progress(step, steps_per_epoch)` is called between slices of minibatches.
    #[pyo3(signature = (progress=None))]
    fn run_epoch(
        &mut self,
        py: Python<'_>,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(f64, Option<f64>, usize, bool)> {
        dispatch_mut!(self, t => run_epoch(py, t, progress))
    }

    /// The model after the last completed step.
    fn model(&mut self) -> PyModel {
        let inner = match &self.inner {
            TrainerInner::F32(t) => Inner::F32(Arc::new(t.model().clone())),
            TrainerInner::F64(t) => Inner::F64(Arc::new(t.model().clone())),
        };
        PyModel { inner }
    }

    /// The parameters a run that stops keeps (`Trainer::finish`): the best epoch's with
    /// validation, else the last step's, or `TrainingDivergedError` (the model back to the
    /// parameters before that step) if its update blew up.
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        // Without validation, a loss over the last minibatch, which can be long: Ctrl-C
        // stops it too.
        dispatch_mut!(self, t => {
            detach_interruptible(py, |cancel| t.finish_unless(cancel))?.map_err(to_py)
        })
    }
}

/// Order in which epoch `epoch` of a run of `seed` visits `n` rows (as `Trainer` does).
#[pyfunction]
pub fn epoch_permutation(
    py: Python<'_>,
    seed: u64,
    epoch: usize,
    n: usize,
) -> PyResult<Bound<'_, PyAny>> {
    let mut perm = Vec::new();
    py.detach(|| Schedule { seed }.permutation(epoch, n, &mut perm))
        .map_err(to_py)?;
    // Collected in place (same size and alignment): no second copy of n indices.
    let perm: Vec<i64> = perm.into_iter().map(|i| i as i64).collect();
    Ok(PyArray1::from_vec(py, perm).into_any())
}

/// Seed of the random objective (SSM projections, DSM noise) of global step `step`.
#[pyfunction]
pub fn step_seed(seed: u64, step: u64) -> u64 {
    Schedule { seed }.step_seed(step)
}

/// Seed of the random objective on validation data.
#[pyfunction]
pub fn validation_seed(seed: u64) -> u64 {
    Schedule { seed }.validation_seed()
}

enum OptimizerInner {
    F32(Optimizer<f32>),
    F64(Optimizer<f64>),
}

/// `_core.Optimizer`: the core's optimizer on a flat parameter vector, for training loops
/// that compute gradients elsewhere (the distributed fit) but must step exactly as `Trainer`.
#[pyclass(name = "Optimizer", module = "scorematch._core")]
pub struct PyOptimizer {
    inner: OptimizerInner,
}

fn step_flat<T: Float>(
    opt: &mut Optimizer<T>,
    params: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let dtype = T::NAME;
    let params = params
        .cast::<PyArray1<T>>()
        .map_err(|_| PyTypeError::new_err(format!("params must be a 1-D {dtype} numpy array")))?;
    let grad = grad
        .cast::<PyArray1<T>>()
        .map_err(|_| PyTypeError::new_err(format!("grad must be a 1-D {dtype} numpy array")))?;
    // Either borrow fails where params is read-only or the two arrays share memory (the
    // writeable borrow of params then blocks the read of grad): one message for both.
    let shared = || PyValueError::new_err("params must be writeable and not shared with grad");
    let mut p = params.try_readwrite().map_err(|_| shared())?;
    let g = grad.try_readonly().map_err(|_| shared())?;
    let (Ok(p), Ok(g)) = (p.as_slice_mut(), g.as_slice()) else {
        return Err(PyValueError::new_err(
            "params and grad must be contiguous arrays",
        ));
    };
    if p.len() != opt.len() || g.len() != opt.len() {
        return Err(PyValueError::new_err(format!(
            "params and grad must hold {} values, got {} and {}",
            opt.len(),
            p.len(),
            g.len()
        )));
    }
    // Adam's overflowed mean squared gradient: the caller reports it as a divergence, with
    // the epoch and step only it knows.
    Ok(opt.step(p, g).is_ok())
}

#[pymethods]
impl PyOptimizer {
    #[new]
    fn new(
        dtype: &str,
        n_params: usize,
        optimizer: &str,
        lr: f64,
        weight_decay: f64,
    ) -> PyResult<Self> {
        let method = Method::from_name(optimizer).map_err(to_py)?;
        let inner = match dtype {
            "float32" => OptimizerInner::F32(
                Optimizer::new(method, lr, weight_decay, n_params).map_err(to_py)?,
            ),
            "float64" => OptimizerInner::F64(
                Optimizer::new(method, lr, weight_decay, n_params).map_err(to_py)?,
            ),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "dtype must be 'float32' or 'float64', got '{dtype}'"
                )))
            }
        };
        Ok(PyOptimizer { inner })
    }

    /// Steps taken so far.
    #[getter]
    fn steps(&self) -> u64 {
        match &self.inner {
            OptimizerInner::F32(o) => o.steps(),
            OptimizerInner::F64(o) => o.steps(),
        }
    }

    /// One update of `params` (1-D, the model's dtype, updated in place) from `grad`; False
    /// when Adam's squared-gradient average overflowed (a divergence: "squared-gradient
    /// average (Adam)" for `non_finite_divergence`), True otherwise.
    fn step(&mut self, params: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>) -> PyResult<bool> {
        match &mut self.inner {
            OptimizerInner::F32(o) => step_flat(o, params, grad),
            OptimizerInner::F64(o) => step_flat(o, params, grad),
        }
    }
}

/// `_core.LossScale`: the core's rule for a minibatch loss (NaN, Inf or a blow-up ends
/// training), for training loops that compute the losses elsewhere (the distributed fit) but
/// must stop where `Trainer` stops, with its error.
#[pyclass(name = "LossScale", module = "scorematch._core")]
#[derive(Default)]
pub struct PyLossScale(LossScale);

#[pymethods]
impl PyLossScale {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Judges the loss of minibatch `step` of `epoch`: `None` if training goes on, else the
    /// `TrainingDivergedError` that `Trainer` would raise (returned, not raised).
    fn check(
        &mut self,
        py: Python<'_>,
        loss: f64,
        epoch: usize,
        step: usize,
    ) -> Option<Py<PyBaseException>> {
        let cause = self.0.check(loss).err()?;
        Some(training_diverged(py, epoch, step, cause).into_value(py))
    }
}

/// The `TrainingDivergedError` that `Trainer` raises when `what` (a `Quantity` by name:
/// "gradient", "updated parameter vector", ...) is NaN or Inf, returned, not raised.
#[pyfunction]
pub fn non_finite_divergence(
    py: Python<'_>,
    epoch: usize,
    step: usize,
    what: &str,
) -> PyResult<Py<PyBaseException>> {
    let cause = Divergence::NonFinite(Quantity::from_name(what).map_err(to_py)?);
    Ok(training_diverged(py, epoch, step, cause).into_value(py))
}
