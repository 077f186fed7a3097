"""Toy distributions of the score-matching and flow literature, and Gaussian mixtures.

Every dataset has ``sample(n, seed=0)`` returning an (n, dim) float64 array; the same seed
always gives the same points. Gaussian mixtures also give the exact ``log_prob(X)`` and
``score(X) = ∇ₓ log p(X)``, so quality metrics against them are exact.

Examples
--------
>>> from scorematch import datasets
>>> X = datasets.get("moons").sample(1000, seed=0)
>>> X.shape
(1000, 2)
>>> gm = datasets.get("8gaussians")
>>> gm.score(X).shape
(1000, 2)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scorematch._validate import (
    as_int,
    as_real_array,
    as_seed,
    binary_size,
    convert_checked,
    narrow_checked,
)

__all__ = ["GaussianMixture", "ToyDataset", "gaussian_mixture", "get", "names"]

Array = NDArray[np.float64]


@dataclass(frozen=True)
class ToyDataset:
    """A 2-D distribution known only through its sampler."""

    name: str
    _draw: Callable[[np.random.Generator, int], Array]
    dim: int = 2

    def sample(self, n: int, seed: int = 0) -> Array:
        """Draw ``n`` points, reproducibly from ``seed``.

        Parameters
        ----------
        n : int
            Number of points, ≥ 0.
        seed : int, default 0
            Seed of the draw: the same seed gives the same points.

        Returns
        -------
        ndarray, shape (n, 2), float64
            The points, one per row.

        Raises
        ------
        ValueError
            If ``n`` < 0 or ``seed`` is out of range.
        TypeError
            If ``n`` or ``seed`` is not an int.
        MemoryError
            If the points do not fit in memory; the message names ``n`` and their size.
        """
        rng, n = np.random.default_rng(as_seed(seed)), as_int(n, "n", 0)
        return _drawn(lambda: self._draw(rng, n), n, self.dim)


class GaussianMixture:
    """A mixture of K Gaussians in d dimensions, with exact log-density and score.

    Parameters
    ----------
    means : array_like, shape (K, d)
    covs : array_like, shape (K, d, d)
        Symmetric positive-definite covariances.
    weights : array_like, shape (K,), optional
        Non-negative mixture weights, normalized here; equal weights by default.
    name : str, optional
    """

    def __init__(
        self,
        means: ArrayLike,
        covs: ArrayLike,
        weights: ArrayLike | None = None,
        name: str = "gaussian_mixture",
    ) -> None:
        mu = _as_parameter(means, "means")
        if mu.ndim != 2 or mu.shape[0] < 1 or mu.shape[1] < 1:
            raise ValueError(f"means must have shape (K, d), got {mu.shape}")
        k, d = mu.shape
        cov = _as_parameter(covs, "covs")
        if cov.shape != (k, d, d):
            raise ValueError(f"covs must have shape ({k}, {d}, {d}), got {cov.shape}")
        if not np.allclose(cov, np.swapaxes(cov, 1, 2)):
            raise ValueError("covs must be symmetric")
        if weights is None:
            w = np.full(k, 1.0 / k)
        else:
            w = _as_parameter(weights, "weights", finite=False)
            given = np.asarray(weights).tolist()
            if w.shape != (k,) or not np.all(w >= 0) or not np.isfinite(w).all():  # NaN too
                numbers = f"{k} non-negative number" + ("" if k == 1 else "s")
                raise ValueError(
                    f"weights must be {numbers}, one per component (shape ({k},)), got {given}"
                )
            if not w.any():
                raise ValueError(
                    f"weights must not all be 0 (they are divided by their sum), got {given}"
                )
            # Scaled to a largest weight of 1 first, so that the sum cannot overflow.
            w = w / w.max()
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as err:
            raise ValueError("covs must be positive definite") from err
        self.name = name
        self.means, self.covs, self.weights = mu, cov, w / w.sum()
        self._chol = chol
        self._prec = np.linalg.inv(cov)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        # A zero weight is allowed: its component's log-weight is -inf, and exp(-inf) = 0
        # drops it from every sum, with no warning.
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.weights)
        self._log_norm = log_weights - 0.5 * (d * np.log(2 * np.pi) + logdet)

    @property
    def dim(self) -> int:
        """Dimension d."""
        return int(self.means.shape[1])

    def sample(self, n: int, seed: int = 0) -> Array:
        """Draw ``n`` points, reproducibly from ``seed``.

        Parameters
        ----------
        n : int
            Number of points, ≥ 0.
        seed : int, default 0
            Seed of the draw: the same seed gives the same points.

        Returns
        -------
        ndarray, shape (n, d), float64
            The points, one per row.

        Raises
        ------
        ValueError
            If ``n`` < 0 or ``seed`` is out of range.
        TypeError
            If ``n`` or ``seed`` is not an int.
        MemoryError
            If the points do not fit in memory; the message names ``n`` and their size.
        """
        rng = np.random.default_rng(as_seed(seed))
        n = as_int(n, "n", 0)

        def draw() -> Array:
            comp = rng.choice(len(self.weights), size=n, p=self.weights)
            z = rng.standard_normal((n, self.dim))
            # Component by component: gathering a Cholesky factor per point took n·dim²
            # values (2.9 TiB for 10⁵ points at dim 2000, where the points take 1.5 GiB).
            # Each point's sum runs in the same order: the same bits.
            out: Array = np.empty((n, self.dim))
            for k, chol in enumerate(self._chol):
                mine = comp == k
                out[mine] = self.means[k] + np.einsum("ij,nj->ni", chol, z[mine])
            return out

        return _drawn(draw, n, self.dim)

    def _as_rows(self, X: ArrayLike) -> Array:
        # Masked arrays and complex values are refused, as everywhere in the package.
        x = as_real_array(X, "X", batch=True, whole=True)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim}), got {x.shape}")
        out: Array = convert_checked(x, "float64", "X")
        return out

    def _component_terms(self, x: Array) -> tuple[Array, Array]:
        diff = x[:, None, :] - self.means[None]  # (n, K, d)
        pd = np.einsum("kij,nkj->nki", self._prec, diff)  # Σ⁻¹(x − μ)
        logc = self._log_norm[None] - 0.5 * np.einsum("nki,nki->nk", diff, pd)
        return logc, pd

    def log_prob(self, X: ArrayLike) -> Array:
        """Exact log-density of each row.

        Parameters
        ----------
        X : array_like, shape (n, d)

        Returns
        -------
        ndarray, shape (n,), float64
            −Inf far out, where every component's density underflows.

        Raises
        ------
        ValueError
            If ``X`` is not of shape (n, d), or holds values too large for float64.
        TypeError
            If ``X`` is not an array of real numbers (masked arrays included).
        """
        logc, _ = self._component_terms(self._as_rows(X))
        m = logc.max(axis=1, keepdims=True)
        # Far enough out, every component's quadratic form overflows: log p = −Inf there,
        # not the NaN of −Inf − (−Inf).
        with np.errstate(invalid="ignore"):
            lse = m + np.log(np.exp(logc - m).sum(axis=1, keepdims=True))
        out: Array = np.where(np.isneginf(m), -np.inf, lse)[:, 0]
        return out

    def score(self, X: ArrayLike) -> Array:
        """Exact score ∇ₓ log p of each row.

        Parameters
        ----------
        X : array_like, shape (n, d)

        Returns
        -------
        ndarray, shape (n, d), float64
            Finite wherever ``X`` is, far out included.

        Raises
        ------
        ValueError, TypeError
            As :meth:`log_prob`.
        """
        x = self._as_rows(X)
        logc, pd = self._component_terms(x)
        m = logc.max(axis=1, keepdims=True)
        far = np.isneginf(m[:, 0])
        with np.errstate(invalid="ignore"):
            r = np.exp(logc - m)
        if far.any():
            # Every quadratic form overflowed (|x| past ~1e154), so the log-densities cannot be
            # compared, but the score Σ⁻¹(x − μ) is still finite: compare the forms at the
            # scale of x, where the nearest component in its own metric takes all the weight
            # (exactly tied ones share it: their scores then agree to rounding).
            xf = x[far]
            scale = np.abs(xf).max(axis=1)[:, None, None]
            diff = (xf[:, None, :] - self.means[None]) / scale
            q = np.einsum("nki,kij,nkj->nk", diff, self._prec, diff)
            r[far] = q == q.min(axis=1, keepdims=True)
        r /= r.sum(axis=1, keepdims=True)  # responsibilities
        out: Array = -np.einsum("nk,nki->ni", r, pd)
        return out

    def __repr__(self) -> str:
        return f"GaussianMixture(name={self.name!r}, K={len(self.weights)}, dim={self.dim})"


def gaussian_mixture(
    means: ArrayLike, covs: ArrayLike, weights: ArrayLike | None = None
) -> GaussianMixture:
    """A :class:`GaussianMixture` in any dimension.

    Parameters
    ----------
    means, covs, weights
        As for :class:`GaussianMixture`.

    Returns
    -------
    GaussianMixture
    """
    return GaussianMixture(means, covs, weights)


def _drawn(draw: Callable[[], Array], n: int, dim: int) -> Array:
    """``draw()``, the ``n`` points of a sample of dimension ``dim``; where they do not fit in
    memory, a ``MemoryError`` that names ``n`` and what the points take, as the model's
    sampler words it: numpy's "Unable to allocate 7.28 TiB for an array with shape
    (1000000000000,)", or past the address space "array is too big", named neither."""
    try:
        return draw()
    except (MemoryError, ValueError) as err:
        size = n * dim * 8
        # Only a size beyond the address space makes numpy's ValueError: any other is not
        # this one's to rename.
        if isinstance(err, ValueError) and size <= sys.maxsize:
            raise
        raise MemoryError(
            f"cannot allocate {n} points of dimension {dim} (n={n}): the points alone take "
            f"{binary_size(size)}"
        ) from err


def _as_parameter(v: ArrayLike, name: str, finite: bool = True) -> Array:
    """A mixture parameter as float64: as ``X`` elsewhere, masked and complex arrays are a
    ``TypeError``, and values too large for float64 (or, if ``finite``, NaN or Inf) a
    ``ValueError``."""
    a = as_real_array(v, name, rows=False)
    if finite and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf")
    out: Array = narrow_checked(a, "float64", name, "rescale them")
    return out


def _eight_gaussians() -> GaussianMixture:
    angles = np.arange(8) * (np.pi / 4)
    means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return GaussianMixture(means, np.tile(0.04 * np.eye(2), (8, 1, 1)), name="8gaussians")


def _moons(rng: np.random.Generator, n: int) -> Array:
    upper = rng.random(n) < 0.5
    t = np.pi * rng.random(n)
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x - 0.5, y - 0.25], axis=1) * 2.0 + 0.1 * rng.standard_normal((n, 2))


def _rings(radii: Sequence[float], noise: float) -> Callable[[np.random.Generator, int], Array]:
    r = np.asarray(radii, dtype=np.float64)

    def draw(rng: np.random.Generator, n: int) -> Array:
        which = rng.choice(len(r), size=n, p=r / r.sum())  # uniform density along the rings
        t = 2 * np.pi * rng.random(n)
        pts = r[which, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        out: Array = pts + noise * rng.standard_normal((n, 2))
        return out

    return draw


def _two_spirals(rng: np.random.Generator, n: int) -> Array:
    t = np.sqrt(rng.random(n)) * 3 * np.pi
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    pts = sign[:, None] * np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) / 3.0
    return pts + 0.1 * rng.standard_normal((n, 2))


def _checkerboard(rng: np.random.Generator, n: int) -> Array:
    x1 = 4 * rng.random(n) - 2
    x2 = rng.random(n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1)


def _pinwheel(rng: np.random.Generator, n: int) -> Array:
    arms, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    label = rng.integers(0, arms, n)
    f = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    f[:, 0] += 1.0
    angle = 2 * np.pi * label / arms + rate * np.exp(f[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    return 2.0 * np.stack([c * f[:, 0] - s * f[:, 1], s * f[:, 0] + c * f[:, 1]], axis=1)


def _swissroll(rng: np.random.Generator, n: int) -> Array:
    t = 1.5 * np.pi * (1 + 2 * rng.random(n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 5.0
    return pts + 0.1 * rng.standard_normal((n, 2))


_TOYS: dict[str, Callable[[], ToyDataset | GaussianMixture]] = {
    "8gaussians": _eight_gaussians,
    "moons": lambda: ToyDataset("moons", _moons),
    "circles": lambda: ToyDataset("circles", _rings([1.0, 2.0], 0.08)),
    "rings": lambda: ToyDataset("rings", _rings([0.75, 1.5, 2.25, 3.0], 0.08)),
    "2spirals": lambda: ToyDataset("2spirals", _two_spirals),
    "checkerboard": lambda: ToyDataset("checkerboard", _checkerboard),
    "pinwheel": lambda: ToyDataset("pinwheel", _pinwheel),
    "swissroll": lambda: ToyDataset("swissroll", _swissroll),
}


def names() -> list[str]:
    """Names accepted by :func:`get`.

    Returns
    -------
    list of str
        Every data set's name, in a fixed order.
    """
    return list(_TOYS)


# The names of get's overloads, which must list every name of _TOYS (tests/test_datasets.py
# checks it): type checkers then know a mixture's name gives a GaussianMixture.
_MixtureName = Literal["8gaussians"]
_ToyName = Literal["moons", "circles", "rings", "2spirals", "checkerboard", "pinwheel", "swissroll"]


@overload
def get(name: _MixtureName) -> GaussianMixture: ...
@overload
def get(name: _ToyName) -> ToyDataset: ...
@overload
def get(name: str) -> ToyDataset | GaussianMixture: ...


def get(name: str) -> ToyDataset | GaussianMixture:
    """The built-in dataset ``name`` (one of :func:`names`).

    Typed by name: ``get("8gaussians")`` is a :class:`GaussianMixture` (with ``log_prob``
    and ``score``), each other literal name a :class:`ToyDataset`.

    Parameters
    ----------
    name : str

    Returns
    -------
    ToyDataset or GaussianMixture
        Its ``sample(n, seed)`` draws the points.

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the choices.
    """
    try:
        return _TOYS[name]()
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(map(repr, _TOYS))}"
        ) from None
