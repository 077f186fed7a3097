"""Command line: ``scorematch demo | fit | sample | info`` (also ``python -m scorematch``).

Errors in files or option values end, naming the file (a CSV file's line) or the option, with a
one-line message on stderr and exit status 2 (argparse itself reports unknown options and
malformed numbers, after its usage line); output paths are checked before any work: a file that
can be written or created (tried, not read from permission bits), not an input file, with the
suffix of what is written. Ctrl-C ends with status 130; ``fit`` first saves the model as trained
so far (the parameters of its last completed step) and prints its summary. A fit that diverges
writes nothing and exits with status 2. Epochs (and the steps in them) count from 1.
``sample`` writes its samples and warns, on one line, when its chains ran off (the model's
density not falling off where they ended).
"""

from __future__ import annotations

import argparse
import csv
import functools
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scorematch._files import check_writable

if TYPE_CHECKING:
    from scorematch.training import FitHistory, TrainingDivergedError


@dataclass(frozen=True)
class _Data:
    """A data file's table, and where each of its rows is in the file.

    Attributes
    ----------
    path : str
        The file, as typed.
    X : numpy.ndarray
        Its table, as read (integers as float64).
    lines : list of str or None
        A CSV file's lines, and ``rows`` the index in them of each row of ``X``; None for an
        .npy file, whose rows are named by their index.
    rows : list of int or None
    names : list of str or None
        A CSV file's column names, from its header line; None without one.
    """

    path: str
    X: Any
    lines: list[str] | None = None
    rows: list[int] | None = None
    names: list[str] | None = None

    def where(self, i: int) -> str:
        """Row ``i`` of ``X``, named as a user finds it in the file."""
        if self.lines is None or self.rows is None:
            return f"in row {i} (counted from 0)"
        line = self.rows[i]
        return f"on line {line + 1} ({_shorten(self.lines[line])!r})"


def _read_data(path: str) -> _Data:
    p = Path(path)
    if not p.exists():
        raise ValueError(f"no data file at {path!r}")
    # Windows tools and exports often write upper-case suffixes: DATA.CSV is a .csv file.
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise ValueError(f"data must be a .npy or .csv file, got {path!r}")
    try:
        with warnings.catch_warnings():
            # An empty CSV: numpy warns, then the data check of the fit says what is wrong.
            warnings.simplefilter("ignore", UserWarning)
            if suffix == ".csv":
                return _Data(path, *_read_csv(p))
            data = _read_npy(p)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"cannot read {path!r}: {err}") from None
    # A file of integer samples is data like any other here (the API asks for floats so that
    # no conversion happens unseen; the command line converts it once).
    return _Data(path, data.astype(np.float64) if data.dtype.kind in "iu" else data)


def _fit_data(data: _Data, dtype: str) -> Any:
    """The table of ``data`` as the fit of a ``dtype`` model takes it.

    The API checks the same, but names rows of "X" from 0: here the file is named, and a
    CSV file's rows by their line.

    Raises
    ------
    ValueError
        If the table is not 2-D, not of numbers, has no rows or no columns, or a value that
        is NaN, infinite or too large for ``dtype``.
    """
    from scorematch._validate import _too_large

    X, path = data.X, data.path
    if X.ndim != 2:
        raise ValueError(f"cannot fit {path!r}: expected a 2-D table (n, dim), got shape {X.shape}")
    if X.dtype.kind != "f":
        raise ValueError(f"cannot fit {path!r}: expected numbers, got an array of dtype {X.dtype}")
    if X.shape[0] == 0:
        raise ValueError(f"cannot fit {path!r}: it holds no rows of data")
    if X.shape[1] == 0:
        raise ValueError(
            f"cannot fit {path!r}: expected a 2-D table (n, dim) of at least one column, "
            f"got shape {X.shape}"
        )
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        raise ValueError(f"cannot fit {path!r}: NaN or Inf {data.where(int(np.argmin(finite)))}")
    # Converted here, as the fit would: a finite value that the cast makes infinite is too
    # large for the model's type (float32, or float64 for long-double data).
    with np.errstate(over="ignore"):
        converted = X.astype(dtype, copy=False)
    if converted is not X:
        fits = np.isfinite(converted).all(axis=1)
        if not fits.all():
            fix = "; rescale the data" + (" or use --dtype float64" if dtype != "float64" else "")
            raise ValueError(
                f"cannot fit {path!r} with --dtype {dtype}: {_too_large(dtype)} "
                f"{data.where(int(np.argmin(fits)))}{fix}"
            )
    return converted


# np.load also reads an .npz archive (as an NpzFile, not an array) and tries anything else
# as a pickle, refused with advice to unpickle it: a data file is only ever an .npy array.
_NPY_START = b"\x93NUMPY"
_ZIP_START = b"PK"


def _read_npy(p: Path) -> Any:
    """Read an .npy array (never unpickling anything).

    Raises
    ------
    ValueError
        If the file is not in the .npy format (empty, an .npz archive, a pickle...) or numpy
        cannot read it.
    """
    from scorematch.persistence import _NPY_HEADER_ERRORS, _first_line

    # The format is told from the file already open, so np.load reads the same file.
    with open(p, "rb") as f:
        start = f.read(len(_NPY_START))
        if not start:
            raise ValueError("expected an .npy array, got an empty file")
        if start.startswith(_ZIP_START):
            raise ValueError("expected an .npy array, got an .npz archive")
        if start != _NPY_START:
            raise ValueError("expected an .npy array, got a file in another format")
        f.seek(0)
        try:
            return np.load(f, allow_pickle=False)
        except ValueError as err:
            raise ValueError(_first_line(err)) from None  # on the one line of errors
        except _NPY_HEADER_ERRORS:
            # Not ValueErrors: a traceback, or "an integer is required" without the file.
            raise ValueError("its .npy header is malformed") from None
        except MemoryError:
            # A damaged header can declare terabytes in a file of a few bytes: numpy's "Unable
            # to allocate 7.28 TiB" would read as the machine's shortage, not the file's fault.
            declared, size = _declared_bytes(f), os.fstat(f.fileno()).st_size
            if declared is None or declared <= size:
                raise
            raise ValueError(
                f"its header declares {declared} bytes of data, more than the whole file "
                f"holds ({size} bytes)"
            ) from None


def _declared_bytes(f: Any) -> int | None:
    """The size of the data an .npy file's header declares (which numpy has read before);
    None for a format version that numpy has no public reader of the header for."""
    f.seek(0)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        return None
    return math.prod(shape) * dtype.itemsize


_CSV_FORMAT = "comma-separated numbers, one row per line (an optional header line)"


def _read_csv(p: Path) -> tuple[Any, list[str], list[int], list[str] | None]:
    """Read a CSV table of numbers, as spreadsheets and ``DataFrame.to_csv`` write them.

    Parameters
    ----------
    p : Path
        The file, UTF-8 with or without a byte-order mark.

    Returns
    -------
    X : numpy.ndarray
        The (n, dim) float64 table; (0, 1) for a file without data rows, which the data check
        of the fit then names like any other empty data.
    lines : list of str
        The lines of the file, without their ends.
    rows : list of int
        The index in ``lines`` of each row of ``X``.
    names : list of str or None
        The column names of the header line (see `_names`); None without one.

    Raises
    ------
    ValueError
        If the file is not UTF-8 text, or a line other than a header does not hold numbers,
        or not as many as the header line names or the lines before hold: the message names that line by its number in the
        file and quotes it (and names the first column that is not a number, by its header
        name too when there is a header line); or a number is too large for float64 (``1e400``): the message
        names it and its line. A field in double quotes is read without them (the quotes
        must open and close the field, as ``numpy.loadtxt`` reads them). The first line is a header when it names every column (no field
        empty) and is not all numbers (see `_is_header`).
    """
    # "utf-8-sig": a byte-order mark (Excel's "CSV UTF-8") is no part of the first field.
    try:
        lines = _lines(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as err:
        # A Latin-1 or UTF-16 export: say so, not the codec's byte offset alone.
        line = len(_LINE_END.split(err.object[: err.start].decode("latin-1")))
        byte = err.object[err.start : err.start + 1].hex()
        raise ValueError(f"expected UTF-8 text, got the byte 0x{byte} on line {line}") from None
    # Only the first line may hold the column names (pandas writes them by default), so that
    # a stray word further down is still an error.
    first = _csv_fields(lines[0]) if lines else None
    skip = 1 if first is not None and _is_header(first) else 0
    # numpy.loadtxt skips only empty lines: one of spaces (a trailing " ", a "\xa0" from a
    # spreadsheet) or of a comment after spaces would be a row of one field to it, refused
    # with its own message. Blank here, as in the check of the lines below.
    rows = [i for i in range(skip, len(lines)) if _csv_fields(lines[i]) is not None]
    try:
        # A field in double quotes (pandas' QUOTE_ALL, some spreadsheets) is read unquoted.
        X = np.loadtxt([lines[i] for i in rows], delimiter=",", quotechar='"', ndmin=2)
    except ValueError as err:
        # numpy's own text counts rows from 0 past the header and says nothing of the format
        # expected: find the line (the fast parse above keeps valid files fast).
        bad = _first_bad_csv_line(lines, skip)
        raise (err if bad is None else ValueError(bad)) from None
    names = _names(lines[0], X.shape[1]) if skip else None
    if names is not None and X.shape[0] and X.shape[1] != len(names):
        # Rows all of one width, not the header's: numpy reads the rows alone, and the names
        # were dropped with the header line.
        bad = _first_bad_csv_line(lines, skip)
        if bad is not None:
            raise ValueError(bad)
    _refuse_too_large(X, lines, rows)
    return X, lines, rows, names


def _refuse_too_large(X: Any, lines: list[str], rows: list[int]) -> None:
    """Raises the ``ValueError`` of the first number written out finitely (``1e400``) that
    float64 reads as infinite: the data check would call it "NaN or Inf", which the file
    does not hold. An int written out is named by its length (``an int of 5000 digits``),
    as the library names long ints, and other long numbers by their start."""
    from scorematch._validate import of_digits

    infinite = np.isinf(X)
    if not infinite.any():
        return
    for r in np.flatnonzero(infinite.any(axis=1)):
        fields = _csv_fields(lines[rows[r]]) or []
        for field in fields:
            text = _unquoted(field).strip()
            if math.isinf(float(text)) and text.lower().lstrip("+-") not in ("inf", "infinity"):
                # Past float64, an int has over 300 digits, which would fill the message.
                digits = text.lstrip("+-").lstrip("0")
                number = (
                    of_digits(len(digits))
                    if digits.isdigit() and digits.isascii()
                    else f"the number {_shorten(text)}"
                )
                raise ValueError(
                    f"{number} on line {rows[r] + 1} is too large for float64 "
                    "(at most about 1.8e308)"
                )


# The line ends of a text file, as editors, the csv module and numpy count them. str.splitlines
# also ends a line at \v, \f, \x1c-\x1e, \x85 and \u2028, so an error would name a line
# further down than the one a user finds.
_LINE_END = re.compile("\r\n|\r|\n")


def _lines(text: str) -> list[str]:
    """The lines of ``text``, without their ends (and no empty line after a last end)."""
    lines = _LINE_END.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _csv_fields(line: str) -> list[str] | None:
    """The comma-separated fields of ``line``; None for a blank or comment line (a line ends
    at a ``#``, as ``numpy.loadtxt`` ends it)."""
    text = line.split("#", 1)[0]
    return text.split(",") if text.strip() else None


def _names(header: str, width: int | None) -> list[str]:
    """The column names of a header line, as the csv module reads them: a quoted name may
    hold a comma or a ``#`` (pandas writes the name ``x, y`` as ``"x, y"``), which the split
    of data lines would take for two columns or a comment. A ``#`` outside quotes may name a
    column (``item#``) or start a comment, as it does on data lines (``a,b # units: m, s``):
    of the two readings, the one of ``width`` names (the rows' width), else the first."""
    readings = [header]
    quoted = False
    for i, c in enumerate(header):
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            readings.append(header[:i])  # a comment from each unquoted '#' (a,item#,c # m, s)
    names = []
    for text in readings:
        try:
            names.append(next(csv.reader([text]), []))
        except csv.Error:
            # A name past the csv module's field limit (131072 characters): split as data.
            names.append(_csv_fields(text) or [])
    return next((n for n in names if len(n) == width), names[0])


def _is_header(fields: list[str]) -> bool:
    """Whether the fields of a first line are column names: every one named (not empty, nor
    ``""``), and not all numbers. A first line with an empty field is a row of data, refused
    as any other with one: ``DataFrame.to_csv(header=False)`` writes NaN as an empty field,
    and a row dropped as a header would go unseen, where a refused one is named."""
    return not any(map(_is_empty, fields)) and not all(map(_is_number, fields))


def _is_empty(field: str) -> bool:
    # A quoted empty name ('""', as QUOTE_ALL writes the name of an unnamed index) too.
    return field.strip() in ("", '""')


def _unquoted(field: str) -> str:
    """The field without the double quotes around it, if it has them (as numpy.loadtxt's
    quotechar reads it: the quotes must open and close the field)."""
    return field[1:-1] if len(field) >= 2 and field[0] == field[-1] == '"' else field


def _is_number(field: str) -> bool:
    # float() also takes "1_000" and digits of other scripts ("١", fullwidth "１"), which
    # numpy.loadtxt refuses (both strip the same whitespace, non-ASCII spaces too).
    field = _unquoted(field)
    try:
        float(field)
    except ValueError:
        return False
    return "_" not in field and field.strip().isascii()


def _first_bad_csv_line(lines: list[str], skip: int) -> str | None:
    """What is wrong with the first line that is not a row of numbers like the ones before
    it (of as many as the header line names, if the file has one), counting lines from 1 in
    the file; None if every line is (numpy refused something
    else)."""
    data = (f for f in map(_csv_fields, lines[skip:]) if f is not None)
    names = _names(lines[0], len(next(data, []))) if skip else None
    width = None
    for number, line in enumerate(lines[skip:], start=skip + 1):
        fields = _csv_fields(line)
        if fields is None:
            continue
        if not all(map(_is_number, fields)):
            got = f"expected {_CSV_FORMAT}, got {_shorten(line)!r} on line {number}"
            empty = next((i for i, field in enumerate(fields, 1) if _is_empty(field)), None)
            if empty is None:
                # A column of words (True/False, a category) is refused on its first row:
                # named, as the quoted line may be cut short before it.
                column = next(i for i, field in enumerate(fields) if not _is_number(field))
                text = _shorten(_unquoted(fields[column]), 20)
                return f"{got} ({_column(column, names)} holds {text!r}, not a number)"
            # A first line of names with an empty one, such as the index column's in
            # DataFrame.to_csv(), is data by the rule of _is_header: say why it is not a header.
            named = number == 1 and any(not (_is_empty(f) or _is_number(f)) for f in fields)
            why = ": a header line names every column" if named else ""
            return f"{got} (field {empty} is empty{why})"
        got = f"expected {_CSV_FORMAT}, got {_count(len(fields), 'number')} on line {number}"
        if names is not None and len(fields) != len(names):
            # A header line names the columns: a row of another width is not a row of them
            # (a model of the rows' width was fitted, the names read as those of other data).
            return (
                f"{got} ({_shorten(line)!r}) where the header line names "
                f"{_count(len(names), 'column')}"
            )
        if width is not None and len(fields) != width:
            return f"{got} ({_shorten(line)!r}) where the lines before have {width}"
        width = len(fields)
    return None


def _column(i: int, names: list[str] | None) -> str:
    """Column ``i`` (from 0) of a CSV file, named as a user finds it: by its number from 1,
    as fields and lines are counted, and its name in the header line if the file has one."""
    if names is None or i >= len(names):
        return f"column {i + 1} (counting from 1)"
    return f"column {i + 1}, {_shorten(_unquoted(names[i]), 20)!r},"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _shorten(line: str, limit: int = 40) -> str:
    # Quoted in a one-line message: a long row is cut, its start is enough to find it.
    line = line.strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)


def _check_out(
    path: str, suffixes: tuple[str, ...], inputs: Sequence[tuple[str, str]] = ()
) -> None:
    """Refuses an output path before the work whose result it would hold, not after.

    Parameters
    ----------
    path : str
        The output file.
    suffixes : tuple of str
        The suffixes it may have, lower-case; any case is taken.
    inputs : sequence of (str, str)
        What each input file is ("data file") and its path: the output must not be one.

    Raises
    ------
    ValueError
        If ``path`` is an input file, has another suffix, names a folder, is in no folder,
        or cannot be written: an existing file that cannot be opened for writing, or a new
        one in a folder that refuses new files.
    """
    p = Path(path)
    # First: "fit d.npy --out d.npy" is told what it would do, not that .npy is no model.
    for what, source in inputs:
        if _same_file(source, path):
            raise ValueError(f"output {path!r} would overwrite the {what} {source!r}")
    # Path drops a trailing separator ("new/" has the name "new"): such a path names a
    # folder, existing or not, and open() would fail on it only after the work.
    if not p.name or path.endswith(_SEPARATORS) or p.is_dir():
        raise ValueError(f"output must name a file, got {path!r}")
    if p.suffix.lower() not in suffixes:
        raise ValueError(f"output must be a {' or '.join(suffixes)} file, got {path!r}")
    if not p.parent.is_dir():
        raise ValueError(f"no folder {str(p.parent)!r} to write {path!r} in")
    check_writable(path)


def _same_file(a: str, b: str) -> bool:
    # Both must exist for samefile; a link or another spelling of the same file counts.
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _write_data(path: str, X: Any) -> None:
    # .npy or .csv in any case: _check_out refused anything else before the work. Through
    # an open file, because np.save given a name adds ".npy" to "S.NPY".
    with open(path, "wb") as f:
        if Path(path).suffix.lower() == ".npy":
            np.save(f, X)
        else:
            np.savetxt(f, X, delimiter=",")


def _demo(args: argparse.Namespace) -> None:
    from scorematch.demo import run

    run(args.dataset, out=args.out or None, seed=args.seed, epochs=args.epochs)


def _fit(args: argparse.Namespace) -> None:
    from scorematch import EnergyMLP, TrainingDivergedError

    # The model writer adds no suffix: a model file is named as the archive it is.
    _check_out(args.out, (".npz",), [("data file", args.data)])
    # Option values before the data, which can take long to read.
    try:
        hidden = tuple(int(w) for w in args.hidden.split(","))
    except ValueError:
        raise ValueError(
            f"--hidden must be comma-separated integer widths, e.g. 64,64,64; got {args.hidden!r}"
        ) from None
    # The API's own checks would speak of the Python arguments: "an array X_val or None",
    # "standardize=True needs alpha == 0", which the command line has no way to give.
    if not 0 <= args.validation < 1:
        raise ValueError(
            "--validation must be the fraction of the rows held out, in [0, 1) (0 for none), "
            f"got {args.validation}"
        )
    if args.standardize and args.alpha != 0:
        raise ValueError(
            "--standardize needs --alpha 0: the confining term (alpha/2)|x|^2 has no exact "
            f"counterpart in standardized coordinates, got --alpha {args.alpha}"
        )
    data = _read_data(args.data)
    X = _fit_data(data, args.dtype)
    # The data's columns in warnings as in the errors about the file: from 1, by name.
    warnings.showwarning = functools.partial(_show_warning, names=data.names)
    model = EnergyMLP(
        X.shape[1],
        hidden=hidden,
        activation=args.activation,
        dtype=args.dtype,
        alpha=args.alpha,
        seed=args.seed,
    )
    try:
        hist = model.fit(
            X,
            objective=args.objective,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            weight_decay=args.weight_decay,
            validation=args.validation,
            patience=args.patience,
            seed=args.seed,
            noise_std=args.noise_std,
            n_projections=args.n_projections,
            projection=args.projection,
            standardize=args.standardize,
            progress=None,
        )
    except TrainingDivergedError as err:
        # The library's message counts from 0 and speaks of the model it keeps in memory:
        # here epochs count from 1, as everywhere on the command line, and no file is written.
        raise RuntimeError(_diverged(err, args.out)) from None
    except ValueError as err:
        # The data's columns as the file's errors and the warnings name them: from 1, by name.
        raise ValueError(_columns_from_1(str(err), data.names)) from None
    # Interrupted, the model holds the parameters of its last completed step: they are saved
    # too, and the exit status then says the fit did not run to its end.
    model.save(args.out)
    print(
        f"fitted {model!r} on {len(X)} rows: {hist.n_epochs} epochs in {hist.seconds:.2f} s, "
        f"{_saved_loss(hist)} ({hist.stop_reason}); saved to {args.out}"
    )
    if hist.stop_reason == "interrupted":
        raise KeyboardInterrupt


_LR = re.compile(r"\blr\b")


def _diverged(err: TrainingDivergedError, out: str) -> str:
    """The command line's message of a fit that diverged: epoch and step counted from 1, and
    no promise of a model, since none is written to ``out``."""
    nothing = f"nothing was written to {out!r}"
    if err.epoch is None or err.step is None:
        # Not raised by the core (which sets the parts): kept whole, the file said.
        return f"{err}; {nothing}"
    return (
        f"training diverged at step {err.step + 1} of epoch {err.epoch + 1} (both counted "
        f"from 1): {err.cause}; {nothing} ({_LR.sub('--lr', err.advice or '')})"
    )


def _saved_loss(hist: FitHistory) -> str:
    """The loss of the parameters ``fit`` saved, named as such: the best epoch's validation
    loss when it was restored, else the last epoch's loss (an interrupted fit saves its last
    completed step, which can lie past the end of its last epoch)."""
    if hist.n_epochs == 0:
        return "no epoch completed"
    if hist.stop_reason == "interrupted":
        kind = "validation" if hist.val_loss else "training"
        losses = hist.val_loss or hist.train_loss
        return f"last epoch's {kind} loss {losses[-1]:.5g}, model as of its last completed step"
    if hist.val_loss and hist.best_epoch is not None:
        # Counted from 1, as the progress bar counts epochs (FitHistory.best_epoch is from 0).
        best = hist.best_epoch
        return (
            f"kept best epoch {best + 1} of {hist.n_epochs}, "
            f"validation loss {hist.val_loss[best]:.5g}"
        )
    return f"last epoch's training loss {hist.train_loss[-1]:.5g}"


def _sample(args: argparse.Namespace) -> None:
    from scorematch import load

    _check_out(args.out, (".npy", ".csv"), [("model file", args.model)])
    model = load(args.model)
    res = model.sample(
        args.n,
        n_steps=args.steps,
        step_size=args.step_size,
        method=args.method,
        burn_in=args.burn_in,
        seed=args.seed,
        adapt_step_size=args.method == "mala" and args.burn_in > 0,
    )
    _write_data(args.out, res.samples)
    print(
        f"{args.n} samples ({args.method}, {args.steps} steps) in {res.wall_time:.2f} s -> {args.out}"
    )
    _warn_if_ran_off(model, res, adapted=args.method == "mala" and args.burn_in > 0)


# A model whose density does not fall off (a short fit) lets the chains run off: MALA's tuning,
# accepting nearly every proposal, grows eps without bound, and the samples land far from the
# data (blobs within 6.6 fitted 5 epochs: eps ~1.6e4, samples at ~1e5). The model file does not
# know its data, so the run is judged by itself, by the Stein identity: samples x of a density
# exp(-E) that falls off satisfy E[s(x).(x - c)] = -dim for any point c (s = -grad E; by
# parts), whatever its scale or place. Where the chains ran off, the score points away from
# them. Measured per dimension, c the samples' median, over seeds 0-4 (MALA, burn-in 200):
# models trained 100 epochs (blobs with and without --standardize, blobs at (300, -200), 100
# times wider or smaller, moons, all with --standardize) give -2.2 to -0.45 with 10 chains and
# -1.24 to -0.82 with 100 or 1000, for 50 or 1000 steps; chains still on their way to data at
# (300, -200) (ULA or untuned MALA at eps 0.1) +0.29; models trained too little whose chains
# stay (at most 300 times the data's reach) -1.5 to -0.04. The runaways: the blobs fitted 5
# epochs +5.7 to +19 with 100 chains and 50 steps, +32 to +86 after 1000 steps (with 10 chains
# -1.8 to +84: a few chains may all have stayed), +434 to +4.3e3 fitted with --standardize;
# the blobs at (300, -200) fitted 100 epochs without --standardize +1.6e6. Hence a warning
# above +1, the identity's value with its sign turned. Not caught: chains diffusing through a
# density that falls off too slowly (blobs fitted 10 epochs: -0.8 to -0.5 while the samples
# spread from 5e2 to 1.7e3 over 50 to 5000 steps), which only the data could tell.
_RAN_OFF = 1.0


def _warn_if_ran_off(model: Any, res: Any, *, adapted: bool) -> None:
    X = res.samples
    if X.shape[0] == 0:
        return
    centre = np.median(X, axis=0)
    away = X - centre
    with np.errstate(all="ignore"):
        # In float64: the products of a float32 model at 1e5 would lose the sign of their sum.
        scores = model.score(X).astype(np.float64)
        stein = float(np.mean(np.sum(scores * away, axis=1)) / X.shape[1])
    # NaN too (a score that overflows out there): no sign of a density that falls off.
    if stein <= _RAN_OFF:
        return
    eps = float(np.median(res.step_size))
    step = f"MALA's tuning grew the step size to {eps:.3g} (median)" if adapted else None
    print(
        "scorematch: warning: the chains ran off: at the samples the model's score points away "
        f"from them (the mean of s(x).(x - c) per dimension is {stein:+.3g}, c their median, "
        "where samples of a density that falls off give -1), they reach "
        f"{float(np.abs(away).max()):.3g} from c"
        + (f", and {step}" if step else f" (step size {eps:.3g})")
        + "; the density does not fall off there: train longer (--epochs), fit with "
        "--standardize if the data are far from 0 or not of unit scale, or sample with a "
        "smaller --step-size and --burn-in 0 (no tuning)",
        file=sys.stderr,
    )


def _info(args: argparse.Namespace) -> None:
    from scorematch import load

    model = load(args.model)
    print(repr(model))
    for i, p in enumerate(model.params):
        print(f"  params[{i}]: shape {p.shape}, dtype {p.dtype}")


# The Python parameters behind options spelled otherwise: the API's checks name the former.
_OPTIONS = {
    "n_samples": "-n",
    "n_steps": "--steps",
    "step_size": "--step-size",
    "burn_in": "--burn-in",
    "batch_size": "--batch-size",
    "noise_std": "--noise-std",
    "n_projections": "--n-projections",
    "weight_decay": "--weight-decay",
}
_PARAMETER = re.compile(r"\b(" + "|".join(_OPTIONS) + r")\b")
# Parameters whose option has their name: reworded only where a message opens with the rule
# on them ("seed must be ..."), as the word can mean something else further on.
_SAME_NAMED = re.compile(
    r"^(?:epochs|lr|alpha|patience|validation|seed)(?= must )|^projection(?= is only used )"
)
# "validation=0.999 leaves no training rows ...": the option as typed, "--validation 0.999".
_ASSIGNED = re.compile(r"^(validation)=")
_STANDARDIZE = "standardize=True: "
_X = re.compile(r"\bX\b")


def _in_option_names(message: str) -> str:
    """An API error reworded for the command line: ``n_steps must be at least 1`` names the
    option typed, ``--steps must be at least 1``, and ``seed must be ...`` ``--seed``."""
    message = _PARAMETER.sub(lambda m: _OPTIONS[m.group(1)], message)
    message = _ASSIGNED.sub(r"--\1 ", message)
    if message.startswith(_STANDARDIZE):
        # The data's refusals of standardize=True: the file is "the data" here, not "X".
        message = "--standardize: " + message[len(_STANDARDIZE) :]
        message = message.replace("pass standardize=False", "leave out --standardize")
        message = _X.sub("the data", message)
    return _SAME_NAMED.sub(lambda m: "--" + m.group(0), message)


# "column 3 of X", "columns [0, 2] of X": the library's columns of the data, from 0.
_DATA_COLUMNS = re.compile(r"\bcolumns? (\d+|\[\d+(?:, \d+)*\]) of X\b")


def _columns_from_1(text: str, names: list[str] | None) -> str:
    """``text`` with the library's column numbers (from 0) as the CLI's errors name the
    columns of a file (:func:`_column`: from 1, with their names in a header line)."""

    def named(m: re.Match[str]) -> str:
        columns = [int(c) for c in re.findall(r"\d+", m.group(1))]
        by_name = names is not None and all(j < len(names) for j in columns)
        said = [
            f"{j + 1} ({_shorten(_unquoted(names[j]), 20)!r})" if by_name and names else str(j + 1)
            for j in columns
        ]
        listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
        counting = "" if by_name else " (counting from 1)"
        return f"column{'s' if len(said) > 1 else ''} {listed}{counting} of the data"

    return _DATA_COLUMNS.sub(named, text)


def _show_warning(
    message: Warning | str, *_: Any, names: list[str] | None = None, **__: Any
) -> None:
    # The data is a file here (its columns counted from 1, named by its header line), and
    # options are typed as options.
    text = _columns_from_1(_in_option_names(str(message)), names)
    text = _X.sub("the data", text)
    text = re.sub(r"objective='(\w+)'", r"--objective \1", text)
    print(f"scorematch: warning: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scorematch`` console script."""
    from scorematch import __version__, datasets
    from scorematch.model import _PROJECTIONS
    from scorematch.training import _OPTIMIZERS

    parser = argparse.ArgumentParser(
        prog="scorematch",
        description="Energy-based models by score matching, with a fast Rust core.",
    )
    parser.add_argument("--version", action="version", version=f"scorematch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="fit a built-in 2-D dataset, sample it with Langevin dynamics, plot",
        description="Fit an energy MLP by implicit score matching to a built-in dataset, "
        "draw MALA samples, print timings and quality figures, and write a figure.",
    )
    demo.add_argument(
        "--dataset",
        default="8gaussians",
        choices=datasets.names(),
        help="built-in 2-D dataset (default: %(default)s)",
    )
    demo.add_argument(
        "--out", default="demo.png", help="figure path (PNG); '' for none (default: %(default)s)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of everything random (default: %(default)s)"
    )
    demo.add_argument(
        "--epochs", type=int, default=80, help="training epochs (default: %(default)s)"
    )
    demo.set_defaults(run=_demo)

    fit = sub.add_parser(
        "fit",
        help="fit an energy model to a .npy or .csv table of samples",
        description="Fit an energy MLP E(x) to samples by score matching (Adam by default). "
        "A fraction of the rows (--validation, 10% by default) is held out, and the "
        "parameters of the epoch with the lowest held-out loss are kept.",
    )
    fit.add_argument(
        "data", help="(n, dim) samples, .npy or .csv (comma-separated, an optional header line)"
    )
    fit.add_argument("--out", required=True, help="model file to write, .npz")
    fit.add_argument(
        "--objective",
        default="ism",
        choices=["ism", "ssm", "dsm"],
        help="implicit (exact Hessian trace), sliced or denoising score matching "
        "(default: %(default)s)",
    )
    fit.add_argument(
        "--hidden", default="64,64,64", help="comma-separated hidden widths (default: %(default)s)"
    )
    fit.add_argument(
        "--activation",
        default="softplus",
        choices=["softplus", "tanh", "silu"],
        help="hidden-layer activation (default: %(default)s)",
    )
    fit.add_argument(
        "--dtype",
        default="float64",
        choices=["float32", "float64"],
        help="the model's floating-point type (default: %(default)s)",
    )
    fit.add_argument(
        "--alpha",
        type=float,
        default=0.0,
        help="weight of the fixed term (alpha/2)|x|^2 added to the energy (default: %(default)s)",
    )
    fit.add_argument(
        "--epochs", type=int, default=100, help="passes over the data (default: %(default)s)"
    )
    fit.add_argument(
        "--batch-size", type=int, default=256, help="rows per minibatch (default: %(default)s)"
    )
    fit.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: %(default)s)")
    fit.add_argument(
        "--noise-std", type=float, default=None, help="noise level, needed by --objective dsm"
    )
    fit.add_argument(
        "--n-projections",
        type=int,
        default=1,
        help="random directions per row of --objective ssm (default: %(default)s)",
    )
    fit.add_argument(
        "--projection",
        default="gaussian",
        choices=_PROJECTIONS,
        help="distribution of the directions of --objective ssm (default: %(default)s)",
    )
    fit.add_argument(
        "--optimizer",
        default="adam",
        choices=_OPTIMIZERS,
        help="Adam, or SGD with momentum (default: %(default)s)",
    )
    fit.add_argument(
        "--weight-decay", type=float, default=0.0, help="L2 weight decay (default: %(default)s)"
    )
    fit.add_argument(
        "--validation",
        type=float,
        default=0.1,
        help="fraction of the rows held out, 0 for none; without it the last epoch is kept "
        "(default: %(default)s)",
    )
    fit.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many epochs without a better loss (default: run every epoch)",
    )
    fit.add_argument(
        "--standardize",
        action="store_true",
        help="train on standardized columns and fold the map into the first layer "
        "(needs --alpha 0)",
    )
    fit.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initialization, the shuffles and the random objectives "
        "(default: %(default)s)",
    )
    fit.set_defaults(run=_fit)

    sample = sub.add_parser(
        "sample",
        help="draw samples from a model file with Langevin dynamics",
        description="Langevin step x <- x + (eps/2) s(x) + sqrt(eps) z with --step-size = eps. "
        "Chains start from N(0, I).",
    )
    sample.add_argument("model", help="model file, from 'scorematch fit' or EnergyMLP.save")
    sample.add_argument("-n", type=int, required=True, help="number of chains, one sample each")
    sample.add_argument("--out", required=True, help=".npy or .csv file to write")
    sample.add_argument(
        "--method",
        default="mala",
        choices=["ula", "mala"],
        help="unadjusted or Metropolis-adjusted Langevin (default: %(default)s)",
    )
    sample.add_argument(
        "--steps", type=int, default=1000, help="steps after the burn-in (default: %(default)s)"
    )
    sample.add_argument(
        "--burn-in",
        type=int,
        default=200,
        help="steps run first and dropped; MALA tunes its step size during them (none at 0) "
        "(default: %(default)s)",
    )
    sample.add_argument(
        "--step-size", type=float, default=1e-2, help="eps, as above (default: %(default)s)"
    )
    sample.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the chains' random streams (default: %(default)s)",
    )
    sample.set_defaults(run=_sample)

    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model", help="model file")
    info.set_defaults(run=_info)

    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            # One line, as the errors: a library's warning quotes its file and source line.
            warnings.showwarning = _show_warning
            args.run(args)
    # MemoryError too: -n or --steps can ask for more than the machine has, which is an
    # option value like any other, not a crash.
    except (ValueError, TypeError, OSError, RuntimeError, MemoryError) as err:
        print(f"scorematch: error: {_in_option_names(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scorematch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
