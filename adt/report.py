"""The analyst's and auditor's report: one self-contained HTML file (inline CSS, plots as inline PNG).

``build_report(bank, ...)`` gathers every section as plain data (frames, numbers, figures) and
``render_html(report)`` turns it into HTML; ``write_report`` does both and writes the file. The
statistics behind the leaderboard and the honesty block (rank uncertainty, separability, the coverage
simulation, leave-one-model-out replay) are ``calibration.honesty``'s; ``form_composition`` is here.

The calibration comes from ``calibration.store`` when a stored one exists; otherwise the report fits
one now (a 2PL by MML on every response in the bank) and says so in its provenance.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from adt import plots
from adtbase import __version__
from adtbase.errors import InputError
from calibration import (
    SUMMARY_COLUMNS,
    Coverage,
    ItemParams,
    draw_params,
    leave_one_model_out,
    rank_distribution,
    separability,
    simulated_coverage,
)

SLICE_KEYS = ("scenario", "domain", "language")  # --by's default: those the bank's items carry
MAX_SLICE_VALUES = 20  # per-slice columns shown per key (the values with the most items); a note says how many not
MAX_DEFAULT_FORMS = 5  # forms reported by default (those models took: more models that ran it first)
TAKEN_SHARE = 0.5  # a model answered at least this share of a form's items: it took the form
NOT_SEPARABLE_SHOWN = 5  # names in a leaderboard row's 'not separable from' (the full list is in the data)
COMPOSITION_KEYS = ("frequency_tier", "difficulty_band", "language")
LEVEL = 0.95
PARAM_DRAWS = 20  # parameter draws behind each simulated interval's calibration-error term and the ranks


# ------------------------------------------------------------------------------------------------
# value objects
@dataclass(frozen=True)
class CalibrationView:
    """What the report needs of one calibration: parameters with SEs and status, where it came from."""

    calibration_id: str
    params: ItemParams
    se: dict[str, NDArray]
    item_status: NDArray
    irt_model: str
    seed: int | None
    fitted_here: bool
    previous: CalibrationView | None = None
    prior: Any = None  # calibration.Prior of the latent distribution; None = N(0, 1)
    fixed: NDArray[np.bool_] | None = None  # anchors held at an earlier calibration's values
    predictive: Any = None  # calibration.predictive.PredictiveModel: what every estimate and interval uses
    abilities: pd.Series | None = None  # model -> theta of a calibration fitted here (the flags' input)

    def predictive_params(self) -> tuple[ItemParams, dict[str, NDArray]]:
        """The predictive parameters of every item they can predict, with the SEs the draws use."""
        pm = self.predictive
        idx = np.flatnonzero(pm.scorable)   # content-prior items are predicted, never scored
        return pm.params.subset(idx), {"a": pm.se_a[idx], "b": pm.se_b[idx]}

    def fixed_mask(self) -> NDArray[np.bool_]:
        return np.zeros(len(self.params), bool) if self.fixed is None else np.asarray(self.fixed, bool)

    @property
    def calibrated(self) -> NDArray[np.bool_]:
        return np.asarray(self.item_status == "calibrated")

    def usable(self) -> tuple[ItemParams, dict[str, NDArray]]:
        """Parameters and SEs of the calibrated items only (items at their priors say nothing)."""
        idx = np.flatnonzero(self.calibrated)
        return self.params.subset(idx), {k: np.asarray(v)[idx] for k, v in self.se.items()}


@dataclass(frozen=True)
class Report:
    """Every section of the report as data; ``render_html`` draws it."""

    title: str
    leaderboard: pd.DataFrame
    rank_probs: pd.DataFrame
    slices: dict[str, pd.DataFrame]
    forms: list[dict[str, Any]]
    diagnostics: dict[str, Any]
    honesty: dict[str, Any]
    provenance: dict[str, Any]
    figures: dict[str, str] = field(default_factory=dict)  # name -> data URI
    notes: list[str] = field(default_factory=list)
    scopes: dict[str, str] = field(default_factory=dict)  # section -> which form(s) and which models it uses
    loo_job: dict[str, Any] | None = None  # a replay still to run (``replay_models``), when deferred
    health: Any = None  # adt.workflow.health.Health: `adt bank health`'s numbers (issue 14)


# ------------------------------------------------------------------------------------------------
# form composition
def form_composition(form_items: pd.DataFrame, spec: Mapping[str, Any], keys: Sequence[str] = ()) -> pd.DataFrame:
    """Count of the form's items per value of each quota key (and ``keys``) next to the quota's target.

    Fractions in the spec are shown as their target count (fraction x form size). A form with pretest items:
    pass its operational items (the quotas are theirs; the size is theirs). Columns: key, value,
    items, share, target (NaN where the key has no quota for that value), meets (target met or no target).
    """
    n = len(form_items)
    quotas = dict(spec.get("quotas") or {})
    size = n if spec.get("pretest") else int(spec.get("size") or n)  # quotas hold for the operational part
    rows = []
    for key in list(dict.fromkeys([*quotas, *keys])):
        if key not in form_items.columns:
            rows.append((key, "(no such column)", 0, 0.0, np.nan, False))
            continue
        values = form_items[key].fillna("(none)").astype(str).str.split("|").explode()
        counts = values.value_counts()
        want = quotas.get(key, {})
        for value in sorted(set(counts.index) | set(map(str, want))):
            amount = want.get(value)
            target = np.nan if amount is None else (float(amount) * size if isinstance(amount, float) else float(amount))
            got = int(counts.get(value, 0))
            meets = bool(np.isnan(target) or abs(got - target) < 1.0)
            rows.append((key, value, got, got / n if n else 0.0, target, meets))
    return pd.DataFrame(rows, columns=["key", "value", "items", "share", "target", "meets"])


# ------------------------------------------------------------------------------------------------
# calibration: stored, or fitted for this report
def load_calibration_view(bank: Any, calibration_id: str | None, responses: pd.DataFrame, *,
                          seed: int) -> CalibrationView:
    """The stored calibration named (``calibration.store``; the latest by default); where the bank has
    none stored and none is named, one fitted now."""
    from adtbase.errors import CalibrationError
    from calibration import list_calibrations, load_calibration, previous_calibration_id

    try:
        stored = load_calibration(bank, calibration_id)
    except CalibrationError:
        if calibration_id is not None or _has_calibrations(list_calibrations, bank):
            raise
        return fit_view(responses, seed=seed)
    previous = None
    prev_id = previous_calibration_id(bank, stored.calibration_id)
    if prev_id is not None:
        previous = _view_of(load_calibration(bank, prev_id), None)
    from adt.workflow.calibrate import predictive_model

    view = replace(_view_of(stored, previous), predictive=predictive_model(bank, stored))
    if previous is not None:
        view = _with_anchor_se(view, previous)
    return view


def _with_anchor_se(view: CalibrationView, anchor: CalibrationView) -> CalibrationView:
    """Anchors held fixed have no SE in the linked calibration; their error is the anchor calibration's."""
    pos = {k: i for i, k in enumerate(anchor.params.item_ids)}
    idx = np.array([pos.get(k, -1) for k in view.params.item_ids])
    se = {}
    for name, values in view.se.items():
        v = np.asarray(values, dtype=float).copy()
        old = np.asarray(anchor.se.get(name, np.full(len(anchor.params), np.nan)), dtype=float)
        fill = np.isnan(v) & (idx >= 0)
        v[fill] = old[idx[fill]]
        se[name] = v
    return replace(view, se=se)


def _has_calibrations(list_calibrations: Any, bank: Any) -> bool:
    try:
        return len(list_calibrations(bank)) > 0
    except Exception:  # no calibration tables in this bank yet
        return False


def _view_of(stored: Any, previous: CalibrationView | None) -> CalibrationView:
    # Anchors fixed at an earlier calibration's values count as calibrated (their SEs are NaN: held fixed).
    seed = stored.info.get("seed")
    return CalibrationView(stored.calibration_id, stored.params, dict(stored.se), stored.status_for_abilities(),
                           stored.irt_model, None if seed is None or pd.isna(seed) else int(seed), False, previous,
                           stored.prior(), np.asarray(stored.item_status == "fixed"))


def fit_view(responses: pd.DataFrame, *, seed: int, irt_model: str = "2pl") -> CalibrationView:
    """A calibration of every response given, fitted now (when the bank has none stored)."""
    import hashlib

    from calibration import ResponseSet, fit_mml

    if responses.empty:
        raise InputError("the bank has no responses: nothing to calibrate or report")
    rs = ResponseSet.from_frame(responses.groupby(["model", "item_id"], as_index=False)["score"].mean(),
                                "model", "item_id", "score")
    from calibration import Prior, build_predictive

    res = fit_mml(rs, irt_model, rng=np.random.default_rng(seed), seed=seed, warn=False)
    digest = hashlib.sha256(pd.util.hash_pandas_object(responses[["model", "item_id", "score"]], index=False)
                            .to_numpy().tobytes()).hexdigest()[:12]
    prior = Prior.from_calibration(res)
    pm = build_predictive(res.params, res.se, np.asarray(res.item_status), theta=res.theta, model_ids=res.model_ids,
                          model_idx=rs.model_idx, item_idx=rs.item_idx, score=rs.score, response_item_ids=rs.item_ids,
                          prior=prior, settings=res.settings, irt_model=irt_model)
    return CalibrationView(f"report-fit-{irt_model}-{digest}", res.params, dict(res.se), np.asarray(res.item_status),
                           irt_model, seed, True, prior=prior, predictive=pm,
                           abilities=pd.Series(np.asarray(res.theta, dtype=float), index=list(res.model_ids)))


# ------------------------------------------------------------------------------------------------
# building the report from a bank
def build_report(bank: Any, *, round_no: int | None = None, calibration_id: str | None = None,
                 form: str | None = None, seed: int = 0, n_worlds: int = 200, per_world: int = 25,
                 loo: bool = False, loo_models: int | None = None, by: Sequence[str] | None = None,
                 defer_loo: bool = False, say: Callable[[str], None] = lambda _m: None) -> Report:
    """Every section of the report for a round (or a form, or the whole bank) of ``bank``.

    The honesty block shows the latest stored ``adt validate`` study (its date, calibration settings and
    table); ``loo`` also replays each model against a refit without it on the reported form (slow: one
    refit per model).

    ``by``: tag keys of the per-slice scores (default: the SLICE_KEYS the bank's items carry).

    ``defer_loo``: leave the leave-one-model-out refits for ``replay_models`` (so a caller can let go of
    the bank first; they need none of it)."""
    from calibration import abilities_with_parameter_error, ability_posteriors, predict

    root = np.random.SeedSequence(seed)
    rank_rng, cov_rng, draw_rng = (np.random.default_rng(s) for s in root.spawn(3))
    notes: list[str] = []
    figures: dict[str, str] = {}

    # Scores read the scored answers only (answers to a form's pretest items are left out); the calibration
    # view reads every answer, as calibration does.
    every_resp = bank.responses()
    all_resp = bank.responses(scored=True)
    if int(all_resp.attrs.get("n_pretest_left_out", 0)):
        notes.append(f"{all_resp.attrs['n_pretest_left_out']:,} answers to pretest items (administered on forms, "
                     "never scored) are left out of every score")
    if all_resp.empty:
        raise InputError(f"{bank.path}: the bank has no responses: run models before reporting")
    forms_frame = bank.forms()
    form_ids = {str(name): list(bank.form(name)["item_ids"]) for name in forms_frame["name"]}
    takers, ran_on = form_takers(form_ids, all_resp)
    form_names = _forms_of(forms_frame, round_no, form, takers, ran_on)
    if round_no is not None:
        resp = all_resp[all_resp["round"] == round_no]
        if resp.empty:
            rounds = sorted({int(r) for r in all_resp["round"].dropna()})
            raise InputError(f"--round {round_no}: no responses in that round (rounds with responses: {rounds})")
        scope = f"round {round_no}"
    elif form is not None:
        ids = set(bank.form(form)["item_ids"])
        resp = all_resp[all_resp["item_id"].isin(ids)]
        if resp.empty:
            raise InputError(f"--form {form}: no model has answered its items")
        scope = f"form {form}"
    else:
        resp = all_resp
        scope = "all responses in the bank"

    say("calibration ...")
    cal = load_calibration_view(bank, calibration_id, every_resp, seed=seed)
    params, _ = cal.usable()
    if len(params) == 0:
        raise InputError(f"calibration {cal.calibration_id}: no calibrated items")
    pos = {k: i for i, k in enumerate(params.item_ids)}

    # -- leaderboard ---------------------------------------------------------------------------------
    # One implementation (calibration.predictive): abilities whose intervals hold the parameters' error,
    # predicted accuracy on every item of the bank with the honest interval, extrapolation, person fit.
    say("leaderboard ...")
    pm = cal.predictive
    pparams, pse = cal.predictive_params()
    ppos = {k: i for i, k in enumerate(pparams.item_ids)}
    used = resp[resp["item_id"].isin(ppos)]
    models = sorted(resp["model"].unique())
    if used.empty:
        raise InputError(f"{scope}: none of the answered items is calibrated in {cal.calibration_id}")
    m_of = {m: i for i, m in enumerate(models)}
    mi = used["model"].map(m_of).to_numpy(np.int64)
    ji = used["item_id"].map(ppos).to_numpy(np.int64)
    sc = used["score"].to_numpy(float)
    prior = pm.prior
    est = abilities_with_parameter_error(mi, ji, sc, pparams, pse, n_models=len(models), prior=prior, level=LEVEL,
                                         rng=draw_rng)
    # Ranks and P(best) under parameter error too: posteriors under draws of the item parameters (the same
    # draw for every model), mixed over the draws by rank_distribution.
    grid, post = ability_posteriors(mi, ji, sc, pparams, n_models=len(models), prior=prior)
    drawn = [post] + [ability_posteriors(mi, ji, sc, draw_params(pparams, pse, rank_rng), n_models=len(models),
                                         prior=prior)[1] for _ in range(PARAM_DRAWS if pse else 0)]
    probs, rank_lo, rank_hi = rank_distribution(grid, np.stack(drawn), rank_rng)
    bank_ids = [str(i) for i in bank.item_ids()]
    mean_scores = all_resp.groupby(["model", "item_id"], sort=True)["score"].mean()
    pm_pos = pm.position()
    # Each model's ability part (posterior, parameter draws) depends on its answers only: computed once, it
    # serves the whole bank's prediction here and every slice below (the same numbers as a call each).
    shared: dict[str, dict[str, Any]] = {m: {} for m in models}
    # The board's abilities and their intervals are ``est``'s: the predictions give the accuracy only.
    preds = [predict(pm, mean_scores.loc[name], bank_ids, level=LEVEL, pos=pm_pos, shared=shared[name],
                     theta_interval=False) for name in models]
    board = pd.DataFrame({"model": models, "theta": est.theta, "se": est.se, "lo": est.lo, "hi": est.hi,
                          "n_items": est.n_items, "pred_acc": [p.pred_acc for p in preds],
                          "pred_lo": [p.pred_lo for p in preds], "pred_hi": [p.pred_hi for p in preds],
                          "n_bank_answered": [p.n_answered for p in preds],
                          "n_predicted": [p.n_predicted for p in preds], "n_slice_items": len(bank_ids),
                          "extrapolated": [p.extrapolated for p in preds],
                          "person_fit_z": [p.person_fit_z for p in preds],
                          "rank_lo": rank_lo, "rank_hi": rank_hi,
                          "p_best": probs[:, 0], "raw_accuracy": resp.groupby("model")["score"].mean()
                          .reindex(models).to_numpy()})
    short = board["n_predicted"] < board["n_slice_items"]
    scopes: dict[str, str] = {
        "leaderboard": f"{scope}: {len(models)} models ({names_list(models)}), estimated from their {len(used):,} "
                       f"answers to calibrated items; predicted accuracy on the bank's {len(bank_ids):,} items",
        "slices": f"the leaderboard's {len(models)} models, from all their answers in the bank; each value's items "
                  "of the whole bank"}
    if short.any():
        notes.append(f"predicted accuracy covers {int(board['n_predicted'].min())}-{int(board['n_predicted'].max())} "
                     f"of the bank's {len(bank_ids)} items: items no calibration model answered cannot be predicted")
    board = board.sort_values("theta", ascending=False, kind="stable").reset_index(drop=True)
    board.insert(0, "rank", np.arange(1, len(board) + 1))
    sep = separability(board["lo"].to_numpy(), board["hi"].to_numpy())
    board["not_separable_list"] = [[str(board["model"].iloc[k]) for k in row] for row in sep]
    board["not_separable_from"] = [", ".join(row) for row in board["not_separable_list"]]
    order = [m_of[m] for m in board["model"]]
    rank_probs = pd.DataFrame(probs[order], index=board["model"], columns=[str(r) for r in range(1, len(models) + 1)])
    figures["forest"] = _uri(plots.ability_figure(board["model"].tolist(), board["theta"], board["lo"], board["hi"],
                                                  title=f"Ability with 95% intervals ({scope})"))
    figures["rank_probs"] = _uri(_rank_figure(rank_probs))

    # -- slices ----------------------------------------------------------------------------------
    say("slices ...")
    left_out: dict[str, str] = {}
    slices = _slice_scores(bank, pm, mean_scores, models, bank_ids, by, notes, pm_pos, left_out, shared)
    scopes.update({f"slice:{k}": v for k, v in left_out.items()})

    # -- forms -----------------------------------------------------------------------------------
    say("forms ...")
    forms_out = []
    info_params: dict[str, ItemParams] = {}
    bank_items = bank.items(with_tags=False)
    earlier_ids = form_ids
    for name in form_names:
        rec = bank.form(name)
        fitems = _items_as_drawn(bank, rec, notes)
        scored_items = fitems[~fitems["item_id"].isin(set(rec.get("pretest_ids") or []))]
        comp = form_composition(scored_items, rec["spec"], keys=[k for k in (*COMPOSITION_KEYS, *SLICE_KEYS)
                                                             if k in fitems.columns])
        created = forms_frame.set_index("name")["created_at"]
        overlap = [(other, len(set(rec["item_ids"]) & set(ids)), len(ids))
                   for other, ids in earlier_ids.items() if other != name and created[other] < created[name]]
        sub, missing = plots.subset_params(params, rec["item_ids"])
        if len(sub):
            info_params[f"{name} ({len(missing)} uncalibrated left out)" if missing else name] = sub
        forms_out.append({"name": name, "n_items": len(rec["item_ids"]), "strategy": rec["strategy"],
                          "seed": rec["seed"], "content_hash": rec["content_hash"], "snapshot_id": rec["snapshot_id"],
                          "calibration_id": rec["calibration_id"], "published_in": rec["publications"],
                          "composition": comp, "n_uncalibrated": len(missing), "item_ids": rec["item_ids"],
                          "n_pretest": len(rec.get("pretest_ids") or []), "n_stand_in": int(rec.get("n_stand_in") or 0),
                          "takers": takers.get(name, []), "ran": ran_on.get(name, []), "created_at": str(rec["created_at"])[:19],
                          "overlap": pd.DataFrame(overlap, columns=["earlier form", "shared items", "its items"])})
    untaken = [n for n in forms_frame["name"] if not takers.get(n)]
    if form is not None:
        scopes["forms"] = f"--form {form}"
    elif round_no is not None:
        scopes["forms"] = f"the forms published in round {round_no}: {names_list(form_names) or 'none'}"
    elif form_names:
        taken = [n for n in forms_frame["name"] if takers.get(n)]
        scopes["forms"] = (f"the forms models took (a run on the form, or answers to at least {TAKEN_SHARE:.0%} of its "
                           f"items), those run by more models first: {names_list(form_names)}"
                           + (f" ({len(taken) - len(form_names)} more taken forms not shown; give --form)"
                              if len(taken) > len(form_names) else ""))
    else:
        scopes["forms"] = ("no model took any form" + (f" ({names_list(untaken)} answered by no model)" if untaken
                                                       else " (the bank has no forms)")
                           + ": every section uses all responses")
    if untaken and form is None and round_no is None and form_names:
        scopes["forms"] += f"; not reported, answered by no model: {names_list(untaken[::-1])}"
    if info_params:
        figures["information"] = _uri(plots.information_figure(info_params))
    high = int(bank.settings().get("tier_high_runs", 3))
    figures["exposure"] = _uri(plots.exposure_figure(bank_items["exposure_runs"].to_numpy(np.int64),
                                                     bank_items["exposure_publications"].to_numpy(np.int64),
                                                     high_runs=high))

    # -- bank health: `adt bank health`'s numbers for the last stored form's spec --------------------
    from adt.workflow.health import bank_health

    say("bank health ...")
    health = bank_health(bank, round_no=round_no)
    if not health.projection.empty:
        figures["health"] = _uri(plots.health_figure(health.projection))

    # -- diagnostics -----------------------------------------------------------------------------
    say("diagnostics ...")
    diagnostics = _diagnostics(cal, all_resp, params, pos, bank, figures, notes,
                               form_items=[i for f in forms_out for i in f["item_ids"]])

    # -- honesty ---------------------------------------------------------------------------------
    honesty: dict[str, Any] = {"form": None, "validation": _latest_validation(bank),
                               "judges": _latest_judges(bank)}
    loo_job: dict[str, Any] | None = None
    if forms_out:
        target = forms_out[0]
        fparams, fmissing = plots.subset_params(pparams, target["item_ids"])
        if len(fparams):
            say(f"honesty: coverage simulation on form {target['name']} ...")
            fpos = [ppos[k] for k in fparams.item_ids]
            # The product's intervals (parameter error included), respondents from the latent distribution.
            cov = simulated_coverage(fparams, {k: v[fpos] for k, v in pse.items()}, cov_rng, n_worlds=n_worlds,
                                     per_world=per_world, level=LEVEL, prior=prior, param_draws=PARAM_DRAWS,
                                     abilities_from="prior")
            honesty.update(form=target["name"], coverage=cov, form_takers=len(target["takers"]))
            if loo:
                chosen = None
                if loo_models is not None:
                    chosen = board["model"].iloc[np.linspace(0, len(board) - 1, min(loo_models, len(board)))
                                                 .round().astype(int)].drop_duplicates().tolist()
                # Refits need no bank: the job is run by ``replay_models`` (at once here, unless deferred).
                loo_job = {"responses": all_resp[["model", "item_id", "score"]], "form_items": target["item_ids"],
                           "irt_model": cal.irt_model, "start": cal.params, "models": chosen}
    else:
        notes.append("no form in scope: the coverage simulation needs a form (give --form or --round)")
    val = honesty["validation"]
    scopes["honesty"] = (("held-out validation: the latest stored adt validate study "
                          f"({val['n_models']} held-out models)" if val is not None else "no stored validation study")
                         + (f"; coverage simulation on form {honesty['form']} (taken by "
                            f"{honesty['form_takers']} of the {len(models)} models; simulated respondents)"
                            if honesty.get("form") else "; no form in scope, so no coverage simulation")
                         + (f"; leave-one-model-out replay of {len(loo_job['models']) if loo_job['models'] else 'every'} "
                            f"model(s) on form {honesty['form']}" if loo_job is not None else ""))
    scopes["diagnostics"] = (f"calibration {cal.calibration_id}: its flags (adt calibration flags); observed "
                             f"proportions from all {all_resp['model'].nunique()} models' answers in the bank")

    provenance = {"bank": str(bank.path), "bank snapshot": bank.snapshot_id(), "scope": scope,
                  "calibration": cal.calibration_id + (" (fitted for this report; no stored calibration)"
                                                       if cal.fitted_here else ""),
                  "irt model": cal.irt_model, "calibration seed": cal.seed,
                  "forms": {f["name"]: f["content_hash"] for f in forms_out},
                  "form seeds": {f["name"]: f["seed"] for f in forms_out},
                  "report seed": seed, "adt version": __version__,
                  "generated": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")}
    title = f"adt report: {scope}"
    report = Report(title, board, rank_probs, slices, forms_out, diagnostics, honesty, provenance, figures, notes,
                    scopes, loo_job, health=health)
    return report if defer_loo else replay_models(report, say=say)


def _latest_validation(bank: Any) -> dict[str, Any] | None:
    """The latest stored ``adt validate`` study without its per-form rows (None when there is none)."""
    from calibration import latest_validation

    found = latest_validation(bank)
    if found is None:
        return None
    return {k: v for k, v in found.items() if k != "forms"}


def _latest_judges(bank: Any) -> dict[str, Any] | None:
    """The latest stored ``adt judge validate`` calibration without its rater model's parameters (None: none)."""
    from calibration import latest_judge_calibration

    found = latest_judge_calibration(bank)
    return None if found is None else {k: v for k, v in found.items() if k != "rater_model"}


def replay_models(report: Report, say: Callable[[str], None] = lambda _m: None) -> Report:
    """Run the report's pending leave-one-model-out replay (one refit per model; needs no bank)."""
    job = report.loo_job
    if job is None:
        return report
    say("honesty: leave-one-model-out replay ...")
    loo = leave_one_model_out(job["responses"], job["form_items"], irt_model=job["irt_model"], start=job["start"],
                              models=job["models"], level=LEVEL,
                              on_model=lambda m: say(f"  refit without {m}"))
    return replace(report, honesty={**report.honesty, "loo": loo}, loo_job=None)


def _items_as_drawn(bank: Any, rec: Mapping[str, Any], notes: list[str]) -> pd.DataFrame:
    """The form's items with tiers and bands as they were when it was drawn (quotas refer to those).

    Forms drawn by ``adt sample`` record the history head of their pool; the pool is rebuilt at that head.
    Other forms are shown with today's tiers and bands, and a note says so.
    """
    ids = list(rec["item_ids"])
    spec = dict(rec["spec"])
    pool_rec = spec.pop("pool", None)
    if isinstance(pool_rec, Mapping):
        try:
            from adt.workflow.forms import PoolSettings, pool_at
            from sampler import FormSpec

            settings = PoolSettings(int(pool_rec["head_n"]), str(pool_rec["head_hash"]),
                                    int(pool_rec["tier_high_runs"]), int(pool_rec["tier_high_publications"]),
                                    pool_rec.get("bands"), int(pool_rec.get("tier_low_runs", 0)))
            pool = pool_at(bank, settings, FormSpec.from_dict(spec, source=f"form {rec['name']} spec"), None)
            got = pool[pool["item_id"].isin(set(ids))]
            if len(got) == len(set(ids)):
                return got
        except (ImportError, InputError, KeyError, ValueError) as exc:
            notes.append(f"form {rec['name']}: its pool could not be rebuilt ({exc}); composition uses today's tiers")
    else:
        notes.append(f"form {rec['name']}: drawn outside `adt sample` (no pool head recorded); composition uses "
                     "today's frequency tiers and difficulty bands")
    return bank.items({"item_id": ids}, include_retired=True)


def _rounds(value: Any) -> list[int]:
    """The rounds a form was published in (``Bank.forms().published_in``: a list, or NA when none)."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return []
    return [int(v) for v in value]


def _forms_of(forms_frame: pd.DataFrame, round_no: int | None, form: str | None,
              takers: Mapping[str, list[str]] | None = None, ran: Mapping[str, list[str]] | None = None) -> list[str]:
    """The forms a report shows: ``--form``'s; the forms published in ``--round``; else (``takers``: the
    models that took each form, ``ran``: those with a run on it; ``form_takers``) the forms some model
    took, those more models ran first, then more takers, then the latest; at most MAX_DEFAULT_FORMS. A
    form no model answered is never the default (issue 12: the latest form, which nobody had taken)."""
    if form is not None:
        if form not in set(forms_frame["name"]):
            raise InputError(f"--form {form}: no such form; forms: {', '.join(forms_frame['name'][:20])}")
        return [form]
    if round_no is not None:
        return [n for n, rounds in zip(forms_frame["name"], forms_frame["published_in"], strict=True)
                if round_no in _rounds(rounds)]
    takers, ran = takers or {}, ran or {}
    taken = [n for n in reversed(forms_frame["name"].tolist()) if takers.get(n)]  # latest first
    return sorted(taken, key=lambda n: (-len(ran.get(n, [])), -len(takers[n])))[:MAX_DEFAULT_FORMS]


def form_takers(form_ids: Mapping[str, Sequence[str]],
                responses: pd.DataFrame) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The models that took each form: a run on the form (``adt run --form``, a round), or answers to at
    least TAKEN_SHARE of its items however they came in (imports, other forms); and those with a run."""
    by_form = (responses.dropna(subset=["form_name"]).groupby("form_name")["model"].unique()
               if "form_name" in responses.columns else pd.Series(dtype=object))
    answered = responses[["model", "item_id"]].drop_duplicates()
    out: dict[str, list[str]] = {}
    ran_on: dict[str, list[str]] = {}
    for name, item_ids in form_ids.items():
        ids = pd.Index(list(item_ids)).unique()
        counts = answered[answered["item_id"].isin(ids)].groupby("model").size()
        enough = set(counts.index[counts >= TAKEN_SHARE * max(len(ids), 1)])
        ran = set(map(str, by_form.get(name, [])))
        out[name] = sorted(set(map(str, enough)) | ran)
        ran_on[name] = sorted(ran)
    return out, ran_on


def names_list(names: Sequence[str], limit: int = 5) -> str:
    """``a, b, c, d, e and 7 more``: the first ``limit`` names (a long list made a table row very tall)."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _slice_scores(bank: Any, pm: Any, mean_scores: pd.Series, models: list[str], bank_ids: list[str],
                  by: Sequence[str] | None, notes: list[str], pos: dict[str, int],
                  left_out: dict[str, str] | None = None,
                  shared: Mapping[str, dict[str, Any]] | None = None) -> dict[str, pd.DataFrame]:
    """Predicted accuracy on each value's items of the bank per model (``adt estimate --by``'s numbers and
    refusals); ``by`` None: the SLICE_KEYS the bank's items carry. A value with fewer than
    MIN_SUBSLICE_ANSWERED items has no sub-score for anyone; of the rest, the MAX_SLICE_VALUES values with
    the most items are shown (a key such as a topic can have thousands), and a note says how many not."""
    from adt.workflow.calibrate import MIN_SUBSLICE_ANSWERED, subscores, subslices

    out = {}
    scores_of = {m: mean_scores.loc[m] for m in models}
    for key in list(by) if by else SLICE_KEYS:
        try:
            groups = subslices(bank, bank_ids, key)
        except InputError:
            if by:
                raise
            notes.append(f"per-slice scores: no item carries a {key!r} tag")
            continue
        small = [v for v, ids in groups.items() if len(ids) < MIN_SUBSLICE_ANSWERED]
        big = sorted((v for v in groups if len(groups[v]) >= MIN_SUBSLICE_ANSWERED),
                     key=lambda v: (-len(groups[v]), v))
        shown = set(big[:MAX_SLICE_VALUES])
        left = []
        if small:
            left.append(f"{len(small):,} value(s) with fewer than {MIN_SUBSLICE_ANSWERED} items (no sub-score: it "
                        f"needs {MIN_SUBSLICE_ANSWERED} answered items), e.g. {names_list(small, 3)}")
        if len(big) > MAX_SLICE_VALUES:
            left.append(f"{len(big) - MAX_SLICE_VALUES:,} more value(s) with fewer items than the "
                        f"{MAX_SLICE_VALUES} shown (smallest shown: {len(groups[big[MAX_SLICE_VALUES - 1]])} items); "
                        f"adt estimate --by {key} gives every value")
        if left:
            said = f"{len(groups):,} values; not shown: " + "; ".join(left)
            notes.append(f"per-slice scores by {key}: {said}")
            if left_out is not None:
                left_out[key] = said
        groups = {v: ids for v, ids in groups.items() if v in shown}
        per_model = [subscores(pm, scores_of[m], groups, level=LEVEL, pos=pos, shared=None if shared is None
                               else shared[m]) for m in models]  # groups' order
        cols: dict[str, list[str]] = {}
        for k, (value, ids) in enumerate(groups.items()):
            rows = [model_rows[k] for model_rows in per_model]
            if all(r["refused"] for r in rows):
                continue
            cols[f"{value} ({len(ids)} items)"] = [
                "-" if r["refused"] else f"{r['pred_acc']:.2f} [{r['pred_lo']:.2f}, {r['pred_hi']:.2f}]"
                + ("*" if r["extrapolated"] else "") + ("" if r["covers_slice"] else "\u2020") for r in rows]
        if not cols:
            notes.append(f"per-slice scores by {key}: no value with {MIN_SUBSLICE_ANSWERED}+ answered items")
            continue
        out[key] = pd.DataFrame(cols, index=pd.Index(models, name="model"))
    return out


def _diagnostics(cal: CalibrationView, responses: pd.DataFrame, params: ItemParams, pos: dict[str, int], bank: Any,
                 figures: dict[str, str], notes: list[str], form_items: Sequence[str] = ()) -> dict[str, Any]:
    from adt.workflow.calibrate import calibration_flags, item_flags
    from calibration import ResponseSet, abilities_for, mantel_haenszel_drift, parameter_drift

    out: dict[str, Any] = {}
    rs = ResponseSet.from_frame(responses[responses["item_id"].isin(pos)], "model", "item_id", "score")
    theta = abilities_for(rs, params).theta
    drift = None
    if cal.previous is not None:
        # Only items estimated in both calibrations can drift; anchors held fixed cannot move by design.
        prev_ok = {k for k, ok in zip(cal.previous.params.item_ids, cal.previous.calibrated, strict=True) if ok}
        both = np.array([ok and not fx and k in prev_ok for k, ok, fx in
                         zip(cal.params.item_ids, cal.calibrated, cal.fixed_mask(), strict=True)])
        n_fixed = int(cal.fixed_mask().sum())
        if both.any():
            idx = np.flatnonzero(both)
            try:
                drift = parameter_drift(cal.previous.params, cal.previous.se, cal.params.subset(idx),
                                        {k: np.asarray(v)[idx] for k, v in cal.se.items()})
                out["drift"] = drift.reset_index()
            except InputError as exc:
                notes.append(f"parameter drift: {exc}")
        else:
            notes.append(f"parameter drift: no item was estimated in both calibrations ({n_fixed} anchors were held "
                         "fixed at their earlier values by the linking, so they cannot drift)")
        out["drift_anchors"] = n_fixed
    else:
        notes.append("parameter drift: no earlier calibration to compare with")
    # The flags are adt calibration flags' (one function, one input: the calibration's own responses and
    # abilities); a calibration fitted here goes through the same rule with its own responses and abilities.
    flag_report = None
    if cal.fitted_here and cal.abilities is not None:
        flags, _ = item_flags(bank, cal.params, cal.item_status, responses, cal.abilities)
    else:
        flag_report = calibration_flags(bank, cal.calibration_id)
        flags = flag_report.flags
    out["flags"] = flags
    out["n_items"] = len(cal.params)
    out["n_calibrated"] = int(cal.calibrated.sum())
    # Items of the reported forms first, wrong keys first.
    serious = flags[~flags["flag"].isin(["unanswered", "all_correct", "all_wrong"])]
    worst = serious.assign(sev=serious["flag"].map({"wrong_key": 0, "parameter_moved": 1,
                                                    "exposure_drift": 2}).fillna(3),
                           on_form=~serious["item_id"].isin(set(form_items)))
    pick = [k for k in worst.sort_values(["on_form", "sev"], kind="stable")["item_id"].drop_duplicates()
            if k in pos][:12]
    if pick:
        sub, _ = plots.subset_params(params, pick)
        theta_of = dict(zip(rs.model_ids, theta, strict=True))
        r = responses[responses["item_id"].isin(set(pick))]
        obs = plots.observed_proportions(r["model"].map(theta_of).to_numpy(float), r["item_id"].tolist(),
                                         r["score"].to_numpy(float), bins=5)
        # Wilson bounds can miss p by rounding at 0 and 1; matplotlib refuses negative error bars.
        obs["lo"], obs["hi"] = np.minimum(obs["lo"], obs["p"]), np.maximum(obs["hi"], obs["p"])
        reasons = flags.groupby("item_id")["flag"].apply(lambda f: ", ".join(f)).to_dict()
        figures["icc"] = _uri(plots.icc_figure(sub, observed=obs, labels=reasons, title="Flagged items"))
    # Contamination: a response to an item after the round it was first published in (for a stored
    # calibration: the same Mantel-Haenszel test as its exposure_drift flags).
    if flag_report is not None:
        if flag_report.drift is not None:
            out["contamination_items"] = flag_report.drift.items
            out["contamination_models"] = flag_report.drift.models
        else:
            notes.append(f"contamination flags: {flag_report.drift_note}")
        return out
    published = _first_publication(bank)
    if published:
        r = responses.assign(first_pub=responses["item_id"].map(published))
        r["exposed"] = r["round"].notna() & r["first_pub"].notna() & (r["round"] > r["first_pub"])
        try:
            rep = mantel_haenszel_drift(r.rename(columns={"item_id": "item"}),
                                        theta=pd.Series(theta, index=list(rs.model_ids)))
            out["contamination_items"] = rep.items
            out["contamination_models"] = rep.models
        except InputError as exc:
            notes.append(f"contamination flags: {exc}")
    else:
        notes.append("contamination flags: no published items (nothing can have leaked)")
    return out


def _first_publication(bank: Any) -> dict[str, int]:
    forms = bank.forms()
    first: dict[str, int] = {}
    for name, rounds in zip(forms["name"], forms["published_in"], strict=True):
        rounds = _rounds(rounds)
        if not rounds:
            continue
        r0 = min(rounds)
        for item in bank.form(name)["item_ids"]:
            first[item] = min(first.get(item, r0), r0)
    return first


def _rank_figure(rank_probs: pd.DataFrame) -> Any:
    fig = plots._figure(7.0, 1.2 + 0.3 * len(rank_probs))
    ax = fig.add_subplot()
    im = ax.imshow(rank_probs.to_numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_yticks(range(len(rank_probs)), rank_probs.index.tolist())
    # At most about 10 rank labels: 20 one-step labels ran together ('16171819') at this width.
    ticks = list(range(0, rank_probs.shape[1], max(1, int(np.ceil(rank_probs.shape[1] / 10)))))
    ax.set_xticks(ticks, [str(t + 1) for t in ticks])
    ax.set_xlabel("rank")
    ax.set_title("Probability of each rank (from the ability posteriors)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------------------------
# HTML
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#1d2330;
background:#fafbfc;line-height:1.4}
h1{color:#1f4e79;border-bottom:3px solid #1f4e79;padding-bottom:6px}
h2{color:#1f4e79;margin-top:34px;border-bottom:1px solid #c9d3de}
h3{color:#33475b}
table{border-collapse:collapse;margin:10px 0;font-size:13px;background:#fff}
th,td{border:1px solid #d5dde6;padding:4px 8px;text-align:right}
th{background:#e8eef5;color:#1d2330}
td.model,td.text{text-align:left}
tr.tier-odd td{background:#f3f7fb}
td.interval{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:nowrap}
td.nosep{color:#9a4b00;text-align:left;font-size:12px}
.card{background:#fff;border:1px solid #d5dde6;border-radius:6px;padding:12px 16px;margin:12px 0}
.big{font-size:28px;font-weight:600;color:#1f4e79}
.warn{color:#9a4b00}
.flag{font-size:11px;margin-left:4px;padding:0 4px;border-radius:3px;background:#fdecea;color:#9a4b00}
.ok{color:#2e7d32}
.bad{color:#b00020}
img{max-width:100%;border:1px solid #e2e8ee;background:#fff}
.note{color:#5a6675;font-size:13px}
.scope{color:#33475b;font-size:13px;background:#eef3f8;border-left:3px solid #1f4e79;padding:4px 8px}
.wide{overflow-x:auto}
code{font-size:12px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(frame: pd.DataFrame, *, testid: str | None = None, index: bool = False, fmt: str = "{:.3f}",
           max_rows: int = 200) -> str:
    df = frame.reset_index() if index else frame
    shown = df.head(max_rows)
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    body = []
    for _, row in shown.iterrows():
        cells = []
        for v in row:
            if isinstance(v, (float, np.floating)):
                cells.append(f"<td>{'' if np.isnan(v) else fmt.format(v)}</td>")
            elif isinstance(v, (int, np.integer, bool, np.bool_)):
                cells.append(f"<td>{_e(v)}</td>")
            else:
                cells.append(f'<td class="text">{_e(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f'<p class="note">{len(df) - max_rows} more rows not shown</p>' if len(df) > max_rows else ""
    tid = f' data-testid="{_e(testid)}"' if testid else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _img(report: Report, name: str, alt: str) -> str:
    uri = report.figures.get(name)
    return f'<img data-testid="fig-{name}" alt="{_e(alt)}" src="{uri}">' if uri else ""


def _flags(r: Any) -> str:
    """Marks after a predicted accuracy: extrapolated, a poor person fit, a slice only partly predicted."""
    marks = []
    if getattr(r, "extrapolated", False):
        marks.append('<span class="flag" data-testid="extrapolated" title="ability outside every calibration '
                     'model\'s">extrapolated</span>')
    z = getattr(r, "person_fit_z", float("nan"))
    if np.isfinite(z) and abs(z) >= 2:
        marks.append(f'<span class="flag" data-testid="person-misfit" title="person fit z">misfit z={z:+.1f}</span>')
    n_pred, n_slice = getattr(r, "n_predicted", 0), getattr(r, "n_slice_items", 0)
    if n_pred and n_pred < n_slice:
        marks.append(f'<span class="flag" data-testid="partial-slice">of {n_pred:,} of {n_slice:,} items</span>')
    return (" " + " ".join(marks)) if marks else ""


def _nosep_cell(names: Sequence[str]) -> str:
    """The first NOT_SEPARABLE_SHOWN names 'and N more' (35 names made a row very tall); the full list in
    the cell's title (the report's data and ``adt report --json`` hold it too)."""
    if not len(names):
        return '<td class="nosep" data-testid="not-separable" data-n="0">separable from all</td>'
    return (f'<td class="nosep" data-testid="not-separable" data-n="{len(names)}" title="{_e(", ".join(names))}">'
            f"{_e(names_list(names, NOT_SEPARABLE_SHOWN))}</td>")


def _leaderboard_html(board: pd.DataFrame) -> str:
    head = ("<tr><th>rank</th><th>model</th><th>ability</th><th>SE</th><th>95% interval</th>"
            "<th>predicted bank accuracy</th><th>95% predictive interval</th><th>rank 95% interval</th>"
            "<th>P(best)</th><th>items</th><th>raw accuracy</th><th>not separable from</th></tr>")
    # Shading bands: a band starts at a model and holds the models whose intervals reach its lower bound.
    rows, tier, top_lo = [], 0, None
    for r in board.itertuples():
        if top_lo is None or r.hi < top_lo:
            tier, top_lo = tier + (top_lo is not None), r.lo
        rows.append(
            f'<tr data-testid="leaderboard-row" data-model="{_e(r.model)}" class="tier-{"odd" if tier % 2 else "even"}">'
            f"<td>{r.rank}</td><td class=\"model\">{_e(r.model)}</td>"
            f'<td data-testid="theta">{r.theta:+.3f}</td><td data-testid="se">{r.se:.3f}</td>'
            f'<td class="interval" data-testid="ability-interval" data-lo="{r.lo:.4f}" data-hi="{r.hi:.4f}">'
            f"[{r.lo:+.2f}, {r.hi:+.2f}]</td>"
            f'<td data-testid="pred-acc">{r.pred_acc:.1%}{_flags(r)}</td>'
            f'<td class="interval" data-testid="pred-interval" data-lo="{r.pred_lo:.4f}" data-hi="{r.pred_hi:.4f}">'
            f"[{r.pred_lo:.1%}, {r.pred_hi:.1%}]</td>"
            f'<td class="interval" data-testid="rank-interval">{r.rank_lo}&ndash;{r.rank_hi}</td>'
            f"<td>{r.p_best:.2f}</td><td>{r.n_items}</td><td>{r.raw_accuracy:.1%}</td>"
            f"{_nosep_cell(r.not_separable_list)}</tr>")
    return (f'<table data-testid="leaderboard" id="leaderboard"><thead>{head}</thead><tbody>{"".join(rows)}'
            "</tbody></table>")


def _scope(report: Report, section: str) -> str:
    """The section's scope line: which form(s) and which models it uses."""
    said = report.scopes.get(section)
    return f'<p class="scope" data-testid="scope-{_e(section)}"><b>Scope:</b> {_e(said)}</p>' if said else ""


def render_html(report: Report) -> str:
    """The report as one HTML document: no scripts, no external resources."""
    parts = [f"<h1>{_e(report.title)}</h1>"]
    b = report.leaderboard
    parts.append("<h2 id=\"leaderboard-section\">Leaderboard</h2>" + _scope(report, "leaderboard")
                 + f"<p class=\"note\">{len(b)} models. Ability on the calibration's scale (EAP under its latent distribution) with its "
                 "SE and 95% interval; predicted accuracy on every calibrated bank item (observed answers plus the "
                 "predictive distribution of the rest) with its 95% predictive interval; rank interval: central 95% "
                 "of ranks when abilities are drawn from their posteriors. Models whose 95% ability intervals "
                 "overlap are not separable; shading changes where a clear gap opens.</p>")
    parts.append(_leaderboard_html(b))
    parts.append(_img(report, "forest", "forest plot of abilities"))
    parts.append(_img(report, "rank_probs", "rank probabilities"))

    parts.append("<h2>Per-slice scores</h2><p>Predicted accuracy on each value's items of the bank with its 95% "
                 "interval, as <code>adt estimate --by</code> gives it; - : too few answered items for a sub-score; "
                 "* : extrapolated; \u2020 : some of the value's items cannot be predicted. Keys: <code>--by KEY</code> "
                 f"(any tag key; default {', '.join(SLICE_KEYS)} where the items carry them).</p>"
                 + _scope(report, "slices"))
    if report.slices:
        for key, frame in report.slices.items():
            parts.append(f"<h3>by {_e(key)}</h3>" + _scope(report, f"slice:{key}")
                         + '<div class="wide">' + _table(frame, index=True, testid=f"slice-{key}") + "</div>")
    else:
        parts.append('<p class="note">The data holds no slice with enough items.</p>')

    parts.append("<h2>Forms</h2>" + _scope(report, "forms"))
    parts.append(_img(report, "information", "test information and expected score"))
    n_models = len(report.leaderboard)
    for f in report.forms:
        pub = ", ".join(map(str, f["published_in"])) or "not published"
        takers = f.get("takers", [])
        ran = f.get("ran", [])
        how = ("each ran it as a form" if len(ran) == len(takers) else
               f"{len(ran)} ran it as a form, {len(takers) - len(ran)} answered at least {TAKEN_SHARE:.0%} of its "
               "items elsewhere")
        taken = (f"{len(takers)} of the {n_models} models: {_e(names_list(takers, 8))} ({how})" if takers else
                 f"none of the {n_models} models (no model answered it)")
        parts.append(f"<h3>form {_e(f['name'])}</h3><p>{f['n_items']} items, strategy {_e(f['strategy'])}, seed "
                     f"{_e(f['seed'])}, created {_e(f.get('created_at', ''))}, published in round(s) {_e(pub)}, "
                     f"{f['n_uncalibrated']} items uncalibrated"
                     + (f", {f['n_pretest']} pretest items (unscored; composition is of the scored items)"
                        if f.get("n_pretest") else "")
                     + (f", {f['n_stand_in']} of the scored items are uncalibrated stand-ins (young bank)"
                        if f.get("n_stand_in") else "") + f"; hash <code>{_e(f['content_hash'])}</code></p>"
                     f'<p class="scope" data-testid="form-takers" data-n="{len(takers)}"><b>Taken by</b> {taken}</p>')
        comp = f["composition"]
        bad = int((~comp["meets"]).sum())
        parts.append(f"<p class=\"{'ok' if bad == 0 else 'warn'}\">composition against quotas: "
                     f"{'all quotas met' if bad == 0 else f'{bad} quota cells missed'}</p>")
        parts.append(_table(comp, testid=f"composition-{f['name']}", fmt="{:.2f}"))
        if len(f["overlap"]):
            parts.append("<p>overlap with earlier forms</p>" + _table(f["overlap"], testid=f"overlap-{f['name']}"))
        else:
            parts.append('<p class="note">no earlier forms</p>')
    parts.append("<h3>bank exposure</h3>" + _img(report, "exposure", "exposure histogram"))
    if report.health is not None:
        parts.append(_health_html(report.health, report))

    d = report.diagnostics
    parts.append("<h2>Calibration diagnostics</h2>" + _scope(report, "diagnostics"))
    flags = d.get("flags", pd.DataFrame())
    counts = flags["flag"].value_counts() if len(flags) else pd.Series(dtype=int)
    parts.append(f"<p>{d.get('n_calibrated', 0)} of {d.get('n_items', 0)} items calibrated. Flags: "
                 + (", ".join(f"{_e(k)} {v}" for k, v in counts.items()) or "none") + "</p>")
    parts.append(_img(report, "icc", "item characteristic curves of flagged items"))
    if len(flags):
        shown = flags[~flags["flag"].isin(["unanswered", "all_correct", "all_wrong"])]
        parts.append('<p class="note">the flags of <code>adt calibration flags</code> (same rule, same counts); a '
                     "wrong key on evidence: the models that got the item right are less able than those that got "
                     "it wrong (one-sided exact rank test, Benjamini-Hochberg adjusted, p &lt; 0.05; keyed items "
                     "with at least 10 models, 3 right and 3 wrong); fit flags on items with at least 10 "
                     "responses</p>")
        if len(shown):
            table = shown.assign(source_ids=[" ".join(a) for a in shown["aliases"]])
            parts.append(_table(table[["item_id", "source_ids", "flag", "value", "threshold", "reason"]],
                                testid="flags", max_rows=50))
    if "drift_anchors" in d:
        parts.append("<h3>parameter drift since the last calibration</h3>")
        if "drift" in d:
            moved = d["drift"][d["drift"]["moved"]]
            parts.append(f"<p>{len(moved)} of {len(d['drift'])} items estimated in both calibrations moved beyond "
                         f"their SEs (|z| &gt; 3); {d['drift_anchors']} anchors were held fixed.</p>"
                         + _table(moved, testid="drift", max_rows=50))
        else:
            parts.append(f"<p>No item was estimated in both calibrations: {d['drift_anchors']} anchors were held "
                         "fixed at their earlier values by the linking.</p>")
    if "contamination_items" in d:
        ci, cm = d["contamination_items"], d["contamination_models"]
        flagged = ci[ci["flagged"]] if "flagged" in ci.columns else ci
        parts.append(f"<h3>contamination flags</h3><p>{len(flagged)} published items answered better after "
                     "publication than ability predicts (Mantel-Haenszel, BH-adjusted)</p>"
                     + _table(flagged, testid="contamination-items", max_rows=50)
                     + _table(cm, testid="contamination-models", max_rows=50))

    parts.append(_honesty_html(report.honesty, _scope(report, "honesty")))
    parts.append("<h2>Provenance</h2>" + _provenance_html(report.provenance))
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(report.title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def _health_html(h: Any, report: Report) -> str:
    """The bank-health section: the numbers of `adt bank health` (``adt.workflow.health``)."""
    r = h.rates
    out = ['<h2 id="health">Bank health</h2><p class="note">Items per lifecycle stage and frequency tier, '
           "operational items per slice (fresh: the low tier), and how many more rounds the round spec can be "
           f"drawn before a slice runs out at today's rates ({r.n_rounds} round(s): {r.created:g} new, "
           f"{r.promoted:g} promoted, {r.retired:g} retired per round). The projection is a simple flow model; "
           "its assumptions are in adt/workflow/health.py.</p>",
           _table(h.stages, index=True, testid="health-stages")]
    if len(h.slices):
        out.append(_table(h.slices, testid="health-slices"))
    if h.demand is not None:
        left = h.rounds_left.assign(rounds_left=[f"more than {int(h.projection['round'].max()) - h.round_no}"
                                                 if pd.isna(v) else str(int(v))
                                                 for v in h.rounds_left["rounds_left"]])
        out.append(f"<p>demand ({_e(h.demand.source)}): {h.demand.operational} operational and {h.demand.pretest} "
                   "pretest items a round</p>" + _table(left, testid="health-rounds-left", fmt="{:.2f}"))
        out.append(_img(report, "health", "projected supply per slice against demand"))
    out += [f'<p class="note">{_e(n)}</p>' for n in h.notes]
    return "".join(out)


def _honesty_html(h: dict[str, Any], scope: str = "") -> str:
    out = ['<h2 id="honesty">Honesty: do the 95% intervals hold 95%?</h2>' + scope
           + '<div class="card" data-testid="honesty">']
    out.append(_validation_html(h.get("validation")))
    if h.get("judges") is not None:
        out.append(_judges_html(h["judges"]))
    cov: Coverage | None = h.get("coverage")
    if cov is None:
        out.append('<p class="note">No form in scope: no coverage simulation.</p></div>')
        return "".join(out)
    cls = "ok" if abs(cov.coverage - LEVEL) <= 0.03 else "warn"
    spread = ("drawn from the calibration's latent distribution" if cov.abilities_from == "prior" else
              f"spread evenly over abilities {cov.theta_range[0]:+.0f} to {cov.theta_range[1]:+.0f}")
    out.append(f"<p>Form <b>{_e(h['form'])}</b> ({cov.n_items} calibrated items). {cov.n:,} simulated respondents "
               f"{spread}, in {cov.n_worlds} worlds whose item parameters are drawn from the calibration's standard "
               "errors; each is estimated with the point parameters and given the leaderboard's interval, which "
               f"holds the parameters' error ({cov.param_draws} draws).</p>")
    out.append(f'<p>actual coverage of the nominal 95% intervals: <span class="big {cls}" data-testid="coverage">'
               f"{cov.coverage:.1%}</span> (Monte Carlo SE {cov.mc_se:.1%}; intervals that took the parameters as "
               f"exact would cover {cov.coverage_exact_intervals:.1%}; {cov.coverage_point_params:.1%} if the "
               f"parameters were exact; mean interval width {cov.mean_width:.2f})</p>")
    out.append(_table(cov.by_band, testid="coverage-bands"))
    loo = h.get("loo")
    if loo is not None and len(loo):
        c = float(loo["covered"].mean())
        mae = float((loo["predicted"] - loo["actual"]).abs().mean())
        raw = float((loo["raw_form_accuracy"] - loo["actual"]).abs().mean())
        out.append(f"<h3>leave-one-model-out replay</h3><p>{len(loo)} models, each left out of a refit, estimated from "
                   "its answers on this form alone, predicted on every calibrated item it answered: "
                   f'<span class="big" data-testid="loo-coverage">{c:.0%}</span> of the 95% predictive intervals '
                   f"hold its actual accuracy; mean absolute error {mae:.1%} (raw form accuracy: {raw:.1%}).</p>")
        out.append(_table(loo, testid="loo"))
    elif loo is not None:
        out.append('<p class="note">leave-one-model-out: no model answered enough items outside this form.</p>')
    out.append("</div>")
    return "".join(out)


def _validation_html(v: dict[str, Any] | None) -> str:
    if v is None:
        return ('<p class="note" data-testid="validation-missing">No validation study stored: run '
                '<code>adt validate</code> to measure, on this bank\'s own models, how close predicted accuracy '
                "comes to accuracy on every item and how often the 95% intervals hold it.</p>")
    cal = v.get("calibration_settings") or {}
    table = v["summary"].copy()
    keep = [c for c in SUMMARY_COLUMNS if c in table.columns]
    return (f'<h3>held-out validation (<code>adt validate</code>)</h3><p data-testid="validation">Study '
            f"<b>{_e(v['validation_id'])}</b> of {_e(str(v['created_at'])[:19])}: {v['n_models']} held-out models, "
            f"{v['n_forms']:,} forms, each model left out of a refit ({_e(cal.get('irt', ''))}) and estimated from its "
            "form answers alone; predicted accuracy against its accuracy on every item it answered. Coverage "
            "intervals resample models.</p>" + _table(table[keep], testid="validation-table"))


JUDGE_REPORT_COLUMNS = ("rater", "n_gold", "acc", "acc_lo", "acc_hi", "acc_ab", "acc_ba", "kappa", "consistency",
                        "first_pref", "longer_pref", "gold_longer", "n_unparseable")


def _judges_html(j: dict[str, Any]) -> str:
    """The latest judge calibration (``adt judge validate``): each judge against gold/human labels, the panel."""
    p = j.get("panel") or {}
    panel = (f" The panel's rater model, out-of-fold over {p['n_out_of_fold']} cases: accuracy {p['acc']:.3f} "
             f"(majority vote {p['majority_acc']:.3f}, best single judge {p['best_judge_acc']:.3f}); of the cases it "
             f"calls at about 90% confidence, {p['at_90']['accuracy']:.0%} right ({p['at_90']['n']} cases)."
             if "acc" in p else "")
    stats = j["stats"]
    keep = [c for c in JUDGE_REPORT_COLUMNS if c in stats.columns]
    return (f'<h3>judges against gold/human labels (<code>adt judge validate</code>)</h3><p data-testid="judges">'
            f"Judge calibration <b>{_e(j['judge_calibration_id'])}</b> of {_e(str(j['created_at'])[:19])}: "
            f"{j['n_gold']} labelled cases ({j['n_classes']} classes). Accuracy credits a pair whose two orders "
            "disagree half; first_pref: share of decisive calls picking the answer shown first; longer_pref against "
            f"gold_longer: how often the judge and the gold pick the longer answer.{_e(panel)}</p>"
            + _table(stats[keep], testid="judges-table"))


def _provenance_html(p: dict[str, Any]) -> str:
    rows = "".join(f'<tr><th>{_e(k)}</th><td class="text">{_e(json.dumps(v) if isinstance(v, dict) else v)}</td></tr>'
                   for k, v in p.items())
    return f'<table data-testid="provenance">{rows}</table>'


def check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out {out}: use a .html file name")
    return out


def save_report(report: Report, out: str | Path) -> Path:
    """Write the report as HTML (runs a pending replay first)."""
    out = check_out(out)
    report = replay_models(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(report), encoding="utf-8")
    return out


def write_report(bank: Any, out: str | Path, **kwargs: Any) -> Report:
    """Build the report from ``bank`` and write it to ``out`` (HTML)."""
    check_out(out)
    report = build_report(bank, **kwargs)
    save_report(report, out)
    return report
