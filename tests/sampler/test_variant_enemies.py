"""A variant and its parent (and its siblings) are enemies: no form holds two of one family.

The pool comes from a real bank (so the items frame's ``parent_item_id`` is what the sampler reads):
ten parent items, each with two shuffled variants imported with ``parent_id``. The texts of a family
are identical, but the text-similarity check is off (``enemy_threshold: None``): the family link alone
must keep them apart. A form of 10 must take exactly one item of each family.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from itembank import ImportOptions, open_bank
from itembank.variants import shuffle_options
from sampler import FormSpec, get_sampler, prepare
from sampler.pool import family_pairs


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for k in range(10):
        parent = {"item_id": f"p{k}", "item_type": "mc", "language": "en", "tags": {},
                  "question": f"Question {k}: which planet is number {k + 1} from the sun?",
                  "choices": [f"planet {k}-{j}" for j in range(4)], "answer": "ABCD"[k % 4]}
        rows.append({"id": f"p{k}", "question": parent["question"], "choices": parent["choices"],
                     "answer": parent["answer"], "type": "mc"})
        for v in range(2):
            child = shuffle_options(parent, rng)
            rows.append({"id": f"p{k}v{v}", "question": child["question"], "choices": child["choices"],
                         "answer": child["answer"], "type": "mc",
                         "origin": child["origin"], "generator": child["generator"],
                         "generator_params": child["generator_params"], "parent_id": f"p{k}"})
    path = tmp_path_factory.mktemp("variants") / "items.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bank_path = Path(path.parent) / "bank.duckdb"
    with open_bank(bank_path, create=True) as bank:
        bank.import_items([path], ImportOptions(source="fam"))
        frame = bank.items()
    return frame


def families(pool: pd.DataFrame) -> dict[str, str]:
    """item id -> family root, read straight from the frame (independent of the sampler)."""
    parent = dict(zip(pool["item_id"], pool["parent_item_id"], strict=True))
    return {i: (parent[i] if isinstance(parent[i], str) else i) for i in pool["item_id"]}


def test_the_bank_frame_carries_the_parent_link(pool):
    assert len(pool) == 30 and pool["parent_item_id"].notna().sum() == 20
    assert set(pool.loc[pool["parent_item_id"].notna(), "origin"]) == {"variant"}
    prep = prepare(pool, FormSpec.from_dict({"size": 10, "enemy_threshold": None}))
    assert prep.n_enemy_pairs == 10 * 3                          # each family of 3: 3 pairs


@pytest.mark.parametrize("strategy", ["random", "stratified", "milp", "nsga2"])
def test_a_form_never_holds_two_of_one_family(pool, strategy):
    fam = families(pool)
    assert len(set(fam.values())) == 10
    for seed in range(4 if strategy in ("random", "stratified") else 2):
        spec = FormSpec.from_dict({"size": 10, "strategy": strategy, "seed": seed, "enemy_threshold": None,
                                   "options": {"n_gen": 10, "pop_size": 12}})
        draft = get_sampler(strategy).sample(pool, spec, np.random.default_rng(seed))
        roots = [fam[i] for i in draft.item_ids]
        assert len(draft.item_ids) == 10 and len(set(roots)) == 10, (strategy, seed, roots)


def test_family_pairs_walks_chains_and_siblings():
    ids = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    parents = np.array([None, "a", "b", "zz", "zz", None], dtype=object)   # a<-b<-c chain; d, e siblings
    pairs = {tuple(sorted(p)) for p in family_pairs(ids, parents)}
    assert pairs == {(0, 1), (0, 2), (1, 2), (3, 4)}
    assert family_pairs(ids, np.array([None] * 6, dtype=object)) == []
