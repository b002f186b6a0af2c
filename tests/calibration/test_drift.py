"""Contamination drift: MH by exposure finds planted effects and stays near nominal on null data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from adtbase.errors import InputError
from calibration.ability import estimate_abilities
from calibration.drift import adjust_pvalues, mantel_haenszel_drift
from calibration.irt import ItemParams

N_MODELS, N_PUB, N_CLEAN = 600, 60, 40


def simulate(seed: int, boost_items: int = 0, boost: float = 0.0, cheaters: int = 0, cheat: float = 0.0,
             late_shift: float = 0.5) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """Half the models run after publication and are stronger on average (late_shift): matching on
    ability must absorb that. Planted effects: ``boost`` logits on the first ``boost_items`` published
    items for every late model; ``cheat`` logits on every published item for ``cheaters`` late models."""
    rng = np.random.default_rng(seed)
    n_items = N_PUB + N_CLEAN
    a, b = rng.lognormal(0.3, 0.3, n_items), rng.normal(0, 1, n_items)
    late = rng.random(N_MODELS) < 0.5
    theta = rng.normal(0, 1, N_MODELS) + late_shift * late
    logit = a * (theta[:, None] - b)
    exposed = np.zeros((N_MODELS, n_items), bool)
    exposed[:, :N_PUB] = late[:, None]
    logit[:, :boost_items] += boost * exposed[:, :boost_items]
    bad = np.flatnonzero(late)[:cheaters]
    logit[np.ix_(bad, np.arange(N_PUB))] += cheat
    x = (rng.random(logit.shape) < 1 / (1 + np.exp(-logit))).astype(float)
    m, j = np.nonzero(np.ones_like(x))
    models = np.array([f"m{i}" for i in range(N_MODELS)])
    df = pd.DataFrame({"model": models[m], "item": [f"i{k}" for k in j], "score": x[m, j], "exposed": exposed[m, j]})
    # Ability from the never-published items only (what a user would pass).
    clean = j >= N_PUB
    est = estimate_abilities(m[clean], j[clean], x[m, j][clean],
                             ItemParams(tuple(f"i{k}" for k in range(n_items)), a, b), n_models=N_MODELS)
    return df, pd.Series(est.theta, index=models), list(models[bad])


def test_null_data_flags_at_most_nominal_rate():
    item_rates, model_rates, bh_flags = [], [], 0
    naive_gap = []
    for seed in range(6):
        df, theta, _ = simulate(seed)
        rep = mantel_haenszel_drift(df, theta=theta, adjust="none")
        item_rates.append(rep.items["flagged"].mean())
        model_rates.append(rep.models["flagged"].mean())
        naive_gap.append((rep.items["acc_exposed"] - rep.items["acc_unexposed"]).mean())
        bh_flags += int(mantel_haenszel_drift(df, theta=theta).items["flagged"].sum())
    # Later models are stronger, so raw accuracy is higher on exposed responses everywhere...
    assert np.mean(naive_gap) > 0.05
    # ...but matched on ability, unadjusted one-sided tests at 5% flag about 5% (360 item tests,
    # 1,800 model tests; SE of the rates about 0.012 and 0.005).
    assert np.mean(item_rates) < 0.08, item_rates
    assert np.mean(model_rates) < 0.075, model_rates
    assert bh_flags <= 2  # with BH across items, the family of 60 is rarely flagged at all


def test_planted_item_contamination_is_found():
    df, theta, _ = simulate(10, boost_items=10, boost=1.0)
    rep = mantel_haenszel_drift(df, theta=theta)
    items = rep.items
    planted = [f"i{k}" for k in range(10)]
    assert items.loc[planted, "flagged"].sum() >= 9
    assert items.drop(planted)["flagged"].sum() <= 1
    assert (items.loc[planted, "mh_odds_ratio"] > 1.5).all()
    assert set(items.loc[items["flagged"], "ets_class"]) <= {"B", "C"}
    assert rep.settings["n_published"] == N_PUB and rep.settings["n_never_published"] == N_CLEAN
    # Without theta, the rest score on never-published items is the matching variable: still found.
    rest = mantel_haenszel_drift(df).items
    assert rest.loc[planted, "flagged"].sum() >= 9 and rest.drop(planted)["flagged"].sum() <= 1


def test_contaminated_models_are_found():
    df, theta, cheaters = simulate(11, cheaters=20, cheat=2.0)
    models = mantel_haenszel_drift(df, theta=theta).models
    assert models.loc[cheaters, "flagged"].mean() >= 0.7
    assert models.drop(cheaters)["flagged"].sum() <= 2
    assert (models.loc[cheaters, "excess"] > 0.1).mean() > 0.8
    assert len(models) == (df.groupby("model")["exposed"].any()).sum()  # only models with exposed answers


def test_mh_statistics_match_hand_computation():
    # Two strata, one published item, counts chosen by hand; the never-published item fixes strata.
    tables = {0: (8, 12, 14, 6), 1: (15, 5, 18, 2)}  # stratum: (ref right, ref wrong, focal right, focal wrong)
    rows = []
    for k, (a, b, c, d) in tables.items():
        for n, s, e in ((a, 1, False), (b, 0, False), (c, 1, True), (d, 0, True)):
            rows += [(f"s{k}_{e}_{s}_{i}", "pub", s, e) for i in range(n)]
    df = pd.DataFrame(rows, columns=["model", "item", "score", "exposed"])
    theta = pd.Series({m: (-1.0 if m.startswith("s0") else 1.0) for m in df["model"]})
    clean = pd.DataFrame({"model": theta.index, "item": "clean", "score": 1.0, "exposed": False})
    rep = mantel_haenszel_drift(pd.concat([df, clean], ignore_index=True), theta=theta, n_strata=2)
    r = rep.items.loc["pub"]
    num = sum(c * b / (a + b + c + d) for a, b, c, d in tables.values())
    den = sum(a * d / (a + b + c + d) for a, b, c, d in tables.values())
    obs = sum(c for _, _, c, _ in tables.values())
    exp = sum((c + d) * (a + c) / (a + b + c + d) for a, b, c, d in tables.values())
    var = sum((a + b) * (c + d) * (a + c) * (b + d) / ((a + b + c + d) ** 2 * (a + b + c + d - 1))
              for a, b, c, d in tables.values())
    stat = (abs(obs - exp) - 0.5) ** 2 / var
    assert r["mh_odds_ratio"] == pytest.approx(num / den)
    assert r["chi2"] == pytest.approx(stat)
    assert r["p_two_sided"] == pytest.approx(chi2.sf(stat, 1))
    assert r["p_easier"] == pytest.approx(chi2.sf(stat, 1) / 2)
    assert r["n_exposed"] == 40 and r["n_unexposed"] == 40


def test_adjust_pvalues_against_definitions():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    bh = adjust_pvalues(p, "bh")
    # BH: sorted p (0.01, 0.03, 0.04, 0.5) * n / rank = (0.04, 0.06, 0.0533, 0.5), then running
    # minimum from the top: (0.04, 0.0533, 0.0533, 0.5); back in the input order.
    np.testing.assert_allclose(bh[:4], [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    holm = adjust_pvalues(p, "holm")
    np.testing.assert_allclose(holm[:4], [0.04, 0.09, 0.09, 0.5])
    assert np.isnan(bh[4]) and np.isnan(holm[4])


def test_bad_input_is_reported():
    df = pd.DataFrame({"model": ["a", "b"], "item": ["x", "y"], "score": [1.0, 0.0], "exposed": [True, False]})
    with pytest.raises(InputError, match="column 'exposed'"):
        mantel_haenszel_drift(df.drop(columns="exposed"))
    with pytest.raises(InputError, match="row 1"):
        mantel_haenszel_drift(df.assign(score=[1.0, 2.0]))
    with pytest.raises(InputError, match="no response is marked exposed"):
        mantel_haenszel_drift(df.assign(exposed=False))
    with pytest.raises(InputError, match="never-published"):
        mantel_haenszel_drift(df.assign(item="x"))
    with pytest.raises(InputError, match="adjustment"):
        mantel_haenszel_drift(df, adjust="bonferroni")
    # The only exposed answer is from a model with no matching value: a clear refusal, not a KeyError deep in.
    with pytest.raises(InputError, match="no model with a matching value gave an exposed response"):
        mantel_haenszel_drift(df, theta=pd.Series({"b": 0.0}))
