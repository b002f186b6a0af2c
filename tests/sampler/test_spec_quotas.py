"""Form specs (files, dicts, parsed CLI flags) and quota arithmetic: rounding, labels, joint feasibility."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError, QuotaInfeasible
from sampler.quotas import (
    OTHER,
    build_cells,
    largest_remainder,
    quota_counts,
    quota_labels,
    solve_cell_counts,
)
from sampler.spec import FormSpec, Quota


@pytest.mark.parametrize("d, field", [
    ({"size": -3}, "size"),
    ({"size": 10, "quotas": {"language": {"zh": 0.7, "en": 30}}}, "quotas.language"),
    ({"size": 10, "quotas": {"language": {"zh": 0.8, "en": 0.3}}}, "quotas.language"),
    ({"size": 10, "quotas": {"frequency_tier": {"hgih": 0.5}}}, "quotas.frequency_tier"),
    ({"size": 10, "quotas": {"difficulty_band": {"unknown": 0.5}}}, "quotas.difficulty_band"),
    ({"size": 10, "review_states": ["approved", "retired"]}, "review_states"),
    ({"size": 10, "sise": 3}, "unknown field"),
    ({"size": 10, "overlap": [{"form": "r6", "max_fraction": 0.2}]}, "overlap"),
    ({"size": 10, "theta_range": [2, -2]}, "theta_range"),
    ({"size": 10, "seed": "x"}, "seed"),
])
def test_bad_specs_name_the_field(d, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        FormSpec.from_dict(d)


def test_yaml_cli_and_dict_agree(tmp_path):
    path = tmp_path / "round7.yaml"
    path.write_text("size: 600\nquotas:\n  language: {zh: 0.7, en: 0.3}\n  frequency_tier: {high: 0.1, medium: 0.4,"
                    " low: 0.5}\noverlap:\n  - {form: round6, max_fraction: 0.2}\nseed: 7\ntheta_range: [-1, 2]\n"
                    "theta_points: 4\n", encoding="utf-8")
    earlier = {"round6": ["a", "b"]}
    from_file = FormSpec.from_yaml(path, earlier_forms=earlier)
    from_cli = FormSpec.from_cli(size=600, quotas={"language": {"zh": 0.7, "en": 0.3},
                                                   "frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5}},
                                 max_overlap=[("round6", 0.2)], seed=7, earlier_forms=earlier,
                                 base=FormSpec(theta_grid=(-1.0, 0.0, 1.0, 2.0)))
    assert from_file.theta_grid == (-1.0, 0.0, 1.0, 2.0)
    assert from_file.canonical_json() == from_cli.canonical_json()
    assert from_file.overlap[0].max_items(600) == 120
    bad = tmp_path / "bad.yaml"
    bad.write_text("size: [1, 2\n", encoding="utf-8")
    with pytest.raises(InputError, match="bad.yaml"):
        FormSpec.from_yaml(bad)


def test_cli_filters_arrive_parsed_and_add_to_the_spec_files():
    base = FormSpec.from_dict({"include": {"domain": ["math"], "language": "en"}})
    spec = FormSpec.from_cli(filters={"domain": ["physics", "math"], "subject": ["algebra"]}, base=base)
    assert spec.include == (("domain", ("math", "physics")), ("language", ("en",)), ("subject", ("algebra",)))


def test_largest_remainder_known_cases():
    # 7 seats, thirds: floors 2,2,2; one seat left, equal remainders -> first name wins.
    assert largest_remainder({"b": 1 / 3, "a": 1 / 3, "c": 1 / 3}, 7) == {"b": 2, "a": 3, "c": 2}
    # Hamilton textbook: 10 seats, 0.42/0.35/0.23 -> exact 4.2/3.5/2.3 -> floors 4,3,2, seat to .5
    assert largest_remainder({"x": 0.42, "y": 0.35, "z": 0.23}, 10) == {"x": 4, "y": 4, "z": 2}
    counts = quota_counts(Quota("frequency_tier", (("high", 0.1), ("medium", 0.4), ("low", 0.5))), 599)
    assert sum(counts.values()) == 599 and counts[OTHER] == 0
    assert counts == {"high": 60, "medium": 240, "low": 299, OTHER: 0}
    partial = quota_counts(Quota("language", (("zh", 0.7),)), 10)
    assert partial == {"zh": 7, OTHER: 3}
    with pytest.raises(InputError, match="counts sum"):
        quota_counts(Quota("domain", (("math", 8), ("law", 5))), 10)


def test_multi_valued_tags_count_for_first_listed_value_and_unknown_band_is_other():
    q = Quota("domain", (("math", 0.5), ("law", 0.5)))
    col = pd.Series(["physics|math", "law|math", "history", None, "math"])
    assert list(quota_labels(col, q)) == ["math", "law", OTHER, OTHER, "math"]
    band = Quota("difficulty_band", (("hard", 0.5), ("easy", 0.5)))
    assert list(quota_labels(pd.Series(["hard", "unknown", "easy"]), band)) == ["hard", OTHER, "easy"]


def _toy_pool(caps: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = []
    for (lang, dom), n in caps.items():
        rows += [{"item_id": f"{lang}-{dom}-{k}", "language": lang, "domain": dom} for k in range(n)]
    return pd.DataFrame(rows)


def test_joint_infeasibility_found_by_ip_and_agrees_with_brute_force():
    # Each marginal alone is available, but zh items are nearly all law: zh 6 + math 6 of 10 cannot hold.
    caps = {("zh", "law"): 8, ("zh", "math"): 1, ("en", "math"): 9, ("en", "law"): 2}
    pool = _toy_pool(caps)
    spec = FormSpec(size=10, quotas=(Quota("language", (("zh", 6), ("en", 4))), Quota("domain", (("math", 6), ("law", 4)))))
    model = build_cells(pool, spec, 10)
    feasible = any(
        zl + zm == 6 and el + em == 4 and zm + em == 6 and zl + el == 4
        for zl, zm, el, em in itertools.product(range(9), range(2), range(3), range(10)))
    assert not feasible
    with pytest.raises(QuotaInfeasible) as e:
        solve_cell_counts(model)
    msg = str(e.value)
    assert "required" in msg and "available" in msg
    assert "language=zh, domain=math} has 1" in msg  # the starving cell is named with its capacity
    # Relax one quota: brute force and the IP agree it becomes feasible, and the counts hold.
    spec2 = FormSpec(size=10, quotas=(Quota("language", (("zh", 5), ("en", 5))), Quota("domain", (("math", 6), ("law", 4)))))
    m2 = build_cells(pool, spec2, 10)
    x = solve_cell_counts(m2)
    cells = m2.cells.assign(x=x)
    assert cells.groupby("language")["x"].sum().to_dict() == {"en": 5, "zh": 5}
    assert cells.groupby("domain")["x"].sum().to_dict() == {"law": 4, "math": 6}
    assert (x <= m2.capacity).all()


def test_overlap_limit_too_tight_is_reported():
    pool = _toy_pool({("zh", "law"): 5, ("en", "law"): 5})
    spec = FormSpec.from_dict({"size": 8, "overlap": [{"form": "r6", "max_fraction": 0.25,
                                                      "item_ids": [f"zh-law-{k}" for k in range(5)]}]})
    with pytest.raises(QuotaInfeasible, match="overlap with 'r6'"):
        solve_cell_counts(build_cells(pool, spec, 8))


def test_randomised_cell_counts_always_meet_marginals():
    rng = np.random.default_rng(3)
    caps = {(lang, dom): int(rng.integers(0, 30)) for lang in ("zh", "en", "fr") for dom in ("a", "b", "c", "d")}
    pool = _toy_pool(caps)
    spec = FormSpec(size=40, quotas=(Quota("language", (("zh", 0.5), ("en", 0.3))), Quota("domain", (("a", 0.25), ("b", 0.25)))))
    model = build_cells(pool, spec, 40)
    seen = set()
    for _ in range(10):
        x = solve_cell_counts(model, objective=rng.random(len(model.cells)))
        seen.add(tuple(x))
        c = model.cells.assign(x=x)
        by_lang = c.groupby("language")["x"].sum()
        assert by_lang["zh"] == 20 and by_lang["en"] == 12 and by_lang.get(OTHER, 0) == 8
        by_dom = c.groupby("domain")["x"].sum()
        assert by_dom["a"] == 10 and by_dom["b"] == 10 and by_dom.get(OTHER, 0) == 20
    assert len(seen) > 1  # the random objective really varies the cell counts
