"""Judge calls in the bank (itembank 004): add_judgments / judgments / set_judged_scores, pending answers left
out of Bank.responses, and a bank from before 004 migrating."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from adtbase.errors import InputError
from adtbase.verdicts import JUDGMENT_COLUMNS
from itembank import ImportOptions, migrate, open_bank


def _bank(path: Path, tmp_path: Path, pending: tuple[str, ...] = ("judge:pending", "judge:pending", "rule")) -> list[str]:
    rows = [{"id": "p", "question": "Tips for sleep?", "type": "pairwise", "baseline": "Sleep early."},
            {"id": "r", "question": "Explain tides.", "type": "open", "reference": "The moon pulls water."},
            {"id": "x", "question": "Capital of France?", "type": "open", "answer": "Paris"}]
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with open_bank(path, create=not path.exists()) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        ids = bank.items(None).set_index("question")["item_id"]
        bank.start_run("r1", model="m1", kind="form", form_name=None)
        frame = pd.DataFrame({"item_id": [ids["Tips for sleep?"], ids["Explain tides."], ids["Capital of France?"]],
                              "score": [0.0, 0.0, 1.0], "raw_output": ["a", "b", "Paris"],
                              "extracted": ["a", "b", "Paris"], "scored_by": list(pending)})
        assert bank.ingest_responses("r1", frame) == 3
        return list(frame["item_id"])


def _call(item_id: str, order: str, verdict: float, **kw: object) -> dict[str, object]:
    return {"run_id": "r1", "item_id": item_id, "model": "m1", "judge": "j", "judge_model": "gpt-4o",
            "template_id": "judge-pairwise-en@1", "order": order, "prompt_hash": "h", "raw_output": "x\nVERDICT: A",
            "verdict": verdict, "level": None if math.isnan(verdict) else int(verdict * 2), "n_levels": 3,
            "problem": "no verdict line" if math.isnan(verdict) else None, "judged_at": "2026-01-01T00:00:00+00:00",
            **kw}


def test_judgments_are_stored_once_per_call_and_read_back_as_the_frame(bank_path: Path, tmp_path: Path) -> None:
    pair, ref, _ = _bank(bank_path, tmp_path)
    calls = pd.DataFrame([_call(pair, "ab", 1.0), _call(pair, "ba", math.nan),
                          _call(ref, "", 0.5, template_id="judge-reference-en@1")])
    with open_bank(bank_path) as bank:
        assert bank.add_judgments(calls) == 3
        assert bank.add_judgments(calls) == 0                      # the same calls again add nothing
        assert bank.add_judgments(pd.concat([calls, calls])) == 0
        frame = bank.judgments()
        assert list(frame.columns) == list(JUDGMENT_COLUMNS) and len(frame) == 3
        assert str(frame["level"].dtype) == "Int64" and frame["verdict"].dtype == float
        refused = frame.set_index("order").loc["ba"]
        assert math.isnan(refused["verdict"]) and pd.isna(refused["level"]) and refused["problem"] == "no verdict line"
        assert list(bank.judgments(item_ids=[ref])["order"]) == [""] and bank.judgments(run_ids=["zz"]).empty
        for bad, msg in [(_call(pair, "ab", 1.5, judge="k"), "outside"),
                         (_call(pair, "ab", math.nan, judge="k", problem=None), "no problem"),
                         (_call(pair, "ab", 1.0, run_id="nope"), "not in the bank")]:
            with pytest.raises(InputError, match=msg):
                bank.add_judgments(pd.DataFrame([bad]))
        with pytest.raises(InputError, match="lack column"):
            bank.add_judgments(calls.drop(columns=["problem"]))
        assert len(bank.judgments()) == 3


def test_pending_answers_are_no_scores_until_judged_and_rules_are_never_overwritten(bank_path: Path,
                                                                                  tmp_path: Path) -> None:
    pair, ref, plain = _bank(bank_path, tmp_path)
    with open_bank(bank_path) as bank:
        for scored in (False, True):
            got = bank.responses(scored=scored)
            assert list(got["item_id"]) == [plain] and got.attrs["n_judge_pending"] == 2
        answers = bank.judged_answers()
        assert set(answers["item_id"]) == {pair, ref} and (answers["model"] == "m1").all()
        assert answers.set_index("item_id").loc[pair, "key"].startswith("judge:{")
        scores = pd.DataFrame({"run_id": ["r1"] * 3, "item_id": [pair, ref, plain], "score": [0.75, 0.25, 0.0]})
        assert bank.set_judged_scores(scores) == 2                   # the rule-scored answer is left alone
        got = bank.responses(scored=True).set_index("item_id")["score"]
        assert got.to_dict() == {pair: 0.75, ref: 0.25, plain: 1.0}
        assert bank.judged_answers().empty and len(bank.judged_answers(scored_by=["panel"])) == 2
        assert bank.set_judged_scores(scores.iloc[:1].assign(score=1.0), scored_by="human") == 1
        assert bank.set_judged_scores(scores.iloc[:1].assign(score=0.0)) == 0   # a human's score stands
        with pytest.raises(InputError, match="not in \\[0, 1\\]"):
            bank.set_judged_scores(scores.assign(score=[0.5, math.nan, 0.5]))
        with pytest.raises(InputError, match="'panel' or 'human'"):
            bank.set_judged_scores(scores, scored_by="rule")
        states = dict(bank.conn.execute("SELECT item_id, scored_by FROM responses").fetchall())
        assert states == {pair: "human", ref: "panel", plain: "rule"}


def test_a_bank_from_before_judgments_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    # A bank from before 004 had no judge-scored answers: every response is its rule's (the batch digest says so).
    _, _, plain = _bank(path, tmp_path, pending=("rule", "rule", "rule"))
    # Undo migration 004 as a bank written before it would be (table and column absent, not recorded).
    conn = duckdb.connect(str(path))
    conn.execute("DROP TABLE judgments")
    conn.execute("ALTER TABLE responses DROP COLUMN scored_by")
    conn.execute("DELETE FROM schema_migrations WHERE room = 'itembank' AND version = 4")
    conn.close()
    assert any(m.name == "004_judgments.sql" for m in migrate.shipped_migrations())
    with open_bank(path) as bank:
        states = set(r[0] for r in bank.conn.execute("SELECT scored_by FROM responses").fetchall())
        assert states == {"rule"}                    # every old response was scored by its rule
        assert bank.judgments().empty and len(bank.responses()) == 3
        assert bank.verify().ok
