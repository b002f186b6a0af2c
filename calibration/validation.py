"""Held-out validation metrics: how well short forms predict a model's accuracy on the whole slice.

Pure functions over the per-form records of a validation study (``adt validate``): no bank access.
One record is one held-out model answering one form: its predicted slice accuracy with a predictive
interval (``pred_acc, pred_lo, pred_hi``), the raw accuracy of the form items it answered (``raw_acc``,
over ``n_answered`` items), the random-sample-plus-regression baseline (``regression``) and the truth
(``truth``: its mean score over every slice item it answered).

Per (split, strategy, form size), ``summarize`` gives:

- ``n_models``, ``n_intervals`` (records with a finite interval);
- ``mae_pred``, ``mae_raw``, ``mae_regression``: mean absolute error against the truth;
- ``coverage`` of the predictive intervals with a bootstrap interval (``coverage_lo, coverage_hi``) that
  resamples *models*, not forms: the intervals of one model share its calibration and its misfit, so
  they are not independent and a form-level bootstrap would be too narrow;
- ``mean_width`` of the predictive intervals next to ``mean_width_wilson``, the Wilson (binomial)
  interval of the raw accuracy on the same items;
- ``kendall_tau``: the rank correlation of predicted and true accuracy over the held-out models, per form
  index (form k of every model), averaged over form indices; NaN with fewer than 3 models;
- ``share_extrapolated``: share of forms whose prediction was flagged ``extrapolated`` (NaN when the
  records carry no such flag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.stats import kendalltau, norm

GROUP_KEYS = ("split", "strategy", "form_size")
SUMMARY_COLUMNS = ("split", "strategy", "form_size", "n_models", "n_intervals", "mae_pred", "mae_raw",
                   "mae_regression", "coverage", "coverage_lo", "coverage_hi", "mean_width", "mean_width_wilson",
                   "kendall_tau", "share_extrapolated")


def wilson_interval(p: ArrayLike, n: ArrayLike, level: float = 0.95) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` trials (vectorised; NaN where n = 0).

    Fractional scores enter through their mean, as a proportion over ``n`` items."""
    p = np.asarray(p, dtype=float)
    n = np.asarray(n, dtype=float)
    z = float(norm.ppf(0.5 + level / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo = np.where(n > 0, centre - half, np.nan)
        hi = np.where(n > 0, centre + half, np.nan)
    return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


def regression_baseline(x_cal: ArrayLike, y_cal: ArrayLike, x_new: float) -> float:
    """The random-sample-plus-regression baseline: a least-squares line from the calibration models'
    mean score on the form items (``x_cal``) to their accuracy on the whole slice (``y_cal``), applied to
    the held-out model's form mean ``x_new``. Models without a finite x or y are left out; with a
    single usable model, or no spread in x, only the mean offset y - x is used. NaN when nothing is
    usable or ``x_new`` is NaN."""
    x = np.asarray(x_cal, dtype=float)
    y = np.asarray(y_cal, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0 or not np.isfinite(x_new):
        return float("nan")
    sxx = float(((x - x.mean()) ** 2).sum())
    if x.size < 2 or sxx <= 1e-12:
        return float(x_new + (y - x).mean())
    slope = float(((x - x.mean()) * (y - y.mean())).sum()) / sxx
    return float(y.mean() + slope * (x_new - x.mean()))


def bootstrap_coverage(groups: Sequence[Any] | NDArray, covered: ArrayLike, rng: np.random.Generator, *,
                       n_boot: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the coverage (mean of ``covered``) resampling whole groups
    (models) with replacement: each replicate draws as many models as there are, and the coverage is
    the mean over all the intervals of the drawn models. NaN, NaN with no intervals."""
    cov = np.asarray(covered, dtype=float)
    g = pd.Series(np.asarray(groups, dtype=object))
    ok = np.isfinite(cov)
    cov, g = cov[ok], g[ok].reset_index(drop=True)
    if cov.size == 0:
        return float("nan"), float("nan")
    codes, uniques = pd.factorize(g)
    n_groups = len(uniques)
    hits = np.bincount(codes, weights=cov, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups).astype(float)
    draws = rng.integers(0, n_groups, size=(int(n_boot), n_groups))
    reps = hits[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = (1.0 - level) / 2
    return float(np.quantile(reps, alpha)), float(np.quantile(reps, 1.0 - alpha))


def kendall_tau_by_form(frame: pd.DataFrame, *, pred: str = "pred_acc", truth: str = "truth",
                        model: str = "model", form: str = "form") -> float:
    """Kendall's tau-b of predicted vs true accuracy over the models, per form index, averaged over the
    form indices that have at least 3 models with a finite prediction (NaN when none has)."""
    taus = []
    for _, grp in frame.groupby(form, sort=True):
        g = grp[np.isfinite(grp[pred].to_numpy(dtype=float)) & np.isfinite(grp[truth].to_numpy(dtype=float))]
        g = g.drop_duplicates(model)
        if len(g) < 3:
            continue
        tau = kendalltau(g[pred].to_numpy(dtype=float), g[truth].to_numpy(dtype=float)).statistic
        if np.isfinite(tau):
            taus.append(float(tau))
    return float(np.mean(taus)) if taus else float("nan")


def _mae(a: pd.Series, b: pd.Series) -> float:
    d = (a.to_numpy(dtype=float) - b.to_numpy(dtype=float))
    d = d[np.isfinite(d)]
    return float(np.abs(d).mean()) if d.size else float("nan")


def covered(frame: pd.DataFrame) -> NDArray[np.float64]:
    """1.0 where ``pred_lo <= truth <= pred_hi``, 0.0 where not, NaN where the interval is not finite."""
    lo, hi, t = (frame[c].to_numpy(dtype=float) for c in ("pred_lo", "pred_hi", "truth"))
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(t)
    return np.where(ok, ((lo <= t) & (t <= hi)).astype(float), np.nan)


def summarize(forms: pd.DataFrame, rng: np.random.Generator, *, n_boot: int = 1000,
              level: float = 0.95) -> pd.DataFrame:
    """One row per (split, strategy, form size) of the per-form records (see the module doc).

    ``forms`` needs ``split, strategy, form_size, model, form, truth, pred_acc, pred_lo, pred_hi, raw_acc,
    wilson_lo, wilson_hi, regression``; ``extrapolated`` is used when present. Groups come out sorted;
    the bootstrap draws from ``rng`` group by group in that order."""
    rows = []
    if forms.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    for key, grp in forms.groupby(list(GROUP_KEYS), sort=True):
        split, strategy, size = key
        cov = covered(grp)
        finite = np.isfinite(cov)
        lo, hi = bootstrap_coverage(grp["model"].to_numpy(dtype=object), cov, rng, n_boot=n_boot, level=level)
        width = (grp["pred_hi"] - grp["pred_lo"]).to_numpy(dtype=float)
        wwidth = (grp["wilson_hi"] - grp["wilson_lo"]).to_numpy(dtype=float)
        extra = float("nan")
        if "extrapolated" in grp.columns:
            flags = pd.to_numeric(grp["extrapolated"].map(lambda v: np.nan if v is None else float(bool(v))),
                                  errors="coerce").to_numpy(dtype=float)
            if np.isfinite(flags).any():
                extra = float(np.nanmean(flags))
        rows.append({
            "split": split, "strategy": strategy, "form_size": int(size),
            "n_models": int(grp["model"].nunique()), "n_intervals": int(finite.sum()),
            "mae_pred": _mae(grp["pred_acc"], grp["truth"]), "mae_raw": _mae(grp["raw_acc"], grp["truth"]),
            "mae_regression": _mae(grp["regression"], grp["truth"]),
            "coverage": float(cov[finite].mean()) if finite.any() else float("nan"),
            "coverage_lo": lo, "coverage_hi": hi,
            "mean_width": float(np.nanmean(width)) if np.isfinite(width).any() else float("nan"),
            "mean_width_wilson": float(np.nanmean(wwidth)) if np.isfinite(wwidth).any() else float("nan"),
            "kendall_tau": kendall_tau_by_form(grp),
            "share_extrapolated": extra,
        })
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


__all__ = ["GROUP_KEYS", "SUMMARY_COLUMNS", "bootstrap_coverage", "covered", "kendall_tau_by_form",
           "regression_baseline", "summarize", "wilson_interval"]
