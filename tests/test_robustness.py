"""Requests that used to abort the interpreter, return NaN for finite input, or pass bad
arguments through silently: each gets a clear exception, or the right numbers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scorematch as sm
from helpers import same_arrays
from scorematch import EnergyMLP


@pytest.fixture
def model():
    return EnergyMLP(2, hidden=(8,), alpha=1.0, seed=3)


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(64, 2))


# ------------------------------------------------------------------ memory


# Each case needs more memory than the 3 GiB address space the script gives itself; before
# these checks existed, each one aborted the interpreter (so they run in a subprocess, where an
# abort fails the test instead of killing the suite).
OVERSIZED = r"""
import json, resource
import numpy as np
import scorematch as sm
from scorematch import _core
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
cases = {
    # the forward-Laplacian tape of 4097 stacked rows of width 1e5: 16 GB per thread
    "ssm tape": lambda: sm.EnergyMLP(2, hidden=(100_000,)).ssm_loss_and_grad(
        np.zeros((1, 2)), n_projections=4096),
    # a chunk of the score pass at width 2**24 (float32), of the fewest rows (16): 4 GiB per
    # thread
    "score workspace": lambda: sm.EnergyMLP(1, hidden=(2**24,), dtype="float32").score(
        np.zeros((256, 1), np.float32)),
    # the weights' GEMM layouts, a dim-1 layer padded to the kernel's panel width: 8 GB
    "model layouts": lambda: sm.EnergyMLP(1, hidden=(2**27,), dtype="float32"),
    # 2**25 random streams of 320 bytes for a 128 MB start
    "langevin streams": lambda: sm.langevin(
        lambda x: -x, np.zeros((2**25, 1), np.float32), n_steps=1, step_size=0.1),
    # the epoch permutation a Dask fit draws over all rows (8 TB)
    "permutation": lambda: _core.epoch_permutation(0, 0, 2**40),
    "optimizer state": lambda: _core.Optimizer("float64", 2**40, "adam", 1e-3, 0.0),
}
out = {}
for name, f in cases.items():
    try:
        f()
        out[name] = "no error"
    except MemoryError as e:
        out[name] = "MemoryError: " + str(e)
print(json.dumps(out))
"""


def test_oversized_buffers_are_memory_errors_not_aborts():
    run = subprocess.run(
        [sys.executable, "-c", OVERSIZED], check=False, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout)
    expected = {
        "ssm tape": r"working buffers of ssm_loss for this model: \d+ bytes per thread",
        "score workspace": r"working buffers of score for this model",
        "model layouts": r"GEMM layouts of a model of 402653185 parameters",
        "langevin streams": r"the chains' random streams: 33554432 values of 320 bytes",
        "permutation": r"the permutation of the rows: 1099511627776 values of 8 bytes",
        "optimizer state": r"optimizer's first moments",
    }
    for name, pattern in expected.items():
        assert re.search("MemoryError: cannot allocate .*" + pattern, got[name]), (name, got[name])


REPEATED = r"""
import resource
import numpy as np
import scorematch as sm
sm.set_num_threads(2)
m = sm.EnergyMLP(1, hidden=(2**20,), dtype="float32")
X = np.zeros((32, 1), np.float32)  # two chunks of 16 rows: a 256 MiB workspace per thread
m.score(X[:1])
size = int([l for l in open("/proc/self/status") if l.startswith("VmSize")][0].split()[1]) >> 10
# Room for one call's workspaces (512 MiB), not for a second set beside them.
resource.setrlimit(resource.RLIMIT_AS, ((size + 768) << 20, (size + 768) << 20))
for _ in range(3):
    m.score(X)
# An allocation of the same size as the cached workspaces, which are idle now.
sm.EnergyMLP(1, hidden=(2**20,), dtype="float32").score(X)
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_repeated_call_under_a_memory_limit_reuses_its_workspaces():
    """The memory check before a call counted the workspaces it needs as new memory, even
    where the threads already held them from the previous call: under a limit with room for
    one set, the second identical call was refused. Refused requests are now retried after the
    idle workspaces are freed."""
    run = subprocess.run(
        [sys.executable, "-c", REPEATED], check=False, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_a_wide_input_needs_no_dim_squared_buffers():
    # The reverse passes' adjoint buffers were dim wide per stacked row, dim² values for the
    # forward Laplacian (80 GB at dim 1e5, an abort). Reference: E = w·σ(Wx + b) + c has
    # Laplacian w·σ''(z)·‖W‖² with σ'' = sigmoid' for softplus.
    d = 100_000
    m = EnergyMLP(d, hidden=(1,), seed=0)
    W, b, w, _c = m.params
    x = np.random.default_rng(1).normal(size=(1, d)) * 1e-3
    z = float(W[0] @ x[0] + b[0])
    sig = 1.0 / (1.0 + np.exp(-z))
    lap = float(w[0, 0]) * sig * (1.0 - sig) * float(W[0] @ W[0])
    np.testing.assert_allclose(m.hessian_trace(x), [-lap], rtol=1e-10)
    s = -float(w[0, 0]) * sig * W[0]
    np.testing.assert_allclose(m.ism_loss(x), -lap + 0.5 * float(s @ s), rtol=1e-10)


def test_more_chains_than_memory_is_a_memory_error_not_an_abort(model):
    with pytest.raises(MemoryError, match=r"cannot allocate 1000000000000000 chains"):
        model.sample(10**15, n_steps=1)


def test_a_trajectory_larger_than_memory_is_a_memory_error(model):
    with pytest.raises(MemoryError):
        # 6 PiB: past the 128 TiB address space of any x86-64 process, overcommit or not.
        model.sample(100_000, n_steps=2**32 - 1, return_trajectory=True)


def test_counts_past_int64_name_the_argument(model):
    with pytest.raises(ValueError, match=r"n_samples must be at most 2?9223372036854775807"):
        model.sample(2**64, n_steps=1)
    with pytest.raises(ValueError, match=r"n_projections must be at most"):
        model.ssm_loss_and_grad(np.zeros((3, 2)), 2**64)


# ------------------------------------------------------------------ values


@pytest.mark.parametrize("dtype, x", [("float64", [[1e155, -5e154]]), ("float32", [[1e20, 1.0]])])
def test_energy_at_a_huge_finite_x_is_finite_when_alpha_is_zero(dtype, x):
    # Without the confining term the energy is the network's, finite here; 0·‖x‖² = 0·Inf
    # used to make it NaN. The reference: the same network written out in float64.
    m = EnergyMLP(2, hidden=(4,), seed=1, dtype=dtype)
    W, b, w, c = (p.astype(np.float64) for p in m.params)
    xx = np.asarray(x, dtype=dtype).astype(np.float64)
    want = np.logaddexp(0.0, xx @ W.T + b) @ w.T + c
    got = m.energy(np.asarray(x, dtype=dtype))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want[:, 0], rtol=1e-6 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype, v", [("float64", 1e308), ("float32", 3e38)])
@pytest.mark.parametrize("activation", ["softplus", "tanh", "silu"])
def test_a_preactivation_that_overflows_gives_the_activations_limits(dtype, v, activation):
    # E = σ(2x): at x = ∓v, 2x overflows to ∓inf. The answers are the limits of σ, σ' and
    # σ'' there, as a float64 reference at a large finite z gives them; silu used to return
    # NaN (inf·0 in z·σ'(z) and the like).
    m = EnergyMLP.from_params(
        [np.array([[2.0]]), np.array([0.0]), np.array([[1.0]]), np.array([0.0])],
        activation=activation,
        dtype=dtype,
    )
    X = np.array([[-v], [v]], dtype=dtype)
    with np.errstate(over="ignore"):
        E, S, T = m.energy(X), m.score(X)[:, 0], m.hessian_trace(X)
    lo, hi = {"softplus": (0.0, np.inf), "tanh": (-1.0, 1.0), "silu": (0.0, np.inf)}[activation]
    slope_hi = 0.0 if activation == "tanh" else 2.0  # -dE/dx at +v: -2·σ'(+inf)
    np.testing.assert_array_equal(E, [lo, hi])
    np.testing.assert_array_equal(S, [0.0, -slope_hi])
    np.testing.assert_array_equal(T, [0.0, 0.0])


def test_an_alpha_that_overflows_float32_is_refused():
    with pytest.raises(ValueError, match=r"alpha = 1e\+?39 overflows float32"):
        EnergyMLP(2, hidden=(4,), alpha=1e39, dtype="float32")
    assert EnergyMLP(2, hidden=(4,), alpha=1e39).alpha == 1e39  # fine in float64


def test_float64_values_too_large_for_a_float32_model_say_so():
    m = EnergyMLP(2, hidden=(4,), dtype="float32")
    X = np.zeros((4, 2))
    X[2, 1] = 1e39  # row and column differ, so that the message can only name the row
    with pytest.raises(ValueError, match=r"too large for float32.*first at row 2;"):
        m.energy(X)


@pytest.mark.parametrize("dtype, sigma", [("float64", 5e-324), ("float32", 1e-20)])
def test_a_noise_std_whose_inverse_square_overflows_is_refused(dtype, sigma, X):
    m = EnergyMLP(2, hidden=(4,), dtype=dtype)
    with pytest.raises(ValueError, match=rf"too small for {dtype}"):
        m.dsm_loss_and_grad(X.astype(dtype), sigma)
    loss, _ = m.dsm_loss_and_grad(X.astype(dtype), 1e-3)
    assert np.isfinite(loss)


# ------------------------------------------------------------------ masked arrays and subclasses


def test_masked_arrays_are_refused_everywhere(model, X):
    mx = np.ma.masked_array(X[:2], mask=[[0, 0], [1, 1]])
    calls = [
        lambda: model.energy(mx),
        lambda: model.score(mx),
        lambda: model.ism_loss(mx),
        lambda: model.fit(mx, epochs=1, progress=False),
        lambda: model.sample(2, n_steps=1, init=mx),
        lambda: model.set_params([np.ma.masked_array(p) for p in model.params]),
        lambda: sm.langevin(lambda x: -x, mx, 1, 0.1),
        lambda: sm.diagnostics.ess(np.ma.masked_array(np.zeros((10, 2, 2)))),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="masked array"):
            call()


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_a_matrix_subclass_reads_as_its_array(model, X):
    np.testing.assert_array_equal(model.score(np.matrix(X)), model.score(X))


# ------------------------------------------------------------------ training


def test_a_bad_row_is_named_by_its_index_in_x_despite_the_validation_split(X):
    # fit checks X (and target_score) itself before splitting and standardizing: the engine
    # sees only the training rows (renumbered), and standardize would first report the NaN
    # mean as an overflow. Nothing is trained.
    for row in (40, 25):  # 25 lands in the validation split of seed 0
        Xb = X.copy()
        Xb[row] = np.nan
        T = np.zeros_like(X)
        T[row, 1] = np.inf
        cases = [
            (Xb, {}, "X"),
            (Xb, {"standardize": True}, "X"),
            (Xb, {"standardize": True, "validation": None}, "X"),
            (X, {"objective": "esm", "target_score": T}, "target_score"),
        ]
        for data, kw, name in cases:
            m = EnergyMLP(2, hidden=(8,))
            with pytest.raises(
                ValueError, match=rf"^{name} contains NaN or Inf \(first at row {row}\)$"
            ):
                m.fit(data, epochs=1, progress=False, **kw)
            for a, b in zip(m.params, EnergyMLP(2, hidden=(8,)).params, strict=True):
                np.testing.assert_array_equal(a, b)


def test_divergence_keeps_the_last_parameters_with_a_finite_loss(X):
    m = EnergyMLP(2, hidden=(8,), seed=2)
    start = [p.copy() for p in m.params]
    with pytest.raises(sm.TrainingDivergedError, match="epoch 0, step 1") as info:
        m.fit(X, lr=1e200, optimizer="sgd", validation=None, batch_size=16, progress=False)
    assert "whose loss and gradient were finite" in str(info.value)
    # Step 0's update blew the parameters up to ~1e200 (finite), whose loss is NaN: the model
    # is back at step 0's parameters, a usable model.
    for a, b in zip(m.params, start, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(m.energy(X)).all()


def test_a_numpy_false_from_the_callback_stops_training(X):
    h = EnergyMLP(2, hidden=(8,)).fit(
        X, epochs=3, progress=False, callback=lambda e, tr, va: np.float64(va) > 1e300
    )
    assert h.stop_reason == "callback" and h.n_epochs == 1


def test_standardize_copes_with_data_near_the_top_of_float64(X):
    big = EnergyMLP(2, hidden=(8,), seed=1)
    big.fit(X * 1e160, standardize=True, epochs=2, progress=False)
    small = EnergyMLP(2, hidden=(8,), seed=1)
    small.fit(X, standardize=True, epochs=2, progress=False)
    # The same fit in coordinates scaled by 1e160: first-layer weights scale by 1e-160.
    np.testing.assert_allclose(big.params[0] * 1e160, small.params[0], rtol=1e-6)


# ------------------------------------------------------------------ sampling arguments


def test_first_chain_may_not_push_chain_indices_past_int64(model):
    top = 2**63 - 1
    with pytest.raises(ValueError, match=r"first_chain \+ n_samples must be at most 2\*\*63 - 1"):
        model.sample(2, n_steps=1, first_chain=top - 1)
    res = model.sample(2, n_steps=1, first_chain=top - 2)
    assert res.chain_indices.tolist() == [top - 2, top - 1]
    with pytest.raises(ValueError, match=r"first_chain \+ n_samples must be at most"):
        sm.langevin(lambda x: -x, np.zeros((2, 2)), 1, 0.1, first_chain=top - 1)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"return_trajectory": "no"}, "^return_trajectory must be True or False, got str 'no'$"),
        (
            {"adapt_step_size": "no", "method": "mala", "burn_in": 2},
            "^adapt_step_size must be True or False, got str 'no'$",
        ),
        (
            {"adapt_step_size": True, "method": "mala", "burn_in": 2, "target_accept": "0.5"},
            "^target_accept must be a number, got str$",
        ),
        (
            {"adapt_step_size": True, "method": "mala", "burn_in": 2, "target_accept": None},
            "^target_accept must be a number, got NoneType$",
        ),
        (
            {"method": "annealed", "temperatures": 3.0},
            r"^temperatures must be a sequence of numbers, .* got float$",
        ),
    ],
)
def test_arguments_of_the_wrong_type_are_type_errors(model, kw, match):
    with pytest.raises(TypeError, match=match):
        model.sample(2, n_steps=3, **kw)


def test_fit_progress_must_be_a_bool(model, X):
    with pytest.raises(TypeError, match="progress must be True or False"):
        model.fit(X, epochs=1, progress="no")


def test_langevin_keeps_its_dtype_promises():
    x0 = np.random.default_rng(1).normal(size=(3, 2))
    for bad in (x0 + 1j, np.array([["1", "2"]]), x0 > 0, x0.astype(object)):
        with pytest.raises(TypeError, match="x0 must be an array of floats"):
            sm.langevin(lambda x: -x, bad, 3, 0.1)
    with pytest.raises(TypeError, match="score_fn must return a real"):
        sm.langevin(lambda x: -x + 0j, x0, 3, 0.1)
    with pytest.raises(TypeError, match="score_fn must be callable"):
        sm.langevin(None, x0, 3, 0.1)
    with pytest.raises(TypeError, match="^energy_fn must be callable or None, got int$"):
        sm.langevin(lambda x: -x, x0, 3, 0.1, method="mala", energy_fn=3)
    with pytest.raises(TypeError, match="^energy_fn must return a real .*got dtype complex128$"):
        sm.langevin(lambda x: -x, x0, 3, 0.1, method="mala", energy_fn=lambda x: x[:, 0] + 0j)
    with pytest.raises(TypeError, match="^return_trajectory must be True or False, got int 1$"):
        sm.langevin(lambda x: -x, x0, 3, 0.1, return_trajectory=1)
    with pytest.raises(ValueError, match="energy_fn is used by method='mala' only"):
        sm.langevin(lambda x: -x, x0, 3, 0.1, energy_fn=lambda x: (x**2).sum(1))
    with pytest.raises(ValueError, match=r"x0 contains NaN or Inf \(first at row 1\)"):
        sm.langevin(lambda x: -x, np.array([[0.0, 0.0], [np.nan, 1.0]]), 3, 0.1)
    # A big-endian float32 start runs in float32, as the native one does.
    m = EnergyMLP(2, hidden=(8,), dtype="float32")
    x32 = x0.astype(np.float32)
    a = sm.langevin(m.score, x32, 10, 0.1)
    b = sm.langevin(m.score, x32.astype(">f4"), 10, 0.1)
    assert b.samples.dtype == np.float32
    np.testing.assert_array_equal(a.samples, b.samples)


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="longdouble is float64 here"
)
def test_a_langevin_start_too_large_for_float64_says_so():
    # It was reported as "NaN or Inf", after numpy's RuntimeWarning about the cast.
    x0 = np.zeros((3, 2), dtype=np.longdouble)
    x0[1, 0] = np.longdouble("1e400")
    want = "x0 has values too large for float64 (|x| > 1.8e308), first at row 1; rescale the data"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
            sm.langevin(lambda x: -x, x0, 2, 0.1)
        x0[1, 0] = np.nan  # a real NaN is still named as one
        with pytest.raises(ValueError, match=r"^x0 contains NaN or Inf \(first at row 1\)$"):
            sm.langevin(lambda x: -x, x0, 2, 0.1)
        x0[1, 0] = 3.0  # and a longdouble start that fits runs in float64
        assert sm.langevin(lambda x: -x, x0, 2, 0.1).samples.dtype == np.float64


def test_langevin_scores_beyond_the_runs_dtype_are_infinite_in_it_without_a_warning():
    # A float64 score of a float32 run is taken in float32, as the engine's own would be:
    # beyond its range it is Inf, so the ULA chain diverges, and MALA, whose acceptance test
    # is then undefined at x0, names the functions. numpy's RuntimeWarning about the cast
    # leaked.
    x0 = np.zeros((2, 2), dtype=np.float32)

    def huge(x):
        return np.full(x.shape, 1e39)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(sm.SamplingDivergedError, match="^2 of 2 chains diverged"):
            sm.langevin(huge, x0, 3, 0.1)
        with pytest.raises(
            sm.SamplingDivergedError,
            match=r"^2 of 2 chains diverged .* at step 0: score_fn returned NaN or "
            r"Inf at finite states \(x0\) for 2 of them and energy_fn for 2,",
        ):
            sm.langevin(huge, x0, 3, 0.1, method="mala", energy_fn=lambda x: np.full(len(x), 1e39))

        # Finite at x0, beyond float32 at every proposal: MALA rejects them, silently too.
        def huge_but_at_0(x):
            return np.where(np.any(x != 0, axis=1), 1e39, 0.0)

        res = sm.langevin(
            lambda x: huge_but_at_0(x)[:, None] * np.ones(x.shape),
            x0,
            3,
            0.1,
            method="mala",
            energy_fn=huge_but_at_0,
        )
    assert res.acceptance_rate.tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(res.samples, x0)


@pytest.mark.parametrize("shape", [(3, 0), (0, 0)])
def test_langevin_refuses_a_start_without_columns(shape):
    # Chains of dimension 0 cost nothing to pass in, yet their number sizes per-chain state:
    # a (2**28, 0) start was reported to abort the process.
    want = f"x0 must have at least one column (shape (n_chains, dim), dim >= 1), got shape {shape}"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        sm.langevin(lambda x: -x, np.empty(shape), 3, 0.1)


def test_set_num_threads_takes_numpy_integers(restore_threads):
    sm.set_num_threads(np.int64(1))
    assert sm.get_num_threads() == 1


def test_ctrl_c_inside_the_progress_callback_keeps_the_chains_so_far():
    m = EnergyMLP(2, hidden=(64, 64), alpha=1.0, seed=0)
    calls: list[int] = []

    def progress(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 1:
            raise KeyboardInterrupt  # what a Ctrl-C during the callback's own code raises

    with pytest.raises(KeyboardInterrupt) as info:
        m.sample(2000, n_steps=10**6, progress=progress)
    done = info.value.steps_done
    assert done == calls[0]
    again = m.sample(2000, n_steps=done)
    np.testing.assert_array_equal(info.value.result.samples, again.samples)


# ------------------------------------------------------------------ files


def test_loading_a_npy_file_is_a_value_error(tmp_path):
    path = tmp_path / "arr.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match="single array, not the archive"):
        sm.load(path)


def test_a_malformed_field_names_the_file(tmp_path, model):
    path = tmp_path / "m.npz"
    model.save(path)
    fields = dict(np.load(path))
    fields["alpha"] = np.array("one")
    np.savez(path, **fields)
    with pytest.raises(ValueError, match="m.npz.*malformed"):
        sm.load(path)


def test_annealed_temperatures_whose_step_sizes_overflow_are_named(model):
    with pytest.raises(ValueError, match=r"step_size·T/T_last = 1e-2·1e300/1e-300"):
        model.sample(2, n_steps=4, method="annealed", temperatures=[1e300, 1e-300])


def test_a_temperature_so_small_that_the_drift_overflows_is_named(model):
    with pytest.raises(ValueError, match=r"step_size / temperature = 1e-2/1e-320 overflows"):
        model.sample(2, n_steps=4, temperature=1e-320)
    with pytest.raises(ValueError, match=r"step_size / temperature = .* overflows"):
        sm.langevin(lambda x: -x, np.zeros((2, 2)), 4, 1e-2, temperature=1e-320)


def test_the_python_path_applies_the_engines_run_rules(model):
    # One rule set (the engine's Config), whichever sampler runs: the run's length is refused
    # by langevin as by model.sample, with the same message (the chain range: see above).
    for run in (
        lambda: model.sample(2, n_steps=2**32 - 10, burn_in=10),
        lambda: sm.langevin(lambda x: -x, np.zeros((2, 2)), 2**32 - 10, 0.1, burn_in=10),
    ):
        with pytest.raises(
            ValueError,
            match=r"^the run is too long: burn_in \+ n_steps = 4294967296 steps, at most 4294967295",
        ):
            run()


def test_sampling_options_are_checked_without_running(model):
    run = sm.sampling._prepare(model, 3, n_steps=7, burn_in=2, method="mala")
    assert (run.n, run.n_steps, run.burn_in, run.method) == (3, 7, 2, "mala")
    with pytest.raises(TypeError, match="target_accept must be a number"):
        sm.sampling._prepare(
            model, 3, method="mala", adapt_step_size=True, burn_in=2, target_accept="0.5"
        )


def test_annealed_step_sizes_take_the_ratio_first(model):
    # ε·(T_i/T_last) with T_i = T_last = 1e308: ratio 1, no overflow on the way.
    res = model.sample(2, n_steps=4, method="annealed", step_size=10.0, temperatures=[1e308] * 2)
    assert np.all(res.step_size == 10.0) and np.isfinite(res.samples).all()


def test_validation_arguments_of_the_wrong_kind(X):
    m = EnergyMLP(2, hidden=(8,))
    for bad in (True, "0.1"):
        with pytest.raises(TypeError, match="validation must be a fraction"):
            m.fit(X, epochs=1, progress=False, validation=bad)
    with pytest.raises(ValueError, match=r"is for objective 'esm'"):
        m.fit(X, epochs=1, progress=False, validation=(X[:5], X[:5]))


def test_diagnostics_name_the_first_bad_draw_and_take_zero_coordinates():
    t = np.zeros((10, 3, 2))
    t[4, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"first at draw 4, chain 2, coordinate 1"):
        sm.diagnostics.ess(t)
    empty = np.zeros((10, 3, 0))
    assert sm.diagnostics.ess(empty).shape == (0,)
    assert sm.diagnostics.split_rhat(empty).shape == (0,)


def test_misaligned_parameter_arrays_are_read_as_aligned_copies():
    m = EnergyMLP(2, hidden=(3,), seed=1)
    odd = []
    for p in m.params:
        buf = np.zeros(p.nbytes + 1, np.uint8)
        a = np.frombuffer(buf.data, dtype=p.dtype, offset=1, count=p.size).reshape(p.shape)
        a[...] = p
        assert not a.flags.aligned
        odd.append(a)
    X = np.random.default_rng(0).normal(size=(5, 2))
    want = m.score(X)
    m.set_params(odd)
    np.testing.assert_array_equal(m.score(X), want)
    np.testing.assert_array_equal(EnergyMLP.from_params(odd).score(X), want)
    # The binding itself refuses them, for any caller that skips the Python layer.
    with pytest.raises(TypeError, match=r"params\[0\] is not aligned"):
        sm._core.Model.from_params(odd, "softplus", "float64", 0.0)


def test_n_projections_is_range_checked_whatever_the_objective(X):
    with pytest.raises(ValueError, match="n_projections must be at most 4096, got 5000"):
        EnergyMLP(2, hidden=(4,)).fit(X, objective="ism", n_projections=5000, progress=False)


# ------------------------------------------------------------------ found by fuzzing the API


# Parameter views of a huge shape that costs nothing (np.broadcast_to) and cannot be the model:
# each was copied whole before its shape was looked at, 8 GB to 32 GB, a MemoryError at best
# (numpy's "Unable to allocate 7.45 GiB ..."), here under a 3 GiB address space.
HUGE_PARAMS = r"""
import json, resource
import numpy as np
import scorematch as sm
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
m = sm.EnergyMLP(2, hidden=(3,), seed=0)
p = m.params
tall = np.broadcast_to(np.float64(0.1), (10**9, 1))
n = 2**31  # chains, but a model of more than 2**31 parameters
chained = [np.broadcast_to(np.float32(0.1), s) for s in [(n, 2), (n,), (1, n), (1,)]]
cases = {
    "from_params": lambda: sm.EnergyMLP.from_params([tall] + p[1:]),
    "from_params float32": lambda: sm.EnergyMLP.from_params([tall] + p[1:], dtype="float32"),
    "set_params": lambda: m.set_params([tall] + p[1:]),
    "too many parameters": lambda: sm.EnergyMLP.from_params(chained),
}
out = {}
for name, f in cases.items():
    try:
        f()
        out[name] = "no error"
    except Exception as e:
        out[name] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


def test_huge_parameter_views_are_refused_by_shape_without_a_copy():
    run = subprocess.run(
        [sys.executable, "-c", HUGE_PARAMS], check=False, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == {
        "from_params": "ValueError: params[1] (b_1) must have shape (1000000000,), got (3,)",
        "from_params float32": "ValueError: params[1] (b_1) must have shape (1000000000,), got (3,)",
        "set_params": "ValueError: params[0] must have shape (3, 2) for this architecture, "
        "got (1000000000, 1)",
        "too many parameters": "ValueError: the architecture dim=2, hidden=[2147483648] has "
        "more than 2147483648 parameters",
    }


def test_row_keys_at_an_odd_address_are_read_as_aligned_copies(X):
    # They were refused as "row_keys must be a contiguous uint64 array".
    m = EnergyMLP(2, hidden=(4,), seed=0)
    keys = np.arange(100, 164, dtype=np.uint64)
    buf = np.zeros(keys.nbytes + 1, np.uint8)
    odd = np.frombuffer(buf.data, np.uint64, offset=1, count=keys.size)
    odd[...] = keys
    assert not odd.flags.aligned
    for loss in (
        lambda k: m.ssm_loss_and_grad(X, 2, seed=3, row_keys=k),
        lambda k: m.dsm_loss_and_grad(X, 0.5, seed=3, row_keys=k),
    ):
        (got, got_grad), (want, want_grad) = loss(odd), loss(keys)
        assert got == want and same_arrays(got_grad, want_grad)
        assert got != loss(None)[0]  # the keys are used


def test_row_keys_that_numpy_cannot_convert_are_type_errors(X):
    # numpy's own ValueError ("setting an array element with a sequence. ...") or whatever
    # the object's __array__ raised came out bare, where X gets a TypeError naming it.
    class Failing:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("no keys here")

    m = EnergyMLP(2, hidden=(4,), seed=0)
    ragged = [[0, 1]] + [[i] for i in range(2, 64)]
    for keys, why in ((ragged, "setting an array element with a sequence"), (Failing(), "no")):
        for loss in (
            lambda k: m.ssm_loss_and_grad(X, row_keys=k),
            lambda k: m.dsm_loss_and_grad(X, 0.5, row_keys=k),
        ):
            with pytest.raises(
                TypeError, match=f"^row_keys could not be converted to an array: {why}"
            ):
                loss(keys)


def test_parameters_too_large_for_float32_say_so():
    m = EnergyMLP(2, hidden=(8,), dtype="float32")
    p = [a.astype(np.float64) for a in m.params]
    p[0][1, 0] = 1e300  # finite in float64: not "NaN or Inf"
    match = r"^params\[0\] has values too large for float32 \(\|x\| > 3.4e38\) \(at flat index 2\)"
    with pytest.raises(ValueError, match=match):
        m.set_params(p)
    with pytest.raises(ValueError, match=match):
        EnergyMLP.from_params(p, dtype="float32")
    EnergyMLP.from_params(p)  # fine in float64


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="longdouble is float64 here"
)
def test_longdouble_values_too_large_for_float64_say_so():
    X = np.zeros((3, 2), dtype=np.longdouble)
    X[1, 0] = np.longdouble(1e308) * 10
    with pytest.raises(ValueError, match=r"^X has values too large for float64 .* first at row 1"):
        EnergyMLP(2, hidden=(4,)).energy(X)


@pytest.mark.parametrize(("bad", "name"), [(None, "NoneType"), ((x for x in [1.0]), "generator")])
def test_non_arrays_are_named_by_their_type(model, bad, name):
    with pytest.raises(TypeError, match=rf"^X must be an array of floats .*, got {name}$"):
        model.energy(bad)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, X: m.sample(4, step_size=10**400),
        lambda m, X: m.sample(4, temperature=10**400),
        lambda m, X: m.fit(X, lr=10**400, progress=False),
        lambda m, X: m.dsm_loss_and_grad(X, 10**400),
        lambda m, X: m.fit(X, weight_decay=10**400, progress=False),
        # These raised Python's OverflowError, or (target_accept) went unchecked.
        lambda m, X: EnergyMLP(2, alpha=10**400),
        lambda m, X: EnergyMLP.from_params(m.params, alpha=10**400),
        lambda m, X: m.fit(X, validation=10**400, progress=False),
        lambda m, X: m.sample(3, n_steps=1, target_accept=10**400),
    ],
)
def test_ints_beyond_the_float_range_are_value_errors(model, X, call):
    with pytest.raises(ValueError, match=r"must be a finite number, got an int of 401 digits$"):
        call(model, X)


@pytest.mark.parametrize(
    ("value", "digits"),
    [(10**5000, 5001), (-(10**400), 401), (10**400 - 1, 400)],
    ids=["1e5000", "-1e400", "1e400-1"],  # pytest's own ids would print the ints
)
def test_ints_too_long_to_print_are_described_by_their_length(model, value, digits):
    # Python refuses str() of an int of more than 4300 digits (sys.get_int_max_str_digits):
    # a message that printed one raised that ValueError instead of its own.
    with pytest.raises(
        ValueError, match=rf"^alpha must be a finite number, got an int of {digits} digits$"
    ):
        EnergyMLP(2, alpha=value)


def test_ints_past_pythons_printing_limit_are_described_in_range_errors(model):
    with pytest.raises(
        ValueError, match=r"^dim must be at most 9223372036854775807, got an int of 5001 digits$"
    ):
        EnergyMLP(10**5000)
    with pytest.raises(
        ValueError, match=r"^seed must be in \[0, 2\*\*64\), got an int of 5001 digits$"
    ):
        model.sample(2, n_steps=1, seed=10**5000)


@pytest.mark.parametrize(("dtype", "sigma"), [("float32", 1e37), ("float64", 1e307)])
def test_a_noise_std_that_overflows_the_noisy_points_is_refused(dtype, sigma, X):
    m = EnergyMLP(2, hidden=(8,), dtype=dtype)
    with pytest.raises(ValueError, match=rf"^noise_std = 1e\+?3\d+ is too large for {dtype}"):
        m.dsm_loss_and_grad(X.astype(dtype), sigma)
    with pytest.raises(ValueError, match=rf"too large for {dtype}"):
        m.fit(X, objective="dsm", noise_std=sigma, epochs=1, progress=False)
    loss, grads = m.dsm_loss_and_grad(X.astype(dtype), sigma / 1e3)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)


@pytest.mark.parametrize(("dtype", "scale"), [("float64", 1e-310), ("float32", 1e-40)])
def test_standardize_refuses_a_spread_too_small_before_training(dtype, scale, X):
    m = EnergyMLP(2, hidden=(8,), dtype=dtype, seed=1)
    before = m.params
    calls = []
    with pytest.raises(ValueError, match=rf"spread of column 0 of X .* too small for a {dtype}"):
        m.fit(X * scale, epochs=1, standardize=True, progress=False,
              callback=lambda *a: calls.append(a))  # fmt: skip
    assert calls == []  # refused before the first epoch, not after training
    for a, b in zip(m.params, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_esm_validation_targets_are_named_as_such(model, X):
    with pytest.raises(ValueError, match=r"^target_val contains NaN or Inf \(first at row 2\)$"):
        bad = np.zeros((5, 2))
        bad[2, 1] = np.nan
        model.fit(X, objective="esm", target_score=-X, validation=(X[:5], bad), progress=False)


def test_n_projections_names_its_real_limit(model, X):
    with pytest.raises(
        ValueError, match=r"^n_projections must be at most 4096, got 9223372036854775808$"
    ):
        model.ssm_loss_and_grad(X, n_projections=2**63)


def test_datasets_check_their_arguments():
    from scorematch import datasets

    moons, gm = datasets.get("moons"), datasets.get("8gaussians")
    with pytest.raises(ValueError, match=r"^seed must be in \[0, 2\*\*64\), got -1$"):
        moons.sample(3, seed=-1)
    with pytest.raises(TypeError, match="^seed must be an int, got float$"):
        gm.sample(3, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match="^n must be at most 9223372036854775807, got 9223372036854775808$"
    ):
        moons.sample(2**63)
    with pytest.raises(ValueError, match="^covs contains NaN or Inf$"):
        datasets.gaussian_mixture([[0.0, 0.0]], [[[np.nan, 0.0], [0.0, 1.0]]])
    with pytest.raises(ValueError, match="^means contains NaN or Inf$"):
        datasets.gaussian_mixture([[np.inf, 0.0]], [np.eye(2)])
    with pytest.raises(TypeError, match="got dtype complex128"):
        gm.log_prob(np.zeros((1, 2), dtype=complex))
    with pytest.raises(TypeError, match="masked array"):
        gm.score(np.ma.masked_array(np.zeros((1, 2)), mask=[[True, False]]))


def test_masks_are_never_silently_dropped(model, X):
    keys = np.ma.masked_array(np.arange(len(X)), mask=np.arange(len(X)) % 2 == 0)
    with pytest.raises(TypeError, match="^row_keys is a masked array"):
        model.ssm_loss_and_grad(X, row_keys=keys)
    with pytest.raises(TypeError, match="^row_keys is a masked array"):
        model.dsm_loss_and_grad(X, 0.1, row_keys=keys)
    masked_score = lambda x: np.ma.masked_array(-x, mask=np.ones_like(x, dtype=bool))
    with pytest.raises(TypeError, match="^score_fn returned a masked array"):
        sm.langevin(masked_score, np.zeros((3, 2)), 5, 0.1)


def test_the_estimator_names_the_n_projections_limit():
    from scorematch.sklearn import ScoreMatchingDensity

    est = ScoreMatchingDensity(objective="ssm", n_projections=4097)
    match = r"invalid hyper-parameter n_projections=4097: expected an int in \[1, 4096\]"
    with pytest.raises(ValueError, match=match):
        est.fit(np.random.default_rng(0).normal(size=(50, 2)))


def test_threads_the_system_refuses_are_a_runtime_error():
    """4000 threads' stacks do not fit a 2 GiB address space: a RuntimeError, and the pool
    in use before stays in use."""
    script = (
        "import resource, numpy as np, scorematch as sm\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "sm.set_num_threads(2)\n"
        "try:\n"
        "    sm.set_num_threads(4000)\n"
        "except RuntimeError as e:\n"
        "    print('RuntimeError', e)\n"
        "print(sm.get_num_threads(), sm.EnergyMLP(2, hidden=(4,)).energy(np.zeros((3, 2))).shape)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("RuntimeError cannot start 4000 worker threads ("), r.stdout
    assert lines[0].endswith(
        "the system refused a thread; ask for fewer with set_num_threads or RAYON_NUM_THREADS"
    ), r.stdout
    assert lines[1] == "2 (3,)"


def test_the_trainer_checks_target_columns_itself(model):
    """The trainer's own check (fit checks shapes before it, so only a direct caller of
    _core.Trainer reaches it): targets with the wrong column count are named."""
    from scorematch import _core

    X = np.zeros((10, 2))

    def trainer(target, x_val=None, target_val=None):
        return _core.Trainer(model._m, X, target, x_val, target_val, "esm", 1, 4, 1e-3, "adam",
                             0.0, None, 0, 1, "gaussian", None)  # fmt: skip

    with pytest.raises(ValueError, match="^target_score must have 2 columns like X, got 3$"):
        trainer(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="^target_val must have 2 columns like X_val, got 1$"):
        trainer(np.zeros((10, 2)), X[:3], np.zeros((3, 1)))
    assert trainer(np.zeros((10, 2)), X[:3], np.zeros((3, 2))).steps_per_epoch == 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m, a: m.sample(3, n_steps=2, method=a),
            "method must be 'ula', 'mala' or 'annealed'",
        ),
        (
            lambda m, a: m.fit(np.zeros((8, 2)), objective=a),
            "objective must be 'ism', 'ssm', 'dsm' or 'esm'",
        ),
        (lambda m, a: m.fit(np.zeros((8, 2)), optimizer=a), "optimizer must be 'adam' or 'sgd'"),
        (
            lambda m, a: m.sample(3, n_steps=2, on_divergence=a),
            "on_divergence must be 'raise' or 'mask'",
        ),
        (
            lambda m, a: sm.diagnostics.ess(np.zeros((8, 2, 1)), method=a),
            "method must be 'bulk', 'tail' or 'basic'",
        ),
        (
            lambda m, a: m.ssm_loss_and_grad(np.zeros((4, 2)), projection=a),
            "projection must be 'gaussian' or 'rademacher'",
        ),
    ],
)
def test_a_choice_given_as_an_array_is_named_not_numpys_ambiguity(call, message):
    # `array in ("ula", "mala")` compares element by element and ends in numpy's "truth value
    # of an array ... is ambiguous"; every choice goes through one check that refuses it.
    m = EnergyMLP(2, hidden=(3,), seed=0)
    with pytest.raises(ValueError) as err:
        call(m, np.array(["ula", "mala"]))
    assert str(err.value) == f"{message}, got array(['ula', 'mala'], dtype='<U4')"
