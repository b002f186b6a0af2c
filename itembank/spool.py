"""The spool: where long runs put results without holding the bank.

A run appends batches as Parquet files under ``<bank>.spool/<run>/`` (written to a temporary name,
then renamed, so a batch file is either whole or absent). ``ingest`` moves them into the bank in one
short transaction per batch; responses are keyed by (run, item), so a batch ingested twice (say the
process died between the commit and the file's removal) adds nothing the second time.

A spool folder holds one ``kind`` of rows (its ``run.json`` says which; none said is ``responses``):
``responses`` (``adt run``, ``adt cat``, ``adt qc``: ingested by ``Bank.ingest_many``, keyed by run and item) or
``judgments`` (``adt judge run``: judge calls, ingested by ``Bank.add_judgments``, keyed by
``adtbase.verdicts.JUDGMENT_KEY``; the batch rows carry the candidate's ``run_id``, the folder is the judge
run's). Each ingest takes only its own kind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from adtbase.errors import InputError
from adtbase.verdicts import JUDGMENT_KEY

from .bank import Bank

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
KINDS = ("responses", "judgments")
# The columns a batch of each kind must have.
_NEEDS = {"responses": ("item_id", "score"), "judgments": JUDGMENT_KEY}


def _kind_of(meta: dict[str, Any]) -> str:
    return str(meta.get("kind", "responses"))


def spool_root(bank_path: Path) -> Path:
    return bank_path.with_name(bank_path.name + ".spool")


def run_dir(bank_path: Path, run_id: str) -> Path:
    """The run's spool folder. A run id with characters a folder name should not hold gets them replaced
    and a digest of the id appended, so ids that differ only there (``a+b``, ``a:b``, ``a_b``) never share a
    folder. A folder an older adt made under the bare replaced name is still found by its run.json."""
    root = spool_root(bank_path)
    safe = _SAFE.sub("_", run_id)
    if safe == run_id:
        return root / safe
    legacy = root / safe
    meta = legacy / "run.json"
    if meta.exists():
        try:
            if json.loads(meta.read_text()).get("run_id") == run_id:
                return legacy
        except (OSError, ValueError):
            pass
    return root / f"{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:12]}"


@dataclass
class SpoolWriter:
    bank_path: Path
    run_id: str
    kind: str = "responses"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"spool kind {self.kind!r} is not one of {', '.join(KINDS)}")
        self.folder = run_dir(self.bank_path, self.run_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "run.json"
        if not meta.exists():
            body = {"run_id": self.run_id} | ({"kind": self.kind} if self.kind != "responses" else {})
            # Atomically, as the batches: the driver lists spool folders while workers start (a reader that
            # opened run.json between its creation and its write read an empty file).
            tmp = meta.with_name(f"run.json.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_text(json.dumps(body))
            os.replace(tmp, meta)
        elif _kind_of(json.loads(meta.read_text())) != self.kind:
            raise InputError(f"spool of {self.run_id!r} holds another kind of rows than {self.kind}; "
                             "pick another run name")

    def write(self, frame: pd.DataFrame | pa.Table) -> Path:
        """Write one batch (a DataFrame or an Arrow table) atomically; returns its final path."""
        names = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
        if any(c not in names for c in _NEEDS[self.kind]):
            raise InputError(f"a spool batch of {self.kind} needs columns {', '.join(_NEEDS[self.kind])}")
        # Names sort in writing order (nanosecond clock), so ingest takes batches oldest first.
        final = self.folder / f"batch-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = final.with_suffix(".tmp")
        if isinstance(frame, pa.Table):
            pq.write_table(frame, tmp)
        else:
            frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final


def pending_batches(bank_path: Path, run_id: str | None = None, *, kind: str = "responses") -> dict[str, list[Path]]:
    """Batch files of ``kind`` waiting to be ingested, per run id, oldest first."""
    root = spool_root(bank_path)
    out: dict[str, list[Path]] = {}
    if not root.exists():
        return out
    folders = [run_dir(bank_path, run_id)] if run_id else sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders:
        meta = folder / "run.json"
        if not meta.exists():
            continue
        body = json.loads(meta.read_text())
        if _kind_of(body) != kind:
            continue
        rid = body["run_id"]
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


# Batch files moved into the bank per transaction: one short transaction carries many batches (the
# per-statement cost of an ingest is paid once per chunk, not once per file).
INGEST_CHUNK_FILES = 2_000
INGESTED = ".ingested"


def _read_batches(bank: Bank, files: list[tuple[str, Path]]) -> pd.DataFrame:
    """The rows of many batch files with their run ids, oldest batch first (DuckDB reads them at once)."""
    order = {str(f): (k, rid) for k, (rid, f) in enumerate(files)}
    frame = bank.conn.execute("SELECT * FROM read_parquet(?, union_by_name = true, filename = true)",
                              [list(order)]).df()
    keys = frame.pop("filename").map(order)
    frame["run_id"] = [k[1] for k in keys]
    frame["_batch"] = [k[0] for k in keys]
    frame = frame.sort_values("_batch", kind="stable").drop(columns="_batch")
    return frame.drop_duplicates(["run_id", "item_id"], keep="first")


def spooled_judgments(bank_path: Path, run_id: str) -> set[tuple[str, ...]]:
    """Keys (``JUDGMENT_KEY``) of the judge calls a judge run has in the spool but not (yet) in the bank."""
    keys: set[tuple[str, ...]] = set()
    for files in pending_batches(bank_path, run_id, kind="judgments").values():
        for f in files:
            frame = pd.read_parquet(f, columns=list(JUDGMENT_KEY))
            keys.update(tuple(str(v) for v in row) for row in frame.itertuples(index=False))
    return keys


def _read_judgments(bank: Bank, files: list[tuple[str, Path]]) -> pd.DataFrame:
    """The judge calls of many batch files at once (their own run ids: the candidates' runs)."""
    return bank.conn.execute("SELECT * FROM read_parquet(?, union_by_name = true)",
                             [[str(f) for _, f in files]]).df()


def ingest(bank: Bank, run_ids: Sequence[str] | None = None, *, cleanup_later: bool = False,
           kind: str = "responses") -> dict[str, Any]:
    """Move spooled batches into the bank, many batches per short transaction; returns counts.

    Files are removed only after their transaction commits; should the process die in between, the
    next ingest finds them again and adds nothing (responses are keyed by run and item). Within a
    chunk, the oldest batch's answer to an item wins, as it would have one batch at a time.
    With ``cleanup_later`` ingested files are only renamed (``*.ingested``, a fast metadata change;
    deleting a freshly fsynced file costs milliseconds) and ``cleanup`` deletes them once the caller
    has let go of the bank.
    """
    todo = [(rid, f) for rid, paths in pending_batches(bank.path, kind=kind).items()
            if run_ids is None or rid in run_ids for f in paths]
    new = 0
    for start in range(0, len(todo), INGEST_CHUNK_FILES):
        chunk = todo[start:start + INGEST_CHUNK_FILES]
        if kind == "judgments":
            new += bank.add_judgments(_read_judgments(bank, chunk))
        else:
            new += bank.ingest_many(_read_batches(bank, chunk))
        for _, f in chunk:
            if cleanup_later:
                os.replace(f, f.with_name(f.name + INGESTED))
            else:
                f.unlink()
    return {"batches": len(todo), f"new_{kind}": new}


def cleanup(bank_path: Path, run_id: str | None = None, *, partial_writes: bool = False) -> int:
    """Delete batch files that ``ingest(cleanup_later=True)`` left renamed; returns how many.

    ``partial_writes`` also deletes half-written ``*.tmp`` batches a killed writer left behind; only
    the process that owns the run (and is not writing) may ask for it.
    """
    root = spool_root(bank_path)
    if not root.exists():
        return 0
    folders = [run_dir(bank_path, run_id)] if run_id else [p for p in root.iterdir() if p.is_dir()]
    patterns = [f"batch-*{INGESTED}"] + (["batch-*.tmp"] if partial_writes else [])
    n = 0
    for folder in folders:
        for pattern in patterns:
            for f in folder.glob(pattern):
                f.unlink(missing_ok=True)
                n += 1
    return n
