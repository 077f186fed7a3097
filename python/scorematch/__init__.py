"""scorematch: energy-based models trained by score matching, with a fast Rust core.

An energy model ``E(x; θ)`` is a small MLP from R^d to R with unnormalized density
``exp(-E)``. scorematch computes, for whole batches and on all cores, its energies, scores
``s(x) = -∇ₓE``, exact Hessian traces ``tr(∇ₓ s) = -ΔₓE`` and the implicit and explicit
score-matching losses with their exact parameter gradients, fits it to samples
(:meth:`EnergyMLP.fit`), and samples it with multithreaded Langevin chains (ULA, MALA,
annealed) with diagnostics.
"""

from __future__ import annotations

from scorematch import _runtime, _threads, datasets, diagnostics
from scorematch._core import __version__
from scorematch._runtime import runtime_info
from scorematch._threads import get_num_threads, set_num_threads
from scorematch.model import EnergyMLP
from scorematch.persistence import load
from scorematch.sampling import SampleResult, SamplingDivergedError, langevin
from scorematch.training import FitHistory, TrainingDivergedError

_threads.check_env_threads()
_runtime.check_env_gemm()

__all__ = [
    "EnergyMLP",
    "FitHistory",
    "SampleResult",
    "SamplingDivergedError",
    "TrainingDivergedError",
    "__version__",
    "datasets",
    "diagnostics",
    "get_num_threads",
    "langevin",
    "load",
    "runtime_info",
    "set_num_threads",
]
