"""Judge-scored items: open items with a reference and/or rubric, pairwise items with a baseline.

Plain open items keep their ids (pinned below, recorded with the open type as it stood before judge keys);
a judged key is canonical JSON, so the same rubric written another way is the same item and a changed rubric
is a new version through ``Bank.edit_item``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from adtbase import itemtypes
from adtbase.errors import InputError
from adtbase.rubric import FieldProblem, is_judge_key, parse_judge_key, parse_rubric
from itembank import ImportOptions, open_bank
from runners import build_request, score_request

# Recorded with main's open type before this change (question, answer) -> id.
PINNED_OPEN = {("Capital of France?", "Paris"): "it_0f73c86705e309afa1bb",
               ("Who wrote Hamlet?", "  William   Shakespeare "): "it_3f1e8b7aeed4693bc5fb",
               ("水的化学式？", "H₂O"): "it_40b4f269a3c6aa90f6ec",
               ("Say {hi}", "judge: not a key"): "it_0d368db069f6438bf7e3"}

RUBRIC = {"version": 2, "criteria": [{"name": "form", "levels": ["not a haiku", "a haiku"]},
                                     {"name": "imagery", "description": "pictures", "levels": ["none", "some", "vivid"]}]}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _items(bank_path: Path, src: Path, source: str = "s") -> pd.DataFrame:
    with open_bank(bank_path) as bank:
        bank.import_items([src], ImportOptions(source=source))
        return bank.items(None).set_index("question")


def test_plain_open_items_keep_their_ids(bank_path: Path, tmp_path: Path) -> None:
    rows = [{"id": str(k), "question": q, "type": "open", "answer": a} for k, (q, a) in enumerate(PINNED_OPEN)]
    items = _items(bank_path, _jsonl(tmp_path / "o.jsonl", rows))
    for (q, _), item_id in PINNED_OPEN.items():
        assert items.loc[q, "item_id"] == item_id
        assert not is_judge_key(items.loc[q, "answer"])
        req = build_request({**items.loc[q].to_dict(), "question": q})
        assert req.scoring.kind == "exact" and req.max_new_tokens == 64


def test_judged_items_from_jsonl_csv_and_parquet_are_one_item_each(bank_path: Path, tmp_path: Path) -> None:
    rows = [{"id": "r", "question": "Explain photosynthesis.", "type": "open",
             "reference": "Plants make sugar\r\nfrom light.  "},
            {"id": "h", "question": "Write a haiku about rain.", "type": "open", "rubric": RUBRIC},
            {"id": "p", "question": "Give three tips for sleep.", "type": "pairwise", "baseline": "Sleep early."}]
    first = _items(bank_path, _jsonl(tmp_path / "j.jsonl", rows), "a")
    # The same items as CSV (rubric as JSON text, keys in another order) and as Parquet: the same ids.
    csv_rows = [{**r, "rubric": json.dumps(dict(reversed(list(RUBRIC.items())))) if "rubric" in r else ""}
                for r in rows]
    pd.DataFrame(csv_rows).to_csv(tmp_path / "j.csv", index=False)
    again = _items(bank_path, tmp_path / "j.csv", "b")
    pd.DataFrame([{**r, "rubric": json.dumps(RUBRIC) if "rubric" in r else None} for r in rows]
                 ).to_parquet(tmp_path / "j.parquet")
    third = _items(bank_path, tmp_path / "j.parquet", "c")
    assert len(third) == 3 and list(first["item_id"]) == list(again["item_id"]) == list(third["item_id"])
    ref = parse_judge_key(first.loc["Explain photosynthesis.", "answer"])
    assert ref.kind == "reference" and ref.reference == "Plants make sugar\nfrom light."
    rub = parse_judge_key(first.loc["Write a haiku about rain.", "answer"])
    assert rub.kind == "rubric" and rub.rubric is not None and rub.rubric.version == 2
    assert rub.rubric.n_levels == 1 + 1 + 2
    pair = parse_judge_key(first.loc["Give three tips for sleep.", "answer"])
    assert pair.kind == "pairwise" and pair.baseline == "Sleep early."
    for q, row in first.iterrows():
        req = build_request({**row.to_dict(), "question": q, "language": "en"}, mc_mode="generate")
        assert req.scoring.kind == "judge" and req.max_new_tokens == 512 and not req.uses_loglik
        assert score_request(req, "  My whole answer.\nSecond line. ") == ("My whole answer.\nSecond line.", 0.0)


def test_bad_judge_fields_are_named_all_at_once(bank_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame([
        {"id": 1, "question": "Q1", "type": "pairwise", "answer": "", "reference": "", "rubric": "", "baseline": ""},
        {"id": 2, "question": "Q2", "type": "open", "answer": "Paris", "reference": "Paris", "rubric": "",
         "baseline": ""},
        {"id": 3, "question": "Q3", "type": "open", "answer": "", "reference": "", "rubric": '{"criteria": []}',
         "baseline": ""},
        {"id": 4, "question": "Q4", "type": "open", "answer": "", "reference": "", "rubric": "not json",
         "baseline": ""},
        {"id": 5, "question": "Q5", "type": "open", "answer": "", "reference": "", "rubric": "",
         "baseline": "b"},
        {"id": 6, "question": "Q6", "type": "numeric", "answer": "", "reference": "4", "rubric": "",
         "baseline": ""},
        {"id": 7, "question": "Q7", "type": "open", "answer": "",
         "rubric": '{"criteria": [{"name": "x", "levels": ["only one"]}], "version": 0}', "reference": "",
         "baseline": ""},
        {"id": 8, "question": "Q8", "type": "pairwise", "answer": "", "reference": "", "rubric": "",
         "baseline": "b", "choices": '["x", "y"]'},
    ]).to_csv(bad, index=False)
    with open_bank(bank_path) as bank:
        with pytest.raises(InputError) as err:
            bank.import_items([bad], ImportOptions(source="bad"))
        assert len(bank.items(None)) == 0
    msg = str(err.value)
    assert "8 problems" in msg and "line 9: a pairwise item has no choices" in msg
    assert "line 2: field 'baseline': a 'baseline' is required" in msg
    assert "line 3: field 'answer'" in msg and "leave 'answer' empty" in msg
    assert "line 4: field 'rubric': 'criteria' must be a non-empty list" in msg
    assert "line 5: field 'rubric': not JSON" in msg
    assert "line 6: field 'baseline': this item type takes no 'baseline'" in msg
    assert "line 7: field 'reference': numeric items are not judge-scored" in msg
    assert "'version' must be a positive integer" in msg and "list of 2 to 10 level descriptions" in msg


def test_a_changed_rubric_is_a_new_version_through_edit(bank_path: Path, tmp_path: Path) -> None:
    rows = [{"id": "h", "question": "Write a haiku about rain.", "type": "open", "rubric": RUBRIC,
             "review_state": "draft"}]
    items = _items(bank_path, _jsonl(tmp_path / "h.jsonl", rows))
    old_id, old_key = items.iloc[0]["item_id"], items.iloc[0]["answer"]
    changed = {**RUBRIC, "version": 3,
               "criteria": [*RUBRIC["criteria"], {"name": "season", "levels": ["no", "yes"]}]}
    new_key = itemtypes.get("open").canonical_key({"rubric": changed})
    with open_bank(bank_path) as bank:
        # the same key written back is the same content: refused as no change
        with pytest.raises(InputError):
            bank.edit_item(old_id, reviewer="ann", answer=old_key)
        new_id = bank.edit_item(old_id, reviewer="ann", answer=new_key, reason="rubric v3")
        frame = bank.items(None, include_retired=True).set_index("item_id")
    assert new_id != old_id
    rubric = parse_judge_key(frame.loc[new_id, "answer"]).rubric
    assert rubric is not None and rubric.version == 3 and rubric.n_levels == 5
    assert frame.loc[old_id, "review_state"] == "rejected"


def test_rubric_parser_refuses_with_reasons() -> None:
    with pytest.raises(FieldProblem) as err:
        parse_rubric({"criteria": [{"name": "a", "levels": ["x", "y"]}, {"name": "a", "levels": ["x", ""]}],
                      "extra": 1})
    assert err.value.field == "rubric"
    assert "unknown key(s) 'extra'" in str(err.value) and "repeats" in str(err.value)
    assert "non-empty description" in str(err.value)
    r = parse_rubric('{"criteria": [{"name": " a  b ", "levels": ["0", "1", "2"]}]}')
    assert r.criteria[0].name == "a b" and r.n_levels == 3 and r.version == 1
