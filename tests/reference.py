"""An independent float64 numpy reference of the energy MLP (never calls scorematch).

Parameters follow the public layout ``[W_1, b_1, ..., W_L, b_L, w, c]`` with ``W_l`` of shape
(n_out, n_in), ``w`` of shape (1, n_L) and ``c`` of shape (1,).

    E(x) = w . sigma(W_L ... sigma(W_1 x + b_1) ... + b_L) + c + (alpha/2) ||x||^2

* ``score`` is ``-grad_x E`` by a hand-written reverse pass.
* ``hessian`` is the full d x d Hessian of E per sample, from the second-order chain rule
  written with *reverse* adjoints (not the engine's forward-Laplacian):

      Hess_x E = sum_l  A_l^T diag(sigma''(z_l) * hbar_l) A_l  + alpha I,

  where ``A_l = dz_l/dx`` (n_l x d) is the forward Jacobian of the pre-activations and
  ``hbar_l = dE/dh_l`` is the reverse adjoint of layer l's output. (Every linear node has a
  zero second derivative; each nonlinearity contributes its adjoint times its second
  derivative, contracted with the Jacobians of its input.)
* ``hessian_trace = -trace(Hess_x E)``; ``ism_loss = mean(hessian_trace + 1/2 ||score||^2)``;
  ``esm_loss = mean 1/2 ||score - target||^2``.
* ``fd_grad`` gives parameter gradients of any reference loss by a 4th-order central
  difference stencil in float64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ACTIVATIONS = ("softplus", "tanh", "silu")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # 0.5 (1 + tanh(z/2)) is the logistic function, stable for every z.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def act(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sigma, sigma', sigma'') of ``z`` for the named activation."""
    if name == "softplus":
        s = _sigmoid(z)
        return np.logaddexp(0.0, z), s, s * (1.0 - s)
    if name == "tanh":
        t = np.tanh(z)
        d1 = 1.0 - t * t
        return t, d1, -2.0 * t * d1
    if name == "silu":
        s = _sigmoid(z)
        # silu = z s;  silu' = s (1 + z (1 - s));  silu'' = s (1 - s) (2 + z (1 - 2 s))
        return z * s, s * (1.0 + z * (1.0 - s)), s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    raise ValueError(name)


def _split(
    params: Sequence[np.ndarray],
) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, float]:
    p = [np.asarray(a, dtype=np.float64) for a in params]
    assert len(p) >= 4 and len(p) % 2 == 0, "params must be [W_1, b_1, ..., w, c]"
    layers = [(p[i], p[i + 1]) for i in range(0, len(p) - 2, 2)]
    w, c = p[-2], p[-1]
    assert w.ndim == 2 and w.shape[0] == 1 and c.shape == (1,)
    return layers, w[0], float(c[0])


def _forward(params, X, activation):
    layers, w, c = _split(params)
    X = np.asarray(X, dtype=np.float64)
    hs, zs, d1s, d2s = [X], [], [], []
    h = X
    for W, b in layers:
        z = h @ W.T + b
        s0, s1, s2 = act(activation, z)
        zs.append(z)
        d1s.append(s1)
        d2s.append(s2)
        h = s0
        hs.append(h)
    return layers, w, c, hs, zs, d1s, d2s


def energy(params, X, activation="softplus", alpha=0.0):
    """E(x) per row, shape (n,)."""
    _layers, w, c, hs, *_ = _forward(params, X, activation)
    X = np.asarray(X, dtype=np.float64)
    return hs[-1] @ w + c + 0.5 * alpha * np.sum(X * X, axis=1)


def _adjoints(layers, w, d1s, n):
    """hbar_l = dE/dh_l for l = L..0 (returned in order 0..L), rows = samples."""
    hbar = np.broadcast_to(w, (n, w.shape[0])).copy()
    out = [hbar]
    for (W, _), s1 in zip(reversed(layers), reversed(d1s), strict=True):
        zbar = s1 * hbar
        hbar = zbar @ W
        out.append(hbar)
    return out[::-1]


def grad_x(params, X, activation="softplus", alpha=0.0):
    """grad_x E per row, shape (n, d), by a reverse pass."""
    layers, w, _c, _hs, _zs, d1s, _d2s = _forward(params, X, activation)
    X = np.asarray(X, dtype=np.float64)
    hbars = _adjoints(layers, w, d1s, X.shape[0])
    return hbars[0] + alpha * X


def score(params, X, activation="softplus", alpha=0.0):
    """s(x) = -grad_x E per row, shape (n, d)."""
    return -grad_x(params, X, activation, alpha)


def hessian(params, X, activation="softplus", alpha=0.0):
    """Full Hessian of E w.r.t. x per row, shape (n, d, d)."""
    layers, w, _c, _hs, _zs, d1s, d2s = _forward(params, X, activation)
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    hbars = _adjoints(layers, w, d1s, n)
    H = np.zeros((n, d, d))
    J = np.broadcast_to(np.eye(d), (n, d, d))  # J_{l-1} = dh_{l-1}/dx, (n, n_{l-1}, d)
    for l, (W, _) in enumerate(layers):
        A = np.matmul(W, J)  # dz_l/dx, (n, n_l, d)
        coef = d2s[l] * hbars[l + 1]  # sigma''(z_l) * dE/dh_l, (n, n_l)
        H += np.matmul(A.transpose(0, 2, 1), coef[:, :, None] * A)  # sum_i coef_i a_i a_i^T
        J = d1s[l][:, :, None] * A
    H += alpha * np.eye(d)
    return H


def hessian_trace(params, X, activation="softplus", alpha=0.0):
    """tr(grad_x s) = -Laplacian_x E per row, shape (n,)."""
    return -np.trace(hessian(params, X, activation, alpha), axis1=1, axis2=2)


def ism_loss(params, X, activation="softplus", alpha=0.0):
    s = score(params, X, activation, alpha)
    return float(np.mean(hessian_trace(params, X, activation, alpha) + 0.5 * np.sum(s * s, axis=1)))


def esm_loss(params, X, target, activation="softplus", alpha=0.0):
    r = score(params, X, activation, alpha) - np.asarray(target, dtype=np.float64)
    return float(np.mean(0.5 * np.sum(r * r, axis=1)))


def fd_grad(loss: Callable[[list[np.ndarray]], float], params, h: float = 2e-4) -> list[np.ndarray]:
    """Gradient of ``loss(params)`` by the 4th-order central stencil
    (-f(+2h) + 8 f(+h) - 8 f(-h) + f(-2h)) / (12 h), one parameter at a time, in float64."""
    base = [np.array(p, dtype=np.float64) for p in params]
    grads = []
    for k, p in enumerate(base):
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            vals = []
            for step in (2 * h, h, -h, -2 * h):
                q = [a.copy() for a in base]
                q[k][idx] += step
                vals.append(loss(q))
            g[idx] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
        grads.append(g)
    return grads


def random_params(rng: np.random.Generator, dim: int, hidden: Sequence[int], scale: float = 1.0):
    """Parameters at a moderate scale (values stay O(1) for X ~ N(0, 2^2)):
    W_l ~ N(0, scale^2 / (4 fan_in)) for the first layer (inputs have std 2), N(0, scale^2/fan_in)
    afterwards; biases ~ N(0, 0.5^2); w ~ N(0, 1/n_L); c ~ N(0, 1)."""
    params = []
    n_in = dim
    for i, n_out in enumerate(hidden):
        std = scale / np.sqrt(n_in) / (2.0 if i == 0 else 1.0)
        params.append(rng.normal(0.0, std, size=(n_out, n_in)))
        params.append(rng.normal(0.0, 0.5, size=(n_out,)))
        n_in = n_out
    params.append(rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(1, n_in)))
    params.append(rng.normal(0.0, 1.0, size=(1,)))
    return params
