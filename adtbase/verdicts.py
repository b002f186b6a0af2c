"""Verdict coding and the rules that combine verdicts, written once (standard library only).

Every part of the judge work reads these: ``runners.judge`` (parsing a judge's output), ``adt judge run``
(writing an answer's score), ``calibration`` (the judges' statistics). See DESIGN.md, "judgments".

- A **case** is one candidate answer; ``order`` "ab" shows the candidate first, "ba" second, "" for a
  pointwise (rubric or reference) judgment.
- ``verdict`` in [0, 1], in the candidate's terms whatever the order shown: pairwise 1 candidate better,
  0 baseline better, 0.5 tie; pointwise ``level / (n_levels - 1)``. NaN: unparseable or failed (``problem``
  says why); never guessed.
- ``level``: pairwise 0 baseline better / 1 tie / 2 candidate better; pointwise the rubric level.

Position rule (``combine_orders``): a pair judged in both orders counts the verdict both orders give; when
they differ the pair is a tie, 0.5, and flagged inconsistent (MT-Bench's conservative rule: a win only when it
survives the swap). With one order parsed, that order's verdict stands, flagged ``single``.

Panel rule (``panel_score``), where no judge calibration says otherwise: the mean of the judges'
position-combined verdicts over the judges that gave one.

Self-preference (``same_family``): a judge is of the candidate's family when the two model names share their
family, the first word of the model's base name (``family``): the part after the last "/", lower-cased, up
to the first character that is not a letter ("meta-llama/Llama-3-8B" -> "llama", "gpt-4o-mini" -> "gpt",
"Qwen2.5-7B" -> "qwen"). A judge run flags such judgments and leaves them out with ``--exclude-self``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

# The judgments frame, one row per judge call (``itembank.Bank.judgments`` returns it, ``runners.judge`` makes
# its rows, the statistics read it) and its key: storing the same call twice adds nothing.
JUDGMENT_COLUMNS = ("run_id", "item_id", "model", "judge", "judge_model", "template_id", "order", "prompt_hash",
                    "raw_output", "verdict", "level", "n_levels", "problem", "judged_at")
JUDGMENT_KEY = ("run_id", "item_id", "judge", "template_id", "order")
# Who scored a response (``responses.scored_by``): a text rule, nobody yet (a judge-scored answer awaiting
# verdicts: its score is a placeholder), the judges' combined verdict, a human.
SCORED_BY = ("rule", "judge:pending", "panel", "human")
PENDING = "judge:pending"

ORDERS = ("ab", "ba")   # pairwise: the candidate shown first, shown second
POINTWISE = ""          # the order of a rubric/reference judgment
PAIRWISE_LEVELS = {"baseline": 0, "tie": 1, "candidate": 2}


def pairwise_level(shown_winner: str, order: str) -> int:
    """The level (candidate's terms) of a pairwise verdict naming the answer shown as "A", "B" or "TIE"."""
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not one of {ORDERS}")
    if shown_winner == "TIE":
        return PAIRWISE_LEVELS["tie"]
    if shown_winner not in ("A", "B"):
        raise ValueError(f"pairwise verdict {shown_winner!r} is not A, B or TIE")
    candidate_won = (shown_winner == "A") == (order == "ab")
    return PAIRWISE_LEVELS["candidate" if candidate_won else "baseline"]


def level_verdict(level: int, n_levels: int, *, pairwise: bool = False) -> float:
    """A level as a verdict in [0, 1]; pairwise levels are 0/1/2 whether or not ties are allowed."""
    return level / 2 if pairwise else level / (n_levels - 1)


@dataclass(frozen=True)
class Combined:
    verdict: float   # NaN when neither order gave one
    status: str      # consistent | inconsistent | single | none


def combine_orders(ab: float, ba: float) -> Combined:
    """The position rule (module doc) for one pair's two verdicts (NaN where an order gave none)."""
    have = [v for v in (ab, ba) if not math.isnan(v)]
    if not have:
        return Combined(math.nan, "none")
    if len(have) == 1:
        return Combined(have[0], "single")
    if ab == ba:
        return Combined(ab, "consistent")
    return Combined(0.5, "inconsistent")


def panel_score(verdicts: Iterable[float]) -> float:
    """The default panel rule: the mean of the judges' (position-combined) verdicts; NaN when none."""
    got = [v for v in verdicts if not math.isnan(v)]
    return sum(got) / len(got) if got else math.nan


def family(model: str) -> str:
    """A model name's family (module doc); "" when the name has none."""
    base = model.strip().rsplit("/", 1)[-1].lower()
    match = re.match(r"[a-z]+", base)
    return match.group(0) if match else ""


def same_family(judge_model: str, candidate_model: str) -> bool:
    """Self-preference risk: the judge and the candidate are of one family (neither name empty)."""
    a, b = family(judge_model), family(candidate_model)
    return bool(a) and a == b
