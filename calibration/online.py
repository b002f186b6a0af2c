"""Online calibration: new (pretest) items estimated on the operational scale, operational items held fixed.

The operational items keep their linked parameters; only the new items' 2PL (a, b) are estimated, so the
new items land on the operational scale with no linking step.  The latent distribution is taken from the
operational data: a normal whose mean and sd ``fit_mml`` estimates with every operational item fixed.

Methods (the online-calibration literature; ``ONLINE_METHODS``):

- ``method_a``  Stocking's (1988) Method A: each model's ability is its EAP from the operational items
                alone, treated as known; each new item's a, b maximise its likelihood at those abilities
                (plus the priors).  Ignores the abilities' error, so its a is the noisiest with few responses.
- ``oem``       Wainer & Mislevy's one EM cycle: each model's posterior over the nodes from the operational
                items alone; one M-step per new item on the expected counts (maximised to convergence).
                The posteriors never see the new item, so with many responses its a is attenuated.
- ``mem``       Ban et al.'s (2001) multiple EM cycles: as ``oem``, then the posteriors are recomputed with
                the new items at their current estimates and the M-step repeated until the new items move
                less than ``tol``.  The latent distribution stays the operational one.
- ``fpc``       fixed-parameter calibration: ``fit_mml`` on operational + new items with the operational
                items in ``fixed``, so the latent mean and sd are re-estimated with the new items (Kim 2006).

The M-step of ``method_a`` / ``oem`` / ``mem`` is one function (``_map_items``): each item maximises
``sum over its responses and nodes of w * log P(s | node) + log prior`` by Fisher scoring with step halving;
Method A is the case of one node per response (the model's EAP) with weight 1.  Priors are the fitter's
(``fit_mml``'s defaults: log a ~ N(0, 1), b ~ N(0, 3)), so an item with few or one-sided responses stays
finite.  A prior's mean and sd may also be arrays, one value per new item (each item's content prior,
``calibration.content_prior``); ``fpc`` takes one prior for all (``fit_mml`` has no per-item priors).  SEs come from the observed information of each new item's marginal log-likelihood given the
other items (``_observed_info``): the per-response posterior including the item (Louis' identity, per item,
as ``fit_mml``'s SEs); for Method A it is the plain observed information at the fixed abilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse

from adtbase.errors import InputError

from .ability import Prior, ability_posteriors
from .data import ResponseSet
from .irt import ItemParams
from .mml import fit_mml
from .mml.curves import _Priors, _to_nat

ONLINE_METHODS = ("method_a", "oem", "mem", "fpc")
DEFAULT_ONLINE_METHOD = "mem"   # chosen by bench/online_calibration.py (DESIGN.md, calibration)


@dataclass(frozen=True)
class OnlineCalibration:
    """New items' 2PL parameters on the operational scale, with SEs (NaN where an item had no responses)."""

    params: ItemParams                 # the new items only, in the order asked for
    se: dict[str, NDArray]             # "a", "b"
    n_responses: NDArray               # responses per new item
    method: str
    latent_mean: float                 # the operational latent distribution (fpc: re-estimated with the new items)
    latent_sd: float
    n_cycles: int                      # EM cycles (method_a: 0, oem: 1)
    converged: bool
    theta: NDArray                     # EAP per model (responses.model_ids order) from the operational items
                                       # alone (fpc: from the fit with the new items); Method A's abilities
    settings: dict = field(default_factory=dict)


def calibrate_online(responses: ResponseSet, operational: ItemParams, new_items: Sequence[str], *,
                     method: str = DEFAULT_ONLINE_METHOD, prior_a: tuple[ArrayLike, ArrayLike] = (0.0, 1.0),
                     prior_b: tuple[ArrayLike, ArrayLike] = (0.0, 3.0), n_quad: int = 61,
                     theta_range: tuple[float, float] = (-6.0, 6.0), max_cycles: int = 200,
                     tol: float = 1e-4) -> OnlineCalibration:
    """Estimate ``new_items`` (ids in ``responses``) with the ``operational`` items held at their parameters.

    ``prior_a`` (on log a) and ``prior_b``: (mean, sd), each a number or one value per new item.
    Responses to items that are neither operational nor new are left out (listed in ``settings['left_out']``).
    Bad input raises ``InputError`` listing every problem found.
    """
    new_ids = tuple(str(i) for i in new_items)
    new_pos, left_out = _check_inputs(responses, operational, new_ids, method, prior_a, prior_b, max_cycles)
    per_item = any(np.ndim(v) > 0 for v in (*prior_a, *prior_b))
    if per_item:
        prior_a = (np.broadcast_to(np.asarray(prior_a[0], float), len(new_ids)),
                   np.broadcast_to(np.asarray(prior_a[1], float), len(new_ids)))
        prior_b = (np.broadcast_to(np.asarray(prior_b[0], float), len(new_ids)),
                   np.broadcast_to(np.asarray(prior_b[1], float), len(new_ids)))
    priors = _Priors(prior_a, prior_b, (5.0, 17.0), (12.0, 2.0))  # type: ignore[arg-type]
    x = np.linspace(theta_range[0], theta_range[1], n_quad)
    n_new = len(new_ids)
    # operational responses and new-item responses, re-indexed into the operational params / new list
    op_of = _op_index(responses, operational)
    new_of = np.full(responses.n_items, -1)
    new_of[new_pos] = np.arange(n_new)
    on_op, on_new = op_of[responses.item_idx] >= 0, new_of[responses.item_idx] >= 0
    m_op, j_op, s_op = responses.model_idx[on_op], op_of[responses.item_idx[on_op]], responses.score[on_op]
    m_new, j_new, s_new = responses.model_idx[on_new], new_of[responses.item_idx[on_new]], responses.score[on_new]
    counts = np.bincount(j_new, minlength=n_new)
    settings = {"method": method, "prior_a": "per item" if per_item else list(prior_a),
                "prior_b": "per item" if per_item else list(prior_b), "n_quad": n_quad,
                "theta_range": list(theta_range), "left_out": left_out}

    if method == "fpc":
        return _fpc(responses, operational, new_ids, on_op | on_new, counts, priors, x, max_cycles, settings)

    # The latent distribution from the operational data: fit_mml with every operational item fixed.
    ops_only = responses.subset(on_op)
    fixed = {iid: (float(a), float(b), float(c), float(d)) for iid, a, b, c, d in zip(
        operational.item_ids, operational.a, operational.b, operational.c, operational.d, strict=True)}
    lat = fit_mml(ops_only, "2pl", fixed=fixed, n_quad=n_quad, theta_range=theta_range, compute_se=False,
                  warn=False)
    mu, sd = float(lat.settings["latent_mean"]), float(lat.settings["latent_sd"])
    prior = Prior.normal(mu, sd)
    _, post = ability_posteriors(m_op, j_op, s_op, operational, n_models=responses.n_models, prior=prior, grid=x)

    eap = post @ x
    rows = np.arange(n_new)
    if method == "method_a":
        X, W = eap[m_new][:, None], np.ones((m_new.size, 1))
        a, b = _map_items(j_new, X, s_new[:, None], W, n_new, priors)
    else:
        X, W = x[None, :], post[m_new]
        a, b = _map_items(rows, X, *_expected_counts(j_new, s_new, W, n_new), n_new, priors)
    cycles, converged = (0 if method == "method_a" else 1), True
    if method == "mem":
        both = ItemParams(operational.item_ids + new_ids, np.r_[operational.a, a], np.r_[operational.b, b],
                          np.r_[operational.c, np.zeros(n_new)], np.r_[operational.d, np.ones(n_new)])
        m_all, j_all, s_all = np.r_[m_op, m_new], np.r_[j_op, j_new + len(operational)], np.r_[s_op, s_new]
        converged = False
        while cycles < max_cycles:
            _, post = ability_posteriors(m_all, j_all, s_all, both, n_models=responses.n_models, prior=prior, grid=x)
            a1, b1 = _map_items(rows, X, *_expected_counts(j_new, s_new, post[m_new], n_new), n_new, priors,
                                start=(a, b))
            cycles += 1
            moved = float(np.max(np.abs(np.r_[np.log(a1) - np.log(a), b1 - b]), initial=0.0))
            a, b = a1, b1
            both.a[len(operational):], both.b[len(operational):] = a, b
            if moved < tol:
                converged = True
                break
        # SEs at the final posterior, which includes every new item (MEM's own fixed point)
        _, post = ability_posteriors(m_all, j_all, s_all, both, n_models=responses.n_models, prior=prior, grid=x)
        w_inc = post[m_new]
        info = _observed_info(j_new, s_new, X, w_inc, a, b, n_new, priors, include=False)
    else:
        info = _observed_info(j_new, s_new, X, W, a, b, n_new, priors, include=True)
    se_a, se_b = _se_from_info(info, a)
    se_a[counts == 0], se_b[counts == 0] = np.nan, np.nan
    return OnlineCalibration(ItemParams(new_ids, a, b), {"a": se_a, "b": se_b}, counts, method, mu, sd,
                             cycles, converged, eap, settings)


def _op_index(responses: ResponseSet, operational: ItemParams) -> NDArray:
    """Position of each response item in ``operational`` (-1 where it is not operational)."""
    pos = {iid: k for k, iid in enumerate(operational.item_ids)}
    return np.array([pos.get(iid, -1) for iid in responses.item_ids], dtype=np.int64)


def _check_inputs(responses: ResponseSet, operational: ItemParams, new_ids: tuple[str, ...], method: str,
                  prior_a: tuple[ArrayLike, ArrayLike], prior_b: tuple[ArrayLike, ArrayLike],
                  max_cycles: int) -> tuple[NDArray, list[str]]:
    """Every problem at once; returns the new items' positions in ``responses`` and the left-out items."""
    problems: list[str] = []
    if method not in ONLINE_METHODS:
        problems.append(f"unknown online-calibration method {method!r}; choose one of {', '.join(ONLINE_METHODS)}")
    for name, pair in (("prior_a", prior_a), ("prior_b", prior_b)):
        mean, sd = (np.asarray(v, float) for v in pair)
        if any(v.ndim > 1 or (v.ndim == 1 and v.size != len(new_ids)) for v in (mean, sd)):
            problems.append(f"{name}: a mean and sd are numbers or one value per new item ({len(new_ids)})")
        elif not (np.all(sd > 0) and np.all(np.isfinite(mean)) and np.all(np.isfinite(sd))):
            problems.append(f"{name}: the sd must be positive and the mean finite")
        elif method == "fpc" and (mean.ndim or sd.ndim):
            problems.append(f"{name}: fpc takes one prior for every new item (fit_mml has no per-item priors)")
    if max_cycles < 1:
        problems.append(f"max_cycles must be at least 1, got {max_cycles}")
    pos = {iid: k for k, iid in enumerate(responses.item_ids)}
    ops = set(operational.item_ids)
    if not new_ids:
        problems.append("no new items given")
    dup = sorted({i for i in new_ids if new_ids.count(i) > 1})
    if dup:
        problems.append(f"new items repeated: {', '.join(dup)}")
    missing = [i for i in new_ids if i not in pos]
    if missing:
        problems.append(f"new items not in the responses: {', '.join(missing)}")
    both = [i for i in new_ids if i in ops]
    if both:
        problems.append(f"new items that are also operational (fixed): {', '.join(both)}")
    a, b, c, d = operational.a, operational.b, operational.c, operational.d
    bad = ~(np.isfinite(a) & np.isfinite(b) & (a > 0) & (c >= 0) & (c < d) & (d <= 1))
    if bad.any():
        problems.append("operational items without usable parameters (need a > 0, finite b, 0 <= c < d <= 1): "
                        + ", ".join(operational.item_ids[k] for k in np.flatnonzero(bad)))
    ops_in = [k for k, iid in enumerate(responses.item_ids) if iid in ops]
    if not ops_in or not np.isin(responses.item_idx, ops_in).any():
        problems.append("no responses to operational items: the scale cannot be carried to the new items")
    if problems:
        raise InputError("online calibration: " + "; ".join(problems))
    new_set = set(new_ids)
    left_out = [iid for iid in responses.item_ids if iid not in ops and iid not in new_set]
    return np.array([pos[i] for i in new_ids], dtype=np.int64), left_out


def _fpc(responses: ResponseSet, operational: ItemParams, new_ids: tuple[str, ...], keep: NDArray,
         counts: NDArray, priors: _Priors, x: NDArray, max_cycles: int, settings: dict) -> OnlineCalibration:
    """Fixed-parameter calibration: the project's MML-EM with the operational items in ``fixed``."""
    fixed = {iid: (float(a), float(b), float(c), float(d)) for iid, a, b, c, d in zip(
        operational.item_ids, operational.a, operational.b, operational.c, operational.d, strict=True)}
    res = fit_mml(responses.subset(keep), "2pl", fixed=fixed, prior_a=priors.a, prior_b=priors.b, n_quad=x.size,
                  theta_range=(float(x[0]), float(x[-1])), warn=False)
    idx = np.array([res.params.item_ids.index(i) for i in new_ids])
    settings = dict(settings, item_status=[str(s) for s in res.item_status[idx]])
    return OnlineCalibration(ItemParams(new_ids, res.params.a[idx], res.params.b[idx]),
                             {"a": res.se["a"][idx], "b": res.se["b"][idx]}, counts, "fpc",
                             float(res.settings["latent_mean"]), float(res.settings["latent_sd"]), res.n_iter,
                             bool(res.converged), res.theta, settings)


def _per_item(j: NDArray, v: NDArray, n: int) -> NDArray:
    """Sum per item of a per-response quantity (summed over its nodes first)."""
    return np.bincount(j, weights=v.sum(axis=1), minlength=n)


def _objective(j: NDArray, X: NDArray, R: NDArray, N: NDArray, a: NDArray, b: NDArray, n: int,
               priors: _Priors) -> NDArray:
    z = a[j, None] * (X - b[j, None])
    return _per_item(j, R * z - N * np.logaddexp(0.0, z), n) + priors.logp("a", a) + priors.logp("b", b)


def _expected_counts(j: NDArray, s: NDArray, W: NDArray, n: int) -> tuple[NDArray, NDArray]:
    """Per item and node: expected correct mass R (sum of W s) and count N (sum of W), the EM's counts."""
    M = sparse.csr_array((np.ones(j.size), (j, np.arange(j.size))), shape=(n, j.size))
    return M @ (W * s[:, None]), M @ W


def _map_items(j: NDArray, X: NDArray, R: NDArray, N: NDArray, n: int, priors: _Priors,
               start: tuple[NDArray, NDArray] | None = None, max_iter: int = 100,
               tol: float = 1e-8) -> tuple[NDArray, NDArray]:
    """Per-item MAP of the 2PL (log a, b) from weighted counts: row r of item j[r] has nodes X[r] (or one
    shared row), expected correct mass R[r] and count N[r] there (OEM / MEM: one row per item, the EM's
    expected counts; Method A: one row per response, its ability, R = s, N = 1).  Fisher scoring, steps
    capped at 1, halved per item until the item's objective rises (the fitter's M-step rule, run to
    convergence)."""
    if start is None:
        cnt = np.maximum(_per_item(j, N, n), 1e-12)
        th = _per_item(j, N * X, n) / cnt
        pbar = np.clip(_per_item(j, R, n) / cnt, 0.05, 0.95)
        # the prior's median of a (one per item where the priors are per item)
        a, b = np.exp(np.broadcast_to(np.asarray(priors.a[0], float), n)).copy(), \
            np.clip(th - np.log(pbar / (1 - pbar)), -4, 4)
    else:
        a, b = start[0].copy(), start[1].copy()
    obj = _objective(j, X, R, N, a, b, n, priors)
    for _ in range(max_iter):
        aj = a[j, None]
        z = aj * (X - b[j, None])
        P = 1.0 / (1.0 + np.exp(-z))
        r, v = R - N * P, N * P * (1.0 - P)
        pga, pna = priors.grad_nhess("a", a)
        pgb, pnb = priors.grad_nhess("b", b)
        ga, gb = _per_item(j, r * z, n) + pga, -_per_item(j, r * aj, n) + pgb
        iaa, iab = _per_item(j, v * z * z, n) + pna, -_per_item(j, v * z * aj, n)
        ibb = _per_item(j, v * aj * aj, n) + pnb
        det = iaa * ibb - iab * iab
        sa, sb = (ibb * ga - iab * gb) / det, (iaa * gb - iab * ga) / det
        cap = np.minimum(1.0, 1.0 / np.maximum(np.maximum(np.abs(sa), np.abs(sb)), 1e-300))
        sa, sb = sa * cap, sb * cap
        step = np.ones(n)
        new_a, new_b, new_obj = a.copy(), b.copy(), obj.copy()
        todo = np.ones(n, dtype=bool)
        for _ in range(30):
            ca, cb = _to_nat("a", np.log(a) + step * sa), _to_nat("b", b + step * sb)
            co = _objective(j, X, R, N, ca, cb, n, priors)
            ok = todo & (co >= obj - 1e-12 * np.abs(obj))
            new_a[ok], new_b[ok], new_obj[ok] = ca[ok], cb[ok], co[ok]
            todo &= ~ok
            if not todo.any():
                break
            step[todo] *= 0.5
        moved = np.maximum(np.abs(np.log(new_a) - np.log(a)), np.abs(new_b - b))
        a, b, obj = new_a, new_b, new_obj
        if float(moved.max(initial=0.0)) < tol:
            break
    return a, b


def _observed_info(j: NDArray, s: NDArray, X: NDArray, W: NDArray, a: NDArray, b: NDArray, n: int,
                   priors: _Priors, include: bool) -> NDArray:
    """Observed information on (log a, b) of each item's marginal log-posterior, per item (n x 2 x 2).

    Per response, with w the posterior over its nodes given the item's own response (``include``: W times
    the item's likelihood, renormalised; otherwise W already includes it) and h the complete-data score:
    sum_q w (P(1 - P) dz dz' - (s - P) d2z - h h') + (sum_q w h)(sum_q w h)' (Louis' identity).
    """
    aj = a[j, None]
    z = aj * (X - b[j, None])
    P = 1.0 / (1.0 + np.exp(-z))
    w = np.broadcast_to(W, z.shape)
    if include:
        lg = np.log(np.maximum(w, 1e-300)) + s[:, None] * z - np.logaddexp(0.0, z)
        w = np.exp(lg - lg.max(axis=1, keepdims=True))
        w = w / w.sum(axis=1, keepdims=True)
    e = s[:, None] - P
    v = P * (1.0 - P)
    ha, hb = e * z, -e * aj                         # d log g / d(log a), d log g / db
    Sa, Sb = (w * ha).sum(axis=1, keepdims=True), (w * hb).sum(axis=1, keepdims=True)
    info = np.empty((n, 2, 2))
    info[:, 0, 0] = _per_item(j, w * (v * z * z - e * z - ha * ha) + Sa * Sa / z.shape[1], n)
    info[:, 0, 1] = info[:, 1, 0] = _per_item(j, w * (-v * z * aj + e * aj - ha * hb) + Sa * Sb / z.shape[1], n)
    info[:, 1, 1] = _per_item(j, w * (v * aj * aj - hb * hb) + Sb * Sb / z.shape[1], n)
    info[:, 0, 0] += priors.grad_nhess("a", a)[1]
    info[:, 1, 1] += priors.grad_nhess("b", b)[1]
    return info


def _se_from_info(info: NDArray, a: NDArray) -> tuple[NDArray, NDArray]:
    """SEs of a (delta method from log a) and b from the 2 x 2 observed information per item."""
    det = info[:, 0, 0] * info[:, 1, 1] - info[:, 0, 1] ** 2
    ok = (det > 0) & (info[:, 0, 0] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_la = np.where(ok, info[:, 1, 1] / det, np.nan)
        var_b = np.where(ok, info[:, 0, 0] / det, np.nan)
    return a * np.sqrt(var_la), np.sqrt(var_b)
