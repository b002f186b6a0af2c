"""Numeric ("numeric"): a question whose answer is a number (GSM8K-style math).

Key: the number as plain text ("1234", "-0.5"; a "$", thousands separators and a final "." are
dropped at import; a GSM8K solution gives its "#### n"). Prompt: asks for a last line "#### <number>".
Scoring: the answer number (GSM8K "#### n", a stated answer, \\boxed{n}, else the last number) within
``max(tolerance, rel_tolerance * |key|)`` of the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.itemtypes.base import ItemType
from adtbase.itemtypes.text import extract_number, numbers_match, parse_number

_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


class Numeric(ItemType):
    name = "numeric"
    title = "numeric"
    scoring_kind = "numeric"
    prompt_headers: ClassVar[Mapping[str, str]] = {
        "en": "Solve the following math problems. End your answer with a line '#### <number>'.",
        "zh": "请解答下列数学题，最后一行写成“#### <数字>”。",
    }
    max_new_tokens = 384
    guessable = False

    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        text = str(raw).strip().replace("$", "").rstrip(".")
        if not _NUMBER.match(text):
            raise ValueError(f"answer {str(raw)[:60]!r} is not a number")
        return text.replace(",", "")

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        return extract_number(output_text)

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        target = parse_number(key)
        if target is None:
            stated = extract_number(key)  # a worked solution ending in "#### n" also works
            target = parse_number(stated) if stated is not None else None
        if target is None:
            raise ValueError(f"numeric answer key {key!r} is not a number")
        value = parse_number(answer) if answer is not None else None
        return float(value is not None and numbers_match(value, target, tolerance, rel_tolerance))
