"""The common base (adtbase): one set of exceptions, one version, one JSON converter."""

from __future__ import annotations

import importlib.metadata
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

import adt
import adt.errors
import adtbase
import adtbase.errors
from adtbase.jsonable import to_jsonable


def test_adt_errors_re_exports_the_same_classes() -> None:
    assert set(adt.errors.__all__) == set(adtbase.errors.__all__)
    for name in adtbase.errors.__all__:
        assert getattr(adt.errors, name) is getattr(adtbase.errors, name)


def test_version_is_read_once() -> None:
    assert adtbase.__version__ == importlib.metadata.version("adt") == adt.__version__


def test_to_jsonable_maps_numpy_pandas_and_missing_values() -> None:
    value = {1: np.bool_(True), "int": np.int64(3), "float": np.float32(0.5), "nan": math.nan, "inf": np.inf,
             "na": pd.NA, "nat": pd.NaT, "array": np.array([1.0, np.nan]), "tuple": (False, None, "s"),
             "frame": pd.DataFrame({"x": [1, 2], "y": [np.nan, 1.5]}), "path": Path("a/b")}
    out = to_jsonable(value)
    assert out == {"1": True, "int": 3, "float": 0.5, "nan": None, "inf": None, "na": None, "nat": None,
                   "array": [1.0, None], "tuple": [False, None, "s"],
                   "frame": [{"x": 1, "y": None}, {"x": 2, "y": 1.5}], "path": Path("a/b")}
    assert type(out["1"]) is bool and type(out["int"]) is int
    # strict JSON (no NaN/Infinity); a Path is left to the caller's default=str
    assert json.loads(json.dumps(out, allow_nan=False, default=str))["path"] == str(Path("a/b"))


def test_table_prints_and_converts_as_the_frame_duckdb_makes_of_the_same_result() -> None:
    """``Table.to_text`` is ``DataFrame.to_string(index=False)`` of ``.df()`` for text (NULL too) and integer
    columns: unicode, spaces, escaped tabs and newlines, long text, a header wider than its values, repeated
    names (``x``, ``x_1`` as ``.df()`` names them); ``to_jsonable`` gives the frame's records."""
    import duckdb

    from adtbase.table import Table

    def lit(text: str | None) -> str:
        return "NULL" if text is None else "'" + text.replace("'", "''") + "'"

    conn = duckdb.connect()
    texts = ["a", None, "中文 topic", " sp ", "tab\there", "two\nlines", "x" * 120, "", "None", "it's"]
    rows = ", ".join(f"({lit(t)}, {lit(None if i % 3 == 0 else str(i))}, {i * 1000003}::BIGINT)"
                     for i, t in enumerate(texts))
    queries = [
        "SELECT 20::BIGINT AS items, 20::BIGINT AS freq_tier_low, 0::BIGINT AS freq_tier_medium",
        f"SELECT * FROM (VALUES {rows}) t(domain, topic, items)",  # noqa: S608 - literals of the test
        "SELECT NULL::VARCHAR AS domain, 'x' AS X, 'y' AS x, 'z' AS x, 7::BIGINT AS items",
    ]
    for sql in queries:
        frame, table = conn.execute(sql).df(), Table.from_result(conn.execute(sql))
        assert table.columns == tuple(frame.columns)
        assert table.to_text() == frame.to_string(index=False), sql
        assert to_jsonable(table) == to_jsonable(frame)
    empty = Table.from_result(conn.execute("SELECT 'a' AS k, 1::BIGINT AS n WHERE false"))
    assert empty.empty and to_jsonable(empty) == []
