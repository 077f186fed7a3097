//! `scorematch._core`: the PyO3 binding of scorematch-core.
//!
//! Each function converts its arguments, validates them, releases the GIL around the core
//! call and maps errors back (`errors.rs`). No arithmetic happens here.

mod convert;
mod errors;
mod model;

use pyo3::prelude::*;

/// The whole Python surface of the extension.
#[pymodule]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::model::PyModel;

    /// Uses `n` worker threads for every later call.
    #[pyfunction]
    fn set_num_threads(n: i64) -> PyResult<()> {
        let n = usize::try_from(n).unwrap_or(0);
        scorematch_core::parallel::set_num_threads(n).map_err(super::errors::to_py)
    }

    /// The number of worker threads calls use.
    #[pyfunction]
    fn get_num_threads() -> usize {
        scorematch_core::parallel::num_threads()
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}

// Keeps `use pyo3::prelude::*` meaningful for the module macro's expansion.
#[allow(dead_code)]
fn _assert_send(_: Python<'_>) {}
