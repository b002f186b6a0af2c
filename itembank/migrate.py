"""Numbered SQL migrations of every room, applied in one transaction and verified on open.

Each room ships ``<room>/migrations/NNN_name.sql``. The bank records each applied migration with its
sha256; opening a bank re-hashes the shipped files and refuses a bank whose recorded migrations were
changed or come from a newer adt (a version this install does not ship).

Rooms register their migrations: ``itembank`` its own here, every other room from its face on import
(``register_migrations("calibration")`` in ``calibration/__init__.py``), so this module names no other
room. A bank gets the rooms' migrations in registration order, which is import order: a room's face
imports the rooms it depends on first, so their tables come before its own (today: itembank, then
calibration). The app (``adt.cli``, before it opens a bank) imports every room that registers, so a bank any
command creates gets all of them; a bank that records a room this process has not imported yet makes
``pending`` import that room (only a package that ships a ``migrations/`` folder) so its files are verified as before.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from adtbase.errors import MigrationError

from .sql import first

if TYPE_CHECKING:  # annotations only: the face imports this module, and `import itembank` stays light
    import duckdb

# The rooms whose migrations every bank gets, in registration order (itembank's own first).
_ROOMS: list[str] = ["itembank"]
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    room: str
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def register_migrations(room: str) -> None:
    """Give every bank ``<room>/migrations/NNN_*.sql``: a room's face calls this when it is imported."""
    if room not in _ROOMS:
        _ROOMS.append(room)


def registered_rooms() -> tuple[str, ...]:
    return tuple(_ROOMS)


def load_rooms(rooms: Iterable[str]) -> None:
    """Import the rooms a bank (or an export) records that have not registered in this process yet, so
    their faces register them; a name that is not a package shipping ``migrations/`` is left alone (it then
    counts as not shipped)."""
    for room in sorted(set(rooms) - set(_ROOMS)):
        if not room.isidentifier():
            continue
        spec = importlib.util.find_spec(room)
        locations = spec.submodule_search_locations if spec is not None else None
        if locations and any((Path(loc) / "migrations").is_dir() for loc in locations):
            importlib.import_module(room)


def shipped_migrations() -> list[Migration]:
    out = []
    for room in tuple(_ROOMS):
        folder = resources.files(room) / "migrations"
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            match = _NAME.match(entry.name)
            if match:
                out.append(Migration(room, int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return out


def _applied(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int, str, str]]:
    exists = first(conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"))
    if not exists or not exists[0]:
        return []
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT room, version, name, sha256 FROM schema_migrations ORDER BY room, version").fetchall()]


def pending(conn: duckdb.DuckDBPyConnection) -> list[Migration]:
    """Verify what the bank recorded against what this install ships; return what is still to apply."""
    applied = _applied(conn)
    load_rooms(room for room, *_ in applied)
    shipped = {(m.room, m.version): m for m in shipped_migrations()}
    done = set()
    for room, version, name, sha in applied:
        mig = shipped.get((room, version))
        if mig is None:
            raise MigrationError(
                f"bank has migration {room}/{name} that this adt does not ship: it was written by a newer "
                f"adt; upgrade adt to open it")
        if mig.sha256 != sha:
            raise MigrationError(
                f"migration {room}/{name} recorded in the bank (sha256 {sha[:12]}) differs from the shipped "
                f"file (sha256 {mig.sha256[:12]}): the bank or the install was altered")
        done.add((room, version))
    return [m for key, m in shipped.items() if key not in done]


def apply(conn: duckdb.DuckDBPyConnection, migrations: list[Migration],
          after: Callable[[duckdb.DuckDBPyConnection, list[Migration]], None] | None = None) -> None:
    """Apply ``migrations`` (and create the bookkeeping table) in one transaction; ``after`` runs in it last (a
    room fills derived data a migration created from its own rules, which SQL files do not repeat)."""
    if not migrations:
        return
    now = datetime.now(UTC).isoformat()
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
            room VARCHAR NOT NULL, version INTEGER NOT NULL, name VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL, applied_at VARCHAR NOT NULL, PRIMARY KEY (room, version))""")
        for mig in migrations:
            conn.execute(mig.sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?, ?, ?)",
                         [mig.room, mig.version, mig.name, mig.sha256, now])
        if after is not None:
            after(conn, migrations)
        conn.execute("COMMIT")
    except Exception as exc:
        conn.execute("ROLLBACK")
        raise MigrationError(f"applying migrations failed: {exc}") from exc
