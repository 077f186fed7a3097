"""Convergence diagnostics of MCMC trajectories (Vehtari, Gelman, Simpson, Carpenter and
Bürkner 2021, "Rank-normalization, folding, and localization: an improved R-hat").

Every function takes a trajectory of shape (n_draws, n_chains, dim) — the layout of
:attr:`scorematch.SampleResult.trajectory` — and returns one value per coordinate,
vectorized over coordinates with numpy. Coordinates are worked on in blocks of at most 2**22
draws (one coordinate at least), so the memory used besides the trajectory (and its float64
copy, when it is of another dtype) is about 15 times that block's size: ~0.5 GB at most,
unless a single coordinate holds more draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scorematch._validate import as_choice, as_real_array, narrow_checked

__all__ = ["acceptance_summary", "ess", "mcse", "split_rhat"]

Floats = NDArray[np.float64]


#: Draws of the coordinates worked on at once. Every statistic here is per coordinate, and
#: works on ~15 arrays the size of its draws (sorts, ranks, padded FFTs); in blocks of
#: coordinates the working memory is that of 2**22 draws (~0.5 GB), not 15 times the
#: trajectory's (8 GB for 4096 chains × 1000 draws × 16 coordinates).
_BLOCK_DRAWS = 1 << 22


def _by_coordinates(t: Floats, statistic: Callable[[Floats], Floats]) -> Floats:
    """``statistic`` (one value per coordinate) of the draws ``t``, run on blocks of whole
    coordinates of at most :data:`_BLOCK_DRAWS` draws (one coordinate at least)."""
    n, m, d = t.shape
    per_block = max(1, _BLOCK_DRAWS // max(1, n * m))
    if per_block >= d:
        return statistic(t)
    return np.concatenate(
        [
            statistic(np.ascontiguousarray(t[:, :, j : j + per_block]))
            for j in range(0, d, per_block)
        ]
    )


def _scaled(t: Floats) -> tuple[Floats, NDArray[np.intc]]:
    """``t`` with each coordinate scaled by 2^−e, and e (see :func:`_scale_exponent`)."""
    e = _scale_exponent(t)
    return np.asarray(np.ldexp(t, -e), dtype=np.float64), e


def _scale_exponent(t: Floats) -> NDArray[np.intc]:
    """Per coordinate, the e with max |draw| in [2^(e−1), 2^e) (0 for all zeros).

    ESS and R-hat are scale-free; scaled by 2^−e (exact), the largest draw is in [0.5, 1),
    so the variances and FFTs of draws near 1e±300 neither overflow nor underflow, and other
    draws give the same bits as unscaled."""
    return np.asarray(np.frexp(np.abs(t).max(axis=(0, 1)))[1], dtype=np.intc)


def _checked(trajectory: ArrayLike | None, min_draws: int) -> Floats:
    if trajectory is None:
        # Typed to take SampleResult.trajectory as it is (None unless asked for), so that
        # the documented workflow type-checks; the missing draws are named here instead.
        raise TypeError("trajectory is None: sample with return_trajectory=True to keep the draws")
    t = as_real_array(trajectory, "trajectory")
    if t.ndim == 2:
        t = t[:, :, None]
    if t.ndim != 3:
        raise ValueError(
            f"trajectory must have shape (n_draws, n_chains, dim), got shape {t.shape}"
        )
    if t.shape[0] < min_draws or t.shape[1] < 1:
        raise ValueError(
            f"trajectory needs at least {min_draws} draws and 1 chain, got shape {t.shape}"
        )
    # Before the conversion to float64, so that only the caller's own NaN and Inf are
    # called that; finite draws beyond float64 (longdouble) are named by the conversion.
    finite = np.isfinite(t)
    if not finite.all():
        raise ValueError(
            f"trajectory contains NaN or Inf (first at {_draw(np.argwhere(~finite)[0])})"
        )
    out: Floats = narrow_checked(t, "float64", "trajectory", "rescale the draws", _draw)
    return out


def _draw(at: Any) -> str:
    """Index ``(draw, chain, coordinate)`` of a trajectory, in a message."""
    draw, chain, coord = (int(i) for i in at)
    return f"draw {draw}, chain {chain}, coordinate {coord}"


def _pooled(t: Floats) -> Floats:
    """All draws of each coordinate as one column, (n_draws · n_chains, dim): with the sizes
    spelled out, so that dim = 0 needs no special case (reshape(-1, 0) cannot infer -1)."""
    n, m, d = t.shape
    return t.reshape(n * m, d)


def _split(t: Floats) -> Floats:
    """Each chain cut into its two halves (the middle draw of an odd length dropped)."""
    half = t.shape[0] // 2
    return np.concatenate([t[:half], t[t.shape[0] - half :]], axis=1)


def _norm_ppf(p: Floats) -> Floats:
    """Inverse standard-normal CDF, Acklam's rational approximation (relative error < 1.2e-9),
    precise enough for rank normalization and free of a scipy dependency."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)  # fmt: skip
    out = np.empty_like(p)
    lo = p < 0.02425
    hi = p > 1 - 0.02425
    mid = ~(lo | hi)
    q = p[mid] - 0.5
    r = q * q
    out[mid] = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )
    for mask, sign, pp in ((lo, 1.0, p[lo]), (hi, -1.0, 1 - p[hi])):
        q = np.sqrt(-2 * np.log(pp))
        out[mask] = sign * (
            (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        )
    return out


def _rank_normalize(t: Floats) -> Floats:
    """z = Φ⁻¹((r − 3/8) / (S + 1/4)) of the pooled ranks r (average ranks for ties), per
    coordinate."""
    n, m, d = t.shape
    size = n * m
    # One row per coordinate, so that each sort runs over contiguous memory. Ties get their
    # average rank below, so the order among equal draws does not matter: a quicksort will
    # do (a stable sort and a second one per coordinate in np.unique for ties took 5.5 of
    # the 11 s of split_rhat on 4096 chains × 500 draws × 4 coordinates).
    cols = np.ascontiguousarray(_pooled(t).T)
    order = np.argsort(cols, axis=1)
    ordered = np.take_along_axis(cols, order, axis=1)
    # The run of equal draws around each sorted position: its first and last positions.
    at = np.arange(size)
    starts = np.ones((d, size), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.maximum.accumulate(np.where(starts, at, 0), axis=1)
    ends = np.ones((d, size), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    last = np.minimum.accumulate(np.where(ends, at, size)[:, ::-1], axis=1)[:, ::-1]
    # 1-based rank of the run's last draw, less half the run's length beyond one.
    ranks = np.empty((d, size))
    np.put_along_axis(ranks, order, (last + 1) - (last - first) / 2.0, axis=1)
    z = _norm_ppf((ranks - 0.375) / (size + 0.25))
    return np.ascontiguousarray(z.T).reshape(n, m, d)


def _rhat(t: Floats) -> Floats:
    n = t.shape[0]
    chain_mean = t.mean(axis=0)
    # Constant chains have exactly zero variance: the rounding of their means would leave
    # ~1e-32 instead, and chains stuck at different values gave R-hat ~1e15 instead of inf.
    lo, hi = t.min(axis=0), t.max(axis=0)
    b = np.where(lo.min(axis=0) == hi.max(axis=0), 0.0, n * chain_mean.var(axis=0, ddof=1))
    w = np.where(lo == hi, 0.0, t.var(axis=0, ddof=1)).mean(axis=0)
    var_plus = (n - 1) / n * w + b / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / w)
    return np.where(w > 0, r, np.where(b > 0, np.inf, np.nan))


def split_rhat(trajectory: ArrayLike | None) -> Floats:
    """Rank-normalized split R-hat per coordinate (Vehtari et al. 2021).

    The maximum of the bulk R-hat (split chains, rank-normalized) and the tail R-hat (the
    same of the folded draws ``|x − median|``; the bulk one alone where the folded draws are
    all equal, as with two values symmetric about the median). Values near 1 (below 1.01 is the usual
    threshold) say the chains agree; much larger values say they have not mixed.

    Parameters
    ----------
    trajectory : array_like, shape (n_draws, n_chains, dim) or (n_draws, n_chains)
        At least 4 draws; one chain is enough (its halves are compared).

    Returns
    -------
    ndarray of float64, shape (dim,)
        ``inf`` where (split) chains are each constant but not all equal; NaN where every
        draw of the coordinate is the same, as ArviZ and Stan's ``posterior`` give: chains
        that never move have not been shown to mix (a stuck sampler must not pass a
        ``rhat < 1.01`` check).

    Raises
    ------
    ValueError
        If the shape is wrong or a value is NaN or Inf.
    TypeError
        If ``trajectory`` is None (a run without ``return_trajectory=True``), a masked
        array or not an array of real numbers.
    """
    return _by_coordinates(_checked(trajectory, 4), _split_rhat)


def _split_rhat(draws: Floats) -> Floats:
    t = _split(_scaled(draws)[0])
    bulk = _rhat(_rank_normalize(t))
    folded = np.abs(t - np.median(_pooled(t), axis=0))
    tail = _rhat(_rank_normalize(folded))
    # A tail R-hat that is undefined (the folded draws all equal: two values symmetric
    # about the median) leaves the bulk one, as ArviZ's max() does; NaN only when both are.
    return np.asarray(np.fmax(bulk, tail), dtype=np.float64)


def _autocov(t: Floats) -> Floats:
    """Autocovariance of each chain and coordinate at every lag, by FFT: (n, m, d)."""
    n = t.shape[0]
    x = t - t.mean(axis=0)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, n=size, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n]
    return np.asarray(acov / n, dtype=np.float64)


def ess(trajectory: ArrayLike | None, *, method: str = "bulk") -> Floats:
    """Effective sample size per coordinate (Vehtari et al. 2021).

    Autocorrelations are pooled across split chains and summed with Geyer's initial
    monotone sequence; ``ess = n_draws · n_chains / τ`` with τ the integrated
    autocorrelation time. Independent draws give about ``n_draws · n_chains``.

    Parameters
    ----------
    trajectory : array_like, shape (n_draws, n_chains, dim) or (n_draws, n_chains)
        At least 4 draws.
    method : {"bulk", "tail", "basic"}, default "bulk"
        ``"bulk"`` rank-normalizes the draws first (robust to heavy tails, the recommended
        default: how well the center of the distribution is explored); ``"tail"`` is the
        smaller ESS of the indicators ``x ≤ q₀.₀₅`` and ``x ≤ q₀.₉₅`` (quantiles of all
        draws, numpy's default interpolation as in R and ArviZ: how well the 5 % tails are
        explored, which decides interval estimates); ``"basic"`` uses the draws as they
        are (the ESS of the mean). Vehtari et al. advise checking bulk and tail.

    Returns
    -------
    ndarray of float64, shape (dim,)
        NaN where every draw of the coordinate is the same (zero variance: the draws say
        nothing about their autocorrelation), as Stan's ``posterior`` gives (ArviZ gives the
        number of draws); for ``"tail"``, also where either indicator is constant (a
        quantile at the minimum or maximum of discrete draws).

    Raises
    ------
    ValueError
        If the shape or the method is wrong, or a value is NaN or Inf.
    TypeError
        If ``trajectory`` is None (a run without ``return_trajectory=True``), a masked
        array or not an array of real numbers.

    Notes
    -----
    Geyer's sequence stops at the first pair of autocorrelations whose sum is not positive.
    Tied draws (small integers, the tail indicators) can make that sum exactly 0, where the
    last bits of the FFT would decide; here a sum within 1e-12 of 0 counts as 0, so such
    draws give one answer on every numpy. ArviZ's rounding can land on either side there,
    so its ESS can differ from ours on such draws (by 6 % on one 10 × 2 trajectory of
    0, 1 and 2). Elsewhere ``"tail"`` and ``"basic"`` agree with ArviZ to rounding, and
    ``"bulk"`` to about 1e-9 relative: its rank-normalized draws come from an approximation
    of the normal quantile (Acklam's, relative error < 1.2e-9), not from scipy.
    """
    as_choice(method, "method", ("bulk", "tail", "basic"))

    def statistic(draws: Floats) -> Floats:
        t = _scaled(draws)[0]
        if method == "tail":
            q = np.quantile(_pooled(t), [0.05, 0.95], axis=0)
            low = _split_ess((t <= q[0]).astype(np.float64))
            high = _split_ess((t <= q[1]).astype(np.float64))
            return np.asarray(np.minimum(low, high), dtype=np.float64)
        return _split_ess(t, rank_normalize=method == "bulk")

    return _by_coordinates(_checked(trajectory, 4), statistic)


#: Geyer pairs (sums of two autocorrelations, each at most 1) this close to 0 count as 0:
#: far above the FFT's rounding (~1e-16 per lag), far below any pair that matters.
_ZERO_PAIR = 1e-12


def _split_ess(t: Floats, *, rank_normalize: bool = False) -> Floats:
    """The ESS of :func:`ess` for draws ``t`` (n, m, d), computed on their split chains."""
    t = _split(t)
    if rank_normalize:
        t = _rank_normalize(t)
    n, m, _ = t.shape
    acov = _autocov(t)
    chain_var = acov[0] * n / (n - 1.0)
    mean_var = chain_var.mean(axis=0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + t.mean(axis=0).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - acov.mean(axis=1)) / var_plus
    rho[0] = 1.0
    # Geyer's initial monotone sequence, as Stan and ArviZ run it: pairs P_k = ρ_2k + ρ_2k+1
    # for k = 0..K-1, where K is the first pair that is not positive (or the last one whose
    # lags stay below n - 3), made non-increasing; then the even term ρ_2K of pair K when it
    # is positive or pair K was kept (P_K ≥ 0: the lag limit stopped the sequence). Without
    # that term ESS came out up to 2 % above ArviZ's.
    last = max(0, (n - 3) // 2)  # pairs 1..last are formed (odd lags 1, 3, ... below n - 3)
    pairs = rho[0 : 2 * last + 1 : 2] + rho[1 : 2 * last + 2 : 2]  # P_0..P_last
    # A pair within _ZERO_PAIR of 0 counts as 0: tied draws (small integers, tail
    # indicators) can make a pair 0 in exact arithmetic, and the sign the FFT's rounding
    # leaves on it would otherwise decide whether the sequence stops there (ESS 20.1 or 19.0
    # on 10 × 2 draws in {0, 1, 2}), and vary with the numpy version.
    nonpositive = pairs <= _ZERO_PAIR
    stop = np.where(nonpositive.any(axis=0), np.argmax(nonpositive, axis=0), last)
    k = np.arange(last + 1)[:, None]
    mono = np.minimum.accumulate(np.where(k < stop, pairs, 0.0), axis=0)
    even = np.take_along_axis(rho[0 : 2 * last + 1 : 2], stop[None, :], axis=0)[0]
    kept = np.take_along_axis(pairs, stop[None, :], axis=0)[0] >= -_ZERO_PAIR
    tau = -1.0 + 2.0 * mono.sum(axis=0) + np.where((even > 0) | kept, even, 0.0)
    total = n * m
    # Tested on the draws, not on var_plus: rounding leaves ~1e-32 of variance in constant
    # draws of most values (0.1, say), which made the basic ESS of a constant 8.4.
    constant = t.min(axis=(0, 1)) == t.max(axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(constant, np.nan, total / np.maximum(tau, 1.0 / np.log10(total)))
    return np.asarray(out, dtype=np.float64)


def mcse(trajectory: ArrayLike | None) -> Floats:
    """Monte Carlo standard error of the mean, per coordinate: ``sd / √ess``, with ``sd`` the
    standard deviation of all draws (ddof = 1) and ``ess`` the basic ESS (the ESS of the
    mean, ``ess(trajectory, method="basic")``), as ArviZ's ``mcse(method="mean")``.

    The error with which the average of all draws estimates the mean of the target: report
    ``mean ± 2·mcse``, and compare it with the precision the application needs.

    Parameters
    ----------
    trajectory : array_like, shape (n_draws, n_chains, dim) or (n_draws, n_chains)
        At least 4 draws.

    Returns
    -------
    ndarray of float64, shape (dim,)
        In the units of the draws; 0 where every draw of the coordinate is the same.

    Raises
    ------
    ValueError
        If the shape is wrong or a value is NaN or Inf.
    TypeError
        If ``trajectory`` is None (a run without ``return_trajectory=True``), a masked
        array or not an array of real numbers.
    """
    return _by_coordinates(_checked(trajectory, 4), _mcse)


def _mcse(draws: Floats) -> Floats:
    scaled, e = _scaled(draws)
    flat = _pooled(scaled)
    # Constant draws: tested exactly (the std of 0.1s rounds to ~1e-17, not 0).
    constant = flat.min(axis=0) == flat.max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(constant, 0.0, flat.std(axis=0, ddof=1) / np.sqrt(_split_ess(scaled)))
    return np.asarray(np.ldexp(err, e), dtype=np.float64)


def acceptance_summary(acceptance_rate: ArrayLike | None) -> dict[str, Any]:
    """Summary of per-chain MALA acceptance rates: mean, min, quartiles, max.

    Parameters
    ----------
    acceptance_rate : array_like, shape (n_chains,)
        :attr:`scorematch.SampleResult.acceptance_rate`.

    Returns
    -------
    dict
        ``{"mean", "min", "q25", "median", "q75", "max"}`` as floats.

    Raises
    ------
    ValueError
        If ``acceptance_rate`` is not a non-empty 1-D array of rates in [0, 1] (NaN
        included).
    TypeError
        If it is None (a ULA or annealed run) or not an array of numbers.
    """
    if acceptance_rate is None:
        # SampleResult.acceptance_rate as it is: None for ULA and annealed runs.
        raise TypeError(
            "acceptance_rate is None: only MALA runs (method='mala') have acceptance rates"
        )
    raw = as_real_array(acceptance_rate, "acceptance_rate", "an array of numbers")
    if raw.ndim != 1 or raw.size == 0:
        raise ValueError(f"acceptance_rate must be a non-empty 1-D array, got shape {raw.shape}")
    # Checked as given: a longdouble beyond float64 is named, not cast to Inf with a warning.
    bad = ~((raw >= 0) & (raw <= 1))  # NaN included
    if bad.any():
        i = int(np.argmax(bad))
        # str(), not format(): format() prints a longdouble as a float, so 1e400 as inf.
        raise ValueError(f"acceptance_rate must hold rates in [0, 1], got {raw[i]!s} at chain {i}")
    a = raw.astype(np.float64, copy=False)
    q = np.quantile(a, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {
        "mean": float(a.mean()),
        "min": float(q[0]),
        "q25": float(q[1]),
        "median": float(q[2]),
        "q75": float(q[3]),
        "max": float(q[4]),
    }
