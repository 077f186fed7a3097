"""Control of the engine's worker threads."""

from __future__ import annotations

from scorematch import _core
from scorematch._validate import as_integer


def set_num_threads(n: int) -> None:
    """Use ``n`` worker threads for all later computations.

    Results do not depend on the number of threads: every reduction runs in a fixed order,
    so any ``n`` gives bit-identical outputs.

    Parameters
    ----------
    n : int
        Number of threads, from 1 to 4096. The default is one per CPU core (or the value of
        the ``RAYON_NUM_THREADS`` environment variable).

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
    """Return the number of worker threads computations use."""
    return _core.get_num_threads()
