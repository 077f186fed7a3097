"""Small helpers shared by the test modules."""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Iterator

import numpy as np
import reference as ref
from scorematch import EnergyMLP


def make_model(dim, hidden, activation="softplus", alpha=0.0, dtype="float64", seed=0, scale=1.0):
    """A model with reference-scale random parameters, and those parameters as float64 arrays
    rounded to the model's dtype (so the reference sees exactly the model's numbers)."""
    rng = np.random.default_rng(seed)
    params = ref.random_params(rng, dim, hidden, scale)
    model = EnergyMLP.from_params(params, activation=activation, alpha=alpha, dtype=dtype)
    exact = [p.astype(np.float64) for p in model.params]
    return model, exact


def assert_close(actual, expected, rtol, what=""):
    """|actual - expected| <= rtol * max(1, max |expected|), elementwise: an error relative to
    the scale of the whole output (values O(1) by construction)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.all(np.isfinite(actual)), what
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    err = float(np.max(np.abs(actual - expected), initial=0.0))
    assert err <= rtol * scale, f"{what}: max error {err:.3e} > {rtol:.1e} * scale {scale:.3e}"


@contextlib.contextmanager
def ctrl_c_every(delay: float) -> Iterator[None]:
    """Presses Ctrl-C (``_thread.interrupt_main``) ``delay`` seconds into the block and again
    every ``delay`` seconds until the block ends, with Python's own SIGINT handler installed.

    The handler: a shell starts background jobs (``cmd &``, ``nohup``) with SIGINT ignored,
    Python then installs no handler, and ``interrupt_main`` does nothing; a test waiting on it
    ran its 10**6-step sampling run to the end (an hour). The repeated presses: a press that
    lands while the main thread runs a finalizer is dropped by CPython ("Exception ignored").
    A press still pending when the block ends is absorbed here, not raised in the test's
    next statement."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = threading.Event()

    def press() -> None:
        while not stop.wait(delay):
            _thread.interrupt_main()

    presser = threading.Thread(target=press, daemon=True)
    presser.start()
    try:
        yield
    finally:
        stop.set()
        while True:
            try:
                presser.join()
                for _ in range(3):  # bytecode, where a pending press is raised
                    pass
                break
            except KeyboardInterrupt:
                continue
        signal.signal(signal.SIGINT, previous)
