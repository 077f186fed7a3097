"""The built-in demo and its command line."""

import subprocess
import sys

import pytest
from scorematch.demo import run


def test_demo_learns_and_samples(tmp_path):
    out = tmp_path / "demo.png"
    # The demo's own training run (3-4 s on 2 cores), fewer chains.
    r = run("8gaussians", out=str(out), n_samples=500, n_steps=300, verbose=False)
    assert r.heldout_ism < r.untrained_ism - 15.0  # measured: 0.001 -> -24.3
    assert (
        r.fisher_divergence is not None and r.fisher_divergence < 5.0
    )  # measured 1.9; E|s|^2 = 49
    assert r.mmd < 0.01  # measured 1.6e-3 with 2000 chains; exact vs exact ~ 5e-4
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert r.figure is None
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help_and_bad_options():
    ok = subprocess.run(
        [sys.executable, "-m", "scorematch", "demo", "--help"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "--dataset" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "scorematch", "demo", "--dataset", "nope"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("name", ["moons", "checkerboard"])
def test_demo_runs_on_sampler_only_datasets(tmp_path, name):
    r = run(name, out=None, n_train=2000, epochs=2, n_samples=100, n_steps=20, verbose=False)
    assert r.fisher_divergence is None and r.figure is None
