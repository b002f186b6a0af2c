"""The judgments frame (the judge contract's coding) read into arrays, and the position-combination rule.

A judge call judges one case, ``(run_id, item_id)``, in an ``order`` (``"ab"``: the candidate shown first,
``"ba"``: shown second, ``""``: pointwise). ``verdict`` is in [0, 1] in the candidate's numbering whatever the
order shown (1 candidate better, 0 baseline better, 0.5 tie; pointwise ``level / (n_levels - 1)``), NaN when
unparseable. Every statistic here reads the verdict and ``n_levels``: the class of a verdict on a grid of
``n`` classes is ``round(verdict * (n - 1))``, the same for pairwise and pointwise judgments.

A rater is a judge under one template: its name is the judge's, or ``judge[template_id]`` where the frame
holds one judge under several templates (two prompts of one model are two raters).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from adtbase.errors import InputError
from adtbase.verdicts import JUDGMENT_COLUMNS
from adtbase.verdicts import combine_orders as _position_rule

# What the statistics need of a judgments frame; the rest is provenance.
NEEDED_COLUMNS = ("run_id", "item_id", "judge", "template_id", "order", "verdict", "n_levels")
ORDERS = ("ab", "ba", "")
GOLD_COLUMNS = ("run_id", "item_id", "label")
LENGTH_COLUMNS = ("run_id", "item_id", "len_candidate", "len_baseline")
CASE = ["run_id", "item_id"]


def check_judgments(frame: pd.DataFrame, where: str = "judgments") -> pd.DataFrame:
    """The frame's needed columns, typed (ids as text, verdict float, n_levels int), every problem named at
    once in one InputError (``where: row N: field F: ...``); one row per call (a repeated key keeps its first)."""
    missing = [c for c in NEEDED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{where}: no column(s) {missing} (columns: {', '.join(map(str, frame.columns))})")
    out = frame[list(NEEDED_COLUMNS)].copy()
    for c in ("run_id", "item_id", "judge", "template_id", "order"):
        out[c] = out[c].fillna("").astype(str)
    verdict = pd.to_numeric(out["verdict"], errors="coerce")
    levels = pd.to_numeric(out["n_levels"], errors="coerce")
    problems = []
    for i in np.flatnonzero((out["verdict"].notna() & verdict.isna()).to_numpy()
                            | ((verdict < 0) | (verdict > 1)).to_numpy()):
        problems.append(f"row {i}: field 'verdict': {frame['verdict'].iloc[i]!r} is not a number in [0, 1]")
    for i in np.flatnonzero((levels.isna() | (levels < 2) | (levels != levels.round())).to_numpy()):
        problems.append(f"row {i}: field 'n_levels': {frame['n_levels'].iloc[i]!r} is not an integer >= 2")
    for i in np.flatnonzero(~out["order"].isin(ORDERS).to_numpy()):
        problems.append(f"row {i}: field 'order': {out['order'].iloc[i]!r} is not one of 'ab', 'ba', ''")
    for i in np.flatnonzero((out["item_id"] == "").to_numpy()):
        problems.append(f"row {i}: field 'item_id': empty")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise InputError(f"{where}: " + "; ".join(shown))
    out["verdict"] = verdict.astype(float)
    out["n_levels"] = levels.astype("int64")
    out = out.drop_duplicates(["run_id", "item_id", "judge", "template_id", "order"], keep="first")
    several = out.groupby("judge")["template_id"].nunique()
    several_set = set(several[several > 1].index)
    out["rater"] = [f"{j}[{t}]" if j in several_set else j for j, t in zip(out["judge"], out["template_id"], strict=True)]
    return out.reset_index(drop=True)


def check_gold(frame: pd.DataFrame, where: str = "gold") -> pd.DataFrame:
    """Gold/human labels: ``item_id``, optional ``run_id`` (default ""), ``label`` in the verdict coding
    ([0, 1]: 1 candidate better, 0 baseline better, 0.5 tie; pointwise level / (n - 1)). Every bad row named
    at once; a case labelled twice is an error."""
    missing = [c for c in ("item_id", "label") if c not in frame.columns]
    if missing:
        raise InputError(f"{where}: no column(s) {missing} (columns: {', '.join(map(str, frame.columns))})")
    out = pd.DataFrame({"run_id": frame["run_id"].fillna("").astype(str) if "run_id" in frame.columns else "",
                        "item_id": frame["item_id"].fillna("").astype(str)})
    label = pd.to_numeric(frame["label"], errors="coerce")
    problems = [f"row {i}: field 'label': {frame['label'].iloc[i]!r} is not a number in [0, 1]"
                for i in np.flatnonzero((label.isna() | (label < 0) | (label > 1)).to_numpy())]
    problems += [f"row {i}: field 'item_id': empty" for i in np.flatnonzero((out["item_id"] == "").to_numpy())]
    dup = out.duplicated(CASE, keep="first").to_numpy()
    problems += [f"row {i}: case ({out['run_id'].iloc[i]!r}, {out['item_id'].iloc[i]!r}) labelled twice"
                 for i in np.flatnonzero(dup)]
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise InputError(f"{where}: " + "; ".join(shown))
    out["label"] = label.astype(float).to_numpy()
    return out


def class_of(verdict: ArrayLike, n_classes: int) -> NDArray[np.int64]:
    """Class index of each verdict on a grid of ``n_classes`` (round(v * (n - 1))); -1 where NaN."""
    v = np.asarray(verdict, dtype=float)
    return np.where(np.isfinite(v), np.rint(np.nan_to_num(v) * (n_classes - 1)), -1).astype(np.int64)


def combine_orders(v_ab: ArrayLike, v_ba: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The position rule (``adtbase.verdicts.combine_orders``, its one place) applied elementwise: the combined
    verdicts and where the two orders disagreed (``inconsistent``)."""
    a, b = np.broadcast_arrays(np.asarray(v_ab, dtype=float), np.asarray(v_ba, dtype=float))
    pairs = [_position_rule(float(x), float(y)) for x, y in zip(a.ravel(), b.ravel(), strict=True)]
    combined = np.array([p.verdict for p in pairs], dtype=float).reshape(a.shape)
    inconsistent = np.array([p.status == "inconsistent" for p in pairs], dtype=bool).reshape(a.shape)
    return combined, inconsistent


@dataclass(frozen=True)
class Verdicts:
    """The calls as arrays: ``v[n, j, o]`` the verdict of rater j on case n in order o (NaN: no call or
    unparseable); ``cases`` the (run_id, item_id) of each row, ``raters``, ``orders`` and ``n_levels`` per rater."""

    cases: pd.MultiIndex
    raters: tuple[str, ...]
    orders: tuple[str, ...]
    v: NDArray[np.float64]
    n_levels: NDArray[np.int64]

    def combined(self) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Each rater's position-combined verdict per case, and whether its two orders disagreed (N x J)."""
        if set(self.orders) >= {"ab", "ba"}:
            c, inc = combine_orders(self.v[:, :, self.orders.index("ab")], self.v[:, :, self.orders.index("ba")])
            if "" in self.orders:  # pointwise calls of the same rater stand where it has no pairwise one
                c = np.where(np.isfinite(c), c, self.v[:, :, self.orders.index("")])
            return c, inc
        with warnings.catch_warnings():  # an all-NaN case is NaN, said once here
            warnings.simplefilter("ignore", RuntimeWarning)
            c = np.nanmean(self.v, axis=2)
        return c, np.zeros(c.shape, dtype=bool)


def verdicts(judgments: pd.DataFrame, *, cases: pd.MultiIndex | None = None,
             raters: tuple[str, ...] | None = None, orders: tuple[str, ...] | None = None) -> Verdicts:
    """The checked judgments frame (``check_judgments``) as ``Verdicts``; ``cases``/``raters``/``orders`` fix
    the layout (a stored rater model's), else they are the frame's own, sorted."""
    j = judgments if "rater" in judgments.columns else check_judgments(judgments)
    if cases is None:
        cases = pd.MultiIndex.from_frame(j[CASE].drop_duplicates().sort_values(CASE))
    raters = raters if raters is not None else tuple(sorted(j["rater"].unique()))
    orders = orders if orders is not None else tuple(o for o in ORDERS if o in set(j["order"]))
    v = np.full((len(cases), len(raters), len(orders)), np.nan)
    n_levels = np.zeros(len(raters), dtype=np.int64)
    ci = cases.get_indexer(pd.MultiIndex.from_frame(j[CASE]))
    ri = pd.Index(raters).get_indexer(j["rater"])
    oi = pd.Index(orders).get_indexer(j["order"])
    keep = (ci >= 0) & (ri >= 0) & (oi >= 0)
    v[ci[keep], ri[keep], oi[keep]] = j["verdict"].to_numpy()[keep]
    for r, lv in j[keep].groupby("rater")["n_levels"].max().items():
        n_levels[raters.index(str(r))] = int(lv)
    return Verdicts(cases, tuple(raters), tuple(orders), v, n_levels)


def align(cases: pd.MultiIndex, frame: pd.DataFrame | None, column: str) -> NDArray[np.float64]:
    """``frame[column]`` in the order of ``cases`` (NaN where the frame has no row for a case; a frame
    without ``run_id`` names external cases, run_id "")."""
    if frame is None:
        return np.full(len(cases), np.nan)
    ids = pd.DataFrame({"run_id": frame["run_id"].fillna("").astype(str) if "run_id" in frame.columns else "",
                        "item_id": frame["item_id"].astype(str)})  # no run_id column: external cases ("")
    idx = pd.MultiIndex.from_frame(ids)
    values = pd.Series(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float), index=idx)
    values = values[~idx.duplicated()]
    return values.reindex(cases).to_numpy(dtype=float)


__all__ = ["CASE", "GOLD_COLUMNS", "JUDGMENT_COLUMNS", "LENGTH_COLUMNS", "ORDERS", "Verdicts", "align",
           "check_gold", "check_judgments", "class_of", "combine_orders", "verdicts"]
