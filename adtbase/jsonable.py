"""The one converter from the project's values to plain JSON values (``adt --json`` output, stored settings).

``to_jsonable`` walks mappings (keys become strings), lists, tuples, numpy arrays, DataFrames and
``adtbase.table.Table``s (a list of row records), and maps numpy and Python booleans to JSON booleans, numpy
integers to ints, floats to floats with NaN and +-inf as ``null`` (JSON has neither), and pandas' missing
values (``pd.NA``, ``pd.NaT``) to ``null``. Anything else (str, int, None, and values the caller's
``json.dumps(default=str)`` turns into text, such as a ``Path``) is returned as it is.

It imports neither numpy nor pandas: a value can be one of theirs only once they are loaded, so it looks
them up in ``sys.modules`` (a light command's ``--json`` costs no pandas start-up).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from adtbase.table import Table

__all__ = ["to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """``value`` with every container walked and every numpy/pandas scalar made a plain JSON value."""
    np = sys.modules.get("numpy")
    pd = sys.modules.get("pandas")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (np is not None and isinstance(value, np.ndarray)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Table):
        return [to_jsonable(r) for r in value.records()]
    if pd is not None and isinstance(value, pd.DataFrame):
        return [to_jsonable(r) for r in value.to_dict("records")]
    if isinstance(value, bool) or (np is not None and isinstance(value, np.bool_)):
        return bool(value)
    if np is not None and isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float) or (np is not None and isinstance(value, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    return value
