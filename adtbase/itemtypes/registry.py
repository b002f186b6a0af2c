"""One registry of item types, resolved lazily ("package.module:Class" targets, as runners' backends).

Adding a type is one file (an ``ItemType`` subclass) plus one line in ``_TARGETS``; code outside the
package may also ``register`` a type at run time (a target or an instance). Registration order is the
order types are listed in messages.
"""

from __future__ import annotations

from adtbase.errors import InputError
from adtbase.itemtypes.base import ItemType
from adtbase.registry import check_target, did_you_mean, load_target

_TARGETS: dict[str, str | ItemType] = {
    "mc": "adtbase.itemtypes.mc:MultipleChoice",
    "open": "adtbase.itemtypes.open:OpenAnswer",
    "numeric": "adtbase.itemtypes.numeric:Numeric",
    "multi": "adtbase.itemtypes.multi:MultiSelect",
    "pairwise": "adtbase.itemtypes.pairwise:Pairwise",
}
_LOADED: dict[str, ItemType] = {}


def names() -> tuple[str, ...]:
    """Registered type names, in registration order."""
    return tuple(_TARGETS)


def register(name: str, target: str | ItemType, *, replace: bool = False) -> None:
    """Add an item type ("package.module:Class" or an instance); refuses to shadow a name unless ``replace``."""
    if isinstance(target, str):
        check_target("item type", name, target, {k: v for k, v in _TARGETS.items() if isinstance(v, str)},
                     replace=replace)
    if isinstance(target, ItemType) and target.name != name:
        raise InputError(f"item type {name!r}: the instance is named {target.name!r}")
    if name in _TARGETS and not replace and _TARGETS[name] is not target and _TARGETS[name] != target:
        raise InputError(f"item type {name!r} is already registered")
    _TARGETS[name] = target
    _LOADED.pop(name, None)


def unregister(name: str) -> None:
    """Remove a type (tests that register a toy type clean up with this)."""
    _TARGETS.pop(name, None)
    _LOADED.pop(name, None)


def is_registered(name: object) -> bool:
    return isinstance(name, str) and name in _TARGETS


def get(name: str) -> ItemType:
    """The type ``name``; an unknown name raises ``InputError`` with a did-you-mean hint."""
    hit = _LOADED.get(name)
    if hit is not None:
        return hit
    if name not in _TARGETS:
        raise InputError(f"unknown item type {name!r}{did_you_mean(str(name), _TARGETS)} "
                         f"(known: {', '.join(_TARGETS)})")
    target = _TARGETS[name]
    if isinstance(target, str):
        cls = load_target(target)
        if not (isinstance(cls, type) and issubclass(cls, ItemType)):
            raise InputError(f"item type {name!r}: {target} is not an ItemType subclass")
        target = cls()
    if target.name != name:
        raise InputError(f"item type {name!r}: {target!r} is named {target.name!r}")
    _LOADED[name] = target
    return target


def all_types() -> tuple[ItemType, ...]:
    return tuple(get(n) for n in _TARGETS)


def for_scoring_kind(kind: str) -> ItemType | None:
    """The (first registered) type whose keys are scored under ``ScoringRule.kind == kind``, if any."""
    for t in all_types():
        if t.scoring_kind == kind:
            return t
    return None


def scoring_kinds() -> tuple[str, ...]:
    """The scoring kinds the registered types declare (``scoring_kind`` and ``also_scored_as``), in
    registration order, without repeats."""
    return tuple(dict.fromkeys(k for t in all_types() for k in (t.scoring_kind, *t.also_scored_as)))
