"""`adt round --spec round.yaml`: sample -> publish -> run every model -> recalibrate (linked) -> estimate.

The round spec, a YAML (or JSON) file::

    round: 7                      # the round number; the form is published in it
    calibration:                  # the recalibration after the runs
      irt: 2pl                    # 1pl | 2pl | 3pl | 4pl | auto (chosen by held-out fit)
      method: mml                 # mml | pyirt
      latent: normal              # normal | empirical
      link: fixed                 # fixed (anchors at their previous values) | stocking-lord | none
      seed: 7
    form:                         # a form spec, as in `adt sample --spec` (see sampler/spec.py)
      name: round-7
      strategy: stratified        # all | random | stratified | nsga2 | milp
      size: 600
      seed: 7
      quotas:
        frequency_tier: {high: 0.1, medium: 0.4, low: 0.5}
        difficulty_band: {hard: 0.3, medium: 0.4, easy: 0.3}
        language: {zh: 0.7, en: 0.3}
      max_overlap: {round-6: 0.2}
    models:                       # one run per model on the form
      - name: my-model
        backend: hf               # replay | simulated | hf | vllm | openai
        backend_args: {model: /models/my-model, dtype: bfloat16}
        resources: {num_gpus: 1}  # optional, ray executor: what the run's task asks for (see executor.py)
    executor: {kind: ray, address: auto, max_retries: 2}   # optional; default local, no retries

Every step goes through the same functions as the single commands (`adt sample`, `adt form publish`,
`adt run`, `adt calibrate`, `adt estimate`), so a round is resumable: re-running it skips a form
that already exists and answered items of runs already made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from adt.workflow.executor import (
    ExecutorConfig,
    RunStatus,
    RunTarget,
    resource_request,
    run_all,
    status_table,
)
from adt.workflow.run import DEFAULT_BATCH_SIZE
from adtbase.errors import InputError, RunnerError
from itembank import open_bank

LEADERBOARD_COLUMNS = ("model", "theta", "se", "lo", "hi", "pred_acc", "pred_lo", "pred_hi", "n_items", "n_predicted",
                       "n_slice_items", "extrapolated")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    backend: str
    backend_args: Mapping[str, Any] = field(default_factory=dict)
    resources: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RoundSpec:
    round_no: int
    form: Mapping[str, Any]
    models: tuple[ModelEntry, ...]
    calibration: Mapping[str, Any] = field(default_factory=dict)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "round spec") -> RoundSpec:
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a mapping at the top level")
        unknown = set(data) - {"round", "form", "models", "calibration", "executor"}
        if unknown:
            raise InputError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                             f"(fields: round, form, models, calibration, executor)")
        try:
            round_no = int(data["round"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{where}: field 'round' must be an integer") from None
        form = data.get("form")
        if not isinstance(form, Mapping) or "name" not in form:
            raise InputError(f"{where}: field 'form' must be a form spec with a 'name'")
        models = []
        for k, entry in enumerate(data.get("models") or []):
            if not isinstance(entry, Mapping) or "name" not in entry or "backend" not in entry:
                raise InputError(f"{where}: models[{k}] needs 'name' and 'backend'")
            resources = entry.get("resources") or {}
            if not isinstance(resources, Mapping):
                raise InputError(f"{where}: models[{k}].resources must be a mapping (num_cpus, num_gpus)")
            try:
                resource_request(str(entry["backend"]), {}, resources)
            except InputError as exc:
                raise InputError(f"{where}: models[{k}].{exc}") from None
            models.append(ModelEntry(str(entry["name"]), str(entry["backend"]), dict(entry.get("backend_args") or {}),
                                     dict(resources)))
        if not models:
            raise InputError(f"{where}: field 'models' lists no models")
        calibration = data.get("calibration") or {}
        if not isinstance(calibration, Mapping):
            raise InputError(f"{where}: field 'calibration' must be a mapping")
        return cls(round_no, dict(form), tuple(models), dict(calibration),
                   ExecutorConfig.from_spec(data.get("executor"), where))

    @classmethod
    def from_file(cls, path: Path) -> RoundSpec:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, str(path))


@dataclass(frozen=True)
class RoundSummary:
    round_no: int
    form_name: str
    calibration_before: str | None
    calibration_after: str
    runs: tuple[Any, ...]
    leaderboard: pd.DataFrame
    statuses: tuple[RunStatus, ...] = ()


def run_round(bank_path: Path, spec: RoundSpec, *, say: Callable[[str], None] = print,
              calibrate_first: bool = False, progress: bool = False,
              executor: ExecutorConfig | None = None, batch_size: int | None = None) -> RoundSummary:
    """The round of ``spec``; ``executor`` (default: the spec's) says where the runs are scored. A run that
    failed after its retries stops the round before recalibrating (re-running the round resumes it)."""
    from adt.workflow.calibrate import calibrate, estimate_all, latest_calibration_id
    from adt.workflow.forms import sample_and_store

    settings = dict(spec.calibration)
    # What the round spec's calibration says, the rest as `adt calibrate` defaults (CalibrateOptions: the
    # default fitter of calibration.fitters, 2PL, normal latent, seed 0).
    fit: dict[str, Any] = {k: settings[k] for k in ("irt", "method", "latent") if k in settings}
    fit["seed"] = int(settings.get("seed", 0))
    with open_bank(bank_path, purpose="adt round: setup") as bank:
        before = latest_calibration_id(bank)
        existing_forms = set(bank.forms()["name"]) if not bank.forms().empty else set()
    if before is None or calibrate_first:
        cal = calibrate(bank_path, **fit)
        before = cal.calibration_id
        say(f"[3] calibrated on past runs: {cal.summary_line()}")
    name = str(spec.form["name"])
    if name in existing_forms:
        say(f"[4] form {name} exists; reusing it")
    else:
        drawn = sample_and_store(bank_path, spec.form, calibration_id=before)
        say(f"[4] sampled form {name}: {drawn.summary_line()}")
    with open_bank(bank_path, purpose="adt round: publish") as bank:
        if spec.round_no not in bank.form(name)["publications"]:
            bank.publish(name, spec.round_no)
    say(f"    published {name} in round {spec.round_no}")
    targets = [RunTarget(e.name, e.backend, name, e.backend_args, round_no=spec.round_no, resources=e.resources)
               for e in spec.models]
    statuses = run_all(bank_path, targets, executor or spec.executor, progress=progress, say=say,
                       batch_size=batch_size or DEFAULT_BATCH_SIZE)
    say(status_table(statuses))
    failed = [s.run_id for s in statuses if s.status == "failed"]
    if failed:
        raise RunnerError(f"round {spec.round_no}: {len(failed)} run(s) failed ({', '.join(failed)}); "
                          "re-run the round to resume them")
    runs = [s.report for s in statuses]
    say(f"[5] ran {len(runs)} models on {name}: {sum(r.ingested for r in runs if r):,} responses stored")
    link = settings.get("link", "fixed")
    cal = calibrate(bank_path, **fit, link=None if link == "none" else str(link).replace("-", "_"),
                    anchor_calibration=before)
    say(f"[6] recalibrated, linked ({link}) to {before}: {cal.summary_line()}")
    with open_bank(bank_path, purpose="adt round: estimate") as bank:
        board = estimate_all(bank, cal.calibration_id)
    board = board[board["model"].isin([m.name for m in spec.models])]
    return RoundSummary(spec.round_no, name, before, cal.calibration_id, tuple(runs),
                        board[list(LEADERBOARD_COLUMNS)].reset_index(drop=True), tuple(statuses))


def coverage_note(board: pd.DataFrame) -> str:
    """What the predicted accuracies are about when they cover fewer items than the bank ('' when all)."""
    short = board[board["n_predicted"] < board["n_slice_items"]]
    if short.empty:
        return ""
    total = int(board["n_slice_items"].max())
    lo, hi = int(short["n_predicted"].min()), int(short["n_predicted"].max())
    span = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return (f"predicted accuracy of {len(short)} of {len(board)} models covers {span} of the bank's {total} items: "
            f"items no calibration model answered cannot be predicted")


def summary_table(summary: RoundSummary) -> pd.DataFrame:
    board = summary.leaderboard.sort_values("theta", ascending=False).reset_index(drop=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board
