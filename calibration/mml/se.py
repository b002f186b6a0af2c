"""Standard errors of the item parameters (Louis' identity, per-item blocks).

Standard errors.  Per-item blocks of the observed information of the marginal log-posterior at the
estimate, by Louis' (1982) identity: complete-data information minus the posterior variance of the
complete-data score, per model, summed.  The first two parts are exact closed forms in the expected
counts; the last (the sum over models of the outer product of the posterior-mean score) is gathered over
the observed triplets in chunks.  Cross-item covariances (through the shared abilities) are ignored, as
in the usual item-wise observed information; the 1PL's shared a gets its own 1 x 1 block.  The delta
method maps the SEs to a, b, c, d.  Anchor items and items kept at their priors have NaN SEs.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from .curves import _PCOLS, _curves
from .problem import _EStep, _Params, _ProblemBase

# Free items per block of the SEs: bounds the items x nodes temporaries (a dozen of them, on the full
# grid) to a few hundred MB however many items there are; each item's block is its own.
_SE_CHUNK = 1 << 16


class _StdErrMixin(_ProblemBase):
    def item_se(self, p: _Params, e: _EStep) -> dict[str, NDArray]:
        se = {c: np.full(self.n_items, np.nan) for c in _PCOLS}
        f = self.free
        if f.size == 0:
            return se
        cols = tuple(c for c in self.cols if not (c == "a" and self.shared_a))
        R_all, F_all = self.full_counts(e)
        R2_all = self.ops.sq_counts(e.post) if self.ops.fractional else None
        for lo in range(0, f.size, _SE_CHUNK):
            fc = f[lo:lo + _SE_CHUNK]
            cov = _safe_inv(self._item_info(p, e.post, fc, cols, R_all, F_all, R2_all))
            for i, col in enumerate(cols):
                var = cov[:, i, i]
                sd_u = np.where(var > 0, np.sqrt(np.abs(var)), np.nan)
                nat = getattr(p, col)[fc]
                jac = {"a": nat, "b": np.ones_like(nat), "c": nat * (1 - nat), "d": nat * (1 - nat)}[col]
                se[col][fc] = sd_u * jac
        if self.shared_a:
            se["a"][f] = self._shared_a_se(p, e, f)
        return se

    def _item_info(self, p: _Params, post: NDArray, f: NDArray, cols: tuple[str, ...], R_all: NDArray,
                   F_all: NDArray, R2_all: NDArray | None) -> NDArray:
        """Louis' observed information (items x k x k, unconstrained scale) of the items ``f``."""
        a, b, c_, d = p.a[f], p.b[f], p.c[f], p.d[f]
        P, dP, d2P = _curves(a, b, c_, d, self.x, cols, second=True)
        R, F = R_all[f], F_all[f]
        N = R + F
        R2 = R2_all[f] if R2_all is not None else R
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
            info += self._score_outer_2pl(post, P, a, b, f)
        else:
            info += self._score_outer(post, P, dP, cols, f)
        for i, col in enumerate(cols):
            info[:, i, i] += self.priors.grad_nhess(col, getattr(p, col)[f])[1]
        return info

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
