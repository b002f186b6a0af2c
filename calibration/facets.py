"""Many-facet graded response calibration: binary and graded items on one scale, with judge severities.

Model (``calibration.irt``, ``GradedParams``): Samejima's graded response model. An item with K levels
(scored k / (K - 1)) has a discrimination a and ordered thresholds b_1 < ... < b_{K-1}; a rater's
severity s_r shifts every threshold of every item it scores:
``P(level >= k | theta, r) = logistic(a (theta - b_k - s_r))``. A binary item (K = 2, no rater) is the
2PL, so a mixed bank (rule-scored items and judge-scored ones) is one fit on one theta scale.

Why graded response rather than generalized partial credit: the GRM's thresholds are ordered by
construction (b_k is where a level >= k becomes likelier than not), so a rubric level that judges seldom
use gives a threshold near its neighbour instead of the disordered, hard-to-read steps of the GPCM; a
severity is then a plain shift of every boundary; and the K = 2 case is the 2PL the bank already uses.

Identification: the ability scale is the latent N(0, 1) (as ``fit_mml`` without anchors); the severities
sum to zero over the fit's raters, so thresholds are those of the average rater and no judge is privileged
(a reference rater would tie the scale to whichever judge was picked, maybe one that scored few items). A
response with no rater (a rule score, a panel's combined score) is scored at severity 0, the average
rater's. With one rater its severity is 0 by that rule (not identifiable apart from the thresholds).

Fitting: marginal maximum likelihood on the MML fitter's grid (61 nodes on [-6, 6], latent N(0, 1), the
same priors: log a ~ N(0, 1), each threshold ~ N(0, 3); severities ~ N(0, 3), a penalty that only keeps a
judge who gives every answer the top level finite). The data enter as *cells* (item, rater, level): a
sparse models x cells weight matrix W (a score between two levels splits its weight over both), so the
per-model log-likelihood on the nodes is ``W @ log P`` (cells x nodes), the E-step of ``calibration.mml``
with cells in place of items. The severities couple every judged item, so the EM's per-item M-step does not
decouple; instead L-BFGS-B climbs the exact marginal log-posterior, whose gradient is the posterior-expected
complete-data gradient (Fisher's identity: the expected counts ``N = W' @ post`` times d log P). Convergence
is the optimiser's (its message, iterations and final projected gradient are in ``settings``).

Standard errors: per item block (a, b_1..b_{K-1}) and for the severities, the cross-product of the models'
score vectors (each model is an independent unit; its score is the posterior mean of its complete-data
score) plus the prior's information; severities through the sum-to-zero constraint. Like the MML fitter's
itemwise SEs they leave out cross-block covariance. Items kept at the prior (unanswered, every response at
the top or bottom level) are out of the likelihood, as in ``fit_mml``.

Judges' uncertainty in abilities: each judge's verdict is a separate response in the likelihood, so a
model's posterior reflects how far its judges agree; they are taken as independent given the ability (the
many-facet assumption), which overstates the information of several judges reading one answer (see the
report of issue 15: a hierarchical rater model would share one latent quality per answer).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.optimize import minimize
from scipy.special import expit, logit, logsumexp

from adtbase.errors import InputError

from .data import ResponseSet
from .fitters import FitSettings, Fitter
from .irt import EPS, GradedParams, grm_boundaries
from .mml.curves import _HI, _LO, _normal_logw, _Priors
from .result import CalibrationResult, item_status

_CHUNK = 1 << 16            # response entries per chunk when gathering per-model scores (SEs)
_LOG_GAP = (-7.0, 3.0)      # bounds of log(b_{k+1} - b_k): levels may merge, never cross


@dataclass(frozen=True)
class _Cells:
    """The data as cells (item, rater, level) and the models x cells weight matrix."""

    item: NDArray[np.int64]     # per cell
    rater: NDArray[np.int64]    # -1: no rater
    level: NDArray[np.int64]
    W: sparse.csr_array         # models x cells
    entry_model: NDArray[np.int64]   # the nonzeros of W, for per-model scores
    entry_cell: NDArray[np.int64]
    entry_weight: NDArray[np.float64]


def _cells(rs: ResponseSet, n_levels: NDArray, used: NDArray) -> _Cells:
    keep = used[rs.item_idx]
    m, j, s = rs.model_idx[keep].astype(np.int64), rs.item_idx[keep].astype(np.int64), rs.score[keep]
    r = (rs.rater_idx[keep].astype(np.int64) if rs.rater_idx is not None else np.full(m.size, -1, np.int64))
    k = n_levels[j]
    pos = s * (k - 1)
    low = np.clip(np.floor(pos + 1e-9).astype(np.int64), 0, k - 2)
    frac = np.clip(pos - low, 0.0, 1.0)
    up = frac > 1e-12
    mm = np.concatenate([m, m[up]])
    jj = np.concatenate([j, j[up]])
    rr = np.concatenate([r, r[up]])
    ll = np.concatenate([low, low[up] + 1])
    ww = np.concatenate([1.0 - frac, frac[up]])
    nz = ww > 1e-12
    mm, jj, rr, ll, ww = mm[nz], jj[nz], rr[nz], ll[nz], ww[nz]
    kmax = int(n_levels.max(initial=2))
    n_r = len(rs.rater_ids) + 1
    key = (jj * n_r + (rr + 1)) * kmax + ll
    uniq, cell = np.unique(key, return_inverse=True)
    W = sparse.csr_array((ww, (mm, cell)), shape=(rs.n_models, uniq.size))
    return _Cells(uniq // kmax // n_r, uniq // kmax % n_r - 1, uniq % kmax, W, mm, cell.astype(np.int64), ww)


class _Layout:
    """Where each free parameter sits in the optimiser's vector: per free item log a, b_1, then
    log(b_{k+1} - b_k); then the free severities (one fewer than the raters, sum to zero)."""

    def __init__(self, free: NDArray, n_levels: NDArray, n_raters: int) -> None:
        self.free = np.flatnonzero(free)
        self.n_levels = n_levels
        k = n_levels[self.free]
        self.offset = np.concatenate([[0], np.cumsum(k)])[:-1]          # per free item: K slots
        self.n_item_par = int(k.sum())
        self.gap_item = np.repeat(np.arange(self.free.size), np.maximum(k - 2, 0))
        self.gap_pos = np.concatenate([np.arange(n - 2) for n in k]) if k.size else np.zeros(0, np.int64)
        self.gap_slot = (self.offset[self.gap_item] + 2 + self.gap_pos).astype(np.int64)
        self.n_raters = n_raters
        self.n_eta = max(n_raters - 1, 0)
        self.size = self.n_item_par + self.n_eta
        # sum-to-zero: s = J eta
        self.J = np.vstack([np.eye(self.n_eta), -np.ones((1, self.n_eta))]) if n_raters > 1 else np.zeros((n_raters, 0))

    def bounds(self) -> list[tuple[float, float]]:
        lo = np.full(self.size, -15.0)
        hi = np.full(self.size, 15.0)
        lo[self.offset], hi[self.offset] = _LO["a"], _HI["a"]
        lo[self.offset + 1], hi[self.offset + 1] = _LO["b"], _HI["b"]
        lo[self.gap_slot], hi[self.gap_slot] = _LOG_GAP
        return list(zip(lo.tolist(), hi.tolist(), strict=True))

    def scale(self, c: _Cells) -> NDArray:
        """sqrt(responses / 4) per coordinate: its item's (a response carries at most 1/4 of a logit's
        information) or, for the free severities, the judges' (at least 1)."""
        per_item = np.bincount(c.item[c.entry_cell], weights=c.entry_weight, minlength=self.n_levels.size)
        sc = np.ones(self.size)
        counts = per_item[self.free]
        sc[:self.n_item_par] = np.repeat(np.sqrt(np.maximum(counts, 1.0) / 4.0), self.n_levels[self.free])
        if self.n_eta:
            rated = c.rater[c.entry_cell]
            per_rater = np.bincount(rated[rated >= 0], weights=c.entry_weight[rated >= 0], minlength=self.n_raters)
            sc[self.n_item_par:] = np.sqrt(np.maximum(per_rater[:-1], 1.0) / 4.0)
        return sc

    def decode(self, v: NDArray, a: NDArray, t: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """Natural parameters: a, thresholds (held items keep theirs) and severities from ``v``."""
        a, t = a.copy(), t.copy()
        f = self.free
        a[f] = np.exp(v[self.offset])
        gaps = np.zeros((f.size, max(t.shape[1] - 1, 0)))
        gaps[self.gap_item, self.gap_pos] = np.exp(v[self.gap_slot])
        tf = v[self.offset + 1][:, None] + np.concatenate([np.zeros((f.size, 1)), np.cumsum(gaps, axis=1)], axis=1)
        live = np.arange(t.shape[1])[None, :] < self.n_levels[f][:, None] - 1
        t[f] = np.where(live, tf, np.nan)
        sev = self.J @ v[self.n_item_par:] if self.n_raters > 1 else np.zeros(self.n_raters)
        return a, t, sev

    def encode(self, a: NDArray, t: NDArray, sev: NDArray) -> NDArray:
        v = np.zeros(self.size)
        f = self.free
        v[self.offset] = np.log(a[f])
        v[self.offset + 1] = t[f, 0]
        v[self.gap_slot] = np.log(np.maximum(t[f][self.gap_item, self.gap_pos + 1] - t[f][self.gap_item, self.gap_pos],
                                             math.exp(_LOG_GAP[0])))
        v[self.n_item_par:] = sev[:-1] if self.n_raters > 1 else v[self.n_item_par:]
        return v

    def chain(self, ga: NDArray, gt: NDArray, gsev: NDArray, a: NDArray, v: NDArray) -> NDArray:
        """The gradient on ``v`` from gradients on the natural a, thresholds and severities."""
        f = self.free
        g = np.zeros(self.size)
        g[self.offset] = ga[f] * a[f]
        gtf = np.nan_to_num(gt[f])
        g[self.offset + 1] = gtf.sum(axis=1)
        tail = np.cumsum(gtf[:, ::-1], axis=1)[:, ::-1]          # tail[:, k] = sum of gt over k' >= k
        g[self.gap_slot] = np.exp(v[self.gap_slot]) * tail[self.gap_item, self.gap_pos + 1]
        if self.n_raters > 1:
            g[self.n_item_par:] = self.J.T @ gsev
        return g


def _cell_curves(c: _Cells, a: NDArray, t: NDArray, n_levels: NDArray, sev: NDArray,
                 x: NDArray) -> tuple[NDArray, ...]:
    """Per cell and node: P(level), and the derivative pieces of log P on a (not log a), the lower and
    the upper boundary (the severity's is their sum)."""
    bnd = grm_boundaries(t, n_levels)
    j = c.item
    s_full = np.concatenate([sev, [0.0]])
    s = s_full[np.where(c.rater < 0, sev.size, c.rater)]
    aj = a[j][:, None]
    has_lo = c.level > 0
    has_up = c.level < n_levels[j] - 1
    bl = np.where(has_lo, bnd[j, c.level], 0.0)
    bu = np.where(has_up, bnd[j, c.level + 1], 0.0)
    dl = x[None, :] - (bl + s)[:, None]
    du = x[None, :] - (bu + s)[:, None]
    zl, zu = aj * dl, aj * du
    pl = np.where(has_lo[:, None], expit(zl), 1.0)
    pu = np.where(has_up[:, None], expit(zu), 0.0)
    ql = np.where(has_lo[:, None], expit(-zl), 0.0)        # 1 - pl without cancellation
    qu = np.where(has_up[:, None], expit(-zu), 1.0)
    p = np.where(zl > 0, qu - ql, pl - pu)
    p = np.clip(p, EPS, 1.0)
    wl = pl * ql
    wu = pu * qu
    d_a = (wl * np.where(has_lo[:, None], dl, 0.0) - wu * np.where(has_up[:, None], du, 0.0)) / p
    d_lo = -aj * wl / p
    d_up = aj * wu / p
    return p, d_a, d_lo, d_up


class _Objective:
    """Negative marginal log-posterior and its gradient (Fisher's identity) on the optimiser's vector."""

    def __init__(self, c: _Cells, lay: _Layout, n_levels: NDArray, a0: NDArray, t0: NDArray, x: NDArray,
                 logw: NDArray, priors: _Priors, prior_sev: tuple[float, float], has_obs: NDArray) -> None:
        self.c, self.lay, self.n_levels, self.a0, self.t0 = c, lay, n_levels, a0, t0
        self.x, self.logw, self.priors, self.prior_sev, self.has_obs = x, logw, priors, prior_sev, has_obs
        # Dense BLAS where the models x cells matrix is nearly full (as ``calibration.mml.ops`` chooses).
        n_cells = c.W.shape[0] * c.W.shape[1]
        self.Wd: NDArray | None = c.W.toarray() if c.W.nnz >= 0.3 * n_cells and n_cells <= 10_000_000 else None
        self.WT = c.W.T.tocsr()
        self.n_eval = 0

    def state(self, v: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        return self.lay.decode(v, self.a0, self.t0)

    def posterior(self, v: NDArray) -> tuple[NDArray, NDArray, float, tuple[NDArray, ...]]:
        a, t, sev = self.state(v)
        curves = _cell_curves(self.c, a, t, self.n_levels, sev, self.x)
        logp = np.log(curves[0])
        L = (self.Wd @ logp if self.Wd is not None else np.asarray(self.c.W @ logp)) + self.logw[None, :]
        ll_m = logsumexp(L, axis=1)
        post = np.exp(L - ll_m[:, None])
        loglik = float(ll_m[self.has_obs].sum())
        return post, ll_m, loglik, curves

    def log_prior(self, v: NDArray) -> tuple[float, NDArray, NDArray, NDArray]:
        a, t, sev = self.state(v)
        f = self.lay.free
        tf = t[f]
        live = np.isfinite(tf)
        lp = float(self.priors.logp("a", a[f]).sum()) + float(self.priors.logp("b", tf[live]).sum())
        ga = np.zeros_like(a)
        ga[f] = -(np.log(a[f]) - self.priors.a[0]) / self.priors.a[1] ** 2 / a[f]
        gt = np.zeros_like(t)
        gt[f] = np.where(live, -(tf - self.priors.b[0]) / self.priors.b[1] ** 2, 0.0)
        mu, sd = self.prior_sev
        lp += float(-((sev - mu) ** 2).sum() / (2 * sd * sd))
        return lp, ga, gt, -(sev - mu) / (sd * sd)

    def __call__(self, v: NDArray) -> tuple[float, NDArray]:
        self.n_eval += 1
        post, _, loglik, (p, d_a, d_lo, d_up) = self.posterior(v)
        N = self.Wd.T @ post if self.Wd is not None else np.asarray(self.WT @ post)   # cells x nodes: counts
        g_a_cell = (N * d_a).sum(axis=1)
        g_lo_cell = (N * d_lo).sum(axis=1)
        g_up_cell = (N * d_up).sum(axis=1)
        a, t, sev = self.state(v)
        ga, gt, gs = self._scatter(g_a_cell, g_lo_cell, g_up_cell, a.size, t.shape, sev.size)
        lp, pa, pt, ps = self.log_prior(v)
        g = self.lay.chain(ga + pa, gt + pt, gs + ps, a, v)
        return -(loglik + lp), -g

    def _scatter(self, g_a: NDArray, g_lo: NDArray, g_up: NDArray, n: int, tshape: tuple[int, ...],
                 n_r: int) -> tuple[NDArray, NDArray, NDArray]:
        c = self.c
        ga = np.bincount(c.item, weights=g_a, minlength=n)
        gt = np.zeros(tshape)
        lo = c.level > 0
        np.add.at(gt, (c.item[lo], c.level[lo] - 1), g_lo[lo])
        up = c.level < self.n_levels[c.item] - 1
        np.add.at(gt, (c.item[up], c.level[up]), g_up[up])
        rated = c.rater >= 0
        gs = np.bincount(c.rater[rated], weights=(g_lo + g_up)[rated], minlength=n_r)
        return ga, gt, gs


def _start(rs: ResponseSet, n_levels: NDArray, kmax: int, priors: _Priors) -> tuple[NDArray, NDArray]:
    """a = the prior median; thresholds from each item's share of responses at or above each level
    (the logit, widened by the usual 1.7-ish factor for a = 1), kept ordered."""
    n = rs.n_items
    a = np.full(n, priors.start("a"))
    t = np.full((n, kmax - 1), np.nan)
    lev = np.round(rs.score * (n_levels[rs.item_idx] - 1))
    cnt = np.maximum(np.bincount(rs.item_idx, minlength=n), 1)
    for k in range(1, kmax):
        share = np.bincount(rs.item_idx, weights=(lev >= k).astype(float), minlength=n) / cnt
        t[:, k - 1] = -1.3 * logit(np.clip(share, 0.02, 0.98))
    live = np.arange(kmax - 1)[None, :] < n_levels[:, None] - 1
    t = np.where(live, t, np.nan)
    for k in range(1, kmax - 1):      # ordered, at least 0.05 apart
        t[:, k] = np.where(live[:, k], np.maximum(t[:, k], t[:, k - 1] + 0.05), np.nan)
    return a, t


def _check_levels(n_levels: ArrayLike | None, n_items: int) -> NDArray:
    if n_levels is None:
        return np.full(n_items, 2, dtype=np.int64)
    k = np.asarray(n_levels)
    if k.shape != (n_items,):
        raise InputError(f"n_levels: one level count per item needed ({n_items}), got shape {k.shape}")
    kf = k.astype(float)
    bad = ~np.isfinite(kf) | (kf < 2) | (kf != np.round(kf))
    if bad.any():
        raise InputError(f"n_levels[{int(np.argmax(bad))}] = {k[bad][0]!r}: a level count is an integer >= 2")
    return kf.astype(np.int64)


def fit_facets(responses: ResponseSet, n_levels: ArrayLike | None = None, *,
               rng: np.random.Generator | None = None, seed: int | None = None, n_quad: int = 61,
               theta_range: tuple[float, float] = (-6.0, 6.0), prior_a: tuple[float, float] = (0.0, 1.0),
               prior_b: tuple[float, float] = (0.0, 3.0), prior_severity: tuple[float, float] = (0.0, 3.0),
               max_iter: int = 2000, gtol: float = 1e-5, compute_se: bool = True) -> CalibrationResult:
    """Fit the many-facet GRM (module docstring) by marginal maximum likelihood.

    responses   (model, item, score) triplets, with ``rater_idx`` for judged responses (-1: no rater).
    n_levels    K per item, aligned with ``responses.item_ids`` (None: every item binary). It is the
                rubric's level count, not the levels seen: a level nobody reached still has its threshold
                (held near its neighbour, or by the prior at the ends).
    rng, seed   nothing is drawn (deterministic starts); ``seed`` is recorded.
    The rest as ``fit_mml``; ``prior_severity`` is (mean, sd) of each severity.
    """
    t0 = time.perf_counter()
    if n_quad < 11:
        raise InputError(f"n_quad must be at least 11, got {n_quad}")
    lo, hi = theta_range
    if not hi > lo:
        raise InputError(f"theta_range must be increasing, got {theta_range}")
    for name, (_, sd) in (("prior_a", prior_a), ("prior_b", prior_b), ("prior_severity", prior_severity)):
        if not sd > 0:
            raise InputError(f"{name}: the sd must be positive, got {sd}")
    if max_iter < 2:
        raise InputError(f"max_iter must be at least 2, got {max_iter}")
    k = _check_levels(n_levels, responses.n_items)
    kmax = int(k.max(initial=2))
    priors = _Priors(tuple(map(float, prior_a)), tuple(map(float, prior_b)),  # type: ignore[arg-type]
                     (5.0, 17.0), (12.0, 2.0))
    x = np.linspace(lo, hi, n_quad)
    logw = _normal_logw(x, 0.0, 1.0)
    status = item_status(responses)
    free = status == "calibrated"
    n_r = len(responses.rater_ids)
    cells = _cells(responses, k, free)
    lay = _Layout(free, k, n_r)
    a0, t_start = _start(responses, k, kmax, priors)
    held = ~free       # kept at the prior: a = its median, thresholds spread around the prior mean of b
    t_start[held] = np.where(np.isfinite(t_start[held]), 0.0, np.nan)
    for j in np.flatnonzero(held):
        t_start[j, :k[j] - 1] = priors.b[0] + np.linspace(-1.0, 1.0, k[j] - 1) * (k[j] > 2)
    has_obs = np.asarray(cells.W.sum(axis=1)).ravel() > 0
    obj = _Objective(cells, lay, k, a0, t_start, x, logw, priors, tuple(map(float, prior_severity)),  # type: ignore[arg-type]
                     has_obs)
    v0 = lay.encode(a0, t_start, np.zeros(n_r))
    # Diagonal preconditioning: each coordinate scaled by the root of its response count (an item's
    # information grows with its answers, a judge's with its verdicts), so the first quasi-Newton steps are
    # about the right length everywhere; L-BFGS then needs far fewer iterations.
    scale = lay.scale(cells)
    bounds = [(lo_ * sc, hi_ * sc) for (lo_, hi_), sc in zip(lay.bounds(), scale, strict=True)]

    def scaled(u: NDArray) -> tuple[float, NDArray]:
        f_, g_ = obj(u / scale)
        return f_, g_ / scale

    opt = minimize(scaled, v0 * scale, jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": max_iter, "maxfun": 4 * max_iter, "ftol": 1e-13, "gtol": gtol})
    v = opt.x / scale
    a, t, sev = obj.state(v)
    post, ll_m, loglik, curves = obj.posterior(v)
    theta = post @ x
    theta_se = np.sqrt(np.maximum(post @ (x * x) - theta**2, 0.0))
    wts = np.exp(logw)
    m0 = float(wts @ x)
    theta[~has_obs] = m0
    theta_se[~has_obs] = math.sqrt(float(wts @ (x - m0) ** 2))
    se_items, se_sev = (_standard_errors(cells, lay, post, curves, a, t, k, priors, prior_sev=prior_severity)
                        if compute_se else (np.full((responses.n_items, kmax), np.nan), np.full(n_r, np.nan)))
    rated = np.zeros(n_r, bool)
    rated[cells.rater[cells.rater >= 0]] = True
    se_sev = np.where(rated, se_sev, np.nan)
    proj_grad = _projected_gradient(obj(v)[1], v, lay.bounds())
    converged = bool(opt.success)
    lp = -float(opt.fun)
    n_par = lay.size
    n_eff = max(int(has_obs.sum()), 1)
    params = GradedParams(responses.item_ids, a, t, k, responses.rater_ids, sev)
    se = {"a": se_items[:, 0]} | {f"b{q + 1}": se_items[:, q + 1] for q in range(kmax - 1)}
    settings: dict[str, Any] = {
        "method": "facets", "model": "grm", "family": "grm", "seed": seed, "n_quad": n_quad,
        "theta_range": [lo, hi], "latent": "normal", "prior_a": list(priors.a), "prior_b": list(priors.b),
        "prior_severity": list(prior_severity), "identification": "severities sum to zero; latent N(0, 1)",
        "optimizer": "L-BFGS-B on the marginal log-posterior (Fisher-identity gradient)",
        "optimizer_message": str(opt.message), "n_evaluations": obj.n_eval, "final_projected_gradient": proj_grad,
        "max_iter": max_iter, "gtol": gtol, "se_method": "xpd_itemwise" if compute_se else None,
        "n_levels": {int(q): int((k == q).sum()) for q in np.unique(k)},
        "raters": [{"rater": r, "severity": float(sev[i]), "se": float(se_sev[i]),
                    "n_responses": int((responses.rater_idx == i).sum()) if responses.rater_idx is not None else 0}
                   for i, r in enumerate(responses.rater_ids)],
        "seconds": round(time.perf_counter() - t0, 4), "n_models": responses.n_models,
        "n_items": responses.n_items, "n_obs_used": int(cells.entry_weight.size),
    }
    return CalibrationResult(
        params=params, se=se, item_status=status, theta=theta, theta_se=theta_se,  # type: ignore[arg-type]
        quad_points=x, quad_weights=wts, loglik=loglik, n_iter=int(opt.nit), converged=converged,
        settings=settings, aic=-2 * loglik + 2 * n_par, bic=-2 * loglik + n_par * math.log(n_eff),
        n_params=int(n_par), model_ids=responses.model_ids, fixed=np.zeros(responses.n_items, bool),
        log_posterior=lp, n_obs=responses.n_obs, method="facets")


def _projected_gradient(g: NDArray, v: NDArray, bounds: Sequence[tuple[float, float]]) -> float:
    """Largest gradient component not pushing against an active bound (L-BFGS-B's stopping figure)."""
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    stuck = ((v <= lo + 1e-10) & (g > 0)) | ((v >= hi - 1e-10) & (g < 0))
    return float(np.max(np.abs(np.where(stuck, 0.0, g)), initial=0.0))


def _standard_errors(c: _Cells, lay: _Layout, post: NDArray, curves: tuple[NDArray, ...], a: NDArray, t: NDArray,
                     n_levels: NDArray, priors: _Priors, *,
                     prior_sev: tuple[float, float]) -> tuple[NDArray, NDArray]:
    """Itemwise cross-product SEs of (a, b_1..b_{K-1}) per item and the severities' (module docstring)."""
    n_models, n_items, kmax = post.shape[0], a.size, int(n_levels.max(initial=2))
    _, d_a, d_lo, d_up = curves
    # per model and item: score on (a, b_1..b_{K-1}); per model: score on the severities
    G = np.zeros((n_models, n_items, kmax))
    n_r = lay.n_raters
    GS = np.zeros((n_models, n_r))
    for s0 in range(0, c.entry_weight.size, _CHUNK):
        sl = slice(s0, s0 + _CHUNK)
        m, cell, w = c.entry_model[sl], c.entry_cell[sl], c.entry_weight[sl]
        pm = post[m]
        ea = w * (pm * d_a[cell]).sum(axis=1)
        elo = w * (pm * d_lo[cell]).sum(axis=1)
        eup = w * (pm * d_up[cell]).sum(axis=1)
        j, lev, r = c.item[cell], c.level[cell], c.rater[cell]
        np.add.at(G, (m, j, np.zeros_like(j)), ea)
        has_lo = lev > 0
        np.add.at(G, (m[has_lo], j[has_lo], lev[has_lo]), elo[has_lo])
        has_up = lev < n_levels[j] - 1
        np.add.at(G, (m[has_up], j[has_up], lev[has_up] + 1), eup[has_up])
        rated = r >= 0
        np.add.at(GS, (m[rated], r[rated]), (elo + eup)[rated])
    info = np.einsum("mjk,mjl->jkl", G, G)
    live = np.arange(kmax)[None, :] < n_levels[:, None]          # a, then K - 1 thresholds
    a_safe = np.where(np.isfinite(a) & (a > 0), a, 1.0)
    prior_diag = np.where(live, 1.0 / priors.b[1] ** 2, 1.0)
    prior_diag[:, 0] = 1.0 / (priors.a[1] * a_safe) ** 2           # log a prior, on the scale of a
    info = np.where(live[:, :, None] & live[:, None, :], info, 0.0)
    info[:, np.arange(kmax), np.arange(kmax)] += prior_diag
    se = np.full((n_items, kmax), np.nan)
    f = lay.free
    if f.size:
        cov = np.linalg.pinv(info[f], hermitian=True)
        se[f] = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
    se = np.where(live, se, np.nan)
    se_sev = np.zeros(n_r) if n_r <= 1 else np.full(n_r, np.nan)
    if n_r > 1:
        S = GS.T @ GS + np.eye(n_r) / prior_sev[1] ** 2
        J = lay.J
        cov_s = J @ np.linalg.pinv(J.T @ S @ J) @ J.T
        se_sev = np.sqrt(np.maximum(np.diag(cov_s), 0.0))
    return se, se_sev


class FacetsFitter(Fitter):
    """Many-facet graded response model: binary items as the 2PL, graded (judged) items with thresholds,
    judges with severities, one scale."""

    name = "facets"
    label = "many-facet GRM"
    summary = ("graded response items with judge severities (many-facet), binary items as the 2PL, one scale; "
               "MML with SEs")
    irt_models = ("2pl",)
    holds_anchors = False
    steps = "L-BFGS-B iterations"
    family = "grm"
    takes_raters = True

    def fit(self, responses: ResponseSet, settings: FitSettings, *,
            rng: np.random.Generator) -> CalibrationResult:
        return fit_facets(responses, settings.n_levels, rng=rng, seed=settings.seed, max_iter=settings.max_iter)


def simulate_graded(truth: GradedParams, theta: ArrayLike, rng: np.random.Generator, *, share: float = 1.0,
                    rated: ArrayLike | None = None) -> ResponseSet:
    """Seeded responses from a known many-facet GRM (recovery studies): every model answers every unrated
    item (rule-scored, no rater); each model answers a ``share`` of the rated items (default: those with
    more than two levels), and every rater of ``truth`` scores each of those answers."""
    th = np.asarray(theta, dtype=float)
    n_models = th.size
    is_rated = truth.n_levels > 2 if rated is None else np.asarray(rated, dtype=bool)
    ms, js, ss, rs_ = [], [], [], []
    plain = np.flatnonzero(~is_rated)
    mm, jj = (g.ravel() for g in np.meshgrid(np.arange(n_models), plain, indexing="ij"))
    ms.append(mm)
    js.append(jj)
    ss.append(_draw_levels(truth, th[mm], jj, 0.0, rng) / (truth.n_levels[jj] - 1))
    rs_.append(np.full(mm.size, -1))
    mm, jj = (g.ravel() for g in np.meshgrid(np.arange(n_models), np.flatnonzero(is_rated), indexing="ij"))
    seen = rng.random(mm.size) < share
    mm, jj = mm[seen], jj[seen]
    for r, sev in enumerate(truth.severity):
        ms.append(mm)
        js.append(jj)
        ss.append(_draw_levels(truth, th[mm], jj, float(sev), rng) / (truth.n_levels[jj] - 1))
        rs_.append(np.full(mm.size, r))
    return ResponseSet(np.concatenate(ms), np.concatenate(js), np.concatenate(ss),
                       tuple(f"m{i}" for i in range(n_models)), truth.item_ids, np.concatenate(rs_),
                       truth.rater_ids)


def _draw_levels(truth: GradedParams, theta: NDArray, j: NDArray, severity: float,
                 rng: np.random.Generator) -> NDArray:
    """One level per (ability, item): the number of boundaries a uniform draw falls under."""
    with np.errstate(invalid="ignore"):
        cum = expit(truth.a[j][:, None] * (theta[:, None] - truth.thresholds[j] - severity))
    cum = np.nan_to_num(cum, nan=0.0)          # NaN padding: no boundary
    return (rng.random(j.size)[:, None] < cum).sum(axis=1).astype(float)
