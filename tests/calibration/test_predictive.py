"""calibration.predictive: recovery of whole-bank accuracy from short forms on seeded simulations, the
interval's sources, extreme items predicted (not dropped), person fit, extrapolation, paired comparison."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from calibration import Prior, ResponseSet, fit_mml
from calibration.irt import ItemParams
from calibration.predictive import (
    PredictiveModel,
    build_predictive,
    compare,
    exact_view,
    form_unlikeness,
    predict,
)
from calibration.store import item_statuses

N_ITEMS, N_CAL = 600, 60


def _truth_params(rng: np.random.Generator, n: int = N_ITEMS) -> ItemParams:
    return ItemParams(tuple(f"i{k}" for k in range(n)), np.exp(rng.normal(0.1, 0.35, n)), rng.normal(0.0, 1.2, n))


def _answers(params: ItemParams, theta: float, rng: np.random.Generator) -> NDArrayF:
    return (rng.random(len(params)) < expit(params.a * (theta - params.b))).astype(float)


NDArrayF = np.ndarray


def _build(params: ItemParams, theta: np.ndarray, rng: np.random.Generator, *, kill: int = 0,
           compute_se: bool = True) -> tuple[PredictiveModel, Any]:
    y = np.stack([_answers(params, t, rng) for t in theta])
    if kill:
        y[:, :kill] = 0.0        # the first `kill` items: every calibration model wrong (very hard items)
    m, j = np.nonzero(np.ones_like(y, bool))
    rs = ResponseSet.from_frame(pd.DataFrame({"model": [f"m{k}" for k in m], "item_id": [params.item_ids[k] for k in j],
                                              "score": y[m, j]}), "model", "item_id", "score",
                                item_ids=list(params.item_ids))
    res = fit_mml(rs, "2pl", rng=rng, compute_se=compute_se, warn=False)
    se = res.se if compute_se else {k: np.full(len(params), np.nan) for k in "abcd"}
    pm = build_predictive(res.params, se, item_statuses(res), theta=res.theta, model_ids=res.model_ids,
                          model_idx=rs.model_idx, item_idx=rs.item_idx, score=rs.score, response_item_ids=rs.item_ids,
                          prior=Prior.from_calibration(res), settings=res.settings, irt_model="2pl")
    return pm, res


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    rng = np.random.default_rng(20261205)
    params = _truth_params(rng)
    params.b[:15] = rng.uniform(4.5, 6.0, 15)   # truly hard items: every calibration model fails them
    theta = rng.normal(0.0, 1.0, N_CAL)
    pm, res = _build(params, theta, rng, kill=15)
    return {"params": params, "pm": pm, "res": res}


def test_recovery_of_whole_bank_accuracy_from_random_forms(world: dict[str, Any]) -> None:
    """New models from the calibration population, 60-item random forms: the prediction beats the raw
    form accuracy and the 95% interval covers the accuracy on every item about 95% of the time."""
    rng = np.random.default_rng(7)
    params, pm = world["params"], world["pm"]
    # the same prediction with the true item parameters: the best a calibration could do
    oracle = replace(pm, params=params, se_a=0 * pm.se_a, se_b=0 * pm.se_b, misfit_sd=0.0)
    ids = np.array(params.item_ids)
    err, raw_err, oracle_err, hits, n = [], [], [], 0, 160
    draw_rng = np.random.default_rng(8)   # the parameter draws' own stream: the simulated sample stays fixed
    for _ in range(n):
        y = _answers(params, float(rng.normal(0, 1)), rng)
        form = rng.choice(N_ITEMS, 60, replace=False)
        scores = pd.Series(y[form], index=ids[form])
        p = predict(pm, scores, list(ids), n_draws=8, rng=draw_rng)
        truth = y.mean()
        err.append(abs(p.pred_acc - truth))
        raw_err.append(abs(y[form].mean() - truth))
        oracle_err.append(abs(predict(oracle, scores, list(ids), n_draws=0).pred_acc - truth))
        hits += p.pred_lo <= truth <= p.pred_hi
        assert p.covers_slice and p.n_predicted == N_ITEMS and p.n_unpredictable == 0
    print(f"MAE {np.mean(err):.4f} raw {np.mean(raw_err):.4f} true-parameter {np.mean(oracle_err):.4f}")
    assert np.mean(err) < 0.9 * np.mean(raw_err)
    assert np.mean(err) < 1.15 * np.mean(oracle_err)
    # binomial sd of a 0.95 share over 160 draws is 0.017: [0.90, 0.99] is about -3 / +2.4 sd
    assert 0.90 <= hits / n <= 0.99


def test_items_every_model_failed_are_predicted_not_dropped(world: dict[str, Any]) -> None:
    pm, res = world["pm"], world["res"]
    st = item_statuses(res)
    assert (st[:15] == "all_wrong").all()
    assert (pm.basis[:15] == "all_wrong").all() and np.isfinite(pm.params.b[:15]).all()
    # a curve that every calibration model failed is hard: below 10% for an average model
    assert (expit(pm.params.a[:15] * (0.0 - pm.params.b[:15])) < 0.10).all()
    ids = list(pm.params.item_ids)
    scores = pd.Series(np.ones(20), index=ids[100:120])
    honest = predict(pm, scores, ids)
    exact = predict(exact_view(res.params, st, pm.prior), scores, ids)
    assert honest.covers_slice and honest.slice_note == ""
    kept = int((st != "calibrated").sum())      # all wrong (15) and any all right
    assert not exact.covers_slice and exact.n_predicted == N_ITEMS - kept and str(kept) in exact.slice_note
    # the exact view leaves hard items out, so it predicts a higher accuracy for the same answers
    assert exact.pred_acc > honest.pred_acc


def test_unanswerable_items_make_the_prediction_say_so() -> None:
    rng = np.random.default_rng(3)
    params = _truth_params(rng, 80)
    pm, _ = _build(params, rng.normal(0, 1, 30), rng)
    ids = list(params.item_ids) + ["never1", "never2"]          # items no calibration model answered
    p = predict(pm, pd.Series([1.0, 0.0], index=ids[:2]), ids)
    assert p.n_slice_items == 82 and p.n_predicted == 80 and p.n_unpredictable == 2
    assert not p.covers_slice and "80 of the slice's 82" in p.as_dict()["slice_note"]


def test_interval_lists_its_sources_and_parameter_error_widens_it(world: dict[str, Any]) -> None:
    pm, res = world["pm"], world["res"]
    ids = np.array(pm.params.item_ids)
    y = _answers(world["params"], 0.3, np.random.default_rng(1))
    form = np.arange(200, 260)
    s = pd.Series(y[form], index=ids[form])
    honest = predict(pm, s, list(ids))
    exact = predict(exact_view(res.params, item_statuses(res), pm.prior), s, list(ids))
    assert any("item parameters" in x for x in honest.sources) and any("misfit" in x for x in honest.sources)
    assert not any("item parameters" in x for x in exact.sources) and exact.exact_params
    assert honest.sd_components["parameters"] > 0 and honest.sd_components["misfit"] > 0
    assert honest.pred_hi - honest.pred_lo > exact.pred_hi - exact.pred_lo
    assert honest.lo < honest.theta < honest.hi and honest.se >= exact.se


def test_missing_standard_errors_get_fisher_ones() -> None:
    rng = np.random.default_rng(11)
    params = _truth_params(rng, 120)
    pm, _ = _build(params, rng.normal(0, 1, 40), rng, compute_se=False)
    assert pm.se_source == "fisher"
    cal = pm.basis == "calibrated"
    assert (pm.se_b[cal] > 0).all() and np.isfinite(pm.se_b[cal]).all()
    assert any("Fisher" in x for x in pm.sources())


def test_shrinkage_pulls_noisy_discriminations_toward_their_mean(world: dict[str, Any]) -> None:
    pm, res = world["pm"], world["res"]
    cal = pm.basis == "calibrated"
    raw, shrunk = np.log(res.params.a[cal]), np.log(pm.params.a[cal])
    assert shrunk.std() < raw.std()
    # closer to the truth on average than the raw estimates (the point of empirical Bayes)
    true_log_a = np.log(world["params"].a[cal])
    assert np.mean((shrunk - true_log_a) ** 2) < np.mean((raw - true_log_a) ** 2)


def test_person_fit_separates_a_model_unlike_the_calibration(world: dict[str, Any]) -> None:
    """A model that answers the weakly discriminating items better than its ability says (a profile the
    calibration population lacks) gets large |z|; models drawn from the population stay near N(0, 1)."""
    rng = np.random.default_rng(5)
    params, pm = world["params"], world["pm"]
    ids = np.array(params.item_ids)
    z_fit, z_odd = [], []
    flat = params.a < np.median(params.a)
    for _ in range(40):
        theta = float(rng.normal(0, 1))
        y = _answers(params, theta, rng)
        odd = y.copy()
        odd[flat] = (rng.random(flat.sum()) < 0.85).astype(float)
        form = rng.choice(N_ITEMS, 150, replace=False)
        z_fit.append(predict(pm, pd.Series(y[form], index=ids[form]), list(ids), n_draws=0).person_fit_z)
        z_odd.append(predict(pm, pd.Series(odd[form], index=ids[form]), list(ids), n_draws=0).person_fit_z)
    assert np.mean(np.square(z_fit)) < 2.5
    assert np.mean(np.abs(z_odd)) > 2 * np.mean(np.abs(z_fit))


def test_extrapolation_flagged_beyond_the_calibration_range(world: dict[str, Any]) -> None:
    params, pm = world["params"], world["pm"]
    ids = np.array(params.item_ids)
    lo, hi = pm.theta_range
    assert lo < 0 < hi
    strong = predict(pm, pd.Series(np.ones(60), index=ids[100:160]), list(ids))
    inside = predict(pm, pd.Series(_answers(params, 0.0, np.random.default_rng(2))[100:160], index=ids[100:160]),
                     list(ids))
    assert strong.extrapolated and "above" in strong.extrapolation and strong.theta > hi
    assert not inside.extrapolated and inside.extrapolation == ""


def test_paired_comparison_covers_the_true_difference_and_is_narrower(world: dict[str, Any]) -> None:
    rng = np.random.default_rng(13)
    params, pm = world["params"], world["pm"]
    ids = np.array(params.item_ids)
    hits, n, widths = 0, 40, []
    for _ in range(n):
        ta, tb = rng.normal(0, 1, 2)
        ya, yb = _answers(params, float(ta), rng), _answers(params, float(tb), rng)
        form = rng.choice(N_ITEMS, 80, replace=False)
        c = compare(pm, pd.Series(ya[form], index=ids[form]), pd.Series(yb[form], index=ids[form]), list(ids),
                    n_draws=100, rng=rng)
        truth = ya.mean() - yb.mean()
        hits += c.acc_lo <= truth <= c.acc_hi
        assert c.paired and c.n_common == 80 and c.acc_lo <= c.diff_acc <= c.acc_hi
        pa = predict(pm, pd.Series(ya[form], index=ids[form]), list(ids))
        pb = predict(pm, pd.Series(yb[form], index=ids[form]), list(ids))
        widths.append((c.acc_hi - c.acc_lo, 2 * 1.96 * np.hypot(pa.pred_sd, pb.pred_sd)))
    assert hits / n >= 0.85
    w = np.array(widths)
    assert np.mean(w[:, 0]) < np.mean(w[:, 1])     # shared calibration error cancels in a paired comparison


def test_disjoint_forms_are_compared_through_the_calibration(world: dict[str, Any]) -> None:
    params, pm = world["params"], world["pm"]
    ids = np.array(params.item_ids)
    y = _answers(params, 0.5, np.random.default_rng(4))
    c = compare(pm, pd.Series(y[:50], index=ids[:50]), pd.Series(y[50:100], index=ids[50:100]), list(ids),
                n_draws=50)
    assert not c.paired and c.n_common == 0 and "through the calibration" in c.note
    assert c.acc_lo < 0 < c.acc_hi and c.p_acc > 0.05     # the same model on two forms: no difference


def test_sub_scores_share_the_ability_part_with_the_same_numbers(world: dict[str, Any]) -> None:
    """A model's sub-scores (adt estimate --by, the report's slices) compute its ability posterior and
    parameter draws once for every value (they depend on its answers, not the slice): each value's numbers
    are those of a predict call of its own (issue 12: the report took minutes on 20 models x 14 values)."""
    from adt.workflow.calibrate import _estimate, subscores

    rng = np.random.default_rng(3)
    params, pm = world["params"], world["pm"]
    ids = np.array(params.item_ids)
    y = _answers(params, 0.4, rng)
    form = rng.choice(N_ITEMS, 200, replace=False)
    scores = pd.Series(y[form], index=ids[form])
    groups = {f"g{k}": list(ids[k::7]) for k in range(7)}
    pos = pm.position()
    for method in ("eap", "map"):
        rows = subscores(pm, scores, groups, method=method, pos=pos)
        for row, (value, members) in zip(rows, groups.items(), strict=True):
            alone = _estimate(pm, scores, members, method, 0.95, pos)
            one = predict(pm, scores, members) if method == "eap" else None
            assert row["value"] == value and not row["refused"]
            for k in ("pred_acc", "pred_lo", "pred_hi", "n_predicted", "observed_accuracy"):
                assert row[k] == alone[k], (method, value, k)
                if one is not None:
                    assert row[k] == getattr(one, k), (value, k)
    with pytest.raises(Exception, match="other answers"):
        from calibration.predictive import evidence, predict_evidence

        shared: dict[str, Any] = {}
        predict_evidence(pm, evidence(pm, scores, list(ids)), shared=shared)
        predict_evidence(pm, evidence(pm, scores.iloc[:50], list(ids)), shared=shared)


def test_accuracy_without_the_ability_interval_is_the_same(world: dict[str, Any]) -> None:
    """theta_interval=False (the report's leaderboard and sub-scores, which show only the accuracy) gives
    the same predicted accuracy and interval, NaN for the ability's SE and interval, and makes the
    parameter draws only where the accuracy needs them (a slice with unanswered items)."""
    rng = np.random.default_rng(4)
    params, pm = world["params"], world["pm"]
    ids = np.array(params.item_ids)
    y = _answers(params, -0.3, rng)
    form = rng.choice(N_ITEMS, 150, replace=False)
    scores = pd.Series(y[form], index=ids[form])
    for slice_ids in (list(ids), list(ids[form[:40]])):  # unanswered items to predict; every item answered
        full = predict(pm, scores, slice_ids)
        shared: dict[str, Any] = {}
        lean = predict(pm, scores, slice_ids, shared=shared, theta_interval=False)
        for k in ("theta", "pred_acc", "pred_lo", "pred_hi", "pred_sd", "person_fit_z", "n_predicted"):
            assert getattr(lean, k) == getattr(full, k) or (np.isnan(getattr(full, k)) and np.isnan(getattr(lean, k)))
        assert np.isnan(lean.se) and np.isnan(lean.lo) and full.lo < full.theta < full.hi
        assert (shared["ability"]._drawn is None) == (len(slice_ids) == 40)
    # a caller's generator is drawn from as before: the same stream after the call
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    predict(pm, scores, list(ids[form[:40]]), rng=g1)
    predict(pm, scores, list(ids[form[:40]]), rng=g2, theta_interval=False)
    assert g1.random() == g2.random()


def test_a_form_unlike_the_bank_carries_the_form_misfit_and_random_forms_do_not(world: dict[str, Any]) -> None:
    """Information-targeted forms read the ability from one kind of item; the model's relative strength on
    that kind is a second misfit, added only where the answered items plainly differ from the bank's."""
    pm = replace(world["pm"], misfit_sd=0.02)
    rng = np.random.default_rng(11)
    ok = np.flatnonzero(pm.predictable)
    for size in (20, 60, 300):
        w = np.array([form_unlikeness(pm, rng.choice(ok, size, replace=False)) for _ in range(200)])
        # past the 95% critical value about one form in twenty, and then only just
        assert (w > 0).mean() <= 0.12 and w.mean() < 0.03, (size, (w > 0).mean(), w.mean())
    steep = ok[np.argsort(-pm.params.a[ok])][:60]         # what a milp form takes: the most discriminating
    hard = ok[np.argsort(-pm.params.b[ok])][:60]          # or one kind of difficulty
    assert form_unlikeness(pm, steep) == 1.0 and form_unlikeness(pm, hard) == 1.0
    ids = np.array(pm.params.item_ids)
    y = _answers(world["params"], 0.2, np.random.default_rng(2))
    targeted = predict(pm, pd.Series(y[steep], index=ids[steep]), list(ids))
    rand = rng.choice(ok, 60, replace=False)
    plain = predict(pm, pd.Series(y[rand], index=ids[rand]), list(ids))
    n_un = N_ITEMS - 60
    assert targeted.form_unlikeness == 1.0
    assert targeted.sd_components["form_misfit"] == pytest.approx(0.02 * n_un / N_ITEMS, rel=1e-9)
    assert plain.sd_components["form_misfit"] < 0.2 * targeted.sd_components["form_misfit"]
    assert any("forms unlike the bank" in x for x in targeted.sources)
    without = replace(pm, misfit_sd=0.0)
    assert predict(without, pd.Series(y[steep], index=ids[steep]), list(ids)).sd_components["form_misfit"] == 0.0
