"""Ability estimates and predicted scores: seeded recovery, coverage, edge cases, independent checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import norm

from adtbase.errors import InputError
from calibration.ability import (
    AbilityEstimate,
    Posterior,
    Prior,
    ability_posterior,
    estimate_abilities,
    estimate_ability,
    predict_score,
)
from calibration.irt import ItemParams, log_likelihood, prob


def make_items(rng: np.random.Generator, n: int, a_mu: float = 0.3, a_sd: float = 0.4, c: float = 0.0,
               d: float = 1.0) -> ItemParams:
    return ItemParams(tuple(f"it{j}" for j in range(n)), rng.lognormal(a_mu, a_sd, n), rng.normal(0, 1, n),
                      np.full(n, c), np.full(n, d))


def simulate(rng: np.random.Generator, theta: np.ndarray, params: ItemParams) -> np.ndarray:
    p = prob(theta[:, None], params.a, params.b, params.c, params.d)
    return (rng.random(p.shape) < p).astype(float)


@pytest.fixture(scope="module")
def dense_2pl() -> tuple[np.ndarray, ItemParams, np.ndarray]:
    rng = np.random.default_rng(11)
    params = make_items(rng, 40)
    theta = rng.normal(0, 1, 1500)
    return theta, params, simulate(rng, theta, params)


@pytest.mark.parametrize("method", ["eap", "map", "mle"])
def test_recovery_se_and_coverage(dense_2pl, method):
    theta, params, x = dense_2pl
    m, j = np.nonzero(np.ones_like(x))
    est = estimate_abilities(m, j, x[m, j], params, method)
    ok = ~est.bounded
    err = est.theta[ok] - theta[ok]
    assert np.corrcoef(est.theta, theta)[0, 1] > 0.93
    # The reported SEs match the empirical spread of the errors (RMS SE vs RMSE within 12%).
    ratio = np.sqrt(np.mean(est.se[ok] ** 2)) / np.sqrt(np.mean(err**2))
    assert 0.88 < ratio < 1.12, ratio
    # 1,500 seeded replications: 95% intervals cover 92-98% of the true abilities.
    cover = np.mean((est.lo <= theta) & (theta <= est.hi))
    assert 0.92 <= cover <= 0.98, cover
    assert (est.n_items == 40).all()


def test_recovery_steep_4pl_items():
    # Leaderboard-like items: discriminations 2-8, guessing 0.25, slips; EAP still recovers and covers.
    rng = np.random.default_rng(12)
    n = 60
    params = ItemParams(tuple(map(str, range(n))), rng.uniform(2, 8, n), rng.normal(0, 1, n), np.full(n, 0.25),
                        np.full(n, 0.97))
    theta = rng.normal(0, 1, 1000)
    x = simulate(rng, theta, params)
    m, j = np.nonzero(np.ones_like(x))
    est = estimate_abilities(m, j, x[m, j], params, "eap")
    cover = np.mean((est.lo <= theta) & (theta <= est.hi))
    assert 0.92 <= cover <= 0.98, cover
    assert np.sqrt(np.mean((est.theta - theta) ** 2)) < 0.3


def test_eap_matches_brute_force_quadrature():
    rng = np.random.default_rng(13)
    params = make_items(rng, 12, c=0.2, d=0.95)
    scores = np.array([1, 0, 1, 1, 0, 0, 1, 0.5, 1, 0, 1, 1], dtype=float)
    prior = Prior.normal(0.3, 1.2)

    def lik(t: float) -> float:
        return float(np.exp(log_likelihood(t, scores, params.a, params.b, params.c, params.d).sum()))

    dens = lambda t: lik(t) * norm.pdf(t, 0.3, 1.2)  # noqa: E731
    z = integrate.quad(dens, -12, 12, limit=200)[0]
    mean = integrate.quad(lambda t: t * dens(t), -12, 12, limit=200)[0] / z
    var = integrate.quad(lambda t: (t - mean) ** 2 * dens(t), -12, 12, limit=200)[0] / z
    est = estimate_ability(scores, params, "eap", prior=prior, bounds=(-8, 8))
    assert est.theta == pytest.approx(mean, abs=1e-4)
    assert est.se == pytest.approx(np.sqrt(var), abs=1e-4)
    # The interval is the posterior's 2.5% and 97.5% quantiles.
    cdf = lambda t: integrate.quad(dens, -12, t, limit=200)[0] / z  # noqa: E731
    assert cdf(est.lo) == pytest.approx(0.025, abs=2e-3)
    assert cdf(est.hi) == pytest.approx(0.975, abs=2e-3)


@pytest.mark.parametrize("method", ["map", "mle"])
def test_mode_matches_scipy_optimiser(method):
    rng = np.random.default_rng(14)
    params = make_items(rng, 25, c=0.1)
    scores = (rng.random(25) < 0.6).astype(float)

    def neg(t: float) -> float:
        ll = log_likelihood(t, scores, params.a, params.b, params.c, params.d).sum()
        return float(-(ll - (0.5 * t**2 if method == "map" else 0.0)))

    ref = optimize.minimize_scalar(neg, bounds=(-6, 6), method="bounded", options={"xatol": 1e-9}).x
    est = estimate_ability(scores, params, method)
    assert est.theta == pytest.approx(ref, abs=1e-4)
    assert not est.bounded


def test_fractional_scores_symmetric_pattern():
    # Half credit on items symmetric around 0: the likelihood is symmetric, so every estimator gives 0.
    params = ItemParams(tuple("abcd"), np.array([1.0, 2.0, 1.0, 2.0]), np.array([-1.0, -0.5, 1.0, 0.5]))
    for method in ("eap", "map", "mle"):
        assert estimate_ability(np.full(4, 0.5), params, method).theta == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method", ["eap", "map", "mle"])
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_extreme_patterns_are_finite(method, value):
    rng = np.random.default_rng(15)
    params = make_items(rng, 30)
    est = estimate_ability(np.full(30, value), params, method)
    assert all(np.isfinite([est.theta, est.se, est.lo, est.hi]))
    assert est.lo <= est.theta <= est.hi
    sign = 1 if value == 1 else -1
    # More extreme than any mixed pattern gets.
    mixed = estimate_ability(np.r_[np.full(29, value), 1 - value], params, method)
    assert sign * est.theta > sign * mixed.theta
    if method == "mle":
        assert est.bounded and est.theta == sign * 6.0
        assert not mixed.bounded
        # Likelihood-ratio interval reaches the bound and excludes abilities far from it.
        assert (est.hi if sign > 0 else -est.lo) == pytest.approx(6.0)
        assert abs(est.lo if sign > 0 else est.hi) < 6.0
    else:
        assert not est.bounded


def test_batch_matches_single_on_sparse_data():
    rng = np.random.default_rng(16)
    params = make_items(rng, 50)
    theta = rng.normal(0, 1, 30)
    x = simulate(rng, theta, params)
    mask = rng.random(x.shape) < 0.3
    mask[7] = False  # model 7 answered nothing
    m, j = np.nonzero(mask)
    for method in ("eap", "map", "mle"):
        batch = estimate_abilities(m, j, x[m, j], params, method, n_models=30)
        for i in (0, 3, 12):
            sel = mask[i]
            single = estimate_ability(x[i, sel], params.subset(np.flatnonzero(sel)), method)
            assert batch[i].theta == pytest.approx(single.theta, abs=1e-6)
            assert batch[i].se == pytest.approx(single.se, abs=1e-6)
        assert batch.n_items[7] == 0
        if method == "mle":
            assert np.isnan(batch.theta[7])
        else:
            assert batch.theta[7] == pytest.approx(0.0, abs=1e-6)
            assert batch.se[7] == pytest.approx(1.0, abs=2e-3)
    frame = batch.to_frame([f"m{i}" for i in range(30)])
    assert list(frame.columns[:4]) == ["theta", "se", "lo", "hi"] and frame.index[3] == "m3"


def test_grid_prior_matches_normal_and_shifts_with_skew():
    rng = np.random.default_rng(17)
    params = make_items(rng, 10)
    scores = (rng.random(10) < 0.5).astype(float)
    pts = np.linspace(-6, 6, 61)
    w = norm.pdf(pts)
    normal = estimate_ability(scores, params, "eap")
    from_grid = estimate_ability(scores, params, "eap", prior=Prior.from_grid(pts, w))
    assert from_grid.theta == pytest.approx(normal.theta, abs=2e-3)
    assert from_grid.se == pytest.approx(normal.se, abs=2e-3)
    skewed = estimate_ability(scores, params, "eap", prior=Prior.from_grid(pts, w * (pts > 0) + 1e-12))
    assert skewed.theta > normal.theta + 0.1


def test_bad_input_is_reported():
    params = ItemParams(("x", "y"), np.ones(2), np.zeros(2))
    with pytest.raises(InputError, match=r"scores\[1\]"):
        estimate_ability(np.array([1.0, 1.5]), params)
    with pytest.raises(InputError, match="aligned"):
        estimate_ability(np.ones(3), params)
    with pytest.raises(InputError, match="unknown ability method"):
        estimate_ability(np.ones(2), params, "wle")
    with pytest.raises(InputError, match="'y'"):
        estimate_ability(np.ones(2), ItemParams(("x", "y"), np.array([1.0, np.nan]), np.zeros(2)))
    with pytest.raises(InputError, match="outside"):
        estimate_abilities(np.array([0]), np.array([5]), np.array([1.0]), params)


# ---------------------------------------------------------------- predicted scores


def test_predictive_interval_coverage():
    rng = np.random.default_rng(18)
    n_items, n_obs, reps = 150, 30, 400
    params = make_items(rng, n_items, a_mu=0.8, a_sd=0.5)
    hits, errors, raw_errors = 0, [], []
    for _ in range(reps):
        theta = rng.normal()
        x = (rng.random(n_items) < prob(theta, params.a, params.b)).astype(float)
        obs = rng.choice(n_items, n_obs, replace=False)
        rest = np.setdiff1d(np.arange(n_items), obs)
        ps = predict_score(x[obs], params.subset(obs), params.subset(rest))
        hits += ps.lo <= x.mean() <= ps.hi
        errors.append(abs(ps.mean - x.mean()))
        raw_errors.append(abs(x[obs].mean() - x.mean()))
    assert 0.92 <= hits / reps <= 0.98, hits / reps
    assert np.mean(errors) < 0.85 * np.mean(raw_errors)


def test_predictive_distribution_matches_monte_carlo():
    rng = np.random.default_rng(19)
    params = make_items(rng, 60, c=0.2)
    obs, rest = np.arange(20), np.arange(20, 60)
    scores = (rng.random(20) < 0.5).astype(float)
    ps = predict_score(scores, params.subset(obs), params.subset(rest))
    post = ability_posterior(scores, params.subset(obs))
    thetas = rng.choice(post.grid, size=40_000, p=post.weights)
    sims = (rng.random((40_000, 40)) < prob(thetas[:, None], params.a[rest], params.b[rest], 0.2)).sum(axis=1)
    acc = (scores.sum() + sims) / 60
    assert ps.mean == pytest.approx(acc.mean(), abs=2e-3)
    assert ps.sd == pytest.approx(acc.std(), rel=0.03)
    assert ps.lo == pytest.approx(np.quantile(acc, 0.025), abs=1 / 60 + 1e-9)
    assert ps.hi == pytest.approx(np.quantile(acc, 0.975), abs=1 / 60 + 1e-9)
    approx = predict_score(scores, params.subset(obs), params.subset(rest), exact_max=0)
    assert approx.mean == pytest.approx(ps.mean, abs=1e-3)
    assert abs(approx.lo - ps.lo) <= 1 / 60 + 1e-9 and abs(approx.hi - ps.hi) <= 1 / 60 + 1e-9


def test_predict_score_variants():
    rng = np.random.default_rng(20)
    params = make_items(rng, 50)
    obs, rest = np.arange(25), np.arange(25, 50)
    scores = (rng.random(25) < 0.5).astype(float)
    # Nothing unanswered: the observed accuracy, exactly.
    ps = predict_score(scores, params.subset(obs), params.subset(np.arange(0)))
    assert ps.mean == ps.lo == ps.hi == pytest.approx(scores.mean())
    # Nothing observed: prediction from the prior alone, centred near the population mean accuracy.
    prior_only = predict_score(np.zeros(0), params.subset(np.arange(0)), params)
    assert prior_only.hi - prior_only.lo > 0.4
    # A point-ish ability (tiny SE) leaves only Bernoulli variance: narrower than with the posterior.
    post = predict_score(scores, params.subset(obs), params.subset(rest))
    pinned = predict_score(scores, params.subset(obs), params.subset(rest),
                           AbilityEstimate(0.0, 1e-3, 0.0, 0.0, "eap", 25))
    assert pinned.sd < post.sd
    as_posterior = predict_score(scores, params.subset(obs), params.subset(rest),
                                 Posterior(*_post(scores, params.subset(obs))))
    assert as_posterior.mean == pytest.approx(post.mean, abs=1e-12)
    # Parameter uncertainty widens the predictive distribution.
    se = {"a": np.full(25, 0.5), "b": np.full(25, 0.6)}
    drawn = predict_score(scores, params.subset(obs), params.subset(rest), param_se=se, observed_param_se=se,
                          n_param_draws=40, rng=np.random.default_rng(1))
    assert drawn.sd > post.sd
    with pytest.raises(InputError, match="rng"):
        predict_score(scores, params.subset(obs), params.subset(rest), param_se=se, n_param_draws=3)


def _post(scores: np.ndarray, params: ItemParams) -> tuple[np.ndarray, np.ndarray]:
    p = ability_posterior(scores, params)
    return p.grid, p.weights


def test_abilities_for_response_set_maps_ids_and_skips_prior_items():
    from calibration.ability import abilities_for
    from calibration.data import ResponseSet

    rng = np.random.default_rng(21)
    params = make_items(rng, 12)
    x = simulate(rng, rng.normal(0, 1, 5), params)
    m, j = np.nonzero(np.ones_like(x))
    # The response set lists its items in another order, plus one item the calibration never saw.
    order = rng.permutation(12)
    ids = tuple(params.item_ids[k] for k in order) + ("unknown",)
    inv = np.argsort(order)
    rs = ResponseSet.from_arrays(np.r_[m, 0], np.r_[inv[j], 12], np.r_[x[m, j], 1.0],
                                 [f"m{i}" for i in range(5)], ids)
    status = np.array(["calibrated"] * 11 + ["all_correct"])
    got = abilities_for(rs, params, "eap", item_status=status)
    ref = estimate_abilities(m[j < 11], j[j < 11], x[m, j][j < 11], params, "eap", n_models=5)
    np.testing.assert_allclose(got.theta, ref.theta, atol=1e-12)
    assert (got.n_items == 11).all()


def test_batch_posteriors_match_single_and_give_predictive_probabilities():
    from calibration.ability import ability_posteriors
    from calibration.irt import prob_matrix

    rng = np.random.default_rng(22)
    params = make_items(rng, 15)
    x = simulate(rng, rng.normal(0, 1, 4), params)
    m, j = np.nonzero(rng.random(x.shape) < 0.6)
    grid, w = ability_posteriors(m, j, x[m, j], params, n_models=4)
    for i in range(4):
        sel = j[m == i]
        single = ability_posterior(x[i, sel], params.subset(sel))
        np.testing.assert_allclose(w[i], single.weights, atol=1e-12)
    pred = w @ prob_matrix(grid, params)
    assert pred.shape == (4, 15) and np.all((pred > 0) & (pred < 1))
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_clipped_log_probs_are_bit_for_bit_the_plain_ones() -> None:
    """The in-place log-probabilities of the posteriors' hot loop are the numbers of
    log(clip(prob(...))) and log1p(-clip(prob(...))) exactly, 2PL and 4PL, either orientation."""
    from calibration.irt import EPS, clipped_log_probs, prob

    rng = np.random.default_rng(0)
    n = 300
    a, b = np.exp(rng.normal(0, 0.5, n)), rng.normal(0, 2, n)
    grid = np.linspace(-6, 6, 481)
    for c, d in ((np.zeros(n), np.ones(n)), (rng.uniform(0, 0.3, n), rng.uniform(0.8, 1, n))):
        p = np.clip(prob(grid[:, None], a, b, c, d), EPS, 1 - EPS)
        lp, lq = clipped_log_probs(grid[:, None], a, b, c, d)
        assert np.array_equal(lp, np.log(p)) and np.array_equal(lq, np.log1p(-p))
        p = np.clip(prob(grid[None, :], a[:, None], b[:, None], c[:, None], d[:, None]), EPS, 1 - EPS)
        lp, lq = clipped_log_probs(grid[None, :], a[:, None], b[:, None], c[:, None], d[:, None])
        assert np.array_equal(lp, np.log(p)) and np.array_equal(lq, np.log1p(-p))
    assert clipped_log_probs(0.3, 1.2, 0.1)[0] == np.log(prob(0.3, 1.2, 0.1))
