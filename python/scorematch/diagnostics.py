"""Convergence diagnostics of MCMC trajectories (Vehtari, Gelman, Simpson, Carpenter and
Bürkner 2021, "Rank-normalization, folding, and localization: an improved R-hat").

Every function takes a trajectory of shape (n_draws, n_chains, dim) — the layout of
:attr:`scorematch.SampleResult.trajectory` — and returns one value per coordinate,
vectorized over coordinates with numpy. Coordinates are worked on in blocks of at most 2**22
draws (one coordinate at least, however many draws it has), on a copy of the block's draws
that is ranked, folded and transformed in place. Besides the trajectory (and its float64
copy, when it is of another dtype), the memory used is at most about twice the block's
draws, 16 bytes a draw — the copy, and the sort order of the coordinates being ranked or
the centred copy np.var makes — and ~10 MB of smaller pieces: ~70 MB for blocks of 2**22
draws, and 1.3 GB for a single coordinate of 4096 chains × 20 000 draws (640 MB of draws;
it was 14 times those, 9 GB). Chains so long that their split halves' padded FFTs do not
fit in 2**16 draws are transformed one at a time, which takes 4 to 8 times the draws of one
half chain more (and pocketfft's plans and buffers about as much again): up to 4 times the
coordinate's draws for a single chain, 2 for two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from scorematch._validate import as_choice, as_real_array, narrow_checked

__all__ = ["acceptance_summary", "ess", "mcse", "split_rhat"]

Floats = NDArray[np.float64]


#: Draws of the coordinates worked on at once. Every statistic here is per coordinate and
#: works on one copy of a block's draws in place, beside the sort order of what it ranks (or
#: np.var's centred copy): about twice the block, ~70 MB, where the whole trajectory at once
#: would take twice its own size (1 GB for 4096 chains × 1000 draws × 16 coordinates). A
#: coordinate with more draws is a block of its own: twice its size (1.3 GB for 4096 chains
#: × 20 000 draws), where the statistics took 14 times before they worked in place.
_BLOCK_DRAWS = 1 << 22

#: Draws of the temporaries worked on at once inside a block, which would otherwise grow with
#: it (and with a single coordinate of 10^8 draws): the padded FFTs of a few chains (one at
#: least; their spectra and transforms back take ~3 times the padded draws), the stretch of
#: the sort whose ranks are given out, the small coordinates sorted at once, the draws
#: checked for NaN at once.
_CHUNK_DRAWS = 1 << 16


def _by_coordinates(t: Floats, statistic: Callable[[Floats], Floats]) -> Floats:
    """``statistic`` (one value per coordinate) of the draws ``t``, run on blocks of whole
    coordinates of at most :data:`_BLOCK_DRAWS` draws (one coordinate at least): views of
    ``t``, which the statistics copy as they need."""
    n, m, d = t.shape
    per_block = max(1, _BLOCK_DRAWS // max(1, n * m))
    if per_block >= d:
        return statistic(t)
    return np.concatenate([statistic(t[:, :, j : j + per_block]) for j in range(0, d, per_block)])


def _scaled(t: Floats, e: NDArray[np.intc]) -> Floats:
    """``t`` with each coordinate scaled by 2^−e (see :func:`_scale_exponent`), a new array."""
    return np.asarray(np.ldexp(t, -e), dtype=np.float64)


def _split_scaled(t: Floats, e: NDArray[np.intc], out: Floats | None = None) -> Floats:
    """Each chain of ``t`` cut into its two halves (the middle draw of an odd length dropped),
    the first halves then the second ones as chains, (n_draws // 2, 2 · n_chains, dim), scaled
    as by :func:`_scaled` and written into ``out`` (a new array if None): the copy that a
    statistic then works on in place."""
    n, m, d = t.shape
    half = n // 2
    if out is None:
        out = np.empty((half, 2 * m, d))
    np.ldexp(t[:half], -e, out=out[:, :m])
    np.ldexp(t[n - half :], -e, out=out[:, m:])
    return out


def _scale_exponent(t: Floats) -> NDArray[np.intc]:
    """Per coordinate, the e with max |draw| in [2^(e−1), 2^e) (0 for all zeros).

    ESS and R-hat are scale-free; scaled by 2^−e (exact), the largest draw is in [0.5, 1),
    so the variances and FFTs of draws near 1e±300 neither overflow nor underflow, and other
    draws give the same bits as unscaled."""
    # max |draw| from the extremes: np.abs(t) would be a copy of the draws.
    top = np.maximum(t.max(axis=(0, 1)), -t.min(axis=(0, 1)))
    return np.asarray(np.frexp(top)[1], dtype=np.intc)


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
    bad = _first_nonfinite(t)
    if bad is not None:
        raise ValueError(f"trajectory contains NaN or Inf (first at {_draw(bad)})")
    out: Floats = narrow_checked(t, "float64", "trajectory", "rescale the draws", _draw)
    return out


def _first_nonfinite(t: NDArray[Any]) -> NDArray[np.intp] | None:
    """Index (draw, chain, coordinate) of the first NaN or Inf of ``t`` in C order, or None;
    looked for in stretches of draws, so that the mask is not as large as the trajectory."""
    _, m, d = t.shape
    rows = max(1, _CHUNK_DRAWS // max(1, m * d))
    for i in range(0, t.shape[0], rows):
        finite = np.isfinite(t[i : i + rows])
        if not finite.all():
            at: NDArray[np.intp] = np.argwhere(~finite)[0]
            at[0] += i
            return at
    return None


def _draw(at: Any) -> str:
    """Index ``(draw, chain, coordinate)`` of a trajectory, in a message."""
    draw, chain, coord = (int(i) for i in at)
    return f"draw {draw}, chain {chain}, coordinate {coord}"


def _pooled(t: Floats) -> Floats:
    """All draws of each coordinate as one column, (n_draws · n_chains, dim): with the sizes
    spelled out, so that dim = 0 needs no special case (reshape(-1, 0) cannot infer -1)."""
    n, m, d = t.shape
    return t.reshape(n * m, d)


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


def _rank_normalize(s: Floats) -> Floats:
    """Overwrite the draws ``s`` (n, m, d), C-contiguous as :func:`_split_scaled` makes them,
    with z = Φ⁻¹((r − 3/8) / (S + 1/4)) of their pooled ranks r (average ranks for ties), per
    coordinate, and return the median of each coordinate's draws as they were (the sort
    gives it for free)."""
    n, m, d = s.shape
    if d == 1:
        return _rank_normalize_rows(s.reshape(1, n * m))
    medians = np.empty(d)
    # Small coordinates several at a time (one sort and one pass for many of them), large
    # ones alone: each as a contiguous row, so that each sort runs over contiguous memory.
    per_group = max(1, _CHUNK_DRAWS // (n * m))
    for j in range(0, d, per_group):
        rows = np.ascontiguousarray(np.moveaxis(s[:, :, j : j + per_group], 2, 0))
        medians[j : j + per_group] = _rank_normalize_rows(rows.reshape(-1, n * m))
        s[:, :, j : j + per_group] = np.moveaxis(rows, 0, 2)
    return medians


def _rank_normalize_rows(rows: Floats) -> Floats:
    """Overwrite each row of draws of ``rows`` (k, size), C-contiguous, with its
    rank-normalized values, and return the rows' medians as they were.

    Equal draws share one rank, so z is worked out once per run of equal draws in sorted
    order, and written over the draws of the runs that are complete; the rows, each sorted,
    are gone through one after the other, :data:`_CHUNK_DRAWS` sorted draws at a time, the
    last run of a stretch carried into the next one (its draws are all read before any is
    overwritten, and each draw is read once)."""
    k, size = rows.shape
    # Ties get their average rank, so the order among equal draws does not matter: a
    # quicksort will do (a stable sort and a second one per coordinate in np.unique for ties
    # took 5.5 of the 11 s of split_rhat on 4096 chains × 500 draws × 4 coordinates).
    order = np.argsort(rows, axis=1)
    # np.median's: the mean of the middle one or two draws.
    middle = order[:, (size - 1) // 2 : size // 2 + 1]
    medians = np.asarray(np.take_along_axis(rows, middle, axis=1).mean(axis=1), dtype=np.float64)
    flat, sorted_flat = rows.reshape(k * size), order.reshape(k * size)

    def at(a: int, b: int) -> NDArray[np.intp]:
        """Where in ``flat`` the draws at sorted positions [a, b) of all rows are."""
        g = np.arange(a, b)
        return np.asarray(sorted_flat[a:b] + (g - g % size), dtype=np.intp)

    total = k * size
    first = 0  # sorted position of the first draw of the run not yet written
    previous = 0.0  # the value of that run's draws
    for lo in range(0, total, _CHUNK_DRAWS):
        hi = min(lo + _CHUNK_DRAWS, total)
        values = flat[at(lo, hi)]
        # Sorted positions that end a run: where the next draw differs or a row begins, and
        # the last one.
        new_row = np.arange(lo + 1, hi) % size == 0
        ends = np.flatnonzero((values[1:] != values[:-1]) | new_row) + (lo + 1)
        if lo > 0 and (values[0] != previous or lo % size == 0):
            ends = np.concatenate([[lo], ends])
        if hi == total:
            ends = np.concatenate([ends, [total]])
        previous = float(values[-1])
        if ends.size == 0:
            continue
        firsts = np.concatenate([[first], ends[:-1]])
        row_start = firsts - firsts % size
        ranks = _average_ranks(firsts - row_start, ends - row_start)
        z = _norm_ppf((ranks - 0.375) / (size + 0.25))
        # The first run may have begun stretches ago (all draws of a constant coordinate).
        for a in range(first, int(ends[0]), _CHUNK_DRAWS):
            flat[at(a, min(a + _CHUNK_DRAWS, int(ends[0])))] = z[0]
        flat[at(int(ends[0]), int(ends[-1]))] = np.repeat(z[1:], np.diff(ends))
        first = int(ends[-1])
    return medians


def _average_ranks(first: NDArray[np.intp], end: NDArray[np.intp]) -> Floats:
    """1-based average rank of the runs of equal draws at sorted positions [first, end) of a
    row: the rank of the run's last draw, less half the run's length beyond one (exact, as
    half-integers are)."""
    last = end - 1
    return np.asarray((last + 1) - (last - first) / 2.0, dtype=np.float64)


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
    e = _scale_exponent(draws)
    s = _split_scaled(draws, e)
    median = _rank_normalize(s)
    bulk = _rhat(s)
    # The split draws again, in the same memory, for their folds about the median.
    folded = _split_scaled(draws, e, out=s)
    np.abs(np.subtract(folded, median, out=folded), out=folded)
    _rank_normalize(folded)
    tail = _rhat(folded)
    # A tail R-hat that is undefined (the folded draws all equal: two values symmetric
    # about the median) leaves the bulk one, as ArviZ's max() does; NaN only when both are.
    return np.asarray(np.fmax(bulk, tail), dtype=np.float64)


def _autocov(s: Floats, chain_mean: Floats) -> Floats:
    """Overwrite the draws ``s`` (n, m, d), C-contiguous, whose chain means are ``chain_mean``
    (m, d), with the autocovariance of each chain and coordinate at every lag, by FFT, and
    return it.

    The padded FFTs (of twice the draws and more) are taken a few chains at a time, at most
    :data:`_CHUNK_DRAWS` padded draws (one chain at least); each result goes where its
    chain's draws were, which its FFT has read."""
    n, m, d = s.shape
    np.subtract(s, chain_mean, out=s)
    size = 1 << (2 * n - 1).bit_length()
    lanes = s.reshape(n, m * d)  # one column per chain and coordinate
    per_group = max(1, _CHUNK_DRAWS // size)
    for a in range(0, m * d, per_group):
        x = lanes[:, a : a + per_group]
        f = np.fft.rfft(x, n=size, axis=0)
        # Not f * np.conj(f): numpy multiplies complex numbers with FMA, so the order of the
        # factors decides the last bits, and on arrays of 256 KiB and more the operator reused
        # the temporary conj(f) and swapped them. One order for every size instead, so that
        # the values do not depend on how many chains are transformed at once.
        np.multiply(f, np.conj(f), out=f)
        np.divide(np.fft.irfft(f, n=size, axis=0)[:n], n, out=x)
    return s


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
        number of draws); for ``"tail"``, also where either indicator is constant over
        the draws the split chains keep (a quantile at the minimum or maximum of discrete
        draws; or, in chains of a few draws, an odd number of them, an extreme draw in the
        middle of a chain, which the split drops).

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
    0, 1 and 2). ``"tail"`` can also differ where the 5 % or 95 % quantile falls exactly on
    a draw, as it does whenever a coordinate has 1 more draw than a multiple of 20 (one
    chain of 101 or 1 001 draws, 3 chains of 67): numpy's quantile is then that draw, which
    its indicator counts, while ArviZ's ``mquantiles`` rounds it just below (10 % apart on
    one chain of 101 autocorrelated draws; ArviZ's own ESS of numpy's indicators gives
    ours). Elsewhere ``"tail"`` and ``"basic"`` agree with ArviZ to rounding, and
    ``"bulk"`` to about 1e-9 relative: its rank-normalized draws come from an approximation
    of the normal quantile (Acklam's, relative error < 1.2e-9), not from scipy.
    """
    as_choice(method, "method", ("bulk", "tail", "basic"))

    def statistic(draws: Floats) -> Floats:
        e = _scale_exponent(draws)
        if method == "tail":
            return _tail_ess(draws, e)
        s = _split_scaled(draws, e)
        if method == "bulk":
            _rank_normalize(s)
        return _split_ess(s)

    return _by_coordinates(_checked(trajectory, 4), statistic)


#: Geyer pairs (sums of two autocorrelations, each at most 1) this close to 0 count as 0:
#: far above the FFT's rounding (~1e-16 per lag), far below any pair that matters.
_ZERO_PAIR = 1e-12


def _tail_ess(draws: Floats, e: NDArray[np.intc]) -> Floats:
    """The tail ESS of :func:`ess`: the smaller ESS of the indicators of the 5 % tails."""
    # Quantiles of all draws (the middle one of an odd length too), from a copy that numpy
    # may reorder instead of copying it again.
    q = np.quantile(_pooled(_scaled(draws, e)), [0.05, 0.95], axis=0, overwrite_input=True)
    s = None
    tails = []
    for bound in q:
        s = _split_scaled(draws, e, out=s)
        np.less_equal(s, bound, out=s)  # the indicators, 1.0 and 0.0, in place
        tails.append(_split_ess(s))
    return np.asarray(np.minimum(*tails), dtype=np.float64)


def _split_ess(s: Floats) -> Floats:
    """The ESS of :func:`ess` for split chains ``s`` (n, m, d), C-contiguous as
    :func:`_split_scaled` makes them, which it overwrites."""
    n, m, _ = s.shape
    # Tested on the draws, not on var_plus: rounding leaves ~1e-32 of variance in constant
    # draws of most values (0.1, say), which made the basic ESS of a constant 8.4.
    constant = s.min(axis=(0, 1)) == s.max(axis=(0, 1))
    chain_mean = s.mean(axis=0)
    acov = _autocov(s, chain_mean)
    chain_var = acov[0] * n / (n - 1.0)
    mean_var = chain_var.mean(axis=0)
    var_plus = mean_var * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + chain_mean.var(axis=0, ddof=1)
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
    e = _scale_exponent(draws)
    # One copy of the draws at a time: the split one for the ESS, then all of them.
    basic_ess = _split_ess(_split_scaled(draws, e))
    flat = _pooled(_scaled(draws, e))
    # Constant draws: tested exactly (the std of 0.1s rounds to ~1e-17, not 0).
    constant = flat.min(axis=0) == flat.max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(constant, 0.0, flat.std(axis=0, ddof=1) / np.sqrt(basic_ess))
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
