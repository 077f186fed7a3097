"""Code as users write it, which must pass ``mypy --strict``: .ci/run type-checks this file
(``mypy tests/typing_examples.py``). pytest does not collect it (not ``test_*.py``), and it is
never run: only its types matter. ``assert_type`` fails the check if an inferred type widens
(to a union or to ``Any``), which a plain annotation would let through.
"""

from __future__ import annotations

import gzip
import io
import pathlib

import dask.array as da
import numpy as np
import scorematch.dask as smd
from numpy.typing import NDArray
from scorematch import (
    EnergyMLP,
    SamplingDivergedError,
    TrainingDivergedError,
    datasets,
    diagnostics,
    load,
)
from scorematch.sklearn import ScoreMatchingDensity
from typing_extensions import assert_type  # mypy's own dependency: present wherever it runs

# The example of the datasets module's docstring: a mixture's name gives the mixture type,
# with its exact score and log-density.
X = datasets.get("moons").sample(1000, seed=0)
assert_type(X, NDArray[np.float64])
gm = datasets.get("8gaussians")
assert_type(gm, datasets.GaussianMixture)
assert_type(gm.score(X), NDArray[np.float64])
assert_type(gm.log_prob(X), NDArray[np.float64])
assert_type(datasets.get("swissroll"), datasets.ToyDataset)


def by_name(name: str) -> datasets.ToyDataset | datasets.GaussianMixture:
    # A name known only at run time can be either.
    return datasets.get(name)


# hidden takes any sequence of widths, in the estimator as in the model.
est = ScoreMatchingDensity(hidden=[8], epochs=1)
model = EnergyMLP(2, hidden=[8])


# The README's Sampling workflow: the result's optional fields go to the diagnostics as they
# are (None, from a run that did not keep them, is a TypeError at run time).
res = model.sample(10, n_steps=20, method="mala", return_trajectory=True)
assert_type(diagnostics.split_rhat(res.trajectory), NDArray[np.float64])
assert_type(diagnostics.ess(res.trajectory, method="tail"), NDArray[np.float64])
assert_type(diagnostics.mcse(res.trajectory), NDArray[np.float64])
summary = diagnostics.acceptance_summary(res.acceptance_rate)

# On Dask, on_divergence="mask" gives the finite chains and their indices.
assert_type(smd.sample(model, 10, n_steps=5), da.Array)
kept, indices = smd.sample(model, 10, n_steps=5, on_divergence="mask")
assert_type(indices, da.Array)


# A divergence carries the history of the completed epochs, and where and why it happened.
def epochs_before(err: TrainingDivergedError) -> int:
    return err.history.n_epochs


def where(err: TrainingDivergedError) -> tuple[int, int] | None:
    assert_type(err.cause, str | None)
    return None if err.epoch is None or err.step is None else (err.epoch, err.step)


def chains_lost(err: SamplingDivergedError) -> int | None:
    return err.n_diverged


# The estimator takes the dtype spellings the model takes.
est32 = ScoreMatchingDensity(hidden=[8], dtype=np.float32)


# A model goes to a path or to any binary file object, and comes back from either.
def round_trips(m: EnergyMLP, folder: pathlib.Path) -> list[EnergyMLP]:
    buf = io.BytesIO()
    m.save(buf)
    buf.seek(0)
    m.save(folder / "m.npz")
    m.save(str(folder / "m2.npz"))
    with open(folder / "m3.npz", "wb") as f:
        m.save(f)
    with gzip.open(folder / "m.npz.gz", "wb") as g:
        m.save(g)
    with open(folder / "m3.npz", "rb") as f, gzip.open(folder / "m.npz.gz", "rb") as g:
        return [load(buf), load(folder / "m.npz"), load(f), load(g)]
