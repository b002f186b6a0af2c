"""Prompt templates per item type and language, zero- and few-shot, with versioned ids.

A template id reads ``<type>-<lang>-<shots>@<version>``, e.g. "mc-en-0shot@1", "numeric-zh-fewshot@1".
A version, once released, never changes its text: change a template by adding version 2, so the
template id stored with a response always says exactly what the model saw. The hash stored beside it
(``prompt_hash``) is the first 16 hex digits of the SHA-256 of the rendered prompt (UTF-8).

An item is a dict-like row with ``question``, ``choices`` (list of str, multiple choice only),
``item_type`` ("mc" | "open" | "numeric", or any type registered in ``adtbase.itemtypes``) and
``language`` ("en" | "zh"; "zh-*" counts as "zh"). Few-shot examples also need ``answer``: for multiple
choice a label ("C"), a 0-based index or the choice text; for numeric items a number or a GSM8K worked
solution ending in "#### n" (shown whole, so the model learns the format); for open items the answer
text.

The texts that differ by type (the instruction per language, how many tokens to generate, whether
choices are listed, how a few-shot answer is shown, the key as a ``ScoringRule``) are the item type's;
this module lays them out the same way for every type. ``TEMPLATES`` follows the registry: a type
registered later has its templates at once.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adtbase import itemtypes
from adtbase.errors import InputError
from runners.base import DEFAULT_LABELS, LoglikTarget, McMode, Request, ScoringRule


@dataclass(frozen=True)
class Template:
    """One versioned prompt template (the text pieces; ``render`` puts them together)."""

    template_id: str
    item_type: str
    language: str
    fewshot: bool
    header: str  # instruction at the top, once
    question: str  # "{question}" slot
    choice: str  # "{label}" and "{text}" slots, one line per choice
    answer_cue: str  # the last line the model continues from
    stop: tuple[str, ...]
    max_new_tokens: int


_EN_STOP = ("\n\nQuestion:", "\nQuestion:")
_ZH_STOP = ("\n\n题目：", "\n题目：")


def _make(item_type: str, lang: str, fewshot: bool) -> Template:
    kind = itemtypes.get(item_type)
    shots = "fewshot" if fewshot else "0shot"
    tid = f"{item_type}-{lang}-{shots}@1"
    if lang == "en":
        q, choice, cue, stop = "Question: {question}", "{label}. {text}", "Answer:", _EN_STOP
    else:
        q, choice, cue, stop = "题目：{question}", "{label}. {text}", "答案：", _ZH_STOP
    header = kind.prompt_headers[lang]
    return Template(tid, item_type, lang, fewshot, header, q, choice, cue, stop, kind.max_new_tokens)


class _Templates(Mapping[str, Template]):
    """Every registered type's templates (per language it has a header for, zero- and few-shot),
    rebuilt when the registry changes."""

    def __init__(self) -> None:
        self._built: tuple[tuple[str, ...], dict[str, Template]] | None = None

    def _table(self) -> dict[str, Template]:
        names = itemtypes.names()
        if self._built is None or self._built[0] != names:
            table = {t.template_id: t
                     for t in (_make(kind, lang, fs) for kind in names for lang in ("en", "zh")
                               if lang in itemtypes.get(kind).prompt_headers for fs in (False, True))}
            self._built = (names, table)
        return self._built[1]

    def __getitem__(self, template_id: str) -> Template:
        return self._table()[template_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


TEMPLATES: Mapping[str, Template] = _Templates()


def get_template(template_id: str) -> Template:
    """The template ``template_id``; an unknown id raises ``InputError`` with a did-you-mean hint."""
    try:
        return TEMPLATES[template_id]
    except KeyError:
        close = difflib.get_close_matches(template_id, list(TEMPLATES), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown prompt template {template_id!r}{hint} "
                         f"(known: {', '.join(sorted(TEMPLATES))})") from None


def _language(item: Mapping[str, Any]) -> str:
    lang = str(item.get("language") or "en").lower()
    return "zh" if lang.startswith("zh") else "en"


def default_template_id(item: Mapping[str, Any], fewshot: bool = False) -> str:
    """The current template id for the item's type and language."""
    shots = "fewshot" if fewshot else "0shot"
    return f"{item.get('item_type')}-{_language(item)}-{shots}@1"


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def _kind(item_type: Any, where: str) -> itemtypes.ItemType:
    if not itemtypes.is_registered(item_type):
        raise InputError(f"{where}: field 'item_type' {item_type!r} is not one of {', '.join(itemtypes.names())}")
    return itemtypes.get(item_type)


def answer_label(item: Mapping[str, Any], where: str = "item") -> str:
    """The correct label of a multiple-choice item whose ``answer`` is a label, an index or the text."""
    return itemtypes.get("mc").rule_answer(item, where)


def _block(t: Template, item: Mapping[str, Any], where: str) -> str:
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}: field 'question' is missing or empty")
    lines = [t.question.format(question=question.strip())]
    choices = itemtypes.get(t.item_type).prompt_choices(item, where)
    lines += [t.choice.format(label=lab, text=text.strip())
              for lab, text in zip(DEFAULT_LABELS, choices, strict=False)]
    lines.append(t.answer_cue)
    return "\n".join(lines)


def _shown_answer(t: Template, item: Mapping[str, Any], where: str) -> str:
    return itemtypes.get(t.item_type).shown_answer(item, where)


def render(item: Mapping[str, Any], template_id: str,
           fewshot_items: Sequence[Mapping[str, Any]] = ()) -> tuple[str, str]:
    """(prompt, prompt_hash) for ``item`` under ``template_id``, after the few-shot examples if any.

    The prompt ends with the answer cue ("Answer:" / "答案：") and no trailing space, so a
    log-likelihood continuation starts with the separator (see ``runners.base``).
    """
    t = get_template(template_id)
    where = f"item {item.get('item_id', '?')}"
    if item.get("item_type") != t.item_type:
        raise InputError(f"{where}: item_type {item.get('item_type')!r} does not fit template {template_id!r}")
    if _language(item) != t.language:
        raise InputError(f"{where}: language {item.get('language')!r} does not fit template {template_id!r}")
    if fewshot_items and not t.fewshot:
        raise InputError(f"template {template_id!r} is zero-shot but {len(fewshot_items)} examples were given")
    if t.fewshot and not fewshot_items:
        raise InputError(f"template {template_id!r} is few-shot and needs at least one example")
    parts = [t.header]
    for k, ex in enumerate(fewshot_items):
        ex_where = f"few-shot example {k} ({ex.get('item_id', '?')})"
        if ex.get("item_type") != t.item_type:
            raise InputError(f"{ex_where}: item_type {ex.get('item_type')!r} differs from the template's")
        sep = " " if t.language == "en" else ""
        parts.append(_block(t, ex, ex_where) + sep + _shown_answer(t, ex, ex_where))
    parts.append(_block(t, item, where))
    prompt = "\n\n".join(parts)
    return prompt, prompt_hash(prompt)


def scoring_rule(item: Mapping[str, Any], *, tolerance: float = 1e-6) -> ScoringRule:
    """The answer key of a bank item as a ``ScoringRule`` (its type's scoring kind and key form)."""
    where = f"item {item.get('item_id', '?')}"
    kind = _kind(item.get("item_type"), where)
    key = kind.rule_answer(item, where)
    return ScoringRule(kind.rule_kind(key), key, tolerance=tolerance)


def build_request(item: Mapping[str, Any], template_id: str | None = None,
                  fewshot_items: Sequence[Mapping[str, Any]] = (), *, mc_mode: McMode = "loglik",
                  loglik_target: LoglikTarget = "label", max_new_tokens: int | None = None) -> Request:
    """A ``Request`` for a bank item: rendered prompt, hash, scoring rule, stops from the template.

    The templates list the choices with their labels and ask for the letter (few-shot examples answer
    "Answer: C"), so log-likelihood mode scores the label as the continuation by default;
    ``loglik_target="text"`` scores the choice text instead.
    """
    tid = template_id or default_template_id(item, fewshot=bool(fewshot_items))
    prompt, digest = render(item, tid, fewshot_items)
    t = TEMPLATES[tid]
    kind = itemtypes.get(t.item_type)
    choices = tuple(kind.prompt_choices(item, f"item {item.get('item_id', '?')}"))
    rule = scoring_rule(item)
    return Request(
        item_id=str(item.get("item_id")), prompt=prompt, item_type=t.item_type,
        scoring=rule, choices=choices, choice_labels=DEFAULT_LABELS[: len(choices)],
        template_id=tid, prompt_hash=digest, mc_mode=mc_mode, loglik_target=loglik_target,
        max_new_tokens=max_new_tokens or kind.answer_tokens(rule.answer), stop=t.stop)
