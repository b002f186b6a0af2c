"""Judge calibrations stored in the bank (the calibration room's tables, migrations/005).

``adt judge validate`` writes one: the per-judge statistics (``judges.STAT_COLUMNS``), the panel's
out-of-fold agreement and the rater model fitted on every gold label (``RaterModel.to_dict``), with the
gold and verdict sources, the settings and the date. Stored once and never changed; the latest is what the
report shows and what ``adt judge run`` combines verdicts with (``latest_judge_calibration`` +
``RaterModel.from_dict``).
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

from .judges import STAT_COLUMNS

_INT = ("n_cases", "n_calls", "n_unparseable", "n_gold", "n_both_orders")
_TEXT = ("rater", "kappa_weights")


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), sort_keys=True, default=str)


def save_judge_calibration(bank: Bank, *, stats: pd.DataFrame, panel: Mapping[str, Any],
                           rater_model: Mapping[str, Any], settings: Mapping[str, Any], gold_source: str,
                           verdicts_source: str, n_cases: int, n_gold: int, n_classes: int,
                           created_at: str | None = None) -> str:
    """Store one judge calibration; return its id (``jcal_`` + 16 hex). One transaction writes both tables."""
    missing = [c for c in STAT_COLUMNS if c not in stats.columns]
    if missing:
        raise CalibrationError(f"judge statistics lack column(s) {missing}")
    created = created_at or datetime.now(UTC).isoformat(timespec="microseconds")
    settings_json, panel_json, model_json = _dumps(settings), _dumps(panel), _dumps(rater_model)
    row = bank.execute("SELECT coalesce(max(seq), 0) + 1 FROM judge_calibrations").fetchone()
    seq = int(row[0]) if row else 1
    digest = hashlib.sha256(f"{gold_source}|{verdicts_source}|{settings_json}|{created}|{seq}".encode()).hexdigest()
    jcal_id = f"jcal_{digest[:16]}"
    st = stats[list(STAT_COLUMNS)].copy()
    for c in STAT_COLUMNS:
        if c in _TEXT:
            st[c] = st[c].astype(str)
        elif c in _INT:
            st[c] = pd.to_numeric(st[c]).astype("int64")
        else:
            st[c] = pd.to_numeric(st[c], errors="coerce").astype(float)
    st.insert(0, "judge_calibration_id", jcal_id)
    with bank.transaction(), bank.registered({"_jcal_stats": st}):
        bank.execute("INSERT INTO judge_calibrations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [jcal_id, seq, created, gold_source, verdicts_source, settings_json, int(n_cases), int(n_gold),
                      int(n_classes), panel_json, model_json])
        cols = ", ".join(("judge_calibration_id", *STAT_COLUMNS))
        bank.execute(f"INSERT INTO judge_calibration_stats ({cols}) SELECT {cols} FROM _jcal_stats")  # noqa: S608
    return jcal_id


def list_judge_calibrations(bank: Bank) -> pd.DataFrame:
    """Every stored judge calibration, oldest first."""
    return bank.execute("""SELECT judge_calibration_id, seq, created_at, gold_source, verdicts_source, n_cases,
                                  n_gold, n_classes FROM judge_calibrations ORDER BY seq""").df()


def load_judge_calibration(bank: Bank, judge_calibration_id: str) -> dict[str, Any]:
    """One stored judge calibration: its record (settings, panel and rater_model parsed) and ``stats``."""
    frame = bank.execute("SELECT * FROM judge_calibrations WHERE judge_calibration_id = ?",
                         [judge_calibration_id]).df()
    if frame.empty:
        raise CalibrationError(f"no judge calibration {judge_calibration_id!r}")
    rec: dict[str, Any] = {str(k): v for k, v in frame.iloc[0].to_dict().items()}
    for k in ("settings", "panel", "rater_model"):
        rec[k] = json.loads(rec[k])
    for k in ("seq", "n_cases", "n_gold", "n_classes"):
        rec[k] = int(rec[k])
    cols = ", ".join(STAT_COLUMNS)
    rec["stats"] = bank.execute(f"""SELECT {cols} FROM judge_calibration_stats WHERE judge_calibration_id = ?
                                    ORDER BY rater""", [judge_calibration_id]).df()  # noqa: S608 - allow-list
    return rec


def latest_judge_calibration(bank: Bank) -> dict[str, Any] | None:
    """The latest stored judge calibration (see ``load_judge_calibration``), None when the bank has none."""
    row = bank.execute("SELECT judge_calibration_id FROM judge_calibrations ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else load_judge_calibration(bank, str(row[0]))


__all__ = ["latest_judge_calibration", "list_judge_calibrations", "load_judge_calibration", "save_judge_calibration"]
