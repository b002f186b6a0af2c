"""Runners: score a model on a batch of requests, results in request order.

Public API: the contract (``Request``, ``Result``, ``ScoringRule``, ``Runner``), the backend
registry (``create``, ``available``, ``register``), prompt templates (``render``, ``build_request``),
judge calls (``judge_cases`` = ``runners.judge.judge``, ``render_judge_prompt``, ``parse_verdict``, ...)
and scoring (``score_output``, ``score_request``). Backends themselves (replay, simulated, hf, vllm,
openai) load lazily through the registry; importing this package pulls in no pandas, torch or
transformers. The few backend-level names callers use directly (``ReplayRunner``, ``HFRunner``,
``DEFAULT_WORKER_PYTHON``, ``build_tiny_model``) are on the face too, loaded from their module on first
use (``_LAZY``, module ``__getattr__``). Other rooms, ``adt/`` and ``bench/`` import these names from
``runners`` and never reach into its modules (``tests/test_architecture.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adtbase.lazy import lazy_getattr
from runners.base import (
    DEFAULT_LABELS,
    Completion,
    Request,
    Result,
    Runner,
    ScoringRule,
    check_results,
    loglik_continuations,
)
from runners.judge import (
    JUDGE_TEMPLATES,
    JUDGMENT_COLUMNS,
    JUDGMENT_KEY,
    JudgeCall,
    JudgeCase,
    JudgeExample,
    parse_verdict,
    planned_calls,
    render_judge_prompt,
)
from runners.judge import judge as judge_cases
from runners.registry import available, create, register, resolve
from runners.scoring import score as score_output
from runners.scoring import score_logliks, score_request
from runners.templates import TEMPLATES, build_request, default_template_id, prompt_hash, render

# Names loaded on first use from the module that defines them (which may import torch, pandas, ...).
_LAZY = {
    "DEFAULT_WORKER_PYTHON": "runners.vllm_backend",
    "HFRunner": "runners.hf",
    "ReplayRunner": "runners.replay",
    "build_tiny_model": "runners.testing",
    "read_simulated_quality": "runners.simjudge",   # the simulated answers' quality marker (simjudge)
    "write_simulated_answer": "runners.simjudge",
}

if TYPE_CHECKING:  # what the lazy names are, for the type checker only (not in __all__: a star import stays light)
    from runners.hf import HFRunner as HFRunner
    from runners.replay import ReplayRunner as ReplayRunner
    from runners.simjudge import read_simulated_quality as read_simulated_quality
    from runners.simjudge import write_simulated_answer as write_simulated_answer
    from runners.testing import build_tiny_model as build_tiny_model
    from runners.vllm_backend import DEFAULT_WORKER_PYTHON as DEFAULT_WORKER_PYTHON


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "DEFAULT_LABELS",
    "JUDGE_TEMPLATES",
    "JUDGMENT_COLUMNS",
    "JUDGMENT_KEY",
    "TEMPLATES",
    "Completion",
    "JudgeCall",
    "JudgeCase",
    "JudgeExample",
    "Request",
    "Result",
    "Runner",
    "ScoringRule",
    "available",
    "build_request",
    "check_results",
    "create",
    "default_template_id",
    "judge_cases",
    "loglik_continuations",
    "parse_verdict",
    "planned_calls",
    "prompt_hash",
    "register",
    "render",
    "render_judge_prompt",
    "resolve",
    "score_logliks",
    "score_output",
    "score_request",
]
