"""The M-step, per model family: each free item's expected complete-data log-posterior maximised.

M-step.  Each item maximises its expected complete-data log-posterior
``sum_q R_iq log P_iq + F_iq log(1 - P_iq) + log prior`` by Fisher scoring, vectorised across items
(batched k x k solves, k <= 4), on an unconstrained scale: alpha = log a, b, logit c, logit d, with a
per-item step-halving line search so every step raises that item's objective (a generalised EM, hence
monotone).  Priors: a ~ lognormal (log a ~ normal, taken as a density on log a so that its mode is
exp(mean) and a vague prior adds no 1/a pull), b ~ normal (weak; keeps items with little data finite),
c, d ~ beta.  The 1PL shares one a across the free items.

Families.  ``_newton_items``: any set of free columns (3PL, 4PL, a 1PL/2PL with curves that are not
plain), batched k x k Fisher scoring with a per-item line search.  ``_mstep_2pl`` / ``_fisher_step_2pl``
/ ``_newton_2pl``: the 2PL (and 1PL item b's) fast path on sufficient statistics, one objective check
per M-step.  ``_newton_shared_a``: the 1PL's one shared a.  The M-step runs on the span of nodes
carrying mass (``_TRIM``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ..irt import EPS, prob
from .curves import (
    _MAX_STEP,
    _PCOLS,
    _by_rows,
    _curves,
    _info_2pl,
    _log_logistic,
    _node_sums,
    _np_sums,
    _to_nat,
    _to_u,
)
from .problem import _CurveCache, _EStep, _Params, _ProblemBase

_TRIM = 1e-16    # M-step drops nodes where every free item's expected mass is below this share of its count


def _sum_n(N: NDArray, logP: NDArray) -> NDArray:
    """Per-item sum over nodes of N * log P (N is one shared row or one row per item; rows shared among the
    cores: ``_by_rows``)."""
    if N.shape[0] == 1:
        return logP @ N[0]
    out = np.empty(logP.shape[0])

    def rows_of(start: int, stop: int) -> None:
        out[start:stop] = np.einsum("iq,iq->i", N[start:stop], logP[start:stop])

    _by_rows(logP.shape[0], logP.shape[1], rows_of)
    return out


def _item_objective(P: NDArray, R: NDArray, F: NDArray) -> NDArray:
    return (R * np.log(P) + F * np.log1p(-P)).sum(axis=1)


class _MStepMixin(_ProblemBase):
    def mstep(self, p: _Params, e: _EStep) -> _Params:
        q = p.copy()
        f = self.free
        if f.size == 0:
            return q
        item_cols = tuple(c for c in self.cols if not (c == "a" and self.shared_a))
        plain_2pl = self.plain and item_cols == ("a", "b")
        # every item free: views, no copies.  The 2PL path also runs on every row when some items are
        # not free (rows are independent; the others' steps are dropped below): gathering the free
        # rows of four items x nodes arrays costs more than the few extra rows.
        every = f.size == self.n_items or (plain_2pl and e.R is None)
        rows = slice(None) if every else f
        nat = {c: getattr(q, c)[rows] for c in _PCOLS}
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
            Fx = _node_sums(N, x01[keep]) - Rx             # (N may be one row shared by all items)
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
            getattr(q, c)[f] = nat[c][f] if every and f.size < self.n_items else nat[c]
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

    def _fisher_step_2pl(self, a: NDArray, b: NDArray, Rx: NDArray, N: NDArray, Fx: NDArray, P: NDArray | None,
                         x: NDArray) -> tuple[NDArray, NDArray]:
        """Fisher-scoring step on (log a, b) for c = 0, d = 1, capped at _MAX_STEP per coordinate.

        With z = a (x - b) affine in the node x, every sum over nodes is a small matmul of a per-node
        array with [1, x, x^2].  ``x`` is the (trimmed) node set that ``N`` and ``P`` were taken on;
        ``P`` None: the curves at (a, b), computed here (``_np_sums``).
        """
        m_np, m_npp = _np_sums(N, P, x, a, b)           # sums over nodes of N P and N P^2 times 1, x, x^2
        iaa, iab, ibb = _info_2pl(a, b, m_np - m_npp)   # ... of W = N P (1 - P)
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
        a, b = a0, b0
        Pk: NDArray | None = P
        for _ in range(self.n_newton):
            sa, sb = self._fisher_step_2pl(a, b, Rx, N, Fx, Pk, x)
            a, b = _to_nat("a", np.log(a) + sa), _to_nat("b", b + sb)
            Pk = None                                   # the next step's curves: computed in its blocks
        logP, z, Pn = _log_logistic(a, b, x)
        if self.windowed or x.size == self.x.size:
            # (copies: the line search below moves some items' a and b in place)
            self._curves = _CurveCache(a.copy(), b.copy(), x, logP, z, Pn)
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
            logP, _, Pn = _log_logistic(ca, cb, x)
            # sum_q R log P + F log(1 - P) = sum_q N log P - sum_q F z, and sum_q F z is affine in x
            od = _sum_n(N if N.shape[0] == 1 else N[todo], logP) - ca * (Fx[todo, 1] - cb * F0[todo])
            obj1 = od + self.priors.logp("a", ca) + self.priors.logp("b", cb)
            ok = obj1 >= obj0[todo] - 1e-10 * np.abs(obj0[todo])
            if todo.size == a.size and ok.all():      # the usual full step: no gathers
                return dict(nat, a=ca, b=cb), Pn, od
            acc = todo[ok]
            out_a[acc], out_b[acc], out_objd[acc] = ca[ok], cb[ok], od[ok]
            out_P[acc] = Pn[ok]
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
