"""Values of the engine (energy, score, hessian_trace, ISM/ESM losses and gradients) against
the independent float64 numpy reference in ``reference.py``.

Tolerances (error measured as max |engine - reference| over the output, relative to the
output's scale max(1, max |reference|)):
  float64: 1e-11 for energy, score, hessian_trace, ism_loss (observed <= 1e-15 over 300
           random architectures); gradients 1e-9 vs the 4th-order finite-difference gradient
           of the reference loss (observed <= 1e-11; the stencil's own error is ~1e-11).
  float32: 1e-4 for values (the reference runs in float64 on the same float32-rounded
           params and inputs; observed <= 6e-7), 2e-3 for float32 gradients vs float64 ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from helpers import assert_close, make_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scorematch import EnergyMLP

RTOL = {"float64": 1e-11, "float32": 1e-4}
LAYOUTS = ("C", "F", "rows_step2", "cols_reversed", "rows_reversed", "both_strided", "misaligned")


def layout(X: np.ndarray, kind: str) -> np.ndarray:
    """A view holding exactly the values of X (shape (n, dim)) in the requested memory layout.
    Gaps of strided views hold NaN: an engine that ignores strides would read them and fail."""
    n, d = X.shape
    if kind == "C":
        out = np.ascontiguousarray(X)
    elif kind == "F":
        out = np.asfortranarray(X)
    elif kind == "rows_step2":
        big = np.full((2 * n, d), np.nan, dtype=X.dtype)
        big[::2] = X
        out = big[::2]
    elif kind == "cols_reversed":
        out = X[:, ::-1].copy()[:, ::-1]
    elif kind == "rows_reversed":
        out = X[::-1].copy()[::-1]
    elif kind == "both_strided":
        big = np.full((3 * n, 2 * d), np.nan, dtype=X.dtype)
        big[::3, ::2] = X
        out = big[::3, ::2]
    elif kind == "misaligned":
        # Floats at an odd byte offset, as in a packed record array: copied, never read as is.
        buf = np.zeros(X.nbytes + 1, dtype=np.uint8)
        out = buf[1:].view(X.dtype).reshape(n, d)
        out[...] = X
        assert not out.flags.aligned
    else:
        raise ValueError(kind)
    assert out.shape == (n, d) and np.array_equal(out, X)
    if kind == "F" and n > 1 and d > 1:
        assert out.flags.f_contiguous and not out.flags.c_contiguous
    if kind in ("rows_step2", "both_strided", "cols_reversed", "rows_reversed") and n > 1 and d > 1:
        assert not out.flags.c_contiguous and not out.flags.f_contiguous
    return out


@st.composite
def cases(draw):
    dim = draw(st.integers(1, 20))
    hidden = tuple(draw(st.lists(st.integers(1, 64), min_size=1, max_size=4)))
    activation = draw(st.sampled_from(ref.ACTIVATIONS))
    alpha = draw(st.one_of(st.just(0.0), st.floats(0.05, 3.0)))
    n = draw(st.integers(1, 300))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    kind = draw(st.sampled_from(LAYOUTS))
    seed = draw(st.integers(0, 2**32 - 1))
    return dim, hidden, activation, alpha, n, dtype, kind, seed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_values_match_reference(case):
    dim, hidden, activation, alpha, n, dtype, kind, seed = case
    model, params = make_model(dim, hidden, activation, alpha, dtype, seed)
    X = np.random.default_rng(seed + 1).normal(0.0, 2.0, size=(n, dim)).astype(dtype)
    Xv = layout(X, kind)
    X64 = X.astype(np.float64)
    tol = RTOL[dtype]

    E, S, T = model.energy(Xv), model.score(Xv), model.hessian_trace(Xv)
    for out, shape in ((E, (n,)), (S, (n, dim)), (T, (n,))):
        assert out.dtype == np.dtype(dtype) and out.shape == shape

    E_ref = ref.energy(params, X64, activation, alpha)
    S_ref = ref.score(params, X64, activation, alpha)
    T_ref = ref.hessian_trace(params, X64, activation, alpha)
    assert_close(E, E_ref, tol, "energy")
    assert_close(S, S_ref, tol, "score")
    assert_close(T, T_ref, tol, "hessian_trace")

    loss = model.ism_loss(Xv)
    assert isinstance(loss, float)
    terms = T_ref + 0.5 * np.sum(S_ref**2, axis=1)
    scale = max(1.0, float(np.mean(np.abs(terms))))
    assert abs(loss - float(np.mean(terms))) <= tol * scale, (loss, float(np.mean(terms)))


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_values_exact_numbers_small_model(activation, dtype):
    """A fixed tiny model with hand-checkable size, all outputs against the reference."""
    params = [
        np.array([[0.5, -0.25], [1.0, 0.75], [-0.5, 0.125]]),
        np.array([0.1, -0.2, 0.3]),
        np.array([[1.5, -0.5, 0.25]]),
        np.array([0.75]),
    ]
    model = EnergyMLP.from_params(params, activation=activation, alpha=0.5, dtype=dtype)
    X = np.array([[0.0, 0.0], [1.0, -2.0], [-3.5, 0.25]])
    tol = RTOL[dtype]
    assert_close(model.energy(X), ref.energy(params, X, activation, 0.5), tol)
    assert_close(model.score(X), ref.score(params, X, activation, 0.5), tol)
    assert_close(model.hessian_trace(X), ref.hessian_trace(params, X, activation, 0.5), tol)
    assert abs(model.ism_loss(X) - ref.ism_loss(params, X, activation, 0.5)) <= tol


def test_single_unit_energy_is_the_formula():
    # E(x) = 2 softplus(x1 - x2) - 1 + (0.5/2)||x||^2 at x = (1, 1): 2 log 2 - 1 + 0.5
    model = EnergyMLP.from_params(
        [np.array([[1.0, -1.0]]), np.array([0.0]), np.array([[2.0]]), np.array([-1.0])], alpha=0.5
    )
    X = np.array([[1.0, 1.0]])
    assert model.energy(X)[0] == pytest.approx(2 * np.log(2) - 0.5, abs=1e-15)
    # grad E = 2 * sigmoid(0) * (1, -1) + 0.5 x = (1.5, -0.5)
    np.testing.assert_allclose(model.score(X), [[-1.5, 0.5]], atol=1e-15)
    # Lap E = 2 sigma''(0) * ||(1,-1)||^2 + 0.5 * 2 = 2 * 0.25 * 2 + 1 = 2
    np.testing.assert_allclose(model.hessian_trace(X), [-2.0], atol=1e-15)


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_extreme_inputs_stay_finite_and_correct(activation):
    """Pre-activations far in the tails (|z| ~ 1e3): no overflow, values match the reference."""
    model, params = make_model(3, (8, 8), activation, alpha=0.0, seed=4)
    X = np.array([[1e3, -1e3, 5e2], [-1e3, 1e3, -5e2], [300.0, 0.0, -300.0]])
    E_ref = ref.energy(params, X, activation)
    S_ref = ref.score(params, X, activation)
    T_ref = ref.hessian_trace(params, X, activation)
    # scale here is |E| ~ 1e3, so the relative tolerance is against that
    assert_close(model.energy(X), E_ref, 1e-12, "energy")
    assert_close(model.score(X), S_ref, 1e-12, "score")
    assert_close(model.hessian_trace(X), T_ref, 1e-12, "hessian_trace")


# ---------------------------------------------------------------- parameter gradients

GRAD_ARCHS = [
    (1, (3,)),
    (2, (3, 2)),
    (3, (2, 3, 2)),
    (2, (4, 1, 3, 2)),
]


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dim,hidden", GRAD_ARCHS)
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_ism_grad_matches_finite_differences(activation, dim, hidden, alpha):
    model, params = make_model(dim, hidden, activation, alpha, seed=dim + len(hidden))
    X = np.random.default_rng(7).normal(0.0, 2.0, size=(9, dim))
    loss, grads = model.ism_loss_and_grad(X)
    ref_loss = ref.ism_loss(params, X, activation, alpha)
    assert abs(loss - ref_loss) <= 1e-9 * max(1.0, abs(ref_loss))
    assert loss == model.ism_loss(X)
    fd = ref.fd_grad(lambda p: ref.ism_loss(p, X, activation, alpha), params)
    assert len(grads) == len(params)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in fd))
    for i, (g, f, p) in enumerate(zip(grads, fd, params, strict=True)):
        assert g.shape == p.shape and g.dtype == np.float64
        err = float(np.max(np.abs(g - f)))
        assert err <= 1e-9 * scale, f"grad {i}: {err:.3e} (scale {scale:.3e})"


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
@pytest.mark.parametrize("dim,hidden", GRAD_ARCHS)
@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_esm_grad_matches_finite_differences(activation, dim, hidden, alpha):
    model, params = make_model(dim, hidden, activation, alpha, seed=10 + dim)
    rng = np.random.default_rng(8)
    X = rng.normal(0.0, 2.0, size=(9, dim))
    target = rng.normal(0.0, 1.0, size=(9, dim))
    loss, grads = model.esm_loss_and_grad(X, target)
    ref_loss = ref.esm_loss(params, X, target, activation, alpha)
    assert abs(loss - ref_loss) <= 1e-9 * max(1.0, abs(ref_loss))
    fd = ref.fd_grad(lambda p: ref.esm_loss(p, X, target, activation, alpha), params)
    scale = max(1.0, max(float(np.max(np.abs(g))) for g in fd))
    for i, (g, f, p) in enumerate(zip(grads, fd, params, strict=True)):
        assert g.shape == p.shape and g.dtype == np.float64
        err = float(np.max(np.abs(g - f)))
        assert err <= 1e-9 * scale, f"grad {i}: {err:.3e} (scale {scale:.3e})"


@pytest.mark.parametrize("dim", [1, 3])
def test_esm_with_own_score_as_target_is_zero(dim):
    model, _ = make_model(dim, (5, 4), "silu", 0.3, seed=2)
    X = np.random.default_rng(0).normal(0, 2, size=(300, dim))
    loss, grads = model.esm_loss_and_grad(X, model.score(X))
    if dim >= 2:
        # The one-tangent tape takes the score by the score pass's own code: exactly zero.
        assert loss == 0.0
        assert all(not np.any(g) for g in grads)
    else:
        # The d-tangent tape computes the score its own way: equal up to rounding.
        assert 0.0 <= loss <= 1e-28
        for g in grads:
            assert np.max(np.abs(g)) <= 1e-13


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_float32_gradients_close_to_float64(activation):
    _model64, params = make_model(3, (6, 5), activation, 0.2, "float64", seed=21)
    model32 = EnergyMLP.from_params(params, activation=activation, alpha=0.2, dtype="float32")
    params32 = [p.astype(np.float64) for p in model32.params]
    X = np.random.default_rng(1).normal(0, 2, size=(50, 3))
    X32 = X.astype(np.float32).astype(np.float64)
    target = np.random.default_rng(2).normal(size=(50, 3))
    for fn32, fn64 in (
        (lambda: model32.ism_loss_and_grad(X32), lambda m: m.ism_loss_and_grad(X32)),
        (
            lambda: model32.esm_loss_and_grad(X32, target),
            lambda m: m.esm_loss_and_grad(X32, target),
        ),
    ):
        l32, g32 = fn32()
        l64, g64 = fn64(EnergyMLP.from_params(params32, activation=activation, alpha=0.2))
        assert abs(l32 - l64) <= 1e-3 * max(1.0, abs(l64))
        scale = max(1.0, max(float(np.max(np.abs(g))) for g in g64))
        for a, b in zip(g32, g64, strict=True):
            assert a.dtype == np.float32
            assert float(np.max(np.abs(a - b))) <= 2e-3 * scale


@settings(max_examples=60, deadline=None)
@given(
    dim=st.integers(1, 6),
    hidden=st.lists(st.integers(1, 8), min_size=1, max_size=3),
    activation=st.sampled_from(ref.ACTIVATIONS),
    n=st.integers(1, 40),
    seed=st.integers(0, 1000),
)
def test_ism_grad_is_the_directional_derivative(dim, hidden, activation, n, seed):
    """Drawn architectures: the gradient's projection on a random direction equals the
    derivative of the reference ISM loss along it (one 4th-order stencil per example)."""
    model, params = make_model(dim, tuple(hidden), activation, 0.1, seed=seed)
    rng = np.random.default_rng(seed + 5)
    X = rng.normal(0, 2, size=(n, dim))
    _, grads = model.ism_loss_and_grad(X)
    V = [rng.normal(size=p.shape) for p in params]
    f = lambda t: ref.ism_loss(
        [p + t * v for p, v in zip(params, V, strict=True)], X, activation, 0.1
    )

    def stencil(h):  # 4th-order central difference, error ~ h^4 |f^(5)| / 30
        return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)

    dd = (16 * stencil(2.5e-4) - stencil(5e-4)) / 15  # Richardson: cancels the h^4 term
    proj = sum(float(np.sum(g * v)) for g, v in zip(grads, V, strict=True))
    assert abs(proj - dd) <= 1e-9 * max(1.0, abs(dd)), (proj, dd)


def test_outputs_are_new_arrays_of_model_dtype():
    for dtype in ("float64", "float32"):
        model, _ = make_model(3, (4,), dtype=dtype)
        for Xdtype in (np.float64, np.float32):
            X = np.random.default_rng(0).normal(size=(10, 3)).astype(Xdtype)
            X0 = X.copy()
            outs = [model.energy(X), model.score(X), model.hessian_trace(X)]
            outs += model.ism_loss_and_grad(X)[1] + model.esm_loss_and_grad(X, X)[1]
            for out in outs:
                assert out.dtype == np.dtype(dtype)
                assert not np.shares_memory(out, X)
                assert out.flags.writeable
            S = outs[1]
            S[...] = 123.0  # writing to an output never touches the input
            assert np.array_equal(X, X0)
            # and the model still gives the same numbers (no aliasing of internal state)
            assert not np.array_equal(model.score(X), S)


# ---------------------------------------------------------------- batches over many chunks


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("dim", [1, 5, 20])
@pytest.mark.parametrize("n", [255, 256, 257, 513, 2049])
def test_large_batches_across_chunk_boundaries(dtype, dim, n):
    """Batches larger than the engine's chunks (score: 256 rows; Laplacian: depends on dim),
    every row checked against the reference."""
    activation = ("softplus", "tanh", "silu")[n % 3]
    model, params = make_model(dim, (16, 8), activation, 0.3, dtype, seed=n + dim)
    rng = np.random.default_rng(n)
    X = rng.normal(0, 2, size=(n, dim)).astype(dtype)
    target = rng.normal(size=(n, dim)).astype(dtype)
    X64 = X.astype(np.float64)
    tol = RTOL[dtype]
    assert_close(model.energy(X), ref.energy(params, X64, activation, 0.3), tol, "energy")
    S_ref = ref.score(params, X64, activation, 0.3)
    assert_close(model.score(X), S_ref, tol, "score")
    T_ref = ref.hessian_trace(params, X64, activation, 0.3)
    assert_close(model.hessian_trace(X), T_ref, tol, "hessian_trace")
    ism = float(np.mean(T_ref + 0.5 * np.sum(S_ref**2, axis=1)))
    assert abs(model.ism_loss(X) - ism) <= tol * max(1.0, abs(ism))
    assert abs(model.ism_loss_and_grad(X)[0] - ism) <= tol * max(1.0, abs(ism))
    esm = ref.esm_loss(params, X64, target.astype(np.float64), activation, 0.3)
    assert abs(model.esm_loss_and_grad(X, target)[0] - esm) <= tol * max(1.0, abs(esm))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_wide_layers_match_reference(activation, dtype):
    """Layers wider than the hypothesis cases (≤ 64): the activation loops work in blocks of
    64 units and the GEMM in panels of 8–32 columns, so widths 64, 65 and 130 cross both
    (a full block, one past it, two blocks and a remainder)."""
    dim, hidden, alpha = 7, (130, 65, 64), 0.2
    model, params = make_model(dim, hidden, activation, alpha, dtype, seed=64, scale=0.5)
    X = np.random.default_rng(65).normal(0, 2, size=(37, dim)).astype(dtype)
    X64 = X.astype(np.float64)
    tol = RTOL[dtype]
    assert_close(model.energy(X), ref.energy(params, X64, activation, alpha), tol, "energy")
    S_ref = ref.score(params, X64, activation, alpha)
    assert_close(model.score(X), S_ref, tol, "score")
    T_ref = ref.hessian_trace(params, X64, activation, alpha)
    assert_close(model.hessian_trace(X), T_ref, tol, "hessian_trace")
    ism = float(np.mean(T_ref + 0.5 * np.sum(S_ref**2, axis=1)))
    loss, grads = model.ism_loss_and_grad(X)
    assert abs(loss - ism) <= tol * max(1.0, abs(ism))
    if dtype == "float64":
        # The gradient along a unit direction V against the reference loss's derivative
        # (4th-order stencil, Richardson-extrapolated), as for the drawn architectures.
        rng = np.random.default_rng(66)
        V = [rng.normal(size=p.shape) for p in params]
        norm = np.sqrt(sum(float(np.sum(v * v)) for v in V))

        def f(t):
            return ref.ism_loss(
                [p + t * v / norm for p, v in zip(params, V, strict=True)], X64, activation, alpha
            )

        def stencil(h):
            return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)

        dd = (16 * stencil(5e-4) - stencil(1e-3)) / 15
        proj = sum(float(np.sum(g * v)) for g, v in zip(grads, V, strict=True)) / norm
        gnorm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
        assert abs(proj - dd) <= 1e-8 * max(1.0, gnorm), (proj, dd, gnorm)


@pytest.mark.parametrize("dim", [2, 20])
def test_gradients_are_means_over_rows(dim):
    """The gradient of the batch mean is the row-weighted mean of the gradients of its parts,
    whatever the chunking (parts of 1, 300 and 1699 rows; 2000 rows in all)."""
    model, _ = make_model(dim, (12, 7), "silu", 0.1, seed=dim)
    rng = np.random.default_rng(dim)
    X = rng.normal(0, 2, size=(2000, dim))
    target = rng.normal(size=(2000, dim))
    cuts = [(0, 1), (1, 301), (301, 2000)]
    for fn in (
        lambda a, b: model.ism_loss_and_grad(X[a:b]),
        lambda a, b: model.esm_loss_and_grad(X[a:b], target[a:b]),
    ):
        loss, grads = fn(0, 2000)
        parts = [(b - a, *fn(a, b)) for a, b in cuts]
        mean_loss = sum(k * lp for k, lp, _ in parts) / 2000
        assert abs(loss - mean_loss) <= 1e-12 * max(1.0, abs(loss))
        for i, g in enumerate(grads):
            mean_g = sum(k * gp[i] for k, _, gp in parts) / 2000
            scale = max(1.0, float(np.max(np.abs(g))))
            assert float(np.max(np.abs(g - mean_g))) <= 1e-12 * scale


def test_rows_do_not_depend_on_the_rest_of_the_batch():
    model, _ = make_model(7, (24, 24), "tanh", 0.0, seed=5)
    X = np.random.default_rng(5).normal(0, 2, size=(1100, 7))
    full = [model.energy(X), model.score(X), model.hessian_trace(X)]
    for a, b in ((0, 1), (255, 258), (600, 1100), (1099, 1100)):
        part = [model.energy(X[a:b]), model.score(X[a:b]), model.hessian_trace(X[a:b])]
        for f, p in zip(full, part, strict=True):
            assert_close(p, f[a:b], 1e-13)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tiny_calls_that_keep_the_gil_give_the_batched_bits(dtype):
    """Per-row calls on at most 16 rows and 2**16 multiply-adds run at once with the GIL held
    (rust/python/src/model.rs, HOLD_GIL_WORK); for this model that is up to 3 rows of score,
    7 of energy, 1 of hessian_trace. Below, at and above those cuts every row has the bits of
    the same row in a large GIL-free batch, whether the input is read in place or converted."""
    model = EnergyMLP(2, hidden=(64, 64, 64), alpha=1.0, dtype=dtype, seed=1)
    X = np.random.default_rng(6).normal(0, 2, size=(300, 2)).astype(dtype)
    methods = ("energy", "score", "hessian_trace")
    full = {m: getattr(model, m)(X) for m in methods}
    for n in (1, 2, 3, 4, 7, 8, 16, 17, 40):
        for m in methods:
            assert np.array_equal(getattr(model, m)(X[:n]), full[m][:n]), (m, n)
    one = X[5:6]
    same_values = [
        np.asfortranarray(X[5:7])[:1],
        X[5:7, ::-1][:1, ::-1],  # negative column stride
        one.tolist(),
        one.astype(one.dtype.newbyteorder()),  # converted by as_batch
    ]
    for m in methods:
        for v in same_values:
            assert np.array_equal(getattr(model, m)(v), full[m][5:6]), (m, v)


@settings(max_examples=12, deadline=None)
@given(
    dim=st.integers(1, 20),
    hidden=st.lists(st.integers(1, 64), min_size=1, max_size=4),
    activation=st.sampled_from(ref.ACTIVATIONS),
    alpha=st.sampled_from([0.0, 0.5]),
    n=st.integers(1, 100),
    seed=st.integers(0, 10**6),
)
def test_grads_of_large_models_along_a_direction(dim, hidden, activation, alpha, n, seed):
    """Large drawn architectures: for ISM and ESM, <grad, V> equals the derivative of the
    reference loss along a unit direction V (Richardson-extrapolated 4th-order stencil);
    error within 1e-8 of max(1, |grad|)."""
    model, params = make_model(dim, tuple(hidden), activation, alpha, seed=seed)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(0, 2, size=(n, dim))
    target = rng.normal(size=(n, dim))
    V = [rng.normal(size=p.shape) for p in params]
    norm = np.sqrt(sum(float(np.sum(v * v)) for v in V))
    V = [v / norm for v in V]
    for (_, grads), loss in (
        (model.ism_loss_and_grad(X), lambda q: ref.ism_loss(q, X, activation, alpha)),
        (
            model.esm_loss_and_grad(X, target),
            lambda q: ref.esm_loss(q, X, target, activation, alpha),
        ),
    ):

        def f(t, loss=loss):
            return loss([p + t * v for p, v in zip(params, V, strict=True)])

        def stencil(h, f=f):
            return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)

        dd = (16 * stencil(5e-4) - stencil(1e-3)) / 15
        proj = sum(float(np.sum(g * v)) for g, v in zip(grads, V, strict=True))
        gnorm = np.sqrt(sum(float(np.sum(g * g)) for g in grads))
        assert abs(proj - dd) <= 1e-8 * max(1.0, gnorm), (proj, dd, gnorm)
