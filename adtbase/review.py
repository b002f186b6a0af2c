"""Review states of an item: the one definition the bank, the importer, the sampler and the CLI use.

``draft -> approved | rejected``. A draft waits for a reviewer; an approved item may enter forms; a
rejected one keeps its history and never enters a form. A decision can be taken back only by sending
the item back to ``draft`` (re-review), so every change of mind is an event of its own.

``retired`` (``adt bank retire``, ``adt bank lifecycle``) is not a review decision but the end of an item's
life. It stays in this column, where stored forms' as-of views read it; the lifecycle's other stages
(pretest / operational / rested, ``adtbase.lifecycle``) have a column of their own.

Forms draw from approved items only unless a spec asks for more (``review_states: [approved, draft]``).
A curated import may arrive approved (``adt bank import --review-state``, default approved: the
operator vouches for a benchmark they bring); generated items always arrive as drafts.
"""

from __future__ import annotations

DRAFT, APPROVED, REJECTED, RETIRED = "draft", "approved", "rejected", "retired"
DECISIONS = (DRAFT, APPROVED, REJECTED)          # what a reviewer sets
STATES = (*DECISIONS, RETIRED)                  # what an item's review_state holds
IMPORT_STATES = (DRAFT, APPROVED)               # what an import may declare
DEFAULT_IMPORT_STATE = APPROVED
ELIGIBLE_BY_DEFAULT = (APPROVED,)               # a form spec's default review_states
NEVER_ELIGIBLE = (REJECTED, RETIRED)
# The moves a reviewer may make; setting the state an item already has is no move (nothing is written).
# A retired item may be reinstated as a draft, to be reviewed again before any form takes it.
TRANSITIONS = {DRAFT: (APPROVED, REJECTED), APPROVED: (DRAFT,), REJECTED: (DRAFT,), RETIRED: (DRAFT,)}


def transition_problem(item: str, old: str, new: str) -> str | None:
    """Why ``item`` cannot go from ``old`` to ``new`` (None when it can, or when nothing changes)."""
    if new not in DECISIONS:
        return f"review state {new!r}: use one of {', '.join(DECISIONS)} (retire items with `adt bank retire`)"
    if old == new:
        return None
    if new not in TRANSITIONS.get(old, ()):
        hint = "" if old == RETIRED else " (send it back to draft first)"
        return f"{item} is {old}: it can go to {' or '.join(TRANSITIONS[old])} only{hint}"
    return None
