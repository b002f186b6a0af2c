"""The bank's near-duplicate index: exact and near copies of items, found without re-scanning the bank.

What is compared. An item's *text* is its normalised question (``normalise``, case-folded) followed by
its normalised choices *sorted*, so shuffling the options changes nothing. Three rules flag a pair:

- ``text``: the same text (exact copies, whatever their length or answer key);
- ``question``: the same question, choices aside, when it is at least ``MIN_QUESTION_CHARS`` long
  (MMLU-Pro rewrote MMLU's 4 options into 10 and kept the question; a short generic stem such as
  "Which of the following is true?" says nothing on its own, so it must also match on the text);
- ``near``: Jaccard similarity of the texts' character ``K``-gram (Chinese: ``K_ZH``) sets at least ``threshold``
  (``DEFAULT_THRESHOLD``), every run of digits read as one ``0``: a copy with its numbers changed is a
  near copy (on MMLU-Pro, whose options are often numbers, 72% of perturbed copies reach 0.5 on the raw
  text, 100% with digits masked). Where both items have choices, their choices alone must also reach
  ``MIN_CHOICES_JACCARD``: MMLU's passage sets ask several questions on one long passage, which alone
  makes their texts similar, while their options differ. Two items of one template generator (origin
  ``template``, same ``generator``) are not compared by this rule: the generator keeps its problems
  distinct, and its fixed wording alone makes short siblings alike (on a generated 1M bank, 35% of fresh
  template drafts matched a sibling, e.g. 'Delete every "b" from the string "wbbwalodf"' and '... "hibg"').
  Character shingles work for Chinese and English alike.

How it scales. Each item's shingle set gets a MinHash signature (``N_BANDS`` x ``ROWS`` values); each
band of the signature is one ``band_key`` row in ``near_dup_bands``. Two texts of Jaccard s share a band
with probability s^ROWS; a candidate must share ``MIN_HITS`` of them (probability 0.99 at s = 0.5, 0.02
for unrelated texts at s = 0.1). A query joins its keys against the table (a hash join, no scan of the
items' text), skips keys shared by more than ``MAX_BUCKET`` items (a template's boilerplate puts thousands
of siblings in one bucket: no evidence of a copy, as ``max_df`` in ``sampler.enemies``), takes at most
``MAX_CANDIDATES`` per item, those sharing the most bands, then verifies each on the exact Jaccard of the
shingle sets. Indexing is incremental: ``index_items`` adds the items not indexed yet in chunks of
``CHUNK`` items, one short transaction each; ``near_duplicates`` indexes what is new first, the queried
batch included, so the next batch is checked against this one.

Leakage: a match whose item came from another source of ``PUBLIC_ORIGINS`` (items written by people and
brought in by ``adt bank import``, e.g. MMLU; not ``template`` or ``model-generated`` ones) is a near
copy of a public benchmark item (``leaks``).

Pure functions (``compared_text``, ``shingle_hashes``, ``signatures``, ``band_keys``, ``jaccard``) do the
maths; ``index_items``, ``near_duplicates`` and ``leaks`` are the thin I/O over the bank (its connection and
its ``transaction()``; ``Bank``'s methods of the same names call them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from adtbase.errors import InputError, ItemNotFound

from .content import guess_language, normalise

if TYPE_CHECKING:
    import duckdb

    from .bank import Bank

K = 4                       # characters per shingle (as sampler.enemies' n-grams)
K_ZH = 2                    # in Chinese text: a 4-gram spans a word or two, so a tenth of characters edited left
                            # 1.4% of CMMLU copies under 0.5; 0.2% with 2-grams (unrelated pairs <= 0.38)
ROWS = 2                    # signature values per band
N_BANDS = 24                # bands per item: rows in near_dup_bands per item
N_PERM = ROWS * N_BANDS
DEFAULT_THRESHOLD = 0.5     # Jaccard of the shingle sets (bench/near_duplicates.py measures the choice)
MIN_CHOICES_JACCARD = 0.3   # and of the choices alone: questions on one shared passage differ in their options
MIN_QUESTION_CHARS = 40     # an equal question shorter than this is a generic stem, not a copy
MAX_CANDIDATES = 50         # per queried item, those sharing the most band keys
MIN_HITS = 2                # bands a candidate shares with the queried item
MAX_BUCKET = 500            # a band key more items share is boilerplate (a template's), no evidence of a copy
CHUNK = 100_000             # items per indexing transaction
PUBLIC_ORIGINS = ("human",)
# Changing any parameter above that shapes the stored keys changes the scheme: the index is rebuilt.
SCHEME = f"minhash-v3-digits0:k{K}:zh{K_ZH}:r{ROWS}:b{N_BANDS}:q{MIN_QUESTION_CHARS}"

_DIGITS = re.compile(r"\d+")
_rng = np.random.default_rng(20261206)  # fixed constants of the scheme, drawn once at import (not a caller's rng)
_PERM_A = _rng.integers(1, 2**63, N_PERM, dtype=np.uint64) | np.uint64(1)
_PERM_B = _rng.integers(0, 2**63, N_PERM, dtype=np.uint64)
_BAND_SEED = _rng.integers(0, 2**63, N_BANDS, dtype=np.uint64)
del _rng


# -- pure maths --------------------------------------------------------------------------------------
def canonical(text: str | None) -> str:
    return normalise(text or "").casefold()


def compared_text(question: str | None, choices: Sequence[str] | None) -> str:
    """The text an item is compared on: question, then its choices sorted (option order is no content)."""
    parts = [canonical(question)]
    parts.extend(sorted(canonical(c) for c in _listed(choices)))
    return "\n".join(parts)


def _listed(choices: Any) -> Sequence[str]:
    """An item's choices as a sequence; none (NULL reads back as None, NaN or NA) as an empty one."""
    return list(choices) if isinstance(choices, (list, tuple, np.ndarray)) else []


def key64(text: str) -> int:
    """A signed 64-bit hash of a text (a DuckDB BIGINT)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


def question_key(question: str | None) -> int | None:
    q = canonical(question)
    return key64(q) if len(q) >= MIN_QUESTION_CHARS else None


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser: a bijective scramble of 64-bit words (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_size(text: str) -> int:
    """``K_ZH`` for a Chinese text (``content.guess_language``, the importer's rule), else ``K``."""
    return K_ZH if guess_language(text) == "zh" else K


def shingle_hashes(texts: Sequence[str]) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """Hashes of every text's character shingles (``shingle_size`` characters; digit runs read as ``0``),
    and the start of each text's run in them. Texts of each shingle size go through numpy at once."""
    masked = [_DIGITS.sub("0", t) for t in texts]
    size = np.fromiter((shingle_size(t) for t in masked), dtype=np.int64, count=len(masked))
    parts = {k: _shingles_of([masked[i] for i in np.flatnonzero(size == k)], int(k)) for k in np.unique(size)}
    counts = np.zeros(len(masked), dtype=np.int64)
    for k, (_, c) in parts.items():
        counts[size == k] = c
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    out = np.empty(int(counts.sum()), dtype=np.uint64)
    for k, (h, c) in parts.items():  # each group's runs to their texts' places
        own = np.concatenate([[0], np.cumsum(c)[:-1]])
        out[np.arange(len(h)) + np.repeat(starts[size == k] - own, c)] = h
    return out, starts


def _shingles_of(texts: Sequence[str], k: int) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """Every ``k``-gram hash of ``texts`` in order, and how many each text has: code points of the joined
    UTF-32 text, a rolling product per position, positions that cross into the next text dropped; a text
    shorter than ``k`` is padded with spaces, so every text has at least one shingle."""
    padded = [t if len(t) >= k else t.ljust(k) for t in texts]
    lens = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
    cps = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n_pos = len(cps) - k + 1
    with np.errstate(over="ignore"):
        h = np.zeros(max(n_pos, 0), dtype=np.uint64)
        for j in range(k):
            h = h * np.uint64(1_000_003) + cps[j:j + n_pos]
        h = _mix(h)
    counts = lens - k + 1
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    out_starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts - out_starts, counts)
    return h[pos], counts


def signatures(texts: Sequence[str]) -> NDArray[np.uint32]:
    """MinHash signatures, shape (len(texts), N_PERM): permutation p of a shingle hash x is the top 32
    bits of A_p x + B_p (mod 2^64), the signature its minimum over the text's shingles."""
    if not texts:
        return np.zeros((0, N_PERM), dtype=np.uint32)
    h, starts = shingle_hashes(texts)
    sig = np.empty((len(texts), N_PERM), dtype=np.uint32)
    with np.errstate(over="ignore"):
        for p in range(N_PERM):
            v = ((h * _PERM_A[p] + _PERM_B[p]) >> np.uint64(32)).astype(np.uint32)
            sig[:, p] = np.minimum.reduceat(v, starts)
    return sig


def band_keys(sig: NDArray[np.uint32]) -> NDArray[np.int64]:
    """One signed 64-bit key per (item, band), shape (n, N_BANDS); the band's index is in the key."""
    n = sig.shape[0]
    keys = np.empty((n, N_BANDS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for b in range(N_BANDS):
            k = np.full(n, _BAND_SEED[b], dtype=np.uint64)
            for r in range(ROWS):
                k = _mix(k ^ sig[:, b * ROWS + r].astype(np.uint64))
            keys[:, b] = k
    return keys.view(np.int64)


def shingle_set(text: str) -> frozenset[int]:
    h, _ = shingle_hashes([text])
    return frozenset(h.tolist())


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter) if (a or b) else 1.0


# -- the index in the bank ---------------------------------------------------------------------------
def _texts(conn: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> pd.DataFrame:
    """item_id, question, choices, source, origin, generator of ``ids`` (in no set order)."""
    frame = pd.DataFrame({"item_id": pd.Series(list(ids), dtype=object)})
    conn.register("_nd_ids", frame)
    try:
        return conn.execute("""SELECT i.item_id, i.question, i.choices, i.source, i.origin, i.generator
                               FROM items i JOIN _nd_ids USING (item_id)""").df()
    finally:
        conn.unregister("_nd_ids")


def _rows(items: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The index rows of ``items`` (near_dup_items, near_dup_bands) and their compared texts."""
    texts = [compared_text(q, c) for q, c in zip(items["question"], items["choices"], strict=True)]
    ids = items["item_id"].to_numpy(dtype=object)
    keys = band_keys(signatures(texts))
    qkeys = [question_key(q) for q in items["question"]]
    head = pd.DataFrame({"item_id": ids, "text_key": np.array([key64(t) for t in texts], dtype=np.int64),
                         "question_key": pd.array(qkeys, dtype="Int64"), "scheme": SCHEME})
    bands = pd.DataFrame({"band_key": keys.ravel(), "item_id": np.repeat(ids, N_BANDS)})
    return head, bands, texts


def unindexed(bank: Bank) -> list[str]:
    """Items with no index row of the current scheme (rows of another scheme are dropped first)."""
    conn = bank.conn
    stale = conn.execute("SELECT count(*) FROM near_dup_items WHERE scheme <> ?", [SCHEME]).fetchone()
    if stale and stale[0]:
        with bank.transaction():
            conn.execute("DELETE FROM near_dup_bands")
            conn.execute("DELETE FROM near_dup_items")
    rows = conn.execute("""SELECT item_id FROM items ANTI JOIN near_dup_items USING (item_id)
                           ORDER BY item_id""").fetchnumpy()
    return [str(x) for x in rows["item_id"]]


def index_items(bank: Bank, item_ids: Iterable[str] | None = None) -> int:
    """Index the given items (all of the bank's when None) that are not indexed yet; returns how many were
    added. One transaction per ``CHUNK`` items, so a long build never holds a write open for long and an
    interrupted one keeps what it finished (inside the caller's ``Bank.transaction()``, all in that one)."""
    todo = unindexed(bank)
    if item_ids is not None:
        wanted = set(item_ids)
        todo = [i for i in todo if i in wanted]
    if not todo:
        return 0
    for start in range(0, len(todo), CHUNK):
        _write(bank, _texts(bank.conn, todo[start:start + CHUNK]))
    return len(todo)


def _write(bank: Bank, items: pd.DataFrame) -> None:
    head, bands, _ = _rows(items)
    _insert(bank, head, bands)


def _insert(bank: Bank, head: pd.DataFrame, bands: pd.DataFrame) -> None:
    conn = bank.conn
    conn.register("_nd_head", head)
    conn.register("_nd_bands", bands)
    try:
        with bank.transaction():
            conn.execute("INSERT INTO near_dup_items SELECT item_id, text_key, question_key, scheme FROM _nd_head")
            conn.execute("INSERT INTO near_dup_bands SELECT band_key, item_id FROM _nd_bands")
    finally:
        conn.unregister("_nd_head")
        conn.unregister("_nd_bands")


def near_duplicates(bank: Bank, item_ids: Sequence[str], *, threshold: float | None = None) -> pd.DataFrame:
    """Matches of ``item_ids`` among every indexed item and among themselves.

    Columns ``item_id, match_id, similarity, rule`` (rule ``text`` | ``question`` | ``near``, as the
    module doc; similarity is the Jaccard of the compared texts, 1.0 for the ``question`` rule's questions
    where the texts differ). An item never matches itself; a pair within the batch is listed from both
    sides. Indexes every unindexed item first, the batch included, so later batches see this one.
    """
    conn = bank.conn
    thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not 0 < thr <= 1:
        raise InputError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    ids = list(dict.fromkeys(str(i) for i in item_ids))
    empty = pd.DataFrame({"item_id": pd.Series(dtype=object), "match_id": pd.Series(dtype=object),
                          "similarity": pd.Series(dtype=float), "rule": pd.Series(dtype=object)})
    if not ids:
        return empty
    batch = _texts(conn, ids)
    if len(batch) < len(ids):
        missing = sorted(set(ids) - set(batch["item_id"]))
        raise ItemNotFound(f"{len(missing)} item(s) not in the bank: {', '.join(missing[:5])}"
                           + (" ..." if len(missing) > 5 else ""))
    head, bands, texts = _rows(batch)
    todo = set(unindexed(bank))
    new = head["item_id"].isin(todo).to_numpy()
    if new.any():  # the batch's own rows are computed already
        _insert(bank, head[new], bands[np.repeat(new, N_BANDS)])
    index_items(bank, todo - set(head["item_id"]))
    cand = _candidates(conn, head, bands)
    if cand.empty:
        return empty
    return _verify(conn, batch, texts, cand, thr)


def _candidates(conn: duckdb.DuckDBPyConnection, head: pd.DataFrame, bands: pd.DataFrame) -> pd.DataFrame:
    """(item_id, match_id, exact) pairs: equal text or question keys, and the ``MAX_CANDIDATES`` items
    sharing the most band keys with each queried item."""
    conn.register("_nd_qh", head)
    conn.register("_nd_qb", bands.drop_duplicates())
    try:
        return conn.execute(f"""
            WITH sizes AS (
                SELECT band_key, count(*) AS n FROM near_dup_bands
                WHERE band_key IN (SELECT band_key FROM _nd_qb) GROUP BY band_key),
            lsh AS (
                SELECT q.item_id, b.item_id AS match_id, count(*) AS hits
                FROM _nd_qb q JOIN sizes s ON s.band_key = q.band_key AND s.n <= {MAX_BUCKET}
                JOIN near_dup_bands b ON b.band_key = q.band_key
                WHERE b.item_id <> q.item_id
                GROUP BY q.item_id, b.item_id
                HAVING count(*) >= {MIN_HITS}
                QUALIFY row_number() OVER (PARTITION BY q.item_id ORDER BY hits DESC, match_id) <= {MAX_CANDIDATES}),
            same_text AS (
                SELECT q.item_id, n.item_id AS match_id
                FROM _nd_qh q JOIN near_dup_items n ON n.text_key = q.text_key WHERE n.item_id <> q.item_id),
            same_question AS (  -- two equi-joins: an OR in the join condition would compare every pair
                SELECT q.item_id, n.item_id AS match_id
                FROM _nd_qh q JOIN near_dup_items n ON n.question_key = q.question_key WHERE n.item_id <> q.item_id)
            SELECT item_id, match_id FROM lsh UNION SELECT * FROM same_text UNION SELECT * FROM same_question
            """).df()  # noqa: S608
    finally:
        conn.unregister("_nd_qh")
        conn.unregister("_nd_qb")


def _verify(conn: duckdb.DuckDBPyConnection, batch: pd.DataFrame, texts: list[str], cand: pd.DataFrame,
            thr: float) -> pd.DataFrame:
    """Each candidate pair on its texts: equal text, equal long question, else Jaccard >= thr on the text
    and, where both items have choices, ``MIN_CHOICES_JACCARD`` on the choices alone."""
    others = _texts(conn, cand["match_id"].unique().tolist())
    rows = pd.concat([batch, others[~others["item_id"].isin(batch["item_id"])]], ignore_index=True)
    text_of = dict(zip(batch["item_id"], texts, strict=True))
    question_of, choices_of, template_of = {}, {}, {}
    for iid, q, c, origin, gen in zip(rows["item_id"], rows["question"], rows["choices"], rows["origin"],
                                      rows["generator"], strict=True):
        if iid not in text_of:
            text_of[iid] = compared_text(q, c)
        question_of[iid] = canonical(q)
        choices_of[iid] = compared_text("", c) if len(_listed(c)) else None
        template_of[iid] = gen if origin == "template" and isinstance(gen, str) else None
    need = sorted(set(cand["item_id"]) | set(cand["match_id"]))
    sets = _sets(need, [text_of[i] for i in need])
    with_choices = [i for i in need if choices_of[i] is not None]
    choice_sets = _sets(with_choices, [str(choices_of[i]) for i in with_choices])
    out: list[tuple[str, str, float, str]] = []
    for a, b in zip(cand["item_id"], cand["match_id"], strict=True):
        if text_of[a] == text_of[b]:
            out.append((a, b, 1.0, "text"))
            continue
        qa = question_of[a]
        if len(qa) >= MIN_QUESTION_CHARS and qa == question_of[b]:
            out.append((a, b, 1.0, "question"))
            continue
        if template_of[a] is not None and template_of[a] == template_of[b]:
            continue  # siblings of one template: distinct problems by construction, alike in their wording
        s = jaccard(sets[a], sets[b])
        if s >= thr and (a not in choice_sets or b not in choice_sets
                         or jaccard(choice_sets[a], choice_sets[b]) >= MIN_CHOICES_JACCARD):
            out.append((a, b, round(s, 4), "near"))
    frame = pd.DataFrame(out, columns=["item_id", "match_id", "similarity", "rule"])
    return frame.sort_values(["item_id", "similarity", "match_id"], ascending=[True, False, True],
                             ignore_index=True)


def _sets(ids: list[str], texts: list[str]) -> dict[str, frozenset[int]]:
    if not ids:
        return {}
    h, starts = shingle_hashes(texts)
    return dict(zip(ids, (frozenset(x.tolist()) for x in np.split(h, starts[1:])), strict=True))


def leaks(bank: Bank, matches: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``matches`` (``near_duplicates``' frame) whose match is an item of another source of
    ``PUBLIC_ORIGINS``: a near copy of a public benchmark item. Adds the match's ``source``."""
    cols = ["item_id", "match_id", "source", "similarity", "rule"]
    if matches.empty:
        return pd.DataFrame(columns=cols)
    ids = pd.unique(pd.concat([matches["item_id"], matches["match_id"]])).tolist()
    info = _texts(bank.conn, ids).set_index("item_id")
    own = matches["item_id"].map(info["source"])
    src = matches["match_id"].map(info["source"])
    public = matches["match_id"].map(info["origin"]).isin(PUBLIC_ORIGINS)
    out = matches.assign(source=src)[public & (src != own)]
    return out[cols].reset_index(drop=True)
