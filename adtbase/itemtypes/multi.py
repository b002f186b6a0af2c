"""Multi-select ("multi"): a question with 2 to 26 labelled options, any number (at least one) of them
correct ("select all that apply").

Key, as imported (``canonical_key``): the correct labels, sorted and comma-joined ("B,D"; it enters the
content hash, so the order the file gives them in does not matter). Accepted: a list of labels
(["B", "D"]), labels in text ("B,D", "B, D", "B;D", "B and D"), run-together labels ("BD": only where
every character is a distinct label of the item and no option's text is "BD"), a list of 0-based indices
([1, 3]: 0-based like a single-choice item's index), or option texts (a list, one text, or texts separated
by "," or ";").
``--answer-format letter|index|text`` reads only that form. A key followed by " (partial credit)", or
the import's ``partial_credit`` column set (true/yes/1), gives partial credit.

Prompt: the options listed as "A. text" under the question; the instruction asks for the letters of every
correct option, separated by commas. Scoring (generation only): the labels of the last answer statement
("the answer is A, C", "Answer: AC", "答案是AC"), else an output that is nothing but labels, compared as a
set with the key: 1 for the exact set, else 0; with partial credit the Jaccard index
|answer ∩ key| / |answer ∪ key| (picking every option of four against a key of two scores 0.5, one of
the two correct and nothing else 0.5, one right and one wrong 1/3). Single-option log-likelihood does not
apply (``scoring_modes = ("generate",)``; ``runners.scoring.score_logliks`` refuses the type).
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.errors import InputError
from adtbase.itemtypes.base import ItemType
from adtbase.itemtypes.text import LETTERS, normalise

PARTIAL = " (partial credit)"
_SEP = r"(?:\s*(?:,|;|/|&|、|，|\band\b|和|\s)\s*)"
_STATED = re.compile(r"(?:answers?\s*(?:is|are|:)|答案\s*(?:是|为|应该是|应为|选)?\s*[:：]?|选择?)\s*[:：]?\s*(.*)",
                     re.IGNORECASE)


def _labels_in(segment: str, labels: Sequence[str]) -> list[str] | None:
    """The labels a segment consists of ("A, C", "(A) and (C)", "AC", "a; c."), or None if it holds anything else."""
    text = segment.strip().strip("*").strip().rstrip(".。").strip()
    if not text:
        return None
    if text.isupper() and len(text) <= len(labels) and all(ch in labels for ch in text):
        return list(text)    # run together: "AC"
    alt = "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))
    one = rf"[(\[（]?\s*({alt})\s*[)\]）]?"
    if not re.fullmatch(rf"{one}(?:{_SEP}+{one})*", text, re.IGNORECASE):
        return None
    found = re.findall(rf"(?<![A-Za-z]){one}(?![A-Za-z])", text, re.IGNORECASE)
    by_fold = {lab.casefold(): lab for lab in labels}
    return [by_fold[f.casefold()] for f in found]


class MultiSelect(ItemType):
    name = "multi"
    title = "multi-select"
    scoring_kind = "choices"
    scoring_modes = ("generate",)
    has_choices = True
    prompt_headers: ClassVar[Mapping[str, str]] = {
        "en": "The following are multiple choice questions with one or more correct options. Answer with the "
              "letters of every correct option, separated by commas (for example: A, C).",
        "zh": "以下是不定项选择题（一个或多个选项正确），请给出所有正确选项的字母，用逗号分隔（例如：A, C）。",
    }
    max_new_tokens = 48

    # ------------------------------------------------------------ import

    def validate(self, row: Mapping[str, Any]) -> list[str]:
        n = len(row.get("choices") or ())
        if not 2 <= n <= len(LETTERS):
            return [f"multi-select item has {n} choices (needs 2 to {len(LETTERS)})"]
        return []

    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        partial = isinstance(raw, str) and raw.rstrip().endswith(PARTIAL.strip())
        if partial:
            raw = raw.rstrip()[: -len(PARTIAL.strip())]
        labels = tuple(LETTERS[: len(choices)])
        picked = self._read_key(raw, list(choices), labels, answer_format)
        if not picked:
            raise ValueError(f"answer {str(raw)[:60]!r} names no correct option")
        key = ",".join(sorted(set(picked), key=labels.index))
        return key + PARTIAL if partial else key

    def with_partial_credit(self, key: str) -> str:
        return key if key.endswith(PARTIAL) else key + PARTIAL

    def _read_key(self, raw: Any, choices: list[str], labels: tuple[str, ...], fmt: str) -> list[str]:
        if hasattr(raw, "tolist"):
            raw = raw.tolist()      # a numpy array (Parquet list) or scalar
        if isinstance(raw, str) and raw.strip().startswith("["):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ValueError(f"answer {raw[:60]!r} is not a JSON list") from None
        parts = list(raw) if isinstance(raw, list | tuple) else [raw]
        if fmt == "gsm8k":
            fmt = "auto"
        return [lab for part in parts for lab in self._read_part(part, choices, labels, fmt, many=len(parts) > 1)]

    def _read_part(self, part: Any, choices: list[str], labels: tuple[str, ...], fmt: str, many: bool) -> list[str]:
        n = len(choices)
        if isinstance(part, numbers.Integral) and fmt in ("auto", "index") and not isinstance(part, bool):
            if not 0 <= int(part) < n:
                raise ValueError(f"answer index {part} is not among the {n} choices (0-based)")
            return [labels[int(part)]]
        text = str(part).strip()
        if fmt == "index":
            if not text.isdigit():
                raise ValueError(f"answer {text[:60]!r} is not a 0-based index")
            return self._read_part(int(text), choices, labels, fmt, many)
        by_text = [i for i, c in enumerate(choices) if normalise(c) == normalise(text)]
        single_letter = len(text) == 1 and text.upper() in LETTERS     # a letter before a text, as for "mc"
        if fmt in ("auto", "text") and by_text and not (fmt == "auto" and single_letter):
            return [labels[by_text[0]]]
        texts = [normalise(t) for t in re.split(r"[,;]", text)]
        norm = [normalise(c) for c in choices]
        if fmt in ("auto", "text") and len(texts) > 1 and all(t in norm for t in texts):
            return [labels[norm.index(t)] for t in texts]      # "Rome, Berlin": option texts in one string
        if fmt in ("auto", "letter"):
            found = _labels_in(text.upper() if len(text) == 1 else text, labels)
            if found:
                return found
            letters = [t for t in re.split(_SEP, text) if t]
            if all(len(t) == 1 and t.upper() in LETTERS for t in letters) and letters:
                raise ValueError(f"answer {text[:60]!r} names a label not among the {n} choices "
                                 f"({labels[0]}-{labels[-1]})")
        if fmt == "text" or (fmt == "auto" and not many):
            raise ValueError(f"answer {text[:60]!r} is not a set of labels ({labels[0]}-{labels[-1]}), 0-based "
                             f"indices or option texts")
        raise ValueError(f"answer part {text[:60]!r} is not a {'label' if fmt != 'text' else 'choice text'}")

    # ------------------------------------------------------------ prompts

    def prompt_choices(self, item: Mapping[str, Any], where: str) -> list[str]:
        raw = item.get("choices")
        choices = [str(c) for c in list(raw)] if raw is not None else []
        problems = self.validate({"choices": choices})
        if problems:
            raise InputError(f"{where}: {problems[0]}")
        return choices

    def rule_answer(self, item: Mapping[str, Any], where: str) -> str:
        choices = self.prompt_choices(item, where)
        try:
            return self.canonical_key(item.get("answer"), choices=choices)
        except ValueError as exc:
            raise InputError(f"{where}: field 'answer': {exc}") from None

    def shown_answer(self, item: Mapping[str, Any], where: str) -> str:
        return ", ".join(self.key_labels(self.rule_answer(item, where)))

    def key_labels(self, key: str) -> tuple[str, ...]:
        return tuple(key.removesuffix(PARTIAL).split(","))

    # ------------------------------------------------------------ scoring

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        labs = tuple(labels) or tuple(LETTERS[: max(len(choices), 1)])
        stated = [m.group(1) for m in _STATED.finditer(output_text)]
        lines = [line for line in output_text.splitlines() if line.strip()]
        # the last answer statement, else the first line, else the whole output
        for segment in (stated[-1:] or lines[:1]) + [output_text]:
            found = _labels_in(segment, labs)
            if found:
                return ",".join(sorted(set(found), key=labs.index))
        return None

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        if not answer:
            return 0.0
        right = set(self.key_labels(key))
        got = set(answer.split(","))
        if key.endswith(PARTIAL):
            return len(got & right) / len(got | right)
        return float(got == right)

    def grade(self, output_text: str, key: str, *, choices: Sequence[str] = (), labels: Sequence[str] = (),
              tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> tuple[str | None, float]:
        labs = tuple(labels) or tuple(LETTERS[: max(len(choices), 1)])
        got = self.extract(output_text, choices=choices, labels=labs)
        return got, self.score(got, key)

    def simulated_answer(self, correct: bool, key: str, labels: Sequence[str], rng: Any) -> str:
        """The key's labels when right, else the key with one label (drawn uniformly) added or taken away."""
        right = list(self.key_labels(key))
        if correct:
            return ",".join(right)
        flip = labels[int(rng.integers(len(labels)))]
        wrong = set(right) ^ {flip}
        if not wrong:
            wrong = {lab for lab in labels if lab != flip}
        return ",".join(sorted(wrong, key=list(labels).index))
