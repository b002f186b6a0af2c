"""Forms: draw one from the bank (full, module or sampled mode), store it, rebuild it for an audit, export it.

The pool a form is drawn from is the bank *as of a history head*: ``Bank.items(as_of=head)``, the
bank's item frame as it stood when its history had that many events (items created later left out,
later tags taken off, later review-state changes rolled back, exposure and frequency tiers from the
``answered`` and ``published`` events up to the head), with

- the tier thresholds in force at the draw (recorded with the form; the history does not hold settings);
- difficulty bands: the bank keeps only each item's latest calibrated difficulty, not in the history,
  so a spec that uses ``difficulty_band`` records the bands it was drawn with;
- item parameters: from the calibration recorded with the form (``calibration.store``; calibrations are
  immutable versions), joined by item id; items without parameters use the sampler's priors.

A draw reads it at the bank's current head (the live view); a later audit (``rebuild_form``) reads it at
the *recorded* head, so forms saved, published or answered since, new items and new tags do not change
the pool it rebuilds. A digest of every pool column used is recorded too: the audit reports which
column, if any, it could not reconstruct.

The snapshot id is taken *before* the form is saved (saving appends the form's events and changes it).
The content hash covers the canonical spec (seed and strategy included), the snapshot id, the
calibration id and the items in order: the same spec and seed on the same snapshot give the same hash.
``nsga2`` may stop on its time budget; the generations it ran are recorded and the rebuild runs exactly
that many (a ``milp`` that stops on its time limit is not reproducible and is reported as such).

The bank is held only while reading the pool and while saving; sampling runs without it, and a save
refuses if the bank's snapshot moved in between. An audit likewise reads its inputs with the bank held
(``prepare_rederivation``) and samples after letting go of it (``Rederivation.run``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from adt import audit
from adt.flags import overlap_form, parse_amount, parse_filters, parse_overlap_flag, parse_quotas
from adtbase import review
from adtbase.errors import AdtError, BankError, InputError
from adtbase.names import check_name
from calibration import list_calibrations, load_calibration
from itembank import COLUMN_KEYS, DEFAULT_WAIT_S, Bank, open_bank
from sampler import (
    FormSpec,
    PreparedPool,
    get_sampler,
    proportional_quota,
    seed_pretest,
    solve_cell_counts,
)

# Item columns that never change once an item exists (and that the sampler reads).
STATIC_COLUMNS = ("item_id", "question", "n_choices", "item_type", "language", "origin", "source")
# Filter keys whose values change with the bank's state: applied on the reconstructed pool, not in SQL.
DYNAMIC_KEYS = frozenset({"review_state", "frequency_tier", "difficulty_band"})
PARAM_COLUMNS = ("a", "b", "c", "d")
# The item view's columns a pool is built from (tags besides): read alone, not the item text of every item.
POOL_COLUMNS = (*STATIC_COLUMNS, "review_state", "stage", "exposure_runs", "exposure_publications", "frequency_tier",
                "difficulty_band")
# Diagnostics kept with the objectives (the Pareto set itself is not stored).
KEPT_DIAGNOSTICS = ("n_eligible", "n_enemy_pairs", "n_cells_used", "dropped_enemies", "algorithm", "generations",
                    "evaluations", "pareto_size", "hypervolume", "hypervolume_first_population", "weights",
                    "milp_status", "mip_gap", "n_candidates", "solve_time_s")


# -- calibration parameters ---------------------------------------------------------------------------
def load_parameters(bank: Bank, calibration_id: str | None, *,
                    content_prior: bool = False) -> tuple[str | None, pd.DataFrame | None]:
    """(calibration id, parameters ``item_id, a, b, c, d``) of ``calibration_id`` (an id or a unique prefix
    of one), or of the latest calibration when None; ``(None, None)`` when none was named and the bank has
    none (every item uncalibrated). NaN parameters: the item is kept at its prior (``pool_frame``).
    ``content_prior``: uncalibrated items get the content prior stored with the calibration, and a
    ``param_source`` column (``StoredCalibration.pool_frame``); forms use it, CAT (which scores) does not.
    """
    if calibration_id is None and list_calibrations(bank).empty:
        return None, None
    found = load_calibration(bank, calibration_id)
    # ``pool_frame``: NaN where an item is kept at its prior (unanswered, all correct, all wrong).
    frame = found.pool_frame(content_prior=content_prior)
    cols = ["item_id", *PARAM_COLUMNS, *(["param_source"] if "param_source" in frame.columns else [])]
    return str(found.calibration_id), frame[cols].astype({k: float for k in PARAM_COLUMNS})


# -- earlier forms, lazily --------------------------------------------------------------------------
class EarlierForms(Mapping[str, list[str]]):
    """Item ids of the bank's forms, fetched when a spec names one (overlap limits)."""

    def __init__(self, bank: Bank) -> None:
        self.bank = bank
        self.names = set(bank.forms()["name"].astype(str))

    def __getitem__(self, name: str) -> list[str]:
        if name not in self.names:
            raise KeyError(name)
        return [str(i) for i in self.bank.form(name)["item_ids"]]

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))

    def __len__(self) -> int:
        return len(self.names)


def build_spec(bank: Bank, *, strategy: str | None = None, size: int | None = None, quotas: Sequence[str] = (),
               spec_file: str | Path | None = None, filters: Sequence[str] = (), max_overlap: Sequence[str] = (),
               seed: int | None = None, spec_dict: Mapping[str, Any] | None = None,
               stratify_by: str | None = None, review_states: Sequence[str] = (), pretest: str | None = None,
               pretest_filters: Sequence[str] = ()) -> FormSpec:
    """The spec of a draw: a spec file or mapping (optional) with the command-line flags on top, key by key.

    The flags come as their texts (``filters``: ``KEY=V1,V2``; ``quotas``, ``max_overlap``), parsed here by the
    command layer's parsers (``adt.flags``, the grammar of every command); the spec takes the parsed values.
    ``stratify_by``: a tag key; the spec gets quotas proportional to the shares of its values among the
    slice's items (``sampler.proportional_quota``), written into the spec so the form rebuilds as drawn.
    ``pretest``: ``N`` (a count) or a share (``10%``, ``0.1``) of the form's items that are pretest items;
    ``pretest_filters`` (``--filter`` grammar) narrow their slice.
    Forms picked for information (milp, nsga2) otherwise drift towards the content where the calibration
    models differ most, and a model's prediction then rests on its relative strength there."""
    earlier = EarlierForms(bank)
    for text in max_overlap:
        name = overlap_form(text)
        if name not in earlier:
            raise InputError(f"--max-overlap {text!r}: no form {name!r} in the bank"
                             + (f" (forms: {', '.join(sorted(earlier.names)[:10])})" if earlier.names else ""))
    base = FormSpec.from_yaml(spec_file, earlier_forms=earlier) if spec_file else None
    if spec_dict is not None:
        base = FormSpec.from_dict(spec_dict, source="form spec", earlier_forms=earlier)
    strategy = strategy or (base.strategy if base is not None else "stratified")
    get_sampler(strategy)  # an unknown strategy fails here, with a did-you-mean
    flt = parse_filters(filters)
    parsed_quotas = parse_quotas(quotas)
    overlaps = [parse_overlap_flag(text) for text in max_overlap]
    amount = None if pretest is None else parse_amount(pretest, f"--pretest {pretest!r}")
    spec = FormSpec.from_cli(size=size, quotas=parsed_quotas, filters=flt, max_overlap=overlaps, seed=seed,
                             strategy=strategy, earlier_forms=earlier, base=base, review_states=review_states,
                             pretest=amount, pretest_filters=parse_filters(pretest_filters, "--pretest-filter"))
    tax_keys = set(bank.taxonomy().keys) | set(COLUMN_KEYS)
    # Every listed value must be one some item has (or a fixed column's): a misspelt one beside a real one would
    # otherwise narrow the pool silently (the exposure and band filters apply to the pool, not to the read).
    bank.check_filter_values({k: list(v) for k, v in spec.include})
    if spec.pretest is not None:
        bank.check_filter_values({k: list(v) for k, v in spec.pretest.include}, "--pretest-filter")
        for key in (q.key for q in spec.pretest.quotas):
            if key not in tax_keys:
                raise bank.unknown_key("pretest.quotas", key)
    for key in spec.quota_keys:  # a misspelt key is named with the bank's keys (the pool also has item text columns)
        if key not in tax_keys:
            raise bank.unknown_key("--quota", key)
    if stratify_by:
        if stratify_by not in tax_keys:
            raise bank.unknown_key("--stratify-by", stratify_by)
        if stratify_by in spec.quota_keys:
            raise InputError(f"--stratify-by {stratify_by!r}: the spec already has a quota on {stratify_by!r}")
        items = bank.items({k: list(v) for k, v in spec.include})
        if stratify_by not in items.columns:
            raise InputError(f"--stratify-by {stratify_by!r}: the bank has no tag key {stratify_by!r}")
        d = spec.to_dict()
        d["quotas"] = {**(d.get("quotas") or {}), stratify_by: proportional_quota(list(items[stratify_by]), stratify_by)}
        spec = FormSpec.from_dict(d, source="form spec", earlier_forms=earlier)
    if spec.seed is None:  # drawn once and recorded, so the form can be rebuilt
        spec = spec.with_(seed=int(np.random.SeedSequence().entropy % (2**63)))  # type: ignore[operator]
    # Draw with the spec exactly as it will be read back from the bank.
    return FormSpec.from_dict(json.loads(spec.canonical_json()), source="form spec")


def uses_band(spec: FormSpec) -> bool:
    keys = set(spec.quota_keys) | {k for k, _ in spec.include} | {k for k, _ in spec.exclude}
    return "difficulty_band" in keys


def prefilter(spec: FormSpec) -> dict[str, list[str]]:
    """The spec's include filters that can narrow the SQL read (static columns and tags only ever grow)."""
    return {k: list(v) for k, v in spec.include if k not in DYNAMIC_KEYS}


# -- the pool as of a history head ----------------------------------------------------------------------
@dataclass(frozen=True)
class PoolSettings:
    """What the reconstruction needs beyond the history (recorded with the form)."""

    head_n: int
    head_hash: str
    tier_high_runs: int
    tier_high_publications: int
    bands: dict[str, str] | None = None
    tier_low_runs: int = 0          # forms drawn before the setting existed had 0 (low = never exposed)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tag_columns(frame: pd.DataFrame, tax_keys: Iterable[str]) -> list[str]:
    """The item frame's tag columns (taxonomy keys that are not built-in columns)."""
    builtin = set(STATIC_COLUMNS) | DYNAMIC_KEYS | set(COLUMN_KEYS)
    return sorted(c for c in frame.columns if c in set(tax_keys) and c not in builtin)


def pool_at(bank: Bank, settings: PoolSettings, spec: FormSpec, params: pd.DataFrame | None) -> pd.DataFrame:
    """The pool frame as of ``settings.head_n`` (``Bank.items(as_of=...)``, see the module doc), sorted by item id.

    A head past the end of the history (truncated since: ``rebuild_inputs`` notes it) reads as the current one."""
    frame = bank.items(prefilter(spec), include_retired=True, as_of=min(settings.head_n, bank.head().n_events),
                       settings={"tier_high_runs": settings.tier_high_runs,
                                 "tier_high_publications": settings.tier_high_publications,
                                 "tier_low_runs": settings.tier_low_runs}, columns=POOL_COLUMNS)
    if frame.empty:
        raise InputError("no items match the form's filters" + (f" {prefilter(spec)}" if prefilter(spec) else ""))
    tag_cols = tag_columns(frame, set(bank.taxonomy().keys))
    if settings.bands is not None:
        frame["difficulty_band"] = frame["item_id"].map(settings.bands).fillna("unknown")
    # A form drawn before stages had no stage rule: its pool (and digest) has no stage column.
    stage = [] if spec.stages is None else ["stage"]
    cols = [*STATIC_COLUMNS, "review_state", *stage, "exposure_runs", "exposure_publications", "frequency_tier",
            "difficulty_band", *tag_cols]
    out = frame[cols].copy()
    if params is not None:
        out = out.merge(params, on="item_id", how="left")
    return out.sort_values("item_id", kind="stable").reset_index(drop=True)


def pool_digest(prep: PreparedPool) -> dict[str, str]:
    """sha256 (16 hex) of each column of the eligible pool: what an audit compares its rebuild with."""
    out = {}
    for col in prep.frame.columns:
        values = prep.frame[col].to_numpy(dtype=object)
        text = "\x1f".join("\x00" if v is None or (isinstance(v, float) and np.isnan(v)) else
                           (repr(round(v, 12)) if isinstance(v, float) else str(v)) for v in values)
        out[str(col)] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


# -- drawing -------------------------------------------------------------------------------------------
def content_hash(spec: FormSpec, snapshot_id: str, calibration_id: str | None, item_ids: Sequence[str],
                 pretest_ids: Sequence[str] = ()) -> str:
    """sha256 of the canonical spec (seed, strategy), snapshot, calibration, items in order and which of them are
    pretest items (a key only a form with pretest items has: older forms' hashes are unchanged)."""
    record: dict[str, Any] = {"spec": json.loads(spec.canonical_json()), "strategy": spec.strategy, "seed": spec.seed,
                              "snapshot": snapshot_id, "calibration": calibration_id, "items": list(item_ids)}
    if pretest_ids:
        record["pretest"] = sorted(pretest_ids)
    payload = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class DrawnForm:
    """A form as drawn (and, unless a dry run, stored)."""

    name: str
    mode: str                       # full | module | sampled
    strategy: str
    seed: int | None
    item_ids: tuple[str, ...]
    snapshot_id: str
    calibration_id: str | None
    content_hash: str
    n_uncalibrated: int
    objectives: dict[str, Any]
    spec: dict[str, Any]            # as stored: the canonical spec plus the pool record ("pool")
    stored: bool = False
    notes: tuple[str, ...] = field(default=())
    pretest_ids: tuple[str, ...] = ()   # administered, never scored
    n_stand_in: int = 0                 # pretest-stage items scored as operational ones (young bank)

    @property
    def n_pretest(self) -> int:
        return len(self.pretest_ids)

    @property
    def n_scored(self) -> int:
        return self.n_items - self.n_pretest

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(n_items=self.n_items, n_pretest=self.n_pretest, n_scored=self.n_scored)
        return out

    def stand_in_line(self) -> str:
        """The young-bank note (``adtbase.lifecycle``), empty when every scored item is operational."""
        if not self.n_stand_in:
            return ""
        return (f"{self.n_stand_in} of {self.n_scored} scored items are uncalibrated stand-ins (young bank: too few "
                "operational items to fill the form)")

    def summary_line(self) -> str:
        info = self.objectives.get("information")
        pretest = (f", {self.n_pretest} pretest (unscored)" if self.n_pretest else "") + (
            f", {self.n_stand_in} uncalibrated stand-ins scored (young bank)" if self.n_stand_in else "")
        return (f"{self.n_items} items ({self.mode}, {self.strategy}, seed {self.seed}, {self.n_uncalibrated} "
                f"uncalibrated{pretest}), calibration {self.calibration_id or '(none: priors)'}"
                + (f", information {info:.4g}" if isinstance(info, float) else "") + f", hash {self.content_hash[:16]}")


def mode_of(spec: FormSpec) -> str:
    if spec.strategy != "all":
        return "sampled"
    return "module" if spec.include else "full"


def _waiting_note(pool: pd.DataFrame, spec: FormSpec) -> str:
    """Where items the spec's review states leave out would have filled the form: say so and how to use them."""
    if "review_state" not in pool.columns:
        return ""
    waiting = int((pool["review_state"] == review.DRAFT).sum()) if review.DRAFT not in spec.review_states else 0
    if not waiting:
        return ""
    return (f" ({waiting} more are drafts waiting for review: approve them with `adt bank review ITEM...`, or "
            "let drafts in with --review-state approved --review-state draft)")


def _draw(pool: pd.DataFrame, spec: FormSpec, *, n_gen: int | None = None) -> tuple[PreparedPool, Any]:
    """Check feasibility, then sample (``n_gen`` fixes nsga2's generations for a rebuild): the operational part
    by the strategy from the operational pool (``sampler.prepare``: stages, young-bank rule), then the pretest
    part (``sampler.seed_pretest``), as ``Sampler.sample`` does."""
    sampler = get_sampler(spec.strategy)
    op = spec.operational()

    def check(prep: PreparedPool) -> None:
        if sampler.needs_size and op.size is not None and op.size > len(prep):
            from adtbase.errors import QuotaInfeasible
            what = f"operational part {op.size} of {spec.size}" if spec.pretest is not None else str(op.size)
            raise QuotaInfeasible(f"form spec is infeasible: form size {what}: only {len(prep)} eligible items"
                                  + _waiting_note(pool, spec))
        if sampler.meets_quotas and prep.cells is not None:
            solve_cell_counts(prep.cells)  # an infeasible spec fails here, naming marginals and starving cells

    run_spec = op
    if n_gen is not None:
        opts = {**op.options_dict, "n_gen": int(n_gen), "time_limit": 1e9}
        run_spec = op.with_(options=tuple(sorted(opts.items())))
    rng = np.random.default_rng(spec.seed)
    pretest_rngs = rng.spawn(2)  # spawned first: the operational draw is the one the spec draws without pretest
    prep, draft = sampler.sample_pool(pool, spec, rng, run_spec=run_spec, check=check)
    return prep, seed_pretest(pool, spec, draft, *pretest_rngs)


def _objectives(draft: Any) -> dict[str, Any]:
    diag = {k: draft.diagnostics[k] for k in KEPT_DIAGNOSTICS if k in draft.diagnostics}
    return {**draft.objectives, "diagnostics": diag}


def read_pool(bank: Bank, spec: FormSpec, calibration_id: str | None) -> tuple[pd.DataFrame, PoolSettings, str,
                                                                                str | None]:
    """(pool, settings, snapshot id, calibration id) at the bank's current head."""
    snapshot_id = bank.snapshot_id()
    head = bank.head()
    s = bank.settings()
    cid, params = load_parameters(bank, calibration_id, content_prior=True)
    settings = PoolSettings(head.n_events, head.hash, int(s["tier_high_runs"]), int(s["tier_high_publications"]),
                            tier_low_runs=int(s["tier_low_runs"]))
    pool = pool_at(bank, settings, spec, params)
    if uses_band(spec):  # the history does not hold bands: record today's with the form
        bands = {str(i): str(b) for i, b in zip(pool["item_id"], pool["difficulty_band"], strict=True) if b != "unknown"}
        settings = replace(settings, bands=bands)
    return pool, settings, snapshot_id, cid


def draw_form(bank_path: str | Path, spec_args: Mapping[str, Any], name: str, *, calibration_id: str | None = None,
              dry_run: bool = False, wait_s: float = DEFAULT_WAIT_S, on_wait: Any = None) -> DrawnForm:
    """Draw form ``name`` from the bank and store it (see the module doc); ``spec_args`` go to ``build_spec``."""
    check_name("--name", name)  # one rule for form and model names (adtbase.names)
    with open_bank(bank_path, wait_s=wait_s, purpose=f"adt sample {name}: read pool", on_wait=on_wait) as bank:
        if name in set(bank.forms()["name"].astype(str)):
            raise InputError(f"form {name!r} already exists; pick another --name")
        spec = build_spec(bank, **spec_args)
        pool, settings, snapshot_id, cid = read_pool(bank, spec, calibration_id)
    prep, draft = _draw(pool, spec)
    stored_spec = {**spec.to_dict(), "pool": {**settings.as_dict(), "digest": pool_digest(prep),
                                              "generations": draft.diagnostics.get("generations")}}
    digest = content_hash(spec, snapshot_id, cid, draft.item_ids, draft.pretest_ids)
    notes = []
    if spec.strategy == "milp" and draft.diagnostics.get("milp_status") not in (0, None):
        notes.append(f"milp stopped early ({draft.diagnostics.get('milp_message')}): a rebuild may differ")
    form = DrawnForm(name, mode_of(spec), spec.strategy, spec.seed, draft.item_ids, snapshot_id, cid, digest,
                     draft.n_uncalibrated, _objectives(draft), stored_spec, False, tuple(notes),
                     draft.pretest_ids, draft.n_stand_in)
    if dry_run:
        return form
    with open_bank(bank_path, wait_s=wait_s, purpose=f"adt sample {name}: save", on_wait=on_wait) as bank:
        now = bank.snapshot_id()
        if now != snapshot_id:
            raise BankError(f"the bank changed while form {name!r} was drawn (snapshot {snapshot_id} -> {now}); "
                            f"run the command again")
        bank.save_form(name, list(draft.item_ids), spec=stored_spec, strategy=spec.strategy, seed=spec.seed,
                       snapshot_id=snapshot_id, calibration_id=cid, objectives=form.objectives,
                       content_hash=digest, n_uncalibrated=draft.n_uncalibrated, pretest_ids=draft.pretest_ids,
                       n_stand_in=draft.n_stand_in)
    return replace(form, stored=True)


def sample_and_store(bank_path: str | Path, form: Mapping[str, Any], *, calibration_id: str | None = None,
                     dry_run: bool = False, wait_s: float = DEFAULT_WAIT_S, on_wait: Any = None) -> DrawnForm:
    """Draw and store a form given as a mapping: ``name`` plus a form spec (the fields of a spec file)."""
    spec = dict(form)
    name = spec.pop("name", None)
    if not isinstance(name, str):
        raise InputError("form spec: field 'name' (the new form's name) is required")
    return draw_form(bank_path, {"spec_dict": spec}, name, calibration_id=calibration_id, dry_run=dry_run,
                     wait_s=wait_s, on_wait=on_wait)


# -- rebuilding (audit) ------------------------------------------------------------------------------------
@dataclass
class RebuildNotes:
    """What a rebuild found besides the items: pool columns it could not reconstruct, history problems."""

    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RebuildInputs:
    """Everything a rebuild reads from the bank: the form's record, its spec and the pool as of its head."""

    rec: dict[str, Any]
    spec: FormSpec
    pool: pd.DataFrame
    generations: int | None
    recorded_digest: dict[str, str]
    problems: tuple[str, ...]


def rebuild_inputs(bank: Bank, rec: Mapping[str, Any]) -> RebuildInputs:
    """Read (bank held) what ``rebuild_from`` needs: the recorded spec, seed, strategy, and the pool rebuilt
    as of the recorded head with the recorded calibration's parameters."""
    problems = []
    stored = dict(rec["spec"])
    pool_rec = stored.pop("pool", None)
    if not isinstance(pool_rec, Mapping):
        raise InputError(f"form {rec.get('name')!r} was not drawn by `adt sample` (its spec records no pool): "
                         "it cannot be re-derived")
    # A spec stored without stages predates them: no stage rule, no stage column in its pool.
    spec = FormSpec.from_stored(stored, source=f"form {rec.get('name')} spec")
    # The form's own columns are the record: where they disagree with the spec JSON, say so and use them.
    seed = None if pd.isna(rec.get("seed")) else int(rec["seed"])
    for what, col, inner in (("seed", seed, spec.seed), ("strategy", rec.get("strategy"), spec.strategy)):
        if col != inner:
            problems.append(f"the form's recorded {what} {col!r} differs from its spec's {inner!r}")
    spec = spec.with_(seed=seed, strategy=str(rec.get("strategy")))
    settings = PoolSettings(int(pool_rec["head_n"]), str(pool_rec["head_hash"]), int(pool_rec["tier_high_runs"]),
                            int(pool_rec["tier_high_publications"]), pool_rec.get("bands"),
                            int(pool_rec.get("tier_low_runs", 0)))
    at = bank.head_at(settings.head_n)
    if at is None or at.hash != settings.head_hash:
        problems.append(f"the history at event {settings.head_n} is not the one the form was drawn at "
                        f"(history rewritten or truncated; run `adt bank verify`)")
    _, params = (load_parameters(bank, rec.get("calibration_id"), content_prior=True) if rec.get("calibration_id")
                 else (None, None))
    pool = pool_at(bank, settings, spec, params)
    gens = pool_rec.get("generations") if spec.strategy == "nsga2" else None
    return RebuildInputs(dict(rec), spec, pool, None if gens is None else int(gens),
                         dict(pool_rec.get("digest") or {}), tuple(problems))


def rebuild_from(inputs: RebuildInputs, notes: RebuildNotes | None = None) -> tuple[list[str], str]:
    """Draw again (bank not needed) and hash with the recorded snapshot and calibration ids."""
    notes = notes if notes is not None else RebuildNotes()
    notes.problems.extend(inputs.problems)
    prep, draft = _draw(inputs.pool, inputs.spec, n_gen=inputs.generations)
    now = pool_digest(prep)
    rec_digest = inputs.recorded_digest
    differ = sorted(k for k in set(rec_digest) | set(now) if rec_digest.get(k) != now.get(k))
    if differ:
        notes.problems.append("the pool as of the recorded head could not be reconstructed exactly; columns that "
                              f"differ: {', '.join(differ)}")
    rec = inputs.rec
    return list(draft.item_ids), content_hash(inputs.spec, str(rec["snapshot_id"]), rec.get("calibration_id"),
                                              draft.item_ids, draft.pretest_ids)


def rebuild_form(bank: Bank, rec: Mapping[str, Any], notes: RebuildNotes | None = None) -> tuple[list[str], str]:
    """Rebuild a stored form from its recorded spec, strategy, seed, snapshot head and calibration.

    Returns ``(item_ids, content_hash)``; ``notes`` collects pool columns whose digest differs from the
    recorded one (the reconstruction could not reproduce the pool) and history problems.
    """
    return rebuild_from(rebuild_inputs(bank, rec), notes)


class _Recorded:
    """Stands in for the bank in ``adt.audit.rederive_form`` once the record has been read."""

    def __init__(self, rec: dict[str, Any]) -> None:
        self.rec = rec

    def form(self, name: str) -> dict[str, Any]:
        return dict(self.rec)


@dataclass(frozen=True)
class Rederivation:
    """A re-derivation read from the bank, to be run after letting go of it (sampling may take a while)."""

    name: str
    inputs: RebuildInputs | None
    error: str | None

    def run(self) -> dict[str, Any]:
        if self.inputs is None:
            return {"ok": False, "possible": False, "problem": self.error, "notes": []}
        notes = RebuildNotes()
        inputs = self.inputs
        try:
            result = audit.rederive_form(cast(Bank, _Recorded(inputs.rec)), self.name,
                                         lambda rec: rebuild_from(inputs, notes))
        except AdtError as exc:
            return {"ok": False, "possible": False, "problem": str(exc), "notes": notes.problems}
        return {**result.as_dict(), "possible": True, "notes": notes.problems}


def prepare_rederivation(bank: Bank, name: str) -> Rederivation:
    """Read a form's rebuild inputs (bank held); ``.run()`` then rebuilds and compares without the bank."""
    try:
        rec = bank.form(name)
        return Rederivation(name, rebuild_inputs(bank, {**rec, "name": name}), None)
    except AdtError as exc:
        return Rederivation(name, None, str(exc))


def rederive(bank: Bank, name: str) -> dict[str, Any]:
    """``adt.audit.rederive_form`` with ``rebuild_form``: the outcome plus the rebuild's notes."""
    return prepare_rederivation(bank, name).run()


def rederivation_line(outcome: Mapping[str, Any]) -> str:
    """One line for ``adt audit form``."""
    if outcome.get("ok"):
        text = "re-derived: hash matches"
    elif not outcome.get("possible", True):
        text = f"re-derived: not possible: {outcome.get('problem')}"
    else:
        text = f"re-derived: MISMATCH: {outcome.get('problem')}"
    notes = outcome.get("notes") or []
    return text + (f" ({'; '.join(notes)})" if notes else "")


# -- reading and exporting forms ----------------------------------------------------------------------------
def _aliases(bank: Bank, item_ids: Sequence[str]) -> dict[str, list[str]]:
    """Every ``source:external_id`` alias of the items (Bank.aliases_for, once per source)."""
    sources = [r[0] for r in bank.conn.execute("SELECT name FROM sources ORDER BY name").fetchall()]
    out: dict[str, list[str]] = {i: [] for i in item_ids}
    for source in sources:
        for item_id, ext in bank.aliases_for(item_ids, source).items():
            out[item_id].append(f"{source}:{ext}")
    return out


def form_items(bank: Bank, name: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """(form record, its items in order with position, aliases and tags)."""
    rec = bank.form(name)
    ids = [str(i) for i in rec["item_ids"]]
    items = bank.items({"item_id": ids}, include_retired=True) if ids else pd.DataFrame({"item_id": []})
    tax_keys = set(bank.taxonomy().keys)
    tag_cols = tag_columns(items, tax_keys)
    order = pd.DataFrame({"position": np.arange(len(ids)), "item_id": ids})
    frame = order.merge(items, on="item_id", how="left").sort_values("position").reset_index(drop=True)
    aliases = _aliases(bank, ids)
    frame["aliases"] = [aliases.get(i, []) for i in frame["item_id"]]
    frame["tags"] = [{c: str(v).split("|") for c in tag_cols if isinstance(v := row[c], str) and v}
                     for _, row in frame.iterrows()]
    return rec, frame


# What the model side may see: no answer key, no exposure or calibration data.
EXPORT_COLUMNS = ("form", "position", "item_id", "question", "choices", "item_type", "language", "n_choices")


def export_form(bank: Bank, name: str, out: Path, fmt: str | None = None) -> dict[str, Any]:
    """Write the form's items for the model side (JSONL or Parquet) without answer keys."""
    fmt = fmt or ("parquet" if out.suffix == ".parquet" else "jsonl")
    if fmt not in ("jsonl", "parquet"):
        raise InputError(f"--format {fmt!r}: use jsonl or parquet")
    rec, frame = form_items(bank, name)
    frame = frame.assign(form=name)
    rows = []
    for r in frame.to_dict("records"):
        choices = r.get("choices")
        rows.append({"form": name, "position": int(r["position"]), "item_id": str(r["item_id"]),
                     "question": r["question"],
                     "choices": None if choices is None or (isinstance(choices, float)) else [str(c) for c in choices],
                     "item_type": r["item_type"], "language": r["language"],
                     "n_choices": None if pd.isna(r.get("n_choices")) else int(r["n_choices"])})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if fmt == "jsonl":
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("form", pa.string()), ("position", pa.int32()), ("item_id", pa.string()),
                            ("question", pa.string()), ("choices", pa.list_(pa.string())), ("item_type", pa.string()),
                            ("language", pa.string()), ("n_choices", pa.int32())])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    tmp.replace(out)
    return {"form": name, "out": str(out), "format": fmt, "n_items": len(rows), "content_hash": rec["content_hash"],
            "columns": list(EXPORT_COLUMNS)}


def forms_table(bank: Bank) -> pd.DataFrame:
    frame = bank.forms()
    if not frame.empty:
        frame["published_in"] = [list(v) if isinstance(v, Iterable) and not isinstance(v, str) else []
                                 for v in frame["published_in"]]
    return frame
