"""Pretest items through the product: `adt sample --pretest`, `adt run`, `adt estimate`, `adt compare`, `adt form`,
`adt audit form` on a real DuckDB bank.

The bank: 100 items (domain math / law in turns), 60 of them operational and 40 still in the pretest stage; eight
simulated 2PL models answered every item before and a stored 2PL calibration holds parameters for all 100 (the
pretest ones too: calibrated, not yet promoted, so leaving their answers out of a score changes the number).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from adt.cli import cli
from adt.workflow import forms as wf
from itembank import ImportOptions, open_bank
from sampler import FormSpec

N, N_OP = 100, 60
WORDS = "atom cell river stone light metal field graph prime vector market law court verb poem tide orbit lens".split()


def adt(bank: Path, *args: str, ok: bool = True) -> Any:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def adt_json(bank: Path, *args: str) -> Any:
    return json.loads(adt(bank, *args, "--json").stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("pretest")
    rng = np.random.default_rng(11)
    items = [{"id": f"q{k}", "question": " ".join(rng.choice(WORDS, 12)) + f" ({k})?", "choices": ["w", "x", "y", "z"],
              "answer": "A", "tags": {"domain": ("math", "law")[k % 2]}} for k in range(N)]
    a, b = np.exp(rng.normal(0.2, 0.3, N)), rng.normal(0.0, 1.0, N)
    theta = np.linspace(-1.5, 1.5, 8)
    y = (rng.random((8, N)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))).astype(float)
    past = [{"model": f"m{j}", "qid": f"q{k}", "score": y[j, k]} for j in range(8) for k in range(N)]
    (tmp / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    pd.DataFrame(past).to_csv(tmp / "past.csv", index=False)
    # The newcomer's answers to every item, replayed on each form (the same answer to an item on every form).
    new = (rng.random(N) < 1 / (1 + np.exp(-a * (0.4 - b)))).astype(int)
    pd.DataFrame({"model": "newm", "question_id": [f"q{k}" for k in range(N)], "pred": "A", "pred_missing": False,
                  "correct": new}).to_parquet(tmp / "newm.parquet")
    path = tmp / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([tmp / "items.jsonl"], ImportOptions(source="toy"))
        bank.import_responses(tmp / "past.csv", source="toy", model_col="model", item_col="qid", score_col="score")
        ids = [bank.resolve(f"toy:q{k}") for k in range(N)]
        bank.set_stage(ids[:N_OP], "operational", reason="test: calibrated")
    adt_json(path, "calibrate", "--irt", "2pl")
    return {"bank": path, "tmp": tmp, "ids": ids, "replay": tmp / "newm.parquet"}


def copy_of(world: dict[str, Any], tmp: Path, name: str) -> Path:
    out = tmp / f"{name}.duckdb"
    shutil.copyfile(world["bank"], out)
    return out


def run_newm(bank: Path, world: dict[str, Any], form: str) -> dict[str, Any]:
    return adt_json(bank, "run", "--form", form, "--model", "newm", "--backend", "replay", "--backend-arg",
                    f"path={world['replay']}", "--backend-arg", "source=toy")


QUOTA = ("--quota", "domain=math:0.5,law:0.5")


def test_scores_are_unaffected_by_pretest_items(world: dict[str, Any], tmp_path: Path) -> None:
    plain, seeded = copy_of(world, tmp_path, "plain"), copy_of(world, tmp_path, "seeded")
    fa = adt_json(plain, "sample", "--size", "36", *QUOTA, "--seed", "5", "--name", "f")
    fb = adt_json(seeded, "sample", "--size", "40", "--pretest", "10%", *QUOTA, "--seed", "5", "--name", "f")
    assert (fa["n_pretest"], fb["n_pretest"], fb["n_scored"], fb["n_stand_in"]) == (0, 4, 36, 0)
    scored_b = [i for i in fb["item_ids"] if i not in set(fb["pretest_ids"])]
    assert scored_b == fa["item_ids"]                            # the same operational items, in the same order
    stage = dict(zip(world["ids"], ["operational"] * N_OP + ["pretest"] * (N - N_OP), strict=True))
    assert {stage[i] for i in fb["pretest_ids"]} == {"pretest"}
    ra, rb = run_newm(plain, world, "f"), run_newm(seeded, world, "f")
    assert (ra["n_responses"], rb["n_responses"]) == (36, 40)   # pretest items are administered like any other
    ea, eb = adt_json(plain, "estimate", "--model", "newm"), adt_json(seeded, "estimate", "--model", "newm")
    keys = ("theta", "se", "lo", "hi", "pred_acc", "pred_lo", "pred_hi", "n_answered", "observed_accuracy")
    assert {k: ea[k] for k in keys} == {k: eb[k] for k in keys}
    assert (ea["n_pretest_left_out"], eb["n_pretest_left_out"]) == (0, 4)
    with open_bank(seeded) as bank:
        every = bank.responses(models=["newm"])
        scored = bank.responses(models=["newm"], scored=True)
    assert set(fb["pretest_ids"]) <= set(every["item_id"]) and len(every) == 40      # stored ...
    assert not set(fb["pretest_ids"]) & set(scored["item_id"]) and len(scored) == 36  # ... never scored
    # The rule is what makes them equal: the pretest items are calibrated, and scoring every answer moves theta.
    from adt.workflow.calibrate import _mean_scores, estimate_scores, predictive_model
    from calibration import load_calibration
    with open_bank(seeded) as bank:
        pm = predictive_model(bank, load_calibration(bank, None))
        ids = [str(i) for i in bank.item_ids()]
    unruled = estimate_scores(pm, _mean_scores(every).set_index("item_id")["score"], ids)
    assert unruled["theta"] != eb["theta"]
    # The leaderboard rows and comparisons read the same scored answers.
    from adt.workflow.calibrate import compare_all, estimate_all
    with open_bank(seeded) as bank, open_bank(plain) as bank_a:
        board, board_a = estimate_all(bank).set_index("model"), estimate_all(bank_a).set_index("model")
        pairs, pairs_a = compare_all(bank), compare_all(bank_a)
    assert board.loc["newm", "theta"] == eb["theta"] and board.loc["newm", "n_pretest_left_out"] == 4
    assert board.loc["m0", "n_pretest_left_out"] == 0
    assert board["theta"].equals(board_a["theta"]) and board["pred_acc"].equals(board_a["pred_acc"])
    pd.testing.assert_frame_equal(pairs.drop(columns="calibration_id"), pairs_a.drop(columns="calibration_id"))
    assert "1 answers" not in adt(seeded, "estimate", "--model", "newm").output
    assert "4 answers to pretest items" in adt(seeded, "estimate", "--model", "newm").output
    cmp = adt_json(seeded, "compare", "newm", "m3")
    assert cmp["n_pretest_left_out"] == {"newm": 4, "m3": 0}
    assert cmp["a"]["theta"] == eb["theta"]
    # The form's record, its listing and its audit.
    shown = adt_json(seeded, "form", "show", "f")
    assert shown["pretest_ids"] == fb["pretest_ids"] and (shown["n_pretest"], shown["n_stand_in"]) == (4, 0)
    assert [r["item_id"] for r in shown["items"] if r["pretest"]] == fb["pretest_ids"]
    listed = {r["name"]: r for r in adt_json(seeded, "form", "list")}
    assert (listed["f"]["n_pretest"], listed["f"]["n_stand_in"]) == (4, 0)
    assert adt_json(seeded, "audit", "form", "f")["rederivation"]["ok"]
    # What the model side gets holds nothing of the role: the export's rows are alike for both kinds of item.
    exported = adt_json(seeded, "form", "export", "f", "--out", str(tmp_path / "f.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert exported["columns"] == list(wf.EXPORT_COLUMNS) and [r["item_id"] for r in rows] == fb["item_ids"]
    assert {tuple(sorted(r)) for r in rows} == {tuple(sorted(wf.EXPORT_COLUMNS))}


def test_the_hash_covers_which_items_are_pretest(world: dict[str, Any], tmp_path: Path) -> None:
    bank = copy_of(world, tmp_path, "hash")
    f = adt_json(bank, "sample", "--size", "40", "--pretest", "4", "--seed", "5", "--name", "f", "--dry-run")
    spec = FormSpec.from_stored({k: v for k, v in f["spec"].items() if k != "pool"})
    same = wf.content_hash(spec, f["snapshot_id"], f["calibration_id"], f["item_ids"], f["pretest_ids"])
    other = wf.content_hash(spec, f["snapshot_id"], f["calibration_id"], f["item_ids"], f["item_ids"][:4])
    assert same == f["content_hash"] != other


def test_young_bank_stand_ins_are_counted_and_said(world: dict[str, Any], tmp_path: Path) -> None:
    young = copy_of(world, tmp_path, "young")
    with open_bank(young) as bank:
        bank.set_stage(world["ids"][:N_OP], "pretest", reason="test: a young bank")
    out = adt(young, "sample", "--size", "20", "--seed", "2", "--name", "y").output
    assert "20 of 20 scored items are uncalibrated stand-ins (young bank" in out
    rec = adt_json(young, "form", "show", "y")
    assert rec["n_stand_in"] == 20 and rec["pretest_ids"] == []
    grown = copy_of(world, tmp_path, "grown")
    f = adt_json(grown, "sample", "--size", "20", "--seed", "2", "--name", "g")
    assert f["n_stand_in"] == 0 and "stand-ins" not in adt(grown, "form", "show", "g").output.split("\n")[0][:0]
    # 60 operational items cannot fill 70 scored ones: pretest items stand in, and the pretest part takes others.
    mixed = adt_json(grown, "sample", "--size", "80", "--pretest", "10", "--seed", "2", "--name", "m")
    assert mixed["n_stand_in"] == 10 and mixed["n_scored"] == 70
    assert not set(mixed["pretest_ids"]) & {i for i in mixed["item_ids"] if i not in set(mixed["pretest_ids"])}


def test_a_form_drawn_before_stages_rebuilds_byte_for_byte(world: dict[str, Any], tmp_path: Path) -> None:
    """A spec stored without ``stages`` (drawn before issue 14) had no stage rule: its rebuild keeps none."""
    path = copy_of(world, tmp_path, "legacy")
    with open_bank(path) as bank:
        legacy = FormSpec.from_stored({k: v for k, v in FormSpec.from_dict(
            {"size": 30, "seed": 9, "quotas": {"domain": {"math": 0.5, "law": 0.5}}}).to_dict().items()
            if k not in ("stages", "pretest")})
        pool, settings, snap, cid = wf.read_pool(bank, legacy, None)
        assert "stage" not in pool.columns
        prep, draft = wf._draw(pool, legacy)
        stored = {**legacy.to_dict(), "pool": {**settings.as_dict(), "digest": wf.pool_digest(prep),
                                               "generations": None}}
        digest = wf.content_hash(legacy, snap, cid, draft.item_ids)
        bank.save_form("old", list(draft.item_ids), spec=stored, strategy=legacy.strategy, seed=legacy.seed,
                       snapshot_id=snap, calibration_id=cid, objectives={}, content_hash=digest,
                       n_uncalibrated=draft.n_uncalibrated)
        on_form_pretest = [i for i in draft.item_ids if i in set(world["ids"][N_OP:])]
        assert on_form_pretest and draft.n_stand_in == 0   # drawn from every stage, as before stages
        # The bank moves on: stages change; the legacy form's pool has no stage rule, so its rebuild does not.
        bank.set_stage(on_form_pretest, "operational", reason="test: promoted")
        rec = bank.form("old")
    assert "stages" not in rec["spec"] and "pretest" not in rec["spec"]
    audit = adt_json(path, "audit", "form", "old")["rederivation"]
    assert audit["ok"] and not audit["notes"], audit
    with open_bank(path) as bank:
        ids, rebuilt = wf.rebuild_form(bank, {**bank.form("old"), "name": "old"})
    assert ids == list(draft.item_ids) and rebuilt == digest


@pytest.mark.parametrize(("args", "message"), [
    (("--size", "50", "--pretest", "60"), "form spec field 'pretest.count': 60 pretest items leave no operational"),
    (("--size", "50", "--pretest", "150%"), "form spec field 'pretest.share': expected a fraction in [0, 1]"),
    (("--size", "50", "--pretest", "lots"), "--pretest 'lots': 'lots' is not a count, fraction or percentage"),
    (("--size", "50", "--pretest", "5", "--pretest-filter", "topic=x"), "--pretest-filter"),
    (("--size", "50", "--pretest", "5", "--pretest-filter", "domain=chemistry"), "chemistry"),
    (("--size", "50", "--pretest-filter", "domain=math"), "--pretest-filter: give --pretest N|SHARE too"),
    (("--strategy", "all", "--pretest", "5"), "a pretest part needs a form size"),
    (("--size", "50", "--pretest", "45"), "pretest part (45 items): only 40 eligible pretest items"),
])
def test_bad_pretest_input_is_named_and_changes_nothing(world: dict[str, Any], tmp_path: Path,
                                                        args: tuple[str, ...], message: str) -> None:
    path = copy_of(world, tmp_path, "bad")
    with open_bank(path) as bank:
        before = bank.snapshot_id()
    res = adt(path, "sample", *args, "--seed", "1", "--name", "bad", ok=False)
    said = res.output + str(res.exception)   # the CLI's main() prints a raised AdtError on one line and exits 1
    assert res.exit_code == 1 and message in said, said
    with open_bank(path) as bank:
        assert bank.snapshot_id() == before and bank.forms().empty


def test_the_report_scores_without_pretest_answers_and_says_so(world: dict[str, Any], tmp_path: Path) -> None:
    from adt.report import build_report, render_html

    plain, seeded = copy_of(world, tmp_path, "rplain"), copy_of(world, tmp_path, "rseeded")
    adt_json(plain, "sample", "--size", "36", *QUOTA, "--seed", "5", "--name", "f")
    adt_json(seeded, "sample", "--size", "40", "--pretest", "4", *QUOTA, "--seed", "5", "--name", "f")
    run_newm(plain, world, "f"), run_newm(seeded, world, "f")
    reports = {}
    for name, path in (("plain", plain), ("seeded", seeded)):
        with open_bank(path) as bank:
            reports[name] = build_report(bank, form="f", n_worlds=5, per_world=5)
    a, b = (reports[k].leaderboard.set_index("model") for k in ("plain", "seeded"))
    for col in ("theta", "lo", "hi", "pred_acc", "raw_accuracy"):
        assert a.loc["newm", col] == b.loc["newm", col], col
    assert any("4 answers to pretest items" in n for n in reports["seeded"].notes)
    assert not any("pretest" in n for n in reports["plain"].notes)
    (form,) = reports["seeded"].forms
    assert form["n_pretest"] == 4 and bool(form["composition"]["meets"].all())   # quotas of the 36 scored items
    assert "4 pretest items (unscored" in render_html(reports["seeded"])


def test_a_round_specs_form_takes_a_pretest_part(world: dict[str, Any], tmp_path: Path) -> None:
    """`adt round` draws its form from the round spec's `form:` mapping (``sample_and_store``): pretest part and all."""
    path = copy_of(world, tmp_path, "round")
    form = wf.sample_and_store(path, {"name": "r1", "size": 40, "seed": 3, "quotas": {"domain": {"math": 0.5, "law": 0.5}},
                                      "pretest": {"share": 0.1, "quotas": {"domain": {"math": 1, "law": 3}}}})
    with open_bank(path) as bank:
        rec = bank.form("r1")
        dom = bank.items({"item_id": rec["item_ids"]}).set_index("item_id")["domain"]
    scored = [i for i in rec["item_ids"] if i not in set(rec["pretest_ids"])]
    assert rec["pretest_ids"] == list(form.pretest_ids) and len(scored) == 36
    assert sorted(dom[scored]) == ["law"] * 18 + ["math"] * 18
    assert sorted(dom[rec["pretest_ids"]]) == ["law"] * 3 + ["math"]
    assert rec["spec"]["pretest"]["share"] == 0.1 and rec["spec"]["stages"] == ["operational"]
