"""Judge verdicts -> per-rater graded responses for the many-facet fitter (``calibration.facets``). Pure.

Input: the judgments frame of the judge contract (one row per judge call: ``run_id, item_id, model, judge,
verdict, level, n_levels, order``, ...; ``Bank.judgments()`` returns it). Output: one response per (model,
item, judge), the judge as its rater, the score the verdict in [0, 1] (level / (n_levels - 1)), and K per
item.

- Unparseable verdicts (NaN) are left out, never guessed; external cases (``model`` "") are no model's
  answer and are left out (both counted in the result).
- Position first: a judge's verdicts on one case in both orders are combined into one by the shared rule
  (``adtbase.verdicts.combine_orders``, through ``combine_positions``); then a model answering one item in
  several runs gets the mean per judge, as ``ResponseSet.from_frame`` averages duplicates (a score between two
  levels is the mix of both).
- K per item is the judgments' ``n_levels`` (the rubric's level count, or 3 / 2 for pairwise with / without
  ties), not the levels seen, so a level no judge used still counts. One item with two level counts (two
  templates) is an error naming the items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from adtbase.errors import InputError
from adtbase.verdicts import ORDERS, POINTWISE, combine_orders

from .data import ResponseSet

NEEDED = ("run_id", "item_id", "model", "judge", "verdict", "n_levels", "order")   # of JUDGMENT_COLUMNS
CASE_KEYS = ["run_id", "item_id", "model", "judge"]


def combine_positions(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per case (CASE_KEYS + ``verdict``, ``n_levels``) by the shared position rule
    (``adtbase.verdicts.combine_orders``: both orders agreeing keep their verdict, disagreeing ones make a tie,
    one order parsed stands alone); a pointwise judgment (order "") is its own verdict."""
    pointwise = frame[frame["order"] == POINTWISE]
    pairs = frame[frame["order"].isin(ORDERS)]
    out = [pointwise.loc[:, [*CASE_KEYS, "verdict", "n_levels"]]]
    if len(pairs):
        wide = pairs.pivot_table(index=CASE_KEYS, columns="order", values="verdict", aggfunc="mean", dropna=False)
        wide = wide.reindex(columns=list(ORDERS))
        k = pairs.groupby(CASE_KEYS)["n_levels"].max()
        combined = [combine_orders(float(ab), float(ba)).verdict for ab, ba in
                    zip(wide["ab"].to_numpy(dtype=float), wide["ba"].to_numpy(dtype=float), strict=True)]
        out.append(pd.DataFrame({"verdict": combined, "n_levels": k.reindex(wide.index).to_numpy()},
                                index=wide.index).reset_index())
    return pd.concat(out, ignore_index=True)


@dataclass(frozen=True)
class JudgedResponses:
    """Per-rater responses: the frame (``model, item_id, rater, score``) and K per item."""

    frame: pd.DataFrame
    n_levels: pd.Series          # item_id -> K
    n_unparsed: int              # judge calls left out: verdict NaN
    n_external: int              # judge calls left out: no candidate model


def judged_responses(judgments: pd.DataFrame,
                     combine: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> JudgedResponses:
    """The judgments frame as per-judge responses (module docstring)."""
    missing = [c for c in NEEDED if c not in judgments.columns]
    if missing:
        raise InputError(f"judgments frame lacks column(s) {', '.join(missing)}")
    df = judgments.loc[:, list(NEEDED)].copy()
    df["verdict"] = pd.to_numeric(df["verdict"], errors="coerce")
    df["n_levels"] = pd.to_numeric(df["n_levels"], errors="coerce")
    unparsed = df["verdict"].isna()
    external = df["model"].fillna("").astype(str).eq("")
    problems = []
    out_of_range = ~unparsed & ((df["verdict"] < 0) | (df["verdict"] > 1))
    bad_k = ~unparsed & ~(df["n_levels"] >= 2)
    for name, mask in (("verdict outside [0, 1]", out_of_range), ("n_levels missing or < 2", bad_k)):
        if mask.any():
            rows = ", ".join(map(str, df.index[mask.to_numpy()][:5]))
            problems.append(f"{name} at row(s) {rows}")
    if problems:
        raise InputError("judgments frame: " + "; ".join(problems))
    keep = df[~unparsed & ~external]
    k_per_item = keep.groupby("item_id")["n_levels"].agg(["min", "max"])
    mixed = k_per_item.index[k_per_item["min"] != k_per_item["max"]]
    if len(mixed):
        raise InputError(f"item(s) judged with different level counts (two templates?): {', '.join(map(str, mixed[:5]))}")
    cases = (combine or combine_positions)(keep)   # NaN verdicts are out already: one order may stand alone
    cases = cases[cases["verdict"].notna()]
    per_rater = cases.groupby(["model", "item_id", "judge"], sort=True).agg(score=("verdict", "mean")).reset_index()
    frame = per_rater.rename(columns={"judge": "rater"})[["model", "item_id", "rater", "score"]]
    n_levels = k_per_item["max"].astype(int).rename("n_levels")
    return JudgedResponses(frame, n_levels, int(unparsed.sum()), int((external & ~unparsed).sum()))


def graded_response_set(judged: JudgedResponses, objective: pd.DataFrame | None = None, *,
                        item_ids: Sequence[Any] | None = None,
                        model_ids: Sequence[Any] | None = None) -> tuple[ResponseSet, np.ndarray]:
    """One response set for the facets fit: the per-judge responses plus ``objective`` (``model, item_id,
    score``: rule-scored answers, no rater). An item that has judge verdicts takes them, and its rows in
    ``objective`` (the panel's combined score) are dropped: the verdicts are the data the panel score was
    made of. Returns the set and K per item (2 for items without judgments)."""
    parts = [judged.frame]
    if objective is not None and len(objective):
        obj = objective.loc[~objective["item_id"].isin(judged.n_levels.index), ["model", "item_id", "score"]]
        parts.append(obj.assign(rater=""))
    frame = pd.concat(parts, ignore_index=True)
    rs = ResponseSet.from_frame(frame, "model", "item_id", "score", item_ids=item_ids, model_ids=model_ids,
                                rater_col="rater")
    k = judged.n_levels.reindex(list(rs.item_ids)).fillna(2).to_numpy(dtype=np.int64)
    return rs, k
