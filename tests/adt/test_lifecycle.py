"""The lifecycle by rule (issue 14): the pure rules at their thresholds, `adt bank lifecycle` on a real bank
(dry run writes nothing, moves are events with their rule), `adt bank health` against hand counts."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from adt.cli import cli
from adt.workflow.health import Rates, demand_from_spec, project, stage_tier_table
from adt.workflow.lifecycle import (
    LifecycleRules,
    Move,
    apply_moves,
    lifecycle_plan,
    plan_moves,
    pretest_verdicts,
    rules_from_settings,
)
from adtbase.errors import InputError
from itembank import LIFECYCLE_SETTINGS, open_bank

sys.path.insert(0, str(Path(__file__).parent))
from report_world import demo_round  # noqa: E402

RULES = LifecycleRules(promote_min_responses=100, promote_max_se_b=0.3, rest_after_runs=900, rest_rounds=2,
                       retire_after_runs=3000, retire_after_publications=10, retire_contaminated=True)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    base = {"review_state": "approved", "exposure_runs": 0, "exposure_publications": 0, "rest_until_round": None,
            "runs_since_move": None}
    return pd.DataFrame([{**base, **r} for r in rows])


NO_VERDICTS = pd.DataFrame(columns=["item_id", "promote", "why", "blockers"])


# -- settings -----------------------------------------------------------------------------------------
def test_the_rules_default_to_the_banks_documented_settings() -> None:
    assert rules_from_settings({}) == LifecycleRules()
    assert rules_from_settings(LIFECYCLE_SETTINGS) == LifecycleRules()  # one set of defaults, not two
    assert rules_from_settings({"rest_after_runs": "0", "retire_contaminated": "no"}).retire_contaminated is False


def test_bad_settings_are_named_together() -> None:
    with pytest.raises(InputError) as err:
        rules_from_settings({"promote_min_responses": "0", "promote_max_se_b": "-1", "rest_rounds": "two",
                             "retire_contaminated": "maybe", "retire_after_runs": "1.5"})
    text = str(err.value)
    assert "5 bad value(s)" in text
    for key in ("promote_min_responses='0'", "promote_max_se_b='-1'", "rest_rounds='two'",
                "retire_contaminated='maybe'", "retire_after_runs='1.5'"):
        assert key in text


# -- the pure rules ---------------------------------------------------------------------------------------
def evidence(rows: list[tuple[str, float, float, list[str]]]) -> pd.DataFrame:
    return pd.DataFrame([{"item_id": i, "calibration_id": "cal_x", "n_responses": n, "se_b": se, "fit_flags": f}
                         for i, n, se, f in rows])


def test_promotion_fires_at_its_thresholds_and_names_what_holds_an_item_back() -> None:
    items = frame([{"item_id": k, "stage": "pretest"} for k in ("at", "few", "wide", "flagged", "qc", "cold")]
                  + [{"item_id": "draft", "stage": "pretest", "review_state": "draft"},
                     {"item_id": "op", "stage": "operational"}])
    ev = evidence([("at", 100, 0.3, []), ("few", 99, 0.1, []), ("wide", 500, 0.3001, []),
                   ("flagged", 300, 0.1, ["outfit_misfit"]), ("qc", 300, 0.1, []), ("draft", 300, 0.1, [])])
    v = pretest_verdicts(items, ev, {"qc": ["ambiguous"]}, RULES).set_index("item_id")
    assert set(v.index) == {"at", "few", "wide", "flagged", "qc", "cold"}  # drafts are no candidates
    assert v.loc["at", "promote"] and "100 responses, SE(b) 0.3" in v.loc["at", "why"]
    assert dict(v.loc[~v["promote"].astype(bool), "blockers"]) == {
        "few": "few_responses", "wide": "se_b", "flagged": "fit_flag", "qc": "qc_flag", "cold": "uncalibrated"}
    assert "99 responses < 100" in v.loc["few", "why"] and "outfit_misfit" in v.loc["flagged", "why"]
    moves = plan_moves(items, v.reset_index(), {}, 3, RULES)
    assert [(m.item_id, m.from_stage, m.to_stage, m.rule) for m in moves] == [
        ("at", "pretest", "operational", "promote")]


def test_rest_return_and_retire_fire_exactly_at_their_thresholds() -> None:
    items = frame([
        {"item_id": "rest_below", "stage": "operational", "exposure_runs": 2000, "runs_since_move": 899},
        {"item_id": "rest_at", "stage": "operational", "exposure_runs": 2000, "runs_since_move": 900},
        {"item_id": "never_moved", "stage": "operational", "exposure_runs": 900},  # its clock: all its runs
        {"item_id": "retire_below", "stage": "operational", "exposure_runs": 2999, "runs_since_move": 0},
        {"item_id": "retire_at", "stage": "operational", "exposure_runs": 3000, "runs_since_move": 3000},
        {"item_id": "pubs_at", "stage": "rested", "exposure_publications": 10, "rest_until_round": 9},
        {"item_id": "pubs_below", "stage": "rested", "exposure_publications": 9, "rest_until_round": 6},
        {"item_id": "back_at", "stage": "rested", "rest_until_round": 5},
        {"item_id": "dirty", "stage": "pretest"},
        {"item_id": "gone", "stage": "retired", "exposure_runs": 9999},
    ])
    moves = {m.item_id: m for m in plan_moves(items, NO_VERDICTS, {"dirty": "MH odds ratio 3.1"}, 5, RULES)}
    assert set(moves) == {"rest_at", "never_moved", "retire_at", "pubs_at", "back_at", "dirty"}
    assert (moves["rest_at"].to_stage, moves["rest_at"].rule, moves["rest_at"].until_round) == ("rested", "rest", 7)
    assert "900 runs since it last came back >= rest_after_runs 900" in moves["rest_at"].reason
    assert "out of rounds 6-7" in moves["rest_at"].reason
    assert (moves["retire_at"].to_stage, moves["retire_at"].rule) == ("retired", "retire_exposure")
    assert moves["pubs_at"].rule == "retire_publications"  # retirement before the return
    assert (moves["back_at"].to_stage, moves["back_at"].rule) == ("operational", "return")
    assert moves["dirty"].rule == "retire_contaminated" and "MH odds ratio" in moves["dirty"].reason
    # one round earlier nothing returns; a rule at 0 is off
    early = {m.item_id for m in plan_moves(items, NO_VERDICTS, {}, 4, RULES)}
    assert "back_at" not in early and "dirty" not in early
    off = LifecycleRules(rest_after_runs=0, retire_after_runs=0, retire_after_publications=0, retire_contaminated=False)
    assert {m.rule for m in plan_moves(items, NO_VERDICTS, {"dirty": "x"}, 5, off)} == {"return"}


# -- health, pure ------------------------------------------------------------------------------------------
def test_demand_takes_the_quotas_on_the_operational_part() -> None:
    spec = {"size": 500, "pretest": 0.1, "quotas": {"frequency_tier": {"low": 0.1, "medium": 0.4, "high": 0.5}}}
    d = demand_from_spec(spec)
    assert (d.operational, d.pretest) == (450, 50)
    assert sorted(d.slices) == [("frequency_tier", "high", 225), ("frequency_tier", "low", 45),
                                ("frequency_tier", "medium", 180)]
    with pytest.raises(InputError, match="my.yaml: field 'size'"):
        demand_from_spec({"quotas": {}}, source="my.yaml")


def test_projection_counts_down_to_the_round_a_slice_runs_out() -> None:
    items = frame([{"item_id": f"o{i}", "stage": "operational", "frequency_tier": "low" if i < 100 else "high",
                    "subject": "math" if i < 10 else "art"} for i in range(300)])
    spec = {"size": 40, "quotas": {"frequency_tier": {"low": 30, "high": 6}, "subject": {"math": 4}}}
    rates = Rates(n_rounds=2, created=0.0, promoted=0.0, retired=2.0, rested=0.0, runs_per_form=10.0)
    proj, left = project(items, demand_from_spec(spec), rates, round_no=2, tier_high_runs=5, horizon=10)
    math_ = proj[(proj["key"] == "subject")].set_index("round")["supply"]
    # 10 math items, 2 retired a round in math's share of the operational items (10 / 300)
    assert math_.loc[2] == 10 and math_.loc[3] == pytest.approx(10 - 2 * 10 / 300)
    low = proj[(proj["value"] == "low")].set_index("round")["supply"]
    assert list(low.loc[2:6]) == [100, 70, 40, 10, 0]  # 30 fresh items drawn a round
    left = left.set_index("value")
    assert left.loc["low", "rounds_left"] == 3 and left.loc["low", "supply_now"] == 100
    assert pd.isna(left.loc["math", "rounds_left"])  # not within 10 rounds
    # drawn low items gain 10 runs > tier_high_runs 5: they go to high, less the 2 retired a round
    high = proj[(proj["value"] == "high")].set_index("round")["supply"]
    assert high.loc[3] == 200 + 30 - 2


def test_stage_tier_table_counts_every_stage_and_tier() -> None:
    items = frame([{"item_id": "a", "stage": "pretest", "frequency_tier": "low"},
                   {"item_id": "b", "stage": "operational", "frequency_tier": "high"},
                   {"item_id": "c", "stage": "operational", "frequency_tier": "high"},
                   {"item_id": "d", "stage": "retired", "frequency_tier": "medium"}])
    t = stage_tier_table(items)
    assert list(t.index) == ["pretest", "operational", "rested", "retired", "total"]
    assert t.loc["operational", "high"] == 2 and t.loc["rested", "total"] == 0 and t.loc["total", "total"] == 4


# -- on a real bank ----------------------------------------------------------------------------------------
def adt(bank: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args])


def said(res: Result) -> str:
    """What the user reads: the output, and the error the CLI prints on one line (`adt.cli.main`)."""
    return res.output + ("" if res.exception is None else str(res.exception))


def ok(bank: Path, *args: str) -> Any:
    res = adt(bank, *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo round: 400 items, 12 models' past runs calibrated, a published form of 60 answered by all,
    recalibrated linked. Every item is pretest (nothing promoted them yet)."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    bank = tmp / "bank.duckdb"
    demo_round(bank, tmp, n_items=400, n_models=12, form_size=60, calibrate=True)
    return bank


@pytest.fixture
def bank(world: Path, tmp_path: Path) -> Path:
    path = tmp_path / "bank.duckdb"
    shutil.copy(world, path)
    return path


def test_dry_run_writes_nothing_and_the_run_writes_one_event_per_move(bank: Path) -> None:
    for key, value in (("promote_min_responses", "10"), ("promote_max_se_b", "0.6")):
        assert adt(bank, "bank", "settings", key, value).exit_code == 0
    before = bank.read_bytes()
    dry = ok(bank, "bank", "lifecycle", "--dry-run")
    assert bank.read_bytes() == before  # byte-identical
    assert dry["round"] == 1 and dry["moved"] == 0 and dry["moves"]
    assert set(dry["counts"]) == {"pretest -> operational (promote)"}
    assert sum(dry["pretest_held"].values()) >= 1 and "uncalibrated" in dry["pretest_held"]

    done = ok(bank, "bank", "lifecycle")
    assert done["moved"] == len(dry["moves"]) and done["moves"] == dry["moves"]
    with open_bank(bank) as b:
        promoted = [m["item_id"] for m in done["moves"]]
        assert set(b.stages(promoted).values()) == {"operational"}
        payload = json.loads(b.item_history(promoted[0]).query("kind == 'stage'")["payload"].iloc[-1])
        assert (payload["from"], payload["to"], payload["rule"]) == ("pretest", "operational", "promote")
        assert payload["reason"] == done["moves"][0]["reason"] and "SE(b)" in payload["reason"]
        assert b.verify().ok
    assert ok(bank, "bank", "lifecycle")["moves"] == []  # nothing left to move


def _answer(bank: Path, item_ids: list[str], round_no: int, n_models: int, rng: np.random.Generator) -> None:
    """A published form of ``item_ids`` in round ``round_no`` answered by ``n_models`` models (real runs)."""
    from adt.workflow.forms import content_hash  # noqa: F401 - the form is stored as `adt sample` stores it

    with open_bank(bank) as b:
        name = f"r{round_no}"
        b.save_form(name, item_ids, spec={"size": len(item_ids)}, strategy="all", seed=None,
                    snapshot_id=b.snapshot_id(), calibration_id=None, objectives={}, content_hash=name,
                    n_uncalibrated=0)
        b.publish(name, round_no)
        for m in range(n_models):
            run = f"{name}:m{m}"
            b.start_run(run, model=f"m{m}", kind="simulated", form_name=name, round_no=round_no)
            b.ingest_responses(run, pd.DataFrame({"item_id": item_ids, "score": (rng.random(len(item_ids)) < 0.5) * 1.0}))
            b.finish_run(run)


def test_items_rest_return_and_retire_by_their_rules(bank: Path) -> None:
    rng = np.random.default_rng(3)
    with open_bank(bank) as b:
        ids = list(b.items()["item_id"][:6])
        b.set_stage(ids, "operational", reason="test setup", rule="promote")
        runs_before = b.items({"item_id": ids}).set_index("item_id")["exposure_runs"]
    for key, value in (("rest_after_runs", "5"), ("rest_rounds", "2"), ("retire_after_runs", "0"),
                       ("retire_after_publications", "0"), ("promote_min_responses", "100000")):
        assert adt(bank, "bank", "settings", key, value).exit_code == 0
    _answer(bank, ids[:3], 2, 5, rng)  # 5 runs since their promotion: at the threshold
    _answer(bank, ids[3:4], 3, 4, rng)  # 4 runs: below it
    moved = ok(bank, "bank", "lifecycle")
    assert moved["round"] == 3
    assert {(m["item_id"], m["rule"], m["until_round"]) for m in moved["moves"]} == {(i, "rest", 5) for i in ids[:3]}
    assert ok(bank, "bank", "lifecycle", "--round", "4")["moves"] == []  # still resting
    back = ok(bank, "bank", "lifecycle", "--round", "5")["moves"]
    assert {(m["item_id"], m["to_stage"], m["rule"]) for m in back} == {(i, "operational", "return") for i in ids[:3]}
    with open_bank(bank) as b:
        assert b.runs_since_stage_move()[ids[0]] == 0  # the clock restarts when it comes back
        total = b.items({"item_id": ids}).set_index("item_id")["exposure_runs"]
        assert (total - runs_before).loc[ids[:3]].tolist() == [5, 5, 5]
    # retirement by total exposure: the items at or above the threshold, with the rule in the event
    threshold = int(total.loc[ids[:3]].min())
    assert adt(bank, "bank", "settings", "retire_after_runs", str(threshold)).exit_code == 0
    gone = ok(bank, "bank", "lifecycle", "--round", "5")["moves"]
    with open_bank(bank) as b:
        expect = {i for i in ids if total.loc[i] >= threshold}
        assert {m["item_id"] for m in gone if m["rule"] == "retire_exposure"} >= expect
        payload = json.loads(b.item_history(ids[0]).query("kind == 'retired'")["payload"].iloc[-1])
        assert payload["rule"] == "retire_exposure" and f">= retire_after_runs {threshold}" in payload["reason"]
        assert b.stages([ids[0]]) == {ids[0]: "retired"}


def test_bad_setting_is_refused_by_name_and_the_bank_is_unchanged(bank: Path) -> None:
    before = bank.read_bytes()
    res = adt(bank, "bank", "settings", "promote_max_se_b", "wide")
    assert res.exit_code != 0 and "promote_max_se_b='wide': expected a number" in said(res)
    assert bank.read_bytes() == before
    # a bad value stored another way is named when the rules are read
    with open_bank(bank) as b:
        b.set_setting("rest_rounds", "0")
    res = adt(bank, "bank", "lifecycle", "--dry-run")
    assert res.exit_code != 0 and "rest_rounds='0'" in said(res)


def test_health_numbers_match_hand_counts_and_the_plot_is_written(bank: Path, tmp_path: Path) -> None:
    with open_bank(bank) as b:
        ids = list(b.items()["item_id"][:30])
        b.set_stage(ids, "operational", reason="test setup", rule="promote")
        b.set_stage(ids[:4], "rested", reason="test setup", rule="rest", until_round=3)
        items = b.items(include_retired=True)
    spec = tmp_path / "spec.yaml"
    spec.write_text("size: 20\npretest: 2\nquotas:\n  frequency_tier: {low: 0.5, high: 0.2}\n"
                    "  difficulty_band: {easy: 3}\n", encoding="utf-8")
    plot = tmp_path / "health.png"
    h = ok(bank, "bank", "health", "--spec", str(spec), "--plot", str(plot), "--by", "domain")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stages = {r["stage"]: r for r in h["stages"]}
    for stage in ("pretest", "operational", "rested", "retired"):
        for tier in ("low", "medium", "high"):
            hand = sum(1 for s, t in zip(items["stage"], items["frequency_tier"], strict=True)
                       if s == stage and t == tier)
            assert stages[stage][tier] == hand, (stage, tier)
    assert stages["rested"]["total"] == 4 and stages["total"]["total"] == len(items)
    slices = {(r["key"], r["value"]): r for r in h["slices"]}
    op = items[(items["stage"] == "operational") & (items["review_state"] == "approved")]
    for dom in set(items["domain"]):
        got = slices[("domain", dom)]
        assert got["operational"] == int((op["domain"] == dom).sum())
        assert got["fresh"] == int(((op["domain"] == dom) & (op["frequency_tier"] == "low")).sum())
    assert ("difficulty_band", "easy") in slices  # the spec's quota keys are counted too
    assert h["demand"]["operational"] == 18 and h["demand"]["pretest"] == 2
    left = {(r["key"], r["value"]): r for r in h["rounds_left"]}
    low_now = int((op["frequency_tier"] == "low").sum())
    assert left[("frequency_tier", "low")]["supply_now"] == low_now
    assert left[("frequency_tier", "low")]["rounds_left"] == low_now // 9  # 9 fresh items a round, no inflow
    assert ("stage", "pretest") in left


def test_health_refuses_a_bad_spec_and_an_unknown_key_by_name(bank: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("size: [1\n", encoding="utf-8")
    res = adt(bank, "bank", "health", "--spec", str(spec))
    assert res.exit_code != 0 and "bad.yaml: not valid YAML/JSON" in said(res)
    res = adt(bank, "bank", "health", "--by", "no_such_key")
    assert res.exit_code != 0 and "no_such_key" in said(res)
    res = adt(bank, "bank", "health", "--plot", str(tmp_path / "h.gif"))
    assert res.exit_code != 0 and "use a .png or .svg" in said(res)


def test_plan_and_apply_are_the_commands_parts(bank: Path) -> None:
    """The functions the command is glue over: a plan writes nothing; applying it writes its moves at once."""
    with open_bank(bank) as b:
        b.set_setting("promote_min_responses", "10")
        b.set_setting("promote_max_se_b", "0.6")
        head = b.head()
        plan = lifecycle_plan(b)
        assert b.head() == head and plan.moves
        assert apply_moves(b, plan.moves) == len(plan.moves)
        assert b.head().n_events == head.n_events + len(plan.moves)
        # one transaction: a refused move undoes the moves before it
        after = b.head()
        pretest = b.items({"stage": ["pretest"]})["item_id"].tolist()[:2]
        bad = [Move(pretest[0], "pretest", "operational", "promote", "ok"),
               Move(pretest[1], "pretest", "rested", "rest", "pretest cannot rest", until_round=3)]
        with pytest.raises(InputError, match="(?s)1 of 2 stage moves refused.*is pretest: it can go to operational only"):
            apply_moves(b, bad)
        assert b.head() == after and b.stages(pretest) == {i: "pretest" for i in pretest}


def test_the_report_carries_the_health_section(bank: Path) -> None:
    from adt.report import build_report, render_html

    with open_bank(bank) as b:
        report = build_report(b, n_worlds=5, per_world=5)
    page = render_html(report)
    assert report.health is not None and 'id="health"' in page
    assert 'data-testid="health-stages"' in page and 'data-testid="health-rounds-left"' in page
    assert report.figures["health"].startswith("data:image/png;base64,")
    # the same numbers as `adt bank health` (one function)
    assert report.health.stages.loc["total", "total"] == 400


def test_health_notes_a_stored_spec_it_cannot_project_and_still_counts(bank: Path) -> None:
    with open_bank(bank) as b:
        ids = list(b.items()["item_id"][:5])
        b.save_form("no-size", ids, spec={"strategy": "all"}, strategy="all", seed=None, snapshot_id=b.snapshot_id(),
                    calibration_id=None, objectives={}, content_hash="x", n_uncalibrated=0)
    h = ok(bank, "bank", "health")
    assert h["demand"] is None and h["rounds_left"] == []
    assert any("no demand to project" in n and "no-size" in n for n in h["notes"])
    assert {r["stage"]: r["total"] for r in h["stages"]}["total"] == 400


def test_items_the_drift_check_flags_as_contaminated_are_retired(bank: Path) -> None:
    """Round 2: every model answers 20 of round 1's published items right (they leaked); the recalibration's
    exposure-drift check (Mantel-Haenszel) flags some, and the lifecycle retires exactly those."""
    from adt.workflow.calibrate import calibrate, calibration_flags

    with open_bank(bank) as b:
        leaked = b.form("round-1")["item_ids"][:20]
        models = sorted(set(b.responses()["model"]))
        b.publish("round-1", 2)
        for m in models:
            b.start_run(f"r2:{m}", model=m, kind="simulated", form_name="round-1", round_no=2)
            b.ingest_responses(f"r2:{m}", pd.DataFrame({"item_id": leaked, "score": 1.0}))
            b.finish_run(f"r2:{m}")
    calibrate(bank, irt="2pl", seed=1)
    with open_bank(bank) as b:
        flags = calibration_flags(b).flags
    flagged = set(flags.loc[flags["flag"] == "exposure_drift", "item_id"])
    assert flagged and flagged <= set(leaked)
    moves = ok(bank, "bank", "lifecycle")["moves"]
    assert {m["item_id"] for m in moves} == flagged and {m["rule"] for m in moves} == {"retire_contaminated"}
    with open_bank(bank) as b:
        item = sorted(flagged)[0]
        payload = json.loads(b.item_history(item).query("kind == 'retired'")["payload"].iloc[-1])
        assert payload["rule"] == "retire_contaminated" and "MH odds ratio" in payload["reason"]
