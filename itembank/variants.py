"""Deterministic item variants: new items made from existing ones (issue 13), pure functions on item dicts.

An item dict has the keys ``question, choices, answer, item_type, language, tags, item_id`` (a row of
``Bank.items()`` or of an import file); randomness comes only from the ``rng`` passed in.

Real variants (importable, origin ``variant``):
- ``shuffle_options(item, rng)``: the choices permuted; the key follows its option.
- ``renumber(item, program, rng)``: the question's numbers redrawn at the same magnitude and the new
  key *computed* by running ``program`` (a solver, e.g. model-written) in ``adtbase.sandbox``.
Each carries provenance: ``origin="variant"``, ``generator="variant:<method>@<VERSION>"``,
``generator_params`` (JSON: seed, method, what changed; ``default_rng(seed)`` redoes it),
``parent_item_id`` (the sampler keeps a variant and its parent off one form) and a fresh ``item_id``.

``perturb(item, rng)`` is for near-duplicate tests only: numbers change but the key is *not* recomputed,
so the result is marked ``origin="perturbed"``, which the importer refuses (not in ``ORIGINS``).

The solver-program contract (``renumber``): the question's numbers, in reading order, are the keyword
arguments ``n0, n1, ...`` (``question_numbers(item)`` lists them: show it to whoever writes the program);
the program defines ``solve(n0, n1, ...)`` returning the answer as a number. For a multiple-choice item
the answer is the value of the correct option. Before use it must reproduce the parent's own key on
the parent's own numbers (a self-check), and every new answer must be a finite number, whole where the
parent's is whole and not negative where the parent's is not.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from adtbase import itemtypes
from adtbase.errors import VariantRefused
from adtbase.itemtypes.numeric import Numeric
from adtbase.itemtypes.text import parse_number
from adtbase.sandbox import Limits, SandboxResult, run_python

from .content import LETTERS, content_hash, guess_language, item_id_from_hash, normalise
from .generators import template_solver

__all__ = ["VERSION", "question_numbers", "shuffle_options", "renumber", "edit_words", "perturb",
           "VariantRefused", "SOLVER_LIMITS"]

VERSION = "1"
# A plain number in running text ("16", "2.5", "80,000"): not inside a word or an id ("x2", "A1").
NUMBER = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])")
SOLVER_LIMITS = Limits(cpu_s=5, wall_s=15.0, memory_bytes=512 << 20, processes=4)
TRIES = 20                      # number draws before renumber gives up on a clean answer
# Words swapped in by edit_words: common function words, so the text stays text-like.
FILLER_EN = ("the", "a", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "on", "by")
_EN_TOKENS = re.compile(r"\S+|\s+")
_ZH_TOKENS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff]+|\s+")
FILLER_ZH = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也"

Sandbox = Callable[..., SandboxResult]


# ---------------------------------------------------------------- helpers

def question_numbers(item: Mapping[str, Any]) -> dict[str, float | int]:
    """The question's numbers in reading order as the solver's keyword arguments ``n0, n1, ...``."""
    return {f"n{i}": _as_number(m.group()) for i, m in enumerate(NUMBER.finditer(str(item["question"])))}


def _as_number(text: str) -> float | int:
    text = text.replace(",", "")
    return float(text) if "." in text else int(text)


def _new_number(text: str, rng: np.random.Generator) -> str:
    """A different number of the same shape: as many digits, as many decimals, as many trailing zeros
    (a round "80,000" stays round), thousands separators where it had them (one digit: 2-9)."""
    grouped = "," in text
    whole, _, frac = text.replace(",", "").partition(".")
    zeros = len(whole) - len(whole.rstrip("0")) if len(whole) > 1 and not frac else 0
    head = len(whole) - zeros
    if head == 0 and not frac:                                # "0", "00": nothing to redraw
        return text
    first_lo = 1 if head > 1 or zeros else 2
    new = text
    for _ in range(10):
        digits = [int(rng.integers(first_lo, 10))] + [int(d) for d in rng.integers(0, 10, max(head - 1, 0))]
        w = "".join(map(str, digits)) + "0" * zeros if head and whole != "0" else whole   # 0.05 stays below 1
        f = "".join(str(int(d)) for d in rng.integers(0, 10, len(frac)))
        if frac:
            f = f[:-1] + str(int(rng.integers(1, 10)))       # no trailing zero: same written precision
        new = (f"{int(w):,}" if grouped else w) + ("." + f if frac else "")
        if new != text:
            break
    return new


def _renumbered_question(question: str, rng: np.random.Generator) -> tuple[str, dict[str, str]]:
    changed: dict[str, str] = {}

    def swap(m: re.Match[str]) -> str:
        new = _new_number(m.group(), rng)
        changed[f"n{len(changed)}"] = new
        return new
    return NUMBER.sub(swap, question), changed


def _child(rng: np.random.Generator) -> tuple[int, np.random.Generator]:
    """A seed drawn from ``rng`` and the generator made from it: the seed goes into generator_params."""
    seed = int(rng.integers(0, 2**63 - 1))
    return seed, np.random.default_rng(seed)


def _variant(item: Mapping[str, Any], method: str, seed: int, params: dict[str, Any], **changes: Any) -> dict:
    out = {**item, **changes}
    out.update(origin="variant", generator=f"variant:{method}@{VERSION}",
               generator_params=json.dumps({"method": method, "seed": seed, **params}, sort_keys=True,
                                           ensure_ascii=False),
               parent_item_id=item.get("item_id"))
    out["item_id"] = item_id_from_hash(content_hash(out["question"], out.get("choices"), out.get("answer")))
    return out


def _choices(item: Mapping[str, Any]) -> list[str]:
    choices = item.get("choices")
    return [] if choices is None else [str(c) for c in choices]


# ---------------------------------------------------------------- shuffle

def shuffle_options(item: Mapping[str, Any], rng: np.random.Generator) -> dict:
    """The choices in a new order (never the same one where there are two or more); the key follows."""
    kind = itemtypes.get(str(item["item_type"]))
    choices = _choices(item)
    if not kind.has_choices or len(choices) < 2:
        raise VariantRefused(f"item {item.get('item_id')}: shuffle_options needs a choice item with 2+ "
                             f"choices ({item['item_type']}, {len(choices)} choices)")
    seed, child = _child(rng)
    order = list(range(len(choices)))
    while order == list(range(len(choices))):
        order = [int(i) for i in child.permutation(len(choices))]
    new_choices = [choices[i] for i in order]
    return _variant(item, "shuffle", seed, {"order": order}, choices=new_choices,
                    answer=_follow_key(kind, str(item["answer"]), order, new_choices))


def _follow_key(kind: Any, key: str, order: list[int], new_choices: list[str]) -> str:
    """The key naming the same options after ``order`` (new position j holds old option order[j])."""
    where = {LETTERS[old]: LETTERS[new] for new, old in enumerate(order)}
    labels = kind.key_labels(key)
    suffix = key[len(",".join(labels)):]                       # e.g. multi's " (partial credit)"
    return str(kind.canonical_key(",".join(where[label] for label in labels) + suffix,
                                  choices=new_choices, answer_format="letter"))


# ---------------------------------------------------------------- renumber

def renumber(item: Mapping[str, Any], program: str | None, rng: np.random.Generator, *,
             sandbox: Sandbox = run_python, limits: Limits = SOLVER_LIMITS) -> dict:
    """The question's numbers redrawn and the key recomputed by ``program`` (module docstring: contract).

    ``program=None`` is for template items (origin "template"): the key is recomputed by the generator's
    own logic (``generators.template_solver``), in process, with the same self-check; a generator without
    one is refused.

    Numeric items get the new value as key; multiple-choice items whose options are numbers keep each
    distractor's offset from the key (``new key value + (old option - old key value)``) and keep the key
    letter. Raises ``VariantRefused`` naming why: no numbers, a program that fails, disagrees with the
    parent's key on the parent's numbers, or returns junk; options that are not numbers.
    """
    where = f"item {item.get('item_id')}"
    kind_name = str(item["item_type"])
    numbers = question_numbers(item)
    if not numbers:
        raise VariantRefused(f"{where}: renumber needs numbers in the question; it has none")
    if kind_name not in ("numeric", "mc"):
        raise VariantRefused(f"{where}: renumber handles numeric and mc items, not {kind_name!r}")
    choices = _choices(item)
    key = str(item["answer"])
    option_values: list[float | None] = []
    if kind_name == "mc":
        option_values = [parse_number(c) for c in choices]
        if any(v is None for v in option_values):
            raise VariantRefused(f"{where}: renumber needs options that are numbers; "
                                 f"{choices[[v is None for v in option_values].index(True)]!r} is not")
        parent_value = float(option_values[LETTERS.index(key)] or 0.0)
    else:
        parent_value = Numeric().key_value(key)[0]
    solve, solver = _solver(item, program, sandbox, limits, where)
    got = solve(numbers, "the parent's own numbers")
    if not _same(got, parent_value):
        raise VariantRefused(f"{where}: the {solver} gives {got!r} on the parent's own numbers, but the "
                             f"parent's key is {parent_value!r}; the {solver} is wrong, not used")
    offsets = [float(v) - parent_value for v in option_values if v is not None]
    keep_sign = bool(offsets) and min(offsets) + parent_value >= 0

    def accept(value: float) -> bool:
        """A negative option beside non-negative ones would give itself away (as in the generators)."""
        return not keep_sign or all(value + o >= 0 for o in offsets)
    seed, child = _child(rng)
    question, changed, value, attempts = _draw_clean(item, solve, child, parent_value, where, accept)
    params = {"numbers": changed, "old_numbers": {k: str(v) for k, v in numbers.items()}, "attempts": attempts,
              "solver": solver, **({"program_sha256": _sha256(program)} if program is not None else {})}
    if kind_name == "numeric":
        new_key = itemtypes.get("numeric").canonical_key(_number_text(value))
        return _variant(item, "renumber", seed, params, question=question, answer=new_key)
    new_choices = [_number_text(value + (v - parent_value)) for v in option_values]   # type: ignore[operator]
    if len({normalise(c) for c in new_choices}) < len(new_choices):
        raise VariantRefused(f"{where}: the re-derived options {new_choices} are not distinct")
    return _variant(item, "renumber", seed, {**params, "offsets": True}, question=question, choices=new_choices,
                    answer=key)


Solve = Callable[[dict[str, Any], str], float]


def _solver(item: Mapping[str, Any], program: str | None, sandbox: Sandbox, limits: Limits,
            where: str) -> tuple[Solve, str]:
    """(numbers, what they are) -> answer, and its name: the program in the sandbox, or the template's logic."""
    if program is not None:
        return (lambda numbers, on: _solve(sandbox, program, numbers, limits, where, on)), "program"
    generator = str(item.get("generator") or "")
    template = template_solver(generator, item.get("generator_params")) if item.get("origin") == "template" else None
    if template is None:
        raise VariantRefused(f"{where}: renumber needs a solver program; without one only template items of a "
                             f"generator with a solver are renumbered (origin {item.get('origin')!r}, "
                             f"generator {generator or None!r})")

    def solve(numbers: dict[str, Any], on: str) -> float:
        try:
            return float(template([numbers[f"n{i}"] for i in range(len(numbers))]))
        except (ValueError, TypeError, KeyError) as exc:
            raise VariantRefused(f"{where}: the {generator} solver failed on {on}: {exc}") from None
    return solve, f"template {generator}"


def _draw_clean(item: Mapping[str, Any], solve: Solve, rng: np.random.Generator, parent_value: float,
                where: str, accept: Callable[[float], bool]) -> tuple[str, dict[str, str], float, int]:
    """New numbers until the program's answer is clean: finite, whole where the parent's is, not negative
    where the parent's is not, and not the parent's own value."""
    value = math.nan
    for attempt in range(1, TRIES + 1):
        question, changed = _renumbered_question(str(item["question"]), rng)
        value = solve({k: _as_number(v) for k, v in changed.items()}, f"the new numbers {changed}")
        if _clean_like(value, parent_value) and accept(value):
            return question, changed, value, attempt
    raise VariantRefused(f"{where}: no clean answer in {TRIES} draws of new numbers (the last gave {value!r}, "
                         f"the parent's key is {parent_value!r})")


def _solve(sandbox: Sandbox, program: str, numbers: dict[str, Any], limits: Limits, where: str,
           on: str) -> float:
    res = sandbox(program, inputs=numbers, limits=limits)
    if not res.ok:
        raise VariantRefused(f"{where}: the solver program failed on {on}: {res.error}")
    value = res.value
    if isinstance(value, str):
        value = parse_number(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VariantRefused(f"{where}: the solver program returned {res.value!r} on {on}, not a finite number")
    return float(value)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _clean_like(value: float, parent: float) -> bool:
    whole_ok = not float(parent).is_integer() or _same(value, round(value))
    return whole_ok and (parent < 0 or value >= 0) and not _same(value, parent)


def _number_text(value: float) -> str:
    """Whole values without ".0"; others to at most 6 decimals (the key's tolerance rules still apply)."""
    if _same(value, round(value)):
        return str(int(round(value)))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- perturbations

def edit_words(text: str, rng: np.random.Generator, share: float = 0.1, *, language: str | None = None) -> str:
    """``share`` of the words (Chinese: of the characters) replaced by a filler word or dropped, half each.

    Whitespace between the units is kept; in Chinese text a run of non-CJK characters (a number, a
    Latin word) is one unit. Reproducible: the same text, share and generator state give the same
    result. At least one unit is edited when the text has any and ``share`` > 0.
    """
    lang = language or guess_language(text)
    tokens = (_ZH_TOKENS if lang == "zh" else _EN_TOKENS).findall(text)
    units = [i for i, t in enumerate(tokens) if not t.isspace()]
    if not units or share <= 0:
        return text
    n = min(len(units), max(1, round(share * len(units))))
    filler = FILLER_ZH if lang == "zh" else FILLER_EN
    for i in sorted(int(units[j]) for j in rng.choice(len(units), size=n, replace=False)):
        tokens[i] = filler[int(rng.integers(len(filler)))] if rng.random() < 0.5 else ""
    return "".join(tokens)


def perturb(item: Mapping[str, Any], rng: np.random.Generator, *, shuffle: bool = True,
            renumber_numbers: bool = True, word_share: float = 0.1) -> dict:
    """A near-copy of ``item`` for near-duplicate tests: options shuffled (the key follows), the question's
    numbers changed *without* recomputing the key, ``word_share`` of its words replaced or dropped.

    The key of a renumbered copy is the parent's, so it may be wrong: the copy is marked
    ``origin="perturbed"`` and ``perturbed=True`` (the importer refuses that origin) and must never be
    used as an item. Reproducible under a seed.
    """
    seed, child = _child(rng)
    out = dict(item)
    kind = itemtypes.get(str(item["item_type"]))
    if shuffle and kind.has_choices and len(_choices(item)) > 1:
        out = shuffle_options(out, child)
    question = str(out["question"])
    changed: dict[str, str] = {}
    if renumber_numbers:
        question, changed = _renumbered_question(question, child)
    lang = str(item.get("language") or guess_language(question))
    question = edit_words(question, child, word_share, language=lang)
    out.update(question=question, origin="perturbed", perturbed=True, parent_item_id=item.get("item_id"),
               generator=f"variant:perturb@{VERSION}",
               generator_params=json.dumps({"method": "perturb", "seed": seed, "numbers": changed,
                                            "word_share": word_share, "shuffle": shuffle}, sort_keys=True))
    out["item_id"] = item_id_from_hash(content_hash(question, out.get("choices"), out.get("answer")))
    return out
