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

from adt.errors import InputError


def find_enemy_pairs(texts: Sequence[str], threshold: float = 0.9, *, ngram_range: tuple[int, int] = (4, 4),
                     max_df: float = 0.01, block: int = 2048) -> NDArray[np.int64]:
    """Index pairs ``(i, j)``, ``i < j``, whose cosine similarity is ``>= threshold``; shape (n_pairs, 2)."""
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
    XT = X.T.tocsc()
    pairs = []
    for start in range(0, n, block):
        S = (X[start:start + block] @ XT).tocoo()
        rows = S.row + start
        keep = (S.data >= threshold - 1e-6) & (rows < S.col)
        pairs.append(np.stack([rows[keep], S.col[keep]], axis=1))
    out = np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), np.int64)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def enemy_lists(n: int, pairs: Iterable[tuple[int, int]] | NDArray) -> list[NDArray[np.int64]]:
    """Adjacency list (per item, the indices of its enemies)."""
    p = np.asarray(list(pairs) if not isinstance(pairs, np.ndarray) else pairs, dtype=np.int64).reshape(-1, 2)
    adj: list[list[int]] = [[] for _ in range(n)]
    for i, j in p:
        if i != j:
            adj[i].append(int(j))
            adj[j].append(int(i))
    return [np.array(sorted(set(a)), dtype=np.int64) for a in adj]
