"""sampler.pool.first_values: the coverage codes' first tag value, one split per distinct cell."""

from __future__ import annotations

import numpy as np

from sampler.pool import first_values
from sampler.quotas import split_values


def test_first_values_match_split_values_cell_by_cell() -> None:
    cells = np.array(["a|b", "|a", None, float("nan"), "", "||", "b", "a", "c|a"] * 50, dtype=object)
    want = [next(iter(split_values(v)), None) for v in cells]
    assert first_values(cells) == want
    assert want[:9] == ["a", "a", None, None, None, None, "b", "a", "c"]
    # unhashable cells (lists) take the one-by-one path and agree as well
    mixed = np.array([["x", "y"], "p|q", None], dtype=object)
    assert first_values(mixed) == ["x", "p", None]
