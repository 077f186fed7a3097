"""Built-in datasets: reproducible samplers; exact Gaussian-mixture densities and scores."""

import numpy as np
import pytest
from scorematch import datasets


@pytest.mark.parametrize("name", datasets.names())
def test_samples_are_reproducible_2d_and_finite(name):
    ds = datasets.get(name)
    a, b, c = ds.sample(500, seed=3), ds.sample(500, seed=3), ds.sample(500, seed=4)
    assert a.shape == (500, 2) and a.dtype == np.float64
    assert np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.3 < a.std() < 5.0  # on the scale the demo and tests expect
    assert ds.sample(0).shape == (0, 2)


def test_unknown_names_and_bad_counts_are_errors():
    with pytest.raises(ValueError, match="'moons'"):
        datasets.get("moon")
    with pytest.raises(ValueError, match="non-negative int"):
        datasets.get("moons").sample(-1)


def _mixture(d, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(3, d, d))
    covs = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    return datasets.gaussian_mixture(rng.normal(size=(3, d)) * 2, covs, [0.2, 0.3, 0.5])


@pytest.mark.parametrize("gm", [datasets.get("8gaussians"), _mixture(1, 0), _mixture(4, 1)])
def test_mixture_score_is_the_gradient_of_log_prob(gm):
    X = gm.sample(50, seed=5)
    h = 1e-5
    fd = np.empty_like(X)
    for k in range(gm.dim):
        e = np.zeros(gm.dim)
        e[k] = h
        fd[:, k] = (gm.log_prob(X + e) - gm.log_prob(X - e)) / (2 * h)
    np.testing.assert_allclose(gm.score(X), fd, rtol=1e-6, atol=1e-7)


def test_mixture_log_prob_is_normalized_and_sampling_matches_moments():
    gm = _mixture(1, 2)
    grid = np.linspace(-30, 30, 200_001)[:, None]
    mass = np.exp(gm.log_prob(grid)).sum() * (grid[1, 0] - grid[0, 0])
    assert abs(mass - 1.0) < 1e-6
    X = gm.sample(200_000, seed=1)
    mean = gm.weights @ gm.means[:, 0]
    assert abs(X.mean() - mean) < 0.03


def test_bad_mixtures_are_errors():
    with pytest.raises(ValueError, match="covs must have shape"):
        datasets.gaussian_mixture(np.zeros((2, 2)), np.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        datasets.gaussian_mixture(np.zeros((1, 2)), -np.eye(2)[None])
    with pytest.raises(ValueError, match="weights"):
        datasets.gaussian_mixture(np.zeros((2, 1)), np.ones((2, 1, 1)), [1.0, -1.0])
