"""Comparison with recorded golden values (the behaviour baselines): one rule for every test that has them."""

from __future__ import annotations

import math
import numbers
from typing import Any


def assert_tree_close(got: Any, want: Any, where: str, atol: float = 1e-9) -> None:
    """``got`` has ``want``'s shape (same dict keys, same list lengths), numbers within ``atol`` (a NaN only
    matches a NaN), everything else equal; ``where`` names the first difference."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_tree_close(got[k], want[k], f"{where}.{k}", atol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: lengths differ: {got!r} != {want!r}"
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_tree_close(g, w, f"{where}[{k}]", atol)
    elif isinstance(want, float) and not isinstance(got, bool):
        assert isinstance(got, numbers.Real), f"{where}: {got!r} != {want!r}"
        both_nan = math.isnan(want) and math.isnan(float(got))
        assert both_nan or abs(float(got) - want) <= atol, f"{where}: {got!r} != {want!r} (atol {atol})"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"
