"""The ``simulated`` backend: an IRT respondent of known ability.

Each request's score is a Bernoulli draw with the 4PL probability ``calibration.prob(theta, a, b, c, d)``
of the item's parameters (``runners -> calibration`` is an intended arrow, DESIGN.md). Draws come from
the ``rng`` passed in, one per request in request order, so the same seed and the same requests give the
same answers. The extracted answer is the item type's ``simulated_answer`` (multiple choice: the key when
correct and a uniformly drawn wrong label otherwise, a second draw from the same stream), so downstream
code that reads choices sees plausible output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from adtbase import itemtypes
from adtbase.errors import InputError, RunnerError
from calibration import prob
from runners.base import Request, Result, Runner


class SimulatedRunner(Runner):
    """A respondent with ability ``theta`` answering items with parameters ``params[item_id]``."""

    name = "simulated"

    def __init__(self, theta: float, params: Mapping[str, tuple[float, float, float, float]],
                 rng: np.random.Generator | int) -> None:
        theta = float(theta)
        if not np.isfinite(theta):
            raise InputError(f"simulated: theta must be finite, got {theta}")
        table: dict[str, tuple[float, float, float, float]] = {}
        for item_id, p in params.items():
            a, b, c, d = (float(x) for x in p)
            if not (np.isfinite([a, b, c, d]).all() and 0 <= c < d <= 1):
                raise InputError(f"simulated: item {item_id}: parameters (a={a}, b={b}, c={c}, d={d}) "
                                 "need finite values with 0 <= c < d <= 1")
            table[str(item_id)] = (a, b, c, d)
        self.theta = theta
        self.params = table
        # An int seed is accepted for command-line use (--backend-arg rng=7); code passes a Generator.
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def probability(self, item_id: str) -> float:
        try:
            a, b, c, d = self.params[item_id]
        except KeyError:
            raise RunnerError(f"simulated: no item parameters for item {item_id}") from None
        return float(prob(self.theta, a, b, c, d))

    def score(self, requests: Sequence[Request]) -> list[Result]:
        p = np.array([self.probability(r.item_id) for r in requests], dtype=float)
        correct = self.rng.random(len(requests)) < p
        results = []
        for req, ok, pi in zip(requests, correct, p, strict=True):
            extracted: str | None = "correct" if ok else "wrong"
            if itemtypes.for_scoring_kind(req.scoring.kind) is not None:  # a type's rule (regex is none's)
                extracted = itemtypes.get(req.item_type).simulated_answer(bool(ok), req.scoring.answer,
                                                                          req.choice_labels, self.rng)
            results.append(Result(req.item_id, extracted or "", extracted, float(ok),
                                  extra={"p_correct": float(pi)}))
        return results
