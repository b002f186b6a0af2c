"""Stable item ids from normalised content, so the same item from any file or source is one item."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence

_SPACE = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def normalise(text: str) -> str:
    """NFKC, trimmed, inner whitespace runs collapsed to one space."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def content_hash(question: str, choices: Sequence[str] | None, answer: str | None) -> str:
    """sha256 of the normalised (question, choices, answer key); the answer key is a letter for MC."""
    body = json.dumps([normalise(question), [normalise(c) for c in (choices or ())], answer or ""],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def item_id_from_hash(digest: str) -> str:
    return "it_" + digest[:20]


def guess_language(text: str) -> str:
    """'zh' when at least a fifth of the letters are CJK ideographs, else 'en' (documented default)."""
    letters = sum(ch.isalpha() for ch in text)
    return "zh" if letters and len(_CJK.findall(text)) / letters >= 0.2 else "en"


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
