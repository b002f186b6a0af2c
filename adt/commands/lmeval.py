"""``adt lmeval ...``: lm-evaluation-harness per-sample logs in, tasks and --samples lists out."""

from __future__ import annotations

import json
from pathlib import Path

import click

from adt import lmeval as interop
from adt.cli import Context, cli, emit, pass_ctx


@cli.group()
def lmeval() -> None:
    """Interop with lm-evaluation-harness (lm_eval 0.4.x)."""


@lmeval.command("import")
@click.argument("log", type=click.Path(path_type=Path))
@click.option("--task", required=True, help="The lm-eval task the log is from (aliases are lmeval/TASK:DOC_ID).")
@click.option("--model", required=True, help="Name of the model that produced the log.")
@click.option("--metric", default=None, help="Metric field that is the score (default: the first the log names).")
@click.option("--filter", "filter_", default=None, help="lm-eval filter to take (default: the first in the file).")
@click.option("--round", "round_no", type=int, default=None)
@click.option("--source-version", default=None)
@click.option("--license", "license_", default=None)
@click.option("--language", default=None, help="Language of every item (default: guessed from the text).")
@click.option("--question-field", default=None, help="Doc field holding the question (default: the usual names).")
@click.option("--choices-field", default=None, help="Doc field holding the option texts.")
@click.option("--extend-taxonomy", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def import_(ctx: Context, log: Path, task: str, model: str, metric: str | None, filter_: str | None,
            round_no: int | None, source_version: str | None, license_: str | None, language: str | None,
            question_field: str | None, choices_field: str | None, extend_taxonomy: bool, as_json: bool) -> None:
    """Import an lm-eval --log_samples JSONL as items and one run of responses."""
    opts = interop.LmevalImportOptions(task=task, model=model, metric=metric, filter=filter_, round_no=round_no,
                                       source_version=source_version, license=license_, language=language,
                                       question_field=question_field, choices_field=choices_field,
                                       extend_taxonomy=extend_taxonomy)
    with ctx.bank(f"adt lmeval import {task}") as b:
        rep = interop.import_log(b, log, opts)
    emit(rep.as_dict(), as_json, None if as_json else (
        f"{rep.docs} docs of {task} ({', '.join(f'{n} {k}' for k, n in rep.item_types.items())}; filter "
        f"{rep.filter}, metric {rep.metric}, mean {rep.mean_score:.4f}): {rep.new_items} new items, "
        f"{rep.existing_items} already in the bank, {rep.new_aliases} new aliases; run {rep.run_id}: "
        f"{rep.new_responses} new responses"))


@lmeval.command("export-task")
@click.argument("form")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for YAML + data.")
@click.option("--task", default=None, help="Task name (default: adt_FORM).")
@click.option("--mc-target", type=click.Choice(["label", "text"]), default="label", show_default=True,
              help="Score multiple choice over the letters or over the option texts.")
@click.option("--format", "data_format", type=click.Choice(["jsonl", "parquet"]), default="jsonl",
              show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def export_task(ctx: Context, form: str, out_dir: Path, task: str | None, mc_target: str, data_format: str,
                as_json: bool) -> None:
    """Write FORM as a local lm-eval task (answer keys included: lm-eval scores locally)."""
    with ctx.bank("adt lmeval export-task") as b:
        exp = interop.export_task(b, form, out_dir, task=task, mc_target=mc_target, data_format=data_format)
    emit(exp.as_dict(), as_json, None if as_json else (
        f"task {exp.task} ({', '.join(f'{k}: {n} items' for k, n in exp.subtasks.items())}) in {out_dir}; "
        f"run: lm_eval --include_path {out_dir} --tasks {exp.task} ..."))


@lmeval.command("export-samples")
@click.argument("form")
@click.option("--task", required=True, help="The lm-eval task whose documents the form's items are.")
@click.option("--source", default=None, help="Alias source of the task's doc indices (default: lmeval/TASK).")
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path))
@click.option("--allow-missing", is_flag=True, help="Leave out items that are not documents of the task.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def export_samples(ctx: Context, form: str, task: str, source: str | None, out_file: Path, allow_missing: bool,
                   as_json: bool) -> None:
    """Write the --samples JSON ({TASK: [doc indices]}) that runs FORM's items of TASK."""
    with ctx.bank("adt lmeval export-samples") as b:
        exp = interop.export_samples(b, form, task, source=source, allow_missing=allow_missing)
    out_file.write_text(json.dumps(exp.as_json()))
    data = {"out": str(out_file), "task": task, "n_samples": len(exp.indices), "missing": list(exp.missing)}
    emit(data, as_json, None if as_json else (
        f"{len(exp.indices)} doc indices of {task} -> {out_file}"
        + (f" ({len(exp.missing)} form items left out)" if exp.missing else "")
        + f"; run: lm_eval --tasks {task} --samples {out_file} ..."))
