"""The review page (`adt review serve`, issue 13): hostile item text stays text, cross-site posts change nothing,
a bind beyond loopback needs a token, a decision on a stale view is refused with who and when, and in headless
Chromium (as tests/adt/test_browser.py): list, filter, approve, reject, edit and the conflict message.

The bank is real (DuckDB through ``open_bank``, items imported through the CLI); QC results are ``qc`` events in
``Bank.record_qc``'s format (``adt qc``'s writer). Set ADT_SCREENSHOTS=DIR to keep the screenshot (docs/review-page.png is made that way).
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from chromium import needs_chromium  # tests/adt/chromium.py
from click.testing import CliRunner
from review_serving import HOST, opener_for

from adt.cli import cli
from adt.review_page import ReviewApp, make_server, script_json
from adtbase.errors import InputError
from itembank import open_bank

HOSTILE_Q = ('<script>window.__pwned = 1; alert(1)</script><img src=x onerror="window.__pwned = 2">'
             '</script><b id="injected">bold</b> "double" \'single\' & \u202eevil RTL\u202c \u200fמה? '
             + "a-very-long-line-" * 400)
HOSTILE_CHOICE = '</textarea><script>window.__pwned = 3</script><input id="injected2">'


def _adt(bank: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args], catch_exceptions=False)


@pytest.fixture()
def world(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "review.duckdb"
    assert _adt(path, "init").exit_code == 0
    rows = [{"id": "h0", "question": HOSTILE_Q, "choices": ["plain", HOSTILE_CHOICE, "three", "four"], "answer": "B",
             "tags": {"domain": "law"}, "origin": "model-generated", "generator": "gen<script>x</script>"}]
    rows += [{"id": f"g{k}", "question": f"Which number is {k} plus one?", "choices": [str(k), str(k + 1), "0", "9"],
              "answer": "B", "tags": {"domain": "math"}, "origin": "model-generated", "generator": "tmpl-1"}
             for k in range(1, 5)]
    f = tmp_path / "drafts.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert _adt(path, "bank", "import", str(f), "--source", "gen", "--review-state", "draft").exit_code == 0
    with open_bank(path) as b:
        ids = {r["id"]: b.resolve(f"gen:{r['id']}") for r in rows}
        b.record_qc([
            (ids["g1"], "solvers", ["key_suspect"], {
                "n_solvers": 2, "key": "B", "agree_share": 0.0, "majority": "C", "majority_share": 1.0,
                "p_key_wrong": 0.9, "difficulty": 0.4,
                "answers": {"solver-a": "C", "<script>window.__pwned = 4</script>": None}}),
            (ids["g1"], "near_duplicate", ["near_duplicate"],
             {"matches": [{"item_id": ids["h0"], "similarity": 0.93}]}),
            (ids["g2"], "leakage", ["leak"],
             {"matches": [{"item_id": "it_00000000000000000000", "source": "mmlu<b>", "similarity": 0.99}]}),
            (ids["g2"], "schema", [], {"problems": []}),
        ], "qc_1")
    return {"path": path, "ids": ids}


def _app(world: dict[str, Any], **kw: Any) -> ReviewApp:
    return ReviewApp(opener_for(world["path"]), host=kw.pop("host", "127.0.0.1"), port=8765, **kw)




def _post(app: ReviewApp, fields: dict[str, str], headers: dict[str, str] | None = None):
    body = urllib.parse.urlencode(fields).encode()
    return app.handle("POST", "/decide", {**HOST, "Content-Type": "application/x-www-form-urlencoded",
                                          **(headers or {})}, body)


def _head(world: dict[str, Any]) -> Any:
    with open_bank(world["path"]) as b:
        return b.head()


def _state(world: dict[str, Any], key: str) -> str:
    with open_bank(world["path"]) as b:
        return str(b.item(world["ids"][key])["review_state"])


# ------------------------------------------------------------------------------------------------
def test_hostile_item_text_is_escaped_in_the_served_page(world: dict[str, Any]) -> None:
    resp = _app(world).handle("GET", "/", HOST)
    assert resp.status == 200
    page = resp.body.decode()
    headers = dict(resp.headers)
    assert "script-src 'self'" in headers["Content-Security-Policy"] and "unsafe-inline" not in page
    # only the page's own two script elements (its file and the JSON block); nothing of the items' markup
    assert page.count("<script") == 2 and page.count("</script>") == 2
    for raw in ("<img", "<b id=", 'onerror="', "</textarea><script", "<input id=\"injected2\"", "gen<script>"):
        assert raw not in page, raw
    assert "&lt;script&gt;window.__pwned = 1; alert(1)&lt;/script&gt;" in page
    assert "&quot;double&quot; &#x27;single&#x27; &amp;" in page
    # a bidi override is shown, not obeyed (it would reorder what follows); a plain RTL mark is text
    assert '<span class="ctl">U+202E</span>evil RTL<span class="ctl">U+202C</span> \u200fמה?' in page
    # ... except in the edit box, which must hold the text exactly (an edit changes only what the reviewer types)
    assert "\u202e" not in re.sub(r"<textarea[^>]*>[^<]*</textarea>", "", page) and "\u202e" in page
    assert "a-very-long-line-" * 400 in page
    # the solver named <script>, the leakage source and the generator: escaped too
    assert "&lt;script&gt;window.__pwned = 4&lt;/script&gt;" in page and "mmlu&lt;b&gt;" in page
    data = page.split('<script type="application/json" id="queue-data">')[1].split("</script>")[0]
    assert "<" not in data and json.loads(data)["state"] == "draft"
    assert script_json({"q": "</script><!-- & >"}) == '{"q": "\\u003c/script\\u003e\\u003c!-- \\u0026 \\u003e"}'


def test_the_page_shows_flags_solvers_near_duplicates_and_filters(world: dict[str, Any]) -> None:
    app, ids = _app(world), world["ids"]
    page = app.handle("GET", "/", HOST).body.decode()
    assert "5 items draft" in page
    g1 = page.split(f'data-item-id="{ids["g1"]}"')[1].split("</article>")[0]
    assert 'data-flags="key_suspect near_duplicate"' in page and 'data-testid="solver-answer"' in g1
    assert "p_key_wrong 0.90" in g1 and "no answer" in g1
    pair = g1.split('data-testid="near-duplicate"')[1]
    assert ids["h0"] in pair and "similarity 0.93" in pair and "&lt;script&gt;window.__pwned = 1" in pair
    assert '<li data-testid="choice" data-label="B" class="key" data-key="true"><b>B</b> <span dir="auto">2</span>' in g1

    def count(q: str) -> str:
        return app.handle("GET", "/?" + q, HOST).body.decode().split('data-testid="count">')[1].split("<")[0]

    assert count("filter=domain%3Dmath") == "4 items draft"
    assert count("filter=domain%3Dlaw,math") == "5 items draft"
    assert count("flag=leak") == "1 items draft" and count("flag=none") == "3 items draft"
    assert count("state=approved") == "0 items approved"
    bad = app.handle("GET", "/?filter=domian%3Dmath", HOST).body.decode()
    assert 'data-testid="filter-problem"' in bad and "domain" in bad and "0 items draft" in bad


def test_cross_site_posts_are_refused_and_the_bank_is_unchanged(world: dict[str, Any]) -> None:
    app = _app(world)
    head, item = _head(world), world["ids"]["g1"]
    good = {"csrf": app.csrf, "item": item, "seen": "draft", "action": "approve", "reviewer": "ana"}
    refused = [
        _post(app, {k: v for k, v in good.items() if k != "csrf"}),                   # no CSRF token
        _post(app, {**good, "csrf": "forged"}),                                       # a wrong one
        _post(app, good, {"Origin": "http://evil.example"}),                          # from another site
        _post(app, good, {"Origin": "null"}),
        _post(app, good, {"Sec-Fetch-Site": "cross-site"}),
        _post(app, good, {"Host": "evil.example:8765"}),                               # DNS rebinding
        app.handle("POST", "/decide", {**HOST, "Content-Type": "text/plain"}, urllib.parse.urlencode(good).encode()),
    ]
    assert [r.status for r in refused] == [403, 403, 403, 403, 403, 421, 415]
    assert app.handle("GET", "/decide?" + urllib.parse.urlencode(good), HOST).status == 405
    assert _head(world) == head and _state(world, "g1") == "draft"
    ok = _post(app, good, {"Origin": "http://127.0.0.1:8765"})
    assert ok.status == 303 and _state(world, "g1") == "approved"
    notice = app.handle("GET", dict(ok.headers)["Location"], HOST).body.decode()
    assert f"{item} approved by ana" in notice


def test_a_decision_on_a_stale_view_is_refused_with_who_and_when(world: dict[str, Any]) -> None:
    app, item = _app(world), world["ids"]["g3"]
    assert _adt(world["path"], "review", "approve", item, "--reviewer", "ben", "--reason", "fine").exit_code == 0
    head = _head(world)
    resp = _post(app, {"csrf": app.csrf, "item": item, "seen": "draft", "action": "reject", "reviewer": "ana",
                       "reason": "wrong key"})
    notice = app.handle("GET", dict(resp.headers)["Location"], HOST).body.decode()
    msg = notice.split('data-testid="notice"')[1].split("</p>")[0]
    assert "refused" in notice.split('data-testid="notice"')[0][-40:]
    assert f"{item} was draft when you loaded the page and is now approved: approved by ben at" in msg
    assert "(fine)" in msg and "Nothing changed" in msg
    assert _head(world) == head and _state(world, "g3") == "approved"
    # the same without a stale view: set_review_state's own refusal, also naming who decided
    resp = _post(app, {"csrf": app.csrf, "item": item, "seen": "approved", "action": "reject", "reviewer": "ana",
                       "reason": "x"})
    assert "by ben at" in app.handle("GET", dict(resp.headers)["Location"], HOST).body.decode()
    assert _head(world) == head


def test_an_edit_posted_from_the_page_makes_a_new_version(world: dict[str, Any]) -> None:
    app, item = _app(world), world["ids"]["g4"]
    resp = _post(app, {"csrf": app.csrf, "item": item, "seen": "draft", "action": "edit", "reviewer": "ana",
                       "question": "Which number is four plus one?", "choices": "4\n5\n0\n9\n", "answer": "B",
                       "reason": "words"})
    page = app.handle("GET", dict(resp.headers)["Location"], HOST).body.decode()
    assert f"{item} edited by ana: new draft it_" in page
    with open_bank(world["path"]) as b:
        derived = b.item(item)["derived_items"]
        assert len(derived) == 1 and b.item(derived[0])["parent_item_id"] == item
    assert f'data-item-id="{derived[0]}"' in page and f'data-item-id="{item}"' not in page
    assert f'data-testid="parent"><code>{item}</code> (rejected)' in page


def test_a_bind_beyond_loopback_needs_a_token(world: dict[str, Any]) -> None:
    with pytest.raises(InputError, match="needs --token"):
        _app(world, host="0.0.0.0")
    res = CliRunner().invoke(cli, ["--bank", str(world["path"]), "review", "serve", "--host", "0.0.0.0", "--port", "0"])
    assert res.exit_code == 1 and "needs --token" in str(res.exception)
    app = _app(world, host="0.0.0.0", token="s3cret-review-token")
    any_host = {"Host": "review.lan:8765"}
    assert app.handle("GET", "/", any_host).status == 401
    assert app.handle("GET", "/?token=wrong", any_host).status == 401
    first = app.handle("GET", "/?token=s3cret-review-token", any_host)
    assert first.status == 200 and any("s3cret-review-token" in v for k, v in first.headers if k == "Set-Cookie")
    assert app.handle("GET", "/", {**any_host, "Cookie": "adt_review_token=s3cret-review-token"}).status == 200
    head = _head(world)
    body = {"csrf": app.csrf, "item": world["ids"]["g1"], "seen": "draft", "action": "approve", "reviewer": "x"}
    assert _post(app, body, any_host).status == 401     # the CSRF token alone is not enough
    assert _head(world) == head


def test_the_server_answers_over_http(world: dict[str, Any]) -> None:
    import urllib.request

    server = make_server(opener_for(world["path"]), port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(server.url) as resp:
            assert resp.status == 200 and "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert "5 items draft" in resp.read().decode()
        with urllib.request.urlopen(server.url + "static/review.js") as resp:
            assert resp.headers["Content-Type"].startswith("text/javascript")
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------------
# headless Chromium
def _shot_dir(tmp: Path) -> Path:
    return Path(os.environ["ADT_SCREENSHOTS"]) if os.environ.get("ADT_SCREENSHOTS") else tmp


@needs_chromium
def test_review_in_chromium(driver, served: dict[str, Any], tmp_path: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    ids, url = served["ids"], served["url"]
    body: Any = None

    def wait(cond: Any) -> None:  # elements go stale while the next page loads
        WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(cond)

    def load(address: str) -> None:
        nonlocal body
        driver.get(address)
        wait(lambda d: d.execute_script("return document.readyState") == "complete")
        body = driver.find_element(By.TAG_NAME, "body")

    def items() -> list[str]:
        return [e.get_attribute("data-item-id") for e in driver.find_elements(By.CSS_SELECTOR, "article[data-testid=item]")]

    def notice() -> str:  # "" while the next page loads
        try:
            return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid=notice]"))
        except StaleElementReferenceException:
            return ""

    def current() -> str:  # the item the keys act on (after a decision: the one after it)
        return driver.find_element(By.CSS_SELECTOR, "article.current").get_attribute("data-item-id")

    def no_script_ran() -> None:
        assert driver.execute_script("return window.__pwned === undefined")
        assert driver.find_elements(By.CSS_SELECTOR, "#injected, #injected2, img") == []
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018

    load(url + f"#item-{ids['g1']}")
    errors = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], f"console errors (a CSP violation shows here): {errors}"
    # the screenshot: the whole queue, the flagged item selected (solver answers, a near-duplicate side by side)
    assert current() == ids["g1"]
    shot = _shot_dir(tmp_path) / "review-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    # list: every draft, the hostile one as text
    assert sorted(items()) == sorted(ids.values())
    no_script_ran()
    hostile = driver.find_element(By.CSS_SELECTOR, f"#item-{ids['h0']} [data-testid=question]").text
    assert hostile.startswith("<script>window.__pwned = 1; alert(1)</script><img src=x")
    # filter: tags (the --filter grammar), QC flag, state
    box = driver.find_element(By.CSS_SELECTOR, "[data-testid=tag-filter]")
    box.send_keys("domain=law", Keys.ENTER)
    wait(lambda d: items() == [ids["h0"]])
    load(url)
    Select(driver.find_element(By.CSS_SELECTOR, "[data-testid=flag-filter]")).select_by_value("key_suspect")
    driver.find_element(By.CSS_SELECTOR, "form[data-testid=filter-form] button").click()
    wait(lambda d: items() == [ids["g1"]])
    solvers = driver.find_elements(By.CSS_SELECTOR, f"#item-{ids['g1']} [data-testid=solver-answer]")
    assert len(solvers) == 2 and driver.find_elements(By.CSS_SELECTOR, "[data-testid=near-duplicate]")
    no_script_ran()
    load(url)
    # the reviewer's name: asked once (a decision without it does nothing), then kept by the page
    order = items()
    body.send_keys("a")
    assert "missing" in driver.find_element(By.ID, "reviewer").get_attribute("class")
    assert _state(served, "h0") == "draft"
    driver.find_element(By.ID, "reviewer").send_keys("ana", Keys.TAB)
    # approve with the keyboard: j moves to the second item, a approves it
    body.send_keys("j")
    assert "current" in driver.find_element(By.ID, f"item-{order[1]}").get_attribute("class")
    body.send_keys("a")
    wait(lambda d: "approved by ana" in notice())
    approved = [k for k, v in ids.items() if v == order[1]][0]
    assert _state(served, approved) == "approved" and order[1] not in items()
    assert driver.find_element(By.ID, "reviewer").get_attribute("value") == "ana"
    # reject with a reason: r focuses the reason, Enter sends it
    body = driver.find_element(By.TAG_NAME, "body")
    target = current()
    assert target == order[2]   # the page moved on to the item after the approved one
    body.send_keys("r")
    driver.switch_to.active_element.send_keys("the key is wrong", Keys.ENTER)
    wait(lambda d: "rejected by ana" in notice())
    with open_bank(served["path"]) as b:
        assert b.review_decisions([target])[target]["reason"] == "the key is wrong"
    # edit: e opens the form on the current item; the new version appears with its parent link
    body = driver.find_element(By.TAG_NAME, "body")
    edited = current()
    body.send_keys("e")
    question = driver.switch_to.active_element
    assert question.get_attribute("data-testid") == "edit-question"
    question.send_keys(Keys.CONTROL, Keys.END)
    question.send_keys(" (edited)")
    driver.find_element(By.CSS_SELECTOR, f"#item-{edited} [data-testid=save-edit]").click()
    wait(lambda d: "new draft it_" in notice())
    new_id = notice().split("new draft ")[1].split(" ")[0]
    assert new_id in items() and edited not in items()
    parent = driver.find_element(By.CSS_SELECTOR, f"#item-{new_id} [data-testid=parent]").text
    assert parent.startswith(edited) and "(rejected)" in parent
    no_script_ran()
    # conflict: another reviewer decides while this page is open; the page's decision is refused, saying who
    victim = items()[0]
    with open_bank(served["path"]) as b:
        b.set_review_state([victim], "approved", reviewer="ben", reason="looks right")
    driver.find_element(By.CSS_SELECTOR, f"#item-{victim} [data-testid=reject-reason]").send_keys("no", Keys.ENTER)
    wait(lambda d: "Nothing changed" in notice())
    assert "is now approved: approved by ben at" in notice() and "(looks right)" in notice()
    with open_bank(served["path"]) as b:
        assert str(b.item(victim)["review_state"]) == "approved"
    errors = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], f"console errors: {errors}"


def test_an_edit_form_sent_back_unchanged_changes_nothing(world: dict[str, Any]) -> None:
    """A browser sends a textarea with CRLF line ends and the key as shown: none of that is an edit."""
    from adt.review_page import edited_fields

    rec = {"question": "line one\nline two", "choices": ["a", "b"], "answer": "A"}
    assert edited_fields(rec, {"question": "line one\r\nline two", "choices": "a\r\nb\r\n", "answer": "A"}) == {}
    assert edited_fields(rec, {"question": "line one\r\nline 2", "choices": "a\nb\nc", "answer": " b "}) == \
        {"question": "line one\nline 2", "choices": ["a", "b", "c"], "answer": "b"}
    app, item = _app(world), world["ids"]["g2"]
    with open_bank(world["path"]) as b:
        shown = b.item(item)
    head = _head(world)
    resp = _post(app, {"csrf": app.csrf, "item": item, "seen": "draft", "action": "edit", "reviewer": "ana",
                       "question": shown["question"], "choices": "\r\n".join(shown["choices"]), "answer": "B"})
    page = app.handle("GET", dict(resp.headers)["Location"], HOST).body.decode()
    assert "an edit must change the item&#x27;s content" in page and _head(world) == head


def test_a_token_must_be_long_and_plain(world: dict[str, Any]) -> None:
    for bad in ("short", "has;semicolon-and-more", "new\r\nline-header-x"):
        with pytest.raises(InputError, match="--token: 12 to 200"):
            _app(world, token=bad)


def test_adt_review_serve_runs_as_a_process(world: dict[str, Any], tmp_path: Path) -> None:
    """The real command: it prints its address, serves the page, and holds the bank only per request (a CLI
    decision goes through while it runs)."""
    import subprocess
    import sys
    import time
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "adt", "--bank", str(world["path"]), "review", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        assert "reviewing" in line and "http://127.0.0.1:" in line, line
        url = line.split(" at ")[1].split(" ")[0]
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(url) as resp:
                    assert "5 items draft" in resp.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert _adt(world["path"], "review", "approve", world["ids"]["g4"], "--reviewer", "ben").exit_code == 0
        with urllib.request.urlopen(url) as resp:
            assert "4 items draft" in resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
