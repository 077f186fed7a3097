//! The one place where core errors become Python exceptions.
//!
//! Invalid input of any kind (shape, value, NaN/Inf, empty batch for a loss) is a
//! `ValueError`; a buffer that cannot be allocated is a `MemoryError`; a wrong element type is a `TypeError`, raised in `convert.rs`. A numerical
//! failure is our own exception: `SamplingDivergedError` from the sampler,
//! `TrainingDivergedError` from training (both `RuntimeError`s, re-exported from `scorematch`).

use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyMemoryError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
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
     parameters whose loss and gradient were finite and in range; the message names the \
     epoch and step (counting from 0) and the cause."
);

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
        Error::TrainingDiverged { .. } => TrainingDivergedError::new_err(err.to_string()),
        Error::System(_) => PyRuntimeError::new_err(err.to_string()),
        // Raised by a Ctrl-C, whose KeyboardInterrupt the caller returns instead; mapped for
        // completeness.
        Error::Cancelled => PyKeyboardInterrupt::new_err(err.to_string()),
    }
}
