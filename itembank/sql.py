"""Small helpers over DuckDB results."""

from __future__ import annotations

from typing import Any

import duckdb


def first(result: duckdb.DuckDBPyConnection) -> Any:
    """The first row of a result, or None; the result is drained (DuckDB refuses new work while a
    result is left half-read)."""
    rows = result.fetchall()
    return rows[0] if rows else None
