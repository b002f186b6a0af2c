"""Item types are one registry: a type registered here, in the test, goes through import, prompt and
scoring (simulated, replay, an engine's raw output) without any other file knowing about it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from adtbase import itemtypes
from adtbase.errors import InputError
from itembank import ImportOptions, open_bank
from runners import ScoringRule, build_request, create, score_output, score_request
from runners.finish import RawOutput, finish

_YES, _NO = ("yes", "true", "y"), ("no", "false", "n")


class YesNo(itemtypes.ItemType):
    """A toy type: a question answered yes or no (key "yes" | "no")."""

    name = "yesno"
    title = "yes/no"
    scoring_kind = "yesno"
    prompt_headers: ClassVar[Mapping[str, str]] = {"en": "Answer each question with yes or no."}
    max_new_tokens = 8

    def validate(self, row: Mapping[str, Any]) -> list[str]:
        return [f"a yes/no item has no choices (got {len(row['choices'])})"] if row.get("choices") else []

    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        word = str(raw).strip().lower()
        if word in _YES or word in _NO:
            return "yes" if word in _YES else "no"
        raise ValueError(f"answer {raw!r} is not yes or no")

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        words = re.findall(r"\b(yes|no)\b", output_text.lower())
        return words[0] if words else None

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        return float(answer == key)


@pytest.fixture
def yesno() -> Iterator[itemtypes.ItemType]:
    kind = YesNo()
    itemtypes.register("yesno", kind)
    try:
        yield kind
    finally:
        itemtypes.unregister("yesno")


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_type_registered_in_a_test_runs_import_prompt_and_scoring(yesno: itemtypes.ItemType, bank_path: Path,
                                                                    tmp_path: Path) -> None:
    rows = [{"id": "sky", "question": "Is the sky blue?", "type": "yesno", "answer": "True"},
            {"id": "fish", "question": "Can fish fly?", "type": "yesno", "answer": "No"}]
    with open_bank(bank_path) as bank:
        bank.import_items([_write(tmp_path / "yn.jsonl", rows)], ImportOptions(source="toy"))
        with pytest.raises(InputError, match=r"line 1: field 'answer': answer 'maybe' is not yes or no"):
            bank.import_items([_write(tmp_path / "bad.jsonl", [rows[0] | {"id": "x", "answer": "maybe"}])],
                              ImportOptions(source="toy"))
        with pytest.raises(InputError, match=r"line 1: a yes/no item has no choices \(got 2\)"):
            bank.import_items([_write(tmp_path / "bad2.jsonl", [rows[0] | {"choices": ["a", "b"]}])],
                              ImportOptions(source="toy"))
        items = bank.items(with_tags=False).sort_values("question").reset_index(drop=True)
    assert list(items["item_type"]) == ["yesno", "yesno"] and list(items["answer"]) == ["no", "yes"]

    requests = [build_request(row) for row in items.to_dict("records")]
    req = requests[1]   # "Is the sky blue?", key "yes"
    assert req.template_id == "yesno-en-0shot@1" and req.max_new_tokens == 8
    assert req.prompt == "Answer each question with yes or no.\n\nQuestion: Is the sky blue?\nAnswer:"
    assert req.scoring.kind == "yesno" and not req.uses_loglik   # generation only: no options to compare
    assert score_request(req, " Yes, it is.") == ("yes", 1.0)
    assert score_output(ScoringRule("yesno", "no"), "Yes.") == ("yes", 0.0)
    done = finish(req, RawOutput(text="no"), "engine")              # how vllm / openai score a raw output
    assert (done.extracted, done.score) == ("no", 0.0)

    params = {r.item_id: (1.0, 0.0, 0.0, 1.0) for r in requests}
    sim = create("simulated", theta=0.0, params=params, rng=np.random.default_rng(3)).score(requests * 20)
    assert {r.extracted for r in sim if r.score == 1} <= {"yes", "no"}
    assert {r.extracted for r in sim if r.score == 0} == {"wrong"}

    record = pd.DataFrame({"model": "m", "question_id": [r.item_id for r in requests], "pred": ["no", "no"],
                           "pred_missing": False, "correct": [1.0, 0.0]})
    replayed = create("replay", responses=record, model="m").score(requests)
    assert [(r.extracted, r.score) for r in replayed] == [("no", 1.0), ("no", 0.0)]


def test_unknown_types_are_refused_by_name() -> None:
    with pytest.raises(InputError, match="did you mean 'open'"):
        itemtypes.get("opne")
    assert itemtypes.names()[:3] == ("mc", "open", "numeric")
    assert itemtypes.get("mc").scoring_modes == ("loglik", "generate")
    assert all(itemtypes.get(n).scoring_modes == ("generate",) for n in ("open", "numeric"))
