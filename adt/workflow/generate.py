"""``adt generate``: draft items written by a model (issue 13, generation), with full provenance.

Three methods build *jobs* (a prompt and what the item will carry), pure functions of their inputs:

- ``topic``: new items for a tag slice (``--filter``, the one grammar), few-shot exemplars drawn with the
  seeded generator from the approved items of that slice (zero-shot where it has none);
- ``document``: items grounded in a text / Markdown file (PDF: see ``read_document``), cut into chunks;
  each item keeps the file, its sha256 and the character span it was written from;
- ``variant``: new items from existing ones. The model paraphrases, rewrites distractors or translates
  (zh <-> en); the parent link is kept (``parent_id``; variants are their parents' enemies in the sampler).
  The deterministic parts are ``itembank.variants``': option shuffling (``shuffle_rows``, no model call) and
  renumbering, where the model writes the solver program (template ``solver``) and ``itembank.renumber``
  runs it in ``adtbase.sandbox`` to compute the new key (a program it refuses makes a rejected item, with
  its reason).

Then one loop (``generate``): batches of jobs go through the backend's ``Runner.complete``, paced by
``--rate`` where the backend has no rate limit of its own, and stop at the budget (``--max-calls``,
``--max-tokens``; checked before each batch, a batch trimmed to the calls left). Each completion is parsed
against the schema (``parse_output``); a good one becomes a draft row, a malformed one a row kept with its
raw text and then rejected with the parse error as the reason (reviewer ``adt generate``), never dropped.
Rows go into the bank through the bank's own import (``Bank.import_items``: validation, content hash,
aliases, history) batch by batch, holding the bank only for that step: a backend that fails half way
loses nothing already written, and the report says how far it got. Generated items always arrive as
drafts (``adtbase.review``); one that comes out identical to an item the bank has is that item (the
content hash), counted as a duplicate and left as it was.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adt.workflow import generate_templates as gt
from adtbase import itemtypes, review
from adtbase.errors import AdtError, InputError, RunnerError, VariantRefused
from itembank import COLUMN_KEYS, ImportOptions, open_bank
from runners import Completion, Runner

METHODS = ("topic", "document", "variant")
MODEL_VARIANTS = ("paraphrase", "distractors", "translate")   # the item written by the model
VARIANT_KINDS = (*MODEL_VARIANTS, "renumber", "shuffle")       # renumber: the model writes the solver only
REVIEWER = "adt generate"            # who rejects malformed output
DEFAULT_SOURCE = "generated"
DEFAULT_BATCH = 8
DOCUMENT_SUFFIXES = (".txt", ".md", ".markdown", ".pdf")


# -- jobs --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """One prompt to the generator and what the item written from it carries."""

    prompt: str
    template: str                 # gen-<name>-<lang>@<version>
    prompt_hash: str
    language: str
    item_type: str
    tags: Mapping[str, str] = field(default_factory=dict)
    parent_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)   # method-specific provenance (span, kind, ...)
    parent: Mapping[str, Any] | None = field(default=None, compare=False)   # renumber: the item to redo


def item_json(item: Mapping[str, Any]) -> str:
    """An item as the schema's JSON (exemplars, parents): what the model is asked to write back."""
    choices = item.get("choices")
    out = {"question": str(item["question"]), "choices": [str(c) for c in choices] if choices is not None else [],
           "answer": "" if item.get("answer") is None else str(item["answer"])}
    return json.dumps(out, ensure_ascii=False)


def slice_tags(spec: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The tags a topic item carries: every tag key of the spec given one value (a key with several values
    only selects exemplars; the bank's own columns, such as language, are not tags)."""
    return {k: str(v[0]) for k, v in spec.items() if len(v) == 1 and k not in COLUMN_KEYS}


def topic_jobs(spec: Mapping[str, Sequence[str]], exemplars: Sequence[Mapping[str, Any]], *, n: int, language: str,
               item_type: str, shots: int, rng: np.random.Generator) -> list[Job]:
    """``n`` prompts for the slice ``spec``, each with up to ``shots`` exemplars drawn without replacement."""
    template = gt.template_for("topic", language)
    spec_text = ", ".join(f"{k}={'|'.join(v)}" for k, v in spec.items()) or "(any)"
    label = "Example" if language == "en" else "示例"
    jobs = []
    for k in range(n):
        take = min(shots, len(exemplars))
        picked = sorted(rng.choice(len(exemplars), size=take, replace=False).tolist()) if take else []
        shown = "".join(f"{label} {j + 1}:\n{item_json(exemplars[i])}\n\n" for j, i in enumerate(picked))
        prompt, digest = gt.render(template, {"item_type": item_type, "spec": spec_text, "exemplars": shown,
                                              "number": str(k + 1)})
        jobs.append(Job(prompt, template.ref, digest, language, item_type, slice_tags(spec),
                        extra={"exemplars": [str(exemplars[i]["item_id"]) for i in picked]}))
    return jobs


def chunk_spans(text: str, chunk_chars: int) -> list[tuple[int, int]]:
    """Character spans of ``text`` of about ``chunk_chars``, cut at paragraph breaks where there are any
    (else at the size); empty stretches are left out."""
    if chunk_chars < 50:
        raise InputError(f"--chunk-chars must be at least 50, got {chunk_chars}")
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + chunk_chars)
        if end < len(text):
            cut = text.rfind("\n\n", start + chunk_chars // 2, end)
            if cut > start:
                end = cut
        if text[start:end].strip():
            spans.append((start, end))
        start = end
    return spans


def document_jobs(text: str, *, path: str, sha256: str, n: int, language: str, item_type: str,
                  chunk_chars: int, tags: Mapping[str, str]) -> list[Job]:
    """``n`` prompts over the document's chunks in order (round robin when ``n`` exceeds them)."""
    spans = chunk_spans(text, chunk_chars)
    if not spans:
        raise InputError(f"{path}: the document holds no text")
    template = gt.template_for("document", language)
    jobs = []
    for k in range(n):
        start, end = spans[k % len(spans)]
        prompt, digest = gt.render(template, {"item_type": item_type, "passage": text[start:end],
                                              "number": str(k // len(spans) + 1)})
        jobs.append(Job(prompt, template.ref, digest, language, item_type, dict(tags),
                        extra={"source_file": path, "source_sha256": sha256, "span": [start, end],
                               "chunk": k % len(spans)}))
    return jobs


def variant_jobs(parents: Sequence[Mapping[str, Any]], *, kind: str, n: int, language: str | None) -> list[Job]:
    """``n`` prompts asking the model for a ``kind`` variant of the parents in turn. Translation goes to the
    other language of zh/en (or ``language``); the other kinds keep the parent's language."""
    from itembank import question_numbers

    if kind not in (*MODEL_VARIANTS, "renumber"):
        raise InputError(f"variant kind {kind!r} is not written by the model ({', '.join(MODEL_VARIANTS)}, renumber)")
    if not parents:
        raise InputError("variant: no parent items (give --item ITEM or a --filter that selects some)")
    jobs = []
    for k in range(n):
        parent = parents[k % len(parents)]
        lang = str(parent["language"])
        if kind == "renumber":
            numbers = question_numbers(parent)
            if not numbers:
                raise InputError(f"renumber: item {parent['item_id']} has no numbers in its question")
            template = gt.template_for("solver", lang if lang in gt.LANGUAGES else "en")
            prompt, digest = gt.render(template, {
                "parent": item_json(parent), "args": ", ".join(numbers),
                "numbers": ", ".join(f"{name}={value}" for name, value in numbers.items())})
            jobs.append(Job(prompt, template.ref, digest, lang, str(parent["item_type"]), dict(parent.get("tags") or {}),
                            parent_ids=(str(parent["item_id"]),), extra={"variant": kind}, parent=parent))
            continue
        if kind == "translate":
            target = language or ("en" if lang == "zh" else "zh")
            if target == lang:
                raise InputError(f"translate: item {parent['item_id']} is already in {lang}")
            lang = target
        if kind == "distractors" and parent.get("item_type") != "mc":
            raise InputError(f"distractors: item {parent['item_id']} is not multiple choice")
        template = gt.template_for(kind, lang)
        prompt, digest = gt.render(template, {"parent": item_json(parent)})
        tags = {k2: v for k2, v in (parent.get("tags") or {}).items()}
        jobs.append(Job(prompt, template.ref, digest, lang, str(parent["item_type"]), tags,
                        parent_ids=(str(parent["item_id"]),), extra={"variant": kind}))
    return jobs


# -- parsing -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Parsed:
    question: str
    choices: tuple[str, ...]
    answer: str | int | float     # as the model gave it; the importer makes it the stored key
    rationale: str
    tags: Mapping[str, str]


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (inside a ``` fence where there is one)."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", body):
        try:
            obj, _ = decoder.raw_decode(body, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    raise ValueError("no JSON object in the output" if text.strip() else "the output is empty")


def parse_output(text: str, item_type: str) -> Parsed:
    """The item in a model's output, checked against the schema and the item type's own rules (the ones the
    importer applies); ``ValueError`` saying every problem found otherwise."""
    obj = _json_object(text)
    problems = []
    question = obj.get("question")
    if not isinstance(question, str) or not question.strip():
        problems.append("'question' is missing or not text")
    raw_choices = obj.get("choices", [])
    if raw_choices is None:
        raw_choices = []
    if not isinstance(raw_choices, list) or not all(isinstance(c, str | int | float) for c in raw_choices):
        problems.append("'choices' is not a list of texts")
        raw_choices = []
    choices = tuple(str(c).strip() for c in raw_choices)
    answer = obj.get("answer")   # kept as given: a number is an option index or a numeric key, as on import
    if isinstance(answer, str):
        answer = answer.strip()
    if not (isinstance(answer, str) and answer) and not (isinstance(answer, int | float)
                                                         and not isinstance(answer, bool)):
        problems.append("'answer' is missing or not text")
    rationale = obj.get("rationale", "")
    if not isinstance(rationale, str):
        problems.append("'rationale' is not text")
    tags = obj.get("tags", {}) or {}
    if not isinstance(tags, dict):
        problems.append("'tags' is not a mapping")
        tags = {}
    if not problems:
        kind = itemtypes.get(item_type)
        row = {"question": question, "choices": list(choices)}
        problems += kind.validate(row)
        if not problems:
            try:
                kind.canonical_key(answer, choices=choices)
            except ValueError as exc:
                problems.append(f"answer {answer!r}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    assert isinstance(question, str) and isinstance(rationale, str) and isinstance(answer, str | int | float)
    return Parsed(question.strip(), choices, answer, rationale.strip(),
                  {str(k): str(v) for k, v in tags.items()})


# -- rows ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Provenance:
    """What every item of one ``adt generate`` call records (``generator_params``)."""

    method: str
    generator: str          # backend:model
    batch: str              # gen_<hex>: this call
    seed: int
    temperature: float
    max_new_tokens: int
    backend_args: Mapping[str, Any]


def build_row(job: Job, completion: Completion, number: int, prov: Provenance, origin: str) -> tuple[dict[str, Any], str | None]:
    """(import row, rejection reason or None) for one completion: a draft item, or the raw output kept as a
    choice-less item to be rejected with the reason."""
    params: dict[str, Any] = {"method": prov.method, "template": job.template, "prompt_hash": job.prompt_hash,
                              "seed": prov.seed, "call_seed": prov.seed + number, "temperature": prov.temperature,
                              "max_new_tokens": prov.max_new_tokens, "batch": prov.batch, "number": number,
                              "parent_ids": list(job.parent_ids), "backend_args": dict(prov.backend_args),
                              "tokens_in": completion.tokens_in, "tokens_out": completion.tokens_out, **job.extra}
    base = {"id": f"{prov.batch}-{number:05d}", "type": job.item_type, "language": job.language,
            "tags": dict(job.tags), "origin": origin, "generator": prov.generator,
            "parent_id": job.parent_ids[0] if job.parent_ids else None, "review_state": review.DRAFT}
    reason: str | None = None
    if completion.error is not None:
        reason = f"the generator returned an error: {completion.error}"
    elif job.parent is not None:   # renumber: the output is a solver program; the sandbox computes the key
        try:
            variant = renumber_with(job.parent, solver_program(completion.text), number, prov.seed)
        except (ValueError, VariantRefused) as exc:
            reason = f"solver program refused: {exc}"
        else:
            params.update(program=solver_program(completion.text),
                          variant_params=json.loads(str(variant["generator_params"])))
            return {**base, "question": variant["question"], "choices": list(variant.get("choices") or []),
                    "answer": variant["answer"], "generator_params": params}, None
    else:
        try:
            item = parse_output(completion.text, job.item_type)
        except ValueError as exc:
            reason = f"malformed generator output: {exc}"
        else:
            params.update(rationale=item.rationale, model_tags=dict(item.tags))
            return {**base, "question": item.question, "choices": list(item.choices), "answer": item.answer,
                    "generator_params": params}, None
    params.update(raw_output=completion.text, rejected_because=reason)
    question = completion.text.strip() or f"(no usable output: {reason})"
    return {**base, "type": "open", "question": question, "choices": [], "answer": None,
            "generator_params": params}, reason


_PYTHON = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def solver_program(text: str) -> str:
    """The program in a model's output (its ```python block, else the whole text); ValueError without solve()."""
    m = _PYTHON.search(text)
    program = (m.group(1) if m else text).strip()
    if "def solve(" not in program:
        raise ValueError("no `def solve(...)` in the output" if text.strip() else "the output is empty")
    return program + "\n"


def renumber_with(parent: Mapping[str, Any], program: str, number: int, seed: int) -> dict[str, Any]:
    """``itembank.renumber`` of ``parent`` with ``program``, its numbers drawn from the stream (seed, number)."""
    from itembank import renumber

    return renumber(parent, program, np.random.default_rng([seed, number]))


def shuffle_rows(parents: Sequence[Mapping[str, Any]], *, n: int, seed: int,
                 batch: str) -> list[tuple[dict[str, Any], str | None]]:
    """``n`` option-shuffled variants of the parents in turn (``itembank.shuffle_options``; no model): import
    rows with the transform's own provenance. ``VariantRefused`` for a parent without choices."""
    from itembank import shuffle_options

    if not parents:
        raise InputError("variant: no parent items (give --item ITEM or a --filter that selects some)")
    rows: list[tuple[dict[str, Any], str | None]] = []
    for k in range(n):
        parent = parents[k % len(parents)]
        v = shuffle_options(parent, np.random.default_rng([seed, k]))
        params = {"method": "variant", "variant": "shuffle", "seed": seed, "batch": batch, "number": k,
                  "parent_ids": [str(parent["item_id"])], "variant_params": json.loads(str(v["generator_params"]))}
        rows.append(({"id": f"{batch}-{k:05d}", "question": v["question"], "choices": list(v["choices"]),
                      "answer": v["answer"], "type": str(parent["item_type"]), "language": str(parent["language"]),
                      "tags": dict(parent.get("tags") or {}), "origin": "variant",
                      "generator": str(v["generator"]), "generator_params": params,
                      "parent_id": str(parent["item_id"]), "review_state": review.DRAFT}, None))
    return rows


# -- budget and pace -----------------------------------------------------------------------------------

@dataclass
class Budget:
    """Calls and tokens used, against the limits (None = no limit)."""

    max_calls: int | None = None
    max_tokens: int | None = None
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def calls_left(self, wanted: int) -> int:
        """How many of ``wanted`` calls may still be made (0 once a limit is reached)."""
        if self.max_tokens is not None and self.tokens_in + self.tokens_out >= self.max_tokens:
            return 0
        if self.max_calls is None:
            return wanted
        return max(0, min(wanted, self.max_calls - self.calls))

    def spend(self, done: Sequence[Completion]) -> None:
        self.calls += len(done)
        self.tokens_in += sum(c.tokens_in for c in done)
        self.tokens_out += sum(c.tokens_out for c in done)

    def stop_reason(self) -> str | None:
        if self.max_tokens is not None and self.tokens_in + self.tokens_out >= self.max_tokens:
            return f"token budget reached ({self.tokens_in + self.tokens_out} of {self.max_tokens})"
        if self.max_calls is not None and self.calls >= self.max_calls:
            return f"call budget reached ({self.calls} of {self.max_calls})"
        return None


class Pacer:
    """At most ``rate`` calls per minute (None: no pacing): waits before a batch until its calls are due."""

    def __init__(self, rate_per_min: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate_per_min is not None and rate_per_min <= 0:
            raise InputError(f"--rate must be > 0 calls per minute, got {rate_per_min}")
        self.interval = None if rate_per_min is None else 60.0 / rate_per_min
        self.clock, self.sleep = clock, sleep
        self.next_at: float | None = None

    def wait(self, n_calls: int) -> None:
        if self.interval is None:
            return
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + n_calls * self.interval


# -- the loop ------------------------------------------------------------------------------------------

@dataclass
class GenerateReport:
    method: str
    generator: str
    batch: str
    source: str
    jobs: int
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    drafts: int = 0
    rejected: int = 0
    duplicates: int = 0
    stopped: str | None = None          # why generation ended before every job ran
    failed: str | None = None           # the backend's failure, when it ended the call
    draft_ids: list[str] = field(default_factory=list)
    rejected_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GenerateOptions:
    method: str
    generator: str                      # backend:model
    seed: int = 0
    temperature: float = 0.7
    max_new_tokens: int = 512
    batch_size: int = DEFAULT_BATCH
    max_calls: int | None = None
    max_tokens: int | None = None
    rate_per_min: float | None = None
    source: str = DEFAULT_SOURCE
    origin: str = "model-generated"
    backend_args: Mapping[str, Any] = field(default_factory=dict)
    wait_s: float = 30.0


def new_batch_id() -> str:
    return "gen_" + uuid.uuid4().hex[:12]


def generate(bank_path: str | Path, jobs: Sequence[Job], runner: Runner, opts: GenerateOptions, *,
             batch_id: str | None = None, pacer: Pacer | None = None) -> GenerateReport:
    """Run ``jobs`` through ``runner.complete`` batch by batch and write each batch's items to the bank."""
    start = time.perf_counter()
    if opts.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {opts.batch_size}")
    batch = batch_id or new_batch_id()
    prov = Provenance(opts.method, opts.generator, batch, opts.seed, opts.temperature, opts.max_new_tokens,
                      opts.backend_args)
    report = GenerateReport(opts.method, opts.generator, batch, opts.source, len(jobs))
    budget = Budget(opts.max_calls, opts.max_tokens)
    pacer = pacer or Pacer(opts.rate_per_min)
    done = 0
    while done < len(jobs):
        n = budget.calls_left(min(opts.batch_size, len(jobs) - done))
        if n == 0:
            report.stopped = budget.stop_reason()
            break
        todo = jobs[done:done + n]
        pacer.wait(n)
        try:
            completions = runner.complete([j.prompt for j in todo], max_new_tokens=opts.max_new_tokens,
                                          temperature=opts.temperature, seed=opts.seed + done)
        except RunnerError as exc:
            report.failed = str(exc)
            break
        if len(completions) != len(todo):
            report.failed = f"backend returned {len(completions)} completions for {len(todo)} prompts"
            break
        budget.spend(completions)
        rows = [build_row(j, c, done + i, prov, opts.origin) for i, (j, c) in enumerate(zip(todo, completions, strict=True))]
        try:
            write_rows(bank_path, rows, opts, report)
        except AdtError as exc:   # e.g. the bank held too long: the paid-for outputs go to a file, not lost
            kept = save_rows(bank_path, batch, done, rows)
            report.failed = f"{exc}; this batch's {len(rows)} outputs were not written to the bank, kept in {kept}"
            break
        done += n
    if done < len(jobs) and report.stopped is None and report.failed is None:
        report.stopped = budget.stop_reason()
    report.calls, report.tokens_in, report.tokens_out = budget.calls, budget.tokens_in, budget.tokens_out
    report.seconds = time.perf_counter() - start
    return report


def write_rows(bank_path: str | Path, rows: Sequence[tuple[dict[str, Any], str | None]], opts: GenerateOptions,
               report: GenerateReport) -> None:
    """Import one batch's rows (drafts, and the malformed ones then rejected with their reason), holding the
    bank for this step only. A row the importer still refuses is kept as a rejected row with its message.
    Only items this import created change state: one the bank had already (same content) is a duplicate,
    left as it was."""
    good = [r for r, why in rows if why is None]
    bad = [(r, why) for r, why in rows if why is not None]
    with open_bank(bank_path, wait_s=opts.wait_s, purpose="adt generate") as bank, \
            tempfile.TemporaryDirectory(prefix="adt-generate-") as tmp:
        keyed = ImportOptions(source=opts.source, review_state=review.DRAFT, origin=opts.origin)
        if good:
            try:
                ids, new = _import(bank, Path(tmp) / "drafts.jsonl", good, keyed)
            except InputError:   # one bad row would fail them all: import them one by one
                ids, new = [], set()
                for row in good:
                    try:
                        one, made = _import(bank, Path(tmp) / "draft.jsonl", [row], keyed)
                    except InputError as exc:
                        bad.append((_as_rejected(row, str(exc)), f"refused by the bank's import: {exc}"))
                        continue
                    ids += one
                    new |= made
            report.draft_ids += [i for i in dict.fromkeys(ids) if i in new]
            report.drafts = len(report.draft_ids)
            report.duplicates += sum(i not in new for i in ids)
        if bad:
            unkeyed = ImportOptions(source=opts.source, review_state=review.DRAFT, origin=opts.origin, no_key=True)
            ids, new = _import(bank, Path(tmp) / "rejected.jsonl", [r for r, _ in bad], unkeyed)
            for (_, why), item_id in zip(bad, ids, strict=True):
                if item_id not in new or item_id in report.rejected_ids:
                    report.duplicates += 1
                    continue
                bank.set_review_state([item_id], review.REJECTED, reason=why, reviewer=REVIEWER)
                report.rejected_ids.append(item_id)
            report.rejected = len(report.rejected_ids)


def save_rows(bank_path: str | Path, batch: str, first: int, rows: Sequence[tuple[dict[str, Any], str | None]]) -> Path:
    """Rows the bank could not take, beside the bank (``<bank>.<batch>-<first>.jsonl``), each with its rejection
    reason (``null`` for a draft), so a batch of paid-for outputs is never lost."""
    path = Path(bank_path)
    out = path.with_name(f"{path.name}.{batch}-{first:05d}.jsonl")
    with out.open("w", encoding="utf-8") as f:
        for row, why in rows:
            f.write(json.dumps({**row, "rejected_because": why}, ensure_ascii=False) + "\n")
    return out


def _as_rejected(row: dict[str, Any], message: str) -> dict[str, Any]:
    params = {**row["generator_params"], "rejected_because": message,
              "raw_item": {k: row.get(k) for k in ("question", "choices", "answer")}}
    return {**row, "type": "open", "choices": [], "answer": None, "generator_params": params}


def _import(bank: Any, path: Path, rows: Sequence[Mapping[str, Any]], opts: ImportOptions) -> tuple[list[str], set[str]]:
    """Import rows through the bank's importer: (the item id of each row in order, the ids it created)."""
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    result = bank.import_items([path], opts)
    found = bank.items_for_aliases([r["id"] for r in rows], opts.source)
    new = set(bank.batch_items(result.batch_id)) if result.batch_id else set()
    return [found[r["id"]] for r in rows], new


# -- documents --------------------------------------------------------------------------------------------

def read_document(path: str | Path) -> tuple[str, str]:
    """(text, sha256 of the file) of a .txt / .md file (UTF-8), or a .pdf's text (pypdf);
    InputError naming the file and what is wrong otherwise (nothing is generated or written then)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    if p.suffix.lower() not in DOCUMENT_SUFFIXES:
        raise InputError(f"{p}: documents are {', '.join(DOCUMENT_SUFFIXES)} files, not {p.suffix or 'no suffix'!r}")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot be read: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if p.suffix.lower() == ".pdf":
        return _pdf_text(p), digest
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start}): {exc.reason}") from None
    if not text.strip():
        raise InputError(f"{p}: the document is empty")
    return text, digest


def _pdf_text(p: Path) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise InputError(f"{p}: PDF text needs the pypdf package, which is not installed here; "
                         "give the text as .txt or .md") from None
    try:
        text = "\n\n".join(page.extract_text() or "" for page in PdfReader(str(p)).pages)
    except (PdfReadError, OSError, ValueError) as exc:
        raise InputError(f"{p}: not a readable PDF: {exc}") from None
    if not text.strip():
        raise InputError(f"{p}: the PDF holds no extractable text (a scan?)")
    return text

