"""The bank: one DuckDB file, opened only for as long as a command needs it.

``open_bank`` takes the bank's lock (see lock.py), opens the file, verifies and applies migrations,
and yields a ``Bank``. Every write is one transaction: a failure leaves the file as it was.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from adtbase import lifecycle, review
from adtbase.errors import BankBusy, BankError, FormNotFound, InputError, ItemNotFound, TaxonomyError
from adtbase.names import check_name
from adtbase.qc import CHECKS as QC_CHECKS
from adtbase.qc import FLAGS as QC_FLAGS
from adtbase.qc import current_flags as qc_current_flags
from adtbase.registry import did_you_mean
from adtbase.verdicts import JUDGMENT_COLUMNS, JUDGMENT_KEY, PENDING, SCORED_BY

from . import history, migrate, taxonomy
from .history import Event, Head, VerifyReport
from .lock import DEFAULT_WAIT_S as DEFAULT_WAIT_S
from .lock import acquire
from .sql import first
from .taxonomy import Taxonomy

if TYPE_CHECKING:  # numpy, pandas, pyarrow and the importer load in the methods that use them: opening a bank
    # and the light reads (stats_table, verify, snapshot_id) cost no pandas start-up (tests/adt/test_startup.py)
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from adtbase.table import Table

    from .importer import ImportOptions, PreparedItems, ProblemLog, RowLabels

DEFAULT_SETTINGS = {
    # An item is 'high' frequency once more than this many runs, or publications, exposed it.
    "tier_high_runs": "5",
    "tier_high_publications": "1",
    # Difficulty band cut points on the calibrated b: 'terciles' or two numbers "lo,hi".
    "band_cuts": "terciles",
}
# The lifecycle rules' settings (``adt.workflow.lifecycle`` reads and checks them; ``adt bank lifecycle``):
# their defaults hold until one is set, and are not written into a new bank (settings are part of its snapshot;
# so for every setting added after the first: LATER_SETTINGS, which a bank made before them lacks too).
LATER_SETTINGS = {
    # An item is 'low' frequency (fresh) while no publication and at most this many runs exposed it: 0 = never
    # exposed; a programme that pretests each item on one round's models may count that round as still fresh.
    "tier_low_runs": "0",
}
# The judges' policy (``adt judge run``): leave out judges of the candidate's model family (true | false).
JUDGE_SETTINGS = {"judge_exclude_self": "false"}
LIFECYCLE_SETTINGS = {
    "promote_min_responses": "100",  # pretest -> operational: at least this many responses in the calibration,
    "promote_max_se_b": "0.3",       # SE(b) at most this, no fit flag, no open QC flag
    "rest_after_runs": "900",        # operational -> rested once this many runs exposed it since it came back (0: off)
    "rest_rounds": "2",              # ... for this many rounds
    "retire_after_runs": "3000",     # -> retired once this many runs exposed it in all (0: off)
    "retire_after_publications": "10",  # ... or this many publications (0: off)
    "retire_contaminated": "true",   # ... or the latest calibration's exposure-drift check flags it
}

# Filter keys that are columns (or computed columns) of the item view; anything else is a tag key.
COLUMN_KEYS = ("item_id", "language", "item_type", "review_state", "stage", "origin", "source", "generator",
               "frequency_tier", "difficulty_band")
# The item view's computed columns (``Bank._item_view_sql``), beside the items table's own.
VIEW_COLUMNS = ("exposure_runs", "exposure_publications", "first_exposure_round", "last_exposure_round",
                "first_exposed_at", "last_exposed_at", "frequency_tier", "difficulty_band", "calibrated_b", "n_choices")
# Column keys whose values are fixed (computed by the bank, or a closed state): a filter value outside them is
# a typo; within them it may match no item yet (no 'high' tier before any run) and that is no error.
# The most memory ``stats`` by tag keys may hold in per-value item bitsets (``Bank._stats_bitsets``: a bit an item
# per tag value, tier and combination; 690 KB a set at 5.5 M items); beyond it (a key of thousands of values) the
# stats join the tag rows instead.
STATS_BITSET_BYTES = 512 * 2**20
# ... and the most combinations (tier x a value, or none, of each key) it ANDs and counts: each costs a pass over
# a set, so many (``--by domain --by domain``: 1,300) cost more than the join (1 M items: 0.5 vs 0.18 CPU-s).
STATS_BITSET_COMBOS = 512
# ... and the fewest items (the span of their keys) for which it is worth loading numpy (0.1 s) for them: below it the
# join takes less (100 k items: ~0.05 s) and `adt bank stats` loads DuckDB alone.
STATS_BITSET_MIN_ITEMS = 250_000
_BITSET_BLOCK_WORDS = 1024
FIXED_VALUES = {"frequency_tier": ("low", "medium", "high"), "difficulty_band": ("hard", "medium", "easy", "unknown"),
                "review_state": review.STATES, "stage": lifecycle.STAGES}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ImportReport:
    files: tuple[str, ...]
    rows: int
    items_in_files: int
    new_items: int
    existing_items: int
    merged_within_files: int
    merged_across_sources: int
    new_aliases: int
    new_tags: int
    batch_id: str | None
    # One record per row merged into an earlier row of the import (same content): where it is (file and
    # line or row), its external id and the item both are.
    merged_rows: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ResponsesReport:
    file: str
    rows: int
    matched: int
    unknown_rows: int
    unknown_examples: tuple[str, ...]
    runs: int
    new_responses: int
    merged_duplicate_items: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def open_bank(path: str | Path, *, create: bool = False, wait_s: float = DEFAULT_WAIT_S,
              purpose: str = "adt", on_wait: Any = None,
              schema: Collection[tuple[str, int]] | None = None) -> Iterator[Bank]:
    """Hold the bank for the duration of the ``with`` block (see the module doc). ``schema`` (with ``create``):
    only those (room, version) migrations, as an export recorded them; the next open upgrades the rest."""
    path = Path(path)
    if create and path.exists():
        raise BankError(f"{path} already exists; pick another path or remove it")
    if not create and not path.exists():
        raise BankError(f"no bank at {path}; create one with `adt init` (or pass --bank / set ADT_BANK)")
    lock = acquire(path, purpose=purpose, wait_s=wait_s, on_wait=on_wait)
    try:
        conn = _connect(path, wait_s)
        bank = Bank(conn, path)
        try:
            if create:
                _create(conn, schema=schema)
            else:
                _upgrade(conn, path)
            yield bank
        finally:
            conn.close()
            if bank.conn is not conn:  # reconnected inside the block (a copy, a large import)
                bank.conn.close()
    finally:
        lock.release()


def _connect(path: Path, wait_s: float) -> duckdb.DuckDBPyConnection:
    """Open the file; a process outside adt holding DuckDB's own lock is waited for like our lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException as exc:
            msg = str(exc)
            if "lock" in msg.lower():
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                raise BankBusy(f"bank {path} is held by another process: {msg}") from None
            raise BankError(f"{path} is not a usable DuckDB bank: {msg}") from None
        except duckdb.Error as exc:
            raise BankError(f"{path} is not a usable DuckDB bank: {exc}") from None


def _create(conn: duckdb.DuckDBPyConnection, seed_taxonomy: bool = True,
            schema: Collection[tuple[str, int]] | None = None) -> None:
    shipped = migrate.shipped_migrations()
    migrate.apply(conn, shipped if schema is None else [m for m in shipped if (m.room, m.version) in schema])
    conn.execute("BEGIN TRANSACTION")
    if seed_taxonomy:
        taxonomy.seed(conn)
    for key, value in DEFAULT_SETTINGS.items():
        conn.execute("INSERT INTO settings VALUES (?, ?)", [key, value])
    conn.execute("COMMIT")


def _upgrade(conn: duckdb.DuckDBPyConnection, path: Path) -> None:
    tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "schema_migrations" not in tables:
        raise BankError(f"{path} is a DuckDB file but not an adt bank (no schema_migrations table)")
    todo = migrate.pending(conn)
    if todo:
        migrate.apply(conn, todo, after=_derive)


def _derive(conn: duckdb.DuckDBPyConnection, applied: list[migrate.Migration]) -> None:
    """Fill the derived tables an upgrade just created (in its transaction): 007's per-item exposure."""
    if any(m.room == "itembank" and m.version == 7 for m in applied):
        refresh_exposure(conn)


# The event kinds that set a review state (each is one of adtbase.review's states: literals from an allow-list).
# The columns an import or an edit writes; the stage columns (migration 003) take their defaults: pretest.
_ITEM_COLUMNS = ("item_id, question, choices, answer, item_type, language, content_hash, source, source_version, "
                 "license, origin, generator, generator_params, parent_item_id, review_state, declared_band, "
                 "import_batch, created_at, retired_reason")
_STATE_KINDS_SQL = ", ".join(f"'{k}'" for k in review.STATES)


def _decided(last: Mapping[str, Any] | None) -> str:
    if not last:
        return " (as imported)"
    who = f" by {last['reviewer']}" if last.get("reviewer") else ""
    why = f": {last['reason']}" if last.get("reason") else ""
    return f" ({last['state']}{who} at {last['ts']}{why})"


def _digest_sql(table: str, cols: Sequence[str]) -> str:
    # Order-independent digest: xor of per-row md5s (rows are unique by each table's key).
    expr = ", ".join(f"coalesce(CAST({c} AS VARCHAR), '\\N')" for c in cols)
    return f"SELECT count(*), coalesce(bit_xor(md5_number(concat_ws('|', {expr}))), 0) FROM {table}"  # noqa: S608


# Tables and columns that make up a snapshot: identifiers from this allow-list only.
SNAPSHOT_TABLES: dict[str, tuple[str, ...]] = {
    "items": ("item_id", "content_hash", "review_state", "declared_band", "retired_reason"),
    "item_aliases": ("source", "external_id", "item_id"),
    "item_tags": ("item_id", "key", "value"),   # by item id (SNAPSHOT_RELATIONS), not by the integer key
    "taxonomy_values": ("key", "value"),
    "taxonomy_keys": ("key", "closed"),
    "responses": ("run_id", "item_id", "score"),
    "runs": ("run_id", "model", "kind", "form_name", "round_no", "status"),
    "form_items": ("form_name", "position", "item_id"),
    "publications": ("form_name", "round_no"),
    "item_difficulty": ("item_id", "calibration_id", "b"),
    "settings": ("key", "value"),
}


# Relations digested in place of a table: tags carry integer item keys (migration 007) and are digested by item
# id, so a tag moved to another item is another snapshot and the ids of banks from before 007 stay as they were.
SNAPSHOT_RELATIONS = {"item_tags": "(SELECT i.item_id, t.key, t.value FROM item_tags t JOIN items i USING (item_key))"}
# The next free item key (items get one at insert: migration 007); no sequence, so an imported export continues it.
_NEXT_KEY = "(SELECT coalesce(max(item_key), 0) + 1 FROM items)"
# Exposure (the one place it is aggregated): per item, the responses of every run (rounds from the runs) and the
# publications of every form holding it. ``{only}``: an optional relation of item ids to restrict it to.
_EXPOSURE_SQL = """
    WITH r AS (SELECT x.item_id, count(*) n, min(ru.round_no) fr, max(ru.round_no) lr,
                      min(x.answered_at) ft, max(x.answered_at) lt
               FROM responses x JOIN runs ru USING (run_id) {r_only} GROUP BY x.item_id),
         p AS (SELECT fi.item_id, count(*) n, min(pb.round_no) fr, max(pb.round_no) lr,
                      min(pb.published_at) ft, max(pb.published_at) lt
               FROM publications pb JOIN form_items fi USING (form_name) {p_only} GROUP BY fi.item_id)
    SELECT i.item_key, coalesce(r.n, 0) AS runs, r.fr AS runs_first_round, r.lr AS runs_last_round,
           r.ft AS runs_first_at, r.lt AS runs_last_at, coalesce(p.n, 0) AS pubs, p.fr AS pubs_first_round,
           p.lr AS pubs_last_round, p.ft AS pubs_first_at, p.lt AS pubs_last_at
    FROM r FULL OUTER JOIN p USING (item_id) JOIN items i USING (item_id)"""


def tier_sql(runs: str, pubs: str) -> str:
    """The frequency tier rule (the one place it is written) over SQL expressions of an item's run and publication
    counts; binds ``tier_params``: low = no publication and at most tier_low_runs runs (default 0: never exposed);
    high = more than tier_high_runs runs or more than tier_high_publications publications; else medium."""
    return (f"CASE WHEN {pubs} = 0 AND {runs} <= ? THEN 'low' "
            f"WHEN {runs} > ? OR {pubs} > ? THEN 'high' ELSE 'medium' END")


def tier_params(settings: Mapping[str, str]) -> list[int]:
    """``tier_sql``'s parameters, from the bank's settings."""
    return [int(settings["tier_low_runs"]), int(settings["tier_high_runs"]), int(settings["tier_high_publications"])]


def exposure_sql(only: str | None = None) -> str:
    """The per-item exposure rows (``item_exposure``'s columns), of the items whose ids ``only`` (a relation name
    with an ``item_id`` column) lists, or of every exposed item."""
    if only is None:
        return _EXPOSURE_SQL.format(r_only="", p_only="")
    if not only.isidentifier():
        raise ValueError(f"exposure_sql: {only!r} is not a relation name")
    return _EXPOSURE_SQL.format(r_only=f"WHERE x.item_id IN (SELECT item_id FROM {only})",  # noqa: S608 - a name
                                p_only=f"WHERE fi.item_id IN (SELECT item_id FROM {only})")  # noqa: S608


def refresh_exposure(conn: duckdb.DuckDBPyConnection, only: str | None = None) -> None:
    """Recompute ``item_exposure`` for the items ``only`` lists (all of them when None), inside the caller's
    transaction: a publication calls it for the form's items (responses go through ``add_answered``)."""
    if only is None:
        conn.execute("DELETE FROM item_exposure")
    else:
        conn.execute(f"DELETE FROM item_exposure WHERE item_key IN "  # noqa: S608 - a registered relation's name
                     f"(SELECT i.item_key FROM items i WHERE i.item_id IN (SELECT item_id FROM {only}))")
    conn.execute(f"INSERT INTO item_exposure BY NAME {exposure_sql(only)}")  # noqa: S608


def note_tag_values(conn: duckdb.DuckDBPyConnection, pairs: str, params: Sequence[Any] = ()) -> None:
    """Add to ``tag_values`` the (key, value) pairs it lacks among ``pairs`` (SQL giving ``key, value`` columns: a
    registered relation or bound values), inside the caller's transaction: every writer of ``item_tags`` calls it with
    what it writes (migration 008)."""
    conn.execute(f"""INSERT INTO tag_values SELECT DISTINCT p.key, p.value FROM ({pairs}) p(key, value)
                     WHERE NOT EXISTS (SELECT 1 FROM tag_values v WHERE v.key = p.key AND v.value = p.value)""",  # noqa: S608 - callers' fixed text
                 list(params))


def add_answered(conn: duckdb.DuckDBPyConnection, fresh: str, ts: str) -> None:
    """Add responses just inserted (``fresh``: a relation with ``run_id, item_id``, answered at ``ts``) to
    ``item_exposure``, inside the caller's transaction: each touched item's row merged with the new responses'
    count, rounds and time (count adds, first/last take the least/greatest), so an ingest of a few responses
    reads those items' rows, not every stored response (``refresh_exposure`` would: 80 ms at 500 k responses,
    growing with them). Equal to ``exposure_sql`` (tests/itembank/test_item_keys.py)."""
    if not fresh.isidentifier():
        raise ValueError(f"add_answered: {fresh!r} is not a relation name")
    conn.execute(f"""CREATE OR REPLACE TEMP TABLE _exp_new AS
        SELECT i.item_key, count(*) AS n, min(ru.round_no) AS fr, max(ru.round_no) AS lr
        FROM {fresh} f JOIN runs ru USING (run_id) JOIN items i USING (item_id) GROUP BY i.item_key""")  # noqa: S608
    conn.execute("""CREATE OR REPLACE TEMP TABLE _exp_merged AS
        SELECT n.item_key, coalesce(o.runs, 0) + n.n AS runs, least(o.runs_first_round, n.fr) AS runs_first_round,
               greatest(o.runs_last_round, n.lr) AS runs_last_round, least(o.runs_first_at, ?) AS runs_first_at,
               greatest(o.runs_last_at, ?) AS runs_last_at, coalesce(o.pubs, 0) AS pubs,
               o.pubs_first_round, o.pubs_last_round, o.pubs_first_at, o.pubs_last_at
        FROM _exp_new n LEFT JOIN item_exposure o USING (item_key)""", [ts, ts])
    conn.execute("DELETE FROM item_exposure WHERE item_key IN (SELECT item_key FROM _exp_new)")
    conn.execute("INSERT INTO item_exposure BY NAME SELECT * FROM _exp_merged")
    conn.execute("DROP TABLE _exp_new")
    conn.execute("DROP TABLE _exp_merged")


@dataclass
class _ImportTally:
    """Counts of one import, summed over its chunks."""

    rows: int = 0
    new_items: int = 0
    new_aliases: int = 0
    new_tags: int = 0
    cross_source: int = 0
    taxonomy_changed: bool = False
    # Items the bank had before the import, among its rows (few in a large import). The items it created are
    # in the bank with its batch id: no set of millions of ids is kept (distinct items = new + existing).
    existing: set[str] = field(default_factory=set)
    merged: list[dict[str, Any]] = field(default_factory=list)   # the rows merged into an earlier one

    @property
    def changed(self) -> bool:
        return bool(self.new_items or self.new_aliases or self.new_tags or self.taxonomy_changed)

    def report(self, files: list[str], batch: str) -> ImportReport:
        distinct = self.new_items + len(self.existing)
        return ImportReport(files=tuple(files), rows=self.rows, items_in_files=distinct,
                            new_items=self.new_items, existing_items=len(self.existing),
                            merged_within_files=self.rows - distinct, merged_across_sources=self.cross_source,
                            new_aliases=self.new_aliases, new_tags=self.new_tags,
                            batch_id=batch if self.changed else None, merged_rows=tuple(self.merged))


def _strings(frame: pd.DataFrame, cols: Sequence[str]) -> pa.Table:
    """Columns as an Arrow table of strings: an empty pandas column would reach DuckDB as DOUBLE."""
    import pyarrow as pa

    return pa.table({c: pa.array(frame[c].tolist() if c in frame.columns else [], pa.string()) for c in cols})


class _ChunksAhead:
    """The import files' chunks, each read and checked (``importer.prepare``) one chunk ahead in a worker thread
    while the caller writes the one before: the check is Python that holds the GIL, DuckDB's write lets go of it,
    so the two share the cores.  Yields ``(path, frame, label, read problems, prepared or None, the taxonomy it was
    checked against)``; the caller sets ``taxonomy`` to the bank's current one before taking the next chunk, and
    checks a chunk again if it was checked against an older one (an earlier chunk extended the taxonomy).  An empty
    frame is not checked ahead (the caller decides, knowing every problem so far).  Reading problems go to a log of
    the file's own, handed over with its first chunk, so no log is written by two threads."""

    def __init__(self, paths: Sequence[str | Path], chunk_rows: int, opts: ImportOptions, tax: Taxonomy) -> None:
        self.paths, self.chunk_rows, self.opts = paths, chunk_rows, opts
        self.taxonomy = tax

    def _frames(self) -> Iterator[tuple[str | Path, pd.DataFrame, str, Any]]:
        from .importer import ProblemLog, read_chunks

        for p in self.paths:
            log: Any = ProblemLog()
            for frame, label in read_chunks(Path(p), self.chunk_rows, log):
                yield p, frame, label, log
                log = ProblemLog()

    def __iter__(self) -> Iterator[tuple[str | Path, pd.DataFrame, str, Any, Any, Taxonomy]]:
        from concurrent.futures import ThreadPoolExecutor

        from .importer import prepare

        frames = self._frames()

        def ahead(tax: Taxonomy) -> tuple | None:
            got = next(frames, None)
            if got is None:
                return None
            p, frame, label, log = got
            prep = None if frame.empty else prepare(frame, Path(p), label, self.opts, tax)
            return p, frame, label, log, prep, tax

        with ThreadPoolExecutor(1, thread_name_prefix="adt-import") as pool:
            job = pool.submit(ahead, self.taxonomy)
            while (got := job.result()) is not None:
                job = pool.submit(ahead, self.taxonomy)
                held, got = [got], None
                yield held.pop()   # (not kept in this frame while the caller writes: the memory of a chunk)


class Bank:
    """An open bank. Construct it through ``open_bank``."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, path: Path):
        self.conn = conn
        self.path = path
        self._in_transaction = False

    # -- transactions -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction; a block inside another joins the outer one (DuckDB has no nested transactions, and a
        refused BEGIN aborts the open one), which commits or rolls back the whole."""
        if self._in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        finally:
            self._in_transaction = False
        self.conn.execute("COMMIT")

    # -- a room's own tables -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> duckdb.DuckDBPyConnection:
        """Run one statement (values bound with ``?``) on a room's *own* tables, the ones its migrations
        create; the bank's tables are read and written through the methods of this class. Inside
        ``transaction()`` it is part of the transaction. Returns the result to fetch from
        (``.df()``, ``.fetchone()``, ``.fetchall()``, ``.fetchnumpy()``)."""
        return self.conn.execute(sql, list(params))

    @contextmanager
    def registered(self, frames: Mapping[str, pd.DataFrame]) -> Iterator[None]:
        """The ``frames`` visible to ``execute`` under their names for the block (bulk inserts into a room's
        own tables: ``INSERT INTO t SELECT ... FROM name``)."""
        done: list[str] = []
        try:
            for name, frame in frames.items():
                self.conn.register(name, frame)
                done.append(name)
            yield
        finally:
            for name in done:
                self.conn.unregister(name)

    def _register(self, name: str, frame: pd.DataFrame | pa.Table) -> None:
        # DuckDB keeps a registered object alive until the transaction ends; as Arrow it is compact
        # (a chunk of a million-item import is ~30 MB as Arrow, several times that as pandas objects).
        import pandas as pd
        import pyarrow as pa

        if isinstance(frame, pd.DataFrame):
            frame = pa.Table.from_pandas(frame, preserve_index=False)
        self.conn.register(name, frame)

    # -- settings & taxonomy ----------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        """The stored settings, over the lifecycle defaults of those never set."""
        return {**LATER_SETTINGS, **LIFECYCLE_SETTINGS, **dict(self.conn.execute("SELECT key, value FROM settings").fetchall())}

    def set_setting(self, key: str, value: str) -> None:
        known = [*DEFAULT_SETTINGS, *LATER_SETTINGS, *LIFECYCLE_SETTINGS, *JUDGE_SETTINGS]
        if key not in known:
            raise InputError(f"unknown setting {key!r}; settings: {', '.join(known)}")
        if key in JUDGE_SETTINGS and value not in ("true", "false"):
            raise InputError(f"setting {key}: {value!r} is not true or false")
        with self.transaction() as conn:
            conn.execute("DELETE FROM settings WHERE key = ?", [key])
            conn.execute("INSERT INTO settings VALUES (?, ?)", [key, value])

    def taxonomy(self) -> taxonomy.Taxonomy:
        return taxonomy.load(self.conn)

    # -- history ----------------------------------------------------------------------------------
    def head(self) -> Head:
        return history.head(self.conn)

    def head_at(self, n_events: int) -> Head | None:
        """The head of the history as it stood after ``n_events`` events (None past the current head)."""
        if n_events == 0:
            return Head(0, history.GENESIS)
        row = first(self.conn.execute("SELECT hash FROM events WHERE seq = ?", [int(n_events)]))
        return None if row is None else Head(int(n_events), str(row[0]))

    def verify(self, expected: Head | None = None) -> VerifyReport:
        return history.verify(self.conn, expected)

    def record_head(self, purpose: str) -> Head:
        """Note the current head in the bank (forms, calibrations and exports call this)."""
        head = self.head()
        self.conn.execute("INSERT INTO history_heads VALUES (?, ?, ?, ?)", [head.n_events, head.hash, purpose, now()])
        return head

    def snapshot_id(self) -> str:
        """Chain head plus order-independent digests of the tables that define the bank's state."""
        import hashlib

        parts = [str(self.head())]
        for table, cols in SNAPSHOT_TABLES.items():
            count, digest = first(self.conn.execute(_digest_sql(SNAPSHOT_RELATIONS.get(table, table), cols)))  # type: ignore[misc]
            parts.append(f"{table}:{count}:{digest}")
        return "snap_" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]

    def copy_to(self, dest: str | Path) -> Path:
        """A consistent copy of the bank file at ``dest`` (the connection is closed around the copy, the
        lock stays held), e.g. a scratch bank for a study that must not write to this one."""
        dest = Path(dest)
        self.conn.close()
        try:
            shutil.copyfile(self.path, dest)
        finally:
            self.conn = _connect(self.path, DEFAULT_WAIT_S)
        return dest

    # -- import -----------------------------------------------------------------------------------
    def import_items(self, paths: Sequence[str | Path], opts: ImportOptions,
                     chunk_rows: int | None = None) -> ImportReport:
        """Import item files all or nothing, streaming them in chunks of rows.

        Every chunk is validated before it is written. A small import is one transaction. A large one
        would keep every chunk in DuckDB's transaction-local memory until the commit (~3 KB a row), so
        it is written chunk by chunk into a copy of the bank that replaces the bank only once the
        whole import succeeded: either way a failed import leaves the bank file byte-for-byte as it was.
        """
        from .importer import count_rows

        chunk_rows = chunk_rows or self.IMPORT_CHUNK
        if sum(count_rows(Path(p)) for p in paths) <= chunk_rows:
            return self._import(paths, opts, chunk_rows, commit_each_chunk=False)
        shadow = self.path.with_name(self.path.name + ".importing")
        shadow.unlink(missing_ok=True)
        self.conn.close()
        try:
            shutil.copyfile(self.path, shadow)
            self.conn = _connect(shadow, 0)
            # Fewer checkpoints while the chunks commit: each one rewrites the items key's index and the tables'
            # last row groups, and the blocks they leave behind stay in the file as free space (40 MiB of a 1 M
            # bank's 260). The copy's connection is closed (and checkpointed) before it replaces the bank.
            self.conn.execute(f"SET checkpoint_threshold = '{self.IMPORT_CHECKPOINT}'")
            report = self._import(paths, opts, chunk_rows, commit_each_chunk=True)
            self.conn.close()
            if report.batch_id is not None:
                os.replace(shadow, self.path)
            return report
        finally:
            try:
                self.conn.close()
            finally:
                shadow.unlink(missing_ok=True)
                shadow.with_name(shadow.name + ".wal").unlink(missing_ok=True)
                self.conn = _connect(self.path, DEFAULT_WAIT_S)

    def _import(self, paths: Sequence[str | Path], opts: ImportOptions, chunk_rows: int,
                commit_each_chunk: bool) -> ImportReport:
        from .importer import ProblemLog, prepare

        tax = self.taxonomy()
        files = [str(p) for p in paths]
        batch = "imp_" + uuid.uuid4().hex[:12]
        ts = now()
        tally = _ImportTally()
        problems = ProblemLog()   # every problem of every file; the import fails once, at the end, with all
        self.conn.execute("BEGIN TRANSACTION")
        try:
            chunks = _ChunksAhead(paths, chunk_rows, opts, tax)
            for p, frame, label, read_problems, prep, checked_with in chunks:
                problems.merge(read_problems)
                if frame.empty and problems:
                    continue   # every line of the file was a problem (not JSON)
                if prep is None or checked_with is not tax:   # (the taxonomy an earlier chunk extended)
                    prep = prepare(frame, Path(p), label, opts, tax)
                del frame
                problems.merge(prep.problems)
                if prep.new_keys or prep.new_values:
                    if not opts.extend_taxonomy:  # prepare() reports these itself; this is a backstop
                        if problems:
                            continue
                        raise TaxonomyError(f"{p}: unknown tags {sorted(prep.new_values or prep.new_keys)[:3]}")
                    taxonomy.extend(self.conn, prep.new_keys, prep.new_values)
                    tax = chunks.taxonomy = self.taxonomy()
                    tally.taxonomy_changed = True
                # Good rows are written even after a problem (into the transaction, or the copy, that is
                # dropped): the checks against the bank and earlier chunks then see the whole import.
                self._write_chunk(prep, opts, batch, ts, tally, problems)
                if commit_each_chunk:
                    self.conn.execute("COMMIT")
                    self.conn.execute("BEGIN TRANSACTION")
            if problems:
                raise problems.error(files)
            report = tally.report(files, batch)
            if not tally.changed:
                self.conn.execute("ROLLBACK")  # re-importing changes nothing, not even a batch record
                return report
            self.conn.execute("""INSERT INTO sources SELECT ?, ?, ?, ?
                                 WHERE NOT EXISTS (SELECT 1 FROM sources WHERE name = ?)""",
                              [opts.source, opts.source_version, opts.license, ts, opts.source])
            self.conn.execute("INSERT INTO import_batches VALUES (?, ?, ?, ?, ?, ?)",
                              [batch, opts.source, json.dumps(files), tally.rows, tally.new_items, ts])
            self.conn.execute("COMMIT")
            return report
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _write_chunk(self, prep: PreparedItems, opts: ImportOptions, batch: str, ts: str,
                     tally: _ImportTally, problems: ProblemLog) -> None:
        """Write one validated chunk inside the import's transaction; rows that clash with the bank or an
        earlier chunk go to ``problems`` and are left out."""
        import numpy as np

        conn = self.conn
        rows, where = prep.rows, prep.where
        rows, where = self._drop_clashes(rows, where, opts.source, problems)
        unique = rows.drop_duplicates("item_id")
        self._register("_in_rows", _strings(rows, ("external_id", "item_id", "content_hash")))
        self._register("_in_ids", _strings(unique, ("item_id",)))
        self._register("_in_tags", _strings(prep.tags, ("item_id", "key", "value")))
        try:
            found_rows = conn.execute("SELECT item_id, import_batch = ? FROM items "
                                      "WHERE item_id IN (SELECT item_id FROM _in_ids)", [batch]).fetchall()
            found = {r[0] for r in found_rows}
            before_import = {i for i, ours in found_rows if not ours}
            # Items of this chunk that an earlier row of the import already gave (created or found then).
            earlier = {i for i, ours in found_rows if ours} | (before_import & tally.existing)
            if found:
                cross_source = first(conn.execute("""
                    SELECT count(*) FROM _in_ids n WHERE n.item_id IN (SELECT item_id FROM items)
                    AND NOT EXISTS (SELECT 1 FROM item_aliases a WHERE a.item_id = n.item_id AND a.source = ?)""",
                    [opts.source]))[0]
                new_alias = conn.execute("""
                    SELECT DISTINCT r.external_id, r.item_id FROM _in_rows r
                    WHERE NOT EXISTS (SELECT 1 FROM item_aliases a WHERE a.source = ? AND a.external_id = r.external_id)""",
                    [opts.source]).df()
                new_tags = conn.execute("""
                    SELECT DISTINCT t.item_id, t.key, t.value FROM _in_tags t LEFT JOIN items i USING (item_id)
                    WHERE i.item_key IS NULL OR NOT EXISTS (SELECT 1 FROM item_tags x
                    WHERE x.item_key = i.item_key AND x.key = t.key AND x.value = t.value)""").df()
            else:
                # No item of the chunk is in the bank (a bulk import's usual chunk): none has aliases or tags yet,
                # and an external id the source gave before would have named another item (_drop_clashes left
                # those rows out), so every alias and tag is new. Three scans of tables that grow with the bank
                # spared (a 5.5 M import's chunks got slower as it went).
                cross_source = 0
                new_alias = rows[["external_id", "item_id"]].drop_duplicates().reset_index(drop=True)
                new_tags = prep.tags.drop_duplicates().reset_index(drop=True)
            new_items = unique[~unique["item_id"].isin(found)]
            parent_map = self._parent_ids(rows, opts.source, where, problems)
            items_frame = new_items.drop(columns=["external_id", "parent_external_id"]).assign(
                source=opts.source, source_version=opts.source_version, license=opts.license,
                parent_item_id=new_items["item_id"].map(parent_map), import_batch=batch, created_at=ts,
                retired_reason=None)
            self._register("_new_items", items_frame)
            self._register("_new_alias", _strings(new_alias, ("external_id", "item_id")))
            self._register("_new_tags", _strings(new_tags, ("item_id", "key", "value")))
            # The chunk's rows carry the seq of the one batch event that records them (history.BATCH_TABLES).
            seq = history.head(conn).n_events + 1
            conn.execute(f"""INSERT INTO items ({_ITEM_COLUMNS}, item_key, seq)
                SELECT {_ITEM_COLUMNS}, {_NEXT_KEY} - 1 + row_number() OVER (), ? FROM _new_items""", [seq])  # noqa: S608
            conn.execute("INSERT INTO item_aliases (source, external_id, item_id, seq) "
                         "SELECT ?, external_id, item_id, ? FROM _new_alias", [opts.source, seq])
            # Keys of the chunk's new items (they carry this seq) without reading every item, unless tags go to
            # items the bank had.
            # Written in (key, item_key) order: a chunk's rows of one key then fill whole row groups, whose zone
            # maps let a read of one key (stats, a tag filter) skip the other keys' rows.
            keyed = "items" if found else "(SELECT item_id, item_key FROM items WHERE seq = ?)"
            conn.execute(f"""INSERT INTO item_tags (item_key, key, value, seq) SELECT i.item_key, t.key, t.value, ?
                             FROM _new_tags t JOIN {keyed} i USING (item_id) ORDER BY t.key, i.item_key""",  # noqa: S608
                         [seq] if found else [seq, seq])
            note_tag_values(conn, "SELECT key, value FROM item_tags WHERE seq = ?", [seq])   # the rows just written
            if len(items_frame) or len(new_alias) or len(new_tags):
                payload = history.batch_payload(conn, seq, ("items", "item_aliases", "item_tags"), source=opts.source)
                history.append(conn, [Event(history.BATCH_KIND, None, batch, payload)], ts)
        finally:
            for name in ("_in_rows", "_in_ids", "_in_tags", "_new_items", "_new_alias", "_new_tags"):
                try:
                    conn.unregister(name)
                except duckdb.Error:
                    pass
        tally.rows += len(rows)
        # A row whose item an earlier row of this import already gave (same content) is merged into it.
        dup = rows["item_id"].duplicated().to_numpy() | rows["item_id"].isin(earlier).to_numpy()
        for i in np.flatnonzero(dup):
            path, label, number = where.locate(int(i))
            tally.merged.append({"row": f"{path}: {label} {number}", "file": path, label: number,
                                 "external_id": str(rows["external_id"].iat[i]), "item_id": str(rows["item_id"].iat[i])})
        tally.existing.update(before_import)
        tally.cross_source += int(cross_source)
        tally.new_items += len(new_items)
        tally.new_aliases += len(new_alias)
        tally.new_tags += len(new_tags)

    def _drop_clashes(self, rows: pd.DataFrame, where: RowLabels, source: str,
                      problems: ProblemLog) -> tuple[pd.DataFrame, RowLabels]:
        """Rows whose external id the source gave another content before (earlier in this import, or in an
        earlier one) are problems, left out of the chunk."""
        import numpy as np

        self._register("_in_rows", _strings(rows, ("external_id", "item_id")))
        try:
            clashes = self.conn.execute("""
                SELECT DISTINCT r.external_id, a.item_id FROM _in_rows r
                JOIN item_aliases a ON a.source = ? AND a.external_id = r.external_id
                WHERE a.item_id <> r.item_id""", [source]).fetchall()
        finally:
            self.conn.unregister("_in_rows")
        if not clashes:
            return rows, where
        seen_as = dict(clashes)
        ext = rows["external_id"].to_numpy()
        bad = np.flatnonzero(np.isin(ext, list(seen_as)) & (rows["item_id"].to_numpy() != rows["external_id"].map(
            seen_as).to_numpy()))
        for idx in bad:
            ext_id = ext[idx]
            problems.add("an id seen before with another content", where[int(idx)], None, ext_id,
                         f"id {ext_id!r} of source {source!r} was seen before (earlier in this import, or "
                         f"imported as {seen_as[ext_id]}) with a different question, choices or answer")
        keep = np.setdiff1d(np.arange(len(rows)), bad)
        return rows.iloc[keep].reset_index(drop=True), where.subset(keep)

    def _parent_ids(self, rows: pd.DataFrame, source: str, where: RowLabels,
                    problems: ProblemLog) -> dict[str, str]:
        """Parent external ids resolve within the same source (this import or earlier ones); one that does not
        is a problem of its row."""
        with_parent = rows.dropna(subset=["parent_external_id"])
        if with_parent.empty:
            return {}
        local = dict(zip(rows["external_id"], rows["item_id"], strict=True))
        # Parents from earlier imports looked up at once (item_aliases has no index to look them up one by one).
        rest = {str(p) for p in with_parent["parent_external_id"]} - set(local)
        earlier = self.items_for_aliases(rest, source)
        known = set(self.known_items(rest - set(earlier)))
        out = {}
        for idx, item_id, parent in zip(with_parent.index, with_parent["item_id"], with_parent["parent_external_id"],
                                        strict=True):
            pid = local.get(parent) or earlier.get(parent) or (parent if parent in known else None)
            if pid is None:
                problems.add("an unknown parent_id", where[int(idx)], "parent_id", parent,
                             f"{parent!r} is not an item of source {source!r} nor an item id of the bank")
                continue
            out[item_id] = pid
        return out

    def known_items(self, item_ids: Iterable[str]) -> list[str]:
        """Those of ``item_ids`` the bank has (a parent from another source, named by its item id)."""
        return [str(r[0]) for r in self.conn.execute(
            "SELECT item_id FROM items WHERE item_id IN (SELECT unnest(?::VARCHAR[]))", [list(item_ids)]).fetchall()]

    def batch_items(self, batch_id: str) -> list[str]:
        """The items import batch ``batch_id`` created (``ImportReport.batch_id``), sorted; items the bank
        had before that import (same content) are not among them."""
        return [str(r[0]) for r in self.conn.execute(
            "SELECT item_id FROM items WHERE import_batch = ? ORDER BY item_id", [batch_id]).fetchall()]

    def resolve_alias(self, source: str, external_id: str) -> str | None:
        row = first(self.conn.execute("SELECT item_id FROM item_aliases WHERE source = ? AND external_id = ?",
                                [source, external_id]))
        return None if row is None else str(row[0])

    def aliases_for(self, item_ids: Iterable[str], source: str) -> dict[str, str]:
        """Each item's external id in ``source`` (items without one are left out); where the source
        holds several ids for one merged item, the smallest (as text) is given."""
        import pandas as pd

        self._register("_alias_ids", pd.DataFrame({"item_id": pd.Series(list(item_ids), dtype=object).unique()}))
        try:
            return dict(self.conn.execute("""
                SELECT a.item_id, min(a.external_id) FROM item_aliases a JOIN _alias_ids s USING (item_id)
                WHERE a.source = ? GROUP BY a.item_id""", [source]).fetchall())
        finally:
            self.conn.unregister("_alias_ids")

    def items_for_aliases(self, external_ids: Iterable[str], source: str) -> dict[str, str]:
        """The item id behind each external id of ``source`` (unknown ids are left out)."""
        import pandas as pd

        self._register("_ext_ids", pd.DataFrame({"external_id": pd.Series(list(external_ids), dtype=object).unique()}))
        try:
            return dict(self.conn.execute("""
                SELECT a.external_id, a.item_id FROM item_aliases a JOIN _ext_ids s USING (external_id)
                WHERE a.source = ?""", [source]).fetchall())
        finally:
            self.conn.unregister("_ext_ids")

    def aliases_of(self, item_ids: Iterable[str]) -> dict[str, list[str]]:
        """Every alias of each item as ``source:external_id`` (sorted); items without one are left out."""
        import pandas as pd

        self._register("_alias_of", pd.DataFrame({"item_id": pd.Series(list(item_ids), dtype=object).unique()}))
        try:
            rows = self.conn.execute("""
                SELECT a.item_id, list(a.source || ':' || a.external_id ORDER BY a.source, a.external_id)
                FROM item_aliases a JOIN _alias_of s USING (item_id) GROUP BY a.item_id""").fetchall()
        finally:
            self.conn.unregister("_alias_of")
        return {str(i): list(v) for i, v in rows}

    def resolve(self, ref: str) -> str:
        """An item id, or ``source:external_id``; ItemNotFound otherwise."""
        if first(self.conn.execute("SELECT 1 FROM items WHERE item_id = ?", [ref])):
            return ref
        if ":" in ref:
            source, ext = ref.split(":", 1)
            found = self.resolve_alias(source, ext)
            if found:
                return found
        raise ItemNotFound(f"no item {ref!r} (give an item id like it_... or SOURCE:EXTERNAL_ID)")

    # -- responses ----------------------------------------------------------------------------------
    def import_responses(self, path: str | Path, *, source: str, model_col: str, item_col: str, score_col: str,
                         round_no: int | None = None, strict: bool = False) -> ResponsesReport:
        """Past results keyed by the source's external ids: one run per model per file."""
        import hashlib

        import numpy as np
        import pandas as pd

        from .importer import read_table

        path = Path(path)
        frame, label = read_table(path)
        for col in (model_col, item_col, score_col):
            if col not in frame.columns:
                shown = ", ".join(c for c in frame.columns if c != "__line__")
                raise InputError(f"{path}: no column {col!r} (columns: {shown})")
        scores = pd.to_numeric(frame[score_col], errors="coerce")
        bad = scores.isna() | (scores < 0) | (scores > 1)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{path}: {label} {frame['__line__'].iat[i]}: field {score_col!r}: "
                             f"{frame[score_col].iat[i]!r} is not a score in [0, 1]")
        src = pd.DataFrame({"model": frame[model_col].astype(str), "external_id": frame[item_col].astype(str),
                            "score": scores.astype(float), "line": frame["__line__"]})
        # Each frame of the file's rows is let go once the next is made: at 5 M responses each is hundreds of MB,
        # and they would otherwise all be held while the slices are inserted.
        n_rows = len(frame)
        del frame, scores, bad
        self._register("_resp_src", src)
        del src
        try:
            mapped = self.conn.execute("""
                SELECT s.model, s.external_id, a.item_id, s.score, s.line FROM _resp_src s
                LEFT JOIN item_aliases a ON a.source = ? AND a.external_id = s.external_id""", [source]).df()
        finally:
            self.conn.unregister("_resp_src")
        unknown = mapped[mapped["item_id"].isna()]
        examples = tuple(unknown["external_id"].drop_duplicates().head(5))
        if strict and len(unknown):
            raise InputError(f"{path}: {label} {unknown['line'].iat[0]}: field {item_col!r}: "
                             f"{len(unknown)} rows name items unknown to source {source!r} (e.g. {', '.join(examples)})")
        known = mapped.dropna(subset=["item_id"])
        del mapped
        # The same row twice with two scores is a conflict in the file ...
        conflicts = known.groupby(["model", "external_id"])["score"].nunique()
        if (conflicts > 1).any():
            model, ext = conflicts[conflicts > 1].index[0]
            rows = known[(known["model"] == model) & (known["external_id"] == ext)]["line"].tolist()
            raise InputError(f"{path}: {label}s {rows[0]} and {rows[1]}: model {model!r} has two different "
                             f"scores for item {ext!r}")
        # ... but two source ids of one merged (duplicate) item are two answers to the same item: the
        # response is their mean, a fractional score.
        known = known.drop_duplicates(["model", "external_id"])
        merged = int(known.duplicated(["model", "item_id"]).sum())
        known = known.groupby(["model", "item_id"], as_index=False, sort=False)["score"].mean()
        file_hash = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        ts = now()
        models = sorted(known["model"].unique())
        stored = {str(r[0]) for r in self.conn.execute("SELECT name FROM models").fetchall()}
        for model in models:  # a new model follows the name rule (adtbase.names)
            if model not in stored:
                try:
                    check_name("model", model)
                except InputError as exc:
                    raise InputError(f"{path}: column {model_col!r}: {exc}") from None
        run_of = {m: f"import:{source}:{m}:{file_hash}" for m in models}
        runs = pd.DataFrame({"run_id": [run_of[m] for m in models], "model": models})
        self._register("_imp_runs", runs)
        try:
            with self.transaction():
                self.conn.execute("""INSERT INTO models SELECT DISTINCT model, NULL, NULL, NULL, ? FROM _imp_runs
                                     WHERE model NOT IN (SELECT name FROM models)""", [ts])
                self.conn.execute("""INSERT INTO runs SELECT run_id, model, 'import', NULL, ?, ?, NULL, ?, 'finished', ?, ?
                                     FROM _imp_runs WHERE run_id NOT IN (SELECT run_id FROM runs)""",
                                  [source, round_no, json.dumps({"file": str(path)}), ts, ts])
                # In slices of RESPONSE_CHUNK rows, in (run, item) order as one insert would write them: the
                # events come out the same, and millions of responses are never all widened to every column.
                fresh = pd.DataFrame({"run_id": known["model"].map(run_of).to_numpy(),
                                      "item_id": known["item_id"].to_numpy(), "score": known["score"].to_numpy()})
                del known
                fresh = fresh.sort_values(["run_id", "item_id"], ignore_index=True)
                new_total = sum(self._insert_responses(fresh.iloc[s:s + self.RESPONSE_CHUNK], ts)
                                for s in range(0, len(fresh), self.RESPONSE_CHUNK))
        finally:
            self.conn.unregister("_imp_runs")
        return ResponsesReport(str(path), n_rows, n_rows - len(unknown), len(unknown), examples, len(models),
                               new_total, merged)

    def _ensure_model(self, name: str, ts: str, family: str | None = None, size: str | None = None,
                      release_date: str | None = None) -> None:
        if not first(self.conn.execute("SELECT 1 FROM models WHERE name = ?", [name])):
            check_name("model", name)  # a new model follows the name rule (adtbase.names); stored ones keep working
        self.conn.execute("""INSERT INTO models SELECT ?, ?, ?, ?, ?
                             WHERE NOT EXISTS (SELECT 1 FROM models WHERE name = ?)""",
                          [name, family, size, release_date, ts, name])

    MODEL_ATTRIBUTES = ("family", "size", "release_date")

    def models(self) -> pd.DataFrame:
        """Every model the bank knows: ``name, family, size, release_date`` (NULL where not declared)."""
        return self.conn.execute("SELECT name, family, size, release_date FROM models ORDER BY name").df()

    def describe_model(self, name: str, *, family: str | None = None, size: str | None = None,
                       release_date: str | None = None) -> None:
        """Declare a model's family, size or release date (ISO date); attributes not given stay as they are.
        A model not yet in the bank is added."""
        if release_date is not None:
            try:
                date.fromisoformat(str(release_date))
            except ValueError:
                raise InputError(f"model {name!r}: release date {release_date!r} is not an ISO date "
                                 f"(YYYY-MM-DD)") from None
        with self.transaction():
            self._ensure_model(name, now())
            for col, value in (("family", family), ("size", size), ("release_date", release_date)):
                if value is not None and col in self.MODEL_ATTRIBUTES:
                    self.conn.execute(f"UPDATE models SET {col} = ? WHERE name = ?",  # noqa: S608 - allow-list
                                      [str(value), name])

    IMPORT_CHECKPOINT = "1GB"   # DuckDB's checkpoint_threshold while a large import writes its copy of the bank
    # Rows of an item file read, checked and committed at a time: DuckDB's row group (122,880 rows). A commit
    # that appends a full row group is written straight into the file (DuckDB's optimistic write), not into the
    # WAL: rows committed through the WAL stay in memory until a checkpoint (880 MB at 2 M items in chunks of
    # 100,000), and each checkpoint in the middle of an import rewrote the items key's index, whose old blocks
    # stayed in the file as free space (151 MiB of the 5.5 M-item bank).
    IMPORT_CHUNK = 122_880
    RESPONSE_CHUNK = 500_000   # rows of an imported response file inserted at a time (one transaction)
    RESPONSE_COLS = ("item_id", "score", "raw_output", "extracted", "template_id", "prompt_hash",
                     "choice_logliks", "tokens_in", "tokens_out", "latency_s", "scored_by")

    def _insert_responses(self, frame: pd.DataFrame, ts: str) -> int:
        """Insert responses (with a run_id column) not yet stored, inside the caller's transaction."""
        import pandas as pd

        cols = ("run_id", *self.RESPONSE_COLS)
        full = pd.DataFrame({c: frame[c] if c in frame.columns else None for c in cols})
        full["choice_logliks"] = full["choice_logliks"].astype(object)
        self._register("_resp_new", full)
        try:
            fresh = self.conn.execute("""
                SELECT DISTINCT ON (n.run_id, n.item_id) n.* FROM _resp_new n
                WHERE NOT EXISTS (SELECT 1 FROM responses r WHERE r.run_id = n.run_id AND r.item_id = n.item_id)
                ORDER BY n.run_id, n.item_id""").df()
            if fresh.empty:
                return 0
            fresh["choice_logliks"] = fresh["choice_logliks"].astype(object)
            self._register("_resp_fresh", fresh)
            # One batch event records them all (history.BATCH_TABLES); each response carries its seq.
            seq = history.head(self.conn).n_events + 1
            self.conn.execute("""INSERT INTO responses (run_id, item_id, score, raw_output, extracted, template_id,
                prompt_hash, choice_logliks, tokens_in, tokens_out, latency_s, answered_at, scored_by, seq)
                SELECT run_id, item_id, score, raw_output, extracted, template_id, prompt_hash,
                CAST(choice_logliks AS DOUBLE[]), tokens_in, tokens_out, latency_s, ?,
                coalesce(CAST(scored_by AS VARCHAR), 'rule'), ? FROM _resp_fresh""", [ts, seq])
            add_answered(self.conn, "_resp_fresh", ts)
            self.conn.unregister("_resp_fresh")
            runs = sorted(fresh["run_id"].unique().tolist())
            payload = history.batch_payload(self.conn, seq, ("responses",))
            history.append(self.conn, [Event(history.BATCH_KIND, None, runs[0] if len(runs) == 1 else None, payload)],
                           ts)
            return len(fresh)
        finally:
            self.conn.unregister("_resp_new")

    # -- runs (used by the runners' spool ingestion) -------------------------------------------------
    def start_run(self, run_id: str, *, model: str, kind: str, form_name: str | None = None,
                  round_no: int | None = None, backend: str | None = None, config: dict | None = None) -> bool:
        """Create the run, or find it for a resume (same model and form); True when it is new."""
        row = first(self.conn.execute("SELECT model, form_name FROM runs WHERE run_id = ?", [run_id]))
        if row is not None:
            if row[0] != model or row[1] != form_name:
                raise InputError(f"run {run_id!r} exists for model {row[0]!r} on form {row[1]!r}; "
                                 f"pick another --run name")
            return False
        ts = now()
        with self.transaction():
            self._ensure_model(model, ts)
            self.conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, NULL, ?, ?, ?, 'running', ?, NULL)",
                              [run_id, model, kind, form_name, round_no, backend, json.dumps(config or {}), ts])
        return True

    def ingest_responses(self, run_id: str, frame: pd.DataFrame) -> int:
        """Store a batch of one run's results in one short transaction; already-stored items are skipped."""
        if not first(self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id])):
            raise InputError(f"no run {run_id!r}")
        unknown = self.unknown_items(frame["item_id"])
        if unknown:
            raise ItemNotFound(f"run {run_id}: {len(unknown)} responses name items not in the bank (e.g. {unknown[0]})")
        with self.transaction():
            return self._insert_responses(frame.assign(run_id=run_id), now())

    def ingest_many(self, frame: pd.DataFrame) -> int:
        """``ingest_responses`` for several runs at once (a ``run_id`` column), in one transaction."""
        import pandas as pd

        runs = pd.DataFrame({"run_id": frame["run_id"].astype(str).unique()})
        self._register("_ing_runs", runs)
        try:
            missing = first(self.conn.execute(
                "SELECT run_id FROM _ing_runs WHERE run_id NOT IN (SELECT run_id FROM runs) LIMIT 1"))
        finally:
            self.conn.unregister("_ing_runs")
        if missing:
            raise InputError(f"no run {missing[0]!r}")
        unknown = self.unknown_items(frame["item_id"])
        if unknown:
            raise ItemNotFound(f"{len(unknown)} responses name items not in the bank (e.g. {unknown[0]})")
        with self.transaction():
            return self._insert_responses(frame, now())

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        self.conn.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", [status, now(), run_id])

    def answered(self, run_id: str) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT item_id FROM responses WHERE run_id = ?", [run_id]).fetchall()}

    def runs(self) -> pd.DataFrame:
        return self.conn.execute("""SELECT r.*, (SELECT count(*) FROM responses x WHERE x.run_id = r.run_id) n_responses
                                    FROM runs r ORDER BY created_at""").df()

    def unknown_items(self, item_ids: Iterable[str]) -> list[str]:
        import pandas as pd

        ids = pd.DataFrame({"item_id": pd.Series(list(item_ids), dtype=object).unique()})
        self._register("_ids_chk", ids)
        try:
            return [r[0] for r in self.conn.execute(
                "SELECT item_id FROM _ids_chk WHERE item_id NOT IN (SELECT item_id FROM items)").fetchall()]
        finally:
            self.conn.unregister("_ids_chk")

    # -- reading items ---------------------------------------------------------------------------------
    def _as_of(self, as_of: Head | int | None) -> int | None:
        """The event count of ``as_of`` (None: the live view), checked against the history."""
        if as_of is None:
            return None
        n = as_of.n_events if isinstance(as_of, Head) else int(as_of)
        current = self.head()
        if n < 0 or n > current.n_events:
            raise InputError(f"history head {n}: the bank's history has {current.n_events} events")
        if isinstance(as_of, Head) and self.head_at(n) != as_of:
            raise BankError(f"head {as_of} is not in this bank's history (rewritten or another bank); "
                            f"run `adt bank verify`")
        return None if n == current.n_events else n

    def _item_view_sql(self, as_of: int | None = None, settings: Mapping[str, Any] | None = None, *,
                       band: bool = True, exposure: bool = True) -> tuple[str, list[Any]]:
        """CTE text defining ``iv``: every item with exposure, frequency tier and difficulty band.

        ``as_of`` (an event count) rebuilds the view as of that history head from the events (see
        ``items``); ``settings`` override the bank's settings (tier thresholds, band cuts). ``band=False``: no
        ``difficulty_band``/``calibrated_b`` columns, for a read that uses neither (``stats``, ``item_ids``): the
        calibrations join by text item id, which DuckDB keeps even when no column of it is read, so every item's
        id would be read (a fifth of ``stats --by`` at 1 M items). ``exposure=False``: no exposure columns and no
        ``frequency_tier``, for a read that takes the tiers from ``item_exposure`` itself (``_stats_bitsets``)."""
        s = {**self.settings(), **{str(k): str(v) for k, v in (settings or {}).items()}}
        params: list[Any] = []
        if as_of is None:
            # Live: the exposure kept per item (``item_exposure``, aggregated by ``exposure_sql``), joined by the
            # integer key, not every response aggregated again on each call.
            base, key = "items", "item_key"
            exposure_cte = """
        x AS (SELECT item_key, runs AS rn, runs_first_round AS rfr, runs_last_round AS rlr, runs_first_at AS rft,
                     runs_last_at AS rlt, pubs AS pn, pubs_first_round AS pfr, pubs_last_round AS plr,
                     pubs_first_at AS pft, pubs_last_at AS plt FROM item_exposure),"""
        else:
            # The items table as of the head: items created later left out (each row carries the seq of the event
            # that recorded it, a batch or a per-item one; migration 006); a review state (and retire
            # reason) changed later rolled back to the last state event at or before the head, else to the
            # state the first later event moved it from (its payload's "from"; events written before "from"
            # existed fall back to 'approved', the import default).
            exposure_cte = f"""
        asof_items AS (
          SELECT i.* REPLACE (
                   CASE WHEN st.item_id IS NULL THEN i.review_state
                        ELSE coalesce(st.state, nullif(st.before, '?'), 'approved') END AS review_state,
                   CASE WHEN st.item_id IS NULL THEN i.retired_reason ELSE st.reason END AS retired_reason,
                   CASE WHEN sg.item_id IS NULL THEN i.stage ELSE coalesce(sg.stage, sg.before) END AS stage,
                   CASE WHEN sg.item_id IS NULL THEN i.rest_until_round ELSE sg.until_round END AS rest_until_round)
          FROM items i LEFT JOIN (
            SELECT item_id, arg_max(json_extract_string(payload, '$.to'), seq) FILTER (WHERE seq <= ?) AS stage,
                   arg_min(json_extract_string(payload, '$.from'), seq) FILTER (WHERE seq > ?) AS before,
                   arg_max(TRY_CAST(json_extract_string(payload, '$.until_round') AS INTEGER), seq)
                     FILTER (WHERE seq <= ?) AS until_round
            FROM events WHERE kind = 'stage' AND item_id IS NOT NULL
            GROUP BY item_id HAVING max(seq) > ?) sg USING (item_id) LEFT JOIN (
            SELECT item_id, arg_max(kind, seq) FILTER (WHERE seq <= ?) AS state,
                   arg_min(coalesce(json_extract_string(payload, '$.from'), '?'), seq) FILTER (WHERE seq > ?) AS before,
                   arg_max(json_extract_string(payload, '$.reason'), seq) FILTER (WHERE seq <= ? AND kind = 'retired') AS reason
            FROM events WHERE kind IN ({_STATE_KINDS_SQL}) AND item_id IS NOT NULL
            GROUP BY item_id HAVING max(seq) > ?) st USING (item_id)
          WHERE i.seq <= ?),
        r AS (SELECT x.item_id, count(*) n, min(ru.round_no) fr, max(ru.round_no) lr,
                     min(x.answered_at) ft, max(x.answered_at) lt
              FROM responses x LEFT JOIN runs ru USING (run_id) WHERE x.seq <= ? GROUP BY x.item_id),
        p AS (SELECT item_id, count(*) n, min(CAST(json_extract_string(payload, '$.round') AS INTEGER)) fr,
                     max(CAST(json_extract_string(payload, '$.round') AS INTEGER)) lr, min(ts) ft, max(ts) lt
              FROM events WHERE kind = 'published' AND seq <= ? GROUP BY item_id),"""  # noqa: S608 (the kinds: adtbase.review.STATES)
            params += [as_of] * 11
            # The events' counts in the live view's shape (one row per exposed item).
            base, key = "asof_items", "item_id"
            exposure_cte += """
        x AS (SELECT item_id, r.n AS rn, r.fr AS rfr, r.lr AS rlr, r.ft AS rft, r.lt AS rlt,
                     p.n AS pn, p.fr AS pfr, p.lr AS plr, p.ft AS pft, p.lt AS plt FROM r FULL OUTER JOIN p USING (item_id)),"""
        if not band:
            cuts = ("NULL", "NULL")
        elif s["band_cuts"] == "terciles":
            cuts = ("(SELECT quantile_cont(b, 1.0/3) FROM item_difficulty)",
                    "(SELECT quantile_cont(b, 2.0/3) FROM item_difficulty)")
        else:
            try:
                lo, hi = (float(x) for x in s["band_cuts"].split(","))
            except ValueError:
                raise BankError(f"setting band_cuts={s['band_cuts']!r} is not 'terciles' or 'lo,hi'") from None
            cuts = ("?", "?")
            params += [lo, hi]
        exposed = f"""
                 coalesce(x.rn, 0) AS exposure_runs, coalesce(x.pn, 0) AS exposure_publications,
                 least(x.rfr, x.pfr) AS first_exposure_round, greatest(x.rlr, x.plr) AS last_exposure_round,
                 least(x.rft, x.pft) AS first_exposed_at, greatest(x.rlt, x.plt) AS last_exposed_at,
                 {tier_sql("coalesce(x.rn, 0)", "coalesce(x.pn, 0)")} AS frequency_tier,"""
        if exposure:
            params += tier_params(s)
        bands = """
                 CASE WHEN d.b IS NULL THEN coalesce(i.declared_band, 'unknown')
                      WHEN d.b >= cuts.hi THEN 'hard' WHEN d.b < cuts.lo THEN 'easy' ELSE 'medium' END AS difficulty_band,
                 d.b AS calibrated_b,"""
        sql = f"""{exposure_cte}
        cuts AS (SELECT {cuts[0]} AS lo, {cuts[1]} AS hi),
        iv AS (
          SELECT i.* EXCLUDE (seq) REPLACE (CASE WHEN i.review_state = 'retired' THEN 'retired' ELSE i.stage END AS stage),
                 {exposed if exposure else ""}{bands if band else ""} len(i.choices) AS n_choices
          FROM {base} i {f"LEFT JOIN x USING ({key})" if exposure else ""}
               {"LEFT JOIN item_difficulty d USING (item_id) CROSS JOIN cuts" if band else ""})"""  # noqa: S608 - fixed text
        return sql, params

    @staticmethod
    def _tags_sql(as_of: int | None) -> tuple[str, str, list[Any]]:
        """(CTE text or "", relation name, params) of the item tags, as of ``as_of`` when given: tags are
        never removed, so those recorded by an event after the head (the row's seq) come off."""
        if as_of is None:
            return "", "item_tags", []
        return "asof_tags AS (SELECT item_key, key, value FROM item_tags WHERE seq <= ?)", "asof_tags", [as_of]

    def _where(self, filters: Mapping[str, Sequence[str]] | None, include_retired: bool,
               tags: str = "item_tags") -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if not include_retired:
            clauses.append("iv.review_state <> 'retired'")
        tax = None
        for key, values in (filters or {}).items():
            values = list(values)
            if not values:
                continue
            if key == "item_id":  # one list parameter: a form's 1,000 ids plan ~10x faster than IN (?, ?, ...)
                clauses.append("iv.item_id IN (SELECT unnest(?::VARCHAR[]))")
                params.append([str(v) for v in values])
                continue
            marks = ", ".join("?" for _ in values)
            if key in COLUMN_KEYS:
                clauses.append(f"iv.{key} IN ({marks})")
            else:
                tax = tax or self.taxonomy()
                if key not in tax.keys:
                    raise self.unknown_key("--filter", key, tax)
                clauses.append(f"iv.item_key IN (SELECT item_key FROM {tags} WHERE key = ? AND value IN ({marks}))")  # noqa: S608 - placeholders only
                params.append(key)
            params.extend(values)
        return (" AND ".join(clauses) or "TRUE"), params

    def tag_keys(self) -> list[str]:
        """The tag keys the bank's items carry (sorted); the taxonomy may list more."""
        return [str(r[0]) for r in self.conn.execute("SELECT DISTINCT key FROM item_tags ORDER BY key").fetchall()]

    def key_values(self, key: str) -> list[str]:
        """The values ``key`` (a tag key or a column key) has: what items carry, and a closed key's or a fixed
        column's allowed values (sorted)."""
        if key in FIXED_VALUES:
            return sorted(FIXED_VALUES[key])
        if key in COLUMN_KEYS:
            rows = self.conn.execute(f"SELECT DISTINCT {key} FROM items WHERE {key} IS NOT NULL").fetchall()  # noqa: S608 - key from COLUMN_KEYS
            return sorted(str(r[0]) for r in rows)
        rows = self.conn.execute("SELECT DISTINCT value FROM item_tags WHERE key = ?", [key]).fetchall()
        return sorted({str(r[0]) for r in rows} | set(self.taxonomy().closed.get(key, ())))

    def unknown_key(self, flag: str, key: str, tax: Taxonomy | None = None) -> TaxonomyError:
        """The error for a key (``--filter``/``--by``/``--quota``/...) that is neither a tag key nor a built-in one:
        a did-you-mean, and the keys the bank's items carry and the built-in ones (not every column)."""
        tax = tax or self.taxonomy()
        hint = did_you_mean(key, sorted(tax.keys | set(COLUMN_KEYS)), cutoff=0.6)
        return TaxonomyError(f"{flag} {key}: unknown key{hint or ';'} tag keys of the bank's items: "
                             f"{', '.join(self.tag_keys()) or '(none)'}; built-in keys: {', '.join(taxonomy.BUILTIN_KEYS)}")

    def unknown_value(self, flag: str, key: str, value: str, values: Sequence[str] | None = None) -> TaxonomyError:
        """The error for a value no item has under ``key``: a did-you-mean and the values the key has."""
        values = list(values) if values is not None else self.key_values(key)
        shown = ", ".join(values[:30]) + (f", ... ({len(values)} in all)" if len(values) > 30 else "")
        return TaxonomyError(f"{flag} {key}={value}: no item has {key} {value!r}{did_you_mean(value, values, cutoff=0.6) or ';'} "
                             f"{key} has: {shown or '(no values)'}")

    def check_filter_values(self, filters: Mapping[str, Sequence[str]] | None, flag: str = "--filter") -> None:
        """TaxonomyError for a filter value that no item has under its key (a typo would otherwise select an
        empty, or a silently smaller, slice); a fixed column's value (``frequency_tier=high``) may match no item.
        ``items``/``item_ids`` call it when their slice comes out empty (a listed value no item has yet is
        allowed beside one that matches: the values OR), ``stats`` always; the command layer for the flags."""
        for key, values in (filters or {}).items():
            if key == "item_id":
                continue
            todo = [str(v) for v in values]
            if not todo:
                continue
            if key in FIXED_VALUES:
                known: set[str] = set(FIXED_VALUES[key])
            elif key in COLUMN_KEYS:
                known = {str(r[0]) for r in self.conn.execute(
                    f"SELECT DISTINCT {key} FROM items WHERE {key} IN (SELECT unnest(?::VARCHAR[]))", [todo]).fetchall()}  # noqa: S608 - key from COLUMN_KEYS
            else:
                known = set(self.taxonomy().closed.get(key, ())) | {str(r[0]) for r in self.conn.execute(
                    "SELECT value FROM tag_values WHERE key = ? AND value IN (SELECT unnest(?::VARCHAR[]))",
                    [key, todo]).fetchall()}
            for value in todo:
                if value not in known:
                    raise self.unknown_value(flag, key, value)

    def item_ids(self, filters: Mapping[str, Sequence[str]] | None = None, include_retired: bool = False) -> np.ndarray:
        """Ids of the items matching ``filters`` (sorted), without building the full item frame."""
        import numpy as np

        cte, cparams = self._item_view_sql(band="difficulty_band" in (filters or {}))
        where, wparams = self._where(filters, include_retired)
        rows = self.conn.execute(f"WITH {cte} SELECT item_id FROM iv WHERE {where} ORDER BY item_id",  # noqa: S608
                                 cparams + wparams).fetchnumpy()
        if len(rows["item_id"]) == 0:
            self.check_filter_values(filters)  # an empty slice from a misspelt value is an error, not a result
        return np.asarray(rows["item_id"], dtype=object)

    def items(self, filters: Mapping[str, Sequence[str]] | None = None, *, include_retired: bool = False,
              with_tags: bool = True, as_of: Head | int | None = None,
              settings: Mapping[str, Any] | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The item frame of DESIGN.md: columns, exposure, tier, band and one column per tag key.

        ``columns``: only these columns of the item view (``item_id`` always; tag columns per ``with_tags``), so a
        caller that needs no item text (a form's pool) does not read it for millions of items.

        ``as_of`` (a ``Head``, or an event count): the frame as the bank gave it when its history had that
        many events, rebuilt from the history: items created later are left out, tags added later come off
        (and tag keys no item had yet), review states (and retire reasons) changed later roll back to the
        last state event at or before the head (else to ``approved``, the import default: the state an item
        was imported in is not an event), exposure and its rounds and times count the ``answered`` and
        ``published`` events up to the head, and the frequency tier follows from those counts. The history
        does not record settings or calibrations: ``settings`` gives the tier thresholds (and band cuts) in
        force then (default: today's), and ``difficulty_band`` / ``calibrated_b`` are today's. A ``Head``
        must be one of this history's (BankError otherwise).
        """
        import pandas as pd

        n = self._as_of(as_of)
        cte, cparams = self._item_view_sql(n, settings)
        tags_cte, tags, tparams = self._tags_sql(n)
        where, wparams = self._where(filters, include_retired, tags)
        with_sql = ", ".join(x for x in (cte.strip(), tags_cte) if x)
        sql = f"WITH {with_sql} SELECT {{}} FROM iv WHERE {where} ORDER BY item_id"  # noqa: S608
        if columns is None:
            frame = self.conn.execute(sql.format("*"), cparams + tparams + wparams).df()
        else:  # scalar columns only: through Arrow, which makes one Python string per distinct value (3x faster)
            table = self.conn.sql(sql.format(", ".join(self._view_columns(columns))),
                                  params=cparams + tparams + wparams).to_arrow_table()
            frame = table.to_pandas()
            for name, col in zip(table.column_names, table.columns, strict=True):
                kind = str(col.type)   # an integer column with NULLs: pandas' Int32, UInt8, ... as .df() gives it
                if col.null_count and kind.startswith(("int", "uint")):
                    frame[name] = frame[name].astype("U" + kind[1:].capitalize() if kind[0] == "u" else kind.capitalize())
        if frame.empty:
            self.check_filter_values(filters)  # an empty slice from a misspelt value is an error, not a result
        keys = frame.pop("item_key")  # the bank's internal join key, not part of the item frame
        if not with_tags or frame.empty:
            return frame
        wide = self._tag_columns(keys.to_numpy(), tags_cte, tags, tparams, whole=not filters)
        wide = {k: v for k, v in wide.items() if k not in frame.columns}
        return pd.concat([frame, pd.DataFrame(wide, index=frame.index)], axis=1) if wide else frame

    def _tag_columns(self, keys: np.ndarray, tags_cte: str, tags: str, tparams: list[Any],
                     whole: bool) -> dict[str, np.ndarray]:
        """One column per tag key (sorted) for the items ``keys`` lists, in that order: the item's values joined
        by ``|`` in value order, NaN where it has none. The rows come as integer codes into the (small) set of
        distinct (key, value) pairs, so millions of tag rows make no Python strings; ``whole``: ``keys`` is
        (nearly) every item, so every row is read rather than joined to them."""
        import numpy as np
        import pandas as pd

        with_cte = f"WITH {tags_cte}," if tags_cte else "WITH"
        pairs = self.conn.execute(f"""{with_cte} d AS (SELECT DISTINCT key, value FROM {tags})
            SELECT key, value FROM d ORDER BY key, value""", tparams).fetchall()  # noqa: S608 - relation names
        if not pairs:
            return {}
        self._register("_tag_pairs", pd.DataFrame({"key": [k for k, _ in pairs], "value": [v for _, v in pairs],
                                                   "code": np.arange(len(pairs), dtype=np.int64)}))
        sel = "" if whole else "JOIN _sel_keys s USING (item_key)"
        if not whole:
            self._register("_sel_keys", pd.DataFrame({"item_key": keys}))
        try:
            rows = self.conn.execute(f"""{with_cte} r AS (SELECT t.item_key, t.key, t.value FROM {tags} t {sel})
                SELECT r.item_key, p.code FROM r JOIN _tag_pairs p USING (key, value)""", tparams).fetchnumpy()  # noqa: S608
        finally:
            self.conn.unregister("_tag_pairs")
            if not whole:
                self.conn.unregister("_sel_keys")
        item, code = np.asarray(rows["item_key"], dtype=np.int64), np.asarray(rows["code"], dtype=np.int64)
        key_of = np.array([k for k, _ in pairs], dtype=object)
        value_of = np.array([v for _, v in pairs], dtype=object)
        pos = pd.Index(keys).get_indexer(item)
        keep = pos >= 0
        item, code, pos = item[keep], code[keep], pos[keep]
        out: dict[str, np.ndarray] = {}
        key_names, key_no = np.unique(key_of, return_inverse=True)
        row_key = key_no[code]
        for j, key in enumerate(key_names.tolist()):
            mine = row_key == j
            k_item, k_code, k_pos = item[mine], code[mine], pos[mine]
            if not len(k_item):   # no selected item has the key: no column (as before: the keys the items have)
                continue
            order = np.lexsort((k_code, k_item))              # by item, then by value (codes follow value order)
            k_item, k_code, k_pos = k_item[order], k_code[order], k_pos[order]
            col = np.full(len(keys), np.nan, dtype=object)
            first = np.r_[True, k_item[1:] != k_item[:-1]]
            single = first & np.r_[first[1:], True]
            col[k_pos[single]] = value_of[k_code[single]]
            # Items with several values of the key: grouped by their count of values, each distinct combination
            # of codes joined once.
            starts = np.flatnonzero(first)
            sizes = np.diff(np.r_[starts, len(k_item)])
            for n_vals in np.unique(sizes[sizes > 1]).tolist():
                at = starts[sizes == n_vals]
                codes = k_code[at[:, None] + np.arange(n_vals)]
                if len(pairs) ** n_vals < 2**62:  # one integer per combination: a 1-D unique (an axis=0 one is slow)
                    _, at_first, which = np.unique(codes @ (len(pairs) ** np.arange(n_vals)), return_index=True,
                                                   return_inverse=True)
                    combos = codes[at_first]
                else:
                    combos, which = np.unique(codes, axis=0, return_inverse=True)
                texts = np.array(["|".join(value_of[c]) for c in combos], dtype=object)
                col[k_pos[at]] = texts[which.ravel()]
            out[key] = col
        return out

    def _view_columns(self, columns: Sequence[str]) -> list[str]:
        """``item_id``, ``item_key`` and ``columns``, checked against the item view's columns (identifiers reach SQL)."""
        known = {str(r[0]) for r in self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items'").fetchall()} | set(VIEW_COLUMNS)
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise InputError(f"item columns {unknown}: not columns of the item view")
        return ["item_id", "item_key", *dict.fromkeys(c for c in columns if c not in ("item_id", "item_key"))]

    def stats(self, by: Sequence[str] = (), filters: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
        """Item counts and frequency-tier counts (``freq_tier_low|medium|high``) grouped by built-in keys or tag keys;
        many-valued tags count once per value."""
        return self._stats(by, filters).df()

    def stats_table(self, by: Sequence[str] = (), filters: Mapping[str, Sequence[str]] | None = None) -> Table:
        """``stats`` as an ``adtbase.table.Table`` (the same columns and rows; its ``to_text`` is the frame's
        ``to_string(index=False)``), built without pandas: ``adt bank stats`` loads none."""
        from adtbase.table import Table

        return Table.from_result(self._stats(by, filters))

    def _stats(self, by: Sequence[str], filters: Mapping[str, Sequence[str]] | None,
               bitsets: bool | None = None) -> duckdb.DuckDBPyConnection:
        """The stats query. ``by`` all tag keys: as per-value item bitsets (``_stats_bitsets``) when they fit
        ``STATS_BITSET_BYTES``; otherwise (a column key among ``by``, or too many values) one row per item and
        tag value, grouped. ``bitsets`` forces one way (tests compare them)."""
        where, wparams = self._where(filters, include_retired=False)
        self.check_filter_values(filters)  # a misspelt value is an error, not a count of 0
        tax = self.taxonomy()
        for key in by:
            if key not in COLUMN_KEYS and key not in tax.keys:
                raise self.unknown_key("--by", key, tax)
        tags_only = bool(by) and not any(k in COLUMN_KEYS for k in by)
        if bitsets is None:
            bitsets = tags_only and self._bitsets_fit(by, min_items=STATS_BITSET_MIN_ITEMS)
        elif bitsets and not tags_only:
            raise ValueError("stats bitsets: by tag keys only")
        keys = {*by, *(filters or {})}
        cte, cparams = self._item_view_sql(band="difficulty_band" in keys,
                                           exposure=not bitsets or "frequency_tier" in keys)
        if bitsets:
            return self._stats_bitsets(by, cte, cparams, where, wparams)
        joins, cols, jparams = [], [], []
        for n, key in enumerate(by):
            if key in COLUMN_KEYS:
                cols.append(f"iv.{key} AS {key}")
            else:
                joins.append(f"LEFT JOIN item_tags t{n} ON t{n}.item_key = iv.item_key AND t{n}.key = ?")
                jparams.append(key)
                cols.append(f"t{n}.value AS \"{key}\"")
        group = ", ".join(str(i + 1) for i in range(len(cols)))
        sql = f"""WITH {cte} SELECT {', '.join(cols + [''])}
                  count(*) AS items,
                  count(*) FILTER (WHERE frequency_tier = 'low') AS freq_tier_low,
                  count(*) FILTER (WHERE frequency_tier = 'medium') AS freq_tier_medium,
                  count(*) FILTER (WHERE frequency_tier = 'high') AS freq_tier_high
                  FROM iv {' '.join(joins)} WHERE {where}
                  {('GROUP BY ' + group + ' ORDER BY ' + group) if cols else ''}"""  # noqa: S608
        return self.conn.execute(sql, cparams + jparams + wparams)

    def _key_range(self) -> tuple[int, int] | None:
        """The smallest and largest item key (None: no items): the span of a per-item bitset."""
        lo, hi = self.conn.execute("SELECT min(item_key), max(item_key) FROM items").fetchone() or (None, None)
        return None if lo is None else (int(lo), int(hi))

    def _bitsets_fit(self, by: Sequence[str], min_items: int = 1) -> bool:
        """Whether ``_stats_bitsets`` over ``by`` keeps within ``STATS_BITSET_BYTES``: a bitset of every item per
        tag value, tier and combination (a key of thousands of values would need thousands); and the bank spans
        ``min_items`` item keys or more."""
        span = self._key_range()
        if span is None or span[1] - span[0] + 1 < min_items:
            return False
        counts = dict(self.conn.execute("SELECT key, count(*) FROM tag_values WHERE key IN (SELECT unnest(?::VARCHAR[])) "
                                        "GROUP BY key", [list(dict.fromkeys(by))]).fetchall())
        sizes = [int(counts.get(k, 0)) + 1 for k in by]   # + the items without the key
        combos = 3 * math.prod(sizes)                     # the last level's rows: tier x one value per key
        held = 3 + sum(sizes) + sum(3 * math.prod(sizes[:n]) for n in range(1, len(sizes)))
        return (combos <= STATS_BITSET_COMBOS
                and (held + min(combos, 2048)) * ((span[1] - span[0]) // 8 + 1) <= STATS_BITSET_BYTES)

    def _stats_bitsets(self, by: Sequence[str], cte: str, cparams: list[Any], where: str,
                       wparams: list[Any]) -> duckdb.DuckDBPyConnection:
        """``stats`` by tag keys without joining millions of tag rows to the items: DuckDB builds one bitset over the
        item keys (``bitstring_agg``) of the selected items, of each frequency tier's exposed items (from
        ``item_exposure``, no join to the items) and of each tag value's items; numpy ANDs them and counts the bits of
        each combination. An item with several values of a key is in each value's set, so it counts once per value
        (as the join does); the items without the key are the complement of the key's sets. The counts come back
        through the same GROUP BY as the join's, so both ways give the same columns and types.
        ANDs and counts in numpy rather than DuckDB: 5.5 M items, two keys (``bench/bank_scale.py``), DuckDB's cross
        product of 300 combinations copied and ANDed 0.4 GB of bitstrings (0.6 of the 0.73 s)."""
        import numpy as np

        span = self._key_range()
        assert span is not None   # noqa: S101 - _bitsets_fit checked it
        lo, hi = span
        n_bytes = (hi - lo) // 8 + 1
        # A bitstring read as BLOB: ceil(n / 8) bytes, the first byte's unused high bits zero; as uint64 words
        # (zero-padded) for numpy's popcount.
        words = -(-n_bytes // 8)

        def bitsets(sql: str, params: list[Any]) -> tuple[list[Any], np.ndarray]:
            rows = self.conn.execute(sql, params).fetchall()
            out = np.zeros((len(rows), words), np.uint64)
            raw = out.view(np.uint8)
            for n, (_, blob) in enumerate(rows):
                if blob is not None:   # (no row selected: bitstring_agg is NULL)
                    raw[n, :n_bytes] = np.frombuffer(blob, np.uint8)
            return [r[0] for r in rows], out

        s = self.settings()
        selected = f"WITH {cte.strip()} SELECT NULL, bitstring_agg(iv.item_key, ?, ?)::BLOB FROM iv WHERE {where}"  # noqa: S608 - fixed text, values bound
        _, sel = bitsets(selected, [*cparams, lo, hi, *wparams])
        exposed, ex = bitsets(f"""SELECT {tier_sql('runs', 'pubs')}, bitstring_agg(item_key, ?, ?)::BLOB
                                  FROM item_exposure WHERE item_key BETWEEN ? AND ? GROUP BY 1""",  # noqa: S608
                              [*tier_params(s), lo, hi, lo, hi])
        # Each tier's selected items: those whose exposure row has it, and the unexposed items in the tier of no
        # exposure.
        unexposed = first(self.conn.execute(f"SELECT {tier_sql('0', '0')}", tier_params(s)))[0]  # noqa: S608
        labels: list[tuple[Any, ...]] = [(t,) for t in FIXED_VALUES["frequency_tier"]]
        level = np.zeros((3, words), np.uint64)
        for n, (tier,) in enumerate(labels):
            if tier in exposed:
                level[n] = ex[exposed.index(tier)]
            if tier == unexposed:
                level[n] |= ~np.bitwise_or.reduce(ex, axis=0)   # (no exposed item: every bit)
        level &= sel
        key_sets = []
        for key in by:
            values, sets = bitsets("""SELECT value, bitstring_agg(item_key, ?, ?)::BLOB FROM item_tags
                                      WHERE key = ? AND item_key BETWEEN ? AND ? GROUP BY value""", [lo, hi, key, lo, hi])
            # + the items without the key (its complement's bits outside the selection are ANDed away)
            key_sets.append(([*values, None], np.concatenate([sets, ~np.bitwise_or.reduce(sets, axis=0, keepdims=True)])))
        for values, _ in key_sets:
            labels = [(*lab, v) for lab in labels for v in values]
        # Every combination's AND, a block of words at a time: the block's combinations (at most
        # STATS_BITSET_COMBOS x 8 KiB) stay in the cache instead of passing through memory once per key.
        counts = np.zeros(len(labels), np.int64)
        for w in range(0, words, _BITSET_BLOCK_WORDS):
            block = level[:, w:w + _BITSET_BLOCK_WORDS]
            for _, sets in key_sets:
                block = (block[:, None, :] & sets[None, :, w:w + _BITSET_BLOCK_WORDS]).reshape(-1, block.shape[-1])
            counts += np.bitwise_count(block).sum(axis=1, dtype=np.int64)
        rows = [(*lab, int(c)) for lab, c in zip(labels, counts.tolist(), strict=True) if c]
        cols = list(zip(*rows, strict=True)) if rows else [()] * (len(by) + 2)
        names = ", ".join(f'v{n} AS "{key}"' for n, key in enumerate(by))
        group = ", ".join(str(i + 1) for i in range(len(by)))
        tiers = ", ".join(f"coalesce(sum(n) FILTER (WHERE tier = '{t}'), 0)::BIGINT AS freq_tier_{t}"
                          for t in FIXED_VALUES["frequency_tier"])
        unnest = ", ".join(["unnest(?::VARCHAR[]) AS tier", *(f"unnest(?::VARCHAR[]) AS v{n}" for n in range(len(by))),
                            "unnest(?::BIGINT[]) AS n"])
        sql = f"""SELECT {names}, sum(n)::BIGINT AS items, {tiers} FROM (SELECT {unnest})
                  GROUP BY {group} HAVING sum(n) > 0 ORDER BY {group}"""  # noqa: S608 - keys are bound; names quoted as the join query quotes them
        return self.conn.execute(sql, [list(c) for c in cols])

    def item(self, ref: str) -> dict[str, Any]:
        """Everything the bank knows about one item."""
        import numpy as np

        item_id = self.resolve(ref)
        frame = self.items({"item_id": [item_id]}, include_retired=True)
        rec: dict[str, Any] = {str(k): (None if (isinstance(v, float) and np.isnan(v)) else v) for k, v in frame.iloc[0].to_dict().items()}
        choices = rec.get("choices")
        if isinstance(choices, np.ndarray):
            rec["choices"] = choices.tolist()
        rec["tags"] = {k: sorted(v) for k, v in self._tags_of(item_id).items()}
        rec["aliases"] = [f"{s}:{e}" for s, e in self.conn.execute(
            "SELECT source, external_id FROM item_aliases WHERE item_id = ? ORDER BY source, external_id",
            [item_id]).fetchall()]
        rec["derived_items"] = [r[0] for r in self.conn.execute(
            "SELECT item_id FROM items WHERE parent_item_id = ? ORDER BY item_id", [item_id]).fetchall()]
        rec["forms"] = [r[0] for r in self.conn.execute(
            "SELECT DISTINCT form_name FROM form_items WHERE item_id = ? ORDER BY 1", [item_id]).fetchall()]
        return rec

    def _insert_tag(self, item_id: str, key: str, value: str, seq: int) -> None:
        """One tag row, carrying ``seq``: the per-item event that records it. The caller notes the values it wrote
        (``note_tag_values``) once, after its rows: a query a row made ``bank tag`` of 1,000 items 39% slower."""
        self.conn.execute("INSERT INTO item_tags (item_key, key, value, seq) SELECT item_key, ?, ?, ? FROM items "
                          "WHERE item_id = ?", [key, value, seq, item_id])

    def _tags_of(self, item_id: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in self.conn.execute(
                "SELECT t.key, t.value FROM item_tags t JOIN items i USING (item_key) WHERE i.item_id = ?", [item_id]).fetchall():
            out.setdefault(key, []).append(value)
        return out

    def item_history(self, ref: str) -> pd.DataFrame:
        """The item's events, oldest first: ``seq, ts, kind, ref, payload, hash``."""
        return self._item_history(ref).df()

    def item_history_table(self, ref: str) -> Table:
        """``item_history`` as an ``adtbase.table.Table``, without pandas (``adt bank history``)."""
        from adtbase.table import Table

        return Table.from_result(self._item_history(ref))

    def _item_history(self, ref: str) -> duckdb.DuckDBPyConnection:
        # The item's own events, and its rows a batch event recorded, shown as that event (its seq, ts, ref and hash)
        # under the per-item kind a row of that table stands for (created, aliased, tagged, answered).
        item_id = self.resolve(ref)
        return self.conn.execute("""
            WITH b AS (SELECT seq, ts, ref, hash FROM events WHERE kind = ?)
            SELECT seq, ts, kind, ref, payload, hash FROM (
              SELECT seq, ts, kind, ref, payload, hash FROM events WHERE item_id = ?
              UNION ALL
              SELECT b.seq, b.ts, 'created', b.ref,
                     CAST(json_object('content_hash', i.content_hash, 'source', i.source) AS VARCHAR),
                     b.hash FROM items i JOIN b USING (seq) WHERE i.item_id = ?
              UNION ALL
              SELECT b.seq, b.ts, 'aliased', b.ref,
                     CAST(json_object('source', a.source, 'external_id', a.external_id) AS VARCHAR),
                     b.hash FROM item_aliases a JOIN b USING (seq) WHERE a.item_id = ?
              UNION ALL
              SELECT b.seq, any_value(b.ts), 'tagged', any_value(b.ref),
                     CAST(json_object('tags', string_agg(t.key || '=' || t.value, ';' ORDER BY t.key, t.value))
                          AS VARCHAR), any_value(b.hash)
              FROM item_tags t JOIN items i USING (item_key) JOIN b ON b.seq = t.seq WHERE i.item_id = ? GROUP BY b.seq
              UNION ALL
              SELECT b.seq, b.ts, 'answered', x.run_id,
                     CAST(json_object('score', x.score) AS VARCHAR), b.hash
              FROM responses x JOIN b USING (seq) WHERE x.item_id = ?)
            ORDER BY seq, CASE kind WHEN 'created' THEN 0 WHEN 'aliased' THEN 1 WHEN 'tagged' THEN 2 ELSE 3 END, ref""",
            [history.BATCH_KIND, *[item_id] * 5])

    # -- curation -----------------------------------------------------------------------------------
    def retire(self, refs: Sequence[str], reason: str, *, rule: str | None = None) -> int:
        """End items' lives (review state and stage ``retired``): one ``retired`` event each, with the state it
        left, the reason and the lifecycle ``rule`` that retired it, if one did."""
        if not reason.strip():
            raise InputError("--reason must say why the items are retired")
        ids = list(dict.fromkeys(self.resolve(r) for r in refs))
        before = self._review_states(ids)
        ids = [i for i in ids if before[i] != review.RETIRED]
        extra = {"rule": rule} if rule else {}
        ts = now()
        with self.transaction():
            for item_id in ids:
                self.conn.execute("UPDATE items SET review_state = 'retired', retired_reason = ? WHERE item_id = ?",
                                  [reason, item_id])
            history.append(self.conn, [Event("retired", i, None, {"from": before[i], "reason": reason, **extra})
                                       for i in ids], ts)
        return len(ids)

    def set_review_state(self, refs: Sequence[str], state: str, *, reason: str | None = None,
                         reviewer: str | None = None) -> int:
        """Move items to review state ``state`` (``adtbase.review``: draft -> approved | rejected, back to
        draft to re-review); one event each, with the state it left, the reason and the reviewer. A
        rejection needs a reason. Every refused move is named at once and nothing is written; items already
        in ``state`` are left as they are. Returns how many items changed."""
        if state not in review.DECISIONS:
            raise InputError(review.transition_problem("", "", state) or f"review state {state!r}")
        if state == review.REJECTED and not (reason or "").strip():
            raise InputError("a rejection needs a reason (--reason)")
        named: dict[str, str] = {}   # item id -> the ref first given for it (messages use the ref as given)
        for ref in refs:
            named.setdefault(self.resolve(ref), str(ref))
        ids = list(named)
        before = self._review_states(ids)
        label = {i: i if r == i else f"{r} ({i})" for i, r in named.items()}
        refused = {i: p for i in ids if (p := review.transition_problem(label[i], before[i], state))}
        if refused:  # say who decided and when: a reviewer never overrides another's decision unknowingly
            last = self.review_decisions(list(refused))
            problems = [p + _decided(last.get(i)) for i, p in refused.items()]
            more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
            raise InputError(f"{len(problems)} of {len(ids)} items cannot be {state}; nothing changed:\n  "
                             + "\n  ".join(problems[:20]) + more)
        moving = [i for i in ids if before[i] != state]
        payload: dict[str, Any] = {}
        if reason and reason.strip():
            payload["reason"] = reason.strip()
        if reviewer and reviewer.strip():
            payload["reviewer"] = reviewer.strip()
        with self.transaction():
            for item_id in moving:
                self.conn.execute("UPDATE items SET review_state = ? WHERE item_id = ?", [state, item_id])
            history.append(self.conn, [Event(state, i, None, {"from": before[i], **payload}) for i in moving], now())
        return len(moving)

    def set_stage(self, refs: Sequence[str], stage: str, *, reason: str, rule: str | None = None,
                  until_round: int | None = None) -> int:
        """Move items to lifecycle stage ``stage`` (``adtbase.lifecycle``: pretest -> operational <-> rested) for one
        reason: ``set_stages`` with one row per item. Returns how many items moved."""
        named: dict[str, str] = {}
        for ref in refs:
            named.setdefault(self.resolve(ref), str(ref))
        return self.set_stages([{"item_id": i, "stage": stage, "reason": reason, "rule": rule,
                                 "until_round": until_round, "ref": r} for i, r in named.items()])

    def set_stages(self, moves: Sequence[Mapping[str, Any]]) -> int:
        """Apply stage moves (``item_id``, ``stage``, ``reason``, optional ``rule``, ``until_round``) in one
        transaction: one ``stage`` event each (payload ``from``, ``to``, ``reason``, the ``rule`` that moved it, a
        rested item's ``until_round``). Every refused move is named at once and nothing is written; an item
        already in its stage is left alone. Retirement is ``retire``. Returns how many items moved."""
        import pandas as pd

        problems = []
        for m in moves:
            if not str(m.get("reason") or "").strip():
                problems.append(f"{m['item_id']}: a stage move needs a reason")
            if m["stage"] == lifecycle.RESTED and m.get("until_round") is None:
                problems.append(f"{m['item_id']}: resting needs the round it returns in (until_round)")
        unknown = self.unknown_items([m["item_id"] for m in moves])
        problems += [f"{i}: no such item" for i in unknown]
        if not problems:
            before = self.stages([m["item_id"] for m in moves])
            problems = [p for m in moves if (p := lifecycle.stage_problem(
                m.get("ref") or m["item_id"], before[m["item_id"]], m["stage"]))]
        if problems:
            more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
            raise InputError(f"{len(problems)} of {len(moves)} stage moves refused; nothing changed:\n  "
                             + "\n  ".join(problems[:20]) + more)
        moving = [m for m in moves if before[m["item_id"]] != m["stage"]]
        if not moving:
            return 0
        events = []
        for m in moving:
            payload: dict[str, Any] = {"from": before[m["item_id"]], "to": m["stage"], "reason": str(m["reason"]).strip()}
            if m.get("rule"):
                payload["rule"] = m["rule"]
            if m["stage"] == lifecycle.RESTED:
                payload["until_round"] = int(m["until_round"])
            events.append(Event(lifecycle.STAGE_EVENT, m["item_id"], None, payload))
        frame = pd.DataFrame({"item_id": [m["item_id"] for m in moving], "stage": [m["stage"] for m in moving],
                              "until_round": pd.array([int(m["until_round"]) if m["stage"] == lifecycle.RESTED else None
                                                       for m in moving], dtype="Int64")})
        self._register("_staged", frame)
        try:
            with self.transaction():
                self.conn.execute("UPDATE items SET stage = s.stage, rest_until_round = s.until_round "
                                  "FROM _staged s WHERE items.item_id = s.item_id")
                history.append(self.conn, events, now())
        finally:
            self.conn.unregister("_staged")
        return len(moving)

    def stages(self, ids: Sequence[str]) -> dict[str, str]:
        """Each item's stage (``adtbase.lifecycle.STAGES``: a retired item is ``retired``)."""
        rows = self.conn.execute("""SELECT item_id, CASE WHEN review_state = 'retired' THEN 'retired' ELSE stage END
                                    FROM items WHERE item_id IN (SELECT unnest(?::VARCHAR[]))""", [list(ids)]).fetchall()
        return {str(i): str(s) for i, s in rows}

    def runs_since_stage_move(self) -> dict[str, int]:
        """Runs that exposed each item since its last stage move (responses recorded after its last ``stage``
        event), for the items that have moved: the lifecycle's resting clock (an unmoved item's is all its runs)."""
        rows = self.conn.execute("""
            WITH last AS (SELECT item_id, max(seq) AS seq FROM events WHERE kind = 'stage' AND item_id IS NOT NULL
                          GROUP BY item_id)
            SELECT l.item_id, count(x.seq) FROM last l
            LEFT JOIN responses x ON x.item_id = l.item_id AND x.seq > l.seq
            GROUP BY l.item_id""").fetchall()
        return {str(i): int(n) for i, n in rows}

    def events_by_round(self, kinds: Sequence[str]) -> pd.DataFrame:
        """How many events of ``kinds`` fell in each round: ``round_no, kind, from, to, rule, n``. An event belongs to
        the latest round opened (``publish``) at or before it; round 0 is before the first. ``from``, ``to`` and
        ``rule`` come from the payload (stage moves, retirements). Items a batch event created count as ``created``
        (one each, at the batch's time)."""
        return self.conn.execute("""
            WITH e AS (SELECT ts, kind, payload FROM events
                       WHERE kind IN (SELECT unnest(?::VARCHAR[])) AND item_id IS NOT NULL
                       UNION ALL
                       SELECT b.ts, 'created', '{}' FROM items i JOIN events b ON b.seq = i.seq AND b.kind = ?
                       WHERE list_contains(?::VARCHAR[], 'created'))
            SELECT coalesce((SELECT max(r.round_no) FROM rounds r WHERE r.opened_at <= e.ts), 0) AS round_no,
                   e.kind, json_extract_string(e.payload, '$.from') AS "from", json_extract_string(e.payload, '$.to') AS "to",
                   json_extract_string(e.payload, '$.rule') AS rule, count(*) AS n
            FROM e GROUP BY ALL ORDER BY ALL""", [list(kinds), history.BATCH_KIND, list(kinds)]).df()

    def latest_round(self) -> int | None:
        """The latest round a form was published in (``publish``), None before any."""
        row = self.conn.execute("SELECT max(round_no) FROM rounds").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def review_decisions(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The last review-state event of each of ``ids`` that has one: ``state, ts, reviewer, reason``."""
        rows = self.conn.execute(f"""
            SELECT item_id, arg_max(kind, seq), arg_max(ts, seq),
                   arg_max(coalesce(json_extract_string(payload, '$.reviewer'), ''), seq),
                   arg_max(coalesce(json_extract_string(payload, '$.reason'), ''), seq)
            FROM events WHERE kind IN ({_STATE_KINDS_SQL})
              AND item_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY item_id""", [list(ids)]).fetchall()  # noqa: S608
        return {str(r[0]): {"state": r[1], "ts": str(r[2]), "reviewer": r[3] or None, "reason": r[4] or None}
                for r in rows}

    def edit_item(self, ref: str, *, reviewer: str, question: str | None = None, choices: Sequence[str] | None = None,
                  answer: str | None = None, tags: Mapping[str, Sequence[str]] | None = None,
                  reason: str | None = None) -> str:
        """A reviewer's edit of a draft: a new item version, returned as its id.

        Items are keyed by content, so an edit is a new item (id from ``content.content_hash``, the importer's
        rule) whose ``parent_item_id`` is the old one, with the old one's source and provenance, arriving as a
        draft; the old draft leaves the queue as ``rejected`` ("superseded by <new id>"). Only a draft is
        edited: an approved item may sit in forms, so it goes back to review first (``adt review reopen``).
        Given fields replace the old ones (``answer`` is read as the importer reads a key; without it the
        old key stays and must fit the new choices); ``tags`` replaces the values of the keys it names.
        Both items get an event in the reviewer's name; an edit that changes nothing is refused; one
        transaction."""
        from adtbase import itemtypes

        from .content import content_hash, item_id_from_hash

        if not (reviewer or "").strip():
            raise InputError("an edit needs the reviewer's name (--reviewer)")
        old_id = self.resolve(ref)
        old = first(self.conn.execute("""SELECT question, choices, answer, item_type, review_state, source FROM items
                                          WHERE item_id = ?""", [old_id]))
        assert old is not None  # resolve() found it
        old_q, old_choices, old_key, itype, state, source = old
        if state != review.DRAFT:
            raise InputError(f"{ref} is {state}{_decided(self.review_decisions([old_id]).get(old_id))}: only a draft "
                             f"is edited; send it back to draft first (adt review reopen {ref})")
        kind = itemtypes.get(itype)
        q = old_q if question is None else question
        ch = list(old_choices or []) if choices is None else [str(c) for c in choices]
        problems = list(kind.validate({"question": q, "choices": ch}))
        if not q.strip():
            problems.append("question: empty")
        if any(not c.strip() for c in ch):
            problems.append("choices: a choice is empty")
        key = old_key
        try:
            if answer is not None:
                key = kind.canonical_key(answer, choices=ch) if answer.strip() else None
            elif key is not None and kind.has_choices:
                kind.canonical_key(key, choices=ch)  # the old key must still name one of the choices
        except ValueError as exc:
            problems.append(f"answer: {exc}")
        new_tags = {k: sorted(v) for k, v in self._tags_of(old_id).items()}
        tax = self.taxonomy()
        for k, values in (tags or {}).items():
            if k in taxonomy.BUILTIN_KEYS or k == "difficulty_band":
                problems.append(f"tags: {k} is a built-in column, not a tag")
                continue
            for v in values:
                try:
                    tax.check(k, v, "tags")
                except TaxonomyError as exc:
                    problems.append(str(exc))
            new_tags[k] = sorted(set(values))
        new_tags = {k: v for k, v in new_tags.items() if v}
        if problems:
            raise InputError(f"edit of {ref}: " + "; ".join(problems) + "; nothing changed")
        digest = content_hash(q, ch or None, key)
        new_id = item_id_from_hash(digest)
        if new_id == old_id:
            raise InputError(f"edit of {ref}: the question, choices and answer are those of {old_id} (an edit must "
                             f"change the item's content); nothing changed")
        if first(self.conn.execute("SELECT 1 FROM items WHERE item_id = ?", [new_id])):
            raise InputError(f"edit of {ref}: item {new_id} already has this content (review that one); nothing changed")
        who = reviewer.strip()
        why = (reason or "").strip()
        ts, batch = now(), "edit_" + uuid.uuid4().hex[:12]
        tag_text = ";".join(f"{k}={v}" for k in sorted(new_tags) for v in new_tags[k])
        with self.transaction():
            seq = self.head().n_events + 1   # the new item and its tags carry its 'created' event's seq
            self.conn.execute(f"""INSERT INTO items ({_ITEM_COLUMNS}, seq, item_key) SELECT ?, ?, ?, ?, item_type, language, ?, source, source_version,
                license, origin, generator, generator_params, item_id, ?, declared_band, ?, ?, NULL, ?, {_NEXT_KEY}
                FROM items WHERE item_id = ?""",  # noqa: S608 - fixed column list
                              [new_id, q, ch or None, key, digest, review.DRAFT, batch, ts, seq, old_id])
            for k, values in new_tags.items():
                for v in values:
                    self._insert_tag(new_id, k, v, seq)
            note_tag_values(self.conn, "SELECT key, value FROM item_tags WHERE seq = ?", [seq])   # the rows just written
            self.conn.execute("UPDATE items SET review_state = ? WHERE item_id = ?", [review.REJECTED, old_id])
            created = {"content_hash": digest, "external_id": None, "source": source,
                       "tags": tag_text, "parent": old_id, "reviewer": who, **({"reason": why} if why else {})}
            superseded = {"from": review.DRAFT, "reason": f"superseded by {new_id}" + (f": {why}" if why else ""),
                          "reviewer": who, "superseded_by": new_id}
            history.append(self.conn, [Event("created", new_id, batch, created),
                                       Event(review.REJECTED, old_id, batch, superseded)], ts)
        return new_id
    # -- quality control (adt qc): one "qc" event per item and check; the latest per check counts --------
    def record_qc(self, checks: Iterable[tuple[str, str, Sequence[str], Mapping[str, Any]]], qc_run: str) -> int:
        """Record QC outcomes ``(item_id, check, flags, detail)`` as "qc" events, in one transaction.
        ``check`` must be one of ``QC_CHECKS`` and every flag one of ``QC_FLAGS``."""
        events = []
        for item_id, check, flags, detail in checks:
            if check not in QC_CHECKS:
                raise InputError(f"qc check {check!r} is not one of {list(QC_CHECKS)}")
            bad = [f for f in flags if f not in QC_FLAGS]
            if bad:
                raise InputError(f"qc flags {bad} are not among {list(QC_FLAGS)}")
            events.append(Event("qc", str(item_id), qc_run,
                                {"check": check, "flags": sorted(set(flags)), "detail": dict(detail), "qc_run": qc_run}))
        unknown = self.unknown_items(e.item_id for e in events if e.item_id)
        if unknown:
            raise ItemNotFound(f"qc: {len(unknown)} items not in the bank (e.g. {unknown[0]})")
        if events:
            with self.transaction():
                history.append(self.conn, events, now())
        return len(events)

    def qc_flags(self, ids: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """item id -> check -> ``{"flags", "detail", "ts", "qc_run"}`` of the latest "qc" event per (item, check);
        every item with a QC event when ``ids`` is None."""
        where = "" if ids is None else "AND item_id IN (SELECT unnest(?::VARCHAR[]))"
        rows = self.conn.execute(f"""
            SELECT item_id, json_extract_string(payload, '$.check') AS chk, arg_max(payload, seq), arg_max(ts, seq)
            FROM events WHERE kind = 'qc' {where} GROUP BY item_id, chk""",  # noqa: S608 (a fixed fragment)
                                 [] if ids is None else [list(ids)]).fetchall()
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for item_id, check, payload, ts in rows:
            p = json.loads(payload)
            out.setdefault(str(item_id), {})[str(check)] = {
                "flags": list(p.get("flags", [])), "detail": p.get("detail", {}), "ts": str(ts), "qc_run": p.get("qc_run")}
        return out

    def flagged(self, flags: Sequence[str], ids: Sequence[str] | None = None) -> set[str]:
        """The items (of ``ids``, or all) whose current QC flags include any of ``flags``."""
        want = set(flags)
        return {i for i, checks in self.qc_flags(ids).items() if want & set(qc_current_flags(checks))}

    def _review_states(self, ids: Sequence[str]) -> dict[str, str]:
        rows = self.conn.execute("SELECT item_id, review_state FROM items WHERE item_id IN (SELECT unnest(?::VARCHAR[]))",
                                 [list(ids)]).fetchall()
        return {str(i): str(s) for i, s in rows}

    def tag(self, refs: Sequence[str], key: str, value: str, extend_taxonomy: bool = False) -> int:
        if key == "difficulty_band":
            raise InputError("difficulty_band is computed from calibrations (declare it at import for new items)")
        if key in taxonomy.BUILTIN_KEYS:
            raise InputError(f"{key} is a built-in column, not a tag")
        tax = self.taxonomy()
        new_keys, new_values = tax.missing([(key, value)])
        if (new_keys or new_values) and not extend_taxonomy:
            tax.check(key, value, "bank tag")
        ids = [self.resolve(r) for r in refs]
        with self.transaction():
            taxonomy.extend(self.conn, new_keys, new_values)
            fresh = [i for i in ids if not first(self.conn.execute(
                "SELECT 1 FROM item_tags t JOIN items i USING (item_key) WHERE i.item_id = ? AND t.key = ? AND t.value = ?",
                [i, key, value]))]
            start = self.head().n_events + 1   # each tag carries the seq of its item's 'tagged' event
            for n, item_id in enumerate(fresh):
                self._insert_tag(item_id, key, value, start + n)
            if fresh:
                note_tag_values(self.conn, "SELECT ?, ?", [key, value])
            history.append(self.conn, [Event("tagged", i, None, {"tags": f"{key}={value}"}) for i in fresh], now())
        return len(fresh)

    # -- forms and publications --------------------------------------------------------------------
    def save_form(self, name: str, item_ids: Sequence[str], *, spec: dict, strategy: str, seed: int | None,
                  snapshot_id: str, calibration_id: str | None, objectives: dict, content_hash: str,
                  n_uncalibrated: int, pretest_ids: Sequence[str] = (), n_stand_in: int = 0) -> None:
        """Store a form: its items in order; ``pretest_ids`` (a subset) are administered and never scored, and
        ``n_stand_in`` pretest-stage items stand in as operational ones (a young bank, ``adtbase.lifecycle``)."""
        import numpy as np
        import pandas as pd

        check_name("form", name)  # the name rule (adtbase.names), as for models
        if first(self.conn.execute("SELECT 1 FROM forms WHERE name = ?", [name])):
            raise InputError(f"form {name!r} already exists; pick another --name")
        unknown = self.unknown_items(item_ids)
        if unknown:
            raise ItemNotFound(f"form {name}: items not in the bank: {', '.join(unknown[:5])}")
        pretest = set(pretest_ids)
        if not pretest <= set(item_ids):
            raise InputError(f"form {name}: pretest items not on the form: {', '.join(sorted(pretest - set(item_ids))[:5])}")
        ts = now()
        with self.transaction():
            self.conn.execute("INSERT INTO forms (name, spec, strategy, seed, snapshot_id, calibration_id, objectives, "
                              "content_hash, n_items, n_uncalibrated, created_at, n_stand_in) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              [name, json.dumps(spec, sort_keys=True, default=str), strategy, seed, snapshot_id,
                               calibration_id, json.dumps(objectives, default=float), content_hash,
                               len(item_ids), n_uncalibrated, ts, int(n_stand_in)])
            self._register("_form_items", pd.DataFrame({"position": np.arange(len(item_ids), dtype=np.int32),
                                                        "item_id": list(item_ids),
                                                        "pretest": [i in pretest for i in item_ids]}))
            self.conn.execute("INSERT INTO form_items SELECT ?, position, item_id, pretest FROM _form_items", [name])
            self.conn.unregister("_form_items")
            history.append(self.conn, [Event("put_in_form", i, name, {"position": p})
                                       for p, i in enumerate(item_ids)], ts)
            self.record_head(f"form {name}")

    def form(self, name: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM forms WHERE name = ?", [name]).df()
        if row.empty:
            names = [r[0] for r in self.conn.execute("SELECT name FROM forms ORDER BY name").fetchall()]
            raise FormNotFound(f"no form {name!r}" + (f"; forms: {', '.join(names[:20])}" if names else ""))
        rec: dict[str, Any] = {str(k): v for k, v in row.iloc[0].to_dict().items()}
        rec["spec"] = json.loads(rec["spec"])
        rec["objectives"] = json.loads(rec["objectives"] or "{}")
        rec["item_ids"] = [r[0] for r in self.conn.execute(
            "SELECT item_id FROM form_items WHERE form_name = ? ORDER BY position", [name]).fetchall()]
        rec["pretest_ids"] = [r[0] for r in self.conn.execute(
            "SELECT item_id FROM form_items WHERE form_name = ? AND pretest ORDER BY position", [name]).fetchall()]
        rec["publications"] = [r[0] for r in self.conn.execute(
            "SELECT round_no FROM publications WHERE form_name = ? ORDER BY round_no", [name]).fetchall()]
        return rec

    def forms(self) -> pd.DataFrame:
        return self.conn.execute("""SELECT name, strategy, n_items, n_uncalibrated, seed, content_hash, created_at,
            (SELECT list(round_no ORDER BY round_no) FROM publications p WHERE p.form_name = f.name) AS published_in,
            (SELECT count(*) FROM form_items fi WHERE fi.form_name = f.name AND fi.pretest) AS n_pretest, n_stand_in
            FROM forms f ORDER BY created_at""").df()

    def publish(self, name: str, round_no: int) -> None:
        form = self.form(name)
        if round_no in form["publications"]:
            raise InputError(f"form {name!r} is already published in round {round_no}")
        ts = now()
        with self.transaction():
            self.conn.execute("INSERT INTO rounds SELECT ?, ?, NULL WHERE NOT EXISTS "
                              "(SELECT 1 FROM rounds WHERE round_no = ?)", [round_no, ts, round_no])
            self.conn.execute("INSERT INTO publications VALUES (?, ?, ?)", [name, round_no, ts])
            self.conn.execute("CREATE OR REPLACE TEMP TABLE _pub_items AS SELECT DISTINCT item_id FROM form_items "
                              "WHERE form_name = ?", [name])
            refresh_exposure(self.conn, "_pub_items")
            self.conn.execute("DROP TABLE _pub_items")
            history.append(self.conn, [Event("published", i, name, {"round": round_no}) for i in form["item_ids"]], ts)

    # -- near duplicates (itembank.neardup) ------------------------------------------------------
    def index_near_duplicates(self, item_ids: Iterable[str] | None = None) -> int:
        """Add the items not in the near-duplicate index yet (all of them when None); how many were added."""
        from . import neardup

        return neardup.index_items(self, item_ids)

    def near_duplicates(self, item_ids: Sequence[str], *, threshold: float | None = None) -> pd.DataFrame:
        """Exact and near duplicates of ``item_ids`` among every item and among themselves: ``item_id, match_id,
        similarity, rule`` (``itembank.neardup``); indexes the unindexed first, these items included."""
        from . import neardup

        return neardup.near_duplicates(self, item_ids, threshold=threshold)

    def leaks(self, matches: pd.DataFrame) -> pd.DataFrame:
        """The ``near_duplicates`` rows whose match is an imported public item of another source, with its
        ``source`` (``neardup.PUBLIC_ORIGINS``)."""
        from . import neardup

        return neardup.leaks(self, matches)

    # -- calibration feedback ----------------------------------------------------------------------
    def set_difficulties(self, calibration_id: str, item_ids: Sequence[str], b: Sequence[float] | np.ndarray) -> None:
        """The latest calibrated difficulty of each item (difficulty bands are cut from these)."""
        import numpy as np
        import pandas as pd

        frame = pd.DataFrame({"item_id": list(item_ids), "calibration_id": calibration_id,
                              "b": np.asarray(b, dtype=float)}).dropna(subset=["b"])
        self._register("_diff", frame)
        try:
            with self.transaction():
                self.conn.execute("DELETE FROM item_difficulty WHERE item_id IN (SELECT item_id FROM _diff)")
                self.conn.execute("INSERT INTO item_difficulty SELECT item_id, calibration_id, b FROM _diff")
        finally:
            self.conn.unregister("_diff")

    def responses(self, filters: Mapping[str, Sequence[str]] | None = None,
                  models: Sequence[str] | None = None, *, scored: bool = False) -> pd.DataFrame:
        """Responses (run_id, model, item_id, score, round) to the items matching ``filters``: the evidence
        calibration, reports and validation read. QC solver runs (kind "qc", ``solver_answers``) are not in it:
        they answer items whose key is still in question.

        ``scored=True``: the evidence a *score* reads (abilities, predicted accuracy, comparisons, reports): an
        answer to an item that was a pretest item on the form of its run is left out (administered to gather
        calibration data, never scored; ``adtbase.lifecycle``); ``frame.attrs["n_pretest_left_out"]`` counts
        them (``attrs["pretest_left_out_by_model"]``: per model). Calibration reads every response (that is how pretest items get their data).

        A judge-scored answer still awaiting its verdicts (``scored_by = 'judge:pending'``: its score is a
        placeholder) is in neither view; ``attrs["n_judge_pending"]`` counts them."""
        import pandas as pd

        ids = self.item_ids(filters) if filters else None
        sql = """SELECT x.run_id, ru.model, x.item_id, x.score, ru.round_no AS round, ru.kind, ru.form_name
                 FROM responses x JOIN runs ru USING (run_id)"""
        params: list[Any] = []
        conds = ["ru.kind <> 'qc'", "x.scored_by IS DISTINCT FROM ?"]
        params.append(PENDING)
        if ids is not None:
            self._register("_resp_ids", pd.DataFrame({"item_id": ids}))
            conds.append("x.item_id IN (SELECT item_id FROM _resp_ids)")
        if models:
            conds.append(f"ru.model IN ({', '.join('?' for _ in models)})")
            params.extend(models)
        sql += " WHERE " + " AND ".join(conds)
        pretest = ("EXISTS (SELECT 1 FROM form_items fi WHERE fi.form_name = ru.form_name AND fi.item_id = x.item_id "
                   "AND fi.pretest)")
        try:
            count_sql = sql.replace("x.scored_by IS DISTINCT FROM ?", "x.scored_by = ?", 1)
            n_pending = first(self.conn.execute(f"SELECT count(*) FROM ({count_sql})", params))  # noqa: S608
            pending = int(n_pending[0]) if n_pending else 0
            if not scored:
                out = self.conn.execute(sql + " ORDER BY ru.model, x.item_id", params).df()
                out.attrs["n_judge_pending"] = pending
                return out
            frame = self.conn.execute(sql.replace("SELECT x.run_id,", f"SELECT {pretest} AS _pretest, x.run_id,", 1)
                                      + " ORDER BY ru.model, x.item_id", params).df()
            left_out = frame.pop("_pretest").fillna(False).to_numpy(dtype=bool)
            out = frame.loc[~left_out].reset_index(drop=True)
            out.attrs["n_judge_pending"] = pending
            out.attrs["n_pretest_left_out"] = int(left_out.sum())
            out.attrs["pretest_left_out_by_model"] = {str(m): int(n) for m, n in
                                                      frame.loc[left_out, "model"].value_counts().items()}
            return out
        finally:
            if ids is not None:
                self.conn.unregister("_resp_ids")

    def solver_answers(self, run_ids: Sequence[str], item_ids: Sequence[str]) -> pd.DataFrame:
        """The extracted answers (``run_id, model, item_id, extracted, score``) of runs ``run_ids`` to ``item_ids``:
        what ``adt qc`` re-reads to check keys (the extracted answer, not the stored score, is the evidence)."""
        return self.conn.execute("""
            SELECT x.run_id, ru.model, x.item_id, x.extracted, x.score FROM responses x JOIN runs ru USING (run_id)
            WHERE x.run_id IN (SELECT unnest(?::VARCHAR[])) AND x.item_id IN (SELECT unnest(?::VARCHAR[]))
            ORDER BY x.run_id, x.item_id""", [list(run_ids), list(item_ids)]).df()

    # -- judgments (issue 15; the coding and the frame are adtbase.verdicts') --------------------------
    def add_judgments(self, frame: pd.DataFrame) -> int:
        """Store judge calls (the columns of ``JUDGMENT_COLUMNS``) in one transaction; returns how many were new.

        A call already stored (same ``JUDGMENT_KEY``) adds nothing, so a re-ingested spool batch or a resumed judge
        run stores each call once. Refused whole, naming the first row at fault, when a column is missing, a
        verdict lies outside [0, 1], a missing verdict has no ``problem``, or a run is not in the bank."""
        import pandas as pd

        missing = [c for c in JUDGMENT_COLUMNS if c not in frame.columns]
        if missing:
            raise InputError(f"judgments lack column(s) {', '.join(missing)}")
        if frame.empty:
            return 0
        full = frame.loc[:, list(JUDGMENT_COLUMNS)].reset_index(drop=True)
        verdict = pd.to_numeric(full["verdict"], errors="coerce").astype(float)
        problem = full["problem"].where(full["problem"].notna(), None)
        for i in range(len(full)):
            v = verdict.iat[i]
            where = f"judgment {full['run_id'].iat[i]}/{full['item_id'].iat[i]}/{full['judge'].iat[i]}"
            if v == v and not 0.0 <= v <= 1.0:
                raise InputError(f"{where}: verdict {v} outside [0, 1]")
            if v != v and not problem.iat[i]:
                raise InputError(f"{where}: no verdict and no problem saying why")
        full["verdict"], full["problem"] = verdict, problem
        full["level"] = pd.to_numeric(full["level"], errors="coerce").astype("Int64")
        runs = sorted(set(full["run_id"].astype(str)) - {""})
        if runs:
            known = {r[0] for r in self.conn.execute("SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?))",
                                                     [runs]).fetchall()}
            unknown = [r for r in runs if r not in known]
            if unknown:
                raise InputError(f"judgments name a run not in the bank: {unknown[0]!r}")
        key = ", ".join(f'n."{c}"' for c in JUDGMENT_KEY)
        match = " AND ".join(f'j."{c}" = n."{c}"' for c in JUDGMENT_KEY)
        cols = ", ".join(f'"{c}"' for c in JUDGMENT_COLUMNS)
        self._register("_judg_new", full)
        try:
            with self.transaction():
                before = first(self.conn.execute("SELECT count(*) FROM judgments"))[0]
                self.conn.execute(f"""INSERT INTO judgments ({cols})
                    SELECT DISTINCT ON ({key}) {", ".join(f'n."{c}"' for c in JUDGMENT_COLUMNS)} FROM _judg_new n
                    WHERE NOT EXISTS (SELECT 1 FROM judgments j WHERE {match})""")  # noqa: S608 - fixed names
                return int(first(self.conn.execute("SELECT count(*) FROM judgments"))[0] - before)
        finally:
            self.conn.unregister("_judg_new")

    def judgments(self, run_ids: Sequence[str] | None = None, item_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The judgments frame (``JUDGMENT_COLUMNS``; ``verdict`` NaN and ``level`` <NA> where refused), of the
        runs and items named (all when None), ordered by its key."""
        conds: list[str] = []
        params: list[Any] = []
        if run_ids is not None:
            conds.append("run_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(run_ids))
        if item_ids is not None:
            conds.append("item_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(item_ids))
        cols = ", ".join(f'"{c}"' for c in JUDGMENT_COLUMNS)
        order = ", ".join(f'"{c}"' for c in JUDGMENT_KEY)
        where = "WHERE " + " AND ".join(conds) if conds else ""
        sql = f"SELECT {cols} FROM judgments {where} ORDER BY {order}"  # noqa: S608 - fixed names, bound values
        frame = self.conn.execute(sql, params).df()
        frame["verdict"] = frame["verdict"].astype(float)
        frame["level"] = frame["level"].astype("Int64")
        frame["n_levels"] = frame["n_levels"].astype(int)
        frame["problem"] = frame["problem"].astype(object).where(frame["problem"].notna(), None)
        return frame

    def set_judged_scores(self, scores: pd.DataFrame, *, scored_by: str = "panel") -> int:
        """Write judged scores (``run_id, item_id, score`` in [0, 1]) on judge-scored responses and record who
        scored them (``scored_by``: ``panel`` or ``human``); returns the responses changed. Only responses a
        judge scores are touched (pending or panel; ``human`` ones only by a human's score): a rule's score
        is never overwritten. Scores outside [0, 1] or NaN refuse the whole call."""
        import pandas as pd

        if scored_by not in ("panel", "human"):
            raise InputError(f"scored_by {scored_by!r}: judged scores are 'panel' or 'human' (of {SCORED_BY})")
        if scores.empty:
            return 0
        frame = pd.DataFrame({"run_id": scores["run_id"].astype(str), "item_id": scores["item_id"].astype(str),
                              "score": pd.to_numeric(scores["score"], errors="coerce").astype(float)})
        bad = frame[~frame["score"].between(0.0, 1.0)]
        if len(bad):
            r = bad.iloc[0]
            raise InputError(f"judged score of {r['run_id']}/{r['item_id']}: {r['score']} is not in [0, 1]")
        over = [PENDING, "panel"] + (["human"] if scored_by == "human" else [])
        self._register("_judged", frame)
        try:
            with self.transaction():
                row = first(self.conn.execute("""UPDATE responses SET score = s.score, scored_by = ? FROM _judged s
                    WHERE responses.run_id = s.run_id AND responses.item_id = s.item_id
                    AND responses.scored_by IN (SELECT unnest(?::VARCHAR[]))""", [scored_by, over]))
            return int(row[0]) if row else 0
        finally:
            self.conn.unregister("_judged")

    def judged_answers(self, run_ids: Sequence[str] | None = None, *, form_name: str | None = None,
                       round_no: int | None = None, scored_by: Sequence[str] = (PENDING,)) -> pd.DataFrame:
        """Judge-scored answers (``scored_by`` in the states given; pending by default) of the runs named, of a
        form's runs, of a round's runs, or of every run: ``run_id, model, item_id, item_type, language, question,
        key`` (the item's judge key), ``answer`` (the candidate's whole answer) and ``scored_by``."""
        conds = ["x.scored_by IN (SELECT unnest(?::VARCHAR[]))"]
        params: list[Any] = [list(scored_by)]
        if run_ids is not None:
            conds.append("x.run_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(run_ids))
        if form_name is not None:
            conds.append("ru.form_name = ?")
            params.append(form_name)
        if round_no is not None:
            conds.append("ru.round_no = ?")
            params.append(int(round_no))
        return self.conn.execute(f"""
            SELECT x.run_id, ru.model, x.item_id, i.item_type, i.language, i.question, i.answer AS key,
                   coalesce(x.extracted, x.raw_output, '') AS answer, x.scored_by
            FROM responses x JOIN runs ru USING (run_id) JOIN items i USING (item_id)
            WHERE {' AND '.join(conds)} ORDER BY x.run_id, x.item_id""", params).df()  # noqa: S608 - fixed text
