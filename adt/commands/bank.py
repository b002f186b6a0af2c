"""``adt bank ...`` and ``adt responses ...``: the item bank's commands."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adtbase import review as review_states
from adtbase.errors import InputError
from itembank import (
    IMPORT_COLUMNS_HELP,
    Head,  # the importer, snapshot and spool load in their commands (they need pandas)
)


@cli.group()
def bank() -> None:
    """Import, inspect, curate, verify and export the item bank."""


def _pairs(values: tuple[str, ...], flag: str) -> tuple[tuple[str, str], ...]:
    out = []
    for text in values:
        if "=" not in text:
            raise InputError(f"{flag} {text!r}: expected KEY=VALUE")
        k, v = text.split("=", 1)
        out.append((k.strip(), v.strip()))
    return tuple(out)


def _tag_cols(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for text in values:
        col, _, key = text.partition("=")
        out.append((col.strip(), (key or col).strip()))
    return tuple(out)


@bank.command("import", epilog=IMPORT_COLUMNS_HELP)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--source", required=True, help="Name of the source dataset (aliases are kept per source).")
@click.option("--source-version", default=None)
@click.option("--license", "license_", default=None)
@click.option("--language", default=None, help="Language of every item (default: a language column, else guessed).")
@click.option("--id-col", "id_cols", multiple=True, help="Id column; repeat for a composite id (default: row number).")
@click.option("--question-col", default=None)
@click.option("--choices-col", default=None, help="A column holding the list of choices.")
@click.option("--choice-cols", default=None, help="Comma-separated columns, one per choice (A,B,C,D).")
@click.option("--answer-col", default=None)
@click.option("--answer-format", type=click.Choice(["auto", "letter", "index", "text", "gsm8k"]), default="auto",
              show_default=True)
@click.option("--tolerance-col", default=None,
              help="Numeric items: a column of tolerances, absolute (0.05, 1e-3) or relative (1%) "
                   "(default: the 'tolerance' column, where there is one).")
@click.option("--no-key", is_flag=True, help="Items without an answer key (scores arrive from outside).")
@click.option("--tag-col", "tag_cols", multiple=True, help="COL[=KEY]: tag each item with this column's value.")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE: tag every item.")
@click.option("--type", "item_type", type=click.Choice(["mc", "open", "numeric", "multi"]), default=None,
              help="Item type of every row (default: a type column, else mc with choices, else open).")
@click.option("--extend-taxonomy", is_flag=True, help="Add unknown tag keys and values to the taxonomy.")
@click.option("--review-state", type=click.Choice(list(review_states.IMPORT_STATES)),
              default=review_states.DEFAULT_IMPORT_STATE, show_default=True,
              help="State of the imported items (a review_state column overrides it per row): approved for a "
                   "curated benchmark you vouch for, draft to review item by item first. Forms draw approved "
                   "items only unless their spec asks for drafts.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def import_(ctx: Context, files: tuple[Path, ...], source: str, source_version: str | None, license_: str | None,
            language: str | None, id_cols: tuple[str, ...], question_col: str | None, choices_col: str | None,
            choice_cols: str | None, answer_col: str | None, answer_format: str, tolerance_col: str | None,
            no_key: bool,
            tag_cols: tuple[str, ...], tags: tuple[str, ...], item_type: str | None, extend_taxonomy: bool,
            review_state: str, as_json: bool) -> None:
    """Import items from JSONL, CSV or Parquet files, as one transaction (columns and answer keys below)."""
    from itembank import ImportOptions

    if choices_col and choice_cols:
        raise click.UsageError("give --choices-col or --choice-cols, not both")
    opts = ImportOptions(
        source=source, source_version=source_version, license=license_, language=language, id_cols=id_cols,
        question_col=question_col, choices_col=choices_col,
        choice_cols=tuple(c.strip() for c in choice_cols.split(",")) if choice_cols else (),
        answer_col=answer_col, answer_format=answer_format, tolerance_col=tolerance_col, no_key=no_key,
        tag_cols=_tag_cols(tag_cols),
        tags=_pairs(tags, "--tag"), item_type=item_type, extend_taxonomy=extend_taxonomy, review_state=review_state)
    start = time.perf_counter()
    try:
        with ctx.bank(f"adt bank import {source}") as b:
            report = b.import_items(files, opts)
    except InputError as exc:
        # Every problem of the files, grouped by kind (itembank's ImportProblems); --json gives them as data.
        if not as_json or not hasattr(exc, "as_dict"):
            raise
        emit(exc.as_dict(), True)
        raise SystemExit(1) from None
    data = report.as_dict() | {"seconds": round(time.perf_counter() - start, 2)}
    emit(data, as_json, None if as_json else (
        f"{report.rows} rows -> {report.items_in_files} items ({report.new_items} new, {report.existing_items} "
        f"already in the bank, {report.merged_across_sources} of them from other sources); "
        f"{report.merged_within_files} duplicate row{'' if report.merged_within_files == 1 else 's'} merged into an "
        f"earlier row of the same item{_merged_rows(report.merged_rows)}; "
        f"{report.new_aliases} new aliases, {report.new_tags} new tags" + ("" if report.batch_id else "; nothing changed")))


def _merged_rows(rows: Sequence[Mapping[str, Any]], show: int = 5) -> str:
    """Which rows were merged (the first few; --json lists them all)."""
    if not rows:
        return ""
    shown = ", ".join(f"{r['row']} (id {r['external_id']})" for r in rows[:show])
    return f" ({shown}{f', ... {len(rows) - show} more: --json lists them' if len(rows) > show else ''})"


@bank.command()
@click.option("--by", "by", multiple=True, help="Group by a built-in key or tag key (repeatable).")
@click.option("--filter", "filters", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def stats(ctx: Context, by: tuple[str, ...], filters: tuple[str, ...], as_json: bool) -> None:
    """Item counts and frequency tiers, grouped by keys."""
    with ctx.bank("adt bank stats") as b:
        table = b.stats_table(by, parse_filters(filters))  # no pandas: the frame's text, without its start-up
    emit(table, as_json)


@bank.command()
@click.argument("item")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show(ctx: Context, item: str, as_json: bool) -> None:
    """Everything about one item (id, or SOURCE:EXTERNAL_ID)."""
    with ctx.bank("adt bank show") as b:
        rec = b.item(item)
    emit(rec, as_json)


@bank.command("history")
@click.argument("item")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def history_(ctx: Context, item: str, as_json: bool) -> None:
    """The item's events, oldest first."""
    with ctx.bank("adt bank history") as b:
        table = b.item_history_table(item)  # no pandas, as bank stats
    emit(table, as_json)


@bank.command()
@click.option("--head", "head", default=None, help="A head recorded elsewhere: N:HASH (or HASH).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def verify(ctx: Context, head: str | None, as_json: bool) -> None:
    """Check the history chain (against a recorded head, if given); exit 1 if it does not verify."""
    with ctx.bank("adt bank verify") as b:
        report = b.verify(Head.parse(head) if head else None)
    data = {"ok": report.ok, "n_events": report.n_events, "head": str(report.head),
            "first_bad_event": report.first_bad_seq, "problem": report.problem}
    emit(data, as_json, None if as_json else (
        f"history verifies: {report.n_events} events, head {report.head}" if report.ok
        else f"history does NOT verify: {report.problem}"
        + (f" (first bad event: {report.first_bad_seq})" if report.first_bad_seq is not None else "")))
    if not report.ok:
        raise SystemExit(1)


@bank.command()
@click.argument("items", nargs=-1, required=True)
@click.option("--reason", required=True)
@pass_ctx
def retire(ctx: Context, items: tuple[str, ...], reason: str) -> None:
    """Retire items: they stay in the bank and its history but are never sampled again."""
    with ctx.bank("adt bank retire") as b:
        n = b.retire(items, reason)
    click.echo(f"retired {n} items")


@bank.command()
@click.argument("items", nargs=-1, required=True)
@click.option("--state", type=click.Choice(list(review_states.DECISIONS)), default=review_states.APPROVED,
              show_default=True, help="draft -> approved | rejected; back to draft to re-review.")
@click.option("--reason", default=None, help="Why (required to reject); kept in the item's history.")
@click.option("--reviewer", default=None, help="Who decided (default: this machine's user name).")
@pass_ctx
def review(ctx: Context, items: tuple[str, ...], state: str, reason: str | None, reviewer: str | None) -> None:
    """Set the review state of items: approved items enter forms, drafts wait, rejected ones never do."""
    from adt.commands.review import decide  # the one decision (adt review approve|reject|reopen use it too)

    decide(ctx, items, state, reason, reviewer, purpose="adt bank review")


@bank.command()
@click.argument("args", nargs=-1, required=True)
@click.option("--extend-taxonomy", is_flag=True)
@pass_ctx
def tag(ctx: Context, args: tuple[str, ...], extend_taxonomy: bool) -> None:
    """Tag items: adt bank tag ITEM... KEY=VALUE."""
    if len(args) < 2 or "=" not in args[-1]:
        raise click.UsageError("usage: adt bank tag ITEM... KEY=VALUE")
    key, value = args[-1].split("=", 1)
    with ctx.bank("adt bank tag") as b:
        n = b.tag(args[:-1], key.strip(), value.strip(), extend_taxonomy)
    click.echo(f"tagged {n} items with {key}={value}")


@bank.command()
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def export(ctx: Context, out_dir: Path, as_json: bool) -> None:
    """Export every table to Parquet with a sha256 manifest."""
    from itembank import snapshot

    with ctx.bank("adt bank export") as b:
        manifest = snapshot.export(b, out_dir)
    emit(manifest if as_json else {"exported_to": str(out_dir), "snapshot_id": manifest["snapshot_id"],
                                   "history_head": f"{manifest['history_head']['n_events']}:{manifest['history_head']['hash']}",
                                   "tables": len(manifest["tables"])}, as_json)


@bank.command("import-snapshot")
@click.argument("folder", type=click.Path(path_type=Path))
@pass_ctx
def import_snapshot(ctx: Context, folder: Path) -> None:
    """Rebuild a bank (at --bank, which must not exist) from an export folder."""
    from itembank import snapshot

    manifest = snapshot.import_snapshot(folder, ctx.bank_path)
    click.echo(f"rebuilt {ctx.bank_path} from {folder}: snapshot {manifest['snapshot_id']} verified")


@bank.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def snapshot_id(ctx: Context, as_json: bool) -> None:
    """The bank's current snapshot id and history head."""
    with ctx.bank("adt bank snapshot-id") as b:
        data = {"snapshot_id": b.snapshot_id(), "history_head": str(b.head())}
    emit(data, as_json)


@bank.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@pass_ctx
def settings(ctx: Context, key: str | None, value: str | None) -> None:
    """Show settings, or set one: tier_low_runs, tier_high_runs, tier_high_publications, band_cuts, and the
    lifecycle rules (promote_min_responses, promote_max_se_b, rest_after_runs, rest_rounds, retire_after_runs,
    retire_after_publications, retire_contaminated: `adt bank lifecycle`), judge_exclude_self (`adt judge run`)."""
    from itembank import LIFECYCLE_SETTINGS

    with ctx.bank("adt bank settings") as b:
        if key is not None:
            if value is None:
                raise click.UsageError("give a value to set")
            if key in LIFECYCLE_SETTINGS:  # a bad value is refused before anything is written
                from adt.workflow.lifecycle import rules_from_settings

                rules_from_settings({key: value})
            b.set_setting(key, value)
        emit(b.settings(), False)


@cli.group()
def responses() -> None:
    """Past results and spooled run results."""


@responses.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--source", required=True, help="Source whose external ids the item column holds.")
@click.option("--model-col", required=True)
@click.option("--item-col", required=True)
@click.option("--score-col", required=True)
@click.option("--round", "round_no", type=int, default=None)
@click.option("--strict", is_flag=True, help="Rows naming unknown items are an error, not a report.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def responses_import(ctx: Context, file: Path, source: str, model_col: str, item_col: str, score_col: str,
                     round_no: int | None, strict: bool, as_json: bool) -> None:
    """Import past results (one run per model); they count as exposure."""
    with ctx.bank("adt responses import") as b:
        report = b.import_responses(file, source=source, model_col=model_col, item_col=item_col,
                                    score_col=score_col, round_no=round_no, strict=strict)
    emit(report.as_dict(), as_json, None if as_json else (
        f"{report.rows} rows: {report.matched} matched, {report.unknown_rows} unknown"
        + (f" (e.g. {', '.join(report.unknown_examples)})" if report.unknown_rows else "")
        + f"; {report.runs} runs, {report.new_responses} new responses"
        + (f"; {report.merged_duplicate_items} answers to duplicate items averaged" if report.merged_duplicate_items else "")))


@responses.command("ingest")
@pass_ctx
def responses_ingest(ctx: Context) -> None:
    """Move spooled run results into the bank."""
    from itembank import spool

    with ctx.bank("adt responses ingest") as b:
        counts = spool.ingest(b)
    click.echo(json.dumps(counts))


# -- the item lifecycle by rule (issue 14; adt.workflow.lifecycle and adt.workflow.health) --------------------
@bank.command("lifecycle")
@click.option("--dry-run", is_flag=True, help="Print what would move and why; write nothing.")
@click.option("--round", "round_no", type=int, default=None,
              help="The current round (default: the bank's latest published round).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def lifecycle_(ctx: Context, dry_run: bool, round_no: int | None, as_json: bool) -> None:
    """Promote, rest, return and retire items by the bank's lifecycle rules (`adt bank settings`); each move
    is an event naming its rule and reason."""
    from adt.workflow.lifecycle import apply_moves, lifecycle_plan

    with ctx.bank("adt bank lifecycle") as b:
        plan = lifecycle_plan(b, round_no=round_no)
        moved = 0 if dry_run else apply_moves(b, plan.moves)
    table = plan.table()
    held_counts = plan.held_counts()
    if as_json:
        emit({"round": plan.round_no, "dry_run": dry_run, "moved": moved, "counts": plan.counts(),
              "rules": plan.rules.as_dict(), "moves": table.to_dict("records"),
              "pretest_held": held_counts, "notes": list(plan.notes)}, True)
        return
    head = (f"round {plan.round_no}: {len(plan.moves)} move(s)" + (" (dry run: nothing written)" if dry_run else
                                                                   f", {moved} written"))
    lines = [head] + [f"  {k}: {n}" for k, n in plan.counts().items()]
    if held_counts:
        from adt.workflow.lifecycle import BLOCKERS

        lines.append(f"pretest items held back: {len(plan.held)}; by reason (an item may have several):")
        lines += [f"  {k} ({BLOCKERS.get(k, k)}): {n}" for k, n in held_counts.items()]
    lines += [f"note: {n}" for n in plan.notes]
    click.echo("\n".join(lines))
    if len(table):
        click.echo(table.drop(columns=["until_round"] if table["until_round"].isna().all() else [])
                   .to_string(index=False, max_rows=200))


@bank.command("health")
@click.option("--spec", "spec_file", type=click.Path(path_type=Path), default=None,
              help="The round's form spec (YAML/JSON; default: the last stored form's spec).")
@click.option("--by", "by", multiple=True, help="Also count fresh items per value of this tag key (repeat).")
@click.option("--round", "round_no", type=int, default=None, help="The current round (default: the latest).")
@click.option("--horizon", type=click.IntRange(1, 500), default=50, show_default=True, help="Rounds to project.")
@click.option("--plot", "plot_file", type=click.Path(path_type=Path), default=None,
              help="Write the projection (supply per slice vs demand over rounds) as PNG or SVG.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def health(ctx: Context, spec_file: Path | None, by: tuple[str, ...], round_no: int | None, horizon: int,
           plot_file: Path | None, as_json: bool) -> None:
    """Items per stage and tier, fresh items per slice, and how many more rounds the round spec can be drawn
    before a slice runs out at today's growth, promotion and retirement rates (the projection's assumptions:
    adt/workflow/health.py)."""
    import yaml

    from adt import plots
    from adt.workflow.health import bank_health, short_slices

    spec = None
    if spec_file is not None:
        try:
            spec = yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise InputError(f"{spec_file}: cannot read form spec ({e.strerror})") from e
        except yaml.YAMLError as e:
            raise InputError(f"{spec_file}: not valid YAML/JSON: {e}") from e
        if not isinstance(spec, dict):
            raise InputError(f"{spec_file}: expected a mapping at the top level")
    if plot_file is not None and plot_file.suffix.lower() not in plots.FORMATS:
        raise InputError(f"--plot {plot_file}: use a .png or .svg file name")
    with ctx.bank("adt bank health") as b:
        h = bank_health(b, spec=spec, spec_source=str(spec_file) if spec_file else "form spec", by=by,
                        round_no=round_no, horizon=horizon)
    if plot_file is not None:
        if h.projection.empty:
            raise InputError("--plot: nothing to project (no spec given and no form stored)")
        plots.save(plots.health_figure(h.projection), plot_file)
    if as_json:
        emit(h.as_dict(), True)
        return
    click.echo(f"round {h.round_no}; items per stage x frequency tier:")
    click.echo(h.stages.to_string())
    if len(h.slices):
        click.echo("\noperational items per slice (fresh = low tier):")
        click.echo(h.slices.to_string(index=False))
    r = h.rates
    click.echo(f"\nrates per round over {r.n_rounds} round(s): {r.created:g} new, {r.promoted:g} promoted, "
               f"{r.retired:g} retired, {r.rested:g} rested; {r.runs_per_form:g} runs per form")
    if h.demand is not None:
        click.echo(f"demand ({h.demand.source}): {h.demand.operational} operational + {h.demand.pretest} pretest "
                   "items a round")
        click.echo(h.rounds_left.to_string(index=False))
        short = short_slices(h)
        click.echo("runs out: " + "; ".join(short) if short else f"no slice runs out within {horizon} rounds")
    for n in h.notes:
        click.echo(f"note: {n}")
    if plot_file is not None:
        click.echo(f"wrote {plot_file}")
