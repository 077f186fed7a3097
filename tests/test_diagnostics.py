"""scorematch.diagnostics: ESS and rank-normalized split R-hat on cases with known answers."""

from __future__ import annotations

import re
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scorematch import diagnostics


def ar1(rng, n, m, d, rho):
    x = np.empty((n, m, d))
    x[0] = rng.normal(size=(m, d)) / np.sqrt(1 - rho**2)
    for t in range(1, n):
        x[t] = rho * x[t - 1] + rng.normal(size=(m, d))
    return x


def test_iid_draws(rng):
    t = rng.normal(size=(1000, 4, 3))
    for method in ("bulk", "tail", "basic"):
        ess = diagnostics.ess(t, method=method)
        assert ess.shape == (3,)
        assert np.all(np.abs(ess / 4000 - 1) < 0.15), (method, ess)
    rhat = diagnostics.split_rhat(t)
    assert rhat.shape == (3,) and np.all(np.abs(rhat - 1) < 0.01), rhat
    # Independent draws: the standard error of the mean is sd/√N (here 1/√4000), to the
    # precision of the ESS estimate.
    np.testing.assert_allclose(diagnostics.mcse(t * 3.0), 3.0 / np.sqrt(4000), rtol=0.08)


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


def test_constant_chains():
    # Each chain constant: R-hat is inf when the constants differ (between-chain variance,
    # none within) and NaN when all agree (undefined, as in ArviZ and Stan's posterior: a
    # stuck sampler must not read as converged); rounding in the chain means must not turn
    # the exact zeros into ~1e-32 (that gave 1.2e15 here before, and ArviZ 0.23 gives 1.4e16).
    t = np.zeros((100, 4, 3))
    t[:, 1, 0], t[:, 2, 0] = 1.0, 2.0  # coordinate 0: chains at 0, 1, 2, 0
    t[:, :, 1] = 0.1  # coordinate 1: every chain at the same 0.1
    t[:, :2, 2], t[:, 2:, 2] = 0.1, 0.3  # coordinate 2: two groups
    np.testing.assert_array_equal(diagnostics.split_rhat(t), [np.inf, np.nan, np.inf])
    assert np.isnan(diagnostics.ess(t)[1]) and np.isnan(diagnostics.ess(t, method="basic")[1])
    # The mean of constant draws is known exactly (the std of 0.1s rounds to ~1e-17, not 0).
    assert diagnostics.mcse(t)[1] == 0.0


@pytest.mark.parametrize("scale", [2.0**-1000, 2.0**-530, 2.0**530, 2.0**1000])
def test_draws_of_any_scale_give_the_same_values(rng, scale):
    # Scale-free statistics: draws near the ends of float64's range once underflowed the
    # basic ESS to NaN (2**-1000) or overflowed its FFT (2**1000). Scaled by a power of two,
    # the draws are exact multiples, and every value is the same to the bit.
    t = rng.normal(size=(200, 4, 2))
    s = t * scale
    for f in (
        diagnostics.split_rhat,
        diagnostics.ess,
        lambda x: diagnostics.ess(x, method="basic"),
        lambda x: diagnostics.ess(x, method="tail"),
    ):
        np.testing.assert_array_equal(f(s), f(t))
    # The standard error scales with the draws, exactly (ArviZ's overflows at 2**530).
    np.testing.assert_array_equal(diagnostics.mcse(s), diagnostics.mcse(t) * scale)


def test_the_tail_ess_is_nan_where_the_split_leaves_an_indicator_constant():
    # 9 distinct draws whose minimum is the middle one, which splitting an odd chain drops:
    # the x <= q05 indicator is constant over the kept draws, as documented (ArviZ gives
    # min(8, 7.22), taking a constant's ESS as its number of draws). With the minimum
    # elsewhere, the tail ESS is a number.
    draws = np.array([0.3, -0.2, 1.1, 0.5, -2.0, 0.1, 0.7, -0.4, 0.9])
    assert np.isnan(diagnostics.ess(draws.reshape(9, 1, 1), method="tail")).all()
    moved = draws[[4, 1, 2, 3, 0, 5, 6, 7, 8]].reshape(9, 1, 1)
    assert np.isfinite(diagnostics.ess(moved, method="tail")).all()


def test_an_undefined_tail_rhat_leaves_the_bulk_one():
    # Split chains at 0 and 1 only, median 0.5: the folded draws are all 0.5 and their
    # R-hat undefined. The bulk R-hat, 1.3038404810405297 in ArviZ 0.23.4 (which takes
    # max(bulk, nan) = bulk), is the answer; it was NaN here.
    t = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 0, 0, 1]], dtype=float).T
    np.testing.assert_allclose(diagnostics.split_rhat(t), [1.3038404810405297], rtol=1e-12)


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
    with pytest.raises(ValueError, match="n_draws, n_chains, dim"):
        diagnostics.mcse(np.zeros(10))
    assert diagnostics.mcse(t).shape == (1,)
    # No coordinates: empty results from every diagnostic.
    none = np.zeros((5, 2, 0))
    for f in (diagnostics.split_rhat, diagnostics.ess, diagnostics.mcse):
        assert f(none).shape == (0,)
    assert diagnostics.ess(none, method="tail").shape == (0,)
    with pytest.raises(ValueError, match="NaN"):
        diagnostics.ess(np.full((10, 2, 1), np.nan))
    with pytest.raises(ValueError, match="method must be 'bulk', 'tail' or 'basic'"):
        diagnostics.ess(t, method="mean")


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="longdouble is float64 here"
)
def test_draws_too_large_for_float64_say_so():
    # Finite longdouble draws beyond float64 were reported as "NaN or Inf", after numpy's
    # RuntimeWarning about the cast.
    t = np.zeros((5, 2, 3), dtype=np.longdouble)
    t[3, 1, 2] = np.longdouble("1e400")
    want = (
        "trajectory has values too large for float64 (|x| > 1.8e308), first at draw 3, "
        "chain 1, coordinate 2; rescale the draws"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in (diagnostics.ess, diagnostics.split_rhat, diagnostics.mcse):
            with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
                f(t)
        with pytest.raises(ValueError, match=re.escape("first at draw 3, chain 1, coordinate 0")):
            diagnostics.ess(t[:, :, 2])  # (n_draws, n_chains): one coordinate
        t[3, 1, 2] = np.inf  # a real Inf is still named as one
        with pytest.raises(ValueError, match=r"^trajectory contains NaN or Inf \(first at draw 3"):
            diagnostics.ess(t)
        t[3, 1, 2] = 1.5  # and longdouble draws that fit are read as float64
        np.testing.assert_array_equal(diagnostics.mcse(t), diagnostics.mcse(t.astype(np.float64)))
        # Not a rate either: named by its value, without the warning of a cast to Inf.
        rates = np.array([0.5, np.longdouble("1e400")])
        with pytest.raises(
            ValueError,
            match=r"^acceptance_rate must hold rates in \[0, 1\], got 1e\+400 at chain 1$",
        ):
            diagnostics.acceptance_summary(rates)


def test_acceptance_summary():
    s = diagnostics.acceptance_summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["min"] == 0.5 and s["max"] == 0.7
    # Quantiles by linear interpolation (numpy's default), each in its own field.
    s = diagnostics.acceptance_summary([0.1, 0.2, 0.4, 0.8, 0.9])
    want = {"min": 0.1, "q25": 0.2, "median": 0.4, "q75": 0.8, "max": 0.9}
    assert {k: s[k] for k in want} == want and s["mean"] == pytest.approx(0.48, abs=1e-15)
    s = diagnostics.acceptance_summary([0.0, 0.25, 0.5, 0.75])
    assert (s["q25"], s["median"], s["q75"]) == (0.1875, 0.375, 0.5625)
    # Not rates: refused, as ess and split_rhat refuse NaN, instead of a summary of NaNs.
    for bad, shown in (([0.5, np.nan], "nan at chain 1"), ([0.2, 0.3, 1.5], "1.5 at chain 2")):
        with pytest.raises(
            ValueError, match=f"^acceptance_rate must hold rates in \\[0, 1\\], got {shown}$"
        ):
            diagnostics.acceptance_summary(bad)


def _fixed_trajectories() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2026)
    out = {"iid": rng.normal(size=(200, 4, 2))}
    ar = np.zeros((400, 4, 2))
    for t in range(1, 400):
        ar[t] = 0.95 * ar[t - 1] + rng.normal(size=(4, 2))
    out["ar1"] = ar
    out["heavy"] = rng.standard_cauchy(size=(101, 3, 2))
    # Equal medians, scales 1 and 4: the bulk R-hat is near 1 and the folded (tail) one
    # decides, so this case checks max(bulk, tail) and the fold around the median.
    scales = np.array([1.0, 1.0, 4.0, 4.0])[None, :, None]
    out["scales"] = np.random.default_rng(7).normal(size=(300, 4, 2)) * scales
    return out


# ArviZ 0.23.4 on the trajectories above, per coordinate (chains first, as ArviZ takes them):
# az.ess(t[:, :, j].T, method="bulk"), az.ess(..., method="mean"), az.rhat(..., method="rank").
_ARVIZ = {
    "iid": ([806.004622480398, 799.2273171027786], [807.5116561255762, 808.7313455072826],
            [1.0026180132693483, 1.0056549916013953]),
    "ar1": ([61.38990652972441, 34.96097359859901], [60.57409905967358, 34.033031621719424],
            [1.059767825305511, 1.1272798846279237]),
    "heavy": ([302.4337274282566, 325.6847287829667], [323.90646060595714, 327.88486945236514],
              [1.006061021232982, 1.0031481190831857]),
    "scales": ([1159.965317358975, 1289.6763557631411], [1183.2757752013442, 1290.3509087423847],
               [1.2560770949465736, 1.2312784275890332]),
}  # fmt: skip


# az.ess(t[:, :, j].T, method="tail"), ArviZ 0.23.4.
_ARVIZ_TAIL = {
    "iid": [758.4535843123355, 761.0076536172527],
    "ar1": [132.48050975783332, 62.49322983643464],
    "heavy": [305.39097063289597, 302.3081466672725],
    "scales": [144.0000586868711, 244.51297079739507],
}


# az.mcse(t[:, :, j].T, method="mean"), ArviZ 0.23.4.
_ARVIZ_MCSE = {
    "iid": [0.034620591818895, 0.03633337509851623],
    "ar1": [0.3451618685111371, 0.5691808654288245],
    "heavy": [0.230559490925149, 0.45386206243473864],
    "scales": [0.0822145455785836, 0.08258981748787723],
}


@pytest.mark.parametrize("name", sorted(_ARVIZ))
def test_ess_and_rhat_equal_arviz(name):
    """The reference implementation of Vehtari et al. (2021): bulk ESS within 1e-8 (our
    inverse normal CDF is good to 1.2e-9), the ESS of the mean and R-hat to rounding."""
    t = _fixed_trajectories()[name]
    bulk, mean, rhat = _ARVIZ[name]
    np.testing.assert_allclose(diagnostics.ess(t), bulk, rtol=1e-8)
    np.testing.assert_allclose(diagnostics.ess(t, method="basic"), mean, rtol=1e-12)
    np.testing.assert_allclose(diagnostics.split_rhat(t), rhat, rtol=1e-8)
    np.testing.assert_allclose(diagnostics.ess(t, method="tail"), _ARVIZ_TAIL[name], rtol=1e-12)
    np.testing.assert_allclose(diagnostics.mcse(t), _ARVIZ_MCSE[name], rtol=1e-12)


def test_ess_keeps_a_negative_even_term_when_the_lag_limit_ends_the_sequence():
    # A short run whose Geyer sequence stops at lag n - 3 with a kept pair: ArviZ adds that
    # pair's (here negative) even autocorrelation too. ArviZ 0.23.4 gives 18.34952094805393
    # (az.ess(t[:, :, 0].T, method="mean")); dropping the term gave 17.93.
    t = np.random.default_rng(123).normal(size=(10, 2, 1))
    np.testing.assert_allclose(diagnostics.ess(t, method="basic"), [18.34952094805393], rtol=1e-12)


def _zero_geyer_pair(t):
    """Whether a Geyer pair ρ_2k + ρ_2k+1 of the split chains of ``t`` (n, m) is 0 to rounding.

    Tied draws (small integers, tail indicators) can make a pair exactly 0 in exact
    arithmetic. The sequence stops at a pair that is not positive and keeps it when it is not
    negative, so rounding decides there: ArviZ's FFT lands at ±1e-17, where ours counts a
    pair within 1e-12 of 0 as 0, and the ESS differs by several percent (basic ESS 20.13
    against ArviZ's 18.97 on one such input of 10 × 2 draws in {0, 1, 2}). Such inputs are
    left out of the cross-check; the two tests of zero pairs below pin ours. Computed here
    directly, not by the module under test.
    """
    n = t.shape[0]
    h = n // 2
    s = np.concatenate([t[:h], t[n - h :]], axis=1)
    x = s - s.mean(axis=0)
    acov = np.array([(x[: h - k] * x[k:]).sum(axis=0) / h for k in range(h)])
    mean_var = (acov[0] * h / (h - 1.0)).mean()
    var_plus = mean_var * (h - 1.0) / h + s.mean(axis=0).var(ddof=1)
    if var_plus <= 0:
        return False
    rho = 1.0 - (mean_var - acov.mean(axis=1)) / var_plus
    pairs = rho[0 : h - 1 : 2] + rho[1:h:2]
    return bool(np.any(np.abs(pairs) < 1e-9))


# ArviZ's own rhat divides by a zero within-chain variance when tied draws make a split
# chain constant (0/0 when the between-chain variance is zero too); it still returns the
# value compared below.
@pytest.mark.filterwarnings("ignore:divide by zero encountered in scalar divide:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in scalar divide:RuntimeWarning")
@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(4, 60),
    m=st.integers(2, 5),
    kind=st.sampled_from(["normal", "ties", "walk", "cauchy"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_ess_and_rhat_equal_arviz_on_drawn_trajectories(n, m, kind, seed):
    """Against ArviZ itself, where it is installed, on drawn lengths (odd ones drop their
    middle draw when split), chain counts and kinds of draws: ties (average ranks), random
    walks (long autocorrelations, Geyer's sequence cut early) and heavy tails."""
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(seed)
    t = {
        "normal": lambda: rng.normal(size=(n, m)),
        "ties": lambda: rng.integers(0, 3, size=(n, m)).astype(float),
        "walk": lambda: np.cumsum(rng.normal(size=(n, m)), axis=0),
        "cauchy": lambda: rng.standard_cauchy(size=(n, m)),
    }[kind]()
    assume(t.min() < t.max())  # all equal: the conventions differ (see test_constant_chains)
    np.testing.assert_allclose(diagnostics.ess(t), az.ess(t.T, method="bulk"), rtol=1e-7)
    np.testing.assert_allclose(diagnostics.split_rhat(t), az.rhat(t.T, method="rank"), rtol=1e-7)
    if not _zero_geyer_pair(t):
        np.testing.assert_allclose(
            diagnostics.ess(t, method="basic"), az.ess(t.T, method="mean"), rtol=1e-10
        )
        np.testing.assert_allclose(diagnostics.mcse(t), az.mcse(t.T, method="mean"), rtol=1e-10)
    # Tail ESS, unless an indicator x <= q is constant (q at the minimum or maximum of tied
    # draws), where ArviZ gives the number of draws and we give NaN (documented).
    # The indicators' constancy is judged on the split chains, which drop an odd length's
    # middle draw (the only one below q05, say).
    q05, q95 = np.quantile(t, [0.05, 0.95])
    split = np.concatenate([t[: n // 2], t[n - n // 2 :]])
    tail = diagnostics.ess(t, method="tail")
    if all((split <= q).any() and not (split <= q).all() for q in (q05, q95)):
        if not any(_zero_geyer_pair((t <= q).astype(float)) for q in (q05, q95)):
            np.testing.assert_allclose(tail, az.ess(t.T, method="tail"), rtol=1e-10)
    else:
        assert np.isnan(tail[0])


def test_a_single_chain_uses_the_disagreement_of_its_halves():
    # One chain with a trend: split in two, the halves' means differ, and that
    # between-half variance enters var_plus even with a single chain.
    # ArviZ 0.23.4: az.ess(t.T, method="bulk"/"mean"), az.mcse(t.T, method="mean").
    rng = np.random.default_rng(1)
    t = (np.linspace(0, 3, 200) + rng.normal(size=200))[:, None]
    np.testing.assert_allclose(diagnostics.ess(t), [2.053603819528264], rtol=1e-8)
    np.testing.assert_allclose(diagnostics.ess(t, method="basic"), [2.0585034007143936], rtol=1e-10)
    np.testing.assert_allclose(diagnostics.mcse(t), [0.8795603129579659], rtol=1e-10)


@pytest.mark.parametrize(
    "f",
    [
        diagnostics.ess,
        diagnostics.split_rhat,
        diagnostics.mcse,
        lambda t: diagnostics.ess(t, method="tail"),
    ],
)
def test_zero_chains_are_refused_with_the_shape_message(f):
    # Our shape message, not numpy's "zero-size array to reduction" ValueError.
    with pytest.raises(ValueError, match=r"at least 4 draws and 1 chain, got shape \(10, 0, 2\)"):
        f(np.zeros((10, 0, 2)))


def test_acceptance_summary_of_one_chain_and_of_the_bounds():
    # One chain is a valid input; rates of exactly 0 and 1 are in [0, 1].
    s = diagnostics.acceptance_summary([0.3])
    assert s == {"mean": 0.3, "min": 0.3, "q25": 0.3, "median": 0.3, "q75": 0.3, "max": 0.3}
    s = diagnostics.acceptance_summary(np.array([1.0, 0.0]))
    assert (s["min"], s["median"], s["max"]) == (0.0, 0.5, 1.0)
    assert s["mean"] == pytest.approx(0.5, abs=1e-15)


@pytest.mark.parametrize("bad", [[], np.zeros((0,)), [[0.5, 0.6]], np.full((2, 2), 0.5), 0.5])
def test_acceptance_summary_refuses_empty_and_non_1d_rates(bad):
    # Empty, 2-D and 0-D rates each fail the shape check on their own.
    with pytest.raises(
        ValueError, match=r"^acceptance_rate must be a non-empty 1-D array, got shape"
    ):
        diagnostics.acceptance_summary(bad)


def test_a_geyer_pair_of_zero_keeps_its_even_term():
    # Split chains of 5 draws: P_0 = 1.027..., P_1 = ρ_2 + ρ_3 = 0 in exact arithmetic. The
    # sequence stops at pair 1 (not positive) and, P_1 not being negative, adds ρ_2 = -0.0604,
    # as ArviZ's loop does in exact arithmetic. ArviZ 0.23.4 gives 18.972332015810277 here:
    # its rounding makes P_1 slightly negative.
    t = np.array([[2, 2, 0, 0, 1, 1, 2, 0, 2, 2], [2, 2, 0, 2, 2, 2, 0, 0, 0, 0]], float).T
    np.testing.assert_allclose(diagnostics.ess(t, method="basic"), [20.125786163522008], rtol=1e-12)
    # Perturbations far below the draws' scale move P_1 off 0 to either side by ~1e-14; the
    # answer must not flip with them (it did between 20.13 and 18.97 before pairs within
    # 1e-12 of 0 counted as 0).
    rng = np.random.default_rng(5)
    for _ in range(20):
        nudged = t + rng.normal(scale=1e-14, size=t.shape)
        np.testing.assert_allclose(
            diagnostics.ess(nudged, method="basic"), [20.125786163522008], rtol=1e-9
        )


def test_the_geyer_sequence_stops_at_a_pair_of_zero():
    # One chain, split into halves of 9: a Geyer pair is 0 in exact arithmetic before the lag
    # limit; the sequence stops there, where running on gives 10.588235294117643, as ArviZ
    # 0.23.4 does (its rounding lands on the positive side).
    t = np.array([[1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0]], float).T
    np.testing.assert_allclose(diagnostics.ess(t, method="basic"), [10.451612903225802], rtol=1e-12)


def test_a_result_without_the_draws_asked_for_is_named():
    # The functions take SampleResult's optional fields as they are, for the typed workflow
    # of the README; a run that did not keep them is a TypeError that says what to ask for.
    for f in (diagnostics.split_rhat, diagnostics.ess, diagnostics.mcse):
        with pytest.raises(TypeError, match=r"^trajectory is None: sample with return_trajectory"):
            f(None)
    with pytest.raises(TypeError, match=r"^acceptance_rate is None: only MALA runs"):
        diagnostics.acceptance_summary(None)


_STATISTICS = [
    ("ess", {"method": "bulk"}),
    ("ess", {"method": "tail"}),
    ("ess", {"method": "basic"}),
    ("split_rhat", {}),
    ("mcse", {}),
]


def _with_peak_memory(f, *args, **kwargs):
    """``f(*args, **kwargs)`` and the peak of the memory numpy and Python allocated in it."""
    tracemalloc.start()
    try:
        value = f(*args, **kwargs)
        return value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("name", "kwargs"), _STATISTICS)
def test_blocks_of_coordinates_give_the_same_values_in_a_fraction_of_the_memory(
    rng, monkeypatch, name, kwargs
):
    # Each statistic works on about twice the draws it is given (once on ~15 times: on the
    # whole trajectory at once, 8 GB for 4096 chains x 1000 draws x 16 coordinates). In blocks
    # of one coordinate here, the extra memory stays under the trajectory's own size, and the
    # values agree to rounding (numpy's reductions over an axis add in an order that depends
    # on the array's width).
    t = np.cumsum(rng.normal(size=(200, 50, 40)), axis=0) * np.linspace(1e-3, 1e3, 40)
    t[:, :, 7] = 0.25  # a constant coordinate, NaN or 0 as in one piece
    f = getattr(diagnostics, name)
    whole = f(t, **kwargs)
    monkeypatch.setattr(diagnostics, "_BLOCK_DRAWS", 200 * 50)
    blocked, peak = _with_peak_memory(f, t, **kwargs)
    np.testing.assert_allclose(blocked, whole, rtol=1e-12)
    assert np.isfinite(np.delete(whole, 7)).all() and (np.isnan(whole[7]) or whole[7] == 0)
    assert peak < 0.75 * t.nbytes, f"{peak / t.nbytes:.2f} times the trajectory's size"


def _drawn_trajectory(rng, n, m, d, kind, dtype):
    t = {
        "normal": lambda: rng.normal(size=(n, m, d)),
        "ties": lambda: rng.integers(0, 3, size=(n, m, d)).astype(float),
        "walk": lambda: np.cumsum(rng.normal(size=(n, m, d)), axis=0),
        "stuck": lambda: np.repeat(rng.integers(0, 2, size=(1, m, d)), n, axis=0) * 0.1,
    }[kind]()
    return t.astype(dtype)


# Tied draws give NaN tail ESS (a constant indicator), chains each constant give inf or NaN
# R-hat: both paths must give them alike.
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(4, 40),
    m=st.integers(1, 6),
    d=st.integers(1, 3),
    kind=st.sampled_from(["normal", "ties", "walk", "stuck"]),
    dtype=st.sampled_from(["float32", "float64"]),
    chunk=st.sampled_from([1, 5, 64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_chunks_and_blocks_give_the_values_of_one_piece(n, m, d, kind, dtype, chunk, seed):
    """The memory-bounded path (ranks given out a stretch of the sort at a time, the run of
    equal draws at its end carried into the next; FFTs a few chains at a time; blocks of
    64 draws) against the whole trajectory in one piece: the same bits when only the
    temporaries are cut into chunks (every value is worked out from the same numbers in the
    same order), and the same to rounding when the coordinates are in blocks too (numpy's
    sums over chains add in an order that depends on the array's width)."""
    t = _drawn_trajectory(np.random.default_rng(seed), n, m, d, kind, dtype)
    for name, kwargs in _STATISTICS:
        f = getattr(diagnostics, name)
        whole = f(t, **kwargs)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(diagnostics, "_CHUNK_DRAWS", chunk)
            np.testing.assert_array_equal(f(t, **kwargs), whole, err_msg=name)
            mp.setattr(diagnostics, "_BLOCK_DRAWS", 64)
            np.testing.assert_allclose(f(t, **kwargs), whole, rtol=1e-12, err_msg=name)


def test_chains_transformed_a_few_at_a_time_give_the_same_autocovariances(monkeypatch):
    # Spectra of 256 KiB and more (here 513 frequencies x 64 chains and coordinates, taken at
    # once by default): there numpy turned f * conj(f) into conj(f) * f, reusing the
    # temporary, and its complex product (with FMA) is not exactly commutative. The chains'
    # FFTs taken a few at a time must give the bits of all at once all the same; the ESS
    # itself rarely shows the last bits of its autocovariances, so these are compared.
    t = np.cumsum(np.random.default_rng(4).normal(size=(400, 128, 2)), axis=0)
    mean = t.mean(axis=0)
    whole = diagnostics._autocov(t.copy(), mean)
    monkeypatch.setattr(diagnostics, "_CHUNK_DRAWS", 1 << 10)
    np.testing.assert_array_equal(diagnostics._autocov(t.copy(), mean), whole)


@pytest.mark.parametrize(("name", "kwargs"), _STATISTICS)
def test_a_coordinate_larger_than_a_block_needs_about_twice_its_size(monkeypatch, name, kwargs):
    # 4096 chains x 20 000 draws of one coordinate (a Langevin run of this library; 640 MB)
    # needed ~15 times its size (10 GB) before: a coordinate is never cut across blocks. Now
    # each statistic works on one copy of the draws in place, with the sort order of what it
    # ranks or np.var's centred copy: about twice the size, measured here at 2e6 draws in
    # blocks and chunks far smaller (the old code took 9.2 to 14.5 times, 1.0 to 2.2 now).
    t = np.cumsum(np.random.default_rng(3).normal(size=(500, 4096, 1)), axis=0)
    monkeypatch.setattr(diagnostics, "_BLOCK_DRAWS", 1 << 16)
    monkeypatch.setattr(diagnostics, "_CHUNK_DRAWS", 1 << 14)
    value, peak = _with_peak_memory(getattr(diagnostics, name), t, **kwargs)
    assert np.isfinite(value).all()
    assert peak < 2.5 * t.nbytes, f"{peak / t.nbytes:.2f} times the coordinate's size"


def test_nan_is_found_in_a_later_stretch(monkeypatch):
    # The draws are checked for NaN and Inf a stretch at a time, not with a mask as large as
    # the trajectory: the first one in C order is named wherever the stretches end.
    monkeypatch.setattr(diagnostics, "_CHUNK_DRAWS", 8)
    t = np.zeros((100, 4, 2))
    t[70, 3, 1] = np.nan
    t[71, 0, 0] = np.inf
    t[70, 3, 0] = -np.inf
    with pytest.raises(ValueError, match=r"first at draw 70, chain 3, coordinate 0\)$"):
        diagnostics.split_rhat(t)
