"""Benchmark of scorematch.dask: distributed scoring throughput and the per-step overhead of
the distributed fit, against the same work on one process.

    python benchmarks/bench_dask.py                 # 10^7 rows, prints a markdown table
    python benchmarks/bench_dask.py --quick         # 10^6 rows, fewer fit steps (CI smoke run)
    python benchmarks/bench_dask.py --out results/dask-DATE.md

Model: softplus MLP, dim 2, width 64, depth 3, float32 and float64.

Scoring: ``score`` of n rows (default 10^7) drawn from N(0, I), in blocks of 250 000 rows:

    local      model.score(X) on one numpy array, the engine on all cores
    threads    scorematch.dask.score(model, X) on Dask's threaded scheduler
    cluster    the same on a LocalCluster of 2 worker processes (1 Dask thread each, the
               engine set to 1 thread per worker: 2 cores in all, as the other rows)

X is generated and persisted where it is used (on the workers for the cluster) before the
clock starts, and the result is persisted there too (``.persist()`` + wait): what is timed
is the scoring, not moving 10^7 rows to the driver. rows/s = n / median time of --repeats.
GFLOP/s counts the score's forward + reverse pass as 2·(2·MACs) per row.

Fit: ``scorematch.dask.fit`` (ism, batch 256) on 20 000 rows in 8 blocks against
``model.fit`` on the same rows; overhead per step = (distributed − local time) / steps.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

import _blas_env  # noqa: F401  (before numpy: see its docstring)
import dask
import dask.array as da
import numpy as np
import scorematch as sm
import scorematch.dask as smd
from distributed import Client, LocalCluster, wait

DIM, WIDTH, DEPTH = 2, 64, 3
BLOCK = 250_000


def make_model(dtype: str) -> sm.EnergyMLP:
    return sm.EnergyMLP(DIM, hidden=(WIDTH,) * DEPTH, alpha=1.0, dtype=dtype, seed=0)


def macs_per_row() -> int:
    return DIM * WIDTH + (DEPTH - 1) * WIDTH * WIDTH + WIDTH


def _same(block: Any) -> Any:
    return block


def median_time(fn: Any, repeats: int) -> float:
    fn()  # warm-up: workspaces, thread pools, the model shipped to the workers
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def score_rows(n: int, dtype: str, client: Client, repeats: int) -> dict[str, float]:
    model = make_model(dtype)
    X = da.random.default_rng(0).standard_normal((n, DIM), chunks=(BLOCK, DIM)).astype(dtype)
    out: dict[str, float] = {}

    Xl = X.compute(scheduler="threads")
    out["local"] = median_time(lambda: model.score(Xl), repeats)

    with dask.config.set(scheduler="threads"):
        Xt = X.persist()

        def threads() -> None:
            smd.score(model, Xt).persist()

        out["threads"] = median_time(threads, repeats)

    with client.as_current(), dask.config.set(scheduler=client):
        Xc = client.persist(X)
        wait(Xc)

        def cluster() -> None:
            # A fresh input name each time: the same graph would find the last run's
            # result still held by the cluster and return at once.
            Xi = Xc.map_blocks(_same, dtype=Xc.dtype, token=uuid.uuid4().hex)
            r = smd.score(model, Xi).persist()
            wait(r)
            del r

        out["cluster"] = median_time(cluster, repeats)
    # Same numbers everywhere (a row's result does not depend on its batch).
    head = slice(0, 1000)
    np.testing.assert_array_equal(smd.score(model, X[head]).compute(), model.score(Xl[head]))
    return out


def fit_overhead(dtype: str, client: Client, epochs: int) -> dict[str, float]:
    X = np.random.default_rng(1).normal(size=(20_000, DIM)).astype(dtype)
    args: dict[str, Any] = {"epochs": epochs, "batch_size": 256, "lr": 1e-3}
    steps = epochs * -(-X.shape[0] // 256)
    out: dict[str, float] = {"steps": steps}
    t0 = time.perf_counter()
    make_model(dtype).fit(X, validation=None, progress=False, **args)
    out["local"] = time.perf_counter() - t0
    dX = da.from_array(X, chunks=(2_500, DIM))
    with dask.config.set(scheduler="threads"):
        t0 = time.perf_counter()
        smd.fit(make_model(dtype), dX, **args)
        out["threads"] = time.perf_counter() - t0
    with client.as_current(), dask.config.set(scheduler=client):
        t0 = time.perf_counter()
        smd.fit(make_model(dtype), dX, **args)
        out["cluster"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10^6 rows, 1 fit epoch")
    ap.add_argument("--rows", type=int, default=None, help="rows to score (default 10^7)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--out", default=None, help="also write the tables to this Markdown file")
    a = ap.parse_args()
    n = a.rows or (1_000_000 if a.quick else 10_000_000)
    repeats = 2 if a.quick else a.repeats
    epochs = 1 if a.quick else 3

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster, set_as_default=False)
    client.run(sm.set_num_threads, 1)
    lines = [
        (
            f"# bench_dask ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
            f"dask {dask.__version__}, scorematch {sm.__version__})"
        ),
        "",
        f"Scoring {n:.0e} rows, dim {DIM}, width {WIDTH}, depth {DEPTH}, blocks of {BLOCK}:",
        "",
        "| dtype | where | seconds | rows/s | GFLOP/s | vs local |",
        "|---|---|---|---|---|---|",
    ]
    flops = 4.0 * macs_per_row()
    dtypes = a.dtypes.split(",")
    for dtype in dtypes:
        t = score_rows(n, dtype, client, repeats)
        for where, s in t.items():
            lines.append(
                f"| {dtype} | {where} | {s:.3f} | {n / s:.3g} | {n * flops / s / 1e9:.1f} "
                f"| {t['local'] / s:.2f}x |"
            )
        print("\n".join(lines[-3:]), flush=True)
    lines += [
        "",
        "Fit (ism, batch 256, 20 000 rows in 8 blocks of 2 500):",
        "",
        (
            "| dtype | steps | local s/step | threads s/step | cluster s/step "
            "| overhead/step threads | overhead/step cluster |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for dtype in dtypes:
        f = fit_overhead(dtype, client, epochs)
        k = f["steps"]
        lines.append(
            f"| {dtype} | {k:.0f} | {f['local'] / k * 1e3:.2f} ms | {f['threads'] / k * 1e3:.2f} ms"
            f" | {f['cluster'] / k * 1e3:.2f} ms | {(f['threads'] - f['local']) / k * 1e3:.2f} ms"
            f" | {(f['cluster'] - f['local']) / k * 1e3:.2f} ms |"
        )
        print(lines[-1], flush=True)
    client.close()
    cluster.close()
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
