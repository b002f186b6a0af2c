"""Online calibration of new items: four methods against the truth and against a full joint recalibration.

Issue 14 ("Online calibration", must show): RMSE of the online-calibrated b and a against the truth as a
function of responses per item, and against a full joint recalibration of the same data.

Simulation (seeded, one ``SeedSequence`` spawned per replicate): an operational bank of ``--n-ops`` 2PL items
with known parameters (a ~ lognormal(0, 0.3), b ~ N(0, 1)), ``--models`` simulated models with
theta ~ N(0.3, 1.2) (off the bank's N(0, 1) on purpose, so a method that assumes N(0, 1) would show it),
each answering ``--form`` random operational items; ``--n-new`` new items (same distribution), each answered
by n random models for n in ``--responses``.  Per n and replicate every method of ``calibrate_online`` runs
with the operational items at their true parameters, and the peer: ``fit_mml`` on all items free (the
product's joint recalibration), put on the operational scale by Stocking-Lord linking through the
operational items (``link``).  Reported per method and n: RMSE of b and a over the new items and
replicates, and the share of true values inside +-1.96 SE.  Writes a PNG (RMSE vs n) and prints the table.

    .venv/bin/python bench/online_calibration.py [--reps 3] [--seed 20261206] [--out docs/online-calibration.png]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibration import (  # noqa: E402
    ONLINE_METHODS,
    ItemParams,
    ResponseSet,
    calibrate_online,
    fit_mml,
    link,
    prob,
    transform_params,
    transform_se,
)

JOINT = "joint"


def simulate(rng: np.random.Generator, n_ops: int, n_new: int, n_models: int, form: int,
             n_resp: int) -> tuple[ResponseSet, ItemParams, ItemParams]:
    """Responses of the models to their operational forms plus n_resp responses to each new item."""
    n = n_ops + n_new
    ids = tuple(f"op{k:03d}" for k in range(n_ops)) + tuple(f"new{k:03d}" for k in range(n_new))
    truth = ItemParams(ids, np.exp(rng.normal(0.0, 0.3, n)), rng.normal(0.0, 1.0, n))
    theta = rng.normal(0.3, 1.2, n_models)
    m_op = np.repeat(np.arange(n_models), form)
    i_op = np.concatenate([rng.choice(n_ops, form, replace=False) for _ in range(n_models)])
    i_new = np.repeat(np.arange(n_ops, n), n_resp)
    m_new = np.concatenate([rng.choice(n_models, n_resp, replace=False) for _ in range(n_new)])
    m, i = np.r_[m_op, m_new], np.r_[i_op, i_new]
    p = prob(theta[m], truth.a[i], truth.b[i])
    s = (rng.random(m.size) < p).astype(float)
    rs = ResponseSet(m, i, s, tuple(f"m{k}" for k in range(n_models)), ids)
    return rs, truth.subset(np.arange(n_ops)), truth.subset(np.arange(n_ops, n))


def joint(rs: ResponseSet, ops: ItemParams, new_ids: tuple[str, ...]) -> tuple[ItemParams, dict]:
    """The peer: every item free in fit_mml, then linked onto the operational scale by Stocking-Lord."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_mml(rs, "2pl")
    lk = link(ops, res.params, "stocking_lord", anchors=list(ops.item_ids))
    idx = np.array([res.params.item_ids.index(i) for i in new_ids])
    new = transform_params(res.params.subset(idx), lk.A, lk.B)
    se = transform_se({k: res.se[k][idx] for k in ("a", "b")}, lk.A)
    return new, se


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-ops", type=int, default=100)
    ap.add_argument("--n-new", type=int, default=40)
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--form", type=int, default=30, help="operational items per model")
    ap.add_argument("--responses", default="20,50,100,200,300")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "online-calibration.png"))
    args = ap.parse_args()
    levels = [int(v) for v in args.responses.split(",")]
    methods = (*ONLINE_METHODS, JOINT)
    err: dict[tuple[str, int], dict[str, list]] = {(m, n): {"b": [], "a": [], "cb": [], "ca": [], "t": []}
                                                   for m in methods for n in levels}
    streams = np.random.SeedSequence(args.seed).spawn(len(levels) * args.reps)
    for li, n in enumerate(levels):
        for r in range(args.reps):
            rng = np.random.default_rng(streams[li * args.reps + r])
            rs, ops, truth = simulate(rng, args.n_ops, args.n_new, args.models, args.form, n)
            for meth in methods:
                t0 = time.perf_counter()
                if meth == JOINT:
                    est, se = joint(rs, ops, truth.item_ids)
                else:
                    out = calibrate_online(rs, ops, truth.item_ids, method=meth)
                    est, se = out.params, out.se
                e = err[(meth, n)]
                e["t"].append(time.perf_counter() - t0)
                for k in ("a", "b"):
                    d = getattr(est, k) - getattr(truth, k)
                    e[k].extend(d)
                    e["c" + k].extend(np.abs(d) <= 1.96 * se[k])
    rmse = {key: {k: float(np.sqrt(np.mean(np.square(v[k])))) for k in ("a", "b")} for key, v in err.items()}
    print(f"online calibration: {args.n_ops} operational items, {args.models} models x {args.form} operational "
          f"items each, {args.n_new} new items, {args.reps} replicates per level, seed {args.seed}")
    print(f"{'method':>9} {'n/item':>6} {'RMSE b':>7} {'RMSE a':>7} {'cov b':>6} {'cov a':>6} {'sec':>6}")
    for meth in methods:
        for n in levels:
            e = err[(meth, n)]
            print(f"{meth:>9} {n:>6} {rmse[(meth, n)]['b']:7.3f} {rmse[(meth, n)]['a']:7.3f} "
                  f"{np.mean(e['cb']):6.2f} {np.mean(e['ca']):6.2f} {np.mean(e['t']):6.2f}")
    # The pick: the online method whose worst level is closest to that level's best online method (RMSE(b) +
    # RMSE(a) over the best's, worst over n): one bad regime (OEM's attenuated a at many responses, Method A's
    # at few) rules a method out, where a mean over levels would let the noisy small-n levels decide.
    tot = {(m, n): rmse[(m, n)]["b"] + rmse[(m, n)]["a"] for m in methods for n in levels}
    regret = {m: max(tot[(m, n)] / min(tot[(o, n)] for o in ONLINE_METHODS) for n in levels) for m in methods}
    best = min(ONLINE_METHODS, key=regret.__getitem__)
    print("worst-level RMSE(b) + RMSE(a) over the best online method's: "
          + ", ".join(f"{m} {v:.3f}" for m, v in regret.items()))
    print(f"pick: {best}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, k in zip(axes, ("b", "a"), strict=True):
        for meth in methods:
            ax.plot(levels, [rmse[(meth, n)][k] for n in levels], marker="o",
                    linestyle="--" if meth == JOINT else "-", label=meth)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.set_xlabel("responses per new item")
        ax.set_ylabel(f"RMSE of {k}")
        ax.set_title(f"new items' {k} vs truth")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"online calibration ({args.models} models, {args.n_new} new items, {args.reps} reps, "
                 f"seed {args.seed})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"plot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
