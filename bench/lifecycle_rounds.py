"""Ten rounds of the item lifecycle at the issue's scale: do the default rules keep every round feasible?

Issue 14 ("Ten rounds of lifecycle"): a bank of ``--bank-size`` items growing ``--growth`` new items a round,
``--models`` models taking each round's form of ``--form`` items (``--pretest`` of them pretest) with the
frequency quotas low/medium/high 10/40/50 on the operational part. This is the *exposure bookkeeping* of that
simulation, not the IRT one: items are rows (stage, runs, publications, rest_until_round, runs since their last
stage move), forms are drawn by the quotas at random within each tier (the product's sampler adds difficulty
quotas and information targets, which need calibrated parameters; here only the tiers the lifecycle feeds are
checked), and a pretest item's calibration evidence is its Fisher-information SE(b) at true 2PL parameters
(a ~ lognormal(0, 0.3), b ~ N(0, 1)) over the abilities of the models that answered it (theta ~ N(0, 1)), with no
fit or QC flag (a simulated respondent fits the model). The moves are the product's: ``plan_moves`` and
``pretest_verdicts`` of ``adt.workflow.lifecycle`` under ``LifecycleRules()`` (the bank's default settings),
the tier rule is the bank's at its default ``tier_low_runs`` 0 (low: never exposed; high: more than ``--tier-high-runs`` runs or more than
``--tier-high-publications`` publications). The projection of ``adt bank health`` (``adt.workflow.health.project``)
is made after round 1 from the same frames, next to what happened.

The starting bank: every item operational and unexposed, except ``--warm`` items exposed by earlier rounds
(one form's worth of runs each, half of them two), so that round 1 has medium and high items to draw.

    .venv/bin/python bench/lifecycle_rounds.py [--rounds 10] [--seed 20261206] [--plot docs/lifecycle-health.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adt import plots  # noqa: E402
from adt.workflow.health import Rates, demand_from_spec, project  # noqa: E402
from adt.workflow.lifecycle import LifecycleRules, plan_moves, pretest_verdicts  # noqa: E402

TIERS = {"low": 0.1, "medium": 0.4, "high": 0.5}


def tiers(runs: np.ndarray, pubs: np.ndarray, high_runs: int, high_pubs: int) -> np.ndarray:
    """The bank's tier rule at ``tier_low_runs`` 0 (its default): low = never exposed."""
    return np.where(runs + pubs == 0, "low", np.where((runs > high_runs) | (pubs > high_pubs), "high", "medium"))


def new_items(n: int, start: int, stage: str, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame({"item_id": [f"it{start + i}" for i in range(n)], "stage": stage, "review_state": "approved",
                         "exposure_runs": 0, "exposure_publications": 0, "rest_until_round": np.nan,
                         "runs_since_move": np.nan, "a": rng.lognormal(0, 0.3, n), "b": rng.normal(0, 1, n),
                         "info": 0.0})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--bank-size", type=int, default=20_000)
    ap.add_argument("--growth", type=int, default=1_000)
    ap.add_argument("--models", type=int, default=300)
    ap.add_argument("--form", type=int, default=500)
    ap.add_argument("--pretest", type=float, default=0.1)
    ap.add_argument("--warm", type=int, default=2_000)
    ap.add_argument("--tier-high-runs", type=int, default=300)
    ap.add_argument("--tier-high-publications", type=int, default=1)
    ap.add_argument("--retire-after-runs", type=int, default=None, help="override the default rule")
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rules = LifecycleRules(**{k: v for k, v in (("retire_after_runs", args.retire_after_runs),) if v is not None})
    spec = {"size": args.form, "pretest": args.pretest, "quotas": {"frequency_tier": TIERS}}
    demand = demand_from_spec(spec)
    need = {v: n for _, v, n in demand.slices}
    items = new_items(args.bank_size, 0, "operational", rng)
    warm = rng.choice(len(items), args.warm, replace=False)
    items.loc[warm, "exposure_runs"] = args.models
    items.loc[warm, "exposure_publications"] = 1
    items.loc[warm[: args.warm // 2], "exposure_runs"] = 2 * args.models
    items.loc[warm[: args.warm // 2], "exposure_publications"] = 2
    next_id = len(items)
    rows, projection = [], None
    history = {"created": 0, "promoted": 0, "retired": 0, "rested": 0}
    for rnd in range(1, args.rounds + 1):
        items = pd.concat([items, new_items(args.growth, next_id, "pretest", rng)], ignore_index=True)
        next_id += args.growth
        history["created"] += args.growth
        tier = tiers(items["exposure_runs"].to_numpy(), items["exposure_publications"].to_numpy(),
                     args.tier_high_runs, args.tier_high_publications)
        op = (items["stage"] == "operational").to_numpy()
        short, drawn = {}, []
        for t, n in need.items():
            pool = np.flatnonzero(op & (tier == t))
            if len(pool) < n:
                short[t] = n - len(pool)
            drawn.append(rng.choice(pool, min(n, len(pool)), replace=False))
        fresh_pre = np.flatnonzero((items["stage"] == "pretest").to_numpy() & (items["exposure_runs"] == 0).to_numpy())
        pre = rng.choice(fresh_pre, min(demand.pretest, len(fresh_pre)), replace=False)
        form = np.concatenate([*drawn, pre])
        theta = rng.normal(0, 1, args.models)
        a, b = items.loc[form, "a"].to_numpy(), items.loc[form, "b"].to_numpy()
        p = 1 / (1 + np.exp(-a[:, None] * (theta[None, :] - b[:, None])))
        items.loc[form, "info"] += (a[:, None] ** 2 * p * (1 - p)).sum(axis=1)
        since = items.loc[form, "runs_since_move"].fillna(items.loc[form, "exposure_runs"])  # NaN: never moved
        items.loc[form, "runs_since_move"] = since + args.models
        items.loc[form, "exposure_runs"] += args.models
        items.loc[form, "exposure_publications"] += 1
        # the lifecycle pass after the round: evidence = every pretest item answered (SE from its information)
        answered = items[(items["stage"] == "pretest") & (items["exposure_runs"] > 0)]
        evidence = pd.DataFrame({"item_id": answered["item_id"], "calibration_id": f"cal{rnd}",
                                 "n_responses": answered["exposure_runs"].astype(float),
                                 "se_b": 1 / np.sqrt(answered["info"].to_numpy()),
                                 "fit_flags": [[] for _ in range(len(answered))]})
        live = items.assign(frequency_tier=tiers(items["exposure_runs"].to_numpy(),
                                                 items["exposure_publications"].to_numpy(),
                                                 args.tier_high_runs, args.tier_high_publications))
        verdicts = pretest_verdicts(live, evidence, {}, rules)
        moves = plan_moves(live, verdicts, {}, rnd, rules)
        by_id = pd.Series(np.arange(len(items)), index=items["item_id"])
        counts = {"promote": 0, "rest": 0, "return": 0, "retire": 0}
        for m in moves:
            i = by_id[m.item_id]
            items.loc[i, "stage"] = m.to_stage
            items.loc[i, "runs_since_move"] = 0
            items.loc[i, "rest_until_round"] = m.until_round if m.until_round is not None else np.nan
            counts["retire" if m.to_stage == "retired" else m.rule] += 1
        history["promoted"] += counts["promote"]
        history["retired"] += counts["retire"]
        history["rested"] += counts["rest"]
        rows.append({"round": rnd, "feasible": not short, "short": short or "", "pretest_on_form": len(pre),
                     "promoted": counts["promote"], "promoted_share": counts["promote"] / max(len(pre), 1),
                     "rested": counts["rest"], "returned": counts["return"], "retired": counts["retire"],
                     "max_runs": int(items["exposure_runs"].max()),
                     **{f"op_{t}": int(((items["stage"] == "operational").to_numpy()
                                        & (tiers(items["exposure_runs"].to_numpy(),
                                                 items["exposure_publications"].to_numpy(), args.tier_high_runs,
                                                 args.tier_high_publications) == t)).sum()) for t in need}})
        if rnd == 1:
            rates = Rates(1, float(args.growth), float(counts["promote"]), float(counts["retire"]),
                          float(counts["rest"]), float(args.models))
            live = items.assign(frequency_tier=tiers(items["exposure_runs"].to_numpy(),
                                                     items["exposure_publications"].to_numpy(),
                                                     args.tier_high_runs, args.tier_high_publications))
            projection, left = project(live, demand, rates, round_no=1, tier_high_runs=args.tier_high_runs,
                                       tier_high_publications=args.tier_high_publications, horizon=args.rounds - 1)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(f"rules: {rules.as_dict()}; tier_high_runs {args.tier_high_runs}, tier_high_publications "
          f"{args.tier_high_publications}; demand per round {need} + {demand.pretest} pretest")
    print(table.to_string(index=False))
    print(f"every round feasible: {bool(table['feasible'].all())}; promoted {table['promoted'].sum()}, "
          f"rested {table['rested'].sum()}, returned {table['returned'].sum()}, retired {table['retired'].sum()}")
    if projection is not None:
        print("health projection after round 1 (supply for the next form):")
        wide = projection.pivot_table(index="round", columns="value", values="supply").round(0)
        print(wide.to_string())
        print(left.to_string(index=False))
        if args.plot is not None:
            plots.save(plots.health_figure(projection, title="Projected supply after round 1 vs demand"), args.plot)
            print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
