"""Item-parameter files and the other tables commands read: one reader, one check.

``--params FILE`` of ``adt cat`` and ``adt plot``, and ``--backend-arg params=FILE`` of the simulated backend
(which also takes a JSON object ``item_id -> [a, b, c, d]``), are read by ``read_params`` /
``params_from_frame``; ``adt plot``'s ``--from`` and ``--flags`` tables by ``read_table``.

A table is CSV, JSON records or Parquet, by the file's suffix. A parameter table has ``item_id``, ``a``,
``b`` and optional ``c`` (absent or blank: 0) and ``d`` (absent or blank: 1); every value a number, a > 0,
0 <= c < d <= 1, no item twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adtbase.errors import InputError
from calibration import ItemParams

TABLE_SUFFIXES = (".csv", ".json", ".parquet")
REQUIRED_COLUMNS = ("item_id", "a", "b")
DEFAULTS = {"c": 0.0, "d": 1.0}


def read_table(path: str | Path, flag: str | None = None) -> pd.DataFrame:
    """A CSV, JSON (records) or Parquet file as a frame; an InputError names the flag and the file."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if not path.is_file():
        raise InputError(f"{where}: no such file")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(f"{where}: use a {', '.join(TABLE_SUFFIXES[:-1])} or {TABLE_SUFFIXES[-1]} file")
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".json":
            return pd.read_json(path)
        return pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise InputError(f"{where}: cannot be read ({exc})") from None


def check_columns(frame: pd.DataFrame, where: str) -> None:
    """InputError unless ``frame`` has item_id, a and b."""
    for col in REQUIRED_COLUMNS:
        if col not in frame.columns:
            raise InputError(f"{where}: no column {col!r} (columns: {', '.join(map(str, frame.columns))})")


def params_from_frame(frame: pd.DataFrame, where: str = "parameters") -> ItemParams:
    """ItemParams from a parameter table (see the module doc); an InputError names the row, item or field."""
    check_columns(frame, where)
    values: dict[str, np.ndarray] = {}
    for name in ("a", "b", "c", "d"):
        if name not in frame.columns:
            values[name] = np.full(len(frame), DEFAULTS[name])
            continue
        raw = frame[name]
        num = pd.to_numeric(raw, errors="coerce")
        if name in DEFAULTS:
            num = num.where(raw.notna(), DEFAULTS[name])  # blank: the default; text: an error below
        arr = num.to_numpy(dtype=float)
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{where}: row {i}: field {name!r}: {raw.iloc[i]!r} is not a number")
        values[name] = arr
    a, b, c, d = values["a"], values["b"], values["c"], values["d"]
    out_of_range = ~((a > 0) & (c >= 0) & (c < d) & (d <= 1))
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        raise InputError(f"{where}: item {frame['item_id'].iat[i]}: parameters need a > 0, finite b and "
                         f"0 <= c < d <= 1")
    if frame["item_id"].duplicated().any():
        dup = frame["item_id"][frame["item_id"].duplicated()].iloc[0]
        raise InputError(f"{where}: item {dup!r} appears twice")
    return ItemParams(tuple(frame["item_id"].astype(str)), a, b, c, d)


def read_params(path: str | Path, flag: str = "--params") -> ItemParams:
    """The parameters in the file ``path`` (errors name ``flag`` and the file)."""
    return params_from_frame(read_table(path, flag), f"{flag} {path}")
