"""scorematch.diagnostics: ESS and rank-normalized split R-hat on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scorematch import diagnostics


def ar1(rng, n, m, d, rho):
    x = np.empty((n, m, d))
    x[0] = rng.normal(size=(m, d)) / np.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + rng.normal(size=(m, d))
    return x


def test_iid_draws(rng):
    t = rng.normal(size=(1000, 4, 3))
    for method in ("bulk", "basic"):
        ess = diagnostics.ess(t, method=method)
        assert ess.shape == (3,)
        assert np.all(np.abs(ess / 4000 - 1) < 0.15), ess
    rhat = diagnostics.split_rhat(t)
    assert rhat.shape == (3,) and np.all(np.abs(rhat - 1) < 0.01), rhat


def test_autocorrelated_chains_have_the_ar1_ess(rng):
    rho = 0.8
    t = ar1(rng, 4000, 4, 2, rho)
    want = 16000 * (1 - rho) / (1 + rho)
    ess = diagnostics.ess(t, method="basic")
    assert np.all(np.abs(ess / want - 1) < 0.2), (ess, want)


def test_chains_stuck_at_different_values(rng):
    t = rng.normal(size=(500, 4, 2)) * 0.1 + np.array([0.0, 1.0, 2.0, 3.0])[None, :, None]
    assert np.all(diagnostics.split_rhat(t) > 2)
    # A trending single chain: its two halves disagree.
    trend = np.linspace(0, 10, 400)[:, None, None] + rng.normal(size=(400, 1, 1))
    assert diagnostics.split_rhat(trend)[0] > 1.5


def test_heavy_tails_and_ties(rng):
    t = rng.standard_cauchy(size=(800, 4, 1))
    assert abs(diagnostics.split_rhat(t)[0] - 1) < 0.02
    assert diagnostics.ess(t)[0] > 2000
    ties = rng.integers(0, 3, size=(400, 4, 1)).astype(float)
    assert np.isfinite(diagnostics.split_rhat(ties)[0])


def test_two_dimensional_input_and_errors(rng):
    t = rng.normal(size=(100, 4))
    assert diagnostics.ess(t).shape == (1,)
    with pytest.raises(ValueError, match="n_draws, n_chains, dim"):
        diagnostics.ess(np.zeros(10))
    with pytest.raises(ValueError, match="at least 4 draws"):
        diagnostics.split_rhat(np.zeros((2, 3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        diagnostics.ess(np.full((10, 2, 1), np.nan))
    with pytest.raises(ValueError, match="method"):
        diagnostics.ess(t, method="tail")


def test_acceptance_summary():
    s = diagnostics.acceptance_summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["min"] == 0.5 and s["max"] == 0.7
