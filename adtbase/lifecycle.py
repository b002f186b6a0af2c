"""Item stages: the one definition of an approved item's place in its life, apart from its review state.

``pretest -> operational -> rested -> operational ...``, and at the end ``retired``.

- **pretest**: approved but not calibrated on the bank's scale yet. A form may carry pretest items
  (``FormSpec.pretest``); they are administered and stored like any other, but never scored.
  Every new item enters as pretest (an import, a generated item, an edit: a new id has no calibration).
- **operational**: calibrated; forms score it.
- **rested**: operational but kept out of forms until a round (``until_round``), to let its exposure cool.
- **retired**: the end of its life. Retirement keeps living in the review column (``Bank.retire``,
  review state ``retired``, the event kind ``retired``) because stored forms rebuild from that column's
  history; the items frame's ``stage`` column shows it as ``retired``.

Banks made before stages existed were migrated (itembank migration 003): items with a calibrated
difficulty became operational, the others pretest.

A young bank (too few operational items to fill a form's operational part: too few in all, or a quota cell or
an overlap limit the operational items cannot meet) lets pretest items stand in as operational items, scored
at their best parameters (those the pool carries: calibrated, else a content prior where the caller supplies
one, else the sampler's generic prior); the form records how many did (``n_stand_in``) and ``adt sample`` says
"N of M scored items are uncalibrated stand-ins (young bank)". Operational items come first: only the fewest
pretest items that let the pool fill the form join it (each short quota cell's shortfall first, in a seeded
order, not by the strategy's objective); every pretest item joins, and the strategy chooses, where the bank has
no operational item at all, for a form without a size, or where enemies make the least pool infeasible. A form's pretest part never
takes a stand-in. This rule lives in ``sampler`` (``sampler.pool.stage_pool``, used by ``prepare``).
"""

from __future__ import annotations

PRETEST, OPERATIONAL, RESTED, RETIRED = "pretest", "operational", "rested", "retired"
STAGES = (PRETEST, OPERATIONAL, RESTED, RETIRED)     # what the items frame's ``stage`` column holds
SET_STAGES = (PRETEST, OPERATIONAL, RESTED)          # what ``Bank.set_stage`` writes (retire: ``Bank.retire``)
SCORED = (OPERATIONAL,)                              # stages a form scores by default
STAGE_EVENT = "stage"                                # history event kind of a move
# The moves the lifecycle (or an operator) may make; setting the stage an item already has is no move.
TRANSITIONS = {PRETEST: (OPERATIONAL,), OPERATIONAL: (RESTED, PRETEST), RESTED: (OPERATIONAL, PRETEST)}


def stage_problem(item: str, old: str, new: str) -> str | None:
    """Why ``item`` cannot go from stage ``old`` to ``new`` (None when it can, or when nothing changes)."""
    if new not in SET_STAGES:
        hint = " (retire items with `adt bank retire` or `adt bank lifecycle`)" if new == RETIRED else ""
        return f"stage {new!r}: use one of {', '.join(SET_STAGES)}{hint}"
    if old == new:
        return None
    if old == RETIRED:
        return f"{item} is retired: reinstate it first (`adt review reopen`)"
    if new not in TRANSITIONS.get(old, ()):
        return f"{item} is {old}: it can go to {' or '.join(TRANSITIONS[old])} only"
    return None
