"""What the engine runs with on this machine."""

from __future__ import annotations

import os
import warnings

from scorematch import _core

#: The values of ``SCOREMATCH_GEMM`` the engine reads (``rust/core/src/gemm/mod.rs``).
_GEMM_CAPS = ("portable", "avx2", "avx512")


def runtime_info() -> dict[str, str | int]:
    """Return the version, the instruction sets in use and the number of worker threads.

    The engine picks its code paths at run time from the CPU's features; this says which
    ones it took, for bug reports and for reading benchmark results.

    Returns
    -------
    dict
        ``"version"``: the package version. ``"gemm_kernel"``: the matrix-product kernel,
        ``"avx512"``, ``"avx2"`` or ``"portable"`` (the environment variable
        ``SCOREMATCH_GEMM=portable|avx2`` caps it, for comparisons; it never selects a
        path the CPU lacks). ``"elementwise"``: the instruction set of the activation and
        update loops, ``"avx512"``, ``"avx2"`` or ``"baseline"``. ``"num_threads"``: as
        :func:`get_num_threads`.

    Notes
    -----
    The AVX-512 and AVX2 paths perform the same roundings, so their results agree bit for
    bit. The portable GEMM kernel, for x86-64 CPUs without FMA, rounds each multiply and add
    separately: its results differ from theirs in the last bits.
    """
    gemm, elementwise = _core.cpu_paths()
    return {
        "version": _core.__version__,
        "gemm_kernel": gemm,
        "elementwise": elementwise,
        "num_threads": _core.get_num_threads(),
    }


def check_env_gemm() -> None:
    """Warns about a ``SCOREMATCH_GEMM`` the engine does not know: it ignores such a value
    and takes the best path, so ``"Portable"`` would silently give other last bits than the
    portable results asked for."""
    raw = os.environ.get("SCOREMATCH_GEMM")
    # Empty is unset, as shells and CI files often leave a variable (the engine agrees).
    if raw and raw not in _GEMM_CAPS:
        warnings.warn(
            f"SCOREMATCH_GEMM={raw!r} is not one of {', '.join(map(repr, _GEMM_CAPS))} and is "
            f"ignored: the GEMM kernel is {_core.cpu_paths()[0]!r}",
            RuntimeWarning,
            stacklevel=3,
        )
