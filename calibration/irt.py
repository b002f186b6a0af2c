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

    ``ItemParams`` (the 4PL and its special cases, every calibration today) is the one implementation. A
    polytomous model (graded response: an item with K ordered categories is scored k / (K - 1), which
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


# mypy checks that ItemParams implements ItemModel (this assignment fails the type check otherwise).
_ITEM_PARAMS_IS_AN_ITEM_MODEL: type[ItemModel] = ItemParams
