"""Judge calls: a judge model grades candidate answers through any generating runner (``Runner.complete``).

- Templates (``JUDGE_TEMPLATES``, ids ``judge-<kind>-<lang>@<version>``, kinds ``pairwise``, ``rubric``,
  ``reference``, languages en and zh): the judge reasons first, then ends with one verdict line in a fixed
  form; the criteria (pairwise) or the rubric's levels (pointwise) are spelled out; worked examples
  (``JudgeExample``) may go before the case. A released version never changes its text (add a version).
  The item's and the candidate's text is put in after the template is laid out, so braces or a "VERDICT:"
  line inside an answer cannot change the template (the latter makes the judge's own output ambiguous,
  which the parser refuses, never guesses).
- ``render_judge_prompt`` -> (prompt, prompt hash by ``runners.templates.prompt_hash``, the one hash rule).
- ``parse_verdict`` is strict: the output's last non-empty line must be the one line that starts with
  "VERDICT:" and it must read ``VERDICT: A`` / ``VERDICT: B`` / ``VERDICT: TIE`` (pairwise) or
  ``VERDICT: s1, s2, ...`` (one integer score per rubric criterion, in the rubric's order, each within its
  levels). Anything else is NaN with the ``problem`` named (no verdict line, two verdict lines, text after
  it, a malformed line, a wrong number of scores, a score out of range). The verdict coding is
  ``adtbase.verdicts``'.
- ``judge(runner, judge_name, cases, orders=...)`` renders every (case, order) not already ``done``, calls
  ``runner.complete`` once for the lot (greedy by default) and returns one ``JudgeCall`` per call, the rows of
  the bank's judgments frame (``JUDGMENT_COLUMNS``). Pairwise cases run in both orders by default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from adtbase.errors import InputError, RunnerError
from adtbase.rubric import JudgeKey, Rubric
from adtbase.verdicts import JUDGMENT_COLUMNS, JUDGMENT_KEY, ORDERS, POINTWISE, level_verdict, pairwise_level
from runners.base import Runner
from runners.templates import prompt_hash

__all__ = ["JUDGE_TEMPLATES", "JUDGMENT_COLUMNS", "JUDGMENT_KEY", "JudgeCall", "JudgeCase", "JudgeExample",
           "judge", "parse_verdict", "planned_calls", "render_judge_prompt"]

KINDS = ("pairwise", "rubric", "reference")
LANGUAGES = ("en", "zh")
PAIRWISE_N_LEVELS = 3   # baseline better / tie / candidate better



# ---------------------------------------------------------------- templates

@dataclass(frozen=True)
class JudgeTemplate:
    template_id: str
    kind: str
    language: str
    text: str             # slots: {examples} {criteria} {reference} {question} {first} {second} / {answer}
    reference_block: str  # slot {reference_text}; "" where the case has none
    examples_header: str
    scale_line: str       # one rubric level: {score} {description}
    criterion_line: str   # {n} {name} {description}


_EN_PAIRWISE = """\
You are an impartial judge. Compare the two responses to the user's request below and decide which is better.

Judge on these criteria, in this order of importance:
1. Helpfulness: the response does what the request asks.
2. Accuracy: what it says is correct.
3. Completeness: it covers what the request needs, and nothing irrelevant.
4. Clarity: it is easy to follow.
The order in which the responses are shown, their length and their style must not sway you: a longer \
response is not better for being longer. A tie is for responses of equal quality.
{examples}{reference}
[Request]
{question}

[Response A]
{first}

[Response B]
{second}

First explain your reasoning in a few sentences, comparing the two responses on the criteria. \
Then end with one final line that is exactly one of:
VERDICT: A
VERDICT: B
VERDICT: TIE
Write nothing after that line."""

_ZH_PAIRWISE = """\
你是一名公正的评审。请比较下面两个针对用户请求的回答，判断哪一个更好。

请按以下标准评判，重要性依次递减：
1. 有用性：回答完成了请求要求的事情。
2. 准确性：回答内容正确。
3. 完整性：涵盖请求所需的内容，没有无关内容。
4. 清晰度：回答易于理解。
回答出现的先后顺序、长度和风格都不应影响你的判断：更长的回答并不因为更长而更好。两者质量相当时判为平局。
{examples}{reference}
[请求]
{question}

[回答 A]
{first}

[回答 B]
{second}

请先用几句话说明理由，按上述标准比较两个回答。最后单独一行给出结论，必须恰好是以下之一（保持英文格式）：
VERDICT: A
VERDICT: B
VERDICT: TIE
该行之后不要再写任何内容。"""

_EN_POINTWISE = """\
You are an impartial judge. {task}

{criteria}
The length and style of the response must not sway you: score what it says against the rubric.
{examples}{reference}
[Request]
{question}

[Response]
{answer}

First explain your reasoning in a few sentences, criterion by criterion. Then end with one final line \
giving one integer score per criterion, in the order above, separated by commas:
VERDICT: {format}
Write nothing after that line."""

_ZH_POINTWISE = """\
你是一名公正的评审。{task}

{criteria}
回答的长度和风格不应影响你的判断：请对照评分标准评判其内容。
{examples}{reference}
[请求]
{question}

[回答]
{answer}

请先逐条标准用几句话说明理由。最后单独一行给出每条标准的整数分数，按上面的顺序，用英文逗号分隔（保持英文格式）：
VERDICT: {format}
该行之后不要再写任何内容。"""

_TASKS = {
    ("rubric", "en"): "Score the response to the user's request below on this rubric.",
    ("rubric", "zh"): "请按以下评分标准为下面针对用户请求的回答打分。",
    ("reference", "en"): "Score the response to the user's request below against the reference answer, on "
                         "this scale. The reference answer is the standard of correctness.",
    ("reference", "zh"): "请对照参考答案，按以下标准为下面针对用户请求的回答打分。参考答案是判断正确与否的标准。",
}
_REF_BLOCK = {"en": "\n[Reference answer]\n{reference_text}\n", "zh": "\n[参考答案]\n{reference_text}\n"}
_EX_HEADER = {"en": "\nWorked examples:\n{examples_text}\n", "zh": "\n示例：\n{examples_text}\n"}
_CRITERION = {"en": "Criterion {n}: {name}{description}", "zh": "标准 {n}：{name}{description}"}
_SCALE = {"en": "  {score}: {description}", "zh": "  {score}：{description}"}


def _template(kind: str, lang: str) -> JudgeTemplate:
    if kind == "pairwise":
        text = _EN_PAIRWISE if lang == "en" else _ZH_PAIRWISE
    else:
        text = (_EN_POINTWISE if lang == "en" else _ZH_POINTWISE).replace("{task}", _TASKS[(kind, lang)])
    return JudgeTemplate(f"judge-{kind}-{lang}@1", kind, lang, text, _REF_BLOCK[lang], _EX_HEADER[lang],
                         _SCALE[lang], _CRITERION[lang])


JUDGE_TEMPLATES: Mapping[str, JudgeTemplate] = {t.template_id: t for t in
                                                (_template(k, lang) for k in KINDS for lang in LANGUAGES)}


def judge_template_id(kind: str, language: str, version: int = 1) -> str:
    lang = "zh" if str(language or "en").lower().startswith("zh") else "en"
    tid = f"judge-{kind}-{lang}@{version}"
    if tid not in JUDGE_TEMPLATES:
        raise InputError(f"no judge template {tid!r} (known: {', '.join(JUDGE_TEMPLATES)})")
    return tid


# ---------------------------------------------------------------- cases and prompts

@dataclass(frozen=True)
class JudgeCase:
    """One candidate answer to judge. External data (LLMBar) has ``run_id`` "" and the pair id as item."""

    run_id: str
    item_id: str
    model: str          # the candidate's model ("" for external data)
    question: str
    answer: str         # the candidate's answer
    key: JudgeKey       # reference / rubric / baseline
    language: str = "en"

    @property
    def kind(self) -> str:
        return self.key.kind


@dataclass(frozen=True)
class JudgeExample:
    """A worked example shown before the case: its kind's inputs, the reasoning and the verdict line's value
    ("A", "B", "TIE", or the scores "2, 1")."""

    kind: str
    question: str
    answer: str
    reasoning: str
    verdict: str
    other: str = ""        # pairwise: the answer shown as B
    reference: str = ""


def _fill(text: str, values: Mapping[str, str]) -> str:
    """Put the values in the slots in one pass (a value's own braces are never read as slots)."""
    return re.sub(r"\{([a-z_]+)\}", lambda m: values[m.group(1)] if m.group(1) in values else m.group(0), text)


def _criteria_text(t: JudgeTemplate, scale: Rubric) -> str:
    lines = []
    for n, c in enumerate(scale.criteria, 1):
        desc = f" ({c.description})" if c.description else ""
        lines.append(t.criterion_line.format(n=n, name=c.name, description=desc))
        lines += [t.scale_line.format(score=s, description=d) for s, d in enumerate(c.levels)]
    return "\n".join(lines)


def _example_text(t: JudgeTemplate, ex: JudgeExample) -> str:
    zh = t.language == "zh"
    parts = [("[请求]" if zh else "[Request]") + "\n" + ex.question]
    if ex.reference:
        parts.append(("[参考答案]" if zh else "[Reference answer]") + "\n" + ex.reference)
    if t.kind == "pairwise":
        parts += [("[回答 A]" if zh else "[Response A]") + "\n" + ex.answer,
                  ("[回答 B]" if zh else "[Response B]") + "\n" + ex.other]
    else:
        parts.append(("[回答]" if zh else "[Response]") + "\n" + ex.answer)
    parts.append(ex.reasoning.strip() + "\nVERDICT: " + ex.verdict.strip())
    return "\n\n".join(parts)


def render_judge_prompt(case: JudgeCase, template_id: str, *, order: str = POINTWISE,
                        examples: Sequence[JudgeExample] = ()) -> tuple[str, str]:
    """(prompt, prompt_hash) of one judge call: the case under ``template_id``, in ``order`` (pairwise: "ab"
    the candidate shown as A, "ba" as B; pointwise: "")."""
    try:
        t = JUDGE_TEMPLATES[template_id]
    except KeyError:
        raise InputError(f"unknown judge template {template_id!r} (known: {', '.join(JUDGE_TEMPLATES)})") from None
    where = f"judge case {case.run_id}/{case.item_id}"
    if t.kind != case.kind:
        raise InputError(f"{where}: a {case.kind} case does not fit template {template_id!r}")
    if t.kind == "pairwise" and order not in ORDERS:
        raise InputError(f"{where}: a pairwise judgment needs order 'ab' or 'ba', got {order!r}")
    if t.kind != "pairwise" and order != POINTWISE:
        raise InputError(f"{where}: a {t.kind} judgment has no order, got {order!r}")
    if any(ex.kind != t.kind for ex in examples):
        raise InputError(f"{where}: a worked example of another kind than {t.kind!r}")
    shown = "\n\n".join(f"--- {k + 1} ---\n{_example_text(t, ex)}" for k, ex in enumerate(examples))
    # Two passes: the template's own optional blocks, then every text from outside at once (one pass, so no
    # outside text is ever read for slots).
    layout = _fill(t.text, {"examples": t.examples_header if examples else "",
                            "reference": t.reference_block if case.key.reference is not None else ""})
    values = {"examples_text": shown, "reference_text": case.key.reference or "", "question": case.question.strip(),
              "answer": case.answer.strip(),
              "criteria": _criteria_text(t, case.key.scale) if t.kind != "pairwise" else "",
              "format": ", ".join(f"<{c.name}>" for c in case.key.scale.criteria)}
    if t.kind == "pairwise":
        baseline = case.key.baseline or ""
        first, second = (case.answer, baseline) if order == "ab" else (baseline, case.answer)
        values.update(first=first.strip(), second=second.strip())
    prompt = _fill(layout, values)
    return prompt, prompt_hash(prompt)


# ---------------------------------------------------------------- the strict parser

@dataclass(frozen=True)
class Verdict:
    verdict: float          # NaN when refused
    level: int | None
    n_levels: int
    problem: str | None


_VERDICTISH = re.compile(r"^\W*verdict\W*[:：]", re.IGNORECASE)
_VERDICT_LINE = re.compile(r"VERDICT: (\S.*)")


def parse_verdict(text: str, *, kind: str, order: str = POINTWISE, scale: Rubric | None = None) -> Verdict:
    """The verdict of one judge output, strictly (module doc); pairwise levels in the candidate's terms."""
    n_levels = PAIRWISE_N_LEVELS if kind == "pairwise" else (scale.n_levels if scale is not None else 0)
    if kind != "pairwise" and scale is None:
        raise ValueError("a pointwise verdict needs the rubric (scale)")

    def refuse(problem: str) -> Verdict:
        return Verdict(math.nan, None, n_levels, problem)

    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return refuse("empty output")
    marked = [k for k, line in enumerate(lines) if _VERDICTISH.match(line)]
    if not marked:
        return refuse("no verdict line")
    if len(marked) > 1:
        return refuse(f"{len(marked)} verdict lines")
    if marked[0] != len(lines) - 1:
        return refuse("text after the verdict line")
    m = _VERDICT_LINE.fullmatch(lines[-1])
    if m is None:
        return refuse(f"verdict line not in the form 'VERDICT: ...': {lines[-1][:60]!r}")
    body = m.group(1).strip()
    if kind == "pairwise":
        if body not in ("A", "B", "TIE"):
            return refuse(f"pairwise verdict {body[:20]!r} is not A, B or TIE")
        level = pairwise_level(body, order)
        return Verdict(level_verdict(level, n_levels, pairwise=True), level, n_levels, None)
    assert scale is not None
    if not re.fullmatch(r"\d+(?:\s*,\s*\d+)*", body):
        return refuse(f"verdict {body[:30]!r} is not integer scores separated by commas")
    scores = [int(s) for s in body.split(",")]
    if len(scores) != len(scale.criteria):
        return refuse(f"{len(scores)} scores for {len(scale.criteria)} criteria")
    for s, c in zip(scores, scale.criteria, strict=True):
        if not 0 <= s < len(c.levels):
            return refuse(f"score {s} out of range for criterion {c.name!r} (0 to {len(c.levels) - 1})")
    level = sum(scores)
    return Verdict(level_verdict(level, n_levels), level, n_levels, None)


# ---------------------------------------------------------------- judge calls

@dataclass(frozen=True)
class JudgeCall:
    """One judge call: a row of the judgments frame (``JUDGMENT_COLUMNS``)."""

    run_id: str
    item_id: str
    model: str
    judge: str
    judge_model: str
    template_id: str
    order: str
    prompt_hash: str
    raw_output: str
    verdict: float
    level: int | None
    n_levels: int
    problem: str | None
    judged_at: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)   # tokens, not stored

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.run_id, self.item_id, self.judge, self.template_id, self.order)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("extra")
        return row


def planned_calls(cases: Iterable[JudgeCase], *, orders: Sequence[str] = ORDERS, version: int = 1
                  ) -> list[tuple[JudgeCase, str, str]]:
    """(case, template id, order) of every call the cases need: a pairwise case once per order, a pointwise
    case once."""
    for o in orders:
        if o not in ORDERS:
            raise InputError(f"order {o!r} is not one of {', '.join(ORDERS)}")
    out = []
    for case in cases:
        tid = judge_template_id(case.kind, case.language, version)
        for o in (orders if case.kind == "pairwise" else (POINTWISE,)):
            out.append((case, tid, o))
    return out


def judge(runner: Runner, judge_name: str, cases: Sequence[JudgeCase], *, orders: Sequence[str] = ORDERS,
          judge_model: str = "", version: int = 1, examples: Sequence[JudgeExample] = (),
          done: Collection[tuple[str, ...]] = frozenset(), max_new_tokens: int = 1024,
          temperature: float = 0.0, seed: int = 0) -> list[JudgeCall]:
    """Judge ``cases`` with ``runner`` (one ``complete`` call for all); the calls whose key is in ``done`` are
    skipped (resume). Returns one ``JudgeCall`` per call made, in plan order; a prompt the backend failed on
    is a call with NaN verdict and the backend's message as its ``problem``."""
    if not judge_name:
        raise InputError("a judge needs a name")
    plan = [(c, tid, o) for c, tid, o in planned_calls(cases, orders=orders, version=version)
            if (c.run_id, c.item_id, judge_name, tid, o) not in done]
    if not plan:
        return []
    prompts = [render_judge_prompt(c, tid, order=o, examples=[e for e in examples if e.kind == c.kind])
               for c, tid, o in plan]
    outs = runner.complete([p for p, _ in prompts], max_new_tokens=max_new_tokens, temperature=temperature,
                           seed=seed)
    if len(outs) != len(plan):
        raise RunnerError(f"judge {judge_name!r}: the backend returned {len(outs)} completions for "
                          f"{len(plan)} prompts")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    calls = []
    for (case, tid, order), (_, digest), out in zip(plan, prompts, outs, strict=True):
        if out.ok:
            v = parse_verdict(out.text, kind=case.kind, order=order,
                              scale=None if case.kind == "pairwise" else case.key.scale)
        else:
            n = PAIRWISE_N_LEVELS if case.kind == "pairwise" else case.key.scale.n_levels
            v = Verdict(math.nan, None, n, f"backend error: {out.error}")
        calls.append(JudgeCall(case.run_id, case.item_id, case.model, judge_name, judge_model, tid, order, digest,
                               out.text if out.ok else "", v.verdict, v.level, v.n_levels, v.problem, now,
                               {"tokens_in": out.tokens_in, "tokens_out": out.tokens_out}))
    return calls
