"""2PL calibration: our MML-EM vs PyPI `mirt` vs py-irt on seeded synthetic data, in one run.

Cases (issue 3, "Must show"): 400 models x 2,000 items dense, and the same with 80% of the cells
missing.  Truth: a ~ lognormal(0, 0.3), b ~ N(0, 1), theta ~ N(0, 1).  For each fitter: wall time,
iterations, convergence and recovery (correlation and RMSE of a, b, theta against the truth); ours and
mirt each run ``--repeats`` times (default 3) and the speed ratio is mirt's median time over ours (the
first mirt call carries a one-off start-up of about a second; the median leaves it out).  Ours and mirt run in this process (mirt: `fit_mirt(...,
model="2PL")` with its defaults, then EAP `fscores`); py-irt runs through our subprocess backend
(calibration.pyirt_backend: py-irt seeds every global generator, so it is isolated), its time includes
the subprocess start and torch import.  Floors: ours converged, >= 50x faster than mirt, recovery at
least as good.

    .venv/bin/python bench/calibration_peers.py [--pyirt-epochs 2000] [--skip-pyirt] [--seed 20261123]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibration import ItemParams, fit_mml, fit_pyirt, simulate_responses  # noqa: E402


def recovery(a: np.ndarray, b: np.ndarray, theta: np.ndarray, truth: ItemParams,
             theta_true: np.ndarray) -> dict[str, float]:
    out = {}
    for name, est, tru in (("a", a, truth.a), ("b", b, truth.b), ("theta", theta, theta_true)):
        ok = np.isfinite(est)
        out[f"corr_{name}"] = float(np.corrcoef(est[ok], tru[ok])[0, 1])
        out[f"rmse_{name}"] = float(np.sqrt(np.mean((est[ok] - tru[ok]) ** 2)))
    return out


def timed(fn, repeats):
    """fn() run ``repeats`` times: (median seconds, (min, max) seconds, last result)."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), (min(times), max(times)), out


def run_ours(rs, truth, theta, repeats):
    secs, spread, res = timed(lambda: fit_mml(rs, "2pl", rng=np.random.default_rng(0)), repeats)
    return secs, spread, res.n_iter, res.converged, recovery(res.params.a, res.params.b, res.theta, truth,
                                                             theta)


def run_mirt(rs, truth, theta, repeats):
    import mirt
    y = np.full((rs.n_models, rs.n_items), np.nan)
    y[rs.model_idx, rs.item_idx] = rs.score
    secs, spread, (fit, scores) = timed(
        lambda: (f := mirt.fit_mirt(y, model="2PL"), mirt.fscores(f, y, method="EAP")), repeats)
    a = np.asarray(fit.model.parameters["discrimination"], dtype=float).ravel()
    b = np.asarray(fit.model.parameters["difficulty"], dtype=float).ravel()
    th = np.asarray(scores.theta, dtype=float).ravel()
    return secs, spread, fit.n_iterations, bool(fit.converged), recovery(a, b, th, truth, theta)


def run_pyirt(rs, truth, theta, epochs, seed):
    secs, spread, res = timed(lambda: fit_pyirt(rs, rng=np.random.default_rng(seed), epochs=epochs), 1)
    return secs, spread, res.n_iter, "n/a (fixed epochs)", recovery(res.params.a, res.params.b, res.theta,
                                                                    truth, theta)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--pyirt-epochs", type=int, default=2000)
    ap.add_argument("--skip-pyirt", action="store_true")
    ap.add_argument("--models", type=int, default=400)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of ours and of mirt per case; their medians are compared (py-irt runs once)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    truth = ItemParams(tuple(f"it{k}" for k in range(args.items)), np.exp(rng.normal(0, 0.3, args.items)),
                       rng.normal(0, 1, args.items))
    theta = rng.normal(size=args.models)
    floors_ok = True
    for label, missing in (("dense", 0.0), ("80% missing", 0.8)):
        rs = simulate_responses(truth, theta, rng, missing=missing)
        print(f"\n== {args.models} models x {args.items} items, {label}: {rs.n_obs:,} responses")
        rows = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows["ours (mml)"] = run_ours(rs, truth, theta, args.repeats)
            rows["mirt"] = run_mirt(rs, truth, theta, args.repeats)
            if not args.skip_pyirt:
                rows[f"py-irt ({args.pyirt_epochs} ep, subprocess)"] = run_pyirt(
                    rs, truth, theta, args.pyirt_epochs, args.seed)
        print(f"{'fitter':<32}{'median s':>9}{'(min-max)':>16}{'iter':>6}  {'converged':<19}"
              f"{'corr a':>7}{'corr b':>7}{'corr th':>8}{'rmse a':>8}{'rmse b':>8}{'rmse th':>8}")
        for name, (secs, (lo, hi), it, conv, rec) in rows.items():
            print(f"{name:<32}{secs:9.3f}{f'({lo:.3f}-{hi:.3f})':>16}{it:6d}  {str(conv):<19}"
                  f"{rec['corr_a']:7.3f}{rec['corr_b']:7.3f}{rec['corr_theta']:8.3f}{rec['rmse_a']:8.3f}"
                  f"{rec['rmse_b']:8.3f}{rec['rmse_theta']:8.3f}")
        ours, theirs = rows["ours (mml)"], rows["mirt"]
        ratio = theirs[0] / ours[0]
        better = all(ours[4][f"corr_{k}"] >= theirs[4][f"corr_{k}"] - 0.005 for k in ("a", "b", "theta"))
        print(f"speed ratio mirt/ours (medians of {args.repeats}): {ratio:.1f}x (floor 50x: "
              f"{'ok' if ratio >= 50 else 'MISSED'}); slowest ours vs fastest mirt: "
              f"{theirs[1][0] / ours[1][1]:.1f}x; ours converged: {ours[3]}; "
              f"recovery at least as good as mirt's: {better}")
        floors_ok &= bool(ours[3]) and ratio >= 50 and better
    print(f"\nfloors {'met' if floors_ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
