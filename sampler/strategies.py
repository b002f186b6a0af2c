"""Form assembly strategies: one interface (``Sampler.sample``), one registry.

- ``all``: every eligible item (full mode; module mode with ``include`` filters); of an enemy pair
  only the first by item id stays.
- ``random``: simple random sample of ``size`` eligible items; ignores quotas (the raw baseline),
  keeps overlap limits and enemies.
- ``stratified``: meets every marginal quota exactly; cell counts from the integer program with a
  random objective, then uniform draws within cells.
- ``nsga2``: multi-objective evolutionary search (``sampler.evolution``).
- ``milp``: exact assembly, maximum information over the target abilities (the yardstick).

Every sized strategy except ``random`` meets quotas exactly; all keep overlap limits and enemies.
"""

from __future__ import annotations

import difflib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from adtbase.errors import InputError, QuotaInfeasible

from .cells import cell_members, draw_stratified
from .pool import PreparedPool, prepare
from .quotas import marginal_counts, solve_cell_counts
from .spec import FormSpec


@dataclass(frozen=True)
class FormDraft:
    """A sampled form before the bank stores it."""

    item_ids: tuple[str, ...]
    strategy: str
    objectives: dict[str, float]
    n_uncalibrated: int
    diagnostics: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    pretest_ids: tuple[str, ...] = ()   # unscored items placed among the others (``sampler.pretest``)
    n_stand_in: int = 0                 # pretest-stage items scored as operational ones (young bank)
    # No content hash here: a form's hash is computed where it is stored, over the bank snapshot and the
    # calibration too (which the sampler does not see).


class Sampler(ABC):
    """A form assembly strategy."""

    name: ClassVar[str]
    meets_quotas: ClassVar[bool] = True
    needs_size: ClassVar[bool] = True

    def sample(self, pool: pd.DataFrame, spec: FormSpec, rng: np.random.Generator | None = None) -> FormDraft:
        """Draw one form from the pool frame; ``rng`` defaults to one seeded by ``spec.seed``. A spec with a
        pretest part: the operational part by this strategy, then the pretest items (``sampler.pretest``)."""
        from .pretest import seed_pretest

        if self.needs_size and spec.size is None:
            raise InputError(f"form spec field 'size': strategy {self.name!r} needs a form size")
        rng = rng if rng is not None else np.random.default_rng(spec.seed)
        pretest_rngs = rng.spawn(2)  # before the operational draw, which they leave as it was without them
        _, draft = self.sample_pool(pool, spec, rng)
        return seed_pretest(pool, spec, draft, *pretest_rngs)

    def sample_pool(self, pool: pd.DataFrame, spec: FormSpec, rng: np.random.Generator, *,
                    run_spec: FormSpec | None = None, check: Callable[[PreparedPool], None] | None = None
                    ) -> tuple[PreparedPool, FormDraft]:
        """The operational part from the pool frame: ``prepare`` (stages and the young-bank rule), a caller's
        ``check`` of the prepared pool, then the draw (by ``run_spec``, default ``spec.operational()``). A young
        bank's least widened pool that enemies make infeasible is widened to every pretest item and drawn again
        (the same steps on a rebuild, so the same form)."""
        start = time.perf_counter()
        op = spec.operational()
        size = op.size if self.needs_size else None
        prep = prepare(pool, op, size=size)
        try:
            if check is not None:
                check(prep)
            return prep, self.sample_prepared(prep, run_spec or op, rng, _start=start)
        except QuotaInfeasible:
            if prep.stand_in is None:
                raise
        prep = prepare(pool, op, size=size, widen="all")
        if check is not None:
            check(prep)
        return prep, self.sample_prepared(prep, run_spec or op, rng, _start=start)

    def sample_prepared(self, prep: PreparedPool, spec: FormSpec, rng: np.random.Generator | None = None,
                        *, _start: float | None = None) -> FormDraft:
        """Draw from a pool already prepared for ``spec`` (``pool.prepare``): reuse across draws. It draws the
        operational part (``spec.operational()``); ``sample`` adds a pretest part."""
        spec = spec.operational()
        rng = rng if rng is not None else np.random.default_rng(spec.seed)
        start = time.perf_counter() if _start is None else _start
        if self.needs_size and spec.size is None:
            raise InputError(f"form spec field 'size': strategy {self.name!r} needs a form size")
        if self.needs_size and prep.cells is None:
            raise InputError("pool was prepared without a form size; prepare(pool, spec) with spec.size set")
        self._t0 = start  # nsga2's time budget counts from here (pool preparation included)
        if self.needs_size and spec.size is not None and spec.size > len(prep):
            raise QuotaInfeasible(f"form spec is infeasible: form size {spec.size}: only {len(prep)} "
                                  f"eligible items")
        idx, diag = self._select(prep, spec, rng)
        idx = np.asarray(idx, dtype=np.int64)
        diag = {"solve_time_s": round(time.perf_counter() - start, 4), "n_eligible": len(prep),
                "n_enemy_pairs": prep.n_enemy_pairs, **diag}
        n_stand_in = 0 if prep.stand_in is None else int(prep.stand_in[idx].sum())
        return FormDraft(tuple(str(prep.item_ids[i]) for i in idx), self.name, form_objectives(prep, idx),
                         int(prep.uncalibrated[idx].sum()), diag, spec.seed, n_stand_in=n_stand_in)

    @abstractmethod
    def _select(self, prep: PreparedPool, spec: FormSpec, rng: np.random.Generator
                ) -> tuple[NDArray[np.int64], dict[str, Any]]:
        """Pool indices of the form, in presentation order, and diagnostics."""


# -- objectives ------------------------------------------------------------------------------------
def form_objectives(prep: PreparedPool, idx: NDArray[np.int64]) -> dict[str, float]:
    """Every objective a strategy may optimise, for reporting (higher is better except exposure_peak)."""
    if len(idx) == 0:
        return {"information": 0.0, "information_min": 0.0, "novelty": 0.0, "exposure_peak": 0.0,
                "coverage": 0.0, "mean_exposure": 0.0}
    info = prep.info[idx].sum(axis=0)
    return {"information": float(info.mean()), "information_min": float(info.min()),
            "novelty": novelty(prep.exposure[idx]), "exposure_peak": exposure_peak(prep.exposure[idx]),
            "coverage": coverage(prep, idx), "mean_exposure": float(prep.exposure[idx].mean())}


def novelty(exposure: NDArray) -> float:
    """Mean of 1 / (1 + exposure): 1 when no item was ever shown or published."""
    return float(np.mean(1.0 / (1.0 + exposure))) if len(exposure) else 0.0


def exposure_peak(exposure: NDArray) -> float:
    """Mean exposure of the form's 10% most exposed items (no item reused heavily; distinct from the mean)."""
    if len(exposure) == 0:
        return 0.0
    k = max(1, int(np.ceil(0.1 * len(exposure))))
    return float(np.mean(np.partition(exposure, len(exposure) - k)[-k:]))


def coverage(prep: PreparedPool, idx: NDArray[np.int64]) -> float:
    """Mean normalised Shannon entropy of the coverage keys' values over the form (1 = evenly spread)."""
    vals = []
    for codes, n_vals in zip(prep.coverage_codes, prep.coverage_sizes, strict=True):
        if n_vals < 2:
            continue
        c = codes[idx]
        counts = np.bincount(c[c >= 0], minlength=n_vals).astype(float)
        if counts.sum() == 0:
            vals.append(0.0)
            continue
        p = counts[counts > 0] / counts.sum()
        vals.append(float(-(p * np.log(p)).sum() / np.log(min(n_vals, len(idx)) if len(idx) > 1 else 2)))
    return float(np.mean(vals)) if vals else 0.0


# -- feasibility checks (shared by strategies, tests and benches) ------------------------------------
def violations(prep: PreparedPool, spec: FormSpec, idx: NDArray[np.int64], *, quotas: bool = True) -> list[str]:
    """Every broken constraint of a form given as pool indices (empty list = feasible)."""
    out = []
    idx = np.asarray(idx, dtype=np.int64)
    if len(np.unique(idx)) != len(idx):
        out.append("repeated items")
    if spec.size is not None and len(idx) != spec.size:
        out.append(f"size {len(idx)} != {spec.size}")
    chosen = set(idx.tolist())
    for i in idx:
        bad = [j for j in prep.enemies[i] if j in chosen]
        if bad:
            out.append(f"enemies {prep.item_ids[i]} and {prep.item_ids[bad[0]]} together")
            break
    ids = {str(prep.item_ids[i]) for i in idx}
    for o in spec.overlap:
        if spec.size is not None and len(ids & o.item_ids) > o.max_items(spec.size):
            out.append(f"overlap with {o.form}: {len(ids & o.item_ids)} > {o.max_items(spec.size)}")
    if quotas and prep.cells is not None:
        got = marginal_counts(prep.cells, prep.cells.cell_of_item[idx])
        for key, want in prep.cells.targets.items():
            for value, n in want.items():
                if got[key][value] != n:
                    out.append(f"quota {key}={value}: {got[key][value]} != {n}")
    return out


# -- strategies ---------------------------------------------------------------------------------------
class AllItems(Sampler):
    name = "all"
    meets_quotas = False
    needs_size = False

    def _select(self, prep, spec, rng):
        keep = np.ones(len(prep), dtype=bool)
        for i in range(len(prep)):  # id order: the first of an enemy pair stays
            if keep[i]:
                e = prep.enemies[i]
                keep[e[e > i]] = False
        return np.flatnonzero(keep), {"dropped_enemies": int((~keep).sum())}


class RandomSampler(Sampler):
    name = "random"
    meets_quotas = False

    def _select(self, prep, spec, rng):
        size = int(spec.size)
        limits = [(np.fromiter((str(i) in o.item_ids for i in prep.item_ids), bool, len(prep)), o.max_items(size))
                  for o in spec.overlap]
        used = [0] * len(limits)
        blocked = np.zeros(len(prep), dtype=bool)
        take: list[int] = []
        for i in rng.permutation(len(prep)):
            if blocked[i] or any(m[i] and u >= cap for (m, cap), u in zip(limits, used, strict=True)):
                continue
            take.append(int(i))
            blocked[prep.enemies[i]] = True
            for k, (m, _) in enumerate(limits):
                used[k] += int(m[i])
            if len(take) == size:
                return np.array(take), {}
        raise QuotaInfeasible(f"form spec is infeasible: only {len(take)} items can be drawn under the "
                              f"overlap limits and enemy pairs, size {size}")


class StratifiedSampler(Sampler):
    name = "stratified"

    def _select(self, prep, spec, rng):
        idx, counts = draw_stratified(prep, rng, cell_members(prep))
        return rng.permutation(idx), {"n_cells_used": int((counts > 0).sum())}


class MilpSampler(Sampler):
    """Maximum mean information over the target grid; options ``time_limit`` (s), ``mip_rel_gap``."""

    name = "milp"

    def _select(self, prep, spec, rng):
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import coo_matrix, csr_matrix, vstack

        assert prep.cells is not None
        opts = spec.options_dict
        cand = self._candidates(prep, int(spec.size))
        cells = prep.cells.cell_of_item[cand]
        A_cell, lo, hi, _ = prep.cells.constraint_rows()
        # Item-level rows: a cell row's coefficient for each candidate item is its cell's coefficient.
        A = csr_matrix(A_cell)[:, cells]
        pos = -np.ones(len(prep), dtype=np.int64)
        pos[cand] = np.arange(len(cand))
        pairs = [(pos[i], pos[j]) for i in cand for j in prep.enemies[i] if j > i and pos[j] >= 0]
        rows = [A]
        lo_all, hi_all = [lo], [hi]
        if pairs:
            p = np.array(pairs)
            E = coo_matrix((np.ones(2 * len(p)), (np.repeat(np.arange(len(p)), 2), p.ravel())),
                           shape=(len(p), len(cand))).tocsr()
            rows.append(E)
            lo_all.append(np.zeros(len(p)))
            hi_all.append(np.ones(len(p)))
        t0 = time.perf_counter()
        res = milp(-prep.weight[cand], constraints=LinearConstraint(vstack(rows).tocsr(), np.concatenate(lo_all),
                                                                     np.concatenate(hi_all)),
                   integrality=np.ones(len(cand)), bounds=Bounds(0, 1),
                   options={"time_limit": float(opts.get("time_limit", 50.0)),
                            "mip_rel_gap": float(opts.get("mip_rel_gap", 1e-6)), "presolve": True})
        if res.x is None:
            solve_cell_counts(prep.cells)  # raises the quota diagnosis if that is the cause
            raise QuotaInfeasible("form spec is infeasible once enemy pairs and overlap limits are kept")
        chosen = cand[res.x > 0.5]
        chosen = chosen[np.argsort(-prep.weight[chosen], kind="stable")]
        return rng.permutation(chosen), {"milp_status": int(res.status), "milp_message": str(res.message),
                                         "n_candidates": int(len(cand)), "ip_time_s": round(time.perf_counter() - t0, 4),
                                         "mip_gap": float(getattr(res, "mip_gap", 0.0) or 0.0)}

    @staticmethod
    def _candidates(prep: PreparedPool, size: int) -> NDArray[np.int64]:
        """Per cell, the best items by weight until ``size`` enemy-free ones are in (exchange argument:
        an optimum never needs an item ranked below ``size`` unconflicted better ones of its cell)."""
        keep = []
        has_enemy = np.array([len(e) > 0 for e in prep.enemies], dtype=bool)
        for m in cell_members(prep):
            order = m[np.argsort(-prep.weight[m], kind="stable")]
            free_rank = np.cumsum(~has_enemy[order])
            if len(order) == 0 or free_rank[-1] < size:
                keep.append(order)
                continue
            keep.append(order[:int(np.searchsorted(free_rank, size)) + 1])
        return np.sort(np.concatenate(keep))


class Nsga2Sampler(Sampler):
    """NSGA-II (or NSGA-III with ``options.algorithm: nsga3``); see ``sampler.evolution``."""

    name = "nsga2"

    def _select(self, prep, spec, rng):
        from .evolution import evolve

        return evolve(prep, spec, rng, cell_members(prep), started=getattr(self, "_t0", None))


REGISTRY: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (AllItems, RandomSampler, StratifiedSampler, Nsga2Sampler, MilpSampler)
}


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Add a strategy (a class decorator): a new strategy is one module with a ``Sampler`` subclass, decorated,
    plus its import in ``sampler/__init__.py`` so it is registered before the CLI lists the choices."""
    if not (isinstance(cls, type) and issubclass(cls, Sampler)) or not getattr(cls, "name", ""):
        raise InputError(f"register_sampler: {cls!r} is not a Sampler subclass with a name")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise InputError(f"register_sampler: a strategy named {cls.name!r} is already registered")
    REGISTRY[cls.name] = cls
    return cls


def get_sampler(name: str) -> Sampler:
    """The registered strategy ``name``; an unknown name gets a did-you-mean error."""
    try:
        return REGISTRY[name]()
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown sampling strategy {name!r}{hint} (known: {', '.join(REGISTRY)})") from None


def sample_form(pool: pd.DataFrame, spec: FormSpec, rng: np.random.Generator | None = None) -> FormDraft:
    """Draw with the strategy the spec names."""
    return get_sampler(spec.strategy).sample(pool, spec, rng)
