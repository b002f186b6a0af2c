"""A test backend for the run-loop tests: slow on demand, crashes on demand, logs what it was asked.

Its scores are coin flips seeded by (seed, item id), so a resumed run gives every item the score an
uninterrupted run would have given it. Tests load it as ``run_backends:SlowRunner`` (this folder on
the path), the way a plugin backend is named on the command line.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence

from runners.base import Request, Result, Runner


def coin(seed: int, item_id: str, p: float = 0.6) -> float:
    """A deterministic 0/1 score for (seed, item)."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return float(int.from_bytes(digest[:8], "big") / 2**64 < p)


class SlowRunner(Runner):
    name = "slow-test"

    def __init__(self, delay_s: float = 0.0, crash_at_batch: int | None = None, log: str | None = None,
                 seed: int = 0, logliks: bool = False) -> None:
        self.delay_s = float(delay_s)
        self.crash_at_batch = crash_at_batch
        self.log = log
        self.seed = int(seed)
        self.logliks = bool(logliks)
        self.calls = 0

    def score(self, requests: Sequence[Request]) -> list[Result]:
        self.calls += 1
        if self.crash_at_batch is not None and self.calls == self.crash_at_batch:
            raise RuntimeError(f"test backend crashed on batch {self.calls}")
        time.sleep(self.delay_s)
        results = [Result(r.item_id, "out", "A", coin(self.seed, r.item_id), tokens_in=len(r.prompt), tokens_out=1,
                          choice_logliks=tuple(-0.5 * k for k in range(len(r.choices)))
                          if self.logliks and r.choices else None)
                   for r in requests]
        if self.log:
            with open(self.log, "a") as fh:  # one line per finished batch
                fh.write(json.dumps([r.item_id for r in requests]) + "\n")
        return results


class Writer(Runner):
    """A candidate that writes answers (judge-scored items): "a good answer" to items whose id hashes even under
    ``seed``, "a poor answer" otherwise, graded by the items' own rules (judge rules stay pending)."""

    name = "writer-test"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def score(self, requests: Sequence[Request]) -> list[Result]:
        from runners.scoring import score_request

        out = []
        for r in requests:
            text = f"This is a {'good' if coin(self.seed, r.item_id, 0.5) else 'poor'} answer to {r.item_id}."
            extracted, score = score_request(r, text)
            out.append(Result(r.item_id, text, extracted, score))
        return out
