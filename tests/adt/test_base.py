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
