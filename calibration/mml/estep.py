"""The E-step: per-model posteriors over the quadrature nodes, the marginal log-likelihood, expected counts.

E-step.  Only the observed (model, item, score) triplets are touched: with item curves tabulated at the
quadrature nodes (n_items x n_quad), the per-model log-likelihood at every node is two sparse matmuls,
``S1 @ log P + S0 @ log(1 - P)`` where S1 holds the scores s and S0 holds 1 - s (a binary response
sits in only one of them; a fractional score in both).  The per-model posterior over the nodes gives the
expected counts per item and node, ``R = S1' @ post`` and ``F = S0' @ post``; no model x item matrix is
ever built.

Node window.  Where the posteriors are log-concave (c = 0, d = 1, normal latent) the E-step runs on the
nodes near some model's posterior mode (``_support``), kept only while ``_window_holds``; posterior
masses below 1e-250 are flushed to zero (subnormal numbers make every later product several times
slower).

Curve cache.  The 2PL M-step ends by evaluating log P at its new parameters (its objective check); a
plain EM step's next E-step is at that same point, so it takes those curves (``_log_logistic``),
recomputing only rows whose a or b differ bit for bit (the pack/unpack round trip, items not free):
the same numbers, one items x nodes exp/log pass fewer.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ..irt import EPS, prob
from .curves import _by_rows, _log_logistic
from .problem import _EStep, _Params, _ProblemBase

_TINY = 1e-250   # posterior masses below this are flushed to zero (see _Problem.estep)
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


def _log1m(logP: NDArray, z: NDArray) -> NDArray:
    """log(1 - P) = log P - z, written over z (not needed again: no new array), the rows on every core."""
    def rows_of(lo: int, hi: int) -> None:
        np.subtract(logP[lo:hi], z[lo:hi], out=z[lo:hi])

    _by_rows(z.shape[0], z.shape[1], rows_of)
    return z


class _EStepMixin(_ProblemBase):
    def _log_logistic(self, p: _Params, x: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """log P, z and P at ``p`` on the nodes ``x``: from the M-step's cache where it was computed at the
        same point (a plain EM step after another), recomputing only the rows whose a or b differ (bit for
        bit)."""
        c, self._curves = self._curves, None
        if c is None or c.x.shape != x.shape or not np.array_equal(c.x, x) or c.a.size != p.a.size:
            return _log_logistic(p.a, p.b, x)
        moved = np.flatnonzero((c.a != p.a) | (c.b != p.b))
        if moved.size > p.a.size // 2:
            return _log_logistic(p.a, p.b, x)
        if moved.size:
            c.logP[moved], c.z[moved], c.P[moved] = _log_logistic(p.a[moved], p.b[moved], x)
        return c.logP, c.z, c.P

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
                logP, z, P = self._log_logistic(p, x)
                log1mP = _log1m(logP, z)
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
        del log1mP
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
            return _EStep(post, None, None, ll, ll + self.log_prior(p), P, logP, Rx, N, nodes)
        R, F = self.ops.counts(post)
        return _EStep(post, R, F, ll, ll + self.log_prior(p), P, logP, nodes=nodes)
