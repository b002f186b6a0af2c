"""``adt judge``: judge models score judge-scored answers (``run``); other subcommands join this group."""

from __future__ import annotations

from pathlib import Path

import click

from adt.cli import Context, cli, emit, pass_ctx
from adt.flags import parse_backend_args


@cli.group("judge")
def judge() -> None:
    """Judge models: score the answers to judge-scored items (open with a reference/rubric, pairwise)."""


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
        + f"; {report.n_scored} answers scored, {report.n_pending} left pending in {report.seconds:.1f} s"))
    if report.status == "failed":
        raise SystemExit(1)


# The human queue (queue, score) lives in its own module and joins this group.
from adt.commands import judge_human as _judge_human  # noqa: E402,F401
