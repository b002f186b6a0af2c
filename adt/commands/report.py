"""``adt report``: one self-contained HTML report of a round, a form or the whole bank (see adt/report.py)."""

from __future__ import annotations

from pathlib import Path

import click

from adt.cli import Context, cli, emit, pass_ctx


@cli.command("report")
@click.option("--round", "round_no", type=int, default=None, help="Report this round (its forms and responses).")
@click.option("--calibration", "calibration_id", default=None, help="Calibration id (default: the latest stored).")
@click.option("--form", default=None,
              help="Report this form (default: the round's forms; without --round, the forms models took: a run "
                   "on the form or answers to half its items; never a form no model answered).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the rank and coverage simulations.")
@click.option("--worlds", "n_worlds", type=int, default=200, show_default=True,
              help="Parameter draws in the coverage simulation (25 simulated respondents each).")
@click.option("--loo/--no-loo", default=False, show_default=True,
              help="Also replay each model against a refit without it (one refit per model; slow). The honesty "
                   "block shows the latest stored `adt validate` study either way.")
@click.option("--loo-models", type=int, default=None, help="Replay at most this many models (spread over the ranks).")
@click.option("--by", "by", multiple=True, metavar="KEY",
              help="Per-slice scores by this tag key, any the bank's items carry, as adt estimate --by (repeatable; "
                   "default: scenario, domain, language where tagged). Values with fewer than 10 items get no "
                   "sub-score; at most 20 values (those with the most items) are shown, a note says how many not.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The HTML file to write.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def report(ctx: Context, round_no: int | None, calibration_id: str | None, form: str | None, seed: int,
           n_worlds: int, loo: bool, loo_models: int | None, by: tuple[str, ...], out: Path, as_json: bool) -> None:
    """Leaderboard with intervals and rank uncertainty, forms, diagnostics, honesty block, provenance."""
    from adt.report import build_report, check_out, replay_models, save_report

    check_out(out)
    say = (lambda m: click.echo(m, err=True)) if not as_json else (lambda _m: None)
    with ctx.bank("adt report") as bank:
        rep = build_report(bank, round_no=round_no, calibration_id=calibration_id, form=form, seed=seed,
                           n_worlds=n_worlds, loo=loo, loo_models=loo_models, by=by or None, defer_loo=True,
                           say=say)
    # The replay refits a calibration per model: done after letting go of the bank.
    rep = replay_models(rep, say=say)
    say("writing the page ...")
    save_report(rep, out)
    cov = rep.honesty.get("coverage")
    loo_frame = rep.honesty.get("loo")
    data = {"out": str(out), "models": len(rep.leaderboard), "forms": [f["name"] for f in rep.forms],
            "calibration": rep.provenance["calibration"],
            "coverage": None if cov is None else cov.coverage,
            "coverage_point_params": None if cov is None else cov.coverage_point_params,
            "loo_coverage": None if loo_frame is None or not len(loo_frame) else float(loo_frame["covered"].mean()),
            "loo_models": 0 if loo_frame is None else len(loo_frame), "scopes": rep.scopes,
            # The page shows the first names of 'not separable from'; the data keeps every name.
            "leaderboard": [{"rank": int(r.rank), "model": r.model, "theta": float(r.theta), "lo": float(r.lo),
                             "hi": float(r.hi), "pred_acc": float(r.pred_acc), "pred_lo": float(r.pred_lo),
                             "pred_hi": float(r.pred_hi), "rank_lo": int(r.rank_lo), "rank_hi": int(r.rank_hi),
                             "not_separable_from": list(r.not_separable_list)}
                            for r in rep.leaderboard.itertuples()]}
    text = (f"wrote {out}: {data['models']} models, forms {', '.join(data['forms']) or '-'}"
            + (f"; 95% intervals cover {cov.coverage:.1%} in simulation" if cov is not None else "")
            + (f"; leave-one-out {data['loo_coverage']:.0%} of {data['loo_models']}" if data["loo_coverage"] is not None
               else ""))
    emit(data, as_json, text)
