"""The model object: parameter layout and round trips, failed updates, properties, repr,
initialization, the documented defaults, pickling and copying."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import reference as ref
from helpers import assert_close, make_model, same_arrays
from scorematch import EnergyMLP

X = np.random.default_rng(3).normal(0, 2, size=(25, 4))


def outputs(m, X=X):
    return [
        m.energy(X),
        m.score(X),
        m.hessian_trace(X),
        np.array(m.ism_loss(X)),
        *m.ism_loss_and_grad(X)[1],
    ]


def same_outputs(a, b):
    return all(
        x.dtype == y.dtype and np.array_equal(x, y)
        for x, y in zip(outputs(a), outputs(b), strict=True)
    )


# ------------------------------------------------------------------------ layout


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_params_layout_shapes_and_dtype(dtype):
    m = EnergyMLP(4, hidden=(7, 5, 3), dtype=dtype, seed=1)
    shapes = [p.shape for p in m.params]
    assert shapes == [(7, 4), (7,), (5, 7), (5,), (3, 5), (3,), (1, 3), (1,)]
    assert all(p.dtype == np.dtype(dtype) for p in m.params)
    assert m.n_params == sum(int(np.prod(s)) for s in shapes) == 28 + 7 + 35 + 5 + 15 + 3 + 3 + 1
    assert m.dim == 4 and m.hidden == (7, 5, 3) and isinstance(m.hidden, tuple)
    assert m.activation == "softplus" and m.alpha == 0.0 and m.dtype == np.dtype(dtype)


def test_params_are_the_ones_the_energy_uses():
    """The public layout is the reference's layout (rows = outputs): energies agree."""
    m = EnergyMLP(4, hidden=(6, 3), activation="silu", alpha=0.3, seed=11)
    assert_close(m.energy(X), ref.energy(m.params, X, "silu", 0.3), 1e-12)
    assert_close(m.hessian_trace(X), ref.hessian_trace(m.params, X, "silu", 0.3), 1e-12)


def test_params_are_copies():
    m = EnergyMLP(4, hidden=(3,), seed=0)
    before = m.energy(X)
    p = m.params
    p[0][...] = 0.0
    p[-1][...] = 100.0
    assert np.array_equal(m.energy(X), before)
    assert not np.array_equal(m.params[0], p[0])
    assert not np.shares_memory(m.params[0], m.params[0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trips(dtype):
    m = EnergyMLP(4, hidden=(6, 5), activation="tanh", alpha=0.7, dtype=dtype, seed=5)
    m2 = EnergyMLP.from_params(m.params, activation="tanh", alpha=0.7, dtype=dtype)
    assert same_outputs(m, m2)
    assert same_arrays(m.params, m2.params)
    # set_params with the params of another model of the same architecture
    m3 = EnergyMLP(4, hidden=(6, 5), activation="tanh", alpha=0.7, dtype=dtype, seed=99)
    assert not same_outputs(m, m3)
    m3.set_params(m.params)
    assert same_outputs(m, m3)
    # nested lists and tuples are accepted
    m4 = EnergyMLP.from_params(
        tuple(p.tolist() for p in m.params), activation="tanh", alpha=0.7, dtype=dtype
    )
    assert same_outputs(m, m4)


def test_from_params_converts_dtype_and_reads_architecture():
    params = ref.random_params(np.random.default_rng(0), 4, (5, 2))
    m32 = EnergyMLP.from_params(params, dtype="float32")
    assert m32.hidden == (5, 2) and m32.dim == 4
    for p, q in zip(m32.params, params, strict=True):
        assert p.dtype == np.float32 and np.array_equal(p, q.astype(np.float32))
    m64 = EnergyMLP.from_params([p.astype(np.float32) for p in params])
    assert all(p.dtype == np.float64 for p in m64.params)
    # integer arrays are numeric, so they are converted
    mi = EnergyMLP.from_params(
        [
            np.ones((2, 4), dtype=np.int32),
            np.zeros(2, dtype=np.int64),
            np.ones((1, 2), dtype=np.int8),
            np.zeros(1, dtype=np.uint8),
        ]
    )
    assert mi.energy(np.zeros((1, 4)))[0] == pytest.approx(2 * np.log(2), abs=1e-15)


def test_set_params_converts_and_copies():
    m = EnergyMLP(4, hidden=(3,), dtype="float32", seed=0)
    new = [p.astype(np.float64) * 0.5 for p in m.params]
    m.set_params(new)
    assert all(p.dtype == np.float32 for p in m.params)
    assert all(np.array_equal(p, q.astype(np.float32)) for p, q in zip(m.params, new, strict=True))
    before = m.energy(X)
    new[0][...] = 7.0  # the model holds its own copy
    assert np.array_equal(m.energy(X), before)


def _malformed(p):
    """(description, bad params list, exception, message pattern) for a (4 -> 3 -> 2) model."""
    return [
        ("too few", p[:-1], ValueError, "got 5"),
        ("too many", p + [p[-1]], ValueError, "got 7"),
        ("empty", [], ValueError, "got 0"),
        (
            "W transposed",
            [p[0].T] + p[1:],
            ValueError,
            r"params\[0\].*\[3, 4\]|params\[0\].*\(3, 4\)",
        ),
        ("W 3-D", [p[0][None]] + p[1:], ValueError, r"params\[0\]"),
        ("W flat", [p[0].ravel()] + p[1:], ValueError, r"params\[0\]"),
        ("b too long", p[:1] + [np.zeros(4)] + p[2:], ValueError, r"params\[1\]"),
        ("b 2-D", p[:1] + [p[1][None]] + p[2:], ValueError, r"params\[1\]"),
        ("w wrong", p[:4] + [np.zeros((2, 2))] + p[5:], ValueError, r"params\[4\]"),
        ("w flat", p[:4] + [p[4].ravel()] + p[5:], ValueError, r"params\[4\]"),
        ("c too long", p[:5] + [np.zeros(2)], ValueError, r"params\[5\]"),
        ("c 2-D", p[:5] + [np.zeros((1, 1))], ValueError, r"params\[5\]"),
        ("string", ["abc"] + p[1:], TypeError, r"params\[0\].*numeric"),
        ("None", p[:1] + [None] + p[2:], TypeError, r"params\[1\].*numeric"),
        ("complex", [p[0].astype(complex)] + p[1:], TypeError, r"params\[0\].*numeric"),
        (
            "NaN",
            [np.where(np.arange(12).reshape(3, 4) == 5, np.nan, p[0])] + p[1:],
            ValueError,
            r"params\[0\] contains NaN or Inf \(at flat index 5\)",
        ),
        ("Inf in c", p[:5] + [np.array([np.inf])], ValueError, r"params\[5\] contains NaN or Inf"),
        ("not a list", p[0], TypeError, "params must be a list"),
        ("an int", 3, TypeError, "params must be a list"),
        ("a generator", (q for q in p), TypeError, "params must be a list"),
        # Sequences of characters or ints, which were blamed as params[0]
        ("a str", "abcdef", TypeError, "^params must be a list of arrays .*, got str$"),
        ("bytes", b"abcdef", TypeError, "^params must be a list of arrays .*, got bytes$"),
    ]


@pytest.mark.parametrize("case", range(22))
def test_malformed_params_fail_and_leave_model_unchanged(case):
    m = EnergyMLP(4, hidden=(3, 2), activation="silu", seed=4)
    desc, bad, exc, pattern = _malformed(m.params)[case]
    before_params = m.params
    before = outputs(m)
    with pytest.raises(exc, match=pattern):
        m.set_params(bad)
    assert same_arrays(m.params, before_params), desc
    assert same_arrays(outputs(m), before), desc
    # from_params reads the architecture from the shapes, so it may blame a later array
    with pytest.raises(exc, match="params"):
        EnergyMLP.from_params(bad, activation="silu")


def test_from_params_wrong_counts_and_chaining():
    p = EnergyMLP(4, hidden=(3, 2), seed=0).params
    for bad in (p[:2], p[:3], [], p[:-1]):
        with pytest.raises(
            ValueError, match=rf"even number >= 4 of arrays\), got {len(bad)} arrays"
        ):
            EnergyMLP.from_params(bad)
    with pytest.raises(ValueError, match=r"params\[2\] \(W_2\) must have shape"):
        EnergyMLP.from_params([p[0], p[1], np.zeros((2, 4)), p[3], p[4], p[5]])


def test_weights_in_the_jax_layout_are_named_as_transposed():
    # Flax and Keras keep kernels as (n_in, n_out): from_params blamed b_1 ("must have shape
    # (2,), got (8,)") for the weight read the other way round, set_params gave no hint.
    m = EnergyMLP(2, hidden=(8, 4), seed=0)
    p = m.params
    flax = [p[0].T, p[1], p[2].T, p[3], p[4].T, p[5]]
    hint = (
        ": weights are (n_out, n_in), as PyTorch's Linear.weight; transpose a (n_in, n_out) "
        "kernel (JAX/Flax, Keras) first"
    )
    with pytest.raises(ValueError) as info:
        EnergyMLP.from_params(flax)
    assert str(info.value) == (
        "params[0] (W_1) has shape (2, 8) but params[1] (b_1) has 8 entries: W_1 must be "
        f"(n_1, dim) = (8, 2){hint}"
    )
    with pytest.raises(ValueError) as info:
        m.set_params(flax)
    assert str(info.value) == (
        f"params[0] must have shape (8, 2) for this architecture, got (2, 8){hint}"
    )
    # A wrong bias alone is still the bias's error.
    with pytest.raises(ValueError, match=r"^params\[1\] \(b_1\) must have shape \(8,\), got"):
        EnergyMLP.from_params([p[0], p[1][:2], *p[2:]])


def test_scalar_c_is_rejected():
    p = EnergyMLP(4, hidden=(3,), seed=0).params
    with pytest.raises(ValueError, match=r"params\[3\]"):
        EnergyMLP.from_params(p[:3] + [np.float64(0.5)])


# ------------------------------------------------------------------------ properties, repr


@pytest.mark.parametrize(
    "attr", ["dim", "hidden", "activation", "alpha", "dtype", "n_params", "params"]
)
def test_properties_are_read_only(attr):
    m = EnergyMLP(4, hidden=(3,), seed=0)
    before = getattr(m, attr)
    with pytest.raises(AttributeError):
        setattr(m, attr, before)
    with pytest.raises(AttributeError):
        delattr(m, attr)
    after = getattr(m, attr)
    if attr == "params":
        assert same_arrays(before, after)
    else:
        assert after == before


def test_no_new_attributes():
    m = EnergyMLP(4, hidden=(3,), seed=0)
    with pytest.raises(AttributeError):
        m.foo = 1


def test_repr_mentions_architecture():
    r = repr(EnergyMLP(4, hidden=(16, 8), activation="tanh", dtype="float32", alpha=0.5, seed=0))
    for part in (
        "EnergyMLP",
        "dim=4",
        "hidden=(16, 8)",
        "'tanh'",
        "float32",
        "alpha=0.5",
        str(4 * 16 + 16 + 16 * 8 + 8 + 8 + 1),
    ):
        assert part in r, (part, r)
    r0 = repr(EnergyMLP(2, hidden=(3,)))
    assert "hidden=(3,)" in r0 and "softplus" in r0 and "float64" in r0 and "alpha" not in r0


# ------------------------------------------------------------------------ initialization


def test_init_reproducible_and_seed_dependent():
    a = EnergyMLP(4, hidden=(8, 8), seed=42).params
    b = EnergyMLP(4, hidden=(8, 8), seed=42).params
    c = EnergyMLP(4, hidden=(8, 8), seed=43).params
    assert same_arrays(a, b)
    assert all(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert np.array_equal(
        EnergyMLP(4, hidden=(8, 8), seed=0).params[0], EnergyMLP(4, hidden=(8, 8)).params[0]
    )


def test_init_is_uniform_within_pytorch_bounds():
    m = EnergyMLP(50, hidden=(400, 30), seed=1)
    fan_ins = [50, 50, 400, 400, 30, 30]
    for p, fan_in in zip(m.params, fan_ins, strict=True):
        bound = 1 / np.sqrt(fan_in)
        assert np.max(np.abs(p)) <= bound
    W1 = m.params[0].ravel() * np.sqrt(50)  # uniform on [-1, 1]: 20000 draws
    assert W1.min() < -0.99 and W1.max() > 0.99
    assert abs(W1.mean()) < 0.02 and abs(W1.var() - 1 / 3) < 0.01
    # float32 init holds the float64 init rounded
    m32 = EnergyMLP(50, hidden=(400, 30), seed=1, dtype="float32")
    assert np.allclose(m32.params[2], m.params[2], rtol=1e-7, atol=0)


# ------------------------------------------------------------------------ defaults
# EnergyMLP's methods are the only place the documented defaults are written: sample and fit
# pass every option on explicitly.


def test_constructor_defaults_are_the_documented_ones():
    m = EnergyMLP(3)
    assert m.hidden == (64, 64, 64)
    assert (m.activation, m.dtype, m.alpha) == ("softplus", np.dtype("float64"), 0.0)


def test_sample_defaults_are_the_documented_ones():
    m = EnergyMLP(2, hidden=(8,), alpha=1.0, seed=1)
    res = m.sample(3)
    given = m.sample(
        3,
        n_steps=1000,
        step_size=1e-2,
        method="ula",
        burn_in=0,
        temperature=1.0,
        seed=0,
        first_chain=0,
    )
    assert np.array_equal(res.samples, given.samples)
    assert res.trajectory is None and res.acceptance_rate is None
    assert np.array_equal(res.chain_indices, [0, 1, 2])
    assert np.array_equal(res.step_size, [1e-2] * 3)  # not adapted
    assert m.sample(3, n_steps=5, return_trajectory=True).trajectory.shape == (5, 3, 2)  # thin=1
    mala = {"n_steps": 5, "burn_in": 30, "method": "mala", "adapt_step_size": True}
    tuned = m.sample(3, target_accept=0.574, **mala).step_size
    assert np.array_equal(m.sample(3, **mala).step_size, tuned)


def test_fit_defaults_are_the_documented_ones():
    # 300 rows: 270 train rows after the default 10% validation, in minibatches of 256 and 14.
    X = np.random.default_rng(0).normal(size=(300, 2))
    a, b = EnergyMLP(2, hidden=(8,), seed=1), EnergyMLP(2, hidden=(8,), seed=1)
    ha = a.fit(X)
    hb = b.fit(
        X,
        objective="ism",
        epochs=100,
        batch_size=256,
        lr=1e-3,
        optimizer="adam",
        weight_decay=0.0,
        validation=0.1,
        patience=None,
        seed=0,
        standardize=False,
    )
    assert same_arrays(a.params, b.params) and ha.n_epochs == 100
    assert ha.train_loss == hb.train_loss and ha.val_loss == hb.val_loss
    c, d = EnergyMLP(2, hidden=(8,), seed=1), EnergyMLP(2, hidden=(8,), seed=1)
    c.fit(X, objective="ssm", epochs=2)
    d.fit(X, objective="ssm", epochs=2, n_projections=1, projection="gaussian")
    assert same_arrays(c.params, d.params)


# ------------------------------------------------------------------------ pickle and copy


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_pickle_and_copies_give_identical_outputs(dtype, activation):
    m, _ = make_model(4, (6, 5), activation, 0.4, dtype, seed=8)
    for clone in (
        pickle.loads(pickle.dumps(m)),
        pickle.loads(pickle.dumps(m, protocol=0)),
        copy.deepcopy(m),
        copy.copy(m),
    ):
        assert type(clone) is EnergyMLP and clone is not m
        assert repr(clone) == repr(m)
        assert (clone.dim, clone.hidden, clone.activation, clone.alpha, clone.dtype) == (
            m.dim,
            m.hidden,
            m.activation,
            m.alpha,
            m.dtype,
        )
        assert same_outputs(clone, m)


def test_copies_are_independent():
    m = EnergyMLP(4, hidden=(3,), seed=0)
    before = m.energy(X)
    for clone in (copy.copy(m), copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        clone.set_params([p * 2 for p in clone.params])
        assert np.array_equal(m.energy(X), before)
        assert not np.array_equal(clone.energy(X), before)
