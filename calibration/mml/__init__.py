"""Marginal maximum likelihood (Bock-Aitkin EM, fixed quadrature) for the 1PL-4PL, on sparse data.

Model (calibration/irt.py): P(correct | theta) = c + (d - c) * logistic(a * (theta - b)).

Where each part lives (a reader can hold one at a time):

- ``problem``   what one fit knows: data operators, nodes, priors, free items; the parameter state
                (``_Params``), what an E-step returns (``_EStep``), packing for SQUAREM.
- ``curves``    item curves and their derivatives on the unconstrained scale, priors, transforms.
- ``ops``       the data operators over the observed triplets (sparse CSR, or dense BLAS).
- ``estep``     posteriors over the nodes, marginal log-likelihood, expected counts; the node window.
- ``mstep``     the M-step per model family (general Fisher scoring, the 2PL fast path, the 1PL's a).
- ``latent``    the latent distribution's update (PX-EM warm-up, anchored normal, empirical histogram).
- ``accel``     SQUAREM with the latent's scale mode handled apart, and the convergence rule.
- ``se``        standard errors by Louis' identity, per-item blocks.
- ``fitting``   ``fit_mml``: arguments, starting values, the run, the ``CalibrationResult``.
- ``select``    ``select_model`` (``--irt auto``): held-out log-likelihood of each candidate.
- ``simulate``  ``simulate_responses`` for seeded recovery studies.

``CalibrationResult``, ``STATUSES``, ``item_status`` and ``CalibrationConvergenceWarning`` live in
``calibration.result`` (every fitter returns a result); they are re-exported here, as are the public
names this module had before it became a package, so ``from calibration.mml import ...`` keeps working.

Speed.  The E-step runs on a node window where the posteriors are log-concave (see ``_Problem.estep``);
the M-step on the span of nodes carrying mass; posterior masses below 1e-250 are flushed to zero
(subnormal numbers make every later product several times slower); the 2PL M-step checks each item's
objective once after its Fisher steps and redoes only the items whose objective fell with a per-step
line search.  Many items (10^5-10^6, a few responses each): every items x nodes array is hundreds of MB,
so the 2PL M-step runs on every row in reused scratch arrays rather than gathering the free rows into
fresh ones, the E-step keeps no log(1 - P), tall-times-thin node sums run as their transpose (faster in
OpenBLAS), and the SEs are computed in blocks of items (``se._SE_CHUNK``).
"""

from ..result import STATUSES as STATUSES
from ..result import CalibrationConvergenceWarning as CalibrationConvergenceWarning
from ..result import CalibrationResult as CalibrationResult
from ..result import item_status as item_status
from .fitting import fit_mml as fit_mml
from .select import CandidateFit as CandidateFit
from .select import ModelSelection as ModelSelection
from .select import heldout_loglik as heldout_loglik
from .select import select_model as select_model
from .select import split_holdout as split_holdout
from .simulate import simulate_responses as simulate_responses

__all__ = [
    "CalibrationConvergenceWarning", "CalibrationResult", "CandidateFit", "ModelSelection", "STATUSES",
    "fit_mml", "heldout_loglik", "item_status", "select_model", "simulate_responses", "split_holdout",
]
