"""``adt cat``: an adaptive test of one model through any registered runner backend.

The command parses its options and prints; the test, its run and its storage are
``adt.workflow.cat.run_cat`` (see there).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adt.flags import parse_backend_args, parse_quotas
from adt.workflow.cat import EXPOSURE_CHOICES, run_cat
from runners import available


@cli.command("cat")
@click.option("--model", required=True, help="The model's name in the bank (and, for replay, in the record).")
@click.option("--backend", required=True,
              help=f"One of {', '.join(available())}, or a Runner class as package.module:Class.")
@click.option("--backend-arg", "backend_args", multiple=True, metavar="K=V",
              help="Backend argument (repeatable), as for `adt run` (simulated: theta=, params=FILE, rng=SEED; "
                   "replay: path=FILE, source=NAME).")
@click.option("--max-items", type=int, default=50, show_default=True)
@click.option("--se-target", type=float, default=0.3, show_default=True, help="Stop once the SE is at most this.")
@click.option("--seed", type=int, default=None, help="Seed of item selection (drawn and recorded when not given).")
@click.option("--calibration", "calibration_id", default=None, help="Calibration to test with (default: latest).")
@click.option("--params", "params_file", type=click.Path(path_type=Path), default=None,
              help="Item parameters from a file (item_id, a, b[, c, d]) instead of a calibration.")
@click.option("--exposure-control", "exposure", type=click.Choice(EXPOSURE_CHOICES), default="none",
              show_default=True)
@click.option("--top-k", type=int, default=5, show_default=True, help="Randomesque: pick among the k best items.")
@click.option("--sh-rmax", type=float, default=0.2, show_default=True,
              help="Sympson-Hetter: target maximum exposure rate.")
@click.option("--sh-respondents", type=int, default=200, show_default=True,
              help="Sympson-Hetter: simulated respondents per calibration iteration.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Item slice to test from (repeatable).")
@click.option("--content", multiple=True, metavar="KEY=VAL:FRAC,...", help="Content-balancing targets (repeatable).")
@click.option("--run", "run_id", default=None, help="Run id (default cat:MODEL:RANDOM).")
@click.option("--round", "round_no", type=int, default=None)
@click.option("--template", "template_id", default=None, help="Prompt template id (default per item).")
@click.option("--mc-mode", type=click.Choice(["loglik", "generate"]), default="loglik", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def cat(ctx: Context, model: str, backend: str, backend_args: tuple[str, ...], max_items: int, se_target: float,
        seed: int | None, calibration_id: str | None, params_file: Path | None, exposure: str, top_k: int,
        sh_rmax: float, sh_respondents: int, filters: tuple[str, ...], content: tuple[str, ...], run_id: str | None,
        round_no: int | None, template_id: str | None, mc_mode: str, as_json: bool) -> None:
    """Adaptive test of MODEL: ability, SE, 95% interval and the items used."""
    flt = parse_filters(filters)
    targets = {k: {v: float(f) for v, f in amounts.items()} for k, amounts in parse_quotas(content).items()}
    report = run_cat(ctx.bank_path, model, backend, parse_backend_args(backend_args), max_items=max_items,
                     se_target=se_target, seed=seed, calibration_id=calibration_id, params_file=params_file,
                     exposure=exposure, top_k=top_k, filters=flt, content=targets, run_id=run_id,
                     round_no=round_no, template_id=template_id, mc_mode=mc_mode, sh_respondents=sh_respondents,
                     sh_rmax=sh_rmax, wait_s=ctx.wait_s, on_wait=lambda msg: click.echo(msg, err=True))
    emit(report.as_dict(), as_json, None if as_json else (
        f"model {model}: ability {report.theta:.3f}, SE {report.se:.3f}, 95% interval [{report.lo:.3f}, "
        f"{report.hi:.3f}]" + (f"; predicted accuracy on the slice {report.pred_acc:.1%} ({report.pred_lo:.1%}-"
                                f"{report.pred_hi:.1%})" + (" [EXTRAPOLATED]" if report.extrapolated else "")
                                if np.isfinite(report.pred_acc) else "")
        + f"\n  {report.n_items} items used of {report.n_pool} (stop: {report.stop_reason}; "
        f"exposure control {report.exposure_control}), calibration {report.calibration_id}, run {report.run_id}\n"
        f"  items: {', '.join(report.item_ids)}"))
