"""A judge run against a live OpenAI-compatible server: `vllm serve` of the tiny local model (random weights).

Its "verdicts" are noise, never a well-formed verdict line: every call must be stored with its raw output and
a ``problem``, verdict NaN and no level (never guessed), both orders for pairwise items, the answers left
pending; ``adt judge run`` killed mid-way and re-run resumes without making a stored call again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runners.vllm_backend import DEFAULT_WORKER_PYTHON

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not DEFAULT_WORKER_PYTHON.exists(),
                       reason=f"{DEFAULT_WORKER_PYTHON} absent: `make install` builds the vLLM CPU environment"),
]

ROOT = Path(__file__).resolve().parents[2]
ADT_TESTS = ROOT / "tests" / "adt"


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[object]:
    from runners.vllm_server import LocalVLLMServer

    with LocalVLLMServer(tiny_model_dir, served_name="tiny", startup_timeout_s=420) as srv:
        yield srv


def _bank(tmp_path: Path) -> Path:
    from adt.workflow.run import run_form
    from itembank import ImportOptions, open_bank

    rows = [{"id": f"p{i}", "question": f"Give tip {i} for sleep.", "type": "pairwise", "baseline": f"Tip {i}."}
            for i in range(8)]
    rows += [{"id": "h", "question": "写一句关于雨的诗。", "type": "open", "language": "zh",
              "rubric": {"criteria": [{"name": "意象", "levels": ["无", "有"]}]}},
             {"id": "r", "question": "Explain tides.", "type": "open", "reference": "The moon pulls the sea."}]
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        ids = list(bank.item_ids())
        bank.save_form("f1", ids, spec={"strategy": "all"}, strategy="all", seed=1, snapshot_id=bank.snapshot_id(),
                       calibration_id=None, objectives={}, content_hash="test", n_uncalibrated=len(ids))
    sys.path.insert(0, str(ADT_TESTS))
    assert run_form(path, "f1", "cand", "run_backends:Writer", {}, mc_mode="generate", progress=False).n_responses == 10
    return path


def _batches(path: Path) -> int:
    return sum(1 for _ in path.with_name(path.name + ".spool").rglob("batch-*"))


def test_tiny_model_verdicts_are_stored_unparseable_and_a_killed_run_resumes(server, tmp_path: Path) -> None:  # noqa: ANN001
    from itembank import open_bank

    path = _bank(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ADT_TESTS), str(ROOT)])}
    cmd = [sys.executable, "-m", "adt", "--bank", str(path), "judge", "run", "--judge", "tiny=openai:tiny",
           "--backend-arg", f"base_url={server.base_url}", "--backend-arg", "concurrency=1", "--batch-size", "1",
           "--max-new-tokens", "48", "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _batches(path) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed"] and report["n_calls_before"] >= 2
    assert report["n_calls_before"] + report["n_calls"] == 18 and report["n_unparseable"] == report["n_calls"]
    assert report["n_scored"] == 0 and report["n_pending"] == 10
    with open_bank(path) as bank:
        calls = bank.judgments()
        pending = bank.responses(scored=True).attrs["n_judge_pending"]
    assert len(calls) == 18 and not calls.duplicated(["run_id", "item_id", "judge", "template_id", "order"]).any()
    assert calls["verdict"].isna().all() and calls["level"].isna().all() and calls["problem"].notna().all()
    assert (calls["raw_output"].str.len() > 0).all()          # the model wrote something; it is kept as written
    assert set(calls["problem"]) <= {"no verdict line", "empty output", "text after the verdict line"} | {
        p for p in calls["problem"] if p.startswith(("verdict line not in", "pairwise verdict", "verdict "))}
    pair = calls[calls["template_id"] == "judge-pairwise-en@1"]
    assert len(pair) == 16 and sorted(set(pair["order"])) == ["ab", "ba"]
    assert set(calls["template_id"]) == {"judge-pairwise-en@1", "judge-rubric-zh@1", "judge-reference-en@1"}
    assert pending == 10                                     # no score guessed for any answer
    # again: every call is stored (unparseable is the judge's answer), none is made again
    again = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["n_calls"] == 0
