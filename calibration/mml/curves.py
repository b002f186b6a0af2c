"""Item curves, priors and parameter transforms on the unconstrained scale, the EM's parameter state.

Model (calibration/irt.py): P(correct | theta) = c + (d - c) * logistic(a * (theta - b)).  The EM works
on alpha = log a, b, logit c, logit d (``_to_u`` / ``_to_nat``, clipped to hard bounds); ``_curves``
gives P with its first and second derivatives on that scale.  The 1PL/2PL use the exact log-logistic
(``_log_logistic``); the 3PL/4PL clip P to [EPS, 1 - EPS] as irt.py does.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, logit, logsumexp

from ..irt import EPS

_PCOLS = ("a", "b", "c", "d")
# Hard bounds on the unconstrained scale: a in [0.01, 50], |b| <= 15, logits of c and d within +-12.
_LO = {"a": math.log(0.01), "b": -15.0, "c": -12.0, "d": -12.0}
_HI = {"a": math.log(50.0), "b": 15.0, "c": 12.0, "d": 12.0}
# Largest Fisher-scoring step per coordinate (unconstrained scale); longer steps are scaled down.
_MAX_STEP = 1.0
_ZMAX = 700.0   # keeps exp(-z) finite; beyond it log P is 0 or -|z| to double precision anyway


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


_BLOCK = 1 << 15   # elements per row block of the items x nodes passes below (their temporaries stay in cache)


def _log_logistic(a: NDArray, b: NDArray, x: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """log P, z = a (x - b) and P for the 1PL/2PL, exact (no EPS clip: log(1 - P) = log P - z holds).

    With t = e^-z and u = 1 + t: P = 1 / u and log P = -log1p(t), where log1p(t) = log(u) - ((u - 1) - t) / u
    (the rounding of 1 + t corrected to first order: within a few ulp of log1p, for any t >= 0).  One exp
    and one log per cell: libm's log1p (and the tanh of a logistic) cost twice an exp, and at 10^6 items
    these passes are most of an EM step.  Computed in row blocks, so the temporaries stay in cache, and the
    rows shared among the cores (``_by_rows``)."""
    shape = (a.size, x.size)
    z, logP, P = np.empty(shape), np.empty(shape), np.empty(shape)
    clip = bool(a.size) and float(np.max(a)) * max(float(x[-1] - np.min(b)), float(np.max(b) - x[0])) > _ZMAX
    step = max(1, _BLOCK // max(x.size, 1))

    def rows_of(start: int, stop: int) -> None:
        u, w = np.empty((min(step, stop - start), x.size)), np.empty((min(step, stop - start), x.size))
        for lo in range(start, stop, step):
            rows = slice(lo, min(lo + step, stop))
            zb, tb, pb = z[rows], logP[rows], P[rows]
            ub, wb = u[:zb.shape[0]], w[:zb.shape[0]]
            np.subtract(x[None, :], b[rows, None], out=zb)
            zb *= a[rows, None]
            if clip:
                np.clip(zb, -_ZMAX, _ZMAX, out=zb)     # keeps e^-z finite; beyond it log P is 0 or -|z| anyway
            np.negative(zb, out=tb)
            np.exp(tb, out=tb)                         # t = e^-z, in log P's rows until the end
            np.add(tb, 1.0, out=ub)
            np.reciprocal(ub, out=pb)
            np.subtract(ub, 1.0, out=wb)
            wb -= tb
            wb /= ub
            np.log(ub, out=ub)
            ub -= wb
            np.negative(ub, out=tb)

    _by_rows(a.size, x.size, rows_of)
    return logP, z, P


def _logistic(a: NDArray, b: NDArray, x: NDArray, out: NDArray | None = None) -> NDArray:
    """P = 1 / (1 + e^-z), z = a (x - b), in row blocks (one exp per cell; see ``_log_logistic``)."""
    P = np.empty((a.size, x.size)) if out is None else out
    step = max(1, _BLOCK // max(x.size, 1))
    for lo in range(0, a.size, step):
        rows = slice(lo, lo + step)
        pb = np.subtract(b[rows, None], x[None, :], out=P[rows])     # -z
        pb *= a[rows, None]
        np.minimum(pb, _ZMAX, out=pb)
        np.exp(pb, out=pb)
        pb += 1.0
        np.reciprocal(pb, out=pb)
    return P


def _np_sums(N: NDArray, P: NDArray | None, x: NDArray, a: NDArray, b: NDArray) -> tuple[NDArray, NDArray]:
    """Per item, the sums over nodes of N P and of N P^2, each times 1, x and x^2 (items x 3 each).

    ``N`` is one row per item or one row shared by all; ``P`` None: the 2PL curves at (a, b), computed
    here.  In row blocks, so that N P and N P^2 never exist as items x nodes arrays (at 10^6 items each
    pass over one is a trip to memory), the rows shared among the cores (``_by_rows``)."""
    x012 = np.stack([np.ones_like(x), x, x * x], axis=1)
    m_np, m_npp = np.empty((a.size, 3)), np.empty((a.size, 3))
    step = max(1, _BLOCK // max(x.size, 1))

    def rows_of(start: int, stop: int) -> None:
        NP = np.empty((min(step, stop - start), x.size))
        Pb = np.empty(NP.shape) if P is None else None
        for lo in range(start, stop, step):
            rows = slice(lo, min(lo + step, stop))
            k = rows.stop - lo
            if Pb is None:
                Pr = P[rows]  # type: ignore[index]
            else:
                Pr = _logistic(a[rows], b[rows], x, out=Pb[:k])
            NPb = np.multiply(N if N.shape[0] == 1 else N[rows], Pr, out=NP[:k])
            m_np[rows] = _node_sums(NPb, x012)
            NPb *= Pr
            m_npp[rows] = _node_sums(NPb, x012)

    _by_rows(a.size, x.size, rows_of)
    return m_np, m_npp


# Threads for the items x nodes passes: numpy releases the GIL inside each block's ufunc loops, so the row
# ranges run on separate cores; results are the same bit for bit (no row's arithmetic depends on another's).
_THREADS = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))
_PARALLEL_CELLS = 1 << 20   # below this many cells a pass is done in the calling thread (hand-off costs more)
_POOL: ThreadPoolExecutor | None = None


def _by_rows(n_rows: int, n_cols: int, fn: Callable[[int, int], None]) -> None:
    """fn(start, stop) over contiguous row ranges covering 0..n_rows: one per core for a large pass.  The ranges
    start on the callers' row blocks (``_BLOCK`` cells), so every block is the one a single thread would do (a
    BLAS product of another shape may round differently)."""
    step = max(1, _BLOCK // max(n_cols, 1))
    n_blocks = -(-n_rows // step)
    parts = min(_THREADS, n_blocks) if n_rows * n_cols >= _PARALLEL_CELLS else 1
    _in_parts([min(n_rows, n_blocks * k // parts * step) for k in range(parts + 1)], fn)


def _in_parts(cuts: Sequence[int], fn: Callable[[int, int], None]) -> None:
    """fn(cuts[k], cuts[k + 1]) for each k, on the pool's threads (one part: in the calling thread)."""
    global _POOL
    if len(cuts) <= 2:
        fn(cuts[0], cuts[-1])
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_THREADS, thread_name_prefix="adt-mml")
    for f in [_POOL.submit(fn, lo, hi) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)]:
        f.result()


def _even_cuts(n: int, work: int) -> list[int]:
    """Cuts of 0..n into one range per core when ``work`` (cells, or stored entries times columns) is large."""
    parts = min(_THREADS, n) if work >= _PARALLEL_CELLS else 1
    return [n * k // max(parts, 1) for k in range(max(parts, 1) + 1)]


def _node_sums(A: NDArray, X: NDArray) -> NDArray:
    """A @ X for a tall items x nodes A and a thin nodes x k X, computed as (X' A')': OpenBLAS runs
    the tall-times-thin product two to three times slower than its transpose."""
    return (X.T @ A.T).T


def _info_2pl(a: NDArray, b: NDArray, w: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """2PL complete-data information on (log a, b) per item, from w = sums over nodes of
    N P (1 - P) times 1, x and x^2 (z = a (x - b) is affine in x)."""
    w0, w1, w2 = w.T
    return a * a * (w2 - 2 * b * w1 + b * b * w0), -a * a * (w1 - b * w0), a * a * w0


def _normal_logw(x: NDArray, mu: float, sd: float) -> NDArray:
    lw = -0.5 * ((x - mu) / sd) ** 2
    return lw - logsumexp(lw)
