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

Stops at ``se_target`` (after ``min_items``) or ``max_items``. The runner is any object with
``score(list_of_requests) -> list_of_results`` (each result has ``.score`` in [0, 1]); requests are
built by ``make_request(item_id)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from adtbase.errors import InputError, RunnerError
from calibration.irt import EPS, ItemParams, item_information, prob

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
        cfg = self.config
        n = len(self.params)
        logpost = self._log_prior.copy()
        available = np.ones(n, dtype=bool)
        given: list[int] = []
        selected: list[int] = []
        scores: list[float] = []
        thetas: list[float] = []
        ses: list[float] = []
        counts = [np.zeros(len(t)) for _, t in self._content]
        theta, se = self._eap(logpost)
        reason = "max_items"
        while len(given) < cfg.max_items:
            if cfg.se_target is not None and len(given) >= max(cfg.min_items, 1) and se <= cfg.se_target:
                reason = "se_target"
                break
            i = self._next_item(theta, available, counts, len(given), rng, selected)
            if i is None:
                reason = "pool_exhausted"
                break
            available[i] = False
            s = respond(i)
            given.append(i)
            scores.append(s)
            p = self._p[i]
            logpost += s * np.log(p) + (1 - s) * np.log1p(-p)
            for (codes, _), cnt in zip(self._content, counts, strict=True):
                if codes[i] >= 0:
                    cnt[codes[i]] += 1
            theta, se = self._eap(logpost)
            thetas.append(theta)
            ses.append(se)
        else:
            if cfg.se_target is not None and se <= cfg.se_target:
                reason = "se_target"
        return CatResult(tuple(str(self.ids[i]) for i in given), tuple(scores), theta, se, tuple(thetas),
                         tuple(ses), reason, tuple(selected))

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
    from calibration.ability import Prior, estimate_ability

    pos = {i: k for k, i in enumerate(params.item_ids)}
    sub = params.subset([pos[i] for i in result.item_ids])
    est = estimate_ability(np.asarray(result.scores), sub, method="eap",
                           prior=Prior.normal(config.prior_mean, config.prior_sd), grid=config.grid)
    return float(est.theta), float(est.se)
