"""Warnings about the caller's data and results, shown at the caller's line.

A fixed ``stacklevel`` points at the right line for one path only: the same column warning
comes through ``EnergyMLP.fit``, the estimator's ``fit`` (two frames deeper) and
``scorematch.dask.fit``. :func:`warn` counts our frames instead, as pandas'
``find_stack_level`` does.
"""

from __future__ import annotations

import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the first frame outside this package
    (the user's line; a library's, as scikit-learn's ``Pipeline``, when it calls us)."""
    level = 2  # the caller of this function
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
