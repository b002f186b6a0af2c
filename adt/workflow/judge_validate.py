"""``adt judge validate``: each judge's and the panel's agreement with gold/human labels, stored as a judge
calibration (calibration room, migrations/005) with the rater model fitted on every label.

Thin glue: read and check the inputs (every problem named with file, row and field, before the bank is
touched), compute with ``calibration.judges`` (pure), store with ``save_judge_calibration``. The panel's
figures are out-of-fold (K-fold over the labelled cases, labels only from the training folds); the stored
rater model is then fitted on every label, its temperature learned from an inner split.

``--gold human`` takes the labels from the bank: the humans' scores (``adt judge score``, the review page's
judged answers; ``adt.workflow.judge_queue.human_labels``: one label per case, the mean of its human verdicts),
and the judges are the bank's judge calls less the humans' own rows. So each refit after more human scores
re-learns the judges' reliabilities from them. (A gold file named ``human``: give it as ``./human``.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adt.paramfile import read_table
from adt.workflow.judge import answer_lengths
from adtbase.errors import InputError
from adtbase.verdicts import SCORED_BY
from calibration import judges, save_judge_calibration
from itembank import Bank, file_sha256

HUMAN_GOLD = Path("human")   # --gold human: the bank's human scores are the labels


@dataclass(frozen=True)
class JudgeValidateOptions:
    gold: Path
    judges: tuple[str, ...] = ()
    verdicts: Path | None = None
    lengths: Path | None = None
    folds: int = 5
    seed: int = 0
    n_types: int = 2  # the measured default (bench/judge_panel.py): two case types, per-order confusion, length


@dataclass(frozen=True)
class JudgeValidation:
    judge_calibration_id: str
    stats: pd.DataFrame
    panel: dict[str, Any]
    n_cases: int
    n_gold: int
    n_classes: int
    notes: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"judge_calibration_id": self.judge_calibration_id, "n_cases": self.n_cases, "n_gold": self.n_gold,
                "n_classes": self.n_classes, "judges": self.stats.to_dict("records"), "panel": self.panel,
                "notes": list(self.notes)}


def read_inputs(opts: JudgeValidateOptions) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """The gold labels, the --verdicts frame (None: from the bank) and the lengths, each checked."""
    if opts.folds < 2:
        raise InputError(f"--folds {opts.folds}: at least 2")
    # the bank's human scores are read in judge_validate (the bank is not open here): an empty frame stands in
    gold = (pd.DataFrame(columns=list(judges.GOLD_COLUMNS)) if opts.gold == HUMAN_GOLD
            else judges.check_gold(read_table(opts.gold, "--gold"), f"--gold {opts.gold}"))
    frame = None
    if opts.verdicts is not None:
        frame = judges.check_judgments(read_table(opts.verdicts, "--verdicts"), f"--verdicts {opts.verdicts}")
    lengths = None
    if opts.lengths is not None:
        lengths = read_table(opts.lengths, "--lengths")
        missing = [c for c in ("item_id", "len_candidate", "len_baseline") if c not in lengths.columns]
        if missing:
            raise InputError(f"--lengths {opts.lengths}: no column(s) {missing}")
        lengths = lengths.assign(run_id=lengths["run_id"].fillna("").astype(str) if "run_id" in lengths.columns else "",
                                 item_id=lengths["item_id"].astype(str))
    return gold, frame, lengths


def bank_judgments(bank: Bank, gold: pd.DataFrame) -> pd.DataFrame:
    """The judge calls stored in the bank for the gold's cases (``adt judge run`` and humans' scores)."""
    frame = bank.judgments(item_ids=sorted(set(gold["item_id"])))
    if frame.empty:
        raise InputError("the bank holds no judge verdicts for the gold file's items (run `adt judge run` first, "
                         "or give the verdicts with --verdicts FILE)")
    return judges.check_judgments(frame, "bank judgments")


def select_judges(frame: pd.DataFrame, names: tuple[str, ...], where: str) -> pd.DataFrame:
    """Only the named judges (all when none); an unknown name is an InputError listing the known ones."""
    if not names:
        return frame
    known = sorted(set(frame["judge"]) | set(frame["rater"]))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"{where}: no verdicts of judge(s) {unknown} (judges: {', '.join(known)})")
    return frame[frame["judge"].isin(names) | frame["rater"].isin(names)].reset_index(drop=True)


def evaluate(frame: pd.DataFrame, gold: pd.DataFrame, lengths: pd.DataFrame | None, opts: JudgeValidateOptions
             ) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any], int, int, int, list[str]]:
    """Per-judge statistics, the out-of-fold panel and the rater model fitted on every label (pure)."""
    seeds = np.random.SeedSequence(opts.seed).spawn(3)
    vd = judges.verdicts(frame)
    g = judges.align(vd.cases, gold, "label")
    n_gold = int(np.isfinite(g).sum())
    notes = []
    if n_gold == 0:
        raise InputError(f"--gold {opts.gold}: no label matches a judged case (case = run_id, item_id)")
    unmatched = len(gold) - n_gold
    if unmatched:
        notes.append(f"{unmatched} gold label(s) name a case no judge judged")
    k = judges.gold_classes(g, vd)
    diff = (judges.align(vd.cases, lengths, "len_candidate") - judges.align(vd.cases, lengths, "len_baseline")
            if lengths is not None else None)
    stats = judges.judge_stats(frame, np.random.default_rng(seeds[0]), gold=gold, lengths=lengths, n_classes=k)
    model_opts = {"n_types": opts.n_types, "length": diff is not None}
    panel: dict[str, Any] = {"judges": list(vd.raters), "model": model_opts}
    if len(vd.raters) >= 1 and n_gold >= 5 * opts.folds:
        res = judges.cross_validate(vd, g, k, np.random.default_rng(seeds[1]), folds=opts.folds, len_diff=diff,
                                    model=model_opts)
        rel = judges.reliability_bins(res["confidence"], res["rm_credit"])
        at90 = rel[rel["bin"] == "0.85-0.95"].iloc[0]
        gain = judges.routing_gain(res["rm_credit"].to_numpy(), judges.route(res["confidence"].to_numpy(), 0.10),
                                   np.random.default_rng(seeds[2]))
        panel.update({"n_out_of_fold": len(res), "folds": opts.folds,
                      "acc": float(res["rm_credit"].mean()), "majority_acc": float(res["majority_credit"].mean()),
                      "best_judge_acc": float(res["best_credit"].mean()),
                      "best_judges": res["best_judge"].value_counts().to_dict(),
                      "at_90": {"n": int(at90["n"]), "accuracy": float(at90["accuracy"]),
                                "lo": float(at90["acc_lo"]), "hi": float(at90["acc_hi"])},
                      "ece": judges.expected_calibration_error(res["confidence"], res["rm_credit"]),
                      "routing_10pct": gain})
    else:
        notes.append(f"panel not cross-validated: {n_gold} labelled cases, fewer than 5 per fold of {opts.folds}")
    model = judges.fit_panel(vd, g, k, np.random.default_rng(seeds[1]), len_diff=diff, model=model_opts)
    return stats, panel, model.to_dict(), len(vd.cases), n_gold, k, notes


def judge_validate(bank: Bank, opts: JudgeValidateOptions,
                   inputs: tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]) -> JudgeValidation:
    """Measure and store one judge calibration in ``bank`` (opened by the caller) from ``read_inputs(opts)``,
    read before the bank is opened, so a bad file leaves it untouched."""
    gold, frame, lengths = inputs
    machine = None
    if opts.gold == HUMAN_GOLD:
        from adt.workflow.judge_queue import human_labels

        machine, labels = human_labels(bank.judgments())
        if labels.empty:
            raise InputError("--gold human: the bank holds no human scores yet (adt judge score, or the review page's "
                             "judged answers)")
        gold = judges.check_gold(labels, "the bank's human scores")
        gold_source = f"bank: human scores of {len(gold)} cases"
    else:
        gold_source = f"{opts.gold} sha256:{file_sha256(opts.gold)}"
    if opts.verdicts is not None and frame is not None:
        source = f"{opts.verdicts} sha256:{file_sha256(opts.verdicts)}"
        where = f"--verdicts {opts.verdicts}"
    else:
        if machine is not None:   # the judges' calls, less the humans' own rows (they are the labels)
            machine = machine[machine["item_id"].isin(set(gold["item_id"]))].reset_index(drop=True)
            frame, source, where = judges.check_judgments(machine, "bank judgments"), "bank", "bank judgments"
        else:
            frame, source, where = bank_judgments(bank, gold), "bank", "bank judgments"
        if lengths is None:   # the bank has the answers: pairwise lengths for the length statistics and term
            # judged answers only: a rule-scored answer has no judge key to read a length from
            answers = bank.judged_answers(sorted(set(frame["run_id"]) - {""}),
                                          scored_by=tuple(s for s in SCORED_BY if s != "rule"))
            lengths = answer_lengths(answers) if len(answers) else None
            lengths = lengths if lengths is not None and len(lengths) else None
    frame = select_judges(frame, opts.judges, where)
    stats, panel, model, n_cases, n_gold, k, notes = evaluate(frame, gold, lengths, opts)
    jcal = save_judge_calibration(bank, stats=stats, panel=panel, rater_model=model,
                                  settings={**asdict(opts), "gold": str(opts.gold)},
                                  gold_source=gold_source, verdicts_source=source,
                                  n_cases=n_cases, n_gold=n_gold, n_classes=k)
    return JudgeValidation(jcal, stats, panel, n_cases, n_gold, k, tuple(notes))


__all__ = ["JudgeValidateOptions", "JudgeValidation", "bank_judgments", "evaluate", "judge_validate",
           "read_inputs", "select_judges"]
