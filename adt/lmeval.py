"""Interop with lm-evaluation-harness (``lm_eval`` 0.4.x): its per-sample logs in, tasks and sample lists out.

Import: a ``--log_samples`` JSONL (one line per document and filter: ``doc_id, doc, target,
arguments, resps, filtered_resps, filter, metrics, doc_hash, prompt_hash, target_hash`` and one
field per metric) becomes items and one run of responses. Items get the alias
``lmeval/<task>:<doc_id>`` (the task's document index, which ``--samples`` uses), plus
``lmeval/<task>/doc_hash:<doc_hash>`` and ``lmeval/<task>/prompt_hash:<prompt_hash>``; responses keep
the raw generation or the choice log-likelihoods, the extracted answer and the prompt hash, and the
run's config keeps the file's sha256, the filter, the metric and every target hash.

Export: a form becomes a local lm-eval task (YAML + JSONL with the answer keys, since lm-eval scores
locally), one sub-task per item type under a group when the form mixes types; or the ``--samples``
index list of a task lm-eval already has, found through the aliases above.

Nothing here imports ``lm_eval``: the file formats are plain JSON and YAML.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from adtbase.errors import InputError
from itembank import LETTERS, Bank, ImportOptions, file_sha256, normalise, read_jsonl

QUESTION_FIELDS = ("question", "Question", "query", "ctx", "goal", "sentence", "premise", "problem", "input",
                   "prompt", "text")
CHOICE_FIELDS = ("choices", "options", "endings", "mc_options")
TAG_FIELDS = (("subject", "subject"), ("category", "category"), ("src", "source_detail"))
_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.S)
_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


def alias_source(task: str) -> str:
    """The alias source whose external ids are the task's document indices."""
    return f"lmeval/{task}"


@dataclass(frozen=True)
class LmevalImportOptions:
    task: str
    model: str
    metric: str | None = None         # default: the first metric the log names
    filter: str | None = None         # default: the first filter in the file
    round_no: int | None = None
    source_version: str | None = None
    license: str | None = None
    language: str | None = None
    question_field: str | None = None
    choices_field: str | None = None
    extend_taxonomy: bool = False


@dataclass(frozen=True)
class LmevalImportReport:
    file: str
    task: str
    model: str
    run_id: str
    filter: str
    metric: str
    filters_in_file: tuple[str, ...]
    docs: int
    item_types: dict[str, int]
    new_items: int
    existing_items: int
    new_aliases: int
    new_responses: int
    mean_score: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading logs ---------------------------------------------------------------------------------
def read_samples(path: Path) -> list[dict[str, Any]]:
    """The log's records, each with ``__line__``; malformed lines raise InputError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    records = []
    for lineno, rec in read_jsonl(path):
        for key in ("doc_id", "doc", "target", "arguments", "filtered_resps", "metrics"):
            if key not in rec:
                raise InputError(f"{path}: line {lineno}: field {key!r} missing; is this an lm-eval "
                                 f"--log_samples file (samples_<task>_<date>.jsonl)?")
        if not isinstance(rec["doc"], dict):
            raise InputError(f"{path}: line {lineno}: field 'doc' is not an object")
        rec["__line__"] = lineno
        records.append(rec)
    if not records:
        raise InputError(f"{path}: no samples")
    return records


def _requests(rec: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """(context, continuation-or-generation-kwargs) per request, from the saved or the in-memory shape."""
    args = rec["arguments"]
    if isinstance(args, dict):  # the saved shape: {"gen_args_0": {"arg_0": ..., "arg_1": ...}, ...}
        keys = sorted(args, key=lambda k: int(str(k).rsplit("_", 1)[-1]))
        return [(args[k].get("arg_0"), args[k].get("arg_1")) for k in keys]
    return [(a[0], a[1] if len(a) > 1 else None) for a in args]


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def _number_key(target: str) -> str | None:
    """gsm8k-style '... #### 1,234' or a bare number -> '1234'; None when it is not a number."""
    match = _GSM8K.search(target)
    text = (match.group(1) if match else target).strip().replace("$", "").rstrip(".")
    return text.replace(",", "") if _is_number(text) else None


def _doc_choices(doc: Mapping[str, Any], override: str | None) -> list[str] | None:
    fields = (override,) if override else CHOICE_FIELDS
    for name in fields:
        value = doc.get(name) if name else None
        if isinstance(value, dict) and isinstance(value.get("text"), list):   # arc: {"text": [...], "label": [...]}
            value = value["text"]
        if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value]
    if not override and all(isinstance(doc.get(k), str) for k in "ABCD"):   # cmmlu / ceval style
        return [str(doc[k]) for k in LETTERS if isinstance(doc.get(k), str)]
    return None


def _answer_index(target: str, choices: Sequence[str], prefer: str, where: str) -> int:
    """The key's position among ``choices`` from an lm-eval target (index, letter or choice text)."""
    t = target.strip()
    n = len(choices)
    tries = {"index": lambda: int(t) if t.isdigit() and int(t) < n else None,
             "letter": lambda: LETTERS.index(t.upper()) if len(t) == 1 and t.upper() in LETTERS[:n] else None,
             "text": lambda: next((i for i, c in enumerate(choices) if normalise(c) == normalise(t)), None)}
    order = ("index", "text", "letter") if prefer == "index" else ("letter", "text", "index")
    for how in order:
        found = tries[how]()
        if found is not None:
            return found
    raise InputError(f"{where}: field 'target': {t[:60]!r} is not an index, letter or text of the "
                     f"{n} choices")


def sample_item(rec: Mapping[str, Any], opts: LmevalImportOptions, where: str) -> dict[str, Any]:
    """One log record -> a canonical item row (id, question, choices, answer, type, tags)."""
    doc = rec["doc"]
    requests = _requests(rec)
    loglik = bool(requests) and all(isinstance(c, str) for _, c in requests)
    continuations = [str(c).strip() for _, c in requests] if loglik else []
    q_fields = (opts.question_field,) if opts.question_field else QUESTION_FIELDS
    question = next((doc[f] for f in q_fields if f and isinstance(doc.get(f), str) and doc[f].strip()), None)
    if question is None:
        if opts.question_field:
            raise InputError(f"{where}: doc has no text field {opts.question_field!r} (fields: {', '.join(doc)})")
        question = str(requests[0][0]) if requests else None   # the rendered prompt
    if not question:
        raise InputError(f"{where}: no question text in the doc (fields: {', '.join(doc)}); pass --question-field")
    target = str(rec["target"])
    choices = _doc_choices(doc, opts.choices_field)
    if loglik and len(requests) > 1:
        # Multiple choice scored by log-likelihood: the doc's option texts, else the continuations.
        if choices is None or len(choices) != len(requests):
            choices = continuations
        idx = _answer_index(target, choices, "index", where)
        item = {"question": question, "choices": choices, "answer": LETTERS[idx], "type": "mc"}
    elif choices is not None and len(choices) >= 2 and not loglik:
        # A generated answer to a multiple-choice doc (mmlu-pro style: the target is a letter).
        idx = _answer_index(target, choices, "letter", where)
        item = {"question": question, "choices": choices, "answer": LETTERS[idx], "type": "mc"}
    else:
        key = _number_key(target) if not loglik else None
        if key is not None:
            item = {"question": question, "choices": None, "answer": key, "type": "numeric"}
        else:
            answer = continuations[0] if loglik else target
            if not answer.strip():
                raise InputError(f"{where}: field 'target' is empty")
            item = {"question": question, "choices": None, "answer": answer, "type": "open"}
    tags: dict[str, str] = {"task": opts.task}
    for field_name, key in TAG_FIELDS:
        if isinstance(doc.get(field_name), str) and doc[field_name].strip():
            tags[key] = doc[field_name].strip()
    item["tags"] = tags
    if opts.language:
        item["language"] = opts.language
    return item


def _score(rec: Mapping[str, Any], metric: str, where: str) -> float:
    if metric not in rec:
        raise InputError(f"{where}: no metric field {metric!r} (metrics: {', '.join(rec.get('metrics', []))})")
    value = rec[metric]
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, (int, float)) or math.isnan(value) or not 0 <= value <= 1:
        raise InputError(f"{where}: field {metric!r}: {value!r} is not a score in [0, 1]; pick another --metric")
    return float(value)


def _response(rec: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """What the bank keeps of one answer: raw output, extracted answer, log-likelihoods, prompt hash."""
    filtered = rec.get("filtered_resps") or []
    out: dict[str, Any] = {"prompt_hash": rec.get("prompt_hash"), "raw_output": None, "extracted": None,
                           "choice_logliks": None}
    requests = _requests(rec)
    if requests and all(isinstance(c, str) for _, c in requests):
        try:
            lls = [float(r[0] if isinstance(r, (list, tuple)) else r) for r in filtered]
        except (TypeError, ValueError, IndexError):
            lls = []
        if lls and item["type"] == "mc":
            out["choice_logliks"] = lls
            out["extracted"] = LETTERS[int(np.argmax(lls))]
        elif lls:
            out["extracted"] = str(lls[0])
    else:
        resps = rec.get("resps") or []
        first = resps[0] if resps else None
        while isinstance(first, list) and first:
            first = first[0]
        out["raw_output"] = None if first is None else str(first)
        ext = filtered[0] if filtered else None
        while isinstance(ext, list) and ext:
            ext = ext[0]
        out["extracted"] = None if ext is None else str(ext)
    return out


def import_log(bank: Bank, path: Path, opts: LmevalImportOptions) -> LmevalImportReport:
    """Import an lm-eval ``--log_samples`` file as items (with aliases) and one run of responses."""
    path = Path(path)
    records = read_samples(path)
    filters = tuple(dict.fromkeys(str(r.get("filter", "none")) for r in records))
    chosen = opts.filter or filters[0]
    if chosen not in filters:
        raise InputError(f"{path}: no samples with filter {chosen!r} (filters: {', '.join(filters)})")
    records = [r for r in records if str(r.get("filter", "none")) == chosen]
    metric = opts.metric or (records[0]["metrics"][0] if records[0]["metrics"] else None)
    if not metric:
        raise InputError(f"{path}: line {records[0]['__line__']}: field 'metrics' is empty; pass --metric")
    seen: dict[str, int] = {}
    rows, answers, items_out = [], [], []
    for rec in records:
        where = f"{path}: line {rec['__line__']}"
        doc_id = str(rec["doc_id"])
        if doc_id in seen:
            raise InputError(f"{where}: doc_id {doc_id} appears again (first at line {seen[doc_id]}) with filter "
                             f"{chosen!r}; logs with repeats are not supported")
        seen[doc_id] = rec["__line__"]
        item = sample_item(rec, opts, where)
        score = _score(rec, metric, where)
        rows.append({"id": doc_id, **item})
        items_out.append(item)
        answers.append({"doc_id": doc_id, "score": score, **_response(rec, item),
                        "doc_hash": rec.get("doc_hash"), "target_hash": rec.get("target_hash")})

    source = alias_source(opts.task)
    import_opts = ImportOptions(source=source, source_version=opts.source_version, license=opts.license,
                                language=opts.language, extend_taxonomy=opts.extend_taxonomy)
    with tempfile.TemporaryDirectory(prefix="adt-lmeval-") as tmp:
        canonical = Path(tmp) / f"{path.stem}.jsonl"
        _write_jsonl(canonical, rows)
        report = bank.import_items([canonical], import_opts)
        new_aliases = report.new_aliases
        # The hashes lm-eval logs are aliases too, so a log keyed by them finds its items.
        for kind in ("doc_hash", "prompt_hash"):
            hashed = _unique_ids([{**row, "id": a[kind]} for row, a in zip(rows, answers, strict=True) if a.get(kind)])
            if hashed:
                extra = Path(tmp) / f"{path.stem}.{kind}.jsonl"
                _write_jsonl(extra, hashed)
                new_aliases += bank.import_items([extra], ImportOptions(
                    **{**asdict(import_opts), "source": f"{source}/{kind}", "tags": ()})).new_aliases

    frame = pd.DataFrame(answers)
    frame["item_id"] = [bank.resolve_alias(source, d) for d in frame["doc_id"]]
    missing = frame["item_id"].isna()
    if missing.any():  # cannot happen after a successful import; a clear message if it does
        raise InputError(f"{path}: doc_id {frame['doc_id'][missing].iat[0]} has no item after the import")
    # Two documents with the same content are one item: their answers are averaged, as in responses import.
    merged = frame.groupby("item_id", sort=False).agg(
        score=("score", "mean"), raw_output=("raw_output", "first"), extracted=("extracted", "first"),
        prompt_hash=("prompt_hash", "first"), choice_logliks=("choice_logliks", "first")).reset_index()
    merged["template_id"] = f"lmeval:{opts.task}"
    sha = file_sha256(path)
    run_id = f"lmeval:{opts.task}:{opts.model}:{sha[:12]}"
    config = {"file": str(path), "sha256": sha, "task": opts.task, "filter": chosen, "metric": metric,
              "target_hashes": dict(zip(frame["doc_id"], frame["target_hash"], strict=True))}
    bank.start_run(run_id, model=opts.model, kind="import", round_no=opts.round_no, backend="lm-eval",
                   config=config)
    try:
        new_responses = bank.ingest_responses(run_id, merged)
    except BaseException:
        bank.finish_run(run_id, status="failed")
        raise
    bank.finish_run(run_id)
    types = pd.Series([i["type"] for i in items_out]).value_counts().to_dict()
    return LmevalImportReport(str(path), opts.task, opts.model, run_id, chosen, metric, filters, len(rows),
                              {str(k): int(v) for k, v in types.items()}, report.new_items, report.existing_items,
                              new_aliases, new_responses, float(frame["score"].mean()))


def _unique_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per hash: identical docs share a hash and are one item anyway; a hash shared by
    different contents (a prompt that omits the choices) would be ambiguous and is not kept."""
    content: dict[str, str | None] = {}
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = json.dumps([row["question"], row.get("choices"), row["answer"]])
        if row["id"] not in first:
            first[row["id"]] = row
            content[row["id"]] = key
        elif content[row["id"]] != key:
            content[row["id"]] = None
    return [row for rid, row in first.items() if content[rid] is not None]


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False) + "\n")


# -- exporting forms as lm-eval tasks ---------------------------------------------------------------
MC_PROMPT = "{question}\n{options}\nAnswer:"
GEN_PROMPT = "Question: {question}\nAnswer:"
_NUMERIC_FILTER = [{"name": "flexible-extract", "filter": [
    {"function": "regex", "group_select": -1, "regex_pattern": r"(-?[$0-9.,]{2,})|(-?[0-9]+)"},
    {"function": "take_first"}]}]


@dataclass(frozen=True)
class TaskExport:
    task: str                       # the name to pass to --tasks (a group when the form mixes types)
    subtasks: dict[str, int]        # sub-task name -> number of items
    files: tuple[str, ...]
    data_sha256: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _task_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if not name:
        raise InputError(f"task name {text!r} has no letters or digits")
    return name


# The item types export_task writes a scoring rule for (the lm-eval metrics differ per type).
LMEVAL_TYPES = ("mc", "numeric", "open")
# Why a registered type is not exported (lm-eval's built-in metrics have no rule for it).
NOT_EXPORTED = {"multi": "multi-select: lm-eval scores one option by log-likelihood, or generated text by exact "
                         "match, and has no set match or partial credit for 'select all that apply'"}


def form_items(bank: Bank, form: str) -> pd.DataFrame:
    """The form's items in form order (retired ones included: the form holds them)."""
    rec = bank.form(form)
    ids = rec["item_ids"]
    frame = bank.items({"item_id": ids}, include_retired=True, with_tags=False).set_index("item_id")
    return frame.loc[ids].reset_index()


def export_task(bank: Bank, form: str, out_dir: Path, *, task: str | None = None, mc_target: str = "label",
                data_format: str = "jsonl") -> TaskExport:
    """Write the form as a local lm-eval task: YAML(s) + data file(s) with the answer keys.

    Multiple-choice items are scored by log-likelihood over ``mc_target`` ("label": the letters,
    "text": the option texts); numeric items by exact match of the last number generated; open
    items by case-insensitive exact match. The data files are referenced by absolute path
    (lm-eval resolves ``data_files`` against the working directory, not the YAML).
    """
    if mc_target not in ("label", "text"):
        raise InputError(f"--mc-target {mc_target!r}: use label or text")
    if data_format not in ("jsonl", "parquet"):
        raise InputError(f"--format {data_format!r}: use jsonl or parquet")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = _task_name(task or f"adt_{form}")
    items = form_items(bank, form)
    missing_key = items[items["answer"].isna()]
    if len(missing_key):
        raise InputError(f"form {form}: item {missing_key['item_id'].iat[0]} has no answer key; lm-eval needs keys "
                         f"to score ({len(missing_key)} such items)")
    kinds = [k for k in LMEVAL_TYPES if (items["item_type"] == k).any()]
    other = items[~items["item_type"].isin(LMEVAL_TYPES)]
    if len(other):  # a registered type without an lm-eval scoring rule here: refuse rather than drop its items
        why = "; ".join(NOT_EXPORTED[t] for t in sorted(set(other["item_type"])) if t in NOT_EXPORTED)
        raise InputError(f"form {form}: {len(other)} item(s) of type(s) {sorted(set(other['item_type']))} have no "
                         f"lm-eval export (it writes {', '.join(LMEVAL_TYPES)}){f' ({why})' if why else ''}; "
                         f"first: {other['item_id'].iat[0]}")
    numeric = items[items["item_type"] == "numeric"]
    inexact = numeric[~numeric["answer"].map(lambda key: _is_number(str(key)))]
    if len(inexact):  # lm-eval's exact_match compares text: no tolerance, fraction or exponent
        raise InputError(f"form {form}: {len(inexact)} numeric item(s) have a key lm-eval's exact match cannot "
                         f"score (a tolerance, a fraction or scientific notation; adt run scores them); first: "
                         f"{inexact['item_id'].iat[0]} (key {inexact['answer'].iat[0]!r})")
    files: list[str] = []
    sha: dict[str, str] = {}
    subtasks: dict[str, int] = {}
    for kind in kinds:
        part = items[items["item_type"] == kind]
        name = base if len(kinds) == 1 else f"{base}_{kind}"
        docs = [_task_doc(r, position, mc_target) for position, r in zip(part.index, part.itertuples(), strict=True)]
        data = out_dir / f"{name}.{data_format}"
        if data_format == "jsonl":
            _write_jsonl(data, docs)
        else:
            pd.DataFrame(docs).to_parquet(data, index=False)
        config = _task_config(name, kind, data.resolve(), data_format, form)
        yml = out_dir / f"{name}.yaml"
        yml.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        files += [str(yml), str(data)]
        sha[data.name] = file_sha256(data)
        subtasks[name] = len(docs)
    if len(kinds) > 1:
        group = out_dir / f"{base}.yaml"
        group.write_text(yaml.safe_dump({"group": base, "task": list(subtasks),
                                         "metadata": {"version": 1, "adt_form": form}}, sort_keys=False),
                         encoding="utf-8")
        files.insert(0, str(group))
    return TaskExport(base, subtasks, tuple(files), sha)


def _task_doc(row: Any, position: int, mc_target: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"item_id": row.item_id, "position": int(position), "question": row.question,
                           "type": row.item_type, "answer": row.answer}
    if row.item_type == "mc":
        choices = [str(c) for c in row.choices]
        letters = list(LETTERS[:len(choices)])
        doc["choices"] = choices
        doc["answer_index"] = letters.index(row.answer)
        doc["choice_targets"] = letters if mc_target == "label" else choices
        options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(letters, choices, strict=True))
        doc["prompt"] = MC_PROMPT.format(question=row.question, options=options)
    else:
        doc["prompt"] = GEN_PROMPT.format(question=row.question)
    return doc


def _task_config(name: str, kind: str, data: Path, data_format: str, form: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "task": name,
        "dataset_path": "json" if data_format == "jsonl" else "parquet",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "doc_to_text": "prompt",
    }
    if kind == "mc":
        config |= {"output_type": "multiple_choice", "doc_to_choice": "choice_targets",
                   "doc_to_target": "answer_index",
                   "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}
    else:
        config |= {"output_type": "generate_until", "doc_to_target": "answer",
                   "generation_kwargs": {"until": ["\n\n", "Question:"], "do_sample": False, "max_gen_toks": 256},
                   "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                                    "ignore_case": True, "ignore_punctuation": kind == "open",
                                    "regexes_to_ignore": [",", "\\$", "\\.$"] if kind == "numeric" else []}]}
        if kind == "numeric":
            config["filter_list"] = _NUMERIC_FILTER
    config["metadata"] = {"version": 1, "adt_form": form}
    return config


@dataclass(frozen=True)
class SamplesExport:
    task: str
    indices: tuple[int, ...]
    missing: tuple[str, ...]        # form items with no document in the task

    def as_json(self) -> dict[str, list[int]]:
        return {self.task: list(self.indices)}


def export_samples(bank: Bank, form: str, task: str, *, source: str | None = None,
                   allow_missing: bool = False) -> SamplesExport:
    """The ``--samples`` list selecting the form's items from a task lm-eval already has.

    Items map to the task's document indices through their aliases of ``source`` (default
    ``lmeval/<task>``, made by ``import_log``; any source whose external ids are the task's row
    numbers works). Indices are sorted: lm-eval walks the selected documents in dataset order and
    labels them with the list in the order given, so an unsorted list would mislabel its doc_ids.
    """
    source = source or alias_source(task)
    prefix = source + ":"
    indices: dict[int, str] = {}
    missing = []
    for item_id in bank.form(form)["item_ids"]:
        found = [a[len(prefix):] for a in bank.item(item_id)["aliases"] if a.startswith(prefix)]
        numeric = sorted(int(x) for x in found if x.isdigit())
        if not numeric:
            missing.append(item_id)
            continue
        for idx in numeric:   # duplicate documents of one item: each is the same question
            indices.setdefault(idx, item_id)
    if missing and not allow_missing:
        raise InputError(f"form {form}: {len(missing)} of its items have no document in task {task!r} "
                         f"(no alias of source {source!r}; e.g. {', '.join(missing[:3])}); "
                         f"import the task's log first, or pass --allow-missing")
    if not indices:
        raise InputError(f"form {form}: none of its items is a document of task {task!r} (source {source!r})")
    return SamplesExport(task, tuple(sorted(indices)), tuple(missing))
