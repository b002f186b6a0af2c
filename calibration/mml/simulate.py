"""Seeded Bernoulli responses from known item parameters (recovery tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..data import ResponseSet
from ..irt import ItemParams, prob


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
