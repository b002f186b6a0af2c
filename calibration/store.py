"""Calibrations versioned in the bank (the calibration room's own tables, migrations/001).

A calibration is stored once and never changed: method, IRT model, settings (JSON), seed, the bank's
snapshot id and history head at fitting time, the runs it used, per-item parameters with SEs and a
status, the latent distribution (quadrature points and weights), the abilities of the models in its
data and its fit statistics. After saving, the difficulties of its usable items are pushed to the bank
(``Bank.set_difficulties``) so difficulty bands follow the latest calibration.

Item status: ``calibrated`` (estimated from data), ``fixed`` (an anchor held at an earlier
calibration's values), or a kept-at-prior status (``unanswered``, ``all_correct``, ``all_wrong``)
whose parameters are the fitter's priors and must never be used as if calibrated.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from adtbase.errors import CalibrationError
from adtbase.jsonable import to_jsonable
from itembank import Bank

from .ability import Prior
from .data import ResponseSet
from .irt import GradedParams, ItemModel, ItemParams
from .mml import CalibrationResult
from .predictive import PredictiveModel
from .result import four_pl_view

USABLE_STATUSES = ("calibrated", "fixed")
KEPT_AT_PRIOR = ("unanswered", "all_correct", "all_wrong")
STATUS_REASONS = {
    "calibrated": "estimated from the responses",
    "fixed": "anchor held at the anchor calibration's values (fixed-parameter linking)",
    "unanswered": "no responses: kept at the prior",
    "all_correct": "every response correct: difficulty not identified, kept at the prior",
    "all_wrong": "every response wrong: difficulty not identified, kept at the prior",
}
PARAM_COLUMNS = ("item_id", "a", "b", "c", "d", "se_a", "se_b", "se_c", "se_d", "status", "n_responses")
_PCOLS = ("a", "b", "c", "d")


@dataclass(frozen=True)
class StoredCalibration:
    """A calibration read back from the bank; ``params`` holds every item it covered."""

    calibration_id: str
    info: dict[str, Any]                 # the calibrations row (settings parsed from JSON)
    params: ItemParams
    se: dict[str, NDArray[np.float64]]
    item_status: NDArray[np.str_]
    n_responses: NDArray[np.float64]     # per item (NaN where not recorded)
    quad_points: NDArray[np.float64]
    quad_weights: NDArray[np.float64]
    abilities: pd.DataFrame              # model, theta, se, n_responses
    run_ids: tuple[str, ...] = field(default_factory=tuple)
    predictive: PredictiveModel | None = None  # stored with it (``calibration.predictive``); None if not
    # Content priors stored with it (migration 004): item_id, a, b, log_a_sd, b_sd, from_parent for the
    # non-retired items it does not calibrate; None when it stored none.
    content_prior: pd.DataFrame | None = None
    # The family's own parameters where it is not the 4PL (migration 006: the many-facet GRM's thresholds
    # and raters); ``params`` is then its 2PL view. None for a 4PL calibration.
    item_model: ItemModel | None = None

    def ability_params(self) -> ItemModel:
        """What ability estimation reads: the family's own parameters, else the 4PL's."""
        return self.item_model if self.item_model is not None else self.params

    @property
    def method(self) -> str:
        return str(self.info["method"])

    @property
    def irt_model(self) -> str:
        return str(self.info["irt_model"])

    @property
    def snapshot_id(self) -> str:
        return str(self.info["snapshot_id"])

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.info["settings"])

    @property
    def usable(self) -> NDArray[np.bool_]:
        """Items whose parameters may be used (calibrated, or anchors fixed at calibrated values)."""
        return np.isin(self.item_status, USABLE_STATUSES) & np.isfinite(self.params.a) & np.isfinite(self.params.b)

    def usable_params(self) -> ItemParams:
        return self.params.subset(np.flatnonzero(self.usable))

    def usable_se(self) -> dict[str, NDArray[np.float64]]:
        keep = self.usable
        return {k: v[keep] for k, v in self.se.items()}

    def status_for_abilities(self) -> NDArray[np.str_]:
        """The status array with anchors counted as calibrated (what ``abilities_for`` expects)."""
        return np.where(self.usable, "calibrated", self.item_status)

    def prior(self) -> Prior:
        """The latent distribution as an ability prior (normal N(0, 1) when the fitter had none)."""
        if self.quad_points.size >= 2 and np.all(np.diff(self.quad_points) > 0) and self.quad_weights.sum() > 0:
            return Prior.from_grid(self.quad_points, self.quad_weights)
        return Prior.normal()

    def pool_frame(self, *, content_prior: bool = False) -> pd.DataFrame:
        """``item_id, a, b, c, d`` for the sampler and CAT: NaN where the item is kept at its prior.

        Where the calibration has predictive parameters they are used: forms that target information
        select the items whose discriminations look largest, so they must select (and be scored) on the
        empirically shrunk ones, not on the noisy point estimates (the winner's curse).

        ``content_prior`` (and the calibration stored content priors): the items it does not calibrate get
        their content prior's a, b (c, d NaN: the sampler's priors) and rows are added for the bank items
        outside it; ``param_source`` says where each row's a, b come from: calibrated | content_prior |
        prior (NaN). Those items are still uncalibrated (the sampler counts them so); CAT, which scores on
        these parameters, asks for calibrated ones only (the default). Without stored content priors the
        frame is the plain one (no ``param_source``), so forms drawn before rebuild as they were."""
        keep = self.usable
        source = self.params if self.predictive is None else self.predictive.params
        frame = pd.DataFrame({"item_id": list(self.params.item_ids)})
        for k in _PCOLS:
            frame[k] = np.where(keep, getattr(source, k), np.nan)
        if not content_prior or self.content_prior is None:
            return frame
        frame["param_source"] = np.where(keep, "calibrated", "prior").astype(object)
        cp = self.content_prior.set_index("item_id")
        fill = ~keep & frame["item_id"].isin(cp.index).to_numpy()
        ids = frame.loc[fill, "item_id"]
        frame.loc[fill, "a"] = cp["a"].reindex(ids).to_numpy(dtype=float)
        frame.loc[fill, "b"] = cp["b"].reindex(ids).to_numpy(dtype=float)
        frame.loc[fill, "param_source"] = "content_prior"
        outside = cp.index[~cp.index.isin(frame["item_id"])]
        if len(outside):
            extra = pd.DataFrame({"item_id": list(outside), "a": cp.loc[outside, "a"].to_numpy(dtype=float),
                                  "b": cp.loc[outside, "b"].to_numpy(dtype=float), "c": np.nan, "d": np.nan,
                                  "param_source": "content_prior"})
            frame = pd.concat([frame, extra], ignore_index=True)
        return frame

    def item_table(self) -> pd.DataFrame:
        frame = pd.DataFrame({"item_id": list(self.params.item_ids)})
        for k in _PCOLS:
            frame[k] = getattr(self.params, k)
        for k in _PCOLS:
            frame[f"se_{k}"] = self.se[k]
        frame["status"] = self.item_status
        frame["n_responses"] = self.n_responses
        return frame


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None



def item_statuses(result: CalibrationResult) -> NDArray[np.str_]:
    """The stored status per item: the fitter's status, with anchors marked ``fixed``."""
    status = np.asarray(result.item_status).astype("<U11")
    fixed = np.asarray(result.fixed, dtype=bool) if result.fixed.size else np.zeros(status.size, bool)
    return np.where(fixed, "fixed", status)


def save_calibration(bank: Bank, result: CalibrationResult, *, responses: ResponseSet | None = None,
                     runs: pd.DataFrame | Mapping[str, int] | None = None,
                     filters: Mapping[str, Sequence[str]] | None = None, link: Mapping[str, Any] | None = None,
                     extra_settings: Mapping[str, Any] | None = None, snapshot_id: str | None = None,
                     push_difficulties: bool = True, predictive: PredictiveModel | None = None,
                     content_prior: pd.DataFrame | None = None) -> str:
    """Store ``result`` as a new calibration of ``bank``; return its id.

    responses   the ResponseSet the fit saw (per-item and per-model response counts); optional.
    runs        the runs whose responses were used: a frame ``run_id, n_responses`` or {run_id: n}.
    filters     the item slice (``--filter``) the calibration covered.
    link        linking record (method, anchor_calibration_id, constants and their errors).
    snapshot_id the bank snapshot the responses were read from (default: the bank's current one).
    predictive  the calibration's ``PredictiveModel`` (``calibration.predictive.build_predictive``), stored
                with it so estimates need not rebuild it.
    content_prior  ``item_id, a, b, log_a_sd, b_sd, from_parent`` for the items it does not calibrate
                (``calibration.content_prior``; migration 004); none when None.
    One transaction writes every table; then, when ``push_difficulties``, ``Bank.set_difficulties``
    records the b of every usable item (calibrated or fixed) so difficulty bands follow this calibration.
    """
    family = None if isinstance(result.params, ItemParams) else result.params
    family_result = result
    result = four_pl_view(result)      # calibration_items holds the 2PL view of another family
    p = result.params
    n_items = len(p)
    status = item_statuses(result)
    if status.shape != (n_items,):
        raise CalibrationError(f"calibration has {status.size} statuses for {n_items} items")
    model_ids = tuple(result.model_ids)
    if len(result.theta) != len(model_ids):
        raise CalibrationError(f"calibration has {len(result.theta)} abilities for {len(model_ids)} models")
    if responses is not None and (responses.item_ids != tuple(p.item_ids) or responses.model_ids != model_ids):
        raise CalibrationError("responses do not match the calibration's item and model ids")
    snapshot_id = snapshot_id or bank.snapshot_id()
    settings = dict(result.settings)
    if extra_settings:
        settings.update(extra_settings)
    if link:
        settings["linking"] = dict(link)
    settings_json = json.dumps(to_jsonable(settings), sort_keys=True, default=str)
    created = _now()
    seq_row = bank.execute("SELECT coalesce(max(seq), 0) + 1 FROM calibrations").fetchone()
    seq = int(seq_row[0]) if seq_row else 1
    digest = hashlib.sha256(f"{snapshot_id}|{settings_json}|{created}|{seq}".encode()).hexdigest()
    cal_id = f"cal_{digest[:16]}"

    item_counts = (responses.counts_per_item().astype(float) if responses is not None
                   else np.full(n_items, np.nan))
    model_counts = (responses.counts_per_model().astype(float) if responses is not None
                    else np.full(len(model_ids), np.nan))
    items = pd.DataFrame({"calibration_id": cal_id, "item_id": list(p.item_ids)})
    for k in _PCOLS:
        items[k] = np.asarray(getattr(p, k), dtype=float)
    for k in _PCOLS:
        items[f"se_{k}"] = np.asarray(result.se.get(k, np.full(n_items, np.nan)), dtype=float)
    items["status"] = status
    items["n_responses"] = pd.Series(item_counts).astype("Int64")
    abil = pd.DataFrame({"calibration_id": cal_id, "model": list(model_ids),
                         "theta": np.asarray(result.theta, dtype=float),
                         "se": np.asarray(result.theta_se, dtype=float)})
    abil["n_responses"] = pd.Series(model_counts).astype("Int64")
    latent = pd.DataFrame({"calibration_id": cal_id, "k": np.arange(result.quad_points.size, dtype=np.int32),
                           "point": np.asarray(result.quad_points, dtype=float),
                           "weight": np.asarray(result.quad_weights, dtype=float)})
    if runs is None:
        run_frame = pd.DataFrame({"run_id": pd.Series([], dtype=object), "n_responses": pd.Series([], dtype="int64")})
    elif isinstance(runs, pd.DataFrame):
        run_frame = runs[["run_id", "n_responses"]].copy()
    else:
        run_frame = pd.DataFrame({"run_id": list(runs), "n_responses": [int(v) for v in runs.values()]})
    run_frame.insert(0, "calibration_id", cal_id)
    run_frame["n_responses"] = run_frame["n_responses"].astype("int64")

    link = dict(link or {})
    filt = {k: list(v) for k, v in (filters or {}).items()}
    names = ("_cal_items", "_cal_abil", "_cal_latent", "_cal_runs")
    with bank.transaction(), bank.registered(dict(zip(names, (items, abil, latent, run_frame), strict=True))):
        head = bank.record_head(f"calibration {cal_id}")
        bank.execute("INSERT INTO calibrations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                     "?, ?, ?)",
                     [cal_id, seq, result.method, result.model, settings_json, settings.get("seed"), snapshot_id,
                      head.n_events, head.hash, json.dumps(filt, sort_keys=True), link.get("method"),
                      link.get("anchor_calibration_id"), _num(result.loglik), _num(result.aic), _num(result.bic),
                      int(result.n_params), int(result.n_iter), bool(result.converged), len(model_ids), n_items,
                      int(np.isin(status, USABLE_STATUSES).sum()), int(result.n_obs), created])
        bank.execute("""INSERT INTO calibration_items SELECT calibration_id, item_id, a, b, c, d, se_a, se_b, se_c,
                        se_d, status, n_responses FROM _cal_items""")
        bank.execute("INSERT INTO calibration_abilities SELECT calibration_id, model, theta, se, n_responses "
                     "FROM _cal_abil")
        bank.execute("INSERT INTO calibration_latent SELECT calibration_id, k, point, weight FROM _cal_latent")
        bank.execute("INSERT INTO calibration_runs SELECT calibration_id, run_id, n_responses FROM _cal_runs")
        if family is not None:
            _insert_family(bank, cal_id, family, family_result)
        if predictive is not None:
            _insert_predictive(bank, cal_id, predictive)
        if content_prior is not None and len(content_prior):
            _insert_content_prior(bank, cal_id, content_prior, set(np.asarray(p.item_ids)[np.isin(status,
                                                                                                   USABLE_STATUSES)]))
    if push_difficulties:
        keep = np.isin(status, USABLE_STATUSES) & np.isfinite(p.b)
        ids = [p.item_ids[i] for i in np.flatnonzero(keep)]
        if ids:
            bank.set_difficulties(cal_id, ids, p.b[keep])
    return cal_id


# ---------------------------------------------------------------------------------------------- reading
def list_calibrations(bank: Bank) -> pd.DataFrame:
    """Every calibration, oldest first, with its fit statistics and provenance."""
    return bank.execute("""
        SELECT calibration_id, seq, created_at, method, irt_model, n_models, n_items, n_calibrated, n_obs,
               loglik, aic, bic, n_iter, converged, link_method, anchor_calibration_id, snapshot_id, seed, filters
        FROM calibrations ORDER BY seq""").df()


def resolve_calibration_id(bank: Bank, ref: str | None = None) -> str:
    """A calibration id from an id, a unique prefix of one, ``latest`` or None (= latest)."""
    if ref is None or ref == "latest":
        row = bank.execute("SELECT calibration_id FROM calibrations ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            raise CalibrationError("the bank has no calibration yet; run `adt calibrate` first")
        return str(row[0])
    hits = [r[0] for r in bank.execute(
        "SELECT calibration_id FROM calibrations WHERE starts_with(calibration_id, ?) ORDER BY seq", [ref]).fetchall()]
    if len(hits) == 1 or ref in hits:
        return ref if ref in hits else str(hits[0])
    known = [r[0] for r in bank.execute("SELECT calibration_id FROM calibrations ORDER BY seq DESC LIMIT 10").fetchall()]
    if not hits:
        raise CalibrationError(f"no calibration {ref!r}" + (f"; latest: {', '.join(known)}" if known else
                                                           "; the bank has none yet (run `adt calibrate`)"))
    raise CalibrationError(f"calibration {ref!r} is ambiguous: {', '.join(hits[:5])}")


def previous_calibration_id(bank: Bank, calibration_id: str) -> str | None:
    """The calibration stored just before ``calibration_id`` (None for the first)."""
    row = bank.execute("""SELECT calibration_id FROM calibrations WHERE seq <
        (SELECT seq FROM calibrations WHERE calibration_id = ?) ORDER BY seq DESC LIMIT 1""", [calibration_id]).fetchone()
    return None if row is None else str(row[0])


def calibration_info(bank: Bank, ref: str | None = None) -> dict[str, Any]:
    cal_id = resolve_calibration_id(bank, ref)
    frame = bank.execute("SELECT * FROM calibrations WHERE calibration_id = ?", [cal_id]).df()
    rec: dict[str, Any] = {str(k): v for k, v in frame.iloc[0].to_dict().items()}
    rec["settings"] = json.loads(rec["settings"])
    rec["filters"] = json.loads(rec["filters"])
    for k, v in list(rec.items()):
        if isinstance(v, (np.integer,)):
            rec[k] = int(v)
        elif isinstance(v, (np.floating,)):
            rec[k] = float(v)
        elif isinstance(v, np.bool_):
            rec[k] = bool(v)
    return rec


def calibration_params_frame(bank: Bank, ref: str | None = None) -> pd.DataFrame:
    """``item_id, a, b, c, d, se_a, se_b, se_c, se_d, status, n_responses`` of one calibration (latest by default)."""
    cal_id = resolve_calibration_id(bank, ref)
    return bank.execute(f"""SELECT {', '.join(PARAM_COLUMNS)} FROM calibration_items
                                 WHERE calibration_id = ? ORDER BY item_id""", [cal_id]).df()  # noqa: S608 - fixed list


def load_calibration(bank: Bank, ref: str | None = None) -> StoredCalibration:
    """A stored calibration (latest when ``ref`` is None) as parameters, SEs, statuses and latent."""
    info = calibration_info(bank, ref)
    cal_id = info["calibration_id"]
    items = calibration_params_frame(bank, cal_id)
    params = ItemParams(tuple(items["item_id"]), *(items[k].to_numpy(dtype=float, na_value=np.nan) for k in _PCOLS))
    se = {k: items[f"se_{k}"].to_numpy(dtype=float, na_value=np.nan) for k in _PCOLS}
    latent = bank.execute("SELECT point, weight FROM calibration_latent WHERE calibration_id = ? ORDER BY k",
                               [cal_id]).fetchnumpy()
    abilities = bank.execute("""SELECT model, theta, se, n_responses FROM calibration_abilities
                                     WHERE calibration_id = ? ORDER BY model""", [cal_id]).df()
    runs = tuple(r[0] for r in bank.execute(
        "SELECT run_id FROM calibration_runs WHERE calibration_id = ? ORDER BY run_id", [cal_id]).fetchall())
    stored = StoredCalibration(
        calibration_id=cal_id, info=info, params=params, se=se,
        item_status=items["status"].to_numpy().astype("<U11"),
        n_responses=items["n_responses"].to_numpy(dtype=float, na_value=np.nan),
        quad_points=np.asarray(latent["point"], dtype=float), quad_weights=np.asarray(latent["weight"], dtype=float),
        abilities=abilities, run_ids=runs, content_prior=load_content_prior(bank, cal_id),
        item_model=load_family(bank, cal_id, str(info["irt_model"]), params.item_ids))
    return replace(stored, predictive=load_predictive(bank, stored))


def _insert_family(bank: Bank, cal_id: str, family: ItemModel, result: CalibrationResult) -> None:
    """Migration 006: the family's columns() (long, one row per item and column, NaN padding left out) and,
    for a rater family, its raters."""
    cols = family.columns()
    ids = np.asarray(family.item_ids, dtype=object)
    parts = []
    for name, values in cols.items():
        v = np.asarray(values, dtype=float)
        keep = np.isfinite(v)
        se = np.asarray(result.se.get(name, np.full(v.size, np.nan)), dtype=float)
        parts.append(pd.DataFrame({"calibration_id": cal_id, "item_id": ids[keep], "name": name, "value": v[keep],
                                   "se": se[keep]}))
    frame = pd.concat(parts, ignore_index=True)
    raters = pd.DataFrame({"calibration_id": cal_id, "rater_id": list(getattr(family, "rater_ids", ())),
                           "severity": np.asarray(getattr(family, "severity", np.zeros(0)), dtype=float)})
    rater_se = {r["rater"]: r for r in result.settings.get("raters", [])}
    raters["se"] = [_num(rater_se.get(r, {}).get("se")) for r in raters["rater_id"]]
    raters["n_responses"] = [int(rater_se.get(r, {}).get("n_responses", 0)) for r in raters["rater_id"]]
    with bank.registered({"_cal_cols": frame, "_cal_raters": raters}):
        bank.execute("INSERT INTO calibration_item_columns SELECT calibration_id, item_id, name, value, se "
                     "FROM _cal_cols")
        bank.execute("INSERT INTO calibration_raters SELECT calibration_id, rater_id, severity, se, n_responses "
                     "FROM _cal_raters")


def load_family(bank: Bank, cal_id: str, family: str, item_ids: Sequence[str]) -> ItemModel | None:
    """A calibration's family parameters (migration 006) aligned with ``item_ids``; None for the 4PL."""
    if family != GradedParams.family:
        return None
    cols = bank.execute("SELECT item_id, name, value FROM calibration_item_columns WHERE calibration_id = ?",
                        [cal_id]).df()
    wide = cols.pivot(index="item_id", columns="name", values="value").reindex(list(item_ids))
    b_names = sorted((c for c in wide.columns if c.startswith("b")), key=lambda c: int(c[1:]))
    t = wide[b_names].to_numpy(dtype=float, na_value=np.nan)
    raters = bank.execute("SELECT rater_id, severity FROM calibration_raters WHERE calibration_id = ? "
                          "ORDER BY rater_id", [cal_id]).df()
    return GradedParams(tuple(item_ids), wide["a"].to_numpy(dtype=float, na_value=np.nan), t,
                        np.isfinite(t).sum(axis=1) + 1, tuple(raters["rater_id"]),
                        raters["severity"].to_numpy(dtype=float))


CONTENT_PRIOR_COLUMNS = ("item_id", "a", "b", "log_a_sd", "b_sd", "from_parent")


def _insert_content_prior(bank: Bank, cal_id: str, frame: pd.DataFrame, usable: set[str]) -> None:
    missing = [c for c in CONTENT_PRIOR_COLUMNS if c not in frame.columns]
    if missing:
        raise CalibrationError(f"content prior frame lacks {', '.join(missing)}")
    rows = frame.loc[:, list(CONTENT_PRIOR_COLUMNS)].copy()
    clash = sorted(set(rows["item_id"].astype(str)) & usable)
    if clash:
        raise CalibrationError(f"content priors for items the calibration calibrates: {', '.join(clash[:5])}")
    bad = ~np.isfinite(rows[["a", "b", "log_a_sd", "b_sd"]].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        raise CalibrationError(f"content prior not finite for {', '.join(rows.loc[bad, 'item_id'].astype(str)[:5])}")
    rows.insert(0, "calibration_id", cal_id)
    rows["from_parent"] = rows["from_parent"].astype(bool)
    with bank.registered({"_cal_cp": rows}):
        bank.execute("""INSERT INTO calibration_content_prior SELECT calibration_id, item_id, a, b, log_a_sd, b_sd,
                        from_parent FROM _cal_cp""")


def load_content_prior(bank: Bank, calibration_id: str) -> pd.DataFrame | None:
    """The content priors stored with a calibration (``CONTENT_PRIOR_COLUMNS``), None when it stored none."""
    frame = bank.execute("""SELECT item_id, a, b, log_a_sd, b_sd, from_parent FROM calibration_content_prior
                            WHERE calibration_id = ? ORDER BY item_id""", [calibration_id]).df()
    return frame if len(frame) else None


def _insert_predictive(bank: Bank, cal_id: str, model: PredictiveModel) -> None:
    frame = model.frame()
    frame.insert(0, "calibration_id", cal_id)
    bank.execute("INSERT INTO calibration_predictive VALUES (?, ?, ?, ?, ?, ?)",
                 [cal_id, float(model.misfit_sd), _num(model.theta_range[0]), _num(model.theta_range[1]),
                  model.se_source, json.dumps(to_jsonable(model.shrinkage), sort_keys=True)])
    with bank.registered({"_cal_pred": frame}):
        bank.execute("""INSERT INTO calibration_predictive_items SELECT calibration_id, item_id, a, b, c, d, se_a, se_b,
                        basis FROM _cal_pred""")


def save_predictive(bank: Bank, calibration_id: str, model: PredictiveModel) -> None:
    """Store the predictive parameters of an existing calibration that has none (one transaction)."""
    cal_id = resolve_calibration_id(bank, calibration_id)
    with bank.transaction():
        if bank.execute("SELECT 1 FROM calibration_predictive WHERE calibration_id = ?", [cal_id]).fetchone():
            raise CalibrationError(f"calibration {cal_id} already has predictive parameters")
        _insert_predictive(bank, cal_id, model)


def load_predictive(bank: Bank, stored: StoredCalibration) -> PredictiveModel | None:
    """The stored predictive parameters of ``stored`` (aligned with its items), None when it has none."""
    cal_id = stored.calibration_id
    row = bank.execute("""SELECT misfit_sd, theta_lo, theta_hi, se_source, shrinkage FROM calibration_predictive
                               WHERE calibration_id = ?""", [cal_id]).fetchone()
    if row is None:
        return None
    items = bank.execute("""SELECT item_id, a, b, c, d, se_a, se_b, basis FROM calibration_predictive_items
                                 WHERE calibration_id = ?""", [cal_id]).df().set_index("item_id")
    items = items.reindex(list(stored.params.item_ids))
    if items["basis"].isna().any():
        raise CalibrationError(f"calibration {cal_id}: predictive parameters do not cover its items")
    params = ItemParams(stored.params.item_ids, *(items[k].to_numpy(dtype=float, na_value=np.nan) for k in _PCOLS))
    nan = float("nan")
    return PredictiveModel(params, items["se_a"].to_numpy(dtype=float), items["se_b"].to_numpy(dtype=float),
                           items["basis"].to_numpy().astype(str), stored.prior(), float(row[0]),
                           (nan if row[1] is None else float(row[1]), nan if row[2] is None else float(row[2])),
                           str(row[3]), json.loads(row[4]))


def item_parameter_history(bank: Bank, item_id: str) -> list[dict[str, Any]]:
    """One item's parameters in every calibration that covered it, oldest first (the audit trail's hook)."""
    frame = bank.execute("""
        SELECT c.calibration_id, c.created_at, c.irt_model AS model, i.status, i.a, i.b, i.c, i.d,
               i.se_a, i.se_b, i.se_c, i.se_d
        FROM calibration_items i JOIN calibrations c USING (calibration_id)
        WHERE i.item_id = ? ORDER BY c.seq""", [item_id]).df()
    return [{k: (_num(v) if isinstance(v, float) else v) for k, v in r.items()} for r in frame.to_dict("records")]


__all__ = ["CONTENT_PRIOR_COLUMNS", "KEPT_AT_PRIOR", "PARAM_COLUMNS", "load_content_prior", "STATUS_REASONS", "USABLE_STATUSES", "StoredCalibration",
           "calibration_info", "calibration_params_frame", "item_parameter_history", "item_statuses",
           "list_calibrations", "load_calibration", "load_predictive", "save_predictive", "previous_calibration_id", "resolve_calibration_id",
           "save_calibration"]
