"""Calibration workflow: bank responses -> fit (optionally linked) -> stored calibration; abilities,
predicted slice scores, diffs and flags from stored calibrations.

The maths lives in ``calibration`` (public API only); this module reads the bank, builds the inputs,
and shapes the outputs the CLI and the round workflow print.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.stats import norm

from adtbase import itemtypes, lifecycle
from adtbase.errors import CalibrationError, InputError
from adtbase.registry import did_you_mean
from calibration import (
    DEFAULT_FITTER,
    DEFAULT_ONLINE_METHOD,
    KEPT_AT_PRIOR,
    ONLINE_METHODS,
    STATUS_REASONS,
    CalibrationConvergenceWarning,
    CalibrationResult,
    DriftReport,
    FitSettings,
    ItemParams,
    PredictiveModel,
    Prior,
    ResponseSet,
    StoredCalibration,
    abilities_for,
    adjust_pvalues,
    anchoring_fitters,
    build_predictive,
    calibrate_online,
    compare,
    compare_many,
    estimate_abilities,
    estimate_ability,
    evidence,
    exact_view,
    fit_content_prior,
    fixed_from_calibration,
    flag_items,
    four_pl_view,
    get_fitter,
    graded_response_set,
    irt_choices,
    item_fit,
    item_status,
    item_statuses,
    join_predictive,
    judged_responses,
    link,
    load_calibration,
    mantel_haenszel_drift,
    parameter_drift,
    predict_evidence,
    previous_calibration_id,
    resolve_calibration_id,
    save_calibration,
    transform_params,
    transform_se,
    with_content_prior,
)

LINK_CHOICES = ("fixed", "stocking_lord")
_Outcome = TypeVar("_Outcome")
GUESSING_CHOICES = ("auto", "estimate", "choices")
# Item types whose answers cannot be guessed: an exact-match number has no lower asymptote.
DEFAULT_BOOT = 200


@dataclass(frozen=True)
class CalibrateOptions:
    """What ``adt calibrate`` was asked for."""

    irt: str = "2pl"
    method: str = DEFAULT_FITTER             # a registered fitter (calibration.fitters)
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)
    rounds: tuple[int, ...] = ()             # only runs of these rounds (default: every run)
    exclude_models: tuple[str, ...] = ()     # leave these models' responses out (held-out validation)
    models: tuple[str, ...] = ()             # only these models' responses (default: every model)
    latent: str = "normal"
    link: str | None = None                  # fixed | stocking_lord
    anchor_calibration: str | None = None    # default: the latest calibration
    seed: int = 0
    guessing: str = "auto"                   # 3PL/4PL lower asymptote: auto | estimate | choices (1/k)
    holdout_frac: float = 0.2                # --irt auto: share of responses held out
    epochs: int = 2000                       # fitters that run a fixed number of steps (py-irt)
    n_boot: int = DEFAULT_BOOT               # Stocking-Lord bootstrap replicates
    max_iter: int = 2000
    content_prior: bool = True               # fit and store content priors for the items it does not calibrate


@dataclass(frozen=True)
class CalibrationOutcome:
    calibration_id: str
    result: CalibrationResult
    status_counts: dict[str, int]
    n_runs: int
    n_dropped_responses: int
    snapshot_id: str
    seconds: float
    selection: pd.DataFrame | None = None
    linking: dict[str, Any] | None = None
    content_prior: ContentPriorFit | None = None

    def summary_line(self) -> str:
        r = self.result
        fitter = get_fitter(r.method)
        conv = (("converged" if r.converged else "NOT CONVERGED") if fitter.checks_convergence
                else f"{fitter.label} {fitter.steps}")
        kept = sum(n for s, n in self.status_counts.items() if s in KEPT_AT_PRIOR)
        link = ""
        if self.linking:
            lk = self.linking
            link = (f", {lk['method']} link A = {lk['A']:.3f} +/- {lk['se_A']:.3f}, "
                    f"B = {lk['B']:.3f} +/- {lk['se_B']:.3f}")
        return (f"{self.calibration_id} {r.method} {r.model} ({conv}, {r.n_iter} steps), "
                f"{self.status_counts.get('calibrated', 0)} calibrated, {self.status_counts.get('fixed', 0)} anchors, "
                f"{kept} kept at prior, loglik {r.loglik:.1f}{link}")

    def summary(self) -> dict[str, Any]:
        r = self.result
        return {
            "calibration_id": self.calibration_id, "method": r.method, "irt_model": r.model,
            "converged": bool(r.converged), "n_iter": int(r.n_iter), "loglik": r.loglik, "aic": r.aic, "bic": r.bic,
            "n_params": r.n_params, "n_models": len(r.model_ids), "n_items": len(r.params), "n_obs": r.n_obs,
            "n_runs": self.n_runs, "n_dropped_responses": self.n_dropped_responses,
            "items": {s: {"n": n, "reason": STATUS_REASONS.get(s, "")} for s, n in self.status_counts.items()},
            "latent": r.settings.get("latent"), "latent_mean": _latent_moments(r)[0], "latent_sd": _latent_moments(r)[1],
            "selection": None if self.selection is None else self.selection.to_dict("records"),
            "linking": self.linking, "snapshot_id": self.snapshot_id, "seconds": round(self.seconds, 3),
            "content_prior": None if self.content_prior is None else self.content_prior.summary(),
        }


def _latent_moments(r: Any) -> tuple[float, float]:
    x, w = np.asarray(r.quad_points, float), np.asarray(r.quad_weights, float)
    if x.size < 2 or not w.sum() > 0:
        return float("nan"), float("nan")
    w = w / w.sum()
    m = float(w @ x)
    return m, float(math.sqrt(max(float(w @ (x - m) ** 2), 0.0)))


# ---------------------------------------------------------------------------------------------- responses
def read_responses(bank: Any, filters: Mapping[str, Sequence[str]] | None = None,
                   rounds: Sequence[int] = (), *, exclude_models: Sequence[str] = (),
                   models: Sequence[str] = ()) -> tuple[ResponseSet, pd.DataFrame, int]:
    """The bank's responses to the (non-retired) items of ``filters`` as a ResponseSet (model = the run's
    model; a model answering one item in several runs gets the mean score), the runs used and the number of
    responses left out because their item is retired. Every item of the slice is in the set, answered or not.
    ``models`` keeps only those models' responses, ``exclude_models`` leaves those out; a name that has no
    responses in the bank is an error (a typo must not silently calibrate on everyone)."""
    universe = [str(i) for i in bank.item_ids(filters or None)]
    if not universe:
        raise InputError("no items match the filters" if filters else "the bank holds no items")
    frame = bank.responses(filters or None)
    if rounds:
        frame = frame[pd.to_numeric(frame["round"], errors="coerce").isin([int(r) for r in rounds])]
    if models or exclude_models:
        known = set(frame["model"].unique())
        unknown = sorted({str(m) for m in (*models, *exclude_models)} - known)
        if unknown:
            raise InputError(f"model(s) with no responses here: {', '.join(unknown)}")
        if models:
            frame = frame[frame["model"].isin(list(models))]
        frame = frame[~frame["model"].isin(list(exclude_models))]
    keep = frame["item_id"].isin(pd.Index(universe)).to_numpy()
    dropped = int((~keep).sum())
    frame = frame.loc[keep]
    if frame.empty:
        raise CalibrationError("no responses to calibrate on" + (" for these filters" if filters else "")
                               + (f" in rounds {', '.join(map(str, rounds))}" if rounds else "")
                               + "; import or run some first")
    runs = frame.groupby("run_id").size().rename("n_responses").reset_index()
    rs = ResponseSet.from_frame(frame.reset_index(drop=True), "model", "item_id", "score", item_ids=universe)
    return rs, runs, dropped


def _n_choices(bank: Any, item_ids: Sequence[str]) -> np.ndarray:
    items = bank.items({"item_id": list(item_ids)}, with_tags=False)
    k = pd.Series(pd.to_numeric(items["n_choices"], errors="coerce").to_numpy(), index=items["item_id"])
    return k.reindex(list(item_ids)).fillna(0).to_numpy(dtype=float)


# ---------------------------------------------------------------------------------------------- calibrate
def calibrate(bank: Any, opts: CalibrateOptions | None = None, *, on_wait: Any = None, wait_s: float | None = None,
              **options: Any) -> CalibrationOutcome:
    """Fit the bank's responses, link them if asked, store the calibration and push difficulties.

    ``bank``: an open Bank, or a bank path. With a path the bank is held only while the responses are read
    and while the calibration is written, not during the fit (other commands can use it meanwhile); the
    stored snapshot id is the one the responses were read at. Options: a CalibrateOptions, or its fields
    as keywords (``irt="2pl", link="fixed", anchor_calibration=None, seed=0, ...``).
    """
    if opts is None:
        opts = CalibrateOptions(**options)
    elif options:
        opts = dataclasses.replace(opts, **options)
    t0 = time.perf_counter()
    _check_options(opts)
    return _read_fit_store(bank, "adt calibrate", lambda b: _read_inputs(b, opts), lambda i: _fit(i, opts),
                           lambda b, i, f: _store(b, i, f, opts, t0), on_wait=on_wait, wait_s=wait_s)


def _read_fit_store(bank: Any, purpose: str, read: Callable[[Any], Any], fit: Callable[[Any], Any],
                    store: Callable[[Any, Any, Any], _Outcome], *, on_wait: Any, wait_s: float | None) -> _Outcome:
    """``store(bank, inputs, fit(inputs))`` with ``inputs = read(bank)``. A path is held only while reading and
    while storing, not during the fit, so other commands can use the bank meanwhile."""
    if not isinstance(bank, (str, Path)):
        inputs = read(bank)
        return store(bank, inputs, fit(inputs))
    from itembank import DEFAULT_WAIT_S, open_bank

    wait = DEFAULT_WAIT_S if wait_s is None else wait_s
    with open_bank(bank, purpose=f"{purpose}: read responses", on_wait=on_wait, wait_s=wait) as held:
        inputs = read(held)
    fitted = fit(inputs)
    with open_bank(bank, purpose=f"{purpose}: store", on_wait=on_wait, wait_s=wait) as held:
        return store(held, inputs, fitted)


def latest_calibration_id(bank: Any) -> str | None:
    """The id of the bank's latest calibration, None when it has none."""
    try:
        return resolve_calibration_id(bank, None)
    except CalibrationError:
        return None


def _link_method(opts: CalibrateOptions) -> str | None:
    return None if opts.link is None else opts.link.replace("-", "_")


def _check_options(opts: CalibrateOptions) -> None:
    """Refuse what no fitter, or the chosen one, can do, before any work (what a fitter can do is in its
    class attributes: ``calibration.fitters``)."""
    irt, link_method = opts.irt.lower(), _link_method(opts)
    if irt not in irt_choices():
        raise InputError(f"--irt {opts.irt!r}: choose one of {', '.join(irt_choices())}")
    fitter = get_fitter(opts.method.lower())        # an unknown method gets a did-you-mean
    if link_method is not None and link_method not in LINK_CHOICES:
        raise InputError(f"--link {opts.link!r}: choose fixed or stocking-lord")
    if opts.anchor_calibration and link_method is None:
        raise InputError("--anchor-calibration needs --link fixed or --link stocking-lord")
    if irt not in fitter.irt_models:
        models = " / ".join(m.upper() for m in fitter.irt_models)
        raise InputError(f"--method {fitter.name} fits the {models} only (got --irt {irt})")
    if link_method is not None and fitter.family != "4pl":
        raise InputError(f"--link needs 4PL-family parameters; --method {fitter.name} fits the {fitter.family}")
    if link_method == "fixed" and not fitter.holds_anchors:
        raise InputError(f"--link fixed needs --method {' or '.join(anchoring_fitters())} "
                         f"({fitter.label} cannot hold anchor items fixed)")
    if opts.guessing not in GUESSING_CHOICES:
        raise InputError(f"--guessing {opts.guessing!r}: choose {', '.join(GUESSING_CHOICES)}")


@dataclass(frozen=True)
class _Inputs:
    snapshot: str
    responses: ResponseSet
    runs: pd.DataFrame
    dropped: int
    anchor: StoredCalibration | None
    n_choices: np.ndarray | None
    items: pd.DataFrame | None = None        # the non-retired items (content priors); None: not fitted
    # A fitter that takes raters (--method facets): each judge's verdicts as responses (judged_inputs), the
    # items' level counts; ``responses`` stays the bank's scores (the panel's for judged answers).
    judged: ResponseSet | None = None
    n_levels: np.ndarray | None = None


@dataclass(frozen=True)
class _Fitted:
    result: CalibrationResult
    selection: pd.DataFrame | None
    linking: dict[str, Any] | None
    predictive: PredictiveModel | None = None
    content_prior: ContentPriorFit | None = None


def _read_inputs(bank: Any, opts: CalibrateOptions) -> _Inputs:
    snapshot = bank.snapshot_id()
    rs, runs, dropped = read_responses(bank, opts.filters, opts.rounds, exclude_models=opts.exclude_models,
                                       models=opts.models)
    judged, n_levels = judged_inputs(bank, rs, runs) if get_fitter(opts.method.lower()).takes_raters else (None, None)
    anchor = load_calibration(bank, opts.anchor_calibration) if _link_method(opts) else None
    k = _n_choices(bank, rs.item_ids) if opts.guessing == "choices" else None
    if opts.guessing == "auto" and _all_unguessable(bank, rs.item_ids):
        k = np.zeros(len(rs.item_ids))   # 3PL/4PL: c held at 0 (guessing_from_choices of no choices)
    return _Inputs(snapshot, rs, runs, dropped, anchor, k, bank.items() if opts.content_prior else None, judged,
                   n_levels)


def judged_inputs(bank: Any, rs: ResponseSet, runs: pd.DataFrame) -> tuple[ResponseSet | None, np.ndarray | None]:
    """For a rater model: every judge's verdicts on the answers of the runs used (``Bank.judgments``; the shared
    position rule first, ``calibration.judged_responses``) as one response per (model, item, judge), beside the
    rule-scored answers of ``rs``; a judged item's panel score gives way to its verdicts. Level counts per item
    (2 for items no judge scored). Same models and items as ``rs``, so the calibration stores as any other;
    (None, None) when no judge scored any of them."""
    frame = bank.judgments(run_ids=[str(r) for r in runs["run_id"]], item_ids=list(rs.item_ids))
    frame = frame[frame["model"].isin(list(rs.model_ids))]
    if frame.empty:
        return None, None          # no judge has scored these answers: every item binary
    return graded_response_set(judged_responses(frame), rs.to_frame(), item_ids=rs.item_ids, model_ids=rs.model_ids)


# ---------------------------------------------------------------------------------------------- content priors
@dataclass(frozen=True)
class ContentPriorFit:
    """A content prior fitted with a calibration (``calibration.fit_content_prior``) and its stored rows."""

    frame: pd.DataFrame | None     # item_id, a, b, log_a_sd, b_sd, from_parent: the items it does not calibrate
    n_fitted: int                  # items it was fitted on (the calibration's usable ones)
    seconds: float                 # fit + predictions (the cost `adt calibrate` prints)
    b_sd: float                    # out-of-fold RMSE of b (the prior's SD)
    log_a_sd: float
    note: str = ""                 # why it was not fitted
    model: Any = None              # the fitted ContentPrior (online calibration predicts its new items with it)

    @property
    def n_predicted(self) -> int:
        return 0 if self.frame is None else len(self.frame)

    def summary(self) -> dict[str, Any]:
        n_parent = 0 if self.frame is None else int(self.frame["from_parent"].sum())
        return {"n_fitted": self.n_fitted, "n_predicted": self.n_predicted, "n_from_parent": n_parent,
                "seconds": round(self.seconds, 3), "b_sd": self.b_sd, "log_a_sd": self.log_a_sd, "note": self.note}

    def line(self) -> str:
        if self.frame is None:
            return f"content prior: not fitted ({self.note})"
        return (f"content prior: fitted on {self.n_fitted} items in {self.seconds:.1f} s (SD of b {self.b_sd:.2f}, "
                f"of log a {self.log_a_sd:.2f}); stored for {self.n_predicted} items it does not calibrate "
                f"({self.summary()['n_from_parent']} variants from their parents)")


def fit_priors(items: pd.DataFrame, params: ItemParams, usable: NDArray[np.bool_], *, seed: int) -> ContentPriorFit:
    """Fit the content prior on the items of ``params`` marked ``usable`` (b and log a; no fold groups:
    finding near-duplicate components costs an index pass over the bank) and predict every other item of
    ``items`` (the non-retired bank). Fewer usable items than the fit needs: not fitted, with the reason."""
    t0 = time.perf_counter()
    pos = {k: i for i, k in enumerate(params.item_ids)}
    ids = items["item_id"].astype(str)
    at = np.array([pos.get(k, -1) for k in ids], dtype=np.int64)
    fit_mask = at >= 0
    fit_mask[fit_mask] = usable[at[fit_mask]]
    n_fit = int(fit_mask.sum())
    if n_fit < 10:
        return ContentPriorFit(None, n_fit, time.perf_counter() - t0, float("nan"), float("nan"),
                               f"{n_fit} calibrated items in the bank's item frame; the fit needs at least 10")
    idx = at[fit_mask]
    model = fit_content_prior(items.loc[fit_mask].reset_index(drop=True), params.b[idx], np.log(params.a[idx]),
                              rng=np.random.default_rng(seed))
    rest = items.loc[~fit_mask].reset_index(drop=True)
    frame = None
    if len(rest):
        pred = model.predict(rest)
        assert pred.log_a is not None and pred.log_a_sd is not None  # fitted with log a
        frame = pd.DataFrame({"item_id": rest["item_id"].astype(str), "a": np.exp(pred.log_a), "b": pred.b,
                              "log_a_sd": pred.log_a_sd, "b_sd": pred.b_sd, "from_parent": pred.from_parent})
    return ContentPriorFit(frame, n_fit, time.perf_counter() - t0, float(model.b_sd_), float(model.log_a_sd_),
                           model=model)


def _all_unguessable(bank: Any, item_ids: Sequence[str]) -> bool:
    """``--guessing auto``: True when every item is of a type that cannot be guessed (its ItemType says so:
    numeric exact match), so a 3PL/4PL holds c at 0; otherwise c is estimated under its prior (a bank mixing
    both estimates it)."""
    items = bank.items({"item_id": list(item_ids)}, with_tags=False)
    return bool(len(items)) and not any(itemtypes.get(str(t)).guessable for t in items["item_type"].unique())


def _fit(inputs: _Inputs, opts: CalibrateOptions) -> _Fitted:
    link_method = _link_method(opts)
    rs, anchor = inputs.responses, inputs.anchor
    rng = np.random.default_rng(opts.seed)
    fixed = _anchors(anchor, rs) if link_method == "fixed" and anchor is not None else None
    settings = FitSettings(irt=opts.irt.lower(), seed=opts.seed, latent=opts.latent, max_iter=opts.max_iter,
                           n_choices=inputs.n_choices, fixed=fixed, holdout_frac=opts.holdout_frac,
                           epochs=opts.epochs, n_levels=inputs.n_levels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationConvergenceWarning)  # reported loudly by the caller
        fit_rs = inputs.judged if inputs.judged is not None else rs
        result = get_fitter(opts.method.lower()).fit(fit_rs, settings, rng=rng)
    chosen = result.settings.get("selection")      # irt "auto": the candidates the fitter compared
    selection = pd.DataFrame(chosen["candidates"]) if chosen else None
    linking: dict[str, Any] | None = None
    if link_method == "fixed" and anchor is not None:
        linking = _fixed_link_record(anchor, result)
    elif link_method == "stocking_lord" and anchor is not None:
        result, linking = _stocking_lord(anchor, result, rng, opts.n_boot)
    cp = None
    flat = four_pl_view(result)    # another family (facets' GRM) as the 2PL the consumers below read
    if inputs.items is not None:
        status = item_statuses(flat)
        usable = np.isin(status, ("calibrated", "fixed")) & np.isfinite(flat.params.a) & np.isfinite(flat.params.b)
        cp = fit_priors(inputs.items, flat.params, usable, seed=opts.seed)
    # What every estimate needs of this calibration, built once here (calibration.predictive).
    return _Fitted(result, selection, linking, _build_predictive(flat, rs), cp)


def _store(bank: Any, inputs: _Inputs, fitted: _Fitted, opts: CalibrateOptions, t0: float) -> CalibrationOutcome:
    result = fitted.result
    extra = {"irt_requested": opts.irt.lower(), "rounds": list(opts.rounds), "guessing_option": opts.guessing,
             "guessing_fixed_at_zero": bool(inputs.n_choices is not None and not np.any(inputs.n_choices > 1)),
             "exclude_models": list(opts.exclude_models), "models": list(opts.models),
             "n_dropped_retired_responses": inputs.dropped}
    cal_id = save_calibration(bank, result, responses=inputs.responses, runs=inputs.runs, filters=opts.filters,
                              link=fitted.linking, extra_settings=extra, snapshot_id=inputs.snapshot,
                              predictive=fitted.predictive,
                              content_prior=None if fitted.content_prior is None else fitted.content_prior.frame)
    status = item_statuses(result)
    counts = {s: int((status == s).sum()) for s in ("calibrated", "fixed", *KEPT_AT_PRIOR) if (status == s).any()}
    return CalibrationOutcome(cal_id, result, counts, len(inputs.runs), inputs.dropped, inputs.snapshot,
                              time.perf_counter() - t0, fitted.selection, fitted.linking, fitted.content_prior)


def _anchors(anchor: StoredCalibration, rs: ResponseSet) -> dict[str, tuple[float, float, float, float]]:
    """Anchor values: every usable item of the anchor calibration that has responses now."""
    answered = {rs.item_ids[i] for i in np.flatnonzero(rs.counts_per_item() > 0)}
    ids = [k for k in anchor.usable_params().item_ids if k in answered]
    if not ids:
        raise CalibrationError(f"--link fixed: no item of calibration {anchor.calibration_id} has responses here; "
                               "nothing can anchor the scale")
    return fixed_from_calibration(anchor.usable_params(), ids)


def _fixed_link_record(anchor: StoredCalibration, result: CalibrationResult) -> dict[str, Any]:
    """Fixed-parameter linking: the anchors put the new population at N(mean, sd) on the anchor scale, so the
    implied constants are A = sd, B = mean (what a free, standardised fit would need to reach this scale).
    Their errors here are the population-sampling SEs of a mean and an SD over the models (anchor parameter
    error is not included: the anchors are held fixed)."""
    mean, sd = _latent_moments(result)
    n = max(len(result.model_ids), 2)
    n_anchors = int(np.asarray(result.fixed).sum()) if result.fixed.size else 0
    return {"method": "fixed", "anchor_calibration_id": anchor.calibration_id, "n_common": n_anchors,
            "A": sd, "B": mean, "se_A": sd / math.sqrt(2 * (n - 1)), "se_B": sd / math.sqrt(n),
            "error": "population-sampling SEs of the latent mean and SD (anchors held fixed)"}


def _stocking_lord(anchor: StoredCalibration, result: CalibrationResult, rng: np.random.Generator,
                   n_boot: int) -> tuple[CalibrationResult, dict[str, Any]]:
    """Put a free fit on the anchor calibration's scale through the common usable items."""
    old_keep = np.flatnonzero(anchor.usable)
    status = item_statuses(result)
    new_keep = np.flatnonzero((status == "calibrated") & np.isfinite(result.params.a) & np.isfinite(result.params.b))
    old_p, new_p = anchor.params.subset(old_keep), result.params.subset(new_keep)
    common = set(old_p.item_ids) & set(new_p.item_ids)
    if len(common) < 2:
        raise CalibrationError(f"--link stocking-lord: {len(common)} calibrated items in common with calibration "
                               f"{anchor.calibration_id}; linking needs at least 2")
    grid = weights = None
    if anchor.quad_points.size >= 2 and anchor.quad_weights.sum() > 0:
        grid, weights = anchor.quad_points, anchor.quad_weights
    lr = link(old_p, new_p, "stocking_lord", grid=grid, weights=weights, rng=rng, n_boot=n_boot,
              se_old={k: v[old_keep] for k, v in anchor.se.items()},
              se_new={k: np.asarray(v)[new_keep] for k, v in result.se.items()})
    linked = dataclasses.replace(
        result, params=transform_params(result.params, lr.A, lr.B), se=transform_se(result.se, lr.A),
        theta=lr.A * np.asarray(result.theta) + lr.B, theta_se=lr.A * np.asarray(result.theta_se),
        quad_points=lr.A * np.asarray(result.quad_points) + lr.B)
    record = {"method": "stocking_lord", "anchor_calibration_id": anchor.calibration_id, "n_common": lr.n_common,
              "A": lr.A, "B": lr.B, "se_A": lr.se_A, "se_B": lr.se_B, "n_boot": lr.n_boot,
              "criterion": lr.criterion, "error": "bootstrap over the common items (with their parameter SEs)"}
    return linked, record


# ---------------------------------------------------------------------------------------------- online
@dataclass(frozen=True)
class OnlineOptions:
    """What ``adt calibrate --online`` was asked for (the options it shares with ``adt calibrate`` mean the same)."""

    method: str = DEFAULT_ONLINE_METHOD      # one of calibration.ONLINE_METHODS
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)  # narrows the pretest items
    rounds: tuple[int, ...] = ()
    exclude_models: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    anchor_calibration: str | None = None    # default: the latest calibration
    seed: int = 0
    content_prior: bool = True               # new items' priors from their content; stored for the rest


@dataclass(frozen=True)
class OnlineOutcome:
    calibration_id: str
    anchor_id: str
    method: str
    new: pd.DataFrame                        # per new item: a, b, se_a, se_b, n_responses, status, prior
    n_operational: int                       # anchor items held at their parameters
    n_operational_answered: int
    n_models: int
    n_obs: int
    latent_mean: float
    latent_sd: float
    n_cycles: int
    converged: bool
    snapshot_id: str
    seconds: float
    content_prior: ContentPriorFit | None
    notes: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        new = self.new
        cal = new[new["status"] == "calibrated"]
        return {
            "calibration_id": self.calibration_id, "anchor_calibration_id": self.anchor_id, "method": self.method,
            "n_new": len(new), "status": {str(k): int(v) for k, v in new["status"].value_counts().items()},
            "n_calibrated": len(cal), "median_se_b": float(cal["se_b"].median()) if len(cal) else float("nan"),
            "n_at_prior": int(new["status"].isin(list(KEPT_AT_PRIOR)).sum()),
            "prior": {str(k): int(v) for k, v in new["prior"].value_counts().items()},
            "responses_per_item": {"min": int(new["n_responses"].min()), "median": float(new["n_responses"].median()),
                                   "max": int(new["n_responses"].max())},
            "n_operational": self.n_operational, "n_operational_answered": self.n_operational_answered,
            "n_models": self.n_models, "n_obs": self.n_obs, "latent_mean": self.latent_mean,
            "latent_sd": self.latent_sd, "n_cycles": self.n_cycles, "converged": self.converged,
            "content_prior": None if self.content_prior is None else self.content_prior.summary(),
            "snapshot_id": self.snapshot_id, "seconds": round(self.seconds, 3), "notes": list(self.notes),
            "items": new.to_dict("records"),
        }


@dataclass(frozen=True)
class _OnlineInputs:
    snapshot: str
    anchor: StoredCalibration
    ops_idx: NDArray[np.int64]           # the operational items: positions in anchor.usable_params()
    anchor_pm: PredictiveModel
    responses: ResponseSet               # operational + new items (the new ones all answered)
    runs: pd.DataFrame
    n_new_candidates: int
    items: pd.DataFrame | None


def calibrate_online_bank(bank: Any, opts: OnlineOptions | None = None, *, on_wait: Any = None,
                          wait_s: float | None = None, **options: Any) -> OnlineOutcome:
    """``adt calibrate --online``: the pretest items (stage ``pretest``, narrowed by ``filters``) that have
    responses, estimated by ``calibration.calibrate_online`` on the anchor calibration's scale with its usable
    items held at their parameters, each new item's prior its content prior (a variant: its parent's
    parameters) or else the generic one; stored as a new calibration linked to the anchor (operational items
    ``fixed`` with their parameters and SEs copied). ``bank``: an open Bank or a path (held only while reading
    and while storing, as ``calibrate``). Every refusal comes before anything is written."""
    if opts is None:
        opts = OnlineOptions(**options)
    elif options:
        opts = dataclasses.replace(opts, **options)
    t0 = time.perf_counter()
    if opts.method not in ONLINE_METHODS:
        raise InputError(f"--online-method {opts.method!r}: choose one of {', '.join(ONLINE_METHODS)}")
    if "stage" in opts.filters and "pretest" not in opts.filters["stage"]:
        raise InputError("--online calibrates pretest items: --filter stage=... must include pretest")
    return _read_fit_store(bank, "adt calibrate --online", lambda b: _read_online(b, opts),
                           lambda i: _fit_online(i, opts), lambda b, i, f: _store_online(b, i, f, opts, t0),
                           on_wait=on_wait, wait_s=wait_s)


def _read_online(bank: Any, opts: OnlineOptions) -> _OnlineInputs:
    if latest_calibration_id(bank) is None:
        raise CalibrationError("adt calibrate --online needs an anchor calibration (the operational items' "
                               "parameters): the bank has none; run `adt calibrate` first")
    anchor = load_calibration(bank, opts.anchor_calibration)
    usable = [str(i) for i in anchor.usable_params().item_ids]
    live = {str(i) for i in bank.item_ids({"item_id": usable})} if usable else set()     # retired since: left out
    # The scale is held by the anchor's operational (and rested) items; its pretest items, calibrated online
    # before and not promoted yet, are estimated again with the responses they have gained. A young bank whose
    # items are all still pretest (a full calibration, no promotion yet) holds its scale by all of them.
    stage = bank.stages([i for i in usable if i in live])
    held = {i for i, s in stage.items() if s != lifecycle.PRETEST} or set(stage)
    ops_idx = np.array([k for k, i in enumerate(usable) if i in held], dtype=np.int64)
    ops = [usable[k] for k in ops_idx]
    if not ops:
        raise CalibrationError(f"anchor calibration {anchor.calibration_id} has no (non-retired) item with usable "
                               "parameters")
    flt = {str(k): [str(v) for v in vs] for k, vs in opts.filters.items()}
    flt["stage"] = ["pretest"]
    op_set = set(ops)
    candidates = [str(i) for i in bank.item_ids(flt) if str(i) not in op_set]
    if not candidates:
        raise InputError("no pretest items" + (" match the filters" if opts.filters else " in the bank")
                         + " (items in stage pretest that the anchor calibration does not hold fixed)")
    snapshot = bank.snapshot_id()
    try:
        rs, runs, _ = read_responses(bank, {"item_id": ops + candidates}, opts.rounds,
                                     exclude_models=opts.exclude_models, models=opts.models)
    except CalibrationError:
        raise CalibrationError(f"no responses to the anchor calibration's items or to the {len(candidates)} "
                               "pretest items" + (f" in rounds {', '.join(map(str, opts.rounds))}"
                                                  if opts.rounds else "")) from None
    counts = pd.Series(rs.counts_per_item(), index=list(rs.item_ids))
    new = [i for i in candidates if counts[i] > 0]
    if not new:
        raise InputError(f"no pretest item has responses: {len(candidates)} pretest items"
                         + (" match the filters" if opts.filters else "") + ", none answered"
                         + (f" in rounds {', '.join(map(str, opts.rounds))}" if opts.rounds else ""))
    if not (counts[ops] > 0).any():
        raise InputError(f"the anchor calibration {anchor.calibration_id}'s items have no responses here: nothing "
                         "carries its scale to the pretest items")
    keep_ids = ops + new
    frame = rs.to_frame()
    rs = ResponseSet.from_frame(frame[frame["item_id"].isin(pd.Index(keep_ids))], "model", "item_id", "score",
                                item_ids=keep_ids)
    anchor_pm = predictive_model(bank, anchor)
    return _OnlineInputs(snapshot, anchor, ops_idx, anchor_pm, rs, runs, len(candidates),
                         bank.items() if opts.content_prior else None)


@dataclass(frozen=True)
class _OnlineFitted:
    result: CalibrationResult
    predictive: PredictiveModel
    new: pd.DataFrame
    online: Any                          # calibration.OnlineCalibration
    content_prior: ContentPriorFit | None
    stored_prior: pd.DataFrame | None
    notes: tuple[str, ...]


def _fit_online(inputs: _OnlineInputs, opts: OnlineOptions) -> _OnlineFitted:
    anchor, rs = inputs.anchor, inputs.responses
    ops = anchor.usable_params().subset(inputs.ops_idx)
    n_ops = len(ops)
    new_ids = tuple(rs.item_ids[n_ops:])
    n_new = len(new_ids)
    notes: list[str] = []
    # Priors: the content prior fitted on the operational items (a variant: its parent's), else generic.
    prior_a_mean, prior_a_sd = np.zeros(n_new), np.ones(n_new)
    prior_b_mean, prior_b_sd = np.zeros(n_new), np.full(n_new, 3.0)
    kind = np.full(n_new, "generic", dtype=object)
    cp = None
    if inputs.items is not None:
        cp = fit_priors(inputs.items, ops, np.ones(n_ops, dtype=bool), seed=opts.seed)
        if cp.model is not None:
            items = inputs.items.set_index("item_id", drop=False)
            have = [i for i in new_ids if i in items.index]
            if have:
                pred = cp.model.predict(items.loc[have].reset_index(drop=True))
                at = np.array([new_ids.index(i) for i in have])
                prior_b_mean[at], prior_b_sd[at] = pred.b, pred.b_sd
                prior_a_mean[at], prior_a_sd[at] = pred.log_a, pred.log_a_sd
                kind[at] = np.where(pred.from_parent, "parent", "content")
    per_item = opts.method != "fpc"
    if not per_item and (kind != "generic").any():
        notes.append("fpc takes one prior for every new item: content priors not used in the fit")
        kind[:] = "generic"
    prior_a = (prior_a_mean, prior_a_sd) if per_item else (0.0, 1.0)
    prior_b = (prior_b_mean, prior_b_sd) if per_item else (0.0, 3.0)
    online = calibrate_online(rs, ops, new_ids, method=opts.method, prior_a=prior_a, prior_b=prior_b)

    # Statuses: one-sided items are kept at their prior, as in any calibration (fpc: its fit says).
    sub = rs.subset(rs.item_idx >= n_ops)
    status = (np.asarray(online.settings["item_status"]) if opts.method == "fpc"
              else item_status(sub)[n_ops:]).astype("<U11")
    mu, sd = float(online.latent_mean), float(online.latent_sd)
    points = np.linspace(mu - 6 * sd, mu + 6 * sd, 61)
    weights = np.exp(-0.5 * ((points - mu) / sd) ** 2)
    weights /= weights.sum()
    prior = Prior.normal(mu, sd)
    on_ops = rs.item_idx < n_ops
    est = estimate_abilities(rs.model_idx[on_ops], rs.item_idx[on_ops], rs.score[on_ops], ops, "eap",
                             n_models=rs.n_models, prior=prior)
    nan_new = np.full(n_new, np.nan)
    params = ItemParams(tuple(ops.item_ids) + new_ids, np.r_[ops.a, online.params.a], np.r_[ops.b, online.params.b],
                        np.r_[ops.c, np.zeros(n_new)], np.r_[ops.d, np.ones(n_new)])
    ase = {k: v[inputs.ops_idx] for k, v in anchor.usable_se().items()}
    se = {"a": np.r_[ase["a"], online.se["a"]], "b": np.r_[ase["b"], online.se["b"]],
          "c": np.r_[ase["c"], nan_new], "d": np.r_[ase["d"], nan_new]}
    settings = {"model": anchor.irt_model, "latent": "normal", "latent_mean": mu, "latent_sd": sd,
                "prior_a": [0.0, 1.0], "prior_b": [0.0, 3.0], "seed": opts.seed,
                "online": {**{k: v for k, v in online.settings.items() if k != "left_out"},
                           "n_cycles": online.n_cycles, "anchor_calibration_id": anchor.calibration_id,
                           "priors": {str(k): int(v) for k, v in pd.Series(kind).value_counts().items()}}}
    result = CalibrationResult(
        params=params, se=se, item_status=np.r_[np.full(n_ops, "calibrated"), status].astype("<U11"),
        theta=est.theta, theta_se=est.se, quad_points=points, quad_weights=weights, loglik=float("nan"),
        n_iter=int(online.n_cycles), converged=bool(online.converged), settings=settings, aic=float("nan"),
        bic=float("nan"), n_params=2 * n_new, model_ids=rs.model_ids, fixed=np.r_[np.ones(n_ops, bool),
                                                                                   np.zeros(n_new, bool)],
        n_obs=rs.n_obs, method=f"online-{opts.method}")
    # Prediction: the anchor's predictive parameters for the operational items (the same numbers as under the
    # anchor), the new items' own (built as for any calibration, at these abilities), one model.
    pos = inputs.anchor_pm.position()
    at_ops = np.array([pos[i] for i in ops.item_ids], dtype=np.int64)
    apm = inputs.anchor_pm
    ops_pm = dataclasses.replace(apm, params=apm.params.subset(at_ops), se_a=apm.se_a[at_ops], se_b=apm.se_b[at_ops],
                                 basis=apm.basis[at_ops])
    new_pm = build_predictive(online.params, online.se, status, theta=est.theta, model_ids=rs.model_ids,
                              model_idx=sub.model_idx, item_idx=sub.item_idx, score=sub.score,
                              response_item_ids=sub.item_ids, prior=prior, settings=settings,
                              irt_model="2pl")
    predictive = join_predictive(ops_pm, new_pm, prior=Prior.from_grid(points, weights))
    new = pd.DataFrame({"item_id": list(new_ids), "a": online.params.a, "b": online.params.b, "se_a": online.se["a"],
                        "se_b": online.se["b"], "n_responses": online.n_responses.astype(int), "status": status,
                        "prior": kind.astype(str)})
    stored_prior = None
    if cp is not None and cp.frame is not None:
        calibrated = set(np.asarray(new_ids)[status == "calibrated"])
        stored_prior = cp.frame[~cp.frame["item_id"].isin(pd.Index(sorted(calibrated)))].reset_index(drop=True)
    return _OnlineFitted(result, predictive, new, online, cp, stored_prior, tuple(notes))


def _store_online(bank: Any, inputs: _OnlineInputs, fitted: _OnlineFitted, opts: OnlineOptions,
                  t0: float) -> OnlineOutcome:
    result, rs = fitted.result, inputs.responses
    link = _fixed_link_record(inputs.anchor, result)
    link["online_method"] = opts.method
    extra = {"online": True, "rounds": list(opts.rounds), "exclude_models": list(opts.exclude_models),
             "models": list(opts.models)}
    cal_id = save_calibration(bank, result, responses=rs, runs=inputs.runs, filters=opts.filters, link=link,
                              extra_settings=extra, snapshot_id=inputs.snapshot, predictive=fitted.predictive,
                              content_prior=fitted.stored_prior)
    n_ops = len(rs.item_ids) - len(fitted.new)
    ops_answered = int((rs.counts_per_item()[:n_ops] > 0).sum())
    on = fitted.online
    return OnlineOutcome(cal_id, inputs.anchor.calibration_id, result.method, fitted.new, n_ops, ops_answered,
                         rs.n_models, rs.n_obs, float(on.latent_mean), float(on.latent_sd), int(on.n_cycles),
                         bool(on.converged), inputs.snapshot, time.perf_counter() - t0, fitted.content_prior,
                         fitted.notes)


# ---------------------------------------------------------------------------------------------- abilities
def _slice_ids(bank: Any, filters: Mapping[str, Sequence[str]] | None) -> list[str]:
    ids = [str(i) for i in bank.item_ids(filters or None)]
    if not ids:
        raise InputError("no items match the filters" if filters else "the bank holds no items")
    return ids


def _mean_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """One score per (model, item): the mean over runs."""
    return frame.groupby(["model", "item_id"], as_index=False, sort=True)["score"].mean()


def predictive_model(bank: Any, stored: StoredCalibration, *, exact_params: bool = False) -> PredictiveModel:
    """What prediction needs of ``stored`` (``calibration.predictive``): the stored predictive parameters,
    else (a calibration stored before they existed) built now from the responses it was fitted on;
    ``exact_params`` gives the calibration taken as exact (today's intervals, for comparison)."""
    if exact_params:
        ab = stored.abilities["theta"].to_numpy(dtype=float)
        rng_ = (float(np.nanmin(ab)), float(np.nanmax(ab))) if ab.size else (float("nan"), float("nan"))
        return exact_view(stored.params, stored.item_status, stored.prior(), rng_)
    # Items no calibration model answered are predicted from the content prior stored with it (if any).
    if stored.predictive is not None:
        return with_content_prior(stored.predictive, stored.content_prior)
    frame = _calibration_responses(bank, stored)
    rs = ResponseSet.from_frame(_mean_scores(frame), "model", "item_id", "score", item_ids=list(stored.params.item_ids))
    theta = stored.abilities.set_index("model")["theta"].reindex(list(rs.model_ids)).to_numpy(dtype=float)
    if np.isnan(theta).any():
        raise CalibrationError(f"calibration {stored.calibration_id}: abilities missing for some of its models")
    built = build_predictive(stored.params, stored.se, stored.item_status, theta=theta, model_ids=rs.model_ids,
                             model_idx=rs.model_idx, item_idx=rs.item_idx, score=rs.score,
                             response_item_ids=rs.item_ids, prior=stored.prior(), settings=stored.settings,
                             irt_model=stored.irt_model)
    return with_content_prior(built, stored.content_prior)


def _build_predictive(result: CalibrationResult, rs: ResponseSet) -> PredictiveModel:
    prior = Prior.from_calibration(result) if np.asarray(result.quad_points).size >= 2 else Prior.normal()
    return build_predictive(result.params, result.se, item_statuses(result), theta=result.theta,
                            model_ids=result.model_ids, model_idx=rs.model_idx, item_idx=rs.item_idx, score=rs.score,
                            response_item_ids=rs.item_ids, prior=prior, settings=result.settings,
                            irt_model=result.model)


# Sub-scores (--by) need this many answered items in the sub-slice: below it a model's relative
# strength on the sub-slice is mostly prior, and the number would rest on the unidimensional curve alone.
MIN_SUBSLICE_ANSWERED = 10


def _estimate(model: PredictiveModel, scores: pd.Series, slice_ids: Sequence[str], method: str, level: float,
              pos: Mapping[str, int], shared: dict[str, Any] | None = None,
              theta_interval: bool = True) -> dict[str, Any]:
    """``shared``: a dict kept across calls on the same ``scores`` (sub-scores): the slice-free ability
    part and the map/mle estimate are computed once (the same numbers as a call each).
    ``theta_interval``: as ``predict_evidence``'s (sub-scores show only the predicted accuracy)."""
    shared = {} if shared is None else shared
    ev = evidence(model, scores, slice_ids, pos)
    pred = predict_evidence(model, ev, level=level, shared=shared, theta_interval=theta_interval)
    out = pred.as_dict()
    out["method"] = method
    out["bounded"] = False
    if method != "eap" and pred.n_items:
        if "est" not in shared:
            shared["est"] = estimate_ability(ev.obs_scores, model.params.subset(ev.obs_idx), method,
                                             prior=model.prior, level=level)
        est = shared["est"]
        out.update(theta=est.theta, se=est.se, lo=est.lo, hi=est.hi, bounded=bool(est.bounded))
    return out


def estimate_scores(calibration: StoredCalibration | PredictiveModel, scores: pd.Series, slice_ids: Sequence[str], *,
                    method: str = "eap", level: float = 0.95) -> dict[str, Any]:
    """Ability and predicted accuracy on ``slice_ids`` of one model from its per-item scores (a Series
    indexed by item id): what ``estimate_model`` computes, without reading the model from a bank (held-out
    validation replays forms through it). ``calibration``: a PredictiveModel (``predictive_model``), or a
    StoredCalibration loaded with its predictive parameters."""
    if method not in ("eap", "map", "mle"):
        raise InputError(f"--method {method!r}: choose eap, map or mle")
    pm = calibration if isinstance(calibration, PredictiveModel) else calibration.predictive
    if pm is None:
        raise CalibrationError("this calibration has no stored predictive parameters: use predictive_model(bank, ...)")
    return _estimate(pm, scores, list(slice_ids), method, level, pm.position())


def _model_scores(bank: Any, model: str, filters: Mapping[str, Sequence[str]] | None = None) -> pd.Series:
    """One model's scored answers (``Bank.responses(scored=True)``: pretest items left out), mean per item;
    ``attrs["n_pretest_left_out"]`` says how many answers were left out."""
    frame = bank.responses(None, models=[model], scored=True)
    if frame.empty and frame.attrs.get("n_pretest_left_out"):
        raise InputError(f"model {model!r} answered pretest items only ({frame.attrs['n_pretest_left_out']} answers, "
                         "never scored): nothing to score yet")
    if frame.empty:
        models = sorted(str(m) for m in bank.responses(None)["model"].unique())
        close = did_you_mean(model, models, cutoff=0.6)
        listed = ", ".join(models[:10]) + (f", ... ({len(models)} in all)" if len(models) > 10 else "")
        hint = f"{close} models: {listed}" if close else (f"; models: {listed}" if models else "")
        raise InputError(f"model {model!r} has no responses in the bank{hint}")
    out = _mean_scores(frame).set_index("item_id")["score"]
    out.attrs["n_pretest_left_out"] = int(frame.attrs.get("n_pretest_left_out", 0))
    return out


def estimate_model(bank: Any, model: str, *, calibration_id: str | None = None,
                   filters: Mapping[str, Sequence[str]] | None = None, method: str = "eap",
                   level: float = 0.95, exact_params: bool = False, by: str | None = None) -> dict[str, Any]:
    """One model's ability (from all its answers to items the calibration can predict) and its predicted
    accuracy on the slice ``filters`` selects: observed answers there plus the predictive distribution of
    the rest, with every source of error the calibration knows (``calibration.predictive``). Slice items
    that cannot be predicted are counted, and the prediction says it covers fewer items. ``by``: a tag key;
    sub-scores per value (``by`` rows), refused where fewer than MIN_SUBSLICE_ANSWERED items were answered."""
    if method not in ("eap", "map", "mle"):
        raise InputError(f"--method {method!r}: choose eap, map or mle")
    stored = load_calibration(bank, calibration_id)
    scores = _model_scores(bank, model)
    slice_ids = _slice_ids(bank, filters)
    pm = predictive_model(bank, stored, exact_params=exact_params)
    pos = pm.position()
    out: dict[str, Any] = {"model": model}
    out.update(_estimate(pm, scores, slice_ids, method, level, pos))
    out["n_pretest_left_out"] = scores.attrs["n_pretest_left_out"]  # answers to pretest items: never scored
    out.update(calibration_id=stored.calibration_id, calibration_snapshot_id=stored.snapshot_id,
               snapshot_id=bank.snapshot_id(), filters={k: list(v) for k, v in (filters or {}).items()})
    if by:
        out["by_key"] = by
        out["by"] = subscores(pm, scores, subslices(bank, slice_ids, by), method=method, level=level, pos=pos, key=by)
    if stored.item_model is not None:
        out["raters"] = rater_ability(bank, model, scores, stored.item_model, method=method, level=level)
    return out


def rater_ability(bank: Any, model: str, scores: pd.Series, item_model: Any, *, method: str = "eap",
                  level: float = 0.95) -> dict[str, Any]:
    """One model's ability under a rater family's calibration (``--method facets``): every judge's verdict its
    own response at that judge's severity (``judged_inputs``), beside the rule-scored answers, so its interval
    carries the judges' disagreement; the ability above reads the panel's score through the 2PL view."""
    rs = ResponseSet(np.zeros(len(scores), dtype=np.int32), np.arange(len(scores), dtype=np.int32),
                     scores.to_numpy(dtype=float), (model,), tuple(str(i) for i in scores.index))
    runs = bank.runs()
    judged, _ = judged_inputs(bank, rs, runs[runs["model"] == model])
    est = abilities_for(judged if judged is not None else rs, item_model, method, level=level)[0]
    n_judged = 0 if judged is None else int(np.sum(np.asarray(judged.rater_idx) >= 0))
    return {"family": item_model.family, "theta": est.theta, "se": est.se, "lo": est.lo, "hi": est.hi,
            "n_responses": est.n_items, "n_judge_verdicts": n_judged}


def subslices(bank: Any, slice_ids: Sequence[str], key: str) -> dict[str, list[str]]:
    """The slice's items grouped by their value(s) of tag ``key`` (an item with several values is in each)."""
    items = bank.items({"item_id": list(slice_ids)})
    if key not in items.columns:
        raise bank.unknown_key("--by", key)  # the bank's tag keys and the built-in ones, not every column
    groups: dict[str, list[str]] = {}
    for item_id, value in zip(items["item_id"], items[key], strict=True):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        for v in str(value).split("|"):
            groups.setdefault(v, []).append(str(item_id))
    return dict(sorted(groups.items()))


def subscores(pm: PredictiveModel, scores: pd.Series, groups: Mapping[str, Sequence[str]], *, method: str = "eap",
              level: float = 0.95, pos: Mapping[str, int] | None = None, key: str = "value",
              shared: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One model's predicted accuracy on each group's items (``subslices``), refused (``refused`` says why)
    where it answered fewer than MIN_SUBSLICE_ANSWERED of them: ``adt estimate --by`` and the report's
    per-slice scores."""
    pos = pos if pos is not None else pm.position()
    rows = []
    # One model's answers: its ability part serves every value (and the caller's other slices of them).
    shared = {} if shared is None else shared
    for value, ids in groups.items():
        answered = int(scores.index.isin(pd.Index(ids)).sum())
        row: dict[str, Any] = {key: value, "n_slice_items": len(ids), "n_answered": answered}
        if answered < MIN_SUBSLICE_ANSWERED:
            row["refused"] = (f"{answered} answered item{'' if answered == 1 else 's'} (a sub-score needs at least "
                              f"{MIN_SUBSLICE_ANSWERED})")
        else:
            est = _estimate(pm, scores, list(ids), method, level, pos, shared, theta_interval=False)
            row.update({k: est[k] for k in ("pred_acc", "pred_lo", "pred_hi", "n_predicted", "covers_slice",
                                            "observed_accuracy", "extrapolated")})
            row["refused"] = ""
        rows.append(row)
    return rows


def estimate_all(bank: Any, calibration_id: str | None = None, filters: Mapping[str, Sequence[str]] | None = None,
                 method: str = "eap", level: float = 0.95, exact_params: bool = False) -> pd.DataFrame:
    """``estimate_model`` for every model with responses in the bank: one row per model (sorted)."""
    if method not in ("eap", "map", "mle"):
        raise InputError(f"method {method!r}: choose eap, map or mle")
    stored = load_calibration(bank, calibration_id)
    frame = bank.responses(None, scored=True)  # pretest items are never part of a score
    left_out = frame.attrs.get("pretest_left_out_by_model", {})
    scores = _mean_scores(frame)
    pm = predictive_model(bank, stored, exact_params=exact_params)
    pos = pm.position()
    slice_ids = _slice_ids(bank, filters)
    rows = []
    for model, grp in scores.groupby("model", sort=True):
        row: dict[str, Any] = {"model": model}
        row.update(_estimate(pm, grp.set_index("item_id")["score"], slice_ids, method, level, pos))
        row["n_pretest_left_out"] = int(left_out.get(str(model), 0))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["calibration_id"] = stored.calibration_id
    return out


def compare_models(bank: Any, model_a: str, model_b: str, *, calibration_id: str | None = None,
                   filters: Mapping[str, Sequence[str]] | None = None, level: float = 0.95,
                   exact_params: bool = False) -> dict[str, Any]:
    """A minus B on the slice: ability and predicted-accuracy differences with intervals and p-values, the
    items both answered taken as paired data (``calibration.predictive.compare``)."""
    if model_a == model_b:
        raise InputError(f"cannot compare model {model_a!r} with itself")
    stored = load_calibration(bank, calibration_id)
    scores_a, scores_b = _model_scores(bank, model_a), _model_scores(bank, model_b)
    slice_ids = _slice_ids(bank, filters)
    pm = predictive_model(bank, stored, exact_params=exact_params)
    pos = pm.position()
    est = {m: _estimate(pm, s, slice_ids, "eap", level, pos) for m, s in ((model_a, scores_a), (model_b, scores_b))}
    for m, e in est.items():
        if not np.isfinite(e["pred_acc"]):
            raise InputError(f"model {m!r} has no responses the calibration can use on this slice")
    cmp = compare(pm, scores_a, scores_b, slice_ids, level=level)
    out: dict[str, Any] = {"model_a": model_a, "model_b": model_b}
    out.update(cmp.as_dict())
    z = float(norm.ppf(0.5 + level / 2))
    sd_un = float(np.hypot(est[model_a]["pred_sd"], est[model_b]["pred_sd"]))
    out.update(n_pretest_left_out={model_a: scores_a.attrs["n_pretest_left_out"],
                                   model_b: scores_b.attrs["n_pretest_left_out"]})
    out.update(unpaired_lo=cmp.diff_acc - z * sd_un, unpaired_hi=cmp.diff_acc + z * sd_un,
               a=est[model_a], b=est[model_b], calibration_id=stored.calibration_id,
               filters={k: list(v) for k, v in (filters or {}).items()})
    return out


def compare_all(bank: Any, *, calibration_id: str | None = None, filters: Mapping[str, Sequence[str]] | None = None,
                level: float = 0.95, adjust: str = "holm", exact_params: bool = False) -> pd.DataFrame:
    """Every pair of models with responses, with p-values adjusted over the pairs (Holm or BH)."""
    stored = load_calibration(bank, calibration_id)
    scores = _mean_scores(bank.responses(None, scored=True))  # pretest items are never part of a score
    models = sorted(scores["model"].unique())
    if len(models) < 2:
        raise InputError("compare --all needs at least two models with responses")
    by_model = {m: g.set_index("item_id")["score"] for m, g in scores.groupby("model")}
    slice_ids = _slice_ids(bank, filters)
    pm = predictive_model(bank, stored, exact_params=exact_params)
    pairs = [(ma, mb) for i, ma in enumerate(models) for mb in models[i + 1:]]
    found = compare_many(pm, by_model, slice_ids, pairs, level=level)
    rows = [{"model_a": ma, "model_b": mb, **c.as_dict()} for (ma, mb), c in zip(pairs, found, strict=True)]
    out = pd.DataFrame(rows)
    out["p_adjusted"] = adjust_pvalues(out["p_acc"].to_numpy(dtype=float), adjust)
    out["adjust"] = adjust
    out["calibration_id"] = stored.calibration_id
    return out


# ---------------------------------------------------------------------------------------------- diff
def _drift_names(old: StoredCalibration, new: StoredCalibration) -> tuple[str, ...]:
    names = ["a", "b"]
    for k in ("c", "d"):
        if np.isfinite(old.usable_se()[k]).any() and np.isfinite(new.usable_se()[k]).any():
            names.append(k)
    return tuple(names)


def diff_calibrations(bank: Any, old_ref: str, new_ref: str, *, z_crit: float = 3.0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per common usable item: old and new a, b (and c, d where both estimated them), change, z = change /
    sqrt(se_old^2 + se_new^2) and ``moved`` (|z| > z_crit on any). Meta says how each was scaled."""
    old, new = load_calibration(bank, old_ref), load_calibration(bank, new_ref)
    drift = parameter_drift(old.usable_params(), old.usable_se(), new.usable_params(), new.usable_se(),
                            names=_drift_names(old, new), z_crit=z_crit)
    for k in _drift_names(old, new):
        drift.insert(drift.columns.get_loc(f"z_{k}"), f"diff_{k}", drift[f"{k}_new"] - drift[f"{k}_old"])
    drift = drift.reset_index()
    meta = {"old": old.calibration_id, "new": new.calibration_id, "z_crit": z_crit, "n_common": len(drift),
            "n_moved": int(drift["moved"].sum()),
            "old_link": old.settings.get("linking"), "new_link": new.settings.get("linking"),
            "same_scale_note": _scale_note(old, new)}
    return drift, meta


def _scale_note(old: StoredCalibration, new: StoredCalibration) -> str:
    if old.irt_model != new.irt_model:
        return (f"different IRT models ({old.irt_model} vs {new.irt_model}): their parameters are not directly "
                "comparable")
    nl = new.settings.get("linking") or {}
    if nl.get("anchor_calibration_id") == old.calibration_id:
        return f"{new.calibration_id} was linked onto {old.calibration_id} ({nl.get('method')})"
    if not nl and not (old.settings.get("linking") or {}):
        return "both on their own standardised scale (no linking): shifts of the whole population show as moves"
    return "linked through other calibrations: compare with care"


# ---------------------------------------------------------------------------------------------- flags
@dataclass(frozen=True)
class FlagsReport:
    calibration_id: str
    previous_id: str | None
    flags: pd.DataFrame                 # item_id, flag, value, threshold, reason, aliases (source:external_id)
    fit: pd.DataFrame                   # infit/outfit and the wrong-key test per usable item
    drift: DriftReport | None
    drift_note: str


def _calibration_responses(bank: Any, stored: StoredCalibration) -> pd.DataFrame:
    frame = bank.responses(None)
    runs = pd.Index(stored.run_ids)
    frame = frame[frame["run_id"].isin(runs) & frame["item_id"].isin(pd.Index(stored.params.item_ids))]
    return frame.reset_index(drop=True)


def _exposure(bank: Any) -> dict[str, int]:
    """First publication round of every published item."""
    first: dict[str, int] = {}
    forms = bank.forms()
    for name, rounds in zip(forms["name"], forms["published_in"], strict=True):
        if not isinstance(rounds, list | tuple | np.ndarray) or len(rounds) == 0:  # never published: None or pd.NA
            continue
        r0 = int(min(rounds))
        for item in bank.form(name)["item_ids"]:
            first[item] = min(first.get(item, r0), r0)
    return first


def keyed_items(bank: Any, item_ids: Sequence[str]) -> NDArray[np.bool_]:
    """Which items have an objective answer key (items imported with ``--no-key`` have none)."""
    items = bank.items(include_retired=True, with_tags=False)
    has = dict(zip(items["item_id"].astype(str), items["answer"].notna() & (items["answer"].astype(str).str.strip()
                                                                          != ""), strict=True))
    return np.array([bool(has.get(str(k), False)) for k in item_ids], dtype=bool)


def item_flags(bank: Any, params: Any, item_status: Any, responses: pd.DataFrame, abilities: pd.Series, *,
               drift: pd.DataFrame | None = None, a_min: float = 0.25,
               alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The item flags of one calibration (``calibration.flag_items``, the one rule) and the item fit behind
    them, from its one input: the responses it was fitted on (``model, item_id, score``) and its
    abilities (model -> theta); keys and source ids from the bank. Flags gain ``aliases``."""
    models = tuple(str(m) for m in abilities.index)
    frame = responses[responses["model"].isin(pd.Index(models))
                      & responses["item_id"].isin(pd.Index(params.item_ids))]
    rs = ResponseSet.from_frame(frame, "model", "item_id", "score", item_ids=params.item_ids, model_ids=models)
    usable = np.asarray(item_status) == "calibrated"
    theta = abilities.to_numpy(dtype=float)
    fit = item_fit(rs.subset(usable[rs.item_idx]), params.subset(np.flatnonzero(usable)),
                   np.nan_to_num(theta, nan=0.0))
    keyed = keyed_items(bank, params.item_ids)
    flags = flag_items(params, fit=fit, item_status=item_status, drift=drift, keyed=keyed, a_min=a_min, alpha=alpha)
    aliases = bank.aliases_of(flags["item_id"]) if len(flags) else {}
    flags["aliases"] = [aliases.get(i, []) for i in flags["item_id"]]
    return flags, fit


def calibration_flags(bank: Any, ref: str | None = None, *, against: str | None = None, z_crit: float = 3.0,
                      a_min: float = 0.25, alpha: float = 0.05) -> FlagsReport:
    """Item fit, wrong keys, kept-at-prior items, moves vs the previous calibration and drift/contamination
    by exposure (Mantel-Haenszel) for one calibration: what ``adt calibration flags`` prints and the report
    shows (one function, one input: the calibration's own responses and abilities)."""
    stored = load_calibration(bank, ref)
    frame = _calibration_responses(bank, stored)
    abilities = pd.Series(stored.abilities["theta"].to_numpy(dtype=float),
                          index=[str(m) for m in stored.abilities["model"]])
    frame = frame[frame["model"].isin(abilities.index)]
    prev_id = against or previous_calibration_id(bank, stored.calibration_id)
    drift_df = None
    if prev_id is not None:
        prev = load_calibration(bank, prev_id)
        prev_id = prev.calibration_id
        drift_df = parameter_drift(prev.usable_params(), prev.usable_se(), stored.usable_params(), stored.usable_se(),
                                   names=_drift_names(prev, stored), z_crit=z_crit)
    flags, fit = item_flags(bank, stored.params, stored.status_for_abilities(), frame, abilities, drift=drift_df,
                            a_min=a_min, alpha=alpha)
    report, note = _exposure_drift(bank, stored, frame, alpha)
    if report is not None:
        hit = report.items[report.items["flagged"]]
        extra = pd.DataFrame({"item_id": [str(i) for i in hit.index], "flag": "exposure_drift",
                              "value": hit["mh_odds_ratio"].to_numpy(dtype=float), "threshold": alpha,
                              "reason": [f"easier after publication at equal ability: MH odds ratio {o:.2f}, "
                                         f"ETS {c}, adjusted p = {p:.2g}" for o, c, p in
                                         zip(hit["mh_odds_ratio"], hit["ets_class"], hit["p_adjusted"], strict=True)]})
        if len(extra):
            aliases = bank.aliases_of(extra["item_id"])
            extra["aliases"] = [aliases.get(i, []) for i in extra["item_id"]]
            flags = pd.concat([flags, extra], ignore_index=True)
        flags = flags.sort_values(["item_id", "flag"], kind="stable", ignore_index=True)
    return FlagsReport(stored.calibration_id, prev_id, flags, fit.reset_index(), report, note)


def _exposure_drift(bank: Any, stored: StoredCalibration, frame: pd.DataFrame,
                    alpha: float) -> tuple[DriftReport | None, str]:
    first = _exposure(bank)
    if not first:
        return None, "no form has been published: no exposure to test"
    pub_round = frame["item_id"].map(first)
    published = pub_round.notna().to_numpy()
    rnd = pd.to_numeric(frame["round"], errors="coerce").to_numpy(dtype=float)
    unknown = published & np.isnan(rnd)
    exposed = published & ~np.isnan(rnd) & (rnd > pub_round.to_numpy(dtype=float, na_value=np.nan))
    data = pd.DataFrame({"model": frame["model"].to_numpy(), "item": frame["item_id"].to_numpy(),
                         "score": frame["score"].to_numpy(dtype=float), "exposed": exposed})[~unknown]
    if not data["exposed"].any():
        return None, "no responses to published items from rounds after their publication"
    if data.loc[~data["item"].isin(pd.Index(list(first))), "item"].empty:
        return None, "every answered item is published: no never-published items to compare with"
    # Matching ability from never-published items only (a contaminated item must not inflate it).
    clean = data[~data["item"].isin(pd.Index(list(first)))]
    rs_clean = ResponseSet.from_frame(clean, "model", "item", "score", item_ids=stored.params.item_ids)
    est = abilities_for(rs_clean, stored.params.subset(np.flatnonzero(stored.usable)), "eap",
                        prior=stored.prior())
    theta = pd.Series(est.theta, index=list(rs_clean.model_ids))[est.n_items > 0]
    n_unknown = int(unknown.sum())
    try:
        report = mantel_haenszel_drift(data, theta=theta, alpha=alpha)
    except InputError as exc:   # e.g. every model that answered exposed items answered only published ones
        return None, f"exposure drift not tested: {exc}"
    note = (f"Mantel-Haenszel by exposure over {report.settings['n_published']} published items, matching on "
            f"ability from never-published items" + (f"; {n_unknown} responses without a round left out"
                                                     if n_unknown else ""))
    return report, note


__all__ = ["CalibrateOptions", "CalibrationOutcome", "ContentPriorFit", "FlagsReport", "OnlineOptions",
           "OnlineOutcome", "calibrate", "calibrate_online_bank", "calibration_flags", "fit_priors",
           "diff_calibrations", "estimate_all", "estimate_model", "item_flags", "keyed_items", "latest_calibration_id",
           "read_responses"]
