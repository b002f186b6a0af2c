"""Item fit and flags: mean squares near 1 when the model fits, broken items flagged with reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from adtbase.errors import InputError
from calibration.ability import estimate_abilities
from calibration.data import ResponseSet
from calibration.fit import flag_items, item_fit, parameter_drift
from calibration.irt import ItemParams, prob

N_MODELS, N_ITEMS = 1200, 30


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(31)
    ids = tuple(f"it{j}" for j in range(N_ITEMS))
    params = ItemParams(ids, rng.lognormal(0.3, 0.3, N_ITEMS), rng.normal(0, 1, N_ITEMS))
    theta = rng.normal(0, 1, N_MODELS)
    x = (rng.random((N_MODELS, N_ITEMS)) < prob(theta[:, None], params.a, params.b)).astype(float)
    x[:, 0] = 1 - x[:, 0]  # item 0 scored against the wrong key
    x[:, 1] = (rng.random(N_MODELS) < 0.5).astype(float)  # item 1: pure noise, unrelated to ability
    keep = rng.random(x.shape) < 0.7  # sparse: 30% missing
    m, j = np.nonzero(keep)
    rs = ResponseSet.from_arrays(m, j, x[m, j], [f"m{i}" for i in range(N_MODELS)], ids)
    return params, theta, rs


def fitted_a(rs: ResponseSet, theta: np.ndarray, item: int) -> float:
    """Stand-in for a calibrated discrimination: ML logistic regression of the item's scores on theta."""
    sel = rs.item_idx == item
    t, s = theta[rs.model_idx[sel]], rs.score[sel]

    def nll(v: np.ndarray) -> float:
        p = np.clip(prob(t, v[0], v[1]), 1e-12, 1 - 1e-12)
        return float(-(s * np.log(p) + (1 - s) * np.log1p(-p)).sum())

    return float(optimize.minimize(nll, np.array([0.5, 0.0]), method="Nelder-Mead").x[0])


def test_mean_squares_near_one_when_model_fits(world):
    params, theta, rs = world
    good = np.arange(2, N_ITEMS)
    with_truth = item_fit(rs, params, theta)
    assert with_truth["infit"].iloc[good].between(0.9, 1.1).all()
    # Outfit is noisier (unweighted: one surprise on an extreme item weighs a lot); judge it by t.
    assert with_truth["outfit"].iloc[good].median() == pytest.approx(1.0, abs=0.05)
    assert (with_truth["outfit_t"].iloc[good].abs() < 3.5).all()
    # Under the true model the t statistics are roughly standard normal.
    assert abs(with_truth["infit_t"].iloc[good].mean()) < 0.6
    assert 0.5 < with_truth["infit_t"].iloc[good].std() < 1.6
    np.testing.assert_allclose(with_truth["mean_score"].iloc[good], with_truth["expected_score"].iloc[good],
                               atol=0.05)
    # With EAP abilities from the same sparse responses (~21 items a model) the residuals are partly
    # fitted away: mean squares sit below 1 (about 0.9 here), never above the truth's.
    eap = estimate_abilities(rs.model_idx, rs.item_idx, rs.score, params, n_models=N_MODELS).theta
    with_eap = item_fit(rs, params, eap)
    assert with_eap["infit"].iloc[good].between(0.75, 1.15).all()
    assert 0.82 < with_eap["infit"].iloc[good].median() < with_truth["infit"].iloc[good].median()


def test_broken_items_stand_out_and_are_flagged(world):
    params, theta, rs = world
    fit = item_fit(rs, params, theta)
    assert fit.loc["it0", "r_theta"] < -0.3
    assert fit.loc["it0", "outfit"] > 2 and fit.loc["it1", "infit"] > 1.3
    # The key-flipped item's fitted discrimination is negative; the noise item's is near zero.
    a0, a1 = fitted_a(rs, theta, 0), fitted_a(rs, theta, 1)
    assert a0 < -0.5 and abs(a1) < 0.25
    recal = ItemParams(params.item_ids, np.r_[a0, a1, params.a[2:]], params.b)
    flags = flag_items(recal, fit=fit)
    by_item = flags.groupby("item_id")["flag"].apply(set)
    assert {"negative_discrimination", "negative_r_theta", "outfit_misfit"} <= by_item["it0"]
    assert {"low_discrimination", "infit_misfit"} <= by_item["it1"]
    assert set(by_item.index) == {"it0", "it1"}  # no false alarms on the 28 good items
    assert "wrong answer key" in flags.loc[flags["flag"] == "negative_discrimination", "reason"].iloc[0]
    assert list(flags.columns) == ["item_id", "flag", "value", "threshold", "reason"]


def test_status_flags_and_prior_items_not_judged():
    params = ItemParams(("x", "y", "z", "w"), np.array([1.0, -0.5, 0.1, 1.0]), np.zeros(4))
    status = np.array(["calibrated", "all_correct", "unanswered", "all_wrong"])
    flags = flag_items(params, item_status=status)
    assert set(zip(flags["item_id"], flags["flag"], strict=True)) == {
        ("y", "all_correct"), ("z", "unanswered"), ("w", "all_wrong")}
    with pytest.raises(InputError, match="item_status"):
        flag_items(params, item_status=status[:2])


def test_status_from_fit_without_item_status():
    params = ItemParams(("x", "y", "z"), np.ones(3), np.zeros(3))
    rs = ResponseSet.from_arrays(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 0.0, 1.0]),
                                 ["m0", "m1"], ["x", "y", "z"])
    fit = item_fit(rs, params, np.array([0.0, 0.5]))
    assert fit.loc["z", "n"] == 0 and np.isnan(fit.loc["z", "infit"])
    flags = flag_items(params, fit=fit)
    assert set(zip(flags["item_id"], flags["flag"], strict=True)) >= {("x", "all_correct"), ("z", "unanswered")}


def test_parameter_drift_z_and_flag():
    rng = np.random.default_rng(32)
    n = 200
    ids = tuple(f"i{k}" for k in range(n))
    a, b = rng.lognormal(0, 0.3, n), rng.normal(0, 1, n)
    se = {"a": np.full(n, 0.1), "b": np.full(n, 0.1)}
    # The new calibration re-estimates each item with its SE; items 0-2 really moved (b + 1).
    new_b = b + rng.normal(0, np.sqrt(2) * 0.1, n)
    new_b[:3] += 1.0
    old = ItemParams(ids, a, b)
    new = ItemParams(ids[::-1], (a + rng.normal(0, np.sqrt(2) * 0.1, n))[::-1], new_b[::-1])
    se_new = {k: v[::-1] for k, v in se.items()}
    drift = parameter_drift(old, se, new, se_new, z_crit=3.0)
    assert set(drift.index[drift["moved"]]) >= {"i0", "i1", "i2"}
    assert drift["moved"].sum() <= 5  # false alarms at |z| > 3: about 0.5% of 2 x 200 tests
    assert drift.loc["i0", "z_b"] == pytest.approx((new_b[0] - b[0]) / (np.sqrt(2) * 0.1))
    assert 0.8 < drift["z_b"].drop(["i0", "i1", "i2"]).std() < 1.2  # z is standard normal for unmoved items
    flags = flag_items(old, drift=drift)
    assert {"i0", "i1", "i2"} <= set(flags.loc[flags["flag"] == "parameter_moved", "item_id"])
    with pytest.raises(InputError, match="'c'"):
        parameter_drift(old, se, new, se_new, names=("c",))


def test_item_fit_input_errors(world):
    params, theta, rs = world
    with pytest.raises(InputError, match="one ability per model"):
        item_fit(rs, params, theta[:10])
    with pytest.raises(InputError, match="no parameters"):
        item_fit(rs, params.subset(np.arange(5)), theta)
    with pytest.raises(InputError, match="ResponseSet"):
        item_fit(pd.DataFrame(), params, theta)


def test_flipped_key_flagged_after_real_calibration():
    # End to end with the EM fitter: its lognormal prior keeps a > 0, so a key-flipped item shows as a
    # near-zero discrimination plus a negative score-ability correlation; good items raise nothing.
    from calibration.mml import fit_mml, simulate_responses

    rng = np.random.default_rng(33)
    n_items = 20
    params = ItemParams(tuple(f"q{j}" for j in range(n_items)), rng.lognormal(0.3, 0.3, n_items),
                        rng.normal(0, 1, n_items))
    rs = simulate_responses(params, rng.normal(0, 1, 800), rng, missing=0.2)
    flipped = np.where(rs.item_idx == 0, 1 - rs.score, rs.score)
    rs = ResponseSet(rs.model_idx, rs.item_idx, flipped, rs.model_ids, rs.item_ids)
    res = fit_mml(rs, "2pl", rng=rng)
    fit = item_fit(rs, res.params, res.theta)
    flags = flag_items(res.params, fit=fit, item_status=res.item_status)
    assert {"low_discrimination", "negative_r_theta"} <= set(flags.loc[flags["item_id"] == "q0", "flag"])
    key_flags = flags[flags["flag"].isin(["negative_discrimination", "low_discrimination", "negative_r_theta"])]
    assert set(key_flags["item_id"]) == {"q0"}
    good = fit.drop("q0")
    assert good["infit"].between(0.8, 1.2).all()


def test_lord_wingersky_matches_enumeration():
    import itertools

    from calibration.fit import lord_wingersky

    rng = np.random.default_rng(34)
    p = rng.uniform(0.05, 0.95, (3, 6))
    dist = lord_wingersky(p)
    for q in range(3):
        brute = np.zeros(7)
        for pattern in itertools.product([0, 1], repeat=6):
            x = np.array(pattern)
            brute[x.sum()] += np.prod(np.where(x == 1, p[q], 1 - p[q]))
        np.testing.assert_allclose(dist[q], brute, atol=1e-14)


def test_s_x2_calibrated_under_fit_and_finds_guessing_misfit():
    from calibration.fit import s_x2
    from calibration.mml import simulate_responses

    rng = np.random.default_rng(35)
    n_items = 20
    c = np.zeros(n_items)
    c[0] = 0.35  # item 0 really has guessing; the parameters we test claim it has none
    true = ItemParams(tuple(f"q{j}" for j in range(n_items)), rng.lognormal(0.3, 0.3, n_items),
                      rng.normal(0, 1, n_items), c)
    claimed = ItemParams(true.item_ids, true.a, true.b)
    nodes = np.linspace(-6, 6, 121)
    weights = np.exp(-nodes**2 / 2)
    pvals = []
    for _ in range(3):
        rs = simulate_responses(true, rng.normal(0, 1, 2000), rng)
        res = s_x2(rs, claimed, nodes, weights, n_item_params=0)  # true parameters: nothing estimated
        assert res.loc["q0", "p"] < 1e-4
        pvals.append(res["p"].iloc[1:].to_numpy())
    p = np.concatenate(pvals)
    assert np.mean(p < 0.05) < 0.12  # 57 fitting items: about 5% expected
    assert 0.35 < np.mean(p) < 0.65  # roughly uniform
    with pytest.raises(InputError, match="answered all"):
        s_x2(rs.subset(np.arange(rs.n_obs) % 3 > 0), claimed, nodes, weights)
