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

from runners.base import Request, Result, ScoringRule, loglik_continuations
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
    """The model-side job for a request: the public request (log-likelihood) or a generation prompt.

    Log-likelihood jobs carry the whole public view so the engine can apply a chat template first and
    then build the continuations with ``loglik_continuations``, exactly as the ``hf`` backend does.
    """
    if request.uses_loglik:
        return {"kind": "loglik", "request": request.public()}
    return {"kind": "generate", "prompt": request.prompt, "max_new_tokens": request.max_new_tokens,
            "stop": list(request.stop)}


def finish(request: Request, raw: RawOutput, backend: str) -> Result:
    """Score a raw output against the request's key; engine errors become error results (score 0)."""
    common: dict[str, Any] = {"item_id": request.item_id, "tokens_in": raw.tokens_in, "tokens_out": raw.tokens_out,
              "latency_s": raw.latency_s, "extra": {"backend": backend, **raw.extra}}
    if raw.error is not None:
        return Result(raw_output=raw.text, extracted=None, score=0.0, choice_logliks=raw.choice_logliks,
                      error=raw.error, **common)
    if request.uses_loglik and raw.extra.get("mc_mode") != "generate":  # else answered by generation
        logliks: Sequence[float] = raw.choice_logliks or ()
        if len(logliks) != len(request.choices) or any(math.isnan(x) for x in logliks):
            return Result(raw_output="", extracted=None, score=0.0, choice_logliks=raw.choice_logliks,
                          error=f"{backend}: incomplete choice log-likelihoods", **common)
        label, score = score_logliks(request, logliks)
        chosen = request.choices[request.choice_labels.index(label)]
        raw_output = str(chosen) if request.loglik_target == "text" else label  # as the hf backend reports it
        return Result(raw_output=raw_output, extracted=label, score=score, choice_logliks=tuple(logliks), **common)
    extracted, score = score_request(request, raw.text)
    return Result(raw_output=raw.text, extracted=extracted, score=score, **common)


def loglik_parts(public: dict[str, Any], prompt: str | None = None) -> tuple[str, tuple[str, ...]]:
    """``loglik_continuations`` for a public request view (optionally with another prompt, e.g. chat-wrapped).

    The engine side has no answer key; the rule below is a placeholder that only satisfies the
    ``Request`` checks and is never used to score.
    """
    labels = tuple(public["choice_labels"])
    req = Request(item_id=str(public["item_id"]), prompt=public["prompt"] if prompt is None else prompt,
                  item_type="mc", scoring=ScoringRule("choice", labels[0]), choices=tuple(public["choices"]),
                  choice_labels=labels, mc_mode="loglik", loglik_target=public.get("loglik_target", "text"))
    return loglik_continuations(req)
