"""Shared test fixtures: where the real benchmark data lives, seeded generators, an empty bank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from itembank import open_bank

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip, with the reason, where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261123)


@pytest.fixture
def bank_path(tmp_path: Path) -> Path:
    """A fresh, empty bank file (modules that need a populated bank define their own ``bank_path``)."""
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True):
        pass
    return path
