"""`adt round`: a whole round on a small generated world, and the round spec's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from adt.demo import build_world
from adt.workflow.round import RoundSpec
from adtbase.errors import InputError
from itembank import open_bank

ROOT = Path(__file__).resolve().parents[2]


def test_round_samples_publishes_runs_recalibrates_and_ranks(tmp_path: Path) -> None:
    bank = tmp_path / "bank.duckdb"
    world = build_world(bank, n_items=3000, n_models=8, seed=5, workdir=tmp_path, say=lambda _m: None)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({r.item_id: [r.a, r.b, r.c, r.d] for r in world.params.itertuples()}))
    spec = {"round": 1, "calibration": {"irt": "2pl", "link": "fixed", "seed": 1},
            "form": {"name": "r1", "strategy": "stratified", "size": 120, "seed": 3,
                     "quotas": {"frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5}}},
            "models": [{"name": m, "backend": "simulated", "backend_args": {"theta": float(t), "params": str(params),
                                                                             "rng": i}}
                       for i, (m, t) in enumerate(zip(world.models["model"], world.models["theta"], strict=True))]}
    spec_path = tmp_path / "round.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = subprocess.run([sys.executable, "-m", "adt", "--bank", str(bank), "round", "--spec", str(spec_path),
                          "--calibrate-first", "--json"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    board = summary["leaderboard"]
    assert [r["model"] for r in board] and len(board) == 8
    assert summary["linked_to"] and summary["calibration"] != summary["linked_to"]
    est = {r["model"]: r["theta"] for r in board}
    truth = dict(zip(world.models["model"], world.models["theta"], strict=True))
    models = sorted(est)
    assert np.corrcoef([est[m] for m in models], [truth[m] for m in models])[0, 1] > 0.9
    assert all(r["lo"] <= r["theta"] <= r["hi"] for r in board)
    # A predicted accuracy that covers fewer items than the bank says so (items nobody has answered yet).
    short = [r for r in board if r["n_predicted"] < r["n_slice_items"]]
    assert bool(summary["note"]) == bool(short)
    if short:
        assert f"of the bank's {short[0]['n_slice_items']} items" in summary["note"]
    with open_bank(bank) as b:
        form = b.form("r1")
        assert form["publications"] == [1] and len(form["item_ids"]) == 120
        runs = b.runs()
        assert (runs["form_name"] == "r1").sum() == 8
        assert b.verify().ok
    # Re-running the round resumes: the form is reused and nothing is answered twice.
    again = subprocess.run([sys.executable, "-m", "adt", "--bank", str(bank), "round", "--spec", str(spec_path),
                            "--json"], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    with open_bank(bank) as b:
        resp = b.responses()
        assert not resp.duplicated(["run_id", "item_id"]).any()
        assert len(resp[resp["form_name"] == "r1"]) == 8 * 120   # the simulated models answer every item


@pytest.mark.parametrize("data, needle", [
    ({"form": {"name": "x"}, "models": [{"name": "m", "backend": "replay"}]}, "field 'round' must be an integer"),
    ({"round": 1, "form": {"size": 3}, "models": [{"name": "m", "backend": "replay"}]}, "with a 'name'"),
    ({"round": 1, "form": {"name": "x"}, "models": [{"name": "m"}]}, "models[0] needs 'name' and 'backend'"),
    ({"round": 1, "form": {"name": "x"}, "models": [], "extra": 1}, "unknown field(s) extra"),
])
def test_round_spec_errors_name_the_field(data: dict, needle: str) -> None:
    with pytest.raises(InputError) as err:
        RoundSpec.from_dict(data, "round.yaml")
    assert needle in str(err.value)
