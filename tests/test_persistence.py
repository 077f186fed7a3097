"""Model files: bit-exact round trips, and clear errors for anything that is not one."""

import gc
import gzip
import io
import os
import pickle
import re
import struct
import threading
import tracemalloc
import weakref
import zipfile

import numpy as np
import pytest
import scorematch as sm
from scorematch import persistence


def same_params(a, b) -> bool:
    """Same architecture and parameters, bit for bit (a truth value, where _same_model
    asserts)."""
    return a.hidden == b.hidden and all(
        x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a.params, b.params, strict=True)
    )


def _same_model(a, b):
    """Same architecture, alpha, dtype and parameters, bit for bit."""
    assert (a.dim, a.hidden, a.activation, a.alpha, a.dtype) == (
        b.dim,
        b.hidden,
        b.activation,
        b.alpha,
        b.dtype,
    )
    for x, y in zip(a.params, b.params, strict=True):
        assert x.dtype == y.dtype and np.array_equal(x, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["softplus", "tanh", "silu"])
def test_save_load_round_trip_is_bit_exact(tmp_path, dtype, activation):
    m = sm.EnergyMLP(3, hidden=(7, 5), activation=activation, dtype=dtype, alpha=0.25, seed=4)
    path = tmp_path / "model.npz"
    m.save(path)
    back = sm.load(path)
    _same_model(m, back)
    X = np.random.default_rng(0).normal(size=(20, 3))
    assert np.array_equal(m.hessian_trace(X), back.hessian_trace(X))


def test_save_writes_exactly_the_given_path(tmp_path):
    path = tmp_path / "no_suffix"
    sm.EnergyMLP(2, hidden=(3,)).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["no_suffix"]
    assert sm.load(path).dim == 2


def test_truncated_corrupted_and_foreign_files_are_clear_errors(tmp_path):
    good = tmp_path / "m.npz"
    sm.EnergyMLP(2, hidden=(3,)).save(good)
    data = good.read_bytes()

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable scorematch model file"):
        sm.load(truncated)

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\x01 not a zip at all" * 10)
    with pytest.raises(ValueError, match="not a readable scorematch model file"):
        sm.load(garbage)

    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ValueError, match="not a scorematch model file"):
        sm.load(foreign)

    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        format=np.array("scorematch.EnergyMLP"),
        version=np.array(1),
        n_arrays=np.array(1),
        param_0=np.array([object()], dtype=object),
        activation=np.array("tanh"),
        alpha=np.array(0.0),
        dtype=np.array("float64"),
    )
    with pytest.raises(ValueError, match="scorematch model file"):
        sm.load(pickled)  # object arrays would need pickle: refused, never executed

    with zipfile.ZipFile(good) as z:
        members = {n: z.read(n) for n in z.namelist()}
    incomplete = tmp_path / "incomplete.npz"
    with zipfile.ZipFile(incomplete, "w") as z:
        for name, blob in members.items():
            if name != "param_1.npy":
                z.writestr(name, blob)
    with pytest.raises(ValueError, match="incomplete.*param_1"):
        sm.load(incomplete)

    with pytest.raises(FileNotFoundError):
        sm.load(tmp_path / "missing.npz")
    with pytest.raises(
        TypeError,
        match="^path must be a str, an os.PathLike or a binary file object, got NoneType$",
    ):
        sm.load(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [3, True, None, b"model.npz"])
def test_only_str_pathlike_and_file_objects_name_a_file(tmp_path, path):
    """``open`` would take an int for a file descriptor: the archive would go into whatever
    it is (a log file, stdout), which would then be closed."""
    m = sm.EnergyMLP(2, hidden=(4,))
    says = (
        f"^path must be a str, an os.PathLike or a binary file object, got {type(path).__name__}$"
    )
    with pytest.raises(TypeError, match=says):
        m.save(path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=says):
        sm.load(path)  # type: ignore[arg-type]


def test_a_model_round_trips_through_a_bytesio_from_its_position(tmp_path):
    m = sm.EnergyMLP(3, hidden=(6, 5), activation="silu", dtype="float32", alpha=0.5, seed=2)
    buf = io.BytesIO()
    buf.write(b"header")  # what was there before is kept; the archive starts at the position
    m.save(buf)
    assert not buf.closed and buf.getvalue()[:6] == b"header"
    # The bytes are those of the file that save writes to a path.
    m.save(tmp_path / "m.npz")
    assert buf.getvalue()[6:] == (tmp_path / "m.npz").read_bytes()
    buf.seek(6)
    back = sm.load(buf)
    assert not buf.closed
    _same_model(m, back)
    X = np.random.default_rng(1).normal(size=(9, 3))
    assert np.array_equal(m.score(X), back.score(X))


def test_data_before_the_archive_is_refused_not_skipped(tmp_path):
    # zipfile reads the archive that ends the data, wherever it starts: two models saved to
    # one stream loaded as the second, in silence, from the position of the first.
    a, b = sm.EnergyMLP(2, hidden=(3,)), sm.EnergyMLP(2, hidden=(5,))
    buf = io.BytesIO()
    a.save(buf)
    second = buf.tell()
    b.save(buf)
    (tmp_path / "two.npz").write_bytes(buf.getvalue())
    want = (
        "is not a readable scorematch model file (it holds other data before the archive that "
        "ends it (two models saved to one stream, one after the other?): a model file holds "
        "one archive)"
    )
    for source in (io.BytesIO(buf.getvalue()), tmp_path / "two.npz"):
        with pytest.raises(ValueError, match=re.escape(want)):
            sm.load(source)
    buf.seek(second)  # from the second archive's start, it is the whole file
    _same_model(b, sm.load(buf))


def test_a_model_round_trips_through_open_files_and_gzip(tmp_path):
    m = sm.EnergyMLP(2, hidden=(4,), dtype="float64", seed=3)
    with open(tmp_path / "m.npz", "wb") as f:
        m.save(f)
        assert not f.closed
    with open(tmp_path / "m.npz", "rb") as f:
        _same_model(m, sm.load(f))
        assert not f.closed
    # zipfile seeks back as it writes and to the end as it reads: gzip cannot do either.
    with gzip.open(tmp_path / "m.npz.gz", "wb") as g:
        m.save(g)
    with gzip.open(tmp_path / "m.npz.gz", "rb") as g:
        _same_model(m, sm.load(g))


def test_save_writes_all_through_a_file_object_that_writes_part_at_a_time():
    """A raw file object (a socket's, or buffering=0) writes what it can and says how much."""

    class Trickle(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            part = bytes(b[:1000])
            self.data += part
            return len(part)

    m = sm.EnergyMLP(2, hidden=(40, 40), seed=6)
    out = Trickle()
    m.save(out)
    assert len(out.data) > 10_000
    _same_model(m, sm.load(io.BytesIO(bytes(out.data))))

    class Stuck(Trickle):
        def write(self, b):
            return 0

    with pytest.raises(OSError, match=r"^the file object wrote 0 of \d+ bytes left to write$"):
        m.save(Stuck())


def test_a_model_round_trips_through_a_pipe():
    """A pipe can neither seek nor tell."""
    # Larger than a pipe's buffer (64 KiB on Linux): written from a thread as it is read.
    m = sm.EnergyMLP(2, hidden=(100, 100), activation="tanh", seed=5)
    r, w = os.pipe()
    with os.fdopen(r, "rb") as reader, os.fdopen(w, "wb") as writer:
        t = threading.Thread(target=lambda: (m.save(writer), writer.close()))
        t.start()
        back = sm.load(reader)
        t.join()
    _same_model(m, back)


def test_file_objects_of_the_wrong_kind_are_refused_clearly(tmp_path):
    m = sm.EnergyMLP(2, hidden=(4,))
    text = tmp_path / "t.txt"
    text.write_text("")
    name = repr(str(text))
    with (
        open(text, "w") as f,
        pytest.raises(
            TypeError,
            match=f"^file {re.escape(name)} is open in text mode: a model file is bytes \\(open it 'wb'\\)$",
        ),
    ):
        m.save(f)  # type: ignore[arg-type]
    with (
        open(text) as f,
        pytest.raises(
            TypeError,
            match=f"^file {re.escape(name)} is open in text mode: a model file is bytes \\(open it 'rb'\\)$",
        ),
    ):
        sm.load(f)  # type: ignore[arg-type]
    with (
        open(text, "rb") as f,
        pytest.raises(ValueError, match=f"^file {re.escape(name)} is not open for writing$"),
    ):
        m.save(f)  # type: ignore[arg-type]
    with (
        open(text, "wb") as f,
        pytest.raises(ValueError, match=f"^file {re.escape(name)} is not open for reading$"),
    ):
        sm.load(f)  # type: ignore[arg-type]
    closed = io.BytesIO()
    closed.close()
    with pytest.raises(ValueError, match="^the BytesIO is closed$"):
        m.save(closed)
    with pytest.raises(ValueError, match="^the BytesIO is closed$"):
        sm.load(closed)

    class ReadsStr:
        def read(self, size=-1):
            return "PK"

    with pytest.raises(
        TypeError,
        match="^the file object read str, not bytes: a model file is bytes \\(open it 'rb'\\)$",
    ):
        sm.load(ReadsStr())  # type: ignore[arg-type]


def test_a_file_object_that_holds_no_model_is_named(tmp_path):
    buf = io.BytesIO()
    sm.EnergyMLP(2, hidden=(4,)).save(buf)
    # Read from where save left it: the end.
    with pytest.raises(
        ValueError,
        match="^the BytesIO is not a readable scorematch model file \\(nothing is left to read "
        "from its position: seek\\(0\\) after writing\\)$",
    ):
        sm.load(buf)
    data = buf.getvalue()
    with pytest.raises(
        ValueError,
        match="^the BytesIO is not a readable scorematch model file \\(a truncated or damaged",
    ):
        sm.load(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(
        ValueError,
        match="^the BytesIO is not a readable scorematch model file \\(it is not an .npz archive\\)$",
    ):
        sm.load(io.BytesIO(b"hello"))
    with open(tmp_path / "foreign.npz", "wb") as f:
        np.savez(f, weights=np.ones(3))
    with (
        open(tmp_path / "foreign.npz", "rb") as f,
        pytest.raises(
            ValueError,
            match=f"^file {re.escape(repr(str(tmp_path / 'foreign.npz')))} is not a scorematch model file",
        ),
    ):
        sm.load(f)


def test_newer_format_versions_are_refused(tmp_path):
    path = tmp_path / "future.npz"
    np.savez(path, format=np.array("scorematch.EnergyMLP"), version=np.array(99))
    with pytest.raises(ValueError, match="version 99.*upgrade"):
        sm.load(path)
    # Before anything else is read, and whatever else the file holds.
    np.savez(path, format=np.array("scorematch.EnergyMLP"), version=np.array(2), n_arrays="x")
    with pytest.raises(ValueError, match="version 2; this scorematch reads up to 1: upgrade"):
        sm.load(path)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({}, r"incomplete scorematch model file \(no 'version'\)"),
        (
            {"version": np.array("one")},
            r"malformed scorematch model file \(field 'version' must be a 0-d integer array, got",
        ),
        ({"version": np.array([1, 1])}, "malformed scorematch model file"),
        ({"version": np.array(1)}, r"incomplete scorematch model file \(no 'n_arrays'\)"),
        ({"version": np.array(1), "n_arrays": np.array("x")}, "malformed scorematch model file"),
    ],
)
def test_a_missing_or_malformed_version_or_field_is_named(tmp_path, fields, match):
    path = tmp_path / "bad.npz"
    np.savez(path, format=np.array("scorematch.EnergyMLP"), **fields)
    with pytest.raises(ValueError, match=match):
        sm.load(path)


def _saved_with(path, **changes):
    """A saved model's file rewritten with some fields changed."""
    sm.EnergyMLP(2, hidden=(4,), alpha=0.25, seed=1).save(path)
    with np.load(path) as z:
        fields = dict(z)
    np.savez(path, **{**fields, **changes})


_INTEGER = "must be a 0-d integer array, got"
_REAL = "must be a 0-d real (float or integer) array, got"
_STRING = "must be a 0-d string array, got"
_PARAM = "must be a float64 array, as the file's dtype says, got"


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("version", np.array(1.7), f"{_INTEGER} a 0-d array of dtype float64"),
        ("version", np.array(True), f"{_INTEGER} a 0-d array of dtype bool"),
        ("version", np.array(0), "must be >= 1, got 0"),
        ("n_arrays", np.array(4.9), f"{_INTEGER} a 0-d array of dtype float64"),
        (
            "n_arrays",
            np.array([4, 4], np.int64),
            f"{_INTEGER} an array of dtype int64 and shape (2,)",
        ),
        ("n_arrays", np.array(-1), "must be >= 0, got -1"),
        ("alpha", np.array("0.5"), f"{_REAL} a 0-d array of dtype <U3"),
        ("alpha", np.array(0.5 + 0j), f"{_REAL} a 0-d array of dtype complex128"),
        ("activation", np.array(b"tanh"), f"{_STRING} a 0-d array of dtype |S4"),
        ("dtype", np.array(["float64"]), f"{_STRING} an array of dtype <U7 and shape (1,)"),
        (
            "param_0",
            np.ones((4, 2), np.float32),
            f"{_PARAM} an array of dtype float32 and shape (4, 2)",
        ),
        ("param_1", np.ones(4, np.int64), f"{_PARAM} an array of dtype int64 and shape (4,)"),
    ],
)
def test_fields_of_another_type_are_refused_not_converted(tmp_path, field, value, why):
    """int() would read version 1.7 as 1 and n_arrays 4.9 as 4, float() would parse the
    string "0.5": a field of another type than `save` writes is a malformed file."""
    path = tmp_path / "m.npz"
    _saved_with(path, **{field: value})
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    want = f"{str(path)!r} is a malformed scorematch model file (field {field!r} {why})"
    assert str(exc.value) == want


def test_integer_fields_of_any_width_and_an_integer_alpha_are_read(tmp_path):
    path = tmp_path / "m.npz"
    _saved_with(path, version=np.array(1, np.uint8), n_arrays=np.array(4, np.int32))
    assert sm.load(path).hidden == (4,)
    _saved_with(path, alpha=np.array(2, np.int64))
    assert sm.load(path).alpha == 2.0


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"hello", "it is not an .npz archive"),
        (pickle.dumps({"format": "scorematch.EnergyMLP"}), "it is not an .npz archive"),
        (b"", "it is an empty file, not an .npz archive"),
        (
            b"PK\x03\x04" + b"\x00" * 40,
            "a truncated or damaged .npz archive: File is not a zip file",
        ),
    ],
    ids=["text", "pickle", "empty", "zip-start-only"],
)
def test_a_file_that_is_not_an_archive_is_named_so(tmp_path, content, why):
    """Not numpy's advice to load it with allow_pickle (the file may not be a pickle at all,
    and nothing in a model file is ever unpickled): what the file is instead."""
    path = tmp_path / "t.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value) == f"{str(path)!r} is not a readable scorematch model file ({why})"


def test_a_truncated_model_file_is_named_so(tmp_path):
    path = tmp_path / "m.npz"
    sm.EnergyMLP(2, hidden=(3,)).save(path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value) == (
        f"{str(path)!r} is not a readable scorematch model file (a truncated or damaged .npz "
        "archive: File is not a zip file)"
    )


def test_pickle_round_trip():
    m = sm.EnergyMLP(2, hidden=(4, 4), dtype="float32", seed=1)
    back = pickle.loads(pickle.dumps(m))
    X = np.ones((3, 2), np.float32)
    assert np.array_equal(m.score(X), back.score(X))


def test_a_header_declaring_a_huge_array_is_a_damaged_file(tmp_path):
    """A damaged header asking for 745 GiB is a ValueError naming the file, not numpy's
    MemoryError."""
    good = tmp_path / "good.npz"
    sm.EnergyMLP(2, hidden=(4,)).save(good)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }"
    header += b" " * (118 - len(header)) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, npy if name == "param_0.npy" else src.read(name))
    with pytest.raises(ValueError, match=r"bad.npz.*header of 'param_0' declares an array larger"):
        sm.load(bad)


def _text_with_code_point(code):
    """A 0-d string array "t?nh" whose "?" is any 32-bit value, as numpy reads one from a
    file."""
    codes = np.array([ord("t"), code, ord("n"), ord("h")], "<u4")
    return np.frombuffer(codes.tobytes(), "<U4").reshape(())


@pytest.mark.parametrize("code", [0x380073, 0xD800])
@pytest.mark.parametrize("field", ["activation", "dtype"])
def test_a_string_field_of_no_characters_is_refused(tmp_path, field, code):
    """A code point above U+10FFFF made an invalid Python str, on which the engine aborted
    the process (activation) or numpy raised SystemError (dtype); a surrogate gave the
    engine's UnicodeEncodeError."""
    path = tmp_path / "m.npz"
    _saved_with(path, **{field: _text_with_code_point(code)})
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value) == (
        f"{str(path)!r} is a malformed scorematch model file (field {field!r} must hold "
        f"Unicode characters, got the code point 0x{code:X})"
    )


def test_a_format_tag_of_no_characters_is_not_a_model_file(tmp_path):
    """str() of a string array of one code point above U+10FFFF raised SystemError."""
    path = tmp_path / "m.npz"
    tag = np.frombuffer(np.array([0x380073], "<u4").tobytes(), "<U1").reshape(())
    _saved_with(path, format=tag)
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value) == (
        f"{str(path)!r} is not a scorematch model file (no 'scorematch.EnergyMLP' tag)"
    )


def _rewritten(path, compression=zipfile.ZIP_STORED, param_0=None):
    """A saved model's archive written again with another compression and, if given,
    other bytes for param_0.npy."""
    sm.EnergyMLP(2, hidden=(3,), seed=0).save(path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if param_0 is not None:
        members["param_0.npy"] = param_0
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return bytearray(path.read_bytes())


def _param_0_entry(data):
    """Offsets of param_0.npy's local header and central directory entry in an archive."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        local = z.getinfo("param_0.npy").header_offset
    # The directory comes last and each of its entries holds 46 bytes before the name.
    return local, data.rindex(b"param_0.npy") - 46


def _npy(header):
    header = header.ljust(117) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(48)


def _encrypted(path):
    data = _rewritten(path)
    _, central = _param_0_entry(data)
    data[central + 8 : central + 10] = struct.pack("<H", 1)  # flag bit 0: encrypted
    return data


def _unknown_method(path):
    data = _rewritten(path)
    _, central = _param_0_entry(data)
    data[central + 10 : central + 12] = struct.pack("<H", 99)  # compression method 99
    return data


def _corrupt(compression, offset):
    def damage(path):
        data = _rewritten(path, compression)
        local, _ = _param_0_entry(data)
        data[local + 30 + len("param_0.npy") + offset] ^= 0xFF
        return data

    return damage


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_encrypted, "its member 'param_0' cannot be read: File 'param_0.npy' is encrypted, "),
        (_unknown_method, "its member 'param_0' cannot be read: That compression method is not"),
        (_corrupt(zipfile.ZIP_DEFLATED, 0), "its member 'param_0' cannot be read: Error -3 "),
        (_corrupt(zipfile.ZIP_LZMA, 12), "its member 'param_0' cannot be read: Corrupt input"),
        (_corrupt(zipfile.ZIP_BZIP2, 12), "its member 'param_0' cannot be read: Invalid data"),
        (
            lambda p: _rewritten(p, param_0=_npy(b"{'descr': '<f8', 'shape': (3, 2), '''}")),
            "the .npy header of 'param_0' is malformed)",
        ),
        (
            lambda p: _rewritten(
                p, param_0=_npy(b"{'descr': '<f8', 'fortran_order': False, 'shape': (True, 2)}")
            ),
            "the .npy header of 'param_0' is malformed)",
        ),
    ],
    ids=["encrypted", "unknown-method", "bad-deflate", "bad-lzma", "bad-bz2", "tokens", "shape"],
)
def test_a_member_that_cannot_be_read_is_named(tmp_path, damage, why):
    """zipfile's and numpy's other errors for a damaged member (NotImplementedError,
    RuntimeError, zlib.error, lzma.LZMAError, tokenize.TokenError, TypeError) escaped load."""
    path = tmp_path / "m.npz"
    path.write_bytes(damage(path))
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value).startswith(
        f"{str(path)!r} is not a readable scorematch model file ({why}"
    )


def test_an_archive_asking_for_a_later_zip_version_is_named(tmp_path):
    """zipfile raised NotImplementedError as np.load opened the archive."""
    path = tmp_path / "m.npz"
    data = _rewritten(path)
    _, central = _param_0_entry(data)
    data[central + 6 : central + 8] = struct.pack("<H", 203)  # version needed to extract
    path.write_bytes(data)
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value) == (
        f"{str(path)!r} is not a readable scorematch model file (a damaged .npz archive or "
        "one of a later zip: zip file version 20.3)"
    )


def test_members_that_load_does_not_use_are_not_read(tmp_path):
    """np.load decompresses a member whole: a 64 KiB member standing for 64 MiB of zeros,
    unused, was read all the same (a few megabytes of file, gigabytes of memory)."""
    path = tmp_path / "m.npz"
    _rewritten(path)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (8388608,), }".ljust(117)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("junk.npy", b"\x93NUMPY\x01\x00v\x00" + header + b"\n" + bytes(1 << 26))
        z.writestr("param_4.npy", b"not read either: n_arrays is 4")
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        model = sm.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.hidden == (3,)
    assert peak < 8 << 20, f"load allocated {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    ("param_0", "numpy_says"),
    [
        (
            _npy(b"{'descr': '<f8', 'fortran_order': False, 'shape': __import__('os')}"),
            "malformed node or string on line 1: ast.Call (.npy headers hold literals only))",
        ),
        (_npy(b"{'descr': '|O', 'fortran_order': False, 'shape': (3,)}"), "Object arrays "),
        (
            _npy(b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5)}"),
            "EOF: reading array data, expected 120 bytes got 48)",
        ),
    ],
    ids=["call-in-header", "objects", "short-data"],
)
def test_numpys_refusal_of_a_member_names_the_member(tmp_path, param_0, numpy_says):
    """numpy's own messages named no member: the ast one, no format either."""
    path = tmp_path / "m.npz"
    path.write_bytes(_rewritten(path, param_0=param_0))
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value).startswith(
        f"{str(path)!r} is not a readable scorematch model file (its member 'param_0' is not "
        f"a readable .npy array: {numpy_says}"
    )


@pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="numpy < 2 holds at most 32 dimensions"
)
def test_a_parameter_of_more_than_32_dimensions_is_an_invalid_model(tmp_path):
    """The engine's numpy binding panicked (PanicException, out of load and the CLI)."""
    path = tmp_path / "m.npz"
    _saved_with(path, param_0=np.zeros((1,) * 33))
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value) == (
        f"{str(path)!r} holds an invalid model: params[0] must be 1-D or 2-D, got an array of "
        "33 dimensions"
    )


def test_a_member_header_too_long_to_read_safely_is_named_on_one_line(tmp_path):
    """numpy's refusal went on over two more lines advising max_header_size or
    allow_pickle=True, never right for a model file."""
    path = tmp_path / "m.npz"
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }".ljust(20059) + b"\n"
    npy = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + bytes(48)
    path.write_bytes(_rewritten(path, param_0=npy))
    with pytest.raises(ValueError) as exc:
        sm.load(path)
    assert str(exc.value) == (
        f"{str(path)!r} is not a readable scorematch model file (its member 'param_0' is not a "
        "readable .npy array: Header info length (20060) is large and may not be safe to load "
        "securely.)"
    )


def test_alpha_round_trips_bit_for_bit():
    # 0.1 is not a float32: a float32 field would give back 0.10000000149011612.
    model = sm.EnergyMLP(2, hidden=(4,), alpha=0.1, seed=0)
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    assert sm.load(buf).alpha == 0.1


def test_a_member_past_n_arrays_is_never_read():
    # load reads the members its header counts, no more: a damaged extra member is ignored.
    model = sm.EnergyMLP(2, hidden=(4,), seed=0)
    buf = io.BytesIO()
    model.save(buf)
    n = len(model.params)
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr(f"param_{n}.npy", b"\x93NUMPY\x01\x00\x10\x00{garbage header}")
    buf.seek(0)
    back = sm.load(buf)
    assert all(np.array_equal(a, b) for a, b in zip(back.params, model.params, strict=True))


def test_a_save_that_fails_halfway_leaves_the_previous_file(tmp_path, monkeypatch):
    # Written in place, a full disk lost the previous model (production audit): now a new
    # file beside it takes its place only once whole, and is removed if the save fails.
    old, new = sm.EnergyMLP(2, hidden=(4,), seed=0), sm.EnergyMLP(2, hidden=(8,), seed=1)
    path = tmp_path / "m.npz"
    old.save(path)

    def disk_full(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        new.save(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.npz"]
    assert same_params(sm.load(path), old)


def test_a_save_keeps_the_files_permissions_and_its_symlink(tmp_path):
    model = sm.EnergyMLP(2, hidden=(4,), seed=0)
    real, link = tmp_path / "real.npz", tmp_path / "link.npz"
    sm.EnergyMLP(2, hidden=(8,), seed=1).save(real)
    os.chmod(real, 0o640)
    link.symlink_to(real)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (os.stat(real).st_mode & 0o777) == 0o640
    assert same_params(sm.load(real), model)
    assert sorted(os.listdir(tmp_path)) == ["link.npz", "real.npz"]
    # What is not a regular file is written in place.
    model.save(os.devnull)


def test_a_reader_never_sees_half_a_saved_file(tmp_path):
    # A service reloading the file as it was saved again read half-written archives: 8722
    # failed loads against 5 good ones in the audit's run.
    models = [sm.EnergyMLP(2, hidden=(64, 64), seed=s) for s in (0, 1)]
    path = tmp_path / "m.npz"
    models[0].save(path)
    stop, loaded, failures = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                loaded.append(sm.load(path))
            except ValueError as err:
                failures.append(err)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(40):
            models[i % 2].save(path)
    finally:
        stop.set()
        t.join()
    assert failures == []
    assert loaded and all(any(same_params(m, w) for w in models) for m in loaded)


def test_a_damaged_file_whose_error_says_nothing_is_named_by_its_type(monkeypatch):
    # A member's extra-field length made huge: zipfile (before Python 3.13, which calls it
    # overlapping entries) raised a bare EOFError, and the message ended "model file ()"
    # (production audit).
    b = io.BytesIO()
    sm.EnergyMLP(2, hidden=(4,)).save(b)
    data = bytearray(b.getvalue())
    data[29] = 255
    with pytest.raises(ValueError) as info:
        sm.load(io.BytesIO(bytes(data)))
    assert str(info.value).startswith("the BytesIO is not a readable scorematch model file (")
    assert not str(info.value).endswith("()"), str(info.value)

    def bare(f):
        raise EOFError

    monkeypatch.setattr(persistence, "_read_fields", bare)
    with pytest.raises(ValueError) as info:
        sm.load(io.BytesIO(b.getvalue()))
    assert str(info.value) == (
        "the BytesIO is not a readable scorematch model file (EOFError: the file ends where "
        "the archive places more data)"
    )


def test_models_can_be_held_weakly():
    # A registry of models (weakref.WeakValueDictionary) could not hold them: __slots__
    # without __weakref__ (production audit).
    registry: weakref.WeakValueDictionary[str, sm.EnergyMLP] = weakref.WeakValueDictionary()
    model = sm.EnergyMLP(2, hidden=(4,))
    registry["m"] = model
    assert registry["m"] is model
    del model
    gc.collect()
    assert "m" not in registry


def test_a_save_that_replacing_would_change_more_is_written_in_place(tmp_path):
    # A new file taking the place of the old one would cut a hard link (the other name
    # keeping the old model), give another user's file to the caller, and replace a
    # symlink loop with a file (review of the atomic save): these are written in place.
    model = sm.EnergyMLP(2, hidden=(4,), seed=0)
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    sm.EnergyMLP(2, hidden=(8,), seed=1).save(first)
    os.link(first, second)
    model.save(first)
    assert same_params(sm.load(second), model)
    loop = tmp_path / "loop.npz"
    loop.symlink_to(loop)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        model.save(loop)
    assert loop.is_symlink()
    made = ["a.npz", "b.npz", "loop.npz"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Another owner: written in place. A group of the caller's choosing: kept on the new
        # file (a model shared with a service through a group and 0o640 stays readable).
        other, grouped = tmp_path / "other.npz", tmp_path / "grouped.npz"
        for path in (other, grouped):
            sm.EnergyMLP(2, hidden=(8,), seed=1).save(path)
        os.chown(other, 12345, 12345)
        os.chown(grouped, 0, 12345)
        os.chmod(grouped, 0o640)
        model.save(other)
        model.save(grouped)
        assert os.stat(other).st_uid == 12345 and same_params(sm.load(other), model)
        st = os.stat(grouped)
        assert (st.st_gid, st.st_mode & 0o777) == (12345, 0o640)
        assert same_params(sm.load(grouped), model)
        made += ["grouped.npz", "other.npz"]
    if hasattr(os, "setxattr"):
        # Extended attributes (ACLs among them) would not come along to a new file.
        marked = tmp_path / "marked.npz"
        sm.EnergyMLP(2, hidden=(8,), seed=1).save(marked)
        try:
            os.setxattr(marked, "user.note", b"kept")
        except OSError:  # a filesystem without user attributes
            marked.unlink()
        else:
            model.save(marked)
            assert os.getxattr(marked, "user.note") == b"kept"
            assert same_params(sm.load(marked), model)
            made.append("marked.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(made)
