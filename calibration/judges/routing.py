"""Confidence calibration of the panel (binned reliability) and routing of uncertain cases to humans.

Routing rules rank cases by how much a human label is worth there; a budget takes the top of the ranking:
- ``confidence``: lowest posterior confidence first (the rater model's max class probability);
- ``disagreement``: the judges' spread first (SD of their position-combined verdicts), for a panel with no
  rater model;
- ``threshold``: the combined verdict nearest a decision threshold first (a graded score near a pass mark).
The simulated gain replaces the routed cases' panel verdicts by their gold/human labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from adtbase.errors import InputError

from ..validation import wilson_interval

RULES = ("confidence", "disagreement", "threshold")
BIN_EDGES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.95, 1.0 + 1e-9)


def reliability_bins(confidence: ArrayLike, correct: ArrayLike, edges: tuple[float, ...] = BIN_EDGES,
                     level: float = 0.95) -> pd.DataFrame:
    """Binned reliability: per confidence bin [lo, hi) the cases, their mean confidence, the share right
    (Wilson interval); ``correct`` may be fractional (a half-right tie). The 0.85-0.95 bin is "called at 90%"."""
    c, r = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    ok = np.isfinite(c) & np.isfinite(r)
    c, r = c[ok], r[ok]
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (c >= lo) & (c < hi)
        n = int(m.sum())
        acc = float(r[m].mean()) if n else float("nan")
        wl, wh = wilson_interval(acc, n, level)
        rows.append({"bin": f"{lo:.2f}-{min(hi, 1.0):.2f}", "n": n, "confidence": float(c[m].mean()) if n else float("nan"),
                     "accuracy": acc, "acc_lo": float(wl), "acc_hi": float(wh)})
    return pd.DataFrame(rows)


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike,
                               edges: tuple[float, ...] = BIN_EDGES) -> float:
    """Case-weighted mean |accuracy - confidence| over the bins of ``reliability_bins``."""
    t = reliability_bins(confidence, correct, edges)
    t = t[t["n"] > 0]
    return float((t["n"] * (t["accuracy"] - t["confidence"]).abs()).sum() / t["n"].sum()) if len(t) else float("nan")


def route(score: ArrayLike, budget: float, rule: str = "confidence", *, threshold: float = 0.5) -> NDArray[np.bool_]:
    """Which cases go to humans: the ``budget`` share (0-1, rounded up) ranked by ``rule`` (module doc).
    ``score``: the confidence (confidence), the judges' spread (disagreement) or the combined verdict
    (threshold). Ties keep the case order (stable); NaN scores go first (nothing is known there)."""
    if rule not in RULES:
        raise InputError(f"routing rule {rule!r}: use one of {', '.join(RULES)}")
    if not 0 <= budget <= 1:
        raise InputError(f"routing budget {budget}: must be a share in [0, 1]")
    s = np.asarray(score, dtype=float)
    key = {"confidence": s, "disagreement": -s, "threshold": np.abs(s - threshold)}[rule]
    key = np.where(np.isfinite(key), key, -np.inf)
    n_route = int(np.ceil(budget * len(s) - 1e-9))
    out = np.zeros(len(s), dtype=bool)
    out[np.argsort(key, kind="stable")[:n_route]] = True
    return out


def routing_gain(correct: ArrayLike, routed: ArrayLike, rng: np.random.Generator, *, n_random: int = 1000,
                 level: float = 0.95) -> dict[str, float]:
    """Accuracy with no routing, with ``routed`` cases labelled by humans (right by definition), and with the
    same number routed at random (mean and central interval over ``n_random`` draws)."""
    r = np.asarray(correct, dtype=float)
    sent = np.asarray(routed, dtype=bool)
    n, k = len(r), int(sent.sum())
    base = float(r.mean())
    routed_acc = float(np.where(sent, 1.0, r).mean())
    rand = np.empty(n_random)
    for i in range(n_random):
        pick = rng.choice(n, size=k, replace=False)
        rand[i] = (r.sum() - r[pick].sum() + k) / n
    return {"n": n, "n_routed": k, "acc_none": base, "acc_routed": routed_acc, "gain": routed_acc - base,
            "acc_random": float(rand.mean()), "acc_random_lo": float(np.quantile(rand, (1 - level) / 2)),
            "acc_random_hi": float(np.quantile(rand, (1 + level) / 2)), "gain_random": float(rand.mean() - base)}


__all__ = ["BIN_EDGES", "RULES", "expected_calibration_error", "reliability_bins", "route", "routing_gain"]
