"""``adt plot ...``: ability forest, form information, item characteristic curves, bank exposure.

Item parameters come from a CSV/Parquet file (item_id, a, b, optional c, d), e.g. a calibration's
parameter table; abilities from a file (model, theta, lo/hi or se) or estimated from the bank's
responses with those parameters.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import pandas as pd

from adt import plots
from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adt.paramfile import read_params, read_table
from adtbase.errors import InputError
from itembank import Bank


@cli.group()
def plot() -> None:
    """Write a plot (PNG or SVG, by the --out suffix)."""


def _done(out: Path, what: str, n: int, as_json: bool) -> None:
    emit({"out": str(out), "plot": what, "elements": n}, as_json, None if as_json else f"wrote {out} ({what}, {n})")


def _abilities(bank: Bank, params_file: Path, filters: dict[str, list[str]], method: str) -> pd.DataFrame:
    from calibration import ResponseSet, abilities_for

    params = read_params(params_file)
    responses = bank.responses(filters or None, scored=True)  # an ability is a score: pretest answers left out
    responses = responses[responses["item_id"].isin(set(params.item_ids))]
    if responses.empty:
        raise InputError(f"no responses in the bank to items of {params_file}")
    rs = ResponseSet.from_frame(responses, "model", "item_id", "score")
    est = abilities_for(rs, params, method=method)
    return est.to_frame(rs.model_ids).reset_index()


@plot.command("ability")
@click.option("--from", "from_file", type=click.Path(path_type=Path), default=None,
              help="CSV/Parquet with model, theta and lo, hi (or se).")
@click.option("--params", "params_file", type=click.Path(path_type=Path), default=None,
              help="Item parameters (item_id, a, b[, c, d]): abilities are estimated from the bank's responses.")
@click.option("--calibration", "calibration_id", default=None,
              help="A stored calibration (default: the latest): abilities as adt estimate gives them.")
@click.option("--method", type=click.Choice(["eap", "map", "mle"]), default="eap", show_default=True)
@click.option("--filter", "filters", multiple=True, help="KEY=VALUE: items whose responses count (with --params).")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def ability(ctx: Context, from_file: Path | None, params_file: Path | None, calibration_id: str | None, method: str,
            filters: tuple[str, ...], out: Path, as_json: bool) -> None:
    """Forest plot of abilities with 95% intervals, one row per model.

    Without --from or --params: the bank's stored calibration, with adt estimate's intervals (item-parameter
    error, extrapolation named). A --params file carries no standard errors: its intervals take the
    parameters as exact, and the output says so."""
    if from_file is not None and params_file is not None:
        raise click.UsageError("give --from FILE or --params FILE, not both")
    if calibration_id is not None and (from_file is not None or params_file is not None):
        raise click.UsageError("--calibration reads the bank's calibration: leave out --from and --params")
    if from_file is None and params_file is None:
        if filters:
            raise click.UsageError("--filter selects the responses that count with --params; with a calibration "
                                   "an ability uses every answer (adt estimate)")
        from adt.workflow.calibrate import estimate_all

        with ctx.bank("adt plot ability") as b:
            frame = estimate_all(b, calibration_id, method=method)
        names = [m + (" *" if x else "") for m, x in zip(frame["model"].astype(str), frame["extrapolated"],
                                                         strict=True)]
        fig = plots.ability_figure(names, frame["theta"], frame["lo"].to_numpy(float), frame["hi"].to_numpy(float),
                                   title=f"Ability with 95% intervals (calibration {frame['calibration_id'].iloc[0]}"
                                         f"; * extrapolated)")
        saved = plots.save(fig, out)
        emit({"out": str(saved), "plot": "ability", "elements": len(frame),
              "calibration_id": str(frame["calibration_id"].iloc[0]), "sources": list(frame["sources"].iloc[0])},
             as_json, None if as_json else f"wrote {saved} (ability, {len(frame)})")
        return
    if from_file is not None:
        frame = read_table(from_file, "--from")
        for col in ("model", "theta"):
            if col not in frame.columns:
                raise InputError(f"{from_file}: no column {col!r} (columns: {', '.join(map(str, frame.columns))})")
        if {"lo", "hi"} <= set(frame.columns):
            lo, hi = frame["lo"].to_numpy(float), frame["hi"].to_numpy(float)
        elif "se" in frame.columns:
            lo, hi = plots.intervals_from_se(frame["theta"], frame["se"])
        else:
            raise InputError(f"{from_file}: needs columns lo and hi, or se")
    else:
        assert params_file is not None
        with ctx.bank("adt plot ability") as b:
            frame = _abilities(b, params_file, parse_filters(filters), method)
        lo, hi = frame["lo"].to_numpy(float), frame["hi"].to_numpy(float)
        fig = plots.ability_figure(frame["model"].astype(str).tolist(), frame["theta"], lo, hi,
                                   title="Ability with 95% intervals (parameters taken as exact)")
        saved = plots.save(fig, out)
        emit({"out": str(saved), "plot": "ability", "elements": len(frame), "sources": ["ability (posterior)"],
              "note": f"{params_file} carries no standard errors: the intervals leave out item-parameter error"},
             as_json, None if as_json else f"wrote {saved} (ability, {len(frame)}); NOTE: the intervals take the "
                                           f"parameters of {params_file} as exact")
        return
    fig = plots.ability_figure(frame["model"].astype(str).tolist(), frame["theta"], lo, hi)
    _done(plots.save(fig, out), "ability", len(frame), as_json)


@plot.command("information")
@click.argument("forms", nargs=-1, required=True)
@click.option("--params", "params_file", required=True, type=click.Path(path_type=Path),
              help="Item parameters (item_id, a, b[, c, d]).")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def information(ctx: Context, forms: tuple[str, ...], params_file: Path, out: Path, as_json: bool) -> None:
    """Test information and expected-score curves of forms (items without parameters are left out)."""
    params = read_params(params_file)
    chosen = {}
    with ctx.bank("adt plot information") as b:
        for name in forms:
            sub, missing = plots.subset_params(params, b.form(name)["item_ids"])
            if len(sub) == 0:
                raise InputError(f"form {name}: none of its items has parameters in {params_file}")
            label = name if not missing else f"{name}, {len(missing)} uncalibrated left out"
            chosen[label] = sub
    _done(plots.save(plots.information_figure(chosen), out), "information", len(chosen), as_json)


@plot.command("icc")
@click.argument("items", nargs=-1)
@click.option("--params", "params_file", required=True, type=click.Path(path_type=Path),
              help="Item parameters (item_id, a, b[, c, d]).")
@click.option("--flags", "flags_file", type=click.Path(path_type=Path), default=None,
              help="CSV/Parquet with an item_id column (e.g. calibration flags): plot those items.")
@click.option("--observed/--no-observed", default=True, show_default=True,
              help="Overlay observed proportions by ability bin from the bank's responses.")
@click.option("--bins", type=int, default=6, show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def icc(ctx: Context, items: tuple[str, ...], params_file: Path, flags_file: Path | None, observed: bool, bins: int,
        out: Path, as_json: bool) -> None:
    """Item characteristic curves of ITEMs (ids or SOURCE:ID) or of the items in --flags."""
    params = read_params(params_file)
    refs = list(items)
    reasons: dict[str, str] = {}
    if flags_file is not None:
        flags = read_table(flags_file, "--flags")
        if "item_id" not in flags.columns:
            raise InputError(f"{flags_file}: no column 'item_id'")
        refs += [str(i) for i in flags["item_id"].drop_duplicates()]
        if "reason" in flags.columns:
            reasons = flags.groupby("item_id")["reason"].apply(lambda r: "; ".join(map(str, r))).to_dict()
    if not refs:
        raise click.UsageError("give ITEMs or --flags FILE")
    with ctx.bank("adt plot icc") as b:
        ids = list(dict.fromkeys(b.resolve(r) for r in refs))
        sub, missing = plots.subset_params(params, ids)
        if missing:
            raise InputError(f"{params_file}: no parameters for {len(missing)} items (e.g. {', '.join(missing[:3])})")
        obs = None
        if observed:
            est = _abilities(b, params_file, {}, "eap")
            theta_of = dict(zip(est["model"], est["theta"], strict=True))
            resp = b.responses()
            resp = resp[resp["item_id"].isin(set(ids))]
            obs = plots.observed_proportions(resp["model"].map(theta_of).to_numpy(float), resp["item_id"].tolist(),
                                             resp["score"].to_numpy(float), bins=bins)
    fig = plots.icc_figure(sub, observed=obs, labels={k: str(v)[:40] for k, v in reasons.items()})
    _done(plots.save(fig, out), "icc", len(sub), as_json)


@plot.command("exposure")
@click.option("--filter", "filters", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def exposure(ctx: Context, filters: tuple[str, ...], out: Path, as_json: bool) -> None:
    """Histogram of the bank's items by exposure (runs and publications)."""
    with ctx.bank("adt plot exposure") as b:
        items = b.items(parse_filters(filters), with_tags=False)
        high = int(b.settings()["tier_high_runs"])
    if items.empty:
        raise InputError("no items match the filters")
    fig = plots.exposure_figure(items["exposure_runs"].to_numpy(np.int64),
                                items["exposure_publications"].to_numpy(np.int64), high_runs=high)
    _done(plots.save(fig, out), "exposure", len(items), as_json)
