"""Bank at scale: 1,000,000 generated, tagged items imported into a fresh bank.

Prints import time, peak RSS of the importing process, bank size on disk next to the Parquet source,
and the in-process time of `stats --by` over two tags and of drawing 1,000 random low-tier items
with a given tag; the same two queries through the CLI are timed separately (they include Python
start-up and opening the bank). Floors (2-core machine): import <= 90 s, peak RSS <= 3 GiB, each
in-process query <= 1 s.

    python bench/bank_scale.py [--items 1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOMAINS = [f"domain_{i:02d}" for i in range(20)]
TASKS = [f"task_{i:02d}" for i in range(50)]
SCENARIOS = ["general", "industry", "application", "safety"]


def generate(n: int, rng: np.random.Generator, path: Path) -> None:
    """n distinct 4-choice items with three tags each, as canonical Parquet."""
    a = rng.integers(0, 10**6, n)
    b = rng.integers(0, 10**6, n)
    idx = np.arange(n)
    question = [f"Item {i}: what is {x} plus {y}?" for i, x, y in zip(idx, a, b, strict=True)]
    correct = a + b
    choices = [[str(c), str(c + 1), str(c - 1), str(c + 10)] for c in correct]
    perm_answer = np.array(list("ABCD"))[np.zeros(n, dtype=int)]
    tags = [{"domain": DOMAINS[d], "task": TASKS[t], "scenario": SCENARIOS[s]}
            for d, t, s in zip(rng.integers(0, 20, n), rng.integers(0, 50, n), rng.integers(0, 4, n), strict=True)]
    frame = pd.DataFrame({"id": [f"g{i}" for i in idx], "question": question, "choices": choices,
                          "answer": perm_answer, "type": "mc", "language": np.where(rng.random(n) < 0.7, "en", "zh"),
                          "tags": [json.dumps(t) for t in tags]})
    frame.to_parquet(path, index=False)


def phase_import(bank: Path, items: Path, responses: Path) -> None:
    """Runs in its own process so its peak RSS is the import's alone."""
    from itembank import ImportOptions, open_bank

    start = time.perf_counter()
    with open_bank(bank, create=True) as b:
        rep = b.import_items([items], ImportOptions(source="synthetic"))
        t_items = time.perf_counter() - start
        r = b.import_responses(responses, source="synthetic", model_col="model", item_col="item", score_col="score")
    total = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss * 1024
    print(json.dumps({"items_s": t_items, "total_s": total, "peak_rss": peak, "new_items": rep.new_items,
                      "cpu_s": usage.ru_utime + usage.ru_stime,
                      "responses": r.new_responses}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--phase", default=None)
    ap.add_argument("--bank", type=Path)
    ap.add_argument("--src", type=Path)
    ap.add_argument("--resp", type=Path)
    args = ap.parse_args()
    if args.phase == "import":
        phase_import(args.bank, args.src, args.resp)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="adt-bank-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    src, resp, bank = work / "items.parquet", work / "responses.parquet", work / "bank.duckdb"
    for f in (bank, bank.with_name(bank.name + ".wal")):
        f.unlink(missing_ok=True)
    t = time.perf_counter()
    generate(args.items, rng, src)
    # Exposure for a tenth of the bank: 5 models answered the first 10% of the items.
    n_exp = args.items // 10
    pd.DataFrame({"model": np.repeat([f"m{i}" for i in range(5)], n_exp),
                  "item": np.tile([f"g{i}" for i in range(n_exp)], 5),
                  "score": rng.integers(0, 2, 5 * n_exp).astype(float)}).to_parquet(resp, index=False)
    print(f"generated {args.items:,} items in {time.perf_counter() - t:.1f} s -> {src}")

    out = subprocess.run([sys.executable, __file__, "--phase", "import", "--bank", str(bank), "--src", str(src),
                          "--resp", str(resp)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(out.stderr)
    imp = json.loads(out.stdout.strip().splitlines()[-1])
    disk = bank.stat().st_size + (bank.with_name(bank.name + ".wal").stat().st_size
                                  if bank.with_name(bank.name + ".wal").exists() else 0)
    print(f"import of {imp['new_items']:,} items: {imp['items_s']:.1f} s (floor 90 s); with {imp['responses']:,} "
          f"responses: {imp['total_s']:.1f} s ({imp['cpu_s']:.1f} CPU-s; load average {os.getloadavg()[0]:.1f})")
    print(f"peak RSS of the import process: {imp['peak_rss'] / 2**30:.2f} GiB (floor 3 GiB)")
    print(f"bank on disk: {disk / 2**20:.0f} MiB vs Parquet source {src.stat().st_size / 2**20:.0f} MiB "
          f"(ratio {disk / src.stat().st_size:.2f})")

    from itembank import open_bank

    with open_bank(bank) as b:
        b.stats(["domain", "scenario"])  # warm the file cache once
        t, c = time.perf_counter(), time.process_time()
        stats = b.stats(["domain", "scenario"])
        t_stats, c_stats = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        ids = b.item_ids({"frequency_tier": ["low"], "domain": ["domain_07"]})
        draw = np.random.default_rng(1).choice(ids, size=1000, replace=False)
        t_draw, c_draw = time.perf_counter() - t, time.process_time() - c
    print(f"in-process stats --by domain --by scenario: {t_stats * 1000:.0f} ms ({c_stats * 1000:.0f} CPU-ms; {len(stats)} groups; floor 1 s)")
    print(f"in-process draw of 1,000 random low-tier items with domain=domain_07: {t_draw * 1000:.0f} ms "
          f"({c_draw * 1000:.0f} CPU-ms; from {len(ids):,} eligible; floor 1 s); first: {draw[0]}")
    adt = [sys.executable, "-m", "adt", "--bank", str(bank)]
    for label, cmd in (("stats --by domain --by scenario", ["bank", "stats", "--by", "domain", "--by", "scenario", "--json"]),):
        t = time.perf_counter()
        subprocess.run(adt + cmd, capture_output=True, check=True, cwd=ROOT)
        print(f"CLI `adt bank {label}`: {time.perf_counter() - t:.2f} s (Python start-up and bank open included)")
    ok = imp["items_s"] <= 90 and imp["peak_rss"] <= 3 * 2**30 and t_stats <= 1 and t_draw <= 1
    print("floors met" if ok else "FLOORS NOT MET")


if __name__ == "__main__":
    main()
