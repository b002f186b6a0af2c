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
from adtbase.itemtypes.base import JUDGE_KIND, pending_judgement
from calibration import prob
from runners.base import Request, Result, Runner
from runners.simjudge import ANSWER_WORDS, write_answer


class SimulatedRunner(Runner):
    """A respondent with ability ``theta`` answering items with parameters ``params[item_id]``."""

    name = "simulated"

    def __init__(self, theta: float, params: Mapping[str, tuple[float, float, float, float]],
                 rng: np.random.Generator | int, answer_sd: float = 0.5) -> None:
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
        if not (np.isfinite(answer_sd) and answer_sd >= 0):
            raise InputError(f"simulated: answer_sd must be a finite number >= 0, got {answer_sd}")
        self.theta = theta
        self.answer_sd = float(answer_sd)
        self.params = table
        # An int seed is accepted for command-line use (--backend-arg rng=7); code passes a Generator.
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def probability(self, item_id: str) -> float:
        try:
            a, b, c, d = self.params[item_id]
        except KeyError:
            raise RunnerError(f"simulated: no item parameters for item {item_id}") from None
        return float(prob(self.theta, a, b, c, d))

    def quality(self, item_id: str) -> float:
        """A written answer's latent quality, drawn (module doc)."""
        try:
            a, b, _, _ = self.params[item_id]
        except KeyError:
            raise RunnerError(f"simulated: no item parameters for item {item_id}") from None
        return float(a * (self.theta - b) + self.rng.normal(0.0, self.answer_sd))

    def written(self, request: Request) -> Result:
        z = self.quality(request.item_id)
        text = write_answer(z, int(self.rng.integers(*ANSWER_WORDS, endpoint=True)), self.rng)
        extracted, placeholder = pending_judgement(text)
        return Result(request.item_id, text, extracted, placeholder, extra={"quality": z})

    def score(self, requests: Sequence[Request]) -> list[Result]:
        judged = [r.scoring.kind == JUDGE_KIND for r in requests]
        if all(judged):
            return [self.written(r) for r in requests]
        if any(judged):   # in request order, each from the one stream
            return [self.written(r) if j else self.score([r])[0] for r, j in zip(requests, judged, strict=True)]
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
