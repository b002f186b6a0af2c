"""Banks for the report tests: a small demo round and an MMLU-Pro bank with one published form.

Not a test module: test_report.py and test_browser.py import it (this folder on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adt.demo import DemoWorld, build_world
from calibration.irt import prob
from itembank import ImportOptions, open_bank

FORM_QUOTAS = {"frequency_tier": {"high": 0.1, "medium": 0.4, "low": 0.5}}
MMLU_PRO = ImportOptions(source="mmlu_pro", license="Apache-2.0", id_cols=("question_id",), choices_col="options",
                         answer_col="answer", answer_format="letter",
                         tag_cols=(("category", "domain"), ("src", "source_detail")))


def demo_round(bank_path: Path, workdir: Path, *, n_items: int = 1500, n_models: int = 12, form_size: int = 120,
               seed: int = 7, calibrate: bool = False) -> DemoWorld:
    """The demo's world (generated items, simulated models' past runs) and round 1: a form drawn with
    ``adt sample``'s workflow (frequency quotas), published, and answered by every simulated model with
    its true parameters. With ``calibrate`` the past runs are calibrated first and the round is
    recalibrated after, linked (as ``adt round`` does); without, the bank stores no calibration."""
    from adt.workflow.calibrate import calibrate as fit
    from adt.workflow.forms import sample_and_store

    world = build_world(bank_path, n_items=n_items, n_models=n_models, seed=seed, workdir=workdir,
                        say=lambda _m: None)
    before = fit(bank_path, irt="2pl", seed=seed).calibration_id if calibrate else None
    drawn = sample_and_store(bank_path, {"name": "round-1", "strategy": "stratified", "size": form_size,
                                         "seed": seed, "quotas": FORM_QUOTAS}, calibration_id=before)
    ids = list(drawn.item_ids)
    rng = np.random.default_rng(seed + 1)
    t = world.params.set_index("item_id").loc[ids]
    with open_bank(bank_path) as bank:
        bank.publish("round-1", 1)
        for model, theta in zip(world.models["model"], world.models["theta"], strict=True):
            p = prob(theta, t["a"].to_numpy(), t["b"].to_numpy(), t["c"].to_numpy(), t["d"].to_numpy())
            run_id = f"round-1:{model}"
            bank.start_run(run_id, model=model, kind="simulated", form_name="round-1", round_no=1)
            bank.ingest_responses(run_id, pd.DataFrame({"item_id": ids, "score": (rng.random(len(ids)) < p) * 1.0}))
            bank.finish_run(run_id)
    if calibrate:
        fit(bank_path, irt="2pl", seed=seed, link="fixed", anchor_calibration=before)
    return world


def mmlu_pro_bank(bank_path: Path, data: Path, workdir: Path, *, n_items: int | None = 1500, form_size: int = 100,
                  seed: int = 11) -> list[str]:
    """MMLU-Pro items and the 20 models' real answers (a seeded item sample of ``n_items``, or all), a stored
    2PL calibration of them, and a random form of ``form_size`` items; returns the form's item ids."""
    items = pd.read_parquet(data / "mmlu_pro" / "items.parquet")
    responses = pd.read_parquet(data / "mmlu_pro" / "responses.parquet")
    if n_items is not None:
        keep = np.random.default_rng(seed).choice(items["question_id"].to_numpy(), n_items, replace=False)
        items = items[items["question_id"].isin(keep)]
        responses = responses[responses["question_id"].isin(keep)]
    items_path, resp_path = workdir / "mmlu_pro_items.parquet", workdir / "mmlu_pro_responses.parquet"
    items.to_parquet(items_path, index=False)
    responses.to_parquet(resp_path, index=False)
    from adt.workflow.calibrate import calibrate
    from adt.workflow.forms import sample_and_store

    with open_bank(bank_path, create=True) as bank:
        bank.import_items([items_path], MMLU_PRO)
        bank.import_responses(resp_path, source="mmlu_pro", model_col="model", item_col="question_id",
                              score_col="correct", round_no=0)
        calibrate(bank, irt="2pl", seed=seed)
    drawn = sample_and_store(bank_path, {"name": "mmlu-pro-form", "strategy": "random", "size": form_size,
                                         "seed": seed})
    return list(drawn.item_ids)
