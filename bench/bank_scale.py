"""Bank at scale: generated, tagged items (and responses) imported into a fresh bank.

Prints import time, peak RSS of the importing process, bank size on disk next to the Parquet source,
the in-process time of `stats --by` over two tags, of drawing 1,000 random low-tier items with a given
tag, of a stratified 600-item form under four quotas (frequency tier, difficulty band, language,
scenario; the item frame read included) and of `bank verify`; `adt bank stats` through the CLI is timed
separately (Python start-up and opening the bank included).

Floors (2-core machine). 1 M items, 500 k responses: item import <= 90 s, peak RSS <= 3 GiB, each
in-process query <= 1 s. The reference system's size (issue 16), 5.5 M items and 5 M responses: import
<= 8 min, peak RSS <= 4 GiB, bank file <= 3x the Parquet source, stats and draw <= 0.5 s, the form
<= 15 s, verify <= 2 min; a run above 1 M then measures 1 M too, so both sizes print side by side.

Measured 2026-12-06 (2 shared cores, load average 4-5.5; migration 005 in): 1 M: items 123 s (108 CPU-s with the
responses), import peak 1.65 GiB, 446 MiB bank vs 58 MiB source (7.7x), stats 1.5 s, draw 0.64 s, form 7.8 s,
verify 12 s. 5.5 M + 5 M responses: import 1,370 s (656 CPU-s), peak RSS over 3.8 GiB (seen with ps; ru_maxrss then
still read the parent's 6.7 GiB), 2,707 MiB vs 319 MiB (8.5x), stats 9.6 s, draw 2.6 s, form 24.9 s (18 s of it
reading the item frame of the slice), verify 39 s. Floors not met: import time and memory, size, stats, draw, form.
Batch history (migration 006), 1 M, same machine, load 5, against the code before it in the same hour: bank 446.5 ->
217.8 MiB (7.7x -> 3.8x; events 146 -> 0.5 MiB, aliases' and responses' key indexes gone), import 121.6 -> 123.4 s
wall (94.8 -> 91.6 CPU-s; ~73% of it is the importer's per-row prepare()), peak 1.60 -> 1.59 GiB, verify 7.9 -> 20 s
(12 CPU-s: every bulk-written row digested again).
After migration 007 (integer tag keys, the item_exposure table) and the lean pool, 1 M on the same machine the same
hour (load average 4.4-4.6; before -> after): stats 2.35 -> 0.43 s, draw 0.47 -> 0.06 s, pool 4.43 -> 0.78 s,
form 8.14 -> 1.16 s, CLI stats 5.1 -> 0.73 s, bank 446 -> 401 MiB (7.7x -> 6.9x), import CPU 104 s both.
2 M items + 2 M responses (load 5.7): stats 0.85 s, draw 0.11 s, form 2.25 s (200 k slice), verify 20 s: linear,
so about 2.3 s, 0.3 s and 6 s at 5.5 M (stats over its 0.5 s floor).
Import speed-ups (tags column parsed in one pass, content hash without the encoder's per-call set-up), 1 M, same
machine, against main in the same half hour: items 134.0 -> 112.0 s wall, items + responses 144.0 -> 122.7 s
(103.5 -> 86.2 CPU-s; load 4.7 / 3.7); prepare() per 200 k rows 4.8-7.6 -> 4.4-5.0 CPU-s (4 paired runs; CPU-s
move by 25% with the load here); a 200 k bank the same row for row (items, aliases, tags).
All of the above merged (before the import speed-ups), 2026-12-06 18:27-18:50, one run, load average 1-2 at the
end: 5.5 M + 5 M responses: import 729 s wall (660 CPU-s; floor 480 s), peak 4.40 GiB (floor 4), 1,074 MiB vs
319 MiB = 3.37x (floor 3; PRAGMA database_size: 923 MiB of it in use = 2.90x, 151 MiB free blocks left by the import's
checkpoints), stats 1.25 s (floor 0.5), draw 0.20 s, form 5.4 s (550 k slice), verify 80 s; 1 M in the same run:
items 78.7 s, 1.68 GiB, 2.97x, stats 0.35 s, draw 0.06 s, form 1.1 s, verify 13 s (every 1 M floor met).
Then the import speed-ups and a chunk of items new to the bank skipping the alias and tag existence checks (main at
634a91b), one run 19:00-19:19 beside the test suite (load average 2.6-3.1): 5.5 M + 5 M responses: import 439 s wall
(427 CPU-s; floor 480 s met), peak 4.50 GiB (floor 4), 3.37x (floor 3), stats 2.04 s (floor 0.5), draw 0.31 s, form
8.1 s, verify 82 s; 1 M: items 60.5 s, 1.56 GiB, 2.96x, stats 0.34 s, draw 0.05 s, form 0.9 s, verify 14 s.
`stats --by` tag keys as per-value item bitsets (bitstring_agg / AND / popcount, no join of the tag rows to the
items; branch bankstats), 2026-12-06 21:08-21:35, `--phase query` on copies of the same banks, main (61a889b) then
the branch, one after the other (the machine shared with two other sessions and their runs, load average 3.5-7):
5.5 M + 5 M responses, two pairs (load 4.0-5.0): stats 9.02 / 9.22 -> 3.47 / 2.90 s wall, draw 1.26 / 0.71 ->
0.81 / 1.03 s, pool 11.5 / 10.6 -> 11.9 / 11.0 s, form 14.5 / 13.4 -> 14.6 / 13.4 s, verify 152 / 147 -> 147 / 151 s,
query peak 1.74 / 1.66 -> 1.77 / 1.79 GB (the bitsets: up to 512 MiB, STATS_BITSET_BYTES; 280 MB here); the stats
call alone, CPU seconds, median of 3 processes alternating (load 4.3): 3.88 -> 1.98 CPU-s (wall 6.2 -> 3.2 s). Floor
(0.5 s) NOT met: two scans of the 22 M tag rows (one per key, ~0.5 CPU-s each) and the value count guarding the
bitsets' memory (0.37 CPU-s) are most of it; item_tags sorted by (key, item_key) (a copy re-sorted by hand) brings
the same call to 1.27-1.29 CPU-s (main's join: 3.78, no gain). 1 M: four pairs (load 3.6-7): stats 0.66 / 1.73 /
0.98 / 0.70 -> 0.85 / 0.19 / 0.51 / 0.66 s wall, draw 0.15 / 0.28 / 0.17 / 0.12 -> 0.25 / 0.04 / 0.10 / 0.14 s, form 2.7 / 3.0 / 2.3 / 2.0 -> 3.9 /
1.1 / 2.1 / 2.1 s, verify 29 / 19 / 25 / 23 -> 47 / 16 / 24 / 24 s (wall figures swing 2-9x with the load here); the
stats call alone: 0.56 -> 0.41 CPU-s (median of 5 alternating, load 3.9). Answers the same (tests/itembank/test_stats.py;
`adt bank stats` text and JSON byte for byte on the 1 M bank).
Items imported in chunks of DuckDB's row group (each commit written into the file, not the WAL: no rows held in
memory until a checkpoint, no checkpoint rewriting the key index mid-import) and the response import letting go of
the file's frames, one run 21:12-21:41 beside two other helpers (load average 4.3 at the 5.5 M, 2.8 at the 1 M):
5.5 M + 5 M responses: import 872 s wall (585 CPU-s; floor 480 s not met at this load), peak 3.31 GiB (floor 4 met;
the item phase ~2.4 GiB, the responses ~3.3 GiB: sampled), 934 MiB vs 319 MiB = 2.93x (floor 3 met), stats 6.1 s,
draw 0.81 s, form 16.4 s, verify 149 s (the query figures 2-3x the 19:00 run's, at a higher load); 1 M: items 98 s,
1.41 GiB, 3.00x, stats 0.50 s, draw 0.06 s, form 1.1 s, verify 23 s. Main at 1 M in the same half hour (load 2.6):
items 86 s, 1.61 GiB, 2.96x, stats 0.54 s, draw 0.07 s, form 1.2 s, verify 16 s. The 1 M import alone, main and
this alternated (ABAB, load 2.3-5): items 120.8, 82.8 -> 91.2, 76.2 s wall, 88.2, 89.7 -> 81.7, 84.6 CPU-s, peak
1.56, 1.70 -> 1.39, 1.45 GiB.
All three merged, with a chunk's tags written in (key, item_key) order (main at 55a0417), one run 21:51-22:06 on a
quiet machine (nothing else running; load average 1.1-1.3): 5.5 M + 5 M responses: import 520.8 s wall (items 435.7 s;
550 CPU-s; floor 480 s NOT met), peak 3.38 GiB (floor 4 met), 923 MiB vs 319 MiB = 2.90x (floor 3 met), stats
0.73 s (floor 0.5 NOT met), draw 0.19 s, pool 3.0 s, form 4.4 s, verify 88 s, CLI stats 2.3 s (all met but stats);
1 M in the same run: items 73.1 s, 1.40 GiB, 2.97x, stats 0.16 s, draw 0.03 s, form 0.9 s, verify 13 s (every 1 M
floor met). The 439 s of the 19:00 run was not reproduced; the import alone at 2 M items + 2 M responses, the code
before this session (61a889b) then this, same files, quiet (22:07-22:13): items 155.6 -> 147.3 s, total 183.3 ->
175.7 s, 197.2 -> 186.7 CPU-s, peak 2.11 -> 1.67 GiB: no slower than before, and linear (80 s a million items).
Then each chunk checked in a worker thread while DuckDB writes the one before (main at ed25049), the same 5.5 M
files, quiet (22:26-22:36, load average under 1.5): import 376.1 s wall (items 298.6 s; 543 CPU-s; floor 480 s met),
peak 3.45 GiB (floor 4 met), the bank file the same 923 MiB (2.90x; floor 3 met); `--phase query` on it: stats 0.84 s
(floor 0.5 NOT met), draw 0.24 s, pool 4.6 s, form 6.1 s, verify 76 s (met).
Then `stats --by` tag keys with numpy ANDing and counting the per-value bitsets a block of words at a time (DuckDB's
cross product of the combinations had copied and ANDed 0.4 GB of bitstrings) and the values per key read from
tag_values (migration 008) instead of a scan of the tag rows (main at 0790ea8), 2026-12-07 00:39-00:53, one run
on a quiet machine (load average 1.3-1.4): 5.5 M + 5 M responses: import 384.4 s wall (items 303.1 s; 553 CPU-s;
floor 480 s met), peak 3.28 GiB (floor 4 met), 923 MiB vs 319 MiB = 2.90x (floor 3 met), stats 0.38 s (floor 0.5
met), draw 0.22 s, pool 3.4 s, form 5.5 s, verify 78 s, CLI stats 0.98 s: every floor met; 1 M in the same run:
items 56.8 s, 1.46 GiB, 2.97x, stats 0.08 s, draw 0.05 s, form 1.0 s, verify 14 s (every 1 M floor met). The stats
call alone on the 5.5 M bank, in process, 9 calls: 0.26-0.33 s (before: 0.72-0.99 s, 5 calls, the same bank).

    python bench/bank_scale.py [--items 1000000] [--responses N] [--workdir DIR]
    python bench/bank_scale.py --items 5500000 --responses 5000000
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


SKILLS = [f"ability_{i:02d}" for i in range(30)]
BANDS = np.array(["easy", "medium", "hard"])
ZH_STEM = "第{i}题：{x}加{y}等于多少？"


def generate(n: int, rng: np.random.Generator, path: Path) -> None:
    """n distinct 4-choice items, as canonical Parquet: 70% English, 30% Chinese stems; 3-5 tags each
    (domain, task, scenario and 0-2 abilities); a declared difficulty band (easy/medium/hard 30/40/30)."""
    a = rng.integers(0, 10**6, n)
    b = rng.integers(0, 10**6, n)
    idx = np.arange(n)
    zh = rng.random(n) >= 0.7
    question = [(ZH_STEM if z else "Item {i}: what is {x} plus {y}?").format(i=i, x=x, y=y)
                for i, x, y, z in zip(idx, a, b, zh, strict=True)]
    correct = a + b
    choices = [[str(c), str(c + 1), str(c - 1), str(c + 10)] for c in correct]
    n_skills = rng.integers(0, 3, n)
    skill = rng.integers(0, len(SKILLS), (n, 2))
    tags = [json.dumps({"domain": DOMAINS[d], "task": TASKS[t], "scenario": SCENARIOS[s],
                        **({"ability": sorted({SKILLS[k] for k in skill[i, :ns]})} if ns else {})})
            for i, (d, t, s, ns) in enumerate(zip(rng.integers(0, 20, n), rng.integers(0, 50, n),
                                                   rng.choice(4, n, p=[0.4, 0.4, 0.15, 0.05]), n_skills, strict=True))]
    frame = pd.DataFrame({"id": [f"g{i}" for i in idx], "question": question, "choices": choices,
                          "answer": "A", "type": "mc", "language": np.where(zh, "zh", "en"), "tags": tags,
                          "difficulty_band": BANDS[rng.choice(3, n, p=[0.3, 0.4, 0.3])]})
    frame.to_parquet(path, index=False)


def responses(n_items: int, n_responses: int, rng: np.random.Generator, path: Path) -> None:
    """Exposure across the three frequency tiers: 10 models answer the first items (high tier: more runs
    than tier_high_runs = 5), one model each the next ones (medium), the rest are never answered (low)."""
    high = min(n_items // 20, n_responses // 20)
    medium = min(n_responses - 10 * high, n_items - high)
    item = np.concatenate([np.tile(np.arange(high), 10), high + np.arange(medium)])
    model = np.concatenate([np.repeat(np.arange(10), high), rng.integers(0, 10, medium)])
    pd.DataFrame({"model": pd.Categorical.from_codes(model, [f"m{i}" for i in range(10)]).astype(str),
                  "item": ["g" + str(i) for i in item],
                  "score": rng.integers(0, 2, len(item)).astype(float)}).to_parquet(path, index=False)


def peak_rss() -> int:
    """This process's peak resident set, bytes. VmHWM, not getrusage's ru_maxrss: Linux keeps ru_maxrss across
    fork and exec, so a child reported the parent's peak (the generator's: 6.7 GiB at 5.5 M items) as its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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
    peak = peak_rss()
    print(json.dumps({"items_s": t_items, "total_s": total, "peak_rss": peak, "new_items": rep.new_items,
                      "cpu_s": usage.ru_utime + usage.ru_stime,
                      "responses": r.new_responses}))


# Enemy detection off: find_enemy_pairs compares the text of every eligible item (TF-IDF over the whole pool),
# which does not scale to millions of items (see the report in issue 16). The form is drawn from a tenth of the
# bank (two of the twenty domains, the spec's include filter): from the whole 1 M bank the pool read and the
# draw took 5.5 + 6.5 s (2026-12-06), some 65 s and a multi-GiB pool frame at 5.5 M, over the 15 s floor.
FORM_SLICE = {"domain": ["domain_00", "domain_01"]}
FORM_SPEC = {"strategy": "stratified", "size": 600, "seed": 3, "enemy_threshold": None,
             "quotas": {"frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5},
                        "difficulty_band": {"hard": 0.3, "medium": 0.4, "easy": 0.3},
                        "language": {"en": 0.7, "zh": 0.3},
                        "scenario": {"general": 0.4, "industry": 0.4, "application": 0.2}}}


def phase_query(bank: Path) -> None:
    """The read-side figures, in their own process (a fresh bank open, as a command would)."""
    from adt.workflow.forms import PoolSettings, pool_at
    from itembank import open_bank
    from sampler import FormSpec, sample_form

    out: dict[str, object] = {}
    with open_bank(bank) as b:
        b.stats(["domain", "scenario"])  # warm the file cache once
        t = time.perf_counter()
        stats = b.stats(["domain", "scenario"])
        out["stats_s"], out["stats_groups"] = time.perf_counter() - t, len(stats)
        t = time.perf_counter()
        ids = b.item_ids({"frequency_tier": ["low"], "domain": ["domain_07"]})
        draw = np.random.default_rng(1).choice(ids, size=min(1000, len(ids)), replace=False)
        out["draw_s"], out["draw_from"], out["draw_first"] = time.perf_counter() - t, len(ids), str(draw[0])
        # The pool as `adt sample` reads it (adt.workflow.forms.pool_at: the columns a pool needs, not the item
        # text; no calibration, no snapshot id).
        t = time.perf_counter()
        spec = FormSpec.from_dict({**FORM_SPEC, "include": FORM_SLICE})
        s, head = b.settings(), b.head()
        pool = pool_at(b, PoolSettings(head.n_events, head.hash, int(s["tier_high_runs"]),
                                       int(s["tier_high_publications"]), tier_low_runs=int(s["tier_low_runs"])), spec, None)
        out["pool_s"], out["pool_items"] = time.perf_counter() - t, len(pool)
        draft = sample_form(pool, spec, np.random.default_rng(3))
        out["form_s"], out["form_items"] = time.perf_counter() - t, len(draft.item_ids)
        del pool
        t = time.perf_counter()
        rep = b.verify()
        out["verify_s"], out["verify_ok"], out["events"] = time.perf_counter() - t, rep.ok, rep.n_events
    out["query_peak_rss"] = peak_rss()
    print(json.dumps(out))


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(n_items: int, n_responses: int, work: Path) -> dict:
    """Generate, import (own process) and query (own process) one bank; the figures as a dict."""
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    src, resp, bank = work / "items.parquet", work / "responses.parquet", work / "bank.duckdb"
    for f in (bank, bank.with_name(bank.name + ".wal")):
        f.unlink(missing_ok=True)
    t = time.perf_counter()
    generate(n_items, rng, src)
    responses(n_items, n_responses, rng, resp)
    print(f"generated {n_items:,} items and {n_responses:,} responses in {time.perf_counter() - t:.1f} s -> {work}",
          flush=True)
    fig = _child("--phase", "import", "--bank", str(bank), "--src", str(src), "--resp", str(resp))
    wal = bank.with_name(bank.name + ".wal")
    fig["disk"] = bank.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    fig["src"] = src.stat().st_size
    fig["ratio"] = fig["disk"] / fig["src"]
    fig["load"] = os.getloadavg()[0]
    fig |= _child("--phase", "query", "--bank", str(bank))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "adt", "--bank", str(bank), "bank", "stats", "--by", "domain", "--by",
                    "scenario", "--json"], capture_output=True, check=True, cwd=ROOT)
    fig["cli_stats_s"] = time.perf_counter() - t
    return fig


# (figure, unit, floor at 1 M, floor at the reference size) -- None: no floor at that size.
ROWS = [("items_s", "s", 90, None), ("total_s", "s", None, 480), ("cpu_s", "s", None, None),
        ("peak_rss", "GiB", 3, 4), ("disk", "MiB", None, None), ("src", "MiB", None, None),
        ("ratio", "x", None, 3), ("stats_s", "s", 1, 0.5), ("draw_s", "s", 1, 0.5), ("pool_s", "s", None, None),
        ("form_s", "s", None, 15), ("verify_s", "s", None, 120), ("query_peak_rss", "GiB", None, None),
        ("cli_stats_s", "s", None, None)]


def report(figs: dict[int, dict]) -> bool:
    """One line per figure: each size's value and its floor; True when every floor holds."""
    ok = True
    sizes = sorted(figs)
    print(f"{'figure':<16}" + "".join(f"{n:>12,} items {'(floor)':>9}" for n in sizes))
    for key, unit, floor_1m, floor_big in ROWS:
        cells = []
        for n in sizes:
            v = figs[n][key]
            v = v / 2**30 if unit == "GiB" else v / 2**20 if unit == "MiB" else v
            floor = floor_1m if n <= 1_000_000 else floor_big
            ok = ok and (floor is None or v <= floor)
            cells.append(f"{v:>12.2f} {unit:<4} {'' if floor is None else f'({floor})':>9}")
        print(f"{key:<16}" + "".join(cells))
    for n in sizes:
        f = figs[n]
        print(f"{n:,} items: {f['new_items']:,} new, {f['responses']:,} responses, {f['events']:,} events "
              f"(verify ok: {f['verify_ok']}), form of {f['form_items']} from {f['pool_items']:,}, draw from {f['draw_from']:,}, "
              f"load average {f['load']:.1f}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--responses", type=int, default=None, help="default: half the items")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--phase", default=None)
    ap.add_argument("--bank", type=Path)
    ap.add_argument("--src", type=Path)
    ap.add_argument("--resp", type=Path)
    args = ap.parse_args()
    if args.phase == "import":
        phase_import(args.bank, args.src, args.resp)
        return
    if args.phase == "query":
        phase_query(args.bank)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="adt-bank-scale-"))
    sizes = [(args.items, args.responses if args.responses is not None else args.items // 2)]
    if args.items > 1_000_000:  # the 1 M figures from the same run, after the reference size's (printed as each ends)
        sizes.append((1_000_000, 500_000))
    figs = {}
    for n_items, n_responses in sizes:
        figs[n_items] = measure(n_items, n_responses, work / str(n_items))
        (work / f"figures_{n_items}.json").write_text(json.dumps(figs[n_items]))
        ok = report(figs)
        sys.stdout.flush()
    print("floors met" if ok else "FLOORS NOT MET")


if __name__ == "__main__":
    main()
