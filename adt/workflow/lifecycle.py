"""The item lifecycle by rule (issue 14): promote pretest items, rest and return operational ones, retire.

The rules are pure functions of frames (``plan_moves``): the items (``stage``, exposure, ``rest_until_round``,
``runs_since_move``), the pretest items' evidence from their latest calibration, the open QC flags, the
contamination flags and the current round, under ``LifecycleRules`` (the bank's settings,
``itembank.LIFECYCLE_SETTINGS`` for their defaults). They return ``Move``s; ``lifecycle_plan`` gathers the inputs
from a bank and ``apply_moves`` writes the moves (``Bank.set_stage`` / ``Bank.retire(rule=)``) in one transaction.

Every threshold fires *at* its value: promote at ``n >= promote_min_responses`` and ``SE(b) <= promote_max_se_b``;
rest at ``runs since the item last came back >= rest_after_runs``; retire at ``runs >= retire_after_runs`` or
``publications >= retire_after_publications``. 0 turns a rest or retire threshold off.

- **promote** (pretest -> operational): an approved pretest item, in the latest calibration that calibrated it
  (status ``calibrated``: a full ``adt calibrate`` or an online one), with at least ``promote_min_responses``
  responses there, ``SE(b)`` at most ``promote_max_se_b``, no flag of that calibration's one flag rule
  (``adt calibration flags``: item fit, wrong key, parameter moves, exposure drift) and no open QC flag.
- **rest** (operational -> rested until round ``current + rest_rounds``): once the runs that exposed it since its
  last stage move (promotion or return; all its runs for an item never moved) reach ``rest_after_runs``. A rested
  item is out of the forms of the next ``rest_rounds`` rounds.
- **return** (rested -> operational): once the current round reaches its ``rest_until_round``.
- **retire** (any stage -> retired): once its runs reach ``retire_after_runs`` (``retire_exposure``) or its
  publications ``retire_after_publications`` (``retire_publications``), or, with ``retire_contaminated``, the
  latest calibration's exposure-drift check (Mantel-Haenszel, ``adt calibration flags``' ``exposure_drift``)
  flags it (``retire_contaminated``).

One move per item and pass, the first that applies in this order: retire, return, rest, promote.

Defaults (chosen for a bank whose forms are taken by ~300 models a round, so one form adds ~300 runs to each
of its items): promotion needs 100 responses (a third of one round's takers) and SE(b) <= 0.3 (the online
calibration's RMSE(b) at 100 responses, ``bench/online_calibration.py``); an item rests for 2 rounds after 900
runs (three forms) since it came back; it retires after 3000 runs (ten forms) or 10 publications. With the tier
threshold ``tier_high_runs`` at one round's takers (300), an item is 'medium' after one form and 'high' after
two, so high items serve about 2 forms between rests and 8-9 in all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from adtbase import lifecycle
from adtbase.errors import InputError
from itembank import LIFECYCLE_SETTINGS

# rule names (each move's ``rule``, in its event's payload)
PROMOTE, REST, RETURN = "promote", "rest", "return"
RETIRE_EXPOSURE, RETIRE_PUBLICATIONS, RETIRE_CONTAMINATED = "retire_exposure", "retire_publications", \
    "retire_contaminated"
RULES = (RETIRE_EXPOSURE, RETIRE_PUBLICATIONS, RETIRE_CONTAMINATED, RETURN, REST, PROMOTE)
_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")
_DEFAULTS = LIFECYCLE_SETTINGS


@dataclass(frozen=True)
class LifecycleRules:
    """The lifecycle thresholds (the bank's settings of the same names; see the module doc). The defaults are the
    bank's (``itembank.LIFECYCLE_SETTINGS``), written there once."""

    promote_min_responses: int = int(_DEFAULTS["promote_min_responses"])
    promote_max_se_b: float = float(_DEFAULTS["promote_max_se_b"])
    rest_after_runs: int = int(_DEFAULTS["rest_after_runs"])
    rest_rounds: int = int(_DEFAULTS["rest_rounds"])
    retire_after_runs: int = int(_DEFAULTS["retire_after_runs"])
    retire_after_publications: int = int(_DEFAULTS["retire_after_publications"])
    retire_contaminated: bool = _DEFAULTS["retire_contaminated"].lower() in _TRUE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# setting -> (kind, lowest value allowed)
_SETTINGS: dict[str, tuple[str, float]] = {
    "promote_min_responses": ("int", 1), "promote_max_se_b": ("float", 0.0), "rest_after_runs": ("int", 0),
    "rest_rounds": ("int", 1), "retire_after_runs": ("int", 0), "retire_after_publications": ("int", 0),
    "retire_contaminated": ("bool", 0)}


def rules_from_settings(settings: Mapping[str, Any]) -> LifecycleRules:
    """The rules from a bank's settings (missing keys: the defaults); every bad value named in one InputError."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, (kind, low) in _SETTINGS.items():
        if key not in settings:
            continue
        text = str(settings[key]).strip()
        if kind == "bool":
            if text.lower() not in _TRUE + _FALSE:
                problems.append(f"{key}={text!r}: expected true or false")
            else:
                values[key] = text.lower() in _TRUE
            continue
        try:
            value: float = int(text) if kind == "int" else float(text)
        except ValueError:
            problems.append(f"{key}={text!r}: expected {'a whole number' if kind == 'int' else 'a number'}")
            continue
        if kind == "float" and not (value > low and value == value and value != float("inf")):
            problems.append(f"{key}={text!r}: expected a finite number above {low:g}")
        elif kind == "int" and value < low:
            problems.append(f"{key}={text!r}: expected a whole number >= {low:g}"
                            + (" (0 turns the rule off)" if low == 0 else ""))
        else:
            values[key] = value
    if problems:
        raise InputError(f"lifecycle settings: {len(problems)} bad value(s) (set with `adt bank settings KEY VALUE`):"
                         "\n  " + "\n  ".join(problems))
    return LifecycleRules(**values)


@dataclass(frozen=True)
class Move:
    """One item's move: from stage ``from_stage`` to ``to_stage`` by ``rule`` because ``reason``."""

    item_id: str
    from_stage: str
    to_stage: str
    rule: str
    reason: str
    until_round: int | None = None


@dataclass(frozen=True)
class LifecyclePlan:
    """What a pass would do: the moves, the current round, why pretest items were held back, and notes."""

    round_no: int
    rules: LifecycleRules
    moves: tuple[Move, ...]
    held: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["item_id", "why", "blockers"]))
    notes: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """Moves per ``from -> to (rule)``."""
        out: dict[str, int] = {}
        for m in self.moves:
            k = f"{m.from_stage} -> {m.to_stage} ({m.rule})"
            out[k] = out.get(k, 0) + 1
        return out

    def held_counts(self) -> dict[str, int]:
        """Pretest items held back per blocker (``BLOCKERS``; an item may have several)."""
        codes = self.held["blockers"].str.split("|").explode()
        return {str(k): int(v) for k, v in codes.value_counts().items()} if len(codes) else {}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(m) for m in self.moves],
                            columns=["item_id", "from_stage", "to_stage", "rule", "reason", "until_round"])


# -- the pure rules -------------------------------------------------------------------------------
EVIDENCE_COLUMNS = ("item_id", "calibration_id", "n_responses", "se_b", "fit_flags")
# why a pretest item is held back
BLOCKERS = {"uncalibrated": "no calibration calibrated it yet", "few_responses": "fewer than promote_min_responses",
            "se_b": "SE(b) above promote_max_se_b", "fit_flag": "flagged by its calibration's flag rule",
            "qc_flag": "an open QC flag"}


def pretest_verdicts(items: pd.DataFrame, evidence: pd.DataFrame, qc_flags: Mapping[str, Sequence[str]],
                     rules: LifecycleRules) -> pd.DataFrame:
    """Each approved pretest item's verdict: ``item_id, promote, why, blockers`` (``BLOCKERS`` codes, "|"-joined). ``evidence`` has one row per item in the
    latest calibration that calibrated it (``EVIDENCE_COLUMNS``; ``fit_flags`` a list of that calibration's flags
    on it); ``qc_flags`` maps items to their open QC flags."""
    pre = items[(items["stage"] == lifecycle.PRETEST) & (items["review_state"] == "approved")]
    ev = evidence.set_index("item_id") if len(evidence) else pd.DataFrame(columns=list(EVIDENCE_COLUMNS[1:]))
    rows = []
    for item_id in pre["item_id"]:
        if item_id not in ev.index:
            rows.append((item_id, False, "not calibrated yet", "uncalibrated"))
            continue
        e = ev.loc[item_id]
        n, se = float(e["n_responses"]), float(e["se_b"])  # NaN (not recorded) fails its test
        why, codes = [], []
        if not n >= rules.promote_min_responses:
            why.append(f"{'?' if n != n else int(n)} responses < {rules.promote_min_responses}")
            codes.append("few_responses")
        if not se <= rules.promote_max_se_b:
            why.append(f"SE(b) {se:.3g} > {rules.promote_max_se_b:g}")
            codes.append("se_b")
        if list(e["fit_flags"]):
            why.append("flagged: " + ", ".join(e["fit_flags"]))
            codes.append("fit_flag")
        if qc_flags.get(item_id):
            why.append("open QC flag: " + ", ".join(qc_flags[item_id]))
            codes.append("qc_flag")
        ok = not why
        rows.append((item_id, ok, f"calibration {e['calibration_id']}: {int(n)} responses, SE(b) {se:.3g}, no flag"
                     if ok else f"calibration {e['calibration_id']}: " + "; ".join(why), "|".join(codes)))
    return pd.DataFrame(rows, columns=["item_id", "promote", "why", "blockers"])


def plan_moves(items: pd.DataFrame, verdicts: pd.DataFrame, contaminated: Mapping[str, str], round_no: int,
               rules: LifecycleRules) -> list[Move]:
    """The moves of one pass (see the module doc). ``items``: ``item_id, stage, exposure_runs,
    exposure_publications, rest_until_round, runs_since_move`` (NaN/None: the item never moved, so all its runs);
    ``verdicts``: ``pretest_verdicts``; ``contaminated``: item -> why."""
    moves: list[Move] = []
    promote = dict(zip(verdicts["item_id"], zip(verdicts["promote"], verdicts["why"], strict=True), strict=True))
    for row in items.itertuples(index=False):
        item, stage = str(row.item_id), str(row.stage)
        if stage == lifecycle.RETIRED:
            continue
        runs, pubs = int(row.exposure_runs), int(row.exposure_publications)
        if rules.retire_after_runs and runs >= rules.retire_after_runs:
            moves.append(Move(item, stage, lifecycle.RETIRED, RETIRE_EXPOSURE,
                              f"exposed by {runs} runs >= retire_after_runs {rules.retire_after_runs}"))
        elif rules.retire_after_publications and pubs >= rules.retire_after_publications:
            moves.append(Move(item, stage, lifecycle.RETIRED, RETIRE_PUBLICATIONS,
                              f"{pubs} publications >= retire_after_publications {rules.retire_after_publications}"))
        elif rules.retire_contaminated and item in contaminated:
            moves.append(Move(item, stage, lifecycle.RETIRED, RETIRE_CONTAMINATED, f"contaminated: {contaminated[item]}"))
        elif stage == lifecycle.RESTED:
            until = None if pd.isna(row.rest_until_round) else int(row.rest_until_round)
            if until is None or round_no >= until:
                moves.append(Move(item, stage, lifecycle.OPERATIONAL, RETURN,
                                  f"rested until round {'?' if until is None else until}; round {round_no} has come"))
        elif stage == lifecycle.OPERATIONAL:
            since = runs if pd.isna(row.runs_since_move) else int(row.runs_since_move)
            if rules.rest_after_runs and since >= rules.rest_after_runs:
                until = round_no + rules.rest_rounds
                moves.append(Move(item, stage, lifecycle.RESTED, REST,
                                  f"{since} runs since it last came back >= rest_after_runs {rules.rest_after_runs}; "
                                  f"out of rounds {round_no + 1}-{until}", until_round=until))
        elif stage == lifecycle.PRETEST and promote.get(item, (False, ""))[0]:
            moves.append(Move(item, stage, lifecycle.OPERATIONAL, PROMOTE, promote[item][1]))
    return moves


# -- the bank's side --------------------------------------------------------------------------------
def current_round(bank: Any, round_no: int | None = None) -> int:
    """``round_no`` when given (checked), else the bank's latest round (0 before any)."""
    if round_no is not None:
        if round_no < 0:
            raise InputError(f"--round {round_no}: expected a round number >= 0")
        return int(round_no)
    return bank.latest_round() or 0


class _Flags:
    """``adt calibration flags``' report per calibration (``calibration_flags``, the one flag rule), computed once
    per calibration a pass reads (promotion evidence and the contamination check share the latest one's)."""

    def __init__(self, bank: Any) -> None:
        self.bank = bank
        self.done: dict[str, Any] = {}

    def __call__(self, cal_id: str) -> Any:
        from adt.workflow.calibrate import calibration_flags

        if cal_id not in self.done:
            self.done[cal_id] = calibration_flags(self.bank, cal_id)
        return self.done[cal_id]


def _calibration_evidence(bank: Any, cal_ids: Sequence[str], pretest_ids: Sequence[str], flags_of: _Flags,
                          notes: list[str]) -> pd.DataFrame:
    """``EVIDENCE_COLUMNS`` for the pretest items: each from the latest calibration (``cal_ids``, oldest first)
    that calibrated it, with that calibration's flags."""
    from calibration import calibration_params_frame

    remaining = set(pretest_ids)
    rows: list[pd.DataFrame] = []
    for cal_id in reversed(list(cal_ids)):
        if not remaining:
            break
        frame = calibration_params_frame(bank, cal_id)
        hit = frame[frame["item_id"].isin(pd.Index(sorted(remaining))) & (frame["status"] == "calibrated")]
        if hit.empty:
            continue
        try:
            flags = flags_of(cal_id).flags
            by_item = flags.groupby("item_id")["flag"].apply(lambda s: sorted(set(s))).to_dict() if len(flags) else {}
            fit_of = {i: by_item.get(i, []) for i in hit["item_id"]}
        except Exception as e:  # noqa: BLE001 - no fit check is no promotion, said so
            notes.append(f"calibration {cal_id}: flags not computed ({e}); its items are not promoted")
            fit_of = {i: [f"fit not checked: {type(e).__name__}"] for i in hit["item_id"]}
        rows.append(pd.DataFrame({"item_id": hit["item_id"].astype(str), "calibration_id": cal_id,
                                  "n_responses": hit["n_responses"].to_numpy(dtype=float),
                                  "se_b": hit["se_b"].to_numpy(dtype=float),
                                  "fit_flags": [fit_of[i] for i in hit["item_id"]]}))
        remaining -= set(hit["item_id"])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(EVIDENCE_COLUMNS))


def _contaminated(cal_ids: Sequence[str], flags_of: _Flags, notes: list[str]) -> dict[str, str]:
    """Items the latest calibration's exposure-drift check flags (``exposure_drift`` of ``adt calibration
    flags``): item -> reason. No calibration, or no published form: none, with a note."""
    if not cal_ids:
        notes.append("retire_contaminated skipped: the bank has no calibration to run the drift check on")
        return {}
    report = flags_of(cal_ids[-1])
    if report.drift is None:
        notes.append(f"retire_contaminated skipped: {report.drift_note}")
        return {}
    hit = report.flags[report.flags["flag"] == "exposure_drift"]
    notes.append(f"retire_contaminated: exposure-drift check of calibration {report.calibration_id}")
    return dict(zip(hit["item_id"].astype(str), hit["reason"].astype(str), strict=True))


def lifecycle_plan(bank: Any, *, round_no: int | None = None) -> LifecyclePlan:
    """The moves the rules make on ``bank`` now (nothing written)."""
    rules = rules_from_settings(bank.settings())
    rnd = current_round(bank, round_no)
    notes: list[str] = []
    items = bank.items(include_retired=True)
    items = items[items["stage"] != lifecycle.RETIRED]
    since = bank.runs_since_stage_move()
    items = items.assign(runs_since_move=items["item_id"].map(since))
    pre_ids = items.loc[(items["stage"] == lifecycle.PRETEST) & (items["review_state"] == "approved"), "item_id"]
    from calibration import list_calibrations

    cal_ids = [str(c) for c in list_calibrations(bank)["calibration_id"]]
    flags_of = _Flags(bank)
    evidence = _calibration_evidence(bank, cal_ids, list(pre_ids), flags_of, notes)
    qc = {k: v for k, v in bank.qc_flags(list(pre_ids)).items()} if len(pre_ids) else {}
    from adtbase.qc import current_flags

    qc_open = {i: current_flags(c) for i, c in qc.items() if current_flags(c)}
    verdicts = pretest_verdicts(items, evidence, qc_open, rules)
    contaminated = _contaminated(cal_ids, flags_of, notes) if rules.retire_contaminated else {}
    moves = plan_moves(items, verdicts, contaminated, rnd, rules)
    held = verdicts.loc[~verdicts["promote"].astype(bool), ["item_id", "why", "blockers"]].reset_index(drop=True)
    return LifecyclePlan(rnd, rules, tuple(moves), held, tuple(notes))


def apply_moves(bank: Any, moves: Sequence[Move]) -> int:
    """Write ``moves`` in one transaction: one ``stage`` (or ``retired``) event each, with its rule and reason."""
    n = 0
    with bank.transaction():
        n += bank.set_stages([{"item_id": m.item_id, "stage": m.to_stage, "reason": m.reason, "rule": m.rule,
                               "until_round": m.until_round} for m in moves if m.to_stage != lifecycle.RETIRED])
        for m in moves:   # few a round; each names its own reason
            if m.to_stage == lifecycle.RETIRED:
                n += bank.retire([m.item_id], m.reason, rule=m.rule)
    return n
