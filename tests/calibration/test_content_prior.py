"""Content priors: recovery on a seeded synthetic bank whose b depends on known words and tags, honest SDs,
variants taking their parent's parameters, and bad input named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from adtbase.errors import InputError
from calibration import fit_content_prior

HARD = ["integral", "eigenvalue", "theorem", "entropy", "quantum"]
EASY = ["apple", "colour", "river", "friend", "market"]
FILL = ["the", "which", "of", "following", "is", "a", "what", "statement", "best", "describes"]


def synthetic(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Items whose b = hard words - easy words + a domain effect + noise (SD 0.3)."""
    domains = np.array(["math", "law", "biology"])
    effect = {"math": 1.0, "law": 0.0, "biology": -1.0}
    rows, b = [], []
    for i in range(n):
        nh, ne = rng.integers(0, 4), rng.integers(0, 4)
        words = list(rng.choice(FILL, 8)) + list(rng.choice(HARD, nh)) + list(rng.choice(EASY, ne))
        rng.shuffle(words)
        dom = str(rng.choice(domains))
        rows.append({"item_id": f"it_{i:05d}", "question": " ".join(words) + "?", "choices": ["A", "B", "C", "D"],
                     "n_choices": 4, "item_type": "mc", "generator": None, "parent_item_id": None, "domain": dom})
        b.append(0.8 * nh - 0.8 * ne + effect[dom] + rng.normal(0, 0.3))
    return pd.DataFrame(rows), np.array(b)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(7)
    items, b = synthetic(900, rng)
    train, test = slice(0, 600), slice(600, 900)
    cp = fit_content_prior(items.iloc[train], b[train], rng=np.random.default_rng(1))
    return cp, items.iloc[test].reset_index(drop=True), b[test], items, b


def test_recovers_b_from_words_and_tags(fitted):
    cp, test_items, b_test, _, _ = fitted
    pred = cp.predict(test_items)
    assert spearmanr(pred.b, b_test)[0] > 0.85
    assert not pred.from_parent.any()


def test_sd_is_calibrated(fitted):
    cp, test_items, b_test, _, _ = fitted
    pred = cp.predict(test_items)
    inside = np.mean(np.abs(pred.b - b_test) < 2 * pred.b_sd)
    assert 0.9 <= inside <= 0.99
    assert 0.25 < cp.b_sd_ < 0.8     # noise SD 0.3 plus what the model misses, not its training error


def test_variant_takes_parent_b(fitted):
    cp, _, _, items, b = fitted
    variant = items.iloc[[700]].copy()
    variant["parent_item_id"] = items["item_id"].iloc[3]    # a fitted item
    variant["question"] = "completely different words about apple"
    pred = cp.predict(variant)
    assert pred.from_parent[0]
    assert pred.b[0] == pytest.approx(b[3])
    orphan = variant.assign(parent_item_id="it_unknown")
    assert not cp.predict(orphan).from_parent[0]


def test_log_a_prior_when_given():
    rng = np.random.default_rng(3)
    items, b = synthetic(300, rng)
    log_a = 0.2 * rng.normal(size=300)
    cp = fit_content_prior(items, b, log_a, rng=np.random.default_rng(0))
    pred = cp.predict(items.iloc[:5])
    assert pred.log_a is not None and pred.log_a_sd is not None and np.all(pred.log_a_sd > 0)


def test_bad_input_named():
    rng = np.random.default_rng(0)
    items, b = synthetic(50, rng)
    with pytest.raises(InputError, match="calibrated items"):
        fit_content_prior(items, np.full(50, np.nan), rng=rng)
    with pytest.raises(InputError) as err:
        fit_content_prior(items, b[:40], b[:30], rng=rng, features=("words", "pixels"))
    msg = str(err.value)   # every problem at once
    assert "b has 40 values for 50 items" in msg and "log_a has 30" in msg and "'pixels'" in msg


def key_cue_bank(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Items alike in their words whose b is -1 when the key is the longest option, +1 otherwise (noise SD 0.3):
    only a model that knows which option is the key can learn it."""
    rows, b = [], []
    for i in range(n):
        lens = rng.permutation([3, 5, 7, 9])
        key = int(rng.integers(4))
        choices = [" ".join(rng.choice(FILL, int(m))) for m in lens]
        rows.append({"item_id": f"it_{i:05d}", "question": " ".join(rng.choice(FILL, 10)) + "?", "choices": choices,
                     "answer": "ABCD"[key], "n_choices": 4, "item_type": "mc", "parent_item_id": None})
        b.append((-1.0 if lens[key] == 9 else 1.0) + rng.normal(0, 0.3))
    return pd.DataFrame(rows), np.array(b)


def test_learns_a_planted_key_length_cue():
    items, b = key_cue_bank(500, np.random.default_rng(11))
    train, test = slice(0, 350), slice(350, 500)
    held_out, truth = items.iloc[test].reset_index(drop=True), b[test]
    longest = held_out.apply(lambda r: len(r["choices"]["ABCD".index(r["answer"])]) == max(map(len, r["choices"])),
                             axis=1).to_numpy()
    cp = fit_content_prior(items.iloc[train], b[train], rng=np.random.default_rng(2))
    pred = cp.predict(held_out).b
    assert pred[longest].mean() < pred[~longest].mean() - 1.0
    assert spearmanr(pred, truth)[0] > 0.5
    assert cp.stack_model is not None and cp.b_sd_ < 1.0     # the SD knows the cue is learned
    text_only = fit_content_prior(items.iloc[train], b[train], rng=np.random.default_rng(2),
                                  features=("words", "chars", "stats"))
    assert text_only.stack_model is None
    assert abs(spearmanr(text_only.predict(held_out).b, truth)[0]) < 0.3    # the text alone does not show the key
