"""``Bank.stats`` against a plain count over the item frame: both of its ways (per-value item bitsets, and the
join of tag rows) on a seeded bank with many-valued and missing tags, tags added after the import, retired
items, all three frequency tiers and filters on tag and column keys."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import itembank.bank as bank_mod
from itembank import ImportOptions, open_bank

DOMAINS = ["math", "physics", "law", "art", "music"]
ABILITIES = ["recall", "reason", "compute", "read"]
TIERS = ("low", "medium", "high")


@pytest.fixture(scope="module")
def bank_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(16)
    tmp = tmp_path_factory.mktemp("stats")
    rows = []
    for i in range(240):
        tags: dict[str, object] = {"domain": sorted(rng.choice(DOMAINS, size=rng.integers(1, 3), replace=False).tolist())}
        if rng.random() < 0.8:   # some items have no scenario
            tags["scenario"] = ["general", "industry", "safety"][rng.integers(0, 3)]
        if n := int(rng.integers(0, 4)):
            tags["ability"] = sorted(rng.choice(ABILITIES, size=n, replace=False).tolist())
        rows.append({"id": f"q{i}", "question": f"Item {i}: {rng.integers(10**6)}?", "choices": ["a", "b"], "answer": "A",
                     "language": "zh" if rng.random() < 0.3 else "en", "tags": tags})
    src = tmp / "items.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Exposure: 0-8 runs an item (tier_high_runs 5), so low, medium and high items.
    runs = rng.integers(0, 9, len(rows)) * (rng.random(len(rows)) < 0.5)
    item = np.repeat(np.arange(len(rows)), runs)
    model = np.concatenate([np.arange(r) for r in runs]).astype(int)
    resp = tmp / "r.parquet"
    pd.DataFrame({"model": [f"m{m}" for m in model], "qid": [f"q{i}" for i in item],
                  "score": rng.integers(0, 2, len(item)).astype(float)}).to_parquet(resp)
    path = tmp / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"), chunk_rows=100)
        bank.import_responses(resp, source="toy", model_col="model", item_col="qid", score_col="score")
        ids = [bank.resolve(f"toy:q{i}") for i in range(len(rows))]
        # Tags added after the import (rows out of item-key order), one a new value of an existing key.
        bank.tag(ids[::7], "domain", "law")
        bank.tag(ids[3::11], "domain", "history")
        # A publication: more than tier_high_publications (1) of them makes an item high.
        bank.save_form("f1", ids[200:210], spec={"size": 10}, strategy="random", seed=1, snapshot_id=bank.snapshot_id(),
                       calibration_id=None, objectives={}, content_hash="h", n_uncalibrated=10)
        bank.publish("f1", round_no=1)
        bank.publish("f1", round_no=2)
        bank.retire(ids[::13], reason="leaked")
    return path


def reference(frame: pd.DataFrame, by: list[str], filters: dict[str, list[str]] | None) -> pd.DataFrame:
    """The plain count: each non-retired item that passes the filters, once per combination of its values of the
    ``by`` keys (None where it has none), by frequency tier; groups sorted with None last."""
    def values(row: pd.Series, key: str) -> list:
        v = row.get(key)
        return [None] if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).split("|")

    counts: Counter = Counter()
    for _, row in frame.iterrows():
        if row["review_state"] == "retired":
            continue
        if any(not set(values(row, k)) & set(vs) for k, vs in (filters or {}).items()):
            continue
        for combo in itertools.product(*(values(row, k) for k in by)):
            counts[combo, row["frequency_tier"]] += 1
    groups = sorted({c for c, _ in counts}, key=lambda c: [(v is None, v or "") for v in c])
    out = pd.DataFrame([[*c, sum(counts[c, t] for t in TIERS), *(counts[c, t] for t in TIERS)] for c in groups],
                       columns=[*by, "items", *(f"freq_tier_{t}" for t in TIERS)])
    return out.astype({c: "int64" for c in out.columns[len(by):]})


CASES = [(["domain"], None), (["domain", "scenario"], None), (["scenario", "ability"], None),
         (["domain", "ability", "scenario"], None), (["domain", "domain"], None), (["industry"], None),
         (["domain", "scenario"], {"language": ["zh"]}), (["ability"], {"domain": ["law", "art"]}),
         (["domain", "scenario"], {"frequency_tier": ["medium", "high"], "ability": ["reason"]}),
         (["scenario"], {"review_state": ["approved"], "scenario": ["safety"]})]


@pytest.mark.parametrize(("by", "filters"), CASES)
def test_stats_both_ways_equal_the_plain_count(bank_path: Path, by: list[str], filters: dict | None) -> None:
    with open_bank(bank_path) as bank:
        frame = bank.items(include_retired=True)
        assert set(frame["frequency_tier"]) == set(TIERS) and (frame["review_state"] == "retired").any()
        want = reference(frame, by, filters)
        assert want["items"].sum() > 0
        for bitsets in (True, False):
            got = bank._stats(by, filters, bitsets=bitsets).df()
            got.columns = want.columns   # a key given twice comes out as domain, domain_1
            got = got.astype({c: object for c in by}).where(got.notna(), None)
            pd.testing.assert_frame_equal(got, want.astype({c: object for c in by}), check_dtype=True)
        pd.testing.assert_frame_equal(bank.stats(by, filters), bank._stats(by, filters, bitsets=True).df())


def test_tier_low_runs_counts_exposed_items_as_low(bank_path: Path, tmp_path: Path) -> None:
    """An exposed item within tier_low_runs is low, as an unexposed one is (the bitsets take the unexposed
    items' tier from the same rule)."""
    path = tmp_path / "copy.duckdb"
    path.write_bytes(bank_path.read_bytes())
    with open_bank(path) as bank:
        bank.set_setting("tier_low_runs", "2")
        frame = bank.items(include_retired=True)
        for by in (["domain", "scenario"], ["ability"]):
            want = reference(frame, by, None)
            for bitsets in (True, False):
                got = bank._stats(by, None, bitsets=bitsets).df().astype({c: object for c in by})
                pd.testing.assert_frame_equal(got.where(got.notna(), None), want.astype({c: object for c in by}))


def test_a_key_of_too_many_values_takes_the_join(bank_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_bank(bank_path) as bank:
        assert bank._bitsets_fit(["domain", "scenario"])
        assert not bank._bitsets_fit(["domain", "ability", "domain"])   # 3 x 7 x 5 x 7 combinations > 512
        monkeypatch.setattr(bank_mod, "STATS_BITSET_BYTES", 1000)
        assert not bank._bitsets_fit(["domain", "scenario"])
        pd.testing.assert_frame_equal(bank.stats(["domain", "scenario"]),
                                      bank._stats(["domain", "scenario"], None, bitsets=True).df())
        with pytest.raises(ValueError, match="tag keys only"):
            bank._stats(["domain", "language"], None, bitsets=True)


def test_tag_values_hold_the_distinct_pairs_of_the_tags(bank_path: Path, tmp_path: Path) -> None:
    """Migration 008's derived table, kept by every writer of tags (import, tag, edit), rebuilt by the upgrade of a
    bank from before it and carried by a snapshot; `stats --by` sizes its bitsets and a filter's values are
    checked from it."""
    import duckdb

    from adtbase.errors import TaxonomyError
    from itembank.snapshot import export, import_snapshot

    path = tmp_path / "copy.duckdb"
    path.write_bytes(bank_path.read_bytes())

    def pairs(conn: duckdb.DuckDBPyConnection) -> tuple[list, list]:
        kept = conn.execute("SELECT key, value FROM tag_values ORDER BY ALL").fetchall()
        return kept, conn.execute("SELECT DISTINCT key, value FROM item_tags ORDER BY ALL").fetchall()

    with open_bank(path) as bank:
        kept, tags = pairs(bank.conn)
        assert kept == tags and ("domain", "history") in kept   # history: a value tag() added after the import
        q1 = bank.resolve("toy:q1")
        assert bank.tag([q1, bank.resolve("toy:q2")], "industry", "energy", extend_taxonomy=True) == 2
        bank.set_review_state([q1], "draft", reason="to edit")
        # the new item's tags: its other pairs already kept, and a value no item had
        bank.edit_item(q1, reviewer="ann", question="Item 1, edited?", tags={"industry": ["energy", "mining"]})
        kept, tags = pairs(bank.conn)
        assert kept == tags and kept.count(("industry", "energy")) == 1 and ("industry", "mining") in kept
        assert bank.stats([], {"industry": ["energy"]})["items"].tolist() == [3]   # q1 (now rejected), q2, q1's edit
        with pytest.raises(TaxonomyError, match="energi"):
            bank.stats(["domain"], {"industry": ["energi"]})
        out = tmp_path / "export"
        export(bank, out)
    rebuilt = tmp_path / "rebuilt.duckdb"
    import_snapshot(out, rebuilt)
    with open_bank(rebuilt) as bank:
        assert pairs(bank.conn) == (kept, tags)
    conn = duckdb.connect(str(path))   # the bank as adt wrote it before 008
    conn.execute("DROP TABLE tag_values")
    conn.execute("DELETE FROM schema_migrations WHERE room = 'itembank' AND version = 8")
    conn.close()
    with open_bank(path) as bank:
        assert pairs(bank.conn) == (kept, tags)


def test_a_large_bank_takes_the_bitsets_a_small_one_the_join(bank_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = bank_mod.Bank._stats_bitsets

    def spy(self: bank_mod.Bank, *args: object) -> object:
        calls.append("bitsets")
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(bank_mod.Bank, "_stats_bitsets", spy)
    with open_bank(bank_path) as bank:
        small = bank.stats(["domain", "scenario"])
        assert calls == []                                   # 240 items: under STATS_BITSET_MIN_ITEMS
        monkeypatch.setattr(bank_mod, "STATS_BITSET_MIN_ITEMS", 240)
        pd.testing.assert_frame_equal(bank.stats(["domain", "scenario"]), small)
        assert calls == ["bitsets"]
