"""EnergyMLP.fit: it recovers known scores (Gaussians, a Gaussian mixture) with each objective,
is deterministic across thread counts, restores the best epoch, honours patience, callbacks
and Ctrl-C, reports divergence keeping finite parameters, and rejects bad arguments.

Bounds were set from measured values (printed with -s; in comments) with a margin of about 1.5x; every fit
is small (at most 20 000 rows of dim <= 5, width 32) and takes a few seconds on 2 cores.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import signal
import threading
import time
import warnings
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import scorematch
from helpers import ctrl_c_every, same_arrays
from hypothesis import given, settings
from hypothesis import strategies as st
from scorematch import EnergyMLP, FitHistory, TrainingDivergedError

MUS = np.array([[-1.5, 0.0], [1.5, 0.0], [0.0, 1.5]])
S = 0.5  # component standard deviation


def mixture(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return MUS[rng.integers(0, 3, size=n)] + S * rng.normal(size=(n, 2))


def mixture_score(X: np.ndarray) -> np.ndarray:
    """The exact score of the equal-weight mixture of N(μ_k, S² I)."""
    d = X[:, None, :] - MUS[None]
    logw = -0.5 * (d**2).sum(-1) / S**2
    r = np.exp(logw - logw.max(1, keepdims=True))
    r /= r.sum(1, keepdims=True)
    return (r[..., None] * (-d / S**2)).sum(1)


def gaussian(dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A mean μ and a covariance Σ with eigenvalues spread over [0.3, 2]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    cov = q @ np.diag(np.linspace(0.3, 2.0, dim)) @ q.T
    return rng.normal(size=dim), cov


def relative_score_error(model: EnergyMLP, X: np.ndarray, s_true: np.ndarray) -> float:
    """sqrt(E‖s_θ − s‖² / E‖s‖²) over the rows of X."""
    err = np.sum((model.score(X) - s_true) ** 2)
    return float(np.sqrt(err / np.sum(s_true**2)))


@pytest.mark.parametrize(("dim", "bound"), [(2, 0.15), (5, 0.15)])
def test_ism_recovers_a_gaussian_score(dim, bound):
    mu, cov = gaussian(dim, seed=dim)
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal(mu, cov, size=8000)
    X_test = rng.multivariate_normal(mu, cov, size=2000)
    s_true = -np.linalg.solve(cov, (X_test - mu).T).T
    model = EnergyMLP(dim, hidden=(32, 32), seed=1)
    h = model.fit(X, epochs=30, lr=3e-3, progress=False)
    assert isinstance(h, FitHistory) and h.stop_reason == "completed"
    err = relative_score_error(model, X_test, s_true)
    print(f"dim {dim}: relative score error {err:.3f}")
    assert err < bound


@pytest.fixture(scope="module")
def mixture_data():
    X = mixture(20000, seed=0)
    X_test = mixture(2000, seed=1)
    return X, X_test, mixture_score(X_test)


def fisher(model: EnergyMLP, X_test: np.ndarray, s_true: np.ndarray) -> float:
    return float(np.mean(np.sum((model.score(X_test) - s_true) ** 2, axis=1)))


# Measured relative score errors: 0.104 (dim 2), 0.095 (dim 5).
# Measured Fisher divergences on held-out points (E‖s‖² ≈ 8): ism 0.094, ssm 0.114,
# dsm (σ = 0.1, which also fits the blur) 0.267; untrained 6.7.
@pytest.mark.parametrize(
    ("objective", "kwargs", "bound"),
    [
        ("ism", {}, 0.15),
        ("ssm", {"n_projections": 4}, 0.2),
        ("ssm", {"n_projections": 2, "projection": "rademacher"}, 0.25),
        ("dsm", {"noise_std": 0.1}, 0.4),
    ],
)
def test_mixture_fisher_divergence(mixture_data, objective, kwargs, bound):
    X, X_test, s_true = mixture_data
    model = EnergyMLP(2, hidden=(32, 32), seed=0)
    untrained = fisher(model, X_test, s_true)
    model.fit(X, objective=objective, epochs=40, lr=3e-3, progress=False, **kwargs)
    f = fisher(model, X_test, s_true)
    print(f"{objective} {kwargs}: Fisher divergence {f:.4f} (untrained {untrained:.3f})")
    assert f < bound
    if objective == "ism":
        # More than an order and a half of magnitude (measured: 71x).
        assert untrained / f > 40


def test_esm_fits_a_given_score(mixture_data):
    X, X_test, s_true = mixture_data
    model = EnergyMLP(2, hidden=(32, 32), seed=0)
    model.fit(
        X[:5000],
        objective="esm",
        target_score=mixture_score(X[:5000]),
        epochs=30,
        lr=3e-3,
        progress=False,
    )
    assert fisher(model, X_test, s_true) < 0.3


@pytest.mark.parametrize("split", ["pair", "fraction"])
def test_esm_validates_against_the_validation_rows_own_targets(split):
    # Each epoch's validation loss is J_ESM of the validation rows against their own targets,
    # under the parameters the callback sees; given as a pair, or split off with the targets.
    X = mixture(120, 13)
    T = mixture_score(X)
    if split == "pair":
        X_tr, T_tr, X_va, T_va = X[:90], T[:90], X[90:], T[90:]
        validation: object = (X_va, T_va)
    else:
        X_tr, T_tr, X_va, T_va = scorematch.training._split(X, T, 0.25, 2, "float64", 6)
        X_tr, T_tr, validation = X, T, 0.25
    model = EnergyMLP(2, hidden=(8,), seed=2)
    seen: list[float] = []
    h = model.fit(
        X_tr,
        objective="esm",
        target_score=T_tr,
        epochs=3,
        validation=validation,
        seed=6,
        progress=False,
        callback=lambda e, tr, va: seen.append(model.esm_loss_and_grad(X_va, T_va)[0]),
    )
    assert len(seen) == 3
    np.testing.assert_allclose(h.val_loss, seen, rtol=1e-12)


def run(threads: int, objective: str, **kwargs):
    scorematch.set_num_threads(threads)
    model = EnergyMLP(2, hidden=(16, 16), seed=3)
    h = model.fit(
        mixture(1500, 2),
        objective=objective,
        epochs=3,
        batch_size=100,
        seed=5,
        progress=False,
        **kwargs,
    )
    return model.params, h


@pytest.mark.parametrize(
    ("objective", "kwargs"),
    [("ism", {}), ("ssm", {"n_projections": 3}), ("dsm", {"noise_std": 0.2})],
)
def test_same_seed_same_run_for_any_thread_count(restore_threads, objective, kwargs):
    p1, h1 = run(1, objective, **kwargs)
    p2, h2 = run(2, objective, **kwargs)
    assert same_arrays(p1, p2)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    p3, _ = run(2, objective, **kwargs)
    assert same_arrays(p1, p3)


def test_best_validation_epoch_is_restored():
    model = EnergyMLP(2, hidden=(16, 16), seed=0)
    seen = []

    def record(epoch, train, val):
        seen.append((val, model.params))

    # SGD with a large rate: validation loss goes up and down.
    h = model.fit(
        mixture(600, 3),
        epochs=8,
        batch_size=30,
        lr=0.05,
        optimizer="sgd",
        callback=record,
        progress=False,
    )
    vals = [v for v, _ in seen]
    assert h.val_loss == vals
    assert h.best_epoch == int(np.argmin(vals))
    assert h.best_epoch != len(vals) - 1, "pick a run whose last epoch is not the best"
    assert same_arrays(model.params, seen[h.best_epoch][1])


def test_patience_stops_training():
    model = EnergyMLP(2, hidden=(16, 16), seed=0)
    far = mixture(200, 4) + 6.0  # validation data the training data says nothing about
    h = model.fit(mixture(600, 5), epochs=100, lr=1e-2, validation=far, patience=2, progress=False)
    assert h.stop_reason == "patience"
    assert h.n_epochs == h.best_epoch + 3 < 100


def test_callback_can_stop_training():
    model = EnergyMLP(2, hidden=(8,), seed=0)
    calls = []

    def cb(epoch, train, val):
        calls.append((epoch, train, val))
        return epoch < 2

    h = model.fit(mixture(300, 6), epochs=10, validation=None, callback=cb, progress=False)
    assert h.stop_reason == "callback" and h.n_epochs == 3
    assert [c[0] for c in calls] == [0, 1, 2] and all(c[2] is None for c in calls)


def test_divergence_is_an_error_and_keeps_finite_parameters():
    model = EnergyMLP(2, hidden=(16, 16), seed=0)
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+, step \d+") as info:
        model.fit(mixture(500, 7), epochs=50, lr=1e8, optimizer="sgd", progress=False)
    assert all(np.all(np.isfinite(p)) for p in model.params)
    assert isinstance(info.value.history, FitHistory)
    assert info.value.history.stop_reason == "diverged"
    assert isinstance(info.value, RuntimeError)
    assert np.all(np.isfinite(model.score(mixture(10, 8))))


class _CallbackFailed(Exception):
    pass


def _fail(*_: object) -> None:
    raise _CallbackFailed


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("failure", ["diverged", "callback"])
def test_a_kept_fit_error_holds_no_copy_of_the_rows(standardize, failure):
    # A sweep that keeps its failures keeps their tracebacks, and so the frames of fit: they
    # held the engine's trainer (its own copy of the rows) and the split or standardized
    # rows, up to three times the size of X per kept error, whatever the error.
    X = mixture(500, 7)
    model = EnergyMLP(2, hidden=(16, 16), seed=0)
    if failure == "diverged":
        kw, error = {"lr": 1e8, "optimizer": "sgd"}, TrainingDivergedError
    else:
        kw, error = {"callback": _fail}, _CallbackFailed
    with pytest.raises(error) as info:
        model.fit(X, epochs=50, standardize=standardize, progress=False, **kw)
    held = []
    tb = info.value.__traceback__
    while tb is not None:
        for name, value in tb.tb_frame.f_locals.items():
            rows = isinstance(value, np.ndarray) and value.ndim == 2 and value is not X
            if rows or isinstance(value, scorematch._core.Trainer):
                held.append(f"{tb.tb_frame.f_code.co_name}: {name}")
        tb = tb.tb_next
    assert held == []


def test_a_finite_blow_up_is_a_divergence_and_keeps_the_parameters_before_it():
    """lr = 100 takes the minibatch loss from ~1e-2 to ~1e15 in one Adam step: finite, but
    a run that cannot recover (it overflows two steps later). The first step's parameters
    produced it, so the model falls back to those the step started from: the initial ones."""
    model = EnergyMLP(2, hidden=(32, 32), seed=0)
    before = model.params
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(mixture(512, 7), epochs=20, lr=100.0, validation=None, progress=False)
    msg = str(info.value)
    assert "epoch 0, step 1 " in msg
    assert re.search(
        r"the loss \d\.\d{3}e1[4-6] is more than 1e6 times the scale of the earlier "
        r"losses \(1\.000e0\)",
        msg,
    ), msg
    assert info.value.history.stop_reason == "diverged" and info.value.history.n_epochs == 0
    assert same_arrays(model.params, before)


@pytest.mark.parametrize("stop", ["completed", "callback", "validation"])
def test_an_update_that_blows_up_at_the_last_step_is_a_divergence(stop: str) -> None:
    """Each step's update is judged by the next step's loss; the last one had none, and a run
    of one epoch of one minibatch at lr = 1e8 ended "completed" with a model whose ISM loss
    was ~1e38. Now the run judges it when it stops without validation (the best epoch is
    restored otherwise), by the loss on the last minibatch."""
    X = mixture(500, 7)
    model = EnergyMLP(2, hidden=(32, 32), seed=0)
    before = model.params
    options = {"lr": 1e8, "optimizer": "sgd", "batch_size": 500, "validation": None}
    epochs = {"completed": 1, "callback": 5, "validation": 1}[stop]
    if stop == "callback":
        options["callback"] = lambda epoch, train, val: False  # stop after epoch 0
    if stop == "validation":
        # The one epoch is the best: its finite validation loss did not judge the update.
        options["validation"] = mixture(100, 8)
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(X, epochs=epochs, progress=False, **options)
    msg = str(info.value)
    assert msg.startswith("training diverged at epoch 0, step 1 (counting from 0): the loss "), msg
    assert "more than 1e6 times the scale" in msg
    assert info.value.history.stop_reason == "diverged" and info.value.history.n_epochs == 1
    assert same_arrays(model.params, before)
    # A run that converges passes the check.
    calm = EnergyMLP(2, hidden=(32, 32), seed=0)
    history = calm.fit(X, epochs=1, batch_size=500, validation=None, progress=False)
    assert history.stop_reason == "completed"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_whose_squared_gradient_overflows_is_a_divergence(dtype: str) -> None:
    """weight_decay = 1e300 (float64) makes Adam's squared-gradient average overflow: every
    later step was m/inf = 0, and the run ended "completed" with the initial parameters."""
    model = EnergyMLP(2, hidden=(8,), dtype=dtype, seed=0)
    before = model.params
    wd = 1e300 if dtype == "float64" else 1e30
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(mixture(200, 7), epochs=2, weight_decay=wd, validation=None, progress=False)
    assert str(info.value).startswith(
        "training diverged at epoch 0, step 0 (counting from 0): the squared-gradient average "
        "(Adam) is NaN or Inf; the model keeps the last parameters whose loss and gradient "
        "were finite and in range (try a smaller lr or weight_decay)"
    ), str(info.value)
    assert same_arrays(model.params, before)


def test_a_divergence_before_any_update_points_at_the_data_not_the_lr() -> None:
    # The first step's loss is the initial model's: "try a smaller lr" sent users after the
    # wrong knob (new-user audit). Here alpha·|x|²/2 of rows at 1e20 overflows float32.
    model = EnergyMLP(2, hidden=(8,), alpha=1.0, dtype="float32")
    X = 1e20 * mixture(100, 0)
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(X, epochs=1, validation=None, progress=False)
    assert str(info.value) == (
        "training diverged at epoch 0, step 0 (counting from 0): the loss is NaN or Inf; the "
        "model keeps the last parameters whose loss and gradient were finite and in range (no "
        "update was made yet: the starting parameters' loss or gradient overflows on these "
        "rows, whatever the lr)"
    )


def test_non_finite_errors_name_the_core_quantities():
    """The distributed fit takes these errors from the core, by the quantity's name."""
    err = scorematch._core.non_finite_divergence(1, 2, "updated parameter vector")
    assert isinstance(err, TrainingDivergedError)
    assert str(err).startswith(
        "training diverged at epoch 1, step 2 (counting from 0): the updated parameter vector "
        "is NaN or Inf; the model keeps"
    ), str(err)
    assert (err.epoch, err.step) == (1, 2)
    assert err.cause == "the updated parameter vector is NaN or Inf"
    with pytest.raises(ValueError, match=r"one of 'loss', 'gradient', .* got 'grad'$"):
        scorematch._core.non_finite_divergence(1, 2, "grad")


def _parts(err: TrainingDivergedError) -> str:
    """The message that a TrainingDivergedError's attributes spell (the core's wording)."""
    return (
        f"training diverged at epoch {err.epoch}, step {err.step} (counting from 0): "
        f"{err.cause}; the model keeps the last parameters whose loss and gradient were "
        f"finite and in range ({err.advice})"
    )


@pytest.mark.parametrize(
    "X, options, where",
    [
        # A blow-up at a later step, and an overflow before any update (its own advice).
        (mixture(500, 7), {"lr": 1e8, "optimizer": "sgd", "batch_size": 500}, (1, 0)),
        (1e20 * mixture(100, 0), {"batch_size": 100}, (0, 0)),
    ],
)
def test_a_divergence_carries_its_epoch_step_cause_and_advice(X, options, where) -> None:
    """Callers (the command line, a sweep that logs failures) read where and why a run
    diverged from attributes, not by parsing the message; they spell the message exactly."""
    model = EnergyMLP(2, hidden=(8,), alpha=1.0, dtype="float32", seed=0)
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(X, epochs=2, validation=None, progress=False, **options)
    err = info.value
    assert (err.epoch, err.step) == where
    assert isinstance(err.cause, str) and err.cause.startswith("the loss ")
    assert err.advice == (
        "no update was made yet: the starting parameters' loss or gradient overflows on these "
        "rows, whatever the lr"
        if where == (0, 0)
        else "try a smaller lr or weight_decay"
    )
    assert str(err) == _parts(err)
    # Pickled (a sweep's worker sends it back), the parts and the history come along.
    back = pickle.loads(pickle.dumps(err))
    assert (back.epoch, back.step, back.cause, back.advice) == (*where, err.cause, err.advice)
    assert str(back) == str(err) and back.history == err.history


def test_a_training_diverged_error_made_by_hand_has_no_parts() -> None:
    err = TrainingDivergedError("my own message")
    assert (err.epoch, err.step, err.cause, err.advice) == (None, None, None, None)
    assert str(err) == "my own message"


@given(
    st.lists(
        st.one_of(
            st.floats(-1e12, 1e12),
            st.floats(-1e3, 1e3),
            st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e6, 1e6 + 1]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_loss_rule_is_the_documented_one(losses: list[float]) -> None:
    """The core's rule against the words of ``fit``'s docstring: NaN/Inf, or a loss above
    1e6 · max(1, |first loss|, -lowest loss) once a first loss was accepted."""
    rule = scorematch._core.LossScale()
    accepted: list[float] = []
    for loss in losses:
        err = rule.check(loss, 3, 4)
        assert err is None or (err.epoch, err.step, str(err)) == (3, 4, _parts(err))
        cause = None if err is None else err.cause
        if not math.isfinite(loss):
            assert cause == "the loss is NaN or Inf"
            return
        if accepted:
            scale = max(1.0, abs(accepted[0]), -min(accepted))
            if loss > 1e6 * scale:
                assert cause is not None and cause.startswith("the loss ")
                assert "is more than 1e6 times the scale of the earlier losses" in cause
                assert float(cause.rsplit("(", 1)[1].rstrip(")")) == pytest.approx(scale, 1e-3)
                return
        assert cause is None
        accepted.append(loss)


def test_a_run_that_swings_far_below_zero_and_back_is_not_a_blow_up():
    """On data of scale 1e-4 the ISM loss rightly falls towards -½ E‖∇ log p‖² (about -1e8
    here). At lr = 0.3 this run's epoch loss falls from 28 to -9.1e4, then swings back up to
    +1.8e5, about 6000 times its first epoch's, and down again: the scale must follow the
    fall (a bar set by the start of the run alone, with a factor under ~6000, would stop
    it)."""
    X = 1e-4 * np.random.default_rng(3).normal(size=(512, 2))
    model = EnergyMLP(2, hidden=(32, 32), seed=0)
    h = model.fit(X, epochs=60, lr=0.3, batch_size=128, validation=None, progress=False)
    assert h.stop_reason == "completed"
    loss = np.array(h.train_loss)
    low = int(np.argmin(loss))
    assert loss[0] == pytest.approx(28.4, rel=1e-2)
    assert loss[low] < -5e4 and loss[low:].max() > 1e5 and loss[-1] < 0


def test_ctrl_c_returns_the_history_so_far():
    model = EnergyMLP(2, hidden=(32, 32), seed=0)
    before = model.params
    with ctrl_c_every(0.5):
        h = model.fit(mixture(20000, 9), epochs=1000, progress=False)  # minutes uninterrupted
    assert h.stop_reason == "interrupted"
    assert h.seconds < 5
    assert not same_arrays(before, model.params)
    assert all(np.all(np.isfinite(p)) for p in model.params)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_a_signal_handlers_exit_during_training_keeps_the_trained_parameters():
    # Services stop on SIGTERM with a handler that raises SystemExit, then save the model:
    # the fit put back the initial parameters, where a Ctrl-C at the same point kept the
    # trained ones (production audit). SIGUSR1 stands in for SIGTERM here.
    def leave(signum, frame):
        raise SystemExit(143)

    def after_the_first_epoch(epoch, train, val):
        # Sent once the run is under way, whatever the machine's load: it arrives during
        # the next epoch's minibatches, while the engine works.
        seen.append(model.params)
        if epoch == 0:
            timer.start()

    model = EnergyMLP(2, hidden=(32, 32), seed=0)
    before = model.params
    X = mixture(200_000, 9)  # epochs of about half a second in minibatches of 16 rows
    seen: list[list[np.ndarray]] = []
    previous = signal.signal(signal.SIGUSR1, leave)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        with pytest.raises(SystemExit):
            # Minutes otherwise.
            model.fit(X, epochs=1000, batch_size=16, callback=after_the_first_epoch, progress=False)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    # Past the last epoch's end that the callback saw: minibatches of the next one.
    assert not same_arrays(before, model.params) and not same_arrays(seen[-1], model.params)
    assert all(np.all(np.isfinite(p)) for p in model.params)


def test_ctrl_c_keeps_the_completed_epochs_and_the_last_parameters():
    """The history holds every completed epoch, and the model keeps the parameters of the last
    completed minibatch, not those of the best epoch (as ``fit`` documents)."""
    model = EnergyMLP(2, hidden=(16, 16), seed=0)
    seen = []

    def callback(epoch, train, val):
        seen.append((train, val, model.params))
        if epoch == 5:
            raise KeyboardInterrupt  # what a Ctrl-C during the callback raises

    h = model.fit(mixture(600, 3), epochs=8, batch_size=30, lr=0.05, optimizer="sgd",
                  callback=callback, progress=False)  # fmt: skip
    assert h.stop_reason == "interrupted"
    assert h.train_loss == [s[0] for s in seen] and h.val_loss == [s[1] for s in seen]
    assert h.n_epochs == 6 and h.best_epoch == int(np.argmin(h.val_loss))
    # Measured validation losses: -0.07 -0.30 -0.62 -0.87 -1.17 -0.97: the best is epoch 4.
    assert h.best_epoch != 5, "the run must end on an epoch that is not the best"
    for a, b in zip(model.params, seen[5][2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_progress_bar_draws_on_request(capsys):
    EnergyMLP(2, hidden=(8,)).fit(mixture(200, 0), epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "rows/s" in err and "val" in err
    EnergyMLP(2, hidden=(8,)).fit(mixture(200, 0), epochs=2, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("progress", [None, True])
@pytest.mark.parametrize("stderr", ["none", "closed"])
def test_a_fit_without_a_usable_stderr_draws_no_bar_and_trains(
    monkeypatch, tmp_path, stderr, progress
):
    # sys.stderr is None under pythonw and some services, and can be a closed file: the
    # default progress=None raised AttributeError ('NoneType' object has no attribute
    # 'isatty') or ValueError (I/O operation on closed file), and progress=True failed on
    # its first write.
    if stderr == "none":
        stream = None
    else:
        stream = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 - closed at once
        stream.close()
    monkeypatch.setattr("sys.stderr", stream)
    h = EnergyMLP(2, hidden=(4,), seed=0).fit(_rows(20), epochs=2, progress=progress)
    assert h.n_epochs == 2 and h.stop_reason == "completed"


def test_a_stderr_without_isatty_is_not_a_terminal(monkeypatch):
    # A replacement stream with write and flush only (some loggers' wrappers): no bar by
    # default, the bar on request.
    class Writer:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    w = Writer()
    monkeypatch.setattr("sys.stderr", w)
    EnergyMLP(2, hidden=(4,), seed=0).fit(_rows(20), epochs=1)
    assert w.text == ""
    EnergyMLP(2, hidden=(4,), seed=0).fit(_rows(20), epochs=1, progress=True)
    assert "epoch 1/1" in w.text


def test_float32_models_train(mixture_data):
    X, X_test, s_true = mixture_data
    model = EnergyMLP(2, hidden=(32, 32), dtype="float32", seed=0)
    model.fit(X[:5000], epochs=20, lr=3e-3, progress=False)
    assert model.dtype == np.float32
    assert fisher(model, X_test, s_true) < 0.5


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"lr": -1.0}, ValueError, "lr"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"lr": 0}, ValueError, "lr"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"epochs": 2.5}, TypeError, "epochs"),
        ({"objective": "mle"}, ValueError, "objective"),
        ({"optimizer": "lbfgs"}, ValueError, "optimizer"),
        ({"objective": "esm"}, ValueError, "target_score"),
        ({"objective": "esm", "target_score": np.zeros((3, 2))}, ValueError, "target_score"),
        ({"target_score": np.zeros((50, 2))}, ValueError, "target_score"),
        ({"objective": "dsm"}, ValueError, "noise_std"),
        ({"objective": "dsm", "noise_std": -0.1}, ValueError, "noise_std"),
        ({"noise_std": 0.1}, ValueError, "noise_std"),
        ({"objective": "ssm", "n_projections": 0}, ValueError, "n_projections"),
        ({"objective": "ssm", "projection": "sphere"}, ValueError, "projection"),
        # SSM's own: ignored by the others, so a search over them repeated the same fit.
        (
            {"n_projections": 5},
            ValueError,
            r"^n_projections is only used by objective 'ssm', not 'ism' \(got 5\)$",
        ),
        (
            {"objective": "dsm", "noise_std": 0.1, "projection": "rademacher"},
            ValueError,
            r"^projection is only used by objective 'ssm', not 'dsm' \(got 'rademacher'\)$",
        ),
        ({"weight_decay": -1.0}, ValueError, "weight_decay"),
        ({"patience": 0}, ValueError, "patience"),
        ({"validation": 1.0}, ValueError, "validation"),
        ({"validation": np.zeros((5, 3))}, ValueError, "X_val"),
        ({"seed": -1}, ValueError, "seed"),
        ({"callback": 3}, TypeError, "callback"),
        ({"standardize": "yes"}, TypeError, "standardize"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, exc, match):
    model = EnergyMLP(2, hidden=(4,))
    before = model.params
    with pytest.raises(exc, match=match):
        model.fit(mixture(50, 0), progress=False, **kwargs)
    assert same_arrays(before, model.params)


def test_standardize_fits_badly_scaled_data_in_user_coordinates():
    # Scales 1000 and 0.01: without standardizing, lr = 3e-3 gets nowhere in the first
    # coordinate; with it, the fit matches the Gaussian's score (measured error 0.086).
    rng = np.random.default_rng(0)
    mu, sd = np.array([500.0, -0.2]), np.array([1000.0, 0.01])
    X = mu + sd * rng.normal(size=(8000, 2))
    X_test = mu + sd * rng.normal(size=(1000, 2))
    s_true = -(X_test - mu) / sd**2
    model = EnergyMLP(2, hidden=(32, 32), seed=1)
    model.fit(X, epochs=30, lr=3e-3, standardize=True, progress=False)
    err = relative_score_error(model, X_test, s_true)
    print(f"standardized fit: relative score error {err:.3f}")
    assert err < 0.15
    # The model is in user coordinates: score = −∇E and trace = ∇·score by central
    # differences at steps scaled to each coordinate.
    x0 = X_test[:5]
    for k in range(2):
        h = 1e-4 * sd[k]
        e = np.zeros(2)
        e[k] = h
        fd = (model.energy(x0 + e) - model.energy(x0 - e)) / (2 * h)
        np.testing.assert_allclose(-fd, model.score(x0)[:, k], rtol=1e-5)
    div = sum(
        (model.score(x0 + e)[:, k] - model.score(x0 - e)[:, k]) / (2 * e[k])
        for k in range(2)
        for e in [np.eye(2)[k] * 1e-4 * sd[k]]
    )
    np.testing.assert_allclose(div, model.hessian_trace(x0), rtol=1e-4)
    with pytest.raises(ValueError, match="alpha"):
        EnergyMLP(2, hidden=(4,), alpha=1.0).fit(X, standardize=True, progress=False)


def test_bad_data_is_an_error():
    model = EnergyMLP(2, hidden=(4,))
    with pytest.raises(ValueError, match="shape"):
        model.fit(np.zeros((10, 3)))
    X = mixture(10, 0)
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(X, progress=False)


def test_progress_bar_shows_the_train_and_validation_losses(capsys):
    h = EnergyMLP(2, hidden=(8,), seed=1).fit(
        mixture(200, 0), epochs=2, validation=0.25, progress=True
    )
    err = capsys.readouterr().err
    assert f"loss {h.train_loss[-1]:.4g} val {h.val_loss[-1]:.4g}" in err
    assert h.train_loss[-1] != h.val_loss[-1]


def test_the_validation_split_is_disjoint_and_its_loss_is_the_models():
    X = mixture(50, 11)
    X_tr, _, X_va, _ = scorematch.training._split(X, None, 0.2, 2, "float64", 4)
    assert X_va is not None and len(X_va) == 10 and len(X_tr) == 40
    rows = {tuple(r) for r in X}
    tr, va = {tuple(r) for r in X_tr}, {tuple(r) for r in X_va}
    assert tr.isdisjoint(va) and tr | va == rows
    # The validation loss of each epoch is the ISM loss of those rows under the model the
    # callback sees (the epoch's final parameters).
    model = EnergyMLP(2, hidden=(8,), seed=2)
    seen: list[float] = []
    h = model.fit(
        X,
        epochs=3,
        validation=0.2,
        seed=4,
        progress=False,
        callback=lambda e, tr, va: seen.append(model.ism_loss(X_va)),
    )
    np.testing.assert_allclose(h.val_loss, seen, rtol=1e-12)


def test_standardize_leaves_models_in_user_coordinates_whatever_ends_the_run():
    rng = np.random.default_rng(3)
    X = np.array([500.0, -0.2]) + np.array([1000.0, 0.01]) * rng.normal(size=(400, 2))
    # Divergence at once (the update of step 0 blows up, judged at step 1) keeps the initial
    # parameters: the model as it was, exactly, and still fresh (it was their conversion to x,
    # and no longer fresh). So does a fitted model's.
    blow_up: dict[str, Any] = {"epochs": 2, "lr": 1e200, "optimizer": "sgd"}
    blow_up.update(standardize=True, validation=None, progress=False)
    model = EnergyMLP(2, hidden=(8,), seed=3)
    p0 = model.params
    with pytest.raises(TrainingDivergedError, match="epoch 0, step [01]"):
        model.fit(X, **blow_up)
    assert same_arrays(model.params, p0) and model._is_initial()
    model.fit(X, epochs=1, lr=1e-3, standardize=True, validation=None, progress=False)
    fitted = model.params
    with pytest.raises(TrainingDivergedError, match="epoch 0, step [01]"):
        model.fit(X, **blow_up)
    assert same_arrays(model.params, fitted)
    # The callback sees the model in x coordinates too: at the last epoch, the final one.
    model = EnergyMLP(2, hidden=(8,), seed=3)
    seen = []
    model.fit(
        X,
        epochs=2,
        lr=1e-3,
        standardize=True,
        validation=None,
        progress=False,
        callback=lambda e, tr, va: seen.append(model.params),
    )
    assert same_arrays(seen[-1], model.params)
    assert not np.allclose(seen[-1][0], EnergyMLP(2, hidden=(8,), seed=3).params[0])


def test_a_second_standardized_fit_continues_from_the_fitted_model():
    # The second fit(standardize=True) read the fitted parameters (a network of x) as a
    # network of z: with lr = 1e-9 it turned an ISM loss of -2410 into 3e8. Now a model that is
    # not fresh is converted to z first, and a second fit starts from the same function, on
    # the same data or on data of other statistics.
    X = np.array([1000.0, 5.0]) + np.array([100.0, 0.01]) * mixture(3000, 0)
    model = EnergyMLP(2, hidden=(16, 16), seed=0)
    model.fit(X, epochs=5, lr=3e-3, standardize=True, validation=None, progress=False)
    E, loss = model.energy(X[:300]), model.ism_loss(X)
    kw = {"epochs": 1, "lr": 1e-300, "optimizer": "sgd", "validation": None, "progress": False}
    for rows in (X, 2.0 * X[:1000] - 3.0):
        model.fit(rows, standardize=True, **kw)
        # Measured: 0 (the first layer goes there and back within an ulp, if not exactly).
        assert np.max(np.abs(model.energy(X[:300]) - E)) <= 1e-12 * np.ptp(E)
        assert model.ism_loss(X) == pytest.approx(loss, rel=1e-9)
    # Parameters given by the caller are in the caller's coordinates too.
    given = EnergyMLP.from_params(model.params)
    given.fit(X, standardize=True, **kw)
    assert np.max(np.abs(given.energy(X[:300]) - E)) <= 1e-12 * np.ptp(E)


def test_only_a_fresh_model_is_read_as_the_standardized_network():
    # A fresh model's initialization, drawn for inputs of unit scale, is read as the network
    # of z (as before); copies and pickles of it are fresh too; set_params ends it.
    import copy
    import pickle

    X = np.array([1000.0, 5.0]) + np.array([100.0, 0.01]) * mixture(500, 1)
    kw = {"epochs": 2, "lr": 1e-2, "standardize": True, "validation": None, "progress": False}
    fresh = EnergyMLP(2, hidden=(8,), seed=2)
    twins = [copy.copy(fresh), copy.deepcopy(fresh), pickle.loads(pickle.dumps(fresh))]
    fresh.fit(X, **kw)
    for twin in twins:
        twin.fit(X, **kw)
        assert same_arrays(twin.params, fresh.params)
    # Its own parameters set back: no longer fresh, converted to z (the first layer times
    # the spread of 100 and 0.01), which trains to another model.
    other = EnergyMLP(2, hidden=(8,), seed=2)
    other.set_params(other.params)
    other.fit(X, **kw)
    assert not np.allclose(other.params[0], fresh.params[0])
    # A pickle written before models knew freshness (four arguments) is not fresh.
    from scorematch.model import _rebuild

    old = _rebuild(fresh.params, "softplus", 0.0, "float64")
    assert not old._is_initial()


def test_a_fit_that_makes_no_update_leaves_the_model_as_it_was():
    # A divergence at the first step (no update made) still swapped in the trainer's copy:
    # with standardize, the initial network converted to x, another energy, and the model was
    # no longer fresh, so a second try converted it to z again instead of reading it there.
    X = np.array([1000.0, 5.0]) + np.array([100.0, 0.01]) * mixture(300, 0)
    model = EnergyMLP(2, hidden=(8,), seed=0)
    E = model.energy(X[:20])
    kw: dict[str, Any] = {"standardize": True, "validation": None, "progress": False}
    with pytest.raises(TrainingDivergedError, match="epoch 0, step 0"):
        model.fit(X, objective="esm", target_score=np.full_like(X, 1e200), epochs=1, **kw)
    assert model._is_initial() and np.array_equal(model.energy(X[:20]), E)
    fresh = EnergyMLP(2, hidden=(8,), seed=0)
    model.fit(X, epochs=2, lr=1e-2, **kw)
    fresh.fit(X, epochs=2, lr=1e-2, **kw)
    assert same_arrays(model.params, fresh.params)
    # A fitted model's pickle is not fresh (a fresh one's is: see the test below).
    import pickle

    assert not pickle.loads(pickle.dumps(model))._is_initial()


def test_standardize_refuses_a_model_whose_first_layer_overflows_in_standardized_units():
    X = 1e10 * mixture(200, 0)
    params = EnergyMLP(2, hidden=(4,), dtype="float32").params
    params[0] = np.full((4, 2), 1e30, np.float32)  # times a spread of ~1e10: past float32
    model = EnergyMLP.from_params(params, dtype="float32")
    with pytest.raises(ValueError) as info:
        model.fit(X, standardize=True, validation=None, epochs=1, progress=False)
    assert str(info.value) == (
        "standardize=True: the model's first layer overflows float32 in standardized "
        "coordinates (its weights times the data's spread); pass standardize=False, rescale "
        "the data, or start from a fresh model"
    )
    assert same_arrays(model.params, params)


def test_esm_with_standardize_matches_the_target_in_user_coordinates():
    # The target score is mapped to z coordinates as s_z = s ⊙ s_x: fitting the exact score of
    # a badly scaled Gaussian recovers it (a wrong map would fit another field).
    rng = np.random.default_rng(0)
    mu, sd = np.array([500.0, -0.2]), np.array([1000.0, 0.01])
    X = mu + sd * rng.normal(size=(4000, 2))
    X_test = mu + sd * rng.normal(size=(500, 2))
    model = EnergyMLP(2, hidden=(32, 32), seed=1)
    model.fit(
        X,
        objective="esm",
        target_score=-(X - mu) / sd**2,
        epochs=20,
        lr=3e-3,
        standardize=True,
        progress=False,
    )
    err = relative_score_error(model, X_test, -(X_test - mu) / sd**2)
    assert err < 0.15, err


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_standardize_statistics_and_data_are_those_of_their_definition(dtype):
    # The affine map's (m, s), and the data it maps, bit for bit as written out plainly: the
    # largest |x| of a column may be its most negative value, a constant column is only shifted
    # (s = 1), an all-zero one too; the caller's arrays are left as they were.
    from scorematch.training import _Affine

    rng = np.random.default_rng(5)
    X = np.column_stack(
        [
            rng.normal(3.0, 2.0, 300),
            rng.normal(-40.0, 1.0, 300),  # all negative: max |x| is -min
            np.full(300, 7.0),
            np.zeros(300),
        ]
    ).astype(dtype)
    T = rng.normal(size=X.shape).astype(dtype)
    X0, T0 = X.copy(), T.copy()
    aff = _Affine.of(X, X.dtype)
    m = X.mean(axis=0, dtype=np.float64)
    big = np.abs(X).max(axis=0).astype(np.float64)
    big[big == 0] = 1.0
    s = (X / big).std(axis=0, dtype=np.float64) * big
    s[s == 0] = 1.0
    np.testing.assert_array_equal(aff.m, m)
    np.testing.assert_array_equal(aff.s, s)
    assert aff.s[2] == aff.s[3] == 1.0
    z, t = aff.data(X, T)
    assert z.dtype == t.dtype == dtype
    np.testing.assert_array_equal(z, ((X - m) / s).astype(dtype))
    np.testing.assert_array_equal(t, (T * s).astype(dtype))
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(T, T0)
    assert not np.shares_memory(z, X) and not np.shares_memory(t, T)


def test_standardized_data_take_one_temporary_of_the_rows():
    # data() of float64 rows allocates the result and nothing else of their size.
    import tracemalloc

    from scorematch.training import _Affine

    X = np.random.default_rng(0).normal(size=(50_000, 4))
    aff = _Affine.of(X, X.dtype)
    tracemalloc.start()
    try:
        _z, _ = aff.data(X, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * X.nbytes, peak / X.nbytes


def _reference_fit(model, X, *, epochs, batch_size, lr, optimizer, weight_decay, seed):
    """fit(objective="ism", validation=None) written out in numpy: the same minibatches (the
    rows of the schedule's permutation, which only orders the data), the engine's minibatch
    loss and gradient (checked against references elsewhere), and Adam / SGD with momentum
    from PyTorch's update rules, in float64."""
    theta = [p.astype(np.float64) for p in model.params]
    m = [np.zeros_like(p) for p in theta]
    v = [np.zeros_like(p) for p in theta]
    n = X.shape[0]
    bs = min(batch_size, n)
    t = 0
    history = []
    for epoch in range(epochs):
        perm = scorematch._core.epoch_permutation(seed, epoch, n)
        losses = []
        for start in range(0, n, bs):
            current = EnergyMLP.from_params(theta, activation=model.activation, alpha=model.alpha)
            loss, grads = current.ism_loss_and_grad(X[perm[start : start + bs]])
            losses.append(loss)
            t += 1
            for p, g, mi, vi in zip(theta, grads, m, v, strict=True):
                g = g + weight_decay * p
                if optimizer == "adam":
                    mi[...] = 0.9 * mi + 0.1 * g
                    vi[...] = 0.999 * vi + 0.001 * g * g
                    m_hat, v_hat = mi / (1 - 0.9**t), vi / (1 - 0.999**t)
                    p -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
                else:
                    mi[...] = g if t == 1 else 0.9 * mi + g
                    p -= lr * mi
        history.append(float(np.mean(losses)))
    return theta, history


@settings(max_examples=15, deadline=None)
@given(
    optimizer=st.sampled_from(["adam", "sgd"]),
    batch_size=st.integers(7, 200),
    lr=st.sampled_from([1e-3, 1e-2]),
    weight_decay=st.sampled_from([0.0, 1e-2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fit_takes_the_steps_of_a_numpy_reference(optimizer, batch_size, lr, weight_decay, seed):
    """Parameters and per-epoch losses of a float64 ISM fit against ``_reference_fit``:
    several epochs of minibatches (the last one short), with momentum and weight decay. The
    two differ only in the order of roundings, which stays below 1e-9 relative here."""
    X = mixture(150, seed % 1000)
    model = EnergyMLP(2, hidden=(12, 12), seed=seed % 97)
    start = EnergyMLP.from_params(model.params, activation=model.activation, alpha=model.alpha)
    kw = {"batch_size": batch_size, "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay}
    h = model.fit(X, epochs=3, validation=None, seed=seed, progress=False, **kw)
    want, history = _reference_fit(start, X, epochs=3, seed=seed, **kw)
    for got, exp in zip(model.params, want, strict=True):
        np.testing.assert_allclose(got, exp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h.train_loss, history, rtol=1e-9, atol=1e-12)
    assert not same_arrays(model.params, start.params)


def _rows(n):
    return np.arange(2.0 * n).reshape(n, 2) / n


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "mle"}, "objective must be 'ism', 'ssm', 'dsm' or 'esm', got 'mle'"),
        ({"optimizer": "lbfgs"}, "optimizer must be 'adam' or 'sgd', got 'lbfgs'"),
    ],
)
def test_unknown_objective_or_optimizer_message_lists_the_choices(kwargs, message):
    # The message lists the accepted names as a tuple, and the bad value's repr.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(_rows(10), epochs=1, progress=False, **kwargs)
    assert str(info.value) == message


def test_fit_of_no_rows_is_refused_and_one_row_is_enough():
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(np.zeros((0, 2)), epochs=1, progress=False)
    assert str(info.value) == "X must hold at least one row, got 0"
    h = model.fit(np.array([[0.5, -0.5]]), epochs=2, validation=None, progress=False)
    assert h.n_epochs == 2 and h.val_loss == [] and h.stop_reason == "completed"


def test_a_second_fit_starts_a_new_optimizer_and_the_same_draws():
    # As fit's Notes say (undocumented before): fit called twice is two runs, the second
    # from the parameters the first left with its optimizer state reset and the same seed's
    # draws; not one run of twice the epochs.
    X = mixture(300, seed=2)
    kw = {"objective": "dsm", "noise_std": 0.3, "lr": 1e-2, "validation": None, "progress": False}
    twice = EnergyMLP(2, hidden=(8,), seed=0)
    twice.fit(X, epochs=2, **kw)
    fresh = EnergyMLP.from_params(twice.params)
    h_twice = twice.fit(X, epochs=2, **kw)
    h_fresh = fresh.fit(X, epochs=2, **kw)
    assert h_twice.train_loss == h_fresh.train_loss
    for a, b in zip(twice.params, fresh.params, strict=True):
        np.testing.assert_array_equal(a, b)
    once = EnergyMLP(2, hidden=(8,), seed=0)
    once.fit(X, epochs=4, **kw)
    assert not all(np.array_equal(a, b) for a, b in zip(twice.params, once.params, strict=True))


def test_set_params_in_a_callback_does_not_change_the_run():
    # The callback sees the epoch's parameters, but the run goes on from its own copy: a
    # set_params there is overwritten, as fit's Notes say.
    X = mixture(200, seed=3)
    plain = EnergyMLP(2, hidden=(8,), seed=0)
    plain.fit(X, epochs=3, progress=False)
    model = EnergyMLP(2, hidden=(8,), seed=0)
    zeros = [np.zeros_like(p) for p in model.params]
    model.fit(X, epochs=3, progress=False, callback=lambda e, t, v: model.set_params(zeros))
    for a, b in zip(model.params, plain.params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_history_seconds_is_the_wall_time_of_the_fit():
    model = EnergyMLP(2, hidden=(8,), seed=0)
    t0 = time.perf_counter()
    h = model.fit(_rows(200), epochs=3, progress=False)
    wall = time.perf_counter() - t0
    assert 0 < h.seconds <= wall


def test_diverged_history_seconds_is_the_wall_time_up_to_the_divergence():
    rng = np.random.default_rng(7)
    model = EnergyMLP(2, hidden=(16, 16), seed=0)
    t0 = time.perf_counter()
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(rng.normal(size=(500, 2)), epochs=50, lr=1e8, optimizer="sgd", progress=False)
    wall = time.perf_counter() - t0
    h = info.value.history
    assert h.stop_reason == "diverged"
    assert 0 < h.seconds <= wall


def test_progress_bar_rate_counts_training_rows_per_second(capsys):
    n = 4000
    h = EnergyMLP(2, hidden=(8,), seed=0).fit(_rows(n), epochs=2, validation=None, progress=True)
    err = capsys.readouterr().err
    rate = float(re.findall(r"([\d,]+) rows/s", err)[-1].replace(",", ""))
    # The final frame is drawn just before the fit returns: at least the fit's average rate.
    assert rate >= 0.9 * 2 * n / h.seconds


_FRAME = re.compile(r"epoch (\d+)/2 \[(#*)(\.*)\] (loss (\S+) )?(-?[\d,]+) rows/s")


@pytest.mark.parametrize("batch_size", [256, 64])  # one step an epoch, four steps
def test_progress_bar_frames_count_epochs_steps_and_rows(capsys, batch_size):
    h = EnergyMLP(2, hidden=(8,), seed=0).fit(
        _rows(200), epochs=2, batch_size=batch_size, validation=None, progress=True
    )
    err = capsys.readouterr().err
    # Frames redrawn in place: "\r" and a line padded to 78 columns each; a newline at the end.
    assert err.startswith("\r") and err.endswith("\n")
    frames = err[:-1].split("\r")[1:]
    assert all(len(f) == 78 for f in frames), [len(f) for f in frames]
    parsed = [_FRAME.fullmatch(f.rstrip()) for f in frames]
    assert all(parsed), frames
    epochs = [int(p[1]) for p in parsed]
    assert epochs == sorted(epochs) and epochs[0] == 1 and epochs[-1] == 2
    for p in parsed:
        assert len(p[2]) + len(p[3]) == 20, p[0]
        if batch_size == 256:  # a single minibatch: the bar is drawn only once it is done
            assert p[2] == "#" * 20, p[0]
    rate = [float(p[6].replace(",", "")) for p in parsed]
    for e in (1, 2):
        # An epoch's last two frames: its last minibatch done (with the previous epoch's loss),
        # then the epoch's end (with its own), both full. Both count the rows of the epochs
        # done so far, so the later frame's rate is no higher.
        i = len(epochs) - 1 - epochs[::-1].index(e)
        done, end = parsed[i - 1], parsed[i]
        assert done[1] == end[1] == str(e)
        assert done[2] == end[2] == "#" * 20
        assert done[5] == (None if e == 1 else f"{h.train_loss[0]:.4g}")
        assert end[5] == f"{h.train_loss[e - 1]:.4g}"
        assert 0 < rate[i] <= rate[i - 1]


@pytest.mark.parametrize("objective", ["ism", "ssm"])
def test_n_projections_below_1_is_refused_whatever_the_objective(objective):
    # Checked for every objective (as noise_std is), with the same message.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(_rows(10), objective=objective, n_projections=0, epochs=1, progress=False)
    assert str(info.value) == "n_projections must be at least 1, got 0"


def test_callback_answers_stop_only_when_false_numpy_false_included():
    # False and np.False_ stop after the epoch; True, np.True_, None, 0 go on.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    for answer, epochs_run, reason in [
        (False, 1, "callback"),
        (np.False_, 1, "callback"),
        (True, 3, "completed"),
        (np.True_, 3, "completed"),
        (None, 3, "completed"),
        (0, 3, "completed"),
    ]:
        h = model.fit(
            _rows(10), epochs=3, progress=False, callback=lambda e, t, v, answer=answer: answer
        )
        assert (h.n_epochs, h.stop_reason) == (epochs_run, reason), answer


def test_negative_weight_decay_message_echoes_the_value_given():
    model = EnergyMLP(2, hidden=(4,), seed=0)
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError) as info:
            model.fit(_rows(10), weight_decay=bad, epochs=1, progress=False)
        assert str(info.value) == f"weight_decay must be a finite number >= 0, got {bad}"


@pytest.mark.parametrize("frac", [1.0, 1.5, -0.5, float("nan")])
def test_validation_fraction_outside_0_1_message(frac):
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(_rows(10), validation=frac, epochs=1, progress=False)
    assert str(info.value) == (
        f"validation must be a fraction in [0, 1), an array X_val or None, got {frac}"
    )


@pytest.mark.parametrize(
    "count, hint",
    [
        (5, "5 (not a row count: for 5 rows, validation=5/len(X))"),
        (np.int64(1), "1 (not a row count: for 1 row, validation=1/len(X))"),
        (-2, "-2"),
    ],
)
def test_an_int_validation_is_not_read_as_a_row_count(count, hint):
    # It said "got 5.0": an int is what scikit-learn's train_test_split reads as a row count.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(_rows(10), validation=count, epochs=1, progress=False)
    assert str(info.value) == (
        f"validation must be a fraction in [0, 1), an array X_val or None, got {hint}"
    )


@pytest.mark.parametrize("zero", [0, 0.0, np.float64(0.0)])
def test_validation_zero_is_no_validation(zero):
    # validation=0 holds out nothing: the same run as validation=None.
    a = EnergyMLP(2, hidden=(4,), seed=0)
    b = EnergyMLP(2, hidden=(4,), seed=0)
    ha = a.fit(_rows(20), validation=zero, epochs=2, progress=False)
    hb = b.fit(_rows(20), validation=None, epochs=2, progress=False)
    assert ha.val_loss == [] and ha.train_loss == hb.train_loss
    for pa, pb in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("frac", [0.5, 0.01])
def test_a_validation_fraction_holds_out_at_least_one_row_and_keeps_one(frac):
    # Of 2 rows, any fraction in (0, 1) holds out exactly one: the validation loss of each
    # epoch is the ISM loss of one of the two rows under that epoch's model.
    X = np.array([[0.3, -0.2], [-1.0, 0.7]])
    model = EnergyMLP(2, hidden=(4,), seed=0)
    per_row = []
    h = model.fit(
        X,
        validation=frac,
        epochs=2,
        progress=False,
        callback=lambda e, t, v: per_row.append([model.ism_loss(X[i : i + 1]) for i in (0, 1)]),
    )
    assert len(h.val_loss) == 2
    for v, (l0, l1) in zip(h.val_loss, per_row, strict=True):
        assert v == pytest.approx(l0, rel=1e-12) or v == pytest.approx(l1, rel=1e-12)


def test_a_validation_fraction_that_leaves_no_training_row_is_refused():
    # Of one row, every fraction (the default 0.1 too) holds it out: the message said to
    # pass a smaller fraction, which cannot help; validation=None can.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    for frac in (0.5, 0.1):
        with pytest.raises(ValueError) as info:
            model.fit(np.array([[0.3, -0.2]]), validation=frac, epochs=1, progress=False)
        assert str(info.value) == (
            f"validation={frac} leaves no training rows out of 1: pass validation=None or more rows"
        )
    # Of two rows, a smaller fraction keeps one to train on.
    with pytest.raises(ValueError) as info:
        model.fit(np.array([[0.3, -0.2], [0.1, 0.0]]), validation=0.9, epochs=1, progress=False)
    assert str(info.value) == (
        "validation=0.9 leaves no training rows out of 2: pass more rows or a smaller fraction"
    )
    model.fit(np.array([[0.3, -0.2], [0.1, 0.0]]), validation=0.5, epochs=1, progress=False)


@pytest.mark.parametrize(
    ("validation", "shown"),
    [
        (np.zeros((2, 2)), "an array of shape (2, 2)"),
        (np.zeros((3, 2)), "an array of shape (3, 2)"),
        ([np.zeros((2, 2)), np.zeros((2, 2))], "list"),
        ((np.zeros((2, 2)),), "a tuple of 1 item"),
    ],
    ids=["array-of-2-rows", "array-of-3-rows", "list-pair", "1-tuple"],
)
def test_esm_validation_must_be_a_tuple_pair(validation, shown):
    # With 'esm', an X_val alone (whatever its row count) or a list is refused: only a
    # tuple (X_val, target_val), a fraction or None.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    X = _rows(10)
    with pytest.raises(ValueError) as info:
        model.fit(
            X,
            objective="esm",
            target_score=np.zeros_like(X),
            validation=validation,
            epochs=1,
            progress=False,
        )
    assert str(info.value) == (
        "with objective 'esm', validation must be a fraction, None or a pair (X_val, "
        f"target_val), got {shown}"
    )


@pytest.mark.parametrize("n", [1, 3])
def test_a_tuple_of_arrays_is_not_taken_for_rows(n):
    # numpy stacked (X_val,) into a (1, 5, 2) array, and the error described that shape.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    validation = (_rows(5),) * n
    with pytest.raises(ValueError) as info:
        model.fit(_rows(10), validation=validation, epochs=1, progress=False)
    items = "item" if n == 1 else "items"
    assert str(info.value) == f"validation must be an array X_val, got a tuple of {n} {items}"
    # A tuple of rows is still an array-like X_val.
    rows = tuple(map(tuple, _rows(3).tolist()))
    model.fit(_rows(10), validation=rows, epochs=1, progress=False)


@pytest.mark.parametrize(
    ("validation", "shown"),
    [
        (True, "bool True"),
        ("0.1", "str '0.1'"),
        (b"0.1", "bytes b'0.1'"),
        # Other numbers were read as a 0-d array X_val, and the message named X_val.
        (Decimal("0.1"), "Decimal('0.1')"),
        (Fraction(1, 10), "Fraction(1, 10)"),
        (0.1 + 0j, "complex (0.1+0j)"),
    ],
)
def test_validation_of_the_wrong_type_is_a_type_error_naming_it(validation, shown):
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(TypeError) as info:
        model.fit(_rows(10), validation=validation, epochs=1, progress=False)
    assert str(info.value) == (
        f"validation must be a fraction in [0, 1), an array X_val or None, got {shown}"
    )


def test_a_validation_pair_is_only_for_esm():
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(
            _rows(10), validation=(np.zeros((2, 2)), np.zeros((2, 2))), epochs=1, progress=False
        )
    assert str(info.value) == (
        "validation=(X_val, target_val) is for objective 'esm'; for this objective pass X_val alone"
    )


def test_a_validation_array_of_two_rows_is_x_val():
    # Two rows as an array (not a tuple) are X_val: one validation loss per epoch, that of
    # the ISM loss on those rows.
    X_val = np.array([[0.1, 0.2], [-0.3, 0.4]])
    model = EnergyMLP(2, hidden=(4,), seed=0)
    seen = []
    h = model.fit(
        _rows(10),
        validation=X_val,
        epochs=1,
        progress=False,
        callback=lambda e, t, v: seen.append(model.ism_loss(X_val)),
    )
    assert h.val_loss == pytest.approx(seen, rel=1e-12) and len(seen) == 1


def test_standardize_refuses_data_whose_mean_overflows():
    X = np.array([[1e308, 0.0], [1e308, 1.0], [1e308, 2.0]])
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with warnings.catch_warnings(), pytest.raises(ValueError) as info:
        warnings.simplefilter("error")  # the ValueError alone, no numpy overflow warning
        model.fit(X, standardize=True, validation=None, epochs=1, progress=False)
    assert str(info.value) == "standardize=True: the mean or spread of X overflows; rescale X"


def test_standardize_with_an_all_zero_column_warns_only_that_it_is_constant():
    X = np.stack([np.linspace(-1.0, 1.0, 20), np.zeros(20)], axis=1)
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        h = model.fit(X, standardize=True, validation=None, epochs=1, progress=False)
    assert np.isfinite(h.train_loss).all()
    assert [str(w.message)[:46] for w in seen] == ["column 1 of X holds one value in every trainin"]


@pytest.mark.parametrize("objective", ["ism", "ssm", "dsm"])
def test_a_constant_column_is_a_warning_for_ism_and_ssm(objective):
    # Along a column of one value the data is a point mass: the ISM (and SSM) loss falls
    # without bound as the model's curvature there grows (measured: -0.15 to -7e5 in 200
    # epochs, where the data without the column settles at -0.51). DSM's noise gives the
    # data a density there; one row is no data to judge.
    rng = np.random.default_rng(0)
    X = np.column_stack([np.full(200, 3.0), rng.normal(size=200), np.zeros(200)])
    kw = {"noise_std": 0.1} if objective == "dsm" else {}
    model = EnergyMLP(3, hidden=(4,), seed=0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit(X, objective=objective, epochs=1, validation=None, progress=False, **kw)
        model.fit(X[:1], objective=objective, epochs=1, validation=None, progress=False, **kw)
    if objective == "dsm":
        assert seen == []
        return
    assert len(seen) == 1 and seen[0].category is RuntimeWarning
    assert seen[0].filename == __file__  # the caller's line
    assert str(seen[0].message) == (
        "columns [0, 2] of X hold one value in every training row: along them the data is a "
        f"point mass, which {objective.upper()} cannot fit (its loss falls without bound and "
        "the model degenerates); drop them, or use objective='dsm', whose noise gives the "
        "data a density there"
    )


@pytest.mark.parametrize("objective", ["ism", "ssm", "dsm"])
def test_a_column_of_few_values_is_a_warning_for_ism_and_ssm(objective):
    # Booleans, counts and one-hot codes are point masses too: with a Boolean column the
    # estimator's ISM loss went from -0.008 to -4e4 in 300 epochs, still falling (the
    # measurements behind the thresholds are beside `_DISCRETE_VALUES`). A rounded column of
    # wide spread is not flagged, nor a column of few values seen too few times each.
    rng = np.random.default_rng(0)
    n = 400
    counts = rng.poisson(1.5, n)
    X = np.column_stack(
        [rng.normal(size=n), rng.random(n) < 0.3, counts, np.round(12 * rng.normal(size=n))]
    )
    kw = {"noise_std": 0.1} if objective == "dsm" else {}
    model = EnergyMLP(4, hidden=(4,), seed=0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        model.fit(X, objective=objective, epochs=1, validation=None, progress=False, **kw)
        # 7 rows of 2 values: fewer than 4 per value; 8 rows: as many.
        for rows in (7, 8):
            two = np.column_stack([np.arange(rows) % 2, rng.normal(size=rows)])
            EnergyMLP(2, hidden=(4,)).fit(
                two, objective=objective, epochs=1, validation=None, progress=False, **kw
            )
    if objective == "dsm":
        assert seen == []
        return
    assert [w.category for w in seen] == [RuntimeWarning] * 2
    assert all(w.filename == __file__ for w in seen)  # the caller's line
    k = len(np.unique(counts))
    assert str(seen[0].message) == (
        f"columns [1, 2] of X take only 2 and {k} distinct values: along them the data are "
        f"point masses, which {objective.upper()} may fit without bound (its loss falls on "
        "and on as the model's curvature at those values grows, and the density degenerates); "
        "drop them, add noise of about the spacing of the values, or use objective='dsm' "
        "with noise_std about that spacing"
    )
    assert str(seen[1].message).startswith("column 0 of X takes only 2 distinct values:")


def test_the_values_of_a_column_are_counted_on_every_row():
    # Evenly spaced rows only pick the candidates: at every 16th row a 256 x 256 grid's column
    # showed 16 of its 256 values (a warning of "16 distinct values"); and values off those
    # rows count (every 3rd row of 12 000 holds 0, which alone the sample saw).
    g = np.linspace(-3.0, 3.0, 256)
    a, b = np.meshgrid(g, g, indexing="ij")
    fit = {"epochs": 1, "validation": None, "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EnergyMLP(2, hidden=(4,)).fit(np.column_stack([a.ravel(), b.ravel()]), **fit)
    X = np.column_stack([np.arange(12000) % 3, np.random.default_rng(0).normal(size=12000)])
    X[1, 0] = 7.0
    with pytest.warns(RuntimeWarning) as seen:
        EnergyMLP(2, hidden=(4,)).fit(X, **fit)
    assert [str(w.message)[:46] for w in seen] == ["column 0 of X takes only 4 distinct values: al"]


def test_standardize_refuses_a_spread_too_small_for_the_dtype():
    X = np.stack([np.array([0.0, 1e-305, 2e-305, 3e-305]), np.arange(4.0)], axis=1)
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(ValueError) as info:
        model.fit(X, standardize=True, validation=None, epochs=1, progress=False)
    assert str(info.value).startswith("standardize=True: the spread of column 0 of X (1.1e-305)")


def test_standardize_names_finite_rows_that_overflow_in_standardized_units():
    # Finite rows whose standardized values overflow the model's dtype were refused by the
    # engine as "contains NaN or Inf", after a numpy overflow warning: a validation row far
    # from the training rows, a training row of data spanning the float64 range, a target
    # scaled by a large spread.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    X_val = rng.normal(size=(10, 2))
    X_val[7, 1] = 1e36
    T = rng.normal(size=(50, 2))
    T[9, 1] = 1e35
    cases = [
        (
            "float32",
            X * 1e-3,
            {"validation": X_val},
            (
                "row 7 of X_val lies too far from the training rows' mean for a float32 "
                "model: its standardized coordinates (x - mean) / std overflow; rescale X_val "
                "or drop that row"
            ),
        ),
        (
            "float64",
            np.array([[1.7e308], [-1.7e308], [-1.7e308]]),
            {"validation": None},
            (
                "row 0 of X lies too far from the training rows' mean for a float64 model: "
                "its standardized coordinates (x - mean) / std overflow; rescale X or drop "
                "that row"
            ),
        ),
        (
            "float32",
            X * 1e6,
            {"validation": None, "objective": "esm", "target_score": T},
            (
                "row 9 of target_score overflows a float32 model once converted to "
                "standardized units (target_score * std); rescale the data or pass "
                "standardize=False"
            ),
        ),
    ]
    for dtype, data, kwargs, message in cases:
        model = EnergyMLP(data.shape[1], hidden=(4,), dtype=dtype, seed=0)
        with warnings.catch_warnings(), pytest.raises(ValueError) as info:
            warnings.simplefilter("error")
            model.fit(data, standardize=True, epochs=1, progress=False, **kwargs)
        assert str(info.value) == "standardize=True: " + message


def test_validation_given_as_a_long_string_is_described_on_one_line():
    # The message showed the whole string, whatever its length.
    model = EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(TypeError) as info:
        model.fit(_rows(10), validation="0.1" * 100, epochs=1, progress=False)
    assert str(info.value) == (
        "validation must be a fraction in [0, 1), an array X_val or None, got str of length "
        "300 starting '0.10.10.10.10.10.10.'"
    )


def _column_warnings(X: np.ndarray) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        EnergyMLP(X.shape[1], hidden=(4,), seed=0).fit(X, epochs=1, validation=None, progress=False)
    return [str(w.message) for w in seen]


def test_the_column_warnings_thresholds_are_the_documented_ones():
    """Two rows already show a constant column; a column of 20 distinct values is discrete
    and one of 21 is not (the docstring's "at most 20"), each seen 8 times. No other test
    sat on these edges (mutation audit: each could move by one unseen)."""
    msgs = _column_warnings(np.array([[0.0, 5.0], [1.0, 5.0]]))
    assert len(msgs) == 1 and msgs[0].startswith("column 1 of X holds one value in every")
    rng = np.random.default_rng(0)
    for k, want in ((20, ["column 0 of X takes only 20 distinct values:"]), (21, [])):
        n = 8 * k
        X = np.column_stack([np.arange(n) % k, rng.normal(size=n)]).astype(float)
        assert [m[:44] for m in _column_warnings(X)] == want, k
