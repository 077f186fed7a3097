"""Memory stays O(n·dim) plus a fixed workspace per thread (no per-row tape)."""

import subprocess
import sys
import textwrap

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
