"""``adt round --spec round.yaml``: a whole round in one command (see adt/workflow/round.py)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from adt.cli import Context, cli, emit, pass_ctx
from adt.workflow.run import DEFAULT_BATCH_SIZE


@cli.command("round")
@click.option("--spec", "spec_path", required=True, type=click.Path(path_type=Path),
              help="Round spec (YAML): round, form, models, calibration.")
@click.option("--calibrate-first", is_flag=True, help="Calibrate on past runs before sampling.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None,
              help="Where the runs are scored (default: the spec's executor, else local).")
@click.option("--ray-address", default=None, help="Ray cluster to join (e.g. auto, or HOST:6379).")
@click.option("--max-retries", type=int, default=None,
              help="Retries of a run whose backend or worker failed, before it is marked failed (default: the "
                   "spec's, else 0).")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Items per backend call; a killed worker loses at most one batch.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def round_(ctx: Context, spec_path: Path, calibrate_first: bool, executor: str | None, ray_address: str | None,
           max_retries: int | None, batch_size: int, as_json: bool) -> None:
    """Sample -> publish -> run every model -> recalibrate linked -> estimate -> summary table."""
    from dataclasses import replace

    from adt.workflow.round import RoundSpec, coverage_note, run_round, summary_table

    spec = RoundSpec.from_file(spec_path)
    given: dict[str, Any] = {k: v for k, v in (("kind", executor), ("address", ray_address), ("max_retries", max_retries))
             if v is not None}
    # Ray prints its cluster's messages (a worker died, ...) on stdout: with --json they go to stderr.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        summary = run_round(ctx.bank_path, spec, say=lambda m: click.echo(m, err=as_json),
                            calibrate_first=calibrate_first, progress=not as_json,
                            executor=replace(spec.executor, **given), batch_size=batch_size)
    table = summary_table(summary)
    note = coverage_note(table)
    runs = [{"model": s.model, "run_id": s.run_id, "status": s.status, "attempts": s.attempts,
             "n_responses": s.n_responses, "n_items": s.n_items} for s in summary.statuses]
    emit({"round": summary.round_no, "form": summary.form_name, "calibration": summary.calibration_after,
          "linked_to": summary.calibration_before, "leaderboard": table, "runs": runs, "note": note}
         if as_json else table, as_json)
    if note and not as_json:
        click.echo(f"note: {note}")
