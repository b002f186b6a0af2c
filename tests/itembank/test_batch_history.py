"""Batch-level history (migration 006): a bulk write records one ``batch`` event whose payload counts and digests
the rows it added; ``bank verify`` digests them again and names the first batch whose rows were edited, deleted or
added to. Banks from before 006 (per-item events) upgrade with the same heads, snapshot id and as-of views."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from test_history_and_locks import tamper  # tests/itembank/test_history_and_locks.py

from itembank import Head, ImportOptions, open_bank

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "pre006_bank"
ROWS = [{"id": f"q{i}", "question": f"What is {i} times {i}?", "choices": [str(i * i), str(i * i + 1)],
         "answer": "A", "tags": {"domain": ["math"] + (["trivia"] if i % 2 else [])}} for i in range(25)]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _verify(path: Path):
    with open_bank(path) as bank:
        return bank.verify()


@pytest.fixture
def bank_path(tmp_path: Path) -> Path:
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"), chunk_rows=10)
        pd.DataFrame({"model": ["m1"] * 3 + ["m2"] * 3, "qid": ["q1", "q2", "q3"] * 2,
                      "score": [1.0, 0.0, 1.0, 0.5, 1.0, 0.0]}).to_parquet(tmp_path / "r.parquet")
        bank.import_responses(tmp_path / "r.parquet", source="toy", model_col="model", item_col="qid",
                              score_col="score")
    return path


def _batches(path: Path) -> list[tuple[int, dict]]:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return [(int(s), json.loads(p)) for s, p in
                conn.execute("SELECT seq, payload FROM events WHERE kind = 'batch' ORDER BY seq").fetchall()]
    finally:
        conn.close()


def test_a_chunk_writes_one_event_whose_rows_carry_its_seq(bank_path: Path) -> None:
    batches = _batches(bank_path)
    # 25 items in chunks of 10 (one transaction each): 3 batch events, then one for the 6 responses.
    assert [b["rows"].get("items", {}).get("n") for _, b in batches] == [10, 10, 5, None]
    assert [b["rows"]["item_tags"]["n"] for _, b in batches[:3]] == [15, 15, 7]
    assert batches[3][1]["rows"]["responses"]["n"] == 6
    with open_bank(bank_path) as bank:
        assert bank.head().n_events == 4 and bank.verify().ok
        counts = dict(bank.conn.execute("SELECT seq, count(*) FROM items GROUP BY seq").fetchall())
        assert counts == {1: 10, 2: 10, 3: 5}
        hist = bank.item_history("toy:q1")
        assert list(hist["kind"]) == ["created", "aliased", "tagged", "answered", "answered"]
        assert json.loads(hist["payload"].iloc[2])["tags"] == "domain=math;domain=trivia"
        assert sorted(hist["ref"].iloc[3:]) == sorted(r for r in bank.runs()["run_id"])
        assert set(hist["seq"]) == {batches[0][0], batches[3][0]}


@pytest.mark.parametrize(("sql", "bad_seq", "words"), [
    ("UPDATE items SET question = 'What is 0?' WHERE item_id = (SELECT item_id FROM item_aliases "
     "WHERE external_id = 'q12')", 2, "items rows of it were edited"),
    # two rows' questions swapped: every value is still there once (an xor of row hashes would not see it)
    ("UPDATE items SET question = CASE question WHEN 'What is 1 times 1?' THEN 'What is 3 times 3?' "
     "ELSE 'What is 1 times 1?' END WHERE question IN ('What is 1 times 1?', 'What is 3 times 3?')",
     1, "items rows of it were edited"),
    ("DELETE FROM item_tags WHERE value = 'trivia' AND seq = 3", 3, "rows were deleted from it"),
    ("INSERT INTO item_aliases SELECT 'toy', 'q-extra', item_id, seq FROM items WHERE seq = 2 LIMIT 1", 2,
     "rows were added to it"),
    ("UPDATE responses SET score = 1.0 WHERE score = 0.0 AND run_id LIKE '%:m1:%'", 4,
     "responses rows of it were edited"),
    ("UPDATE responses SET scored_by = 'panel' WHERE score = 0.0 AND run_id LIKE '%:m1:%'", 4,
     "responses rows of it were edited"),
    ("INSERT INTO item_tags (item_key, key, value, seq) SELECT item_key, 'domain', 'history', 2 FROM items WHERE seq = 3 LIMIT 1", 2,
     "rows were added to it"),
    ("INSERT INTO item_tags (item_key, key, value, seq) SELECT item_key, 'domain', 'history', NULL FROM items LIMIT 1", 0,
     "recorded by no event"),
    ("INSERT INTO item_tags (item_key, key, value, seq) SELECT item_key, 'domain', 'history', 99 FROM items LIMIT 1", 99,
     "recorded by no event"),
])
def test_edited_deleted_or_added_rows_name_their_batch(bank_path: Path, sql: str, bad_seq: int, words: str) -> None:
    tamper(bank_path, sql)
    report = _verify(bank_path)
    assert not report.ok and report.first_bad_seq == bad_seq and words in (report.problem or "")


def test_evented_changes_after_a_batch_keep_it_verifying(bank_path: Path) -> None:
    """Review states, stages, a judge's score and small writes change rows after their batch: still verifies."""
    with open_bank(bank_path) as bank:
        bank.retire(["toy:q4"], reason="leaked")
        bank.set_stage(["toy:q5"], "operational", reason="calibrated")
        bank.tag(["toy:q6"], "domain", "trivia")
        bank.start_run("r1", model="m3", kind="form")
        bank.ingest_responses("r1", pd.DataFrame({"item_id": [bank.resolve("toy:q7")], "score": [0.0],
                                                  "scored_by": ["judge:pending"]}))
        assert bank.set_judged_scores(pd.DataFrame({"run_id": ["r1"], "item_id": [bank.resolve("toy:q7")],
                                                    "score": [1.0]})) == 1
        assert bank.verify().ok
        tag_seq = bank.conn.execute("SELECT t.seq FROM item_tags t JOIN items i USING (item_key) "
                                    "WHERE i.item_id = ? AND t.value = 'trivia'",
                                    [bank.resolve("toy:q6")]).fetchone()
        assert tag_seq is not None and bank.conn.execute("SELECT kind FROM events WHERE seq = ?",
                                                         tag_seq).fetchone() == ("tagged",)
    tamper(bank_path, "UPDATE item_tags SET value = 'history' WHERE seq = (SELECT max(seq) FROM events "
                       "WHERE kind = 'tagged')")
    report = _verify(bank_path)
    assert not report.ok and "recorded by no event that matches them" in (report.problem or "")


def _load_fixture(path: Path) -> dict:
    """The pre-006 bank of tests/data/make_pre006_bank.py, loaded as its DuckDB export."""
    conn = duckdb.connect(str(path))
    conn.execute((FIXTURE / "schema.sql").read_text())
    for line in (FIXTURE / "load.sql").read_text().splitlines():
        if line.strip():
            table = line.split()[1]
            conn.execute(f"COPY {table} FROM '{FIXTURE / (table + '.parquet')}' (FORMAT 'parquet')")
    conn.close()
    return json.loads((FIXTURE / "expected.json").read_text())


def _frame_json(frame: pd.DataFrame) -> object:
    drop = [c for c in ("difficulty_band", "calibrated_b") if c in frame.columns]
    return json.loads(frame.drop(columns=drop).to_json(orient="split", index=False))


def test_a_bank_from_before_006_upgrades_with_the_same_heads_views_and_history(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    want = _load_fixture(path)
    with open_bank(path) as bank:   # migration 006 runs here
        assert str(bank.head()) == want["head"] and bank.snapshot_id() == want["snapshot_id"]
        assert bank.verify(Head.parse(want["head"])).ok
        for head, views in want["as_of"].items():
            h = Head.parse(head)
            assert _frame_json(bank.items(include_retired=True, as_of=h)) == views["items"], head
            assert _frame_json(bank.items({"domain": ["trivia", "history"]}, as_of=h)) == views["trivia"], head
        hist = bank.item_history("toy:q1")[["seq", "kind", "ref"]]
        assert [list(r) for r in hist.itertuples(index=False)] == want["history_q1"]
        assert bank.conn.execute("SELECT count(*) FROM items WHERE seq = 0").fetchone() == (0,)


@pytest.mark.parametrize(("sql", "words"), [
    ("UPDATE responses SET score = 0.25 WHERE run_id = 'run1'", "responses: "),
    ("UPDATE items SET content_hash = 'forged' WHERE item_id = (SELECT min(item_id) FROM items)", "items: "),
    ("INSERT INTO item_tags (item_key, key, value, seq) SELECT item_key, 'domain', 'forged', seq FROM items LIMIT 1", "item_tags: "),
])
def test_an_upgraded_bank_catches_edits_of_its_old_rows(tmp_path: Path, sql: str, words: str) -> None:
    path = tmp_path / "old.duckdb"
    _load_fixture(path)
    with open_bank(path) as bank:
        assert bank.verify().ok
    tamper(path, sql)
    report = _verify(path)
    assert not report.ok and words in (report.problem or "")


def test_an_edit_before_the_upgrade_and_of_new_batch_rows_after_it_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _load_fixture(path)
    tamper(path, "UPDATE events SET payload = '{\"forged\":true}' WHERE seq = 5")   # before 006
    report = _verify(path)
    assert not report.ok and report.first_bad_seq == 5 and "edited" in (report.problem or "")

    path2 = tmp_path / "old2.duckdb"
    _load_fixture(path2)
    with open_bank(path2) as bank:
        bank.import_items([_jsonl(tmp_path / "a.jsonl", ROWS[:3])], ImportOptions(source="new"))
        seq = bank.head().n_events
        assert bank.conn.execute("SELECT kind FROM events WHERE seq = ?", [seq]).fetchone() == ("batch",)
        assert bank.verify().ok
    tamper(path2, f"UPDATE items SET question = 'forged' WHERE seq = {int(seq)}")  # noqa: S608 - an int
    report = _verify(path2)
    assert not report.ok and report.first_bad_seq == seq and "edited" in (report.problem or "")


def test_an_export_from_before_006_imports_with_its_rows_seq_and_verifies(tmp_path: Path) -> None:
    from itembank import snapshot

    want = json.loads((FIXTURE / "expected.json").read_text())
    manifest = snapshot.import_snapshot(FIXTURE / "export", tmp_path / "copy.duckdb")
    with open_bank(tmp_path / "copy.duckdb") as bank:
        assert bank.snapshot_id() == manifest["snapshot_id"] == want["export_snapshot_id"]
        assert bank.verify().ok
        assert bank.conn.execute("SELECT count(*) FROM item_tags WHERE seq IS NULL OR seq = 0").fetchone() == (0,)
        for head, views in want["as_of"].items():
            assert _frame_json(bank.items(include_retired=True, as_of=Head.parse(head))) == views["items"], head


def test_keys_stay_unique_without_their_index(bank_path: Path, tmp_path: Path) -> None:
    """item_aliases and responses have no PRIMARY KEY since 006: their writers keep them unique."""
    with open_bank(bank_path) as bank:
        bank.start_run("r1", model="m3", kind="form")
        ids = [bank.resolve("toy:q1"), bank.resolve("toy:q2")]
        frame = pd.DataFrame({"item_id": [ids[0], ids[1], ids[0]], "score": [1.0, 0.0, 1.0]})
        assert bank.ingest_responses("r1", frame) == 2        # one response per run and item ...
        assert bank.ingest_responses("r1", frame) == 0        # ... and again: nothing stored twice
        again = bank.import_items([_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"), chunk_rows=10)
        assert again.new_aliases == 0
        clash = [{**ROWS[0], "question": "Another question?"}]   # q0 again, with other content: refused
        with pytest.raises(Exception, match="seen before"):
            bank.import_items([_jsonl(tmp_path / "c.jsonl", clash)], ImportOptions(source="toy"))
        for table, key in (("item_aliases", "source, external_id"), ("responses", "run_id, item_id")):
            dups = bank.conn.execute(f"SELECT {key} FROM {table} GROUP BY ALL HAVING count(*) > 1").fetchall()  # noqa: S608
            assert dups == [], table
        assert bank.conn.execute("SELECT count(*) FROM responses WHERE run_id = 'r1'").fetchone() == (2,)
        assert bank.verify().ok
