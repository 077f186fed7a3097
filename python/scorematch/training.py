"""Training: :meth:`scorematch.EnergyMLP.fit` and its :class:`FitHistory`.

The epoch loop runs in Rust without the GIL (``scorematch._core.Trainer``); this module
checks the arguments, splits off the validation rows, and between epochs calls the user's
callback and draws the progress bar.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TextIO

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scorematch import _core
from scorematch._validate import (
    MAX_PROJECTIONS,
    as_batch,
    as_choice,
    as_flag,
    as_float,
    as_int,
    as_nonnegative,
    as_positive,
    as_seed,
    check_finite_rows,
    typed,
)
from scorematch._warn import warn

if TYPE_CHECKING:
    from scorematch.model import EnergyMLP

__all__ = ["FitHistory", "TrainingDivergedError"]

TrainingDivergedError = _core.TrainingDivergedError

StopReason = Literal["completed", "patience", "callback", "interrupted", "diverged"]
Callback = Callable[[int, float, "float | None"], Any]

_OBJECTIVES = ("ism", "ssm", "dsm", "esm")
_OPTIMIZERS = ("adam", "sgd")


@dataclass
class FitHistory:
    """What :meth:`EnergyMLP.fit <scorematch.EnergyMLP.fit>` did, epoch by epoch.

    Attributes
    ----------
    train_loss : list of float
        Mean minibatch loss of each completed epoch.
    val_loss : list of float
        Validation loss after each completed epoch (empty without validation).
    seconds : float
        Wall-clock duration of the fit.
    best_epoch : int or None
        Index (from 0) of the epoch with the lowest validation loss (training loss without
        validation); ``None`` if no epoch completed.
    stop_reason : {"completed", "patience", "callback", "interrupted", "diverged"}
        Why training stopped; ``"diverged"`` only on the ``history`` attribute of a
        :class:`TrainingDivergedError`.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int | None = None
    stop_reason: StopReason = "completed"

    @property
    def n_epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.train_loss)


class _ProgressBar:
    """A one-line progress bar on a text stream: epoch, position, losses, rows/s."""

    def __init__(self, epochs: int, rows_per_epoch: int, stream: TextIO) -> None:
        self.epochs = epochs
        self.rows = rows_per_epoch
        self.stream = stream
        self.epoch = 0
        self.last = ""
        self.start = time.perf_counter()
        self.rows_done = 0

    def step(self, step: int, steps: int) -> None:
        frac = step / max(steps, 1)
        elapsed = time.perf_counter() - self.start
        rate = (self.rows_done + frac * self.rows) / elapsed if elapsed > 0 else 0.0
        width = 20
        filled = width if step == 0 and steps == 1 else int(frac * width)
        bar = "#" * filled + "." * (width - filled)
        self._write(f"epoch {self.epoch + 1}/{self.epochs} [{bar}] {self.last}{rate:,.0f} rows/s")

    def end_epoch(self, train: float, val: float | None) -> None:
        self.rows_done += self.rows
        self.last = f"loss {train:.4g} " + (f"val {val:.4g} " if val is not None else "")
        self.step(0, 1)  # the finished epoch: rows_done already counts it
        self.epoch += 1

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()

    def _write(self, line: str) -> None:
        self.stream.write("\r" + line.ljust(78))
        self.stream.flush()


def fit(
    model: EnergyMLP,
    X: ArrayLike,
    *,
    objective: str,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    weight_decay: float,
    validation: Any,
    patience: int | None,
    seed: int,
    callback: Callback | None,
    progress: bool | None,
    target_score: ArrayLike | None,
    noise_std: float | None,
    n_projections: int,
    projection: str,
    standardize: bool,
) -> FitHistory:
    """Implementation of :meth:`EnergyMLP.fit`; see there."""
    as_choice(objective, "objective", _OBJECTIVES)
    as_choice(optimizer, "optimizer", _OPTIMIZERS)
    lr = as_positive(lr, "lr")
    weight_decay = as_nonnegative(weight_decay, "weight_decay")
    epochs, batch_size, patience, seed, n_projections, projection, noise_std = check_loop_args(
        objective,
        epochs,
        batch_size,
        patience,
        seed,
        n_projections,
        projection,
        noise_std,
        callback,
    )
    check_standardize(standardize, model.alpha)

    dtype = model._m.dtype
    Xa = as_batch(X, model.dim, dtype, "X")
    target = None
    if objective == "esm":
        if target_score is None:
            raise ValueError("objective 'esm' needs target_score, an array shaped like X")
        target = as_batch(target_score, model.dim, dtype, "target_score")
        if target.shape != Xa.shape:
            raise ValueError(
                f"target_score must have the shape of X, {Xa.shape}, got {target.shape}"
            )
    elif target_score is not None:
        raise ValueError(f"target_score is only used by objective 'esm', not {objective!r}")
    if Xa.shape[0] == 0:
        raise ValueError("X must hold at least one row, got 0")
    # Checked before the split, so that a bad row is named by its index in X.
    check_finite_rows(Xa, "X")
    if target is not None:
        check_finite_rows(target, "target_score")
    X_train, t_train, X_val, t_val = _split(Xa, target, validation, model.dim, dtype, seed)
    constant = discrete = None
    if objective in ("ism", "ssm") and X_train.shape[0] > 1:
        constant = X_train.min(axis=0) == X_train.max(axis=0)
        picked = candidate_columns(X_train[sample_rows(X_train.shape[0])], constant)
        outside = [values_outside(X_train, picked)]
        discrete = discrete_columns(picked, outside, X_train.shape[0])
    affine = _Affine.of(X_train, model.dtype) if standardize else _Affine.identity(model.dim)
    given = [("X", Xa, False), ("target_score", target, True)]
    given += [("X_val", X_val, False), ("target_val", t_val, True)]
    # A finite row far from the training rows' mean (a validation row, or any row when the
    # spread is tiny) can overflow in standardized coordinates: named below, not left to the
    # engine's "contains NaN or Inf" about a row the caller knows to be finite.
    with np.errstate(over="ignore", invalid="ignore"):
        X_train, t_train = affine.data(X_train, t_train)
        if X_val is not None:
            X_val, t_val = affine.data(X_val, t_val)
    if standardize and not all(
        np.isfinite(a).all() for a in (X_train, t_train, X_val, t_val) if a is not None
    ):
        affine.check_overflow(given, model.dtype)
    del given
    if constant is not None and discrete is not None:
        # After the data's own errors, which a warning turned into an error would hide.
        warn_point_masses(constant, discrete, objective)

    start_from = affine.start(model)
    before = (model._m, model._drawn)
    trainer = _core.Trainer(
        start_from,
        X_train,
        t_train,
        X_val,
        t_val,
        objective,
        epochs,
        batch_size,
        lr,
        optimizer,
        weight_decay,
        patience,
        seed,
        n_projections,
        projection,
        noise_std,
    )
    show = as_flag(progress, "progress") if progress is not None else None
    stream = _progress_stream(show)
    bar = _ProgressBar(epochs, X_train.shape[0], stream) if stream is not None else None
    history = FitHistory()
    start = time.perf_counter()
    try:
        for epoch in range(epochs):
            train, val, best, out_of_patience = trainer.run_epoch(
                bar.step if bar is not None else None
            )
            history.train_loss.append(train)
            if val is not None:
                history.val_loss.append(val)
            history.best_epoch = best
            if bar is not None:
                bar.end_epoch(train, val)
            if callback is not None:
                adopt(
                    model, before, _trained(trainer, start_from), affine
                )  # the callback may evaluate it
                if _stops(callback(epoch, train, val)):
                    history.stop_reason = "callback"
                    break
            if out_of_patience:
                history.stop_reason = "patience"
                break
        # The best epoch's parameters, or (without validation) the last step's once judged.
        trainer.finish()
    except KeyboardInterrupt:
        # Keep the parameters of the last completed minibatch, not the best epoch's.
        history.stop_reason = "interrupted"
        adopt(model, before, _trained(trainer, start_from), affine)
    except TrainingDivergedError as err:
        adopt(model, before, _trained(trainer, start_from), affine)
        history.stop_reason = "diverged"
        history.seconds = time.perf_counter() - start
        err.history = history
        raise
    except BaseException:
        # Any other exception (a callback's; SystemExit from a SIGTERM handler, run while the
        # engine waits for a minibatch): the model keeps the last completed minibatch's
        # parameters, as on Ctrl-C. It went back to the initial ones, and a service that
        # saves the model once SystemExit reaches it saved the untrained one (production
        # audit). Failing that (memory), the exception raised is still the first one.
        with contextlib.suppress(Exception):
            adopt(model, before, _trained(trainer, start_from), affine)
        raise
    else:
        adopt(model, before, _trained(trainer, start_from), affine)
    finally:
        if bar is not None:
            bar.close()
        # Any error's traceback keeps this frame (a divergence, a callback's or a progress
        # bar's own exception): without these names, an error kept by a sweep that logs its
        # failures does not hold the trainer's copy of the rows and the split or
        # standardized ones, up to three times the size of X.
        del trainer, start_from, Xa, target, X_train, t_train, X_val, t_val
    history.seconds = time.perf_counter() - start
    return history


class LoopArgs(NamedTuple):
    """The checked arguments every training loop shares (local and distributed)."""

    epochs: int
    batch_size: int
    patience: int | None
    seed: int
    n_projections: int
    projection: str
    noise_std: float | None


def check_loop_args(
    objective: str,
    epochs: Any,
    batch_size: Any,
    patience: Any,
    seed: Any,
    n_projections: Any,
    projection: Any,
    noise_std: Any,
    callback: Any,
) -> LoopArgs:
    """Checks the arguments of a training loop that :meth:`EnergyMLP.fit` and
    :func:`scorematch.dask.fit` share, with the same messages."""
    from scorematch.model import _as_projection

    if noise_std is not None or objective == "dsm":
        if objective != "dsm":
            raise ValueError(f"noise_std is only used by objective 'dsm', not {objective!r}")
        if noise_std is None:
            raise ValueError("objective 'dsm' needs noise_std (a number > 0)")
        noise_std = as_positive(noise_std, "noise_std")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    # Checked whatever the objective, as noise_std is: the engine's range for SSM.
    n_projections = as_int(n_projections, "n_projections", 1, MAX_PROJECTIONS)
    projection = _as_projection(projection)
    check_ssm_only(
        objective,
        n_projections,
        projection,
        lambda name, given: ValueError(
            f"{name} is only used by objective 'ssm', not {objective!r} (got {given})"
        ),
    )
    return LoopArgs(
        epochs=as_int(epochs, "epochs"),
        batch_size=as_int(batch_size, "batch_size"),
        patience=None if patience is None else as_int(patience, "patience"),
        seed=as_seed(seed),
        n_projections=n_projections,
        projection=projection,
        noise_std=noise_std,
    )


def check_ssm_only(
    objective: str,
    n_projections: int,
    projection: str,
    error: Callable[[str, str], Exception],
) -> None:
    """Raises ``error(name, given)`` for ``n_projections`` or ``projection`` set away from
    its default (1, ``"gaussian"``) with an objective other than SSM, which would ignore it:
    as ``noise_std`` is refused outside DSM, a search over them would repeat the same fit."""
    if objective == "ssm":
        return
    if n_projections != 1:
        raise error("n_projections", str(n_projections))
    if projection != "gaussian":
        raise error("projection", repr(projection))


def check_standardize(standardize: Any, alpha: float) -> None:
    """The checks of ``fit``'s ``standardize`` (shared with ``scorematch.dask.fit``)."""
    if not isinstance(standardize, (bool, np.bool_)):
        raise TypeError(f"standardize must be a bool, got {type(standardize).__name__}")
    if standardize and alpha != 0:
        raise ValueError(
            "standardize=True needs alpha == 0: the confining term (alpha/2)||x||^2 has no "
            f"exact counterpart in standardized coordinates (alpha is {alpha})"
        )


def column_stats(X: Arr) -> tuple[Arr, Arr]:
    """The mean and standard deviation of each column of ``X`` (n ≥ 1 rows), in float64, for
    data of any scale. Each column is divided by its largest |x| before the spread is taken
    (from the column's extremes, without the copy of X that np.abs(X) would be), so that
    squares neither overflow (data near 1e154 and up: an infinite spread) nor underflow (near
    1e-154 and below: a zero one). A mean beyond the float64 range comes back infinite,
    without a warning: callers decide what that means. Any memory order gives the same bits."""
    if isinstance(X, np.ndarray) and not X.flags.c_contiguous:
        # numpy sums a contiguous column pairwise but a C array's columns row by row: the
        # Fortran-ordered numpy form of a pandas or polars frame trained to other bits.
        X = np.ascontiguousarray(X)
    big = np.maximum(X.max(axis=0), -X.min(axis=0)).astype(np.float64)
    big[~(big > 0)] = 1.0
    with np.errstate(over="ignore"):
        mean: Arr = X.mean(axis=0, dtype=np.float64)
    # Scaled into [-1, 1], the spread is at most 1: nothing here can overflow.
    std: Arr = (X / big).std(axis=0, dtype=np.float64) * big
    return mean, std


class _Affine:
    """The coordinates z = (x − m) / s that ``standardize=True`` trains in.

    The network's first layer absorbs the map: ``W_1 x + b_1 = (W_1 diag(s)) z + (b_1 + W_1 m)``,
    so a model in z coordinates converts exactly (up to rounding) to one in x coordinates,
    whose energy, score and Hessian trace are then the user-coordinate ones. Scores
    transform as ``s_z(z) = s ⊙ s_x(x)``.
    """

    def __init__(self, m: Arr | None, s: Arr | None) -> None:
        self.m, self.s = m, s

    @classmethod
    def identity(cls, dim: int) -> _Affine:
        return cls(None, None)

    @classmethod
    def of(cls, X: Arr, dtype: np.dtype[Any]) -> _Affine:
        return cls.from_stats(*column_stats(X), dtype)

    @classmethod
    def from_stats(cls, m: Arr, s: Arr, dtype: np.dtype[Any]) -> _Affine:
        """From the columns' mean and spread (as :func:`column_stats` gives them)."""
        s[~(s > 0)] = 1.0  # constant columns: only shift them
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
            raise ValueError("standardize=True: the mean or spread of X overflows; rescale X")
        # The first layer in X's units is W_z / s: a spread this small would make it overflow
        # after training, and the trained model could not be returned (1e6: room for W_z).
        largest = float(np.finfo(dtype).max) / 1e6
        with np.errstate(divide="ignore", over="ignore"):
            too_small = ~(1.0 / s < largest)
        if too_small.any():
            j = int(np.argmax(too_small))
            raise ValueError(
                f"standardize=True: the spread of column {j} of X ({s[j]:.1e}) is too small for "
                f"a {np.dtype(dtype).name} model: its first layer in X's units would overflow; "
                "rescale X or pass standardize=False"
            )
        return cls(m, s)

    def data(self, X: Arr, target: Arr | None) -> tuple[Arr, Arr | None]:
        if self.m is None or self.s is None:
            return X, target
        # One float64 temporary each, divided in place, returned as is when X is float64.
        z = X - self.m
        z /= self.s
        t = None if target is None else (target * self.s).astype(target.dtype, copy=False)
        return z.astype(X.dtype, copy=False), t

    def check_overflow(
        self, given: list[tuple[str, Arr | None, bool]], dtype: Any, start: int = 0
    ) -> None:
        """Raises the ``ValueError`` of the first finite row of ``given`` (its name, its rows
        as the caller passed them, whether they are targets) whose standardized values
        overflow ``dtype``, numbered from ``start`` (a block's first row in its array);
        returns if there is none (a NaN the engine names)."""
        if self.m is None or self.s is None:
            return
        largest = float(np.finfo(dtype).max)
        for name, A, is_target in given:
            if A is None:
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                z = A * self.s if is_target else (A - self.m) / self.s
                over = np.isfinite(A).all(axis=1) & ~(np.abs(z) <= largest).all(axis=1)
            if over.any():
                i = start + int(np.argmax(over))
                if is_target:
                    raise ValueError(
                        f"standardize=True: row {i} of {name} overflows a "
                        f"{np.dtype(dtype).name} model once converted to standardized units "
                        f"({name} * std); rescale the data or pass standardize=False"
                    )
                raise ValueError(
                    f"standardize=True: row {i} of {name} lies too far from the training "
                    f"rows' mean for a {np.dtype(dtype).name} model: its standardized "
                    f"coordinates (x - mean) / std overflow; rescale {name} or drop that row"
                )

    def start(self, model: EnergyMLP) -> _core.Model:
        """The network of z that training starts from: ``model``'s converted exactly to z
        coordinates, unless ``model`` is fresh from the constructor, whose parameters (drawn
        for inputs of unit scale) are read as the network of z."""
        if model._is_initial():
            return model._m
        return self.to_z(model._m)

    def to_z(self, handle: _core.Model) -> _core.Model:
        """The network of z equal to ``handle``'s network of x (the inverse of
        :meth:`to_user`): ``W_z = W_x diag(s)``, ``b_z = b_x + W_x m``."""
        if self.m is None or self.s is None:
            return handle
        p = [a.astype(np.float64) for a in handle.params()]
        with np.errstate(over="ignore", invalid="ignore"):
            p[1] = p[1] + p[0] @ self.m
            p[0] = p[0] * self.s
            w, b = p[0].astype(handle.dtype), p[1].astype(handle.dtype)
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ValueError(
                "standardize=True: the model's first layer overflows "
                f"{np.dtype(handle.dtype).name} in standardized coordinates (its weights "
                "times the data's spread); pass standardize=False, rescale the data, or "
                "start from a fresh model"
            )
        return handle.with_params([w, b, *(a.astype(handle.dtype) for a in p[2:])])

    def to_user(self, handle: _core.Model) -> _core.Model:
        """The model of x whose network equals ``handle``'s network of z."""
        if self.m is None or self.s is None:
            return handle
        p = [a.astype(np.float64) for a in handle.params()]
        p[0] = p[0] / self.s  # W_x = W_z diag(1/s)
        p[1] = p[1] - p[0] @ self.m  # b_x = b_z − W_x m
        return handle.with_params([a.astype(handle.dtype) for a in p])


def warn_point_masses(constant: Any, discrete: list[tuple[int, int]], objective: str) -> None:
    """Warns of the columns of X along which the data are point masses, which ISM and SSM
    cannot fit: those of one value in every training row (``constant``: a boolean per
    column) and the :func:`discrete_columns` (``discrete``)."""
    _warn_constant(constant, objective, "X")
    _warn_discrete(discrete, objective, "X")


def _warn_constant(constant: Any, objective: str, name: str) -> None:
    """Warns of the columns (``constant``: a boolean per column) that hold one value in every
    training row: along such a column the data is a point mass, and the ISM and SSM losses
    fall without bound as the model's curvature there grows (measured: -0.15 to -7e5 over
    200 epochs, where the same data without the column settles at -0.51)."""
    columns = np.flatnonzero(constant).tolist()
    if not columns:
        return
    one = len(columns) == 1
    which = f"column {columns[0]} of {name} holds" if one else f"columns {columns} of {name} hold"
    it = "it" if one else "them"
    warn(
        f"{which} one value in every training row: along {it} the data is a point mass, "
        f"which {objective.upper()} cannot fit (its loss falls without bound and the model "
        f"degenerates); drop {it}, or use objective='dsm', whose noise gives the data a "
        "density there"
    )


# A column that takes at most this many values, at least `_ROWS_PER_VALUE` rows per value on
# average, is discrete: its data are point masses. Measured (2000 rows, a normal column beside
# it, the estimator's defaults: 100 ISM epochs): Booleans (p = 0.3), Poisson(1.5) counts (9
# values) and N(0, 1) rounded to even integers (5 values) took the loss from -0.05 to -1.2e4,
# -133 and -1.7e4, still falling; N(0, 1) rounded to integers (7 values) and uniform integers
# 0..9 settled at -1.0, as the continuous column does. So fewer values do not always run away
# (a spacing below about the column's spread held, here), but a fit on them can; 30 uniform
# integers and N(0, 12²) rounded to integers trained as continuous data.
_DISCRETE_VALUES = 20
_ROWS_PER_VALUE = 4
# Rows (evenly spaced) whose values pick the candidates, whose values are then counted on
# every row: a column with more than `_DISCRETE_VALUES` values among them has more in all.
_SAMPLED_ROWS = 4096
# Of those, the first rows that rule out most columns before the rest are sorted (a sort of
# all 4096 rows took 0.25-0.4 s at dim 1000, against 0.47 s for a one-epoch SSM fit there).
_FIRST_ROWS = 64


def sample_rows(n: int) -> slice:
    """The rows (of ``n``) whose values pick the :func:`candidate_columns`: at most
    ``_SAMPLED_ROWS``, evenly spaced."""
    return slice(None, None, max(1, -(-n // _SAMPLED_ROWS)))


def candidate_columns(sample: NDArray[Any], constant: NDArray[Any]) -> list[NDArray[Any]]:
    """Per column of the rows ``sample``, its distinct values if it has at most
    ``_DISCRETE_VALUES`` of them there, else an empty array (``constant`` columns, warned of
    on their own, are left out): the columns that may be discrete, whose other values
    :func:`values_outside` then looks for on every row. The sample can alias with a row
    order that repeats (a 256 × 256 grid's column showed 16 of its 256 values at every 16th
    row), so it only picks."""
    d = sample.shape[1]
    picked = [np.empty(0, sample.dtype)] * d
    head = np.sort(sample[:_FIRST_ROWS], axis=0)
    few = 1 + np.count_nonzero(head[1:] != head[:-1], axis=0) <= _DISCRETE_VALUES
    for j in np.flatnonzero(few & ~np.asarray(constant, dtype=bool)):
        values = np.unique(sample[:, j])
        if values.size <= _DISCRETE_VALUES:  # one value too: the column is not constant
            picked[j] = values
    return picked


def values_outside(block: NDArray[Any], candidates: list[NDArray[Any]]) -> list[NDArray[Any]]:
    """Per candidate column (of :func:`candidate_columns`), the distinct values of ``block``'s
    rows that its sample did not hold, at most ``_DISCRETE_VALUES`` of them (more, and the
    column is not discrete whatever the other blocks hold)."""
    out = []
    for j, values in enumerate(candidates):
        if values.size == 0:
            out.append(values)
            continue
        column = block[:, j]
        other = np.unique(column[~np.isin(column, values)])
        out.append(other[: _DISCRETE_VALUES + 1])
    return out


def discrete_columns(
    candidates: list[NDArray[Any]], outside: list[list[NDArray[Any]]], n: int
) -> list[tuple[int, int]]:
    """``(column, number of values)`` for each column of ``n`` rows that takes 2 to
    ``_DISCRETE_VALUES`` values, ``_ROWS_PER_VALUE`` rows per value on average: the
    ``candidates``' values and those :func:`values_outside` found in each block of the rows
    (``outside``: one list per block)."""
    found = []
    for j, values in enumerate(candidates):
        if values.size == 0:
            continue
        more = np.unique(np.concatenate([block[j] for block in outside]))
        k = values.size + more.size
        if k <= _DISCRETE_VALUES and n >= _ROWS_PER_VALUE * k:
            found.append((j, k))
    return found


def _warn_discrete(discrete: list[tuple[int, int]], objective: str, name: str) -> None:
    """Warns of the :func:`discrete_columns`: along such a column (Booleans,
    counts, one-hot codes) the data are point masses, which the ISM and SSM losses can fit
    without bound, as for a column of one value."""
    if not discrete:
        return
    columns = [j for j, _ in discrete]
    counts = [str(k) for _, k in discrete]
    if len(discrete) == 1:
        which, it = f"column {columns[0]} of {name} takes only {counts[0]}", "it"
    else:
        values = ", ".join(counts[:-1]) + " and " + counts[-1]
        which, it = f"columns {columns} of {name} take only {values}", "them"
    warn(
        f"{which} distinct values: along {it} the data are point masses, which "
        f"{objective.upper()} may fit without bound (its loss falls on and on as the model's "
        f"curvature at those values grows, and the density degenerates); drop {it}, add "
        "noise of about the spacing of the values, or use objective='dsm' with noise_std "
        "about that spacing"
    )


def adopt(
    model: EnergyMLP,
    before: tuple[_core.Model, _core.Model | None],
    trained: _core.Model | None,
    affine: _Affine,
) -> None:
    """Puts the trained network (in ``affine``'s coordinates) in the model, in the user's;
    ``None``, where no step changed the parameters (a divergence or Ctrl-C before the first
    update, or a divergence that restored them), puts the model back as it was (``before``:
    its handle and freshness), exactly, whatever a callback saw in between."""
    if trained is None:
        model._m, model._drawn = before
    else:
        model._replace(affine.to_user(trained))


def _trained(trainer: _core.Trainer, start: _core.Model) -> _core.Model | None:
    """The trainer's network, or None if its parameters are still ``start``'s."""
    now = trainer.model()
    same = zip(now.params(), start.params(), strict=True)
    return None if all(np.array_equal(a, b) for a, b in same) else now


def _progress_stream(show: bool | None) -> TextIO | None:
    """The stream of the progress bar: ``sys.stderr`` if ``show`` (``None``: if it is a
    terminal), else ``None``. Without a usable stderr (``None`` under pythonw and some
    services, or a closed file) there is no bar: a fit must not fail for want of one."""
    stream = sys.stderr
    if show is False or stream is None or getattr(stream, "closed", False):
        return None
    if show:
        return stream
    try:
        return stream if stream.isatty() else None
    except (AttributeError, ValueError, OSError):
        # A replacement stream without isatty, or one whose isatty fails: not a terminal.
        return None


def _stops(answer: Any) -> bool:
    """Whether a callback's answer asks to stop: ``False``, numpy's included (``None`` and
    anything else go on)."""
    return answer is False or (isinstance(answer, np.bool_) and not answer)


Arr = NDArray[Any]


def _n_held_out(frac: float, n: int) -> int:
    """Rows of ``n`` that ``validation=frac`` holds out: at least one."""
    return max(1, round(frac * n))


def _split(
    X: Arr, target: Arr | None, validation: Any, dim: int, dtype: str, seed: int
) -> tuple[Arr, Arr | None, Arr | None, Arr | None]:
    """Training and validation rows (and targets) from the ``validation`` argument."""
    if validation is None:
        return X, target, None, None
    if isinstance(validation, (float, int, np.floating, np.integer)) and not isinstance(
        validation, bool
    ):
        frac = as_float(validation, "validation")  # an int past the float range: ValueError
        if frac == 0:
            return X, target, None, None
        if not 0 < frac < 1:
            # A row count is what scikit-learn's train_test_split reads from an int.
            rows = "1 row" if validation == 1 else f"{validation} rows"
            hint = (
                f" (not a row count: for {rows}, validation={validation}/len(X))"
                if isinstance(validation, (int, np.integer)) and validation >= 1
                else ""
            )
            raise ValueError(
                "validation must be a fraction in [0, 1), an array X_val or None, got "
                f"{validation}{hint}"
            )
        n = X.shape[0]
        n_val = _n_held_out(frac, n)
        if n - n_val < 1:
            # Of one row, any fraction holds that row out: a smaller one cannot help.
            remedy = "validation=None or more rows" if n == 1 else "more rows or a smaller fraction"
            raise ValueError(f"validation={frac} leaves no training rows out of {n}: pass {remedy}")
        # The split is drawn from the fit's seed, apart from the engine's streams.
        order = np.random.default_rng([seed, 0x5EED]).permutation(n)
        tr, va = np.sort(order[n_val:]), np.sort(order[:n_val])
        if target is None:
            return X[tr], None, X[va], None
        return X[tr], target[tr], X[va], target[va]
    if target is not None:
        if not (isinstance(validation, tuple) and len(validation) == 2):
            raise ValueError(
                "with objective 'esm', validation must be a fraction, None or a pair "
                f"(X_val, target_val), got {_described(validation)}"
            )
        X_val = as_batch(validation[0], dim, dtype, "X_val")
        t_val = as_batch(validation[1], dim, dtype, "target_val")
        if t_val.shape != X_val.shape:
            raise ValueError(
                f"target_val must have the shape of X_val, {X_val.shape}, got {t_val.shape}"
            )
        return X, target, X_val, t_val
    # Any other number (Decimal, Fraction, complex) is refused as every numeric argument of
    # the library refuses it, not read as a 0-d array of rows.
    if isinstance(validation, (bool, np.bool_, str, bytes, numbers.Number)):
        raise TypeError(
            "validation must be a fraction in [0, 1), an array X_val or None, got "
            f"{typed(validation)}"
        )
    if isinstance(validation, tuple) and len(validation) == 2:
        raise ValueError(
            "validation=(X_val, target_val) is for objective 'esm'; for this objective pass "
            "X_val alone"
        )
    if isinstance(validation, tuple) and any(_is_2d(v) for v in validation):
        # Not rows but arrays in a tuple: numpy would stack them into a 3-D array, and the
        # shape error would describe an array the caller never built.
        raise ValueError(f"validation must be an array X_val, got {_described(validation)}")
    return X, None, as_batch(validation, dim, dtype, "X_val"), None


def _is_2d(v: Any) -> bool:
    return getattr(v, "ndim", None) == 2


def _described(validation: Any) -> str:
    if isinstance(validation, tuple):
        n = len(validation)
        return f"a tuple of {n} {'item' if n == 1 else 'items'}"
    shape = getattr(validation, "shape", None)
    return f"an array of shape {shape}" if shape is not None else type(validation).__name__
