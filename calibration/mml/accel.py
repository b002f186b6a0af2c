"""Acceleration and the convergence rule: the SQUAREM driver around the EM map.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from .curves import _BLOCK, _by_rows, _info_2pl, _np_sums
from .problem import _EStep, _Params, _ProblemBase

if TYPE_CHECKING:
    from .fitting import _Problem

# PX-EM warm-up (latent mean/sd as expanded parameters) until a step gains less than this, relatively.
_PX_OFF = 1e-6
_STEP_MAX0 = 1.0
# SQUAREM step length for the fast directions is capped: where posteriors are much sharper than the
# grid (thousands of items per model) longer extrapolations overshoot, get rejected and cost two
# evaluations each (2,000 x 50,000 at 95% missing: 122 EM steps uncapped, 80 capped at 4).
_ALPHA_CAP = 4.0


class _AccelMixin(_ProblemBase):
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
        items = 0.0
        if f.size and hi > lo:
            # on every row, then the free ones: gathering the free rows first copies two big arrays
            dmax = _row_max_abs_diff(e1.P[:, lo - lo1:hi - lo1], e0.P[:, lo - lo0:hi - lo0])
            items = float(np.max(dmax if f.size == self.n_items else dmax[f]))
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
        every = f.size == self.n_items                  # views rather than copies of the free rows
        Pf = e.P if every else e.P[f]
        N = e.N if e.N.shape[0] == 1 or every else e.N[f]
        m_np, m_npp = _np_sums(N, Pf, x, a, b)          # of W = N P (1 - P)
        iaa, iab, ibb = _info_2pl(a, b, m_np - m_npp)
        iaa, ibb = iaa + pna, ibb + pnb
        J = np.array([[ibb.sum() - c11, (b * ibb - iab).sum() - c12],
                      [(b * ibb - iab).sum() - c12, (iaa - 2 * b * iab + b * b * ibb).sum() - c22]])
        if not (np.all(np.isfinite(J)) and J[0, 0] > 0 and np.linalg.det(J) > 0):
            return None
        d = np.linalg.solve(J, G)
        return d * min(1.0, 0.5 / max(float(np.abs(d).max()), 1e-300))


def _row_max_abs_diff(A: NDArray, B: NDArray) -> NDArray:
    """max_j |A_ij - B_ij| per row, in row blocks (no items x nodes temporary), rows shared among the cores."""
    out = np.empty(A.shape[0])
    step = max(1, _BLOCK // max(A.shape[1], 1))

    def rows_of(start: int, stop: int) -> None:
        buf = np.empty((min(step, stop - start), A.shape[1]))
        for lo in range(start, stop, step):
            hi = min(lo + step, stop)
            d = np.subtract(A[lo:hi], B[lo:hi], out=buf[:hi - lo])
            np.abs(d, out=d)
            out[lo:hi] = d.max(axis=1)

    _by_rows(A.shape[0], A.shape[1], rows_of)
    return out


def _project(T: NDArray, r: NDArray) -> NDArray:
    """Orthogonal projection of r on the (two, independent) columns of T."""
    return T @ np.linalg.solve(T.T @ T, T.T @ r)


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
