"""`adt sample`, `adt form`, `adt audit form` re-derivation and `adt cat` on a bank of real MMLU-Pro + CMMLU items.

The bank holds a seeded sample of 2,500 MMLU-Pro and 2,500 CMMLU items (imported with the options of
tests/itembank/test_real_data.py); two published forms give it all three frequency tiers.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from adt.cli import cli, main
from itembank import open_bank
from sampler import largest_remainder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "itembank"))
from test_real_data import CMMLU, MMLU_PRO  # noqa: E402

N_PER_SOURCE = 2500
QUOTAS = ("language=zh:0.6,en:0.4", "subject=math:0.1,physics:0.1,chinese_history:0.05",
          "frequency_tier=high:0.1,medium:0.3,low:0.6")
# Largest-remainder counts of those fractions for 200 items ("(other)" takes the rest of each key).
EXPECTED = {"language": {"zh": 120, "en": 80},
            "subject": {"math": 20, "physics": 20, "chinese_history": 10, "(other)": 150},
            "frequency_tier": {"high": 20, "medium": 60, "low": 120}}


def adt(bank: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args])


def ok(bank: Path, *args: str) -> Any:
    res = adt(bank, *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


@pytest.fixture(scope="module")
def bank(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sample")
    files = []
    for name in ("mmlu_pro", "cmmlu"):
        rows = pd.read_parquet(shared_data / name / "items.parquet").sample(N_PER_SOURCE, random_state=7)
        files.append(tmp / f"{name}.parquet")
        rows.to_parquet(files[-1])
    path = tmp / "bank.duckdb"
    with open_bank(path, create=True) as b:
        b.import_items([files[0]], MMLU_PRO)
        b.import_items([files[1]], CMMLU)
    # Frequency tiers: p1 published twice (high: more than one publication), p2 once (medium), the rest low.
    ok(path, "sample", "--strategy", "random", "--size", "300", "--seed", "1", "--name", "p1")
    ok(path, "sample", "--strategy", "random", "--size", "600", "--seed", "2", "--max-overlap", "p1:0", "--name", "p2")
    for form, rnd in (("p1", "1"), ("p1", "2"), ("p2", "2")):
        ok(path, "form", "publish", form, "--round", rnd)
    return path


@pytest.fixture
def copy(bank: Path, tmp_path: Path) -> Path:
    """A private copy of the module's bank (same snapshot) for tests that change it."""
    out = tmp_path / "bank.duckdb"
    shutil.copyfile(bank, out)
    return out


def test_stratified_three_quota_keys_meets_every_cell(copy: Path) -> None:
    with open_bank(copy) as b:
        tiers = b.items()["frequency_tier"].value_counts().to_dict()
    assert (tiers["high"], tiers["medium"]) == (300, 600) and tiers["low"] > 3000
    args = [a for q in QUOTAS for a in ("--quota", q)]
    drawn = ok(copy, "sample", "--strategy", "stratified", "--size", "200", *args, "--seed", "11", "--name", "r7")
    assert drawn["stored"] and drawn["n_items"] == 200 and drawn["mode"] == "sampled"
    assert drawn["calibration_id"] is None and drawn["n_uncalibrated"] == 200   # no calibration: all at priors
    shown = ok(copy, "form", "show", "r7")
    assert [r["position"] for r in shown["items"]] == list(range(200))
    assert [r["item_id"] for r in shown["items"]] == drawn["item_ids"]
    assert all(r["aliases"] and (r["aliases"][0].startswith(("mmlu_pro:", "cmmlu:"))) for r in shown["items"])
    frame = pd.DataFrame(shown["items"])
    got = {
        "language": frame["language"].value_counts().to_dict(),
        "subject": frame["tags"].map(lambda t: next((s for s in t.get("subject", []) if s in EXPECTED["subject"]),
                                                    "(other)")).value_counts().to_dict(),
        "frequency_tier": frame["frequency_tier"].value_counts().to_dict(),
    }
    assert got == EXPECTED
    # Cross-classified cells: every item falls in one, none holds more than the pool had.
    cells = frame.groupby(["language", "frequency_tier"]).size()
    assert cells.sum() == 200 and len(cells) >= 5
    rec = ok(copy, "audit", "form", "r7")
    assert rec["spec"]["seed"] == 11 and rec["spec"]["quotas"]["language"] == {"zh": 0.6, "en": 0.4}
    assert rec["rederivation"]["ok"], rec["rederivation"]


def test_stratify_by_keeps_the_slices_content_shares_and_rederives(copy: Path) -> None:
    """--stratify-by language: the spec gets the slice's language shares as quotas (about half each), stored with the form so audit rebuilds it; an unknown key or a key that already has a quota
    is refused with the bank unchanged."""
    drawn = ok(copy, "sample", "--strategy", "milp", "--size", "100", "--stratify-by", "language", "--seed", "4",
               "--name", "s1")
    with open_bank(copy) as b:
        shares = b.items()["language"].value_counts(normalize=True)
    rec = ok(copy, "audit", "form", "s1")
    # In steps of 1e-4 that sum to 1 (largest remainder), so no empty "(other)" cell is left to win a seat.
    assert rec["spec"]["quotas"]["language"] == {v: n / 1e4 for v, n in largest_remainder(shares.to_dict(), 10_000).items()}
    assert sum(rec["spec"]["quotas"]["language"].values()) == pytest.approx(1.0)
    assert rec["rederivation"]["ok"], rec["rederivation"]
    langs = pd.DataFrame(ok(copy, "form", "show", "s1")["items"])["language"].value_counts().to_dict()
    assert langs == {"en": 50, "zh": 50} and drawn["n_items"] == 100
    # Within a slice: the shares are the slice's (only English items, so one cell).
    sub = ok(copy, "sample", "--strategy", "random", "--size", "20", "--filter", "language=en",
             "--stratify-by", "language", "--seed", "4", "--name", "s2", "--dry-run")
    assert sub["n_items"] == 20
    before = copy.read_bytes()
    for extra, says in ((["--stratify-by", "colour"], "--stratify-by colour: unknown key"),
                        (["--stratify-by", "language", "--quota", "language=en:0.5"], "already has a quota")):
        res = adt(copy, "sample", "--strategy", "random", "--size", "20", *extra, "--name", "bad")
        assert res.exit_code == 1 and says in str(res.exception), res.output
    assert copy.read_bytes() == before


def test_infeasible_spec_names_starving_cells_and_leaves_bank_unchanged(copy: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with open_bank(copy) as b:
        n_hist = int((b.items({"subject": ["chinese_history"]})["language"] == "zh").sum())
    assert 0 < n_hist < 100
    before = copy.read_bytes()
    with pytest.raises(SystemExit) as exit_:   # the real entry point: one line on stderr, exit 1
        main(["--bank", str(copy), "sample", "--strategy", "stratified", "--size", "200", "--quota",
              "subject=chinese_history:0.5", "--quota", "language=zh:0.5,en:0.5", "--seed", "3", "--name", "bad"])
    assert exit_.value.code == 1
    msg = capsys.readouterr().err.strip()
    assert msg.startswith("error: form spec is infeasible") and len(msg.splitlines()) == 1
    assert f"quota subject=chinese_history: required 100, available {n_hist}" in msg
    assert f"starving cells (all used): {{language=zh, subject=chinese_history}} has {n_hist}" in msg
    assert copy.read_bytes() == before
    assert "bad" not in [f["name"] for f in ok(copy, "form", "list")]


def test_same_spec_and_seed_on_same_snapshot_same_hash(bank: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    shutil.copyfile(bank, a)
    shutil.copyfile(bank, b)
    args = ["sample", "--strategy", "stratified", "--size", "120", *[x for q in QUOTAS for x in ("--quota", q)],
            "--max-overlap", "p2:0.4", "--seed", "5"]
    first = ok(a, *args, "--name", "fa")
    second = ok(b, *args, "--name", "fb")   # another name, another bank file, the same snapshot
    assert first["snapshot_id"] == second["snapshot_id"]
    assert first["item_ids"] == second["item_ids"] and first["content_hash"] == second["content_hash"]
    other = ok(b, *args[:-1], "6", "--name", "fc")  # another seed: another form
    assert other["content_hash"] != first["content_hash"] and other["item_ids"] != first["item_ids"]
    p2 = {r["item_id"] for r in ok(a, "form", "show", "p2")["items"]}
    assert len(set(first["item_ids"]) & p2) <= 48   # the overlap limit (the medium tier needs 36 of them)
    # The bank moves on (forms published, an item retired, tags added): the rebuild still uses the pool as
    # of the recorded head, so the hash matches; a changed record does not.
    ok(a, "form", "publish", "fa", "--round", "3")
    ok(a, "form", "publish", "p2", "--round", "3")
    with open_bank(a) as bk:   # later curation: a form item retired, pool items tagged into a quota value
        bk.retire([first["item_ids"][0]], reason="found a typo")
        physics = bk.items({"subject": ["physics"]})["item_id"].tolist()[:30]
        assert bk.tag(physics, "subject", "math") == 30
    res = adt(a, "audit", "form", "fa")
    assert res.exit_code == 0 and "re-derived: hash matches" in res.output, res.output
    with open_bank(a) as bk:
        bk.conn.execute("UPDATE forms SET seed = 99 WHERE name = 'fa'")
    res = adt(a, "audit", "form", "fa")
    assert "re-derived: MISMATCH: rebuilt hash" in res.output


def test_full_module_and_nsga2_forms_rederive(copy: Path, tmp_path: Path) -> None:
    full = ok(copy, "sample", "--strategy", "all", "--name", "full", "--seed", "1")
    module = ok(copy, "sample", "--strategy", "all", "--filter", "language=zh", "--name", "zh", "--seed", "1")
    with open_bank(copy) as b:
        n_items, n_zh = len(b.items()), int((b.items()["language"] == "zh").sum())
    assert full["mode"] == "full" and n_items - 50 < full["n_items"] <= n_items    # enemies: one of each pair stays
    assert module["mode"] == "module" and n_zh - 50 < module["n_items"] <= n_zh
    with open_bank(copy) as b:
        assert set(b.items({"item_id": module["item_ids"]})["language"]) == {"zh"}
    spec = tmp_path / "spec.yaml"
    spec.write_text("strategy: nsga2\nsize: 60\nquotas:\n  language: {zh: 0.5, en: 0.5}\n"
                    "options: {n_gen: 6, pop_size: 16}\n")
    evo = ok(copy, "sample", "--spec", str(spec), "--filter", "frequency_tier=low", "--seed", "4", "--name", "evo")
    assert evo["strategy"] == "nsga2" and evo["objectives"]["diagnostics"]["generations"] == 6
    ok(copy, "form", "publish", "evo", "--round", "4")   # its items leave the low tier: the rebuild must not care
    assert ok(copy, "audit", "form", "evo")["rederivation"]["ok"]


def test_export_has_no_answer_keys(copy: Path, tmp_path: Path) -> None:
    ok(copy, "sample", "--strategy", "random", "--size", "40", "--seed", "9", "--name", "ex")
    with open_bank(copy) as b:
        ids = b.form("ex")["item_ids"]
        keys = b.items({"item_id": ids}).set_index("item_id")["answer"]
    for fmt in ("jsonl", "parquet"):
        out = tmp_path / f"ex.{fmt}"
        rep = ok(copy, "form", "export", "ex", "--out", str(out), "--format", fmt)
        assert rep["n_items"] == 40
        rows = ([json.loads(line) for line in out.read_text().splitlines()] if fmt == "jsonl"
                else pq.read_table(out).to_pylist())
        assert [r["item_id"] for r in rows] == ids and [r["position"] for r in rows] == list(range(40))
        assert all(not any("answer" in k or "key" in k for k in r) for r in rows)
        assert set(rows[0]) == {"form", "position", "item_id", "question", "choices", "item_type", "language",
                                "n_choices"}
        # The key letters appear nowhere as a value of their own (choices are texts, not labels).
        assert all(keys[r["item_id"]] not in (r["question"], r["item_type"], r["language"]) for r in rows)
        assert all(r["choices"] and len(r["choices"]) == r["n_choices"] for r in rows)


def test_cat_with_simulated_backend_stops_at_se_target(copy: Path, tmp_path: Path) -> None:
    with open_bank(copy) as b:
        ids = b.item_ids()
    rng = np.random.default_rng(42)
    params = pd.DataFrame({"item_id": ids, "a": rng.uniform(0.8, 2.0, len(ids)), "b": rng.normal(0, 1.2, len(ids)),
                           "c": 0.0, "d": 1.0})
    pfile = tmp_path / "params.parquet"
    params.to_parquet(pfile)
    sim = ["--backend", "simulated", "--backend-arg", "theta=0.7", "--backend-arg", f"params={pfile}",
           "--backend-arg", "rng=5", "--params", str(pfile)]
    rep = ok(copy, "cat", "--model", "sim-a", *sim, "--se-target", "0.3", "--max-items", "80", "--seed", "1")
    assert rep["stop_reason"] == "se_target" and rep["n_items"] < 80
    assert rep["se_path"][-1] <= 0.3 and all(s > 0.3 for s in rep["se_path"][:-1])   # stopped at the first chance
    assert abs(rep["se"] - rep["se_path"][-1]) < 0.01 and rep["lo"] < rep["theta"] < rep["hi"]
    assert abs(rep["theta"] - 0.7) < 3 * rep["se"]
    short = ok(copy, "cat", "--model", "sim-b", *sim, "--se-target", "0.05", "--max-items", "10", "--seed", "1",
               "--exposure-control", "randomesque")
    assert short["stop_reason"] == "max_items" and short["n_items"] == 10
    with open_bank(copy) as b:
        runs = b.runs().set_index("run_id")
        assert runs.loc[rep["run_id"], "kind"] == "cat" and runs.loc[rep["run_id"], "status"] == "finished"
        assert runs.loc[rep["run_id"], "n_responses"] == rep["n_items"]
        stored = b.responses(models=["sim-a"]).set_index("item_id")["score"]
        assert stored.loc[list(rep["item_ids"])].tolist() == rep["scores"]
        assert b.verify().ok
