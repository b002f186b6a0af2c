"""Sparse scale: 2PL MML, the fit ``adt calibrate`` runs, at two sizes in one run.

Sizes.  Today's (issue 3): 2,000 models x 50,000 items with 95% of the cells missing (~5M responses);
floor: converged, <= 60 s and <= 4 GiB.  The reference system's (issue 16): 2,000 models x 1,000,000
items with 20,000,000 responses; floor: converged with SEs, <= 10 minutes and <= 12 GiB.  For each
size it prints data size, fit time with the Louis standard errors and the SE share of it, EM steps,
convergence, recovery against the seeded truth, and the peak resident memory of this process so far
(which includes generating the data, and the smaller size run first).  The response matrix is never
materialised: the 5M size is simulated in row blocks, the 20M size as (model, item) pairs drawn
uniformly without repeats.

Figures (this 2-core machine, shared with other work; CPU seconds are steadier than wall).
Before (main at 61a889b): large 905.8 s wall / 669.6 CPU-s at load ~3, 126 EM steps, SEs 47.7 s,
peak 7.40 GiB, recovery corr a/b/theta 0.370/0.839/0.998; small 56.3 s wall / 59.5 CPU-s (2026-12-06
21:48 UTC, load 1.4-2.0), 80 EM steps.
After (branch calband, 2PL curves with one exp and one log per cell, row-blocked sums; 2026-12-06):
large 1553.9 s wall / 969.3 CPU-s at load 3-7 (beside two other benchmarks and, for 6 minutes, a
test run of this branch), 126 EM steps, SEs 36.8 s, peak 7.65 GiB, recovery 0.370/0.839/0.998:
floor NOT met, and not comparable with the figure before (other load); small 47.4 s wall / 49.3
CPU-s (21:49 UTC, load 2.0-2.2), 80 EM steps, recovery 0.726/0.951/0.998.  Same-conditions A/B
(both started together, load 2.4-4.8): 2,000 x 100,000 items, 2 M responses: main 188.8 CPU-s,
calband 163.3 CPU-s, 216 EM steps each.
Then the items x nodes passes on both cores (curves._by_rows: rows of the curves, the Fisher step's sums, the
per-item N log P sums and the convergence measure in threads, the same numbers bit for bit), main at 50871ee, on a
quiet machine (nothing else running, load average 1.45, 2026-12-06 22:13-22:25): large 640.9 s wall / 890.5 CPU-s
(1.39 cores busy on average: the E-step's sparse products stay on one), 126 EM steps, SEs 30.9 s, peak 7.66 GiB,
recovery 0.370/0.839/0.998: floor (600 s) NOT met, by 7%.
Then the E-step's sparse products on both cores too (ops._csr_times: items x models times the posteriors, rows
shared through scipy's own CSR kernel; ops._csr_t_times: its transpose times the curves, node columns shared; the
same numbers bit for bit; 20 EM steps 119.2 -> 96.6 s wall, parameters identical), main at 0790ea8, quiet machine
(2026-12-07 00:28-00:39, load average 1.1-1.9): large 566.5 s wall / 912.1 CPU-s (1.61 cores), 126 EM steps, SEs
24.2 s, peak 7.66 GiB, recovery 0.370/0.839/0.998: floor met. With log(1 - P) on both cores as well (3442171;
00:54-01:04, load average 1.3-1.7): 596.3 s wall / 955.1 CPU-s, SEs 30.0 s (the SE code unchanged: the machine
ran ~5-20% slower than in the run before), 7.67 GiB: floor met, with a thin margin. What stays on one core: the
Python between the passes and the one-off set-up (the CSR matrices from the triplets, the item moments: ~6 s).

    .venv/bin/python bench/calibration_scale.py                   # both sizes (5M, then 20M)
    .venv/bin/python bench/calibration_scale.py --only small      # 5M only
    .venv/bin/python bench/calibration_scale.py --models 2000 --items 1000000 --responses 20000000 --only large
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibration import ItemParams, ResponseSet, fit_mml, prob, simulate_responses  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # ru_maxrss is KiB on Linux


def truth_for(rng: np.random.Generator, n_models: int, n_items: int) -> tuple[ItemParams, np.ndarray]:
    truth = ItemParams(tuple(f"it{k}" for k in range(n_items)), np.exp(rng.normal(0, 0.3, n_items)),
                       rng.normal(0, 1, n_items))
    return truth, rng.normal(size=n_models)


def sparse_responses(truth: ItemParams, theta: np.ndarray, n_resp: int, rng: np.random.Generator) -> ResponseSet:
    """``n_resp`` distinct (model, item) cells drawn uniformly, Bernoulli scores from the 2PL truth."""
    n_m, n_i = theta.size, len(truth)
    if n_resp > n_m * n_i:
        raise SystemExit(f"--responses {n_resp:,} exceeds models x items ({n_m * n_i:,})")
    cells = np.unique(rng.integers(0, n_m * n_i, int(n_resp * 1.02) + 1000, dtype=np.int64))
    while cells.size < n_resp:                      # (only for nearly full grids)
        cells = np.unique(np.concatenate([cells, rng.integers(0, n_m * n_i, n_resp, dtype=np.int64)]))
    cells = np.sort(rng.choice(cells, n_resp, replace=False))
    m, i = (cells // n_i).astype(np.int32), (cells % n_i).astype(np.int32)
    del cells
    y = (rng.random(n_resp) < prob(theta[m], truth.a[i], truth.b[i])).astype(float)
    return ResponseSet(m, i, y, tuple(f"m{k}" for k in range(n_m)), truth.item_ids)


def run(label: str, rs: ResponseSet, truth: ItemParams, theta: np.ndarray, seed: int, t_sim: float,
        floor_s: float, floor_gib: float) -> None:
    print(f"[{label}] {rs.n_models:,} models x {rs.n_items:,} items: {rs.n_obs:,} responses "
          f"(simulated in {t_sim:.1f} s; peak RSS so far {peak_rss_gib():.2f} GiB)", flush=True)
    t, cpu = time.perf_counter(), time.process_time()
    res = fit_mml(rs, "2pl", rng=np.random.default_rng(seed), seed=seed)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    ok = res.item_status == "calibrated"
    corr = {k: float(np.corrcoef(e[m], tr[m])[0, 1]) for k, e, tr, m in
            (("a", res.params.a, truth.a, ok), ("b", res.params.b, truth.b, ok),
             ("theta", res.theta, theta, np.ones(theta.size, bool)))}
    peak = peak_rss_gib()
    print(f"[{label}] fit with SEs: {wall:.1f} s wall ({cpu:.1f} s CPU), of which SEs {res.settings['se_seconds']:.1f} s; "
          f"{res.n_iter} EM steps, converged {res.converged}, backend {res.settings['backend']}; "
          f"{int(ok.sum()):,} items calibrated, {int(np.isfinite(res.se['b']).sum()):,} with finite SEs")
    print(f"[{label}] recovery: corr a {corr['a']:.3f}, corr b {corr['b']:.3f}, corr theta {corr['theta']:.3f}; "
          f"median SE a {np.nanmedian(res.se['a']):.3f}, b {np.nanmedian(res.se['b']):.3f}")
    met = res.converged and wall <= floor_s and peak <= floor_gib
    print(f"[{label}] peak RSS so far {peak:.2f} GiB; floor (converged with SEs, <= {floor_s:.0f} s, "
          f"<= {floor_gib:.0f} GiB): {'met' if met else 'NOT met'}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--only", choices=("small", "large"), default=None, help="run one size only")
    ap.add_argument("--small-items", type=int, default=50000, help="today's size: items (95%% missing)")
    ap.add_argument("--small-missing", type=float, default=0.95)
    ap.add_argument("--models", type=int, default=2000)
    ap.add_argument("--items", type=int, default=1_000_000, help="the large size: items")
    ap.add_argument("--responses", type=int, default=20_000_000, help="the large size: responses")
    args = ap.parse_args()
    if args.only != "large":
        rng = np.random.default_rng(args.seed)
        truth, theta = truth_for(rng, args.models, args.small_items)
        t = time.perf_counter()
        rs = simulate_responses(truth, theta, rng, missing=args.small_missing)
        run("small", rs, truth, theta, args.seed, time.perf_counter() - t, 60, 4)
        del rs
    if args.only != "small":
        rng = np.random.default_rng(args.seed + 1)
        truth, theta = truth_for(rng, args.models, args.items)
        t = time.perf_counter()
        rs = sparse_responses(truth, theta, args.responses, rng)
        run("large", rs, truth, theta, args.seed, time.perf_counter() - t, 600, 12)
    return 0


if __name__ == "__main__":
    sys.exit(main())
