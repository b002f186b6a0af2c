"""Stable item ids from normalised content, so the same item from any file or source is one item."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

# The key and content normalisation is the item types' (canonical keys use it too); re-exported here.
from adtbase.itemtypes.text import LETTERS, normalise  # noqa: F401

# One encoder, built once: json.dumps with non-default options builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def content_hash(question: str, choices: Sequence[str] | None, answer: str | None) -> str:
    """sha256 of the normalised (question, choices, answer key); the answer key is a letter for MC."""
    body = _ENCODER.encode([normalise(question), [normalise(c) for c in (choices or ())], answer or ""])
    return hashlib.sha256(body.encode()).hexdigest()


def item_id_from_hash(digest: str) -> str:
    return "it_" + digest[:20]


def guess_language(text: str) -> str:
    """'zh' when at least a fifth of the letters are CJK ideographs, else 'en' (documented default)."""
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and len(_CJK.findall(text)) / letters >= 0.2 else "en"

