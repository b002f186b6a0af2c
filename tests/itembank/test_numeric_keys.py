"""Numeric keys: every notation a real bank uses, a per-item tolerance, and, pinned, today's keys.

The pins were recorded with the numeric type as it stood before it took scientific notation, fractions,
units and tolerances: a key valid then keeps exactly its canonical text (it enters the content hash), so
re-importing an existing bank gives the same item ids.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from adtbase import itemtypes
from itembank import ImportOptions, open_bank

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
