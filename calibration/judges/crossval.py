"""The panel against its baselines by K-fold cross-validation over cases: labels only from the training folds.

For each fold the rater model is fitted with the training folds' labels and every other case unlabelled (EM
sees the held-out cases' verdicts, never their labels); the held-out cases get its posterior. The baselines
on the same cases: the majority vote (no labels) and the best single judge, chosen by its accuracy on the
training folds. One row per labelled case, every verdict credited against gold by ``stats.credit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import optimize

from adtbase.errors import InputError

from .frame import Verdicts, class_of
from .panel import RaterModel, majority_vote, posterior_verdict, temper
from .stats import credit


def fold_ids(n: int, folds: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """A fold per case, balanced, in a random order (the ``rng`` passed in)."""
    return rng.permutation(np.arange(n) % folds)


def fit_panel(vd: Verdicts, gold: NDArray[np.float64], n_classes: int, rng: np.random.Generator, *,
              len_diff: NDArray[np.float64] | None = None, model: dict[str, Any] | None = None,
              inner_folds: int = 5) -> RaterModel:
    """The rater model fitted on every label, its ``temperature`` learned from held-out labels: an inner
    ``inner_folds``-fold split of the labelled cases gives each one a posterior fitted without its label,
    and the temperature minimising their log loss is kept (1 where there are too few labels to split)."""
    m = RaterModel(n_classes=n_classes, **(model or {})).fit(vd, gold, len_diff)
    g = np.asarray(gold, dtype=float)
    lab = np.flatnonzero(np.isfinite(g))
    if inner_folds < 2 or len(lab) < 5 * inner_folds:
        return m
    fold = fold_ids(len(lab), inner_folds, rng)
    held = np.zeros((len(lab), n_classes))
    for f in range(inner_folds):
        hide = lab[fold == f]
        g_in = g.copy()
        g_in[hide] = np.nan
        inner = RaterModel(n_classes=n_classes, **(model or {})).fit(vd, g_in, len_diff)
        held[fold == f] = inner.predict_proba(vd, len_diff)[hide]
    truth = class_of(g[lab], n_classes)

    def nll(log_t: float) -> float:
        p = temper(held, float(np.exp(log_t)))
        return -float(np.log(np.clip(p[np.arange(len(lab)), truth], 1e-12, None)).sum())
    m.temperature = float(np.exp(optimize.minimize_scalar(nll, bounds=(-4.0, 2.0), method="bounded").x))
    return m


def cross_validate(vd: Verdicts, gold: NDArray[np.float64], n_classes: int, rng: np.random.Generator, *,
                   folds: int = 5, len_diff: NDArray[np.float64] | None = None,
                   model: dict[str, Any] | None = None, calibrate: bool = True) -> pd.DataFrame:
    """Out-of-fold verdicts of the rater model (``RaterModel(**model)``), the majority vote and the best
    single judge per labelled case, with their credit against gold; ``confidence`` is the rater model's top
    posterior, ``spread`` the SD of the judges' position-combined verdicts. ``calibrate``: each fold's model
    is ``fit_panel``'s (temperature from an inner split of the training labels), else ``RaterModel.fit``'s."""
    g = np.asarray(gold, dtype=float)
    lab = np.flatnonzero(np.isfinite(g))
    if len(lab) < folds or folds < 2:
        raise InputError(f"cross-validation: {len(lab)} labelled cases for {folds} folds")
    fold = np.full(len(g), -1)
    fold[lab] = fold_ids(len(lab), folds, rng)
    comb, _ = vd.combined()
    mv = majority_vote(vd, n_classes)
    with np.errstate(invalid="ignore"):
        spread = np.nanstd(np.where(np.isfinite(comb), comb, np.nan), axis=1)
    judge_credit = credit(comb, g[:, None], n_classes)  # (N, J), NaN where the judge gave no verdict
    out = []
    for f in range(folds):
        test = fold == f
        train_g = np.where(test, np.nan, g)
        m = (fit_panel(vd, train_g, n_classes, rng, len_diff=len_diff, model=model) if calibrate
             else RaterModel(n_classes=n_classes, **(model or {})).fit(vd, train_g, len_diff))
        proba = m.predict_proba(vd, len_diff)
        train = np.isfinite(train_g)
        with np.errstate(invalid="ignore"):
            train_acc = np.nanmean(np.where(train[:, None], np.nan_to_num(judge_credit, nan=1.0 / n_classes), np.nan), axis=0)
        best = int(np.nanargmax(train_acc))
        rm_v = posterior_verdict(proba)
        for i in np.flatnonzero(test):
            out.append({"case": vd.cases[i], "fold": f, "gold": g[i],
                        "rm_verdict": rm_v[i], "confidence": float(proba[i].max()),
                        "rm_class_verdict": float(np.argmax(proba[i]) / (n_classes - 1)),
                        "temperature": m.temperature, "majority": mv[i], "best_judge": vd.raters[best], "best_verdict": comb[i, best],
                        "spread": spread[i]})
    res = pd.DataFrame(out)
    for col, src in (("rm_credit", "rm_class_verdict"), ("majority_credit", "majority"), ("best_credit", "best_verdict")):
        # A case a judge (or the vote) gave no verdict on counts as a coin flip between the classes.
        res[col] = np.nan_to_num(credit(res[src].to_numpy(dtype=float), res["gold"].to_numpy(dtype=float), n_classes),
                                 nan=1.0 / n_classes)
    return res


__all__ = ["cross_validate", "fit_panel", "fold_ids"]
