"""Strategies on a bank of real MMLU-Pro + CMMLU items: exact quotas, feasibility, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError, QuotaInfeasible
from sampler import REGISTRY, FormSpec, get_sampler, prepare, violations
from sampler.enemies import find_enemy_pairs
from sampler.strategies import MilpSampler

SPEC = {
    "size": 400,
    "quotas": {"language": {"zh": 0.6, "en": 0.4},
               "domain": {"math": 0.2, "law": 0.15, "physics": 0.15},
               "frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5}},
    "seed": 11,
    "options": {"n_gen": 25, "pop_size": 30},
}
EXPECTED = {"language": {"zh": 240, "en": 160},
            "domain": {"math": 80, "law": 60, "physics": 60, "(other)": 200},
            "frequency_tier": {"high": 40, "medium": 160, "low": 200}}


@pytest.fixture(scope="module")
def pool(bank_pool: pd.DataFrame) -> pd.DataFrame:
    # A slice of the real bank keeps the module fast: 3,000 items per language.
    rng = np.random.default_rng(5)
    parts = [g.iloc[np.sort(rng.choice(len(g), 3000, replace=False))] for _, g in bank_pool.groupby("language")]
    out = pd.concat(parts, ignore_index=True)
    # Two earlier published forms; round 7 may reuse at most 20% of round 6.
    return out


@pytest.fixture(scope="module")
def round6(pool: pd.DataFrame) -> list[str]:
    eligible = pool[pool.review_state != "retired"]
    return eligible.item_id.sample(1500, random_state=1).tolist()


@pytest.fixture(scope="module")
def spec(round6: list[str]) -> FormSpec:
    return FormSpec.from_dict({**SPEC, "overlap": [{"form": "round6", "max_fraction": 0.2}]},
                              earlier_forms={"round6": round6})


@pytest.fixture(scope="module")
def prep(pool, spec):
    return prepare(pool, spec)


def _check_cells(pool: pd.DataFrame, draft, spec: FormSpec, round6: list[str]) -> None:
    """Independent of the sampler's own bookkeeping: read tags straight from the pool frame."""
    form = pool.set_index("item_id").loc[list(draft.item_ids)]
    assert len(form) == 400 and form.index.is_unique
    assert set(form.review_state) <= set(spec.review_states)
    for key, want in EXPECTED.items():
        listed = set(spec.quotas[[q.key for q in spec.quotas].index(key)].as_dict())
        got = form[key].where(form[key].isin(listed), "(other)").value_counts().to_dict()
        assert {k: got.get(k, 0) for k in want} == want, key
    # every cell of the cross-classification is within its capacity
    elig = pool[pool.review_state.isin(spec.review_states)]
    cap = elig.groupby(["language", "domain", "frequency_tier"]).size()
    used = form.groupby(["language", "domain", "frequency_tier"]).size()
    assert (used <= cap.reindex(used.index)).all()
    assert len(set(draft.item_ids) & set(round6)) <= 80


@pytest.mark.parametrize("strategy", ["stratified", "milp", "nsga2"])
def test_three_key_quotas_are_exact_in_every_cell(pool, spec, prep, round6, strategy):
    draft = get_sampler(strategy).sample_prepared(prep, spec.with_(strategy=strategy))
    _check_cells(pool, draft, spec, round6)
    pos = {i: k for k, i in enumerate(prep.item_ids)}
    assert violations(prep, spec, np.array([pos[i] for i in draft.item_ids])) == []
    assert draft.n_uncalibrated == 400  # no parameters in this pool: every item at its prior


def test_infeasible_spec_names_the_starving_cells(pool):
    # 90% Chinese and half math: CMMLU has too few math items, so the math marginal starves.
    spec = FormSpec.from_dict({"size": 2000, "quotas": {"language": {"zh": 0.9, "en": 0.1},
                                                         "domain": {"math": 0.5}}})
    with pytest.raises(QuotaInfeasible) as e:
        get_sampler("stratified").sample(pool, spec, np.random.default_rng(0))
    msg = str(e.value)
    assert "quota domain=math: required 1000" in msg
    assert "{language=zh, domain=math} has" in msg and "{language=en, domain=math} has" in msg


def test_same_spec_and_seed_give_the_same_items_in_any_row_order(pool, spec):
    # (The form's content hash is the stored one, adt.workflow.forms.content_hash: tests/adt/test_sample_cli.py.)
    s = spec.with_(strategy="stratified")
    a = get_sampler("stratified").sample(pool, s)
    b = get_sampler("stratified").sample(pool.sample(frac=1.0, random_state=3), s)  # bank row order irrelevant
    assert a.item_ids == b.item_ids and a.seed == b.seed == s.seed
    c = get_sampler("stratified").sample(pool, s.with_(seed=12))
    assert c.item_ids != a.item_ids


def test_nsga2_is_deterministic_and_its_whole_pareto_set_is_feasible(prep, spec):
    s = spec.with_(strategy="nsga2")
    a = get_sampler("nsga2").sample_prepared(prep, s)
    b = get_sampler("nsga2").sample_prepared(prep, s)
    assert a.item_ids == b.item_ids and a.objectives == b.objectives
    d = a.diagnostics
    assert d["generations"] == 25 and d["pareto_size"] >= 1
    assert d["hypervolume"] > d["hypervolume_first_population"]
    pos = {i: k for k, i in enumerate(prep.item_ids)}
    for form in d["pareto_set"]:
        assert violations(prep, spec, np.array([pos[i] for i in form])) == []
    # information-only pick beats a random stratified form's information
    strat = get_sampler("stratified").sample_prepared(prep, spec.with_(strategy="stratified"))
    assert max(o["information"] for o in d["pareto_objectives"]) > strat.objectives["information"]


@pytest.mark.parametrize("strategy", sorted(REGISTRY))
def test_contract_of_every_registered_strategy(pool, spec, strategy):
    s = spec.with_(strategy=strategy, size=None if strategy == "all" else 400,
                   quotas=() if strategy == "all" else spec.quotas)
    sampler = get_sampler(strategy)
    draft = sampler.sample(pool, s, np.random.default_rng(1))
    assert draft.strategy == strategy and len(set(draft.item_ids)) == len(draft.item_ids)
    assert s.review_states == ("approved",)          # the default: drafts wait for their reviewer
    eligible = set(pool.item_id[pool.review_state.isin(s.review_states)])
    assert set(draft.item_ids) <= eligible
    for key in ("information", "novelty", "exposure_peak", "coverage"):
        assert np.isfinite(draft.objectives[key])
    prep = prepare(pool, s)
    pos = {i: k for k, i in enumerate(prep.item_ids)}
    assert violations(prep, s, np.array([pos[i] for i in draft.item_ids]), quotas=sampler.meets_quotas) == []
    if strategy == "all":
        assert len(draft.item_ids) == len(eligible) - draft.diagnostics["dropped_enemies"]
    again = sampler.sample(pool, s, np.random.default_rng(1))
    assert again.item_ids == draft.item_ids


def test_unknown_strategy_suggests_the_closest():
    with pytest.raises(InputError, match="did you mean 'nsga2'"):
        get_sampler("nsga")


def test_a_strategy_plugs_in_with_one_decorator(pool, spec, monkeypatch):
    """A strategy is one class and @register_sampler: get_sampler and sample_form then draw with it."""
    monkeypatch.setattr("sampler.strategies.REGISTRY", dict(REGISTRY))
    from sampler import Sampler, register_sampler, sample_form
    from sampler.strategies import REGISTRY as live

    @register_sampler
    class FirstItems(Sampler):
        name = "first"

        def _select(self, prep, spec, rng):
            return np.arange(spec.size), {}

    assert live["first"] is FirstItems and isinstance(get_sampler("first"), FirstItems)
    draft = sample_form(pool, spec.with_(strategy="first", quotas=()))
    assert draft.strategy == "first" and len(draft.item_ids) == spec.size
    with pytest.raises(InputError, match="already registered"):
        register_sampler(type("Other", (Sampler,), {"name": "first", "_select": FirstItems._select}))
    with pytest.raises(InputError, match="not a Sampler"):
        register_sampler(int)


def test_module_mode_filters_one_domain(pool):
    spec = FormSpec.from_cli(filters={"domain": ["math"]}, strategy="all")
    draft = get_sampler("all").sample(pool, spec)
    form = pool.set_index("item_id").loc[list(draft.item_ids)]
    assert set(form.domain) == {"math"} and set(form.review_state) <= {"approved", "draft"}


def test_milp_is_optimal_on_a_tiny_case_by_brute_force():
    rng = np.random.default_rng(4)
    n = 14
    pool = pd.DataFrame({"item_id": [f"i{k:02d}" for k in range(n)],
                         "language": ["zh", "en"] * 7, "domain": list("aabbc" * 3)[:n],
                         "question": [f"question number {k} about topic {k * 7}" for k in range(n)],
                         "a": rng.lognormal(0, 0.5, n), "b": rng.normal(0, 1, n), "c": 0.0, "d": 1.0,
                         "n_choices": 4, "review_state": "approved"})
    earlier = ["i00", "i01", "i02", "i03", "i05"]
    spec = FormSpec.from_dict({"size": 5, "quotas": {"language": {"zh": 3, "en": 2}, "domain": {"a": 2}},
                               "enemy_pairs": [["i01", "i03"], ["i04", "i06"]], "enemy_threshold": None,
                               "overlap": [{"form": "r", "max_fraction": 0.2, "item_ids": earlier}],
                               "theta_grid": [-0.5, 0.5]})
    prep = prepare(pool, spec)
    best = -np.inf
    for combo in itertools.combinations(range(n), 5):
        if not violations(prep, spec, np.array(combo)):
            best = max(best, prep.weight[list(combo)].sum())
    draft = MilpSampler().sample(pool, spec)
    assert draft.objectives["information"] == pytest.approx(best, rel=1e-9)


def test_enemy_detection_finds_near_duplicates_only():
    base = ["What is the capital city of France and why was it chosen historically?",
            "Compute the derivative of x squared plus three x with respect to x.",
            "下列鸭品种中，产蛋量最高的品种是哪一个品种呢"]
    texts = base + ["What is the capital city of France, and why was it chosen historically ?",
                    "下列鸭品种中，产蛋量最高的品种是哪一个品种",
                    "Name the largest planet in the solar system and its number of moons."]
    pairs = {tuple(p) for p in find_enemy_pairs(texts, 0.8)}
    assert pairs == {(0, 3), (2, 4)}
