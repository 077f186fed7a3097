"""EnergyMLP.sample and scorematch.langevin: Gaussian facts, MALA acceptance and adaptation,
reproducibility, prefix property, thread invariance, trajectories, errors, divergence."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import pickle
import re
import threading
import time
from typing import Any

import numpy as np
import pytest
import scorematch as sm
from helpers import ctrl_c_every, make_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scorematch import EnergyMLP, SamplingDivergedError


def gaussian(dim, sigma2, dtype="float64"):
    """Target N(0, σ² I): every network weight zero, alpha = 1/σ²."""
    zero = [np.zeros((4, dim)), np.zeros(4), np.zeros((1, 4)), np.zeros(1)]
    return EnergyMLP.from_params(zero, alpha=1.0 / sigma2, dtype=dtype)


def check_variance(samples, want, what):
    """Final states of independent chains are independent draws: ESS = their number N, and
    mean(x²) has standard error want·√(2/N)."""
    x = np.asarray(samples, dtype=np.float64)
    v = float(np.mean(x**2))
    se = want * np.sqrt(2.0 / x.size)
    assert abs(v - want) < 4.5 * se, (
        f"{what}: variance {v:.4f}, expected {want:.4f} ± {4.5 * se:.4f}"
    )


@pytest.fixture(scope="module")
def model():
    return EnergyMLP(3, hidden=(16, 16), activation="tanh", alpha=0.5, seed=3)


def test_gaussian_stationary_variances():
    sigma2, eps = 2.0, 1.0
    m = gaussian(4, sigma2)
    ula = m.sample(4096, n_steps=120, step_size=eps, seed=1)
    # ULA's O(ε) bias: σ²/(1 − ε/(4σ²)) = 2.286, eight standard errors above σ².
    check_variance(ula.samples, sigma2 / (1 - eps / (4 * sigma2)), "ULA")
    mala = m.sample(4096, n_steps=200, step_size=eps, method="mala", seed=2)
    check_variance(mala.samples, sigma2, "MALA")
    assert mala.acceptance_rate is not None and 0.5 < mala.acceptance_rate.mean() < 1
    assert ula.acceptance_rate is None


def test_trajectory_variance_with_an_ess_band():
    """The same fact from one trajectory: the band comes from the ESS of the draws."""
    sigma2, eps = 1.0, 0.5
    m = gaussian(2, sigma2)
    res = m.sample(64, n_steps=400, step_size=eps, burn_in=50, return_trajectory=True, seed=4)
    x2 = res.trajectory.astype(np.float64) ** 2
    ess = sm.diagnostics.ess(x2, method="basic")
    want = sigma2 / (1 - eps / (4 * sigma2))
    v = x2.mean(axis=(0, 1))
    se = np.sqrt(x2.reshape(-1, 2).var(axis=0) / ess)
    assert np.all(np.abs(v - want) < 4.5 * se), (v, want, se)


def test_mala_acceptance_tends_to_one(model):
    rates = [
        model.sample(256, n_steps=40, step_size=eps, method="mala", seed=5).acceptance_rate.mean()
        for eps in (0.5, 0.05, 0.005, 0.0005)
    ]
    assert all(b >= a - 0.01 for a, b in itertools.pairwise(rates)), rates
    assert rates[-1] > 0.995, rates


@pytest.mark.parametrize("target", [0.574, 0.8])
def test_adaptation_reaches_target_acceptance(target):
    m = gaussian(8, 1.0)
    res = m.sample(
        512, n_steps=300, burn_in=400, step_size=1e-3, method="mala",
        adapt_step_size=True, target_accept=target, seed=6,
    )  # fmt: skip
    assert abs(res.acceptance_rate.mean() - target) < 0.05
    assert np.all(res.step_size > 1e-3) and len(np.unique(res.step_size)) > 1


def test_reproducible_and_prefix_property(model):
    kw = {
        "n_steps": 30,
        "step_size": 0.1,
        "method": "mala",
        "return_trajectory": True,
        "thin": 3,
        "seed": 7,
    }
    a = model.sample(300, **kw)
    b = model.sample(300, **kw)
    np.testing.assert_array_equal(a.samples, b.samples)
    small = model.sample(20, **kw)
    np.testing.assert_array_equal(a.samples[:20], small.samples)
    np.testing.assert_array_equal(a.trajectory[:, :20], small.trajectory)
    np.testing.assert_array_equal(a.acceptance_rate[:20], small.acceptance_rate)
    other = model.sample(20, **{**kw, "seed": 8})
    assert not np.array_equal(other.samples, small.samples)


def test_thread_count_does_not_change_results(model, restore_threads):
    kw = {
        "n_steps": 20,
        "step_size": 0.05,
        "burn_in": 10,
        "method": "mala",
        "adapt_step_size": True,
    }
    sm.set_num_threads(1)
    one = model.sample(700, return_trajectory=True, **kw)
    sm.set_num_threads(3)
    three = model.sample(700, return_trajectory=True, **kw)
    np.testing.assert_array_equal(one.samples, three.samples)
    np.testing.assert_array_equal(one.trajectory, three.trajectory)
    np.testing.assert_array_equal(one.step_size, three.step_size)


@pytest.mark.parametrize(
    ("n_steps", "burn_in", "thin", "kept"), [(10, 0, 1, 10), (10, 5, 3, 3), (7, 2, 7, 1)]
)
def test_trajectory_shapes(model, n_steps, burn_in, thin, kept):
    res = model.sample(
        5, n_steps=n_steps, burn_in=burn_in, thin=thin, step_size=0.01, return_trajectory=True
    )
    assert res.trajectory.shape == (kept, 5, 3)
    assert res.samples.shape == (5, 3) and res.samples.dtype == np.float64
    if (n_steps % thin) == 0:
        np.testing.assert_array_equal(res.trajectory[-1], res.samples)
    assert model.sample(5, n_steps=3).trajectory is None


def test_float32_and_init(model):
    m32 = EnergyMLP.from_params(model.params, activation="tanh", alpha=0.5, dtype="float32")
    x0 = np.ones((4, 3), dtype=np.float32)
    res = m32.sample(4, n_steps=1, step_size=1e-10, init=x0)
    assert res.samples.dtype == np.float32
    np.testing.assert_allclose(res.samples, x0, atol=1e-4)
    # A float64 init is converted; Fortran order is accepted.
    res2 = m32.sample(4, n_steps=1, step_size=1e-10, init=np.asfortranarray(x0, np.float64))
    np.testing.assert_array_equal(res.samples, res2.samples)


def test_annealed_langevin():
    sigma2, eps = 1.0, 0.4
    m = gaussian(4, sigma2)
    res = m.sample(
        4096, method="annealed", temperatures=[10.0, 3.0, 1.0], steps_per_level=80,
        step_size=eps, return_trajectory=True, seed=9,
    )  # fmt: skip
    assert res.trajectory.shape == (240, 4096, 4)
    check_variance(res.samples, sigma2 / (1 - eps / (4 * sigma2)), "annealed")
    np.testing.assert_array_equal(res.step_size, eps)
    hot = m.sample(4096, n_steps=150, step_size=eps, temperature=2.5, seed=10)
    check_variance(hot.samples, 2.5 / (1 - eps / (4 * 2.5)), "T = 2.5")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    dim=st.integers(1, 8),
    hidden=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    activation=st.sampled_from(["softplus", "tanh", "silu"]),
    dtype=st.sampled_from(["float32", "float64"]),
    method=st.sampled_from(["ula", "mala"]),
    n=st.integers(1, 300),
    n_steps=st.integers(1, 6),
    step_size=st.sampled_from([1e-3, 0.05, 0.5]),
    seed=st.integers(0, 2**32 - 1),
)
def test_drawn_runs_agree_across_paths_prefixes_and_threads(
    restore_threads, dim, hidden, activation, dtype, method, n, n_steps, step_size, seed
):
    """Over drawn architectures, dtypes, chain counts (one chunk or several) and seeds, a run
    is bit for bit: the Python path's update (scorematch.langevin on the model's own score
    and energy, the slow path written in numpy), its own first k chains as a run of k, and
    itself on 1 and 2 threads."""
    m, _ = make_model(dim, tuple(hidden), activation, alpha=0.3, dtype=dtype, seed=seed % 1000)
    x0 = np.random.default_rng(seed).normal(size=(n, dim)).astype(dtype)
    kw = {"method": method, "seed": seed, "return_trajectory": True}
    sm.set_num_threads(2)
    a = m.sample(n, n_steps=n_steps, step_size=step_size, init=x0, **kw)
    energy = m.energy if method == "mala" else None
    b = sm.langevin(m.score, x0, n_steps, step_size, energy_fn=energy, **kw)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    if method == "mala":
        np.testing.assert_array_equal(a.acceptance_rate, b.acceptance_rate)
    k = max(1, n // 3)
    prefix = m.sample(k, n_steps=n_steps, step_size=step_size, init=x0[:k], **kw)
    np.testing.assert_array_equal(prefix.trajectory, a.trajectory[:, :k])
    sm.set_num_threads(1)
    one = m.sample(n, n_steps=n_steps, step_size=step_size, init=x0, **kw)
    np.testing.assert_array_equal(one.trajectory, a.trajectory)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_path_matches_the_engine(model, dtype):
    m = EnergyMLP.from_params(model.params, activation="tanh", alpha=0.5, dtype=dtype)
    x0 = np.random.default_rng(0).normal(size=(300, 3)).astype(dtype)
    kw = {"burn_in": 3, "thin": 2, "return_trajectory": True, "temperature": 1.5}
    a = m.sample(300, n_steps=20, step_size=0.05, init=x0, seed=11, **kw)
    b = sm.langevin(m.score, x0, 20, 0.05, seed=11, **kw)
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    assert b.samples.dtype == np.dtype(dtype)
    # A range of chains: the same streams from first_chain on, on either path.
    c = sm.langevin(m.score, x0[100:250], 20, 0.05, seed=11, first_chain=100, **kw)
    np.testing.assert_array_equal(c.samples, a.samples[100:250])
    np.testing.assert_array_equal(c.chain_indices, np.arange(100, 250))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_python_mala_matches_the_engine(model, dtype):
    m = EnergyMLP.from_params(model.params, activation="tanh", alpha=0.5, dtype=dtype)
    x0 = np.random.default_rng(1).normal(size=(300, 3)).astype(dtype)
    kw = {"burn_in": 4, "thin": 2, "return_trajectory": True, "temperature": 1.3, "method": "mala"}
    a = m.sample(300, n_steps=30, step_size=2.0, init=x0, seed=14, **kw)
    b = sm.langevin(m.score, x0, 30, 2.0, seed=14, energy_fn=m.energy, **kw)
    assert 0.2 < a.acceptance_rate.mean() < 0.99
    # Identical up to ties in log(u) < a decided by a last-bit difference of log: none expected.
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    np.testing.assert_array_equal(a.acceptance_rate, b.acceptance_rate)
    with pytest.raises(ValueError, match="needs energy_fn"):
        sm.langevin(m.score, x0, 3, 0.1, method="mala")


def test_langevin_on_a_plain_function():
    res = sm.langevin(lambda x: -x, np.zeros((2000, 2)), n_steps=100, step_size=0.5, seed=1)
    check_variance(res.samples, 1 / (1 - 0.5 / 4), "langevin")
    with pytest.raises(ValueError, match="score_fn must return shape"):
        sm.langevin(lambda x: x[:, :1], np.zeros((3, 2)), 2, 0.1)


@pytest.mark.parametrize("method", ["ula", "mala"])
def test_langevin_functions_get_copies_of_the_chains_states(method):
    # They were handed the chains' own states, writable: `x *= -1; return x` (a numpy idiom)
    # changed the chains in silence, and the samples differed from those of `-x` by up to 1.6.
    x0 = np.random.default_rng(0).normal(size=(4, 2))
    energy = {"energy_fn": lambda x: 0.5 * (x * x).sum(axis=1)} if method == "mala" else {}

    def in_place(x):
        x *= -1.0
        return x

    want = sm.langevin(lambda x: -x, x0, 5, 0.1, method=method, **energy)
    got = sm.langevin(in_place, x0, 5, 0.1, method=method, **energy)
    assert np.array_equal(got.samples, want.samples)
    if method == "mala":
        # The energy of the proposal, not of what score_fn left of it.
        def energy_in_place(x):
            x *= 2.0
            return 0.125 * (x * x).sum(axis=1)

        got = sm.langevin(in_place, x0, 5, 0.1, method=method, energy_fn=energy_in_place)
        assert np.array_equal(got.samples, want.samples)
    # Each call's array is its own, writable (as ctypes, Cython and torch want it), and
    # stays as it was given.
    seen = []
    sm.langevin(lambda x: seen.append(x) or -x, x0, 5, 0.1, method=method, **energy)
    assert all(x.flags.writeable for x in seen)
    assert np.array_equal(seen[0], x0) and len({id(x) for x in seen}) == len(seen)


BAD = [
    ({"n_steps": 0}, ValueError, "n_steps must be at least 1"),
    ({"step_size": 0.0}, ValueError, "step_size must be a finite number > 0"),
    ({"step_size": -1.0}, ValueError, "step_size must be a finite number > 0"),
    ({"step_size": float("nan")}, ValueError, "step_size must be a finite number > 0"),
    ({"thin": 0}, ValueError, "thin must be at least 1"),
    ({"burn_in": -1}, ValueError, "burn_in must be at least 0"),
    ({"method": "hmc"}, ValueError, "method must be 'ula', 'mala' or 'annealed'"),
    ({"init": np.zeros((4, 2))}, ValueError, r"init must have shape \(n, 3\)"),
    ({"init": np.zeros((5, 3))}, ValueError, r"init must have shape \(4, 3\)"),
    ({"init": np.full((4, 3), np.nan)}, ValueError, "init contains NaN or Inf"),
    ({"temperature": 0}, ValueError, "temperature must be a finite number > 0"),
    ({"adapt_step_size": True}, ValueError, "needs method='mala'"),
    ({"adapt_step_size": True, "method": "mala"}, ValueError, "burn_in >= 1"),
    ({"method": "annealed"}, ValueError, "needs temperatures"),
    ({"temperatures": [1.0]}, ValueError, "options of method='annealed'"),
    ({"on_divergence": "ignore"}, ValueError, "on_divergence must be"),
    ({"n_steps": 2.5}, TypeError, "n_steps must be an int"),
    ({"seed": -1}, ValueError, "seed must be in"),
    ({"progress": 3}, TypeError, "progress must be"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), BAD)
def test_bad_arguments(model, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        model.sample(4, **kwargs)


def test_bad_n_samples(model):
    with pytest.raises(ValueError, match="n_samples must be at least 0"):
        model.sample(-1)
    with pytest.raises(TypeError, match="n_samples must be an int"):
        model.sample(2.0)


@pytest.mark.parametrize("method", ["ula", "mala", "annealed"])
def test_zero_chains_give_empty_results(model, method):
    # An empty batch gives empty outputs, as for scorematch.langevin with an empty x0.
    kw = {"temperatures": [2.0, 1.0]} if method == "annealed" else {"burn_in": 2}
    res = model.sample(0, n_steps=6, method=method, thin=2, return_trajectory=True, **kw)
    d = model.dim
    assert res.samples.shape == (0, d) and res.samples.dtype == model.dtype
    assert res.trajectory is not None and res.trajectory.shape == (3, 0, d)
    assert res.step_size.shape == (0,) and res.chain_indices.shape == (0,)
    assert (res.acceptance_rate is not None) == (method == "mala")
    if res.acceptance_rate is not None:
        assert res.acceptance_rate.shape == (0,)
    init = np.zeros((0, d), model.dtype)
    assert model.sample(0, n_steps=3, init=init, on_divergence="mask").samples.shape == (0, d)
    with pytest.raises(ValueError, match=r"init must have shape \(0, "):
        model.sample(0, init=np.zeros((1, d)))


def _exploding():
    # ε·α/2 = 5: x is multiplied by −4 per step; float32 overflows at once from 1e38, and
    # after about 64 steps from 1.
    m = gaussian(2, 1.0, dtype="float32")
    x0 = np.ones((6, 2), dtype=np.float32)
    x0[[1, 4], 0] = 1e38
    return m, x0


def test_divergence_raises_with_count_and_step():
    m, x0 = _exploding()
    with pytest.raises(
        SamplingDivergedError, match="2 of 6 chains diverged.* at step 0, the first"
    ):
        m.sample(6, n_steps=10, step_size=10.0, init=x0)
    assert issubclass(SamplingDivergedError, RuntimeError)
    with pytest.raises(SamplingDivergedError, match="2 of 6 chains"):
        sm.langevin(m.score, x0, 10, 10.0)
    # The count is of the chains that diverged at the first such step, whatever the length of
    # the blocks the engine checks between: from ones, 5 chains at step 63 and one at 64. It
    # was the count at the end of the block ("6 of 6"), where langevin, which stops at the
    # first step, said 5.
    ones = np.ones((6, 2), np.float32)
    with pytest.raises(SamplingDivergedError) as built_in:
        m.sample(6, n_steps=200, step_size=10.0, init=ones)
    assert str(built_in.value).startswith("5 of 6 chains diverged (NaN or Inf) at step 63,")
    with pytest.raises(SamplingDivergedError) as python_path:
        sm.langevin(m.score, ones, 200, 10.0)
    assert str(python_path.value) == str(built_in.value)
    # The counts as attributes too, from either path, for callers that retry or log.
    for err in (built_in.value, python_path.value):
        assert (err.n_diverged, err.n_chains, err.step) == (5, 6, 63)
    back = pickle.loads(pickle.dumps(built_in.value))
    assert (back.n_diverged, back.n_chains, back.step) == (5, 6, 63)
    assert str(back) == str(built_in.value)
    made = SamplingDivergedError("by hand")
    assert (made.n_diverged, made.n_chains, made.step) == (None, None, None)


class _ScoreFailed(Exception):
    pass


@pytest.mark.parametrize("failure", ["ula", "mala", "score_fn"])
def test_a_kept_langevin_error_holds_no_trajectory(failure):
    # A sweep that keeps its failures keeps their tracebacks, and so the frame of langevin,
    # which held the trajectory (here 2000 x 6 x 2 values) with them, whatever the error.
    m, x0 = _exploding()
    score, energy, method, error = m.score, None, "ula", SamplingDivergedError
    if failure == "mala":
        x0[[1, 4], 0] = 1e20  # an overflowing start: MALA's divergence before any step
        energy, method = m.energy, "mala"
    elif failure == "score_fn":
        x0 = np.ones((6, 2), np.float32)
        calls = []

        def score(x):
            calls.append(1)
            if len(calls) > 5:
                raise _ScoreFailed
            return m.score(x)

        error = _ScoreFailed
    with pytest.raises(error) as info:
        sm.langevin(score, x0, 2000, 10.0 if failure != "score_fn" else 0.01, method=method,
                    energy_fn=energy, return_trajectory=True)  # fmt: skip
    held = []
    tb = info.value.__traceback__
    while tb is not None:
        held += [
            f"{tb.tb_frame.f_code.co_name}: {name}"
            for name, value in tb.tb_frame.f_locals.items()
            if isinstance(value, np.ndarray) and value.ndim == 3
        ]
        tb = tb.tb_next
    assert held == []


def test_langevin_names_score_fn_when_it_returns_nan_at_finite_states():
    # The message advised a smaller step_size, which cannot help a score function's NaN.
    def score_fn(x):
        s = -x
        s[1] = np.nan
        return s

    with pytest.raises(SamplingDivergedError) as info:
        sm.langevin(score_fn, np.zeros((4, 2)), 5, 1e-6)
    assert str(info.value) == (
        "1 of 4 chains diverged (NaN or Inf) at step 0, the first step where any did: score_fn "
        "returned NaN at finite states for 1 of them; fix score_fn, or on_divergence='mask' to "
        "keep the finite chains"
    )
    # A step that overflows still gets the step-size advice.
    m, x0 = _exploding()
    with pytest.raises(SamplingDivergedError, match="; use a smaller step_size, or"):
        sm.langevin(m.score, x0, 10, 10.0)


def test_divergence_mask_returns_the_finite_chains():
    m, x0 = _exploding()
    res = m.sample(6, n_steps=10, step_size=10.0, init=x0, on_divergence="mask",
                   return_trajectory=True)  # fmt: skip
    np.testing.assert_array_equal(res.chain_indices, [0, 2, 3, 5])
    assert res.samples.shape == (4, 2) and np.all(np.isfinite(res.samples))
    assert res.trajectory.shape == (10, 4, 2)
    full = m.sample(6, n_steps=10, step_size=10.0, init=np.ones((6, 2), np.float32))
    np.testing.assert_array_equal(res.samples, full.samples[[0, 2, 3, 5]])
    py = sm.langevin(m.score, x0, 10, 10.0, on_divergence="mask")
    np.testing.assert_array_equal(py.samples, res.samples)
    # MALA rejects non-finite proposals instead: from 1e19 the energy (5e37) is finite in
    # float32, the proposals' (from about -4e19) are not, and nothing diverges.
    x0[[1, 4], 0] = 1e19
    mala = m.sample(6, n_steps=10, step_size=10.0, init=x0, method="mala")
    assert np.all(np.isfinite(mala.samples))


@pytest.mark.parametrize("path", ["engine", "langevin"])
def test_a_ctrl_c_result_drops_the_chains_that_diverged_with_mask(path):
    # The KeyboardInterrupt's result of a run with on_divergence="mask" held the chains that
    # had diverged, Inf rows and all, with their indices: the result so far must be masked as
    # the finished run's is. Here Ctrl-C comes after step 3 of 10 (chains 1 and 4 diverge at
    # step 0), in the progress callback after the only block or in score_fn at step 3.
    m, x0 = _exploding()
    kw = {"on_divergence": "mask", "return_trajectory": True, "thin": 2, "first_chain": 5}
    if path == "engine":

        def progress(done, total):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt) as info:
            m.sample(6, n_steps=3, step_size=10.0, init=x0, progress=progress, **kw)
    else:
        calls = 0

        def score_fn(x):
            nonlocal calls
            calls += 1
            if calls == 4:
                raise KeyboardInterrupt
            return m.score(x)

        with pytest.raises(KeyboardInterrupt) as info:
            sm.langevin(score_fn, x0, 10, 10.0, **kw)
    got, want = info.value.result, sm.langevin(m.score, x0, 3, 10.0, **kw)
    np.testing.assert_array_equal(want.chain_indices, [5, 7, 8, 10])
    np.testing.assert_array_equal(got.chain_indices, want.chain_indices)
    np.testing.assert_array_equal(got.samples, want.samples)
    np.testing.assert_array_equal(got.trajectory, want.trajectory)
    np.testing.assert_array_equal(got.step_size, want.step_size)
    assert got.acceptance_rate is None


def test_mala_chains_whose_start_overflows_diverge_there_as_in_langevin():
    # At 1e20 the float32 energy ½‖x‖² overflows: MALA's acceptance test is undefined
    # there. The engine ran such chains on without an error (stuck at init, or taking the
    # first finite proposal whatever the target); now it reports them as scorematch.langevin
    # does, and the mask keeps the chains that a finite start would give.
    m, x0 = _exploding()
    x0[[1, 4], 0] = 1e20
    with pytest.raises(SamplingDivergedError) as info:
        m.sample(6, n_steps=20, step_size=0.5, init=x0, method="mala")
    assert str(info.value) == (
        "2 of 6 chains diverged (NaN or Inf score or energy) at step 0: the "
        "model's score or energy is NaN or Inf at 2 of the starting points (it overflows "
        "there), where MALA's acceptance test is undefined; start them nearer the model's "
        "mass (init), or on_divergence='mask' to drop those chains"
    )
    assert (info.value.n_diverged, info.value.n_chains, info.value.step) == (2, 6, 0)
    opts: dict[str, Any] = {
        "n_steps": 20,
        "step_size": 0.5,
        "method": "mala",
        "on_divergence": "mask",
        "seed": 3,
    }
    res = m.sample(6, init=x0, **opts)
    np.testing.assert_array_equal(res.chain_indices, [0, 2, 3, 5])
    finite = m.sample(6, init=np.ones((6, 2), np.float32), **opts)
    np.testing.assert_array_equal(res.samples, finite.samples[[0, 2, 3, 5]])
    np.testing.assert_array_equal(res.acceptance_rate, finite.acceptance_rate[[0, 2, 3, 5]])
    assert np.all(res.acceptance_rate > 0)
    py = sm.langevin(m.score, x0, energy_fn=m.energy, **opts)
    np.testing.assert_array_equal(py.chain_indices, res.chain_indices)
    np.testing.assert_array_equal(py.samples, res.samples)


def _half_square(x):
    return 0.5 * np.sum(x * x, axis=1)


def _nan_at(marker):
    """A score function of N(0, I) that returns NaN on the rows whose first coordinate is
    ``marker``, recording the number of rows of every call."""

    def score_fn(x):
        score_fn.rows.append(x.shape[0])
        s = -x
        s[x[:, 0] == marker] = np.nan
        return s

    score_fn.rows = []
    return score_fn


def test_mala_langevin_names_score_fn_when_it_returns_nan_at_x0():
    # Those chains rejected every proposal and sat at x0 with acceptance 0, with no error.
    x0 = np.zeros((5, 2))
    x0[[1, 3], 0] = 7.0
    with pytest.raises(SamplingDivergedError) as info:
        sm.langevin(_nan_at(7.0), x0, 20, 0.1, method="mala", energy_fn=_half_square)
    assert str(info.value) == (
        "2 of 5 chains diverged (NaN or Inf score or energy) at step 0: score_fn "
        "returned NaN or Inf at finite states (x0) for 2 of them, where MALA's acceptance "
        "test is undefined; fix score_fn, or on_divergence='mask' to drop those chains"
    )
    assert (info.value.n_diverged, info.value.n_chains, info.value.step) == (2, 5, 0)


def test_mala_langevin_names_energy_fn_when_it_returns_inf_at_x0():
    # An energy that is +Inf outside the disc |x| < 3 (a target without support there):
    # a chain started outside has no defined acceptance test, and every proposal it made
    # (outside too) was rejected, silently.
    def energy_fn(x):
        e = _half_square(x)
        e[np.hypot(x[:, 0], x[:, 1]) > 3.0] = np.inf
        return e

    x0 = np.zeros((4, 2))
    x0[2] = [5.0, 0.0]
    with pytest.raises(SamplingDivergedError) as info:
        sm.langevin(lambda x: -x, x0, 20, 0.1, method="mala", energy_fn=energy_fn)
    assert str(info.value) == (
        "1 of 4 chains diverged (NaN or Inf score or energy) at step 0: energy_fn "
        "returned NaN or Inf at finite states (x0) for 1 of them, where MALA's acceptance "
        "test is undefined; fix energy_fn, or on_divergence='mask' to drop those chains"
    )

    # Both at once: each function's count, and a chain with both counted once.
    x0 = np.array([[0.5, 0.0], [5.0, 0.0], [0.5, 4.0], [0.0, 0.0]])
    with pytest.raises(SamplingDivergedError) as info:
        sm.langevin(_nan_at(0.5), x0, 20, 0.1, method="mala", energy_fn=energy_fn)
    assert str(info.value) == (
        "3 of 4 chains diverged (NaN or Inf score or energy) at step 0: score_fn "
        "returned NaN or Inf at finite states (x0) for 2 of them and energy_fn for 2, where "
        "MALA's acceptance test is undefined; fix score_fn and energy_fn, or "
        "on_divergence='mask' to drop those chains"
    )


def test_mala_langevin_masks_the_chains_whose_score_is_nan_at_x0():
    # Chains 1 and 3 (streams 11 and 13) are dropped; the others are the chains of a run
    # whose score is finite everywhere, and the dropped ones are never evaluated again.
    x0 = np.random.default_rng(4).normal(size=(6, 2))
    x0[[1, 3], 0] = 7.0
    kw = {"method": "mala", "energy_fn": _half_square, "first_chain": 10, "seed": 2,
          "burn_in": 2, "return_trajectory": True}  # fmt: skip
    score_fn = _nan_at(7.0)
    res = sm.langevin(score_fn, x0, 8, 0.5, on_divergence="mask", **kw)
    np.testing.assert_array_equal(res.chain_indices, [10, 12, 14, 15])
    assert score_fn.rows == [6] + [4] * 10
    finite = x0.copy()
    finite[[1, 3], 0] = 0.0
    ref = sm.langevin(lambda x: -x, finite, 8, 0.5, **kw)
    keep = [0, 2, 4, 5]
    np.testing.assert_array_equal(res.samples, ref.samples[keep])
    np.testing.assert_array_equal(res.trajectory, ref.trajectory[:, keep])
    np.testing.assert_array_equal(res.acceptance_rate, ref.acceptance_rate[keep])
    np.testing.assert_array_equal(res.step_size, np.full(4, 0.5))
    assert 0 < ref.acceptance_rate[keep].min()
    # Every chain dropped: an empty result, and no further call.
    score_fn = _nan_at(0.0)
    none = sm.langevin(score_fn, np.zeros((3, 2)), 5, 0.5, on_divergence="mask", **kw)
    assert none.samples.shape == (0, 2) and none.trajectory.shape == (5, 0, 2)
    assert none.acceptance_rate.shape == (0,) and none.chain_indices.shape == (0,)
    assert score_fn.rows == [3]


def test_mala_langevin_rejects_proposals_with_a_nan_score_or_an_inf_energy():
    # Not at x0: there a NaN score or an Inf energy is a rejected proposal, not an error.
    def score_fn(x):
        s = -x
        s[x[:, 0] > 1.0] = np.nan
        return s

    def energy_fn(x):
        e = _half_square(x)
        e[x[:, 1] > 1.0] = np.inf
        return e

    res = sm.langevin(score_fn, np.zeros((200, 2)), 50, 0.5, method="mala", energy_fn=energy_fn)
    assert np.all(res.samples <= 1.0)
    assert 0.3 < res.acceptance_rate.mean() < 0.95
    # The engine's MALA rejects a proposal whose energy overflows, and so does langevin with
    # its score and energy, bit for bit: chains 1 and 4 (float32 energy 5e37 at x0, Inf at
    # every proposal ≈ −4·x0) never move, with no error.
    m = gaussian(2, 1.0, dtype="float32")
    x0 = np.ones((6, 2), dtype=np.float32)
    x0[[1, 4], 0] = 1e19
    kw = {"method": "mala", "seed": 5, "return_trajectory": True}
    a = m.sample(6, n_steps=40, step_size=10.0, init=x0, **kw)
    b = sm.langevin(m.score, x0, 40, 10.0, energy_fn=m.energy, **kw)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    np.testing.assert_array_equal(a.acceptance_rate, b.acceptance_rate)
    np.testing.assert_array_equal(b.samples[[1, 4]], x0[[1, 4]])
    assert np.all(b.acceptance_rate[[1, 4]] == 0) and b.acceptance_rate.sum() > 0


def test_progress_callback_and_wall_time(model):
    seen = []
    res = model.sample(100, n_steps=50, step_size=0.01, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (50, 50)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert res.wall_time > 0


def test_gil_is_released_while_sampling():
    m = EnergyMLP(2, hidden=(64, 64), seed=0)
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    th = threading.Thread(target=ticker)
    th.start()
    try:
        t0 = time.perf_counter()
        m.sample(2048, n_steps=200, step_size=0.01)
        t1 = time.perf_counter()
    finally:
        stop.set()
        th.join()
    during = [t for t in ticks if t0 < t < t1]
    # The run takes 0.5-0.8 s here, and tens of milliseconds on any machine: with the GIL
    # held throughout, the ticker could not tick at all.
    assert len(during) >= 3, (t1 - t0, len(during))


def mixture(mu, sigma2):
    """The exact energy of ½N(μ, σ²I) + ½N(−μ, σ²I), up to a constant: with u = x·μ/σ²,
    −log p = ‖x‖²/(2σ²) − log(eᵘ + e⁻ᵘ) and log(eᵘ + e⁻ᵘ) = ½[softplus(2u) + softplus(−2u)],
    so one hidden layer of width 2 represents it exactly."""
    mu = np.asarray(mu, dtype=np.float64)
    W1 = np.stack([2 * mu / sigma2, -2 * mu / sigma2])
    params = [W1, np.zeros(2), np.array([[-0.5, -0.5]]), np.zeros(1)]
    return EnergyMLP.from_params(params, activation="softplus", alpha=1.0 / sigma2)


def mmd_permutation_pvalue(x, y, rng, n_perm=200, bandwidth=1.0):
    """p-value of the unbiased-free (V-statistic) Gaussian-kernel MMD² by permutation."""
    z = np.concatenate([x, y])
    sq = np.sum(z**2, axis=1)
    k = np.exp(-(sq[:, None] + sq[None, :] - 2 * z @ z.T) / (2 * bandwidth**2))
    n = len(x)
    signs = np.empty((len(z), n_perm + 1))
    signs[:, 0] = np.r_[np.full(n, 1.0 / n), np.full(len(y), -1.0 / len(y))]
    for j in range(1, n_perm + 1):
        signs[:, j] = rng.permutation(signs[:, 0])
    stats = np.einsum("ij,ij->j", signs, k @ signs)
    return float(np.mean(stats[1:] >= stats[0]))


def test_mala_matches_a_two_dimensional_mixture():
    mu, sigma2, n = np.array([1.0, 0.5]), 0.25, 1000
    m = mixture(mu, sigma2)
    # The construction is exact: the model's score is the mixture's.
    x = np.random.default_rng(0).normal(size=(5, 2))
    a, b = x @ mu / sigma2, -(x @ mu) / sigma2
    wa = 1 / (1 + np.exp(b - a))
    exact_score = (wa[:, None] * (mu - x) + (1 - wa)[:, None] * (-mu - x)) / sigma2
    np.testing.assert_allclose(m.score(x), exact_score, rtol=1e-12, atol=1e-12)

    res = m.sample(n, n_steps=300, step_size=0.05, method="mala", seed=12)
    rng = np.random.default_rng(13)
    exact = (
        rng.normal(size=(n, 2)) * np.sqrt(sigma2)
        + np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None] * mu
    )
    s = res.samples
    cov = sigma2 * np.eye(2) + np.outer(mu, mu)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(s.mean(axis=0)) < 4.5 * se_mean), s.mean(axis=0)
    dev = s[:, :, None] * s[:, None, :] - cov
    se_cov = np.std(exact[:, :, None] * exact[:, None, :], axis=0) / np.sqrt(n)
    assert np.all(np.abs(dev.mean(axis=0)) < 4.5 * se_cov), (np.cov(s.T), cov)
    assert mmd_permutation_pvalue(s, exact, rng) > 0.01


def test_ctrl_c_interrupts_a_long_run():
    m = EnergyMLP(2, hidden=(32,), alpha=1.0, seed=0)
    with ctrl_c_every(0.3) as presses, pytest.raises(KeyboardInterrupt):
        m.sample(2048, n_steps=200_000, step_size=0.01)  # a minute or more uninterrupted
    assert presses.first is not None and time.perf_counter() - presses.first < 1.5


@pytest.mark.parametrize("method", ["ula", "mala"])
def test_langevin_keeps_its_chains_on_ctrl_c(method):
    # As EnergyMLP.sample: the KeyboardInterrupt carries the chains after the last completed
    # step. Here score_fn itself raises it, during step 7 (0-based; ULA calls it once a step,
    # MALA once more at the start), so 7 steps (2 of burn-in) completed: the same chains as a
    # run of 5 steps.
    m = _small_model()
    x0 = np.random.default_rng(1).normal(size=(6, 3))
    calls = 0

    def score_fn(x):
        nonlocal calls
        calls += 1
        if calls == 8 + (method == "mala"):
            raise KeyboardInterrupt
        return m.score(x)

    kw = {"method": method, "burn_in": 2, "thin": 2, "return_trajectory": True, "seed": 3}
    if method == "mala":
        kw["energy_fn"] = m.energy
    with pytest.raises(KeyboardInterrupt) as info:
        sm.langevin(score_fn, x0, 10, 0.05, **kw)
    got, want = info.value.result, sm.langevin(m.score, x0, 5, 0.05, **kw)
    assert info.value.steps_done == 7
    np.testing.assert_array_equal(got.samples, want.samples)
    np.testing.assert_array_equal(got.trajectory, want.trajectory)
    if method == "mala":
        np.testing.assert_array_equal(got.acceptance_rate, want.acceptance_rate)
    else:
        assert got.acceptance_rate is None


GOLDEN_PARAMS = [
    [[-0.793, 0.241], [-1.896, 1.396], [0.638, -0.292], [-0.312, 0.304]],
    [-0.268, -0.226, 0.72, 0.515],
    [[-0.064, -0.085, 0.161, -0.614]],
    [-0.404],
]
# Recorded on 2026-11-25 (ChaCha8 streams, rand 0.10): a change here means seeded samples of
# existing users change. Tolerance, not equality: SIMD paths may round the last bits apart.
GOLDEN = {
    "ula": [
        [-1.076800231919901, -0.41129544117807615],
        [0.6076941911931557, -2.021802888941381],
        [-1.0521461336668843, -0.48733261719353466],
    ],
    "mala": [
        [-0.8038276241269913, -0.7249881398027561],
        [0.21504907965822673, -1.316681468341165],
        [-0.9861582951080047, -0.4048468998071232],
    ],
}


@pytest.mark.parametrize("method", ["ula", "mala"])
def test_seeded_output_is_stable(method):
    params = [np.array(p) for p in GOLDEN_PARAMS]
    m = EnergyMLP.from_params(params, activation="softplus", alpha=1.0)
    res = m.sample(3, n_steps=5, step_size=0.1, method=method, seed=7)
    np.testing.assert_allclose(res.samples, GOLDEN[method], rtol=0, atol=1e-12)


def test_float32_keeps_a_drift_below_the_rounding_of_x():
    # Target N(0, 1) from x0 = 1 with ε = 1e-8: each step's drift, (ε/2)·x = 5e-9, is below
    # half an ulp of x in float32 (6e-8). Added to x on its own it was rounded away at every
    # step, and the float32 chains kept none of the drift the float64 ones show; added with
    # the noise first, it survives on average. Same normals in both dtypes.
    n, steps, eps = 2000, 2000, 1e-8
    zero = [np.zeros((4, 1)), np.zeros(4), np.zeros((1, 4)), np.zeros(1)]
    means = {}
    for dtype in ("float64", "float32"):
        m = EnergyMLP.from_params(zero, alpha=1.0, dtype=dtype)
        x0 = np.ones((n, 1), dtype)
        res = m.sample(n, n_steps=steps, step_size=eps, init=x0, seed=0)
        means[dtype] = res.samples.astype(np.float64).mean()
        # The Python path takes the same order, bit for bit.
        py = sm.langevin(m.score, x0, steps, eps, seed=0)
        np.testing.assert_array_equal(py.samples, res.samples)
    # The mean drift, -1e-5, is below the noise of the mean (1e-4), but the same normals
    # cancel that in the difference; float32 rounding leaves ~4e-8 of it.
    drift = (1 - eps / 2) ** steps - 1
    assert abs(means["float32"] - means["float64"]) < 0.05 * abs(drift)


def test_sample_results_compare_and_hash_by_identity():
    # A generated __eq__ compared the arrays with ==: `r == r2` raised numpy's "truth value
    # of an array is ambiguous", and so did `r in results`; hash(r) raised TypeError.
    r = _small_model().sample(4, n_steps=3)
    twin = copy.deepcopy(r)
    assert r != twin and r in [twin, r] and twin not in [r]
    assert len({r, twin, r}) == 2
    assert np.array_equal(r.samples, twin.samples)


def _small_model():
    return EnergyMLP(3, hidden=(8,), activation="tanh", alpha=0.5, seed=3)


def test_sample_result_is_immutable():
    res = _small_model().sample(2, n_steps=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.samples = np.zeros((2, 3))


_BAR = re.compile(r"\[(#*)(\.*)\] (\d+)/(\d+) steps (\d+\.\d)s")


@pytest.mark.parametrize("flag", [True, np.bool_(True)])
@pytest.mark.parametrize(("n_chains", "n_steps"), [(3, 1), (3, 7), (2000, 150)])
def test_progress_true_draws_a_30_wide_bar_on_stderr(capsys, flag, n_chains, n_steps):
    # 2000 chains of this model run in blocks of a few tens of steps: several frames.
    model = EnergyMLP(2, hidden=(64, 64), alpha=1.0, seed=0)
    model.sample(n_chains, n_steps=n_steps, progress=flag)
    err = capsys.readouterr().err
    assert err.startswith("\r[") and err.endswith("\n")
    frames = [f for f in err.rstrip("\n").split("\r") if f]
    assert frames
    for frame in frames:
        bar = _BAR.fullmatch(frame)
        assert bar, frame
        hashes, dots, done, total = len(bar[1]), len(bar[2]), int(bar[3]), int(bar[4])
        assert hashes + dots == 30
        assert total == n_steps and 0 <= done <= total
        assert hashes == int(30 * done / total)
        assert float(bar[5]) < 60.0  # seconds since the run started
    if n_chains == 2000:
        assert len(frames) >= 3 and 0 < int(_BAR.fullmatch(frames[0])[3]) < n_steps
    last = _BAR.fullmatch(frames[-1])
    assert last[1] == "#" * 30 and int(last[3]) == n_steps


def test_progress_true_ends_its_line_when_the_run_stops_early(capsys, monkeypatch):
    # A run stopped before its last step (here a divergence at about step 64, seen after
    # the block of one step in which it happens) left the bar's line open: the traceback began
    # on it, "[#.....] 63/100 steps 0.0sTraceback (most recent call last):".
    monkeypatch.setattr(sm.sampling, "_BLOCK_WORK", 1)  # blocks of one step
    m, _ = _exploding()
    with pytest.raises(SamplingDivergedError):
        m.sample(6, n_steps=100, step_size=10.0, init=np.ones((6, 2), np.float32), progress=True)
    err = capsys.readouterr().err
    frames = [f for f in err.rstrip("\n").split("\r") if f]
    assert len(frames) > 10 and all(_BAR.fullmatch(f) for f in frames), err
    assert int(_BAR.fullmatch(frames[-1])[3]) < 100 and err.endswith("\n"), err


@pytest.mark.parametrize("flag", [False, np.bool_(False), None])
def test_progress_false_or_none_writes_nothing(capsys, flag):
    _small_model().sample(3, n_steps=5, progress=flag)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("method", [None, 3, b"ula"])
def test_a_method_that_is_not_a_string_is_named(method):
    with pytest.raises(
        ValueError, match=re.escape(f"method must be 'ula', 'mala' or 'annealed', got {method!r}")
    ):
        _small_model().sample(2, n_steps=2, method=method)


@pytest.mark.parametrize("temps", ["abc", 5, 2.0])
def test_annealed_temperatures_must_be_a_sequence(temps):
    with pytest.raises(
        TypeError,
        match=re.escape(
            "temperatures must be a sequence of numbers, e.g. [10.0, 3.0, 1.0], got "
            f"{type(temps).__name__}"
        ),
    ):
        _small_model().sample(2, method="annealed", temperatures=temps)


def test_a_0d_array_of_temperatures_is_not_a_sequence():
    # numpy's own "iteration over a 0-d array" escaped.
    with pytest.raises(
        TypeError,
        match=re.escape(
            "temperatures must be a sequence of numbers, e.g. [10.0, 3.0, 1.0], got 0-d ndarray"
        ),
    ):
        _small_model().sample(3, n_steps=5, method="annealed", temperatures=np.array(2.0))
    res = _small_model().sample(3, n_steps=4, method="annealed", temperatures=np.array([2.0]))
    assert res.samples.shape == (3, 3)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"temperatures": []}, "temperatures must list at least one temperature, got []"),
        (
            {"temperatures": [2.0, 1.0], "temperature": 2.0},
            "pass temperatures, not temperature, with method='annealed'",
        ),
        (
            {"temperatures": [2.0, 1.0], "burn_in": 3},
            "method='annealed' takes neither burn_in nor adapt_step_size",
        ),
        (
            {"temperatures": [2.0, 1.0], "adapt_step_size": True},
            "method='annealed' takes neither burn_in nor adapt_step_size",
        ),
    ],
)
def test_annealed_option_combinations_are_refused(kw, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        _small_model().sample(2, method="annealed", **kw)


def test_annealed_runs_at_least_one_step_per_level():
    m = _small_model()
    # 2 steps over 3 temperatures: one step per level, three states in all.
    res = m.sample(
        4, n_steps=2, method="annealed", temperatures=[4.0, 2.0, 1.0], return_trajectory=True
    )
    assert res.trajectory.shape == (3, 4, 3)
    one = m.sample(
        4,
        method="annealed",
        temperatures=[4.0, 2.0, 1.0],
        steps_per_level=1,
        return_trajectory=True,
    )
    assert one.trajectory.shape == (3, 4, 3)
    with pytest.raises(ValueError, match=re.escape("steps_per_level must be at least 1, got 0")):
        m.sample(4, method="annealed", temperatures=[4.0, 2.0, 1.0], steps_per_level=0)
    np.testing.assert_array_equal(one.samples, res.samples)


@pytest.mark.parametrize("target", [0.0, 1.0, 1.5, -0.1])
def test_target_accept_must_be_strictly_between_0_and_1(target):
    with pytest.raises(
        ValueError, match=re.escape(f"target_accept must be in (0, 1), got {target}")
    ):
        _small_model().sample(
            2, method="mala", adapt_step_size=True, burn_in=2, target_accept=target
        )


@pytest.mark.parametrize(
    "kw",
    [
        {"method": "ula"},
        {"method": "mala"},
        {"method": "mala", "adapt_step_size": True, "burn_in": 2},
        {"method": "annealed", "temperatures": [2.0, 1.0]},
    ],
)
@pytest.mark.parametrize("target", [5.0, 0.0, 1.0, -0.1, float("nan"), float("inf")])
def test_target_accept_is_checked_whatever_the_method(kw, target):
    # It was checked only with adapt_step_size=True, and target_accept=5.0 passed otherwise.
    with pytest.raises(
        ValueError, match=f"^{re.escape(f'target_accept must be in (0, 1), got {target}')}$"
    ):
        _small_model().sample(3, n_steps=5, target_accept=target, **kw)
    with pytest.raises(TypeError, match="^target_accept must be a number, got str$"):
        _small_model().sample(3, n_steps=5, target_accept="0.5", **kw)


def test_a_valid_target_accept_without_adaptation_changes_nothing():
    m = _small_model()
    plain = m.sample(3, n_steps=5, method="mala")
    given = m.sample(3, n_steps=5, method="mala", target_accept=0.8)
    np.testing.assert_array_equal(plain.samples, given.samples)


def test_adaptation_needs_and_accepts_one_burn_in_step():
    m = _small_model()
    res = m.sample(4, n_steps=5, method="mala", adapt_step_size=True, burn_in=1)
    assert res.step_size.shape == (4,) and np.all(res.step_size != 0.01)  # tuned
    with pytest.raises(
        ValueError, match=re.escape("adapt_step_size tunes ε during burn-in: pass burn_in >= 1")
    ):
        m.sample(4, n_steps=5, method="mala", adapt_step_size=True, burn_in=0)


def test_chain_indices_count_from_first_chain_and_wall_time_is_the_run_time():
    m = _small_model()
    res = m.sample(4, n_steps=3, first_chain=7)
    np.testing.assert_array_equal(res.chain_indices, [7, 8, 9, 10])
    assert 0 < res.wall_time < 60.0
    py = sm.langevin(m.score, np.zeros((4, 3)), 3, 0.01, first_chain=7)
    np.testing.assert_array_equal(py.chain_indices, [7, 8, 9, 10])
    assert 0 < py.wall_time < 60.0


def test_an_interrupted_run_keeps_its_chain_indices_and_wall_time():
    m = EnergyMLP(2, hidden=(64, 64), alpha=1.0, seed=0)

    def progress(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        m.sample(2000, n_steps=10**6, first_chain=5, progress=progress)
    res = info.value.result
    np.testing.assert_array_equal(res.chain_indices, np.arange(5, 2005))
    assert res.samples.shape == (2000, 2)
    assert 0 < res.wall_time < 60.0


def test_langevin_returns_no_trajectory_by_default():
    res = sm.langevin(lambda x: -x, np.zeros((3, 2)), 4, 0.1)
    assert res.trajectory is None and res.acceptance_rate is None


def test_langevin_names_the_energy_shape_it_needs():
    x0 = np.zeros((5, 2))
    with pytest.raises(ValueError, match=re.escape("energy_fn must return shape (5,), got (5, 1)")):
        sm.langevin(
            lambda x: -x,
            x0,
            3,
            0.1,
            method="mala",
            energy_fn=lambda x: 0.5 * (x**2).sum(1, keepdims=True),
        )


@pytest.mark.parametrize("burn_in", [0, 1, 4])
def test_langevin_trajectory_may_keep_no_state(burn_in):
    # Fewer steps than thin: nothing is recorded, as for model.sample.
    x0 = np.zeros((3, 2))
    res = sm.langevin(lambda x: -x, x0, 2, 0.1, burn_in=burn_in, thin=3, return_trajectory=True)
    assert res.trajectory.shape == (0, 3, 2)
    m = EnergyMLP(2, hidden=(4,), seed=0)
    eng = m.sample(3, n_steps=2, burn_in=burn_in, thin=3, return_trajectory=True)
    assert eng.trajectory.shape == (0, 3, 2)


def test_masking_when_as_many_chains_survive_as_there_are_coordinates():
    # ε·α/2 = 5 multiplies x by −4 per step: float32 overflows at once from 1e38.
    zero = [np.zeros((4, 3)), np.zeros(4), np.zeros((1, 4)), np.zeros(1)]
    m = EnergyMLP.from_params(zero, alpha=1.0, dtype="float32")
    x0 = np.ones((5, 3), dtype=np.float32)
    x0[[1, 4], 0] = 1e38
    res = m.sample(
        5, n_steps=3, step_size=10.0, init=x0, on_divergence="mask", return_trajectory=True
    )
    np.testing.assert_array_equal(res.chain_indices, [0, 2, 3])
    assert res.samples.shape == (3, 3) and np.all(np.isfinite(res.samples))
    assert res.trajectory.shape == (3, 3, 3) and res.step_size.shape == (3,)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_langevin_runs_an_integer_start_in_float64(dtype):
    x0 = np.arange(6).reshape(3, 2)
    a = sm.langevin(lambda x: -x, x0.astype(dtype), 5, 0.1, seed=2)
    b = sm.langevin(lambda x: -x, x0.astype(np.float64), 5, 0.1, seed=2)
    assert a.samples.dtype == np.float64
    np.testing.assert_array_equal(a.samples, b.samples)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 1)])
def test_langevin_needs_a_2d_start(shape):
    with pytest.raises(
        ValueError, match=re.escape(f"x0 must be 2-D with shape (n_chains, dim), got shape {shape}")
    ):
        sm.langevin(lambda x: -x, np.zeros(shape), 3, 0.1)


@pytest.mark.parametrize("method", ["annealed", "hmc"])
def test_langevin_takes_ula_or_mala_only(method):
    with pytest.raises(
        ValueError, match=re.escape(f"method must be 'ula' or 'mala', got {method!r}")
    ):
        sm.langevin(
            lambda x: -x,
            np.zeros((3, 2)),
            3,
            0.1,
            method=method,
            energy_fn=lambda x: 0.5 * (x**2).sum(1),
        )


def test_a_trajectory_too_large_to_allocate_is_named_with_its_sizes(model):
    # numpy's "Unable to allocate 9.16 PiB for an array with shape (4294967295, 100000, 3)"
    # named neither the trajectory nor what makes it smaller. 9.16 PiB is past the 128 TiB
    # address space of any x86-64 process, overcommit or not.
    want = (
        "cannot allocate the trajectory (return_trajectory=True): 4294967295 kept states × "
        "100000 chains × 3 coordinates of float64, 9.16 PiB; pass a larger thin, fewer "
        "steps or return_trajectory=False"
    )
    with pytest.raises(MemoryError, match=f"^{re.escape(want)}$"):
        model.sample(100_000, n_steps=2**32 - 1, return_trajectory=True)
    with pytest.raises(MemoryError, match=f"^{re.escape(want)}$"):
        sm.langevin(lambda x: -x, np.zeros((100_000, 3)), 2**32 - 1, 0.1, return_trajectory=True)


@pytest.mark.parametrize("method", ["ula", "mala"])
def test_langevin_with_no_chain_left_takes_no_more_steps(method):
    # With x0 of no rows every step called score_fn on an empty array: the longest run
    # allowed, 2**32 - 1 steps, took most of a day to return an empty result.
    calls: list[tuple[int, ...]] = []

    def score_fn(x):
        calls.append(x.shape)
        return -x

    kw = {"energy_fn": lambda x: 0.5 * (x * x).sum(axis=1)} if method == "mala" else {}
    first = [] if method == "ula" else [(0, 2)]  # MALA's score at x0, before any step
    res = sm.langevin(score_fn, np.zeros((0, 2)), 1000, 0.1, method=method, **kw)
    assert res.samples.shape == (0, 2) and calls == first
    t0 = time.perf_counter()
    res = sm.langevin(
        score_fn,
        np.zeros((0, 2)),
        2**32 - 1,
        0.1,
        method=method,
        thin=2**31,
        return_trajectory=True,
        **kw,
    )
    assert time.perf_counter() - t0 < 5.0
    assert res.samples.shape == (0, 2) and res.trajectory.shape == (1, 0, 2)
    assert res.chain_indices.shape == (0,) and calls == first * 2


def test_a_progress_that_is_neither_bool_nor_callable_is_described_on_one_line(model):
    # The message showed repr(progress): five lines and more for an array of a few rows.
    want = "progress must be None, a bool or a callable(done, total), got "
    for progress, shown in [
        (3, "3"),
        (np.zeros((5, 2)), "ndarray of shape (5, 2) and dtype float64"),
    ]:
        with pytest.raises(TypeError) as info:
            model.sample(2, n_steps=1, progress=progress)
        assert str(info.value) == want + shown


def test_mala_langevin_rejects_a_proposal_whose_energy_is_minus_inf():
    # The log acceptance ratio of such a proposal is +Inf: without the finiteness test the
    # chains jumped into the region of energy -Inf and stayed there (mutation audit).
    def energy(x):
        return np.where(x[:, 0] > 0.5, -np.inf, 0.5 * (x**2).sum(axis=1))

    res = sm.langevin(
        lambda x: -x, np.zeros((16, 1)), 200, 0.5, seed=0, method="mala", energy_fn=energy
    )
    assert np.all(res.samples[:, 0] <= 0.5)
    assert np.all(np.isfinite(energy(res.samples)))
