"""Open answer ("open"): a short free-text answer scored by normalised exact match.

Key: the answer text (whitespace collapsed, NFKC). Prompt: asks for a brief answer. Scoring: the
stated answer (after "answer is" / "Answer:" / "答案是", else the first non-empty line), or the whole
output, equal to the key after ``normalize_text`` (case, punctuation, articles, whitespace).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.itemtypes.base import ItemType
from adtbase.itemtypes.text import extract_open_answer, normalise, normalize_text


class OpenAnswer(ItemType):
    name = "open"
    title = "open answer"
    scoring_kind = "exact"
    prompt_headers: ClassVar[Mapping[str, str]] = {
        "en": "Answer the following questions briefly.",
        "zh": "请简要回答下列问题。",
    }
    max_new_tokens = 64

    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        return normalise(str(raw))

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        return extract_open_answer(output_text)

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        return float(answer is not None and normalize_text(answer) == normalize_text(key) != "")

    def grade(self, output_text: str, key: str, *, choices: Sequence[str] = (), labels: Sequence[str] = (),
              tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> tuple[str | None, float]:
        """The stated answer, or the whole output, matching the key counts."""
        got = self.extract(output_text)
        whole = normalize_text(output_text) == normalize_text(key) != ""
        return got, float(self.score(got, key) == 1.0 or whole)
