"""One run: one model answering one form, resumable, without holding the bank while it scores.

``run_form`` follows the bank's connection model (DESIGN.md, itembank): it holds the bank only for
short steps and never while the model works.

1. Setup (bank held briefly): create the run, or find it again for a resume (same model and form);
   move results an earlier, killed attempt left in the spool into the bank; read the form's items
   and the run's answered set.
2. Scoring (bank not held): prompts from ``runners.templates`` (template id and prompt hash go with
   every response), batch by batch through the backend from ``runners.registry``. Each batch is
   written to the spool (an atomic Parquet file) as soon as it is scored; then, at most once per
   ``ingest_every_s``, the spool is ingested with a short wait: if another process holds the bank,
   the batches simply stay in the spool until the next try. The run never blocks on the bank.
3. Finish (bank held briefly, normal wait): ingest what is left and mark the run finished.

Responses are keyed by (run, item), so a batch ingested twice adds nothing: a ``kill -9`` loses at
most the batch being scored, and re-running the same command resumes with the items not yet
answered. A backend that raises marks the run failed (when the bank can be had) and keeps every
batch scored before it. Run ids default to ``"<form>:<model>"``, so re-running the same command finds
the same run; a second process on the same run id is refused (a lock file in the run's spool folder).

Steps 2 and 3 are ``RunLoop``, the one run loop: ``adt cat`` (``adt.workflow.cat``) drives it too, with
a ``Feed`` that asks ``sampler.CatSession`` for one item at a time instead of walking a form.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from adt.paramfile import read_params
from adtbase.errors import AdtError, BankBusy, InputError, RunnerError
from adtbase.itemtypes.base import JUDGE_KIND
from adtbase.verdicts import PENDING
from itembank import DEFAULT_WAIT_S, Bank, open_bank, spool
from runners import Request, Result, Runner, build_request, check_results, create, register

DEFAULT_BATCH_SIZE = 64
# Per-batch ingests give up after this long and leave the batch in the spool for the next try.
INGEST_WAIT_S = 0.5
# Opening the bank costs ~0.1 s; with fast backends (replay) ingest at most this often.
INGEST_EVERY_S = 1.0

RESULT_SCHEMA = pa.schema([
    ("item_id", pa.string()), ("score", pa.float64()), ("raw_output", pa.string()), ("extracted", pa.string()),
    ("template_id", pa.string()), ("prompt_hash", pa.string()), ("choice_logliks", pa.list_(pa.float64())),
    ("tokens_in", pa.int32()), ("tokens_out", pa.int32()), ("latency_s", pa.float64()), ("scored_by", pa.string()),
])


@dataclass(frozen=True)
class RunReport:
    """What one call of ``run_form`` did."""

    run_id: str
    model: str
    form: str
    backend: str
    status: str            # finished | failed (some items errored; re-run to retry them)
    resumed: bool          # the run existed before this call
    n_items: int           # items on the form
    n_answered_before: int  # answered (bank or spool) when this call started
    n_scored: int          # results this call stored
    n_missing: int         # replay: items the recorded model never answered (no response stored)
    n_errors: int          # items the backend reported an error for (not stored; retried on resume)
    n_responses: int       # the run's responses in the bank at the end
    batches: int
    seconds: float         # wall time of the whole call
    scoring_seconds: float  # time inside the backend
    ingest_seconds: float   # time ingesting the spool, opening and closing the bank included
    ingest_tx_seconds: float  # of which inside the ingest transactions
    ingested: int          # responses this call moved from the spool into the bank

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_run_id(form_name: str, model: str) -> str:
    """The run id used when none is given: re-running the same form and model resumes this run."""
    return f"{form_name}:{model}"


# -- backend arguments ----------------------------------------------------------------------------

def _load_params(value: Any) -> dict[str, tuple[float, float, float, float]]:
    """Simulated item parameters: a mapping, or a file (a JSON mapping, or a CSV / Parquet parameter table
    read by ``adt.paramfile``: ``item_id, a, b`` and optional ``c`` (default 0) and ``d`` (default 1))."""
    if isinstance(value, Mapping):
        return {str(k): tuple(v) for k, v in value.items()}  # type: ignore[misc]
    path = Path(str(value))
    if not path.is_file():
        raise InputError(f"simulated: params file {path} not found")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise InputError(f"simulated: params file {path} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(f"simulated: params file {path} must hold an object item_id -> [a, b, c, d]")
        return {str(k): tuple(v) for k, v in data.items()}  # type: ignore[misc]
    params = read_params(path, "simulated: params file")  # the one reader of parameter tables
    return {i: (float(a), float(b), float(c), float(d))
            for i, a, b, c, d in zip(params.item_ids, params.a, params.b, params.c, params.d, strict=True)}


def backend_kwargs(backend: str, args: Mapping[str, Any], model: str,
                   aliases: Mapping[str, str] | None) -> dict[str, Any]:
    """Translate command-line backend args into the backend's constructor arguments."""
    kw = dict(args)
    if backend == "replay":
        if "path" in kw:
            kw.setdefault("responses", kw.pop("path"))
        if "responses" not in kw:
            raise InputError("replay backend: give the recorded responses, --backend-arg path=FILE.parquet")
        kw.pop("source", None)
        kw.setdefault("model", model)  # the recorded model's name, if it differs from --model
        kw.setdefault("skip_missing", True)  # an item the model never answered gets no response
        if aliases is not None:
            kw["aliases"] = aliases
    elif backend == "simulated" and "params" in kw:
        kw["params"] = _load_params(kw["params"])
    elif backend in MODEL_BACKENDS:
        kw.setdefault("model", model)  # the served or loaded model: --model, unless a path/name is given apart
    return kw


# Backends that take the model to load or call as their ``model`` argument (simjudge: its bias spec,
# runners.simjudge).
MODEL_BACKENDS = ("hf", "vllm", "openai", "simjudge")


_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "token", "authorization")


def public_config(backend: str, args: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Backend args as stored with the run: scalars as they are, anything big summarised, secrets hidden."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if any(word == key.lower() or key.lower().endswith(word) for word in _SECRET_WORDS):
            out[key] = "<hidden>"
        elif value is None or isinstance(value, str | int | float | bool):
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = f"<{len(value)} entries>"
        else:
            out[key] = f"<{type(value).__name__}>"
    return {"backend": backend, "backend_args": out, **extra}


def make_runner(backend: str, kwargs: Mapping[str, Any]) -> Runner:
    """The backend's runner (a context manager); ``backend`` may be a ``"package.module:Class"``."""
    if ":" in backend:  # a backend class given as "package.module:Class" (plugins, tests)
        register(backend, backend)
    return create(backend, **kwargs)


# -- spool and bank steps -------------------------------------------------------------------------

def results_table(requests: Sequence[Request], results: Sequence[Result]) -> tuple[pa.Table, int, int]:
    """The stored columns of the results that are answers; (table, n_missing, n_errors)."""
    keep = [(q, r) for q, r in zip(requests, results, strict=True) if r.ok]
    missing = sum(1 for r in results if r.error == "missing")
    cols: dict[str, list[Any]] = {name: [] for name in RESULT_SCHEMA.names}
    for q, r in keep:
        cols["item_id"].append(r.item_id)
        pending = q.scoring.kind == JUDGE_KIND   # scored by `adt judge run`: score 0 is a placeholder till then
        cols["score"].append(0.0 if pending else float(r.score))
        cols["raw_output"].append(r.raw_output)
        cols["extracted"].append(r.extracted)
        cols["template_id"].append(q.template_id)
        cols["prompt_hash"].append(q.prompt_hash)
        cols["choice_logliks"].append(None if r.choice_logliks is None else list(r.choice_logliks))
        cols["tokens_in"].append(int(r.tokens_in))
        cols["tokens_out"].append(int(r.tokens_out))
        cols["latency_s"].append(float(r.latency_s))
        cols["scored_by"].append(PENDING if pending else "rule")
    return pa.table(cols, schema=RESULT_SCHEMA), missing, len(results) - len(keep) - missing


@dataclass
class _IngestClock:
    seconds: float = 0.0
    tx_seconds: float = 0.0
    ingested: int = 0

    def ingest(self, bank: Bank, run_id: str, kind: str = "responses") -> None:
        t0 = time.perf_counter()
        self.ingested += spool.ingest(bank, [run_id], cleanup_later=True, kind=kind)[f"new_{kind}"]
        self.tx_seconds += time.perf_counter() - t0


def _try_ingest(bank_path: Path, run_id: str, wait_s: float, clock: _IngestClock, command: str = "adt run",
                kind: str = "responses") -> bool:
    """Ingest the run's spooled batches if the bank can be had within ``wait_s``; False if busy."""
    t0 = time.perf_counter()
    try:
        with open_bank(bank_path, wait_s=wait_s, purpose=f"{command} {run_id}: ingest") as bank:
            clock.ingest(bank, run_id, kind)
    except BankBusy:
        return False
    finally:
        clock.seconds += time.perf_counter() - t0
    spool.cleanup(bank_path, run_id)  # after letting go of the bank
    return True


@contextmanager
def _run_lock(bank_path: Path, run_id: str) -> Iterator[None]:
    """One process per run id: a lock file in the run's spool folder (released by the OS on kill)."""
    folder = spool.run_dir(bank_path, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = path.read_text().strip() or "another process"
        os.close(fd)
        raise InputError(f"run {run_id!r} is already in progress ({holder}); wait for it or pick another "
                         f"--run name") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
    try:
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextmanager
def _progress(enabled: bool, total: int, completed: int, label: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar (items/s, ETA) on stderr when it is a terminal; otherwise a no-op."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:.1f} items/s" if task.speed else "- items/s")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total, completed=completed)
        yield lambda n: bar.advance(task, n)


# -- the run loop ---------------------------------------------------------------------------------

class Feed(Protocol):
    """What a run scores, batch by batch: ``next_batch()`` (empty when nothing is left), then
    ``record(batch, results)`` with the backend's checked results of that batch, once they are spooled."""

    def next_batch(self) -> Sequence[Any]: ...

    def record(self, batch: Sequence[Any], results: Sequence[Any]) -> None: ...


@dataclass
class ListFeed:
    """A feed over a fixed list, ``size`` at a time: ``adt run``'s form requests, ``adt judge run``'s answers."""

    rows: Sequence[Any]
    size: int
    start: int = 0

    def next_batch(self) -> Sequence[Any]:
        batch = self.rows[self.start:self.start + self.size]
        self.start += len(batch)
        return batch

    def record(self, batch: Sequence[Any], results: Sequence[Any]) -> None:
        pass


@dataclass
class RunLoop:
    """The one run loop (steps 2 and 3 of the module doc) for one run: ``adt run``'s and ``adt cat``'s.

    ``locked()`` holds the run's lock file (one process per run id). ``score(runner, feed)`` puts each
    batch the feed gives through the backend and its answers into the run's spool, ingesting at most
    every ``ingest_every_s`` (waiting ``ingest_wait_s`` at most, never blocking on the bank); within
    ``marking_failed()`` any failure stores what was scored, marks the run failed and re-raises, naming
    the run. ``finish()`` stores the rest and marks the run finished (failed when the backend reported
    errors for some items). ``command`` names the holder in the bank's lock; ``resumable``: re-running
    the command resumes the run (``adt run``), and the messages say so.

    ``kind`` is what the spool holds (``itembank.spool``): a subclass with another kind (``adt judge run``'s
    ``JudgeLoop``: judge calls) overrides ``step`` (one batch through the backend -> the rows to spool) and
    what finishing and failing store, and keeps this loop, lock and spool.
    """

    bank_path: Path
    run_id: str
    backend: str
    command: str = "adt run"
    resumable: bool = True
    ingest_wait_s: float = INGEST_WAIT_S
    ingest_every_s: float = INGEST_EVERY_S
    clock: _IngestClock = field(default_factory=_IngestClock)
    scored: int = 0     # results put in the spool
    missing: int = 0    # replay: items the record has no answer for (nothing stored)
    errors: int = 0     # items the backend reported an error for (nothing stored)
    batches: int = 0
    scoring_seconds: float = 0.0  # time inside the backend
    kind: str = "responses"

    def locked(self) -> AbstractContextManager[None]:
        return _run_lock(self.bank_path, self.run_id)

    def score(self, runner: Runner, feed: Feed, advance: Callable[[int], None] = lambda n: None) -> None:
        """Batches from ``feed`` through ``runner`` into the spool until the feed has none left."""
        writer = spool.SpoolWriter(self.bank_path, self.run_id, self.kind)
        last_ingest = time.perf_counter()
        while batch := feed.next_batch():
            t0 = time.perf_counter()
            try:
                results, table, missing, errors = self.step(runner, batch)
            except AdtError:
                raise
            except Exception as exc:  # a backend's own failure (CUDA, HTTP, ...): say which backend
                raise RunnerError(f"backend {self.backend!r} failed: {type(exc).__name__}: {exc}") from exc
            self.scoring_seconds += time.perf_counter() - t0
            if table.num_rows:
                writer.write(table)
            self.scored += table.num_rows
            self.missing += missing
            self.errors += errors
            self.batches += 1
            if time.perf_counter() - last_ingest >= self.ingest_every_s:
                _try_ingest(self.bank_path, self.run_id, self.ingest_wait_s, self.clock, self.command, self.kind)
                last_ingest = time.perf_counter()
            feed.record(batch, results)
            advance(len(batch))

    def step(self, runner: Runner, batch: Sequence[Any]) -> tuple[Sequence[Any], pa.Table, int, int]:
        """One batch through the backend: (results for ``Feed.record``, the rows to spool, missing, errors)."""
        results = check_results(batch, runner.score(batch), self.backend)
        return (results, *results_table(batch, results))

    @contextmanager
    def marking_failed(self) -> Iterator[None]:
        """On any failure inside: store what was scored, mark the run failed, re-raise naming the run."""
        try:
            yield
        except BaseException as exc:
            kept = self.mark_failed()
            if isinstance(exc, AdtError):
                note = (f"; run {self.run_id!r} marked failed with {kept} {self.kind} kept" if kept is not None else
                        f"; run {self.run_id!r}: its scored batches are kept in the spool")
                raise type(exc)(f"{exc}{note}" + ("; re-run the same command to resume" if self.resumable else "")
                                ) from exc
            raise

    def mark_failed(self) -> int | None:
        """Store what was scored and mark the run failed; its responses, None when the bank cannot be had quickly."""
        try:
            with open_bank(self.bank_path, wait_s=5.0, purpose=f"{self.command} {self.run_id}: failed") as bank:
                spool.ingest(bank, [self.run_id])
                bank.finish_run(self.run_id, "failed")
                return len(bank.answered(self.run_id))
        except AdtError:
            return None

    def finish(self, wait_s: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None) -> tuple[str, int]:
        """Store what the spool holds and mark the run; (status, the run's responses in the bank)."""
        t0 = time.perf_counter()
        try:
            with open_bank(self.bank_path, wait_s=wait_s, purpose=f"{self.command} {self.run_id}: finish",
                           on_wait=on_wait) as bank:
                self.clock.ingest(bank, self.run_id)
                n_responses = len(bank.answered(self.run_id))
                status = "failed" if self.errors else "finished"
                bank.finish_run(self.run_id, status)
        except BankBusy as exc:
            left = len(spool.spooled_items(self.bank_path, self.run_id))
            how = "`adt responses ingest` or re-running this command stores" if self.resumable else \
                "`adt responses ingest` stores"
            raise BankBusy(f"{exc}; run {self.run_id!r} scored every item, {left} results wait in the spool: "
                           f"{how} them") from None
        finally:
            self.clock.seconds += time.perf_counter() - t0
        spool.cleanup(self.bank_path, self.run_id)
        return status, n_responses


# -- the run --------------------------------------------------------------------------------------

def run_form(bank_path: str | Path, form_name: str, model: str, backend: str,
             backend_args: Mapping[str, Any] | None = None, run_id: str | None = None, *,
             batch_size: int = DEFAULT_BATCH_SIZE, wait_s: float = DEFAULT_WAIT_S, progress: bool = True,
             round_no: int | None = None, template_id: str | None = None, mc_mode: str = "loglik",
             ingest_wait_s: float = INGEST_WAIT_S, ingest_every_s: float = INGEST_EVERY_S,
             on_wait: Callable[[str], None] | None = None) -> RunReport:
    """Score ``model`` on form ``form_name`` with ``backend`` and store the responses (see module doc).

    ``backend_args`` go to the backend's constructor, with two conveniences: for ``replay``,
    ``path`` names the recorded responses file, ``source`` maps bank items to that source's ids
    (the bank's aliases) and ``model`` defaults to ``model``; for ``simulated``, ``params`` may name
    a file. ``backend`` may also be a ``"package.module:Class"`` Runner. ``wait_s`` bounds the waits
    for the bank at setup and finish; per-batch ingests wait ``ingest_wait_s`` at most.
    """
    return run_items(bank_path, lambda bank: [str(i) for i in bank.form(form_name)["item_ids"]], model, backend,
                     backend_args, run_id or default_run_id(form_name, model), kind="form", form_name=form_name,
                     batch_size=batch_size, wait_s=wait_s, progress=progress, round_no=round_no,
                     template_id=template_id, mc_mode=mc_mode, ingest_wait_s=ingest_wait_s,
                     ingest_every_s=ingest_every_s, on_wait=on_wait)


def run_items(bank_path: str | Path, select: Callable[[Bank], Sequence[str]], model: str, backend: str,
              backend_args: Mapping[str, Any] | None, run_id: str, *, kind: str, form_name: str | None = None,
              batch_size: int = DEFAULT_BATCH_SIZE, wait_s: float = DEFAULT_WAIT_S, progress: bool = True,
              round_no: int | None = None, template_id: str | None = None, mc_mode: str = "loglik",
              ingest_wait_s: float = INGEST_WAIT_S, ingest_every_s: float = INGEST_EVERY_S,
              on_wait: Callable[[str], None] | None = None, command: str = "adt run") -> RunReport:
    """One resumable run of ``model`` over the items ``select(bank)`` names (in that order): ``adt run`` over
    a form's items (kind "form"), ``adt qc`` over the items it checks (kind "qc"). See ``run_form``."""
    t_start = time.perf_counter()
    bank_path = Path(bank_path)
    loop = RunLoop(bank_path, run_id, backend, command=command, ingest_wait_s=ingest_wait_s,
                   ingest_every_s=ingest_every_s)
    with loop.locked():
        job = prepare_run(bank_path, loop, select, model, backend, backend_args, kind=kind, form_name=form_name,
                          batch_size=batch_size, wait_s=wait_s, round_no=round_no, template_id=template_id,
                          mc_mode=mc_mode, on_wait=on_wait)
        if job.requests:
            with loop.marking_failed(), make_runner(backend, job.kwargs) as runner, \
                    _progress(progress, job.n_items, job.n_before, f"{model} on {form_name or run_id}") as advance:
                loop.score(runner, ListFeed(job.requests, batch_size), advance)
        status, n_responses = loop.finish(wait_s, on_wait)
    return job.report(loop, status, n_responses, time.perf_counter() - t_start)


@dataclass(frozen=True)
class RunJob:
    """A run set up and ready to score (``prepare_run``): what a worker needs, and nothing of the bank.

    It pickles (plain data, ``Request``s), so another process or node (``adt.workflow.executor``'s Ray
    executor) can score it with ``score_job`` and only the spool between them."""

    run_id: str
    model: str
    backend: str
    form_name: str
    kwargs: Mapping[str, Any]        # the backend's constructor arguments
    requests: tuple[Request, ...]    # the items not yet answered, in form order
    batch_size: int
    n_items: int
    n_before: int                    # answered (bank or spool) when it was set up
    resumed: bool

    def report(self, loop: RunLoop, status: str, n_responses: int, seconds: float) -> RunReport:
        clock = loop.clock
        return RunReport(
            run_id=self.run_id, model=self.model, form=self.form_name, backend=self.backend, status=status,
            resumed=self.resumed, n_items=self.n_items, n_answered_before=self.n_before, n_scored=loop.scored,
            n_missing=loop.missing, n_errors=loop.errors, n_responses=n_responses, batches=loop.batches,
            seconds=seconds, scoring_seconds=loop.scoring_seconds, ingest_seconds=clock.seconds,
            ingest_tx_seconds=clock.tx_seconds, ingested=clock.ingested)


def prepare_run(bank_path: Path, loop: RunLoop, select: Callable[[Bank], Sequence[str]], model: str, backend: str,
                backend_args: Mapping[str, Any] | None, *, kind: str, form_name: str | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE, wait_s: float = DEFAULT_WAIT_S, round_no: int | None = None,
                template_id: str | None = None, mc_mode: str = "loglik",
                on_wait: Callable[[str], None] | None = None) -> RunJob:
    """Step 1 of the module doc, under the run's lock (``loop.locked()``): create or find the run, store
    what an earlier attempt left in the spool, and build the requests of the items not yet answered."""
    run_id, command, clock = loop.run_id, loop.command, loop.clock
    args = dict(backend_args or {})
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if mc_mode not in ("loglik", "generate"):
        raise InputError(f"--mc-mode {mc_mode!r}: use loglik or generate")
    with open_bank(bank_path, wait_s=wait_s, purpose=f"{command} {run_id}: setup", on_wait=on_wait) as bank:
        all_ids = [str(i) for i in select(bank)]
        config = public_config(backend, args, batch_size=batch_size, template_id=template_id, mc_mode=mc_mode)
        resumed = not bank.start_run(run_id, model=model, kind=kind, form_name=form_name, round_no=round_no,
                                     backend=backend, config=config)
        clock.ingest(bank, run_id)  # what a killed attempt left in the spool
        done = bank.answered(run_id) | spool.spooled_items(bank_path, run_id)
        todo = [i for i in all_ids if i not in done]
        items = (bank.items({"item_id": todo}, include_retired=True, with_tags=False) if todo
                 else pd.DataFrame())
        aliases = (bank.aliases_for(todo, str(args["source"]))
                   if backend == "replay" and "source" in args else None)
    clock.seconds += clock.tx_seconds
    spool.cleanup(bank_path, run_id, partial_writes=True)  # we hold the run lock and write nothing yet
    try:  # nothing to do (a finished run run again) needs no prompts and no backend
        requests = form_requests(items, todo, template_id, mc_mode)
        kwargs = backend_kwargs(backend, args, model, aliases) if requests else {}
    except AdtError:
        loop.mark_failed()  # e.g. an item without an answer key, or a template that does not fit
        raise
    return RunJob(run_id, model, backend, form_name or "", kwargs, tuple(requests), batch_size, len(all_ids),
                  len(all_ids) - len(todo), resumed)


@dataclass(frozen=True)
class ScoreCounts:
    """What ``score_job`` did, sent back from a worker to the driver."""

    scored: int
    missing: int
    errors: int
    batches: int
    scoring_seconds: float


def score_job(bank_path: Path, job: RunJob) -> ScoreCounts:
    """Step 2 without the bank: the job's batches through its backend into the run's spool, never ingesting
    (``RunLoop`` with no ingest interval). A worker of a distributed executor runs this; the driver ingests.
    A backend's failure raises (``RunnerError``); the batches spooled before it stay."""
    loop = RunLoop(bank_path, job.run_id, job.backend, ingest_every_s=float("inf"))
    if job.requests:
        with make_runner(job.backend, job.kwargs) as runner:
            loop.score(runner, ListFeed(job.requests, job.batch_size))
    return ScoreCounts(loop.scored, loop.missing, loop.errors, loop.batches, loop.scoring_seconds)


def request_maker(items: pd.DataFrame, template_id: str | None, mc_mode: str) -> Callable[[str], Request]:
    """item id -> its request (prompt from ``runners.templates``), for the items of the frame ``items``."""
    rows = {str(r["item_id"]): r for r in items.to_dict("records")}
    for row in rows.values():
        if isinstance(row.get("choices"), np.ndarray):
            row["choices"] = row["choices"].tolist()

    def make(item_id: str) -> Request:
        return build_request(rows[item_id], template_id, mc_mode=mc_mode)  # type: ignore[arg-type]
    return make


def form_requests(items: pd.DataFrame, order: Sequence[str], template_id: str | None, mc_mode: str) -> list[Request]:
    """Requests in form order, built before any scoring so a bad item fails the run up front."""
    if not order:
        return []
    make = request_maker(items, template_id, mc_mode)
    return [make(item_id) for item_id in order]
