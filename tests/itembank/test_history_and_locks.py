"""Tamper-evident history, the one-holder connection model, and the CLI's exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from adtbase.errors import BankBusy
from itembank import Head, ImportOptions, open_bank
from itembank.history import event_hash

ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "choices": [str(2 * i), str(2 * i + 1)], "answer": "A"}
        for i in range(8)]


@pytest.fixture
def bank_path(tmp_path: Path) -> Path:
    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"))     # one batch event for its 8 items
        bank.retire([f"toy:q{i}" for i in range(8)], reason="test")   # one event per item
    return path


def tamper(path: Path, *sql: str) -> None:
    conn = duckdb.connect(str(path))
    for stmt in sql:
        conn.execute(stmt)
    conn.close()


def verify(path: Path, head: Head | None = None):
    with open_bank(path) as bank:
        return bank.verify(head)


def current_head(path: Path) -> Head:
    with open_bank(path) as bank:
        return bank.head()


def test_clean_history_verifies(bank_path: Path) -> None:
    report = verify(bank_path, current_head(bank_path))
    assert report.ok and report.n_events == 9   # 1 batch (the import) + 8 retired


def test_edited_event_is_named(bank_path: Path) -> None:
    tamper(bank_path, "UPDATE events SET payload = '{\"reason\":\"nothing to see\"}' WHERE seq = 9")
    report = verify(bank_path)
    assert not report.ok and report.first_bad_seq == 9 and "edited" in (report.problem or "")


def test_deleted_middle_event_is_named(bank_path: Path) -> None:
    tamper(bank_path, "DELETE FROM events WHERE seq = 4")
    report = verify(bank_path)
    assert not report.ok and report.first_bad_seq == 4 and "deleted" in (report.problem or "")


def test_deleted_tail_is_caught_against_a_recorded_head(bank_path: Path) -> None:
    head = current_head(bank_path)
    tamper(bank_path, "DELETE FROM events WHERE seq = 9")
    assert verify(bank_path).ok                      # nothing inside the chain shows it ...
    report = verify(bank_path, head)                 # ... the recorded head does
    assert not report.ok and report.first_bad_seq == 9 and "deleted" in (report.problem or "")


def test_reordered_events_are_named(bank_path: Path) -> None:
    tamper(bank_path, "UPDATE events SET seq = -1 WHERE seq = 5", "UPDATE events SET seq = 5 WHERE seq = 6",
           "UPDATE events SET seq = 6 WHERE seq = -1")
    report = verify(bank_path)
    assert not report.ok and report.first_bad_seq == 5


def test_rehashed_history_is_caught_against_a_recorded_head(bank_path: Path) -> None:
    head = current_head(bank_path)
    conn = duckdb.connect(str(bank_path))
    rows = conn.execute("SELECT seq, ts, kind, item_id, ref, payload, hash FROM events ORDER BY seq").fetchall()
    prev = rows[1][6]   # the hash of event 2 (the bank stores no prev_hash)
    conn.execute("UPDATE events SET payload = '{\"forged\":true}' WHERE seq = 3")
    for seq, ts, kind, item_id, ref, payload, _ in rows[2:]:
        payload = '{"forged":true}' if seq == 3 else payload
        h = event_hash(prev, seq, ts, kind, item_id, ref, payload)
        conn.execute("UPDATE events SET hash = ? WHERE seq = ?", [h, seq])
        prev = h
    conn.close()
    assert verify(bank_path).ok                      # internally consistent ...
    report = verify(bank_path, head)
    assert not report.ok and "rewritten" in (report.problem or "")
    assert report.first_bad_seq is not None and report.first_bad_seq <= 3


def test_rehash_is_narrowed_by_heads_the_bank_recorded(bank_path: Path) -> None:
    with open_bank(bank_path) as bank:
        ids = list(bank.item_ids(include_retired=True))
        bank.record_head("a checkpoint")                                       # head at 9
        bank.save_form("f", ids[:2], spec={}, strategy="random", seed=0, snapshot_id="s", calibration_id=None,
                       objectives={}, content_hash="h", n_uncalibrated=0)   # records the head at 11
        final = bank.head()
    conn = duckdb.connect(str(bank_path))
    rows = conn.execute("SELECT seq, ts, kind, item_id, ref, payload, hash FROM events ORDER BY seq").fetchall()
    prev = rows[9][6]   # the hash of event 10
    for seq, ts, kind, item_id, ref, payload, _ in rows[10:]:
        payload = '{"forged":true}' if seq == 11 else payload
        h = event_hash(prev, seq, ts, kind, item_id, ref, payload)
        conn.execute("UPDATE events SET payload = ?, hash = ? WHERE seq = ?", [payload, h, seq])
        prev = h
    conn.close()
    report = verify(bank_path, final)
    # Event 9 still matches the checkpoint, so the rewrite is bounded to 10..11 (it was 11).
    assert not report.ok and report.first_bad_seq == 10 and "10..11" in (report.problem or "")


def test_a_head_from_elsewhere_is_named_not_blamed_on_the_history(bank_path: Path) -> None:
    """A mistyped or foreign head: when a head the bank recorded itself at or after it still verifies,
    the history is not at fault and the message says so (no first bad event)."""
    with open_bank(bank_path) as bank:
        recorded = bank.record_head("a checkpoint")
    wrong = Head(3, "0" * 64)
    report = verify(bank_path, wrong)
    assert not report.ok and report.first_bad_seq is None
    assert "does not match any point of this history" in (report.problem or "")
    assert f"recorded at event {recorded.n_events}" in (report.problem or "")
    assert verify(bank_path, recorded).ok


HOLDER = """
import sys, time
from itembank import open_bank
with open_bank(sys.argv[1], purpose="holding for a test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_waits_then_gets_a_clean_message(bank_path: Path) -> None:
    holder = hold(bank_path, 30)
    try:
        start = time.monotonic()
        with pytest.raises(BankBusy) as err:
            with open_bank(bank_path, wait_s=0.6):
                pass
        assert time.monotonic() - start >= 0.5
        assert f"pid {holder.pid}" in str(err.value) and "holding for a test" in str(err.value)
        # The CLI says the same in one line and exits 1.
        out = subprocess.run([sys.executable, "-m", "adt", "--bank", str(bank_path), "--wait", "0.3",
                              "bank", "stats"], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 1
        assert f"pid {holder.pid}" in out.stderr and out.stderr.strip().splitlines()[-1].startswith("error: ")
    finally:
        holder.kill()
        holder.wait()


def test_a_waiter_gets_the_bank_once_the_holder_lets_go(bank_path: Path) -> None:
    holder = hold(bank_path, 0.5)
    try:
        with open_bank(bank_path, wait_s=20) as bank:
            assert bank.verify().ok
    finally:
        holder.wait()


def test_a_killed_holder_does_not_leave_the_bank_locked(bank_path: Path) -> None:
    holder = hold(bank_path, 60)
    holder.kill()
    holder.wait()
    with open_bank(bank_path, wait_s=5) as bank:
        assert bank.verify().ok


def adt(*args: str, bank: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adt", "--bank", str(bank), *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_exit_codes_and_unchanged_bank_on_error(tmp_path: Path) -> None:
    bank = tmp_path / "b.duckdb"
    assert adt("init", bank=bank).returncode == 0
    good = tmp_path / "g.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    ok = adt("bank", "import", str(good), "--source", "toy", "--json", bank=bank)
    assert ok.returncode == 0 and json.loads(ok.stdout)["new_items"] == 8
    before = hashlib.sha256(bank.read_bytes()).hexdigest()
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"id": "z", "question": "Q?", "choices": ["a", "b"], "answer": "E"}) + "\n")
    out = adt("bank", "import", str(bad), "--source", "x", bank=bank)
    assert out.returncode == 1 and "b.jsonl: line 1: field 'answer'" in out.stderr
    assert hashlib.sha256(bank.read_bytes()).hexdigest() == before
    assert adt("bank", "import", bank=bank).returncode == 2          # usage error
    head = json.loads(adt("bank", "snapshot-id", "--json", bank=bank).stdout)["history_head"]
    assert adt("bank", "verify", "--head", head, bank=bank).returncode == 0
    tamper(bank, "DELETE FROM events WHERE seq = 1")
    out = adt("bank", "verify", "--head", head, bank=bank)
    assert out.returncode == 1 and "deleted" in out.stdout


def test_a_bank_from_before_migration_005_keeps_its_chain_heads_and_snapshot_id(bank_path: Path) -> None:
    """Migration 005 drops the stored prev_hash: an older bank (events with prev_hash) goes through it with the
    same head and snapshot id, verifies, and an edit made before the upgrade is still caught after it."""
    with open_bank(bank_path) as bank:
        head, snap = bank.head(), bank.snapshot_id()
    tamper(bank_path,  # the bank as adt wrote it before 005: prev_hash stored, 005 not applied
           "ALTER TABLE events ADD COLUMN prev_hash VARCHAR",
           "UPDATE events SET prev_hash = p.prev FROM (SELECT seq, coalesce(lag(hash) OVER (ORDER BY seq), "
           "repeat('0', 64)) AS prev FROM events) p WHERE p.seq = events.seq",
           "DELETE FROM schema_migrations WHERE room = 'itembank' AND version = 5")
    old = bank_path.with_name("old.duckdb")
    old.write_bytes(bank_path.read_bytes())
    tamper(old, "UPDATE events SET payload = '{\"forged\":true}' WHERE seq = 4")
    with open_bank(bank_path) as bank:
        cols = [r[0] for r in bank.conn.execute("SELECT column_name FROM information_schema.columns "
                                                "WHERE table_name = 'events'").fetchall()]
        assert "prev_hash" not in cols
        assert bank.head() == head and bank.snapshot_id() == snap
        assert bank.verify(head).ok
    with open_bank(old) as bank:
        report = bank.verify()
    assert not report.ok and report.first_bad_seq == 4 and "edited" in (report.problem or "")


def test_verify_streams_and_keeps_only_the_heads_it_checks(bank_path: Path) -> None:
    """A head given by hash alone (no count) is found in the chain while it streams; one not in it is named."""
    with open_bank(bank_path) as bank:
        mid = bank.head_at(3)
        assert mid is not None
        assert bank.verify(Head(-1, mid.hash)).ok
        report = bank.verify(Head(-1, "f" * 64))
    assert not report.ok and "is not in the chain" in (report.problem or "")
