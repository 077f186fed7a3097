"""Input checking: what X, target_score and constructor arguments are accepted, the errors and
messages for the rest, and how accepted inputs are converted. Values are checked against the
numpy reference (float64 tolerance 1e-12 relative to scale unless stated)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import warnings

import numpy as np
import pytest
import reference as ref
import scorematch
from helpers import assert_close, make_model, same_arrays
from scorematch import EnergyMLP, _validate

METHODS_PER_ROW = ("energy", "score", "hessian_trace")
ALL = ("energy", "score", "hessian_trace", "ism_loss", "ism_loss_and_grad", "esm_loss_and_grad")


def call(model, name, X):
    if name == "esm_loss_and_grad":
        return model.esm_loss_and_grad(X, np.zeros(np.shape(X)) if np.ndim(X) == 2 else X)
    return getattr(model, name)(X)


@pytest.fixture
def model():
    return make_model(3, (5, 4), "tanh", 0.25, seed=7)


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(0, 2, size=(6, 3))


# ------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("name", ALL)
def test_1d_input_is_an_error_with_a_hint(model, name):
    m, _ = model
    with pytest.raises(
        ValueError, match=r"2-D with shape \(n, 3\), got an array of shape \(3,\).*reshape\(1, -1\)"
    ):
        call(m, name, np.ones(3))


def test_the_1d_hint_names_the_argument_and_fits_an_empty_array(model):
    # The hint said "X.reshape(1, -1)" for every argument, and for [] too, whose reshape
    # would be one point of no coordinates.
    m, _ = model
    want = "target_score must be 2-D with shape (n, 3), got an array of shape (3,); for a "
    with pytest.raises(ValueError) as info:
        m.esm_loss_and_grad(np.ones((2, 3)), np.ones(3))
    assert str(info.value) == want + "single point use target_score.reshape(1, -1)"
    with pytest.raises(ValueError) as info:
        m.sample(2, init=np.ones(3))
    assert str(info.value).endswith("; for a single point use init.reshape(1, -1)")
    with pytest.raises(ValueError) as info:
        m.energy([])
    assert str(info.value) == (
        "X must be 2-D with shape (n, 3), got an array of shape (0,); for no rows pass an "
        "array of shape (0, 3)"
    )
    assert m.energy(np.zeros((0, 3))).shape == (0,)


@pytest.mark.parametrize("name", ALL)
def test_3d_and_0d_inputs_are_errors(model, name):
    m, _ = model
    with pytest.raises(ValueError, match=r"shape \(2, 3, 1\)"):
        call(m, name, np.ones((2, 3, 1)))
    with pytest.raises(ValueError, match=r"shape \(\)"):
        getattr(m, name if name != "esm_loss_and_grad" else "energy")(np.float64(1.0))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(2, 4), (5, 1), (3, 0), (0, 4)])
def test_wrong_dim_names_expected_and_given_shapes(model, name, shape):
    m, _ = model
    with pytest.raises(ValueError) as info:
        call(m, name, np.ones(shape))
    msg = str(info.value)
    assert "(n, 3)" in msg and str(shape) in msg, msg


# ------------------------------------------------------------------------ bad values


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_names_first_bad_row(model, X, name, bad):
    m, _ = model
    Y = X.copy()
    Y[3, 1] = bad
    Y[5, 0] = bad
    with pytest.raises(ValueError, match=r"X contains NaN or Inf \(first at row 3\)"):
        call(m, name, Y)
    # row 0 and float32 too
    Y = X.astype(np.float32)
    Y[0, 2] = bad
    with pytest.raises(ValueError, match="row 0"):
        call(m, name, Y)


def test_nonfinite_in_strided_view_names_the_view_row(model):
    m, _ = model
    big = np.zeros((20, 6))
    big[14, 2] = np.nan  # row 7 of big[::2, ::2], column 1
    big[3, 0] = np.nan  # not part of the view
    with pytest.raises(ValueError, match="row 7"):
        m.score(big[::2, ::2])


def test_nonfinite_target_score(model, X):
    m, _ = model
    T = np.zeros_like(X)
    T[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"target_score contains NaN or Inf \(first at row 4\)"):
        m.esm_loss_and_grad(X, T)


@pytest.mark.parametrize("tshape", [(5, 3), (7, 3), (6, 2), (18,), (6, 3, 1)])
def test_esm_wrong_target_shape(model, X, tshape):
    m, _ = model
    with pytest.raises(ValueError, match="target_score") as info:
        m.esm_loss_and_grad(X, np.zeros(tshape))
    assert str(tshape) in str(info.value) or str(tshape).replace(",)", ")") in str(info.value)


# ------------------------------------------------------------------------ bad dtypes


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.complex128, object, bool, "U3"])
def test_non_float_arrays_are_type_errors(model, name, dtype):
    m, _ = model
    arr = np.ones((4, 3)).astype(dtype)
    with pytest.raises(TypeError, match=r"X must be an array of floats .*got dtype"):
        call(m, name, arr)


def test_non_float_lists_are_type_errors(model):
    m, _ = model
    with pytest.raises(TypeError, match="dtype bool"):
        m.energy([[True, False, True]])
    with pytest.raises(TypeError, match="floats"):
        m.energy([["a", "b", "c"]])
    with pytest.raises(TypeError, match="could not be converted"):
        m.energy([[1.0, 2.0, 3.0], [1.0]])
    with pytest.raises(TypeError, match="floats"):
        m.energy([[1 + 2j, 0.0, 0.0]])


def test_a_ragged_list_is_a_type_error_and_nothing_else(model):
    """numpy < 1.24 turns a ragged list into an object array with a warning; the user gets
    the TypeError newer numpy leads to, without the warning."""
    m, _ = model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError, match="X could not be converted to an array"):
            m.energy([[1.0, 2.0, 3.0], [1.0]])
        with pytest.raises(TypeError, match="x0 could not be converted to an array"):
            scorematch.langevin(lambda x: -x, [[1.0, 2.0], [1.0]], n_steps=1, step_size=0.1)
    assert [str(w.message) for w in caught] == []


def _real_array_inputs(m):
    """Every input that takes real-number arrays (``_validate.as_real_array``), by its name in
    messages: a call that passes it, a good value of it, and what its messages say it must be."""
    import scorematch as sm

    params = m.params
    floats = r"an array of floats \(float32 or float64\)"
    return {
        "X": (m.energy, np.zeros((2, 3)), floats),
        "x0": (lambda a: sm.langevin(lambda x: -x, a, 1, 0.1), np.zeros((2, 3)), floats),
        "params[0]": (lambda a: m.set_params([a, *params[1:]]), params[0], "a numeric array"),
        "trajectory": (sm.diagnostics.ess, np.zeros((6, 2, 3)), "an array of real numbers"),
        "acceptance_rate": (
            sm.diagnostics.acceptance_summary,
            np.full(3, 0.5),
            "an array of numbers",
        ),
    }


@pytest.mark.parametrize("name", ["X", "x0", "params[0]", "trajectory", "acceptance_rate"])
def test_every_real_array_input_is_converted_by_one_rule(model, name):
    m, _ = model
    run, good, expected = _real_array_inputs(m)[name]
    esc = name.replace("[", r"\[").replace("]", r"\]")
    run(good)
    with pytest.raises(TypeError, match=rf"^{esc} is a masked array; its mask would be ignored"):
        run(np.ma.masked_array(good))
    ragged = [[0.0] * good.shape[-1], [0.0]] if good.ndim == 2 else [[0.0, 0.0], [0.0]]
    with pytest.raises(TypeError, match=rf"^{esc} could not be converted to an array: "):
        run(ragged)
    for dtype in (np.complex128, bool, object, "U3"):
        with pytest.raises(TypeError, match=rf"^{esc} must be {expected}, got dtype "):
            run(good.astype(dtype))
    # Integers are taken, except in a numpy array given as X: refused rather than converted
    # unseen, with a hint (lists of ints are converted).
    ints = good.astype(np.int64)
    if name == "X":
        with pytest.raises(TypeError, match=r"got dtype int64; convert it explicitly"):
            run(ints)
        np.testing.assert_array_equal(run(ints.tolist()), run(good))
    else:
        run(ints)


# ------------------------------------------------------------------------ accepted inputs


def test_lists_of_floats_give_the_same_numbers_as_arrays(model, X):
    m, params = model
    L = X.tolist()
    for name in ("energy", "score", "hessian_trace"):
        assert np.array_equal(getattr(m, name)(L), getattr(m, name)(X))
    assert m.ism_loss(L) == m.ism_loss(X)
    l1, g1 = m.esm_loss_and_grad(L, (X * 0.5).tolist())
    l2, g2 = m.esm_loss_and_grad(X, X * 0.5)
    assert l1 == l2 and same_arrays(g1, g2)
    assert_close(m.energy(L), ref.energy(params, X, "tanh", 0.25), 1e-12)
    # tuples and lists of ints are converted too
    assert np.array_equal(m.score(tuple(map(tuple, L))), m.score(X))
    assert np.array_equal(m.energy([[1, 2, 3]]), m.energy(np.array([[1.0, 2.0, 3.0]])))


def test_lists_holding_ints_beyond_64_bits_are_numbers_too(model):
    # numpy holds such a list as an object array, which was refused as "X must be an array of
    # floats (float32 or float64), got dtype object" (found by fuzzing).
    m, _ = model
    for L in ([[2**64, 1, 2]], [[-(2**63) - 1, 1.5, 2]], [[2**70, 1, 2], [3, 4, 5]]):
        floats = np.array([[float(v) for v in row] for row in L])
        for name in ("energy", "score", "hessian_trace", "ism_loss"):
            assert np.array_equal(getattr(m, name)(L), getattr(m, name)(floats))
    want = (
        r"^X has values too large for float64 \(\|x\| > 1.8e308\), first at index \(1, 2\): "
        r"an int of 401 digits$"
    )
    with pytest.raises(ValueError, match=want):
        m.energy([[1, 2, 3], [4, 5, 10**400]])
    # Objects other than numbers stay refused.
    with pytest.raises(TypeError, match="^X must be an array of floats .*, got dtype object$"):
        m.energy([[2**64, None, 2]])


def test_pandas_frames_of_nullable_numbers_are_read_as_floats(model, X):
    # The nullable dtypes of convert_dtypes() and read_csv(dtype_backend="numpy_nullable")
    # give numpy an object array: they were refused as "dtype object", and a missing value
    # was never reported as the NaN it stands for.
    pd = pytest.importorskip("pandas")
    m, _ = model
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    for nullable in (frame.astype("Float64"), frame.convert_dtypes()):
        for name in ("energy", "score", "hessian_trace", "ism_loss"):
            assert np.array_equal(getattr(m, name)(nullable), getattr(m, name)(X))
    ints = pd.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]}, dtype="Int64")
    assert np.array_equal(m.energy(ints), m.energy(np.array([[1.0, 3, 5], [2, 4, 6]])))
    missing = frame.astype("Float64")
    missing.iloc[4, 1] = pd.NA
    with pytest.raises(ValueError, match=r"^X contains nulls \(first at row 4\); drop or fill"):
        m.score(missing)
    # Other columns stay refused as before: booleans, strings.
    for bad in (frame > 0, (frame > 0).astype("boolean"), frame.astype(str)):
        with pytest.raises(TypeError, match="X must be an array of floats"):
            m.energy(bad)


def test_pandas_missing_values_are_named_nulls_as_arrows_and_nans_stay_nans(model, X):
    # pd.NA was reported as "X contains NaN or Inf (first at row 0)", where an Arrow null is
    # "X contains nulls (first at row K); drop or fill them first". A NaN, in a column of a
    # numpy dtype or in a nullable one (which holds NaN apart from NA), stays a NaN.
    pd = pytest.importorskip("pandas")
    m, _ = model
    nulls = "X contains nulls (first at row {}); drop or fill them first"
    nans = "X contains NaN or Inf (first at row {})"
    ints = pd.DataFrame({"a": [1, 2, 3], "b": [3, 4, 5], "c": [5, 6, 7]}, dtype="Int64")
    ints.iloc[2, 0] = pd.NA
    floats = pd.DataFrame(X[:6], columns=["a", "b", "c"]).astype("Float64")
    floats.iloc[3, 2] = pd.NA
    nan = pd.arrays.FloatingArray(np.array([1.0, np.nan, 2.0]), np.zeros(3, dtype=bool))
    nan_in_nullable = pd.DataFrame({"a": nan, "b": [1.0, 2, 3], "c": [1.0, 2, 3]})
    numpy_nan_first = pd.DataFrame(
        {"a": [np.nan, 1.0, 2.0], "b": pd.array([1, 2, None], dtype="Int64"), "c": [1.0, 2, 3]}
    )
    na_first = numpy_nan_first.assign(a=[1.0, 1.0, np.nan], b=pd.array([1, None, 3], "Int64"))
    for frame, want in [
        (ints, nulls.format(2)),
        (floats, nulls.format(3)),
        (nan_in_nullable, nans.format(1)),
        # The first row that is not a number is named, by its cause.
        (numpy_nan_first, nans.format(0)),
        (na_first, nulls.format(1)),
    ]:
        for f in (m.energy, m.score, lambda x: m.fit(x, epochs=1, validation=0)):
            with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
                f(frame)
    pa = pytest.importorskip("pyarrow")
    arrow = pd.DataFrame(
        {"a": pd.arrays.ArrowExtensionArray(pa.array([1.0, None, np.nan])), "b": [1.0, 2, 3]}
    ).assign(c=1.0)
    with pytest.raises(ValueError, match=f"^{re.escape(nulls.format(1))}$"):
        m.energy(arrow)


def test_missing_values_of_one_column_are_nulls_too():
    # numpy's form of a frame or Series of one nullable or Arrow column is already floats,
    # NA as NaN: reported as "NaN or Inf", where three such columns were named nulls.
    pd = pytest.importorskip("pandas")
    m = EnergyMLP(1, hidden=(4,))
    want = "X contains nulls (first at row 2); drop or fill them first"
    dtypes = ["Float64", "Int64"]
    if importlib.util.find_spec("pyarrow") is not None:
        dtypes.append("double[pyarrow]")
    for dtype in dtypes:
        frame = pd.DataFrame({"a": pd.array([1, 2, None, 4], dtype=dtype)})
        for x in (frame, frame["a"]):
            with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
                m.energy(x)
    # A NaN of a numpy column stays a NaN.
    with pytest.raises(ValueError, match=r"^X contains NaN or Inf \(first at row 1\)$"):
        m.energy(pd.DataFrame({"a": [1.0, np.nan, 3.0]}))


def _never(*args, **kwargs):
    raise AssertionError("called")


def test_pandas_columns_other_than_numbers_are_named(model, monkeypatch):
    # pandas' numpy form of such a frame is an object array: refused as "got dtype object",
    # which named no column (where polars and Arrow frames named it).
    pd = pytest.importorskip("pandas")
    m, _ = model
    a = [0.5, 1.5]
    columns = {
        "datetime": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        "utc": pd.to_datetime(["2024-01-01", "2024-01-02"]).tz_localize("UTC"),
        "duration": pd.to_timedelta([1, 2], unit="D"),
        "flag": [True, False],
        "nullable_flag": pd.array([True, None], dtype="boolean"),
        "text": pd.array(["1.5", "2"], dtype="string"),
        "dates": [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
        "times": [dt.time(1), dt.time(2)],
        "words": pd.array(["1.5", "2"], dtype=object),
        "period": pd.period_range("2024-01", periods=2, freq="M"),
    }
    for name, values in columns.items():
        frame = pd.DataFrame({"a": a, name: values, "c": a})
        want = (
            r"^X must be an array of floats \(float32 or float64\), got column "
            rf"'{name}' of dtype {re.escape(str(frame.dtypes[name]))}$"
        )
        with pytest.raises(TypeError, match=want):
            m.energy(frame)
    # A column of other objects is left to their conversion: Python floats are numbers,
    # None is not, and said so as before.
    objects = pd.DataFrame({"a": a, "b": pd.array([0.25, 2.0], dtype=object), "c": a})
    assert np.array_equal(m.energy(objects), m.energy(np.array([a, [0.25, 2.0], a]).T))
    objects["b"] = pd.array([0.25, None], dtype=object)
    with pytest.raises(TypeError, match=r"^X must be an array of floats .*, got dtype object$"):
        m.energy(objects)
    # A frame of numbers is not looked at column by column (its columns are not even listed:
    # that cost ~0.5 µs a column on every call).
    frame = pd.DataFrame({"a": a, "b": a, "c": pd.array([1, 2], dtype="Int64")})
    with monkeypatch.context() as patch:
        patch.setattr(_validate, "_frame_columns", _never)
        assert np.array_equal(m.energy(frame), m.energy(np.array([a, a, [1.0, 2.0]]).T))


def test_other_float_dtype_is_converted_to_the_models(X):
    m64, p64 = make_model(3, (5, 4), "silu", 0.0, "float64", seed=1)
    m32, _p32 = make_model(3, (5, 4), "silu", 0.0, "float32", seed=1)
    X32 = X.astype(np.float32)
    # float32 input to a float64 model: exact conversion, float64 output
    for name in METHODS_PER_ROW:
        out = getattr(m64, name)(X32)
        assert out.dtype == np.float64
        assert np.array_equal(out, getattr(m64, name)(X32.astype(np.float64)))
    assert_close(m64.score(X32), ref.score(p64, X32.astype(np.float64), "silu"), 1e-12)
    # float64 input to a float32 model: rounded to float32, float32 output
    for name in METHODS_PER_ROW:
        out = getattr(m32, name)(X)
        assert out.dtype == np.float32
        assert np.array_equal(out, getattr(m32, name)(X32))
    l, g = m32.ism_loss_and_grad(X)
    assert all(a.dtype == np.float32 for a in g)
    assert l == m32.ism_loss_and_grad(X32)[0]
    # float16 is a float: converted as well
    X16 = X.astype(np.float16)
    assert np.array_equal(m64.energy(X16), m64.energy(X16.astype(np.float64)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_read_only_and_non_native_byte_order_inputs(dtype, X):
    m, _params = make_model(3, (5, 4), "softplus", 0.5, dtype, seed=2)
    Xd = X.astype(dtype)
    expected = [m.energy(Xd), m.score(Xd), m.hessian_trace(Xd)]
    ro = Xd.copy()
    ro.setflags(write=False)
    swapped = Xd.astype(np.dtype(dtype).newbyteorder())
    assert not swapped.dtype.isnative and np.array_equal(swapped, Xd)
    swapped_f = np.asfortranarray(swapped)[::-1][::-1]
    for arr in (ro, swapped, swapped_f):
        got = [m.energy(arr), m.score(arr), m.hessian_trace(arr)]
        for a, b in zip(got, expected, strict=True):
            assert a.dtype == np.dtype(dtype) and a.dtype.isnative
            assert np.array_equal(a, b)
    assert not ro.flags.writeable
    l, _ = m.esm_loss_and_grad(ro, swapped)
    assert l == m.esm_loss_and_grad(Xd, Xd)[0]


@pytest.mark.parametrize("name", ALL)
def test_an_odd_stride_on_an_axis_of_length_one_is_not_misalignment(model, X, name):
    # numpy calls these arrays aligned (a stride that never enters an address is not read);
    # they used to be refused with "X is not aligned ... pass a copy".
    from numpy.lib.stride_tricks import as_strided

    m, _params = model
    base = X[:1].copy().ravel()
    one = as_strided(base, shape=(1, 3), strides=(4, 8))
    assert one.flags.aligned and np.array_equal(one, X[:1])
    want, got = call(m, name, X[:1].copy()), call(m, name, one)
    if isinstance(want, tuple):  # (loss, gradient list)
        assert want[0] == got[0]
        want, got = want[1], got[1]
    for a, b in zip(
        want if isinstance(want, list) else [want],
        got if isinstance(got, list) else [got],
        strict=True,
    ):
        assert np.array_equal(a, b)
    if name in METHODS_PER_ROW:
        empty = as_strided(base, shape=(0, 3), strides=(3, 8))
        assert call(m, name, empty).shape[0] == 0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_empty_batches(dtype):
    m, _ = make_model(4, (3,), dtype=dtype)
    for E in (
        np.zeros((0, 4), dtype=dtype),
        np.zeros((0, 4), dtype=np.float32),
        np.zeros((0, 8))[:, ::2],
    ):
        e, s, t = m.energy(E), m.score(E), m.hessian_trace(E)
        assert e.shape == (0,) and e.dtype == np.dtype(dtype)
        assert s.shape == (0, 4) and s.dtype == np.dtype(dtype)
        assert t.shape == (0,) and t.dtype == np.dtype(dtype)
        with pytest.raises(ValueError, match="empty batch"):
            m.ism_loss(E)
        with pytest.raises(ValueError, match="empty batch"):
            m.ism_loss_and_grad(E)
        with pytest.raises(ValueError, match="empty batch"):
            m.esm_loss_and_grad(E, E)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ALL)
def test_an_empty_batch_at_an_odd_address_is_an_empty_batch(dtype, name):
    # numpy calls every empty array aligned, so the Python layer passed an empty view at an
    # odd byte offset on unchanged and the binding refused it: "X is not aligned for float64:
    # pass a copy (np.array(X))" (found by fuzzing).
    m, _ = make_model(3, (4,), dtype=dtype)
    raw = np.zeros(1, np.uint8).data
    odd = np.frombuffer(raw, dtype=dtype, offset=1, count=0).reshape(0, 3)
    assert odd.flags.aligned and odd.ctypes.data % odd.itemsize
    empty = np.zeros((0, 3), dtype)
    if name in METHODS_PER_ROW:
        got, want = call(m, name, odd), call(m, name, empty)
        assert got.shape == want.shape and got.dtype == want.dtype == np.dtype(dtype)
    else:
        short = name.removesuffix("_and_grad")
        with pytest.raises(ValueError, match=f"^{short} of an empty batch is undefined"):
            call(m, name, odd)
    if name == "esm_loss_and_grad":  # the target as well
        with pytest.raises(ValueError, match="^esm_loss of an empty batch is undefined"):
            m.esm_loss_and_grad(empty, odd)


# ------------------------------------------------------------------------ constructor


def test_unknown_activation_lists_choices():
    for bad in ("relu", "Tanh", "", "sigmoid"):
        with pytest.raises(ValueError) as info:
            EnergyMLP(3, activation=bad)
        msg = str(info.value)
        assert "'softplus'" in msg and "'tanh'" in msg and "'silu'" in msg and repr(bad) in msg
    with pytest.raises(ValueError, match="'softplus', 'tanh', 'silu'"):
        EnergyMLP.from_params(EnergyMLP(2, hidden=(3,)).params, activation="relu")
    with pytest.raises(TypeError, match="activation must be a str"):
        EnergyMLP(3, activation=None)
    # A lone surrogate cannot be encoded as UTF-8: it was the binding's bare
    # UnicodeEncodeError ("surrogates not allowed"), not this message.
    want = r"^activation must be one of 'softplus', 'tanh', 'silu', got '\\ud800x'$"
    with pytest.raises(ValueError, match=want):
        EnergyMLP(3, activation="\ud800x")
    with pytest.raises(ValueError, match=want):
        EnergyMLP.from_params(EnergyMLP(2, hidden=(3,)).params, activation="\ud800x")


@pytest.mark.parametrize(
    "dtype", ["float16", "int32", "complex128", "bogus", np.int64, np.float16, "f2"]
)
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        EnergyMLP(2, hidden=(3,), dtype=dtype)
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        EnergyMLP.from_params(EnergyMLP(2, hidden=(3,)).params, dtype=dtype)


@pytest.mark.parametrize(
    "spec,name",
    [
        ("float32", "float32"),
        (np.float32, "float32"),
        ("f4", "float32"),
        ("float64", "float64"),
        (np.float64, "float64"),
        (np.dtype("f8"), "float64"),
    ],
)
def test_good_dtype_specs(spec, name):
    m = EnergyMLP(2, hidden=(3,), dtype=spec)
    assert m.dtype == np.dtype(name)
    assert all(p.dtype == np.dtype(name) for p in m.params)


@pytest.mark.parametrize(
    ("alpha", "shown"),
    [(-1.0, "-1.0"), (-1e-300, "-1e-300"), (float("nan"), "nan"), (float("inf"), "inf")],
)
def test_bad_alpha_value(alpha, shown):
    # The value as given shows that Python refused it: the engine's message says "got -1",
    # "got NaN".
    want = f"^alpha must be a finite number >= 0, got {shown}$"
    with pytest.raises(ValueError, match=want):
        EnergyMLP(2, hidden=(3,), alpha=alpha)
    with pytest.raises(ValueError, match=want):
        EnergyMLP.from_params(EnergyMLP(2, hidden=(3,)).params, alpha=alpha)


@pytest.mark.parametrize("alpha", ["1", None, True, [1.0]])
def test_bad_alpha_type(alpha):
    with pytest.raises(TypeError, match="alpha must be a number"):
        EnergyMLP(2, hidden=(3,), alpha=alpha)


def test_integer_alpha_is_accepted():
    m = EnergyMLP(2, hidden=(3,), alpha=2)
    assert m.alpha == 2.0 and isinstance(m.alpha, float)


@pytest.mark.parametrize(
    "hidden,exc,pattern",
    [
        # "sequence", not the engine's "list": the Python check ran
        ((), ValueError, "^hidden must list at least one layer width, got an empty sequence$"),
        ([], ValueError, "^hidden must list at least one layer width, got an empty sequence$"),
        ((4, 0), ValueError, "at least 1, got 0"),
        ((-3,), ValueError, "at least 1, got -3"),
        (4, TypeError, "sequence of widths"),
        ((4.0,), TypeError, "must be an int"),
        ((True,), TypeError, "must be an int"),
        (None, TypeError, "sequence of ints"),
        (np.array([[4, 2]]), TypeError, r"1-D array\), got an array of shape \(1, 2\)$"),
        ("64", TypeError, r"1-D array\), got str$"),
    ],
)
def test_bad_hidden(hidden, exc, pattern):
    with pytest.raises(exc, match=pattern):
        EnergyMLP(2, hidden=hidden)


@pytest.mark.parametrize(
    ("hidden", "given"),
    [
        ({3: "a"}, "dict"),  # read as its keys: hidden=(3,)
        ({3: "a"}.keys(), "dict_keys"),
        ({4, 3}, "set"),  # in the set's own order
        (frozenset({3}), "frozenset"),
        (iter([3]), "list_iterator"),  # used up by the check
        ((w for w in [3]), "generator"),
    ],
)
def test_hidden_that_is_not_a_sequence_is_a_type_error(hidden, given):
    # Each was accepted silently.
    want = (
        "hidden must be a sequence of ints such as (64, 64) (a list, tuple, range or 1-D "
        f"array), got {given}"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(want)}$"):
        EnergyMLP(2, hidden=hidden)


@pytest.mark.parametrize("hidden", [[4, 2], (4, 2), range(4, 0, -2), np.array([4, 2])])
def test_hidden_may_be_any_sequence_of_ints(hidden):
    assert EnergyMLP(2, hidden=hidden).hidden == (4, 2)


def test_hidden_may_be_a_sequence_that_does_not_register_as_one():
    # A pandas Series or Index, or an extension array, is not a collections.abc.Sequence;
    # refused by d226e25, which meant to refuse only dicts, sets and iterators.
    pd = pytest.importorskip("pandas")
    for hidden in (pd.Series([4, 2]), pd.Index([4, 2]), pd.array([4, 2], dtype="Int64")):
        assert EnergyMLP(2, hidden=hidden).hidden == (4, 2)


@pytest.mark.parametrize(
    "dim,hidden",
    [
        (2, (2**16, 2**16)),  # the total (2**32 + 4 * 2**16 + 1) is over the limit
        (2**31, (1,)),  # the first layer alone: W's 2**31 entries and b's one
    ],
)
def test_more_than_2_31_parameters_is_a_value_error_before_any_allocation(dim, hidden):
    want = f"the architecture dim={dim}, hidden={list(hidden)} has more than 2147483648 parameters"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        EnergyMLP(dim, hidden=hidden)


@pytest.mark.parametrize(
    "dim,exc",
    [(0, ValueError), (-1, ValueError), (2.0, TypeError), ("2", TypeError), (True, TypeError)],
)
def test_bad_dim(dim, exc):
    with pytest.raises(exc, match="dim"):
        EnergyMLP(dim, hidden=(3,))


@pytest.mark.parametrize(
    "seed,exc", [(-1, ValueError), (2**64, ValueError), (1.0, TypeError), ("0", TypeError)]
)
def test_bad_seed(seed, exc):
    with pytest.raises(exc, match="seed"):
        EnergyMLP(2, hidden=(3,), seed=seed)


def test_numpy_integer_arguments_are_accepted():
    m = EnergyMLP(np.int64(3), hidden=np.array([4, 2]), seed=np.uint64(2**64 - 1))
    assert m.dim == 3 and m.hidden == (4, 2)
    assert np.array_equal(m.params[0], EnergyMLP(3, hidden=(4, 2), seed=2**64 - 1).params[0])


def test_a_masked_array_hint_fits_its_shape():
    # 2-D: drop the masked rows or fill; any other shape: fill only.
    m = EnergyMLP(2, hidden=(8,), alpha=1.0, seed=3)
    X = np.ma.masked_array(np.zeros((4, 2)), mask=[[0, 0], [1, 0], [0, 0], [0, 0]])
    hint2 = "drop the masked rows (X[~X.mask.any(axis=1)].data) or fill them (X.filled(value))"
    with pytest.raises(TypeError, match=re.escape(f"its mask would be ignored: {hint2}") + "$"):
        m.energy(X)
    t = np.ma.masked_array(np.zeros((10, 2, 2)))
    hint3 = "fill them (trajectory.filled(value))"
    with pytest.raises(TypeError, match=re.escape(f"its mask would be ignored: {hint3}") + "$"):
        scorematch.diagnostics.ess(t)


@pytest.mark.parametrize(
    ("value", "shown"), [(0.0, "0.0"), (-1.0, "-1.0"), (float("nan"), "nan"), (0, "0")]
)
def test_positive_options_are_refused_by_python_with_the_value_as_given(value, shown):
    # as_positive: the engine refuses these too but words them differently ("got 0",
    # "got -1", "got NaN"), so only the exact message shows that the Python check ran.
    for name, call in (
        ("step_size", lambda: scorematch.langevin(lambda x: -x, np.zeros((2, 2)), 1, value)),
        (
            "temperature",
            lambda: scorematch.langevin(lambda x: -x, np.zeros((2, 2)), 1, 0.1, temperature=value),
        ),
        (
            "lr",
            lambda: EnergyMLP(2, hidden=(8,), seed=3).fit(
                np.zeros((8, 2)), epochs=1, lr=value, progress=False, validation=None
            ),
        ),
    ):
        with pytest.raises(
            ValueError, match=f"^{name} must be a finite number > 0, got {re.escape(shown)}$"
        ):
            call()


def test_a_dtype_that_numpy_knows_but_the_model_does_not_is_named_as_given():
    # parse_dtype's second check: without it the error came later and named 'int64', not
    # what the caller passed.
    with pytest.raises(
        ValueError, match=r"^dtype must be 'float32' or 'float64', got <class 'numpy\.int64'>$"
    ):
        EnergyMLP(2, hidden=(3,), dtype=np.int64)
    with pytest.raises(ValueError, match=r"^dtype must be 'float32' or 'float64', got 'int32'$"):
        EnergyMLP(2, hidden=(3,), dtype="int32")


@pytest.mark.parametrize("shape", [(2, 3), (3, 3), (2, 1), (2, 0)])
def test_a_batch_of_the_wrong_width_is_refused_by_python(shape):
    # as_batch's column check, on its fast path and its slow one: the engine's own messages
    # differ ("(dim = 2)", "X must have 2 columns", "init must have shape (2, 2) (n_samples,
    # dim)").
    m = EnergyMLP(2, hidden=(8,), alpha=1.0, seed=3)
    Z = np.zeros(shape)
    for name, call in (
        ("X", lambda: m.energy(Z)),
        ("X", lambda: m.score(Z)),
        ("X", lambda: m.fit(Z, epochs=1, progress=False, validation=None)),
        ("init", lambda: m.sample(shape[0], n_steps=1, init=Z)),
    ):
        want = f"{name} must have shape (n, 2) for this model, got {shape}"
        with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
            call()


def test_float32_parameters_too_large_say_to_use_a_float64_model():
    # as_params_dtype's advice depends on the dtype.
    m = EnergyMLP(2, hidden=(8,), seed=3, dtype="float32")
    p = [a.astype(np.float64) for a in m.params]
    p[0][1, 0] = 1e300
    with pytest.raises(ValueError, match=r"\(at flat index 2\); use a float64 model$"):
        m.set_params(p)


@pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="numpy < 2 holds at most 32 dimensions"
)
@pytest.mark.parametrize("ndim", [33, 64])
def test_parameters_of_more_than_32_dimensions_are_a_value_error(ndim):
    """The engine's numpy binding panicked (pyo3 PanicException, a BaseException) on them:
    numpy >= 2 allows 64 dimensions. A model file can hold such an array."""
    m = EnergyMLP(2, hidden=(3,), seed=0)
    p = m.params
    p[0] = np.zeros((1,) * ndim)
    want = f"params[0] must be 1-D or 2-D, got an array of {ndim} dimensions"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        m.set_params(p)
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        EnergyMLP.from_params(p)
    assert same_arrays(m.params, EnergyMLP(2, hidden=(3,), seed=0).params)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m, a: m.sample(2, n_steps=1, method=a),
            "method must be 'ula', 'mala' or 'annealed'",
        ),
        (
            lambda m, a: m.fit(np.zeros((8, 2)), epochs=1, objective=a),
            "objective must be 'ism', 'ssm', 'dsm' or 'esm'",
        ),
        (
            lambda m, a: scorematch.diagnostics.ess(np.zeros((8, 2, 1)), method=a),
            "method must be 'bulk', 'tail' or 'basic'",
        ),
    ],
)
def test_a_choice_given_as_a_large_value_is_described_on_one_line(call, message):
    # The message showed repr(value): numpy's repr of an array of a few rows (or a masked
    # array) spans lines, that of a long string fills the screen, and that of an int of more
    # than 4300 digits is itself a ValueError about the int's digits, naming no argument.
    m = EnergyMLP(2, hidden=(3,), seed=0)
    for value, given in [
        (np.zeros((4, 4)), "ndarray of shape (4, 4) and dtype float64"),
        (
            np.ma.masked_array(np.array([1, 2], np.int64)),
            "MaskedArray of shape (2,) and dtype int64",
        ),
        ("u" * 100, f"str of length 100 starting {'u' * 20!r}"),
        (10**5000, "an int of 5001 digits"),
    ]:
        with pytest.raises(ValueError) as err:
            call(m, value)
        assert str(err.value) == f"{message}, got {given}"


def test_a_flag_given_as_a_large_value_is_described_on_one_line():
    m = EnergyMLP(2, hidden=(3,), seed=0)
    for value, given in [
        (np.ma.masked_array(np.uint8(3)), "MaskedArray of shape () and dtype uint8"),
        (np.ones((3, 3)), "ndarray of shape (3, 3) and dtype float64"),
        (10**5000, "an int of 5001 digits"),
        (np.array([True]), "ndarray array([ True])"),  # a short repr is shown as it is
    ]:
        with pytest.raises(TypeError) as err:
            m.sample(2, n_steps=1, return_trajectory=value)
        assert str(err.value) == f"return_trajectory must be True or False, got {given}"
