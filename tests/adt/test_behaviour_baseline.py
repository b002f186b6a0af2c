"""Behaviour baselines, recorded before issue 11's refactor ("one rule, one place") and kept after it.

A change that only moves code leaves every number here exactly as it was:

- a form drawn by ``adt sample`` with each sampling strategy, from one bank snapshot with a fixed seed,
  has the same items and the same stored content hash (the one ``adt audit form`` verifies);
- the sampler on its own (explicit item parameters, no bank) picks the same items per strategy;
- a calibration gives the same parameters, SEs and abilities to 1e-9: ``fit_mml`` (2PL, 3PL) on a seeded
  response set, and ``adt calibrate`` (its default, MML 2PL) on the bank.

The bank is the demo's (``adt.demo.build_world``: generated items, simulated models' past runs) with the
two sources of run-to-run variation pinned: event timestamps (``itembank.bank.now``) and import batch ids
(``uuid.uuid4``); both feed the history chain, hence the snapshot id, hence the form hash.

The values in tests/data/behaviour_baseline.json were recorded by these functions at commit bf45dc8. A
change meant to alter one of them re-records it in the same commit and says why. Re-recorded since: the
five forms' content hashes (issue 13: a new form's spec records review_states [approved], the new default,
where it recorded [approved, draft]; the demo bank has no drafts, so the items are the same); and again (issue 14:
a new form's spec records its stages, [operational], and its pretest part, none; the demo's items are all in the
pretest stage, so the young-bank rule lets them all stand in and the items are the same); and the snapshot id and
the five forms' content hashes again (issue 16: an import chunk and a response batch write one batch event, not one
event per row, so the history head in the snapshot id differs; the items drawn are the same).
"""

from __future__ import annotations

import itertools
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import itembank.bank
from adt.cli import cli
from adt.demo import DemoWorld, build_world
from calibration import ResponseSet, fit_mml
from itembank import open_bank
from sampler import FormSpec, get_sampler
from tests.golden import assert_tree_close

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "behaviour_baseline.json"
FIXED_TS = "2026-01-01T00:00:00.000000+00:00"
ATOL = 1e-9

QUOTA_LANG = "language=en:0.5,zh:0.5"
NSGA2_SPEC = ("strategy: nsga2\nsize: 20\nquotas:\n  language: {en: 0.5, zh: 0.5}\n"
              "options: {n_gen: 5, pop_size: 12, time_limit: 600}\n")
# ``adt sample`` arguments per strategy (seed and name added); every strategy `sampler` registers.
FORM_ARGS: dict[str, tuple[str, ...]] = {
    "all": ("--strategy", "all", "--filter", "language=zh"),
    "random": ("--strategy", "random", "--size", "20"),
    "stratified": ("--strategy", "stratified", "--size", "30", "--quota", "frequency_tier=high:0.2,medium:0.3,low:0.5",
                   "--quota", "language=en:0.6,zh:0.4"),
    "milp": ("--strategy", "milp", "--size", "20", "--quota", QUOTA_LANG),
    "nsga2": ("--spec", "{nsga2_spec}"),
}
# The same strategies on a pool with the simulation's true item parameters (no bank involved).
SAMPLER_SPECS: dict[str, dict[str, Any]] = {
    "all": {"strategy": "all", "include": {"language": ["zh"]}},
    "random": {"strategy": "random", "size": 20},
    "stratified": {"strategy": "stratified", "size": 30,
                   "quotas": {"frequency_tier": {"high": 0.2, "medium": 0.3, "low": 0.5},
                              "language": {"en": 0.6, "zh": 0.4}}},
    "milp": {"strategy": "milp", "size": 20, "quotas": {"language": {"en": 0.5, "zh": 0.5}}},
    "nsga2": {"strategy": "nsga2", "size": 20, "quotas": {"language": {"en": 0.5, "zh": 0.5}},
              "options": {"n_gen": 5, "pop_size": 12, "time_limit": 600}},
}
SEEDS = {"all": 1, "random": 11, "stratified": 12, "milp": 13, "nsga2": 14}
# Per item: [status, a, b, c, d, se_a, se_b, se_c, se_d] (None: NaN, e.g. the SE of a parameter held fixed).
PARAM_KEYS = ("a", "b", "c", "d", "se_a", "se_b", "se_c", "se_d")


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoWorld]:
    """The demo's world on 300 items and 12 models: one snapshot, the same on every run."""
    tmp = tmp_path_factory.mktemp("baseline")
    ids = itertools.count()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(itembank.bank, "now", lambda: FIXED_TS)
        mp.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(ids)))
        found = build_world(tmp / "bank.duckdb", n_items=300, n_models=12, seed=7, workdir=tmp, say=lambda _m: None)
    return tmp / "bank.duckdb", found


def adt_json(bank: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def snapshot_of(bank: Path) -> str:
    with open_bank(bank) as b:
        return b.snapshot_id()


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


# -- recorders: what each baseline observes (the same code recorded the golden file) ------------------------
def form_record(bank: Path, strategy: str, tmp: Path) -> dict[str, Any]:
    """Draw and store a form with ``adt sample`` on a copy of the bank; its hash, items and audit outcome."""
    copy = tmp / f"{strategy}.duckdb"
    shutil.copyfile(bank, copy)
    spec_file = tmp / "nsga2.yaml"
    spec_file.write_text(NSGA2_SPEC)
    args = [a.format(nsga2_spec=spec_file) for a in FORM_ARGS[strategy]]
    drawn = adt_json(copy, "sample", *args, "--seed", str(SEEDS[strategy]), "--name", f"base-{strategy}")
    audit = adt_json(copy, "audit", "form", f"base-{strategy}")
    return {"content_hash": drawn["content_hash"], "snapshot_id": drawn["snapshot_id"],
            "calibration_id": drawn["calibration_id"], "item_ids": drawn["item_ids"],
            "audit_ok": bool(audit["rederivation"]["ok"])}


def sampler_record(bank: Path, truth: pd.DataFrame, strategy: str) -> list[str]:
    """The sampler alone: the bank's item frame with the simulation's true a, b, c, d."""
    with open_bank(bank) as b:
        pool = b.items().merge(truth, on="item_id", how="left")
    spec = FormSpec.from_dict({**SAMPLER_SPECS[strategy], "seed": SEEDS[strategy]})
    draft = get_sampler(strategy).sample(pool, spec, np.random.default_rng(SEEDS[strategy]))
    return list(draft.item_ids)


def simulated_responses() -> ResponseSet:
    """40 items (3PL, c = 0.2) answered by 80 models, 30% of the cells missing; drawn here, not by the product."""
    rng = np.random.default_rng(20261123)
    n_items, n_models = 40, 80
    a, b = np.exp(rng.normal(0.0, 0.3, n_items)), rng.normal(0.0, 1.0, n_items)
    theta = rng.normal(0.0, 1.0, n_models)
    p = 0.2 + 0.8 / (1.0 + np.exp(-a * (theta[:, None] - b)))
    score = (rng.random(p.shape) < p).astype(float)
    m, i = np.nonzero(rng.random(p.shape) >= 0.3)
    return ResponseSet(m.astype(np.int32), i.astype(np.int32), score[m, i],
                       tuple(f"m{k:02d}" for k in range(n_models)), tuple(f"q{k:02d}" for k in range(n_items)))


def fit_record(model: str) -> dict[str, Any]:
    res = fit_mml(simulated_responses(), model, rng=np.random.default_rng(0), seed=0)
    table = res.item_table()
    return {"loglik": float(res.loglik), "n_iter": int(res.n_iter), "converged": bool(res.converged),
            "items": {str(r["item_id"]): [str(r["status"]), *(_num(r[k]) for k in PARAM_KEYS)]
                      for r in table.to_dict("records")},
            "theta": [float(t) for t in res.theta], "theta_se": [float(t) for t in res.theta_se]}


def calibrate_record(bank: Path, tmp: Path) -> dict[str, Any]:
    """``adt calibrate`` with its defaults (seed 0) on a copy of the bank, read back with ``adt calibration show``."""
    copy = tmp / "calibrate.duckdb"
    shutil.copyfile(bank, copy)
    summary = adt_json(copy, "calibrate")
    shown = adt_json(copy, "calibration", "show", summary["calibration_id"])
    return {"method": summary["method"], "irt_model": summary["irt_model"], "n_iter": summary["n_iter"],
            "loglik": summary["loglik"],
            "items": {r["item_id"]: [r["status"], *(_num(r[k]) for k in PARAM_KEYS)] for r in shown["items"]}}


# -- comparison --------------------------------------------------------------------------------------------
# -- the baselines -----------------------------------------------------------------------------------------
def test_bank_snapshot_is_the_recorded_one(world: tuple[Path, DemoWorld], golden: dict[str, Any]) -> None:
    assert snapshot_of(world[0]) == golden["snapshot_id"]


@pytest.mark.parametrize("strategy", sorted(FORM_ARGS))
def test_adt_sample_form_keeps_items_and_stored_hash(world: tuple[Path, DemoWorld], golden: dict[str, Any],
                                                    strategy: str, tmp_path: Path) -> None:
    got = form_record(world[0], strategy, tmp_path)
    want = golden["forms"][strategy]
    assert got["snapshot_id"] == golden["snapshot_id"] and got["calibration_id"] is None
    assert got["item_ids"] == want["item_ids"]
    assert got["content_hash"] == want["content_hash"]
    assert got["audit_ok"]


@pytest.mark.parametrize("strategy", sorted(SAMPLER_SPECS))
def test_sampler_picks_the_same_items(world: tuple[Path, DemoWorld], golden: dict[str, Any], strategy: str) -> None:
    assert sampler_record(world[0], world[1].params, strategy) == golden["sampler"][strategy]


@pytest.mark.parametrize("model", ["2pl", "3pl"])
def test_fit_mml_gives_the_recorded_parameters(golden: dict[str, Any], model: str) -> None:
    assert_tree_close(fit_record(model), golden["fit_mml"][model], f"fit_mml {model}", ATOL)


def test_adt_calibrate_gives_the_recorded_parameters(world: tuple[Path, DemoWorld], golden: dict[str, Any],
                                                     tmp_path: Path) -> None:
    assert_tree_close(calibrate_record(world[0], tmp_path), golden["adt_calibrate"], "adt calibrate", ATOL)
