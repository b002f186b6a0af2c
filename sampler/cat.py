"""Computerised adaptive testing for one model at a time, with exposure control and content balancing.

Each step: the ability posterior on a grid (normal prior, updated with each answer: EAP and posterior
SD, the same maths as ``calibration.ability.estimate_ability(method="eap")``, which gives the final
estimate); the candidate items are those not yet given (and not rejected by Sympson-Hetter for this
respondent), narrowed by content balancing (for each content key in turn, keep the items whose value
is furthest below its target share); then maximum Fisher information at the current EAP, with

- **randomesque**: a uniform pick among the ``top_k`` most informative candidates;
- **Sympson-Hetter**: the picked item is given with probability ``K_i`` (else it is set aside for
  this respondent and the next one is picked); ``K`` comes from ``calibrate_sympson_hetter``, the
  classic iteration ``K_i <- r_max / P(select_i)`` over simulated respondents (kept non-increasing).

Stops at ``se_target`` (after ``min_items``) or ``max_items``, or when no candidate is left.

The test runs step by step through a ``CatSession`` (``AdaptiveTest.session(rng)``): ``next_item()``
gives the item to ask (None once a stopping rule fires: ``stop_reason`` says which), ``update(item_id,
score)`` takes its score in [0, 1], ``result()`` the finished test. The session never calls out: whoever
drives it asks the item however it likes (``adt.workflow.cat`` through the run loop of ``adt run``). The
drivers here are ``run_with(respond)`` (``respond(pool_index) -> score``, for simulations) and ``run(runner,
make_request)`` (any object with ``score(list_of_requests) -> list_of_results``, one request per step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from adtbase.errors import InputError, RunnerError
from calibration import EPS, ItemParams, item_information, prob

from .quotas import split_values

EXPOSURE_MODES = ("none", "randomesque", "sympson-hetter", "both")


class _Result(Protocol):
    score: float


class BatchRunner(Protocol):
    def score(self, requests: Sequence[Any]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class CatConfig:
    """How an adaptive test runs. ``exposure_params`` are Sympson-Hetter K per item (aligned)."""

    max_items: int = 50
    min_items: int = 1
    se_target: float | None = 0.3
    exposure: str = "none"
    top_k: int = 5
    exposure_params: NDArray[np.float64] | None = None
    content_targets: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    prior_mean: float = 0.0
    prior_sd: float = 1.0
    grid: NDArray[np.float64] = field(default_factory=lambda: np.linspace(-6.0, 6.0, 121))

    def __post_init__(self) -> None:
        if self.exposure not in EXPOSURE_MODES:
            raise InputError(f"CAT exposure {self.exposure!r} is not one of {EXPOSURE_MODES}")
        if self.max_items < 1 or self.min_items < 0 or self.min_items > self.max_items:
            raise InputError(f"CAT lengths: need 0 <= min_items ({self.min_items}) <= max_items ({self.max_items})")
        if self.se_target is not None and self.se_target <= 0:
            raise InputError(f"CAT se_target must be > 0, got {self.se_target}")
        if self.top_k < 1:
            raise InputError(f"CAT top_k must be >= 1, got {self.top_k}")
        if self.exposure in ("sympson-hetter", "both") and self.exposure_params is None:
            raise InputError("CAT Sympson-Hetter needs exposure_params (calibrate_sympson_hetter)")

    @staticmethod
    def content(targets: Mapping[str, Mapping[str, float]]) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
        """``{"domain": {"math": .3, ...}}`` -> the frozen form ``content_targets`` takes."""
        return tuple((k, tuple((str(v), float(f)) for v, f in vs.items())) for k, vs in targets.items())


@dataclass(frozen=True)
class CatResult:
    item_ids: tuple[str, ...]
    scores: tuple[float, ...]
    theta: float
    se: float
    theta_path: tuple[float, ...]
    se_path: tuple[float, ...]
    stop_reason: str
    selected: tuple[int, ...] = ()  # pool indices picked by selection (before the SH lottery)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


class AdaptiveTest:
    """A CAT over a calibrated pool (``params`` aligned with ``content`` rows)."""

    def __init__(self, params: ItemParams, config: CatConfig,
                 content: pd.DataFrame | None = None) -> None:
        self.params = params
        self.config = config
        self.ids = np.asarray(params.item_ids, dtype=object)
        n = len(params)
        if config.exposure_params is not None and len(config.exposure_params) != n:
            raise InputError(f"CAT exposure_params has {len(config.exposure_params)} entries for {n} items")
        self._content: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []
        for key, targets in config.content_targets:
            if content is None or key not in content.columns:
                raise InputError(f"CAT content key {key!r}: no such column in the content frame")
            if len(content) != n:
                raise InputError(f"CAT content frame has {len(content)} rows for {n} items")
            values = [v for v, _ in targets]
            pos = {v: k for k, v in enumerate(values)}
            codes = np.array([next((pos[v] for v in split_values(x) if v in pos), -1)
                              for x in content[key].to_numpy(dtype=object)], dtype=np.int64)
            self._content.append((codes, np.array([f for _, f in targets], float)))
        g = np.asarray(config.grid, float)
        self._grid = g
        self._log_prior = -0.5 * ((g - config.prior_mean) / config.prior_sd) ** 2
        # Response probabilities on the grid for every item, once: (n_items, n_grid).
        self._p = np.clip(prob(g[None, :], params.a[:, None], params.b[:, None], params.c[:, None],
                               params.d[:, None]), EPS, 1 - EPS)

    # -- public ----------------------------------------------------------------------------------
    def session(self, rng: np.random.Generator) -> CatSession:
        """A new test, driven step by step (``next_item`` / ``update``); ``rng`` drives item selection."""
        return CatSession(self, rng)

    def run(self, runner: BatchRunner, make_request: Callable[[str], Any], rng: np.random.Generator) -> CatResult:
        """Administer one adaptive test through ``runner`` (one request per step)."""
        def respond(i: int) -> float:
            results = runner.score([make_request(str(self.ids[i]))])
            if len(results) != 1:
                raise RunnerError(f"runner returned {len(results)} results for 1 request")
            s = float(results[0].score)
            if not 0.0 <= s <= 1.0:
                raise RunnerError(f"runner score {s} for item {self.ids[i]} outside [0, 1]")
            return s
        return self.run_with(respond, rng)

    def run_with(self, respond: Callable[[int], float], rng: np.random.Generator) -> CatResult:
        """Administer one test with ``respond(pool_index) -> score`` (the runner-free core)."""
        session = self.session(rng)
        while (i := session._next_index()) is not None:
            session._update_index(i, respond(i))
        return session.result()

    # -- internals -------------------------------------------------------------------------------
    def _eap(self, logpost: NDArray) -> tuple[float, float]:
        w = np.exp(logpost - logpost.max())
        w /= w.sum()
        m = float(w @ self._grid)
        return m, float(np.sqrt(max(float(w @ (self._grid - m) ** 2), 0.0)))

    def _next_item(self, theta: float, available: NDArray[np.bool_], counts: list[NDArray], n_given: int,
                   rng: np.random.Generator, selected: list[int]) -> int | None:
        cfg = self.config
        while True:
            cand = np.flatnonzero(available)
            if len(cand) == 0:
                return None
            for (codes, targets), cnt in zip(self._content, counts, strict=True):
                deficit = targets * (n_given + 1) - cnt
                present = np.unique(codes[cand])
                present = present[present >= 0]
                if len(present) == 0:
                    continue
                best = present[np.argmax(deficit[present])]
                cand = cand[codes[cand] == best]
            p = self.params
            info = item_information(theta, p.a[cand], p.b[cand], p.c[cand], p.d[cand])
            if cfg.exposure in ("randomesque", "both") and len(cand) > 1:
                k = min(cfg.top_k, len(cand))
                top = np.argpartition(-info, k - 1)[:k]
                i = int(cand[top[rng.integers(k)]])
            else:
                i = int(cand[np.argmax(info)])
            selected.append(i)
            if cfg.exposure in ("sympson-hetter", "both"):
                assert cfg.exposure_params is not None
                if rng.random() >= cfg.exposure_params[i]:
                    available[i] = False  # set aside for this respondent
                    continue
            return i


class CatSession:
    """One adaptive test in progress: ask ``next_item()``, answer with ``update(item_id, score)``.

    ``next_item()`` returns the item to ask next, or None once a stopping rule fires (``stop_reason``:
    ``se_target`` | ``max_items`` | ``pool_exhausted``); asked again before the answer comes, it returns the
    same item. ``theta`` / ``se`` are the EAP and posterior SD after the answers so far; ``result()`` is the
    finished test. Item selection draws from ``rng`` only inside ``next_item()``, so a driver that draws its
    own answers from the same generator between the two calls gets the sequence ``run_with`` gets.
    """

    def __init__(self, test: AdaptiveTest, rng: np.random.Generator) -> None:
        self.test = test
        self.rng = rng
        self._logpost = test._log_prior.copy()
        self._available = np.ones(len(test.params), dtype=bool)
        self._counts = [np.zeros(len(t)) for _, t in test._content]
        self._given: list[int] = []
        self._selected: list[int] = []
        self._scores: list[float] = []
        self._thetas: list[float] = []
        self._ses: list[float] = []
        self._pending: int | None = None
        self._reason: str | None = None
        self.theta, self.se = test._eap(self._logpost)

    @property
    def stop_reason(self) -> str | None:
        """Why the test stopped; None while it runs."""
        return self._reason

    @property
    def item_ids(self) -> tuple[str, ...]:
        """The items answered so far, in order."""
        return tuple(str(self.test.ids[i]) for i in self._given)

    @property
    def scores(self) -> tuple[float, ...]:
        return tuple(self._scores)

    def next_item(self) -> str | None:
        """The item to ask next; None when the test is over."""
        i = self._next_index()
        return None if i is None else str(self.test.ids[i])

    def update(self, item_id: str, score: float) -> None:
        """Take the score in [0, 1] of the item ``next_item()`` gave."""
        if self._pending is None or str(self.test.ids[self._pending]) != str(item_id):
            asked = "no item" if self._pending is None else f"item {self.test.ids[self._pending]}"
            raise InputError(f"CAT: a score for item {item_id} when {asked} was asked")
        s = float(score)
        if not 0.0 <= s <= 1.0:
            raise InputError(f"CAT: score {s} for item {item_id} outside [0, 1]")
        self._update_index(self._pending, s)

    def result(self) -> CatResult:
        """The finished test (after ``next_item()`` returned None)."""
        if self._reason is None:
            raise InputError("CAT: the test has not stopped yet (ask next_item() until it returns None)")
        return CatResult(self.item_ids, tuple(self._scores), self.theta, self.se, tuple(self._thetas),
                         tuple(self._ses), self._reason, tuple(self._selected))

    # -- steps by pool index (run_with's; next_item / update name items by id) ------------------
    def _next_index(self) -> int | None:
        if self._pending is not None:
            return self._pending
        if self._reason is not None:
            return None
        cfg = self.test.config
        n = len(self._given)
        reached = cfg.se_target is not None and self.se <= cfg.se_target
        if n >= cfg.max_items:
            self._reason = "se_target" if reached else "max_items"
        elif reached and n >= max(cfg.min_items, 1):
            self._reason = "se_target"
        else:
            i = self.test._next_item(self.theta, self._available, self._counts, n, self.rng, self._selected)
            if i is None:
                self._reason = "pool_exhausted"
            else:
                self._available[i] = False
                self._pending = i
        return self._pending

    def _update_index(self, i: int, s: float) -> None:
        self._pending = None
        self._given.append(i)
        self._scores.append(s)
        p = self.test._p[i]
        self._logpost += s * np.log(p) + (1 - s) * np.log1p(-p)
        for (codes, _), cnt in zip(self.test._content, self._counts, strict=True):
            if codes[i] >= 0:
                cnt[codes[i]] += 1
        self.theta, self.se = self.test._eap(self._logpost)
        self._thetas.append(self.theta)
        self._ses.append(self.se)


def simulate(test: AdaptiveTest, thetas: NDArray[np.float64], rng: np.random.Generator) -> list[CatResult]:
    """Adaptive tests of simulated respondents (Bernoulli answers from the pool's own parameters)."""
    out = []
    p = test.params
    for t in np.asarray(thetas, float):
        pr = prob(t, p.a, p.b, p.c, p.d)

        def respond(i: int, pr: NDArray = pr) -> float:
            return float(rng.random() < pr[i])
        out.append(test.run_with(respond, rng))
    return out


def exposure_rates(results: Sequence[CatResult], item_ids: Sequence[str]) -> NDArray[np.float64]:
    """Share of respondents who were given each item."""
    pos = {i: k for k, i in enumerate(item_ids)}
    counts = np.zeros(len(item_ids))
    for r in results:
        for i in r.item_ids:
            counts[pos[i]] += 1
    return counts / max(len(results), 1)


def mean_overlap(results: Sequence[CatResult]) -> float:
    """Mean over respondent pairs of |A & B| / mean(|A|, |B|) (the test overlap rate)."""
    n = len(results)
    if n < 2:
        return 0.0
    ids = sorted({i for r in results for i in r.item_ids})
    pos = {i: k for k, i in enumerate(ids)}
    M = np.zeros((n, len(ids)))
    for r, res in enumerate(results):
        M[r, [pos[i] for i in res.item_ids]] = 1.0
    shared = M @ M.T
    lens = M.sum(axis=1)
    denom = (lens[:, None] + lens[None, :]) / 2
    iu = np.triu_indices(n, 1)
    return float(np.mean(shared[iu] / np.maximum(denom[iu], 1)))


def calibrate_sympson_hetter(params: ItemParams, config: CatConfig, thetas: NDArray[np.float64],
                             rng: np.random.Generator, r_max: float = 0.2, n_iter: int = 8,
                             content: pd.DataFrame | None = None) -> tuple[NDArray[np.float64], list[float]]:
    """Sympson-Hetter exposure parameters by simulation: ``K_i <- min(K_i, r_max / P(select_i))``.

    Returns ``K`` and the maximum exposure rate seen at each iteration.
    """
    if not 0 < r_max <= 1:
        raise InputError(f"Sympson-Hetter r_max must be in (0, 1], got {r_max}")
    mode = "both" if config.exposure in ("randomesque", "both") else "sympson-hetter"
    k = np.ones(len(params))
    history = []
    for _ in range(n_iter):
        cfg = CatConfig(**{**config.__dict__, "exposure": mode, "exposure_params": k})
        results = simulate(AdaptiveTest(params, cfg, content), thetas, rng)
        sel = np.zeros(len(params))
        for r in results:
            np.add.at(sel, np.asarray(r.selected, dtype=np.int64), 1.0)
        p_sel = sel / len(results)
        history.append(float(exposure_rates(results, params.item_ids).max()))
        # Non-increasing K: restricting one item only raises the others' selection rates, so
        # never relaxing keeps the iteration from oscillating (classic SH resets K to 1).
        k = np.minimum(k, np.where(p_sel > r_max, r_max / np.maximum(p_sel, 1e-12), 1.0))
    return k, history


def final_estimate(result: CatResult, params: ItemParams, config: CatConfig) -> tuple[float, float]:
    """The test's EAP and SE by ``calibration.ability.estimate_ability`` (same prior and grid)."""
    from calibration import Prior, estimate_ability

    pos = {i: k for k, i in enumerate(params.item_ids)}
    sub = params.subset([pos[i] for i in result.item_ids])
    est = estimate_ability(np.asarray(result.scores), sub, method="eap",
                           prior=Prior.normal(config.prior_mean, config.prior_sd), grid=config.grid)
    return float(est.theta), float(est.se)
