"""Many-facet graded response calibration (``--method facets``): recovery of known items and judge severities.

Issue 15 ("Polytomous and rater-model recovery from seeded simulations", must show). A world of known
parameters (``simulate_graded``): binary 2PL items (a ~ lognormal(0, 0.3), b ~ N(0, 1)) answered by every
model, graded items of K levels (ordered thresholds: a location N(0, 1) plus K - 1 sorted N(0, 1) offsets)
scored by every judge (severities fixed, summing to zero), abilities N(0, 1). ``fit_facets`` fits all of it at
once on one scale. Reported: fit time, L-BFGS-B iterations and convergence; RMSE against the truth of a
(binary / graded), b (binary), the graded thresholds and the severities; the share of true values inside
+-1.96 SE (items, severities); abilities: correlation with the truth, coverage of the 95% EAP interval,
median SE from the binary items alone, the judged items alone and both.

    .venv/bin/python bench/facets_recovery.py [--seed 20261206] [--sweep-reps 3] [--skip-main]

Figures (seed 20261206, this machine's 2 shared cores):

Realistic size: 200 models x (1000 binary + 300 graded items of 5 levels x 3 judges, severities -0.5, 0,
+0.5): 380,000 responses, 3,503 parameters; fit 45.2 s, 383 iterations, converged. RMSE a 0.205 (binary) /
0.129 (graded), b 0.157 (binary), thresholds 0.146, severities 0.016 (estimates -0.487, -0.004, +0.491);
coverage +-1.96 SE: a 0.938, b 0.946, thresholds 0.944, severities 3/3. Abilities: r = 0.998, 95% interval
coverage 0.930, median SE 0.077 (binary only 0.089, judged only 0.137).

Sweep (100 binary + 60 graded items of 4 levels x 3 judges at -0.6, 0.1, 0.5; 3 replicates per size):
  models  RMSE thresholds  RMSE severity  cover thresholds  cover a  cover severity  fit s
      50            0.402          0.072             0.919    0.946           0.889    2.1
     100            0.277          0.055             0.929    0.932           0.778    2.6
     200            0.189          0.034             0.943    0.950           0.778    3.5
     400            0.134          0.031             0.947    0.951           0.667    5.8
The severities' SEs leave out the scale's own error (a few percent of every threshold and severity, shared):
with several thousand verdicts per judge their SE is ~0.01-0.03, smaller than that, so their coverage falls as
the sample grows; the thresholds' and a's stay near 95%.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibration import GradedParams, abilities_for, fit_facets, simulate_graded  # noqa: E402


def world(rng: np.random.Generator, n_binary: int, n_graded: int, k: int,
          severity: tuple[float, ...]) -> GradedParams:
    n = n_binary + n_graded
    a = np.exp(rng.normal(0.0, 0.3, n))
    t = np.full((n, k - 1), np.nan)
    t[:n_binary, 0] = rng.normal(0.0, 1.0, n_binary)
    t[n_binary:] = np.sort(rng.normal(0.0, 1.0, n_graded)[:, None] + rng.normal(0.0, 1.0, (n_graded, k - 1)), axis=1)
    levels = np.array([2] * n_binary + [k] * n_graded)
    return GradedParams(tuple(f"i{j}" for j in range(n)), a, t, levels,
                        tuple(f"judge{r}" for r in range(len(severity))), np.asarray(severity))


def figures(seed: np.random.SeedSequence, n_models: int, n_binary: int, n_graded: int, k: int,
            severity: tuple[float, ...], abilities: bool = False) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    truth = world(rng, n_binary, n_graded, k, severity)
    theta = rng.normal(size=n_models)
    rs = simulate_graded(truth, theta, rng)
    t0 = time.perf_counter()
    fit = fit_facets(rs, truth.n_levels)
    secs = time.perf_counter() - t0
    p = fit.params
    assert isinstance(p, GradedParams)
    ok = fit.item_status == "calibrated"
    g = truth.n_levels > 2
    se_t = np.column_stack([fit.se[f"b{q + 1}"] for q in range(k - 1)])
    z_t = (p.thresholds - truth.thresholds) / se_t
    sev_se = np.array([r["se"] for r in fit.settings["raters"]])
    # The scale's own error (shared by every item and judge): the slope of the estimated graded thresholds on
    # the true ones. Severities divided by it are judged against the items they shift, which is what puts
    # judges on one scale.
    live = ok[:, None] & g[:, None] & np.isfinite(truth.thresholds)
    scale = float(np.polyfit(truth.thresholds[live], p.thresholds[live], 1)[0])
    out = {
        "n_obs": rs.n_obs, "n_params": fit.n_params, "seconds": secs, "n_iter": fit.n_iter,
        "converged": float(fit.converged), "ok_items": float(ok.mean()),
        "rmse_a_binary": float(np.sqrt(np.mean((p.a - truth.a)[ok & ~g] ** 2))),
        "rmse_a_graded": float(np.sqrt(np.mean((p.a - truth.a)[ok & g] ** 2))),
        "rmse_b_binary": float(np.sqrt(np.mean((p.thresholds[:, 0] - truth.thresholds[:, 0])[ok & ~g] ** 2))),
        "rmse_thresholds": float(np.sqrt(np.nanmean((p.thresholds - truth.thresholds)[ok & g] ** 2))),
        "rmse_severity": float(np.sqrt(np.mean((p.severity - truth.severity) ** 2))),
        "cover_a": float(np.mean(np.abs((p.a - truth.a) / fit.se["a"])[ok] < 1.96)),
        "cover_b": float(np.mean(np.abs(z_t[ok & ~g, 0]) < 1.96)),
        "cover_thresholds": float(np.mean(np.abs(z_t[ok & g][np.isfinite(z_t[ok & g])]) < 1.96)),
        "cover_severity": float(np.mean(np.abs((p.severity - truth.severity) / sev_se) < 1.96)),
        "scale": scale,
        "rmse_severity_scaled": float(np.sqrt(np.mean((p.severity / scale - truth.severity) ** 2))),
        "cover_severity_scaled": float(np.mean(np.abs((p.severity / scale - truth.severity) / (sev_se / scale)) < 1.96)),
        "severity": p.severity.tolist(),  # type: ignore[dict-item]
    }
    if abilities:
        both = abilities_for(rs, p)
        out.update({
            "theta_r": float(np.corrcoef(both.theta, theta)[0, 1]),
            "theta_cover": float(np.mean((both.lo <= theta) & (theta <= both.hi))),
            "theta_se_both": float(np.median(both.se)),
            "theta_se_binary": float(np.median(abilities_for(rs.subset(rs.rater_idx < 0), p).se)),  # type: ignore[operator]
            "theta_se_judged": float(np.median(abilities_for(rs.subset(rs.rater_idx >= 0), p).se)),  # type: ignore[operator]
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--sweep-reps", type=int, default=3)
    ap.add_argument("--sizes", default="100,200,400")
    ap.add_argument("--skip-main", action="store_true")
    args = ap.parse_args()
    main_seed = np.random.SeedSequence([args.seed, 0])
    if not args.skip_main:
        f = figures(main_seed, 200, 1000, 300, 5, (-0.5, 0.0, 0.5), abilities=True)
        print("realistic size: 200 models x (1000 binary + 300 graded items of 5 levels x 3 judges)")
        for key, val in f.items():
            print(f"  {key:>18}: {val if isinstance(val, list) else round(float(val), 4)}")
    print("sweep: 100 binary + 60 graded items of 4 levels x 3 judges (-0.6, 0.1, 0.5)")
    print("  models  RMSE thresholds  RMSE severity  cover thresholds  cover a  cover severity  scale  "
          "RMSE sev/scale  cover sev/scale  fit s")
    for n_models in (int(x) for x in args.sizes.split(",")):
        rows = [figures(np.random.SeedSequence([args.seed, n_models, i]), n_models, 100, 60, 4, (-0.6, 0.1, 0.5))
                for i in range(args.sweep_reps)]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("rmse_thresholds", "rmse_severity",
                                                                   "cover_thresholds", "cover_a", "cover_severity",
                                                                   "scale", "rmse_severity_scaled",
                                                                   "cover_severity_scaled", "seconds")}
        print(f"  {n_models:>6}  {mean['rmse_thresholds']:>15.3f}  {mean['rmse_severity']:>13.3f}  "
              f"{mean['cover_thresholds']:>16.3f}  {mean['cover_a']:>7.3f}  {mean['cover_severity']:>14.3f}  "
              f"{mean['scale']:>5.3f}  {mean['rmse_severity_scaled']:>14.3f}  {mean['cover_severity_scaled']:>15.3f}  "
              f"{mean['seconds']:>5.1f}")


if __name__ == "__main__":
    main()
