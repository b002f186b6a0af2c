"""Audit trails: trace an item or a form back to where it came from, and check a bank export offline.

Everything here reads through ``Bank``'s public methods (``item``, ``item_history``, ``runs``,
``form``, ``verify``) or, for ``verify_export``, only the exported files: no bank is opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from adtbase.errors import InputError
from calibration import item_parameter_history
from itembank import Bank, Head, snapshot, verify_rows

PROVENANCE_FIELDS = ("source", "source_version", "license", "origin", "generator", "generator_params",
                     "parent_item_id", "review_state", "retired_reason", "import_batch", "created_at")
CONTENT_FIELDS = ("item_id", "question", "choices", "answer", "item_type", "language", "n_choices")
EXPOSURE_FIELDS = ("exposure_runs", "exposure_publications", "first_exposure_round", "last_exposure_round",
                   "first_exposed_at", "last_exposed_at", "frequency_tier", "difficulty_band", "calibrated_b")
# Columns of the calibration hook's table, in the order they are shown.
CALIBRATION_COLUMNS = ("calibration_id", "created_at", "model", "status", "a", "b", "c", "d",
                       "se_a", "se_b", "se_c", "se_d")


# -- items ----------------------------------------------------------------------------------------
def _payload(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def item_trail(bank: Bank, ref: str, calibration_rows: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Everything an auditor asks about one item (an id or SOURCE:EXTERNAL_ID).

    ``calibration_rows`` are the item's parameters across calibrations (see ``calibration_table``);
    when None they are looked up with ``item_calibrations``.
    """
    rec = bank.item(ref)
    item_id = rec["item_id"]
    events = bank.item_history(item_id)
    payloads = [_payload(p) for p in events["payload"]]
    kinds = events["kind"].tolist()

    forms = [{"form": r, "position": p.get("position"), "at": ts}
             for k, r, ts, p in zip(kinds, events["ref"], events["ts"], payloads, strict=True) if k == "put_in_form"]
    publications = [{"form": r, "round": p.get("round"), "at": ts}
                    for k, r, ts, p in zip(kinds, events["ref"], events["ts"], payloads, strict=True) if k == "published"]
    answered = pd.DataFrame([{"run_id": r, "score": p.get("score"), "at": ts}
                             for k, r, ts, p in zip(kinds, events["ref"], events["ts"], payloads, strict=True)
                             if k == "answered"], columns=["run_id", "score", "at"])
    runs_meta = bank.runs()
    if not answered.empty and not runs_meta.empty:
        meta = runs_meta[["run_id", "model", "kind", "form_name", "round_no"]].rename(columns={"round_no": "round"})
        answered = answered.merge(meta, on="run_id", how="left")
    runs = [{k: _plain(v) for k, v in r.items()} for r in answered.to_dict("records")]

    report = bank.verify()
    own_seqs = [int(s) for s in events["seq"]]
    bad = report.first_bad_seq
    trail = {
        "item_id": item_id,
        "content": {k: rec.get(k) for k in CONTENT_FIELDS},
        "tags": rec.get("tags", {}),
        "provenance": {k: rec.get(k) for k in PROVENANCE_FIELDS},
        "aliases": rec.get("aliases", []),
        "parent_item": rec.get("parent_item_id"),
        "derived_items": rec.get("derived_items", []),
        "exposure": {k: _plain(rec.get(k)) for k in EXPOSURE_FIELDS},
        "forms": forms,
        "publications": publications,
        "runs": runs,
        "events": [{"seq": int(s), "ts": t, "kind": k, "ref": r, "payload": p}
                   for s, t, k, r, p in zip(events["seq"], events["ts"], kinds, events["ref"], payloads, strict=True)],
        "history": {
            "chain_ok": report.ok, "n_events": report.n_events, "head": str(report.head),
            "first_bad_event": bad, "problem": report.problem,
            # The item's own events verify when none of them lies at or after the first bad event.
            "item_events_ok": report.ok or (bad is not None and all(s < bad for s in own_seqs)),
        },
    }
    rows = item_calibrations(bank, item_id) if calibration_rows is None else list(calibration_rows)
    trail["calibrations"] = calibration_table(rows).to_dict("records") if rows else []
    return trail


def _plain(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def item_calibrations(bank: Bank, item_id: str) -> list[dict[str, Any]]:
    """The item's parameters in every calibration that covered it, oldest first
    (``calibration.store.item_parameter_history``: rows with calibration_id, a, b, c, d, se_a, ...)."""
    return [dict(r) for r in item_parameter_history(bank, item_id)]


def calibration_table(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Render parameter rows ({calibration_id, a, b, c, d, se_a, se_b, ...}) as one ordered table.

    Missing columns are left empty; unknown extra columns are kept after the known ones; rows keep
    their order (callers pass them oldest first).
    """
    if not rows:
        return pd.DataFrame(columns=list(CALIBRATION_COLUMNS[:8]))
    frame = pd.DataFrame([dict(r) for r in rows])
    if "calibration_id" not in frame.columns:
        raise InputError("calibration rows need a calibration_id field")
    if "se" in frame.columns and isinstance(frame["se"].iloc[0], Mapping):
        # {"se": {"a": .., "b": ..}} -> se_a, se_b
        for key in ("a", "b", "c", "d"):
            frame[f"se_{key}"] = [s.get(key) if isinstance(s, Mapping) else None for s in frame["se"]]
        frame = frame.drop(columns=["se"])
    known = [c for c in CALIBRATION_COLUMNS if c in frame.columns]
    return frame[known + [c for c in frame.columns if c not in known]]


def format_item_trail(trail: Mapping[str, Any]) -> str:
    """The human-readable audit of one item."""
    lines = [f"item {trail['item_id']}"]
    content = trail["content"]
    lines.append(f"  question: {content['question']}")
    if content.get("choices"):
        for i, choice in enumerate(content["choices"]):
            lines.append(f"    {chr(65 + i)}. {choice}")
    lines.append(f"  answer: {content.get('answer')}   type: {content.get('item_type')}   "
                 f"language: {content.get('language')}")
    lines.append("  tags: " + (", ".join(f"{k}={'|'.join(v)}" for k, v in sorted(trail["tags"].items())) or "(none)"))
    prov = trail["provenance"]
    lines.append("  provenance: " + ", ".join(f"{k}={v}" for k, v in prov.items() if v is not None))
    lines.append("  aliases: " + (", ".join(trail["aliases"]) or "(none)"))
    lines.append(f"  parent: {trail['parent_item'] or '(none)'}   derived: {', '.join(trail['derived_items']) or '(none)'}")
    lines.append(f"  forms ({len(trail['forms'])}):")
    lines += [f"    {f['form']} position {f['position']} at {f['at']}" for f in trail["forms"]]
    lines.append(f"  publications ({len(trail['publications'])}):")
    lines += [f"    {p['form']} round {p['round']} at {p['at']}" for p in trail["publications"]]
    lines.append(f"  runs ({len(trail['runs'])}):")
    lines += [f"    {r['run_id']} model {r.get('model')}"
              + (f" round {r['round']}" if r.get("round") is not None else "")
              + f" score {r['score']} at {r['at']}" for r in trail["runs"]]
    lines.append(f"  calibrations ({len(trail['calibrations'])}):")
    if trail["calibrations"]:
        table = pd.DataFrame(trail["calibrations"]).to_string(index=False)
        lines += ["    " + line for line in table.splitlines()]
    lines.append(f"  events ({len(trail['events'])}):")   # its own history: created, tagged, review decisions, ...
    lines += [f"    {e['seq']} {e['ts']} {e['kind']}"
              + (f" {json.dumps(e['payload'], ensure_ascii=False, sort_keys=True, default=str)}" if e["payload"] else "")
              for e in trail["events"]]
    hist = trail["history"]
    if hist["chain_ok"]:
        lines.append(f"  history: verifies ({hist['n_events']} events, head {hist['head']})")
    else:
        lines.append(f"  history: does NOT verify: {hist['problem']} (first bad event {hist['first_bad_event']}); "
                     f"this item's events {'are before it' if hist['item_events_ok'] else 'are affected'}")
    return "\n".join(lines)


# -- forms ----------------------------------------------------------------------------------------
def form_trail(bank: Bank, name: str) -> dict[str, Any]:
    """Spec, strategy, seed, bank snapshot and calibration a form was built from, and its runs."""
    rec = bank.form(name)
    runs = bank.runs()
    mine = runs[runs["form_name"] == name] if not runs.empty else runs
    return {
        "name": name,
        "spec": rec["spec"], "strategy": rec["strategy"], "seed": _plain(rec["seed"]),
        "snapshot_id": rec["snapshot_id"], "calibration_id": rec["calibration_id"],
        "content_hash": rec["content_hash"], "n_items": _plain(rec["n_items"]),
        "n_uncalibrated": _plain(rec["n_uncalibrated"]), "objectives": rec["objectives"],
        "created_at": rec["created_at"], "item_ids": rec["item_ids"], "publications": rec["publications"],
        "runs": [{k: _plain(v) for k, v in r.items()} for r in
                 mine[["run_id", "model", "kind", "round_no", "status", "created_at"]].to_dict("records")]
        if not mine.empty else [],
    }


@dataclass(frozen=True)
class Rederivation:
    """The outcome of rebuilding a form from its recorded inputs."""

    ok: bool
    recorded_hash: str
    rebuilt_hash: str
    n_recorded: int
    n_rebuilt: int
    first_difference: int | None   # first position where the item lists differ
    problem: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RebuildFn = Callable[[dict[str, Any]], tuple[Sequence[str], str]]


def rederive_form(bank: Bank, name: str, rebuild_fn: RebuildFn) -> Rederivation:
    """Rebuild form ``name`` with ``rebuild_fn`` and compare it with what the bank recorded.

    ``rebuild_fn(form_record)`` gets ``Bank.form(name)`` (spec, strategy, seed, snapshot_id,
    calibration_id, ...) and returns ``(item_ids, content_hash)`` of the form it rebuilt; the
    integrator passes a function that runs the sampler on the recorded spec.
    """
    rec = bank.form(name)
    rebuilt_ids, rebuilt_hash = rebuild_fn(dict(rec))
    rebuilt_ids = list(rebuilt_ids)
    recorded_ids = list(rec["item_ids"])
    diff = next((i for i, (x, y) in enumerate(zip(recorded_ids, rebuilt_ids, strict=False)) if x != y), None)
    if diff is None and len(recorded_ids) != len(rebuilt_ids):
        diff = min(len(recorded_ids), len(rebuilt_ids))
    problem = None
    if rebuilt_hash != rec["content_hash"]:
        problem = f"rebuilt hash {rebuilt_hash[:16]} differs from the recorded {rec['content_hash'][:16]}"
        if diff is not None:
            problem += f"; item lists first differ at position {diff}"
    elif diff is not None:
        problem = f"hashes agree but the item lists differ at position {diff}"
    return Rederivation(problem is None, rec["content_hash"], rebuilt_hash, len(recorded_ids), len(rebuilt_ids),
                        diff, problem)


# -- exports --------------------------------------------------------------------------------------
def export_bank(bank: Bank, out_dir: Path) -> dict[str, Any]:
    """Parquet of every table + manifest (sha256 per file, history head, snapshot id)."""
    return snapshot.export(bank, out_dir)


@dataclass(frozen=True)
class ExportCheck:
    ok: bool
    files_checked: int
    n_events: int
    head: str
    bad_file: str | None
    first_bad_event: int | None
    problems: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


EVENT_COLUMNS = ["seq", "ts", "kind", "item_id", "ref", "payload", "prev_hash", "hash"]


def verify_export(folder: Path) -> ExportCheck:
    """Check an export with no bank: every file's sha256, then the history chain it carries, then the rows its batch
    events digest (``snapshot.verify_export_rows``).

    The chain in events.parquet is recomputed event by event and compared with the manifest's head,
    so an edited event is caught even when the file's sha256 in the manifest was updated to match.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    manifest = snapshot.read_manifest(folder)
    tables = manifest.get("tables")
    head = manifest.get("history_head")
    if not isinstance(tables, dict) or not isinstance(head, dict):
        raise InputError(f"{folder}/{snapshot.MANIFEST}: missing 'tables' or 'history_head'")
    problems: list[str] = []
    bad_file = None
    for _table, entry in sorted(tables.items()):
        path = folder / str(entry.get("file", ""))
        if not path.is_file():
            problems.append(f"{entry.get('file')}: missing")
        elif snapshot.file_sha256(path) != entry.get("sha256"):
            problems.append(f"{entry.get('file')}: sha256 does not match the manifest")
        else:
            continue
        bad_file = bad_file or str(entry.get("file"))
    expected = Head(int(head["n_events"]), str(head["hash"]))
    events_file = folder / str(tables.get("events", {}).get("file", "events.parquet"))
    first_bad = None
    n_events = 0
    if not events_file.is_file():
        problems.append(f"{events_file.name}: missing, the history chain cannot be checked")
    else:
        try:
            frame = pq.read_table(events_file).to_pandas()
        except Exception as exc:  # a truncated or garbled Parquet file
            problems.append(f"{events_file.name}: not readable as Parquet ({exc})")
            frame = None
        if frame is not None:
            missing = [c for c in EVENT_COLUMNS if c not in frame.columns]
            if missing:
                problems.append(f"{events_file.name}: columns {', '.join(missing)} missing")
            else:
                # The export writes rows ordered by every column, seq first: storage order is seq order.
                rows = frame[EVENT_COLUMNS].astype(object).where(frame[EVENT_COLUMNS].notna(), None)
                report = verify_rows(rows.itertuples(index=False, name=None), expected)
                n_events = report.n_events
                if not report.ok:
                    first_bad = report.first_bad_seq
                    problems.append(f"{events_file.name}: history chain: {report.problem}")
                elif not problems and (bad := snapshot.verify_export_rows(folder, manifest)) is not None:
                    first_bad = bad[0]   # the chain holds, but rows a batch event digests were changed
                    problems.append(f"rows against their batch events: {bad[1]}")
    return ExportCheck(not problems, len(tables), n_events, f"{expected.n_events}:{expected.hash}", bad_file,
                       first_bad, tuple(problems))
