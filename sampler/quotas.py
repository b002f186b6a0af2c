"""Quotas: fractions to counts, and the joint feasibility of several quota keys at once.

Rounding: **largest remainder** (Hamilton). Each value gets ``floor(f * size)``; the seats left go
one each to the largest remainders ``f * size - floor(f * size)``; ties go to the larger fraction,
then to the value that sorts first by name. An implicit "other" value (what the listed values do not
take) joins the rounding, so the counts of a key always sum to the form size.

Cells: every eligible item falls in exactly one cell of the cross-classification of the quota keys
(plus one flag per earlier form limited by ``overlap``). An item with several values for a key counts
for the **first of its values that the quota lists** (in the item's own order), else for "other": one
item, one cell, so marginals stay sums over cells. The ``unknown`` difficulty band never counts for a
band quota (it is "other").

Feasibility: an integer program over cell counts ``x_c in [0, capacity_c]`` with one equality per
(key, value) marginal, one ``<=`` per overlap limit and ``sum x = size`` (``scipy.optimize.milp``).
When it has no solution, a slack version (minimum total shortfall) names each marginal that cannot be
met, required vs available, and the cells that starve it (full at the slack optimum).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_matrix

from adtbase.errors import InputError, QuotaInfeasible
from adtbase.registry import did_you_mean

from .spec import CLOSED_KEYS, FormSpec, Quota

OTHER = "(other)"


def largest_remainder(fractions: Mapping[str, float], total: int) -> dict[str, int]:
    """Counts summing to ``round(total * sum(fractions))`` by the largest-remainder rule (see module doc)."""
    names = list(fractions)
    f = np.array([float(fractions[n]) for n in names])
    if np.any(f < 0):
        raise InputError(f"negative fraction in {dict(fractions)}")
    exact = f * total
    base = np.floor(exact + 1e-9).astype(int)
    target = int(round(float(exact.sum())))
    left = target - int(base.sum())
    rema = exact - base
    order = sorted(range(len(names)), key=lambda i: (-round(rema[i], 12), -f[i], names[i]))
    for i in order[:max(left, 0)]:
        base[i] += 1
    return {n: int(c) for n, c in zip(names, base, strict=True)}


def quota_counts(quota: Quota, size: int) -> dict[str, int]:
    """Required count per listed value, plus ``OTHER`` for the rest of the form."""
    amounts = quota.as_dict()
    if quota.is_fraction:
        fr = {v: float(a) for v, a in amounts.items()}
        fr[OTHER] = max(0.0, 1.0 - sum(fr.values()))
        counts = largest_remainder(fr, size)
        counts[OTHER] = size - sum(c for v, c in counts.items() if v != OTHER)
        return counts
    counts = {v: int(a) for v, a in amounts.items()}
    listed = sum(counts.values())
    if listed > size:
        raise InputError(f"form spec field 'quotas.{quota.key}': counts sum to {listed} > form size {size}")
    counts[OTHER] = size - listed
    return counts


def split_values(cell: object) -> list[str]:
    """A pool cell's tag values ("a|b" -> ["a", "b"]; NaN/None/"" -> [])."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    if isinstance(cell, list | tuple | np.ndarray):
        return [str(v) for v in cell]
    return [v for v in str(cell).split("|") if v != ""]


def proportional_quota(values: Sequence[object], key: str) -> dict[str, float]:
    """Fractions of each value of tag ``key`` among ``values`` (one cell per item; an item with several values
    counts under its first): the quota that keeps a form's content in the slice's proportions. In steps of
    1e-4 summing to 1 (largest remainder): flooring each share left a remainder that became an OTHER cell no
    item is in, and with many values (40 topics: 0.2% of the form) it won a seat by largest remainder, so the
    spec was infeasible ("quota topic=(other): required 1, available 0")."""
    first = pd.Series([vs[0] if vs else None for vs in map(split_values, values)], dtype=object)
    shares = first.dropna().value_counts(normalize=True)
    if shares.empty:
        raise InputError(f"--stratify-by {key!r}: no item of the slice has a {key} tag")
    units = largest_remainder({str(v): float(x) for v, x in shares.items()}, 10_000)
    return {v: n / 1e4 for v, n in units.items()}


def map_distinct(values: NDArray[np.object_], fn: Callable[[object], Any], dtype: Any = object) -> NDArray:
    """``fn`` of every cell, called once per distinct cell (a pool column repeats a few tag values over millions of
    items; missing cells share one call); cell by cell where cells are unhashable (lists)."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:
        return np.array([fn(v) for v in values], dtype=dtype)
    mapped = np.array([fn(u) for u in uniques] + [fn(None)], dtype=dtype)
    return mapped[codes]   # code -1 (missing) takes the last entry


def quota_labels(column: pd.Series, quota: Quota) -> NDArray[np.object_]:
    """Each item's value for this quota: its first value that the quota lists, else OTHER."""
    listed = {v for v, _ in quota.amounts}
    if quota.key == "difficulty_band":
        listed.discard("unknown")
    return map_distinct(column.to_numpy(dtype=object),
                        lambda cell: next((v for v in split_values(cell) if v in listed), OTHER))


# Pool columns that are never quota keys: the item's text and numbers (DESIGN.md, the item frame).
NOT_KEYS = frozenset({"item_id", "question", "choices", "answer", "n_choices", "exposure_runs",
                      "exposure_publications", "a", "b", "c", "d", "calibrated_b"})


def pool_keys(pool: pd.DataFrame) -> list[str]:
    """The pool's columns a quota can name: tag keys and built-in keys (text columns, not the item's own text)."""
    return sorted(str(c) for c in pool.columns if c not in NOT_KEYS and pool[c].dtype == object)


def check_quota_values(column: pd.Series, quota: Quota) -> None:
    """InputError for a quota value no pool item has (a typo would read as 'available 0'): a did-you-mean and
    the values the key has. A closed key's value (``frequency_tier=high``) may be absent: that is infeasibility."""
    if quota.key in CLOSED_KEYS:
        return
    present: set[str] = set()
    map_distinct(column.to_numpy(dtype=object), lambda cell: present.update(split_values(cell)))
    for value, _ in quota.amounts:
        if value not in present:
            values = sorted(present)
            shown = ", ".join(values[:30]) + (f", ... ({len(values)} in all)" if len(values) > 30 else "")
            raise InputError(f"quota {quota.key}={value}: no item of the pool has {quota.key} {value!r}"
                             f"{did_you_mean(value, values, cutoff=0.6) or ';'} {quota.key} has: {shown or '(no values)'}")


@dataclass(frozen=True)
class CellModel:
    """The cross-classification of an eligible pool by quota labels and earlier-form flags."""

    keys: tuple[str, ...]              # quota keys, in spec order
    overlap_forms: tuple[str, ...]     # earlier forms with an overlap limit
    cells: pd.DataFrame                # one row per non-empty cell: labels, flags, capacity
    cell_of_item: NDArray[np.int64]    # pool row -> cell index
    targets: dict[str, dict[str, int]]  # key -> value -> required count (incl. OTHER)
    overlap_caps: tuple[int, ...]      # max items from each earlier form
    size: int

    @property
    def capacity(self) -> NDArray[np.int64]:
        return self.cells["capacity"].to_numpy(dtype=np.int64)

    def constraint_rows(self) -> tuple[csr_matrix, NDArray, NDArray, list[tuple[str, str, str]]]:
        """Rows of A, lo, hi over the cell counts, and a label per row (kind, key, value)."""
        n = len(self.cells)
        rows: list[NDArray] = [np.ones(n)]
        lo, hi = [self.size], [self.size]
        names = [("size", "", "")]
        for key in self.keys:
            labels = self.cells[key].to_numpy(dtype=object)
            for value, count in self.targets[key].items():
                rows.append((labels == value).astype(float))
                lo.append(count)
                hi.append(count)
                names.append(("quota", key, value))
        for form, cap in zip(self.overlap_forms, self.overlap_caps, strict=True):
            rows.append(self.cells[f"in:{form}"].to_numpy(dtype=float))
            lo.append(0)
            hi.append(cap)
            names.append(("overlap", form, ""))
        return csr_matrix(np.vstack(rows)), np.array(lo, float), np.array(hi, float), names

    def describe_cell(self, c: int) -> str:
        row = self.cells.iloc[c]
        parts = [f"{k}={row[k]}" for k in self.keys]
        parts += [f"in {f}" for f in self.overlap_forms if row[f"in:{f}"]]
        return "{" + ", ".join(parts) + "}" if parts else "{all}"


def build_cells(pool: pd.DataFrame, spec: FormSpec, size: int) -> CellModel:
    """Label every pool row and group rows into cells; targets from the spec's quotas."""
    keys = spec.quota_keys
    for key in keys:
        if key not in pool.columns:
            known = pool_keys(pool)
            raise InputError(f"form spec field 'quotas.{key}': the pool has no key {key!r}{did_you_mean(key, known, cutoff=0.6) or ';'} "
                             f"its keys: {', '.join(known)}")
    for q in spec.quotas:
        check_quota_values(pool[q.key], q)
    labels = {q.key: quota_labels(pool[q.key], q) for q in spec.quotas}
    ids = pool["item_id"].to_numpy(dtype=object)
    flags = {f"in:{o.form}": np.fromiter((i in o.item_ids for i in ids), bool, len(ids)) for o in spec.overlap}
    frame = pd.DataFrame({**labels, **flags})
    cols = list(frame.columns)
    if cols:
        grouped = frame.groupby(cols, sort=True, dropna=False)
        cell_of_item = np.asarray(grouped.ngroup(), dtype=np.int64)
        cells = grouped.size().rename("capacity").reset_index()
    else:
        cell_of_item = np.zeros(len(pool), dtype=np.int64)
        cells = pd.DataFrame({"capacity": [len(pool)]})
    targets = {q.key: quota_counts(q, size) for q in spec.quotas}
    caps = tuple(o.max_items(size) for o in spec.overlap)
    return CellModel(keys, tuple(o.form for o in spec.overlap), cells, cell_of_item, targets, caps, size)


def solve_cell_counts(model: CellModel, objective: NDArray | None = None,
                      capacity: NDArray | None = None) -> NDArray[np.int64]:
    """Cell counts meeting every marginal exactly (maximising ``objective . x`` if given).

    Raises ``QuotaInfeasible`` naming each offending marginal and its starving cells.
    """
    cap = model.capacity if capacity is None else np.asarray(capacity)
    A, lo, hi, _ = model.constraint_rows()
    n = len(model.cells)
    c = np.zeros(n) if objective is None else -np.asarray(objective, float)
    res = milp(c, constraints=LinearConstraint(A, lo, hi), integrality=np.ones(n),
               bounds=Bounds(np.zeros(n), cap.astype(float)))
    if res.status == 0 and res.x is not None:
        return np.round(res.x).astype(np.int64)
    raise QuotaInfeasible(diagnose(model, cap))


def diagnose(model: CellModel, capacity: NDArray | None = None) -> str:
    """Minimum-shortfall relaxation: which marginals cannot be met and which full cells starve them."""
    cap = model.capacity if capacity is None else np.asarray(capacity)
    A, lo, hi, names = model.constraint_rows()
    n, m = len(model.cells), A.shape[0]
    # x (n cells), under (m), over (m):  lo <= A x + under - over <= hi, minimise under + over.
    from scipy.sparse import eye, hstack
    big = hstack([A, eye(m), -eye(m)]).tocsr()
    # Blame the size row only when the pool itself is too small: its slack costs more than any other.
    w = np.array([100.0 if kind == "size" else 1.0 for kind, _, _ in names])
    c = np.r_[np.zeros(n), w, w]
    res = milp(c, constraints=LinearConstraint(big, lo, hi), integrality=np.r_[np.ones(n), np.zeros(2 * m)],
               bounds=Bounds(np.zeros(n + 2 * m), np.r_[cap.astype(float), np.full(2 * m, np.inf)]))
    lines = []
    x = np.round(res.x[:n]) if res.x is not None else np.zeros(n)
    under = res.x[n:n + m] if res.x is not None else np.zeros(m)
    over = res.x[n + m:] if res.x is not None else np.zeros(m)
    for r, (kind, key, value) in enumerate(names):
        if under[r] < 0.5 and over[r] < 0.5:
            continue
        members = np.flatnonzero(A[r].toarray().ravel() > 0)
        available = int(cap[members].sum())
        if kind == "size":
            lines.append(f"form size {model.size}: only {int(cap.sum())} eligible items")
            continue
        if kind == "overlap":
            lines.append(f"overlap with {key!r}: at most {int(hi[r])} items allowed, but the form needs "
                         f"{int(hi[r] + over[r])} of them (only {int(cap.sum() - available)} items are not "
                         f"in {key!r})")
            continue
        required = int(lo[r])
        if under[r] >= 0.5:
            starving = [int(i) for i in members if x[i] >= cap[i]]
            cells = "; ".join(f"{model.describe_cell(i)} has {int(cap[i])}" for i in starving[:12])
            more = f" (+{len(starving) - 12} more)" if len(starving) > 12 else ""
            jointly = int(round(required - under[r]))
            lines.append(f"quota {key}={value}: required {required}, available {available}"
                         + (f", reachable jointly with the other quotas {jointly}" if jointly < available else "")
                         + (f"; starving cells (all used): {cells}{more}" if cells else ""))
        else:
            lines.append(f"quota {key}={value}: required {required}, but the other quotas force "
                         f"{int(round(required + over[r]))} items into it (available {available})")
    if not lines:
        lines.append("no combination of cells meets every quota (integer program infeasible)")
    return "form spec is infeasible: " + " | ".join(lines)


def marginal_counts(model: CellModel, selected_cells: Sequence[int] | NDArray) -> dict[str, dict[str, int]]:
    """Achieved count per (key, value) for the cells of the selected items (for checks and reports)."""
    sel = np.asarray(selected_cells, dtype=np.int64)
    out: dict[str, dict[str, int]] = {}
    for key in model.keys:
        labels = model.cells[key].to_numpy(dtype=object)[sel]
        vals, cnt = np.unique(labels.astype(str), return_counts=True)
        got = dict(zip(vals.tolist(), cnt.tolist(), strict=True))
        out[key] = {v: int(got.get(v, 0)) for v in model.targets[key]}
    return out


__all__ = ["OTHER", "CellModel", "build_cells", "diagnose", "largest_remainder", "map_distinct", "marginal_counts",
           "quota_counts", "quota_labels", "solve_cell_counts", "split_values"]
