"""Sliced and denoising score matching through the public API (the maths is checked against
finite differences in rust/core/tests/objectives.rs; here: the binding, seeds, dtypes and
argument errors)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_model


def test_ssm_is_unbiased_for_ism_and_seeded(rng):
    model, _ = make_model(3, (8, 8), seed=2)
    X = rng.normal(size=(40, 3))
    ism = model.ism_loss(X)
    a = model.ssm_loss_and_grad(X, n_projections=4, seed=1)
    b = model.ssm_loss_and_grad(X, n_projections=4, seed=1)
    c = model.ssm_loss_and_grad(X, n_projections=4, seed=2)
    assert a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))
    assert a[0] != c[0]
    # 400 projections per row: the Monte-Carlo error is far below 5% of the loss scale.
    big = model.ssm_loss_and_grad(X, n_projections=400, seed=3, projection="rademacher")[0]
    assert abs(big - ism) < 0.05 * (abs(ism) + 1.0)
    assert [g.shape for g in a[1]] == [p.shape for p in model.params]


def test_dsm_is_seeded_and_small_noise_has_large_loss(rng):
    model, _ = make_model(2, (8,), seed=3)
    X = rng.normal(size=(30, 2))
    a = model.dsm_loss_and_grad(X, noise_std=0.5, seed=4)
    b = model.dsm_loss_and_grad(X, noise_std=0.5, seed=4)
    assert a[0] == b[0]
    # The target −ε/σ has E‖·‖² = d/σ²: the loss grows like 1/σ².
    assert model.dsm_loss_and_grad(X, noise_std=0.01, seed=4)[0] > 1000


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes(dtype, rng):
    model, _ = make_model(2, (8,), dtype=dtype)
    X = rng.normal(size=(10, 2))
    for loss, grads in (
        model.ssm_loss_and_grad(X, 2, 0),
        model.dsm_loss_and_grad(X, 0.1, 0),
    ):
        assert np.isfinite(loss)
        assert all(g.dtype == np.dtype(dtype) for g in grads)


def test_bad_arguments(rng):
    model, _ = make_model(2, (4,))
    X = rng.normal(size=(5, 2))
    with pytest.raises(ValueError, match="n_projections"):
        model.ssm_loss_and_grad(X, n_projections=0)
    with pytest.raises(ValueError, match="n_projections"):
        model.ssm_loss_and_grad(X, n_projections=5000)
    with pytest.raises(ValueError, match="projection"):
        model.ssm_loss_and_grad(X, projection="uniform")
    with pytest.raises(TypeError, match="n_projections"):
        model.ssm_loss_and_grad(X, n_projections=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^n_projections must be an int, got float$"):
        model.ssm_loss_and_grad(X, n_projections=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="^noise_std must be a number, got str$"):
        model.dsm_loss_and_grad(X, noise_std="1")  # type: ignore[arg-type]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="noise_std"):
            model.dsm_loss_and_grad(X, noise_std=bad)
    with pytest.raises(ValueError, match="empty"):
        model.dsm_loss_and_grad(np.zeros((0, 2)), noise_std=0.1)
