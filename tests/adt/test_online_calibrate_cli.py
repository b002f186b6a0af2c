"""`adt calibrate --online` and content priors (issue 14, part C): a seeded bank from known 2PL parameters,
an operational calibration, pretest items answered about 200 times each, recovered through the CLI on the
operational scale with the operational items held bit for bit; the stored calibration read like any other;
refusals named with the bank unchanged; content priors stored and used by the sampler's pool and by
whole-bank predictions."""

from __future__ import annotations

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
from adt.workflow.calibrate import predictive_model
from adt.workflow.forms import build_spec, read_pool
from calibration import predict
from calibration.store import list_calibrations, load_calibration
from itembank import ImportOptions, open_bank
from sampler import prepare

N_OPS, N_NEW, N_MODELS = 60, 40, 300
P_NEW = 0.7            # each model answers a pretest item with this probability: ~210 responses per item
TOPICS = ("algebra", "history", "chemistry", "law")


def run(bank: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args], catch_exceptions=False)


def refused(bank: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Exit code and stderr of a command run as the installed ``adt`` runs it (errors caught once in ``main``)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--bank", str(bank), *args])
    return int(exc.value.code or 0), capsys.readouterr().err


def cli_json(bank: Path, *args: str) -> Any:
    res = run(bank, *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Operational items q*, pretest items p*, one pretest item nobody answered (u0) and a variant of q0 (v0,
    never answered); 300 models ~ N(0, 1) answering ~75% of the operational items and ~70% of the pretest ones.
    The operational items are moved to stage operational; everything else stays pretest."""
    tmp = tmp_path_factory.mktemp("online")
    rng = np.random.default_rng(20261206)
    ops = [f"q{k}" for k in range(N_OPS)]
    new = [f"p{k}" for k in range(N_NEW)]
    ids = ops + new
    n = len(ids)
    a = np.exp(rng.normal(0.2, 0.25, n))
    b = rng.normal(0.0, 1.0, n)
    rows = [{"id": q, "question": f"A {TOPICS[k % 4]} question, number {q}, on {TOPICS[(k // 4) % 4]} too?",
             "choices": ["w", "x", "y", "z"], "answer": "A", "tags": {"domain": TOPICS[k % 4]}}
            for k, q in enumerate(ids)]
    rows.append({"id": "u0", "question": "An algebra question nobody has answered yet?", "choices": ["w", "x", "y"],
                 "answer": "B", "tags": {"domain": "algebra"}})
    rows.append({"id": "v0", "question": "A variant of q0, reworded, still on algebra?", "choices": ["w", "x", "y", "z"],
                 "answer": "C", "tags": {"domain": "algebra"}, "parent_id": "q0"})
    items_file = tmp / "items.jsonl"
    items_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    theta = rng.normal(0.0, 1.0, N_MODELS)
    y = (rng.random((N_MODELS, n)) < expit(a * (theta[:, None] - b))).astype(float)
    seen = rng.random((N_MODELS, n)) < np.r_[np.full(N_OPS, 0.75), np.full(N_NEW, P_NEW)]
    mm, ii = np.nonzero(seen)
    names = np.asarray([f"m{k}" for k in range(N_MODELS)])
    frame = pd.DataFrame({"model": names[mm], "qid": np.asarray(ids)[ii], "score": y[mm, ii]})
    # a model that answered pretest items only: nothing carries the scale to it
    lonely = pd.DataFrame({"model": "lonely", "qid": new[:5], "score": [1.0, 0.0, 1.0, 0.0, 1.0]})
    pd.concat([frame, lonely]).to_csv(tmp / "responses.csv", index=False)
    bank = tmp / "bank.duckdb"
    with open_bank(bank, create=True) as bk:
        bk.import_items([items_file], ImportOptions(source="toy"))
        bk.import_responses(tmp / "responses.csv", source="toy", model_col="model", item_col="qid",
                            score_col="score", round_no=1)
        item_of = {q: bk.resolve(f"toy:{q}") for q in [*ids, "u0", "v0"]}
        bk.set_stage([item_of[q] for q in ops], "operational", reason="calibrated in the test's first round")
    return {"bank": bank, "tmp": tmp, "item_of": item_of, "ops": ops, "new": new,
            "a": dict(zip(ids, a, strict=True)), "b": dict(zip(ids, b, strict=True)), "n_per_new": seen[:, N_OPS:].sum(0)}


def _state(bank: Path) -> tuple[int, str]:
    with open_bank(bank) as bk:
        return len(list_calibrations(bk)), bk.snapshot_id()


def test_online_refuses_without_an_anchor_calibration(sim: dict[str, Any], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bank = tmp_path / "copy.duckdb"
    bank.write_bytes(sim["bank"].read_bytes())
    before = bank.read_bytes()
    code, err = refused(bank, capsys, "calibrate", "--online")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert "needs an anchor calibration" in err and "run `adt calibrate` first" in err
    assert bank.read_bytes() == before


@pytest.fixture(scope="module")
def operational(sim: dict[str, Any]) -> dict[str, Any]:
    """The operational calibration: the operational items only; content priors stored for the rest."""
    return cli_json(sim["bank"], "calibrate", "--filter", "stage=operational", "--seed", "1")


def test_full_calibration_stores_content_priors_for_the_items_it_does_not_calibrate(
        sim: dict[str, Any], operational: dict[str, Any]) -> None:
    cp = operational["content_prior"]
    assert cp["n_fitted"] == N_OPS and cp["seconds"] > 0 and cp["b_sd"] > 0 and cp["log_a_sd"] > 0
    with open_bank(sim["bank"]) as bank:
        stored = load_calibration(bank, operational["calibration_id"])
    prior = stored.content_prior.set_index("item_id")
    others = {sim["item_of"][q] for q in [*sim["new"], "u0", "v0"]}
    assert set(prior.index) == others and cp["n_predicted"] == len(others)
    assert np.isfinite(prior[["a", "b", "log_a_sd", "b_sd"]].to_numpy()).all()
    # the variant starts from its parent's calibrated parameters
    v0, q0 = sim["item_of"]["v0"], sim["item_of"]["q0"]
    pos = stored.params.item_ids.index(q0)
    assert bool(prior.loc[v0, "from_parent"]) and prior.loc[v0, "b"] == pytest.approx(stored.params.b[pos])
    assert prior.loc[v0, "a"] == pytest.approx(stored.params.a[pos])
    # the text output names the fit and its time
    res = run(sim["bank"], "calibrate", "--filter", "stage=operational", "--seed", "1", "--no-content-prior")
    assert res.exit_code == 0 and "content prior" not in res.output
    with open_bank(sim["bank"]) as bank:
        assert load_calibration(bank).content_prior is None


@pytest.fixture(scope="module")
def online(sim: dict[str, Any], operational: dict[str, Any]) -> dict[str, Any]:
    out = cli_json(sim["bank"], "calibrate", "--online", "--anchor-calibration", operational["calibration_id"],
                   "--seed", "2")
    return out


def test_online_recovers_the_pretest_items_on_the_operational_scale(sim: dict[str, Any], online: dict[str, Any],
                                                                   operational: dict[str, Any]) -> None:
    assert online["method"] == "online-mem" and online["anchor_calibration_id"] == operational["calibration_id"]
    assert online["n_new"] == N_NEW and online["n_calibrated"] == N_NEW and online["n_at_prior"] == 0
    assert online["n_operational"] == N_OPS and online["converged"]
    assert online["prior"] == {"content": N_NEW}
    assert 150 <= online["responses_per_item"]["min"] and online["responses_per_item"]["max"] <= N_MODELS
    rows = pd.DataFrame(online["items"])
    back = {v: k for k, v in sim["item_of"].items()}
    true_b = np.array([sim["b"][back[i]] for i in rows["item_id"]])
    true_a = np.array([sim["a"][back[i]] for i in rows["item_id"]])
    rmse_b = float(np.sqrt(np.mean((rows["b"] - true_b) ** 2)))
    rmse_a = float(np.sqrt(np.mean((rows["a"] - true_a) ** 2)))
    assert rmse_b < 0.3, rmse_b
    assert rmse_a < 0.35, rmse_a
    assert np.corrcoef(rows["b"], true_b)[0, 1] > 0.95
    # the SEs say about how far off they are
    inside = np.abs(rows["b"] - true_b) <= 1.96 * rows["se_b"]
    assert inside.mean() >= 0.8
    assert online["median_se_b"] == pytest.approx(float(rows["se_b"].median()))
    expected = {sim["item_of"][q]: int(n) + (k < 5) for k, (q, n) in enumerate(zip(sim["new"], sim["n_per_new"],
                                                                                  strict=True))}  # + lonely's 5
    assert dict(zip(rows["item_id"], rows["n_responses"], strict=True)) == expected


def test_online_calibration_holds_the_operational_items_bit_for_bit(sim: dict[str, Any], online: dict[str, Any],
                                                                   operational: dict[str, Any]) -> None:
    with open_bank(sim["bank"]) as bank:
        anchor = load_calibration(bank, operational["calibration_id"])
        stored = load_calibration(bank, online["calibration_id"])
    table = stored.item_table().set_index("item_id")
    old = anchor.item_table().set_index("item_id")
    ops = [sim["item_of"][q] for q in sim["ops"]]
    assert (table.loc[ops, "status"] == "fixed").all()
    for col in ("a", "b", "c", "d", "se_a", "se_b"):
        np.testing.assert_array_equal(table.loc[ops, col].to_numpy(), old.loc[ops, col].to_numpy())
    new = [sim["item_of"][q] for q in sim["new"]]
    assert (table.loc[new, "status"] == "calibrated").all()
    assert (table.loc[new, "n_responses"] >= 150).all() and (table.loc[ops, "n_responses"] > 0).all()
    assert stored.info["link_method"] == "fixed"
    assert stored.info["anchor_calibration_id"] == operational["calibration_id"]
    assert stored.method == "online-mem" and stored.irt_model == anchor.irt_model
    # the operational items predict as they did under the anchor
    pm_old, pm_new = anchor.predictive, stored.predictive
    assert pm_old is not None and pm_new is not None
    at_old, at_new = pm_old.position(), pm_new.position()
    i_old = [at_old[i] for i in ops]
    i_new = [at_new[i] for i in ops]
    np.testing.assert_array_equal(pm_new.params.a[i_new], pm_old.params.a[i_old])
    np.testing.assert_array_equal(pm_new.params.b[i_new], pm_old.params.b[i_old])


def test_estimate_reads_the_online_calibration_and_predicts_the_whole_bank(sim: dict[str, Any],
                                                                           online: dict[str, Any]) -> None:
    est = cli_json(sim["bank"], "estimate", "--model", "m3")
    assert est["calibration_id"] == online["calibration_id"]
    assert np.isfinite([est["theta"], est["pred_acc"], est["pred_lo"], est["pred_hi"]]).all()
    # u0 (nobody answered it) and v0 come from their content priors: the prediction covers the whole bank
    assert est["covers_slice"] and est["n_slice_items"] == N_OPS + N_NEW + 2
    assert est["n_content_prior"] == 2
    assert any("content priors" in s for s in est["sources"])
    res = run(sim["bank"], "estimate", "--model", "m3")
    assert res.exit_code == 0 and "ability" in res.output


def test_an_unanswered_item_is_predicted_from_its_content_prior_with_its_sd(sim: dict[str, Any],
                                                                          online: dict[str, Any]) -> None:
    u0 = sim["item_of"]["u0"]
    with open_bank(sim["bank"]) as bank:
        stored = load_calibration(bank, online["calibration_id"])
        pm = predictive_model(bank, stored)
        scores = bank.responses(None, models=["m3"]).groupby("item_id")["score"].mean()
    prior = stored.content_prior.set_index("item_id")
    k = pm.position()[u0]
    assert pm.basis[k] == "content_prior"
    assert pm.params.b[k] == pytest.approx(prior.loc[u0, "b"]) and pm.params.a[k] == pytest.approx(prior.loc[u0, "a"])
    assert pm.se_b[k] == pytest.approx(prior.loc[u0, "b_sd"]) and pm.se_b[k] > 0 and pm.se_a[k] > 0
    one = predict(pm, scores, [u0])
    assert one.n_predicted == 1 and one.n_content_prior == 1 and one.pred_sd > 0
    # its parameter error is part of the interval: the same item held exact gives a narrower one
    exact = predict(pm.__class__(**{**pm.__dict__, "se_a": pm.se_a * 0, "se_b": pm.se_b * 0}), scores, [u0])
    assert one.sd_components["parameters"] > 0.01 and exact.sd_components["parameters"] == pytest.approx(0, abs=1e-9)
    # an answer to a content-prior item never moves the ability
    moved = predict(pm, pd.concat([scores, pd.Series({u0: 1.0})]), [u0])
    assert moved.theta == pytest.approx(one.theta) and moved.n_items == one.n_items


def test_the_pool_uses_the_stored_content_prior_and_counts_it_uncalibrated(sim: dict[str, Any],
                                                                         online: dict[str, Any]) -> None:
    u0 = sim["item_of"]["u0"]
    with open_bank(sim["bank"]) as bank:
        stored = load_calibration(bank, online["calibration_id"])
        spec = build_spec(bank, strategy="random", size=10, seed=1)
        pool, _, _, cid = read_pool(bank, spec, None)
    assert cid == online["calibration_id"]
    prior = stored.content_prior.set_index("item_id")
    frame = pool.set_index("item_id")
    assert frame.loc[u0, "param_source"] == "content_prior"
    assert frame.loc[sim["item_of"]["q1"], "param_source"] == "calibrated"
    assert frame.loc[sim["item_of"]["p1"], "param_source"] == "calibrated"   # calibrated online
    prep = prepare(pool, spec.with_(stages=None))     # every stage eligible: u0 is a pretest item
    k = list(prep.item_ids).index(u0)
    assert prep.a[k] == pytest.approx(prior.loc[u0, "a"]) and prep.b[k] == pytest.approx(prior.loc[u0, "b"])
    assert prep.a[k] != 1.0 and prep.uncalibrated[k]
    assert int(prep.uncalibrated.sum()) == 2          # u0 and v0: at their content priors, still uncalibrated
    # CAT scores on these parameters: it still gets calibrated items only
    assert u0 not in set(stored.pool_frame().dropna(subset=["a", "b"])["item_id"])


def test_a_form_drawn_on_content_priors_rederives(sim: dict[str, Any], online: dict[str, Any], tmp_path: Path) -> None:
    bank = tmp_path / "forms.duckdb"
    bank.write_bytes(sim["bank"].read_bytes())
    out = cli_json(bank, "sample", "--strategy", "milp", "--size", "12", "--seed", "4", "--name", "f-cp")
    assert out["calibration_id"] == online["calibration_id"]
    audit = run(bank, "audit", "form", "f-cp")
    assert audit.exit_code == 0, audit.output
    assert "re-derived: hash matches" in audit.output, audit.output
    assert "param_source" in json.loads(run(bank, "form", "show", "f-cp", "--json").stdout)["spec"]["pool"]["digest"]


def test_online_refusals_are_named_and_leave_the_bank_unchanged(sim: dict[str, Any], online: dict[str, Any],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    bank = sim["bank"]
    before = _state(bank)
    u0 = sim["item_of"]["u0"]
    for args, message in (
            (["--filter", f"item_id={u0}"], "no pretest item has responses: 1 pretest items match the filters, "
                                            "none answered"),
            (["--filter", "stage=operational"], "--filter stage=... must include pretest"),
            (["--model", "lonely", "--anchor-calibration", online["anchor_calibration_id"]],
             "items have no responses here: nothing carries its scale"),
            (["--anchor-calibration", "cal_nope"], "no calibration 'cal_nope'"),
            (["--irt", "3pl", "--link", "fixed"], "it takes no --irt, --link")):
        code, err = refused(bank, capsys, "calibrate", "--online", *args)
        assert code == 1 and err.startswith("error: ") and message in err, (args, err)
    code, err = refused(bank, capsys, "calibrate", "--online-method", "oem")
    assert code == 1 and "--online-method needs --online" in err
    code, err = refused(bank, capsys, "calibrate", "--online", "--online-method", "nope")
    assert code == 2 and "method_a" in err
    assert _state(bank) == before


def test_a_later_online_run_estimates_the_unpromoted_pretest_items_again(sim: dict[str, Any], online: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    # The latest calibration (the online one) holds the pretest items it calibrated; while they are still in
    # stage pretest they are not the scale: an online run anchored on it estimates them again, the operational
    # items held as before.
    bank = tmp_path / "again.duckdb"
    bank.write_bytes(sim["bank"].read_bytes())
    again = cli_json(bank, "calibrate", "--online", "--seed", "2")
    assert again["anchor_calibration_id"] == online["calibration_id"]
    assert again["n_new"] == N_NEW and again["n_operational"] == N_OPS
    first = pd.DataFrame(online["items"]).set_index("item_id")["b"]
    second = pd.DataFrame(again["items"]).set_index("item_id")["b"]
    assert np.allclose(first.sort_index(), second.sort_index(), atol=0.05)   # the same data: the same estimates


def test_online_methods_and_the_text_output(sim: dict[str, Any], online: dict[str, Any], tmp_path: Path) -> None:
    bank = tmp_path / "methods.duckdb"
    bank.write_bytes(sim["bank"].read_bytes())
    q5 = sim["item_of"]["q5"]
    with open_bank(bank) as bk:
        bk.retire([q5], "retired after the anchor calibration")
    res = run(bank, "calibrate", "--online", "--online-method", "fpc", "--anchor-calibration",
              online["anchor_calibration_id"])
    assert res.exit_code == 0, res.output
    assert "online-fpc" in res.output and f"{N_NEW} new items" in res.output and "median SE(b)" in res.output
    assert "fpc takes one prior for every new item" in res.output
    assert "content prior: fitted on" in res.output
    assert f"{N_OPS - 1} operational items held" in res.output      # a retired anchor item is left out
    with open_bank(bank) as bk:
        stored = load_calibration(bk)
    assert q5 not in stored.params.item_ids and (stored.item_status == "fixed").sum() == N_OPS - 1
