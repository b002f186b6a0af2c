"""The run loop: spool, ingest, resume after kill -9, concurrent runs, crashes (adt.workflow.run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from adt.workflow import run as runmod
from adt.workflow.run import default_run_id, run_form
from adtbase.errors import InputError, RunnerError
from itembank import ImportOptions, open_bank, spool
from runners.simulated import SimulatedRunner
from runners.templates import build_request

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))  # run_backends, for in-process runs

from run_backends import coin  # noqa: E402

N_ITEMS = 60
SLOW = "run_backends:SlowRunner"


def _items() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(N_ITEMS):
        if i % 6 == 5:
            out.append({"id": f"q{i}", "question": f"What is {i} + {i * 3}?", "answer": str(i * 4), "type": "numeric",
                        "language": "en"})
        elif i % 6 == 4:
            out.append({"id": f"q{i}", "question": f"第{i}题：哪一个是偶数？", "choices": [str(2 * i + 1), str(2 * i)],
                        "answer": "B", "language": "zh"})
        else:
            out.append({"id": f"q{i}", "question": f"Which option is item {i}'s key?",
                        "choices": [f"x{i}", f"y{i}", f"z{i}", f"w{i}"], "answer": "ABCD"[i % 4], "language": "en"})
    return out


@pytest.fixture
def bank_path(tmp_path: Path) -> Path:
    """A 60-item bank (MC en/zh and numeric) with one form 'f1' holding every item in a shuffled order."""
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _items()) + "\n")
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        ids = list(bank.item_ids())
        order = [ids[k] for k in np.random.default_rng(3).permutation(len(ids))]
        bank.save_form("f1", order, spec={"strategy": "all"}, strategy="all", seed=3, snapshot_id=bank.snapshot_id(),
                       calibration_id=None, objectives={}, content_hash="test", n_uncalibrated=len(order))
    return path


def _form(path: Path) -> list[str]:
    with open_bank(path) as bank:
        return [str(i) for i in bank.form("f1")["item_ids"]]


def _run_state(path: Path, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(the run's responses, the items' exposure, the run's status)."""
    with open_bank(path) as bank:
        resp = bank.conn.execute("SELECT * FROM responses WHERE run_id = ?", [run_id]).df()
        items = bank.items(include_retired=True, with_tags=False)[["item_id", "exposure_runs"]]
        status = bank.runs().set_index("run_id").loc[run_id, "status"]
    return resp, items, str(status)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}


def _adt(bank: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "adt", "--bank", str(bank), *args]


# -- in-process runs ---------------------------------------------------------------------------------

def test_simulated_run_stores_each_item_once_with_template_and_prompt_hash(bank_path: Path, tmp_path: Path) -> None:
    form = _form(bank_path)
    rng = np.random.default_rng(11)
    params = pd.DataFrame({"item_id": form, "a": rng.uniform(0.5, 2, len(form)), "b": rng.normal(0, 1, len(form))})
    params.to_csv(tmp_path / "params.csv", index=False)
    report = run_form(bank_path, "f1", "sim-a", "simulated",
                      {"theta": 0.3, "params": str(tmp_path / "params.csv"), "rng": 7}, batch_size=N_ITEMS,
                      progress=False)
    assert (report.status, report.n_items, report.n_scored, report.n_responses) == ("finished", 60, 60, 60)
    assert report.run_id == default_run_id("f1", "sim-a") == "f1:sim-a"
    resp, items, status = _run_state(bank_path, "f1:sim-a")
    assert status == "finished" and len(resp) == 60 and set(resp["item_id"]) == set(form)
    assert (items["exposure_runs"] == 1).all()
    # The same requests through the backend directly, one batch with the same seed: the same scores.
    with open_bank(bank_path) as bank:
        rows = bank.items({"item_id": form}, with_tags=False).set_index("item_id")
    requests = []
    for item_id in form:
        row = rows.loc[item_id].to_dict() | {"item_id": item_id}
        row["choices"] = None if row["choices"] is None else list(row["choices"])
        requests.append(build_request(row))
    table = {k: tuple(v) for k, v in params.set_index("item_id")[["a", "b"]].assign(c=0.0, d=1.0).iterrows()}
    direct = SimulatedRunner(0.3, table, rng=7).score(requests)
    stored = resp.set_index("item_id")
    assert [stored.loc[r.item_id, "score"] for r in direct] == [r.score for r in direct]
    # Template id and prompt hash of each rendered prompt travel with the response.
    for req in requests:
        assert stored.loc[req.item_id, "template_id"] == req.template_id
        assert stored.loc[req.item_id, "prompt_hash"] == req.prompt_hash
    assert {t.split("-")[0] + "-" + t.split("-")[1] for t in stored["template_id"]} == {"mc-en", "mc-zh", "numeric-en"}
    # Running it again finds the run and has nothing left to do.
    again = run_form(bank_path, "f1", "sim-a", "simulated",
                     {"theta": 0.3, "params": str(tmp_path / "params.csv"), "rng": 7}, progress=False)
    assert again.resumed and again.n_scored == 0 and again.n_responses == 60 and again.batches == 0


def test_replay_run_through_the_cli_maps_items_by_source_alias(bank_path: Path, tmp_path: Path) -> None:
    from adt.cli import cli

    rng = np.random.default_rng(5)
    ext = [f"q{i}" for i in range(N_ITEMS)]
    rec = pd.DataFrame({"model": "m1", "question_id": ext, "pred": rng.choice(list("ABCD"), N_ITEMS),
                        "pred_missing": False, "correct": rng.integers(0, 2, N_ITEMS)})
    rec = rec[~rec["question_id"].isin(["q7", "q8"])]  # the recorded model never answered two items
    other = rec.assign(model="m2", correct=1 - rec["correct"])
    pd.concat([rec, other]).to_parquet(tmp_path / "rec.parquet")
    out = CliRunner().invoke(cli, ["--bank", str(bank_path), "run", "--form", "f1", "--model", "m1", "--backend",
                                   "replay", "--backend-arg", f"path={tmp_path / 'rec.parquet'}", "--backend-arg",
                                   "source=toy", "--batch-size", "7", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert (report["status"], report["n_scored"], report["n_missing"], report["n_responses"]) == ("finished", 58, 2,
                                                                                                   58)
    resp, _, _ = _run_state(bank_path, "f1:m1")
    with open_bank(bank_path) as bank:
        ext_of = bank.aliases_for(resp["item_id"], "toy")
    got = resp.assign(ext=resp["item_id"].map(ext_of)).set_index("ext")
    want = rec.set_index("question_id")
    assert set(got.index) == set(want.index)
    assert (got.loc[want.index, "score"].to_numpy() == want["correct"].to_numpy()).all()
    assert (got.loc[want.index, "raw_output"].to_numpy() == want["pred"].to_numpy()).all()


def test_backend_crash_marks_run_failed_keeps_batches_and_resume_completes(bank_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with pytest.raises(RunnerError, match="crashed on batch 3.*marked failed with 20 responses kept"):
        run_form(bank_path, "f1", "m", SLOW, {"crash_at_batch": 3, "log": str(log)}, batch_size=10, progress=False)
    resp, _, status = _run_state(bank_path, "f1:m")
    first_two = [i for line in log.read_text().splitlines() for i in json.loads(line)]
    assert status == "failed" and sorted(resp["item_id"]) == sorted(first_two) and len(first_two) == 20
    log.unlink()
    report = run_form(bank_path, "f1", "m", SLOW, {"log": str(log)}, batch_size=10, progress=False)
    asked = [i for line in log.read_text().splitlines() for i in json.loads(line)]
    assert report.resumed and report.n_answered_before == 20 and report.n_scored == 40
    assert set(asked).isdisjoint(first_two) and len(asked) == 40  # answered items are not asked again
    resp, items, status = _run_state(bank_path, "f1:m")
    assert status == "finished" and len(resp) == 60 and (items["exposure_runs"] == 1).all()
    assert (resp.set_index("item_id")["score"] == [coin(0, i) for i in resp["item_id"]]).all()


def test_choice_logliks_and_token_counts_are_stored(bank_path: Path) -> None:
    report = run_form(bank_path, "f1", "ll", SLOW, {"logliks": True}, batch_size=25, progress=False)
    assert report.n_responses == N_ITEMS
    resp, _, _ = _run_state(bank_path, "f1:ll")
    with open_bank(bank_path) as bank:
        n_choices = bank.items(with_tags=False).set_index("item_id")["n_choices"]
    for item_id, ll, tokens in zip(resp["item_id"], resp["choice_logliks"], resp["tokens_in"], strict=True):
        if pd.isna(n_choices[item_id]):  # numeric items: no choices, no log-likelihoods
            assert ll is None or (not isinstance(ll, list | np.ndarray) and pd.isna(ll))
        else:
            assert list(ll) == [-0.5 * k for k in range(int(n_choices[item_id]))]
        assert tokens > 20  # the rendered prompt's length, as the test backend reports it


def test_a_batch_ingested_twice_counts_once(bank_path: Path) -> None:
    form = _form(bank_path)
    with open_bank(bank_path) as bank:
        bank.start_run("r", model="m", kind="form", form_name="f1")
    batch = pa.table({"item_id": form[:10], "score": [1.0] * 10})
    writer = spool.SpoolWriter(bank_path, "r")
    writer.write(batch)
    with open_bank(bank_path) as bank:
        assert spool.ingest(bank, ["r"])["new_responses"] == 10
    writer.write(batch)  # as if the process died between the commit and the file's removal
    with open_bank(bank_path) as bank:
        assert spool.ingest(bank, ["r"]) == {"batches": 1, "new_responses": 0}
        exposure = bank.items({"item_id": form[:10]}, with_tags=False)["exposure_runs"]
    assert (exposure == 1).all()


def test_per_batch_ingest_gives_up_quickly_when_the_bank_is_held(bank_path: Path) -> None:
    form = _form(bank_path)
    with open_bank(bank_path) as bank:
        bank.start_run("r", model="m", kind="form", form_name="f1")
    spool.SpoolWriter(bank_path, "r").write(pa.table({"item_id": form[:5], "score": [0.0] * 5}))
    clock = runmod._IngestClock()
    outcome: list[bool] = []
    with open_bank(bank_path, purpose="test holds the bank"):
        t0 = time.perf_counter()
        worker = threading.Thread(target=lambda: outcome.append(runmod._try_ingest(bank_path, "r", 0.3, clock)))
        worker.start()
        worker.join()
        waited = time.perf_counter() - t0
    assert outcome == [False] and waited < 2.0
    assert spool.spooled_items(bank_path, "r") == set(form[:5])  # left for the next try
    assert runmod._try_ingest(bank_path, "r", 0.3, clock) and clock.ingested == 5


def test_a_second_process_on_the_same_run_is_refused(bank_path: Path) -> None:
    with runmod._run_lock(bank_path, "f1:m"), pytest.raises(InputError, match="already in progress"):
        run_form(bank_path, "f1", "m", SLOW, {}, progress=False)


def test_unknown_form_and_bad_backend_args_are_user_errors(bank_path: Path) -> None:
    with pytest.raises(Exception, match="no form 'nope'"):
        run_form(bank_path, "nope", "m", SLOW, {}, progress=False)
    with pytest.raises(InputError, match="replay backend: give the recorded responses"):
        run_form(bank_path, "f1", "m", "replay", {"source": "toy"}, progress=False)
    assert _run_state(bank_path, "f1:m")[2] == "failed"
    with pytest.raises(InputError, match="does not fit template 'mc-en-0shot@1'"):
        run_form(bank_path, "f1", "m2", SLOW, {}, template_id="mc-en-0shot@1", progress=False)
    assert _run_state(bank_path, "f1:m2")[2] == "failed"


# -- processes ------------------------------------------------------------------------------------------

def _logged(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("]")]


def _answered_or_spooled(path: Path, run_id: str) -> set[str]:
    with open_bank(path) as bank:
        return bank.answered(run_id) | spool.spooled_items(path, run_id)


def test_kill_9_mid_run_loses_at_most_the_batch_in_flight_and_resume_never_double_counts(
        bank_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "log1.jsonl"
    cmd = _adt(bank_path, "run", "--form", "f1", "--model", "m", "--backend", SLOW, "--batch-size", "5",
               "--no-progress")
    proc = subprocess.Popen([*cmd, "--backend-arg", "delay_s=0.25", "--backend-arg", f"log={log}"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_logged(log)) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    scored = _logged(log)
    kept = _answered_or_spooled(bank_path, "f1:m")
    assert 4 <= len(scored) < 12
    assert kept <= {i for b in scored for i in b}           # nothing invented
    assert len(kept) >= 5 * (len(scored) - 1)                # at most the batch in flight lost
    log2 = tmp_path / "log2.jsonl"
    done = subprocess.run([*cmd, "--backend-arg", f"log={log2}", "--json"], env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    asked = {i for b in _logged(log2) for i in b}
    assert report["resumed"] and report["n_answered_before"] == len(kept) and asked == set(_form(bank_path)) - kept
    resp, items, status = _run_state(bank_path, "f1:m")
    assert status == "finished" and len(resp) == 60 and resp["item_id"].is_unique
    assert (items["exposure_runs"] == 1).all()              # never double-counted
    with open_bank(bank_path) as bank:
        assert bank.verify().ok


def test_two_models_run_concurrently_and_bank_stats_answers_meanwhile(bank_path: Path, tmp_path: Path) -> None:
    logs = {m: tmp_path / f"{m}.jsonl" for m in ("ma", "mb")}
    procs = {m: subprocess.Popen(_adt(bank_path, "run", "--form", "f1", "--model", m, "--backend", SLOW,
                                      "--batch-size", "5", "--no-progress", "--backend-arg", "delay_s=0.4",
                                      "--backend-arg", f"seed={k}", "--backend-arg", f"log={logs[m]}", "--json"),
                                 env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, m in enumerate(("ma", "mb"))}
    stats_while_running = 0
    while stats_while_running < 2 and any(p.poll() is None for p in procs.values()):
        both_scoring = all(_logged(log) for log in logs.values()) and all(p.poll() is None for p in procs.values())
        if not both_scoring and stats_while_running == 0 and all(p.poll() is None for p in procs.values()):
            time.sleep(0.05)
            continue
        out = subprocess.run(_adt(bank_path, "bank", "stats", "--json"), env=_env(), capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["items"] == N_ITEMS
        stats_while_running += both_scoring
    for p in procs.values():
        stdout, stderr = p.communicate()
        assert p.returncode == 0, stderr
        assert json.loads(stdout)["n_responses"] == N_ITEMS
    assert stats_while_running >= 1  # answered (exit 0) while both runs were scoring
    with open_bank(bank_path) as bank:
        resp = bank.responses()
        items = bank.items(with_tags=False)
    assert len(resp) == 2 * N_ITEMS and not resp.duplicated(["run_id", "item_id"]).any()
    for k, m in enumerate(("ma", "mb")):
        mine = resp[resp["model"] == m]
        assert set(mine["item_id"]) == set(items["item_id"])
        assert (mine["score"].to_numpy() == [coin(k, i) for i in mine["item_id"]]).all()
    assert (items["exposure_runs"] == 2).all()
