"""Long per-row calls and sampling runs go in blocks without the GIL, check for Ctrl-C between
blocks (sampling hands back the chains so far), and report bad rows by their index in the
whole batch; long losses and minibatches stop on Ctrl-C too."""

import os
import signal
import threading
import time

import numpy as np
import pytest
import scorematch as sm
from helpers import ctrl_c_every
from scorematch import EnergyMLP


def test_ctrl_c_interrupts_a_long_hessian_trace():
    m = EnergyMLP(64, hidden=(256, 256, 256), dtype="float32", seed=0)
    X = np.random.default_rng(0).normal(size=(20_000, 64)).astype(np.float32)  # seconds of work
    before, params = m.hessian_trace(X[:5]), m.params
    with ctrl_c_every(0.3), pytest.raises(KeyboardInterrupt):
        m.hessian_trace(X)
    # The model is still usable afterwards and gives the same values as before.
    np.testing.assert_array_equal(m.hessian_trace(X[:5]), before)
    for a, b in zip(m.params, params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_during_sampling_keeps_the_chains_so_far():
    m = EnergyMLP(2, hidden=(64, 64), alpha=1.0, seed=0)
    # A minute of work or more here, so that an interrupt that is never seen fails the test
    # instead of hanging it for an hour.
    with ctrl_c_every(0.3), pytest.raises(KeyboardInterrupt) as info:
        m.sample(4096, n_steps=50_000, step_size=0.01, thin=1000, return_trajectory=True)
    res, done = info.value.result, info.value.steps_done
    assert 0 < done < 50_000
    assert res.samples.shape == (4096, 2) and res.trajectory.shape == (done // 1000, 4096, 2)
    # Nothing lost: the chains are exactly those of a run of `done` steps.
    again = m.sample(4096, n_steps=done, step_size=0.01, thin=1000, return_trajectory=True)
    np.testing.assert_array_equal(res.samples, again.samples)
    np.testing.assert_array_equal(res.trajectory, again.trajectory)


@pytest.mark.parametrize("method", ["energy", "score", "hessian_trace"])
def test_a_bad_row_in_a_later_block_is_named_by_its_batch_index(method):
    # dim 20, widths 256: hessian_trace goes in GIL-free blocks of ~2**30 multiply-adds,
    # under a thousand rows here, so row 4000 is in a later block; energy and score use
    # larger blocks but must report the same row.
    m = EnergyMLP(20, hidden=(256, 256), dtype="float32", seed=1)
    X = np.random.default_rng(1).normal(size=(5000, 20))
    X[4000, 3] = np.nan
    X[4500, 0] = np.inf
    with pytest.raises(ValueError, match=r"row 4000\b"):
        getattr(m, method)(X)


def test_blocked_results_equal_row_by_row_results():
    m = EnergyMLP(20, hidden=(256, 256), dtype="float32", seed=2)  # several blocks
    X = np.random.default_rng(2).normal(size=(5000, 20))
    whole = m.hessian_trace(X)
    # Pieces of 7 rows are far below a block, so every block boundary, wherever the binding
    # puts it, falls inside a piece computed on its own.
    pieces = np.concatenate([m.hessian_trace(X[i : i + 7]) for i in range(0, len(X), 7)])
    np.testing.assert_array_equal(whole, pieces)


@pytest.mark.parametrize("objective", ["ism", "ssm", "dsm"])
def test_ctrl_c_interrupts_a_long_loss_and_gradient(objective, restore_threads):
    """A loss is one reduction over the whole batch, not cut into blocks: it runs on a helper
    thread while the caller watches for Ctrl-C, and stops within a fraction of a second."""
    m = EnergyMLP(2, hidden=(64, 64, 64), alpha=1.0, seed=0)
    # Uninterrupted, 10 s (DSM) to 30 s (SSM) here; stopped, under a second.
    X = np.random.default_rng(0).normal(size=(3_000_000, 2))
    call = {
        "ism": lambda X: m.ism_loss_and_grad(X),
        "ssm": lambda X: m.ssm_loss_and_grad(X, n_projections=8),
        "dsm": lambda X: m.dsm_loss_and_grad(X, 0.1),
    }[objective]
    with ctrl_c_every(0.3) as presses, pytest.raises(KeyboardInterrupt):
        call(X)
    assert presses.first is not None and time.perf_counter() - presses.first < 1.5
    # Past the size that takes the interruptible path (8000 rows of 33 500 multiply-adds),
    # results are still bit-identical for any thread count.
    small = X[:8000]
    sm.set_num_threads(1)
    one = call(small)
    sm.set_num_threads(2)
    two = call(small)
    assert one[0] == two[0]
    for a, b in zip(one[1], two[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_interrupts_a_long_minibatch():
    """fit checks for Ctrl-C between slices of minibatches, and now inside a long one: the
    model keeps the parameters of its last completed step (here: none, the initial ones)."""
    m = EnergyMLP(2, hidden=(64, 64, 64), seed=0)
    before = m.params
    # One step: ~9 s of work here (4.3 s per 1e6 rows); stopped, under a second.
    X = np.random.default_rng(1).normal(size=(2_000_000, 2))
    # The first press after fit's set-up (copying 2e6 rows), which a loaded machine slows.
    with ctrl_c_every(0.5, start=1.5) as presses:
        h = m.fit(X, epochs=3, batch_size=2_000_000, progress=False)
    assert presses.first is not None and time.perf_counter() - presses.first < 1.5
    assert h.stop_reason == "interrupted" and h.n_epochs == 0
    for a, b in zip(m.params, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_ctrl_c_interrupts_a_long_validation_loss():
    """The validation loss that ends an epoch is one long reduction too: Ctrl-C stops it,
    and the interrupted epoch is not recorded."""
    m = EnergyMLP(2, hidden=(64, 64, 64), seed=0)
    rng = np.random.default_rng(2)
    # The validation loss alone: 10 s here (3.3 s per 2e6 rows), against under a second
    # when it stops.
    X, X_val = rng.normal(size=(100, 2)), rng.normal(size=(6_000_000, 2))
    # The first press after fit's set-up (copying 6e6 rows), which a loaded machine slows.
    with ctrl_c_every(0.5, start=2.0) as presses:
        h = m.fit(X, epochs=3, validation=X_val, progress=False)
    assert presses.first is not None and time.perf_counter() - presses.first < 1.5
    assert h.stop_reason == "interrupted" and h.n_epochs == 0 and h.val_loss == []


def test_a_ctrl_c_in_the_block_where_a_chain_diverged_raises_both(monkeypatch, restore_threads):
    """With on_divergence="raise" no result may hold a diverged chain, and no Ctrl-C may be
    lost. A Ctrl-C that came during the block in which a chain diverged was checked first,
    and its result held the Inf chain; then, for a while, the divergence was raised and the
    Ctrl-C dropped (a loop retrying smaller step sizes ran on). Now the divergence is raised
    and the Ctrl-C follows it. ε = 4.2 at α = 1 multiplies x by -1.1 a step: the chain
    started at 3.3e38 overflows float32 at step 0, the others stay finite for ~900 steps."""
    zero = [np.zeros_like(p) for p in EnergyMLP(2, hidden=(64, 64), dtype="float32").params]
    m = EnergyMLP.from_params(zero, alpha=1.0, dtype="float32")
    x0 = np.ones((4096, 2), np.float32)
    x0[7, 0] = 3.3e38
    # One block for the whole run, on one thread (a second or more), so that the press lands
    # inside it whatever the machine.
    monkeypatch.setattr(sm.sampling, "_BLOCK_WORK", 1e18)
    sm.set_num_threads(1)
    presses = []

    def handler(signum, frame):
        presses.append(time.perf_counter())
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt) as info:
            try:
                m.sample(4096, n_steps=800, step_size=4.2, init=x0)
            except sm.SamplingDivergedError:
                # Python runs the handler of the Ctrl-C raised again at its next check: here
                # at the latest (a user's retry loop stops there too).
                for _ in range(100):
                    time.sleep(0.01)
        took = time.perf_counter() - start
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert took > 0.3, "the press did not land inside the run's block"
    # The one press, taken by the sampler, raised again after the divergence.
    assert len(presses) == 2
    assert not hasattr(info.value, "result")
    context = info.value.__context__
    assert isinstance(context, sm.SamplingDivergedError), repr(context)
    assert str(context).startswith("1 of 4096 chains diverged")
