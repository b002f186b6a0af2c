"""``adt judge``: judge models' verdicts. ``run`` has judge models score the answers to judge-scored items;
``validate`` measures each judge and the panel against gold/human labels and stores a judge calibration."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from adt.cli import Context, cli, emit, pass_ctx
from adt.flags import parse_backend_args


@cli.group("judge")
def judge() -> None:
    """Judge models: score the answers to judge-scored items (open with a reference/rubric, pairwise), and validate judges against gold/human labels."""


@judge.command("run")
@click.option("--judge", "judge_flags", multiple=True, metavar="NAME=BACKEND:MODEL",
              help="A judge (repeatable): its name as stored, the backend (openai, hf, vllm, or "
                   "package.module:Class) and the model it serves, e.g. gpt4o=openai:gpt-4o.")
@click.option("--judges", "judges_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A JSON or YAML list of judges: {name, backend, model, args}.")
@click.option("--backend-arg", "backend_args", multiple=True, metavar="[NAME.]K=V",
              help="Backend argument (repeatable) for every judge, or NAME.K=V for judge NAME only; values parse "
                   "as JSON where they can (openai: base_url=, concurrency=, ...).")
@click.option("--run", "run_ids", multiple=True, help="Judge the pending answers of this run (repeatable).")
@click.option("--form", "form_name", default=None, help="Judge the pending answers of the runs on this form.")
@click.option("--round", "round_no", type=int, default=None, help="Judge the pending answers of this round's runs.")
@click.option("--name", default=None,
              help="Judge run name (default: the judges' names joined by '+'); re-running it resumes.")
@click.option("--orders", type=click.Choice(["both", "ab", "ba"]), default="both", show_default=True,
              help="Pairwise: show the candidate first (ab), second (ba) or both (the position rule combines them).")
@click.option("--exclude-self/--include-self", default=None,
              help="Leave out judges of the candidate's model family (default: the bank setting "
                   "judge_exclude_self, else include them, flagged).")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Answers per backend call; a kill loses at most one batch.")
@click.option("--max-new-tokens", type=int, default=1024, show_default=True, help="The judge's reasoning and verdict.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def run(ctx: Context, judge_flags: tuple[str, ...], judges_file: Path | None, backend_args: tuple[str, ...],
        run_ids: tuple[str, ...], form_name: str | None, round_no: int | None, name: str | None, orders: str,
        exclude_self: bool | None, batch_size: int, max_new_tokens: int, no_progress: bool, as_json: bool) -> None:
    """Judge the pending answers (of --run, --form, --round, or every run) with one or more judges; resumable
    (kill it and re-run the same command: no stored call is made again). Each answer gets the panel's score."""
    from adt.workflow.judge import judge_run, parse_judge_flag, read_judges_file, with_backend_args

    judges = [parse_judge_flag(f) for f in judge_flags] + (read_judges_file(judges_file) if judges_file else [])
    judges = with_backend_args(judges, parse_backend_args(backend_args))
    report = judge_run(ctx.bank_path, judges, run_ids=list(run_ids), form_name=form_name, round_no=round_no,
                       name=name, orders=("ab", "ba") if orders == "both" else (orders,), exclude_self=exclude_self,
                       batch_size=batch_size, max_new_tokens=max_new_tokens, wait_s=ctx.wait_s,
                       progress=not no_progress, on_wait=lambda msg: click.echo(msg, err=True))
    emit(report.as_dict(), as_json, None if as_json else (
        f"judge run {report.name}: {report.status}; {report.n_answers} pending answers, {report.n_calls} calls "
        f"stored now ({report.n_calls_before} before), {report.n_unparseable} unparseable"
        + (f", {report.n_errors} backend errors: re-run to retry them" if report.n_errors else "")
        + f"; {report.n_inconsistent} inconsistent pairs, {report.n_self_flagged} self-family judgments"
        + (f" ({report.n_self_excluded} left out)" if report.n_self_excluded else "")
        + f"; {report.n_scored} answers scored ({report.panel_rule}), {report.n_pending} left pending in "
        + f"{report.seconds:.1f} s"
        + (f"\nnote: the stored rater model was not used: {report.rater_model_refused}"
           if report.rater_model_refused else "")))
    if report.status == "failed":
        raise SystemExit(1)


@judge.command("winrates")
@click.option("--run", "run_ids", multiple=True, help="Only this run's answers (repeatable).")
@click.option("--form", "form_name", default=None, help="Only the answers of the runs on this form.")
@click.option("--round", "round_no", type=int, default=None, help="Only the answers of this round's runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed of the intervals.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def winrates_cmd(ctx: Context, run_ids: tuple[str, ...], form_name: str | None, round_no: int | None, seed: int,
                 as_json: bool) -> None:
    """Each model's win rate on pairwise items against their baselines, raw and length-controlled (the verdict
    regressed on the length difference, read at equal length), with 95% intervals."""
    from adt.workflow.judge import win_rates

    with ctx.bank("adt judge winrates") as bank:
        frame = win_rates(bank, run_ids=run_ids or None, form_name=form_name, round_no=round_no, seed=seed)
    if as_json:
        emit(frame, True)
        return
    if frame.empty:
        click.echo("no scored pairwise answers in scope (judge them first: adt judge run)")
        return
    for r in frame.itertuples(index=False):
        click.echo(f"{r.model}: win rate {_ci(r.raw, r.raw_lo, r.raw_hi)}, length-controlled "
                   f"{_ci(r.lc, r.lc_lo, r.lc_hi)} over {r.n} pairwise answers (length slope {r.slope:+.2f})")


def _ci(p: float, lo: float, hi: float) -> str:
    return "-" if p != p else f"{p:.3f} [{lo:.3f}, {hi:.3f}]"


@judge.command("validate")
@click.option("--gold", "gold", type=click.Path(path_type=Path), required=True,
              help="Gold/human labels: CSV, JSON or Parquet with item_id, optional run_id, and label in the verdict "
                   "coding (1 candidate/output 1 better, 0 baseline better, 0.5 tie; pointwise level/(n-1)); or "
                   "'human': the humans' scores stored in the bank (adt judge score, the review page).")
@click.option("--judge", "judge_names", multiple=True, help="Only this judge (repeatable; default: every judge).")
@click.option("--verdicts", type=click.Path(path_type=Path), default=None,
              help="Verdicts in the judgments frame (CSV/JSON/Parquet) instead of the bank's stored judge calls.")
@click.option("--lengths", type=click.Path(path_type=Path), default=None,
              help="Answer lengths (item_id, optional run_id, len_candidate, len_baseline) for the length statistics "
                   "and the rater model's length term.")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds for the panel's figures.")
@click.option("--types", "n_types", type=int, default=2, show_default=True,
              help="Latent case types of the rater model (1: plain Dawid-Skene).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def judge_validate_cmd(ctx: Context, gold: Path, judge_names: tuple[str, ...], verdicts: Path | None,
                       lengths: Path | None, folds: int, n_types: int, seed: int, as_json: bool) -> None:
    """Agreement of each judge and of the panel with gold/human labels (accuracy per order and combined, kappa,
    position consistency, first-position and longer-answer preference, with 95% intervals); the panel's rater
    model by cross-validation; stored in the bank as a judge calibration."""
    from adt.workflow.judge_validate import JudgeValidateOptions, judge_validate, read_inputs

    opts = JudgeValidateOptions(gold=gold, judges=judge_names, verdicts=verdicts, lengths=lengths, folds=folds,
                                seed=seed, n_types=n_types)
    inputs = read_inputs(opts)  # every file checked before the bank is opened
    with ctx.bank("adt judge validate") as bank:
        result = judge_validate(bank, opts, inputs)
    if as_json:
        emit(result.as_dict(), True)
        return
    lines = [f"judge calibration {result.judge_calibration_id}: {result.n_cases} cases, {result.n_gold} with gold "
             f"({result.n_classes} classes)"]
    for r in result.stats.itertuples():
        lines.append(f"  {r.rater}: accuracy {_ci(r.acc, r.acc_lo, r.acc_hi)} (ab {r.acc_ab:.3f}, ba {r.acc_ba:.3f}); "
                     f"kappa {_ci(r.kappa, r.kappa_lo, r.kappa_hi)}; consistent "
                     f"{_ci(r.consistency, r.consistency_lo, r.consistency_hi)}; first position "
                     f"{_ci(r.first_pref, r.first_pref_lo, r.first_pref_hi)}; longer answer "
                     f"{_ci(r.longer_pref, r.longer_pref_lo, r.longer_pref_hi)} (gold {r.gold_longer:.3f}); "
                     f"unparseable {r.n_unparseable}")
    p = result.panel
    if "acc" in p:
        lines.append(f"  panel (rater model, {p['folds']}-fold out-of-fold on {p['n_out_of_fold']} cases): accuracy "
                     f"{p['acc']:.3f}; majority vote {p['majority_acc']:.3f}; best single judge {p['best_judge_acc']:.3f}; "
                     f"called at ~90%: {p['at_90']['n']} cases, {p['at_90']['accuracy']:.3f} right; routing 10% to "
                     f"humans: {p['routing_10pct']['acc_none']:.3f} -> {p['routing_10pct']['acc_routed']:.3f} "
                     f"(random {p['routing_10pct']['acc_random']:.3f})")
    lines += [f"note: {n}" for n in result.notes]
    click.echo("\n".join(lines))


# -- the human queue (adt.workflow.judge_queue holds the rules; the review page's /judged is the same queue) --

_BUDGET = click.option("--budget", type=float, default=None,
                       help="Share of the judged answers routed to humans: half the least confident by the judge "
                            "calibration's rater model (else where the judges disagree most), the rest nearest 0.5 "
                            "(default: DEFAULT_BUDGET of adt.workflow.judge_queue, a tenth).")


@judge.command("queue")
@_BUDGET
@click.option("--limit", type=int, default=20, show_default=True, help="Cases shown (0: all).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def queue_cmd(ctx: Context, budget: float | None, limit: int, as_json: bool) -> None:
    """Judged answers waiting for a human score, most uncertain first: the question, the answer (and baseline),
    the judges' verdicts and the levels to choose from (score one with `adt judge score`)."""
    from adt.workflow.judge_queue import DEFAULT_BUDGET, human_queue

    budget = DEFAULT_BUDGET if budget is None else budget
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
