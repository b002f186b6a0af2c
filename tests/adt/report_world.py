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


def sample_and_publish(bank, name: str, size: int, seed: int, round_no: int, quotas: dict | None = None) -> list[str]:
    """Draw a form with the sampler (stratified), store it and publish it in ``round_no``."""
    from sampler import FormSpec, sample_form

    spec = FormSpec.from_dict({"size": size, "strategy": "stratified", "seed": seed, "quotas": quotas or {},
                               "enemy_threshold": None})
    snap = bank.snapshot_id()
    draft = sample_form(bank.items(), spec, np.random.default_rng(seed))
    bank.save_form(name, list(draft.item_ids), spec=spec.to_dict(), strategy=draft.strategy, seed=seed,
                   snapshot_id=snap, calibration_id=None, objectives=draft.objectives,
                   content_hash=draft.content_hash(spec, snap), n_uncalibrated=draft.n_uncalibrated)
    bank.publish(name, round_no)
    return list(draft.item_ids)


def demo_round(bank_path: Path, workdir: Path, *, n_items: int = 1500, n_models: int = 12, form_size: int = 120,
               seed: int = 7) -> DemoWorld:
    """The demo's world (generated items, simulated models' past runs) and round 1: a form drawn with
    ``adt sample``'s workflow (frequency quotas), published, and answered by every simulated model with
    its true parameters."""
    from adt.workflow.forms import sample_and_store

    world = build_world(bank_path, n_items=n_items, n_models=n_models, seed=seed, workdir=workdir,
                        say=lambda _m: None)
    drawn = sample_and_store(bank_path, {"name": "round-1", "strategy": "stratified", "size": form_size,
                                         "seed": seed, "quotas": FORM_QUOTAS})
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
    return world


def mmlu_pro_bank(bank_path: Path, data: Path, workdir: Path, *, n_items: int | None = 1500, form_size: int = 100,
                  seed: int = 11) -> list[str]:
    """MMLU-Pro items and the 20 models' real answers (a seeded item sample of ``n_items``, or all), and a
    published random form of ``form_size`` items; returns the form's item ids."""
    items = pd.read_parquet(data / "mmlu_pro" / "items.parquet")
    responses = pd.read_parquet(data / "mmlu_pro" / "responses.parquet")
    if n_items is not None:
        keep = np.random.default_rng(seed).choice(items["question_id"].to_numpy(), n_items, replace=False)
        items = items[items["question_id"].isin(keep)]
        responses = responses[responses["question_id"].isin(keep)]
    items_path, resp_path = workdir / "mmlu_pro_items.parquet", workdir / "mmlu_pro_responses.parquet"
    items.to_parquet(items_path, index=False)
    responses.to_parquet(resp_path, index=False)
    with open_bank(bank_path, create=True) as bank:
        bank.import_items([items_path], MMLU_PRO)
        bank.import_responses(resp_path, source="mmlu_pro", model_col="model", item_col="question_id",
                              score_col="correct", round_no=0)
        return sample_and_publish(bank, "mmlu-pro-form", form_size, seed, 1)
