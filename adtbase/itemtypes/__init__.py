"""Item types: one file per type, one registry (see ``base`` for the contract, ``registry`` for lookup).

Lives in ``adtbase`` because both ``itembank`` (import validation, canonical keys) and ``runners``
(templates, extraction, scoring, runner modes) read the types, and neither room may import the other.
"""

from adtbase.itemtypes.base import ItemType
from adtbase.itemtypes.registry import (
    all_types,
    for_scoring_kind,
    get,
    is_registered,
    names,
    register,
    scoring_kinds,
    unregister,
)

__all__ = ["ItemType", "all_types", "for_scoring_kind", "get", "is_registered", "names", "register",
           "scoring_kinds", "unregister"]
