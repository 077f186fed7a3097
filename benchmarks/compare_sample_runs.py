"""Summary of several runs of bench_sample.py (their --out reports): per row, our chain-steps
per second in each run and their median, the fastest comparator's median, the speed-up in
each run and its median, and how far each run's rate is from the median of reference runs.

    python benchmarks/compare_sample_runs.py benchmarks/results/sample-2026-12-04-1937.md \\
        benchmarks/results/sample-2026-12-04-1939.md --reference \\
        benchmarks/results/sample-2026-12-04-1202.md benchmarks/results/sample-2026-12-04-1204.md

The README's sampling table and its sentences on other runs are this script's output: the
comparators' times move between runs far more than ours, so one run's ratio says less than
the spread of several. It reads only the reports; nothing is timed here.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

Key = tuple[str, str, str]  # row, dtype, method


def _rows(path: Path) -> dict[Key, tuple[float, float, float]]:
    """The report's sampling table: per row, our chain-steps/s, the fastest comparator's and
    the speed-up as the report prints it (from the unrounded rates; NaN where none ran)."""
    found: dict[Key, tuple[float, float, float]] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("| L"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        row, dtype, method = cells[0].split(" (")[0], cells[1], cells[2]
        ours, theirs, up = (
            math.nan if c == "–" else float(c.rstrip("×")) for c in (cells[4], cells[8], cells[9])
        )
        found[(row, dtype, method)] = (ours, theirs, up)
    if not found:
        raise SystemExit(f"{path}: no sampling table (not a bench_sample.py --out report)")
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("reports", nargs="+", type=Path, help="bench_sample.py --out reports")
    ap.add_argument(
        "--reference", type=Path, nargs="+", help="runs whose median ours is measured against"
    )
    a = ap.parse_args(argv)
    runs = [_rows(p) for p in a.reports]
    refs = [_rows(p) for p in a.reference or []]
    print(f"{len(runs)} runs: " + ", ".join(p.name for p in a.reports))
    if refs:
        print("reference (median of): " + ", ".join(p.name for p in a.reference))
    print()
    print(
        "| row | dtype | method | ours (M chain-steps/s) | median | comparator median | "
        "speed-up in each run | median | ours vs reference |"
    )
    print("|---|---|---|---|---:|---:|---|---:|---:|")
    worst = 0.0
    for key in runs[0]:
        ours = [r[key][0] for r in runs if key in r]
        theirs = [r[key][1] for r in runs if key in r]
        ups = [r[key][2] for r in runs if key in r and not math.isnan(r[key][2])]
        vs = "–"
        if refs and all(key in r for r in refs):
            base = statistics.median(r[key][0] for r in refs)
            off = [100 * (o / base - 1) for o in ours]
            worst = max(worst, *(abs(x) for x in off))
            vs = f"{min(off):+.1f} to {max(off):+.1f} %"
        each = " ".join(f"{u:.2f}×" for u in ups) or "–"
        median_up = f"{statistics.median(ups):.2f}×" if ups else "–"
        comparator = statistics.median(t for t in theirs if not math.isnan(t)) if ups else math.nan
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | "
            + " ".join(f"{o / 1e6:.2f}" for o in ours)
            + f" | {statistics.median(ours) / 1e6:.2f} M | {comparator / 1e6:.2f} M | {each} | "
            f"{median_up} | {vs} |"
        )
    if refs:
        print(f"\nours within {worst:.1f} % of the reference in every row and run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
