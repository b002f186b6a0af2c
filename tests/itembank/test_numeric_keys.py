"""Numeric keys: every notation a real bank uses, a per-item tolerance, and, pinned, today's keys.

The pins were recorded with the numeric type as it stood before it took scientific notation, fractions,
units and tolerances: a key valid then keeps exactly its canonical text (it enters the content hash), so
re-importing an existing bank gives the same item ids.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from adtbase import itemtypes
from adtbase.errors import InputError
from adtbase.itemtypes.text import extract_number, parse_number
from itembank import ImportOptions, open_bank
from runners import ScoringRule
from runners import score_output as score

# raw key -> canonical key, as the type gave them before the notations were added
TODAY = {"42": "42", "-7": "-7", "+5": "+5", "0.5": "0.5", "-0.25": "-0.25", "+0.5": "+0.5", "1,234": "1234",
         "1,234,567.89": "1234567.89", "$12": "12", "$1,000.": "1000", "12.": "12", "12..": "12", "007": "007",
         "3.14159": "3.14159", "-$5": "-5", "$-5": "-5", " 18 ": "18", "0": "0", "-0": "-0", "10.50": "10.50",
         "-1,000": "-1000", "100.000": "100.000"}
TODAY_RAW: list[object] = [*TODAY, 42, 2.5, -3]          # JSON numbers too
TODAY_IDS = ["it_6747a4ab6a3f3adabb05", "it_5a6b03200677744d671c", "it_1578144e7cf15a890a92",
             "it_d47775f065842778c8b5", "it_e3217e6c8328d17c7565", "it_9858351f902310d0e615",
             "it_2e4b452a5c6a2bf4b878", "it_a75a9d5c42296b7235f0", "it_5b52ede93fce45470c76",
             "it_6e283bd9f6beab30ebdb", "it_8db8b3d17e3f0ba1a090", "it_5339d66ac275b7c011d3",
             "it_cbbde8dd8a0d1806f8ab", "it_c1f3e680bc25984176fa", "it_855ff9886026255bb077",
             "it_1eba7fe31db27665bc38", "it_8d4a8f796b1eb33d1930", "it_2c60044e29619d46a279",
             "it_7125312e11ba0bd105d3", "it_01383f604ab2bed27ce1", "it_680b9447078711a2b670",
             "it_07c352731966c198a2ec", "it_c6a85a8b16a33b8b12f9", "it_ab24ed70ed4b71e60c4b",
             "it_29c9028673530c34c457"]
# sha256 over "item_id answer" lines (sorted by id) of GSM8K's 1,319 test items imported with --answer-format gsm8k
GSM8K_DIGEST = "ba07c82216e7c48ac69df13648548a6654458b98b1991f6000773203e6ffca02"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_todays_keys_keep_their_canonical_form() -> None:
    numeric = itemtypes.get("numeric")
    assert {raw: numeric.canonical_key(raw) for raw in TODAY} == TODAY
    assert [numeric.canonical_key(raw) for raw in (42, 2.5, -3)] == ["42", "2.5", "-3"]


def test_todays_keys_keep_their_item_ids(bank_path: Path, tmp_path: Path) -> None:
    rows = [{"id": f"k{i}", "question": f"Numeric question {i}?", "type": "numeric", "answer": raw}
            for i, raw in enumerate(TODAY_RAW)]
    with open_bank(bank_path) as bank:
        bank.import_items([_write(tmp_path / "today.jsonl", rows)], ImportOptions(source="pin"))
        assert [bank.resolve(f"pin:k{i}") for i in range(len(rows))] == TODAY_IDS


def test_gsm8k_keeps_its_item_ids(bank_path: Path, shared_data: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([shared_data / "gsm8k" / "items.parquet"], ImportOptions(source="gsm8k",
                                                                                   answer_format="gsm8k"))
        items = bank.items(with_tags=False).sort_values("item_id")
    assert len(items) == 1319
    assert hashlib.sha256("\n".join(items["item_id"] + " " + items["answer"]).encode()).hexdigest() == GSM8K_DIGEST


@pytest.mark.parametrize(("raw", "key"), [
    ("3.27E-22", "3.27e-22"), ("3.27e-22", "3.27e-22"), ("3.27×10^-22", "3.27e-22"), ("3.27 x 10^-22", "3.27e-22"),
    ("3.27 × 10^{-22}", "3.27e-22"), ("3.27·10⁻²²", "3.27e-22"), ("3.27 \\times 10^{-22}", "3.27e-22"),
    ("6.02e+23", "6.02e23"), ("6.02 × 10^23 mol^-1", "6.02e23"), (2.5e-22, "2.5e-22"),
    ("1,234,567", "1234567"), ("3/4", "3/4"), ("-1/2", "-1/2"), ("- 1/2", "-1/2"), ("+5", "+5"), ("−5", "-5"),
    (".5", "0.5"), ("-.5", "-0.5"), ("€12", "12"),
    ("-285.8 kJ/mol", "-285.8"), ("9.81 m/s^2", "9.81"), ("45%", "45"), ("25 °C", "25"), ("12 cm³", "12"),
    ("8.314 J mol^-1 K^-1", "8.314"),
    ("9.81 ± 0.05", "9.81 ± 0.05"), ("3.27e-22 +/- 1%", "3.27e-22 ± 1%"), ("100 ± 1e-3", "100 ± 1e-3"),
])
def test_numeric_keys_in_every_notation(raw: object, key: str) -> None:
    assert itemtypes.get("numeric").canonical_key(raw) == key


@pytest.mark.parametrize(("raw", "needle"), [
    ("twelve", "is not a number"), ("5 or 6", "is not a number"), ("3 x 4", "is not a number"),
    ("1e400", "is not a number"), ("3/0", "divides by zero"), ("1.5/2", "two whole numbers"),
    ("5 ± -1", "must be a number >= 0"), ("5 ± lots", "is not a number or a percentage"),
])
def test_numeric_keys_that_are_not_numbers(raw: str, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        itemtypes.get("numeric").canonical_key(raw)


@pytest.mark.parametrize(("text", "value"), [
    ("3.27E-22", 3.27e-22), ("3.27 × 10^-22", 3.27e-22), ("3.27x10^{-22}", 3.27e-22), ("3.27·10⁻²²", 3.27e-22),
    ("6.02*10**23", 6.02e23), ("3.27e−22", 3.27e-22), ("1,234,567", 1234567.0), ("+5", 5.0), ("-1/2", -0.5),
])
def test_answers_parse_in_every_notation(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(("output", "number"), [
    ("The answer is 3.27 × 10^-22 J.", "3.27 × 10^-22"), ("#### 6.02x10^23", "6.02x10^23"),
    ("\\boxed{3.27 \\times 10^{-22}}", "3.27 \\times 10^{-22}"), ("so it is 2.5·10⁻³ m", "2.5·10⁻³"),
    ("the answer is 3/4 cup", "3/4"), ("#### -1/2", "-1/2"), ("the result: 1.2E+5 kJ/mol", "1.2E+5"),
])
def test_answers_are_extracted_in_every_notation(output: str, number: str) -> None:
    assert extract_number(output) == number


@pytest.mark.parametrize(("key", "output", "right"), [
    ("3.27e-22", "#### 3.27E-22", 1.0), ("3.27e-22", "#### 3.27 × 10^-22", 1.0),
    ("3.27e-22", "#### 3.3e-22", 0.0),             # no tolerance: its own size (1e-6), not 1e-6 absolute
    ("3.27e-22", "#### 0", 0.0),
    ("3.27e-22 ± 1%", "#### 3.3e-22", 1.0), ("3.27e-22 ± 1%", "#### 3.31e-22", 0.0),
    ("1 ± 1%", "#### 1.01", 1.0), ("1 ± 1%", "#### 0.99", 1.0), ("1 ± 1%", "#### 1.0101", 0.0),   # relative bound
    ("9.81 ± 0.05", "the answer is 9.86 m/s^2", 1.0), ("9.81 ± 0.05", "the answer is 9.76", 1.0),  # absolute bound
    ("9.81 ± 0.05", "#### 9.8601", 0.0), ("100 ± 0", "#### 100.000001", 0.0),
    ("3/4", "#### 0.75", 1.0), ("-1/2", "Answer: -0.5", 1.0), ("1234567", "#### 1,234,567", 1.0),
    ("42", "#### 42.0000001", 1.0),                # today's keys: today's default (1e-6 absolute)
])
def test_tolerance_scoring(key: str, output: str, right: float) -> None:
    assert score(ScoringRule("numeric", key), output)[1] == right


def test_few_shot_and_simulated_answers_show_the_number_without_its_tolerance() -> None:
    numeric = itemtypes.get("numeric")
    assert numeric.shown_answer({"answer": "9.81 ± 0.05"}, "item x") == "9.81"
    assert numeric.simulated_answer(True, "9.81 ± 0.05", (), None) == "9.81"


def test_import_of_scientific_keys_with_a_tolerance_column(bank_path: Path, tmp_path: Path) -> None:
    csv = tmp_path / "chem.csv"
    csv.write_text("id,question,type,answer,tolerance\n"
                   "h,Energy of one photon at 600 nm (J)?,numeric,3.31E-19,1%\n"
                   "k,Boltzmann's constant (J/K)?,numeric,1.380649 × 10^-23 J/K,\n"
                   "g,g at sea level (m/s^2)?,numeric,9.81 m/s^2,0.05\n"
                   "p,Share of water (%)?,numeric,71%,\n", encoding="utf-8")
    with open_bank(bank_path) as bank:
        rep = bank.import_items([csv], ImportOptions(source="chem"))
        assert rep.new_items == 4
        answers = {r: bank.item(f"chem:{r}")["answer"] for r in "hkgp"}
    assert answers == {"h": "3.31e-19 ± 1%", "k": "1.380649e-23", "g": "9.81 ± 0.05", "p": "71"}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question,type,answer,tolerance\nx,Q?,numeric,5,lots\ny,Q2?,open,five,1%\n", encoding="utf-8")
    with open_bank(bank_path) as bank, pytest.raises(InputError) as err:
        bank.import_items([bad], ImportOptions(source="chem2"))
    assert "bad.csv: line 2: field 'tolerance': tolerance 'lots' is not a number or a percentage" in str(err.value)
    assert "bad.csv: line 3: field 'tolerance': open answer items take no tolerance" in str(err.value)
