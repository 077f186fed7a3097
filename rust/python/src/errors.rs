//! The one place where core errors become Python exceptions.
//!
//! Invalid input of any kind (shape, value, NaN/Inf, empty batch for a loss) is a
//! `ValueError`; a wrong element type is a `TypeError`, raised in `convert.rs`.

use pyo3::exceptions::PyValueError;
use pyo3::PyErr;
use scorematch_core::Error;

/// Maps a core error to the Python exception a user expects.
pub fn to_py(err: Error) -> PyErr {
    match err {
        Error::Shape(_) | Error::Value(_) | Error::NonFinite { .. } | Error::EmptyBatch(_) => {
            PyValueError::new_err(err.to_string())
        }
    }
}
