"""Model files: a plain ``.npz`` archive, read with ``allow_pickle=False``.

Nothing in a model file is executed when it is read. The archive holds

- ``format``: the string ``"scorematch.EnergyMLP"``; ``version``: the format version (1);
- ``activation``, ``alpha``, ``dtype``: the architecture's fixed choices;
- ``n_arrays`` and ``param_0`` … ``param_{n-1}``: the parameters in the public layout
  ``[W_1, b_1, ..., W_L, b_L, w, c]`` (the widths follow from their shapes).

Readers of a newer version than theirs refuse the file rather than guess.
"""

from __future__ import annotations

import os
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scorematch.model import EnergyMLP

__all__ = ["FORMAT", "VERSION", "load", "save"]

FORMAT = "scorematch.EnergyMLP"
VERSION = 1

PathLike = str | os.PathLike[str]


def _check_path(path: Any) -> None:
    """Only a str or os.PathLike names a file: ``open`` would take an int as a file descriptor
    (writing the archive into whatever it is, then closing it) and a bool as 0 or 1."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or an os.PathLike, got {type(path).__name__}")


def _member(z: np.lib.npyio.NpzFile, key: str) -> Any:
    """Array ``key`` of the archive. `save` stores arrays uncompressed, so a header that
    declares more bytes than its member holds, which numpy would try to allocate, is damage,
    not a model too large for memory."""
    try:
        return z[key]
    except MemoryError:
        assert z.zip is not None  # open: called inside `with`
        held = z.zip.getinfo(f"{key}.npy").file_size
        raise ValueError(
            f"the header of {key!r} declares an array larger than the {held} bytes the file "
            "holds for it"
        ) from None


def save(model: EnergyMLP, path: PathLike) -> None:
    """Write ``model`` to ``path`` (exactly that path: no suffix is added)."""
    _check_path(path)
    params = model.params
    arrays: dict[str, Any] = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION),
        "activation": np.array(model.activation),
        "alpha": np.array(model.alpha, dtype=np.float64),
        "dtype": np.array(model.dtype.name),
        "n_arrays": np.array(len(params)),
    }
    arrays.update({f"param_{i}": p for i, p in enumerate(params)})
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path: PathLike) -> EnergyMLP:
    """Read a model written by :meth:`EnergyMLP.save`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, corrupted, not a scorematch model, or of a newer format.
    TypeError
        If ``path`` is not a str or an ``os.PathLike``.
    """
    from scorematch.model import EnergyMLP

    _check_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {os.fspath(path)!r}")
    where = os.fspath(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            # A bare .npy array (np.load reads it whatever the file is called): the file's
            # content is wrong, not the argument's type.
            raise ValueError("it holds a single array, not the archive `save` writes")  # noqa: TRY004
        with loaded as z:
            fields = {k: _member(z, k) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{where!r} is not a readable scorematch model file ({err})") from None
    if fields.get("format") is None or str(fields["format"]) != FORMAT:
        raise ValueError(f"{where!r} is not a scorematch model file (no {FORMAT!r} tag)")
    try:
        version = int(fields["version"])
    except (KeyError, TypeError, ValueError) as err:
        raise _unreadable(where, err) from None
    # Checked before anything else is read: a newer format may lay out the rest differently.
    if version > VERSION:
        raise ValueError(
            f"{where!r} has model format version {version}; this scorematch reads up to "
            f"{VERSION}: upgrade scorematch"
        )
    try:
        n = int(fields["n_arrays"])
        params = [fields[f"param_{i}"] for i in range(n)]
        activation, dtype = str(fields["activation"]), str(fields["dtype"])
        alpha = float(fields["alpha"])
    except (KeyError, TypeError, ValueError) as err:
        raise _unreadable(where, err) from None
    try:
        return EnergyMLP.from_params(params, activation=activation, alpha=alpha, dtype=dtype)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where!r} holds an invalid model: {err}") from None


def _unreadable(where: str, err: Exception) -> ValueError:
    """The error for a field of a model file that is missing (``KeyError``) or malformed."""
    if isinstance(err, KeyError):
        return ValueError(f"{where!r} is an incomplete scorematch model file (no {err})")
    return ValueError(f"{where!r} is a malformed scorematch model file ({err})")
