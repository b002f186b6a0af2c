"""Pairwise ("pairwise"): a question and a baseline answer; the candidate's answer is compared with the
baseline by judges (AlpacaEval-style), in both orders.

Key: the judge key (``adtbase.rubric``) with the ``baseline`` answer (required, the import's ``baseline``
column) and an optional ``reference``. The candidate answers by generation (up to ``JUDGED_ANSWER_TOKENS``);
its answer is stored pending (``JUDGE_KIND``) until ``adt judge run`` scores it: 1 candidate better,
0 baseline better, 0.5 tie (``adtbase.verdicts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.errors import InputError
from adtbase.itemtypes.base import JUDGE_KIND, JUDGED_ANSWER_TOKENS, ItemType, pending_judgement
from adtbase.itemtypes.open import _fields, simulated_written_answer
from adtbase.itemtypes.text import normalise
from adtbase.rubric import JUDGE_PREFIX, build_judge_key


class Pairwise(ItemType):
    name = "pairwise"
    title = "pairwise"
    scoring_kind = JUDGE_KIND
    judge_fields = ("baseline", "reference")
    judge_required = ("baseline",)
    prompt_headers: ClassVar[Mapping[str, str]] = {
        "en": "Respond to the following request as helpfully and accurately as you can.",
        "zh": "请尽可能有帮助且准确地回应下列请求。",
    }
    max_new_tokens = JUDGED_ANSWER_TOKENS

    def validate(self, row: Mapping[str, Any]) -> list[str]:
        return ["a pairwise item has no choices"] if row.get("choices") else []

    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        if isinstance(raw, Mapping):
            return self.judge_key(raw)
        text = normalise(str(raw))
        if text.startswith(JUDGE_PREFIX + "{"):
            return self.judge_key(_fields(text))
        raise ValueError("a pairwise item's key is its baseline answer: give it in the 'baseline' column "
                         "(and leave 'answer' empty)")

    def judge_key(self, fields: Mapping[str, Any]) -> str:
        return build_judge_key(fields, allowed=self.judge_fields, required=self.judge_required).text()

    def shown_answer(self, item: Mapping[str, Any], where: str) -> str:
        raise InputError(f"{where}: pairwise items have no few-shot form (their answers are judged)")

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        return pending_judgement(output_text)[0]

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        return 0.0   # a judge scores it (pending_judgement)

    def grade(self, output_text: str, key: str, *, choices: Sequence[str] = (), labels: Sequence[str] = (),
              tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> tuple[str | None, float]:
        return pending_judgement(output_text)

    def simulated_answer(self, correct: bool, key: str, labels: Sequence[str], rng: Any) -> str:
        return simulated_written_answer(correct)
