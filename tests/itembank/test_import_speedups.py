"""The import's fast paths give exactly what the plain code gives: the content hash's JSON text, and the
``tags`` column parsed in one pass before the row loop."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from itembank.content import _ENCODER, content_hash, normalise
from itembank.importer import _loads, _parse_tags, _TagsProblem

TRICKY = ["", " ", "plain", "  two   spaces\tand\ttabs\n", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "第1题：1加2等于多少？",
          "quote \" backslash \\ slash /", "control \x00\x01\x1f\x7f", "\u2028line\u2029sep", "emoji 😀 🏳️‍🌈",
          "e\u0301 combining", "ﬁ ligature", "non\u00a0breaking\u3000ideographic space", "\ud800 lone surrogate",
          "tab\there", "<b>&amp;</b>", "'single'"]


def _reference(question, choices, answer):
    """content_hash as it was written before its fast path: the encoder on the whole list."""
    body = _ENCODER.encode([normalise(question), [normalise(c) for c in (choices or ())], answer or ""])
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.parametrize("question", TRICKY)
def test_content_hash_is_the_encoders_on_tricky_text(question):
    for choices in ([], None, TRICKY, ["A", "", " "], ["中文", "English"]):
        for answer in ("A", "", None, "1.5", "中"):
            if "\ud800" in question or any("\ud800" in c for c in choices or ()):
                with pytest.raises(UnicodeEncodeError):   # as before: a lone surrogate cannot be hashed
                    content_hash(question, choices, answer)
                continue
            assert content_hash(question, choices, answer) == _reference(question, choices, answer)


def test_content_hash_pinned():
    """Digests recorded from the code before the fast path (6c5149c): item ids of existing banks stay the same."""
    assert content_hash("Item 1: what is 2 plus 3?", ["5", "6", "4", "15"], "A") == \
        "f92104557000b0c8b2787ac48596c398a2b57d19925a6eff607c00dcf23fa369"
    assert content_hash(" 第1题：１加2 ", [], None) == "48a3367d7d1f9a1ab5ebc8c19c8b7390a468888a59807d1a70005cc2c293e532"
    assert content_hash('q"\\ \u2028', ["ｆｉ", "e\u0301"], "B") == \
        "e954def5722b27f4c8d91c48106fc009a4b26b14fdd5a723234149f777d0c776"


@pytest.mark.parametrize("text", ['{"a": 1}', ' \n{"a": [1, "x"]}\t', "[1, 2]", '"s"', "1", "null", "{", "{} {}",
                                  '{"a": 1} x', "\ufeff{}", "nan", "NaN", "1e999", '{"a": "\\u00e9"}', "", "   ",
                                  '{"a": 1, "a": 2}', "\u00a0{}"])
def test_loads_is_json_loads(text):
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as exc:
        with pytest.raises(json.JSONDecodeError) as got:
            _loads(text)
        assert (got.value.msg, got.value.pos) == (exc.msg, exc.pos)
        return
    got = _loads(text)
    assert got == expected or (got != got and expected != expected)


def _tags_before(raw):
    """The row loop's tag parsing before it moved to _parse_tags (itembank.importer at 6c5149c)."""
    from itembank.importer import _blank, _tag_values

    row_tags, problems = [], []
    if isinstance(raw, str) and raw.strip():
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            problems.append(("tags are not a JSON object", raw, "not a JSON object"))
            raw = None
    if isinstance(raw, dict):
        for tkey, tval in raw.items():
            row_tags.extend((str(tkey), v, "tags") for v in _tag_values(tval))
    elif not (_blank(raw) if not isinstance(raw, (list, np.ndarray)) else len(raw) == 0):
        problems.append(("tags are not a mapping", raw, "expected a mapping of key to value(s)"))
    return tuple(row_tags), problems


def test_parse_tags_matches_the_row_loop():
    column = ['{"domain": "d1", "ability": ["b", " a ", ""], "n": 3, "x": null, "e": "  "}', "", "  ", None,
              float("nan"), "[1, 2]", '"text"', "{not json", '{"a": 1} trailing', {"k": " v "}, [], ["x"],
              np.array([]), np.array(["x"]), 7, '{"a": {"b": 1}}', '{"k": "１２"}', '{"a": true, "b": 1.5}']
    parsed = _parse_tags(column)
    assert len(parsed) == len(column)
    for raw, got in zip(column, parsed, strict=True):
        triples, problems = _tags_before(raw)
        if problems:
            assert isinstance(got, _TagsProblem)
            kind, value, message = problems[0]
            assert (got.kind, got.message) == (kind, message)
            assert str(got.value) == str(value)
        else:
            assert got == triples
