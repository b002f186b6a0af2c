"""Replay of the 20 MMLU-Pro models over a 1,000-item form: how fast responses get into the bank.

Floor (issue 5): >= 20,000 responses/s ingested into the bank.

Builds a bank from ``../shared/data/mmlu_pro/items.parquet`` (the import options of
tests/itembank/test_real_data.py), saves a seeded 1,000-item form and then:

1. end to end: ``adt.workflow.run_form`` with the ``replay`` backend
   (``mmlu_pro/responses.parquet``, items mapped through the bank's ``mmlu_pro`` aliases) for each of
   the 20 models, one after another, exactly as ``adt run`` does it (setup, batches to the spool,
   ingest, finish). Prints the wall time and, from the run reports, the time spent ingesting
   (opening the bank included) and inside the ingest transactions;
2. bulk ingest: the same 20 x 1,000 replayed results spooled under 20 fresh runs without touching the
   bank, then moved in by one ``spool.ingest`` call (what ``adt responses ingest`` does), timed with
   and without opening the bank. Ingested batch files are deleted after the bank is released (as
   ``run_form`` does), and that time is printed separately.

Ingest throughput = responses stored / seconds of ingest. Run: .venv/bin/python bench/replay_ingest.py
[--items 1000] [--batch-size 64] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from adt.workflow.run import DEFAULT_BATCH_SIZE, form_requests, results_table, run_form  # noqa: E402
from itembank import ImportOptions, open_bank, spool  # noqa: E402
from runners import ReplayRunner  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "mmlu_pro"
FLOOR = 20_000.0
MMLU_PRO = ImportOptions(source="mmlu_pro", license="Apache-2.0", id_cols=("question_id",), choices_col="options",
                         answer_col="answer", answer_format="letter",
                         tag_cols=(("category", "subject"), ("src", "source_detail")))


def build_bank(path: Path, n_items: int, seed: int) -> list[str]:
    t0 = time.perf_counter()
    with open_bank(path, create=True) as bank:
        report = bank.import_items([DATA / "items.parquet"], MMLU_PRO)
        ids = bank.item_ids()
        form = [str(i) for i in np.random.default_rng(seed).choice(ids, n_items, replace=False)]
        bank.save_form("bench", form, spec={"strategy": "random", "n": n_items}, strategy="random", seed=seed,
                       snapshot_id=bank.snapshot_id(), calibration_id=None, objectives={}, content_hash="bench",
                       n_uncalibrated=n_items)
    print(f"bank: {report.items_in_files} MMLU-Pro items imported in {time.perf_counter() - t0:.1f} s; "
          f"form of {n_items} items")
    return form


def end_to_end(path: Path, record: pd.DataFrame, models: list[str], batch_size: int) -> int:
    t0 = time.perf_counter()
    reports = [run_form(path, "bench", m, "replay", {"responses": record, "source": "mmlu_pro"},
                        batch_size=batch_size, progress=False) for m in models]
    wall = time.perf_counter() - t0
    stored = sum(r.ingested for r in reports)
    ingest = sum(r.ingest_seconds for r in reports)
    tx = sum(r.ingest_tx_seconds for r in reports)
    scoring = sum(r.scoring_seconds for r in reports)
    assert all(r.status == "finished" for r in reports), [r.status for r in reports]
    print(f"\n1. end to end ({len(models)} runs of `run_form`, replay, batch size {batch_size}):")
    print(f"   wall {wall:.2f} s for {stored} responses = {stored / wall:,.0f} responses/s "
          f"({wall / len(models):.2f} s per run; replay scoring {scoring:.2f} s in all)")
    print(f"   ingest incl. opening the bank: {ingest:.2f} s -> {stored / ingest:,.0f} responses/s")
    print(f"   inside the ingest transactions: {tx:.2f} s -> {stored / tx:,.0f} responses/s")
    print(f"   per run: {', '.join(f'{r.seconds:.2f}' for r in reports)} s")
    return stored


def spool_runs(path: Path, record: pd.DataFrame, models: list[str], form: list[str], batch_size: int) -> int:
    """The replayed results of every model, spooled batch by batch under fresh run ids (bank not held)."""
    with open_bank(path) as bank:
        items = bank.items({"item_id": form}, include_retired=True, with_tags=False)
        aliases = bank.aliases_for(form, "mmlu_pro")
        for m in models:
            bank.start_run(f"bulk:{m}", model=m, kind="form", form_name="bench", backend="replay")
    requests = form_requests(items, form, None, "loglik")
    n = 0
    for m in models:
        runner = ReplayRunner(record, m, aliases=aliases, skip_missing=True)
        writer = spool.SpoolWriter(path, f"bulk:{m}")
        for start in range(0, len(requests), batch_size):
            batch = requests[start:start + batch_size]
            table, _, _ = results_table(batch, runner.score(batch))
            writer.write(table)
            n += table.num_rows
    return n


def bulk_ingest(path: Path, n_spooled: int, profile: bool) -> float:
    t0 = time.perf_counter()
    prof = cProfile.Profile() if profile else None
    with open_bank(path, purpose="bench bulk ingest") as bank:
        t1 = time.perf_counter()
        c1 = time.process_time()
        if prof:
            prof.enable()
        counts = spool.ingest(bank, cleanup_later=True)
        if prof:
            prof.disable()
        t2 = time.perf_counter()
        cpu = time.process_time() - c1
    t3 = time.perf_counter()
    removed = spool.cleanup(path)
    t4 = time.perf_counter()
    stored = counts["new_responses"]
    assert stored == n_spooled, (stored, n_spooled)
    print(f"\n2. bulk ingest of {counts['batches']} spooled batches ({stored} responses, one `spool.ingest`):")
    print(f"   incl. opening/closing the bank: {t3 - t0:.2f} s -> {stored / (t3 - t0):,.0f} responses/s")
    print(f"   ingest alone:                   {t2 - t1:.2f} s -> {stored / (t2 - t1):,.0f} responses/s "
          f"(CPU time of this process {cpu:.2f} s -> {stored / cpu:,.0f} responses per CPU second)")
    print(f"   then deleting the {removed} ingested batch files, bank already released: {t4 - t3:.2f} s")
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(18)
        print(out.getvalue())
    return stored / (t3 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--profile", action="store_true", help="cProfile the bulk ingest")
    parser.add_argument("--skip-end-to-end", action="store_true", help="only the bulk ingest")
    args = parser.parse_args()
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if not (DATA / "items.parquet").is_file():
        sys.exit(f"MMLU-Pro data not found under {DATA}")
    work = Path(tempfile.mkdtemp(prefix="adt_replay_ingest_"))
    try:
        path = work / "bank.duckdb"
        if args.skip_end_to_end:
            form = build_bank(path, args.items, args.seed)
            record = pd.read_parquet(DATA / "responses.parquet")
            models = sorted(record["model"].unique())
            rate = bulk_ingest(path, spool_runs(path, record, models, form, args.batch_size), args.profile)
            print(f"\nfloor {FLOOR:,.0f} responses/s: bulk ingest (bank open included) at {rate / FLOOR:.2f}x")
            return
        form = build_bank(path, args.items, args.seed)
        record = pd.read_parquet(DATA / "responses.parquet")
        models = sorted(record["model"].unique())
        stored = end_to_end(path, record, models, args.batch_size)
        with open_bank(path) as bank:
            runs = bank.runs()
            exposure = bank.items({"item_id": form}, with_tags=False)["exposure_runs"]
        assert stored == int(runs["n_responses"].sum()) == int(exposure.sum()) and exposure.max() == len(models)
        n = spool_runs(path, record, models, form, args.batch_size)
        rate = bulk_ingest(path, n, args.profile)
        print(f"\nfloor {FLOOR:,.0f} responses/s: bulk ingest (bank open included) at {rate / FLOOR:.2f}x the floor")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
