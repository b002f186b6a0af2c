"""`adt calibrate --method facets` end to end on a real bank (binary responses: the many-facet GRM's
K = 2 case), its family parameters and raters stored and read back (migration 006), and
`adt estimate --by item_type` (per-type sub-scores) on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.special import expit

from adt.cli import cli
from adt.commands import calibrate as _calibrate_commands  # noqa: F401 - registers the commands
from calibration import GradedParams, ResponseSet, fit_facets, load_calibration, save_calibration
from itembank import ImportOptions, open_bank

N_MC, N_NUM, N_MODELS = 30, 20, 40


def cli_json(bank: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("facets")
    rng = np.random.default_rng(20261206)
    rows = [{"id": f"c{k}", "question": f"Choice question {k}?", "choices": ["w", "x", "y", "z"], "answer": "A"}
            for k in range(N_MC)]
    rows += [{"id": f"n{k}", "question": f"Numeric question {k}?", "type": "numeric", "answer": str(k)}
             for k in range(N_NUM)]
    (tmp / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    n = N_MC + N_NUM
    a, b, theta = np.exp(rng.normal(0.1, 0.3, n)), rng.normal(0, 1, n), rng.normal(0, 1, N_MODELS)
    y = (rng.random((N_MODELS, n)) < expit(a * (theta[:, None] - b))).astype(float)
    mm, ii = np.nonzero(np.ones_like(y, dtype=bool))
    ids = np.asarray([r["id"] for r in rows])
    pd.DataFrame({"model": [f"m{k}" for k in mm], "qid": ids[ii], "score": y[mm, ii]}).to_csv(tmp / "r.csv", index=False)
    bank = tmp / "bank.duckdb"
    with open_bank(bank, create=True) as bk:
        bk.import_items([tmp / "items.jsonl"], ImportOptions(source="toy"))
        bk.import_responses(tmp / "r.csv", source="toy", model_col="model", item_col="qid", score_col="score")
    cal = cli_json(bank, "calibrate", "--method", "facets", "--no-content-prior")
    return {"bank": bank, "cal": cal}


def test_calibrate_facets_stores_the_family(world: dict[str, Any]) -> None:
    cal = world["cal"]
    assert cal["method"] == "facets" and cal["irt_model"] == "grm" and cal["converged"]
    ref = cli_json(world["bank"], "calibrate", "--method", "mml", "--irt", "2pl", "--no-content-prior")
    with open_bank(world["bank"]) as bank:
        stored = load_calibration(bank, cal["calibration_id"])
        mml = load_calibration(bank, ref["calibration_id"])
    fam = stored.item_model
    assert isinstance(fam, GradedParams) and set(fam.n_levels) == {2} and fam.rater_ids == ()
    ok = stored.usable & mml.usable
    # the 2PL view in calibration_items and the family's own columns agree, and match the MML 2PL fit
    assert np.allclose(stored.params.b[ok], fam.thresholds[ok, 0]) and np.allclose(stored.params.a, fam.a)
    assert np.max(np.abs(stored.params.b[ok] - mml.params.b[ok])) < 5e-3
    assert stored.ability_params() is fam and mml.ability_params() is mml.params
    text = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "calibrate", "--method", "facets",
                                    "--no-content-prior"])
    assert text.exit_code == 0 and "facets grm" in text.output, text.output
    link = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "calibrate", "--method", "facets", "--link", "fixed"])
    assert link.exit_code == 1 and "--link needs 4PL-family parameters" in str(link.exception)


def test_estimate_by_item_type(world: dict[str, Any]) -> None:
    out = cli_json(world["bank"], "estimate", "--model", "m3", "--by", "item_type")
    rows = {r["item_type"]: r for r in out["by"]}
    assert set(rows) == {"mc", "numeric"}
    assert rows["mc"]["n_slice_items"] == N_MC and rows["numeric"]["n_slice_items"] == N_NUM
    for r in rows.values():
        assert not r["refused"] and r["pred_lo"] <= r["pred_acc"] <= r["pred_hi"]
    text = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "estimate", "--model", "m3", "--by", "item_type"])
    assert text.exit_code == 0 and "item_type=numeric" in text.output


def test_graded_calibration_round_trips(world: dict[str, Any]) -> None:
    """A fit with graded items and judges stored and read back: thresholds, level counts, severities."""
    rng = np.random.default_rng(9)
    ids = [f"c{k}" for k in range(N_MC)] + [f"n{k}" for k in range(N_NUM)]
    m, i, s, r = [], [], [], []
    theta = rng.normal(size=N_MODELS)
    for mod in range(N_MODELS):
        for j in range(N_MC):
            m.append(mod)
            i.append(j)
            s.append(float(rng.random() < expit(theta[mod])))
            r.append(-1)
        for j in range(N_MC, N_MC + N_NUM):
            for judge, sev in enumerate((-0.3, 0.3)):
                level = int((rng.random() < expit(theta[mod] - np.array([-1.0, 0.0, 1.0]) - sev)).sum())
                m.append(mod)
                i.append(j)
                s.append(level / 3)
                r.append(judge)
    rs = ResponseSet(np.array(m), np.array(i), np.array(s), tuple(f"m{k}" for k in range(N_MODELS)), tuple(ids),
                     np.array(r), ("judge-a", "judge-b"))
    k = np.array([2] * N_MC + [4] * N_NUM)
    fit = fit_facets(rs, k)
    with open_bank(world["bank"]) as bank:
        cal_id = save_calibration(bank, fit, responses=rs, push_difficulties=False)
        back = load_calibration(bank, cal_id).item_model
    assert isinstance(back, GradedParams) and back.rater_ids == ("judge-a", "judge-b")
    back = back.subset([back.item_ids.index(x) for x in ids])     # stored in item_id order
    assert np.allclose(back.severity, fit.params.severity) and list(back.n_levels) == list(k)
    assert np.allclose(back.thresholds, fit.params.thresholds, equal_nan=True)
    assert np.allclose(back.a, fit.params.a)
    assert back.severity[0] < back.severity[1]


def test_calibrate_facets_reads_the_judges_verdicts(tmp_path: Path) -> None:
    """Judgments stored in the bank (Bank.add_judgments) enter `adt calibrate --method facets`: one response per
    judge, both orders combined by the shared rule, K from n_levels, the judges' severities on the items' scale."""
    rng = np.random.default_rng(77)
    rows = [{"id": f"c{k}", "question": f"Choice question {k}?", "choices": ["w", "x", "y", "z"], "answer": "A"}
            for k in range(20)] + [{"id": f"n{k}", "question": f"Numeric {k}?", "type": "numeric", "answer": str(k)}
                                   for k in range(12)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    n_models = 60
    theta = rng.normal(size=n_models)
    ids = [r["id"] for r in rows]
    scores = [{"model": f"m{m}", "qid": q, "score": float(rng.random() < expit(theta[m] - 0.1 * j))}
              for m in range(n_models) for j, q in enumerate(ids)]
    pd.DataFrame(scores).to_csv(tmp_path / "r.csv", index=False)
    bank_path = tmp_path / "bank.duckdb"
    with open_bank(bank_path, create=True) as bank:
        bank.import_items([tmp_path / "items.jsonl"], ImportOptions(source="toy"))
        bank.import_responses(tmp_path / "r.csv", source="toy", model_col="model", item_col="qid", score_col="score")
        resp = bank.responses(None)
        item_of = dict(zip(bank.items()["item_id"], bank.items()["question"], strict=True))
        numeric = {iid for iid, q in item_of.items() if q.startswith("Numeric")}
        judged = resp[resp["item_id"].isin(numeric)]
        calls = []
        for row in judged.itertuples():
            m = int(str(row.model)[1:])
            for judge, sev in (("lenient", -0.8), ("strict", 0.8)):
                level = int((rng.random() < expit(1.5 * (theta[m] - np.array([-1.0, 0.0, 1.0]) - sev))).sum())
                calls.append({"run_id": row.run_id, "item_id": row.item_id, "model": row.model, "judge": judge,
                              "judge_model": judge, "template_id": "judge-rubric-en@1", "order": "",
                              "prompt_hash": "h", "raw_output": f"level {level}", "verdict": level / 3,
                              "level": level, "n_levels": 4, "problem": None, "judged_at": "2026-12-06T00:00:00"})
        assert bank.add_judgments(pd.DataFrame(calls)) == len(calls)
    cal = cli_json(bank_path, "calibrate", "--method", "facets", "--no-content-prior")
    with open_bank(bank_path) as bank:
        fam = load_calibration(bank, cal["calibration_id"]).item_model
    assert isinstance(fam, GradedParams) and fam.rater_ids == ("lenient", "strict")
    four = np.asarray([iid in numeric for iid in fam.item_ids])
    assert set(fam.n_levels[four]) == {4} and set(fam.n_levels[~four]) == {2}
    assert fam.severity[0] < -0.4 and fam.severity[1] > 0.4          # truth -0.8 / +0.8 at 60 models x 12 items
    assert cal["n_obs"] == n_models * 20 + 2 * n_models * 12
    # adt estimate reads the same verdicts: each judge's at its severity, beside the rule-scored answers.
    got = [cli_json(bank_path, "estimate", "--model", f"m{m}")["raters"] for m in range(12)]
    assert all(r["family"] == "grm" and r["n_judge_verdicts"] == 24 and r["n_responses"] == 20 + 24 for r in got)
    assert all(r["lo"] < r["theta"] < r["hi"] for r in got)
    assert np.corrcoef([r["theta"] for r in got], theta[:12])[0, 1] > 0.8
    text = CliRunner().invoke(cli, ["--bank", str(bank_path), "estimate", "--model", "m0"])
    assert "ability with every judge's verdict (grm: 24 verdicts" in text.output, text.output
