"""The ``simjudge`` backend: a SIMULATED judge of known bias. A simulation device for tests, benches and the demo
world; it judges nothing real.

It reads the rendered judge prompt (``runners.judge``'s templates, en or zh) and answers a well-formed verdict
in the templates' format. What it judges is the quality the ``simulated`` candidate backend writes into its
answers to judge-scored items (``write_answer``: a marker ``sim-quality=+0.734`` with the answer's latent
quality on the logit scale, padded with filler words to a drawn length); a baseline answer of a pairwise item
carries its own marker. An answer without a marker is refused (a ``Completion`` error), never guessed.

The judge's known biases, on the logit scale (defaults: a fair judge with some noise):

- ``severity`` (pointwise): subtracted from the quality it perceives; a severe judge gives lower levels.
- ``position_bias`` (pairwise): added to the first-shown answer's side; > 0 prefers the answer shown first.
- ``length_bias``: times the log length ratio (pairwise: first / second; pointwise: the answer's length over
  ``REF_CHARS``, a simulated answer's mean length); > 0 prefers longer answers.
- ``noise``: the scale of the logistic noise of each judgment (0: none).
- ``tie_margin`` (pairwise): a perceived difference within it is a tie.
- ``refuse``: the share of calls answered without a verdict line (exercises the strict parser's refusals).

Pointwise, each rubric criterion with L levels has thresholds evenly spaced over [-1.5, 1.5]; the criterion's
score is the number of thresholds below the perceived quality, so a one-criterion rubric is a graded response
model with a rater-severity term (what the many-facet fitter assumes). Pairwise, the perceived difference is
``z_first - z_second + position_bias + length_bias * log(len_first / len_second) + noise``: A when above
``tie_margin``, B when below ``-tie_margin``, else TIE.

Randomness: each prompt gets its own generator seeded by ``(seed, the prompt's hash)``, so a judge gives the same
verdict to the same prompt whatever the batch, order or resumption, and the two orders of a pair draw apart.

``--judge NAME=simjudge:SPEC``: SPEC is a preset name (``PRESETS``) and/or ``key=value`` pairs joined by ``,``
(``simjudge:harsh``, ``simjudge:severity=0.8,noise=0.3``, ``simjudge:first,seed=3``); ``--backend-arg NAME.K=V``
and a judges file's ``args`` set the same keys.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from adtbase.errors import InputError
from runners.base import Completion, Request, Result, Runner, check_completion_args
from runners.judge import JUDGE_TEMPLATES, JudgeTemplate
from runners.templates import prompt_hash

MARK = "sim-quality"
_MARK_RE = re.compile(MARK + r"=([+-]\d+(?:\.\d+)?)")
THRESHOLD_SPAN = 1.5      # pointwise thresholds spread over [-span, span]
_FILLER = ("the", "answer", "explains", "each", "step", "with", "care", "and", "gives", "an", "example", "of",
           "what", "is", "asked", "so", "reader", "can", "follow", "it")
_HEAD = "(Simulated answer, a simulation device; {mark}={quality:+.3f}.) "
ANSWER_WORDS = (20, 160)  # a simulated answer's length in filler words, uniform (length is not quality)
# Pointwise length bias: log(chars / REF_CHARS), REF_CHARS a simulated answer's mean length, so that a length
# bias tilts a judge's levels towards longer answers without shifting its mean (which is severity's).
REF_CHARS = round(len(_HEAD.format(mark=MARK, quality=0.0)) + sum(ANSWER_WORDS) / 2
                  * (sum(len(w) for w in _FILLER) / len(_FILLER) + 1))


# ---------------------------------------------------------------- the answers it reads

def write_answer(quality: float, n_words: int, rng: np.random.Generator) -> str:
    """A simulated answer of latent ``quality`` (logit scale) and about ``n_words`` filler words: what the
    ``simulated`` backend writes for a judge-scored item and a demo item's baseline."""
    words = rng.choice(_FILLER, size=max(int(n_words), 1))
    return _HEAD.format(mark=MARK, quality=quality) + " ".join(words) + "."


def read_quality(text: str) -> float | None:
    """The quality marker of a simulated answer; None when it has none or more than one."""
    found = _MARK_RE.findall(text or "")
    return float(found[0]) if len(found) == 1 else None


# The face's names (``runners``): what the demo world and benches read and write.
write_simulated_answer = write_answer
read_simulated_quality = read_quality


# ---------------------------------------------------------------- the judge's biases

@dataclass(frozen=True)
class Bias:
    severity: float = 0.0
    position_bias: float = 0.0
    length_bias: float = 0.0
    noise: float = 0.3
    tie_margin: float = 0.15
    refuse: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = [f"{f.name}={getattr(self, f.name)!r} is not a finite number" for f in fields(self)
                    if f.name != "seed" and not math.isfinite(float(getattr(self, f.name)))]
        if self.noise < 0 or self.tie_margin < 0:
            problems.append("noise and tie_margin must be >= 0")
        if not 0 <= self.refuse <= 1:
            problems.append(f"refuse={self.refuse} must be a share in [0, 1]")
        if problems:
            raise InputError("simjudge: " + "; ".join(problems))


PRESETS: Mapping[str, Mapping[str, float]] = {
    "fair": {},
    "harsh": {"severity": 0.8},
    "lenient": {"severity": -0.8},
    "first": {"position_bias": 1.0},      # prefers the answer shown first
    "long": {"length_bias": 1.5},         # prefers the longer answer
    "noisy": {"noise": 1.2},
}
_KEYS = {f.name: f.type for f in fields(Bias)}


def parse_spec(spec: str) -> dict[str, Any]:
    """``preset[,key=value...]`` (module doc) as Bias keyword arguments; every problem named at once."""
    out: dict[str, Any] = {}
    problems = []
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        if "=" not in part:
            if part in PRESETS:
                out.update(PRESETS[part])
            elif part != "simjudge":
                problems.append(f"unknown preset {part!r} (presets: {', '.join(PRESETS)})")
            continue
        key, _, value = (s.strip() for s in part.partition("="))
        if key not in _KEYS:
            problems.append(f"unknown key {key!r} (keys: {', '.join(_KEYS)})")
            continue
        try:
            out[key] = int(value) if key == "seed" else float(value)
        except ValueError:
            problems.append(f"{key}={value!r} is not a number")
    if problems:
        raise InputError(f"simjudge spec {spec!r}: " + "; ".join(problems))
    return out


# ---------------------------------------------------------------- reading the prompt

def _head(text: str) -> str:
    return text[: text.index("{")]


def _tail(text: str, slot: str) -> str:
    after = text.split("{" + slot + "}", 1)[1]
    return after[: after.index("{")] if "{" in after else after


@dataclass(frozen=True)
class _Read:
    kind: str
    answers: tuple[str, ...]                 # pairwise: (first, second); pointwise: (answer,)
    levels: tuple[int, ...] = ()             # pointwise: levels per criterion


_CRITERION_RE = re.compile(r"^(?:Criterion \d+: |标准 \d+：)")
_LEVEL_RE = re.compile(r"^  (\d+)[:：]")


def _template_of(prompt: str) -> JudgeTemplate | None:
    # The longest matching head wins (the rubric and reference heads differ in their task sentence).
    heads = sorted(JUDGE_TEMPLATES.values(), key=lambda t: -len(_head(t.text)))
    return next((t for t in heads if prompt.startswith(_head(t.text))), None)


def _section(prompt: str, header: str, end: str) -> str | None:
    start = prompt.rfind(header)
    stop = prompt.rfind(end)
    if start < 0 or stop < start:
        return None
    return prompt[start + len(header): stop].strip()


def read_prompt(prompt: str) -> _Read | str:
    """What the judge needs from one rendered judge prompt, or why it cannot read it."""
    t = _template_of(prompt)
    if t is None:
        return "not a judge prompt of runners.judge's templates"
    zh = t.language == "zh"
    if t.kind == "pairwise":
        a_head, b_head = ("[回答 A]", "[回答 B]") if zh else ("[Response A]", "[Response B]")
        end = _tail(t.text, "second")
        b = _section(prompt, b_head + "\n", end)
        a = _section(prompt[: prompt.rfind(b_head)], a_head + "\n", "\n\n")
        if a is None or b is None:
            return "the two responses are not where the template puts them"
        return _Read("pairwise", (a, b))
    answer = _section(prompt, ("[回答]" if zh else "[Response]") + "\n", _tail(t.text, "answer"))
    if answer is None:
        return "the response is not where the template puts it"
    levels: list[int] = []
    for line in prompt[len(_head(t.text)):].splitlines():
        if _CRITERION_RE.match(line):
            levels.append(0)
        elif _LEVEL_RE.match(line) and levels:
            levels[-1] += 1
        elif levels:
            break
    if not levels or min(levels) < 2:
        return "no rubric criteria with levels in the prompt"
    return _Read(t.kind, (answer,), tuple(levels))


# ---------------------------------------------------------------- judging

def judge_prompt(read: _Read, bias: Bias, rng: np.random.Generator) -> str:
    """The simulated judge's output for one read prompt: a line of reasoning, then the verdict line."""
    qualities = [read_quality(a) for a in read.answers]
    if rng.random() < bias.refuse:
        return "I find both hard to judge and would rather not give a verdict."
    if read.kind == "pairwise":
        za, zb = qualities
        assert za is not None and zb is not None
        la, lb = (max(len(a), 1) for a in read.answers)
        d = za - zb + bias.position_bias + bias.length_bias * math.log(la / lb) + bias.noise * rng.logistic()
        shown = "A" if d > bias.tie_margin else "B" if d < -bias.tie_margin else "TIE"
        return (f"Simulated judge: response A reads as quality {za:+.2f} ({la} characters), response B as "
                f"{zb:+.2f} ({lb} characters).\nVERDICT: {shown}")
    (z,) = qualities
    assert z is not None
    length = bias.length_bias * math.log(max(len(read.answers[0]), 1) / REF_CHARS)
    scores = []
    for n in read.levels:
        perceived = z - bias.severity + length + bias.noise * rng.logistic()
        scores.append(int(np.sum(perceived > np.linspace(-THRESHOLD_SPAN, THRESHOLD_SPAN, n - 1))))
    return (f"Simulated judge: the response reads as quality {z:+.2f}.\n"
            f"VERDICT: {', '.join(str(s) for s in scores)}")


class SimulatedJudge(Runner):
    """A simulated judge (module doc): ``complete`` answers judge prompts; it scores no items."""

    name = "simjudge"

    def __init__(self, model: str = "fair", **bias: Any) -> None:
        try:
            self.bias = replace(Bias(**parse_spec(model)), **bias)   # the spec, then explicit arguments
        except TypeError as exc:
            raise InputError(f"simjudge: {exc} (keys: {', '.join(_KEYS)})") from None
        self.model = model

    def score(self, requests: Sequence[Request]) -> list[Result]:
        from adtbase.errors import RunnerError

        raise RunnerError("simjudge is a simulated judge: it answers judge prompts (complete), not items")

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        check_completion_args(self.name, max_new_tokens, temperature)
        out = []
        for prompt in prompts:
            read = read_prompt(prompt)
            if isinstance(read, str):
                out.append(Completion("", error=f"simjudge: {read}"))
                continue
            if any(read_quality(a) is None for a in read.answers):
                out.append(Completion("", error=f"simjudge: an answer carries no single {MARK} marker (only "
                                                "simulated answers can be judged by a simulated judge)"))
                continue
            rng = np.random.default_rng([self.bias.seed, int(prompt_hash(prompt)[:12], 16)])
            text = judge_prompt(read, self.bias, rng)
            out.append(Completion(text, tokens_in=len(prompt.split()), tokens_out=len(text.split())))
        return out
