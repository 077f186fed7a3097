"""Shared fixtures. Test modules import the reference as ``import reference`` (pytest puts
this directory on sys.path: tests/ has no __init__.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scorematch


@pytest.fixture
def restore_threads():
    """Restores the engine's thread count after a test that changes it."""
    before = scorematch.get_num_threads()
    yield before
    scorematch.set_num_threads(before)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
