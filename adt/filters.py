"""The one ``--filter`` grammar, for every command that takes the flag (and for ``adt.workflow``'s callers).

``--filter KEY=VALUE[,VALUE...]`` selects the items whose KEY (a built-in column such as ``language`` or
``frequency_tier``, or a tag key) has one of the values. Values are split on ``,`` and stripped; repeating a
key adds its values (OR); different keys AND. So ``--filter domain=math,physics --filter language=en`` and
``--filter domain=math --filter domain=physics --filter language=en`` select the same items. A value cannot
hold a comma. Spec files (``adt sample --spec``, ``adt round``) give lists instead: ``include: {domain:
[math, physics]}``.

The result, ``{key: [values]}``, is what ``Bank.items`` / ``Bank.stats`` / ``Bank.responses`` take and what
a form spec holds (``FormSpec.include``); the rooms never see the flag text.
"""

from __future__ import annotations

from collections.abc import Iterable

from adtbase.errors import InputError


def parse_filters(texts: Iterable[str]) -> dict[str, list[str]]:
    """``["KEY=V1,V2", ...]`` -> ``{KEY: [V1, V2]}`` (keys in first-seen order, values deduplicated in order)."""
    out: dict[str, list[str]] = {}
    for text in texts:
        key, sep, rest = text.partition("=")
        key = key.strip()
        values = [v.strip() for v in rest.split(",") if v.strip()]
        if not sep or not key or not values:
            raise InputError(f"--filter {text!r}: expected KEY=VALUE[,VALUE...] (a key and at least one value)")
        have = out.setdefault(key, [])
        have += [v for v in values if v not in have]
    return out
