"""A sampler pool made from real items (MMLU-Pro + CMMLU), shaped like the bank's ``items()`` frame.

Exposure is simulated: a few earlier forms are "published" (random draws), and the frequency tier
follows from how often an item was published (never: low, once or twice: medium, more: high).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def real_pool(shared: Path, rng: np.random.Generator, n_published_forms: int = 6,
              form_size: int = 3000) -> pd.DataFrame:
    mp = pd.read_parquet(shared / "mmlu_pro" / "items.parquet", columns=["question_id", "question", "options",
                                                                          "category", "src"])
    cm = pd.read_parquet(shared / "cmmlu" / "items.parquet", columns=["subject", "split", "row_in_file",
                                                                       "Question", "subcategory"])
    en = pd.DataFrame({"item_id": "mmlu_pro:" + mp["question_id"].astype(str), "language": "en",
                       "question": mp["question"], "n_choices": mp["options"].map(len).astype(int),
                       "domain": mp["category"], "source": mp["src"]})
    zh = pd.DataFrame({"item_id": "cmmlu:" + cm["subject"] + ":" + cm["split"] + ":" + cm["row_in_file"].astype(str),
                       "language": "zh", "question": cm["Question"], "n_choices": 4,
                       "domain": cm["subcategory"], "source": "cmmlu-" + cm["subject"]})
    pool = pd.concat([en, zh], ignore_index=True)
    n = len(pool)
    pubs = np.zeros(n, dtype=int)
    for _ in range(n_published_forms):
        pubs[rng.choice(n, size=form_size, replace=False)] += 1
    pool["exposure_publications"] = pubs
    pool["exposure_runs"] = pubs * 3 + rng.poisson(0.5, n)
    pool["frequency_tier"] = np.where(pubs == 0, "low", np.where(pubs <= 2, "medium", "high"))
    pool["difficulty_band"] = "unknown"
    pool["item_type"] = "mc"
    pool["review_state"] = rng.choice(["approved", "draft", "retired"], size=n, p=[0.6, 0.38, 0.02])
    return pool


@pytest.fixture(scope="session")
def bank_pool(shared_data: Path) -> pd.DataFrame:
    return real_pool(shared_data, np.random.default_rng(7))
