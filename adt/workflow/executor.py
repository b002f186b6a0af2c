"""Where runs are scored: ``local`` (this process, one run after another: today's ``adt run``) or ``ray``.

With ``ray`` each (model, form) run is a Ray task with its own resource request (``resource_request``:
GPUs for ``hf`` on a GPU and for ``vllm`` by tensor-parallel size, CPUs only for ``openai``, ``replay``,
``simulated``), so runs go at once across a cluster. The split is the run loop's own (``adt.workflow.run``):

- the driver (this process) holds each run's lock and sets it up (``prepare_run``: the bank, briefly);
- a worker gets the ``RunJob`` (plain data) and scores it with ``score_job``: ``RunLoop`` writing spool
  batches, never opening the bank. The spool (``<bank>.spool/``) must therefore be a path every node
  can reach, the same on each (shared storage);
- the driver ingests every running run's spool about once a second, one short transaction per run,
  and finishes each run when its task ends.

Faults: a task that fails (its backend raised, or its worker process or node died) is set up again from
the bank and the spool (only the items still unanswered) and resubmitted, up to ``max_retries`` times;
then the run is marked failed. A worker loses at most the batch it was scoring, and nothing is stored
twice (responses are keyed by run and item). A killed driver takes its tasks with it (Ray ties a task to
its owner) and releases its run locks; re-running the command resumes every run from bank and spool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adtbase.errors import AdtError, BankBusy, InputError, RunnerError
from itembank import DEFAULT_WAIT_S, open_bank, spool

from .run import (
    DEFAULT_BATCH_SIZE,
    INGEST_EVERY_S,
    INGEST_WAIT_S,
    RunJob,
    RunLoop,
    RunReport,
    ScoreCounts,
    default_run_id,
    prepare_run,
    run_form,
    score_job,
)

EXECUTORS = ("local", "ray")
# Backends that need an accelerator when they load a model; every other backend asks for CPUs only.
GPU_BACKENDS = ("hf", "vllm")
RESOURCE_KEYS = ("num_cpus", "num_gpus")


@dataclass(frozen=True)
class RunTarget:
    """One (model, form) run to make; ``resources`` overrides ``resource_request``'s defaults."""

    model: str
    backend: str
    form_name: str
    backend_args: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    round_no: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)

    @property
    def rid(self) -> str:
        return self.run_id or default_run_id(self.form_name, self.model)


@dataclass(frozen=True)
class ExecutorConfig:
    """How runs are executed: ``kind`` local | ray, the Ray cluster's ``address`` (None: start or join the
    local one; ``auto``: the cluster this node belongs to), and the retry policy."""

    kind: str = "local"
    address: str | None = None
    max_retries: int = 0

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise InputError(f"executor {self.kind!r}: use one of {', '.join(EXECUTORS)}")
        if self.max_retries < 0:
            raise InputError(f"max_retries must be >= 0, got {self.max_retries}")

    @classmethod
    def from_spec(cls, value: Any, where: str) -> ExecutorConfig:
        """A round spec's ``executor:``: ``ray``, or a mapping ``{kind: ray, address: ..., max_retries: 2}``."""
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(value)
        if not isinstance(value, Mapping):
            raise InputError(f"{where}: field 'executor' must be local, ray or a mapping with 'kind'")
        unknown = set(value) - {"kind", "address", "max_retries"}
        if unknown:
            raise InputError(f"{where}: executor: unknown field(s) {', '.join(sorted(unknown))} "
                             "(fields: kind, address, max_retries)")
        try:
            retries = int(value.get("max_retries", 0))
        except (TypeError, ValueError):
            raise InputError(f"{where}: executor.max_retries must be an integer") from None
        address = value.get("address")
        return cls(str(value.get("kind", "local")), None if address is None else str(address), retries)


def resource_request(backend: str, backend_args: Mapping[str, Any],
                     explicit: Mapping[str, float] | None = None) -> dict[str, float]:
    """The Ray resources one run asks for: one CPU, plus GPUs for a model loaded on accelerators (``vllm``:
    ``tensor_parallel_size`` x ``pipeline_parallel_size``; ``hf``: one, unless ``device`` is cpu); a model
    entry's ``resources`` (num_cpus, num_gpus) win."""
    out: dict[str, float] = {"num_cpus": 1.0, "num_gpus": 0.0}
    if backend == "vllm":
        out["num_gpus"] = float(int(backend_args.get("tensor_parallel_size", 1))
                                * int(backend_args.get("pipeline_parallel_size", 1)))
    elif backend == "hf" and not str(backend_args.get("device", "auto")).startswith("cpu"):
        out["num_gpus"] = 1.0
    for key, value in (explicit or {}).items():
        if key not in RESOURCE_KEYS:
            raise InputError(f"resources: unknown key {key!r} (keys: {', '.join(RESOURCE_KEYS)})")
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"resources: {key} must be a number, got {value!r}") from None
        if out[key] < 0:
            raise InputError(f"resources: {key} must be >= 0, got {value!r}")
    return out


def task_options(target: RunTarget) -> dict[str, Any]:
    """What the run's Ray task is submitted with (``.options(...)``): its resources, and no retries by Ray:
    a retry is set up again from the bank and the spool by the driver, so it scores only what is left."""
    return {**resource_request(target.backend, target.backend_args, target.resources),
            "max_retries": 0, "retry_exceptions": False}


@dataclass
class RunStatus:
    """One run's line in the status table."""

    model: str
    backend: str
    run_id: str
    status: str = "pending"   # pending | running | finished | failed
    attempts: int = 0
    n_items: int = 0
    n_responses: int = 0
    seconds: float = 0.0
    error: str = ""
    report: RunReport | None = None


def status_table(rows: Sequence[RunStatus]) -> str:
    """The per-model status table printed at the end of a run of many."""
    head = ("model", "backend", "status", "answered", "attempts", "seconds", "error")
    body = [(r.model, r.backend, r.status, f"{r.n_responses}/{r.n_items}", str(r.attempts), f"{r.seconds:.1f}",
             r.error[:60]) for r in rows]
    widths = [max(len(h), *(len(b[k]) for b in body)) if body else len(h) for k, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in (head, *body)]
    return "\n".join(lines)


def run_all(bank_path: Path, targets: Sequence[RunTarget], executor: ExecutorConfig, *,
            batch_size: int = DEFAULT_BATCH_SIZE, wait_s: float = DEFAULT_WAIT_S, progress: bool = True,
            say: Callable[[str], None] = print, command: str = "adt round",
            run_options: Mapping[str, Any] | None = None) -> list[RunStatus]:
    """Make every run of ``targets`` with ``executor``; one status per target, in order. A run that failed
    after its retries has status ``failed`` and ``error``; the caller decides what that means."""
    if executor.kind == "ray":
        return _RayDriver(bank_path, targets, executor, batch_size, wait_s, progress, say, command,
                          dict(run_options or {})).run()
    rows = []
    for target in targets:
        row = RunStatus(target.model, target.backend, target.rid)
        t0 = time.perf_counter()
        while True:  # the local executor: run_form, retried on a backend failure per the policy
            row.attempts += 1
            try:
                rep = run_form(bank_path, target.form_name, target.model, target.backend, target.backend_args,
                               target.run_id, batch_size=batch_size, wait_s=wait_s, progress=progress,
                               round_no=target.round_no, **(run_options or {}))
            except RunnerError as exc:
                row.error = str(exc)
                if row.attempts > executor.max_retries:
                    raise
                say(f"run {row.run_id}: attempt {row.attempts} failed ({exc}); retrying")
                continue
            break
        row.report, row.status, row.n_items, row.n_responses = rep, rep.status, rep.n_items, rep.n_responses
        row.seconds = time.perf_counter() - t0
        rows.append(row)
    return rows


# -- Ray ------------------------------------------------------------------------------------------

def _score_remote(bank_path: str, job: RunJob) -> ScoreCounts:
    """The Ray task: one run's scoring on a worker (spool only, no bank)."""
    return score_job(Path(bank_path), job)


def _connect(address: str | None) -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'adt[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


@dataclass
class _Live:
    """A run in flight on the cluster."""

    target: RunTarget
    row: RunStatus
    loop: RunLoop
    job: RunJob
    options: dict[str, Any]
    started: float


@dataclass
class _RayDriver:
    bank_path: Path
    targets: Sequence[RunTarget]
    executor: ExecutorConfig
    batch_size: int
    wait_s: float
    progress: bool
    say: Callable[[str], None]
    command: str
    run_options: dict[str, Any]

    def run(self) -> list[RunStatus]:
        ray = _connect(self.executor.address)
        remote = ray.remote(_score_remote)
        self._check_feasible(ray)
        rows = [RunStatus(t.model, t.backend, t.rid) for t in self.targets]
        live: dict[Any, _Live] = {}
        with ExitStack() as stack:
            try:
                for target, row in zip(self.targets, rows, strict=True):  # each run set up, then submitted
                    loop = RunLoop(self.bank_path, row.run_id, target.backend, command=self.command)
                    stack.enter_context(loop.locked())
                    item = _Live(target, row, loop, self._prepare(target, loop), task_options(target),
                                 time.perf_counter())
                    row.n_items = item.job.n_items
                    self._submit(remote, item, live)
                bar = stack.enter_context(_round_progress(self.progress, rows))
                while live:
                    done, _ = ray.wait(list(live), num_returns=1, timeout=INGEST_EVERY_S)
                    self._ingest_all(live.values())
                    for ref in done:
                        self._settle(ray, remote, live, ref)
                    bar(rows)
            finally:
                for ref in live:  # an interrupted driver stops its tasks (a killed one: Ray does it)
                    ray.cancel(ref, force=True)
        return rows

    def _check_feasible(self, ray: Any) -> None:
        """A run asking for more GPUs or CPUs than the cluster has would wait forever: refuse it now."""
        have = ray.cluster_resources()
        short = []
        for t in self.targets:
            want = resource_request(t.backend, t.backend_args, t.resources)
            for key, res in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
                if want[key] > have.get(res, 0.0):
                    short.append(f"{t.model} asks for {want[key]:g} {res} (the cluster has {have.get(res, 0.0):g})")
        if short:
            raise InputError("ray executor: " + "; ".join(short))

    def _prepare(self, target: RunTarget, loop: RunLoop) -> RunJob:
        return prepare_run(self.bank_path, loop, lambda bank: [str(i) for i in bank.form(target.form_name)["item_ids"]],
                           target.model, target.backend, target.backend_args, kind="form",
                           form_name=target.form_name, batch_size=self.batch_size, wait_s=self.wait_s,
                           round_no=target.round_no, **self.run_options)

    def _submit(self, remote: Any, item: _Live, live: dict[Any, _Live]) -> None:
        item.row.attempts += 1
        item.row.status = "running"
        ref = remote.options(**item.options, name=f"adt-run:{item.row.run_id}").remote(str(self.bank_path), item.job)
        live[ref] = item

    def _ingest_all(self, items: Any) -> None:
        """Every running run's spool into the bank: one short transaction each; a busy bank waits a tick."""
        items = list(items)
        if not items:
            return
        try:
            with open_bank(self.bank_path, wait_s=INGEST_WAIT_S, purpose=f"{self.command}: ingest") as bank:
                for item in items:
                    t0 = time.perf_counter()
                    item.loop.clock.ingest(bank, item.row.run_id)
                    item.loop.clock.seconds += time.perf_counter() - t0
                    item.row.n_responses = item.job.n_before + item.loop.clock.ingested
        except BankBusy:
            return
        for item in items:
            spool.cleanup(self.bank_path, item.row.run_id)

    def _settle(self, ray: Any, remote: Any, live: dict[Any, _Live], ref: Any) -> None:
        """A task ended: finish its run, or set it up again and resubmit, or mark it failed."""
        item = live.pop(ref)
        row, loop = item.row, item.loop
        try:
            counts: ScoreCounts = ray.get(ref)
        except Exception as exc:  # the backend raised (RayTaskError) or the worker died (WorkerCrashedError...)
            cause = getattr(exc, "cause", None) or exc
            row.error = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
            retry = row.attempts <= self.executor.max_retries and not isinstance(cause, InputError)
            if retry:
                self.say(f"run {row.run_id}: attempt {row.attempts} failed ({row.error}); retrying")
                try:
                    item.job = self._prepare(item.target, loop)
                except AdtError as again:
                    row.error = str(again)
                else:
                    self._submit(remote, item, live)
                    return
            kept = loop.mark_failed()
            row.status, row.n_responses = "failed", kept if kept is not None else row.n_responses
            row.seconds = time.perf_counter() - item.started
            return
        loop.scored += counts.scored
        loop.missing += counts.missing
        loop.errors += counts.errors
        loop.batches += counts.batches
        loop.scoring_seconds += counts.scoring_seconds
        status, n_responses = loop.finish(self.wait_s)
        row.seconds = time.perf_counter() - item.started
        row.status, row.n_responses = status, n_responses
        row.report = item.job.report(loop, status, n_responses, row.seconds)
        if status == "failed":
            row.error = f"{counts.errors} items errored in the backend"


@contextmanager
def _round_progress(enabled: bool, rows: Sequence[RunStatus]) -> Iterator[Callable[[Sequence[RunStatus]], None]]:
    """One bar over all runs on stderr when it is a terminal: items stored, runs done, items/s, ETA."""
    import sys

    if not enabled or not sys.stderr.isatty():
        yield lambda rows: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = sum(r.n_items for r in rows)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("runs 0/0", total=total, completed=sum(r.n_responses for r in rows), rate="")

        def update(rows: Sequence[RunStatus]) -> None:
            done = sum(r.status in ("finished", "failed") for r in rows)
            bar.update(task, completed=sum(r.n_responses for r in rows), description=f"runs {done}/{len(rows)}")
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:.1f} items/s" if speed else "- items/s")
        yield update
