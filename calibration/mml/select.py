"""IRT model selection by the held-out log-likelihood of randomly held-out responses (``--irt auto``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse
from scipy.special import logsumexp

from adtbase.errors import InputError

from ..data import ResponseSet
from ..irt import EPS, GUESSING_MODELS, IRT_MODELS, ItemParams, prob
from ..result import CalibrationResult
from .fitting import fit_mml
from .ops import _CHUNK


@dataclass(frozen=True)
class CandidateFit:
    """How one candidate model did on the held-out responses (and its information criteria)."""

    model: str
    heldout_loglik: float
    heldout_loglik_per_obs: float
    n_heldout: int
    loglik: float
    aic: float
    bic: float
    n_params: int
    converged: bool
    n_iter: int


@dataclass(frozen=True)
class ModelSelection:
    """``select_model``'s answer: the chosen model, every candidate's scores, and the refit."""

    best: str
    candidates: tuple[CandidateFit, ...]
    result: CalibrationResult | None
    holdout_frac: float
    seed: int | None = None

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([c.__dict__ for c in self.candidates])


def heldout_loglik(result: CalibrationResult, train: ResponseSet, heldout: ResponseSet) -> NDArray:
    """Posterior-predictive log-likelihood of each held-out response given the model's training data.

    For held-out (m, i, s): log sum_q post_m(q) P_i(q)^s (1 - P_i(q))^(1 - s), where post_m is model
    m's posterior over the nodes given its training responses (on the usable items) under ``result``.
    """
    x, p = result.quad_points, result.params
    logw = np.log(np.maximum(result.quad_weights, 1e-300))
    used = (result.item_status == "calibrated") | (result.fixed if result.fixed.size else False)
    keep = np.asarray(used)[train.item_idx]
    m, i, s = train.model_idx[keep], train.item_idx[keep], train.score[keep]
    P = np.clip(prob(x, p.a[:, None], p.b[:, None], p.c[:, None], p.d[:, None]), EPS, 1 - EPS)
    shape = (train.n_models, train.n_items)
    pos, neg = s > 0, s < 1
    L = (sparse.csr_array((s[pos], (m[pos], i[pos])), shape=shape) @ np.log(P)
         + sparse.csr_array((1 - s[neg], (m[neg], i[neg])), shape=shape) @ np.log1p(-P)) + logw
    logpost = L - logsumexp(L, axis=1)[:, None]
    out = np.empty(heldout.n_obs)
    hm, hi_, hs = heldout.model_idx, heldout.item_idx, heldout.score
    for lo in range(0, hm.size, _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        Pi = P[hi_[sl]]
        ll = hs[sl, None] * np.log(Pi) + (1 - hs[sl, None]) * np.log1p(-Pi)
        out[sl] = logsumexp(logpost[hm[sl]] + ll, axis=1)
    return out


def split_holdout(responses: ResponseSet, holdout_frac: float,
                  rng: np.random.Generator) -> tuple[ResponseSet, ResponseSet]:
    """Random held-out responses (cells), never a model's or an item's only response."""
    if not 0 < holdout_frac < 1:
        raise InputError(f"holdout_frac must be in (0, 1), got {holdout_frac}")
    u = rng.random(responses.n_obs)
    hold = u < holdout_frac
    # a model (or item) whose every response was drawn keeps its first one for training
    for idx, n in ((responses.model_idx, responses.n_models), (responses.item_idx, responses.n_items)):
        starved = np.bincount(idx[~hold], minlength=n) == 0
        order = np.lexsort((u, idx))
        first = order[np.r_[True, np.diff(idx[order]) != 0]]
        hold[first[starved[idx[first]]]] = False
    return responses.subset(~hold), responses.subset(hold)


def select_model(responses: ResponseSet, candidates: Sequence[str] = IRT_MODELS, *,
                 rng: np.random.Generator, holdout_frac: float = 0.2, refit: bool = True,
                 seed: int | None = None, **fit_kwargs: Any) -> ModelSelection:
    """Choose the IRT model by the held-out log-likelihood of randomly held-out responses.

    Each candidate is fitted on the training responses; the held-out responses are scored by their
    posterior-predictive log-likelihood (``heldout_loglik``). The candidate with the highest total wins
    (AIC and BIC of the training fits are reported beside it, not used). A candidate whose fit did not
    converge is only chosen if none converged. With ``refit`` the winner is refitted on all responses.
    ``fit_kwargs`` go to every ``fit_mml`` call (e.g. ``latent``, ``n_quad``, ``n_choices``).
    """
    cands = [c.lower() for c in candidates]
    for c in cands:
        if c not in IRT_MODELS:
            raise InputError(f"unknown IRT model {c!r} among candidates; choose from {', '.join(IRT_MODELS)}")
    if not cands:
        raise InputError("select_model needs at least one candidate model")
    train, held = split_holdout(responses, holdout_frac, rng)
    scores: list[CandidateFit] = []
    warm: ItemParams | None = None
    for c in cands:
        kw = dict(fit_kwargs)
        if c in GUESSING_MODELS and warm is not None and "start" not in kw:
            kw["start"] = warm
        res = fit_mml(train, c, rng=rng, seed=seed, **kw)
        if c == "2pl":
            warm = res.params
        ll = heldout_loglik(res, train, held)
        scores.append(CandidateFit(c, float(ll.sum()), float(ll.mean()) if ll.size else float("nan"),
                                   int(ll.size), res.loglik, res.aic, res.bic, res.n_params, res.converged,
                                   res.n_iter))
    pool = [s for s in scores if s.converged] or scores
    best = max(pool, key=lambda s: s.heldout_loglik).model
    result = None
    if refit:
        kw = dict(fit_kwargs)
        result = fit_mml(responses, best, rng=rng, seed=seed, **kw)
        result.settings["selection"] = {"holdout_frac": holdout_frac,
                                        "candidates": [s.__dict__ for s in scores]}
    return ModelSelection(best, tuple(scores), result, holdout_frac, seed)
