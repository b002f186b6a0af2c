"""``adt qc``: automatic quality control of items (drafts by default), each check an event on the item.

Steps, holding the bank only briefly (DESIGN.md's connection model):

1. Select the items (review states and the one filter grammar) and read them.
2. ``schema``: the bank's format rules (``itembank``'s ``format_problems``: choices distinct, key among
   them, length limits, language as tagged).
3. ``near_duplicate`` / ``leakage``: the bank's near-duplicate index (``Bank.near_duplicates``), against the
   whole bank and within the batch; the checked items are indexed, so the next batch is checked against
   them too. A near copy of an item imported from another source is a ``leak``.
4. ``solvers``: each solver model answers the items in a run of kind "qc" through the one run loop
   (``adt.workflow.run.run_items``: spooled, resumable, the bank not held while models work; replay
   re-scores the recorded answers against the current key). The extracted answers go to
   ``calibration``'s key check (ability-weighted latent-class model): ``key_suspect``, ``ambiguous``,
   ``trivial`` and a first difficulty.

Every check writes one "qc" event per item (``Bank.record_qc``; vocabulary in ``adtbase.qc``); re-running
QC writes new events and the latest per check is the item's current state (``Bank.qc_flags``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adt.workflow.run import DEFAULT_BATCH_SIZE, RunReport, run_items
from adtbase import itemtypes, review
from adtbase import qc as vocab
from adtbase.errors import InputError
from itembank import DEFAULT_WAIT_S, LETTERS, Bank, format_problems, normalise, open_bank
from sampler import family_roots


@dataclass(frozen=True)
class Solvers:
    """The solver models of one QC pass: one backend, its arguments, and the model names."""

    backend: str
    models: tuple[str, ...]
    args: Mapping[str, Any] = field(default_factory=dict)
    mc_mode: str = "loglik"        # as `adt run --mc-mode`: loglik, or generate and read the letter
    template_id: str | None = None


@dataclass
class QcReport:
    name: str
    n_items: int
    checks: list[str]
    flags: dict[str, int]                 # flag -> items flagged now
    flagged: dict[str, list[str]]         # flag -> item ids (first 50)
    solver_runs: list[dict[str, Any]]
    n_events: int
    seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_name(item_ids: Sequence[str]) -> str:
    """QC pass name from the items it checks: re-running the same command resumes its solver runs."""
    return "qc-" + hashlib.sha256("\n".join(sorted(item_ids)).encode()).hexdigest()[:10]


def run_qc(bank_path: str | Path, *, filters: Mapping[str, Sequence[str]] | None = None,
           review_states: Sequence[str] = (review.DRAFT,), checks: Sequence[str] = vocab.CHECKS,
           solvers: Solvers | None = None, name: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
           wait_s: float = DEFAULT_WAIT_S, progress: bool = False,
           on_wait: Callable[[str], None] | None = None) -> QcReport:
    """Run ``checks`` on the items in ``review_states`` matching ``filters`` (module doc)."""
    bank_path = Path(bank_path)
    unknown = [c for c in checks if c not in vocab.CHECKS]
    if unknown:
        raise InputError(f"--check {unknown[0]!r} is not one of {list(vocab.CHECKS)}")
    bad_states = [s for s in review_states if s not in review.STATES]
    if bad_states:
        raise InputError(f"--review-state {bad_states[0]!r} is not one of {list(review.STATES)}")
    if vocab.SOLVERS in checks and solvers is not None and not solvers.models:
        raise InputError("the solvers check needs at least one --solver model")
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    with open_bank(bank_path, wait_s=wait_s, purpose="adt qc: select", on_wait=on_wait) as bank:
        flt = {**dict(filters or {}), "review_state": list(review_states)}
        bank.check_filter_values(filters or {})
        items = bank.items(flt, include_retired=review.RETIRED in review_states, with_tags=False)
    if items.empty:
        raise InputError(f"no items to check: none in review state(s) {list(review_states)}"
                         + (f" matching {dict(filters)}" if filters else ""))
    ids = [str(i) for i in items["item_id"]]
    qc_name = name or default_name(ids)
    secs["select"] = time.perf_counter() - t0
    n_events = 0
    content_checks = [c for c in checks if c != vocab.SOLVERS]
    if content_checks:
        t0 = time.perf_counter()
        with open_bank(bank_path, wait_s=wait_s, purpose="adt qc: content checks", on_wait=on_wait) as bank:
            records = []
            if vocab.SCHEMA in checks:
                records += schema_records(items)
            if vocab.NEAR_DUPLICATE in checks or vocab.LEAKAGE in checks:
                records += duplicate_records(bank, items, checks)
            n_events += bank.record_qc(records, qc_name)
        secs["content"] = time.perf_counter() - t0
    runs: list[RunReport] = []
    if vocab.SOLVERS in checks and solvers is not None:
        t0 = time.perf_counter()
        args = {**dict(solvers.args), **({"rescore": True} if solvers.backend == "replay" else {})}
        for model in solvers.models:
            runs.append(run_items(bank_path, lambda _b: ids, model, solvers.backend, args, f"{qc_name}:{model}",
                                  kind="qc", batch_size=batch_size, wait_s=wait_s, progress=progress,
                                  mc_mode=solvers.mc_mode, template_id=solvers.template_id, on_wait=on_wait,
                                  command="adt qc"))
        secs["solvers"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with open_bank(bank_path, wait_s=wait_s, purpose="adt qc: key check", on_wait=on_wait) as bank:
            answers = bank.solver_answers([r.run_id for r in runs], ids)
            n_events += bank.record_qc(solver_records(items, answers, list(solvers.models)), qc_name)
        secs["key_check"] = time.perf_counter() - t0
    with open_bank(bank_path, wait_s=wait_s, purpose="adt qc: report", on_wait=on_wait) as bank:
        current = bank.qc_flags(ids)
    flagged: dict[str, list[str]] = {f: [] for f in vocab.FLAGS}
    for item_id in sorted(ids):
        for f in vocab.current_flags(current.get(item_id, {})):
            flagged[f].append(item_id)
    return QcReport(name=qc_name, n_items=len(ids), checks=list(checks),
                    flags={f: len(v) for f, v in flagged.items()},
                    flagged={f: v[:50] for f, v in flagged.items() if v},
                    solver_runs=[{"run_id": r.run_id, "model": r.model, "status": r.status,
                                  "n_responses": r.n_responses, "n_missing": r.n_missing} for r in runs],
                    n_events=n_events, seconds=secs)


Record = tuple[str, str, list[str], dict[str, Any]]


def schema_records(items: pd.DataFrame) -> list[Record]:
    out: list[Record] = []
    for row in items.to_dict("records"):
        if isinstance(row.get("choices"), np.ndarray):
            row["choices"] = row["choices"].tolist()
        problems = format_problems(row)
        out.append((str(row["item_id"]), vocab.SCHEMA, ["schema_error"] if problems else [], {"problems": problems}))
    return out


def duplicate_records(bank: Bank, items: pd.DataFrame, checks: Sequence[str]) -> list[Record]:
    """Exact and near duplicates of each item among the whole bank and the batch (the bank's index: the batch is
    indexed too, so the next batch is checked against it); leaks: those whose match is a public item of another
    source (``Bank.leaks``). A declared variant's match with its own family (parent, children, siblings:
    ``parent_item_id``) is expected, kept in the detail as ``family`` and not flagged."""
    ids = [str(i) for i in items["item_id"]]
    found = bank.near_duplicates(ids)
    family = _families(bank, items, found)
    found = found.assign(family=[family.get(str(i)) is not None and family.get(str(i)) == family.get(str(m))
                                 for i, m in zip(found["item_id"], found["match_id"], strict=True)])
    leaks = bank.leaks(found[~found["family"]])
    leak_src = {(str(r.item_id), str(r.match_id)): str(r.source) for r in leaks.itertuples()}
    by_item: dict[str, list[dict[str, Any]]] = {}
    for r in found.sort_values("similarity", ascending=False, kind="stable").itertuples():
        m = {"item_id": str(r.match_id), "similarity": round(float(r.similarity), 4), "rule": str(r.rule)}
        if r.family:
            m["family"] = True
        by_item.setdefault(str(r.item_id), []).append(m)
    out: list[Record] = []
    for item_id in ids:
        matches = by_item.get(item_id, [])[:10]
        copies = [m for m in matches if not m.get("family")]
        if vocab.NEAR_DUPLICATE in checks:
            out.append((item_id, vocab.NEAR_DUPLICATE, ["near_duplicate"] if copies else [], {"matches": matches}))
        if vocab.LEAKAGE in checks:
            leaked = [{**m, "source": leak_src[(item_id, m["item_id"])]} for m in copies
                      if (item_id, m["item_id"]) in leak_src]
            out.append((item_id, vocab.LEAKAGE, ["leak"] if leaked else [], {"matches": leaked}))
    return out


def _families(bank: Bank, items: pd.DataFrame, found: pd.DataFrame) -> dict[str, str]:
    """item id -> its variant family (``sampler.family_roots``), for the checked items and their matches."""
    ids = sorted(set(items["item_id"].astype(str)) | set(found["match_id"].astype(str)))
    if not ids:
        return {}
    frame = bank.items({"item_id": ids}, include_retired=True, with_tags=False)
    return dict(zip(frame["item_id"].astype(str), family_roots(frame["item_id"], frame["parent_item_id"]),
                    strict=True))


def answer_matrix(items: pd.DataFrame, answers: pd.DataFrame, models: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[str]]]:
    """Solver answers as option indices (-1: none usable), options per item and the key's index.

    Multiple choice: the extracted label's position among the item's choices. Other types (numeric, open,
    multi-select): the key is option 0 (an answer that scores 1) and each distinct wrong answer an option of
    its own, so the same key check applies (the guessing floor is then only nominal). Also returns each
    item's option labels, to name the majority answer."""
    n, s = len(items), len(models)
    row_of = {str(i): k for k, i in enumerate(items["item_id"])}
    col_of = {m: k for k, m in enumerate(models)}
    A = np.full((n, s), -1, dtype=np.int64)
    K = np.zeros(n, dtype=np.int64)
    key = np.zeros(n, dtype=np.int64)
    labels: list[list[str]] = []
    single = []
    for k, row in enumerate(items.itertuples()):
        kind = itemtypes.get(str(row.item_type))
        choices = list(row.choices) if row.choices is not None else []
        answer = str(row.answer or "")
        mc = kind.has_choices and len(answer) == 1 and answer in LETTERS[:len(choices)]
        single.append(mc)
        labels.append(list(LETTERS[:len(choices)]) if mc else [answer])
        K[k] = len(choices) if mc else 1
        key[k] = LETTERS.index(answer) if mc else 0
    for r in answers.itertuples():
        i, j = row_of.get(str(r.item_id)), col_of.get(str(r.model))
        if i is None or j is None or r.extracted is None or (isinstance(r.extracted, float) and np.isnan(r.extracted)):
            continue
        got = str(r.extracted).strip()
        if single[i]:
            up = got.upper()
            if len(up) == 1 and up in LETTERS[:K[i]]:
                A[i, j] = LETTERS.index(up)
        elif float(r.score) >= 1.0:
            A[i, j] = 0
        else:
            norm = normalise(got)
            if norm not in labels[i]:
                labels[i].append(norm)
            A[i, j] = labels[i].index(norm)
    for i in range(n):
        if not single[i]:
            K[i] = max(2, len(labels[i]))
            labels[i] += [f"<other {x}>" for x in range(len(labels[i]), K[i])]
    return A, K, key, labels


def solver_records(items: pd.DataFrame, answers: pd.DataFrame, models: Sequence[str]) -> list[Record]:
    from calibration import check_keys

    A, K, key, labels = answer_matrix(items, answers, models)
    answered = (A >= 0).any(1)
    out: list[Record] = []
    if not answered.any():
        return out
    res = check_keys(A[answered], K[answered], key[answered])
    rows = np.flatnonzero(answered)
    for k, i in enumerate(rows):
        flags = [f for f, on in (("key_suspect", res.key_suspect[k]), ("ambiguous", res.ambiguous[k]),
                                 ("trivial", res.trivial[k])) if on]
        lab = labels[i]
        maj = int(res.majority[k])
        out.append((str(items["item_id"].iloc[i]), vocab.SOLVERS, flags, {
            "n_solvers": int(res.n_answered[k]), "key": lab[key[i]],
            "agree_share": round(float(res.agree_share[k]), 4),
            "majority": lab[maj] if maj >= 0 else None, "majority_share": round(float(res.majority_share[k]), 4),
            "likely_key": lab[int(np.argmax(res.posterior[k][:K[i]]))],
            "p_key_wrong": round(float(res.p_key_wrong[k]), 4),
            "answers": {m: (lab[a] if a >= 0 else None) for m, a in zip(models, A[i].tolist(), strict=True)},
            "difficulty": round(float(res.difficulty[k]), 3)}))
    return out
