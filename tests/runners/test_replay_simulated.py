"""replay (recorded answers of real models) and simulated (seeded IRT respondent) backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError, RunnerError
from calibration.irt import prob
from runners import create
from runners.base import Request, ScoringRule
from runners.replay import ReplayRunner
from runners.simulated import SimulatedRunner


def mc(item_id: str, answer: str = "A", n: int = 4) -> Request:
    return Request(item_id, f"Question {item_id}?\nAnswer:", "mc", ScoringRule("choice", answer),
                   choices=tuple(f"option {k}" for k in range(n)))


@pytest.fixture(scope="module")
def mmlu_pro_responses(shared_data: Path) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "mmlu_pro" / "responses.parquet")


def test_replay_returns_the_recorded_answers(mmlu_pro_responses: pd.DataFrame) -> None:
    model = "Meta-Llama-3-70B_5shots"
    mine = mmlu_pro_responses[mmlu_pro_responses.model == model].sample(300, random_state=1)
    runner = create("replay", responses=mmlu_pro_responses, model=model)
    reqs = [mc(str(q)) for q in mine.question_id]
    results = runner.score(reqs)
    assert [r.item_id for r in results] == [r.item_id for r in reqs]
    assert [r.score for r in results] == mine.correct.astype(float).tolist()
    recorded = [None if miss else p for p, miss in zip(mine.pred, mine.pred_missing, strict=True)]
    assert [r.extracted for r in results] == recorded


def test_replay_aliases_map_bank_ids_to_recorded_ids(shared_data: Path, mmlu_pro_responses: pd.DataFrame) -> None:
    model = "Llama-2-7b-hf_5shots"
    runner = ReplayRunner(shared_data / "mmlu_pro" / "responses.parquet", model,
                          aliases={"it_aaa": 70, "it_bbb": "71"})
    row = mmlu_pro_responses[(mmlu_pro_responses.model == model) & mmlu_pro_responses.question_id.isin([70, 71])]
    expected = row.set_index("question_id").correct.astype(float)
    res = runner.score([mc("it_aaa"), mc("it_bbb")])
    assert [r.score for r in res] == [expected[70], expected[71]]


def test_replay_missing_items(mmlu_pro_responses: pd.DataFrame) -> None:
    counts = mmlu_pro_responses.groupby("model").size()
    model = str(counts.idxmin())  # a model that skipped some items
    answered = set(mmlu_pro_responses.loc[mmlu_pro_responses.model == model, "question_id"])
    never = next(q for q in sorted(set(mmlu_pro_responses.question_id)) if q not in answered)
    strict = ReplayRunner(mmlu_pro_responses, model)
    with pytest.raises(RunnerError, match=rf"{model!r} never answered item {never}"):
        strict.score([mc(str(next(iter(answered)))), mc(str(never))])
    lenient = ReplayRunner(mmlu_pro_responses, model, skip_missing=True)
    res = lenient.score([mc(str(never)), mc(str(next(iter(answered))))])
    assert res[0].error == "missing" and not res[0].ok and res[1].ok


def test_replay_bad_input() -> None:
    frame = pd.DataFrame({"model": ["m1", "m1"], "question_id": [1, 2], "pred": ["A", "B"],
                          "pred_missing": [False, False], "correct": [1, 0]})
    with pytest.raises(InputError, match="did you mean 'm1'"):
        ReplayRunner(frame, "m2")
    with pytest.raises(InputError, match="missing column"):
        ReplayRunner(frame.drop(columns="correct"), "m1")
    with pytest.raises(InputError, match=r"item '2'.*not a score"):
        ReplayRunner(frame.assign(correct=[1, 3]), "m1")
    with pytest.raises(InputError, match="several rows"):
        ReplayRunner(frame.assign(question_id=[1, 1]), "m1")
    with pytest.raises(InputError, match="not found"):
        ReplayRunner("/nonexistent/responses.parquet", "m1")
    plain = ReplayRunner(frame[["model", "question_id", "correct"]], "m1", output_col=None, missing_col=None)
    assert [r.score for r in plain.score([mc("2"), mc("1")])] == [0.0, 1.0]


def test_simulated_is_seeded_and_matches_the_irt_probability() -> None:
    params = {"easy": (1.2, -1.5, 0.0, 1.0), "hard": (0.8, 2.0, 0.25, 1.0), "slip": (2.0, 0.0, 0.2, 0.9)}
    theta = 0.4
    reqs = [mc(i) for i in params] * 4000
    a = SimulatedRunner(theta, params, np.random.default_rng(11)).score(reqs)
    b = SimulatedRunner(theta, params, np.random.default_rng(11)).score(reqs)
    assert [r.score for r in a] == [r.score for r in b]
    for k, (item, (ai, bi, ci, di)) in enumerate(params.items()):
        p = float(prob(theta, ai, bi, ci, di))
        scores = np.array([r.score for r in a[k::3]])
        se = np.sqrt(p * (1 - p) / scores.size)
        assert abs(scores.mean() - p) < 4 * se, item
        assert a[k].extra["p_correct"] == pytest.approx(p)
    c = SimulatedRunner(theta, params, np.random.default_rng(12)).score(reqs)
    assert [r.score for r in a] != [r.score for r in c]


def test_simulated_choices_and_errors() -> None:
    runner = create("simulated", theta=0.0, params={"x": (1.0, 0.0, 0.0, 1.0)}, rng=5)
    for res in runner.score([mc("x", answer="C")] * 200):
        assert (res.extracted == "C") == (res.score == 1.0) and res.extracted in "ABCD"
    with pytest.raises(RunnerError, match="no item parameters for item y"):
        runner.score([mc("y")])
    with pytest.raises(InputError, match="0 <= c < d <= 1"):
        SimulatedRunner(0.0, {"x": (1.0, 0.0, 0.6, 0.5)}, np.random.default_rng(0))
