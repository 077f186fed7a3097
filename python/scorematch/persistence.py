"""Model files: a plain ``.npz`` archive, read with ``allow_pickle=False``.

Nothing in a model file is executed when it is read. The archive holds

- ``format``: the string ``"scorematch.EnergyMLP"``; ``version``: the format version (1);
- ``activation``, ``alpha``, ``dtype``: the architecture's fixed choices;
- ``n_arrays`` and ``param_0`` … ``param_{n-1}``: the parameters in the public layout
  ``[W_1, b_1, ..., W_L, b_L, w, c]`` (the widths follow from their shapes).

Each of the six fields before the parameters is a 0-d array of its own kind (string, integer
or float) and the parameters are of the file's ``dtype``: the reader converts none of them, so
a field of another type is refused, not read as what it might have meant.

Readers of a newer version than theirs refuse the file rather than guess.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import stat
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import numpy as np

if TYPE_CHECKING:
    from scorematch.model import EnergyMLP

try:
    import lzma

    _LZMA_ERROR: tuple[type[Exception], ...] = (lzma.LZMAError,)
except ImportError:  # a Python built without lzma: zipfile then refuses LZMA members itself
    _LZMA_ERROR = ()

__all__ = ["FORMAT", "VERSION", "load", "save"]

FORMAT = "scorematch.EnergyMLP"
VERSION = 1

PathLike = str | os.PathLike[str]


class BinaryReader(Protocol):
    """A file object open for reading bytes: ``open(..., "rb")``, ``io.BytesIO``, a
    ``gzip.GzipFile``, a file of fsspec or of a zip archive."""

    def read(self, size: int = ..., /) -> bytes: ...


class BinaryWriter(Protocol):
    """A file object open for writing bytes: ``open(..., "wb")``, ``io.BytesIO``, a
    ``gzip.GzipFile``, a file of fsspec or of a zip archive."""

    def write(self, data: bytes, /) -> object: ...


# How np.load tells its formats apart: an .npz archive starts with a zip local-file header
# (or, empty, with the end-of-archive record), an .npy array with the .npy magic. Anything
# else np.load would try to unpickle, and its refusal advises allow_pickle=True: wrong for a
# file that is neither, and never advice for a model file.
_ZIP_STARTS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_START = b"\x93NUMPY"


def _check_path(path: Any, mode: str) -> str:
    """How messages name ``path``: its repr for a str or os.PathLike, the file object's name
    (or type) for a file object open in binary ``mode`` (``"r"`` or ``"w"``).

    Only these name a file: ``open`` would take an int as a file descriptor (writing the
    archive into whatever it is, then closing it) and a bool as 0 or 1.

    Raises
    ------
    TypeError
        If ``path`` is none of these, or a file object in text mode.
    ValueError
        If the file object is closed, or not open for ``mode``.
    """
    if isinstance(path, (str, os.PathLike)):
        return repr(os.fspath(path))
    verb, able_name, doing = {
        "r": ("read", "readable", "reading"),
        "w": ("write", "writable", "writing"),
    }[mode]
    if not callable(getattr(path, verb, None)):
        raise TypeError(
            f"path must be a str, an os.PathLike or a binary file object, got {type(path).__name__}"
        )
    name = getattr(path, "name", None)
    where = f"file {name!r}" if isinstance(name, str) else f"the {type(path).__name__}"
    # A text file would take the archive's bytes as an error half-way through (save), or
    # give str where bytes are read (load).
    if isinstance(path, io.TextIOBase):
        raise TypeError(f"{where} is open in text mode: a model file is bytes (open it '{mode}b')")
    if getattr(path, "closed", False) is True:
        raise ValueError(f"{where} is closed")
    able = getattr(path, able_name, None)
    if callable(able) and not able():
        raise ValueError(f"{where} is not open for {doing}")
    return where


# What numpy raises, besides ValueError, for an .npy header that is not Python tokens
# (tokenize.TokenError, SyntaxError) or whose shape is not integers (TypeError, from
# reshape). The CLI reads its .npy data files with the same rules.
_NPY_HEADER_ERRORS = (tokenize.TokenError, SyntaxError, TypeError)


def _first_line(err: BaseException) -> str:
    """numpy's message without the advice it may add on later lines: its refusal of a header
    longer than max_header_size goes on about max_header_size and allow_pickle=True, which
    never apply to a model or data file.

    A header holding an expression gets ``ast.literal_eval``'s refusal, which quotes the
    node by its address ("<ast.Call object at 0x7f...>"): named by its type instead."""
    line = str(err).partition("\n")[0]
    return re.sub(
        r"<(ast\.\w+) object at 0x[0-9a-fA-F]+>", r"\1 (.npy headers hold literals only)", line
    )


# What zipfile raises, besides ValueError and zipfile.BadZipFile, for a member it cannot read:
# its compression method or encryption not supported (NotImplementedError, RuntimeError), its
# compressed data corrupt (zlib.error, lzma.LZMAError, and OSError from bz2). All are damage
# to the file, reported as such.
_MEMBER_ERRORS: tuple[type[Exception], ...] = (
    NotImplementedError,
    RuntimeError,
    OSError,
    zlib.error,
    *_LZMA_ERROR,
)


def _member(z: np.lib.npyio.NpzFile, key: str) -> Any:
    """Array ``key`` of the archive. `save` stores arrays uncompressed, so a header that
    declares more bytes than its member holds, which numpy would try to allocate, is damage,
    not a model too large for memory.

    Raises
    ------
    ValueError
        If the member cannot be read, naming it.
    """
    try:
        return z[key]
    except ValueError as err:
        # numpy's own messages name no member, and some no format either ("malformed node or
        # string on line 1: <ast.Call object at 0x...>" from a header's shape).
        raise ValueError(
            f"its member {key!r} is not a readable .npy array: {_first_line(err)}"
        ) from None
    except _NPY_HEADER_ERRORS:
        raise ValueError(f"the .npy header of {key!r} is malformed") from None
    except _MEMBER_ERRORS as err:
        raise ValueError(f"its member {key!r} cannot be read: {err}") from None
    except MemoryError:
        assert z.zip is not None  # open: called inside `with`
        held = z.zip.getinfo(f"{key}.npy").file_size
        raise ValueError(
            f"the header of {key!r} declares an array larger than the {held} bytes the file "
            "holds for it"
        ) from None


_FIELDS = ("format", "version", "activation", "alpha", "dtype", "n_arrays")


def _used_members(z: np.lib.npyio.NpzFile) -> dict[str, Any]:
    """The fields of the archive that `load` reads: the six before the parameters, then
    ``param_0`` … up to ``n_arrays`` of them, stopping at the first missing. Only these are
    read, because a member is decompressed whole: an unused one of a few megabytes could
    stand for gigabytes of zeros."""
    names = set(z.files)
    fields = {k: _member(z, k) for k in _FIELDS if k in names}
    n = fields.get("n_arrays")
    # A malformed n_arrays reads no parameter: `load` refuses it by its own check.
    if isinstance(n, np.ndarray) and n.ndim == 0 and n.dtype.kind in "iu":
        i = 0
        while i < n and f"param_{i}" in names:
            fields[f"param_{i}"] = _member(z, f"param_{i}")
            i += 1
    return fields


def save(model: EnergyMLP, path: PathLike | BinaryWriter) -> None:
    """Write ``model`` to ``path``: a file, or a file object.

    Parameters
    ----------
    model : EnergyMLP
    path : str, os.PathLike or binary file object
        The file to write, exactly that path (no suffix is added), replaced if it exists:
        whole, by a new file written beside it (with the old one's permission bits and
        group), so that a save that fails leaves the previous file and a reader never sees
        half a file. It is written in place instead, as ``open(path, "wb")`` writes it,
        where replacing would change more than the contents or cannot be done: not a
        regular file, several hard links, another owner or a group the caller is not in,
        extended attributes (ACLs), no write permission, no new file possible in the folder,
        or a bind-mounted file; or
        a file object open for writing bytes (``open(..., "wb")``, ``io.BytesIO``, a
        ``gzip.GzipFile``), written from its current position and left open. What is
        written is a plain ``.npz`` archive of the architecture, ``alpha``, the dtype and the
        parameters, which :func:`load` reads back bit for bit.

    Raises
    ------
    TypeError
        If ``path`` is neither a str, an ``os.PathLike`` nor a binary file object (an int
        would be taken for a file descriptor by ``open``), or is a file object in text mode.
    ValueError
        If the file object is closed or not open for writing.
    OSError
        If the file cannot be written (no such folder, no permission).
    """
    _check_path(path, "w")
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
    if isinstance(path, (str, os.PathLike)):
        _replace(os.fspath(path), lambda f: np.savez(f, **arrays))
    else:
        # Built in memory, then written in one call: zipfile seeks back to each member's
        # header as it writes, which a pipe or a gzip.GzipFile cannot do.
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        _write_all(path, buf.getvalue())


def _replace(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Writes the file ``path`` whole or not at all where it can: ``write`` fills a new file
    beside it, which then takes its place in one step (``os.replace``). A save that fails
    halfway (a full disk, Ctrl-C) leaves the previous model, and a reader never sees half a
    file: written in place, a failed save lost the previous model, and a service reloading
    the file read half-written ones (production audit). The new file gets the old one's
    permission bits and group; a symlink stays a link to the file replaced.

    Where replacing would change more than the contents, or cannot be done, the file is
    written in place, as ``open(path, "wb")`` writes it (its errors included): what is not a
    regular file (``/dev/stdout``), a symlink loop, a file of several hard links, of another
    owner, of a group the new file cannot take, or with extended attributes (ACLs), one the
    caller may not write (its protection holds), where no new file can be made beside it
    (a folder that refuses them, no inode left, a name too long), and a file the system
    will not replace (a bind-mounted one)."""
    target = os.path.realpath(path)
    try:
        st: os.stat_result | None = os.stat(target)
    except OSError:
        st = None  # no such file yet (or a symlink loop, refused in place below)
    if not _replaceable(target, st):
        _write_in_place(path, write)
        return
    folder, name = os.path.split(target)
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        # As open() creates files: 0o666 less the umask; never an existing file (O_EXCL).
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temp, flags, 0o666)
    except OSError:
        _write_in_place(path, write)
        return
    try:
        with os.fdopen(fd, "wb") as f:
            if st is not None and not _takes_over(f.fileno(), st):
                f.close()
                os.unlink(temp)
                _write_in_place(path, write)
                return
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before it is the model
        try:
            os.replace(temp, target)
        except OSError as err:
            # EBUSY: a bind-mounted file; EXDEV, EPERM: a mount or a sticky folder. On
            # Windows a reader holding the file open refuses it, as it refuses open().
            if err.errno not in (errno.EBUSY, errno.EXDEV, errno.EPERM):
                raise
            os.unlink(temp)
            _write_in_place(path, write)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _replaceable(target: str, st: os.stat_result | None) -> bool:
    """Whether a new file may take the place of ``target`` (``st``: its status, None if it
    does not exist) without changing more than its contents."""
    if st is None:
        return not os.path.islink(target)  # a symlink loop: open() says so
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        return False
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return False
    if hasattr(os, "listxattr"):
        try:
            # ACLs, user attributes: a new file would drop them. Not SELinux's label, which
            # every file has there and a new file gets from its folder.
            if set(os.listxattr(target)) - {"security.selinux"}:
                return False
        except OSError:
            pass  # a filesystem without them
    # Its permission bits (and a read-only mount) refuse the write here as they would refuse
    # open() (not opened to ask: that would tell inotify watchers it was written).
    effective = os.access in os.supports_effective_ids
    return os.access(target, os.W_OK, effective_ids=effective)


def _takes_over(fd: int, st: os.stat_result) -> bool:
    """Gives the new file ``fd`` the mode and group of the file it replaces (status
    ``st``); False where the group cannot be given (one the caller is not in)."""
    if hasattr(os, "fchown") and os.fstat(fd).st_gid != st.st_gid:
        try:
            os.fchown(fd, -1, st.st_gid)
        except OSError:
            return False
    if os.chmod in os.supports_fd:
        os.chmod(fd, stat.S_IMODE(st.st_mode))
    return True


def _write_in_place(path: str, write: Callable[[BinaryIO], None]) -> None:
    with open(path, "wb") as f:
        write(f)


def _write_all(f: BinaryWriter, data: bytes) -> None:
    """Writes all of ``data``: a raw file object (``buffering=0``, a socket's file) may write
    part of it and return the count, as ``io.RawIOBase.write`` does."""
    while data:
        n = f.write(data)
        if not isinstance(n, int) or n >= len(data):
            return  # buffered writers write it all (GzipFile counts uncompressed bytes)
        if n <= 0:
            raise OSError(f"the file object wrote {n} of {len(data)} bytes left to write")
        data = data[n:]


def _read_fields(f: BinaryIO) -> dict[str, Any]:
    """The members `load` uses (see `_used_members`) of the archive in ``f``.

    Raises
    ------
    ValueError
        If ``f`` holds no archive, or a damaged one.
    """
    # The format is told from the file already open, so np.load reads the same file.
    start = f.read(len(_NPY_START))
    if start.startswith(_NPY_START):
        raise ValueError("it holds a single array, not the archive `save` writes")
    if not start.startswith(_ZIP_STARTS):
        raise ValueError(
            "it is an empty file, not an .npz archive" if not start else "it is not an .npz archive"
        )
    f.seek(0)
    try:
        with np.load(f, allow_pickle=False) as z:
            # zipfile reads the archive that ends the file, wherever it starts: two models
            # saved to one stream gave the second, in silence. `save` writes its first member
            # at the start.
            if min((m.header_offset for m in z.zip.infolist()), default=0) > 0:
                raise ValueError(
                    "it holds other data before the archive that ends it (two models saved "
                    "to one stream, one after the other?): a model file holds one archive"
                )
            return _used_members(z)
    except zipfile.BadZipFile as err:
        # It starts as an archive: zipfile's "File is not a zip file" means that the end of
        # it, where the table of its members is, is missing or damaged.
        raise ValueError(f"a truncated or damaged .npz archive: {err}") from None
    except NotImplementedError as err:
        # zipfile's refusal of a member needing a later zip version (damage, for an archive
        # `save` wrote) as it reads the table of members.
        raise ValueError(f"a damaged .npz archive or one of a later zip: {err}") from None


def _bytes(data: object) -> bytes:
    """What a file object read, checked to be bytes: a file object that is not an
    io.TextIOBase may still read str."""
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(
            f"the file object read {type(data).__name__}, not bytes: a model file is bytes "
            "(open it 'rb')"
        )
    return data


def load(path: PathLike | BinaryReader) -> EnergyMLP:
    """Read a model written by :meth:`EnergyMLP.save`.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        A file written by ``save``, or a file object open for reading bytes (``open(...,
        "rb")``, ``io.BytesIO``, a ``gzip.GzipFile``, a pipe), read from its current
        position to its end and left open. Read with ``allow_pickle=False``: nothing in it
        is executed.

    Returns
    -------
    EnergyMLP
        The saved model: same architecture, ``alpha``, dtype and parameters, bit for bit.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated, corrupted, not a scorematch model, of a newer format,
        holds a field of another type than `save` writes or other data before the model
        (two models saved one after the other to one stream); or if the file object is
        closed or not open for reading.
    TypeError
        If ``path`` is neither a str, an ``os.PathLike`` nor a binary file object, or is a
        file object in text mode.
    """
    from scorematch.model import EnergyMLP

    where = _check_path(path, "r")
    if isinstance(path, (str, os.PathLike)) and not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {os.fspath(path)!r}")
    try:
        if isinstance(path, (str, os.PathLike)):
            with open(path, "rb") as f:
                fields = _read_fields(f)
        else:
            # Read whole, then parsed in memory: zipfile seeks to the end first, which a pipe,
            # a socket or a gzip.GzipFile cannot do (a model file is the size of its
            # parameters).
            data = _bytes(path.read())
            if not data:
                # The usual slip: reading a BytesIO just written, from its end.
                raise ValueError("nothing is left to read from its position: seek(0) after writing")
            fields = _read_fields(io.BytesIO(data))
    except (OSError, ValueError, EOFError, KeyError) as err:
        # Some say nothing (a bare EOFError where a member runs past the end): named by type.
        why = str(err) or type(err).__name__
        if isinstance(err, EOFError) and not str(err):
            why += ": the file ends where the archive places more data"
        raise ValueError(f"{where} is not a readable scorematch model file ({why})") from None
    tag = fields.get("format")
    # Compared as arrays: str() of a string array holding a code point above U+10FFFF (numpy
    # reads any 32-bit value into one) raises SystemError.
    if not (
        isinstance(tag, np.ndarray)
        and tag.shape == ()
        and tag.dtype.kind == "U"
        and bool(tag == np.array(FORMAT))
    ):
        raise ValueError(f"{where} is not a scorematch model file (no {FORMAT!r} tag)")
    try:
        version = int(_scalar(fields, "version", "iu", "integer"))
        if version < 1:
            raise ValueError(f"field 'version' must be >= 1, got {version}")
    except (KeyError, ValueError) as err:
        raise _unreadable(where, err) from None
    # Checked before anything else is read: a newer format may lay out the rest differently.
    if version > VERSION:
        raise ValueError(
            f"{where} has model format version {version}; this scorematch reads up to "
            f"{VERSION}: upgrade scorematch"
        )
    try:
        n = int(_scalar(fields, "n_arrays", "iu", "integer"))
        if n < 0:
            raise ValueError(f"field 'n_arrays' must be >= 0, got {n}")
        params = [fields[f"param_{i}"] for i in range(n)]
        activation = str(_scalar(fields, "activation", "U", "string"))
        dtype = str(_scalar(fields, "dtype", "U", "string"))
        # An integer alpha is a real number as it stands; a string would have to be parsed.
        alpha = float(_scalar(fields, "alpha", "fiu", "real (float or integer)"))
    except (KeyError, ValueError) as err:
        raise _unreadable(where, err) from None
    try:
        model = EnergyMLP.from_params(params, activation=activation, alpha=alpha, dtype=dtype)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where} holds an invalid model: {err}") from None
    # from_params converts its arrays to the model's dtype; `save` stores them in it, so an
    # array of another type (integers, or float64 rounded into a float32 model) is damage.
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or p.dtype.name != model.dtype.name:
            raise _unreadable(
                where,
                ValueError(
                    f"field 'param_{i}' must be a {model.dtype.name} array, as the file's "
                    f"dtype says, got {_describe(p)}"
                ),
            )
    return model


def _scalar(fields: dict[str, Any], key: str, kinds: str, kind_name: str) -> Any:
    """Field ``key``, checked to be a 0-d array of a dtype kind in ``kinds``: never converted
    from another type, as ``int`` would truncate 4.9 and ``float`` parse ``"0.5"``.

    Raises
    ------
    KeyError
        If the file has no field ``key``.
    ValueError
        If the field is not a 0-d array of one of ``kinds`` (numpy dtype kind characters).
    """
    value = fields[key]
    if not (isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in kinds):
        raise ValueError(f"field {key!r} must be a 0-d {kind_name} array, got {_describe(value)}")
    if value.dtype.kind == "U":
        _check_text(key, value)
    return value[()]


def _check_text(key: str, value: np.ndarray[Any, Any]) -> None:
    """Refuses a string array holding a code point that is not a character: numpy reads any
    32-bit value into a ``U`` array, and a Python str made of one above U+10FFFF is an invalid
    object (the engine aborts the process on it); a surrogate cannot be encoded as UTF-8.

    Raises
    ------
    ValueError
        Naming the field and the first such code point.
    """
    codes = np.frombuffer(value.astype(value.dtype.newbyteorder("<")).tobytes(), "<u4")
    bad = codes[(codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))]
    if bad.size:
        raise ValueError(
            f"field {key!r} must hold Unicode characters, got the code point 0x{int(bad[0]):X}"
        )


def _describe(value: Any) -> str:
    """What a field holds, for messages: its dtype and shape, or its type if not an array (a
    member that is not an .npy file reads as bytes)."""
    if not isinstance(value, np.ndarray):
        return type(value).__name__
    if value.ndim == 0:
        return f"a 0-d array of dtype {value.dtype}"
    return f"an array of dtype {value.dtype} and shape {value.shape}"


def _unreadable(where: str, err: Exception) -> ValueError:
    """The error for a field of a model file that is missing (``KeyError``) or malformed."""
    if isinstance(err, KeyError):
        return ValueError(f"{where} is an incomplete scorematch model file (no {err})")
    return ValueError(f"{where} is a malformed scorematch model file ({err})")
