"""``adt qc``: automatic quality control; thin glue over ``adt.workflow.qc``."""

from __future__ import annotations

import click

from adt.cli import Context, cli, emit, parse_filters, pass_ctx
from adt.flags import parse_backend_args
from adt.workflow.qc import Solvers, run_qc
from adt.workflow.run import DEFAULT_BATCH_SIZE
from adtbase import qc as vocab
from adtbase import review

_FLAGS_HELP = "; ".join(f"{f}: {d}" for f, d in vocab.FLAGS.items())


@cli.command("qc", help="Check items (drafts by default): format, near duplicates, leaks, and answer keys by "
                        "solver models.\n\nEach check is an event on the item; its flags are what the review "
                        f"queue filters on. Flags -- {_FLAGS_HELP}.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help="Slice (repeatable).")
@click.option("--review-state", "review_states", multiple=True, type=click.Choice(list(review.STATES)),
              help="Items in this review state (repeatable; default: draft).")
@click.option("--check", "checks", multiple=True, type=click.Choice(list(vocab.CHECKS)),
              help="Run only this check (repeatable; default: all; solvers only with --solver).")
@click.option("--solver", "solver_models", multiple=True, metavar="MODEL",
              help="A solver model for the answer-key check (repeatable), answered through --backend.")
@click.option("--backend", default=None, help="The solvers' backend (as `adt run`; replay re-scores the "
                                              "recorded answers against the current key).")
@click.option("--backend-arg", "backend_args", multiple=True, metavar="K=V", help="Backend argument (repeatable).")
@click.option("--mc-mode", type=click.Choice(["loglik", "generate"]), default="loglik", show_default=True,
              help="How solvers answer multiple choice (as `adt run`).")
@click.option("--template", "template_id", default=None, help="Prompt template id for the solvers (as `adt run`).")
@click.option("--name", default=None, help="QC pass name (default from the items checked; re-running resumes "
                                           "its solver runs).")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def qc(ctx: Context, filters: tuple[str, ...], review_states: tuple[str, ...], checks: tuple[str, ...],
       solver_models: tuple[str, ...], backend: str | None, backend_args: tuple[str, ...], mc_mode: str,
       template_id: str | None, name: str | None, batch_size: int, as_json: bool) -> None:
    if solver_models and not backend:
        raise click.UsageError("--solver needs --backend")
    chosen = list(checks) or [c for c in vocab.CHECKS if c != vocab.SOLVERS or solver_models]
    if vocab.SOLVERS in chosen and not solver_models:
        raise click.UsageError("--check solvers needs at least one --solver MODEL and --backend")
    solvers = (Solvers(backend or "", tuple(solver_models), parse_backend_args(backend_args), mc_mode, template_id)
               if solver_models else None)
    report = run_qc(ctx.bank_path, filters=parse_filters(filters), review_states=review_states or (review.DRAFT,),
                    checks=chosen, solvers=solvers, name=name, batch_size=batch_size, wait_s=ctx.wait_s,
                    on_wait=lambda msg: click.echo(msg, err=True))
    lines = [f"qc {report.name}: {report.n_items} items, checks {', '.join(report.checks)}; "
             f"{report.n_events} events recorded"]
    lines += [f"  {f:<15} {n:>6}" + (f"   e.g. {', '.join(report.flagged[f][:3])}" if n else "")
              for f, n in report.flags.items()]
    if report.solver_runs:
        lines.append(f"  solver runs: {len(report.solver_runs)} "
                     f"({sum(r['n_responses'] for r in report.solver_runs)} answers)")
    emit(report.as_dict(), as_json, "\n".join(lines))
