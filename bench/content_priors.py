"""Content priors on MMLU-Pro: how well item content predicts calibrated difficulty, and what it buys.

Builds the MMLU-Pro bank as a user would (``category`` -> ``domain`` tag, ``src`` -> ``subject`` tag, the 20
models' answers), calibrates it with the product's default (``adt calibrate``: ``adt.workflow.calibrate``,
2PL), and on the items with status ``calibrated``:

1. 5-fold CV of ``calibration.fit_content_prior`` with near-duplicate pairs in the same fold (connected
   components of ``Bank.near_duplicates`` as GroupKFold groups): Spearman of predicted vs calibrated b and
   the share of b within 2 predictive SD, for the full model and its peers (tags-only ridge, TF-IDF words
   plus tags); then the same with folds grouped by ``src`` (the ``subject`` tag: whole sources unseen).
2. The gain: for every model, random forms of 100 calibrated items of which 30% are treated as new; the new
   items' b is the out-of-fold content prediction (a = the generic 1) vs the generic prior the sampler uses
   for uncalibrated items (a = 1, b = 0, ``sampler.pool``); EAP ability error vs the model's EAP on every
   calibrated item under the full calibration.

Usage: python bench/content_priors.py [--bank PATH] [--forms 20] [--skip-src]
(--bank: an already built and calibrated MMLU-Pro bank, reused as is; without it one is built in a temp dir.)

Measured (2026-12-06, 2 shared cores, --forms 10, seed 0, --bank of the default calibration; 10,687 calibrated
items, 376 near-duplicate groups of 2+): the content prior does NOT reach the 0.50 floor (0.491, was 0.472).
    folds          model            Spearman  within 2 SD  SD
    enemy-grouped  tags-only ridge  0.428     0.954        1.36
    enemy-grouped  tfidf+tags       0.449     0.953        1.34
    enemy-grouped  content prior    0.491     0.951        1.31
    src-grouped    tags-only ridge  0.240     0.961        1.47
    src-grouped    tfidf+tags       0.295     0.961        1.45
    src-grouped    content prior    0.366     0.959        1.42    (was 0.380)
  Ability error (EAP vs all-item EAP, 20 models x 10 forms, 30 of 100 items new): content prior RMSE 0.204
  (MAE 0.162), generic prior 0.216 (0.174), every item calibrated 0.162 (0.131).
  Fit on all 10,687 items, OMP_NUM_THREADS=1: 57 s CPU (69 s wall on the shared machine); the ridge-only
  prior it replaces took 87 s CPU (its TF-IDF was refitted in every inner fold).
Variants tried on the way (enemy-grouped, same outer folds and target; a scratch harness that cached the ridge's
inner-fold predictions (TF-IDF refitted per inner fold) and gave the trees 26 draft cues plus n_choices):
    ridge alone (the previous prior)                                       0.472
    ridge weighted by calibration precision, 1/max(SE(b), 0.3)^2           0.471  (no gain: dropped)
    + trees on ridge OOF b + key/text cues (the settings kept)             0.483
      same, trees also weighted by precision                               0.482
      same, on the precision-weighted ridge                                0.485
      + domain tag as a category in the trees                              0.489
      trees 600 x lr 0.02 / 200 x 7 leaves / 50-50 blend with the ridge   0.486 / 0.491 / 0.488
      (the trees' settings were fixed before these were seen and not changed after: choosing among them
      by these figures would be tuning on the test folds)
    product: trees + all tags and meta target-encoded (bench run)           0.485  (src-grouped 0.369)
    product + char 2-4 TF-IDF of the key's own text in the ridge           0.488  (0.491 in the table's run,
      where the key text got a constant "key " prefix: the spread between such runs is about 0.003)
  Single cues' Spearman with b: question words 0.32, numbers in the question 0.32, LaTeX 0.24, all options
  numeric 0.24, key the middle numeric value 0.22, option length spread -0.18, key longest -0.16.
  Last push (cprior3; the product code with temporary switches, cross_validate as above, run five at a time on
  the shared 2 cores, OMP_NUM_THREADS=1; baseline: the table's 0.491), none kept:
    + word rarity (wordfreq Zipf of the question's, key's and options' words: mean, min, 10/25/50% quantiles,
      share under 3) as tree features                                     0.489  (no gain: wordfreq not added)
    + the 17 key cues scaled into the ridge too (text stats were already there)  0.486  (no gain)
    + TruncatedSVD(100) of the word TF-IDF as tree features; ridge alpha grid 1, 3, 10, 30, 100: their single
      runs were stopped unfinished (time); all four together: 0.482 (fit on 10,687 items 272 s CPU, inner-CV
      SD 1.323: over the time budget and no better)
  The trees now run on one OpenMP thread (threadpoolctl, inside the fit): fit on all 10,687 items
  without OMP_NUM_THREADS set 78 s CPU, 145 s wall (CPU under wall: one thread; the machine was loaded ~4x).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from adt.workflow.calibrate import calibrate  # noqa: E402
from calibration import (  # noqa: E402
    CONTENT_FEATURES,
    ItemParams,
    calibration_params_frame,
    estimate_ability,
    fit_content_prior,
)
from itembank import ImportOptions, open_bank  # noqa: E402

MMLU_PRO = ImportOptions(source="mmlu_pro", language="en", id_cols=("question_id",), question_col="question",
                         choices_col="options", answer_col="answer", answer_format="letter",
                         tag_cols=(("category", "domain"), ("src", "subject")))
PEERS = {"tags-only ridge": ("tags",), "tfidf+tags": ("words", "tags"), "content prior": CONTENT_FEATURES}
GENERIC_A, GENERIC_B = 1.0, 0.0    # sampler.pool's PRIOR_A, PRIOR_B for uncalibrated items


def build(path: Path) -> None:
    with open_bank(path, create=True) as bank:
        bank.import_items([DATA / "mmlu_pro" / "items.parquet"], MMLU_PRO)
        bank.import_responses(DATA / "mmlu_pro" / "responses.parquet", source="mmlu_pro", model_col="model",
                              item_col="question_id", score_col="correct")
    print(calibrate(path).summary_line(), flush=True)


def enemy_groups(bank, ids: list[str]) -> np.ndarray:
    """Connected components of the near-duplicate graph over ``ids``."""
    nd = bank.near_duplicates(ids)
    pos = {i: k for k, i in enumerate(ids)}
    nd = nd[nd["item_id"].isin(pos) & nd["match_id"].isin(pos)]
    g = coo_matrix((np.ones(len(nd)), (nd["item_id"].map(pos), nd["match_id"].map(pos))), shape=(len(ids),) * 2)
    return connected_components(g, directed=False)[1]


def cross_validate(items: pd.DataFrame, b: np.ndarray, groups: np.ndarray, feats: tuple[str, ...],
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import GroupKFold

    pred, sd = np.empty(len(b)), np.empty(len(b))
    for k, (tr, te) in enumerate(GroupKFold(5).split(items, groups=groups)):
        cp = fit_content_prior(items.iloc[tr], b[tr], rng=np.random.default_rng([seed, k]), groups=groups[tr],
                               features=feats)
        p = cp.predict(items.iloc[te])
        pred[te], sd[te] = p.b, p.b_sd
    return pred, sd


def gain(pf: pd.DataFrame, scores: pd.DataFrame, prior_b: np.ndarray, forms: int, rng: np.random.Generator) -> dict:
    ids = pf.index.to_numpy()
    a, b = pf["a"].to_numpy(float), pf["b"].to_numpy(float)
    c, d = pf["c"].fillna(0.0).to_numpy(float), pf["d"].fillna(1.0).to_numpy(float)
    err: dict[str, list[float]] = {"content": [], "generic": [], "all calibrated": []}
    for _, row in scores.iterrows():
        y = row.reindex(ids).to_numpy(float)
        seen = np.flatnonzero(np.isfinite(y))
        truth = estimate_ability(y[seen], ItemParams(tuple(ids[seen]), a[seen], b[seen], c[seen], d[seen])).theta
        for _ in range(forms):
            f = rng.choice(seen, 100, replace=False)
            new = np.zeros(100, bool)
            new[rng.choice(100, 30, replace=False)] = True
            for arm, bb, aa in (("content", prior_b[f], GENERIC_A), ("generic", GENERIC_B, GENERIC_A),
                                ("all calibrated", b[f], a[f])):
                fa, fb = a[f].copy(), b[f].copy()
                fa[new] = aa if np.isscalar(aa) else np.asarray(aa)[new]
                fb[new] = bb if np.isscalar(bb) else np.asarray(bb)[new]
                est = estimate_ability(y[f], ItemParams(tuple(ids[f]), fa, fb, c[f], d[f])).theta
                err[arm].append(est - truth)
    return {k: (float(np.sqrt(np.mean(np.square(v)))), float(np.mean(np.abs(v)))) for k, v in err.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bank", type=Path, default=None)
    ap.add_argument("--forms", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-src", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.bank or Path(tmp) / "mmlu_pro.duckdb"
        if args.bank is None:
            build(path)
        with open_bank(path) as bank:
            items = bank.items()
            pf = calibration_params_frame(bank).set_index("item_id")
            ok = pf.reindex(items["item_id"])["status"].eq("calibrated").to_numpy()
            items = items[ok].reset_index(drop=True)
            groups = enemy_groups(bank, items["item_id"].tolist())
            resp = bank.responses()[["model", "item_id", "score"]]
    pf = pf.loc[items["item_id"]]
    b = pf["b"].to_numpy(float)
    print(f"{len(items)} calibrated items, {len(set(groups))} near-duplicate groups "
          f"({int((np.bincount(groups) > 1).sum())} with 2+ items)", flush=True)
    oof: dict[str, np.ndarray] = {}

    def run(split: str, g: np.ndarray) -> None:
        for name, feats in PEERS.items():
            t = time.perf_counter()
            pred, sd = cross_validate(items, b, g, feats, args.seed)
            rho = spearmanr(pred, b)[0]
            cover = np.mean(np.abs(pred - b) < 2 * sd)
            print(f"{split:14s} {name:16s} Spearman {rho:.3f}  within 2 SD {cover:.3f}  SD {np.mean(sd):.2f}  "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
            oof[f"{split}:{name}"] = pred

    run("enemy-grouped", groups)
    scores = resp.pivot_table(index="model", columns="item_id", values="score", aggfunc="mean")
    res = gain(pf, scores, oof["enemy-grouped:content prior"], args.forms, np.random.default_rng(args.seed))
    print(f"ability error, forms of 100 with 30 new items ({len(scores)} models x {args.forms} forms):")
    for arm, (rmse, mae) in res.items():
        print(f"  {arm:15s} RMSE {rmse:.3f}  MAE {mae:.3f}", flush=True)
    if not args.skip_src:
        run("src-grouped", pd.factorize(items["subject"])[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
