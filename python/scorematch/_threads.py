"""Control of the engine's worker threads."""

from __future__ import annotations

import os
import warnings

from scorematch import _core
from scorematch._validate import as_integer


def set_num_threads(n: int) -> None:
    """Use ``n`` worker threads for all later computations.

    Results do not depend on the number of threads: every reduction runs in a fixed order,
    so any ``n`` gives bit-identical outputs.

    Parameters
    ----------
    n : int
        Number of threads, from 1 to 4096. The default is the value of the
        ``RAYON_NUM_THREADS`` environment variable, read as Rayon reads it (plain digits;
        ``" 3"``, ``0`` and non-numbers are ignored; a value above 4096 is ignored with a
        warning at import), else that of ``OMP_NUM_THREADS`` (its first entry; joblib's loky
        and Dask's nanny set it in their worker processes to share the cores among them),
        else one per CPU this process may run on (its affinity, within its cgroup's quota).

    Raises
    ------
    ValueError
        If ``n`` is out of range.
    TypeError
        If ``n`` is not an integer.
    RuntimeError
        If the system refuses to start that many threads (a process or memory limit); the
        previous threads stay in use.
    """
    n = as_integer(n, "n")
    if not 1 <= n <= _core.MAX_THREADS:
        # Checked here, with the whole range in one message: the binding maps negatives to 0
        # (wrong message) and overflows on >i64.
        raise ValueError(
            f"the number of threads must be between 1 and {_core.MAX_THREADS}, got {n}"
        )
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Return the number of worker threads computations use.

    Returns
    -------
    int
        The count :func:`set_num_threads` set, or by default ``RAYON_NUM_THREADS`` if it is
        a count from 1 to 4096 in plain digits, else ``OMP_NUM_THREADS`` if its first entry
        is one, else one per CPU this process may run on (see :func:`set_num_threads`).
        Asking does not start the threads.
    """
    return _core.get_num_threads()


def check_env_threads() -> None:
    """Warns of a ``RAYON_NUM_THREADS`` above the range of :func:`set_num_threads`.

    Rayon would start as many threads as the variable asks for: 99999 ran for minutes
    before any work, and 4100 took 13 s on two cores. The engine ignores such a value, as
    ``set_num_threads`` refuses it, and takes the next source of the count, as if the
    variable were unset: ``OMP_NUM_THREADS`` when valid, else one thread per CPU. This says
    so, at import. Other values are read as Rayon reads them (``usize::from_str``: 0 and
    what is not a number are ignored).
    """
    raw = os.environ.get("RAYON_NUM_THREADS")
    n = _usize(raw) if raw is not None else None
    if n is not None and n > _core.MAX_THREADS:
        omp = _omp_threads(os.environ.get("OMP_NUM_THREADS"))
        # The engine's count, without starting its threads (which the first call does).
        count = _core.get_num_threads()
        source = f"OMP_NUM_THREADS ({omp})" if omp is not None else f"one per CPU ({count})"
        warnings.warn(
            f"RAYON_NUM_THREADS={raw} is more than the {_core.MAX_THREADS} threads scorematch "
            f"allows; using {source} instead",
            RuntimeWarning,
            stacklevel=3,
        )


def _omp_threads(value: str | None) -> int | None:
    """The count ``OMP_NUM_THREADS`` asks for when valid (its first entry, 1 to
    ``MAX_THREADS``): the rule of the engine's ``omp_threads`` (rust/core/src/parallel.rs),
    which reads it only where ``RAYON_NUM_THREADS`` did not choose."""
    if value is None:
        return None
    n = _usize(value.split(",")[0].strip())
    return n if n is not None and 1 <= n <= _core.MAX_THREADS else None


def _usize(text: str) -> int | None:
    """``text`` read as Rust's ``usize::from_str`` reads it (Rayon's reading of
    ``RAYON_NUM_THREADS``): ASCII digits after an optional "+", nothing else, no spaces.
    ``int()`` also took " 4", "1_6" and "٤"."""
    digits = text.removeprefix("+")
    return int(digits) if digits.isascii() and digits.isdigit() else None
