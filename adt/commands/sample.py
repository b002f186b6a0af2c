"""``adt sample`` (draw a form: full, module or sampled mode) and ``adt form list|show|publish|export``."""

from __future__ import annotations

from pathlib import Path

import click

from adt.cli import Context, cli, emit, pass_ctx
from adt.workflow import forms as wf
from sampler import REGISTRY


@cli.command("sample")
@click.option("--strategy", type=click.Choice(sorted(REGISTRY)), default=None,
              help="all (full mode; module mode with --filter), random, stratified, nsga2, milp "
                   "(default: the spec file's, else stratified).")
@click.option("--size", type=int, default=None, help="Items on the form (sampled mode).")
@click.option("--quota", "quotas", multiple=True, metavar="KEY=VAL:AMOUNT,...",
              help="Marginal quota on a tag key (repeatable, several keys at once); amounts are fractions "
                   "(0.3, 30%) or counts (60).")
@click.option("--stratify-by", "stratify_by", default=None, metavar="KEY",
              help="Quotas proportional to the slice's shares of this tag key's values (content balance; "
                   "recommended for milp and nsga2, whose information targeting otherwise skews content).")
@click.option("--spec", "spec_file", type=click.Path(path_type=Path), default=None,
              help="A YAML/JSON form spec; flags override it key by key.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Eligible slice (repeatable).")
@click.option("--max-overlap", "max_overlap", multiple=True, metavar="FORM:FRAC",
              help="At most this share of the form from an earlier form (repeatable).")
@click.option("--review-state", "review_states", multiple=True, metavar="STATE",
              help="Review states the form may draw (repeatable; default: the spec file's, else approved only). "
                   "--review-state approved --review-state draft lets drafts in; rejected and retired never are.")
@click.option("--pretest", default=None, metavar="N|SHARE",
              help="Unscored pretest items on the form: a count (50) or a share of --size (10%, 0.1), drawn at "
                   "random from approved items still in the pretest stage and placed among the scored ones.")
@click.option("--pretest-filter", "pretest_filters", multiple=True, metavar="KEY=VALUE",
              help="Narrow the pretest items' slice (the --filter grammar; repeatable).")
@click.option("--seed", type=int, default=None, help="Seed (drawn and recorded when not given).")
@click.option("--calibration", "calibration_id", default=None,
              help="Calibration whose item parameters inform the draw (default: the latest, if any).")
@click.option("--name", required=True, help="Name of the new form.")
@click.option("--dry-run", is_flag=True, help="Draw and print, store nothing.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def sample(ctx: Context, strategy: str | None, size: int | None, quotas: tuple[str, ...], stratify_by: str | None,
           spec_file: Path | None,
           filters: tuple[str, ...], max_overlap: tuple[str, ...], review_states: tuple[str, ...],
           pretest: str | None, pretest_filters: tuple[str, ...], seed: int | None,
           calibration_id: str | None, name: str, dry_run: bool, as_json: bool) -> None:
    """Draw form NAME from the bank and store it with its spec, seed, snapshot, calibration and hash."""
    form = wf.draw_form(ctx.bank_path, {"strategy": strategy, "size": size, "quotas": quotas, "spec_file": spec_file,
                                        "filters": filters, "max_overlap": max_overlap, "seed": seed,
                                        "stratify_by": stratify_by, "review_states": review_states,
                                        "pretest": pretest, "pretest_filters": pretest_filters},
                        name, calibration_id=calibration_id, dry_run=dry_run, wait_s=ctx.wait_s,
                        on_wait=lambda msg: click.echo(msg, err=True))
    data = form.as_dict()
    if not as_json:
        data.pop("spec")
    obj = form.objectives
    emit(data, as_json, None if as_json else "\n".join([
        f"form {form.name} ({form.mode}, {form.strategy}, seed {form.seed}): {form.n_items} items, "
        f"{form.n_uncalibrated} uncalibrated" + (f", {form.n_pretest} pretest (unscored)" if form.n_pretest else "")
        + ("" if form.stored else " [dry run: not stored]"),
        *([f"  {form.stand_in_line()}"] if form.n_stand_in else []),
        f"  snapshot {form.snapshot_id}, calibration {form.calibration_id or '(none: priors)'}",
        f"  content hash {form.content_hash}",
        "  objectives: " + ", ".join(f"{k}={v:.4g}" for k, v in obj.items() if isinstance(v, float)),
        *(f"  note: {n}" for n in form.notes)]))


@cli.group()
def form() -> None:
    """Forms: list, show, publish, export for the model side."""


@form.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def form_list(ctx: Context, as_json: bool) -> None:
    """Every form with strategy, size, seed, hash and the rounds it was published in."""
    with ctx.bank("adt form list") as bank:
        table = wf.forms_table(bank)
    emit(table, as_json)


@form.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def form_show(ctx: Context, name: str, as_json: bool) -> None:
    """The form's record and its items in order, with aliases and tags."""
    with ctx.bank("adt form show") as bank:
        rec, items = wf.form_items(bank, name)
    cols = ["position", "item_id", "language", "item_type", "frequency_tier", "difficulty_band", "aliases", "tags"]
    items = items.assign(pretest=items["item_id"].isin(set(rec["pretest_ids"])))
    items = items[[c for c in [*cols, "pretest"] if c in items.columns]]
    if as_json:
        emit({**{k: v for k, v in rec.items() if k != "item_ids"}, "n_pretest": len(rec["pretest_ids"]),
              "items": items}, True)
        return
    n_pretest = len(rec["pretest_ids"])
    head = (f"form {name}: {rec['n_items']} items ({rec['n_uncalibrated']} uncalibrated, {n_pretest} pretest "
            f"(unscored), {rec['n_stand_in']} stand-ins), strategy "
            f"{rec['strategy']}, seed {rec['seed']}, snapshot {rec['snapshot_id']}, calibration "
            f"{rec['calibration_id'] or '(none)'}, hash {rec['content_hash']}, published in "
            f"{', '.join(map(str, rec['publications'])) or '(never)'}")
    lines = [head]
    for r in items.to_dict("records"):
        tags = "; ".join(f"{k}={'|'.join(v)}" for k, v in sorted(r["tags"].items()))
        lines.append(f"  {r['position']:>4} {r['item_id']}{' (pretest)' if r['pretest'] else ''} {r['language']} "
                     f"{r['item_type']} "
                     f"[{', '.join(r['aliases'])}] {tags}")
    click.echo("\n".join(lines))


@form.command("publish")
@click.argument("name")
@click.option("--round", "round_no", type=int, required=True, help="The round the form is published in.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def form_publish(ctx: Context, name: str, round_no: int, as_json: bool) -> None:
    """Publish the form in a round: its items count as exposed from now on."""
    with ctx.bank("adt form publish") as bank:
        bank.publish(name, round_no)
        rounds = bank.form(name)["publications"]
    emit({"form": name, "round": round_no, "published_in": rounds}, as_json,
         None if as_json else f"published form {name} in round {round_no} (rounds: {', '.join(map(str, rounds))})")


@form.command("export")
@click.argument("name")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default=None,
              help="Default: from the file's suffix (.parquet), else jsonl.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def form_export(ctx: Context, name: str, out: Path, fmt: str | None, as_json: bool) -> None:
    """The form's items for the model side: questions and choices, never the answer keys."""
    with ctx.bank("adt form export") as bank:
        report = wf.export_form(bank, name, out, fmt)
    emit(report, as_json, None if as_json else
         f"exported form {name}: {report['n_items']} items to {out} ({report['format']}, no answer keys)")
