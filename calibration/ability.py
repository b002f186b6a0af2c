"""Ability estimates with error bars, and predicted scores with predictive intervals.

Three estimators for the answers a model gave to any subset of calibrated items (scores in [0, 1]):

- ``eap``: posterior mean on a fine theta grid; SE = posterior SD; interval = posterior quantiles.
  The prior is normal or the calibration's latent distribution (its density is interpolated onto the
  grid, so a coarse calibration grid does not make EAP coarse for steep items).
- ``map``: posterior mode under a normal prior (a grid prior is moment-matched to a normal);
  SE = 1 / sqrt(test information + 1 / prior variance); Wald interval.
- ``mle``: maximum likelihood on [lower, upper] (default [-6, 6]); SE = 1 / sqrt(test information);
  Wald interval.

Extreme patterns and the MLE (the documented rule). When the likelihood is monotone (all answers
correct, all wrong, or any pattern whose maximum lies outside the bounds) the MLE is infinite. We
never return that: the estimate is the bound the likelihood rises towards, ``bounded`` is True, the
interval is the likelihood-ratio set {theta in bounds: 2 (l_max - l(theta)) <= chi2_1(level)} (one-sided
in effect: it reaches the bound), and ``se`` is that interval's width / (2 z), a Wald-equivalent
figure. EAP and MAP are always finite because of the prior; prefer them for extreme patterns.

Every estimator runs through one vectorised batch path (sparse triplets in, arrays out): the
log-likelihood on the grid is a sparse (models x items) @ dense (items x nodes) product, so the
model x item matrix is never materialised.

Other item families (``calibration.irt.ItemModel``, e.g. the many-facet ``GradedParams``): the grid
log-likelihood is each response's ``params.loglik`` on the grid summed per model (responses x nodes, in
chunks), with the responses' raters (``rater_idx``) where the family has them, so a model's ability reads
its binary and its judged items together and every judge's verdict counts as a response (how far the judges
agree shows in the posterior). MAP and MLE there take Newton steps on numerical derivatives of ``loglik``,
their SE from the observed information.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2, norm

from adtbase.errors import InputError

from .honesty import draw_params as _draw_params
from .irt import EPS, ItemModel, ItemParams, clipped_log_probs, prob

METHODS = ("eap", "map", "mle")
DEFAULT_BOUNDS = (-6.0, 6.0)
DEFAULT_GRID_STEP = 0.025


def default_grid(bounds: tuple[float, float] = DEFAULT_BOUNDS, step: float = DEFAULT_GRID_STEP) -> NDArray:
    """Evenly spaced theta grid; fine enough for discriminations up to ~10 (P moves < 6% per step)."""
    lo, hi = bounds
    if not hi > lo:
        raise InputError(f"ability bounds must satisfy lower < upper, got {bounds}")
    return np.linspace(lo, hi, int(round((hi - lo) / step)) + 1)


@dataclass(frozen=True)
class Prior:
    """Ability prior: normal(mean, sd), or a discrete latent distribution (points, weights)."""

    mean: float = 0.0
    sd: float = 1.0
    points: NDArray | None = None
    weights: NDArray | None = None

    @classmethod
    def normal(cls, mean: float = 0.0, sd: float = 1.0) -> Prior:
        if not sd > 0:
            raise InputError(f"prior sd must be > 0, got {sd}")
        return cls(mean=float(mean), sd=float(sd))

    @classmethod
    def from_grid(cls, points: ArrayLike, weights: ArrayLike) -> Prior:
        """A latent distribution given as quadrature points and weights (e.g. an empirical histogram)."""
        x = np.asarray(points, dtype=float)
        w = np.asarray(weights, dtype=float)
        if x.ndim != 1 or x.shape != w.shape or x.size < 2:
            raise InputError(f"prior points/weights must be 1-D of equal length >= 2, got {x.shape} and {w.shape}")
        if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0 or np.any(np.diff(x) <= 0):
            raise InputError("prior weights must be finite, >= 0, not all 0, on increasing points")
        w = w / w.sum()
        mean = float(w @ x)
        sd = float(np.sqrt(w @ (x - mean) ** 2))
        return cls(mean=mean, sd=max(sd, 1e-6), points=x, weights=w)

    @classmethod
    def from_calibration(cls, result: Any) -> Prior:
        """The calibration's latent distribution (its ``quad_points`` and ``quad_weights``)."""
        return cls.from_grid(result.quad_points, result.quad_weights)

    @property
    def is_normal(self) -> bool:
        return self.points is None

    def log_density(self, grid: ArrayLike) -> NDArray:
        """Log prior density on ``grid`` (up to a constant); -inf outside a discrete prior's support."""
        g = np.asarray(grid, dtype=float)
        if self.points is None or self.weights is None:
            return -0.5 * ((g - self.mean) / self.sd) ** 2
        # Weight / cell width is the density at each point; linear interpolation in between.
        edges = np.concatenate([[self.points[0]], (self.points[1:] + self.points[:-1]) / 2, [self.points[-1]]])
        width = np.diff(edges)
        width[0] *= 2
        width[-1] *= 2
        dens = np.interp(g, self.points, self.weights / width, left=0.0, right=0.0)
        with np.errstate(divide="ignore"):
            return np.log(dens)


@dataclass(frozen=True)
class AbilityEstimate:
    """One model's ability: estimate, standard error, interval at ``level``, and how it was made."""

    theta: float
    se: float
    lo: float
    hi: float
    method: str
    n_items: int
    bounded: bool = False  # MLE of a pattern whose likelihood maximum lies at a bound (see module doc)
    level: float = 0.95


@dataclass(frozen=True)
class AbilityEstimates:
    """Batch of ability estimates, one entry per model index (arrays aligned)."""

    theta: NDArray
    se: NDArray
    lo: NDArray
    hi: NDArray
    n_items: NDArray
    bounded: NDArray
    method: str
    level: float = 0.95

    def __len__(self) -> int:
        return len(self.theta)

    def __getitem__(self, i: int) -> AbilityEstimate:
        return AbilityEstimate(float(self.theta[i]), float(self.se[i]), float(self.lo[i]), float(self.hi[i]),
                               self.method, int(self.n_items[i]), bool(self.bounded[i]), self.level)

    def to_frame(self, model_ids: ArrayLike | None = None) -> pd.DataFrame:
        df = pd.DataFrame({"theta": self.theta, "se": self.se, "lo": self.lo, "hi": self.hi,
                           "n_items": self.n_items, "bounded": self.bounded})
        df["method"] = self.method
        if model_ids is not None:
            df.index = pd.Index(list(np.asarray(model_ids, dtype=object)), name="model")
        return df


@dataclass(frozen=True)
class Posterior:
    """A discretised ability posterior: weights (summing to 1) on grid nodes."""

    grid: NDArray
    weights: NDArray

    @property
    def mean(self) -> float:
        return float(self.weights @ self.grid)

    @property
    def sd(self) -> float:
        return float(np.sqrt(max(float(self.weights @ (self.grid - self.mean) ** 2), 0.0)))

    def quantile(self, q: ArrayLike) -> NDArray:
        return _grid_quantiles(self.grid, self.weights[None, :], np.atleast_1d(np.asarray(q, dtype=float)))[0]


@dataclass(frozen=True)
class PredictedScore:
    """Predicted proportion correct on a slice, with a predictive interval at ``level``."""

    mean: float
    lo: float
    hi: float
    n_observed: int
    n_unanswered: int
    sd: float = float("nan")
    level: float = 0.95


# ---------------------------------------------------------------- validation and the grid likelihood


def _check_scores(scores: ArrayLike, what: str = "scores") -> NDArray:
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1:
        raise InputError(f"{what} must be 1-D, got shape {s.shape}")
    bad = np.flatnonzero(~np.isfinite(s) | (s < 0) | (s > 1))
    if bad.size:
        raise InputError(f"{what}[{bad[0]}] = {s[bad[0]]!r}: scores must be finite and within [0, 1]")
    return s


def _check_level(level: float) -> float:
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    return float(level)


def _check_triplets(model_idx: ArrayLike, item_idx: ArrayLike, scores: ArrayLike, n_items: int,
                    n_models: int | None) -> tuple[NDArray, NDArray, NDArray, int]:
    m = np.asarray(model_idx)
    j = np.asarray(item_idx)
    s = _check_scores(scores)
    if not (m.shape == j.shape == s.shape):
        raise InputError(f"model_idx, item_idx and scores must have equal length, got {m.shape}, {j.shape}, {s.shape}")
    if m.size and (not np.issubdtype(m.dtype, np.integer) or not np.issubdtype(j.dtype, np.integer)):
        raise InputError("model_idx and item_idx must be integer arrays")
    m = m.astype(np.int64)
    j = j.astype(np.int64)
    if j.size and (j.min() < 0 or j.max() >= n_items):
        bad = int(np.flatnonzero((j < 0) | (j >= n_items))[0])
        raise InputError(f"item_idx[{bad}] = {j[bad]} is outside the {n_items} items in params")
    if m.size and m.min() < 0:
        raise InputError(f"model_idx[{int(np.argmin(m))}] is negative")
    n = int(m.max()) + 1 if m.size else 0
    if n_models is not None:
        if n > n_models:
            raise InputError(f"model_idx holds {n - 1}, but n_models = {n_models}")
        n = int(n_models)
    return m, j, s, n


def _check_params(params: ItemModel) -> None:
    cols = params.columns()
    for name in cols if isinstance(params, ItemParams) else ("a",):
        v = cols[name]
        if not np.isfinite(v).all():
            bad = int(np.flatnonzero(~np.isfinite(v))[0])
            raise InputError(f"item {params.item_ids[bad]!r}: parameter {name} is not finite "
                             "(uncalibrated items cannot be used for ability estimation)")


_CHUNK = 1 << 14   # responses per block when a family's loglik is tabulated on the grid


def _grid_loglik(m: NDArray, j: NDArray, s: NDArray, n_models: int, params: ItemModel,
                 grid: NDArray, rater_idx: NDArray | None = None) -> NDArray:
    """Log-likelihood of every model at every grid node, shape (n_models, n_nodes)."""
    if not isinstance(params, ItemParams):
        out = np.zeros((n_models, grid.size))
        for k in range(0, m.size, _CHUNK):
            sl = slice(k, k + _CHUNK)
            r = None if rater_idx is None else rater_idx[sl]
            ll = _family_loglik(params, grid[:, None], j[sl], s[sl], r)      # nodes x responses
            np.add.at(out, m[sl], ll.T)
        return out
    used, jj = np.unique(j, return_inverse=True)  # only the items answered: a big bank stays cheap
    n_items = used.size
    a, b, c, d = (getattr(params, k)[used][:, None] for k in ("a", "b", "c", "d"))
    log_p, log_q = clipped_log_probs(grid[None, :], a, b, c, d)
    right = sp.csr_matrix((s, (m, jj)), shape=(n_models, n_items))
    wrong = sp.csr_matrix((1.0 - s, (m, jj)), shape=(n_models, n_items))
    return np.asarray(right @ log_p) + np.asarray(wrong @ log_q)


def _grid_quantiles(grid: NDArray, w: NDArray, q: NDArray) -> NDArray:
    """Quantiles of discrete distributions (rows of ``w``) on ``grid``, linearly interpolating the CDF."""
    cdf = np.cumsum(w, axis=1)
    cdf /= cdf[:, -1:]
    out = np.empty((w.shape[0], q.size))
    mid = (cdf - w / 2)  # CDF at node centres: treats each node as the centre of a cell
    for r in range(w.shape[0]):
        out[r] = np.interp(q, mid[r], grid)
    return out


def _family_loglik(params: ItemModel, theta: ArrayLike, j: NDArray, s: NDArray, r: NDArray | None) -> NDArray:
    if r is None:
        return params.loglik(theta, j, s)
    return params.loglik(theta, j, s, r)  # type: ignore[call-arg]  # a rater family's loglik takes raters


def _per_response_terms(theta_r: NDArray, s: NDArray, params: ItemModel, j: NDArray,
                        rater_idx: NDArray | None = None) -> tuple[NDArray, ...]:
    if not isinstance(params, ItemParams):   # another family: central differences of its loglik
        h = 1e-4
        lo, ll, hi = (_family_loglik(params, theta_r + d, j, s, rater_idx) for d in (-h, 0.0, h))
        return ll, (hi - lo) / (2 * h), -(hi - 2 * ll + lo) / (h * h)
    a, b, c, d = params.a[j], params.b[j], params.c[j], params.d[j]
    p = np.clip(prob(theta_r, a, b, c, d), EPS, 1 - EPS)
    dp = a * (p - c) * (d - p) / np.maximum(d - c, EPS)
    ll = s * np.log(p) + (1 - s) * np.log1p(-p)
    grad = (s - p) * dp / (p * (1 - p))
    info = dp**2 / (p * (1 - p))
    return ll, grad, info


# ---------------------------------------------------------------- batch estimation


def estimate_abilities(model_idx: ArrayLike, item_idx: ArrayLike, scores: ArrayLike, params: ItemModel,
                       method: str = "eap", *, n_models: int | None = None, prior: Prior | None = None,
                       grid: ArrayLike | None = None, bounds: tuple[float, float] = DEFAULT_BOUNDS,
                       level: float = 0.95, max_iter: int = 50, tol: float = 1e-7,
                       rater_idx: ArrayLike | None = None) -> AbilityEstimates:
    """Ability of many models at once from sparse triplets (``item_idx`` indexes ``params``).

    Models with no responses get the prior (EAP/MAP) or NaN (MLE; ``n_items`` is 0 there; with raters it
    counts responses). ``rater_idx``: each response's rater (-1 none), for a family with raters.
    """
    if method not in METHODS:
        raise InputError(f"unknown ability method {method!r}; choose one of {', '.join(METHODS)}")
    level = _check_level(level)
    _check_params(params)
    m, j, s, n = _check_triplets(model_idx, item_idx, scores, len(params), n_models)
    r = _check_raters(rater_idx, m.size, params)
    prior = prior or Prior.normal()
    g = default_grid(bounds) if grid is None else np.asarray(grid, dtype=float)
    if g.ndim != 1 or g.size < 3 or np.any(np.diff(g) <= 0):
        raise InputError("grid must be 1-D, increasing, with at least 3 nodes")
    z = float(norm.ppf(0.5 + level / 2))
    n_items = np.bincount(m, minlength=n).astype(np.int64)
    ll = _grid_loglik(m, j, s, n, params, g, r)

    if method == "eap":
        post = _normalise(ll + prior.log_density(g)[None, :])
        mean = post @ g
        sd = np.sqrt(np.maximum(post @ g**2 - mean**2, 0.0))
        q = _grid_quantiles(g, post, np.array([(1 - level) / 2, (1 + level) / 2]))
        return AbilityEstimates(mean, sd, q[:, 0], q[:, 1], n_items, np.zeros(n, bool), method, level)

    use_prior = method == "map"
    mu, var = prior.mean, prior.sd**2
    obj_grid = ll - (0.5 * (g[None, :] - mu) ** 2 / var if use_prior else 0.0)
    start = np.argmax(obj_grid, axis=1)
    theta = g[start].astype(float)
    # A maximum on the grid's edge means the (bounded) MLE sits at the bound: no Newton step there.
    at_edge = ((start == 0) | (start == g.size - 1)) & (not use_prior)
    theta = _newton(theta, m, j, s, n, params, mu, var, use_prior, ~at_edge, (g[0], g[-1]), max_iter, tol, r)
    _, _, info_r = _per_response_terms(theta[m], s, params, j, r)
    info = np.bincount(m, weights=info_r, minlength=n) + (1.0 / var if use_prior else 0.0)
    with np.errstate(divide="ignore"):
        se = 1.0 / np.sqrt(info)
    lo, hi = theta - z * se, theta + z * se
    bounded = at_edge | ((not use_prior) & ((theta <= g[0] + 1e-9) | (theta >= g[-1] - 1e-9)))
    if bounded.any():
        lo_b, hi_b = _lr_interval(ll[bounded], g, level)
        lo[bounded], hi[bounded] = lo_b, hi_b
        se[bounded] = (hi_b - lo_b) / (2 * z)
    empty = n_items == 0
    if empty.any():
        if use_prior:
            theta[empty], se[empty] = mu, np.sqrt(var)
            lo[empty], hi[empty] = mu - z * np.sqrt(var), mu + z * np.sqrt(var)
        else:
            theta[empty] = se[empty] = lo[empty] = hi[empty] = np.nan
            bounded[empty] = False
    return AbilityEstimates(theta, se, lo, hi, n_items, bounded, method, level)


def ability_posteriors(model_idx: ArrayLike, item_idx: ArrayLike, scores: ArrayLike, params: ItemParams, *,
                       n_models: int | None = None, prior: Prior | None = None,
                       grid: ArrayLike | None = None) -> tuple[NDArray, NDArray]:
    """Batch posteriors on a grid: (grid, weights) with weights of shape (n_models, n_nodes), rows sum to 1.

    ``weights @ prob_matrix(grid, items)`` is then each model's posterior-predictive probability of
    answering each item correctly.
    """
    _check_params(params)
    m, j, s, n = _check_triplets(model_idx, item_idx, scores, len(params), n_models)
    g = default_grid() if grid is None else np.asarray(grid, dtype=float)
    prior = prior or Prior.normal()
    return g, _normalise(_grid_loglik(m, j, s, n, params, g) + prior.log_density(g)[None, :])


def _normalise(logw: NDArray) -> NDArray:
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def _newton(theta: NDArray, m: NDArray, j: NDArray, s: NDArray, n: int, params: ItemModel, mu: float,
            var: float, use_prior: bool, active: NDArray, bounds: tuple[float, float], max_iter: int,
            tol: float, r: NDArray | None = None) -> NDArray:
    """Fisher scoring with step halving, vectorised over models; starts from the grid maximum."""
    def objective(t: NDArray) -> NDArray:
        ll_r, _, _ = _per_response_terms(t[m], s, params, j, r)
        out = np.bincount(m, weights=ll_r, minlength=n)
        return out - 0.5 * (t - mu) ** 2 / var if use_prior else out

    theta = theta.copy()
    current = objective(theta)
    active = active.copy()
    for _ in range(max_iter):
        if not active.any():
            break
        _, g_r, i_r = _per_response_terms(theta[m], s, params, j, r)
        grad = np.bincount(m, weights=g_r, minlength=n).astype(float)
        info = np.bincount(m, weights=i_r, minlength=n).astype(float)
        if use_prior:
            grad -= (theta - mu) / var
            info += 1.0 / var
        step = np.where(active, np.clip(grad / np.maximum(info, 1e-12), -1.0, 1.0), 0.0)
        for _ in range(8):  # halve the step where the objective got worse
            trial = np.clip(theta + step, *bounds)
            value = objective(trial)
            worse = value < current - 1e-12
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
        trial = np.clip(theta + step, *bounds)
        value = objective(trial)
        improve = value >= current - 1e-12
        theta = np.where(improve, trial, theta)
        current = np.where(improve, value, current)
        active &= np.abs(step) > tol
    return theta


def _lr_interval(ll: NDArray, grid: NDArray, level: float) -> tuple[NDArray, NDArray]:
    """Likelihood-ratio interval on the grid for rows of log-likelihood (used for bounded MLEs)."""
    crit = chi2.ppf(level, 1) / 2
    inside = ll >= ll.max(axis=1, keepdims=True) - crit
    lo = np.empty(ll.shape[0])
    hi = np.empty(ll.shape[0])
    for r in range(ll.shape[0]):
        idx = np.flatnonzero(inside[r])
        lo[r] = _crossing(grid, ll[r], ll[r].max() - crit, idx[0], -1)
        hi[r] = _crossing(grid, ll[r], ll[r].max() - crit, idx[-1], +1)
    return lo, hi


def _crossing(grid: NDArray, ll: NDArray, level: float, k: int, direction: int) -> float:
    """Where ll crosses ``level`` between node k (inside) and its neighbour outside, linearly."""
    k2 = k + direction
    if k2 < 0 or k2 >= grid.size:
        return float(grid[k])
    frac = (ll[k] - level) / max(ll[k] - ll[k2], 1e-300)
    return float(grid[k] + frac * (grid[k2] - grid[k]))


def _check_raters(rater_idx: ArrayLike | None, n: int, params: ItemModel) -> NDArray | None:
    if rater_idx is None:
        return None
    r = np.asarray(rater_idx)
    if r.shape != (n,) or (r.size and not np.issubdtype(r.dtype, np.integer)):
        raise InputError(f"rater_idx must hold one integer per response ({n}), got shape {r.shape}")
    if isinstance(params, ItemParams):
        if np.any(r >= 0):
            raise InputError("responses scored by raters need a rater model's parameters (e.g. --method facets)")
        return None
    n_r = len(getattr(params, "rater_ids", ()))
    if r.size and (r.min() < -1 or r.max() >= n_r):
        raise InputError(f"rater_idx holds {int(r.max())}, but the parameters know {n_r} raters")
    return r.astype(np.int64)


def abilities_for(responses: Any, params: ItemModel, method: str = "eap", *,
                  item_status: ArrayLike | None = None, prior: Prior | None = None,
                  level: float = 0.95, **kwargs: Any) -> AbilityEstimates:
    """Batch abilities for a ResponseSet, matching its items to ``params`` by item id.

    Responses to items without parameters, or whose ``item_status`` is not "calibrated" (items kept at
    their priors), are left out, so ``n_items`` counts the items that informed each estimate. Results
    are aligned with ``responses.model_ids``. Raters (``responses.rater_ids``) are matched to the
    parameters' raters by id; a rater the parameters do not know scores at severity 0 (the average rater).
    """
    for attr in ("model_idx", "item_idx", "score", "item_ids", "model_ids"):
        if not hasattr(responses, attr):
            raise InputError(f"responses must be a ResponseSet (missing attribute {attr!r})")
    pos = {k: i for i, k in enumerate(params.item_ids)}
    usable = np.ones(len(params), bool)
    if item_status is not None:
        st = np.asarray(item_status)
        if st.shape != (len(params),):
            raise InputError(f"item_status has shape {st.shape}, expected ({len(params)},)")
        usable = st == "calibrated"
    remap = np.array([pos.get(k, -1) for k in responses.item_ids], dtype=np.int64)
    j = remap[np.asarray(responses.item_idx, dtype=np.int64)]
    keep = j >= 0
    keep[keep] = usable[j[keep]]
    raters = getattr(responses, "rater_idx", None)
    if raters is not None and isinstance(params, ItemParams):
        _check_raters(np.asarray(raters)[keep], int(keep.sum()), params)   # refuses judged responses
        raters = None
    if raters is not None:
        known = {k: i for i, k in enumerate(getattr(params, "rater_ids", ()))}
        r_map = np.array([known.get(k, -1) for k in responses.rater_ids] + [-1], dtype=np.int64)
        raters = r_map[np.asarray(raters, dtype=np.int64)][keep]     # -1 stays -1 (last entry)
    return estimate_abilities(np.asarray(responses.model_idx, dtype=np.int64)[keep], j[keep],
                              np.asarray(responses.score, dtype=float)[keep], params, method,
                              n_models=len(responses.model_ids), prior=prior, level=level, rater_idx=raters,
                              **kwargs)


# ---------------------------------------------------------------- one model


def estimate_ability(scores: ArrayLike, params: ItemParams, method: str = "eap", *, prior: Prior | None = None,
                     grid: ArrayLike | None = None, bounds: tuple[float, float] = DEFAULT_BOUNDS,
                     level: float = 0.95) -> AbilityEstimate:
    """Ability of one model from its scores on the items of ``params`` (aligned, one score per item)."""
    s = _check_scores(scores)
    if s.size != len(params):
        raise InputError(f"{s.size} scores for {len(params)} items: scores and params must be aligned")
    if s.size == 0 and method == "mle":
        raise InputError("MLE needs at least one answered item")
    idx = np.arange(s.size)
    est = estimate_abilities(np.zeros(s.size, np.int64), idx, s, params, method, n_models=1, prior=prior,
                             grid=grid, bounds=bounds, level=level)
    return est[0]


def ability_posterior(scores: ArrayLike, params: ItemParams, *, prior: Prior | None = None,
                      grid: ArrayLike | None = None) -> Posterior:
    """The discretised posterior of one model's ability given its scores (aligned with ``params``)."""
    s = _check_scores(scores)
    if s.size != len(params):
        raise InputError(f"{s.size} scores for {len(params)} items: scores and params must be aligned")
    _check_params(params)
    prior = prior or Prior.normal()
    g = default_grid() if grid is None else np.asarray(grid, dtype=float)
    ll = _grid_loglik(np.zeros(s.size, np.int64), np.arange(s.size), s, 1, params, g)
    return Posterior(g, _normalise(ll + prior.log_density(g)[None, :])[0])


# ---------------------------------------------------------------- predicted score


def predict_score(observed_scores: ArrayLike, observed_params: ItemParams, unanswered_params: ItemParams,
                  ability: Posterior | AbilityEstimate | None = None, level: float = 0.95, *,
                  prior: Prior | None = None, grid: ArrayLike | None = None,
                  param_se: dict[str, ArrayLike] | None = None, observed_param_se: dict[str, ArrayLike] | None = None,
                  n_param_draws: int = 0, rng: np.random.Generator | None = None,
                  exact_max: int = 600) -> PredictedScore:
    """Predicted proportion correct on a slice = observed answers + the items not answered.

    The number correct X on the unanswered items has a predictive distribution that is a mixture,
    over the ability posterior's grid nodes, of Poisson-binomials (exact for up to ``exact_max`` items,
    a continuity-corrected normal per node above). The interval is that mixture's quantiles, so it holds
    both the ability uncertainty and the Bernoulli variance of the unanswered items.

    ``ability``: a Posterior, or an AbilityEstimate (taken as normal(theta, se)), or None: the posterior
    is then computed from the observed answers under ``prior``. With ``n_param_draws`` > 0 the item
    parameters are also drawn from their standard errors (``param_se`` for the unanswered items,
    ``observed_param_se`` for the observed; a > 0 and c, d are drawn on log / logit scales) and the
    posterior is recomputed for each draw; this needs ``ability=None`` and an ``rng``.
    """
    level = _check_level(level)
    s = _check_scores(observed_scores, "observed_scores")
    if s.size != len(observed_params):
        raise InputError(f"{s.size} observed scores for {len(observed_params)} observed items: must be aligned")
    _check_params(unanswered_params)
    n_obs, n_un = s.size, len(unanswered_params)
    if n_obs + n_un == 0:
        raise InputError("predict_score needs at least one item in the slice")
    g = default_grid() if grid is None else np.asarray(grid, dtype=float)
    prior = prior or Prior.normal()
    observed_total = float(s.sum())

    if n_param_draws > 0:
        if ability is not None:
            raise InputError("parameter draws recompute the ability posterior: pass ability=None and a prior")
        if rng is None:
            raise InputError("parameter draws need an rng (numpy.random.Generator)")
        if param_se is None:
            raise InputError("parameter draws need param_se (standard errors of the unanswered items)")
        draws = [(_draw_params(observed_params, observed_param_se, rng), _draw_params(unanswered_params, param_se, rng))
                 for _ in range(n_param_draws)]
    else:
        draws = [(observed_params, unanswered_params)]

    pmf = np.zeros(n_un + 1)
    for obs_p, un_p in draws:
        if ability is None:
            post = ability_posterior(s, obs_p, prior=prior, grid=g)
        elif isinstance(ability, Posterior):
            post = ability
        elif isinstance(ability, AbilityEstimate):
            post = _normal_posterior(ability, g)
        else:
            raise InputError(f"ability must be a Posterior, an AbilityEstimate or None, got {type(ability).__name__}")
        pmf += _mixture_pmf(post, un_p, exact_max)
    pmf /= pmf.sum()

    k = np.arange(n_un + 1)
    mean_x = float(pmf @ k)
    sd_x = float(np.sqrt(max(float(pmf @ k**2) - mean_x**2, 0.0)))
    cdf = np.cumsum(pmf)
    q_lo = int(np.searchsorted(cdf, (1 - level) / 2 - 1e-12))
    q_hi = int(np.searchsorted(cdf, (1 + level) / 2 - 1e-12))
    total = n_obs + n_un
    return PredictedScore(mean=(observed_total + mean_x) / total, lo=(observed_total + q_lo) / total,
                          hi=(observed_total + min(q_hi, n_un)) / total, n_observed=n_obs, n_unanswered=n_un,
                          sd=sd_x / total, level=level)


def _normal_posterior(est: AbilityEstimate, grid: NDArray) -> Posterior:
    if not (np.isfinite(est.theta) and np.isfinite(est.se) and est.se > 0):
        raise InputError(f"ability estimate has no finite theta/se ({est.theta}, {est.se})")
    w = norm.pdf(grid, est.theta, est.se)
    if w.sum() <= 0:
        w = np.zeros_like(grid)
        w[np.argmin(np.abs(grid - est.theta))] = 1.0
    return Posterior(grid, w / w.sum())


def _mixture_pmf(post: Posterior, params: ItemParams, exact_max: int) -> NDArray:
    """PMF of the number correct on ``params`` items, mixed over the posterior's nodes."""
    n = len(params)
    keep = post.weights > post.weights.max() * 1e-10
    w = post.weights[keep] / post.weights[keep].sum()
    if n == 0:
        return np.ones(1)
    p = np.clip(prob(post.grid[keep][:, None], params.a, params.b, params.c, params.d), 0.0, 1.0)
    if n <= exact_max:
        # Poisson-binomial by the convolution recursion, all nodes at once.
        dist = np.zeros((p.shape[0], n + 1))
        dist[:, 0] = 1.0
        for i in range(n):
            pi = p[:, i : i + 1]
            dist[:, 1 : i + 2] = dist[:, 1 : i + 2] * (1 - pi) + dist[:, : i + 1] * pi
            dist[:, 0] *= 1 - pi[:, 0]
        return w @ dist
    mu = p.sum(axis=1)
    sd = np.sqrt(np.maximum((p * (1 - p)).sum(axis=1), 1e-12))
    edges = np.arange(-1, n + 1) + 0.5  # continuity correction: mass of k is in (k - 1/2, k + 1/2]
    cdf = norm.cdf((edges[None, :] - mu[:, None]) / sd[:, None])
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0
    return w @ np.diff(cdf, axis=1)
