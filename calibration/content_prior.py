"""Content-based item priors: predict a new item's difficulty (and log discrimination) from its content.

``fit_content_prior(items, b, log_a=None, rng=...)`` fits, on the bank's calibrated items, a ridge regression
on TF-IDF word (1-2) and character (3-5, within words) n-grams of the question and its choices, a few text
statistics (length, digit and maths-symbol share, choice lengths), and one-hot item type, number of choices,
generator, source and every tag column. With the ``cues`` block (on by default) a second stage stacks on it:
gradient-boosted trees on the ridge's out-of-fold b, the text statistics, the categories (target-encoded,
cross-fitted) and dense cues of what makes an item easy or hard for a model, most about the key among its
options (is it the longest, its length rank, its word overlap with the question and with the other options,
is it the middle of numeric options, "none of the above"), plus numbers, LaTeX and negations in the question;
the ridge then also reads character n-grams of the key's own text.
``ContentPrior.predict(items)`` gives each item's prior mean and SD. The SD is the root mean squared
out-of-fold residual of the same model (K-fold inside the fit, grouped when ``groups`` is given, e.g.
near-duplicate components), so it is what the model really misses on items it has not seen, not its training
error: it is meant to become the item's prior in calibration. Every feature comes from the item itself (text,
key, tags, type, generator, source) or from the fitted items' b; none from responses.

A variant (``parent_item_id`` naming an item the model was fitted on) takes its parent's parameters, with
the SD of the fitted variants' own differences from their parents when at least ``MIN_VARIANTS`` of them
were fitted, else the content model's SD (no evidence that a variant is closer than that).

Pure: a frame in, arrays out; no bank access. scikit-learn loads on first use of this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from adtbase.errors import InputError, NotFitted
from itembank import COLUMN_KEYS, LETTERS

CONTENT_FEATURES = ("words", "chars", "stats", "tags", "meta", "cues")   # feature blocks, all on by default
MIN_VARIANTS = 10          # fitted variants needed before their spread replaces the model's SD
CV_FOLDS = 5
ALPHAS = (10.0, 30.0, 100.0)                 # ridge penalties tried (inner CV picks one)
# Item-frame columns that are neither content nor tags (states, counts, bank bookkeeping).
_NOT_TAGS = frozenset(COLUMN_KEYS) | {
    "question", "choices", "answer", "key", "content_hash", "source_version", "license", "generator_params",
    "parent_item_id", "declared_band", "import_batch", "created_at", "retired_reason", "n_choices",
    "calibrated_b", "a", "b", "c", "d", "first_exposure_round", "last_exposure_round", "first_exposed_at",
    "last_exposed_at", "prompt", "rubric", "answer_format", "scoring"}
_META = ("item_type", "generator", "source", "origin", "language")
_MATH = re.compile(r"[=+\-*/^\\$%<>()\[\]{}]")
_WORD = re.compile(r"[a-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NEGATION = re.compile(r"\b(?:not|except|least|false|incorrect|never)\b", re.IGNORECASE)
_CATCH_ALL = re.compile(r"\b(?:none|all|both|neither) of\b", re.IGNORECASE)
_LATEX = re.compile(r"\\[a-zA-Z]+|\$|\^|_\{")
# Dense cues of what makes an item easy or hard for a model, most about the key among its options.
CUE_NAMES = ("numbers", "latex", "negation", "key_longest", "key_len_rank", "key_len_rel", "key_q_overlap",
             "key_pos", "key_sim_max", "option_sim", "key_numeric", "key_num_middle", "key_catch_all",
             "catch_all", "key_unique_words", "option_len_cv", "has_key")


def _key_index(answer: object, choices: Sequence[object]) -> int:
    """The key's position among the choices (a letter, or the key's own text), -1 when unknown."""
    a = "" if answer is None else str(answer).strip()
    if len(a) == 1 and a.upper() in LETTERS[:len(choices)]:
        return LETTERS.index(a.upper())
    texts = [str(c).strip() for c in choices]
    return texts.index(a) if a in texts else -1


def _rank(values: NDArray, k: int) -> float:
    """Where values[k] stands among the values, -0.5 (lowest) .. 0.5 (highest), ties shared."""
    below, ties = (values < values[k]).sum(), (values == values[k]).sum() - 1
    return float((below + 0.5 * ties) / (len(values) - 1) - 0.5)


def _item_cues(question: str, choices: object, answer: object) -> list[float]:
    cue = dict.fromkeys(CUE_NAMES, 0.0)
    cue["numbers"] = float(np.log1p(len(_NUMBER.findall(question))))
    cue["latex"] = float(np.log1p(len(_LATEX.findall(question))))
    cue["negation"] = float(bool(_NEGATION.search(question)))
    if isinstance(choices, (list, tuple, np.ndarray)) and len(choices) >= 2:
        opts = [str(c).strip() for c in choices]
        n, k = len(opts), _key_index(answer, opts)
        lens = np.array([len(o) for o in opts], float)
        words = [set(_WORD.findall(o.lower())) for o in opts]
        sim = np.array([[len(u & v) / max(len(u | v), 1) for v in words] for u in words])
        np.fill_diagonal(sim, 0.0)
        cue["option_len_cv"] = float(lens.std() / max(lens.mean(), 1.0))
        cue["option_sim"] = float(sim.sum() / (n * (n - 1)))
        cue["catch_all"] = float(any(_CATCH_ALL.search(o) for o in opts))
        if k >= 0:
            q_words = set(_WORD.findall(question.lower()))
            overlap = len(words[k] & q_words) / max(len(words[k]), 1)
            nums = [_NUMBER.search(o.replace(",", "")) for o in opts]
            others = set().union(*(w for i, w in enumerate(words) if i != k))
            cue.update(has_key=1.0, key_longest=float(lens[k] == lens.max() and (lens == lens[k]).sum() == 1),
                       key_len_rank=_rank(lens, k), key_len_rel=float(np.log((lens[k] + 1) / (lens.mean() + 1))),
                       key_q_overlap=overlap, key_pos=k / (n - 1) - 0.5, key_sim_max=float(sim[k].max()),
                       key_catch_all=float(bool(_CATCH_ALL.search(opts[k]))),
                       key_unique_words=len(words[k] - others) / max(len(words[k]), 1))
            if all(m is not None for m in nums):     # every option a number: is the key the middle value?
                values = np.array([float(m.group()) for m in nums if m is not None])
                cue.update(key_numeric=1.0, key_num_middle=1.0 - 2.0 * abs(_rank(values, k)))
    return [cue[c] for c in CUE_NAMES]


def _key_texts(items: pd.DataFrame) -> list[str]:
    if not {"choices", "answer"} <= set(items.columns):
        return ["no key"] * len(items)
    out = []
    for c, a in zip(items["choices"], items["answer"], strict=True):
        opts = [str(x) for x in c] if isinstance(c, (list, tuple, np.ndarray)) else []
        k = _key_index(a, opts) if opts else -1
        out.append("no key" if k < 0 else "key " + opts[k])    # never empty: a vocabulary even without keys
    return out


def _cues(items: pd.DataFrame) -> NDArray:
    q = items["question"].fillna("").astype(str) if "question" in items.columns else pd.Series("", index=items.index)
    choices = items["choices"] if "choices" in items.columns else pd.Series(None, index=items.index, dtype=object)
    answer = items["answer"] if "answer" in items.columns else pd.Series(None, index=items.index, dtype=object)
    rows = [_item_cues(qq, cc, aa) for qq, cc, aa in zip(q, choices, answer, strict=True)]
    return np.array(rows, float).reshape(len(items), len(CUE_NAMES))


class PriorPrediction(NamedTuple):
    """Per-item prior: mean and SD of b and (when fitted) of log a; ``from_parent`` marks variants."""

    b: NDArray
    b_sd: NDArray
    log_a: NDArray | None
    log_a_sd: NDArray | None
    from_parent: NDArray


def _text(items: pd.DataFrame) -> pd.Series:
    q = items["question"].fillna("").astype(str) if "question" in items.columns else pd.Series("", index=items.index)
    if "choices" not in items.columns:
        return q
    ch = items["choices"].map(lambda c: " | ".join(map(str, c)) if isinstance(c, (list, tuple, np.ndarray)) else "")
    return q + " || " + ch


def _stats(items: pd.DataFrame) -> NDArray:
    """Text statistics: log lengths, digit / maths / upper-case shares, choice length mean and spread."""
    q = items["question"].fillna("").astype(str) if "question" in items.columns else pd.Series("", index=items.index)
    n = q.str.len().to_numpy(float)
    share = [q.map(lambda s, f=f: sum(map(f, s)) / max(len(s), 1)).to_numpy(float)
             for f in (str.isdigit, str.isupper, lambda ch: bool(_MATH.match(ch)))]
    if "choices" in items.columns:
        lens = items["choices"].map(lambda c: [len(str(x)) for x in c] if isinstance(c, (list, tuple, np.ndarray))
                                    else [0])
        cm = lens.map(lambda v: float(np.mean(v)) if len(v) else 0.0).to_numpy(float)
        cs = lens.map(lambda v: float(np.std(v)) if len(v) else 0.0).to_numpy(float)
        digit_choices = items["choices"].map(
            lambda c: float(np.mean([any(ch.isdigit() for ch in str(x)) for x in c]))
            if isinstance(c, (list, tuple, np.ndarray)) and len(c) else 0.0).to_numpy(float)
    else:
        cm = cs = digit_choices = np.zeros(len(items))
    words = q.str.split().map(len).to_numpy(float)
    return np.column_stack([np.log1p(n), np.log1p(words), *share, np.log1p(cm), np.log1p(cs), digit_choices])


def _categorical(items: pd.DataFrame, blocks: Sequence[str]) -> pd.DataFrame:
    cols: dict[str, pd.Series] = {}
    if "meta" in blocks:
        for c in _META:
            if c in items.columns:
                cols[c] = items[c]
        if "n_choices" in items.columns:
            cols["n_choices"] = items["n_choices"]
    if "tags" in blocks:
        for c in items.columns:
            if c not in _NOT_TAGS and not c.startswith(("exposure", "se_", "n_")) and items[c].dtype == object:
                cols[f"tag:{c}"] = items[c]
    frame = pd.DataFrame(cols, index=items.index)
    return frame.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))


def _pipeline(blocks: Sequence[str], cat_cols: Sequence[str]) -> Any:
    """The feature transformer: one block per feature family, sparse output."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, Any]] = []
    if "words" in blocks:
        parts.append(("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=100_000,
                                               sublinear_tf=True), "text"))
    if "chars" in blocks:
        parts.append(("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3,
                                               max_features=100_000, sublinear_tf=True), "text"))
    if "cues" in blocks:     # the key's own text: the n-grams above cannot tell the key from the distractors
        parts.append(("key", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=3, max_features=20_000,
                                             sublinear_tf=True), "key_text"))
    if "stats" in blocks:
        parts.append(("stats", StandardScaler(), [f"stat{i}" for i in range(_N_STATS)]))
    if cat_cols:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=2), list(cat_cols)))
    if not parts:
        raise InputError("content prior: no features to fit on (features left no block and the items have no tags)")
    return ColumnTransformer(parts, sparse_threshold=1.0)


_N_STATS = 8


def _design(items: pd.DataFrame, blocks: Sequence[str]) -> pd.DataFrame:
    frame = _categorical(items, blocks)
    frame["text"] = _text(items).to_numpy()
    st = _stats(items)
    for i in range(_N_STATS):
        frame[f"stat{i}"] = st[:, i]
    if "cues" in blocks:
        cues = _cues(items)
        frame["key_text"] = _key_texts(items)
        for i in range(len(CUE_NAMES)):
            frame[f"cue{i}"] = cues[:, i]
    return frame.reset_index(drop=True)


def _numeric(x: pd.DataFrame) -> list[str]:
    return [c for c in x.columns if c.startswith(("stat", "cue"))]


def _stacker(cat_cols: Sequence[str], seed: int) -> Any:
    """The second stage: gradient-boosted trees on the ridge's prediction, the cues, the text statistics and
    the categories (target-encoded with the encoder's own cross-fitting, so no item sees its own b).
    Settings fixed up front, not tuned on MMLU-Pro's folds; no early stopping, so a fit on 10,000+ items
    behaves as one on fewer."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import TargetEncoder

    parts: list[tuple[str, Any, Any]] = [("num", "passthrough", ["ridge", *(f"stat{i}" for i in range(_N_STATS)),
                                                                  *(f"cue{i}" for i in range(len(CUE_NAMES)))])]
    if cat_cols:
        parts.append(("cat", TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=seed)),
                      list(cat_cols)))
    return make_pipeline(ColumnTransformer(parts), HistGradientBoostingRegressor(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40, early_stopping=False,
        random_state=seed))


@dataclass(frozen=True)
class ContentPrior:
    """A fitted content model: ``predict(items)`` gives each item's prior (see the module docstring)."""

    blocks: tuple[str, ...]
    cat_cols: tuple[str, ...]
    b_model: Any
    b_sd_: float
    log_a_model: Any
    log_a_sd_: float
    parent_b: dict[str, float]
    parent_log_a: dict[str, float]
    variant_b_sd_: float
    variant_log_a_sd_: float
    alpha_b_: float
    oof_b_: NDArray           # out-of-fold predictions of the fitted items' b (the SD's evidence)
    stack_model: Any = None   # second stage on the ridge's b (with "cues"), None: the ridge's b is the prior

    def predict(self, items: pd.DataFrame) -> PriorPrediction:
        if self.b_model is None:
            raise NotFitted("ContentPrior.predict: the model was not fitted (use fit_content_prior)")
        x = _design(items, self.blocks)
        for c in self.cat_cols:
            if c not in x.columns:
                x[c] = ""
        b = np.asarray(self.b_model.predict(x), float)
        if self.stack_model is not None:
            b = np.asarray(self.stack_model.predict(x.assign(ridge=b)), float)
        b_sd = np.full(len(items), self.b_sd_)
        la = None if self.log_a_model is None else np.asarray(self.log_a_model.predict(x), float)
        la_sd = None if la is None else np.full(len(items), self.log_a_sd_)
        parents = (items["parent_item_id"].to_numpy(dtype=object) if "parent_item_id" in items.columns
                   else np.full(len(items), None, dtype=object))
        from_parent = np.array([p in self.parent_b for p in parents], bool)
        for i in np.flatnonzero(from_parent):
            b[i], b_sd[i] = self.parent_b[parents[i]], self.variant_b_sd_
            if la is not None and la_sd is not None:
                la[i], la_sd[i] = self.parent_log_a[parents[i]], self.variant_log_a_sd_
        return PriorPrediction(b, b_sd, la, la_sd, from_parent)


def _check(items: pd.DataFrame, b: NDArray, log_a: NDArray | None, groups: NDArray | None,
           blocks: Sequence[str]) -> None:
    problems = []
    if len(b) != len(items):
        problems.append(f"b has {len(b)} values for {len(items)} items")
    if log_a is not None and len(log_a) != len(items):
        problems.append(f"log_a has {len(log_a)} values for {len(items)} items")
    if groups is not None and len(groups) != len(items):
        problems.append(f"groups has {len(groups)} values for {len(items)} items")
    if "item_id" not in items.columns:
        problems.append("items have no 'item_id' column")
    unknown = sorted(set(blocks) - set(CONTENT_FEATURES))
    if unknown:
        problems.append(f"unknown feature block(s) {unknown}; known: {list(CONTENT_FEATURES)}")
    if problems:
        raise InputError("content prior: " + "; ".join(problems))
    n_ok = int(np.isfinite(b).sum())
    if n_ok < 2 * CV_FOLDS:
        raise InputError(f"content prior: {n_ok} calibrated items (finite b); at least {2 * CV_FOLDS} are needed "
                         "to fit and to measure the prior's SD by cross-validation")


def fit_content_prior(items: pd.DataFrame, b: ArrayLike, log_a: ArrayLike | None = None, *,
                      rng: np.random.Generator, groups: ArrayLike | None = None,
                      features: Sequence[str] = CONTENT_FEATURES) -> ContentPrior:
    """Fit b (and log a) on the items with a finite b; the SDs come from out-of-fold residuals.

    ``items``: the bank's item frame (``item_id``, ``question``, ``choices``, ``n_choices``, ``item_type``,
    ``generator``, ``parent_item_id``, tag columns; missing ones are skipped). ``groups``: items that must
    share a fold in the inner CV (near-duplicate components); default: shuffled K-fold.
    """
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold, KFold
    from sklearn.pipeline import Pipeline

    b_arr = np.asarray(b, float)
    la_arr = None if log_a is None else np.asarray(log_a, float)
    g_arr = None if groups is None else np.asarray(groups)
    blocks = tuple(features)
    _check(items, b_arr, la_arr, g_arr, blocks)
    keep = np.isfinite(b_arr) & (np.ones(len(b_arr), bool) if la_arr is None else np.isfinite(la_arr))
    fit_items = items.loc[keep].reset_index(drop=True)
    x = _design(fit_items, blocks)
    cat_cols = tuple(c for c in x.columns if c not in ("text", "key_text") and c not in _numeric(x))
    yb = b_arr[keep]
    seed = int(rng.integers(2**31 - 1))
    if g_arr is None:
        splits = list(KFold(CV_FOLDS, shuffle=True, random_state=seed).split(x))
    else:
        splits = list(GroupKFold(CV_FOLDS).split(x, groups=g_arr[keep]))
    # The features (vocabularies, IDF weights, scales, categories) see no b, so they are fitted once on every
    # fitted item and shared by the inner folds: five times faster than refitting them per fold.
    feats = _pipeline(blocks, cat_cols).fit(x)
    xs = feats.transform(x).tocsr()

    def ridge(al: float) -> Any:
        return Ridge(alpha=al, solver="lsqr")

    def oof(y: NDArray, alphas: Sequence[float]) -> dict[float, NDArray]:
        out = {al: np.empty(len(y)) for al in alphas}
        for tr, te in splits:
            for al in alphas:
                out[al][te] = ridge(al).fit(xs[tr], y[tr]).predict(xs[te])
        return out

    # Penalty by the same folds; the chosen penalty's out-of-fold residuals give the SD (slightly optimistic
    # by the choice among len(ALPHAS) values, negligible next to thousands of residuals).
    trials = oof(yb, ALPHAS)
    alpha = min(trials, key=lambda al: float(np.mean((trials[al] - yb) ** 2)))
    b_model = Pipeline([("features", feats), ("ridge", ridge(alpha).fit(xs, yb))])
    oof_b, stack = trials[alpha], None
    if "cues" in blocks:
        # Stacking: the second stage learns from the ridge's out-of-fold b (what the ridge gives an unseen item),
        # and its own out-of-fold residuals over the same folds give the SD.
        from threadpoolctl import threadpool_limits

        z = x.assign(ridge=oof_b)
        oof_b = np.empty(len(yb))
        with threadpool_limits(1):    # the trees' OpenMP threads: one core, so adt calibrate and tests never
            for tr, te in splits:     # oversubscribe a small shared machine (the fit is serial anyway)
                oof_b[te] = _stacker(cat_cols, seed).fit(z.iloc[tr], yb[tr]).predict(z.iloc[te])
            stack = _stacker(cat_cols, seed).fit(z, yb)
    b_sd = float(np.sqrt(np.mean((oof_b - yb) ** 2)))
    la_model, la_sd = None, float("nan")
    if la_arr is not None:
        yla = la_arr[keep]
        la_model = Pipeline([("features", feats), ("ridge", ridge(alpha).fit(xs, yla))])
        la_sd = float(np.sqrt(np.mean((oof(yla, [alpha])[alpha] - yla) ** 2)))
    ids = fit_items["item_id"].astype(str).to_numpy()
    parent_b = dict(zip(ids, yb.tolist(), strict=True))
    parent_la = {} if la_arr is None else dict(zip(ids, la_arr[keep].tolist(), strict=True))
    vb_sd, vla_sd = b_sd, la_sd
    if "parent_item_id" in fit_items.columns:
        par = fit_items["parent_item_id"].to_numpy(dtype=object)
        with_parent = np.array([p in parent_b for p in par], bool)
        if with_parent.sum() >= MIN_VARIANTS:
            pb = np.array([parent_b[p] for p in par[with_parent]])
            vb_sd = float(np.sqrt(np.mean((yb[with_parent] - pb) ** 2)))
            if la_arr is not None:
                pla = np.array([parent_la[p] for p in par[with_parent]])
                vla_sd = float(np.sqrt(np.mean((la_arr[keep][with_parent] - pla) ** 2)))
    return ContentPrior(blocks, cat_cols, b_model, b_sd, la_model, la_sd, parent_b, parent_la, vb_sd, vla_sd,
                        alpha, oof_b, stack)
