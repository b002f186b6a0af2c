"""Stable item ids from normalised content, so the same item from any file or source is one item."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

# The key and content normalisation is the item types' (canonical keys use it too); re-exported here.
from adtbase.itemtypes.text import LETTERS, normalise  # noqa: F401

# One encoder, built once: json.dumps with non-default options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_quote = json.encoder.encode_basestring   # how _ENCODER writes a string (ensure_ascii=False)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def content_hash(question: str, choices: Sequence[str] | None, answer: str | None) -> str:
    """sha256 of the normalised (question, choices, answer key); the answer key is a letter for MC.

    The hashed text is ``_ENCODER``'s JSON of ``[question, [choices...], answer]``. For a text key (every import) it is
    written here with the encoder's own string quoting, which gives the same text without the encoder's per-call
    set-up (a third of an import's hashing); anything else goes through the encoder."""
    answer = answer or ""
    choices = choices or ()
    if type(answer) is str:   # normalise() always gives a str (or fails, as the encoder's path would)
        body = (f"[{_quote(normalise(question))},[{','.join([_quote(normalise(c)) for c in choices])}],"
                f"{_quote(answer)}]")
    else:
        body = _ENCODER.encode([normalise(question), [normalise(c) for c in choices], answer])
    return hashlib.sha256(body.encode()).hexdigest()


def item_id_from_hash(digest: str) -> str:
    return "it_" + digest[:20]


def guess_language(text: str) -> str:
    """'zh' when at least a fifth of the letters are CJK ideographs, else 'en' (documented default)."""
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and len(_CJK.findall(text)) / letters >= 0.2 else "en"



# Format limits QC checks (``adt qc``'s schema check): long enough to hold any real benchmark item we know
# (MMLU-Pro law stems run to ~4,000 characters), short enough to catch a generator that ran away.
MAX_QUESTION_CHARS = 8000
MAX_CHOICE_CHARS = 1000


def format_problems(item: Mapping[str, Any]) -> list[str]:
    """What breaks the bank's format rules in one stored item (``question, choices, answer, item_type,
    language``): the item type's own rule, choices distinct after normalisation, the key among them, length
    limits, and the language as tagged (``guess_language``). Empty when the item is well formed."""
    from adtbase import itemtypes

    question = str(item.get("question") or "")
    raw_choices = item.get("choices")
    choices = [str(c) for c in (raw_choices if raw_choices is not None else ())]
    kind_name = str(item.get("item_type") or "")
    if not itemtypes.is_registered(kind_name):
        return [f"item type {kind_name!r} is not one of {list(itemtypes.names())}"]
    kind = itemtypes.get(kind_name)
    out = list(kind.validate({**item, "choices": choices}))
    if not question.strip():
        out.append("empty question")
    if len(question) > MAX_QUESTION_CHARS:
        out.append(f"question has {len(question)} characters (limit {MAX_QUESTION_CHARS})")
    long = [LETTERS[i] for i, c in enumerate(choices[:len(LETTERS)]) if len(c) > MAX_CHOICE_CHARS]
    if long:
        out.append(f"choice(s) {', '.join(long)} longer than {MAX_CHOICE_CHARS} characters")
    if kind.has_choices:
        seen: dict[str, str] = {}
        for i, c in enumerate(choices[:len(LETTERS)]):
            norm = normalise(c)
            if not norm:
                out.append(f"choice {LETTERS[i]} is empty")
            elif norm in seen:
                out.append(f"choices {seen[norm]} and {LETTERS[i]} are the same")
            else:
                seen[norm] = LETTERS[i]
        answer = str(item.get("answer") or "")
        try:
            outside = [lab for lab in kind.key_labels(answer) if lab not in LETTERS[:len(choices)]]
        except ValueError:
            outside = [answer]
        if outside or not answer:
            out.append(f"answer key {answer!r} is not among the {len(choices)} choices")
    elif not str(item.get("answer") or "").strip():
        out.append("no answer key")
    language = str(item.get("language") or "")
    text = " ".join([question, *choices])
    if language in ("en", "zh") and guess_language(text) != language:
        out.append(f"tagged language {language!r} but the text reads as {guess_language(text)!r}")
    return out
