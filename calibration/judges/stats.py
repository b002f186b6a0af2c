"""Per-judge statistics against gold/human labels, with intervals: accuracy (per order and position-combined),
Cohen's kappa (quadratic-weighted for graded labels), Spearman for pointwise scores, position consistency,
first-position preference, longer-answer preference next to the gold rate; and the length-controlled score.

Proportions carry Wilson intervals (``calibration.validation.wilson_interval``); kappa and Spearman a
percentile bootstrap over cases with the ``rng`` passed in. Accuracy credits a verdict on the gold's grid of
K classes by ``max(0, 1 - (K - 1) * |verdict - gold|)``: an exact class 1, half a step 0.5, so a pair whose two
orders disagree (combined 0.5 against a two-class gold) counts half, as a coin flip between them would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from ..validation import wilson_interval
from .frame import Verdicts, align, check_gold, check_judgments, verdicts

LEVEL = 0.95


def credit(verdict: ArrayLike, gold: ArrayLike, n_classes: int) -> NDArray[np.float64]:
    """Agreement credit of each verdict with its gold label on a grid of ``n_classes`` (NaN where either is)."""
    v, g = np.asarray(verdict, dtype=float), np.asarray(gold, dtype=float)
    return np.clip(1.0 - (n_classes - 1) * np.abs(v - g), 0.0, 1.0)


def cohen_kappa(a: ArrayLike, b: ArrayLike, weights: str | None = None) -> float:
    """Cohen's kappa of two label arrays (categories: the sorted union of their values; ``weights``
    None, "linear" or "quadratic" over category positions, as scikit-learn's); pairs with a NaN are left out."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    cats = np.unique(np.concatenate([x, y]))
    if len(x) == 0 or len(cats) < 2:
        return float("nan")
    k = len(cats)
    conf = np.zeros((k, k))
    np.add.at(conf, (np.searchsorted(cats, x), np.searchsorted(cats, y)), 1.0)
    expected = np.outer(conf.sum(1), conf.sum(0)) / conf.sum()
    pos = np.arange(k)
    w = {None: (pos[:, None] != pos[None, :]).astype(float), "linear": np.abs(pos[:, None] - pos[None, :]),
         "quadratic": (pos[:, None] - pos[None, :]) ** 2.0}[weights]
    den = float((w * expected).sum())
    return float(1.0 - (w * conf).sum() / den) if den > 0 else float("nan")


def _boot(fn, n: int, rng: np.random.Generator, n_boot: int, level: float) -> tuple[float, float]:
    vals = np.array([fn(rng.integers(0, n, n)) for _ in range(n_boot)]) if n > 1 else np.array([np.nan])
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(vals, (1 - level) / 2)), float(np.quantile(vals, (1 + level) / 2))


def _prop(hits: NDArray[np.float64], level: float) -> tuple[float, float, float, int]:
    h = hits[np.isfinite(hits)]
    n = len(h)
    p = float(h.mean()) if n else float("nan")
    lo, hi = wilson_interval(p, n, level)
    return p, float(lo), float(hi), n


def length_feature(len_diff: ArrayLike, scale: float | None = None) -> tuple[NDArray[np.float64], float]:
    """AlpacaEval's length feature: ``tanh(diff / scale)``, scale the SD of the finite differences unless
    given (0 where the difference is unknown); returns the feature and the scale used."""
    d = np.asarray(len_diff, dtype=float)
    if scale is None:
        fin = d[np.isfinite(d)]
        scale = float(fin.std()) if len(fin) > 1 and fin.std() > 0 else 1.0
    return np.where(np.isfinite(d), np.tanh(np.nan_to_num(d) / scale), 0.0), float(scale)


def _logit_fit(y: NDArray[np.float64], x: NDArray[np.float64]) -> tuple[float, float]:
    """Intercept and slope of a logistic regression of a fractional outcome y in [0, 1] on x (quasi-binomial)."""
    def nll(p: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        z = p[0] + p[1] * x
        mu = 1 / (1 + np.exp(-z))
        val = float(np.sum(np.logaddexp(0, z) - y * z)) + 1e-6 * float(p @ p)
        r = mu - y
        return val, np.array([r.sum(), (r * x).sum()]) + 2e-6 * p
    res = optimize.minimize(nll, np.zeros(2), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def length_controlled(verdict: ArrayLike, len_diff: ArrayLike, rng: np.random.Generator, *,
                      n_boot: int = 500, level: float = LEVEL, scale: float | None = None) -> dict[str, float]:
    """Raw score (mean verdict: the candidate's win rate, ties half) and the length-controlled score: a
    logistic regression of the verdict on ``length_feature(candidate length - baseline length)``, read at
    equal length (sigmoid of the intercept), as AlpacaEval's length-controlled win rate; both with bootstrap
    intervals over cases, and the slope (> 0: longer candidates are preferred)."""
    v = np.asarray(verdict, dtype=float)
    x, scale = length_feature(len_diff, scale)
    ok = np.isfinite(v)
    v, x = v[ok], x[ok]
    n = len(v)
    if n == 0:
        return {k: float("nan") for k in ("raw", "raw_lo", "raw_hi", "lc", "lc_lo", "lc_hi", "slope")} | {"n": 0}
    a, b = _logit_fit(v, x)

    def lc(ix: NDArray[np.int64]) -> float:
        return float(1 / (1 + np.exp(-_logit_fit(v[ix], x[ix])[0])))
    lo, hi = _boot(lc, n, rng, n_boot, level)
    rlo, rhi = _boot(lambda ix: float(v[ix].mean()), n, rng, n_boot, level)
    return {"raw": float(v.mean()), "raw_lo": rlo, "raw_hi": rhi, "lc": float(1 / (1 + np.exp(-a))),
            "lc_lo": lo, "lc_hi": hi, "slope": b, "scale": scale, "n": n}


STAT_COLUMNS = ("rater", "n_cases", "n_calls", "n_unparseable", "n_gold",
                "acc", "acc_lo", "acc_hi", "acc_ab", "acc_ab_lo", "acc_ab_hi", "acc_ba", "acc_ba_lo", "acc_ba_hi",
                "kappa", "kappa_lo", "kappa_hi", "kappa_weights", "spearman", "spearman_lo", "spearman_hi",
                "consistency", "consistency_lo", "consistency_hi", "n_both_orders",
                "first_pref", "first_pref_lo", "first_pref_hi", "tie_rate",
                "longer_pref", "longer_pref_lo", "longer_pref_hi", "gold_longer", "gold_longer_lo", "gold_longer_hi")


def judge_stats(judgments: pd.DataFrame, rng: np.random.Generator, *, gold: pd.DataFrame | None = None,
                lengths: pd.DataFrame | None = None, n_classes: int | None = None, n_boot: int = 500,
                level: float = LEVEL) -> pd.DataFrame:
    """One row per rater (``STAT_COLUMNS``): the judgments frame (contract coding) against gold labels
    (``check_gold``'s frame; statistics that need them are NaN without), with answer lengths (``run_id``,
    ``item_id``, ``len_candidate``, ``len_baseline``) for the longer-answer preference. ``n_classes``: the
    gold's grid (default: 3 when a gold label is a tie, else 2 for pairwise; the raters' most levels).

    n_cases: cases with a verdict; n_calls: parsed calls; n_unparseable: calls whose verdict is NaN; acc_ab /
    acc_ba: per order, acc: position-combined (``combine_orders``); kappa: every parsed call against its gold;
    consistency: cases with both orders parsed whose verdicts agree; first_pref: decisive calls picking the
    answer shown first; longer_pref: decisive calls picking the longer answer, gold_longer the gold's rate."""
    checked = check_judgments(judgments)
    vd = verdicts(checked)
    unparseable = checked[checked["verdict"].isna()].groupby("rater").size()
    g = align(vd.cases, check_gold(gold) if gold is not None else None, "label")
    lc, lb = align(vd.cases, lengths, "len_candidate"), align(vd.cases, lengths, "len_baseline")
    k = n_classes or gold_classes(g, vd)
    rows = [_rater_row(vd, j, g, lc - lb, k, rng, n_boot, level) for j in range(len(vd.raters))]
    for row in rows:
        row["n_unparseable"] = int(unparseable.get(row["rater"], 0))
    return pd.DataFrame(rows, columns=list(STAT_COLUMNS))


def gold_classes(gold: NDArray[np.float64], vd: Verdicts) -> int:
    """The gold labels' grid: pairwise (ordered calls) 3 classes when a label is a tie, else 2; pointwise the
    raters' most levels."""
    if any(o in vd.orders for o in ("ab", "ba")):
        g = gold[np.isfinite(gold)]
        return 3 if np.any(np.isclose(g, 0.5)) else 2
    return int(vd.n_levels.max()) if len(vd.n_levels) else 2


def _rater_row(vd: Verdicts, j: int, g: NDArray[np.float64], diff: NDArray[np.float64], k: int,
               rng: np.random.Generator, n_boot: int, level: float) -> dict[str, object]:
    v = vd.v[:, j, :]
    comb, inc = vd.combined()
    c = comb[:, j]
    has_gold = np.isfinite(g)
    row: dict[str, object] = {"rater": vd.raters[j], "n_cases": int(np.isfinite(c).sum()),
                              "n_calls": int(np.isfinite(v).sum()), "n_unparseable": 0,
                              "n_gold": int((has_gold & np.isfinite(c)).sum())}
    row["acc"], row["acc_lo"], row["acc_hi"], _ = _prop(np.where(has_gold, credit(c, g, k), np.nan), level)
    for o in ("ab", "ba"):
        vo = v[:, vd.orders.index(o)] if o in vd.orders else np.full(len(g), np.nan)
        row[f"acc_{o}"], row[f"acc_{o}_lo"], row[f"acc_{o}_hi"], _ = _prop(
            np.where(has_gold, credit(vo, g, k), np.nan), level)
    # Kappa over every call against its case's gold (both orders pooled), on the union of verdict values.
    calls_v = v.ravel()
    calls_g = np.repeat(g, v.shape[1])
    ok = np.isfinite(calls_v) & np.isfinite(calls_g)
    weights = "quadratic" if k >= 3 else None
    row["kappa_weights"] = weights or "none"
    row["kappa"] = cohen_kappa(calls_v[ok], calls_g[ok], weights)
    cv, cg = calls_v[ok], calls_g[ok]
    row["kappa_lo"], row["kappa_hi"] = _boot(lambda ix: cohen_kappa(cv[ix], cg[ix], weights), len(cv), rng, n_boot, level)
    pointwise = vd.orders == ("",) and k > 3
    if pointwise and ok.sum() > 2:
        row["spearman"] = float(stats.spearmanr(cv, cg).statistic)
        row["spearman_lo"], row["spearman_hi"] = _boot(
            lambda ix: float(stats.spearmanr(cv[ix], cg[ix]).statistic), len(cv), rng, n_boot, level)
    else:
        row["spearman"] = row["spearman_lo"] = row["spearman_hi"] = float("nan")
    if {"ab", "ba"} <= set(vd.orders):
        a, b = v[:, vd.orders.index("ab")], v[:, vd.orders.index("ba")]
        both = np.isfinite(a) & np.isfinite(b)
        row["consistency"], row["consistency_lo"], row["consistency_hi"], row["n_both_orders"] = _prop(
            np.where(both, (a == b).astype(float), np.nan), level)
        # First position: "ab" shows the candidate first, so a 1 there and a 0 in "ba" pick the first shown.
        first = np.concatenate([np.where(np.isin(a, (0.0, 1.0)), a == 1.0, np.nan),
                                np.where(np.isin(b, (0.0, 1.0)), b == 0.0, np.nan)])
        row["first_pref"], row["first_pref_lo"], row["first_pref_hi"], _ = _prop(first, level)
        pair_calls = np.concatenate([a, b])
        row["tie_rate"] = float(np.mean(pair_calls[np.isfinite(pair_calls)] == 0.5)) if np.isfinite(pair_calls).any() \
            else float("nan")
    else:
        for key in ("consistency", "consistency_lo", "consistency_hi", "first_pref", "first_pref_lo",
                    "first_pref_hi", "tie_rate"):
            row[key] = float("nan")
        row["n_both_orders"] = 0
    # Longer answer: among decisive calls on pairs of unequal length, the share picking the longer one.
    longer = np.sign(diff)  # +1: the candidate is longer
    dec = np.isin(v, (0.0, 1.0)) & (longer[:, None] != 0) & np.isfinite(longer[:, None])
    picked_longer = np.where(dec, (v == 1.0) == (longer[:, None] > 0), np.nan)
    row["longer_pref"], row["longer_pref_lo"], row["longer_pref_hi"], _ = _prop(picked_longer.ravel(), level)
    gdec = np.isin(g, (0.0, 1.0)) & (longer != 0) & np.isfinite(longer) & np.isfinite(c)
    row["gold_longer"], row["gold_longer_lo"], row["gold_longer_hi"], _ = _prop(
        np.where(gdec, (g == 1.0) == (longer > 0), np.nan), level)
    return row


__all__ = ["STAT_COLUMNS", "cohen_kappa", "credit", "gold_classes", "judge_stats", "length_controlled",
           "length_feature"]
