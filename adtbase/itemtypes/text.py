"""Answer text rules the item types share: number parsing, text normalisation, answer extraction.

Pure functions on text (standard library only), moved here from ``runners.scoring`` (which re-exports
them) so that item types, which both ``itembank`` and ``runners`` read, can use them. Extraction looks
for an explicit answer statement first and falls back to weaker evidence, the way the MMLU-Pro and
GSM8K reference evaluations do:

- choice: "the answer is (C)" / "Answer: C" / "答案是C" (last one wins) -> an output that is just a
  label ("C", "(C)", "C.") -> a leading label ("C. Paris") -> the one choice whose text the output
  matches or contains -> the last free-standing label.
- numeric: GSM8K "#### n" -> "the answer is n" / "答案是 n" -> \\boxed{n} -> the last number. Numbers
  may carry thousands separators ("1,234"), signs (also the Unicode minus), decimals, exponents
  ("3.27e-22", "3.27 × 10^-22", "3.27x10^{-22}", "3.27·10⁻²²", "3.27 \\times 10^{-22}"), "$" and "%",
  or be simple fractions ("3/4").

``normalise`` and ``LETTERS`` are the import side's (``itembank.content`` re-exports them): item ids
and canonical keys are built with them, so they never change.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def normalise(text: str) -> str:
    """NFKC, trimmed, inner whitespace runs collapsed to one space."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split())


_SUPERSCRIPT = "⁰¹²³⁴⁵⁶⁷⁸⁹"
# A power of ten written out: "× 10^-22", "x10^{-22}", "* 10**3", "·10⁻²²", "\\times 10^{-22}".
TIMES_TEN = (r"\s*(?:[×xX*·]|\\times|\\cdot)\s*10\s*(?:(?:\^|\*\*)\s*\{?\s*[-+\u2212]?\d+\s*\}?"
             rf"|[⁻⁺]?[{_SUPERSCRIPT}]+)")
EXPONENT = rf"(?:[eE][-+\u2212]?\d+|{TIMES_TEN})"
# One group, so "{_NUM}/{_NUM}" is a fraction of two whole numbers (not "A | B/C").
_NUM = (rf"(?:[-+\u2212]?\$?\s?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?{EXPONENT}?%?"
        rf"|[-+\u2212]?\.\d+{EXPONENT}?)")
_TIMES_TEN_RE = re.compile(TIMES_TEN + "$")
_SUPER_DIGITS = str.maketrans(_SUPERSCRIPT + "⁻⁺", "0123456789-+")
_NUMBER_RE = re.compile(rf"(?<![\w.])(?:(?:{_NUM})\s*/\s*(?:{_NUM})|(?:{_NUM}))")
_GSM_RE = re.compile(rf"####\s*({_NUM}(?:\s*/\s*{_NUM})?)")
_STATED_NUM_RE = re.compile(
    rf"(?:answer\s*(?:is|:)|答案\s*(?:是|为|：|:))\s*[:：]?\s*\**\s*({_NUM}(?:\s*/\s*{_NUM})?)",
    re.IGNORECASE)
_BOXED_RE = re.compile(rf"\\boxed\{{\s*({_NUM}(?:\s*/\s*{_NUM})?)\s*\}}")
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


# ---------------------------------------------------------------- numbers

def parse_number(text: str) -> float | None:
    """A number written as text -> float ("1,234.5", "-$3", "−2", "45%", "3/4"); None if not one."""
    s = text.strip().replace("\u2212", "-").replace("$", "").replace(",", "")
    s = _TIMES_TEN_RE.sub(_as_e, s).replace(" ", "")
    s = s.rstrip(".")
    if s.endswith("%"):
        s = s[:-1]
    if "/" in s:
        num, _, den = s.partition("/")
        a, b = parse_number(num), parse_number(den)
        if a is None or b is None or b == 0:
            return None
        return a / b
    try:
        value = float(s)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def extract_number(text: str) -> str | None:
    """The answer number in a model output, as written (see module doc for the order of evidence)."""
    for pattern in (_GSM_RE, _STATED_NUM_RE, _BOXED_RE):
        found = [m.group(1) for m in pattern.finditer(text)]
        if found:
            return found[-1].strip()
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1].strip() if numbers else None


def power_of_ten(exponent: str) -> int:
    """The power of an exponent as written: "e-22", "E+5", "× 10^-22", "x10^{-22}", "·10⁻²²" -> -22, 5, ..."""
    text = exponent.strip()
    if text[:1] in ("e", "E"):
        return int(text[1:].replace("\u2212", "-"))
    power = re.search(rf"10\s*(?:(?:\^|\*\*)\s*\{{?\s*([-+\u2212]?\d+)|([⁻⁺]?[{_SUPERSCRIPT}]+))", text)
    if power is None:
        raise ValueError(f"{exponent!r} is not a power of ten")
    digits = power.group(1) or power.group(2).translate(_SUPER_DIGITS)
    return int(digits.replace("\u2212", "-"))


def _as_e(match: re.Match[str]) -> str:
    return f"e{power_of_ten(match.group(0))}"


def numbers_match(x: float, target: float, tolerance: float, rel_tolerance: float) -> bool:
    """``|x - target| <= max(tolerance, rel_tolerance * |target|)``, the bound itself included (a few
    units in the last place of slack, so 1.01 is within 1% of 1.0 although 1.01 - 1.0 > 0.01 in floats)."""
    slack = 4 * math.ulp(max(abs(x), abs(target)))
    return abs(x - target) <= max(tolerance, rel_tolerance * abs(target)) + slack


# ---------------------------------------------------------------- text

def normalize_text(text: str) -> str:
    """Case-folded, NFKC, punctuation removed, English articles dropped, whitespace collapsed."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in s)
    s = _ARTICLES_RE.sub(" ", s)
    return " ".join(s.split())


def extract_open_answer(text: str) -> str:
    """An open answer: after the last "answer is"/"Answer:"/"答案是", else the first non-empty line."""
    stated = re.findall(r"(?:answer\s*(?:is|:)|答案\s*(?:是|为|：|:))\s*[:：]?\s*(.+)", text, re.IGNORECASE)
    if stated:
        return stated[-1].strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


# ---------------------------------------------------------------- choices

def _label_alt(labels: Sequence[str]) -> str:
    return "|".join(re.escape(lab) for lab in sorted(labels, key=len, reverse=True))


def extract_choice(text: str, labels: Sequence[str], choices: Sequence[str] = ()) -> str | None:
    """The chosen label in a model output, or None (see module doc for the order of evidence)."""
    if not labels:
        return None
    alt = _label_alt(labels)
    stated = re.compile(
        rf"(?:answer\s*(?:is|:)|答案\s*(?:是|为|应该是|应为|选)?\s*[:：]?|选择?|option)\s*[:：]?\s*\**\s*"
        rf"[(\[（]?\s*({alt})\s*[)\]）]?(?![A-Za-z0-9])",
        re.IGNORECASE)
    found = [m.group(1) for m in stated.finditer(text)]
    found = [f for f in found if f in labels] or [_canon(f, labels) for f in found if _canon(f, labels)]
    if found:
        return found[-1]
    stripped = text.strip().strip("*").strip()
    alone = re.fullmatch(rf"[(\[（]?\s*({alt})\s*[)\]）.:：]?", stripped)
    if alone:
        return alone.group(1)
    lead = re.match(rf"[(\[（]?({alt})[)\]）.:：]\s", stripped + " ")
    if lead:
        return lead.group(1)
    by_text = _match_choice_text(text, labels, choices)
    if by_text is not None:
        return by_text
    loose = [m.group(1) for m in re.finditer(rf"(?<![A-Za-z0-9])[(\[（]?({alt})[)\]）]?(?![A-Za-z0-9])"
                                            rf"(?!\s+[a-z])", text)]
    return loose[-1] if loose else None


def _canon(found: str, labels: Sequence[str]) -> str | None:
    """A label matched case-insensitively -> the label as written ("c" -> "C"), if unambiguous."""
    hits = [lab for lab in labels if lab.casefold() == found.casefold()]
    return hits[0] if len(hits) == 1 else None


def _match_choice_text(text: str, labels: Sequence[str], choices: Sequence[str]) -> str | None:
    if not choices:
        return None
    out = normalize_text(text)
    if not out:
        return None
    norm = [normalize_text(c) for c in choices]
    exact = [lab for lab, c in zip(labels, norm, strict=False) if c and c == out]
    if len(exact) == 1:
        return exact[0]
    contained = [(len(c), lab) for lab, c in zip(labels, norm, strict=False)
                 if c and re.search(rf"(?<!\w){re.escape(c)}(?!\w)", out)]
    if not contained:
        return None
    contained.sort(reverse=True)
    # The longest contained choice wins only if it is not just a part of a longer one mentioned too.
    if len(contained) == 1 or contained[0][0] > contained[1][0]:
        longest = contained[0]
        others = [lab for n, lab in contained[1:] if not _is_part(norm[labels.index(lab)],
                                                                   norm[labels.index(longest[1])])]
        return longest[1] if not others else None
    return None


def _is_part(short: str, long: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(short)}(?!\w)", long) is not None
