"""``adt audit ...``: trace items and forms, export the bank with a manifest, verify an export offline."""

from __future__ import annotations

from pathlib import Path

import click

from adt import audit as trails
from adt.cli import Context, cli, emit, pass_ctx
from adt.workflow.forms import prepare_rederivation, rederivation_line


@cli.group()
def audit() -> None:
    """Audit trails: where an item or a form came from; exports checked with no bank."""


@audit.command("item")
@click.argument("item")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_item(ctx: Context, item: str, as_json: bool) -> None:
    """Content, tags, provenance, aliases, lineage, forms, publications, runs, calibrations, history."""
    with ctx.bank("adt audit item") as b:
        trail = trails.item_trail(b, item)
    emit(trail, as_json, None if as_json else trails.format_item_trail(trail))


@audit.command("form")
@click.argument("form")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_form(ctx: Context, form: str, as_json: bool) -> None:
    """Spec, strategy, seed, bank snapshot and calibration a form was built from, and its runs."""
    with ctx.bank("adt audit form") as b:
        trail = trails.form_trail(b, form)
        rederivation = prepare_rederivation(b, form)  # the recorded spec, seed, head, calibration and pool
    trail["rederivation"] = rederivation.run()  # rebuilt and compared without holding the bank
    if as_json:
        emit(trail, True)
        return
    lines = [f"form {trail['name']}: {trail['n_items']} items ({trail['n_uncalibrated']} uncalibrated), "
             f"strategy {trail['strategy']}, seed {trail['seed']}",
             f"  bank snapshot: {trail['snapshot_id']}", f"  calibration: {trail['calibration_id'] or '(none)'}",
             f"  content hash: {trail['content_hash']}", f"  created: {trail['created_at']}",
             f"  spec: {trail['spec']}",
             f"  published in rounds: {', '.join(map(str, trail['publications'])) or '(never)'}",
             f"  runs ({len(trail['runs'])}): " + ", ".join(f"{r['run_id']} ({r['model']})" for r in trail["runs"]),
             f"  {rederivation_line(trail['rederivation'])}"]
    click.echo("\n".join(lines))


@audit.command("export")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="A new (empty) folder.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def audit_export(ctx: Context, out_dir: Path, as_json: bool) -> None:
    """Parquet of every table + manifest.json (sha256 of each file, history chain head, snapshot id)."""
    with ctx.bank("adt audit export") as b:
        manifest = trails.export_bank(b, out_dir)
    head = manifest["history_head"]
    emit(manifest if as_json else {}, as_json, None if as_json else (
        f"exported {len(manifest['tables'])} tables to {out_dir}; snapshot {manifest['snapshot_id']}; "
        f"history head {head['n_events']}:{head['hash']}"))


@audit.command("verify")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def audit_verify(folder: Path, as_json: bool) -> None:
    """Check an export offline (no bank): every sha256 and the history chain against the manifest's head."""
    check = trails.verify_export(folder)
    emit(check.as_dict(), as_json, None if as_json else (
        f"export verifies: {check.files_checked} files, {check.n_events} events, head {check.head}" if check.ok
        else "export does NOT verify: " + "; ".join(check.problems)
        + (f" (first bad file: {check.bad_file})" if check.bad_file else "")
        + (f" (first bad event: {check.first_bad_event})" if check.first_bad_event else "")))
    if not check.ok:
        raise SystemExit(1)
