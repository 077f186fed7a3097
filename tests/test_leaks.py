"""No entry point leaks what it is given or what it makes, on success or on error.

Reference counts are the main check, being exact: a call repeated ``REPEATS`` times must leave
``sys.getrefcount`` of every argument (arrays, callables, lists, file objects) as it found it,
and the number of objects the garbage collector tracks may not grow with the repeats. The
refcounts of the extension's own types are watched as well: every instance of a heap type
holds a reference to it, so a ``Model``, ``Trainer`` or exception that the binding kept
would show there even when no argument refers to it. Buffers made by numpy (outputs,
trajectories) are traced by ``tracemalloc``, so an output array leaked on an error path
shows as bytes that stay allocated. One test watches the resident set for memory that Rust
allocates (the trainer's copy of X, the sampler's state), which nothing else sees.

numpy's builtin dtypes are not watched: numpy 2.4 itself leaks a reference to float64's
descriptor on every ``np.zeros(n)`` without a dtype (a static object, so harmless), and that
count would depend on the numpy version.
"""

from __future__ import annotations

import gc
import io
import os
import sys
import tracemalloc
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scorematch as sm
from scorematch import EnergyMLP, _core, diagnostics

REPEATS = 50
# Objects whose refcounts the interpreter shares out (small ints, interned strings, None):
# not watched.
SHARED = (str, bytes, int, float, bool, type(None))
# Heap types of the extension: each live instance holds a reference to its type.
OWN_TYPES = (
    _core.Model,
    _core.Trainer,
    _core.Streams,
    _core.Optimizer,
    _core.SamplingDivergedError,
    _core.TrainingDivergedError,
)


def _call(call: Callable[..., Any], args: tuple, kwargs: dict, raises: Any) -> None:
    if raises is None:
        call(*args, **kwargs)
    else:
        with pytest.raises(raises):
            call(*args, **kwargs)


def assert_no_leak(
    call: Callable[..., Any],
    *args: Any,
    watch: tuple = (),
    raises: Any = None,
    repeats: int = REPEATS,
    **kwargs: Any,
) -> None:
    """Calls ``call(*args, **kwargs)`` ``repeats`` times (after a warm-up that fills caches:
    imports, the engine's workspaces) and checks that the refcounts of its arguments (those
    that are objects of their own: not numbers, strings or None), of ``watch`` and of the
    extension's types are unchanged, and that the objects the collector tracks did not grow
    by one per call. ``raises``: the exception every call must raise (an error path)."""
    for _ in range(3):
        _call(call, args, kwargs, raises)
    gc.collect()
    given = [a for a in (*args, *kwargs.values()) if not isinstance(a, SHARED)]
    objects = [*given, *watch, *OWN_TYPES]
    before = [sys.getrefcount(o) for o in objects]
    tracked = len(gc.get_objects())
    for _ in range(repeats):
        _call(call, args, kwargs, raises)
    gc.collect()
    after = [sys.getrefcount(o) for o in objects]
    grown = len(gc.get_objects()) - tracked
    changed = {
        _name(o, i): (b, a)
        for i, (o, b, a) in enumerate(zip(objects, before, after, strict=True))
        if a != b
    }
    assert not changed, f"refcounts changed over {repeats} calls (before, after): {changed}"
    # A leak of one tracked object per call grows this by `repeats`; caches filled on first
    # use and freed temporaries move it by a few.
    assert grown < repeats // 2, f"{grown} more objects tracked after {repeats} calls"


def _name(o: object, i: int) -> str:
    if isinstance(o, type):
        return o.__name__
    return f"argument {i} ({type(o).__name__})"


def _arrays(result: Any) -> list[np.ndarray]:
    """The arrays in a result: an array, a tuple or list of them, or a SampleResult."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _arrays(r)]
    if isinstance(result, sm.SampleResult):
        return [a for a in vars(result).values() if isinstance(a, np.ndarray)]
    return []


def assert_holds_none_of(result: Any, *inputs: np.ndarray) -> None:
    """No array of ``result`` is an input or a view whose ``.base`` chain reaches one: the
    result must not keep the caller's arrays alive (nor change with them)."""
    for a in _arrays(result):
        chain = [a]
        while isinstance(getattr(chain[-1], "base", None), np.ndarray):
            chain.append(chain[-1].base)
        for x in inputs:
            assert not any(c is x for c in chain), f"a result of shape {a.shape} holds an input"


@pytest.fixture(scope="module", autouse=True)
def frozen_heap():
    """Moves every object alive now out of the collector's sight for this module: each
    check collects twice, which otherwise walks the whole test session's heap (100k+
    objects, ~70 ms a collection). Objects made later are collected and counted as usual."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module", params=["float64", "float32"])
def setup(request):
    dtype = request.param
    rng = np.random.default_rng(0)
    model = EnergyMLP(2, hidden=(8, 8), dtype=dtype, seed=0)
    X = rng.normal(size=(20, 2)).astype(dtype)
    nan = X.copy()
    nan[3, 1] = np.nan
    return model, X, nan, rng.normal(size=(20, 2)).astype(dtype)


PER_ROW = ["energy", "score", "hessian_trace", "ism_loss", "ism_loss_and_grad"]


@pytest.mark.parametrize("method", PER_ROW)
def test_per_row_methods_and_ism_leak_nothing(setup, method):
    model, X, nan, _ = setup
    f = getattr(model, method)
    big = np.repeat(X, 150, axis=0)  # released-GIL blocks, not the small held-GIL path
    as_list = X.tolist()
    other = X.astype(np.float32 if X.dtype == np.float64 else np.float64)
    fortran = np.asfortranarray(X)
    for arg in (X, big, as_list, other, fortran):
        assert_no_leak(f, arg, watch=(model,))
    wrong_width = np.ones((4, 3), X.dtype)
    for arg, error in [
        (nan, ValueError),
        (wrong_width, ValueError),
        (X.astype(np.int64), TypeError),
        (X.astype(complex), TypeError),
        ("rows", (TypeError, ValueError)),
    ]:
        assert_no_leak(f, arg, watch=(model,), raises=error)


def test_objectives_with_targets_and_row_keys_leak_nothing(setup):
    model, X, nan, T = setup
    keys = np.arange(20, dtype=np.uint64)
    int_keys = np.arange(20)
    esm = model.esm_loss_and_grad
    assert_no_leak(esm, X, T, watch=(model,))
    assert_no_leak(esm, X, T.tolist())
    assert_no_leak(esm, X, nan, raises=ValueError)
    assert_no_leak(esm, nan, T, raises=ValueError)
    assert_no_leak(esm, X, T[:5], watch=(T,), raises=ValueError)
    ssm = model.ssm_loss_and_grad
    dsm = model.dsm_loss_and_grad
    for k in (None, keys, int_keys):
        assert_no_leak(ssm, X, n_projections=2, seed=1, row_keys=k, watch=(model,))
        assert_no_leak(dsm, X, noise_std=0.1, seed=1, row_keys=k, watch=(model,))
    for k in (keys[:5], -int_keys - 1, keys.astype(np.float64)):
        error = TypeError if k.dtype.kind == "f" else ValueError
        assert_no_leak(ssm, X, n_projections=2, seed=1, row_keys=k, raises=error)
        assert_no_leak(dsm, X, noise_std=0.1, seed=1, row_keys=k, raises=error)
    assert_no_leak(dsm, nan, noise_std=0.1, seed=1, row_keys=keys, raises=ValueError)


def test_set_params_and_from_params_leak_nothing(setup):
    model, *_ = setup
    dtype = model.dtype.name
    params = model.params
    as_lists = [p.tolist() for p in params]
    with_nan = [p.copy() for p in params]
    with_nan[0][0, 0] = np.nan
    wrong_shape = [np.zeros((3, 2), dtype), *params[1:]]
    for ps, error in [
        (params, None),
        (as_lists, None),
        (params[:-1], ValueError),
        (with_nan, ValueError),
        (wrong_shape, ValueError),
        ([p.astype(complex) for p in params], TypeError),
    ]:
        assert_no_leak(model.set_params, ps, watch=(*ps, model), raises=error)
        assert_no_leak(EnergyMLP.from_params, ps, dtype=dtype, watch=tuple(ps), raises=error)


def _stop(epoch, train, val):
    return False


def _raise_in_callback(epoch, train, val):
    raise RuntimeError("from the callback")


def _interrupt_in_callback(epoch, train, val):
    raise KeyboardInterrupt


def test_fit_leaks_nothing(setup):
    model, X, nan, T = setup
    X_val = X[:8].copy()
    wide = np.ones((8, 3), X.dtype)
    cases: list[tuple[dict[str, Any], Any]] = [
        ({}, None),
        ({"validation": 0.25}, None),
        ({"validation": X_val}, None),
        ({"validation": X_val.tolist()}, None),
        ({"callback": _stop}, None),
        ({"callback": _interrupt_in_callback}, None),  # fit stops and returns
        ({"objective": "esm", "target_score": T, "validation": (X_val, X_val)}, None),
        ({"objective": "dsm", "noise_std": 0.1}, None),
        ({"standardize": True, "validation": X_val}, None),
        ({"validation": nan}, ValueError),
        ({"validation": wide}, ValueError),
        ({"objective": "esm", "target_score": wide}, ValueError),
        ({"callback": _raise_in_callback}, RuntimeError),
        ({"lr": 1e30, "optimizer": "sgd"}, sm.TrainingDivergedError),
    ]
    for options, error in cases:
        assert_no_leak(
            model.fit,
            X,
            epochs=2,
            batch_size=8,
            progress=False,
            watch=(model,),
            raises=error,
            repeats=20,
            **options,
        )
    assert_no_leak(model.fit, nan, epochs=2, progress=False, raises=ValueError, repeats=20)


def _raise_in_progress(done, total):
    raise RuntimeError("from progress")


def _interrupt_in_progress(done, total):
    raise KeyboardInterrupt


def test_sample_leaks_nothing(setup):
    model, X, nan, _ = setup
    init = X[:4].copy()
    cases: list[tuple[dict[str, Any], Any]] = [
        ({}, None),
        ({"init": init}, None),
        ({"init": init.tolist()}, None),
        ({"return_trajectory": True, "method": "mala", "init": init}, None),
        ({"method": "annealed", "temperatures": [3.0, 1.0]}, None),
        ({"progress": lambda done, total: None}, None),
        ({"init": nan[:4]}, ValueError),
        ({"init": X[:3]}, ValueError),
        ({"progress": _raise_in_progress}, RuntimeError),
        # The chains so far ride on the exception; the exception is dropped each time.
        ({"progress": _interrupt_in_progress, "return_trajectory": True}, KeyboardInterrupt),
    ]
    for options, error in cases:
        sample = model.sample
        assert_no_leak(sample, 4, n_steps=20, watch=(model,), raises=error, repeats=20, **options)
    # The confining term makes every chain overflow at this step size: x grows by ~1e30 a step.
    confined = EnergyMLP(2, hidden=(8, 8), alpha=1.0, dtype=model.dtype, seed=0)
    for on_divergence, error in (("mask", None), ("raise", sm.SamplingDivergedError)):
        assert_no_leak(
            confined.sample,
            4,
            n_steps=20,
            step_size=1e30,
            init=init,
            on_divergence=on_divergence,
            watch=(confined,),
            raises=error,
            repeats=20,
        )


def _minus(x):
    return -x


def _half_square(x):
    return 0.5 * (x * x).sum(axis=1)


def _raising(x):
    raise RuntimeError("from score_fn")


def _wrong_shape(x):
    return np.zeros((1, 1))


def _nan_score(x):
    return np.full_like(x, np.nan)


class _InterruptAfter:
    """A score function that presses Ctrl-C on its ``n``-th call (counting anew each run)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, x):
        self.calls += 1
        if self.calls % self.n == 0:
            raise KeyboardInterrupt
        return -x


def test_langevin_leaks_nothing():
    x0 = np.random.default_rng(1).normal(size=(4, 2))
    x0_list = x0.tolist()
    interrupt = _InterruptAfter(5)
    cases: list[tuple[Any, Any, dict[str, Any], Any]] = [
        (_minus, x0, {}, None),
        (_minus, x0_list, {"return_trajectory": True}, None),
        (_minus, x0.astype(np.float32), {}, None),
        (_minus, x0, {"method": "mala", "energy_fn": _half_square}, None),
        (_nan_score, x0, {"on_divergence": "mask"}, None),
        (_raising, x0, {}, RuntimeError),
        (_wrong_shape, x0, {}, ValueError),
        (_nan_score, x0, {}, sm.SamplingDivergedError),
        (_minus, x0, {"method": "mala", "energy_fn": _raising}, RuntimeError),
        (interrupt, x0, {"return_trajectory": True}, KeyboardInterrupt),
        (_minus, np.full((4, 2), np.nan), {}, ValueError),
    ]
    for score_fn, start, options, error in cases:
        assert_no_leak(sm.langevin, score_fn, start, 10, 0.1, raises=error, **options)


def test_diagnostics_leak_nothing():
    rng = np.random.default_rng(2)
    trajectory = rng.normal(size=(50, 4, 2))
    with_nan = trajectory.copy()
    with_nan[0, 0, 0] = np.nan
    as_list = trajectory.tolist()
    for f in (diagnostics.split_rhat, diagnostics.ess, diagnostics.mcse):
        assert_no_leak(f, trajectory)
        assert_no_leak(f, as_list)
        assert_no_leak(f, with_nan, raises=ValueError)
        assert_no_leak(f, trajectory[:1], watch=(trajectory,), raises=ValueError)
    assert_no_leak(diagnostics.acceptance_summary, rng.uniform(size=4))


def test_save_and_load_leak_nothing_and_keep_no_file_object(tmp_path):
    model = EnergyMLP(2, hidden=(8,), seed=0)
    out = io.BytesIO()
    assert_no_leak(model.save, out, watch=(model,))
    saved = io.BytesIO()
    model.save(saved)

    def load_again(f):
        f.seek(0)
        return sm.load(f)

    assert_no_leak(load_again, saved)
    assert_no_leak(load_again, io.BytesIO(b"PK\x03\x04 not an archive"), raises=ValueError)
    closed = io.BytesIO()
    closed.close()
    assert_no_leak(model.save, closed, raises=ValueError)
    assert_no_leak(sm.load, closed, raises=ValueError)
    path = tmp_path / "m.npz"
    assert_no_leak(model.save, path)
    assert_no_leak(sm.load, path)
    with open(path, "rb") as f:
        assert_no_leak(load_again, f)
    # The model does not hold on to the file object it was read from.
    source = io.BytesIO(saved.getvalue())
    held = weakref.ref(source)
    loaded = sm.load(source)
    del source
    gc.collect()
    assert held() is None and loaded.dim == 2


def test_estimator_leaks_nothing():
    pytest.importorskip("sklearn")
    from scorematch.sklearn import ScoreMatchingDensity

    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 2))
    nan = X.copy()
    nan[0, 0] = np.nan
    est = ScoreMatchingDensity(hidden=(8,), epochs=2, n_steps=5, burn_in=5, random_state=0)
    assert_no_leak(est.fit, X, watch=(est,), repeats=20)
    for method in ("score_samples", "score", "score_field"):
        f = getattr(est, method)
        assert_no_leak(f, X, watch=(est,))
        assert_no_leak(f, nan, watch=(est,), raises=ValueError)
        assert_no_leak(f, X[:, :1], watch=(X, est), raises=ValueError)
    assert_no_leak(est.sample, 3, random_state=0, watch=(est,), repeats=20)
    assert_no_leak(est.fit, nan, watch=(est,), raises=ValueError, repeats=20)
    # Nor does a fitted estimator hold on to its training data.
    fresh = rng.normal(size=(40, 2))
    held = weakref.ref(fresh)
    ScoreMatchingDensity(hidden=(8,), epochs=2, random_state=0).fit(fresh)
    del fresh
    gc.collect()
    assert held() is None, "ScoreMatchingDensity.fit kept X alive"


def test_results_hold_no_input(setup):
    model, X, _, T = setup
    for method in PER_ROW[:3] + ["ism_loss_and_grad"]:
        assert_holds_none_of(getattr(model, method)(X), X)
    assert_holds_none_of(model.esm_loss_and_grad(X, T), X, T)
    params = model.params
    assert_holds_none_of(EnergyMLP.from_params(params, dtype=model.dtype).params, *params)
    init = X[:4].copy()
    assert_holds_none_of(model.sample(4, n_steps=5, init=init, return_trajectory=True), init)
    x0 = init.astype(np.float64)
    assert_holds_none_of(sm.langevin(_minus, x0, 5, 0.1, return_trajectory=True), x0)


def test_fit_keeps_no_reference_to_the_data():
    model = EnergyMLP(2, hidden=(8,), seed=0)
    rng = np.random.default_rng(4)
    for options in ({}, {"validation": 0.25, "standardize": True}, {"callback": _stop}):
        X = rng.normal(size=(40, 2))
        held = weakref.ref(X)
        model.fit(X, epochs=2, batch_size=8, progress=False, **options)
        del X
        gc.collect()
        assert held() is None, f"fit({options}) kept X alive"


def test_error_paths_release_their_borrows():
    """The binding borrows arrays through rust-numpy's borrow tracking; a borrow left behind
    by an error path would make every later writable borrow of that memory fail. The
    optimizer's step borrows its parameter vector writable: run the error paths on views of
    that vector, then step."""
    model = EnergyMLP(2, hidden=(8,), seed=0)
    flat = np.zeros(400)
    X = flat.reshape(200, 2)
    X[7, 1] = np.nan
    for f in (model.ism_loss, model.ism_loss_and_grad, model.energy, model.score):
        with pytest.raises(ValueError):
            f(X)
    with pytest.raises(ValueError):
        model.dsm_loss_and_grad(X, noise_std=0.1, seed=0)
    with pytest.raises(ValueError):
        model.sample(200, n_steps=2, init=X)
    with pytest.raises(ValueError):
        model.fit(X, epochs=1, progress=False)
    opt = _core.Optimizer("float64", flat.size, "sgd", 0.5, 0.0)
    opt.step(flat, np.ones_like(flat))  # raises "already borrowed" if a borrow was kept
    assert flat[0] == -0.5


def _traced_growth(call: Callable[..., Any], *args: Any, raises: Any, **kwargs: Any) -> int:
    """Bytes still allocated (numpy's buffers included) after 20 calls."""
    for _ in range(3):
        _call(call, args, kwargs, raises)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            _call(call, args, kwargs, raises)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_outputs_made_before_an_error_are_freed():
    """Per-row methods make their output before the engine meets a NaN row; sampling makes
    its outputs and trajectory before a progress callback raises. numpy reports its buffers
    to tracemalloc, so an output dropped on the floor stays in the count: 20 calls of a
    128 KiB output would leave 2.5 MiB; what Python keeps between calls is a few KiB."""
    model = EnergyMLP(2, hidden=(8,), seed=0)
    X = np.random.default_rng(5).normal(size=(16_384, 2))
    X[-1, 0] = np.nan  # the last row: the output is complete when the error is found
    for f in (model.energy, model.score, model.hessian_trace):
        grown = _traced_growth(f, X, raises=ValueError)
        assert grown < 256 * 1024, f"{f.__name__}: {grown} bytes still allocated"
    grown = _traced_growth(
        model.sample,
        4096,
        n_steps=8,
        return_trajectory=True,
        progress=_interrupt_in_progress,
        raises=KeyboardInterrupt,
    )
    assert grown < 256 * 1024, f"sample: {grown} bytes still allocated"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_rust_allocations_are_freed_on_success_and_error():
    """What Rust allocates is invisible to refcounts and tracemalloc: the trainer's copy of
    X (1 MiB here) and the sampler's state (~1.4 MiB for 4096 chains, its random streams
    above all). 100 fits and 100 runs, half of them on error paths, would leak 100 MiB or
    more if either were kept. The bound, 32 MiB, is far above what the allocator holds on to
    from one call to the next (at most the peak of one call, a few MiB; measured: under
    1 MiB) and far below a leak."""
    model = EnergyMLP(2, hidden=(4,), seed=0)
    X = np.random.default_rng(6).normal(size=(65_536, 2))

    def fit_ok():
        model.fit(X, epochs=1, batch_size=65_536, progress=False)

    def fit_error():  # X is copied into the trainer before the callback raises
        with pytest.raises(RuntimeError):
            model.fit(X, epochs=1, batch_size=65_536, progress=False, callback=_raise_in_callback)

    def sample_ok():
        model.sample(4096, n_steps=1)

    def sample_error():
        with pytest.raises(RuntimeError):
            model.sample(4096, n_steps=1, progress=_raise_in_progress)

    steps = (fit_ok, fit_error, sample_ok, sample_error)
    for step in steps:
        step()
    gc.collect()
    before = _rss()
    for _ in range(50):
        for step in steps:
            step()
    gc.collect()
    grown = (_rss() - before) / 2**20
    assert grown < 32, f"resident memory grew by {grown:.0f} MiB over 200 calls"
