"""The extension module `scorematch._core` as a caller that skips the Python layer meets it.

The public API converts and checks its inputs before they reach the binding, so the binding's
own checks cannot be reached through it; they stay, for any other caller (and for a Python
layer that one day forgets one), and are pinned here. Found by mutation testing of
rust/python: each test below failed on a mutant that survived the rest of the suite.
"""

from __future__ import annotations

import numpy as np
import pytest
import scorematch as sm
from scorematch import _core


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` one byte off its dtype's alignment."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


@pytest.fixture
def core_model():
    return sm.EnergyMLP(2, hidden=(4,), seed=0)._m


X = np.random.default_rng(0).normal(size=(5, 2))

LOSSES = {
    "ism_loss": lambda m, x: m.ism_loss(x),
    "ism_loss_and_grad": lambda m, x: m.ism_loss_and_grad(x),
    "esm_loss_and_grad": lambda m, x: m.esm_loss_and_grad(x, X),
    "ssm_loss_and_grad": lambda m, x: m.ssm_loss_and_grad(x, 1, 0, "gaussian"),
    "dsm_loss_and_grad": lambda m, x: m.dsm_loss_and_grad(x, 0.1, 0),
}


@pytest.mark.parametrize("name", LOSSES)
def test_a_misaligned_batch_is_refused_not_read(core_model, name):
    expected = r"^X is not aligned for float64: pass a copy \(np\.array\(X\)\)$"
    with pytest.raises(TypeError, match=expected):
        LOSSES[name](core_model, _misaligned(X))
    LOSSES[name](core_model, X.copy())  # the same values, aligned, are read


def test_a_misaligned_target_is_refused_not_read(core_model):
    with pytest.raises(TypeError, match=r"^target_score is not aligned for float64"):
        core_model.esm_loss_and_grad(X, _misaligned(X))


@pytest.mark.parametrize(
    ("given", "described"),
    [
        ([[0.0, 1.0]], "list"),
        (np.zeros((3, 2), np.float32), "ndarray of dtype float32"),
        (np.zeros(3), "ndarray of dtype float64"),  # 1-D: not a 2-D array
    ],
)
def test_a_batch_of_another_type_is_described(core_model, given, described):
    with pytest.raises(TypeError) as err:
        core_model.ism_loss(given)
    assert str(err.value) == f"X must be a 2-D numpy array of float64, got {described}"


def _empty_at_odd_address(shape):
    """An empty float64 array at an odd byte address, which numpy calls aligned."""
    out = np.frombuffer(np.zeros(1, np.uint8).data, np.float64, offset=1, count=0).reshape(shape)
    assert out.flags.aligned and out.ctypes.data % 8
    return out


def test_an_empty_array_at_an_odd_address_is_read_as_empty(core_model):
    # Refused as "not aligned ... pass a copy" (X, target_score, a parameter) before: an
    # empty array is never read, but a view of it needs an aligned pointer (found by fuzzing).
    assert core_model.energy(_empty_at_odd_address((0, 2))).shape == (0,)
    assert core_model.score(_empty_at_odd_address((0, 2))).shape == (0, 2)
    for name, loss in LOSSES.items():
        with pytest.raises(ValueError, match=f"^{name.removesuffix('_and_grad')} of an empty"):
            loss(core_model, _empty_at_odd_address((0, 2)))
    with pytest.raises(ValueError, match="^esm_loss of an empty batch"):
        core_model.esm_loss_and_grad(np.zeros((0, 2)), _empty_at_odd_address((0, 2)))
    params = core_model.params()
    params[1] = _empty_at_odd_address((0,))
    for build in (
        lambda p: _core.Model.from_params(p, "softplus", "float64", 0.0),
        core_model.with_params,
    ):
        with pytest.raises(ValueError, match=r"^params\[1\] .*must have shape \(4,\)"):
            build(params)


def test_streams_have_one_chain_each():
    assert len(_core.Streams(7, 5)) == 5
    assert len(_core.Streams(7, 0, first_chain=3)) == 0


def test_an_error_raised_by_a_progress_callback_ends_sampling_with_it():
    class Stop(RuntimeError):
        pass

    def progress(done, total):
        raise Stop(f"at {done} of {total}")

    m = sm.EnergyMLP(2, hidden=(4,), seed=0)
    # Not taken for a Ctrl-C: no partial result, the callback's own exception.
    with pytest.raises(Stop, match=r"^at \d+ of 200$") as err:
        m.sample(3, n_steps=200, progress=progress)
    # Passed on untouched: only a KeyboardInterrupt carries the chains so far.
    assert not hasattr(err.value, "partial") and not hasattr(err.value, "result")


@pytest.mark.parametrize("n_params, n_grad", [(4, 3), (3, 4), (3, 3)])
def test_an_optimizer_step_needs_params_and_grad_of_its_length(n_params, n_grad):
    opt = _core.Optimizer("float64", 4, "sgd", 0.5, 0.0)
    params, grad = np.ones(n_params), np.ones(n_grad)
    with pytest.raises(ValueError) as err:
        opt.step(params, grad)
    assert str(err.value) == f"params and grad must hold 4 values, got {n_params} and {n_grad}"
    assert opt.steps == 0 and np.array_equal(params, np.ones(n_params))
    opt.step(np.ones(4), np.ones(4))
    assert opt.steps == 1


def test_an_optimizer_step_refuses_params_shared_with_grad():
    # rust-numpy's own "The given array is already borrowed" TypeError came first when grad
    # was params itself or a view of it.
    opt = _core.Optimizer("float64", 4, "sgd", 0.5, 0.0)
    params = np.ones(4)
    read_only = np.ones(4)
    read_only.flags.writeable = False
    for p, g in ((params, params), (params, params[::-1]), (read_only, np.ones(4))):
        with pytest.raises(ValueError) as err:
            opt.step(p, g)
        assert str(err.value) == "params must be writeable and not shared with grad"
    assert opt.steps == 0 and np.array_equal(params, np.ones(4))
