"""Key errors found on real data: 2,000 MMLU-Pro items, 100 planted key flips, QC with the 20 recorded models.

The product path only: ``adt init``, ``adt bank import --review-state draft`` of a seeded 2,000-item sample of
``mmlu_pro/items.parquet`` with the key of 100 of them flipped to another option (seeded), then
``adt qc --check schema --check solvers --backend replay`` with the 20 models of ``mmlu_pro/responses.parquet``
as solvers (replay re-scores each recorded ``pred`` against the item's current key).

Prints recall of ``key_suspect`` on the planted flips and planted-only precision, and, against the peer the
issue names (a plain agreement rule over all 20 models: flag when the majority answer is not the key), the
same two figures. Unplanted flags are real MMLU-Pro items whose key the models dispute: with
``--checked FILE`` (a JSON list of ``{"question_id", "verdict": key_wrong|ambiguous|key_right, "reason"}`` from
reading the items; default ``bench/qc_key_errors_checked.json``: 60 of the seed-0 unplanted flags, each worked
through by a reader told to call an item ambiguous or miskeyed only when able to name the concrete problem) it also prints precision counting an unplanted flag as right when its verdict is key_wrong or
ambiguous (extrapolated from the checked share to every unplanted flag) and writes the unplanted flags not
yet checked with ``--dump FILE``.

    python bench/qc_key_errors.py [--seed 0] [--checked checked.json] [--dump to_check.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from itembank import LETTERS, open_bank

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu_pro"
N_ITEMS, N_FLIPS = 2000, 100


def planted_sample(items: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, set[int]]:
    """The seeded sample with ``N_FLIPS`` keys moved to another option; the question ids flipped."""
    rng = np.random.default_rng(seed)
    pick = items.iloc[rng.choice(len(items), N_ITEMS, replace=False)].reset_index(drop=True).copy()
    flipped = rng.choice(N_ITEMS, N_FLIPS, replace=False)
    answers = pick["answer"].tolist()
    for i in flipped:
        n = len(pick["options"].iloc[i])
        others = [k for k in range(n) if LETTERS[k] != answers[i]]
        answers[i] = LETTERS[int(rng.choice(others))]
    pick["answer"] = answers
    return pick, {int(q) for q in pick["question_id"].iloc[flipped]}


def adt(bank: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "adt", "--bank", str(bank), *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"adt {' '.join(args[:3])} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checked", type=Path, default=Path(__file__).with_name("qc_key_errors_checked.json"),
                    help="verdicts from reading unplanted flags (default: the 60 read for seed 0)")
    ap.add_argument("--dump", type=Path, default=None)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA}")
        return 0
    items = pd.read_parquet(DATA / "items.parquet")
    responses = pd.read_parquet(DATA / "responses.parquet")
    models = sorted(responses["model"].unique())
    sample, planted = planted_sample(items, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        bank, src = Path(tmp) / "qc.duckdb", Path(tmp) / "sample.parquet"
        sample.to_parquet(src)
        t = time.perf_counter()
        adt(bank, "init")
        adt(bank, "bank", "import", str(src), "--source", "mmlu_pro", "--id-col", "question_id", "--question-col",
            "question", "--choices-col", "options", "--answer-col", "answer", "--answer-format", "letter",
            "--language", "en", "--tag-col", "category=domain", "--review-state", "draft")
        t_import = time.perf_counter() - t
        t = time.perf_counter()
        solver_flags = [x for m in models for x in ("--solver", m)]
        adt(bank, "qc", "--check", "schema", "--check", "solvers", "--backend", "replay", "--backend-arg",
            f"path={DATA / 'responses.parquet'}", "--backend-arg", "source=mmlu_pro", *solver_flags, "--json")
        t_qc = time.perf_counter() - t
        with open_bank(bank) as b:
            flags = b.qc_flags()
            alias = b.aliases_of(list(flags))
    qid = {i: int(a[0].split(":", 1)[-1]) if a else None for i, a in alias.items()}
    solver = {qid[i]: c["solvers"] for i, c in flags.items() if "solvers" in c}
    suspect = {q for q, c in solver.items() if "key_suspect" in c["flags"]}
    # The peer: a plain majority over all 20 models (the "simple agreement rule").
    plain = {q for q, c in solver.items() if c["detail"]["majority"] not in (None, c["detail"]["key"])}
    print(f"import {t_import:.1f} s, qc (schema + 20 replay solvers + key check) {t_qc:.1f} s; "
          f"{len(solver)} items checked by solvers, {len(planted)} planted flips")
    for label, got in (("adt key_suspect", suspect), ("peer: majority != key", plain)):
        hits = len(got & planted)
        print(f"{label:<24} flags {len(got):>5}  recall {hits / len(planted):.3f}  "
              f"planted-only precision {hits / max(len(got), 1):.3f}")
    unplanted = sorted(suspect - planted)
    if args.checked and args.checked.is_file():
        verdicts = {int(r["question_id"]): r["verdict"] for r in json.loads(args.checked.read_text())}
        seen = [q for q in unplanted if q in verdicts]
        right = sum(verdicts[q] in ("key_wrong", "ambiguous") for q in seen)
        share = right / max(len(seen), 1)
        hits = len(suspect & planted)
        prec = (hits + share * len(unplanted)) / max(len(suspect), 1)
        print(f"unplanted flags {len(unplanted)}: {len(seen)} checked by reading, {right} key wrong or ambiguous "
              f"({share:.2f}); precision by the issue's rule {prec:.3f} "
              f"(= ({hits} + {share:.2f} x {len(unplanted)}) / {len(suspect)})")
    if args.dump:
        rows = items.set_index("question_id")
        out = [{"question_id": q, "question": rows.loc[q, "question"],
                "options": {LETTERS[k]: o for k, o in enumerate(rows.loc[q, "options"])},
                "stated_key": rows.loc[q, "answer"], "solvers": solver[q]["detail"]} for q in unplanted]
        args.dump.write_text(json.dumps(out, ensure_ascii=False, indent=1))
        print(f"wrote {len(out)} unplanted flags to {args.dump}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
