"""Numeric ("numeric"): a question whose answer is a number (GSM8K-style math, physics, chemistry).

Key, as imported (``canonical_key``; the stored text enters the content hash):

- plain decimals keep the form they always had: "$", thousands separators and a final "." dropped,
  sign and digits as written ("1,234" -> "1234", "+5" -> "+5", "10.50" -> "10.50");
- scientific notation, any spelling -> "<mantissa>e<exponent>": "3.27E-22", "3.27 × 10^-22",
  "3.27x10^{-22}", "3.27·10⁻²²" -> "3.27e-22"; "6.02e+23" -> "6.02e23";
- fractions of two whole numbers, as written: "3/4", "-1/2" (not reduced);
- ".5" -> "0.5"; the Unicode minus is "-"; a leading "$", "€", "£" or "¥" is dropped;
- a unit after the number is dropped: text that starts with a letter or one of ``% ° µ μ Ω ‰ Å`` and
  holds no other number (digits only as powers right after a unit: "m^2", "s-1", "cm³"):
  "-285.8 kJ/mol" -> "-285.8", "9.81 m/s^2" -> "9.81", "45%" -> "45" ("5 or 6" is not a number);
- a tolerance: "<number> ± <tolerance>" (also "+/-"), or the import's ``tolerance`` column.
  ``<tolerance>`` is absolute ("0.05", "1e-3") or relative to the key ("1%"); stored as
  "<key> ± <tolerance>" ("9.81 ± 0.05", "3.27e-22 ± 1%"). A key without one keeps its old text.

Prompt: asks for a last line "#### <number>". Scoring: the answer number (GSM8K "#### n", a stated
answer, \\boxed{n}, else the last number; written in any of the notations above) is right when
``|answer - key| <= bound`` (bound included), where bound is the item's tolerance when it has one
(absolute, or the percentage of ``|key|``), else the rule's ``max(tolerance, rel_tolerance * |key|)``
(default 1e-6 absolute), except that a key in scientific notation without a tolerance is matched to
``max(rel_tolerance, 1e-6)`` of its size (an absolute 1e-6 would pass any answer near 3.27e-22).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.itemtypes.base import ItemType
from adtbase.itemtypes.text import EXPONENT, extract_number, numbers_match, parse_number, power_of_ten

# The grammar of keys before the other notations came (pinned by tests/itembank/test_numeric_keys.py):
# a key it takes keeps exactly the canonical text it had, so re-importing a bank gives the same item ids.
_PLAIN = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_SIGN = r"[-+\u2212]"
_KEY = re.compile(
    rf"(?P<sign>{_SIGN})?\s*[$€£¥]?\s*(?P<sign2>{_SIGN})?"
    rf"(?P<mant>(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?|\.\d+)(?P<exp>{EXPONENT})?"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.,]))?"
    r"\s*(?P<unit>.*)")
_UNIT_START = re.compile(r"[^\W\d_]|[%°µμΩ‰Å]")
_UNIT_POWER = re.compile(r"(?<=[^\W\d_)])(?:\^|\*\*)?\{?[-+\u2212]?\d+\}?|[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")
_PLUS_MINUS = re.compile(r"\s*(?:±|\+/-|\+-)\s*")
_REL = re.compile(r"^(?P<num>.+?)\s*%$")


def _unit_ok(unit: str) -> bool:
    """A unit after the number: starts with a letter or a unit symbol, no number but powers."""
    if not unit:
        return True
    return bool(_UNIT_START.match(unit)) and len(unit) <= 40 and not re.search(r"\d", _UNIT_POWER.sub("", unit))


def number_key(raw: str) -> str:
    """A number in any notation -> its canonical key text (no tolerance); ``ValueError`` if not a number."""
    text = str(raw).strip()
    plain = text.replace("$", "").rstrip(".")
    if _PLAIN.match(plain):
        return plain.replace(",", "")
    text = text.rstrip(".")
    m = _KEY.fullmatch(text)
    if m is None or not _unit_ok(m["unit"]) or (m["sign"] and m["sign2"]):
        raise ValueError(f"answer {text[:60]!r} is not a number")
    sign = (m["sign"] or m["sign2"] or "").replace("\u2212", "-")
    mant = m["mant"].replace(",", "")
    mant = "0" + mant if mant.startswith(".") else mant
    if m["den"] is not None:
        if m["exp"] or "." in mant:
            raise ValueError(f"answer {text[:60]!r}: a fraction is two whole numbers (like 3/4)")
        if int(m["den"]) == 0:
            raise ValueError(f"answer {text[:60]!r}: the fraction divides by zero")
        return f"{sign}{mant}/{m['den']}"
    exp = f"e{power_of_ten(m['exp'])}" if m["exp"] else ""
    value = parse_number(f"{sign}{mant}{exp}")
    if value is None:   # out of float range: refuse rather than store a key no answer can match
        raise ValueError(f"answer {text[:60]!r} is not a number")
    return f"{sign}{mant}{exp}"


def tolerance_text(raw: Any) -> str:
    """A tolerance -> canonical text: an absolute number ("0.05", "1e-3") or a percentage ("1%")."""
    text = str(raw).strip()
    rel = _REL.match(text)
    body = rel["num"] if rel else text
    try:
        key = number_key(body)
    except ValueError:
        raise ValueError(f"tolerance {text[:40]!r} is not a number or a percentage (like 0.01 or 1%)") from None
    value = parse_number(key)
    if value is None or value < 0 or key.startswith("-"):
        raise ValueError(f"tolerance {text[:40]!r} must be a number >= 0 or a percentage (like 0.01 or 1%)")
    return key.lstrip("+") + ("%" if rel else "")


def split_key(key: str) -> tuple[str, str | None]:
    """A stored key -> (number text, tolerance text or None)."""
    number, *tol = _PLUS_MINUS.split(key.strip(), maxsplit=1)
    return number, (tol[0] if tol else None)


def _bound(number: str, tol: str | None, tolerance: float, rel_tolerance: float) -> tuple[float, float]:
    """(absolute, relative) tolerance for a key (see the module doc)."""
    if tol is not None:
        value = parse_number(tol.rstrip("%"))
        if value is None:
            raise ValueError(f"numeric answer key tolerance {tol!r} is not a number")
        return (0.0, value / 100) if tol.endswith("%") else (value, 0.0)
    if re.search(EXPONENT, number):   # scientific notation: its own size, not an absolute 1e-6
        return 0.0, max(rel_tolerance, 1e-6)
    return tolerance, rel_tolerance


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
        text = str(raw).strip()
        number, tol = split_key(text)
        key = number_key(number)
        return key if tol is None else self.with_tolerance(key, tol)

    def with_tolerance(self, key: str, tolerance: Any) -> str:
        if split_key(key)[1] is not None:
            raise ValueError(f"answer {key!r} already has a tolerance")
        return f"{key} ± {tolerance_text(tolerance)}"

    def shown_answer(self, item: Mapping[str, Any], where: str) -> str:
        return split_key(super().shown_answer(item, where))[0]

    def key_value(self, key: str) -> tuple[float, str, str | None]:
        """(value, number text, tolerance text or None) of a key; a worked solution's "#### n" also works."""
        number, tol = split_key(key)
        target = parse_number(number)
        if target is None:
            stated = extract_number(key)
            target = parse_number(stated) if stated is not None else None
            number = stated or number
        if target is None:
            raise ValueError(f"numeric answer key {key!r} is not a number")
        return target, number, tol

    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        return extract_number(output_text)

    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        target, number, tol = self.key_value(key)
        value = parse_number(answer) if answer is not None else None
        if value is None:
            return 0.0
        abs_tol, rel_tol = _bound(number, tol, tolerance, rel_tolerance)
        return float(numbers_match(value, target, abs_tol, rel_tol))

    def simulated_answer(self, correct: bool, key: str, labels: Sequence[str], rng: Any) -> str:
        return split_key(key)[0] if correct else "wrong"
