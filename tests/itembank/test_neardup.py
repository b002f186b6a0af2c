"""The bank's near-duplicate index (itembank.neardup): planted copies are found, nothing matches itself,
batches see earlier batches, indexing is incremental and persistent, and migration 002 leaves an existing
bank's stored hashes alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError, ItemNotFound
from itembank import ImportOptions, neardup, open_bank

PASSAGE = ("This question refers to the following information. The harvest failed three years running, grain prices "
           "tripled in the towns, and the council ordered the granaries opened to every household that could show a "
           "ration card issued before the winter. ")
EN = [
    ("Which planet of the solar system is known as the red planet by astronomers?", ["Mars", "Venus", "Jupiter", "Saturn"]),
    ("What is the chemical symbol of gold in the periodic table of elements?", ["Au", "Ag", "Gd", "Go"]),
    ("In which year did the first crewed landing on the Moon take place, under Apollo 11?", ["1969", "1959", "1972", "1965"]),
    ("Which organ of the human body produces insulin to regulate blood sugar levels?", ["Pancreas", "Liver", "Kidney", "Spleen"]),
    ("Which of the following is true?", ["A cat is a mammal", "A cat is a bird", "A cat is a fish", "A cat is a plant"]),
    (PASSAGE + "The passage describes a response to", ["A famine", "A war", "An epidemic", "A flood"]),
    ("A train travels 120 kilometres in 2 hours. What is its average speed in kilometres per hour?", ["60", "40", "240", "120"]),
]
ZH = [
    ("下列哪一项是中国的首都城市，也是全国的政治和文化中心？", ["北京", "上海", "广州", "深圳"]),
    ("水在标准大气压下的沸点是多少摄氏度，这是物理课上学过的常识？", ["100", "90", "80", "120"]),
    ("唐代诗人李白被后人称为什么，他的诗歌以豪放飘逸著称？", ["诗仙", "诗圣", "诗鬼", "诗佛"]),
]
UNRELATED = [
    ("Which of the following is true?", ["Water boils at 100 C at sea level", "Ice is hotter than steam",
                                         "Iron floats on water", "The sun orbits the earth"]),
    ("Who wrote the novel Pride and Prejudice, published in the early nineteenth century?", ["Austen", "Bronte", "Eliot", "Dickens"]),
    (PASSAGE + "Which group did the order favour?", ["Households registered before the winter", "Newcomers to the towns",
                                                    "Grain merchants", "The council's members"]),
]


def write(path: Path, rows: list[tuple[str, list[str]]], prefix: str) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for k, (q, ch) in enumerate(rows):
            f.write(json.dumps({"id": f"{prefix}{k}", "question": q, "choices": ch, "answer": "A"}, ensure_ascii=False) + "\n")
    return path


def load(bank: Any, tmp: Path, rows: list[tuple[str, list[str]]], source: str, **opts: Any) -> list[str]:
    bank.import_items([write(tmp / f"{source}.jsonl", rows, source)], ImportOptions(source=source, **opts))
    return [bank.resolve(f"{source}:{source}{k}") for k in range(len(rows))]


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "nd.duckdb"
    with open_bank(path, create=True) as bank:
        ids = load(bank, tmp_path, EN + ZH, "pub")
        assert bank.index_near_duplicates() == len(ids)
    return path, ids


def pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["item_id"], frame["match_id"], strict=True))


def test_planted_exact_and_near_copies_are_found_in_english_and_chinese(seeded: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, src = seeded
    copies = [
        (EN[0][0], ["Venus", "Mars", "Saturn", "Jupiter"]),                                   # exact, options shuffled
        ("Which planet of the solar system is called the red planet by astronomers?", EN[0][1][::-1]),  # near
        ("A train travels 150 kilometres in 3 hours. What is its mean speed in kilometres per hour?",
         ["50", "45", "450", "150"]),                                                        # numbers changed
        ("下列哪一项是中国的首都城市，也是全国的政治和经济中心？", ["上海", "北京", "深圳", "广州"]),  # zh near
        ("唐代诗人李白被后人称为什么，他的诗歌以豪放著称？", ["诗圣", "诗仙", "诗佛", "诗鬼"]),        # zh, words dropped
        (EN[1][0], ["Au", "Ag", "Pt", "Pb"]),                                                 # equal long question
    ]
    want = [src[0], src[0], src[6], src[7], src[9], src[1]]
    with open_bank(path) as bank:
        ids = load(bank, tmp_path, copies + UNRELATED, "drafts", origin="model-generated", review_state="draft")
        found = bank.near_duplicates(ids)
    got = pairs(found)
    for i, s in zip(ids, want, strict=False):  # the unrelated rows come last
        assert (i, s) in got
    rules = dict(zip(zip(found["item_id"], found["match_id"], strict=True), found["rule"], strict=True))
    assert rules[(ids[0], src[0])] == "text" and rules[(ids[5], src[1])] == "question"
    assert rules[(ids[2], src[6])] == "near"
    # a short generic stem with other choices, an unrelated question, another question on a shared passage: no match
    assert not set(found["item_id"]) & set(ids[len(copies):])
    assert ((found["similarity"] > 0) & (found["similarity"] <= 1)).all()


def test_no_item_matches_itself_and_a_batch_pair_is_found_from_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "b.duckdb"
    rows = [EN[2], (EN[2][0].replace("take place", "happen"), EN[2][1]), EN[3]]
    with open_bank(path, create=True) as bank:
        ids = load(bank, tmp_path, rows, "batch", review_state="draft")
        found = bank.near_duplicates(ids + ids[:1])  # a repeated id is asked once
    assert (found["item_id"] != found["match_id"]).all()
    assert pairs(found) == {(ids[0], ids[1]), (ids[1], ids[0])}


def test_a_later_batch_is_checked_against_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "b.duckdb"
    with open_bank(path, create=True) as bank:
        first = load(bank, tmp_path, ZH, "batch1", review_state="draft")
        assert bank.near_duplicates(first).empty
        second = load(bank, tmp_path, [("唐代诗人李白被后人称为什么？他的诗歌以豪放飘逸闻名。", ["诗仙", "诗圣", "诗鬼", "诗佛"])],
                      "batch2", review_state="draft")
        found = bank.near_duplicates(second)
    assert pairs(found) == {(second[0], first[2])}


def test_indexing_is_incremental_and_survives_reopening(seeded: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, src = seeded
    with open_bank(path) as bank:
        before = bank.execute("SELECT item_id, text_key FROM near_dup_items ORDER BY item_id").fetchall()
        n_bands = bank.execute("SELECT count(*) FROM near_dup_bands").fetchall()[0][0]
        assert bank.index_near_duplicates() == 0                      # nothing new: nothing touched
        new = load(bank, tmp_path, UNRELATED, "more")
        assert bank.index_near_duplicates(new[:1]) == 1               # only the item asked for
        assert bank.index_near_duplicates() == len(new) - 1           # then the other new ones
        rows = bank.execute("SELECT item_id, text_key FROM near_dup_items ORDER BY item_id").fetchall()
        assert [r for r in rows if r[0] not in new] == before         # old rows as they were
        assert len(rows) == len(src) + len(new)                       # one row per item, none twice
        assert bank.execute("SELECT count(*) FROM near_dup_bands").fetchall()[0][0] == n_bands + len(new) * neardup.N_BANDS
    with open_bank(path) as bank:
        assert bank.index_near_duplicates() == 0
        copy = load(bank, tmp_path, [(EN[3][0].replace("regulate", "control"), EN[3][1])], "late")
        assert bank.index_near_duplicates(copy) == 1
        found = bank.near_duplicates(copy)
    assert pairs(found) == {(copy[0], src[3])}


def test_a_changed_scheme_rebuilds_the_index(seeded: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    path, src = seeded
    monkeypatch.setattr(neardup, "SCHEME", "test-other-scheme")
    with open_bank(path) as bank:
        assert bank.index_near_duplicates() == len(src)
        assert bank.execute("SELECT DISTINCT scheme FROM near_dup_items").fetchall() == [("test-other-scheme",)]


def test_leaks_name_the_public_source(seeded: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, src = seeded
    with open_bank(path) as bank:
        own = load(bank, tmp_path, [EN[4]], "gen", origin="template")   # a template item is not public
        ids = load(bank, tmp_path, [(EN[0][0], ["Mars", "Venus", "Pluto", "Saturn"]),
                                    (EN[4][0], EN[4][1][::-1])], "drafts", origin="model-generated",
                   review_state="draft")
        found = bank.near_duplicates(ids)
        leak = bank.leaks(found)
    assert set(zip(leak["item_id"], leak["match_id"], leak["source"], strict=True)) == {
        (ids[0], src[0], "pub"), (ids[1], src[4], "pub")}
    assert (ids[1], own[0]) in pairs(found)                              # a near duplicate, not a leak
    assert set(found[found["item_id"] == ids[1]]["match_id"]) == {src[4], own[0]}


def test_bad_input_is_named(seeded: tuple[Path, list[str]]) -> None:
    path, src = seeded
    with open_bank(path) as bank:
        with pytest.raises(ItemNotFound, match="it_nope"):
            bank.near_duplicates([src[0], "it_nope"])
        with pytest.raises(InputError, match="threshold"):
            bank.near_duplicates(src, threshold=1.5)
        assert bank.near_duplicates([]).empty


def test_migration_002_on_an_existing_bank_keeps_its_hashes(tmp_path: Path) -> None:
    """A bank written before 002 (its tables and record removed) gets the migration on open; the items' content
    hashes, the snapshot id and a stored form's content hash stay as they were, and so does indexing."""
    path = tmp_path / "old.duckdb"
    with open_bank(path, create=True) as bank:
        ids = load(bank, tmp_path, EN, "pub")
        bank.save_form("f1", ids[:3], spec={"strategy": "random"}, strategy="random", seed=1,
                       snapshot_id=bank.snapshot_id(), calibration_id=None, objectives={}, content_hash="h-f1",
                       n_uncalibrated=3)
        bank.conn.execute("DROP TABLE near_dup_bands")
        bank.conn.execute("DROP TABLE near_dup_items")
        bank.conn.execute("DELETE FROM schema_migrations WHERE room = 'itembank' AND version = 2")
        hashes = bank.execute("SELECT item_id, content_hash FROM items ORDER BY item_id").fetchall()
        snap, form = bank.snapshot_id(), bank.form("f1")
    with open_bank(path) as bank:
        assert bank.execute("SELECT count(*) FROM schema_migrations WHERE room = 'itembank' AND version = 2"
                            ).fetchall()[0][0] == 1
        assert bank.execute("SELECT item_id, content_hash FROM items ORDER BY item_id").fetchall() == hashes
        assert bank.snapshot_id() == snap and bank.form("f1") == form
        assert bank.index_near_duplicates() == len(ids)
        bank.near_duplicates(ids)
        assert bank.snapshot_id() == snap  # the index is derived data, outside the snapshot


def test_signatures_estimate_jaccard_and_ignore_option_order(rng: np.random.Generator) -> None:
    a = neardup.compared_text(EN[0][0], EN[0][1])
    assert a == neardup.compared_text(EN[0][0].upper(), EN[0][1][::-1])
    b = neardup.compared_text(EN[0][0].replace("known as", "called"), EN[0][1])
    true = neardup.jaccard(neardup.shingle_set(a), neardup.shingle_set(b))
    sig = neardup.signatures([a, b])
    est = float(np.mean(sig[0] == sig[1]))
    assert 0.5 < true < 0.95 and abs(est - true) < 0.2
    keys = neardup.band_keys(sig)
    assert keys.shape == (2, neardup.N_BANDS) and (keys[0] == keys[1]).any()
    assert neardup.shingle_set("12 apples") == neardup.shingle_set("345 apples")   # numbers read alike


def test_items_without_choices_are_compared_on_their_question(tmp_path: Path) -> None:
    path = tmp_path / "open.duckdb"
    rows = [{"id": "a", "question": "Write the string \"qrydgbbhbqxzlvyl\" in reverse order, one letter at a time.",
             "answer": "lyvlzxqbhbbgdyrq", "type": "open"},
            {"id": "b", "question": "Write the string \"qrydgbbhbqxzlvyl\" in reverse order, letter by letter.",
             "answer": "lyvlzxqbhbbgdyrq", "type": "open"},
            {"id": "c", "question": "How many days are there between 3 March 2001 and 9 May 2001?", "answer": "67",
             "type": "numeric"}]
    src = tmp_path / "open.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="open"))
        ids = [bank.resolve(f"open:{k}") for k in "abc"]
        found = bank.near_duplicates(ids)
    assert pairs(found) == {(ids[0], ids[1]), (ids[1], ids[0])}


def test_siblings_of_one_template_are_not_near_duplicates_but_copies_of_them_are(tmp_path: Path) -> None:
    path = tmp_path / "tpl.duckdb"
    q = 'Delete every "b" from the string "{}". What string remains?'
    rows = [{"id": "s1", "question": q.format("wbbwalodf"), "answer": "wwalodf", "type": "open", "origin": "template",
             "generator": "strings@1"},
            {"id": "s2", "question": q.format("wfzlbxvf"), "answer": "wfzlxvf", "type": "open", "origin": "template",
             "generator": "strings@1"},
            {"id": "other", "question": q.format("wfzlbxvq"), "answer": "wfzlxvq", "type": "open", "origin": "template",
             "generator": "strings@2"},
            {"id": "copy", "question": q.format("wbbwalodf").replace("What string", "Which string"), "answer": "wwalodf",
             "type": "open", "origin": "model-generated"}]
    src = tmp_path / "tpl.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="tpl"))
        ids = {k: bank.resolve(f"tpl:{k}") for k in ("s1", "s2", "other", "copy")}
        found = pairs(bank.near_duplicates([ids["s1"], ids["s2"], ids["copy"]]))
    assert (ids["s1"], ids["s2"]) not in found and (ids["s2"], ids["s1"]) not in found   # siblings
    assert (ids["s2"], ids["other"]) in found                                            # another generator's
    assert (ids["copy"], ids["s1"]) in found and (ids["s1"], ids["copy"]) in found       # a copy of one


def test_shingles_of_mixed_languages_keep_each_texts_run_in_place() -> None:
    texts = ["hello world 12", "下列哪一项是中国的首都", "ab", "中", "another english text"]
    h, starts = neardup.shingle_hashes(texts)
    ends = [*starts[1:], len(h)]
    assert [neardup.shingle_size(t) for t in texts] == [neardup.K, neardup.K_ZH, neardup.K, neardup.K_ZH, neardup.K]
    for t, a, b in zip(texts, starts, ends, strict=True):
        alone, _ = neardup.shingle_hashes([t])
        assert (h[a:b] == alone).all()
    assert ends[1] - starts[1] == len(texts[1]) - neardup.K_ZH + 1   # every 2-gram of the Chinese text


def test_a_check_inside_the_callers_transaction_writes_with_it(seeded: tuple[Path, list[str]], tmp_path: Path) -> None:
    path, src = seeded
    with open_bank(path) as bank:
        ids = load(bank, tmp_path, [(EN[0][0], EN[0][1][::-1])], "drafts", review_state="draft")
        with pytest.raises(RuntimeError, match="qc failed"), bank.transaction():
            assert pairs(bank.near_duplicates(ids)) == {(ids[0], src[0])}
            raise RuntimeError("qc failed")
        assert bank.execute("SELECT count(*) FROM near_dup_items WHERE item_id = ?", ids).fetchall()[0][0] == 0
        with bank.transaction():
            bank.near_duplicates(ids)
        assert bank.index_near_duplicates() == 0
