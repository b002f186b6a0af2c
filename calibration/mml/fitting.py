"""``fit_mml``: checks the arguments, builds the problem, runs the EM, assembles the result.

The problem (``_Problem``) is ``problem._ProblemBase`` with the EM's parts mixed in: the E-step
(``estep``), the M-step per model family (``mstep``), the latent update (``latent``), the standard errors
(``se``) and the acceleration's scale mode and convergence measure (``accel``); ``em_map`` is one EM step.

Items nobody answered, or that everyone answered the same way (every score 1, or every score 0), carry
no information about their own parameters: they are reported in ``item_status``, left out of the fit
(their responses do not inform abilities either, since their parameters are unknown), and kept at their
prior values (a = exp(prior mean of log a), b = prior mean of b, c and d at their prior modes or the
given guessing); their standard errors are NaN.  Anchor items given in ``fixed`` are never updated, and
their responses always inform the abilities.

Abilities.  Per-model EAP theta and posterior SD from the final posterior over the nodes (models with
no usable responses get the latent mean and SD).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logit

from adtbase.errors import InputError

from ..data import ResponseSet
from ..irt import GUESSING_MODELS, IRT_MODELS, ItemParams, guessing_from_choices
from ..result import CalibrationConvergenceWarning, CalibrationResult, item_status
from .accel import _AccelMixin, _run_em
from .curves import _PCOLS, _normal_logw, _Priors
from .estep import _EStepMixin
from .latent import _LatentMixin
from .mstep import _MStepMixin
from .ops import _DenseOps, _SparseOps
from .problem import _EStep, _Params
from .se import _StdErrMixin


class _Problem(_EStepMixin, _MStepMixin, _LatentMixin, _StdErrMixin, _AccelMixin):
    """One fit's problem with every part of the EM (see the module docstring)."""

    def em_map(self, p: _Params) -> tuple[_Params, _EStep]:
        e = self.estep(p)
        q = self.mstep(p, e)
        q = self.update_latent(q, e)
        return q, e


def fit_mml(responses: ResponseSet, model: str = "2pl", *, rng: np.random.Generator | None = None,
            seed: int | None = None, n_quad: int = 61, theta_range: tuple[float, float] = (-6.0, 6.0),
            latent: Literal["normal", "empirical"] = "normal", guessing: ArrayLike | None = None,
            n_choices: ArrayLike | None = None, prior_a: tuple[float, float] = (0.0, 1.0),
            prior_b: tuple[float, float] = (0.0, 3.0), prior_c: tuple[float, float] = (5.0, 17.0),
            prior_d: tuple[float, float] = (12.0, 2.0),
            fixed: Mapping[str, tuple[float, float, float, float]] | None = None,
            start: ItemParams | None = None, max_iter: int = 2000, tol_ll: float = 1e-9,
            tol_param: float = 1e-4, accelerate: bool = True, n_newton: int = 2,
            compute_se: bool = True, warn: bool = True,
            backend: Literal["auto", "sparse", "dense"] = "auto") -> CalibrationResult:
    """Fit a 1PL/2PL/3PL/4PL by marginal maximum likelihood (EM, fixed quadrature) on sparse data.

    responses   the observed (model, item, score) triplets; scores in [0, 1] (fractional allowed).
    model       "1pl" | "2pl" | "3pl" | "4pl".
    rng, seed   EM from deterministic starting values is deterministic, so nothing is drawn from
                ``rng``; it is accepted so every fitter has one signature. ``seed`` (the one the
                caller built its generator from) is recorded in ``settings`` for the bank.
    n_quad, theta_range   equally spaced quadrature nodes (default 61 on [-6, 6]; steep items and
                extreme abilities need a fine, wide grid).
    latent      "normal" (N(0, 1), or mean/sd estimated when anchors are fixed) or "empirical".
    guessing / n_choices  3PL/4PL lower asymptotes held fixed per item (aligned with
                ``responses.item_ids``; ``n_choices`` gives 1/k); without them c is estimated with
                the beta ``prior_c``.
    prior_a     (mean, sd) of log a.   prior_b: (mean, sd) of b.   prior_c, prior_d: beta(alpha, beta).
    fixed       {item_id: (a, b, c, d)} anchor items held at these values (fixed-parameter linking);
                ids not in ``responses`` are ignored and listed in ``settings['fixed_unused']``.
    start       optional starting parameters (e.g. a 2PL fit to start a 4PL).
    max_iter, tol_ll, tol_param, accelerate, n_newton   EM controls (module docstring).
    backend     "sparse" (CSR matmuls over the observed triplets), "dense" (BLAS on a model x item
                cache), or "auto": dense only for small, nearly complete data (>= 30% observed and
                <= 10M cells); the results agree to rounding.
    """
    t0 = time.perf_counter()
    if responses.has_raters:
        raise InputError("the responses hold judges' verdicts (raters): a rater model fits them (--method facets)")
    model = model.lower()
    if model not in IRT_MODELS:
        raise InputError(f"unknown IRT model {model!r}; choose one of {', '.join(IRT_MODELS)}")
    if latent not in ("normal", "empirical"):
        raise InputError(f"latent must be 'normal' or 'empirical', got {latent!r}")
    if n_quad < 11:
        raise InputError(f"n_quad must be at least 11, got {n_quad}")
    lo, hi = theta_range
    if not hi > lo:
        raise InputError(f"theta_range must be increasing, got {theta_range}")
    for name, (_, sd) in (("prior_a", prior_a), ("prior_b", prior_b)):
        if not sd > 0:
            raise InputError(f"{name}: the sd must be positive, got {sd}")
    for name, (al, be) in (("prior_c", prior_c), ("prior_d", prior_d)):
        if not (al > 0 and be > 0):
            raise InputError(f"{name}: beta parameters must be positive, got ({al}, {be})")
    if backend not in ("auto", "sparse", "dense"):
        raise InputError(f"backend must be 'auto', 'sparse' or 'dense', got {backend!r}")
    if max_iter < 2:
        raise InputError(f"max_iter must be at least 2, got {max_iter}")
    priors = _Priors(tuple(map(float, prior_a)), tuple(map(float, prior_b)),  # type: ignore[arg-type]
                     tuple(map(float, prior_c)), tuple(map(float, prior_d)))  # type: ignore[arg-type]
    n_items = responses.n_items
    x = np.linspace(lo, hi, n_quad)

    c_fixed = _resolve_guessing(guessing, n_choices, n_items)
    cols: tuple[str, ...] = {"1pl": ("a", "b"), "2pl": ("a", "b"), "3pl": ("a", "b", "c"),
                             "4pl": ("a", "b", "c", "d")}[model]
    if c_fixed is not None and model in GUESSING_MODELS:
        cols = tuple(c for c in cols if c != "c")
    shared_a = model == "1pl"

    status = item_status(responses)
    fixed_mask, fixed_vals, unused = _resolve_fixed(fixed, responses.item_ids)
    informative = status == "calibrated"
    free_items = informative & ~fixed_mask
    used_items = informative | fixed_mask
    anchored = bool(fixed_mask.any())

    if start is not None and tuple(start.item_ids) != responses.item_ids:
        raise InputError("start parameters must have the same item_ids, in order, as the responses")
    prob = _Problem(responses, model, x, latent, priors, free_items, used_items, cols, shared_a, anchored,
                    n_newton, backend)
    p = _start_params(prob.ops, responses.n_items, model, priors, c_fixed, free_items, start, x)
    for col, vals in zip(_PCOLS, fixed_vals, strict=True):
        getattr(p, col)[fixed_mask] = vals[fixed_mask]
    prob.plain = prob.plain and not np.any(p.c[used_items]) and bool(np.all(p.d[used_items] == 1.0))
    prob.suff = prob.plain and model == "2pl"
    p_hat, e_hat, tr = _run_em(prob, p, max_iter=max_iter, tol_ll=tol_ll, tol_param=tol_param,
                               accelerate=accelerate)
    if not tr.converged and warn:
        warnings.warn(f"MML {model} calibration did NOT converge in {tr.n_iter} EM steps "
                      f"(last |d logpost| = {tr.last_dll:.3g}, max |d param| = {tr.last_dpar:.3g}; "
                      f"rule: < {tol_ll:g} * (1 + |logpost|) and < {tol_param:g}); parameters are "
                      f"unreliable, raise max_iter or inspect the data", CalibrationConvergenceWarning,
                      stacklevel=2)
    # Final posterior at the returned point (e_hat already is the E-step at p_hat), on every node.
    if e_hat.nodes.indices(n_quad)[:2] != (0, n_quad):
        e_hat = prob.estep(p_hat, full=True)
    post = e_hat.post
    theta = post @ x
    theta_se = np.sqrt(np.maximum(post @ (x * x) - theta**2, 0.0))
    wts = np.exp(p_hat.logw)
    m0 = float(wts @ x)
    theta[~prob.has_obs] = m0
    theta_se[~prob.has_obs] = math.sqrt(max(float(wts @ (x - m0) ** 2), 0.0))
    t_se = time.perf_counter()
    se = prob.item_se(p_hat, e_hat) if compute_se else {c: np.full(n_items, np.nan) for c in _PCOLS}
    t_se = time.perf_counter() - t_se
    for col in _PCOLS:
        if col not in cols and not (col == "a" and shared_a):
            se[col][:] = np.nan
    n_par = prob.pack(p_hat).size
    if latent == "empirical":
        n_par += -1 - (0 if anchored else 2)   # weights sum to 1; mean/sd fixed unless anchored
    loglik = e_hat.loglik
    n_eff = max(prob.n_used_models, 1)
    settings: dict[str, Any] = {
        "method": "mml", "model": model, "seed": seed, "n_quad": n_quad, "theta_range": [lo, hi],
        "latent": latent, "prior_a": list(priors.a), "prior_b": list(priors.b),
        "prior_c": list(priors.c) if "c" in cols else None, "prior_d": list(priors.d) if "d" in cols else None,
        "guessing": "fixed" if c_fixed is not None and model in GUESSING_MODELS else (
            "estimated" if "c" in cols else None),
        "max_iter": max_iter, "tol_ll": tol_ll, "tol_param": tol_param, "accelerate": "squarem" if accelerate
        else "none", "n_newton": n_newton, "n_rejected_extrapolations": tr.n_rejected,
        "fixed_items": [responses.item_ids[i] for i in np.flatnonzero(fixed_mask)],
        "fixed_unused": unused, "latent_mean": p_hat.mu, "latent_sd": p_hat.sd,
        "se_method": "louis_itemwise" if compute_se else None, "backend": prob.ops.kind,
        "final_dloglik": tr.last_dll, "final_dparam": tr.last_dpar,
        "seconds": round(time.perf_counter() - t0, 4), "se_seconds": round(t_se, 4),
        "n_models": responses.n_models,
        "n_items": n_items, "n_obs_used": prob.n_obs,
    }
    return CalibrationResult(
        params=ItemParams(responses.item_ids, p_hat.a, p_hat.b, p_hat.c, p_hat.d), se=se, item_status=status,
        theta=theta, theta_se=theta_se, quad_points=x, quad_weights=wts, loglik=loglik, n_iter=tr.n_iter,
        converged=tr.converged, settings=settings, aic=-2 * loglik + 2 * n_par,
        bic=-2 * loglik + n_par * math.log(n_eff), n_params=int(n_par), model_ids=responses.model_ids,
        fixed=fixed_mask, log_posterior=e_hat.logpost, n_obs=responses.n_obs)


def _resolve_guessing(guessing: ArrayLike | None, n_choices: ArrayLike | None,
                      n_items: int) -> NDArray | None:
    if guessing is not None and n_choices is not None:
        raise InputError("give either guessing or n_choices, not both")
    if n_choices is not None:
        guessing = guessing_from_choices(n_choices)
    if guessing is None:
        return None
    g = np.broadcast_to(np.asarray(guessing, dtype=float), (n_items,)).copy()
    bad = ~np.isfinite(g) | (g < 0) | (g >= 1)
    if bad.any():
        raise InputError(f"guessing for item {int(np.argmax(bad))} must be in [0, 1), got {g[bad][0]}")
    return g


def _resolve_fixed(fixed: Mapping[str, tuple[float, float, float, float]] | None,
                   item_ids: tuple[str, ...]) -> tuple[NDArray, list[NDArray], list[str]]:
    n = len(item_ids)
    mask = np.zeros(n, dtype=bool)
    vals = [np.zeros(n) for _ in _PCOLS]
    unused: list[str] = []
    if not fixed:
        return mask, vals, unused
    pos = {iid: k for k, iid in enumerate(item_ids)}
    for iid, v in fixed.items():
        k = pos.get(str(iid))
        if k is None:
            unused.append(str(iid))
            continue
        tup = tuple(float(t) for t in v)
        if len(tup) != 4:
            raise InputError(f"fixed[{iid!r}] must be (a, b, c, d), got {v!r}")
        a, b, c, d = tup
        if not (a > 0 and math.isfinite(b) and 0 <= c < d <= 1):
            raise InputError(f"fixed[{iid!r}] = {v!r} needs a > 0, finite b and 0 <= c < d <= 1")
        mask[k] = True
        for arr, val in zip(vals, tup, strict=True):
            arr[k] = val
    return mask, vals, unused


def _start_params(ops: _SparseOps | _DenseOps, n: int, model: str, priors: _Priors, c_fixed: NDArray | None,
                  free_items: NDArray, start: ItemParams | None, x: NDArray) -> _Params:
    """Moment-based starts: a from the item-rest correlation, b from the p-value (probit approximation)."""
    a = np.full(n, priors.start("a"))
    b = np.full(n, priors.start("b"))
    c = np.zeros(n) if model in ("1pl", "2pl") else np.full(n, priors.start("c"))
    if c_fixed is not None and model in GUESSING_MODELS:
        c = c_fixed.copy()
    d = np.ones(n) if model != "4pl" else np.full(n, priors.start("d"))
    logw = _normal_logw(x, 0.0, 1.0)
    if start is not None:
        f = free_items
        a[f] = np.clip(start.a[f], 0.05, 20)
        b[f] = np.clip(start.b[f], -10, 10)
        if model in GUESSING_MODELS and c_fixed is None:
            c[f] = np.clip(np.where(start.c[f] > 0, start.c[f], c[f]), 0.01, 0.6)
        if model == "4pl":
            d[f] = np.clip(np.where(start.d[f] < 1, start.d[f], d[f]), 0.5, 0.995)
        if model == "1pl":
            a[f] = float(np.median(a[f])) if f.any() else a[f]
        return _Params(a, b, c, d, logw)
    # ability proxy: standardised logit of each model's mean score (on the items in the fit)
    cnt_m, sum_m = ops.model_totals()
    prox = logit(np.clip(sum_m / np.maximum(cnt_m, 1), 0.02, 0.98))
    used = cnt_m > 0
    if used.any():
        prox = (prox - prox[used].mean()) / (prox[used].std() + 1e-9)
    cnt_i, s1, s2, t1, t2, st = ops.item_moments(prox)
    cnt_i = np.maximum(cnt_i, 1)
    mean_s, mean_t = s1 / cnt_i, t1 / cnt_i
    cov = st / cnt_i - mean_s * mean_t
    var_s = s2 / cnt_i - mean_s**2
    var_t = t2 / cnt_i - mean_t**2
    r = cov / np.sqrt(np.maximum(var_s * var_t, 1e-12))
    r = np.clip(r, 0.05, 0.9)
    a0 = np.clip(1.7 * r / np.sqrt(1 - r * r), 0.3, 4.0)
    pval = np.clip((mean_s - c) / np.maximum(d - c, 0.05), 0.02, 0.98)
    b0 = np.clip(-logit(pval) * np.sqrt(1 + np.pi * a0**2 / 8) / a0, -5, 5)
    f = free_items
    a[f] = a0[f] if model != "1pl" else (float(np.median(a0[f])) if f.any() else 1.0)
    b[f] = b0[f]
    return _Params(a, b, c, d, logw)
