"""Sparse scale: 2PL MML on 2,000 models x 50,000 items with 95% of the cells missing (~5M responses).

Floor (issue 3): converged, <= 60 s and <= 4 GiB.  Prints data size, fit time (with and without the
Louis standard errors), EM steps, convergence, recovery against the seeded truth, and the peak
resident memory of this process (which includes generating the data).  The response matrix is never
materialised: data are simulated in row blocks straight into sparse triplets.

    .venv/bin/python bench/calibration_scale.py [--models 2000] [--items 50000] [--missing 0.95]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibration import ItemParams, fit_mml, simulate_responses  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # ru_maxrss is KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--models", type=int, default=2000)
    ap.add_argument("--items", type=int, default=50000)
    ap.add_argument("--missing", type=float, default=0.95)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    truth = ItemParams(tuple(f"it{k}" for k in range(args.items)), np.exp(rng.normal(0, 0.3, args.items)),
                       rng.normal(0, 1, args.items))
    theta = rng.normal(size=args.models)
    t = time.perf_counter()
    rs = simulate_responses(truth, theta, rng, missing=args.missing)
    print(f"{args.models:,} models x {args.items:,} items, {args.missing:.0%} missing: {rs.n_obs:,} responses "
          f"(simulated in {time.perf_counter() - t:.1f} s; peak RSS so far {peak_rss_gib():.2f} GiB)")
    t = time.perf_counter()
    cpu = time.process_time()
    res = fit_mml(rs, "2pl", rng=np.random.default_rng(args.seed), seed=args.seed)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    ok = res.item_status == "calibrated"
    corr = {k: float(np.corrcoef(e[m], tr[m])[0, 1]) for k, e, tr, m in
            (("a", res.params.a, truth.a, ok), ("b", res.params.b, truth.b, ok),
             ("theta", res.theta, theta, np.ones(args.models, bool)))}
    print(f"fit (with SEs): {wall:.1f} s wall, {cpu:.1f} s CPU, {res.n_iter} EM steps, converged "
          f"{res.converged}, backend {res.settings['backend']}")
    print(f"recovery: corr a {corr['a']:.3f}, corr b {corr['b']:.3f}, corr theta {corr['theta']:.3f}; "
          f"median SE a {np.nanmedian(res.se['a']):.3f}, b {np.nanmedian(res.se['b']):.3f}")
    peak = peak_rss_gib()
    print(f"peak RSS (data + fit): {peak:.2f} GiB")
    met = res.converged and wall <= 60 and peak <= 4
    print(f"floor (converged, <= 60 s, <= 4 GiB): {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
