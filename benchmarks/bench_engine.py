"""Benchmark of the engine: energy, score, exact Hessian trace and the ISM loss + gradient.

    python benchmarks/bench_engine.py                      # full run, all sizes and dtypes
    python benchmarks/bench_engine.py --quick --sizes S1   # CI smoke run
    python benchmarks/bench_engine.py --json out.json      # also write every number as JSON

A benchmark, not a test: it times scorematch's four batched entry points on softplus MLPs of
depth 3, inputs X ~ N(0, 2^2 I), in float32 and float64, at

    S1 = (dim 2,  width 64,  depth 3, batch 1024)
    S2 = (dim 16, width 128, depth 3, batch 1024)
    S3 = (dim 64, width 256, depth 3, batch 512)

and, in the same run, the same work done by the comparators that are importable:

    JAX (jit, CPU; x64 enabled so float64 really is float64)
      energy             jit(vmap(MLP))
      score              jit(vmap(grad E)), negated
      hessian_trace      jit(vmap(-trace(jax.hessian E))), jit(vmap(folx.forward_laplacian))
                         and jit of a hand-written batched forward Laplacian (as numpy's)
      ism_loss_and_grad  jit(value_and_grad(mean(-Lap E + 1/2 |grad E|^2))) with the Laplacian
                         that was fastest on the hessian_trace row (by default the
                         hand-written forward Laplacian)
    PyTorch (skipped when not importable; the PyPI wheel pulls CUDA)
      energy             batched MLP under no_grad
      score              autograd of sum(E)
      hessian_trace      hand-written batched forward Laplacian (no_grad)
      ism_loss_and_grad  the same forward Laplacian, then autograd backward to the parameters
    numpy (always present; OpenBLAS, one big GEMM per layer)
      energy, score (hand-written reverse pass), hessian_trace (batched forward Laplacian)

Every comparator gets the same parameters (model.params, converted, same dtype) and the same X.
Its outputs are checked against ours before it is timed: the reported "rel. diff" is
max|theirs - ours| / max|theirs| per output array (loss, each gradient array), maximized over
arrays and comparators. The script exits with status 1, after printing the table, if it
exceeds 1e-3 (float32) or 1e-8 (float64) anywhere.

Timing: each function is called twice to warm up (JAX compiles then). Then ours and the
comparators of a row are timed in alternating blocks: per round, each function in turn gets
a 3 ms pause, one untimed call and --block timed calls back to back, more if needed to fill
20 ms (the steady state a pipeline calling in a loop sees), so that load from other
processes hits all of them alike; rounds go on until at least --min-runs were made and
either --max-runs rounds or --budget seconds per function are reached. The median wall time
of the timed calls is reported (the JSON also has quartiles and the call count). Timing
single calls after a pause instead would mostly measure how fast this VM wakes an idle vCPU
(up to ~0.5 ms), which multithreaded libraries pay and a library that runs a small problem
on one thread does not. The pauses are short and OpenBLAS's busy-wait is shortened to ~1 ms
for the same kind of reason: see _blas_env.py. JAX results are waited for with
block_until_ready. The header shows the load average before and after: on a shared machine
absolute numbers mean little when it exceeds the core count, the speed-ups still do.

PyTorch's threads: by default as many as ours. Debian's torch 1.13 calls the system BLAS
(OpenBLAS, with threads of its own) under its OpenMP threads, and shares that BLAS with numpy
in the same process: on the 2-vCPU VM its times moved with both (S1 float32 energy 0.5 ms
alone, 12 ms beside numpy's blocks in results/engine-2026-12-04-1129-torch-beside-numpy.md;
S2 float32 ISM gradient 93 ms with one OpenMP thread and 157 with two in quick runs). Run it with --no-numpy, once with --torch-threads 1 and once with 2, and take the
faster per row.

FLOP conventions (nominal work, the same count for every implementation). With
n_0 = dim, n_1 = ... = n_L = width and MAC = sum_{l=1..L} n_{l-1} n_l, the multiply-adds
of one forward pass through the hidden layers (the output dot product w.h_L, n_L MACs, and
all elementwise work are not counted):

    energy             2 * batch * MAC
    score              2 * energy                   (forward + reverse pass)
    hessian_trace      2 * batch * (dim + 2) * MAC  (forward Laplacian: dim tangent rows plus
                                                     the value and Laplacian rows, every layer
                                                     counted in full, layer 1 included)
    ism_loss_and_grad  3 * hessian_trace            (forward Laplacian + its reverse pass)

GFLOP/s = FLOPs / median time. "% peak" divides that by the machine's GEMM peak measured in
the same run: numpy.matmul of two 1024 x 1024 matrices of the same dtype, all BLAS threads,
best of 3 groups of 20 calls, measured before and after the benchmark (the larger value is used).
Speed-up = comparator's median time / ours (> 1 means scorematch is faster). "% peak for 2×"
is the share of that GEMM peak any implementation doing the nominal work would need to run
twice as fast as the fastest comparator (2 · % peak / speed-up): above 100 %, no GEMM
on this machine reaches the issue's 2× target without doing less arithmetic.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import _blas_env  # noqa: F401  (before numpy: see its docstring)
import numpy as np
import scorematch
from scorematch import EnergyMLP

SIZES: dict[str, tuple[int, int, int, int]] = {
    "S1": (2, 64, 3, 1024),
    "S2": (16, 128, 3, 1024),
    "S3": (64, 256, 3, 512),
}
DTYPES = ("float32", "float64")
OPS = ("energy", "score", "hessian_trace", "ism_loss_and_grad")
TOL = {"float32": 1e-3, "float64": 1e-8}
ACTIVATION = "softplus"
OURS = "\0scorematch"  # key of our timing among the comparators
X_STD = 2.0

# --------------------------------------------------------------------------------------------
# optional comparators: set up here once; bench_sample and bench_fit import them from here

try:
    import jax

    jax.config.update("jax_enable_x64", True)  # before any array is made
    import jax.numpy as jnp

    HAVE_JAX = True
except ImportError:  # pragma: no cover - depends on the machine
    jax = jnp = None
    HAVE_JAX = False

try:
    import folx

    HAVE_FOLX = HAVE_JAX
except ImportError:  # pragma: no cover
    folx = None
    HAVE_FOLX = False

try:
    import torch

    HAVE_TORCH = True
    # As many threads as ours: builds differ in their default (Debian's torch 1.13 takes one
    # on this 2-core VM, PyPI's one per physical core).
    torch.set_num_threads(scorematch.get_num_threads())
except ImportError:  # pragma: no cover
    torch = None
    HAVE_TORCH = False


def add_torch_threads(parser: argparse.ArgumentParser) -> None:
    """`--torch-threads`, which every benchmark with a PyTorch comparator takes."""
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="PyTorch's intra-op threads (default: as many as ours; see bench_engine.py's docstring)",
    )


def set_torch_threads(n: int | None) -> None:
    """Applies `--torch-threads` (None: keep the default set above)."""
    if HAVE_TORCH and n is not None:
        torch.set_num_threads(n)


# --------------------------------------------------------------------------------------------
# FLOPs and timing


def macs(dim: int, width: int, depth: int) -> int:
    """Multiply-adds of one forward pass through the hidden layers, per sample."""
    widths = [dim] + [width] * depth
    return sum(a * b for a, b in itertools.pairwise(widths))


def flops(op: str, dim: int, width: int, depth: int, batch: int) -> float:
    m = macs(dim, width, depth)
    fwd = 2.0 * batch * m
    lap = 2.0 * batch * (dim + 2) * m
    return {"energy": fwd, "score": 2 * fwd, "hessian_trace": lap, "ism_loss_and_grad": 3 * lap}[op]


def _summary(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {
        "median_s": statistics.median(times),
        "q1_s": q[0],
        "q3_s": q[2],
        "min_s": min(times),
        "runs": len(times),
    }


#: Seconds between timing blocks. Short on purpose (see _blas_env.py): long enough for the
#: previous library's workers to stop spinning (OpenBLAS's set to ~1 ms there), too short
#: for this VM to lower its clocks.
PAUSE = 0.003
#: Shortest timing block, in seconds: fast calls repeat until the block lasts this long, so
#: that the median is the steady state, not the first calls after the switch from another
#: library, when the kernel may still run our two worker threads on one vCPU.
BLOCK_S = 0.02


class Timer:
    """Alternating blocks: one round times every function once, in a block of consecutive
    calls, so a change in machine load affects ours and the comparators alike and their
    ratio stays meaningful."""

    def __init__(self, min_runs: int, max_runs: int, budget: float, block: int = 5) -> None:
        self.min_runs, self.max_runs, self.budget, self.block = min_runs, max_runs, budget, block

    def __call__(self, fns: dict[str, Callable[[], Any]]) -> dict[str, dict[str, float]]:
        for fn in fns.values():  # warm-up (JAX compiles on the first call)
            fn()
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        budget = self.budget * len(fns)
        start = time.perf_counter()
        rounds = 0
        while rounds < self.min_runs or (
            rounds < self.max_runs and time.perf_counter() - start < budget
        ):
            for name, fn in fns.items():
                time.sleep(PAUSE)  # let the previous job's BLAS / XLA workers stop spinning
                fn()  # wakes this library's idle thread pool; not timed
                block_start = time.perf_counter()
                calls = 0
                while calls < self.block or time.perf_counter() - block_start < BLOCK_S:
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
                    calls += 1
            rounds += 1
        return {k: _summary(v) for k, v in times.items()}


def gemm_peak(dtype: str, n: int = 1024, reps: int = 20, groups: int = 3) -> float:
    """Best GFLOP/s of numpy.matmul on n x n matrices of ``dtype``, all BLAS threads: the
    fastest of ``groups`` groups of ``reps`` calls, 0.2 s apart. This VM has slow phases of
    a second or so (one group read 95 GFLOP/s where the others read 160-185 in float32);
    groups spread out keep one from setting the peak and every "% peak" with it."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    for _ in range(3):
        np.matmul(a, b, out=c)
    best = float("inf")
    for g in range(groups):
        if g:
            time.sleep(0.2)
        for _ in range(reps):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def peak_report(before: dict[str, float], after: dict[str, float]) -> tuple[dict[str, float], str]:
    """The peak each dtype's "% peak" divides by (the larger of the readings before and after
    the run), and the report's line that gives both readings."""
    line = (
        "- GEMM peak (numpy.matmul 1024², all threads, best of 3 × 20, before/after; the larger "
        "is used): "
        + "; ".join(f"{dt} {before[dt]:.0f} / {after[dt]:.0f} GFLOP/s" for dt in before)
    )
    return {dt: max(before[dt], after[dt]) for dt in before}, line


# --------------------------------------------------------------------------------------------
# agreement


def rel_diff(theirs: Any, ours: Any) -> float:
    """max|theirs - ours| / max|theirs| (absolute difference where theirs is all zero)."""
    a = np.asarray(theirs, dtype=np.float64)
    b = np.asarray(ours, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: comparator {a.shape} vs ours {b.shape}")
    if not np.all(np.isfinite(a)):
        return float("inf")
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff / scale if scale > 0 else diff


def rel_diff_outputs(op: str, theirs: Any, ours: Any) -> float:
    if op == "ism_loss_and_grad":
        (lt, gt), (lo, go) = theirs, ours
        if len(gt) != len(go):
            raise AssertionError(f"{len(gt)} gradient arrays vs ours {len(go)}")
        return max([rel_diff(lt, lo)] + [rel_diff(a, b) for a, b in zip(gt, go, strict=True)])
    return rel_diff(theirs, ours)


# --------------------------------------------------------------------------------------------
# comparators: each returns {name: (run, to_numpy)}; run() does the work and waits for it


Comparator = tuple[Callable[[], Any], Callable[[Any], Any]]


def _softplus_np(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _sigmoid_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype, copy=False)


def numpy_comparators(op: str, params: list[np.ndarray], X: np.ndarray) -> dict[str, Comparator]:
    """Plain numpy: one GEMM per layer over the whole batch (tangents folded into the rows)."""
    Ws, bs = params[0:-2:2], params[1:-2:2]
    w, c = params[-2], params[-1]

    def energy() -> np.ndarray:
        h = X
        for W, b in zip(Ws, bs, strict=True):
            h = _softplus_np(h @ W.T + b)
        return h @ w[0] + c[0]

    def score() -> np.ndarray:
        h, zs = X, []
        for W, b in zip(Ws, bs, strict=True):
            z = h @ W.T + b
            zs.append(z)
            h = _softplus_np(z)
        hbar = np.broadcast_to(w, h.shape)
        for W, z in zip(reversed(Ws), reversed(zs), strict=True):
            hbar = (_sigmoid_np(z) * hbar) @ W
        return -hbar

    def hessian_trace() -> np.ndarray:
        # forward Laplacian with T = I: J (batch, dim, n), lam (batch, n)
        B, d = X.shape
        z = X @ Ws[0].T + bs[0]
        s1 = _sigmoid_np(z)
        s2 = s1 * (1 - s1)
        A = Ws[0].T  # same for every sample (J_0 = I)
        J = s1[:, None, :] * A[None, :, :]
        lam = s2 * np.sum(A * A, axis=0)[None, :]
        h = _softplus_np(z)
        for W, b in zip(Ws[1:], bs[1:], strict=True):
            z = h @ W.T + b
            s1 = _sigmoid_np(z)
            s2 = s1 * (1 - s1)
            A = (J.reshape(B * d, -1) @ W.T).reshape(B, d, -1)
            lam = s1 * (lam @ W.T) + s2 * np.einsum("bmn,bmn->bn", A, A)
            J = s1[:, None, :] * A
            h = _softplus_np(z)
        return -(lam @ w[0])

    fns = {"energy": energy, "score": score, "hessian_trace": hessian_trace}
    if op not in fns:
        return {}
    fn = fns[op]
    return {"numpy": (fn, lambda r: r)}


def _jax_energy1(P: list[Any], x: Any) -> Any:
    h = x
    for l in range((len(P) - 2) // 2):
        h = jax.nn.softplus(P[2 * l] @ h + P[2 * l + 1])
    return (P[-2] @ h)[0] + P[-1][0]


def _jax_lap_hessian(P: list[Any], X: Any) -> tuple[Any, Any]:
    """(Lap E, grad E) per row, Laplacian as the trace of jax.hessian."""
    lap = jax.vmap(lambda x: jnp.trace(jax.hessian(_jax_energy1, argnums=1)(P, x)))(X)
    g = jax.vmap(jax.grad(_jax_energy1, argnums=1), in_axes=(None, 0))(P, X)
    return lap, g


def _jax_lap_folx(P: list[Any], X: Any) -> tuple[Any, Any]:
    """(Lap E, grad E) per row by folx's forward Laplacian (dense, no sparsity)."""
    f = folx.forward_laplacian(lambda x: _jax_energy1(P, x))
    r = jax.vmap(f)(X)
    return r.laplacian, r.jacobian.dense_array


def _jax_lap_fwd(P: list[Any], X: Any) -> tuple[Any, Any]:
    """(Lap E, grad E) per row by a hand-written batched forward Laplacian in jnp, the
    algorithm of the numpy and PyTorch comparators: tangents kept as one (batch * dim, n)
    matrix, so every layer is plain GEMMs forward and (under value_and_grad) backward.
    Faster than folx's generic transformation on every row measured (S1-S3, 1.2-2.2x)."""
    Ws, bs = P[0:-2:2], P[1:-2:2]
    B, d = X.shape
    z = X @ Ws[0].T + bs[0]
    s1 = jax.nn.sigmoid(z)
    A = Ws[0].T  # (d, n_1): the same for every sample
    J = (s1[:, None, :] * A[None, :, :]).reshape(B * d, -1)
    lam = s1 * (1 - s1) * jnp.sum(A * A, axis=0)[None, :]
    h = jax.nn.softplus(z)
    for W, b in zip(Ws[1:], bs[1:], strict=True):
        z = h @ W.T + b
        s1 = jax.nn.sigmoid(z)
        A = (J @ W.T).reshape(B, d, -1)
        lam = s1 * (lam @ W.T) + s1 * (1 - s1) * jnp.sum(A * A, axis=1)
        J = (s1[:, None, :] * A).reshape(B * d, -1)
        h = jax.nn.softplus(z)
    w = P[-2][0]
    return lam @ w, (J @ w).reshape(B, d)


_JAX_LAPS = {
    "jax.hessian": _jax_lap_hessian,
    "jax+folx": _jax_lap_folx,
    "jax fwd-Laplacian": _jax_lap_fwd,
}


def jax_comparators(
    op: str, params: list[np.ndarray], X: np.ndarray, ism_lap: str
) -> dict[str, Comparator]:
    P = [jnp.asarray(p) for p in params]
    Xj = jnp.asarray(X)
    for a in (*P, Xj):
        assert a.dtype == X.dtype, (a.dtype, X.dtype)
    out: dict[str, Comparator] = {}

    def add(name: str, f: Callable[..., Any]) -> None:
        jf = jax.jit(f)
        out[name] = (
            lambda: jax.block_until_ready(jf(P, Xj)),
            lambda r: jax.tree_util.tree_map(np.asarray, r),
        )

    if op == "energy":
        add("jax", jax.vmap(_jax_energy1, in_axes=(None, 0)))
    elif op == "score":
        g = jax.vmap(jax.grad(_jax_energy1, argnums=1), in_axes=(None, 0))
        add("jax", lambda P, X: -g(P, X))
    elif op == "hessian_trace":
        for name, lap in _JAX_LAPS.items():
            if name == "jax+folx" and not HAVE_FOLX:
                continue
            add(name, lambda P, X, lap=lap: -lap(P, X)[0])
    elif op == "ism_loss_and_grad":
        if ism_lap == "jax+folx" and not HAVE_FOLX:
            ism_lap = "jax.hessian"
        lapf = _JAX_LAPS[ism_lap]

        def loss(P: list[Any], X: Any) -> Any:
            lap, g = lapf(P, X)
            return jnp.mean(-lap + 0.5 * jnp.sum(g * g, axis=-1))

        vg = jax.jit(jax.value_and_grad(loss))
        out[f"{ism_lap} value_and_grad"] = (
            lambda: jax.block_until_ready(vg(P, Xj)),
            lambda r: (float(r[0]), [np.asarray(a) for a in r[1]]),
        )
    return out


def _torch_fwd_lap(P: list[Any], X: Any) -> tuple[Any, Any, Any]:
    """Batched forward Laplacian in PyTorch: (E, grad E, Lap E) per row (T = I).

    J is (batch, dim, n): row m holds d h / d x_m; lam is (batch, n).
    """
    F = torch.nn.functional
    Ws, bs = P[0:-2:2], P[1:-2:2]
    w, c = P[-2], P[-1]
    B, d = X.shape
    z = X @ Ws[0].T + bs[0]
    s1 = torch.sigmoid(z)
    s2 = s1 * (1 - s1)
    A = Ws[0].T  # (d, n_1): the same for every sample
    J = s1[:, None, :] * A[None, :, :]
    lam = s2 * (A * A).sum(0)[None, :]
    h = F.softplus(z)
    for W, b in zip(Ws[1:], bs[1:], strict=True):
        z = h @ W.T + b
        s1 = torch.sigmoid(z)
        s2 = s1 * (1 - s1)
        A = (J.reshape(B * d, -1) @ W.T).reshape(B, d, -1)
        lam = s1 * (lam @ W.T) + s2 * (A * A).sum(1)
        J = s1[:, None, :] * A
        h = F.softplus(z)
    E = h @ w[0] + c[0]
    g = J @ w[0]
    lap = lam @ w[0]
    return E, g, lap


def torch_comparators(op: str, params: list[np.ndarray], X: np.ndarray) -> dict[str, Comparator]:
    F = torch.nn.functional
    P = [torch.from_numpy(np.array(p)) for p in params]
    Xt = torch.from_numpy(np.array(X))

    def energy_rows(P: list[Any], X: Any) -> Any:
        h = X
        for W, b in zip(P[0:-2:2], P[1:-2:2], strict=True):
            h = F.softplus(h @ W.T + b)
        return h @ P[-2][0] + P[-1][0]

    out: dict[str, Comparator] = {}
    if op == "energy":

        def run_energy() -> Any:
            with torch.no_grad():
                return energy_rows(P, Xt)

        out["torch"] = (run_energy, lambda r: r.numpy())
    elif op == "score":

        def run_score() -> Any:
            x = Xt.detach().clone().requires_grad_(True)
            (g,) = torch.autograd.grad(energy_rows(P, x).sum(), x)
            return -g

        out["torch autograd"] = (run_score, lambda r: r.detach().numpy())
    elif op == "hessian_trace":

        def run_lap() -> Any:
            with torch.no_grad():
                return -_torch_fwd_lap(P, Xt)[2]

        out["torch fwd-Laplacian"] = (run_lap, lambda r: r.numpy())
    elif op == "ism_loss_and_grad":
        Pg = [p.detach().clone().requires_grad_(True) for p in P]

        def run_ism() -> Any:
            _, g, lap = _torch_fwd_lap(Pg, Xt)
            loss = (-lap + 0.5 * (g * g).sum(1)).mean()
            grads = torch.autograd.grad(loss, Pg, allow_unused=True)
            grads = [
                torch.zeros_like(p) if q is None else q for p, q in zip(Pg, grads, strict=True)
            ]
            return loss.detach(), grads

        out["torch fwd-Laplacian + autograd"] = (
            run_ism,
            lambda r: (float(r[0]), [q.detach().numpy() for q in r[1]]),
        )
    return out


# --------------------------------------------------------------------------------------------
# machine description


def git_commit() -> str | None:
    """The checkout's commit (with ``-dirty`` for uncommitted changes), for result headers."""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(
            ["git", "-C", here, "describe", "--always", "--dirty", "--abbrev=7"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def code_paths() -> str:
    """The engine's GEMM kernel and elementwise instruction set on this CPU, for headers."""
    info = scorematch.runtime_info()
    return f"GEMM kernel {info['gemm_kernel']}, elementwise {info['elementwise']}"


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scorematch": scorematch.__version__,
        "scorematch_threads": scorematch.get_num_threads(),
        "code_paths": code_paths(),
        "jax": jax.__version__ if HAVE_JAX else None,
        "jaxlib": None,
        "jax_backend": jax.default_backend() if HAVE_JAX else None,
        "folx": folx.__version__ if HAVE_FOLX else None,
        "torch": torch.__version__ if HAVE_TORCH else None,
        "torch_threads": torch.get_num_threads() if HAVE_TORCH else None,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "blas": None,
        "git_commit": None,
        "extension_built": _dt.datetime.fromtimestamp(os.path.getmtime(scorematch._core.__file__))
        .astimezone()
        .isoformat(timespec="seconds"),
        "env_overrides": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("OPENBLAS_", "OMP_", "MKL_", "RAYON_", "XLA_"))
        },
    }
    if HAVE_JAX:
        try:
            import jaxlib

            info["jaxlib"] = jaxlib.__version__
        except (ImportError, AttributeError):
            pass
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            f"{d.get('internal_api')} {d.get('version')} threads={d.get('num_threads')} "
            f"arch={d.get('architecture')}"
            for d in threadpool_info()
        ]
    except ImportError:
        pass
    info["git_commit"] = git_commit()
    return info


# --------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--sizes", default="S1,S2,S3", help="comma-separated subset of S1,S2,S3")
    p.add_argument("--dtypes", default="float32,float64", help="float32, float64 or both")
    p.add_argument("--ops", default=",".join(OPS), help="subset of " + ",".join(OPS))
    p.add_argument("--quick", action="store_true", help="few repeats (CI smoke run)")
    p.add_argument("--min-runs", type=int, default=None, help="default 4 (quick: 2)")
    p.add_argument("--max-runs", type=int, default=None, help="default 50 (quick: 5)")
    p.add_argument("--budget", type=float, default=None, help="seconds per timing, default 4")
    p.add_argument(
        "--block", type=int, default=5, help="timed consecutive calls per round, default 5"
    )
    p.add_argument("--no-jax", action="store_true", help="skip the JAX comparators")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparators")
    add_torch_threads(p)
    p.add_argument("--no-numpy", action="store_true", help="skip the numpy baseline")
    p.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    a = p.parse_args(argv)

    def pick(s: str, allowed: tuple[str, ...], what: str) -> list[str]:
        items = [x.strip() for x in s.split(",") if x.strip()]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            p.error(f"--{what}: unknown {bad or 'empty'}; choose from {','.join(allowed)}")
        return items

    a.sizes = pick(a.sizes, tuple(SIZES), "sizes")
    a.dtypes = pick(a.dtypes, DTYPES, "dtypes")
    a.ops = pick(a.ops, OPS, "ops")
    a.min_runs = a.min_runs or (2 if a.quick else 4)
    if a.block < 1:
        p.error(f"--block must be at least 1, got {a.block}")
    a.max_runs = max(a.max_runs or (5 if a.quick else 50), a.min_runs)
    a.budget = a.budget if a.budget is not None else (0.5 if a.quick else 4.0)
    return a


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "–"
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_jax = HAVE_JAX and not args.no_jax
    use_torch = HAVE_TORCH and not args.no_torch
    if use_torch:
        set_torch_threads(args.torch_threads)
    timer = Timer(args.min_runs, args.max_runs, args.budget, args.block)
    info = machine_info()

    peaks_before = {dt: gemm_peak(dt) for dt in args.dtypes}
    info["blas"] = machine_info()["blas"]  # threadpoolctl sees OpenBLAS once it has run

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for size in args.sizes:
        dim, width, depth, batch = SIZES[size]
        for dt in args.dtypes:
            model = EnergyMLP(dim, (width,) * depth, ACTIVATION, dt, alpha=0.0, seed=0)
            params = model.params
            X = (X_STD * np.random.default_rng(0).standard_normal((batch, dim))).astype(dt)
            ism_lap = "jax fwd-Laplacian"
            for op in args.ops:
                ours_fn = getattr(model, op)
                ours_out = ours_fn(X)
                fl = flops(op, dim, width, depth, batch)
                comps: dict[str, Comparator] = {}
                if not args.no_numpy:
                    comps.update(numpy_comparators(op, params, X))
                if use_jax:
                    comps.update(jax_comparators(op, params, X, ism_lap))
                if use_torch:
                    comps.update(torch_comparators(op, params, X))
                diffs: dict[str, float] = {}
                for name, (run, to_np) in comps.items():
                    d = rel_diff_outputs(op, to_np(run()), ours_out)
                    diffs[name] = d
                    if not d <= TOL[dt]:
                        failures.append(
                            f"{size} {dt} {op}: {name} differs from scorematch by {d:.3g} "
                            f"(tolerance {TOL[dt]:g})"
                        )
                timed = timer(
                    {OURS: lambda f=ours_fn, X=X: f(X), **{k: v[0] for k, v in comps.items()}}
                )
                t_ours = timed.pop(OURS)
                row: dict[str, Any] = {
                    "size": size,
                    "dim": dim,
                    "width": width,
                    "depth": depth,
                    "batch": batch,
                    "dtype": dt,
                    "op": op,
                    "flops": fl,
                    "ours": t_ours,
                    "gflops": fl / t_ours["median_s"] / 1e9,
                    "comparators": {k: {**t, "rel_diff": diffs[k]} for k, t in timed.items()},
                }
                for name, t in [("scorematch", t_ours), *timed.items()]:
                    extra = (
                        f"{row['gflops']:.1f} GFLOP/s"
                        if name == "scorematch"
                        else f"rel.diff {diffs[name]:.1e}"
                    )
                    print(
                        f"# {size} {dt:7} {op:17} {name:30} {fmt_ms(t['median_s']):>8} ms"
                        f"  ({t['runs']} runs)  {extra}",
                        file=sys.stderr,
                        flush=True,
                    )
                if op == "hessian_trace":
                    laps = {
                        k: v["median_s"] for k, v in row["comparators"].items() if k in _JAX_LAPS
                    }
                    if laps:
                        ism_lap = min(laps, key=laps.__getitem__)
                row["rel_diff"] = max(diffs.values()) if diffs else None
                if row["comparators"]:
                    best = min(row["comparators"], key=lambda k: row["comparators"][k]["median_s"])
                    row["fastest"] = best
                    row["speedup"] = row["comparators"][best]["median_s"] / t_ours["median_s"]
                else:
                    row["fastest"], row["speedup"] = None, None
                rows.append(row)

    peaks_after = {dt: gemm_peak(dt) for dt in args.dtypes}
    info["loadavg_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    peaks, peak_line = peak_report(peaks_before, peaks_after)
    for r in rows:
        r["frac_peak"] = r["gflops"] / peaks[r["dtype"]]
        r["frac_peak_for_2x"] = 2 * r["frac_peak"] / r["speedup"] if r["speedup"] else None

    # ---- report
    out = []
    out.append("# scorematch engine benchmark")
    out.append("")
    out.append(
        f"- machine: {info['cpu']}, {info['logical_cpus']} logical CPUs "
        f"({info['usable_cpus']} usable); python {info['python']}"
    )
    out.append(
        f"- scorematch {info['scorematch']} (git {info['git_commit'] or '?'}), "
        f"extension built {info['extension_built']}, "
        f"{info['scorematch_threads']} threads, {info['code_paths']}; numpy {info['numpy']}"
        + (f" ({'; '.join(info['blas'])})" if info["blas"] else "")
    )
    out.append(
        "- comparators: "
        + (
            f"jax {info['jax']} / jaxlib {info['jaxlib']} ({info['jax_backend']}, x64 on)"
            if use_jax
            else "jax not used" + ("" if HAVE_JAX else " (not installed)")
        )
        + (f", folx {info['folx']}" if use_jax and HAVE_FOLX else "")
        + "; "
        + (
            f"torch {info['torch']} ({info['torch_threads']} threads)"
            if use_torch
            else "torch not used" + ("" if HAVE_TORCH else " (not installed)")
        )
        + ("; numpy baseline" if not args.no_numpy else "")
    )
    if info["env_overrides"]:
        out.append(f"- environment overrides: {info['env_overrides']}")
    out.append(f"- date: {info['date']}")
    if info["loadavg"] and info["loadavg_after"]:
        out.append(
            "- load average (1, 5, 15 min) before: "
            + ", ".join(f"{x:.2f}" for x in info["loadavg"])
            + "; after: "
            + ", ".join(f"{x:.2f}" for x in info["loadavg_after"])
            + f" (on {info['usable_cpus']} CPUs)"
        )
    out.append(peak_line)
    out.append(
        f"- timing: median over {args.min_runs}–{args.max_runs} rounds (or {args.budget:g} s) "
        f"of ≥ {args.block} consecutive calls filling ≥ {BLOCK_S * 1e3:.0f} ms, each block after a {PAUSE * 1e3:.0f} ms pause and one untimed "
        "call, alternating with the comparators' blocks; after 2 warm-up calls; softplus, "
        "depth 3, X ~ N(0, 2²), alpha = 0"
    )
    out.append(
        "- FLOPs (nominal, MAC = Σ_{l=1..L} n_{l-1}·n_l, hidden layers only): energy "
        "2·B·MAC; score 2× energy; hessian_trace 2·B·(dim+2)·MAC (all layers in full); "
        "ism_loss_and_grad 3× hessian_trace"
    )
    out.append(
        "- speed-up = fastest comparator's time / ours; rel. diff = max|theirs−ours| / "
        "max|theirs| over output arrays and comparators"
    )
    out.append("")
    out.append(
        "| size (d, w, L, B) | dtype | op | ours ms | GFLOP/s | % peak | fastest comparator "
        "| its ms | speed-up | % peak for 2× | rel. diff | other comparators (ms) |"
    )
    out.append("|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|")
    for r in rows:
        comps = r["comparators"]
        others = ", ".join(
            f"{k} {fmt_ms(v['median_s'])}" for k, v in comps.items() if k != r["fastest"]
        )
        best_t = comps[r["fastest"]]["median_s"] if r["fastest"] else None
        out.append(
            f"| {r['size']} ({r['dim']}, {r['width']}, {r['depth']}, {r['batch']}) | {r['dtype']} "
            f"| {r['op']} | {fmt_ms(r['ours']['median_s'])} | {r['gflops']:.1f} "
            f"| {100 * r['frac_peak']:.1f} | {r['fastest'] or '–'} | {fmt_ms(best_t)} "
            f"| {'–' if r['speedup'] is None else format(r['speedup'], '.2f') + '×'} "
            f"| {'–' if r['frac_peak_for_2x'] is None else format(100 * r['frac_peak_for_2x'], '.0f')} "
            f"| {'–' if r['rel_diff'] is None else format(r['rel_diff'], '.1e')} "
            f"| {others or '–'} |"
        )
    if failures:
        out.append("")
        out.append("**DISAGREEMENT beyond tolerance:**")
        out.extend(f"- {f}" for f in failures)
    print("\n".join(out), flush=True)

    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "machine": info,
                    "gemm_peak_gflops": peaks,
                    "gemm_peak_before": peaks_before,
                    "gemm_peak_after": peaks_after,
                    "settings": {k: v for k, v in vars(args).items() if k != "json"},
                    "rows": rows,
                    "failures": failures,
                },
                fh,
                indent=1,
            )
    if failures:
        print("\nFAIL: comparator outputs disagree with scorematch:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
