"""Single-thread numpy (OpenBLAS) GEMM rates on the engine's shapes.

Companion of `cargo bench -p scorematch-core --bench gemm`; prints GFLOP/s in the same
format. Run it single-threaded, and without the OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE overrides
that some machines here set (they pick an older, slower kernel):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python3 benchmarks/gemm_numpy.py
"""

from __future__ import annotations

import functools
import time

import _blas_env  # noqa: F401  (before numpy: see its docstring)
import numpy as np

# (label, m, k, n): c (m x n) = a (m x k) @ b (k x n)
SHAPES = [
    ("mul", 512, 64, 64),
    ("mul", 512, 128, 128),
    ("mul", 528, 256, 256),
    ("mul", 16384, 256, 256),
    ("score", 256, 16, 128),
    ("score", 256, 64, 256),
]
# (label, r, m, n): c (m x n) += a.T @ b with a (r x m), b (r x n)
TN_SHAPES = [("tn", 528, 256, 256), ("tn", 528, 128, 128), ("tn", 512, 64, 64)]


def rate(f, flops: float, total: float = 0.5, batch: float = 0.002) -> float:
    """GFLOP/s of the fastest of many short batches (as the Rust benchmark measures)."""
    f()
    reps = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        if time.perf_counter() - t0 >= batch:
            break
        reps *= 2
    best = float("inf")
    start = time.perf_counter()
    while time.perf_counter() - start < total:
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        best = min(best, (time.perf_counter() - t0) / reps)
    return flops / best / 1e9


def main() -> None:
    try:
        from threadpoolctl import threadpool_info

        for info in threadpool_info():
            print(
                f"# {info.get('internal_api')} {info.get('version')} "
                f"threads={info.get('num_threads')} arch={info.get('architecture')}"
            )
    except ImportError:
        print("# threadpoolctl not installed: BLAS kernel unknown")
    print(f"# numpy {np.__version__}")
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        for label, m, k, n in SHAPES:
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            c = np.empty((m, n), dtype)
            g = rate(functools.partial(np.matmul, a, b, out=c), 2.0 * m * k * n)
            print(f"{name:8} {label:6} m={m:6} k={k:4} n={n:4}  numpy {g:7.1f} GFLOP/s")
        for label, r, m, n in TN_SHAPES:
            a = rng.standard_normal((r, m)).astype(dtype)
            b = rng.standard_normal((r, n)).astype(dtype)
            c = np.zeros((m, n), dtype)

            def tn(a: np.ndarray = a, b: np.ndarray = b, c: np.ndarray = c) -> None:
                c += a.T @ b

            g = rate(tn, 2.0 * r * m * n)
            print(f"{name:8} {label:6} r={r:6} m={m:4} n={n:4}  numpy {g:7.1f} GFLOP/s")


if __name__ == "__main__":
    main()
