"""Contamination / drift: did published items get easier for models run after their publication?

Input is a plain long frame (no bank tables): one row per response with the model, the item, the score
in [0, 1] and ``exposed`` = the response was made after the item was published. Items with at least
one exposed response are *published*; the others are *never published* (clean).

Items: a Mantel-Haenszel DIF test per published item, the focal group being its exposed responses and
the reference group its unexposed ones, matched on ability strata (quantiles of theta across models).
Because theta is the matching variable, a later generation of models simply being stronger is not
flagged; only an item that became easier *at the same ability* is. Ability should come from clean
items (pass ``theta`` estimated on never-published items); without it the matching variable is each
model's mean score on the never-published items (the classic MH rest score).

- MH common odds ratio (exposed vs unexposed; > 1 = easier after publication) and ETS delta
  (2.35 ln OR; class A / B / C),
- MH chi-square with continuity correction, its two-sided p and the one-sided p in the "easier"
  direction; ``flagged`` = one-sided p, adjusted across items (Benjamini-Hochberg by default), < alpha.

Models: for each model with exposed responses, its excess accuracy on exposed items over what
unexposed models of its ability stratum scored on the same items, minus its excess on never-published
items over other models of its stratum (so a model that is simply strong for its stratum is not
flagged); z from the Bernoulli variances of the expected scores; one-sided p, adjusted, flagged.

Fractional scores enter the 2 x 2 tables as fractional counts (score right, 1 - score wrong).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import chi2, norm

from adtbase.errors import InputError

ADJUST = ("bh", "holm", "none")


@dataclass(frozen=True)
class DriftReport:
    """Per-item MH results, per-model excess accuracy, and the settings used."""

    items: pd.DataFrame
    models: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


def adjust_pvalues(p: NDArray, method: str = "bh") -> NDArray:
    """Multiple-testing adjustment (Benjamini-Hochberg, Holm, or none); NaN stays NaN."""
    if method not in ADJUST:
        raise InputError(f"unknown p-value adjustment {method!r}; choose one of {', '.join(ADJUST)}")
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    n = ok.size
    if n == 0 or method == "none":
        return p.copy()
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order]
    if method == "bh":
        adj = np.minimum.accumulate((ranked * n / np.arange(1, n + 1))[::-1])[::-1]
    else:
        adj = np.maximum.accumulate(ranked * (n - np.arange(n)))
    out[order] = np.minimum(adj, 1.0)
    return out


def _prepare(responses: pd.DataFrame, cols: tuple[str, str, str, str]) -> pd.DataFrame:
    model_col, item_col, score_col, exposed_col = cols
    for c in cols:
        if c not in responses.columns:
            raise InputError(f"drift responses have no column {c!r} (columns: {list(responses.columns)})")
    df = pd.DataFrame({"model": responses[model_col].to_numpy(), "item": responses[item_col].to_numpy()},
                      index=responses.index)
    for c in ("model", "item"):
        null = df[c].isna().to_numpy()
        if null.any():
            raise InputError(f"drift responses row {df.index[int(np.argmax(null))]!r}: {cols[('model', 'item').index(c)]} is empty")
    s = pd.to_numeric(responses[score_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(s) | (s < 0) | (s > 1))
    if bad.size:
        raise InputError(f"drift responses row {df.index[bad[0]]!r}: {score_col}={responses[score_col].iloc[bad[0]]!r} "
                         "is not a score in [0, 1]")
    e = responses[exposed_col]
    if e.isna().any() or not e.isin([True, False]).all():  # 0/1 compare equal to False/True
        k = int(np.argmax(e.isna().to_numpy() | ~e.isin([True, False]).to_numpy()))
        raise InputError(f"drift responses row {df.index[k]!r}: {exposed_col}={e.iloc[k]!r} is not a boolean")
    df["score"] = s
    df["exposed"] = e.astype(bool).to_numpy()
    return df.reset_index(drop=True)


def mantel_haenszel_drift(responses: pd.DataFrame, *, theta: Mapping[str, float] | pd.Series | None = None,
                          model_col: str = "model", item_col: str = "item", score_col: str = "score",
                          exposed_col: str = "exposed", n_strata: int = 10, alpha: float = 0.05,
                          adjust: str = "bh") -> DriftReport:
    """MH DIF by exposure for every published item, and per-model excess accuracy (module docstring)."""
    if n_strata < 1:
        raise InputError(f"n_strata must be >= 1, got {n_strata}")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    if adjust not in ADJUST:
        raise InputError(f"unknown p-value adjustment {adjust!r}; choose one of {', '.join(ADJUST)}")
    df = _prepare(responses, (model_col, item_col, score_col, exposed_col))
    published = set(df.loc[df["exposed"], "item"])
    df["published"] = df["item"].isin(published).to_numpy()
    if not published:
        raise InputError("no response is marked exposed: there are no published items to test")
    if df["published"].all():
        raise InputError("every item is published: drift is judged relative to never-published items, none left")

    # Matching variable per model: given theta, else mean score on never-published items.
    if theta is None:
        match = df[~df["published"]].groupby("model")["score"].mean()
        source = "mean score on never-published items"
    else:
        match = pd.Series(theta, dtype=float) if not isinstance(theta, pd.Series) else theta.astype(float)
        source = "theta"
    match = match[np.isfinite(match.to_numpy())]
    n_models_all = df["model"].nunique()
    df = df[df["model"].isin(match.index)].reset_index(drop=True)
    if df.empty:
        raise InputError("no model has a matching value (theta, or answers to never-published items)")
    if not df["exposed"].any():
        raise InputError("no model with a matching value gave an exposed response (a model matched only on items "
                         "published before it answered has none)")
    strata = _strata(match, n_strata)
    df["stratum"] = strata.reindex(df["model"]).to_numpy()

    items = _item_tests(df, alpha, adjust)
    models = _model_excess(df, alpha, adjust)
    settings = {"n_strata": int(strata.nunique()), "alpha": alpha, "adjust": adjust, "matching": source,
                "n_models": int(df["model"].nunique()), "n_models_without_matching": n_models_all - int(df["model"].nunique()),
                "n_published": len(published), "n_never_published": int(df.loc[~df["published"], "item"].nunique())}
    return DriftReport(items, models, settings)


def _strata(match: pd.Series, n_strata: int) -> pd.Series:
    """Quantile strata of the matching variable (ties kept together)."""
    ranks = match.rank(method="average", pct=True).to_numpy()
    k = np.minimum((ranks * n_strata - 1e-9).astype(int), n_strata - 1)
    k = np.maximum(k, 0)
    return pd.Series(k, index=match.index)


def _item_tests(df: pd.DataFrame, alpha: float, adjust: str) -> pd.DataFrame:
    pub = df[df["published"]]
    g = pub.assign(right=pub["score"], wrong=1 - pub["score"], n=1.0).groupby(
        ["item", "stratum", "exposed"])[["right", "wrong", "n"]].sum().unstack("exposed", fill_value=0.0)
    for col in ("right", "wrong", "n"):
        for flag in (False, True):
            if (col, flag) not in g.columns:
                g[(col, flag)] = 0.0
    A, B = g[("right", False)].to_numpy(), g[("wrong", False)].to_numpy()  # reference: unexposed
    C, D = g[("right", True)].to_numpy(), g[("wrong", True)].to_numpy()  # focal: exposed
    nR, nF = A + B, C + D
    N = nR + nF
    both = (nR > 0) & (nF > 0) & (N > 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.where(both, C * B / N, 0.0)
        den = np.where(both, A * D / N, 0.0)
        m1, m0 = A + C, B + D
        exp_c = np.where(both, nF * m1 / N, 0.0)
        var_c = np.where(both, nR * nF * m1 * m0 / (N**2 * (N - 1)), 0.0)
    t = pd.DataFrame({"item": g.index.get_level_values("item"), "num": num, "den": den, "obs": np.where(both, C, 0.0),
                      "exp": exp_c, "var": var_c, "nF": np.where(both, nF, 0.0), "nR": np.where(both, nR, 0.0)})
    s = t.groupby("item")[["num", "den", "obs", "exp", "var", "nF", "nR"]].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = s["num"] / s["den"]
        stat = np.where(s["var"] > 0, (np.maximum(np.abs(s["obs"] - s["exp"]) - 0.5, 0.0)) ** 2 / s["var"], np.nan)
    p_two = chi2.sf(stat, 1)
    easier = (s["obs"] > s["exp"]).to_numpy()
    p_one = np.where(np.isfinite(p_two), np.where(easier, p_two / 2, 1 - p_two / 2), np.nan)
    p_adj = adjust_pvalues(p_one, adjust)
    delta = 2.35 * np.log(odds.to_numpy())
    ets = np.where(~(p_one < alpha) | (np.abs(delta) < 1.0), "A", np.where(np.abs(delta) >= 1.5, "C", "B"))
    raw = df[df["published"]].groupby(["item", "exposed"])["score"].agg(["mean", "size"]).unstack("exposed")
    out = pd.DataFrame({
        "n_exposed": raw[("size", True)].reindex(s.index).fillna(0).astype(int),
        "n_unexposed": raw[("size", False)].reindex(s.index).fillna(0).astype(int) if ("size", False) in raw
        else 0,
        "acc_exposed": raw[("mean", True)].reindex(s.index),
        "acc_unexposed": raw[("mean", False)].reindex(s.index) if ("mean", False) in raw else np.nan,
        "n_matched": (s["nF"] + s["nR"]).round(6),
        "mh_odds_ratio": odds, "ets_delta": delta, "ets_class": ets, "chi2": stat, "p_two_sided": p_two,
        "p_easier": p_one, "p_adjusted": p_adj, "flagged": p_adj < alpha,
    }, index=s.index)
    out.index.name = "item"
    return out.sort_values("p_easier", kind="stable")


def _model_excess(df: pd.DataFrame, alpha: float, adjust: str) -> pd.DataFrame:
    # Expected score of an exposed response: unexposed responses to that item in the model's stratum.
    ref = df[df["published"] & ~df["exposed"]].groupby(["item", "stratum"])["score"].mean().rename("expected")
    exp_rows = df[df["exposed"]].join(ref, on=["item", "stratum"]).dropna(subset=["expected"])
    # Expected score on a never-published item: other models of the same stratum (leave-one-out).
    clean = df[~df["published"]]
    grp = clean.groupby(["item", "stratum"])["score"]
    tot, cnt = grp.transform("sum"), grp.transform("size")
    clean = clean.assign(expected=(tot - clean["score"]) / (cnt - 1)).loc[cnt > 1]

    def summarise(rows: pd.DataFrame, tag: str) -> pd.DataFrame:
        r = rows.assign(resid=rows["score"] - rows["expected"], var=rows["expected"] * (1 - rows["expected"]))
        a = r.groupby("model").agg(n=("score", "size"), observed=("score", "mean"), expected=("expected", "mean"),
                                   resid=("resid", "mean"), var=("var", "sum"))
        a["var"] = a["var"] / a["n"] ** 2
        return a.add_prefix(f"{tag}_")

    e = summarise(exp_rows, "exposed")
    c = summarise(clean, "clean").reindex(e.index)
    out = e.join(c)
    clean_resid = out["clean_resid"].fillna(0.0)
    clean_var = out["clean_var"].fillna(0.0)
    out["excess"] = out["exposed_resid"] - clean_resid
    se = np.sqrt(out["exposed_var"] + clean_var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["z"] = out["excess"] / se
    out["p_easier"] = norm.sf(out["z"].to_numpy())
    out["p_adjusted"] = adjust_pvalues(out["p_easier"].to_numpy(), adjust)
    out["flagged"] = out["p_adjusted"] < alpha
    out = out.rename(columns={"exposed_observed": "acc_exposed", "exposed_expected": "expected_exposed",
                              "clean_observed": "acc_clean", "clean_expected": "expected_clean"})
    cols = ["exposed_n", "acc_exposed", "expected_exposed", "clean_n", "acc_clean", "expected_clean", "excess",
            "z", "p_easier", "p_adjusted", "flagged"]
    out["clean_n"] = out["clean_n"].fillna(0).astype(int)
    out.index.name = "model"
    return out[cols].sort_values("p_easier", kind="stable")
