"""The bank: imports, exposure, tiers, bands, snapshots and the spool, on small files the tests make."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from adtbase.errors import BankError, InputError, ItemNotFound, MigrationError, TaxonomyError
from itembank import ImportOptions, open_bank, snapshot, spool
from itembank.content import content_hash, item_id_from_hash


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


ROWS = [
    {"id": "q1", "question": "What is 2 + 2?", "choices": ["3", "4", "5", "6"], "answer": "B",
     "tags": {"domain": "math", "scenario": "general"}},
    {"id": "q2", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "A",
     "tags": {"domain": ["geography", "trivia"]}},
    {"id": "q3", "question": "Name a prime above 10.", "type": "open", "answer": "11"},
    {"id": "q4", "question": "2+2   equals?  ", "choices": ["4", "5"], "answer": "A", "language": "en"},
]


def test_canonical_import_tags_aliases_and_reimport(bank_path: Path, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "a.jsonl", ROWS)
    with open_bank(bank_path) as bank:
        rep = bank.import_items([src], ImportOptions(source="toy"))
        assert (rep.rows, rep.new_items, rep.new_aliases) == (4, 4, 4)
        items = bank.items()
        q2 = items[items["question"] == "Capital of France?"].iloc[0]
        assert q2["domain"] == "geography|trivia"          # many-valued tag
        assert q2["answer"] == "A" and list(q2["choices"]) == ["Paris", "Rome"]
        assert set(items["frequency_tier"]) == {"low"}
        assert set(items["difficulty_band"]) == {"unknown"}
        assert bank.resolve("toy:q3") == items[items["question"] == "Name a prime above 10."]["item_id"].iat[0]
        snap = bank.snapshot_id()
        head = bank.head()
        again = bank.import_items([src], ImportOptions(source="toy"))
        assert again.new_items == 0 and again.new_aliases == 0 and again.batch_id is None
        assert bank.snapshot_id() == snap and bank.head() == head


def test_duplicates_merge_within_and_across_sources(bank_path: Path, tmp_path: Path) -> None:
    dup = [dict(ROWS[0], id="x1"), dict(ROWS[0], id="x2", question="What  is 2 + 2? ")]  # same after normalising
    with open_bank(bank_path) as bank:
        rep = bank.import_items([write_jsonl(tmp_path / "d.jsonl", dup)], ImportOptions(source="s1"))
        assert (rep.rows, rep.items_in_files, rep.merged_within_files) == (2, 1, 1)
        # Which row was merged, and into which item: the report (and --json) names it.
        (merged,) = rep.merged_rows
        assert merged["external_id"] == "x2" and merged["row"].endswith("d.jsonl: line 2")
        assert merged["item_id"] == bank.resolve("s1:x1")
        rep2 = bank.import_items([write_jsonl(tmp_path / "e.jsonl", [dict(ROWS[0], id="other")])],
                                 ImportOptions(source="s2"))
        assert rep2.new_items == 0 and rep2.merged_across_sources == 1 and rep2.new_aliases == 1
        item = bank.item("s2:other")
        assert sorted(item["aliases"]) == ["s1:x1", "s1:x2", "s2:other"]


def test_item_id_is_content_hash() -> None:
    h = content_hash("What is 2 + 2?", ["3", "4", "5", "6"], "B")
    assert item_id_from_hash(h) == "it_" + h[:20]
    assert content_hash(" What is  2 + 2?", ["3", "4", "5", "6"], "B") == h
    assert content_hash("What is 2 + 2?", ["3", "4", "5", "6"], "C") != h


@pytest.mark.parametrize("rows, opts, needle", [
    ([{"id": "a", "question": "Q?", "choices": ["x", "y"], "answer": "C"}], {}, "line 1: field 'answer': answer 'C' is not among the 2 choices"),
    ([{"id": "a", "question": "", "choices": ["x", "y"], "answer": "A"}], {}, "line 1: field 'question': the question is empty"),
    ([{"id": "a", "question": "Q?", "choices": ["x", "y"], "answer": "A", "tags": {"colour": "red"}}], {}, "unknown tag key 'colour'"),
    ([{"id": "a", "question": "Q?", "choices": ["x", "y"], "answer": "A", "tags": {"scenario": "fun"}}], {}, "scenario takes one of: application, general, industry, safety"),
    ([{"id": "a", "question": "Q?", "choices": ["x", "y"], "answer": "A"},
      {"id": "a", "question": "Other?", "choices": ["x", "y"], "answer": "A"}], {}, "line 2: id 'a' also appears at line 1"),
    ([{"id": "a", "question": "Q?", "choices": ["x", "y"], "answer": "A"}], {"answer_col": "key"}, "no column 'key' for the answer key"),
    ([{"id": "a", "question": "Q?", "type": "numeric", "answer": "twelve"}], {}, "is not a number"),
])
def test_bad_input_names_the_problem_and_leaves_the_bank_byte_identical(
        bank_path: Path, tmp_path: Path, rows: list[dict], opts: dict, needle: str) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([write_jsonl(tmp_path / "good.jsonl", ROWS)], ImportOptions(source="toy"))
    before = digest(bank_path)
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with open_bank(bank_path) as bank, pytest.raises(InputError) as err:
        bank.import_items([bad], ImportOptions(source="toy2", **opts))
    assert needle in str(err.value)
    assert str(bad) in str(err.value)
    assert digest(bank_path) == before


def test_malformed_jsonl_and_csv_report_the_line(bank_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with open_bank(bank_path) as bank, pytest.raises(InputError, match=r"bad.jsonl: line 2: not valid JSON"):
        bank.import_items([bad], ImportOptions(source="toy"))
    csv = tmp_path / "c.csv"
    csv.write_text("id,question,A,B,answer\n1,Q one?,x,y,A\n2,Q two?,x,y,Z\n")
    with open_bank(bank_path) as bank, pytest.raises(InputError, match=r"c.csv: line 3: field 'answer'"):
        bank.import_items([csv], ImportOptions(source="toy", choice_cols=("A", "B"), answer_format="letter"))


def test_extend_taxonomy_adds_keys_deliberately(bank_path: Path, tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "Q?", "choices": ["x", "y"], "answer": "A", "tags": {"colour": "red"}}]
    src = write_jsonl(tmp_path / "t.jsonl", rows)
    with open_bank(bank_path) as bank:
        with pytest.raises(TaxonomyError):
            bank.import_items([src], ImportOptions(source="t"))
        bank.import_items([src], ImportOptions(source="t", extend_taxonomy=True))
        assert "colour" in bank.taxonomy().keys
        assert bank.stats(["colour"])["colour"].tolist() == ["red"]


def test_responses_import_exposure_and_tiers(bank_path: Path, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "a.jsonl", ROWS)
    resp = pd.DataFrame({"model": ["m1", "m1", "m2", "m1"], "qid": ["q1", "q2", "q1", "nope"],
                         "score": [1.0, 0.0, 0.5, 1.0]})
    resp_path = tmp_path / "r.parquet"
    resp.to_parquet(resp_path)
    with open_bank(bank_path) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        bank.set_setting("tier_high_runs", "1")
        rep = bank.import_responses(resp_path, source="toy", model_col="model", item_col="qid", score_col="score")
        assert (rep.matched, rep.unknown_rows, rep.unknown_examples, rep.runs, rep.new_responses) == (3, 1, ("nope",), 2, 3)
        items = bank.items().set_index("item_id")
        q1, q2, q3 = (bank.resolve(f"toy:{q}") for q in ("q1", "q2", "q3"))
        assert items.loc[q1, "exposure_runs"] == 2 and items.loc[q1, "frequency_tier"] == "high"
        assert items.loc[q2, "exposure_runs"] == 1 and items.loc[q2, "frequency_tier"] == "medium"
        assert items.loc[q3, "frequency_tier"] == "low"
        # tier_low_runs: an item one run exposed may still count as fresh (a pretest round), none published.
        bank.set_setting("tier_low_runs", "1")
        tiers = bank.items().set_index("item_id")["frequency_tier"]
        assert (tiers[q1], tiers[q2], tiers[q3]) == ("high", "low", "low")
        bank.set_setting("tier_low_runs", "0")
        # The same file again adds nothing: exposure is never double-counted.
        again = bank.import_responses(resp_path, source="toy", model_col="model", item_col="qid", score_col="score")
        assert again.new_responses == 0
        assert bank.items().set_index("item_id").loc[q1, "exposure_runs"] == 2
        with pytest.raises(InputError, match="unknown to source"):
            bank.import_responses(resp_path, source="toy", model_col="model", item_col="qid", score_col="score",
                                  strict=True)


def test_a_response_file_inserted_in_slices_writes_what_one_insert_writes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Large response files go in RESPONSE_CHUNK rows at a time: the same responses as one insert (the file's rows
    shuffled, so the order is the bank's, not the file's), one batch event per slice recording its rows."""
    src = write_jsonl(tmp_path / "a.jsonl", ROWS)
    resp = pd.DataFrame({"model": ["m2", "m1", "m1", "m2", "m1", "m2"], "qid": ["q3", "q2", "q1", "q1", "q3", "q2"],
                         "score": [1.0, 0.0, 0.5, 1.0, 0.0, 1.0]})
    resp_path = tmp_path / "r.parquet"
    resp.to_parquet(resp_path)
    written = []
    for chunk in (10, 4, 1):
        monkeypatch.setattr("itembank.bank.Bank.RESPONSE_CHUNK", chunk)
        with open_bank(tmp_path / f"b{chunk}.duckdb", create=True) as bank:
            bank.import_items([src], ImportOptions(source="toy"))
            rep = bank.import_responses(resp_path, source="toy", model_col="model", item_col="qid", score_col="score")
            assert rep.new_responses == 6
            assert bank.verify().ok
            batches = [json.loads(p)["rows"]["responses"]["n"] for (p,) in bank.conn.execute(
                "SELECT payload FROM events WHERE kind = 'batch' AND payload LIKE '%\"responses\"%' ORDER BY seq"
            ).fetchall()]
            assert batches == [min(chunk, 6 - s) for s in range(0, 6, chunk)]
            written.append(bank.conn.execute("SELECT run_id, item_id, score FROM responses ORDER BY ALL").fetchall())
    assert written[0] == written[1] == written[2] and len(written[0]) == 6


def test_publication_exposes_and_bands_follow_calibration(bank_path: Path, tmp_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([write_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"))
        ids = list(bank.item_ids())
        bank.save_form("f1", ids[:2], spec={"size": 2}, strategy="random", seed=1, snapshot_id=bank.snapshot_id(),
                       calibration_id=None, objectives={}, content_hash="h", n_uncalibrated=2)
        bank.publish("f1", round_no=3)
        items = bank.items().set_index("item_id")
        assert items.loc[ids[0], "exposure_publications"] == 1
        assert items.loc[ids[0], "first_exposure_round"] == 3
        assert items.loc[ids[2], "frequency_tier"] == "low"
        bank.set_difficulties("cal1", ids, [-1.0, 0.0, 1.0, 2.0])
        bands = bank.items().set_index("item_id")["difficulty_band"]
        assert bands[ids[0]] == "easy" and bands[ids[3]] == "hard"
        assert bands[ids[1]] == "medium"  # terciles of (-1, 0, 1, 2) cut at 0 and 1
        assert set(bank.item_ids({"difficulty_band": ["hard"]})) == {ids[2], ids[3]}
        with pytest.raises(InputError, match="already published"):
            bank.publish("f1", round_no=3)


def test_filters_and_stats(bank_path: Path, tmp_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([write_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"))
        assert len(bank.item_ids({"domain": ["math", "trivia"]})) == 2
        assert len(bank.item_ids({"domain": ["math"], "item_type": ["mc"]})) == 1
        stats = bank.stats(["domain", "item_type"])
        assert stats["items"].sum() == 5   # q2 counts under both of its domains, untagged items under None
        assert list(stats.columns[-3:]) == ["freq_tier_low", "freq_tier_medium", "freq_tier_high"]
        assert stats["freq_tier_low"].sum() == 5   # nothing published yet: every item is in the low tier
        # the pandas-free table (adt bank stats, bank history) holds the same columns and rows, printed alike
        for by in ([], ["domain", "item_type"], ["domain", "domain"], ["language", "frequency_tier"]):
            frame, table = bank.stats(by), bank.stats_table(by)
            assert table.columns == tuple(frame.columns) and table.records() == frame.to_dict("records")
            assert table.to_text() == frame.to_string(index=False)
        frame, table = bank.item_history("toy:q1"), bank.item_history_table("toy:q1")
        assert table.records() == frame.to_dict("records") and table.to_text() == frame.to_string(index=False)
        with pytest.raises(TaxonomyError):
            bank.item_ids({"colour": ["red"]})
        bank.retire(["toy:q1"], reason="leaked")
        assert len(bank.item_ids({"domain": ["math"]})) == 0
        assert bank.item("toy:q1")["review_state"] == "retired"
        with pytest.raises(ItemNotFound):
            bank.item("toy:nope")


def test_export_import_snapshot_round_trip(bank_path: Path, tmp_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([write_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"))
        manifest = snapshot.export(bank, tmp_path / "exp")
        sid = bank.snapshot_id()
    assert manifest["snapshot_id"] == sid
    copy = tmp_path / "copy.duckdb"
    snapshot.import_snapshot(tmp_path / "exp", copy)
    with open_bank(copy) as bank:
        assert bank.snapshot_id() == sid and bank.verify().ok
    # A tampered export file is refused and leaves no bank behind.
    target = tmp_path / "exp" / "items.parquet"
    target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="does not match its sha256"):
        snapshot.import_snapshot(tmp_path / "exp", tmp_path / "copy2.duckdb")
    assert not (tmp_path / "copy2.duckdb").exists()


def test_spool_ingest_is_idempotent(bank_path: Path, tmp_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([write_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"))
        ids = list(bank.item_ids())
        assert bank.start_run("r1", model="m", kind="form", form_name=None)
        assert not bank.start_run("r1", model="m", kind="form", form_name=None)   # resume
    writer = spool.SpoolWriter(bank_path, "r1")
    batch = writer.write(pd.DataFrame({"item_id": ids[:2], "score": [1.0, 0.0]}))
    copy = batch.read_bytes()
    assert spool.spooled_items(bank_path, "r1") == set(ids[:2])
    with open_bank(bank_path) as bank:
        assert spool.ingest(bank) == {"batches": 1, "new_responses": 2}
    batch.write_bytes(copy)  # as if the process died after the commit, before removing the file
    with open_bank(bank_path) as bank:
        assert spool.ingest(bank) == {"batches": 1, "new_responses": 0}
        assert bank.items().set_index("item_id").loc[ids[0], "exposure_runs"] == 1
        assert bank.answered("r1") == set(ids[:2])


def test_run_ids_that_differ_only_in_unsafe_characters_get_their_own_spool(bank_path: Path) -> None:
    """'form:a+b', 'form:a_b' and 'form:a:b' once all spooled into form_a_b; a run of an older adt that
    spooled there is still found by its run.json."""
    ids = ["form:a+b", "form:a_b", "form:a:b"]
    folders = {spool.run_dir(bank_path, r) for r in ids}
    assert len(folders) == 3
    assert spool.run_dir(bank_path, "plain-id_1.x") == spool.spool_root(bank_path) / "plain-id_1.x"
    legacy = spool.spool_root(bank_path) / "form_a_c"
    legacy.mkdir(parents=True)
    (legacy / "run.json").write_text('{"run_id": "form:a:c"}')
    assert spool.run_dir(bank_path, "form:a:c") == legacy
    assert spool.run_dir(bank_path, "form:a+c") != legacy
    writer = spool.SpoolWriter(bank_path, "form:a+b")
    writer.write(pd.DataFrame({"item_id": ["x"], "score": [1.0]}))
    assert spool.spooled_items(bank_path, "form:a+b") == {"x"}
    assert spool.spooled_items(bank_path, "form:a_b") == set()


def test_corrupted_foreign_and_missing_banks(tmp_path: Path) -> None:
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BankError, match="not a usable DuckDB bank"):
        with open_bank(junk):
            pass
    with pytest.raises(BankError, match="no bank at"):
        with open_bank(tmp_path / "missing.duckdb"):
            pass
    import duckdb

    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE t (x INT)").close()
    with pytest.raises(BankError, match="not an adt bank"):
        with open_bank(foreign):
            pass


def test_migrations_from_a_newer_or_altered_adt_are_refused(bank_path: Path) -> None:
    import duckdb

    conn = duckdb.connect(str(bank_path))
    conn.execute("INSERT INTO schema_migrations VALUES ('itembank', 999, '999_future.sql', 'x', 'now')")
    conn.close()
    with pytest.raises(MigrationError, match="newer adt"):
        with open_bank(bank_path):
            pass
    conn = duckdb.connect(str(bank_path))
    conn.execute("DELETE FROM schema_migrations WHERE version = 999")
    conn.execute("UPDATE schema_migrations SET sha256 = 'beef' WHERE room = 'itembank' AND version = 1")
    conn.close()
    with pytest.raises(MigrationError, match="differs from the shipped file"):
        with open_bank(bank_path):
            pass


def test_chunked_import_rolls_back_whole_on_a_late_error(bank_path: Path, tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "question": f"Question number {i}?", "choices": ["a", "b"], "answer": "A"}
            for i in range(25)]
    with open_bank(bank_path) as bank:
        rep = bank.import_items([write_jsonl(tmp_path / "ok.jsonl", rows)], ImportOptions(source="c"), chunk_rows=7)
        assert (rep.rows, rep.new_items, rep.new_aliases) == (25, 25, 25)
        assert len(bank.item_ids()) == 25 and bank.verify().ok
    before = digest(bank_path)
    late_bad = rows + [dict(rows[0], id="new1", question="Fresh?"), {"id": "z", "question": "Q?", "choices": ["a"],
                                                                      "answer": "A"}]
    conflict = [dict(r, id=f"k{i}") for i, r in enumerate(rows)] + [dict(rows[3], id="k1")]
    with open_bank(bank_path) as bank:
        with pytest.raises(InputError, match=r"line 27: multiple-choice item has 1 choices"):
            bank.import_items([write_jsonl(tmp_path / "late.jsonl", late_bad)], ImportOptions(source="d"), chunk_rows=7)
        with pytest.raises(InputError, match=r"line 26: id 'k1' of source 'e' was seen before"):
            bank.import_items([write_jsonl(tmp_path / "conf.jsonl", conflict)], ImportOptions(source="e"), chunk_rows=7)
    assert digest(bank_path) == before


def test_a_rooms_own_tables_through_execute_and_registered(bank_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.execute("CREATE TABLE room_notes (k VARCHAR, v DOUBLE)")
        frame = pd.DataFrame({"k": ["a", "b"], "v": [1.0, 2.5]})
        with bank.transaction(), bank.registered({"_notes": frame}):
            bank.execute("INSERT INTO room_notes SELECT k, v FROM _notes")
        assert bank.execute("SELECT sum(v) FROM room_notes WHERE k <> ?", ["zz"]).fetchone() == (3.5,)
        with pytest.raises(RuntimeError), bank.transaction(), bank.registered({"_notes": frame}):
            bank.execute("INSERT INTO room_notes SELECT k, v FROM _notes")
            raise RuntimeError("half way")
        assert bank.execute("SELECT count(*) FROM room_notes").fetchone() == (2,)   # rolled back
        with pytest.raises(Exception, match="_notes"):                               # no longer registered
            bank.execute("SELECT * FROM _notes")
