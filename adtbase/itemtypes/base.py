"""The item-type contract: everything the rooms need to know about one kind of item.

An item type owns the rules that used to be spread over the importer, the prompt templates, answer
extraction, scoring and the runners (each of those now asks the type):

- import: ``validate(row)`` (problems with a canonical row, as messages) and ``canonical_key(raw, ...)``
  (the key as stored in the bank; it enters the item's content hash, so it never changes for a type);
- prompts: ``prompt_headers`` (the instruction per language), ``max_new_tokens``, ``has_choices``
  (choices listed under the question), ``prompt_choices(item)`` and ``shown_answer(item)`` (few-shot);
- scoring: ``scoring_kind`` (the ``ScoringRule.kind`` its keys are scored under), ``rule_answer(item)``
  (the key as the rule holds it), ``extract(output_text)`` and ``score(answer, key)`` (``grade`` does
  both), and ``scoring_modes``: the runner modes that apply (``"loglik"`` only where choices can be
  compared by log-likelihood);
- ``simulated_answer``: what the simulated respondent "says" when right or wrong.

Judge-scored keys (``adtbase.rubric``: a reference answer, a rubric, a baseline answer) are scored under
``JUDGE_KIND``: ``rule_kind(key)`` says which kind one key is scored under (``scoring_kind`` unless the type
also takes judge keys, ``also_scored_as``), ``judge_key(fields)`` builds one from the import's ``reference`` /
``rubric`` / ``baseline`` columns, and ``runners.scoring`` hands such rules to the judge step
(``pending_judgement``) instead of ``grade``.

Standard library only: ``itembank`` and ``runners`` both read types, so a type imports neither.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from adtbase.errors import InputError
from adtbase.rubric import FieldProblem

# The scoring kind of a judge-scored key: no text rule grades it; ``adt judge run`` does (a judge model's
# verdict). Until then an answer is stored with score 0 and ``scored_by = 'judge:pending'``.
JUDGE_KIND = "judge"


def item_where(item: Mapping[str, Any]) -> str:
    return f"item {item.get('item_id', '?')}"


class ItemType(abc.ABC):
    """One item type. Subclasses set the class attributes and implement ``canonical_key``,
    ``extract`` and ``score``; the other methods have defaults that fit a keyed, choice-less item."""

    name: ClassVar[str]                               # the bank's item_type value, e.g. "mc"
    title: ClassVar[str] = ""                         # for messages and docs, e.g. "multiple choice"
    scoring_kind: ClassVar[str]                       # ScoringRule.kind its keys are scored under
    scoring_modes: ClassVar[tuple[str, ...]] = ("generate",)
    has_choices: ClassVar[bool] = False
    prompt_headers: ClassVar[Mapping[str, str]] = {}  # language ("en", "zh") -> instruction
    max_new_tokens: ClassVar[int] = 64
    # A right answer can come by chance (``--guessing auto`` holds a 3PL's c at 0 only when no item of the
    # calibration is guessable). Open text is kept guessable, as before; numeric exact match is not.
    guessable: ClassVar[bool] = True
    # Other scoring kinds some of its keys are scored under (``rule_kind``): ``open`` takes judge keys too.
    also_scored_as: ClassVar[tuple[str, ...]] = ()
    # The judge columns the import reads for the type (``judge_key``) and the one it cannot do without.
    judge_fields: ClassVar[tuple[str, ...]] = ()
    judge_required: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------ import

    def validate(self, row: Mapping[str, Any]) -> list[str]:
        """Problems with one canonical row (``question``, ``choices`` list, ...); none by default."""
        return []

    @abc.abstractmethod
    def canonical_key(self, raw: Any, *, choices: Sequence[str] = (), answer_format: str = "auto") -> str:
        """The key as stored in the bank; ``ValueError`` (message without the row) when ``raw`` is not one.

        ``raw`` is never blank here and a GSM8K worked solution has already been cut to its "#### n".
        """

    def judge_key(self, fields: Mapping[str, Any]) -> str:
        """The stored key of a judge-scored item from the import's ``reference`` / ``rubric`` / ``baseline``
        values (blank ones left out); ``FieldProblem`` (a ``ValueError``) names the field at fault."""
        field = next(iter(fields), "reference")
        raise FieldProblem(field, f"{self.title or self.name} items are not judge-scored (they take no "
                                  f"{field!r}; open and pairwise items do)")

    def with_tolerance(self, key: str, tolerance: Any) -> str:
        """The key with a per-item tolerance (the import's ``tolerance`` column); ``ValueError`` where the
        type takes none (only ``numeric`` does today)."""
        raise ValueError(f"{self.title or self.name} items take no tolerance (only numeric items do)")

    def with_partial_credit(self, key: str) -> str:
        """The key scored with partial credit (the import's ``partial_credit`` column); ``ValueError`` where
        the type has none (only ``multi`` does today)."""
        raise ValueError(f"{self.title or self.name} items have no partial credit (only multi-select items do)")

    # ------------------------------------------------------------ prompts

    def prompt_choices(self, item: Mapping[str, Any], where: str) -> list[str]:
        """The choices listed under the question (none unless ``has_choices``)."""
        return []

    def shown_answer(self, item: Mapping[str, Any], where: str) -> str:
        """A few-shot example's answer as the prompt shows it."""
        ans = item.get("answer")
        if ans is None or str(ans).strip() == "":
            raise InputError(f"{where}: few-shot example has no 'answer'")
        return str(ans).strip()

    # ------------------------------------------------------------ scoring

    def rule_kind(self, key: str) -> str:
        """The ``ScoringRule.kind`` one stored key is scored under (``scoring_kind`` by default)."""
        return self.scoring_kind

    def answer_tokens(self, key: str) -> int:
        """Tokens the candidate may generate for an item with this key (``max_new_tokens`` by default)."""
        return self.max_new_tokens

    def key_labels(self, key: str) -> tuple[str, ...]:
        """The choice labels a key names (``has_choices`` types; ``Request`` checks them against its labels)."""
        return (key,)

    def rule_answer(self, item: Mapping[str, Any], where: str) -> str:
        """The key of a bank item as its ``ScoringRule`` holds it."""
        ans = item.get("answer")
        if ans is None or str(ans).strip() == "":
            raise InputError(f"{where}: field 'answer' is missing")
        return str(ans)

    @abc.abstractmethod
    def extract(self, output_text: str, *, choices: Sequence[str] = (), labels: Sequence[str] = ()) -> str | None:
        """The answer a raw model output gives, or None."""

    @abc.abstractmethod
    def score(self, answer: str | None, key: str, *, tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> float:
        """The score in [0, 1] of an extracted answer against the key; ``ValueError`` for a bad key."""

    def grade(self, output_text: str, key: str, *, choices: Sequence[str] = (), labels: Sequence[str] = (),
              tolerance: float = 1e-6, rel_tolerance: float = 0.0) -> tuple[str | None, float]:
        """(extracted answer, score) for one raw output: ``extract`` then ``score``."""
        got = self.extract(output_text, choices=choices, labels=labels)
        return got, self.score(got, key, tolerance=tolerance, rel_tolerance=rel_tolerance)

    def simulated_answer(self, correct: bool, key: str, labels: Sequence[str], rng: Any) -> str:
        """What a simulated respondent answers (``rng``: its ``numpy.random.Generator``): the key when
        right, "wrong" otherwise."""
        return key if correct else "wrong"


# A judge-scored answer takes up to this many tokens (a written answer, not a short one).
JUDGED_ANSWER_TOKENS = 512


def pending_judgement(output_text: str) -> tuple[str | None, float]:
    """What a rule of ``JUDGE_KIND`` gives before any judge: the whole answer as written (the judge reads it)
    and a placeholder score 0, which ``scored_by = 'judge:pending'`` keeps from ever being read as a score."""
    text = (output_text or "").strip()
    return (text or None), 0.0
