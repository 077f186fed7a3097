"""Built-in datasets: reproducible samplers; exact Gaussian-mixture densities and scores."""

import dataclasses
import re
import warnings
from typing import get_args

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
    with pytest.raises(ValueError, match="^n must be at least 0, got -1$"):
        datasets.get("moons").sample(-1)


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
@pytest.mark.parametrize(("n", "shown"), [(5.0, "float"), (True, "bool"), ("5", "str")])
def test_counts_and_seeds_of_the_wrong_type_are_type_errors(name, n, shown):
    # They were ValueErrors, unlike every other count and seed of the package.
    ds = datasets.get(name)
    with pytest.raises(TypeError, match=f"^n must be an int, got {shown}$"):
        ds.sample(n)
    with pytest.raises(TypeError, match=f"^seed must be an int, got {shown}$"):
        ds.sample(5, seed=n)
    with pytest.raises(
        ValueError, match=r"^n must be at most 9223372036854775807, got 9223372036854775808$"
    ):
        ds.sample(2**63)
    assert ds.sample(np.int64(5), seed=np.uint8(1)).shape == (5, 2)


def test_the_typed_names_of_get_are_every_name_with_its_type():
    # get's overloads tell type checkers which names give a GaussianMixture: they must list
    # every name, each with the type get returns for it.
    mixtures, toys = get_args(datasets._MixtureName), get_args(datasets._ToyName)
    assert sorted(mixtures + toys) == sorted(datasets.names())
    assert all(isinstance(datasets.get(n), datasets.GaussianMixture) for n in mixtures)
    assert all(isinstance(datasets.get(n), datasets.ToyDataset) for n in toys)


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


def test_mixture_log_prob_far_out_is_minus_infinity():
    """Where every component's quadratic form overflows, log p is -Inf, not NaN, and no
    warning is raised."""
    gm = datasets.get("8gaussians")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp = gm.log_prob(np.array([[1e300, 0.0], [0.0, 0.0], [-1e200, 1e200]]))
    assert lp[0] == -np.inf and lp[2] == -np.inf and np.isfinite(lp[1])


def test_mixture_score_far_out_is_the_nearest_components_score():
    """Past |x| ~ 1e154 every quadratic form overflows; the score is still finite: that of
    the component nearest in its own metric (here the wider one), as just inside the range
    where the forms are still finite. Before, NaN and a RuntimeWarning."""
    gm = datasets.gaussian_mixture([[0.0, 0.0], [3.0, 0.0]], [np.eye(2), 2 * np.eye(2)])
    X = np.array([[1e150, 0.0], [1e200, 0.0], [-1e200, 1e200], [1e300, -1e300]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = gm.score(X)
    np.testing.assert_allclose(s, -(X - [3.0, 0.0]) / 2, rtol=1e-12)
    eight = datasets.get("8gaussians")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s8 = eight.score(X)
    np.testing.assert_allclose(s8, -X / 0.04, rtol=1e-12, atol=1e-12)


def test_mixture_sampling_matches_the_mixture_covariance():
    """In 4-D, where a transposed Cholesky factor would give the wrong covariance (by 2.0 on
    a scale of 9.2). Measured over seeds 1-5 with 200 000 draws: mean within 0.012,
    covariance within 0.054; asserted: 0.05 and 0.15."""
    gm = _mixture(4, 1)
    X = gm.sample(200_000, seed=1)
    mu = gm.weights @ gm.means
    cov = sum(
        w * (C + np.outer(m, m)) for w, C, m in zip(gm.weights, gm.covs, gm.means, strict=True)
    ) - np.outer(mu, mu)
    assert np.abs(X.mean(axis=0) - mu).max() < 0.05
    assert np.abs(np.cov(X.T) - cov).max() < 0.15


def test_bad_mixtures_are_errors():
    with pytest.raises(ValueError, match="covs must have shape"):
        datasets.gaussian_mixture(np.zeros((2, 2)), np.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        datasets.gaussian_mixture(np.zeros((1, 2)), -np.eye(2)[None])
    with pytest.raises(ValueError, match="weights"):
        datasets.gaussian_mixture(np.zeros((2, 1)), np.ones((2, 1, 1)), [1.0, -1.0])


@pytest.mark.parametrize("name", ["moons", "8gaussians"])
@pytest.mark.parametrize(("n", "size"), [(10**15, "14.2 PiB"), (2**62, "64 EiB")])
def test_a_sample_larger_than_memory_is_a_memory_error_naming_n(name, n, size):
    # numpy's "Unable to allocate 7.1 PiB for an array with shape (10**15,)" (or, past the
    # address space, the ValueError "array is too big") did not name n. 10**15 float64 are
    # past the 128 TiB address space of any x86-64 process, overcommit or not.
    want = f"cannot allocate {n} points of dimension 2 (n={n}): the points alone take {size}"
    with pytest.raises(MemoryError, match=f"^{re.escape(want)}$"):
        datasets.get(name).sample(n)


@pytest.mark.parametrize(
    ("weights", "want"),
    [
        (
            [-1.0],
            "weights must be 1 non-negative number, one per component (shape (1,)), got [-1.0]",
        ),
        (0.5, "weights must be 1 non-negative number, one per component (shape (1,)), got 0.5"),
    ],
)
def test_the_weights_of_one_component_are_one_number(weights, want):
    # "weights must be 1 non-negative numbers".
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        datasets.gaussian_mixture(np.zeros((1, 1)), np.ones((1, 1, 1)), weights=weights)
    want = "weights must be 2 non-negative numbers, one per component (shape (2,)), got [1, -1]"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        datasets.gaussian_mixture(np.zeros((2, 1)), np.ones((2, 1, 1)), weights=[1, -1])


def test_mixture_weights_are_normalized():
    means, covs = [[0.0, 0.0], [2.0, 1.0], [-1.0, 3.0]], np.tile(np.eye(2), (3, 1, 1))
    a = datasets.GaussianMixture(means, covs, weights=[2.0, 3.0, 5.0])
    b = datasets.GaussianMixture(means, covs, weights=[0.2, 0.3, 0.5])
    X = datasets.get("moons").sample(50, seed=1)
    np.testing.assert_allclose(a.log_prob(X), b.log_prob(X), rtol=0, atol=1e-12)


def test_the_toy_geometries_are_the_documented_ones():
    g = datasets.get("8gaussians")
    k = np.arange(8) * np.pi / 4
    np.testing.assert_array_equal(g.means, 2.0 * np.stack([np.cos(k), np.sin(k)], axis=1))
    np.testing.assert_array_equal(g.covs, np.tile(0.04 * np.eye(2), (8, 1, 1)))
    # Rings: uniform density along the rings, so each ring holds a share of the points
    # proportional to its radius (binomial s.e. ≤ 0.0011 at 200 000 points).
    radii = np.array([0.75, 1.5, 2.25, 3.0])
    r = np.linalg.norm(datasets.get("rings").sample(200_000, seed=0), axis=1)
    nearest = np.argmin(np.abs(r[:, None] - radii[None, :]), axis=1)
    share = np.bincount(nearest, minlength=4) / r.size
    np.testing.assert_allclose(share, radii / radii.sum(), atol=0.006)
    assert abs(r.mean() - (radii**2).sum() / radii.sum()) < 0.02


def test_toy_datasets_default_to_seed_0_and_are_2d():
    for name in datasets.names():
        ds = datasets.get(name)
        assert ds.dim == 2
        np.testing.assert_array_equal(ds.sample(7), ds.sample(7, seed=0))
        assert not np.array_equal(ds.sample(7), ds.sample(7, seed=1))


def test_toy_datasets_are_immutable():
    ds = datasets.get("moons")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"


@pytest.mark.parametrize(
    "means", [np.zeros(2), np.zeros((1, 2, 1)), np.zeros((0, 2)), np.zeros((2, 0))]
)
def test_mixture_means_must_be_k_by_d(means):
    with pytest.raises(
        ValueError, match=re.escape(f"means must have shape (K, d), got {means.shape}")
    ):
        datasets.gaussian_mixture(means, np.ones((1, 1, 1)))


@pytest.mark.parametrize("what", ["means", "covs"])
def test_mixture_parameters_must_be_finite(what):
    means, covs = np.zeros((2, 2)), np.tile(np.eye(2), (2, 1, 1))
    (means if what == "means" else covs)[1, 0] = np.nan
    with pytest.raises(ValueError, match=f"^{what} contains NaN or Inf$"):
        datasets.gaussian_mixture(means, covs)


def test_mixture_covariances_must_be_symmetric():
    cov = np.array([[[1.0, 0.5], [0.0, 1.0]]])
    with pytest.raises(ValueError, match="^covs must be symmetric$"):
        datasets.gaussian_mixture(np.zeros((1, 2)), cov)


def test_mixture_weights_may_be_zero_but_not_all_zero():
    means, covs = np.array([[0.0], [5.0]]), np.ones((2, 1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log 0 = -inf on purpose: no RuntimeWarning
        gm = datasets.gaussian_mixture(means, covs, weights=[1.0, 0.0])
        np.testing.assert_allclose(gm.score([[0.0]]), [[0.0]], atol=1e-15)
    np.testing.assert_allclose(gm.weights, [1.0, 0.0])
    np.testing.assert_allclose(gm.log_prob([[0.0]]), [-0.5 * np.log(2 * np.pi)], rtol=1e-12)
    want = "weights must not all be 0 (they are divided by their sum), got [0, 0]"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        datasets.gaussian_mixture(means, covs, weights=[0, 0])


def test_mixture_weights_are_normalized_whatever_their_scale():
    # Their sum overflowed to Inf, and every weight became 0.
    means, covs = np.array([[0.0], [5.0]]), np.ones((2, 1, 1))
    gm = datasets.gaussian_mixture(means, covs, weights=[1e308, 1.5e308])
    np.testing.assert_allclose(gm.weights, [0.4, 0.6], rtol=1e-15)
    assert gm.sample(3).shape == (3, 1)


@pytest.mark.parametrize("what", ["means", "covs", "weights"])
def test_mixture_parameters_are_refused_complex_or_masked(what):
    # Complex ones lost their imaginary part (with a ComplexWarning); masks were ignored.
    good = {"means": np.zeros((2, 1)), "covs": np.ones((2, 1, 1)), "weights": np.ones(2)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            TypeError, match=f"^{what} must be an array of real numbers, got dtype complex128$"
        ):
            datasets.gaussian_mixture(**{**good, what: good[what] + 1j})
    masked = np.ma.masked_array(good[what], mask=np.ones(good[what].shape, dtype=bool))
    want = f"{what} is a masked array; its mask would be ignored: fill them ({what}.filled(value))"
    with pytest.raises(TypeError, match=f"^{re.escape(want)}$"):
        datasets.gaussian_mixture(**{**good, what: masked})
    datasets.gaussian_mixture(**{**good, what: good[what].astype(int)})  # integers are numbers


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="longdouble is float64 here"
)
def test_mixture_values_too_large_for_float64_say_so():
    big = np.longdouble("1e400")
    means = np.array([[0.0], [big]])
    want = "means has values too large for float64 (|x| > 1.8e308), first at index (1, 0); rescale them"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
            datasets.gaussian_mixture(means, np.ones((2, 1, 1)))
        gm = datasets.gaussian_mixture([[0.0]], [[[1.0]]])
        X = np.array([[0.0], [big]])
        want = (
            "X has values too large for float64 (|x| > 1.8e308), first at row 1; rescale the data"
        )
        for f in (gm.log_prob, gm.score):
            with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
                f(X)


@pytest.mark.parametrize("X", [np.zeros((3, 3)), np.zeros(2), np.zeros((1, 2, 1))])
def test_mixture_log_prob_and_score_need_rows_of_dim(X):
    gm = datasets.get("8gaussians")
    for f in (gm.log_prob, gm.score):
        with pytest.raises(ValueError, match=re.escape(f"X must have shape (n, 2), got {X.shape}")):
            f(X)


def test_single_gaussian_log_prob_and_score_at_and_off_its_mean():
    # A mixture not symmetric about the origin: log p peaks at the mean (value -log(2*pi)
    # for a standard 2-D Gaussian) and the score there is zero; at the origin the score
    # points towards the mean, Sigma^-1 (mu - x).
    gm = datasets.gaussian_mixture([[1.0, 2.0]], [np.eye(2)])
    lp = gm.log_prob([[1.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(lp, [-np.log(2 * np.pi), -np.log(2 * np.pi) - 2.5])
    np.testing.assert_allclose(gm.score([[1.0, 2.0], [0.0, 0.0]]), [[0.0, 0.0], [1.0, 2.0]])


def test_mixture_score_far_out_picks_the_component_nearest_by_its_mean():
    # Equal covariances and means as far out as x: every quadratic form overflows, and the
    # nearest component is decided by the distance to the means (here +1e160, not -1e160).
    gm = datasets.gaussian_mixture([[1e160, 0.0], [-1e160, 0.0]], [np.eye(2), np.eye(2)])
    s = gm.score([[2e160, 0.0], [-2e160, 0.0]])
    np.testing.assert_allclose(s, [[-1e160, 0.0], [1e160, 0.0]], rtol=1e-12)


def test_mixture_repr_names_it_and_gives_k_and_dim():
    assert repr(datasets.get("8gaussians")) == "GaussianMixture(name='8gaussians', K=8, dim=2)"
    gm = datasets.gaussian_mixture(np.zeros((3, 4)), np.tile(np.eye(4), (3, 1, 1)))
    assert repr(gm) == "GaussianMixture(name='gaussian_mixture', K=3, dim=4)"


# The toy samplers' documented shapes, checked on 200 000 points (seed 0). Tolerances are
# several standard errors wide.
_N = 200_000


def test_moons_are_two_interleaved_half_circles_of_radius_2():
    # Upper moon: circle of radius 2 about (-1, -0.5); lower moon: radius 2 about (1, 0.5);
    # half the points on each, noise 0.1, centred at the origin.
    X = datasets.get("moons").sample(_N, seed=0)
    np.testing.assert_allclose(X.mean(axis=0), [0.0, 0.0], atol=0.02)
    du = np.abs(np.linalg.norm(X - [-1.0, -0.5], axis=1) - 2.0)
    dl = np.abs(np.linalg.norm(X - [1.0, 0.5], axis=1) - 2.0)
    assert np.median(np.minimum(du, dl)) < 0.08  # 0.066 expected from the noise
    assert abs(np.mean(du < dl) - 0.5) < 0.01
    upper = X[du < dl]
    assert np.mean(upper[:, 1] > -0.5) > 0.93  # the upper moon is the upper half-circle


def test_circles_are_uniform_on_radii_1_and_2():
    X = datasets.get("circles").sample(_N, seed=0)
    r = np.linalg.norm(X, axis=1)
    inner = np.abs(r - 1.0) < np.abs(r - 2.0)
    assert abs(inner.mean() - 1 / 3) < 0.006  # share proportional to the radius
    assert np.median(np.minimum(np.abs(r - 1.0), np.abs(r - 2.0))) < 0.07  # noise 0.08
    theta = np.arctan2(X[:, 1], X[:, 0])
    octant = np.floor((theta + np.pi) / (np.pi / 4)).astype(int) % 8
    np.testing.assert_allclose(np.bincount(octant, minlength=8) / _N, 1 / 8, atol=0.005)


def test_two_spirals_wind_as_documented():
    # Point-symmetric pair of spirals of radius t/3, t = 3*pi*sqrt(u) (so r^2 is uniform
    # on [0, pi^2]); the polar angle is -t modulo pi.
    X = datasets.get("2spirals").sample(_N, seed=0)
    np.testing.assert_allclose(X.mean(axis=0), [0.0, 0.0], atol=0.03)
    r = np.linalg.norm(X, axis=1)
    assert abs((r**2).mean() - (np.pi**2 / 2 + 0.02)) < 0.05
    theta = np.arctan2(X[:, 1], X[:, 0])
    far = r > 1
    assert np.cos(2 * (theta + 3 * r))[far].mean() > 0.7  # 0.83 expected from the noise


def test_checkerboard_fills_the_even_cells_of_a_4x4_board_uniformly():
    X = datasets.get("checkerboard").sample(_N, seed=0) / 2.0  # cells of side 1 now
    assert X.min() >= -2.0 and X.max() < 2.0
    cell = np.floor(X).astype(int)
    assert np.all((cell[:, 0] + cell[:, 1]) % 2 == 0)
    counts = np.bincount((cell[:, 0] + 2) * 4 + (cell[:, 1] + 2), minlength=16) / _N
    np.testing.assert_allclose(counts[counts > 0], 1 / 8, atol=0.005)
    assert np.count_nonzero(counts) == 8
    np.testing.assert_allclose((X - np.floor(X)).mean(axis=0), 0.5, atol=0.01)


def test_pinwheel_has_five_equal_arms_bending_with_the_radius():
    # Half-scale points f rotated by 2*pi*k/5 + 0.25*exp(f_0), f_0 ~ N(1, 0.3^2),
    # f_1 ~ N(0, 0.1^2); |f| ~ f_0, so E|X/2|^2 = 1 + 0.09 + 0.01.
    X = datasets.get("pinwheel").sample(_N, seed=0) / 2.0
    r = np.linalg.norm(X, axis=1)
    assert abs((r**2).mean() - 1.1) < 0.02
    a = np.arctan2(X[:, 1], X[:, 0]) - 0.25 * np.exp(r)
    assert np.cos(5 * a).mean() > 0.75  # 0.85 expected
    arm = np.round(a * 5 / (2 * np.pi)).astype(int) % 5
    np.testing.assert_allclose(np.bincount(arm, minlength=5) / _N, 0.2, atol=0.006)


def test_swissroll_is_a_spiral_of_radius_t_over_5():
    # t uniform on [1.5*pi, 4.5*pi], point t*(cos t, sin t)/5 plus noise 0.1.
    X = datasets.get("swissroll").sample(_N, seed=0)
    r = np.linalg.norm(X, axis=1)
    assert abs(r.mean() - 3 * np.pi / 5) < 0.02
    assert abs((r**2).mean() - (9.75 * np.pi**2 / 25 + 0.02)) < 0.03
    theta = np.arctan2(X[:, 1], X[:, 0])
    assert np.cos(theta - 5 * r)[r > 1].mean() > 0.75  # 0.88 expected


def test_a_mixture_sample_takes_memory_of_the_points_not_of_a_factor_per_point():
    # Each point gathered its component's Cholesky factor: n·dim² values (160 MB here, for
    # 1.6 MB of points; 2.9 TiB for 10^5 points at dim 2000, refused as "the points alone
    # take 1.49 GiB"). Drawn component by component, the same numbers.
    import tracemalloc

    d, n = 100, 2000
    rng = np.random.default_rng(0)
    covs = np.stack([np.eye(d) + 0.1 * np.outer(v, v) for v in rng.normal(size=(2, d))])
    mixture = datasets.gaussian_mixture(rng.normal(size=(2, d)), covs)
    tracemalloc.start()
    try:
        x = mixture.sample(n, seed=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * n * d * 8
    r = np.random.default_rng(3)
    comp = r.choice(2, size=n, p=mixture.weights)
    z = r.standard_normal((n, d))
    chol = np.linalg.cholesky(covs)
    want = mixture.means[comp] + np.einsum("nij,nj->ni", chol[comp], z)
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-12)
