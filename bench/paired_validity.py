"""Paired comparisons on MMLU-Pro: does `adt compare`'s 95% interval hold the true whole-bank difference?

Protocol (issue 10): the 20 models in 5 folds of 4 (assigned by accuracy rank, k-th fold = ranks k, k+5,
...); per fold a fresh real bank with every model's responses, `adt calibrate --irt 2pl --exclude-model`
for the 4 (the product's workflow, in-process), then the 4 take the same 10 disjoint random 100-item forms
(`random` strategy of the sampler, on the calibration's pool) and every pair is compared on each form
with `calibration.predictive.compare` (what `adt compare` runs) from the form answers alone: 5 x 10 x 6 =
300 comparisons. Truth: the difference of the two models' accuracies on every item of the bank.

Prints coverage of the paired 95% interval (with a bootstrap interval resampling held-out models' folds),
its mean width next to the unpaired interval built from the two models' own predictive SDs (what
comparing two `adt estimate` intervals would give), and that interval's coverage.

    .venv/bin/python bench/paired_validity.py [--forms 10] [--size 100] [--seed 2026]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "mmlu_pro"

from adt.workflow.calibrate import CalibrateOptions, calibrate  # noqa: E402
from calibration import compare, load_calibration, predict  # noqa: E402
from itembank import ImportOptions, open_bank  # noqa: E402
from sampler import FormSpec, get_sampler, prepare  # noqa: E402

Z95 = 1.959963984540054


def build_bank(path: Path, responses: Path) -> None:
    with open_bank(path, create=True) as bank:
        bank.import_items([DATA / "items.parquet"], ImportOptions(
            source="mmlu_pro", language="en", id_cols=("question_id",), question_col="question",
            choices_col="options", answer_col="answer", answer_format="letter", tag_cols=(("category", "domain"),)))
        bank.import_responses(responses, source="mmlu_pro", model_col="model", item_col="question_id",
                              score_col="correct")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forms", type=int, default=10)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: MMLU-Pro data not found at {DATA}")
        return 0
    t0 = time.perf_counter()
    r = pd.read_parquet(DATA / "responses.parquet").drop_duplicates(["model", "question_id"])
    order = r.groupby("model")["correct"].mean().sort_values().index.tolist()
    folds = [order[k::5] for k in range(5)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        resp_file = Path(tmp) / "responses.parquet"
        r[["model", "question_id", "correct"]].to_parquet(resp_file)
        base = Path(tmp) / "base.duckdb"
        build_bank(base, resp_file)
        for k, held in enumerate(folds):
            bank_path = Path(tmp) / f"fold{k}.duckdb"
            bank_path.write_bytes(base.read_bytes())
            calibrate(bank_path, CalibrateOptions(irt="2pl", exclude_models=tuple(held)))
            with open_bank(bank_path) as bank:
                stored = load_calibration(bank)
                items = bank.items(with_tags=True)
                mean = bank.responses().groupby(["model", "item_id"])["score"].mean()
            pm = stored.predictive
            assert pm is not None
            slice_ids = items["item_id"].astype(str).tolist()
            truth = {m: float(mean.loc[m].reindex(slice_ids).mean()) for m in held}
            pool = items.merge(stored.pool_frame(), on="item_id", how="left")
            used: set[str] = set()
            rng = np.random.default_rng([args.seed, k])
            for f in range(args.forms):
                spec = FormSpec.from_dict({"size": args.size, "strategy": "random", "enemy_threshold": None,
                                           "seed": int(rng.integers(2**31))})
                draft = get_sampler("random").sample_prepared(prepare(pool[~pool.item_id.isin(used)], spec), spec)
                used.update(draft.item_ids)
                form = list(draft.item_ids)
                scores = {m: mean.loc[m].reindex(form).dropna() for m in held}
                preds = {m: predict(pm, scores[m], slice_ids) for m in held}
                for a, b in combinations(held, 2):
                    c = compare(pm, scores[a], scores[b], slice_ids, rng=np.random.default_rng(rng.integers(2**32)))
                    true_diff = truth[a] - truth[b]
                    sd_un = float(np.hypot(preds[a].pred_sd, preds[b].pred_sd))
                    rows.append({"fold": k, "form": f, "a": a, "b": b, "truth": true_diff, "diff": c.diff_acc,
                                 "lo": c.acc_lo, "hi": c.acc_hi, "p": c.p_acc, "un_lo": c.diff_acc - Z95 * sd_un,
                                 "un_hi": c.diff_acc + Z95 * sd_un, "n_common": c.n_common})
            d = pd.DataFrame(rows)
            cov = ((d.lo <= d.truth) & (d.truth <= d.hi)).mean()
            print(f"fold {k} ({', '.join(held)}): {len(d)} comparisons so far, coverage {cov:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    d = pd.DataFrame(rows)
    d["covered"] = (d.lo <= d.truth) & (d.truth <= d.hi)
    d["covered_unpaired"] = (d.un_lo <= d.truth) & (d.truth <= d.un_hi)
    boot_rng = np.random.default_rng(args.seed)
    by_model = {m: d[(d.a == m) | (d.b == m)].index.to_numpy() for m in order}
    boots = []
    for _ in range(2000):  # resample held-out models; a comparison counts once per drawn model it involves
        pick = boot_rng.choice(order, len(order), replace=True)
        idx = np.concatenate([by_model[m] for m in pick])
        boots.append(d.covered.to_numpy()[idx].mean())
    lo, hi = np.quantile(boots, [0.025, 0.975])
    cov = float(d.covered.mean())
    print(f"\n{len(d)} paired comparisons ({d.fold.nunique()} folds x {args.forms} forms of {args.size} x 6 pairs), "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"paired 95% interval: coverage {cov:.3f} (model bootstrap {lo:.3f}-{hi:.3f}), mean width "
          f"{(d.hi - d.lo).mean():.4f}, MAE of the difference {(d['diff'] - d.truth).abs().mean():.4f}")
    print(f"unpaired interval from the two estimates: coverage {d.covered_unpaired.mean():.3f}, mean width "
          f"{(d.un_hi - d.un_lo).mean():.4f} (paired/unpaired width {(d.hi - d.lo).mean() / (d.un_hi - d.un_lo).mean():.2f})")
    print(f"share with p < 0.05: {(d.p < 0.05).mean():.3f}; of those, sign right: "
          f"{(np.sign(d['diff']) == np.sign(d.truth))[d.p < 0.05].mean():.3f}")
    ok = 0.93 <= cov <= 0.97
    print(f"floor (coverage 0.93-0.97): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
