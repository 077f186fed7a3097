"""Langevin sampling of energy models: :func:`sample` (the engine's chains, behind
:meth:`scorematch.EnergyMLP.sample`) and :func:`langevin` (a user's own score function).

Every sampler here uses the Langevin step ``x ← x + (ε/2)·s(x) + √ε·z``, ``z ~ N(0, I)``,
with ``step_size = ε`` and ``s = -∇ₓE / T`` at temperature ``T``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scorematch import _core
from scorematch._validate import (
    FLOATS,
    as_batch,
    as_choice,
    as_flag,
    as_fraction,
    as_int,
    as_positive,
    as_real_array,
    as_seed,
    binary_size,
    check_finite_rows,
    convert_checked,
    described,
)

if TYPE_CHECKING:
    from scorematch.model import EnergyMLP

# `sample` is EnergyMLP.sample's implementation, with untyped options: use the method.
__all__ = ["SampleResult", "SamplingDivergedError", "langevin"]

Array = NDArray[Any]
Progress = bool | Callable[[int, int], object] | None

SamplingDivergedError = _core.SamplingDivergedError

_METHODS = ("ula", "mala", "annealed")
# Work per detached block, in chain-steps × (2·parameters + a per-chain-step overhead of
# about 500 parameter-equivalents: noise, update, copies): a few tens of milliseconds at the
# engine's rate, so Ctrl-C and progress are seen several times a second. A block is at
# least one step of every chain: where that alone takes longer (seconds, for 400 000 chains
# of a width-512 network on 2 cores), Ctrl-C waits for it.
_BLOCK_WORK = 1e9
_STEP_OVERHEAD = 500


# eq=False: a generated __eq__ compares the arrays with ==, whose truth value numpy refuses,
# so `r == r2`, `r in results` and hash(r) raised.
@dataclass(frozen=True, eq=False)
class SampleResult:
    """The output of :meth:`scorematch.EnergyMLP.sample` and :func:`langevin`.

    Attributes
    ----------
    samples : ndarray, shape (n_chains, dim)
        The final state of every chain.
    trajectory : ndarray, shape (n_kept, n_chains, dim), or None
        Every ``thin``-th state after burn-in, when ``return_trajectory=True``.
        ``n_kept = n_run // thin``, ``n_run`` being ``n_steps`` or, for ``method="annealed"``,
        ``len(temperatures) · steps_per_level``.
    acceptance_rate : ndarray, shape (n_chains,), or None
        Per chain, the fraction of accepted MALA proposals after burn-in; None for ULA and
        annealed Langevin (every proposal is taken).
    step_size : ndarray, shape (n_chains,)
        Per chain, the step size ε in use at the end (the tuned one with
        ``adapt_step_size=True``).
    wall_time : float
        Seconds spent.
    chain_indices : ndarray of int, shape (n_chains,)
        The index of each returned chain (its random stream): ``first_chain +
        arange(n_samples)`` unless ``on_divergence="mask"`` dropped divergent chains.

    Notes
    -----
    Results compare and hash by identity (they can be dict keys and set members); to compare
    two runs, compare their arrays, e.g. ``np.array_equal(a.samples, b.samples)``.
    """

    samples: Array
    trajectory: Array | None
    acceptance_rate: Array | None
    step_size: Array
    wall_time: float
    chain_indices: NDArray[np.intp]


class _Bar:
    """The progress bar of ``progress=True``: one 30-wide line on stderr, redrawn in place."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.open = False  # a frame drawn, its line not ended

    def __call__(self, done: int, total: int) -> None:
        frac = done / max(total, 1)
        filled = int(30 * frac)
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} steps {elapsed:.1f}s"
        )
        self.open = done < total
        if not self.open:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def end(self) -> None:
        """Ends the line of a run stopped before its last step (Ctrl-C, a divergence), so
        that the traceback does not begin on the bar's line ("... 0.5sTraceback ...")."""
        if self.open:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.open = False


def _progress_callback(progress: Progress) -> Callable[[int, int], object] | None:
    if progress is None:
        return None
    if isinstance(progress, (bool, np.bool_)):
        return _Bar() if progress else None
    if callable(progress):
        return progress
    raise TypeError(
        f"progress must be None, a bool or a callable(done, total), got {described(progress)}"
    )


def _on_divergence(v: Any) -> bool:
    return as_choice(v, "on_divergence", ("raise", "mask")) == "raise"


def _masked(
    samples: Array,
    trajectory: Array | None,
    acceptance: Array | None,
    step_size: Array,
    wall: float,
    diverged: Sequence[int] | Array,
) -> SampleResult:
    keep = np.flatnonzero(np.asarray(diverged) < 0)
    if keep.size == samples.shape[0]:
        return SampleResult(samples, trajectory, acceptance, step_size, wall, keep)
    return SampleResult(
        samples[keep],
        None if trajectory is None else trajectory[:, keep],
        None if acceptance is None else acceptance[keep],
        step_size[keep],
        wall,
        keep,
    )


@dataclass(frozen=True)
class _Run:
    """The options of one run, checked and converted. ``_core.sample`` and
    ``_core.check_sample_config`` read them by attribute name; the defaults are those of a
    plain ULA/MALA run (what :func:`langevin` describes)."""

    n: int
    method: str
    n_steps: int
    step_size: float
    temperature: float
    burn_in: int
    thin: int
    seed: int
    first_chain: int
    want_trajectory: bool
    raise_on_divergence: bool
    temperatures: list[float] | None = None
    steps_per_level: int = 1
    init: Array | None = None
    target_accept: float | None = None
    progress: Callable[[int, int], object] | None = None


def _run(
    n: int,
    method: str,
    n_steps: Any,
    step_size: Any,
    temperature: Any,
    burn_in: Any,
    thin: Any,
    seed: Any,
    first_chain: Any,
    return_trajectory: Any,
    on_divergence: Any,
) -> _Run:
    """The options every run has, checked and converted: those of a plain ULA/MALA run,
    shared by :meth:`scorematch.EnergyMLP.sample` and :func:`langevin`."""
    return _Run(
        n=n,
        method=method,
        n_steps=as_int(n_steps, "n_steps", 1),
        step_size=as_positive(step_size, "step_size"),
        temperature=as_positive(temperature, "temperature"),
        burn_in=as_int(burn_in, "burn_in", 0),
        thin=as_int(thin, "thin", 1),
        seed=as_seed(seed),
        first_chain=as_int(first_chain, "first_chain", 0),
        want_trajectory=as_flag(return_trajectory, "return_trajectory"),
        raise_on_divergence=_on_divergence(on_divergence),
    )


def _prepare(
    model: EnergyMLP,
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
    progress: Progress = None,
    on_divergence: Literal["raise", "mask"] = "raise",
) -> _Run:
    """Checks and converts the options of :meth:`scorematch.EnergyMLP.sample`: types and
    combinations. The engine's own rules for a run (its ``Config``) are applied by
    ``_core.sample``, or, by callers that do not run at once, ``_core.check_sample_config``."""
    n = as_int(n_samples, "n_samples", 0)
    as_choice(method, "method", _METHODS)
    run = _run(
        n,
        method,
        n_steps,
        step_size,
        temperature,
        burn_in,
        thin,
        seed,
        first_chain,
        return_trajectory,
        on_divergence,
    )
    adapt_step_size = as_flag(adapt_step_size, "adapt_step_size")
    # Checked whatever the method, although only the adaptation uses it: a value that could
    # never be right is refused where it is written, not when adapt_step_size is turned on.
    # (A valid one is accepted without adaptation: with a numeric default, passing it cannot be
    # told from not passing it, as temperatures' None can.)
    accept = as_fraction(target_accept, "target_accept")
    temps: list[float] | None = None
    spl = 1
    if method == "annealed":
        if temperatures is None:
            raise ValueError("method='annealed' needs temperatures, e.g. [10.0, 3.0, 1.0]")
        # A 0-d array has __iter__, but iterating over it raises.
        zero_d = isinstance(temperatures, np.ndarray) and temperatures.ndim == 0
        if (
            isinstance(temperatures, (str, bytes))
            or not hasattr(temperatures, "__iter__")
            or zero_d
        ):
            raise TypeError(
                "temperatures must be a sequence of numbers, e.g. [10.0, 3.0, 1.0], got "
                f"{'0-d ' if zero_d else ''}{type(temperatures).__name__}"
            )
        temps = [as_positive(t, "every temperature") for t in temperatures]
        if not temps:
            raise ValueError("temperatures must list at least one temperature, got []")
        if temperature != 1.0:
            raise ValueError("pass temperatures, not temperature, with method='annealed'")
        spl = (
            max(1, run.n_steps // len(temps))
            if steps_per_level is None
            else as_int(steps_per_level, "steps_per_level", 1)
        )
        if run.burn_in or adapt_step_size:
            raise ValueError("method='annealed' takes neither burn_in nor adapt_step_size")
    elif temperatures is not None or steps_per_level is not None:
        raise ValueError("temperatures and steps_per_level are options of method='annealed'")
    if adapt_step_size:
        if method != "mala":
            raise ValueError(
                "adapt_step_size tunes the acceptance rate: it needs method='mala', "
                f"got method={method!r}"
            )
        if run.burn_in < 1:
            raise ValueError("adapt_step_size tunes ε during burn-in: pass burn_in >= 1")
    x0 = None
    if init is not None:
        x0 = as_batch(init, model.dim, model._m.dtype, "init")
        if x0.shape[0] != n:
            raise ValueError(
                f"init must have shape ({n}, {model.dim}) (n_samples, dim), got {x0.shape}"
            )
    return replace(
        run,
        temperatures=temps,
        steps_per_level=spl,
        init=x0,
        target_accept=accept if adapt_step_size else None,
        progress=_progress_callback(progress),
    )


def sample(model: EnergyMLP, n_samples: int, **options: Any) -> SampleResult:
    """Run ``n_samples`` Langevin chains of ``model`` in parallel; see
    :meth:`scorematch.EnergyMLP.sample`, which documents every option (checked by
    :func:`_prepare`).

    Each step is ``x ← x + (ε/2)·s(x) + √ε·z`` with ``step_size = ε`` (an option),
    ``s = -∇ₓE / T`` and ``z ~ N(0, I)``.
    """
    t_start = time.perf_counter()
    run = _prepare(model, n_samples, **options)
    n, first = run.n, run.first_chain
    mala = run.method == "mala"
    block = max(1, int(_BLOCK_WORK // (max(n, 1) * (2 * model.n_params + _STEP_OVERHEAD))))
    try:
        samples, traj, acc, steps, diverged = _core.sample(model._m, run, block)
    except MemoryError as err:
        named = _no_room_for_trajectory(err, run.want_trajectory)
        if named is err:
            raise
        raise named from err
    except KeyboardInterrupt as err:
        # The chains as they were at the last completed block ride on the exception.
        partial = getattr(err, "partial", None)
        if partial is not None:
            (samples, traj, acc, steps, diverged), kept, done = partial
            # With "mask", the chains that diverged so far are dropped from the partial result
            # as from a finished run; with "raise" there are none (the engine raises a
            # divergence in the last block first, and the Ctrl-C after it).
            acceptance = acc if mala else None
            _keep_on(err, samples, traj, kept, acceptance, steps, t_start, first, done, diverged)
        raise
    finally:
        if isinstance(run.progress, _Bar):
            run.progress.end()
    wall = time.perf_counter() - t_start
    res = _masked(samples, traj, acc if mala else None, steps, wall, diverged)
    if first:
        res = replace(res, chain_indices=res.chain_indices + first)
    return res


def _no_room_for_trajectory(err: MemoryError, want_trajectory: bool) -> MemoryError:
    """``err``, or where it is numpy's refusal of the trajectory (the one 3-D array of a run),
    a ``MemoryError`` that names it and its sizes and says what makes it smaller; numpy's
    "Unable to allocate ... for an array with shape ..." said not which array, nor why."""
    shape = getattr(err, "shape", None)
    if not want_trajectory or not isinstance(shape, tuple) or len(shape) != 3:
        return err
    dtype = getattr(err, "dtype", None)
    size = math.prod(shape) * (dtype.itemsize if isinstance(dtype, np.dtype) else 8)
    return MemoryError(
        f"cannot allocate the trajectory (return_trajectory=True): {shape[0]} kept states "
        f"× {shape[1]} chains × {shape[2]} coordinates of {dtype}, {binary_size(size)}; "
        "pass a larger thin, fewer steps or return_trajectory=False"
    )


def _keep_on(
    err: KeyboardInterrupt,
    samples: Array,
    traj: Array | None,
    kept: int,
    acceptance: Array | None,
    steps: Array,
    t_start: float,
    first: int,
    done: int,
    diverged: Sequence[int] | Array,
) -> None:
    """Attaches the chains of an interrupted run to its ``KeyboardInterrupt``: ``result``,
    the :class:`SampleResult` so far (the first ``kept`` trajectory states), and
    ``steps_done``, burn-in included.

    ``diverged`` (per chain, the step at which it diverged, or -1) drops the chains that
    diverged so far, as a finished run with ``on_divergence="mask"`` does (with "raise" none
    has).
    """
    res = _masked(
        samples,
        None if traj is None else traj[:kept],
        acceptance,
        steps,
        time.perf_counter() - t_start,
        diverged,
    )
    err.result = replace(res, chain_indices=res.chain_indices + first)  # type: ignore[attr-defined]
    err.steps_done = done  # type: ignore[attr-defined]


def _start(x0: Any) -> Array:
    """``x0`` of ``langevin``, checked, as a fresh native-order array: float32 stays float32,
    other floats and integers become float64; other kinds are a ``TypeError``, a shape that
    is not (n_chains, dim ≥ 1), NaN, Inf or values too large for float64 a ``ValueError``."""
    a = as_real_array(x0, "x0", FLOATS, batch=True)
    if a.ndim != 2:
        raise ValueError(f"x0 must be 2-D with shape (n_chains, dim), got shape {a.shape}")
    if a.shape[1] == 0:
        # No model has dim 0, and a cheap (n, 0) start would let n alone size later buffers.
        raise ValueError(
            f"x0 must have at least one column (shape (n_chains, dim), dim >= 1), "
            f"got shape {a.shape}"
        )
    # Before any conversion, so that only the caller's own NaN and Inf are called that.
    check_finite_rows(a, "x0")
    if a.dtype.kind == "f" and a.dtype.itemsize in (4, 8):
        return np.array(a, dtype=a.dtype.newbyteorder("="), copy=True)
    # A new array (the dtype changes): the chains may update it in place.
    return convert_checked(a, "float64", "x0")


def _returned(v: Any, name: str) -> Array:
    """What a user's score or energy function returned, as a real array (ints allowed)."""
    if isinstance(v, np.ma.MaskedArray):
        raise TypeError(
            f"{name} returned a masked array; its mask would be ignored: return a plain array"
        )
    a = np.asarray(v)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must return a real (float) array, got dtype {a.dtype}")
    return a


def _diverged(
    message: str, n_diverged: int | None, n_chains: int | None, step: int | None
) -> SamplingDivergedError:
    """The engine's error for ``n_diverged`` of ``n_chains`` chains diverged at ``step``: its
    message, and those counts as its attributes."""
    err = SamplingDivergedError(message)
    err.n_diverged, err.n_chains, err.step = n_diverged, n_chains, step
    return err


def _stuck_message(n: int, bad_score: Array, bad_energy: Array) -> str:
    """The error for MALA chains of :func:`langevin` whose score or energy at x0 is NaN or
    Inf: their count, step 0, and which function returned them for how many chains."""
    n_s, n_e = int(bad_score.sum()), int(bad_energy.sum())
    if n_s and n_e:
        who = (
            f"score_fn returned NaN or Inf at finite states (x0) for {n_s} of them and "
            f"energy_fn for {n_e}"
        )
    else:
        name = "score_fn" if n_s else "energy_fn"
        who = f"{name} returned NaN or Inf at finite states (x0) for {n_s or n_e} of them"
    fix = "score_fn and energy_fn" if n_s and n_e else "score_fn" if n_s else "energy_fn"
    return (
        f"{int((bad_score | bad_energy).sum())} of {n} chains diverged (NaN or Inf score or "
        f"energy) at step 0: {who}, where MALA's acceptance test is undefined; fix "
        f"{fix}, or on_divergence='mask' to drop those chains"
    )


def langevin(
    score_fn: Callable[[Array], ArrayLike],
    x0: ArrayLike,
    n_steps: int,
    step_size: float,
    seed: int = 0,
    *,
    method: Literal["ula", "mala"] = "ula",
    energy_fn: Callable[[Array], ArrayLike] | None = None,
    temperature: float = 1.0,
    burn_in: int = 0,
    thin: int = 1,
    return_trajectory: bool = False,
    on_divergence: Literal["raise", "mask"] = "raise",
    first_chain: int = 0,
) -> SampleResult:
    """Langevin dynamics with a user's own batched score function (the slow path).

    Runs ``x ← x + (ε/2)·s(x) + √ε·z`` with ``step_size = ε``, ``s = score_fn(x) / T``,
    for ``burn_in + n_steps`` steps, in Python with the GIL held (one ``score_fn`` call per
    step for all chains). With ``method="mala"`` that update is a proposal ``y``, accepted
    with probability ``min(1, exp(a))``,
    ``a = (E(x) − E(y))/T − ‖x − y − (ε/2)s(y)‖²/(2ε) + ‖y − x − (ε/2)s(x)‖²/(2ε)``.

    Chain ``i`` draws its random numbers from the same stream ``(seed, i)`` as chain ``i``
    of :meth:`scorematch.EnergyMLP.sample`, in the same order, and the update is computed
    in the same order and precision: with ``score_fn = model.score`` (and
    ``energy_fn = model.energy``) and the same ``x0``, both give the same chains (ULA:
    bit-identical). Both report a MALA chain whose score or energy is NaN or Inf at ``x0``
    (e.g. a float32 energy that overflows) as diverged at step 0 (see ``on_divergence``).

    Parameters
    ----------
    score_fn : callable
        Maps an (n, dim) array to the scores ``∇ₓ log p``, an (n, dim) array. It is given
        a copy of the chains' states (as is ``energy_fn``), which it may change or keep.
        Its values
        are taken in the run's dtype (as are ``energy_fn``'s): beyond that dtype's range they
        are Inf there, as the engine's own would be, so a ULA chain diverges and MALA rejects
        the proposal (at x0, where MALA has no proposal to reject, the chain diverges).
    x0 : array_like, shape (n_chains, dim) with dim ≥ 1
        Starting points; float32 or float64 (the dtype of the whole run; others → float64,
        and values too large for it are an error).
    n_steps : int
        Steps after burn-in (≥ 1).
    step_size : float
        ε > 0.
    seed : int, default 0
        Key of the chains' random streams.
    method : {"ula", "mala"}, default "ula"
        Unadjusted or Metropolis-adjusted Langevin.
    energy_fn : callable, optional
        Maps an (n, dim) array to the energies ``-log p`` (up to a constant), shape (n,).
        Required by ``method="mala"``.
    temperature : float, default 1.0
        T > 0: the target is ``p^(1/T)``.
    burn_in, thin, return_trajectory, on_divergence
        As for :meth:`scorematch.EnergyMLP.sample`, whose rules for a run (its length, the
        drift ε/(2T), the chain range) apply here too. MALA rejects a proposal whose position,
        score or energy is NaN or Inf, so its chains diverge only at the start: where
        ``score_fn`` or ``energy_fn`` returns NaN or Inf at ``x0`` (``on_divergence="mask"``
        drops those chains, which are then never passed to either function again).
    first_chain : int, default 0
        Chain ``i`` draws from the stream ``(seed, first_chain + i)``, as in
        :meth:`scorematch.EnergyMLP.sample`.

    Returns
    -------
    SampleResult
        ``acceptance_rate`` per chain for MALA, None for ULA.

    Raises
    ------
    SamplingDivergedError
        If ``on_divergence="raise"`` and a ULA chain reaches NaN or Inf, or, with
        ``method="mala"``, ``score_fn`` or ``energy_fn`` returns NaN or Inf at ``x0`` (the
        message names the function and the number of chains). Its attributes ``step`` (from
        0, burn-in included; 0 for ``x0``), ``n_diverged`` and ``n_chains`` say where and how
        many, as :meth:`scorematch.EnergyMLP.sample`'s do.
    ValueError
        For invalid arguments (an ``x0`` with NaN, Inf or values too large for float64
        among them), or a score or energy of the wrong shape.
    TypeError
        If ``score_fn`` or ``energy_fn`` is not callable, ``x0`` is not an array of real
        numbers (e.g. complex), ``score_fn`` or ``energy_fn`` returns one that is not, or
        an option has the wrong type (e.g. a non-bool ``return_trajectory``).
    KeyboardInterrupt
        On Ctrl-C, as :meth:`scorematch.EnergyMLP.sample`: the exception's ``result`` is a
        :class:`SampleResult` of the chains after the last completed step (the trajectory
        holds the states recorded so far; with ``on_divergence="mask"``, without the chains
        that diverged) and ``steps_done`` the steps they ran, burn-in included.

    Examples
    --------
    >>> import numpy as np, scorematch as sm
    >>> res = sm.langevin(lambda x: -x, np.zeros((4, 2)), n_steps=100, step_size=0.1)
    >>> res.samples.shape
    (4, 2)
    """
    t_start = time.perf_counter()
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    if energy_fn is not None and not callable(energy_fn):
        raise TypeError(f"energy_fn must be callable or None, got {type(energy_fn).__name__}")
    x = _start(x0)
    as_choice(method, "method", ("ula", "mala"))
    n, d = x.shape
    run = _run(
        n,
        method,
        n_steps,
        step_size,
        temperature,
        burn_in,
        thin,
        seed,
        first_chain,
        return_trajectory,
        on_divergence,
    )
    if method == "mala" and energy_fn is None:
        raise ValueError("method='mala' needs energy_fn for the acceptance test")
    if method == "ula" and energy_fn is not None:
        raise ValueError("energy_fn is used by method='mala' only; ULA needs the score alone")
    # The engine's rules for a run (drift ε/(2T) finite, its length, the chain range), as
    # the built-in sampler applies them.
    _core.check_sample_config(run)
    n_steps, eps, burn_in, thin = run.n_steps, run.step_size, run.burn_in, run.thin
    seed, first, raise_on = run.seed, run.first_chain, run.raise_on_divergence
    dt = x.dtype.type
    inv_t = 1.0 / run.temperature
    # The engine's constants, rounded the same way: coef = ε/(2T) and r = √ε in the run's dtype.
    coef = dt(0.5 * eps * inv_t)
    r = dt(math.sqrt(eps))
    streams = _core.Streams(seed, n, first)
    n_kept = n_steps // thin
    try:
        traj = np.empty((n_kept, n, d), dtype=x.dtype) if run.want_trajectory else None
    except MemoryError as err:
        raise _no_room_for_trajectory(err, True) from err
    diverged = np.full(n, -1, dtype=np.int64)

    def in_run_dtype(v: Array) -> Array:
        # Values beyond the run's dtype are ±Inf in it, as the engine's own scores and
        # energies would be: the divergence check and MALA's rejection handle them, so
        # numpy's warning about the cast would only be noise.
        with np.errstate(over="ignore"):
            return v.astype(x.dtype, copy=False)

    def scores(xs: Array) -> Array:
        # A copy, writable (ctypes, Cython memoryviews and torch.from_numpy want one): the
        # chains' own states, handed over, were changed in silence by `x *= -1; return x`.
        s = _returned(score_fn(xs.copy()), "score_fn")
        if s.shape != xs.shape:
            raise ValueError(f"score_fn must return shape {xs.shape}, got {s.shape}")
        return in_run_dtype(s)

    def energies(xs: Array) -> Array:
        assert energy_fn is not None
        e = _returned(energy_fn(xs.copy()), "energy_fn")  # a copy, as for score_fn
        if e.shape != (xs.shape[0],):
            raise ValueError(f"energy_fn must return shape ({xs.shape[0]},), got {e.shape}")
        return in_run_dtype(e)

    accepted = np.zeros(n, dtype=np.int64)
    done = 0  # completed steps, for the partial result of a Ctrl-C
    try:
        if method == "mala":
            s_x, e_x = scores(x), energies(x)
            # At a state whose own score or energy is NaN or Inf the acceptance test means
            # nothing: a is NaN or -Inf, so the chain sat at x0 for the whole run with
            # acceptance 0 and no error, or (energy +Inf) +Inf, taking the first finite
            # proposal whatever the target. Only x0 can be such a state: a proposal is
            # accepted only with a finite energy and a finite a, which a non-finite score there
            # does not give. As ULA with a NaN score, this is score_fn's or energy_fn's doing,
            # not the step size's.
            bad_s = ~np.all(np.isfinite(s_x), axis=1)
            bad_e = ~np.isfinite(e_x)
            stuck = bad_s | bad_e
            if stuck.any():
                diverged[stuck] = 0
                if raise_on:
                    raise _diverged(_stuck_message(n, bad_s, bad_e), int(stuck.sum()), n, 0)
        for t in range(burn_in + n_steps):
            if not (diverged < 0).any():
                # No chain left to move (none at all, or all masked): the result is fixed, and
                # the remaining steps would only call score_fn on empty arrays, up to 2**32
                # times.
                break
            if method == "ula":
                live = diverged < 0
                # Diverged chains are frozen and never passed to score_fn again.
                xs = x if live.all() else x[live]
                s = scores(xs)
                z = streams.normals(d).astype(x.dtype)
                with np.errstate(over="ignore", invalid="ignore"):
                    # Drift and noise summed first, then added to x: as the engine.
                    x[live] = xs + (coef * s + r * z[live])
                bad = live & ~np.all(np.isfinite(x), axis=1)
                if bad.any():
                    diverged[bad] = t
                    if raise_on:
                        # A NaN score at a finite state is score_fn's doing, not the step size's.
                        n_nan = int(np.isnan(s).any(axis=1).sum())
                        hint = (
                            f": score_fn returned NaN at finite states for {n_nan} of them; fix "
                            "score_fn"
                            if n_nan
                            else "; use a smaller step_size"
                        )
                        raise _diverged(
                            f"{int(bad.sum())} of {n} chains diverged (NaN or Inf) at step {t}, "
                            f"the first step where any did{hint}, or on_divergence='mask' to "
                            "keep the finite chains",
                            int(bad.sum()),
                            n,
                            t,
                        )
            else:
                live = diverged < 0
                z = streams.normals(d).astype(x.dtype)
                # divide: a uniform of exactly 0 (one in 2**53) has log -inf, which accepts,
                # as the engine's ln(u) does.
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    y = x + (coef * s_x + r * z)
                    ok_y = live & np.all(np.isfinite(y), axis=1)
                    y_eval = np.where(ok_y[:, None], y, x)  # never pass NaN/Inf to the user
                    if live.all():
                        s_y, e_y = scores(y_eval), energies(y_eval)
                    else:
                        # As ULA's: masked chains are frozen and never passed to score_fn
                        # again (their NaN s_x makes a NaN; ok_y rejects them anyway).
                        s_y, e_y = s_x.copy(), e_x.copy()
                        if live.any():
                            s_y[live], e_y[live] = scores(y_eval[live]), energies(y_eval[live])
                    u = streams.uniforms()
                    # As the engine: f64 sums over coordinates in order, s = −∇E/T.
                    c64 = 0.5 * eps * inv_t
                    x64, y64 = x.astype(np.float64), y.astype(np.float64)
                    gx, gy = -s_x.astype(np.float64), -s_y.astype(np.float64)
                    fwd = np.zeros(n)
                    rev = np.zeros(n)
                    for k in range(d):
                        f = y64[:, k] - x64[:, k] + c64 * gx[:, k]
                        b = x64[:, k] - y64[:, k] + c64 * gy[:, k]
                        fwd += f * f
                        rev += b * b
                    de = (e_x.astype(np.float64) - e_y.astype(np.float64)) * inv_t
                    a = de - rev / (2.0 * eps) + fwd / (2.0 * eps)
                    acc = (np.log(u) < a) & ok_y & np.isfinite(e_y)
                x = np.where(acc[:, None], y, x)
                s_x = np.where(acc[:, None], s_y, s_x)
                e_x = np.where(acc, e_y, e_x)
                if t >= burn_in:
                    accepted += acc
            k = t + 1 - burn_in
            if traj is not None and k > 0 and k % thin == 0:
                traj[k // thin - 1] = x
            done = t + 1
    except Exception:
        # Any error's traceback keeps this frame (a divergence, score_fn's own exception): a
        # caller that keeps the error (a sweep logging its failures) need not keep the
        # trajectory too. A Ctrl-C (below) hands the trajectory on instead.
        traj = None
        raise
    except KeyboardInterrupt as err:
        # As EnergyMLP.sample: the chains so far ride on the exception.
        counted = done - burn_in
        so_far = accepted / counted if counted > 0 else np.full(n, np.nan)
        kept = max(counted, 0) // thin
        acceptance = so_far if method == "mala" else None
        # With "raise", no chain has diverged here (the first divergence raised at once).
        steps = np.full(n, eps)
        _keep_on(err, x.copy(), traj, kept, acceptance, steps, t_start, first, done, diverged)
        raise
    steps = np.full(n, eps)
    rate = accepted / n_steps if method == "mala" else None
    res = _masked(x, traj, rate, steps, time.perf_counter() - t_start, diverged)
    return replace(res, chain_indices=res.chain_indices + first) if first else res
