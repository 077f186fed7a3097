"""Command line: ``scorematch demo`` (``python -m scorematch demo``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np


def _demo(args: argparse.Namespace) -> int:
    from scorematch import EnergyMLP, get_num_threads

    rng = np.random.default_rng(args.seed)
    # Data: a ring of 8 Gaussians, the classic 2-D score-matching test.
    angles = rng.integers(0, 8, size=args.n) * (np.pi / 4)
    X = np.stack([2 * np.cos(angles), 2 * np.sin(angles)], axis=1)
    X += 0.2 * rng.normal(size=X.shape)
    model = EnergyMLP(2, hidden=(64, 64, 64), activation="softplus", alpha=0.01, seed=args.seed)
    print(f"scorematch demo: {model!r} on {get_num_threads()} threads")
    for name, fn in [
        ("energy", model.energy),
        ("score", model.score),
        ("hessian_trace", model.hessian_trace),
        ("ism_loss_and_grad", model.ism_loss_and_grad),
    ]:
        fn(X)  # warm-up
        t0 = time.perf_counter()
        fn(X)
        print(f"  {name:<18} {len(X)} points in {1e3 * (time.perf_counter() - t0):8.3f} ms")
    print(f"  ISM loss of the untrained model: {model.ism_loss(X):.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scorematch`` console script."""
    parser = argparse.ArgumentParser(prog="scorematch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="time the engine on a built-in 2-D dataset")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--n", type=int, default=4096, help="number of data points")
    args = parser.parse_args(argv)
    try:
        return _demo(args)
    except (ValueError, TypeError) as err:
        print(f"scorematch: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
