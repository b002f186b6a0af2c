"""``adt validate``: the held-out validation study on the bank's own responses."""

from __future__ import annotations

from pathlib import Path

import click

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adt.workflow.validate import IRT_CHOICES, SPLITS, ValidateOptions, summary_table, validate, write_outputs
from adtbase.errors import InputError


@cli.command("validate")
@click.option("--form-size", "sizes", type=int, multiple=True,
              help="Items per form (repeatable; default 50, 100 and 200).")
@click.option("--strategy", "strategies", multiple=True,
              help="Sampling strategy of `adt sample` (repeatable; default random).")
@click.option("--split", "splits", type=click.Choice(SPLITS), multiple=True,
              help="loo: each model held out in turn; kfold: --folds groups; frontier: the --frontier strongest "
                   "held out; shift: calibrate on --calibrate-on models or the largest --group-by group; time: "
                   "release dates before --cut calibrate (repeatable; default loo).")
@click.option("--forms", "n_forms", type=int, default=10, show_default=True,
              help="Disjoint forms per held-out model, strategy and size.")
@click.option("--folds", type=int, default=5, show_default=True, help="--split kfold: number of folds.")
@click.option("--frontier", type=int, default=None, help="--split frontier: models held out (default 30%).")
@click.option("--calibrate-on", "calibrate_on", multiple=True, help="--split shift: a calibration model (repeatable).")
@click.option("--group-by", "group_by", default=None,
              help="--split shift: model attribute (family, size, release_date); its largest group calibrates.")
@click.option("--cut", default=None, help="--split time: ISO date; models released before it calibrate "
                                          "(default: the median release date).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="The slice (repeatable).")
@click.option("--quota", "quotas", multiple=True, metavar="KEY=VAL:AMOUNT,...",
              help="Quota of the forms, as for `adt sample` (repeatable).")
@click.option("--stratify-by", "stratify_by", default=None, metavar="KEY",
              help="Quotas proportional to the slice's shares of this tag key.")
@click.option("--irt", type=click.Choice(IRT_CHOICES), default="2pl", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", type=int, default=None,
              help="Worker processes for the folds (default: the machine's cores, at most 4); results do not "
                   "depend on it.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Folder for validation.csv, summary.csv, summary.json and validation.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary rows and every per-form record.")
@pass_ctx
def validate_cmd(ctx: Context, sizes: tuple[int, ...], strategies: tuple[str, ...], splits: tuple[str, ...],
                 n_forms: int, folds: int, frontier: int | None, calibrate_on: tuple[str, ...], group_by: str | None,
                 cut: str | None, filters: tuple[str, ...], quotas: tuple[str, ...], stratify_by: str | None, irt: str,
                 seed: int, jobs: int | None, out: Path | None, as_json: bool) -> None:
    """Refit without held-out models, give them short forms (replayed answers), and compare the predicted
    slice accuracy with their actual accuracy; store the result in the bank."""
    opts = ValidateOptions(splits=splits or ("loo",), sizes=sizes or (50, 100, 200), strategies=strategies or ("random",),
                           forms=n_forms, folds=folds, frontier=frontier, calibrate_on=calibrate_on, group_by=group_by,
                           cut=cut, filters=parse_filters(filters), quotas=quotas, stratify_by=stratify_by, irt=irt,
                           seed=seed, jobs=jobs)
    if out is not None and out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: not a directory")

    def say(msg: str) -> None:
        click.echo(msg, err=True)

    result = validate(ctx.bank_path, opts, progress=say, wait_s=ctx.wait_s, on_wait=say)
    written = write_outputs(result, out) if out is not None else []
    if as_json:
        emit({**result.as_dict(), "files": [str(p) for p in written]}, True)
        return
    lines = [f"validation {result.validation_id}: {result.forms['model'].nunique() if len(result.forms) else 0} "
             f"held-out models, {len(result.forms)} forms, {result.seconds:.1f} s; snapshot {result.snapshot_id}",
             summary_table(result.summary)]
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"wrote {p}" for p in written]
    click.echo("\n".join(lines))
