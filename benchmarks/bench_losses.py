"""Benchmark of the losses alone against the losses with their gradient.

    python benchmarks/bench_losses.py            # S1-S3, both dtypes, a markdown table
    python benchmarks/bench_losses.py --quick --sizes S1 --dtypes float32   # CI smoke run

For each objective, ``model.<obj>_loss(X)`` and ``model.<obj>_loss_and_grad(X)`` (the same
value, bit for bit; the first skips the reverse pass) are timed with bench_engine's Timer
(alternating blocks of calls, median wall time) at the engine benchmark's sizes, softplus,
X ~ N(0, 2²), 2 threads by default. SSM uses one Gaussian projection, DSM noise_std 0.1, ESM
the model's own score as target. The speed-up is the gradient call's time over the loss
call's: what a validation loss or a held-out score gains by calling the loss alone.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from collections.abc import Callable
from typing import Any

import _blas_env  # noqa: F401  (before numpy: see its docstring)
import numpy as np
import scorematch
from bench_engine import SIZES, Timer, git_commit
from scorematch import EnergyMLP


def calls(model: EnergyMLP, X: np.ndarray) -> dict[str, tuple[Callable[[], Any], ...]]:
    """Per objective: the loss alone, then the loss with its gradient."""
    T = model.score(X)
    return {
        "ism": (lambda: model.ism_loss(X), lambda: model.ism_loss_and_grad(X)),
        "esm": (lambda: model.esm_loss(X, T), lambda: model.esm_loss_and_grad(X, T)),
        "ssm": (lambda: model.ssm_loss(X), lambda: model.ssm_loss_and_grad(X)),
        "dsm": (lambda: model.dsm_loss(X, 0.1), lambda: model.dsm_loss_and_grad(X, 0.1)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="S1,S2,S3")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--quick", action="store_true", help="few repeats (CI smoke run)")
    args = parser.parse_args(argv)
    timer = Timer(2, 5, 0.2) if args.quick else Timer(4, 50, 2.0)
    print("# scorematch benchmark: losses alone against losses with their gradient\n")
    print(
        f"- scorematch {scorematch.__version__} (git {git_commit()}), "
        f"{scorematch.get_num_threads()} threads; date: {_dt.datetime.now(_dt.timezone.utc).isoformat()}\n"
    )
    print("| size (d, w, L, B) | dtype | objective | loss ms | loss and grad ms | speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for size in args.sizes.split(","):
        d, w, depth, batch = SIZES[size]
        X = 2.0 * np.random.default_rng(0).standard_normal((batch, d))
        for dtype in args.dtypes.split(","):
            model = EnergyMLP(d, hidden=(w,) * depth, dtype=dtype, seed=0)
            Xd = X.astype(dtype)
            for obj, (alone, with_grad) in calls(model, Xd).items():
                t = timer({"loss": alone, "grad": with_grad})
                a, g = t["loss"]["median_s"] * 1e3, t["grad"]["median_s"] * 1e3
                print(
                    f"| {size} {SIZES[size]} | {dtype} | {obj} | {a:.3g} | {g:.3g} | "
                    f"{g / a:.2f}× |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
