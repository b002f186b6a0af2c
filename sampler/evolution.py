"""Multi-objective form assembly with pymoo (NSGA-II; NSGA-III as an option).

A genome is the sorted array of a form's pool indices. Every operator returns feasible forms only,
so no objective carries a penalty:

- **sampling**: cell counts from the quota integer program with a random objective, uniform draws
  within cells (as ``stratified``); the first population is random, never seeded with an optimiser's
  or a greedy form;
- **crossover**: the child keeps parent A's cell counts and fills each cell from the parents' items
  in it, items both parents share first (uniform otherwise);
- **mutation**: swap-within-cell moves (an item for another of its cell) and marginal-preserving
  2-exchanges between cells (one item moves to a cell that differs on a set D of coordinates, a
  second item moves the opposite way on D), which let the cell counts themselves evolve. Each move
  is guided by a criterion drawn at random: uniform, or one additive objective (information or
  novelty), with the leaving item the worst of 3 and the entering one of the best free of its cell.

Enemies are repaired in place (an item conflicting with one kept is replaced from its own cell) and
overlap flags are part of the cells, so overlap limits hold because cell counts do.

Objectives (pymoo minimises): -information (mean test information over the target grid),
-novelty, exposure_peak, -coverage. The Pareto set is returned in the diagnostics; one form is
picked by the declared weights (``options.weights``) on objectives min-max normalised over the set.
Hypervolume is pymoo's indicator on objectives normalised to the range spanned by the first
population and the final set (reference point 1.1 on every axis).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

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
        self.tries = 12
        # Each cell's items from best to worst on information (0) and on novelty (1).
        self.ranked = [[m[np.argsort(-v[m], kind="stable")] for m in members]
                       for v in (prep.weight, self.inv_exposure)]
        cells = prep.cells.cells
        self.keys = list(prep.cells.keys)
        self.targets = prep.cells.targets
        coords = [c for c in cells.columns if c != "capacity"]
        # Cells as integer coordinate vectors (quota labels and earlier-form flags).
        self.codes = np.column_stack([pd.factorize(cells[col])[0] for col in coords]) if coords \
            else np.zeros((len(cells), 0), dtype=np.int64)
        self.lookup = {tuple(r.tolist()): k for k, r in enumerate(self.codes)}
        self.n_values = self.codes.max(axis=0) + 1 if len(self.codes) else np.zeros(0, dtype=np.int64)

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
    def repair_enemies(self, x: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
        """Replace, within its cell, each item that conflicts with an item kept before it."""
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
            j = self._draw(self.cell[i], inform, rng, avoid_enemies=True)
            if j is None:  # cell exhausted by enemies: keep (rare; the IP capacity had room)
                inform[i] = True
                continue
            x[pos] = j
            inform[j] = True
        return x

    def _draw(self, c: int, inform: NDArray[np.bool_], rng: np.random.Generator, *, avoid_enemies: bool,
              criterion: int = -1, tries: int | None = None) -> int | None:
        """An item of cell ``c`` not in the form: uniform (criterion -1) or one of the best free ones."""
        m = self.members[c]
        enemies = self.prep.enemies
        if criterion >= 0:
            # Walk the cell from its best item on this criterion; take each free one with prob. 0.7
            # (mostly the best free item, sometimes a lesser one: greedy but not deterministic).
            first = None
            for j in self.ranked[criterion][c]:
                if inform[j] or (avoid_enemies and len(enemies[j]) and inform[enemies[j]].any()):
                    continue
                if first is None:
                    first = int(j)
                if rng.random() < 0.7:
                    return int(j)
            return first
        tries = self.tries if tries is None else tries
        best, best_v = None, -np.inf
        found = 0
        for _ in range(3 * tries):
            j = int(m[rng.integers(len(m))])
            if inform[j] or (avoid_enemies and len(enemies[j]) and inform[enemies[j]].any()):
                continue
            v = (self.prep.weight[j] if criterion == 0 else self.inv_exposure[j] if criterion == 1
                 else 0.0)
            if best is None or v > best_v:
                best, best_v = j, v
            found += 1
            if criterion < 0 or found >= tries:
                break
        if best is not None:
            return best
        free = m[~inform[m]]  # slow path: small or crowded cell
        if avoid_enemies:
            free = np.array([j for j in free if not (len(enemies[j]) and inform[enemies[j]].any())], np.int64)
        return int(free[rng.integers(len(free))]) if len(free) else None

    def _value(self, i: int | NDArray, criterion: int) -> NDArray | float:
        return self.prep.weight[i] if criterion == 0 else self.inv_exposure[i]

    def mutate(self, x: NDArray[np.int64], rng: np.random.Generator, n_moves: int) -> NDArray[np.int64]:
        """``n_moves`` feasible moves; each is guided by a criterion drawn at random (uniform,
        information or novelty): the item to leave is the worst of 3 random ones on it, the item to
        enter one of the best free items of its cell, and a paired move the best of 8 proposals."""
        x = x.copy()
        inform = np.zeros(len(self.cell), dtype=bool)
        inform[x] = True
        for _ in range(n_moves):
            crit = int(rng.integers(-1, 2))  # -1 uniform, 0 information, 1 novelty
            if self.codes.shape[1] and rng.random() < 0.5:
                best = None
                for _ in range(8 if crit >= 0 else 1):
                    prop = self._propose_pair(x, inform, rng, crit)
                    if prop is not None and (best is None or prop[4] > best[4]):
                        best = prop
                if best is not None and (crit < 0 or best[4] > 0):
                    p, q, j, l_item, _ = best
                    inform[[x[p], x[q]]] = False
                    inform[[j, l_item]] = True
                    x[p], x[q] = j, l_item
                    continue
            ps = rng.integers(len(x), size=3 if crit >= 0 else 1)
            p = int(ps[np.argmin(self._value(x[ps], crit))]) if crit >= 0 else int(ps[0])
            i = int(x[p])
            inform[i] = False
            new = self._draw(int(self.cell[i]), inform, rng, avoid_enemies=True, criterion=crit)
            if new is None:
                inform[i] = True
                continue
            x[p] = new
            inform[new] = True
        return np.sort(x)

    def _propose_pair(self, x: NDArray[np.int64], inform: NDArray[np.bool_], rng: np.random.Generator,
                      crit: int) -> tuple[int, int, int, int, float] | None:
        """A marginal-preserving 2-exchange: x[p] (cell c) -> j in cell c2, where c2 is c with one or
        two coordinates (the set D) changed; and x[q] (a cell e that has c2's values on D) -> l in e
        with c's values on D. Every quota marginal and overlap count is unchanged."""
        ps = rng.integers(len(x), size=3 if crit >= 0 else 1)
        p = int(ps[np.argmin(self._value(x[ps], crit))]) if crit >= 0 else int(ps[0])
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
        pick = rng.integers(len(qs), size=3 if crit >= 0 else 1)
        q = int(qs[pick[np.argmin(self._value(x[qs[pick]], crit))]] if crit >= 0 else qs[pick[0]])
        k_item = int(x[q])
        t = self.codes[xc[q]].copy()
        t[diff] = self.codes[c][diff]
        c4 = self.lookup.get(tuple(t.tolist()))
        if c4 is None:
            return None
        inform[i] = inform[k_item] = False
        j = self._draw(c2, inform, rng, avoid_enemies=True, criterion=crit)
        l_item = None
        if j is not None:
            inform[j] = True
            l_item = self._draw(c4, inform, rng, avoid_enemies=True, criterion=crit)
            inform[j] = False
        inform[i] = inform[k_item] = True
        if j is None or l_item is None:
            return None
        gain = 0.0 if crit < 0 else float(self._value(j, crit) + self._value(l_item, crit)
                                         - self._value(i, crit) - self._value(k_item, crit))
        return p, q, j, l_item, gain

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
        return np.sort(self.repair_enemies(take, rng))


def evolve(prep: PreparedPool, spec: FormSpec, rng: np.random.Generator,
           members: list[NDArray[np.int64]], started: float | None = None
           ) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """Run NSGA-II/III; return the form picked by the declared weights and the run's diagnostics.

    Stops after ``options.n_gen`` generations (default 300) or when ``options.time_limit`` seconds
    (default 45, counted from ``started``, e.g. the start of pool preparation) have passed.
    """
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.moo.nsga3 import NSGA3
    from pymoo.core.crossover import Crossover
    from pymoo.core.mutation import Mutation
    from pymoo.core.problem import Problem
    from pymoo.core.sampling import Sampling
    from pymoo.indicators.hv import HV
    from pymoo.util.ref_dirs import get_reference_directions

    from .strategies import draw_stratified

    opts = spec.options_dict
    size = int(spec.size)  # type: ignore[arg-type]
    model = _Model(prep, members, size)
    pop_size = int(opts.get("pop_size", 100))
    n_gen = int(opts.get("n_gen", 300))
    time_limit = float(opts.get("time_limit", 45.0))
    mean_moves = float(opts.get("mutation_moves", 3.0))
    model.tries = int(opts.get("candidate_tries", 12))
    weights = {**DEFAULT_WEIGHTS, **dict(opts.get("weights", ()))}
    unknown = set(weights) - set(OBJECTIVES)
    if unknown:
        from adt.errors import InputError
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
        from adt.errors import InputError
        raise InputError(f"form spec field 'options.algorithm': {algo_name!r} is not nsga2 or nsga3")

    seed = int(rng.integers(2**31 - 1))
    problem = FormProblem()
    start = time.perf_counter()
    budget_start = start if started is None else started
    algorithm.setup(problem, termination=("n_gen", n_gen), seed=seed, verbose=False)
    first_F: NDArray | None = None
    while algorithm.has_next():
        algorithm.next()
        if first_F is None:
            first_F = model.evaluate(np.asarray(algorithm.pop.get("X"), dtype=np.int64))
        if time.perf_counter() - budget_start > time_limit:
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
