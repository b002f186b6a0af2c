"""Judge statistics and the panel's rater model (issue 15): pure numpy/pandas/scipy, no I/O.

``frame`` reads the judge contract's judgments frame and holds the position-combination rule
(``combine_orders``); ``stats`` the per-judge statistics and the length-controlled score; ``panel`` the rater
model (Dawid-Skene with per-order confusion and a length term, fitted with gold labels where given and EM over
the rest) and the unsupervised one-coin baseline; ``crossval`` the panel against majority vote and the best
single judge; ``routing`` confidence calibration and human routing. ``calibration.judge_store`` keeps what
``adt judge validate`` measures in the bank.
"""

from __future__ import annotations

from .crossval import cross_validate, fit_panel, fold_ids
from .frame import (
                    CASE,
                    GOLD_COLUMNS,
                    JUDGMENT_COLUMNS,
                    LENGTH_COLUMNS,
                    ORDERS,
                    Verdicts,
                    align,
                    check_gold,
                    check_judgments,
                    class_of,
                    combine_orders,
                    verdicts,
)
from .panel import (
                    OneCoin,
                    RaterModel,
                    majority_vote,
                    one_coin_ds,
                    panel_posterior,
                    posterior_verdict,
                    temper,
                    vote_distribution,
)
from .routing import RULES, expected_calibration_error, reliability_bins, route, routing_gain
from .stats import (
                    STAT_COLUMNS,
                    cohen_kappa,
                    credit,
                    gold_classes,
                    judge_stats,
                    length_controlled,
                    length_feature,
)

__all__ = ["CASE", "GOLD_COLUMNS", "JUDGMENT_COLUMNS", "LENGTH_COLUMNS", "ORDERS", "RULES", "STAT_COLUMNS",
           "OneCoin", "RaterModel", "Verdicts", "align", "check_gold", "check_judgments", "class_of", "cohen_kappa",
           "combine_orders", "credit", "cross_validate", "fit_panel", "expected_calibration_error", "fold_ids", "gold_classes",
           "judge_stats", "length_controlled", "length_feature", "majority_vote", "one_coin_ds", "panel_posterior", "posterior_verdict",
           "reliability_bins", "route", "routing_gain", "temper", "verdicts", "vote_distribution"]
