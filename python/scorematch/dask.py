"""Energy models on Dask: scoring, sampling and data-parallel training beyond one machine.

Needs the optional extra: ``pip install "scorematch[dask]"`` (dask and dask.distributed).
Every function takes a :class:`~scorematch.EnergyMLP` and Dask arrays, builds an ordinary
Dask graph and runs on whatever scheduler is active: the threaded scheduler by default, or
a ``dask.distributed`` cluster once a :class:`distributed.Client` exists::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")       # or Client(LocalCluster(n_workers=4))
    E = scorematch.dask.energy(model, X).compute()

The model enters each graph once, as one task that every block depends on, so a cluster
ships it to each worker once, not once per block. Each worker runs the Rust engine on its
blocks with all the threads of :func:`scorematch.set_num_threads`; give workers one Dask
thread each (``LocalCluster(threads_per_worker=1)``) and let the engine use the cores.

What each function reproduces:

- :func:`energy`, :func:`score`, :func:`hessian_trace`: row for row, bit-identical to the
  model's own methods (each row's result does not depend on the batch it is in).
- :func:`sample`: bit-identical to ``model.sample(n_samples, seed=seed, ...).samples``
  (and ``chain_indices``, with ``on_divergence="mask"``); block ``[a, b)`` runs chains
  ``a..b`` with ``first_chain=a``.
- :func:`fit`: the minibatch schedule, random objectives and optimizer steps of
  ``model.fit(X, validation=None, ...)`` on the same rows; only the order in which each
  minibatch's gradient is summed differs (per block, then over blocks), so parameters agree
  to floating-point summation error (see :func:`fit`).

Inputs are checked as the in-memory methods check them, with their errors: a masked array is
a ``TypeError`` (when the graph is built if the Dask array's meta is masked); a NaN or Inf, or
a value too large for a float32 model, is a ``ValueError`` naming such a row by its row in X.
:func:`fit` reads every block before its first step and names the first such row of X.
:func:`energy`, :func:`score`, :func:`hessian_trace` and :func:`sample` (its ``init``) check
each block as it runs, at ``compute()``, and name that block's first such row, so that a slice
of their result computes only the blocks under it; Dask raises whichever failing block it ran
first, and past X's first block the message says that an earlier block may hold such a row
too. A Dask DataFrame stays lazy, one block per partition, its columns checked from its
dtypes (a partition's place in X is not known to its task: its rows are counted within it).
"""

from __future__ import annotations

import copy
import inspect
import math
import numbers
import time
from collections.abc import Callable, Sequence
from functools import partial
from operator import getitem
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, NoReturn, TypeVar, cast, overload

import numpy as np
from numpy.typing import NDArray

try:
    import dask
    import dask.array as da
    from dask.base import compute, get_scheduler, is_dask_collection, tokenize
    from dask.delayed import delayed
    from dask.highlevelgraph import HighLevelGraph
    from dask.utils import parse_bytes
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError('scorematch.dask needs dask: pip install "scorematch[dask]"') from err

from scorematch import _core, sampling
from scorematch._validate import (
    FLOATS,
    _narrowed,
    as_choice,
    as_int,
    as_nonnegative,
    as_positive,
    as_real_array,
    as_seed,
    check_batch_shape,
    check_finite_rows,
    convert_checked,
    described,
    reject_masked,
    typed,
)
from scorematch.training import (
    _OPTIMIZERS,
    FitHistory,
    TrainingDivergedError,
    _Affine,
    _stops,
    adopt,
    candidate_columns,
    check_loop_args,
    check_standardize,
    column_stats,
    discrete_columns,
    sample_rows,
    values_outside,
    warn_point_masses,
)

if TYPE_CHECKING:
    from dask.delayed import Delayed

    from scorematch.model import EnergyMLP

__all__ = ["energy", "fit", "hessian_trace", "sample", "score"]

Array = NDArray[Any]
_T = TypeVar("_T")
_OBJECTIVES = ("ism", "ssm", "dsm")


# -- shared ------------------------------------------------------------------------------


def _check_model(model: Any) -> None:
    from scorematch.model import EnergyMLP

    if not isinstance(model, EnergyMLP):
        raise TypeError(f"model must be a scorematch.EnergyMLP, got {type(model).__name__}")


def _shared(model: EnergyMLP) -> Delayed:
    """The model as one graph node: workers fetch it once and reuse it for every block."""
    # pure=True names the node by the model's contents: the same parameters give the same
    # key, so graphs built from one model share (and cache) it. The node holds a copy (its
    # core handle is immutable): a later fit or set_params of `model` must change neither
    # the value under that key nor what an array built earlier computes.
    return delayed(copy.copy(model), pure=True, traverse=False)


def _rows(X: Any, model: EnergyMLP, name: str = "X") -> da.Array:
    """X as a Dask array of floats (or of integers converted from a list), shape (n, dim), one
    chunk across the columns: its values as given, to be converted block by block to the
    model's dtype by the task that reads them (see :func:`_converted`)."""
    _check_model(model)
    # First, as the in-memory methods: a masked array would be read without its mask. A Dask
    # array's meta says whether its blocks are masked, without computing any; masked blocks
    # behind a plain meta are refused by the task that converts them (_converted).
    reject_masked(X._meta if isinstance(X, da.Array) else X, name)
    # As the in-memory methods: arrays must hold floats, array-likes of ints are converted.
    exact = isinstance(X, (da.Array, np.ndarray))
    if _is_dask_frame(X):
        X = _frame_rows(X, name)
    elif not isinstance(X, da.Array):
        if getattr(getattr(X, "dtype", None), "kind", "O") == "O":
            # Lists, scalars, object arrays: converted as the in-memory methods convert them
            # (refused there with their messages), not left to Dask, which cannot chunk
            # objects (a NotImplementedError about auto rechunking).
            X = as_real_array(X, name, FLOATS, batch=True, whole=True)
        X = da.asarray(X)
    check_batch_shape(X.shape, model.dim, name)
    if X.dtype.kind != "f" and (exact or X.dtype.kind not in "iu"):
        hint = (
            f"; convert it explicitly, e.g. {name}.astype(np.float64)"
            if X.dtype.kind in "iu"
            else ""
        )
        raise TypeError(f"{name} must be {FLOATS}, got dtype {X.dtype}{hint}")
    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    return X


def _is_dask_frame(X: Any) -> bool:
    """Whether X is a Dask DataFrame; duck-typed, not to import dask.dataframe (and pandas)
    for every call. A Delayed answers any attribute: its class is asked for the methods. The
    legacy DataFrame (Dask without dask-expr) sets ``_meta`` on each object, not its class."""
    kind = type(X)
    return (
        is_dask_collection(X)
        and not isinstance(X, da.Array)
        and all(hasattr(kind, a) for a in ("map_partitions", "dtypes"))
        and hasattr(X, "_meta")
        and X.ndim == 2
    )


def _frame_rows(df: Any, name: str) -> da.Array:
    """The rows of a Dask DataFrame as a Dask array, lazily, one block per partition (of
    unknown size: the partitions are not computed to count their rows).

    Each partition is read as the in-memory methods read a pandas DataFrame; its columns are
    checked as they check one, on the DataFrame's meta (an empty frame of its dtypes), so
    that a column of booleans, dates or strings is refused by name before anything runs."""
    meta = as_real_array(df._meta, name, FLOATS, batch=True)
    return cast(
        da.Array,
        df.map_partitions(_partition_rows, name, meta=np.empty((0, meta.shape[1]), meta.dtype)),
    )


def _partition_rows(part: Any, name: str) -> Array:
    return as_real_array(part, name, FLOATS, batch=True)


# -- bad rows ----------------------------------------------------------------------------
#
# A bad row (NaN or Inf, a value too large for the model's dtype, a mask) is found by the
# task of its block, which reports it as the in-memory methods would, by its row in X.
#
# The per-row functions and sample raise in that task: each block stays independent, so a
# slice of the result computes only the blocks under it. Dask then raises whichever failing
# block it ran first, which need not hold X's first bad row (with blocks of 10 rows and NaN at
# rows 5 and 350 it named row 350); the message says so when the block is not X's first. To
# name X's first bad row whatever the order, each block would wait for the blocks before it:
# that was tried (a chain of per-block reports, as fit's below but in groups of 8 blocks) and
# made `energy(X)[-5:]` compute every block of X, 10-40 times the time of the last one alone.
#
# fit reads every block before its first step, so there X's first fault is named whatever
# the order: each block's task returns its rows with an "info" (its row count and its fault),
# one task merges the infos of all blocks, and a second task per block releases its rows, or
# raises X's fault by its row in X, so that every block that raises raises the same error
# (even where X's chunk sizes are unknown). No data is read twice: beyond the engine's own
# checks, a block is looked at again only when it failed.


class _Fault(NamedTuple):
    """The first bad row of a block, counted from the start of what its info covers, raised by
    :func:`_raise` as the in-memory methods would."""

    row: int
    kind: str  # "masked", "too large" or "not finite"
    evidence: Array  # the row itself; for "masked", an empty masked array
    name: str
    dtype: str


# The rows of a block or of consecutive blocks, and the first fault among them.
_Info = tuple[int, "_Fault | None"]


def _raise(fault: _Fault) -> NoReturn:
    """Raises the in-memory methods' error for ``fault``, made from its own evidence."""
    if fault.kind == "masked":
        reject_masked(fault.evidence, fault.name)
    elif fault.kind == "too large":
        convert_checked(fault.evidence, fault.dtype, fault.name, fault.row)
    else:
        check_finite_rows(fault.evidence, fault.name, fault.row)
    raise AssertionError(f"{fault.kind} row {fault.row} of {fault.name} raised nothing")


def _not_finite(x: Array, name: str, dtype: str) -> _Fault | None:
    finite = np.isfinite(x).all(axis=1)
    if finite.all():
        return None
    row = int(np.argmin(finite))
    return _Fault(row, "not finite", x[row : row + 1], name, dtype)


def _converted(block: Any, name: str, dtype: str) -> tuple[Array, _Fault | None]:
    """The block in ``dtype`` as the in-memory methods convert it, and its fault: the whole
    block if it is masked, else the first row holding a value too large for ``dtype`` (a NaN
    or Inf is found later, in the converted rows: the in-memory methods convert first)."""
    if isinstance(block, np.ma.MaskedArray):
        # np.asarray would drop the mask, and the values under it would be read.
        return block, _Fault(0, "masked", block[:0], name, dtype)
    arr = np.asarray(block)
    out, over = _narrowed(arr, dtype)
    if over is None:
        return out, None
    row = int(np.argmax(over.any(axis=1)))
    return out, _Fault(row, "too large", arr[row : row + 1], name, dtype)


# The order in which the in-memory methods find faults: a mask refuses the whole array, the
# conversion to the model's dtype comes next, NaN and Inf last.
_FAULT_ORDER = {"masked": 0, "too large": 1, "not finite": 2}


def _merged(*infos: _Info) -> _Info:
    """The info of consecutive spans of rows: their count, and the fault the in-memory
    methods would raise first (the first by row of the kind they look for first), counted
    from the start of the first span."""
    count, first = 0, None
    for n, fault in infos:
        if fault is not None:
            fault = fault._replace(row=count + fault.row)
            if first is None or _FAULT_ORDER[fault.kind] < _FAULT_ORDER[first.kind]:
                first = fault
        count += n
    return count, first


def _info(ran: tuple[Any, _Info]) -> _Info:
    # A task of its own: the merge then reads a few bytes per block, not the block's result.
    return ran[1]


def _release(ran: tuple[Any, _Info], whole: _Info) -> Any:
    """The rows of a block, unless X has a fault (``whole``): then X's, by its row in X."""
    if whole[1] is not None:
        _raise(whole[1])
    return ran[0]


def _gated(
    X: da.Array, run: Callable[..., tuple[Any, _Info]], model: EnergyMLP, token: str
) -> da.Array:
    """The results of ``run(block, model)`` on the row blocks of X, each returning ``(rows,
    info)`` with rows shaped like the block, as a Dask array chunked like X that raises X's
    fault as described above: every block waits for the infos of all blocks, so every block
    that raises raises the same error."""
    node = _shared(model)
    name = f"{token}-{tokenize(X.name, node.key, run)}"
    ran, info, whole = f"{name}-run", f"{name}-info", (f"{name}-whole", 0)
    layer: dict[Any, Any] = {}
    blocks = range(len(X.chunks[0]))
    for b in blocks:
        layer[(ran, b)] = (run, (X.name, b, 0), node.key)
        layer[(info, b)] = (_info, (ran, b))
        layer[(name, b, 0)] = (_release, (ran, b), whole)
    layer[whole] = (_merged, *((info, b) for b in blocks))
    # Typed for collections of a protocol Dask's own Array and Delayed do not declare.
    graph = HighLevelGraph.from_collections(name, layer, dependencies=cast(Any, [X, node]))
    return da.Array(graph, name, X.chunks, meta=np.empty((0, 0), model.dtype))


def _run_checked(
    call: Callable[[Array], _T], block: Any, name: str, dtype: str, start: int | None
) -> _T:
    """``call`` of the block converted to ``dtype``, or the block's fault raised by
    :func:`_raise_in_block` (the block starts at row ``start``): the engine names a NaN/Inf
    row by its row in the block, in its message alone, so it is found here again, to be named
    by its row in the whole array. Any other error of ``call`` goes up as it is."""
    x, fault = _converted(block, name, dtype)
    if fault is None:
        try:
            return call(x)
        except ValueError:
            fault = _not_finite(x, name, dtype)
            if fault is None:
                raise
    _raise_in_block(fault, block, start)


def _block_start(block_info: Any) -> int | None:
    """The row of the whole array at which the block of ``map_blocks``' first argument
    starts; ``None`` when its chunk sizes are unknown."""
    # Older Dask passes an empty ndarray while it infers the output's meta: not a dict.
    if not isinstance(block_info, dict) or 0 not in block_info:
        return None
    start = block_info[0]["array-location"][0][0]
    return int(start) if math.isfinite(start) else None


def _raise_in_block(fault: _Fault, block: Any, start: int | None) -> NoReturn:
    """Raises ``fault``, found in ``block``, which starts at row ``start`` of its array
    (``None``: its place is not known, and the message says so), as the in-memory methods
    would; past the array's first block, the message adds that an earlier block may hold a
    bad row too (see the note on bad rows above)."""
    if fault.kind == "masked":
        _raise(fault)
    try:
        if start is not None:
            _raise(fault._replace(row=start + fault.row))
        # Numbered from None, the checks name row i "of a block whose place is not known":
        # given the rows up to the fault, i is the fault's row in the block.
        rows = np.asarray(block)[: fault.row + 1]
        if fault.kind == "too large":
            convert_checked(rows, fault.dtype, fault.name, None)
        check_finite_rows(rows, fault.name, None)
        raise AssertionError(f"{fault.kind} row {fault.row} of {fault.name} raised nothing")
    except ValueError as err:
        _reraise_past_the_first_block(err, start, fault.name)


def _reraise_past_the_first_block(err: ValueError, start: int | None, name: str) -> NoReturn:
    """Raises ``err``, found in a block that starts at row ``start`` of ``name``; past the
    first block (or where its place is unknown), saying that an earlier block may hold such a
    row too (see the note on bad rows above)."""
    if start == 0:
        raise err
    raise ValueError(
        f"{err} (blocks are checked as they run: an earlier block of {name} may hold such a "
        "row too)"
    ) from None


def _call(method: str) -> Callable[..., Any]:
    def run(block: Any, model: EnergyMLP, block_info: Any = None) -> Any:
        start = _block_start(block_info)
        return _run_checked(getattr(model, method), block, "X", str(model.dtype), start)

    # The tasks' name in Dask's dashboard and keys (`token=` means other things in the Dask
    # versions we support, and is deprecated in some).
    run.__name__ = f"scorematch-{method}"
    return run


def _per_row(model: EnergyMLP, X: Any, method: str) -> da.Array:
    """``model.<method>`` of every block of X: (n,) results, or (n, dim) for the score."""
    X = _rows(X, model)
    vector = method == "score"
    return da.map_blocks(
        _call(method),
        X,
        _shared(model),
        drop_axis=None if vector else 1,
        dtype=model.dtype,
        meta=np.empty((0, 0) if vector else (0,), model.dtype),
    )


def _checked_block(block: Any, model: EnergyMLP, name: str) -> tuple[Array | None, _Info]:
    """A block of training rows in the model's dtype, and its info (NaN and Inf included)."""
    dtype = str(model.dtype)
    x, fault = _converted(block, name, dtype)
    fault = fault or _not_finite(x, name, dtype)
    return (x if fault is None else None), (len(block), fault)


def _checked(X: Any, model: EnergyMLP, name: str) -> da.Array:
    """The rows of X in the model's dtype, as a Dask array that raises the first bad row of X
    (see above) when computed or persisted."""
    X = _rows(X, model, name)
    return _gated(X, partial(_checked_block, name=name), model, f"scorematch-{name}")


def energy(model: EnergyMLP, X: Any) -> da.Array:
    """Energies ``E(x)`` of the rows of a Dask array, as a Dask array.

    Parameters
    ----------
    model : EnergyMLP
    X : dask.array.Array, dask.dataframe.DataFrame or array_like, shape (n, dim)
        Any row chunking; column chunks are merged. Converted to the model's dtype. A Dask
        DataFrame stays lazy, a block per partition, its columns checked (from its dtypes)
        and each partition read as the in-memory methods read a pandas DataFrame.

    Returns
    -------
    dask.array.Array, shape (n,)
        Lazy; blocks follow X's row chunks. ``compute()`` equals ``model.energy(X)``.

    Raises
    ------
    ValueError
        At ``compute()``, for a NaN or Inf in X, or a value too large for a float32 model:
        the in-memory method's error, naming the first such row of the block that raised by
        its row in X (within the block where X's chunk sizes are unknown); see the module's
        notes on inputs.
    """
    return _per_row(model, X, "energy")


def score(model: EnergyMLP, X: Any) -> da.Array:
    """Scores ``s(x) = -∇ₓE(x)`` of the rows of a Dask array, as a Dask array.

    Parameters
    ----------
    model : EnergyMLP
    X : dask.array.Array, dask.dataframe.DataFrame or array_like, shape (n, dim)

    Returns
    -------
    dask.array.Array, shape (n, dim)
        Lazy; ``compute()`` equals ``model.score(X)``.

    Raises
    ------
    ValueError
        As :func:`energy`.
    """
    return _per_row(model, X, "score")


def hessian_trace(model: EnergyMLP, X: Any) -> da.Array:
    """Exact Hessian traces ``tr(∇ₓ s) = -ΔₓE`` of the rows of a Dask array.

    Parameters
    ----------
    model : EnergyMLP
    X : dask.array.Array, dask.dataframe.DataFrame or array_like, shape (n, dim)

    Returns
    -------
    dask.array.Array, shape (n,)
        Lazy; ``compute()`` equals ``model.hessian_trace(X)``.

    Raises
    ------
    ValueError
        As :func:`energy`.
    """
    return _per_row(model, X, "hessian_trace")


# -- sampling ----------------------------------------------------------------------------

# Options of EnergyMLP.sample that change the shape of the result or talk to the caller's
# terminal: they have no place in a block of a distributed array (on_divergence is
# sample's own argument).
_NOT_FOR_BLOCKS = ("return_trajectory", "progress", "first_chain")


_CHUNKS = "chunks must be an int >= 1, a sequence of ints summing to n_samples or 'auto'"


def _chains_per_block(chunks: Any, n: int) -> Any:
    """``chunks`` of :func:`sample`, checked: an int >= 1, a sequence of ints >= 0 that sum to
    ``n`` or a string (``"auto"``, or a size such as ``"64MiB"``), which Dask reads. Anything
    else is refused here, not by Dask's arithmetic on it (a ``ZeroDivisionError`` for 0.0, a
    ``TypeError`` about ``+`` for an object)."""
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, (bool, np.bool_)):
        return as_int(chunks, "chunks")
    if isinstance(chunks, str):
        try:
            da.core.normalize_chunks((chunks,), (1,), dtype=np.float64)
        except (ValueError, TypeError):
            raise ValueError(f"{_CHUNKS}, got {described(chunks)}") from None
        return chunks
    if isinstance(chunks, (list, tuple)) or (isinstance(chunks, np.ndarray) and chunks.ndim == 1):
        # No block sizes at all is no block of no chains, as Dask writes it: (0,).
        sizes = tuple(as_int(c, "every entry of chunks", 0) for c in chunks) or (0,)
        if sum(sizes) != n:
            raise ValueError(
                f"chunks must sum to n_samples ({n}), got {described(chunks)}, "
                f"which sums to {sum(sizes)}"
            )
        return sizes
    raise TypeError(f"{_CHUNKS}, got {described(chunks)}")


# Blocks of chains a sampling graph may have. Each is a task: at a million, building the
# graph takes some 15 seconds and 1.5 GB, and at ten million it fails for want of memory (an
# empty MemoryError after half a minute), so n_samples=10**12 in the default blocks of 4096
# is refused before any of that.
_MAX_BLOCKS = 2**20


def _row_chunks(chunks: Any, n: int, model: EnergyMLP) -> tuple[tuple[int, ...], ...]:
    """Dask's chunks of the (n, dim) samples for the checked ``chunks``; more than
    ``_MAX_BLOCKS`` blocks of equal size is a ``ValueError``."""
    size = chunks
    if isinstance(chunks, str):
        # The block size Dask picks for a byte size, from a shape too short to hold more than
        # one block of that size in a column but as long as any such block.
        limit = parse_bytes(dask.config.get("array.chunk-size") if chunks == "auto" else chunks)
        longest = min(n, limit // model.dtype.itemsize + 1)
        probe = da.core.normalize_chunks(
            (chunks, model.dim), (longest, model.dim), dtype=model.dtype
        )
        size = probe[0][0] if n else 1
    if isinstance(size, int):
        blocks = -(-n // size)
        if blocks > _MAX_BLOCKS:
            raise ValueError(
                f"n_samples={n} in blocks of {size} chains makes {blocks} blocks (Dask tasks), "
                f"more than {_MAX_BLOCKS}, whose graph alone would take gigabytes; pass larger "
                "chunks"
            )
    out: tuple[tuple[int, ...], ...] = da.core.normalize_chunks(
        (chunks, model.dim), (n, model.dim), dtype=model.dtype
    )
    return out


def _sample_block(
    model: EnergyMLP, seed: int, kwargs: dict[str, Any], block_info: dict[Any, Any] | None = None
) -> Array:
    assert block_info is not None
    start, stop = block_info[None]["array-location"][0]
    return _chains(model, stop - start, start, None, seed=seed, kwargs=kwargs)[0]


def _chains(
    model: EnergyMLP,
    n: int,
    start: int,
    init: Array | None,
    *,
    seed: int,
    kwargs: dict[str, Any],
    mask: bool = False,
) -> tuple[Array, Array]:
    """Chains ``start .. start + n - 1`` of a Dask sample: their final states and indices.
    With ``mask``, those that do not diverge (as ``on_divergence="mask"`` gives them in
    memory); else a divergence is raised with the block's range (the engine's count of
    diverged chains is the block's)."""
    if n == 0:  # a block of no chains
        return np.empty((0, model.dim), model.dtype), np.empty(0, np.int64)
    on_divergence: Literal["mask", "raise"] = "mask" if mask else "raise"
    try:
        res = model.sample(
            n, seed=seed, first_chain=start, init=init, on_divergence=on_divergence, **kwargs
        )
    except sampling.SamplingDivergedError as err:
        # The block's counts, as its message gives them.
        raise sampling._diverged(
            f"in chains {start} to {start + n - 1} (one block; the others run on their own and "
            f"may diverge too): {err}",
            err.n_diverged,
            err.n_chains,
            err.step,
        ) from None
    return res.samples, res.chain_indices


def _finite_chains(
    model: EnergyMLP, n: int, start: int, init: Any, *, seed: int, kwargs: dict[str, Any]
) -> tuple[Array, Array]:
    """:func:`_chains` with ``mask``; ``init`` is a block of :func:`sample`'s init, checked as
    :func:`_sample_block_from` checks it, or None."""
    run = partial(_chains, model, n, start, seed=seed, kwargs=kwargs, mask=True)
    if init is None:
        return run(None)
    return _run_checked(run, init, "init", str(model.dtype), start)


def _masked_graph(
    model: EnergyMLP,
    row_chunks: tuple[tuple[int, ...], ...],
    seed: int,
    kwargs: dict[str, Any],
    init: da.Array | None,
) -> tuple[da.Array, da.Array]:
    """:func:`sample` with ``on_divergence="mask"``: one task per block of chains returns the
    block's finite chains and their indices, and the two arrays read them from it (so that
    computing both together runs each block once). Three layers whatever the number of
    blocks: a collection per block made the graph, and its optimization, grow quadratically
    (2 000 blocks took 3.5 s to compute, against 0.4 s for the same blocks unmasked)."""
    node = _shared(model)
    sizes = row_chunks[0]
    starts = np.cumsum((0, *sizes[:-1])).tolist()
    x0 = None if init is None else init.rechunk(row_chunks)
    token = tokenize(node.key, sizes, seed, kwargs, None if x0 is None else x0.name)
    run = f"scorematch-sample-mask-{token}"
    chains = partial(_finite_chains, seed=seed, kwargs=kwargs)
    tasks: dict[Any, Any] = {
        (run, b): (chains, node.key, n, start, None if x0 is None else (x0.name, b, 0))
        for b, (n, start) in enumerate(zip(sizes, starts, strict=True))
    }
    # Typed for collections of a protocol Dask's own Array and Delayed do not declare.
    deps: Any = [node] if x0 is None else [node, x0]
    # Blocks of tuples, never computed as an array: the dependency of the two arrays below.
    runs = da.Array(
        HighLevelGraph.from_collections(run, tasks, dependencies=deps),
        run,
        chunks=((1,) * len(sizes),),
        meta=np.empty((0,), object),
    )
    unknown = (math.nan,) * len(sizes)
    name = f"scorematch-sample-{token}"
    layer: dict[Any, Any] = {(name, b, 0): (getitem, (run, b), 0) for b in range(len(sizes))}
    samples = da.Array(
        HighLevelGraph.from_collections(name, layer, dependencies=cast(Any, [runs])),
        name,
        (unknown, (model.dim,)),
        meta=np.empty((0, 0), model.dtype),
    )
    name = f"scorematch-chain-indices-{token}"
    layer = {(name, b): (getitem, (run, b), 1) for b in range(len(sizes))}
    indices = da.Array(
        HighLevelGraph.from_collections(name, layer, dependencies=cast(Any, [runs])),
        name,
        (unknown,),
        meta=np.empty(0, np.int64),
    )
    return samples, indices


def _sample_block_from(
    init: Any, model: EnergyMLP, seed: int, kwargs: dict[str, Any], block_info: Any = None
) -> Array:
    """The chains ``start, start + 1, ...`` of :func:`sample` from the rows of a block of
    ``init`` that starts at row ``start``; a bad row of ``init`` raises as in memory, by its
    row in ``init`` (see the note on bad rows)."""
    start = _block_start(block_info)
    assert start is not None  # init's chunks are made known before the graph is built

    def run(x: Array) -> Array:
        return _chains(model, len(x), start, x, seed=seed, kwargs=kwargs)[0]

    return _run_checked(run, init, "init", str(model.dtype), start)


@overload
def sample(
    model: EnergyMLP,
    n_samples: int,
    *,
    chunks: int | Sequence[int] | str = ...,
    seed: int = ...,
    init: Any = ...,
    on_divergence: Literal["raise"] = ...,
    **sample_kwargs: Any,
) -> da.Array: ...


@overload
def sample(
    model: EnergyMLP,
    n_samples: int,
    *,
    chunks: int | Sequence[int] | str = ...,
    seed: int = ...,
    init: Any = ...,
    on_divergence: Literal["mask"],
    **sample_kwargs: Any,
) -> tuple[da.Array, da.Array]: ...


@overload
def sample(
    model: EnergyMLP,
    n_samples: int,
    *,
    chunks: int | Sequence[int] | str = ...,
    seed: int = ...,
    init: Any = ...,
    on_divergence: str = ...,
    **sample_kwargs: Any,
) -> da.Array | tuple[da.Array, da.Array]: ...


def sample(
    model: EnergyMLP,
    n_samples: int,
    *,
    chunks: int | Sequence[int] | str = 4096,
    seed: int = 0,
    init: Any = None,
    on_divergence: str = "raise",
    **sample_kwargs: Any,
) -> da.Array | tuple[da.Array, da.Array]:
    """Langevin samples of ``model`` as a Dask array, one block of chains per task.

    The Langevin step is the library's ``x ← x + (ε/2)·s(x) + √ε·z`` with
    ``step_size = ε``. Chain ``i`` draws from the random stream ``(seed, i)`` wherever it
    runs, so the result is bit-identical to
    ``model.sample(n_samples, seed=seed, init=init, **sample_kwargs).samples`` whatever the
    chunking and the cluster.

    Parameters
    ----------
    model : EnergyMLP
    n_samples : int
        Number of chains (≥ 0; 0 gives an empty array).
    chunks : int, sequence of int or "auto", default 4096
        Chains per block (as Dask's ``chunks`` for the first axis; ``"auto"`` sizes blocks
        by Dask's ``array.chunk-size`` setting). At most 2**20 blocks: more is a
        ``ValueError`` (each block is a task, and such a graph alone takes gigabytes).
    seed : int, default 0
    init : dask.array.Array, dask.dataframe.DataFrame or array_like, optional
        Starting points, shape (n_samples, dim), rechunked to the blocks; by default N(0, I)
        from each chain's stream. Its values are checked as the blocks run, not when the
        array is built (it may be lazy too, and reading it twice would cost a second
        computation): a NaN or Inf, or a value too large for a float32 model, raises at
        ``compute()`` the error of :meth:`scorematch.EnergyMLP.sample`, naming the first
        such row of the block that raised by its row in ``init`` (see the module's notes on
        inputs). An ``init`` whose chunk sizes are unknown (boolean indexing, a
        DataFrame's partitions) is persisted when the array is built, to learn them, as
        :func:`fit` persists X.
    on_divergence : {"raise", "mask"}, default "raise"
        As :meth:`scorematch.EnergyMLP.sample`'s: a diverging chain raises at
        ``compute()``, or ``"mask"`` keeps the other chains and returns their indices too.
    **sample_kwargs
        Any other option of :meth:`scorematch.EnergyMLP.sample` (``n_steps``,
        ``step_size``, ``method``, ``burn_in``, ...), except those that change the result's
        shape or report to a terminal: ``return_trajectory``, ``progress`` and
        ``first_chain``.

    Returns
    -------
    dask.array.Array, shape (n_samples, dim)
        With ``on_divergence="raise"``. Lazy; a diverging chain raises
        :class:`scorematch.SamplingDivergedError` at ``compute()``, naming the block of
        chains that raised it (blocks run on their own: others may hold diverging chains
        too); its ``n_diverged``, ``n_chains`` and ``step`` are that block's.
    (samples, chain_indices) : tuple of dask.array.Array, shapes (k, dim) and (k,)
        With ``on_divergence="mask"``: the chains that did not diverge, in order, and their
        indices (int64), as ``model.sample(..., on_divergence="mask")`` gives
        ``samples`` and ``chain_indices``. ``k`` is known only once computed (the arrays'
        chunk sizes are NaN). Both read the same task per block of chains: compute them
        together (``dask.compute(samples, chain_indices)``), or the chains run twice.

    Raises
    ------
    ValueError
        For a bad option value, as :meth:`scorematch.EnergyMLP.sample`, or an ``init`` of
        the wrong shape; checked when the graph is built, not at ``compute()``.
    TypeError
        For an option of the wrong type, as :meth:`scorematch.EnergyMLP.sample`, or one
        this function does not take: ``return_trajectory``, ``progress``,
        ``first_chain``, or a name ``EnergyMLP.sample`` does not know.
    """
    _check_model(model)
    n = as_int(n_samples, "n_samples", 0)
    seed = as_seed(seed)
    bad = sorted(set(sample_kwargs) & set(_NOT_FOR_BLOCKS))
    if bad:
        raise TypeError(f"scorematch.dask.sample does not take {', '.join(bad)}")
    row_chunks = _row_chunks(_chains_per_block(chunks, n), n, model)
    # Every option is checked here too, as model.sample checks it, so that a bad one is an
    # error when the graph is built rather than at compute().
    options = set(inspect.signature(sampling._prepare).parameters) - {"model", "n_samples"}
    unknown = sorted(set(sample_kwargs) - options)
    if unknown:
        raise TypeError(f"scorematch.dask.sample got an unexpected keyword argument {unknown[0]!r}")
    _core.check_sample_config(
        # Checked there, with EnergyMLP.sample's message ("must be 'raise' or 'mask'").
        sampling._prepare(
            model, n, seed=seed, on_divergence=cast(Any, on_divergence), **sample_kwargs
        )
    )
    mask = on_divergence == "mask"
    meta = np.empty((0, 0), model.dtype)
    if init is None:
        if mask:
            return _masked_graph(model, row_chunks, seed, sample_kwargs, None)
        return da.map_blocks(
            _sample_block,
            _shared(model),
            seed,
            sample_kwargs,
            chunks=row_chunks,
            dtype=model.dtype,
            meta=meta,
        )
    x0 = _rows(init, model, "init")
    if np.isnan(x0.shape[0]):
        # Unknown chunk sizes (boolean indexing, a DataFrame's partitions): persisted to learn
        # them, as fit does, which computes init once (compute_chunk_sizes alone would compute
        # it again for the samples).
        x0 = x0.persist()
        x0.compute_chunk_sizes()
    if x0.shape[0] != n:
        raise ValueError(
            f"init must have shape ({n}, {model.dim}) (n_samples, dim), got {x0.shape}"
        )
    if mask:
        return _masked_graph(model, row_chunks, seed, sample_kwargs, x0)
    return da.map_blocks(
        _sample_block_from,
        x0.rechunk(row_chunks),
        _shared(model),
        seed,
        sample_kwargs,
        dtype=model.dtype,
        meta=meta,
    )


# -- training ----------------------------------------------------------------------------


def _part_loss_grad(
    model: EnergyMLP,
    block: Array,
    local: Array,
    keys: Array,
    objective: str,
    seed: int,
    noise_std: float | None,
    n_projections: int,
    projection: str,
    grad: bool,
) -> tuple[float, Array, int]:
    """Sum over the rows ``block[local]`` of the objective and, with ``grad``, of its gradient
    (flat, float64; without, an empty array, and no reverse pass), the rows drawing their
    random numbers from the streams ``keys``."""
    x, c = block[local], len(local)
    args: tuple[Any, ...] = ()
    row_keys: dict[str, Any] = {}
    loss_of: Callable[..., float]
    grad_of: Callable[..., tuple[float, list[Array]]]
    if objective == "ism":
        loss_of, grad_of = model.ism_loss, model.ism_loss_and_grad
    elif objective == "ssm":
        loss_of, grad_of = model.ssm_loss, model.ssm_loss_and_grad
        args, row_keys = (n_projections, seed, projection), {"row_keys": keys}
    else:
        assert noise_std is not None
        loss_of, grad_of = model.dsm_loss, model.dsm_loss_and_grad
        args, row_keys = (noise_std, seed), {"row_keys": keys}
    if not grad:
        return c * loss_of(x, *args, **row_keys), np.zeros(0), c
    loss, grads = grad_of(x, *args, **row_keys)
    flat = np.concatenate([g.ravel() for g in grads]).astype(np.float64)
    return c * loss, c * flat, c


def _tree_sum(parts: Sequence[tuple[float, Array, int]]) -> tuple[float, Array, int]:
    """Pairwise sum of (loss, grad, count) triples in block order: the same additions
    whichever workers computed them."""
    level = list(parts)
    while len(level) > 1:
        level = [
            (a[0] + b[0], a[1] + b[1], a[2] + b[2])
            for a, b in zip(level[::2], level[1::2], strict=False)
        ] + level[len(level) - len(level) % 2 :]
    return level[0]


def _active_client() -> Any:
    """The ``dask.distributed`` client behind Dask's active scheduler, or None."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is part of the extra
        return None
    owner = getattr(get_scheduler(), "__self__", None)
    return owner if isinstance(owner, Client) else None


def _group_loss_grad(
    model: EnergyMLP,
    blocks: list[Array],
    locals_: list[Array],
    keys: list[Array],
    *spec: Any,
) -> list[tuple[float, Array, int]]:
    """:func:`_part_loss_grad` for several blocks held by one worker, in one task."""
    return [
        _part_loss_grad(model, b, r, k, *spec)
        for b, r, k in zip(blocks, locals_, keys, strict=True)
    ]


class _Blocks:
    """A persisted Dask array cut into its row blocks, for gathering arbitrary rows.

    On a distributed cluster each step sends one task per worker, for all the blocks that
    worker holds (found with ``who_has`` once per epoch; a hint only, so a block that moved
    or was lost is fetched or recomputed by the scheduler as usual). With a local scheduler
    (threads, processes, synchronous) the persisted blocks are arrays in this process: each
    step calls the engine on them directly, which already uses every core, instead of paying
    Dask's per-task cost (about 10 ms a step). Either way the per-block sums are added in
    block order, so the result does not depend on where the blocks live.
    """

    def __init__(self, X: da.Array) -> None:
        self.client = _active_client()
        self.X = X.persist()
        if np.isnan(self.X.shape[0]):
            # Unknown chunk sizes (boolean indexing): read them from the persisted blocks.
            self.X.compute_chunk_sizes()
        self.parts = list(self.X.to_delayed().ravel())
        self.ends = np.cumsum(self.X.chunks[0])
        self.n = int(self.ends[-1]) if len(self.ends) else 0
        self.homes: dict[Any, list[int]] = {}
        self.local: list[Array] = []
        if self.client is None:
            self.local = [np.asarray(b) for b in compute(*self.parts)]
        else:
            from distributed import wait

            by_key = {f.key: f for f in self.client.futures_of(self.X)}
            self.futures = [by_key[p.key] for p in self.parts]
            wait(self.futures)
            for f in self.futures:
                if f.status == "error":
                    f.result()  # raises X's first bad row (every failed block raises it)
            self.regroup()

    def regroup(self) -> None:
        """Looks up which worker holds which block (distributed only)."""
        if self.client is None:
            return
        who = self.client.who_has(self.futures)
        self.homes = {}
        for b, f in enumerate(self.futures):
            where = who.get(f.key) or [None]
            self.homes.setdefault(min(where), []).append(b)

    def each(self, f: Callable[..., Any], *args: Any) -> list[Any]:
        """``f(block, *args)`` for every block, in block order: in this process with a local
        scheduler, else one task per block on the worker that holds it, so that only what
        ``f`` returns travels (keep it small)."""
        if self.client is None:
            return [f(b, *args) for b in self.local]
        home = {b: where for where, blocks in self.homes.items() for b in blocks}
        futures = [
            self.client.submit(
                f, part, *args, workers=None if home.get(b) is None else [home[b]], pure=False
            )
            for b, part in enumerate(self.futures)
        ]
        return list(self.client.gather(futures))

    def loss_grad(
        self,
        model: EnergyMLP,
        rows: Array,
        keys: Array,
        objective: str,
        seed: int,
        noise_std: float | None,
        n_projections: int,
        projection: str,
        grad: bool = True,
    ) -> tuple[float, Array, int]:
        """Sums over ``rows`` (global indices) of the loss and, with ``grad``, its gradient
        (else an empty array), row ``rows[j]`` keyed ``keys[j]``, summed over blocks in
        block order.

        The model goes inline in each task rather than as a graph node of its own: it is a
        few kilobytes, and a shared node costs every step an extra scheduler round trip."""
        block_of = np.searchsorted(self.ends, rows, side="right")
        order = np.argsort(block_of, kind="stable")
        bounds = np.searchsorted(block_of[order], np.arange(len(self.parts) + 1))
        share: dict[int, tuple[Array, Array]] = {}
        for b in range(len(self.parts)):
            sel = order[bounds[b] : bounds[b + 1]]
            if sel.size:
                start = self.ends[b - 1] if b else 0
                share[b] = (rows[sel] - start, keys[sel].astype(np.uint64))
        spec = (objective, seed, noise_std, n_projections, projection, grad)
        if self.client is None:
            return _tree_sum(
                [
                    _part_loss_grad(model, self.local[b], rows_b, keys_b, *spec)
                    for b, (rows_b, keys_b) in share.items()
                ]
            )
        submitted = []
        for where, blocks in self.homes.items():
            mine = [b for b in blocks if b in share]
            if not mine:
                continue
            future = self.client.submit(
                _group_loss_grad,
                model,
                [self.futures[b] for b in mine],
                [share[b][0] for b in mine],
                [share[b][1] for b in mine],
                *spec,
                workers=None if where is None else [where],
                # distributed refuses allow_other_workers without workers.
                allow_other_workers=where is not None,
                pure=False,
            )
            submitted.append((mine, future))
        results = self.client.gather([f for _, f in submitted])
        per_block = {
            b: r
            for (mine, _), rs in zip(submitted, results, strict=True)
            for b, r in zip(mine, rs, strict=True)
        }
        return _tree_sum([per_block[b] for b in sorted(per_block)])


def _flat(params: list[Array], dtype: np.dtype[Any]) -> Array:
    return np.concatenate([np.asarray(p, dtype=dtype).ravel() for p in params])


def _unflat(flat: Array, like: list[Array]) -> list[Array]:
    out, i = [], 0
    for p in like:
        out.append(flat[i : i + p.size].reshape(p.shape).copy())
        i += p.size
    return out


def fit(
    model: EnergyMLP,
    X: Any,
    *,
    objective: str = "ism",
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    validation: Any = None,
    patience: int | None = None,
    seed: int = 0,
    callback: Callable[[int, float, float | None], Any] | None = None,
    noise_std: float | None = None,
    n_projections: int = 1,
    projection: str = "gaussian",
    standardize: bool = False,
) -> FitHistory:
    """Train ``model`` in place on a Dask array, data-parallel, one optimizer step per
    minibatch.

    The rows stay where they are: X is persisted (on the workers, under a cluster) and
    every minibatch's loss and gradient are computed on the blocks that hold its rows, each
    block summing over its share, then summed over blocks with a pairwise tree; the driver
    takes the optimizer step (the engine's Adam or SGD, in Rust) and sends the new
    parameters with the next step's tasks. Only the parameters and one gradient per block
    cross the network per step.

    What it matches: the minibatch schedule (epoch permutations), each step's random
    objective (SSM directions, DSM noise, keyed by the row's position in its minibatch) and
    the optimizer are those of ``model.fit(X.compute(), validation=None or X_val, ...)`` with
    the same arguments, so both runs take the same steps on the same rows. Only the order in
    which a minibatch's per-row gradients are summed differs; after one step the parameters
    agree to a few units in the last place, and over a run that difference is what grows
    (in tests: relative 1e-9 in float64 after 2 epochs of 8 steps). With
    ``standardize=True`` the columns' mean and spread come from Dask's reductions, equal to
    numpy's up to the order of their sums.

    Parameters
    ----------
    model : EnergyMLP
        Trained in place: at the end (or on divergence, the last good parameters, as
        :meth:`scorematch.EnergyMLP.fit`; with validation, the best epoch) its parameters
        are set.
    X : dask.array.Array, dask.dataframe.DataFrame or array_like, shape (n, dim)
        Training rows, any row chunking; persisted for the duration of the fit.
    objective : {"ism", "ssm", "dsm"}, default "ism"
    epochs, batch_size, lr, optimizer, weight_decay, patience, seed
        As for :meth:`scorematch.EnergyMLP.fit`.
    noise_std, n_projections, projection, standardize
        As for :meth:`scorematch.EnergyMLP.fit`. ``standardize=True`` trains in the
        coordinates ``z = (x − mean) / std`` of X's columns (a standardized copy of X is
        persisted in place of X) and folds the map into the first layer at the end.
    validation : dask.array.Array, dask.dataframe.DataFrame or array_like, optional
        Validation rows (no fraction here: split your Dask array yourself; ``0``, as
        ``None``, holds out nothing, as in :meth:`scorematch.EnergyMLP.fit`). Its loss is
        computed on the workers after every epoch; the best epoch's parameters are restored
        at the end.
    callback : callable, optional
        ``callback(epoch, train_loss, val_loss)`` after every epoch, with ``model`` set to
        the current parameters; returning ``False`` stops training.

    Returns
    -------
    FitHistory

    Raises
    ------
    TrainingDivergedError
        On a NaN/Inf loss, gradient or parameter, or a loss that blows up (the rule of
        :meth:`scorematch.EnergyMLP.fit`), naming the epoch, step and cause (in its message and its
        ``epoch``, ``step``, ``cause`` and ``advice`` attributes); ``model`` keeps
        the last parameters whose loss and gradient were finite and in range, and the exception's
        ``history`` attribute holds the completed epochs, with ``stop_reason == "diverged"``.
    ValueError, TypeError
        For bad arguments, as :meth:`scorematch.EnergyMLP.fit`; for a NaN or Inf in X or
        the validation rows, or a value too large for a float32 model, the error of
        :meth:`scorematch.EnergyMLP.fit` naming the first such row, once the rows are
        persisted and before any step (nothing is trained).

    Warns
    -----
    RuntimeWarning
        As :meth:`scorematch.EnergyMLP.fit`, for ``"ism"`` and ``"ssm"``: a column of X of
        one value, or of at most 20 distinct values (counted on every row, with one small
        task per block where a column may be such).
    """
    from scorematch.model import EnergyMLP

    _check_model(model)
    as_choice(objective, "objective", _OBJECTIVES)
    # Here, as EnergyMLP.fit checks it: the engine's conversion would name only a type.
    as_choice(optimizer, "optimizer", _OPTIMIZERS)
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
    dtype = model.dtype
    like = model.params
    params = _flat(like, dtype)
    # The messages of EnergyMLP.fit for lr and weight_decay; the engine checks the rest.
    lr = as_positive(lr, "lr")
    weight_decay = as_nonnegative(weight_decay, "weight_decay")
    opt = _core.Optimizer(str(dtype), params.size, optimizer, lr, weight_decay)

    train = _Blocks(_checked(X, model, "X"))
    if train.n == 0:
        raise ValueError("X must hold at least one row, got 0")
    val = None
    number = (float, int, np.floating, np.integer)
    if isinstance(validation, number) and not isinstance(validation, bool) and validation == 0:
        validation = None  # as EnergyMLP.fit: a fraction of 0 holds out nothing
    if validation is not None:
        # Other numbers (Decimal, Fraction, complex) as EnergyMLP.fit refuses them.
        other_number = isinstance(validation, numbers.Number) and not isinstance(validation, number)
        if other_number or isinstance(validation, (bool, np.bool_, str, bytes)):
            raise TypeError(
                "validation must be validation rows (a Dask array or array) or None, got "
                f"{typed(validation)}"
            )
        if isinstance(validation, number):
            raise ValueError(
                "scorematch.dask.fit takes validation rows (a Dask array or array) or None, "
                f"not a fraction ({validation}): split the Dask array yourself"
            )
        val = _Blocks(_checked(validation, model, "validation"))
        if val.n == 0:
            raise ValueError("validation must hold at least one row, got 0")
    facts, stats = _column_facts(train, objective in ("ism", "ssm") and train.n > 1, standardize)
    affine = _Affine.identity(model.dim)
    if stats is not None:
        # As EnergyMLP.fit: the training rows' statistics, for the validation rows too, and
        # the model converted to standardized coordinates unless it is fresh.
        affine = _Affine.from_stats(*stats, dtype)
        params[:] = _flat(affine.start(model).params(), dtype)
        train = _Blocks(train.X.map_blocks(_standardized, affine, "X", dtype=dtype))
        if val is not None:
            val = _Blocks(val.X.map_blocks(_standardized, affine, "validation", dtype=dtype))
    if facts is not None:  # as EnergyMLP.fit warns, after the data's own errors
        warn_point_masses(*facts, objective)
    # A run that changes nothing (a divergence or Ctrl-C before the first update, or a
    # divergence that restored the first parameters) leaves the model as it was, its
    # parameters exactly, a fresh one fresh, whatever a callback saw: as EnergyMLP.fit.
    initial, before = params.copy(), (model._m, model._drawn)

    n = train.n
    bs = min(batch_size, n)
    steps = math.ceil(n / bs)
    spec = (noise_std, n_projections, projection)
    history = FitHistory()
    best: tuple[float, Array] | None = None
    since_best = 0
    # The last parameters whose loss and gradient were finite and in range: kept on
    # divergence, as locally, where the core's rule for the loss is the same object.
    good = params.copy()
    loss_scale = _core.LossScale()
    start = time.perf_counter()

    def current() -> EnergyMLP:
        m = EnergyMLP.from_params(
            _unflat(params, like), activation=model.activation, alpha=model.alpha, dtype=str(dtype)
        )
        return m

    def publish() -> None:
        """Sets ``model`` to the current parameters, in the user's coordinates."""
        unchanged = np.array_equal(params, initial)
        adopt(model, before, None if unchanged else current()._m, affine)

    def diverged(err: TrainingDivergedError) -> TrainingDivergedError:
        history.stop_reason = "diverged"
        history.seconds = time.perf_counter() - start
        err.history = history
        return err

    try:
        for epoch in range(epochs):
            perm = _core.epoch_permutation(seed, epoch, n)
            train.regroup()
            loss_sum = 0.0
            for step in range(steps):
                rows = perm[step * bs : (step + 1) * bs]
                keys = np.arange(rows.size, dtype=np.uint64)
                step_seed = _core.step_seed(seed, epoch * steps + step)
                total, g_sum, count = train.loss_grad(
                    current(), rows, keys, objective, step_seed, *spec
                )
                loss = total / count
                grad = (g_sum / count).astype(dtype)
                error = loss_scale.check(loss, epoch, step)
                if error is None and not np.isfinite(grad).all():
                    error = _core.non_finite_divergence(epoch, step, "gradient")
                if error is not None:
                    params[:] = good
                    raise diverged(error)
                good[:] = params
                if not opt.step(params, grad):
                    params[:] = good
                    raise diverged(
                        _core.non_finite_divergence(epoch, step, "squared-gradient average (Adam)")
                    )
                if not np.isfinite(params).all():
                    params[:] = good
                    raise diverged(
                        _core.non_finite_divergence(epoch, step, "updated parameter vector")
                    )
                loss_sum += loss
            train_loss = loss_sum / steps
            val_loss = None
            if val is not None:
                # Not `rows` and `keys`: the last step's check reads the last minibatch's.
                every = np.arange(val.n)
                total, _, count = val.loss_grad(
                    current(),
                    every,
                    every.astype(np.uint64),
                    objective,
                    _core.validation_seed(seed),
                    *spec,
                    grad=False,
                )
                val_loss = total / count
                if not math.isfinite(val_loss):
                    params[:] = good
                    raise diverged(_core.non_finite_divergence(epoch, steps, "validation loss"))
                history.val_loss.append(val_loss)
            # Only now is the epoch complete: a validation divergence leaves it out, as in
            # EnergyMLP.fit.
            history.train_loss.append(train_loss)
            monitored = train_loss if val_loss is None else val_loss
            if best is None or monitored < best[0]:
                best = (monitored, params.copy())
                history.best_epoch = epoch
                since_best = 0
            else:
                since_best += 1
            if callback is not None:
                publish()
                if _stops(callback(epoch, train_loss, val_loss)):
                    history.stop_reason = "callback"
                    break
            if patience is not None and since_best >= patience:
                history.stop_reason = "patience"
                break
        if val is None or history.best_epoch == len(history.train_loss) - 1:
            # The last step's update, judged as the next step would have judged it (as
            # EnergyMLP.fit's Trainer.finish does): its loss on the last minibatch, where
            # the parameters kept are the last step's (the best epoch's, if it just ended:
            # a finite validation loss does not show an update that blew up).
            last_epoch = len(history.train_loss) - 1
            total, _, count = train.loss_grad(
                current(), rows, keys, objective, step_seed, *spec, grad=False
            )
            error = loss_scale.check(total / count, last_epoch, steps)
            if error is not None:
                params[:] = good
                raise diverged(error)
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
    else:
        if val is not None and best is not None:
            params[:] = best[1]
    finally:
        publish()
        history.seconds = time.perf_counter() - start
    return history


def _column_facts(
    train: _Blocks, extremes: bool, stats: bool
) -> tuple[tuple[Array, list[tuple[int, int]]] | None, tuple[Array, Array] | None]:
    """In one pass over the persisted blocks: with ``extremes``, whether each column holds
    one value, and the rows that pick the :func:`scorematch.training.candidate_columns`, whose
    values a second pass counts only if there are any (a column of few values is rare); with
    ``stats``, :func:`scorematch.training.column_stats` (the same steps, lazily, by Dask's
    reductions). The rows and values are EnergyMLP.fit's. None for what was not asked."""
    X = train.X
    lazy: list[Any] = []
    if extremes:
        lazy += [X.min(axis=0), X.max(axis=0), _sampled_rows(X)]
    if stats:
        # Typed for numpy arrays; every step of it is also a Dask array method.
        lazy += list(column_stats(cast(Any, X)))
    if not lazy:
        return None, None
    with np.errstate(over="ignore"):
        got = [np.asarray(a) for a in compute(*lazy)]
    facts = None
    if extremes:
        constant = got[0] == got[1]
        picked = candidate_columns(got[2], constant)
        outside: list[list[Array]] = []
        if any(v.size for v in picked):
            outside = train.each(values_outside, picked)
        facts = (constant, discrete_columns(picked, outside, train.n))
    return facts, ((got[-2], got[-1]) if stats else None)


def _sampled_rows(X: da.Array) -> da.Array:
    """The rows of ``X`` that :func:`scorematch.training.sample_rows` picks, taken where each
    block is. A copy, unlike ``X[::step]``: computing a slice that keeps a persisted block
    (every one, at step 1) sent those blocks to the worker that joins the result, where the
    fit then ran their steps."""
    step = sample_rows(X.shape[0]).step or 1
    starts = np.cumsum((0,) + X.chunks[0][:-1])
    counts = tuple(
        len(range(-int(s) % step, n, step)) for s, n in zip(starts, X.chunks[0], strict=True)
    )
    return da.map_blocks(
        _rows_every,
        X,
        step,
        chunks=(counts, X.chunks[1]),
        dtype=X.dtype,
        meta=np.empty((0, 0), X.dtype),
    )


def _rows_every(block: Array, step: int, block_info: Any = None) -> Array:
    """A copy of the rows of ``block`` at the whole array's rows 0, ``step``, 2 ``step``..."""
    start = _block_start(block_info) or 0
    return block[-start % step :: step].copy()


def _standardized(block: Array, affine: _Affine, name: str, block_info: Any = None) -> Array:
    """The block in standardized coordinates. A finite row that overflows there (far from the
    training rows' mean, or when the spread is tiny) is named by its row in the array with
    EnergyMLP.fit's message, not left to the engine's "contains NaN or Inf"; blocks are
    checked as they run, so past the first block the message says an earlier one may hold
    such a row too (as for any bad row: see the note on bad rows above)."""
    with np.errstate(over="ignore", invalid="ignore"):
        z, _ = affine.data(block, None)
    if not np.isfinite(z).all():
        start = _block_start(block_info)
        try:
            affine.check_overflow([(name, block, False)], z.dtype, start or 0)
        except ValueError as err:
            _reraise_past_the_first_block(err, start, name)
    return z
