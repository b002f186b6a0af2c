"""calibration.judges: the position rule, per-judge statistics, kappa against scikit-learn, the rater model on a
hand-computed tiny case and on seeded simulations with known reliabilities and biases, routing, and the
real LLMBar figures the issue quotes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax
from sklearn.metrics import cohen_kappa_score

from calibration import judges


def frame(rows: list[tuple[str, str, str, float]], n_levels: int = 2) -> pd.DataFrame:
    """A judgments frame from (item_id, judge, order, verdict) rows."""
    return pd.DataFrame({"run_id": "", "item_id": [r[0] for r in rows], "judge": [r[1] for r in rows],
                         "template_id": "t@1", "order": [r[2] for r in rows], "verdict": [r[3] for r in rows],
                         "n_levels": n_levels})


def simulate(rng: np.random.Generator, n: int, eta: np.ndarray, beta: np.ndarray, prior: float = 0.5
             ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cases with a true class (P(class 1) = prior), a length difference, and judges answering by the rater
    model's own formula: eta[j, o, k, l] logits per order o (ab, ba), beta[j] the length slope."""
    truth = (rng.random(n) < prior).astype(int)
    diff = rng.normal(0, 100, n)
    x = np.tanh(diff / diff.std())
    s = np.array([-1.0, 1.0])
    rows = []
    for j in range(eta.shape[0]):
        for o, order in enumerate(("ab", "ba")):
            logits = eta[j, o][truth] + beta[j] * s[None, :] * x[:, None]
            p = softmax(logits, axis=1)
            level = (rng.random(n) < p[:, 1]).astype(float)
            rows += [(f"c{i}", f"j{j}", order, level[i]) for i in range(n)]
    gold = pd.DataFrame({"run_id": "", "item_id": [f"c{i}" for i in range(n)], "label": truth.astype(float)})
    lengths = pd.DataFrame({"run_id": "", "item_id": gold["item_id"], "len_candidate": 1000 + diff / 2,
                            "len_baseline": 1000 - diff / 2})
    return frame(rows), gold, lengths


def logit_confusion(p_correct_0: float, p_correct_1: float) -> np.ndarray:
    """eta for a K=2, L=2 confusion with P(level k | class k) given."""
    return np.log(np.array([[p_correct_0, 1 - p_correct_0], [1 - p_correct_1, p_correct_1]]))


def test_combine_orders_rule() -> None:
    c, inc = judges.combine_orders([1.0, 1.0, 0.0, np.nan, np.nan, 0.5], [1.0, 0.0, 0.0, 1.0, np.nan, 1.0])
    np.testing.assert_allclose(c, [1.0, 0.5, 0.0, 1.0, np.nan, 0.5])  # differing orders: a tie
    assert inc.tolist() == [False, True, False, False, False, True]


def test_kappa_matches_sklearn(rng: np.random.Generator) -> None:
    a = rng.integers(0, 3, 400)
    b = np.where(rng.random(400) < 0.6, a, rng.integers(0, 3, 400))
    for w in (None, "linear", "quadratic"):
        assert judges.cohen_kappa(a / 2, b / 2, w) == pytest.approx(cohen_kappa_score(a, b, weights=w), abs=1e-12)


def test_judge_stats_by_hand(rng: np.random.Generator) -> None:
    # Judge "first" always picks the answer shown first; judge "good" is right in both orders.
    gold = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "label": [1.0, 0.0, 1.0, 0.0]})
    rows = [(i, "first", "ab", 1.0) for i in "abcd"] + [(i, "first", "ba", 0.0) for i in "abcd"]
    rows += [(i, "good", o, g) for i, g in zip("abcd", gold["label"], strict=True) for o in ("ab", "ba")]
    rows.append(("a", "good", "", np.nan))  # an unparseable pointwise call is counted, not guessed
    lengths = pd.DataFrame({"item_id": list("abcd"), "len_candidate": [10, 30, 10, 30], "len_baseline": [20] * 4})
    st = judges.judge_stats(frame(rows), rng, gold=gold, lengths=lengths, n_boot=50).set_index("rater")
    f, g = st.loc["first"], st.loc["good"]
    assert f["first_pref"] == 1.0 and f["consistency"] == 0.0 and f["acc"] == 0.5
    assert f["acc_ab"] == 0.5 and f["acc_ba"] == 0.5
    assert g["acc"] == 1.0 and g["consistency"] == 1.0 and g["first_pref"] == 0.5 and g["kappa"] == 1.0
    # The candidate is longer in b and d, where gold prefers the baseline: gold picks the longer answer never.
    assert g["gold_longer"] == 0.0 and g["longer_pref"] == 0.0 and f["longer_pref"] == 0.5
    assert g["n_unparseable"] == 1 and f["n_unparseable"] == 0
    assert 0 < g["acc_lo"] < 1.0 == g["acc_hi"]  # a Wilson interval, not a point


def test_bad_frames_name_rows_and_fields() -> None:
    bad = frame([("a", "j", "ab", 1.0), ("b", "j", "xy", 2.0)])
    with pytest.raises(Exception, match=r"row 1: field 'verdict'.*row 1: field 'order'"):
        judges.check_judgments(bad)
    with pytest.raises(Exception, match=r"row 1: field 'label'.*row 2: case \(''\, 'a'\) labelled twice"):
        judges.check_gold(pd.DataFrame({"item_id": ["a", "b", "a"], "label": [1, "x", 0]}))


def test_rater_model_hand_computed_tiny_case() -> None:
    # One judge, one order, six labelled cases: with alpha = 1 the confusion is Laplace-smoothed counts.
    gold = pd.DataFrame({"item_id": list("abcdef"), "label": [1, 1, 1, 0, 0, 0]})
    says = [1, 1, 0, 0, 0, 1]
    rows = [(i, "j", "", float(v)) for i, v in zip("abcdef", says, strict=True)]
    rows += [(i, "k", "", float(v)) for i, v in zip("abcdef", [1, 0, 1, 0, 0, 0], strict=True)]
    vd = judges.verdicts(frame(rows))
    m = judges.RaterModel(n_classes=2, length=False, orders="pooled").fit(vd, judges.align(vd.cases, gold, "label"))
    # class 1: says 1 twice of 3 -> (2 + 1) / (3 + 2); class 0: says 0 twice of 3 -> 3/5.
    np.testing.assert_allclose(m.confusion("j", ""), [[3 / 5, 2 / 5], [2 / 5, 3 / 5]], atol=0.01)
    np.testing.assert_allclose(m.confusion("k", ""), [[4 / 5, 1 / 5], [2 / 5, 3 / 5]], atol=0.01)
    # A new case where j says 1 and k says 0: prior 1/2 (ridge-smoothed), posterior by Bayes' rule by hand.
    new = judges.verdicts(frame([("z", "j", "", 1.0), ("z", "k", "", 0.0)]))
    p1 = 0.5 * (3 / 5) * (2 / 5)
    p0 = 0.5 * (2 / 5) * (4 / 5)
    assert m.predict_proba(new)[0, 1] == pytest.approx(p1 / (p0 + p1), abs=0.01)


def test_rater_model_recovers_known_reliabilities_and_biases(rng: np.random.Generator) -> None:
    # j0: accurate, no bias; j1: picks the first shown more (position bias: differs by order); j2: length bias.
    eta = np.stack([np.stack([logit_confusion(0.85, 0.85)] * 2),
                    np.stack([logit_confusion(0.60, 0.90), logit_confusion(0.90, 0.60)]),
                    np.stack([logit_confusion(0.70, 0.70)] * 2)])
    beta = np.array([0.0, 0.0, 1.5])
    jf, gold, lengths = simulate(rng, 4000, eta, beta)
    vd = judges.verdicts(jf)
    diff = judges.align(vd.cases, lengths, "len_candidate") - judges.align(vd.cases, lengths, "len_baseline")
    g = judges.align(vd.cases, gold, "label")
    m = judges.RaterModel(n_classes=2).fit(vd, g, diff)
    for j, (want_ab, want_ba) in enumerate([((0.85, 0.85), (0.85, 0.85)), ((0.60, 0.90), (0.90, 0.60)),
                                            ((0.70, 0.70), (0.70, 0.70))]):
        for order, want in (("ab", want_ab), ("ba", want_ba)):
            got = np.diag(m.confusion(f"j{j}", order))
            np.testing.assert_allclose(got, want, atol=0.04, err_msg=f"j{j} {order}")
    assert m.beta_[2] == pytest.approx(1.5, abs=0.3)
    assert abs(m.beta_[0]) < 0.3 and abs(m.beta_[1]) < 0.3
    # Semi-supervised: 400 labels, the rest by EM, recovers the same within a wider tolerance.
    g_part = np.where(np.arange(len(g)) < 400, g, np.nan)
    m2 = judges.RaterModel(n_classes=2).fit(vd, g_part, diff)
    np.testing.assert_allclose(np.diag(m2.confusion("j1", "ab")), (0.60, 0.90), atol=0.06)
    assert m2.beta_[2] == pytest.approx(1.5, abs=0.4)


def test_panel_beats_vote_and_is_calibrated_when_judges_are_independent(rng: np.random.Generator) -> None:
    eta = np.stack([np.stack([logit_confusion(p, p)] * 2) for p in (0.8, 0.65, 0.6, 0.6, 0.55)])
    jf, gold, lengths = simulate(rng, 1500, eta, np.zeros(5))
    vd = judges.verdicts(jf)
    g = judges.align(vd.cases, gold, "label")
    res = judges.cross_validate(vd, g, 2, rng, folds=5, model={"length": False}, calibrate=False)
    assert res["rm_credit"].mean() > res["majority_credit"].mean() + 0.02
    assert res["rm_credit"].mean() >= res["best_credit"].mean()
    bins = judges.reliability_bins(res["confidence"], res["rm_credit"])
    at90 = bins[bins["bin"] == "0.85-0.95"].iloc[0]
    assert at90["n"] > 100 and 0.84 <= at90["accuracy"] <= 0.96
    assert judges.expected_calibration_error(res["confidence"], res["rm_credit"]) < 0.04


def test_unsupervised_one_coin_recovers_independent_accuracies(rng: np.random.Generator) -> None:
    eta = np.stack([np.stack([logit_confusion(p, p)] * 2) for p in (0.9, 0.75, 0.6)])
    jf, _, _ = simulate(rng, 3000, eta, np.zeros(3))
    oc = judges.one_coin_ds(judges.verdicts(jf), 2)
    np.testing.assert_allclose(oc.accuracy, (0.9, 0.75, 0.6), atol=0.03)


def test_routing_takes_least_confident_and_gains_more_than_random(rng: np.random.Generator) -> None:
    conf = np.array([0.99, 0.51, 0.9, 0.55, 0.97, 0.6, 0.95, 0.8, 0.99, 0.7])
    sent = judges.route(conf, 0.2)
    assert np.flatnonzero(sent).tolist() == [1, 3]
    right = np.array([1, 0, 1, 0, 1, 1, 1, 1, 1, 0], dtype=float)
    gain = judges.routing_gain(right, sent, rng, n_random=500)
    assert gain["acc_none"] == 0.7 and gain["acc_routed"] == 0.9
    assert gain["acc_random"] == pytest.approx(0.7 + 0.2 * 0.3, abs=0.01)  # expected random gain
    assert judges.route(np.array([0.5, 0.9, 0.1]), 0.3, "threshold").tolist() == [True, False, False]
    with pytest.raises(Exception, match="routing rule"):
        judges.route(conf, 0.1, "loudest")


def test_length_controlled_score_removes_a_planted_length_preference(rng: np.random.Generator) -> None:
    diff = rng.normal(0, 200, 3000)
    x = np.tanh(diff / diff.std())
    # A judge that is 50/50 at equal length but prefers the longer answer, on a set where the candidate is
    # usually longer: raw score well above 0.5, the length-controlled one near 0.5.
    diff = diff + 150
    x = np.tanh(diff / diff.std())
    v = (rng.random(3000) < 1 / (1 + np.exp(-2.0 * x))).astype(float)
    lc = judges.length_controlled(v, diff, rng, n_boot=100, scale=float(diff.std()))
    assert lc["raw"] > 0.6
    assert lc["lc"] == pytest.approx(0.5, abs=0.04)
    assert lc["lc_lo"] < 0.5 < lc["lc_hi"] and lc["slope"] == pytest.approx(2.0, abs=0.3)


def test_model_round_trips_through_dict(rng: np.random.Generator) -> None:
    eta = np.stack([np.stack([logit_confusion(0.8, 0.7)] * 2)] * 3)
    jf, gold, lengths = simulate(rng, 300, eta, np.array([0.0, 1.0, 0.0]))
    vd = judges.verdicts(jf)
    diff = judges.align(vd.cases, lengths, "len_candidate") - judges.align(vd.cases, lengths, "len_baseline")
    m = judges.RaterModel(n_classes=2, n_types=2, temperature=0.7).fit(vd, judges.align(vd.cases, gold, "label"), diff)
    back = judges.RaterModel.from_dict(m.to_dict())
    np.testing.assert_allclose(back.predict_proba(vd, diff), m.predict_proba(vd, diff), atol=1e-12)


LLMBAR_JUDGES = ("GPT-4", "Falcon", "LLaMA2")


def llmbar_vanilla(root) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    inst = pd.read_parquet(root / "judges" / "llmbar" / "instances.parquet")
    jd = pd.read_parquet(root / "judges" / "llmbar" / "judgments.parquet")
    jd = jd[(jd["strategy"] == "Vanilla") & jd["judge"].isin(LLMBAR_JUDGES)]
    ids = inst["subset"] + "#" + inst["idx"].astype(str)
    jid = (jd["subset"] + "#" + jd["idx"].astype(str)).to_numpy()
    to_v = {1: 1.0, 2: 0.0}
    parts = [pd.DataFrame({"run_id": "", "item_id": jid, "judge": jd["judge"].to_numpy(), "template_id": "vanilla",
                           "order": order, "verdict": jd[col].astype("float").map(to_v).to_numpy(), "n_levels": 2})
             for order, col in (("ab", "winner_order_orig"), ("ba", "winner_order_swapped"))]
    gold = pd.DataFrame({"item_id": ids, "label": inst["label"].map(to_v)})
    lengths = pd.DataFrame({"item_id": ids, "len_candidate": inst["output_1"].str.len(),
                            "len_baseline": inst["output_2"].str.len()})
    return pd.concat(parts, ignore_index=True), gold, lengths


def test_llmbar_figures_the_issue_quotes(shared_data, rng: np.random.Generator) -> None:
    jf, gold, lengths = llmbar_vanilla(shared_data)
    st = judges.judge_stats(jf, rng, gold=gold, lengths=lengths, n_boot=50).set_index("rater")
    assert st["n_gold"].min() >= 730
    assert st.loc["GPT-4", "acc_ab"] == pytest.approx(0.75, abs=0.01)
    assert st.loc["GPT-4", "first_pref"] == pytest.approx(0.51, abs=0.02)
    assert st.loc["Falcon", "first_pref"] == pytest.approx(0.78, abs=0.01)
    assert 0.62 <= st.loc["LLaMA2", "longer_pref"] <= 0.71
    assert st.loc["LLaMA2", "gold_longer"] == pytest.approx(0.33, abs=0.02)
