"""Pretest seeding: unscored items drawn at random and placed among a form's operational items.

The operational part is drawn first, by the spec's strategy, from the operational pool (``pool.stage_pool``:
the spec's stages, widened by the young-bank rule). Then ``seed_pretest`` draws ``spec.n_pretest`` items

- from the pretest part's slice (``FormSpec.pretest_part``: the main review states and filters, the part's
  own filters, its stages, default ``pretest``), uniformly at random within its quota cells (the
  ``stratified`` draw, its quotas met exactly; none: simple random);
- never an item already on the form (a young bank's stand-ins are operational items, not pretest ones),
  never an enemy of an item on the form (text near-duplicates, the spec's pairs, variant families), and no
  two enemies of each other;

and puts them at seeded random positions among the operational items (a model sees one list: the request
for a pretest item is the request any item gets). Two child streams of the draw's generator do this, spawned
before the operational draw, so a form with a pretest part has exactly the operational items, in the same
order, that the same spec and seed draw without one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from adtbase.errors import QuotaInfeasible

from .pool import eligible, enemy_pairs, prepare
from .spec import FormSpec
from .strategies import FormDraft, StratifiedSampler


def seed_pretest(pool: pd.DataFrame, spec: FormSpec, draft: FormDraft, draw_rng: np.random.Generator,
                 place_rng: np.random.Generator) -> FormDraft:
    """``draft`` (the operational part) with the spec's pretest items drawn (``draw_rng``) and placed among its
    items (``place_rng``); ``draft`` itself when the spec has no pretest part."""
    n = spec.n_pretest
    if n == 0:
        return draft
    part = spec.pretest_part()
    cand = eligible(pool, part)
    if "stage" in cand.columns:
        cand = cand[cand["stage"].isin(part.stages or ())]
    else:  # a pool without stages has no pretest items
        cand = cand.iloc[:0]
    on_form = set(draft.item_ids)
    cand = cand[~cand["item_id"].isin(on_form)]
    cand = cand[~cand["item_id"].isin(_enemies_of(pool, spec, draft.item_ids, cand))].reset_index(drop=True)
    where = f"the pretest part ({n} items)"
    if len(cand) < n:
        raise QuotaInfeasible(f"form spec is infeasible: {where}: only {len(cand)} eligible pretest items (stages "
                              f"{', '.join(part.stages or ())}, not on the form, no enemy of an item on it)")
    flat = part.with_(stages=None)  # the stages are applied above: no young-bank widening for this part
    try:
        prep = prepare(cand, flat, size=n)
        pick = StratifiedSampler().sample_prepared(prep, flat, draw_rng)
    except QuotaInfeasible as exc:
        raise QuotaInfeasible(f"{where}: {exc}") from None
    size = len(draft.item_ids) + n
    slots = np.zeros(size, dtype=bool)
    slots[place_rng.choice(size, n, replace=False)] = True
    ops, pts = iter(draft.item_ids), iter(pick.item_ids)
    order = tuple(next(pts) if s else next(ops) for s in slots)
    diag = {**draft.diagnostics, "n_pretest": n, "n_eligible_pretest": len(cand)}
    return replace(draft, item_ids=order, pretest_ids=pick.item_ids, diagnostics=diag)


def _enemies_of(pool: pd.DataFrame, spec: FormSpec, form_ids: tuple[str, ...], cand: pd.DataFrame) -> set[str]:
    """Candidates that are enemies of an item on the form (the pool's enemy rule over form items and candidates)."""
    both = pool[pool["item_id"].isin(set(form_ids) | set(cand["item_id"]))]
    both = both.sort_values("item_id", kind="stable").reset_index(drop=True)
    ids = both["item_id"].to_numpy(dtype=object)
    on_form = np.isin(ids, list(form_ids))
    out = set()
    for i, j in enemy_pairs(both, spec, ids):
        if on_form[i] != on_form[j]:
            out.add(str(ids[j] if on_form[i] else ids[i]))
    return out
