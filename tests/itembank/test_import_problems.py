"""An import checks the whole file and reports every problem at once, grouped by kind, writing nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adtbase.errors import InputError, TaxonomyError
from itembank import ImportOptions, open_bank

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"id": "ok", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "A"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bad_file(tmp_path: Path) -> Path:
    lines = [json.dumps(GOOD),
             json.dumps({"id": "c1", "question": "Q1?", "choices": ["x", "y"], "answer": "C"}),
             json.dumps({"id": "e1", "question": "  ", "choices": ["x", "y"], "answer": "A"}),
             json.dumps({"id": "t1", "question": "Q3?", "choices": ["x", "y"], "answer": "A", "tags": {"colour": "red"}}),
             "{not json",
             json.dumps({"id": "n1", "question": "Q5?", "type": "numeric", "answer": "twelve"}),
             json.dumps({"id": "c2", "question": "Q6?", "choices": ["x", "y"], "answer": "D"})]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def filled(bank_path: Path, tmp_path: Path) -> Path:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(GOOD | {"id": "g"}) + "\n", encoding="utf-8")
    with open_bank(bank_path) as bank:
        bank.import_items([good], ImportOptions(source="toy"))
    return bank_path


@pytest.mark.parametrize("chunk_rows", [100_000, 2])   # one transaction; chunks into a copy of the bank
def test_every_problem_is_reported_grouped_and_nothing_is_written(filled: Path, tmp_path: Path,
                                                                  chunk_rows: int) -> None:
    bad = bad_file(tmp_path)
    before = digest(filled)
    with open_bank(filled) as bank, pytest.raises(InputError) as err:
        bank.import_items([bad], ImportOptions(source="toy2"), chunk_rows=chunk_rows)
    text = str(err.value)
    assert text.startswith(f"6 problems in {bad}, of 5 kinds; nothing was imported:")
    assert "  not a multiple-choice answer key (field 'answer'): 2 rows" in text
    for message in (f"{bad}: line 2: field 'answer': answer 'C' is not among the 2 choices (A-B)",
                    f"{bad}: line 7: field 'answer': answer 'D' is not among the 2 choices (A-B)",
                    f"{bad}: line 3: field 'question': the question is empty",
                    f"{bad}: line 4: field 'tags': unknown tag key 'colour'",
                    f"{bad}: line 5: not valid JSON",
                    f"{bad}: line 6: field 'answer': answer 'twelve' is not a number"):
        assert message in text
    assert digest(filled) == before
    with open_bank(filled) as bank:
        assert len(bank.items()) == 1 and bank.resolve_alias("toy2", "ok") is None


def test_the_problems_as_data(filled: Path, tmp_path: Path) -> None:
    with open_bank(filled) as bank, pytest.raises(InputError) as err:
        bank.import_items([bad_file(tmp_path)], ImportOptions(source="toy2"))
    data = err.value.as_dict()   # type: ignore[attr-defined]
    assert data["ok"] is False and data["problems"] == 6
    first = data["kinds"][0]
    assert (first["kind"], first["field"], first["count"]) == ("not a multiple-choice answer key", "answer", 2)
    assert [(p["line"], p["field"], p["value"]) for p in first["first"]] == [(2, "answer", "C"), (7, "answer", "D")]
    assert first["first"][0]["file"].endswith("bad.jsonl")


def test_checks_against_the_bank_are_reported_with_the_rest(filled: Path, tmp_path: Path) -> None:
    rows = [GOOD | {"id": "g", "answer": "B"},                     # id g of source toy had another answer
            GOOD | {"id": "kid", "question": "Child?", "parent_id": "nobody"},
            GOOD | {"id": "x", "question": "Q?", "origin": "alien"}]
    path = tmp_path / "more.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = digest(filled)
    with open_bank(filled) as bank, pytest.raises(InputError) as err:
        bank.import_items([path], ImportOptions(source="toy"))
    text = str(err.value)
    assert "3 problems" in text
    assert f"{path}: line 1: id 'g' of source 'toy' was seen before" in text
    assert f"{path}: line 2: field 'parent_id': 'nobody' is not an item of source 'toy'" in text
    assert f"{path}: line 3: field 'origin': 'alien' is not one of human, template, model-generated" in text
    assert digest(filled) == before


def test_one_problem_is_one_line_and_tag_problems_stay_taxonomy_errors(filled: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(GOOD | {"tags": {"colour": "red"}}) + "\n" +
                    json.dumps(GOOD | {"id": "b", "question": "B?", "tags": {"scenario": "fun"}}) + "\n",
                    encoding="utf-8")
    with open_bank(filled) as bank, pytest.raises(TaxonomyError) as err:
        bank.import_items([path], ImportOptions(source="toy3"))
    assert "2 problems" in str(err.value)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(GOOD | {"answer": "Z"}) + "\n", encoding="utf-8")
    with open_bank(filled) as bank, pytest.raises(InputError) as err2:
        bank.import_items([one], ImportOptions(source="toy3"))
    assert "\n" not in str(err2.value) and str(err2.value).startswith(f"{one}: line 1: field 'answer'")


def adt(*args: str, bank: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adt", "--bank", str(bank), *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    filled = tmp_path / "cli.duckdb"      # made by the CLI, so every room's migrations are in it already
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    assert adt("init", bank=filled).returncode == 0
    assert adt("bank", "import", str(good), "--source", "toy", bank=filled).returncode == 0
    bad = bad_file(tmp_path)
    before = digest(filled)
    out = adt("bank", "import", str(bad), "--source", "toy2", bank=filled)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: 6 problems in") and "line 6: field 'answer'" in out.stderr
    out = adt("bank", "import", str(bad), "--source", "toy2", "--json", bank=filled)
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["problems"] == 6 and sum(k["count"] for k in data["kinds"]) == 6
    assert digest(filled) == before


def test_a_parent_may_be_an_item_id_of_another_source(filled: Path, tmp_path: Path) -> None:
    """Generated variants name their parents by item id (any source); an item id the bank lacks is a problem."""
    with open_bank(filled) as bank:
        parent = bank.resolve("toy:g")
    path = tmp_path / "kids.jsonl"
    path.write_text(json.dumps(GOOD | {"id": "k1", "question": "Kid?", "parent_id": parent}) + "\n", encoding="utf-8")
    with open_bank(filled) as bank:
        report = bank.import_items([path], ImportOptions(source="gen"))
        kid = bank.resolve("gen:k1")
        assert bank.item(parent)["derived_items"] == [kid]
        assert bank.batch_items(str(report.batch_id)) == [kid]
    ghost = "it_" + "0" * 20
    path.write_text(json.dumps(GOOD | {"id": "k2", "question": "Ghost?", "parent_id": ghost}) + "\n", encoding="utf-8")
    with open_bank(filled) as bank, pytest.raises(InputError, match=f"'{ghost}' is not an item of source 'gen' "
                                                                     "nor an item id of the bank"):
        bank.import_items([path], ImportOptions(source="gen"))
