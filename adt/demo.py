"""`make demo`: a whole round on a machine with no GPU, no network and no files outside the repo.

1. Generate a bank of template items (itembank.generators: arithmetic, units, dates, strings, logic;
   English and Chinese) and import it.
2. Give 30 simulated models (known abilities; items' true parameters from the generators' difficulty
   knobs) past runs on part of the bank: a core every model answered (-> high frequency) and a wider
   pool each answered a share of (-> medium); the rest is never seen (-> low).
3. Calibrate on the past runs.
4. Sample the round's form with frequency quotas 10/40/50 (high / medium / low) and publish it.
5. Run every model on the form (the `simulated` backend through the spool, as `adt run` does).
6. Recalibrate linked to the previous calibration (anchors fixed) and print the leaderboard:
   abilities with 95% intervals, predicted bank accuracy with its predictive interval.

    python -m adt.demo [--bank demo.duckdb] [--items 50000] [--models 30] [--seed 2026]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from itembank import ImportOptions, open_bank

SOURCE = "demo-generated"


@dataclass(frozen=True)
class DemoWorld:
    """What the demo knows that a real operator would not: the truth behind the simulation."""

    params: pd.DataFrame      # item_id, a, b, c, d (true parameters)
    models: pd.DataFrame      # model, theta (true ability)


def true_parameters(items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Item parameters behind the simulation: b from the generators' difficulty knobs, guessing 1/k for MC."""
    n = len(items)
    a = np.exp(rng.normal(0.25, 0.3, n))
    b = items["true_difficulty"].to_numpy(dtype=float) + rng.normal(0, 0.3, n)
    is_mc = (items["type"] == "mc").to_numpy()
    c = np.where(is_mc, 0.25, 0.0)
    return pd.DataFrame({"id": items["id"].to_numpy(), "a": a, "b": b, "c": c, "d": 1.0})


def build_world(bank_path: Path, *, n_items: int, n_models: int, seed: int, workdir: Path,
                say=print) -> DemoWorld:
    """Steps 1 and 2: the generated bank and the models' past runs."""
    from itembank import generate_items

    root = np.random.SeedSequence(seed)
    gen_rng, param_rng, model_rng, past_rng = (np.random.default_rng(s) for s in root.spawn(4))
    t = time.perf_counter()
    items = generate_items(n_items, gen_rng)
    items_path = workdir / "generated_items.parquet"
    items.drop(columns=["true_difficulty"]).to_parquet(items_path, index=False)
    with open_bank(bank_path, create=True, purpose="demo: build") as bank:
        report = bank.import_items([items_path], ImportOptions(source=SOURCE, license="CC0-1.0"))
        id_of = bank.items_for_aliases(items["id"].tolist(), SOURCE)
    say(f"[1] generated and imported {report.new_items:,} template items "
        f"({(items['language'] == 'zh').mean():.0%} Chinese) in {time.perf_counter() - t:.1f} s")

    truth = true_parameters(items, param_rng)
    truth.insert(0, "item_id", truth["id"].map(id_of))
    thetas = np.sort(model_rng.normal(0.0, 1.0, n_models))[::-1]
    models = pd.DataFrame({"model": [f"sim-{i + 1:02d}" for i in range(n_models)], "theta": thetas})

    # Past runs: every model answered a core (-> high frequency); each answered 8% of a wider pool, so
    # those items were seen by two or three runs (-> medium); the rest of the bank is unseen (-> low).
    order = past_rng.permutation(n_items)
    n_core = max(n_items // 50, 100)
    core, wider = order[:n_core], order[n_core: n_core + int(0.3 * n_items)]
    rows = []
    for model, theta in zip(models["model"], models["theta"], strict=True):
        seen = np.concatenate([core, past_rng.choice(wider, size=int(0.08 * len(wider)), replace=False)])
        p = truth["c"].to_numpy()[seen] + (1 - truth["c"].to_numpy()[seen]) / (
            1 + np.exp(-truth["a"].to_numpy()[seen] * (theta - truth["b"].to_numpy()[seen])))
        rows.append(pd.DataFrame({"model": model, "item": truth["id"].to_numpy()[seen],
                                  "score": (past_rng.random(len(seen)) < p).astype(float)}))
    past = pd.concat(rows, ignore_index=True)
    past_path = workdir / "past_runs.parquet"
    past.to_parquet(past_path, index=False)
    t = time.perf_counter()
    with open_bank(bank_path, purpose="demo: past runs") as bank:
        rep = bank.import_responses(past_path, source=SOURCE, model_col="model", item_col="item",
                                    score_col="score", round_no=0)
        tiers = bank.stats(["frequency_tier"]).set_index("frequency_tier")["items"].to_dict()
    say(f"[2] {n_models} simulated models' past runs: {rep.new_responses:,} responses "
        f"({time.perf_counter() - t:.1f} s); frequency tiers now {tiers}")
    return DemoWorld(truth[["item_id", "a", "b", "c", "d"]], models)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", type=Path, default=Path("demo.duckdb"))
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--models", type=int, default=30)
    ap.add_argument("--form-size", type=int, default=400)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    from adt.workflow.round import RoundSpec, coverage_note, run_round

    start = time.perf_counter()
    for leftover in (args.bank, args.bank.with_name(args.bank.name + ".wal")):
        leftover.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="adt-demo-") as tmp:
        world = build_world(args.bank, n_items=args.items, n_models=args.models, seed=args.seed, workdir=Path(tmp))
        params_path = Path(tmp) / "true_params.json"
        params_path.write_text(json.dumps({r.item_id: [r.a, r.b, r.c, r.d] for r in world.params.itertuples()}))
        spec = RoundSpec.from_dict({
            "round": 1,
            "calibration": {"irt": "2pl", "seed": args.seed},
            "form": {"name": "round-1", "strategy": "stratified", "size": args.form_size, "seed": args.seed,
                     "quotas": {"frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5}}},
            "models": [{"name": m, "backend": "simulated",
                        "backend_args": {"theta": float(t), "params": str(params_path), "rng": args.seed + i}}
                       for i, (m, t) in enumerate(zip(world.models["model"], world.models["theta"], strict=True))],
        })
        summary = run_round(args.bank, spec, say=print, calibrate_first=True)
    truth = world.models.set_index("model")["theta"]
    board = summary.leaderboard.assign(true_theta=lambda f: f["model"].map(truth))
    print_leaderboard(board)
    corr = float(np.corrcoef(board["theta"], board["true_theta"])[0, 1])
    print(f"\nThe scale is the calibration's own (set by the population of past runs), so compare the true\n"
          f"abilities by order: correlation of estimated and true ability {corr:.3f}. Predicted bank accuracy\n"
          f"is about every item a model answered or the calibration can predict (items every model got right or\n"
          f"wrong included){'; ' + note if (note := coverage_note(board)) else ''}.\n"
          f"Demo took {time.perf_counter() - start:.0f} s; the bank is at {args.bank} (try `adt --bank {args.bank} report "
          f"--out report.html`).")


def print_leaderboard(board: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Round 1 leaderboard (abilities on the bank's scale, 95% intervals)")
    for col in ("rank", "model", "ability", "95% interval", "predicted bank accuracy", "true ability"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for rank, r in enumerate(board.sort_values("theta", ascending=False).itertuples(), start=1):
        table.add_row(str(rank), r.model, f"{r.theta:+.2f} ± {r.se:.2f}", f"[{r.lo:+.2f}, {r.hi:+.2f}]",
                      f"{r.pred_acc:.1%} ({r.pred_lo:.1%}-{r.pred_hi:.1%})", f"{r.true_theta:+.2f}")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
