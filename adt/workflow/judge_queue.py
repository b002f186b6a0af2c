"""Humans where the panel is uncertain: the human queue of judged answers and the human score (issue 15).

A **case** is one judged answer, ``RUN_ID/ITEM_ID`` (``case_id``; item ids hold no "/", so the last one splits).

The queue (``human_queue``): of the judged answers in the bank (``scored_by`` panel or human), the ones the
routing rules send to humans, less those a human has scored. Per answer (``panel_view``): each judge's verdict
(the two orders combined by ``adtbase.verdicts.combine_orders``), the panel's score (``panel_score``: their
mean), their spread (the SD of the judges' verdicts; an order-inconsistent pair counts as the tie the position
rule makes it) and the inconsistent pairs. Routing (``route_cases``): half the budget (a share of the judged
answers, default ``DEFAULT_BUDGET``) to the least confident answers where a judge calibration's rater model
covers the panel (``panel_confidence``: its largest posterior probability, as ``adt judge run`` scores with it),
else to the largest spreads (the judges disagree); the rest to the scores nearest the decision threshold 0.5 (a
pass mark; a pairwise tie) among those left, ``ceil(budget * n)`` in all, each ranking by
``calibration.judges.route`` ("confidence", "disagreement", "threshold": the routing rules' one place). The
ranking is over every judged answer, human-scored ones included, so the queue does not refill as humans work
through it.

A human score (``score_case``): a rubric level (pointwise) or 0 baseline better / 1 tie / 2 candidate better
(pairwise), stored as a judgment row with judge ``human:<reviewer>``, template ``human``, order "" (the judgments
frame of ``adtbase.verdicts``), and the answer's score set to the mean of its human verdicts with ``scored_by
= 'human'`` (``Bank.set_judged_scores``): a later ``adt judge run`` never overwrites it, and the judge
statistics and calibrations read the human rows from ``Bank.judgments`` as labels. A reviewer scores a case once
(a second score by the same reviewer is refused, naming the first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from adtbase.errors import InputError
from adtbase.rubric import parse_judge_key
from adtbase.verdicts import (
    JUDGMENT_COLUMNS,
    PENDING,
    combine_orders,
    level_verdict,
    panel_score,
    same_family,
)
from calibration import judges

HUMAN_TEMPLATE = "human"
HUMAN_PREFIX = "human:"
DEFAULT_BUDGET = 0.1
THRESHOLD = 0.5
PAIRWISE_LABELS = ("baseline better", "tie", "candidate better")
JUDGED = ("panel", "human")


def case_id(run_id: str, item_id: str) -> str:
    return f"{run_id}/{item_id}"


def split_case(case: str) -> tuple[str, str]:
    run_id, sep, item_id = case.strip().rpartition("/")
    if not sep or not run_id or not item_id:
        raise InputError(f"--case {case!r}: expected RUN_ID/ITEM_ID (see adt judge queue)")
    return run_id, item_id


def is_human(judge: str) -> bool:
    return str(judge).startswith(HUMAN_PREFIX)


# ------------------------------------------------------------------------------ the panel per answer

def panel_view(judgments: pd.DataFrame) -> pd.DataFrame:
    """Per answer (``run_id, item_id``): ``score`` (the panel rule), ``spread``, ``n_judges``, ``n_inconsistent``,
    ``verdicts`` ({judge: combined verdict}), ``humans`` ({reviewer: verdict}) (module doc)."""
    cols = ["run_id", "item_id", "model", "score", "spread", "n_judges", "n_inconsistent", "verdicts", "humans"]
    rows = []
    for (run_id, item_id), answer in judgments.groupby(["run_id", "item_id"], sort=True):
        verdicts: dict[str, float] = {}
        humans: dict[str, float] = {}
        inconsistent = 0
        for (judge, _tid), calls in answer.groupby(["judge", "template_id"], sort=True):
            by_order = dict(zip(calls["order"], calls["verdict"].astype(float), strict=True))
            if is_human(judge):
                humans[str(judge)[len(HUMAN_PREFIX):]] = by_order.get("", math.nan)
                continue
            if "" in by_order:
                verdicts[str(judge)] = by_order[""]
                continue
            combined = combine_orders(by_order.get("ab", math.nan), by_order.get("ba", math.nan))
            inconsistent += combined.status == "inconsistent"
            verdicts[str(judge)] = combined.verdict
        got = [v for v in verdicts.values() if not math.isnan(v)]
        rows.append((run_id, item_id, str(answer["model"].iloc[0]), panel_score(got),
                     float(np.std(got)) if len(got) > 1 else math.nan, len(got), inconsistent, verdicts, humans))
    return pd.DataFrame(rows, columns=cols)


def panel_judgments(judgments: pd.DataFrame, exclude_self: bool) -> pd.DataFrame:
    """The calls the panel's score counts: with ``exclude_self`` (the bank setting ``judge_exclude_self``, as ``adt
    judge run`` scores) a judge's calls on its own family's answers are left out; humans' rows always stay."""
    if not exclude_self or judgments.empty:
        return judgments
    own = [not is_human(j) and same_family(str(jm), str(m))
           for j, jm, m in zip(judgments["judge"], judgments["judge_model"], judgments["model"], strict=True)]
    return judgments[~np.asarray(own, dtype=bool)]


# ------------------------------------------------------------------------------ routing

def route_cases(view: pd.DataFrame, budget: float = DEFAULT_BUDGET) -> pd.Series:
    """Why each answer goes to humans ("confidence", "disagreement" or "threshold"; "" not routed):
    ``ceil(budget * n)`` answers, the first half the least confident by the rater model where ``view`` has a
    finite ``confidence`` (a judge calibration covers the panel), else the largest spreads (answers with two judges
    or more that differ); the rest nearest the threshold among those left."""
    if not 0 <= budget <= 1:
        raise InputError(f"--budget {budget}: a share of the judged answers in [0, 1]")
    n = len(view)
    if n == 0:
        return pd.Series([], dtype=object)
    n_route = int(np.ceil(budget * n - 1e-9))
    first = n_route - n_route // 2
    conf = view["confidence"].to_numpy(dtype=float) if "confidence" in view else np.full(n, np.nan)
    if np.isfinite(conf).any():
        rule = "confidence"
        by_first = judges.route(conf, first / n, "confidence")   # an answer the model does not cover goes first
    else:
        rule = "disagreement"
        # A single judge has no spread: NaN would rank first, so it ranks last (disagreement needs two judges).
        spread = view["spread"].fillna(-1.0).to_numpy(dtype=float)
        by_first = judges.route(spread, first / n, "disagreement") & (spread > 0)
    rest = n_route - int(by_first.sum())
    score = np.where(by_first, 1e9, view["score"].to_numpy(dtype=float))   # the ones taken rank last
    by_threshold = judges.route(score, rest / n, "threshold") & ~by_first
    why = np.where(by_first, rule, np.where(by_threshold, "threshold", ""))
    return pd.Series(why, index=view.index, dtype=object)


def panel_confidence(bank: Any, judgments: pd.DataFrame, answers: pd.DataFrame,
                     exclude_self: bool = False) -> pd.Series | None:
    """Per answer, the rater model's confidence in the panel's verdict (the latest judge calibration's, as ``adt
    judge run`` scores with it); None without a judge calibration. NaN where the model does not cover the judges."""
    from adt.workflow.judge import answer_lengths, judge_scores, stored_rater_model

    _, model = stored_rater_model(bank)
    if model is None:
        return None
    scores = judge_scores(judgments, exclude_self=exclude_self, rater_model=model, lengths=answer_lengths(answers))
    return scores.set_index(["run_id", "item_id"])["confidence"].astype(float)


@dataclass(frozen=True)
class Case:
    """One queued answer, as a reviewer sees it."""

    case: str
    run_id: str
    item_id: str
    model: str
    item_type: str
    language: str
    question: str
    answer: str
    baseline: str | None
    reference: str | None
    levels: tuple[str, ...]            # what each level means, in order
    score: float
    spread: float
    why: str
    judgments: list[dict[str, Any]]   # the judges' calls: judge, order, level, verdict, problem

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def level_labels(key_text: str) -> tuple[str, ...]:
    """What each human level means for an item's judge key: pairwise three, pointwise the rubric's total levels
    (a several-criteria rubric's levels are sums of its criteria's scores)."""
    key = parse_judge_key(key_text)
    if key.kind == "pairwise":
        return PAIRWISE_LABELS
    crit = key.scale.criteria
    if len(crit) == 1:
        return tuple(f"{k}: {d}" for k, d in enumerate(crit[0].levels))
    return tuple(f"{k} of {key.scale.n_levels - 1}" for k in range(key.scale.n_levels))


def human_queue(bank: Any, *, budget: float = DEFAULT_BUDGET, limit: int | None = None) -> tuple[list[Case], int]:
    """(the queued cases, most uncertain first, up to ``limit``; how many are queued in all)."""
    answers = bank.judged_answers(scored_by=JUDGED)
    if answers.empty:
        return [], 0
    from adt.workflow.judge import exclude_self_setting

    judgments = bank.judgments(sorted(set(answers["run_id"])), sorted(set(answers["item_id"])))
    exclude_self = exclude_self_setting(bank.settings())
    view = panel_view(panel_judgments(judgments, exclude_self))   # the reviewer still sees every call
    view = view.merge(answers[["run_id", "item_id"]], on=["run_id", "item_id"])
    conf = panel_confidence(bank, judgments, answers, exclude_self)
    if conf is not None:
        view["confidence"] = conf.reindex(pd.MultiIndex.from_frame(view[["run_id", "item_id"]])).to_numpy()
    view["why"] = route_cases(view, budget)
    queued = view[(view["why"] != "") & (view["humans"].map(len) == 0)].copy()
    queued["_rank"] = np.abs(queued["score"] - THRESHOLD) - queued["spread"].fillna(0.0)
    queued = queued.sort_values(["_rank", "run_id", "item_id"], kind="stable")
    total = len(queued)
    if limit is not None:
        queued = queued.head(limit)
    info = answers.set_index(["run_id", "item_id"])
    out = []
    for r in queued.itertuples(index=False):
        a = info.loc[(r.run_id, r.item_id)]
        key = parse_judge_key(str(a["key"]))
        calls = judgments[(judgments["run_id"] == r.run_id) & (judgments["item_id"] == r.item_id)]
        out.append(Case(case_id(r.run_id, r.item_id), r.run_id, r.item_id, r.model, str(a["item_type"]),
                        str(a["language"] or "en"), str(a["question"]), str(a["answer"]), key.baseline, key.reference,
                        level_labels(str(a["key"])), float(r.score), float(r.spread), r.why,
                        [{"judge": str(c.judge), "order": str(c.order), "level": None if pd.isna(c.level) else int(c.level),
                          "verdict": None if math.isnan(c.verdict) else float(c.verdict), "problem": c.problem}
                         for c in calls.itertuples(index=False)]))
    return out, total


# ------------------------------------------------------------------------------ humans' labels

def human_labels(judgments: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the judges' rows, the humans' labels): the labels one per case (``run_id, item_id, label``: the mean of its
    human verdicts, in the verdict coding), as a gold file gives them to ``adt judge validate``."""
    human = judgments["judge"].map(is_human).astype(bool)
    got = judgments[human & judgments["verdict"].notna()]
    labels = got.groupby(["run_id", "item_id"], sort=True)["verdict"].mean().rename("label").reset_index()
    return judgments[~human].reset_index(drop=True), labels


# ------------------------------------------------------------------------------ a human's score

def check_reviewer(reviewer: str) -> str:
    name = " ".join(str(reviewer or "").split())
    if not name:
        raise InputError("say who you are: a reviewer name is needed")
    if len(name) > 200:
        raise InputError("reviewer name: at most 200 characters")
    return name


def score_case(bank: Any, case: str, level: int, reviewer: str, note: str = "") -> dict[str, Any]:
    """Store one human score (module doc); returns the case, the level, its verdict and the answer's new score."""
    run_id, item_id = split_case(case)
    reviewer = check_reviewer(reviewer)
    found = bank.judged_answers([run_id], scored_by=(PENDING, *JUDGED))
    found = found[found["item_id"] == item_id]
    if found.empty:
        raise InputError(f"case {case!r}: no judge-scored answer of run {run_id!r} to item {item_id!r}")
    answer = found.iloc[0]
    key = parse_judge_key(str(answer["key"]))
    pairwise = key.kind == "pairwise"
    n_levels = 3 if pairwise else key.scale.n_levels
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < n_levels:
        raise InputError(f"case {case}: level {level!r} is not one of 0..{n_levels - 1} "
                         f"({'; '.join(level_labels(str(answer['key'])))})")
    judge = HUMAN_PREFIX + reviewer
    stored = bank.judgments([run_id], [item_id])
    mine = stored[stored["judge"] == judge]
    if len(mine):
        first = mine.iloc[0]
        raise InputError(f"case {case}: {reviewer} scored it already (level {first['level']} at {first['judged_at']})")
    verdict = level_verdict(level, n_levels, pairwise=pairwise)
    row = {"run_id": run_id, "item_id": item_id, "model": str(answer["model"]), "judge": judge, "judge_model": "",
           "template_id": HUMAN_TEMPLATE, "order": "", "prompt_hash": "", "raw_output": str(note or ""),
           "verdict": verdict, "level": level, "n_levels": n_levels, "problem": None,
           "judged_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with bank.transaction():   # the judgment and the answer's score together, or neither
        bank.add_judgments(pd.DataFrame([row], columns=list(JUDGMENT_COLUMNS)))
        rows = bank.judgments([run_id], [item_id])
        humans = rows[rows["judge"].map(is_human)]["verdict"].astype(float)
        score = panel_score(humans.tolist())
        bank.set_judged_scores(pd.DataFrame({"run_id": [run_id], "item_id": [item_id], "score": [score]}),
                               scored_by="human")
    return {"case": case, "reviewer": reviewer, "level": level, "n_levels": n_levels, "verdict": verdict,
            "score": score, "n_humans": int(len(humans))}
