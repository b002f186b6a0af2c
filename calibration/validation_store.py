"""Validation studies stored in the bank (the calibration room's tables, migrations/003).

``adt validate`` runs in a scratch copy of the bank and writes only its result here: the summary rows
(per split, strategy and form size), the settings, the calibration options every fold used, the date,
the bank's snapshot id and every per-form record. A study is stored once and never changed; the latest
is what a report shows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from adtbase.errors import CalibrationError
from adtbase.jsonable import to_jsonable
from itembank import Bank

from .store import _num
from .validation import SUMMARY_COLUMNS

# Column allow-lists: the only identifiers that reach SQL.
FORM_COLUMNS = ("split", "fold", "model", "strategy", "form_size", "form", "seed", "item_ids", "n_answered", "truth",
                "n_truth_items", "pred_acc", "pred_lo", "pred_hi", "raw_acc", "wilson_lo", "wilson_hi", "regression")
_INT_FORM = ("fold", "form_size", "form", "n_answered", "n_truth_items")
_INT_SUMMARY = ("form_size", "n_models", "n_intervals")
_TEXT = ("split", "strategy", "model")


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, default=str)


def save_validation(bank: Bank, *, summary: pd.DataFrame, forms: pd.DataFrame, settings: Mapping[str, Any],
                    calibration_settings: Mapping[str, Any], snapshot_id: str,
                    seconds: float | None = None, created_at: str | None = None) -> str:
    """Store one validation study; return its id (``val_`` + 16 hex).

    summary  one row per (split, strategy, form_size) with the columns of ``calibration.validation.summarize``.
    forms    the per-form records: ``FORM_COLUMNS`` (``item_ids`` a list per row); any further column goes,
             per row, into the JSON ``extra`` field (e.g. ``extrapolated``, ``person_fit``, ``sources``).
    created_at  ISO timestamp of the study (default: now, UTC). One transaction writes the three tables.
    """
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    missing += [c for c in FORM_COLUMNS if c not in forms.columns]
    if missing:
        raise CalibrationError(f"validation result lacks column(s) {missing}")
    created = created_at or datetime.now(UTC).isoformat(timespec="microseconds")
    settings_json, cal_json = _dumps(settings), _dumps(calibration_settings)
    row = bank.execute("SELECT coalesce(max(seq), 0) + 1 FROM validations").fetchone()
    seq = int(row[0]) if row else 1
    digest = hashlib.sha256(f"{snapshot_id}|{settings_json}|{created}|{seq}".encode()).hexdigest()
    val_id = f"val_{digest[:16]}"

    summ = summary[list(SUMMARY_COLUMNS)].copy()
    for c in SUMMARY_COLUMNS:
        if c in _TEXT:
            summ[c] = summ[c].astype(str)
        elif c in _INT_SUMMARY:
            summ[c] = summ[c].astype("int64")
        else:
            summ[c] = pd.to_numeric(summ[c], errors="coerce").astype(float)
    summ.insert(0, "validation_id", val_id)

    extra_cols = [c for c in forms.columns if c not in FORM_COLUMNS]
    fr = forms[list(FORM_COLUMNS)].copy()
    for c in FORM_COLUMNS:
        if c in _TEXT:
            fr[c] = fr[c].astype(str)
        elif c in _INT_FORM:
            fr[c] = pd.to_numeric(fr[c], errors="coerce").astype("Int64")
        elif c == "seed":
            fr[c] = pd.to_numeric(fr[c], errors="coerce").astype("Int64")
        elif c == "item_ids":
            fr[c] = [[str(i) for i in ids] for ids in fr[c]]
        else:
            fr[c] = pd.to_numeric(fr[c], errors="coerce").astype(float)
    fr["extra"] = [_dumps({c: r[c] for c in extra_cols}) for r in forms[extra_cols].to_dict("records")] \
        if extra_cols else "{}"
    fr.insert(0, "validation_id", val_id)

    n_models = int(forms["model"].nunique()) if len(forms) else 0
    with bank.transaction(), bank.registered({"_val_summary": summ, "_val_forms": fr}):
        bank.execute("INSERT INTO validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [val_id, seq, created, snapshot_id, settings_json, cal_json, n_models, len(forms), _num(seconds)])
        cols = ", ".join(("validation_id", *SUMMARY_COLUMNS))
        bank.execute(f"INSERT INTO validation_summary ({cols}) SELECT {cols} FROM _val_summary")  # noqa: S608
        fcols = ", ".join(("validation_id", *FORM_COLUMNS, "extra"))
        bank.execute(f"INSERT INTO validation_forms ({fcols}) SELECT {fcols} FROM _val_forms")  # noqa: S608
    return val_id


def list_validations(bank: Bank) -> pd.DataFrame:
    """Every stored validation study, oldest first."""
    return bank.execute("""SELECT validation_id, seq, created_at, snapshot_id, n_models, n_forms, seconds
                                FROM validations ORDER BY seq""").df()


def load_validation(bank: Bank, validation_id: str) -> dict[str, Any]:
    """One stored study: its record (settings parsed), ``summary`` and ``forms`` frames (``extra`` parsed
    into columns)."""
    frame = bank.execute("SELECT * FROM validations WHERE validation_id = ?", [validation_id]).df()
    if frame.empty:
        raise CalibrationError(f"no validation {validation_id!r}")
    rec: dict[str, Any] = {str(k): v for k, v in frame.iloc[0].to_dict().items()}
    rec["settings"] = json.loads(rec["settings"])
    rec["calibration_settings"] = json.loads(rec["calibration_settings"])
    for k in ("seq", "n_models", "n_forms"):
        rec[k] = int(rec[k])
    rec["seconds"] = _num(rec["seconds"])
    cols = ", ".join(SUMMARY_COLUMNS)
    rec["summary"] = bank.execute(f"""SELECT {cols} FROM validation_summary WHERE validation_id = ?
                                           ORDER BY split, strategy, form_size""",  # noqa: S608 - allow-list
                                       [validation_id]).df()
    fcols = ", ".join((*FORM_COLUMNS, "extra"))
    forms = bank.execute(f"""SELECT {fcols} FROM validation_forms WHERE validation_id = ?
                                  ORDER BY split, fold, model, strategy, form_size, form""",  # noqa: S608
                              [validation_id]).df()
    extra = pd.DataFrame([json.loads(x or "{}") for x in forms.pop("extra")], index=forms.index)
    forms["item_ids"] = [list(x) for x in forms["item_ids"]]
    rec["forms"] = pd.concat([forms, extra], axis=1) if len(extra.columns) else forms
    return rec


def latest_validation(bank: Bank) -> dict[str, Any] | None:
    """The latest stored study (see ``load_validation``), None when the bank has none."""
    row = bank.execute("SELECT validation_id FROM validations ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else load_validation(bank, str(row[0]))


__all__ = ["FORM_COLUMNS", "latest_validation", "list_validations", "load_validation", "save_validation"]
