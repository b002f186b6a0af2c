"""Near duplicates and leakage on real data: does the bank's near-duplicate index flag copies?

(a) MMLU imported (approved), then MMLU-Pro imported as drafts with the product's importer; the share of
    the MMLU-Pro items whose normalised question equals an MMLU test question that QC flags (an MMLU-Pro
    row the importer merged into the MMLU item, same content, counts as caught at import; reported
    apart). Floor 0.99.
(b) 1,000 perturbed copies of bank items (options shuffled, numbers changed, a tenth of the words
    replaced or dropped), imported as drafts; the share flagged as near duplicates of their source.
    Floor 0.95.
(c) 50 flagged pairs that are neither planted copies nor equal questions, printed for a person to judge.

Copies are made by ``itembank.perturb`` (branch ``variants``): options shuffled, the question's numbers
changed, a tenth of its words replaced or dropped.

Peer: ``sampler.find_enemy_pairs`` (the sampler's full re-scan) over the same bank + batch at its default
threshold: its recall on (a) and (b) and its time, next to the index's.

    python bench/near_duplicates.py [--threshold 0.5] [--copies 1000] [--seed 0] [--bank-dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
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
DATA = ROOT.parent / "shared" / "data"

from replay_validity import MMLU_PRO  # noqa: E402

import itembank  # noqa: E402
from itembank import ImportOptions, normalise, open_bank, perturb  # noqa: E402
from sampler import find_enemy_pairs  # noqa: E402

MMLU = ImportOptions(source="mmlu", license="MIT", language="en", id_cols=("subject", "split", "row_in_file"),
                     choice_cols=("choice0", "choice1", "choice2", "choice3"), answer_format="index",
                     tag_cols=(("subject", "subject"), ("split", "split")))
MMLU_PRO_DRAFTS = dataclasses.replace(MMLU_PRO, review_state="draft")

PERTURB = "itembank.perturb (itembank.variants)"


def copy_row(item: dict[str, Any], rng: np.random.Generator, row_id: str, **opts: Any) -> dict[str, Any]:
    """An import row of ``perturb(item)``: its text and key (perturb marks the copy ``perturbed``, which the
    importer refuses; the bench imports the text as a model-generated draft)."""
    out = perturb(item, rng, **opts)
    return {"id": row_id, "question": out["question"], "choices": out.get("choices"), "answer": out.get("answer"),
            "type": item.get("item_type", "mc")}


def write_items(rows: list[dict[str, Any]], path: Path) -> Path:
    pd.DataFrame(rows).to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def copies_of(items: pd.DataFrame, n: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], list[str]]:
    """``n`` perturbed copies of random rows of ``items`` (the bank's item frame) and their sources."""
    pick = rng.choice(len(items), size=n, replace=False)
    rows, sources = [], []
    for k, i in enumerate(pick.tolist()):
        it = items.iloc[i]
        src = {"item_id": it["item_id"], "question": it["question"], "answer": it["answer"],
               "choices": list(it["choices"]) if isinstance(it["choices"], (list, np.ndarray)) else None,
               "item_type": it["item_type"], "language": it["language"]}
        rows.append(copy_row(src, rng, f"copy{k}", shuffle=True, renumber_numbers=True, word_share=0.1))
        sources.append(str(it["item_id"]))
    return rows, sources


def _short(text: str) -> str:
    """A long question's start and end (questions on one passage differ at the end)."""
    return text if len(text) <= 240 else f"{text[:130]} [...] {text[-100:]}"


def peer_pairs(texts: list[str]) -> tuple[set[tuple[int, int]], float]:
    t = time.perf_counter()
    pairs = find_enemy_pairs(texts)
    return {(int(a), int(b)) for a, b in pairs}, time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--copies", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=50)
    ap.add_argument("--bank-dir", type=Path, default=None)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA}")
        return 0
    rng = np.random.default_rng(args.seed)
    print(f"perturb: {PERTURB}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.bank_dir or Path(tmp)
        path = work / "neardup.duckdb"
        t = time.perf_counter()
        with open_bank(path, create=True) as bank:
            bank.import_items([DATA / "mmlu" / "items.parquet"], MMLU)
            t_index0 = time.perf_counter()
            n0 = bank.index_near_duplicates()
            t_index = time.perf_counter() - t_index0
            rep = bank.import_items([DATA / "mmlu_pro" / "items.parquet"], MMLU_PRO_DRAFTS)
            print(f"bank: MMLU ({n0:,} items, index {t_index:.1f} s) then MMLU-Pro as drafts "
                  f"({rep.new_items:,} new items, {rep.existing_items:,} merged into existing items) in "
                  f"{time.perf_counter() - t:.1f} s")
            return run(bank, args, rng, work)


def run(bank: itembank.Bank, args: argparse.Namespace, rng: np.random.Generator, work: Path) -> int:
    mmlu = pd.read_parquet(DATA / "mmlu" / "items.parquet")
    pro = pd.read_parquet(DATA / "mmlu_pro" / "items.parquet")
    test_q = {normalise(q) for q in mmlu.loc[mmlu["split"] == "test", "question"]}
    pro = pro.assign(equal=[normalise(q) in test_q for q in pro["question"]])
    pro_id = bank.items_for_aliases(pro["question_id"].astype(str).tolist(), "mmlu_pro")
    pro = pro.assign(item_id=pro["question_id"].astype(str).map(pro_id))
    mmlu_ids = set(bank.items({"source": ["mmlu"]}, with_tags=False)["item_id"])
    drafts = pro["item_id"].drop_duplicates().tolist()

    # (a) MMLU-Pro drafts against the MMLU bank
    t = time.perf_counter()
    m = bank.near_duplicates(drafts, threshold=args.threshold)
    t_a = time.perf_counter() - t
    leaks = bank.leaks(m)
    eq = pro[pro["equal"]].drop_duplicates("item_id")
    merged = eq["item_id"].isin(mmlu_ids)
    flagged_ids = set(m.loc[m["match_id"].isin(mmlu_ids), "item_id"])
    caught = eq["item_id"].isin(flagged_ids)
    n_eq = len(eq)
    print(f"\n(a) MMLU-Pro items whose question equals an MMLU test question: {n_eq:,} distinct items "
          f"({int(merged.sum())} merged into the MMLU item at import)")
    print(f"    flagged by QC (a match among the MMLU items): {int(caught.sum()):,} / {int((~merged).sum()):,} "
          f"not merged = {caught[~merged].mean():.4f}; counting merged as caught: "
          f"{(caught | merged).mean():.4f} (floor 0.99)  [{len(drafts):,} drafts checked in {t_a:.1f} s]")
    print(f"    leak flags (matches in another public source): {leaks['item_id'].nunique():,} drafts; by rule: "
          f"{m.drop_duplicates('item_id')['rule'].value_counts().to_dict()}")
    missed = eq[~caught & ~merged].head(5)
    for q in missed["question"]:
        print(f"    missed: {q[:110]!r}")

    # (b) perturbed copies of bank items
    bank_items = bank.items(with_tags=False)
    rows, sources = copies_of(bank_items, args.copies, rng)
    rep = bank.import_items([write_items(rows, work / "copies.jsonl")],
                            ImportOptions(source="copies", origin="model-generated", review_state="draft"))
    copy_ids = [bank.resolve(f"copies:{r['id']}") for r in rows]
    t = time.perf_counter()
    mc = bank.near_duplicates(copy_ids, threshold=args.threshold)
    t_b = time.perf_counter() - t
    pairs = set(zip(mc["item_id"], mc["match_id"], strict=True))
    hit = np.array([(c, s) in pairs for c, s in zip(copy_ids, sources, strict=True)])
    print(f"\n(b) {len(rows):,} perturbed copies ({rep.new_items} new items): flagged as near duplicates of their "
          f"source {hit.mean():.4f} (floor 0.95)  [checked in {t_b:.1f} s]")

    # peer: the sampler's full re-scan over bank + copies (question text, as the sampler passes it)
    frame = bank.items(with_tags=False)[["item_id", "question"]].reset_index(drop=True)
    found, t_peer = peer_pairs(frame["question"].fillna("").tolist())
    pos = {i: k for k, i in enumerate(frame["item_id"])}
    def peer_has(a: str, b: str) -> bool:
        i, j = sorted((pos[a], pos[b]))
        return (i, j) in found
    peer_b = np.mean([peer_has(c, s) for c, s in zip(copy_ids, sources, strict=True)])
    mm = {normalise(q): i for q, i in zip(frame["question"], frame["item_id"], strict=True) if i in mmlu_ids}
    peer_a = np.mean([normalise(q) in mm and peer_has(i, mm[normalise(q)])
                      for i, q in zip(eq.loc[~merged, "item_id"], eq.loc[~merged, "question"], strict=True)])
    print(f"\npeer sampler.find_enemy_pairs (TF-IDF cosine >= 0.9 on the question, full re-scan of "
          f"{len(frame):,} items): {t_peer:.1f} s, (a) {peer_a:.4f}, (b) {peer_b:.4f}; index check "
          f"(a)+(b) {t_a + t_b:.1f} s: ratio peer/index {t_peer / (t_a + t_b):.1f}x (one batch each)")

    # (c) flagged pairs that are neither planted copies nor equal questions (a copy's match with its source's
    # question, e.g. the MMLU-Pro twin of an MMLU source, counts as planted)
    texts = bank.items(with_tags=False).set_index("item_id")
    question = texts["question"].map(normalise)
    source_of = dict(zip(copy_ids, sources, strict=True))
    allm = pd.concat([m, mc], ignore_index=True)
    allm = allm[allm["rule"] == "near"]
    qa, qb = allm["item_id"].map(question), allm["match_id"].map(question)
    qsrc = allm["item_id"].map(source_of).map(question)
    other = allm[(qa != qb) & (qsrc.isna() | (qsrc != qb))]
    print(f"\n(c) near-rule flags that are neither planted copies nor equal questions: {len(other):,} pairs over "
          f"{other['item_id'].nunique():,} items (of {len(drafts) + len(copy_ids):,} checked); "
          f"{min(args.sample, len(other))} at random for a person to judge:")
    for _, r in other.sample(min(args.sample, len(other)), random_state=args.seed).iterrows():
        a, b = texts.loc[r["item_id"]], texts.loc[r["match_id"]]
        print(f"\n  J={r['similarity']:.2f}  {r['item_id']} vs {r['match_id']}")
        for tag, it in (("A", a), ("B", b)):
            print(f"   {tag}: {_short(it['question'])!r} | {list(it['choices'])[:4] if it['choices'] is not None else None}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
