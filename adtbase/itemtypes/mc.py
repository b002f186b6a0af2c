"""Multiple choice ("mc"): a question with 2 to 26 labelled options and one correct label.

Key: the label ("A", "B", ...), imported from a letter, a 0-based index or the option text.
Prompt: the options listed as "A. text" under the question. Scoring: the chosen label (stated, alone,
leading, by option text, or a free-standing label; see ``text.extract_choice``) against the key, or,
in log-likelihood mode, the most likely option (the runners compare the options).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.errors import InputError
from adtbase.itemtypes.base import ItemType
from adtbase.itemtypes.text import LETTERS, extract_choice, normalise


class MultipleChoice(ItemType):
    name = "mc"
    title = "multiple-choice"
    scoring_kind = "choice"
    scoring_modes = ("loglik", "generate")
    has_choices = True
    prompt_headers: ClassVar[Mapping[str, str]] = {
        "en": "The following are multiple choice questions. Answer with the letter of the correct option.",
        "zh": "以下是单项选择题，请直接给出正确答案的选项字母。",
    }
    max_new_tokens = 32

    # ------------------------------------------------------------ import

    def validate(self, row: Mapping[str, Any]) -> list[str]:
        n = len(row.get("choices") or ())
        if not 2 <= n <= len(LETTERS):
            return [f"multiple-choice item has {n} choices (needs 2 to {len(LETTERS)})"]
        return []

    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        n, fmt = len(choices), answer_format
        if fmt == "auto":
            if isinstance(raw, numbers.Integral):  # int or a numpy integer
                fmt = "index"
            elif isinstance(raw, str) and len(raw.strip()) == 1 and raw.strip().upper() in LETTERS:
                fmt = "letter"
            else:
                fmt = "text"
        if fmt == "letter":
            letter = str(raw).strip().upper()
            if len(letter) != 1 or letter not in LETTERS[:n]:
                raise ValueError(f"answer {raw!r} is not among the {n} choices ({LETTERS[0]}-{LETTERS[n - 1]})")
            return letter
        if fmt == "index":
            try:
                idx = int(raw)
            except (TypeError, ValueError):
                raise ValueError(f"answer {raw!r} is not a 0-based index") from None
            if not 0 <= idx < n:
                raise ValueError(f"answer index {idx} is not among the {n} choices")
            return LETTERS[idx]
        # "text" and "gsm8k" (a worked solution whose "#### x" names the option)
        text = normalise(str(raw))
        for i, choice in enumerate(choices):
            if normalise(choice) == text:
                return LETTERS[i]
        raise ValueError(f"answer {str(raw)[:60]!r} is not among the choices")

    # ------------------------------------------------------------ prompts

    def prompt_choices(self, item: Mapping[str, Any], where: str) -> list[str]:
        raw = item.get("choices")
        if raw is None:
            raise InputError(f"{where}: multiple-choice item has no 'choices'")
        choices = [str(c) for c in list(raw)]
        if len(choices) < 2:
            raise InputError(f"{where}: multiple-choice item has {len(choices)} choices, needs >= 2")
        if len(choices) > len(LETTERS):
            raise InputError(f"{where}: {len(choices)} choices, at most {len(LETTERS)} supported")
        return choices

    def rule_answer(self, item: Mapping[str, Any], where: str) -> str:
        """The correct label of an item whose ``answer`` is a label, an index or the choice text."""
        choices = self.prompt_choices(item, where)
        labels = tuple(LETTERS[: len(choices)])
        ans = item.get("answer")
        if ans is not None and not isinstance(ans, str | int) and hasattr(ans, "item"):
            ans = ans.item()  # a numpy scalar from a DataFrame row
        if isinstance(ans, str) and ans.strip() in labels:
            return ans.strip()
        if isinstance(ans, int) or (isinstance(ans, str) and ans.strip().isdigit()):
            idx = int(ans)
            if 0 <= idx < len(choices):
                return labels[idx]
        if isinstance(ans, str) and ans in choices:
            return labels[choices.index(ans)]
        raise InputError(f"{where}: field 'answer' {ans!r} is not a label, index or choice text")

    def shown_answer(self, item: Mapping[str, Any], where: str) -> str:
        return self.rule_answer(item, where)

    # ------------------------------------------------------------ scoring

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        labs = tuple(labels) or tuple(LETTERS[: max(len(choices), 1)])
        return extract_choice(output_text, labs, choices)

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        return float(answer is not None and answer == key)

    def grade(self, output_text: str, key: str, *, choices: Sequence[str] = (), labels: Sequence[str] = (),
              tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> tuple[str | None, float]:
        labs = tuple(labels) or tuple(LETTERS[: max(len(choices), 1)])
        if key not in labs:
            labs = labs + (key,)
        picked = extract_choice(output_text, labs, choices)
        return picked, self.score(picked, key)

    def simulated_answer(self, correct: bool, key: str, labels: Sequence[str], rng: Any) -> str:
        """The key when right, else a wrong label drawn uniformly (a second draw from the stream)."""
        if correct:
            return key
        wrong = [lab for lab in labels if lab != key]
        return wrong[int(rng.integers(len(wrong)))]
