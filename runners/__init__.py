"""Runners: score a model on a batch of requests, results in request order.

Public API: the contract (``Request``, ``Result``, ``ScoringRule``, ``Runner``), the backend
registry (``create``, ``available``, ``register``), prompt templates (``render``) and scoring
(``score_output``). Backends themselves (replay, simulated, hf, vllm, openai) load lazily through
the registry; importing this package pulls in no pandas, torch or transformers.
"""

from runners.base import (
    DEFAULT_LABELS,
    Request,
    Result,
    Runner,
    ScoringRule,
    check_results,
    loglik_continuations,
)
from runners.registry import available, create, parse_backend_args, register, resolve

__all__ = [
    "DEFAULT_LABELS",
    "Request",
    "Result",
    "Runner",
    "ScoringRule",
    "available",
    "check_results",
    "create",
    "loglik_continuations",
    "parse_backend_args",
    "register",
    "resolve",
]
