"""Predicted accuracy with honest intervals: the one implementation every command uses.

An analyst's sentence is "model X scores 62% (57-67%) on this bank". Ability estimation alone
(``calibration.ability``) treats the calibration as exact and the model as fitting it; this module
adds what a calibration from a few dozen models leaves uncertain, and is built once per calibration
(``build_predictive``, stored with it) and used by ``predict``:

- **Winner's curse of discriminations.** With few calibration models a steep item (one that splits
  them cleanly) gets a large a with a large SE, and information-targeted forms (milp, nsga2, CAT) pick
  exactly those. log a is shrunk by normal-normal empirical Bayes (its share of Louis-SE noise,
  tau^2 / (tau^2 + se^2), towards the mean; the spread tau^2 of the true log a is the spread of the
  estimates less their mean squared SE) and b refitted given the shrunk a (MAP under the fit's prior
  on b at the calibration models' abilities). These parameters are used for assembly and scoring.
- **Items every calibration model got right (or wrong)** have no MML estimate but are not unknown:
  failing every model says an item is hard. They get the 2PL nearest (least squares on [-4, 4]) to
  their posterior-predictive curve E[P(theta) | pattern] under the fit's priors on (log a, b) and the
  abilities of the models that answered them. Items nobody answered are predicted from their content
  prior (``with_content_prior``: the predicted a, b of ``calibration.content_prior`` stored with the
  calibration, its SDs as the parameters' error; basis ``content_prior``), so a slice covers the whole
  bank; their answers never inform an ability (``scorable``). Without a content prior they cannot be
  predicted, and a prediction that leaves them out says it is about a smaller slice (``covers_slice``).
- **Item-parameter error.** The answered items' parameters are drawn from their SEs (shrunk a: its
  posterior SD on the log scale; b: its SE given a), independently across items; the spread of the
  ability and of the predicted accuracy over the draws is added to the interval (the estimate itself
  stays the point-parameter one, so drawn abilities never meet point-parameter curves). The error of
  the unanswered items' curves enters by the delta method at the posterior mean. A calibration stored
  without SEs (py-irt) gets SEs from the items' Fisher information at the calibration models' abilities
  (``se_source`` = "fisher", an approximation that ignores the error of those abilities); ``sources``
  always lists what the interval holds.
- **Model misfit.** A unidimensional curve misses part of how a particular model's accuracy spreads
  over items. ``misfit_sd`` is the RMS, over the calibration models, of (accuracy - expected accuracy
  at the model's own posterior), measured in the calibration; it is added (normal, in quadrature) on
  the unanswered share of the slice.
- **Forms unlike the bank.** That misfit is the one of an ability read from the whole bank. A form
  whose items are not a sample of the bank (information-targeted forms: milp, nsga2, CAT) reads the
  ability from one kind of item, and a model's relative strength on that kind is a second unknown of
  the same sort: under exchangeability it is as large as the bank misfit and independent of it. It is
  added (``form_misfit``: weight x misfit, the weight ``form_unlikeness`` saying how plainly the answered
  items' discriminations or difficulties differ from the bank's: 0 up to the 95% critical value of the
  two-sample Kolmogorov-Smirnov distance, 1 from twice it). A random or stratified form gets about
  nothing; a form of the most discriminating items, the full term.
- **Person fit.** A new model's own answers say whether the calibration describes it: the pattern
  (a-weighted) prediction is efficient when the model fits; the summed-score prediction (the ability
  posterior given only the number right on the answered items, so every item weighs the same, as in
  the accuracy being predicted) is robust to a model doing relatively better on weakly discriminating
  items. Their difference, over the square root of the difference of their posterior variances, is a
  Hausman-type statistic ``person_fit_z`` (about N(0, 1) when the model fits). The estimate leans
  toward the summed-score prediction by w = max(0, 1 - 4 / z^2) (positive-part James-Stein: nothing
  below |z| = 2) and the interval takes the excess disagreement max(0, diff^2 - v) as an extra variance.
- **Extrapolation.** An ability (EAP) outside the calibration models' range is ``extrapolated``. Its
  interval holds the flatter posterior-predictive curves of the items no calibration model could
  separate there, and the person-fit term; nothing is widened blindly.

``exact_view`` gives the old intervals (point parameters, items kept at their priors left out, no
misfit) for comparison (``--exact-params``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from scipy.stats import norm

from adtbase.errors import InputError

from .ability import (
    AbilityEstimates,
    Posterior,
    Prior,
    _grid_quantiles,
    _mixture_pmf,
    default_grid,
    estimate_abilities,
)
from .honesty import draw_params
from .irt import EPS, ItemParams, clipped_log_probs, prob

DEFAULT_DRAWS = 20
PERSON_FIT_Z = 2.0          # below this |z| the person-fit statistic moves nothing
EXTREME = ("all_correct", "all_wrong")
USABLE = ("calibrated", "fixed")
CONTENT_PRIOR = "content_prior"   # the basis of an item predicted from its content prior
_MASS_FLOOR = 1e-10         # posterior nodes below this share of the mode's weight are skipped


@dataclass(frozen=True)
class PredictiveModel:
    """What prediction needs of one calibration (module doc); arrays aligned with ``params``."""

    params: ItemParams                 # NaN a/b where the item cannot be predicted
    se_a: NDArray[np.float64]          # SDs the draws use (0 = held exactly)
    se_b: NDArray[np.float64]
    basis: NDArray[np.str_]            # calibrated | fixed | all_correct | all_wrong | unanswered | content_prior
    prior: Prior
    misfit_sd: float
    theta_range: tuple[float, float]   # the calibration models' EAP abilities, min and max
    se_source: str                     # louis | fisher | none
    shrinkage: dict[str, float] = field(default_factory=dict)  # log a: mean, tau2 (empty: none)
    exact: bool = False

    @property
    def predictable(self) -> NDArray[np.bool_]:
        return np.isfinite(self.params.a) & np.isfinite(self.params.b)

    @property
    def scorable(self) -> NDArray[np.bool_]:
        """Items whose answers inform an ability: predictable from the calibration's data, not from content."""
        return self.predictable & (self.basis != CONTENT_PRIOR)

    @property
    def n_content_prior(self) -> int:
        return int((self.basis == CONTENT_PRIOR).sum())

    def position(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.params.item_ids)}

    def frame(self) -> pd.DataFrame:
        p = self.params
        return pd.DataFrame({"item_id": list(p.item_ids), "a": p.a, "b": p.b, "c": p.c, "d": p.d,
                             "se_a": self.se_a, "se_b": self.se_b, "basis": self.basis})

    def sources(self) -> list[str]:
        """The sources of error an interval from this model holds, in words."""
        if self.exact:
            return ["ability (posterior)", "items not answered (Bernoulli)"]
        out = ["ability (posterior)", "items not answered (Bernoulli)"]
        if self.se_source != "none":
            out.append("item parameters (draws from " + ("Louis SEs" if self.se_source == "louis" else
                                                         "Fisher-information SEs, approximate") + ")")
        if self.shrinkage:
            out.append("shrunk discriminations (empirical Bayes)")
        out += ["model misfit (calibration models)", "misfit of forms unlike the bank (form_unlikeness)",
                "person fit (this model's answers)"]
        if self.n_content_prior:
            out.append("content priors of items no calibration model answered (their SDs as parameter error)")
        return out


# ---------------------------------------------------------------------------------------------- building
def build_predictive(params: ItemParams, se: Mapping[str, Any], status: ArrayLike, *, theta: ArrayLike,
                     model_ids: Sequence[str], model_idx: NDArray, item_idx: NDArray, score: NDArray,
                     response_item_ids: Sequence[str], prior: Prior, settings: Mapping[str, Any] | None = None,
                     irt_model: str = "2pl") -> PredictiveModel:
    """The predictive parameters of a calibration (module doc) from its point estimates, SEs, statuses,
    the calibration models' EAP abilities (aligned with ``model_ids``) and the responses it was fitted on
    (sparse triplets over ``response_item_ids`` and ``model_ids``)."""
    settings = dict(settings or {})
    st = np.asarray(status).astype(str)
    n = len(params)
    if st.shape != (n,):
        raise InputError(f"status has shape {st.shape}, expected ({n},)")
    th = np.asarray(theta, dtype=float)
    pos = {k: i for i, k in enumerate(params.item_ids)}
    remap = np.array([pos.get(k, -1) for k in response_item_ids], dtype=np.int64)
    j = remap[np.asarray(item_idx, dtype=np.int64)]
    keep = j >= 0
    m, j, y = np.asarray(model_idx, dtype=np.int64)[keep], j[keep], np.asarray(score, dtype=float)[keep]
    usable = np.isin(st, USABLE) & np.isfinite(params.a) & np.isfinite(params.b)
    cal = (st == "calibrated") & usable
    se_a = np.where(cal, np.nan_to_num(np.asarray(se.get("a", np.full(n, np.nan)), dtype=float), nan=np.nan), 0.0)
    se_b = np.where(cal, np.nan_to_num(np.asarray(se.get("b", np.full(n, np.nan)), dtype=float), nan=np.nan), 0.0)
    se_source = "louis"
    if cal.any() and not np.isfinite(se_b[cal]).any():
        fa, fb = _fisher_se(params, th, m, j, y.size)
        se_a, se_b = np.where(cal, fa, 0.0), np.where(cal, fb, 0.0)
        se_source = "fisher"
    se_a, se_b = np.nan_to_num(se_a, nan=0.0), np.nan_to_num(se_b, nan=0.0)
    if not cal.any():
        se_source = "none"

    a, b = params.a.astype(float).copy(), params.b.astype(float).copy()
    shrink: dict[str, float] = {}
    free_a = irt_model != "1pl" and cal.sum() >= 10 and np.ptp(np.log(np.maximum(a[cal], 1e-9))) > 0
    if free_a:
        a_eb, se_a_eb, shrink = _shrink_log_a(a, se_a, cal)
        prior_b = tuple(settings.get("prior_b") or (0.0, 3.0))
        b = _refit_b(ItemParams(params.item_ids, a_eb, b, params.c, params.d), cal, th, m, j, y, prior_b)
        # b was refitted given a, so its error is the conditional one (drawing a and b independently with
        # their marginal SEs would count their covariance twice).
        se_b = np.where(cal, _conditional_se_b(ItemParams(params.item_ids, a_eb, b, params.c, params.d), th, m, j,
                                               float(prior_b[1])), se_b)
        a, se_a = a_eb, se_a_eb
    basis = np.where(usable, st, np.where(np.isin(st, EXTREME), st, "unanswered")).astype(str)
    c, d = params.c.astype(float).copy(), params.d.astype(float).copy()
    ext = np.flatnonzero(np.isin(st, EXTREME))
    if ext.size:
        ca, cb = _extreme_curves(ext, st, th, m, j, tuple(settings.get("prior_a") or (0.0, 1.0)),
                                 tuple(settings.get("prior_b") or (0.0, 3.0)))
        a[ext], b[ext], c[ext], d[ext] = ca, cb, 0.0, 1.0
        se_a[ext] = se_b[ext] = 0.0  # a posterior-predictive curve already holds its uncertainty
    unpred = basis == "unanswered"
    a[unpred] = b[unpred] = np.nan
    out = ItemParams(params.item_ids, a, b, c, np.maximum(d, c))
    lo, hi = (float(np.min(th)), float(np.max(th))) if th.size else (float("nan"), float("nan"))
    model = PredictiveModel(out, se_a, se_b, basis, prior, 0.0, (lo, hi), se_source, shrink)
    return replace(model, misfit_sd=_misfit_sd(model, m, j, y, len(model_ids)))


def with_content_prior(model: PredictiveModel, content_prior: pd.DataFrame) -> PredictiveModel:
    """``model`` with the items it cannot predict (nobody answered them, or they are outside the calibration)
    predicted from their content prior: ``content_prior`` has ``item_id, a, b, log_a_sd, b_sd`` (the store's
    columns); a 2PL at (a, b), its error the prior's SDs (se_a = a * log_a_sd, the delta method), basis
    ``content_prior``. Items the model predicts keep their parameters; the calibration's other numbers
    (misfit, prior, ability range) are unchanged. An exact view is returned as it is."""
    if model.exact or content_prior is None or not len(content_prior):
        return model
    cp = content_prior.drop_duplicates("item_id").set_index("item_id")
    pos = model.position()
    ok = model.predictable
    fill = [(pos[k], k) for k in cp.index if k in pos and not ok[pos[k]]]
    extra = [k for k in cp.index if k not in pos]
    if not fill and not extra:
        return model
    p = model.params
    ids = tuple(p.item_ids) + tuple(extra)
    n_extra = len(extra)
    a, b = np.r_[p.a, np.full(n_extra, np.nan)], np.r_[p.b, np.full(n_extra, np.nan)]
    c, d = np.r_[p.c, np.zeros(n_extra)], np.r_[p.d, np.ones(n_extra)]
    se_a, se_b = np.r_[model.se_a, np.zeros(n_extra)], np.r_[model.se_b, np.zeros(n_extra)]
    basis = np.r_[model.basis.astype(object), np.full(n_extra, CONTENT_PRIOR, dtype=object)]
    idx = np.array([i for i, _ in fill] + list(range(len(p), len(ids))), dtype=np.int64)
    keys = [k for _, k in fill] + extra
    a[idx] = cp.loc[keys, "a"].to_numpy(dtype=float)
    b[idx] = cp.loc[keys, "b"].to_numpy(dtype=float)
    c[idx], d[idx] = 0.0, 1.0
    se_a[idx] = a[idx] * cp.loc[keys, "log_a_sd"].to_numpy(dtype=float)
    se_b[idx] = cp.loc[keys, "b_sd"].to_numpy(dtype=float)
    basis[idx] = CONTENT_PRIOR
    return replace(model, params=ItemParams(ids, a, b, c, d), se_a=se_a, se_b=se_b, basis=basis.astype(str))


def join_predictive(first: PredictiveModel, second: PredictiveModel, *, prior: Prior) -> PredictiveModel:
    """One predictive model over the items of both (disjoint ids): ``first``'s calibration-level numbers
    (misfit, ability range, SE source, shrinkage) with ``prior``. Online calibration keeps the anchor's
    predictive parameters for the operational items and adds the new items' own."""
    clash = set(first.params.item_ids) & set(second.params.item_ids)
    if clash:
        raise InputError(f"join_predictive: items in both models: {', '.join(sorted(clash)[:5])}")
    p, q = first.params, second.params
    params = ItemParams(tuple(p.item_ids) + tuple(q.item_ids), np.r_[p.a, q.a], np.r_[p.b, q.b], np.r_[p.c, q.c],
                        np.r_[p.d, q.d])
    return replace(first, params=params, se_a=np.r_[first.se_a, second.se_a], se_b=np.r_[first.se_b, second.se_b],
                   basis=np.r_[first.basis.astype(object), second.basis.astype(object)].astype(str), prior=prior)


def exact_view(params: ItemParams, status: ArrayLike, prior: Prior,
               theta_range: tuple[float, float] = (float("nan"), float("nan"))) -> PredictiveModel:
    """The calibration as exact: point parameters of usable items, everything else left out, no extra terms."""
    st = np.asarray(status).astype(str)
    usable = np.isin(st, USABLE) & np.isfinite(params.a) & np.isfinite(params.b)
    a, b = np.where(usable, params.a, np.nan), np.where(usable, params.b, np.nan)
    zero = np.zeros(len(params))
    basis = np.where(usable, st, "excluded").astype(str)
    return PredictiveModel(ItemParams(params.item_ids, a, b, params.c, params.d), zero, zero, basis, prior, 0.0,
                           theta_range, "none", {}, exact=True)


def _shrink_log_a(a: NDArray, se_a: NDArray, cal: NDArray) -> tuple[NDArray, NDArray, dict[str, float]]:
    log_a = np.log(np.maximum(a, 1e-9))
    rel = np.where(cal, se_a / np.maximum(a, 1e-9), 0.0)
    mu = float(log_a[cal].mean())
    tau2 = max(float(log_a[cal].var() - np.mean(rel[cal] ** 2)), 1e-3)
    keep = tau2 / (tau2 + rel**2)
    a_new = np.where(cal, np.exp(mu + keep * (log_a - mu)), a)
    se_new = np.where(cal, np.sqrt(keep) * rel * a_new, se_a)
    return a_new, se_new, {"mean_log_a": mu, "tau2_log_a": tau2, "mean_keep": float(keep[cal].mean())}


def _refit_b(params: ItemParams, cal: NDArray, theta: NDArray, m: NDArray, j: NDArray, y: NDArray,
             prior_b: tuple[float, float], steps: int = 30) -> NDArray:
    """MAP difficulty of each calibrated item with a, c, d held, at the calibration models' abilities."""
    n = len(params)
    mb, sb = float(prior_b[0]), float(prior_b[1])
    b = params.b.astype(float).copy()
    a, c, d = params.a[j], params.c[j], params.d[j]
    t = theta[m]
    for _ in range(steps):
        p = np.clip(prob(t, a, b[j], c, d), EPS, 1 - EPS)
        dp_db = -a * (p - c) * (d - p) / np.maximum(d - c, EPS)
        grad = np.bincount(j, (y - p) / (p * (1 - p)) * dp_db, minlength=n) - (b - mb) / sb**2
        info = np.bincount(j, dp_db**2 / (p * (1 - p)), minlength=n) + 1.0 / sb**2
        step = np.clip(grad / info, -1.0, 1.0)
        b = np.where(cal, b + step, b)
        if np.max(np.abs(np.where(cal, step, 0.0)), initial=0.0) < 1e-6:
            break
    return b


def _fisher_se(params: ItemParams, theta: NDArray, m: NDArray, j: NDArray, n_obs: int) -> tuple[NDArray, NDArray]:
    """SEs of (a, b) from each item's 2x2 Fisher information at the calibration models' abilities."""
    n = len(params)
    if n_obs == 0:
        return np.full(n, np.nan), np.full(n, np.nan)
    a, b, c, d = params.a[j], params.b[j], params.c[j], params.d[j]
    t = theta[m]
    p = np.clip(prob(t, a, b, c, d), EPS, 1 - EPS)
    core = (p - c) * (d - p) / np.maximum(d - c, EPS)
    ga, gb = core * (t - b), -a * core
    w = 1.0 / (p * (1 - p))
    iaa = np.bincount(j, w * ga * ga, minlength=n)
    ibb = np.bincount(j, w * gb * gb, minlength=n)
    iab = np.bincount(j, w * ga * gb, minlength=n)
    det = iaa * ibb - iab**2
    with np.errstate(divide="ignore", invalid="ignore"):
        se_a = np.sqrt(np.where(det > 1e-12, ibb / det, np.nan))
        se_b = np.sqrt(np.where(det > 1e-12, iaa / det, np.nan))
    return se_a, se_b


def _conditional_se_b(params: ItemParams, theta: NDArray, m: NDArray, j: NDArray, prior_sd: float) -> NDArray:
    """SE of each b with a, c, d held: 1 / sqrt(Fisher information of b + the prior's)."""
    a, b, c, d = params.a[j], params.b[j], params.c[j], params.d[j]
    p = np.clip(prob(theta[m], a, b, c, d), EPS, 1 - EPS)
    gb = -a * (p - c) * (d - p) / np.maximum(d - c, EPS)
    info = np.bincount(j, gb**2 / (p * (1 - p)), minlength=len(params)) + 1.0 / prior_sd**2
    return 1.0 / np.sqrt(info)


def _extreme_curves(ext: NDArray, status: NDArray, theta: NDArray, m: NDArray, j: NDArray,
                    prior_a: tuple[float, float], prior_b: tuple[float, float]) -> tuple[NDArray, NDArray]:
    """2PL approximations of the posterior-predictive curves of items all right / all wrong (module doc).

    The curve depends on the item's pattern and on the abilities of the models that answered it; items
    are grouped by (status, number of answering models, their weakest/strongest ability to 0.1) so a
    dense bank needs one curve per status."""
    from scipy.optimize import least_squares

    order = np.argsort(j, kind="stable")
    js, ms = j[order], m[order]
    starts = np.searchsorted(js, ext)
    ends = np.searchsorted(js, ext, side="right")
    groups: dict[tuple[Any, ...], list[int]] = {}
    thetas: dict[tuple[Any, ...], NDArray] = {}
    for k, (s0, s1) in enumerate(zip(starts, ends, strict=True)):
        th = theta[ms[s0:s1]]
        st = str(status[ext[k]])
        edge = float(th.max() if st == "all_wrong" else th.min()) if th.size else 0.0
        key = (st, th.size, round(edge, 1), round(float(th.mean()), 1) if th.size else 0.0)
        groups.setdefault(key, []).append(k)
        thetas.setdefault(key, th)
    mu_a, sd_a = float(prior_a[0]), float(prior_a[1])
    mu_b, sd_b = float(prior_b[0]), float(prior_b[1])
    la = np.linspace(mu_a - 4 * sd_a, mu_a + 4 * sd_a, 61)
    bb = np.linspace(mu_b - 4 * sd_b, mu_b + 4 * sd_b, 241)
    A, B = np.exp(la)[:, None], bb[None, :]
    logprior = -0.5 * ((la[:, None] - mu_a) / sd_a) ** 2 - 0.5 * ((B - mu_b) / sd_b) ** 2
    grid = np.linspace(-4, 4, 41)
    out_a, out_b = np.empty(ext.size), np.empty(ext.size)
    for key, members in groups.items():
        sign = 1.0 if key[0] == "all_correct" else -1.0
        th = thetas[key]
        z = sign * A[..., None] * (th[None, None, :] - B[..., None])
        logpost = logprior - np.logaddexp(0.0, -z).sum(axis=-1)
        w = np.exp(logpost - logpost.max())
        w /= w.sum()
        curve = np.einsum("ab,abt->t", w, expit(A[..., None] * (grid[None, None, :] - B[..., None])))
        fit = least_squares(lambda v, target=curve: expit(np.exp(v[0]) * (grid - v[1])) - target,
                            x0=[0.0, -3.0 * sign])
        out_a[members], out_b[members] = float(np.exp(fit.x[0])), float(fit.x[1])
    return out_a, out_b


def _misfit_sd(model: PredictiveModel, m: NDArray, j: NDArray, y: NDArray, n_models: int,
               n_null: int = 3) -> float:
    """Model-level misfit: the spread, over the calibration models, of (accuracy - expected accuracy at
    the model's own posterior), less what it would be if the curves were true.

    On a short bank most of that residual is Bernoulli noise of the model's own answers, which the
    predictive interval already holds. Its size under the model is measured by a parametric bootstrap:
    ``n_null`` replicates of every calibration model's answers drawn from its own curves (at its EAP),
    put through the same statistic. misfit^2 = max(0, mean residual^2 - mean null residual^2)."""
    ok = model.predictable[j]
    m, j, y = m[ok], j[ok], y[ok]
    if n_models < 2 or y.size == 0:
        return 0.0
    used, jj = np.unique(j, return_inverse=True)
    sub = model.params.subset(used)
    grid = default_grid()
    p_nodes = prob(grid[None, :], sub.a[:, None], sub.b[:, None], sub.c[:, None], sub.d[:, None])  # items x nodes
    resid, post = _residuals(m, jj, y, n_models, sub, grid, p_nodes, model.prior)
    theta = post @ grid
    p_obs = prob(theta[m], sub.a[jj], sub.b[jj], sub.c[jj], sub.d[jj])
    rng = np.random.default_rng(0)  # the statistic is part of the calibration: the same data give the same value
    null = [_residuals(m, jj, (rng.random(y.size) < p_obs).astype(float), n_models, sub, grid, p_nodes,
                       model.prior)[0] for _ in range(n_null)]
    excess = float(np.mean(resid**2) - np.mean([np.mean(r**2) for r in null]))
    return float(np.sqrt(max(excess, 0.0)))


def _residuals(m: NDArray, jj: NDArray, y: NDArray, n_models: int, sub: ItemParams, grid: NDArray,
               p_nodes: NDArray, prior: Prior) -> tuple[NDArray, NDArray]:
    """Per model: accuracy - expected accuracy under its own posterior (models with answers only), and the
    posteriors of every model."""
    import scipy.sparse as sp

    from .ability import _grid_loglik, _normalise

    post = _normalise(_grid_loglik(m, jj, y, n_models, sub, grid) + prior.log_density(grid)[None, :])
    seen = sp.csr_matrix((np.ones(y.size), (m, jj)), shape=(n_models, sub.a.size))
    expected = np.einsum("mk,mk->m", post, np.asarray(seen @ p_nodes))
    count = np.bincount(m, minlength=n_models)
    got = np.bincount(m, y, minlength=n_models)
    have = count > 0
    return (got[have] - expected[have]) / count[have], post


# ---------------------------------------------------------------------------------------------- prediction
@dataclass(frozen=True)
class Prediction:
    """One model's ability and predicted accuracy on a slice, with what the interval holds."""

    theta: float
    se: float
    lo: float
    hi: float
    pred_acc: float
    pred_lo: float
    pred_hi: float
    pred_sd: float
    level: float
    n_items: int                 # answers that informed the ability
    n_slice_items: int
    n_answered: int              # slice items the model answered (observed exactly)
    n_predicted: int             # slice items the prediction covers (answered + predicted)
    n_unpredictable: int         # slice items it neither answered nor can predict
    observed_accuracy: float
    extrapolated: bool
    extrapolation: str
    person_fit_z: float
    person_fit_weight: float
    misfit_sd: float
    sources: tuple[str, ...]
    exact_params: bool
    summed_acc: float = float("nan")
    form_unlikeness: float = 0.0  # 0: the answered items look like a sample of the bank; 1: nothing like it
    sd_components: dict[str, float] = field(default_factory=dict)  # each source's SD, accuracy units
    n_content_prior: int = 0     # predicted items whose parameters are their content prior's

    @property
    def covers_slice(self) -> bool:
        return self.n_predicted == self.n_slice_items

    @property
    def slice_note(self) -> str:
        if self.covers_slice:
            return ""
        why = ("are kept at their priors (--exact-params leaves them out)" if self.exact_params else
               "were answered by no calibration model")
        return (f"about {self.n_predicted} of the slice's {self.n_slice_items} items: {self.n_unpredictable} it did "
                f"not answer {why} and cannot be predicted")

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["sources"] = list(self.sources)
        out["covers_slice"] = self.covers_slice
        out["slice_note"] = self.slice_note
        out["person_fit_p"] = float(2 * norm.sf(abs(self.person_fit_z))) if np.isfinite(self.person_fit_z) \
            else float("nan")
        return out


@dataclass(frozen=True)
class _Evidence:
    """A model's answers split into what informs its ability and what the slice needs."""

    obs_idx: NDArray[np.int64]          # predictive-model positions of the answers used for ability
    obs_scores: NDArray[np.float64]
    slice_answered: NDArray[np.float64]  # scores on answered slice items
    unanswered_idx: NDArray[np.int64]   # positions of the slice items to predict
    n_slice: int
    n_unpredictable: int


def evidence(model: PredictiveModel, scores: pd.Series, slice_ids: Sequence[str],
             pos: Mapping[str, int] | None = None) -> _Evidence:
    """Split ``scores`` (item id -> score, one per item) for ``predict``."""
    pos = pos if pos is not None else model.position()
    ok = model.predictable
    ids = [str(k) for k in scores.index]
    p = np.array([pos.get(k, -1) for k in ids], dtype=np.int64)
    vals = scores.to_numpy(dtype=float)
    use = p >= 0
    use[use] = model.scorable[p[use]]   # answers to items known only by their content never move an ability
    in_slice = pd.Index(slice_ids)
    answered_mask = scores.index.isin(in_slice)
    slice_pos = np.array([pos.get(str(k), -1) for k in slice_ids], dtype=np.int64)
    answered_set = set(np.asarray(ids, dtype=object)[answered_mask])
    not_answered = np.array([k not in answered_set for k in slice_ids], dtype=bool)
    cand = slice_pos[not_answered]
    predictable = cand >= 0
    predictable[predictable] = ok[cand[predictable]]
    return _Evidence(p[use], vals[use], vals[answered_mask], cand[predictable], len(slice_ids),
                     int((~predictable).sum()))


def predict(model: PredictiveModel, scores: pd.Series, slice_ids: Sequence[str], *, level: float = 0.95,
            n_draws: int = DEFAULT_DRAWS, rng: np.random.Generator | None = None,
            pos: Mapping[str, int] | None = None, shared: dict[str, Any] | None = None,
            theta_interval: bool = True) -> Prediction:
    """Ability and predicted accuracy on ``slice_ids`` from one model's per-item ``scores`` (module doc).

    The ability uses every answer to a predictable item; the slice's answered items count as observed,
    the rest as predicted. ``rng`` seeds the parameter draws (default: a fixed seed, so a number printed
    twice is the same number). ``shared``: as ``predict_evidence``'s, for several slices of one model's
    ``scores``; ``theta_interval``: as ``predict_evidence``'s."""
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    ev = evidence(model, scores, slice_ids, pos)
    return predict_evidence(model, ev, level=level, n_draws=n_draws, rng=rng, shared=shared,
                            theta_interval=theta_interval)


@dataclass
class _Ability:
    """The part of a prediction that depends on the model's answers only, not on the slice: the ability
    posterior and, on first need, its parameter draws (with the interval they widen) and the summed-score
    posterior. The draws come from ``rng``, or from ``default_rng(0)`` when it is None: then they can wait
    until needed (a caller's generator is drawn from at once, so its stream moves as it always has)."""

    grid: NDArray
    logprior: NDArray
    obs: ItemParams
    obs_scores: NDArray
    post: NDArray
    theta: float
    z: float
    level: float
    n_draws: int
    draw: Any  # () -> list of drawn posteriors (the draws on the point posterior's window)
    _drawn: list[NDArray] | None = None
    _interval: tuple[float, NDArray] | None = None
    _post_s: NDArray | None = None
    _unlike: float | None = None

    def drawn(self) -> list[NDArray]:
        if self._drawn is None:
            self._drawn = self.draw()
        return self._drawn

    def interval(self) -> tuple[float, NDArray]:
        """SE and the ``level`` interval of the ability, widened by the spread of the drawn EAPs."""
        if self._interval is None:
            grid, post, theta, z, level = self.grid, self.post, self.theta, self.z, self.level
            drawn = self.drawn()
            sd_theta_draws = float(np.std([w @ grid for w in drawn])) if drawn else 0.0
            se = float(np.hypot(np.sqrt(max(float(post @ grid**2) - theta**2, 0.0)), sd_theta_draws))
            q = _grid_quantiles(grid, post[None, :], np.array([(1 - level) / 2, (1 + level) / 2]))[0]
            q = np.array([theta - np.hypot(theta - q[0], z * sd_theta_draws),
                          theta + np.hypot(q[1] - theta, z * sd_theta_draws)])
            self._interval = (se, q)
        return self._interval

    def unlikeness(self, model: PredictiveModel, obs_idx: NDArray) -> float:
        """``form_unlikeness`` of these answers (once: every slice of one model's answers shares it)."""
        if self._unlike is None:
            self._unlike = form_unlikeness(model, obs_idx)
        return self._unlike

    def post_s(self) -> NDArray:
        if self._post_s is None:
            self._post_s = _summed_posterior(self.obs_scores, self.obs, self.grid, self.logprior, self.post)
        return self._post_s


def ability_part(model: PredictiveModel, ev: _Evidence, *, level: float, n_draws: int,
                 rng: np.random.Generator | None) -> _Ability:
    """The slice-free part of ``predict_evidence`` for ``ev``'s answers."""
    grid = default_grid()
    logprior = model.prior.log_density(grid)
    obs = model.params.subset(ev.obs_idx)
    draws = 0 if model.exact or model.se_source == "none" else n_draws
    # The estimate comes from the point parameters; the draws of the answered items' parameters give the
    # spread their error adds (a normal term). Mixing drawn posteriors with point-parameter curves of the
    # unanswered items would shift the mean: the two would no longer describe one calibration.
    post = _posterior(ev.obs_scores, obs, grid, logprior)
    sa, sb = model.se_a[ev.obs_idx], model.se_b[ev.obs_idx]
    # Drawn posteriors move little from the point one: they are computed on its support and a margin.
    win = _window(post, margin=40)
    scores = ev.obs_scores

    def drawn_posteriors(gen: np.random.Generator | None = rng) -> list[NDArray]:
        gen = gen if gen is not None else np.random.default_rng(0)
        out = []
        for _ in range(draws):
            w = np.zeros(grid.size)
            w[win] = _posterior(scores, _draw(obs, sa, sb, gen), grid[win], logprior[win])
            out.append(w)
        return out

    z = float(norm.ppf(0.5 + level / 2))
    theta = float(post @ grid)
    ab = _Ability(grid, logprior, obs, scores, post, theta, z, level, n_draws, drawn_posteriors)
    if rng is not None:
        ab.drawn()  # now: the caller's generator moves as it did before
    return ab


def predict_evidence(model: PredictiveModel, ev: _Evidence, *, level: float = 0.95, n_draws: int = DEFAULT_DRAWS,
                     rng: np.random.Generator | None = None, shared: dict[str, Any] | None = None,
                     theta_interval: bool = True) -> Prediction:
    """``predict`` from a model's evidence. ``shared``: a dict kept across calls on the same answers (one
    model's sub-scores, a call per slice): the slice-free part (ability posterior, parameter draws,
    summed-score posterior) is computed on the first call and reused, the same numbers as a call each.
    ``theta_interval`` False: the ability's se, lo and hi are NaN (callers that show only the predicted
    accuracy: a slice every answer covers then needs no parameter draws at all)."""
    if shared is not None and "ability" in shared:
        ab = shared["ability"]
        if (ab.level, ab.n_draws) != (level, n_draws) or not np.array_equal(ab.obs_scores, ev.obs_scores):
            raise InputError("predict_evidence: a shared ability part reused on other answers or settings")
    else:
        ab = ability_part(model, ev, level=level, n_draws=n_draws, rng=rng)
        if shared is not None:
            shared["ability"] = ab
    grid, post, theta, z = ab.grid, ab.post, ab.theta, ab.z
    # The ability's own interval needs the parameter draws; a caller that reads only the predicted accuracy
    # (theta_interval=False) gets NaN there and the draws are made only where the accuracy needs them.
    se, q = ab.interval() if theta_interval else (float("nan"), np.array([np.nan, np.nan]))

    un = model.params.subset(ev.unanswered_idx)
    n_ans, n_un = ev.slice_answered.size, len(un)
    total = n_ans + n_un
    observed_total = float(ev.slice_answered.sum())
    observed_acc = float(ev.slice_answered.mean()) if n_ans else float("nan")
    extrapolated, why = _extrapolation(theta, model.theta_range)
    base = dict(theta=theta, se=se, lo=float(q[0]), hi=float(q[1]), level=level, n_items=int(ev.obs_idx.size),
                n_slice_items=ev.n_slice, n_answered=n_ans, n_predicted=total, n_unpredictable=ev.n_unpredictable,
                observed_accuracy=observed_acc, extrapolated=extrapolated, extrapolation=why,
                misfit_sd=model.misfit_sd, sources=tuple(model.sources()), exact_params=model.exact,
                n_content_prior=int((model.basis[ev.unanswered_idx] == CONTENT_PRIOR).sum()))
    if total == 0:
        nan = float("nan")
        return Prediction(pred_acc=nan, pred_lo=nan, pred_hi=nan, pred_sd=nan, person_fit_z=nan,
                          person_fit_weight=0.0, **base)  # type: ignore[arg-type]
    pmf = _mixture_pmf(Posterior(grid, post), un, 600)
    k = np.arange(n_un + 1)
    mean_x = float(pmf @ k)
    cdf = np.cumsum(pmf)
    x_lo = float(np.searchsorted(cdf, (1 - level) / 2 - 1e-12))
    x_hi = float(min(int(np.searchsorted(cdf, (1 + level) / 2 - 1e-12)), n_un))
    sd_x = float(np.sqrt(max(float(pmf @ k**2) - mean_x**2, 0.0)))
    if model.exact or n_un == 0:
        return Prediction(pred_acc=(observed_total + mean_x) / total, pred_lo=(observed_total + x_lo) / total,
                          pred_hi=(observed_total + x_hi) / total, pred_sd=sd_x / total, person_fit_z=float("nan"),
                          person_fit_weight=0.0, **base)  # type: ignore[arg-type]

    # Person fit: pattern vs summed-score predictions of the unanswered part (module doc).
    post_s = ab.post_s()
    drawn = ab.drawn()
    tcc = _tcc(grid, un, post, post_s, *drawn)
    mean_p, var_p = _moments(post, tcc)
    var_draws = float(np.var([_moments(w, tcc)[0] for w in drawn])) if drawn else 0.0
    mean_s, var_s = _moments(post_s, tcc)
    diff = mean_s - mean_p
    v = max(var_s - var_p, (0.1 * np.sqrt(var_p)) ** 2, 1e-12)
    pf_z = float(diff / np.sqrt(v)) if ev.obs_idx.size else float("nan")
    w = float(np.clip(1 - PERSON_FIT_Z**2 / max(pf_z**2, 1e-12), 0.0, 1.0)) if np.isfinite(pf_z) else 0.0
    shift = w * diff
    # Extra normal terms, in numbers of items, added in quadrature to each side of the mixture interval.
    form_w = ab.unlikeness(model, ev.obs_idx)
    parts = {"misfit": (model.misfit_sd * n_un) ** 2, "form_misfit": (form_w * model.misfit_sd * n_un) ** 2,
             "person_fit": max(diff**2 - v, 0.0),
             "parameters": var_draws + _param_var(model, ev.unanswered_idx, theta)}
    extra_var = sum(parts.values())
    components = {"ability_and_bernoulli": sd_x / total, **{k: float(np.sqrt(x)) / total for k, x in parts.items()}}
    sd_plus = float(np.sqrt(extra_var))
    x_mean = mean_x + shift
    lo_x = x_mean - np.hypot(mean_x - x_lo, z * sd_plus)
    hi_x = x_mean + np.hypot(x_hi - mean_x, z * sd_plus)
    lo_x, hi_x = max(lo_x, 0.0), min(hi_x, float(n_un))
    return Prediction(pred_acc=(observed_total + x_mean) / total, pred_lo=(observed_total + lo_x) / total,
                      pred_hi=(observed_total + hi_x) / total, pred_sd=float(np.hypot(sd_x, sd_plus)) / total,
                      person_fit_z=pf_z, person_fit_weight=w, summed_acc=(observed_total + mean_s) / total,
                      form_unlikeness=form_w,
                      sd_components=components, **base)  # type: ignore[arg-type]


def form_unlikeness(model: PredictiveModel, idx: NDArray) -> float:
    """How far the answered items (``idx``) lie from a sample of the bank's predictable items, in [0, 1]
    (module doc): per parameter (log a, b) the two-sample Kolmogorov-Smirnov distance less its 95% critical
    value, over that value; the larger of the two, clipped. 0 at the critical value (a random form, of any
    size, is past it one time in twenty and then only just), 1 at twice it: a form plainly unlike the bank."""
    ok = model.scorable
    idx = np.asarray(idx, dtype=np.int64)
    n, m = idx.size, int(ok.sum())
    if n == 0 or m == 0:
        return 0.0
    crit = 1.358 * np.sqrt((n + m) / (n * m))
    worst = 0.0
    for values in (np.log(np.maximum(model.params.a, 1e-9)), model.params.b):
        bank = np.sort(values[ok])
        form = np.sort(values[idx])
        at = np.concatenate([bank, form])
        gap = np.abs(np.searchsorted(bank, at, side="right") / m - np.searchsorted(form, at, side="right") / n)
        worst = max(worst, float(gap.max()))
    return float(np.clip((worst - crit) / crit, 0.0, 1.0))


def _extrapolation(theta: float, rng_: tuple[float, float]) -> tuple[bool, str]:
    lo, hi = rng_
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return False, ""
    if theta > hi:
        return True, f"ability {theta:.2f} above every calibration model's (max {hi:.2f})"
    if theta < lo:
        return True, f"ability {theta:.2f} below every calibration model's (min {lo:.2f})"
    return False, ""


def _posterior(s: NDArray, params: ItemParams, grid: NDArray, logprior: NDArray) -> NDArray:
    if s.size == 0:
        w = np.exp(logprior - logprior.max())
        return w / w.sum()
    log_p, log_q = clipped_log_probs(grid[:, None], params.a, params.b, params.c, params.d)
    lw = log_p @ s + log_q @ (1 - s) + logprior
    w = np.exp(lw - lw.max())
    return w / w.sum()


def _window(post: NDArray, margin: int) -> slice:
    """The nodes where ``post`` has mass, widened by ``margin`` nodes on each side."""
    idx = np.flatnonzero(_support(post))
    return slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + margin + 1, post.size))


def _support(post: NDArray) -> NDArray[np.bool_]:
    return post > post.max() * _MASS_FLOOR


def _summed_posterior(s: NDArray, params: ItemParams, grid: NDArray, logprior: NDArray, near: NDArray) -> NDArray:
    """Ability posterior given only the number right on the answered items (exact Poisson-binomial up to
    300 items, normal beyond), on the nodes where the pattern posterior or the prior has mass."""
    if s.size == 0:
        return _posterior(s, params, grid, logprior)
    prior_w = np.exp(logprior - logprior.max())
    keep = _support(near) | (prior_w > prior_w.max() * 1e-6)
    p = np.clip(prob(grid[keep][:, None], params.a, params.b, params.c, params.d), EPS, 1 - EPS)
    total = float(s.sum())
    if s.size <= 300:
        k = int(round(total))
        dist = np.zeros((p.shape[0], s.size + 1))
        dist[:, 0] = 1.0
        for i in range(s.size):
            pi = p[:, i : i + 1]
            dist[:, 1 : i + 2] = dist[:, 1 : i + 2] * (1 - pi) + dist[:, : i + 1] * pi
            dist[:, 0] *= 1 - pi[:, 0]
        loglik = np.log(np.maximum(dist[:, k], 1e-300))
    else:
        mu = p.sum(axis=1)
        var = np.maximum((p * (1 - p)).sum(axis=1), 1e-9)
        loglik = -0.5 * (total - mu) ** 2 / var - 0.5 * np.log(var)
    lw = np.full(grid.size, -np.inf)
    lw[keep] = loglik + logprior[keep]
    w = np.exp(lw - lw[keep].max())
    return w / w.sum()


def _tcc(grid: NDArray, params: ItemParams, *posts: NDArray) -> NDArray:
    """Expected number right on ``params`` at each node (NaN where no posterior has mass)."""
    keep = np.zeros(grid.size, bool)
    for w in posts:
        keep |= _support(w)
    out = np.full(grid.size, np.nan)
    if len(params):
        out[keep] = prob(grid[keep][:, None], params.a, params.b, params.c, params.d).sum(axis=1)
    else:
        out[keep] = 0.0
    return out


def _moments(w: NDArray, tcc: NDArray) -> tuple[float, float]:
    """Mean and variance of the TCC under posterior ``w``; nodes the TCC skipped are filled by interpolation."""
    t = tcc
    if np.isnan(t).any():
        ok = np.isfinite(t)
        t = np.interp(np.arange(t.size), np.flatnonzero(ok), t[ok])
    mean = float(w @ t)
    return mean, max(float(w @ t**2) - mean**2, 0.0)


def _param_var(model: PredictiveModel, idx: NDArray, theta: float) -> float:
    """Delta-method variance of the unanswered items' expected number right from their parameter SEs."""
    if idx.size == 0 or model.se_source == "none":
        return 0.0
    a, b, c, d = (getattr(model.params, k)[idx] for k in ("a", "b", "c", "d"))
    p = prob(theta, a, b, c, d)
    core = (p - c) * (d - p) / np.maximum(d - c, EPS)
    ga, gb = core * (theta - b), -a * core
    return float(np.sum((ga * model.se_a[idx]) ** 2 + (gb * model.se_b[idx]) ** 2))


def _draw(params: ItemParams, se_a: NDArray, se_b: NDArray, rng: np.random.Generator) -> ItemParams:
    """One draw of (a, b) from their SEs (``calibration.honesty.draw_params``: a log-normal, b normal).

    Draws are independent across items, so the mean error of a form's items is real: it moves the
    ability while the many unanswered items' errors average out (it is not taken out)."""
    return draw_params(params, {"a": se_a, "b": se_b}, rng)


def abilities_with_parameter_error(model_idx: NDArray, item_idx: NDArray, scores: NDArray, params: ItemParams,
                                   se: Mapping[str, ArrayLike], *, n_models: int, prior: Prior | None = None,
                                   level: float = 0.95, n_draws: int = DEFAULT_DRAWS,
                                   rng: np.random.Generator | None = None,
                                   base: AbilityEstimates | None = None) -> AbilityEstimates:
    """EAP abilities of many models whose 95% intervals also hold the item parameters' error: each interval
    is widened (in quadrature, each side) by the SD of the model's EAP over ``n_draws`` draws of the
    parameters from ``se``. The point estimates are the point-parameter EAPs. (The leaderboard and the
    report's coverage simulation use this; ``predict`` widens one model's interval the same way.)
    ``base``: the point-parameter EAPs of these answers, when the caller already has them."""
    if base is None:
        base = estimate_abilities(model_idx, item_idx, scores, params, "eap", n_models=n_models, prior=prior,
                                  level=level)
    if n_draws <= 0 or not se:
        return base
    rng = rng if rng is not None else np.random.default_rng(0)
    thetas = np.stack([estimate_abilities(model_idx, item_idx, scores, draw_params(params, se, rng), "eap",
                                          n_models=n_models, prior=prior, level=level).theta
                       for _ in range(n_draws)])
    sd = thetas.std(axis=0)
    z = float(norm.ppf(0.5 + level / 2))
    t = base.theta
    return AbilityEstimates(t, np.hypot(base.se, sd), t - np.hypot(t - base.lo, z * sd), t + np.hypot(base.hi - t, z * sd),
                            base.n_items, base.bounded, "eap", level)


# ---------------------------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class Comparison:
    """A minus B: differences in ability and predicted accuracy with intervals and two-sided p-values."""

    diff_theta: float
    theta_lo: float
    theta_hi: float
    p_theta: float
    diff_acc: float
    acc_lo: float
    acc_hi: float
    p_acc: float
    sd_acc: float
    n_common: int                # slice items both answered (paired exactly)
    n_slice_items: int
    n_predicted: int
    paired: bool                 # False when the two answered no item in common
    level: float
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def compare(model: PredictiveModel, scores_a: pd.Series, scores_b: pd.Series, slice_ids: Sequence[str], *,
            level: float = 0.95, n_draws: int = 200, rng: np.random.Generator | None = None) -> Comparison:
    """Paired comparison of two models on one slice under one calibration (``compare_many`` for two)."""
    return compare_many(model, {"a": scores_a, "b": scores_b}, slice_ids, [("a", "b")], level=level,
                        n_draws=n_draws, rng=rng)[0]


def compare_many(model: PredictiveModel, scores: Mapping[str, pd.Series], slice_ids: Sequence[str],
                 pairs: Sequence[tuple[str, str]], *, level: float = 0.95, n_draws: int = 200,
                 rng: np.random.Generator | None = None) -> list[Comparison]:
    """A minus B for each pair, on one slice under one calibration.

    The difference of predicted accuracies is (items both answered: exact paired differences) + (the
    rest: each side's observed answers or predictions). Its distribution is simulated jointly: per
    replicate one draw of the item parameters shared by every model (so calibration error common to
    both sides cancels), each model's ability from its own posterior under those parameters, its number
    right on its unanswered items (normal, Bernoulli), and its misfit and person-fit terms
    independently. Every model is simulated once per replicate, so all pairs cost one simulation. The
    interval is centred on the point predictions; the p-value is the two-sided tail at zero."""
    rng = rng if rng is not None else np.random.default_rng(0)
    pos = model.position()
    names = list(scores)
    evs = {k: evidence(model, scores[k], slice_ids, pos) for k in names}
    preds = {k: predict_evidence(model, evs[k], level=level, rng=np.random.default_rng(rng.integers(2**32)))
             for k in names}
    for k, p in preds.items():
        if not np.isfinite(p.pred_acc):
            raise InputError(f"model {k!r} has nothing to predict on this slice")
    grid = default_grid()
    logprior = model.prior.log_density(grid)
    reps = max(int(n_draws), 1)
    draw = not (model.exact or model.se_source == "none")
    acc = {k: np.empty(reps) for k in names}
    th = {k: np.empty(reps) for k in names}
    for r in range(reps):
        shared = _draw(model.params, model.se_a, model.se_b, rng) if draw else model.params
        for k in names:
            acc[k][r], th[k][r] = _simulate_side(model, shared, evs[k], preds[k], grid, logprior, rng)
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    in_slice = pd.Index(slice_ids)
    out = []
    for ka, kb in pairs:
        pa, pb = preds[ka], preds[kb]
        d_acc = acc[ka] - acc[kb]
        d_th = th[ka] - th[kb]
        d_acc = d_acc - d_acc.mean() + (pa.pred_acc - pb.pred_acc)
        d_th = d_th - d_th.mean() + (pa.theta - pb.theta)
        common = len(scores[ka].index.intersection(scores[kb].index).intersection(in_slice))
        note = "" if common else "the two models answered no item of the slice in common: compared through the " \
                                 "calibration only"
        out.append(Comparison(
            diff_theta=pa.theta - pb.theta, theta_lo=float(np.quantile(d_th, lo_q)),
            theta_hi=float(np.quantile(d_th, hi_q)), p_theta=_two_sided(d_th), diff_acc=pa.pred_acc - pb.pred_acc,
            acc_lo=float(np.quantile(d_acc, lo_q)), acc_hi=float(np.quantile(d_acc, hi_q)), p_acc=_two_sided(d_acc),
            sd_acc=float(d_acc.std()), n_common=common, n_slice_items=len(slice_ids),
            n_predicted=min(pa.n_predicted, pb.n_predicted), paired=bool(common), level=level, note=note))
    return out


def _simulate_side(model: PredictiveModel, params: ItemParams, ev: _Evidence, pred: Prediction, grid: NDArray,
                   logprior: NDArray, rng: np.random.Generator) -> tuple[float, float]:
    """One simulated (accuracy, ability) of one model under one parameter draw."""
    post = _posterior(ev.obs_scores, params.subset(ev.obs_idx), grid, logprior)
    theta = float(np.interp(rng.uniform(0, 1), np.cumsum(post), grid))
    un = params.subset(ev.unanswered_idx)
    total = max(pred.n_predicted, 1)
    x = 0.0
    if len(un):
        p = prob(theta, un.a, un.b, un.c, un.d)
        sd = np.sqrt(max(float((p * (1 - p)).sum()), 0.0))
        extra = np.hypot(np.hypot(model.misfit_sd * len(un), pred.sd_components.get("form_misfit", 0.0) * total),
                         pred.sd_components.get("person_fit", 0.0) * total)
        x = float(p.sum()) + np.hypot(sd, extra) * float(rng.normal())
    return (float(ev.slice_answered.sum()) + x) / total, theta


def _two_sided(x: NDArray) -> float:
    share = float(min((x <= 0).mean(), (x >= 0).mean()))
    return float(min(1.0, 2 * max(share, 0.5 / x.size)))
