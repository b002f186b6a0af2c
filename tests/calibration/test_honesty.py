"""calibration.honesty: the statistics behind a leaderboard's error bars (rank uncertainty, separability,
parameter draws, the coverage simulation, leave-one-model-out replay) against known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from adtbase.errors import InputError
from calibration import (
    draw_params,
    leave_one_model_out,
    rank_distribution,
    separability,
    simulate_responses,
    simulated_coverage,
)
from calibration.ability import default_grid
from calibration.irt import ItemParams


def normal_posteriors(means: list[float], sds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    g = default_grid()
    w = np.stack([norm.pdf(g, m, s) for m, s in zip(means, sds, strict=True)])
    return g, w / w.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------ ranks
def test_rank_probabilities_match_the_normal_answer(rng: np.random.Generator) -> None:
    # P(X > Y) for X ~ N(0.3, 0.2), Y ~ N(0, 0.2) is Phi(0.3 / sqrt(0.08)) = 0.856; a third model far
    # below is last for sure.
    g, w = normal_posteriors([0.3, 0.0, -3.0], [0.2, 0.2, 0.2])
    probs, lo, hi = rank_distribution(g, w, rng, n_draws=8000)
    want = norm.cdf(0.3 / np.sqrt(0.08))
    assert probs[0, 0] == pytest.approx(want, abs=0.015)
    assert probs[1, 0] == pytest.approx(1 - want, abs=0.015)
    assert probs[2, 2] == 1.0
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0)
    assert (lo.tolist(), hi.tolist()) == ([1, 1, 3], [2, 2, 3])


def test_identical_posteriors_share_the_ranks_evenly(rng: np.random.Generator) -> None:
    g, w = normal_posteriors([0.5] * 4, [0.3] * 4)
    probs, lo, hi = rank_distribution(g, w, rng, n_draws=8000)
    np.testing.assert_allclose(probs, 0.25, atol=0.02)
    assert set(lo) == {1} and set(hi) == {4}


def test_rank_recovery_of_two_models() -> None:
    # Well separated: N(1, 0.1) beats N(-1, 0.1) with probability Phi(2 / sqrt(0.02)) = 1 - 1e-45.
    g, w = normal_posteriors([-1.0, 1.0], [0.1, 0.1])
    probs, lo, hi = rank_distribution(g, w, np.random.default_rng(7), n_draws=4000)
    assert probs[1, 0] == 1.0 and probs[0, 1] == 1.0
    assert (lo.tolist(), hi.tolist()) == ([2, 1], [2, 1])
    # Identical: a fair coin; the Monte Carlo SE of a proportion of 4,000 draws at 0.5 is 0.0079, so
    # 0.03 is ~3.8 SEs (the seed is fixed; the tolerance says how far an honest draw may stray).
    g, w = normal_posteriors([0.2, 0.2], [0.4, 0.4])
    probs, lo, hi = rank_distribution(g, w, np.random.default_rng(7), n_draws=4000)
    np.testing.assert_allclose(probs, 0.5, atol=0.03)
    assert (lo.tolist(), hi.tolist()) == ([1, 1], [2, 2])


def test_parameter_draws_enter_the_ranks_jointly() -> None:
    """Posteriors under K parameter draws: each replicate uses one draw for every model. Two draws that swap
    a clear order give P(best) = 1/2 each; a draw moving both models together changes no rank (mixing the
    draws per model would have made them overlap)."""
    g, a_ahead = normal_posteriors([1.0, -1.0], [0.1, 0.1])
    _, b_ahead = normal_posteriors([-1.0, 1.0], [0.1, 0.1])
    probs, _, _ = rank_distribution(g, np.stack([a_ahead, b_ahead]), np.random.default_rng(3), n_draws=4000)
    # Binomial(4000, 1/2): SD 0.0079; 0.03 is ~3.8 SDs.
    assert probs[0, 0] == pytest.approx(0.5, abs=0.03) and probs[1, 0] == pytest.approx(0.5, abs=0.03)
    _, shifted = normal_posteriors([2.5, 1.5], [0.1, 0.1])   # mixed per model, 1.5 would beat 1.0 a quarter of the time
    probs, lo, hi = rank_distribution(g, np.stack([a_ahead, shifted]), np.random.default_rng(3), n_draws=4000)
    assert probs[0, 0] == 1.0 and (lo.tolist(), hi.tolist()) == ([1, 2], [1, 2])
    # One draw is the 2-D case, draw for draw.
    two_d = rank_distribution(g, a_ahead, np.random.default_rng(5), n_draws=500)
    three_d = rank_distribution(g, a_ahead[None], np.random.default_rng(5), n_draws=500)
    for x, y in zip(two_d, three_d, strict=True):
        np.testing.assert_array_equal(x, y)


def test_rank_distribution_rejects_a_misaligned_grid(rng: np.random.Generator) -> None:
    with pytest.raises(InputError, match="do not match a grid"):
        rank_distribution(np.linspace(-4, 4, 11), np.ones((2, 10)), rng)


def test_separability_is_interval_overlap() -> None:
    lo, hi = np.array([1.0, 0.5, -0.2, -2.0]), np.array([2.0, 1.2, 0.6, -1.0])
    assert separability(lo, hi) == [[1], [0, 2], [1], []]


# ------------------------------------------------------------------------------------------------ parameter draws
def test_parameter_draws_follow_their_standard_errors(rng: np.random.Generator) -> None:
    n = 20_000
    p = ItemParams(tuple(f"i{k}" for k in range(n)), np.full(n, 1.5), np.zeros(n), np.full(n, 0.2), np.ones(n))
    same = draw_params(p, {}, rng)
    assert np.array_equal(same.a, p.a) and np.array_equal(same.b, p.b) and np.array_equal(same.c, p.c)
    d = draw_params(p, {"a": np.full(n, 0.15), "b": np.full(n, 0.3), "c": np.full(n, 0.02),
                        "d": np.full(n, np.nan)}, rng)
    assert np.std(d.b) == pytest.approx(0.3, rel=0.03)
    assert np.std(np.log(d.a)) == pytest.approx(0.1, rel=0.03)       # delta method: se_a / a
    assert np.std(d.c) == pytest.approx(0.02, rel=0.06)
    assert np.array_equal(d.d, p.d)                                   # NaN SE: held fixed
    assert (d.a > 0).all() and ((d.c > 0) & (d.c < 1)).all()


def test_parameter_draws_what_predict_score_relies_on() -> None:
    n = 30
    p = ItemParams(tuple(f"i{k}" for k in range(n)), np.full(n, 1.2), np.linspace(-2, 2, n), np.full(n, 0.1),
                   np.full(n, 0.95))
    # No SEs: the parameters themselves, and nothing drawn from the generator.
    for none in (None, {}):
        r = np.random.default_rng(3)
        assert draw_params(p, none, r) is p
        assert r.random() == np.random.default_rng(3).random()
    # A parameter without an SE is kept and draws nothing: b alone draws as it would with the others absent.
    only_b = draw_params(p, {"b": np.full(n, 0.5)}, np.random.default_rng(4))
    assert np.array_equal(only_b.a, p.a) and np.array_equal(only_b.c, p.c) and np.array_equal(only_b.d, p.d)
    np.testing.assert_array_equal(only_b.b, p.b + np.random.default_rng(4).normal(0.0, 1.0, n) * 0.5)
    # Seeded draws repeat; d is never below c; SEs must align with the items.
    se = {k: np.full(n, 0.05) for k in "abcd"}
    one, two = draw_params(p, se, np.random.default_rng(9)), draw_params(p, se, np.random.default_rng(9))
    assert all(np.array_equal(getattr(one, k), getattr(two, k)) for k in "abcd")
    assert (one.d >= one.c).all()
    with pytest.raises(InputError, match="shape"):
        draw_params(p, {"a": np.ones(n - 1)}, np.random.default_rng(0))


# ------------------------------------------------------------------------------------------------ coverage
def form_params(rng: np.random.Generator, n: int = 60) -> ItemParams:
    return ItemParams(tuple(f"i{k}" for k in range(n)), np.exp(rng.normal(0.2, 0.3, n)), rng.normal(0, 1, n))


def test_coverage_is_nominal_with_exact_parameters_and_drops_with_large_errors(rng: np.random.Generator) -> None:
    params = form_params(rng)
    exact = simulated_coverage(params, {}, rng, n_worlds=80, per_world=25, theta_range=(-1.0, 1.0))
    # 2,000 respondents: Monte Carlo SE of a 95% coverage is 0.5 points.
    assert exact.coverage == pytest.approx(0.95, abs=0.02)
    assert exact.coverage_point_params == pytest.approx(0.95, abs=0.02)
    noisy = simulated_coverage(params, {"a": np.full(60, 0.3), "b": np.full(60, 1.5)}, rng, n_worlds=80,
                               per_world=25, theta_range=(-1.0, 1.0))
    # Shared calibration error shifts everyone in a world by about sd(b error) / sqrt(n) = 0.19 against
    # an SE of about 0.23: the intervals, blind to it, hold ~P(|Z| < 1.96 * 0.23 / 0.30) = 0.87.
    assert 0.80 < noisy.coverage < exact.coverage - 0.04
    assert noisy.coverage_point_params == pytest.approx(0.95, abs=0.02)
    assert set(noisy.by_band["ability band"]) == {"-1 to 1"}
    assert noisy.n == 2000 and noisy.n_items == 60


def test_coverage_recovery_with_exact_parameters_on_a_40_item_form() -> None:
    # SE 0 on every parameter: every world is the point parameters, so the 95% EAP intervals must hold
    # ~95%. 200 worlds x 25 = 5,000 respondents: Monte Carlo SE 0.3 points, so 0.93-0.97 is ~6.5 SEs.
    # Abilities over [-2, 2]: beyond that the N(0, 1) prior's shrinkage lowers the frequentist coverage
    # of a 40-item form's EAP intervals (~0.88 at |theta| > 2), a property of EAP, not of the check.
    rng = np.random.default_rng(40)
    params = form_params(rng, 40)
    zero = {k: np.zeros(40) for k in "abcd"}
    cov = simulated_coverage(params, zero, rng, n_worlds=200, per_world=25, theta_range=(-2.0, 2.0))
    assert cov.n == 5000 and cov.n_items == 40 and cov.n_worlds == 200 and cov.theta_range == (-2.0, 2.0)
    assert 0.93 <= cov.coverage <= 0.97
    assert 0.93 <= cov.coverage_point_params <= 0.97
    assert cov.mc_se == pytest.approx(np.sqrt(cov.coverage * (1 - cov.coverage) / 5000))
    assert set(cov.by_band["ability band"]) == {"-2 to -1", "-1 to 1", "1 to 2"}
    assert cov.by_band["n"].sum() == 5000


def test_coverage_needs_items(rng: np.random.Generator) -> None:
    empty = ItemParams((), np.zeros(0), np.zeros(0))
    with pytest.raises(InputError, match="no calibrated items"):
        simulated_coverage(empty, {}, rng)


# ------------------------------------------------------------------------------------------------ replay
def test_leave_one_model_out_predicts_full_bank_accuracy(rng: np.random.Generator) -> None:
    n_items, n_models = 400, 16
    params = ItemParams(tuple(f"it{k:03d}" for k in range(n_items)), np.exp(rng.normal(0.1, 0.3, n_items)),
                        rng.normal(0, 1, n_items))
    theta = np.linspace(-1.5, 1.5, n_models)
    rs = simulate_responses(params, theta, rng, model_ids=[f"m{k:02d}" for k in range(n_models)])
    df = rs.to_frame()
    form = list(params.item_ids[:80])
    loo = leave_one_model_out(df, form)
    assert loo["model"].tolist() == [f"m{k:02d}" for k in range(n_models)]
    assert loo["n_form"].between(70, 80).all()  # items all right or all wrong in a refit are not calibrated
    assert (loo["lo"] <= loo["predicted"]).all() and (loo["predicted"] <= loo["hi"]).all()
    assert (loo["predicted"] - loo["actual"]).abs().mean() < 0.04
    assert loo["covered"].sum() >= 13          # of 16 at 95%: 12 or fewer has probability < 1%
    assert np.corrcoef(loo["theta_form"], theta)[0, 1] > 0.9
    # A model seen only on the form has nothing to predict: it is left out.
    only_form = pd.concat([df, pd.DataFrame({"model": "newcomer", "item_id": form, "score": 1.0})])
    assert "newcomer" not in set(leave_one_model_out(only_form, form, models=["newcomer"])["model"])


def test_intervals_with_parameter_error_restore_coverage(rng: np.random.Generator) -> None:
    """The product's intervals (widened by the EAP's spread over parameter draws) hold ~95% where
    intervals that take the parameters as exact do not; respondents from the prior."""
    from calibration import Prior

    params = form_params(rng)
    se = {"a": np.full(60, 0.15), "b": np.full(60, 0.6)}
    cov = simulated_coverage(params, se, rng, n_worlds=80, per_world=25, param_draws=20,
                             prior=Prior.normal(), abilities_from="prior")
    # 2,000 respondents in 80 worlds (errors shared within a world): allow about 3 cluster SEs
    assert 0.91 <= cov.coverage <= 0.985
    assert cov.coverage_exact_intervals < cov.coverage - 0.02
    assert cov.param_draws == 20 and cov.abilities_from == "prior"
