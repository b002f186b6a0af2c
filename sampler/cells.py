"""Cells of a prepared pool (the quota cross-classes) and uniform draws within them.

Shared by the strategies (``stratified`` draws, ``milp``'s candidate list per cell) and the evolutionary
search (``sampler.evolution`` seeds its population with stratified draws); a module of its own so that
``strategies`` and ``evolution`` both import it and neither imports the other.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from adtbase.errors import QuotaInfeasible

from .pool import PreparedPool
from .quotas import solve_cell_counts


def cell_members(prep: PreparedPool) -> list[NDArray[np.int64]]:
    """Pool indices of each cell, ascending."""
    assert prep.cells is not None
    order = np.argsort(prep.cells.cell_of_item, kind="stable")
    bounds = np.searchsorted(prep.cells.cell_of_item[order], np.arange(len(prep.cells.cells) + 1))
    return [order[bounds[k]:bounds[k + 1]] for k in range(len(prep.cells.cells))]


def fill_cells(prep: PreparedPool, members: list[NDArray[np.int64]], counts: NDArray[np.int64],
               rng: np.random.Generator, preferred: list[NDArray[np.int64]] | None = None,
               blocked: NDArray[np.bool_] | None = None) -> tuple[list[NDArray[np.int64]], NDArray[np.int64]]:
    """Draw ``counts[c]`` items uniformly from each cell, skipping enemies of items already taken.

    ``preferred[c]`` items (in the given order) are tried first. Returns the chosen items per cell and
    the shortfall per cell (non-zero only when enemies exhaust a cell).
    """
    blocked = np.zeros(len(prep), dtype=bool) if blocked is None else blocked.copy()
    chosen: list[NDArray[np.int64]] = [np.zeros(0, np.int64)] * len(members)
    short = np.zeros(len(members), dtype=np.int64)
    for c in rng.permutation(len(members)):
        need = int(counts[c])
        if need == 0:
            continue
        cand = members[c][rng.permutation(len(members[c]))]
        if preferred is not None and len(preferred[c]):
            cand = np.concatenate([preferred[c], cand[~np.isin(cand, preferred[c])]])
        take: list[int] = []
        for i in cand:
            if blocked[i]:
                continue
            take.append(int(i))
            blocked[i] = True
            blocked[prep.enemies[i]] = True
            if len(take) == need:
                break
        chosen[c] = np.array(take, dtype=np.int64)
        short[c] = need - len(take)
    return chosen, short


def draw_stratified(prep: PreparedPool, rng: np.random.Generator, members: list[NDArray[np.int64]],
                    tries: int = 8) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Random cell counts meeting every marginal (IP with random objective) and uniform draws within."""
    assert prep.cells is not None
    cap = prep.cells.capacity.copy()
    for _ in range(tries):
        counts = solve_cell_counts(prep.cells, objective=rng.random(len(cap)), capacity=cap)
        chosen, short = fill_cells(prep, members, counts, rng)
        if not short.any():
            return np.concatenate(chosen), counts
        cap = np.minimum(cap, counts - short + (cap - counts) // 2)  # enemies thinned these cells
    raise QuotaInfeasible("form spec is infeasible once enemy pairs are kept apart: cells "
                          + ", ".join(prep.cells.describe_cell(int(c)) for c in np.flatnonzero(short)[:10]))
