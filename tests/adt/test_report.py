"""adt report: quota composition against known answers, and the report of a small demo round: content,
self-containedness and the command line. The statistics behind it (rank uncertainty, separability,
parameter draws, the coverage simulation, leave-one-model-out replay) are tested in
tests/calibration/test_honesty.py."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from report_world import demo_round  # noqa: E402

from adt.cli import main  # noqa: E402
from adt.report import build_report, form_composition, render_html  # noqa: E402
from adtbase.errors import InputError  # noqa: E402
from itembank import open_bank  # noqa: E402


def test_form_composition_against_quotas() -> None:
    items = pd.DataFrame({"frequency_tier": ["low"] * 6 + ["medium"] * 3 + ["high"],
                          "language": ["en"] * 7 + ["zh"] * 3, "domain": ["math|logic"] + ["math"] * 9})
    spec = {"size": 10, "quotas": {"frequency_tier": {"low": 0.5, "medium": 0.4, "high": 0.1}, "language": {"zh": 3}}}
    comp = form_composition(items, spec, keys=["domain"]).set_index(["key", "value"])
    assert comp.loc[("frequency_tier", "low"), "items"] == 6
    assert comp.loc[("frequency_tier", "low"), "target"] == 5.0
    assert not comp.loc[("frequency_tier", "low"), "meets"]
    assert comp.loc[("frequency_tier", "high"), "meets"]
    assert comp.loc[("language", "zh"), "meets"] and comp.loc[("language", "en"), "meets"]  # no quota on en
    assert comp.loc[("domain", "math"), "items"] == 10 and comp.loc[("domain", "logic"), "items"] == 1


# ------------------------------------------------------------------------------------------------ the demo round
@pytest.fixture(scope="module")
def demo_bank(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("report")
    world = demo_round(tmp / "demo.duckdb", tmp)
    return tmp / "demo.duckdb", world.models


@pytest.fixture(scope="module")
def demo_report(demo_bank: tuple[Path, pd.DataFrame]):
    with open_bank(demo_bank[0]) as bank:
        return build_report(bank, round_no=1, seed=5, n_worlds=60, loo=True)


def test_report_leaderboard_of_the_demo_round(demo_report, demo_bank: tuple[Path, pd.DataFrame]) -> None:
    board = demo_report.leaderboard
    truth = demo_bank[1].set_index("model")["theta"]
    assert sorted(board["model"]) == sorted(truth.index)
    assert (board["lo"] < board["theta"]).all() and (board["theta"] < board["hi"]).all()
    assert (board["pred_lo"] <= board["pred_acc"]).all() and (board["pred_acc"] <= board["pred_hi"]).all()
    assert (board["rank_lo"] <= board["rank"]).all() and (board["rank"] <= board["rank_hi"]).all()
    assert np.corrcoef(board["theta"], board["model"].map(truth))[0, 1] > 0.9
    np.testing.assert_allclose(demo_report.rank_probs.sum(axis=1), 1.0)
    # Not separable is symmetric.
    pairs = {(m, o.strip()) for m, others in zip(board["model"], board["not_separable_from"], strict=True)
             for o in others.split(",") if o.strip()}
    assert pairs == {(b, a) for a, b in pairs}


def test_report_slices_are_estimate_by(demo_bank: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    """The per-slice table holds adt estimate --by's numbers (one implementation), '-' where it refuses."""
    from adt.workflow.calibrate import estimate_model

    bank_path = tmp_path / "calibrated.duckdb"
    shutil.copyfile(demo_bank[0], bank_path)
    main(["--bank", str(bank_path), "calibrate", "--json"])
    with open_bank(bank_path) as bank:
        rep = build_report(bank, round_no=1, seed=5, n_worlds=5, by=["language"])
        frame = rep.slices["language"]
        assert list(rep.slices) == ["language"]
        checked = 0
        for model in frame.index[:4]:
            rows = {r["language"]: r for r in estimate_model(bank, model, by="language")["by"]}
            for col, cell in frame.loc[model].items():
                value, n = re.fullmatch(r"(.+) \((\d+) items\)", col).groups()
                r = rows[value]
                assert int(n) == r["n_slice_items"]
                if r["refused"]:
                    assert cell == "-"
                else:
                    assert cell.startswith(f"{r['pred_acc']:.2f} [{r['pred_lo']:.2f}, {r['pred_hi']:.2f}]")
                    checked += 1
        assert checked >= 4
        with pytest.raises(InputError, match="--by colour: unknown key.* tag keys of the bank's items: "):
            build_report(bank, round_no=1, seed=5, n_worlds=5, by=["colour"])


def test_report_sections_of_the_demo_round(demo_report) -> None:
    assert [f["name"] for f in demo_report.forms] == ["round-1"]
    comp = demo_report.forms[0]["composition"]
    tiers = comp[comp["key"] == "frequency_tier"]
    assert tiers["meets"].all() and tiers["items"].sum() == 120
    assert set(demo_report.slices) >= {"language"}
    cov = demo_report.honesty["coverage"]
    assert 0.5 < cov.coverage <= cov.coverage_point_params + 0.02 and cov.n == 60 * 25
    loo = demo_report.honesty["loo"]
    assert len(loo) == 12 and loo["covered"].mean() >= 0.75
    prov = demo_report.provenance
    assert prov["bank snapshot"].startswith("snap_") and len(prov["forms"]["round-1"]) == 64
    assert {"calibration", "report seed", "adt version", "form seeds"} <= set(prov)
    assert {"forest", "rank_probs", "information", "exposure"} <= set(demo_report.figures)


def test_report_html_is_self_contained(demo_report) -> None:
    page = render_html(demo_report)
    assert page.count('data-testid="leaderboard-row"') == len(demo_report.leaderboard)
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    imgs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert imgs and all(s.startswith("data:image/png;base64,") for s in imgs)
    assert 'data-testid="coverage"' in page and 'data-testid="loo-coverage"' in page


def test_report_command(demo_bank: tuple[Path, pd.DataFrame], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "r.html"
    main(["--bank", str(demo_bank[0]), "report", "--round", "1", "--worlds", "20", "--loo", "--loo-models", "2",
          "--out", str(out), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["models"] == 12 and data["forms"] == ["round-1"] and data["loo_models"] == 2
    # the data keep every 'not separable from' name (the page shows the first few)
    rows = data["leaderboard"]
    assert len(rows) == 12 and all(isinstance(r["not_separable_from"], list) for r in rows)
    pairs = {(r["model"], o) for r in rows for o in r["not_separable_from"]}
    assert pairs == {(b, a) for a, b in pairs}
    assert {"leaderboard", "forms", "honesty"} <= set(data["scopes"])
    assert 0 < data["coverage"] <= 1 and out.read_text().startswith("<!DOCTYPE html>")
    for args, says in ((["--round", "9"], "--round 9: no responses"), (["--form", "nope"], "--form nope"),
                       (["--round", "1", "--no-loo"], "--out")):
        suffix = "r.txt" if says == "--out" else "x.html"
        with pytest.raises(SystemExit) as bad:
            main(["--bank", str(demo_bank[0]), "report", *args, "--out", str(tmp_path / suffix)])
        assert bad.value.code == 1
        assert says in capsys.readouterr().err


def test_report_uses_the_stored_calibrations(demo_bank: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    # Two stored calibrations (past runs only, then everything): the report takes the latest and shows
    # the drift of the common items since the one before.
    calibrate = pytest.importorskip("adt.workflow.calibrate").calibrate
    bank_path = tmp_path / "stored.duckdb"
    shutil.copy(demo_bank[0], bank_path)
    with open_bank(bank_path) as bank:
        first = calibrate(bank, rounds=(0,), seed=3)
        second = calibrate(bank, seed=3)
        rep = build_report(bank, round_no=1, seed=5, n_worlds=20, loo=False)
    assert rep.provenance["calibration"] == second.calibration_id != first.calibration_id
    assert rep.provenance["calibration seed"] == 3
    drift = rep.diagnostics["drift"]
    assert len(drift) > 100 and {"z_a", "z_b", "moved"} <= set(drift.columns)
    assert "loo" not in rep.honesty
    # no study stored: the honesty block says how to get one, and refits nothing
    assert rep.honesty["validation"] is None and "adt validate" in render_html(rep)
    # no judge calibration stored: no judges section (it appears once `adt judge validate` stored one)
    assert rep.honesty["judges"] is None and 'data-testid="judges-table"' not in render_html(rep)
    # a stored `adt validate` study is shown, with its id and date, instead of refitting
    from calibration.validation import SUMMARY_COLUMNS
    from calibration.validation_store import FORM_COLUMNS, save_validation

    summary = pd.DataFrame([{c: 0.0 for c in SUMMARY_COLUMNS} | {"split": "loo", "strategy": "random", "form_size": 50,
                                                                "n_models": 12, "n_intervals": 120, "coverage": 0.94}])
    forms = pd.DataFrame([{c: 0 for c in FORM_COLUMNS} | {"split": "loo", "model": "m", "strategy": "random",
                                                         "seed": 1, "item_ids": ["x"]}])
    with open_bank(bank_path) as bank:
        vid = save_validation(bank, summary=summary, forms=forms, settings={}, calibration_settings={"irt": "2pl"},
                              snapshot_id=bank.snapshot_id(), created_at="2026-12-05T10:00:00")
        rep = build_report(bank, round_no=1, seed=5, n_worlds=20)
    page = render_html(rep)
    assert rep.honesty["validation"]["validation_id"] == vid and "loo" not in rep.honesty
    assert vid in page and "2026-12-05" in page and 'data-testid="validation-table"' in page


def test_publication_rounds_of_unpublished_forms() -> None:
    from adt.report import _rounds

    assert _rounds(pd.NA) == [] and _rounds(None) == [] and _rounds(np.array([2, 1])) == [2, 1]


def test_unknown_calibration_is_a_clear_error(demo_bank: tuple[Path, pd.DataFrame],
                                              capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as bad:
        main(["--bank", str(demo_bank[0]), "report", "--round", "1", "--calibration", "cal_nope", "--out", "x.html"])
    assert bad.value.code == 1 and "cal_nope" in capsys.readouterr().err


def test_deferred_replay_runs_without_the_bank(demo_bank: tuple[Path, pd.DataFrame]) -> None:
    from adt.report import replay_models

    with open_bank(demo_bank[0]) as bank:
        rep = build_report(bank, round_no=1, seed=5, n_worlds=10, loo=True, loo_models=2, defer_loo=True)
    assert "loo" not in rep.honesty and rep.loo_job is not None
    done = replay_models(rep)
    assert done.loo_job is None and len(done.honesty["loo"]) == 2
    assert 'data-testid="loo-coverage"' in render_html(done)


def test_report_flags_are_the_cli_flags(demo_bank: tuple[Path, pd.DataFrame], tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    """One rule, one input: the report's flag counts (and rows) are `adt calibration flags`' (issue 12: they
    were 292 vs 299 wrong keys on a real bank), and its table names items by their source ids."""
    bank_path = tmp_path / "flags.duckdb"
    shutil.copyfile(demo_bank[0], bank_path)
    main(["--bank", str(bank_path), "calibrate", "--json"])
    capsys.readouterr()
    main(["--bank", str(bank_path), "calibration", "flags", "--json"])
    cli = pd.DataFrame(json.loads(capsys.readouterr().out)["flags"])
    with open_bank(bank_path) as bank:
        rep = build_report(bank, round_no=1, seed=5, n_worlds=5)
    flags = rep.diagnostics["flags"]
    assert len(cli) > 0
    assert flags["flag"].value_counts().to_dict() == cli["flag"].value_counts().to_dict()
    assert set(zip(flags["item_id"], flags["flag"], strict=True)) == set(zip(cli["item_id"], cli["flag"], strict=True))
    page = render_html(rep)
    counts = ", ".join(f"{k} {v}" for k, v in cli["flag"].value_counts().items())
    assert f"Flags: {counts}" in page
    shown = flags[~flags["flag"].isin(["unanswered", "all_correct", "all_wrong"])]
    if len(shown):
        table = page[page.index('data-testid="flags"'):]
        assert "source_ids" in table
        named = [a for a in shown["aliases"] if a]
        assert named and named[0][0] in table


# ------------------------------------------------------------------------------------------------ issue 12
def test_default_forms_are_the_forms_models_took(demo_bank: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    """Issue 12: the report chose the latest form, which no model had taken (its leave-one-out table then
    estimated models from 1 to 5 items). By default it reports the forms models took; a later form that
    nobody answered is named as not reported, and every section says which form(s) and models it uses."""
    bank_path = tmp_path / "fresh.duckdb"
    shutil.copyfile(demo_bank[0], bank_path)
    with open_bank(bank_path) as bank:
        answered = set(bank.responses()["item_id"])
        fresh = [i for i in bank.item_ids() if i not in answered][:40]
        assert len(fresh) == 40
        bank.save_form("fresh-1", fresh, spec={"size": 40}, strategy="random", seed=1,
                       snapshot_id=bank.snapshot_id(), calibration_id=None, objectives={}, content_hash="x" * 64,
                       n_uncalibrated=40)
        assert bank.forms()["name"].iloc[-1] == "fresh-1"  # the latest form
        rep = build_report(bank, seed=5, n_worlds=5)
    assert [f["name"] for f in rep.forms] == ["round-1"]
    assert len(rep.forms[0]["takers"]) == 12 and len(rep.forms[0]["ran"]) == 12
    assert rep.honesty["form"] == "round-1"
    assert "not reported, answered by no model: fresh-1" in rep.scopes["forms"]
    assert "12 models" in rep.scopes["leaderboard"] and "all responses" in rep.scopes["leaderboard"]
    assert "form round-1 (taken by 12 of the 12 models" in rep.scopes["honesty"]
    page = render_html(rep)
    for section in ("leaderboard", "slices", "forms", "diagnostics", "honesty"):
        assert f'data-testid="scope-{section}"' in page
    assert 'data-testid="form-takers" data-n="12"' in page
    # never the default, and --form on it still says no model answered it
    from adt.report import _forms_of, form_takers

    with open_bank(bank_path) as bank:
        frame = bank.forms()
        ids = {n: bank.form(n)["item_ids"] for n in frame["name"]}
        takers, ran = form_takers(ids, bank.responses())
        assert takers["fresh-1"] == [] and _forms_of(frame, None, None, takers, ran) == ["round-1"]
        assert _forms_of(frame, None, None, {}, {}) == []
        with pytest.raises(InputError, match="--form fresh-1: no model has answered its items"):
            build_report(bank, form="fresh-1", seed=5, n_worlds=5)


def test_not_separable_lists_are_cut_on_the_page_and_whole_in_the_data() -> None:
    """Issue 12: long 'not separable from' lists made leaderboard rows very tall."""
    from adt.report import NOT_SEPARABLE_SHOWN, _nosep_cell, names_list

    names = [f"model-{k}" for k in range(12)]
    cell = _nosep_cell(names)
    shown = re.search(r">([^<]*)</td>", cell).group(1)
    assert shown == f"{', '.join(names[:NOT_SEPARABLE_SHOWN])} and {12 - NOT_SEPARABLE_SHOWN} more"
    assert f'title="{", ".join(names)}"' in cell and 'data-n="12"' in cell
    assert "separable from all" in _nosep_cell([]) and names_list(names[:3]) == "model-0, model-1, model-2"


def test_slices_of_a_key_with_many_values_are_capped(demo_bank: tuple[Path, pd.DataFrame],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: a custom tag key with many values must not make a table of a thousand columns: the values
    with the most items are shown (at most MAX_SLICE_VALUES), values under MIN_SUBSLICE_ANSWERED items
    have no sub-score, and the report says how many values it left out and why."""
    import adt.report as report_module
    from adt.workflow.calibrate import MIN_SUBSLICE_ANSWERED, subslices

    monkeypatch.setattr(report_module, "MAX_SLICE_VALUES", 2)
    with open_bank(demo_bank[0]) as bank:
        groups = subslices(bank, [str(i) for i in bank.item_ids()], "task")
        rep = build_report(bank, round_no=1, seed=5, n_worlds=5, by=["task"])
    big = sorted((v for v in groups if len(groups[v]) >= MIN_SUBSLICE_ANSWERED), key=lambda v: (-len(groups[v]), v))
    assert len(big) > 2
    frame = rep.slices["task"]
    assert [c.rsplit(" (", 1)[0] for c in frame.columns] == sorted(big[:2])
    said = rep.scopes["slice:task"]
    assert f"{len(big) - 2:,} more value(s)" in said and "adt estimate --by task" in said
    assert said in " ".join(rep.notes) and 'data-testid="scope-slice:task"' in render_html(rep)


def test_report_help_documents_by_and_the_default_forms(capsys: pytest.CaptureFixture) -> None:
    from adt.report import MAX_SLICE_VALUES, SLICE_KEYS
    from adt.workflow.calibrate import MIN_SUBSLICE_ANSWERED

    try:
        main(["report", "--help"])
    except SystemExit as done:
        assert done.code in (0, None)
    text = " ".join(capsys.readouterr().out.split())
    assert f"default: {', '.join(SLICE_KEYS)} where tagged" in text and "any the bank's items carry" in text
    assert f"fewer than {MIN_SUBSLICE_ANSWERED} items" in text and f"at most {MAX_SLICE_VALUES} values" in text
    assert "never a form no model answered" in text
