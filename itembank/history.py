"""The append-only, hash-chained event log and its verification.

Each event's hash covers the previous event's hash and every field of the event, so an edited,
deleted, inserted or reordered event breaks the chain at that point. A history that was rewritten
and re-hashed end to end is internally consistent; it is caught by comparing with a head (event count
and hash) recorded elsewhere: in an export manifest, a form, a calibration, or by the operator.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import duckdb

from .sql import first

GENESIS = "0" * 64


@dataclass(frozen=True)
class Event:
    kind: str
    item_id: str | None
    ref: str | None
    payload: dict[str, Any] | str   # a dict, or its canonical JSON already written


@dataclass(frozen=True)
class Head:
    n_events: int
    hash: str

    def __str__(self) -> str:
        return f"{self.n_events}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Head:
        """``N:HASH`` (or just ``HASH``, meaning the head at whatever count carries that hash)."""
        if ":" in text:
            n, h = text.split(":", 1)
            return cls(int(n), h.strip())
        return cls(-1, text.strip())


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    n_events: int
    head: Head
    first_bad_seq: int | None
    problem: str | None


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical(payload: dict[str, Any] | str) -> str:
    return payload if isinstance(payload, str) else _ENCODER.encode(payload)


def encode_string(text: str) -> str:
    """A JSON string literal exactly as the canonical encoder writes it."""
    return _ENCODER.encode(text)


def event_hash(prev: str, seq: int, ts: str, kind: str, item_id: str | None, ref: str | None,
               payload: str) -> str:
    text = "|".join((prev, str(seq), ts, kind, item_id or "", ref or "", payload))
    return hashlib.sha256(text.encode()).hexdigest()


def head(conn: duckdb.DuckDBPyConnection) -> Head:
    row = first(conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"))
    return Head(0, GENESIS) if row is None else Head(int(row[0]), str(row[1]))


def append(conn: duckdb.DuckDBPyConnection, events: Iterable[Event], ts: str, chunk: int = 200_000) -> Head:
    """Append events after the current head (inside the caller's transaction), a chunk at a time."""
    import pyarrow as pa

    start = head(conn)
    n, prev = start.n_events, start.hash
    it = iter(events)
    while True:
        batch = list(islice(it, chunk))
        if not batch:
            break
        seqs, payloads, hashes = [], [], []
        for ev in batch:
            n += 1
            body = canonical(ev.payload)
            h = event_hash(prev, n, ts, ev.kind, ev.item_id, ev.ref, body)
            seqs.append(n)
            payloads.append(body)
            hashes.append(h)
            prev = h
        table = pa.table({"seq": pa.array(seqs, pa.int64()), "ts": pa.array([ts] * len(seqs), pa.string()),
                          "kind": pa.array([e.kind for e in batch], pa.string()),
                          "item_id": pa.array([e.item_id for e in batch], pa.string()),
                          "ref": pa.array([e.ref for e in batch], pa.string()),
                          "payload": pa.array(payloads, pa.string()), "hash": pa.array(hashes, pa.string())})
        del batch, payloads
        conn.register("_new_events", table)
        try:
            conn.execute("INSERT INTO events (seq, ts, kind, item_id, ref, payload, hash) SELECT * FROM _new_events")
        finally:
            conn.unregister("_new_events")
    return Head(n, prev)


def verify_rows(rows: Iterable[tuple[Any, ...]], expected: Head | None = None,
                recorded: Sequence[Head] = ()) -> VerifyReport:
    """Walk the chain in stored order; name the first event that does not verify.

    ``rows`` are (seq, ts, kind, item_id, ref, payload, prev_hash, hash) in storage order (the bank stores no
    prev_hash: ``verify`` passes the previous row's hash). ``expected`` is a head recorded outside the bank;
    ``recorded`` are heads the bank noted itself, which narrow down where a consistently re-hashed history was
    changed. Rows are read once, as they come: only the hashes at the heads' counts are kept (a bank of ten
    million events is verified in constant memory).
    """
    prev = GENESIS
    n = 0
    anchors = [h for h in (expected, *recorded) if h is not None]
    wanted = {h.n_events for h in anchors if h.n_events > 0}
    wanted_hashes = {h.hash for h in anchors if h.n_events < 0}
    kept: dict[int, str] = {}            # event count -> the hash there, at the heads' counts
    seen_hashes: set[str] = set()        # the hash-only heads found in the chain
    for seq, ts, kind, item_id, ref, payload, prev_hash, stored in rows:
        n += 1
        if seq != n:
            what = "deleted" if seq > n else "reordered or duplicated"
            return VerifyReport(False, n - 1, Head(n - 1, prev), n,
                                f"event {n} expected but found event {seq}: events {what}")
        if prev_hash != prev:
            return VerifyReport(False, n - 1, Head(n - 1, prev), n,
                                f"event {n} does not follow event {n - 1} (prev hash mismatch): "
                                f"an earlier event was deleted, reordered or edited")
        if event_hash(prev, seq, ts, kind, item_id, ref, payload) != stored:
            return VerifyReport(False, n - 1, Head(n - 1, prev), n,
                                f"event {n} ({kind}) was edited: its content does not match its hash")
        prev = stored
        if n in wanted:
            kept[n] = stored
        if stored in wanted_hashes:
            seen_hashes.add(stored)
    final = Head(n, prev)

    def mismatch(h: Head) -> str | None:
        if h.n_events < 0:
            return None if h.hash in seen_hashes else f"head {h.hash[:16]} is not in the chain"
        if h.n_events > n:
            return f"chain has {n} events but a head recorded {h.n_events}: events after {n} were deleted"
        if h.n_events > 0 and kept[h.n_events] != h.hash:
            return f"event {h.n_events} differs from the recorded head: history was rewritten at or before it"
        return None

    for anchor, origin in [(expected, "the given head")] + [(h, "a head the bank recorded") for h in recorded]:
        if anchor is None or (problem := mismatch(anchor)) is None:
            continue
        if anchor.n_events > n:
            return VerifyReport(False, n, final, n + 1, f"against {origin}: {problem}")
        # A head the bank recorded itself at or after the given one still verifies: the events up to the
        # given head are as they were then, so the given head was never a point of this history.
        witness = [h for h in recorded if h.n_events >= max(anchor.n_events, 1) and mismatch(h) is None]
        if anchor is expected and anchor.n_events > 0 and witness:
            return VerifyReport(False, n, final, None,
                                f"the given head {anchor} does not match any point of this history (the head "
                                f"the bank recorded at event {witness[0].n_events} verifies, so no event up to it "
                                f"changed): check that the head was copied from this bank, and in full")
        # A consistently re-hashed rewrite: heads recorded earlier that still match bound where it starts.
        upper = anchor.n_events if anchor.n_events > 0 else n
        lower = max([h.n_events for h in recorded if 0 <= h.n_events < upper and mismatch(h) is None] or [0])
        return VerifyReport(False, n, final, lower + 1,
                            f"against {origin}: {problem}; the first bad event is in {lower + 1}..{upper}")
    return VerifyReport(True, n, final, None, None)


def stored_rows(conn: duckdb.DuckDBPyConnection, batch: int = 100_000) -> Iterator[tuple[Any, ...]]:
    """The bank's events as ``verify_rows`` reads them, in storage (seq) order, ``batch`` rows at a time; each
    row's prev_hash is the previous row's stored hash (GENESIS first), as the chain rule reads it."""
    cur = conn.cursor()   # its own cursor: the caller's connection stays free while the rows stream
    try:
        cur.execute("SELECT seq, ts, kind, item_id, ref, payload, hash FROM events ORDER BY seq")
        prev = GENESIS
        while rows := cur.fetchmany(batch):
            for seq, ts, kind, item_id, ref, payload, stored in rows:
                yield seq, ts, kind, item_id, ref, payload, prev, stored
                prev = stored
    finally:
        cur.close()


def verify(conn: duckdb.DuckDBPyConnection, expected: Head | None = None) -> VerifyReport:
    """The chain (``verify_rows``), then the rows of the bulk-written tables against the events they carry."""
    recorded = [Head(int(n), str(h)) for n, h in
                conn.execute("SELECT n_events, head_hash FROM history_heads ORDER BY n_events").fetchall()]
    report = verify_rows(stored_rows(conn), expected, recorded)
    if not report.ok:
        return report
    bad = verify_rows_against_batches(conn)
    if bad is None:
        return report
    return VerifyReport(False, report.n_events, report.head, bad[0], bad[1])




# -- batch events: one event covers the rows a bulk write added -------------------------------------------------
# An import chunk or a response batch writes ONE ``batch`` event; every row it adds carries that event's seq, and
# the event's payload records, per table, how many rows carry it and a digest of exactly those rows. The digest is
# sha256 over the rows' sha256s in key order (order-defined: no xor of row hashes, which a pair of edits cancels).
# Columns a later, evented operation changes (review state, stage; a judge's score) are left out of it.
BATCH_KIND = "batch"
# table -> (key columns, digested columns); identifiers from this allow-list only.
BATCH_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "items": (("item_id",), ("item_id", "question", "choices", "answer", "item_type", "language", "content_hash",
                             "source", "source_version", "license", "origin", "generator", "generator_params",
                             "parent_item_id", "declared_band", "import_batch", "created_at")),
    "item_aliases": (("source", "external_id"), ("source", "external_id", "item_id")),
    "item_tags": (("item_id", "key", "value"), ("item_id", "key", "value")),
    # A rule's score is fixed; a judge-scored one ('judge:pending' -> panel/human) changes by design, so it is
    # digested as 'judged' (turning a rule's score into a judged one changes the digest).
    "responses": (("run_id", "item_id"), ("run_id", "item_id", "raw_output", "extracted", "template_id",
                                          "prompt_hash", "choice_logliks", "tokens_in", "tokens_out", "latency_s",
                                          "answered_at",
                                          "CASE WHEN scored_by = 'rule' THEN 'rule:' || CAST(score AS VARCHAR) "
                                          "ELSE 'judged' END")),
}


# Where a table's digested columns are read from, when not the table itself (a table keyed by an integer item key
# reads its item ids through items: the digest stays the one its batch recorded).
BATCH_RELATIONS: dict[str, str] = {
    "item_tags": "(SELECT i.item_id, t.key, t.value, t.seq FROM item_tags t JOIN items i USING (item_key))"}


def batch_relation(table: str) -> str:
    return BATCH_RELATIONS.get(table, table)


def batch_digest_sql(table: str) -> str:
    """(row count, digest) of ``table``'s rows carrying seq ``?``."""
    key, cols = BATCH_TABLES[table]
    # A row is the JSON array of its values as text (null for NULL): unambiguous, where joining them with a
    # separator would let text move from one column to the next unseen.
    row = ", ".join(f"CAST({c} AS VARCHAR)" for c in cols)
    return (f"SELECT count(*), sha256(coalesce(string_agg(sha256(to_json([{row}])), '' "  # noqa: S608 - allow-list
            f"ORDER BY {', '.join(key)}), '')) FROM {batch_relation(table)} WHERE seq = ?")


def batch_payload(conn: duckdb.DuckDBPyConnection, seq: int, tables: Sequence[str], **extra: Any) -> dict[str, Any]:
    """The payload of batch event ``seq``: each table's rows carrying it, counted and digested (tables where the
    batch added no row are left out)."""
    rows = {}
    for table in tables:
        n, digest = first(conn.execute(batch_digest_sql(table), [seq]))  # type: ignore[misc]
        if n:
            rows[table] = {"n": int(n), "sha256": str(digest)}
    return {**extra, "rows": rows}


# Rows whose seq is a per-item event (small operations, and every row of a bank from before batch events) must
# match that event: its item, and what its payload records of the row.
_PER_ITEM_MATCH = {
    "items": "e.kind = 'created' AND e.item_id = t.item_id "
             "AND json_extract_string(e.payload, '$.content_hash') = t.content_hash",
    # (Further ids one import merged into a new item were recorded by no event of their own: its 'created' one.)
    "item_aliases": "e.item_id = t.item_id AND e.kind IN ('created', 'aliased') "
                    "AND json_extract_string(e.payload, '$.source') = t.source "
                    "AND (e.kind = 'created' OR json_extract_string(e.payload, '$.external_id') = t.external_id)",
    "item_tags": "e.item_id = t.item_id AND e.kind IN ('created', 'tagged') AND list_contains("
                 "string_split(json_extract_string(e.payload, '$.tags'), ';'), t.key || '=' || t.value)",
    "responses": "e.kind = 'answered' AND e.item_id = t.item_id AND e.ref = t.run_id "
                 "AND (t.scored_by <> 'rule' OR TRY_CAST(json_extract_string(e.payload, '$.score') AS DOUBLE) = t.score)",
}


def verify_rows_against_batches(conn: duckdb.DuckDBPyConnection) -> tuple[int, str] | None:
    """(first bad seq, problem) when a table's rows do not match the events they point at, else None.

    Each batch event's rows are counted and digested again (the rows of one event lie together: rows are appended
    with their event's seq, so ``WHERE seq = ?`` reads only their row groups); a row pointing at no event, or at a
    per-item event that does not record it, is named by its seq (0: before any event)."""
    problems: list[tuple[int, str]] = []
    batches = conn.execute("SELECT seq, json_extract(payload, '$.rows') FROM events WHERE kind = ? ORDER BY seq",
                           [BATCH_KIND]).fetchall()
    for seq, rows_json in batches:
        recorded = json.loads(rows_json) if rows_json else {}
        for table in BATCH_TABLES:
            want = recorded.get(table, {"n": 0, "sha256": None})
            n, digest = first(conn.execute(batch_digest_sql(table), [seq]))  # type: ignore[misc]
            if int(n) != want["n"]:
                what = "deleted from" if int(n) < want["n"] else "added to"
                problems.append((int(seq), f"event {seq} (batch): {table} has {n} rows of it, the event recorded "
                                           f"{want['n']}: rows were {what} it"))
                break
            if n and digest != want["sha256"]:
                problems.append((int(seq), f"event {seq} (batch): {table} rows of it were edited (their digest "
                                           f"does not match the event's)"))
                break
        if problems:
            break   # batches are read in seq order: the first found is the first bad batch
    for table in BATCH_TABLES:
        row = first(conn.execute(f"""
            SELECT min(coalesce(t.seq, 0)), count(*) FROM {batch_relation(table)} t
            LEFT JOIN events b ON b.seq = t.seq AND b.kind = ?
            WHERE b.seq IS NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = t.seq AND {_PER_ITEM_MATCH[table]})""",  # noqa: S608
            [BATCH_KIND]))
        if row is not None and row[1]:
            problems.append((int(row[0]), f"{table}: {row[1]} row(s) recorded by no event that matches them (first "
                                          f"at event {row[0]}): rows were added or edited outside the history"))
    return min(problems) if problems else None
