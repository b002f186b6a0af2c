"""The HTML report in headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

Two reports: the demo round (generated items, simulated models) and the real MMLU-Pro responses (a
seeded sample of items, all 20 models). Each must load with no console errors, hold one leaderboard
row with an ability interval and a predictive interval for every model, and paint a page that is not
blank. Set ADT_SCREENSHOTS=DIR to keep the screenshots (docs/report-*.png are made that way).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from chromium import needs_chromium, start_chromium  # noqa: E402
from report_world import demo_round, mmlu_pro_bank  # noqa: E402

from adt.report import write_report  # noqa: E402
from itembank import open_bank  # noqa: E402

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    drv = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield drv
    drv.quit()


def check_in_browser(driver, html: Path, models: list[str], shot: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(html.as_uri())
    errors = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], f"console errors: {errors}"
    rows = driver.find_elements(By.CSS_SELECTOR, 'table[data-testid="leaderboard"] tr[data-testid="leaderboard-row"]')
    assert sorted(r.get_attribute("data-model") for r in rows) == sorted(models)
    for row in rows:
        for testid in ("ability-interval", "pred-interval", "rank-interval"):
            cell = row.find_element(By.CSS_SELECTOR, f'td[data-testid="{testid}"]')
            assert cell.text.strip(), f"{row.get_attribute('data-model')}: empty {testid}"
        iv = row.find_element(By.CSS_SELECTOR, 'td[data-testid="ability-interval"]')
        theta = float(row.find_element(By.CSS_SELECTOR, 'td[data-testid="theta"]').text)
        lo, hi = float(iv.get_attribute("data-lo")), float(iv.get_attribute("data-hi"))
        assert lo < theta < hi
    # Every figure decoded (an inline PNG that failed would have naturalWidth 0).
    widths = driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    assert widths and min(widths) > 0
    assert driver.find_element(By.CSS_SELECTOR, '[data-testid="coverage"]').text.endswith("%")
    shot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shot))
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    non_white = float((img.sum(axis=2) < 720).mean())
    assert colours > 200, f"screenshot has only {colours} colours"
    assert non_white > 0.05, f"screenshot is {1 - non_white:.0%} white"


def _shot_dir(tmp: Path) -> Path:
    return Path(os.environ["ADT_SCREENSHOTS"]) if os.environ.get("ADT_SCREENSHOTS") else tmp


def test_demo_report_in_chromium(driver, tmp_path: Path) -> None:
    bank_path = tmp_path / "demo.duckdb"
    world = demo_round(bank_path, tmp_path, calibrate=True)
    with open_bank(bank_path) as bank:
        write_report(bank, tmp_path / "demo.html", round_no=1, seed=1, n_worlds=60, loo=True, loo_models=4)
    check_in_browser(driver, tmp_path / "demo.html", world.models["model"].tolist(),
                     _shot_dir(tmp_path) / "report-demo.png")


def test_mmlu_pro_report_in_chromium(driver, tmp_path: Path, shared_data: Path) -> None:
    bank_path = tmp_path / "mmlu_pro.duckdb"
    mmlu_pro_bank(bank_path, shared_data, tmp_path, n_items=800, form_size=100)
    with open_bank(bank_path) as bank:
        models = sorted(bank.responses()["model"].unique())
        write_report(bank, tmp_path / "mmlu_pro.html", round_no=0, form="mmlu-pro-form", seed=1, n_worlds=60, loo=True,
                     loo_models=3)
    assert len(models) == 20
    check_in_browser(driver, tmp_path / "mmlu_pro.html", models, _shot_dir(tmp_path) / "report-mmlu-pro.png")
