//! `scorematch._core`: the PyO3 binding of scorematch-core.
//!
//! Each function converts its arguments, validates them, releases the GIL around the core
//! call and maps errors back (`errors.rs`). No arithmetic happens here. One exception to the
//! GIL rule: per-row calls of a few microseconds keep it (`model.rs`, `HOLD_GIL_WORK`).

mod convert;
mod errors;
mod interrupt;
mod model;
mod sampling;
mod train;

use pyo3::prelude::*;

/// The whole Python surface of the extension.
#[pymodule]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::errors::SamplingDivergedError;
    #[pymodule_export]
    use super::model::PyModel;
    #[pymodule_export]
    use super::sampling::{check_sample_config, sample, PyStreams};

    #[pymodule_export]
    use super::train::{
        epoch_permutation, non_finite_divergence, step_seed, validation_seed, PyLossScale,
        PyOptimizer, PyTrainer,
    };

    #[pymodule_export]
    use super::errors::TrainingDivergedError;

    /// Uses `n` worker threads for every later call.
    #[pyfunction]
    fn set_num_threads(n: i64) -> PyResult<()> {
        let max = scorematch_core::parallel::MAX_THREADS;
        match usize::try_from(n) {
            Ok(n) => scorematch_core::parallel::set_num_threads(n).map_err(super::errors::to_py),
            Err(_) => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "the number of threads must be between 1 and {max}, got {n}"
            ))),
        }
    }

    /// The number of worker threads calls use.
    #[pyfunction]
    fn get_num_threads() -> usize {
        scorematch_core::parallel::num_threads()
    }

    /// The instruction sets the engine runs with on this CPU: the GEMM kernel's path and the
    /// elementwise loops' level.
    #[pyfunction]
    fn cpu_paths() -> (&'static str, &'static str) {
        (
            scorematch_core::gemm::backend(),
            scorematch_core::simd::level().name(),
        )
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // The core's limits, so that the Python checks (which say more: the whole range, the
        // argument's name) cannot drift from the ones they front.
        m.add("MAX_THREADS", scorematch_core::parallel::MAX_THREADS)?;
        m.add(
            "MAX_PROJECTIONS",
            scorematch_core::objective::MAX_PROJECTIONS,
        )?;
        use super::errors::{SAMPLING_DIVERGED_FIELDS, TRAINING_DIVERGED_FIELDS};
        for (class, fields) in [
            ("TrainingDivergedError", &TRAINING_DIVERGED_FIELDS[..]),
            ("SamplingDivergedError", &SAMPLING_DIVERGED_FIELDS[..]),
        ] {
            let class = m.getattr(class)?;
            for field in fields {
                class.setattr(field, m.py().None())?;
            }
        }
        Ok(())
    }
}
