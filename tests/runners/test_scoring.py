"""Answer extraction and scoring rules, on hand-written outputs and on the real GSM8K solutions."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.base import Request, ScoringRule
from runners.scoring import extract_choice, extract_number, normalize_text, parse_number, score, score_logliks

LABELS = ("A", "B", "C", "D")
CHOICES = ("Paris", "London", "Rome", "New York City")


@pytest.mark.parametrize(("output", "expected"), [
    ("The answer is (C).", "C"),
    ("Let's think. A is wrong, B is wrong. The answer is C", "C"),
    ("Answer: b", "B"),
    ("**Answer:** D", "D"),
    ("C", "C"),
    ("(D)", "D"),
    ("B.", "B"),
    ("B. London", "B"),
    ("答案是C", "C"),
    ("答案：（B）", "B"),
    ("I think it is Rome.", "C"),
    ("new york city", "D"),
    ("A cat sat on the mat, so (B) it is", "B"),
    ("nothing useful", None),
    ("", None),
])
def test_choice_extraction(output: str, expected: str | None) -> None:
    assert extract_choice(output, LABELS, CHOICES) == expected


def test_choice_score_is_one_only_for_the_key() -> None:
    rule = ScoringRule("choice", "C")
    assert score(rule, "The answer is (C)", choices=CHOICES, labels=LABELS) == ("C", 1.0)
    assert score(rule, "The answer is (B)", choices=CHOICES, labels=LABELS) == ("B", 0.0)
    assert score(rule, "???", choices=CHOICES, labels=LABELS) == (None, 0.0)


@pytest.mark.parametrize(("output", "expected"), [
    ("Janet has 3 apples and buys 4 more.\n#### 7", "7"),
    ("so the total is 1,234 + 5 = 1,239\n#### 1,239", "1,239"),
    ("#### -12", "-12"),
    ("#### 3.75", "3.75"),
    ("The answer is −4.", "−4"),
    ("The answer is $1,000,000.", "$1,000,000"),
    ("So x = 5 and then she pays 18 dollars", "18"),
    ("\\boxed{42} is it", "42"),
    ("答案是 12", "12"),
    ("no numbers", None),
])
def test_number_extraction(output: str, expected: str | None) -> None:
    assert extract_number(output) == expected


@pytest.mark.parametrize(("text", "value"), [
    ("1,234", 1234.0), ("-1,234.5", -1234.5), ("−7", -7.0), ("$12", 12.0), ("45%", 45.0), ("3/4", 0.75),
    (".5", 0.5), ("1e3", 1000.0), ("abc", None), ("1/0", None),
])
def test_parse_number(text: str, value: float | None) -> None:
    assert parse_number(text) == value


def test_numeric_tolerance() -> None:
    assert score(ScoringRule("numeric", "0.333", tolerance=1e-3), "#### 0.3333")[1] == 1.0
    assert score(ScoringRule("numeric", "0.333", tolerance=1e-5), "#### 0.3333")[1] == 0.0
    assert score(ScoringRule("numeric", "1000", rel_tolerance=0.01), "The answer is 1,005")[1] == 1.0
    assert score(ScoringRule("numeric", "1000", rel_tolerance=0.001), "The answer is 1,005")[1] == 0.0
    with pytest.raises(ValueError, match="not a number"):
        score(ScoringRule("numeric", "seven"), "7")


def test_real_gsm8k_solutions_score_themselves(shared_data: Path) -> None:
    """Every GSM8K worked solution, used as output against itself as key, scores 1; shifted keys score 0."""
    import pandas as pd

    items = pd.read_parquet(shared_data / "gsm8k" / "items.parquet")
    assert len(items) > 1000
    for solution in items["answer"]:
        stated = solution.rsplit("####", 1)[1].strip()
        assert score(ScoringRule("numeric", solution), solution) == (stated, 1.0)
        off = str(parse_number(stated) + 1)  # type: ignore[operator]
        assert score(ScoringRule("numeric", off), solution)[1] == 0.0


def test_exact_match_normalises() -> None:
    assert normalize_text("  The  Eiffel-Tower! ") == "eiffel tower"
    assert score(ScoringRule("exact", "Eiffel Tower"), "The answer is: the eiffel tower.")[1] == 1.0
    assert score(ScoringRule("exact", "Eiffel Tower"), "Big Ben")[1] == 0.0
    assert score(ScoringRule("exact", "北京"), "北京。")[1] == 1.0


def test_regex_rule() -> None:
    rule = ScoringRule("regex", "yes", pattern=r"\[\[(\w+)\]\]")
    assert score(rule, "verdict [[no]] ... final [[yes]]") == ("yes", 1.0)
    assert score(rule, "verdict [[no]]") == ("no", 0.0)
    assert score(rule, "no brackets") == (None, 0.0)
    assert score(ScoringRule("regex", "", pattern=r"\bSAFE\b"), "it is SAFE") == ("SAFE", 1.0)
    with pytest.raises(ValueError, match="needs a pattern"):
        ScoringRule("regex", "x")
    with pytest.raises(ValueError, match="not a valid regex"):
        score(ScoringRule("regex", "x", pattern="("), "x")


def test_loglik_choice_takes_the_maximum_and_ignores_nan() -> None:
    req = Request("i", "Q?\nAnswer:", "mc", ScoringRule("choice", "B"), choices=("x", "y", "z"))
    assert score_logliks(req, [-3.0, -1.0, -2.0]) == ("B", 1.0)
    assert score_logliks(req, [-3.0, float("nan"), -2.0]) == ("C", 0.0)
    assert score_logliks(req, [-1.0, -1.0, -1.0]) == ("A", 0.0)
    with pytest.raises(ValueError, match="3 choices"):
        score_logliks(req, [-1.0])
