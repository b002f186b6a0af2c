"""Runners: score a model on a batch of requests, results in request order.

Public API: the contract (``Request``, ``Result``, ``ScoringRule``, ``Runner``), the backend
registry (``create``, ``available``, ``register``), prompt templates (``render``, ``build_request``)
and scoring (``score_output``, ``score_request``). Backends themselves (replay, simulated, hf, vllm,
openai) load lazily through the registry; importing this package pulls in no pandas, torch or
transformers.
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
from runners.scoring import score as score_output
from runners.scoring import score_logliks, score_request
from runners.templates import TEMPLATES, build_request, default_template_id, render

__all__ = [
    "DEFAULT_LABELS",
    "TEMPLATES",
    "Request",
    "Result",
    "Runner",
    "ScoringRule",
    "available",
    "build_request",
    "check_results",
    "create",
    "default_template_id",
    "loglik_continuations",
    "parse_backend_args",
    "register",
    "render",
    "resolve",
    "score_logliks",
    "score_output",
    "score_request",
]
