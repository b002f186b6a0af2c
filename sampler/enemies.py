"""Enemy pairs: near-duplicate items found by content similarity, never placed in the same form.

TF-IDF over character 4-grams (``char_wb``; works for Chinese and English alike, robust to
small edits), L2-normalised, cosine similarity by sparse products in row blocks so memory stays
bounded at 100k items. n-grams found in more than ``max_df`` of the items are dropped: they carry no
near-duplicate evidence and dominate the cost of the sparse product (every pair sharing them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from adtbase.errors import InputError


def find_enemy_pairs(texts: Sequence[str], threshold: float = 0.9, *, ngram_range: tuple[int, int] = (4, 4),
                     max_df: float = 0.01, sketch: int = 8, block: int = 4096) -> NDArray[np.int64]:
    """Index pairs ``(i, j)``, ``i < j``, whose cosine similarity is ``>= threshold``; shape (n_pairs, 2).

    Two stages keep 100k items tractable: candidates are pairs sharing at least two of their
    ``sketch`` rarest n-grams (a near-duplicate has nearly the same rarest n-grams; a full sparse
    product would cost m^2 per n-gram found in m items), then each candidate is verified on the full
    TF-IDF cosine.
    """
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not 0 < threshold <= 1:
        raise InputError(f"enemy threshold must be in (0, 1], got {threshold}")
    n = len(texts)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    docs = ["" if t is None else str(t) for t in texts]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, max_df=max_df if n >= 200 else 1.0,
                          min_df=1, sublinear_tf=True, dtype=np.float32)
    try:
        X = vec.fit_transform(docs).tocsr()
    except ValueError:  # every text empty
        return np.zeros((0, 2), dtype=np.int64)
    # Sketch: each text's ``sketch`` rarest n-grams (ties by feature id). Near-duplicates share
    # nearly the same rarest n-grams; texts sharing at least two become candidates.
    df = np.bincount(X.indices, minlength=X.shape[1])
    df = np.where(df == 1, n + 1, df)  # an n-gram of one text pairs it with nothing: sort it last
    rows = np.repeat(np.arange(n), np.diff(X.indptr))
    order = np.lexsort((X.indices, df[X.indices], rows))
    rank = np.arange(len(order)) - X.indptr[rows[order]]
    keep = order[rank < sketch]
    B = csr_matrix((np.ones(len(keep), np.float32), (rows[keep], X.indices[keep])), shape=X.shape)
    BT = B.T.tocsc()
    cand = []
    for start in range(0, n, block):
        S = (B[start:start + block] @ BT).tocoo()
        r = S.row + start
        ok = (S.data >= 2) & (r < S.col)
        cand.append(np.stack([r[ok], S.col[ok]], axis=1))
    c = np.concatenate(cand).astype(np.int64) if cand else np.zeros((0, 2), np.int64)
    if len(c) == 0:
        return c
    sims = np.asarray(X[c[:, 0]].multiply(X[c[:, 1]]).sum(axis=1)).ravel()
    out = c[sims >= threshold - 1e-6]
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def enemy_lists(n: int, pairs: Iterable[tuple[int, int]] | NDArray) -> list[NDArray[np.int64]]:
    """Adjacency list (per item, the indices of its enemies)."""
    p = np.asarray(list(pairs) if not isinstance(pairs, np.ndarray) else pairs, dtype=np.int64).reshape(-1, 2)
    p = p[p[:, 0] != p[:, 1]]
    both = np.unique(np.concatenate([p, p[:, ::-1]]), axis=0)   # both directions, sorted, no repeats
    starts = np.searchsorted(both[:, 0], np.arange(n + 1))
    none = np.zeros(0, dtype=np.int64)
    return [both[starts[k]:starts[k + 1], 1].copy() if starts[k + 1] > starts[k] else none for k in range(n)]
