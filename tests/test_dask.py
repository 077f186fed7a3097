"""scorematch.dask: distributed scoring, sampling and training, on the threaded scheduler and
on a 2-worker LocalCluster (processes, loopback), against the single-machine results."""

from __future__ import annotations

import inspect
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import pytest
from helpers import same_arrays

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import scorematch as sm
import scorematch.dask as smd


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    )
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(params=["threads", "cluster"])
def scheduler(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "threads":
        with dask.config.set(scheduler="threads"):
            yield "threads"
    else:
        c = request.getfixturevalue("client")
        # By name, resolved to the current client: a Client object in dask's config is
        # pickled with it when a nanny restarts a worker, which distributed < 2026.7 cannot do
        # (the restart fails and LocalCluster.close() then hangs).
        with c.as_current(), dask.config.set(scheduler="dask.distributed"):
            yield "cluster"


def model(dtype: str = "float64", dim: int = 3, seed: int = 1) -> sm.EnergyMLP:
    return sm.EnergyMLP(dim, hidden=(16, 16), activation="silu", alpha=0.5, dtype=dtype, seed=seed)


def data(n: int = 1000, dim: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


VAL = data(50, seed=5)  # validation rows of test_fit_diverges_where_the_local_fit_does


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_energy_score_trace_equal_the_local_ones(scheduler: str, dtype: str) -> None:
    m, X = model(dtype), data(1000)
    dX = da.from_array(X, chunks=(300, 3))
    for name in ("energy", "score", "hessian_trace"):
        got = getattr(smd, name)(m, dX)
        assert got.dtype == np.dtype(dtype)
        assert got.chunks[0] == dX.chunks[0]
        want = getattr(m, name)(X)
        # Bit-identical: a row's result does not depend on the batch it is in.
        np.testing.assert_array_equal(got.compute(), want, err_msg=name)


def test_the_model_enters_the_graph_once() -> None:
    m = model()
    dX = da.from_array(data(2000), chunks=(100, 3))
    graph = dict(smd.score(m, dX).__dask_graph__())
    # 20 blocks, one model node: a cluster sends it to each worker once. A node holds the
    # model when its repr shows the model's own (the blocks' tasks name its key only).
    holding = [k for k, v in graph.items() if repr(m) in repr(v)]
    assert len(graph) > 20 and len(holding) == 1, holding


def test_graphs_of_one_model_share_its_node() -> None:
    # The model node is keyed by the model's contents: arrays built twice from equal models
    # and the same data are one array (one key), which Dask computes and caches once.
    m = model()
    dX = da.from_array(data(200), chunks=50)
    assert smd.energy(m, dX).name == smd.energy(m, dX).name == smd.energy(model(), dX).name
    assert smd.sample(m, 10, n_steps=2).name == smd.sample(m, 10, n_steps=2).name


def test_column_chunks_are_merged_and_bad_shapes_are_refused() -> None:
    m, X = model(), data(200)
    dX = da.from_array(X, chunks=(50, 1))
    np.testing.assert_array_equal(smd.energy(m, dX).compute(), m.energy(X))
    with pytest.raises(ValueError, match=r"shape \(n, 3\).*got \(200, 2\)"):
        smd.score(m, da.from_array(X[:, :2]))
    with pytest.raises(TypeError, match="EnergyMLP"):
        smd.score(object(), dX)  # type: ignore[arg-type]
    # The in-memory methods' messages, word for word.
    for bad in (X[:, :2], X[0], X[None]):
        with pytest.raises(ValueError) as dask_err:
            smd.energy(m, da.from_array(bad))
        with pytest.raises(ValueError) as local_err:
            m.energy(bad)
        assert str(dask_err.value) == str(local_err.value)
    # Integer arrays are refused as by the in-memory methods, with the same messages; lists of
    # ints are converted.
    for dtype in (np.int64, np.complex128, bool):
        bad = np.ones((4, 3), dtype=dtype)
        with pytest.raises(TypeError, match="array of floats") as dask_err:
            smd.energy(m, da.from_array(bad))
        with pytest.raises(TypeError, match="array of floats") as local_err:
            m.energy(bad)
        assert str(dask_err.value) == str(local_err.value)
    ints = [[1, 2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(smd.energy(m, ints).compute(), m.energy(ints))
    # A row count Dask does not know yet (boolean indexing, a DataFrame's partitions) reads
    # "?", not "nan".
    unknown = dX[dX[:, 0] > -np.inf][:, :2]
    assert np.isnan(unknown.shape[0])
    for f in (smd.energy, smd.score, smd.hessian_trace):
        with pytest.raises(ValueError, match=r"shape \(n, 3\) for this model, got \(\?, 2\)$"):
            f(m, unknown)
    with pytest.raises(ValueError, match=r"init must have shape \(n, 3\).*got \(\?, 2\)$"):
        smd.sample(m, 200, init=unknown, n_steps=1)
    with pytest.raises(ValueError, match=r"got an array of shape \(\?,\); for a single"):
        smd.energy(m, unknown[:, 0])


@pytest.mark.parametrize("chunks", [(50, 2), (200, 2), (50, 1)])
def test_score_and_trace_merge_column_chunks_and_keep_row_chunks(chunks: tuple[int, int]) -> None:
    # Unlike the energy (whose map_blocks drops the column axis, merging its chunks), the score
    # keeps that axis: its column chunks must be merged before a block reaches the engine.
    m, X = model(), data(200)
    dX = da.from_array(X, chunks=chunks)
    for name in ("score", "hessian_trace"):
        got = getattr(smd, name)(m, dX)
        assert got.chunks[0] == dX.chunks[0], name
        np.testing.assert_array_equal(got.compute(scheduler="threads"), getattr(m, name)(X))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "ula", "n_steps": 30, "step_size": 0.05},
        {"method": "mala", "n_steps": 20, "step_size": 0.2, "burn_in": 10, "adapt_step_size": True},
        {"method": "annealed", "temperatures": [3.0, 1.0], "n_steps": 20, "step_size": 0.05},
    ],
)
def test_sample_equals_the_local_sample(scheduler: str, kwargs: dict[str, Any]) -> None:
    m = model()
    got = smd.sample(m, 700, chunks=256, seed=5, **kwargs)
    assert got.chunks == ((256, 256, 188), (3,))
    want = m.sample(700, seed=5, **kwargs).samples
    np.testing.assert_array_equal(got.compute(), want)


def test_sample_from_given_points_and_bad_options() -> None:
    m = model()
    x0 = data(300, seed=9)
    got = smd.sample(m, 300, chunks=128, init=da.from_array(x0, chunks=100), n_steps=10)
    want = m.sample(300, init=x0, n_steps=10).samples
    np.testing.assert_array_equal(got.compute(), want)
    with pytest.raises(TypeError, match="return_trajectory"):
        smd.sample(m, 10, return_trajectory=True)
    with pytest.raises(ValueError, match="step_size"):
        smd.sample(m, 10, step_size=-1.0)
    with pytest.raises(ValueError, match=r"init must have shape \(10, 3\)"):
        smd.sample(m, 10, init=x0)


def test_a_range_of_chains_is_a_block_of_the_whole_run() -> None:
    m = model()
    whole = m.sample(500, seed=3, n_steps=15, method="mala", step_size=0.1)
    part = m.sample(200, seed=3, n_steps=15, method="mala", step_size=0.1, first_chain=123)
    np.testing.assert_array_equal(part.samples, whole.samples[123:323])
    np.testing.assert_array_equal(part.chain_indices, np.arange(123, 323))
    with pytest.raises(ValueError, match="first_chain"):
        m.sample(2, first_chain=-1)


def test_row_keys_reproduce_the_whole_batch_from_its_parts() -> None:
    m, X = model(), data(400)
    idx = np.random.default_rng(1).permutation(400)
    a, b = np.sort(idx[:150]), np.sort(idx[150:])
    for name, args in [("ssm_loss_and_grad", (2, 7)), ("dsm_loss_and_grad", (0.2, 7))]:
        f = getattr(m, name)
        loss, grads = f(X, *args)
        la, ga = f(X[a], *args, row_keys=a)
        lb, gb = f(X[b], *args, row_keys=b)
        assert (150 * la + 250 * lb) / 400 == pytest.approx(loss, rel=1e-12)
        for g, x, y in zip(grads, ga, gb, strict=True):
            np.testing.assert_allclose((150 * x + 250 * y) / 400, g, rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match=r"row_keys must have shape \(150,\)"):
        m.dsm_loss_and_grad(X[a], 0.2, row_keys=b)
    with pytest.raises(ValueError, match="row_keys must be >= 0"):
        m.dsm_loss_and_grad(X[:2], 0.2, row_keys=[0, -1])
    with pytest.raises(TypeError, match="row_keys must be an array of integers"):
        m.ssm_loss_and_grad(X[:2], row_keys=[0.5, 1.0])


FIT = {"epochs": 2, "batch_size": 128, "lr": 1e-2}
OBJECTIVES = [("ism", {}), ("ssm", {"n_projections": 2}), ("dsm", {"noise_std": 0.1})]


def rel_diff(a: sm.EnergyMLP, b: sm.EnergyMLP) -> float:
    return max(
        float(np.max(np.abs(p - q)) / np.max(np.abs(q)))
        for p, q in zip(a.params, b.params, strict=True)
    )


@pytest.mark.parametrize("objective, extra", OBJECTIVES)
def test_fit_matches_the_local_fit(scheduler: str, objective: str, extra: dict[str, Any]) -> None:
    X = data(1000)
    ours, local = model(), model()
    h = smd.fit(ours, da.from_array(X, chunks=(300, 3)), objective=objective, **FIT, **extra)
    hl = local.fit(X, objective=objective, validation=None, progress=False, **FIT, **extra)
    # Same rows, same random objective, same optimizer: only the order of the sums
    # differs, by a few ulp per step (measured ~1e-15 after 16 steps).
    assert rel_diff(ours, local) < 1e-9
    np.testing.assert_allclose(h.train_loss, hl.train_loss, rtol=1e-9)
    assert h.best_epoch == hl.best_epoch and h.stop_reason == "completed"
    assert rel_diff(ours, model()) > 1e-3  # it did train


def test_fit_standardizes_as_the_local_fit(scheduler: str) -> None:
    # Data at scale 1e3 around 5e3, which the default lr does not suit unstandardized;
    # standardized, both fits take the same steps on z = (x - mean) / std and fold the map
    # into the first layer. The statistics come from Dask's sums: a few ulp from numpy's.
    X = 5e3 + 1e3 * data(600)
    X_val = 5e3 + 1e3 * data(200, seed=4)

    def fresh() -> sm.EnergyMLP:
        return sm.EnergyMLP(3, hidden=(16, 16), activation="silu", alpha=0.0, seed=1)

    ours, local = fresh(), fresh()
    args: dict[str, Any] = {**FIT, "standardize": True}
    h = smd.fit(ours, da.from_array(X, chunks=(250, 3)), validation=X_val, **args)
    hl = local.fit(X, validation=X_val, progress=False, **args)
    assert rel_diff(ours, local) < 1e-9
    np.testing.assert_allclose(h.val_loss, hl.val_loss, rtol=1e-9)
    np.testing.assert_allclose(ours.score(X[:50]), local.score(X[:50]), rtol=1e-8, atol=1e-15)
    assert rel_diff(ours, fresh()) > 1e-3
    with pytest.raises(ValueError, match="standardize=True needs alpha == 0"):
        smd.fit(model(), da.from_array(X, chunks=250), standardize=True)
    with pytest.raises(TypeError, match="standardize must be a bool, got str"):
        smd.fit(fresh(), da.from_array(X, chunks=250), standardize="yes")


def test_fit_continues_a_fitted_model_as_the_local_fit() -> None:
    # standardize=True converts a model that is not fresh to standardized coordinates, as
    # EnergyMLP.fit does, so a second fit continues from the fitted model.
    X = 5e3 + 1e3 * data(600)
    ours = sm.EnergyMLP(3, hidden=(16,), activation="silu", seed=1)
    ours.fit(X, epochs=2, standardize=True, validation=None, progress=False)
    local = sm.EnergyMLP.from_params(ours.params, activation="silu")
    args: dict[str, Any] = {**FIT, "standardize": True}
    smd.fit(ours, da.from_array(X, chunks=(250, 3)), **args)
    local.fit(X, validation=None, progress=False, **args)
    assert rel_diff(ours, local) < 1e-9
    before = ours.energy(X[:50])
    smd.fit(ours, da.from_array(X, chunks=(250, 3)), **{**args, "lr": 1e-300, "optimizer": "sgd"})
    np.testing.assert_allclose(ours.energy(X[:50]), before, rtol=1e-12)


def test_fit_that_makes_no_update_leaves_the_model_as_it_was() -> None:
    # As EnergyMLP.fit: a divergence before the first update keeps the model's handle (its
    # parameters exactly, a fresh model fresh), where it swapped in a copy.
    m = sm.EnergyMLP(3, hidden=(8,), alpha=1.0, dtype="float32", seed=1)
    handle = m._m
    with pytest.raises(sm.TrainingDivergedError, match="epoch 0, step 0"):
        smd.fit(m, da.from_array(1e20 * data(200), chunks=100), epochs=1)
    assert m._m is handle and m._is_initial()


def test_fit_names_a_row_whose_standardized_values_overflow() -> None:
    # A finite validation row far from the training rows (spread 1e-3) overflows float32 in
    # z = (x - mean) / std. It was "X contains NaN or Inf (first at row 2)", with a numpy
    # overflow warning: the wrong array, a row number within its block, and not NaN or Inf.
    X = 1e-3 * data(300)
    V = 1e-3 * data(40, seed=4)
    V[27, 1] = 1e36
    m = sm.EnergyMLP(3, hidden=(8,), dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as info:
            smd.fit(
                m,
                da.from_array(X, chunks=100),
                validation=da.from_array(V, chunks=10),
                epochs=1,
                standardize=True,
            )
    assert str(info.value) == (
        "standardize=True: row 27 of validation lies too far from the training rows' mean for "
        "a float32 model: its standardized coordinates (x - mean) / std overflow; rescale "
        "validation or drop that row (blocks are checked as they run: an earlier block of "
        "validation may hold such a row too)"
    )


@pytest.mark.parametrize("objective, extra", OBJECTIVES[1:])
def test_random_objectives_draw_the_local_fits_validation_noise(
    objective: str, extra: dict[str, Any]
) -> None:
    # The validation loss of SSM and DSM is random: it must use the local fit's own seed
    # for it (Schedule::validation_seed), not a seed of its own, to report the same losses.
    X, X_val = data(600), data(200, seed=4)
    ours, local = model(), model()
    h = smd.fit(
        ours,
        da.from_array(X, chunks=(250, 3)),
        objective=objective,
        validation=X_val,
        **FIT,
        **extra,
    )
    hl = local.fit(X, objective=objective, validation=X_val, progress=False, **FIT, **extra)
    np.testing.assert_allclose(h.val_loss, hl.val_loss, rtol=1e-9)


def test_fit_float32_and_validation_restore_the_best_epoch() -> None:
    X, X_val = data(600), data(200, seed=4)
    ours, local = model("float32"), model("float32")
    args: dict[str, Any] = {"epochs": 4, "batch_size": 100, "lr": 3e-2, "optimizer": "sgd"}
    h = smd.fit(ours, da.from_array(X, chunks=(250, 3)), validation=X_val, **args)
    hl = local.fit(X, validation=X_val, progress=False, **args)
    # float32 gradients are summed in float64 across blocks: ~1e-7 relative per step.
    assert rel_diff(ours, local) < 1e-4
    np.testing.assert_allclose(h.val_loss, hl.val_loss, rtol=1e-4)
    assert h.best_epoch == hl.best_epoch


def test_fit_callback() -> None:
    X = da.from_array(data(300), chunks=100)
    seen: list[int] = []
    m = model()
    h = smd.fit(m, X, epochs=5, callback=lambda e, tr, va: seen.append(e) or e < 1)
    assert seen == [0, 1] and h.stop_reason == "callback" and h.n_epochs == 2


@pytest.mark.parametrize(
    "bad, cause",
    [
        ({"lr": 1e300, "optimizer": "sgd"}, "is NaN or Inf"),  # overflows at once
        ({"lr": 100.0}, "more than 1e6 times the scale"),  # a finite blow-up
        ({"weight_decay": 1e300}, "squared-gradient average (Adam) is NaN or Inf"),
        # At the last step (one minibatch), judged when the run stops.
        ({"lr": 1e8, "optimizer": "sgd", "epochs": 1, "batch_size": 300}, "epoch 0, step 1 "),
        # There too with validation rows: the one epoch is the best, its finite validation
        # loss does not judge the update.
        (
            {"lr": 1e8, "optimizer": "sgd", "epochs": 1, "batch_size": 300, "validation": VAL},
            "epoch 0, step 1 ",
        ),
    ],
)
def test_fit_diverges_where_the_local_fit_does(bad: dict[str, Any], cause: str) -> None:
    """Same step, same cause, same message, same last good parameters."""
    X = da.from_array(data(300), chunks=100)
    m, local = model(), model()
    bad = {"epochs": 3, **bad}
    with pytest.raises(sm.TrainingDivergedError) as want:
        local.fit(X.compute(), **{"validation": None, "progress": False, **bad})
    with pytest.raises(sm.TrainingDivergedError) as got:
        smd.fit(m, X, **bad)
    assert cause in str(want.value)
    assert str(got.value) == str(want.value)
    parts = ("epoch", "step", "cause", "advice")
    assert [getattr(got.value, a) for a in parts] == [getattr(want.value, a) for a in parts]
    assert got.value.history.stop_reason == want.value.history.stop_reason == "diverged"
    assert got.value.history.n_epochs == want.value.history.n_epochs
    assert all(np.isfinite(p).all() for p in m.params)
    assert rel_diff(m, local) < 1e-9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"objective": "esm"}, "^objective must be 'ism', 'ssm' or 'dsm', got 'esm'$"),
        ({"objective": "dsm"}, "noise_std"),
        ({"lr": -1.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"optimizer": "lbfgs"}, "^optimizer must be 'adam' or 'sgd', got 'lbfgs'$"),
        ({"validation": 0.1}, "fraction"),
    ],
)
def test_fit_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        smd.fit(model(), da.from_array(data(50)), **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": "0.1"}, {"lr": None}, {"weight_decay": "0"}, {"lr": 0.0}, {"weight_decay": -1.0}],
)
def test_fit_argument_errors_are_the_local_fits(kwargs: dict[str, Any]) -> None:
    # The engine's optimizer said "must be real number, not str", naming no argument.
    X = data(50)
    with pytest.raises((TypeError, ValueError)) as want:
        model().fit(X, progress=False, **kwargs)
    with pytest.raises(want.type) as got:
        smd.fit(model(), da.from_array(X), **kwargs)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("zero", [0, 0.0])
def test_fit_validation_zero_holds_out_nothing_as_locally(zero: float) -> None:
    X = data(200)
    ours, local = model(), model()
    h = smd.fit(ours, da.from_array(X, chunks=70), validation=zero, **FIT)
    hl = local.fit(X, validation=zero, progress=False, **FIT)
    assert h.val_loss == hl.val_loss == [] and rel_diff(ours, local) < 1e-9


def test_fit_an_update_that_overflows_is_a_divergence_at_that_step() -> None:
    # Loss and gradient finite, lr * gradient beyond the float64 range: the step that made the
    # parameters infinite is named, as locally, and the model keeps those before it.
    X = da.from_array(data(300) * 1e3, chunks=100)
    m, local = model(), model()
    with pytest.raises(sm.TrainingDivergedError) as want:
        local.fit(X.compute(), epochs=3, lr=1e308, optimizer="sgd", validation=None, progress=False)
    with pytest.raises(sm.TrainingDivergedError) as got:
        smd.fit(m, X, epochs=3, lr=1e308, optimizer="sgd")
    assert "epoch 0, step 0 " in str(want.value) and "updated parameter vector" in str(want.value)
    assert str(got.value) == str(want.value)
    assert same_arrays(m.params, model().params)


def test_fit_defaults_are_those_of_the_local_fit() -> None:
    # Documented "as for EnergyMLP.fit"; only validation differs (no fraction here).
    ours = inspect.signature(smd.fit).parameters
    local = inspect.signature(sm.EnergyMLP.fit).parameters
    shared = set(ours) & set(local) - {"X", "validation"}
    assert {"epochs", "batch_size", "lr", "weight_decay", "seed", "n_projections"} <= shared
    for name in shared:
        assert ours[name].default == local[name].default, name
    assert ours["validation"].default is None


def test_fit_refuses_no_rows_and_takes_one() -> None:
    m = model()
    with pytest.raises(ValueError, match="^X must hold at least one row, got 0$"):
        smd.fit(m, da.zeros((0, 3), chunks=1))
    with pytest.raises(ValueError, match="^validation must hold at least one row, got 0$"):
        smd.fit(m, da.from_array(data(10)), validation=np.zeros((0, 3)))
    h = smd.fit(m, da.from_array(data(1)), epochs=2)
    assert h.n_epochs == 2 and h.stop_reason == "completed"


def test_fit_history_seconds_is_the_wall_time_of_the_fit() -> None:
    X = da.from_array(data(300), chunks=100)
    t0 = time.perf_counter()
    h = smd.fit(model(), X, epochs=2)
    assert 0 < h.seconds <= time.perf_counter() - t0
    t0 = time.perf_counter()
    with pytest.raises(sm.TrainingDivergedError) as info:
        smd.fit(model(), X, epochs=3, lr=1e300, optimizer="sgd")
    assert 0 < info.value.history.seconds <= time.perf_counter() - t0


def test_fit_a_tie_is_not_an_improvement() -> None:
    # lr = 1e-300 leaves the parameters as they are, and one row gives the same loss every
    # epoch: no epoch after the first is a new best, and patience runs out as locally.
    one = data(1)
    ours, local = model(), model()
    h = smd.fit(ours, one, epochs=5, patience=2, lr=1e-300)
    hl = local.fit(one, epochs=5, patience=2, lr=1e-300, validation=None, progress=False)
    assert len(set(h.train_loss)) == 1
    assert h.best_epoch == hl.best_epoch == 0
    assert h.n_epochs == hl.n_epochs == 3 and h.stop_reason == "patience"


def test_fit_without_validation_keeps_the_last_parameters() -> None:
    # The best epoch is restored only with validation rows. Here the last epoch is not the
    # best (measured train losses -1.16 -1.35 -1.48 -1.506 -1.500) and the model keeps its
    # last parameters, as the local fit does.
    X = data(300)
    args: dict[str, Any] = {"epochs": 5, "lr": 0.3, "optimizer": "sgd", "batch_size": 50}
    ours, local = model(), model()
    h = smd.fit(ours, da.from_array(X, chunks=100), **args)
    hl = local.fit(X, validation=None, progress=False, **args)
    assert h.best_epoch == hl.best_epoch == 3
    assert rel_diff(ours, local) < 1e-9


@pytest.mark.parametrize("objective, extra", OBJECTIVES)
def test_fit_computes_gradients_only_for_its_steps(
    monkeypatch: pytest.MonkeyPatch, objective: str, extra: dict[str, Any]
) -> None:
    # The validation loss and the last step's check read a loss alone, without the reverse
    # pass (they computed the gradient too, and threw it away). Counted in
    # rows passed to each kind of call: every training row once per epoch gets a gradient;
    # the validation rows once per epoch, or the last minibatch once, get a loss alone.
    rows = {"grad": 0, "loss": 0}

    def counted(kind: str, method: Any) -> Any:
        def call(self: sm.EnergyMLP, X: Any, *args: Any, **kwargs: Any) -> Any:
            rows[kind] += len(X)
            return method(self, X, *args, **kwargs)

        return call

    for name in (f"{objective}_loss", f"{objective}_loss_and_grad"):
        kind = "grad" if name.endswith("grad") else "loss"
        monkeypatch.setattr(sm.EnergyMLP, name, counted(kind, getattr(sm.EnergyMLP, name)))
    X = da.from_array(data(500), chunks=(150, 3))
    args: dict[str, Any] = {"objective": objective, "epochs": 3, "batch_size": 120, **extra}
    h = smd.fit(model(), X, validation=data(70, seed=4), **args)
    # Where the best epoch is the last, its parameters are the last step's: judged too.
    last = 20 if h.best_epoch == 2 else 0
    assert rows == {"grad": 3 * 500, "loss": 3 * 70 + last}
    rows.update(grad=0, loss=0)
    smd.fit(model(), X, **args)
    # 500 rows in minibatches of 120: the last of an epoch holds 20.
    assert rows == {"grad": 3 * 500, "loss": 20}


def test_fit_diverges_on_a_non_finite_validation_loss() -> None:
    # Finite validation rows whose loss overflows: the local fit's message, and its parameters
    # (those before the epoch's last step).
    X, V = data(300), data(20, seed=2)
    V[5] = 1e200
    ours, local = model(), model()
    with pytest.raises(sm.TrainingDivergedError) as want:
        local.fit(X, epochs=2, validation=V, progress=False)
    with pytest.raises(sm.TrainingDivergedError) as got:
        smd.fit(ours, da.from_array(X, chunks=100), epochs=2, validation=V)
    assert "the validation loss is NaN or Inf" in str(want.value)
    assert str(got.value) == str(want.value)
    assert got.value.history.stop_reason == "diverged" and got.value.history.val_loss == []
    # The failed epoch is not in the history: it never completed.
    assert got.value.history.train_loss == want.value.history.train_loss == []
    assert rel_diff(ours, local) < 1e-9


def test_a_nan_row_is_named_by_its_row_in_x() -> None:
    X = data(100)
    X[57, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at row 57\)"):
        smd.score(model(), da.from_array(X, chunks=30)).compute(scheduler="threads")
    # Unknown chunk sizes: the block's place in X is not known, and the message says so (row
    # 57 is row 27 of the block of rows 30..59; row 26 once row 40 is dropped).
    Xd = da.from_array(X, chunks=30)
    unplaced = (
        r"^X contains NaN or Inf \(first at row {} of a block whose place in X is not known: "
        r"its chunk sizes are unknown\) \(blocks are checked as they run: an earlier block of "
        r"X may hold such a row too\)$"
    )
    with pytest.raises(ValueError, match=unplaced.format(27)):
        smd.score(model(), Xd[Xd[:, 0] < 10]).compute(scheduler="threads")
    keep = np.ones(100, bool)
    keep[[3, 40]] = False
    with pytest.raises(ValueError, match=unplaced.format(26)):
        smd.score(model(), Xd[da.from_array(keep, chunks=30)]).compute(scheduler="threads")
    # Another error of the engine goes up as it is.
    with pytest.raises(ValueError, match="ism_loss of an empty batch"):
        smd._run_checked(model().ism_loss, np.empty((0, 3)), "X", "float64", 0)


def test_divergence_errors_cross_process_boundaries(client: Any) -> None:
    # Raised in a worker process and pickled back: still the class users catch.
    m = sm.EnergyMLP(2, hidden=(4,), alpha=10.0)
    arr = smd.sample(m, 6, chunks=3, n_steps=500, step_size=10.0, method="ula")
    with pytest.raises(sm.SamplingDivergedError):
        client.compute(arr).result()


def test_a_divergence_names_the_block_of_chains_it_came_from() -> None:
    # It said "3 of 3 chains diverged" for 6 of 6.
    m = sm.EnergyMLP(2, hidden=(4,), alpha=10.0)
    with pytest.raises(sm.SamplingDivergedError) as want:
        m.sample(6, n_steps=500, step_size=10.0, method="ula")
    assert re.match(
        r"\d of 6 chains diverged \(NaN or Inf\) at step \d+, the first", str(want.value)
    )
    for init in (None, da.from_array(np.zeros((6, 2)), chunks=3)):
        arr = smd.sample(m, 6, chunks=3, n_steps=500, step_size=10.0, method="ula", init=init)
        with pytest.raises(sm.SamplingDivergedError) as got:
            arr.compute()
        assert re.fullmatch(
            r"in chains (0 to 2|3 to 5) \(one block; the others run on their own and may "
            r"diverge too\): [1-3] of 3 chains diverged \(NaN or Inf\) at step \d+, the first "
            r"step where any did; use a smaller step_size, or on_divergence='mask' to keep the "
            r"finite chains",
            str(got.value),
        ), str(got.value)
        # The block's counts, as its message gives them.
        counts = re.search(r"\): (\d) of 3 chains diverged .* at step (\d+),", str(got.value))
        assert counts is not None
        n_diverged, step = map(int, counts.groups())
        assert (got.value.n_diverged, got.value.n_chains, got.value.step) == (n_diverged, 3, step)


@pytest.mark.parametrize("lazy_init", [False, True])
@pytest.mark.parametrize("method", ["ula", "mala"])
def test_sample_masks_diverging_chains_as_in_memory(lazy_init: bool, method: str) -> None:
    # ε·α/2 = 5: x is multiplied by -4 per ULA step, so in float32 a chain started at 1e38
    # overflows at once, and chains started at 1 survive 10 steps; MALA has no acceptance
    # test where the energy overflows (1e20), and drops those chains at step 0.
    m = sm.EnergyMLP.from_params(
        [p * 0 for p in sm.EnergyMLP(2, hidden=(4,), dtype="float32").params],
        alpha=1.0,
        dtype="float32",
    )
    x0 = np.ones((13, 2), np.float32)
    x0[[1, 4, 5, 12], 0] = 1e38 if method == "ula" else 1e20
    kw: dict[str, Any] = {"n_steps": 10, "step_size": 10.0, "method": method, "seed": 3}
    want = m.sample(13, init=x0, on_divergence="mask", **kw)
    assert want.chain_indices.tolist() == [0, 2, 3, 6, 7, 8, 9, 10, 11]
    init = da.from_array(x0, chunks=5)
    if lazy_init:  # unknown chunk sizes, learnt by persisting init
        init = init[init[:, 1] > 0]
    calls = []
    real = sm.EnergyMLP.sample

    def counted(self: sm.EnergyMLP, n: int, **options: Any) -> Any:
        calls.append(n)
        return real(self, n, **options)

    samples, indices = smd.sample(m, 13, chunks=4, init=init, on_divergence="mask", **kw)
    assert np.isnan(samples.shape[0]) and samples.dtype == np.float32
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sm.EnergyMLP, "sample", counted)
        got_samples, got_indices = dask.compute(samples, indices, scheduler="sync")
    assert sorted(calls) == [1, 4, 4, 4]  # each block once, for both arrays
    same_arrays(got_samples, want.samples)
    same_arrays(got_indices, want.chain_indices)
    # Without init the chains start from their own streams: none diverge here.
    got = dask.compute(*smd.sample(m, 13, chunks=4, on_divergence="mask", n_steps=3))
    same_arrays(got[1], np.arange(13))
    same_arrays(got[0], m.sample(13, n_steps=3).samples)
    # Three layers and two tasks a block, whatever the number of blocks: a collection per
    # block made the graph grow, and its compute time quadratically (2 000 blocks: 3.5 s).
    samples, indices = smd.sample(m, 500, chunks=1, n_steps=1, on_divergence="mask")
    for arr in (samples, indices):
        assert len(arr.dask.layers) == 3 and len(dict(arr.dask)) == 2 * 500 + 1
    # A bad value is refused when the graph is built, as in memory.
    with pytest.raises(ValueError, match="on_divergence must be 'raise' or 'mask', got 'drop'"):
        smd.sample(m, 13, on_divergence="drop", n_steps=3)  # type: ignore[call-overload]


def test_a_lazy_result_keeps_the_parameters_it_was_built_with() -> None:
    m = model()
    X = data(200)
    want = m.energy(X)
    E = smd.energy(m, da.from_array(X, chunks=50))
    m.set_params([p * 2 for p in m.params])
    np.testing.assert_array_equal(E.compute(scheduler="threads"), want)
    # The new parameters get their own graph key, and their own values.
    E2 = smd.energy(m, da.from_array(X, chunks=50))
    assert E2.name != E.name
    np.testing.assert_array_equal(E2.compute(scheduler="threads"), m.energy(X))


def test_sample_takes_auto_chunks() -> None:
    m = model()
    got = smd.sample(m, 10, chunks="auto", n_steps=3)
    np.testing.assert_array_equal(got.compute(scheduler="threads"), m.sample(10, n_steps=3).samples)


def test_sample_blocks_hold_4096_chains_by_default() -> None:
    assert smd.sample(model(), 10_000, n_steps=1).chunks == ((4096, 4096, 1808), (3,))


@pytest.mark.parametrize(
    "kw, message",
    [
        # Refused by name here, not by the TypeError that model.sample's checks would give.
        ({"n_step": 5}, "scorematch.dask.sample got an unexpected keyword argument 'n_step'"),
        (
            {"progress": True, "first_chain": 5, "return_trajectory": True},
            "scorematch.dask.sample does not take first_chain, progress, return_trajectory",
        ),
    ],
)
def test_sample_names_the_options_it_refuses(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError) as info:
        smd.sample(model(), 10, **kw)
    assert str(info.value) == message


def test_sample_takes_empty_blocks_and_builds_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    m = model()
    got = smd.sample(m, 10, chunks=(0, 5, 0, 5), n_steps=3).compute(scheduler="threads")
    np.testing.assert_array_equal(got, m.sample(10, n_steps=3).samples)
    # No chains at all: an empty array, as from model.sample(0).
    empty = smd.sample(m, 0, n_steps=3).compute(scheduler="threads")
    assert empty.shape == (0, m.dim) and empty.dtype == m.dtype
    # Building the array checks the options (as model.sample would) and runs no chain, whatever
    # burn_in or steps_per_level (numpy integers included).
    calls: list[int] = []
    real = sm.EnergyMLP.sample

    def spy(self: sm.EnergyMLP, n: int, **kw: Any) -> Any:
        calls.append(n)
        return real(self, n, **kw)

    monkeypatch.setattr(sm.EnergyMLP, "sample", spy)
    lazy = smd.sample(m, 10, n_steps=5, burn_in=np.int64(10**7))
    smd.sample(m, 10, method="annealed", temperatures=[2.0, 1.0], steps_per_level=10**7)
    assert calls == []
    assert lazy.shape == (10, m.dim)
    # ... and still refuses what the engine would, at build time.
    with pytest.raises(ValueError, match="overflows"):
        smd.sample(m, 10, step_size=1e300, temperature=1e-300)
    with pytest.raises(ValueError, match="target_accept"):
        smd.sample(m, 10, method="mala", adapt_step_size=True, burn_in=5, target_accept=1.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_step'"):
        smd.sample(m, 10, n_step=5)
    assert calls == []


def test_fit_takes_unknown_chunk_sizes() -> None:
    X = data(400)
    Xd = da.from_array(X, chunks=50)
    keep = X[:, 0] > -0.5
    m, local = model(), model()
    smd.fit(m, Xd[Xd[:, 0] > -0.5], epochs=2, seed=3)
    local.fit(X[keep], epochs=2, seed=3, validation=None, progress=False)
    for a, b in zip(m.params, local.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_fit_refuses_nan_rows() -> None:
    # Checked on the whole of X before training: the engine would see a minibatch's share of a
    # block, name the row by its place there, and only once a step drew it. Nothing is trained.
    X = data(100)
    X[57, 1] = np.nan
    m = model()
    with pytest.raises(ValueError, match=r"^X contains NaN or Inf \(first at row 57\)$"):
        smd.fit(m, da.from_array(X, chunks=30))
    V = data(40, seed=1)
    V[33, 0] = np.inf
    with pytest.raises(ValueError, match=r"^validation contains NaN or Inf \(first at row 33\)$"):
        smd.fit(m, da.from_array(data(100), chunks=30), validation=da.from_array(V, chunks=15))
    for a, b in zip(m.params, model().params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_killed_worker_is_replaced_and_the_result_is_unchanged(client: Any) -> None:
    X = da.from_array(data(2000), chunks=(250, 3))
    args: dict[str, Any] = {
        "objective": "dsm",
        "noise_std": 0.1,
        "epochs": 3,
        "batch_size": 100,
        "lr": 1e-2,
    }
    with client.as_current(), dask.config.set(scheduler="dask.distributed"):
        undisturbed = model()
        smd.fit(undisturbed, X, **args)
        victim = next(iter(client.run(os.getpid).values()))
        # SIGKILL one worker 20 ms into epoch 1 (of 20 steps, each at least one scheduler
        # round trip), with tasks in flight: its persisted blocks are recomputed elsewhere,
        # the step is retried, and the nanny starts a new worker.
        killer = threading.Timer(0.02, os.kill, (victim, 9))

        def kill_soon(epoch: int, train: float, val: float | None) -> None:
            if epoch == 0:
                killer.start()

        killed = model()
        smd.fit(killed, X, callback=kill_soon, **args)
        killer.join()
        assert victim not in client.run(os.getpid).values()
    assert same_arrays(killed.params, undisturbed.params)


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"n_steps": "10"}, TypeError, "^n_steps must be an int, got str$"),
        ({"n_steps": 0}, ValueError, "^n_steps must be at least 1, got 0$"),
        (
            {"n_steps": 2**40},
            ValueError,
            r"^the run is too long: burn_in \+ n_steps = 1099511627776 ",
        ),
        ({"burn_in": 2**32}, ValueError, r"^the run is too long: burn_in \+ n_steps = 4294968296 "),
        (
            {"method": "annealed", "temperatures": [2.0, 1.0], "steps_per_level": 2**31},
            ValueError,
            r"^the run is too long: 2 temperatures × steps_per_level 2147483648 = 4294967296 ",
        ),
    ],
)
def test_sample_checks_step_counts_when_built(kw: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        smd.sample(model(), 10, **kw)


def test_float64_values_too_large_for_a_float32_model_are_named() -> None:
    X = data(100)
    X[57, 0] = 1e39
    with pytest.raises(ValueError, match=r"too large for float32.*first at row 57;"):
        smd.score(model("float32"), da.from_array(X, chunks=30)).compute(scheduler="threads")
    # Unknown chunk sizes: row 27 of its block, which is not row 27 of X.
    Xd = da.from_array(X, chunks=30)
    with pytest.raises(
        ValueError, match=r"first at row 27 of a block whose place in X is not known: its chunk"
    ):
        smd.score(model("float32"), Xd[Xd[:, 1] < 10]).compute(scheduler="threads")


@pytest.mark.parametrize(
    ("validation", "shown"),
    [
        (True, "bool True"),
        # Other numbers were read as a 0-d array of validation rows.
        (Decimal("0.1"), "Decimal('0.1')"),
        (Fraction(1, 10), "Fraction(1, 10)"),
        (0.1 + 0j, "complex (0.1+0j)"),
    ],
)
def test_fit_refuses_a_validation_that_is_no_rows_naming_it(validation: Any, shown: str) -> None:
    with pytest.raises(TypeError) as info:
        smd.fit(model(), da.from_array(data(50)), validation=validation)
    assert str(info.value) == (
        f"validation must be validation rows (a Dask array or array) or None, got {shown}"
    )


def test_fit_stops_on_patience_and_restores_the_best_epoch_as_the_local_fit() -> None:
    X, X_val = data(600), data(200, seed=4)
    args: dict[str, Any] = {
        "epochs": 40,
        "batch_size": 50,
        "lr": 5e-2,
        "optimizer": "sgd",
        "patience": 2,
    }
    ours, local = model(), model()
    seen: list[tuple[float, float | None]] = []
    h = smd.fit(
        ours,
        da.from_array(X, chunks=(250, 3)),
        validation=X_val,
        callback=lambda e, tr, va: seen.append((tr, va)),
        **args,
    )
    hl = local.fit(X, validation=X_val, progress=False, **args)
    assert h.stop_reason == hl.stop_reason == "patience"
    assert h.n_epochs == hl.n_epochs == h.best_epoch + 3 < 40
    # The callback gets (epoch, train loss, validation loss), in that order.
    assert seen == list(zip(h.train_loss, h.val_loss, strict=True))
    # Restored: the best epoch's parameters, not the last epoch's.
    assert rel_diff(ours, local) < 1e-9


def test_fit_on_a_cluster_computes_each_step_where_the_blocks_are(client: Any) -> None:
    # Each step sends one task to each worker holding blocks of X, for all its blocks, and it
    # runs there: the rows travel neither to the driver nor between workers.
    with client.as_current(), dask.config.set(scheduler="dask.distributed"):
        X = da.from_array(data(1000), chunks=(125, 3)).persist()
        distributed.wait(X)
        homes = {min(where) for where in client.who_has(X).values()}
        with distributed.get_task_stream(client) as ts:
            smd.fit(model(), X, epochs=2, batch_size=1000)  # one step an epoch, every block
    workers = sorted(t["worker"] for t in ts.data if str(t["key"]).startswith("_group_loss_grad"))
    # Two steps, and the loss after the last one (the run judges its update when it stops).
    assert workers == sorted(3 * list(homes))


def test_fit_on_a_cluster_runs_blocks_no_worker_is_known_to_hold(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where blocks live is a hint: one that who_has does not place (lost with its worker and
    # not yet recomputed) goes to any worker, and the fit is the same.
    X = data(300)
    ours, local = model(), model()
    monkeypatch.setattr(client, "who_has", lambda *args, **kwargs: {})
    with client.as_current(), dask.config.set(scheduler="dask.distributed"):
        smd.fit(ours, da.from_array(X, chunks=100), epochs=2, batch_size=100)
    local.fit(X, epochs=2, batch_size=100, validation=None, progress=False)
    assert rel_diff(ours, local) < 1e-9


@pytest.mark.parametrize(
    "chunks, error, message",
    [
        # Dask's arithmetic on these was the error: ZeroDivisionError, "unsupported operand
        # type(s) for +", a ufunc's type error, "Could not interpret 'abc' as a byte unit".
        (0.0, TypeError, "got 0.0"),
        (2.5, TypeError, "got 2.5"),
        (None, TypeError, "got None"),
        (True, TypeError, "got True"),
        ("abc", ValueError, "got 'abc'"),
    ],
)
def test_sample_refuses_chunks_it_cannot_read_by_name(
    chunks: Any, error: type, message: str
) -> None:
    want = "chunks must be an int >= 1, a sequence of ints summing to n_samples or 'auto', "
    with pytest.raises(error) as info:
        smd.sample(model(), 3, n_steps=1, chunks=chunks)
    assert str(info.value) == want + message


def test_sample_checks_each_block_size_and_their_sum() -> None:
    m = model()
    with pytest.raises(ValueError) as info:
        smd.sample(m, 3, n_steps=1, chunks=(1, 1))
    assert str(info.value) == "chunks must sum to n_samples (3), got (1, 1), which sums to 2"
    with pytest.raises(ValueError, match=r"^every entry of chunks must be at least 0, got -1$"):
        smd.sample(m, 3, n_steps=1, chunks=(3, -1, 1))
    with pytest.raises(TypeError, match=r"^every entry of chunks must be an int, got float$"):
        smd.sample(m, 3, n_steps=1, chunks=(1.0, 2.0))
    # Sizes given as a list or a 1-D array, and a byte size, are Dask's to read.
    assert smd.sample(m, 3, n_steps=1, chunks=[1, 2]).chunks == ((1, 2), (3,))
    assert smd.sample(m, 3, n_steps=1, chunks=np.array([2, 1])).chunks == ((2, 1), (3,))
    assert smd.sample(m, 3, n_steps=1, chunks="1KiB").chunks == ((3,), (3,))


def test_rows_of_objects_are_refused_as_the_in_memory_methods_refuse_them() -> None:
    # Dask cannot chunk an object array: da.asarray raised NotImplementedError ("Can not use
    # auto rechunking with object dtype").
    m = model()
    want = "must be an array of floats (float32 or float64), got dtype object"
    with pytest.raises(TypeError, match=re.escape(f"X {want}") + "$"):
        smd.energy(m, [[1.0, None, 2.0]])
    with pytest.raises(TypeError, match=re.escape(f"X {want}") + "$"):
        smd.fit(m, np.zeros((4, 3), dtype=object), epochs=1)
    with pytest.raises(TypeError, match=re.escape(f"validation {want}") + "$"):
        smd.fit(m, data(20), epochs=1, validation=(1.0, None, 2.0))
    with pytest.raises(TypeError, match=re.escape(f"init {want}") + "$"):
        smd.sample(m, 0, init=np.zeros((0, 3), dtype=object))
    # Lists of numbers are converted, as before.
    np.testing.assert_array_equal(
        smd.energy(m, [[1, 2, 3]]).compute(scheduler="threads"), m.energy([[1.0, 2.0, 3.0]])
    )


def test_fit_names_a_bad_optimizer_as_energymlp_fit_does() -> None:
    # It reached the engine's conversion, whose message named only a type: "'int' object
    # is not an instance of 'str'".
    for bad in (3, None, "lbfgs"):
        with pytest.raises(ValueError, match=r"^optimizer must be 'adam' or 'sgd', got "):
            smd.fit(model(), data(20), epochs=1, optimizer=bad)


@pytest.mark.parametrize(
    "n, chunks, size, blocks",
    [(10**12, 4096, 4096, 244140625), (10**18, "auto", 5592405, 178813944985)],
)
def test_sample_refuses_more_blocks_than_a_graph_can_hold(
    n: int, chunks: Any, size: int, blocks: int
) -> None:
    # Dask listed every block first: for 10**12 chains that took minutes and gigabytes, and
    # ended, under a 4 GiB limit, in a MemoryError without a message.
    want = (
        f"n_samples={n} in blocks of {size} chains makes {blocks} blocks (Dask tasks), more than "
        "1048576, whose graph alone would take gigabytes; pass larger chunks"
    )
    with dask.config.set({"array.chunk-size": "128MiB"}):
        with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
            smd.sample(model(), n, n_steps=1, chunks=chunks)
        # One block of them all is a graph of one task.
        assert smd.sample(model(), n, n_steps=1, chunks=n).numblocks == (1, 1)


def test_fit_describes_a_long_string_validation_on_one_line() -> None:
    with pytest.raises(TypeError) as info:
        smd.fit(model(), da.from_array(data(50)), validation="rows" * 50)
    assert str(info.value) == (
        "validation must be validation rows (a Dask array or array) or None, got str of length "
        "200 starting 'rowsrowsrowsrowsrows'"
    )


def test_sample_of_no_chains_takes_an_empty_list_of_block_sizes() -> None:
    # Dask refused it: "Empty tuples are not allowed in chunks".
    got = smd.sample(model(), 0, n_steps=1, chunks=())
    assert got.chunks == ((0,), (3,)) and got.compute(scheduler="threads").shape == (0, 3)
    with pytest.raises(ValueError, match=r"^chunks must sum to n_samples \(2\), got \[\], "):
        smd.sample(model(), 2, n_steps=1, chunks=[])


def local_error(f: Any, *args: Any) -> str:
    with pytest.raises((TypeError, ValueError)) as info:
        f(*args)
    return str(info.value)


@pytest.mark.parametrize("method", ["energy", "score", "hessian_trace"])
def test_a_block_names_its_first_bad_row_by_its_row_in_x(scheduler: str, method: str) -> None:
    # Blocks are checked as they run and raise on their own, so that a slice computes only
    # the blocks under it (below): Dask raises whichever failing block it ran first (here
    # often the block of row 350, not row 5), and past X's first block the message says that
    # an earlier block may hold such a row too. In memory: the first row of X.
    X = data(400)
    X[5, 0] = np.nan
    X[350, 1] = np.nan
    big = data(400, seed=3) * 1e300  # every row too large for float32
    later = " (blocks are checked as they run: an earlier block of X may hold such a row too)"
    for m, rows, first, wants in [
        (
            model(),
            X,
            "X contains NaN or Inf (first at row 5)",
            {"X contains NaN or Inf (first at row 350)" + later},
        ),
        (
            model("float32"),
            big,
            (
                "X has values too large for float32 (|x| > 3.4e38), first at row 0; "
                "use a float64 model or rescale the data"
            ),
            {
                f"X has values too large for float32 (|x| > 3.4e38), first at row {r}; "
                "use a float64 model or rescale the data" + later
                for r in range(10, 400, 10)
            },
        ),
    ]:
        assert local_error(getattr(m, method), rows) == first
        lazy = getattr(smd, method)(m, da.from_array(rows, chunks=(10, 3)))
        for get in ["threads", "synchronous"] if scheduler == "threads" else [None]:
            for _ in range(4):
                with pytest.raises(ValueError) as info:
                    lazy.compute(scheduler=get)
                assert str(info.value) in wants | {first}, get


@pytest.mark.parametrize("method", ["energy", "score", "hessian_trace"])
def test_a_slice_of_a_result_computes_only_the_blocks_under_it(method: str) -> None:
    # A chain of per-block reports (to name X's first bad row whatever the order) made
    # energy(X)[-5:] compute every block of X.
    ran: list[int] = []

    def counted(block: Any, block_info: Any = None) -> Any:
        ran.append(block_info[0]["chunk-location"][0])
        return block

    X = da.from_array(data(400), chunks=(10, 3)).map_blocks(counted, dtype=np.float64)
    m = model()
    got = getattr(smd, method)(m, X)[-5:].compute(scheduler="synchronous")
    assert sorted(ran) == [39]
    assert same_arrays(got, getattr(m, method)(data(400))[-5:])
    # And the chains of sample from an init.
    ran.clear()
    init = X[:40]
    got = smd.sample(m, 40, chunks=10, n_steps=2, init=init)[-5:].compute(scheduler="synchronous")
    assert sorted(ran) == [3]
    assert same_arrays(got, m.sample(40, n_steps=2, init=data(400)[:40]).samples[-5:])


def test_fit_names_the_first_row_too_large_for_a_float32_model(scheduler: str) -> None:
    # The conversion raised in whichever block Dask ran first: row 80 or row 90 from run to
    # run, for rows that are all too large. In-memory: row 0, and nothing is trained.
    big = data(400, seed=3) * 1e300
    big[0, 1] = 1.0
    want = local_error(lambda x: model("float32").fit(x, progress=False), big)
    assert want.startswith("X has values too large for float32 (|x| > 3.4e38), first at row 0;")
    m = model("float32")
    for _ in range(3):
        with pytest.raises(ValueError) as info:
            smd.fit(m, da.from_array(big, chunks=(10, 3)), epochs=1)
        assert str(info.value) == want
    V = data(100)
    V[[37, 95], 2] = 1e300
    for _ in range(3):
        with pytest.raises(ValueError) as info:
            smd.fit(m, data(50), epochs=1, validation=da.from_array(V, chunks=10))
        assert str(info.value) == want.replace("X", "validation").replace("row 0", "row 37")
    assert same_arrays(m.params, model("float32").params)


def masked(X: np.ndarray, row: int) -> np.ma.MaskedArray:
    mx = np.ma.masked_array(X, mask=np.zeros_like(X, bool))
    mx.mask[row] = True
    return mx


def test_masked_rows_are_refused_as_in_memory_before_anything_is_computed() -> None:
    # dask.fit read the blocks with np.asarray, which drops the mask: it trained on the values
    # under it. A Dask array's meta says it is masked: refused when the graph is built, with
    # the in-memory methods' TypeError, and no block is computed.
    m = model()
    mx = masked(data(40), 7)
    want = local_error(lambda x: m.fit(x, progress=False), mx)
    assert want.startswith("X is a masked array; its mask would be ignored")
    computed: list[int] = []

    def spy(block: np.ndarray) -> np.ndarray:
        computed.append(len(block))
        return block

    spied = da.from_array(mx, chunks=10).map_blocks(spy, meta=mx[:0])
    for rows in (mx, da.from_array(mx, chunks=10), spied):
        with pytest.raises(TypeError) as info:
            smd.fit(m, rows, epochs=2, batch_size=16)
        assert str(info.value) == want
        for name in ("energy", "score", "hessian_trace"):
            with pytest.raises(TypeError) as info:
                getattr(smd, name)(m, rows)
            assert str(info.value) == want
        with pytest.raises(TypeError) as info:
            smd.fit(m, data(20), epochs=1, validation=rows)
        assert str(info.value) == want.replace("X", "validation")
        with pytest.raises(TypeError) as info:
            smd.sample(m, 40, n_steps=1, init=rows)
        assert str(info.value) == want.replace("X", "init")
    assert computed == []
    assert same_arrays(m.params, model().params)


def test_masked_blocks_behind_a_plain_meta_are_refused_block_by_block(scheduler: str) -> None:
    # A graph whose meta is a plain array but whose blocks are masked: found in the blocks, by
    # the pass that converts them.
    m = model()
    mx = masked(data(40), 27)
    want = local_error(m.energy, mx)
    plain = da.from_array(data(40), chunks=10).map_blocks(
        lambda b, block_info=None: masked(b, 0) if block_info[0]["chunk-location"][0] == 2 else b,
        meta=np.empty((0, 0)),
    )
    assert type(plain._meta) is np.ndarray
    with pytest.raises(TypeError) as info:
        smd.fit(m, plain, epochs=1)
    assert str(info.value) == want
    with pytest.raises(TypeError) as info:
        smd.energy(m, plain).compute()
    assert str(info.value) == want
    assert same_arrays(m.params, model().params)


def test_sample_names_a_bad_init_row_by_its_row_in_init(scheduler: str) -> None:
    # It was named by its row in its block of chains: "first at row 3" for row 33 in blocks
    # of 10. Checked when the blocks run, as X is by energy (the array is lazy; init may be
    # too); past init's first block the message says an earlier block may hold one too.
    m = model()
    x0 = data(40, seed=9)
    x0[33, 0] = np.nan
    want = local_error(partial(m.sample, 40, n_steps=2, init=x0))
    assert want == "init contains NaN or Inf (first at row 33)"
    later = " (blocks are checked as they run: an earlier block of init may hold such a row too)"
    for init_chunks in (10, 40, (30, 10)):
        lazy = smd.sample(m, 40, chunks=10, n_steps=2, init=da.from_array(x0, chunks=init_chunks))
        with pytest.raises(ValueError) as info:
            lazy.compute()
        assert str(info.value) == want + later
    x0[5, 1] = np.inf
    big = data(40, seed=9) * 1e300
    big[0] = 1.0
    for local, init, row in [(m, x0, 5), (model("float32"), big, 1)]:
        want = local_error(partial(local.sample, 40, n_steps=2, init=init))
        assert f"first at row {row}" in want
        lazy = smd.sample(local, 40, chunks=10, n_steps=2, init=da.from_array(init, chunks=10))
        for _ in range(3):
            with pytest.raises(ValueError) as info:
                lazy.compute()
            # Row 5 (block 0), or the first of a later block (row 33; for big, rows 10, 20, 30).
            got = str(info.value)
            named = re.search(r"first at row (\d+)", got)
            assert got == want or (got.endswith(later) and named and int(named[1]) > 9)


def test_sample_takes_an_init_of_unknown_chunk_sizes(scheduler: str) -> None:
    # Refused: "init must have shape (n, 3) (n_samples, dim), got (nan, 3)", while energy and
    # fit take such arrays. Persisted to learn its chunk sizes, as fit does: computed once.
    m = model()
    x0 = data(100, seed=9)
    keep = x0[:, 0] > -0.5
    runs: list[int] = []

    def spy(block: np.ndarray) -> np.ndarray:
        runs.append(len(block))
        return block

    source = da.from_array(x0, chunks=30).map_blocks(spy, meta=np.empty((0, 0)))
    init = source[da.from_array(keep, chunks=30)]
    assert np.isnan(init.shape[0])
    n = int(keep.sum())
    got = smd.sample(m, n, chunks=16, init=init, n_steps=5, seed=2)
    assert got.chunks[0][:2] == (16, 16)
    np.testing.assert_array_equal(
        got.compute(), m.sample(n, init=x0[keep], n_steps=5, seed=2).samples
    )
    if scheduler == "threads":  # the spy's list is the driver's
        assert sorted(runs) == [10, 30, 30, 30]
    with pytest.raises(
        ValueError, match=rf"^init must have shape \({n + 1}, 3\) .*got \({n}, 3\)$"
    ):
        smd.sample(m, n + 1, init=source[da.from_array(keep, chunks=30)], n_steps=1)


@pytest.mark.filterwarnings("ignore:column 2 of X takes only 4 distinct values:RuntimeWarning")
def test_a_dask_dataframe_stays_lazy_one_block_per_partition() -> None:
    # It was converted as a list would be, np.asarray(df): every partition computed in the
    # driver while the graph was built, into one block.
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    m = model()
    loads: list[int] = []

    def load(i: int) -> Any:
        loads.append(i)
        X = data(30 + i, seed=i)
        # float32 beside int64 columns: numpy's common type (float64), as in memory.
        return pd.DataFrame({"a": X[:, 0].astype(np.float32), "b": X[:, 1], "c": i})

    df = dd.from_map(load, range(4))
    frame = df.compute()
    loads.clear()
    for name in ("energy", "score", "hessian_trace"):
        lazy = getattr(smd, name)(m, df)
        assert loads == [] and len(lazy.chunks[0]) == 4
        np.testing.assert_array_equal(lazy.compute(), getattr(m, name)(frame), err_msg=name)
        loads.clear()
    x0 = smd.sample(m, len(frame), chunks=50, init=df, n_steps=3)
    assert sorted(loads) == [0, 1, 2, 3]  # persisted once, to learn the partitions' lengths
    np.testing.assert_array_equal(x0.compute(), m.sample(len(frame), init=frame, n_steps=3).samples)
    assert sorted(loads) == [0, 1, 2, 3]  # and not again
    ours, local = model(), model()
    smd.fit(ours, df, epochs=2, seed=1)
    local.fit(frame, epochs=2, seed=1, validation=None, progress=False)
    assert rel_diff(ours, local) < 1e-9


def test_a_dask_dataframe_is_checked_as_a_pandas_one() -> None:
    # The in-memory methods' messages, for the same frame computed: a column that is not
    # numbers named (from the dtypes, without computing a partition), a missing value as NaN
    # named by its row in the frame.
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    m = model()
    X = data(40)
    base = {"a": X[:, 0], "b": X[:, 1]}
    for extra in (
        {"c": np.arange(40) % 2 == 0},
        {"c": pd.date_range("2026-01-01", periods=40)},
        {"c": [str(v) for v in X[:, 2]]},
    ):
        df = dd.from_pandas(pd.DataFrame({**base, **extra}), npartitions=4)
        df = df.map_partitions(lambda p: 1 / 0, meta=df._meta)  # computing it fails
        want = local_error(m.energy, df._meta)
        assert "got column 'c' of dtype" in want
        for f in (smd.energy, smd.score, smd.hessian_trace):
            with pytest.raises(TypeError) as info:
                f(m, df)
            assert str(info.value) == want
        with pytest.raises(TypeError) as info:
            smd.fit(m, df)
        assert str(info.value) == want
    nullable = pd.DataFrame({**base, "c": pd.array(X[:, 2], dtype="Float64")})
    nullable.loc[[27, 33], "c"] = pd.NA
    assert local_error(m.energy, nullable) == (
        "X contains nulls (first at row 27); drop or fill them first"
    )
    # An in-memory frame is the whole of X: its nulls are named as the methods name them.
    with pytest.raises(ValueError, match="^X contains nulls \\(first at row 27\\)"):
        smd.fit(m, nullable)
    # A partition's rows are read with missing values as NaN, for the blocks' check to name
    # (a partition's task does not know its place in X, to name a null as the frame's row).
    want = "X contains NaN or Inf (first at row 27)"
    df = dd.from_pandas(nullable, npartitions=4)
    # A partition's place in X is not known to its task: named within it, and the message
    # says so (fit, which reads every partition first, names the row in X).
    with pytest.raises(ValueError) as info:
        smd.energy(m, df).compute()
    # The row of 27 or 33 in its partition (a RangeIndex: divisions are row numbers): Dask
    # raises whichever failing partition it ran first.
    within = {r - max(d for d in df.divisions[:-1] if d <= r) for r in (27, 33)}
    assert str(info.value) in {
        f"X contains NaN or Inf (first at row {r} of a block whose place in X is not known: "
        "its chunk sizes are unknown) (blocks are checked as they run: an earlier block of X "
        "may hold such a row too)"
        for r in within
    }
    with pytest.raises(ValueError) as info:
        smd.fit(m, df)
    assert str(info.value) == want
    with pytest.raises(
        ValueError, match=r"^X must have shape \(n, 3\) for this model, got \(\?, 2\)"
    ):
        smd.energy(m, df[["a", "b"]])


def test_a_value_too_large_is_named_before_a_nan_as_in_memory(scheduler: str) -> None:
    # The in-memory methods convert X to the model's dtype before looking for NaN and Inf:
    # a value too large for float32 is named even where a NaN comes first (a block named the
    # NaN). fit, which reads every block first, names the first too large row of X across
    # blocks too.
    m = model("float32")
    X = data(40)
    X[2, 0] = np.nan
    X[5, 1] = 1e300
    want = local_error(m.energy, X)
    assert want.startswith("X has values too large for float32") and "first at row 5;" in want
    assert local_error(smd.energy(m, da.from_array(X, chunks=10)).compute) == want
    X[5, 1] = 0.0
    X[25, 1] = 1e300
    want = local_error(partial(m.fit, X, epochs=1, progress=False))
    assert "first at row 25;" in want
    assert local_error(partial(smd.fit, m, da.from_array(X, chunks=10), epochs=1)) == want


def test_fit_warns_of_a_constant_column_as_the_local_fit() -> None:
    rng = np.random.default_rng(0)
    X = np.column_stack([np.full(200, 3.0), rng.normal(size=200), rng.normal(size=200)])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        smd.fit(model(), da.from_array(X, chunks=50), epochs=1)
        smd.fit(model(), da.from_array(X, chunks=50), epochs=1, objective="dsm", noise_std=0.1)
    assert len(seen) == 1 and seen[0].filename == __file__
    assert str(seen[0].message).startswith("column 0 of X holds one value in every training row")


def test_fit_refuses_ssm_arguments_for_other_objectives_as_the_local_fit() -> None:
    X = data(40)
    for kw in ({"n_projections": 3}, {"projection": "rademacher"}):
        want = local_error(partial(model().fit, X, epochs=1, progress=False, **kw))
        assert want.startswith(f"{next(iter(kw))} is only used by objective 'ssm'")
        assert local_error(partial(smd.fit, model(), da.from_array(X, chunks=10), **kw)) == want


@pytest.mark.parametrize("client_or_not", ["local", "cluster"])
def test_fit_warns_of_a_column_of_few_values_as_the_local_fit(
    client_or_not: str, request: pytest.FixtureRequest
) -> None:
    # Candidates picked on the same evenly spaced rows (every 3rd of 12 000, in blocks whose
    # starts are not multiples of 3) as EnergyMLP.fit picks them, values counted on every
    # row: column 0 shows only 0 on the sampled rows, and its 1s, 2s and one 7 elsewhere;
    # column 1 is Poisson counts; column 2 continuous. The same message.
    rng = np.random.default_rng(0)
    n = 12000
    X = np.column_stack([np.arange(n) % 3, rng.poisson(1.5, n), rng.normal(size=n)])
    X[1, 0] = 7.0
    fit = partial(smd.fit, model(), da.from_array(X, chunks=1234), epochs=1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if client_or_not == "cluster":
            client = request.getfixturevalue("client")
            with client.as_current(), dask.config.set(scheduler="dask.distributed"):
                fit()
        else:
            fit()
        model().fit(X, epochs=1, validation=None, progress=False)
    assert [w.filename for w in seen] == [__file__] * 2
    assert str(seen[0].message) == str(seen[1].message)
    k = len(np.unique(X[:, 1]))
    assert str(seen[0].message).startswith(
        f"columns [0, 1] of X take only 4 and {k} distinct values: "
    )
