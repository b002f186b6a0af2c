"""Honesty statistics: how far to trust a leaderboard of abilities with 95% intervals.

Pure functions (seeded generators, no bank) behind the report's leaderboard and honesty block:

- ``rank_distribution``: rank probabilities and 95% rank intervals by drawing abilities from each
  model's grid posterior (seeded generator; rank 1 = best);
- ``separability``: which models' 95% ability intervals overlap (not separable);
- ``draw_params``: one draw of item parameters from their standard errors (a on the log scale, b
  normal, c and d on the logit scale; a missing or NaN SE means the parameter was fixed and is kept);
  ``predict_score``'s parameter draws and the coverage simulation both use it;
- ``simulated_coverage`` (-> ``Coverage``): the honesty check: the real coverage of the 95% intervals
  on one form when the item parameters are only known up to their standard errors. Each simulated
  "world" draws one set of parameters from their SEs (the same calibration error is shared by everyone
  scored in it), simulates respondents spread evenly over the ability range answering with those
  parameters, then estimates them with the point parameters, as the leaderboard does, and counts how
  often the 95% interval holds the true ability;
- ``leave_one_model_out``: replay: refit the calibration without a model, estimate it from its answers
  on the form alone, predict its accuracy on every item it answered, and check the predictive interval
  against its actual accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from adtbase.errors import InputError

from .data import ResponseSet
from .irt import ItemParams
from .mml import fit_mml, simulate_responses

# ``.ability`` draws item parameters with ``draw_params``: the functions here that need abilities import
# it when called, so that neither module needs the other at import time.

LEVEL = 0.95


@dataclass(frozen=True)
class Coverage:
    """Result of the simulation check of the 95% intervals on one form."""

    coverage: float
    n: int
    coverage_point_params: float
    mean_width: float
    by_band: pd.DataFrame  # band, n, coverage, coverage_point_params
    n_items: int
    n_worlds: int
    theta_range: tuple[float, float]
    coverage_exact_intervals: float = float("nan")  # same worlds, intervals that take the parameters as exact
    param_draws: int = 0                             # draws behind each interval's parameter term (0: none)
    abilities_from: str = "uniform"                  # uniform over theta_range | prior (the latent distribution)

    @property
    def mc_se(self) -> float:
        return float(np.sqrt(self.coverage * (1 - self.coverage) / max(self.n, 1)))


def rank_distribution(grid: NDArray, weights: NDArray, rng: np.random.Generator,
                      n_draws: int = 4000) -> tuple[NDArray, NDArray, NDArray]:
    """Rank probabilities from grid posteriors (rows of ``weights``): P[i, r] = P(model i has rank r+1).

    Draws one ability per model per replicate (inverse CDF on the grid, jittered uniformly within a
    grid cell so ties break at random), ranks them (1 = highest) and returns (P, lo, hi) where lo/hi
    bound the central 95% of each model's ranks. ``weights`` of shape (K, models, nodes): posteriors
    under K draws of the item parameters; each replicate takes one draw for every model at once (a
    parameter error moves all models together, so it must not be mixed per model).
    """
    g = np.asarray(grid, dtype=float)
    w = np.asarray(weights, dtype=float)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[2] != g.size or w.shape[0] < 1:
        raise InputError(f"rank_distribution: weights of shape {w.shape} do not match a grid of {g.size} nodes")
    n = w.shape[1]
    cdf = np.cumsum(w / w.sum(axis=2, keepdims=True), axis=2)
    which = rng.integers(0, w.shape[0], n_draws) if w.shape[0] > 1 else np.zeros(n_draws, dtype=np.int64)
    u = rng.random((n_draws, n))
    step = float(np.median(np.diff(g))) if g.size > 1 else 0.0
    draws = np.empty((n_draws, n))
    for i in range(n):
        if w.shape[0] == 1:
            k = np.searchsorted(cdf[0, i], u[:, i])
        else:
            k = (cdf[which, i, :] < u[:, i : i + 1]).sum(axis=1)
        draws[:, i] = g[np.minimum(k, g.size - 1)]
    draws += (rng.random(draws.shape) - 0.5) * step
    ranks = np.argsort(np.argsort(-draws, axis=1), axis=1)  # 0 = best
    probs = np.stack([np.bincount(ranks[:, i], minlength=n) for i in range(n)]) / n_draws
    lo = np.quantile(ranks, 0.025, axis=0, method="lower") + 1
    hi = np.quantile(ranks, 0.975, axis=0, method="higher") + 1
    return probs, lo.astype(int), hi.astype(int)


def separability(lo: NDArray, hi: NDArray) -> list[list[int]]:
    """For each model, the indices of the others whose intervals overlap its own (not separable)."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    overlap = (lo[:, None] <= hi[None, :]) & (lo[None, :] <= hi[:, None])
    np.fill_diagonal(overlap, False)
    return [np.flatnonzero(row).tolist() for row in overlap]


def draw_params(params: ItemParams, se: Mapping[str, ArrayLike] | None, rng: np.random.Generator) -> ItemParams:
    """One draw of item parameters from their SEs: a on the log scale, b normal, c and d on the logit scale.

    ``se`` maps a, b, c, d to arrays aligned with ``params``. A parameter whose SE is missing is kept and
    draws nothing from ``rng`` (no ``se`` at all returns ``params`` itself); a NaN or zero SE means the
    parameter was fixed (not estimated): it is kept as it is. d is never drawn below c.
    """
    if not se:
        return params
    a, b, c, d = params.a.copy(), params.b.copy(), params.c.copy(), params.d.copy()
    n = len(params)

    def sd_of(name: str) -> NDArray | None:
        if name not in se:
            return None
        v = np.nan_to_num(np.asarray(se[name], dtype=float), nan=0.0)
        if v.shape != (n,):
            raise InputError(f"standard errors of {name!r} have shape {v.shape}, expected ({n},)")
        return np.maximum(v, 0.0)

    if (sa := sd_of("a")) is not None:
        mag = np.maximum(np.abs(a), 1e-6)
        a = np.sign(a) * mag * np.exp(rng.normal(0.0, sa / mag))
    if (sb := sd_of("b")) is not None:
        b = b + rng.normal(0.0, 1.0, n) * sb
    for name, arr in (("c", c), ("d", d)):
        sv = sd_of(name)
        if sv is None:
            continue
        x = np.clip(arr, 1e-6, 1 - 1e-6)
        logit = np.log(x / (1 - x)) + rng.normal(0.0, 1.0, n) * sv / (x * (1 - x))
        arr[:] = np.where(sv > 0, 1 / (1 + np.exp(-logit)), arr)
    return ItemParams(params.item_ids, a, b, c, np.maximum(d, c))


def simulated_coverage(params: ItemParams, se: Mapping[str, NDArray], rng: np.random.Generator, *,
                       n_worlds: int = 200, per_world: int = 25, theta_range: tuple[float, float] = (-3.0, 3.0),
                       level: float = LEVEL, prior: Any = None, param_draws: int = 0,
                       abilities_from: str = "uniform") -> Coverage:
    """Coverage of the 95% ability intervals on a form whose parameters are known only up to ``se``.

    Each world draws one set of parameters from ``se`` (the same calibration error for everyone in it),
    simulates respondents answering with them, and scores them with the point parameters. The intervals
    checked are the product's: with ``param_draws`` > 0 they hold the parameters' error
    (``calibration.predictive.abilities_with_parameter_error``); ``coverage_exact_intervals`` is the same
    check of intervals that take the parameters as exact, and ``coverage_point_params`` the check when the
    responses come from the point parameters themselves (what a check blind to calibration error would
    claim). Respondents: uniform over ``theta_range``, or (``abilities_from="prior"``) drawn from
    ``prior`` (a ``calibration.Prior``: the calibration's latent distribution), where a Bayesian interval's
    average coverage is nominal by construction when the model holds. Also: mean interval width and
    coverage by band of true ability.
    """
    from .ability import estimate_abilities
    from .predictive import abilities_with_parameter_error

    if len(params) == 0:
        raise InputError("coverage simulation: the form has no calibrated items")
    if abilities_from not in ("uniform", "prior"):
        raise InputError(f"abilities_from {abilities_from!r}: choose uniform or prior")
    lo_t, hi_t = theta_range
    thetas: list[NDArray] = []
    hits: list[NDArray] = []
    hits_exact: list[NDArray] = []
    hits_point: list[NDArray] = []
    widths: list[NDArray] = []
    for _ in range(n_worlds):
        theta = _respondents(rng, per_world, theta_range, prior if abilities_from == "prior" else None)
        world = draw_params(params, se, rng)
        rs = simulate_responses(world, theta, rng)
        exact = estimate_abilities(rs.model_idx, rs.item_idx, rs.score, params, "eap", n_models=per_world,
                                   level=level, prior=prior)
        est = abilities_with_parameter_error(rs.model_idx, rs.item_idx, rs.score, params, se, n_models=per_world,
                                             prior=prior, level=level, n_draws=param_draws, rng=rng, base=exact)
        hits.append((est.lo <= theta) & (theta <= est.hi))
        widths.append(est.hi - est.lo)
        hits_exact.append((exact.lo <= theta) & (theta <= exact.hi))
        rs0 = simulate_responses(params, theta, rng)
        est0 = estimate_abilities(rs0.model_idx, rs0.item_idx, rs0.score, params, "eap", n_models=per_world,
                                  level=level, prior=prior)
        hits_point.append((est0.lo <= theta) & (theta <= est0.hi))
        thetas.append(theta)
    t, h, hp = np.concatenate(thetas), np.concatenate(hits), np.concatenate(hits_point)
    edges = np.array([-np.inf, -2.0, -1.0, 1.0, 2.0, np.inf])
    names = ["below -2", "-2 to -1", "-1 to 1", "1 to 2", "above 2"]
    band = np.searchsorted(edges, t, side="right") - 1
    rows = [(names[k], int((band == k).sum()), float(h[band == k].mean()), float(hp[band == k].mean()))
            for k in range(len(names)) if (band == k).any()]
    by_band = pd.DataFrame(rows, columns=["ability band", "n", "coverage", "coverage_point_params"])
    span = (float(t.min()), float(t.max())) if abilities_from == "prior" else (float(lo_t), float(hi_t))
    return Coverage(float(h.mean()), int(h.size), float(hp.mean()), float(np.concatenate(widths).mean()), by_band,
                    len(params), n_worlds, span, float(np.concatenate(hits_exact).mean()), int(max(param_draws, 0)),
                    abilities_from)


def _respondents(rng: np.random.Generator, n: int, theta_range: tuple[float, float], prior: Any) -> NDArray:
    if prior is None:
        return rng.uniform(theta_range[0], theta_range[1], n)
    if getattr(prior, "points", None) is None:
        return rng.normal(prior.mean, prior.sd, n)
    # A discrete latent distribution: pick nodes by weight, jitter uniformly within each node's cell.
    pts, w = np.asarray(prior.points), np.asarray(prior.weights)
    k = rng.choice(pts.size, n, p=w / w.sum())
    half = np.diff(pts).mean() / 2 if pts.size > 1 else 0.0
    return pts[k] + rng.uniform(-half, half, n)


def leave_one_model_out(responses: pd.DataFrame, form_items: Sequence[str], *, irt_model: str = "2pl",
                        start: ItemParams | None = None, models: Sequence[str] | None = None,
                        min_outside: int = 50, level: float = LEVEL,
                        on_model: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Replay each model against a calibration that never saw it (module doc); one row per model.

    ``responses``: model, item_id, score. A model takes part when it answered at least ``min_outside``
    calibrated items outside the form (else there is nothing to predict). Columns: model, n_form,
    n_target, actual, predicted, lo, hi, covered, raw_form_accuracy, theta_form.
    """
    from .ability import Posterior, ability_posteriors, estimate_abilities, predict_score

    form = set(form_items)
    # An item answered in several runs counts once (its mean score).
    df = responses.groupby(["model", "item_id"], as_index=False, sort=True)["score"].mean()
    outside = df[~df["item_id"].isin(form)].groupby("model").size()
    on_form = df[df["item_id"].isin(form)].groupby("model").size()
    chosen = [m for m in (models if models is not None else sorted(df["model"].unique()))
              if outside.get(m, 0) >= min_outside and on_form.get(m, 0) > 0]
    rows = []
    for model in chosen:
        if on_model is not None:
            on_model(model)
        train = df[df["model"] != model]
        rs = ResponseSet.from_frame(train, "model", "item_id", "score")
        warm = None
        if start is not None:
            pos = {k: i for i, k in enumerate(start.item_ids)}
            if all(k in pos for k in rs.item_ids):
                warm = start.subset(np.array([pos[k] for k in rs.item_ids]))
        fit = fit_mml(rs, irt_model, start=warm, compute_se=False, warn=False)
        ok = np.asarray(fit.item_status == "calibrated")
        params = fit.params.subset(np.flatnonzero(ok))
        pos = {k: i for i, k in enumerate(params.item_ids)}
        mine = df[(df["model"] == model) & df["item_id"].isin(pos)]
        target_ids = mine["item_id"].tolist()
        seen = mine[mine["item_id"].isin(form)]
        if seen.empty or len(mine) - len(seen) < min_outside:
            continue
        j = np.array([pos[k] for k in seen["item_id"]])
        scores = seen["score"].to_numpy(float)
        grid, w = ability_posteriors(np.zeros(len(j), np.int64), np.arange(len(j)), scores, params.subset(j),
                                     n_models=1)
        rest = [pos[k] for k in target_ids if k not in form]
        pred = predict_score(scores, params.subset(j), params.subset(np.array(rest)), Posterior(grid, w[0]),
                             level=level)
        est = estimate_abilities(np.zeros(len(j), np.int64), np.arange(len(j)), scores, params.subset(j), "eap",
                                 n_models=1)
        actual = float(mine["score"].mean())
        rows.append((model, len(seen), len(mine), actual, pred.mean, pred.lo, pred.hi,
                     bool(pred.lo - 1e-12 <= actual <= pred.hi + 1e-12), float(scores.mean()), float(est.theta[0])))
    return pd.DataFrame(rows, columns=["model", "n_form", "n_target", "actual", "predicted", "lo", "hi", "covered",
                                       "raw_form_accuracy", "theta_form"])
