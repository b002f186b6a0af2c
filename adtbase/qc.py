"""Quality-control vocabulary, defined once: the checks ``adt qc`` runs and the flags they set.

Each check records one "qc" event per item (``Bank.record_qc``); an item's current flags are the union of the
flags of its latest event per check (``Bank.qc_flags``). The review page and ``adt review list --flag`` filter
on these names; ``adt qc`` is the only writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCHEMA = "schema"
NEAR_DUPLICATE = "near_duplicate"
LEAKAGE = "leakage"
SOLVERS = "solvers"
CHECKS: tuple[str, ...] = (SCHEMA, NEAR_DUPLICATE, LEAKAGE, SOLVERS)

# flag -> what it means (shown by `adt qc --help` and the review page)
FLAGS: dict[str, str] = {
    "schema_error": "the item breaks a format rule (choices not distinct, key not among them, too long, "
                    "language not as tagged)",
    "near_duplicate": "an exact or near copy of another item in the bank or in the same batch",
    "leak": "a near copy of an item imported from a public source",
    "key_suspect": "strong solvers agree on an answer other than the key",
    "ambiguous": "solvers split between two or more answers",
    "trivial": "every solver, weak ones included, answered correctly",
}


def current_flags(checks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """An item's flags now: the union of the flags of its latest event per check (``Bank.qc_flags``'s value for
    the item), sorted."""
    return sorted({str(f) for check in checks.values() for f in check.get("flags", ())})
