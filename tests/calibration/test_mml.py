"""MML-EM fitting core: seeded recovery, edge cases, convergence reporting, SEs, anchors, agreement."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from adtbase.errors import InputError
from calibration.data import ResponseSet
from calibration.irt import ItemParams
from calibration.mml import (
    CalibrationConvergenceWarning,
    accel,
    curves,
    estep,
    fit_mml,
    fitting,
    mstep,
    ops,
    problem,
    select_model,
    simulate_responses,
)
from calibration.mml import se as se_mod


def corr(u: np.ndarray, v: np.ndarray) -> float:
    return float(np.corrcoef(u, v)[0, 1])


def make_items(rng: np.random.Generator, n: int, model: str = "2pl") -> ItemParams:
    ids = tuple(f"it{k}" for k in range(n))
    a = np.exp(rng.normal(0.2, 0.3, n)) if model != "1pl" else np.full(n, 1.3)
    b = rng.normal(0.0, 1.0, n)
    c = rng.uniform(0.1, 0.3, n) if model in ("3pl", "4pl") else np.zeros(n)
    d = rng.uniform(0.8, 0.97, n) if model == "4pl" else np.ones(n)
    return ItemParams(ids, a, b, c, d)


# ------------------------------------------------------------------------------------------------
# ResponseSet
# ------------------------------------------------------------------------------------------------
def test_from_frame_validates_and_averages_duplicates() -> None:
    df = pd.DataFrame({"model": ["m1", "m1", "m2", "m1"], "item_id": ["i1", "i2", "i1", "i1"],
                       "score": [1.0, 0.0, 0.5, 0.0]})
    rs = ResponseSet.from_frame(df)
    assert rs.model_ids == ("m1", "m2") and rs.item_ids == ("i1", "i2")
    assert rs.n_obs == 3                                     # (m1, i1) seen twice, averaged
    got = {(rs.model_ids[m], rs.item_ids[i]): s for m, i, s in zip(rs.model_idx, rs.item_idx, rs.score,
                                                                     strict=True)}
    assert got[("m1", "i1")] == pytest.approx(0.5)
    with pytest.raises(InputError, match="duplicate"):
        ResponseSet.from_frame(df, duplicates="error")
    bad = df.assign(score=[1.0, 1.5, 0.0, 0.0])
    with pytest.raises(InputError, match=r"row 1.*score"):
        ResponseSet.from_frame(bad)
    with pytest.raises(InputError, match=r"row 2.*score"):
        ResponseSet.from_frame(df.assign(score=[1.0, 0.0, np.nan, 0.0]))
    with pytest.raises(InputError, match="no column 'correct'"):
        ResponseSet.from_frame(df, score_col="correct")
    universe = ResponseSet.from_frame(df, item_ids=["i0", "i1", "i2"])
    assert universe.item_ids == ("i0", "i1", "i2") and universe.counts_per_item()[0] == 0
    with pytest.raises(InputError, match="duplicate"):
        ResponseSet(np.array([0, 0]), np.array([1, 1]), np.array([1.0, 0.0]), ("m",), ("a", "b"))


# ------------------------------------------------------------------------------------------------
# Recovery of known parameters (seeded)
# ------------------------------------------------------------------------------------------------
def test_recovers_2pl_dense(rng: np.random.Generator) -> None:
    items = make_items(rng, 60)
    theta = rng.normal(size=1500)
    res = fit_mml(simulate_responses(items, theta, rng), "2pl", rng=rng)
    assert res.converged and (res.item_status == "calibrated").all()
    assert corr(res.params.a, items.a) > 0.93
    assert corr(res.params.b, items.b) > 0.98
    assert np.sqrt(np.mean((res.params.b - items.b) ** 2)) < 0.15
    assert corr(res.theta, theta) > 0.93
    assert res.n_params == 120 and np.isfinite(res.aic) and res.bic > res.aic


def test_recovers_1pl_shared_slope(rng: np.random.Generator) -> None:
    items = make_items(rng, 40, "1pl")
    res = fit_mml(simulate_responses(items, rng.normal(size=1500), rng), "1pl", rng=rng)
    assert res.converged
    assert np.ptp(res.params.a) == 0.0 and res.params.a[0] == pytest.approx(1.3, abs=0.1)
    assert corr(res.params.b, items.b) > 0.98
    assert np.isfinite(res.se["a"]).all() and res.se["a"][0] < 0.1


def test_recovers_3pl_with_guessing_from_choices(rng: np.random.Generator) -> None:
    base = make_items(rng, 40)
    items = ItemParams(base.item_ids, base.a, base.b, np.full(40, 0.25))
    res = fit_mml(simulate_responses(items, rng.normal(size=3000), rng), "3pl", rng=rng, n_choices=np.full(40, 4))
    assert res.converged and np.all(res.params.c == 0.25)
    assert corr(res.params.b, items.b) > 0.97
    assert corr(res.params.a, items.a) > 0.85
    assert np.isnan(res.se["c"]).all()


def test_recovers_3pl_estimated_guessing(rng: np.random.Generator) -> None:
    items = make_items(rng, 40, "3pl")
    res = fit_mml(simulate_responses(items, rng.normal(size=4000), rng), "3pl", rng=rng)
    assert res.converged
    assert corr(res.params.b, items.b) > 0.95
    assert corr(res.params.a, items.a) > 0.8
    assert np.sqrt(np.mean((res.params.c - items.c) ** 2)) < 0.08
    assert np.isfinite(res.se["c"]).all()


def test_recovers_4pl(rng: np.random.Generator) -> None:
    items = make_items(rng, 40, "4pl")
    res = fit_mml(simulate_responses(items, rng.normal(size=5000), rng), "4pl", rng=rng)
    assert res.converged
    assert corr(res.params.b, items.b) > 0.95
    assert corr(res.params.a, items.a) > 0.7
    assert np.sqrt(np.mean((res.params.d - items.d) ** 2)) < 0.06
    assert np.sqrt(np.mean((res.params.c - items.c) ** 2)) < 0.08


def test_recovers_from_sparse_missing_data(rng: np.random.Generator) -> None:
    items = make_items(rng, 400)
    theta = rng.normal(size=1500)
    rs = simulate_responses(items, theta, rng, missing=0.85)       # ~60 items per model, ~225 per item
    assert rs.density < 0.2
    res = fit_mml(rs, "2pl", rng=rng)
    assert res.converged and res.settings["backend"] == "sparse"
    assert corr(res.params.b, items.b) > 0.96
    assert corr(res.params.a, items.a) > 0.75
    assert corr(res.theta, theta) > 0.9


def test_dense_and_sparse_backends_agree(rng: np.random.Generator) -> None:
    items = make_items(rng, 30)
    rs = simulate_responses(items, rng.normal(size=300), rng, missing=0.1)
    d = fit_mml(rs, "2pl", backend="dense")
    s = fit_mml(rs, "2pl", backend="sparse")
    assert d.settings["backend"] == "dense" and s.settings["backend"] == "sparse"
    np.testing.assert_allclose(d.params.a, s.params.a, rtol=1e-6)
    np.testing.assert_allclose(d.se["b"], s.se["b"], rtol=1e-6)
    np.testing.assert_allclose(d.se["a"], s.se["a"], rtol=1e-6)
    assert d.loglik == pytest.approx(s.loglik, rel=1e-10)


def test_backends_agree_with_constant_and_anchor_items(rng: np.random.Generator) -> None:
    """The dense Louis term pads non-free items (constant ones, anchors); its SEs match the sparse ones."""
    items = make_items(rng, 40)
    items.b[:3] = -9.0                                   # answered right by everyone: kept at priors
    rs = simulate_responses(items, rng.normal(size=300), rng, missing=0.3)
    fixed = {"it5": (1.0, 0.2, 0.0, 1.0), "it6": (1.3, -0.5, 0.0, 1.0)}
    d = fit_mml(rs, "2pl", backend="dense", fixed=fixed)
    s = fit_mml(rs, "2pl", backend="sparse", fixed=fixed)
    assert (d.item_status == "all_correct").sum() >= 2
    free = np.isfinite(s.se["a"])
    assert free.sum() == 40 - (d.item_status != "calibrated").sum() - 2
    np.testing.assert_array_equal(np.isfinite(d.se["a"]), free)
    for col in ("a", "b"):
        np.testing.assert_allclose(d.se[col][free], s.se[col][free], rtol=1e-8)


def _many_thin_items() -> tuple[ResponseSet, np.ndarray]:
    """400 models x 3,000 items at 97% missing (~12 responses per item, some constant): the shape of a
    10^6-item bank in miniature."""
    rng = np.random.default_rng(16)
    n = 3000
    truth = ItemParams(tuple(f"it{k}" for k in range(n)), np.exp(rng.normal(0, 0.3, n)), rng.normal(0, 1, n))
    return simulate_responses(truth, rng.normal(size=400), rng, missing=0.97), np.cos(np.arange(n))


def test_many_thin_items_match_the_fit_before_the_fast_path() -> None:
    """Pinned figures of this case from the sparse 2PL before its 10^6-item speed-ups (the M-step on every
    row with scratch buffers, transposed node sums, SEs in item blocks): the same fit to rounding."""
    rs, w = _many_thin_items()
    res = fit_mml(rs, "2pl", backend="sparse")
    assert rs.n_obs == 36064 and int((res.item_status == "calibrated").sum()) == 2879
    assert res.converged and res.n_iter == 31
    assert res.loglik == pytest.approx(-17051.40298260015, rel=1e-11)
    pinned = {   # finite values: count, sum, sum of squares, sum weighted by cos(item position)
        "a": (res.params.a, 3000, 4024.6392900800083, 7173.874014032039, 21.80434294125057),
        "b": (res.params.b, 3000, -23.328640071440184, 3226.0637124119257, 11.295664264913386),
        "se_a": (res.se["a"], 2879, 2523.043661243533, 3156.5459347246224, 16.22794294009251),
        "se_b": (res.se["b"], 2879, 2177.3791725991823, 1923.8781087698849, -5.604486110356243),
        "theta": (res.theta, 400, 2.590390031900469, 478.1011727164205, 6.421198618685342),
    }
    for name, (v, count, total, squares, weighted) in pinned.items():
        ok = np.isfinite(v)
        assert int(ok.sum()) == count, name
        got = (float(v[ok].sum()), float((v[ok] ** 2).sum()), float((w[: v.size][ok] * v[ok]).sum()))
        assert got == pytest.approx((total, squares, weighted), rel=1e-9, abs=1e-8), name


def test_item_se_blocks_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """SEs computed in blocks of items (bounded memory at 10^6 items) equal the one-block SEs."""
    rs, _ = _many_thin_items()
    one = fit_mml(rs, "2pl", backend="sparse")
    monkeypatch.setattr(se_mod, "_SE_CHUNK", 97)                  # 30 blocks, the last one short
    blocks = fit_mml(rs, "2pl", backend="sparse")
    for col in ("a", "b"):
        np.testing.assert_array_equal(np.isfinite(one.se[col]), np.isfinite(blocks.se[col]))
        np.testing.assert_allclose(blocks.se[col], one.se[col], rtol=1e-12)


def test_curve_cache_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The E-step reuses the M-step's curves on most steps, and the fit is bit for bit the one that
    recomputes them every time."""
    rs, _ = _many_thin_items()
    full_passes: list[int] = []
    recompute = estep._log_logistic
    monkeypatch.setattr(estep, "_log_logistic",
                        lambda a, b, x, *r: full_passes.append(a.size == rs.n_items) or recompute(a, b, x, *r))
    cached = fit_mml(rs, "2pl", backend="sparse")
    assert cached.n_iter - sum(full_passes) >= cached.n_iter // 3     # after PX-EM, two steps in three hit
    monkeypatch.setattr(problem._ProblemBase, "_curves", property(lambda self: None, lambda self, v: None),
                        raising=False)     # nothing is ever cached
    fresh = fit_mml(rs, "2pl", backend="sparse")
    assert fresh.n_iter == cached.n_iter
    for col in ("a", "b"):
        np.testing.assert_array_equal(getattr(cached.params, col), getattr(fresh.params, col))
        np.testing.assert_array_equal(cached.se[col], fresh.se[col])
    np.testing.assert_array_equal(cached.theta, fresh.theta)


def test_node_window_changes_nothing(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The E-step's node window (log-concave posteriors) gives the full-grid fit to rounding."""
    items = make_items(rng, 800)
    rs = simulate_responses(items, rng.normal(size=200), rng, missing=0.3)   # sharp posteriors
    spans: list[int] = []
    support = estep._support
    monkeypatch.setattr(estep, "_support", lambda *a: spans.append(-np.subtract(*support(*a))) or support(*a))
    windowed = fit_mml(rs, "2pl")
    assert min(spans) <= 50                               # the window dropped a sixth of the nodes or more
    monkeypatch.setattr(estep, "_WIN_LOG", np.inf)        # every node is "near": the full grid
    full = fit_mml(rs, "2pl")
    assert windowed.converged and full.converged
    assert windowed.n_iter == full.n_iter
    np.testing.assert_allclose(windowed.params.a, full.params.a, rtol=1e-7)
    np.testing.assert_allclose(windowed.params.b, full.params.b, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(windowed.se["b"], full.se["b"], rtol=1e-7)
    assert windowed.loglik == pytest.approx(full.loglik, rel=1e-12)


def test_node_window_is_refused_when_mass_reaches_its_edge() -> None:
    x = np.linspace(-6, 6, 61)
    sharp = -0.5 * ((x[10:50] - 0.0) / 0.1) ** 2        # mode inside, edges ~ -1800 below: holds
    wide = -0.5 * ((x[10:50] - 0.0) / 3.0) ** 2         # edges only ~ -2 below the mode: refused
    for L, ok in ((sharp, True), (wide, False)):
        L2 = L[None, :]
        assert estep._window_holds(L2, L2.max(axis=1, keepdims=True), 10, 50, 61, np.array([True])) is ok
    lo, hi = estep._support(sharp[None, :], sharp.max(keepdims=True)[None, :], 10, 61, np.array([True]))
    assert 10 < lo < 30 < hi < 50                       # a few nodes around the mode, padded


def test_scale_newton_matches_finite_differences(rng: np.random.Generator,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The Fisher/Louis step along the latent shift and scale equals a Newton step on finite
    differences of the marginal log-posterior along the same two directions."""
    items = make_items(rng, 600)
    rs = simulate_responses(items, rng.normal(size=200), rng, missing=0.5)   # sharp: a slow scale mode
    seen: list = []
    newton = fitting._Problem.scale_newton

    def spy(self, p, e):  # type: ignore[no-untyped-def]
        d = newton(self, p, e)
        if d is not None and not seen:
            seen.append((self, p.copy(), d))
        return d

    monkeypatch.setattr(fitting._Problem, "scale_newton", spy)
    fit_mml(rs, "2pl", max_iter=40, warn=False)
    prob, p, d = seen[0]
    f = prob.free

    def logpost(m: float, s: float) -> float:
        q = p.copy()
        q.a[f], q.b[f] = p.a[f] * np.exp(s), (p.b[f] - m) * np.exp(-s)
        return prob.estep(q, full=True).logpost             # full grid for the differences

    h = 1e-4
    g = np.array([logpost(h, 0) - logpost(-h, 0), logpost(0, h) - logpost(0, -h)]) / (2 * h)
    hmm = (logpost(h, 0) - 2 * logpost(0, 0) + logpost(-h, 0)) / h**2
    hss = (logpost(0, h) - 2 * logpost(0, 0) + logpost(0, -h)) / h**2
    hms = (logpost(h, h) - logpost(h, -h) - logpost(-h, h) + logpost(-h, -h)) / (4 * h * h)
    d_fd = np.linalg.solve(-np.array([[hmm, hms], [hms, hss]]), g)
    assert np.abs(d).max() < 0.5                           # not capped, so comparable
    np.testing.assert_allclose(d, d_fd, rtol=0.02, atol=1e-6)


def test_fractional_scores(rng: np.random.Generator) -> None:
    """pass@k-style credit: the mean of 4 Bernoulli draws per cell, fitted as fractional scores."""
    items = make_items(rng, 40)
    theta = rng.normal(size=1000)
    p = items.c + (items.d - items.c) / (1 + np.exp(-items.a * (theta[:, None] - items.b)))
    frac = rng.binomial(4, p) / 4.0
    m, i = np.nonzero(np.ones_like(frac))
    rs = ResponseSet(m, i, frac[m, i], tuple(f"m{k}" for k in range(1000)), items.item_ids)
    res = fit_mml(rs, "2pl")
    assert res.converged and (res.item_status == "calibrated").all()
    assert corr(res.params.b, items.b) > 0.98
    assert corr(res.params.a, items.a) > 0.85
    assert corr(res.theta, theta) > 0.95
    assert np.isfinite(res.se["a"]).all()


def test_empirical_histogram_on_skewed_abilities(rng: np.random.Generator) -> None:
    """Abilities from a right-skewed distribution (standardised chi-square, 2 df): the estimated
    histogram is skewed the same way and the marginal likelihood beats the normal latent."""
    items = make_items(rng, 30)
    raw = rng.chisquare(2, size=2000)
    theta = (raw - raw.mean()) / raw.std()
    rs = simulate_responses(items, theta, rng)
    emp = fit_mml(rs, "2pl", latent="empirical", n_quad=31)
    nor = fit_mml(rs, "2pl", latent="normal", n_quad=31)
    assert emp.converged and nor.converged
    w, x = emp.quad_weights, emp.quad_points
    mean = w @ x
    sd = np.sqrt(w @ (x - mean) ** 2)
    skew = w @ ((x - mean) / sd) ** 3
    assert abs(mean) < 0.05 and abs(sd - 1) < 0.05        # standardised to fix the scale
    assert skew > 0.8                                      # chi2(2) has skewness 2
    assert emp.loglik > nor.loglik + 10
    assert corr(emp.params.b, items.b) > 0.98
    assert corr(emp.theta, theta) > 0.9


# ------------------------------------------------------------------------------------------------
# Edge cases
# ------------------------------------------------------------------------------------------------
def test_uninformative_items_are_flagged_and_kept_at_priors(rng: np.random.Generator) -> None:
    items = make_items(rng, 20)
    rs = simulate_responses(items, rng.normal(size=400), rng)
    m, i, s = rs.model_idx, rs.item_idx, rs.score.copy()
    s[i == 0] = 1.0                                       # everybody right
    s[i == 1] = 0.0                                       # everybody wrong
    ids = (*rs.item_ids, "never_asked")                   # in the bank, never answered
    extra_model = np.array([0], dtype=np.int32)
    rs2 = ResponseSet(np.r_[m, extra_model + 400], np.r_[i, [5]], np.r_[s, [1.0]],
                      (*rs.model_ids, "one_response"), ids)
    res = fit_mml(rs2, "2pl", prior_a=(0.0, 1.0), prior_b=(0.0, 3.0))
    assert list(res.item_status[[0, 1, 20]]) == ["all_correct", "all_wrong", "unanswered"]
    assert (res.item_status[2:20] == "calibrated").all()
    for k in (0, 1, 20):
        assert res.params.a[k] == 1.0 and res.params.b[k] == 0.0
        assert np.isnan(res.se["a"][k]) and np.isnan(res.se["b"][k])
    assert res.converged
    # the model with a single response gets a finite, uncertain ability
    assert np.isfinite(res.theta[-1]) and 0.5 < res.theta_se[-1] < 1.0
    assert res.theta[-1] > res.quad_weights @ res.quad_points      # it got that item right


def test_capped_fit_says_it_did_not_converge(rng: np.random.Generator) -> None:
    items = make_items(rng, 30)
    rs = simulate_responses(items, rng.normal(size=300), rng)
    with pytest.warns(CalibrationConvergenceWarning, match="did NOT converge"):
        res = fit_mml(rs, "2pl", max_iter=3)
    assert not res.converged and res.n_iter <= 4


def test_bad_arguments_raise_input_errors(rng: np.random.Generator) -> None:
    rs = simulate_responses(make_items(rng, 5), rng.normal(size=20), rng)
    with pytest.raises(InputError, match="unknown IRT model"):
        fit_mml(rs, "5pl")
    with pytest.raises(InputError, match="latent"):
        fit_mml(rs, latent="mixture")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="fixed"):
        fit_mml(rs, fixed={"it0": (1.0, 0.0, 0.5, 0.4)})


def test_fit_leaves_global_random_state_alone(rng: np.random.Generator) -> None:
    rs = simulate_responses(make_items(rng, 10), rng.normal(size=100), rng)
    before = np.random.get_state()[1].copy()  # noqa: NPY002 - checking nobody touches it
    fit_mml(rs, "2pl", rng=rng)
    assert (np.random.get_state()[1] == before).all()  # noqa: NPY002


# ------------------------------------------------------------------------------------------------
# Standard errors
# ------------------------------------------------------------------------------------------------
def _marginal_logpost(res, rs, k, la, b):
    """Marginal log-posterior with item k's (log a, b) replaced, every other parameter held."""
    a = res.params.a.copy()
    bb = res.params.b.copy()
    a[k], bb[k] = np.exp(la), b
    pri = curves._Priors((0.0, 1.0), (0.0, 3.0), (5.0, 17.0), (12.0, 2.0))
    free = np.ones(rs.n_items, dtype=bool)
    prob = fitting._Problem(rs, "2pl", res.quad_points, "normal", pri, free, free, ("a", "b"), False, False, 2)
    p = problem._Params(a, bb, np.zeros(rs.n_items), np.ones(rs.n_items), np.log(res.quad_weights))
    return prob.estep(p).logpost


def test_louis_se_matches_numerical_hessian(rng: np.random.Generator) -> None:
    """The per-item block of the observed information by Louis' identity equals the finite-difference
    Hessian of the marginal log-posterior in that item's (log a, b)."""
    items = make_items(rng, 15)
    rs = simulate_responses(items, rng.normal(size=300), rng)
    res = fit_mml(rs, "2pl", tol_param=1e-7, tol_ll=1e-12)
    for k in (0, 7):
        la0, b0 = np.log(res.params.a[k]), res.params.b[k]
        h = 1e-3
        def f(u: float, v: float, k: int = k, la0: float = la0, b0: float = b0) -> float:
            return _marginal_logpost(res, rs, k, la0 + u, b0 + v)

        f0 = f(0, 0)
        haa = (f(h, 0) - 2 * f0 + f(-h, 0)) / h**2
        hbb = (f(0, h) - 2 * f0 + f(0, -h)) / h**2
        hab = (f(h, h) - f(h, -h) - f(-h, h) + f(-h, -h)) / (4 * h * h)
        cov = np.linalg.inv(-np.array([[haa, hab], [hab, hbb]]))
        se_a = res.params.a[k] * np.sqrt(cov[0, 0])
        se_b = np.sqrt(cov[1, 1])
        assert res.se["a"][k] == pytest.approx(se_a, rel=0.02)
        assert res.se["b"][k] == pytest.approx(se_b, rel=0.02)


def test_se_matches_spread_over_replications() -> None:
    items = make_items(np.random.default_rng(11), 10)
    est, ses = [], []
    for rep in range(40):
        r = np.random.default_rng(1000 + rep)
        res = fit_mml(simulate_responses(items, r.normal(size=500), r), "2pl")
        est.append(np.r_[res.params.a, res.params.b])
        ses.append(np.r_[res.se["a"], res.se["b"]])
    ratio = np.std(est, axis=0, ddof=1) / np.mean(ses, axis=0)
    # 40 replications: the SD of an SD estimate is ~11%, so the mean ratio should sit near 1
    assert 0.85 < float(np.mean(ratio)) < 1.15
    assert np.all((ratio > 0.6) & (ratio < 1.5))


# ------------------------------------------------------------------------------------------------
# Anchors (fixed-parameter linking)
# ------------------------------------------------------------------------------------------------
def test_fixed_anchors_stay_fixed_and_set_the_scale(rng: np.random.Generator) -> None:
    items = make_items(rng, 40)
    theta = rng.normal(0.7, 1.2, size=2000)                # a new round: abler and more spread out
    rs = simulate_responses(items, theta, rng)
    anchors = {items.item_ids[k]: (items.a[k], items.b[k], 0.0, 1.0) for k in range(15)}
    anchors["not_in_this_round"] = (1.0, 0.0, 0.0, 1.0)
    res = fit_mml(rs, "2pl", fixed=anchors)
    assert res.converged
    np.testing.assert_array_equal(res.params.a[:15], items.a[:15])
    np.testing.assert_array_equal(res.params.b[:15], items.b[:15])
    assert res.fixed[:15].all() and not res.fixed[15:].any()
    assert res.settings["fixed_unused"] == ["not_in_this_round"]
    assert np.isnan(res.se["b"][:15]).all() and np.isfinite(res.se["b"][15:]).all()
    # free items land on the anchors' scale, and the latent mean/sd are estimated on it
    assert np.mean(np.abs(res.params.b[15:] - items.b[15:])) < 0.15
    assert res.settings["latent_mean"] == pytest.approx(0.7, abs=0.12)
    assert res.settings["latent_sd"] == pytest.approx(1.2, abs=0.12)


# ------------------------------------------------------------------------------------------------
# Agreement with an independent implementation (PyPI mirt) and model selection
# ------------------------------------------------------------------------------------------------
def test_agrees_with_mirt_on_small_dense_case(rng: np.random.Generator) -> None:
    mirt = pytest.importorskip("mirt")
    items = make_items(rng, 20)
    rs = simulate_responses(items, rng.normal(size=500), rng)
    y = np.zeros((rs.n_models, rs.n_items), dtype=int)
    y[rs.model_idx, rs.item_idx] = rs.score.astype(int)
    theirs = mirt.fit_mirt(y, model="2PL", n_quadpts=61, compute_standard_errors=False)
    ta = np.asarray(theirs.model.parameters["discrimination"]).ravel()
    tb = np.asarray(theirs.model.parameters["difficulty"]).ravel()
    # near-flat priors: both compute the plain marginal MLE (quadrature rules differ slightly)
    ours = fit_mml(rs, "2pl", prior_a=(0.0, 100.0), prior_b=(0.0, 100.0), tol_param=1e-6)
    assert np.max(np.abs(ours.params.a - ta)) < 0.02
    assert np.max(np.abs(ours.params.b - tb)) < 0.02
    assert ours.loglik == pytest.approx(theirs.log_likelihood, abs=0.5)


def test_select_model_prefers_the_generating_family(rng: np.random.Generator) -> None:
    base = make_items(rng, 30)
    spread = ItemParams(base.item_ids, np.exp(rng.normal(0.0, 0.6, 30)), base.b)
    rs = simulate_responses(spread, rng.normal(size=1500), rng)
    sel = select_model(rs, ("1pl", "2pl"), rng=rng, holdout_frac=0.2)
    table = sel.table().set_index("model")
    assert sel.best == "2pl"
    assert table.loc["2pl", "heldout_loglik"] > table.loc["1pl", "heldout_loglik"]
    assert sel.result is not None and sel.result.model == "2pl" and sel.result.n_obs == rs.n_obs
    assert table["n_heldout"].iloc[0] == pytest.approx(0.2 * rs.n_obs, rel=0.05)
    guess = ItemParams(base.item_ids, base.a * 1.5, base.b, np.full(30, 0.3))
    rs3 = simulate_responses(guess, rng.normal(size=2000), rng)
    sel3 = select_model(rs3, ("2pl", "3pl"), rng=rng, refit=False, n_choices=np.full(30, 4))
    assert sel3.best == "3pl" and sel3.result is None


def test_capped_fits_warn_quietly_when_asked(rng: np.random.Generator) -> None:
    rs = simulate_responses(make_items(rng, 10), rng.normal(size=100), rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit_mml(rs, "2pl", max_iter=2, warn=False)
    assert not res.converged


def test_log_logistic_matches_libm(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """One exp and one log per cell (log1p by the corrected log of 1 + e^-z) agrees with libm's log1p to
    a few ulp over the whole range of a and b, including the clipped tails; P = 1 / (1 + e^-z) agrees
    with exp(log P); the row blocks change nothing."""
    n = 3000
    a = np.exp(rng.uniform(np.log(0.01), np.log(50.0), n))
    b = rng.uniform(-15.0, 15.0, n)
    a[:4], b[:4] = 50.0, [-15.0, 15.0, 0.0, 1e-9]          # |z| up to 1,050: the clip to +-700 engages
    x = np.linspace(-6.0, 6.0, 61)
    logP, z, P = curves._log_logistic(a, b, x)
    z_ref = np.clip(a[:, None] * (x[None, :] - b[:, None]), -curves._ZMAX, curves._ZMAX)
    np.testing.assert_array_equal(z, z_ref)
    ref = -np.log1p(np.exp(-z_ref))
    assert np.all(np.abs(logP - ref) <= 4 * np.finfo(float).eps * np.abs(ref))
    np.testing.assert_allclose(P, np.exp(ref), rtol=1e-14, atol=0)
    np.testing.assert_allclose(curves._logistic(a, b, x), P, rtol=1e-14, atol=0)
    monkeypatch.setattr(curves, "_BLOCK", 61 * 7)          # blocks of 7 rows, the last one short
    for got, want in zip(curves._log_logistic(a, b, x), (logP, z, P), strict=True):
        np.testing.assert_array_equal(got, want)


def test_np_sums_blocks(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Fisher step's sums of N P and N P^2 over nodes, in row blocks (curves given, or computed in
    the block), equal the whole-array products; N one row per item or one shared row."""
    n, x = 1001, np.linspace(-4.0, 4.0, 23)
    a, b = np.exp(rng.normal(0, 0.5, n)), rng.normal(0, 1.5, n)
    P = 1.0 / (1.0 + np.exp(-a[:, None] * (x[None, :] - b[:, None])))
    x012 = np.stack([np.ones_like(x), x, x * x], axis=1)
    monkeypatch.setattr(curves, "_BLOCK", 23 * 50)
    for N in (rng.uniform(0, 3, (n, x.size)), rng.uniform(0, 3, (1, x.size))):
        want = (N * P) @ x012, (N * P * P) @ x012
        for given in (P, None):
            got = curves._np_sums(N, given, x, a, b)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_row_max_abs_diff_blocks(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The convergence measure's per-item max |P1 - P0|, in row blocks, is the whole-array one."""
    A, B = rng.normal(size=(997, 17)), rng.normal(size=(997, 17))
    monkeypatch.setattr(accel, "_BLOCK", 17 * 40)
    np.testing.assert_array_equal(accel._row_max_abs_diff(A, B), np.abs(A - B).max(axis=1))


def test_row_passes_are_the_same_on_several_threads(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The items x nodes passes give the same numbers bit for bit whether their rows run in the calling thread or
    are shared among threads (three here: uneven row ranges, blocks cut short at each range's end)."""
    n, x = 2003, np.linspace(-4.0, 4.0, 29)
    a, b = np.exp(rng.normal(0, 0.5, n)), rng.normal(0, 1.5, n)
    N = rng.uniform(0, 3, (n, x.size))
    A, B = rng.normal(size=(n, x.size)), rng.normal(size=(n, x.size))
    # the E-step's sparse products: an items x models matrix (5% stored) times models x nodes, and its transpose
    # times items x nodes
    IT = sparse.random_array((n, 301), density=0.05, format="csr", rng=rng)
    post = rng.uniform(size=(301, x.size))
    monkeypatch.setattr(curves, "_BLOCK", 29 * 37)

    def passes() -> list[np.ndarray]:
        logP, z, P = curves._log_logistic(a, b, x)
        return [logP, z, P, *curves._np_sums(N, P, x, a, b), *curves._np_sums(N[:1], None, x, a, b),
                estep._log1m(logP, z.copy()), accel._row_max_abs_diff(A, B), mstep._sum_n(N, logP),
                ops._csr_times(IT, post), ops._csr_t_times(IT, A)]

    monkeypatch.setattr(curves, "_PARALLEL_CELLS", 10**12)
    alone = passes()
    monkeypatch.setattr(curves, "_PARALLEL_CELLS", 1)
    monkeypatch.setattr(curves, "_THREADS", 3)
    monkeypatch.setattr(curves, "_POOL", None)
    shared = passes()
    assert curves._POOL is not None and curves._POOL._max_workers == 3
    for got, want in zip(shared, alone, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(alone[-3], np.einsum("iq,iq->i", N, alone[0]))   # as the whole array
    np.testing.assert_array_equal(alone[-5], alone[0] - alone[1])             # log(1 - P) = log P - z
    np.testing.assert_array_equal(shared[-2], IT @ post)       # as scipy's own product, bit for bit
    np.testing.assert_array_equal(shared[-1], IT.T @ A)
