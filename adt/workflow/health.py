"""Bank health (issue 14, ``adt bank health`` and the report's section): items per stage and frequency tier,
fresh items per slice, and how many more rounds a round spec can be drawn before a slice runs out.

The counting is exact (``stage_tier_table``, ``slice_table``: the items frame, hand-countable). The projection
(``project``) is a deliberately simple flow model, pure, from numbers the bank records; what it assumes:

- **Demand** per round: the spec's quotas on the operational part (size less the spec's ``pretest`` count or
  share, when it has one), by ``sampler.quota_counts``; each quota value is its own slice, checked on its own
  (a form needs cells of two keys at once, e.g. hard *and* low, which the projection does not check).
- **Rates** from the history (``Bank.events_by_round``): over the rounds so far (1 .. latest), new items per
  round (``created`` events), promotions per round (stage moves to operational other than returns) and
  retirements per round (``retired`` events). Before any round the rates are 0 and the pool stays as it is.
- **Tag slices** (any key but ``frequency_tier``): an operational item is drawn again and again, so the
  supply of a slice is its operational items (a rested one back from the lifecycle pass of its
  ``rest_until_round``, the projection's first step at the earliest),
  plus promotions in the share the slice has among today's pretest items, less retirements in its share among
  today's operational items. Rests are left out beyond those resting now: over time as many come back as go.
- **Frequency tiers**: an item drawn gains ``runs per form`` runs (the latest round's model runs per form)
  and one publication. A drawn low item leaves low, to medium if that keeps it at or under ``tier_high_runs``
  (and one publication is not above ``tier_high_publications``), else to high; a share
  ``min(1, max(runs per form / tier_high_runs, 1 / tier_high_publications))`` of the drawn medium items pass into
  high each round (as if medium items sat evenly over the medium range). Promoted items were exposed as
  pretest items: they enter the tiers in the shares today's exposed pretest items have (low only where
  ``tier_low_runs`` keeps an item exposed by runs alone fresh; none exposed yet: the tier one form gives). Retirements leave high (the most exposed go first).
- **Pretest** (when the spec seeds pretest items): the approved pretest pool gains the new items and loses the
  promotions and retirements in its share.
- The projection's row for round ``r`` is the supply left for the form of round ``r + 1`` (the first row,
  the current round: today's supply for the next form). ``rounds_left`` is how many more rounds can be drawn
  before a row's supply falls below the demand (0: the next form cannot be filled from the slice; missing: not
  within the horizon); ``net_next_round`` is the projected change of its supply over the next round.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from adtbase import lifecycle
from adtbase.errors import InputError

TIERS = ("low", "medium", "high")
TIER_KEY = "frequency_tier"
HORIZON = 50  # rounds projected
LEFT_COLUMNS = ["key", "value", "supply_now", "demand", "net_next_round", "rounds_left"]


@dataclass(frozen=True)
class Rates:
    """Flows per round, from the history (see the module doc)."""

    n_rounds: int
    created: float
    promoted: float
    retired: float
    rested: float
    runs_per_form: float

    def as_dict(self) -> dict[str, Any]:
        return {"rounds": self.n_rounds, "created_per_round": self.created, "promoted_per_round": self.promoted,
                "retired_per_round": self.retired, "rested_per_round": self.rested, "runs_per_form": self.runs_per_form}


@dataclass(frozen=True)
class Demand:
    """Operational items a round needs per slice ``(key, value)``, and the pretest seats."""

    size: int
    operational: int
    pretest: int
    slices: tuple[tuple[str, str, int], ...]
    source: str = ""


@dataclass(frozen=True)
class Health:
    round_no: int
    stages: pd.DataFrame          # stage x frequency tier counts (with totals)
    slices: pd.DataFrame          # key, value, operational, fresh, medium, high, rested, pretest
    demand: Demand | None
    rates: Rates
    projection: pd.DataFrame      # round, key, value, supply, demand
    rounds_left: pd.DataFrame     # LEFT_COLUMNS
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round_no, "stages": self.stages.reset_index().to_dict("records"),
                "slices": self.slices.to_dict("records"),
                "demand": None if self.demand is None else {
                    "size": self.demand.size, "operational": self.demand.operational, "pretest": self.demand.pretest,
                    "source": self.demand.source,
                    "slices": [{"key": k, "value": v, "per_round": n} for k, v, n in self.demand.slices]},
                "rates": self.rates.as_dict(), "rounds_left": self.rounds_left.to_dict("records"),
                "notes": list(self.notes)}


# -- pure counting ----------------------------------------------------------------------------------
def stage_tier_table(items: pd.DataFrame) -> pd.DataFrame:
    """Items per stage (rows, every stage) x frequency tier (columns, every tier), with totals."""
    table = pd.crosstab(pd.Categorical(items["stage"], categories=lifecycle.STAGES),
                        pd.Categorical(items[TIER_KEY], categories=TIERS), dropna=False)
    table.index.name, table.columns.name = "stage", None
    table.columns = [str(c) for c in table.columns]
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table.astype(int)


def _values(cell: object) -> list[str]:
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    return [v for v in str(cell).split("|") if v]


def slice_table(items: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per value of each key: ``operational`` (drawable now), its ``fresh`` (low tier) part,
    ``medium`` and ``high`` parts, ``rested`` and approved ``pretest`` items. An item with several values of a
    key counts in each."""
    rows = []
    for key in keys:
        if key not in items.columns:
            continue
        exploded = items.assign(_v=items[key].map(_values)).explode("_v").dropna(subset=["_v"])
        ok = exploded["review_state"] == "approved"
        for value, g in exploded[ok].groupby("_v", sort=True):
            op = g[g["stage"] == lifecycle.OPERATIONAL]
            rows.append({"key": key, "value": str(value), "operational": len(op),
                         "fresh": int((op[TIER_KEY] == "low").sum()), "medium": int((op[TIER_KEY] == "medium").sum()),
                         "high": int((op[TIER_KEY] == "high").sum()),
                         "rested": int((g["stage"] == lifecycle.RESTED).sum()),
                         "pretest": int((g["stage"] == lifecycle.PRETEST).sum())})
    return pd.DataFrame(rows, columns=["key", "value", "operational", "fresh", "medium", "high", "rested", "pretest"])


def demand_from_spec(spec: Mapping[str, Any], *, source: str = "form spec") -> Demand:
    """The per-round demand of a form spec (a file's mapping or a stored form's ``spec``): quotas on the
    operational part; ``pretest`` may be a count, a share of the size, or a mapping with ``count``/``n`` or
    ``share`` (the pretest-seeding spec)."""
    from sampler import OTHER, FormSpec, quota_counts

    size = spec.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise InputError(f"{source}: field 'size' must be a positive whole number to project demand (got {size!r})")
    pre = spec.get("pretest") or 0
    if isinstance(pre, Mapping):
        pre = pre.get("count", pre.get("n", pre.get("share", 0))) or 0
    if isinstance(pre, bool) or not isinstance(pre, int | float) or pre < 0:
        raise InputError(f"{source}: field 'pretest' must be a count or a share (got {spec.get('pretest')!r})")
    n_pre = int(round(pre * size)) if isinstance(pre, float) and pre < 1 else int(pre)
    if n_pre >= size:
        raise InputError(f"{source}: field 'pretest' ({n_pre}) leaves no operational items of {size}")
    parsed = FormSpec.from_dict({"size": size, "quotas": spec.get("quotas") or {}}, source=source)
    n_op = size - n_pre
    slices = [(q.key, v, n) for q in parsed.quotas for v, n in quota_counts(q, n_op).items() if v != OTHER]
    return Demand(size, n_op, n_pre, tuple(slices), source)


def rates_from_events(events: pd.DataFrame, latest_round: int, runs_per_form: float) -> Rates:
    """Flows per round over rounds 1 .. ``latest_round`` from ``Bank.events_by_round``'s frame."""
    n = max(int(latest_round), 0)
    if n == 0:
        return Rates(0, 0.0, 0.0, 0.0, 0.0, runs_per_form)
    ev = events[events["round_no"] >= 1]

    def count(mask: pd.Series) -> float:
        return float(ev.loc[mask, "n"].sum()) / n

    stage = ev["kind"] == lifecycle.STAGE_EVENT
    return Rates(n, count(ev["kind"] == "created"),
                 count(stage & (ev["to"] == lifecycle.OPERATIONAL) & (ev["from"] == lifecycle.PRETEST)),
                 count(ev["kind"] == "retired"), count(stage & (ev["to"] == lifecycle.RESTED)), runs_per_form)


# -- the projection (pure) ----------------------------------------------------------------------------
def project(items: pd.DataFrame, demand: Demand, rates: Rates, *, round_no: int, tier_high_runs: int,
            tier_high_publications: int = 1, horizon: int = HORIZON) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Projected supply and demand per slice over the next ``horizon`` rounds (see the module doc), and each
    slice's rounds left. ``items``: the items frame (``stage, review_state, frequency_tier``, the keys)."""
    live = items[items["review_state"] == "approved"]
    op = live[live["stage"] == lifecycle.OPERATIONAL]
    rested = live[live["stage"] == lifecycle.RESTED]
    pre = live[live["stage"] == lifecycle.PRETEST]
    # a rested item returns at the lifecycle pass of its rest_until_round (the projection's first step at the
    # earliest), drawable from the next round on
    back_at = rested["rest_until_round"].fillna(round_no + 1).astype(int).clip(lower=round_no + 1)

    def share(frame: pd.DataFrame, key: str, value: str) -> float:
        if not len(frame) or key not in frame.columns:
            return 0.0
        return float(frame[key].map(lambda c: value in _values(c)).mean())

    def returning(key: str, value: str, rnd: int) -> int:
        if not len(rested) or key not in rested.columns:
            return 0
        hit = rested[key].map(lambda c: value in _values(c)).to_numpy(bool)
        return int((hit & (back_at.to_numpy() == rnd)).sum())

    rows: list[tuple[int, str, str, float, int]] = []
    d_tier = {v: n for k, v, n in demand.slices if k == TIER_KEY}
    # tiers: one joint flow (a drawn item moves up)
    tiers = {t: float((op[TIER_KEY] == t).sum()) for t in TIERS}
    r = rates.runs_per_form
    low_to_high = r > tier_high_runs or tier_high_publications < 1
    # a draw adds r runs and one publication: the share of drawn medium items it lifts past either threshold
    up = 1.0 if tier_high_runs <= 0 or tier_high_publications < 1 else \
        min(1.0, max(r / tier_high_runs, 1.0 / tier_high_publications))
    # a promoted item has answers, so it was exposed: it enters the tier today's exposed pretest items have
    exposed = pre[pre["exposure_runs"] > 0] if "exposure_runs" in pre.columns else pre.iloc[:0]
    if len(exposed):
        promo_tier = {t: rates.promoted * share(exposed, TIER_KEY, t) for t in TIERS}
    else:
        promo_tier = {"low": 0.0, "medium": 0.0, "high": 0.0}
        promo_tier["high" if low_to_high else "medium"] = rates.promoted
    pre_pool = float(len(pre))
    tag_slices = [(k, v, n) for k, v, n in demand.slices if k != TIER_KEY]
    tag_supply = {(k, v): float(((op[k].map(lambda c, v=v: v in _values(c))) if k in op.columns
                                 else pd.Series(False, index=op.index)).sum()) for k, v, _ in tag_slices}
    for step in range(0, horizon + 1):
        rnd = round_no + step
        if step > 0:
            d_low, d_med = min(d_tier.get("low", 0), tiers["low"]), min(d_tier.get("medium", 0), tiers["medium"])
            moved_med = up * d_med
            tiers["low"] -= d_low
            tiers["medium"] += (0 if low_to_high else d_low) - moved_med + promo_tier["medium"]
            tiers["high"] += (d_low if low_to_high else 0) + moved_med + promo_tier["high"] - rates.retired
            tiers["low"] += promo_tier["low"]
            for t in TIERS:
                tiers[t] = max(tiers[t] + returning(TIER_KEY, t, rnd), 0.0)
            for k, v, _ in tag_slices:
                s = tag_supply[(k, v)] + rates.promoted * share(pre, k, v) - rates.retired * share(op, k, v) \
                    + returning(k, v, rnd)
                tag_supply[(k, v)] = max(s, 0.0)
            pre_pool = max(pre_pool + rates.created - rates.promoted - rates.retired * (len(pre) / max(len(live), 1)),
                           0.0)
        for t, n in d_tier.items():
            rows.append((rnd, TIER_KEY, t, tiers[t], n))
        for k, v, n in tag_slices:
            rows.append((rnd, k, v, tag_supply[(k, v)], n))
        if demand.pretest:
            rows.append((rnd, "stage", lifecycle.PRETEST, pre_pool, demand.pretest))
    proj = pd.DataFrame(rows, columns=["round", "key", "value", "supply", "demand"])
    left = []
    for (k, v), g in proj.groupby(["key", "value"], sort=False):
        g = g.sort_values("round")
        short = g[g["supply"] < g["demand"]]
        now = float(g["supply"].iloc[0])
        net = float(g["supply"].iloc[1]) - now if len(g) > 1 else 0.0  # the next round's change
        left.append({"key": k, "value": v, "supply_now": int(round(now)), "demand": int(g["demand"].iloc[0]),
                     "net_next_round": round(net, 2),
                     "rounds_left": pd.NA if short.empty else int(short["round"].iloc[0]) - round_no})
    out = pd.DataFrame(left, columns=LEFT_COLUMNS)
    out["rounds_left"] = out["rounds_left"].astype("Int64")
    return proj, out


# -- the bank's side --------------------------------------------------------------------------------
def _runs_per_form(bank: Any, round_no: int) -> float:
    runs = bank.runs()
    if runs.empty or round_no < 1:
        return 0.0
    last = runs[(runs["round_no"] == round_no) & runs["form_name"].notna() & (runs["kind"] != "qc")]
    forms = last["form_name"].nunique()
    return float(len(last)) / forms if forms else 0.0


def bank_health(bank: Any, *, spec: Mapping[str, Any] | None = None, spec_source: str = "form spec",
                by: Sequence[str] = (), round_no: int | None = None, horizon: int = HORIZON) -> Health:
    """Counts and the projection for ``bank``: the demand of ``spec`` (else the last stored form's spec)."""
    notes: list[str] = []
    from adt.workflow.lifecycle import current_round

    rnd = current_round(bank, round_no)
    items = bank.items(include_retired=True)
    missing = [k for k in by if k not in items.columns]
    if missing:
        raise InputError(f"--by {', '.join(missing)}: no such key on the bank's items; "
                         f"tag keys: {', '.join(sorted(bank.tag_keys()))}")
    demand = None
    if spec is not None:
        demand = demand_from_spec(spec, source=spec_source)
    else:
        forms = bank.forms()
        if len(forms):  # the last stored form's spec: one it cannot read is a note, not an error
            name = str(forms["name"].iloc[-1])
            try:
                demand = demand_from_spec(bank.form(name)["spec"], source=f"the spec of form {name} (the last stored)")
            except InputError as e:
                notes.append(f"no demand to project: {e}")
        else:
            notes.append("no spec given and no form stored: no demand to project")
    keys = list(dict.fromkeys([*(k for k, _, _ in (demand.slices if demand else ()) if k != TIER_KEY), *by]))
    absent = [k for k in keys if k not in items.columns]
    if absent:
        notes.append(f"quota key(s) no item carries: {', '.join(absent)} (no supply)")
    stages = stage_tier_table(items)
    slices = slice_table(items, [*keys, TIER_KEY])
    events = bank.events_by_round(["created", "retired", lifecycle.STAGE_EVENT])
    rates = rates_from_events(events, rnd, _runs_per_form(bank, rnd))
    if rates.n_rounds == 0:
        notes.append("no round published yet: growth, promotion and retirement rates are 0 (the pool held as it is)")
    settings = bank.settings()
    if demand is not None:
        proj, left = project(items, demand, rates, round_no=rnd, tier_high_runs=int(settings["tier_high_runs"]),
                             tier_high_publications=int(settings["tier_high_publications"]), horizon=horizon)
    else:
        proj = pd.DataFrame(columns=["round", "key", "value", "supply", "demand"])
        left = pd.DataFrame(columns=LEFT_COLUMNS)
    n_op = int(((items["stage"] == lifecycle.OPERATIONAL) & (items["review_state"] == "approved")).sum())
    if demand is not None and n_op < demand.operational:
        notes.append(f"young bank: {n_op} operational items for a form of {demand.operational} operational ones; "
                     "pretest items stand in at their best parameters until enough are promoted (adtbase.lifecycle)")
    return Health(rnd, stages, slices, demand, rates, proj, left, tuple(notes))


def short_slices(health: Health) -> list[str]:
    """The slices that run out within the horizon, soonest first, as text."""
    left = health.rounds_left.dropna(subset=["rounds_left"]).sort_values("rounds_left")
    return [f"{r.key}={r.value}: {int(r.rounds_left)} round(s) left" for r in left.itertuples()]


__all__ = ["HORIZON", "Demand", "Health", "Rates", "bank_health", "demand_from_spec", "project",
           "rates_from_events", "short_slices", "slice_table", "stage_tier_table"]
