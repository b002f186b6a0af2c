"""Answer extraction and scoring: raw model output -> (extracted answer, score in [0, 1]).

One entry point, ``score(rule, raw_output)``, plus ``score_request`` (takes the choices from the
request) and ``score_logliks`` (multiple choice by log-likelihood). Extraction and scoring are the item
types' (``adtbase.itemtypes``): a rule is graded by the type whose ``scoring_kind`` is the rule's kind;
``regex`` rules, which belong to no type, are graded here. The text helpers (``extract_choice``,
``extract_number``, ``parse_number``, ``normalize_text``, ...) live in ``adtbase.itemtypes.text`` and
are re-exported here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from adtbase import itemtypes
from adtbase.itemtypes.base import JUDGE_KIND, pending_judgement
from adtbase.itemtypes.text import (
    extract_choice,
    extract_number,
    extract_open_answer,
    normalize_text,
    numbers_match,
    parse_number,
)
from runners.base import Request, ScoringRule, refuse_loglik

__all__ = ["extract_choice", "extract_number", "extract_open_answer", "normalize_text", "numbers_match",
           "parse_number", "score", "score_logliks", "score_request"]


# ---------------------------------------------------------------- scoring

def score(rule: ScoringRule, raw_output: str, *, choices: Sequence[str] = (),
          labels: Sequence[str] = ()) -> tuple[str | None, float]:
    """(extracted answer or None, score in [0, 1]) for one raw output under ``rule``.

    ``choices`` and ``labels`` are needed for ``choice`` rules (labels default to A, B, ...).
    """
    text = raw_output or ""
    if rule.kind == JUDGE_KIND:   # no text rule grades it: the judge step does (adt judge run)
        return pending_judgement(text)
    kind = itemtypes.for_scoring_kind(rule.kind)
    if kind is not None:
        return kind.grade(text, rule.answer, choices=choices, labels=labels, tolerance=rule.tolerance,
                          rel_tolerance=rule.rel_tolerance)
    # regex
    assert rule.pattern is not None
    try:
        matches = list(re.finditer(rule.pattern, text, re.MULTILINE))
    except re.error as exc:
        raise ValueError(f"scoring pattern {rule.pattern!r} is not a valid regex: {exc}") from exc
    if not matches:
        return None, 0.0
    last = matches[-1]
    got = last.group(1) if last.re.groups else last.group(0)
    got = got if got is not None else ""
    if rule.answer == "":
        return got, 1.0
    return got, float(normalize_text(got) == normalize_text(rule.answer))


def score_request(request: Request, raw_output: str) -> tuple[str | None, float]:
    """``score`` with the request's rule, choices and labels."""
    return score(request.scoring, raw_output, choices=request.choices, labels=request.choice_labels)


def score_logliks(request: Request, logliks: Sequence[float]) -> tuple[str, float]:
    """Multiple choice by log-likelihood: the label of the most likely choice and its 0/1 score.

    Ties go to the first choice (deterministic); NaN log-likelihoods never win. A type scored by generation
    only (multi-select) is refused, naming it.
    """
    refuse_loglik(request)
    if len(logliks) != len(request.choices):
        raise ValueError(f"request {request.item_id!r}: {len(logliks)} log-likelihoods for "
                         f"{len(request.choices)} choices")
    best = max(range(len(logliks)), key=lambda i: (-math.inf if math.isnan(logliks[i]) else logliks[i], -i))
    label = request.choice_labels[best]
    return label, float(label == request.scoring.answer)
