"""The command layer's flag grammars, parsed once here for every command (and for ``adt.workflow``'s callers).
The rooms take the parsed values, never the flag text.

``--filter KEY=VALUE[,VALUE...]`` selects the items whose KEY (a built-in column such as ``language`` or
``frequency_tier``, or a tag key) has one of the values. Values are split on ``,`` and stripped; repeating a
key adds its values (OR); different keys AND. So ``--filter domain=math,physics --filter language=en`` and
``--filter domain=math --filter domain=physics --filter language=en`` select the same items. A value cannot
hold a comma. Spec files (``adt sample --spec``, ``adt round``) give lists instead: ``include: {domain:
[math, physics]}``. The result, ``{key: [values]}``, is what ``Bank.items`` / ``Bank.stats`` /
``Bank.responses`` take and what a form spec holds (``FormSpec.include``).

``--quota KEY=VALUE:AMOUNT[,VALUE:AMOUNT...]`` (``adt sample``, ``adt validate``; ``adt cat --content``
takes the same text as content-balancing targets) -> ``(key, {value: amount})``; ``--max-overlap
FORM:FRACTION`` -> ``(form, fraction)``. An amount is a count (``70``) or a fraction (``0.7`` or ``70%``);
what the amounts mean is the form spec's rule (``sampler.spec``: ``FormSpec.from_cli`` takes these results).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from adtbase.errors import InputError


def parse_filters(texts: Iterable[str], flag: str = "--filter") -> dict[str, list[str]]:
    """``["KEY=V1,V2", ...]`` -> ``{KEY: [V1, V2]}`` (keys in first-seen order, values deduplicated in order);
    ``flag`` names the option in messages (``adt review edit --tag`` takes the same grammar)."""
    out: dict[str, list[str]] = {}
    for text in texts:
        key, sep, rest = text.partition("=")
        key = key.strip()
        values = [v.strip() for v in rest.split(",") if v.strip()]
        if not sep or not key or not values:
            raise InputError(f"{flag} {text!r}: expected KEY=VALUE[,VALUE...] (a key and at least one value)")
        have = out.setdefault(key, [])
        have += [v for v in values if v not in have]
    return out


def parse_amount(text: str, where: str) -> int | float:
    """``"70"`` -> count 70; ``"0.7"`` or ``"70%"`` -> fraction 0.7."""
    t = text.strip()
    try:
        if t.endswith("%"):
            return float(t[:-1]) / 100.0
        if re.fullmatch(r"[+-]?\d+", t):
            return int(t)
        return float(t)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a count, fraction or percentage") from None


def parse_quota_flag(text: str) -> tuple[str, dict[str, int | float]]:
    """``--quota KEY=VAL:FRAC,VAL:FRAC`` -> (key, {value: amount})."""
    where = f"--quota {text!r}"
    if "=" not in text:
        raise InputError(f"{where}: expected KEY=VALUE:AMOUNT[,VALUE:AMOUNT...]")
    key, rest = text.split("=", 1)
    key = key.strip()
    if not key:
        raise InputError(f"{where}: empty key")
    amounts: dict[str, int | float] = {}
    for part in rest.split(","):
        if ":" not in part:
            raise InputError(f"{where}: {part!r} should be VALUE:AMOUNT")
        value, amount = part.rsplit(":", 1)
        value = value.strip()
        if not value or value in amounts:
            raise InputError(f"{where}: value {value!r} empty or repeated")
        amounts[value] = parse_amount(amount, where)
    return key, amounts


def parse_quotas(texts: Iterable[str]) -> dict[str, dict[str, int | float]]:
    """Repeated ``--quota`` flags -> ``{key: {value: amount}}`` (a key given again: the later flag wins)."""
    return dict(map(parse_quota_flag, texts))


def overlap_form(text: str) -> str:
    """The FORM of ``--max-overlap FORM:FRACTION`` (the whole text when it has no ``:``)."""
    return text.rsplit(":", 1)[0].strip()


def parse_overlap_flag(text: str) -> tuple[str, float]:
    """``--max-overlap FORM:FRAC`` -> (form, fraction)."""
    if ":" not in text:
        raise InputError(f"--max-overlap {text!r}: expected FORM:FRACTION")
    amount = parse_amount(text.rsplit(":", 1)[1], f"--max-overlap {text!r}")
    return overlap_form(text), float(amount)


def parse_backend_args(pairs: Iterable[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; values parse as JSON where they can (numbers, true/false, lists)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--backend-arg {pair!r} is not of the form KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out
