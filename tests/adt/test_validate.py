"""`adt validate`: the held-out validation study on a small generated bank (8 simulated 2PL models with
release dates and families, 240 items), its bad inputs, and the pure metrics of calibration.validation."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from adt.cli import main
from adt.workflow.validate import ValidateOptions, form_seed, plan_folds, validate
from calibration.store import list_calibrations
from calibration.validation import (
    bootstrap_coverage,
    kendall_tau_by_form,
    regression_baseline,
    summarize,
    wilson_interval,
)
from calibration.validation_store import latest_validation
from itembank import ImportOptions, open_bank

N_ITEMS, N_MODELS = 240, 8
MODELS = [f"m{k}" for k in range(N_MODELS)]
DATES = {m: f"2024-{k + 1:02d}-15" for k, m in enumerate(MODELS)}          # m0 oldest ... m7 newest
FAMILIES = {m: ("llama" if k % 2 == 0 else "qwen") for k, m in enumerate(MODELS)}
FAMILIES["m1"] = "llama"                                                    # llama: m0 m1 m2 m4 m6 (largest)
WORDS = ("atom cell river stone light metal field graph prime vector market law court verb poem tide orbit lens "
         "acid gene tax wage bond grain wind salt").split()


def world(seed: int = 5) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Items (distinct random questions, domain tags) and every model's 0/1 answers (about 10% missing)."""
    rng = np.random.default_rng(seed)
    ids = [f"q{k}" for k in range(N_ITEMS)]
    a, b = np.exp(rng.normal(0.2, 0.3, N_ITEMS)), rng.normal(0.0, 1.0, N_ITEMS)
    theta = np.linspace(-1.5, 1.5, N_MODELS)
    items = [{"id": q, "question": " ".join(rng.choice(WORDS, 10)) + f" ({k})?", "choices": ["w", "x", "y", "z"],
              "answer": "A", "tags": {"domain": ("math", "history", "law")[k % 3]}} for k, q in enumerate(ids)]
    y = (rng.random((N_MODELS, N_ITEMS)) < expit(a * (theta[:, None] - b))).astype(float)
    seen = rng.random((N_MODELS, N_ITEMS)) >= 0.1
    mm, ii = np.nonzero(seen)
    return items, pd.DataFrame({"model": np.asarray(MODELS)[mm], "qid": np.asarray(ids)[ii], "score": y[mm, ii]})


def make_bank(path: Path, items: list[dict[str, Any]], responses: pd.DataFrame) -> Path:
    files = path.parent
    (files / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    responses.to_csv(files / "responses.csv", index=False)
    with open_bank(path, create=True) as bank:
        bank.import_items([files / "items.jsonl"], ImportOptions(source="toy"))
        bank.import_responses(files / "responses.csv", source="toy", model_col="model", item_col="qid",
                              score_col="score")
        for m in MODELS:
            bank.describe_model(m, family=FAMILIES[m], release_date=DATES[m])
        bank.describe_model("m_idle", family="llama", release_date="2023-01-01")   # known, no responses
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adt(bank: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The real entry point: exit code, stdout, stderr."""
    capsys.readouterr()
    try:
        main(["--bank", str(bank), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    items, responses = world()
    path = make_bank(tmp_path_factory.mktemp("valbank") / "bank.duckdb", items, responses)
    with open_bank(path) as bank:
        item_of = {r["id"]: bank.resolve(f"toy:{r['id']}") for r in items}
    return {"bank": path, "items": items, "responses": responses, "item_of": item_of}


@pytest.fixture
def bank(toy: dict[str, Any], tmp_path: Path) -> Path:
    copy = tmp_path / "bank.duckdb"
    shutil.copyfile(toy["bank"], copy)
    return copy


FAST = ("--form-size", "20", "--form-size", "40", "--forms", "2", "--jobs", "1")


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_end_to_end_writes_files_and_stores_only_the_result(bank: Path, tmp_path: Path, toy: dict[str, Any],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = adt(bank, "validate", "--split", "loo", "--split", "frontier", *FAST, "--strategy", "random",
                               "--strategy", "stratified", "--stratify-by", "domain", "--seed", "3", "--out", str(out),
                               capsys=capsys)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("validation val_") and "snapshot snap_" in lines[0]
    assert lines[1].split()[:5] == ["split", "strategy", "size", "models", "forms"]
    table = [ln.split() for ln in lines[2:10]]
    assert [(r[0], r[1], r[2]) for r in table] == [(s, st, n) for s in ("frontier", "loo")
                                                   for st in ("random", "stratified") for n in ("20", "40")]
    assert {r[3] for r in table if r[0] == "loo"} == {"8"} and {r[3] for r in table if r[0] == "frontier"} == {"2"}
    assert "[8/9] loo fold 8: held out m7;" in stderr and "[9/9] frontier fold 1" in stderr   # progress per fold

    # files
    per_form = pd.read_csv(out / "validation.csv")
    summary = pd.read_csv(out / "summary.csv")
    meta = json.loads((out / "summary.json").read_text())
    assert (out / "validation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # loo: 8 models x 2 strategies x 2 sizes x 2 forms; frontier: round(0.3 * 8) = 2 models
    assert len(per_form) == 8 * 8 + 2 * 8 and len(summary) == 8 == len(meta["summary"])
    assert meta["settings"]["splits_resolved"][1] == {"split": "frontier", "frontier": 2}

    # stored in the user's bank, read back; and nothing else was written there
    with open_bank(bank) as b:
        stored = latest_validation(b)
        assert list_calibrations(b).empty and b.forms().empty
        slice_ids = set(b.item_ids(None))
    assert stored is not None and stored["validation_id"] == lines[0].split()[1].rstrip(":")
    assert stored["created_at"] == meta["created_at"] and stored["snapshot_id"] == meta["snapshot_id"]
    age = datetime.now(UTC) - datetime.fromisoformat(stored["created_at"])
    assert timedelta(0) <= age < timedelta(minutes=10)
    assert stored["calibration_settings"]["irt"] == "2pl" and stored["settings"]["seed"] == 3
    pd.testing.assert_frame_equal(stored["summary"].reset_index(drop=True),
                                  summary.sort_values(["split", "strategy", "form_size"]).reset_index(drop=True),
                                  check_dtype=False)
    forms = stored["forms"]
    assert len(forms) == len(per_form)
    for (_split, model, strategy, size), grp in forms.groupby(["split", "model", "strategy", "form_size"]):
        ids = [i for lst in grp["item_ids"] for i in lst]
        assert len(ids) == len(set(ids)) == 2 * size          # disjoint forms of the full size
        assert set(ids) <= slice_ids
        assert list(grp["seed"]) == [form_seed(3, model, strategy, size, k) for k in grp["form"]]
    # the truth is the model's mean over every item it answered
    truth = toy["responses"].groupby("model")["score"].mean()
    got = forms.drop_duplicates("model").set_index("model")["truth"]
    assert np.allclose(got.reindex(truth.index), truth)
    # stratified forms follow the domain shares (a third each), random ones need not
    strat = forms[forms["strategy"] == "stratified"]
    domain = {toy["item_of"][r["id"]]: r["tags"]["domain"] for r in toy["items"]}
    for ids in strat["item_ids"]:
        counts = pd.Series([domain[i] for i in ids]).value_counts()
        assert counts.max() - counts.min() <= 1


def test_json_prints_rows_and_per_form_records(bank: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = adt(bank, "validate", "--split", "shift", "--calibrate-on", "m0", "--calibrate-on", "m1",
                               "--calibrate-on", "m2", "--calibrate-on", "m3", "--form-size", "30", "--forms", "2",
                               "--jobs", "1", "--json", capsys=capsys)
    assert code == 0, stderr
    data = json.loads(stdout)
    assert [r["split"] for r in data["summary"]] == ["shift"] and data["summary"][0]["n_models"] == 4
    assert len(data["forms"]) == 4 * 2
    assert {f["model"] for f in data["forms"]} == {"m4", "m5", "m6", "m7"}
    rec = data["forms"][0]
    assert len(rec["item_ids"]) == 30 and 0 <= rec["pred_lo"] <= rec["pred_acc"] <= rec["pred_hi"] <= 1
    assert data["settings"]["folds_run"][0]["calibrate_on"] == ["m0", "m1", "m2", "m3"]


def test_time_split_cuts_at_the_median_release_date(bank: Path) -> None:
    res = validate(bank, ValidateOptions(splits=("time",), sizes=(25,), forms=1, jobs=1), store=False)
    fold = res.settings["folds_run"][0]
    # median of 8 dates: the 5th (upper median) = m4's; earlier models calibrate, m4.. are predicted
    assert res.settings["splits_resolved"][0]["cut"] == DATES["m4"]
    assert fold["calibrate_on"] == ["m0", "m1", "m2", "m3"] and fold["held_out"] == ["m4", "m5", "m6", "m7"]
    assert sorted(res.forms["model"].unique()) == ["m4", "m5", "m6", "m7"]
    assert res.validation_id == ""          # store=False wrote nothing


def test_time_cut_and_shift_group(bank: Path) -> None:
    res = validate(bank, ValidateOptions(splits=("time", "shift"), cut="2024-04-01", group_by="family", sizes=(25,),
                                         forms=1, jobs=1), store=False)
    time_fold, shift_fold = res.settings["folds_run"]
    assert time_fold["calibrate_on"] == ["m0", "m1", "m2"]
    assert shift_fold["calibrate_on"] == ["m0", "m1", "m2", "m4", "m6"]        # the largest family
    assert shift_fold["held_out"] == ["m3", "m5", "m7"]
    assert res.settings["splits_resolved"][1]["group"] == {"by": "family", "value": "llama"}


BAD = [
    (("--split", "shift", "--calibrate-on", "nobody", "--calibrate-on", "m1", "--calibrate-on", "m2"),
     "--calibrate-on 'nobody': unknown model"),
    (("--split", "shift", "--calibrate-on", "m_idle", "--calibrate-on", "m1", "--calibrate-on", "m2"),
     "--calibrate-on 'm_idle': the model has no responses on the slice"),
    (("--split", "shift", "--calibrate-on", "m0", "--calibrate-on", "m1"), "leaves 2 calibration model(s)"),
    (("--split", "frontier", "--frontier", "6"), "leaves 2 calibration model(s)"),
    (("--split", "time", "--cut", "2024-03-01"), "leaves 2 calibration model(s)"),
    (("--split", "time", "--cut", "2023-01-01"), "leaves 0 calibration model(s)"),
    (("--split", "time", "--cut", "2030-01-01"), "--split time holds out no model"),
    (("--split", "shift", "--calibrate-on", "m0", "--calibrate-on", "m1", "--calibrate-on", "m2",
      "--calibrate-on", "m3", "--calibrate-on", "m4", "--calibrate-on", "m5", "--calibrate-on", "m6",
      "--calibrate-on", "m7"), "--split shift holds out no model"),
    (("--strategy", "nope"), "unknown sampling strategy 'nope'"),
    (("--split", "kfold", "--folds", "9"), "--folds 9: the slice has only 8 models"),
    (("--form-size", "200", "--forms", "2"), "needs 400 distinct items per model; the slice has 240"),
    (("--split", "shift"), "--split shift needs --calibrate-on"),
    (("--split", "shift", "--group-by", "colour"), "--group-by 'colour': a model attribute"),
    (("--split", "time", "--cut", "soon"), "--cut 'soon' is not an ISO date"),
    (("--calibrate-on", "m0"), "--calibrate-on / --group-by apply to --split shift"),
    (("--filter", "domain=poetry"), "--filter domain=poetry: no item has domain 'poetry'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_inputs_exit_1_with_one_line_and_leave_the_bank_unchanged(bank: Path, args: tuple[str, ...], message: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = sha(bank)
    code, stdout, stderr = adt(bank, "validate", "--jobs", "1", *args, capsys=capsys)
    assert code == 1
    assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr
    assert message in stderr
    assert stdout == ""
    assert sha(bank) == before


def test_time_split_names_models_without_a_release_date(bank: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    extra = pd.DataFrame({"model": ["newcomer"] * 30, "qid": [f"q{k}" for k in range(30)], "score": 1.0})
    extra.to_csv(tmp_path / "new.csv", index=False)
    with open_bank(bank) as b:
        b.import_responses(tmp_path / "new.csv", source="toy", model_col="model", item_col="qid", score_col="score")
    before = sha(bank)
    code, _, stderr = adt(bank, "validate", "--split", "time", "--jobs", "1", capsys=capsys)
    assert code == 1 and "model(s) without a release date: newcomer" in stderr
    assert len(stderr.strip().splitlines()) == 1 and sha(bank) == before


# ---------------------------------------------------------------------------------------------- isolation
def test_answers_outside_the_form_never_reach_the_estimate(toy: dict[str, Any], tmp_path: Path) -> None:
    """Flip every answer of the held-out models outside their forms: the forms and every estimate stay the
    same (only the truth moves). Held out by an explicit shift split, so the folds cannot change."""
    opts = ValidateOptions(splits=("shift",), calibrate_on=("m0", "m1", "m2", "m3", "m4"), sizes=(20, 40), forms=2,
                           strategies=("random", "stratified"), stratify_by="domain", jobs=1)
    first = validate(toy["bank"], opts, store=False).forms
    shown = {}
    for model, grp in first.groupby("model"):
        shown[model] = {i for lst in grp["item_ids"] for i in lst}
    resp = toy["responses"].copy()
    outside = np.array([m in shown and toy["item_of"][q] not in shown[m]
                        for m, q in zip(resp["model"], resp["qid"], strict=True)])
    assert outside.sum() > 150     # enough answers flip to move every truth (checked at the end)
    resp.loc[outside, "score"] = 1.0 - resp.loc[outside, "score"]
    (tmp_path / "b").mkdir()
    corrupted = make_bank(tmp_path / "b" / "bank.duckdb", toy["items"], resp)
    second = validate(corrupted, opts, store=False).forms
    key = ["model", "strategy", "form_size", "form"]
    a, b = first.sort_values(key).reset_index(drop=True), second.sort_values(key).reset_index(drop=True)
    assert [list(x) for x in a["item_ids"]] == [list(x) for x in b["item_ids"]]
    for col in ("pred_acc", "pred_lo", "pred_hi", "raw_acc", "regression", "n_answered"):
        np.testing.assert_allclose(a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float), rtol=0, atol=1e-12,
                                   err_msg=col)
    assert (np.abs(a["truth"] - b["truth"]) > 0.05).all()       # the corruption did reach the truth


def test_results_do_not_depend_on_worker_processes(bank: Path) -> None:
    opts = ValidateOptions(splits=("kfold",), folds=2, sizes=(20,), forms=2, seed=9)
    one = validate(bank, replace(opts, jobs=1), store=False)
    two = validate(bank, replace(opts, jobs=2), store=False)
    pd.testing.assert_frame_equal(one.forms, two.forms)
    pd.testing.assert_frame_equal(one.summary, two.summary)


# ---------------------------------------------------------------------------------------------- planning
def test_plan_folds_loo_kfold_frontier() -> None:
    acc = pd.Series({"a": 0.2, "b": 0.9, "c": 0.5, "d": 0.7, "e": 0.4, "f": 0.8, "g": 0.3})
    attrs = pd.DataFrame({"name": [], "family": [], "size": [], "release_date": []})
    loo, _ = plan_folds("loo", acc, attrs, ValidateOptions())
    assert [f.held_out for f in loo] == [(m,) for m in "abcdefg"] and all(len(f.calibrate_on) == 6 for f in loo)
    k1, _ = plan_folds("kfold", acc, attrs, ValidateOptions(folds=3, seed=1))
    k2, _ = plan_folds("kfold", acc, attrs, ValidateOptions(folds=3, seed=2))
    held = sorted(m for f in k1 for m in f.held_out)
    assert held == list("abcdefg") and sorted(len(f.held_out) for f in k1) == [2, 2, 3]
    assert [f.held_out for f in k1] == [f.held_out for f in plan_folds("kfold", acc, attrs,
                                                                       ValidateOptions(folds=3, seed=1))[0]]
    assert [f.held_out for f in k1] != [f.held_out for f in k2]
    front, info = plan_folds("frontier", acc, attrs, ValidateOptions())
    assert info["frontier"] == 2 and front[0].held_out == ("b", "f")         # round(0.3 * 7) = 2 strongest


# ---------------------------------------------------------------------------------------------- metrics
def test_wilson_interval_by_hand() -> None:
    lo, hi = wilson_interval(np.array([0.7, 0.0]), np.array([10, 0]))
    z = 1.959963984540054
    p, n = 0.7, 10
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert lo[0] == pytest.approx(centre - half) and hi[0] == pytest.approx(centre + half)
    assert lo[0] == pytest.approx(0.3968, abs=1e-4) and hi[0] == pytest.approx(0.8922, abs=1e-4)
    assert np.isnan(lo[1]) and np.isnan(hi[1])


def test_regression_baseline_by_hand() -> None:
    # y = 0.1 + 0.5 x exactly: the line is recovered and applied to the new x
    assert regression_baseline([0.2, 0.4, 0.8], [0.2, 0.3, 0.5], 0.6) == pytest.approx(0.4)
    # least squares through (0, 0), (1, 1), (2, 1): slope 0.5, intercept 1/6
    assert regression_baseline([0, 1, 2], [0, 1, 1], 3.0) == pytest.approx(1 / 6 + 1.5)
    # no spread in x: the mean offset
    assert regression_baseline([0.5, 0.5], [0.6, 0.8], 0.4) == pytest.approx(0.6)
    assert math.isnan(regression_baseline([np.nan], [0.5], 0.4))


def test_kendall_tau_per_form_averaged() -> None:
    frame = pd.DataFrame({"model": list("abcd") * 2, "form": [0] * 4 + [1] * 4,
                          "truth": [0.1, 0.2, 0.3, 0.4] * 2,
                          "pred_acc": [0.1, 0.2, 0.3, 0.4, 0.2, 0.1, 0.3, 0.4]})
    # form 0: identical order, tau 1; form 1: one discordant pair of 6, tau = (5 - 1) / 6
    assert kendall_tau_by_form(frame) == pytest.approx((1 + 4 / 6) / 2)
    assert math.isnan(kendall_tau_by_form(frame[frame["model"].isin(["a", "b"])]))


def test_summarize_by_hand() -> None:
    rows = []
    for model, truth, pred, lo, hi, raw in (("a", 0.5, 0.55, 0.4, 0.6, 0.6), ("a", 0.5, 0.45, 0.30, 0.48, 0.3),
                                            ("b", 0.7, 0.7, 0.6, 0.8, 0.8), ("b", 0.7, 0.6, 0.5, 0.65, 0.7)):
        rows.append({"split": "loo", "strategy": "random", "form_size": 10, "model": model,
                     "form": len([r for r in rows if r["model"] == model]), "truth": truth, "pred_acc": pred,
                     "pred_lo": lo, "pred_hi": hi, "raw_acc": raw, "wilson_lo": raw - 0.2, "wilson_hi": raw + 0.2,
                     "regression": truth + 0.01})
    frame = pd.DataFrame(rows)
    s = summarize(frame, np.random.default_rng(0), n_boot=200).iloc[0]
    assert (s["n_models"], s["n_intervals"]) == (2, 4)
    assert s["mae_pred"] == pytest.approx((0.05 + 0.05 + 0.0 + 0.1) / 4)
    assert s["mae_raw"] == pytest.approx((0.1 + 0.2 + 0.1 + 0.0) / 4)
    assert s["mae_regression"] == pytest.approx(0.01)
    assert s["coverage"] == pytest.approx(0.5)                 # covered: a form 0, b form 0
    assert s["mean_width"] == pytest.approx((0.2 + 0.18 + 0.2 + 0.15) / 4)
    assert s["mean_width_wilson"] == pytest.approx(0.4)
    assert math.isnan(s["kendall_tau"]) and math.isnan(s["share_extrapolated"])   # 2 models; no flag
    frame["extrapolated"] = [True, False, False, False]
    assert summarize(frame, np.random.default_rng(0), n_boot=50).iloc[0]["share_extrapolated"] == pytest.approx(0.25)


def test_bootstrap_resamples_models_not_forms() -> None:
    # model A: one interval, covered; model B: 99 intervals, none covered. Coverage 0.01 overall, but
    # with models resampled a quarter of the replicates draw A twice (coverage 1): the upper end is 1.
    # A bootstrap over forms would stay near 0.01 (its 97.5% point below 0.05).
    groups = ["A"] + ["B"] * 99
    covered = [1.0] + [0.0] * 99
    lo, hi = bootstrap_coverage(groups, covered, np.random.default_rng(1), n_boot=2000)
    assert lo == pytest.approx(0.0) and hi == pytest.approx(1.0)
    # two models, equally many intervals: replicates are 0, 0.5 or 1 only
    lo, hi = bootstrap_coverage(["A"] * 50 + ["B"] * 50, [1.0] * 50 + [0.0] * 50, np.random.default_rng(2),
                                n_boot=2000)
    assert (lo, hi) == (0.0, 1.0)
    # seeded: the same rng seed gives the same interval
    assert bootstrap_coverage(groups, covered, np.random.default_rng(3), n_boot=300) == \
        bootstrap_coverage(groups, covered, np.random.default_rng(3), n_boot=300)
