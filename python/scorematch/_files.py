"""Output files checked before the work whose result they would hold (the command line's
outputs, the demo's figure)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable(path: str) -> None:
    """Tries what the write will do: open an existing file for writing (a model's save
    then replaces it with a new file, or writes it in place), or create a file in the
    folder. Permission bits alone cannot tell: ``os.access``
    says yes to root, who still cannot create a file in /proc nor write a sysfs file. A
    ``ValueError`` that says why, before the work whose result would be lost."""
    p = Path(path)
    if p.is_file():
        try:
            # Without O_TRUNC: opened, not changed.
            os.close(os.open(p, os.O_WRONLY))
        except OSError as err:
            raise ValueError(f"cannot write {path!r}: {err.strerror or err}") from None
    elif p.exists():
        # A device or a pipe: opening one for writing can block until a reader comes.
        if not os.access(p, os.W_OK):
            raise ValueError(f"cannot write {path!r}: no permission")
    else:
        folder = p.parent
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".scorematch-", suffix=".tmp"):
                pass
        except OSError as err:
            raise ValueError(
                f"cannot create {path!r}: its folder {str(folder)!r} refuses new files "
                f"({err.strerror or err})"
            ) from None
