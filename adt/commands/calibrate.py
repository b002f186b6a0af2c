"""``adt calibrate``, ``adt calibration list|show|diff|flags``, ``adt estimate`` and ``adt compare``."""

from __future__ import annotations

import math
from typing import Any

import click
import numpy as np
import pandas as pd
from click.core import ParameterSource

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adt.workflow.calibrate import (
    DEFAULT_BOOT,
    CalibrateOptions,
    OnlineOptions,
    calibrate,
    calibrate_online_bank,
    calibration_flags,
    compare_all,
    compare_models,
    diff_calibrations,
    estimate_model,
)
from adtbase.errors import InputError
from calibration import (
    DEFAULT_FITTER,
    DEFAULT_ONLINE_METHOD,
    ONLINE_METHODS,
    calibration_info,
    calibration_params_frame,
    get_fitter,
    irt_choices,
    list_calibrations,
    method_help,
)


def _f(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "nan" if math.isnan(v) else f"{v:.{digits}f}"


@cli.command("calibrate")
@click.option("--irt", type=click.Choice(irt_choices()), default="2pl", show_default=True,
              help="IRT model; auto picks it by held-out log-likelihood.")
@click.option("--method", default=DEFAULT_FITTER, show_default=True, metavar="METHOD",
              help=f"How to fit. {method_help()}.")
@click.option("--filter", "filters", multiple=True, help="KEY=VALUE (repeatable): the items to calibrate.")
@click.option("--round", "rounds", type=int, multiple=True, help="Only responses of runs in this round (repeatable).")
@click.option("--exclude-model", "exclude_models", multiple=True,
              help="Leave this model's responses out of the fit (repeatable; for held-out validation).")
@click.option("--model", "models", multiple=True, help="Fit only this model's responses (repeatable).")
@click.option("--latent", type=click.Choice(["normal", "empirical"]), default="normal", show_default=True)
@click.option("--anchor-calibration", default=None, help="Calibration to link to (default: the latest).")
@click.option("--link", "link_method", type=click.Choice(["stocking-lord", "fixed"]), default=None,
              help="Put this calibration on an earlier one's scale.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--guessing", type=click.Choice(["auto", "estimate", "choices"]), default="auto", show_default=True,
              help="3PL/4PL lower asymptote: estimated with a prior, fixed at 1/number of choices, or auto "
                   "(held at 0 when every item is numeric, which cannot be guessed; else estimated).")
@click.option("--holdout", type=float, default=0.2, show_default=True, help="--irt auto: held-out share.")
@click.option("--epochs", type=int, default=2000, show_default=True, help="--method pyirt: SVI epochs.")
@click.option("--link-boot", type=int, default=DEFAULT_BOOT, show_default=True,
              help="Stocking-Lord bootstrap replicates for the constants' SEs.")
@click.option("--max-iter", type=int, default=2000, show_default=True, help="EM step limit.")
@click.option("--online", is_flag=True,
              help="Estimate the pretest items (stage pretest, narrowed by --filter) that have responses on the "
                   "anchor calibration's scale, its items held at their parameters.")
@click.option("--online-method", type=click.Choice(ONLINE_METHODS), default=DEFAULT_ONLINE_METHOD, show_default=True,
              help="--online: method_a (Stocking A), oem (one EM cycle), mem (EM cycles), fpc (fixed-parameter MML).")
@click.option("--content-prior/--no-content-prior", "content_prior", default=True, show_default=True,
              help="Fit a content prior on the calibrated items and store it for the items not calibrated (the "
                   "sampler and whole-bank predictions use it; --online: the new items' priors).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def calibrate_cmd(ctx: Context, irt: str, method: str, filters: tuple[str, ...], rounds: tuple[int, ...],
                  exclude_models: tuple[str, ...], models: tuple[str, ...], latent: str,
                  anchor_calibration: str | None, link_method: str | None, seed: int, guessing: str, holdout: float,
                  epochs: int, link_boot: int, max_iter: int, online: bool, online_method: str, content_prior: bool,
                  as_json: bool) -> None:
    """Fit item parameters from the bank's responses and store them as a new calibration."""
    wait: dict[str, Any] = {"on_wait": lambda msg: click.echo(msg, err=True), "wait_s": ctx.wait_s}
    if online:
        _refuse_with_online(click.get_current_context())
        out = calibrate_online_bank(ctx.bank_path, OnlineOptions(
            method=online_method, filters=parse_filters(filters), rounds=rounds, exclude_models=exclude_models,
            models=models, anchor_calibration=anchor_calibration, seed=seed, content_prior=content_prior), **wait)
        d = out.summary()
        emit(d, as_json, None if as_json else _online_text(d))
        return
    if click.get_current_context().get_parameter_source("online_method") != ParameterSource.DEFAULT:
        raise InputError("--online-method needs --online")
    opts = CalibrateOptions(irt=irt, method=method, filters=parse_filters(filters), rounds=rounds,
                            exclude_models=exclude_models, models=models, latent=latent,
                            link=link_method, anchor_calibration=anchor_calibration, seed=seed, guessing=guessing,
                            holdout_frac=holdout, epochs=epochs, n_boot=link_boot, max_iter=max_iter,
                            content_prior=content_prior)
    # The bank is held while responses are read and while the result is stored, not during the fit.
    outcome = calibrate(ctx.bank_path, opts, **wait)
    data = outcome.summary()
    fitter = get_fitter(outcome.result.method)
    if not outcome.result.converged and fitter.checks_convergence:
        click.echo(f"WARNING: calibration {outcome.calibration_id} did NOT converge in {outcome.result.n_iter} "
                   f"{fitter.steps}; its parameters are unreliable (stored, marked converged=false)", err=True)
    has_se = any(bool(np.isfinite(v).any()) for v in outcome.result.se.values())
    text = None
    if not as_json:
        text = _calibrate_text(data, has_se)
        if outcome.content_prior is not None:
            text += "\n  " + outcome.content_prior.line()
    emit(data, as_json, text)


# Options of a full fit that --online has no use for (its model is the anchor's, its link is the anchor).
_NOT_ONLINE = ("irt", "method", "latent", "link_method", "guessing", "holdout", "epochs", "link_boot", "max_iter")


def _refuse_with_online(cctx: click.Context) -> None:
    given = [p.opts[0] for p in cctx.command.params
             if p.name in _NOT_ONLINE and cctx.get_parameter_source(p.name) != ParameterSource.DEFAULT]
    if given:
        raise InputError(f"--online estimates new items on the anchor calibration's scale; it takes no "
                         f"{', '.join(given)}")


def _online_text(d: dict[str, Any]) -> str:
    st = ", ".join(f"{n} {s}" for s, n in d["status"].items())
    pr = ", ".join(f"{n} {k}" for k, n in d["prior"].items())
    rpi = d["responses_per_item"]
    lines = [f"calibration {d['calibration_id']}: {d['method']} on {d['n_obs']} responses ({d['n_models']} models) "
             f"in {d['seconds']:.1f} s, linked to {d['anchor_calibration_id']}",
             f"  {d['n_new']} new items ({st}); responses per item {rpi['min']}-{rpi['max']} (median "
             f"{rpi['median']:g}); median SE(b) {_f(d['median_se_b'])}; {d['n_at_prior']} kept at prior",
             f"  priors: {pr}",
             f"  {d['n_operational']} operational items held at their parameters ({d['n_operational_answered']} "
             f"answered here); latent mean {_f(d['latent_mean'])}, sd {_f(d['latent_sd'])}; "
             f"{d['n_cycles']} cycles, {'converged' if d['converged'] else 'NOT converged'}"]
    cp = d["content_prior"]
    if cp is not None:
        lines.append("  " + (f"content prior: fitted on {cp['n_fitted']} operational items in {cp['seconds']:.1f} s "
                             f"(SD of b {_f(cp['b_sd'], 2)}, of log a {_f(cp['log_a_sd'], 2)}); stored for "
                             f"{cp['n_predicted']} items" if not cp["note"] else f"content prior: not fitted "
                                                                                     f"({cp['note']})"))
    lines += [f"  NOTE: {n}" for n in d["notes"]]
    lines.append(f"  per item: adt calibration show {d['calibration_id']}; snapshot {d['snapshot_id']}")
    return "\n".join(lines)


def _calibrate_text(d: dict[str, Any], has_se: bool) -> str:
    lines = [f"calibration {d['calibration_id']}: {d['method']} {d['irt_model']} on {d['n_obs']} responses "
             f"({d['n_models']} models, {d['n_runs']} runs, {d['n_items']} items) in {d['seconds']:.1f} s"]
    fitter = get_fitter(d["method"])
    if not fitter.checks_convergence:
        lines.append(f"  {fitter.label}: {d['n_iter']} {fitter.steps} (fixed count; convergence not assessed)"
                     + ("" if has_se else ", no SEs"))
    elif d["converged"]:
        lines.append(f"  CONVERGED in {d['n_iter']} {fitter.steps}")
    else:
        lines.append(f"  *** NOT CONVERGED after {d['n_iter']} {fitter.steps}: parameters are unreliable ***")
    lines.append(f"  loglik {_f(d['loglik'], 2)}   AIC {_f(d['aic'], 1)}   BIC {_f(d['bic'], 1)}   "
                 f"parameters {d['n_params']}")
    lines.append(f"  latent {d['latent']}: mean {_f(d['latent_mean'])}, sd {_f(d['latent_sd'])}")
    for status, rec in d["items"].items():
        lines.append(f"  {rec['n']:>7} {status:<12} {rec['reason']}")
    if d["n_dropped_responses"]:
        lines.append(f"  {d['n_dropped_responses']} responses to retired items left out")
    if d["selection"]:
        lines.append("  model selection (held-out log-likelihood; highest wins):")
        for c in d["selection"]:
            mark = "*" if c["model"] == d["irt_model"] else " "
            lines.append(f"   {mark} {c['model']}: held-out {_f(c['heldout_loglik'], 1)} "
                         f"({_f(c['heldout_loglik_per_obs'], 4)}/obs), AIC {_f(c['aic'], 1)}, BIC {_f(c['bic'], 1)}, "
                         f"{'converged' if c['converged'] else 'NOT converged'}")
    if d["linking"]:
        lk = d["linking"]
        lines.append(f"  linked onto {lk['anchor_calibration_id']} by {lk['method']} ({lk['n_common']} common items): "
                     f"A = {_f(lk['A'])} +/- {_f(lk['se_A'])}, B = {_f(lk['B'])} +/- {_f(lk['se_B'])} "
                     f"[{lk['error']}]")
    lines.append(f"  snapshot {d['snapshot_id']}")
    return "\n".join(lines)


@cli.group()
def calibration() -> None:
    """Stored calibrations: list, show, diff, flags."""


@calibration.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def list_cmd(ctx: Context, as_json: bool) -> None:
    """Every calibration, oldest first."""
    with ctx.bank("adt calibration list") as bank:
        frame = list_calibrations(bank)
    if as_json:
        emit(frame, True)
        return
    cols = ["calibration_id", "created_at", "method", "irt_model", "n_models", "n_calibrated", "n_items", "n_obs",
            "loglik", "converged", "link_method", "anchor_calibration_id"]
    emit(frame[cols], False)


@calibration.command("show")
@click.argument("calibration_id", required=False)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def show_cmd(ctx: Context, calibration_id: str | None, as_json: bool) -> None:
    """Every item's parameters, SEs, status and aliases (SOURCE:ID) in one calibration (default: latest)."""
    with ctx.bank("adt calibration show") as bank:
        info = calibration_info(bank, calibration_id)
        frame = calibration_params_frame(bank, info["calibration_id"])
        aliases = bank.aliases_of(frame["item_id"])
    frame["aliases"] = [aliases.get(i, []) for i in frame["item_id"]]
    if as_json:
        emit({"calibration": info, "items": frame}, True)
        return
    text = frame.assign(aliases=[" ".join(a) for a in frame["aliases"]])
    head = (f"calibration {info['calibration_id']}: {info['method']} {info['irt_model']}, created {info['created_at']}, "
            f"converged={info['converged']}, {info['n_iter']} steps, snapshot {info['snapshot_id']}")
    click.echo(head)
    click.echo(text.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(text) else "(no items)")


@calibration.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--z", "z_crit", type=float, default=3.0, show_default=True, help="|z| above which an item moved.")
@click.option("--all", "show_all", is_flag=True, help="List every common item, not only the moved ones.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def diff_cmd(ctx: Context, old: str, new: str, z_crit: float, show_all: bool, as_json: bool) -> None:
    """Parameter changes from OLD to NEW with z = change / sqrt(se_old^2 + se_new^2)."""
    with ctx.bank("adt calibration diff") as bank:
        frame, meta = diff_calibrations(bank, old, new, z_crit=z_crit)
        aliases = bank.aliases_of(frame["item_id"]) if len(frame) else {}
    frame["aliases"] = [aliases.get(i, []) for i in frame["item_id"]]
    if as_json:
        emit({**meta, "items": frame}, True)
        return
    click.echo(f"{meta['old']} -> {meta['new']}: {meta['n_common']} common usable items, {meta['n_moved']} moved "
               f"beyond |z| > {z_crit:g} ({meta['same_scale_note']})")
    shown = frame if show_all else frame[frame["moved"]]
    shown = shown.sort_values("max_abs_z", ascending=False)
    shown = shown.assign(aliases=[" ".join(a) for a in shown["aliases"]])
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}") if len(shown) else "(no item moved)")


@calibration.command("flags")
@click.argument("calibration_id", required=False)
@click.option("--against", default=None, help="Calibration to compare parameters with (default: the previous one).")
@click.option("--z", "z_crit", type=float, default=3.0, show_default=True)
@click.option("--a-min", type=float, default=0.25, show_default=True, help="Discrimination below this is flagged.")
@click.option("--alpha", type=float, default=0.05, show_default=True,
              help="Level (adjusted p) of the wrong-key and the drift-by-exposure tests.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def flags_cmd(ctx: Context, calibration_id: str | None, against: str | None, z_crit: float, a_min: float,
              alpha: float, as_json: bool) -> None:
    """Items to inspect: misfit, likely wrong keys, kept at prior, moved, and drift by exposure.

    A wrong key is flagged on evidence: the models that got the item right are less able than those that
    got it wrong (one-sided exact rank test, BH-adjusted over the tested items, below --alpha), on keyed
    items with at least 10 models, 3 right and 3 wrong. The report shows the same flags."""
    with ctx.bank("adt calibration flags") as bank:
        rep = calibration_flags(bank, calibration_id, against=against, z_crit=z_crit, a_min=a_min, alpha=alpha)
    flags = rep.flags
    drift_items = rep.drift.items.reset_index() if rep.drift is not None else pd.DataFrame()
    drift_models = rep.drift.models.reset_index() if rep.drift is not None else pd.DataFrame()
    if as_json:
        emit({"calibration_id": rep.calibration_id, "previous_id": rep.previous_id, "flags": flags,
              "drift_note": rep.drift_note, "drift_items": drift_items, "drift_models": drift_models,
              "drift_settings": rep.drift.settings if rep.drift is not None else None}, True)
        return
    counts = flags["flag"].value_counts()
    click.echo(f"calibration {rep.calibration_id}: {len(flags)} flags on {flags['item_id'].nunique()} items"
               + (f" (moves vs {rep.previous_id})" if rep.previous_id else " (no previous calibration)"))
    for name, n in counts.items():
        click.echo(f"  {n:>6} {name}")
    if len(flags):
        text = flags.assign(aliases=[" ".join(a) for a in flags["aliases"]])
        click.echo(text.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    click.echo(f"drift: {rep.drift_note}")
    if rep.drift is not None:
        hit_m = drift_models[drift_models["flagged"]] if len(drift_models) else drift_models
        click.echo(f"  models with excess accuracy on exposed items: "
                   f"{', '.join(map(str, hit_m['model'])) if len(hit_m) else 'none'}")


@cli.command("estimate")
@click.option("--model", required=True, help="The model's name in the bank.")
@click.option("--filter", "filters", multiple=True, help="KEY=VALUE (repeatable): the slice to predict.")
@click.option("--by", default=None, help="A tag key: sub-scores per value, with intervals where the data allow.")
@click.option("--calibration", "calibration_id", default=None, help="Calibration id (default: the latest).")
@click.option("--method", type=click.Choice(["eap", "map", "mle"]), default="eap", show_default=True)
@click.option("--exact-params", is_flag=True,
              help="Treat the calibration as exact (no parameter, misfit or person-fit terms): the old intervals.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def estimate_cmd(ctx: Context, model: str, filters: tuple[str, ...], by: str | None, calibration_id: str | None,
                 method: str, exact_params: bool, as_json: bool) -> None:
    """A model's ability with its 95% interval and its predicted accuracy on a slice (default: whole bank)."""
    with ctx.bank("adt estimate") as bank:
        est = estimate_model(bank, model, calibration_id=calibration_id, filters=parse_filters(filters),
                             method=method, exact_params=exact_params, by=by)
    if as_json:
        emit(est, True)
        return
    click.echo("\n".join(estimate_lines(est)))


def estimate_lines(est: dict[str, Any]) -> list[str]:
    """The text of one estimate: ability, predicted accuracy, what the interval holds, flags, sub-scores."""
    mark = " [EXTRAPOLATED]" if est["extrapolated"] else ""
    lines = [
        f"model {est['model']}: ability {_f(est['theta'])} +/- {_f(est['se'])} ({est['method']}), "
        f"95% interval [{_f(est['lo'])}, {_f(est['hi'])}]{' (bounded MLE)' if est['bounded'] else ''} "
        f"from {est['n_items']} items{mark}",
        f"  predicted accuracy on the slice: {_pct(est['pred_acc'])} ({_pct(est['pred_lo'])}-{_pct(est['pred_hi'])}) "
        f"over {est['n_predicted']} items: {est['n_answered']} answered "
        f"(observed {_pct(est['observed_accuracy'])}), {est['n_predicted'] - est['n_answered']} predicted"
        + (f" ({est['n_content_prior']} from content priors)" if est.get("n_content_prior") else ""),
    ]
    if est.get("n_pretest_left_out"):
        lines.append(f"  {est['n_pretest_left_out']} answers to pretest items (on its forms, never scored) left out")
    if not est["covers_slice"]:
        lines.append(f"  NOTE: the prediction is {est['slice_note']}")
    if est["extrapolated"]:
        lines.append(f"  EXTRAPOLATED: {est['extrapolation']}")
    if not est["exact_params"] and math.isfinite(est["person_fit_z"] or math.nan):
        lean = (f"; estimate leans {100 * est['person_fit_weight']:.0f}% toward the summed-score prediction "
                f"{_pct(est['summed_acc'])}" if est["person_fit_weight"] > 0 else "")
        lines.append(f"  person fit z = {_f(est['person_fit_z'], 2)} (p = {_f(est['person_fit_p'], 3)}){lean}; "
                     f"calibration misfit sd {_f(est['misfit_sd'], 4)}")
        if est.get("form_unlikeness", 0.0) > 0:
            lines.append(f"  the answered items are unlike the bank's (weight {_f(est['form_unlikeness'], 2)}): "
                         "the interval adds the misfit of reading the ability from one kind of item")
    lines.append("  interval holds: " + "; ".join(est["sources"]))
    if est.get("raters"):
        r = est["raters"]
        lines.append(f"  ability with every judge's verdict ({r['family']}: {r['n_judge_verdicts']} verdicts at their "
                     f"judges' severities): {_f(r['theta'])} +/- {_f(r['se'])}, 95% interval [{_f(r['lo'])}, "
                     f"{_f(r['hi'])}] from {r['n_responses']} responses")
    for row in est.get("by") or []:
        key = est["by_key"]
        if row["refused"]:
            lines.append(f"    {key}={row[key]}: refused: {row['refused']}")
        else:
            lines.append(f"    {key}={row[key]}: {_pct(row['pred_acc'])} ({_pct(row['pred_lo'])}-{_pct(row['pred_hi'])})"
                         f" over {row['n_predicted']} items, {row['n_answered']} answered"
                         + (" [EXTRAPOLATED]" if row["extrapolated"] else "")
                         + ("" if row["covers_slice"] else f" (of {row['n_slice_items']})"))
    lines.append(f"  calibration {est['calibration_id']} (snapshot {est['calibration_snapshot_id']}); bank snapshot "
                 f"{est['snapshot_id']}")
    return lines


def _pct(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(v) else f"{100 * v:.1f}%"


@cli.command("compare")
@click.argument("models", nargs=-1)
@click.option("--all", "all_pairs", is_flag=True, help="Every pair of models, p-values adjusted over the pairs.")
@click.option("--adjust", type=click.Choice(["holm", "bh", "none"]), default="holm", show_default=True)
@click.option("--filter", "filters", multiple=True, help="KEY=VALUE (repeatable): the slice compared.")
@click.option("--calibration", "calibration_id", default=None, help="Calibration id (default: the latest).")
@click.option("--exact-params", is_flag=True, help="Treat the calibration as exact (for comparison).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def compare_cmd(ctx: Context, models: tuple[str, ...], all_pairs: bool, adjust: str, filters: tuple[str, ...],
                calibration_id: str | None, exact_params: bool, as_json: bool) -> None:
    """Is A better than B? Paired difference in ability and predicted accuracy, 95% interval and p-value."""
    if all_pairs == bool(models):
        raise InputError("give two models (adt compare A B) or --all")
    if not all_pairs and len(models) != 2:
        raise InputError(f"adt compare takes two models, got {len(models)}")
    with ctx.bank("adt compare") as bank:
        if all_pairs:
            frame = compare_all(bank, calibration_id=calibration_id, filters=parse_filters(filters), adjust=adjust,
                                exact_params=exact_params)
        else:
            out = compare_models(bank, models[0], models[1], calibration_id=calibration_id,
                                 filters=parse_filters(filters), exact_params=exact_params)
    if all_pairs:
        if as_json:
            emit(frame, True)
            return
        cols = ["model_a", "model_b", "diff_acc", "acc_lo", "acc_hi", "p_acc", "p_adjusted", "n_common", "paired"]
        click.echo(frame[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        click.echo(f"p-values adjusted by {adjust} over {len(frame)} pairs; calibration {frame['calibration_id'].iloc[0]}")
        return
    if as_json:
        emit(out, True)
        return
    pts = 100 * out["diff_acc"]
    lines = [
        f"{out['model_a']} - {out['model_b']}: accuracy {pts:+.1f} points "
        f"({100 * out['acc_lo']:+.1f} to {100 * out['acc_hi']:+.1f}), p = {_f(out['p_acc'], 4)}; "
        f"ability {_f(out['diff_theta'])} ({_f(out['theta_lo'])} to {_f(out['theta_hi'])}), p = {_f(out['p_theta'], 4)}",
        f"  {out['n_common']} items answered by both (paired); unpaired interval would be "
        f"{100 * out['unpaired_lo']:+.1f} to {100 * out['unpaired_hi']:+.1f}",
        f"  {out['model_a']}: {_pct(out['a']['pred_acc'])}  {out['model_b']}: {_pct(out['b']['pred_acc'])}  "
        f"over {out['n_predicted']} of the slice's {out['n_slice_items']} items",
    ]
    if out["note"]:
        lines.append(f"  NOTE: {out['note']}")
    lines.append(f"  calibration {out['calibration_id']}")
    click.echo("\n".join(lines))
