"""``adt judge run``: judges score the judge-scored answers a run left pending, resumable, bank not held.

The answers: a run's answers to judge-scored items (``open`` with a reference/rubric, ``pairwise``) are
stored with ``scored_by = 'judge:pending'`` (``adt.workflow.run``). A judge run takes those of some runs (``--run``,
``--form``, ``--round``, or every run) and puts each through each judge (``runners.judge``: pairwise in both
orders, pointwise once), then writes each answer's combined score and marks it ``panel``.

It is ``adt run``'s loop (``adt.workflow.run.RunLoop``), with judge calls for rows: ``JudgeLoop`` only says how a
batch of answers becomes judge calls (``step``) and what finishing stores. So, as for ``adt run``: one process per
judge run (the lock in its spool folder, ``judge:<name>``); the calls go to the spool in batches (atomic Parquet
files of kind ``judgments``) and into the bank in short transactions at most every second, never waiting on
the bank; a ``kill -9`` loses at most the batch in flight; re-running the command ingests what the killed one
spooled and makes only the calls not stored (the judgments key), so no call is ever made twice. A call the
backend failed on (HTTP error, ...) is not stored and is retried on the next run; an unparseable verdict is the
judge's answer and is stored, as unparseable (``problem``).

Scores (``adtbase.verdicts``, one place): per judge the two orders combine by the position rule; the judges
by the panel rule (the mean of their verdicts), until a judge calibration says otherwise. An answer no judge
gave a verdict for stays pending. Self-preference: a judgment by a judge of the candidate's family
(``adtbase.verdicts.family``) is flagged; with ``exclude_self`` (``--exclude-self``, or the bank setting
``judge_exclude_self``) such a judge is not asked and its stored verdicts do not count.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from adt.workflow.run import (
    INGEST_EVERY_S,
    INGEST_WAIT_S,
    ListFeed,
    RunLoop,
    _progress,
    backend_kwargs,
    make_runner,
)
from adtbase.errors import AdtError, BankBusy, InputError
from adtbase.names import check_name
from adtbase.rubric import parse_judge_key
from adtbase.verdicts import JUDGMENT_COLUMNS, JUDGMENT_KEY, ORDERS, combine_orders, panel_score, same_family
from calibration import judges, latest_judge_calibration
from itembank import DEFAULT_WAIT_S, Bank, open_bank, spool
from runners import JudgeCall, JudgeCase, Runner, available, judge_cases, planned_calls

DEFAULT_JUDGE_BATCH = 8          # answers per backend call (a pairwise answer is two calls)
EXCLUDE_SELF_SETTING = "judge_exclude_self"
JUDGMENT_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("item_id", pa.string()), ("model", pa.string()), ("judge", pa.string()),
    ("judge_model", pa.string()), ("template_id", pa.string()), ("order", pa.string()), ("prompt_hash", pa.string()),
    ("raw_output", pa.string()), ("verdict", pa.float64()), ("level", pa.int64()), ("n_levels", pa.int64()),
    ("problem", pa.string()), ("judged_at", pa.string()),
])
assert tuple(JUDGMENT_SCHEMA.names) == JUDGMENT_COLUMNS


# -- judges ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeSpec:
    """One judge: its name (as stored), the backend that serves it, the model, the backend's arguments."""

    name: str
    backend: str
    model: str
    args: Mapping[str, Any] = field(default_factory=dict)


def parse_judge_flag(text: str) -> JudgeSpec:
    """``NAME=BACKEND:MODEL`` (``--judge``); BACKEND a registered backend or ``package.module:Class``."""
    name, sep, rest = text.partition("=")
    head, colon, tail = rest.partition(":")
    if head not in available() and ":" in tail:   # package.module:Class:MODEL
        cls, colon, tail = tail.partition(":")
        head = f"{head}:{cls}"
    if not sep or not name.strip() or not colon or not head or not tail.strip():
        raise InputError(f"--judge {text!r} is not of the form NAME=BACKEND:MODEL "
                         f"(BACKEND one of {', '.join(available())}, or package.module:Class)")
    check_name("--judge name", name.strip())
    return JudgeSpec(name.strip(), head, tail.strip())


def read_judges_file(path: Path) -> list[JudgeSpec]:
    """A judges file: JSON (or YAML) list of ``{name, backend, model, args}``; problems named at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--judges {path}: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - a parse error of either format, named with the file
        raise InputError(f"--judges {path}: not {'YAML' if path.suffix in ('.yaml', '.yml') else 'JSON'}: {exc}") \
            from None
    if not isinstance(data, list) or not data:
        raise InputError(f"--judges {path}: expected a non-empty list of judges")
    out, problems = [], []
    for k, entry in enumerate(data):
        at = f"--judges {path}: judge {k + 1}"
        if not isinstance(entry, Mapping):
            problems.append(f"{at}: not an object")
            continue
        missing = [f for f in ("name", "backend", "model") if not isinstance(entry.get(f), str) or not entry[f]]
        extra = sorted(set(entry) - {"name", "backend", "model", "args"})
        args = entry.get("args", {})
        if missing:
            problems.append(f"{at}: field(s) {', '.join(missing)} missing or not text")
        if extra:
            problems.append(f"{at}: unknown field(s) {', '.join(extra)}")
        if not isinstance(args, Mapping):
            problems.append(f"{at}: field 'args' must be an object")
        if not missing and not extra and isinstance(args, Mapping):
            out.append(JudgeSpec(str(entry["name"]), str(entry["backend"]), str(entry["model"]), dict(args)))
    if problems:
        raise InputError("\n".join(problems))
    return out


def with_backend_args(judges: Sequence[JudgeSpec], args: Mapping[str, Any]) -> list[JudgeSpec]:
    """``--backend-arg`` for judges: ``KEY=V`` goes to every judge, ``NAME.KEY=V`` to judge NAME only."""
    names = {j.name for j in judges}
    if len(names) != len(judges):
        raise InputError(f"judge names repeat: {', '.join(j.name for j in judges)}")
    common = {k: v for k, v in args.items() if "." not in k}
    own: dict[str, dict[str, Any]] = {}
    for k, v in args.items():
        if "." in k:
            name, _, key = k.partition(".")
            if name not in names:
                raise InputError(f"--backend-arg {k}=...: no judge named {name!r} (judges: {', '.join(sorted(names))})")
            own.setdefault(name, {})[key] = v
    return [JudgeSpec(j.name, j.backend, j.model, {**j.args, **common, **own.get(j.name, {})}) for j in judges]


# -- the loop -------------------------------------------------------------------------------------

def calls_table(calls: Sequence[JudgeCall]) -> pa.Table:
    rows = [c.as_row() for c in calls]
    return pa.Table.from_pylist(rows, schema=JUDGMENT_SCHEMA)


def _backend_failed(call: JudgeCall) -> bool:
    return bool(call.problem) and str(call.problem).startswith("backend error")


@dataclass
class JudgeLoop(RunLoop):
    """``RunLoop`` over judge calls: one judge's calls for a batch of answers (``step``); finishing stores the
    spooled calls (no run to mark: the answers' runs are the candidates')."""

    spec: JudgeSpec | None = None
    orders: Sequence[str] = ORDERS
    done: set[tuple[str, ...]] = field(default_factory=set)
    max_new_tokens: int = 1024
    temperature: float = 0.0
    seed: int = 0
    kind: str = "judgments"
    unparseable: int = 0

    def step(self, runner: Runner, batch: Sequence[Any]) -> tuple[Sequence[Any], pa.Table, int, int]:
        assert self.spec is not None
        calls = judge_cases(runner, self.spec.name, batch, orders=self.orders, judge_model=self.spec.model,
                            done=self.done, max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                            seed=self.seed)
        kept = [c for c in calls if not _backend_failed(c)]   # a failed call is retried on the next run
        self.unparseable += sum(1 for c in kept if c.problem)
        self.done.update(c.key for c in kept)
        return calls, calls_table(kept), 0, len(calls) - len(kept)

    def mark_failed(self) -> int | None:
        try:
            with open_bank(self.bank_path, wait_s=5.0, purpose=f"{self.command} {self.run_id}: failed") as bank:
                return int(spool.ingest(bank, [self.run_id], kind=self.kind)[f"new_{self.kind}"])
        except AdtError:
            return None

    def finish(self, wait_s: float = DEFAULT_WAIT_S, on_wait: Callable[[str], None] | None = None) -> tuple[str, int]:
        t0 = time.perf_counter()
        try:
            with open_bank(self.bank_path, wait_s=wait_s, purpose=f"{self.command} {self.run_id}: finish",
                           on_wait=on_wait) as bank:
                self.clock.ingest(bank, self.run_id, self.kind)
        except BankBusy as exc:
            raise BankBusy(f"{exc}; judge run {self.run_id!r}: its calls wait in the spool: re-run the same "
                           "command to store them") from None
        finally:
            self.clock.seconds += time.perf_counter() - t0
        spool.cleanup(self.bank_path, self.run_id)
        return ("failed" if self.errors else "finished"), self.scored


# -- scores ---------------------------------------------------------------------------------------

def judge_scores(judgments: pd.DataFrame, *, exclude_self: bool = False, rater_model: judges.RaterModel | None = None,
                 lengths: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per answer (``run_id, item_id``): the panel's ``score``, with ``n_judges`` (judges that gave a verdict),
    ``n_inconsistent`` (judges whose two orders disagreed), ``n_self`` (judgments by a judge of the candidate's
    family; left out with ``exclude_self``), ``confidence`` and ``rule``. Human rows (``template_id == 'human'``)
    are not the panel's.

    With ``rater_model`` (the latest judge calibration's, ``adt judge validate``) the score is its posterior
    verdict and ``confidence`` its largest posterior probability (``rule`` "rater model"); where it does not
    cover the judges (a judge it never saw, other levels or orders) the default rules of ``adtbase.verdicts``
    stand (``rule`` "mean": position rule per judge, then the mean), without a confidence, and
    ``attrs["rater_model_refused"]`` says why."""
    cols = ["run_id", "item_id", "score", "n_judges", "n_inconsistent", "n_self", "confidence", "rule"]
    frame = judgments[judgments["template_id"] != "human"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    self_family = [same_family(j, m) for j, m in zip(frame["judge_model"], frame["model"], strict=True)]
    frame = frame.assign(_self=self_family)
    rows = []
    for (run_id, item_id), answer in frame.groupby(["run_id", "item_id"], sort=True):
        n_self = int(answer["_self"].sum())
        counted = answer[~answer["_self"]] if exclude_self else answer
        per_judge, inconsistent = [], 0
        for _, calls in counted.groupby(["judge", "template_id"], sort=True):
            by_order = dict(zip(calls["order"], calls["verdict"].astype(float), strict=True))
            if "" in by_order:
                per_judge.append(by_order[""])
                continue
            combined = combine_orders(by_order.get("ab", math.nan), by_order.get("ba", math.nan))
            inconsistent += combined.status == "inconsistent"
            per_judge.append(combined.verdict)
        rows.append((run_id, item_id, panel_score(per_judge), sum(not math.isnan(v) for v in per_judge),
                     inconsistent, n_self, math.nan, "mean"))
    out = pd.DataFrame(rows, columns=cols)
    if rater_model is None:
        return out
    counted = frame[~frame["_self"]] if exclude_self else frame
    try:
        post = judges.panel_posterior(counted.drop(columns="_self"), rater_model, lengths)
    except InputError as exc:
        out.attrs["rater_model_refused"] = str(exc)
        return out
    post = post.set_index(["run_id", "item_id"])
    at = pd.MultiIndex.from_frame(out[["run_id", "item_id"]])
    have = at.isin(post.index) & (out["n_judges"] > 0).to_numpy()
    hit = post.reindex(at[have])
    out.loc[have, "score"] = hit["score"].to_numpy()
    out.loc[have, "confidence"] = hit["confidence"].to_numpy()
    out.loc[have, "rule"] = "rater model"
    return out


def _rule_used(scores: pd.DataFrame, jcal_id: str | None) -> str:
    n_model = int((scores["rule"] == "rater model").sum()) if len(scores) else 0
    if not n_model:
        return "mean"
    rest = len(scores) - n_model
    return f"rater model {jcal_id}" + (f" ({rest} answers by the mean)" if rest else "")


def answer_lengths(answers: pd.DataFrame) -> pd.DataFrame:
    """``run_id, item_id, len_candidate, len_baseline`` (characters) of the pairwise answers among ``answers``
    (``Bank.judged_answers``): what a rater model's length term reads."""
    rows = []
    for r in answers.itertuples(index=False):
        key = parse_judge_key(str(r.key))
        if key.baseline is not None:
            rows.append((str(r.run_id), str(r.item_id), len(str(r.answer)), len(key.baseline)))
    return pd.DataFrame(rows, columns=["run_id", "item_id", "len_candidate", "len_baseline"])


def win_rates(bank: Bank, *, run_ids: Sequence[str] | None = None, form_name: str | None = None,
              round_no: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Per model, over its scored pairwise answers (the panel's or a human's score): the raw win rate against
    the baselines (ties half) and the length-controlled one (``calibration.judges.length_controlled``: the
    verdict regressed on the length difference, read at equal length), each with a bootstrap interval, and the
    length slope (> 0: the longer answer is preferred)."""
    answers = bank.judged_answers(list(run_ids) if run_ids else None, form_name=form_name, round_no=round_no,
                                  scored_by=("panel", "human"))
    cols = ["model", "n", "raw", "raw_lo", "raw_hi", "lc", "lc_lo", "lc_hi", "slope"]
    lengths = answer_lengths(answers) if len(answers) else pd.DataFrame(columns=["run_id", "item_id"])
    if lengths.empty:
        return pd.DataFrame(columns=cols)
    scored = bank.responses({"item_id": sorted(set(lengths["item_id"]))}, scored=True)
    pairs = lengths.merge(scored[["run_id", "item_id", "model", "score"]], on=["run_id", "item_id"], how="inner")
    rng = np.random.default_rng(seed)
    rows = []
    for model, g in pairs.groupby("model", sort=True):
        lc = judges.length_controlled(g["score"].to_numpy(dtype=float),
                                      (g["len_candidate"] - g["len_baseline"]).to_numpy(dtype=float), rng)
        rows.append({"model": str(model), **{k: lc[k] for k in cols[1:]}})
    return pd.DataFrame(rows, columns=cols)


def stored_rater_model(bank: Bank) -> tuple[str | None, judges.RaterModel | None]:
    """The latest judge calibration's id and rater model (None, None when the bank has none)."""
    rec = latest_judge_calibration(bank)
    if rec is None or not rec.get("rater_model"):
        return None, None
    return str(rec["judge_calibration_id"]), judges.RaterModel.from_dict(rec["rater_model"])


# -- the judge run --------------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeRunReport:
    name: str
    judges: list[str]
    status: str              # finished | failed (some calls failed in the backend; re-run to retry them)
    resumed: bool            # calls of this scope were stored before this call
    n_answers: int           # pending answers in scope when this call started
    n_calls: int             # judge calls this call stored
    n_calls_before: int      # calls of these answers stored (or spooled) before
    n_unparseable: int       # of this call's calls
    n_errors: int            # backend failures (not stored; retried on the next run)
    n_self_flagged: int      # stored judgments by a judge of the candidate's family
    n_self_excluded: int     # (judge, answer) pairs not asked because of --exclude-self
    n_inconsistent: int      # (judge, pair) with the two orders disagreeing
    n_scored: int            # answers given their panel score (now scored_by 'panel')
    n_pending: int           # answers left pending (no judge gave a verdict)
    panel_rule: str          # how the scores were combined: "rater model <judge calibration id>" or "mean"
    rater_model_refused: str | None  # why the stored rater model did not apply (None: it did, or there is none)
    batches: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_judge_run(judges: Sequence[JudgeSpec]) -> str:
    return "+".join(sorted(j.name for j in judges))


def _cases(answers: pd.DataFrame) -> list[JudgeCase]:
    out = []
    for r in answers.itertuples(index=False):
        try:
            key = parse_judge_key(str(r.key))
        except ValueError as exc:
            raise InputError(f"item {r.item_id}: its key is not a judge key ({exc})") from None
        out.append(JudgeCase(str(r.run_id), str(r.item_id), str(r.model), str(r.question), str(r.answer), key,
                             str(r.language or "en")))
    return out


def exclude_self_setting(settings: Mapping[str, str]) -> bool:
    value = settings.get(EXCLUDE_SELF_SETTING, "false").strip().lower()
    if value not in ("true", "false"):
        raise InputError(f"bank setting {EXCLUDE_SELF_SETTING}={value!r}: use true or false")
    return value == "true"


def judge_run(bank_path: str | Path, judges: Sequence[JudgeSpec], *, run_ids: Sequence[str] | None = None,
              form_name: str | None = None, round_no: int | None = None, name: str | None = None,
              orders: Sequence[str] = ORDERS, exclude_self: bool | None = None,
              batch_size: int = DEFAULT_JUDGE_BATCH, max_new_tokens: int = 1024, temperature: float = 0.0,
              seed: int = 0, wait_s: float = DEFAULT_WAIT_S, progress: bool = True,
              ingest_wait_s: float = INGEST_WAIT_S, ingest_every_s: float = INGEST_EVERY_S,
              on_wait: Callable[[str], None] | None = None) -> JudgeRunReport:
    """Judge the pending answers in scope with ``judges`` and store calls and scores (see module doc)."""
    t_start = time.perf_counter()
    bank_path = Path(bank_path)
    if not judges:
        raise InputError("no judge: give --judge NAME=BACKEND:MODEL or --judges FILE")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if not orders or any(o not in ORDERS for o in orders):
        raise InputError(f"orders {list(orders)}: use ab, ba or both")
    name = name or default_judge_run(judges)
    check_name("--name", name)
    spool_id = f"judge:{name}"
    command = "adt judge run"
    loops = [JudgeLoop(bank_path, spool_id, j.backend, command=command, ingest_wait_s=ingest_wait_s,
                       ingest_every_s=ingest_every_s, spec=j, orders=tuple(orders), max_new_tokens=max_new_tokens,
                       temperature=temperature, seed=seed) for j in judges]
    first = loops[0]
    with first.locked():
        with open_bank(bank_path, wait_s=wait_s, purpose=f"{command} {spool_id}: setup", on_wait=on_wait) as bank:
            if exclude_self is None:
                exclude_self = exclude_self_setting(bank.settings())
            if run_ids:
                known = set(bank.runs()["run_id"])
                unknown = [r for r in run_ids if r not in known]
                if unknown:
                    raise InputError(f"--run {unknown[0]!r}: no such run")
            first.clock.ingest(bank, spool_id, "judgments")   # what a killed attempt left in the spool
            answers = bank.judged_answers(run_ids or None, form_name=form_name, round_no=round_no)
            stored = bank.judgments(sorted(set(answers["run_id"])), sorted(set(answers["item_id"]))) \
                if len(answers) else pd.DataFrame(columns=list(JUDGMENT_COLUMNS))
        spool.cleanup(bank_path, spool_id, partial_writes=True)   # we hold the lock and write nothing yet
        done = {tuple(str(v) for v in row) for row in stored[list(JUDGMENT_KEY)].itertuples(index=False)}
        done |= spool.spooled_judgments(bank_path, spool_id)
        n_before = len(done)
        cases = _cases(answers)
        excluded = 0
        for loop in loops:
            assert loop.spec is not None
            spec = loop.spec
            mine = [c for c in cases if not (exclude_self and same_family(spec.model, c.model))]
            excluded += len(cases) - len(mine)
            todo = [c for c in mine if any((c.run_id, c.item_id, spec.name, tid, o) not in done
                                           for _, tid, o in planned_calls([c], orders=orders))]
            loop.done = done
            if not todo:
                continue
            kwargs = backend_kwargs(spec.backend, spec.args, spec.model, None)
            with loop.marking_failed(), make_runner(spec.backend, kwargs) as runner, \
                    _progress(progress, len(todo), 0, f"judge {spec.name}") as advance:
                loop.score(runner, ListFeed(todo, batch_size), advance)
        # Every loop shares the spool folder: one finish stores all their calls.
        first.errors = sum(loop.errors for loop in loops)
        status, _ = first.finish(wait_s, on_wait)
        with open_bank(bank_path, wait_s=wait_s, purpose=f"{command} {spool_id}: scores", on_wait=on_wait) as bank:
            frame = bank.judgments(sorted(set(answers["run_id"])), sorted(set(answers["item_id"]))) \
                if len(answers) else pd.DataFrame(columns=list(JUDGMENT_COLUMNS))
            in_scope = set(zip(answers["run_id"], answers["item_id"], strict=True))
            keep = [(r, i) in in_scope for r, i in zip(frame["run_id"], frame["item_id"], strict=True)]
            frame = frame.loc[pd.Series(keep, index=frame.index, dtype=bool)]
            jcal_id, rater_model = stored_rater_model(bank)
            scores = judge_scores(frame, exclude_self=exclude_self, rater_model=rater_model,
                                  lengths=answer_lengths(answers))
            given = scores[scores["score"].notna()]
            n_scored = bank.set_judged_scores(given[["run_id", "item_id", "score"]]) if len(given) else 0
    return JudgeRunReport(
        name=name, judges=[j.name for j in judges], status=status, resumed=n_before > 0, n_answers=len(answers),
        n_calls=sum(loop.scored for loop in loops), n_calls_before=n_before,
        n_unparseable=sum(loop.unparseable for loop in loops), n_errors=first.errors,
        n_self_flagged=int(scores["n_self"].sum()) if len(scores) else 0, n_self_excluded=excluded,
        n_inconsistent=int(scores["n_inconsistent"].sum()) if len(scores) else 0, n_scored=n_scored,
        n_pending=len(answers) - n_scored, panel_rule=_rule_used(scores, jcal_id),
        rater_model_refused=scores.attrs.get("rater_model_refused"), batches=sum(loop.batches for loop in loops),
        seconds=time.perf_counter() - t_start)
