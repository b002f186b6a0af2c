"""Sparse response sets: (model, item, score) triplets, never a dense model x item matrix.

Each model answered only the forms it took, so a calibration sees a small fraction of the
model x item grid. ``ResponseSet`` keeps the observed cells only, as three aligned arrays plus the
id tuples they index.

Duplicates: a (model, item) pair observed more than once (the same item on two forms the model took,
or two runs) is **averaged** by default, which keeps the score in [0, 1] and weighs the pair once;
``duplicates="error"`` rejects them instead. The constructor itself always rejects duplicates, so a
``ResponseSet`` never holds one.

Raters (judge-scored items, the many-facet fitter): optional ``rater_idx`` (one per response, -1 = no
rater: a rule score) indexing ``rater_ids``. With raters a (model, item) cell may hold one response per
rater, so duplicates are (model, item, rater) triples. Without them (the default, every 0/1 response set
today) nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from adtbase.errors import InputError


@dataclass(frozen=True)
class ResponseSet:
    """Observed responses as sparse triplets (one entry per observed (model, item) cell)."""

    model_idx: NDArray[np.int32]
    item_idx: NDArray[np.int32]
    score: NDArray[np.float64]
    model_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    rater_idx: NDArray[np.int32] | None = None
    rater_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        m = np.asarray(self.model_idx)
        i = np.asarray(self.item_idx)
        s = np.asarray(self.score, dtype=np.float64)
        if not (m.ndim == i.ndim == s.ndim == 1 and m.shape == i.shape == s.shape):
            raise InputError(f"ResponseSet: model_idx, item_idx and score must be 1-D arrays of one length, "
                             f"got shapes {m.shape}, {i.shape}, {s.shape}")
        for name, idx, n in (("model_idx", m, len(self.model_ids)), ("item_idx", i, len(self.item_ids))):
            if idx.size and not np.issubdtype(idx.dtype, np.integer):
                raise InputError(f"ResponseSet: {name} must hold integers, got dtype {idx.dtype}")
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                bad = int(np.flatnonzero((idx < 0) | (idx >= n))[0])
                raise InputError(f"ResponseSet: row {bad}: {name} {int(idx[bad])} outside 0..{n - 1}")
        _check_scores(s, lambda k: f"row {k}")
        object.__setattr__(self, "model_idx", m.astype(np.int32, copy=False))
        object.__setattr__(self, "item_idx", i.astype(np.int32, copy=False))
        object.__setattr__(self, "score", s)
        object.__setattr__(self, "model_ids", tuple(str(x) for x in self.model_ids))
        object.__setattr__(self, "item_ids", tuple(str(x) for x in self.item_ids))
        for name, ids in (("model_ids", self.model_ids), ("item_ids", self.item_ids)):
            if len(set(ids)) != len(ids):
                raise InputError(f"ResponseSet: {name} contains repeated ids")
        object.__setattr__(self, "rater_ids", tuple(str(x) for x in self.rater_ids))
        if len(set(self.rater_ids)) != len(self.rater_ids):
            raise InputError("ResponseSet: rater_ids contains repeated ids")
        if self.rater_idx is not None:
            r = np.asarray(self.rater_idx)
            if r.shape != m.shape or (r.size and not np.issubdtype(r.dtype, np.integer)):
                raise InputError(f"ResponseSet: rater_idx must be integers, one per response, got shape {r.shape}")
            if r.size and (r.min() < -1 or r.max() >= len(self.rater_ids)):
                bad = int(np.flatnonzero((r < -1) | (r >= len(self.rater_ids)))[0])
                raise InputError(f"ResponseSet: row {bad}: rater_idx {int(r[bad])} outside -1..{len(self.rater_ids) - 1}")
            object.__setattr__(self, "rater_idx", r.astype(np.int32, copy=False))
        elif self.rater_ids:
            raise InputError("ResponseSet: rater_ids given without rater_idx")
        if m.size:
            key = self.model_idx.astype(np.int64) * max(len(self.item_ids), 1) + self.item_idx
            if self.rater_idx is not None:
                key = key * (len(self.rater_ids) + 1) + (self.rater_idx + 1)
            order = np.argsort(key, kind="stable")
            dup = np.flatnonzero(np.diff(key[order]) == 0)
            if dup.size:
                k = int(order[dup[0] + 1])
                rater = "" if self.rater_idx is None else f", rater {self.rater_name(int(self.rater_idx[k]))!r}"
                raise InputError(f"ResponseSet: row {k}: duplicate (model {self.model_ids[self.model_idx[k]]!r}, "
                                 f"item {self.item_ids[self.item_idx[k]]!r}{rater})")

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def n_models(self) -> int:
        return len(self.model_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_obs(self) -> int:
        return int(self.score.size)

    @property
    def density(self) -> float:
        """Observed fraction of the model x item grid."""
        return self.n_obs / max(self.n_models * self.n_items, 1)

    def __len__(self) -> int:
        return self.n_obs

    @property
    def has_raters(self) -> bool:
        """True when some response was scored by a rater (a judge): the many-facet fitter's data."""
        return self.rater_idx is not None and bool(np.any(self.rater_idx >= 0))

    def rater_name(self, r: int) -> str:
        return self.rater_ids[r] if r >= 0 else ""

    # -- derived views -------------------------------------------------------------------------
    def subset(self, mask: ArrayLike) -> ResponseSet:
        """The observations selected by a boolean mask or index array; the id tuples are kept."""
        sel = np.asarray(mask)
        return ResponseSet(self.model_idx[sel], self.item_idx[sel], self.score[sel], self.model_ids,
                           self.item_ids, None if self.rater_idx is None else self.rater_idx[sel], self.rater_ids)

    def counts_per_item(self) -> NDArray[np.int64]:
        return np.bincount(self.item_idx, minlength=self.n_items)

    def counts_per_model(self) -> NDArray[np.int64]:
        return np.bincount(self.model_idx, minlength=self.n_models)

    def to_frame(self) -> pd.DataFrame:
        """Long frame ``model, item_id, score`` (for export and debugging), and ``rater`` ("" = none) with raters."""
        out = pd.DataFrame({
            "model": np.asarray(self.model_ids, dtype=object)[self.model_idx],
            "item_id": np.asarray(self.item_ids, dtype=object)[self.item_idx],
            "score": self.score,
        })
        if self.rater_idx is not None:
            out["rater"] = np.asarray((*self.rater_ids, ""), dtype=object)[self.rater_idx]
        return out

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, model_idx: ArrayLike, item_idx: ArrayLike, score: ArrayLike,
                    model_ids: Sequence[Any], item_ids: Sequence[Any]) -> ResponseSet:
        return cls(np.asarray(model_idx), np.asarray(item_idx), np.asarray(score, dtype=float),
                   tuple(model_ids), tuple(item_ids))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, model_col: str = "model", item_col: str = "item_id",
                   score_col: str = "score", *, duplicates: Literal["mean", "error"] = "mean",
                   item_ids: Sequence[Any] | None = None,
                   model_ids: Sequence[Any] | None = None, rater_col: str | None = None) -> ResponseSet:
        """Build from a long frame with one row per response.

        ``rater_col`` names the column of each response's rater (a judge); an empty or null rater is none
        (-1: a rule score). The raters are its sorted distinct non-empty values; duplicates are then
        (model, item, rater) triples.

        ``item_ids`` / ``model_ids`` fix the universe (and order) of ids, e.g. every item of the
        bank, so that items nobody answered are still reported by a calibration; ids in the frame
        but not in a given universe are an error. Without them, the ids are the sorted distinct
        values of the frame. Rows with a null id or a score that is not a number in [0, 1] raise
        ``InputError`` naming the row (the frame's index label) and the field.
        """
        if duplicates not in ("mean", "error"):
            raise InputError(f"duplicates must be 'mean' or 'error', got {duplicates!r}")
        for col in (model_col, item_col, score_col, *((rater_col,) if rater_col else ())):
            if col not in df.columns:
                raise InputError(f"response frame has no column {col!r} (columns: {list(df.columns)})")
        labels = df.index
        for col in (model_col, item_col):
            null = df[col].isna().to_numpy()
            if null.any():
                raise InputError(f"response frame row {labels[int(np.argmax(null))]!r}: {col} is empty")
        raw = df[score_col]
        if raw.dtype == bool:
            raw = raw.astype(float)
        s = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        _check_scores(s, lambda k: f"response frame row {labels[k]!r}: {score_col}={raw.iloc[k]!r}")

        m_idx, m_ids = _encode(df[model_col], model_ids, model_col, labels)
        i_idx, i_ids = _encode(df[item_col], item_ids, item_col, labels)

        key = m_idx.astype(np.int64) * max(len(i_ids), 1) + i_idx
        r_idx: NDArray[np.int32] | None = None
        r_ids: tuple[str, ...] = ()
        if rater_col:
            raw_r = df[rater_col].fillna("").astype(str).to_numpy()
            r_ids = tuple(sorted(set(raw_r) - {""}))
            r_idx = (pd.Index(r_ids).get_indexer(raw_r)).astype(np.int32)   # "" -> -1
            key = key * (len(r_ids) + 1) + (r_idx + 1)
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        if uniq.size != key.size:
            if duplicates == "error":
                first_dup = int(np.flatnonzero(counts[inverse] > 1)[1]) if key.size > 1 else 0
                raise InputError(f"response frame row {labels[first_dup]!r}: duplicate response for "
                                 f"({model_col}={m_ids[m_idx[first_dup]]!r}, {item_col}="
                                 f"{i_ids[i_idx[first_dup]]!r}) (duplicates='error')")
            s = np.bincount(inverse, weights=s, minlength=uniq.size) / counts
            cell = uniq
            if r_idx is not None:
                r_idx = (uniq % (len(r_ids) + 1) - 1).astype(np.int32)
                cell = uniq // (len(r_ids) + 1)
            m_idx = (cell // max(len(i_ids), 1)).astype(np.int32)
            i_idx = (cell % max(len(i_ids), 1)).astype(np.int32)
        return cls(m_idx, i_idx, s, m_ids, i_ids, r_idx, r_ids)


def _check_scores(s: NDArray[np.float64], where: Any) -> None:
    bad = ~np.isfinite(s) | (s < 0.0) | (s > 1.0)
    if bad.any():
        k = int(np.argmax(bad))
        raise InputError(f"{where(k)}: score must be a number in [0, 1], got {s[k]!r}")


def _encode(col: pd.Series, universe: Sequence[Any] | None, name: str,
            labels: pd.Index) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    values = col.astype(str).to_numpy()
    if universe is None:
        codes, ids = pd.factorize(values, sort=True)
        return codes.astype(np.int32), tuple(str(x) for x in ids)
    ids_t = tuple(str(x) for x in universe)
    if len(set(ids_t)) != len(ids_t):
        raise InputError(f"the given {name} universe contains repeated ids")
    codes = pd.Index(ids_t).get_indexer(values)
    if (codes < 0).any():
        k = int(np.argmax(codes < 0))
        raise InputError(f"response frame row {labels[k]!r}: {name} {values[k]!r} is not in the given ids")
    return codes.astype(np.int32), ids_t
