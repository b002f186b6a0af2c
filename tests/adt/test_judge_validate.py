"""`adt judge validate`: verdicts from a file against gold labels, stored as a judge calibration whose rater
model reads back; bad inputs name file, row and field, exit 1 and leave the bank unchanged."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from adt.cli import main
from calibration import judges, latest_judge_calibration, list_judge_calibrations
from itembank import open_bank


def adt(bank: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(["--bank", str(bank), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Any]:
    """120 pairs, three judges in both orders: 'sharp' right 90%, 'firsty' picks the first shown 80% of the
    time, 'coin' random; answer lengths; the gold labels."""
    rng = np.random.default_rng(7)
    n = 120
    truth = rng.integers(0, 2, n).astype(float)
    rows = []
    for order in ("ab", "ba"):
        first = 1.0 if order == "ab" else 0.0
        sharp = np.where(rng.random(n) < 0.9, truth, 1 - truth)
        firsty = np.where(rng.random(n) < 0.8, first, truth)
        coin = rng.integers(0, 2, n).astype(float)
        for judge, v in (("sharp", sharp), ("firsty", firsty), ("coin", coin)):
            rows.append(pd.DataFrame({"run_id": "", "item_id": [f"p{i}" for i in range(n)], "model": "", "judge": judge,
                                      "judge_model": judge, "template_id": "judge-pairwise-en@1", "order": order,
                                      "prompt_hash": "", "raw_output": "", "verdict": v, "level": pd.NA,
                                      "n_levels": 2, "problem": None, "judged_at": ""}))
    verdicts = pd.concat(rows, ignore_index=True)
    verdicts.loc[3, ["verdict", "problem"]] = [np.nan, "unparseable"]
    vpath, gpath, lpath = tmp_path / "v.parquet", tmp_path / "gold.csv", tmp_path / "len.csv"
    verdicts.to_parquet(vpath)
    pd.DataFrame({"item_id": [f"p{i}" for i in range(n)], "label": truth}).to_csv(gpath, index=False)
    pd.DataFrame({"item_id": [f"p{i}" for i in range(n)], "len_candidate": rng.integers(50, 500, n),
                  "len_baseline": rng.integers(50, 500, n)}).to_csv(lpath, index=False)
    bank = tmp_path / "bank.duckdb"
    with open_bank(bank, create=True):  # an empty bank: judge calibrations need no items
        pass
    return {"bank": bank, "verdicts": vpath, "gold": gpath, "lengths": lpath, "truth": truth, "frame": verdicts}


def test_validate_stores_a_judge_calibration(files: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = adt(files["bank"], "judge", "validate", "--gold", str(files["gold"]), "--verdicts",
                         str(files["verdicts"]), "--lengths", str(files["lengths"]), "--types", "1", capsys=capsys)
    assert code == 0, err
    assert "judge calibration jcal_" in out and "firsty" in out and "panel (rater model" in out
    with open_bank(files["bank"]) as bank:
        rec = latest_judge_calibration(bank)
    assert rec is not None and rec["n_gold"] == 120 and rec["n_classes"] == 2
    st = rec["stats"].set_index("rater")
    assert set(st.index) == {"sharp", "firsty", "coin"}
    assert st.loc["sharp", "acc"] > 0.8 and st.loc["firsty", "first_pref"] > 0.8
    assert st.loc["sharp", "n_unparseable"] == 1
    assert rec["panel"]["acc"] >= rec["panel"]["majority_acc"]
    # The stored rater model reads back and combines the same verdicts into the same posterior it was fitted to.
    model = judges.RaterModel.from_dict(rec["rater_model"])
    vd = judges.verdicts(judges.check_judgments(files["frame"]))
    lengths = pd.read_csv(files["lengths"])
    diff = judges.align(vd.cases, lengths, "len_candidate") - judges.align(vd.cases, lengths, "len_baseline")
    p = model.predict_proba(vd, diff)
    acc = float(np.mean((p[:, 1] > 0.5) == (judges.align(vd.cases, pd.read_csv(files["gold"]), "label") == 1)))
    assert acc > 0.85
    assert model.raters_ == ("coin", "firsty", "sharp") and model.n_labelled_ == 120


def test_judge_filter_and_json(files: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = adt(files["bank"], "judge", "validate", "--gold", str(files["gold"]), "--verdicts",
                         str(files["verdicts"]), "--judge", "sharp", "--judge", "coin", "--types", "1", "--json",
                         capsys=capsys)
    assert code == 0, err
    data = json.loads(out)
    assert sorted(r["rater"] for r in data["judges"]) == ["coin", "sharp"]
    assert data["panel"]["judges"] == ["coin", "sharp"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f["gold"].write_text("item_id,label\np0,1\np1,yes\np2,3\n"),
     r"--gold .*gold.csv: row 1: field 'label': 'yes' is not a number in \[0, 1\]; row 2: field 'label'"),
    (lambda f: f["gold"].write_text("case,label\np0,1\n"), r"--gold .*gold.csv: no column\(s\) \['item_id'\]"),
    (lambda f: f["frame"].assign(order="sideways").to_parquet(f["verdicts"]),
     r"--verdicts .*v.parquet: row 0: field 'order': 'sideways'"),
    (lambda f: f["verdicts"].unlink(), r"--verdicts .*v.parquet: no such file"),
    (lambda f: None, r"no verdicts of judge\(s\) \['gpt9'\] \(judges: coin, firsty, sharp\)"),
])
def test_bad_inputs_exit_1_and_leave_the_bank(files: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                              edit: Any, message: str) -> None:
    edit(files)
    code, out, err = adt(files["bank"], "judge", "validate", "--gold", str(files["gold"]), "--verdicts",
                         str(files["verdicts"]), "--judge", "gpt9" if "gpt9" in message else "sharp", capsys=capsys)
    assert code == 1
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err
    with open_bank(files["bank"]) as bank:
        assert list_judge_calibrations(bank).empty


def test_verdicts_from_the_bank_give_the_file_s_figures(files: dict[str, Any],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Without --verdicts the judge calls come from Bank.judgments: none stored is a clear error; stored, the
    # same figures as the same calls given as a file.
    code, _, err = adt(files["bank"], "judge", "validate", "--gold", str(files["gold"]), capsys=capsys)
    assert code == 1 and "holds no judge verdicts" in err and "--verdicts FILE" in err
    with open_bank(files["bank"]) as bank:
        assert bank.add_judgments(files["frame"]) == len(files["frame"])
    code, out, _ = adt(files["bank"], "judge", "validate", "--gold", str(files["gold"]), "--types", "1", "--json",
                       capsys=capsys)
    assert code == 0
    from_bank = json.loads(out)
    code, out, _ = adt(files["bank"], "judge", "validate", "--gold", str(files["gold"]), "--verdicts",
                       str(files["verdicts"]), "--types", "1", "--json", capsys=capsys)
    from_file = json.loads(out)
    assert from_bank["n_cases"] == from_file["n_cases"] == 120
    assert from_bank["judges"] == from_file["judges"] and from_bank["panel"] == from_file["panel"]


def test_report_section_shows_the_latest_calibration_escaped(files: dict[str, Any],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from adt.report import _judges_html

    hostile = files["frame"].assign(judge=files["frame"]["judge"].replace("coin", "<script>x</script>"))
    hostile.to_parquet(files["verdicts"])
    assert adt(files["bank"], "judge", "validate", "--gold", str(files["gold"]), "--verdicts", str(files["verdicts"]),
               "--types", "1", capsys=capsys)[0] == 0
    with open_bank(files["bank"]) as bank:
        rec = latest_judge_calibration(bank)
    assert rec is not None
    page = _judges_html(rec)
    assert rec["judge_calibration_id"] in page and 'data-testid="judges-table"' in page
    assert "<script>" not in page and "&lt;script&gt;" in page and "majority vote" in page
