"""Sampler quality and speed.

Part 1: a 500-item form with quotas from the MMLU-Pro bank calibrated (``calibration.mml.fit_mml``,
2PL) on ``mmlu_pro/responses.parquet``. ``nsga2`` (first population random; never seeded with the
``milp`` or a greedy form), picked on information alone, against the ``milp`` information optimum;
floor >= 97%, every constraint met. Prints times, generations and hypervolume.

Part 2: every strategy on a synthetic 100,000-item bank, 500-item form with three quota keys and an
overlap limit: wall time per strategy (floor <= 60 s, pool preparation included; enemy detection over
the bank is timed separately, as the one-off job it is, and its pairs are passed to the spec).

Usage: python bench/sampler_quality.py [--cache DIR] [--skip-100k]
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

from sampler import FormSpec, get_sampler, prepare, violations  # noqa: E402


def calibrate(cache: Path | None):
    """2PL by MML on all 20 models (cached: the fit takes about two minutes on 2 cores)."""
    from calibration import ResponseSet, fit_mml

    path = cache / "mmlu_pro_2pl.pkl" if cache else None
    if path and path.exists():
        return pickle.loads(path.read_bytes())
    r = pd.read_parquet(DATA / "mmlu_pro" / "responses.parquet")
    r["item_id"] = "mmlu_pro:" + r["question_id"].astype(str)
    t0 = time.perf_counter()
    res = fit_mml(ResponseSet.from_frame(r, "model", "item_id", "correct"), "2pl", rng=np.random.default_rng(0))
    print(f"calibration: fit_mml 2PL on {r.model.nunique()} models x {r.item_id.nunique()} items "
          f"in {time.perf_counter() - t0:.1f} s, converged={res.converged}")
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(res))
    return res


def mmlu_pro_pool(res, rng: np.random.Generator) -> pd.DataFrame:
    items = pd.read_parquet(DATA / "mmlu_pro" / "items.parquet", columns=["question_id", "question", "options",
                                                                         "category", "src"])
    pool = pd.DataFrame({"item_id": "mmlu_pro:" + items["question_id"].astype(str), "language": "en",
                         "question": items["question"], "n_choices": items["options"].map(len),
                         "domain": items["category"], "source": items["src"], "item_type": "mc",
                         "review_state": "approved"})
    table = res.item_table().set_index("item_id")
    ok = table["status"] == "calibrated"
    for k in "abcd":
        pool[k] = pool["item_id"].map(table[k].where(ok))  # NaN -> uncalibrated -> prior
    # Simulated history: five published forms of 2,500 items; tiers by publications.
    pubs = np.zeros(len(pool), dtype=int)
    for _ in range(5):
        pubs[rng.choice(len(pool), 2500, replace=False)] += 1
    pool["exposure_publications"] = pubs
    pool["exposure_runs"] = 3 * pubs + rng.poisson(1.0, len(pool))
    pool["frequency_tier"] = np.where(pubs == 0, "low", np.where(pubs == 1, "medium", "high"))
    b = pool["b"].to_numpy()
    pool["difficulty_band"] = np.where(np.isnan(b), "unknown", np.where(b > 0.75, "hard",
                                                                        np.where(b < -0.75, "easy", "medium")))
    return pool


def part1(cache: Path | None) -> bool:
    res = calibrate(cache)
    rng = np.random.default_rng(2026)
    pool = mmlu_pro_pool(res, rng)
    lo, hi = np.quantile(res.theta, [0.1, 0.9])
    spec = FormSpec.from_dict({
        "size": 500,
        "quotas": {"frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5},
                   "difficulty_band": {"hard": 0.3, "medium": 0.4, "easy": 0.3},
                   "domain": {"math": 0.12, "physics": 0.12, "chemistry": 0.1, "law": 0.1, "engineering": 0.08,
                              "economics": 0.08, "health": 0.08, "psychology": 0.08, "business": 0.08,
                              "biology": 0.06, "other": 0.05, "philosophy": 0.05}},
        "overlap": [{"form": "round6", "max_fraction": 0.2,
                     "item_ids": pool.item_id.sample(2500, random_state=6).tolist()}],
        "theta_range": [float(lo), float(hi)], "theta_points": 5, "seed": 7,
    })
    t0 = time.perf_counter()
    prep = prepare(pool, spec)
    t_prep = time.perf_counter() - t0
    print(f"\n== part 1: MMLU-Pro bank, {len(prep)} eligible items ({int(prep.uncalibrated.sum())} uncalibrated -> "
          f"prior), {prep.n_enemy_pairs} enemy pairs, {len(prep.cells.cells)} quota cells; theta grid "
          f"{[round(t, 2) for t in spec.theta_grid]}; prepare {t_prep:.1f} s")
    pos = {i: k for k, i in enumerate(prep.item_ids)}
    rows = {}
    for name, options in [("milp", {}), ("stratified", {}), ("random", {}),
                          ("nsga2", {"weights": {"information": 1.0, "novelty": 0.0, "exposure_peak": 0.0,
                                                 "coverage": 0.0}, "n_gen": 1000, "time_limit": 900.0,
                                     "pop_size": 100})]:
        s = spec.with_(strategy=name, options=FormSpec.from_dict({"options": options}).options)
        t0 = time.perf_counter()
        draft = get_sampler(name).sample_prepared(prep, s)
        dt = time.perf_counter() - t0
        idx = np.array([pos[i] for i in draft.item_ids])
        v = violations(prep, s, idx, quotas=name != "random")
        rows[name] = draft
        d = draft.diagnostics
        extra = ""
        if name == "nsga2":
            extra = (f" generations={d['generations']} evaluations={d['evaluations']} pareto={d['pareto_size']} "
                     f"hypervolume={d['hypervolume']:.4f} (first population {d['hypervolume_first_population']:.4f})")
        print(f"{name:<11} {dt:7.2f} s  information={draft.objectives['information']:9.3f}  "
              f"novelty={draft.objectives['novelty']:.3f} coverage={draft.objectives['coverage']:.3f} "
              f"uncalibrated={draft.n_uncalibrated} violations={v or 'none'}{extra}")
    ratio = rows["nsga2"].objectives["information"] / rows["milp"].objectives["information"]
    ok_feasible = not violations(prep, spec, np.array([pos[i] for i in rows["nsga2"].item_ids]))
    print(f"nsga2 / milp information = {ratio:.4f}  (floor 0.97: {'PASS' if ratio >= 0.97 and ok_feasible else 'FAIL'})")
    # The default multi-objective pick, for the trade-off it makes.
    s = spec.with_(strategy="nsga2", options=(("n_gen", 200), ("time_limit", 60.0)))
    t0 = time.perf_counter()
    draft = get_sampler("nsga2").sample_prepared(prep, s)
    print(f"nsga2 default weights {draft.diagnostics['weights']}: {time.perf_counter() - t0:.1f} s, "
          f"objectives { {k: round(v, 3) for k, v in draft.objectives.items()} }, "
          f"hypervolume={draft.diagnostics['hypervolume']:.4f}, generations={draft.diagnostics['generations']}")
    return ratio >= 0.97 and ok_feasible


def synthetic_bank(n: int, rng: np.random.Generator) -> pd.DataFrame:
    vocab = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(3, 9)))
                      for _ in range(20000)])
    lengths = rng.integers(12, 40, n)
    words = rng.choice(vocab, lengths.sum())
    cuts = np.cumsum(lengths)[:-1]
    questions = [" ".join(w) for w in np.split(words, cuts)]
    dup = rng.choice(n, n // 100, replace=False)  # 1% near-duplicates of another item
    for i in dup:
        j = int(rng.integers(n))
        questions[i] = questions[j] + " ?"
    a = rng.lognormal(0, 0.4, n)
    b = rng.normal(0, 1.2, n)
    unc = rng.random(n) < 0.1
    a[unc] = np.nan
    b[unc] = np.nan
    pubs = rng.poisson(0.8, n)
    return pd.DataFrame({
        "item_id": [f"it_{k:020x}" for k in range(n)], "question": questions,
        "language": rng.choice(["zh", "en"], n, p=[0.6, 0.4]),
        "domain": rng.choice([f"d{k:02d}" for k in range(20)], n),
        "frequency_tier": np.where(pubs == 0, "low", np.where(pubs == 1, "medium", "high")),
        "difficulty_band": np.where(unc, "unknown", np.where(b > 0.75, "hard", np.where(b < -0.75, "easy", "medium"))),
        "exposure_publications": pubs, "exposure_runs": pubs * 2, "n_choices": 4, "item_type": "mc",
        "review_state": rng.choice(["approved", "draft", "retired"], n, p=[0.7, 0.28, 0.02]),
        "a": a, "b": b, "c": 0.25, "d": 1.0})


def part2() -> bool:
    rng = np.random.default_rng(100)
    t0 = time.perf_counter()
    bank = synthetic_bank(100_000, rng)
    print(f"\n== part 2: synthetic bank of {len(bank)} items (built in {time.perf_counter() - t0:.1f} s)")
    spec = FormSpec.from_dict({
        "size": 500, "seed": 1,
        "quotas": {"language": {"zh": 0.7, "en": 0.3}, "frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5},
                   "difficulty_band": {"hard": 0.3, "medium": 0.4, "easy": 0.3}},
        "overlap": [{"form": "round6", "max_fraction": 0.2,
                     "item_ids": bank.item_id.sample(5000, random_state=2).tolist()}]})
    # Enemy detection is a one-off job over the bank (its pairs can be stored and passed as
    # ``enemy_pairs``); timed on its own here, then every strategy samples with the pairs given.
    from sampler import find_enemy_pairs

    t0 = time.perf_counter()
    pairs = find_enemy_pairs(bank.question.tolist(), 0.9)
    print(f"enemy detection over the whole bank: {time.perf_counter() - t0:.1f} s, {len(pairs)} pairs (one-off)")
    ids = bank.item_id.to_numpy()
    spec = spec.with_(enemy_threshold=None, enemy_pairs=tuple((str(ids[i]), str(ids[j])) for i, j in pairs))
    t0 = time.perf_counter()
    prep = prepare(bank, spec)
    print(f"prepare (filters, priors, information, cells, given enemy pairs): {time.perf_counter() - t0:.1f} s; "
          f"{prep.n_enemy_pairs} enemy pairs among eligible items")
    ok = True
    for name in ["all", "random", "stratified", "milp", "nsga2"]:
        s = spec.with_(strategy=name, size=None if name == "all" else 500, quotas=() if name == "all" else spec.quotas,
                       options=(("time_limit", 50.0),) if name == "nsga2" else ())
        t0 = time.perf_counter()
        draft = get_sampler(name).sample(bank, s)
        dt = time.perf_counter() - t0
        ok &= dt <= 60
        d = draft.diagnostics
        extra = f" generations={d['generations']} hypervolume={d['hypervolume']:.3f}" if name == "nsga2" else ""
        print(f"{name:<11} {dt:6.1f} s (floor 60 s: {'PASS' if dt <= 60 else 'FAIL'})  items={len(draft.item_ids)} "
              f"information={draft.objectives['information']:.2f} uncalibrated={draft.n_uncalibrated}{extra}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=None, help="directory to cache the calibration in")
    ap.add_argument("--skip-100k", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: real data not found at {DATA}")
        return 0
    ok = True
    if not args.skip_quality:
        ok &= part1(args.cache)
    if not args.skip_100k:
        ok &= part2()
    print("\nall floors met" if ok else "\nSOME FLOOR MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
