"""Export a bank to Parquet + a sha256 manifest, and rebuild a bank from such an export exactly.

The manifest records each table's file, sha256 and row count, the migrations the bank was at, the
history head and the snapshot id. Importing checks every hash first, loads every table in one
transaction and then checks that the rebuilt bank has the same snapshot id.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

import adtbase
from adtbase.errors import BankError, InputError

from . import migrate
from .bank import Bank, open_bank

MANIFEST = "manifest.json"
# The events as exports carry them: each with its previous event's hash, as before migration 005.
# (The first event's previous hash is history.GENESIS, 64 zeros.)
EVENTS_EXPORT = ("SELECT seq, ts, kind, item_id, ref, payload, coalesce(lag(hash) OVER (ORDER BY seq), repeat('0', 64)) "
                 "AS prev_hash, hash FROM events ORDER BY ALL")


BATCH_HISTORY = 6   # itembank's migration that gave rows the seq of the event that recorded them
ITEM_KEYS = 7       # itembank's migration that keyed item_tags by an integer item key


def _itembank_migration(version: int) -> str:
    return next(m.sql for m in migrate.shipped_migrations() if m.room == "itembank" and m.version == version)


def backfill_seq(conn: Any) -> None:
    """Give rows loaded from an export made before migration 006 their seq, by 006's own UPDATE statements (the
    scratch tables have seq columns added)."""
    statements, lines = [], []
    for line in _itembank_migration(BATCH_HISTORY).splitlines():
        if line.startswith("--"):
            continue
        lines.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(lines))
            lines = []
    conn.execute("\n".join(s for s in statements if s.lstrip().startswith("UPDATE ")))


def verify_export_rows(folder: Path, manifest: dict[str, Any]) -> tuple[int, str] | None:
    """(first bad seq, problem) when an export's bulk-written rows do not match the batch events it carries (the
    check ``bank verify`` makes on a bank, ``history.verify_rows_against_batches``), else None. The tables are read
    into a scratch in-memory DuckDB; an export from before migration 006 gets its rows' seq as 006 gives them."""
    import duckdb

    from . import history

    entries = manifest.get("tables", {})
    if any(t not in entries for t in ("events", *history.BATCH_TABLES)):
        return None   # an export without these tables has no bulk-written rows to check
    conn = duckdb.connect()
    try:
        for table in ("events", *history.BATCH_TABLES):
            conn.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet(?)",  # noqa: S608 - allow-listed names
                         [str(folder / str(entries[table]["file"]))])
        if "seq" not in _columns(conn, "items"):
            for table in history.BATCH_TABLES:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN seq BIGINT")  # noqa: S608 - allow-listed names
            backfill_seq(conn)
        if "item_key" not in _columns(conn, "item_tags"):
            conn.execute(_itembank_migration(ITEM_KEYS))   # an export from before 007: tags keyed as 007 keys them
        return history.verify_rows_against_batches(conn)
    finally:
        conn.close()


def _columns(conn: Any, table: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                       [table]).fetchall()}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bank_tables(bank: Bank) -> list[str]:
    """Base tables of the bank, from the catalogue (these names are the allow-list for export)."""
    rows = bank.conn.execute("""SELECT table_name FROM information_schema.tables
                                WHERE table_schema = 'main' AND table_type = 'BASE TABLE'
                                ORDER BY table_name""").fetchall()
    return [r[0] for r in rows]


def export(bank: Bank, out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise InputError(f"{out_dir} is not empty; export into a new folder")
    head = bank.record_head(f"export to {out_dir}")
    tables: dict[str, Any] = {}
    for table in bank_tables(bank):
        if table == "schema_migrations":
            continue
        # Stable row order so the same bank exports the same bytes. The bank stores no prev_hash (migration
        # 005); the export keeps its columns as they were, so a chain checks with no bank (`adt audit verify`).
        select = EVENTS_EXPORT if table == "events" else f"SELECT * FROM {table} ORDER BY ALL"  # noqa: S608 - catalogue name
        frame = bank.conn.sql(select).to_arrow_table()
        path = out_dir / f"{table}.parquet"
        pq.write_table(frame, path)
        tables[table] = {"file": path.name, "rows": frame.num_rows, "sha256": file_sha256(path)}
    migrations = [list(r) for r in bank.conn.execute(
        "SELECT room, version, name, sha256 FROM schema_migrations ORDER BY room, version").fetchall()]
    manifest = {"format": "adt-bank-export/1", "adt_version": adtbase.__version__, "migrations": migrations,
                "history_head": {"n_events": head.n_events, "hash": head.hash},
                "snapshot_id": bank.snapshot_id(), "tables": tables}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        raise InputError(f"{folder}: no {MANIFEST}; not an adt export")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg})") from None
    return manifest


def verify_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems with the export's files (missing, or a sha256 that does not match)."""
    problems = []
    for table, entry in sorted(manifest.get("tables", {}).items()):
        path = folder / entry["file"]
        if not path.exists():
            problems.append(f"{table}: file {entry['file']} is missing")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{table}: {entry['file']} does not match its sha256 in the manifest")
    return problems


def import_snapshot(folder: Path, bank_path: Path) -> dict[str, Any]:
    """Build a new bank at ``bank_path`` from an export; nothing is left behind if it fails."""
    manifest = read_manifest(folder)
    problems = verify_files(folder, manifest)
    if problems:
        raise InputError(f"{folder}: " + "; ".join(problems))
    migrate.load_rooms(str(m[0]) for m in manifest.get("migrations", []))
    shipped = {(m.room, m.version): m.sha256 for m in migrate.shipped_migrations()}
    for room, version, name, sha in manifest["migrations"]:
        if shipped.get((room, version)) != sha:
            raise BankError(f"{folder}: export was made with migration {room}/{name}, which this adt does not "
                            f"ship unchanged; use the adt version {manifest.get('adt_version')}")
    if bank_path.exists():
        raise BankError(f"{bank_path} already exists; import a snapshot into a new bank path")
    # Built at the export's migrations, then upgraded by the next open: an old export goes through the migrations
    # an old bank goes through (006 gives its rows their seq, 007 its item keys and exposure), no second copy of them.
    schema = {(str(m[0]), int(m[1])) for m in manifest["migrations"]}
    try:
        with open_bank(bank_path, create=True, purpose="bank import-snapshot", schema=schema) as bank:
            known = set(bank_tables(bank))
            with bank.transaction() as conn:
                for table in ("taxonomy_keys", "taxonomy_values", "settings"):
                    conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
                for table, entry in sorted(manifest["tables"].items()):
                    if table not in known:
                        raise BankError(f"{folder}: table {table!r} is not part of this adt's bank")
                    # prev_hash is derived (see EVENTS_EXPORT); a bank before migration 005 still stores it.
                    drop = " EXCLUDE (prev_hash)" if table == "events" and "prev_hash" not in _columns(conn, table) else ""
                    conn.execute(f"INSERT INTO {table} BY NAME SELECT *{drop} FROM read_parquet(?)",  # noqa: S608 - catalogue name
                                 [str(folder / entry["file"])])
        with open_bank(bank_path, purpose="bank import-snapshot") as bank:
            got = bank.snapshot_id()
            if got != manifest["snapshot_id"]:
                raise BankError(f"rebuilt bank has snapshot {got}, the export says {manifest['snapshot_id']}")
            # The export's own head record is part of the history_heads table already.
    except BaseException:
        for leftover in (bank_path, bank_path.with_name(bank_path.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    return manifest
