"""`adt calibrate`, `adt calibration list|show|diff|flags`, `adt estimate`: on a seeded simulated bank
(known parameters, two rounds, a planted moved item and a flipped-key item) and on real MMLU-Pro data."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.special import expit, logit

from adt.cli import cli, main
from adt.commands import calibrate as _calibrate_commands  # noqa: F401 - registers the commands
from adt.workflow.calibrate import estimate_all
from calibration import (
    CalibrationResult,
    FitSettings,
    Fitter,
    ResponseSet,
    item_status,
    register_fitter,
    unregister_fitter,
)
from calibration.irt import ItemParams
from calibration.store import item_parameter_history, list_calibrations, load_calibration
from itembank import ImportOptions, open_bank

N_ITEMS, N_MODELS = 80, 400
FLIPPED, MOVED = "q7", "q3"       # wrong answer key (negative true a); harder in round 2 (b + 2)
SHIFT = 1.0                        # round-2 population mean on round 1's scale
PUBLISHED = [f"q{k}" for k in range(10, 20)]     # form f1, published in round 1
LEAKED = PUBLISHED[:5]                           # round-3 models saw these: easier by 2 at equal ability


def cli_json(bank: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A bank with 80 items, round 1 (400 models ~ N(0, 1)) and round 2 (400 new models ~ N(1, 1))."""
    tmp = tmp_path_factory.mktemp("calsim")
    rng = np.random.default_rng(20261124)
    ids = [f"q{k}" for k in range(N_ITEMS)]
    a = np.exp(rng.normal(0.2, 0.3, N_ITEMS))
    b = rng.normal(0.0, 1.0, N_ITEMS)
    a[ids.index(FLIPPED)] = -1.5
    rows = [{"id": q, "question": f"Simulated question number {q}?", "choices": ["w", "x", "y", "z"], "answer": "A",
             "tags": {"domain": "math" if k % 2 else "history"}} for k, q in enumerate(ids)]
    items_file = tmp / "items.jsonl"
    items_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    truth: dict[str, float] = {}
    full_acc: dict[str, float] = {}
    frames = []
    for rnd, mean in ((1, 0.0), (2, SHIFT), (3, 0.0)):
        theta = rng.normal(mean, 1.0, N_MODELS)
        bb = b.copy()
        if rnd == 2:
            bb[ids.index(MOVED)] += 2.0
        if rnd == 3:
            bb[[ids.index(q) for q in LEAKED]] -= 2.0
        y = (rng.random((N_MODELS, N_ITEMS)) < expit(a * (theta[:, None] - bb))).astype(float)
        seen = rng.random((N_MODELS, N_ITEMS)) >= 0.25     # each model answered ~75% of the items
        names = [f"r{rnd}m{k}" for k in range(N_MODELS)]
        for k, name in enumerate(names):
            truth[name], full_acc[name] = float(theta[k]), float(y[k].mean())
        mm, ii = np.nonzero(seen)
        frame = pd.DataFrame({"model": np.asarray(names)[mm], "qid": np.asarray(ids)[ii], "score": y[mm, ii]})
        frame.to_csv(tmp / f"r{rnd}.csv", index=False)
        frames.append((rnd, tmp / f"r{rnd}.csv"))
    bank = tmp / "bank.duckdb"
    with open_bank(bank, create=True) as bk:
        bk.import_items([items_file], ImportOptions(source="toy"))
        for rnd, path in frames:
            bk.import_responses(path, source="toy", model_col="model", item_col="qid", score_col="score", round_no=rnd)
        item_of = {q: bk.resolve(f"toy:{q}") for q in ids}
        bk.save_form("f1", [item_of[q] for q in PUBLISHED], spec={"size": 10}, strategy="manual", seed=None,
                     snapshot_id=bk.snapshot_id(), calibration_id=None, objectives={}, content_hash="f1",
                     n_uncalibrated=10)
        bk.publish("f1", 1)
    return {"bank": bank, "a": dict(zip(ids, a, strict=True)), "b": dict(zip(ids, b, strict=True)), "theta": truth,
            "full_acc": full_acc, "item_of": item_of, "cal": {}}


@pytest.fixture(scope="module")
def cal1(sim: dict[str, Any]) -> dict[str, Any]:
    out = cli_json(sim["bank"], "calibrate", "--irt", "2pl", "--round", "1", "--seed", "3")
    sim["cal"]["r1"] = out["calibration_id"]
    return out


def test_calibrate_recovers_parameters_and_stores_them(sim: dict[str, Any], cal1: dict[str, Any]) -> None:
    assert cal1["converged"] and cal1["method"] == "mml" and cal1["irt_model"] == "2pl"
    assert cal1["items"]["calibrated"]["n"] == N_ITEMS and cal1["n_models"] == N_MODELS
    assert np.isfinite([cal1["loglik"], cal1["aic"], cal1["bic"]]).all() and cal1["aic"] < cal1["bic"]
    with open_bank(sim["bank"]) as bank:
        stored = load_calibration(bank)  # latest = this one
        listed = list_calibrations(bank)
        bands = bank.items(with_tags=False).set_index("item_id")[["calibrated_b", "difficulty_band"]]
        runs = bank.runs()
    assert stored.calibration_id == cal1["calibration_id"] and listed["calibration_id"].tolist() == [stored.calibration_id]
    assert len(stored.run_ids) == (runs["round_no"] == 1).sum() == N_MODELS      # the runs it used: round 1's only
    assert stored.snapshot_id == cal1["snapshot_id"] and stored.snapshot_id.startswith("snap_")
    assert stored.quad_points.size > 10 and abs(stored.quad_weights.sum() - 1) < 1e-9
    table = stored.item_table().set_index("item_id")
    qs = [q for q in sim["b"] if q != FLIPPED]
    iid = [sim["item_of"][q] for q in qs]
    b_hat = table.loc[iid, "b"].to_numpy()
    assert np.corrcoef(b_hat, [sim["b"][q] for q in qs])[0, 1] > 0.9
    assert np.corrcoef(table.loc[iid, "a"], [sim["a"][q] for q in qs])[0, 1] > 0.7
    assert (table.loc[iid, "se_b"] > 0).all() and (table.loc[iid, "se_b"] < 1).all()
    # the calibrated difficulties were pushed to the bank: bands follow this calibration
    assert np.allclose(bands.loc[table.index, "calibrated_b"], table["b"])
    assert set(bands["difficulty_band"]) == {"easy", "medium", "hard"}
    abil = stored.abilities.set_index("model")
    th = abil["theta"].to_numpy()
    assert np.corrcoef(th, [sim["theta"][m] for m in abil.index])[0, 1] > 0.9


def test_show_lists_parameters_with_aliases(sim: dict[str, Any], cal1: dict[str, Any]) -> None:
    out = cli_json(sim["bank"], "calibration", "show", cal1["calibration_id"][:10])  # a unique prefix works
    assert out["calibration"]["calibration_id"] == cal1["calibration_id"]
    rows = {r["item_id"]: r for r in out["items"]}
    assert len(rows) == N_ITEMS
    row = rows[sim["item_of"]["q0"]]
    assert row["aliases"] == ["toy:q0"] and row["status"] == "calibrated" and row["se_b"] > 0
    listed = cli_json(sim["bank"], "calibration", "list")
    assert [r["calibration_id"] for r in listed][0] == cal1["calibration_id"]


def test_flags_flipped_key(sim: dict[str, Any], cal1: dict[str, Any]) -> None:
    out = cli_json(sim["bank"], "calibration", "flags", cal1["calibration_id"])
    flipped = sim["item_of"][FLIPPED]
    kinds = {r["flag"] for r in out["flags"] if r["item_id"] == flipped}
    assert {"wrong_key", "low_discrimination"} <= kinds
    assert next(r for r in out["flags"] if r["item_id"] == flipped)["aliases"] == [f"toy:{FLIPPED}"]
    wrong_key = {r["item_id"] for r in out["flags"] if r["flag"] == "wrong_key"}
    assert wrong_key == {flipped}                         # no healthy item looks like a wrong key
    # round 1 answered the published form in its own round: nothing is exposed yet
    assert out["previous_id"] is None and "no responses to published items from rounds after" in out["drift_note"]


def test_flags_drift_by_exposure(sim: dict[str, Any], cal1: dict[str, Any]) -> None:
    """Round 3 (same population as round 1) found the leaked half of the published form easier."""
    cal = cli_json(sim["bank"], "calibrate", "--round", "1", "--round", "3")
    out = cli_json(sim["bank"], "calibration", "flags", cal["calibration_id"], "--against", cal1["calibration_id"])
    tested = {r["item"]: r for r in out["drift_items"]}
    assert set(tested) == {sim["item_of"][q] for q in PUBLISHED}
    drifted = {r["item_id"] for r in out["flags"] if r["flag"] == "exposure_drift"}
    leaked = {sim["item_of"][q] for q in LEAKED}
    assert len(drifted & leaked) >= 4 and not drifted - leaked
    assert all(tested[i]["mh_odds_ratio"] > 2 for i in leaked)
    assert out["drift_settings"]["matching"] == "theta"


def test_estimate_interval_covers_truth(sim: dict[str, Any], cal1: dict[str, Any]) -> None:
    model = "r1m5"
    out = cli_json(sim["bank"], "estimate", "--model", model, "--calibration", cal1["calibration_id"])
    assert np.isfinite(out["theta"]) and out["se"] > 0 and out["lo"] < out["theta"] < out["hi"]
    assert out["lo"] <= sim["theta"][model] <= out["hi"]
    assert out["pred_lo"] <= out["pred_acc"] <= out["pred_hi"]
    # the prediction covers the whole slice (answered + predicted) and says so
    assert out["n_predicted"] == out["n_slice_items"] == N_ITEMS and out["n_predicted"] > out["n_answered"]
    assert out["covers_slice"] and out["slice_note"] == ""
    assert "item parameters" in " ".join(out["sources"]) and np.isfinite(out["person_fit_z"])
    assert out["pred_lo"] <= sim["full_acc"][model] <= out["pred_hi"]
    assert out["calibration_id"] == cal1["calibration_id"] and out["snapshot_id"].startswith("snap_")
    text = CliRunner().invoke(cli, ["--bank", str(sim["bank"]), "estimate", "--model", model, "--method", "mle",
                                    "--filter", "domain=math"])
    assert text.exit_code == 0 and "predicted accuracy on the slice" in text.output
    with open_bank(sim["bank"]) as bank:
        every = estimate_all(bank, cal1["calibration_id"]).set_index("model")
    r1 = every.loc[[m for m in every.index if m.startswith("r1")]]
    th = np.array([sim["theta"][m] for m in r1.index])
    acc = np.array([sim["full_acc"][m] for m in r1.index])
    assert 0.9 <= np.mean((r1["lo"] <= th) & (th <= r1["hi"])) <= 0.99
    assert 0.9 <= np.mean((r1["pred_lo"] <= acc) & (acc <= r1["pred_hi"])) <= 1.0
    # the prediction beats the raw observed accuracy as an estimate of the full-bank accuracy
    assert np.mean(np.abs(r1["pred_acc"] - acc)) < np.mean(np.abs(r1["observed_accuracy"] - acc))


def test_linking_puts_shifted_round_on_first_scale(sim: dict[str, Any], cal1: dict[str, Any]) -> None:
    fixed = cli_json(sim["bank"], "calibrate", "--irt", "2pl", "--round", "2", "--link", "fixed",
                     "--anchor-calibration", cal1["calibration_id"])
    assert fixed["converged"] and fixed["linking"]["method"] == "fixed"
    assert fixed["items"]["fixed"]["n"] == N_ITEMS - 1 or fixed["items"]["fixed"]["n"] == N_ITEMS
    assert abs(fixed["latent_mean"] - SHIFT) < 0.25 and abs(fixed["linking"]["B"] - SHIFT) < 0.25
    sl = cli_json(sim["bank"], "calibrate", "--irt", "2pl", "--round", "2", "--link", "stocking-lord",
                  "--anchor-calibration", cal1["calibration_id"], "--link-boot", "50")
    lk = sl["linking"]
    assert lk["method"] == "stocking_lord" and lk["n_common"] >= N_ITEMS - 1
    assert abs(lk["B"] - SHIFT) < 0.3 and abs(lk["A"] - 1) < 0.25 and 0 < lk["se_B"] < 0.3
    with open_bank(sim["bank"]) as bank:
        linked = load_calibration(bank, sl["calibration_id"])
        history = item_parameter_history(bank, sim["item_of"][MOVED])  # the audit trail's hook
    three = [cal1["calibration_id"], fixed["calibration_id"], sl["calibration_id"]]
    rows = [h for h in history if h["calibration_id"] in three]
    assert [h["calibration_id"] for h in rows] == three                 # oldest first
    assert rows[1]["status"] == "fixed" and rows[1]["b"] == rows[0]["b"]
    r2 = linked.abilities[linked.abilities["model"].str.startswith("r2")]
    assert abs(r2["theta"].mean() - SHIFT) < 0.3
    # diff: the planted item moved beyond its SEs; almost nothing else did
    diff = cli_json(sim["bank"], "calibration", "diff", cal1["calibration_id"], sl["calibration_id"])
    moved = {r["item_id"] for r in diff["items"] if r["moved"]}
    assert sim["item_of"][MOVED] in moved and len(moved) <= 3
    row = next(r for r in diff["items"] if r["item_id"] == sim["item_of"][MOVED])
    assert 1.4 < row["diff_b"] < 2.6 and row["z_b"] > 3
    # flags on the linked calibration compare with the previous one (the fixed calibration: anchors only)
    flags = cli_json(sim["bank"], "calibration", "flags", sl["calibration_id"], "--against", cal1["calibration_id"])
    assert sim["item_of"][MOVED] in {r["item_id"] for r in flags["flags"] if r["flag"] == "parameter_moved"}


def test_bad_requests_are_clean_errors(sim: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in ((["calibration", "show", "cal_nope"], "no calibration 'cal_nope'"),
                          (["estimate", "--model", "nobody"], "model 'nobody' has no responses"),
                          (["calibrate", "--method", "pyirt", "--irt", "3pl"], "2PL only"),
                          (["calibrate", "--method", "mlm"], "unknown calibration method 'mlm'; did you mean 'mml'?"),
                          (["calibrate", "--method", "pyirt", "--link", "fixed"],
                           "--link fixed needs --method mml (py-irt cannot hold anchor items fixed)"),
                          (["calibrate", "--anchor-calibration", "latest"], "needs --link")):
        with pytest.raises(SystemExit) as exc:
            main(["--bank", str(sim["bank"]), *args])
        assert exc.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_real_mmlu_pro_calibrates_in_seconds(shared_data: Path, tmp_path: Path) -> None:
    items = pd.read_parquet(shared_data / "mmlu_pro/items.parquet")
    items = items[items["category"].isin(["history", "computer science"])]
    items.to_parquet(tmp_path / "items.parquet")
    bank = tmp_path / "mp.duckdb"
    opts = ImportOptions(source="mmlu_pro", license="Apache-2.0", id_cols=("question_id",), choices_col="options",
                         answer_col="answer", answer_format="letter", tag_cols=(("category", "subject"),))
    with open_bank(bank, create=True) as bk:
        bk.import_items([tmp_path / "items.parquet"], opts)
        rep = bk.import_responses(shared_data / "mmlu_pro/responses.parquet", source="mmlu_pro", model_col="model",
                                  item_col="question_id", score_col="correct")
    responses = pd.read_parquet(shared_data / "mmlu_pro/responses.parquet", columns=["question_id"])
    assert rep.matched == int(responses["question_id"].isin(items["question_id"]).sum()) and rep.runs == 20
    start = time.perf_counter()
    out = cli_json(bank, "calibrate", "--irt", "2pl")
    seconds = time.perf_counter() - start
    assert out["converged"] and out["n_models"] == 20 and seconds < 60
    n = out["items"]
    assert n["calibrated"]["n"] > 0.8 * out["n_items"]
    assert sum(v["n"] for v in n.values()) == out["n_items"]      # every item reported, kept-at-prior ones included
    model = "gpt-4o"
    with open_bank(bank) as bk:
        models = sorted(bk.responses()["model"].unique())
    model = model if model in models else models[0]
    est = cli_json(bank, "estimate", "--model", model, "--filter", "subject=history")
    assert np.isfinite(est["theta"]) and est["lo"] < est["theta"] < est["hi"]
    # a discrete predictive interval (number correct) may sit up to one item off the mean
    one = 1 / est["n_predicted"]
    assert est["pred_lo"] - one <= est["pred_acc"] <= est["pred_hi"] + one
    assert abs(est["pred_acc"] - est["observed_accuracy"]) < 0.05     # it answered (nearly) every item


def test_auto_selection_and_pyirt_cross_check(sim: dict[str, Any], cal1: dict[str, Any]) -> None:
    auto = cli_json(sim["bank"], "calibrate", "--irt", "auto", "--round", "1", "--seed", "5")
    sel = {c["model"]: c for c in auto["selection"]}
    assert set(sel) == {"1pl", "2pl", "3pl", "4pl"}
    best = max((c for c in sel.values() if c["converged"]), key=lambda c: c["heldout_loglik"])["model"]
    assert auto["irt_model"] == best and sel["2pl"]["heldout_loglik"] > sel["1pl"]["heldout_loglik"]  # truth: 2PL
    py = cli_json(sim["bank"], "calibrate", "--method", "pyirt", "--round", "1", "--epochs", "150", "--seed", "5")
    assert py["method"] == "pyirt" and py["n_iter"] == 150 and not py["converged"]
    with open_bank(sim["bank"]) as bank:
        ours = load_calibration(bank, cal1["calibration_id"]).item_table().set_index("item_id")
        theirs = load_calibration(bank, py["calibration_id"]).item_table().set_index("item_id")
    ok = ours.index[ours["status"] == "calibrated"].difference([sim["item_of"][FLIPPED]])
    # py-irt after only 150 SVI epochs (kept short for the test's time): difficulties already agree
    assert np.corrcoef(ours.loc[ok, "b"], theirs.loc[ok, "b"])[0, 1] > 0.85
    assert theirs["se_b"].isna().all()                      # py-irt reports no standard errors


def test_bank_is_free_while_fitting(sim: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """`adt calibrate` holds the bank to read and to store, not during the fit."""
    import adt.workflow.calibrate as wf

    fit = wf._fit
    seen: list[str] = []

    def fit_while_checking(*args: Any, **kwargs: Any) -> Any:
        with open_bank(sim["bank"], wait_s=0) as bank:   # BankBusy if the calibration still held it
            seen.append(bank.snapshot_id())
        return fit(*args, **kwargs)

    monkeypatch.setattr(wf, "_fit", fit_while_checking)
    out = cli_json(sim["bank"], "calibrate", "--round", "2", "--irt", "1pl")
    assert seen == [out["snapshot_id"]] and out["converged"]


def test_a_fit_that_did_not_converge_says_so(sim: dict[str, Any]) -> None:
    res = CliRunner().invoke(cli, ["--bank", str(sim["bank"]), "calibrate", "--round", "1", "--max-iter", "3"])
    assert res.exit_code == 0
    assert "*** NOT CONVERGED after" in res.stdout and "did NOT converge" in res.stderr
    with open_bank(sim["bank"]) as bank:
        last = list_calibrations(bank).iloc[-1]
    assert not last["converged"] and last["n_iter"] < 10        # stopped at the limit, stored as not converged


class PValueFitter(Fitter):
    """A plug-in fitter (registered by the test, no change to the CLI or the workflow): Rasch difficulties and
    abilities from p-values in one pass, no SEs."""

    name = "pvalue"
    label = "p-value"
    summary = "Rasch difficulties from item p-values (a test plug-in)"
    irt_models = ("1pl",)
    checks_convergence = False
    steps = "passes"

    def fit(self, responses: ResponseSet, settings: FitSettings, *, rng: np.random.Generator) -> CalibrationResult:
        rs = responses

        def mean_logit(idx: np.ndarray, n: int) -> np.ndarray:
            acc = np.bincount(idx, weights=rs.score, minlength=n) / np.maximum(np.bincount(idx, minlength=n), 1)
            return logit(np.clip(acc, 0.02, 0.98))

        nan = np.full(rs.n_items, np.nan)
        return CalibrationResult(
            params=ItemParams(rs.item_ids, np.ones(rs.n_items), -mean_logit(rs.item_idx, rs.n_items)),
            se={k: nan.copy() for k in "abcd"}, item_status=item_status(rs),
            theta=mean_logit(rs.model_idx, rs.n_models), theta_se=np.full(rs.n_models, np.nan),
            quad_points=np.zeros(0), quad_weights=np.zeros(0), loglik=float("nan"), n_iter=1, converged=False,
            settings={"method": self.name, "model": settings.irt, "seed": settings.seed}, aic=float("nan"),
            bic=float("nan"), n_params=rs.n_items + rs.n_models, model_ids=rs.model_ids,
            fixed=np.zeros(rs.n_items, dtype=bool), n_obs=rs.n_obs, method=self.name)


def test_a_registered_fitter_runs_through_adt_calibrate(sim: dict[str, Any], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Adding a fitter is its class plus a registry line: --method offers it, the checks read its declarations."""
    bank = tmp_path / "bank.duckdb"
    shutil.copyfile(sim["bank"], bank)
    register_fitter("pvalue", f"{__name__}:PValueFitter")
    try:
        res = CliRunner().invoke(cli, ["--bank", str(bank), "calibrate", "--method", "pvalue", "--irt", "1pl",
                                       "--round", "1"])
        assert res.exit_code == 0, res.output
        assert "p-value: 1 passes (fixed count; convergence not assessed), no SEs" in res.stdout
        assert "WARNING" not in res.stderr
        with open_bank(bank) as bk:
            stored = load_calibration(bk)
        assert stored.method == "pvalue" and stored.irt_model == "1pl"
        b_true = pd.Series(sim["b"]).rename(index=sim["item_of"])
        ok = stored.item_table().set_index("item_id").query("status == 'calibrated'")
        assert np.corrcoef(ok["b"], b_true.reindex(ok.index))[0, 1] > 0.8
        for args, message in ((["--irt", "2pl"], "--method pvalue fits the 1PL only (got --irt 2pl)"),
                              (["--irt", "1pl", "--link", "fixed"], "--link fixed needs --method mml (p-value cannot hold anchor")):
            with pytest.raises(SystemExit) as exc:
                main(["--bank", str(bank), "calibrate", "--method", "pvalue", *args])
            assert exc.value.code == 1 and message in capsys.readouterr().err
    finally:
        unregister_fitter("pvalue")
