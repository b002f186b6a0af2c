"""Read item files (JSONL, CSV, Parquet) and turn them into canonical, validated item rows.

Nothing here touches the bank: every problem is found before the import transaction starts, and is
reported with the file, the row (line for JSONL/CSV, 0-based row for Parquet) and the field.

Canonical columns (used when no column flags are given):
    id          external id within the source (default: the row number)
    question    the item text (required)
    choices     list of option texts (multiple choice); absent or empty for open/numeric items
    answer      the key: a letter (A, B, ...) for MC, a number for numeric, text for open
    type        an item type: mc | open | numeric, or any registered in adtbase.itemtypes
                (default: mc when choices are given, else open; numeric with --answer-format gsm8k)
    language    e.g. en, zh (default: --language, else guessed from the text: CJK share >= 20% -> zh)
    tags        a mapping key -> value or list of values (JSON text in CSV)
Optional provenance columns: origin (human | template | model-generated), generator,
generator_params, parent_id (external id of the parent item, same source), review_state
(draft | approved | retired), difficulty_band (declared band), license.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adtbase import itemtypes
from adtbase.errors import InputError

from .content import content_hash, guess_language
from .taxonomy import BUILTIN_KEYS, Taxonomy

ITEM_TYPES = ("mc", "open", "numeric")   # the built-in ones; validation asks adtbase.itemtypes
ORIGINS = ("human", "template", "model-generated")
REVIEW_STATES = ("draft", "approved", "retired")
ANSWER_FORMATS = ("auto", "letter", "index", "text", "gsm8k")
_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.S)


@dataclass(frozen=True)
class ImportOptions:
    source: str
    source_version: str | None = None
    license: str | None = None
    language: str | None = None
    id_cols: tuple[str, ...] = ()
    question_col: str | None = None
    choices_col: str | None = None
    choice_cols: tuple[str, ...] = ()
    answer_col: str | None = None
    answer_format: str = "auto"
    no_key: bool = False
    tag_cols: tuple[tuple[str, str], ...] = ()    # (column, tag key)
    tags: tuple[tuple[str, str], ...] = ()        # constant (key, value) for every row
    item_type: str | None = None
    extend_taxonomy: bool = False
    origin: str = "human"
    review_state: str = "approved"


class RowLabel:
    """One row's label, formatted only if an error message needs it."""

    __slots__ = ("labels", "i")

    def __init__(self, labels: RowLabels, i: int):
        self.labels, self.i = labels, i

    def __str__(self) -> str:
        return self.labels[self.i]



class RowLabels:
    """'FILE: line N' for row i of one or more files, built on demand (a million strings cost ~150 MB)."""

    def __init__(self, parts: Sequence[tuple[str, str, Sequence[int]]]):
        self.parts = list(parts)          # (path, 'line' | 'row', line number of each row)
        self.offsets = np.cumsum([0] + [len(p[2]) for p in self.parts])

    def __getitem__(self, i: int) -> str:
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        path, label, lines = self.parts[k]
        return f"{path}: {label} {lines[i - self.offsets[k]]}"

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def concat(cls, many: Sequence[RowLabels]) -> RowLabels:
        return cls([part for labels in many for part in labels.parts])


@dataclass
class PreparedItems:
    """Canonical rows of one import, validated; ``rows`` has one row per input row."""

    rows: pd.DataFrame            # external_id, item_id, content_hash, question, choices, answer, ...
    tags: pd.DataFrame            # item_id, key, value (unique)
    where: RowLabels              # row label of each row, for messages
    new_keys: set[str] = field(default_factory=set)
    new_values: set[tuple[str, str]] = field(default_factory=set)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is an InputError."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise InputError(f"{path}: line {lineno}: expected a JSON object")
            yield lineno, rec


def read_table(path: Path) -> tuple[pd.DataFrame, str]:
    """Read a JSONL, CSV or Parquet file; return the frame and how rows are labelled."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pd.DataFrame.from_records([rec | {"__line__": n} for n, rec in read_jsonl(path)]), "line"
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame["__line__"] = np.arange(len(frame)) + 2  # line 1 is the header
            return frame, "line"
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
            frame["__line__"] = np.arange(len(frame))
            return frame, "row"
    except InputError:
        raise
    except Exception as exc:  # pyarrow / csv parser errors
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {exc}") from None
    raise InputError(f"{path}: unknown file type {suffix!r} (use .jsonl, .csv or .parquet)")


def count_rows(path: Path) -> int:
    """Rows in a file (Parquet from its footer; text files by counting lines)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception as exc:
            raise InputError(f"{path}: cannot be read as parquet: {exc}") from None
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def read_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, str]]:
    """The file in frames of at most ``chunk_rows`` rows, ``__line__`` numbering rows across chunks."""
    if path.suffix.lower() == ".parquet" and path.exists():
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(path)
            start = 0
            for batch in reader.iter_batches(batch_size=chunk_rows):
                frame = batch.to_pandas()
                frame["__line__"] = np.arange(start, start + len(frame))
                start += len(frame)
                yield frame, "row"
            if start == 0:
                yield pd.DataFrame({c: [] for c in reader.schema_arrow.names} | {"__line__": []}), "row"
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{path}: cannot be read as parquet: {exc}") from None
        return
    frame, label = read_table(path)
    for start in range(0, max(len(frame), 1), chunk_rows):
        yield frame.iloc[start:start + chunk_rows].reset_index(drop=True), label


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_list(value: Any, where: RowLabel | str, col: str) -> list[str]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{where}: field {col!r}: expected a list of choices (JSON), got {value[:60]!r}") from None
    elif _blank(value):
        return []
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{where}: field {col!r}: expected a list of choices, got {type(value).__name__}")
    out = [v if isinstance(v, str) else ("" if _blank(v) else str(v)) for v in value]
    if not all(v.strip() for v in out):
        raise InputError(f"{where}: field {col!r}: a choice is empty")
    return out


def _answer_key(raw: Any, choices: list[str], kind: itemtypes.ItemType, fmt: str, where: RowLabel | str,
                col: str) -> str | None:
    """The canonical key in the item type's form (a letter for MC, a plain number for numeric, text for open)."""
    if _blank(raw):
        raise InputError(f"{where}: field {col!r}: the answer is missing (use --no-key for response-only items)")
    if fmt == "gsm8k":
        match = _GSM8K.search(str(raw))
        if not match:
            raise InputError(f"{where}: field {col!r}: no '#### <number>' in the answer")
        raw = match.group(1)
    try:
        return kind.canonical_key(raw, choices=choices, answer_format=fmt)
    except ValueError as exc:
        raise InputError(f"{where}: field {col!r}: {exc}") from None


def _tag_values(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.strip()
        return [value] if value else []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if not _blank(v)]
    return [] if _blank(value) else [str(value).strip()]


def prepare(frame: pd.DataFrame, path: Path, label: str, opts: ImportOptions, taxonomy: Taxonomy) -> PreparedItems:
    """Validate ``frame`` and return canonical rows; raise InputError naming file, row and field."""
    cols = set(frame.columns)

    def need(col: str | None, what: str) -> str:
        if col is None or col not in cols:
            shown = ", ".join(sorted(c for c in cols if c != "__line__"))
            raise InputError(f"{path}: no column {col!r} for {what} (columns: {shown})")
        return col

    q_col = need(opts.question_col or "question", "the question")
    id_cols = opts.id_cols or (("id",) if "id" in cols else ())
    for c in id_cols:
        need(c, "the id")
    choice_cols = opts.choice_cols
    for c in choice_cols:
        need(c, "a choice")
    choices_col = opts.choices_col or (None if choice_cols or "choices" not in cols else "choices")
    if choices_col:
        need(choices_col, "the choices")
    answer_col = None if opts.no_key else need(opts.answer_col or "answer", "the answer key")
    if opts.answer_format not in ANSWER_FORMATS:
        raise InputError(f"--answer-format {opts.answer_format!r}: use one of {', '.join(ANSWER_FORMATS)}")
    for c, _ in opts.tag_cols:
        need(c, "a tag")
    tags_col = "tags" if "tags" in cols and not opts.tag_cols else None

    lines = frame["__line__"].tolist()
    where = RowLabels([(str(path), label, lines)])
    n = len(frame)
    questions = frame[q_col].tolist()
    ext_ids: list[str]
    if id_cols:
        parts = [frame[c].astype(str).tolist() for c in id_cols]
        ext_ids = ["/".join(p) for p in zip(*parts, strict=True)] if len(parts) > 1 else parts[0]
    else:
        ext_ids = [str(i) for i in range(n)]
    if choice_cols:
        choice_lists = [[str(v) for v in row if not _blank(v)]
                        for row in zip(*(frame[c].tolist() for c in choice_cols), strict=True)]
    elif choices_col:
        choice_lists = [_as_list(v, RowLabel(where, i), choices_col) for i, v in enumerate(frame[choices_col].tolist())]
    else:
        choice_lists = [[] for _ in range(n)]
    answers = frame[answer_col].tolist() if answer_col else [None] * n
    types = frame["type"].tolist() if "type" in cols and not opts.item_type else [opts.item_type] * n
    langs = frame["language"].tolist() if "language" in cols and not opts.language else [opts.language] * n

    def optional(col: str, default: Any) -> list[Any]:
        if col not in cols:
            return [default] * n
        return [default if _blank(v) else v for v in frame[col].tolist()]

    origins = optional("origin", opts.origin)
    generators = optional("generator", None)
    gen_params = optional("generator_params", None)
    parents = optional("parent_id", None)
    states = optional("review_state", opts.review_state)
    bands = optional("difficulty_band", None)

    out_q, out_choices, out_answer, out_type, out_lang, out_hash, out_id = [], [], [], [], [], [], []
    tag_item, tag_key, tag_value = [], [], []
    first_use: dict[tuple[str, str], tuple[int, str]] = {}   # (key, value) -> (row, field), checked once
    const_tags = [(k, v, "--tag") for k, v in opts.tags]
    tag_col_values = [(col, tkey, frame[col].tolist()) for col, tkey in opts.tag_cols]
    raw_tags = frame[tags_col].tolist() if tags_col is not None else None
    default_type = "numeric" if opts.answer_format == "gsm8k" else "open"
    known = itemtypes.names()
    for i in range(n):
        q = questions[i]
        if not isinstance(q, str) or not q.strip():
            if _blank(q):
                raise InputError(f"{where[i]}: field {q_col!r}: the question is empty")
            q = str(q)
        choices = choice_lists[i]
        itype = types[i] if isinstance(types[i], str) and types[i] else ("mc" if choices else default_type)
        if itype not in known:
            raise InputError(f"{where[i]}: field 'type': {itype!r} is not one of {', '.join(known)}")
        kind = itemtypes.get(itype)
        problems = kind.validate({"question": q, "choices": choices})
        if problems:
            raise InputError(f"{where[i]}: {problems[0]}")
        key = None if answer_col is None else _answer_key(answers[i], choices, kind, opts.answer_format, RowLabel(where, i),
                                                          answer_col)
        given = langs[i]
        lang = given if isinstance(given, str) and given else guess_language(q + " ".join(choices))
        if ("language", lang) not in first_use:
            first_use[("language", lang)] = (i, "language")
        if origins[i] not in ORIGINS:
            raise InputError(f"{where[i]}: field 'origin': {origins[i]!r} is not one of {', '.join(ORIGINS)}")
        if states[i] not in REVIEW_STATES:
            raise InputError(f"{where[i]}: field 'review_state': {states[i]!r} is not one of "
                             f"{', '.join(REVIEW_STATES)}")
        digest = content_hash(q, choices, key)
        item_id = "it_" + digest[:20]
        out_q.append(q)
        out_choices.append(choices or None)
        out_answer.append(key)
        out_type.append(itype)
        out_lang.append(lang)
        out_hash.append(digest)
        out_id.append(item_id)

        row_tags = list(const_tags)
        for col, tkey, values in tag_col_values:
            row_tags.extend((tkey, v, col) for v in _tag_values(values[i]))
        if raw_tags is not None:
            raw = raw_tags[i]
            if isinstance(raw, str) and raw.strip():
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError:
                    raise InputError(f"{where[i]}: field 'tags': not a JSON object") from None
            if isinstance(raw, dict):
                for tkey, tval in raw.items():
                    row_tags.extend((str(tkey), v, "tags") for v in _tag_values(tval))
            elif not (_blank(raw) if not isinstance(raw, (list, np.ndarray)) else len(raw) == 0):
                raise InputError(f"{where[i]}: field 'tags': expected a mapping of key to value(s)")
        for tkey, tval, field_name in row_tags:
            if tkey == "difficulty_band":
                bands[i] = tval
                continue
            if tkey in BUILTIN_KEYS:
                raise InputError(f"{where[i]}: field {field_name!r}: {tkey} is a built-in column, not a tag "
                                 f"(set it with the {tkey} column or flag)")
            pair = (tkey, tval)
            if pair not in first_use:
                first_use[pair] = (i, field_name)
            tag_item.append(item_id)
            tag_key.append(tkey)
            tag_value.append(tval)

    for i, band in enumerate(bands):
        if band is not None and band not in ("hard", "medium", "easy", "unknown"):
            raise InputError(f"{where[i]}: field 'difficulty_band': {band!r} is not one of hard, medium, easy, unknown")
    if not opts.extend_taxonomy:
        # Each distinct (key, value) is checked once, reported at the first row that used it.
        for (tkey, tval), (i, field_name) in sorted(first_use.items(), key=lambda kv: kv[1][0]):
            taxonomy.check(tkey, tval, f"{where[i]}: field {field_name!r}")
    pairs = set(first_use)

    rows = pd.DataFrame({
        "external_id": ext_ids, "item_id": out_id, "content_hash": out_hash, "question": out_q,
        "choices": out_choices, "answer": out_answer, "item_type": out_type, "language": out_lang,
        "origin": origins, "generator": generators,
        "generator_params": [None if p is None else (p if isinstance(p, str) else json.dumps(p, sort_keys=True))
                             for p in gen_params],
        "parent_external_id": [None if p is None else str(p) for p in parents],
        "review_state": states, "declared_band": bands,
    })
    _check_conflicts(rows, where)
    tags = pd.DataFrame({"item_id": tag_item, "key": tag_key, "value": tag_value}).drop_duplicates()
    new_keys, new_values = taxonomy.missing(pairs)
    return PreparedItems(rows, tags.reset_index(drop=True), where, new_keys, new_values)


def _check_conflicts(rows: pd.DataFrame, where: RowLabels) -> None:
    """One external id with two different contents in one file is an error naming both rows."""
    dup = rows["external_id"].duplicated(keep=False)
    if not dup.any():
        return
    sub = rows.loc[dup, ["external_id", "content_hash"]]
    for ext_id, group in sub.groupby("external_id", sort=False):
        if group["content_hash"].nunique() > 1:
            first, second = group.index[0], group.index[group["content_hash"] != group["content_hash"].iloc[0]][0]
            raise InputError(f"{where[second]}: id {ext_id!r} also appears at {where[first].split(': ', 1)[1]} "
                             f"with a different question, choices or answer")
