"""Inputs from the array and dataframe libraries of today's pipelines: polars, pyarrow, JAX,
the Array API and the buffer protocols. Each either gives the numbers of the equivalent plain
numpy array, bit for bit, or a one-line ``TypeError``/``ValueError`` saying what was expected
and what was given; a missing value is a NaN, never a 0."""

from __future__ import annotations

import datetime as dt
import re
import warnings

import numpy as np
import pytest
import scorematch as sm
from helpers import make_model, same_arrays
from scorematch._validate import as_batch, as_real_array

PER_ROW = ("energy", "score", "hessian_trace")


@pytest.fixture
def pl():
    return pytest.importorskip("polars")


@pytest.fixture
def pa():
    return pytest.importorskip("pyarrow")


@pytest.fixture(params=["float64", "float32"])
def model(request):
    return make_model(3, (6, 5), "softplus", 0.0, request.param, seed=4)[0]


@pytest.fixture
def X():
    return np.random.default_rng(7).normal(size=(11, 3))


def same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_reads_as(m, given, plain):
    """Every batched method gives for ``given`` the bits it gives for the numpy ``plain``."""
    for name in PER_ROW:
        assert same(getattr(m, name)(given), getattr(m, name)(plain)), name
    assert m.ism_loss(given) == m.ism_loss(plain)
    l1, g1 = m.esm_loss_and_grad(plain, given)
    l2, g2 = m.esm_loss_and_grad(plain, plain)
    assert l1 == l2 and same_arrays(g1, g2)


def quiet(f, *args, **kwargs):
    """``f(...)`` with every warning an error: a conversion must not warn either."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return f(*args, **kwargs)


# ----------------------------------------------------------------------------- polars


def test_polars_frames_read_as_the_array_they_hold(pl, model, X):
    cols = [f"x{j}" for j in range(3)]
    frame = pl.DataFrame(X, schema=cols)
    chunked = pl.concat([frame[:4], frame[4:]], rechunk=False)
    assert chunked.n_chunks() == 2
    f32 = pl.DataFrame(X.astype(np.float32), schema=cols)
    for given, plain in ((frame, X), (chunked, X), (f32, X.astype(np.float32))):
        quiet(assert_reads_as, model, given, plain)
    # A Series of fixed-size arrays is a batch too: one point per row.
    rows = pl.Series("x", X.tolist(), dtype=pl.Array(pl.Float64, 3))
    assert_reads_as(model, rows, X)
    # Integer columns are numbers, as in lists and pandas frames.
    ints = pl.DataFrame({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    assert same(model.energy(ints), model.energy(np.array([[1.0, 3, 5], [2, 4, 6]])))


def test_polars_nulls_are_nan_and_named_by_row(pl, model, X):
    frame = pl.DataFrame(X, schema=["a", "b", "c"])
    floats = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col("b")).alias("b")
    )
    ints = pl.DataFrame({"a": [1, 2, None], "b": [1, 2, 3], "c": [1, 2, 3]})
    rows = pl.Series("x", [[1.0, 2.0, 3.0], None], dtype=pl.Array(pl.Float64, 3))
    for given, row in ((floats, 5), (ints, 2), (rows, 1)):
        for name in (*PER_ROW, "ism_loss"):
            with pytest.raises(ValueError, match=rf"^X contains NaN or Inf \(first at row {row}\)"):
                getattr(model, name)(given)


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([True, False, True], "Boolean"),
        ([dt.date(2024, 1, d) for d in (1, 2, 3)], "Date"),
        ([dt.datetime(2024, 1, d) for d in (1, 2, 3)], "Datetime"),
        ([dt.timedelta(days=d) for d in (1, 2, 3)], "Duration"),
        ([dt.time(h) for h in (1, 2, 3)], "Time"),
        (["1.5", "2", "3"], "String"),
    ],
)
def test_polars_columns_other_than_numbers_are_refused_by_name(pl, values, dtype):
    # Beside numbers, polars casts booleans to 0/1 and dates, times and durations to counts
    # of days or microseconds: they were read as such, where a numpy array or a pandas frame
    # of the same columns is refused.
    m = sm.EnergyMLP(3, hidden=(4,), seed=0)
    frame = pl.DataFrame({"a": [1.5, 2.5, 3.5], "when": values, "c": [0.0, 1.0, 2.0]})
    want = (
        rf"^X must be an array of floats \(float32 or float64\), got column 'when' of dtype {dtype}"
    )
    for call in (m.energy, m.ism_loss, lambda v: m.fit(v, epochs=1, progress=False)):
        with pytest.raises(TypeError, match=want):
            call(frame)
    with pytest.raises(TypeError, match=r"^x0 must be .*, got column 'when' of dtype"):
        sm.langevin(m.score, frame, 1, 0.1)


def test_a_polars_lazyframe_is_refused_without_resolving_it(pl):
    # Its dtypes, read to look for nullable pandas columns, resolved the query plan with a
    # PerformanceWarning first.
    m = sm.EnergyMLP(2, hidden=(4,), seed=0)
    lazy = pl.DataFrame({"a": [1.0], "b": [2.0]}).lazy()
    with pytest.raises(TypeError, match=r"^X must be an array of floats .*, got LazyFrame$"):
        quiet(m.energy, lazy)


@pytest.mark.parametrize("kind", ["numpy", "polars", "pyarrow"])
def test_a_series_for_a_one_dimensional_model_is_hinted_as_n_points(kind):
    # The hint of a 1-D X was "for a single point use X.reshape(1, -1)": with dim 1, that
    # makes one point of n coordinates, which the next call refuses.
    values = [0.5, 1.0, 2.0]
    if kind == "polars":
        series = pytest.importorskip("polars").Series(values)
    elif kind == "pyarrow":
        series = pytest.importorskip("pyarrow").chunked_array([values[:1], values[1:]])
    else:
        series = np.array(values)
    one, two = sm.EnergyMLP(1, hidden=(4,), seed=0), sm.EnergyMLP(2, hidden=(4,), seed=0)
    with pytest.raises(
        ValueError, match=r"got an array of shape \(3,\); for n points use X\.reshape\(-1, 1\)$"
    ):
        one.energy(series)
    with pytest.raises(ValueError, match=r"for a single point use X\.reshape\(1, -1\)$"):
        two.energy(series)
    assert same(one.energy(np.reshape(values, (-1, 1))), one.energy([[v] for v in values]))


# ---------------------------------------------------------------------------- pyarrow


def test_arrow_tables_and_batches_read_as_the_array_they_hold(pa, model, X):
    table = pa.table({f"x{j}": X[:, j] for j in range(3)})
    chunked = pa.concat_tables([table.slice(0, 4), table.slice(4)])
    assert chunked.column(0).num_chunks == 2
    batch = table.to_batches()[0]
    for given in (table, chunked, batch):
        quiet(assert_reads_as, model, given, X)


def test_arrow_nulls_are_nan_and_named_by_row(pa, model):
    a = pa.chunked_array([[1.0, 2.0], [3.0, None]])
    ints = pa.chunked_array([[1, None], [3, 4]])
    for given, row in (
        (pa.table({"a": a, "b": ints.cast(pa.float64()).fill_null(0.0), "c": a.fill_null(0.0)}), 3),
        (pa.table({"a": ints, "b": ints.fill_null(0), "c": ints.fill_null(0)}), 1),
        (pa.record_batch({"a": [1.0, None], "b": [1, 2], "c": [1, 2]}), 1),
    ):
        with pytest.raises(ValueError, match=rf"^X contains NaN or Inf \(first at row {row}\)"):
            model.score(given)


def test_arrow_columns_other_than_numbers_are_refused_by_name(pa):
    m = sm.EnergyMLP(2, hidden=(4,), seed=0)
    for flags in ([True, False], [True, None]):
        table = pa.table({"a": [1.5, 2.5], "flag": flags})
        with pytest.raises(TypeError, match=r"got column 'flag' of dtype bool$"):
            m.energy(table)
    with pytest.raises(TypeError, match=r"got column 'name' of dtype string$"):
        m.energy(pa.table({"a": [1.5, 2.5], "name": ["x", "y"]}))


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([dt.date(2024, 1, 1), dt.date(2024, 1, 2)], "date32[day]"),
        ([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)], "timestamp[us]"),
        ([dt.timedelta(days=1), dt.timedelta(days=2)], "duration[us]"),
        ([dt.time(1), dt.time(2)], "time64[us]"),
    ],
)
def test_arrow_dates_times_and_durations_are_refused_by_name(pa, values, dtype):
    # numpy finds no common type for datetimes and floats: the message was numpy's ("X could
    # not be converted to an array: The DType <class 'numpy.dtypes.Float64DType'> could not
    # be promoted by <class 'numpy.dtypes.DateTime64DType'> ..."), which named no column.
    m = sm.EnergyMLP(2, hidden=(4,), seed=0)
    want = (
        rf"^X must be an array of floats \(float32 or float64\), got column 'when' of dtype "
        rf"{re.escape(dtype)}$"
    )
    for given in (
        pa.table({"a": [1.5, 2.5], "when": values}),
        pa.record_batch({"a": [1.5, 2.5], "when": values}),
    ):
        with pytest.raises(TypeError, match=want):
            m.energy(given)


def fixed_size_lists(pa, rows, size=None, value_type=None):
    """An Arrow FixedSizeListArray of the rows of ``rows`` (an (n, d) array or a list)."""
    rows = np.asarray(rows) if size is None else rows
    size = rows.shape[1] if size is None else size
    return pa.array(
        rows if isinstance(rows, list) else list(rows),
        type=pa.list_(value_type or pa.from_numpy_dtype(rows.dtype), size),
    )


def test_arrow_fixed_size_lists_are_batches_of_rows(pa, model, X):
    # Arrow's way to hold (n, d) rows (embeddings). Its numpy form is an object array of
    # rows: refused as "got dtype object" (a table of one such column as "got column 'x' of
    # dtype fixed_size_list<item: double>[3]").
    points = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 3)
    sliced = pa.FixedSizeListArray.from_arrays(pa.array(np.r_[np.ones(6), X.ravel()]), 3)[2:]
    assert sliced.offset == 2
    chunked = pa.chunked_array([points[:4], points[4:]])
    table = pa.table({"x": chunked})
    for given in (
        points,
        sliced,
        chunked,
        pa.chunked_array([points]),
        table,
        pa.record_batch({"x": points}),
        pa.table({"x": points}).to_batches()[0],
    ):
        quiet(assert_reads_as, model, given, X)
    X32 = X.astype(np.float32)
    quiet(assert_reads_as, model, fixed_size_lists(pa, X32), X32)
    X16 = X.astype(np.float16)
    assert_reads_as(model, fixed_size_lists(pa, X16), X16.astype(model.dtype))
    # Integers are numbers, as in lists and frames.
    ints = fixed_size_lists(pa, [[1, 2, 3], [4, 5, 6]], 3, pa.int32())
    assert same(model.energy(ints), model.energy(np.array([[1.0, 2, 3], [4, 5, 6]])))
    # Read in place: the rows are a view of Arrow's buffer.
    Xd = X.astype(model.dtype)
    given = fixed_size_lists(pa, Xd)
    assert np.shares_memory(as_batch(given, 3, str(model.dtype)), given.values.to_numpy())
    # No rows is an empty batch.
    empty = pa.array([], type=pa.list_(pa.float64(), 3))
    assert model.energy(empty).shape == (0,)
    assert model.energy(pa.chunked_array([], type=empty.type)).shape == (0,)


def test_arrow_fixed_size_lists_train_and_start_chains(pa, model, X):
    Xd = X.astype(model.dtype)
    given = fixed_size_lists(pa, Xd)

    def trained(data):
        m = sm.EnergyMLP.from_params(model.params, dtype=model.dtype)
        h = m.fit(data, epochs=2, batch_size=4, validation=data, progress=False, seed=1)
        return m.params, h.train_loss, h.val_loss

    a, b = trained(given), trained(Xd)
    assert same_arrays(a[0], b[0]) and a[1:] == b[1:]
    res = model.sample(11, n_steps=2, init=given, seed=3).samples
    assert same(res, model.sample(11, n_steps=2, init=Xd, seed=3).samples)


def test_a_polars_frame_of_one_array_column_is_a_batch_of_rows(pl, model, X):
    # Its numpy form is an object array of rows: refused as "got dtype object", where a
    # Series of the same Arrays was read as (n, d).
    Xd = X.astype(model.dtype)
    column = pl.Series("e", Xd, dtype=pl.Array(pl.Float64, 3))
    assert same(model.energy(pl.DataFrame({"e": column})), model.energy(Xd))
    assert same(model.energy(pl.DataFrame({"e": column})), model.energy(column))
    # Nulls are NaN, as in a Series: named by their row.
    gaps = pl.DataFrame({"e": pl.Series("e", [[1.0, 2.0, 3.0], None], dtype=column.dtype)})
    with pytest.raises(ValueError, match=r"^X contains NaN or Inf \(first at row 1\)$"):
        model.energy(gaps)
    flags = pl.DataFrame(
        {"e": pl.Series("e", [[True, False, True]], dtype=pl.Array(pl.Boolean, 3))}
    )
    with pytest.raises(TypeError, match=r"got dtype Array\(Boolean, shape=\(3,\)\)$"):
        model.energy(flags)
    # One column of numbers is still one column.
    one = as_batch(pl.DataFrame({"a": Xd[:, 0]}), 1, str(model.dtype))
    assert one.shape == (len(Xd), 1) and same(one[:, 0], Xd[:, 0])


def test_arrow_fixed_size_lists_are_rows_for_langevin_mixtures_and_dask(pa, model, X):
    # The other places that take a batch of rows: langevin's x0, a Gaussian mixture's points
    # and the Dask layer's X (each refused these as an object array before).
    Xd = X.astype(model.dtype)
    given = fixed_size_lists(pa, Xd)
    ref = sm.langevin(model.score, Xd, n_steps=3, step_size=1e-2, seed=2).samples
    assert same(sm.langevin(model.score, given, n_steps=3, step_size=1e-2, seed=2).samples, ref)
    mix = sm.datasets.gaussian_mixture(np.zeros((1, 3)), np.eye(3)[None])
    assert same(mix.score(given), mix.score(Xd))
    assert same(mix.log_prob(given), mix.log_prob(Xd))
    smd = pytest.importorskip("scorematch.dask")
    assert same(smd.score(model, given).compute(), model.score(Xd))


@pytest.mark.parametrize(
    ("rows", "first"),
    [
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], None, [7.0, 8.0, 9.0]], 2),
        ([[1.0, 2.0, 3.0], [4.0, None, 6.0], None], 1),
        ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [None, None, None]], 3),
    ],
)
def test_arrow_fixed_size_lists_with_nulls_are_refused_by_row(pa, rows, first):
    # Arrow holds no defined value under a null: read through .values, a null row was
    # whatever its slots held (zeros, or the values it was built from).
    m = sm.EnergyMLP(3, hidden=(4,), seed=0)
    points = fixed_size_lists(pa, rows, 3, pa.float64())
    want = rf"^X contains nulls \(first at row {first}\); drop or fill them first$"
    for given in (points, pa.table({"x": points})):
        for call in (m.energy, m.score, m.ism_loss, lambda v: m.fit(v, epochs=1, progress=False)):
            with pytest.raises(ValueError, match=want):
                call(given)
    # Rows are numbered in the whole array: across chunks, from a slice's first row.
    ok = fixed_size_lists(pa, [[0.0, 0.0, 0.0]] * 5, 3, pa.float64())
    with pytest.raises(ValueError, match=rf"first at row {5 + first}\)"):
        m.energy(pa.chunked_array([ok, points]))
    with pytest.raises(ValueError, match=rf"first at row {first - 1}\)"):
        m.energy(points[1:])
    with pytest.raises(ValueError, match=r"^target_score contains nulls \(first at row"):
        m.esm_loss_and_grad(np.zeros((len(rows), 3)), points)
    # Nulls before a slice are not in it.
    assert m.energy(points[:first]).shape == (first,)


def test_arrow_lists_other_than_fixed_size_lists_of_numbers_are_refused(pa, X):
    m = sm.EnergyMLP(3, hidden=(4,), seed=0)
    strings = fixed_size_lists(pa, [["a", "b", "c"]], 3, pa.string())
    flags = fixed_size_lists(pa, [[True, False, True]], 3, pa.bool_())
    for given, dtype in (
        (strings, "fixed_size_list<item: string>[3]"),
        (flags, "fixed_size_list<item: bool>[3]"),
    ):
        want = (
            rf"^X must be an array of floats \(float32 or float64\), got dtype {re.escape(dtype)}$"
        )
        with pytest.raises(TypeError, match=want):
            m.energy(given)
    # Lists of any length: Arrow's numpy form, an object array of rows, is refused as such.
    with pytest.raises(TypeError, match=r"^X must be an array of floats .*, got dtype object$"):
        m.energy(pa.array(X.tolist()))
    # Rows of another length are a batch of another dimension.
    with pytest.raises(
        ValueError, match=r"^X must have shape \(n, 3\) for this model, got \(2, 4\)$"
    ):
        m.energy(fixed_size_lists(pa, np.zeros((2, 4))))
    # Beside other columns, a column of lists is named, as other columns that are not numbers.
    with pytest.raises(
        TypeError, match=r"got column 'e' of dtype fixed_size_list<item: double>\[2\]$"
    ):
        sm.EnergyMLP(2, hidden=(4,), seed=0).energy(
            pa.table({"a": [1.0], "e": fixed_size_lists(pa, np.zeros((1, 2)))})
        )


def test_arrow_fixed_size_lists_are_batches_only_where_a_batch_goes(pa, model):
    # Parameters are arrays of their own shapes, not batches of rows: refused as before.
    params = [fixed_size_lists(pa, p) if p.ndim == 2 else p for p in model.params]
    with pytest.raises(TypeError, match=r"^params\[0\] must be a numeric array, got dtype object$"):
        sm.EnergyMLP.from_params(params, dtype=model.dtype)


# ----------------------------------------------------------- memory order of frames


def test_standardized_fits_of_frames_are_those_of_c_arrays(X):
    # numpy's column means and spreads of a Fortran-ordered array (the numpy form of pandas
    # and polars frames) differ in their last bits from a C array's: fit(standardize=True)
    # without a validation split, and so the estimator by default, trained to other bits.
    def fitted(data):
        m = sm.EnergyMLP(3, hidden=(6,), seed=0)
        h = m.fit(data, epochs=2, batch_size=4, standardize=True, validation=None, progress=False)
        return m.params, h.train_loss

    base = fitted(X)
    layouts = [np.asfortranarray(X), np.repeat(X, 2, axis=0)[::2], X[:, ::-1][:, ::-1].T.T]
    pd = pytest.importorskip("pandas")
    layouts.append(pd.DataFrame(X))
    for given in layouts:
        params, loss = fitted(given)
        assert same_arrays(params, base[0]) and loss == base[1]


def test_estimator_fitted_on_a_polars_frame_is_that_of_its_array(pl, X):
    pytest.importorskip("sklearn")
    import scorematch.sklearn as sk

    fit = lambda data: sk.ScoreMatchingDensity(hidden=(6,), epochs=2, random_state=0).fit(data)
    a, b = fit(X), fit(pl.DataFrame(X))
    assert same_arrays(a.model_.params, b.model_.params)
    assert same(a.mean_, b.mean_) and same(a.scale_, b.scale_)
    assert same(a.score_samples(X), b.score_samples(pl.DataFrame(X)))


# -------------------------------------------------------------------------------- JAX


@pytest.fixture
def jnp():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as test_autodiff: float64 stays float64
    return jax.numpy


def test_jax_arrays_everywhere_an_array_goes(jnp, model, X):
    Xd = X.astype(model.dtype)
    J = jnp.asarray(Xd)
    assert J.dtype == Xd.dtype
    assert_reads_as(model, J, Xd)
    assert_reads_as(model, jnp.asarray(X.astype(np.float32)), X.astype(np.float32))
    # parameters in, parameters out
    params = model.params
    dtype = model.dtype
    rebuilt = sm.EnergyMLP.from_params([jnp.asarray(p) for p in params], dtype=dtype)
    assert same_arrays(rebuilt.params, params)
    copy = sm.EnergyMLP(3, hidden=(6, 5), dtype=dtype, seed=9)
    copy.set_params([jnp.asarray(p) for p in params])
    assert same_arrays(copy.params, params)

    # training, sampling from a start
    def trained(data, target):
        m = sm.EnergyMLP.from_params(params, dtype=dtype)
        m.fit(data, objective="esm", target_score=target, epochs=2, progress=False, seed=1)
        return m.params

    T = model.score(Xd)
    assert same_arrays(trained(J, jnp.asarray(T)), trained(Xd, T))
    a = model.sample(11, n_steps=3, init=J, seed=2, method="mala")
    b = model.sample(11, n_steps=3, init=Xd, seed=2, method="mala")
    assert same(a.samples, b.samples)


def test_langevin_with_jax_starts_and_a_jax_score_function(jnp, X):
    m = make_model(3, (6, 5), "tanh", 0.5, "float64", seed=3)[0]
    a = sm.langevin(m.score, X, 4, 0.05, seed=1, method="mala", energy_fn=m.energy)
    b = sm.langevin(
        lambda x: jnp.asarray(m.score(np.asarray(x))),
        jnp.asarray(X),
        4,
        0.05,
        seed=1,
        method="mala",
        energy_fn=lambda x: jnp.asarray(m.energy(np.asarray(x))),
    )
    assert same(a.samples, b.samples) and same(a.acceptance_rate, b.acceptance_rate)
    traj = m.sample(4, n_steps=12, return_trajectory=True, seed=0).trajectory
    assert same(sm.diagnostics.ess(jnp.asarray(traj)), sm.diagnostics.ess(traj))


# ------------------------------------------------ protocols, other dtypes, round trips


class _Interface:
    """Only the array interface."""

    def __init__(self, a):
        self._a = a
        self.__array_interface__ = a.__array_interface__


class _DLPack:
    """Only DLPack, which numpy's own conversion (np.asarray) does not read."""

    def __init__(self, a, device=None):
        self._a = a
        self._device = device

    def __dlpack__(self, **kwargs):
        if self._device is not None:
            raise AssertionError("a tensor on another device was asked for its data")
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device or self._a.__dlpack_device__()


class _OldDLPack(_DLPack):
    """A producer of the first DLPack protocol: ``__dlpack__`` takes no arguments (numpy
    1.23 calls it so; newer numpy tries its keyword arguments first)."""

    def __dlpack__(self):
        return self._a.__dlpack__()


def test_buffer_protocols_and_other_float_widths(model, X):
    Xd = X.astype(model.dtype)
    assert_reads_as(model, _Interface(Xd), Xd)
    assert_reads_as(model, memoryview(Xd.copy()), Xd)
    X16 = X.astype(np.float16)
    assert_reads_as(model, X16, X16.astype(model.dtype))
    assert_reads_as(model, X.astype(np.longdouble), X.astype(model.dtype))


@pytest.mark.parametrize("kind", [_DLPack, _OldDLPack])
def test_objects_that_only_speak_dlpack_are_read_through_it(model, X, kind):
    # They were refused: "X must be an array of floats (float32 or float64), got _DLPack".
    Xd = X.astype(model.dtype)
    quiet(assert_reads_as, model, kind(Xd), Xd)
    assert_reads_as(model, kind(X.astype(np.float16)), X.astype(np.float16).astype(model.dtype))
    a = model.sample(11, n_steps=2, init=kind(Xd), seed=3).samples
    assert same(a, model.sample(11, n_steps=2, init=Xd, seed=3).samples)
    start = sm.langevin(model.score, kind(Xd), 2, 0.1, seed=1).samples
    assert same(start, sm.langevin(model.score, Xd, 2, 0.1, seed=1).samples)
    rebuilt = sm.EnergyMLP.from_params([kind(p) for p in model.params], dtype=model.dtype)
    assert same_arrays(rebuilt.params, model.params)
    # A view, as np.from_dlpack gives: no copy on the way in.
    assert np.shares_memory(as_real_array(kind(Xd), "X"), Xd)
    # Read as any array: integers are converted, booleans refused by dtype (numpy < 1.25
    # reads no DLPack booleans at all, and says so).
    ints = kind(np.arange(6).reshape(2, 3))
    assert same(model.energy(ints), model.energy([[0, 1, 2], [3, 4, 5]]))
    with pytest.raises(
        TypeError,
        match=rf"^X must be an array of floats .*, got (dtype bool|{kind.__name__}, which numpy "
        r"could not read through DLPack \(.*\))$",
    ):
        model.energy(kind(Xd > 0))


class _Both(_DLPack):
    """DLPack beside ``__array__``: numpy's reading stands, DLPack is never asked."""

    def __dlpack__(self, **kwargs):
        raise AssertionError("__dlpack__ called on an object numpy reads itself")

    def __array__(self, dtype=None, copy=None):
        return self._a


def test_objects_numpy_reads_itself_keep_their_path(model, X):
    Xd = X.astype(model.dtype)
    assert_reads_as(model, _Both(Xd), Xd)
    assert as_real_array(_Both(Xd), "X") is Xd  # not copied
    assert as_real_array(Xd, "X") is Xd
    # A 0-d object array has __dlpack__ too, and stays refused by its type, as before.
    with pytest.raises(TypeError, match=r"^X must be an array of floats .*, got ndarray$"):
        model.energy(np.array(None, dtype=object))


@pytest.mark.parametrize(
    ("device", "shown"), [((2, 0), "CUDA:0"), ((10, 1), "ROCm:1"), ((99, 0), "type 99:0")]
)
def test_dlpack_on_another_device_is_refused_by_name(model, X, device, shown):
    want = (
        "X must be an array of floats (float32 or float64) in CPU memory, got _DLPack on "
        f"DLPack device {shown}; copy it to the CPU first"
    )
    for call in (model.energy, model.ism_loss, lambda v: model.fit(v, epochs=1, progress=False)):
        with pytest.raises(TypeError, match=f"^{re.escape(want)}$"):
            call(_DLPack(X, device=device))
    with pytest.raises(TypeError, match=r"^params\[0\] must be a numeric array in CPU memory"):
        sm.EnergyMLP.from_params([_DLPack(p, device=device) for p in model.params])


class _Broken(_DLPack):
    def __init__(self, a, error):
        super().__init__(a)
        self._error = error

    def __dlpack__(self, **kwargs):
        raise self._error


class _NoCapsule(_DLPack):
    def __dlpack__(self, **kwargs):
        return "not a capsule"


class _NoDevice(_DLPack):
    def __dlpack_device__(self):
        raise RuntimeError("no device here")


@pytest.mark.parametrize(
    ("given", "detail"),
    [
        (_Broken(np.zeros((2, 3)), BufferError("cannot export")), "BufferError: cannot export"),
        (_Broken(np.zeros((2, 3)), RuntimeError("gone")), "RuntimeError: gone"),
        (
            _NoCapsule(np.zeros((2, 3))),
            "ValueError: PyCapsule_GetPointer called with invalid PyCapsule object",
        ),
        (_NoDevice(np.zeros((2, 3))), "RuntimeError: no device here"),
    ],
)
def test_dlpack_that_cannot_be_read_is_a_type_error(given, detail):
    # Whatever the producer or numpy raised is named after what was expected.
    m = sm.EnergyMLP(3, hidden=(4,), seed=0)
    kind = type(given).__name__
    want = (
        f"X must be an array of floats (float32 or float64), got {kind}, which numpy could not "
        f"read through DLPack ({detail}"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(want)}"):
        m.energy(given)


def test_array_api_strict_arrays(model, X):
    xp = pytest.importorskip("array_api_strict")
    Xd = X.astype(model.dtype)
    assert_reads_as(model, xp.asarray(Xd), Xd)
    rebuilt = sm.EnergyMLP.from_params([xp.asarray(p) for p in model.params], dtype=model.dtype)
    assert same_arrays(rebuilt.params, model.params)


def test_outputs_go_back_in(model, X):
    Xd = X.astype(model.dtype)
    S = model.score(Xd)
    assert model.esm_loss_and_grad(Xd, S)[0] == model.esm_loss_and_grad(Xd, S.copy())[0]
    _, grads = model.ism_loss_and_grad(Xd)
    as_params = sm.EnergyMLP.from_params(grads, dtype=model.dtype)
    assert same_arrays(as_params.params, grads)
    res = model.sample(5, n_steps=2, seed=0)
    again = model.sample(5, n_steps=2, seed=0, init=res.samples)
    assert again.samples.shape == (5, 3)
    assert same(model.energy(res.samples), model.energy(res.samples.copy(order="F")))


class _Columns:
    """An array-like whose ``get_columns`` (polars' name) is not polars': a 2 x 3 array."""

    def __init__(self, get_columns):
        self.get_columns = get_columns

    def __array__(self, dtype=None, copy=None):
        return np.arange(6.0).reshape(2, 3)


def _raises():
    raise RuntimeError("not a frame")


@pytest.mark.parametrize("get_columns", [_raises, lambda: [1, 2, 3], lambda: None])
def test_other_objects_with_get_columns_read_as_their_array(get_columns):
    # The column check took any get_columns for polars': one that raised, or returned
    # something else, escaped as its own RuntimeError, AttributeError or TypeError.
    m = sm.EnergyMLP(3, hidden=(4,), seed=0)
    plain = np.arange(6.0).reshape(2, 3)
    assert same(m.energy(_Columns(get_columns)), m.energy(plain))


class _Schema:
    def __init__(self, names, types):
        self.names, self.types = names, types


class _Table:
    """An array-like with pyarrow's ``schema`` and ``columns`` names that is not pyarrow's: a
    2 x 3 array whose schema and columns disagree, or are not lists."""

    def __init__(self, names, types, columns):
        self.schema = _Schema(names, types)
        self.columns = columns

    def __array__(self, dtype=None, copy=None):
        return np.arange(6.0).reshape(2, 3)


@pytest.mark.parametrize(
    ("names", "types", "columns"),
    [
        (["a", "b", "c"], ["f", "f", "f"], [np.zeros(2), np.zeros(2)]),  # a column short
        (["a", "b"], ["f", "f", "f"], [np.zeros(2)] * 3),  # a name short
        (["a", "b", "c"], ("f", "f", "f"), ["x", "y", "z"]),  # types not a list
        (["a", "b", "c"], ["f", "f", "f"], "abc"),  # columns not a list
    ],
)
def test_other_objects_with_a_schema_read_as_their_array(names, types, columns):
    # Only a schema and columns that agree are taken for pyarrow's; otherwise numpy's reading
    # of the object stands (the lengths unchecked, zip(strict=True) raised its ValueError).
    m = sm.EnergyMLP(3, hidden=(4,), seed=0)
    plain = np.arange(6.0).reshape(2, 3)
    assert same(m.energy(_Table(names, types, columns)), m.energy(plain))
