"""``adt round --spec round.yaml``: a whole round in one command (see adt/workflow/round.py)."""

from __future__ import annotations

from pathlib import Path

import click

from adt.cli import Context, cli, emit, pass_ctx


@cli.command("round")
@click.option("--spec", "spec_path", required=True, type=click.Path(path_type=Path),
              help="Round spec (YAML): round, form, models, calibration.")
@click.option("--calibrate-first", is_flag=True, help="Calibrate on past runs before sampling.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def round_(ctx: Context, spec_path: Path, calibrate_first: bool, as_json: bool) -> None:
    """Sample -> publish -> run every model -> recalibrate linked -> estimate -> summary table."""
    from adt.workflow.round import RoundSpec, coverage_note, run_round, summary_table

    spec = RoundSpec.from_file(spec_path)
    summary = run_round(ctx.bank_path, spec, say=lambda m: click.echo(m, err=as_json),
                        calibrate_first=calibrate_first, progress=not as_json)
    table = summary_table(summary)
    note = coverage_note(table)
    emit({"round": summary.round_no, "form": summary.form_name, "calibration": summary.calibration_after,
          "linked_to": summary.calibration_before, "leaderboard": table, "note": note} if as_json else table, as_json)
    if note and not as_json:
        click.echo(f"note: {note}")
