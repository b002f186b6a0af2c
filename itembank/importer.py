"""Read item files (JSONL, CSV, Parquet) and turn them into canonical, validated item rows.

Nothing here touches the bank. Every row is checked and every problem recorded (``ProblemLog``) with
the file, the row (line for JSONL/CSV, 0-based row for Parquet), the field and the value; the import
goes on checking the whole file and then fails once, with all of them grouped by kind
(``ImportProblems``), having written nothing. Problems with the columns themselves (a missing column, a
bad flag) stop at once: no row can be checked without them.

The canonical columns and the answer formats are described once, in ``itembank/columns.py`` (what
``adt bank import --help`` shows); the item types' own key rules are in ``adtbase/itemtypes``.
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

from adtbase import itemtypes, review
from adtbase.errors import InputError, TaxonomyError
from adtbase.rubric import JUDGE_FIELDS, FieldProblem

from .content import content_hash, guess_language
from .taxonomy import BUILTIN_KEYS, Taxonomy

ITEM_TYPES = ("mc", "open", "numeric", "multi", "pairwise")   # the built-in ones; validation asks adtbase.itemtypes
ORIGINS = ("human", "template", "model-generated", "variant")   # "perturbed" copies refused
REVIEW_STATES = review.STATES   # a row may carry any; --review-state sets the rest (adtbase.review)
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
    tolerance_col: str | None = None              # default: a "tolerance" column, where there is one
    no_key: bool = False
    tag_cols: tuple[tuple[str, str], ...] = ()    # (column, tag key)
    tags: tuple[tuple[str, str], ...] = ()        # constant (key, value) for every row
    item_type: str | None = None
    extend_taxonomy: bool = False
    origin: str = "human"
    review_state: str = review.DEFAULT_IMPORT_STATE


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
        path, label, line = self.locate(i)
        return f"{path}: {label} {line}"

    def locate(self, i: int) -> tuple[str, str, int]:
        """(file, 'line' | 'row', its number) of row i."""
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        path, label, lines = self.parts[k]
        return path, label, int(lines[i - self.offsets[k]])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def subset(self, keep: Sequence[int] | np.ndarray) -> RowLabels:
        """The labels of rows ``keep`` (ascending)."""
        idx = np.asarray(keep, dtype=np.int64)
        part_of = np.searchsorted(self.offsets, idx, side="right") - 1
        return RowLabels([(path, label, [lines[int(j)] for j in idx[part_of == k] - self.offsets[k]])
                          for k, (path, label, lines) in enumerate(self.parts)])

    @classmethod
    def concat(cls, many: Sequence[RowLabels]) -> RowLabels:
        return cls([part for labels in many for part in labels.parts])


@dataclass(frozen=True)
class Problem:
    """One problem with one row: ``kind`` says what is wrong (problems are grouped by it and ``field``)."""

    kind: str
    where: str              # "FILE: line N" (or "row N" for Parquet)
    field: str | None
    value: str | None       # the offending value as text, shortened
    message: str            # the whole message, where and field included

    def as_dict(self) -> dict[str, Any]:
        """``file``, ``line`` (JSONL/CSV) or ``row`` (Parquet, 0-based), ``field``, ``value``, ``message``."""
        path, _, at = self.where.rpartition(": ")
        unit, _, number = at.partition(" ")
        return {"file": path, unit: int(number) if number.isdigit() else number, "field": self.field,
                "value": self.value, "message": self.message}


class ProblemLog:
    """Every problem of one import, grouped by (kind, field): counts, and the first rows of each kind
    (a file of a million bad rows keeps ``keep`` examples per kind, not a million messages)."""

    def __init__(self, keep: int = 5):
        self.keep = keep
        self.counts: dict[tuple[str, str | None], int] = {}
        self.examples: dict[tuple[str, str | None], list[Problem]] = {}
        self.taxonomy_only = True
        self.total = 0    # kept, not summed: prepare() reads it once a row

    def add(self, kind: str, where: object, field: str | None, value: Any, message: str,
            taxonomy: bool = False) -> None:
        group = (kind, field)
        self.counts[group] = self.counts.get(group, 0) + 1
        self.total += 1
        shown = self.examples.setdefault(group, [])
        if len(shown) < self.keep:
            text = None if value is None else str(value)
            shown.append(Problem(kind, str(where), field, None if text is None else text[:80],
                                 f"{where}: {message}" if field is None else f"{where}: field {field!r}: {message}"))
        self.taxonomy_only = self.taxonomy_only and taxonomy

    def add_error(self, kind: str, where: object, field: str | None, value: Any, exc: Exception,
                  taxonomy: bool = False) -> None:
        """A problem whose message is an exception's that already names the row (``where: ...``)."""
        message = str(exc)
        prefix = f"{where}: "
        message = message[len(prefix):] if message.startswith(prefix) else message
        if field is not None and message.startswith(f"field {field!r}: "):
            message = message[len(f"field {field!r}: "):]
        self.add(kind, where, field, value, message, taxonomy)

    def merge(self, other: ProblemLog) -> None:
        for group, n in other.counts.items():
            self.counts[group] = self.counts.get(group, 0) + n
            self.total += n
            shown = self.examples.setdefault(group, [])
            shown.extend(other.examples[group][: self.keep - len(shown)])
        self.taxonomy_only = self.taxonomy_only and other.taxonomy_only

    def __bool__(self) -> bool:
        return bool(self.counts)

    def error(self, files: Sequence[str]) -> ImportProblems:
        cls = TaxonomyProblems if self.taxonomy_only else ImportProblems
        return cls(self, files)


class ImportProblems(InputError):
    """An import with problems: all of them, grouped by kind (the message; ``as_dict`` for --json)."""

    def __init__(self, log: ProblemLog, files: Sequence[str], show: int = 3):
        self.log, self.files = log, tuple(files)
        groups = sorted(log.counts.items(), key=lambda kv: -kv[1])
        if log.total == 1:
            super().__init__(log.examples[groups[0][0]][0].message)   # one problem: one line, as ever
            return
        lines = [f"{log.total} problems in {', '.join(self.files)}, of {len(groups)} kind"
                 f"{'s' if len(groups) > 1 else ''}; nothing was imported:"]
        for (kind, fld), n in groups:
            lines.append(f"  {kind}{'' if fld is None else f' (field {fld!r})'}: {n} row{'s' if n > 1 else ''}")
            shown = log.examples[(kind, fld)][:show]
            lines += [f"    {p.message}" for p in shown]
            if n > len(shown):
                lines.append(f"    ... {n - len(shown)} more")
        super().__init__("\n".join(lines))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": False, "files": list(self.files), "problems": self.log.total,
                "kinds": [{"kind": kind, "field": fld, "count": n,
                           "first": [p.as_dict() for p in self.log.examples[(kind, fld)]]}
                          for (kind, fld), n in sorted(self.log.counts.items(), key=lambda kv: -kv[1])]}


class TaxonomyProblems(ImportProblems, TaxonomyError):
    """Problems that are all unknown tag keys or values."""


@dataclass
class PreparedItems:
    """Canonical rows of one import chunk, validated: ``rows`` has one row per good input row (rows with
    a problem are in ``problems`` instead)."""

    rows: pd.DataFrame            # external_id, item_id, content_hash, question, choices, answer, ...
    tags: pd.DataFrame            # item_id, key, value (unique)
    where: RowLabels              # row label of each row of ``rows``, for messages
    new_keys: set[str] = field(default_factory=set)
    new_values: set[tuple[str, str]] = field(default_factory=set)
    problems: ProblemLog = field(default_factory=ProblemLog)


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


def _jsonl_records(path: Path, problems: ProblemLog) -> list[dict[str, Any]]:
    """Every JSON object line of a file; the lines that are not one go to ``problems``."""
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.add("not valid JSON", where, None, line.strip(), f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(rec, dict):
                problems.add("not a JSON object", where, None, line.strip(), "expected a JSON object")
                continue
            records.append(rec | {"__line__": lineno})
    return records


def read_table(path: Path, problems: ProblemLog | None = None) -> tuple[pd.DataFrame, str]:
    """Read a JSONL, CSV or Parquet file; return the frame and how rows are labelled.

    With ``problems``, JSONL lines that are not JSON objects are recorded there and left out; without,
    the first one is an ``InputError``."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            records = ([rec | {"__line__": n} for n, rec in read_jsonl(path)] if problems is None
                       else _jsonl_records(path, problems))
            return pd.DataFrame.from_records(records, columns=None if records else ["__line__"]), "line"
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


def read_chunks(path: Path, chunk_rows: int, problems: ProblemLog | None = None) -> Iterator[tuple[pd.DataFrame, str]]:
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
    frame, label = read_table(path, problems)
    for start in range(0, max(len(frame), 1), chunk_rows):
        yield frame.iloc[start:start + chunk_rows].reset_index(drop=True), label


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_list(value: Any, col: str) -> list[str]:
    """A list of choices; ``ValueError`` (the message without the row) when it is not one."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"expected a list of choices (JSON), got {value[:60]!r}") from None
    elif _blank(value):
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list of choices, got {type(value).__name__}")
    out = [v if isinstance(v, str) else ("" if _blank(v) else str(v)) for v in value]
    if not all(map(str.strip, out)):
        raise ValueError("a choice is empty")
    return out


def _answer_key(raw: Any, choices: list[str], kind: itemtypes.ItemType, fmt: str) -> str:
    """The canonical key in the item type's form (a letter for MC, a plain number for numeric, text for open);
    ``ValueError`` naming the problem (``_answer_problem`` says which kind it is)."""
    if _blank(raw):
        raise _MissingAnswer("the answer is missing (use --no-key for response-only items)")
    if fmt == "gsm8k":
        match = _GSM8K.search(str(raw))
        if not match:
            raise _NoGsm8kAnswer("no '#### <number>' in the answer")
        raw = match.group(1)
    return kind.canonical_key(raw, choices=choices, answer_format=fmt)


class _MissingAnswer(ValueError):
    pass


class _NoGsm8kAnswer(ValueError):
    pass


def _yes_no(value: Any) -> bool | None:
    """A flag column's value: True, False (also blank), or None when it is neither."""
    if _blank(value):
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    return True if text in ("true", "yes", "y", "1", "1.0") else False if text in ("false", "no", "n", "0", "0.0") \
        else None


def _tag_values(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.strip()
        return [value] if value else []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if not _blank(v)]
    return [] if _blank(value) else [str(value).strip()]


class _TagsProblem:
    """A ``tags`` value that is not a mapping: the problem ``prepare`` logs for its row."""

    __slots__ = ("kind", "value", "message")

    def __init__(self, kind: str, value: Any, message: str):
        self.kind, self.value, self.message = kind, value, message


_JSON_SPACE = " \t\n\r"
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # json.loads without its wrapper


def _loads(text: str) -> Any:
    """``json.loads(text)`` (same value, same ``JSONDecodeError``), a third faster on a column of short documents."""
    body = text.strip(_JSON_SPACE)
    try:
        value, end = _scan_json(body, 0)
    except (StopIteration, ValueError):
        return json.loads(text)       # the error, as json.loads words it
    if end != len(body):
        return json.loads(text)
    return value


def _parse_tags(raw_tags: Sequence[Any]) -> list[tuple[tuple[str, str, str], ...] | _TagsProblem]:
    """Each row's ``tags`` value as its (key, value, "tags") triples in the mapping's order, or the problem with it.

    A whole column at once, before the row loop: one pass of JSON parsing with no per-row checks in between."""
    out: list[tuple[tuple[str, str, str], ...] | _TagsProblem] = []
    append = out.append
    for raw in raw_tags:
        if isinstance(raw, str) and raw.strip():
            try:
                raw = _loads(raw)
            except json.JSONDecodeError:
                append(_TagsProblem("tags are not a JSON object", raw, "not a JSON object"))
                continue
        if isinstance(raw, dict):
            triples = []
            for tkey, tval in raw.items():
                if type(tval) is str:      # the common case of _tag_values, inline
                    tval = tval.strip()
                    if tval:
                        triples.append((str(tkey), tval, "tags"))
                else:
                    triples.extend((str(tkey), v, "tags") for v in _tag_values(tval))
            append(tuple(triples))
        elif not (_blank(raw) if not isinstance(raw, (list, np.ndarray)) else len(raw) == 0):
            append(_TagsProblem("tags are not a mapping", raw, "expected a mapping of key to value(s)"))
        else:
            append(())
    return out


def prepare(frame: pd.DataFrame, path: Path, label: str, opts: ImportOptions, taxonomy: Taxonomy) -> PreparedItems:
    """Validate ``frame``: canonical rows for the good rows, every problem of the others in ``problems``.

    Missing columns and bad options raise ``InputError`` at once (no row can be checked without them).
    """
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
    # Judge-scored items take their key from the judge columns (adtbase.rubric); a file of only such items
    # needs no answer column.
    judge_cols = [c for c in JUDGE_FIELDS if c in cols] if not opts.no_key else []
    answer_col = None if opts.no_key or (judge_cols and opts.answer_col is None and "answer" not in cols) \
        else need(opts.answer_col or "answer", "the answer key")
    tol_col = need(opts.tolerance_col, "the tolerance") if opts.tolerance_col else (
        "tolerance" if "tolerance" in cols and answer_col else None)
    if opts.answer_format not in ANSWER_FORMATS:
        raise InputError(f"--answer-format {opts.answer_format!r}: use one of {', '.join(ANSWER_FORMATS)}")
    for c, _ in opts.tag_cols:
        need(c, "a tag")
    tags_col = "tags" if "tags" in cols and not opts.tag_cols else None

    lines = frame["__line__"].tolist()
    where = RowLabels([(str(path), label, lines)])
    log = ProblemLog()
    n = len(frame)
    questions = frame[q_col].tolist()
    ext_ids: list[str]
    if id_cols:
        parts = [frame[c].astype(str).tolist() for c in id_cols]
        ext_ids = ["/".join(p) for p in zip(*parts, strict=True)] if len(parts) > 1 else parts[0]
    else:
        ext_ids = [str(i) for i in range(n)]
    raw_choices = frame[choices_col].tolist() if choices_col else None
    choice_rows = list(zip(*(frame[c].tolist() for c in choice_cols), strict=True)) if choice_cols else None
    answers = frame[answer_col].tolist() if answer_col else [None] * n
    tolerances = frame[tol_col].tolist() if tol_col else [None] * n
    partial = frame["partial_credit"].tolist() if "partial_credit" in cols and answer_col else [None] * n
    judge_values = {c: frame[c].tolist() for c in judge_cols}
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

    good: list[int] = []
    out_q, out_choices, out_answer, out_type, out_lang, out_hash, out_id = [], [], [], [], [], [], []
    tag_item, tag_key, tag_value = [], [], []
    first_use: dict[tuple[str, str], tuple[int, str]] = {}   # (key, value) -> (row, field), checked once
    const_tags = [(k, v, "--tag") for k, v in opts.tags]
    tag_col_values = [(col, tkey, frame[col].tolist()) for col, tkey in opts.tag_cols]
    parsed_tags = _parse_tags(frame[tags_col].tolist()) if tags_col is not None else None
    default_type = "numeric" if opts.answer_format == "gsm8k" else "open"
    known = itemtypes.names()
    for i in range(n):
        at = RowLabel(where, i)
        problems_before = log.total
        q = questions[i]
        if not isinstance(q, str) or not q.strip():
            if _blank(q):
                log.add("the question is empty", at, q_col, q, "the question is empty")
            q = "" if _blank(q) else str(q)
        choices: list[str] = []
        if choice_rows is not None:
            choices = [str(v) for v in choice_rows[i] if not _blank(v)]
        elif raw_choices is not None and choices_col is not None:
            try:
                choices = _as_list(raw_choices[i], choices_col)
            except ValueError as exc:
                log.add("not a list of choices", at, choices_col, raw_choices[i], str(exc))
        itype = types[i] if isinstance(types[i], str) and types[i] else ("mc" if choices else default_type)
        kind = None
        if itype not in known:
            log.add("unknown item type", at, "type", itype, f"{itype!r} is not one of {', '.join(known)}")
        else:
            kind = itemtypes.get(itype)
            for problem in kind.validate({"question": q, "choices": choices}):
                log.add(f"not a valid {kind.title or kind.name} item", at, None, None, problem)
        key = None
        judged = {c: v[i] for c, v in judge_values.items() if not _blank(v[i])}
        if kind is not None and (judged or kind.judge_required) and not opts.no_key:
            if answer_col is not None and not _blank(answers[i]):
                log.add("an answer beside judge fields", at, answer_col, answers[i],
                        f"a judge-scored {kind.title or kind.name} item takes its key in "
                        f"{', '.join(kind.judge_fields) or 'no column'}; leave {answer_col!r} empty")
            else:
                try:
                    key = kind.judge_key(judged)
                except FieldProblem as exc:
                    log.add("not a valid judge key", at, exc.field, judged.get(exc.field),
                            str(exc))
        elif answer_col is not None and kind is not None:
            try:
                key = _answer_key(answers[i], choices, kind, opts.answer_format)
            except _MissingAnswer as exc:
                log.add("the answer is missing", at, answer_col, None, str(exc))
            except _NoGsm8kAnswer as exc:
                log.add("no '#### <number>' in the answer", at, answer_col, answers[i], str(exc))
            except ValueError as exc:
                log.add(f"not a {kind.title or kind.name} answer key", at, answer_col, answers[i], str(exc))
        elif kind is not None and not opts.no_key:   # a file of judge columns without an answer column
            log.add("the answer is missing", at, "answer", None,
                    f"the answer is missing (no 'answer' column; {', '.join(judge_cols)} empty)")
        if key is not None and kind is not None and not _blank(tolerances[i]):
            try:
                key = kind.with_tolerance(key, tolerances[i])
            except ValueError as exc:
                log.add("not a tolerance", at, tol_col, tolerances[i], str(exc))
        flag = _yes_no(partial[i])
        if flag is None:
            log.add("not true or false", at, "partial_credit", partial[i], f"{partial[i]!r} is not true or false")
        elif flag and key is not None and kind is not None:
            try:
                key = kind.with_partial_credit(key)
            except ValueError as exc:
                log.add("no partial credit for the type", at, "partial_credit", partial[i], str(exc))
        given = langs[i]
        lang = given if isinstance(given, str) and given else guess_language(q + " ".join(choices))
        if ("language", lang) not in first_use:
            first_use[("language", lang)] = (i, "language")
        if origins[i] not in ORIGINS:
            log.add("unknown origin", at, "origin", origins[i], f"{origins[i]!r} is not one of {', '.join(ORIGINS)}")
        if states[i] not in REVIEW_STATES:
            log.add("unknown review state", at, "review_state", states[i],
                    f"{states[i]!r} is not one of {', '.join(REVIEW_STATES)}")

        row_tags = list(const_tags)
        for col, tkey, values in tag_col_values:
            row_tags.extend((tkey, v, col) for v in _tag_values(values[i]))
        if parsed_tags is not None:
            found = parsed_tags[i]
            if isinstance(found, _TagsProblem):
                log.add(found.kind, at, "tags", found.value, found.message)
            else:
                row_tags.extend(found)
        item_tags = []
        for tkey, tval, field_name in row_tags:
            if tkey == "difficulty_band":
                bands[i] = tval
                continue
            if tkey in BUILTIN_KEYS:
                log.add("a built-in column used as a tag", at, field_name, tkey,
                        f"{tkey} is a built-in column, not a tag (set it with the {tkey} column or flag)")
                continue
            pair = (tkey, tval)
            if pair not in first_use:
                first_use[pair] = (i, field_name)
            item_tags.append((tkey, tval))
        band = bands[i]
        if band is not None and band not in ("hard", "medium", "easy", "unknown"):
            log.add("unknown difficulty band", at, "difficulty_band", band,
                    f"{band!r} is not one of hard, medium, easy, unknown")
        if log.total > problems_before:
            continue
        digest = content_hash(q, choices, key)
        item_id = "it_" + digest[:20]
        good.append(i)
        out_q.append(q)
        out_choices.append(choices or None)
        out_answer.append(key)
        out_type.append(itype)
        out_lang.append(lang)
        out_hash.append(digest)
        out_id.append(item_id)
        for tkey, tval in item_tags:
            tag_item.append(item_id)
            tag_key.append(tkey)
            tag_value.append(tval)

    if not opts.extend_taxonomy:
        # Each distinct (key, value) is checked once, reported at the first row that used it; an unknown key
        # once, with how many values it came with (a custom key of 40 values is one problem, not 40).
        n_values: dict[str, int] = {}
        for tkey, _ in first_use:
            n_values[tkey] = n_values.get(tkey, 0) + 1
        reported_keys: set[str] = set()
        for (tkey, tval), (i, field_name) in sorted(first_use.items(), key=lambda kv: kv[1][0]):
            at = RowLabel(where, i)
            if tkey in reported_keys:
                continue
            try:
                taxonomy.check(tkey, tval, f"{at}: field {field_name!r}")
            except TaxonomyError as exc:
                if tkey in taxonomy.keys:
                    log.add_error(f"value not allowed for tag {tkey}", at, field_name, f"{tkey}={tval}", exc,
                                  taxonomy=True)
                    continue
                reported_keys.add(tkey)
                more = n_values[tkey] - 1
                if more:
                    exc = TaxonomyError(f"{exc} ({more} more value{'s' if more > 1 else ''} of {tkey!r} in the files)")
                log.add_error("unknown tag key", at, field_name, f"{tkey}={tval}", exc, taxonomy=True)
    pairs = set(first_use)

    def kept(values: Sequence[Any]) -> list[Any]:
        return [values[i] for i in good]

    rows = pd.DataFrame({
        "external_id": kept(ext_ids), "item_id": out_id, "content_hash": out_hash, "question": out_q,
        "choices": out_choices, "answer": out_answer, "item_type": out_type, "language": out_lang,
        "origin": kept(origins), "generator": kept(generators),
        "generator_params": [None if p is None else (p if isinstance(p, str) else json.dumps(p, sort_keys=True))
                             for p in kept(gen_params)],
        "parent_external_id": [None if p is None else str(p) for p in kept(parents)],
        "review_state": kept(states), "declared_band": kept(bands),
    })
    where = RowLabels([(str(path), label, kept(lines))])
    rows = _drop_conflicts(rows, where, log)
    where = where.subset(rows.index.to_numpy())
    rows = rows.reset_index(drop=True)
    tags = pd.DataFrame({"item_id": tag_item, "key": tag_key, "value": tag_value}).drop_duplicates()
    tags = tags[tags["item_id"].isin(set(rows["item_id"]))] if len(rows) < len(good) else tags
    new_keys, new_values = taxonomy.missing(pairs)
    return PreparedItems(rows, tags.reset_index(drop=True), where, new_keys, new_values, log)


def _drop_conflicts(rows: pd.DataFrame, where: RowLabels, log: ProblemLog) -> pd.DataFrame:
    """One external id with two different contents in one file is a problem of the later rows (naming the
    first); they are left out."""
    dup = rows["external_id"].duplicated(keep=False)
    if not dup.any():
        return rows
    sub = rows.loc[dup, ["external_id", "content_hash"]]
    drop = []
    for ext_id, group in sub.groupby("external_id", sort=False):
        if group["content_hash"].nunique() > 1:
            first = group.index[0]
            for other in group.index[group["content_hash"] != group["content_hash"].iloc[0]]:
                log.add("one id with two contents", where[other], None, ext_id,
                        f"id {ext_id!r} also appears at {where[first].split(': ', 1)[1]} "
                        f"with a different question, choices or answer")
                drop.append(other)
    return rows.drop(index=drop)
