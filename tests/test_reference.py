"""Checks of the numpy reference itself, so that a disagreement with the engine points at the
engine. All in float64."""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_activation_derivatives_match_finite_differences(activation):
    z = np.linspace(-8, 8, 161)
    h = 1e-5
    _s0, s1, s2 = ref.act(activation, z)
    fd1 = (ref.act(activation, z + h)[0] - ref.act(activation, z - h)[0]) / (2 * h)
    fd2 = (ref.act(activation, z + h)[1] - ref.act(activation, z - h)[1]) / (2 * h)
    np.testing.assert_allclose(s1, fd1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(s2, fd2, rtol=0, atol=1e-9)


def test_activation_values():
    z = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    np.testing.assert_allclose(ref.act("softplus", z)[0], np.log(1 + np.exp(z)), rtol=1e-13)
    np.testing.assert_allclose(ref.act("tanh", z)[0], np.tanh(z), rtol=1e-14)
    np.testing.assert_allclose(ref.act("silu", z)[0], z / (1 + np.exp(-z)), rtol=1e-14, atol=1e-16)
    # softplus stays finite and exact far out
    big = np.array([-800.0, 800.0])
    np.testing.assert_allclose(ref.act("softplus", big)[0], [0.0, 800.0], atol=1e-300)


def test_one_unit_closed_form():
    # E(x) = w tanh(a x + b) + c + alpha/2 x^2 in one dimension
    a, b, w, c, alpha = 0.7, -0.2, 1.3, 0.4, 0.5
    params = [np.array([[a]]), np.array([b]), np.array([[w]]), np.array([c])]
    x = np.array([[-1.5], [0.0], [2.0]])
    t = np.tanh(a * x[:, 0] + b)
    np.testing.assert_allclose(
        ref.energy(params, x, "tanh", alpha), w * t + c + alpha / 2 * x[:, 0] ** 2, rtol=1e-15
    )
    g = w * (1 - t**2) * a + alpha * x[:, 0]
    np.testing.assert_allclose(ref.score(params, x, "tanh", alpha)[:, 0], -g, rtol=1e-14)
    lap = w * (-2 * t * (1 - t**2)) * a * a + alpha
    np.testing.assert_allclose(ref.hessian_trace(params, x, "tanh", alpha), -lap, rtol=1e-14)


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_score_and_hessian_match_finite_differences(activation, alpha):
    rng = np.random.default_rng(3)
    dim, hidden = 4, (6, 5, 3)
    params = ref.random_params(rng, dim, hidden)
    X = rng.normal(0, 2, size=(7, dim))
    h = 1e-5
    g = ref.grad_x(params, X, activation, alpha)
    H = ref.hessian(params, X, activation, alpha)
    fd_g = np.zeros_like(g)
    fd_H = np.zeros_like(H)
    for k in range(dim):
        e = np.zeros(dim)
        e[k] = h
        fd_g[:, k] = (
            ref.energy(params, X + e, activation, alpha)
            - ref.energy(params, X - e, activation, alpha)
        ) / (2 * h)
        fd_H[:, :, k] = (
            ref.grad_x(params, X + e, activation, alpha)
            - ref.grad_x(params, X - e, activation, alpha)
        ) / (2 * h)
    np.testing.assert_allclose(g, fd_g, rtol=0, atol=1e-8)
    np.testing.assert_allclose(H, fd_H, rtol=0, atol=1e-8)
    np.testing.assert_allclose(H, H.transpose(0, 2, 1), rtol=0, atol=1e-14)
    np.testing.assert_allclose(ref.score(params, X, activation, alpha), -g, rtol=0, atol=0)


def test_fd_grad_on_a_quadratic():
    # d/dA of sum(A^3) = 3 A^2; the 4th-order stencil is exact for cubics up to rounding
    A = np.array([[0.3, -1.2], [2.0, 0.5]])
    g = ref.fd_grad(lambda p: float(np.sum(p[0] ** 3)), [A])[0]
    np.testing.assert_allclose(g, 3 * A**2, rtol=1e-10)
