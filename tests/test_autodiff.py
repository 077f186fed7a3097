"""The engine against automatic differentiation (JAX, float64), where JAX is installed.

A second reference, independent of ``reference.py``: the model is written once as a plain
energy function, and JAX derives everything else from it — the score by reverse mode, the
Hessian trace from the full Hessian, the ISM and ESM parameter gradients by differentiating
the losses with respect to the parameters (third derivatives of the energy for ISM). Nothing
here shares code or formulas with the engine's forward-Laplacian and reverse passes.

Tolerances (max |engine - jax| relative to the output's scale, as in test_engine.py):
  float64: 1e-12 for values and gradients (two exact computations in different orders;
           observed <= 7e-16 over 24 random architectures);
  float32: 1e-4 for values and gradients (the engine in float32 against JAX in float64 on
           the same float32-rounded parameters and inputs; observed <= 2e-7).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close, make_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

ACTIVATIONS = {"softplus": jax.nn.softplus, "tanh": jnp.tanh, "silu": jax.nn.silu}
RTOL = {"float64": 1e-12, "float32": 1e-4}


def energy_fn(activation: str, alpha: float):
    """E(params, x) for one point x, params in the public layout [W_1, b_1, ..., w, c]."""
    sigma = ACTIVATIONS[activation]

    def energy(params, x):
        h = x
        for W, b in zip(params[:-2:2], params[1:-2:2], strict=True):
            h = sigma(W @ h + b)
        w, c = params[-2], params[-1]  # shapes (1, n_L) and (1,)
        return (w @ h)[0] + c[0] + 0.5 * alpha * (x @ x)

    return energy


def derived(activation: str, alpha: float):
    """One compiled function of (params, X, target): per-row energy, score and Hessian trace,
    and the ISM and ESM losses with their parameter gradients, all by autodiff. (One jit per
    architecture: JAX's op-by-op mode took minutes for the cases below.)"""
    E = energy_fn(activation, alpha)
    energy = jax.vmap(E, in_axes=(None, 0))
    score = jax.vmap(lambda p, x: -jax.grad(E, argnums=1)(p, x), in_axes=(None, 0))
    trace = jax.vmap(lambda p, x: -jnp.trace(jax.hessian(E, argnums=1)(p, x)), in_axes=(None, 0))

    def ism(params, X):
        s = score(params, X)
        return jnp.mean(trace(params, X) + 0.5 * jnp.sum(s * s, axis=1))

    def esm(params, X, target):
        r = score(params, X) - target
        return jnp.mean(0.5 * jnp.sum(r * r, axis=1))

    def everything(params, X, target):
        return {
            "energy": energy(params, X),
            "score": score(params, X),
            "hessian_trace": trace(params, X),
            "ism": jax.value_and_grad(ism)(params, X),
            "esm": jax.value_and_grad(esm)(params, X, target),
        }

    return jax.jit(everything)


def check(model, params, X, target, rtol):
    """Every engine output against JAX, to `rtol`."""
    X64, target64 = X.astype(np.float64), target.astype(np.float64)
    want = derived(model.activation, model.alpha)([jnp.asarray(a) for a in params], X64, target64)
    assert_close(model.energy(X), want["energy"], rtol, "energy")
    assert_close(model.score(X), want["score"], rtol, "score")
    assert_close(model.hessian_trace(X), want["hessian_trace"], rtol, "hessian_trace")
    assert_close(model.ism_loss(X), want["ism"][0], rtol, "ism_loss")
    for name, (loss, grads) in [
        ("ism", model.ism_loss_and_grad(X)),
        ("esm", model.esm_loss_and_grad(X, target)),
    ]:
        want_loss, want_grads = want[name]
        assert_close(loss, want_loss, rtol, f"{name} loss")
        for i, (g, w) in enumerate(zip(grads, want_grads, strict=True)):
            assert_close(g, w, rtol, f"{name} grad[{i}]")


@st.composite
def cases(draw):
    dim = draw(st.integers(1, 8))
    hidden = tuple(draw(st.lists(st.integers(1, 24), min_size=1, max_size=3)))
    activation = draw(st.sampled_from(sorted(ACTIVATIONS)))
    alpha = draw(st.sampled_from([0.0, 0.7]))
    n = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return dim, hidden, activation, alpha, n, dtype, seed


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_engine_matches_jax_autodiff(case):
    dim, hidden, activation, alpha, n, dtype, seed = case
    model, params = make_model(dim, hidden, activation, alpha, dtype, seed)
    rng = np.random.default_rng(seed)
    X = (1.5 * rng.standard_normal((n, dim))).astype(dtype)
    target = rng.standard_normal((n, dim)).astype(dtype)
    check(model, params, X, target, RTOL[dtype])


def test_a_wide_model_matches_jax():
    """Past the engine's row chunks and GEMM panels: 3 hidden layers of 70, dim 17, 300 rows."""
    model, params = make_model(17, (70, 70, 70), "silu", 0.3, "float64", 5)
    rng = np.random.default_rng(6)
    X, target = rng.standard_normal((300, 17)), rng.standard_normal((300, 17))
    check(model, params, X, target, RTOL["float64"])
