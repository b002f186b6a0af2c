"""The latent distribution's update after each M-step.

Latent distribution.  Normal N(0, 1) on the nodes by default.  ``latent="empirical"`` re-estimates the
node weights every EM step (Bock-Aitkin / Woods empirical histogram) and re-standardises them to mean 0,
sd 1 to fix the scale (the item parameters are rescaled with them).  With fixed anchor items the anchors
set the scale instead: the normal latent gets an estimated mean and sd, the histogram is not
re-standardised (fixed-parameter calibration with latent updating).

With the normal latent and no anchors the first EM steps are PX-EM (``_px_scale``; see
``calibration.mml.accel`` for when they stop).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .curves import _normal_logw, _Priors
from .problem import _EStep, _Params, _ProblemBase


class _LatentMixin(_ProblemBase):
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


def _standardise_histogram(x: NDArray, w: NDArray) -> tuple[NDArray, float, float]:
    """Weights of (theta - mu) / sd at the same nodes, by linear interpolation of the density."""
    w = w / w.sum()
    mu = float(w @ x)
    sd = math.sqrt(max(float(w @ (x - mu) ** 2), 1e-12))
    dens = np.interp(mu + sd * x, x, w, left=0.0, right=0.0) * sd
    dens = np.maximum(dens, 1e-300)
    return dens / dens.sum(), mu, sd
