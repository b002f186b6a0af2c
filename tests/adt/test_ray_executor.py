"""`adt round` / `adt run` on a Ray cluster (``adt.workflow.executor``): a real local cluster on this machine (a
head and one more node, separate processes, CPU only), a 20-model round with the simulated, replay and tiny
hf backends against the local executor, a worker killed mid-run, the driver killed and re-run.

The cluster is started once for the module; it costs ~20 s of the module's time. Skipped only where Ray is
not installed (``make install`` installs the ``ray`` extra)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from adt.demo import SOURCE, build_world
from adt.workflow.executor import ExecutorConfig, RunTarget, resource_request, task_options
from adt.workflow.round import RoundSpec, run_round
from adtbase.errors import InputError
from itembank import open_bank, spool

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


# -- resource requests (pure) ---------------------------------------------------------------------

@pytest.mark.parametrize("backend, args, explicit, want", [
    ("vllm", {"tensor_parallel_size": 4}, None, {"num_cpus": 1.0, "num_gpus": 4.0}),
    ("vllm", {"tensor_parallel_size": 2, "pipeline_parallel_size": 2}, None, {"num_cpus": 1.0, "num_gpus": 4.0}),
    ("vllm", {}, None, {"num_cpus": 1.0, "num_gpus": 1.0}),
    ("hf", {"model": "m"}, None, {"num_cpus": 1.0, "num_gpus": 1.0}),
    ("hf", {"device": "cuda:0"}, None, {"num_cpus": 1.0, "num_gpus": 1.0}),
    ("hf", {"device": "cpu"}, None, {"num_cpus": 1.0, "num_gpus": 0.0}),
    ("openai", {"base_url": "http://x"}, None, {"num_cpus": 1.0, "num_gpus": 0.0}),
    ("replay", {}, None, {"num_cpus": 1.0, "num_gpus": 0.0}),
    ("simulated", {}, {"num_cpus": 0.5}, {"num_cpus": 0.5, "num_gpus": 0.0}),
    ("vllm", {"tensor_parallel_size": 8}, {"num_gpus": 2}, {"num_cpus": 1.0, "num_gpus": 2.0}),
])
def test_resource_request_per_backend(backend: str, args: dict, explicit: dict | None, want: dict) -> None:
    assert resource_request(backend, args, explicit) == want


def test_task_is_submitted_with_the_runs_resources_and_no_ray_retries() -> None:
    target = RunTarget("big", "vllm", "f", {"model": "/m", "tensor_parallel_size": 4}, round_no=1)
    assert task_options(target) == {"num_cpus": 1.0, "num_gpus": 4.0, "max_retries": 0, "retry_exceptions": False}
    spec = RoundSpec.from_dict({"round": 1, "form": {"name": "f"}, "executor": {"kind": "ray", "max_retries": 2},
                                "models": [{"name": "m", "backend": "hf", "resources": {"num_gpus": 2}}]})
    assert spec.executor == ExecutorConfig("ray", None, 2)
    assert spec.models[0].resources == {"num_gpus": 2}


@pytest.mark.parametrize("data, needle", [
    ({"executor": "spark"}, "executor 'spark': use one of local, ray"),
    ({"executor": {"kind": "ray", "nodes": 3}}, "executor: unknown field(s) nodes"),
    ({"executor": {"kind": "ray", "max_retries": "x"}}, "executor.max_retries must be an integer"),
    ({"executor": {"kind": "ray", "max_retries": -1}}, "max_retries must be >= 0"),
    ({"models": [{"name": "m", "backend": "hf", "resources": {"gpus": 1}}]}, "models[0].resources: unknown key 'gpus'"),
    ({"models": [{"name": "m", "backend": "hf", "resources": {"num_gpus": -1}}]}, "num_gpus must be >= 0"),
])
def test_executor_spec_errors_name_the_field(data: dict, needle: str) -> None:
    base = {"round": 1, "form": {"name": "f"}, "models": [{"name": "m", "backend": "replay"}]}
    with pytest.raises(InputError) as err:
        RoundSpec.from_dict(base | data, "round.yaml")
    assert needle in str(err.value)


# -- the cluster ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head and one worker node on this machine (2 CPUs each, one logical GPU on the worker node, no dashboard, small
    object stores); workers import this checkout and the test backends."""
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)] + ([old] if old else []))
    small: dict[str, Any] = {"object_store_memory": 80 * 2**20}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False, **small})
    c.add_node(num_cpus=2, num_gpus=1, **small)  # the GPU is a logical resource: nothing here uses CUDA
    c.wait_for_nodes()
    try:
        yield c.address
    finally:
        ray.shutdown()
        c.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _world(tmp: Path) -> tuple[Path, Path, Path]:
    """A small generated bank with past runs; (bank, true params JSON, past runs Parquet)."""
    bank = tmp / "bank.duckdb"
    world = build_world(bank, n_items=600, n_models=6, seed=11, workdir=tmp, say=lambda _m: None)
    params = tmp / "params.json"
    params.write_text(json.dumps({r.item_id: [r.a, r.b, r.c, r.d] for r in world.params.itertuples()}))
    return bank, params, tmp / "past_runs.parquet"


FORM = {"name": "r1", "strategy": "stratified", "size": 60, "seed": 3, "include": {"item_type": ["mc"]},
        "quotas": {"frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5}}}


def test_twenty_model_round_on_ray_matches_local(cluster: str, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from runners.testing import build_tiny_model

    bank, params, past = _world(tmp_path)
    tiny = build_tiny_model(tmp_path / "tiny", seed=0)
    models = ([{"name": f"sim-{k}", "backend": "simulated",
                "backend_args": {"theta": float(t), "params": str(params), "rng": k}}
               for k, t in enumerate(np.linspace(-2, 2, 14))]
              + [{"name": f"rep-{k}", "backend": "replay",
                  "backend_args": {"path": str(past), "model": f"sim-{k + 1:02d}", "source": SOURCE,
                                   "model_col": "model", "item_col": "item", "score_col": "score",
                                   "output_col": None, "missing_col": None}} for k in range(4)]
              + [{"name": f"tiny-{k}", "backend": "hf", "backend_args": {"model": str(tiny), "device": "cpu"}}
                 for k in range(2)])
    spec = RoundSpec.from_dict({"round": 1, "calibration": {"irt": "2pl", "seed": 1}, "form": FORM, "models": models})
    local_bank, pristine = tmp_path / "local.duckdb", tmp_path / "pristine.duckdb"
    shutil.copy(bank, local_bank)
    shutil.copy(bank, pristine)
    boards, seconds = {}, {}
    for name, path, executor in (("local", local_bank, ExecutorConfig()),
                                 ("ray", bank, ExecutorConfig("ray", cluster))):
        t0 = time.perf_counter()
        summary = run_round(path, spec, say=lambda _m: None, executor=executor, batch_size=16)
        seconds[name] = time.perf_counter() - t0
        boards[name] = summary.leaderboard.set_index("model").sort_index()
        assert [s.status for s in summary.statuses] == ["finished"] * 20
        with open_bank(path) as b:
            resp = b.responses()
            resp = resp[resp["form_name"] == "r1"]
            assert not resp.duplicated(["run_id", "item_id"]).any()   # every response stored once
            form_items = b.form("r1")["item_ids"]
            answered = resp.groupby("model").size().to_dict()
        print(f"{name}: {seconds[name]:.1f} s")
        with open_bank(pristine) as b:   # the tiers the form was drawn under (the round's runs move them)
            tiers = b.items({"item_id": form_items}, include_retired=True)["frequency_tier"].value_counts().to_dict()
        assert tiers == {"high": 6, "medium": 24, "low": 30}           # form composition exact
        assert all(answered[f"sim-{k}"] == 60 for k in range(14)) and all(answered[f"tiny-{k}"] == 60 for k in range(2))
        assert not list(spool.spool_root(path).glob("*/batch-*"))      # the spool is empty
    print(f"20-model round: local {seconds['local']:.1f} s, ray {seconds['ray']:.1f} s")
    local, ray_board = boards["local"], boards["ray"]
    assert list(local.index) == list(ray_board.index) and len(local) == 20
    with open_bank(local_bank) as a, open_bank(bank) as b:
        cols = ["run_id", "item_id", "score"]
        ra = a.responses()[cols].sort_values(cols[:2]).reset_index(drop=True)
        rb = b.responses()[cols].sort_values(cols[:2]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ra, rb)                              # the same answers, whoever scored them
    np.testing.assert_allclose(ray_board["theta"], local["theta"], atol=1e-6)
    np.testing.assert_allclose(ray_board["se"], local["se"], atol=1e-6)
    assert list(ray_board["theta"].rank()) == list(local["theta"].rank())


def _slow_spec(tmp: Path, params: Path, n_models: int, delay_s: float, max_retries: int,
               gpu_model: bool = False) -> Path:
    models = [{"name": f"slow-{k}", "backend": "run_backends:SlowRunner",
               "backend_args": {"delay_s": delay_s, "seed": k, "log": str(tmp / f"log-{k}.jsonl"),
                                "pid_dir": str(tmp / "pids" / f"slow-{k}")}} for k in range(n_models)]
    if gpu_model:
        models[0]["resources"] = {"num_gpus": 1}
    spec = {"round": 1, "calibration": {"irt": "1pl", "seed": 1}, "form": FORM, "models": models,
            "executor": {"kind": "ray", "max_retries": max_retries}}
    path = tmp / "round.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _round_cmd(bank: Path, spec: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "adt", "--bank", str(bank), "round", "--spec", str(spec), "--ray-address", address,
            "--batch-size", "5", "--json"]


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}


def _logged(tmp: Path, k: int) -> list[list[str]]:
    path = tmp / f"log-{k}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for(cond, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _check_stored_once(bank: Path, n_models: int) -> pd.DataFrame:
    with open_bank(bank) as b:
        resp = b.responses()
    resp = resp[resp["form_name"] == "r1"]
    assert not resp.duplicated(["run_id", "item_id"]).any()
    assert resp.groupby("model").size().to_dict() == {f"slow-{k}": 60 for k in range(n_models)}
    return resp


def test_worker_killed_mid_run_is_retried_losing_at_most_its_batch(cluster: str, tmp_path: Path) -> None:
    bank, params, _ = _world(tmp_path)
    spec = _slow_spec(tmp_path, params, 3, delay_s=0.25, max_retries=2, gpu_model=True)
    proc = subprocess.Popen(_round_cmd(bank, spec, cluster), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pids = tmp_path / "pids" / "slow-1"
    _wait_for(lambda: len(_logged(tmp_path, 1)) >= 3, 120, "slow-1 to score three batches")
    victim = int(next(pids.glob("*.json")).stem)
    os.kill(victim, signal.SIGKILL)                       # the worker process scoring slow-1
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    runs = {r["model"]: r for r in json.loads(out)["runs"]}
    assert runs["slow-1"]["attempts"] == 2 and runs["slow-1"]["status"] == "finished"
    assert "attempt 1 failed" in err and "slow-1" in err
    _check_stored_once(bank, 3)
    scored = [i for batch in _logged(tmp_path, 1) for i in batch]
    assert len(scored) - len(set(scored)) <= 5            # at most the batch in flight scored again
    assert {p.stem for p in pids.glob("*.json")} != {str(victim)}   # the retry ran in another process
    # The resources each task was submitted with reached the worker: slow-0 asked for the (logical) GPU.
    notes = [json.loads(p.read_text()) for p in (tmp_path / "pids" / "slow-0").glob("*.json")]
    assert notes and all(n["resources"].get("GPU") == 1 for n in notes)
    notes = [json.loads(p.read_text()) for p in pids.glob("*.json")]
    assert all("GPU" not in n["resources"] and n["resources"].get("CPU") == 1 for n in notes)


def test_driver_killed_and_rerun_resumes_from_spool_and_bank(cluster: str, tmp_path: Path) -> None:
    bank, params, _ = _world(tmp_path)
    spec = _slow_spec(tmp_path, params, 3, delay_s=0.25, max_retries=0)
    proc = subprocess.Popen(_round_cmd(bank, spec, cluster), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _wait_for(lambda: all(len(_logged(tmp_path, k)) >= 3 for k in range(3)), 120, "every run to score batches")
    proc.send_signal(signal.SIGKILL)                      # the driver, mid-round
    proc.wait()
    workers = [int(p.stem) for p in (tmp_path / "pids").glob("*/*.json")]
    _wait_for(lambda: not any(_alive(p) for p in workers), 60, "Ray to stop the dead driver's tasks")
    with open_bank(bank) as b:
        runs = b.runs()
        before = {rid: b.answered(rid) | spool.spooled_items(bank, rid) for rid in runs["run_id"]
                  if rid.startswith("r1:")}
    assert before and all(0 < len(v) < 60 for v in before.values())   # killed mid-run, something kept
    n_logged = {k: len(_logged(tmp_path, k)) for k in range(3)}
    again = subprocess.run(_round_cmd(bank, spec, cluster), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=240)
    assert again.returncode == 0, again.stderr
    _check_stored_once(bank, 3)
    for k in range(3):
        rerun = {i for batch in _logged(tmp_path, k)[n_logged[k]:] for i in batch}
        assert rerun and not rerun & before[f"r1:slow-{k}"]   # never an answered item scored again


def test_backend_that_crashes_is_marked_failed_and_the_round_stops(cluster: str, tmp_path: Path) -> None:
    bank, params, _ = _world(tmp_path)
    spec_path = _slow_spec(tmp_path, params, 2, delay_s=0.0, max_retries=1)
    spec = yaml.safe_load(spec_path.read_text())
    spec["models"][1]["backend_args"]["crash_at_batch"] = 3   # every attempt crashes on its third batch
    spec_path.write_text(yaml.safe_dump(spec))
    out = subprocess.run(_round_cmd(bank, spec_path, cluster), cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 1
    assert "1 run(s) failed (r1:slow-1)" in out.stderr and "re-run the round to resume" in out.stderr
    assert "attempt 1 failed (RunnerError" in out.stderr and "test backend crashed on batch 3" in out.stderr
    with open_bank(bank) as b:
        runs = b.runs().set_index("run_id")
        resp = b.responses()
    assert runs.loc["r1:slow-0", "status"] == "finished" and runs.loc["r1:slow-1", "status"] == "failed"
    kept = resp[resp["run_id"] == "r1:slow-1"]
    assert len(kept) == 2 * 5 + 2 * 5 and not kept.duplicated("item_id").any()  # two batches kept per attempt


def test_adt_run_on_ray_and_a_request_the_cluster_cannot_meet(cluster: str, tmp_path: Path) -> None:
    bank, params, _ = _world(tmp_path)
    spec = RoundSpec.from_dict({"round": 1, "form": FORM, "models": [{"name": "x", "backend": "replay"}]})
    from adt.workflow.forms import sample_and_store

    sample_and_store(bank, spec.form, calibration_id=None)
    base = [sys.executable, "-m", "adt", "--bank", str(bank), "run", "--form", "r1", "--executor", "ray",
            "--ray-address", cluster, "--json"]
    out = subprocess.run(base + ["--model", "m1", "--backend", "simulated", "--backend-arg", "theta=0.5",
                                 "--backend-arg", f"params={params}", "--backend-arg", "rng=1", "--batch-size", "7"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["status"] == "finished" and report["n_responses"] == 60 and report["batches"] == 9
    # A vLLM model split over 2 GPUs on a cluster with one is refused up front, not left waiting for ever.
    out = subprocess.run(base + ["--model", "m2", "--backend", "vllm", "--backend-arg", "tensor_parallel_size=2"],
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "m2 asks for 2 GPU (the cluster has 1)" in out.stderr
    with open_bank(bank) as b:
        assert "r1:m2" not in set(b.runs()["run_id"])
