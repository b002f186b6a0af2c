"""Migration 007: integer item keys for tags, and the per-item exposure table the live item view reads."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from itembank import ImportOptions, open_bank
from itembank.bank import exposure_sql, refresh_exposure

ROWS = [{"id": f"q{i}", "question": f"What is {i} + {i}?", "choices": [str(2 * i), str(2 * i + 1)], "answer": "A",
         "tags": {"domain": ["math", "arith"] if i % 3 == 0 else "math", "scenario": ["general", "safety"][i % 2]}}
        for i in range(12)]


def stored_exposure(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return [tuple(r) for r in conn.execute("SELECT * FROM item_exposure ORDER BY item_key").fetchall()]


def recomputed_exposure(conn: duckdb.DuckDBPyConnection) -> list[tuple]:
    return [tuple(r) for r in conn.execute(f"{exposure_sql()} ORDER BY item_key").fetchall()]


@pytest.fixture
def exposed_bank(tmp_path: Path) -> Path:
    """Twelve tagged items; responses from an import (two models) and from a run of round 2; a form published
    in rounds 1 and 3."""
    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    resp = tmp_path / "r.parquet"
    pd.DataFrame({"model": ["m1", "m1", "m2", "m2"], "qid": ["q0", "q1", "q0", "q5"],
                  "score": [1.0, 0.0, 1.0, 0.0]}).to_parquet(resp)
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        assert stored_exposure(bank.conn) == []
        bank.import_responses(resp, source="toy", model_col="model", item_col="qid", score_col="score")
        assert stored_exposure(bank.conn) == recomputed_exposure(bank.conn) and len(stored_exposure(bank.conn)) == 3
        ids = [bank.resolve(f"toy:q{i}") for i in range(12)]
        bank.start_run("run-a", model="m3", kind="form", round_no=2)
        bank.ingest_responses("run-a", pd.DataFrame({"item_id": ids[:3], "score": [1.0, 1.0, 0.0]}))
        assert stored_exposure(bank.conn) == recomputed_exposure(bank.conn)
        bank.save_form("f1", ids[2:6], spec={"size": 4}, strategy="random", seed=1, snapshot_id=bank.snapshot_id(),
                       calibration_id=None, objectives={}, content_hash="h", n_uncalibrated=4)
        bank.publish("f1", round_no=3)
        bank.publish("f1", round_no=1)
    return path


def test_the_exposure_table_is_the_recomputed_exposure_after_every_write(exposed_bank: Path) -> None:
    with open_bank(exposed_bank) as bank:
        stored = stored_exposure(bank.conn)
        assert stored == recomputed_exposure(bank.conn)
        ids = [bank.resolve(f"toy:q{i}") for i in range(12)]
        items = bank.items().set_index("item_id")
        # q2: one run (round 2) and two publications (rounds 3 and 1); q0: three runs, no publication.
        assert items.loc[ids[2], ["exposure_runs", "exposure_publications", "first_exposure_round",
                                  "last_exposure_round"]].tolist() == [1, 2, 1, 3]
        assert items.loc[ids[0], ["exposure_runs", "exposure_publications"]].tolist() == [3, 0]
        assert items.loc[ids[0], "frequency_tier"] == "medium" and items.loc[ids[2], "frequency_tier"] == "high"
        assert items.loc[ids[9], "frequency_tier"] == "low" and items.loc[ids[9], "exposure_runs"] == 0
        # The live view reads the table; the history rebuilds the same exposure from its events.
        n = bank.head().n_events
        cte, params = bank._item_view_sql(as_of=n)
        sql = (f"WITH {cte} SELECT item_id, exposure_runs, exposure_publications, first_exposure_round, "  # noqa: S608
               "last_exposure_round, frequency_tier FROM iv ORDER BY item_id")
        from_events = bank.conn.execute(sql, params).df()
        live = items.reset_index()[from_events.columns].sort_values("item_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(live, from_events, check_dtype=False)
        # Derived data: rebuilt from scratch it is the same.
        with bank.transaction() as conn:
            conn.execute("DELETE FROM item_exposure")
            refresh_exposure(conn)
        assert stored_exposure(bank.conn) == stored


def _downgrade_to_006(path: Path) -> None:
    """The bank as adt wrote it before 007: tags by text item id (plus a column a later migration may have
    added), no item keys, no exposure table, 007 not recorded."""
    conn = duckdb.connect(str(path))
    for stmt in (
            "CREATE TABLE old_tags AS SELECT i.item_id, t.key, t.value, t.seq, 7 AS extra FROM item_tags t "
            "JOIN items i USING (item_key) ORDER BY i.item_id DESC",
            "DROP TABLE item_tags", "ALTER TABLE old_tags RENAME TO item_tags",
            "DROP TABLE item_exposure", "ALTER TABLE items DROP COLUMN item_key",
            "DELETE FROM schema_migrations WHERE room = 'itembank' AND version = 7"):
        conn.execute(stmt)
    conn.close()


def test_a_bank_from_before_007_upgrades_to_the_same_items_stats_and_snapshot(exposed_bank: Path) -> None:
    with open_bank(exposed_bank) as bank:
        items, stats = bank.items(), bank.stats(["domain", "scenario"])
        snap, head = bank.snapshot_id(), bank.head()
        slice_ids = list(bank.item_ids({"domain": ["arith"], "frequency_tier": ["low"]}))
    _downgrade_to_006(exposed_bank)
    with open_bank(exposed_bank) as bank:
        cols = [r[0] for r in bank.conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                                "table_name = 'item_tags' ORDER BY ordinal_position").fetchall()]
        assert cols == ["item_key", "key", "value", "seq", "extra"]   # a column another migration added survives
        assert bank.conn.execute("SELECT count(DISTINCT item_key), min(item_key), max(item_key) "
                                 "FROM items").fetchone() == (12, 1, 12)
        assert stored_exposure(bank.conn) == recomputed_exposure(bank.conn) != []
        pd.testing.assert_frame_equal(bank.items(), items)
        pd.testing.assert_frame_equal(bank.stats(["domain", "scenario"]), stats)
        assert list(bank.item_ids({"domain": ["arith"], "frequency_tier": ["low"]})) == slice_ids
        assert bank.snapshot_id() == snap and bank.head() == head and bank.verify(head).ok
        # Items made after the upgrade continue the keys; their tags join by them.
        more = exposed_bank.with_name("more.jsonl")
        more.write_text(json.dumps({"id": "n1", "question": "New?", "choices": ["a", "b"], "answer": "A",
                                    "tags": {"domain": "new"}}) + "\n")
        bank.import_items([more], ImportOptions(source="toy"))
        new = bank.resolve("toy:n1")
        assert bank.conn.execute("SELECT item_key FROM items WHERE item_id = ?", [new]).fetchone() == (13,)
        assert bank.item(new)["tags"] == {"domain": ["new"]}


def test_a_tag_moved_to_another_item_is_another_snapshot(exposed_bank: Path) -> None:
    with open_bank(exposed_bank) as bank:
        snap = bank.snapshot_id()
        bank.conn.execute("UPDATE item_tags SET item_key = 2 WHERE item_key = 1 AND key = 'scenario'")
        assert bank.snapshot_id() != snap
        bank.conn.execute("UPDATE item_tags SET item_key = 1 WHERE item_key = 2 AND value = 'general'")
        assert bank.snapshot_id() == snap


def test_edits_and_tags_written_by_key(exposed_bank: Path) -> None:
    with open_bank(exposed_bank) as bank:
        q1 = bank.resolve("toy:q1")
        assert bank.tag([q1], "domain", "extra", extend_taxonomy=True) == 1
        assert bank.tag([q1], "domain", "extra") == 0                # already there
        assert bank.item(q1)["tags"]["domain"] == ["extra", "math"]
        bank.set_review_state([q1], "draft", reason="to edit")
        bank.edit_item(q1, reviewer="ann", question="What is 1 + 1, really?")
        new = bank.conn.execute("SELECT item_id, item_key FROM items WHERE parent_item_id = ?", [q1]).fetchone()
        assert new[1] == 13 and bank.item(new[0])["tags"] == bank.item(q1)["tags"]
        assert bank.items({"domain": ["extra"]}, include_retired=True)["item_id"].tolist() == sorted([q1, new[0]])


def test_tag_columns_are_the_sorted_values_joined_live_as_of_and_for_a_slice(tmp_path: Path) -> None:
    """Tag columns are built from integer codes (``Bank._tag_columns``): the same text as joining each item's
    values in value order, for many-valued keys (1-4 values), items without the key, the whole bank and a slice,
    and as of an earlier head (tags added since come off)."""
    import numpy as np

    rng = np.random.default_rng(5)
    values = ["b", "a", "c", "zz", "m"]
    rows = [{"id": f"t{i}", "question": f"Tagged {i}?", "choices": ["x", "y"], "answer": "A",
             "tags": {"skill": sorted(rng.choice(values, size=rng.integers(1, 5), replace=False).tolist()),
                      **({"domain": ["d1", "d2"][i % 2]} if i % 3 else {})}} for i in range(60)]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy", extend_taxonomy=True))
        head = bank.head()
        bank.tag([bank.resolve("toy:t0")], "skill", "aa", extend_taxonomy=True)
        expect = {bank.resolve(f"toy:{r['id']}"): r["tags"] for r in rows}
        for frame, at_head in ((bank.items(), False), (bank.items(as_of=head), True),
                               (bank.items({"domain": ["d1"]}), False)):
            assert len(frame) in (60, 20)
            for item_id, skill, domain in zip(frame["item_id"], frame["skill"], frame["domain"], strict=True):
                tags = expect[item_id]
                want = sorted(tags["skill"] + (["aa"] if item_id == bank.resolve("toy:t0") and not at_head else []))
                assert skill == "|".join(want)
                assert domain == tags["domain"] if "domain" in tags else pd.isna(domain)


def test_responses_added_slice_by_slice_keep_the_exposure_table_exact(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A response file inserted one response at a time (each slice merged into item_exposure by add_answered)
    leaves the same table as aggregating every response at once."""
    monkeypatch.setattr("itembank.bank.Bank.RESPONSE_CHUNK", 1)
    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    resp = tmp_path / "r.parquet"
    pd.DataFrame({"model": ["m1", "m2", "m3", "m1", "m2"], "qid": ["q0", "q0", "q0", "q1", "q2"],
                  "score": [1.0, 0.0, 1.0, 0.0, 1.0]}).to_parquet(resp)
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        assert bank.import_responses(resp, source="toy", model_col="model", item_col="qid",
                                     score_col="score").new_responses == 5
        assert stored_exposure(bank.conn) == recomputed_exposure(bank.conn)
        assert sorted(r[1] for r in stored_exposure(bank.conn)) == [1, 1, 3]


def test_items_with_columns_is_the_full_frame_cut_to_them(tmp_path: Path) -> None:
    """``items(columns=...)`` (fetched through Arrow) gives the full frame's values and dtypes for those columns,
    NULLs included (an open item has no n_choices; an item without a tag key has NaN there)."""
    rows = [*ROWS[:4], {"id": "open1", "question": "Explain.", "type": "open", "answer": "because"}]
    src = tmp_path / "items.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cols = ["question", "n_choices", "item_type", "language", "origin", "source", "review_state", "stage",
            "exposure_runs", "exposure_publications", "frequency_tier", "difficulty_band", "first_exposure_round",
            "generator", "rest_until_round", "calibrated_b"]
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        full = bank.items()
        lean = bank.items(columns=cols)
        assert list(lean.columns) == ["item_id", *cols, "domain", "scenario"]
        pd.testing.assert_frame_equal(lean, full[list(lean.columns)])
        assert lean["n_choices"].isna().sum() == 1
        with pytest.raises(Exception, match="not columns of the item view"):
            bank.items(columns=["question; DROP TABLE items"])
