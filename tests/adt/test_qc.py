"""``adt qc`` through the CLI on a real bank: format checks, and answer keys checked by replayed solvers whose
recorded answers are re-scored against the current key; each check an event, the solver runs resumable and kept
out of the evidence calibration reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from adt.cli import cli
from itembank import open_bank

N_ITEMS, N_SOLVERS, N_OPTIONS = 160, 8, 5
FLIPPED = list(range(0, 40, 5))          # 8 planted key errors


def _adt(bank: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args], catch_exceptions=False)


@pytest.fixture()
def world(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, N_OPTIONS, N_ITEMS)
    stored = truth.copy()
    for i in FLIPPED:
        stored[i] = (truth[i] + 1 + rng.integers(0, N_OPTIONS - 1)) % N_OPTIONS
    rows = [{"id": f"q{i}", "question": f"Question {i}: which of these numbers is {i * 7}?",
             "choices": [f"option {i}-{k}" for k in range(N_OPTIONS)], "answer": "ABCDE"[stored[i]],
             "tags": {"domain": "math"}} for i in range(N_ITEMS)]
    rows[1]["choices"][2] = rows[1]["choices"][3]             # two choices the same: a format problem
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    theta = np.linspace(-1.5, 2.0, N_SOLVERS)
    b = rng.normal(0, 1, N_ITEMS)
    p = 1 / N_OPTIONS + (1 - 1 / N_OPTIONS) / (1 + np.exp(-(theta[None, :] - b[:, None])))
    right = rng.random((N_ITEMS, N_SOLVERS)) < p
    wrong = (truth[:, None] + 1 + rng.integers(0, N_OPTIONS - 1, (N_ITEMS, N_SOLVERS))) % N_OPTIONS
    picks = np.where(right, truth[:, None], wrong)
    models = [f"solver{s}" for s in range(N_SOLVERS)]
    # "correct" is deliberately the recorded harness's verdict against the TRUE key: QC must not reuse it
    rec = pd.DataFrame([{"model": models[s], "question_id": f"q{i}", "pred": "ABCDE"[picks[i, s]],
                         "pred_missing": False, "correct": int(picks[i, s] == truth[i])}
                        for i in range(N_ITEMS) for s in range(N_SOLVERS)])
    record = tmp_path / "record.parquet"
    rec.to_parquet(record)
    bank = tmp_path / "b.duckdb"
    assert _adt(bank, "init").exit_code == 0
    assert _adt(bank, "bank", "import", str(items), "--source", "t", "--review-state", "draft").exit_code == 0
    return bank, record, models


def _qc(bank: Path, record: Path, models: list[str], *extra: str) -> dict:
    args = ["qc", "--check", "schema", "--check", "solvers", "--backend", "replay", "--backend-arg", f"path={record}",
            "--backend-arg", "source=t", *[x for m in models for x in ("--solver", m)], *extra, "--json"]
    res = _adt(bank, *args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_solvers_find_planted_key_errors_and_format_problems(world) -> None:
    bank, record, models = world
    report = _qc(bank, record, models)
    assert report["n_items"] == N_ITEMS and len(report["solver_runs"]) == N_SOLVERS
    with open_bank(bank) as b:
        ids = {b.resolve(f"t:q{i}"): i for i in range(N_ITEMS)}
        flags = b.qc_flags(list(ids))
        answers = b.solver_answers([r["run_id"] for r in report["solver_runs"]], list(ids))
        evidence = b.responses()
        hist = b.item_history(f"t:q{FLIPPED[0]}")
    suspect = {ids[i] for i, c in flags.items() if "key_suspect" in c["solvers"]["flags"]}
    assert len(suspect & set(FLIPPED)) >= 7
    assert len(suspect - set(FLIPPED)) <= 3
    schema_bad = {ids[i] for i, c in flags.items() if c["schema"]["flags"]}
    assert schema_bad == {1}
    assert "choices C and D are the same" in flags[next(k for k, v in ids.items() if v == 1)]["schema"]["detail"]["problems"][0]
    # re-scored against the bank's key, not the record's "correct" (which was against the true key)
    one = next(k for k, v in ids.items() if v == FLIPPED[0])
    mine = answers[answers["item_id"] == one]
    with open_bank(bank) as b:
        key = b.item(one)["answer"]
    assert ((mine["extracted"] == key).astype(float) == mine["score"]).all()
    assert len(answers) == N_ITEMS * N_SOLVERS
    detail = flags[one]["solvers"]["detail"]
    assert detail["key"] == key and detail["likely_key"] != key and detail["n_solvers"] == N_SOLVERS
    assert set(detail["answers"]) == set(models)
    # solver runs are not calibration evidence; each check is an event on the item
    assert evidence.empty
    assert {json.loads(p)["check"] for p in hist[hist["kind"] == "qc"]["payload"]} == {"schema", "solvers"}


def test_rerun_resumes_solver_runs_and_records_a_new_state(world) -> None:
    bank, record, models = world
    first = _qc(bank, record, models)
    second = _qc(bank, record, models)
    assert second["name"] == first["name"]
    assert [r["n_responses"] for r in second["solver_runs"]] == [N_ITEMS] * N_SOLVERS
    with open_bank(bank) as b:
        n_qc = b.execute("SELECT count(*) FROM events WHERE kind = 'qc'").fetchone()[0]
        n_resp = b.execute("SELECT count(*) FROM responses").fetchone()[0]
    assert n_qc == 2 * 2 * N_ITEMS and n_resp == N_ITEMS * N_SOLVERS
    assert second["flags"] == first["flags"]


def test_bad_input_is_refused_with_the_bank_unchanged(world, tmp_path: Path) -> None:
    bank, record, models = world
    runner = CliRunner()
    res = runner.invoke(cli, ["--bank", str(bank), "qc", "--solver", "solver0"])
    assert res.exit_code != 0 and "--solver needs --backend" in res.output
    res = runner.invoke(cli, ["--bank", str(bank), "qc", "--check", "schema", "--review-state", "approved"])
    assert res.exit_code == 1 and "no items to check" in str(res.exception)
    res = runner.invoke(cli, ["--bank", str(bank), "qc", "--check", "solvers", "--backend", "replay",
                              "--backend-arg", f"path={tmp_path / 'none.parquet'}", "--solver", "solver0"])
    assert res.exit_code == 1 and "none.parquet" in str(res.exception)
    with open_bank(bank) as b:
        assert b.execute("SELECT count(*) FROM events WHERE kind = 'qc'").fetchone()[0] == 0
        assert b.execute("SELECT count(*) FROM responses").fetchone()[0] == 0


def test_a_solver_crashing_mid_run_loses_nothing_and_the_rerun_resumes(world, monkeypatch) -> None:
    import sys

    bank, record, models = world
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sys.modules.pop("run_backends", None)
    base = ["qc", "--check", "solvers", "--backend", "run_backends:SlowRunner", "--solver", "crashy",
            "--batch-size", "40", "--name", "crash-test"]
    res = CliRunner().invoke(cli, ["--bank", str(bank), *base, "--backend-arg", "crash_at_batch=3"])
    assert res.exit_code == 1
    msg = str(res.exception)
    assert "crashed on batch 3" in msg and "crash-test:crashy" in msg and "re-run the same command to resume" in msg
    with open_bank(bank) as b:
        kept = b.execute("SELECT count(*) FROM responses WHERE run_id = 'crash-test:crashy'").fetchone()[0]
        assert b.execute("SELECT count(*) FROM events WHERE kind = 'qc'").fetchone()[0] == 0
        assert b.verify().ok
    assert kept == 80                                   # the two batches scored before the crash
    report = json.loads(_adt(bank, *base, "--json").output)
    assert report["solver_runs"][0]["n_responses"] == N_ITEMS and report["n_events"] == N_ITEMS


def test_review_list_filters_on_qc_flags(world) -> None:
    bank, record, models = world
    _qc(bank, record, models)
    out = json.loads(_adt(bank, "review", "list", "--flag", "key_suspect", "--limit", "0", "--json").output)
    with open_bank(bank) as b:
        want = b.flagged(["key_suspect"])
    assert {r["item_id"] for r in out["items"]} == want and out["total"] == len(want) > 0
    assert all("key_suspect" in r["flags"] for r in out["items"])


def test_a_declared_variant_is_not_flagged_as_a_copy_of_its_family(tmp_path: Path) -> None:
    bank = tmp_path / "v.duckdb"
    assert _adt(bank, "init").exit_code == 0
    base = {"question": "Which gas makes up most of the air we breathe at sea level on Earth?",
            "choices": ["oxygen", "nitrogen", "argon", "helium"], "answer": "B"}
    rows = [{"id": "p", **base},
            {"id": "v", **base, "choices": ["nitrogen", "oxygen", "argon", "helium"], "answer": "A", "parent_id": "p",
             "origin": "variant"},
            {"id": "c", **base, "choices": ["argon", "helium", "nitrogen", "oxygen"], "answer": "C"}]
    f = tmp_path / "items.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert _adt(bank, "bank", "import", str(f), "--source", "t", "--review-state", "draft").exit_code == 0
    assert _adt(bank, "qc", "--check", "near_duplicate").exit_code == 0
    with open_bank(bank) as b:
        ids = {k: b.resolve(f"t:{k}") for k in "pvc"}
        flags = b.qc_flags(list(ids.values()))
    matches = {m["item_id"]: m for m in flags[ids["v"]]["near_duplicate"]["detail"]["matches"]}
    assert matches[ids["p"]].get("family") is True and "family" not in matches[ids["c"]]
    assert flags[ids["c"]]["near_duplicate"]["flags"] == ["near_duplicate"]
    # the variant is flagged for its likeness to the unrelated copy c, never for its parent alone
    parent_only = {m["item_id"] for m in flags[ids["p"]]["near_duplicate"]["detail"]["matches"] if not m.get("family")}
    assert parent_only == {ids["c"]}
