"""The review page's judged answers (``/judged``, issue 15): the answers the judges' panel is uncertain about, with
question, answer, baseline and the judges' verdicts, scored by a human. Hostile item and answer text stays text,
a score without the page's CSRF token or from another site changes nothing, and in headless Chromium (as
tests/adt/test_review_page.py) a reviewer scores a case and it leaves the queue.

The bank is real and filled through the CLI: judged items imported, a form published, three simulated models run,
``adt judge run`` with the demo world's simulated judges (``adt.demo_judged.PANEL``). Set ADT_SCREENSHOTS=DIR to keep
the screenshot (docs/review-judged.png is made that way).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromium import needs_chromium  # tests/adt/chromium.py
from click.testing import CliRunner
from review_serving import HOST, opener_for

from adt.cli import cli
from adt.demo_judged import PANEL, RUBRIC
from adt.review_page import ReviewApp, case_dom_id
from itembank import open_bank
from runners import write_simulated_answer as write_answer

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b id="injected">b</b> & "q"'


def _adt(bank: Path, *args: str) -> str:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "judged.duckdb"
    _adt(path, "init")
    rng = np.random.default_rng(7)
    rows = [{"id": "p0", "type": "pairwise", "question": "Reply to: " + HOSTILE,
             "baseline": HOSTILE + " " + write_answer(0.0, 30, rng)}]
    rows += [{"id": f"p{k}", "type": "pairwise", "question": f"Write a reply about topic {k}.",
              "baseline": write_answer(0.0, int(rng.integers(20, 120)), rng)} for k in range(1, 5)]
    rows += [{"id": f"r{k}", "type": "open", "question": f"Explain topic {k}.", "rubric": RUBRIC} for k in range(5)]
    f = tmp_path / "items.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _adt(path, "bank", "import", str(f), "--source", "j", "--extend-taxonomy")
    with open_bank(path) as b:
        ids = {r["id"]: b.resolve(f"j:{r['id']}") for r in rows}
    params = tmp_path / "params.json"
    params.write_text(json.dumps({i: [1.0, 0.0, 0.0, 1.0] for i in ids.values()}))
    _adt(path, "sample", "--name", "f", "--strategy", "all", "--seed", "1")
    _adt(path, "form", "publish", "f", "--round", "1")
    for k, theta in enumerate((-1.0, 0.0, 1.0)):
        _adt(path, "run", "--form", "f", "--model", f"m{k}", "--backend", "simulated", "--round", "1", "--no-progress",
             "--backend-arg", f"theta={theta}", "--backend-arg", f"params={params}", "--backend-arg", f"rng={k}")
    judges = tmp_path / "judges.json"
    judges.write_text(json.dumps([j.spec() for j in PANEL]))
    _adt(path, "judge", "run", "--form", "f", "--judges", str(judges), "--no-progress")
    return {"path": path, "ids": ids}


def _humans(world: dict[str, Any]) -> Any:
    with open_bank(world["path"]) as b:
        j = b.judgments()
    return j[j["judge"].str.startswith("human:")]


def _score(app: ReviewApp, fields: dict[str, str], headers: dict[str, str] | None = None):
    body = urllib.parse.urlencode(fields).encode()
    return app.handle("POST", "/score", {**HOST, "Content-Type": "application/x-www-form-urlencoded",
                                         **(headers or {})}, body)


def test_the_judged_view_shows_cases_with_hostile_text_as_text(world: dict[str, Any]) -> None:
    app = ReviewApp(opener_for(world["path"]), port=8765)
    resp = app.handle("GET", "/judged?budget=1", HOST)
    page = resp.body.decode()
    assert resp.status == 200
    assert "<script>window.__pwned" not in page and "<img src=x" not in page and 'id="injected"' not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert page.count('data-testid="case"') == 30 and page.count('data-testid="verdict"') >= 30 * len(PANEL)
    assert page.count('data-testid="baseline"') == 15
    # the items page links to it
    assert 'href="/judged"' in app.handle("GET", "/", HOST).body.decode()


def test_a_score_needs_the_csrf_token_and_this_origin(world: dict[str, Any]) -> None:
    app = ReviewApp(opener_for(world["path"]), port=8765)
    case = f"f:m0/{world['ids']['p0']}"
    fields = {"case": case, "level": "2", "reviewer": "mallory"}
    assert _score(app, fields).status == 403
    assert _score(app, {**fields, "csrf": app.csrf}, {"Origin": "http://evil.example"}).status == 403
    assert _humans(world).empty
    resp = _score(app, {**fields, "csrf": app.csrf, "level": "7"})   # out of range: refused, said on the page
    page = app.handle("GET", dict(resp.headers)["Location"], HOST).body.decode()
    assert "level 7 is not one of 0..2" in page and _humans(world).empty
    resp = _score(app, {**fields, "csrf": app.csrf})
    assert resp.status == 303 and dict(resp.headers)["Location"].startswith("/judged?budget=")
    assert list(_humans(world)["judge"]) == ["human:mallory"]


@needs_chromium
def test_a_reviewer_scores_a_judged_answer_in_chromium(driver, served: dict[str, Any]) -> None:
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    def wait(cond: Any) -> None:
        WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(cond)

    def cases() -> list[str]:
        return [e.get_attribute("data-case") for e in driver.find_elements(By.CSS_SELECTOR, "article[data-testid=case]")]

    def notice() -> str:
        try:
            return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid=notice]"))
        except StaleElementReferenceException:
            return ""

    driver.get(served["url"] + "judged?budget=1")
    wait(lambda d: d.execute_script("return document.readyState") == "complete")
    errors = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], f"console errors (a CSP violation shows here): {errors}"
    before = cases()
    assert len(before) == 30
    assert driver.execute_script("return window.__pwned === undefined")
    assert driver.find_elements(By.CSS_SELECTOR, "#injected, img") == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018
    if os.environ.get("ADT_SCREENSHOTS"):   # docs/review-judged.png is made that way
        driver.save_screenshot(str(Path(os.environ["ADT_SCREENSHOTS"]) / "review-judged.png"))
    hostile = next(c for c in before if c.endswith(served["ids"]["p0"]))
    art = driver.find_element(By.ID, "item-" + case_dom_id(hostile))
    assert art.find_element(By.CSS_SELECTOR, "[data-testid=baseline]").text.startswith("<script>window.__pwned = 1")
    assert len(art.find_elements(By.CSS_SELECTOR, "[data-testid=verdict]")) == 2 * len(PANEL)
    # no reviewer name yet: the score is not sent
    art.find_element(By.CSS_SELECTOR, "[data-testid=level-2]").click()
    art.find_element(By.CSS_SELECTOR, "[data-testid=score]").click()
    assert "missing" in driver.find_element(By.ID, "reviewer").get_attribute("class")
    assert _humans(served).empty
    driver.find_element(By.ID, "reviewer").send_keys("ana", Keys.TAB)
    art.find_element(By.CSS_SELECTOR, "[data-testid=note]").send_keys("better than the baseline")
    art.find_element(By.CSS_SELECTOR, "[data-testid=score]").click()
    wait(lambda d: "level 2 by ana" in notice())
    humans = _humans(served)
    assert list(humans["judge"]) == ["human:ana"] and list(humans["raw_output"]) == ["better than the baseline"]
    run_id, item_id = hostile.rsplit("/", 1)
    assert (humans["run_id"].iloc[0], humans["item_id"].iloc[0], float(humans["verdict"].iloc[0])) == \
        (run_id, item_id, 1.0)
    after = cases()
    assert hostile not in after and len(after) == len(before) - 1
    errors = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], f"console errors: {errors}"
