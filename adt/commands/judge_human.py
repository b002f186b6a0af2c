"""``adt judge queue`` / ``adt judge score``: the human queue of uncertain judged answers from the command line,
for operators without a browser (the review page's "judged answers" view is the same queue;
``adt.workflow.judge_queue`` holds the rules)."""

from __future__ import annotations

import getpass

import click

from adt.cli import Context, emit, pass_ctx
from adt.commands.judge import judge
from adt.workflow.judge_queue import DEFAULT_BUDGET

_BUDGET = click.option("--budget", type=float, default=DEFAULT_BUDGET, show_default=True,
                       help="Share of the judged answers routed to humans (half by the judges' disagreement, half "
                            "by the score's nearness to 0.5).")


@judge.command("queue")
@_BUDGET
@click.option("--limit", type=int, default=20, show_default=True, help="Cases shown (0: all).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def queue_cmd(ctx: Context, budget: float, limit: int, as_json: bool) -> None:
    """Judged answers waiting for a human score, most uncertain first: the question, the answer (and baseline),
    the judges' verdicts and the levels to choose from (score one with `adt judge score`)."""
    from adt.workflow.judge_queue import human_queue

    with ctx.bank("adt judge queue") as b:
        cases, total = human_queue(b, budget=budget, limit=limit or None)
    if as_json:
        emit({"total": total, "budget": budget, "cases": [c.as_dict() for c in cases]}, True)
        return
    lines = [f"{total} judged answers wait for a human" + (f" (first {len(cases)})" if len(cases) < total else "")]
    for c in cases:
        verdicts = ", ".join(f"{j['judge']}{('/' + j['order']) if j['order'] else ''}="
                             f"{'?' if j['verdict'] is None else format(j['verdict'], '.2f')}" for j in c.judgments)
        lines += [f"\n{c.case}  [{c.item_type}, {c.model}; panel {c.score:.2f}, spread "
                  f"{'-' if c.spread != c.spread else format(c.spread, '.2f')}; {c.why}]",
                  f"  question: {_short(c.question)}", f"  answer:   {_short(c.answer)}"]
        if c.baseline is not None:
            lines.append(f"  baseline: {_short(c.baseline)}")
        if c.reference is not None:
            lines.append(f"  reference: {_short(c.reference)}")
        lines += [f"  judges:   {verdicts}", "  levels:   " + "; ".join(f"{k} = {d}" if not d.startswith(f"{k}")
                                                                          else d for k, d in enumerate(c.levels))]
    emit(None, False, "\n".join(lines))


@judge.command("score")
@click.option("--case", "case", required=True, metavar="RUN_ID/ITEM_ID", help="The case (see adt judge queue).")
@click.option("--level", type=int, required=True,
              help="Pairwise: 0 baseline better, 1 tie, 2 candidate better; otherwise the rubric level.")
@click.option("--reviewer", default=None, help="Who scores (default: this machine's user name).")
@click.option("--note", default="", help="Why, kept with the score.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def score_cmd(ctx: Context, case: str, level: int, reviewer: str | None, note: str, as_json: bool) -> None:
    """A human score for one judged answer: stored as a judgment by human:REVIEWER; the answer's score becomes
    the humans' (scored_by human), which later judge runs keep."""
    from adt.workflow.judge_queue import score_case

    with ctx.bank("adt judge score") as b:
        out = score_case(b, case, level, reviewer or getpass.getuser(), note)
    emit(out, as_json, f"{out['case']}: level {out['level']} of 0..{out['n_levels'] - 1} by {out['reviewer']}; "
                       f"the answer's score is now {out['score']:.2f} ({out['n_humans']} human score(s))")


def _short(text: str, width: int = 160) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= width else one[: width - 1] + "…"
