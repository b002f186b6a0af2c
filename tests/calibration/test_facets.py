"""The many-facet graded response model: its maths (``GradedParams``), raters in ``ResponseSet``, the
``facets`` fitter (against ``fit_mml`` on binary data, against a direct scipy maximisation written from the
formula on a tiny case, and recovery of known items and severities from seeded simulations), abilities
through ``ItemModel.loglik``, and judge verdicts turned into per-rater responses."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

from adtbase.errors import InputError
from calibration import (
    GradedParams,
    ItemParams,
    ResponseSet,
    abilities_for,
    fit_facets,
    fit_mml,
    get_fitter,
    graded_response_set,
    judged_responses,
    simulate_graded,
)
from calibration.fitters import FitSettings


def simulate(rng: np.random.Generator, n_models: int, n_binary: int, n_graded: int, k: int,
             severity: tuple[float, ...], share: float = 1.0) -> tuple[ResponseSet, GradedParams, np.ndarray]:
    """Binary 2PL items answered by every model; graded items (K levels) scored by every rater on the
    ``share`` of (model, item) cells each model answered (``simulate_graded``)."""
    theta = rng.normal(size=n_models)
    n = n_binary + n_graded
    a = np.exp(rng.normal(0.0, 0.3, n))
    t = np.full((n, k - 1), np.nan)
    t[:n_binary, 0] = rng.normal(0.0, 1.0, n_binary)
    t[n_binary:] = np.sort(rng.normal(0.0, 1.0, n_graded)[:, None] + rng.normal(0.0, 1.0, (n_graded, k - 1)), axis=1)
    levels = np.array([2] * n_binary + [k] * n_graded)
    raters = tuple(f"judge{r}" for r in range(len(severity)))
    truth = GradedParams(tuple(f"i{j}" for j in range(n)), a, t, levels, raters, np.asarray(severity))
    return simulate_graded(truth, theta, rng, share=share), truth, theta


# ------------------------------------------------------------------------------------------ the maths
def test_binary_items_are_the_2pl() -> None:
    rng = np.random.default_rng(0)
    a, b = np.exp(rng.normal(0, 0.4, 7)), rng.normal(0, 1, 7)
    ids = tuple(f"q{j}" for j in range(7))
    grm, twopl = GradedParams(ids, a, b[:, None], np.full(7, 2)), ItemParams(ids, a, b)
    theta = np.linspace(-3, 3, 13)
    assert np.allclose(grm.expected(theta), twopl.expected(theta))
    assert np.allclose(grm.information(theta), twopl.information(theta))
    s = rng.random(7)                                # fractional scores: the 2PL's fractional Bernoulli
    assert np.allclose(grm.loglik(0.3, np.arange(7), s), twopl.loglik(0.3, np.arange(7), s))
    assert np.allclose(grm.as_item_params().b, b) and grm.family == "grm"


def test_graded_levels_form_a_distribution_and_severity_lowers_scores() -> None:
    t = np.array([[-1.0, 0.2, 1.5], [0.0, 0.5, np.nan]])
    p = GradedParams(("x", "y"), np.array([1.3, 0.8]), t, np.array([4, 3]), ("easy", "hard"), np.array([-0.4, 0.4]))
    theta = np.linspace(-4, 4, 9)[:, None]
    for j, k in ((0, 4), (1, 3)):
        total = sum(np.exp(p.loglik(theta, np.full(1, j), np.full(1, lev / (k - 1)))) for lev in range(k))
        assert np.allclose(total, 1.0)
    e = p.expected(np.linspace(-3, 3, 7))
    assert np.all(np.diff(e, axis=0) > 0)            # monotone in ability
    low = p.loglik(0.0, np.array([0, 0]), np.array([0.0, 0.0]), np.array([0, 1]))
    assert low[1] > low[0]                           # a low score is likelier from the severe judge
    # information = Fisher information of the level distribution (numerically)
    th, h = 0.4, 1e-5
    lev = np.arange(4) / 3
    lp = [p.loglik(th + d, np.zeros(4, int), lev) for d in (-h, 0.0, h)]
    fisher = float(np.sum(np.exp(lp[1]) * ((lp[2] - lp[0]) / (2 * h)) ** 2))
    assert math.isclose(p.information(th)[0, 0], fisher, rel_tol=1e-4)
    assert set(p.columns()) == {"a", "b1", "b2", "b3"} and np.isnan(p.columns()["b3"][1])


# ------------------------------------------------------------------------------------------ response sets
def test_response_set_without_raters_is_unchanged() -> None:
    df = pd.DataFrame({"model": ["m", "m", "n"], "item_id": ["i", "i", "i"], "score": [1.0, 0.0, 1.0]})
    rs = ResponseSet.from_frame(df)
    assert rs.rater_idx is None and rs.rater_ids == () and not rs.has_raters
    assert list(rs.score) == [0.5, 1.0] and list(rs.to_frame().columns) == ["model", "item_id", "score"]
    with pytest.raises(InputError, match="duplicate"):
        ResponseSet(np.array([0, 0]), np.array([0, 0]), np.array([1.0, 0.0]), ("m",), ("i",))


def test_raters_make_one_response_per_judge() -> None:
    df = pd.DataFrame({"model": ["m", "m", "m", "m"], "item_id": ["i", "i", "i", "j"],
                       "score": [1.0, 0.5, 0.0, 1.0], "rater": ["A", "B", "A", ""]})
    rs = ResponseSet.from_frame(df, rater_col="rater")
    assert rs.rater_ids == ("A", "B") and rs.has_raters and rs.n_obs == 3
    got = rs.to_frame().sort_values(["item_id", "rater"]).to_dict("records")
    assert got == [{"model": "m", "item_id": "i", "score": 0.5, "rater": "A"},      # A's two verdicts: mean
                   {"model": "m", "item_id": "i", "score": 0.5, "rater": "B"},
                   {"model": "m", "item_id": "j", "score": 1.0, "rater": ""}]
    with pytest.raises(InputError, match="rater 'A'"):
        ResponseSet(np.array([0, 0]), np.array([0, 0]), np.array([1.0, 0.0]), ("m",), ("i",), np.array([0, 0]), ("A",))
    with pytest.raises(InputError, match="rater_idx 2 outside"):
        ResponseSet(np.array([0]), np.array([0]), np.array([1.0]), ("m",), ("i",), np.array([2]), ("A",))
    with pytest.raises(InputError, match="facets"):
        abilities_for(rs, ItemParams(("i", "j"), np.ones(2), np.zeros(2)))


# ------------------------------------------------------------------------------------------ the fitter
def test_binary_data_fit_as_fit_mml_does() -> None:
    """No rater, every item binary: the same model, grid and priors as ``fit_mml``'s 2PL, so the same answer
    (reached by another optimiser), SEs within the gap between Louis' identity and the cross-product."""
    rng = np.random.default_rng(11)
    rs, _, _ = simulate(rng, 150, 30, 0, 2, ())
    rs = ResponseSet(rs.model_idx, rs.item_idx, rs.score, rs.model_ids, rs.item_ids)
    mine, ref = fit_facets(rs), fit_mml(rs, "2pl")
    ok = mine.item_status == "calibrated"
    assert mine.converged and ok.sum() >= 28
    assert np.max(np.abs(mine.params.a[ok] - ref.params.a[ok])) < 2e-3
    assert np.max(np.abs(mine.params.thresholds[ok, 0] - ref.params.b[ok])) < 2e-3
    assert math.isclose(mine.loglik, ref.loglik, rel_tol=1e-6)
    assert np.allclose(mine.theta, ref.theta, atol=2e-3)
    assert np.median(np.abs(mine.se["a"][ok] / ref.se["a"][ok] - 1)) < 0.15


def _direct_fit(rs: ResponseSet, k: np.ndarray) -> np.ndarray:
    """Written from the formula, apart from the fitter: category probabilities per response, a per-model
    loop over the same 61 nodes, the same priors, BFGS on numerical gradients; returns (a, thresholds, s)."""
    x = np.linspace(-6, 6, 61)
    logw = -0.5 * x * x
    logw -= logsumexp(logw)
    n_items, n_r = rs.n_items, len(rs.rater_ids)

    def unpack(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = np.exp(v[:n_items])
        b1 = v[n_items:2 * n_items]
        gaps = np.exp(v[2 * n_items:2 * n_items + n_items * (k.max() - 2)]).reshape(n_items, -1)
        t = np.concatenate([b1[:, None], b1[:, None] + np.cumsum(gaps, axis=1)], axis=1)
        eta = v[-(n_r - 1):]
        return a, t, np.concatenate([eta, [-eta.sum()]])

    def neg_logpost(v: np.ndarray) -> float:
        a, t, s = unpack(v)
        total = 0.0
        for m in range(rs.n_models):
            sel = rs.model_idx == m
            ll = logw.copy()
            for j, sc, r in zip(rs.item_idx[sel], rs.score[sel], rs.rater_idx[sel], strict=True):
                lev = int(round(sc * (k[j] - 1)))
                sev = s[r] if r >= 0 else 0.0
                up = expit(a[j] * (x - t[j, lev - 1] - sev)) if lev > 0 else 1.0
                down = expit(a[j] * (x - t[j, lev] - sev)) if lev < k[j] - 1 else 0.0
                ll = ll + np.log(np.maximum(up - down, 1e-300))
            total += logsumexp(ll)
        prior = -(np.log(a) ** 2).sum() / 2 - (t ** 2).sum() / 18 - (s ** 2).sum() / 18
        return -(total + prior)

    v0 = np.concatenate([np.zeros(n_items), np.full(n_items, -0.5), np.zeros(n_items * (k.max() - 2)),
                         np.zeros(n_r - 1)])
    out = minimize(neg_logpost, v0, method="BFGS", options={"gtol": 1e-6, "maxiter": 2000})
    a, t, s = unpack(out.x)
    return np.concatenate([a, t.ravel(), s])


def test_agrees_with_a_direct_maximisation_on_a_tiny_case() -> None:
    rng = np.random.default_rng(3)
    rs, _, _ = simulate(rng, 40, 0, 3, 3, (-0.5, 0.5))
    k = np.full(3, 3)
    fit = fit_facets(rs, k, gtol=1e-8)
    assert fit.converged and (fit.item_status == "calibrated").all()
    mine = np.concatenate([fit.params.a, fit.params.thresholds.ravel(), fit.params.severity])
    assert np.max(np.abs(mine - _direct_fit(rs, k))) < 2e-3


@pytest.fixture(scope="module")
def recovery() -> list[dict[str, Any]]:
    """Three seeded worlds: 300 models, 40 binary items, 30 five-level items scored by 3 judges of known
    severity on 60% of the (model, item) cells."""
    out = []
    for seed in (101, 102, 103):
        rs, truth, theta = simulate(np.random.default_rng(seed), 300, 40, 30, 5, (-0.6, 0.1, 0.5), share=0.6)
        out.append({"fit": fit_facets(rs, truth.n_levels), "truth": truth, "theta": theta, "rs": rs})
    return out


def test_recovers_thresholds_and_severities(recovery: list[dict[str, Any]]) -> None:
    """Tolerances from the figures of these three worlds: RMSE of the graded thresholds 0.14-0.20 and of the
    severities 0.01-0.04 (the scale's own error, a few percent, dominates the severities')."""
    for w in recovery:
        fit, truth = w["fit"], w["truth"]
        g = truth.n_levels > 2
        assert fit.converged
        rmse_t = float(np.sqrt(np.nanmean((fit.params.thresholds[g] - truth.thresholds[g]) ** 2)))
        rmse_s = float(np.sqrt(np.mean((fit.params.severity - truth.severity) ** 2)))
        assert rmse_t < 0.3, rmse_t
        assert rmse_s < 0.08, rmse_s
        assert abs(fit.params.severity.sum()) < 1e-9                # the identification rule
        assert np.all(np.argsort(fit.params.severity) == np.argsort(truth.severity))
        assert np.corrcoef(fit.theta, w["theta"])[0, 1] > 0.95


def test_standard_errors_cover(recovery: list[dict[str, Any]]) -> None:
    """+-1.96 SE covers the true thresholds and discriminations at about the nominal rate over the three
    worlds (the scale's error is shared by every item, so a little under 95%)."""
    hits_t, hits_a = [], []
    for w in recovery:
        fit, truth = w["fit"], w["truth"]
        ok = fit.item_status == "calibrated"
        se_t = np.column_stack([fit.se[f"b{q + 1}"] for q in range(4)])
        z = (fit.params.thresholds - truth.thresholds) / se_t
        hits_t.append(np.abs(z[ok][np.isfinite(z[ok])]) < 1.96)
        hits_a.append(np.abs((fit.params.a - truth.a) / fit.se["a"])[ok] < 1.96)
        assert np.all(np.isfinite(fit.se["a"][ok])) and np.all(np.isfinite(np.array(
            [r["se"] for r in fit.settings["raters"]])))
    cov_t, cov_a = np.concatenate(hits_t).mean(), np.concatenate(hits_a).mean()
    assert 0.85 <= cov_t <= 0.99, cov_t
    assert 0.85 <= cov_a <= 0.99, cov_a


def test_abilities_read_both_kinds_of_item(recovery: list[dict[str, Any]]) -> None:
    w = recovery[0]
    fit, rs, theta = w["fit"], w["rs"], w["theta"]
    both = abilities_for(rs, fit.params)
    assert np.allclose(both.theta, fit.theta, atol=1e-3)          # the fit's own EAPs, through loglik
    binary = abilities_for(rs.subset(rs.rater_idx < 0), fit.params)
    judged = abilities_for(rs.subset(rs.rater_idx >= 0), fit.params)
    assert np.median(both.se) < min(np.median(binary.se), np.median(judged.se))
    assert np.corrcoef(judged.theta, theta)[0, 1] > 0.8
    mle = abilities_for(rs, fit.params, "mle")
    assert np.corrcoef(mle.theta, theta)[0, 1] > 0.95 and np.all(np.isfinite(mle.se))


def test_fitter_is_registered_and_takes_level_counts() -> None:
    rng = np.random.default_rng(5)
    rs, truth, _ = simulate(rng, 60, 5, 4, 3, (0.2, -0.2))
    fitter = get_fitter("facets")
    res = fitter.fit(rs, FitSettings(n_levels=truth.n_levels, seed=5), rng=rng)
    assert res.method == "facets" and res.params.family == "grm" and fitter.family == "grm"
    assert list(res.params.n_levels) == list(truth.n_levels)
    assert res.settings["identification"].startswith("severities sum to zero")
    with pytest.raises(InputError, match="n_levels"):
        fit_facets(rs, np.full(rs.n_items, 1))


# ------------------------------------------------------------------------------------------ judge verdicts
def _judgments() -> pd.DataFrame:
    rows = [
        # run, item, model, judge, verdict, level, n_levels, order
        ("r1", "p1", "mA", "gpt", 1.0, 2, 3, "ab"), ("r1", "p1", "mA", "gpt", 0.0, 0, 3, "ba"),   # inconsistent
        ("r1", "p1", "mA", "llama", 1.0, 2, 3, "ab"), ("r1", "p1", "mA", "llama", 1.0, 2, 3, "ba"),
        ("r2", "p1", "mB", "gpt", float("nan"), None, 3, "ab"),                                  # unparseable
        ("r2", "p1", "mB", "gpt", 0.0, 0, 3, "ba"),
        ("r1", "o1", "mA", "gpt", 0.25, 1, 5, ""), ("r2", "o1", "mB", "gpt", 1.0, 4, 5, ""),
        ("r3", "o1", "mA", "gpt", 0.75, 3, 5, ""),                                               # 2nd run
        ("", "x9", "", "gpt", 1.0, 2, 3, "ab"),                                                  # external
    ]
    return pd.DataFrame(rows, columns=["run_id", "item_id", "model", "judge", "verdict", "level", "n_levels",
                                       "order"])


def test_judgments_become_per_judge_responses() -> None:
    jr = judged_responses(_judgments())
    got = {(r.model, r.item_id, r.rater): r.score for r in jr.frame.itertuples()}
    assert got == {("mA", "p1", "gpt"): 0.5, ("mA", "p1", "llama"): 1.0, ("mB", "p1", "gpt"): 0.0,
                   ("mA", "o1", "gpt"): 0.5, ("mB", "o1", "gpt"): 1.0}
    assert jr.n_unparsed == 1 and jr.n_external == 1
    assert jr.n_levels.to_dict() == {"o1": 5, "p1": 3}     # o1's levels 0 and 2 never seen: K is the rubric's
    objective = pd.DataFrame({"model": ["mA", "mA", "mB"], "item_id": ["q1", "o1", "q1"], "score": [1.0, 0.9, 0.0]})
    rs, k = graded_response_set(jr, objective, item_ids=["o1", "p1", "q1"])
    frame = rs.to_frame()
    assert set(frame.loc[frame["item_id"] == "o1", "rater"]) == {"gpt"}   # the panel's 0.9 gave way to verdicts
    assert list(k) == [5, 3, 2] and rs.n_obs == 7


def test_judgments_refuse_what_they_cannot_read() -> None:
    bad = _judgments()
    bad.loc[6, "n_levels"] = 4
    with pytest.raises(InputError, match="different level counts.*o1"):
        judged_responses(bad)
    bad = _judgments()
    bad.loc[0, "verdict"] = 2.0
    bad.loc[1, "n_levels"] = 1
    with pytest.raises(InputError, match=r"verdict outside \[0, 1\] at row\(s\) 0; n_levels missing or < 2 at row"):
        judged_responses(bad)
    with pytest.raises(InputError, match="lacks column"):
        judged_responses(bad.drop(columns=["order"]))
