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
    # An unconstrained fit of the key-flipped item's discrimination is negative; the noise item's near zero.
    # (The calibration's prior on log a keeps a > 0: the wrong key shows in the responses, as wrong_key.)
    a0, a1 = fitted_a(rs, theta, 0), fitted_a(rs, theta, 1)
    assert a0 < -0.5 and abs(a1) < 0.25
    recal = ItemParams(params.item_ids, np.r_[0.05, abs(a1), params.a[2:]], params.b)
    flags = flag_items(recal, fit=fit)
    by_item = flags.groupby("item_id")["flag"].apply(set)
    assert {"wrong_key", "low_discrimination", "outfit_misfit"} <= by_item["it0"]
    assert {"low_discrimination", "infit_misfit"} <= by_item["it1"] and "wrong_key" not in by_item["it1"]
    assert set(by_item.index) == {"it0", "it1"}  # no false alarms on the 28 good items
    reason = flags.loc[flags["flag"] == "wrong_key", "reason"].iloc[0]
    assert "wrong answer key" in reason and f"n = {fit.loc['it0', 'n']} models" in reason and "BH-adjusted" in reason
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
    # near-zero discrimination plus the wrong-key test's evidence; good items raise nothing.
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
    assert {"low_discrimination", "wrong_key"} <= set(flags.loc[flags["item_id"] == "q0", "flag"])
    key_flags = flags[flags["flag"].isin(["low_discrimination", "wrong_key"])]
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


# ------------------------------------------------------------------------------------------------ the wrong-key rule
def test_reversal_test_is_exact_and_calibrated_for_few_models():
    """The one-sided rank test's p agrees with scipy's exact Mann-Whitney and is uniform-or-conservative
    under the null with 20-35 models (an anti-conservative test would reject well above 5%)."""
    from scipy.stats import mannwhitneyu

    from calibration.fit import reversal_test

    rng = np.random.default_rng(41)
    n_items = 4000
    n = rng.integers(20, 36, n_items)
    j = np.repeat(np.arange(n_items), n)
    theta = rng.normal(0, 1, j.size)
    score = (rng.random(j.size) < rng.uniform(0.1, 0.9, n_items)[j]).astype(float)  # unrelated to ability
    out = reversal_test(j, score, theta, n_items)
    p = out["p_reversed"]
    for i in range(5):
        sel = j == i
        ref = mannwhitneyu(theta[sel][score[sel] == 1], theta[sel][score[sel] == 0], alternative="less",
                           method="exact").pvalue
        assert p[i] == pytest.approx(ref, rel=1e-9)
    ok = np.isfinite(p) & (out["n_right"] >= 3) & (out["n_wrong"] >= 3)
    rate = float(np.mean(p[ok] < 0.05))
    assert 0.035 < rate <= 0.055  # nominal 5% (a discrete exact test sits at or a little below it)
    assert 0.45 < float(np.mean(p[ok])) < 0.56


@pytest.fixture(scope="module")
def small_bank():
    """30 models (a real bank's size), 600 items: 434 clean 2PL items, 150 unrelated to ability (a = 0: the
    null's boundary), 10 reversed (a wrong key), 6 answered right by one model only; one reversed item has
    no objective key. Calibrated with the EM fitter (prior on log a: every fitted a stays positive)."""
    from calibration.mml import fit_mml

    rng = np.random.default_rng(42)
    n_models, n_clean, n_null, n_rev, n_one = 30, 434, 150, 10, 6
    n_items = n_clean + n_null + n_rev + n_one
    theta = rng.normal(0, 1, n_models)
    a = np.r_[rng.lognormal(0.2, 0.3, n_clean), np.zeros(n_null), np.full(n_rev, -2.5)]
    b = np.r_[rng.normal(0, 1, n_clean), rng.normal(0, 0.5, n_null), np.zeros(n_rev)]
    x = (rng.random((n_models, n_clean + n_null + n_rev)) < prob(theta[:, None], a, b)).astype(float)
    one = np.zeros((n_models, n_one))
    one[np.argmin(theta), :] = 1.0  # only the weakest model got these right: the strongest evidence one answer gives
    x = np.c_[x, one]
    ids = [f"q{k}" for k in range(n_items)]
    m, jj = np.nonzero(np.ones_like(x, dtype=bool))
    rs = ResponseSet.from_arrays(m, jj, x[m, jj], [f"m{i}" for i in range(n_models)], ids)
    res = fit_mml(rs, "2pl", rng=rng)
    fit = item_fit(rs, res.params, res.theta)
    keyed = np.ones(n_items, bool)
    keyed[n_clean + n_null + n_rev - 1] = False
    groups = {"clean": ids[:n_clean], "null": ids[n_clean:n_clean + n_null],
              "reversed": ids[n_clean + n_null:n_clean + n_null + n_rev], "one_right": ids[-n_one:]}
    return res, fit, keyed, groups


def test_planted_reversed_items_are_flagged_with_their_evidence(small_bank):
    res, fit, keyed, groups = small_bank
    assert (res.params.a > 0).all()  # the prior: a negative discrimination can never show
    flags = flag_items(res.params, fit=fit, item_status=res.item_status, keyed=keyed)
    wrong = flags[flags["flag"] == "wrong_key"].set_index("item_id")
    keyed_rev, unkeyed_rev = groups["reversed"][:-1], groups["reversed"][-1]
    # 30 models and BH over ~590 tested items: strong reversals are flagged, the weakest may fall short.
    strong = [k for k in keyed_rev if fit.loc[k, "p_reversed"] < 1e-3]
    assert len(strong) >= 6 and set(strong) <= set(wrong.index)
    assert set(wrong.index) <= set(keyed_rev)  # and nothing else
    assert unkeyed_rev not in wrong.index  # no objective key: nothing to call wrong
    assert fit.loc[unkeyed_rev, "p_reversed"] < 1e-3  # though the evidence is there
    assert (wrong["value"] < 0.05).all() and (wrong["threshold"] == 0.05).all()
    reason = wrong.loc[strong[0], "reason"]
    assert "n = 30 models" in reason and "rank test p =" in reason and "BH-adjusted over" in reason


def test_clean_bank_false_flags_at_the_nominal_rate(small_bank):
    res, fit, keyed, groups = small_bank
    flags = flag_items(res.params, fit=fit, item_status=res.item_status, keyed=keyed)
    wrong = set(flags.loc[flags["flag"] == "wrong_key", "item_id"])
    # Clean 2PL items (positive a): far inside the null, essentially never flagged.
    assert not wrong & set(groups["clean"])
    # Items unrelated to ability sit on the null's boundary: their raw one-sided p is about uniform, so about
    # 5% fall below 0.05 (abilities come from the same responses; a test that ignored that or leaned on
    # normal theory with 25 models would miss this band) ...
    null = fit.loc[groups["null"]]
    tested = null[(null["n_right"] >= 3) & (null["n_wrong"] >= 3)]
    assert len(tested) > 100
    assert 0.01 <= float(np.mean(tested["p_reversed"] < 0.05)) <= 0.10
    # ... and after the Benjamini-Hochberg adjustment at most a stray one of them is flagged.
    assert len(wrong & set(groups["null"])) <= 2
    # Unadjusted, the rule would flag about 5% of them: the adjustment is what keeps the list short.
    raw = flag_items(res.params, fit=fit, item_status=res.item_status, keyed=keyed, adjust="none")
    raw_null = set(raw.loc[raw["flag"] == "wrong_key", "item_id"]) & set(groups["null"])
    assert 0.01 * len(tested) <= len(raw_null) <= 0.10 * len(tested)


def test_an_item_one_model_got_right_is_not_flagged(small_bank):
    res, fit, keyed, groups = small_bank
    one = fit.loc[groups["one_right"]]
    assert (one["n_right"] == 1).all() and (one["rank_biserial"] == -1).all()  # the weakest model, every time
    np.testing.assert_allclose(one["p_reversed"], 1 / 30)  # the smallest p one right answer of 30 can reach
    for kw in ({}, {"adjust": "none", "alpha": 0.5}):  # not even without adjustment at a lax level
        flags = flag_items(res.params, fit=fit, item_status=res.item_status, keyed=keyed, **kw)
        assert not set(flags.loc[flags["flag"] == "wrong_key", "item_id"]) & set(groups["one_right"])
    # the old rule (any negative score-ability correlation) flagged every one of them
    assert (one["r_theta"] < 0).all()
