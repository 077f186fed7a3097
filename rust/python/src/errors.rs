//! The one place where core errors become Python exceptions.
//!
//! Invalid input of any kind (shape, value, NaN/Inf, empty batch for a loss) is a
//! `ValueError`; a buffer that cannot be allocated is a `MemoryError`; a wrong element type is a `TypeError`, raised in `convert.rs`. A numerical
//! failure is our own exception: `SamplingDivergedError` from the sampler,
//! `TrainingDivergedError` from training (both `RuntimeError`s, re-exported from `scorematch`).
//! A `TrainingDivergedError` carries what its message says as attributes too
//! ([`training_diverged`]), so that no caller parses the message.

use pyo3::create_exception;
use pyo3::exceptions::{
    PyBaseException, PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use scorematch_core::error::Divergence;
use scorematch_core::Error;

create_exception!(
    scorematch._core,
    SamplingDivergedError,
    PyRuntimeError,
    "Langevin chains left the finite numbers (NaN or Inf). The message says how many and at \
     which step; so do the attributes `n_diverged`, `n_chains` and `step` (counting from 0, \
     burn-in included; None on an instance made by hand)."
);

/// The attributes of a `SamplingDivergedError` that [`to_py`] sets, set to None on the class
/// so that an instance made otherwise has them too.
pub const SAMPLING_DIVERGED_FIELDS: [&str; 3] = ["n_diverged", "n_chains", "step"];

create_exception!(
    scorematch._core,
    TrainingDivergedError,
    PyRuntimeError,
    "Training diverged: a loss, gradient or parameter became NaN or Inf, or a minibatch loss \
     rose above a million times the scale of the earlier ones. The model keeps the last \
     parameters whose loss and gradient were finite and in range. The message names the \
     epoch and step (counting from 0) and the cause; the attributes `epoch`, `step`, `cause` \
     and `advice` hold them (None on an instance made by hand)."
);

/// The attributes of a `TrainingDivergedError` that [`training_diverged`] sets, set to None on
/// the class so that an instance made otherwise has them too.
pub const TRAINING_DIVERGED_FIELDS: [&str; 4] = ["epoch", "step", "cause", "advice"];

/// The `TrainingDivergedError` of a run that diverged at minibatch `step` of `epoch` (from 0;
/// the validation loss at an epoch's end is judged at the step after its last one), with
/// its message and, as attributes, the parts of it.
pub fn training_diverged(py: Python<'_>, epoch: usize, step: usize, cause: Divergence) -> PyErr {
    let advice = cause.advice(epoch, step);
    let what = cause.to_string();
    let err =
        TrainingDivergedError::new_err(Error::TrainingDiverged { epoch, step, cause }.to_string());
    with_attributes(py, err, |value| {
        value.setattr("epoch", epoch)?;
        value.setattr("step", step)?;
        value.setattr("cause", what)?;
        value.setattr("advice", advice)
    })
}

/// The `SamplingDivergedError` of `n_diverged` of `n_chains` chains that diverged at `step`,
/// with its message and, as attributes, those counts.
fn sampling_diverged(err: &Error, n_diverged: usize, n_chains: usize, step: usize) -> PyErr {
    Python::attach(|py| {
        with_attributes(
            py,
            SamplingDivergedError::new_err(err.to_string()),
            |value| {
                value.setattr("n_diverged", n_diverged)?;
                value.setattr("n_chains", n_chains)?;
                value.setattr("step", step)
            },
        )
    })
}

/// `err` with the attributes `set` gives its value; an error in setting them instead.
fn with_attributes<'py>(
    py: Python<'py>,
    err: PyErr,
    set: impl FnOnce(&Bound<'py, PyBaseException>) -> PyResult<()>,
) -> PyErr {
    match set(err.value(py)) {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// Maps a core error to the Python exception a user expects.
pub fn to_py(err: Error) -> PyErr {
    match err {
        Error::Shape(_) | Error::Value(_) | Error::NonFinite { .. } | Error::EmptyBatch(_) => {
            PyValueError::new_err(err.to_string())
        }
        Error::OutOfMemory(_) => PyMemoryError::new_err(err.to_string()),
        Error::Diverged {
            chains,
            n_chains,
            first_step,
        } => sampling_diverged(&err, chains, n_chains, first_step),
        Error::DivergedAtStart { chains, n_chains } => sampling_diverged(&err, chains, n_chains, 0),
        Error::TrainingDiverged { epoch, step, cause } => {
            Python::attach(|py| training_diverged(py, epoch, step, cause))
        }
        Error::System(_) => PyRuntimeError::new_err(err.to_string()),
        // Raised by a Ctrl-C, whose KeyboardInterrupt the caller returns instead; mapped for
        // completeness.
        Error::Cancelled => PyKeyboardInterrupt::new_err(err.to_string()),
    }
}
