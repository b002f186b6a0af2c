"""A small table of rows without pandas: what a light command (``adt bank stats``) prints.

``Table`` holds column names and rows of plain values (``str``, ``int``, ``None``, as DuckDB's
``fetchall`` gives them). ``to_text`` lays it out exactly as ``DataFrame.to_string(index=False)`` lays out the
frame DuckDB's ``.df()`` makes of the same result, for columns of text (and NULL) and of integers: a command
that prints a ``Table`` instead of a frame prints the same text without importing pandas (half a second of
start-up). ``records`` is what ``adtbase.jsonable.to_jsonable`` makes of it (one mapping per row, as of a
frame). ``from_result`` reads a DuckDB result (anything with ``description`` and ``fetchall``) and names
repeated columns as ``.df()`` does (``x``, ``x_1``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Table"]

_ESCAPES = {"\t": r"\t", "\n": r"\n", "\r": r"\r"}  # what pandas' to_string writes for them


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    """Repeated names made unique as DuckDB's ``.df()`` does (case-insensitively: ``x``, ``x_1``, ``x_2``)."""
    taken: set[str] = set()
    out = []
    for name in names:
        new, k = name, 0
        while new.lower() in taken:
            k += 1
            new = f"{name}_{k}"
        taken.add(new.lower())
        out.append(new)
    return tuple(out)


def _cell(value: Any) -> str:
    text = str(value)
    for char, escaped in _ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @classmethod
    def from_result(cls, result: Any) -> Table:
        """A DuckDB result (``conn.execute(...)``) as a table; fetches every row."""
        names = _unique([str(d[0]) for d in result.description])
        return cls(names, tuple(tuple(r) for r in result.fetchall()))

    @property
    def empty(self) -> bool:
        return not self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def records(self) -> list[dict[str, Any]]:
        """One ``{column: value}`` per row."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_text(self) -> str:
        """The rows as ``DataFrame.to_string(index=False)`` prints them: every cell right-justified to its
        column's width, columns one space apart; an integer column's header takes a leading space (pandas'
        room for a sign), text is written as it is (tab and newlines escaped, NULL as ``None``)."""
        if self.empty:
            return f"Empty DataFrame\nColumns: [{', '.join(self.columns)}]\nIndex: []"
        cols: list[list[str]] = []
        for j, name in enumerate(self.columns):
            values = [row[j] for row in self.rows]
            numeric = all(_is_int(v) for v in values)
            cells = [_cell(name) if not numeric else " " + _cell(name)] + [_cell(v) for v in values]
            width = max(len(c) for c in cells)
            cols.append([c.rjust(width) for c in cells])
        return "\n".join(" ".join(line) for line in zip(*cols, strict=True))
