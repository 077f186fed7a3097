"""Input conversion shared by the public API: one place decides what an acceptable array is."""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scorematch import _core

_FLOAT_NAMES = {"float32": np.float32, "float64": np.float64}
# numpy keeps one dtype instance per native builtin type, so `arr.dtype is _NATIVE[name]`
# is an exact and cheap test for "native float32/float64".
_NATIVE = {name: np.dtype(t) for name, t in _FLOAT_NAMES.items()}


# numpy < 1.24 turns a ragged list into an object array (with a deprecation warning)
# instead of raising.
_RAGGED_TO_OBJECT = np.lib.NumpyVersion(np.__version__) < "1.24.0"

# Counts reach the engine as 64-bit integers; past this they would wrap or overflow there.
INT_MAX = 2**63 - 1
# Directions per row of sliced score matching, as the engine allows.
MAX_PROJECTIONS: int = _core.MAX_PROJECTIONS


# Ints longer than this are described by their length in messages: their digits would say
# nothing more, and past 4300 digits Python refuses to print them (sys.get_int_max_str_digits).
_LONGEST_SHOWN = 40


def int_digits(i: int) -> int:
    """The number of decimal digits of ``|i|``, without ``str(i)`` (which Python refuses past
    4300 digits)."""
    a = abs(i)
    if a < 10**_LONGEST_SHOWN:
        return len(str(a))
    # log10 of a long int is rounded: near a power of ten, the power itself decides.
    k = int(math.log10(a))
    if 10**k > a:
        k -= 1
    elif 10 ** (k + 1) <= a:
        k += 1
    return k + 1


def of_digits(n_digits: int) -> str:
    """A long int, of ``n_digits`` decimal digits, as messages describe it: ``an int of N
    digits``. For an int written out in text, whose digits are counted without converting it
    (Python refuses ``int(text)`` past 4300 digits, and takes seconds on a million)."""
    return f"an int of {n_digits} digits"


def shown(v: Any, in_place_of_repr: bool = False) -> str:
    """``v`` as a message shows it: ``repr(v)``, but a long int as ``an int of N digits``
    (``<an int of N digits>`` with ``in_place_of_repr``, as Python shows what has no literal)."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**_LONGEST_SHOWN:
        text = of_digits(int_digits(v))
        return f"<{text}>" if in_place_of_repr else text
    return repr(v)


def as_integer(v: Any, name: str) -> int:
    """``v`` as an int, of any value; bools and non-integers are a ``TypeError``."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    return int(v)


def as_int(v: Any, name: str, low: int = 1, high: int = INT_MAX) -> int:
    """``v`` as an int in ``[low, high]``; bools and non-integers are a ``TypeError``."""
    i = as_integer(v, name)
    if i < low:
        raise ValueError(f"{name} must be at least {low}, got {shown(i)}")
    if i > high:
        raise ValueError(f"{name} must be at most {high}, got {shown(i)}")
    return i


# A value whose repr is longer than this, or spans lines (an array of more than a few
# numbers, a masked array), is described by its type (and an array by its shape and dtype).
_LONGEST_REPR = 80


def described(v: Any) -> str:
    """``v`` as a one-line message shows it: its ``repr``, but an array or other value whose
    ``repr`` spans lines or is long by its type, shape and dtype, which say what was given
    without printing it."""
    if isinstance(v, int):
        return shown(v)  # past 4300 digits, repr itself raises
    text = repr(v)
    if "\n" not in text and len(text) <= _LONGEST_REPR:
        return text
    if isinstance(v, np.ndarray):
        return f"{type(v).__name__} of shape {v.shape} and dtype {v.dtype}"
    if isinstance(v, (str, bytes)):
        return f"{type(v).__name__} of length {len(v)} starting {v[:20]!r}"
    return type(v).__name__


def typed(v: Any) -> str:
    """``v`` described as :func:`described` does, after its type where that does not name it
    already: ``str 'no'``, ``int 1``, but ``ndarray of shape (3, 3) and dtype float64``."""
    text, kind = described(v), type(v).__name__
    return text if text.startswith((kind, "an int of")) else f"{kind} {text}"


def binary_size(n_bytes: float) -> str:
    """``n_bytes`` in binary units, to three digits, as memory errors give sizes:
    ``14.2 PiB``."""
    size, unit = float(n_bytes), "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.3g} {unit}"


def one_of(choices: Sequence[str]) -> str:
    """The strings ``choices`` as a message lists them: ``'a', 'b' or 'c'``."""
    quoted = [repr(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def as_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value``, which must be one of the strings ``choices``; anything else is a
    ``ValueError`` that lists them (a non-string too: tested with ``in`` alone, an array would
    end in numpy's ambiguous-truth error instead)."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be {one_of(choices)}, got {described(value)}")
    return value


def as_flag(v: Any, name: str) -> bool:
    """``v`` as a bool: ``True``/``False`` (or numpy's); anything else is a ``TypeError``, so
    that a string such as ``"no"`` is not taken for true."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {typed(v)}")
    return bool(v)


def reject_masked(x: Any, name: str, rows: bool = True) -> None:
    """A masked array would be read with its masked values: refuse it rather than ignore the
    mask. ``rows``: a 2-D ``x`` is a batch of rows, which the message may suggest dropping
    (not so for parameters, whose rows are not independent)."""
    if isinstance(x, np.ma.MaskedArray):
        hint = (
            f"drop the masked rows ({name}[~{name}.mask.any(axis=1)].data) or fill them "
            f"({name}.filled(value))"
            if rows and x.ndim == 2
            else f"fill them ({name}.filled(value))"
        )
        raise TypeError(f"{name} is a masked array; its mask would be ignored: {hint}")


# What a batch (as_batch) and langevin's x0 must be, in their messages: they are computed in
# float32 or float64 (integers in lists are converted; see as_batch).
FLOATS = "an array of floats (float32 or float64)"


def as_real_array(
    x: Any,
    name: str,
    expected: str = "an array of real numbers",
    rows: bool = True,
    batch: bool = False,
    whole: bool = False,
) -> NDArray[Any]:
    """``x`` as a numpy array of real numbers (floats or integers), not copied when it already
    is one. What numpy's conversion reads (``__array__``, the array interface, buffers,
    sequences) is read so; an object that speaks only DLPack is read through
    ``np.from_dlpack``, in place, if its memory is the CPU's. A masked array, what numpy cannot
    convert (ragged lists and the like, DLPack on another device) and arrays of other kinds
    (bool, complex, object, str) are a ``TypeError``; ``expected`` says what ``name`` must be,
    ``rows`` is as for :func:`reject_masked`.

    ``batch``: ``name`` is a batch of rows, shape (n, d), so that Arrow's fixed-size lists
    (a list of d numbers per row, see :func:`_fixed_size_rows`) are read as such; elsewhere
    (parameters, 1-D and 3-D arrays) they stay an object array, refused.

    ``whole``: ``x`` is the whole of ``name``, so that its rows are the rows of ``name``: a
    missing value of a pandas object (``pd.NA``, an Arrow null) is then a ``ValueError``
    naming its row, as Arrow's nulls are. Elsewhere (a Dask partition, whose place in
    ``name`` its task does not know) it is read as NaN, for the NaN check of blocks to name."""
    reject_masked(x, name, rows)
    if batch:
        lists = _fixed_size_rows(x, name, expected)
        if lists is not None:
            return lists
    null_row = None
    try:
        if _RAGGED_TO_OBJECT and not isinstance(x, np.ndarray):
            # numpy < 1.24 makes ragged lists an object array with a warning; the check below
            # turns that into the TypeError newer numpy gives, so the warning would only add
            # noise.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", getattr(np, "VisibleDeprecationWarning", Warning))
                arr = np.asarray(x)
        else:
            arr = np.asarray(x)
        if arr.dtype.kind == "O" and not isinstance(x, np.ndarray):
            arr, null_row = _nullable_numbers(x, arr)
        elif whole and arr.dtype.kind == "f" and _extension_dtypes(x):
            # One column of a nullable or Arrow dtype: numpy's form is already floats, NA NaN.
            null_row = _first_null(x, x.dtypes, arr)
        if (
            _RAGGED_TO_OBJECT
            and arr.dtype.kind == "O"
            and arr.ndim
            and isinstance(x, (list, tuple))
        ):
            # Where numpy >= 1.24 raises, the float conversion still does: one message. An int
            # beyond float64's range is no ragged list: _wide_ints below names it.
            try:
                np.asarray(x, dtype=np.float64)
            except OverflowError:
                pass
    except Exception as err:  # ragged lists and the like
        # An Arrow table of a date, time or duration column beside numbers: numpy finds no
        # common type for them. The column says more than numpy's message.
        bad = _non_number_column(x)
        if bad is not None:
            raise TypeError(
                f"{name} must be {expected}, got column {bad[0]!r} of dtype {bad[1]}"
            ) from err
        raise TypeError(f"{name} could not be converted to an array: {err}") from err
    if null_row is not None and whole:
        raise _nulls(name, null_row)
    if _read_nothing_but_dlpack(x, arr):
        # Only then is DLPack asked, so what numpy reads itself keeps its path (and its no-copy).
        arr = _from_dlpack(x, name, expected)
    if arr.dtype.kind == "O" and not isinstance(x, np.ndarray):
        arr = _wide_ints(arr, name)
    if arr.ndim == 2 and not isinstance(x, np.ndarray):
        bad = _non_number_column(x, numpy_kind=arr.dtype.kind)
        if bad is not None:
            raise TypeError(f"{name} must be {expected}, got column {bad[0]!r} of dtype {bad[1]}")
    if arr.dtype.kind not in "fiu":
        if arr.dtype.kind == "O" and arr.ndim == 0:
            # None, a generator, any object numpy wraps as a 0-d object array: name its type.
            raise TypeError(f"{name} must be {expected}, got {type(x).__name__}")
        raise TypeError(f"{name} must be {expected}, got dtype {arr.dtype}")
    return arr


def numpy_batch(x: Any, name: str, expected: str, kinds: str = "fiu") -> Any:
    """``x`` itself, or the numpy array it holds when numpy's own conversion cannot read it
    as the batch of rows it is: Arrow fixed-size lists (see :func:`_fixed_size_rows`, whose
    ``kinds`` this is) or an object that speaks only DLPack (see :func:`_from_dlpack`). For
    conversions other than :func:`as_real_array`'s (scikit-learn's ``validate_data``), which
    then read the array."""
    lists = _fixed_size_rows(x, name, expected, kinds)
    if lists is not None:
        return lists
    kind = type(x)
    if (
        hasattr(kind, "__dlpack__")
        and not any(
            hasattr(kind, a) for a in ("__array__", "__array_interface__", "__array_struct__")
        )
        # Buffers and sequences are read by numpy itself: only its reading says whether it
        # read nothing.
        and _read_nothing_but_dlpack(x, np.asarray(x))
    ):
        return _from_dlpack(x, name, expected)
    return x


def _read_nothing_but_dlpack(x: Any, arr: NDArray[Any]) -> bool:
    """Whether ``arr``, numpy's own reading of ``x``, is ``x`` wrapped as a 0-d object array
    while ``x`` speaks DLPack: numpy's conversion reads ``__array__``, the array interface,
    buffers and sequences, not DLPack, so ``x`` is to be read through :func:`_from_dlpack`."""
    return (
        arr.dtype.kind == "O"
        and arr.ndim == 0
        and hasattr(type(x), "__dlpack__")
        and not isinstance(x, np.ndarray)  # a 0-d object array has __dlpack__ too
    )


def _fixed_size_rows(x: Any, name: str, expected: str, kinds: str = "fiu") -> NDArray[Any] | None:
    """``x`` as an (n, d) array if it holds n rows of d numbers as Arrow's fixed-size lists:
    a pyarrow ``FixedSizeListArray``, a ``ChunkedArray`` of them, or a ``Table`` or
    ``RecordBatch`` of a single such column, or a polars ``Array`` Series or a DataFrame of
    a single such column; ``None`` for anything else. numpy's reading of
    them is an object array of rows. The values are read in place where Arrow allows it (one
    chunk; numpy's reading of Arrow's own buffer, read-only), several chunks are joined once.

    A null (a null row, or a null among a row's values) is a ``ValueError`` naming the first
    row that holds one: Arrow defines no value under a null, and through ``values`` a null row
    would be read as whatever its slots hold. Values of a kind not in ``kinds`` (strings,
    booleans by default) are a ``TypeError`` naming the Arrow type. Duck-typed on pyarrow's
    names (``type.list_size``, ``values``, ``offset``, ``chunks``; ``num_columns`` and
    ``column`` for tables), as :func:`_non_number_column`: pyarrow is not imported."""
    kind = type(x)
    if hasattr(kind, "arr") and hasattr(kind, "to_frame") and not hasattr(kind, "get_columns"):
        # A polars Series (pandas' has no `arr`): read as the frame of its one column, below.
        # scikit-learn's validation read a Series of Array rows as no features at all.
        try:
            frame = x.to_frame()
        except Exception:  # noqa: BLE001 - not what this duck-typing took it for
            return None
        return _fixed_size_rows(frame, name, expected, kinds)
    if not (hasattr(kind, "get_columns") or hasattr(kind, "num_columns") or hasattr(kind, "type")):
        # Neither polars nor pyarrow (numpy arrays, lists, pandas frames): no look-up on x,
        # which costs a pandas frame ~2.5 µs each (it looks for a column of that name).
        return None
    get_columns = getattr(x, "get_columns", None)
    if callable(get_columns) and getattr(x, "width", None) == 1:
        # A polars DataFrame of one Array column (polars' fixed-size lists): read as polars
        # reads a Series of them, (n, d) with nulls as NaN; its numpy form is an object array.
        try:
            (column,) = get_columns()
            rows = np.asarray(column)
        except Exception:  # noqa: BLE001 - not what this duck-typing took it for
            return None
        if rows.ndim != 2:
            return None
        if rows.dtype.kind not in kinds:
            raise TypeError(f"{name} must be {expected}, got dtype {column.dtype}")
        return rows
    # num_columns, not columns or schema: a polars LazyFrame resolves its query plan for
    # those, with a warning.
    width = getattr(x, "num_columns", None)
    if isinstance(width, int):  # a Table or RecordBatch
        if width != 1:
            return None  # several columns: _non_number_column names a column of lists
        try:
            x = x.column(0)
        except Exception:  # noqa: BLE001 - not what this duck-typing took it for
            return None
    size = getattr(getattr(x, "type", None), "list_size", None)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    try:
        chunks = getattr(x, "chunks", None)
        if isinstance(chunks, list):  # a ChunkedArray
            # One chunk is read as it is; several are joined (a copy numpy's reading needs too).
            x = chunks[0] if len(chunks) == 1 else x.combine_chunks()
        n = len(x)
        # `values` ignores the array's offset (a slice's first row), and unlike `flatten()`
        # it keeps the slots of null rows, so that positions stay those of the rows.
        values = x.values.slice(x.offset * size, n * size)
        kind = values.slice(0, 0).to_numpy(zero_copy_only=False).dtype.kind
        nulls = int(x.null_count) + int(values.null_count)
    except Exception:  # noqa: BLE001 - not what this duck-typing took it for
        return None  # numpy's reading stands
    if kind not in kinds:
        raise TypeError(f"{name} must be {expected}, got dtype {x.type}")
    if nulls:
        null_rows = values.is_null().to_numpy(zero_copy_only=False).reshape(n, size).any(axis=1)
        null_rows |= x.is_null().to_numpy(zero_copy_only=False)
        first = int(np.argmax(null_rows))
        raise _nulls(name, first)
    out: NDArray[Any] = values.to_numpy(zero_copy_only=False).reshape(n, size)
    return out


def _nulls(name: str, first: int) -> ValueError:
    """The error of missing values (Arrow's nulls, pandas' ``pd.NA``), of which ``first`` is
    the first row (counted from 0) holding one: no value, not a NaN the data holds."""
    return ValueError(f"{name} contains nulls (first at row {first}); drop or fill them first")


# DLPack device types (dlpack.h's DLDeviceType) by name, for messages.
_DLPACK_DEVICES = {
    1: "CPU",
    2: "CUDA",
    3: "CUDA host",
    4: "OpenCL",
    7: "Vulkan",
    8: "Metal",
    9: "VPI",
    10: "ROCm",
    11: "ROCm host",
    12: "ext_dev",
    13: "CUDA managed",
    14: "oneAPI",
    15: "WebGPU",
    16: "Hexagon",
    17: "MAIA",
}
# The device types whose memory the CPU reads, the ones np.from_dlpack accepts (from numpy
# 1.23 on): the CPU's, CUDA's and ROCm's pinned host memory, CUDA managed memory.
_DLPACK_ON_HOST = frozenset({1, 3, 11, 13})


def _from_dlpack(x: Any, name: str, expected: str) -> NDArray[Any]:
    """``x``, which numpy reads only through DLPack, as the numpy view ``np.from_dlpack``
    gives. A device other than the CPU is a ``TypeError`` that says so, before ``x`` is asked
    for its data (a GPU tensor would have nothing numpy can read); so is whatever else keeps
    numpy from reading it (a producer that raises, a dtype numpy lacks such as bfloat16).

    ``np.from_dlpack(x)`` is called without keywords, the one form every numpy from 1.23 on
    takes: numpy 1.23 calls ``x.__dlpack__()`` with no argument, numpy >= 2.1 passes
    ``max_version``, ``dl_device`` and ``copy`` and, if the producer refuses them with a
    ``TypeError``, calls it again without. Its ``device`` and ``copy`` keywords (numpy >= 2.1,
    which could ask a producer to copy to the CPU) are not used: data is read where it is."""
    given = type(x).__name__

    def unreadable(err: Exception) -> TypeError:
        return TypeError(
            f"{name} must be {expected}, got {given}, which numpy could not read through "
            f"DLPack ({type(err).__name__}: {err})"
        )

    try:
        device_type, device_id = (int(v) for v in x.__dlpack_device__())
    except Exception as err:  # the producer's own, whatever it raises
        raise unreadable(err) from err
    if device_type not in _DLPACK_ON_HOST:
        device = _DLPACK_DEVICES.get(device_type, f"type {device_type}")
        raise TypeError(
            f"{name} must be {expected} in CPU memory, got {given} on DLPack device "
            f"{device}:{device_id}; copy it to the CPU first"
        )
    try:
        return np.from_dlpack(x)
    except Exception as err:  # the producer's or numpy's, whatever it raises
        raise unreadable(err) from err


# The values of a column of strings, dates, times or durations as numpy reads them one by one
# (an object array: polars' and Arrow's times, Arrow's strings, pandas' Python objects);
# datetime is a date, pandas' Timestamp a datetime, its Timedelta a timedelta.
_NOT_NUMBERS = (
    str,
    bytes,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    np.datetime64,
    np.timedelta64,
)


def _non_number_column(
    x: Any, lenient: bool = False, numpy_kind: str | None = None
) -> tuple[Any, Any] | None:
    """The name and dtype of the first column of a polars DataFrame, a pyarrow Table or
    RecordBatch or a pandas DataFrame that is not numbers; ``None`` for other objects (and
    when every column is numbers).

    The engine's reading (``lenient=False``): a column is numbers if numpy, reading it alone,
    makes an array of floats or integers. polars' and Arrow's numpy form casts every column to
    one type: booleans, dates, times and durations beside numbers became 0/1, day and
    microsecond counts, which pandas and numpy refuse (and a column of strings was only
    "dtype object"). pandas' numpy form is an object array instead, refused anyway: its
    columns are looked at only to name the culprit, when ``numpy_kind`` (the kind of numpy's
    reading of ``x``; ``None``: unknown) is not numbers. A pandas column of Python objects is
    named only if it holds strings, dates, times or durations; the conversion of other
    objects decides.

    scikit-learn's reading (``lenient=True``): booleans are numbers (read as 0 and 1, by
    scikit-learn's convention), and only dates, times, durations and strings are refused,
    where its conversion read them as day or microsecond counts or parsed the strings: a
    column numpy reads as datetimes, timedeltas or strings, or as objects of which one is a
    string, date, time or duration (polars' and Arrow's times, Arrow's strings, pandas'
    objects). Other columns (decimals, other objects) are left to scikit-learn.

    Duck-typed on ``get_columns`` (polars), ``schema.names`` with ``columns`` (pyarrow) and
    ``dtypes`` with ``columns`` and ``iloc`` (pandas), none imported, and only for objects
    with ``__array__`` (not a polars LazyFrame, whose schema would resolve its query plan)."""
    if not hasattr(type(x), "__array__"):
        return None
    if not lenient and numpy_kind is not None and numpy_kind in "fiu" and hasattr(type(x), "iloc"):
        # pandas read as numbers: so is every column (its numpy form casts no column to a
        # number the way polars' and Arrow's do). Before the columns are listed, which costs
        # ~0.5 µs a column on every call.
        return None
    frame = _frame_columns(x)
    if frame is None:
        return None
    pandas, columns = frame
    for col_name, col_type, column, kind in columns:
        try:
            if kind is None:
                kind = np.asarray(column()[:0]).dtype.kind  # an empty slice: its dtype, no copy
            if kind == "O" and (lenient or (pandas and isinstance(col_type, np.dtype))):
                refused = _holds_non_numbers(column())
            elif lenient:
                refused = kind in "mMUS"
            else:
                refused = kind not in "fiu"
        except Exception:  # noqa: BLE001 - not what this duck-typing took it for
            return None  # numpy's reading stands
        if refused:
            return col_name, col_type
    return None


def _frame_columns(
    x: Any,
) -> tuple[bool, list[tuple[Any, Any, Callable[[], Any], str | None]]] | None:
    """Whether ``x`` is a pandas DataFrame, and the name, dtype, a getter and (when its dtype
    says it) the numpy kind of each column of ``x``, a polars DataFrame, pyarrow Table or
    RecordBatch or pandas DataFrame; ``None`` for other objects. See
    :func:`_non_number_column`."""
    # polars' and pyarrow's names are looked for on the type first: a pandas frame's failed
    # look-ups cost ~2.5 µs each (it looks for a column of that name).
    cls = type(x)
    get_columns = getattr(x, "get_columns", None) if hasattr(cls, "get_columns") else None
    if callable(get_columns):
        try:
            return False, [(s.name, s.dtype, _given(s), None) for s in get_columns()]
        except Exception:  # noqa: BLE001 - another library's get_columns, whatever it raises
            return None  # numpy's reading stands
    schema = getattr(x, "schema", None) if hasattr(cls, "schema") else None
    if schema is not None:
        names, types = getattr(schema, "names", None), getattr(schema, "types", None)
        cols = getattr(x, "columns", None)
        if not (
            isinstance(names, list)
            and isinstance(types, list)
            and isinstance(cols, list)
            and len(names) == len(types) == len(cols)
        ):
            return None
        return False, [(n, t, _given(c), None) for n, t, c in zip(names, types, cols, strict=True)]
    dtypes, names, iloc = (getattr(x, a, None) for a in ("dtypes", "columns", "iloc"))
    if dtypes is None or names is None or iloc is None:
        return None
    try:
        pairs = list(zip(names, dtypes, strict=True))
    except (TypeError, ValueError):
        return None
    out: list[tuple[Any, Any, Callable[[], Any], str | None]] = []
    for j, (name, dtype) in enumerate(pairs):
        # The dtype's own kind where it is numpy's, or a number's or a date's (an empty
        # Arrow date32 column reads as float64); for the rest (strings, categories,
        # periods), numpy's reading of the column.
        kind = getattr(dtype, "kind", None)
        if not (isinstance(dtype, np.dtype) or (isinstance(kind, str) and kind in "biufcmM")):
            kind = None
        out.append((name, dtype, _given(iloc, j), kind))
    return True, out


def _given(column: Any, j: int | None = None) -> Callable[[], Any]:
    """A getter of ``column``, or of the ``j``-th column of the pandas indexer ``column``
    (``iloc``), which makes it only when asked."""
    return (lambda: column) if j is None else (lambda: column[:, j])


def _holds_non_numbers(column: Any) -> bool:
    """Whether a column that numpy reads as objects holds a string, date, time or duration."""
    values = np.asarray(column)
    return values.dtype.kind == "O" and any(isinstance(v, _NOT_NUMBERS) for v in values.flat)


def _nullable_numbers(x: Any, arr: NDArray[Any]) -> tuple[NDArray[Any], int | None]:
    """A pandas object of numeric columns whose numpy form is an object array (the nullable
    ``Float64``/``Int64`` dtypes of ``convert_dtypes`` and ``read_csv(dtype_backend=...)``, or
    pyarrow-backed ones) as float64; ``arr`` itself for anything else. With it, the first row
    holding a missing value (``pd.NA``, an Arrow null; see :func:`_null_rows`), for the caller
    to refuse as Arrow's nulls are, or ``None``: a NaN the data holds stays a NaN, for the NaN
    check to name. Duck-typed on ``to_numpy`` and ``dtypes``: no pandas import."""
    to_numpy = getattr(x, "to_numpy", None)
    if to_numpy is None:
        return arr, None
    # Only then: a polars LazyFrame's dtypes resolve its whole query plan, with a warning.
    dtypes = getattr(x, "dtypes", None)
    if dtypes is None:
        return arr, None
    try:
        kinds = [getattr(d, "kind", "O") for d in dtypes]  # a DataFrame's, one per column
    except TypeError:
        kinds = [getattr(dtypes, "kind", "O")]  # a Series' single dtype
    if not kinds or any(k not in "fiu" for k in kinds):
        return arr, None  # booleans, strings, objects: refused below as before
    try:
        out = np.asarray(to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError):
        return arr, None
    return out, _first_null(x, dtypes, out)


def _first_null(x: Any, dtypes: Any, out: NDArray[Any]) -> int | None:
    """The first row of ``out`` (the float form of the pandas object ``x``, of dtypes
    ``dtypes``) that is not finite, if a missing value (see :func:`_null_rows`) makes it so;
    else ``None``, for the NaN check to name it. Missing values are NaN in ``out``: only then
    are they looked for, column by column; the first row that is not finite is named, as the
    NaN check would name it, by its cause."""
    if not out.ndim or np.isfinite(out).all():
        return None
    finite = np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    first = int(np.argmin(finite))
    null_rows = _null_rows(x, dtypes)
    if null_rows is not None and null_rows.shape == finite.shape and null_rows[first]:
        return first
    return None


def _extension_dtypes(x: Any) -> bool:
    """Whether ``x`` is a pandas object with a column of an extension dtype (nullable,
    Arrow), which can hold missing values. Duck-typed on ``to_numpy`` and ``dtypes``."""
    if isinstance(x, np.ndarray) or not hasattr(x, "to_numpy"):
        return False
    dtypes = getattr(x, "dtypes", None)
    if dtypes is None:
        return False
    try:
        listed = [dtypes] if hasattr(dtypes, "kind") else list(dtypes)
    except TypeError:
        return False
    return any(not isinstance(d, np.dtype) for d in listed)


def _null_rows(x: Any, dtypes: Any) -> NDArray[np.bool_] | None:
    """Which rows of the pandas DataFrame or Series ``x`` (of dtypes ``dtypes``) hold a
    missing value, ``pd.NA`` or an Arrow null, in a column of an extension dtype; ``None``
    where ``x`` is not what this duck-typing takes it for. A column of a numpy dtype has no
    missing values, only NaNs (pandas' ``isna`` would count those too); nor has a NaN of a
    nullable column (``Float64`` holds NaN apart from NA), which ``isna`` tells apart."""
    try:
        if isinstance(dtypes, np.dtype) or hasattr(dtypes, "kind"):  # a Series' single dtype
            columns = [(x, dtypes)]
        else:
            columns = [(x.iloc[:, j], d) for j, d in enumerate(dtypes)]
        rows = np.zeros(len(x), dtype=bool)
        for column, dtype in columns:
            if not isinstance(dtype, np.dtype):
                rows |= np.asarray(column.array.isna(), dtype=bool)
    except Exception:  # noqa: BLE001 - not what this duck-typing took it for
        return None  # the NaN check names the row
    return rows


def _wide_ints(arr: NDArray[Any], name: str) -> NDArray[Any]:
    """An object array of Python ints and floats alone, which numpy makes of a list holding an
    int beyond 64 bits (``[[2**64, 1]]``), as float64, like any other list of numbers; an int
    beyond float64's range is a ``ValueError`` naming the first. ``arr`` itself otherwise
    (``None``, strings, objects: refused by the caller as before)."""
    flat = arr.reshape(-1)
    if arr.dtype.kind != "O" or not flat.size:
        return arr
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        return arr
    try:
        return np.array([float(v) for v in flat], dtype=np.float64).reshape(arr.shape)
    except OverflowError:
        j = next(j for j, v in enumerate(flat) if isinstance(v, int) and _beyond_float(v))
        at = tuple(int(i) for i in np.unravel_index(j, arr.shape))
        raise ValueError(
            f"{name} has {_too_large('float64')}, first at index {at}: an int of "
            f"{int_digits(flat[j])} digits"
        ) from None


def _beyond_float(i: int) -> bool:
    try:
        float(i)
    except OverflowError:
        return True
    return False


def check_finite_rows(a: NDArray[Any], name: str, first_row: int | None = 0) -> None:
    """NaN or Inf in the 2-D ``a`` is a ``ValueError`` naming its first row, worded as the
    engine's. Rows are numbered as by :func:`convert_checked`."""
    finite = np.isfinite(a).all(axis=1)
    if not finite.all():
        row = _row(int(np.argmin(finite)), first_row, name)
        raise ValueError(f"{name} contains NaN or Inf (first at {row})")


def _row(i: int, first_row: int | None, name: str) -> str:
    """Row ``i`` of a block that starts at row ``first_row`` of ``name``, in a message."""
    if first_row is None:
        return f"row {i} of a block whose place in {name} is not known: its chunk sizes are unknown"
    return f"row {first_row + i}"


def as_float(v: Any, name: str) -> float:
    """``v`` (a real number, not a bool) as a float; anything else is a ``TypeError``, and an
    int beyond the float range a ``ValueError``."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(
            f"{name} must be a finite number, got an int of {int_digits(int(v))} digits"
        ) from None


def as_positive(v: Any, name: str) -> float:
    """``v`` as a finite float > 0."""
    f = as_float(v, name)
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v}")
    return f


def as_nonnegative(v: Any, name: str) -> float:
    """``v`` as a finite float >= 0."""
    f = as_float(v, name)
    if not (math.isfinite(f) and f >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return f


def as_fraction(v: Any, name: str) -> float:
    """``v`` as a float strictly between 0 and 1."""
    f = as_float(v, name)
    if not 0.0 < f < 1.0:  # NaN included
        raise ValueError(f"{name} must be in (0, 1), got {v}")
    return f


def as_seed(seed: Any) -> int:
    """A seed: an int in [0, 2**64)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {shown(int(seed))}")
    return int(seed)


def parse_dtype(dtype: Any) -> str:
    """Normalize a dtype spec (``"float32"``, ``np.float64``, ...) to its name."""
    try:
        name: str = np.dtype(dtype).name
    except TypeError as err:
        raise ValueError(f"dtype must be {one_of(tuple(_FLOAT_NAMES))}, got {dtype!r}") from err
    if name not in _FLOAT_NAMES:
        raise ValueError(f"dtype must be {one_of(tuple(_FLOAT_NAMES))}, got {dtype!r}")
    return name


def _shape_text(shape: tuple[Any, ...]) -> str:
    """``shape`` as in a message, a length Dask does not know yet (NaN) as ``?``."""
    parts = ["?" if isinstance(n, float) and math.isnan(n) else str(n) for n in shape]
    return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"


def check_batch_shape(shape: tuple[Any, ...], dim: int, name: str = "X") -> None:
    """Raises the ValueError of a batch whose shape is not (n, dim): the one message of the
    in-memory methods and of :mod:`scorematch.dask` (where a row count not yet known reads
    ``?``, not ``nan``)."""
    if len(shape) != 2:
        # With dim 1, a 1-D array (a pandas or polars Series, an Arrow column) is n points,
        # which reshape(1, -1) would make one point of n coordinates; an empty one ([]) is
        # no point at all.
        if shape == (0,):
            hint = f"for no rows pass an array of shape (0, {dim})"
        elif dim == 1:
            hint = f"for n points use {name}.reshape(-1, 1)"
        else:
            hint = f"for a single point use {name}.reshape(1, -1)"
        raise ValueError(
            f"{name} must be 2-D with shape (n, {dim}), got an array of shape {_shape_text(shape)}"
            + (f"; {hint}" if len(shape) == 1 else "")
        )
    if shape[1] != dim:
        raise ValueError(
            f"{name} must have shape (n, {dim}) for this model, got {_shape_text(shape)}"
        )


def as_batch(x: Any, dim: int, dtype: str, name: str = "X") -> NDArray[Any]:
    """Return ``x`` as an (n, dim) array of ``dtype``, copying only when the dtype differs.

    numpy arrays of the model's dtype pass through untouched whatever their memory order or
    strides (the engine reads them in place), unless misaligned (then they are copied). Arrays of the other float dtype are converted
    once. Array-likes (nested lists, objects with ``__array__``) are converted with numpy,
    objects that speak only DLPack through ``np.from_dlpack`` (see :func:`as_real_array`).
    Integer, boolean, complex, object and string arrays raise ``TypeError``.
    """
    if (
        type(x) is np.ndarray
        and x.dtype is _NATIVE[dtype]
        and x.ndim == 2
        and x.shape[1] == dim
        and x.flags.aligned
    ):
        return x  # the common case, checked first: it costs a few hundred nanoseconds
    # A subclass (np.matrix, np.memmap, ...) is read as the plain array it holds.
    arr = as_real_array(x, name, FLOATS, batch=True, whole=True)
    if arr.dtype.kind != "f":
        if isinstance(x, np.ndarray):
            # An integer array is refused rather than converted unseen; integers in a list are
            # numbers written without a decimal point.
            raise TypeError(
                f"{name} must be {FLOATS}, got dtype {arr.dtype}; "
                f"convert it explicitly, e.g. {name}.astype(np.float64)"
            )
        arr = arr.astype(dtype)
    check_batch_shape(arr.shape, dim, name)
    if arr.dtype != _FLOAT_NAMES[dtype] or not arr.dtype.isnative:
        arr = convert_checked(arr, dtype, name)
    elif not arr.flags.aligned:
        # A view at an odd byte offset (of a packed record array, a byte buffer): the engine
        # reads whole floats, so it gets an aligned copy.
        arr = arr.copy()
    return arr


def convert_checked(
    arr: NDArray[Any], dtype: str, name: str, first_row: int | None = 0
) -> NDArray[Any]:
    """``arr`` in ``dtype``; finite values that overflow it (float64 → float32) are an error
    that says so, not an Inf for the NaN/Inf check to misreport. Rows are numbered from
    ``first_row`` (a block's place in a larger array); ``None``: the block's place is not known
    (a Dask array of unknown chunk sizes), and the message says so."""
    return narrow_checked(arr, dtype, name, _FIX[dtype], lambda at: _row(at[0], first_row, name))


def narrow_checked(
    arr: NDArray[Any],
    dtype: str,
    name: str,
    fix: str,
    place: Callable[[tuple[int, ...]], str] = lambda at: f"index {at}",
) -> NDArray[Any]:
    """``arr`` in ``dtype`` (not copied if it already is). Finite values that overflow it
    (float64 → float32, longdouble → float64) are a ``ValueError`` naming the first, in C
    order, by ``place`` of its index, and saying what to do (``fix``): they are not the NaN
    or Inf that a later check would report, and numpy's warning about the cast is not shown."""
    out, over = _narrowed(arr, dtype)
    if over is not None:
        at = tuple(int(i) for i in np.unravel_index(int(np.argmax(over)), over.shape))
        raise ValueError(f"{name} has {_too_large(dtype)}, first at {place(at)}; {fix}")
    return out


# What to do about values a dtype cannot hold.
_FIX = {
    "float32": "use a float64 model or rescale the data",
    "float64": "rescale the data",
}


def _too_large(dtype: str) -> str:
    top = f"{float(np.finfo(dtype).max):.1e}".replace("e+", "e")
    return f"values too large for {dtype} (|x| > {top})"


def _narrowed(arr: NDArray[Any], dtype: str) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """``arr`` converted to ``dtype``, and where finite values overflowed to ±Inf in the
    conversion (``None`` if nowhere): those are not NaN or Inf in the caller's data, and a
    message must not say they are."""
    with np.errstate(over="ignore"):
        out = arr.astype(dtype, copy=False)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > out.dtype.itemsize:
        over = np.isinf(out) & np.isfinite(arr)
        if over.any():
            return out, over
    return out, None


def as_params_dtype(arr: NDArray[Any], dtype: str, name: str) -> NDArray[Any]:
    """A parameter array in ``dtype``, C-ordered and aligned (copied only if it is not
    already); finite values too large for ``dtype`` are a ``ValueError`` that says so."""
    out, over = _narrowed(arr, dtype)
    if over is not None:
        j = int(np.argmax(over.reshape(-1)))
        fix = "use a float64 model" if dtype == "float32" else "rescale them"
        raise ValueError(f"{name} has {_too_large(dtype)} (at flat index {j}); {fix}")
    return np.require(out, requirements=["C", "A"])
