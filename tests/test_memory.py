"""Memory stays O(n·dim) plus a fixed workspace per thread (no per-row tape)."""

import platform
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import resource, numpy as np, scorematch as sm
    n, dim = 200_000, 64
    X = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    m = sm.EnergyMLP(dim, hidden=(32, 32), dtype="float32")
    m.hessian_trace(X[:1000]); m.ism_loss_and_grad(X[:1000])  # warm up the workspaces
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = m.hessian_trace(X)
    loss, g = m.ism_loss_and_grad(X)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) / 1024)  # MiB
    """
)


def test_hessian_trace_and_ism_grad_do_not_grow_with_the_batch():
    # A tape of the whole batch would need n·(dim+2)·width·4 B per layer ≈ 1.7 GB here; the
    # engine's chunked passes need the output (0.8 MB) and per-thread workspaces (a few MB).
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    grown_mib = float(out.stdout.strip())
    assert grown_mib < 64, f"peak memory grew by {grown_mib:.1f} MiB"


RELEASE_SCRIPT = textwrap.dedent(
    """
    import numpy as np, scorematch as sm

    def rss_mib():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    m = sm.EnergyMLP(2, hidden=(64, 64), seed=0)
    before = rss_mib()
    # The process's first run: the thread pool it starts is allocated after the chains'
    # state, above it on the heap.
    res = m.sample(400_000, n_steps=2, method="mala")
    del res
    print(rss_mib() - before)  # MiB
    """
)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="glibc's heap",
)
def test_a_large_sampling_run_gives_its_state_back_to_the_system():
    # 400 000 chains hold ~160 MiB of state (ChaCha streams, positions, gradients), freed in
    # pieces below glibc's mmap threshold: without malloc_trim the process kept them
    # resident after the result was gone whenever anything allocated during the run (here
    # the thread pool) sat above them on the heap (measured: +160 MiB).
    out = subprocess.run(
        [sys.executable, "-c", RELEASE_SCRIPT], capture_output=True, text=True, check=True
    )
    grown_mib = float(out.stdout.strip())
    assert grown_mib < 40, f"{grown_mib:.1f} MiB still resident after the run"
