"""The answer-key check: recovery of planted key errors from seeded simulations, and agreement with a direct
enumeration of the same model for one item."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from adtbase.errors import InputError
from calibration import check_keys


def simulate(rng: np.random.Generator, n: int = 600, k: int = 10, n_flip: int = 30):
    """Solvers answer by a 1PL with a 1-in-k guessing floor; misses fall on each item's own attractive
    distractors (Dirichlet(0.5) pull), as on MMLU-Pro. ``n_flip`` stored keys moved to another option."""
    theta = np.linspace(-2.0, 2.0, 12)
    b = rng.normal(0, 1, n)
    key = rng.integers(0, k, n)
    p = 1 / k + (1 - 1 / k) / (1 + np.exp(-(theta[None, :] - b[:, None])))
    right = rng.random((n, len(theta))) < p
    answers = np.empty((n, len(theta)), dtype=np.int64)
    for i in range(n):
        pull = rng.dirichlet(np.full(k - 1, 0.5))
        wrong = [o for o in range(k) if o != key[i]]
        answers[i] = np.where(right[i], key[i], rng.choice(wrong, len(theta), p=pull))
    stored = key.copy()
    flipped = rng.choice(n, n_flip, replace=False)
    for i in flipped:
        stored[i] = rng.choice([o for o in range(k) if o != key[i]])
    return answers, np.full(n, k), stored, flipped, theta, b, key


def test_planted_key_errors_are_found_and_few_sound_keys_are_flagged():
    answers, n_opt, stored, flipped, theta, b, _ = simulate(np.random.default_rng(7))
    res = check_keys(answers, n_opt, stored)
    planted = np.zeros(len(stored), bool)
    planted[flipped] = True
    assert res.key_suspect[planted].mean() >= 0.8   # flips on items too hard for every solver stay hidden
    assert res.key_suspect[~planted].mean() <= 0.03
    assert spearmanr(res.solver_theta, theta).statistic >= 0.9
    assert np.corrcoef(res.difficulty, b)[0, 1] >= 0.7


def test_true_key_is_recovered_for_flagged_items():
    rng = np.random.default_rng(3)
    answers, n_opt, stored, flipped, _, _, truth = simulate(rng)
    res = check_keys(answers, n_opt, stored)
    found = flipped[res.key_suspect[flipped]]
    assert len(found) >= 25
    assert (res.posterior[found].argmax(1) == truth[found]).mean() >= 0.9


def enumerate_posterior(ans, k, key, theta, prior_wrong, beta, grid, b_sd):
    """The key posterior of one item written out term by term (no vectorisation, no shared code)."""
    logs = []
    for cand in range(k):
        total = 0.0
        for b in grid:
            lik = math.exp(-0.5 * (b / b_sd) ** 2)
            misses = []
            for a, t in zip(ans, theta, strict=True):
                p = 1 / k + (1 - 1 / k) / (1 + math.exp(-(t - b)))
                if a == cand:
                    lik *= p
                else:
                    lik *= 1 - p
                    if a >= 0:
                        misses.append(a)
            # Polya urn over the k-1 wrong options for the misses, in order
            counts = {o: 0 for o in range(k) if o != cand}
            for j, a in enumerate(misses):
                lik *= (beta + counts[a]) / ((k - 1) * beta + j)
                counts[a] += 1
            total += lik
        prior = (1 - prior_wrong) if cand == key else prior_wrong / (k - 1)
        logs.append(prior * total)
    z = sum(logs)
    return [x / z for x in logs]


def test_posterior_agrees_with_direct_enumeration():
    grid = np.linspace(-4.0, 4.0, 25)
    theta = np.array([-1.5, -0.5, 0.3, 1.2, 2.0])
    rows = [[2, 2, 0, 0, 0], [1, -1, 3, 3, 1], [0, 0, 0, 0, 0]]
    answers = np.array(rows)
    res = check_keys(answers, np.full(3, 4), np.array([2, 1, 0]), solver_theta=theta, prior_wrong=0.15,
                     distractor_concentration=0.5)
    for i, row in enumerate(rows):
        want = enumerate_posterior(row, 4, [2, 1, 0][i], theta, 0.15, 0.5, grid, 1.5)
        assert res.posterior[i, :4] == pytest.approx(want, abs=1e-9)
    assert res.key_suspect.tolist() == [True, False, False]
    assert res.trivial.tolist() == [False, False, True]


def test_bad_input_is_named():
    with pytest.raises(InputError, match="key index"):
        check_keys(np.zeros((2, 3), int), np.array([4, 4]), np.array([0, 5]))
    with pytest.raises(InputError, match="do not match"):
        check_keys(np.zeros((2, 3), int), np.array([4]), np.array([0, 1]))
    with pytest.raises(InputError, match="solver_theta"):
        check_keys(np.zeros((2, 3), int), np.array([4, 4]), np.array([0, 1]), solver_theta=np.zeros(2))


def test_answers_outside_the_options_count_as_no_answer():
    a = np.array([[0, 0, 7, -1]] * 5)
    res = check_keys(a, np.full(5, 4), np.zeros(5, int), iters=2)
    assert res.n_answered.tolist() == [2] * 5
    assert not res.key_suspect.any()
