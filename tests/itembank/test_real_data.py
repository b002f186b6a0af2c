"""The four real item files of ../shared/data import as they are, and MMLU-Pro's responses all match."""

from __future__ import annotations

from pathlib import Path

import pytest

from itembank import ImportOptions, open_bank

MMLU_PRO = ImportOptions(source="mmlu_pro", license="Apache-2.0", id_cols=("question_id",), choices_col="options",
                         answer_col="answer", answer_format="letter",
                         tag_cols=(("category", "subject"), ("src", "source_detail")))
CMMLU = ImportOptions(source="cmmlu", license="CC BY-NC-SA 4.0", language="zh", id_cols=("subject", "split", "row_in_file"),
                      question_col="Question", choice_cols=("A", "B", "C", "D"), answer_col="Answer",
                      answer_format="letter", tag_cols=(("subject", "subject"), ("category", "category"), ("split", "split")))
MMLU = ImportOptions(source="mmlu", license="MIT", language="en", id_cols=("subject", "split", "row_in_file"),
                     choice_cols=("choice0", "choice1", "choice2", "choice3"), answer_format="index",
                     tag_cols=(("subject", "subject"), ("split", "split")))
GSM8K = ImportOptions(source="gsm8k", license="MIT", language="en", item_type="numeric", answer_format="gsm8k",
                      tags=(("domain", "math"),))


@pytest.fixture(scope="module")
def real_bank(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("real") / "bank.duckdb"
    reports = {}
    with open_bank(path, create=True) as bank:
        for name, rel, opts in (("mmlu_pro", "mmlu_pro/items.parquet", MMLU_PRO), ("cmmlu", "cmmlu/items.parquet", CMMLU),
                                ("mmlu", "mmlu/items.parquet", MMLU), ("gsm8k", "gsm8k/items.parquet", GSM8K)):
            reports[name] = bank.import_items([shared_data / rel], opts)
    return path, reports


def test_four_item_files_import_with_duplicates_merged(real_bank: tuple[Path, dict]) -> None:
    path, reports = real_bank
    assert {k: r.rows for k, r in reports.items()} == {"mmlu_pro": 12032, "cmmlu": 11917, "mmlu": 14327, "gsm8k": 1319}
    assert all(r.new_aliases == r.rows for r in reports.values())       # every source id is an alias
    assert reports["mmlu_pro"].merged_within_files == 159                # MMLU-Pro repeats questions
    assert reports["mmlu"].merged_across_sources > 0                     # MMLU items MMLU-Pro kept unchanged
    with open_bank(path) as bank:
        stats = bank.stats(["language", "item_type"]).set_index(["language", "item_type"])["items"]
        assert stats[("zh", "mc")] == reports["cmmlu"].items_in_files
        assert stats[("en", "numeric")] == 1319
        total = sum(r.new_items for r in reports.values())
        assert int(stats.sum()) == total
        gsm = bank.item("gsm8k:0")
        assert gsm["answer"] == "18" and gsm["item_type"] == "numeric"
        assert bank.item("mmlu_pro:70")["answer"] == "I"


def test_reimport_changes_nothing(real_bank: tuple[Path, dict], shared_data: Path) -> None:
    path, _ = real_bank
    with open_bank(path) as bank:
        snap = bank.snapshot_id()
        again = bank.import_items([shared_data / "cmmlu/items.parquet"], CMMLU)
        assert again.new_items == 0 and again.new_aliases == 0 and again.new_tags == 0
        assert bank.snapshot_id() == snap


def test_mmlu_pro_responses_match_every_row(real_bank: tuple[Path, dict], shared_data: Path) -> None:
    path, _ = real_bank
    with open_bank(path) as bank:
        rep = bank.import_responses(shared_data / "mmlu_pro/responses.parquet", source="mmlu_pro", model_col="model",
                                    item_col="question_id", score_col="correct")
        assert (rep.rows, rep.unknown_rows, rep.runs) == (238927, 0, 20)
        assert rep.matched == 238927
        # Two answers to one merged (duplicate) item become one fractional response.
        assert rep.new_responses + rep.merged_duplicate_items == rep.matched
        assert bank.verify().ok


def test_leaderboard_prompts_import_without_keys(shared_data: Path, tmp_path: Path) -> None:
    with open_bank(tmp_path / "lb.duckdb", create=True) as bank:
        rep = bank.import_items([shared_data / "leaderboard/arc.items.parquet"],
                                ImportOptions(source="leaderboard", id_cols=("item",), question_col="prompt",
                                              no_key=True, item_type="open", language="en", tags=(("task", "arc"),)))
        assert rep.rows == rep.new_aliases and rep.new_items > 100
        resp = bank.import_responses(shared_data / "leaderboard/arc.responses.parquet", source="leaderboard",
                                     model_col="model", item_col="item", score_col="correct")
        assert resp.unknown_rows == 0 and resp.runs > 3000
