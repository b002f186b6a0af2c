"""The tag taxonomy: which keys exist, which are closed, and the values closed keys allow."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

import duckdb
import yaml

from adtbase.errors import TaxonomyError

# Keys that are columns of every item or computed by the bank, never rows of item_tags.
BUILTIN_KEYS = ("language", "item_type", "frequency_tier", "difficulty_band")


@dataclass(frozen=True)
class Taxonomy:
    closed: dict[str, frozenset[str]]   # closed key -> allowed values
    open: frozenset[str]                 # open keys

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.closed) | self.open

    def check(self, key: str, value: str, where: str) -> None:
        """Raise TaxonomyError naming ``where`` if key or value is not allowed."""
        if key not in self.keys:
            raise TaxonomyError(f"{where}: unknown tag key {key!r}; known keys: {', '.join(sorted(self.keys))} "
                                f"(use --extend-taxonomy to add it)")
        allowed = self.closed.get(key)
        if allowed is not None and value not in allowed:
            raise TaxonomyError(f"{where}: tag {key}={value!r} is not allowed; {key} takes one of: "
                                f"{', '.join(sorted(allowed))} (use --extend-taxonomy to add it)")

    def missing(self, pairs: Iterable[tuple[str, str]]) -> tuple[set[str], set[tuple[str, str]]]:
        """New keys and new closed values among ``pairs`` (for --extend-taxonomy)."""
        keys, values = set(), set()
        for key, value in pairs:
            if key not in self.keys:
                keys.add(key)
            elif key in self.closed and value not in self.closed[key]:
                values.add((key, value))
        return keys, values


def default_yaml() -> dict:
    text = (resources.files("itembank") / "taxonomy.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def seed(conn: duckdb.DuckDBPyConnection, spec: dict | None = None) -> None:
    """Write a taxonomy (the packaged default unless given) into a new bank."""
    spec = spec or default_yaml()
    for key, entry in spec["keys"].items():
        closed = bool(entry.get("closed", False))
        conn.execute("INSERT INTO taxonomy_keys VALUES (?, ?, ?)", [key, closed, entry.get("description")])
        for value in entry.get("values", []) if closed else []:
            conn.execute("INSERT INTO taxonomy_values VALUES (?, ?)", [key, str(value)])


def load(conn: duckdb.DuckDBPyConnection) -> Taxonomy:
    closed: dict[str, set[str]] = {}
    open_keys = set()
    for key, is_closed in conn.execute("SELECT key, closed FROM taxonomy_keys").fetchall():
        if is_closed:
            closed[key] = set()
        else:
            open_keys.add(key)
    for key, value in conn.execute("SELECT key, value FROM taxonomy_values").fetchall():
        closed.setdefault(key, set()).add(value)
    return Taxonomy({k: frozenset(v) for k, v in closed.items()}, frozenset(open_keys))


def extend(conn: duckdb.DuckDBPyConnection, new_keys: Iterable[str], new_values: Iterable[tuple[str, str]]) -> None:
    """Add open keys and closed values (inside the caller's transaction)."""
    for key in sorted(new_keys):
        conn.execute("INSERT INTO taxonomy_keys VALUES (?, false, 'added by --extend-taxonomy')", [key])
    for key, value in sorted(new_values):
        conn.execute("INSERT INTO taxonomy_values VALUES (?, ?)", [key, value])
