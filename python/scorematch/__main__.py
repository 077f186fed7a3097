"""Command line: ``scorematch demo`` (also ``python -m scorematch demo``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scorematch`` console script."""
    from scorematch import datasets

    parser = argparse.ArgumentParser(
        prog="scorematch",
        description="Energy-based models by score matching, with a fast Rust core.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit a built-in 2-D dataset, sample it with Langevin dynamics, plot",
        description="Fit an energy MLP by implicit score matching to a built-in dataset, "
        "draw MALA samples, print timings and quality figures, and write a figure.",
    )
    demo.add_argument("--dataset", default="8gaussians", choices=datasets.names())
    demo.add_argument("--out", default="demo.png", help="figure path (PNG); '' for none")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    try:
        from scorematch.demo import run

        run(args.dataset, out=args.out or None, seed=args.seed, epochs=args.epochs)
    except (ValueError, TypeError, OSError) as err:
        print(f"scorematch: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
