"""Linking: recovery of known (A, B), bootstrap SEs that match the spread, the fixed-anchor helper."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from adtbase.errors import InputError
from calibration.irt import ItemParams, prob
from calibration.linking import (
    fixed_from_calibration,
    link,
    stocking_lord_constants,
    transform_params,
    transform_se,
    transform_theta,
)

A_TRUE, B_TRUE = 1.3, -0.4


def old_and_new(rng: np.random.Generator, n: int = 30, noise: float = 0.0, c: float = 0.0) -> tuple[ItemParams, ItemParams]:
    """Old-scale items, and the same items as a new calibration would report them (inverse transform + noise)."""
    ids = tuple(f"it{j}" for j in range(n))
    a = rng.lognormal(0.2, 0.3, n)
    b = rng.normal(0, 1, n)
    old = ItemParams(ids, a, b, np.full(n, c))
    a_new = a * A_TRUE * np.exp(rng.normal(0, noise, n))
    b_new = (b - B_TRUE) / A_TRUE + rng.normal(0, noise, n)
    return old, ItemParams(ids, a_new, b_new, np.full(n, c))


@pytest.mark.parametrize("method", ["stocking_lord", "mean_sigma", "mean_mean"])
def test_exact_transform_is_recovered(method):
    old, new = old_and_new(np.random.default_rng(1), c=0.2)
    res = link(old, new, method)
    assert res.A == pytest.approx(A_TRUE, abs=1e-4)
    assert res.B == pytest.approx(B_TRUE, abs=1e-4)
    assert res.n_common == 30 and np.isnan(res.se_A)
    mapped = res.params(new)
    np.testing.assert_allclose(mapped.a, old.a, rtol=1e-4)
    np.testing.assert_allclose(mapped.b, old.b, atol=1e-4)


def test_transform_leaves_probabilities_invariant():
    rng = np.random.default_rng(2)
    _, new = old_and_new(rng, c=0.1)
    theta = rng.normal(0, 1, 50)
    mapped = transform_params(new, 1.7, 0.3)
    np.testing.assert_allclose(prob(transform_theta(theta, 1.7, 0.3)[:, None], mapped.a, mapped.b, mapped.c),
                               prob(theta[:, None], new.a, new.b, new.c), atol=1e-12)
    se = transform_se({"a": np.ones(3), "b": np.ones(3), "c": np.ones(3)}, 2.0)
    assert se["a"][0] == 0.5 and se["b"][0] == 2.0 and se["c"][0] == 1.0


def test_stocking_lord_matches_brute_force_minimum():
    old, new = old_and_new(np.random.default_rng(3), noise=0.15)
    grid = np.linspace(-4, 4, 81)
    w = norm.pdf(grid) / norm.pdf(grid).sum()
    A, B, _ = stocking_lord_constants(old, new, grid, w)
    target = prob(grid[:, None], old.a, old.b).sum(axis=1)
    As, Bs = np.meshgrid(np.linspace(A - 0.05, A + 0.05, 101), np.linspace(B - 0.05, B + 0.05, 101))
    loss = np.array([[w @ (target - prob(grid[:, None], new.a / a_, a_ * new.b + b_).sum(axis=1)) ** 2
                      for a_, b_ in zip(ra, rb, strict=True)] for ra, rb in zip(As, Bs, strict=True)])
    k = np.unravel_index(np.argmin(loss), loss.shape)
    assert A == pytest.approx(As[k], abs=1.5e-3)
    assert B == pytest.approx(Bs[k], abs=1.5e-3)


def test_noisy_recovery_and_bootstrap_se_match_spread():
    # Over seeded replications of estimation noise: estimates centre on the truth, and the bootstrap
    # SE (over common items) agrees with the spread of the estimates across replications.
    rng = np.random.default_rng(4)
    est, ses = [], []
    for _ in range(30):
        old, new = old_and_new(rng, n=25, noise=0.2)
        res = link(old, new, rng=rng, n_boot=60)
        est.append((res.A, res.B))
        ses.append((res.se_A, res.se_B))
    est_arr, se_arr = np.array(est), np.array(ses)
    spread = est_arr.std(axis=0, ddof=1)
    assert abs(est_arr[:, 0].mean() - A_TRUE) < 3 * spread[0] / np.sqrt(30) + 0.02
    assert abs(est_arr[:, 1].mean() - B_TRUE) < 3 * spread[1] / np.sqrt(30) + 0.02
    ratio = se_arr.mean(axis=0) / spread
    assert np.all((ratio > 0.6) & (ratio < 1.6)), ratio


def test_parameter_se_draws_widen_bootstrap():
    old, new = old_and_new(np.random.default_rng(5), n=20, noise=0.05)
    plain = link(old, new, rng=np.random.default_rng(9), n_boot=80)
    se = {"a": np.full(20, 0.3), "b": np.full(20, 0.3)}
    drawn = link(old, new, rng=np.random.default_rng(9), n_boot=80, se_old=se, se_new=se)
    assert drawn.se_B > plain.se_B and drawn.se_A > plain.se_A


def test_anchor_subset_and_errors():
    old, new = old_and_new(np.random.default_rng(6), noise=0.0)
    res = link(old, new, anchors=["it0", "it3", "it5", "it9"])
    assert res.n_common == 4 and res.A == pytest.approx(A_TRUE, abs=1e-3)
    with pytest.raises(InputError, match="'nope'"):
        link(old, new, anchors=["it0", "nope"])
    with pytest.raises(InputError, match="at least 2"):
        link(old, ItemParams(("zz",), np.ones(1), np.zeros(1)))
    with pytest.raises(InputError, match="unknown linking method"):
        link(old, new, "haebara")


def test_fixed_from_calibration():
    params = ItemParams(("x", "y", "z"), np.array([1.0, 2.0, 0.5]), np.array([0.0, 1.0, -1.0]),
                        np.array([0.0, 0.25, 0.0]))
    prev = SimpleNamespace(params=params, item_status=np.array(["calibrated", "calibrated", "all_correct"]))
    fixed = fixed_from_calibration(prev)
    assert fixed == {"x": (1.0, 0.0, 0.0, 1.0), "y": (2.0, 1.0, 0.25, 1.0)}
    assert list(fixed_from_calibration(prev, ["y"])) == ["y"]
    with pytest.raises(InputError, match="'z' has status 'all_correct'"):
        fixed_from_calibration(prev, ["x", "z"])
    with pytest.raises(InputError, match="'w'"):
        fixed_from_calibration(prev, ["w"])
    linked = fixed_from_calibration(params, ["y"], linking=link(*old_and_new(np.random.default_rng(7))))
    assert linked["y"][0] == pytest.approx(2.0 / A_TRUE, rel=1e-3)
    assert linked["y"][1] == pytest.approx(A_TRUE * 1.0 + B_TRUE, abs=1e-3)
