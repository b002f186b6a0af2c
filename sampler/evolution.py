"""Multi-objective form assembly with pymoo (NSGA-II; NSGA-III as an option).

A genome is the sorted array of a form's pool indices. Every operator returns feasible forms only,
so no objective carries a penalty:

- **sampling**: cell counts from the quota integer program with a random objective, uniform draws
  within cells (as ``stratified``); the first population is random, never seeded with an optimiser's
  or a greedy form;
- **crossover**: the child keeps parent A's cell counts and fills each cell from the parents' items
  in it, items both parents share first (uniform otherwise) or ranked by a random mix of
  information and novelty;
- **mutation**: a quarter of mutations are uniform: random swaps within a cell and random
  marginal-preserving 2-exchanges between cells. The others climb a criterion drawn at random
  (information, novelty, or a random mix of the two): each move is the best improving one among
  (a) an item swapped for the best free one of its cell, (b) an item moved across an overlap flag
  (into an earlier form only while its limit has room), and (c) a 2x2 count swap: one item leaves
  cell c and one leaves cell e, one enters c' = (e's values on a coordinate set D, c's elsewhere)
  and one enters e' = (c's on D, e's elsewhere), so every quota marginal and overlap count is kept
  while the cell counts themselves move; entering items are the best free ones of their cells,
  leaving ones the worst of theirs. Candidates are scored in bulk from per-cell best-to-add and
  worst-to-drop values (``_FormState``). This is local improvement of each offspring (a memetic
  step); nothing is seeded from an optimiser or a greedy form.

Enemies are kept apart by construction (an entering item never has an enemy in the form; crossover
repairs a conflict from the item's own cell, and keeps parent A when a cell has no enemy-free item
left) and overlap flags are part of the cells, so overlap limits hold because cell counts do.

Objectives (pymoo minimises): -information (mean test information over the target grid),
-novelty, exposure_peak, -coverage. The Pareto set is returned in the diagnostics; one form is
picked by the declared weights (``options.weights``) on objectives min-max normalised over the set.
Hypervolume is pymoo's indicator on objectives normalised to the range spanned by the first
population and the final set (reference point 1.1 on every axis).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .cells import draw_stratified
from .pool import PreparedPool
from .spec import FormSpec

OBJECTIVES = ("information", "novelty", "exposure_peak", "coverage")
SIGN = np.array([-1.0, -1.0, 1.0, -1.0])  # to minimise
DEFAULT_WEIGHTS = {"information": 1.0, "novelty": 0.5, "exposure_peak": 0.25, "coverage": 0.25}


class _Model:
    """Arrays the operators share (read-only)."""

    def __init__(self, prep: PreparedPool, members: list[NDArray[np.int64]], size: int) -> None:
        assert prep.cells is not None
        self.prep = prep
        self.size = size
        self.members = members
        self.cell = prep.cells.cell_of_item
        self.n_cells = len(members)
        self.has_enemy = np.array([len(e) > 0 for e in prep.enemies], dtype=bool)
        self.inv_exposure = 1.0 / (1.0 + prep.exposure)
        n = len(prep.weight)
        self.info_rank = np.argsort(np.argsort(prep.weight, kind="stable"), kind="stable") / max(n - 1, 1)
        self.novelty_rank = np.argsort(np.argsort(self.inv_exposure, kind="stable"), kind="stable") / max(n - 1, 1)
        self.by_cell = np.concatenate(members)  # items grouped by cell (every cell has items)
        self.cell_sorted = self.cell[self.by_cell]
        self.cell_start = np.r_[0, np.cumsum([len(m) for m in members])]
        self.tries = 12
        self.p_uniform = 0.25
        self.anchors = 16
        self.climb = 4
        self.info_z = _zscore(prep.weight)
        self.novelty_z = _zscore(self.inv_exposure)
        cells = prep.cells.cells
        coords = [c for c in cells.columns if c != "capacity"]
        # Cells as integer coordinate vectors (quota labels and earlier-form flags).
        self.codes = np.column_stack([pd.factorize(cells[col])[0] for col in coords]).astype(np.int64) \
            if coords else np.zeros((len(cells), 0), dtype=np.int64)
        self.lookup = {tuple(r.tolist()): k for k, r in enumerate(self.codes)}
        self.n_values = self.codes.max(axis=0) + 1 if len(self.codes) else np.zeros(0, dtype=np.int64)
        self._count_moves(coords)

    def _count_moves(self, coords: list[str]) -> None:
        """Tables for the quota-preserving count moves between cells.

        A cell is a point of the grid of coordinate values; ``flat`` is its mixed-radix index. A
        2x2 swap on a coordinate set D takes one item from cell c and one from cell e and adds one
        to c' = (e on D, c elsewhere) and one to e' = (c on D, e elsewhere): every coordinate's
        marginal is unchanged (quotas and overlap counts alike). ``flat(c') = rest_D[c] + part_D[e]``,
        so all partners of a set of anchors come from one outer sum per D. D ranges over sets of
        one or two coordinates (D and its complement give the same move; one is kept). An overlap
        flag (an inequality, not a quota) may also change alone: c -> c with the flag flipped.
        """
        K = self.codes.shape[1]
        stride = np.ones(K, dtype=np.int64)
        for k in range(K - 2, -1, -1):
            stride[k] = stride[k + 1] * int(self.n_values[k + 1])
        self.flat = self.codes @ stride
        self.flat_order = np.argsort(self.flat, kind="stable")
        self.flat_sorted = self.flat[self.flat_order]
        grid = int(np.prod(self.n_values.astype(object))) if K else 1
        self.table: NDArray[np.int64] | None = None
        if grid <= 4_000_000:  # a dense grid -> cell table is the fast lookup; else binary search
            self.table = np.full(grid, self.n_cells, dtype=np.int64)
            self.table[self.flat] = np.arange(self.n_cells)
        seen: set[tuple[int, ...]] = set()
        self.swap_sets: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        for r in (1, 2):
            for D in itertools.combinations(range(K), r):
                comp = tuple(k for k in range(K) if k not in D)
                if not comp or min(D, comp) in seen:
                    continue
                seen.add(min(D, comp))
                part = self.codes[:, list(D)] @ stride[list(D)]
                self.swap_sets.append((part, self.flat - part))
        flags = [k for k, c in enumerate(coords) if c.startswith("in:")]
        cells = self.prep.cells.cells  # type: ignore[union-attr]
        self.in_forms = np.column_stack([cells[coords[k]].to_numpy(dtype=bool) for k in flags]) if flags \
            else np.zeros((self.n_cells, 0), dtype=bool)
        self.overlap_caps = np.asarray(self.prep.cells.overlap_caps, dtype=np.int64)  # type: ignore[union-attr]
        self.flips = [(f, self.cell_at(self.flat + (1 - 2 * self.codes[:, k]) * stride[k]))
                      for f, k in enumerate(flags) if self.n_values[k] == 2]

    def cell_at(self, flat: NDArray[np.int64]) -> NDArray[np.int64]:
        """Cell index of each grid point; ``n_cells`` (a sentinel) where no item lies."""
        if self.table is not None:
            return self.table[flat]
        i = np.minimum(np.searchsorted(self.flat_sorted, flat), len(self.flat_sorted) - 1)
        return np.where(self.flat_sorted[i] == flat, self.flat_order[i], self.n_cells)

    # -- objectives ------------------------------------------------------------------------------
    def evaluate(self, X: NDArray[np.int64]) -> NDArray[np.float64]:
        p = self.prep
        info = p.weight[X].sum(axis=1)
        nov = self.inv_exposure[X].mean(axis=1)
        k = max(1, int(np.ceil(0.1 * X.shape[1])))
        ex = p.exposure[X]
        peak = np.partition(ex, X.shape[1] - k, axis=1)[:, -k:].mean(axis=1)
        cov = np.zeros(len(X))
        used = 0
        for codes, n_vals in zip(p.coverage_codes, p.coverage_sizes, strict=True):
            if n_vals < 2:
                continue
            c = codes[X]
            rows = np.repeat(np.arange(len(X)), X.shape[1])
            flat = c.ravel()
            ok = flat >= 0
            counts = np.zeros((len(X), n_vals))
            np.add.at(counts, (rows[ok], flat[ok]), 1.0)
            tot = counts.sum(axis=1, keepdims=True)
            q = np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                h = -np.where(q > 0, q * np.log(q), 0.0).sum(axis=1)
            cov += h / np.log(min(n_vals, X.shape[1]) if X.shape[1] > 1 else 2)
            used += 1
        if used:
            cov /= used
        return np.column_stack([info, nov, peak, cov]) * SIGN

    # -- feasibility-keeping moves ---------------------------------------------------------------
    def repair_enemies(self, x: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64] | None:
        """Replace, within its cell, each item that conflicts with an item kept before it; ``None``
        when a cell has no enemy-free item left (the caller then keeps a feasible parent)."""
        if not self.has_enemy[x].any():
            return x
        x = x.copy()
        inform = np.zeros(len(self.cell), dtype=bool)
        inform[x] = True
        enemies = self.prep.enemies
        for pos in np.flatnonzero(self.has_enemy[x]):
            i = x[pos]
            if not inform[enemies[i]].any():
                continue
            inform[i] = False
            j = self._draw(int(self.cell[i]), inform, rng)
            if j is None:  # cell exhausted by enemies (rare)
                return None
            x[pos] = j
            inform[j] = True
        return x

    def _draw(self, c: int, inform: NDArray[np.bool_], rng: np.random.Generator) -> int | None:
        """A uniformly drawn item of cell ``c`` that is not in the form and has no enemy in it."""
        m = self.members[c]
        enemies = self.prep.enemies
        for _ in range(3 * self.tries):
            j = int(m[rng.integers(len(m))])
            if not (inform[j] or (len(enemies[j]) and inform[enemies[j]].any())):
                return j
        free = m[~inform[m]]  # slow path: small or crowded cell
        free = np.array([j for j in free if not (len(enemies[j]) and inform[enemies[j]].any())], np.int64)
        return int(free[rng.integers(len(free))]) if len(free) else None

    def criterion(self, rng: np.random.Generator) -> NDArray[np.float64] | None:
        """The value a guided mutation climbs: information, novelty, or a random mix of the two
        (z-scored); ``None`` for a uniform (unguided) mutation."""
        u = rng.random()
        if u < self.p_uniform:
            return None
        u = (u - self.p_uniform) / (1.0 - self.p_uniform)
        if u < 0.4:
            return self.prep.weight
        if u < 0.6:
            return self.inv_exposure
        lam = rng.random()
        return lam * self.info_z + (1.0 - lam) * self.novelty_z

    def mutate(self, x: NDArray[np.int64], rng: np.random.Generator, n_moves: int) -> NDArray[np.int64]:
        """``n_moves`` feasible moves. A uniform mutation makes random moves (see ``_uniform_move``);
        a guided one climbs a criterion (``criterion``): each move is the best improving one among
        within-cell swaps, overlap-flag moves and marginal-preserving 2x2 count swaps anchored at a
        random set of occupied cells (``_FormState.best_move``)."""
        v = self.criterion(rng)
        if v is None:
            x = x.copy()
            inform = np.zeros(len(self.cell), dtype=bool)
            inform[x] = True
            for _ in range(n_moves):
                self._uniform_move(x, inform, rng)
            return np.sort(x)
        state = _FormState(self, x, v)
        for _ in range(n_moves * self.climb):
            occupied = np.flatnonzero(state.count > 0)
            anchors = occupied if len(occupied) <= self.anchors else \
                np.sort(rng.choice(occupied, self.anchors, replace=False))
            move = state.best_move(anchors)
            if move is not None:
                state.apply(move)
            elif len(anchors) == len(occupied):  # every anchor tried: a local optimum
                break
        return np.sort(state.x)

    def _uniform_move(self, x: NDArray[np.int64], inform: NDArray[np.bool_], rng: np.random.Generator) -> None:
        """One random move in place: half the time a marginal-preserving 2-exchange between cells,
        else an item swapped for a random free one of its cell."""
        if self.codes.shape[1] and rng.random() < 0.5:
            prop = self._propose_pair(x, inform, rng)
            if prop is not None:
                p, q, j, l_item = prop
                inform[[x[p], x[q]]] = False
                inform[[j, l_item]] = True
                x[p], x[q] = j, l_item
                return
        p = int(rng.integers(len(x)))
        i = int(x[p])
        inform[i] = False
        new = self._draw(int(self.cell[i]), inform, rng)
        if new is None:
            inform[i] = True
            return
        x[p] = new
        inform[new] = True

    def _propose_pair(self, x: NDArray[np.int64], inform: NDArray[np.bool_], rng: np.random.Generator
                      ) -> tuple[int, int, int, int] | None:
        """A random marginal-preserving 2-exchange: x[p] (cell c) -> j in cell c2, where c2 is c with
        one or two coordinates (the set D) changed; and x[q] (a cell e that has c2's values on D) -> l
        in e with c's values on D. Every quota marginal and overlap count is unchanged."""
        p = int(rng.integers(len(x)))
        i = int(x[p])
        c = int(self.cell[i])
        # Target cell: c with one coordinate changed (sometimes two), so moves stay local.
        t = self.codes[c].copy()
        for _ in range(1 if rng.random() < 0.7 else 2):
            k = int(rng.integers(len(t)))
            t[k] = int(rng.integers(self.n_values[k]))
        found = self.lookup.get(tuple(t.tolist()))
        if found is None:
            return None
        c2 = int(found)
        diff = self.codes[c2] != self.codes[c]
        if not diff.any():
            return None
        xc = self.cell[x]
        qs = np.flatnonzero((self.codes[xc][:, diff] == self.codes[c2][diff]).all(axis=1))
        if len(qs) == 0:
            return None
        q = int(qs[rng.integers(len(qs))])
        k_item = int(x[q])
        t = self.codes[xc[q]].copy()
        t[diff] = self.codes[c][diff]
        c4 = self.lookup.get(tuple(t.tolist()))
        if c4 is None:
            return None
        inform[i] = inform[k_item] = False
        j = self._draw(c2, inform, rng)
        l_item = None
        if j is not None:
            inform[j] = True
            l_item = self._draw(c4, inform, rng)
            inform[j] = False
        inform[i] = inform[k_item] = True
        if j is None or l_item is None:
            return None
        return p, q, j, l_item

    def crossover(self, a: NDArray[np.int64], b: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
        """A's cell counts, filled from the parents' items in each cell.

        Half the children keep shared items first and pick the rest uniformly; the other half rank
        the parents' items by a random mix of the two additive objectives (information and novelty,
        each as a within-pool rank), so recombination can move along the whole front.
        """
        union = np.union1d(a, b)
        if rng.random() < 0.5:
            shared = np.isin(union, a) & np.isin(union, b)
            key = np.where(shared, 0.0, 1.0) + rng.random(len(union))
        else:
            lam = rng.random()
            key = -(lam * self.info_rank[union] + (1 - lam) * self.novelty_rank[union]) + 1e-3 * rng.random(len(union))
        cells = self.cell[union]
        order = np.lexsort((key, cells))
        cells_sorted = cells[order]
        starts = np.searchsorted(cells_sorted, cells_sorted, side="left")
        rank = np.arange(len(order)) - starts
        need = np.bincount(self.cell[a], minlength=self.n_cells)
        take = union[order][rank < need[cells_sorted]]
        child = self.repair_enemies(take, rng)
        return a.copy() if child is None else np.sort(child)


def _zscore(v: NDArray[np.float64]) -> NDArray[np.float64]:
    sd = float(v.std())
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


class _FormState:
    """One form under guided local moves on a value ``v`` per item.

    Keeps, per cell, the best item that may enter (not in the form, no enemy in it) and the worst
    item of the form; a move's gain is the value it adds minus the value it removes, so the best
    move over many candidate count changes is a few vector operations. Every applied move keeps
    size, quotas, overlap limits and enemies (an entering item never conflicts with the form).
    """

    def __init__(self, model: _Model, x: NDArray[np.int64], v: NDArray[np.float64]) -> None:
        self.m, self.v = model, v
        self.x = x.copy()
        self.x_cell = model.cell[self.x]
        n, C = len(model.cell), model.n_cells
        self.inform = np.zeros(n, dtype=bool)
        self.inform[self.x] = True
        self.blocked = np.zeros(n, dtype=np.int64)  # enemies in the form, per item
        for i in self.x[model.has_enemy[self.x]]:
            self.blocked[model.prep.enemies[i]] += 1
        self.count = np.bincount(self.x_cell, minlength=C)
        self.used = self.count @ model.in_forms.astype(np.int64)  # items from each earlier form
        # One slot past the cells: the sentinel for grid points without items.
        self.add_val = np.full(C + 1, -np.inf)
        self.add_item = np.full(C + 1, -1, dtype=np.int64)
        self.drop_val = np.full(C + 1, np.inf)
        self.drop_pos = np.full(C + 1, -1, dtype=np.int64)
        self._refresh_all()

    def _refresh_all(self) -> None:
        m = self.m
        order = m.by_cell
        ok = ~self.inform[order] & (self.blocked[order] == 0)
        vals = np.where(ok, self.v[order], -np.inf)
        best = np.maximum.reduceat(vals, m.cell_start[:-1])
        hit = np.flatnonzero(vals == best[m.cell_sorted])
        seg, first = np.unique(m.cell_sorted[hit], return_index=True)
        self.add_val[:-1] = best
        self.add_item[seg] = np.where(np.isfinite(best[seg]), order[hit[first]], -1)
        xv = self.v[self.x]
        o = np.lexsort((xv, self.x_cell))
        seg, first = np.unique(self.x_cell[o], return_index=True)
        self.drop_val[seg] = xv[o[first]]
        self.drop_pos[seg] = o[first]

    def _refresh(self, c: int) -> None:
        mem = self.m.members[c]
        vals = np.where(~self.inform[mem] & (self.blocked[mem] == 0), self.v[mem], -np.inf)
        k = int(np.argmax(vals))
        self.add_val[c] = vals[k]
        self.add_item[c] = mem[k] if np.isfinite(vals[k]) else -1
        pos = np.flatnonzero(self.x_cell == c)
        if len(pos) == 0:
            self.drop_val[c], self.drop_pos[c] = np.inf, -1
            return
        k = int(np.argmin(self.v[self.x[pos]]))
        self.drop_val[c], self.drop_pos[c] = self.v[self.x[pos[k]]], pos[k]

    def exchange(self, p: int, j: int) -> None:
        """Replace the item at position ``p`` by ``j`` and refresh the cells this touches."""
        m = self.m
        i = int(self.x[p])
        ci, cj = int(m.cell[i]), int(m.cell[j])
        self.x[p], self.x_cell[p] = j, cj
        self.inform[i], self.inform[j] = False, True
        self.count[ci] -= 1
        self.count[cj] += 1
        self.used += m.in_forms[cj].astype(np.int64) - m.in_forms[ci]
        touched = {ci, cj}
        for item, step in ((i, -1), (j, 1)):
            e = m.prep.enemies[item]
            if len(e):
                self.blocked[e] += step
                touched.update(m.cell[e].tolist())
        for c in sorted(touched):
            self._refresh(c)

    def best_move(self, anchors: NDArray[np.int64]) -> tuple[int, ...] | None:
        """The best improving move that takes an item from an anchor cell: ``(c, t)`` (an item of c
        for one of t: t = c, or c with an overlap flag flipped) or ``(c, c', e, e')`` (a 2x2 count
        swap); ``None`` when no such move gains."""
        m, A = self.m, anchors
        best_gain = 0.0
        best: tuple[int, ...] | None = None
        gain = self.add_val[A] - self.drop_val[A]
        k = int(np.argmax(gain))
        if gain[k] > best_gain:
            best_gain, best = float(gain[k]), (int(A[k]), int(A[k]))
        for f, flip in m.flips:
            t = flip[A]
            gain = self.add_val[t] - self.drop_val[A]
            if self.used[f] >= m.overlap_caps[f]:  # full: no move into the earlier form
                into = ~m.in_forms[A, f] & (t < m.n_cells)
                gain = np.where(into, -np.inf, gain)
            k = int(np.argmax(gain))
            if gain[k] > best_gain:
                best_gain, best = float(gain[k]), (int(A[k]), int(t[k]))
        occ = np.flatnonzero(self.count > 0)
        drop_a, drop_o = self.drop_val[A][:, None], self.drop_val[occ][None, :]
        for part, rest in m.swap_sets:
            pa, po, ra, ro = part[A][:, None], part[occ][None, :], rest[A][:, None], rest[occ][None, :]
            cp, ep = m.cell_at(ra + po), m.cell_at(ro + pa)
            gain = self.add_val[cp] + self.add_val[ep] - drop_a - drop_o
            gain = np.where((pa != po) & (ra != ro), gain, -np.inf)  # a real move, not a no-op
            k = int(np.argmax(gain))
            a, o = divmod(k, len(occ))
            if gain[a, o] > best_gain:
                best_gain, best = float(gain[a, o]), (int(A[a]), int(cp[a, o]), int(occ[o]), int(ep[a, o]))
        return best

    def apply(self, move: tuple[int, ...]) -> None:
        if len(move) == 2:
            c, t = move
            self.exchange(int(self.drop_pos[c]), int(self.add_item[t]))
            return
        c, cp, e, ep = move
        pc, pe = int(self.drop_pos[c]), int(self.drop_pos[e])
        i = int(self.x[pc])
        self.exchange(pc, int(self.add_item[cp]))
        if self.add_item[ep] < 0:  # the first entering item was the last free one's enemy: undo
            self.exchange(pc, i)
            return
        self.exchange(pe, int(self.add_item[ep]))


def evolve(prep: PreparedPool, spec: FormSpec, rng: np.random.Generator,
           members: list[NDArray[np.int64]], started: float | None = None
           ) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """Run NSGA-II/III; return the form picked by the declared weights and the run's diagnostics.

    Stops after ``options.n_gen`` generations (default 300), when ``options.time_limit`` seconds
    (default 45, counted from ``started``, e.g. the start of pool preparation) have passed, or when
    the search has stalled: over the last ``options.stall_generations`` generations (default 40;
    0 = never) neither the best value of any optimised objective nor the best weighted sum (the
    declared weights, objectives scaled by the first population's range) improved by more than
    ``options.stall_tol`` (default 1e-3) of its range over the first population and the current
    Pareto set.
    """
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.core.crossover import Crossover
    from pymoo.core.mutation import Mutation
    from pymoo.core.problem import Problem
    from pymoo.core.sampling import Sampling
    from pymoo.indicators.hv import HV
    from pymoo.util.ref_dirs import get_reference_directions

    opts = spec.options_dict
    size = int(spec.size)  # type: ignore[arg-type]
    model = _Model(prep, members, size)
    pop_size = int(opts.get("pop_size", 100))
    n_gen = int(opts.get("n_gen", 300))
    time_limit = float(opts.get("time_limit", 45.0))
    stall = int(opts.get("stall_generations", 40))
    stall_tol = float(opts.get("stall_tol", 1e-3))
    mean_moves = float(opts.get("mutation_moves", 3.0))
    model.tries = int(opts.get("candidate_tries", 12))
    model.anchors = int(opts.get("anchors", 16))
    model.climb = int(opts.get("climb", 4))
    weights = {**DEFAULT_WEIGHTS, **dict(opts.get("weights", ()))}
    unknown = set(weights) - set(OBJECTIVES)
    if unknown:
        from adtbase.errors import InputError
        raise InputError(f"form spec field 'options.weights': unknown objective(s) {sorted(unknown)}; "
                         f"known: {list(OBJECTIVES)}")

    active = [OBJECTIVES.index(o) for o in opts.get("objectives", OBJECTIVES)]

    class FormProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=size, n_obj=len(active), xl=0, xu=len(prep) - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            out["F"] = model.evaluate(np.asarray(X, dtype=np.int64))[:, active]

    class CellSampling(Sampling):
        def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
            return np.array([np.sort(draw_stratified(prep, random_state, members)[0]) for _ in range(n_samples)])

    class CellCrossover(Crossover):
        def __init__(self) -> None:
            super().__init__(n_parents=2, n_offsprings=2, prob=0.9)

        def _do(self, problem, X, *args, random_state=None, **kwargs):
            X = np.asarray(X, dtype=np.int64)
            out = np.empty_like(X)
            for k in range(X.shape[1]):
                out[0, k] = model.crossover(X[0, k], X[1, k], random_state)
                out[1, k] = model.crossover(X[1, k], X[0, k], random_state)
            return out

    class CellMutation(Mutation):
        def __init__(self) -> None:
            super().__init__(prob=1.0)

        def _do(self, problem, X, *args, random_state=None, **kwargs):
            X = np.asarray(X, dtype=np.int64)
            moves = 1 + random_state.poisson(max(mean_moves - 1.0, 0.0), size=len(X))
            return np.array([model.mutate(x, random_state, int(m)) for x, m in zip(X, moves, strict=True)])

    algo_name = str(opts.get("algorithm", "nsga2")).lower()
    common = dict(sampling=CellSampling(), crossover=CellCrossover(), mutation=CellMutation(),
                  eliminate_duplicates=True)
    if algo_name == "nsga3":
        ref_dirs = get_reference_directions("das-dennis", len(OBJECTIVES), n_partitions=int(opts.get("partitions", 5)))
        algorithm: Any = NSGA3(ref_dirs=ref_dirs, pop_size=max(pop_size, len(ref_dirs)), **common)
    elif algo_name == "nsga2":
        algorithm = NSGA2(pop_size=pop_size, **common)
    else:
        from adtbase.errors import InputError
        raise InputError(f"form spec field 'options.algorithm': {algo_name!r} is not nsga2 or nsga3")

    seed = int(rng.integers(2**31 - 1))
    problem = FormProblem()
    start = time.perf_counter()
    budget_start = start if started is None else started
    algorithm.setup(problem, termination=("n_gen", n_gen), seed=seed, verbose=False)
    first_F: NDArray | None = None
    stopped_by = "n_gen"
    w_active = np.array([float(weights.get(OBJECTIVES[k], 0.0)) for k in active])
    history: list[NDArray] = []  # per generation: each objective's best, and the best weighted sum
    while algorithm.has_next():
        algorithm.next()
        if first_F is None:
            first_F = model.evaluate(np.asarray(algorithm.pop.get("X"), dtype=np.int64))
            scale0 = np.ptp(first_F[:, active], axis=0)
            scale0 = np.where(scale0 > 0, scale0, 1.0)
        Fa = np.asarray(algorithm.opt.get("F"), dtype=float)
        history.append(np.r_[Fa.min(axis=0), (Fa / scale0 @ w_active).min()])
        if time.perf_counter() - budget_start > time_limit:
            stopped_by = "time_limit"
            break
        if stall and len(history) > stall and algorithm.has_next():
            span = np.ptp(np.vstack([first_F[:, active], Fa]), axis=0)
            span = np.where(span > 0, span, 1.0)
            span = np.r_[span, max(float(w_active @ (span / scale0)), 1e-12)]
            if ((history[-stall - 1] - history[-1]) / span <= stall_tol).all():
                stopped_by = "stall"
                break
    opt = algorithm.opt
    X = np.asarray(opt.get("X"), dtype=np.int64)
    F = model.evaluate(X)  # every objective, also those not optimised
    order = np.lexsort(F.T[::-1])  # deterministic order of the Pareto set
    X, F = X[order], F[order]
    lo = F.min(axis=0)
    span = np.where(F.max(axis=0) - lo > 0, F.max(axis=0) - lo, 1.0)
    w = np.array([float(weights.get(k, 0.0)) for k in OBJECTIVES])
    pick = int(np.argmin(((F - lo) / span * w).sum(axis=1)))
    both = np.vstack([first_F if first_F is not None else F, F])
    ideal, nadir = both.min(axis=0), both.max(axis=0)
    rng_span = np.where(nadir - ideal > 0, nadir - ideal, 1.0)
    hv = HV(ref_point=np.full(len(active), 1.1))
    first = first_F if first_F is not None else F
    diag = {
        "algorithm": algo_name, "generations": int(algorithm.n_gen - 1 if algorithm.n_gen else 0),
        "stopped_by": stopped_by,
        "evaluations": int(algorithm.evaluator.n_eval), "pareto_size": int(len(X)),
        "objectives_optimised": [OBJECTIVES[k] for k in active],
        "hypervolume": float(hv(((F - ideal) / rng_span)[:, active])),
        "hypervolume_first_population": float(hv(((first - ideal) / rng_span)[:, active])),
        "pareto_objectives": [dict(zip(OBJECTIVES, (f * SIGN).round(6).tolist(), strict=True)) for f in F],
        "pareto_set": [[str(prep.item_ids[i]) for i in x] for x in X],
        "weights": {k: float(weights.get(k, 0.0)) for k in OBJECTIVES}, "pymoo_seed": seed,
        "evolve_time_s": round(time.perf_counter() - start, 3),
    }
    return rng.permutation(X[pick]), diag
