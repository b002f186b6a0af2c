"""``adt run``: one model answering one form, results fed into the bank batch by batch."""

from __future__ import annotations

import contextlib
import sys

import click

from adt.cli import Context, cli, emit, pass_ctx
from adt.flags import parse_backend_args
from adt.workflow.run import DEFAULT_BATCH_SIZE, run_form
from adtbase.errors import RunnerError
from runners import available


@cli.command("run")
@click.option("--form", "form_name", required=True, help="The form to answer (see `adt form list`).")
@click.option("--model", required=True, help="The model's name in the bank (and, for replay, in the record).")
@click.option("--backend", required=True,
              help=f"One of {', '.join(available())}, or a Runner class as package.module:Class.")
@click.option("--backend-arg", "backend_args", multiple=True, metavar="K=V",
              help="Backend argument (repeatable); values parse as JSON where they can. replay: path=FILE, "
                   "source=NAME (map items to that source's ids); simulated: theta=, params=FILE, rng=SEED.")
@click.option("--run", "run_id", default=None,
              help="Run id (default FORM:MODEL); re-running with the same id resumes the run.")
@click.option("--round", "round_no", type=int, default=None, help="Round number the run belongs to.")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Items per backend call; a kill loses at most one batch.")
@click.option("--template", "template_id", default=None,
              help="Prompt template id (default: per item type and language, e.g. mc-en-0shot@1).")
@click.option("--mc-mode", type=click.Choice(["loglik", "generate"]), default="loglik", show_default=True)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Score here, or as a task on a Ray cluster (the spool must be on storage its nodes share).")
@click.option("--ray-address", default=None, help="Ray cluster to join (e.g. auto, or HOST:6379).")
@click.option("--max-retries", type=int, default=0, show_default=True,
              help="Retries of the run when its backend or worker fails, before it is marked failed.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is off anyway when stderr is not a terminal).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def run(ctx: Context, form_name: str, model: str, backend: str, backend_args: tuple[str, ...], run_id: str | None,
        round_no: int | None, batch_size: int, template_id: str | None, mc_mode: str, executor: str,
        ray_address: str | None, max_retries: int, no_progress: bool, as_json: bool) -> None:
    """Score MODEL on FORM with BACKEND; resumable (kill it and re-run the same command)."""
    args = parse_backend_args(backend_args)
    if executor == "local" and max_retries == 0:  # today's run, unchanged
        report = run_form(ctx.bank_path, form_name, model, backend, args, run_id, batch_size=batch_size,
                          wait_s=ctx.wait_s, progress=not no_progress, round_no=round_no, template_id=template_id,
                          mc_mode=mc_mode, on_wait=lambda msg: click.echo(msg, err=True))
    else:
        from adt.workflow.executor import ExecutorConfig, RunTarget, run_all

        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():  # Ray's messages
            row, = run_all(ctx.bank_path, [RunTarget(model, backend, form_name, args, run_id, round_no)],
                           ExecutorConfig(executor, ray_address, max_retries), batch_size=batch_size,
                           wait_s=ctx.wait_s, progress=not no_progress, say=lambda m: click.echo(m, err=True),
                           command="adt run", run_options={"template_id": template_id, "mc_mode": mc_mode})
        if row.report is None:
            raise RunnerError(f"run {row.run_id}: failed after {row.attempts} attempt(s): {row.error}; "
                              f"{row.n_responses}/{row.n_items} items stored; re-run the same command to resume")
        report = row.report
    data = report.as_dict()
    emit(data, as_json, None if as_json else (
        f"run {report.run_id}: {report.status}; {report.n_responses}/{report.n_items} items answered "
        f"({report.n_scored} now, {report.n_answered_before} before"
        + (f", {report.n_missing} never answered by the record" if report.n_missing else "")
        + (f", {report.n_errors} errors: re-run to retry them" if report.n_errors else "")
        + f") in {report.seconds:.1f} s"))
    if report.status == "failed":
        raise SystemExit(1)
