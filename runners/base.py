"""The runner contract: requests in, results in the same order out.

Value objects only (standard library; no numpy, pandas or torch), so every backend module, including
the GPU bench that imports ``runners.hf`` alone, can import this cheaply.

A ``Request`` is what a model is asked (the rendered prompt) plus what the runner needs to score the
answer (the ``ScoringRule`` with the answer key). The key stays inside the runner process: nothing
here serialises it, and ``Request.public()`` gives the model-side view without it.

Multiple choice by log-likelihood (``mc_mode="loglik"``) compares the log-probability of each choice as
a continuation of the prompt. Every backend builds the same continuations, with
``loglik_continuations``: the prompt's trailing whitespace moves to the start of each continuation
(so "Answer:" + " B", not "Answer: " + "B"; BPE tokenisers attach the space to the following word),
and backends tokenise the context with the tokenizer's special tokens and each continuation
separately, without special tokens; the continuation's log-likelihood is the sum over its tokens.
Tokenising the two parts separately is what lets a backend encode the shared question prefix once
for all the options of an item.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Literal

from adtbase import itemtypes

# An item type's name ("mc", "open", "numeric", or any registered in ``adtbase.itemtypes``) and a
# scoring kind (a registered type's ``scoring_kind``: "choice", "exact", "numeric", ...; or "regex").
ItemType = str
ScoringKind = str
McMode = Literal["loglik", "generate"]
LoglikTarget = Literal["text", "label"]

# The built-in ones, for reference; the checks below ask the registry.
ITEM_TYPES: tuple[str, ...] = ("mc", "open", "numeric", "multi", "pairwise")
SCORING_KINDS: tuple[str, ...] = ("choice", "numeric", "exact", "choices", "judge", "regex")
MC_MODES: tuple[str, ...] = ("loglik", "generate")
LOGLIK_TARGETS: tuple[str, ...] = ("text", "label")

# Labels for up to 26 choices; MMLU-Pro uses at most 10 (A-J).
DEFAULT_LABELS: tuple[str, ...] = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _check(cond: bool, what: str, item_id: str) -> None:
    if not cond:
        raise ValueError(f"request {item_id!r}: {what}")


@dataclass(frozen=True)
class ScoringRule:
    """How a raw output is scored against the answer key.

    - ``choice``: ``answer`` is the correct choice label (e.g. "C"); the output's letter or choice text
      is extracted (or, in log-likelihood mode, the most likely choice is taken).
    - ``numeric``: ``answer`` is a number as text ("1234", "-0.5", "3.27e-22", "3/4"), perhaps with the
      item's own tolerance ("9.81 ± 0.05", "3.27e-22 ± 1%"), which then replaces these; else correct when
      ``|x - answer| <= max(tolerance, rel_tolerance * |answer|)`` (see ``adtbase.itemtypes.numeric``).
    - ``choices`` (multi-select): ``answer`` is the set of correct labels ("B,D", or "B,D (partial credit)");
      the output's set of labels scores 1 when equal, or its Jaccard index with partial credit.
    - ``exact``: normalised exact match (case, surrounding punctuation, articles, whitespace).
    - ``regex``: ``pattern`` is searched in the output; its first group (or the whole match) is the
      extracted answer; correct when it matches ``answer`` after normalisation, or, when ``answer``
      is empty, whenever the pattern matches.
    """

    kind: ScoringKind
    answer: str
    tolerance: float = 1e-6
    rel_tolerance: float = 0.0
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.kind != "regex" and self.kind not in itemtypes.scoring_kinds():
            kinds = (*itemtypes.scoring_kinds(), "regex")
            raise ValueError(f"ScoringRule.kind {self.kind!r} is not one of {kinds}")
        if not isinstance(self.answer, str):
            raise ValueError(f"ScoringRule.answer must be text, got {type(self.answer).__name__}")
        if self.kind == "regex" and not self.pattern:
            raise ValueError("ScoringRule(kind='regex') needs a pattern")
        if not (self.tolerance >= 0 and self.rel_tolerance >= 0):
            raise ValueError("ScoringRule tolerances must be >= 0")

    def __repr__(self) -> str:  # never print the key into logs
        return f"ScoringRule(kind={self.kind!r}, answer=<hidden>)"


@dataclass(frozen=True)
class Request:
    """One item as put to a model, with its scoring rule.

    ``choices`` and ``choice_labels`` are aligned (multiple choice only; empty otherwise).
    ``loglik_target`` says which continuation is scored in log-likelihood mode: the choice text
    (default) or its label ("A", "B", ...). ``stop`` ends greedy generation.
    """

    item_id: str
    prompt: str
    item_type: ItemType
    scoring: ScoringRule
    choices: tuple[str, ...] = ()
    choice_labels: tuple[str, ...] = ()
    template_id: str = ""
    prompt_hash: str = ""
    mc_mode: McMode = "loglik"
    loglik_target: LoglikTarget = "text"
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        iid = self.item_id
        _check(isinstance(iid, str) and iid != "", "item_id must be a non-empty string", str(iid))
        _check(itemtypes.is_registered(self.item_type),
               f"item_type {self.item_type!r} not in {itemtypes.names()}", iid)
        kind = itemtypes.get(self.item_type)
        _check(self.mc_mode in MC_MODES, f"mc_mode {self.mc_mode!r} not in {MC_MODES}", iid)
        _check(self.loglik_target in LOGLIK_TARGETS,
               f"loglik_target {self.loglik_target!r} not in {LOGLIK_TARGETS}", iid)
        _check(isinstance(self.scoring, ScoringRule), "scoring must be a ScoringRule", iid)
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "stop", tuple(self.stop))
        labels = tuple(self.choice_labels) or DEFAULT_LABELS[: len(self.choices)]
        object.__setattr__(self, "choice_labels", labels)
        _check(self.max_new_tokens >= 1, "max_new_tokens must be >= 1", iid)
        if kind.has_choices:
            _check(len(self.choices) >= 2, f"a {kind.title} request needs at least 2 choices", iid)
            _check(len(labels) == len(self.choices), "choice_labels and choices differ in length", iid)
            _check(len(set(labels)) == len(labels), "choice_labels repeat", iid)
            _check(self.scoring.kind == kind.scoring_kind,
                   f"a {kind.title} request needs a {kind.scoring_kind!r} rule", iid)
            _check(all(lab in labels for lab in kind.key_labels(self.scoring.answer)),
                   f"answer label is not one of the choice labels {labels}", iid)
        else:
            _check(not self.choices, f"a {self.item_type!r} request has no choices", iid)
            owner = itemtypes.for_scoring_kind(self.scoring.kind)
            _check(owner is None or not owner.has_choices,
                   f"a {self.scoring.kind!r} rule needs a {owner.title if owner else ''} request", iid)

    @property
    def uses_loglik(self) -> bool:
        """True when this request is scored by choice log-likelihoods rather than generation."""
        return self.mc_mode == "loglik" and "loglik" in itemtypes.get(self.item_type).scoring_modes

    def public(self) -> dict[str, Any]:
        """The model-side view (what may leave the runner process): everything but the answer key."""
        return {
            "item_id": self.item_id, "prompt": self.prompt, "item_type": self.item_type,
            "choices": list(self.choices), "choice_labels": list(self.choice_labels),
            "template_id": self.template_id, "prompt_hash": self.prompt_hash, "mc_mode": self.mc_mode,
            "loglik_target": self.loglik_target, "max_new_tokens": self.max_new_tokens,
            "stop": list(self.stop),
        }

    def with_prompt(self, prompt: str) -> Request:
        """A copy with another prompt (e.g. wrapped in a chat template)."""
        return replace(self, prompt=prompt)


def refuse_loglik(request: Request) -> None:
    """Single-option log-likelihood scoring only for the types that declare it (``scoring_modes``): a
    multi-select item's answer is a set of options, which the one most likely option cannot give."""
    kind = itemtypes.get(request.item_type)
    if kind.has_choices and "loglik" not in kind.scoring_modes:
        raise ValueError(f"request {request.item_id!r}: item type {kind.name!r} ({kind.title}) is scored by "
                         f"generation only; single-option log-likelihood scoring does not apply to it")


def loglik_continuations(request: Request) -> tuple[str, tuple[str, ...]]:
    """(context, continuations) for log-likelihood scoring, the same in every backend.

    Trailing whitespace of the prompt moves to the front of each continuation; a continuation that
    would start without a separator gets one space (so "Answer:" is followed by " Paris").
    """
    refuse_loglik(request)
    if not request.uses_loglik:
        raise ValueError(f"request {request.item_id!r} is not a log-likelihood multiple-choice request")
    context = request.prompt.rstrip()
    sep = request.prompt[len(context):] or " "
    targets = request.choices if request.loglik_target == "text" else request.choice_labels
    return context, tuple(sep + str(t).strip() for t in targets)


@dataclass(frozen=True)
class Result:
    """What a backend returns for one request.

    ``error`` is None on success; otherwise a short reason ("missing" for a replayed model that never
    answered the item, or the backend's message), and ``score`` is 0 and must not be used as an answer.
    ``choice_logliks`` are the per-choice log-likelihoods (nats) in choice order, where used.
    """

    item_id: str
    raw_output: str
    extracted: str | None
    score: float
    choice_logliks: tuple[float, ...] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not (0.0 <= self.score <= 1.0) or math.isnan(self.score):
            raise ValueError(f"result {self.item_id!r}: score {self.score} outside [0, 1]")
        if self.choice_logliks is not None:
            object.__setattr__(self, "choice_logliks", tuple(float(x) for x in self.choice_logliks))

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Completion:
    """Free text a backend wrote for one prompt (``Runner.complete``); ``error`` set when it wrote none."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_completion_args(backend: str, max_new_tokens: int, temperature: float) -> None:
    """The arguments every ``complete`` takes, checked once."""
    from adtbase.errors import InputError

    if max_new_tokens < 1:
        raise InputError(f"{backend}: max_new_tokens must be >= 1, got {max_new_tokens}")
    if not (temperature >= 0.0) or math.isinf(temperature):
        raise InputError(f"{backend}: temperature must be a finite number >= 0, got {temperature}")


class Runner(abc.ABC):
    """A model backend. Subclasses implement ``score``; ``close`` frees what the backend holds.

    ``score`` must return exactly one ``Result`` per request, in request order, with the request's
    ``item_id``. A backend failure for the whole batch raises ``adtbase.errors.RunnerError``; a failure
    confined to one item may instead be reported in that result's ``error``.

    ``complete`` (free-text generation, for item generators) is a capability: the backends that generate
    text (``hf``, ``vllm``, ``openai``) implement it; the others refuse it with a ``RunnerError``.
    """

    name: str = "runner"

    @abc.abstractmethod
    def score(self, requests: Sequence[Request]) -> list[Result]:
        """Score every request; results in request order."""

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        """One ``Completion`` per prompt, in prompt order: the text the model writes after the prompt (the
        prompt as one user turn where the backend speaks chat). ``temperature`` 0 is greedy; above 0,
        prompt i is sampled with seed ``seed + i`` where the backend takes per-prompt seeds (openai, vllm)
        and the batch with ``seed`` otherwise (hf). A failure for one prompt is its ``error``; a backend
        failure for the whole batch raises ``RunnerError``."""
        from adtbase.errors import RunnerError

        raise RunnerError(f"backend {self.name!r} does not generate free text (no complete); "
                          "item generation needs a text-generating backend: hf, vllm or openai")

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release models, processes or connections; safe to call twice."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def check_results(requests: Sequence[Request], results: Sequence[Result], backend: str) -> list[Result]:
    """Enforce the contract (one result per request, same order, same ids); returns a list."""
    from adtbase.errors import RunnerError

    if len(results) != len(requests):
        raise RunnerError(f"backend {backend!r} returned {len(results)} results for {len(requests)} requests")
    for i, (req, res) in enumerate(zip(requests, results, strict=True)):
        if req.item_id != res.item_id:
            raise RunnerError(f"backend {backend!r}: result {i} is for item {res.item_id!r}, "
                              f"expected {req.item_id!r}")
    return list(results)
