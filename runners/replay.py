"""The ``replay`` backend: a model's recorded answers are its responses to whatever it is given.

The record is a long table with one row per (model, item): e.g. ``mmlu_pro/responses.parquet`` with
``model, question_id, pred, pred_missing, correct``. Requests carry bank item ids; ``aliases`` maps a
bank id to the id used in the record (ids without an alias are looked up as they are). The recorded
score is the result's score (the record was scored by its own harness); the recorded prediction is
the raw output and the extracted answer. A recorded row with no prediction (``pred_missing``) is an
answer that scored 0. With ``rescore=True`` the recorded prediction is scored again against the request's
current key (``runners.scoring``), and the recorded score is not used: ``adt qc`` checks keys that way, since
a stored correct/incorrect says nothing once the key is in question. An item the model has no row for was never answered: ``RunnerError`` naming
item and model, or, with ``skip_missing=True``, a result with ``error="missing"`` that callers drop.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adtbase.errors import InputError, RunnerError
from runners.base import Request, Result, Runner
from runners.scoring import score_request


class ReplayRunner(Runner):
    """Answers from a recorded response table for one model."""

    name = "replay"

    def __init__(self, responses: pd.DataFrame | str | Path, model: str, *, aliases: Mapping[str, Any] | None = None,
                 model_col: str = "model", item_col: str = "question_id", score_col: str = "correct",
                 output_col: str | None = "pred", missing_col: str | None = "pred_missing",
                 skip_missing: bool = False, rescore: bool = False) -> None:
        source = str(responses) if not isinstance(responses, pd.DataFrame) else "the given DataFrame"
        frame = self._load(responses, source)
        needed = [model_col, item_col, score_col] + [c for c in (output_col, missing_col) if c]
        absent = [c for c in needed if c not in frame.columns]
        if absent:
            raise InputError(f"{source}: missing column(s) {absent} (has {list(frame.columns)})")
        mine = frame[frame[model_col].astype(str) == str(model)]
        if mine.empty:
            models = sorted(frame[model_col].astype(str).unique())
            close = difflib.get_close_matches(str(model), models, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"{source}: no responses of model {model!r}{hint} ({len(models)} models recorded)")
        keys = mine[item_col].astype(str).to_numpy()
        dupes = pd.Index(keys)[pd.Index(keys).duplicated()]
        if len(dupes):
            raise InputError(f"{source}: model {model!r} has several rows for item {dupes[0]!r} ({item_col})")
        scores = pd.to_numeric(mine[score_col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~((scores >= 0) & (scores <= 1)))
        if bad.size:
            raise InputError(f"{source}: model {model!r}, item {keys[bad[0]]!r}: {score_col} "
                             f"{mine[score_col].iloc[bad[0]]!r} is not a score in [0, 1]")
        outputs = (mine[output_col].to_numpy(dtype=object) if output_col else np.full(len(mine), None, dtype=object))
        missing = (mine[missing_col].fillna(False).to_numpy(dtype=bool) if missing_col
                   else np.zeros(len(mine), dtype=bool))
        self.model = str(model)
        self.source = source
        self.skip_missing = bool(skip_missing)
        self.rescore = _flag(rescore, "rescore")
        self.aliases = {str(k): str(v) for k, v in (aliases or {}).items()}
        self._record: dict[str, tuple[float, str | None]] = {
            key: (float(s), None if (miss or out is None or (isinstance(out, float) and np.isnan(out))) else str(out))
            for key, s, out, miss in zip(keys, scores, outputs, missing, strict=True)
        }

    @staticmethod
    def _load(responses: pd.DataFrame | str | Path, source: str) -> pd.DataFrame:
        if isinstance(responses, pd.DataFrame):
            return responses
        path = Path(responses)
        if not path.is_file():
            raise InputError(f"replay responses file {source} not found")
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise InputError(f"replay responses file {source} is not readable parquet: {exc}") from exc

    @property
    def n_recorded(self) -> int:
        return len(self._record)

    def recorded_id(self, item_id: str) -> str:
        return self.aliases.get(item_id, item_id)

    def score(self, requests: Sequence[Request]) -> list[Result]:
        results = []
        for req in requests:
            t0 = time.perf_counter()
            key = self.recorded_id(req.item_id)
            hit = self._record.get(key)
            if hit is None:
                if not self.skip_missing:
                    shown = req.item_id if key == req.item_id else f"{req.item_id} (recorded id {key})"
                    raise RunnerError(f"replay: model {self.model!r} never answered item {shown} "
                                      f"in {self.source}; pass skip_missing=True to skip such items")
                results.append(Result(req.item_id, "", None, 0.0, error="missing"))
                continue
            score, pred = hit
            extracted = pred
            if self.rescore:
                extracted, score = score_request(req, pred or "")
            results.append(Result(req.item_id, pred or "", extracted, score,
                                  latency_s=time.perf_counter() - t0))
        return results


def _flag(value: Any, name: str) -> bool:
    """A boolean backend argument, also as command-line text (``--backend-arg rescore=true``)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InputError(f"replay backend: {name}={value!r} is not true or false")
