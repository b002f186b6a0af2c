"""Rubrics and judge keys: what a judge-scored item stores as its answer key (standard library only).

A judge-scored item (``open`` with a reference answer and/or a rubric, ``pairwise`` with a baseline answer)
stores its key as ``JUDGE_PREFIX`` followed by canonical JSON (keys sorted, no spaces, UTF-8 text kept):

    judge:{"reference":"...","rubric":{"criteria":[...],"version":1}}
    judge:{"baseline":"...","reference":"..."}

The key enters the item's content hash (``itembank.content``), so a changed rubric, reference or baseline
is a new item (through ``Bank.edit_item``'s version chain); a plain open key (normalised text) never starts
with the prefix's ``judge:{`` (the importer refuses one that does), so plain open items keep their ids.

A rubric (``parse_rubric``) is JSON text or an object::

    {"version": 1,
     "criteria": [{"name": "accuracy", "description": "facts are right",
                   "levels": ["wrong", "partly right", "right"]},
                  {"name": "clarity", "levels": ["unclear", "clear"]}]}

``levels`` are the descriptions of the scores 0, 1, ... of a criterion (two to ten). A judge gives one level
per criterion; the item's level is their sum, so the rubric has ``1 + sum(len(levels) - 1)`` levels
(``Rubric.n_levels``) and the verdict is ``level / (n_levels - 1)`` (``adtbase.verdicts``). ``version`` (a
positive integer, default 1) is the operator's own number for the rubric's wording.

An open item with a reference and no rubric is judged on ``REFERENCE_RUBRIC`` (one criterion, three levels:
incorrect, partly correct, correct).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JUDGE_PREFIX = "judge:"
JUDGE_FIELDS = ("reference", "rubric", "baseline")
MAX_LEVELS = 10


class FieldProblem(ValueError):
    """A problem with one field of a judge key (``field``: ``reference``, ``rubric`` or ``baseline``)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Criterion:
    name: str
    description: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class Rubric:
    criteria: tuple[Criterion, ...]
    version: int = 1

    @property
    def n_levels(self) -> int:
        """Levels of the item's total score: 0 .. sum of each criterion's top level."""
        return 1 + sum(len(c.levels) - 1 for c in self.criteria)

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version,
                "criteria": [{"name": c.name, "description": c.description, "levels": list(c.levels)}
                             for c in self.criteria]}


REFERENCE_RUBRIC = Rubric((Criterion(
    "correctness", "agreement of the answer with the reference answer",
    ("incorrect: contradicts or misses the reference", "partly correct: some of the reference, or with errors",
     "correct: says what the reference says")),))


def clean_text(text: str) -> str:
    """A reference or baseline answer as stored: NFKC, line ends unified, trailing spaces cut, trimmed.
    Line breaks are kept (a reference may be code or a list)."""
    text = unicodedata.normalize("NFKC", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def parse_rubric(raw: Any) -> Rubric:
    """A rubric from JSON text or a mapping; ``FieldProblem('rubric', ...)`` naming every problem at once."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FieldProblem("rubric", f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, Mapping):
        raise FieldProblem("rubric", f"expected an object with 'criteria', got {type(raw).__name__}")
    problems: list[str] = []
    extra = sorted(set(raw) - {"version", "criteria"})
    if extra:
        problems.append(f"unknown key(s) {', '.join(map(repr, extra))} (a rubric has 'version' and 'criteria')")
    version = raw.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"'version' must be a positive integer, got {version!r}")
        version = 1
    criteria_raw = raw.get("criteria")
    criteria: list[Criterion] = []
    if not isinstance(criteria_raw, list) or not criteria_raw:
        problems.append("'criteria' must be a non-empty list")
        criteria_raw = []
    names: set[str] = set()
    for k, c in enumerate(criteria_raw):
        at = f"criterion {k + 1}"
        if not isinstance(c, Mapping):
            problems.append(f"{at} is not an object")
            continue
        extra = sorted(set(c) - {"name", "description", "levels"})
        if extra:
            problems.append(f"{at}: unknown key(s) {', '.join(map(repr, extra))}")
        name = c.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{at}: 'name' must be non-empty text")
            name = ""
        name = " ".join(name.split())
        if name and name in names:
            problems.append(f"{at}: name {name!r} repeats")
        names.add(name)
        desc = c.get("description", "")
        if not isinstance(desc, str):
            problems.append(f"{at}: 'description' must be text")
            desc = ""
        levels = c.get("levels")
        if not isinstance(levels, list) or not 2 <= len(levels) <= MAX_LEVELS:
            problems.append(f"{at}: 'levels' must be a list of 2 to {MAX_LEVELS} level descriptions "
                            "(the scores 0, 1, ...)")
            continue
        if not all(isinstance(v, str) and v.strip() for v in levels):
            problems.append(f"{at}: every level needs a non-empty description")
            continue
        criteria.append(Criterion(name, clean_text(desc), tuple(clean_text(v) for v in levels)))
    if problems:
        raise FieldProblem("rubric", "; ".join(problems))
    return Rubric(tuple(criteria), version)


def _text_field(field: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise FieldProblem(field, f"expected text, got {type(raw).__name__}")
    text = clean_text(raw)
    if not text:
        raise FieldProblem(field, "is empty")
    return text


@dataclass(frozen=True)
class JudgeKey:
    """A judge-scored item's key: what the judge sees besides the question and the candidate's answer."""

    reference: str | None = None
    rubric: Rubric | None = None
    baseline: str | None = None

    @property
    def kind(self) -> str:
        """The judge template kind: ``pairwise`` (a baseline), ``rubric`` or ``reference``."""
        if self.baseline is not None:
            return "pairwise"
        return "rubric" if self.rubric is not None else "reference"

    @property
    def scale(self) -> Rubric:
        """The pointwise scale: the item's rubric, else the reference scale."""
        return self.rubric if self.rubric is not None else REFERENCE_RUBRIC

    def text(self) -> str:
        """The stored key (canonical: the same key always gives the same text, so the same item id)."""
        body: dict[str, Any] = {}
        if self.baseline is not None:
            body["baseline"] = self.baseline
        if self.reference is not None:
            body["reference"] = self.reference
        if self.rubric is not None:
            body["rubric"] = self.rubric.as_json()
        return JUDGE_PREFIX + json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def is_judge_key(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(JUDGE_PREFIX + "{")


def build_judge_key(fields: Mapping[str, Any], *, allowed: tuple[str, ...], required: tuple[str, ...] = ()
                    ) -> JudgeKey:
    """A ``JudgeKey`` from import fields (``reference``, ``rubric``, ``baseline``; blank ones left out);
    ``FieldProblem`` naming the first field at fault."""
    for f in fields:
        if f not in JUDGE_FIELDS:
            raise FieldProblem(f, f"unknown judge field (known: {', '.join(JUDGE_FIELDS)})")
        if f not in allowed:
            raise FieldProblem(f, f"this item type takes no {f!r} (it takes {', '.join(allowed)})")
    for f in required:
        if f not in fields:
            raise FieldProblem(f, f"a {f!r} is required")
    if not any(f in fields for f in ("reference", "rubric", "baseline")):
        raise FieldProblem(allowed[0], "a judge-scored item needs a reference answer or a rubric")
    return JudgeKey(
        reference=_text_field("reference", fields["reference"]) if "reference" in fields else None,
        rubric=parse_rubric(fields["rubric"]) if "rubric" in fields else None,
        baseline=_text_field("baseline", fields["baseline"]) if "baseline" in fields else None)


def parse_judge_key(key: str) -> JudgeKey:
    """The stored key back as a ``JudgeKey`` (``ValueError`` when it is not one)."""
    if not is_judge_key(key):
        raise ValueError(f"not a judge key: {key[:40]!r}")
    try:
        body = json.loads(key[len(JUDGE_PREFIX):])
    except json.JSONDecodeError as exc:
        raise ValueError(f"judge key is not JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise ValueError("judge key is not an object")
    return build_judge_key(body, allowed=JUDGE_FIELDS)
