"""Summary of several runs of bench_engine.py (their --json files): per row, our median time,
GFLOP/s and share of the GEMM peak, the fastest comparator's time, the speed-up in each run,
the median speed-up and how many runs reached 2x.

    python benchmarks/compare_runs.py benchmarks/results/engine-2026-12-04-1035.json \\
        benchmarks/results/engine-2026-12-04-1040.json ...

Why: on the development VM the comparators' times move between runs of the same code far more
than within one (the JAX forward Laplacian of S1 float32 took 0.96-1.34 ms in three
consecutive runs of 2026-12-04, ours 0.46-0.50 ms), so one run's ratio says less than the
spread of several. The runs should time one build of the extension, with the same settings,
on an idle machine: the header gives each run's build, settings and load average, and says
when builds or settings differ. It reads only the JSON files; nothing is timed here.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

Key = tuple[str, str, str]


def _load(path: Path) -> dict[str, Any]:
    with path.open() as f:
        run: dict[str, Any] = json.load(f)
    if "rows" not in run or "machine" not in run:
        raise SystemExit(f"{path}: not a bench_engine.py --json file (no 'rows'/'machine')")
    return run


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:#.3g}" if ms < 100 else f"{ms:.0f}"


def _ratio(x: float) -> str:
    # Rounded down: a speed-up of 1.998 must not read "2.00×" beside a count that says it
    # missed 2×.
    return f"{math.floor(x * 100) / 100:.2f}×"


def _same(runs: list[dict[str, Any]], what: str, get: Any) -> str:
    values = [json.dumps(get(r), sort_keys=True) for r in runs]
    if len(set(values)) == 1:
        return ""
    return f" (different {what}: compare with care)"


def _timed(row: dict[str, Any] | None) -> bool:
    return row is not None and row.get("speedup") is not None and bool(row.get("fastest"))


def summarize(paths: list[Path]) -> str:
    """The markdown summary of the runs in ``paths`` (in the order given)."""
    runs = [_load(p) for p in paths]
    machine = [r["machine"] for r in runs]
    builds = [str(m.get("extension_built")) for m in machine]
    loads = [
        f"{m['loadavg'][0]:.2f} → {m['loadavg_after'][0]:.2f}"
        if m.get("loadavg") and m.get("loadavg_after")
        else "?"
        for m in machine
    ]
    lines = [
        "# scorematch engine benchmark: several runs",
        "",
        f"- runs: {', '.join(p.name for p in paths)}",
        f"- dates: {', '.join(str(m.get('date')) for m in machine)}",
        f"- extension built: {', '.join(sorted(set(builds)))}"
        + _same(runs, "builds", lambda r: r["machine"].get("extension_built")),
        f"- checked-out commit at each run: {', '.join(str(m.get('git_commit')) for m in machine)}",
        "- threads and code paths: "
        + ", ".join(
            sorted({f"{m.get('scorematch_threads')}, {m.get('code_paths')}" for m in machine})
        )
        + _same(
            runs,
            "threads, code paths or settings",
            lambda r: (
                r["machine"].get("scorematch_threads"),
                r["machine"].get("code_paths"),
                r.get("settings"),
            ),
        ),
        (
            f"- 1-minute load average before → after each run (on {machine[0].get('logical_cpus')}"
            f" CPUs): {', '.join(loads)}"
        ),
        (
            "- per run: speed-up = fastest comparator's median time / ours (bench_engine.py),"
            " rounded down; ms, GFLOP/s and % of the GEMM peak are the medians over the runs"
            " of each run's figure; – where a run has no timed comparison for the row"
        ),
        "",
        (
            "| size (d, w, L, B) | dtype | op | ours ms | GFLOP/s | % peak "
            "| fastest comparator (per run) | its ms | speed-up per run | median speed-up "
            "| runs at 2× |"
        ),
        "|---|---|---|---:|---:|---:|---|---:|---|---:|---:|",
    ]
    keys: list[Key] = []
    per_run: list[dict[Key, dict[str, Any]]] = []
    for run in runs:
        rows = {(r["size"], r["dtype"], r["op"]): r for r in run["rows"]}
        per_run.append(rows)
        keys += [k for k in rows if k not in keys]
    untimed: list[str] = []
    for key in keys:
        rows_of_key = [rows.get(key) for rows in per_run]
        timed = [r for r in rows_of_key if r is not None and _timed(r)]
        if len(timed) < len(runs):
            untimed.append(f"{' '.join(key)} ({len(runs) - len(timed)} of {len(runs)})")
        if not timed:
            continue
        r0 = timed[0]
        size = f"{r0['size']} ({r0['dim']}, {r0['width']}, {r0['depth']}, {r0['batch']})"
        ours = statistics.median(r["ours"]["median_s"] for r in timed)
        gflops = statistics.median(r["gflops"] for r in timed)
        peak = statistics.median(100 * r["frac_peak"] for r in timed)
        theirs = statistics.median(r["comparators"][r["fastest"]]["median_s"] for r in timed)
        names = sorted({r["fastest"] for r in timed})
        speedups = [r["speedup"] for r in timed]
        each = " ".join(
            _ratio(r["speedup"]) if r is not None and _timed(r) else "–" for r in rows_of_key
        )
        at_2x = sum(s >= 2.0 for s in speedups)
        lines.append(
            f"| {size} | {key[1]} | {key[2]} | {_ms(ours)} | {gflops:.1f} | {peak:.1f} "
            f"| {', '.join(names)} | {_ms(theirs)} "
            f"| {each} | {_ratio(statistics.median(speedups))} "
            f"| {at_2x} of {len(runs)} |"
        )
    if untimed:
        lines += [
            "",
            f"Rows missing or without a timed comparator in some runs: {'; '.join(untimed)}",
        ]
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
