"""From what a model produced to a ``Result``: the part every remote/engine backend shares.

Engine backends (``vllm``, ``openai``) first turn each request into a *job* that holds only what the
model sees (text, stop sequences, continuations; never the answer key), get back a ``RawOutput``, and
then score it here, in the calling process, with ``runners.scoring``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from runners.base import Request, Result, loglik_continuations
from runners.scoring import score_logliks, score_request


@dataclass(frozen=True)
class RawOutput:
    """What an engine returned for one request (no score yet)."""

    text: str = ""
    choice_logliks: tuple[float, ...] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "choice_logliks": None if self.choice_logliks is None else list(self.choice_logliks),
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "latency_s": self.latency_s,
                "error": self.error, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RawOutput:
        ll = d.get("choice_logliks")
        return cls(text=str(d.get("text", "")), choice_logliks=None if ll is None else tuple(float(x) for x in ll),
                   tokens_in=int(d.get("tokens_in", 0)), tokens_out=int(d.get("tokens_out", 0)),
                   latency_s=float(d.get("latency_s", 0.0)), error=d.get("error"), extra=dict(d.get("extra") or {}))


def job_for(request: Request) -> dict[str, Any]:
    """The model-side job for a request: log-likelihood continuations or a generation prompt."""
    if request.uses_loglik:
        context, continuations = loglik_continuations(request)
        return {"kind": "loglik", "context": context, "continuations": list(continuations)}
    return {"kind": "generate", "prompt": request.prompt, "max_new_tokens": request.max_new_tokens,
            "stop": list(request.stop)}


def finish(request: Request, raw: RawOutput, backend: str) -> Result:
    """Score a raw output against the request's key; engine errors become error results (score 0)."""
    common: dict[str, Any] = {"item_id": request.item_id, "tokens_in": raw.tokens_in, "tokens_out": raw.tokens_out,
              "latency_s": raw.latency_s, "extra": {"backend": backend, **raw.extra}}
    if raw.error is not None:
        return Result(raw_output=raw.text, extracted=None, score=0.0, choice_logliks=raw.choice_logliks,
                      error=raw.error, **common)
    if request.uses_loglik:
        logliks: Sequence[float] = raw.choice_logliks or ()
        if len(logliks) != len(request.choices) or any(math.isnan(x) for x in logliks):
            return Result(raw_output="", extracted=None, score=0.0, choice_logliks=raw.choice_logliks,
                          error=f"{backend}: incomplete choice log-likelihoods", **common)
        label, score = score_logliks(request, logliks)
        return Result(raw_output=label, extracted=label, score=score, choice_logliks=tuple(logliks), **common)
    extracted, score = score_request(request, raw.text)
    return Result(raw_output=raw.text, extracted=extracted, score=score, **common)
