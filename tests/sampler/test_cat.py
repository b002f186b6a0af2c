"""Adaptive testing: SE target through a runner, recovery of known abilities, exposure control, content, and
the step API (``CatSession``: next_item / update) against the loop as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError
from calibration.irt import ItemParams, prob
from sampler.cat import (
    AdaptiveTest,
    CatConfig,
    CatResult,
    calibrate_sympson_hetter,
    exposure_rates,
    final_estimate,
    mean_overlap,
    simulate,
)
from tests.golden import assert_tree_close


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


# -- the step API (CatSession) -------------------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "cat_baseline.json"
THETAS = (-1.5, 0.0, 0.7, 2.0)


def _drive(test: AdaptiveTest, theta: float, rng: np.random.Generator) -> CatResult:
    """A simulated respondent of ability ``theta`` through next_item / update (answers drawn from ``rng``)."""
    p = test.params
    pos = {i: k for k, i in enumerate(p.item_ids)}
    truth = prob(theta, p.a, p.b, p.c, p.d)
    session = test.session(rng)
    while (item := session.next_item()) is not None:
        assert session.next_item() == item  # asked again before the answer: the same item, no new draw
        session.update(item, float(rng.random() < truth[pos[item]]))
    assert session.next_item() is None and session.stop_reason is not None
    return session.result()


def _as_dict(r: CatResult) -> dict[str, Any]:
    return {"item_ids": list(r.item_ids), "scores": list(r.scores), "theta": r.theta, "se": r.se,
            "theta_path": list(r.theta_path), "se_path": list(r.se_path), "stop_reason": r.stop_reason,
            "selected": list(r.selected)}


def test_the_step_api_gives_the_old_loops_items_and_estimates(bank):
    """Recorded from ``simulate`` (the loop as it was, at commit 1bc877e): the same respondents driven by
    next_item / update get the same items, scores, EAP path and stop reason, for every stopping rule,
    exposure control and content balancing."""
    params, content = bank
    golden = json.loads(GOLDEN.read_text())["sampler"]
    cases = {
        "se_target": (CatConfig(max_items=80, se_target=0.3), None, 11),
        "min_items": (CatConfig(max_items=30, min_items=12, se_target=0.5), None, 12),
        "max_items": (CatConfig(max_items=6, se_target=0.05), None, 13),
        "randomesque": (CatConfig(max_items=20, se_target=None, exposure="randomesque", top_k=4), None, 14),
        "content": (CatConfig(max_items=30, se_target=None,
                              content_targets=CatConfig.content({"domain": {"math": 0.5, "law": 0.3, "bio": 0.2}})),
                    content, 15),
    }
    got: dict[str, Any] = {}
    for name, (cfg, frame, seed) in cases.items():
        rng = np.random.default_rng(seed)
        got[name] = [_as_dict(_drive(AdaptiveTest(params, cfg, frame), t, rng)) for t in THETAS]
    rng = np.random.default_rng(16)
    ctl = CatConfig(max_items=15, se_target=0.4, exposure="randomesque", top_k=3)
    k, history = calibrate_sympson_hetter(params, ctl, rng.normal(0, 1, 60), rng, r_max=0.2, n_iter=3)
    got["sh_k"], got["sh_history"] = [float(x) for x in k], history
    both = AdaptiveTest(params, CatConfig(**{**ctl.__dict__, "exposure": "both", "exposure_params": k}))
    got["both"] = [_as_dict(_drive(both, t, rng)) for t in THETAS]
    small = AdaptiveTest(params.subset(list(range(12))), CatConfig(max_items=50, se_target=0.01))
    rng = np.random.default_rng(17)
    got["pool_exhausted"] = [_as_dict(_drive(small, t, rng)) for t in THETAS]
    assert set(got) == set(golden)
    for name, want in golden.items():
        assert_tree_close(got[name], want, name)
    # and run_with, the simulation driver, is the same loop
    rng = np.random.default_rng(11)
    again = simulate(AdaptiveTest(params, cases["se_target"][0]), np.array(THETAS), rng)
    assert [_as_dict(r) for r in again] == got["se_target"]


def test_a_session_takes_only_the_asked_item_and_a_score_in_range(bank):
    params, _ = bank
    session = AdaptiveTest(params, CatConfig(max_items=2, se_target=None)).session(np.random.default_rng(0))
    with pytest.raises(InputError, match="no item was asked"):
        session.update(params.item_ids[0], 1.0)
    with pytest.raises(InputError, match="not stopped yet"):
        session.result()
    first = session.next_item()
    assert first is not None and session.stop_reason is None
    other = next(i for i in params.item_ids if i != first)
    with pytest.raises(InputError, match=f"when item {first} was asked"):
        session.update(other, 1.0)
    with pytest.raises(InputError, match="outside"):
        session.update(first, 1.5)
    theta0 = session.theta
    session.update(first, 1.0)
    assert session.theta > theta0 and session.item_ids == (first,) and session.scores == (1.0,)
    second = session.next_item()
    assert second not in (None, first)
    session.update(second, 0.0)
    assert session.next_item() is None and session.next_item() is None
    res = session.result()
    assert res.stop_reason == "max_items" and res.item_ids == (first, second) and res.theta == session.theta
