"""QC near-duplicate throughput: 10,000 drafts against a 1,000,000-item bank, with the index built once.

The bank: generated template items (``itembank.generate_items``, seeded) plus MMLU and MMLU-Pro imported,
1,000,000 items in all. Timed apart: the one-off index build (``Bank.index_near_duplicates``). Then
batch 1, 10,000 drafts imported as drafts: fresh template items, 1,000 perturbed copies of bank items
(real text; ``near_duplicates.perturb``), 500 exact copies with the options shuffled, and 250 CMMLU
items (Chinese, not in the bank) each with a perturbed copy in the same batch; its QC check
(``adt qc --check schema --check near_duplicate --check leakage``, the product's command, start-up included)
is the figure, bar 5 minutes wall. Batch 2: 1,000 drafts, 500
of them perturbed copies of batch-1 drafts: caught because batch 1 was indexed when it was checked.

Peer: ``sampler.find_enemy_pairs`` over bank + batch (question text), the full re-scan the sampler runs.
Over the whole 1M bank it does not fit this machine: run with ``--peer-sample 2000000`` (2026-12-06) it
grew past 24 GB and the kernel's OOM killer ended it. So it is timed on random subsamples of the bank
plus the batch (50k and 100k by default) and its whole-bank time extrapolated linearly from them, an
estimate, said so in the output.

    python bench/qc_throughput.py [--items 1000000] [--batch 10000] [--peer-sample 100000] [--bank PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from near_duplicates import DATA, MMLU, MMLU_PRO, PERTURB, copies_of, copy_row, write_items  # noqa: E402

import itembank  # noqa: E402
from itembank import ImportOptions, generate_items, open_bank  # noqa: E402
from sampler import find_enemy_pairs  # noqa: E402


def drafts(source: str) -> ImportOptions:
    return ImportOptions(source=source, origin="model-generated", review_state="draft")


def build(path: Path, n_items: int, work: Path, rng: np.random.Generator) -> None:
    t = time.perf_counter()
    with open_bank(path, create=True) as bank:
        bank.import_items([DATA / "mmlu" / "items.parquet"], MMLU)
        bank.import_items([DATA / "mmlu_pro" / "items.parquet"], MMLU_PRO)
        n_real = int(bank.stats()["items"].sum())
        gen = generate_items(n_items - n_real, rng)
        gen.drop(columns=["true_difficulty"]).to_parquet(work / "gen.parquet", index=False)
        bank.import_items([work / "gen.parquet"], ImportOptions(source="generated", license="CC0-1.0"))
        print(f"built the bank: {int(bank.stats()['items'].sum()):,} items ({n_real:,} MMLU/MMLU-Pro) in "
              f"{time.perf_counter() - t:.0f} s", flush=True)


def generated_rows(frame: pd.DataFrame, prefix: str) -> list[dict[str, Any]]:
    """Generated items as import rows, with their origin and generator (so siblings are known as such)."""
    return [{"id": f"{prefix}{k}", "question": q, "choices": list(c) if c is not None else None, "answer": a,
             "type": t, "origin": "template", "generator": g}
            for k, (q, c, a, t, g) in enumerate(zip(frame["question"], frame["choices"], frame["answer"],
                                                    frame["type"], frame["generator"], strict=True))]


def batch_one(bank: itembank.Bank, n: int, rng: np.random.Generator, work: Path) -> tuple[list[str], dict[str, Any]]:
    """Import batch 1 as drafts; its ids and the planted pairs by kind."""
    real = bank.items({"source": ["mmlu", "mmlu_pro"]}, with_tags=False)
    near, near_src = copies_of(real, 1000, rng)
    exact_pick = real.iloc[rng.choice(len(real), 500, replace=False)]
    exact = [copy_row({"question": r.question, "choices": list(r.choices), "answer": r.answer, "item_type": "mc",
                       "language": r.language}, rng, f"exact{k}", shuffle=True, renumber_numbers=False, word_share=0.0)
             for k, r in enumerate(exact_pick.itertuples())]
    cm = pd.read_parquet(DATA / "cmmlu" / "items.parquet").sample(250, random_state=int(rng.integers(1 << 31)))
    zh = [{"id": f"zh{k}", "question": q, "choices": [a, b, c, d], "answer": ans}
          for k, (q, a, b, c, d, ans) in enumerate(zip(cm["Question"], cm["A"], cm["B"], cm["C"], cm["D"],
                                                          cm["Answer"], strict=True))]
    zh_copies = [copy_row({**r, "item_type": "mc", "language": "zh"}, rng, f"zhcopy{k}") for k, r in enumerate(zh)]
    fresh = generate_items(n - len(near) - len(exact) - len(zh) - len(zh_copies), np.random.default_rng(rng.integers(1 << 31)))
    fresh_rows = generated_rows(fresh, "fresh")
    rows = near + exact + zh + zh_copies + fresh_rows
    t = time.perf_counter()
    rep = bank.import_items([write_items(rows, work / "batch1.jsonl")], drafts("batch1"))
    print(f"batch 1: {len(rows):,} drafts imported ({rep.new_items:,} new items) in {time.perf_counter() - t:.1f} s "
          f"(import, not QC)", flush=True)
    ids = bank.items_for_aliases([r["id"] for r in rows], "batch1")
    planted = {"fresh": [ids[r["id"]] for r in fresh_rows],
               "near copies of bank items": [(ids[r["id"]], s) for r, s in zip(near, near_src, strict=True)],
               "exact copies (options shuffled)": [(ids[r["id"]], i) for r, i in zip(exact, exact_pick["item_id"], strict=True)],
               "zh copies within the batch": [(ids[f"zhcopy{k}"], ids[f"zh{k}"]) for k in range(len(zh))]}
    return [ids[r["id"]] for r in rows], planted


def report(matches: pd.DataFrame, planted: dict) -> None:
    pairs = set(zip(matches["item_id"], matches["match_id"], strict=True))
    for kind, want in planted.items():
        same = [a == b for a, b in want]  # a copy with the options in their old order is the same item: merged at import
        got = np.mean([p in pairs or s for p, s in zip(want, same, strict=True)])
        print(f"    {kind}: {got:.4f} of {len(want)} caught ({sum(same)} of them merged into their source at import)")


def fresh_flags(bank: itembank.Bank, matches: pd.DataFrame, fresh: set[str]) -> None:
    """How many fresh template drafts (no planted copy) were flagged, by the rule, with examples."""
    sub = matches[matches["item_id"].isin(fresh)]
    print(f"    fresh template drafts flagged: {sub['item_id'].nunique():,} of {len(fresh):,} "
          f"(rules {sub.drop_duplicates('item_id')['rule'].value_counts().to_dict()}); e.g.:")
    texts = bank.items({"item_id": sorted(set(sub["item_id"].head(3)) | set(sub["match_id"].head(3)))},
                       with_tags=False).set_index("item_id")["question"]
    for a, b, sim in sub.head(3)[["item_id", "match_id", "similarity"]].itertuples(index=False):
        print(f"      J={sim:.2f} {texts[a][:70]!r} ~ {texts[b][:70]!r}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--peer-sample", type=int, action="append", default=None)
    ap.add_argument("--bank", type=Path, default=None,
                    help="keep the built bank here (built when missing) and work on a copy of it")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA}")
        return 0
    rng = np.random.default_rng(args.seed)
    print(f"perturb: {PERTURB}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built = args.bank or work / "built.duckdb"
        if not built.exists():
            build(built, args.items, work, rng)
        path = work / "qc.duckdb"  # batches go into a copy: a kept --bank stays as built, unindexed
        shutil.copyfile(built, path)
        with open_bank(path) as bank:
            t = time.perf_counter()
            n = bank.index_near_duplicates()
            print(f"index build (one-off): {n:,} items in {time.perf_counter() - t:.1f} s", flush=True)
            ids, planted = batch_one(bank, args.batch, rng, work)
        # The figure: the product's own command, every check but the solvers, on the batch's drafts.
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "adt", "--bank", str(path), "qc", "--filter", "source=batch1",
                              "--check", "schema", "--check", "near_duplicate", "--check", "leakage", "--json"],
                             capture_output=True, text=True)
        t_qc = time.perf_counter() - t
        if out.returncode != 0:
            raise SystemExit(f"adt qc failed: {out.stderr[-2000:]}")
        rep = json.loads(out.stdout)
        print(f"adt qc (schema + near_duplicate + leakage) of {rep['n_items']:,} drafts against the "
              f"{n:,}-item bank: {t_qc:.1f} s wall, start-up included (bar 300 s); flags {rep['flags']}; "
              f"{rep['n_events']:,} events; steps {({k: round(v, 1) for k, v in rep['seconds'].items()})}", flush=True)
        with open_bank(path) as bank:
            t = time.perf_counter()
            m = bank.near_duplicates(ids)   # the same matches again, for the per-kind recall below
            print(f"(the index query alone, again: {time.perf_counter() - t:.1f} s)", flush=True)
            fresh = set(planted.pop("fresh"))
            report(m, planted)
            fresh_flags(bank, m, fresh)
            # batch 2: copies of batch-1 drafts
            b1 = bank.items({"item_id": ids[:1000]}, with_tags=False)
            rows, src = copies_of(b1, 500, rng)
            rows += generated_rows(generate_items(500, np.random.default_rng(args.seed + 99)), "fresh")
            bank.import_items([write_items(rows, work / "batch2.jsonl")], drafts("batch2"))
            id2 = bank.items_for_aliases([r["id"] for r in rows], "batch2")
            t = time.perf_counter()
            m2 = bank.near_duplicates(list(id2.values()))
            print(f"batch 2: {len(id2):,} drafts checked in {time.perf_counter() - t:.1f} s; copies of batch-1 drafts:")
            report(m2, {"caught across batches": [(id2[r["id"]], s) for r, s in zip(rows[:500], src, strict=True)]})
            texts = bank.items(with_tags=False)[["item_id", "question"]]
        batch_text = texts[texts["item_id"].isin(ids)]["question"].tolist()
        rest = texts[~texts["item_id"].isin(ids)]["question"]
        for size in args.peer_sample or [50_000, 100_000]:
            full = size >= len(rest)  # the whole bank: no extrapolation
            sample = (rest.tolist() if full else rest.sample(size, random_state=args.seed).tolist()) + batch_text
            t = time.perf_counter()
            find_enemy_pairs(sample)
            t_peer = time.perf_counter() - t
            est = t_peer if full else t_peer * len(rest) / min(size, len(rest))
            print(f"peer find_enemy_pairs over {'the whole bank' if full else f'a {size:,}-item subsample'} + the "
                  f"batch: {t_peer:.1f} s{'' if full else f' (whole bank of {len(rest):,} items: ~{est:.0f} s if linear)'}; "
                  f"index QC {t_qc:.1f} s: ratio {'' if full else '~'}{est / t_qc:.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
