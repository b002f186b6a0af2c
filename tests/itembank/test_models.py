"""Bank.models / Bank.describe_model (model attributes) and Bank.copy_to (a consistent copy of the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adtbase.errors import InputError
from itembank import open_bank


def test_describe_model_sets_only_the_given_attributes(bank_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.describe_model("m1", family="llama", release_date="2024-05-01")
        bank.describe_model("m1", size="7B")                  # family and date stay
        bank.describe_model("m0", family="qwen")
        with pytest.raises(InputError, match="release date 'May 2024' is not an ISO date"):
            bank.describe_model("m0", release_date="May 2024")
        models = bank.models().set_index("name")
    assert list(models.index) == ["m0", "m1"]
    assert models.loc["m1"].to_dict() == {"family": "llama", "size": "7B", "release_date": "2024-05-01"}
    assert models.loc["m0", "family"] == "qwen" and models.loc["m0", "release_date"] is None


def test_copy_to_is_a_usable_bank_and_the_original_stays_open(bank_path: Path, tmp_path: Path) -> None:
    with open_bank(bank_path) as bank:
        bank.describe_model("m1", family="llama")
        copy = bank.copy_to(tmp_path / "copy.duckdb")
        bank.describe_model("m2", family="qwen")              # the connection works after the copy
        snap = bank.snapshot_id()
    with open_bank(copy) as other:
        assert list(other.models()["name"]) == ["m1"]         # the copy is as of the copy
    with open_bank(bank_path) as bank:
        assert list(bank.models()["name"]) == ["m1", "m2"] and bank.snapshot_id() == snap
