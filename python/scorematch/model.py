"""The energy model: :class:`EnergyMLP`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, MappingView, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scorematch import _core
from scorematch._validate import (
    _RAGGED_TO_OBJECT,
    MAX_PROJECTIONS,
    as_batch,
    as_choice,
    as_int,
    as_nonnegative,
    as_params_dtype,
    as_positive,
    as_real_array,
    as_seed,
    parse_dtype,
    reject_masked,
)

if TYPE_CHECKING:
    from scorematch.persistence import BinaryWriter
    from scorematch.sampling import SampleResult
    from scorematch.training import Callback, FitHistory

__all__ = ["EnergyMLP"]

Array = NDArray[Any]


class EnergyMLP:
    """An MLP energy ``E(x; θ)`` with unnormalized density ``exp(-E(x))``.

    ``E(x) = w·σ(W_L ··· σ(W_1 x + b_1) ··· + b_L) + c + (α/2)‖x‖²``. The score
    ``s(x) = -∇ₓE(x)`` and the Hessian trace ``tr(∇ₓ s) = -ΔₓE`` never need the normalizer.
    Sampling (:meth:`sample`) uses the Langevin step ``x ← x + (ε/2)·s(x) + √ε·z`` with
    ``step_size = ε``.

    Parameters
    ----------
    dim : int
        Input dimension d.
    hidden : sequence of int, default (64, 64, 64)
        Widths of the hidden layers (at least one). An architecture of more than 2**31
        parameters in all raises ``ValueError``.
    activation : {"softplus", "tanh", "silu"}, default "softplus"
        Hidden-layer nonlinearity. All three are C³, as score matching requires (ReLU is not:
        its Hessian vanishes almost everywhere).
    dtype : {"float32", "float64"}, default "float64"
        Floating-point type of the parameters and of every computation. Inputs of the other
        float dtype are converted once per call.
    alpha : float, default 0.0
        Coefficient of the fixed confining term ``(α/2)‖x‖²`` added to the energy (not
        trained). ``alpha > 0`` makes ``exp(-E)`` normalizable whatever the network does.
    seed : int, default 0
        Seed of the initialization (each layer uniform in ±1/√fan_in, as PyTorch's
        ``nn.Linear``); the same seed always gives the same parameters.

    Notes
    -----
    Every batched method takes ``X`` of shape (n, dim): numpy arrays in any memory order
    (C, Fortran, strided views, read-only) are read in place without a copy; array-likes
    are converted with numpy. Shapes are never guessed: a 1-D ``X`` is an error. Integer,
    complex and object arrays raise ``TypeError``; NaN or Inf raise ``ValueError`` naming
    the first bad row. All computation runs without the GIL on the engine's threads (see
    :func:`scorematch.set_num_threads`); results do not depend on the number of threads.
    The one exception: :meth:`energy`, :meth:`score` and :meth:`hessian_trace` calls on at
    most 16 rows and 2**16 multiply-adds (e.g. ``score`` on up to 3 rows of the default
    ``hidden=(64, 64, 64)`` in dim 2) take a few microseconds and run without releasing the
    GIL, because releasing it can cost more than the work: ~0.1 µs when no other thread
    wants it, and next to a busy Python thread a whole switch interval (5 ms by default) to
    get it back.

    Examples
    --------
    >>> import numpy as np
    >>> from scorematch import EnergyMLP
    >>> model = EnergyMLP(2, hidden=(32, 32), seed=0)
    >>> X = np.random.default_rng(0).normal(size=(5, 2))
    >>> model.score(X).shape
    (5, 2)
    >>> loss, grads = model.ism_loss_and_grad(X)
    >>> [g.shape for g in grads] == [p.shape for p in model.params]
    True
    """

    # __weakref__: registries of models (weakref.WeakValueDictionary, caches) hold them weakly.
    __slots__ = ("__weakref__", "_drawn", "_m")
    _m: _core.Model
    # The handle of the parameters the constructor drew from the seed (None when the model
    # was built from given parameters): the model is still "initial" while _m is it.
    # fit(standardize=True) reads initial parameters as the standardized network's.
    _drawn: _core.Model | None

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64, 64),
        activation: str = "softplus",
        dtype: Any = "float64",
        alpha: float = 0.0,
        seed: int = 0,
    ) -> None:
        dim = as_int(dim, "dim")
        widths = _as_widths(hidden)
        self._m = self._drawn = _core.Model.create(
            dim,
            widths,
            _as_activation(activation),
            parse_dtype(dtype),
            as_nonnegative(alpha, "alpha"),
            as_seed(seed),
        )

    @classmethod
    def from_params(
        cls,
        params: Sequence[ArrayLike],
        *,
        activation: str = "softplus",
        alpha: float = 0.0,
        dtype: Any = "float64",
    ) -> EnergyMLP:
        """Build a model from parameters in the public layout.

        Parameters
        ----------
        params : sequence of array_like
            ``[W_1, b_1, ..., W_L, b_L, w, c]`` with ``W_l`` of shape (n_l, n_{l-1}) (rows are
            outputs, as in PyTorch's ``nn.Linear.weight``), ``b_l`` of shape (n_l,), ``w`` of
            shape (1, n_L) and ``c`` of shape (1,). The architecture is read from the shapes.
        activation, alpha, dtype
            As for :class:`EnergyMLP`. Parameters are converted to ``dtype``.

        Returns
        -------
        EnergyMLP
            A new model holding copies of ``params``.

        Raises
        ------
        ValueError
            If the shapes do not chain, a value is NaN or Inf, or an option is invalid.
        TypeError
            If ``params`` is not a sequence of numeric arrays.
        """
        name = parse_dtype(dtype)
        obj = cls.__new__(cls)
        obj._m = _core.Model.from_params(
            _as_param_arrays(params, name, _core.Model.check_param_shapes),
            _as_activation(activation),
            name,
            as_nonnegative(alpha, "alpha"),
        )
        obj._drawn = None
        return obj

    # -- architecture ---------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Input dimension d."""
        return self._m.dim

    @property
    def hidden(self) -> tuple[int, ...]:
        """Hidden-layer widths."""
        return tuple(self._m.hidden)

    @property
    def activation(self) -> str:
        """Name of the hidden-layer nonlinearity."""
        return self._m.activation

    @property
    def alpha(self) -> float:
        """Coefficient of the confining term (α/2)‖x‖²."""
        return self._m.alpha

    @property
    def dtype(self) -> np.dtype[Any]:
        """Floating-point type of parameters, inputs and outputs."""
        return np.dtype(self._m.dtype)

    @property
    def n_params(self) -> int:
        """Total number of trainable parameters."""
        return self._m.n_params

    @property
    def params(self) -> list[Array]:
        """Copies of the parameters ``[W_1, b_1, ..., W_L, b_L, w, c]`` (see :meth:`from_params`)."""
        return self._m.params()

    def set_params(self, params: Sequence[ArrayLike]) -> None:
        """Replace the parameters, keeping the architecture.

        Parameters
        ----------
        params : sequence of array_like
            Same layout and shapes as :attr:`params`; converted to the model's dtype.

        Raises
        ------
        ValueError
            If the number of arrays or a shape differs from :attr:`params`, or a value is
            NaN or Inf. The model is unchanged then.
        TypeError
            If ``params`` is not a sequence of numeric arrays. The model is unchanged then.
        """
        m = self._m
        self._replace(m.with_params(_as_param_arrays(params, m.dtype, m.check_same_shapes)))

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha!r}" if self.alpha else ""
        return (
            f"EnergyMLP(dim={self.dim}, hidden={self.hidden}, activation={self.activation!r}, "
            f"dtype={self._m.dtype!r}{extra})  # {self.n_params} parameters"
        )

    def save(self, path: str | os.PathLike[str] | BinaryWriter) -> None:
        """Write the model to ``path`` (a ``.npz`` archive; see :mod:`scorematch.persistence`).

        The file holds the parameters, the architecture, the dtype and alpha, and a format
        version; :func:`scorematch.load` reads it back bit for bit, and never executes
        anything from the file.

        Parameters
        ----------
        path : str, os.PathLike or binary file object
            The file to write, exactly that path (no suffix is added), replaced if it
            exists (whole, where a new file can take its place: a save that fails leaves
            the previous file, and a reader never sees half a file; see
            :func:`scorematch.persistence.save`); or a file object open for writing bytes (``open(..., "wb")``,
            ``io.BytesIO``, a ``gzip.GzipFile``), written from its current position and
            left open.

        Raises
        ------
        TypeError
            If ``path`` is neither a str, an ``os.PathLike`` nor a binary file object (an int
            would be taken for a file descriptor by ``open``), or is a file object in text
            mode.
        ValueError
            If the file object is closed or not open for writing.
        OSError
            If the file cannot be written.
        """
        from scorematch.persistence import save

        save(self, path)

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.params, self.activation, self.alpha, self._m.dtype)
        # Unpickled models older versions wrote (four arguments) are not initial.
        return (_rebuild, (*args, True) if self._is_initial() else args)

    def __copy__(self) -> EnergyMLP:
        obj = EnergyMLP.__new__(EnergyMLP)
        obj._m = self._m  # handles are immutable: sharing is a copy
        obj._drawn = self._drawn
        return obj

    def _replace(self, handle: _core.Model) -> None:
        """Swaps in other parameters: the model is no longer fresh (and no longer keeps the
        constructor's parameters alive)."""
        self._m, self._drawn = handle, None

    def _is_initial(self) -> bool:
        """Whether the parameters are still those the constructor drew from its seed (not
        set, fitted or loaded since)."""
        return self._m is self._drawn

    def __deepcopy__(self, memo: dict[int, Any]) -> EnergyMLP:
        return self.__copy__()

    # -- batched evaluation ---------------------------------------------------------------

    def _batch(self, X: ArrayLike, name: str = "X") -> Array:
        return as_batch(X, self.dim, self._m.dtype, name)

    def energy(self, X: ArrayLike) -> Array:
        """Energies ``E(x)`` of each row.

        Parameters
        ----------
        X : array_like, shape (n, dim)

        Returns
        -------
        ndarray, shape (n,), of the model's dtype
            ``-log`` of the unnormalized density. An empty batch gives an empty array.

        Raises
        ------
        ValueError
            If ``X`` is not (n, dim) or holds NaN or Inf.
        TypeError
            If ``X`` is not an array of floats.

        Notes
        -----
        Calls on at most 16 rows and 2**16 multiply-adds (for instance one point of the
        default architecture) run without releasing the GIL: they take a few microseconds,
        and releasing the GIL can cost more (see the class Notes). Larger calls release it.
        """
        return self._m.energy(X)  # converted and checked as by _batch, in _core

    def score(self, X: ArrayLike) -> Array:
        """Scores ``s(x) = ∇ₓ log p(x) = -∇ₓE(x)`` of each row.

        Computed by one forward and one reverse pass; the cost does not grow with ``dim``.

        Parameters
        ----------
        X : array_like, shape (n, dim)

        Returns
        -------
        ndarray, shape (n, dim), of the model's dtype

        Notes
        -----
        Calls on at most 16 rows and 2**16 multiply-adds (for instance one point of the
        default architecture) run without releasing the GIL: they take a few microseconds,
        and releasing the GIL can cost more (see the class Notes). Larger calls release it.
        """
        return self._m.score(X)  # converted and checked as by _batch, in _core

    def hessian_trace(self, X: ArrayLike) -> Array:
        """Exact traces of the score's Jacobian, ``tr(∇ₓ s) = -ΔₓE``, of each row.

        Computed exactly (not estimated) by forward-Laplacian propagation, at about
        ``dim + 2`` times the cost of a forward pass.

        Parameters
        ----------
        X : array_like, shape (n, dim)

        Returns
        -------
        ndarray, shape (n,), of the model's dtype

        Notes
        -----
        Calls on at most 16 rows, 2**16 multiply-adds and ``256 // (dim + 2)`` rows (for
        instance one point of the default architecture) run without releasing the GIL: they
        take a few microseconds, and releasing the GIL can cost more (see the class Notes).
        Larger calls release it.
        """
        return self._m.hessian_trace(X)  # converted and checked as by _batch, in _core

    def ism_loss(self, X: ArrayLike) -> float:
        """Implicit score-matching loss (Hyvärinen 2005) of the batch.

        ``J_ISM = mean over rows of [tr(∇ₓ s(x)) + ½‖s(x)‖²]``; it equals the Fisher
        divergence to the data distribution up to a constant independent of the model.

        Parameters
        ----------
        X : array_like, shape (n, dim) with n ≥ 1

        Returns
        -------
        float

        Raises
        ------
        ValueError
            If the batch is empty (the mean of no rows is undefined), or as for :meth:`energy`.
        TypeError
            If ``X`` is not an array of floats.
        """
        return self._m.ism_loss(self._batch(X))

    def ism_loss_and_grad(self, X: ArrayLike) -> tuple[float, list[Array]]:
        """``J_ISM`` of the batch and its exact gradient with respect to every parameter.

        Parameters
        ----------
        X : array_like, shape (n, dim) with n ≥ 1

        Returns
        -------
        loss : float
        grads : list of ndarray
            Shaped like :attr:`params`, of the model's dtype.

        Raises
        ------
        ValueError
            If the batch is empty, or as for :meth:`energy`.
        TypeError
            If ``X`` is not an array of floats.
        """
        return self._m.ism_loss_and_grad(self._batch(X))

    def esm_loss_and_grad(self, X: ArrayLike, target_score: ArrayLike) -> tuple[float, list[Array]]:
        """Explicit score-matching loss ``J_ESM = mean ½‖s(x) - target‖²`` and its gradient.

        Parameters
        ----------
        X : array_like, shape (n, dim) with n ≥ 1
        target_score : array_like, shape (n, dim)
            The score to match at each row of ``X``.

        Returns
        -------
        loss : float
        grads : list of ndarray
            Shaped like :attr:`params`.

        Raises
        ------
        ValueError
            If the batch is empty, ``target_score`` is not shaped like ``X``, or either holds
            NaN or Inf.
        TypeError
            If ``X`` or ``target_score`` is not an array of floats.
        """
        return self._m.esm_loss_and_grad(*self._esm_args(X, target_score))

    def esm_loss(self, X: ArrayLike, target_score: ArrayLike) -> float:
        """``J_ESM`` of the batch alone: :meth:`esm_loss_and_grad`'s value, bit for bit, without
        the gradient's reverse pass, for held-out data (1.8–2.1× faster at the engine
        benchmark's sizes: ``benchmarks/bench_losses.py``).

        Parameters
        ----------
        X : array_like, shape (n, dim) with n ≥ 1
        target_score : array_like, shape (n, dim)

        Returns
        -------
        float

        Raises
        ------
        ValueError, TypeError
            As :meth:`esm_loss_and_grad`.
        """
        return self._m.esm_loss(*self._esm_args(X, target_score))

    def _esm_args(self, X: ArrayLike, target_score: ArrayLike) -> tuple[Array, Array]:
        X = self._batch(X)
        target = as_batch(target_score, self.dim, self._m.dtype, "target_score")
        if target.shape != X.shape:
            raise ValueError(
                f"target_score must have the shape of X, {X.shape}, got {target.shape}"
            )
        return X, target

    def ssm_loss_and_grad(
        self,
        X: ArrayLike,
        n_projections: int = 1,
        seed: int = 0,
        projection: str = "gaussian",
        *,
        row_keys: ArrayLike | None = None,
    ) -> tuple[float, list[Array]]:
        """Sliced score-matching loss (Song et al. 2019) of the batch and its exact gradient.

        ``J_SSM = mean over rows and projections t of [tᵀ(∇ₓ s)t + ½ (tᵀ s)²]``, with
        ``n_projections`` random directions per row, ``E[t tᵀ] = I``. Its expectation over
        the directions is :meth:`ism_loss`; each evaluation costs about
        ``n_projections + 2`` forward passes instead of ``dim + 2``.

        Parameters
        ----------
        X : array_like, shape (n, dim) with n ≥ 1
        n_projections : int, default 1
            Directions per row (1 to 4096).
        seed : int, default 0
            The directions of row ``i`` depend only on ``(seed, i)``: the same seed gives the
            same loss and gradient whatever the number of threads.
        projection : {"gaussian", "rademacher"}, default "gaussian"
            Distribution of the directions: standard normal, or independent ±1 entries.
        row_keys : array_like of int, shape (n,), optional
            Row ``i`` draws its directions from the stream ``(seed, row_keys[i])`` instead of
            ``(seed, i)``. A batch cut into parts, each part passing its rows' positions in
            the whole batch, gets exactly the directions of the whole: the distributed fit
            (:mod:`scorematch.dask`) relies on it.

        Returns
        -------
        loss : float
        grads : list of ndarray
            Shaped like :attr:`params`; the exact gradient of this (fixed-direction) loss.

        Raises
        ------
        ValueError
            If the batch is empty, ``n_projections`` is out of range or ``projection`` is
            unknown, or as for :meth:`energy`.
        TypeError
            If ``n_projections`` or ``seed`` is not an int, ``row_keys`` not an array of
            integers, or ``X`` not an array of floats.
        """
        return self._m.ssm_loss_and_grad(
            *self._ssm_args(X, n_projections, seed, projection, row_keys)
        )

    def ssm_loss(
        self,
        X: ArrayLike,
        n_projections: int = 1,
        seed: int = 0,
        projection: str = "gaussian",
        *,
        row_keys: ArrayLike | None = None,
    ) -> float:
        """``J_SSM`` of the batch alone: :meth:`ssm_loss_and_grad`'s value for the same
        arguments (the same directions), bit for bit, without the gradient's reverse pass,
        for held-out data (2.3–2.9× faster at the engine benchmark's sizes:
        ``benchmarks/bench_losses.py``).

        Parameters
        ----------
        X, n_projections, seed, projection, row_keys
            As :meth:`ssm_loss_and_grad`.

        Returns
        -------
        float

        Raises
        ------
        ValueError, TypeError
            As :meth:`ssm_loss_and_grad`.
        """
        return self._m.ssm_loss(*self._ssm_args(X, n_projections, seed, projection, row_keys))

    def _ssm_args(
        self,
        X: ArrayLike,
        n_projections: int,
        seed: int,
        projection: str,
        row_keys: ArrayLike | None,
    ) -> tuple[Array, int, int, str, NDArray[np.uint64] | None]:
        X = self._batch(X)
        return (
            X,
            as_int(n_projections, "n_projections", 1, MAX_PROJECTIONS),
            as_seed(seed),
            _as_projection(projection),
            _as_row_keys(row_keys, X.shape[0]),
        )

    def dsm_loss_and_grad(
        self,
        X: ArrayLike,
        noise_std: float,
        seed: int = 0,
        *,
        row_keys: ArrayLike | None = None,
    ) -> tuple[float, list[Array]]:
        """Denoising score-matching loss (Vincent 2011) of the batch and its exact gradient.

        ``J_DSM = mean over rows of ½‖s(x + σε) + ε/σ‖²`` with ``ε ~ N(0, I)`` and
        ``σ = noise_std``: it fits the score of the data convolved with ``N(0, σ²I)``.

        Parameters
        ----------
        X : array_like, shape (n, dim) with n ≥ 1
        noise_std : float
            The noise level σ > 0.
        seed : int, default 0
            The noise of row ``i`` depends only on ``(seed, i)``.
        row_keys : array_like of int, shape (n,), optional
            Row ``i`` draws its noise from the stream ``(seed, row_keys[i])`` instead of
            ``(seed, i)``; see :meth:`ssm_loss_and_grad`.

        Returns
        -------
        loss : float
        grads : list of ndarray
            Shaped like :attr:`params`.

        Raises
        ------
        ValueError
            If the batch is empty, ``noise_std`` is not a finite number > 0, or as for
            :meth:`energy`.
        TypeError
            If ``noise_std`` is not a number, ``seed`` not an int, ``row_keys`` not an array
            of integers, or ``X`` not an array of floats.
        """
        return self._m.dsm_loss_and_grad(*self._dsm_args(X, noise_std, seed, row_keys))

    def dsm_loss(
        self,
        X: ArrayLike,
        noise_std: float,
        seed: int = 0,
        *,
        row_keys: ArrayLike | None = None,
    ) -> float:
        """``J_DSM`` of the batch alone: :meth:`dsm_loss_and_grad`'s value for the same
        arguments (the same noise), bit for bit, without the gradient's reverse pass, for
        held-out data (1.7–2.0× faster at the engine benchmark's sizes:
        ``benchmarks/bench_losses.py``).

        Parameters
        ----------
        X, noise_std, seed, row_keys
            As :meth:`dsm_loss_and_grad`.

        Returns
        -------
        float

        Raises
        ------
        ValueError, TypeError
            As :meth:`dsm_loss_and_grad`.
        """
        return self._m.dsm_loss(*self._dsm_args(X, noise_std, seed, row_keys))

    def _dsm_args(
        self, X: ArrayLike, noise_std: float, seed: int, row_keys: ArrayLike | None
    ) -> tuple[Array, float, int, NDArray[np.uint64] | None]:
        X = self._batch(X)
        return (
            X,
            as_positive(noise_std, "noise_std"),
            as_seed(seed),
            _as_row_keys(row_keys, X.shape[0]),
        )

    # -- sampling -------------------------------------------------------------------------

    def sample(
        self,
        n_samples: int,
        *,
        n_steps: int = 1000,
        step_size: float = 1e-2,
        method: Literal["ula", "mala", "annealed"] = "ula",
        init: ArrayLike | None = None,
        burn_in: int = 0,
        thin: int = 1,
        return_trajectory: bool = False,
        adapt_step_size: bool = False,
        target_accept: float = 0.574,
        temperature: float = 1.0,
        temperatures: Sequence[float] | None = None,
        steps_per_level: int | None = None,
        seed: int = 0,
        first_chain: int = 0,
        progress: bool | Callable[[int, int], object] | None = None,
        on_divergence: Literal["raise", "mask"] = "raise",
    ) -> SampleResult:
        """Draw samples of ``exp(-E/T)`` with ``n_samples`` parallel Langevin chains.

        Each step is ``x ← x + (ε/2)·s(x) + √ε·z`` with ``step_size = ε``,
        ``s = -∇ₓE / T`` and ``z ~ N(0, I)``; one batched forward + reverse pass of the
        network gives the scores of a chunk of chains (and, for MALA, their energies).
        It is evaluated as ``x + ((ε/2)·s(x) + √ε·z)``: in float32, a drift smaller than
        half a rounding unit of ``x`` (a tiny ε) would be lost at every step if added to
        ``x`` on its own. Chains run on all the engine's threads, without the GIL, in blocks between which
        Ctrl-C is honoured.

        Reproducibility: chain ``i`` draws from its own random stream keyed by
        ``(seed, i)``, so the result is bit-identical for any number of threads, the
        first ``k`` chains of ``sample(n)`` equal ``sample(k)``, and chains ``a..b`` of
        ``sample(n)`` equal ``sample(b - a, first_chain=a)`` (how :func:`scorematch.dask.sample`
        cuts one run into blocks).

        Parameters
        ----------
        n_samples : int
            Number of chains (≥ 0); each returns one sample. With 0, every array of the
            result is empty, of the shapes above with n_samples = 0 (as an empty batch
            gives empty outputs elsewhere).
        n_steps : int, default 1000
            Steps after burn-in (≥ 1).
        step_size : float, default 1e-2
            ε > 0 (the initial ε when ``adapt_step_size=True``).
        method : {"ula", "mala", "annealed"}, default "ula"
            ``"ula"``: the unadjusted update above (biased by O(ε): on N(0, σ²I) its
            stationary variance is σ²/(1 − ε/(4σ²))). ``"mala"``: the update as a proposal,
            accepted with the Metropolis–Hastings probability, so the target is exact.
            ``"annealed"``: annealed Langevin dynamics (Song & Ermon 2019), ULA over
            ``temperatures`` in order, ``steps_per_level`` steps each, with
            ``ε_i = ε·T_i / T_last``.
        init : array_like, shape (n_samples, dim), optional
            Starting points. By default each chain starts at ``N(0, I)`` drawn from its own
            stream.
        burn_in : int, default 0
            Steps run first and never recorded (where ε is tuned when adapting). The whole
            run, burn-in included, is at most 2**32 - 1 steps.
        thin : int, default 1
            Keep every ``thin``-th state after burn-in in the trajectory.
        return_trajectory : bool, default False
            Also return the kept states, shape (n_run // thin, n_samples, dim), where
            ``n_run`` is ``n_steps``, or for ``method="annealed"`` the steps actually run,
            ``len(temperatures) · steps_per_level`` (with the default ``steps_per_level``
            that can differ from ``n_steps``: 10 steps over 3 temperatures run 9, 2 run 3).
        adapt_step_size : bool, default False
            MALA only: tune ε per chain during burn-in by dual averaging (Hoffman & Gelman
            2014) toward ``target_accept``, then freeze it (at the averaged iterate, as
            Stan does). The acceptance reached approaches the target as the burn-in grows,
            from above for targets of 0.5 and more: measured on Gaussians in dimensions 2
            and 16, 0.62, 0.61, 0.59, 0.58 for the default 0.574 after burn-ins of 100, 300,
            1 000 and 3 000 steps (0.85 → 0.81 for 0.8); from below, and further, for low
            targets (0.2: 0.07–0.12 after 100 steps, 0.16–0.19 after 3 000).
        target_accept : float, default 0.574
            Acceptance rate targeted by the adaptation (0.574 is optimal in high dimension,
            Roberts & Rosenthal 1998), in (0, 1). Only ``adapt_step_size=True`` uses it, but
            it is checked whatever the method: a value outside (0, 1) is an error even where
            it would go unused.
        temperature : float, default 1.0
            T > 0 for ULA and MALA: the target is ``exp(-E/T)``.
        temperatures : sequence of float, optional
            The (usually decreasing) temperatures of ``method="annealed"`` (a list, a 1-D
            array, ...); refused with the other methods.
        steps_per_level : int, optional
            Steps per temperature of ``method="annealed"``; default
            ``max(1, n_steps // len(temperatures))``, and then ``n_steps`` is not used
            otherwise.
        seed : int, default 0
            Key of the chains' random streams.
        first_chain : int, default 0
            Index of the first chain: chain ``i`` of this call draws from the stream
            ``(seed, first_chain + i)``.
        progress : bool or callable, optional
            True draws a progress bar on stderr; a callable is called as
            ``progress(steps_done, steps_total)`` between blocks of steps.
        on_divergence : {"raise", "mask"}, default "raise"
            What to do with chains that reach NaN or Inf (ULA), or start where the model's
            score or energy is NaN or Inf, an overflow at finite points (MALA, which rejects
            non-finite proposals but has no defined acceptance test there): raise
            :class:`scorematch.SamplingDivergedError`, or return only the other chains, with
            their indices (counted from ``first_chain``) in ``chain_indices``.

        Returns
        -------
        SampleResult
            ``samples`` (n_samples, dim), ``trajectory`` or None, ``acceptance_rate`` per
            chain (MALA) or None, the final ``step_size`` per chain, ``wall_time`` and
            ``chain_indices``.

        Raises
        ------
        ValueError
            For invalid arguments: ``n_steps < 1``, ``step_size <= 0`` or NaN, ``thin < 1``,
            an unknown method, an ``init`` of the wrong shape or with NaN/Inf, ...
        TypeError
            For arguments of the wrong type.
        SamplingDivergedError
            If chains diverge and ``on_divergence="raise"``; the message gives the first
            step at which any did and how many did at that step (others may follow), and so
            do the exception's attributes ``step`` (from 0, burn-in included),
            ``n_diverged`` and ``n_chains``.
        KeyboardInterrupt
            On Ctrl-C, seen between blocks of steps (a block is at least one step of every
            chain: where one such step takes seconds, as for hundreds of thousands of chains
            of a wide network, Ctrl-C waits for it). The exception's ``result`` is a
            :class:`SampleResult` of the chains as they were after the last completed block
            (the trajectory holds the states recorded so far; with ``on_divergence="mask"``,
            without the chains that diverged) and ``steps_done`` the steps they ran, burn-in
            included: nothing computed is lost. With ``on_divergence="raise"``, a chain
            that diverged in that block raises :class:`SamplingDivergedError` first, and the
            ``KeyboardInterrupt`` follows it (without a result): no result holds a diverged
            chain, and no Ctrl-C is lost.

        Examples
        --------
        >>> from scorematch import EnergyMLP
        >>> model = EnergyMLP(2, hidden=(16,), alpha=1.0, seed=0)
        >>> res = model.sample(100, n_steps=200, step_size=0.1, method="mala")
        >>> res.samples.shape, res.acceptance_rate.shape
        ((100, 2), (100,))
        """
        from scorematch.sampling import sample

        return sample(
            self,
            n_samples,
            n_steps=n_steps,
            step_size=step_size,
            method=method,
            init=init,
            burn_in=burn_in,
            thin=thin,
            return_trajectory=return_trajectory,
            adapt_step_size=adapt_step_size,
            target_accept=target_accept,
            temperature=temperature,
            temperatures=temperatures,
            steps_per_level=steps_per_level,
            seed=seed,
            first_chain=first_chain,
            progress=progress,
            on_divergence=on_divergence,
        )

    # -- training -------------------------------------------------------------------------

    def fit(
        self,
        X: ArrayLike,
        *,
        objective: str = "ism",
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        validation: Any = 0.1,
        patience: int | None = None,
        seed: int = 0,
        callback: Callback | None = None,
        progress: bool | None = None,
        target_score: ArrayLike | None = None,
        noise_std: float | None = None,
        n_projections: int = 1,
        projection: str = "gaussian",
        standardize: bool = False,
    ) -> FitHistory:
        """Fit the model to samples by score matching, in place.

        Each epoch visits the training rows once in minibatches, in an order drawn from
        ``seed``; each minibatch takes one optimizer step on the exact gradient of its loss.
        The loop runs in Rust without the GIL. The same arguments give bit-identical
        parameters and history whatever the number of threads.

        Parameters
        ----------
        X : array_like, shape (n, dim)
            The samples.
        objective : {"ism", "ssm", "dsm", "esm"}, default "ism"
            ``"ism"``: exact implicit score matching (:meth:`ism_loss_and_grad`).
            ``"ssm"``: sliced score matching with ``n_projections`` random ``projection``
            directions per row (:meth:`ssm_loss_and_grad`), cheaper than ISM for large dim.
            ``"dsm"``: denoising score matching at ``noise_std`` (:meth:`dsm_loss_and_grad`);
            it fits the score of the data blurred by ``N(0, noise_std² I)``.
            ``"esm"``: explicit score matching against ``target_score``.
            Random directions and noise are drawn afresh for every minibatch from ``seed``.
        epochs : int, default 100
            Number of passes over the training rows (at least 1).
        batch_size : int, default 256
            Rows per minibatch; the last minibatch of an epoch may be smaller.
        lr : float, default 1e-3
            Learning rate (> 0).
        optimizer : {"adam", "sgd"}, default "adam"
            Adam (β = 0.9, 0.999, ε = 1e-8) or SGD with momentum 0.9, with PyTorch's update
            rules.
        weight_decay : float, default 0.0
            L2 penalty coefficient λ: ``λθ`` is added to the gradient (as in PyTorch).
        validation : float, array_like, tuple or None, default 0.1
            A fraction of the rows held out (chosen from ``seed``), an array ``X_val`` (for
            ``"esm"``: a pair ``(X_val, target_val)``), or ``None``/``0`` for none. With
            validation, the parameters of the epoch with the lowest validation loss are
            restored at the end. Random objectives use fixed draws for validation, so the
            epochs' validation losses are comparable.
        patience : int or None, default None
            Stop after this many epochs without a new lowest validation loss (training loss
            without validation).
        seed : int, default 0
            Seed of the validation split, the shuffles and the random draws.
        callback : callable or None
            Called after each epoch as ``callback(epoch, train_loss, val_loss)`` (``val_loss``
            is None without validation); returning ``False`` stops training. During the
            call the model holds that epoch's parameters, so the callback can evaluate it.
        progress : bool or None, default None
            Show a progress bar (epoch, losses, rows/s) on stderr. ``None``: only when stderr
            is a terminal.
        target_score : array_like, shape (n, dim), optional
            The score at each row of ``X``; required by ``"esm"`` and refused otherwise.
        noise_std : float, optional
            Noise level of ``"dsm"`` (required by it and refused otherwise).
        n_projections : int, default 1
            Directions per row for ``"ssm"``; another value is refused by the others.
        projection : {"gaussian", "rademacher"}, default "gaussian"
            Distribution of the ``"ssm"`` directions; another value is refused by the others.
        standardize : bool, default False
            Train in standardized coordinates ``z = (x − mean) / std`` (per column, from the
            training rows), which makes ``lr`` meaningful whatever the data's scale. The
            model stays in your coordinates: the affine map is folded exactly into the first
            layer, so :meth:`energy`, :meth:`score`, :meth:`hessian_trace` and sampling need
            nothing else. Losses in the history, ``noise_std`` and ``target_score``'s role are
            in standardized units (``target_score`` is given in yours and converted).
            Training continues from the current model, converted exactly to standardized
            coordinates, so a second ``fit`` (on the same data or new data) picks up where
            the first stopped. One exception: the parameters of a model fresh from the
            constructor (not fitted, set or loaded since; a copy or pickle of it too) were
            drawn for inputs of unit scale, and are read as those of the standardized network
            instead. Requires ``alpha == 0``.

        Returns
        -------
        FitHistory
            Losses per epoch, wall time, best epoch and the reason training stopped.

        Raises
        ------
        ValueError, TypeError
            For invalid arguments (checked before any training), with the expected values.
        TrainingDivergedError
            If a loss, gradient or parameter becomes NaN or Inf, or a minibatch loss blows
            up: exceeds 10⁶ times the scale of the earlier losses, ``max(1, |first loss|,
            −lowest loss)`` (the first is always accepted; a loss that climbs does not raise
            the scale, one that falls does, as ISM and SSM losses rightly fall far below
            zero on data of a small scale), or Adam's squared-gradient average overflows
            (a huge ``weight_decay``: every later step would be 0). Each step's update is
            judged by the next step's loss, the last one's when the run stops and keeps it
            (without validation, or when the best epoch is the last), on the last
            minibatch. The message names the epoch, step and cause, and so do the
            exception's attributes ``epoch`` and ``step`` (ints, from 0; a validation loss,
            and the last update judged when the run stops, are judged at the step after
            the epoch's last: ``step`` equals the minibatches per epoch), ``cause`` and
            ``advice`` (strs);
            the model keeps its last good parameters (the last whose minibatch loss and
            gradient were finite and in range, or the initial ones), and the exception's
            ``history`` attribute holds the completed epochs, with ``stop_reason ==
            "diverged"``. A run that made no update (it diverged, or was interrupted,
            before the first) leaves the model exactly as it was.

        Warns
        -----
        RuntimeWarning
            For ``"ism"`` and ``"ssm"``, if a column of ``X`` holds one value in every
            training row: along it the data is a point mass, which their losses cannot fit
            (they fall without bound as the model's curvature there grows). Drop the
            column, or use ``"dsm"``. Likewise if a column takes at most 20 distinct values
            in the training rows (Booleans, counts, one-hot codes), with at least 4 rows per
            value on average: the data are point masses along it, which the loss may fit
            without bound. Drop it, add noise of about the spacing of its
            values, or use ``"dsm"`` with ``noise_std`` about that spacing.

        Notes
        -----
        Ctrl-C (KeyboardInterrupt) stops training within about a tenth of a second, inside
        a long minibatch too (which is then discarded): ``fit`` then returns normally with
        ``stop_reason == "interrupted"``, the model holding the parameters of the last
        completed minibatch (the best epoch is *not* restored), and the history of the
        completed epochs. Any other exception raised during training (a callback's, or a
        ``SystemExit`` from a signal handler; not :class:`TrainingDivergedError`, which
        keeps the last good parameters) leaves the model at those parameters too, and
        propagates.

        Training runs on a copy of the parameters, which ``fit`` writes back to the model
        when it returns (and before each ``callback``). Until then other threads see the
        parameters the fit started from, and a :meth:`set_params` made meanwhile from
        another thread (or by the callback) is overwritten.

        Each call starts from the model's current parameters with a new optimizer: Adam's
        moment estimates (SGD's momentum) start again from zero, and the same ``seed`` gives
        the same validation split, epoch orders and random draws as the call before. So
        ``fit(X, epochs=5)`` twice is not ``fit(X, epochs=10)``: it is two runs of 5 epochs,
        the second from the parameters the first left. Pass a new ``seed`` to continue with
        fresh shuffles and draws.

        Examples
        --------
        >>> import numpy as np
        >>> from scorematch import EnergyMLP
        >>> X = np.random.default_rng(0).normal(size=(500, 2))
        >>> model = EnergyMLP(2, hidden=(16, 16))
        >>> history = model.fit(X, epochs=3, lr=1e-2, progress=False)
        >>> history.n_epochs, history.stop_reason
        (3, 'completed')
        """
        from scorematch.training import fit

        return fit(
            self,
            X,
            objective=objective,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            validation=validation,
            patience=patience,
            seed=seed,
            callback=callback,
            progress=progress,
            target_score=target_score,
            noise_std=noise_std,
            n_projections=n_projections,
            projection=projection,
            standardize=standardize,
        )


def _rebuild(
    params: list[Array], activation: str, alpha: float, dtype: str, initial: bool = False
) -> EnergyMLP:
    model = EnergyMLP.from_params(params, activation=activation, alpha=alpha, dtype=dtype)
    if initial:
        model._drawn = model._m
    return model


def _as_widths(hidden: Any) -> list[int]:
    if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
        raise TypeError(f"hidden must be a sequence of widths such as (64, 64), got {hidden!r}")
    # A sequence, in order: a dict was read as its keys, a set in its own order, and an
    # iterator or generator, used up here, as whatever it still held. Sequences that do not
    # register as such (a pandas Series or Index, a tensor) are taken by their one dimension.
    refused = (str, bytes, bytearray, Mapping, AbstractSet, Iterator, MappingView)
    if isinstance(hidden, refused) or not (
        isinstance(hidden, Sequence)
        or (hasattr(hidden, "__len__") and hasattr(hidden, "__getitem__") and np.ndim(hidden) == 1)
    ):
        got = type(hidden).__name__
        if isinstance(hidden, np.ndarray):
            got = f"an array of shape {hidden.shape}"
        raise TypeError(
            "hidden must be a sequence of ints such as (64, 64) (a list, tuple, range or 1-D "
            f"array), got {got}"
        )
    widths = list(hidden)
    if not widths:
        raise ValueError("hidden must list at least one layer width, got an empty sequence")
    return [as_int(w, "every hidden width") for w in widths]


def _as_activation(activation: Any) -> str:
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a str, got {type(activation).__name__}")
    # A lone surrogate cannot cross into Rust as UTF-8 (the binding raised a bare
    # UnicodeEncodeError): escaped, it is an unknown name like any other, and the engine's
    # message lists the choices.
    return activation.encode("utf-8", "backslashreplace").decode("utf-8")


def _as_row_keys(keys: ArrayLike | None, n: int) -> NDArray[np.uint64] | None:
    if keys is None:
        return None
    reject_masked(keys, "row_keys")
    try:
        with warnings.catch_warnings():
            # numpy < 1.24 makes a ragged list an object array, with a warning: refused below
            # as numpy >= 1.24 refuses it.
            warnings.simplefilter("ignore", getattr(np, "VisibleDeprecationWarning", Warning))
            k = np.asarray(keys)
        if _RAGGED_TO_OBJECT and k.dtype.kind == "O" and isinstance(keys, (list, tuple)):
            try:
                np.asarray(keys, dtype=np.float64)  # numpy >= 1.24's ValueError, if ragged
            except (TypeError, OverflowError):
                pass  # not ragged: refused by its dtype below, as on numpy >= 1.24
    except Exception as err:  # ragged lists, a failing __array__: not numpy's bare error
        raise TypeError(f"row_keys could not be converted to an array: {err}") from err
    if k.dtype.kind not in "iu":
        raise TypeError(f"row_keys must be an array of integers, got dtype {k.dtype}")
    if k.shape != (n,):
        raise ValueError(f"row_keys must have shape ({n},) (one key per row of X), got {k.shape}")
    if k.dtype.kind == "i" and n and k.min() < 0:
        raise ValueError(f"row_keys must be >= 0, got {k.min()}")
    # Aligned as well as contiguous: the engine reads the keys in place, and a view at an odd
    # byte offset was refused as "not a contiguous uint64 array".
    return np.require(k, np.uint64, ["C", "A"])


_PROJECTIONS = ("gaussian", "rademacher")


def _as_projection(projection: Any) -> str:
    return as_choice(projection, "projection", _PROJECTIONS)


def _as_param_arrays(
    params: Any, dtype: str, check_shapes: Callable[[list[tuple[int, ...]]], None]
) -> list[Array]:
    # A str or bytes is a Sequence too, of characters or ints, which would be blamed as
    # params[0] (bytes: "params[0] (W_1) must be 2-D (n_1, dim), got shape ()").
    if isinstance(params, (np.ndarray, str, bytes, bytearray, memoryview)) or not isinstance(
        params, Sequence
    ):
        raise TypeError(
            "params must be a list of arrays [W_1, b_1, ..., W_L, b_L, w, c], "
            f"got {type(params).__name__}"
        )
    # Keeps the number of dimensions (ascontiguousarray would turn a scalar into shape (1,)
    # and let a malformed list through).
    arrays = [as_real_array(p, f"params[{i}]", "a numeric array") for i, p in enumerate(params)]
    # Shapes are checked before any array is converted: a view of a huge shape that cannot be
    # a model (np.broadcast_to(w, (10**9, 1))) is refused as such, not first copied whole.
    check_shapes([a.shape for a in arrays])
    return [as_params_dtype(a, dtype, f"params[{i}]") for i, a in enumerate(arrays)]
