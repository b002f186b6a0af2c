"""The fitting problem: what one fit knows (data operators, nodes, priors, free items) and its state.

``_ProblemBase`` is built once per fit; the EM's parts are mixins on it (``estep``, ``mstep``,
``latent``, ``se``, ``accel``), put together as ``calibration.mml.fitting._Problem``.  ``_Params`` is
the state the EM map moves (item parameters and the latent weights); ``_EStep`` is what one E-step
hands to the M-step, the SEs and the convergence rule.  ``pack`` / ``unpack`` map the free parameters
to the flat vector SQUAREM extrapolates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from ..data import ResponseSet
from .curves import _normal_logw, _Priors, _to_nat, _to_u
from .ops import _make_ops


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
    logP: NDArray       # (log(1 - P) is not kept: nothing after the E-step reads it, and at 10^6 items
                        # each items x nodes array is half a GB)
    Rx: NDArray | None = None    # R @ [1, x] (items x 2)
    N: NDArray | None = None     # R + F (1 x nodes when the same for every item)
    nodes: slice = field(default_factory=lambda: slice(None))   # node window of the arrays above


@dataclass
class _CurveCache:
    a: NDArray          # the parameters (every row) log P and z were computed at
    b: NDArray
    x: NDArray          # ... and the nodes
    logP: NDArray
    z: NDArray
    P: NDArray


class _ProblemBase:
    def __init__(self, rs: ResponseSet, model: str, x: NDArray, latent: str, priors: _Priors,
                 free_items: NDArray, used_items: NDArray, cols: tuple[str, ...], shared_a: bool,
                 anchored: bool, n_newton: int, backend: str = "auto") -> None:
        self.model, self.x, self.latent, self.priors = model, x, latent, priors
        self.cols, self.shared_a, self.anchored, self.n_newton = cols, shared_a, anchored, n_newton
        self.px = latent == "normal" and not anchored     # PX-EM warm-up (see _run_em)
        self.plain = model in ("1pl", "2pl")   # c = 0, d = 1 everywhere: log-logistic fast paths
        self.suff = False                       # set by fit_mml: complete dense 2PL data
        self._x01 = np.stack([np.ones_like(x), x], axis=1)
        self.n_items, self.n_models = rs.n_items, rs.n_models
        self.free = np.flatnonzero(free_items)
        keep = used_items[rs.item_idx]
        m, i, s = rs.model_idx[keep], rs.item_idx[keep], rs.score[keep]
        self.ops = _make_ops(m, i, s, rs.n_models, rs.n_items, backend)
        self.has_obs = np.bincount(m, minlength=rs.n_models) > 0
        self._window = (0, x.size)
        # log P and z = a (x - b) that the 2PL M-step's objective check computed at its new parameters,
        # with those parameters and nodes: the next E-step is usually at the same point (``_CurveCache``)
        self._curves: _CurveCache | None = None
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

    def log_prior(self, p: _Params) -> float:
        total = 0.0
        f = self.free
        for col in self.cols:
            if col == "a" and self.shared_a:
                total += float(self.priors.logp("a", p.a[f[:1]]).sum()) if f.size else 0.0
            else:
                total += float(self.priors.logp(col, getattr(p, col)[f]).sum())
        return total

    def full_counts(self, e: _EStep) -> tuple[NDArray, NDArray]:
        if e.R is not None and e.F is not None:
            return e.R, e.F
        return self.ops.counts(e.post)
