"""Summary of several runs of bench_engine.py (their --json files): per row, our median time,
the fastest comparator's, and the speed-up in each run, with the median speed-up and how many
runs reached 2x.

    python benchmarks/compare_runs.py benchmarks/results/engine-2026-12-04-1035.json \\
        benchmarks/results/engine-2026-12-04-1040.json ...

Why: on the development VM the comparators' times move between runs of the same code far more
than within one (the JAX forward Laplacian of S1 float32 took 0.89-1.34 ms in four runs on
one morning, ours 0.45-0.46 ms), so one run's ratio says less than the spread of several. The
runs should time one build of the extension on an idle machine; the script says when they
do not. It reads only the JSON files; nothing is timed here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        run: dict[str, Any] = json.load(f)
    if "rows" not in run or "machine" not in run:
        raise SystemExit(f"{path}: not a bench_engine.py --json file (no 'rows'/'machine')")
    return run


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def summarize(paths: list[Path]) -> str:
    """The markdown summary of the runs in ``paths`` (in the order given)."""
    runs = [_load(p) for p in paths]
    commits = sorted({str(r["machine"].get("git_commit")) for r in runs})
    builds = sorted({str(r["machine"].get("extension_built")) for r in runs})
    lines = [
        "# scorematch engine benchmark: several runs",
        "",
        f"- runs: {', '.join(p.name for p in paths)}",
        f"- dates: {', '.join(str(r['machine'].get('date')) for r in runs)}",
        f"- scorematch commits: {', '.join(commits)}; extension built: {', '.join(builds)}"
        + ("" if len(builds) == 1 else " (different builds: compare with care)"),
        (
            "- per run: speed-up = fastest comparator's median time / ours (bench_engine.py);"
            " ms, GFLOP/s and % of the GEMM peak below are the medians over the runs of each"
            " run's figure"
        ),
        "",
        (
            "| size (d, w, L, B) | dtype | op | ours ms | GFLOP/s | % peak "
            "| fastest comparator (per run) | its ms | speed-up per run | median speed-up "
            "| runs at 2× |"
        ),
        "|---|---|---|---:|---:|---:|---|---:|---|---:|---:|",
    ]
    keys: list[tuple[str, str, str]] = []
    by_key: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for run in runs:
        for row in run["rows"]:
            key = (row["size"], row["dtype"], row["op"])
            if key not in by_key:
                keys.append(key)
                by_key[key] = []
            by_key[key].append(row)
    for key in keys:
        rows = by_key[key]
        timed = [r for r in rows if r.get("speedup") is not None and r.get("fastest")]
        if not timed:
            continue
        r0 = rows[0]
        size = f"{r0['size']} ({r0['dim']}, {r0['width']}, {r0['depth']}, {r0['batch']})"
        ours = statistics.median(r["ours"]["median_s"] for r in timed)
        gflops = statistics.median(r["gflops"] for r in timed)
        peak = statistics.median(100 * r["frac_peak"] for r in timed)
        theirs = statistics.median(r["comparators"][r["fastest"]]["median_s"] for r in timed)
        names = sorted({r["fastest"] for r in timed})
        speedups = [r["speedup"] for r in timed]
        at_2x = sum(s >= 2.0 for s in speedups)
        lines.append(
            f"| {size} | {key[1]} | {key[2]} | {_ms(ours)} | {gflops:.1f} | {peak:.1f} "
            f"| {', '.join(names)} | {_ms(theirs)} "
            f"| {' '.join(f'{s:.2f}×' for s in speedups)} | {statistics.median(speedups):.2f}× "
            f"| {at_2x} of {len(timed)} |"
        )
    missing = [k for k in keys if len(by_key[k]) != len(runs)]
    if missing:
        lines += ["", f"Rows not in every run: {', '.join(' '.join(k) for k in missing)}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="bench_engine.py --json files")
    parser.add_argument("--out", type=Path, help="also write the summary to this file")
    args = parser.parse_args(argv)
    text = summarize(args.runs)
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
