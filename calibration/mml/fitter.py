"""The ``mml`` fitter: ``fit_mml`` (or ``select_model`` for ``--irt auto``) behind ``calibration.fitters``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import ResponseSet
from ..fitters import FitSettings, Fitter
from ..irt import IRT_CHOICES, IRT_MODELS
from ..result import CalibrationResult
from .fitting import fit_mml
from .select import select_model


class MMLFitter(Fitter):
    """Marginal maximum likelihood (EM on a fixed grid), any of the 1PL-4PL, or the best by held-out fit."""

    name = "mml"
    label = "MML"
    summary = "marginal maximum likelihood (EM) with SEs, anchors can be held fixed"
    irt_models = IRT_CHOICES
    holds_anchors = True

    def fit(self, responses: ResponseSet, settings: FitSettings, *,
            rng: np.random.Generator) -> CalibrationResult:
        kw: dict[str, Any] = {"latent": settings.latent, "max_iter": settings.max_iter}
        if settings.n_choices is not None:
            kw["n_choices"] = settings.n_choices
        if settings.fixed is not None:
            kw["fixed"] = settings.fixed
        if settings.irt not in IRT_MODELS:      # "auto": every model, the best by held-out log-likelihood
            sel = select_model(responses, rng=rng, holdout_frac=settings.holdout_frac, seed=settings.seed, **kw)
            assert sel.result is not None
            return sel.result
        return fit_mml(responses, settings.irt, rng=rng, seed=settings.seed, **kw)
