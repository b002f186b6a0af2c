"""The demo world with subjective items, end to end (issue 15): a SIMULATION with simulated judges of known bias.

    python bench/judge_world.py [--items 6000] [--models 16] [--judged 240] [--form-size 300] [--seed 2026]
                                [--final '--method facets'] [--bank judge_world.duckdb]

Builds the demo world (``adt.demo.build_world``: generated items, simulated models' past runs), adds judge-scored
items (``adt.demo_judged``) and runs the round through the CLI in this process: import -> calibrate -> sample ->
publish -> run every model -> calibrate (subjective answers still pending) -> ``adt judge run`` with a panel of
``simjudge`` judges -> calibrate -> report. Prints what the world knows and an operator would not:

- the judges: true severity / position bias / length bias against what the judgments show (pointwise level
  offset from the other judges on the same answers; first-position wins; longer-answer wins), and the pairs
  each judge judged inconsistently across the two orders;
- the panel's score against the answers' true quality (Spearman);
- the leaderboard without and with the subjective items, each against the true abilities;
- the human queue after the judge run (how many answers, why).

Measured (2 shared cores, seed 2026, defaults, ``--final '--method facets'``; 16 models, 240 judged items,
1,440 judged answers; four judges, true severity / position / length bias -> what the judgments show):
  fair 0/0/0: level offset +0.005, many-facet severity -0.023, 133 of 640 pairs order-inconsistent, first 0.499
  harsh 0.8/0/0: -0.104, +0.466, 129, 0.501;  lenient-first -0.6/1.0/0: +0.116, -0.449, 273, 0.694
  long-lover 0.2/0/1.0: longer answer wins 0.672 (the truly better answer is the longer one in 0.564)
  many-facet severities vs true: Pearson 0.994 (slope 0.64); panel score vs true quality: Spearman 0.946.
  Leaderboard vs true ability: without subjective items Pearson 0.990 (mean SE 0.125); with them, facets 0.996
  (mean SE 0.106); plain 2PL on the panel scores 0.992 (0.111).
  Routing 144 of 1,440 answers to a simulated expert: share at the true level 0.834 -> 0.869 by the queue's
  rules, 0.851 (0.845-0.857) sent at random.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from adt.cli import main as adt_main
from adt.demo import build_world
from adt.demo_judged import PANEL, expert_levels, judge_figures, judged_round, longer_wins, subjective_items
from adt.workflow.calibrate import estimate_all
from itembank import open_bank
from runners import read_simulated_quality


def cli_invoker(bank: Path):
    """``adt --bank BANK *args`` in this process; its stdout, or SystemExit with its output on failure."""
    def invoke(args: Sequence[str]) -> str:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                adt_main(["--bank", str(bank), *args])
            except SystemExit as exc:
                if exc.code:
                    raise SystemExit(f"adt {' '.join(args)} failed: {err.getvalue()}{out.getvalue()}") from None
        return out.getvalue()
    return invoke


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bank", type=Path, default=None, help="Keep the bank here (default: a temporary folder).")
    ap.add_argument("--items", type=int, default=6000)
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--judged", type=int, default=240, help="Judge-scored items added to the bank.")
    ap.add_argument("--form-size", type=int, default=300)
    ap.add_argument("--writing-share", type=float, default=0.3, help="Share of the form from the judged items.")
    ap.add_argument("--final", default=None,
                    help="The last calibration's flags, e.g. '--method facets' (default: 2PL linked to the one before).")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="adt-judge-world-") as tmp:
        work = Path(tmp)
        bank = args.bank or work / "world.duckdb"
        for leftover in (bank, bank.with_name(bank.name + ".wal")):
            leftover.unlink(missing_ok=True)
        world = build_world(bank, n_items=args.items, n_models=args.models, seed=args.seed, workdir=work)
        items, truth = subjective_items(args.judged, np.random.default_rng([args.seed, 15]))
        result = judged_round(cli_invoker(bank), bank, work, world, items, truth, form_size=args.form_size,
                              writing_share=args.writing_share, seed=args.seed,
                              final=args.final.split() if args.final else None)
        with open_bank(bank) as b:
            judgments = b.judgments()
            answers = b.judged_answers(scored_by=("panel", "human"))
            board_obj = estimate_all(b, result.calibration_objective["calibration_id"])
            board_all = estimate_all(b, result.calibration_all["calibration_id"])
            fitted = fitted_severities(b, result.calibration_all["calibration_id"])
        report(judgments, answers, board_obj, board_all, world.models, result, fitted)
        routing(cli_invoker(bank), bank, answers, result.queue, np.random.default_rng([args.seed, 16]))
    print(f"\njudge world took {time.perf_counter() - start:.0f} s")


def fitted_severities(bank, calibration_id: str) -> pd.Series | None:
    """The judges' severities a many-facet calibration (``--final '--method facets'``) stored, by judge; None when
    the calibration has none (another fitter, or no judge verdicts reached the fit)."""
    from calibration import load_calibration

    model: Any = getattr(load_calibration(bank, calibration_id), "item_model", None)   # facets' graded parameters
    raters = tuple(getattr(model, "rater_ids", ()) or ())
    if not raters:
        return None
    return pd.Series([float(v) for v in model.severity], index=list(raters), name="fitted_severity")


def report(judgments: pd.DataFrame, answers: pd.DataFrame, board_obj: pd.DataFrame, board_all: pd.DataFrame,
           models: pd.DataFrame, result, fitted: pd.Series | None = None) -> None:
    figs = judge_figures(judgments).set_index("judge")
    figs["longer_wins"], truth_longer = longer_wins(judgments, answers)
    true = pd.DataFrame([{"judge": j.name, "true_severity": j.severity, "true_position": j.position_bias,
                          "true_length": j.length_bias} for j in PANEL]).set_index("judge")
    table = true.join(figs)
    if fitted is not None:
        table = table.join(fitted)
    pd.set_option("display.width", 160)
    print("\nSimulated judges: true biases against what their judgments show")
    print(table.round(3).to_string())
    print(f"  the truly better answer is the longer one in {truth_longer:.3f} of the pairs (read longer_wins "
          "against it)")
    r = spearmanr(table["true_severity"], -table["pointwise_offset"]).statistic
    print(f"  severity recovered (Spearman of true severity with minus the pointwise offset): {r:.2f}")
    if fitted is None:
        print("  the last calibration stored no judge severities (not a many-facet fit with the judges as raters)")
    else:
        t = table["true_severity"] - table["true_severity"].mean()   # the fit's severities sum to zero
        fit = table["fitted_severity"]
        print(f"  many-facet severities: Pearson with the (centred) true ones {np.corrcoef(t, fit)[0, 1]:.3f}, "
              f"slope {np.polyfit(t, fit, 1)[0]:.2f} (the fit's logit scale is the latent N(0, 1)'s, the judges' "
              f"the answers' quality's)")
    quality = answers.assign(q=answers["answer"].map(read_simulated_quality))
    scores = judgments[judgments["template_id"] != "human"].groupby(["run_id", "item_id"])["verdict"].mean()
    q = quality.set_index(["run_id", "item_id"])["q"].reindex(scores.index)
    print(f"  panel mean verdict against the answers' true quality: Spearman {spearmanr(q, scores).statistic:.3f} "
          f"over {len(scores)} answers")
    truth = models.set_index("model")["theta"]
    print("\nLeaderboard without (objective items only) and with the subjective items, against the truth")
    both = (board_obj.set_index("model")[["theta", "se"]].join(board_all.set_index("model")[["theta", "se"]],
                                                               lsuffix="_without", rsuffix="_with"))
    both["true_theta"] = truth.reindex(both.index)
    print(both.sort_values("theta_with", ascending=False).round(2).to_string())
    for col in ("theta_without", "theta_with"):
        print(f"  {col}: Pearson with truth {np.corrcoef(both[col], both['true_theta'])[0, 1]:.3f}, "
              f"Spearman {spearmanr(both[col], both['true_theta']).statistic:.3f}, mean SE "
              f"{both['se' + col[5:]].mean():.3f}")
    q = result.queue
    print(f"\nHuman queue after the judge run: {q['total']} answers (budget {q['budget']:.0%} of "
          f"{len(answers)} judged); why: " + str(pd.Series([c['why'] for c in q['cases']]).value_counts().to_dict()))
    print(f"Report with per-type sub-scores: {result.report}")


def routing(invoke, bank: Path, answers: pd.DataFrame, queue: dict, rng: np.random.Generator) -> None:
    """A simulated expert scores the queued answers through `adt judge score`; the answers' levels against the
    truth before and after, and against sending as many answers at random."""
    truth = expert_levels(answers)

    def correct() -> pd.Series:
        with open_bank(bank) as b:
            x = b.responses(scored=False).set_index(["run_id", "item_id"])["score"]
            j = b.judgments()
        top = j[j["template_id"] != "human"].groupby(["run_id", "item_id"])["n_levels"].max() - 1
        level = (x.reindex(truth.index) * top.reindex(truth.index)).round()   # the answer's score as a level
        return (level == truth).astype(float)

    before = correct()
    for c in queue["cases"]:
        invoke(["judge", "score", "--case", c["case"], "--level", str(int(truth.loc[tuple(c["case"].rsplit("/", 1))])),
                "--reviewer", "sim-expert"])
    after = correct()
    k, n = len(queue["cases"]), len(before)
    r = before.to_numpy()
    rand = [(r.sum() - r[rng.choice(n, size=k, replace=False)].sum() + k) / n for _ in range(2000)]
    print(f"\nHuman routing ({k} of {n} judged answers scored by a simulated expert through `adt judge score`): "
          f"answers at the true level {before.mean():.3f} with no routing, {after.mean():.3f} routed by the queue's "
          f"rules, {np.mean(rand):.3f} (95% {np.quantile(rand, 0.025):.3f}-{np.quantile(rand, 0.975):.3f}) with as "
          f"many sent at random")
    t = time.perf_counter()
    val = json.loads(invoke(["judge", "validate", "--gold", "human", "--folds", "2", "--types", "1", "--json"]))
    print(f"\nadt judge validate --gold human (the expert's {val['n_gold']} scores as labels; the judges refitted on "
          f"them, {time.perf_counter() - t:.0f} s):")
    def num(v: Any) -> str:   # pointwise raters have no position or length figure (None)
        return "-" if v is None or v != v else f"{v:.3f}"

    for r in val["judges"]:
        print(f"  {r['rater']:<40} accuracy {num(r['acc'])} [{num(r['acc_lo'])}, {num(r['acc_hi'])}]  "
              f"first position {num(r['first_pref'])}  longer answer {num(r['longer_pref'])}")


if __name__ == "__main__":
    main()
