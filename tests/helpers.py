"""Small helpers shared by the test modules."""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
import time
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


def same_arrays(xs, ys) -> bool:
    """Whether two sequences of arrays (parameter or gradient lists) have the same length and
    equal arrays in order: bit for bit, the check of every determinism test."""
    xs, ys = list(xs), list(ys)
    return len(xs) == len(ys) and all(np.array_equal(x, y) for x, y in zip(xs, ys, strict=True))


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


class Presses:
    """What :func:`ctrl_c_every` did: ``first``, the ``time.perf_counter()`` of its first
    press (``None`` before it)."""

    first: float | None = None


@contextlib.contextmanager
def ctrl_c_every(delay: float, start: float | None = None, grace: float = 3.0) -> Iterator[Presses]:
    """Presses Ctrl-C (``_thread.interrupt_main``) ``start`` seconds into the block (default
    ``delay``) and again every ``delay`` seconds until the block ends. Each press raises
    ``KeyboardInterrupt``, except those handled within ``grace`` seconds of the last one
    raised, which are ignored.

    Why a handler of our own: a shell starts background jobs (``cmd &``, ``nohup``) with SIGINT
    ignored, Python then installs no handler, and ``interrupt_main`` does nothing; a test
    waiting on it ran its 10**6-step sampling run to the end (an hour). Why repeated presses: a
    press that lands while the main thread runs a finalizer is dropped by CPython ("Exception
    ignored"). Why the grace: a press that lands while the first one's ``KeyboardInterrupt``
    is still on its way out (through ``pytest.raises``, or ``fit``'s own handler) would raise a
    second one there, which failed CI runs on a loaded machine. Presses still pending when the
    block ends are ignored too. Tests time the stop from ``Presses.first``, not from the
    block's start, which a loaded machine can delay."""
    presses = Presses()
    last_raised = [-float("inf")]
    closing = threading.Event()

    def handler(signum: int, frame: object) -> None:
        now = time.monotonic()
        if closing.is_set() or now - last_raised[0] < grace:
            return
        last_raised[0] = now
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    stop = threading.Event()

    def press() -> None:
        wait = delay if start is None else start
        while not stop.wait(wait):
            if presses.first is None:
                presses.first = time.perf_counter()
            _thread.interrupt_main()
            wait = delay

    presser = threading.Thread(target=press, daemon=True)
    presser.start()
    try:
        yield presses
    finally:
        closing.set()
        stop.set()
        presser.join()
        for _ in range(3):  # bytecode, where a pending press reaches the handler
            pass
        signal.signal(signal.SIGINT, previous)
