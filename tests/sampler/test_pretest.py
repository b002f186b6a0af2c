"""Pretest seeding and the young-bank rule in the sampler (``sampler.pretest``, ``sampler.pool.stage_pool``).

A pool frame of 300 items: 180 operational, 120 pretest, tagged by domain (math / law / history, in turns) and
calibrated at random; no bank (tests/adt/test_pretest_cli.py meets the same rules through the CLI).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError, QuotaInfeasible
from sampler import FormSpec, get_sampler

DOMAINS = ("math", "law", "history")
N, N_OP = 300, 180
QUOTAS = {"domain": {"math": 0.5, "law": 0.3, "history": 0.2}}


def make_pool(n_op: int = N_OP, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "item_id": [f"it_{k:04d}" for k in range(N)],
        "question": [f"question {k}: " + " ".join(rng.choice(list("abcdefghijklmnop"), 12)) for k in range(N)],
        "review_state": "approved", "stage": ["operational" if k < n_op else "pretest" for k in range(N)],
        "domain": [DOMAINS[k % 3] for k in range(N)], "n_choices": 4,
        "a": np.exp(rng.normal(0, 0.3, N)), "b": rng.normal(0, 1, N), "c": 0.0, "d": 1.0})


def spec(**over) -> FormSpec:
    return FormSpec.from_dict({"size": 60, "seed": 4, "quotas": QUOTAS, "enemy_threshold": None, **over})


@pytest.mark.parametrize("strategy", ["stratified", "milp", "random"])
def test_pretest_part_leaves_the_operational_part_as_drawn_without_it(strategy: str) -> None:
    pool = make_pool()
    with_pt = get_sampler(strategy).sample(pool, spec(strategy=strategy, pretest={"share": 0.1}))
    without = get_sampler(strategy).sample(pool, spec(strategy=strategy, size=54))
    assert len(with_pt.item_ids) == 60 and len(with_pt.pretest_ids) == 6 and len(set(with_pt.item_ids)) == 60
    scored = [i for i in with_pt.item_ids if i not in set(with_pt.pretest_ids)]
    assert scored == list(without.item_ids)          # the same items in the same order
    stage = pool.set_index("item_id")["stage"]
    assert set(stage[list(with_pt.pretest_ids)]) == {"pretest"} and set(stage[scored]) == {"operational"}
    assert with_pt.n_stand_in == 0 and with_pt.n_uncalibrated == 0


def test_quotas_hold_exactly_for_the_operational_part_and_the_pretest_quotas_for_the_pretest_part() -> None:
    pool = make_pool()
    s = spec(pretest={"count": 9, "quotas": {"domain": {"math": 2, "law": 7}}})
    draft = get_sampler("stratified").sample(pool, s)
    dom = pool.set_index("item_id")["domain"]
    scored = [i for i in draft.item_ids if i not in set(draft.pretest_ids)]
    # 51 scored items: 0.5 / 0.3 / 0.2 by largest remainder -> 25.5, 15.3, 10.2 -> 26, 15, 10 (the fractions
    # are of the operational part, not of the 60 items).
    assert Counter(dom[scored]) == {"math": 26, "law": 15, "history": 10}
    assert Counter(dom[list(draft.pretest_ids)]) == {"math": 2, "law": 7}


def test_pretest_positions_are_interleaved_and_fixed_by_the_seed() -> None:
    pool = make_pool()
    pos = {}
    for seed in (4, 4, 5):
        d = get_sampler("stratified").sample(pool, spec(seed=seed, pretest={"share": 0.1}))
        pos.setdefault(seed, []).append(sorted(d.item_ids.index(p) for p in d.pretest_ids))
    assert pos[4][0] == pos[4][1] != pos[5][0]
    for p in (pos[4][0], pos[5][0]):
        assert p != list(range(54, 60)) and min(p) < 54   # not all at the end


def test_pretest_items_are_never_enemies_of_the_form_nor_of_each_other() -> None:
    pool = make_pool()
    pretest = [f"it_{k:04d}" for k in range(N_OP, N)]
    # One pretest item is an enemy of every operational item: it can never join. Two others are enemies of each
    # other: at most one of them. Keep a pretest pool of 8 for 6 places, so the rule decides the draw.
    keep = set(pretest[:8])
    small = pool[(pool["stage"] == "operational") | pool["item_id"].isin(keep)]
    pairs = [[pretest[0], f"it_{k:04d}"] for k in range(N_OP)] + [[pretest[1], pretest[2]]]
    d = get_sampler("stratified").sample(small, spec(pretest={"count": 6}, enemy_pairs=pairs))
    assert pretest[0] not in d.pretest_ids
    assert not {pretest[1], pretest[2]} <= set(d.pretest_ids)
    assert set(d.pretest_ids) == keep - {pretest[0]} - ({pretest[1]} if pretest[2] in d.pretest_ids else {pretest[2]})
    # A variant family is an enemy pair whatever the text: a pretest variant of a scored item stays off.
    fam = small.assign(parent_item_id=None)
    scored = [i for i in d.item_ids if i not in set(d.pretest_ids)]
    fam.loc[fam["item_id"] == pretest[3], "parent_item_id"] = scored[0]
    again = get_sampler("stratified").sample(fam, spec(pretest={"count": 6}, enemy_pairs=pairs[-1:]))
    assert scored[0] in again.item_ids and pretest[3] not in again.pretest_ids


def test_young_bank_stand_ins_are_counted_and_only_when_needed() -> None:
    young = get_sampler("stratified").sample(make_pool(n_op=0), spec())
    assert young.n_stand_in == 60                               # no operational item: every scored item stands in
    grown = get_sampler("stratified").sample(make_pool(), spec())
    assert grown.n_stand_in == 0
    # 40 operational items (14 math, 13 law, 13 history) cannot fill 60 (30 / 18 / 12): pretest items join, only
    # as many as the cells lack (16 math, 5 law), and the form counts how many it scores.
    partial = make_pool(n_op=40)
    stage = partial.set_index("item_id")["stage"]
    for strategy in ("stratified", "milp"):
        d = get_sampler(strategy).sample(partial, spec(strategy=strategy))
        assert d.n_stand_in == int((stage[list(d.item_ids)] == "pretest").sum()) == 21
    # Without quotas: the 20 items 40 operational ones lack.
    assert get_sampler("random").sample(partial, spec(strategy="random", quotas={})).n_stand_in == 20
    # Enough operational items (130) but a quota cell short (5 operational history items where 0.2 x 60 = 12 are
    # wanted): the cell's shortage widens the pool too.
    short = make_pool()
    short.loc[(short["domain"] == "history") & (short.index < 165), "stage"] = "pretest"
    d = get_sampler("stratified").sample(short, spec())
    dom = short.set_index("item_id")["domain"]
    assert Counter(dom[list(d.item_ids)])["history"] == 12 and d.n_stand_in == 7


def test_a_young_banks_pretest_part_never_takes_a_stand_in() -> None:
    pool = make_pool(n_op=0)
    d = get_sampler("stratified").sample(pool, spec(pretest={"share": 0.1}))
    assert d.n_stand_in == 54 and len(d.pretest_ids) == 6
    assert len(set(d.item_ids)) == 60 and set(d.pretest_ids) <= set(d.item_ids)


def test_impossible_pretest_parts_are_named() -> None:
    pool = make_pool()
    with pytest.raises(QuotaInfeasible, match=r"pretest part .*domain=history"):
        get_sampler("stratified").sample(pool, spec(pretest={"count": 50, "quotas": {"domain": {"history": 45}}}))
    with pytest.raises(QuotaInfeasible, match=r"pretest part \(59 items\): only 50 eligible pretest items"):
        get_sampler("stratified").sample(make_pool(n_op=250), spec(pretest={"count": 59}))
    with pytest.raises(InputError, match=r"'pretest.count': 60 pretest items leave no operational item"):
        spec(pretest={"count": 60})
    with pytest.raises(InputError, match=r"'pretest.share': expected a fraction in \[0, 1\]"):
        spec(pretest={"share": 1.5})
    with pytest.raises(InputError, match=r"'pretest': give one of 'count'"):
        spec(pretest={"count": 3, "share": 0.1})
    with pytest.raises(InputError, match=r"'stages': retired items are never eligible"):
        spec(stages=["retired"])


def test_spec_round_trip_and_the_legacy_reading() -> None:
    s = spec(pretest={"share": 0.1, "include": {"domain": ["math"]}})
    d = s.to_dict()
    assert d["stages"] == ["operational"] and d["pretest"]["share"] == 0.1
    assert FormSpec.from_dict(d) == s and FormSpec.from_stored(d) == s
    legacy = {k: v for k, v in spec().to_dict().items() if k not in ("stages", "pretest")}
    old = FormSpec.from_stored(legacy)
    assert old.stages is None and old.to_dict() == legacy
    # No stage rule: a legacy spec draws from every stage, as before stages existed.
    draft = get_sampler("stratified").sample(make_pool(n_op=0), old)
    assert draft.n_stand_in == 0 and len(draft.item_ids) == 60


def test_enemies_among_the_fewest_stand_ins_widen_to_every_pretest_item() -> None:
    """The least widened pool ignores enemies; where they make it infeasible the draw widens to all pretest items."""
    partial = make_pool(n_op=40)
    pretest = [f"it_{k:04d}" for k in range(40, N)]
    pairs = [[pretest[k], pretest[k + 1]] for k in range(0, len(pretest), 2)]   # 60 pairs: at most one of each
    s = spec(strategy="random", quotas={}, enemy_pairs=pairs)
    from sampler import prepare
    least = prepare(partial, s)
    assert len(least) == 60 and least.stand_in is not None and int(least.stand_in.sum()) == 20
    assert least.n_enemy_pairs > 0          # so the least pool cannot give 60 items: the fallback draws this form
    d = get_sampler("random").sample(partial, s)
    on = set(d.item_ids)
    assert len(on) == 60 and not any(x in on and y in on for x, y in pairs)
    assert d.n_stand_in >= 20
