"""Adaptive testing: SE target through a runner, recovery of known abilities, exposure control, content."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError
from calibration.irt import ItemParams
from sampler.cat import (
    AdaptiveTest,
    CatConfig,
    calibrate_sympson_hetter,
    exposure_rates,
    final_estimate,
    mean_overlap,
    simulate,
)


@pytest.fixture(scope="module")
def bank() -> tuple[ItemParams, pd.DataFrame]:
    rng = np.random.default_rng(42)
    n = 400
    params = ItemParams(tuple(f"it{k:03d}" for k in range(n)), rng.lognormal(0.2, 0.3, n), rng.normal(0, 1.2, n))
    content = pd.DataFrame({"domain": rng.choice(["math", "law", "bio"], n, p=[0.5, 0.3, 0.2])})
    return params, content


def _request(item_id: str):
    from runners.base import Request, ScoringRule

    return Request(item_id=item_id, prompt="", item_type="mc", scoring=ScoringRule("choice", "A"),
                   choices=("yes", "no"), choice_labels=("A", "B"))


def test_cat_through_a_runner_reaches_the_se_target_and_recovers_ability(bank):
    from runners.simulated import SimulatedRunner

    params, _ = bank
    table = {i: (a, b, 0.0, 1.0) for i, a, b in zip(params.item_ids, params.a, params.b, strict=True)}
    cfg = CatConfig(max_items=80, se_target=0.3)
    test = AdaptiveTest(params, cfg)
    rng = np.random.default_rng(1)
    truth = np.linspace(-2, 2, 25)
    errors, lengths = [], []
    for t in truth:
        res = test.run(SimulatedRunner(t, table, rng), _request, rng)
        assert res.stop_reason == "se_target" and res.se <= 0.3
        errors.append(res.theta - t)
        lengths.append(res.n_items)
        # the engine's incremental EAP is the calibration room's EAP on the same answers
        theta, se = final_estimate(res, params, cfg)
        assert theta == pytest.approx(res.theta, abs=1e-6) and se == pytest.approx(res.se, abs=1e-6)
    rmse = float(np.sqrt(np.mean(np.square(errors))))
    assert rmse < 0.45  # SE 0.3 per respondent; RMSE well above that would mean a biased engine
    assert max(lengths) < 80


def test_max_items_stops_when_se_unreachable(bank):
    params, _ = bank
    test = AdaptiveTest(params, CatConfig(max_items=5, se_target=0.05))
    res = simulate(test, np.array([0.0]), np.random.default_rng(0))[0]
    assert res.n_items == 5 and res.stop_reason == "max_items"


def test_exposure_control_caps_exposure(bank):
    params, content = bank
    rng = np.random.default_rng(7)
    thetas = rng.normal(0, 1, 300)
    free = CatConfig(max_items=20, se_target=None)
    base = simulate(AdaptiveTest(params, free), thetas, rng)
    base_max = exposure_rates(base, params.item_ids).max()
    assert base_max > 0.5  # maximum information alone reuses the best items for nearly everyone
    ctl = CatConfig(max_items=20, se_target=None, exposure="randomesque", top_k=3)
    k, history = calibrate_sympson_hetter(params, ctl, thetas, rng, r_max=0.2, n_iter=8)
    controlled = simulate(AdaptiveTest(params, CatConfig(**{**ctl.__dict__, "exposure": "both", "exposure_params": k})),
                          rng.normal(0, 1, 300), rng)
    rates = exposure_rates(controlled, params.item_ids)
    assert rates.max() <= 0.26  # r_max 0.2 plus sampling noise of 300 fresh respondents
    assert mean_overlap(controlled) < mean_overlap(base)
    assert history[0] > history[-1]


def test_content_balancing_follows_targets(bank):
    params, content = bank
    cfg = CatConfig(max_items=30, se_target=None,
                    content_targets=CatConfig.content({"domain": {"math": 0.5, "law": 0.3, "bio": 0.2}}))
    res = simulate(AdaptiveTest(params, cfg, content), np.array([1.0, -1.0]), np.random.default_rng(3))
    pos = {i: k for k, i in enumerate(params.item_ids)}
    for r in res:
        got = content.domain.iloc[[pos[i] for i in r.item_ids]].value_counts().to_dict()
        assert got == {"math": 15, "law": 9, "bio": 6}


def test_bad_config_is_rejected(bank):
    params, _ = bank
    with pytest.raises(InputError, match="exposure"):
        CatConfig(exposure="sh")
    with pytest.raises(InputError, match="exposure_params"):
        CatConfig(exposure="sympson-hetter")
    with pytest.raises(InputError, match="content key"):
        AdaptiveTest(params, CatConfig(content_targets=CatConfig.content({"topic": {"x": 1.0}})))
