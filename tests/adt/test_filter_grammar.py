"""One ``--filter`` grammar (``adt.filters``): the same multi-value filter selects the same items in every
command that takes the flag.

A small bank: 48 items tagged domain = math / physics / law / history (12 each), six simulated 2PL models
that answered every item and three that answered one domain each (``m_math``, ``m_physics``, ``m_law``); a
stored 2PL calibration.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from adt.cli import cli
from adt.filters import parse_filters
from adtbase.errors import InputError
from itembank import ImportOptions, open_bank

DOMAINS = ("math", "physics", "law", "history")
MODELS = [f"m{k}" for k in range(6)]
FILTER = "domain=math,physics"
WORDS = "atom cell river stone light metal field graph prime vector market law court verb poem tide orbit lens".split()


def adt_json(bank: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("filters")
    rng = np.random.default_rng(3)
    n = 48
    items = [{"id": f"q{k}", "question": " ".join(rng.choice(WORDS, 10)) + f" ({k})?", "choices": ["w", "x", "y", "z"],
              "answer": "A", "tags": {"domain": DOMAINS[k % 4]}} for k in range(n)]
    a, b = np.exp(rng.normal(0.2, 0.3, n)), rng.normal(0.0, 1.0, n)
    theta = np.linspace(-1.5, 1.5, len(MODELS))
    y = (rng.random((len(MODELS), n)) < 1 / (1 + np.exp(-a * (theta[:, None] - b)))).astype(float)
    rows = [{"model": m, "qid": f"q{k}", "score": y[j, k]} for j, m in enumerate(MODELS) for k in range(n)]
    rows += [{"model": f"m_{d}", "qid": f"q{k}", "score": float(k % 3 == 0)}
             for d in ("math", "physics", "law") for k in range(n) if DOMAINS[k % 4] == d]
    (tmp / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    pd.DataFrame(rows).to_csv(tmp / "responses.csv", index=False)
    path = tmp / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([tmp / "items.jsonl"], ImportOptions(source="toy"))
        bank.import_responses(tmp / "responses.csv", source="toy", model_col="model", item_col="qid", score_col="score")
        ids = [bank.resolve(f"toy:q{k}") for k in range(n)]
        expected = {str(i) for i in bank.item_ids({"domain": ["math", "physics"]})}
    pd.DataFrame({"item_id": ids, "a": a, "b": b, "c": 0.0, "d": 1.0}).to_parquet(tmp / "params.parquet")
    adt_json(path, "calibrate", "--irt", "2pl")
    assert len(expected) == 24
    # What a command shows of its selection: the item ids, their number, or the models that answered them.
    return {"bank": path, "params": tmp / "params.parquet",
            "expected": {"items": expected, "n_items": len(expected), "n_models": len(MODELS) + 2}}


Probe = Callable[[Path, Path, Path], tuple[str, Any]]


def _stats(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    rows = adt_json(bank, "bank", "stats", "--by", "domain", "--filter", FILTER)
    assert {r["domain"] for r in rows} == {"math", "physics"}
    return "n_items", sum(int(r["items"]) for r in rows)


def _sample(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    return "items", set(adt_json(bank, "sample", "--strategy", "all", "--filter", FILTER, "--name", "f",
                                 "--seed", "1")["item_ids"])


def _calibrate(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    cid = adt_json(bank, "calibrate", "--filter", FILTER)["calibration_id"]
    return "items", {r["item_id"] for r in adt_json(bank, "calibration", "show", cid)["items"]}


def _estimate(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    return "n_items", adt_json(bank, "estimate", "--model", "m0", "--filter", FILTER)["n_slice_items"]


def _compare(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    return "n_items", adt_json(bank, "compare", "m0", "m1", "--filter", FILTER)["n_slice_items"]


def _cat(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    rep = adt_json(bank, "cat", "--model", "sim", "--backend", "simulated", "--backend-arg", "theta=0.3",
                   "--backend-arg", f"params={params}", "--backend-arg", "rng=5", "--params", str(params),
                   "--max-items", "48", "--se-target", "0.001", "--seed", "1", "--filter", FILTER)
    assert rep["stop_reason"] == "pool_exhausted"
    return "items", set(rep["item_ids"])


def _plot_exposure(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    return "n_items", adt_json(bank, "plot", "exposure", "--out", str(tmp / "e.png"), "--filter", FILTER)["elements"]


def _plot_ability(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    # One row per model with responses to the slice's items: m_math and m_physics count, m_law does not.
    rep = adt_json(bank, "plot", "ability", "--params", str(params), "--out", str(tmp / "a.png"), "--filter", FILTER)
    return "n_models", rep["elements"]


def _validate(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    rep = adt_json(bank, "validate", "--split", "frontier", "--frontier", "1", "--form-size", "5", "--forms", "1",
                   "--strategy", "random", "--jobs", "1", "--filter", FILTER)
    return "n_items", rep["settings"]["n_slice_items"]


def _review_list(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    rep = adt_json(bank, "review", "list", "--state", "approved", "--limit", "0", "--filter", FILTER)
    return "items", {r["item_id"] for r in rep["items"]}


def _qc(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    rep = adt_json(bank, "qc", "--check", "schema", "--review-state", "approved", "--filter", FILTER)
    return "n_items", rep["n_items"]


def _generated(bank: Path, *args: str) -> list[dict[str, Any]]:
    """``adt generate ...`` against the scripted server (tests/adt/gen_stub.py); each item's generator_params."""
    from gen_stub import stub_server

    with stub_server() as (_, url):
        rep = adt_json(bank, "generate", *args, "--backend", "openai", "--model", "stub", "--backend-arg",
                       f"base_url={url}", "--filter", FILTER)
    with open_bank(bank) as b:
        return [json.loads(b.execute("SELECT generator_params FROM items WHERE item_id = ?", [i]).fetchone()[0])
                for i in rep["draft_ids"]]


def _generate_topic(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    [params_] = _generated(bank, "topic", "--n", "1", "--shots", "100")   # the slice's approved items, all shown
    return "items", set(params_["exemplars"])


def _generate_variant(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    return "items", {p["parent_ids"][0] for p in _generated(bank, "variant", "--n", "24", "--batch-size", "24")}


def _sample_pretest(bank: Path, tmp: Path, params: Path) -> tuple[str, Any]:
    """`adt sample --pretest-filter`: the pretest part's slice. Law items are operational, the rest pretest; the
    filter leaves the math and physics ones (history items are pretest too: the filter, not the stage, drops them)."""
    with open_bank(bank) as b:
        b.set_stage(list(b.item_ids({"domain": ["law"]})), "operational", reason="test: law is calibrated")
    form = adt_json(bank, "sample", "--strategy", "random", "--size", "36", "--pretest", "24", "--pretest-filter",
                    FILTER, "--name", "fp", "--seed", "1")
    assert form["n_pretest"] == 24 and form["n_stand_in"] == 0
    return "items", set(form["pretest_ids"])


PROBES: dict[str, Probe] = {
    "sample --pretest-filter": _sample_pretest,
    "generate topic": _generate_topic, "generate variant": _generate_variant, "qc": _qc,
    "bank stats": _stats, "sample": _sample, "calibrate": _calibrate, "estimate": _estimate, "compare": _compare,
    "cat": _cat, "plot exposure": _plot_exposure, "plot ability": _plot_ability, "validate": _validate,
    "review list": _review_list,
}


def test_every_filter_command_is_probed() -> None:
    """Every command with a --filter option in the one grammar (lmeval import's --filter names an lm-eval filter),
    and every other option of that grammar (``--*-filter``: probed as "COMMAND --OPTION")."""
    cli.load_all()  # the commands load when looked up; walk them all
    def walk(group: Any, prefix: str = "") -> list[str]:
        out = []
        for name, cmd in group.commands.items():
            full = f"{prefix}{name}"
            if hasattr(cmd, "commands"):
                out += walk(cmd, full + " ")
            else:
                opts = [o for p in cmd.params for o in p.opts if o.startswith("--") and o.endswith("filter")]
                out += [full if o == "--filter" else f"{full} {o}" for o in opts]
        return out
    assert sorted(walk(cli)) == sorted([*PROBES, "lmeval import"])


@pytest.mark.parametrize("command", sorted(PROBES))
def test_the_same_multi_value_filter_selects_the_same_items(world: dict[str, Any], command: str,
                                                            tmp_path: Path) -> None:
    bank = tmp_path / "bank.duckdb"
    shutil.copyfile(world["bank"], bank)
    what, got = PROBES[command](bank, tmp_path, world["params"])
    assert got == world["expected"][what]


def test_the_review_page_filter_selects_the_same_items(world: dict[str, Any]) -> None:
    """`adt review serve`'s tag filter is the same grammar (no --filter option, so not in PROBES)."""
    from adt.review_page import Query, load_queue

    with open_bank(world["bank"]) as bank:
        queue = load_queue(bank, Query(state="approved", filters=(FILTER,)), limit=1000)
    assert queue.problem is None and queue.total == len(queue.items)
    assert {r["item_id"] for r in queue.items} == world["expected"]["items"]


def test_parse_filters_one_grammar() -> None:
    assert parse_filters(["domain=math,physics", " domain = law ,math", "language=en"]) == {
        "domain": ["math", "physics", "law"], "language": ["en"]}
    assert parse_filters(["domain=math|physics"]) == {"domain": ["math|physics"]}   # "|" is no separator
    for bad in ("domain", "=math", "domain=", "domain= , "):
        with pytest.raises(InputError, match="--filter"):
            parse_filters([bad])
    with pytest.raises(InputError, match="^--tag 'domain': expected KEY=VALUE"):   # the grammar of adt review edit --tag
        parse_filters(["domain"], "--tag")
