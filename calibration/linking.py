"""Linking two calibrations onto one scale through common (anchor) items.

Convention: constants (A, B) map the NEW calibration's scale onto the OLD (target) one:

    theta' = A * theta + B,   a' = a / A,   b' = A * b + B,   c' = c,   d' = d

Methods: Stocking-Lord (minimise the weighted squared difference of the common items' test
characteristic curves over a theta grid on the old scale), mean-sigma (A = sd(b_old) / sd(b_new)) and
mean-mean (A = mean(a_new) / mean(a_old)); in both of the latter B = mean(b_old) - A * mean(b_new).
Standard errors of (A, B) by bootstrap over the common items (resampled with replacement, with a
passed rng), optionally also drawing each item's parameters from their SEs in every replicate.

Fixed-parameter linking is the fitter's ``fixed=`` argument; ``fixed_from_calibration`` builds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy.special import expit
from scipy.stats import norm

from adtbase.errors import InputError

from .honesty import draw_params
from .irt import ItemParams, prob

LINK_METHODS = ("stocking_lord", "mean_sigma", "mean_mean")


@dataclass(frozen=True)
class LinkingResult:
    """Constants that put the new calibration on the old scale, with bootstrap SEs."""

    A: float
    B: float
    se_A: float
    se_B: float
    method: str
    n_common: int
    common_ids: tuple[str, ...]
    n_boot: int = 0
    criterion: float = float("nan")  # Stocking-Lord loss at the optimum (mean squared TCC gap per item)

    def theta(self, theta: ArrayLike) -> NDArray:
        """Abilities from the new scale on the old scale."""
        return transform_theta(theta, self.A, self.B)

    def params(self, params: ItemParams) -> ItemParams:
        """Item parameters from the new scale on the old scale."""
        return transform_params(params, self.A, self.B)


def transform_theta(theta: ArrayLike, A: float, B: float) -> NDArray:
    return A * np.asarray(theta, dtype=float) + B


def transform_params(params: ItemParams, A: float, B: float) -> ItemParams:
    if not A > 0:
        raise InputError(f"linking slope A must be > 0, got {A}")
    return ItemParams(params.item_ids, params.a / A, A * params.b + B, params.c.copy(), params.d.copy())


def transform_se(se: Mapping[str, ArrayLike], A: float) -> dict[str, NDArray]:
    """Item-parameter SEs on the new scale (constants treated as known): se(a)/A, A se(b); c, d unchanged."""
    scale = {"a": 1.0 / A, "b": A}
    return {k: np.asarray(v, dtype=float) * scale.get(k, 1.0) for k, v in se.items()}


def common_items(old: ItemParams, new: ItemParams, ids: Sequence[str] | None = None) -> tuple[NDArray, NDArray]:
    """Positions of the common items in ``old`` and ``new`` (all shared ids, or the given anchors)."""
    pos_old = {k: i for i, k in enumerate(old.item_ids)}
    pos_new = {k: i for i, k in enumerate(new.item_ids)}
    if ids is None:
        ids = [k for k in new.item_ids if k in pos_old]
    else:
        missing = [k for k in ids if k not in pos_old or k not in pos_new]
        if missing:
            raise InputError(f"anchor item {missing[0]!r} is not in both calibrations ({len(missing)} missing)")
    if len(ids) < 2:
        raise InputError(f"linking needs at least 2 common items, found {len(ids)}")
    return np.array([pos_old[k] for k in ids]), np.array([pos_new[k] for k in ids])


def _check_finite(params: ItemParams, what: str) -> None:
    for name in ("a", "b", "c", "d"):
        v = getattr(params, name)
        if not np.isfinite(v).all():
            bad = int(np.flatnonzero(~np.isfinite(v))[0])
            raise InputError(f"{what} item {params.item_ids[bad]!r}: parameter {name} is not finite")


def mean_sigma(old: ItemParams, new: ItemParams) -> tuple[float, float]:
    """(A, B) from the means and SDs of the common items' difficulties (aligned params)."""
    sd_new = float(np.std(new.b, ddof=1))
    if not sd_new > 0:
        raise InputError("mean-sigma linking needs common items with different difficulties")
    A = float(np.std(old.b, ddof=1)) / sd_new
    return A, float(np.mean(old.b) - A * np.mean(new.b))


def mean_mean(old: ItemParams, new: ItemParams) -> tuple[float, float]:
    """(A, B) from the means of the common items' discriminations and difficulties (aligned params)."""
    if not np.mean(old.a) > 0 or not np.mean(new.a) > 0:
        raise InputError("mean-mean linking needs positive mean discriminations")
    A = float(np.mean(new.a) / np.mean(old.a))
    return A, float(np.mean(old.b) - A * np.mean(new.b))


def stocking_lord_constants(old: ItemParams, new: ItemParams, grid: NDArray, weights: NDArray,
                            start: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """(A, B, loss): minimise sum_k w_k [TCC_old(theta_k) - TCC_new->old(theta_k)]^2 (aligned params)."""
    target = prob(grid[:, None], old.a, old.b, old.c, old.d).sum(axis=1)
    n = len(old)
    t = grid[:, None]

    def loss_and_grad(x: NDArray) -> tuple[float, NDArray]:
        A, B = np.exp(x[0]), x[1]  # A on the log scale keeps it positive
        s = expit(new.a / A * (t - B) - new.a * new.b)
        resid = target - (new.c + (new.d - new.c) * s).sum(axis=1)
        dp = (new.d - new.c) * s * (1 - s)  # dP/dz, z = a (theta - B) / A - a b
        dz_dlogA = -new.a * (t - B) / A
        dz_dB = -new.a / A
        g = np.array([(dp * dz_dlogA).sum(axis=1), (dp * dz_dB).sum(axis=1)])
        return float(weights @ resid**2) / n, -2.0 * (g @ (weights * resid)) / n

    if start is None:
        try:
            start = mean_sigma(old, new)
        except InputError:
            start = (1.0, 0.0)
        if not (np.isfinite(start[0]) and start[0] > 0):
            start = (1.0, 0.0)
    best = None
    for x0 in (np.array([np.log(start[0]), start[1]]), np.array([0.0, 0.0])):
        res = optimize.minimize(loss_and_grad, x0, jac=True, method="BFGS", options={"gtol": 1e-10})
        if best is None or res.fun < best.fun:
            best = res
        if res.success:  # the second start (identity) is only a fallback
            break
    assert best is not None
    return float(np.exp(best.x[0])), float(best.x[1]), float(best.fun)


def link(old: ItemParams, new: ItemParams, method: str = "stocking_lord", *, anchors: Sequence[str] | None = None,
         grid: ArrayLike | None = None, weights: ArrayLike | None = None, rng: np.random.Generator | None = None,
         n_boot: int = 200, se_old: Mapping[str, ArrayLike] | None = None,
         se_new: Mapping[str, ArrayLike] | None = None) -> LinkingResult:
    """Linking constants (A, B) that put ``new`` on ``old``'s scale, from their common items.

    ``grid``/``weights``: the theta grid (old scale) and weights of the Stocking-Lord criterion
    (default 81 points on [-4, 4] weighted by a standard normal density; pass the old calibration's
    quad points and weights to weight by its latent distribution). SEs need ``rng`` and ``n_boot`` > 0;
    with ``se_old``/``se_new`` (dicts of arrays aligned with the full ``old``/``new`` params) every
    bootstrap replicate also draws the common items' parameters from their SEs.
    """
    if method not in LINK_METHODS:
        raise InputError(f"unknown linking method {method!r}; choose one of {', '.join(LINK_METHODS)}")
    io, jn = common_items(old, new, anchors)
    o, nw = old.subset(io), new.subset(jn)
    _check_finite(o, "old")
    _check_finite(nw, "new")
    g = np.linspace(-4, 4, 81) if grid is None else np.asarray(grid, dtype=float)
    w = norm.pdf(g) if weights is None else np.asarray(weights, dtype=float)
    if g.ndim != 1 or g.shape != w.shape or np.any(w < 0) or w.sum() <= 0:
        raise InputError("linking grid and weights must be 1-D of equal length with non-negative weights")
    w = w / w.sum()

    def constants(o_: ItemParams, n_: ItemParams, start: tuple[float, float] | None) -> tuple[float, float, float]:
        if method == "mean_sigma":
            return (*mean_sigma(o_, n_), float("nan"))
        if method == "mean_mean":
            return (*mean_mean(o_, n_), float("nan"))
        return stocking_lord_constants(o_, n_, g, w, start)

    A, B, crit = constants(o, nw, None)
    se_A = se_B = float("nan")
    if n_boot > 0 and rng is not None:
        so = _aligned_se(se_old, io, len(old), "se_old")
        sn = _aligned_se(se_new, jn, len(new), "se_new")
        reps = np.empty((n_boot, 2))
        k = len(io)
        for r in range(n_boot):
            pick = rng.integers(0, k, k)
            ob, nb = o.subset(pick), nw.subset(pick)
            if so is not None:
                ob = _perturb(ob, {n: v[pick] for n, v in so.items()}, rng)
            if sn is not None:
                nb = _perturb(nb, {n: v[pick] for n, v in sn.items()}, rng)
            try:
                reps[r, :] = constants(ob, nb, (A, B))[:2]
            except InputError:  # a degenerate resample (e.g. all one item): skip it
                reps[r, :] = np.nan
        ok = np.isfinite(reps).all(axis=1)
        if ok.sum() >= 2:
            se_A, se_B = (float(v) for v in np.std(reps[ok], axis=0, ddof=1))
    ids = tuple(new.item_ids[i] for i in jn)
    return LinkingResult(A, B, se_A, se_B, method, len(io), ids, n_boot if rng is not None else 0, crit)


def _aligned_se(se: Mapping[str, ArrayLike] | None, idx: NDArray, n: int, what: str) -> dict[str, NDArray] | None:
    if se is None:
        return None
    out = {}
    for name, v in se.items():
        arr = np.nan_to_num(np.asarray(v, dtype=float), nan=0.0)
        if arr.shape != (n,):
            raise InputError(f"{what}[{name!r}] has shape {arr.shape}, expected ({n},)")
        out[name] = np.maximum(arr[idx], 0.0)
    return out


def _perturb(params: ItemParams, se: Mapping[str, NDArray], rng: np.random.Generator) -> ItemParams:
    """One draw of a and b from their SEs: the one parameter-draw rule (``honesty.draw_params``)."""
    return draw_params(params, {k: v for k, v in se.items() if k in ("a", "b")}, rng)


def fixed_from_calibration(previous: Any, anchors: Sequence[str] | None = None, *,
                           item_status: Sequence[str] | None = None,
                           linking: LinkingResult | None = None) -> dict[str, tuple[float, float, float, float]]:
    """The fitter's ``fixed=`` dict {item_id: (a, b, c, d)} from a previous calibration's anchors.

    ``previous``: a CalibrationResult (its ``params`` and ``item_status`` are used) or an ItemParams.
    Only items calibrated in ``previous`` can anchor: asking for an unanswered, all-correct/all-wrong or
    unknown item is an error, since fixing a parameter that was never estimated would fake a link.
    ``anchors=None`` takes every calibrated item. ``linking`` first maps the previous parameters through
    (A, B) (e.g. to carry an older scale forward).
    """
    params: ItemParams = previous.params if hasattr(previous, "params") else previous
    status = item_status if item_status is not None else getattr(previous, "item_status", None)
    if status is not None and len(status) != len(params):
        raise InputError(f"item_status has {len(status)} entries for {len(params)} items")
    if linking is not None:
        params = transform_params(params, linking.A, linking.B)
    pos = {k: i for i, k in enumerate(params.item_ids)}
    if anchors is None:
        chosen = [k for k in params.item_ids if status is None or status[pos[k]] == "calibrated"]
    else:
        chosen = list(dict.fromkeys(anchors))
        for k in chosen:
            if k not in pos:
                raise InputError(f"anchor item {k!r} is not in the previous calibration")
            if status is not None and status[pos[k]] != "calibrated":
                raise InputError(f"anchor item {k!r} has status {str(status[pos[k]])!r} in the previous calibration; "
                                 "only calibrated items can anchor")
    out = {}
    for k in chosen:
        i = pos[k]
        vals = (float(params.a[i]), float(params.b[i]), float(params.c[i]), float(params.d[i]))
        if not all(np.isfinite(vals)):
            raise InputError(f"anchor item {k!r} has non-finite parameters {vals}")
        out[k] = vals
    return out
