//! `_core.sample` and `_core.Streams`: the binding of the Langevin sampler
//! (`scorematch_core::langevin`). Converts, validates, detaches, maps errors — no arithmetic.
//!
//! A run is detached in blocks of `block_steps` steps; between blocks the GIL is taken back
//! to check for Ctrl-C (`py.check_signals`), report progress and stop early on divergence.
//! The sampler's state lives between blocks, so the result does not depend on the block size.

use numpy::{PyArray1, PyArray3, PyArrayMethods};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use scorematch_core::error::try_reserve;
use scorematch_core::langevin::{self, Config, Method, Sampler};
use scorematch_core::rng::Stream;
use scorematch_core::Model;

use crate::convert::{output, readonly2, rows, zeros, Float};
use crate::errors::to_py;
use crate::model::{Inner, PyModel};

/// Everything `sample` returns: samples, trajectory or None, acceptance, step sizes, and per
/// chain the first divergent step (−1 when finite).
type Sampled<'py> = (
    Bound<'py, PyAny>,
    Option<Bound<'py, PyAny>>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Vec<i64>,
);

/// A run's options, read by name from the attributes of the Python layer's checked options
/// (`scorematch.sampling._Run`): one list of fields for every entry point, never a long
/// positional argument list that the two sides must keep in the same order.
#[derive(FromPyObject)]
pub(crate) struct Options {
    method: String,
    /// The number of chains.
    n: usize,
    n_steps: usize,
    step_size: f64,
    temperature: f64,
    temperatures: Option<Vec<f64>>,
    steps_per_level: usize,
    burn_in: usize,
    thin: usize,
    target_accept: Option<f64>,
    seed: u64,
    first_chain: u64,
}

/// What a run reads and reports besides its options: the start, the outputs wanted, and
/// the progress callback (from the same Python object as [`Options`]).
#[derive(FromPyObject)]
struct Io<'py> {
    init: Option<Bound<'py, PyAny>>,
    want_trajectory: bool,
    raise_on_divergence: bool,
    progress: Option<Bound<'py, PyAny>>,
}

fn config(o: &Options) -> PyResult<Config> {
    let mut cfg = match o.method.as_str() {
        "ula" | "mala" => {
            let method = if o.method == "ula" {
                Method::Ula
            } else {
                Method::Mala
            };
            Config::new(method, o.n_steps, o.step_size, o.temperature, o.seed)
        }
        "annealed" => {
            let temps = o.temperatures.as_deref().unwrap_or(&[]);
            Config::annealed(temps, o.step_size, o.steps_per_level, o.seed).map_err(to_py)?
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "method must be 'ula', 'mala' or 'annealed', got '{other}'"
            )))
        }
    };
    cfg.burn_in = o.burn_in;
    cfg.thin = o.thin;
    cfg.adapt = o.target_accept;
    cfg.first_chain = o.first_chain;
    // Validated by `Sampler::new` (or `Config::check`), not here.
    Ok(cfg)
}

fn run_chains<'py, T: Float>(
    py: Python<'py>,
    m: &Model<T>,
    n_chains: usize,
    cfg: Config,
    io: &Io<'py>,
    block_steps: usize,
    state_bytes: &mut usize,
) -> PyResult<Sampled<'py>> {
    let progress = io.progress.as_ref();
    let init = io
        .init
        .as_ref()
        .map(|a| readonly2::<T>(a, "init"))
        .transpose()?;
    let init_rows = init.as_ref().map(rows);
    let d = m.mlp().dim();
    let mut sampler = py
        .detach(|| Sampler::new(m, n_chains, init_rows, cfg))
        .map_err(to_py)?;
    *state_bytes = sampler.state_bytes();
    drop(init);
    let total = sampler.config().total_steps();
    let n_kept = sampler.config().n_kept();
    let traj = io
        .want_trajectory
        .then(|| zeros::<T, 3>(py, [n_kept, n_chains, d]))
        .transpose()?;
    // SAFETY: the array is fresh, C-contiguous and referenced only here until it is returned;
    // no Python code can reach it while the slice is alive.
    let mut traj_data: Option<&mut [T]> = traj
        .as_ref()
        .map(|a| unsafe { a.as_slice_mut() }.expect("fresh C array"));
    let block = block_steps.max(1);
    while !sampler.is_done() {
        let slice = traj_data.as_deref_mut();
        py.detach(|| sampler.run(m, block, slice)).map_err(to_py)?;
        // Ctrl-C, seen here or raised inside the progress callback.
        let signal = py.check_signals().err();
        // Before a Ctrl-C's result too: with on_divergence="raise" no result, not even an
        // interrupted run's, holds a diverged chain. A divergence in this block is raised,
        // and a Ctrl-C that came during it is raised again right after (Python runs the
        // SIGINT handler once this error is on its way), never swallowed.
        if io.raise_on_divergence {
            if let Err(err) = sampler.check_divergence() {
                if signal.is_some() {
                    // SAFETY: only sets the interpreter's pending-signal flag; GIL held.
                    unsafe { pyo3::ffi::PyErr_SetInterrupt() };
                }
                return Err(to_py(err));
            }
        }
        let interrupt = match signal {
            Some(err) => Some(err),
            None => match progress.map(|cb| cb.call1((sampler.steps_done(), total))) {
                Some(Err(err)) if err.is_instance_of::<PyKeyboardInterrupt>(py) => Some(err),
                Some(Err(err)) => return Err(err),
                _ => None,
            },
        };
        if let Some(err) = interrupt {
            // The chains so far ride on the exception (`partial`: the outputs, the trajectory
            // slabs recorded and the steps run), for the Python layer to return.
            let kept = sampler.kept_so_far();
            let steps = sampler.steps_done();
            let out = finish(py, &sampler, traj)?;
            err.value(py).setattr("partial", (out, kept, steps))?;
            return Err(err);
        }
    }
    finish(py, &sampler, traj)
}

/// State at least this large is given back to the system when a run ends.
const RELEASE_FROM_BYTES: usize = 32 << 20;

/// Once a run's chain state (`bytes`) is freed, hands glibc's free heap pages back to the
/// system. The state is one allocation per chunk of chains, each below glibc's mmap threshold,
/// so it lives on the heap, where anything allocated after it keeps the freed pages in the
/// process: `sample(400_000)` of a 2-D model left ~160 MiB resident after its result was
/// gone. `malloc_trim` took ~13 ms there, after a 2.5 s run; it runs without the GIL.
fn release_freed(py: Python<'_>, bytes: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if bytes >= RELEASE_FROM_BYTES {
        // SAFETY: malloc_trim takes no pointer; it only returns free memory to the system.
        py.detach(|| unsafe {
            libc::malloc_trim(0);
        });
    }
    // Other allocators return large frees on their own, or not at all.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = (py, bytes);
}

/// The outputs of a run from the sampler's current state.
fn finish<'py, T: Float>(
    py: Python<'py>,
    sampler: &Sampler<T>,
    traj: Option<Bound<'py, PyArray3<T>>>,
) -> PyResult<Sampled<'py>> {
    let (samples, data) = output::<T, 2>(py, [sampler.n_chains(), sampler.dim()])?;
    sampler.positions(data);
    let diverged = sampler
        .diverged_at()
        .into_iter()
        .map(|t| t.map_or(-1, |t| t as i64))
        .collect();
    Ok((
        samples,
        traj.map(|a| a.into_any()),
        PyArray1::from_vec(py, sampler.acceptance()).into_any(),
        PyArray1::from_vec(py, sampler.step_sizes()).into_any(),
        diverged,
    ))
}

/// Runs Langevin chains on `model` with the options of `run` (a `scorematch.sampling._Run`;
/// see `scorematch.sampling.sample`), detached in blocks of `block_steps` steps.
#[pyfunction]
pub fn sample<'py>(
    py: Python<'py>,
    model: &PyModel,
    run: &Bound<'py, PyAny>,
    block_steps: usize,
) -> PyResult<Sampled<'py>> {
    let options: Options = run.extract()?;
    let io: Io<'py> = run.extract()?;
    let cfg = config(&options)?;
    // The size of the chains' state, set once the sampler exists; freed when run_chains
    // returns, whichever way.
    let mut state = 0;
    let ran = match &model.inner {
        Inner::F32(m) => run_chains(py, m, options.n, cfg, &io, block_steps, &mut state),
        Inner::F64(m) => run_chains(py, m, options.n, cfg, &io, block_steps, &mut state),
    };
    release_freed(py, state);
    ran
}

/// Checks the options of `run` as [`sample`] would, without running it: the same `Config`
/// rules and chain range, for callers that validate before they run (`scorematch.dask.sample`
/// builds a lazy graph; `scorematch.langevin` steps in Python and builds no sampler).
#[pyfunction]
pub fn check_sample_config(run: Options) -> PyResult<()> {
    config(&run)?.check(run.n).map_err(to_py)
}

/// The sampler's random streams, for the Python-callable path (`scorematch.langevin`): chain
/// `i` of seed `s` draws exactly the numbers the built-in sampler's chain `i` draws, in the
/// same order (initial point, then per step `dim` normals).
#[pyclass(name = "Streams", module = "scorematch._core")]
pub struct PyStreams {
    streams: Vec<Stream>,
}

#[pymethods]
impl PyStreams {
    #[new]
    #[pyo3(signature = (seed, n_chains, first_chain=0))]
    fn new(seed: u64, n_chains: usize, first_chain: u64) -> PyResult<Self> {
        langevin::check_chain_range(first_chain, n_chains).map_err(to_py)?;
        // A stream is 320 bytes, 40 times a float64 coordinate: the chains' states are not
        // the largest buffer here.
        let mut streams = Vec::new();
        try_reserve(&mut streams, n_chains, "the chains' random streams").map_err(to_py)?;
        streams.extend((0..n_chains as u64).map(|i| Stream::new(seed, first_chain + i)));
        Ok(PyStreams { streams })
    }

    fn __len__(&self) -> usize {
        self.streams.len()
    }

    /// The next `dim` standard normals of every chain, (n_chains, dim) float64.
    fn normals<'py>(&mut self, py: Python<'py>, dim: usize) -> PyResult<Bound<'py, PyAny>> {
        let (out, data) = output::<f64, 2>(py, [self.streams.len(), dim])?;
        for (row, s) in data.chunks_exact_mut(dim.max(1)).zip(&mut self.streams) {
            for v in row {
                *v = s.normal();
            }
        }
        Ok(out)
    }

    /// The next uniform in [0, 1) of every chain, (n_chains,) float64.
    fn uniforms<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyAny> {
        let u: Vec<f64> = self.streams.iter_mut().map(|s| s.uniform()).collect();
        PyArray1::from_vec(py, u).into_any()
    }
}
