//! The one place where core errors become Python exceptions.
//!
//! Invalid input of any kind (shape, value, NaN/Inf, empty batch for a loss) is a
//! `ValueError`; a buffer that cannot be allocated is a `MemoryError`; a wrong element type is a `TypeError`, raised in `convert.rs`. A numerical
//! failure is our own exception: `SamplingDivergedError` from the sampler,
//! `TrainingDivergedError` from training (both `RuntimeError`s, re-exported from `scorematch`).
//! A `TrainingDivergedError` carries what its message says as attributes too
//! ([`training_diverged`]), so that no caller parses the message.

use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use scorematch_core::error::Divergence;
use scorematch_core::Error;

create_exception!(
    scorematch._core,
    SamplingDivergedError,
    PyRuntimeError,
    "Langevin chains left the finite numbers (NaN or Inf)."
);

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
    let value = err.value(py);
    let fields = (|| {
        value.setattr("epoch", epoch)?;
        value.setattr("step", step)?;
        value.setattr("cause", what)?;
        value.setattr("advice", advice)
    })();
    match fields {
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
        Error::Diverged { .. } | Error::DivergedAtStart { .. } => {
            SamplingDivergedError::new_err(err.to_string())
        }
        Error::TrainingDiverged { epoch, step, cause } => {
            Python::attach(|py| training_diverged(py, epoch, step, cause))
        }
        Error::System(_) => PyRuntimeError::new_err(err.to_string()),
        // Raised by a Ctrl-C, whose KeyboardInterrupt the caller returns instead; mapped for
        // completeness.
        Error::Cancelled => PyKeyboardInterrupt::new_err(err.to_string()),
    }
}
