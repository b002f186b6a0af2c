"""Item fit and item flags: what an auditor looks at to find broken items.

- ``item_fit``: per item, from sparse responses and ability estimates, the infit and outfit mean
  squares (information-weighted and unweighted mean squared standardised residuals; about 1 when the
  model fits, > 1 noisy, < 1 too deterministic), their Wilson-Hilferty t statistics, observed and
  expected mean score, the correlation of the item's score with ability, and the wrong-key test: is the
  item answered right by *weaker* models (``reversal_test``)? That is the sign of a wrong answer key,
  and it must be read from the responses: every fitter's prior on log a keeps the fitted discrimination
  positive, so a negative a can never show it.
- ``reversal_test``: per item, the one-sided exact rank test (Wilcoxon-Mann-Whitney, conditional on the
  number of right answers) that the models who got the item right are less able than those who got it
  wrong. Under "score unrelated to ability" every way of handing the item's k right answers to its n
  models is equally likely, so the rank sum's null distribution is exact for any n: valid with the 20-35
  models a bank is calibrated on, where a t test of the point-biserial correlation (normal theory) or a
  likelihood-ratio test (asymptotic chi-square) is not, and where an item few models got right can only
  ever reach a large p (one right answer of 20: p >= 1/20).
- ``parameter_drift``: z of the change of each common item's parameters between two calibrations
  (on one scale: link first), against the SEs of both.
- ``flag_items``: one row per (item, flag) with a reason a person can act on; the one rule for
  the report and ``adt calibration flags``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2, norm, rankdata

from adtbase.errors import InputError

from .drift import adjust_pvalues
from .irt import EPS, ItemParams, prob

FLAG_COLUMNS = ["item_id", "flag", "value", "threshold", "reason"]
# The wrong-key rule's defaults (flag_items): enough models, and enough of them on each side, to carry evidence.
WRONG_KEY_MIN_RESPONSES = 10
WRONG_KEY_MIN_RIGHT = 3
WRONG_KEY_MIN_WRONG = 3
EXACT_MAX_CELLS = 5_000_000  # exact null distribution when n^2 k^2 / 2 stays below this; normal approximation above


def _triplets(responses: Any, params: ItemParams) -> tuple[NDArray, NDArray, NDArray, int]:
    """Response triplets with item indices mapped onto ``params`` (matched by item id)."""
    for attr in ("model_idx", "item_idx", "score", "item_ids", "model_ids"):
        if not hasattr(responses, attr):
            raise InputError(f"responses must be a ResponseSet (missing attribute {attr!r})")
    pos = {k: i for i, k in enumerate(params.item_ids)}
    missing = [k for k in responses.item_ids if k not in pos]
    used = np.unique(np.asarray(responses.item_idx))
    missing_used = [responses.item_ids[i] for i in used if responses.item_ids[i] not in pos]
    if missing_used:
        raise InputError(f"item {missing_used[0]!r} has responses but no parameters "
                         f"({len(missing_used)} such items; {len(missing)} ids without parameters in all)")
    remap = np.array([pos.get(k, -1) for k in responses.item_ids], dtype=np.int64)
    j = remap[np.asarray(responses.item_idx, dtype=np.int64)]
    return (np.asarray(responses.model_idx, dtype=np.int64), j, np.asarray(responses.score, dtype=float),
            len(responses.model_ids))


def item_fit(responses: Any, params: ItemParams, theta: ArrayLike) -> pd.DataFrame:
    """Infit/outfit per item from a ResponseSet and one ability per model (aligned with its model_ids).

    Columns: ``n, mean_score, expected_score, infit, outfit, infit_t, outfit_t, r_theta`` and the
    wrong-key test's ``n_right, n_wrong, rank_biserial, p_reversed`` (``reversal_test``); indexed by item
    id, one row per item of ``params`` (NaN where an item has no responses). Abilities should be point
    estimates from the same calibration (EAP is fine; mean squares then sit slightly below 1).
    """
    m, j, s, n_models = _triplets(responses, params)
    th = np.asarray(theta, dtype=float)
    if th.shape != (n_models,):
        raise InputError(f"theta has shape {th.shape}; expected one ability per model ({n_models},)")
    answered = np.bincount(m, minlength=n_models) > 0
    if not np.isfinite(th[answered]).all():
        bad = int(np.flatnonzero(answered & ~np.isfinite(th))[0])
        raise InputError(f"theta of model {responses.model_ids[bad]!r} is not finite")
    n_items = len(params)
    p = np.clip(prob(th[m], params.a[j], params.b[j], params.c[j], params.d[j]), EPS, 1 - EPS)
    w = p * (1 - p)
    resid2 = (s - p) ** 2
    kurt = p * (1 - p) ** 4 + (1 - p) * p**4  # E[(x - P)^4] of a Bernoulli

    def per_item(x: NDArray) -> NDArray:
        return np.bincount(j, weights=x, minlength=n_items)

    n = np.bincount(j, minlength=n_items).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        infit = per_item(resid2) / per_item(w)
        outfit = per_item(resid2 / w) / n
        # Wilson-Hilferty standardisation (Wright & Masters): t = (MS^(1/3) - 1)(3/q) + q/3.
        q_out = np.sqrt(np.maximum(per_item(kurt / w**2) / n**2 - 1 / n, 1e-12))
        q_in = np.sqrt(np.maximum(per_item(kurt - w**2) / per_item(w) ** 2, 1e-12))
        infit_t = (np.cbrt(infit) - 1) * 3 / q_in + q_in / 3
        outfit_t = (np.cbrt(outfit) - 1) * 3 / q_out + q_out / 3
        mean_s = per_item(s) / n
        mean_t = per_item(th[m]) / n
        cov = per_item(s * th[m]) / n - mean_s * mean_t
        var_s = per_item(s**2) / n - mean_s**2
        var_t = per_item(th[m] ** 2) / n - mean_t**2
        r_theta = cov / np.sqrt(var_s * var_t)
    r_theta[~(var_s > 1e-12) | ~(var_t > 1e-12)] = np.nan
    rev = reversal_test(j, s, th[m], n_items)
    return pd.DataFrame({"n": n.astype(int), "mean_score": mean_s, "expected_score": _safe_div(per_item(p), n),
                         "infit": infit, "outfit": outfit, "infit_t": infit_t, "outfit_t": outfit_t,
                         "r_theta": r_theta, **rev}, index=pd.Index(list(params.item_ids), name="item_id"))


def reversal_test(item_idx: ArrayLike, score: ArrayLike, theta: ArrayLike, n_items: int) -> dict[str, NDArray]:
    """The wrong-key test of every item: do the models that got it right have *lower* ability?

    One response per (model, item) (a ``ResponseSet`` averages repeats); ``theta`` is each response's
    model's ability. A model counts as right when its score is at least 0.5 (0/1 scores: exactly right or
    wrong). Per item: ``n_right``, ``n_wrong``, the rank-biserial correlation of score with ability
    (``rank_biserial`` = 2 U / (n_right n_wrong) - 1, U the Mann-Whitney count of (right, wrong) pairs
    where the right model is the abler; -1: every right model below every wrong one; +1: the reverse) and
    ``p_reversed``, the one-sided p of U this small when score is unrelated to ability: exact (the rank
    sum's distribution over all equally likely ways to place the k right answers among the n models; tied
    abilities take mid-ranks) unless n^2 k^2 is large, then the normal approximation with tie correction
    and continuity correction. NaN where an item has no right or no wrong answer.
    """
    j = np.asarray(item_idx, dtype=np.int64)
    right = np.asarray(score, dtype=float) >= 0.5
    t = np.asarray(theta, dtype=float)
    n_right = np.bincount(j, weights=right, minlength=n_items).astype(int)
    n_all = np.bincount(j, minlength=n_items)
    n_wrong = n_all - n_right
    rb = np.full(n_items, np.nan)
    pval = np.full(n_items, np.nan)
    order = np.lexsort((t, j))
    starts = np.searchsorted(j[order], np.arange(n_items + 1))
    for i in np.flatnonzero((n_right > 0) & (n_wrong > 0)):
        sel = order[starts[i]:starts[i + 1]]
        ranks = rankdata(t[sel])
        k, n = int(n_right[i]), int(n_all[i])
        u = float(ranks[right[sel]].sum()) - k * (k + 1) / 2
        rb[i] = 2 * u / (k * (n - k)) - 1
        pval[i] = _u_cdf(u, k, n, ranks)
    return {"n_right": n_right, "n_wrong": n_wrong, "rank_biserial": rb, "p_reversed": pval}


def _u_cdf(u: float, k: int, n: int, ranks: NDArray) -> float:
    """P(U <= u) under the null: exact where affordable, else normal with tie and continuity corrections."""
    small = min(k, n - k)
    if n * n * small * small / 2 <= EXACT_MAX_CELLS:
        dist = _u_distribution(n, k)
        return float(dist[: int(np.floor(u + 1e-9)) + 1].sum())
    mean = k * (n - k) / 2
    _, counts = np.unique(ranks, return_counts=True)
    var = k * (n - k) / 12 * ((n + 1) - float((counts**3 - counts).sum()) / (n * (n - 1)))
    return float(norm.cdf((u + 0.5 - mean) / np.sqrt(max(var, 1e-300))))


@lru_cache(maxsize=4096)
def _u_distribution(n: int, k: int) -> NDArray:
    """Null distribution of the Mann-Whitney U of k right among n (no ties): P(U = 0..k(n-k)).

    0/1 knapsack over the ranks 1..n of the number of k-subsets with each rank sum (additive only, so
    float64 keeps it exact to rounding); U = rank sum - k(k+1)/2. Symmetric in k <-> n - k.
    """
    k = min(k, n - k)
    top = k * (n - k)
    ways = np.zeros((k + 1, top + k * (k + 1) // 2 + 1 + n))
    ways[0, 0] = 1.0
    for r in range(1, n + 1):
        ways[1:, r:] = ways[1:, r:] + ways[:-1, :-r]
    w = ways[k, k * (k + 1) // 2: k * (k + 1) // 2 + top + 1]
    dist = w / w.sum()
    dist.setflags(write=False)
    return dist


def lord_wingersky(p: NDArray) -> NDArray:
    """Sum-score distribution at each node: p (n_nodes, n_items) -> (n_nodes, n_items + 1)."""
    dist = np.zeros((p.shape[0], p.shape[1] + 1))
    dist[:, 0] = 1.0
    for i in range(p.shape[1]):
        pi = p[:, i : i + 1]
        dist[:, 1 : i + 2] = dist[:, 1 : i + 2] * (1 - pi) + dist[:, : i + 1] * pi
        dist[:, 0] *= 1 - pi[:, 0]
    return dist


def s_x2(responses: Any, params: ItemParams, quad_points: ArrayLike, quad_weights: ArrayLike, *,
         n_item_params: int = 2, min_expected: float = 1.0) -> pd.DataFrame:
    """Orlando-Thissen S-X2 per item, from the models that answered every item of ``params`` (0/1).

    Observed proportions correct within each sum-score group are compared with the model's expected
    proportions (Lord-Wingersky recursion over the latent distribution ``quad_points``/``quad_weights``);
    groups are merged from the tails until every expected count (right and wrong) is at least
    ``min_expected``; df = groups - ``n_item_params``. Sparse data: only complete patterns are used, so
    on a bank where no model took every item this raises; compute it per form instead.
    """
    m, j, s, n_models = _triplets(responses, params)
    n = len(params)
    if np.any((s != 0) & (s != 1)):
        raise InputError("S-X2 needs 0/1 scores; fractional scores have no sum-score groups")
    counts = np.bincount(m, minlength=n_models)
    complete = np.flatnonzero(counts == n)
    if complete.size < 10:
        raise InputError(f"S-X2 needs models that answered all {n} items; only {complete.size} did")
    keep = np.isin(m, complete)
    rows = np.searchsorted(complete, m[keep])
    x = np.zeros((complete.size, n))
    x[rows, j[keep]] = s[keep]
    total = x.sum(axis=1).astype(int)
    x_pts = np.asarray(quad_points, dtype=float)
    w = np.asarray(quad_weights, dtype=float)
    w = w / w.sum()
    p = np.clip(prob(x_pts[:, None], params.a, params.b, params.c, params.d), EPS, 1 - EPS)
    full = w @ lord_wingersky(p)  # P(sum = k)
    n_k = np.bincount(total, minlength=n + 1).astype(float)
    out = []
    for i in range(n):
        rest = lord_wingersky(np.delete(p, i, axis=1))  # sum over the other items
        # E[item i right | sum = k] = sum_q w P_i(q) S_{k-1}^{-i}(q) / P(sum = k), k = 1..n-1
        joint = (w * p[:, i]) @ rest
        ks = np.arange(1, n)
        expected = joint[ks - 1] / np.maximum(full[ks], 1e-300)
        observed = np.bincount(total, weights=x[:, i], minlength=n + 1)[ks]
        groups = _merge_groups(n_k[ks], expected, min_expected)
        stat = 0.0
        for g in groups:
            nn = n_k[ks][g].sum()
            if nn == 0:
                continue
            e = float((n_k[ks][g] * expected[g]).sum() / nn)
            o = float(observed[g].sum() / nn)
            stat += nn * (o - e) ** 2 / max(e * (1 - e), 1e-12)
        df = len(groups) - n_item_params
        out.append((stat, df, float(chi2.sf(stat, df)) if df > 0 else float("nan")))
    res = pd.DataFrame(out, columns=["s_x2", "df", "p"], index=pd.Index(list(params.item_ids), name="item_id"))
    res.attrs["n_complete_models"] = int(complete.size)
    return res


def _merge_groups(n_k: NDArray, expected: NDArray, min_expected: float) -> list[NDArray]:
    """Adjacent sum-score groups merged (from both tails inwards) until expected counts reach the minimum."""
    groups = [np.array([k]) for k in range(n_k.size)]

    def ok(g: NDArray) -> bool:
        e = (n_k[g] * expected[g]).sum()
        return bool(e >= min_expected and n_k[g].sum() - e >= min_expected)

    for _ in range(2):  # once from the low tail, once from the high tail
        merged: list[NDArray] = []
        carry = np.array([], dtype=int)
        for g in groups:
            carry = np.concatenate([carry, g])
            if ok(carry):
                merged.append(carry)
                carry = np.array([], dtype=int)
        if carry.size:
            if merged:
                merged[-1] = np.concatenate([merged[-1], carry])
            else:
                merged.append(carry)
        groups = merged[::-1]
    return groups


def parameter_drift(old: ItemParams, old_se: Mapping[str, ArrayLike], new: ItemParams,
                    new_se: Mapping[str, ArrayLike], *, names: Sequence[str] = ("a", "b"),
                    z_crit: float = 3.0) -> pd.DataFrame:
    """Per common item: old and new values, z = (new - old) / sqrt(se_old^2 + se_new^2), ``moved``.

    Both calibrations must be on one scale (fixed-parameter linking, or ``linking.link`` then
    ``transform_params``/``transform_se`` on the new one), else every item looks moved.
    """
    pos_old = {k: i for i, k in enumerate(old.item_ids)}
    common = [k for k in new.item_ids if k in pos_old]
    io = np.array([pos_old[k] for k in common], dtype=np.int64)
    jn = np.array([i for i, k in enumerate(new.item_ids) if k in pos_old], dtype=np.int64)
    out = pd.DataFrame(index=pd.Index(common, name="item_id"))
    moved = np.zeros(len(common), bool)
    worst = np.zeros(len(common))
    for name in names:
        if name not in old_se or name not in new_se:
            raise InputError(f"parameter_drift: no standard errors for {name!r} in both calibrations")
        so, sn = np.asarray(old_se[name], dtype=float), np.asarray(new_se[name], dtype=float)
        if so.shape != (len(old),) or sn.shape != (len(new),):
            raise InputError(f"parameter_drift: se[{name!r}] must align with the items of each calibration")
        vo, vn = getattr(old, name)[io], getattr(new, name)[jn]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (vn - vo) / np.sqrt(so[io] ** 2 + sn[jn] ** 2)
        out[f"{name}_old"], out[f"{name}_new"], out[f"z_{name}"] = vo, vn, z
        moved |= np.abs(np.nan_to_num(z)) > z_crit
        worst = np.maximum(worst, np.abs(np.nan_to_num(z)))
    out["max_abs_z"] = worst
    out["moved"] = moved
    return out


def flag_items(params: ItemParams, *, fit: pd.DataFrame | None = None, item_status: ArrayLike | None = None,
               drift: pd.DataFrame | None = None, keyed: ArrayLike | None = None, a_min: float = 0.25,
               infit_range: tuple[float, float] = (0.7, 1.3), outfit_range: tuple[float, float] = (0.7, 1.3),
               min_abs_t: float = 2.0, alpha: float = 0.05, adjust: str = "bh",
               min_responses: int = WRONG_KEY_MIN_RESPONSES, min_right: int = WRONG_KEY_MIN_RIGHT,
               min_wrong: int = WRONG_KEY_MIN_WRONG) -> pd.DataFrame:
    """Flags with reasons, one row per (item, flag): columns ``item_id, flag, value, threshold, reason``.

    The one rule for every caller (``adt calibration flags`` and the report both come here, with the same
    inputs: ``adt.workflow.calibrate.calibration_flags``).

    - ``wrong_key``: the evidence that weaker models do better (``reversal_test`` in ``fit``): tested on
      items with an objective key (``keyed``; default: all), at least ``min_responses`` models, at least
      ``min_right`` right and ``min_wrong`` wrong; the one-sided p values of the tested items adjusted
      together (``adjust``: Benjamini-Hochberg by default, ``drift.adjust_pvalues`` as the drift checks);
      flagged where the adjusted p < ``alpha``. ``value`` is the adjusted p, ``threshold`` alpha; the
      reason states the statistic, n and both p values.
    - ``low_discrimination`` (a < a_min): the item barely separates models. (A wrong key does not show
      as a negative a: every fitter's prior on log a keeps a positive; it shows in ``wrong_key``.)
    - ``unanswered``, ``all_correct``, ``all_wrong``: from the calibration's ``item_status`` or, without
      it, from ``fit`` (n == 0, mean score 1 or 0): such items are at their priors, not calibrated.
    - ``infit_misfit`` / ``outfit_misfit``: on items with at least ``min_responses`` responses, mean square
      outside its range AND its t beyond ``min_abs_t`` on the same side (t > min_abs_t above the range,
      t < -min_abs_t below it), so a small, noisy item is not flagged on a mean square that chance alone
      explains, nor an item whose extreme probabilities make the mean square's t point the other way.
    - ``parameter_moved``: from ``parameter_drift`` (|z| above its criterion).
    """
    rows: list[tuple[str, str, float, float, str]] = []
    ids = list(params.item_ids)
    status = None if item_status is None else np.asarray(item_status, dtype=object)
    if status is not None and status.shape != (len(ids),):
        raise InputError(f"item_status has {status.shape[0]} entries for {len(ids)} items")
    has_key = np.ones(len(ids), bool) if keyed is None else np.asarray(keyed, dtype=bool)
    if has_key.shape != (len(ids),):
        raise InputError(f"keyed has {has_key.shape[0]} entries for {len(ids)} items")
    calibrated = np.ones(len(ids), bool) if status is None else status == "calibrated"
    for i, k in enumerate(ids):
        a = float(params.a[i])
        if calibrated[i] and a < a_min:  # a prior value says nothing
            rows.append((k, "low_discrimination", a, a_min,
                         f"a = {a:.3g} < {a_min:g}: the item barely separates models; check the key and wording"))
    if status is not None:
        for i, k in enumerate(ids):
            if status[i] in ("unanswered", "all_correct", "all_wrong"):
                rows.append((k, str(status[i]), float("nan"), float("nan"), _STATUS_REASON[str(status[i])]))
    if fit is not None:
        fit = fit.reindex(ids)
        if status is None:
            for k, n, ms in zip(ids, fit["n"].to_numpy(), fit["mean_score"].to_numpy(), strict=True):
                if not n > 0:
                    rows.append((k, "unanswered", float("nan"), float("nan"), _STATUS_REASON["unanswered"]))
                elif ms >= 1:
                    rows.append((k, "all_correct", 1.0, 1.0, _STATUS_REASON["all_correct"]))
                elif ms <= 0:
                    rows.append((k, "all_wrong", 0.0, 0.0, _STATUS_REASON["all_wrong"]))
        rows += _wrong_key_rows(ids, fit, has_key, alpha=alpha, adjust=adjust, min_responses=min_responses,
                                min_right=min_right, min_wrong=min_wrong)
        enough = fit["n"].fillna(0).to_numpy() >= min_responses
        for col, (lo, hi) in (("infit", infit_range), ("outfit", outfit_range)):
            for k, ok, ms, t in zip(ids, enough, fit[col].to_numpy(), fit[f"{col}_t"].to_numpy(), strict=True):
                # t must point the way the mean square does: with answers near certain (p near 0 or 1) the
                # Wilson-Hilferty t of a small outfit is large and positive (its q/3 term), which is no
                # evidence of answers too deterministic but of a mean square too unstable to read.
                if ok and np.isfinite(ms) and ((ms < lo and t < -min_abs_t) or (ms > hi and t > min_abs_t)):
                    kind = "noisy: answers vary more than the model predicts" if ms > hi else \
                        "too deterministic: answers vary less than the model predicts"
                    rows.append((k, f"{col}_misfit", float(ms), hi if ms > hi else lo,
                                 f"{col} mean square {ms:.2f} outside [{lo:g}, {hi:g}] (t = {t:.1f}); {kind}"))
    if drift is not None:
        for key, row in drift[drift["moved"]].iterrows():
            parts = [f"{c[2:]}: {row[c[2:] + '_old']:.3g} -> {row[c[2:] + '_new']:.3g} (z = {row[c]:.1f})"
                     for c in drift.columns if c.startswith("z_")]
            rows.append((str(key), "parameter_moved", float(row["max_abs_z"]), float("nan"),
                         "parameters moved between calibrations beyond their SEs: " + "; ".join(parts)))
    return pd.DataFrame(rows, columns=FLAG_COLUMNS).sort_values(["item_id", "flag"], kind="stable",
                                                                 ignore_index=True)


def wrong_key_tested(fit: pd.DataFrame, keyed: ArrayLike | None = None, *,
                     min_responses: int = WRONG_KEY_MIN_RESPONSES, min_right: int = WRONG_KEY_MIN_RIGHT,
                     min_wrong: int = WRONG_KEY_MIN_WRONG) -> NDArray[np.bool_]:
    """Which rows of ``fit`` the wrong-key rule tests: keyed, enough models, enough right and enough wrong."""
    has_key = np.ones(len(fit), bool) if keyed is None else np.asarray(keyed, dtype=bool)
    n = fit["n"].fillna(0).to_numpy()
    return np.asarray(has_key & (n >= min_responses) & (fit["n_right"].fillna(0).to_numpy() >= min_right)
                      & (fit["n_wrong"].fillna(0).to_numpy() >= min_wrong) & np.isfinite(fit["p_reversed"].to_numpy()))


def _wrong_key_rows(ids: list[str], fit: pd.DataFrame, keyed: NDArray[np.bool_], *, alpha: float, adjust: str,
                    min_responses: int, min_right: int, min_wrong: int) -> list[tuple[str, str, float, float, str]]:
    tested = wrong_key_tested(fit, keyed, min_responses=min_responses, min_right=min_right, min_wrong=min_wrong)
    p = np.where(tested, fit["p_reversed"].to_numpy(dtype=float), np.nan)
    p_adj = adjust_pvalues(p, adjust)
    n_tested = int(tested.sum())
    adjusted = "unadjusted" if adjust == "none" else \
        f"{_ADJUST_NAME.get(adjust, adjust)}-adjusted over {n_tested} tested items"
    rows = []
    for i in np.flatnonzero(tested & (p_adj < alpha)):
        r = fit.iloc[i]
        rows.append((ids[i], "wrong_key", float(p_adj[i]), alpha,
                     f"weaker models do better: rank-biserial correlation of score with ability "
                     f"{r['rank_biserial']:+.2f} over n = {int(r['n'])} models ({int(r['n_right'])} right, "
                     f"{int(r['n_wrong'])} wrong); one-sided Mann-Whitney rank test p = {r['p_reversed']:.2g}, "
                     f"{adjusted} p = {p_adj[i]:.2g} < {alpha:g}; likely a wrong answer key"))
    return rows


_ADJUST_NAME = {"bh": "BH", "holm": "Holm"}


_STATUS_REASON = {
    "unanswered": "no responses: parameters are the prior, not a calibration",
    "all_correct": "every response correct: difficulty is not identified (kept at the prior)",
    "all_wrong": "every response wrong: difficulty is not identified (kept at the prior)",
}


def _safe_div(x: NDArray, n: NDArray) -> NDArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / n
