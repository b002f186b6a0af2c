"""Misspelt keys and values say what the bank has (issue 12, first contact with a real bank).

An unknown key (``--filter``, ``--by``, ``--quota``, ``--stratify-by``) lists the tag keys the bank's items carry
and the built-in keys, never item columns such as ``question``; a value no item has (``--filter``, ``--quota``)
is an error with a did-you-mean and the key's values, not an empty slice or "available 0". A fixed column's
value that matches no item yet (``frequency_tier=high`` before any run) stays a valid, empty selection.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from adt.cli import cli
from adtbase.errors import TaxonomyError
from itembank import ImportOptions, open_bank

DOMAINS = ("math", "physics", "law", "history")
LEVELS = ("basic", "advanced")


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("messages")
    items = [{"id": f"q{k}", "question": f"What is item {k}?", "choices": ["w", "x", "y", "z"], "answer": "A",
              "tags": {"domain": DOMAINS[k % 4], "difficulty": LEVELS[k % 2]}} for k in range(40)]
    (tmp / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    path = tmp / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([tmp / "items.jsonl"], ImportOptions(source="toy", extend_taxonomy=True))
    return path


def fails(bank: Path, *args: str) -> str:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args])
    assert res.exit_code == 1, res.output
    return str(res.exception)


def sample(*extra: str) -> list[str]:
    return ["sample", "--strategy", "stratified", "--size", "10", "--name", "f", "--dry-run", *extra]


@pytest.mark.parametrize("args, head", [
    (["bank", "stats", "--filter", "domian=math"], "--filter domian: unknown key; did you mean 'domain'?"),
    (["bank", "stats", "--by", "domian"], "--by domian: unknown key; did you mean 'domain'?"),
    (sample("--quota", "dificulty=basic:5"), "--quota dificulty: unknown key; did you mean 'difficulty'?"),
    (sample("--stratify-by", "domian"), "--stratify-by domian: unknown key; did you mean 'domain'?"),
])
def test_unknown_key_lists_tag_keys_and_built_in_keys_only(bank_path: Path, args: list[str], head: str) -> None:
    msg = fails(bank_path, *args)
    assert msg.startswith(head), msg
    assert "tag keys of the bank's items: difficulty, domain;" in msg
    assert msg.endswith("built-in keys: language, item_type, frequency_tier, difficulty_band")
    for column in ("question", "item_id", "choices", "answer"):
        assert column not in msg


def test_misspelt_quota_value_says_did_you_mean_and_lists_the_values(bank_path: Path) -> None:
    msg = fails(bank_path, *sample("--quota", "difficulty=basics:5"))
    assert msg == ("quota difficulty=basics: no item of the pool has difficulty 'basics'; did you mean 'basic'? "
                   "difficulty has: advanced, basic")
    assert "available 0" not in msg


def test_closed_quota_value_says_what_the_key_takes(bank_path: Path) -> None:
    msg = fails(bank_path, *sample("--quota", "frequency_tier=hgh:5"))
    assert "'hgh' is not one of low, medium, high; did you mean 'high'?" in msg


@pytest.mark.parametrize("flt", ["domain=maths", "domain=math,physcs", "language=fr", "frequency_tier=hihg"])
def test_filter_value_no_item_has_is_an_error_not_an_empty_slice(bank_path: Path, flt: str) -> None:
    key, value = flt.split("=")[0], flt.split(",")[-1].split("=")[-1]
    for args in (["bank", "stats", "--filter", flt], sample("--filter", flt)):
        msg = fails(bank_path, *args)
        assert msg.startswith(f"--filter {key}={value}: no item has {key} {value!r}"), msg
    assert "did you mean 'mathematics'" not in fails(bank_path, "bank", "stats", "--filter", "domain=maths")
    assert "did you mean 'math'? domain has: history, law, math, physics" in fails(
        bank_path, "bank", "stats", "--filter", "domain=maths")


def test_valid_values_that_match_nothing_stay_an_empty_selection(bank_path: Path) -> None:
    """A fixed column's value with no items yet, or two real values no item has together, select nothing;
    ``Bank.items`` lets a value no item has (yet) sit beside one that matches (the values OR), while
    ``bank stats`` and ``adt sample`` check every value they are given."""
    with open_bank(bank_path) as bank:
        assert bank.items({"frequency_tier": ["high"]}).empty
        assert len(bank.item_ids({"domain": ["math"], "difficulty": ["advanced"]})) == 0  # math items are basic
        assert len(bank.items({"domain": ["math", "law"]})) == 20
        assert len(bank.items({"domain": ["math", "lwa"]})) == 10
        with pytest.raises(TaxonomyError, match="no item has domain 'lwa'; did you mean 'law'?"):
            bank.items({"domain": ["lwa"]})
    for args in (["bank", "stats", "--filter", "domain=math,lwa"], sample("--filter", "domain=math,lwa")):
        assert "no item has domain 'lwa'; did you mean 'law'?" in fails(bank_path, *args)
