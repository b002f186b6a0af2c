"""Open answer ("open"): a free-text answer, scored by normalised exact match or, with a reference answer
and/or a rubric, by judges.

Key, plain: the answer text (whitespace collapsed, NFKC); scoring: the stated answer (after "answer is" /
"Answer:" / "答案是", else the first non-empty line), or the whole output, equal to the key after
``normalize_text`` (case, punctuation, articles, whitespace).

Key, judge-scored (the import's ``reference`` and/or ``rubric`` columns, ``adtbase.rubric``): the canonical
judge key ``judge:{...}``, scored under ``JUDGE_KIND``: the candidate writes an answer (up to
``JUDGED_ANSWER_TOKENS``) and ``adt judge run`` scores it. A plain key keeps exactly the text it always had,
so plain open items keep their ids.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.itemtypes.base import JUDGE_KIND, JUDGED_ANSWER_TOKENS, ItemType, pending_judgement
from adtbase.itemtypes.text import extract_open_answer, normalise, normalize_text
from adtbase.rubric import JUDGE_PREFIX, build_judge_key, is_judge_key, parse_judge_key


class OpenAnswer(ItemType):
    name = "open"
    title = "open answer"
    scoring_kind = "exact"
    also_scored_as = (JUDGE_KIND,)
    judge_fields = ("reference", "rubric")
    prompt_headers: ClassVar[Mapping[str, str]] = {
        "en": "Answer the following questions briefly.",
        "zh": "请简要回答下列问题。",
    }
    max_new_tokens = 64

    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        if isinstance(raw, Mapping):   # an edit giving the judge fields
            return self.judge_key(raw)
        text = normalise(str(raw))
        if text.startswith(JUDGE_PREFIX + "{"):   # a stored judge key given back (an edit): re-read it
            return self.judge_key(_fields(text))
        return text

    def judge_key(self, fields: Mapping[str, Any]) -> str:
        return build_judge_key(fields, allowed=self.judge_fields).text()

    def rule_kind(self, key: str) -> str:
        return JUDGE_KIND if is_judge_key(key) else self.scoring_kind

    def answer_tokens(self, key: str) -> int:
        return JUDGED_ANSWER_TOKENS if is_judge_key(key) else self.max_new_tokens

    def shown_answer(self, item: Mapping[str, Any], where: str) -> str:
        key = str(item.get("answer") or "")
        if is_judge_key(key):
            reference = parse_judge_key(key).reference
            if reference is not None:
                return reference
        return super().shown_answer(item, where)

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        return extract_open_answer(output_text)

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        if is_judge_key(key):
            return 0.0   # a judge scores it (pending_judgement)
        return float(answer is not None and normalize_text(answer) == normalize_text(key) != "")

    def grade(self, output_text: str, key: str, *, choices: Sequence[str] = (), labels: Sequence[str] = (),
              tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> tuple[str | None, float]:
        """The stated answer, or the whole output, matching the key counts (a judge key: pending)."""
        if is_judge_key(key):
            return pending_judgement(output_text)
        got = self.extract(output_text)
        whole = normalize_text(output_text) == normalize_text(key) != ""
        return got, float(self.score(got, key) == 1.0 or whole)

    def simulated_answer(self, correct: bool, key: str, labels: Sequence[str], rng: Any) -> str:
        if is_judge_key(key):
            return simulated_written_answer(correct)
        return super().simulated_answer(correct, key, labels, rng)


def simulated_written_answer(correct: bool) -> str:
    """A simulated respondent's written answer to a judge-scored item (a judge, simulated or not, reads it)."""
    return "A simulated good answer." if correct else "A simulated poor answer."


def _fields(key: str) -> dict[str, Any]:
    key_ = parse_judge_key(key)
    out: dict[str, Any] = {}
    if key_.reference is not None:
        out["reference"] = key_.reference
    if key_.rubric is not None:
        out["rubric"] = key_.rubric.as_json()
    if key_.baseline is not None:
        out["baseline"] = key_.baseline
    return out
