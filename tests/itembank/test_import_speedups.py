"""The import's fast paths give exactly what the plain code gives: the content hash's JSON text, and the
``tags`` column parsed in one pass before the row loop."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adtbase.errors import InputError
from itembank import ImportOptions, open_bank
from itembank.bank import Bank
from itembank.content import _ENCODER, content_hash, normalise
from itembank.importer import _loads, _parse_tags, _TagsProblem

TRICKY = ["", " ", "plain", "  two   spaces\tand\ttabs\n", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "第1题：1加2等于多少？",
          "quote \" backslash \\ slash /", "control \x00\x01\x1f\x7f", "\u2028line\u2029sep", "emoji 😀 🏳️‍🌈",
          "e\u0301 combining", "ﬁ ligature", "non\u00a0breaking\u3000ideographic space", "\ud800 lone surrogate",
          "tab\there", "<b>&amp;</b>", "'single'"]


def _reference(question, choices, answer):
    """content_hash as it was written before its fast path: the encoder on the whole list."""
    body = _ENCODER.encode([normalise(question), [normalise(c) for c in (choices or ())], answer or ""])
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.parametrize("question", TRICKY)
def test_content_hash_is_the_encoders_on_tricky_text(question):
    for choices in ([], None, TRICKY, ["A", "", " "], ["中文", "English"]):
        for answer in ("A", "", None, "1.5", "中"):
            if "\ud800" in question or any("\ud800" in c for c in choices or ()):
                with pytest.raises(UnicodeEncodeError):   # as before: a lone surrogate cannot be hashed
                    content_hash(question, choices, answer)
                continue
            assert content_hash(question, choices, answer) == _reference(question, choices, answer)


def test_content_hash_pinned():
    """Digests recorded from the code before the fast path (6c5149c): item ids of existing banks stay the same."""
    assert content_hash("Item 1: what is 2 plus 3?", ["5", "6", "4", "15"], "A") == \
        "f92104557000b0c8b2787ac48596c398a2b57d19925a6eff607c00dcf23fa369"
    assert content_hash(" 第1题：１加2 ", [], None) == "48a3367d7d1f9a1ab5ebc8c19c8b7390a468888a59807d1a70005cc2c293e532"
    assert content_hash('q"\\ \u2028', ["ｆｉ", "e\u0301"], "B") == \
        "e954def5722b27f4c8d91c48106fc009a4b26b14fdd5a723234149f777d0c776"


@pytest.mark.parametrize("text", ['{"a": 1}', ' \n{"a": [1, "x"]}\t', "[1, 2]", '"s"', "1", "null", "{", "{} {}",
                                  '{"a": 1} x', "\ufeff{}", "nan", "NaN", "1e999", '{"a": "\\u00e9"}', "", "   ",
                                  '{"a": 1, "a": 2}', "\u00a0{}"])
def test_loads_is_json_loads(text):
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as exc:
        with pytest.raises(json.JSONDecodeError) as got:
            _loads(text)
        assert (got.value.msg, got.value.pos) == (exc.msg, exc.pos)
        return
    got = _loads(text)
    assert got == expected or (got != got and expected != expected)


def _tags_before(raw):
    """The row loop's tag parsing before it moved to _parse_tags (itembank.importer at 6c5149c)."""
    from itembank.importer import _blank, _tag_values

    row_tags, problems = [], []
    if isinstance(raw, str) and raw.strip():
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            problems.append(("tags are not a JSON object", raw, "not a JSON object"))
            raw = None
    if isinstance(raw, dict):
        for tkey, tval in raw.items():
            row_tags.extend((str(tkey), v, "tags") for v in _tag_values(tval))
    elif not (_blank(raw) if not isinstance(raw, (list, np.ndarray)) else len(raw) == 0):
        problems.append(("tags are not a mapping", raw, "expected a mapping of key to value(s)"))
    return tuple(row_tags), problems


def test_parse_tags_matches_the_row_loop():
    column = ['{"domain": "d1", "ability": ["b", " a ", ""], "n": 3, "x": null, "e": "  "}', "", "  ", None,
              float("nan"), "[1, 2]", '"text"', "{not json", '{"a": 1} trailing', {"k": " v "}, [], ["x"],
              np.array([]), np.array(["x"]), 7, '{"a": {"b": 1}}', '{"k": "１２"}', '{"a": true, "b": 1.5}']
    parsed = _parse_tags(column)
    assert len(parsed) == len(column)
    for raw, got in zip(column, parsed, strict=True):
        triples, problems = _tags_before(raw)
        if problems:
            assert isinstance(got, _TagsProblem)
            kind, value, message = problems[0]
            assert (got.kind, got.message) == (kind, message)
            assert str(got.value) == str(value)
        else:
            assert got == triples


def _rows(n: int) -> pd.DataFrame:
    """n distinct MC items, English and Chinese, 1-4 tags each (an ability list on some), as a Parquet file has them."""
    abilities = [[], ["reasoning"], ["reasoning", "knowledge"]]
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(n)],
        "question": [f"第{i}题：{i}加1等于多少？" if i % 3 == 0 else f"Item {i}:  what is {i} plus 1?" for i in range(n)],
        "choices": [[str(i + 1), str(i), f" {i + 2} ", "ｆｕｌｌ"] for i in range(n)],
        "answer": ["A", "B", "C", "D"] * (n // 4) + ["A"] * (n % 4),
        "type": "mc",
        "tags": [json.dumps({"domain": "math", "scenario": ["general", "industry"][i % 2],
                             **({"ability": abilities[i % 3]} if i % 5 else {})}) for i in range(n)],
        "difficulty_band": [["easy", "medium", "hard", None][i % 4] for i in range(n)],
    })


def _contents(bank_path: Path) -> tuple[pd.DataFrame, list[tuple[str, str | None]]]:
    with open_bank(bank_path) as bank:
        items = bank.items().drop(columns=["created_at", "import_batch"], errors="ignore")
        aliases = [(f"r{i}", bank.resolve_alias("s", f"r{i}")) for i in range(40)]
    return items.sort_values("item_id").reset_index(drop=True), aliases


def test_chunks_give_the_bank_one_chunk_gives(tmp_path: Path) -> None:
    """Tags parsed a column at a time per chunk: chunks of 7 rows give the bank one chunk gives (with and without
    extend_taxonomy, here with nothing to extend)."""
    src = tmp_path / "items.parquet"
    _rows(40).to_parquet(src, index=False)
    got = []
    for name, chunk_rows, extend in (("one", 100_000, False), ("chunks", 7, False), ("extend", 7, True)):
        path = tmp_path / f"{name}.duckdb"
        with open_bank(path, create=True) as bank:
            rep = bank.import_items([src], ImportOptions(source="s", extend_taxonomy=extend), chunk_rows=chunk_rows)
        assert (rep.new_items, rep.new_aliases) == (40, 40)
        got.append(_contents(path))
    for items, aliases in got[1:]:
        pd.testing.assert_frame_equal(items, got[0][0])
        assert aliases == got[0][1]
    assert set(got[0][0]["scenario"]) == {"general", "industry"}


def test_problems_in_several_chunks_fail_the_import_with_all_of_them(tmp_path: Path) -> None:
    rows = _rows(30)
    rows.loc[4, "answer"] = "F"          # chunk 1
    rows.loc[20, "tags"] = "{not json"   # chunk 3
    rows.loc[29, "choices"] = ["only one"]
    src = tmp_path / "bad.parquet"
    rows.to_parquet(src, index=False)
    path = tmp_path / "b.duckdb"
    with open_bank(path, create=True) as bank, pytest.raises(InputError) as err:
        bank.import_items([src], ImportOptions(source="s"), chunk_rows=7)
    text = str(err.value)
    assert text.startswith(f"3 problems in {src}")
    for message in (f"{src}: row 4: field 'answer': answer 'F' is not among the 4 choices (A-D)",
                    f"{src}: row 20: field 'tags': not a JSON object",
                    f"{src}: row 29: multiple-choice item has 1 choices (needs 2 to 26)"):
        assert message in text
    with open_bank(path) as bank:
        assert len(bank.items()) == 0


@pytest.mark.parametrize(("rows", "through_wal"), [(Bank.IMPORT_CHUNK, False), (Bank.IMPORT_CHUNK - 1, True)])
def test_a_chunks_commit_skips_the_wal(tmp_path: Path, rows: int, through_wal: bool) -> None:
    """Bank.IMPORT_CHUNK is DuckDB's row group: a commit of that many rows is written into the file, not the WAL
    (whose rows would stay in memory until a checkpoint); one row fewer goes through the WAL."""
    import duckdb

    path = tmp_path / "t.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("SET checkpoint_threshold = '1GB'")
    conn.execute("CREATE TABLE t (k BIGINT, v VARCHAR)")
    conn.execute("CHECKPOINT")
    conn.execute("BEGIN TRANSACTION")
    conn.execute("INSERT INTO t SELECT i, 'item text ' || i FROM range(?) r(i)", [rows])
    conn.execute("COMMIT")
    wal = path.with_name(path.name + ".wal")
    wal_bytes = wal.stat().st_size if wal.exists() else 0
    conn.close()
    assert (wal_bytes > 1_000_000) is through_wal, wal_bytes


def test_a_key_one_chunk_adds_is_known_to_the_chunks_checked_ahead(tmp_path: Path) -> None:
    """Chunks are checked one ahead of the write (itembank.bank._ChunksAhead): a key the first chunk adds with
    --extend-taxonomy was unknown when the second was checked, so the second is checked again; the key is added
    once and every chunk's tags are stored."""
    rows = _rows(21)
    for i in (2, 9, 10, 20):   # chunks of 7: the key arrives in the first chunk, comes back in the second and third
        rows.loc[i, "tags"] = json.dumps({**json.loads(rows.loc[i, "tags"]), "newkey": "x"})
    src = tmp_path / "new_key.parquet"
    rows.to_parquet(src, index=False)
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        rep = bank.import_items([src], ImportOptions(source="s", extend_taxonomy=True), chunk_rows=7)
        assert rep.new_items == 21
        assert bank.conn.execute("SELECT count(*) FROM taxonomy_keys WHERE key = 'newkey'").fetchone() == (1,)
        tagged = bank.item_ids({"newkey": ["x"]})
        assert sorted(tagged) == sorted(bank.resolve_alias("s", f"r{i}") for i in (2, 9, 10, 20))
