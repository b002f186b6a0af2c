"""Calibration: IRT models fitted from sparse past runs, abilities with error bars.

The room's face: other rooms, ``adt/`` and ``bench/`` import these names from ``calibration`` and never
reach into its modules (``tests/test_architecture.py``). Importing it registers the room's migrations
(``calibration/migrations/``) with the bank (``itembank.register_migrations``).

Importing the face is light (no numpy, scipy or pandas): it registers the migrations and every name loads on
first use from the module that defines it (``_LAZY``, module ``__getattr__``, as ``runners``' face), so a
command that only opens the bank (whose migrations name this room) never pays for the IRT maths. A name
added to the face goes in both ``_LAZY`` and the ``TYPE_CHECKING`` block (``tests/adt/test_startup.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adtbase.lazy import lazy_getattr
from itembank import register_migrations as _register_migrations

# Names loaded on first use from the module that defines them.
_LAZY = {
    "AbilityEstimate": "calibration.ability",
    "AbilityEstimates": "calibration.ability",
    "Posterior": "calibration.ability",
    "PredictedScore": "calibration.ability",
    "Prior": "calibration.ability",
    "abilities_for": "calibration.ability",
    "ability_posterior": "calibration.ability",
    "ability_posteriors": "calibration.ability",
    "estimate_abilities": "calibration.ability",
    "estimate_ability": "calibration.ability",
    "predict_score": "calibration.ability",
    "DriftReport": "calibration.drift",
    "adjust_pvalues": "calibration.drift",
    "mantel_haenszel_drift": "calibration.drift",
    "flag_items": "calibration.fit",
    "item_fit": "calibration.fit",
    "parameter_drift": "calibration.fit",
    "s_x2": "calibration.fit",
    "LinkingResult": "calibration.linking",
    "fixed_from_calibration": "calibration.linking",
    "link": "calibration.linking",
    "mean_mean": "calibration.linking",
    "mean_sigma": "calibration.linking",
    "stocking_lord_constants": "calibration.linking",
    "transform_params": "calibration.linking",
    "transform_se": "calibration.linking",
    "transform_theta": "calibration.linking",
    "ResponseSet": "calibration.data",
    "FacetsFitter": "calibration.facets",
    "fit_facets": "calibration.facets",
    "simulate_graded": "calibration.facets",
    "GradedParams": "calibration.irt",
    "JudgedResponses": "calibration.judged",
    "graded_response_set": "calibration.judged",
    "judged_responses": "calibration.judged",
    "four_pl_view": "calibration.result",
    "DEFAULT_FITTER": "calibration.fitters",
    "FitSettings": "calibration.fitters",
    "Fitter": "calibration.fitters",
    "anchoring_fitters": "calibration.fitters",
    "fitter_names": "calibration.fitters",
    "get_fitter": "calibration.fitters",
    "irt_choices": "calibration.fitters",
    "method_help": "calibration.fitters",
    "register_fitter": "calibration.fitters",
    "unregister_fitter": "calibration.fitters",
    "EPS": "calibration.irt",
    "IRT_CHOICES": "calibration.irt",
    "IRT_MODELS": "calibration.irt",
    "ItemModel": "calibration.irt",
    "ItemParams": "calibration.irt",
    "expected_score": "calibration.irt",
    "guessing_from_choices": "calibration.irt",
    "item_information": "calibration.irt",
    "prob": "calibration.irt",
    "test_information": "calibration.irt",
    "CandidateFit": "calibration.mml",
    "ModelSelection": "calibration.mml",
    "fit_mml": "calibration.mml",
    "heldout_loglik": "calibration.mml",
    "select_model": "calibration.mml",
    "simulate_responses": "calibration.mml",
    "split_holdout": "calibration.mml",
    "fit_pyirt": "calibration.pyirt_backend",
    "DEFAULT_ONLINE_METHOD": "calibration.online",
    "ONLINE_METHODS": "calibration.online",
    "OnlineCalibration": "calibration.online",
    "calibrate_online": "calibration.online",
    "STATUSES": "calibration.result",
    "CalibrationConvergenceWarning": "calibration.result",
    "CalibrationResult": "calibration.result",
    "item_status": "calibration.result",
    "Coverage": "calibration.honesty",
    "draw_params": "calibration.honesty",
    "leave_one_model_out": "calibration.honesty",
    "rank_distribution": "calibration.honesty",
    "separability": "calibration.honesty",
    "simulated_coverage": "calibration.honesty",
    "PredictiveModel": "calibration.predictive",
    "abilities_with_parameter_error": "calibration.predictive",
    "build_predictive": "calibration.predictive",
    "compare": "calibration.predictive",
    "compare_many": "calibration.predictive",
    "evidence": "calibration.predictive",
    "exact_view": "calibration.predictive",
    "predict": "calibration.predictive",
    "join_predictive": "calibration.predictive",
    "with_content_prior": "calibration.predictive",
    "CONTENT_FEATURES": "calibration.content_prior",
    "ContentPrior": "calibration.content_prior",
    "PriorPrediction": "calibration.content_prior",
    "fit_content_prior": "calibration.content_prior",
    "KeyCheck": "calibration.keycheck",
    "check_keys": "calibration.keycheck",
    "predict_evidence": "calibration.predictive",
    "KEPT_AT_PRIOR": "calibration.store",
    "STATUS_REASONS": "calibration.store",
    "StoredCalibration": "calibration.store",
    "calibration_info": "calibration.store",
    "calibration_params_frame": "calibration.store",
    "item_parameter_history": "calibration.store",
    "item_statuses": "calibration.store",
    "list_calibrations": "calibration.store",
    "load_calibration": "calibration.store",
    "load_content_prior": "calibration.store",
    "previous_calibration_id": "calibration.store",
    "resolve_calibration_id": "calibration.store",
    "save_calibration": "calibration.store",
    "SUMMARY_COLUMNS": "calibration.validation",
    "regression_baseline": "calibration.validation",
    "summarize": "calibration.validation",
    "wilson_interval": "calibration.validation",
    "latest_validation": "calibration.validation_store",
    "judges": "calibration.judges",
    "latest_judge_calibration": "calibration.judge_store",
    "list_judge_calibrations": "calibration.judge_store",
    "load_judge_calibration": "calibration.judge_store",
    "save_judge_calibration": "calibration.judge_store",
    "save_validation": "calibration.validation_store",
}

if TYPE_CHECKING:  # what the lazy names are, for the type checker only
    # Abilities, linking, item fit and drift (explicit re-exports).
    from .ability import AbilityEstimate as AbilityEstimate
    from .ability import AbilityEstimates as AbilityEstimates
    from .ability import Posterior as Posterior
    from .ability import PredictedScore as PredictedScore
    from .ability import Prior as Prior
    from .ability import abilities_for as abilities_for
    from .ability import ability_posterior as ability_posterior
    from .ability import ability_posteriors as ability_posteriors
    from .ability import estimate_abilities as estimate_abilities
    from .ability import estimate_ability as estimate_ability
    from .ability import predict_score as predict_score
    from .drift import DriftReport as DriftReport
    from .drift import adjust_pvalues as adjust_pvalues
    from .drift import mantel_haenszel_drift as mantel_haenszel_drift
    from .fit import flag_items as flag_items
    from .fit import item_fit as item_fit
    from .fit import parameter_drift as parameter_drift
    from .fit import s_x2 as s_x2
    from .linking import LinkingResult as LinkingResult
    from .linking import fixed_from_calibration as fixed_from_calibration
    from .linking import link as link
    from .linking import mean_mean as mean_mean
    from .linking import mean_sigma as mean_sigma
    from .linking import stocking_lord_constants as stocking_lord_constants
    from .linking import transform_params as transform_params
    from .linking import transform_se as transform_se
    from .linking import transform_theta as transform_theta

    # isort: split
    # Responses, the calibration result, the fitter registry and the MML fitting core (explicit re-exports).
    from .data import ResponseSet as ResponseSet
    from .facets import FacetsFitter as FacetsFitter
    from .facets import fit_facets as fit_facets
    from .facets import simulate_graded as simulate_graded
    from .fitters import DEFAULT_FITTER as DEFAULT_FITTER
    from .fitters import FitSettings as FitSettings
    from .fitters import Fitter as Fitter
    from .fitters import anchoring_fitters as anchoring_fitters
    from .fitters import fitter_names as fitter_names
    from .fitters import get_fitter as get_fitter
    from .fitters import irt_choices as irt_choices
    from .fitters import method_help as method_help
    from .fitters import register_fitter as register_fitter
    from .fitters import unregister_fitter as unregister_fitter
    from .irt import EPS as EPS
    from .irt import IRT_CHOICES as IRT_CHOICES
    from .irt import IRT_MODELS as IRT_MODELS
    from .irt import GradedParams as GradedParams
    from .irt import ItemModel as ItemModel
    from .irt import ItemParams as ItemParams
    from .irt import expected_score as expected_score
    from .irt import guessing_from_choices as guessing_from_choices
    from .irt import item_information as item_information
    from .irt import prob as prob
    from .irt import test_information as test_information
    from .judged import JudgedResponses as JudgedResponses
    from .judged import graded_response_set as graded_response_set
    from .judged import judged_responses as judged_responses
    from .mml import CandidateFit as CandidateFit
    from .mml import ModelSelection as ModelSelection
    from .mml import fit_mml as fit_mml
    from .mml import heldout_loglik as heldout_loglik
    from .mml import select_model as select_model
    from .mml import simulate_responses as simulate_responses
    from .mml import split_holdout as split_holdout
    from .online import DEFAULT_ONLINE_METHOD as DEFAULT_ONLINE_METHOD
    from .online import ONLINE_METHODS as ONLINE_METHODS
    from .online import OnlineCalibration as OnlineCalibration
    from .online import calibrate_online as calibrate_online
    from .pyirt_backend import fit_pyirt as fit_pyirt
    from .result import STATUSES as STATUSES
    from .result import CalibrationConvergenceWarning as CalibrationConvergenceWarning
    from .result import CalibrationResult as CalibrationResult
    from .result import four_pl_view as four_pl_view
    from .result import item_status as item_status

    # isort: split
    # Honesty statistics: rank uncertainty, separability, parameter draws, coverage, replay (explicit re-exports).
    from .content_prior import CONTENT_FEATURES as CONTENT_FEATURES
    from .content_prior import ContentPrior as ContentPrior
    from .content_prior import PriorPrediction as PriorPrediction
    from .content_prior import fit_content_prior as fit_content_prior
    from .honesty import Coverage as Coverage
    from .honesty import draw_params as draw_params
    from .honesty import leave_one_model_out as leave_one_model_out
    from .honesty import rank_distribution as rank_distribution
    from .honesty import separability as separability
    from .honesty import simulated_coverage as simulated_coverage
    from .keycheck import KeyCheck as KeyCheck
    from .keycheck import check_keys as check_keys

    # isort: split
    # Prediction (estimates, comparisons, leaderboards), validation metrics and the room's stored tables
    # (calibrations, validation studies) in the bank (explicit re-exports).
    from .predictive import PredictiveModel as PredictiveModel
    from .predictive import abilities_with_parameter_error as abilities_with_parameter_error
    from .predictive import build_predictive as build_predictive
    from .predictive import compare as compare
    from .predictive import compare_many as compare_many
    from .predictive import evidence as evidence
    from .predictive import exact_view as exact_view
    from .predictive import join_predictive as join_predictive
    from .predictive import predict as predict
    from .predictive import predict_evidence as predict_evidence
    from .predictive import with_content_prior as with_content_prior
    from .store import KEPT_AT_PRIOR as KEPT_AT_PRIOR
    from .store import STATUS_REASONS as STATUS_REASONS
    from .store import StoredCalibration as StoredCalibration
    from .store import calibration_info as calibration_info
    from .store import calibration_params_frame as calibration_params_frame
    from .store import item_parameter_history as item_parameter_history
    from .store import item_statuses as item_statuses
    from .store import list_calibrations as list_calibrations
    from .store import load_calibration as load_calibration
    from .store import load_content_prior as load_content_prior
    from .store import previous_calibration_id as previous_calibration_id
    from .store import resolve_calibration_id as resolve_calibration_id
    from .store import save_calibration as save_calibration
    from .validation import SUMMARY_COLUMNS as SUMMARY_COLUMNS
    from .validation import regression_baseline as regression_baseline
    from .validation import summarize as summarize
    from .validation import wilson_interval as wilson_interval
    from .validation_store import latest_validation as latest_validation
    from .validation_store import save_validation as save_validation

    # isort: split
    # Judges: statistics, the panel's rater model, routing (a submodule; pure) (explicit re-export).
    from . import judges as judges
    from .judge_store import latest_judge_calibration as latest_judge_calibration
    from .judge_store import list_judge_calibrations as list_judge_calibrations
    from .judge_store import load_judge_calibration as load_judge_calibration
    from .judge_store import save_judge_calibration as save_judge_calibration


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# The room's tables: every bank opened in a process that imports calibration gets its migrations.
_register_migrations("calibration")
