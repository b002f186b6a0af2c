"""Calibration: IRT models fitted from sparse past runs, abilities with error bars.

The room's face: other rooms, ``adt/`` and ``bench/`` import these names from ``calibration`` and never
reach into its modules (``tests/test_architecture.py``). Importing it registers the room's migrations
(``calibration/migrations/``) with the bank (``itembank.register_migrations``).
"""
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
from .irt import ItemModel as ItemModel
from .irt import ItemParams as ItemParams
from .irt import expected_score as expected_score
from .irt import guessing_from_choices as guessing_from_choices
from .irt import item_information as item_information
from .irt import prob as prob
from .irt import test_information as test_information
from .mml import CandidateFit as CandidateFit
from .mml import ModelSelection as ModelSelection
from .mml import fit_mml as fit_mml
from .mml import heldout_loglik as heldout_loglik
from .mml import select_model as select_model
from .mml import simulate_responses as simulate_responses
from .mml import split_holdout as split_holdout
from .pyirt_backend import fit_pyirt as fit_pyirt
from .result import STATUSES as STATUSES
from .result import CalibrationConvergenceWarning as CalibrationConvergenceWarning
from .result import CalibrationResult as CalibrationResult
from .result import item_status as item_status

# isort: split
# Honesty statistics: rank uncertainty, separability, parameter draws, coverage, replay (explicit re-exports).
from .honesty import Coverage as Coverage
from .honesty import draw_params as draw_params
from .honesty import leave_one_model_out as leave_one_model_out
from .honesty import rank_distribution as rank_distribution
from .honesty import separability as separability
from .honesty import simulated_coverage as simulated_coverage

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
from .predictive import predict as predict
from .predictive import predict_evidence as predict_evidence
from .store import KEPT_AT_PRIOR as KEPT_AT_PRIOR
from .store import STATUS_REASONS as STATUS_REASONS
from .store import StoredCalibration as StoredCalibration
from .store import calibration_info as calibration_info
from .store import calibration_params_frame as calibration_params_frame
from .store import item_parameter_history as item_parameter_history
from .store import item_statuses as item_statuses
from .store import list_calibrations as list_calibrations
from .store import load_calibration as load_calibration
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
# The room's tables: every bank opened in a process that imports calibration gets its migrations.
from itembank import register_migrations as _register_migrations  # noqa: E402

_register_migrations("calibration")
