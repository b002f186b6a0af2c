"""Real-data study: predict held-out models' full-benchmark accuracy from 30 random items, through the product.

For each Open LLM Leaderboard matrix in ../shared/data/leaderboard/ (long: model, item, correct; the
items file holds each item's prompt) this runs adt's own default path, in-process:

1. a fresh DuckDB bank in a temporary directory (``itembank.open_bank(path, create=True)``);
   ``Bank.import_items`` of the prompts as keyless items (``ImportOptions(no_key=True)``, the README's
   ``--no-key --type open``; GSM8K, scored by exact match on a number, as ``item_type="numeric"``);
   ``Bank.import_responses`` of the TRAINING models only (80% of the models, split with
   ``numpy.random.default_rng([seed, bench index])`` as the old bench did);
2. ``adt.workflow.calibrate.calibrate(bank_path, CalibrateOptions(irt="auto"))``: the product's defaults
   (``--guessing auto``: c held at 0 when every item is numeric, so on GSM8K only; the stored settings'
   ``guessing_fixed_at_zero`` is printed), the IRT model chosen by held-out log-likelihood;
3. for each held-out model (20%; ``--max-heldout`` caps them, a random subset): 30 random items among
   those it answered (seeded) are its observed answers, and
   ``adt.workflow.calibrate.estimate_scores(load_calibration(bank), scores, slice_ids=<every item it
   answered>, level=0.95)`` gives ``pred_acc`` and the 95% interval ``[pred_lo, pred_hi]`` with the stored
   predictive parameters (``adt estimate``'s numbers). Leaderboard item names reach the bank's content-hash
   ids through ``Bank.items_for_aliases`` (bulk ``SOURCE:ID`` resolution).

Per benchmark: models, items, held-out models, the IRT model ``--irt auto`` chose, whether c was held at 0,
MAE of ``pred_acc`` vs the model's accuracy on every item it answered, MAE of the raw accuracy of the same
30 items, their ratio, coverage of [pred_lo, pred_hi] (bootstrap 95% interval over held-out models), mean
interval width next to the mean Wilson 95% width of the 30-item raw accuracy, share flagged
``extrapolated``, mean |person_fit_z|, and seconds. Floors (issue 3), PASS/FAIL, exit 1 if one fails:
IRT MAE below raw MAE on every benchmark; coverage within 0.92-0.98. Diagnostic lines per benchmark (not
floors): the --irt auto candidates' held-out log-likelihood; coverage of extrapolated / weakest decile /
strongest decile / |person_fit_z| > 2 models and which side the misses fall on; the mean SD of each term
of the interval (``sd_components``); and coverage/width of the same prediction under
``predictive_model(bank, stored, exact_params=True)`` (``adt estimate --exact-params``).

Measured 2026-12-05 on the 2-core dev machine (product default path, n_obs 30, every held-out model,
no cap; 5.5-8.5 min a run depending on the machine's load):
    --irt auto chose the 4PL on all four (held-out log-lik per response 1pl < 2pl < 3pl < 4pl; on GSM8K
    2pl = 3pl exactly: c held at 0, guessing_fixed_at_zero True there and False elsewhere). No held-out
    model was flagged extrapolated (2,700-3,500 calibration models span every held-out ability).
    After the misfit term lost its Bernoulli-noise part (calibration/predictive.py: residual spread less
    its parametric-bootstrap null; misfit_sd ARC 0.030 -> 0.025, GSM8K 0.015 -> 0.012, TruthfulQA
    0.021 -> 0.017, WinoGrande 0.038 -> 0.027):
    seed 2026  MAE IRT / raw (ratio)     coverage [bootstrap 95%]  width / Wilson-30  |pf z|  floors
      arc         0.0340 / 0.0563 (0.60)  0.975 [0.964-0.987]      0.192 / 0.294      1.46    PASS
      gsm8k       0.0371 / 0.0515 (0.72)  0.962 [0.948-0.974]      0.194 / 0.268      1.17    PASS
      truthfulqa  0.0338 / 0.0535 (0.63)  0.955 [0.940-0.969]      0.164 / 0.275      1.22    PASS
      winogrande  0.0329 / 0.0509 (0.65)  0.974 [0.963-0.984]      0.189 / 0.273      1.19    PASS
    Before that change (misfit with its noise part) seed 2026 covered ARC 0.984 and WinoGrande 0.985, over
    the 0.98 ceiling, and seed 7 ARC 0.968, GSM8K 0.962, TruthfulQA 0.958, WinoGrande 0.9795; MAE is the
    same (the misfit term only widens). Coverage still errs wide rather than narrow on ARC/WinoGrande; the
    misses are split evenly above/below and are not concentrated in weak or strong models. Nothing in the
    product was tuned on these figures (the misfit change was made for a reason of principle and measured
    here afterwards).

History - the OLD bench-only method (its own IRT/latent selection on validation models, c fixed at 0
for GSM8K by hand, ``predict_score`` directly), kept for comparison:
    4PL chosen everywhere, GSM8K with c = 0:
    seed 2026: MAE IRT / raw / coverage  arc 0.0346/0.0579/0.930  gsm8k 0.0389/0.0514/0.950
               truthfulqa 0.0323/0.0521/0.940  winogrande 0.0309/0.0496/0.951
    seed 7:    arc 0.0320/0.0537/0.946  gsm8k 0.0369/0.0532/0.960  truthfulqa 0.0299/0.0514/0.950
               winogrande 0.0303/0.0482/0.954
    With c estimated on GSM8K (prior mean 0.23) that 4PL covered only 0.90: models at ~0% accuracy sat
    below the lower asymptote.

    .venv/bin/python bench/leaderboard_holdout.py [--bench arc,...] [--seed 2026] [--n-obs 30]
        [--max-heldout N] [--n-boot 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adt.workflow.calibrate import CalibrateOptions, calibrate, estimate_scores, predictive_model  # noqa: E402
from calibration import load_calibration  # noqa: E402
from itembank import ImportOptions, open_bank  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "leaderboard"
BENCHES = ("arc", "gsm8k", "truthfulqa", "winogrande")
FLOOR_COVERAGE = (0.92, 0.98)
LEVEL = 0.95
# GSM8K is scored by exact match on a generated number: its items are numeric; the others are open
# (keyless prompts). The product's --guessing auto decides c from these types.
ITEM_TYPE = {"gsm8k": "numeric"}


def split_models(models: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Held-out model indices (sorted): 20% of the models, as the old bench drew them."""
    return np.sort(rng.choice(models.size, int(round(0.2 * models.size)), replace=False))


def wilson_width(k: np.ndarray, n: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Width of the Wilson score interval for k right out of n."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    return 2 * z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))


def bootstrap_mean(x: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    """Percentile 95% interval of the mean of ``x`` resampling its entries (held-out models)."""
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def build_bank(name: str, path: Path, items: pd.DataFrame, train: pd.DataFrame) -> None:
    """A fresh bank: the prompts as keyless items, then the training models' responses."""
    tmp = path.parent
    items_file, resp_file = tmp / f"{name}.items.parquet", tmp / f"{name}.train.parquet"
    items.to_parquet(items_file, index=False)
    train.to_parquet(resp_file, index=False)
    opts = ImportOptions(source=name, id_cols=("item",), question_col="prompt", no_key=True,
                         item_type=ITEM_TYPE.get(name, "open"), language="en")
    with open_bank(path, create=True, purpose="bench leaderboard_holdout: import") as bank:
        bank.import_items([items_file], opts)
        rep = bank.import_responses(resp_file, source=name, model_col="model", item_col="item",
                                    score_col="correct", strict=True)
    assert rep is not None


def study(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    df = pd.read_parquet(DATA / f"{name}.responses.parquet")
    items = pd.read_parquet(DATA / f"{name}.items.parquet")
    df["model"] = df["model"].astype(str)
    df["item"] = df["item"].astype(str)
    models = np.array(sorted(df["model"].unique()), dtype=object)
    rng = np.random.default_rng([args.seed, BENCHES.index(name)])
    held_all = split_models(models, rng)
    held_names = set(models[held_all])
    train = df[~df["model"].isin(held_names)]
    held = held_all
    if args.max_heldout and held.size > args.max_heldout:
        held = np.sort(rng.choice(held, args.max_heldout, replace=False))

    bank_path = tmp / name / "bank.duckdb"
    bank_path.parent.mkdir(parents=True)
    build_bank(name, bank_path, items, train)
    t_import = time.perf_counter() - t0
    outcome = calibrate(bank_path, CalibrateOptions(irt="auto"))
    t_cal = time.perf_counter() - t0 - t_import
    with open_bank(bank_path, purpose="bench leaderboard_holdout: load") as bank:
        stored = load_calibration(bank)
        exact = predictive_model(bank, stored, exact_params=True)   # adt estimate --exact-params: diagnostic only
        id_of = bank.items_for_aliases(items["item"].astype(str), name)
    if len(id_of) != len(items) or len(set(id_of.values())) != len(items):
        raise SystemExit(f"{name}: {len(items)} items but {len(id_of)} aliases / {len(set(id_of.values()))} ids")
    settings = stored.settings
    fixed0 = bool(settings.get("guessing_fixed_at_zero"))
    sel = outcome.selection
    if sel is not None:
        cand = "; ".join(f"{c.model} {c.heldout_loglik_per_obs:.4f}{'' if c.converged else ' (not converged)'}"
                         for c in sel.itertuples())
        print(f"  {name}: --irt auto held-out log-likelihood per response: {cand}", flush=True)
    pm = stored.predictive
    assert pm is not None, "the product stores predictive parameters with every calibration"
    print(f"  {name}: chose {stored.irt_model}; guessing_fixed_at_zero={fixed0}; converged={outcome.result.converged} "
          f"n_iter={outcome.result.n_iter}; predictive: se_source={pm.se_source} misfit_sd={pm.misfit_sd:.4f}; "
          f"import {t_import:.0f}s, calibrate {t_cal:.0f}s", flush=True)

    # Held-out models: 30 random answered items observed, the prediction covers every item answered.
    t1 = time.perf_counter()
    df["item_id"] = df["item"].map(id_of)
    held_df = df[df["model"].isin(set(models[held]))]
    recs = []
    for model, rows in held_df.groupby("model", sort=True):
        ids = rows["item_id"].to_numpy(dtype=object)
        y = rows["correct"].to_numpy(dtype=float)
        pick = rng.choice(ids.size, size=min(args.n_obs, ids.size), replace=False)
        scores = pd.Series(y[pick], index=pd.Index(ids[pick]))
        est = estimate_scores(stored, scores, list(ids), level=LEVEL)
        if est["n_predicted"] != ids.size:
            raise SystemExit(f"{name}: {model}: prediction covers {est['n_predicted']} of {ids.size} items")
        ex = estimate_scores(exact, scores, list(ids), level=LEVEL)
        recs.append({**{f"sd_{k}": v for k, v in est.get("sd_components", {}).items()},
                     "ex_lo": ex["pred_lo"], "ex_hi": ex["pred_hi"], "model": model, "actual": float(y.mean()), "raw": float(y[pick].mean()), "k": float(y[pick].sum()),
                     "n_obs": pick.size, "pred": est["pred_acc"], "lo": est["pred_lo"], "hi": est["pred_hi"],
                     "theta": est["theta"], "extrapolated": bool(est["extrapolated"]),
                     "pf_z": est["person_fit_z"]})
    t_pred = time.perf_counter() - t1
    r = pd.DataFrame(recs)
    r["hit"] = (r["lo"] <= r["actual"] + 1e-12) & (r["actual"] <= r["hi"] + 1e-12)
    r["ex_hit"] = (r["ex_lo"] <= r["actual"] + 1e-12) & (r["actual"] <= r["ex_hi"] + 1e-12)
    r["err"] = (r["pred"] - r["actual"]).abs()
    r["raw_err"] = (r["raw"] - r["actual"]).abs()
    boot_rng = np.random.default_rng([args.seed, BENCHES.index(name), 1])
    cov_lo, cov_hi = bootstrap_mean(r["hit"].to_numpy(dtype=float), boot_rng, args.n_boot)
    diagnose(name, r)
    return {
        "bench": name, "models": models.size, "items": len(items), "held_out": len(r), "held_out_all": held_all.size,
        "irt": stored.irt_model, "c_fixed_0": fixed0,
        "mae_irt": float(r["err"].mean()), "mae_raw": float(r["raw_err"].mean()),
        "coverage": float(r["hit"].mean()), "cov_lo": cov_lo, "cov_hi": cov_hi,
        "width": float((r["hi"] - r["lo"]).mean()),
        "wilson": float(wilson_width(r["k"].to_numpy(), r["n_obs"].to_numpy(dtype=float)).mean()),
        "extrap": float(r["extrapolated"].mean()), "abs_pf_z": float(np.nanmean(np.abs(r["pf_z"]))),
        "cal_s": t_cal, "pred_s": t_pred, "seconds": time.perf_counter() - t0,
    }


def diagnose(name: str, r: pd.DataFrame) -> None:
    """Where the misses are: extrapolated vs not, weakest/strongest decile of actual accuracy, and the side."""
    def part(mask: pd.Series) -> str:
        n = int(mask.sum())
        return f"{r.loc[mask, 'hit'].mean():.3f} (n={n})" if n else "- (n=0)"

    q10, q90 = r["actual"].quantile([0.1, 0.9])
    miss = ~r["hit"]
    below = int((miss & (r["actual"] < r["lo"])).sum())
    print(f"  {name}: coverage extrapolated {part(r['extrapolated'])}, not {part(~r['extrapolated'])}; "
          f"weakest decile (acc<={q10:.3f}) {part(r['actual'] <= q10)}, strongest (acc>={q90:.3f}) "
          f"{part(r['actual'] >= q90)}, middle {part((r['actual'] > q10) & (r['actual'] < q90))}; "
          f"misses {int(miss.sum())}: {below} actual below the interval, {int(miss.sum()) - below} above; "
          f"|person_fit_z|>2: {part(r['pf_z'].abs() > 2)}", flush=True)
    sds = "; ".join(f"{c[3:]} {r[c].mean():.4f}" for c in r.columns if c.startswith("sd_"))
    print(f"  {name}: mean SD terms of the interval (accuracy units): {sds}; RMS of (pred - actual) / (width / 3.92) "
          f"{np.sqrt(np.mean(((r['pred'] - r['actual']) / ((r['hi'] - r['lo']) / 3.92)) ** 2)):.3f} (1 if calibrated); "
          f"--exact-params view: coverage {r['ex_hit'].mean():.3f}, width {(r['ex_hi'] - r['ex_lo']).mean():.4f}",
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=",".join(BENCHES))
    ap.add_argument("--n-obs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--max-heldout", type=int, default=0, help="cap on held-out models per benchmark (0: all)")
    ap.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates for the coverage interval")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"leaderboard data not found at {DATA}; nothing to do")
        return 0
    names = args.bench.split(",")
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    t0 = time.perf_counter()
    out = []
    with tempfile.TemporaryDirectory(prefix="adt-leaderboard-") as tmp:
        for name in names:
            out.append(study(name, args, Path(tmp)))
            print(f"{name}: done in {out[-1]['seconds']:.0f}s", flush=True)
    table = pd.DataFrame(out)
    table["ratio"] = table["mae_irt"] / table["mae_raw"]
    table["cov_95ci"] = [f"{a:.3f}-{b:.3f}" for a, b in zip(table["cov_lo"], table["cov_hi"], strict=True)]
    table["mae_floor"] = np.where(table["mae_irt"] < table["mae_raw"], "PASS", "FAIL")
    table["cov_floor"] = np.where(table["coverage"].between(*FLOOR_COVERAGE), "PASS", "FAIL")
    cols = ["bench", "models", "items", "held_out", "irt", "c_fixed_0", "mae_irt", "mae_raw", "ratio", "coverage",
            "cov_95ci", "width", "wilson", "extrap", "abs_pf_z", "seconds", "mae_floor", "cov_floor"]
    capped = (table["held_out"] < table["held_out_all"]).any()
    held_note = f"capped at {args.max_heldout} (random subset)" if capped else "all"
    print()
    print(f"settings: product default path (calibrate --irt auto, guessing auto), n_obs={args.n_obs} seed={args.seed} "
          f"level={LEVEL} held-out={held_note} n_boot={args.n_boot}; "
          f"total {time.perf_counter() - t0:.0f}s")

    def fmt(v: float) -> str:
        return f"{v:.0f}" if v >= 10 else f"{v:.4f}"

    print(table[cols].to_string(index=False, float_format=fmt))
    ok = (table["mae_floor"] == "PASS").all() and (table["cov_floor"] == "PASS").all()
    print(f"floors (IRT MAE < raw MAE on all; coverage in {FLOOR_COVERAGE[0]}-{FLOOR_COVERAGE[1]}): "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
