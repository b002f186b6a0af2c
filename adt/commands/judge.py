"""``adt judge``: judge models' verdicts. ``validate`` measures each judge and the panel against gold/human
labels and stores a judge calibration (``adt judge run``, which calls the judges, joins this group from the
judgerun branch)."""

from __future__ import annotations

from pathlib import Path

import click

from adt.cli import Context, cli, emit, pass_ctx


@cli.group()
def judge() -> None:
    """Judge models: validate judges against gold/human labels (and run them: `adt judge run`)."""


def _ci(p: float, lo: float, hi: float) -> str:
    return "-" if p != p else f"{p:.3f} [{lo:.3f}, {hi:.3f}]"


@judge.command("validate")
@click.option("--gold", "gold", type=click.Path(path_type=Path), required=True,
              help="Gold/human labels: CSV, JSON or Parquet with item_id, optional run_id, and label in the verdict "
                   "coding (1 candidate/output 1 better, 0 baseline better, 0.5 tie; pointwise level/(n-1)).")
@click.option("--judge", "judge_names", multiple=True, help="Only this judge (repeatable; default: every judge).")
@click.option("--verdicts", type=click.Path(path_type=Path), default=None,
              help="Verdicts in the judgments frame (CSV/JSON/Parquet) instead of the bank's stored judge calls.")
@click.option("--lengths", type=click.Path(path_type=Path), default=None,
              help="Answer lengths (item_id, optional run_id, len_candidate, len_baseline) for the length statistics "
                   "and the rater model's length term.")
@click.option("--folds", type=int, default=5, show_default=True, help="Cross-validation folds for the panel's figures.")
@click.option("--types", "n_types", type=int, default=2, show_default=True,
              help="Latent case types of the rater model (1: plain Dawid-Skene).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def judge_validate_cmd(ctx: Context, gold: Path, judge_names: tuple[str, ...], verdicts: Path | None,
                       lengths: Path | None, folds: int, n_types: int, seed: int, as_json: bool) -> None:
    """Agreement of each judge and of the panel with gold/human labels (accuracy per order and combined, kappa,
    position consistency, first-position and longer-answer preference, with 95% intervals); the panel's rater
    model by cross-validation; stored in the bank as a judge calibration."""
    from adt.workflow.judge_validate import JudgeValidateOptions, judge_validate, read_inputs

    opts = JudgeValidateOptions(gold=gold, judges=judge_names, verdicts=verdicts, lengths=lengths, folds=folds,
                                seed=seed, n_types=n_types)
    inputs = read_inputs(opts)  # every file checked before the bank is opened
    with ctx.bank("adt judge validate") as bank:
        result = judge_validate(bank, opts, inputs)
    if as_json:
        emit(result.as_dict(), True)
        return
    lines = [f"judge calibration {result.judge_calibration_id}: {result.n_cases} cases, {result.n_gold} with gold "
             f"({result.n_classes} classes)"]
    for r in result.stats.itertuples():
        lines.append(f"  {r.rater}: accuracy {_ci(r.acc, r.acc_lo, r.acc_hi)} (ab {r.acc_ab:.3f}, ba {r.acc_ba:.3f}); "
                     f"kappa {_ci(r.kappa, r.kappa_lo, r.kappa_hi)}; consistent "
                     f"{_ci(r.consistency, r.consistency_lo, r.consistency_hi)}; first position "
                     f"{_ci(r.first_pref, r.first_pref_lo, r.first_pref_hi)}; longer answer "
                     f"{_ci(r.longer_pref, r.longer_pref_lo, r.longer_pref_hi)} (gold {r.gold_longer:.3f}); "
                     f"unparseable {r.n_unparseable}")
    p = result.panel
    if "acc" in p:
        lines.append(f"  panel (rater model, {p['folds']}-fold out-of-fold on {p['n_out_of_fold']} cases): accuracy "
                     f"{p['acc']:.3f}; majority vote {p['majority_acc']:.3f}; best single judge {p['best_judge_acc']:.3f}; "
                     f"called at ~90%: {p['at_90']['n']} cases, {p['at_90']['accuracy']:.3f} right; routing 10% to "
                     f"humans: {p['routing_10pct']['acc_none']:.3f} -> {p['routing_10pct']['acc_routed']:.3f} "
                     f"(random {p['routing_10pct']['acc_random']:.3f})")
    lines += [f"note: {n}" for n in result.notes]
    click.echo("\n".join(lines))
