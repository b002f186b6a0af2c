"""What every calibration fitter returns: ``CalibrationResult``, and the item statuses read from the data.

Moved out of ``calibration.mml`` (which re-exports these names) so that a fitter that is not MML
(``calibration.pyirt_backend``, the fitters ``calibration.fitters`` registers) does not import the EM code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .data import ResponseSet
from .irt import ItemParams

STATUSES = ("calibrated", "unanswered", "all_correct", "all_wrong")


class CalibrationConvergenceWarning(UserWarning):
    """An EM calibration stopped at max_iter before meeting its convergence rule."""


@dataclass(frozen=True)
class CalibrationResult:
    """One fitted calibration (see module docstring for what every field means)."""

    params: ItemParams
    se: dict[str, NDArray[np.float64]]
    item_status: NDArray[np.str_]
    theta: NDArray[np.float64]
    theta_se: NDArray[np.float64]
    quad_points: NDArray[np.float64]
    quad_weights: NDArray[np.float64]
    loglik: float
    n_iter: int
    converged: bool
    settings: dict[str, Any]
    aic: float
    bic: float
    n_params: int
    model_ids: tuple[str, ...] = ()
    fixed: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    log_posterior: float = float("nan")
    n_obs: int = 0
    method: str = "mml"

    @property
    def model(self) -> str:
        return str(self.settings.get("model", ""))

    @property
    def calibrated(self) -> NDArray[np.bool_]:
        return np.asarray(self.item_status == "calibrated")

    def item_table(self) -> pd.DataFrame:
        """One row per item: parameters, SEs, status, fixed flag."""
        p = self.params
        cols = p.columns()
        out = pd.DataFrame({"item_id": list(p.item_ids), **cols})
        for k in cols:
            out[f"se_{k}"] = self.se.get(k, np.full(len(p), np.nan))
        out["status"] = self.item_status
        out["fixed"] = self.fixed if self.fixed.size else False
        return out

    def ability_table(self) -> pd.DataFrame:
        return pd.DataFrame({"model": list(self.model_ids), "theta": self.theta, "theta_se": self.theta_se})


def item_status(responses: ResponseSet) -> NDArray[np.str_]:
    """'unanswered' / 'all_correct' / 'all_wrong' from the data alone, else 'calibrated'."""
    n = responses.counts_per_item()
    ones = np.bincount(responses.item_idx, weights=(responses.score == 1.0).astype(float),
                       minlength=responses.n_items)
    zeros = np.bincount(responses.item_idx, weights=(responses.score == 0.0).astype(float),
                        minlength=responses.n_items)
    status = np.full(responses.n_items, "calibrated", dtype="<U11")
    status[(n > 0) & (ones == n)] = "all_correct"
    status[(n > 0) & (zeros == n)] = "all_wrong"
    status[n == 0] = "unanswered"
    return status


def four_pl_view(result: CalibrationResult) -> CalibrationResult:
    """``result`` with its parameters as ``ItemParams`` for the consumers that read a, b, c, d (the store's
    item table, difficulty bands, the predictive model, content priors): itself for a 4PL family; another
    family's ``as_item_params()`` (the GRM: a and the mean threshold, exact for binary items) with the SEs
    that carry over (a; b where an item has one threshold)."""
    p = result.params
    if isinstance(p, ItemParams):
        return result
    view = p.as_item_params()
    n = len(view)
    cols = p.columns()
    one_threshold = np.sum([np.isfinite(v) for k, v in cols.items() if k != "a"], axis=0) == 1
    se = {"a": np.asarray(result.se.get("a", np.full(n, np.nan)), dtype=float),
          "b": np.where(one_threshold, result.se.get("b1", np.full(n, np.nan)), np.nan),
          "c": np.full(n, np.nan), "d": np.full(n, np.nan)}
    return replace(result, params=view, se=se)
