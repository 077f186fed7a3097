"""Benchmark of training: seconds per epoch of EnergyMLP.fit for ism, ssm and dsm, beside the
same training loop written in JAX (and PyTorch when it is installed).

    python benchmarks/bench_fit.py                       # full run
    python benchmarks/bench_fit.py --quick               # smaller n, one timed epoch
    python benchmarks/bench_fit.py --out results.md      # also write the table as Markdown

Workloads (softplus MLP, depth 3, width 128, Adam lr 1e-3, batch 512, no validation):

    2-D mixture of 3 Gaussians, n = 100 000 rows  (196 minibatches per epoch)
    16-D mixture of 4 Gaussians, n = 20 480 rows  (40 minibatches; the exact ISM costs
                                                   dim + 2 = 18 forward passes per row)

Objectives: ism (exact), ssm (1 Gaussian projection per row), dsm (noise_std 0.1).

One epoch is: shuffle, then for each minibatch the loss, its exact parameter gradient and an
Adam step. The comparators do the same work:

    JAX    one jitted step per minibatch shape, the epoch run by lax.scan over the shuffled
           minibatches (no Python per step); ISM's Laplacian by bench_engine's hand-written
           batched forward Laplacian in jnp (faster than folx's and jax.hessian), SSM's tᵀHt by
           the same forward tape along the projection (faster than a jvp of the input
           gradient), DSM by the input gradient at the noisy points;
           optimizer optax.adam if optax is importable, else the same Adam written in jnp.
    torch  (skipped when not importable) the hand-written batched forward Laplacian for ISM,
           the same forward tape along the projection for SSM, autograd double-backward for
           DSM, torch.optim.Adam. Run so far with
           Debian's CPU-only torch 1.13 (results/fit-*-torch.md): PyPI's wheels pull CUDA.

Before timing, the JAX and PyTorch ISM losses and gradients of one minibatch are checked against
``ism_loss_and_grad`` (printed as "rel. diff"). Each library runs one untimed epoch first
(compilation, workspaces). Then the libraries take turns, one timed epoch each per round,
until every library has at least --epochs timed epochs and --budget seconds of them (at most
--max-epochs); the median is reported. Taking turns exposes every library to the same
drifts of this shared machine's speed, which run minutes apart by 10-30 %: a 16-D epoch
lasts about 0.1 s, and two of them in a row mostly measured the moment. Speed-up =
comparator's seconds per epoch / ours.

GFLOP/s (ours) counts the nominal matrix-product work of an epoch, n rows times, per row,
2·MAC per forward pass through the hidden layers (MAC = Σ_l n_{l-1}·n_l) times:
3·(dim + 2) for ism (bench_engine's count for ism_loss_and_grad), 3·(projections + 2) for
ssm (the same tape with the projections in place of the identity), and 7 for dsm (the
one-tangent tape, see rust/core/src/objective.rs). Elementwise work and the Adam step are
not counted. "% peak" divides it by numpy's 1024² matmul rate of the dtype, measured before
and after the run (the larger is used, as in bench_engine).
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

# Run as a script, this folder is on sys.path: the optional comparators (x64 JAX, torch)
# are set up once, in the engine benchmark.
from bench_engine import (
    HAVE_JAX,
    HAVE_TORCH,
    _jax_energy1,
    _jax_lap_fwd,
    add_torch_threads,
    code_paths,
    gemm_peak,
    git_commit,
    jax,
    jnp,
    macs,
    peak_report,
    rel_diff_outputs,
    set_torch_threads,
    torch,
)
from scorematch import EnergyMLP

try:
    import optax

    HAVE_OPTAX = True
except ImportError:
    HAVE_OPTAX = False

WIDTH, DEPTH, BATCH, LR = 128, 3, 512, 1e-3
NOISE_STD = 0.1
OBJECTIVES = ("ism", "ssm", "dsm")


def epoch_flops(n: int, dim: int, objective: str) -> float:
    """Nominal FLOPs of one epoch (see the module doc)."""
    passes = {"ism": 3 * (dim + 2), "ssm": 3 * (1 + 2), "dsm": 7}[objective]
    return 2.0 * macs(dim, WIDTH, DEPTH) * passes * n


def mixture(n: int, dim: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = 3.0 * rng.normal(size=(k, dim))
    return means[rng.integers(0, k, size=n)] + 0.5 * rng.normal(size=(n, dim))


# -- ours -------------------------------------------------------------------------------------


#: One library's training set up and warmed up: ``run(e)`` trains one epoch, shuffled by e.
Runner = Callable[[int], None]


def ours_runner(X: np.ndarray, objective: str, dtype: str) -> Runner:
    kwargs: dict[str, Any] = {}
    if objective == "ssm":
        kwargs = {"n_projections": 1}
    elif objective == "dsm":
        kwargs = {"noise_std": NOISE_STD}
    model = EnergyMLP(X.shape[1], hidden=(WIDTH,) * DEPTH, dtype=dtype, seed=0)
    Xd = X.astype(dtype)
    fit = {
        "objective": objective,
        "batch_size": BATCH,
        "lr": LR,
        "validation": None,
        "progress": False,
    }
    model.fit(Xd, epochs=1, **fit, **kwargs)  # warm-up: workspaces, thread pool

    def run(e: int) -> None:
        model.fit(Xd, epochs=1, seed=e + 1, **fit, **kwargs)

    return run


# -- JAX --------------------------------------------------------------------------------------


def _grad_x(P: list[Any], X: Any) -> Any:
    return jax.vmap(jax.grad(_jax_energy1, argnums=1), in_axes=(None, 0))(P, X)


def _jax_loss(objective: str) -> Callable[[list[Any], Any, Any], Any]:
    if objective == "ism":

        def ism(P: list[Any], X: Any, key: Any) -> Any:
            lap, g = _jax_lap_fwd(P, X)
            return jnp.mean(-lap + 0.5 * jnp.sum(g * g, axis=-1))

        return ism
    if objective == "ssm":

        def ssm(P: list[Any], X: Any, key: Any) -> Any:
            # A forward tape along t, as the forward Laplacian with the projection in place
            # of the identity: value h, D_t h and D_t^2 h per layer, batched GEMMs; 1.4-1.6x
            # faster than a vmapped jvp of the input gradient (forward-over-reverse).
            t = jax.random.normal(key, X.shape, X.dtype)
            h, J, lam = X, t, None
            for i in range((len(P) - 2) // 2):
                W, b = P[2 * i], P[2 * i + 1]
                z, A = h @ W.T + b, J @ W.T
                s1 = jax.nn.sigmoid(z)
                s2 = s1 * (1 - s1)
                lam = s2 * A * A if lam is None else s1 * (lam @ W.T) + s2 * A * A
                J = s1 * A
                h = jax.nn.softplus(z)
            w = P[-2][0]
            tg, tht = J @ w, lam @ w  # t . grad E and t^T (Hess E) t per row
            return jnp.mean(-tht + 0.5 * tg * tg)

        return ssm

    def dsm(P: list[Any], X: Any, key: Any) -> Any:
        eps = jax.random.normal(key, X.shape, X.dtype)
        g = _grad_x(P, X + NOISE_STD * eps)
        u = g - eps / NOISE_STD
        return jnp.mean(0.5 * jnp.sum(u * u, axis=-1))

    return dsm


def _adam() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(init, update) of Adam with PyTorch's constants, optax's if importable."""
    if HAVE_OPTAX:
        opt = optax.adam(LR, b1=0.9, b2=0.999, eps=1e-8)

        def update(g: Any, s: Any, p: Any) -> tuple[Any, Any]:
            up, s = opt.update(g, s, p)
            return optax.apply_updates(p, up), s

        return opt.init, update

    def init(p: Any) -> Any:
        z = jax.tree_util.tree_map(jnp.zeros_like, p)
        return (z, z, jnp.zeros((), jnp.int32))

    def update_hand(g: Any, s: Any, p: Any) -> tuple[Any, Any]:
        m, v, t = s
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        c1, c2 = 1 - 0.9**t, 1 - 0.999**t
        # c1, c2 are float64 under x64 (t is an integer): cast them to the parameters' dtype,
        # or a float32 update would be computed in float64 (and lax.scan refuse the carry).
        p = jax.tree_util.tree_map(
            lambda p, m, v: (
                p - LR * (m / c1.astype(p.dtype)) / (jnp.sqrt(v / c2.astype(p.dtype)) + 1e-8)
            ),
            p,
            m,
            v,
        )
        return p, (m, v, t)

    return init, update_hand


def jax_check(model: EnergyMLP, X: np.ndarray) -> float:
    """max relative difference of the JAX ISM loss and gradient vs ours on one minibatch."""
    P = [jnp.asarray(p) for p in model.params]
    loss, grads = jax.jit(jax.value_and_grad(_jax_loss("ism")))(P, jnp.asarray(X), None)
    return rel_diff_outputs("ism_loss_and_grad", (loss, grads), model.ism_loss_and_grad(X))


def jax_runner(X: np.ndarray, objective: str, dtype: str) -> Runner:
    model = EnergyMLP(X.shape[1], hidden=(WIDTH,) * DEPTH, dtype=dtype, seed=0)
    P0 = [jnp.asarray(p) for p in model.params]
    loss = _jax_loss(objective)
    init, update = _adam()
    vg = jax.value_and_grad(loss)

    def step(carry: Any, xb_key: Any) -> tuple[Any, Any]:
        P, s = carry
        xb, key = xb_key
        lv, g = vg(P, xb, key)
        P, s = update(g, s, P)
        return (P, s), lv

    n, d = X.shape
    full = n // BATCH

    @jax.jit
    def epoch(P: Any, s: Any, Xs: Any, rest: Any, key: Any) -> tuple[Any, Any, Any]:
        keys = jax.random.split(key, full + 1)
        (P, s), losses = jax.lax.scan(step, (P, s), (Xs, keys[:full]))
        if rest.shape[0]:
            (P, s), lr_ = step((P, s), (rest, keys[full]))
            losses = jnp.concatenate([losses, lr_[None]])
        return P, s, jnp.mean(losses)

    Xd = X.astype(dtype)
    rng = np.random.default_rng(0)

    state = [P0, init(P0)]

    def run(e: int) -> None:
        perm = rng.permutation(n)
        Xp = Xd[perm]
        Xs = jnp.asarray(Xp[: full * BATCH].reshape(full, BATCH, d))
        rest = jnp.asarray(Xp[full * BATCH :])
        P, s, _m = epoch(*state, Xs, rest, jax.random.PRNGKey(e))
        jax.block_until_ready(P)
        state[:] = [P, s]

    run(0)  # compile
    return run


# -- PyTorch ------------------------------------------------------------------------------------


def _torch_ism(P: list[Any], Xb: Any) -> Any:
    """The ISM loss of a minibatch in PyTorch, by the forward Laplacian: value h, tangents J
    (B, d, n), Laplacian lam (B, n)."""
    d = Xb.shape[1]
    h, J = Xb, torch.eye(d, dtype=Xb.dtype).expand(Xb.shape[0], d, d)
    lam = torch.zeros_like(Xb)
    for i in range((len(P) - 2) // 2):
        W, b = P[2 * i], P[2 * i + 1]
        z, A, mu = h @ W.T + b, J @ W.T, lam @ W.T
        s = torch.sigmoid(z)
        s1, s2 = s, s * (1 - s)
        h = torch.nn.functional.softplus(z)
        lam = s1 * mu + s2 * (A * A).sum(1)
        J = s1[:, None, :] * A
    w = P[-2][0]
    g, lap = J @ w, lam @ w
    return (-lap + 0.5 * (g * g).sum(1)).mean()


def torch_check(model: EnergyMLP, X: np.ndarray) -> float:
    """max relative difference of the PyTorch ISM loss and gradient vs ours on one minibatch."""
    P = [torch.tensor(p, requires_grad=True) for p in model.params]
    loss = _torch_ism(P, torch.tensor(X))
    # The output bias c has no effect on the ISM loss: autograd gives None for it.
    grads = [
        torch.zeros_like(p) if g is None else g
        for p, g in zip(P, torch.autograd.grad(loss, P, allow_unused=True), strict=True)
    ]
    return rel_diff_outputs(
        "ism_loss_and_grad",
        (loss.item(), [g.numpy() for g in grads]),
        model.ism_loss_and_grad(X),
    )


def torch_runner(X: np.ndarray, objective: str, dtype: str) -> Runner:  # pragma: no cover
    tdt = {"float32": torch.float32, "float64": torch.float64}[dtype]
    model = EnergyMLP(X.shape[1], hidden=(WIDTH,) * DEPTH, dtype=dtype, seed=0)
    P = [torch.tensor(p, dtype=tdt, requires_grad=True) for p in model.params]
    opt = torch.optim.Adam(P, lr=LR)
    Xt = torch.tensor(X, dtype=tdt)
    n = X.shape[0]
    L = (len(P) - 2) // 2

    def energy_grad(Xb: Any) -> Any:
        Xb = Xb.requires_grad_(True)
        h = Xb
        for i in range(L):
            h = torch.nn.functional.softplus(h @ P[2 * i].T + P[2 * i + 1])
        E = (h @ P[-2].T)[:, 0] + P[-1][0]
        (g,) = torch.autograd.grad(E.sum(), Xb, create_graph=True)
        return g

    def ism(Xb: Any) -> Any:
        return _torch_ism(P, Xb)

    def ssm(Xb: Any) -> Any:
        # The forward tape along t of the JAX comparator (value, D_t h, D_t^2 h per layer),
        # then autograd to the parameters: double backward through the input gradient does
        # more work for the same loss and gradient.
        t = torch.randn_like(Xb)
        h, J, lam = Xb, t, None
        for i in range(L):
            W, b = P[2 * i], P[2 * i + 1]
            z, A = h @ W.T + b, J @ W.T
            s1 = torch.sigmoid(z)
            s2 = s1 * (1 - s1)
            lam = s2 * A * A if lam is None else s1 * (lam @ W.T) + s2 * A * A
            J = s1 * A
            h = torch.nn.functional.softplus(z)
        w = P[-2][0]
        tg, tht = J @ w, lam @ w  # t . grad E and t^T (Hess E) t per row
        return (-tht + 0.5 * tg * tg).mean()

    def dsm(Xb: Any) -> Any:
        eps = torch.randn_like(Xb)
        g = energy_grad(Xb + NOISE_STD * eps)
        return (0.5 * ((g - eps / NOISE_STD) ** 2).sum(1)).mean()

    loss_fn = {"ism": ism, "ssm": ssm, "dsm": dsm}[objective]

    def epoch(e: int) -> None:
        perm = torch.randperm(n)
        for i in range(0, n, BATCH):
            Xb = Xt[perm[i : i + BATCH]].clone()
            opt.zero_grad()
            loss_fn(Xb).backward()
            opt.step()

    epoch(0)
    return epoch


def time_turns(
    runners: dict[str, Runner], epochs: int, budget: float, max_epochs: int
) -> dict[str, float]:
    """Median seconds per epoch of each runner, timed in turns (see the module doc)."""
    times: dict[str, list[float]] = {k: [] for k in runners}
    e = 0
    while e < max_epochs and (e < epochs or min(sum(t) for t in times.values()) < budget):
        e += 1
        for k, run in runners.items():
            t = time.perf_counter()
            run(e)
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(t) for k, t in times.items()}


# -- driver -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="seconds per epoch of EnergyMLP.fit vs JAX/PyTorch")
    p.add_argument("--quick", action="store_true", help="n / 10, one timed epoch")
    p.add_argument("--epochs", type=int, default=3, help="least timed epochs per library and entry")
    p.add_argument(
        "--budget", type=float, default=2.0, help="least timed seconds per library and entry"
    )
    p.add_argument(
        "--max-epochs", type=int, default=25, help="most timed epochs per library and entry"
    )
    p.add_argument("--out", metavar="PATH", help="also write the report as Markdown")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--objectives", default=",".join(OBJECTIVES))
    p.add_argument("--no-jax", action="store_true", help="time scorematch only (CI smoke run)")
    add_torch_threads(p)
    args = p.parse_args(argv)
    set_torch_threads(args.torch_threads)
    global HAVE_JAX
    HAVE_JAX = HAVE_JAX and not args.no_jax
    epochs = 1 if args.quick else args.epochs
    budget = 0.0 if args.quick else args.budget
    scale = 10 if args.quick else 1
    workloads = [
        ("2-D mixture", mixture(100_000 // scale, 2, 3, 0)),
        ("16-D mixture", mixture(20_480 // scale, 16, 4, 1)),
    ]
    load0 = os.getloadavg()
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    dtypes = args.dtypes.split(",")
    peaks_before = {dt: gemm_peak(dt) for dt in dtypes}

    # Timings first (progress on stderr), the report once the GEMM peak was measured again.
    results = []
    for name, X in workloads:
        for dtype in dtypes:
            m = EnergyMLP(X.shape[1], hidden=(WIDTH,) * DEPTH, dtype=dtype, seed=0)
            checks = []
            if HAVE_JAX:
                checks.append(f"jax {jax_check(m, X[:BATCH].astype(dtype)):.1e}")
            if HAVE_TORCH:
                checks.append(f"torch {torch_check(m, X[:BATCH].astype(dtype)):.1e}")
            check = ", ".join(checks) or "–"
            for obj in args.objectives.split(","):
                runners = {"ours": ours_runner(X, obj, dtype)}
                if HAVE_JAX:
                    runners["jax"] = jax_runner(X, obj, dtype)
                if HAVE_TORCH:
                    runners["torch"] = torch_runner(X, obj, dtype)
                t = time_turns(runners, epochs, budget, args.max_epochs)
                results.append((name, X.shape, dtype, obj, t, check))
                print(f"{name} {dtype} {obj}: {t}", file=sys.stderr, flush=True)
    peaks_after = {dt: gemm_peak(dt) for dt in dtypes}
    peaks, peak_line = peak_report(peaks_before, peaks_after)
    load1 = os.getloadavg()

    lines = [
        "# scorematch fit benchmark",
        "",
        (
            f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
            f"python {platform.python_version()}; scorematch {scorematch.__version__} "
            f"(git {git_commit() or '?'}), "
            f"{scorematch.get_num_threads()} threads, {code_paths()}"
        ),
        "- comparators: "
        + (f"jax {jax.__version__}" if HAVE_JAX else "jax not used")
        + ", ism by a hand-written forward Laplacian"
        + (f", optax {optax.__version__}" if HAVE_OPTAX else ", hand-written Adam")
        + (
            f"; torch {torch.__version__} ({torch.get_num_threads()} threads)"
            if HAVE_TORCH
            else "; torch not installed (skipped)"
        ),
        f"- date: {date}",
        peak_line,
        (
            f"- softplus, depth {DEPTH}, width {WIDTH}, batch {BATCH}, Adam lr {LR}; ssm: 1 Gaussian "
            f"projection; dsm: noise_std {NOISE_STD}; per entry, median of ≥ {epochs} timed epochs "
            f"and ≥ {budget:g} s per library (at most {args.max_epochs}), the libraries taking turns "
            "epoch by epoch, after one untimed epoch each"
        ),
        "",
        (
            "| data (n, dim) | dtype | objective | ours s/epoch | GFLOP/s | % peak | jax s/epoch "
            "| speed-up vs jax | torch s/epoch | speed-up vs torch | ism rel. diff |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (n, dim), dtype, obj, t, check in results:
        ours_s, tj, tt = t["ours"], t.get("jax"), t.get("torch")
        gflops = epoch_flops(n, dim, obj) / ours_s / 1e9
        lines.append(
            f"| {name} ({n}, {dim}) | {dtype} | {obj} | {ours_s:.3f} | "
            f"{gflops:.1f} | {100 * gflops / peaks[dtype]:.1f} | "
            + (f"{tj:.3f} | {tj / ours_s:.2f}× | " if tj else "– | – | ")
            + (f"{tt:.3f} | {tt / ours_s:.2f}× | " if tt else "– | – | ")
            + (check if obj == "ism" else "")
            + " |"
        )
    lines.append(
        f"\nload average (1, 5, 15 min) before: {', '.join(f'{v:.2f}' for v in load0)}; "
        f"after: {', '.join(f'{v:.2f}' for v in load1)} (on {os.cpu_count()} CPUs)"
    )
    print("\n".join(lines), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
