"""Rooms register their migrations (itembank.migrate names no other room); banks get the same schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import calibration  # noqa: F401 - its face registers the room's migrations
from adtbase.errors import MigrationError
from itembank import migrate, open_bank

ROOT = Path(__file__).resolve().parents[2]


def test_rooms_register_in_dependency_order_and_a_new_bank_gets_every_migration(tmp_path: Path) -> None:
    assert migrate.registered_rooms() == ("itembank", "calibration")
    shipped = [(m.room, m.version, m.name) for m in migrate.shipped_migrations()]
    assert shipped[:8] == [("itembank", 1, "001_core.sql"), ("itembank", 2, "002_near_dup_index.sql"),
                           ("itembank", 3, "003_item_stage.sql"), ("itembank", 4, "004_judgments.sql"),
                           ("itembank", 5, "005_compact_history.sql"), ("itembank", 6, "006_batch_history.sql"),
                           ("itembank", 7, "007_item_keys_exposure.sql"), ("itembank", 8, "008_tag_values.sql")]
    n_own = sum(r == "itembank" for r, *_ in shipped)
    assert n_own == 8
    assert [r for r, *_ in shipped] == ["itembank"] * n_own + ["calibration"] * (len(shipped) - n_own)
    with open_bank(tmp_path / "b.duckdb", create=True) as bank:
        rows = bank.conn.execute("SELECT room, version, name FROM schema_migrations").fetchall()
    assert [tuple(r) for r in rows] == shipped  # applied in registration order, as before the registry


def test_a_process_that_imports_only_itembank_opens_a_full_bank(tmp_path: Path) -> None:
    path = tmp_path / "b.duckdb"
    with open_bank(path, create=True):
        pass
    code = ("import sys; from itembank import open_bank, migrate\n"
            f"with open_bank({str(path)!r}) as b: pass\n"
            "print(migrate.registered_rooms(), 'calibration' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "('itembank', 'calibration') True"  # the bank's rooms were loaded and verified


def test_a_recorded_room_that_is_no_room_is_not_shipped(tmp_path: Path) -> None:
    path = tmp_path / "b.duckdb"
    with open_bank(path, create=True) as bank:
        bank.conn.execute("INSERT INTO schema_migrations VALUES ('json', 1, '001_x.sql', 'x', 'now')")
    with pytest.raises(MigrationError, match="json/001_x.sql that this adt does not ship"), open_bank(path):
        pass
