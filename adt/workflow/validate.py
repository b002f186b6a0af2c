"""The validation study (``adt validate``): how many models does a bank need, and how good are its estimates?

On the bank's own responses, for every fold of every split: refit the calibration without the held-out
models, draw forms, give each held-out model only the form's items (a replay of its recorded answers to
exactly those items), estimate, and compare the predicted accuracy on the slice with the model's actual
accuracy there (the truth: the mean of its scores over every slice item it answered).

Every inner step is the product's own code path, called in-process:

- calibrate: ``adt.workflow.calibrate.calibrate`` with ``exclude_models`` = the fold's held-out models;
- forms: ``adt.workflow.forms`` (``build_spec``, ``read_pool`` with the fold's calibration, the draw of
  ``adt sample``); the forms of one model within a (strategy, size) are disjoint (each is drawn from the
  pool minus the items already used); near-duplicate (enemy) pairs are found once on the whole pool and
  handed to every draw as explicit pairs;
- replay: ``runners.replay`` fed with the held-out model's responses read from the bank; only the form's
  items are requested, and items it never answered come back ``missing`` and are dropped;
- estimate: ``adt.workflow.calibrate.estimate_scores`` with the fold's stored calibration, the replayed
  answers and the slice items the model answered.

All of it runs in a scratch copy of the bank (a temporary directory), so the user's bank gets no extra
calibrations or forms; only the result (``calibration.validation_store``) is written to it. Every input
is checked before any work: a bad input raises ``InputError`` and writes nothing.

Randomness: the k-fold assignment, the form seeds and the bootstrap come from
``numpy.random.SeedSequence(seed)`` children with fixed spawn keys, so a form's seed depends only on
(model, strategy, size, form index): the splits of one run see the same forms (paired comparison).

Metrics are the pure functions of ``calibration.validation``; besides the prediction they report the
raw accuracy of the same form items (with its Wilson interval) and a random-sample-plus-regression
baseline fitted on the calibration models' own answers to the same items.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adt.workflow import forms as wf
from adt.workflow.calibrate import CalibrateOptions, calibrate, estimate_scores
from adtbase.errors import InputError
from adtbase.jsonable import to_jsonable
from calibration import (
    DEFAULT_FITTER,
    get_fitter,
    load_calibration,
    regression_baseline,
    save_validation,
    summarize,
    wilson_interval,
)
from itembank import DEFAULT_WAIT_S, Bank, open_bank
from runners import Request, ScoringRule
from runners import create as create_runner
from sampler import REGISTRY, FormSpec, find_enemy_pairs, get_sampler

SPLITS = ("loo", "kfold", "frontier", "shift", "time")
# --irt: what the default fitter fits (the study's calibrations use it; calibration.fitters declares it).
IRT_CHOICES = get_fitter(DEFAULT_FITTER).irt_models
MODEL_ATTRIBUTES = ("family", "size", "release_date")
MIN_CALIBRATION_MODELS = 3
FRONTIER_SHARE = 0.3
# Keys of the estimate carried into the per-form records when estimate_scores returns them.
ESTIMATE_EXTRA = ("extrapolated", "person_fit", "form_unlikeness", "sources", "n_predicted", "n_slice_items",
                  "n_excluded")
# SeedSequence spawn-key namespaces.
_KFOLD, _FORMS, _BOOT = 0, 1, 2

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ValidateOptions:
    """What ``adt validate`` was asked for."""

    splits: tuple[str, ...] = ("loo",)
    sizes: tuple[int, ...] = (50, 100, 200)
    strategies: tuple[str, ...] = ("random",)
    forms: int = 10                          # disjoint forms per held-out model, strategy and size
    folds: int = 5                           # kfold
    frontier: int | None = None              # frontier: models held out (default 30% of them, rounded)
    calibrate_on: tuple[str, ...] = ()       # shift: calibrate on these models
    group_by: str | None = None              # shift: calibrate on the largest group of this model attribute
    cut: str | None = None                   # time: release dates before it calibrate (default: the median)
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)   # the slice
    quotas: tuple[str, ...] = ()             # --quota of `adt sample`
    stratify_by: str | None = None           # quotas proportional to the slice's shares of this tag key
    irt: str = "2pl"
    seed: int = 0
    level: float = 0.95
    n_boot: int = 1000
    jobs: int | None = None                  # worker processes for the folds (default: the cores, at most 4)


@dataclass(frozen=True)
class Fold:
    split: str
    index: int
    held_out: tuple[str, ...]
    calibrate_on: tuple[str, ...]


@dataclass(frozen=True)
class ValidationResult:
    validation_id: str
    summary: pd.DataFrame
    forms: pd.DataFrame
    settings: dict[str, Any]
    calibration_settings: dict[str, Any]
    snapshot_id: str
    created_at: str
    seconds: float
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"validation_id": self.validation_id, "snapshot_id": self.snapshot_id, "created_at": self.created_at,
                "seconds": round(self.seconds, 1), "settings": self.settings,
                "calibration_settings": self.calibration_settings, "notes": list(self.notes),
                "summary": self.summary, "forms": self.forms}


# ---------------------------------------------------------------------------------------------- planning
def check_options(opts: ValidateOptions) -> None:
    """Options that need no bank: one line naming the problem."""
    for s in opts.splits:
        if s not in SPLITS:
            raise InputError(f"--split {s!r}: choose from {', '.join(SPLITS)}")
    if not opts.splits:
        raise InputError("give at least one --split")
    for name in opts.strategies:
        get_sampler(name)  # unknown: InputError with a did-you-mean
        if not REGISTRY[name].needs_size:
            raise InputError(f"--strategy {name!r} draws every item, not a form of a given size; "
                             f"choose from {', '.join(n for n in sorted(REGISTRY) if REGISTRY[n].needs_size)}")
    if not opts.strategies:
        raise InputError("give at least one --strategy")
    if not opts.sizes or any(int(n) < 1 for n in opts.sizes):
        raise InputError(f"--form-size {list(opts.sizes)}: sizes must be positive item counts")
    if opts.forms < 1:
        raise InputError(f"--forms {opts.forms}: at least 1 form per model")
    if "kfold" in opts.splits and opts.folds < 2:
        raise InputError(f"--folds {opts.folds}: k-fold needs at least 2 folds")
    if opts.frontier is not None and opts.frontier < 1:
        raise InputError(f"--frontier {opts.frontier}: hold out at least 1 model")
    if opts.irt.lower() not in IRT_CHOICES:
        raise InputError(f"--irt {opts.irt!r}: choose one of {', '.join(IRT_CHOICES)}")
    if opts.jobs is not None and opts.jobs < 1:
        raise InputError(f"--jobs {opts.jobs}: at least 1")
    if not 0 < opts.level < 1:
        raise InputError(f"level {opts.level}: must be in (0, 1)")
    if (opts.calibrate_on or opts.group_by) and "shift" not in opts.splits:
        raise InputError("--calibrate-on / --group-by apply to --split shift")
    if opts.calibrate_on and opts.group_by:
        raise InputError("--split shift: give --calibrate-on or --group-by, not both")
    if opts.group_by is not None and opts.group_by not in MODEL_ATTRIBUTES:
        raise InputError(f"--group-by {opts.group_by!r}: a model attribute, one of {', '.join(MODEL_ATTRIBUTES)}")
    if opts.cut is not None:
        if "time" not in opts.splits:
            raise InputError("--cut applies to --split time")
        _date(opts.cut, "--cut")
    if opts.frontier is not None and "frontier" not in opts.splits:
        raise InputError("--frontier applies to --split frontier")


def _date(text: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(text).strip())
    except ValueError:
        raise InputError(f"{what} {text!r} is not an ISO date (YYYY-MM-DD)") from None


def _fold_checked(fold: Fold) -> Fold:
    if not fold.held_out:
        raise InputError(f"--split {fold.split} holds out no model")
    if len(fold.calibrate_on) < MIN_CALIBRATION_MODELS:
        raise InputError(f"--split {fold.split} leaves {len(fold.calibrate_on)} calibration model(s) "
                         f"({', '.join(fold.calibrate_on) or 'none'}); at least {MIN_CALIBRATION_MODELS} are needed")
    return fold


def plan_folds(split: str, accuracy: pd.Series, attributes: pd.DataFrame, opts: ValidateOptions,
               known: Sequence[str] = ()) -> tuple[list[Fold], dict[str, Any]]:
    """The folds of one split over the slice's models (``accuracy``: model -> accuracy on the slice;
    ``attributes``: the bank's models table, ``name, family, size, release_date``; ``known``: every model
    the bank holds, for telling a typo from a model without responses here). Returns the folds and what
    the split resolved to (e.g. the cut date)."""
    models = sorted(str(m) for m in accuracy.index)
    n = len(models)
    info: dict[str, Any] = {"split": split}

    def rest(held: Sequence[str]) -> tuple[str, ...]:
        return tuple(m for m in models if m not in set(held))

    if split == "loo":
        folds = [Fold(split, k, (m,), rest([m])) for k, m in enumerate(models)]
    elif split == "kfold":
        k = int(opts.folds)
        if k > n:
            raise InputError(f"--folds {k}: the slice has only {n} models")
        perm = np.random.default_rng(np.random.SeedSequence(opts.seed, spawn_key=(_KFOLD,))).permutation(n)
        groups = np.array_split(perm, k)
        folds = [Fold(split, j, tuple(sorted(models[i] for i in g)), rest([models[i] for i in g]))
                 for j, g in enumerate(groups)]
    elif split == "frontier":
        n_out = int(opts.frontier) if opts.frontier is not None else int(math.floor(FRONTIER_SHARE * n + 0.5))
        order = sorted(models, key=lambda m: (-float(accuracy[m]), m))
        held = tuple(sorted(order[:n_out]))
        folds = [Fold(split, 0, held, rest(held))]
        info["frontier"] = n_out
    elif split == "shift":
        if opts.calibrate_on:
            _check_named(opts.calibrate_on, models, known, "--calibrate-on")
            cal = tuple(sorted(set(opts.calibrate_on)))
        elif opts.group_by:
            attr = opts.group_by
            col = attributes.set_index("name")[attr] if len(attributes) else pd.Series(dtype=object)
            values = {m: col.get(m) for m in models}
            have = {m: str(v) for m, v in values.items() if v is not None and not pd.isna(v) and str(v) != ""}
            if not have:
                raise InputError(f"--group-by {attr}: no model of the slice has a {attr} (see `Bank.describe_model`)")
            sizes = pd.Series(have).value_counts()
            top = sorted(sizes[sizes == sizes.max()].index)[0]
            cal = tuple(sorted(m for m, v in have.items() if v == top))
            info["group"] = {"by": attr, "value": top}
        else:
            raise InputError("--split shift needs --calibrate-on MODEL (repeatable) or --group-by ATTR")
        folds = [Fold(split, 0, tuple(m for m in models if m not in set(cal)), cal)]
    elif split == "time":
        col = attributes.set_index("name")["release_date"] if len(attributes) else pd.Series(dtype=object)
        raw = {m: col.get(m) for m in models}
        undated = sorted(m for m, v in raw.items() if v is None or pd.isna(v) or str(v).strip() == "")
        if undated:
            raise InputError(f"--split time: model(s) without a release date: {', '.join(undated[:10])}"
                             + (f" and {len(undated) - 10} more" if len(undated) > 10 else ""))
        dates = {m: _date(v, f"model {m!r} release date") for m, v in raw.items()}
        ordered = sorted(dates.values())
        cut = _date(opts.cut, "--cut") if opts.cut else ordered[len(ordered) // 2]
        cal = tuple(m for m in models if dates[m] < cut)
        folds = [Fold(split, 0, tuple(m for m in models if dates[m] >= cut), cal)]
        info["cut"] = cut.isoformat()
    else:  # pragma: no cover - check_options rejects it
        raise InputError(f"--split {split!r}: choose from {', '.join(SPLITS)}")
    return [_fold_checked(f) for f in folds], info


def _check_named(names: Sequence[str], models: Sequence[str], known: Sequence[str], flag: str) -> None:
    for name in names:
        if name not in set(known):
            raise InputError(f"{flag} {name!r}: unknown model (the bank has no model of that name)")
        if name not in set(models):
            raise InputError(f"{flag} {name!r}: the model has no responses on the slice")


# ---------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class _Data:
    snapshot_id: str
    slice_ids: tuple[str, ...]
    scores: pd.DataFrame           # model, item_id, score (mean over runs), slice items only
    accuracy: pd.Series            # model -> mean score over the slice items it answered
    n_answered: pd.Series          # model -> slice items answered
    attributes: pd.DataFrame       # name, family, size, release_date
    known: tuple[str, ...]         # every model the bank holds


def _read(bank: Bank, filters: Mapping[str, Sequence[str]]) -> _Data:
    slice_ids = tuple(str(i) for i in bank.item_ids(dict(filters) or None))
    if not slice_ids:
        raise InputError("no items match the filters" if filters else "the bank holds no items")
    frame = bank.responses(dict(filters) or None)
    frame = frame[frame["item_id"].isin(pd.Index(slice_ids))]
    if frame.empty:
        raise InputError("no responses on the slice" + (" of these filters" if filters else "")
                         + "; import or run some first")
    scores = frame.groupby(["model", "item_id"], as_index=False, sort=True)["score"].mean()
    scores["model"] = scores["model"].astype(str)
    acc = scores.groupby("model")["score"].mean()
    attributes = bank.models()
    known = tuple(sorted(set(attributes["name"].astype(str)) | set(bank.runs()["model"].astype(str))))
    return _Data(bank.snapshot_id(), slice_ids, scores, acc, scores.groupby("model").size(), attributes, known)


def _spec_filters(filters: Mapping[str, Sequence[str]]) -> list[str]:
    return [f"{k}={','.join(str(v) for v in vals)}" for k, vals in filters.items()]


def _specs(bank: Bank, opts: ValidateOptions) -> dict[tuple[str, int], FormSpec]:
    out = {}
    for strategy in opts.strategies:
        for size in opts.sizes:
            out[(strategy, int(size))] = wf.build_spec(bank, strategy=strategy, size=int(size), quotas=opts.quotas,
                                                       filters=_spec_filters(opts.filters), seed=0,
                                                       stratify_by=opts.stratify_by)
    return out


def _enemy_pairs(pool: pd.DataFrame, spec: FormSpec) -> tuple[tuple[str, str], ...]:
    """The spec's near-duplicate pairs over the whole eligible pool, as item id pairs (found once; the
    draws get them as explicit pairs instead of re-running the search on every shrinking pool)."""
    from sampler import eligible

    frame = eligible(pool, spec)
    ids = frame["item_id"].astype(str).to_numpy()
    pairs: list[tuple[str, str]] = list(spec.enemy_pairs)
    if spec.enemy_threshold is not None and len(frame) > 1:
        found = find_enemy_pairs(frame["question"].fillna("").astype(str).tolist(), spec.enemy_threshold)
        pairs += [(str(ids[i]), str(ids[j])) for i, j in found]
    return tuple(sorted(set(pairs)))


def _request(item_id: str) -> Request:
    # Replay reads only the item id; the prompt and key are placeholders that never reach a model.
    return Request(item_id=item_id, prompt="(replayed)", item_type="mc", scoring=ScoringRule("choice", "A"),
                   choices=("a", "b"), choice_labels=("A", "B"))


def form_seed(seed: int, model: str, strategy: str, size: int, form: int) -> int:
    """The seed of one form: a SeedSequence(seed) child keyed by (model, strategy, size, form index). Names
    enter by their CRC-32, so adding a model to the bank or a strategy to the sampler moves no other form."""
    key = (_FORMS, zlib.crc32(model.encode()), zlib.crc32(strategy.encode()), int(size), int(form))
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0] >> np.uint64(1))


# ---------------------------------------------------------------------------------------------- running
@dataclass
class _Matrix:
    """Dense scores of every slice model (rows) on every slice item (columns), NaN where not answered."""

    models: list[str]
    items: dict[str, int]
    y: np.ndarray

    @classmethod
    def build(cls, data: _Data) -> _Matrix:
        models = sorted(data.accuracy.index.astype(str))
        items = {k: i for i, k in enumerate(data.slice_ids)}
        y = np.full((len(models), len(items)), np.nan)
        rows = data.scores["model"].map({m: i for i, m in enumerate(models)}).to_numpy()
        cols = data.scores["item_id"].map(items).to_numpy()
        y[rows, cols] = data.scores["score"].to_numpy(dtype=float)
        return cls(models, items, y)


def _form_means(mat: _Matrix, rows: np.ndarray, item_ids: Sequence[str]) -> np.ndarray:
    cols = np.array([mat.items[i] for i in item_ids if i in mat.items], dtype=np.int64)
    if cols.size == 0:
        return np.full(rows.size, np.nan)
    sub = mat.y[np.ix_(rows, cols)]
    n = np.isfinite(sub).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(sub, axis=1) / np.maximum(n, 1), np.nan)


def _extra_value(v: Any) -> Any:
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


@dataclass(frozen=True)
class _Study:
    """Everything a fold needs besides its scratch bank (sent once to each worker process)."""

    data: _Data
    mat: _Matrix
    specs: dict[tuple[str, int], FormSpec]
    opts: ValidateOptions
    cal_opts: CalibrateOptions


def _run_fold(fold: Fold, scratch: Path, study: _Study) -> tuple[list[dict], dict, str]:
    """Calibrate without the fold's held-out models, then draw, replay and estimate every form: the per-form
    rows, the fold's record and a progress line."""
    data, mat, specs, opts, cal_opts = study.data, study.mat, study.specs, study.opts, study.cal_opts
    t0 = time.perf_counter()
    outcome = calibrate(scratch, replace(cal_opts, exclude_models=fold.held_out))
    t_cal = time.perf_counter() - t0
    first_spec = next(iter(specs.values()))
    with open_bank(scratch, purpose="adt validate: fold pool") as bank:
        stored = load_calibration(bank, outcome.calibration_id)
        pool, _, _, cid = wf.read_pool(bank, first_spec, outcome.calibration_id)
    pool = pool.drop(columns=["question"])  # enemies are explicit pairs from here on
    model_pos = {m: i for i, m in enumerate(mat.models)}
    cal_rows = np.array([model_pos[m] for m in fold.calibrate_on], dtype=np.int64)
    cal_truth = data.accuracy.reindex(fold.calibrate_on).to_numpy(dtype=float)
    rows: list[dict] = []
    for model in fold.held_out:
        mine = data.scores[data.scores["model"] == model]
        runner = create_runner("replay", responses=mine, model=model, item_col="item_id", score_col="score",
                               output_col=None, missing_col=None, skip_missing=True)
        answered = list(mine["item_id"].astype(str))
        truth = float(data.accuracy[model])
        for (strategy, size), spec in specs.items():
            used: set[str] = set()
            for k in range(opts.forms):
                seed = form_seed(opts.seed, model, strategy, size, k)
                spec_k = spec.with_(seed=seed)
                avail = pool[~pool["item_id"].isin(pd.Index(sorted(used)))] if used else pool
                _, draft = wf._draw(avail, spec_k)
                used.update(draft.item_ids)
                results = runner.score([_request(i) for i in draft.item_ids])
                got = [(r.item_id, r.score) for r in results if r.error != "missing"]
                scores = pd.Series([s for _, s in got], index=[i for i, _ in got], dtype=float)
                est = estimate_scores(stored, scores, answered, level=opts.level)
                raw = float(scores.mean()) if len(scores) else float("nan")
                w_lo, w_hi = wilson_interval(raw, len(scores), opts.level)
                x_cal = _form_means(mat, cal_rows, list(scores.index))
                row = {"split": fold.split, "fold": fold.index, "model": model, "strategy": strategy,
                       "form_size": int(size), "form": k, "seed": seed, "item_ids": list(draft.item_ids),
                       "n_answered": len(scores), "truth": truth, "n_truth_items": len(answered),
                       "pred_acc": float(est["pred_acc"]), "pred_lo": float(est["pred_lo"]),
                       "pred_hi": float(est["pred_hi"]), "raw_acc": raw, "wilson_lo": float(w_lo),
                       "wilson_hi": float(w_hi), "regression": regression_baseline(x_cal, cal_truth, raw)}
                row.update({key: _extra_value(est[key]) for key in ESTIMATE_EXTRA if key in est})
                rows.append(row)
    r = outcome.result
    record = {"split": fold.split, "fold": fold.index, "held_out": list(fold.held_out),
              "calibrate_on": list(fold.calibrate_on), "scratch_calibration_id": cid, "converged": bool(r.converged),
              "n_iter": int(r.n_iter), "calibration_seconds": round(t_cal, 2),
              "seconds": round(time.perf_counter() - t0, 2)}
    d = pd.DataFrame(rows)
    mae = float((d["pred_acc"] - d["truth"]).abs().mean()) if len(d) else float("nan")
    raw_mae = float((d["raw_acc"] - d["truth"]).abs().mean()) if len(d) else float("nan")
    who = fold.held_out[0] if len(fold.held_out) == 1 else f"{len(fold.held_out)} models"
    line = (f"held out {who}; calibrated on {len(fold.calibrate_on)} models in {t_cal:.1f} s"
            f"{'' if r.converged else ' (NOT converged)'}; {len(rows)} forms, MAE pred {mae:.4f} raw {raw_mae:.4f} "
            f"({record['seconds']:.1f} s)")
    return rows, record, line


# Worker processes: each copies the scratch bank once (DuckDB lets one process hold a file) and runs folds.
_WORKER: dict[str, Any] = {}


def _worker_init(study: _Study, scratch: str) -> None:
    import os
    import shutil

    own = Path(scratch).with_name(f"worker-{os.getpid()}.duckdb")
    shutil.copyfile(scratch, own)
    _WORKER.update(study=study, scratch=own)


def _worker_fold(fold: Fold) -> tuple[list[dict], dict, str]:
    return _run_fold(fold, _WORKER["scratch"], _WORKER["study"])


def _run_folds(plans: Sequence[Fold], scratch: Path, study: _Study, jobs: int,
               progress: Progress | None) -> tuple[list[dict], list[dict]]:
    """Every fold, in worker processes when ``jobs`` > 1; rows and records come back in fold order."""
    done: dict[int, tuple[list[dict], dict]] = {}

    def tell(i: int, line: str) -> None:
        if progress is not None:
            f = plans[i]
            progress(f"[{len(done)}/{len(plans)}] {f.split} fold {f.index + 1}: {line}")

    if jobs <= 1 or len(plans) <= 1:
        for i, fold in enumerate(plans):
            rows, record, line = _run_fold(fold, scratch, study)
            done[i] = (rows, record)
            tell(i, line)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # no inherited DuckDB or Arrow threads
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                                 initargs=(study, str(scratch))) as pool:
            # Largest folds first (more held-out models, more forms), so the last ones to finish are short.
            order = sorted(range(len(plans)), key=lambda i: (-len(plans[i].held_out), i))
            futures = {pool.submit(_worker_fold, plans[i]): i for i in order}
            for fut in as_completed(futures):
                i = futures[fut]
                rows, record, line = fut.result()
                done[i] = (rows, record)
                tell(i, line)
    rows_all = [r for i in range(len(plans)) for r in done[i][0]]
    return rows_all, [done[i][1] for i in range(len(plans))]


# ---------------------------------------------------------------------------------------------- entry
def _jobs(jobs: int | None, n_folds: int) -> int:
    import os

    if jobs is None:
        jobs = min(os.cpu_count() or 1, 4)
    return max(1, min(int(jobs), n_folds))


def validate(bank_path: str | Path, opts: ValidateOptions, *, progress: Progress | None = None,
             wait_s: float = DEFAULT_WAIT_S, on_wait: Any = None, store: bool = True) -> ValidationResult:
    """Run the study (see the module doc) and store its result in the bank (unless ``store`` is False)."""
    t0 = time.perf_counter()
    check_options(opts)
    opts = replace(opts, splits=tuple(dict.fromkeys(opts.splits)), strategies=tuple(dict.fromkeys(opts.strategies)),
                   sizes=tuple(dict.fromkeys(int(n) for n in opts.sizes)), irt=opts.irt.lower())
    # No content priors: a fold's estimates read its stored predictive parameters only (estimate_scores).
    cal_opts = CalibrateOptions(irt=opts.irt, filters={k: list(v) for k, v in opts.filters.items()}, seed=opts.seed,
                                content_prior=False)
    bank_path = Path(bank_path)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="adt-validate-") as tmp:
        scratch = Path(tmp) / "bank.duckdb"
        with open_bank(bank_path, purpose="adt validate: read responses", wait_s=wait_s, on_wait=on_wait) as bank:
            data = _read(bank, opts.filters)
            plans: list[Fold] = []
            split_info = []
            for split in opts.splits:
                folds, info = plan_folds(split, data.accuracy, data.attributes, opts, data.known)
                plans += folds
                split_info.append(info)
            specs = _specs(bank, opts)
            need = max(opts.sizes) * opts.forms
            pool, _, _, _ = wf.read_pool(bank, next(iter(specs.values())), None)
            n_pool = len(pool)
            if need > n_pool:
                raise InputError(f"--form-size {max(opts.sizes)} x --forms {opts.forms} needs {need} distinct items "
                                 f"per model; the slice has {n_pool}")
            pairs = _enemy_pairs(pool, next(iter(specs.values())))
            specs = {k: s.with_(enemy_threshold=None, enemy_pairs=pairs) for k, s in specs.items()}
            for spec in specs.values():  # infeasible quotas fail here, before any work
                wf._draw(pool, spec.with_(seed=0))
            for strategy in opts.strategies:
                # Only stratified has no objective besides the quotas (milp and nsga2 still target information).
                if strategy == "stratified" and not specs[(strategy, opts.sizes[0])].quotas:
                    notes.append(f"--strategy {strategy} without --quota or --stratify-by: one cell, drawn like "
                                 f"random")
            bank.copy_to(scratch)
        if progress is not None:
            for n in notes:
                progress(f"note: {n}")
        study = _Study(data, _Matrix.build(data), specs, opts, cal_opts)
        jobs = _jobs(opts.jobs, len(plans))
        if progress is not None:
            progress(f"{len(plans)} folds ({', '.join(opts.splits)}), {len(opts.strategies)} strategies x "
                     f"{len(opts.sizes)} sizes x {opts.forms} forms per held-out model; {jobs} worker(s)")
        rows, records = _run_folds(plans, scratch, study, jobs, progress)
    forms = pd.DataFrame(rows)
    summary = summarize(forms, np.random.default_rng(np.random.SeedSequence(opts.seed, spawn_key=(_BOOT,))),
                        n_boot=opts.n_boot, level=opts.level)
    seconds = time.perf_counter() - t0
    settings = {**{k: v for k, v in asdict(opts).items() if k != "filters"},
                "filters": {k: list(v) for k, v in opts.filters.items()},
                "splits_resolved": split_info, "folds_run": records, "n_slice_items": len(data.slice_ids),
                "models": sorted(data.accuracy.index.astype(str)), "n_pool_items": n_pool,
                "n_enemy_pairs": len(pairs), "notes": notes}
    cal_settings = {k: v for k, v in asdict(cal_opts).items() if k not in ("exclude_models", "models")}
    cal_settings["exclude_models"] = "the fold's held-out models"
    created = datetime.now(UTC).isoformat(timespec="seconds")
    val_id = ""
    if store:
        with open_bank(bank_path, purpose="adt validate: store", wait_s=wait_s, on_wait=on_wait) as bank:
            val_id = save_validation(bank, summary=summary, forms=forms, settings=settings,
                                     calibration_settings=cal_settings, snapshot_id=data.snapshot_id,
                                     seconds=seconds, created_at=created)
    return ValidationResult(val_id, summary, forms, settings, cal_settings, data.snapshot_id, created, seconds,
                            tuple(notes))


# ---------------------------------------------------------------------------------------------- output
def summary_table(summary: pd.DataFrame) -> str:
    """The printed table: one row per split, strategy and form size."""
    if summary.empty:
        return "(no forms)"

    def f(v: Any, d: int = 4) -> str:
        return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{float(v):.{d}f}"

    has_extra = summary["share_extrapolated"].notna().any()
    head = ["split", "strategy", "size", "models", "forms", "MAE pred", "MAE raw", "MAE regr", "coverage",
            "coverage 95% CI", "width", "wilson", "tau"] + (["extrap"] if has_extra else [])
    lines = []
    for r in summary.to_dict("records"):
        cells = [r["split"], r["strategy"], str(r["form_size"]), str(r["n_models"]), str(r["n_intervals"]),
                 f(r["mae_pred"]), f(r["mae_raw"]), f(r["mae_regression"]), f(r["coverage"], 3),
                 f"[{f(r['coverage_lo'], 3)}, {f(r['coverage_hi'], 3)}]", f(r["mean_width"], 3),
                 f(r["mean_width_wilson"], 3), f(r["kendall_tau"], 3)]
        if has_extra:
            cells.append(f(r["share_extrapolated"], 3))
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths, strict=True)))]
    for cells in lines:
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths, strict=True))))
    return "\n".join(out)


def write_outputs(result: ValidationResult, out: str | Path) -> list[Path]:
    """``validation.csv`` (per form), ``summary.csv``, ``summary.json`` and ``validation.png`` in ``out``."""
    from adt import plots

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: not a directory")
    out.mkdir(parents=True, exist_ok=True)
    forms = result.forms.copy()
    if "item_ids" in forms.columns:
        forms["item_ids"] = [" ".join(ids) for ids in forms["item_ids"]]
    for col in forms.columns:
        if forms[col].map(lambda v: isinstance(v, (dict, list))).any():
            forms[col] = forms[col].map(lambda v: json.dumps(v, default=str) if isinstance(v, (dict, list)) else v)
    paths = [out / "validation.csv", out / "summary.csv", out / "summary.json", out / "validation.png"]
    forms.to_csv(paths[0], index=False)
    result.summary.to_csv(paths[1], index=False)

    meta = {k: v for k, v in result.as_dict().items() if k != "forms"}
    paths[2].write_text(json.dumps(to_jsonable(meta), indent=2, default=str) + "\n")
    plots.save(plots.validation_figure(result.summary), paths[3])
    return paths


__all__ = ["SPLITS", "Fold", "ValidateOptions", "ValidationResult", "check_options", "form_seed", "plan_folds",
           "summary_table", "validate", "write_outputs"]
