"""A scikit-learn estimator around :class:`~scorematch.EnergyMLP`: :class:`ScoreMatchingDensity`.

This module is not imported by ``import scorematch``; import it explicitly (it needs
scikit-learn, ``pip install "scorematch[sklearn]"``)::

    from scorematch.sklearn import ScoreMatchingDensity

Sampling (:meth:`ScoreMatchingDensity.sample`) uses the Langevin step
``x ← x + (ε/2)·s(x) + √ε·z``, ``z ~ N(0, I)``, with ``step_size = ε``, as everywhere in
scorematch.
"""

# Python 3 imports are absolute: `sklearn` below is scikit-learn, never this module
# (scorematch.sklearn); tests/test_sklearn.py checks it.
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

try:
    from sklearn.base import BaseEstimator, DensityMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as _err:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "scorematch.sklearn needs scikit-learn >= 1.6, which is not installed (or too old): "
        'pip install "scorematch[sklearn]"'
    ) from _err

from scorematch._validate import (
    _NOT_NUMBERS,
    INT_MAX,
    MAX_PROJECTIONS,
    _non_number_column,
    as_int,
    as_nonnegative,
    as_positive,
    binary_size,
    described,
    narrow_checked,
    numpy_batch,
    one_of,
    parse_dtype,
    reject_masked,
    shown,
    typed,
)
from scorematch._warn import warn
from scorematch.model import _PROJECTIONS, EnergyMLP, _as_widths
from scorematch.training import _OPTIMIZERS, FitHistory, _Affine, check_ssm_only, column_stats

__all__ = ["ScoreMatchingDensity"]

Array = NDArray[Any]

_ACTIVATIONS = ("softplus", "tanh", "silu")
_OBJECTIVES = ("ism", "ssm", "dsm")
_METHODS = ("mala", "ula")


@dataclass(frozen=True)
class _Params:
    """The hyper-parameters of a :class:`ScoreMatchingDensity`, checked and normalized."""

    hidden: tuple[int, ...]
    activation: str
    dtype: str
    alpha: float
    objective: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    noise_std: float | None
    n_projections: int
    projection: str
    standardize: bool
    validation: float | None
    patience: int | None
    method: str
    n_steps: int
    burn_in: int
    step_size: float | None


class ScoreMatchingDensity(DensityMixin, BaseEstimator):  # type: ignore[misc]
    """Density estimator: an MLP energy ``E(x)`` fitted by score matching, density ∝ ``exp(-E)``.

    A scikit-learn estimator (``fit``, ``score_samples``, ``score``, ``sample``; works with
    ``clone``, ``Pipeline`` and ``GridSearchCV``) around :class:`scorematch.EnergyMLP`:
    :meth:`fit` builds an ``EnergyMLP(dim=n_features)`` and trains it with
    :meth:`EnergyMLP.fit <scorematch.EnergyMLP.fit>`. Hyper-parameters are stored as given
    and checked by :meth:`fit` (and :meth:`sample`), which raise ``ValueError`` naming the
    bad one.

    Parameters
    ----------
    hidden : sequence of int, default (64, 64)
        Widths of the hidden layers (at least one): a tuple, a list, ... (stored as given,
        as scikit-learn's ``get_params`` and ``clone`` require).
    activation : {"softplus", "tanh", "silu"}, default "softplus"
        Hidden-layer nonlinearity.
    dtype : {"float32", "float64"} or numpy dtype, default "float64"
        Floating-point type of the model, any spelling numpy takes (``np.float32``, ``"f4"``);
        inputs are converted to it.
    alpha : float, default 0.0
        Coefficient of the fixed confining term ``(α/2)‖x‖²`` of the energy. ``alpha > 0``
        requires ``standardize=False``.
    objective : {"ism", "ssm", "dsm"}, default "ism"
        Training loss: exact implicit score matching, sliced score matching
        (``n_projections`` ``projection`` directions per row), or denoising score matching
        at ``noise_std`` (which fits the data blurred by ``N(0, noise_std² I)``). Explicit
        score matching needs target scores and is only available through
        :meth:`EnergyMLP.fit <scorematch.EnergyMLP.fit>`.
    epochs : int, default 100
        Passes over the training rows.
    batch_size : int, default 256
        Rows per minibatch.
    lr : float, default 1e-3
        Learning rate.
    optimizer : {"adam", "sgd"}, default "adam"
        Adam, or SGD with momentum 0.9.
    weight_decay : float, default 0.0
        L2 penalty coefficient added to the gradient.
    noise_std : float or None, default None
        Noise level of ``objective="dsm"`` (required by it, refused by the others); in
        standardized units when ``standardize=True``.
    n_projections : int, default 1
        Directions per row for ``objective="ssm"``; another value is refused by the others.
    projection : {"gaussian", "rademacher"}, default "gaussian"
        Distribution of the ``"ssm"`` directions; another value is refused by the others.
    standardize : bool, default True
        Train in per-feature standardized coordinates (so ``lr`` suits any data scale); the
        map is folded into the first layer, so ``model_`` works in the input coordinates.
    validation : float or None, default None
        Fraction of the rows held out; the parameters of the epoch with the lowest
        validation loss are restored at the end. ``None`` or ``0``: train on every row.
    patience : int or None, default None
        Stop after this many epochs without improvement of the validation loss (of the
        training loss without validation).
    method : {"mala", "ula"}, default "mala"
        Sampler of :meth:`sample`: Metropolis-adjusted Langevin (exact target; its ε is
        tuned per chain during ``burn_in`` toward an acceptance rate of 0.574) or
        unadjusted Langevin (biased by O(ε)).
    n_steps : int, default 500
        Langevin steps of :meth:`sample` after the burn-in.
    burn_in : int, default 500
        Langevin steps of :meth:`sample` run first (where MALA tunes its step size).
    step_size : float or None, default None
        Langevin step size ``ε`` of :meth:`sample`, in the step
        ``x ← x + (ε/2)·s(x) + √ε·z`` (for MALA, the starting value of the tuning).
        ``None``: the chains run in standardized coordinates ``z = (x − mean_) / scale_``
        with ``ε = 0.1`` there, so that features of any scale mix alike (in x, the step of
        feature j is ``0.1·scale_[j]²``: ``x ← x + (ε/2)·D²s(x) + √ε·D·z`` with
        ``D = diag(scale_)``, a preconditioned Langevin step with the same target); with
        ``alpha > 0``, whose term ``(α/2)‖x‖²`` those coordinates would not keep, they run
        in x with ``ε = 0.1 × min(scale_)²``. With ULA, or data with structure much finer
        than its spread, set it explicitly.
    random_state : int, RandomState instance or None, default None
        Seeds the initialization, the validation split, the minibatch order and the random
        draws of the objective. An int gives the same model as
        ``EnergyMLP(dim, ..., seed=random_state).fit(X, ..., seed=random_state)``, bit for
        bit; ``None`` uses numpy's global random state (see the scikit-learn glossary).

    Attributes
    ----------
    model_ : EnergyMLP
        The fitted energy model (energies, scores, Hessian traces, saving, ...).
    history_ : FitHistory
        Losses per epoch, best epoch and stop reason of the fit.
    mean_ : ndarray of shape (n_features_in_,)
        Per-feature mean of the training data (the sampling chains start around it).
    scale_ : ndarray of shape (n_features_in_,)
        Per-feature standard deviation of the training data.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the features seen during :meth:`fit`, when ``X`` had string column names
        (a pandas DataFrame).

    Notes
    -----
    The density ``exp(-E(x)) / Z`` has an intractable normalizer ``Z``, which score matching
    never needs. Hence:

    - :meth:`score_samples` returns ``-E(x)``, the log-density **up to the unknown constant**
      ``log Z``. Differences between points of one model are exact log-density ratios, so it
      ranks points (e.g. for outlier detection); its values are not comparable between two
      fitted models.
    - :meth:`score` (what ``GridSearchCV`` and ``cross_val_score`` maximize) is therefore not
      the mean of :meth:`score_samples` but the negative implicit score-matching loss
      ``-J_ISM(X) = -mean[tr(∇ₓ s(x)) + ½‖s(x)‖²]``. It needs no normalizer, and on rows
      drawn from the data distribution (held out from training) it is an unbiased estimate
      of ``-½ E‖s(x) - ∇ log p_data(x)‖²`` (minus the Fisher divergence to the data) plus
      ``½ E‖∇ log p_data‖²``, a constant no model changes (Hyvärinen 2005). So on the same
      held-out rows it compares models of any architecture or objective correctly: higher
      is better. Not across settings of a ``Pipeline``'s steps before the estimator, which
      change the rows it sees and their coordinates (see :meth:`score`).

    Examples
    --------
    >>> import numpy as np
    >>> from scorematch.sklearn import ScoreMatchingDensity
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> est = ScoreMatchingDensity(hidden=(16,), epochs=50, random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape, est.sample(4, random_state=0).shape
    ((3,), (4, 2))
    """

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        activation: str = "softplus",
        dtype: DTypeLike = "float64",
        alpha: float = 0.0,
        objective: str = "ism",
        epochs: int = 100,
        batch_size: int = 256,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        noise_std: float | None = None,
        n_projections: int = 1,
        projection: str = "gaussian",
        standardize: bool = True,
        validation: float | None = None,
        patience: int | None = None,
        method: str = "mala",
        n_steps: int = 500,
        burn_in: int = 500,
        step_size: float | None = None,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.dtype = dtype
        self.alpha = alpha
        self.objective = objective
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.noise_std = noise_std
        self.n_projections = n_projections
        self.projection = projection
        self.standardize = standardize
        self.validation = validation
        self.patience = patience
        self.method = method
        self.n_steps = n_steps
        self.burn_in = burn_in
        self.step_size = step_size
        self.random_state = random_state

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X: ArrayLike, y: object = None) -> ScoreMatchingDensity:
        """Fit the energy model to the rows of ``X`` by score matching.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training data (converted to ``dtype``; NaN and Inf are refused). Booleans are
            read as 0 and 1, as scikit-learn reads them; dates, times, durations and strings
            (a frame's column, an array or nested lists of them) are refused, as by the
            engine's methods. A column of few distinct values (Booleans, counts, one-hot
            codes) is a set of point masses, which the ``"ism"`` and ``"ssm"`` objectives
            may fit without bound: a ``RuntimeWarning`` (see :meth:`EnergyMLP.fit
            <scorematch.EnergyMLP.fit>`) says so.
        y : None
            Ignored; present for scikit-learn's API.

        Returns
        -------
        ScoreMatchingDensity
            ``self``, fitted.

        Raises
        ------
        ValueError
            For an invalid hyper-parameter (checked before any training; the message names
            it) or invalid data.
        TypeError
            If ``X`` holds objects that are not numbers (as scikit-learn's validation
            raises it), holds dates, times, durations or strings (a column of a polars,
            pyarrow or pandas frame, an array or nested lists; boolean columns are read as 0
            and 1), or is a masked array (its mask would be ignored).
        scorematch.TrainingDivergedError
            If the loss, a gradient or a parameter becomes NaN or Inf, or the loss blows up
            (as :meth:`scorematch.EnergyMLP.fit` raises it: its message names the step and
            what to change).

        Notes
        -----
        A fit that raises leaves the estimator as it was: still fitted to the previous data
        (``n_features_in_`` included), or unfitted.
        """
        p = self._checked_params()
        # validate_data sets n_features_in_ and feature_names_in_ from X before the data or
        # the training can still fail: a fit that raised left them describing X beside the
        # model_ of the previous fit, which then refused the rows it was fitted on.
        before = dict(self.__dict__)
        try:
            return self._fit(X, p)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit(self, X: ArrayLike, p: _Params) -> ScoreMatchingDensity:
        """:meth:`fit` with the checked hyper-parameters ``p``."""
        reject_masked(X, "X")  # scikit-learn's validation would drop the mask unseen
        Xa = _validated(self, X, dtype=p.dtype, ensure_min_samples=1)
        if p.validation is not None and Xa.shape[0] < 2:
            raise ValueError(
                f"validation={self.validation!r} holds rows out and needs at least 2 samples, "
                f"got n_samples={Xa.shape[0]}"
            )
        try:
            rng = check_random_state(self.random_state)
        except ValueError as err:
            raise _invalid(
                self, "random_state", "None, an int or a numpy RandomState", err
            ) from err
        if isinstance(self.random_state, (int, np.integer)):
            init_seed = fit_seed = int(self.random_state)
        else:
            init_seed, fit_seed = (int(s) for s in rng.randint(0, 2**31 - 1, size=2))

        model = EnergyMLP(
            Xa.shape[1],
            hidden=p.hidden,
            activation=p.activation,
            dtype=p.dtype,
            alpha=p.alpha,
            seed=init_seed,
        )
        history = model.fit(
            Xa,
            objective=p.objective,
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.lr,
            optimizer=p.optimizer,
            weight_decay=p.weight_decay,
            validation=p.validation,
            patience=p.patience,
            seed=fit_seed,
            progress=False,
            noise_std=p.noise_std,
            n_projections=p.n_projections,
            projection=p.projection,
            standardize=p.standardize,
        )
        self.model_: EnergyMLP = model
        self.history_: FitHistory = history
        self.mean_: Array
        self.scale_: Array
        self.mean_, self.scale_ = column_stats(Xa)
        self._train_reach = self._reach(Xa)
        return self

    # -- evaluation ------------------------------------------------------------------------

    def score_samples(self, X: ArrayLike) -> Array:
        """Unnormalized log-density ``-E(x)`` of each row: ``log p(x) + log Z``.

        The normalizer ``Z`` of ``exp(-E)`` is unknown (score matching never computes it),
        so these values are log-densities **up to one additive constant** per fitted model:
        differences between rows are exact log-density ratios (they rank points, e.g. for
        outlier detection), but the values of two different fitted models are not
        comparable. To compare models use :meth:`score`.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), of the model's dtype
        """
        Xa = self._check_X(X)  # first: raises NotFittedError before model_ is read
        return -self.model_.energy(Xa)

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Negative implicit score-matching loss of ``X``: higher is better.

        ``-J_ISM(X) = -mean over rows of [tr(∇ₓ s(x)) + ½‖s(x)‖²]`` with the model's score
        ``s = -∇ₓE``. It needs no normalizer. On rows drawn from the data distribution and
        not used for training it is an unbiased estimate of
        ``-½ E‖s(x) - ∇ log p_data(x)‖²`` (minus the Fisher divergence to the data) plus
        ``½ E‖∇ log p_data(x)‖²``, a constant that no model changes (Hyvärinen 2005; the
        identity is integration by parts). So on the same rows it compares any two models —
        different architectures, objectives or hyper-parameters — correctly, which is what
        ``GridSearchCV`` and ``cross_val_score`` need; its absolute value (it can be of
        either sign) and values on different ``X`` mean nothing. It is *not* the mean of
        :meth:`score_samples`, whose values carry a model-dependent constant ``log Z``.
        On training rows it is optimistic, as any training loss. In a ``Pipeline``, ``X`` is
        what the steps before it output: the score is in their coordinates (the Fisher
        divergence is not invariant under a change of coordinates, and no Jacobian term
        corrects it as for a log-likelihood), so settings that change those steps (a
        scaler or not, PCA's ``n_components``) are not comparable by it: for data of
        standard deviation 100, the best score possible is 10⁴ times smaller unscaled than
        after a ``StandardScaler``.

        The exact Hessian trace costs about ``n_features + 2`` forward passes per row.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Held-out samples (at least one row).
        y : None
            Ignored; present for scikit-learn's API.

        Returns
        -------
        float
        """
        Xa = self._check_X(X)  # first: raises NotFittedError before model_ is read
        return -float(self.model_.ism_loss(Xa))

    def score_field(self, X: ArrayLike) -> Array:
        """The model's score ``s(x) = ∇ₓ log p(x) = -∇ₓE(x)`` at each row (no ``Z`` needed).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_features), of the model's dtype
        """
        Xa = self._check_X(X)  # first: raises NotFittedError before model_ is read
        return self.model_.score(Xa)

    def sample(
        self, n_samples: int = 1, random_state: int | np.random.RandomState | None = None
    ) -> Array:
        """Draw samples from the fitted density with ``n_samples`` Langevin chains.

        Each chain starts at ``N(mean_, diag(scale_²))`` and runs ``burn_in + n_steps``
        steps of ``method`` with the update ``x ← x + (ε/2)·s(x) + √ε·z``, ``z ~ N(0, I)``,
        ``step_size = ε``; with the default ``step_size=None`` and ``alpha = 0``, in the
        standardized coordinates ``(x − mean_) / scale_`` with ``ε = 0.1`` (see the class
        parameters), where a feature that never varied in the training data (``scale_`` 0)
        is held at its value: the samples are then those of the fitted density given that
        value (the data say nothing of a spread there, which the model's, with DSM's noise,
        say, would invent). Each returns its final state. For
        trajectories, acceptance rates or other options, call ``model_.sample`` directly.
        The sampling parameters are read at each call, so ``set_params(n_steps=...)``
        changes them without refitting.

        Parameters
        ----------
        n_samples : int, default 1
            Number of samples (and of chains).
        random_state : int, RandomState instance or None, default None
            Seeds the starting points and the chains; an int gives reproducible samples,
            and the first ``k`` samples of ``sample(n, s)`` are those of ``sample(k, s)``.

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_), of the model's dtype

        Raises
        ------
        ValueError
            If ``n_samples`` < 1, ``random_state`` cannot seed a RandomState, or (default
            ``step_size``) the model's first layer overflows its dtype in standardized
            coordinates, or with ``alpha > 0`` the default step over- or underflows.
        TypeError
            If ``n_samples`` is not an int.
        scorematch.SamplingDivergedError
            If chains reach NaN or Inf (ULA with too large a ``step_size``).

        Warns
        -----
        RuntimeWarning
            If a sample lies more than 100 times farther from ``mean_`` (in ``scale_``
            units) than any training row: the fitted energy does not confine its density
            there, and the chains ran off (a short fit; ``alpha`` is 0 with
            ``standardize=True``).
        """
        check_is_fitted(self)
        p = self._checked_params()
        n = as_int(n_samples, "n_samples")
        try:
            rng = check_random_state(random_state)
        except ValueError as err:
            # Named, as fit names its random_state (scikit-learn's message does not say which
            # argument it refused).
            raise ValueError(
                "random_state must be None, an int or a numpy RandomState, got "
                f"{described(random_state)} ({err})"
            ) from err
        seed = int(rng.randint(0, 2**31 - 1))
        d = self.n_features_in_
        try:
            init = self.mean_ + self.scale_ * rng.standard_normal((n, d))
        except (MemoryError, ValueError) as err:
            # numpy's "Unable to allocate 14.6 TiB for an array with shape (10**12, 2)", or
            # past the address space "array is too big": neither named n_samples.
            raise MemoryError(
                f"cannot allocate {n} chains of dimension {d} (n_samples={n}): their starting "
                f"points alone take {binary_size(n * d * 8)}"
            ) from err
        adapt = p.method == "mala" and p.burn_in > 0
        options: dict[str, Any] = {
            "n_steps": p.n_steps,
            "method": "mala" if p.method == "mala" else "ula",
            "burn_in": p.burn_in,
            "adapt_step_size": adapt,
            "seed": seed,
            "progress": False,
        }
        if p.step_size is None and self.model_.alpha == 0:
            samples = self._sample_standardized(init, options)
        else:
            step = self._default_step_in_x() if p.step_size is None else p.step_size
            samples = self.model_.sample(n, step_size=step, init=init, **options).samples
        self._warn_if_runaway(samples)
        return samples

    # The default step size, in standardized coordinates.
    _DEFAULT_STEP = 0.1

    def _sample_standardized(self, init: Array, options: dict[str, Any]) -> Array:
        """The default sampler of a model with alpha = 0: chains in the standardized
        coordinates z = (x - mean_) / scale_ of the features that varied, with ε = 0.1, each
        feature that never varied held at its value.

        One ε for every feature moved the chains by the smallest feature's scale: along a
        feature 100 times wider they barely moved. A feature that never varied has no scale,
        and the model saw nothing along it: chains there wandered off (std 1.3 for a column
        always 3.0), or MALA's tuning, finding that direction flat, grew ε until the other
        features ran off. The data pin it, so the chains sample the model at its value: the
        first layer takes ``W mean_`` into its bias and keeps the varying columns, times
        their scale.
        """
        model, varies = self.model_, self.scale_ > 0
        samples = np.empty(init.shape, model.dtype)
        samples[:, ~varies] = self.mean_[~varies]
        if not varies.any():
            return samples
        m, s = self.mean_[varies], self.scale_[varies]
        # The model in z, as standardize=True trains it (a constant column only shifted:
        # there z = 0 is its value), then without the constant columns.
        full = _Affine(self.mean_.astype(np.float64), np.where(varies, self.scale_, 1.0))
        try:
            p = full.to_z(model._m).params()
        except ValueError:
            raise ValueError(
                "the default step_size runs the chains in standardized coordinates "
                "z = (x - mean_) / scale_, where the model's first layer overflows "
                f"{np.dtype(model.dtype).name}; pass step_size"
            ) from None
        p[0] = p[0][:, varies]
        z_model = EnergyMLP.from_params(p, activation=model.activation, dtype=model.dtype)
        z0 = (init[:, varies] - m) / s
        z = z_model.sample(len(init), step_size=self._DEFAULT_STEP, init=z0, **options).samples
        samples[:, varies] = m + s * z
        return samples

    def _default_step_in_x(self) -> float:
        """The default ε of a model with alpha > 0: its confining term (α/2)‖x‖² has no
        counterpart in standardized coordinates (the network's first layer takes the map,
        the term would not), so its chains run in x, with 0.1 × the smallest feature
        variance."""
        positive = self.scale_[self.scale_ > 0]
        low = float(positive.min()) if positive.size else 1.0
        step = self._DEFAULT_STEP * low * low  # a product: Inf past the range, where ** raises
        if not (math.isfinite(step) and step > 0):
            raise ValueError(
                f"the default step_size 0.1·min(scale_)² of a model with alpha > 0 is {step} "
                f"for data of this scale (min scale_ = {low:.1e}); pass step_size"
            )
        return step

    # A fitted energy need not confine its density (alpha is 0 with standardize=True): after
    # a short fit, chains can run off, MALA's step-size tuning growing ε without bound, and
    # return points at 1e10 for data at 1. Well-fitted heavy-tailed models reach a few times
    # the data's extent, hence the wide margin.
    _RUNAWAY = 100.0

    def _warn_if_runaway(self, samples: Array) -> None:
        train = getattr(self, "_train_reach", None)  # None: fitted by an older version
        if train is None or samples.size == 0:
            return
        reach = self._reach(samples)
        if not reach <= self._RUNAWAY * max(train, 1.0):
            warn(
                f"the samples reach {reach:.3g} standard deviations from the training mean, "
                f"where the training data reach {train:.3g}: the fitted energy may not confine "
                "its density (exp(-E) improper far from the data), and the chains ran off. "
                "Train longer, or confine the density with alpha > 0 (and standardize=False)"
            )

    def _reach(self, A: Array) -> float:
        """The largest distance of an entry of ``A`` from ``mean_``, in ``scale_`` units,
        over the features that vary (NaN-free ``A``)."""
        varies = self.scale_ > 0
        if not varies.any():
            return 0.0
        dev = np.abs(A[:, varies] - self.mean_[varies]) / self.scale_[varies]
        return float(dev.max(initial=0.0))

    # -- helpers ---------------------------------------------------------------------------

    def _check_X(self, X: ArrayLike) -> Array:
        check_is_fitted(self)
        reject_masked(X, "X")
        Xa = _validated(self, X, dtype=self.model_.dtype, reset=False)
        return Xa

    def _checked_params(self) -> _Params:
        """The hyper-parameters, checked; a bad one raises ``ValueError`` naming it."""

        def bad(param: str, expected: str, err: Exception | None = None) -> ValueError:
            return _invalid(self, param, expected, err)

        def choice(param: str, options: tuple[str, ...]) -> str:
            value = getattr(self, param)
            if not isinstance(value, str) or value not in options:
                raise bad(param, one_of(options))
            return value

        def integer(param: str, low: int, high: int = INT_MAX) -> int:
            try:
                return as_int(getattr(self, param), param, low, high)
            except (TypeError, ValueError) as err:
                expected = f"an int >= {low}" if high == INT_MAX else f"an int in [{low}, {high}]"
                raise bad(param, expected) from err

        def positive(param: str) -> float:
            try:
                return as_positive(getattr(self, param), param)
            except (TypeError, ValueError) as err:
                raise bad(param, "a finite number > 0") from err

        def nonnegative(param: str) -> float:
            try:
                return as_nonnegative(getattr(self, param), param)
            except (TypeError, ValueError) as err:
                raise bad(param, "a finite number >= 0") from err

        try:
            hidden = tuple(_as_widths(self.hidden))
        except (TypeError, ValueError) as err:
            raise bad("hidden", "a non-empty sequence of ints >= 1 such as (64, 64)") from err
        try:
            dtype = parse_dtype(self.dtype)
        except ValueError as err:
            raise bad("dtype", "'float32' or 'float64'") from err
        alpha = nonnegative("alpha")
        weight_decay = nonnegative("weight_decay")
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise bad("standardize", "a bool")
        if self.objective == "esm":
            raise bad(
                "objective",
                "'ism', 'ssm' or 'dsm': 'esm' needs target scores, which an unsupervised "
                "estimator does not take; use EnergyMLP.fit(X, objective='esm', target_score=...)",
            )
        objective = choice("objective", _OBJECTIVES)
        noise_std = None
        if objective == "dsm":
            if self.noise_std is None:
                raise bad("noise_std", "a number > 0, which objective='dsm' requires")
            noise_std = positive("noise_std")
        elif self.noise_std is not None:
            raise bad("noise_std", f"None: only objective='dsm' uses it, not {objective!r}")
        n_projections = integer("n_projections", 1, MAX_PROJECTIONS)
        projection = choice("projection", _PROJECTIONS)
        check_ssm_only(
            objective,
            n_projections,
            projection,
            lambda name, _: bad(
                name,
                f"its default ({'1' if name == 'n_projections' else repr('gaussian')}): only "
                f"objective='ssm' uses it, not {objective!r}",
            ),
        )
        if self.standardize and alpha != 0:
            raise bad(
                "alpha",
                "0 with standardize=True (the confining term has no exact counterpart in "
                "standardized coordinates); set standardize=False to use alpha > 0",
            )
        validation: float | None = None
        v = self.validation
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise bad("validation", "None or a fraction in [0, 1)")
            if not 0 <= v < 1:
                raise bad("validation", "None or a fraction in [0, 1)")
            validation = float(v) if v > 0 else None
        patience = None if self.patience is None else integer("patience", 1)
        step_size = None if self.step_size is None else positive("step_size")
        return _Params(
            hidden=hidden,
            activation=choice("activation", _ACTIVATIONS),
            dtype=dtype,
            alpha=alpha,
            objective=objective,
            epochs=integer("epochs", 1),
            batch_size=integer("batch_size", 1),
            lr=positive("lr"),
            optimizer=choice("optimizer", _OPTIMIZERS),
            weight_decay=weight_decay,
            noise_std=noise_std,
            n_projections=n_projections,
            projection=projection,
            standardize=bool(self.standardize),
            validation=validation,
            patience=patience,
            method=choice("method", _METHODS),
            n_steps=integer("n_steps", 1),
            burn_in=integer("burn_in", 0),
            step_size=step_size,
        )


# What X must hold, in messages: scikit-learn reads boolean features as 0 and 1 (its
# convention, kept here, where the engine's own methods refuse them).
_NUMBERS = "an array of numbers (booleans are read as 0 and 1)"


def _validated(est: ScoreMatchingDensity, X: ArrayLike, **kwargs: Any) -> Array:
    """``X`` checked and converted by scikit-learn's ``validate_data``; a Python int beyond
    the float range among its entries is a ``ValueError`` naming ``X``, not the
    ``OverflowError`` of numpy's conversion.

    A column of dates, times, durations or strings of a polars, pyarrow or pandas frame is a
    ``TypeError`` naming it, as the engine's methods refuse it, before scikit-learn's
    conversion reads dates and durations as day or microsecond counts (polars, Arrow),
    parses strings as numbers, or fails on a pandas datetime column with numpy's type
    promotion error; so is an array (or nested lists) of them (:func:`_refuse_non_numbers`).
    Boolean columns are read as 0 and 1, as scikit-learn does.

    Batches that numpy's conversion (and so scikit-learn's) cannot read are read as the
    engine's methods read them, before: Arrow fixed-size lists (rows of d numbers, such as
    embeddings) as an (n, d) array, an object that speaks only DLPack through
    ``np.from_dlpack``."""
    # Rows first: the column check would read a column of fixed-size lists as objects, one
    # small array a row, and look at each (73 ms for 200 000 rows of 8, against 0.15 ms to
    # read them in place).
    X = numpy_batch(X, "X", _NUMBERS, kinds="fiub")
    bad = _non_number_column(X, lenient=True)
    if bad is not None:
        raise TypeError(f"X must be {_NUMBERS}, got column {bad[0]!r} of dtype {bad[1]}")
    if isinstance(X, (list, tuple)):
        # Read once here (scikit-learn reads it with np.asarray too), for the check below.
        try:
            X = np.asarray(X)
        except ValueError:
            pass  # ragged: scikit-learn's conversion says so
    if isinstance(X, np.ndarray):
        _refuse_non_numbers(X)
    try:
        # A float64 value too large for a float32 model: numpy's cast warns, then scikit-learn
        # says "contains infinity or a value too large" of no row; named below instead.
        with np.errstate(over="ignore"):
            Xa: Array = validate_data(est, X, **kwargs)
    except OverflowError as err:
        raise ValueError(f"X holds a number too large for {kwargs['dtype']} ({err})") from None
    except ValueError:
        _raise_too_large(X, np.dtype(kwargs["dtype"]))
        raise
    return Xa


def _raise_too_large(X: Any, dtype: np.dtype[Any]) -> None:
    """The ``ValueError`` naming the first row of ``X`` (wider floats, once read as an array)
    that holds a finite value too large for ``dtype``; returns if there is none."""
    try:
        A = np.asarray(X)
    except (ValueError, TypeError):
        return
    if A.ndim == 2 and A.dtype.kind == "f" and A.dtype.itemsize > dtype.itemsize:
        narrow_checked(
            A,
            dtype.name,
            "X",
            "use dtype='float64' or rescale the data" if dtype.itemsize < 8 else "rescale the data",
            lambda at: f"row {at[0]}",
        )


def _refuse_non_numbers(X: Array) -> None:
    """A ``TypeError`` for an array of strings, dates, times or durations, as a frame's
    column of them and the engine's methods refuse it: scikit-learn's conversion to the
    model's dtype parsed strings as numbers (``"1.5"``) and read ``datetime64`` and
    ``timedelta64`` values as counts of their unit, in silence."""
    kind = X.dtype.kind
    if kind in "mMUS":
        raise TypeError(f"X must be {_NUMBERS}, got dtype {X.dtype}")
    if kind == "O":
        for i, v in enumerate(X.flat):
            if isinstance(v, _NOT_NUMBERS):
                where = f" (row {i // X.shape[1]})" if X.ndim == 2 else ""
                raise TypeError(
                    f"X must be {_NUMBERS}, got an array of objects holding {typed(v)}{where}"
                )


def _invalid(
    est: ScoreMatchingDensity, param: str, expected: str, err: Exception | None = None
) -> ValueError:
    """The error for an invalid hyper-parameter: its name, value and what was expected."""
    v = getattr(est, param)
    if isinstance(v, int):
        value = shown(v, in_place_of_repr=True)
    else:
        # An array's repr spans lines: described, in angle brackets as Python shows what has
        # no literal.
        text = described(v)
        value = text if text == repr(v) else f"<{text}>"
    detail = f" ({err})" if err is not None else ""
    return ValueError(
        f"{type(est).__name__}: invalid hyper-parameter {param}={value}: "
        f"expected {expected}{detail}"
    )
