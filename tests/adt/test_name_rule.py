"""One name rule for forms and models (``adtbase.names``, README "Names"): what a model name may hold a form
name may too (``+``, ``/``, ``@``), and a character the rule refuses is named with the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from adt.cli import cli
from adtbase.errors import InputError
from adtbase.names import NAME_RULE, check_name
from itembank import ImportOptions, open_bank


@pytest.mark.parametrize("name", ["round-7", "round-7+extra", "gpt-4o+tools", "meta-llama/Llama-3.1-8B@bf16",
                                  "a:b.c_d", "模型1"])
def test_names_the_rule_takes(name: str) -> None:
    assert check_name("model", name) == name


@pytest.mark.parametrize("name, why", [("a b", "holds ' '"), ("x,y", "holds ','"), ("a|b", "holds '|'"),
                                       ("-x", "starts with '-'"), ("", "is empty"), ("x" * 201, "has 201 characters")])
def test_a_refused_name_says_why_and_the_rule(name: str, why: str) -> None:
    with pytest.raises(InputError) as err:
        check_name("--name", name)
    assert why in str(err.value) and str(err.value).endswith(f"a name is {NAME_RULE}")


@pytest.fixture()
def bank_path(tmp_path: Path) -> Path:
    items = [{"id": f"q{k}", "question": f"What is item {k}?", "choices": ["w", "x", "y", "z"], "answer": "A"}
             for k in range(12)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([tmp_path / "items.jsonl"], ImportOptions(source="toy"))
    return path


def adt(bank: Path, *args: str):  # noqa: ANN201 - click's Result
    return CliRunner().invoke(cli, ["--bank", str(bank), *args])


def test_form_and_model_names_share_the_rule(bank_path: Path, tmp_path: Path) -> None:
    res = adt(bank_path, "sample", "--strategy", "random", "--size", "5", "--seed", "1", "--name", "round-1+extra")
    assert res.exit_code == 0, res.output
    assert adt(bank_path, "form", "show", "round-1+extra").exit_code == 0
    # The same name as a model: a responses import takes it.
    pd.DataFrame({"model": ["round-1+extra"] * 3, "qid": ["q0", "q1", "q2"], "score": [1.0, 0.0, 1.0]}).to_csv(
        tmp_path / "r.csv", index=False)
    res = adt(bank_path, "responses", "import", str(tmp_path / "r.csv"), "--source", "toy", "--model-col", "model",
              "--item-col", "qid", "--score-col", "score")
    assert res.exit_code == 0, res.output
    before = bank_path.read_bytes()
    res = adt(bank_path, "sample", "--strategy", "random", "--size", "5", "--name", "round 2")
    assert res.exit_code == 1
    assert str(res.exception) == f"--name 'round 2' holds ' ': a name is {NAME_RULE}"
    pd.DataFrame({"model": ["my model"], "qid": ["q0"], "score": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    res = adt(bank_path, "responses", "import", str(tmp_path / "bad.csv"), "--source", "toy", "--model-col", "model",
              "--item-col", "qid", "--score-col", "score")
    assert res.exit_code == 1
    assert str(res.exception) == f"{tmp_path / 'bad.csv'}: column 'model': model 'my model' holds ' ': a name is {NAME_RULE}"
    assert bank_path.read_bytes() == before
