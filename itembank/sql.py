"""Small helpers over DuckDB results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only (itembank.migrate, on the light face, imports this module)
    import duckdb


def first(result: duckdb.DuckDBPyConnection) -> Any:
    """The first row of a result, or None; the result is drained (DuckDB refuses new work while a
    result is left half-read)."""
    rows = result.fetchall()
    return rows[0] if rows else None
