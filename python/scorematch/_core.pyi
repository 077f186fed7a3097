# Stub of the compiled extension `scorematch._core` (rust/python). Private: use the typed
# public API in scorematch.model instead.
from collections.abc import Callable
from typing import Any, final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scorematch.sampling import _Run
from scorematch.training import FitHistory

__all__ = [
    "MAX_PROJECTIONS",
    "MAX_THREADS",
    "LossScale",
    "Model",
    "Optimizer",
    "SamplingDivergedError",
    "Streams",
    "Trainer",
    "TrainingDivergedError",
    "__version__",
    "check_sample_config",
    "cpu_paths",
    "epoch_permutation",
    "get_num_threads",
    "non_finite_divergence",
    "sample",
    "set_num_threads",
    "step_seed",
    "validation_seed",
]
__version__: str
MAX_THREADS: int
MAX_PROJECTIONS: int

def set_num_threads(n: int) -> None: ...

class SamplingDivergedError(RuntimeError):
    # How many chains diverged, of how many, at which step (from 0, burn-in included), set by
    # the engine and langevin; None on an instance made by hand.
    n_diverged: int | None
    n_chains: int | None
    step: int | None

class TrainingDivergedError(RuntimeError):
    # Where and why training diverged (from 0, as the message counts), set by the core; None
    # on an instance made by hand.
    epoch: int | None
    step: int | None
    cause: str | None
    advice: str | None
    # Set by EnergyMLP.fit and scorematch.dask.fit before raising: the completed epochs.
    history: FitHistory

def get_num_threads() -> int: ...
def cpu_paths() -> tuple[str, str]: ...

@final
class Model:
    @staticmethod
    def create(
        dim: int, hidden: list[int], activation: str, dtype: str, alpha: float, seed: int
    ) -> Model: ...
    @staticmethod
    def from_params(
        params: list[NDArray[Any]], activation: str, dtype: str, alpha: float
    ) -> Model: ...
    @staticmethod
    def check_param_shapes(shapes: list[tuple[int, ...]]) -> None: ...
    def check_same_shapes(self, shapes: list[tuple[int, ...]]) -> None: ...
    def with_params(self, params: list[NDArray[Any]]) -> Model: ...
    @property
    def dim(self) -> int: ...
    @property
    def hidden(self) -> list[int]: ...
    @property
    def activation(self) -> str: ...
    @property
    def alpha(self) -> float: ...
    @property
    def dtype(self) -> str: ...
    @property
    def n_params(self) -> int: ...
    def params(self) -> list[NDArray[np.floating[Any]]]: ...
    def energy(self, x: ArrayLike) -> NDArray[np.floating[Any]]: ...
    def score(self, x: ArrayLike) -> NDArray[np.floating[Any]]: ...
    def hessian_trace(self, x: ArrayLike) -> NDArray[np.floating[Any]]: ...
    def ism_loss(self, x: NDArray[Any]) -> float: ...
    def ism_loss_and_grad(
        self, x: NDArray[Any]
    ) -> tuple[float, list[NDArray[np.floating[Any]]]]: ...
    def esm_loss_and_grad(
        self, x: NDArray[Any], target_score: NDArray[Any]
    ) -> tuple[float, list[NDArray[np.floating[Any]]]]: ...
    def ssm_loss_and_grad(
        self,
        x: NDArray[Any],
        n_projections: int,
        seed: int,
        projection: str,
        row_keys: NDArray[np.uint64] | None = None,
    ) -> tuple[float, list[NDArray[np.floating[Any]]]]: ...
    def dsm_loss_and_grad(
        self,
        x: NDArray[Any],
        noise_std: float,
        seed: int,
        row_keys: NDArray[np.uint64] | None = None,
    ) -> tuple[float, list[NDArray[np.floating[Any]]]]: ...
    def esm_loss(self, x: NDArray[Any], target_score: NDArray[Any]) -> float: ...
    def ssm_loss(
        self,
        x: NDArray[Any],
        n_projections: int,
        seed: int,
        projection: str,
        row_keys: NDArray[np.uint64] | None = None,
    ) -> float: ...
    def dsm_loss(
        self,
        x: NDArray[Any],
        noise_std: float,
        seed: int,
        row_keys: NDArray[np.uint64] | None = None,
    ) -> float: ...

def sample(
    model: Model, run: _Run, block_steps: int
) -> tuple[
    NDArray[np.floating[Any]],
    NDArray[np.floating[Any]] | None,
    NDArray[np.float64],
    NDArray[np.float64],
    list[int],
]: ...
def check_sample_config(run: _Run) -> None: ...

@final
class Streams:
    def __new__(cls, seed: int, n_chains: int, first_chain: int = 0) -> Streams: ...
    def __len__(self) -> int: ...
    def normals(self, dim: int) -> NDArray[np.float64]: ...
    def uniforms(self) -> NDArray[np.float64]: ...

@final
class Trainer:
    def __new__(
        cls,
        model: Model,
        x: NDArray[Any],
        target: NDArray[Any] | None,
        x_val: NDArray[Any] | None,
        target_val: NDArray[Any] | None,
        objective: str,
        epochs: int,
        batch_size: int,
        lr: float,
        optimizer: str,
        weight_decay: float,
        patience: int | None,
        seed: int,
        n_projections: int,
        projection: str,
        noise_std: float | None,
    ) -> Trainer: ...
    @property
    def steps_per_epoch(self) -> int: ...
    def run_epoch(
        self, progress: Callable[[int, int], object] | None = None
    ) -> tuple[float, float | None, int, bool]: ...
    def model(self) -> Model: ...
    def finish(self) -> None: ...

def epoch_permutation(seed: int, epoch: int, n: int) -> NDArray[np.int64]: ...
def step_seed(seed: int, step: int) -> int: ...
def validation_seed(seed: int) -> int: ...
def non_finite_divergence(epoch: int, step: int, what: str) -> TrainingDivergedError: ...

@final
class LossScale:
    def __new__(cls) -> LossScale: ...
    def check(self, loss: float, epoch: int, step: int) -> TrainingDivergedError | None: ...

@final
class Optimizer:
    def __new__(
        cls, dtype: str, n_params: int, optimizer: str, lr: float, weight_decay: float
    ) -> Optimizer: ...
    @property
    def steps(self) -> int: ...
    def step(self, params: NDArray[Any], grad: NDArray[Any]) -> bool: ...
