"""A small demo world with subjective items, end to end through the CLI (``click.testing.CliRunner``): import ->
calibrate -> sample -> publish -> run -> calibrate -> ``adt judge run`` with simulated judges of known bias ->
calibrate -> report, then the human queue: ``adt judge queue`` / ``adt judge score``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from adt.cli import cli
from adt.demo import build_world
from adt.demo_judged import PANEL, JudgedRound, judged_round, subjective_items
from itembank import open_bank
from runners import read_simulated_quality as read_quality


class Cli:
    def __init__(self, bank: Path):
        self.bank = bank

    def __call__(self, args: Sequence[str]) -> str:
        result = CliRunner().invoke(cli, ["--bank", str(self.bank), *args])
        assert result.exit_code == 0, f"adt {' '.join(args)}: {result.output}"
        return result.output

    def fails(self, *args: str) -> str:
        result = CliRunner().invoke(cli, ["--bank", str(self.bank), *args])
        assert result.exit_code != 0, result.output
        return result.output + str(result.exception)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("judge-world")
    bank = tmp / "bank.duckdb"
    w = build_world(bank, n_items=1500, n_models=6, seed=3, workdir=tmp, say=lambda _m: None)
    items, truth = subjective_items(60, np.random.default_rng(4))
    invoke = Cli(bank)
    result = judged_round(invoke, bank, tmp, w, items, truth, form_size=100, writing_share=0.4, seed=3,
                          say=lambda _m: None)
    return {"bank": bank, "world": w, "result": result, "cli": invoke, "items": items}


def judged(bank: Path) -> tuple[Any, Any]:
    with open_bank(bank) as b:
        return b.judgments(), b.judged_answers(scored_by=("judge:pending", "panel", "human"))


def test_the_round_judges_every_subjective_answer_with_the_whole_panel(world: dict[str, Any]) -> None:
    r: JudgedRound = world["result"]
    judgments, answers = judged(world["bank"])
    n_pair = int((answers["item_type"] == "pairwise").sum())
    n_point = len(answers) - n_pair
    assert n_pair > 0 and n_point > 0
    assert r.judge_run["n_calls"] == len(PANEL) * (2 * n_pair + n_point) == len(judgments)
    assert r.judge_run["n_unparseable"] == 0 and r.judge_run["n_pending"] == 0
    assert set(answers["scored_by"]) <= {"panel", "human"}
    # The objective-only calibration knows none of the judged items; the second one has them.
    with open_bank(world["bank"]) as b:
        from calibration import load_calibration

        def answered(cal_id: str) -> set[str]:   # items the calibration had responses to
            cal = load_calibration(b, cal_id)
            return {i for i, n in zip(cal.params.item_ids, cal.n_responses, strict=True) if n > 0}

        before = answered(r.calibration_objective["calibration_id"])
        after = answered(r.calibration_all["calibration_id"])
    judged_ids = set(answers["item_id"])
    assert not before & judged_ids and judged_ids <= after
    assert Path(r.report).read_text(encoding="utf-8").count("pairwise") > 0


def test_the_judges_show_the_biases_they_were_given(world: dict[str, Any]) -> None:
    judgments, answers = judged(world["bank"])
    point = judgments[judgments["order"] == ""].pivot_table(index=["run_id", "item_id"], columns="judge",
                                                             values="verdict")
    # severity: harsh (0.8) scores lowest, lenient-first (-0.6) highest, on the same answers
    assert point["harsh"].mean() < point["fair"].mean() < point["lenient-first"].mean()
    pair = judgments[(judgments["order"] != "") & judgments["verdict"].isin([0.0, 1.0])]
    first = ((pair["verdict"] == 1.0) == (pair["order"] == "ab")).groupby(pair["judge"]).mean()
    assert first["lenient-first"] > first["fair"] + 0.1
    # the panel's score follows the true quality the simulated candidates wrote
    q = answers.set_index(["run_id", "item_id"])["answer"].map(read_quality)
    panel = judgments.groupby(["run_id", "item_id"])["verdict"].mean().reindex(q.index)
    assert spearmanr(q, panel).statistic > 0.8


def test_abilities_with_subjective_items_follow_the_truth(world: dict[str, Any]) -> None:
    from adt.workflow.calibrate import estimate_all

    truth = world["world"].models.set_index("model")["theta"]
    with open_bank(world["bank"]) as b:
        board = estimate_all(b, world["result"].calibration_all["calibration_id"]).set_index("model")
    assert np.corrcoef(board["theta"], truth.reindex(board.index))[0, 1] > 0.9


def test_humans_score_the_queued_cases_and_their_scores_stand(world: dict[str, Any]) -> None:
    adt, bank = world["cli"], world["bank"]
    queue = json.loads(adt(["judge", "queue", "--json", "--limit", "0"]))
    assert queue["total"] > 0 and len(queue["cases"]) == queue["total"]
    case = queue["cases"][0]
    assert case["why"] and len(case["judgments"]) >= len(PANEL) and case["question"] and case["answer"]
    top = len(case["levels"]) - 1
    out = json.loads(adt(["judge", "score", "--case", case["case"], "--level", str(top), "--reviewer", "alice",
                          "--note", "<b>clearly</b> fine", "--json"]))
    assert out["score"] == 1.0 and out["n_humans"] == 1
    run_id, item_id = case["case"].rsplit("/", 1)
    with open_bank(bank) as b:
        rows = b.judgments([run_id], [item_id])
        human = rows[rows["judge"] == "human:alice"].iloc[0]
        resp = b.judged_answers([run_id], scored_by=("human",))
    assert (human["template_id"], human["order"], human["level"], human["verdict"]) == ("human", "", top, 1.0)
    assert human["raw_output"] == "<b>clearly</b> fine"
    assert list(resp["item_id"]) == [item_id]
    after = json.loads(adt(["judge", "queue", "--json", "--limit", "0"]))
    assert after["total"] == queue["total"] - 1 and case["case"] not in {c["case"] for c in after["cases"]}
    # alice cannot score it twice; a level out of range names the levels; a case that is none is named
    assert "alice scored it already" in world["cli"].fails("judge", "score", "--case", case["case"], "--level", "0",
                                                            "--reviewer", "alice")
    assert f"not one of 0..{top}" in adt.fails("judge", "score", "--case", case["case"], "--level", str(top + 1),
                                               "--reviewer", "bob")
    assert "no judge-scored answer" in adt.fails("judge", "score", "--case", f"{run_id}/it_00000000000000000000",
                                                 "--level", "0", "--reviewer", "bob")
    # A second human: the answer's score is the humans' mean; a judge run again (resumed) keeps it.
    adt(["judge", "score", "--case", case["case"], "--level", "0", "--reviewer", "bob"])
    again = json.loads(adt(["judge", "run", "--form", "round-1", "--judges", str(bank.parent / "judges.json"),
                            "--no-progress", "--json"]))
    assert again["n_calls"] == 0
    with open_bank(bank) as b:
        x = b.responses(scored=False)
    score = x[(x["run_id"] == run_id) & (x["item_id"] == item_id)]["score"].iloc[0]
    assert score == pytest.approx(0.5)


def test_human_scores_refit_the_judges(world: dict[str, Any]) -> None:
    """Humans (a simulated expert, the simulation's truth) score the queue; `adt judge validate --gold human`
    measures the judges against those scores and stores the judge calibration."""
    from adt.demo_judged import expert_levels

    adt, bank = world["cli"], world["bank"]
    queue = json.loads(adt(["judge", "queue", "--json", "--limit", "0", "--budget", "0.2"]))
    with open_bank(bank) as b:
        answers = b.judged_answers(scored_by=("panel", "human"))
    truth = expert_levels(answers)
    for c in queue["cases"]:
        adt(["judge", "score", "--case", c["case"], "--level", str(int(truth.loc[tuple(c["case"].rsplit("/", 1))])),
             "--reviewer", "expert"])
    with open_bank(bank) as b:
        humans = b.judgments()
    scored = humans[humans["judge"].str.startswith("human:")][["run_id", "item_id"]].drop_duplicates()
    # one judge keeps the test short (the statistics' intervals take a while per judge and template)
    out = json.loads(adt(["judge", "validate", "--gold", "human", "--judge", "fair", "--folds", "2", "--types", "1",
                          "--json"]))
    assert out["n_gold"] == len(scored) >= len(queue["cases"]) > 10
    assert {r["rater"].split("[")[0] for r in out["judges"]} == {"fair"} and out["judge_calibration_id"]
    # the humans are the labels, not judges: their rows are not among the verdicts
    assert "no verdicts of judge(s) ['human:expert']" in adt.fails("judge", "validate", "--gold", "human", "--judge",
                                                                   "human:expert")
