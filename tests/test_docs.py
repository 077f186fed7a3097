"""The documentation runs: README's Python examples do what their comments say, and every
docstring example of the installed package gives the output it shows."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re
from typing import Any

import numpy as np
import pytest
import scorematch as sm

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

# The public modules whose docstrings hold examples (each must keep at least one).
DOCTESTED = ["scorematch.model", "scorematch.sampling", "scorematch.datasets", "scorematch.sklearn"]


def readme_blocks() -> list[tuple[int, str]]:
    """README's ```python blocks, with the line each starts on."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)
    ]


def test_readme_examples_run_and_give_what_their_comments_say() -> None:
    blocks = readme_blocks()
    assert len(blocks) == 4, "README's Python blocks changed: update this test"
    # The last one needs a Dask cluster and a zarr store; test_dask.py runs the same calls on a
    # local cluster.
    assert 'Client("tcp://scheduler:8786")' in blocks[3][1]
    ns: dict[str, Any] = {}
    for line, code in blocks[:3]:
        # Padded so that a traceback names the README's own line numbers.
        exec(compile("\n" * (line - 1) + code, str(README), "exec"), ns)  # noqa: S102 (our own README)

    X, model = ns["X"], ns["model"]
    assert (model.dim, model.hidden, model.dtype) == (2, (64, 64, 64), "float32")
    assert ns["E"].shape == (1000,) and ns["T"].shape == (1000,)
    assert ns["S"].shape == (1000, 2)
    assert [g.shape for g in ns["grads"]] == [p.shape for p in model.params]
    assert isinstance(ns["history"], sm.FitHistory) and ns["history"].n_epochs == 50

    est = ns["est"]
    np.testing.assert_array_equal(est.score_samples(X), -est.model_.energy(X))
    assert est.sample(100, random_state=0).shape == (100, 2)
    assert ns["search"].best_estimator_.model_.hidden == (64, 64)  # refit on the best lr

    res = ns["res"]  # block 3's run
    assert res.samples.shape == (4096, 2)
    assert res.trajectory.shape == (500, 4096, 2)
    assert res.acceptance_rate.shape == (4096,) and res.step_size.shape == (4096,)
    assert sm.diagnostics.split_rhat(res.trajectory).shape == (2,)
    assert sm.diagnostics.ess(res.trajectory).shape == (2,)


@pytest.mark.parametrize("name", DOCTESTED)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} lost its examples"
    assert result.failed == 0, f"{result.failed} of {name}'s docstring examples failed (see above)"
