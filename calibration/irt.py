"""Pure, vectorised IRT maths: response probability, information and log-likelihood.

One parameterisation everywhere (the 4PL; the others are special cases):

    P(correct | theta) = c + (d - c) * logistic(a * (theta - b))

1PL: a shared, c = 0, d = 1.  2PL: c = 0, d = 1.  3PL: d = 1.  4PL: all free.
Every function broadcasts over numpy arrays and has no state and no I/O.

``ItemParams`` holds that model's parameters; ``ItemModel`` is the protocol any item parameter set
implements (what a polytomous or rater model brings; see its docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol, Self, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

# The IRT models a calibration fits, and what a user may ask for: one of them or "auto" (``select_model``
# picks by held-out log-likelihood). The one list: ``calibration`` exports both, the CLI offers IRT_CHOICES.
IRT_MODELS = ("1pl", "2pl", "3pl", "4pl")
IRT_CHOICES = (*IRT_MODELS, "auto")
# The models with a guessing parameter (a free or fixed lower asymptote c); the others hold c at 0.
GUESSING_MODELS = ("3pl", "4pl")

# Probabilities are kept this far from 0 and 1 so logs and information stay finite.
EPS = 1e-9


@runtime_checkable
class ItemModel(Protocol):
    """What an item parameter set offers whatever its model: the face a non-4PL model plugs in through.

    ``ItemParams`` (the 4PL and its special cases) and ``GradedParams`` (the many-facet graded response
    model, below; ``calibration.facets``) implement it. A polytomous model (graded response: an item with K ordered categories is scored k / (K - 1), which
    ``ResponseSet`` already holds as a fractional score) or a rater model brings its own frozen class with
    these members, and its fitter (``calibration.fitters``) returns it as ``CalibrationResult.params``:

    - ``family`` names the model ("4pl" here; e.g. "grm"); ``item_ids``, ``len()``, ``subset(idx)`` as
      ``ItemParams``.
    - ``columns()``: the per-item parameters as named float arrays, in a fixed order (a, b, c, d here; a
      graded item's a and thresholds b1..b{K-1}, NaN-padded to the widest item): what is stored and what a
      pool frame joins.
    - ``expected(theta)``: expected score in [0, 1] of every item at every ability, shape (n_theta, n_items)
      (the 4PL's P; a graded item's mean category / (K - 1)): what predicted accuracy and score curves need.
    - ``information(theta)``: Fisher information per item, same shape: what information-targeted forms
      and CAT need.
    - ``loglik(theta, item_idx, score)``: log-likelihood of each response (elementwise, broadcasting theta
      against the response arrays): what ability estimation and held-out checks need.

    A rater model (judge-scored items) has parameters of its raters too (severity, and spread where the
    model has one). They live beside the items': the response set gains the rater of each response (a
    ``rater_idx`` / ``rater_ids`` pair like the model's), the parameter set keeps the raters' arrays next to
    the items' and its ``loglik`` takes the responses' rater indices as well; ``expected`` is for the
    reference rater (severity 0) unless told otherwise.

    Today the rooms downstream read ``ItemParams``' a, b, c, d directly (``calibration.store``'s item table,
    ``calibration.predictive``, ``calibration.ability``, linking, item fit, the sampler's pool frame, the
    report's plots); ``CalibrationResult.item_table`` goes through ``columns()``. A new family's issue moves
    the consumers it needs onto these members (and the store onto ``columns()``, keyed by ``family``)
    before its fitter registers; none of them changes for the 4PL.
    """

    @property
    def family(self) -> str: ...

    @property
    def item_ids(self) -> tuple[str, ...]: ...

    def __len__(self) -> int: ...

    def subset(self, idx: ArrayLike) -> Self: ...

    def columns(self) -> dict[str, NDArray[np.float64]]: ...

    def expected(self, theta: ArrayLike) -> NDArray[np.float64]: ...

    def information(self, theta: ArrayLike) -> NDArray[np.float64]: ...

    def loglik(self, theta: ArrayLike, item_idx: ArrayLike, score: ArrayLike) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class ItemParams:
    """Item parameters of one calibration, aligned arrays (one entry per item): the 4PL's ``ItemModel``."""

    family: ClassVar[str] = "4pl"
    names: ClassVar[tuple[str, ...]] = ("a", "b", "c", "d")

    item_ids: tuple[str, ...]
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    c: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    d: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        object.__setattr__(self, "a", np.asarray(self.a, dtype=float))
        object.__setattr__(self, "b", np.asarray(self.b, dtype=float))
        if self.c.size == 0:
            object.__setattr__(self, "c", np.zeros(n))
        if self.d.size == 0:
            object.__setattr__(self, "d", np.ones(n))
        object.__setattr__(self, "c", np.asarray(self.c, dtype=float))
        object.__setattr__(self, "d", np.asarray(self.d, dtype=float))
        for name in ("a", "b", "c", "d"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"ItemParams.{name} has shape {getattr(self, name).shape}, expected ({n},)")

    def __len__(self) -> int:
        return len(self.item_ids)

    def subset(self, idx: ArrayLike) -> ItemParams:
        idx = np.asarray(idx)
        return ItemParams(tuple(np.asarray(self.item_ids, dtype=object)[idx]), self.a[idx], self.b[idx],
                          self.c[idx], self.d[idx])

    def columns(self) -> dict[str, NDArray[np.float64]]:
        """a, b, c, d by name (``ItemModel``)."""
        return {k: getattr(self, k) for k in self.names}

    def expected(self, theta: ArrayLike) -> NDArray[np.float64]:
        """P(correct) of every item at every theta, (n_theta, n_items) (``ItemModel``; ``prob_matrix``)."""
        return prob_matrix(np.atleast_1d(theta), self)

    def information(self, theta: ArrayLike) -> NDArray[np.float64]:
        """Fisher information of every item at every theta, (n_theta, n_items) (``ItemModel``)."""
        t = np.atleast_1d(np.asarray(theta, dtype=float))[:, None]
        return item_information(t, self.a, self.b, self.c, self.d)

    def loglik(self, theta: ArrayLike, item_idx: ArrayLike, score: ArrayLike) -> NDArray[np.float64]:
        """Log-likelihood of responses ``score`` to items ``item_idx`` at ``theta`` (``ItemModel``)."""
        j = np.asarray(item_idx)
        return log_likelihood(theta, score, self.a[j], self.b[j], self.c[j], self.d[j])


def prob(theta: ArrayLike, a: ArrayLike, b: ArrayLike, c: ArrayLike = 0.0, d: ArrayLike = 1.0) -> NDArray:
    """Probability of a correct response (4PL; broadcasts theta against the item arrays)."""
    theta, a, b, c, d = (np.asarray(x, dtype=float) for x in (theta, a, b, c, d))
    return c + (d - c) * expit(a * (theta - b))


def clipped_log_probs(theta: ArrayLike, a: ArrayLike, b: ArrayLike, c: ArrayLike = 0.0,
                      d: ArrayLike = 1.0) -> tuple[NDArray, NDArray]:
    """``log p`` and ``log(1 - p)`` of ``p = clip(prob(theta, a, b, c, d), EPS, 1 - EPS)``: the same numbers,
    bit for bit, computed in place on one array where ``theta - b`` already has the broadcast shape
    (a grid against items: the ability posteriors' hot loop, 10k items x 481 nodes per model on
    MMLU-Pro), and skipping ``c + (d - c) *`` where every c is 0 and every d is 1 (exact: 0 + 1 * x == x)."""
    theta, a, b, c, d = (np.asarray(x, dtype=float) for x in (theta, a, b, c, d))
    p = np.asarray(np.subtract(theta, b))  # a new array (0-d for scalars)
    if p.ndim == 0 or p.shape != np.broadcast_shapes(theta.shape, a.shape, b.shape, c.shape, d.shape):
        p = np.clip(prob(theta, a, b, c, d), EPS, 1 - EPS)
        return np.log(p), np.log1p(-p)
    np.multiply(a, p, out=p)
    expit(p, out=p)
    if not (np.all(c == 0.0) and np.all(d == 1.0)):
        np.multiply(d - c, p, out=p)
        np.add(c, p, out=p)
    np.clip(p, EPS, 1 - EPS, out=p)
    log_p = np.log(p)
    np.negative(p, out=p)
    return log_p, np.log1p(p, out=p)


def prob_matrix(theta: ArrayLike, params: ItemParams) -> NDArray:
    """P for every (theta, item): shape (len(theta), n_items)."""
    t = np.asarray(theta, dtype=float)[:, None]
    return prob(t, params.a, params.b, params.c, params.d)


def item_information(theta: ArrayLike, a: ArrayLike, b: ArrayLike, c: ArrayLike = 0.0,
                     d: ArrayLike = 1.0) -> NDArray:
    """Fisher information of an item at theta (4PL formula; reduces to a^2 P Q for the 2PL)."""
    theta, a, b, c, d = (np.asarray(x, dtype=float) for x in (theta, a, b, c, d))
    p = np.clip(prob(theta, a, b, c, d), EPS, 1 - EPS)
    return a**2 * (p - c) ** 2 * (d - p) ** 2 / ((d - c) ** 2 * p * (1 - p))


def test_information(theta: ArrayLike, params: ItemParams) -> NDArray:
    """Sum of item information over the items in ``params``, at each theta."""
    t = np.atleast_1d(np.asarray(theta, dtype=float))[:, None]
    info = item_information(t, params.a, params.b, params.c, params.d)
    return info.sum(axis=1)


def expected_score(theta: ArrayLike, params: ItemParams) -> NDArray:
    """Expected proportion correct over the items in ``params`` (the test characteristic curve / n)."""
    return prob_matrix(np.atleast_1d(theta), params).mean(axis=1)


def log_likelihood(theta: ArrayLike, scores: ArrayLike, a: ArrayLike, b: ArrayLike, c: ArrayLike = 0.0,
                   d: ArrayLike = 1.0) -> NDArray:
    """Bernoulli log-likelihood of scores in [0, 1] (fractional credit allowed), elementwise."""
    s = np.asarray(scores, dtype=float)
    p = np.clip(prob(theta, a, b, c, d), EPS, 1 - EPS)
    return s * np.log(p) + (1 - s) * np.log1p(-p)


def guessing_from_choices(n_choices: ArrayLike) -> NDArray:
    """Fixed 3PL lower asymptote 1/k for k-choice items; 0 for open items (k <= 1)."""
    k = np.asarray(n_choices, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(k > 1, 1.0 / np.maximum(k, 1), 0.0)


# ---------------------------------------------------------------- graded response model with raters
#
# Samejima's graded response model, many-facet: an item with K ordered levels (score k / (K - 1)) has one
# discrimination a and K - 1 ordered thresholds b_1 < ... < b_{K-1}; a rater's severity s shifts every
# threshold of every item the rater scores:
#
#     P(level >= k | theta, rater r) = logistic(a * (theta - b_k - s_r)),   P(level >= 0) = 1, P(level >= K) = 0
#
# With K = 2 and no rater it is the 2PL (b_1 = b), so binary items sit in the same family on one scale.
# A score between two levels (an average of two runs, or a partial credit on a binary item) counts as the
# mix of its two neighbouring levels: log-likelihood (1 - f) log P(k) + f log P(k + 1), f = s (K - 1) - k;
# for K = 2 that is exactly the 2PL's fractional Bernoulli.


def grm_boundaries(thresholds: ArrayLike, n_levels: ArrayLike) -> NDArray:
    """Thresholds padded to (n, Kmax + 1): -inf at 0, b_1..b_{K-1}, +inf from K on (the two ends)."""
    t = np.atleast_2d(np.asarray(thresholds, dtype=float))
    k = np.asarray(n_levels, dtype=int)
    n, w = t.shape
    out = np.full((n, w + 2), np.inf)
    out[:, 0] = -np.inf
    cols = np.arange(1, w + 1)[None, :]
    inside = cols < k[:, None]
    out[:, 1:w + 1] = np.where(inside, t, np.inf)
    return out


def grm_level_probs(theta: ArrayLike, a: ArrayLike, lower: ArrayLike, upper: ArrayLike,
                    severity: ArrayLike = 0.0) -> NDArray:
    """P(level = k) = P(>= k) - P(>= k + 1) given the two boundaries of level k (-inf / +inf at the ends),
    computed on the side of the logistic where the difference does not cancel; clipped to [EPS, 1]."""
    theta, a, lo, up, sev = (np.asarray(x, dtype=float) for x in (theta, a, lower, upper, severity))
    with np.errstate(invalid="ignore"):
        zl = a * (theta - lo - sev)
        zu = a * (theta - up - sev)
    zl = np.where(np.isnan(zl), np.inf, zl)    # lower = -inf: P(>= 0) = 1
    zu = np.where(np.isnan(zu), -np.inf, zu)   # upper = +inf: P(>= K) = 0
    # both cumulative probabilities near 1: subtract their complements instead
    p = np.where(zl > 0, expit(-zu) - expit(-zl), expit(zl) - expit(zu))
    return np.clip(p, EPS, 1.0)


def grm_loglik(theta: ArrayLike, score: ArrayLike, a: ArrayLike, boundaries: NDArray, n_levels: ArrayLike,
               severity: ArrayLike = 0.0) -> NDArray:
    """Log-likelihood of scores in [0, 1] (level k = score (K - 1); between levels: the mix above);
    ``boundaries`` from ``grm_boundaries`` for the responses' items (one row per response)."""
    s = np.asarray(score, dtype=float)
    k_levels = np.asarray(n_levels, dtype=int)
    pos = s * (k_levels - 1)
    low = np.clip(np.floor(pos + 1e-9).astype(int), 0, np.maximum(k_levels - 2, 0))
    frac = np.clip(pos - low, 0.0, 1.0)
    rows = np.arange(boundaries.shape[0])
    b_lo, b_mid, b_hi = (boundaries[rows, low + d] for d in (0, 1, 2))
    out = np.log(grm_level_probs(theta, a, b_lo, b_mid, severity))
    mixed = frac > 0
    if np.any(mixed):
        upper = np.log(grm_level_probs(theta, a, b_mid, b_hi, severity))
        out = np.where(mixed, (1.0 - frac) * out + frac * upper, out)
    return out


@dataclass(frozen=True)
class GradedParams:
    """Graded response items (``n_levels`` K per item, K = 2: a 2PL item) and their raters' severities: the
    many-facet GRM's ``ItemModel`` (family ``grm``).

    ``thresholds`` is (n_items, Kmax - 1), NaN beyond an item's K - 1. ``severity`` is per rater (sum-to-zero
    over the raters of the fit, so the scale's thresholds are those of the average rater); a response without
    a rater (rater index -1: a rule score, or the panel's combined score) has severity 0, the average rater's.
    """

    family: ClassVar[str] = "grm"

    item_ids: tuple[str, ...]
    a: NDArray[np.float64]
    thresholds: NDArray[np.float64]
    n_levels: NDArray[np.int64]
    rater_ids: tuple[str, ...] = ()
    severity: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        a = np.asarray(self.a, dtype=float)
        k = np.asarray(self.n_levels, dtype=np.int64)
        t = np.asarray(self.thresholds, dtype=float).reshape(n, -1) if n else np.zeros((0, max(int(k.max(
            initial=2)) - 1, 1)))
        sev = np.asarray(self.severity, dtype=float)
        if a.shape != (n,) or k.shape != (n,):
            raise ValueError(f"GradedParams: a and n_levels need shape ({n},), got {a.shape}, {k.shape}")
        if n and (k.min() < 2 or t.shape[1] < k.max() - 1):
            raise ValueError("GradedParams: every item needs n_levels >= 2 and K - 1 thresholds")
        if sev.shape != (len(self.rater_ids),):
            raise ValueError(f"GradedParams: {sev.size} severities for {len(self.rater_ids)} raters")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "n_levels", k)
        object.__setattr__(self, "thresholds", t)
        object.__setattr__(self, "severity", sev)
        object.__setattr__(self, "rater_ids", tuple(str(r) for r in self.rater_ids))

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def max_levels(self) -> int:
        return int(self.thresholds.shape[1]) + 1

    def subset(self, idx: ArrayLike) -> GradedParams:
        idx = np.asarray(idx)
        return GradedParams(tuple(np.asarray(self.item_ids, dtype=object)[idx]), self.a[idx],
                            self.thresholds[idx], self.n_levels[idx], self.rater_ids, self.severity)

    def columns(self) -> dict[str, NDArray[np.float64]]:
        """a, b1..b{Kmax-1} by name (``ItemModel``), NaN beyond an item's K - 1."""
        out = {"a": self.a}
        out.update({f"b{k + 1}": self.thresholds[:, k] for k in range(self.thresholds.shape[1])})
        return out

    def location(self) -> NDArray[np.float64]:
        """Mean threshold per item: the item's difficulty (the 2PL's b for a binary item)."""
        return np.nanmean(np.where(np.arange(self.thresholds.shape[1])[None, :] < self.n_levels[:, None] - 1,
                                   self.thresholds, np.nan), axis=1)

    def as_item_params(self) -> ItemParams:
        """The 2PL view for consumers that read a, b (pool frames, difficulty bands, predictive): exact for
        binary items; a graded item's b is its mean threshold, an approximation of its expected-score curve."""
        return ItemParams(self.item_ids, self.a, self.location())

    def rater_severity(self, rater_idx: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.float64]:
        """Severity per response (-1 or no rater: 0, the average rater)."""
        if rater_idx is None:
            return np.zeros(shape)
        r = np.asarray(rater_idx)
        sev = np.concatenate([self.severity, [0.0]])
        return sev[np.where(r < 0, len(self.severity), r)]

    def expected(self, theta: ArrayLike, severity: float = 0.0) -> NDArray[np.float64]:
        """Expected score in [0, 1], (n_theta, n_items): sum_k P(level >= k) / (K - 1), at ``severity``
        (default the average rater's)."""
        t = np.atleast_1d(np.asarray(theta, dtype=float))[:, None, None]
        cum = expit(self.a[None, :, None] * (t - self.thresholds[None] - severity))
        live = np.arange(self.thresholds.shape[1])[None, :] < self.n_levels[:, None] - 1
        return np.where(live[None], cum, 0.0).sum(axis=2) / (self.n_levels - 1)[None, :]

    def information(self, theta: ArrayLike, severity: float = 0.0) -> NDArray[np.float64]:
        """Fisher information, (n_theta, n_items): a^2 sum_k (W_k - W_{k+1})^2 / P_k, W = P*(1 - P*)."""
        t = np.atleast_1d(np.asarray(theta, dtype=float))[:, None, None]
        bnd = grm_boundaries(self.thresholds, self.n_levels)[None]
        with np.errstate(invalid="ignore"):
            z = self.a[None, :, None] * (t - bnd - severity)
        z = np.nan_to_num(z, nan=0.0, posinf=np.inf, neginf=-np.inf)
        cum = expit(z)
        w = cum * (1.0 - cum)
        p = np.clip(cum[..., :-1] - cum[..., 1:], EPS, 1.0)
        info = (w[..., :-1] - w[..., 1:]) ** 2 / p
        return (self.a[None, :] ** 2) * info.sum(axis=2)

    def loglik(self, theta: ArrayLike, item_idx: ArrayLike, score: ArrayLike,
               rater_idx: ArrayLike | None = None) -> NDArray[np.float64]:
        """Log-likelihood of responses ``score`` to items ``item_idx`` (scored by raters ``rater_idx``, -1 or
        None: no rater) at ``theta``, elementwise with broadcasting (``ItemModel``)."""
        j = np.asarray(item_idx)
        bnd = grm_boundaries(self.thresholds[j], self.n_levels[j])
        s = np.asarray(score, dtype=float)
        sev = self.rater_severity(rater_idx, j.shape)
        return grm_loglik(theta, s, self.a[j], bnd, self.n_levels[j], sev)


# mypy checks that ItemParams implements ItemModel (this assignment fails the type check otherwise).
_ITEM_PARAMS_IS_AN_ITEM_MODEL: type[ItemModel] = ItemParams
_GRADED_PARAMS_IS_AN_ITEM_MODEL: type[ItemModel] = GradedParams
