"""Marginal maximum likelihood (Bock-Aitkin EM, fixed quadrature) for the 1PL-4PL, on sparse data.

Model (calibration/irt.py): P(correct | theta) = c + (d - c) * logistic(a * (theta - b)).

E-step.  Only the observed (model, item, score) triplets are touched: with item curves tabulated at the
quadrature nodes (n_items x n_quad), the per-model log-likelihood at every node is two sparse matmuls,
``S1 @ log P + S0 @ log(1 - P)`` where S1 holds the scores s and S0 holds 1 - s (a binary response
sits in only one of them; a fractional score in both).  The per-model posterior over the nodes gives the
expected counts per item and node, ``R = S1' @ post`` and ``F = S0' @ post``; no model x item matrix is
ever built.

M-step.  Each item maximises its expected complete-data log-posterior
``sum_q R_iq log P_iq + F_iq log(1 - P_iq) + log prior`` by Fisher scoring, vectorised across items
(batched k x k solves, k <= 4), on an unconstrained scale: alpha = log a, b, logit c, logit d, with a
per-item step-halving line search so every step raises that item's objective (a generalised EM, hence
monotone).  Priors: a ~ lognormal (log a ~ normal, taken as a density on log a so that its mode is
exp(mean) and a vague prior adds no 1/a pull), b ~ normal (weak; keeps items with little data finite),
c, d ~ beta.  The 1PL shares one a across the free items.

Latent distribution.  Normal N(0, 1) on the nodes by default.  ``latent="empirical"`` re-estimates the
node weights every EM step (Bock-Aitkin / Woods empirical histogram) and re-standardises them to mean 0,
sd 1 to fix the scale (the item parameters are rescaled with them).  With fixed anchor items the anchors
set the scale instead: the normal latent gets an estimated mean and sd, the histogram is not
re-standardised (fixed-parameter calibration with latent updating).

Acceleration.  SQUAREM (Varadhan & Roland 2008, scheme S3) on the vector of free parameters, with the
monotonicity safeguard of the SQUAREM package: an extrapolated point whose log-posterior falls below
the cycle's starting value is discarded in favour of the two plain EM steps already taken, and the
step bound shrinks.  With the normal latent, the first steps are PX-EM (Liu, Rubin & Wu 1998): the
latent mean and sd are estimated as expanded parameters (jointly with the items' priors) and mapped
back to N(0, 1) by rescaling the items, which fixes the overall scale in a few steps instead of
hundreds; once a step gains less than 1e-6 (relative) the plain EM map takes over, because on a fixed
grid the PX map's fixed point is not exactly the MAP.  That leftover offset lies along the latent's
shift and scale (items moving as a -> a s, b -> (b - m) / s), EM's slowest mode on a fixed grid, where
sharp posteriors barely follow a rescaling of the items.  SQUAREM therefore treats that
two-dimensional mode apart: for the 2PL it moves by the mode's own Newton step (Fisher score and Louis
information along the two directions, ``_Problem.scale_newton``), otherwise by its own step length
from the projections of the cycle's differences on the mode's tangents; one backtrack on overshoot.
The remaining directions converge fast and get the usual step length, capped at 4.

Speed.  The E-step runs on a node window where the posteriors are log-concave (see ``_Problem.estep``);
the M-step on the span of nodes carrying mass; posterior masses below 1e-250 are flushed to zero
(subnormal numbers make every later product several times slower); the 2PL M-step checks each item's
objective once after its Fisher steps and redoes only the items whose objective fell with a per-step
line search.

2PL fast path.  s log P + (1 - s) log(1 - P) = s z + log(1 - P) with z = a (x - b) affine in the node,
so the E-step needs the weighted sum scores (sparse matrix-vector products) plus one product for
log(1 - P), and the M-step only needs R @ [1, x] and N = R + F; complete data need no matmul at all.
The 1PL/2PL use the exact log-logistic; the 3PL/4PL clip P to [EPS, 1 - EPS] as irt.py does.

Convergence rule.  It is applied to plain EM steps p0 -> p1 = EM(p0) (each SQUAREM cycle has two:
the first step of the cycle, and the stabilising step that ends it, whose two E-steps are at hand);
the fit has converged when BOTH |logpost(p1) - logpost(p0)| < tol_ll * (1 + |logpost(p0)|) AND the
parameter change is < tol_param, the change being measured where it matters: the largest move of any
free item's response probability at any quadrature node both E-steps covered, max_iq |P_iq(p1) -
P_iq(p0)| (and of the latent weights, or the latent mean and log-sd when they are estimated).
Measuring (a, b) directly would let directions the data cannot see (b of an item with a ~ 0, which
moves freely along a flat ridge) hold a fit up forever, as they do on the leaderboard data.
``n_iter`` counts EM steps (E-step + M-step evaluations, extrapolation steps included).  A fit that
stops at ``max_iter`` first says so with a ``CalibrationConvergenceWarning`` and ``converged=False``.

Items nobody answered, or that everyone answered the same way (every score 1, or every score 0), carry
no information about their own parameters: they are reported in ``item_status``, left out of the fit
(their responses do not inform abilities either, since their parameters are unknown), and kept at their
prior values (a = exp(prior mean of log a), b = prior mean of b, c and d at their prior modes or the
given guessing); their standard errors are NaN.  Anchor items given in ``fixed`` are never updated, and
their responses always inform the abilities.

Standard errors.  Per-item blocks of the observed information of the marginal log-posterior at the
estimate, by Louis' (1982) identity: complete-data information minus the posterior variance of the
complete-data score, per model, summed.  The first two parts are exact closed forms in the expected
counts; the last (the sum over models of the outer product of the posterior-mean score) is gathered over
the observed triplets in chunks.  Cross-item covariances (through the shared abilities) are ignored, as
in the usual item-wise observed information; the 1PL's shared a gets its own 1 x 1 block.  The delta
method maps the SEs to a, b, c, d.  Anchor items and items kept at their priors have NaN SEs.

Abilities.  Per-model EAP theta and posterior SD from the final posterior over the nodes (models with
no usable responses get the latent mean and SD).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from scipy.special import expit, logit, logsumexp

from adtbase.errors import InputError

from .data import ResponseSet
from .irt import EPS, IRT_MODELS, ItemParams, guessing_from_choices, prob

STATUSES = ("calibrated", "unanswered", "all_correct", "all_wrong")
_PCOLS = ("a", "b", "c", "d")
# Hard bounds on the unconstrained scale: a in [0.01, 50], |b| <= 15, logits of c and d within +-12.
_LO = {"a": math.log(0.01), "b": -15.0, "c": -12.0, "d": -12.0}
_HI = {"a": math.log(50.0), "b": 15.0, "c": 12.0, "d": 12.0}
# Largest Fisher-scoring step per coordinate (unconstrained scale); longer steps are scaled down.
_MAX_STEP = 1.0
_CHUNK = 1 << 17   # observations per chunk when gathering per-observation quantities
# PX-EM warm-up (latent mean/sd as expanded parameters) until a step gains less than this, relatively.
_PX_OFF = 1e-6
_STEP_MAX0 = 1.0
# SQUAREM step length for the fast directions is capped: where posteriors are much sharper than the
# grid (thousands of items per model) longer extrapolations overshoot, get rejected and cost two
# evaluations each (2,000 x 50,000 at 95% missing: 122 EM steps uncapped, 80 capped at 4).
_ALPHA_CAP = 4.0


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
        out = pd.DataFrame({"item_id": list(p.item_ids), "a": p.a, "b": p.b, "c": p.c, "d": p.d})
        for k in _PCOLS:
            out[f"se_{k}"] = self.se.get(k, np.full(len(p), np.nan))
        out["status"] = self.item_status
        out["fixed"] = self.fixed if self.fixed.size else False
        return out

    def ability_table(self) -> pd.DataFrame:
        return pd.DataFrame({"model": list(self.model_ids), "theta": self.theta, "theta_se": self.theta_se})


# ------------------------------------------------------------------------------------------------
# Item curves and their derivatives on the unconstrained scale (alpha = log a, b, logit c, logit d)
# ------------------------------------------------------------------------------------------------
def _curves(a: NDArray, b: NDArray, c: NDArray, d: NDArray, x: NDArray, cols: Sequence[str],
            second: bool = False) -> tuple[NDArray, dict[str, NDArray], dict[tuple[str, str], NDArray]]:
    """P (items x nodes), first derivatives dP/du_k and (optionally) second derivatives."""
    z = a[:, None] * (x[None, :] - b[:, None])
    L = expit(z)
    Lp = L * (1.0 - L)
    span = (d - c)[:, None]
    P = np.clip(c[:, None] + span * L, EPS, 1.0 - EPS)
    dP: dict[str, NDArray] = {}
    if "a" in cols:
        dP["a"] = span * Lp * z
    if "b" in cols:
        dP["b"] = -span * Lp * a[:, None]
    cp = (c * (1.0 - c))[:, None]
    dp = (d * (1.0 - d))[:, None]
    if "c" in cols:
        dP["c"] = cp * (1.0 - L)
    if "d" in cols:
        dP["d"] = dp * L
    d2P: dict[tuple[str, str], NDArray] = {}
    if second:
        Lpp = Lp * (1.0 - 2.0 * L)
        aa = a[:, None]
        table = {
            ("a", "a"): lambda: span * (Lpp * z * z + Lp * z),
            ("a", "b"): lambda: -span * aa * (Lpp * z + Lp),
            ("b", "b"): lambda: span * Lpp * aa * aa,
            ("a", "c"): lambda: -cp * Lp * z,
            ("b", "c"): lambda: cp * Lp * aa,
            ("c", "c"): lambda: cp * (1.0 - 2.0 * c)[:, None] * (1.0 - L),
            ("a", "d"): lambda: dp * Lp * z,
            ("b", "d"): lambda: -dp * Lp * aa,
            ("d", "d"): lambda: dp * (1.0 - 2.0 * d)[:, None] * L,
            ("c", "d"): lambda: np.zeros_like(L),
        }
        for i, k in enumerate(cols):
            for l_ in cols[i:]:
                key = (k, l_) if (k, l_) in table else (l_, k)
                d2P[(k, l_)] = table[key]()
    return P, dP, d2P


@dataclass(frozen=True)
class _Priors:
    a: tuple[float, float]   # log a ~ normal(mean, sd), a density on log a (mode = median = exp(mean))
    b: tuple[float, float]   # normal: mean and sd
    c: tuple[float, float]   # beta(alpha, beta)
    d: tuple[float, float]   # beta(alpha, beta)

    def start(self, col: str) -> float:
        """Prior value used for items without information: median of a, mean of b, modes of c, d."""
        if col == "a":
            return math.exp(self.a[0])
        if col == "b":
            return self.b[0]
        al, be = getattr(self, col)
        return (al - 1.0) / (al + be - 2.0) if al > 1 and be > 1 else al / (al + be)

    def logp(self, col: str, nat: NDArray) -> NDArray:
        """Log prior density of the natural parameter (up to a constant)."""
        if col == "a":
            return -((np.log(nat) - self.a[0]) ** 2) / (2 * self.a[1] ** 2)
        if col == "b":
            return -((nat - self.b[0]) ** 2) / (2 * self.b[1] ** 2)
        al, be = getattr(self, col)
        return (al - 1.0) * np.log(nat) + (be - 1.0) * np.log1p(-nat)

    def grad_nhess(self, col: str, nat: NDArray) -> tuple[NDArray, NDArray]:
        """Gradient and negative second derivative of logp w.r.t. the unconstrained parameter."""
        if col == "a":
            return -(np.log(nat) - self.a[0]) / self.a[1] ** 2, np.full_like(nat, 1.0 / self.a[1] ** 2)
        if col == "b":
            return -(nat - self.b[0]) / self.b[1] ** 2, np.full_like(nat, 1.0 / self.b[1] ** 2)
        al, be = getattr(self, col)
        return (al - 1.0) * (1.0 - nat) - (be - 1.0) * nat, (al + be - 2.0) * nat * (1.0 - nat)


def _to_u(col: str, nat: NDArray) -> NDArray:
    if col == "a":
        return np.log(nat)
    if col == "b":
        return nat
    return logit(nat)


def _to_nat(col: str, u: NDArray) -> NDArray:
    u = np.clip(u, _LO[col], _HI[col])
    if col == "a":
        return np.exp(u)
    if col == "b":
        return u
    return expit(u)


_TRIM = 1e-16    # M-step drops nodes where every free item's expected mass is below this share of its count
_TINY = 1e-250   # posterior masses below this are flushed to zero (see _Problem.estep)
_ZMAX = 700.0   # keeps exp(-z) finite; beyond it log P is 0 or -|z| to double precision anyway


def _log_logistic(a: NDArray, b: NDArray, x: NDArray) -> tuple[NDArray, NDArray]:
    """log P and z = a (x - b) for the 1PL/2PL, exact (no EPS clip: log(1 - P) = log P - z holds)."""
    z = x[None, :] - b[:, None]
    z *= a[:, None]
    np.clip(z, -_ZMAX, _ZMAX, out=z)
    logP = np.exp(-z)                 # |z| <= _ZMAX keeps exp finite, so log1p(exp(-z)) is safe
    np.log1p(logP, out=logP)
    np.negative(logP, out=logP)
    return logP, z


def _sum_n(N: NDArray, logP: NDArray) -> NDArray:
    """Per-item sum over nodes of N * log P (N is one shared row or one row per item)."""
    return logP @ N[0] if N.shape[0] == 1 else np.einsum("iq,iq->i", N, logP)


def _item_objective(P: NDArray, R: NDArray, F: NDArray) -> NDArray:
    return (R * np.log(P) + F * np.log1p(-P)).sum(axis=1)


# ------------------------------------------------------------------------------------------------
# The fitting problem: sparse operators built once, EM map, SEs
# ------------------------------------------------------------------------------------------------
@dataclass
class _Params:
    a: NDArray
    b: NDArray
    c: NDArray
    d: NDArray
    logw: NDArray                      # latent log-weights on the nodes (normalised)
    mu: float = 0.0                    # normal latent with anchors: estimated mean and sd
    sd: float = 1.0

    def copy(self) -> _Params:
        return _Params(self.a.copy(), self.b.copy(), self.c.copy(), self.d.copy(), self.logw.copy(),
                       self.mu, self.sd)


@dataclass
class _EStep:
    post: NDArray       # models x nodes posterior
    R: NDArray | None   # items x nodes expected "correct" mass (sum of s * post); None on the
    F: NDArray | None   # sufficient-statistic path, which keeps only Rx and N (see _Problem.estep)
    loglik: float       # marginal log-likelihood
    logpost: float      # + log prior of the free parameters
    P: NDArray          # items x nodes response curves at the E-step's parameters
    logP: NDArray
    log1mP: NDArray
    Rx: NDArray | None = None    # R @ [1, x] (items x 2)
    N: NDArray | None = None     # R + F (1 x nodes when the same for every item)
    nodes: slice = field(default_factory=lambda: slice(None))   # node window of the arrays above


class _SparseOps:
    """Data operators over the observed triplets only (CSR matmuls; the default)."""

    kind = "sparse"

    def __init__(self, m: NDArray, i: NDArray, s: NDArray, n_models: int, n_items: int) -> None:
        shape = (n_models, n_items)
        pos, neg = s > 0, s < 1
        self.m, self.i, self.s = m, i, s
        self.fractional = bool(np.any(pos & neg))
        # Item-major (CSR over items) only: ``S1T.T @ logP`` runs as a CSC product that reads each
        # item's curve once and scatters into the small models x nodes block, which stays in cache;
        # several times faster than the model-major product at 10^4-10^5 items.
        self.S1T = sparse.csr_array((s[pos], (i[pos], m[pos])), shape=shape[::-1])
        self.S0T = sparse.csr_array((1.0 - s[neg], (i[neg], m[neg])), shape=shape[::-1])
        self.shape = shape
        self._S: sparse.csr_array | None = None      # built on first use by the 2PL fast path
        self._IT: sparse.csr_array | None = None

    def node_loglik(self, logP: NDArray, log1mP: NDArray) -> NDArray:
        return self.S1T.T @ logP + self.S0T.T @ log1mP

    def model_totals(self) -> tuple[NDArray, NDArray]:
        """Responses and total score per model."""
        n_m = self.shape[0]
        return np.bincount(self.m, minlength=n_m), np.bincount(self.m, weights=self.s, minlength=n_m)

    def item_moments(self, t: NDArray) -> tuple[NDArray, ...]:
        """Per item: count, sums of s and s^2, of t and t^2 (t given per model), and of s t."""
        n_i = self.shape[1]
        tm = t[self.m]
        s2 = self.s * self.s if self.fractional else self.s
        return tuple(np.bincount(self.i, weights=w, minlength=n_i) if w is not None else
                     np.bincount(self.i, minlength=n_i)
                     for w in (None, self.s, s2, tm, tm * tm, self.s * tm))

    def counts(self, post: NDArray) -> tuple[NDArray, NDArray]:
        return self.S1T @ post, self.S0T @ post

    def sq_counts(self, post: NDArray) -> NDArray:
        pos = self.s > 0
        S2T = sparse.csr_array((self.s[pos] ** 2, (self.i[pos], self.m[pos])), shape=self.shape[::-1])
        return S2T @ post

    def suff_loglik(self, a: NDArray, ab: NDArray, x: NDArray, log1mP: NDArray) -> NDArray:
        """2PL node log-likelihoods from the weighted sum scores: s z + log(1 - P), z = a x - a b."""
        if self._S is None or self._IT is None:
            pos = self.s > 0
            self._S = sparse.csr_array((self.s[pos], (self.m[pos], self.i[pos])), shape=self.shape)
            self._IT = sparse.csr_array((np.ones(self.s.size), (self.i, self.m)), shape=self.shape[::-1])
        S, IT = self._S, self._IT
        return np.outer(S @ a, x) - (S @ ab)[:, None] + IT.T @ log1mP

    def obs_dots(self, post: NDArray, A: NDArray, pos_of: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        """post_m . A_i[:, j] for every observation (m, i) on a free item: (m, item position, s, dots)."""
        sel = pos_of[self.i] >= 0
        m, ii, s = self.m[sel], pos_of[self.i[sel]], self.s[sel]
        dots = np.empty((m.size, A.shape[2]))
        for lo in range(0, m.size, _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            dots[sl] = np.einsum("nq,nqj->nj", post[m[sl]], A[ii[sl]])
        return m, ii, s, dots

    def score_outer_2pl(self, post: NDArray, P: NDArray, x: NDArray, a: NDArray, b: NDArray,
                        pos_of: NDArray) -> NDArray:
        """Louis' last term for the 2PL on (log a, b), per free item (see ``_Problem._score_outer_2pl``).

        The complete-data scores are affine in the node, so two dot products per observation (post .
        P_i and post . x P_i) and the model's EAP give their posterior means exactly.
        """
        m, ii, s, dots = self.obs_dots(post, np.stack([P, P * x], axis=2), pos_of)
        eap = post @ x
        aa, bb = a[ii], b[ii]
        e = np.empty((m.size, 2))
        e[:, 0] = aa * (s * (eap[m] - bb) - (dots[:, 1] - bb * dots[:, 0]))
        e[:, 1] = -aa * (s - dots[:, 0])
        out = np.zeros((a.size, 2, 2))
        _accumulate_outer(out, ii, e, np.ones(m.size))
        return out

    def suff_counts(self, post: NDArray, x01: NDArray) -> tuple[NDArray, NDArray]:
        """R @ [1, x] and N = R + F without forming R and F."""
        assert self._S is not None and self._IT is not None
        return self._S.T @ (post @ x01), self._IT @ post

    def theta_score(self, a: NDArray, aP: NDArray) -> NDArray:
        """Per model and node, d/dtheta of the 2PL log-likelihood: sum over its items of a_i (s - P_i)."""
        assert self._S is not None and self._IT is not None
        return (self._S @ a)[:, None] - self._IT.T @ aP

    def model_sums(self, A: NDArray, B: NDArray) -> NDArray:
        """sum over each model's items of (s * A_i - B_i) at every node."""
        ind = sparse.csr_array((np.ones(self.s.size), (self.m, self.i)), shape=self.shape)
        sraw = sparse.csr_array((self.s, (self.m, self.i)), shape=self.shape)
        return sraw @ A - ind @ B

    def score_outer(self, post: NDArray, G: NDArray, pos_of: NDArray, k: int, n_free: int) -> NDArray:
        """sum over observations (m, i) of e e' with e = s * (post_m . G_i[:, :k]) - post_m . G_i[:, k:]."""
        sel = pos_of[self.i] >= 0
        m, ii, s = self.m[sel], pos_of[self.i[sel]], self.s[sel]
        out = np.zeros((n_free, k, k))
        for lo in range(0, m.size, _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            dots = np.einsum("nq,nqj->nj", post[m[sl]], G[ii[sl]])
            e = s[sl, None] * dots[:, :k] - dots[:, k:]
            _accumulate_outer(out, ii[sl], e, np.ones(e.shape[0]))
        return out


class _DenseOps:
    """The same operators as BLAS matmuls, for small, nearly complete data (see ``_make_ops``).

    Y holds the scores (0 where unobserved) and M the observed mask; for complete data M is all ones and
    its products reduce to column sums.  s log P + (1 - s) log(1 - P) = s logit P + log(1 - P).
    """

    kind = "dense"

    def __init__(self, m: NDArray, i: NDArray, s: NDArray, n_models: int, n_items: int) -> None:
        self.Y = np.zeros((n_models, n_items))
        self.Y[m, i] = s
        self.fractional = bool(np.any((s > 0) & (s < 1)))
        self.complete = s.size == n_models * n_items
        self.M: NDArray | None = None
        # the thin products (weighted sum scores) read the scores as CSR when most cells are empty
        self.Ys: NDArray | sparse.csr_array = self.Y
        if not self.complete:
            self.M = np.zeros((n_models, n_items))
            self.M[m, i] = 1.0
            if s.size < 0.5 * n_models * n_items:
                pos = s != 0
                self.Ys = sparse.csr_array((s[pos], (m[pos], i[pos])), shape=self.Y.shape)

    def model_totals(self) -> tuple[NDArray, NDArray]:
        cnt = np.full(self.Y.shape[0], self.Y.shape[1], dtype=float) if self.M is None else self.M.sum(axis=1)
        return cnt, self.Y.sum(axis=1)

    def item_moments(self, t: NDArray) -> tuple[NDArray, ...]:
        s1, st = (self.Y.T @ np.stack([np.ones_like(t), t], axis=1)).T
        powers = np.stack([np.ones_like(t), t, t * t], axis=1)
        if self.M is None:              # every model answered every item: the same sums for all
            cnt, t1, t2 = np.broadcast_to(powers.sum(axis=0), (self.Y.shape[1], 3)).T
        else:
            cnt, t1, t2 = (self.M.T @ powers).T
        s2 = (self.Y * self.Y).sum(axis=0) if self.fractional else s1
        return cnt, s1, s2, t1, t2, st

    def node_loglik(self, logP: NDArray, log1mP: NDArray) -> NDArray:
        L = self.Y @ (logP - log1mP)
        return L + (log1mP.sum(axis=0) if self.M is None else self.M @ log1mP)

    def counts(self, post: NDArray) -> tuple[NDArray, NDArray]:
        pt = np.ascontiguousarray(post.T)        # (post' Y)' is the faster GEMM layout for Y' post
        R = np.ascontiguousarray((pt @ self.Y).T)
        N = post.sum(axis=0)[None, :] if self.M is None else (pt @ self.M).T
        return R, np.maximum(N - R, 0.0)

    def sq_counts(self, post: NDArray) -> NDArray:
        return (self.Y * self.Y).T @ post

    def model_sums(self, A: NDArray, B: NDArray) -> NDArray:
        return self.Y @ A - (B.sum(axis=0) if self.M is None else self.M @ B)

    def obs_dots(self, post: NDArray, A: NDArray, pos_of: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
        free = np.flatnonzero(pos_of >= 0)
        mask = np.ones(self.Y.shape, dtype=bool) if self.M is None else self.M > 0
        mask[:, np.flatnonzero(pos_of < 0)] = False
        m, i = np.nonzero(mask)
        dots = np.empty((m.size, A.shape[2]))
        for j in range(A.shape[2]):
            full = np.zeros(self.Y.shape)
            full[:, free] = post @ A[:, :, j].T          # models x free items, BLAS
            dots[:, j] = full[m, i]
        return m, pos_of[i], self.Y[m, i], dots

    def score_outer_2pl(self, post: NDArray, P: NDArray, x: NDArray, a: NDArray, b: NDArray,
                        pos_of: NDArray) -> NDArray:
        """``_SparseOps.score_outer_2pl`` as model x item matrices: two GEMMs give the dots.

        Row blocks of models keep the model x item temporaries in cache.
        """
        free = np.flatnonzero(pos_of >= 0)
        n_i = self.Y.shape[1]
        if free.size < n_i:        # pad to every item (a = 0 zeroes the others) rather than copy Y and M
            P = _padded(P, free, n_i)
            a, b = _padded(a, free, n_i), _padded(b, free, n_i)
        Y, W = self.Y, self.M
        Pt, xPt = np.ascontiguousarray(P.T), np.ascontiguousarray((P * x).T)
        eap = post @ x
        out = np.zeros((n_i, 2, 2))
        step = max(1, 131_072 // n_i)
        for lo in range(0, post.shape[0], step):
            rows = slice(lo, lo + step)
            D0 = post[rows] @ Pt                          # post_m . P_i
            D1 = post[rows] @ xPt                         # post_m . x P_i
            e0 = eap[rows, None] - b                      # e0 = a (Y (eap - b) - (D1 - b D0))
            e0 *= Y[rows]
            e0 -= D1
            e0 += np.multiply(D0, b, out=D1)
            e0 *= a
            e1 = np.subtract(D0, Y[rows], out=D0)         # e1 = a (D0 - Y)
            e1 *= a
            if W is not None:
                e0 *= W[rows]                             # unobserved cells score nothing
                e1 *= W[rows]
            out[:, 0, 0] += np.einsum("mi,mi->i", e0, e0)
            out[:, 1, 1] += np.einsum("mi,mi->i", e1, e1)
            out[:, 0, 1] += np.einsum("mi,mi->i", e0, e1)
        out[:, 1, 0] = out[:, 0, 1]
        return out[free]

    def suff_loglik(self, a: NDArray, ab: NDArray, x: NDArray, log1mP: NDArray) -> NDArray:
        rest = log1mP.sum(axis=0) if self.M is None else self.M @ log1mP
        sa, sab = (self.Ys @ np.stack([a, ab], axis=1)).T     # one pass over Y for both sums
        return np.outer(sa, x) - sab[:, None] + rest

    def suff_counts(self, post: NDArray, x01: NDArray) -> tuple[NDArray, NDArray]:
        N = post.sum(axis=0)[None, :] if self.M is None else (post.T @ self.M).T
        return self.Ys.T @ (post @ x01), N

    def theta_score(self, a: NDArray, aP: NDArray) -> NDArray:
        rest = aP.sum(axis=0)[None, :] if self.M is None else self.M @ aP
        return (self.Ys @ a)[:, None] - rest

    def score_outer(self, post: NDArray, G: NDArray, pos_of: NDArray, k: int, n_free: int) -> NDArray:
        free = np.flatnonzero(pos_of >= 0)
        out = np.zeros((n_free, k, k))
        n_m, n_q = post.shape
        step = max(1, int(2_000_000 // max(n_m * 2 * k, 1)))
        for lo in range(0, free.size, step):
            items = free[lo:lo + step]
            Gc = G[pos_of[items]]                                        # c x Q x 2k
            D = (post @ Gc.transpose(1, 0, 2).reshape(n_q, -1)).reshape(n_m, items.size, 2 * k)
            e = self.Y[:, items, None] * D[..., :k] - D[..., k:]
            w = np.ones((n_m, items.size)) if self.M is None else self.M[:, items]
            for a in range(k):
                for b in range(a, k):
                    acc = np.einsum("mi,mi->i", w * e[..., a], e[..., b])
                    out[pos_of[items], a, b] += acc
                    if a != b:
                        out[pos_of[items], b, a] += acc
        return out


_WIN_LOG = 25.0   # E-step window: nodes within e^-25 of some model's posterior mode (see _Problem.estep)
_WIN_PAD = 2


def _window_holds(L: NDArray, mx: NDArray, lo: int, hi: int, n_q: int, rows: NDArray) -> bool:
    """Every model's log-posterior at each inner edge of the window is far below its mode and falling."""
    Lr, top = L[rows], mx[rows, 0]
    for edge, inner, inside in ((0, 1, lo > 0), (-1, -2, hi < n_q)):
        if inside and (Lr.shape[1] < 2 or np.any(Lr[:, edge] - top > -_WIN_LOG)
                       or np.any(Lr[:, edge] > Lr[:, inner] - math.log(2.0))):
            return False
    return True


def _support(L: NDArray, mx: NDArray, lo: int, n_q: int, rows: NDArray) -> tuple[int, int]:
    """Node window for the next E-step: where some model is within e^-25 of its mode, padded."""
    near = np.flatnonzero(np.any(L[rows] - mx[rows] > -_WIN_LOG, axis=0))
    if near.size == 0:
        return 0, n_q
    return max(0, lo + int(near[0]) - _WIN_PAD), min(n_q, lo + int(near[-1]) + 1 + _WIN_PAD)


def _info_2pl(a: NDArray, b: NDArray, w: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """2PL complete-data information on (log a, b) per item, from w = sums over nodes of
    N P (1 - P) times 1, x and x^2 (z = a (x - b) is affine in x)."""
    w0, w1, w2 = w.T
    return a * a * (w2 - 2 * b * w1 + b * b * w0), -a * a * (w1 - b * w0), a * a * w0


def _padded(v: NDArray, rows: NDArray, n: int) -> NDArray:
    """v placed at ``rows`` of a zero array with n rows."""
    out = np.zeros((n,) + v.shape[1:])
    out[rows] = v
    return out


def _accumulate_outer(out: NDArray, idx: NDArray, e: NDArray, w: NDArray) -> None:
    k = e.shape[1]
    for a in range(k):
        for b in range(a, k):
            acc = np.bincount(idx, weights=w * e[:, a] * e[:, b], minlength=out.shape[0])
            out[:, a, b] += acc
            if a != b:
                out[:, b, a] += acc


# Dense BLAS kernels only where the observed share is high and the grid small (<= 10M cells, 80 MB).
_DENSE_MIN_DENSITY = 0.15
_DENSE_MAX_CELLS = 10_000_000


def _make_ops(m: NDArray, i: NDArray, s: NDArray, n_models: int, n_items: int,
              backend: str) -> _SparseOps | _DenseOps:
    cells = n_models * n_items
    dense_ok = cells <= _DENSE_MAX_CELLS and s.size >= _DENSE_MIN_DENSITY * cells
    if backend == "dense" or (backend == "auto" and dense_ok):
        return _DenseOps(m, i, s, n_models, n_items)
    return _SparseOps(m, i, s, n_models, n_items)


class _Problem:
    def __init__(self, rs: ResponseSet, model: str, x: NDArray, latent: str, priors: _Priors,
                 free_items: NDArray, used_items: NDArray, cols: tuple[str, ...], shared_a: bool,
                 anchored: bool, n_newton: int, backend: str = "auto") -> None:
        self.model, self.x, self.latent, self.priors = model, x, latent, priors
        self.cols, self.shared_a, self.anchored, self.n_newton = cols, shared_a, anchored, n_newton
        self.px = latent == "normal" and not anchored     # PX-EM warm-up (see _run_em)
        self.plain = model in ("1pl", "2pl")   # c = 0, d = 1 everywhere: log-logistic fast paths
        self.suff = False                       # set by fit_mml: complete dense 2PL data
        self._x01 = np.stack([np.ones_like(x), x], axis=1)
        self._x012 = np.stack([np.ones_like(x), x, x * x], axis=1)
        self.n_items, self.n_models = rs.n_items, rs.n_models
        self.free = np.flatnonzero(free_items)
        keep = used_items[rs.item_idx]
        m, i, s = rs.model_idx[keep], rs.item_idx[keep], rs.score[keep]
        self.ops = _make_ops(m, i, s, rs.n_models, rs.n_items, backend)
        self.has_obs = np.bincount(m, minlength=rs.n_models) > 0
        self._window = (0, x.size)
        self.n_used_models = int(self.has_obs.sum())
        self.n_obs = int(s.size)

    @property
    def windowed(self) -> bool:
        """Log-concave posteriors (c = 0, d = 1, normal latent) allow the E-step's node window."""
        return self.plain and self.latent == "normal" and bool(self.has_obs.any())

    # -- vector packing for SQUAREM --------------------------------------------------------------
    def pack(self, p: _Params) -> NDArray:
        parts = []
        item_cols = [c for c in self.cols if not (c == "a" and self.shared_a)]
        for col in item_cols:
            parts.append(_to_u(col, getattr(p, col)[self.free]))
        if self.shared_a and self.free.size:
            parts.append(np.log(p.a[self.free[:1]]))
        if self.latent == "empirical":
            parts.append(p.logw - p.logw.mean())     # log scale: extrapolation keeps weights positive
        elif self.anchored:
            parts.append(np.array([p.mu, math.log(p.sd)]))
        return np.concatenate(parts) if parts else np.zeros(0)

    def unpack(self, v: NDArray, template: _Params) -> _Params:
        p = template.copy()
        k = 0
        n = self.free.size
        item_cols = [c for c in self.cols if not (c == "a" and self.shared_a)]
        for col in item_cols:
            getattr(p, col)[self.free] = _to_nat(col, v[k:k + n])
            k += n
        if self.shared_a and n:
            p.a[self.free] = _to_nat("a", v[k:k + 1])[0]
            k += 1
        if self.latent == "empirical":
            lw = np.maximum(v[k:k + self.x.size], -700.0)
            p.logw = lw - logsumexp(lw)
            k += self.x.size
        elif self.anchored:
            p.mu, p.sd = float(v[k]), float(math.exp(np.clip(v[k + 1], -5, 5)))
            p.logw = _normal_logw(self.x, p.mu, p.sd)
        return p

    def param_change(self, e0: _EStep, e1: _EStep, v0: NDArray, v1: NDArray) -> float:
        """Largest move of any free item's response curve at any node, or of the latent parameters.

        Measured on the curves P(theta_q) (taken from the two E-steps) rather than on (a, b, c, d),
        so that directions the data cannot see (b of an item with a ~ 0, a parameter pinned at a
        bound) do not hold up convergence, while a steep item's b counts in proportion to its slope.
        """
        f = self.free
        # on the nodes both E-steps covered (beyond a window no model has mass worth a tolerance)
        (lo0, hi0, _), (lo1, hi1, _) = (e.nodes.indices(self.x.size) for e in (e0, e1))
        lo, hi = max(lo0, lo1), min(hi0, hi1)
        items = (float(np.max(np.abs(e1.P[f, lo - lo1:hi - lo1] - e0.P[f, lo - lo0:hi - lo0])))
                 if f.size and hi > lo else 0.0)
        n_lat = self.x.size if self.latent == "empirical" else (2 if self.anchored else 0)
        if self.latent == "empirical":
            w0, w1 = (np.exp(v[-n_lat:] - logsumexp(v[-n_lat:])) for v in (v0, v1))
            lat = float(np.max(np.abs(w1 - w0)))
        else:
            lat = float(np.max(np.abs(v1[-n_lat:] - v0[-n_lat:]))) if n_lat else 0.0
        return max(items, lat)

    def scale_modes(self, v: NDArray) -> NDArray | None:
        """Tangents (in packed coordinates) of the latent shift and scale: a -> a s, b -> (b - m) / s."""
        if self.latent != "normal" or self.anchored or self.shared_a or "b" not in self.cols or not self.free.size:
            return None
        n = self.free.size
        T = np.zeros((v.size, 2))
        ia, ib = self.cols.index("a"), self.cols.index("b")
        T[ib * n:(ib + 1) * n, 0] = -1.0
        T[ia * n:(ia + 1) * n, 1] = 1.0
        T[ib * n:(ib + 1) * n, 1] = -v[ib * n:(ib + 1) * n]
        return T

    def scale_newton(self, p: _Params, e: _EStep) -> NDArray | None:
        """Newton step (dm, ds) of the marginal log-posterior along the latent shift and log-scale.

        Moving the latent as theta -> (theta - m) e^-s moves every free item along the tangents of
        ``scale_modes``.  Along them the observed score is the posterior mean of the complete-data
        score (Fisher), S_m(q) (1, x_q) per model and node with S_m the theta-score
        sum_i a_i (s_mi - P_iq); the observed information is the complete-data information along them
        minus the posterior covariance of that score (Louis).  2PL on the sufficient-statistic path.
        """
        if not self.suff or e.N is None:       # the caller checked the mode exists (``scale_modes``)
            return None
        f = self.free
        x = self.x[e.nodes]
        a, b = p.a[f], p.b[f]
        S1 = self.ops.theta_score(p.a, p.a[:, None] * e.P)[self.has_obs]
        post = e.post[self.has_obs]
        S2 = S1 * x
        m1, m2 = (post * S1).sum(axis=1), (post * S2).sum(axis=1)
        c11 = float(((post * S1 * S1).sum(axis=1) - m1 * m1).sum())
        c12 = float(((post * S1 * S2).sum(axis=1) - m1 * m2).sum())
        c22 = float(((post * S2 * S2).sum(axis=1) - m2 * m2).sum())
        pga, pna = self.priors.grad_nhess("a", a)
        pgb, pnb = self.priors.grad_nhess("b", b)
        G = np.array([m1.sum() - pgb.sum(), m2.sum() + (pga - b * pgb).sum()])
        N = e.N if e.N.shape[0] == 1 else e.N[f]
        W = N * e.P[f] * (1.0 - e.P[f])
        iaa, iab, ibb = _info_2pl(a, b, W @ self._x012[e.nodes])
        iaa, ibb = iaa + pna, ibb + pnb
        J = np.array([[ibb.sum() - c11, (b * ibb - iab).sum() - c12],
                      [(b * ibb - iab).sum() - c12, (iaa - 2 * b * iab + b * b * ibb).sum() - c22]])
        if not (np.all(np.isfinite(J)) and J[0, 0] > 0 and np.linalg.det(J) > 0):
            return None
        d = np.linalg.solve(J, G)
        return d * min(1.0, 0.5 / max(float(np.abs(d).max()), 1e-300))

    # -- E-step ------------------------------------------------------------------------------------
    def log_prior(self, p: _Params) -> float:
        total = 0.0
        f = self.free
        for col in self.cols:
            if col == "a" and self.shared_a:
                total += float(self.priors.logp("a", p.a[f[:1]]).sum()) if f.size else 0.0
            else:
                total += float(self.priors.logp(col, getattr(p, col)[f]).sum())
        return total

    def estep(self, p: _Params, full: bool = False) -> _EStep:
        """Posteriors, log-likelihood and expected counts at ``p``.

        Node window: where every model's log-posterior is concave in theta (c = 0, d = 1, normal
        latent), the E-step runs on the nodes where some model's posterior is within e^-25 of its
        mode, plus two, as found by the previous E-step.  The window is kept only if, at each inner
        edge, every model's log-posterior is more than 25 below its maximum and falls by ln 2 or more
        per node: by concavity it keeps falling at least that fast, so each model's mass beyond is
        below e^-25 of its mode (log-likelihood error under 1e-10 per model, far below the
        tolerances).  Otherwise (a big step moved the posteriors) the full grid is used.
        """
        n_q = self.x.size
        lo, hi = (0, n_q) if full or not self.windowed else self._window
        while True:
            x = self.x[lo:hi]
            if self.plain:
                logP, z = _log_logistic(p.a, p.b, x)
                log1mP = logP - z
                P = np.exp(logP)
            else:
                P = np.clip(prob(x, p.a[:, None], p.b[:, None], p.c[:, None], p.d[:, None]), EPS, 1.0 - EPS)
                logP, log1mP = np.log(P), np.log1p(-P)
            if self.suff:
                # 2PL: s log P + (1 - s) log(1 - P) = s z + log(1 - P) with z = a (x - b) affine in x, so
                # the weighted sum scores carry the s-part: one sparse matmul (or none, complete data)
                # instead of two
                L = self.ops.suff_loglik(p.a, p.a * p.b, x, log1mP)
            else:
                L = self.ops.node_loglik(logP, log1mP)
            L += p.logw[lo:hi]
            mx = L.max(axis=1, keepdims=True)
            if (lo, hi) == (0, n_q) or _window_holds(L, mx, lo, hi, n_q, self.has_obs):
                break
            lo, hi = 0, n_q
        if self.windowed:
            self._window = _support(L, mx, lo, n_q, self.has_obs)
        post = np.exp(L - mx)
        # Subnormal masses (far tails of sharp posteriors) change nothing but slow every later
        # product (BLAS and sparse kernels take a microcode path on them) by 3-5x: flush to zero.
        post[post < _TINY] = 0.0
        tot = post.sum(axis=1, keepdims=True)
        post /= tot
        lse = (mx + np.log(tot))[:, 0]
        ll = float(lse[self.has_obs].sum())
        nodes = slice(lo, hi)
        if self.suff:
            Rx, N = self.ops.suff_counts(post, self._x01[nodes])
            return _EStep(post, None, None, ll, ll + self.log_prior(p), P, logP, log1mP, Rx, N, nodes)
        R, F = self.ops.counts(post)
        return _EStep(post, R, F, ll, ll + self.log_prior(p), P, logP, log1mP, nodes=nodes)

    def full_counts(self, e: _EStep) -> tuple[NDArray, NDArray]:
        if e.R is not None and e.F is not None:
            return e.R, e.F
        return self.ops.counts(e.post)

    # -- M-step ------------------------------------------------------------------------------------
    def mstep(self, p: _Params, e: _EStep) -> _Params:
        q = p.copy()
        f = self.free
        if f.size == 0:
            return q
        item_cols = tuple(c for c in self.cols if not (c == "a" and self.shared_a))
        nat = {c: getattr(q, c)[f] for c in _PCOLS}
        plain_2pl = self.plain and item_cols == ("a", "b")
        rows = slice(None) if f.size == self.n_items else f      # every item free: views, no copies
        if e.R is None:
            assert e.Rx is not None and e.N is not None
            N = e.N if e.N.shape[0] == 1 else e.N[rows]
        else:
            R, F = e.R[rows], e.F[rows]  # type: ignore[index]
            N = R + F
        # Nodes where no free item has expected mass worth a 1e-16 share of its count add nothing the
        # line search could see: the M-step runs on the span of the rest (a third of the grid or more
        # is beyond every model's posterior once the posteriors are sharp).
        # (A windowed E-step has already dropped every node below e^-25 of all modes: nothing to do.)
        keep = slice(None)
        if not self.windowed:
            heavy = np.flatnonzero(np.any(N > _TRIM * N.sum(axis=1, keepdims=True), axis=0))
            keep = slice(int(heavy[0]), int(heavy[-1]) + 1) if heavy.size >= 3 else slice(None)
        x, x01 = self.x[e.nodes][keep], self._x01[e.nodes]
        if plain_2pl:
            # the E-step's curves and item log-likelihoods at the same parameters start the first step
            if e.R is None:
                Rx = e.Rx[rows]  # type: ignore[index]
            else:
                Rx = R @ x01
            N = N[:, keep]
            Fx = N @ x01[keep] - Rx
            P = e.P[rows, keep]
            objd = _sum_n(N, e.logP[rows, keep]) - nat["a"] * (Fx[:, 1] - nat["b"] * Fx[:, 0])
        else:
            R, F = R[:, keep], F[:, keep]
        if plain_2pl:
            nat = self._mstep_2pl(nat, Rx, N, Fx, P, objd, x)
        for _ in range(0 if plain_2pl else self.n_newton):
            nat = self._newton_items(nat, R, F, item_cols, x)
            if self.shared_a:
                nat = self._newton_shared_a(nat, R, F, x)
        for c in _PCOLS:
            getattr(q, c)[f] = nat[c]
        return q

    def _newton_items(self, nat: dict[str, NDArray], R: NDArray, F: NDArray,
                      cols: tuple[str, ...], x: NDArray) -> dict[str, NDArray]:
        P, dP, _ = _curves(nat["a"], nat["b"], nat["c"], nat["d"], x, cols)
        N = R + F
        resid = (R - N * P) / (P * (1.0 - P))
        wgt = N / (P * (1.0 - P))
        k = len(cols)
        g = np.stack([(resid * dP[c]).sum(axis=1) for c in cols], axis=1)
        info = np.empty((g.shape[0], k, k))
        for i, ci in enumerate(cols):
            for j in range(i, k):
                info[:, i, j] = info[:, j, i] = (wgt * dP[ci] * dP[cols[j]]).sum(axis=1)
        for i, c in enumerate(cols):
            pg, pnh = self.priors.grad_nhess(c, nat[c])
            g[:, i] += pg
            info[:, i, i] += pnh + 1e-8
        step = np.linalg.solve(info, g[..., None])[..., 0]
        big = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, _MAX_STEP / np.maximum(big, 1e-300))[:, None]
        obj0 = _item_objective(P, R, F) + sum(self.priors.logp(c, nat[c]) for c in cols)
        u0 = {c: _to_u(c, nat[c]) for c in cols}
        t = np.ones(g.shape[0])
        out = dict(nat)
        todo = np.arange(g.shape[0])
        for _ in range(12):
            cand = {c: nat[c][todo] for c in _PCOLS}
            for i, c in enumerate(cols):
                cand[c] = _to_nat(c, u0[c][todo] + t[todo] * step[todo, i])
            Pn = np.clip(prob(x, cand["a"][:, None], cand["b"][:, None], cand["c"][:, None], cand["d"][:, None]),
                         EPS, 1 - EPS)
            obj1 = _item_objective(Pn, R[todo], F[todo]) + sum(self.priors.logp(c, cand[c]) for c in cols)
            ok = obj1 >= obj0[todo] - 1e-10 * np.abs(obj0[todo])
            for c in cols:
                out[c][todo[ok]] = cand[c][ok]
            todo = todo[~ok]
            if todo.size == 0:
                break
            t[todo] *= 0.5
        return out

    def _fisher_step_2pl(self, a: NDArray, b: NDArray, Rx: NDArray, N: NDArray, Fx: NDArray, P: NDArray,
                         x: NDArray) -> tuple[NDArray, NDArray]:
        """Fisher-scoring step on (log a, b) for c = 0, d = 1, capped at _MAX_STEP per coordinate.

        With z = a (x - b) affine in the node x, every sum over nodes is a small matmul of a per-node
        array with [1, x, x^2].  ``x`` is the (trimmed) node set that ``N`` and ``P`` were taken on.
        """
        x012 = np.stack([np.ones_like(x), x, x * x], axis=1)
        NP = N * P                                      # N may be one row shared by all items
        m_np = NP @ x012                                # sums over nodes of N P times 1, x, x^2
        NP *= P
        iaa, iab, ibb = _info_2pl(a, b, m_np - NP @ x012)   # ... of W = N P (1 - P)
        r0, r1 = (Rx - m_np[:, :2]).T                   # ... of R - N P, and of x (R - N P)
        ga = a * (r1 - b * r0)
        gb = -a * r0
        pga, pna = self.priors.grad_nhess("a", a)
        pgb, pnb = self.priors.grad_nhess("b", b)
        ga, gb, iaa, ibb = ga + pga, gb + pgb, iaa + pna + 1e-8, ibb + pnb + 1e-8
        det = iaa * ibb - iab * iab
        sa = (ibb * ga - iab * gb) / det
        sb = (iaa * gb - iab * ga) / det
        scale = np.minimum(1.0, _MAX_STEP / np.maximum(np.maximum(np.abs(sa), np.abs(sb)), 1e-300))
        return sa * scale, sb * scale

    def _mstep_2pl(self, nat: dict[str, NDArray], Rx: NDArray, N: NDArray, Fx: NDArray, P: NDArray,
                   objd: NDArray, x: NDArray) -> dict[str, NDArray]:
        """``n_newton`` Fisher steps for c = 0, d = 1, checked once at the end.

        The usual case needs one objective evaluation per M-step; items whose objective fell (rare:
        far from the optimum) redo the steps with a per-step line search (``_newton_2pl``), so every
        item's objective still rises (a generalised EM).
        """
        a0, b0 = nat["a"], nat["b"]
        a, b, Pk = a0, b0, P
        for k in range(self.n_newton):
            sa, sb = self._fisher_step_2pl(a, b, Rx, N, Fx, Pk, x)
            a, b = _to_nat("a", np.log(a) + sa), _to_nat("b", b + sb)
            if k + 1 < self.n_newton:
                # logistic as 0.5 + 0.5 tanh(z / 2): twice as fast as expit, exact to 1e-16 absolute,
                # which is all the Fisher step's weights N P (1 - P) need
                Pk = x[None, :] - b[:, None]
                Pk *= 0.5 * a[:, None]
                np.tanh(Pk, out=Pk)
                Pk *= 0.5
                Pk += 0.5
        logP, _ = _log_logistic(a, b, x)
        od = _sum_n(N, logP) - a * (Fx[:, 1] - b * Fx[:, 0])
        obj0 = objd + self.priors.logp("a", a0) + self.priors.logp("b", b0)
        obj1 = od + self.priors.logp("a", a) + self.priors.logp("b", b)
        bad = np.flatnonzero(~(obj1 >= obj0 - 1e-10 * np.abs(obj0)))
        out = dict(nat, a=a, b=b)
        if bad.size:
            sub = {c: v[bad] for c, v in nat.items()}
            Nb = N if N.shape[0] == 1 else N[bad]
            Pb, ob = P[bad], objd[bad]
            for _ in range(self.n_newton):
                sub, Pb, ob = self._newton_2pl(sub, Rx[bad], Nb, Fx[bad], Pb, ob, x)
            out["a"][bad], out["b"][bad] = sub["a"], sub["b"]
        return out

    def _newton_2pl(self, nat: dict[str, NDArray], Rx: NDArray, N: NDArray, Fx: NDArray, P: NDArray,
                    objd: NDArray, x: NDArray) -> tuple[dict[str, NDArray], NDArray, NDArray]:
        """One Fisher step with a per-item step-halving line search.  ``P`` and ``objd`` (per-item
        expected log-likelihood) at the current point come in and the updated ones go out."""
        a, b = nat["a"], nat["b"]
        sa, sb = self._fisher_step_2pl(a, b, Rx, N, Fx, P, x)
        obj0 = objd + self.priors.logp("a", a) + self.priors.logp("b", b)
        la = np.log(a)
        F0 = Fx[:, 0]
        out_a, out_b, out_P, out_objd = a.copy(), b.copy(), P.copy(), objd.copy()
        t = np.ones(a.size)
        todo = np.arange(a.size)
        for _ in range(12):
            ca = _to_nat("a", la[todo] + t[todo] * sa[todo])
            cb = _to_nat("b", b[todo] + t[todo] * sb[todo])
            logP, z = _log_logistic(ca, cb, x)
            # sum_q R log P + F log(1 - P) = sum_q N log P - sum_q F z, and sum_q F z is affine in x
            od = _sum_n(N if N.shape[0] == 1 else N[todo], logP) - ca * (Fx[todo, 1] - cb * F0[todo])
            obj1 = od + self.priors.logp("a", ca) + self.priors.logp("b", cb)
            ok = obj1 >= obj0[todo] - 1e-10 * np.abs(obj0[todo])
            if todo.size == a.size and ok.all():      # the usual full step: no gathers
                return dict(nat, a=ca, b=cb), np.exp(logP), od
            acc = todo[ok]
            out_a[acc], out_b[acc], out_objd[acc] = ca[ok], cb[ok], od[ok]
            out_P[acc] = np.exp(logP[ok])
            todo = todo[~ok]
            if todo.size == 0:
                break
            t[todo] *= 0.5
        out = dict(nat)
        out["a"], out["b"] = out_a, out_b
        return out, out_P, out_objd

    def _newton_shared_a(self, nat: dict[str, NDArray], R: NDArray, F: NDArray, x: NDArray) -> dict[str, NDArray]:
        a0 = nat["a"][0]
        P, dP, _ = _curves(nat["a"], nat["b"], nat["c"], nat["d"], x, ("a",))
        N = R + F
        g = float(((R - N * P) / (P * (1 - P)) * dP["a"]).sum())
        info = float((N / (P * (1 - P)) * dP["a"] ** 2).sum())
        pg, pnh = self.priors.grad_nhess("a", np.array([a0]))
        g += float(pg[0])
        info += float(pnh[0]) + 1e-8
        step = float(np.clip(g / info, -_MAX_STEP, _MAX_STEP))
        obj0 = float(_item_objective(P, R, F).sum() + self.priors.logp("a", np.array([a0]))[0])
        for _ in range(12):
            a1 = float(_to_nat("a", np.array([math.log(a0) + step]))[0])
            Pn, _, _ = _curves(np.full_like(nat["a"], a1), nat["b"], nat["c"], nat["d"], x, ())
            obj1 = float(_item_objective(Pn, R, F).sum() + self.priors.logp("a", np.array([a1]))[0])
            if obj1 >= obj0 - 1e-10 * abs(obj0):
                out = dict(nat)
                out["a"] = np.full_like(nat["a"], a1)
                return out
            step *= 0.5
        return nat

    # -- latent distribution ------------------------------------------------------------------
    def update_latent(self, p: _Params, e: _EStep) -> _Params:
        post = e.post[self.has_obs]
        if post.shape[0] == 0 or (self.latent == "normal" and not self.anchored and not self.px):
            return p
        w = post.mean(axis=0)
        x = self.x[e.nodes]
        f = self.free
        if self.latent == "normal" and not self.anchored:
            # PX-EM: the latent mean and sd become expanded parameters, maximised jointly with the
            # items' priors (which are not scale invariant), then mapped back to N(0, 1) by rescaling
            # the items: same model and MAP, but EM no longer crawls along the scale direction.
            la = np.log(p.a[f[:1]] if self.shared_a else p.a[f])
            mu, sd = _px_scale(w, x, post.shape[0], la, p.b[f], self.priors)
            p.a[f] = p.a[f] * sd
            p.b[f] = (p.b[f] - mu) / sd
            return p
        if self.latent == "normal":      # anchored: the normal's mean and sd are estimated
            mu = float(w @ x)
            sd = math.sqrt(max(float(w @ (x - mu) ** 2), 1e-8))
            p.mu, p.sd, p.logw = mu, sd, _normal_logw(self.x, mu, sd)
            return p
        if not self.anchored:            # empirical histogram, standardised to mean 0, sd 1
            w, mu, sd = _standardise_histogram(self.x, w)
            p.a[f] = p.a[f] * sd
            p.b[f] = (p.b[f] - mu) / sd
        w = np.maximum(w, 1e-300)
        p.logw = np.log(w / w.sum())
        return p

    def em_map(self, p: _Params) -> tuple[_Params, _EStep]:
        e = self.estep(p)
        q = self.mstep(p, e)
        q = self.update_latent(q, e)
        return q, e

    # -- standard errors (Louis, per-item blocks) ---------------------------------------------
    def item_se(self, p: _Params, e: _EStep) -> dict[str, NDArray]:
        se = {c: np.full(self.n_items, np.nan) for c in _PCOLS}
        f = self.free
        if f.size == 0:
            return se
        cols = tuple(c for c in self.cols if not (c == "a" and self.shared_a))
        a, b, c_, d = p.a[f], p.b[f], p.c[f], p.d[f]
        P, dP, d2P = _curves(a, b, c_, d, self.x, cols, second=True)
        R_all, F_all = self.full_counts(e)
        R, F = R_all[f], F_all[f]
        N = R + F
        R2 = self.ops.sq_counts(e.post)[f] if self.ops.fractional else R
        pq = P * (1.0 - P)
        w_a = R / P**2 + F / (1.0 - P) ** 2
        w_2 = R / P - F / (1.0 - P)
        w_b = (R2 - 2.0 * P * R + P * P * N) / pq**2
        k = len(cols)
        info = np.zeros((f.size, k, k))
        for i, ci in enumerate(cols):
            for j in range(i, k):
                cj = cols[j]
                val = ((w_a - w_b) * dP[ci] * dP[cj] - w_2 * d2P[(ci, cj)]).sum(axis=1)
                info[:, i, j] = info[:, j, i] = val
        if self.plain and cols == ("a", "b"):
            info += self._score_outer_2pl(e.post, P, a, b, f)
        else:
            info += self._score_outer(e.post, P, dP, cols, f)
        for i, col in enumerate(cols):
            info[:, i, i] += self.priors.grad_nhess(col, getattr(p, col)[f])[1]
        cov = _safe_inv(info)
        for i, col in enumerate(cols):
            var = cov[:, i, i]
            sd_u = np.where(var > 0, np.sqrt(np.abs(var)), np.nan)
            nat = getattr(p, col)[f]
            jac = {"a": nat, "b": np.ones_like(nat), "c": nat * (1 - nat), "d": nat * (1 - nat)}[col]
            se[col][f] = sd_u * jac
        if self.shared_a:
            se["a"][f] = self._shared_a_se(p, e, f)
        return se

    def _score_outer(self, post: NDArray, P: NDArray, dP: dict[str, NDArray], cols: tuple[str, ...],
                     f: NDArray) -> NDArray:
        """sum over models of E_post[S_mi] E_post[S_mi]' per item (the last term of Louis' identity)."""
        k = len(cols)
        pos_of = np.full(self.n_items, -1)
        pos_of[f] = np.arange(f.size)
        h = np.stack([dP[c] / (P * (1.0 - P)) for c in cols], axis=2)          # items x Q x k
        G = np.concatenate([h, P[:, :, None] * h], axis=2)                     # items x Q x 2k
        return self.ops.score_outer(post, G, pos_of, k, f.size)

    def _score_outer_2pl(self, post: NDArray, P: NDArray, a: NDArray, b: NDArray, f: NDArray) -> NDArray:
        """``_score_outer`` for the 2PL on (log a, b), from the data operators' closed form."""
        pos_of = np.full(self.n_items, -1)
        pos_of[f] = np.arange(f.size)
        return self.ops.score_outer_2pl(post, P, self.x, a, b, pos_of)

    def _shared_a_se(self, p: _Params, e: _EStep, f: NDArray) -> float:
        """Louis' identity for the 1PL's single a (b's treated as known), on alpha = log a."""
        P, dP, d2P = _curves(p.a[f], p.b[f], p.c[f], p.d[f], self.x, ("a",), second=True)
        R_all, F_all = self.full_counts(e)
        R, F = R_all[f], F_all[f]
        w_a = R / P**2 + F / (1.0 - P) ** 2
        w_2 = R / P - F / (1.0 - P)
        complete = float((w_a * dP["a"] ** 2 - w_2 * d2P[("a", "a")]).sum())
        h = np.zeros((self.n_items, self.x.size))
        h[f] = dP["a"] / (P * (1.0 - P))
        Pf = np.zeros((self.n_items, self.x.size))
        Pf[f] = P
        # per-model complete-data score of the shared a at every node: sum_i (s - P_i) h_i
        T = self.ops.model_sums(h, Pf * h)
        mean_t = (e.post * T).sum(axis=1)
        var_t = (e.post * T * T).sum(axis=1) - mean_t**2
        info = complete - float(var_t.sum()) + float(self.priors.grad_nhess("a", p.a[f[:1]])[1][0])
        return float(p.a[f[0]] * math.sqrt(1.0 / info)) if info > 0 else float("nan")


def _px_scale(w: NDArray, x: NDArray, n: int, log_a: NDArray, b: NDArray,
              priors: _Priors) -> tuple[float, float]:
    """Latent (mean, sd) maximising n E_post[log N(theta; mu, sd)] + log prior(a sd, (b - mu) / sd).

    ``w`` is the posterior mass per node averaged over the n models; Newton on (mu, log sd) with step
    halving (the objective is a handful of sums, cheap even for 10^5 items).
    """
    m1 = float(w @ x)
    var = max(float(w @ (x - m1) ** 2), 1e-8)
    ma, sa = priors.a
    mb, sb = priors.b

    def obj(mu: float, s: float) -> float:
        bp = (b - mu) * math.exp(-s)
        return (n * (-s - (var + (m1 - mu) ** 2) * math.exp(-2 * s) / 2)
                - float(((log_a + s - ma) ** 2).sum()) / (2 * sa**2) - float(((bp - mb) ** 2).sum()) / (2 * sb**2))

    mu, s = m1, 0.5 * math.log(var)
    cur = obj(mu, s)
    for _ in range(30):
        e2s, es = math.exp(-2 * s), math.exp(-s)
        bp = (b - mu) * es
        q = var + (m1 - mu) ** 2
        g_mu = n * (m1 - mu) * e2s + float((bp - mb).sum()) * es / sb**2
        g_s = n * (q * e2s - 1) - float((log_a + s - ma).sum()) / sa**2 + float(((bp - mb) * bp).sum()) / sb**2
        h_mm = -n * e2s - b.size * e2s / sb**2
        h_ms = -2 * n * (m1 - mu) * e2s - float((2 * bp - mb).sum()) * es / sb**2
        h_ss = -2 * n * q * e2s - log_a.size / sa**2 - float((2 * bp * bp - mb * bp).sum()) / sb**2
        det = h_mm * h_ss - h_ms * h_ms
        if det > 0 and h_mm < 0:
            d_mu, d_s = -(h_ss * g_mu - h_ms * g_s) / det, -(h_mm * g_s - h_ms * g_mu) / det
        else:                         # not concave here: gradient step
            d_mu, d_s = g_mu / (n + 1.0), g_s / (n + 1.0)
        d_mu, d_s = float(np.clip(d_mu, -0.5, 0.5)), float(np.clip(d_s, -0.5, 0.5))
        for _ in range(20):
            new = obj(mu + d_mu, s + d_s)
            if new >= cur:
                break
            d_mu, d_s = d_mu / 2, d_s / 2
        else:
            break
        mu, s, gain, cur = mu + d_mu, s + d_s, new - cur, new
        if gain < 1e-12 * (1 + abs(cur)):
            break
    return mu, math.exp(s)


def _project(T: NDArray, r: NDArray) -> NDArray:
    """Orthogonal projection of r on the (two, independent) columns of T."""
    return T @ np.linalg.solve(T.T @ T, T.T @ r)


def _normal_logw(x: NDArray, mu: float, sd: float) -> NDArray:
    lw = -0.5 * ((x - mu) / sd) ** 2
    return lw - logsumexp(lw)


def _standardise_histogram(x: NDArray, w: NDArray) -> tuple[NDArray, float, float]:
    """Weights of (theta - mu) / sd at the same nodes, by linear interpolation of the density."""
    w = w / w.sum()
    mu = float(w @ x)
    sd = math.sqrt(max(float(w @ (x - mu) ** 2), 1e-12))
    dens = np.interp(mu + sd * x, x, w, left=0.0, right=0.0) * sd
    dens = np.maximum(dens, 1e-300)
    return dens / dens.sum(), mu, sd


def _safe_inv(m: NDArray) -> NDArray:
    out = np.full_like(m, np.nan)
    ok = np.all(np.isfinite(m), axis=(1, 2))
    if ok.any():
        sub = m[ok]
        try:
            out[ok] = np.linalg.inv(sub)
        except np.linalg.LinAlgError:
            for j, idx in enumerate(np.flatnonzero(ok)):
                try:
                    out[idx] = np.linalg.inv(sub[j])
                except np.linalg.LinAlgError:
                    pass
    return out


# ------------------------------------------------------------------------------------------------
# SQUAREM driver
# ------------------------------------------------------------------------------------------------
@dataclass
class _Trace:
    n_iter: int = 0
    converged: bool = False
    last_dll: float = float("nan")
    last_dpar: float = float("nan")
    n_rejected: int = 0


def _run_em(prob: _Problem, p0: _Params, *, max_iter: int, tol_ll: float, tol_param: float,
            accelerate: bool) -> tuple[_Params, _EStep, _Trace]:
    tr = _Trace()
    template = p0

    def F(v: NDArray) -> tuple[NDArray, _EStep, _Params]:
        p = prob.unpack(v, template)
        q, e = prob.em_map(p)
        tr.n_iter += 1
        return prob.pack(q), e, q

    def done(e0: _EStep, e1: _EStep, v0: NDArray, v1: NDArray) -> bool:
        tr.last_dll = abs(e1.logpost - e0.logpost)
        tr.last_dpar = prob.param_change(e0, e1, v0, v1)
        return tr.last_dll < tol_ll * (1.0 + abs(e0.logpost)) and tr.last_dpar < tol_param

    v0 = prob.pack(p0)
    v1, e0, _ = F(v0)
    step_max = _STEP_MAX0
    while True:
        v2, e1, _ = F(v1)                       # e1: E-step at v1 (so logpost(v1))
        if prob.px and e1.logpost - e0.logpost < _PX_OFF * (1.0 + abs(e0.logpost)):
            # PX warm-up done. On a fixed grid the rescaled items are not exactly the expanded model,
            # so the last stretch (and the convergence test) runs the plain EM map, whose fixed point
            # is the MAP of the objective we report.
            prob.px = False
            v0 = v2
            v1, e0, _ = F(v0)
            continue
        if done(e0, e1, v0, v1):
            tr.converged = True
            return prob.unpack(v1, template), e1, tr
        if tr.n_iter >= max_iter:
            best_v, best_e = (v1, e1) if e1.logpost >= e0.logpost else (v0, e0)
            return prob.unpack(best_v, template), best_e, tr
        if not accelerate:
            v0, e0, v1 = v1, e1, v2
            continue
        r = v1 - v0
        v = v2 - v1 - r
        # The latent's shift and scale are EM's slowest mode (rate near 1: on a fixed grid sharp
        # posteriors barely follow a rescaling of the items), while the other directions converge
        # fast; one SQUAREM step length for both would be set by the fast ones.  So that mode gets
        # its own step length, from the projections of r and v on its tangents.
        # Where the 2PL's sufficient statistics allow, that mode's move is instead the Newton step of
        # the log-posterior along it, from v0's E-step (``_Problem.scale_newton``): exact curvature
        # rather than a step length guessed from two differences.
        T = prob.scale_modes(v0)
        alpha_s = 1.0
        d_newton = prob.scale_newton(prob.unpack(v0, template), e0) if T is not None and not prob.px else None
        if T is not None:
            r_s, v_s = _project(T, r), _project(T, v)
            r, v = r - r_s, v - v_s
            if d_newton is None:
                ss = float(v_s @ v_s)
                alpha_s = max(math.sqrt(float(r_s @ r_s) / ss) if ss > 0 else 1.0, 1.0)
        sr, sv = float(r @ r), float(v @ v)
        raw = math.sqrt(sr / sv) if sv > 0 else 1.0
        alpha = min(max(raw, 1.0), step_max, _ALPHA_CAP)
        extrapolate = alpha > 1.0 + 1e-9 or alpha_s > 1.0 + 1e-9 or d_newton is not None
        if extrapolate and tr.n_iter + 3 <= max_iter:
            backtracked = tr.n_iter + 4 > max_iter          # no room for a second try
            while True:
                v_ext = v0 + 2.0 * alpha * r + alpha * alpha * v
                if d_newton is not None:
                    assert T is not None
                    v_ext += T @ (0.5 * d_newton if backtracked else d_newton)
                elif T is not None:
                    v_ext += 2.0 * alpha_s * r_s + alpha_s * alpha_s * v_s
                v_stab, e_ext, _ = F(v_ext)          # stabilising EM step from the extrapolated point
                if np.isfinite(e_ext.logpost) and e_ext.logpost >= e0.logpost:
                    v0, step_from = v_stab, (v_ext, e_ext)
                    if alpha >= step_max:
                        step_max *= 4.0
                    break
                tr.n_rejected += 1
                if (alpha_s > 2.0 or d_newton is not None) and not backtracked:
                    backtracked = True                    # the mode overshot: once more, half as far
                    alpha_s = 1.0 + (alpha_s - 1.0) / 2.0
                    continue
                v0, step_from = v2, (v1, e1)              # safeguard: keep the monotone plain-EM point
                if alpha >= step_max:
                    step_max = max(1.0, step_max / 4.0)
                break
        else:
            v0, step_from = v2, (v1, e1)
            if raw > step_max:                   # the bound, not the data, stopped the extrapolation
                step_max *= 4.0
        v1, e0, _ = F(v0)
        # v0 is itself one plain EM step from step_from's point, whose E-step is at hand: the
        # convergence rule can be applied to that step without another evaluation
        if not prob.px and done(step_from[1], e0, step_from[0], v0):
            tr.converged = True
            return prob.unpack(v0, template), e0, tr


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------
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
    if c_fixed is not None and model in ("3pl", "4pl"):
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
    se = prob.item_se(p_hat, e_hat) if compute_se else {c: np.full(n_items, np.nan) for c in _PCOLS}
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
        "guessing": "fixed" if c_fixed is not None and model in ("3pl", "4pl") else (
            "estimated" if "c" in cols else None),
        "max_iter": max_iter, "tol_ll": tol_ll, "tol_param": tol_param, "accelerate": "squarem" if accelerate
        else "none", "n_newton": n_newton, "n_rejected_extrapolations": tr.n_rejected,
        "fixed_items": [responses.item_ids[i] for i in np.flatnonzero(fixed_mask)],
        "fixed_unused": unused, "latent_mean": p_hat.mu, "latent_sd": p_hat.sd,
        "se_method": "louis_itemwise" if compute_se else None, "backend": prob.ops.kind,
        "final_dloglik": tr.last_dll, "final_dparam": tr.last_dpar,
        "seconds": round(time.perf_counter() - t0, 4), "n_models": responses.n_models,
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
    if c_fixed is not None and model in ("3pl", "4pl"):
        c = c_fixed.copy()
    d = np.ones(n) if model != "4pl" else np.full(n, priors.start("d"))
    logw = _normal_logw(x, 0.0, 1.0)
    if start is not None:
        f = free_items
        a[f] = np.clip(start.a[f], 0.05, 20)
        b[f] = np.clip(start.b[f], -10, 10)
        if model in ("3pl", "4pl") and c_fixed is None:
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


# ------------------------------------------------------------------------------------------------
# Model selection by held-out fit
# ------------------------------------------------------------------------------------------------
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
        if c in ("3pl", "4pl") and warm is not None and "start" not in kw:
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


def simulate_responses(params: ItemParams, theta: ArrayLike, rng: np.random.Generator,
                       missing: float = 0.0, model_ids: Sequence[str] | None = None) -> ResponseSet:
    """Bernoulli responses of models with abilities ``theta`` to the items, with a random missing share.

    For tests and benchmarks (seeded recovery studies). Generates row blocks so no dense matrix of the
    full size is held at once.
    """
    th = np.asarray(theta, dtype=float)
    n_m, n_i = th.size, len(params)
    ms, its, ss = [], [], []
    block = max(1, int(4_000_000 // max(n_i, 1)))
    for lo in range(0, n_m, block):
        t = th[lo:lo + block]
        p = prob(t[:, None], params.a, params.b, params.c, params.d)
        y = (rng.random(p.shape) < p).astype(float)
        keep = rng.random(p.shape) >= missing if missing > 0 else np.ones(p.shape, dtype=bool)
        mm, ii = np.nonzero(keep)
        ms.append((mm + lo).astype(np.int32))
        its.append(ii.astype(np.int32))
        ss.append(y[mm, ii])
    ids = tuple(model_ids) if model_ids is not None else tuple(f"m{k}" for k in range(n_m))
    return ResponseSet(np.concatenate(ms), np.concatenate(its), np.concatenate(ss), ids, params.item_ids)


__all__ = [
    "CalibrationConvergenceWarning", "CalibrationResult", "CandidateFit", "ModelSelection", "STATUSES",
    "fit_mml", "heldout_loglik", "item_status", "select_model", "simulate_responses", "split_holdout",
]

