"""Benchmark of Langevin sampling: chain-steps per second, and single-point score latency.

    python benchmarks/bench_sample.py                  # full run, prints a markdown table
    python benchmarks/bench_sample.py --quick          # fewer repeats
    python benchmarks/bench_sample.py --quick --rows L1 --no-jax --no-latency   # CI smoke run
    python benchmarks/bench_sample.py --latency-only    # the single-point latency table alone
    python benchmarks/bench_sample.py --out results/sample-DATE.md

Rows (dim, width, depth, chains, steps), softplus MLP, alpha = 1 (so that chains stay put),
step size 1e-2, chains started at N(0, I):

    L1 = (2,  64,  3, 4096, 100)
    L2 = (16, 128, 3, 1024, 100)

in float32 and float64, for ULA and MALA. Every step is x ← x + (ε/2)·s(x) + √ε·z with
step_size = ε; MALA adds the Metropolis–Hastings test with the energy from the same pass.

Comparators, in the same run when importable, with the same parameters:

    JAX      jit of lax.fori_loop over the same update; batched MLP energy, score by
             value_and_grad of the summed energy (one forward + reverse pass, energies as aux
             for MALA); noise from jax.random. x64 enabled so float64 is float64.
    PyTorch  (skipped when not installed) autograd score in a Python loop of steps.

Timing: bench_engine's Timer: two warm-up calls each (JAX compiles then), then rounds
alternating ours and the comparators', each a 3 ms pause (see _blas_env.py), an untimed call
that wakes the library's thread pool, and timed calls filling at least 20 ms (one call, at
these sizes); median wall time of the timed calls. chain-steps/s = chains·steps / median time.
Speed-up = fastest comparator's time / ours.

GFLOP/s: one step of a chain is one score evaluation (MALA takes the energy from the same
forward pass), 4·MAC FLOPs with MAC = Σ_l n_{l-1}·n_l over the hidden layers, the engine
benchmark's count for `score`; elementwise work, the output layer and the random draws are
not counted. "% peak" divides it by numpy's 1024² matmul rate of the dtype, measured before
and after the run (the larger is used, as in bench_engine); "% peak for 2×" is the share of it that twice the
fastest comparator's rate would take (bench_engine's column of that name).

Latency: one score call on one point (dim 2, width 64, depth 3), numpy array in and out:
ours ``model.score(x)``, JAX ``np.asarray(jit(score)(x))``, PyTorch (autograd, eager),
numpy (hand-written reverse pass); median over batches of calls.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import _blas_env  # noqa: F401  (before numpy: see its docstring)
import numpy as np
import scorematch

# Run as a script, this folder is on sys.path: share the engine benchmark's timer and its
# set-up of the optional comparators (x64 JAX).
from bench_engine import (
    HAVE_JAX,
    HAVE_TORCH,
    Timer,
    add_torch_threads,
    code_paths,
    flops,
    gemm_peak,
    git_commit,
    jax,
    jnp,
    peak_report,
    set_torch_threads,
    torch,
)
from scorematch import EnergyMLP

ROWS: dict[str, tuple[int, int, int, int, int]] = {
    "L1": (2, 64, 3, 4096, 100),
    "L2": (16, 128, 3, 1024, 100),
}
DTYPES = ("float32", "float64")
METHODS = ("ula", "mala")
EPS = 1e-2
ALPHA = 1.0


def make_model(dim: int, width: int, depth: int, dtype: str) -> EnergyMLP:
    return EnergyMLP(dim, hidden=(width,) * depth, activation="softplus", alpha=ALPHA, seed=0,
                     dtype=dtype)  # fmt: skip


# -- JAX ---------------------------------------------------------------------------------------


def jax_sampler(model: EnergyMLP, method: str, n_chains: int, steps: int) -> Callable[[], Any]:
    dt = jnp.float32 if model.dtype == np.float32 else jnp.float64
    p = [jnp.asarray(a) for a in model.params]
    layers = [(p[i], p[i + 1]) for i in range(0, len(p) - 2, 2)]
    w, c = p[-2], p[-1]
    coef = dt(0.5 * EPS)
    r = dt(np.sqrt(EPS))

    def energies(x: Any) -> Any:
        h = x
        for W, b in layers:
            h = jax.nn.softplus(h @ W.T + b)
        return (h @ w.T)[:, 0] + c[0] + 0.5 * ALPHA * jnp.sum(x * x, axis=1)

    def e_and_g(x: Any) -> tuple[Any, Any]:
        (_, e), g = jax.value_and_grad(lambda x: (jnp.sum(energies(x)), energies(x)),
                                       has_aux=True)(x)  # fmt: skip
        return e, g

    def grad_only(x: Any) -> Any:
        return jax.grad(lambda x: jnp.sum(energies(x)))(x)

    def ula(x: Any, key: Any) -> Any:
        def body(_: int, carry: Any) -> Any:
            x, key = carry
            key, k = jax.random.split(key)
            z = jax.random.normal(k, x.shape, dt)
            return (x - coef * grad_only(x) + r * z, key)

        return jax.lax.fori_loop(0, steps, body, (x, key))[0]

    def mala(x: Any, key: Any) -> Any:
        e, g = e_and_g(x)

        def body(_: int, carry: Any) -> Any:
            x, e, g, key, acc = carry
            key, k1, k2 = jax.random.split(key, 3)
            z = jax.random.normal(k1, x.shape, dt)
            y = x - coef * g + r * z
            ey, gy = e_and_g(y)
            fwd = jnp.sum((y - x + coef * g) ** 2, axis=1)
            rev = jnp.sum((x - y + coef * gy) ** 2, axis=1)
            a = e - ey - rev / (2 * EPS) + fwd / (2 * EPS)
            u = jax.random.uniform(k2, e.shape, dt)
            ok = jnp.log(u) < a
            return (
                jnp.where(ok[:, None], y, x),
                jnp.where(ok, ey, e),
                jnp.where(ok[:, None], gy, g),
                key,
                acc + ok,
            )

        out = jax.lax.fori_loop(0, steps, body, (x, e, g, key, jnp.zeros(x.shape[0], dt)))
        return out[0]

    run = jax.jit(ula if method == "ula" else mala)
    x0 = jnp.asarray(np.random.default_rng(0).normal(size=(n_chains, model.dim)), dt)
    key = jax.random.PRNGKey(0)
    return lambda: run(x0, key).block_until_ready()


# -- PyTorch (optional) ------------------------------------------------------------------------


def torch_sampler(model: EnergyMLP, method: str, n_chains: int, steps: int) -> Callable[[], Any]:
    dt = torch.float32 if model.dtype == np.float32 else torch.float64
    p = [torch.as_tensor(a, dtype=dt) for a in model.params]
    layers = [(p[i], p[i + 1]) for i in range(0, len(p) - 2, 2)]
    w, c = p[-2], p[-1]

    def energies(x: Any) -> Any:
        h = x
        for W, b in layers:
            h = torch.nn.functional.softplus(h @ W.T + b)
        return (h @ w.T)[:, 0] + c[0] + 0.5 * ALPHA * (x * x).sum(1)

    def e_and_g(x: Any) -> tuple[Any, Any]:
        x = x.detach().requires_grad_(True)
        e = energies(x)
        (g,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), g

    def run() -> Any:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(n_chains, model.dim, dtype=dt, generator=gen)
        e, g = e_and_g(x)
        for _ in range(steps):
            z = torch.randn(x.shape, dtype=dt, generator=gen)
            y = x - 0.5 * EPS * g + np.sqrt(EPS) * z
            ey, gy = e_and_g(y)
            if method == "ula":
                x, e, g = y, ey, gy
                continue
            fwd = ((y - x + 0.5 * EPS * g) ** 2).sum(1)
            rev = ((x - y + 0.5 * EPS * gy) ** 2).sum(1)
            a = e - ey - rev / (2 * EPS) + fwd / (2 * EPS)
            ok = torch.log(torch.rand(e.shape, dtype=dt, generator=gen)) < a
            x = torch.where(ok[:, None], y, x)
            e = torch.where(ok, ey, e)
            g = torch.where(ok[:, None], gy, g)
        return x

    return run


# -- timing ------------------------------------------------------------------------------------


def timed(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds per call, with the engine benchmark's timer (blocks of at least one
    timed call, alternating between libraries)."""
    return {k: v["median_s"] for k, v in Timer(rounds, rounds, 0.0, block=1)(fns).items()}


def latency(dtype: str, reps: int) -> dict[str, float]:
    model = make_model(2, 64, 3, dtype)
    x = np.random.default_rng(0).normal(size=(1, 2)).astype(dtype)
    fns: dict[str, Callable[[], Any]] = {"scorematch": lambda: model.score(x)}
    params = [np.asarray(a) for a in model.params]

    def np_score() -> Any:
        hs, ds = x, []
        for i in range(0, len(params) - 2, 2):
            z = hs @ params[i].T + params[i + 1]
            ds.append(1.0 / (1.0 + np.exp(-z)))
            hs = np.logaddexp(0, z).astype(dtype, copy=False)
        gb = params[-2]
        for j in range(len(ds) - 1, -1, -1):
            gb = (gb * ds[j]) @ params[2 * j]
        return -(gb + ALPHA * x)

    fns["numpy"] = np_score
    np.testing.assert_allclose(np_score(), model.score(x), rtol=1e-4, atol=1e-5)
    if HAVE_JAX:
        p = [jnp.asarray(a) for a in params]

        def e(xx: Any) -> Any:
            h = xx
            for i in range(0, len(p) - 2, 2):
                h = jax.nn.softplus(h @ p[i].T + p[i + 1])
            return jnp.sum(h @ p[-2].T) + 0.5 * ALPHA * jnp.sum(xx * xx)

        js = jax.jit(lambda xx: -jax.grad(e)(xx))
        fns["jax"] = lambda: np.asarray(js(x))
    if HAVE_TORCH:
        tp = [torch.from_numpy(a) for a in params]

        def torch_score() -> Any:
            xx = torch.from_numpy(x).requires_grad_(True)
            h = xx
            for i in range(0, len(tp) - 2, 2):
                h = torch.nn.functional.softplus(h @ tp[i].T + tp[i + 1])
            e = (h @ tp[-2].T).sum() + 0.5 * ALPHA * (xx * xx).sum()
            (g,) = torch.autograd.grad(e, xx)
            return (-g).numpy()

        np.testing.assert_allclose(torch_score(), model.score(x), rtol=1e-4, atol=1e-5)
        fns["torch"] = torch_score
    out = {}
    for k, f in fns.items():
        for _ in range(50):
            f()
        batch = []
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            batch.append((time.perf_counter() - t0) / reps)
        out[k] = statistics.median(batch)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few repeats (smoke run)")
    ap.add_argument("--out", help="also write the markdown report to this file")
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    ap.add_argument("--no-jax", action="store_true", help="skip the JAX comparator")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency table")
    ap.add_argument("--latency-only", action="store_true", help="skip the sampling table")
    add_torch_threads(ap)
    args = ap.parse_args()
    set_torch_threads(args.torch_threads)
    if args.latency_only:
        args.rows = []
    global HAVE_JAX
    HAVE_JAX = HAVE_JAX and not args.no_jax
    rounds = 2 if args.quick else 7
    git = git_commit() or "?"
    comps = (["jax " + jax.__version__] if HAVE_JAX else []) + (
        [f"torch {torch.__version__} ({torch.get_num_threads()} threads)"]
        if HAVE_TORCH
        else ["torch not installed (skipped)"]
    )
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    peaks_before = {dt: gemm_peak(dt) for dt in DTYPES}

    # Timings first (progress on stderr), the report once the GEMM peak was measured again.
    results = []
    for name in args.rows:
        d, w, depth, chains, steps = ROWS[name]
        for dtype in DTYPES:
            model = make_model(d, w, depth, dtype)
            for method in METHODS:
                fns: dict[str, Callable[[], Any]] = {
                    "ours": lambda m=model, me=method, n=chains, k=steps: m.sample(
                        n, n_steps=k, step_size=EPS, method=me
                    )
                }
                if HAVE_JAX:
                    fns["jax"] = jax_sampler(model, method, chains, steps)
                if HAVE_TORCH:
                    fns["torch"] = torch_sampler(model, method, chains, steps)
                t = timed(fns, rounds)
                results.append((name, dtype, method, t))
                print(f"{name} {dtype} {method}: {t}", file=sys.stderr, flush=True)
    lat_dtypes = () if args.no_latency else DTYPES
    lat = {dt: latency(dt, 200 if args.quick else 2000) for dt in lat_dtypes}
    peaks_after = {dt: gemm_peak(dt) for dt in DTYPES}
    peaks, peak_line = peak_report(peaks_before, peaks_after)

    lines = [
        "# scorematch sampling benchmark",
        "",
        (
            f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
            f"python {platform.python_version()}"
        ),
        (
            f"- scorematch {scorematch.__version__} (git {git}), "
            f"{scorematch.get_num_threads()} threads, {code_paths()}; "
            f"comparators: {', '.join(comps)}"
        ),
        (
            f"- date: {date}; load average before: {', '.join(f'{v:.2f}' for v in load_before)}"
            f"; after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}"
        ),
        (
            f"- softplus, alpha = {ALPHA}, step_size = {EPS}, init N(0, I); median of {rounds} "
            "rounds interleaved with the comparators, after one warm-up call"
        ),
        peak_line,
    ]
    if results:
        lines += [
            "",
            (
                "| row (d, w, L, chains, steps) | dtype | method | ours ms | ours chain-steps/s "
                "| GFLOP/s | % peak | fastest comparator | its chain-steps/s | speed-up "
                "| % peak for 2× | others (chain-steps/s) |"
            ),
            "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
        ]
    for name, dtype, method, t in results:
        d, w, depth, chains, steps = ROWS[name]
        step_flops = flops("score", d, w, depth, 1)
        rate = {k: chains * steps / v for k, v in t.items()}
        others = {k: v for k, v in t.items() if k != "ours"}
        if others:
            best = min(others, key=others.__getitem__)
            rest = ", ".join(f"{k} {rate[k]:.3g}" for k in others if k != best) or "–"
            need = 200 * rate[best] * step_flops / 1e9 / peaks[dtype]
            cmp_ = (
                f"{best} | {rate[best]:.3g} | {others[best] / t['ours']:.2f}× | {need:.0f} | {rest}"
            )
        else:
            cmp_ = "– | – | – | – | –"
        gflops = rate["ours"] * step_flops / 1e9
        lines.append(
            f"| {name} ({d}, {w}, {depth}, {chains}, {steps}) | {dtype} | {method} "
            f"| {t['ours'] * 1e3:.2f} | {rate['ours']:.3g} | {gflops:.1f} "
            f"| {100 * gflops / peaks[dtype]:.1f} | {cmp_} |"
        )
    if lat:
        call_flops = flops("score", 2, 64, 3, 1)
        lines += [
            "",
            (
                "Single-point score latency (dim 2, width 64, depth 3; numpy array in and out), "
                f"µs, and ours in GFLOP/s ({call_flops / 1e3:.1f} kFLOP per call):"
            ),
            "",
            "| dtype | scorematch | GFLOP/s | jax | torch | numpy |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for dtype, l in lat.items():
            us = {
                k: f"{l[k] * 1e6:.1f}" if k in l else "–"
                for k in ("scorematch", "jax", "torch", "numpy")
            }
            lines.append(
                f"| {dtype} | {us['scorematch']} | {call_flops / l['scorematch'] / 1e9:.1f} "
                f"| {us['jax']} | {us['torch']} | {us['numpy']} |"
            )
    print("\n".join(lines), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
