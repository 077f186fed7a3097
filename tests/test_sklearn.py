"""scorematch.sklearn.ScoreMatchingDensity: scikit-learn's estimator checks, real values on a
Gaussian (log-density differences, held-out score, samples), Pipeline and GridSearchCV,
clone, determinism, sampling, NotFittedError, hyper-parameter errors, and that
``import scorematch`` does not import scikit-learn.

Bounds were set from measured values (in comments) with a margin of about 1.5-2x; every fit is
small and the whole file runs in a few seconds on 2 cores.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scorematch
from helpers import same_arrays
from scorematch import EnergyMLP, FitHistory

# The test extra installs scikit-learn; without it these tests skip, as the Dask ones do.
pytest.importorskip("sklearn")

from scorematch.sklearn import ScoreMatchingDensity
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

# A 2-D Gaussian with correlated, unequal axes, away from the origin.
MU = np.array([1.0, -2.0])
COV = np.array([[2.0, 0.6], [0.6, 0.5]])
PREC = np.linalg.inv(COV)


def gaussian_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(MU, COV, size=n)


def true_log_density(Z: np.ndarray) -> np.ndarray:
    """log N(Z; MU, COV) up to its constant."""
    d = Z - MU
    return -0.5 * np.einsum("ni,ij,nj->n", d, PREC, d)


X = gaussian_rows(4000, seed=0)
X_TEST = gaussian_rows(500, seed=1)
SMALL = {"hidden": (16,), "epochs": 5, "lr": 1e-2}  # fast settings for API tests


@pytest.fixture(scope="module")
def fitted() -> ScoreMatchingDensity:
    """A model that fits the Gaussian well (0.3 s)."""
    est = ScoreMatchingDensity(hidden=(32, 32), epochs=30, lr=3e-3, random_state=0)
    return est.fit(X)


# ------------------------------------------------------------------------ estimator checks

# Both configurations pass every check: no check is expected to fail. (check_array_api_input
# is skipped by scikit-learn itself unless SCIPY_ARRAY_API=1 is set; the estimator works on
# numpy arrays only.) Tiny networks and 2 epochs make the whole suite take about a second.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


_CHECKS = parametrize_with_checks(
    [
        ScoreMatchingDensity(hidden=(8,), epochs=2),
        ScoreMatchingDensity(
            hidden=(8, 4),
            epochs=2,
            dtype="float32",
            objective="dsm",
            noise_std=0.3,
            validation=0.2,
            patience=1,
            method="ula",
        ),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
# scikit-learn 1.7 (the oldest-numpy CI run) hands pytest a generator, which pytest deprecates.
_NAMES, _CASES = _CHECKS.mark.args


@pytest.mark.parametrize(_NAMES, list(_CASES), **_CHECKS.mark.kwargs)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------ real values


def test_score_samples_are_minus_energies_and_match_the_log_density(fitted):
    ss = fitted.score_samples(X_TEST)
    E = fitted.model_.energy(X_TEST)
    assert ss.shape == (500,) and ss.dtype == np.float64
    assert np.array_equal(ss, -E)
    # Differences between points are log-density ratios: compare after removing the means
    # (the model's log Z and the Gaussian's constant are both unknown here), on the 88% of
    # the rows within 2 standard deviations (the tails hold few training rows).
    lp = true_log_density(X_TEST)
    central = np.einsum("ni,ij,nj->n", X_TEST - MU, PREC, X_TEST - MU) < 4
    err = (ss - ss[central].mean()) - (lp - lp[central].mean())
    # Measured: rms 0.044 and max 0.146 there (log p spreads there with std 0.51).
    assert np.sqrt(np.mean(err[central] ** 2)) < 0.07
    assert np.abs(err[central]).max() < 0.25


def test_score_is_minus_the_ism_loss_and_near_the_true_models(fitted):
    """score = -J_ISM. For the true score s(x) = -PREC (x - MU), tr(∇s) = -tr(PREC), so its
    -J_ISM on X_TEST is tr(PREC) - ½ mean‖PREC d‖²: the best any model can do, up to the
    sampling noise of X_TEST."""
    assert fitted.score(X_TEST) == -fitted.model_.ism_loss(X_TEST)
    assert fitted.score(X_TEST, None) == fitted.score(X_TEST)
    d = X_TEST - MU
    oracle = np.trace(PREC) - 0.5 * np.mean(np.sum((d @ PREC) ** 2, axis=1))
    untrained = ScoreMatchingDensity(hidden=(32, 32), epochs=1, lr=1e-6, random_state=0).fit(X)
    # Measured: fitted 1.951, oracle 1.957 (½ tr(PREC) = 1.95 in expectation), untrained -0.008.
    assert abs(fitted.score(X_TEST) - oracle) < 0.05
    assert untrained.score(X_TEST) < oracle - 1.0


def test_samples_follow_the_fitted_gaussian(fitted):
    S = fitted.sample(1000, random_state=0)
    assert S.shape == (1000, 2) and S.dtype == np.float64
    # Measured: mean error 0.023, covariance error 0.045 (largest entries).
    np.testing.assert_allclose(S.mean(axis=0), MU, atol=0.05)
    np.testing.assert_allclose(np.cov(S.T), COV, atol=0.09)


def test_samples_that_run_off_get_a_warning(fitted):
    # A flat energy (all weights 0; alpha is 0 with standardize=True) confines nothing:
    # MALA's tuning grows ε without bound and the chains return points ~1e8 standard
    # deviations out. That used to pass in silence; a fitted model's samples stay quiet.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.sample(200, random_state=0)
    X = np.random.default_rng(0).normal(size=(100, 2))
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, random_state=0).fit(X)
    est.model_.set_params([np.zeros_like(p) for p in est.model_.params])
    with pytest.warns(RuntimeWarning, match=r"standard deviations from the training mean") as seen:
        S = est.sample(8, random_state=0)
    assert np.abs(S).max() > 1e3
    assert [w.filename for w in seen] == [__file__]  # the caller's line


def test_data_warnings_point_at_the_callers_line():
    """The estimator's fit reaches the column warnings two frames deeper than EnergyMLP.fit:
    a fixed stacklevel pointed at scorematch/sklearn.py, not at the line that called fit."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), np.full(200, 2.0), rng.random(200) < 0.5])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ScoreMatchingDensity(hidden=(4,), epochs=1, random_state=0).fit(X)
    assert [str(w.message).split(":")[0] for w in seen] == [
        "column 1 of X holds one value in every training row",
        "column 2 of X takes only 2 distinct values",
    ]
    assert [w.filename for w in seen] == [__file__] * 2


def test_score_field_is_the_models_score(fitted):
    np.testing.assert_array_equal(fitted.score_field(X_TEST), fitted.model_.score(X_TEST))


# ------------------------------------------------------------------------ composition


def test_pipeline_with_a_standard_scaler():
    pipe = make_pipeline(StandardScaler(), ScoreMatchingDensity(random_state=0, **SMALL)).fit(X)
    scaler = StandardScaler().fit(X)
    est = ScoreMatchingDensity(random_state=0, **SMALL).fit(scaler.transform(X))
    np.testing.assert_array_equal(
        pipe.score_samples(X_TEST), est.score_samples(scaler.transform(X_TEST))
    )
    assert pipe.score(X_TEST) == est.score(scaler.transform(X_TEST))


def test_grid_search_picks_the_learning_rate_that_trains():
    """With score = -J_ISM, cross-validation prefers the model that fits over the one that
    barely moved from its initialization."""
    pipe = make_pipeline(StandardScaler(), ScoreMatchingDensity(random_state=0, **SMALL))
    grid = {"scorematchingdensity__lr": [1e-6, 1e-2]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X[:1500])
    assert search.best_params_ == {"scorematchingdensity__lr": 1e-2}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert isinstance(search.best_estimator_[-1].model_, EnergyMLP)


def test_clone_is_an_unfitted_copy_with_the_same_params(fitted):
    c = clone(fitted)
    assert c.get_params() == fitted.get_params()
    assert not hasattr(c, "model_") and not hasattr(c, "n_features_in_")
    with pytest.raises(NotFittedError):
        c.score_samples(X_TEST)


def test_set_params_is_used_by_the_next_fit():
    est = ScoreMatchingDensity(random_state=0, **SMALL)
    est.set_params(hidden=(4, 3), epochs=2).fit(X[:200])
    assert est.model_.hidden == (4, 3) and est.history_.n_epochs == 2


def test_defaults_are_the_documented_ones():
    assert ScoreMatchingDensity().get_params() == {
        "hidden": (64, 64),
        "activation": "softplus",
        "dtype": "float64",
        "alpha": 0.0,
        "objective": "ism",
        "epochs": 100,
        "batch_size": 256,
        "lr": 1e-3,
        "optimizer": "adam",
        "weight_decay": 0.0,
        "noise_std": None,
        "n_projections": 1,
        "projection": "gaussian",
        "standardize": True,
        "validation": None,
        "patience": None,
        "method": "mala",
        "n_steps": 500,
        "burn_in": 500,
        "step_size": None,
        "random_state": None,
    }


# ------------------------------------------------------------------------ determinism


def test_same_random_state_gives_the_same_model_and_equals_energymlp():
    a = ScoreMatchingDensity(random_state=7, validation=0.1, **SMALL).fit(X[:1000])
    b = ScoreMatchingDensity(random_state=7, validation=0.1, **SMALL).fit(X[:1000])
    assert same_arrays(a.model_.params, b.model_.params)
    for field in ("train_loss", "val_loss", "best_epoch", "stop_reason"):  # not `seconds`
        assert getattr(a.history_, field) == getattr(b.history_, field)
    # An int random_state is the seed of EnergyMLP's initialization and fit.
    m = EnergyMLP(2, hidden=(16,), seed=7)
    h = m.fit(X[:1000], epochs=5, lr=1e-2, validation=0.1, seed=7, standardize=True, progress=False)
    assert same_arrays(a.model_.params, m.params)
    assert isinstance(a.history_, FitHistory) and a.history_.train_loss == h.train_loss


@pytest.mark.parametrize(
    "model_options, options",
    [
        ({}, {"weight_decay": 0.1}),
        ({}, {"optimizer": "sgd", "lr": 1e-3}),
        ({}, {"batch_size": 64}),
        ({}, {"objective": "ssm", "n_projections": 3, "projection": "rademacher"}),
        ({}, {"objective": "dsm", "noise_std": 0.3}),
        (
            {"alpha": 0.5},
            {
                "standardize": False,
                "validation": 0.2,
                "patience": 1,
                "epochs": 30,
                "lr": 0.05,
                "optimizer": "sgd",
            },
        ),
    ],
    ids=["weight_decay", "sgd", "batch_size", "ssm", "dsm", "alpha-validation"],
)
def test_every_training_hyperparameter_reaches_fit(model_options, options):
    """Each estimator hyper-parameter is forwarded: the fitted parameters equal those of
    EnergyMLP.fit with the same non-default option, bit for bit."""
    model_kw = {"activation": "tanh", "dtype": "float32", **model_options}
    kw = {"epochs": 3, "lr": 1e-2, "standardize": True, "validation": None, **options}
    est = ScoreMatchingDensity(hidden=(8,), random_state=7, **model_kw, **kw).fit(X[:600])
    m = EnergyMLP(2, hidden=(8,), seed=7, **model_kw)
    h = m.fit(X[:600], seed=7, progress=False, **kw)
    assert same_arrays(est.model_.params, m.params)
    assert est.history_.train_loss == h.train_loss and est.model_.dtype == np.float32
    assert est.model_.activation == "tanh" and est.model_.alpha == model_kw.get("alpha", 0.0)
    if "patience" in options:  # it must act, or dropping it would go unseen
        assert est.history_.stop_reason == "patience" and est.history_.n_epochs < 30


def test_random_state_changes_the_model():
    a = ScoreMatchingDensity(random_state=1, **SMALL).fit(X[:500])
    b = ScoreMatchingDensity(random_state=2, **SMALL).fit(X[:500])
    assert not np.array_equal(a.model_.params[0], b.model_.params[0])
    rs = np.random.RandomState(0)
    c = ScoreMatchingDensity(random_state=rs, **SMALL).fit(X[:500])
    d = ScoreMatchingDensity(random_state=rs, **SMALL).fit(X[:500])  # the state has moved on
    assert not np.array_equal(c.model_.params[0], d.model_.params[0])


def test_a_random_state_instance_seeds_init_and_fit_with_its_next_two_draws():
    # As sample draws its chains' seed: randint(0, 2**31 - 1). (RandomState(0)'s first two
    # draws differ from those of other bounds, which some other states' do not.)
    est = ScoreMatchingDensity(random_state=np.random.RandomState(0), **SMALL).fit(X[:300])
    init_seed, fit_seed = (int(s) for s in np.random.RandomState(0).randint(0, 2**31 - 1, size=2))
    m = EnergyMLP(2, hidden=(16,), seed=init_seed)
    m.fit(
        X[:300], epochs=5, lr=1e-2, seed=fit_seed, validation=None, standardize=True, progress=False
    )
    assert same_arrays(est.model_.params, m.params)


def test_sample_shape_dtype_and_reproducibility():
    est = ScoreMatchingDensity(
        random_state=0, dtype="float32", n_steps=50, burn_in=50, **SMALL
    ).fit(X[:500])
    one = est.sample()
    assert one.shape == (1, 2) and one.dtype == np.float32
    a = est.sample(20, random_state=3)
    assert a.shape == (20, 2) and np.all(np.isfinite(a))
    assert np.array_equal(a, est.sample(20, random_state=3))
    assert np.array_equal(a[:5], est.sample(5, random_state=3))  # chains are independent
    assert not np.array_equal(a, est.sample(20, random_state=4))
    with pytest.raises(TypeError, match="^n_samples must be an int, got float$"):
        est.sample(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^n_samples must be at least 1, got 0$"):
        est.sample(0)
    ula = clone(est).set_params(method="ula", step_size=0.01).fit(X[:500])
    assert ula.sample(10, random_state=0).shape == (10, 2)


def test_fit_and_sample_draw_no_progress_bar(capsys):
    est = ScoreMatchingDensity(n_steps=5, burn_in=5, **SMALL).fit(X[:100])
    est.sample(3)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "opts",
    [
        {"method": "ula", "step_size": 0.01, "n_steps": 30, "burn_in": 10},
        {"method": "mala", "step_size": 0.05, "n_steps": 20, "burn_in": 7},
        {"method": "mala", "step_size": 0.05, "n_steps": 20, "burn_in": 1},  # tunes once
        {"method": "mala", "step_size": 0.05, "n_steps": 20, "burn_in": 0},
    ],
)
def test_sampling_hyperparameters_reach_the_model(opts):
    """``sample`` is the documented call of ``model_.sample``: starts drawn from
    N(mean_, diag(scale_²)) after the chains' seed, the estimator's method, step size, steps
    and burn-in, and MALA's step size tuned during a burn-in."""
    est = ScoreMatchingDensity(hidden=(16,), epochs=5, lr=1e-2, random_state=0, **opts)
    est.fit(X[:500])
    rs = np.random.RandomState(3)
    seed = int(rs.randint(0, 2**31 - 1))
    init = est.mean_ + est.scale_ * rs.standard_normal((10, 2))
    adapt = opts["method"] == "mala" and opts["burn_in"] > 0
    want = est.model_.sample(10, init=init, seed=seed, adapt_step_size=adapt, **opts)
    np.testing.assert_array_equal(est.sample(10, random_state=3), want.samples)


def test_fit_and_sample_are_scale_equivariant_per_feature():
    """standardize=True and the default sampler (ε = 0.1 in standardized coordinates) make
    fitting and sampling X·diag(c) give the samples of X times c, for any per-feature c: the
    same chains, except a few whose MALA accept/reject decisions differ by rounding (measured:
    at most 2 of 500 differ by more than 1e-6). With one ε for every feature (0.1·min(scale_)²,
    before), the chains barely moved along a feature 100 times wider than the others."""
    kw = {"hidden": (16,), "epochs": 30, "lr": 1e-2, "n_steps": 100, "burn_in": 100}
    a = ScoreMatchingDensity(random_state=0, **kw).fit(X[:1000]).sample(500, random_state=0)
    for c in (np.array([1000.0, 1000.0]), np.array([1.0, 100.0]), np.array([0.01, 100.0])):
        scaled = ScoreMatchingDensity(random_state=0, **kw).fit(c * X[:1000])
        b = scaled.sample(500, random_state=0) / c
        same = np.abs(a - b).max(axis=1) < 1e-6
        assert same.mean() > 0.95, (c, same.mean())
        np.testing.assert_allclose(b.std(axis=0), a.std(axis=0), rtol=0.05)
    np.testing.assert_allclose(a.std(axis=0), np.sqrt(np.diag(COV)), rtol=0.25)  # 1.47, 0.77


def _pinned_z_model(model, m, s, varies):
    """The model in z = (x - m) / s of the varying features, the others held at m, written
    out: W_z = W[:, varies] diag(s), b_z = b + W m."""
    p = [a.astype(np.float64) for a in model.params]
    p[1] = p[1] + p[0] @ m
    p[0] = p[0][:, varies] * s[varies]
    dtype = model.dtype
    return EnergyMLP.from_params(
        [a.astype(dtype) for a in p], activation=model.activation, dtype=dtype
    )


@pytest.mark.filterwarnings("ignore:.*one value in every training row:RuntimeWarning")
@pytest.mark.parametrize("constant", [(), (1,), (0,)])
def test_the_default_sampler_runs_in_standardized_coordinates(constant):
    """The chains of model_ in z = (x - mean_) / scale_ of the features that vary, from
    z ~ N(0, I), with ε = 0.1, mapped back to x; a feature that never varied stays at its
    value (the data pin it)."""
    Z = X[:500] * [1.0, 30.0]
    Z[:, list(constant)] = 3.0
    est = ScoreMatchingDensity(random_state=0, n_steps=20, burn_in=10, **SMALL).fit(Z)
    varies = est.scale_ > 0
    rs = np.random.RandomState(3)
    seed = int(rs.randint(0, 2**31 - 1))
    x0 = est.mean_ + est.scale_ * rs.standard_normal((10, 2))
    m, s = est.mean_[varies], est.scale_[varies]
    want = _pinned_z_model(est.model_, est.mean_, est.scale_, varies).sample(
        10,
        n_steps=20,
        burn_in=10,
        step_size=0.1,
        method="mala",
        adapt_step_size=True,
        init=(x0[:, varies] - m) / s,
        seed=seed,
    )
    got = est.sample(10, random_state=3)
    np.testing.assert_array_equal(got[:, varies], m + s * want.samples)
    assert np.all(got[:, ~varies] == 3.0)


@pytest.mark.filterwarnings("ignore:.*one value in every training row:RuntimeWarning")
def test_the_default_sampler_of_constant_data_returns_it():
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, random_state=0).fit(np.full((50, 2), 7.0))
    assert np.array_equal(est.sample(3, random_state=0), np.full((3, 2), 7.0))


def test_the_default_sampler_of_a_confined_model_runs_in_x():
    """alpha > 0: (α/2)‖x‖² has no counterpart in standardized coordinates (the first layer
    takes the map, that term would not), so the chains run in x with ε = 0.1·min(scale_)²;
    standardized, they sampled another density."""
    Z = X[:500] * [1.0, 3.0]
    est = ScoreMatchingDensity(
        random_state=0, n_steps=20, burn_in=10, alpha=0.5, standardize=False, **SMALL
    ).fit(Z)
    rs = np.random.RandomState(3)
    seed = int(rs.randint(0, 2**31 - 1))
    init = est.mean_ + est.scale_ * rs.standard_normal((10, 2))
    want = est.model_.sample(
        10,
        n_steps=20,
        burn_in=10,
        step_size=0.1 * est.scale_.min() ** 2,
        method="mala",
        adapt_step_size=True,
        init=init,
        seed=seed,
    )
    np.testing.assert_array_equal(est.sample(10, random_state=3), want.samples)
    tiny = ScoreMatchingDensity(hidden=(4,), epochs=1, alpha=0.5, standardize=False)
    tiny.fit(X[:50] * 1e-170)
    with pytest.raises(ValueError, match=r"^the default step_size 0\.1·min\(scale_\)² of a"):
        tiny.sample(2)


@pytest.mark.filterwarnings("ignore:.*one value in every training row:RuntimeWarning")
def test_the_default_sampler_keeps_a_constant_feature_at_its_value():
    """A feature that never varied is held at its value: at unit scale the chains wandered
    off along it (std 1.3 for a column always 3.0, next to a feature of scale 1e-3), where
    the model saw nothing; at the smallest scale of the others, MALA's tuning found it flat
    and grew ε until the other feature ran off. (The other feature's samples are the fitted
    model's, held at 3.0: see the test above.)"""
    rng = np.random.default_rng(0)
    Z = np.column_stack([np.full(2000, 3.0), 1e-3 * rng.normal(size=2000)])
    est = ScoreMatchingDensity(hidden=(64, 64), epochs=60, lr=1e-2, random_state=0).fit(Z)
    S = est.sample(500, random_state=0)
    assert np.all(S[:, 0] == 3.0)
    # Measured: 7.3e-4 (the data's 1e-3; this fit has no runaway chains).
    assert 3e-4 < S[:, 1].std() < 3e-3, S[:, 1].std()


@pytest.mark.parametrize("scale", [1e-170, 1e170])
def test_the_default_sampler_takes_data_of_extreme_scale(scale):
    # It refused these before: one ε of 0.1·min(scale_)² under- or overflowed.
    est = ScoreMatchingDensity(hidden=(8,), epochs=20, lr=1e-2, random_state=0).fit(X * scale)
    S = est.sample(200, random_state=0) / scale
    assert np.isfinite(S).all()
    np.testing.assert_allclose(S.std(axis=0), np.sqrt(np.diag(COV)), rtol=0.5)


def test_the_default_sampler_names_a_model_it_cannot_standardize():
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, dtype="float32").fit(X[:50] * 1e10)
    params = est.model_.params
    params[0] = np.full_like(params[0], 1e30)  # times a scale of ~1e10: past float32
    est.model_.set_params(params)
    want = (
        "the default step_size runs the chains in standardized coordinates z = (x - mean_) / "
        "scale_, where the model's first layer overflows float32; pass step_size"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        est.sample(2)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize("method", ["score_samples", "score", "score_field", "sample"])
def test_not_fitted_error(method):
    est = ScoreMatchingDensity()
    with pytest.raises(NotFittedError):
        if method == "sample":
            est.sample(3)
        else:
            getattr(est, method)(X_TEST)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("hidden", ()),
        ("hidden", 64),
        ("hidden", (8, 0)),
        ("activation", "relu"),
        ("dtype", "float16"),
        ("alpha", -1.0),
        ("alpha", 0.5),  # with the default standardize=True
        ("objective", "esm"),
        ("objective", "mle"),
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", 0),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("lr", "1e-3"),
        ("optimizer", "lbfgs"),
        ("weight_decay", -1.0),
        ("weight_decay", True),
        ("weight_decay", "0.1"),
        ("noise_std", 0.1),  # only for objective="dsm"
        ("n_projections", 5),  # only for objective="ssm"
        ("projection", "rademacher"),
        ("n_projections", 0),
        ("projection", "uniform"),
        ("standardize", "yes"),
        ("validation", 1.0),
        ("validation", -0.1),
        ("validation", "0.1"),
        ("patience", 0),
        ("method", "annealed"),
        ("n_steps", 0),
        ("burn_in", -1),
        ("step_size", 0.0),
        ("random_state", -1),
        ("random_state", "seed"),
    ],
)
def test_bad_hyperparameters_raise_value_error_at_fit(param, value):
    est = ScoreMatchingDensity(**{**SMALL, param: value})  # construction never checks
    with pytest.raises(ValueError, match=rf"invalid hyper-parameter {param}="):
        est.fit(X[:50])
    assert not hasattr(est, "model_")


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        ("epochs", 0, "an int >= 1"),
        ("n_projections", 0, "an int in [1, 4096]"),
        ("burn_in", -1, "an int >= 0"),
        (
            "objective",
            "esm",
            (
                "'ism', 'ssm' or 'dsm': 'esm' needs target scores, which an unsupervised "
                "estimator does not take; use EnergyMLP.fit(X, objective='esm', target_score=...)"
            ),
        ),
        (
            "random_state",
            "seed",
            (
                "None, an int or a numpy RandomState "
                "('seed' cannot be used to seed a numpy.random.RandomState instance)"
            ),
        ),
    ],
)
def test_hyperparameter_messages_say_what_was_expected(param, value, expected):
    want = f"ScoreMatchingDensity: invalid hyper-parameter {param}={value!r}: expected {expected}"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        ScoreMatchingDensity(**{**SMALL, param: value}).fit(X[:50])


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("alpha", "a finite number >= 0"),
        ("weight_decay", "a finite number >= 0"),
        ("lr", "a finite number > 0"),
        ("validation", "None or a fraction in [0, 1)"),
    ],
)
def test_ints_beyond_the_float_range_are_invalid_hyperparameters(param, expected):
    # alpha raised Python's OverflowError and weight_decay numpy's TypeError; the others
    # printed all 401 digits.
    want = (
        f"ScoreMatchingDensity: invalid hyper-parameter {param}=<an int of 401 digits>: "
        f"expected {expected}"
    )
    est = ScoreMatchingDensity(**{**SMALL, param: 10**400, "standardize": False})
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        est.fit(X[:50])


def test_hidden_may_be_any_sequence_and_is_stored_as_given():
    # scikit-learn's get_params and clone need the argument itself, not a converted copy.
    widths = [8, 4]
    est = ScoreMatchingDensity(hidden=widths, epochs=1)
    assert est.hidden is widths and est.get_params()["hidden"] is widths
    assert clone(est).hidden == [8, 4]
    assert est.fit(X[:50]).model_.hidden == (8, 4)


def test_the_smallest_allowed_values_are_accepted():
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, batch_size=1, n_steps=1, burn_in=0)
    assert est.fit(X[:20]).history_.n_epochs == 1 and est.sample(2).shape == (2, 2)
    # validation=0 is no validation, as None: one row is enough
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, validation=0).fit(X[:1])
    assert est.history_.val_loss == []


def test_fit_needs_one_row_and_two_with_validation():
    assert ScoreMatchingDensity(hidden=(4,), epochs=1).fit(X[:1]).history_.n_epochs == 1
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, validation=0.5).fit(X[:2])
    assert len(est.history_.val_loss) == 1
    want = "validation=0.5 holds rows out and needs at least 2 samples, got n_samples=1"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        ScoreMatchingDensity(hidden=(4,), epochs=1, validation=0.5).fit(X[:1])
    with pytest.raises(
        ValueError, match=r"^Found array with 0 sample\(s\) \(shape=\(0, 2\)\) while a minimum of 1"
    ):
        ScoreMatchingDensity(hidden=(4,), epochs=1).fit(X[:0])


@pytest.mark.parametrize(
    "refit",
    [
        # validation needs 2 rows: refused after validate_data read the new X
        lambda est, X3: est.set_params(validation=0.5).fit(X3[:1, :2]),
        # refused by scikit-learn's check_array, after it set the new feature names
        lambda est, X3: est.fit(pd_frame(X3[:5, :2]) * np.nan),
        # a random_state that cannot seed is found after the data were read
        lambda est, X3: est.set_params(random_state="seed").fit(X3[:20, :2]),
    ],
    ids=["validation", "nan-frame", "random_state"],
)
def test_a_fit_that_raises_leaves_the_previous_fit_intact(refit):
    # n_features_in_ (and feature_names_in_) of the refused X were kept beside the previous
    # model_: the estimator then refused the rows it was fitted on ("X has 3 features, but
    # ScoreMatchingDensity is expecting 2 features as input").
    X3 = np.column_stack([X[:60], X[:60, 0] - X[:60, 1]])
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, random_state=0).fit(pd_frame(X3))
    want = est.score_samples(pd_frame(X3))
    state = {k: v for k, v in vars(est).items() if k.endswith("_")}
    with pytest.raises(ValueError):
        refit(est, X3)
    after = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert after.keys() == state.keys() and all(after[k] is v for k, v in state.items())
    assert list(est.feature_names_in_) == ["x0", "x1", "x2"] and est.n_features_in_ == 3
    assert np.array_equal(est.score_samples(pd_frame(X3)), want)
    fresh = ScoreMatchingDensity(hidden=(4,), epochs=1, validation=0.5)
    with pytest.raises(ValueError):
        fresh.fit(X3[:1])
    assert not hasattr(fresh, "n_features_in_")  # still unfitted
    with pytest.raises(NotFittedError):
        fresh.score_samples(X3)


def pd_frame(A: np.ndarray):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(A, columns=[f"x{i}" for i in range(A.shape[1])])


def test_dsm_needs_noise_std():
    with pytest.raises(ValueError, match="noise_std=None.*objective='dsm' requires"):
        ScoreMatchingDensity(objective="dsm", **SMALL).fit(X[:50])
    est = ScoreMatchingDensity(objective="dsm", noise_std=0.2, **SMALL).fit(X[:50])
    assert est.history_.n_epochs == 5


def test_wrong_number_of_features_is_refused(fitted):
    with pytest.raises(ValueError, match="X has 3 features"):
        fitted.score(np.zeros((4, 3)))


def test_masked_arrays_are_refused_as_by_the_model(fitted):
    # scikit-learn's validation would read the masked values as data, as np.asarray does.
    X = np.ma.masked_array(np.zeros((4, 2)), mask=[[0, 0], [1, 0], [0, 0], [0, 0]])
    for call in (lambda: ScoreMatchingDensity(epochs=1).fit(X), lambda: fitted.score_samples(X)):
        with pytest.raises(TypeError, match=r"X is a masked array; its mask would be ignored"):
            call()


# ------------------------------------------------------------------------ imports


def _run(code: str) -> subprocess.CompletedProcess[str]:
    root = str(Path(scorematch.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *sys.path])}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_import_scorematch_does_not_import_sklearn_and_sklearn_is_the_real_one():
    code = (
        "import sys, scorematch\n"
        "assert 'sklearn' not in sys.modules, 'import scorematch imported sklearn'\n"
        "import scorematch.sklearn as sk\n"
        "import sklearn.base\n"
        "assert sk.BaseEstimator is sklearn.base.BaseEstimator\n"
        "assert sys.modules['sklearn'].__file__ != sk.__file__\n"
        "print(scorematch.__file__)\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).resolve() == Path(scorematch.__file__).resolve()


def test_missing_sklearn_gives_an_install_hint():
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None  # makes `import sklearn...` fail\n"
        "try:\n"
        "    import scorematch.sklearn\n"
        "except ImportError as err:\n"
        "    print(err)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert 'pip install "scorematch[sklearn]"' in out.stdout


@pytest.mark.filterwarnings("ignore:columns .* take only 2 and 2 distinct values:RuntimeWarning")
def test_density_scale_of_tiny_data_is_its_spread_not_zero():
    # Columns of |x| ~ 1e-200: squares underflow unless each column is rescaled first.
    X = np.array([[1e-200, -3e-200], [-1e-200, 3e-200]] * 5)
    est = ScoreMatchingDensity(hidden=(4,), epochs=1).fit(X)
    np.testing.assert_allclose(est.scale_, [1e-200, 3e-200], rtol=1e-12)


@pytest.fixture(scope="module")
def small_fitted():
    return ScoreMatchingDensity(hidden=(4,), epochs=1, n_steps=2, burn_in=2).fit(X[:50])


@pytest.mark.parametrize(
    ("random_state", "given", "detail"),
    [
        (2**32, "4294967296", "Seed must be between 0 and 2**32 - 1"),
        (-1, "-1", "Seed must be between 0 and 2**32 - 1"),
        (1.5, "1.5", "1.5 cannot be used to seed a numpy.random.RandomState instance"),
    ],
)
def test_sample_names_a_random_state_it_cannot_use(small_fitted, random_state, given, detail):
    # scikit-learn's message alone did not say which argument it refused (fit's did).
    want = f"random_state must be None, an int or a numpy RandomState, got {given} ({detail})"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        small_fitted.sample(2, random_state=random_state)


def test_an_int_beyond_the_float_range_in_x_is_a_value_error(small_fitted):
    # numpy's conversion raised OverflowError ("int too large to convert to float").
    want = "X holds a number too large for float64 (int too large to convert to float)"
    rows = [[10**400, 1.0]]
    for call in (small_fitted.score, small_fitted.score_samples, small_fitted.score_field):
        with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
            call(rows)
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        ScoreMatchingDensity(**SMALL).fit([[1.0, 2.0], [-(10**400), 0.0]])


def test_a_value_too_large_for_float32_is_named_by_its_row() -> None:
    # scikit-learn's cast warned "overflow encountered in cast", then said "Input X contains
    # infinity or a value too large for dtype('float32')" of no row.
    pd = pytest.importorskip("pandas")
    X = np.random.default_rng(0).normal(size=(50, 2))
    X[7, 1] = 1e300
    want = (
        "X has values too large for float32 (|x| > 3.4e38), first at row 7; use "
        "dtype='float64' or rescale the data"
    )
    est = ScoreMatchingDensity(**{**SMALL, "dtype": "float32"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for given in (X, pd.DataFrame(X, columns=["a", "b"]), X.tolist()):
            with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
                est.fit(given)
        est.fit(X[:7])
        with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
            est.score_samples(X)
        # Infinity as given stays scikit-learn's error.
        X[7, 1] = np.inf
        with pytest.raises(ValueError, match="Input X contains infinity"):
            est.score_samples(X)
    # A float64 estimator has no wider dtype to suggest.
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:
        L = np.ones((5, 2), np.longdouble)
        L[3, 0] = np.longdouble(np.finfo(np.float64).max) * 4
        want = (
            "X has values too large for float64 (|x| > 1.8e308), first at row 3; rescale the data"
        )
        with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
            ScoreMatchingDensity(**{**SMALL, "dtype": "float64"}).fit(L)


@pytest.mark.parametrize(("n", "size"), [(10**15, "14.2 PiB"), (2**62, "64 EiB")])
def test_sample_of_more_chains_than_memory_is_a_memory_error_naming_n_samples(
    small_fitted, n, size
):
    # numpy's "Unable to allocate 14.2 PiB for an array with shape (10**15, 2)" (or, past the
    # address space, the ValueError "array is too big") did not name n_samples.
    want = (
        f"cannot allocate {n} chains of dimension 2 (n_samples={n}): their starting points "
        f"alone take {size}"
    )
    with pytest.raises(MemoryError, match=f"^{re.escape(want)}$"):
        small_fitted.sample(n, random_state=0)


def test_an_array_hyperparameter_is_described_on_one_line():
    # The message showed repr(value): numpy's repr of an array of a few rows spans lines.
    want = (
        "ScoreMatchingDensity: invalid hyper-parameter dtype=<ndarray of shape (3, 3) and dtype "
        "float64>: expected 'float32' or 'float64'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        ScoreMatchingDensity(**{**SMALL, "dtype": np.zeros((3, 3))}).fit(X[:50])
    # A short repr is shown as it is.
    want = (
        "ScoreMatchingDensity: invalid hyper-parameter objective=array(['ism'], dtype='<U3'): "
        "expected 'ism', 'ssm' or 'dsm'"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        ScoreMatchingDensity(**{**SMALL, "objective": np.array(["ism"])}).fit(X[:50])


# ------------------------------------------------------------- columns that are not numbers

# Four rows of each: dates, times and durations, which scikit-learn's conversion of polars and
# Arrow frames read as day or microsecond counts, and strings, which it parsed as numbers.
NOT_NUMBERS = {
    "date": [dt.date(2024, 1, d) for d in (1, 2, 3, 4)],
    "datetime": [dt.datetime(2024, 1, d, 12) for d in (1, 2, 3, 4)],
    "duration": [dt.timedelta(days=d) for d in (1, 2, 3, 4)],
    "time": [dt.time(h) for h in (1, 2, 3, 4)],
    "string": ["1.5", "2", "3", "4"],
}
FRAME_LIBRARIES = ("polars", "pyarrow", "pandas")


def frame_of(library, columns):
    """A frame of ``library`` with the columns of the dict ``columns``, and the dtype of each
    as the library names it."""
    lib = pytest.importorskip(library)
    if library == "polars":
        frame = lib.DataFrame(columns)
        return frame, {k: frame.schema[k] for k in columns}
    if library == "pyarrow":
        frame = lib.table(columns)
        return frame, {k: frame.schema.field(k).type for k in columns}
    frame = lib.DataFrame(columns)
    if "when" in columns and isinstance(columns["when"][0], dt.timedelta):
        frame["when"] = lib.to_timedelta(frame["when"])  # pandas keeps them objects otherwise
    return frame, {k: frame.dtypes[k] for k in columns}


def refusal(column, dtype):
    return (
        rf"^X must be an array of numbers \(booleans are read as 0 and 1\), got column "
        rf"{re.escape(repr(column))} of dtype {re.escape(str(dtype))}$"
    )


@pytest.mark.parametrize("library", FRAME_LIBRARIES)
@pytest.mark.parametrize("kind", NOT_NUMBERS)
def test_dates_times_durations_and_strings_are_refused_by_column(library, kind):
    # As the engine's own methods refuse them (and a numpy array of the same columns is).
    frame, dtypes = frame_of(
        library, {"a": [0.5, 1.5, 2.5, 3.5], "when": NOT_NUMBERS[kind], "c": [0.0, 1.0, 2.0, 3.0]}
    )
    want = refusal("when", dtypes["when"])
    est = ScoreMatchingDensity(**SMALL)
    with pytest.raises(TypeError, match=want):
        est.fit(frame)
    assert not hasattr(est, "n_features_in_")  # refused before anything is set
    three = ScoreMatchingDensity(hidden=(4,), epochs=1).fit(
        np.zeros((8, 3)) + np.arange(8)[:, None]
    )
    for call in (three.score_samples, three.score, three.score_field):
        with pytest.raises(TypeError, match=want):
            call(frame)


@pytest.mark.parametrize(
    ("given", "got"),
    [
        (np.array([["1.5", "2"], ["3", "4"]]), "dtype <U3"),
        (np.array([[b"1.5", b"2"], [b"3", b"4"]]), "dtype |S3"),
        ([["1.5", "2"], ["3", "4"]], "dtype <U3"),
        (np.array(["2024-01-01", "2024-01-02"] * 2, "M8[D]").reshape(2, 2), "dtype datetime64[D]"),
        (np.arange(4).astype("m8[s]").reshape(2, 2), "dtype timedelta64[s]"),
        (
            np.array([[0.5, 1.5], [2.5, "3.5"]], dtype=object),
            "an array of objects holding str '3.5' (row 1)",
        ),
        (
            [[0.5, dt.date(2024, 1, 1)], [2.5, 3.5]],
            "an array of objects holding datetime.date(2024, 1, 1) (row 0)",
        ),
    ],
    ids=["str", "bytes", "str-lists", "datetime64", "timedelta64", "objects", "date-lists"],
)
def test_arrays_of_strings_dates_and_durations_are_refused(given, got):
    # As a frame's column of them: scikit-learn's conversion parsed the strings as numbers
    # and read datetime64 and timedelta64 as counts of days or seconds (mean_ 19723.5), in
    # silence, where the same data in a frame (and the engine's methods) raised TypeError.
    want = rf"^X must be an array of numbers \(booleans are read as 0 and 1\), got {re.escape(got)}"
    est = ScoreMatchingDensity(**SMALL)
    with pytest.raises(TypeError, match=want):
        est.fit(given)
    assert not hasattr(est, "n_features_in_")
    fitted = ScoreMatchingDensity(hidden=(4,), epochs=1).fit(X[:20])
    for call in (fitted.score_samples, fitted.score, fitted.score_field):
        with pytest.raises(TypeError, match=want):
            call(given)
    # Numbers stay accepted as objects and in lists, as scikit-learn reads them.
    plain = ScoreMatchingDensity(hidden=(4,), epochs=1, random_state=0).fit(X[:20])
    for same in (X[:20].astype(object), X[:20].tolist()):
        a = ScoreMatchingDensity(hidden=(4,), epochs=1, random_state=0).fit(same)
        assert same_arrays(a.model_.params, plain.model_.params)


def test_pandas_datetimes_with_a_time_zone_are_refused_by_column():
    pd = pytest.importorskip("pandas")
    when = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]).tz_localize("UTC")
    frame = pd.DataFrame({"a": [0.5, 1.5, 2.5], "when": when})
    with pytest.raises(TypeError, match=refusal("when", frame.dtypes["when"])):
        ScoreMatchingDensity(**SMALL).fit(frame)


@pytest.mark.parametrize("library", FRAME_LIBRARIES)
@pytest.mark.filterwarnings("ignore:column 1 of X takes only 2 distinct values:RuntimeWarning")
def test_boolean_columns_are_read_as_zero_and_one(library):
    # scikit-learn's convention for boolean features, kept: the fit is that of the 0/1 array.
    flags = [True, False, False, True, True, False, True, False]
    frame, _ = frame_of(library, {"a": X[:8, 0], "flag": flags})
    plain = np.column_stack([X[:8, 0], np.array(flags, dtype=np.float64)])
    a = ScoreMatchingDensity(hidden=(6,), epochs=2, random_state=0).fit(frame)
    b = ScoreMatchingDensity(hidden=(6,), epochs=2, random_state=0).fit(plain)
    assert same_arrays(a.model_.params, b.model_.params)
    assert same_arrays([a.mean_, a.scale_], [b.mean_, b.scale_])
    assert np.array_equal(a.score_samples(frame), b.score_samples(plain))


# ------------------------------------------------ batches numpy's own conversion cannot read


class _DLPack:
    """Only DLPack, which numpy's (and so scikit-learn's) conversion does not read."""

    def __init__(self, a, device=None):
        self._a, self._device = a, device

    def __dlpack__(self, **kwargs):
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device or self._a.__dlpack_device__()


def assert_same_estimator(given, plain, rows):
    """The estimator fitted on ``given`` is that fitted on the numpy ``plain``, bit for bit,
    and so are its values on ``rows`` (the same batch, as ``given``'s kind and as numpy)."""
    a = ScoreMatchingDensity(hidden=(6,), epochs=2, random_state=0).fit(given)
    b = ScoreMatchingDensity(hidden=(6,), epochs=2, random_state=0).fit(plain)
    assert same_arrays(a.model_.params, b.model_.params)
    assert same_arrays([a.mean_, a.scale_], [b.mean_, b.scale_])
    assert a.n_features_in_ == b.n_features_in_ and not hasattr(a, "feature_names_in_")
    given_rows, plain_rows = rows
    assert np.array_equal(a.score_samples(given_rows), b.score_samples(plain_rows))
    assert np.array_equal(a.score_field(given_rows), b.score_field(plain_rows))
    assert a.score(given_rows) == b.score(plain_rows)


def test_objects_that_only_speak_dlpack_are_read_through_it():
    # scikit-learn's conversion made a 0-d object array of one: "float() argument must be a
    # string or a real number, not '_DLPack'".
    plain = X[:40]
    assert_same_estimator(_DLPack(plain), plain, (_DLPack(X_TEST[:9]), X_TEST[:9]))
    want = (
        "X must be an array of numbers (booleans are read as 0 and 1) in CPU memory, got "
        "_DLPack on DLPack device CUDA:0; copy it to the CPU first"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(want)}$"):
        ScoreMatchingDensity(**SMALL).fit(_DLPack(plain, device=(2, 0)))


def test_polars_array_rows_are_batches_of_rows():
    # A Series of them was read by scikit-learn's validation as no features: fit set no
    # n_features_in_ (sample raised AttributeError) and score_samples refused it ("X does not
    # contain any features"), while the engine and a frame of that one column read it.
    pl = pytest.importorskip("polars")
    plain, rows = X[:40], X_TEST[:9]

    def series(a):
        return pl.Series("x", a, dtype=pl.Array(pl.Float64, a.shape[1]))

    assert_same_estimator(series(plain), plain, (series(rows), rows))
    frame = pl.DataFrame({"x": series(plain)})
    assert_same_estimator(frame, plain, (pl.DataFrame({"x": series(rows)}), rows))


def test_arrow_fixed_size_lists_are_batches_of_rows():
    # scikit-learn's conversion failed on them: "setting an array element with a sequence".
    pa = pytest.importorskip("pyarrow")
    plain, rows = X[:40], X_TEST[:9]

    def lists(a):
        return pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), a.shape[1])

    for kind in (lists, lambda a: pa.chunked_array([lists(a[:5]), lists(a[5:])])):
        assert_same_estimator(kind(plain), plain, (kind(rows), rows))
    table = pa.table({"x": lists(plain)})
    assert_same_estimator(table, plain, (pa.table({"x": lists(rows)}), rows))
    with_null = pa.array([[1.0, 2.0], [3.0, 4.0], None], type=pa.list_(pa.float64(), 2))
    want = r"^X contains nulls \(first at row 2\); drop or fill them first$"
    with pytest.raises(ValueError, match=want):
        ScoreMatchingDensity(**SMALL).fit(with_null)
    strings = pa.array([["a", "b"]], type=pa.list_(pa.string(), 2))
    with pytest.raises(TypeError, match=r"got dtype fixed_size_list<item: string>\[2\]$"):
        ScoreMatchingDensity(**SMALL).fit(strings)


def test_the_runaway_warning_measures_in_units_of_the_data_spread():
    # Data of spread 1e-9: samples 1e3 spreads out are 1e-6 in absolute terms, and a check
    # in the data's units would stay silent (mutation audit).
    X = np.random.default_rng(0).normal(size=(100, 2)) * 1e-9
    est = ScoreMatchingDensity(hidden=(4,), epochs=1, random_state=0).fit(X)
    est.model_.set_params([np.zeros_like(p) for p in est.model_.params])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        S = est.sample(8, random_state=0)
    assert np.abs(S / 1e-9).max() > 1e3
    assert [w.category for w in seen] == [RuntimeWarning]
    assert "standard deviations from the training mean" in str(seen[0].message)
    assert seen[0].filename == __file__
