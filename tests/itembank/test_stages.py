"""Item stages (adtbase.lifecycle): new items are pretest, moves are events, old banks migrate, forms keep pretest."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from adtbase.errors import InputError
from itembank import ImportOptions, migrate, open_bank

ROWS = [{"id": str(i), "question": f"What is {i} plus {i}? Pick the sum of the two numbers.",
         "choices": [str(2 * i), str(2 * i + 1), str(2 * i + 2)], "answer": "A", "tags": {"domain": "math"}}
        for i in range(6)]


def _import(bank, tmp_path: Path) -> list[str]:
    src = tmp_path / "a.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in ROWS), encoding="utf-8")
    bank.import_items([src], ImportOptions(source="toy"))
    return list(bank.items()["item_id"])


def test_new_items_are_pretest_and_moves_are_events_with_their_rule(tmp_path: Path) -> None:
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        ids = _import(bank, tmp_path)
        assert set(bank.items()["stage"]) == {"pretest"}
        assert bank.set_stage(ids[:2], "operational", reason="SE(b) 0.2 <= 0.3", rule="promote") == 2
        assert bank.set_stage(ids[:2], "operational", reason="again") == 0          # no move, no event
        assert bank.set_stage([ids[0]], "rested", reason="exposure", rule="rest", until_round=4) == 1
        frame = bank.items().set_index("item_id")
        assert frame.loc[ids[0], "stage"] == "rested" and frame.loc[ids[0], "rest_until_round"] == 4
        assert frame.loc[ids[1], "stage"] == "operational"
        assert list(bank.items({"stage": ["pretest"]})["item_id"]) == ids[2:]
        events = bank.item_history(ids[0])
        stage = events[events["kind"] == "stage"]
        payloads = [json.loads(p) for p in stage["payload"]]
        assert [(p["from"], p["to"], p.get("rule")) for p in payloads] == [
            ("pretest", "operational", "promote"), ("operational", "rested", "rest")]
        assert payloads[1]["until_round"] == 4
        assert bank.retire([ids[5]], "over-exposed", rule="retire") == 1
        assert bank.stages([ids[5]]) == {ids[5]: "retired"}
        assert ids[5] not in set(bank.items()["item_id"])
        assert bank.items(include_retired=True).set_index("item_id").loc[ids[5], "stage"] == "retired"
        assert bank.verify().ok


def test_refused_moves_are_named_together_and_nothing_is_written(tmp_path: Path) -> None:
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        ids = _import(bank, tmp_path)
        head = bank.head()
        with pytest.raises(InputError) as err:
            bank.set_stage(ids[:3], "rested", reason="r", until_round=2)   # pretest cannot rest
        assert "3 of 3 stage moves refused; nothing changed" in str(err.value) and ids[2] in str(err.value)
        assert "is pretest: it can go to operational only" in str(err.value)
        with pytest.raises(InputError, match="retire items with"):
            bank.set_stage(ids[:1], "retired", reason="r")
        with pytest.raises(InputError, match="until_round"):
            bank.set_stage(ids[:1], "rested", reason="r")
        with pytest.raises(InputError) as err:   # every problem of a batch at once
            bank.set_stages([{"item_id": ids[0], "stage": "operational", "reason": ""},
                             {"item_id": "it_nope", "stage": "operational", "reason": "r"}])
        assert "needs a reason" in str(err.value) and "it_nope: no such item" in str(err.value)
        assert bank.head() == head and set(bank.items()["stage"]) == {"pretest"}


def test_as_of_view_rolls_stage_moves_back(tmp_path: Path) -> None:
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        ids = _import(bank, tmp_path)
        head = bank.head()
        bank.set_stage(ids[:2], "operational", reason="promoted")
        mid = bank.head()
        bank.set_stage(ids[:1], "rested", reason="cool", until_round=3)
        then = bank.items(as_of=head).set_index("item_id")["stage"]
        assert set(then) == {"pretest"}
        middle = bank.items(as_of=mid).set_index("item_id")
        assert middle.loc[ids[0], "stage"] == "operational" and middle.loc[ids[2], "stage"] == "pretest"
        assert bank.items().set_index("item_id").loc[ids[0], "stage"] == "rested"


def test_a_bank_from_before_stages_migrates_calibrated_items_to_operational(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with open_bank(path, create=True) as bank:
        ids = _import(bank, tmp_path)
        bank.set_difficulties("cal_1", ids[:2], [0.1, -0.3])
    # Undo migration 003 as a bank written before it would be (columns absent, not recorded).
    conn = duckdb.connect(str(path))
    conn.execute("ALTER TABLE items DROP COLUMN stage")
    conn.execute("ALTER TABLE items DROP COLUMN rest_until_round")
    conn.execute("ALTER TABLE form_items DROP COLUMN pretest")
    conn.execute("ALTER TABLE forms DROP COLUMN n_stand_in")
    conn.execute("DELETE FROM schema_migrations WHERE room = 'itembank' AND version = 3")
    conn.close()
    assert any(m.name == "003_item_stage.sql" for m in migrate.shipped_migrations())
    with open_bank(path) as bank:
        stages = bank.items().set_index("item_id")["stage"]
        assert set(stages[ids[:2]]) == {"operational"} and set(stages[ids[2:]]) == {"pretest"}


def test_forms_record_their_pretest_items(tmp_path: Path) -> None:
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        ids = _import(bank, tmp_path)
        kw = dict(spec={}, strategy="random", seed=1, snapshot_id=bank.snapshot_id(), calibration_id=None,
                  objectives={}, content_hash="x", n_uncalibrated=0)
        bank.save_form("f1", ids[:4], pretest_ids=[ids[3], ids[1]], n_stand_in=2, **kw)
        rec = bank.form("f1")
        assert rec["pretest_ids"] == [ids[1], ids[3]] and rec["n_stand_in"] == 2 and rec["item_ids"] == ids[:4]
        with pytest.raises(InputError, match="pretest items not on the form"):
            bank.save_form("f2", ids[:2], pretest_ids=[ids[4]], **kw)
