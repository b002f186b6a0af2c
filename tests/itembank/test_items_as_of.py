"""``Bank.items(as_of=head)``: the item frame as the live bank gave it when its history had that many events.

The bank is taken through imports, responses, forms, publications, tags, review-state changes and a
settings change; the live frame is kept at each step, and after everything that came later each one must
come back from the history exactly (items added, retired or re-tiered later must not leak in). Difficulty
bands are today's by design (the history does not hold calibrations), so they are compared only before
the bank had any.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from adtbase.errors import BankError, InputError
from itembank import Bank, Head, ImportOptions, open_bank

ROWS = [
    {"id": "q1", "question": "What is 2 + 2?", "choices": ["3", "4", "5", "6"], "answer": "B",
     "tags": {"domain": "math", "scenario": "general"}},
    {"id": "q2", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "A",
     "tags": {"domain": ["geography", "trivia"]}},
    {"id": "q3", "question": "Name a prime above 10.", "type": "open", "answer": "11"},
    {"id": "q4", "question": "Largest planet?", "choices": ["Mars", "Jupiter"], "answer": "B"},
]
LATER_ROWS = [
    {"id": "n1", "question": "Boiling point of water at sea level in C?", "type": "numeric", "answer": "100",
     "tags": {"domain": "physics"}},
    # q2 again from another source with one more tag: a ``tagged`` event for an item that already existed.
    {"id": "other-q2", "question": "Capital of France?", "choices": ["Paris", "Rome"], "answer": "A",
     "tags": {"domain": ["geography", "history"], "subject": "europe"}},
]
BANDS = ("difficulty_band", "calibrated_b")


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _responses(bank: Bank, path: Path, rows: list[tuple[str, str, float]]) -> None:
    pd.DataFrame(rows, columns=["model", "qid", "score"]).to_parquet(path)
    bank.import_responses(path, source="toy", model_col="model", item_col="qid", score_col="score", round_no=1)


def _form(bank: Bank, name: str, refs: list[str]) -> None:
    bank.save_form(name, [bank.resolve(r) for r in refs], spec={}, strategy="random", seed=1,
                   snapshot_id=bank.snapshot_id(), calibration_id=None, objectives={}, content_hash=name,
                   n_uncalibrated=len(refs))


def _same(got: pd.DataFrame, want: pd.DataFrame, drop: tuple[str, ...] = ()) -> None:
    pd.testing.assert_frame_equal(got.drop(columns=list(drop)), want.drop(columns=list(drop)))


def test_items_as_of_an_older_head_is_what_the_live_bank_said_then(bank_path: Path, tmp_path: Path) -> None:
    seen: list[tuple[Head, dict[str, str], pd.DataFrame, pd.DataFrame]] = []

    def keep(bank: Bank) -> None:
        seen.append((bank.head(), bank.settings(), bank.items(include_retired=True),
                     bank.items({"domain": ["trivia", "history"]})))

    with open_bank(bank_path) as bank:
        bank.import_items([_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"))
        bank.set_setting("tier_high_runs", "1")
        bank.set_review_state(["toy:q4"], "draft")
        keep(bank)                                                  # all low, q4 a draft
        _responses(bank, tmp_path / "r1.parquet", [("m1", "q1", 1.0), ("m1", "q2", 0.0), ("m2", "q1", 0.5)])
        keep(bank)                                                  # q1 high (2 runs), q2 medium
        _form(bank, "f1", ["toy:q2", "toy:q3"])
        bank.publish("f1", round_no=2)
        bank.tag(["toy:q1"], "domain", "trivia")
        bank.retire(["toy:q3"], reason="key disputed")
        bank.set_review_state(["toy:q4"], "approved")
        keep(bank)                                                  # q2 medium, q3 retired, q1 tagged trivia
        # Everything after this point must not leak into the views above.
        bank.import_items([_jsonl(tmp_path / "b.jsonl", LATER_ROWS)], ImportOptions(source="toy2"))
        _responses(bank, tmp_path / "r2.parquet", [("m3", "q2", 1.0), ("m3", "q3", 1.0), ("m3", "q4", 0.0)])
        bank.publish("f1", round_no=3)                              # q2, q3 high now (two publications)
        bank.set_review_state(["toy:q3"], "draft")                 # reinstated, to be reviewed again
        bank.retire(["toy:q4", "toy:q1"], reason="leaked")
        bank.tag(["toy:q3"], "domain", "math")
        bank.set_setting("tier_high_runs", "5")
        keep(bank)

        def check(drop: tuple[str, ...]) -> None:
            for head, settings, live, filtered in seen:
                then = {key: settings[key] for key in ("tier_high_runs", "tier_high_publications")}
                _same(bank.items(include_retired=True, as_of=head, settings=then), live, drop)
                _same(bank.items({"domain": ["trivia", "history"]}, as_of=head.n_events, settings=then), filtered, drop)

        check(())
        # Bands are cut from today's calibrated difficulties (the history holds no calibrations).
        bank.set_difficulties("cal_x", list(bank.item_ids(include_retired=True)), [-1.0, 0.0, 1.0, 2.0, 3.0])
        check(BANDS)

        # Spot checks of what leaked before there was one API.
        first_head, _, first_live, _ = seen[0]
        old = bank.items(include_retired=True, as_of=first_head, settings={"tier_high_runs": 1}).set_index("item_id")
        assert len(old) == 4 and set(old["frequency_tier"]) == {"low"} and "subject" not in old.columns
        assert old.loc[bank.resolve("toy:q4"), "review_state"] == "draft"
        mid = bank.items(as_of=seen[2][0], settings={"tier_high_runs": 1}).set_index("item_id")
        assert bank.resolve("toy:q3") not in mid.index                    # retired then (approved later)
        assert mid.loc[bank.resolve("toy:q2"), "frequency_tier"] == "medium"
        assert mid.loc[bank.resolve("toy:q2"), "domain"] == "geography|trivia"
        now = bank.items().set_index("item_id")
        assert now.loc[bank.resolve("toy:q2"), "frequency_tier"] == "high"
        assert now.loc[bank.resolve("toy:q2"), "domain"] == "geography|history|trivia"


def test_as_of_the_current_head_is_the_live_view(bank_path: Path, tmp_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"))
        _responses(bank, tmp_path / "r1.parquet", [("m1", "q1", 1.0), ("m2", "q2", 0.0)])
        bank.set_difficulties("cal_x", list(bank.item_ids()), [0.5, -0.5, 1.5, 2.5])
        _same(bank.items(as_of=bank.head()), bank.items())
        _same(bank.items(include_retired=True, as_of=bank.head().n_events), bank.items(include_retired=True))


def test_heads_outside_the_history_are_refused(bank_path: Path, tmp_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.import_items([_jsonl(tmp_path / "a.jsonl", ROWS)], ImportOptions(source="toy"))
        head = bank.head()
        assert bank.head_at(head.n_events) == head and bank.head_at(0) == Head(0, "0" * 64)
        assert bank.head_at(head.n_events + 1) is None
        assert bank.items(as_of=0).empty
        with pytest.raises(InputError, match="history has"):
            bank.items(as_of=head.n_events + 1)
        with pytest.raises(BankError, match="not in this bank's history"):
            bank.items(as_of=Head(1, "f" * 64))
