"""The human queue's pure rules (``adt.workflow.judge_queue``): the panel per answer and the routing."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from adt.workflow.judge_queue import (
    human_labels,
    level_labels,
    panel_judgments,
    panel_view,
    route_cases,
    split_case,
)
from adtbase.errors import InputError
from adtbase.rubric import JUDGE_FIELDS, build_judge_key


def call(item: str, judge: str, order: str, verdict: float, template: str = "judge-pairwise-en@1") -> dict:
    return {"run_id": "f:m", "item_id": item, "model": "m", "judge": judge, "template_id": template, "order": order,
            "verdict": verdict}


def test_panel_view_combines_orders_and_keeps_humans_apart() -> None:
    frame = pd.DataFrame([
        call("it_a", "j1", "ab", 1.0), call("it_a", "j1", "ba", 0.0),      # inconsistent: a tie, 0.5
        call("it_a", "j2", "ab", 1.0), call("it_a", "j2", "ba", 1.0),
        call("it_a", "human:ana", "", 0.0, "human"),
        call("it_b", "j1", "", 0.25, "judge-rubric-en@1"), call("it_b", "j2", "", math.nan, "judge-rubric-en@1"),
    ])
    view = panel_view(frame).set_index("item_id")
    a, b = view.loc["it_a"], view.loc["it_b"]
    assert a["verdicts"] == {"j1": 0.5, "j2": 1.0} and a["humans"] == {"ana": 0.0}
    assert (a["score"], a["spread"], a["n_judges"], a["n_inconsistent"]) == (0.75, 0.25, 2, 1)
    assert b["score"] == 0.25 and b["n_judges"] == 1 and math.isnan(b["spread"])   # an unparseable verdict: none


def test_routing_takes_the_budget_by_disagreement_then_nearness_to_the_threshold() -> None:
    view = pd.DataFrame({"score": [0.9, 0.5, 0.1, 0.55, 1.0, 0.0],
                         "spread": [0.5, 0.0, 0.4, 0.0, math.nan, 0.1]})
    why = route_cases(view, budget=4 / 6)
    assert list(why) == ["disagreement", "threshold", "disagreement", "threshold", "", ""]
    assert list(route_cases(view, budget=0.0)) == [""] * 6
    assert (route_cases(view, budget=1.0) != "").all()
    assert (route_cases(view, budget=0.1) != "").sum() == 1          # rounded up: at least one
    with pytest.raises(InputError, match="--budget 1.5"):
        route_cases(view, budget=1.5)
    # a rater model's confidence, where there is one, takes the first half's place (uncovered answers first)
    sure = view.assign(confidence=[0.99, 0.6, math.nan, 0.95, 0.7, 0.99])
    assert list(route_cases(sure, budget=4 / 6)) == ["threshold", "confidence", "confidence", "threshold", "", ""]


def test_cases_and_levels() -> None:
    assert split_case("round-1:meta-llama/Llama-3/it_0123") == ("round-1:meta-llama/Llama-3", "it_0123")
    with pytest.raises(InputError, match="RUN_ID/ITEM_ID"):
        split_case("it_0123")
    pair = build_judge_key({"baseline": "b"}, allowed=JUDGE_FIELDS).text()
    assert level_labels(pair) == ("baseline better", "tie", "candidate better")
    ref = build_judge_key({"reference": "r"}, allowed=JUDGE_FIELDS).text()
    assert len(level_labels(ref)) == 3 and level_labels(ref)[0].startswith("0: incorrect")
    two = build_judge_key({"rubric": {"criteria": [{"name": "a", "levels": ["x", "y", "z"]},
                                                   {"name": "b", "levels": ["p", "q"]}]}}, allowed=JUDGE_FIELDS).text()
    assert level_labels(two) == ("0 of 3", "1 of 3", "2 of 3", "3 of 3")


def test_human_labels_are_one_per_case_and_leave_the_judges_rows() -> None:
    frame = pd.DataFrame([call("it_a", "j1", "ab", 1.0), call("it_a", "human:ana", "", 1.0, "human"),
                          call("it_a", "human:ben", "", 0.5, "human"), call("it_b", "j1", "", 0.25, "t")])
    judges, labels = human_labels(frame)
    assert list(judges["judge"]) == ["j1", "j1"]
    assert labels.to_dict("records") == [{"run_id": "f:m", "item_id": "it_a", "label": 0.75}]


def test_the_panel_leaves_out_self_family_calls_when_the_bank_says_so() -> None:
    """With judge_exclude_self the queue shows the score `adt judge run` stored: without the candidate's family."""
    def by(judge: str, judge_model: str, verdict: float, order: str = "") -> dict:
        return {**call("it_a", judge, order, verdict, "judge-rubric-en@1" if not order else "judge-pairwise-en@1"),
                "model": "llama-3-8b", "judge_model": judge_model}

    frame = pd.DataFrame([by("self", "llama-3-70b", 1.0), by("other", "qwen2-72b", 0.0),
                          {**by("human:ana", "", 0.5), "template_id": "human"}])
    assert panel_view(panel_judgments(frame, exclude_self=False)).iloc[0]["score"] == 0.5
    kept = panel_view(panel_judgments(frame, exclude_self=True)).iloc[0]
    assert kept["score"] == 0.0 and kept["verdicts"] == {"other": 0.0} and kept["humans"] == {"ana": 0.5}
