"""Plots: the figures hold what they should (counts of plotted elements, curves from calibration.irt),
files are written and are not blank, observed proportions recover known curves, and the CLI works
from a bank and parameter files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from adt import paramfile, plots
from adt.cli import cli
from adt.commands import plot as _plot_commands  # noqa: F401 - registers `adt plot`
from adtbase.errors import InputError
from calibration import irt
from calibration.irt import ItemParams, prob
from itembank import ImportOptions, open_bank


def ink(path: Path) -> float:
    """Share of pixels that differ from the background (the top-left pixel)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(path)[..., :3]
    return float(np.mean(np.any(np.abs(img - img[0, 0]) > 0.05, axis=-1)))


def test_ability_forest(tmp_path: Path) -> None:
    models = ["m_low", "m_high", "m_mid"]
    fig = plots.ability_figure(models, [-1.0, 1.5, 0.2], [-1.6, 1.0, -0.3], [-0.4, 2.1, 0.7])
    ax = fig.axes[0]
    (container,) = ax.containers
    points = container.lines[0]
    assert len(points.get_xdata()) == 3
    assert [t.get_text() for t in ax.get_yticklabels()] == ["m_low", "m_mid", "m_high"]   # highest on top
    assert list(points.get_xdata()) == [-1.0, 0.2, 1.5]
    png = plots.save(fig, tmp_path / "ability.png")
    assert ink(png) > 0.01
    svg = plots.save(fig, tmp_path / "ability.svg")
    assert svg.read_text().count("m_mid") >= 1 and "<svg" in svg.read_text()
    with pytest.raises(InputError, match="not inside"):
        plots.ability_figure(["a"], [0.0], [0.5], [1.0])
    with pytest.raises(InputError, match=r"\.png or \.svg"):
        plots.save(fig, tmp_path / "ability.jpg")
    lo, hi = plots.intervals_from_se([0.0], [1.0])
    assert lo[0] == pytest.approx(-1.959964, abs=1e-6) and hi[0] == pytest.approx(1.959964, abs=1e-6)


def test_information_curves(tmp_path: Path) -> None:
    easy = ItemParams(("e1", "e2", "e3"), np.array([1.0, 1.5, 2.0]), np.array([-1.0, -1.0, -1.0]))
    hard = ItemParams(("h1", "h2"), np.array([1.2, 1.2]), np.array([1.5, 1.5]), np.array([0.2, 0.2]), np.ones(2))
    fig = plots.information_figure({"easy": easy, "hard": hard})
    info_ax, score_ax = fig.axes[:2]
    assert len(info_ax.lines) == 2 and len(score_ax.lines) == 2
    x, y = info_ax.lines[0].get_data()
    assert np.allclose(y, irt.test_information(x, easy))
    assert abs(x[np.argmax(y)] - (-1.0)) <= 0.05      # a 2PL form at b = -1 is most informative there
    score = score_ax.lines[1].get_ydata()
    assert np.all(np.diff(score) > 0) and score[0] > 0.2 - 1e-3   # guessing floor of the 3PL form
    assert ink(plots.save(fig, tmp_path / "info.png")) > 0.01
    with pytest.raises(InputError, match="no items"):
        plots.information_figure({"empty": easy.subset(np.array([], dtype=np.int64))})


def test_observed_proportions_recover_the_curve(rng: np.random.Generator) -> None:
    a, b = 1.4, 0.3
    theta = rng.normal(size=20000)
    scores = (rng.random(theta.size) < prob(theta, a, b)).astype(float)
    obs = plots.observed_proportions(theta, ["i"] * theta.size, scores, bins=8)
    assert len(obs) == 8 and obs["n"].sum() == theta.size
    expected = np.array([prob(theta[(theta >= lo_t) & (theta <= hi_t)], a, b).mean()
                         for lo_t, hi_t in zip(np.quantile(theta, np.linspace(0, 1, 9))[:-1],
                                               np.quantile(theta, np.linspace(0, 1, 9))[1:], strict=True)])
    # Each bin holds 2500 responses: its proportion is within 4 binomial SEs of the model's mean.
    se = np.sqrt(expected * (1 - expected) / obs["n"].to_numpy())
    assert np.all(np.abs(obs["p"].to_numpy() - expected) < 4 * se)
    assert np.all((obs["lo"] < obs["p"]) & (obs["p"] < obs["hi"]))


def test_icc_panels(tmp_path: Path, rng: np.random.Generator) -> None:
    params = ItemParams(("i1", "i2", "i3"), np.array([1.0, 0.2, 2.0]), np.array([0.0, 1.0, -0.5]))
    theta = rng.normal(size=600)
    ids = np.repeat(["i1", "i2"], 300)
    scores = (rng.random(600) < 0.5).astype(float)
    obs = plots.observed_proportions(theta, ids, scores, bins=5)
    fig = plots.icc_figure(params, observed=obs, labels={"i2": "low discrimination"})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 3 and all(len(ax.lines) >= 1 for ax in visible)
    assert [len(ax.containers) for ax in visible] == [1, 1, 0]    # observed points only where responses exist
    assert len(visible[0].containers[0].lines[0].get_xdata()) == 5
    assert "low discrimination" in visible[1].get_title()
    x, y = visible[2].lines[0].get_data()
    assert np.allclose(y, prob(x, 2.0, -0.5))
    assert ink(plots.save(fig, tmp_path / "icc.png")) > 0.01
    with pytest.raises(InputError, match="at most"):
        plots.icc_figure(params, max_items=2)


def test_exposure_histogram(tmp_path: Path) -> None:
    fig = plots.exposure_figure([0, 0, 1, 3, 3, 3], [0, 1, 0, 0, 0, 2], high_runs=2)
    run_ax, pub_ax = fig.axes[:2]
    assert [p.get_height() for p in run_ax.patches] == [2, 1, 3]
    assert [p.get_x() + p.get_width() / 2 for p in run_ax.patches] == [0, 1, 3]
    assert [p.get_height() for p in pub_ax.patches] == [4, 1, 1]
    assert "2 of 6 never" in run_ax.get_title()
    assert ink(plots.save(fig, tmp_path / "exposure.png")) > 0.01


def test_params_from_frame_errors() -> None:
    good = paramfile.params_from_frame(pd.DataFrame({"item_id": ["x"], "a": [1.0], "b": [0.0]}))
    assert good.c[0] == 0 and good.d[0] == 1
    with pytest.raises(InputError, match="no column 'b'"):
        paramfile.params_from_frame(pd.DataFrame({"item_id": ["x"], "a": [1.0]}))
    with pytest.raises(InputError, match="row 1: field 'a'"):
        paramfile.params_from_frame(pd.DataFrame({"item_id": ["x", "y"], "a": [1.0, "z"], "b": [0.0, 0.0]}))


def test_one_reader_for_parameter_files(tmp_path: Path) -> None:
    """adt cat and adt plot read --params through adt.paramfile: the same formats, defaults and checks."""
    frame = pd.DataFrame({"item_id": ["x", "y"], "a": [1.0, 2.0], "b": [0.0, 1.0], "c": [0.2, None]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_json(tmp_path / "p.json", orient="records")
    frame.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.json", "p.parquet"):
        params = paramfile.read_params(tmp_path / name)
        assert params.item_ids == ("x", "y") and list(params.c) == [0.2, 0.0] and list(params.d) == [1.0, 1.0]
    (tmp_path / "p.txt").write_text("item_id,a,b\n")
    with pytest.raises(InputError, match=r"--params .*p\.txt: use a \.csv, \.json or \.parquet file"):
        paramfile.read_params(tmp_path / "p.txt")
    with pytest.raises(InputError, match="no such file"):
        paramfile.read_params(tmp_path / "nope.csv")
    with pytest.raises(InputError, match=r"item y: parameters need a > 0"):
        paramfile.params_from_frame(pd.DataFrame({"item_id": ["x", "y"], "a": [1.0, -1.0], "b": [0.0, 0.0]}))
    with pytest.raises(InputError, match="item 'x' appears twice"):
        paramfile.params_from_frame(pd.DataFrame({"item_id": ["x", "x"], "a": [1.0, 1.0], "b": [0.0, 0.0]}))


def test_cli_plots_from_a_bank(tmp_path: Path, rng: np.random.Generator) -> None:
    n_items, n_models = 12, 8
    rows = [{"id": f"q{i}", "question": f"Question {i}?", "choices": ["yes", "no"], "answer": "A"}
            for i in range(n_items)]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    bank_path = tmp_path / "bank.duckdb"
    a, b = rng.uniform(0.8, 2.0, n_items), rng.normal(size=n_items)
    theta = np.linspace(-1.5, 1.5, n_models)
    scores = (rng.random((n_models, n_items)) < prob(theta[:, None], a, b)).astype(float)
    pd.DataFrame([{"model": f"m{m}", "qid": f"q{i}", "score": scores[m, i]} for m in range(n_models)
                  for i in range(n_items)]).to_csv(tmp_path / "resp.csv", index=False)
    with open_bank(bank_path, create=True) as bank:
        bank.import_items([tmp_path / "items.jsonl"], ImportOptions(source="toy"))
        bank.import_responses(tmp_path / "resp.csv", source="toy", model_col="model", item_col="qid", score_col="score")
        ids = [bank.resolve(f"toy:q{i}") for i in range(n_items)]
        for name, part in (("f1", ids[:6]), ("f2", ids[4:])):
            bank.save_form(name, part, spec={}, strategy="all", seed=0, snapshot_id="s", calibration_id=None,
                           objectives={}, content_hash=name, n_uncalibrated=0)
    pd.DataFrame({"item_id": ids[:-1], "a": a[:-1], "b": b[:-1]}).to_csv(tmp_path / "params.csv", index=False)
    pd.DataFrame({"item_id": ids[:2], "reason": ["low a", "misfit"]}).to_parquet(tmp_path / "flags.parquet")
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(cli, ["--bank", str(bank_path), "plot", *args, "--json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.output)
        assert ink(Path(out["out"])) > 0.01 if out["out"].endswith(".png") else Path(out["out"]).stat().st_size > 0
        return out

    exact = run("ability", "--params", str(tmp_path / "params.csv"), "--out", str(tmp_path / "a.png"))
    assert exact["elements"] == n_models and "leave out item-parameter error" in exact["note"]
    # Without --params or --from: the stored calibration, with adt estimate's intervals and sources.
    none_yet = runner.invoke(cli, ["--bank", str(bank_path), "plot", "ability", "--out", str(tmp_path / "c.png")])
    assert none_yet.exit_code != 0 and "calibrat" in str(none_yet.exception or none_yet.output)
    assert runner.invoke(cli, ["--bank", str(bank_path), "calibrate", "--json"]).exit_code == 0
    honest = run("ability", "--out", str(tmp_path / "c.png"))
    assert honest["elements"] == n_models and honest["calibration_id"]
    assert any(s.startswith("item parameters") for s in honest["sources"])
    pd.DataFrame({"model": ["x", "y"], "theta": [0.1, 0.5], "se": [0.2, 0.3]}).to_csv(tmp_path / "ab.csv", index=False)
    assert run("ability", "--from", str(tmp_path / "ab.csv"), "--out", str(tmp_path / "a.svg"))["elements"] == 2
    assert run("information", "f1", "f2", "--params", str(tmp_path / "params.csv"),
               "--out", str(tmp_path / "i.png"))["elements"] == 2
    assert run("icc", "--flags", str(tmp_path / "flags.parquet"), "toy:q5", "--params", str(tmp_path / "params.csv"),
               "--out", str(tmp_path / "icc.png"))["elements"] == 3
    assert run("exposure", "--out", str(tmp_path / "e.png"))["elements"] == n_items
    bad = runner.invoke(cli, ["--bank", str(bank_path), "plot", "icc", "toy:q11", "--params",
                              str(tmp_path / "params.csv"), "--out", str(tmp_path / "x.png")])
    assert bad.exit_code != 0 and "no parameters for 1 items" in str(bad.exception)


def test_exposure_on_degenerate_and_wide_counts(tmp_path: Path) -> None:
    """Issue 12: a bank whose items were all published once (or never) drew one bar on a -0.4..0.4 axis.
    A panel with one shared count says so in words; counts spread wide are binned by whole numbers."""
    fig = plots.exposure_figure([0, 2, 5, 5], [1, 1, 1, 1])
    run_ax, pub_ax = fig.axes[:2]
    assert len(pub_ax.patches) == 0 and "all 4 items: 1 publications" in pub_ax.texts[0].get_text()
    assert [p.get_height() for p in run_ax.patches] == [1, 1, 2]
    lo, hi = run_ax.get_xlim()
    assert lo < 0 < 5 < hi and all(float(t).is_integer() for t in run_ax.get_xticks())
    none = plots.exposure_figure([0] * 10, [0] * 10)
    assert all(len(ax.patches) == 0 for ax in none.axes[:2])
    assert "10 of 10 never" in none.axes[1].get_title()
    assert ink(plots.save(none, tmp_path / "none.png")) > 0.001
    # 0..399 runs: at most EXPOSURE_BARS whole-number bins of equal width, every item counted once
    counts = np.arange(400) % 400
    bins = plots.exposure_bins(counts)
    assert len(bins) <= plots.EXPOSURE_BARS and bins["items"].sum() == 400
    assert (bins["lo"] % (bins["hi"] - bins["lo"] + 1).iloc[0] == 0).all() and bins["hi"].max() == 399
    assert plots.exposure_bins([0, 0, 3]).to_dict("list") == {"lo": [0, 3], "hi": [0, 3], "items": [2, 1]}


def test_validation_axes_are_the_form_sizes() -> None:
    """One form size drew 96..104 and 100.0..101.0 axes (the strategies' 1% offset read as 101 items)."""
    rows = [dict(split="loo", strategy=s, form_size=100, mae_pred=0.03, mae_raw=0.04, mae_regression=0.035,
                 coverage=0.95, coverage_lo=0.9, coverage_hi=1.0) for s in ("random", "stratified")]
    fig = plots.validation_figure(pd.DataFrame(rows))
    for ax in fig.axes[:2]:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["100"]
    many = pd.DataFrame([dict(r, form_size=n) for n in (25, 50, 100) for r in rows])
    assert [t.get_text() for t in plots.validation_figure(many).axes[1].get_xticklabels()] == ["25", "50", "100"]
