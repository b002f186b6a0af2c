"""The spool: where long runs put results without holding the bank.

A run appends batches as Parquet files under ``<bank>.spool/<run>/`` (written to a temporary name,
then renamed, so a batch file is either whole or absent). ``ingest`` moves them into the bank in one
short transaction per batch; responses are keyed by (run, item), so a batch ingested twice (say the
process died between the commit and the file's removal) adds nothing the second time.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from adt.errors import InputError

from .bank import Bank

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def spool_root(bank_path: Path) -> Path:
    return bank_path.with_name(bank_path.name + ".spool")


def run_dir(bank_path: Path, run_id: str) -> Path:
    return spool_root(bank_path) / _SAFE.sub("_", run_id)


@dataclass
class SpoolWriter:
    bank_path: Path
    run_id: str

    def __post_init__(self) -> None:
        self.folder = run_dir(self.bank_path, self.run_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "run.json"
        if not meta.exists():
            meta.write_text(json.dumps({"run_id": self.run_id}))

    def write(self, frame: pd.DataFrame | pa.Table) -> Path:
        """Write one batch (a DataFrame or an Arrow table) atomically; returns its final path."""
        names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
        if "item_id" not in names or "score" not in names:
            raise InputError("a spool batch needs item_id and score columns")
        n = len(list(self.folder.glob("batch-*.parquet")))
        final = self.folder / f"batch-{n:06d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = final.with_suffix(".tmp")
        if isinstance(frame, pa.Table):
            pq.write_table(frame, tmp)
        else:
            frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final


def pending_batches(bank_path: Path, run_id: str | None = None) -> dict[str, list[Path]]:
    """Batch files waiting to be ingested, per run id, oldest first."""
    root = spool_root(bank_path)
    out: dict[str, list[Path]] = {}
    if not root.exists():
        return out
    folders = [run_dir(bank_path, run_id)] if run_id else sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders:
        meta = folder / "run.json"
        if not meta.exists():
            continue
        rid = json.loads(meta.read_text())["run_id"]
        files = sorted(folder.glob("batch-*.parquet"))
        if files:
            out[rid] = files
    return out


def spooled_items(bank_path: Path, run_id: str) -> set[str]:
    """Items a run has results for in the spool but not (yet) in the bank."""
    items: set[str] = set()
    for files in pending_batches(bank_path, run_id).values():
        for f in files:
            items.update(pd.read_parquet(f, columns=["item_id"])["item_id"])
    return items


def ingest(bank: Bank, run_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Move spooled batches into the bank (one transaction per batch); returns counts."""
    new = 0
    batches = 0
    for rid, files in pending_batches(bank.path).items():
        if run_ids is not None and rid not in run_ids:
            continue
        for f in files:
            new += bank.ingest_responses(rid, pd.read_parquet(f))
            f.unlink()
            batches += 1
    return {"batches": batches, "new_responses": new}
