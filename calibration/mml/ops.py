"""Data operators: everything the EM computes from the observed (model, item, score) triplets.

Two implementations of one set of operators, chosen by ``_make_ops``: ``_SparseOps`` (CSR matmuls over
the observed triplets only; the default, no model x item matrix is ever built) and ``_DenseOps`` (BLAS
on a model x item cache, for small, nearly complete data).  Per-observation quantities (the Louis SE's
outer products) are gathered in chunks of ``_CHUNK`` observations.

2PL fast path.  s log P + (1 - s) log(1 - P) = s z + log(1 - P) with z = a (x - b) affine in the node,
so the E-step needs the weighted sum scores (sparse matrix-vector products) plus one product for
log(1 - P), and the M-step only needs R @ [1, x] and N = R + F; complete data need no matmul at all.
The 1PL/2PL use the exact log-logistic; the 3PL/4PL clip P to [EPS, 1 - EPS] as irt.py does.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from .curves import _even_cuts, _in_parts

_CHUNK = 1 << 17   # observations per chunk when gathering per-observation quantities

try:   # scipy's CSR kernel (what ``A @ X`` runs), called on row ranges into one output (``_csr_times``)
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:   # pragma: no cover - a scipy without it: the plain product, on one core
    _csr_matvecs = None


def _csr_times(A: sparse.csr_array, X: NDArray) -> NDArray:
    """A @ X for a CSR A and a dense X, A's rows shared among the cores (``curves._in_parts``; scipy's kernel
    lets go of the GIL). Each row's sum is formed as the one-core product forms it: the same numbers bit for bit."""
    cuts = _even_cuts(A.shape[0], A.nnz * X.shape[1])
    if _csr_matvecs is None or len(cuts) <= 2 or X.dtype != np.float64 or A.data.dtype != np.float64:
        return A @ X
    X = np.ascontiguousarray(X)
    out = np.zeros((A.shape[0], X.shape[1]))
    flat = X.reshape(-1)

    def rows(lo: int, hi: int) -> None:
        _csr_matvecs(hi - lo, A.shape[1], X.shape[1], A.indptr[lo:hi + 1], A.indices, A.data, flat,
                     out[lo:hi].reshape(-1))

    _in_parts(cuts, rows)
    return out


def _csr_t_times(A: sparse.csr_array, X: NDArray) -> NDArray:
    """A.T @ X for a CSR A and a dense X, X's columns shared among the cores: each output column is the one-core
    product's, bit for bit (A's rows are summed in the same order whatever the columns beside it)."""
    cuts = _even_cuts(X.shape[1], A.nnz * X.shape[1])
    if len(cuts) <= 2:
        return A.T @ X
    out = np.empty((A.shape[1], X.shape[1]))

    def cols(lo: int, hi: int) -> None:
        out[:, lo:hi] = A.T @ np.ascontiguousarray(X[:, lo:hi])

    _in_parts(cuts, cols)
    return out


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
        return _csr_t_times(self.S1T, logP) + _csr_t_times(self.S0T, log1mP)

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
        return _csr_times(self.S1T, post), _csr_times(self.S0T, post)

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
        return np.outer(S @ a, x) - (S @ ab)[:, None] + _csr_t_times(IT, log1mP)

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
        return _csr_t_times(self._S, post @ x01), _csr_times(self._IT, post)

    def theta_score(self, a: NDArray, aP: NDArray) -> NDArray:
        """Per model and node, d/dtheta of the 2PL log-likelihood: sum over its items of a_i (s - P_i)."""
        assert self._S is not None and self._IT is not None
        return (self._S @ a)[:, None] - _csr_t_times(self._IT, aP)

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
