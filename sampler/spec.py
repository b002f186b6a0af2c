"""Form specifications: what a form must hold, from YAML/JSON files, dicts or parsed command-line flags.

Decisions (documented here once, referred to elsewhere):

- **Quota amounts.** Within one key every amount is either a *count* (a Python/YAML ``int``, or
  ``"70"`` on the CLI) or a *fraction* (a ``float`` in [0, 1], or ``"0.7"`` / ``"70%"`` on the CLI; the
  flag texts are the command layer's, parsed in ``adt.flags``);
  mixing both in one key is an error. Fractions become counts by largest-remainder rounding
  (``sampler.quotas.largest_remainder``). Values a key does not list form an implicit "other" cell
  that takes whatever the listed values leave of the form size; when the fractions sum to 1 (or
  the counts to the size) "other" gets nothing, i.e. unlisted values are excluded from the form.
- **Filters.** ``include`` / ``exclude`` map a key to a list of values (an item matches a key when it has
  any listed value). A spec holds them parsed: the ``--filter`` text grammar and its parser belong to
  the command layer (``adt.flags``, as do ``--quota`` and ``--max-overlap``), and ``from_cli`` takes their
  results.
- **Review states** (``adtbase.review``). Default ``[approved]``: a draft waits for its reviewer, and
  a spec that wants drafts too says ``review_states: [approved, draft]``. ``rejected`` and ``retired``
  are never eligible; asking for them, or for a state that does not exist, is an error.
- **Enemies.** ``enemy_threshold`` (cosine similarity of TF-IDF character n-grams, default 0.9)
  finds near-duplicate pairs among the eligible items; ``enemy_pairs`` adds explicit pairs;
  ``enemy_threshold: null`` turns detection off. Enemies never share a form.
- **Stages** (``adtbase.lifecycle``). ``stages`` (default ``[operational]``) are the stages the form's
  operational (scored) part draws from; ``retired`` is never eligible. A spec stored without ``stages`` is a
  form drawn before stages existed: it had no stage rule (``FormSpec.stages is None``: every stage eligible)
  and rebuilds so. A young bank whose operational pool cannot fill the operational part lets pretest-stage
  items stand in (``sampler.pretest``).
- **Pretest part** (``pretest``: ``count`` or ``share``, ``include``/``exclude``, ``quotas``, ``stages``,
  default ``[pretest]``). ``size`` is the whole form: ``n_pretest`` = ``count``, or ``share`` of ``size``
  rounded half up; the operational part is ``size - n_pretest`` and the main quotas apply to it exactly
  (a fraction quota is a share of the operational part). The pretest part's own quotas are shares or
  counts of ``n_pretest``; it also keeps the main spec's review states and filters (a form's slice is one
  slice). Pretest items are administered like any other and never scored.
- **Target abilities.** ``theta_range: [lo, hi]`` with ``theta_points`` grid points (default
  [-1, 1] with 5 points), or an explicit ``theta_grid`` list; information objectives are the mean
  test information over the grid.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from adtbase import lifecycle, review
from adtbase.errors import InputError
from adtbase.registry import did_you_mean

DEFAULT_REVIEW_STATES: tuple[str, ...] = review.ELIGIBLE_BY_DEFAULT
NEVER_ELIGIBLE: tuple[str, ...] = review.NEVER_ELIGIBLE
DEFAULT_THETA_RANGE, DEFAULT_THETA_POINTS = (-1.0, 1.0), 5   # target abilities when a spec names none


def theta_points(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """``n`` evenly spaced target abilities from ``lo`` to ``hi`` (one point when they are equal)."""
    return tuple(float(x) for x in np.linspace(lo, hi, n)) if lo < hi else (float(lo),)


DEFAULT_THETA_GRID = theta_points(*DEFAULT_THETA_RANGE, DEFAULT_THETA_POINTS)
# Bank-computed tags with a closed value list (a quota or filter on another value is a typo).
CLOSED_KEYS: dict[str, tuple[str, ...]] = {
    "frequency_tier": ("low", "medium", "high"),
    "difficulty_band": ("hard", "medium", "easy", "unknown"),
}

Amount = int | float
# Stages a form part may draw from (retired items are never eligible).
FORM_STAGES: tuple[str, ...] = lifecycle.SET_STAGES
DEFAULT_STAGES: tuple[str, ...] = lifecycle.SCORED
DEFAULT_PRETEST_STAGES: tuple[str, ...] = (lifecycle.PRETEST,)


@dataclass(frozen=True)
class Quota:
    """Required amounts for some values of one tag key (all counts or all fractions)."""

    key: str
    amounts: tuple[tuple[str, Amount], ...]

    @property
    def is_fraction(self) -> bool:
        return any(isinstance(v, float) for _, v in self.amounts)

    def as_dict(self) -> dict[str, Amount]:
        return dict(self.amounts)


@dataclass(frozen=True)
class OverlapLimit:
    """At most ``max_fraction`` of the form's items may come from earlier form ``form``."""

    form: str
    item_ids: frozenset[str]
    max_fraction: float

    def max_items(self, size: int) -> int:
        # Floor, with a small tolerance so 0.2 * 500 is 100, not 99.
        return int(math.floor(self.max_fraction * size + 1e-9))


Filters = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class PretestSpec:
    """The unscored part of a form: how many (``count``, or ``share`` of the form size), its own slice and quotas."""

    count: int | None = None
    share: float | None = None
    include: Filters = ()
    exclude: Filters = ()
    quotas: tuple[Quota, ...] = ()
    stages: tuple[str, ...] = DEFAULT_PRETEST_STAGES

    def __post_init__(self) -> None:
        where = "form spec field 'pretest"
        if (self.count is None) == (self.share is None):
            raise InputError(f"{where}': give one of 'count' (items) or 'share' (of the form size)")
        if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)
                                       or self.count < 0):
            raise InputError(f"{where}.count': expected a non-negative integer, got {self.count!r}")
        if self.share is not None and (isinstance(self.share, bool) or not isinstance(self.share, int | float)
                                       or not 0.0 <= float(self.share) <= 1.0):
            raise InputError(f"{where}.share': expected a fraction in [0, 1] of the form size, got {self.share!r}")
        _check_stages(self.stages, f"{where}.stages'")
        keys = [q.key for q in self.quotas]
        if len(set(keys)) != len(keys):
            raise InputError(f"{where}.quotas': key given twice in {keys}")

    def n_items(self, size: int) -> int:
        """Pretest items on a form of ``size`` items (a share rounded half up)."""
        if self.count is not None:
            return int(self.count)
        return int(math.floor(float(self.share or 0.0) * size + 0.5 + 1e-9))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "share": self.share,
                "include": {k: list(v) for k, v in self.include}, "exclude": {k: list(v) for k, v in self.exclude},
                "quotas": {q.key: dict(q.amounts) for q in self.quotas}, "stages": list(self.stages)}


def _check_stages(stages: Sequence[str], where: str) -> None:
    if not stages:
        raise InputError(f"{where}: needs at least one stage ({', '.join(FORM_STAGES)})")
    for st in stages:
        if st == lifecycle.RETIRED:
            raise InputError(f"{where}: retired items are never eligible")
        if st not in FORM_STAGES:
            raise InputError(f"{where}: {st!r} is not a stage a form draws from; use {', '.join(FORM_STAGES)}"
                             f"{did_you_mean(str(st), FORM_STAGES)}")


@dataclass(frozen=True)
class FormSpec:
    """What a form must hold. Immutable; build with ``from_dict``/``from_yaml``/``from_cli``."""

    size: int | None = None
    quotas: tuple[Quota, ...] = ()
    include: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[tuple[str, tuple[str, ...]], ...] = ()
    review_states: tuple[str, ...] = DEFAULT_REVIEW_STATES
    overlap: tuple[OverlapLimit, ...] = ()
    enemy_pairs: tuple[tuple[str, str], ...] = ()
    enemy_threshold: float | None = 0.9
    theta_grid: tuple[float, ...] = DEFAULT_THETA_GRID
    seed: int | None = None
    strategy: str = "stratified"
    options: tuple[tuple[str, Any], ...] = field(default=())
    # Stages of the operational (scored) part; None: a form drawn before stages (no stage rule).
    stages: tuple[str, ...] | None = DEFAULT_STAGES
    pretest: PretestSpec | None = None

    def __post_init__(self) -> None:
        if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
            raise InputError(f"form spec field 'size': expected a positive integer, got {self.size!r}")
        if self.stages is not None:
            _check_stages(self.stages, "form spec field 'stages'")
        if self.pretest is not None:
            if self.stages is None:
                raise InputError("form spec field 'pretest': a form drawn before stages has no pretest part")
            if self.size is None:
                raise InputError("form spec field 'pretest': a pretest part needs a form size ('size')")
            n = self.pretest.n_items(self.size)
            if n >= self.size:
                what = "count" if self.pretest.count is not None else "share"
                raise InputError(f"form spec field 'pretest.{what}': {n} pretest items leave no operational item "
                                 f"on a form of {self.size}")
        keys = [q.key for q in self.quotas]
        if len(set(keys)) != len(keys):
            raise InputError(f"form spec field 'quotas': key given twice in {keys}")
        for state in self.review_states:
            if state in NEVER_ELIGIBLE:
                raise InputError(f"form spec field 'review_states': {state!r} items are never eligible")
            if state not in review.STATES:
                raise InputError(f"form spec field 'review_states': {state!r} is not a review state; use "
                                 f"{' or '.join(s for s in review.STATES if s not in NEVER_ELIGIBLE)}"
                                 f"{did_you_mean(state, review.STATES)}")
        if self.enemy_threshold is not None and not 0.0 < self.enemy_threshold <= 1.0:
            raise InputError(f"form spec field 'enemy_threshold': expected (0, 1], got {self.enemy_threshold}")
        if not self.theta_grid:
            raise InputError("form spec field 'theta_grid': needs at least one ability point")

    # -- views -----------------------------------------------------------------------------------
    @property
    def quota_keys(self) -> tuple[str, ...]:
        return tuple(q.key for q in self.quotas)

    @property
    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)

    @property
    def n_pretest(self) -> int:
        return 0 if self.pretest is None or self.size is None else self.pretest.n_items(self.size)

    @property
    def n_operational(self) -> int | None:
        """Size of the operational (scored) part: the form size less its pretest items."""
        return None if self.size is None else self.size - self.n_pretest

    def operational(self) -> FormSpec:
        """The spec of the operational part: ``size - n_pretest`` items, no pretest part."""
        return self if self.pretest is None else self.with_(size=self.n_operational, pretest=None)

    def pretest_part(self) -> FormSpec:
        """The spec of the pretest part: its own stages, quotas and filters on top of the main slice, random."""
        if self.pretest is None:
            raise InputError("form spec has no pretest part")
        p = self.pretest
        return self.with_(size=p.n_items(int(self.size or 0)), quotas=p.quotas, include=self.include + p.include,
                          exclude=self.exclude + p.exclude, stages=p.stages, pretest=None, overlap=(),
                          strategy="stratified")

    def with_(self, **changes: Any) -> FormSpec:
        """A copy with some fields changed (validated again)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d.update(changes)
        return FormSpec(**d)

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain form (sorted, JSON-able): what the content hash and the bank store."""
        return {
            "size": self.size,
            "quotas": {q.key: dict(q.amounts) for q in self.quotas},
            "include": {k: list(v) for k, v in self.include},
            "exclude": {k: list(v) for k, v in self.exclude},
            "review_states": list(self.review_states),
            "overlap": [{"form": o.form, "max_fraction": o.max_fraction, "item_ids": sorted(o.item_ids)}
                        for o in self.overlap],
            "enemy_pairs": [list(p) for p in self.enemy_pairs],
            "enemy_threshold": self.enemy_threshold,
            "theta_grid": list(self.theta_grid),
            "seed": self.seed,
            "strategy": self.strategy,
            "options": {k: v for k, v in self.options},
            # A form drawn before stages stores neither key (its canonical text, so its hash, is unchanged).
            **({} if self.stages is None else {
                "stages": list(self.stages), "pretest": None if self.pretest is None else self.pretest.to_dict()}),
        }

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    # -- constructors ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "form spec",
                  earlier_forms: Mapping[str, Iterable[str]] | None = None) -> FormSpec:
        """Build from a plain mapping (parsed YAML/JSON). ``earlier_forms`` maps form names used in
        ``overlap`` to their item ids (the bank supplies them; a spec may also list ``item_ids``)."""
        if not isinstance(d, Mapping):
            raise InputError(f"{source}: expected a mapping at the top level, got {type(d).__name__}")
        known = {"size", "quotas", "include", "exclude", "filters", "review_states", "overlap",
                 "max_overlap", "enemy_pairs", "enemy_threshold", "theta_range", "theta_points",
                 "theta_grid", "seed", "strategy", "options", "stages", "pretest"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        size = d.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise InputError(f"{source} field 'size': expected an integer, got {size!r}")
        quotas = _parse_quotas(d.get("quotas") or {}, source)
        include = _parse_filter_map(d.get("include", d.get("filters")) or {}, f"{source} field 'include'")
        exclude = _parse_filter_map(d.get("exclude") or {}, f"{source} field 'exclude'")
        states = d.get("review_states", DEFAULT_REVIEW_STATES)
        if isinstance(states, str):
            states = [states]
        overlap = _parse_overlap(d.get("overlap", d.get("max_overlap")) or [], source, earlier_forms or {})
        pairs = []
        for i, p in enumerate(d.get("enemy_pairs") or []):
            if not (isinstance(p, list | tuple) and len(p) == 2):
                raise InputError(f"{source} field 'enemy_pairs'[{i}]: expected a pair of item ids, got {p!r}")
            pairs.append((str(p[0]), str(p[1])))
        threshold = d.get("enemy_threshold", 0.9)
        grid = _parse_theta(d, source)
        seed = d.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise InputError(f"{source} field 'seed': expected a non-negative integer, got {seed!r}")
        options = d.get("options") or {}
        if not isinstance(options, Mapping):
            raise InputError(f"{source} field 'options': expected a mapping, got {options!r}")
        stages = d.get("stages", DEFAULT_STAGES)
        if isinstance(stages, str):
            stages = [stages]
        if not isinstance(stages, list | tuple):
            raise InputError(f"{source} field 'stages': expected a list of stages, got {stages!r}")
        pretest = _parse_pretest(d.get("pretest"), source)
        return cls(size=size, quotas=quotas, include=include, exclude=exclude,
                   stages=tuple(str(s) for s in stages), pretest=pretest,
                   review_states=tuple(str(s) for s in states), overlap=overlap,
                   enemy_pairs=tuple(pairs),
                   enemy_threshold=None if threshold is None else float(threshold), theta_grid=grid,
                   seed=seed, strategy=str(d.get("strategy", "stratified")),
                   options=tuple(sorted((str(k), _freeze(v)) for k, v in options.items())))

    @classmethod
    def from_stored(cls, d: Mapping[str, Any], *, source: str = "stored form spec") -> FormSpec:
        """A spec as a stored form recorded it. One without ``stages`` was drawn before stages existed: it had
        no stage rule (``stages=None``), so it rebuilds (and hashes) as it was drawn."""
        spec = cls.from_dict(d, source=source)
        return spec if "stages" in d else spec.with_(stages=None)

    @classmethod
    def from_yaml(cls, path: str | Path, *,
                  earlier_forms: Mapping[str, Iterable[str]] | None = None) -> FormSpec:
        """Read a YAML or JSON spec file (JSON is YAML)."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise InputError(f"{p}: cannot read form spec ({e.strerror})") from e
        except yaml.YAMLError as e:
            raise InputError(f"{p}: not valid YAML/JSON: {e}") from e
        return cls.from_dict(data or {}, source=str(p), earlier_forms=earlier_forms)

    @classmethod
    def from_cli(cls, *, size: int | None = None, quotas: Mapping[str, Mapping[str, Amount]] | None = None,
                 filters: Mapping[str, Sequence[str]] | None = None,
                 max_overlap: Iterable[tuple[str, float]] = (),
                 seed: int | None = None, strategy: str = "stratified",
                 earlier_forms: Mapping[str, Iterable[str]] | None = None,
                 base: FormSpec | None = None, review_states: Sequence[str] = (),
                 pretest: Amount | None = None,
                 pretest_filters: Mapping[str, Sequence[str]] | None = None) -> FormSpec:
        """Flags on top of an optional spec file: flags win key by key. The flags arrive parsed (the command
        layer's parsers, ``adt.flags``): ``quotas`` ``{key: {value: amount}}`` (a key replaces the base's),
        ``filters`` ``{key: [values]}`` (their values add to the base's), ``max_overlap`` ``(form, fraction)``
        pairs (added to the base's), ``review_states`` (replace the base's when given), ``pretest`` a count
        (int) or share (float) replacing the base's, ``pretest_filters`` added to the pretest part's include."""
        d: dict[str, Any] = base.to_dict() if base is not None else {}
        if review_states:
            d["review_states"] = list(dict.fromkeys(str(x) for x in review_states))
        if base is not None:  # overlap item ids already resolved in base
            d["overlap"] = [{"form": o.form, "max_fraction": o.max_fraction, "item_ids": sorted(o.item_ids)}
                            for o in base.overlap]
        if size is not None:
            d["size"] = size
        q = dict(d.get("quotas") or {})
        for key, amounts in (quotas or {}).items():
            q[str(key)] = dict(amounts)
        d["quotas"] = q
        inc = {k: list(v) for k, v in (d.get("include") or {}).items()}
        for key, values in (filters or {}).items():
            have = inc.setdefault(str(key), [])
            have += [v for v in map(str, values) if v not in have]
        d["include"] = inc
        ov = list(d.get("overlap") or [])
        for name, frac in max_overlap:
            ov.append({"form": name, "max_fraction": frac})
        d["overlap"] = ov
        if pretest is not None or pretest_filters:
            p = dict(d.get("pretest") or {})
            if pretest is not None:
                p["count"], p["share"] = (pretest, None) if isinstance(pretest, int) else (None, float(pretest))
            elif "count" not in p and "share" not in p:
                raise InputError("--pretest-filter: give --pretest N|SHARE too (how many pretest items)")
            pinc = {k: list(v) for k, v in (p.get("include") or {}).items()}
            for key, values in (pretest_filters or {}).items():
                have = pinc.setdefault(str(key), [])
                have += [v for v in map(str, values) if v not in have]
            p["include"] = pinc
            d["pretest"] = p
        if seed is not None:
            d["seed"] = seed
        d["strategy"] = strategy
        return cls.from_dict(d, source="command line", earlier_forms=earlier_forms)


# -- helpers -----------------------------------------------------------------------------------------
def _freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


def _parse_quotas(raw: Any, source: str, name: str = "quotas") -> tuple[Quota, ...]:
    if not isinstance(raw, Mapping):
        raise InputError(f"{source} field '{name}': expected a mapping KEY -> {{VALUE: AMOUNT}}")
    out = []
    for key, amounts in raw.items():
        where = f"{source} field '{name}.{key}'"
        if not isinstance(amounts, Mapping) or not amounts:
            raise InputError(f"{where}: expected a non-empty mapping VALUE -> AMOUNT")
        items: list[tuple[str, Amount]] = []
        for value, amount in amounts.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise InputError(f"{where}.{value}: expected a number, got {amount!r}")
            if isinstance(amount, float) and not 0.0 <= amount <= 1.0:
                raise InputError(f"{where}.{value}: fraction {amount} outside [0, 1]")
            if isinstance(amount, int) and amount < 0:
                raise InputError(f"{where}.{value}: negative count {amount}")
            items.append((str(value), amount))
        kinds = {isinstance(a, float) for _, a in items}
        if len(kinds) > 1:
            raise InputError(f"{where}: mixes counts (integers) and fractions (decimals); use one kind")
        if True in kinds and sum(a for _, a in items) > 1.0 + 1e-6:
            raise InputError(f"{where}: fractions sum to {sum(a for _, a in items):.4g} > 1")
        closed = CLOSED_KEYS.get(str(key))
        for value, _ in items:
            if closed is not None and value not in closed:
                raise InputError(f"{where}: {value!r} is not one of {', '.join(closed)}{did_you_mean(value, closed, cutoff=0.6)}")
            if key == "difficulty_band" and value == "unknown":
                raise InputError(f"{where}: the 'unknown' band never counts towards a band quota")
        out.append(Quota(str(key), tuple(items)))
    return tuple(out)


def _parse_pretest(raw: Any, source: str) -> PretestSpec | None:
    """The ``pretest`` field: ``{count: N}`` or ``{share: F}`` with optional include, exclude, quotas, stages."""
    if raw is None:
        return None
    where = f"{source} field 'pretest"
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}': expected a mapping {{count: N | share: F, include, exclude, quotas, stages}}")
    known = {"count", "share", "include", "exclude", "quotas", "stages"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"{where}': unknown field(s) {unknown}; known: {sorted(known)}")
    count, share = raw.get("count"), raw.get("share")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise InputError(f"{where}.count': expected an integer, got {count!r}")
    if share is not None and (isinstance(share, bool) or not isinstance(share, int | float)):
        raise InputError(f"{where}.share': expected a fraction in [0, 1], got {share!r}")
    stages = raw.get("stages") or list(DEFAULT_PRETEST_STAGES)
    if isinstance(stages, str):
        stages = [stages]
    return PretestSpec(count=count, share=None if share is None else float(share),
                       include=_parse_filter_map(raw.get("include") or {}, f"{where}.include'"),
                       exclude=_parse_filter_map(raw.get("exclude") or {}, f"{where}.exclude'"),
                       quotas=_parse_quotas(raw.get("quotas") or {}, source, "pretest.quotas"),
                       stages=tuple(str(s) for s in stages))


def _parse_filter_map(raw: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: expected a mapping KEY -> [VALUES]")
    out = []
    for key, values in sorted(raw.items()):
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list | tuple) or not values:
            raise InputError(f"{where}.{key}: expected a value or a non-empty list")
        out.append((str(key), tuple(str(v) for v in values)))
    return tuple(out)


def _parse_overlap(raw: Any, source: str, earlier: Mapping[str, Iterable[str]]) -> tuple[OverlapLimit, ...]:
    if isinstance(raw, Mapping):  # {form: fraction}
        raw = [{"form": k, "max_fraction": v} for k, v in raw.items()]
    out = []
    for i, entry in enumerate(raw):
        where = f"{source} field 'overlap'[{i}]"
        if not isinstance(entry, Mapping) or "form" not in entry or "max_fraction" not in entry:
            raise InputError(f"{where}: expected {{form: NAME, max_fraction: F[, item_ids: [...]]}}")
        name = str(entry["form"])
        frac = entry["max_fraction"]
        if isinstance(frac, bool) or not isinstance(frac, int | float) or not 0 <= frac <= 1:
            raise InputError(f"{where}.max_fraction: expected a fraction in [0, 1], got {frac!r}")
        ids = entry.get("item_ids")
        if ids is None:
            if name not in earlier:
                raise InputError(f"{where}: earlier form {name!r} not known (give its item_ids)")
            ids = earlier[name]
        out.append(OverlapLimit(name, frozenset(str(x) for x in ids), float(frac)))
    return tuple(out)


def _parse_theta(d: Mapping[str, Any], source: str) -> tuple[float, ...]:
    if "theta_grid" in d:
        grid = d["theta_grid"]
        if not isinstance(grid, list | tuple) or not grid:
            raise InputError(f"{source} field 'theta_grid': expected a non-empty list of numbers")
        try:
            return tuple(float(x) for x in grid)
        except (TypeError, ValueError):
            raise InputError(f"{source} field 'theta_grid': expected numbers, got {grid!r}") from None
    rng_ = d.get("theta_range", list(DEFAULT_THETA_RANGE))
    if not isinstance(rng_, list | tuple) or len(rng_) != 2:
        raise InputError(f"{source} field 'theta_range': expected [low, high], got {rng_!r}")
    try:
        lo, hi = float(rng_[0]), float(rng_[1])
    except (TypeError, ValueError):
        raise InputError(f"{source} field 'theta_range': expected numbers, got {rng_!r}") from None
    if lo > hi:
        raise InputError(f"{source} field 'theta_range': low {lo} > high {hi}")
    n = d.get("theta_points", DEFAULT_THETA_POINTS)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"{source} field 'theta_points': expected a positive integer, got {n!r}")
    return theta_points(lo, hi, n)
