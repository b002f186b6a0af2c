"""`adt cat` through the one run loop (adt.workflow.cat on adt.workflow.run, sampler.cat's step API).

The reports, stored runs and responses of a handful of `adt cat` runs (every exposure control, content
balancing, a filter, replay through source aliases, a backend that crashes) are compared with the ones
recorded in tests/data/cat_baseline.json by the command as it was before issue 11 moved its run loop
into the workflow (recorded at commit 1bc877e): moving the code changes none of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from adt.cli import cli
from itembank import ImportOptions, open_bank, spool
from tests.golden import assert_tree_close

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parent / "data" / "cat_baseline.json"
sys.path.insert(0, str(HERE))  # run_backends, for the crashing backend
ATOL = 1e-9
N = 90
DOMAINS = ("math", "law", "bio")
WORDS = "atom cell river stone light metal field graph prime vector market court verb poem tide orbit lens".split()
CRASH = "run_backends:SlowRunner"


def _items() -> list[dict[str, Any]]:
    rng = np.random.default_rng(17)
    out: list[dict[str, Any]] = []
    for k in range(N):
        tags = {"domain": DOMAINS[k % 3]}
        text = " ".join(rng.choice(WORDS, 8))
        if k % 9 == 8:
            out.append({"id": f"q{k}", "question": f"{text}: what is {k} + {k * 2}?", "answer": str(k * 3),
                        "type": "numeric", "language": "en", "tags": tags})
        elif k % 5 == 4:
            out.append({"id": f"q{k}", "question": f"第{k}题：{text}？", "choices": [f"甲{k}", f"乙{k}", f"丙{k}"],
                        "answer": "ABC"[k % 3], "language": "zh", "tags": tags})
        else:
            out.append({"id": f"q{k}", "question": f"{text} ({k})?", "choices": [f"w{k}", f"x{k}", f"y{k}", f"z{k}"],
                        "answer": "ABCD"[k % 4], "language": "en", "tags": tags})
    return out


def build_world(tmp: Path) -> dict[str, Path]:
    """A 90-item bank (MC en/zh, numeric; domain tags), a parameter file and a replay record."""
    (tmp / "items.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _items()))
    bank = tmp / "bank.duckdb"
    with open_bank(bank, create=True) as b:
        b.import_items([tmp / "items.jsonl"], ImportOptions(source="toy"))
        ids = [b.resolve(f"toy:q{k}") for k in range(N)]
    rng = np.random.default_rng(5)
    params = pd.DataFrame({"item_id": ids, "a": rng.uniform(0.7, 2.2, N), "b": rng.normal(0, 1.2, N),
                           "c": np.where(np.arange(N) % 4 == 0, 0.15, 0.0), "d": 1.0})
    params.to_parquet(tmp / "params.parquet")
    answered = [k for k in range(N) if k % 7 != 3]  # the recorded model never answered some items
    record = pd.DataFrame({"model": "rec", "question_id": [f"q{k}" for k in answered],
                           "pred": rng.choice(list("ABCD"), len(answered)), "pred_missing": False,
                           "correct": rng.integers(0, 2, len(answered))})
    record.to_parquet(tmp / "record.parquet")
    return {"bank": bank, "params": tmp / "params.parquet", "record": tmp / "record.parquet"}


def scenarios(world: dict[str, Path]) -> dict[str, list[str]]:
    """`adt cat` arguments per scenario (``--json`` added)."""
    p = str(world["params"])
    sim = ["--backend", "simulated", "--backend-arg", "theta=0.7", "--backend-arg", f"params={p}",
           "--backend-arg", "rng=5", "--params", p]
    return {
        "se_target": ["--model", "sim-a", "--run", "cat-a", *sim, "--se-target", "0.35", "--max-items", "60",
                      "--seed", "1"],
        "randomesque": ["--model", "sim-b", "--run", "cat-b", *sim, "--se-target", "0.05", "--max-items", "12",
                        "--seed", "2", "--exposure-control", "randomesque", "--top-k", "3"],
        "sympson_hetter": ["--model", "sim-c", "--run", "cat-c", *sim, "--max-items", "10", "--seed", "3",
                           "--exposure-control", "sympson-hetter", "--sh-respondents", "40", "--sh-rmax", "0.3",
                           "--round", "4", "--template", "mc-en-0shot@1", "--filter", "language=en",
                           "--filter", "item_type=mc"],
        "content": ["--model", "sim-d", "--run", "cat-d", *sim, "--max-items", "10", "--seed", "4",
                    "--content", "domain=math:0.5,law:0.3,bio:0.2", "--mc-mode", "generate"],
        "pool_exhausted": ["--model", "sim-e", "--run", "cat-e", *sim, "--se-target", "0.001", "--seed", "5",
                           "--filter", "domain=bio,law", "--filter", "language=zh"],
        "replay": ["--model", "rec", "--run", "cat-r", "--backend", "replay", "--backend-arg",
                   f"path={world['record']}", "--backend-arg", "source=toy", "--params", p, "--max-items", "15",
                   "--se-target", "0.2", "--seed", "6"],
        "crash": ["--model", "crashy", "--run", "cat-x", "--backend", CRASH, "--backend-arg", "crash_at_batch=4",
                  "--params", p, "--max-items", "10", "--seed", "7"],
        "template_misfit": ["--model", "sim-f", "--run", "cat-f", *sim, "--template", "mc-en-0shot@1",
                            "--max-items", "40", "--se-target", "0.01", "--seed", "8"],
        "empty_slice": ["--model", "nobody", "--run", "cat-0", *sim, "--filter", "domain=chemistry"],
    }


def _stored(bank: Path, run_id: str) -> dict[str, Any] | None:
    with open_bank(bank) as b:
        runs = b.conn.execute("SELECT run_id, model, kind, form_name, source, round_no, backend, config, status "
                              "FROM runs WHERE run_id = ?", [run_id]).df()
        resp = b.conn.execute("SELECT item_id, score, raw_output, extracted, template_id, prompt_hash, choice_logliks, "
                              "tokens_in, tokens_out FROM responses WHERE run_id = ? ORDER BY item_id", [run_id]).df()
    if runs.empty:
        return None
    run = runs.iloc[0].to_dict()
    run["config"] = json.loads(run["config"])
    for key in ("params", "path"):  # temporary paths
        run["config"]["backend_args"].pop(key, None)
    run["round_no"] = None if pd.isna(run["round_no"]) else int(run["round_no"])
    rows = [{k: (None if v is None or (not isinstance(v, list | np.ndarray) and pd.isna(v)) else
                 [float(x) for x in v] if isinstance(v, list | np.ndarray) else v.item() if hasattr(v, "item") else v)
             for k, v in r.items()} for r in resp.to_dict("records")]
    return {"run": run, "responses": rows}


def observe(world: dict[str, Path], name: str, args: list[str]) -> dict[str, Any]:
    """What one `adt cat` call printed and stored."""
    res = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "cat", *args, "--json"])
    run_id = args[args.index("--run") + 1]
    out: dict[str, Any] = {"exit_code": res.exit_code}
    if res.exit_code == 0:
        report = json.loads(res.stdout)
        report.pop("seconds")
        out["report"] = report
        human = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "cat", *[
            a if a != run_id else run_id + "-text" for a in args]])
        out["text"] = human.stdout.replace(run_id + "-text", run_id)
    else:
        exc = res.exception
        out["error"] = f"{type(exc).__name__}: {exc}".replace(str(world["bank"].parent), "<tmp>")
    out["stored"] = _stored(world["bank"], run_id)
    out["spool_left"] = sorted(p.name for files in spool.pending_batches(world["bank"], run_id).values()
                               for p in files)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_world(tmp_path_factory.mktemp("cat"))


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())["cli"]


@pytest.mark.parametrize("name", ["se_target", "randomesque", "sympson_hetter", "content", "pool_exhausted",
                                  "replay", "crash", "template_misfit", "empty_slice"])
def test_cat_prints_and_stores_what_it_did_before_the_one_run_loop(world: dict[str, Path], golden: dict[str, Any],
                                                                   name: str) -> None:
    args = scenarios(world)[name]
    before = world["bank"].read_bytes() if name == "empty_slice" else None
    got = observe(world, name, args)
    assert_tree_close(got, golden[name], name, ATOL)
    if before is not None:  # a test that cannot start leaves the bank byte-for-byte as it was
        assert world["bank"].read_bytes() == before


def test_a_second_process_on_the_same_cat_run_is_refused(world: dict[str, Path]) -> None:
    """`adt cat` takes the run loop's lock too: one process per run id, and the refused one changes nothing."""
    from adt.workflow.run import RunLoop

    args = scenarios(world)["se_target"]
    args[args.index("--run") + 1] = "cat-locked"
    before = world["bank"].read_bytes()
    with RunLoop(world["bank"], "cat-locked", "simulated").locked():
        res = CliRunner().invoke(cli, ["--bank", str(world["bank"]), "cat", *args, "--json"])
    assert res.exit_code != 0 and "already in progress" in str(res.exception)
    assert world["bank"].read_bytes() == before
    assert _stored(world["bank"], "cat-locked") is None
