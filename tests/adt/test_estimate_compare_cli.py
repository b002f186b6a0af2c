"""`adt estimate` (honest intervals, slices it cannot fully predict, --by, --exact-params) and
`adt compare` (paired, --all, bad input) on a small seeded bank."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.special import expit

from adt.cli import cli, main
from adt.commands import calibrate as _calibrate_commands  # noqa: F401 - registers the commands
from adt.workflow.calibrate import MIN_SUBSLICE_ANSWERED, estimate_all
from itembank import ImportOptions, open_bank

N_ITEMS, N_MODELS, N_NEVER, N_RARE = 60, 40, 3, 4


def cli_json(bank: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """60 answered items (domains math/history, 4 of them 'rare'), 3 items nobody answered, 40 models
    answering ~80% of the items, plus 'newcomer' who answered 30 items after the calibration."""
    tmp = tmp_path_factory.mktemp("estcmp")
    rng = np.random.default_rng(20261205)
    ids = [f"q{k}" for k in range(N_ITEMS + N_NEVER)]
    domain = ["rare" if k < N_RARE else ("math" if k % 2 else "history") for k in range(len(ids))]
    rows = [{"id": q, "question": f"Question {q}?", "choices": ["w", "x", "y", "z"], "answer": "A",
             "tags": {"domain": d}} for q, d in zip(ids, domain, strict=True)]
    (tmp / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = np.exp(rng.normal(0.1, 0.3, N_ITEMS)), rng.normal(0, 1, N_ITEMS)
    theta = rng.normal(0, 1, N_MODELS)
    y = (rng.random((N_MODELS, N_ITEMS)) < expit(a * (theta[:, None] - b))).astype(float)
    seen = rng.random(y.shape) < 0.8
    mm, ii = np.nonzero(seen)
    pd.DataFrame({"model": [f"m{k}" for k in mm], "qid": np.asarray(ids)[ii], "score": y[mm, ii]}).to_csv(
        tmp / "r.csv", index=False)
    bank = tmp / "bank.duckdb"
    with open_bank(bank, create=True) as bk:
        bk.import_items([tmp / "items.jsonl"], ImportOptions(source="toy"))
        bk.import_responses(tmp / "r.csv", source="toy", model_col="model", item_col="qid", score_col="score")
    # No content prior: the items nobody answered stay unpredictable here (with one they are predicted from it:
    # tests/adt/test_online_calibrate_cli.py).
    cal = cli_json(bank, "calibrate", "--irt", "2pl", "--no-content-prior")
    new = (rng.random(30) < expit(a[:30] * (0.4 - b[:30]))).astype(float)
    pd.DataFrame({"model": "newcomer", "qid": ids[:30], "score": new}).to_csv(tmp / "n.csv", index=False)
    with open_bank(bank) as bk:
        bk.import_responses(tmp / "n.csv", source="toy", model_col="model", item_col="qid", score_col="score")
    return {"bank": bank, "cal": cal}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_estimate_names_the_items_it_cannot_predict(world: dict[str, Any]) -> None:
    out = cli_json(world["bank"], "estimate", "--model", "newcomer")
    assert out["n_slice_items"] == N_ITEMS + N_NEVER and out["n_predicted"] == N_ITEMS
    assert out["n_unpredictable"] == N_NEVER and not out["covers_slice"]
    assert f"{N_ITEMS} of the slice's {N_ITEMS + N_NEVER}" in out["slice_note"]
    text = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "estimate", "--model", "newcomer"])
    assert text.exit_code == 0 and "NOTE: the prediction is about 60 of the slice's 63 items" in text.output
    assert "interval holds:" in text.output and "person fit z" in text.output


def test_no_prediction_covers_fewer_items_than_its_slice_without_saying_so(world: dict[str, Any]) -> None:
    """Every number printed as a slice's predicted accuracy either covers the whole slice or says it does not."""
    with open_bank(world["bank"]) as bank:
        board = estimate_all(bank)
        exact = estimate_all(bank, exact_params=True)
    for frame in (board, exact):
        short = frame["n_predicted"] < frame["n_slice_items"]
        assert short.any()                                # the never-answered items make every row short
        assert (~frame.loc[short, "covers_slice"]).all()
        assert frame.loc[short, "slice_note"].str.contains("cannot be predicted").all()
        assert (frame.loc[~short, "slice_note"] == "").all()
    by = cli_json(world["bank"], "estimate", "--model", "m3", "--by", "domain")
    for row in by["by"]:
        if not row["refused"]:
            assert row["covers_slice"] == (row["n_predicted"] == row["n_slice_items"])


def test_by_gives_subscores_and_refuses_thin_ones(world: dict[str, Any]) -> None:
    out = cli_json(world["bank"], "estimate", "--model", "m1", "--by", "domain")
    rows = {r["domain"]: r for r in out["by"]}
    assert set(rows) == {"math", "history", "rare"}
    assert rows["rare"]["refused"] and str(MIN_SUBSLICE_ANSWERED) in rows["rare"]["refused"]
    for d in ("math", "history"):
        r = rows[d]
        assert r["refused"] == "" and r["n_answered"] >= MIN_SUBSLICE_ANSWERED
        assert r["pred_lo"] <= r["pred_acc"] <= r["pred_hi"]
    bad = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "estimate", "--model", "m1", "--by", "nosuchkey"])
    assert bad.exit_code != 0 and "nosuchkey" in str(bad.exception or bad.output)


def test_exact_params_gives_the_old_narrower_interval(world: dict[str, Any]) -> None:
    honest = cli_json(world["bank"], "estimate", "--model", "newcomer")
    exact = cli_json(world["bank"], "estimate", "--model", "newcomer", "--exact-params")
    assert exact["exact_params"] and not honest["exact_params"]
    assert len(honest["sources"]) > len(exact["sources"])
    assert exact["pred_hi"] - exact["pred_lo"] < honest["pred_hi"] - honest["pred_lo"]


def test_compare_pair_and_all(world: dict[str, Any]) -> None:
    out = cli_json(world["bank"], "compare", "m1", "m2")
    assert out["model_a"] == "m1" and out["paired"] and out["n_common"] > 20
    assert out["acc_lo"] <= out["diff_acc"] <= out["acc_hi"] and 0 < out["p_acc"] <= 1
    assert abs(out["diff_acc"] - (out["a"]["pred_acc"] - out["b"]["pred_acc"])) < 1e-12
    assert out["acc_hi"] - out["acc_lo"] < out["unpaired_hi"] - out["unpaired_lo"]
    allp = cli_json(world["bank"], "compare", "--all", "--adjust", "holm")
    assert len(allp) == (N_MODELS + 1) * N_MODELS // 2
    frame = pd.DataFrame(allp)
    assert (frame["p_adjusted"] >= frame["p_acc"] - 1e-12).all() and (frame["adjust"] == "holm").all()


@pytest.mark.parametrize("args, needle", [
    (["compare", "m1", "m1"], "with itself"),
    (["compare", "m1", "nobody"], "nobody"),
    (["compare", "m1"], "two models"),
    (["estimate", "--model", "nobody"], "nobody"),
])
def test_bad_input_one_line_exit_1_bank_unchanged(world: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                  args: list[str], needle: str) -> None:
    before = _sha(world["bank"])
    with pytest.raises(SystemExit) as exit_info:
        main(["--bank", str(world["bank"]), *args])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and needle in err and len(err.splitlines()) == 1
    assert _sha(world["bank"]) == before


def test_guessing_auto_holds_c_at_zero_for_numeric_items(tmp_path: Path) -> None:
    """Exact-match numbers cannot be guessed: a 3PL on an all-numeric bank keeps c = 0 by default, and
    estimates it where items have choices."""
    from calibration.store import load_calibration

    rng = np.random.default_rng(4)
    n_items, n_models = 30, 120
    theta, b = rng.normal(0, 1, n_models), rng.normal(0, 1, n_items)
    y = (rng.random((n_models, n_items)) < expit(theta[:, None] - b)).astype(float)
    mm, ii = np.nonzero(np.ones_like(y, bool))
    pd.DataFrame({"model": [f"m{k}" for k in mm], "qid": [f"n{k}" for k in ii], "score": y[mm, ii]}).to_csv(
        tmp_path / "r.csv", index=False)
    for kind, extra in (("numeric", {"type": "numeric", "answer": "42"}),
                        ("mc", {"choices": ["w", "x", "y", "z"], "answer": "A"})):
        rows = [{"id": f"n{k}", "question": f"How many {k}?", **extra} for k in range(n_items)]
        (tmp_path / f"{kind}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        bank = tmp_path / f"{kind}.duckdb"
        with open_bank(bank, create=True) as bk:
            bk.import_items([tmp_path / f"{kind}.jsonl"], ImportOptions(source="toy"))
            bk.import_responses(tmp_path / "r.csv", source="toy", model_col="model", item_col="qid", score_col="score")
        cli_json(bank, "calibrate", "--irt", "3pl")
        with open_bank(bank) as bk:
            stored = load_calibration(bk)
        c = stored.params.c[stored.item_status == "calibrated"]
        if kind == "numeric":
            assert stored.settings["guessing_fixed_at_zero"] and np.all(c == 0)
        else:
            assert not stored.settings["guessing_fixed_at_zero"] and np.all(c > 0)


def test_cat_reports_the_estimate_commands_numbers(world: dict[str, Any], tmp_path: Path) -> None:
    """With a stored calibration, `adt cat` prints `adt estimate`'s ability and predicted accuracy."""
    bank = tmp_path / "cat.duckdb"
    bank.write_bytes(world["bank"].read_bytes())
    with open_bank(bank) as bk:
        ids = bk.item_ids()
    pfile = tmp_path / "truth.parquet"
    pd.DataFrame({"item_id": ids, "a": 1.2, "b": np.linspace(-1.5, 1.5, len(ids)), "c": 0.0, "d": 1.0}).to_parquet(pfile)
    rep = cli_json(bank, "cat", "--model", "catty", "--backend", "simulated", "--backend-arg", "theta=0.3",
                   "--backend-arg", f"params={pfile}", "--backend-arg", "rng=5", "--max-items", "25",
                   "--se-target", "0.01", "--seed", "2")
    assert rep["n_items"] == 25 and rep["lo"] < rep["theta"] < rep["hi"]
    assert 0 < rep["pred_lo"] <= rep["pred_acc"] <= rep["pred_hi"] < 1
    assert any("item parameters" in s for s in rep["sources"])
    est = cli_json(bank, "estimate", "--model", "catty")
    assert est["theta"] == pytest.approx(rep["theta"], abs=1e-9) and est["n_items"] == 25
