"""From the bank's pool frame to the arrays every strategy works on.

``prepare(pool, spec)`` applies the spec's eligibility (review states, include/exclude filters, the stages
of ``stage_pool`` with the young-bank rule),
sorts by ``item_id`` (so the bank's row order never changes a form), fills uncalibrated parameters
with priors (their content prior's a, b where the pool gives them, else a=1, b=0; c=1/n_choices, d=1), computes each item's information over the target ability
grid, its exposure, its enemies and (for sized forms) the quota cells.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from adtbase import lifecycle
from adtbase.errors import InputError, QuotaInfeasible
from calibration import guessing_from_choices, item_information

from .enemies import enemy_lists, find_enemy_pairs
from .quotas import (
    CellModel,
    build_cells,
    map_distinct,
    quota_counts,
    quota_labels,
    solve_cell_counts,
    split_values,
)
from .spec import FormSpec

# Pool columns that are not tag keys (everything else of text dtype is a tag key).
NON_TAG_COLUMNS = frozenset({
    "item_id", "question", "choices", "answer", "item_type", "n_choices", "review_state", "origin",
    "exposure_runs", "exposure_publications", "a", "b", "c", "d", "aliases", "created_at", "stage",
    "rest_until_round",
    "param_source",  # where a, b come from (calibrated | content_prior | prior), not a tag
})
PRIOR_A, PRIOR_B, PRIOR_D = 1.0, 0.0, 1.0


@dataclass(frozen=True)
class PreparedPool:
    """Eligible items (sorted by id) and everything a strategy needs, as aligned arrays."""

    frame: pd.DataFrame                 # eligible rows, sorted by item_id, index 0..n-1
    item_ids: NDArray[np.object_]
    a: NDArray[np.float64]
    b: NDArray[np.float64]
    c: NDArray[np.float64]
    d: NDArray[np.float64]
    uncalibrated: NDArray[np.bool_]
    info: NDArray[np.float64]           # (n_items, n_theta) item information on the target grid
    weight: NDArray[np.float64]         # mean information over the grid (the additive objective)
    exposure: NDArray[np.float64]       # exposure_runs + exposure_publications
    enemies: list[NDArray[np.int64]]    # per item, indices of its enemies
    n_enemy_pairs: int
    cells: CellModel | None
    coverage_codes: tuple[NDArray[np.int64], ...]  # per coverage key, a code per item (-1 = none)
    coverage_sizes: tuple[int, ...]     # distinct values per coverage key in the pool
    stand_in: NDArray[np.bool_] | None = None  # pretest-stage items let in by the young-bank rule (None: none)

    def __len__(self) -> int:
        return len(self.item_ids)


def eligible(pool: pd.DataFrame, spec: FormSpec) -> pd.DataFrame:
    """Rows the spec allows: review state, include (any listed value) and exclude (no listed value). The stage
    rule is ``stage_pool``'s."""
    if "item_id" not in pool.columns:
        raise InputError("pool frame: missing column 'item_id'")
    dup = pool["item_id"].duplicated()
    if dup.any():
        raise InputError(f"pool frame: item_id {pool['item_id'][dup].iloc[0]!r} appears twice")
    mask = np.ones(len(pool), dtype=bool)
    if "review_state" in pool.columns:
        mask &= pool["review_state"].isin(spec.review_states).to_numpy()
    for key, values in spec.include:
        mask &= _has_any(pool, key, set(values), "include")
    for key, values in spec.exclude:
        mask &= ~_has_any(pool, key, set(values), "exclude")
    out = pool.loc[mask].sort_values("item_id", kind="stable").reset_index(drop=True)
    return out


WIDEN = ("least", "all")


def stage_pool(pool: pd.DataFrame, spec: FormSpec, size: int | None, *,
               widen: str = "least") -> tuple[pd.DataFrame, bool]:
    """The eligible rows of ``spec.stages`` (the operational pool), and whether the young-bank rule widened it.

    Young bank (``adtbase.lifecycle``): when the operational pool cannot fill a form of ``size`` (too few items,
    or a quota cell or an overlap limit it cannot meet; with no size, when it is empty), pretest-stage items
    join it and stand in as operational items, and the form counts them (``PreparedPool.stand_in``).
    Operational items come first: ``widen="least"`` lets in the fewest pretest items with which the pool can
    meet the size, quotas and overlap limits (enemies aside), taken in a seeded order (``spec.seed``) that puts
    the items of the quota cells the operational pool is short of first; so where the operational items fall
    short by k, k stand in (no quotas), or the short cells' shortfall. Those stand-ins are chosen by that
    seeded order, not by the strategy's objective. Every pretest item joins (and the strategy chooses among
    them) where there is no operational item at all, where the form has no size (``all``), and with
    ``widen="all"`` (``Sampler.sample_pool`` falls back to it when enemies make the least pool infeasible).
    No stage rule for a spec drawn before stages (``spec.stages is None``) or a pool frame without a ``stage``
    column."""
    if widen not in WIDEN:
        raise InputError(f"widen {widen!r}: use {' or '.join(WIDEN)}")
    frame = eligible(pool, spec)
    if spec.stages is None or "stage" not in frame.columns:
        return frame, False
    in_stage = frame["stage"].isin(spec.stages).to_numpy()
    if in_stage.all() or _fills(frame.loc[in_stage], spec, size):
        return frame.loc[in_stage].reset_index(drop=True), False
    extra = frame["stage"].eq(lifecycle.PRETEST).to_numpy() & ~in_stage
    if not extra.any():
        return frame.loc[in_stage].reset_index(drop=True), False
    keep = in_stage | extra
    # With no size there is nothing to fill; with no operational item at all every scored item is a stand-in and
    # the strategy chooses among all of them (as it did before stages existed).
    if widen == "least" and size is not None and in_stage.any() and _fills(frame.loc[keep], spec, size):
        order = _stand_in_order(frame, in_stage, extra, spec, size)
        lo, hi = 1, len(order)                     # the least k whose pool fills: feasibility only grows with k
        while lo < hi:
            mid = (lo + hi) // 2
            trial = in_stage.copy()
            trial[order[:mid]] = True
            lo, hi = (lo, mid) if _fills(frame.loc[trial], spec, size) else (mid + 1, hi)
        keep = in_stage.copy()
        keep[order[:lo]] = True
    return frame.loc[keep].reset_index(drop=True), True


def _stand_in_order(frame: pd.DataFrame, in_stage: NDArray[np.bool_], extra: NDArray[np.bool_], spec: FormSpec,
                    size: int | None) -> NDArray[np.int64]:
    """Positions of the pretest items that may stand in, in a seeded random order: first, per quota cell the
    operational pool is short of, as many of the cell's items as it lacks; then the rest of those cells' items;
    then the others."""
    idx = np.flatnonzero(extra)
    idx = idx[np.random.default_rng(spec.seed or 0).permutation(len(idx))]
    rank = np.full(len(frame), 2)
    if size is not None:
        for q in spec.quotas:
            if q.key not in frame.columns:
                continue
            labels = quota_labels(frame[q.key], q)
            have = Counter(labels[in_stage].tolist())
            for value, need in quota_counts(q, size).items():
                if have[value] < need:
                    cell = idx[labels[idx] == value]
                    rank[cell] = np.minimum(rank[cell], 1)
                    rank[cell[:need - have[value]]] = 0
    return idx[np.argsort(rank[idx], kind="stable")]


def _fills(frame: pd.DataFrame, spec: FormSpec, size: int | None) -> bool:
    """Whether ``frame`` can hold a form of ``size`` under the spec's quotas and overlap limits (enemies aside)."""
    if size is None:
        return len(frame) > 0
    if len(frame) < size:
        return False
    if not spec.quotas and not spec.overlap:
        return True
    try:
        solve_cell_counts(build_cells(frame.reset_index(drop=True), spec, size))
    except QuotaInfeasible:
        return False
    return True


def _has_any(pool: pd.DataFrame, key: str, values: set[str], field: str) -> NDArray[np.bool_]:
    if key not in pool.columns:
        raise InputError(f"form spec field '{field}.{key}': the pool has no column {key!r}")
    return map_distinct(pool[key].to_numpy(dtype=object), lambda v: bool(values.intersection(split_values(v))), bool)


def prepare(pool: pd.DataFrame, spec: FormSpec, *, size: int | None = None,
            coverage_keys: tuple[str, ...] | None = None, widen: str = "least") -> PreparedPool:
    """Eligible pool arrays (the stage rule and young-bank widening of ``stage_pool`` included); quota cells
    when ``size`` (default ``spec.size``) is known."""
    size = spec.size if size is None else size
    frame, widened = stage_pool(pool, spec, size, widen=widen)
    n = len(frame)
    k = frame["n_choices"].to_numpy(dtype=float) if "n_choices" in frame.columns else np.zeros(n)
    prior_c = guessing_from_choices(np.nan_to_num(k, nan=0.0))
    cols = {}
    for name in ("a", "b", "c", "d"):
        if name in frame.columns:
            cols[name] = frame[name].to_numpy(dtype=float)
        else:
            cols[name] = np.full(n, np.nan)
    # a, b given for an item not calibrated (``param_source`` content_prior: its content prior) fill in for
    # the generic prior; the item still counts as uncalibrated.
    missing = np.isnan(cols["a"]) | np.isnan(cols["b"])
    uncal = missing
    if "param_source" in frame.columns:
        uncal = missing | (frame["param_source"].to_numpy(dtype=object) != "calibrated")
    a = np.where(missing, PRIOR_A, cols["a"])
    b = np.where(missing, PRIOR_B, cols["b"])
    c = np.where(uncal | np.isnan(cols["c"]), prior_c, cols["c"])
    d = np.where(uncal | np.isnan(cols["d"]), PRIOR_D, cols["d"])
    grid = np.asarray(spec.theta_grid, float)[None, :]
    info = item_information(grid, a[:, None], b[:, None], c[:, None], d[:, None]) if n else np.zeros((0, grid.size))
    exposure = np.zeros(n)
    for col in ("exposure_runs", "exposure_publications"):
        if col in frame.columns:
            exposure += frame[col].fillna(0).to_numpy(dtype=float)
    ids = frame["item_id"].to_numpy(dtype=object)
    pairs = enemy_pairs(frame, spec, ids)
    cells = build_cells(frame, spec, size) if size is not None else None
    keys = coverage_keys if coverage_keys is not None else default_coverage_keys(frame, spec)
    codes, sizes = [], []
    for key in keys:
        cat = pd.Categorical(first_values(frame[key].to_numpy(dtype=object)))
        codes.append(cat.codes.astype(np.int64))
        sizes.append(len(cat.categories))
    stand_in = ~frame["stage"].isin(spec.stages or ()).to_numpy() if widened else None
    return PreparedPool(frame, ids, a, b, c, d, uncal, info, info.mean(axis=1), exposure,
                        enemy_lists(n, pairs), len(pairs), cells, tuple(codes), tuple(sizes), stand_in)


def first_values(values: NDArray[np.object_]) -> list[str | None]:
    """Each cell's first tag value (``split_values(v)[0]``, None where it has none), splitting each
    distinct cell once (tag columns repeat a few values over many items)."""
    return map_distinct(values, lambda v: next(iter(split_values(v)), None)).tolist()


def default_coverage_keys(frame: pd.DataFrame, spec: FormSpec) -> tuple[str, ...]:
    """Tag keys not fixed by a quota (their spread is what coverage can still improve); else all."""
    opt = spec.options_dict.get("coverage_keys")
    if opt:
        missing = [k for k in opt if k not in frame.columns]
        if missing:
            raise InputError(f"form spec field 'options.coverage_keys': no pool column {missing}")
        return tuple(opt)
    tags = [c for c in frame.columns if c not in NON_TAG_COLUMNS and frame[c].dtype == object
            and c not in ("frequency_tier", "difficulty_band")]
    free = [c for c in tags if c not in spec.quota_keys]
    return tuple(free or tags)


def enemy_pairs(frame: pd.DataFrame, spec: FormSpec, ids: NDArray[np.object_]) -> NDArray[np.int64]:
    """Positions (in ``frame``) of every enemy pair: near-duplicate text, the spec's pairs, variant families."""
    found = np.zeros((0, 2), dtype=np.int64)
    if spec.enemy_threshold is not None and "question" in frame.columns and len(frame) > 1:
        found = find_enemy_pairs(frame["question"].fillna("").astype(str).tolist(), spec.enemy_threshold)
    extra: list[tuple[int, int]] = []
    if spec.enemy_pairs:   # (an index of a million ids only when there are pairs to place)
        pos = {i: k for k, i in enumerate(ids)}
        extra = [(pos[x], pos[y]) for x, y in spec.enemy_pairs if x in pos and y in pos]
    if "parent_item_id" in frame.columns:
        extra += family_pairs(ids, frame["parent_item_id"].to_numpy(dtype=object))
    if extra:
        found = np.concatenate([found, np.array(extra, dtype=np.int64).reshape(-1, 2)])
    return found


def family_roots(ids: Sequence[str] | NDArray[np.object_], parents: Sequence[Any] | NDArray[np.object_]) -> list[str]:
    """Each item's family: its oldest ancestor the ``parent_item_id`` links among ``ids`` reach (in ``ids`` or
    not; itself when it has no parent). A variant, its parent, variants of variants and variants of one parent
    share it. The sampler makes one family's items enemies; ``adt qc`` does not flag their likeness."""
    ids = list(np.asarray(ids, dtype=object).tolist())
    parent_of = {i: p for i, p in zip(ids, np.asarray(parents, dtype=object).tolist(), strict=True)
                 if isinstance(p, str) and p}
    roots = []
    for item in ids:
        root, seen = item, {item}
        while root in parent_of and parent_of[root] not in seen:     # a cycle (bad data) stops the walk
            root = parent_of[root]
            seen.add(root)
        roots.append(root)
    return roots


def family_pairs(ids: NDArray[np.object_], parents: NDArray[np.object_]) -> list[tuple[int, int]]:
    """Positions of every two pool items of one family (``family_roots``), always, whatever the text similarity
    threshold: a form never holds one item twice (issue 13)."""
    families: dict[str, list[int]] = {}
    for k, root in enumerate(family_roots(ids, parents)):
        families.setdefault(root, []).append(k)
    return [(x, y) for members in families.values() if len(members) > 1
            for x, y in itertools.combinations(members, 2)]
