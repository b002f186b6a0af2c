"""Validity by replay: do scores on sampled forms predict a model's whole-bank accuracy?

For each MMLU-Pro model in turn: calibrate a 2PL by MML (``calibration.mml.fit_mml``) on the other
19 models, build 10 disjoint 100-item forms per strategy (random, stratified, milp, nsga2; quotas:
domain shares of the bank; information targeted over the calibrated ability range), replay the
held-out model's recorded answers on each form (``runners.replay``), and predict its accuracy on the
whole bank with ``calibration.ability.predict_score`` (observed answers + predictive distribution of
the rest). Actual = its mean score over all the items it answered.

Reports per strategy the MAE of the predicted accuracy and the coverage of the 95% predictive
intervals, next to the raw accuracy of random 100-item forms. Floors: IRT MAE below the raw MAE;
coverage between 0.90 and 0.98.

Items all right / all wrong among the 19 calibration models have no estimates: in the forms they are
uncalibrated (priors); in the prediction they are given an extreme difficulty (a=1, b beyond the
calibrated range on their side) so a 0/19 item predicts a near-certain miss, not a coin flip.

With ``--param-draws N`` the 95% intervals also carry item-parameter uncertainty (N draws from the
calibration's standard errors); without it they carry ability and Bernoulli uncertainty only.

Usage: python bench/replay_validity.py [--cache DIR] [--folds N] [--forms N] [--param-draws N]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from calibration.irt import ItemParams  # noqa: E402
from sampler import FormSpec, get_sampler, prepare  # noqa: E402

STRATEGIES = ("random", "stratified", "milp", "nsga2")


def fold_calibration(r: pd.DataFrame, held_out: str, cache: Path | None, with_se: bool = False):
    from calibration.data import ResponseSet
    from calibration.mml import fit_mml

    path = cache / f"mmlu_pro_2pl_without_{held_out}{'_se' if with_se else ''}.pkl" if cache else None
    if path and path.exists():
        return pickle.loads(path.read_bytes())
    train = r[r.model != held_out]
    t0 = time.perf_counter()
    # Standard errors only when the prediction draws item parameters from them.
    res = fit_mml(ResponseSet.from_frame(train, "model", "item_id", "correct"), "2pl", rng=np.random.default_rng(0),
                  compute_se=with_se)
    print(f"  calibration without {held_out}: {time.perf_counter() - t0:.1f} s, converged={res.converged}",
          flush=True)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(res))
    return res


def prediction_params(res) -> ItemParams:
    """Fold parameters with the extreme items pinned beyond the calibrated difficulty range."""
    st = np.asarray(res.item_status)
    ok = st == "calibrated"
    b = res.params.b.copy()
    a = res.params.a.copy()
    edge = float(np.max(np.abs(b[ok]))) + 1.0
    a[~ok] = 1.0
    b[st == "all_correct"] = -edge
    b[st == "all_wrong"] = edge
    b[st == "unanswered"] = 0.0
    return ItemParams(res.params.item_ids, a, b, res.params.c, res.params.d)


def _request(item_id: str):
    from runners.base import Request, ScoringRule

    return Request(item_id=item_id, prompt="(replayed)", item_type="mc", scoring=ScoringRule("choice", "A"),
                   choices=("a", "b"), choice_labels=("A", "B"))


def main() -> int:
    from calibration.ability import predict_score
    from runners.replay import ReplayRunner

    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--folds", type=int, default=20, help="how many models to hold out (spread by accuracy)")
    ap.add_argument("--forms", type=int, default=10)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--nsga-gens", type=int, default=60)
    ap.add_argument("--param-draws", type=int, default=0,
                    help="draw item parameters from their SEs in the predictive interval (0: ability only)")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA}")
        return 0
    r = pd.read_parquet(DATA / "mmlu_pro" / "responses.parquet")
    r["item_id"] = "mmlu_pro:" + r["question_id"].astype(str)
    items = pd.read_parquet(DATA / "mmlu_pro" / "items.parquet", columns=["question_id", "options", "category"])
    base = pd.DataFrame({"item_id": "mmlu_pro:" + items["question_id"].astype(str), "domain": items["category"],
                         "n_choices": items["options"].map(len), "review_state": "approved", "language": "en"})
    shares = np.floor(base["domain"].value_counts(normalize=True) * 1e4) / 1e4  # sums to <= 1
    quotas = {"domain": {k: float(v) for k, v in shares.items()}}
    # Held-out models spread over the accuracy range when fewer than all 20 folds are run.
    by_acc = r.groupby("model").correct.mean().sort_values()
    pick = np.unique(np.linspace(0, len(by_acc) - 1, min(args.folds, len(by_acc))).round().astype(int))
    models = list(by_acc.index[pick])
    rows = []
    t_start = time.perf_counter()
    for held in models:
        res = fold_calibration(r, held, args.cache, with_se=args.param_draws > 0)
        pp = prediction_params(res)
        se = {k: np.where(np.asarray(res.item_status) == "calibrated", np.nan_to_num(v, nan=0.0), 0.0)
              for k, v in res.se.items()} if args.param_draws > 0 else None
        draw_rng = np.random.default_rng(99)
        pidx = {i: k for k, i in enumerate(pp.item_ids)}
        ok = np.asarray(res.item_status) == "calibrated"
        table = pd.DataFrame({"item_id": list(res.params.item_ids), "a": np.where(ok, res.params.a, np.nan),
                              "b": np.where(ok, res.params.b, np.nan), "c": 0.0, "d": 1.0})
        pool = base.merge(table, on="item_id", how="left")
        lo, hi = np.quantile(res.theta, [0.1, 0.9])
        mine = r[r.model == held]
        actual = float(mine.correct.mean())
        answered = np.zeros(len(pp), dtype=bool)
        answered[[pidx[i] for i in mine.item_id if i in pidx]] = True
        runner = ReplayRunner(mine, held, item_col="item_id", score_col="correct", output_col=None, missing_col=None,
                              skip_missing=True)
        for strategy in STRATEGIES:
            used: set[str] = set()
            for f in range(args.forms):
                spec = FormSpec.from_dict({"size": args.size, "quotas": quotas if strategy != "random" else {},
                                           "enemy_threshold": None, "theta_range": [float(lo), float(hi)],
                                           "seed": 1000 * f + len(held), "strategy": strategy,
                                           "options": {"n_gen": args.nsga_gens, "pop_size": 40,
                                                       "weights": {"information": 1.0, "novelty": 0.0,
                                                                   "exposure_peak": 0.0, "coverage": 0.0}}})
                prep = prepare(pool[~pool.item_id.isin(used)], spec)  # disjoint forms
                draft = get_sampler(strategy).sample_prepared(prep, spec)
                used.update(draft.item_ids)
                results = runner.score([_request(i) for i in draft.item_ids])
                # Items the model never answered are skipped: not observed, and not in its bank either.
                kept = [(pidx[x.item_id], x.score) for x in results if x.error != "missing"]
                idx = np.array([k for k, _ in kept], dtype=np.int64)
                scores = np.array([s for _, s in kept])
                rest = np.setdiff1d(np.flatnonzero(answered), idx)
                if se is None:
                    pred = predict_score(scores, pp.subset(idx), pp.subset(rest), level=0.95)
                else:
                    pred = predict_score(scores, pp.subset(idx), pp.subset(rest), level=0.95,
                                         param_se={k: v[rest] for k, v in se.items()},
                                         observed_param_se={k: v[idx] for k, v in se.items()},
                                         n_param_draws=args.param_draws, rng=draw_rng)
                rows.append({"model": held, "strategy": strategy, "form": f, "actual": actual,
                             "predicted": pred.mean, "lo": pred.lo, "hi": pred.hi, "raw": float(scores.mean()),
                             "n_uncalibrated": draft.n_uncalibrated})
        done = pd.DataFrame(rows)
        print(f"  {held}: actual {actual:.3f}; mean |pred - actual| so far "
              f"{(done.predicted - done.actual).abs().mean():.4f} ({time.perf_counter() - t_start:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    df["abs_err"] = (df.predicted - df.actual).abs()
    df["covered"] = (df.actual >= df.lo) & (df.actual <= df.hi)
    raw_mae = float((df[df.strategy == "random"].raw - df[df.strategy == "random"].actual).abs().mean())
    print(f"\nheld-out models: {df.model.nunique()}, forms per strategy per model: {args.forms}, size {args.size}")
    print(f"raw accuracy of random {args.size}-item forms: MAE {raw_mae:.4f}")
    ok = True
    for strategy in STRATEGIES:
        d = df[df.strategy == strategy]
        mae, cov = float(d.abs_err.mean()), float(d.covered.mean())
        raw = float((d.raw - d.actual).abs().mean())
        good = mae < raw_mae and 0.90 <= cov <= 0.98
        ok &= good
        print(f"{strategy:<11} IRT MAE {mae:.4f}  95% coverage {cov:.3f}  (raw accuracy of these forms: MAE {raw:.4f}; "
              f"mean uncalibrated items {d.n_uncalibrated.mean():.1f})  floors: {'PASS' if good else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
