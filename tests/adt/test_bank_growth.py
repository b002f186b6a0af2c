"""Issue 13 end to end: a model writes items (`adt generate` against a scripted OpenAI-compatible server), `adt qc`
checks them (format, near duplicates, solvers through the same server), a reviewer approves one on the review
page (a real HTTP server, its CSRF token read from the page), `adt sample` draws it into a form, and `adt audit
item` shows its provenance and every step of its history."""

from __future__ import annotations

import json
import re
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from adt.cli import cli
from adt.review_page import make_server
from itembank import open_bank

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_stub import stub_server  # noqa: E402
from review_serving import opener_for  # noqa: E402


def _ok(bank: Path, *args: str) -> Any:
    res = CliRunner().invoke(cli, ["--bank", str(bank), *args, "--json"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return json.loads(res.output)


def test_generate_qc_review_page_sample_audit(tmp_path: Path) -> None:
    bank = tmp_path / "b.duckdb"
    assert CliRunner().invoke(cli, ["--bank", str(bank), "init"]).exit_code == 0
    seed = tmp_path / "seed.jsonl"
    topics = [("bond", "coupon", "yield", "maturity", "par"), ("stock", "dividend", "payout", "equity", "share"),
              ("loan", "principal", "interest", "amortised", "balance"), ("fund", "index", "tracking", "expense", "ratio")]
    seed.write_text("".join(json.dumps({
        "id": f"f{k}", "question": f"In {t[0]} markets, which term names the {t[1]} paid on the {t[3]} date?",
        "choices": [t[1], t[2], t[3], t[4]], "answer": "A", "language": "en", "tags": {"domain": "finance"}}) + "\n"
        for k, t in enumerate(topics)), encoding="utf-8")
    assert CliRunner().invoke(cli, ["--bank", str(bank), "bank", "import", str(seed), "--source", "seed"]).exit_code == 0
    with stub_server() as (state, url):
        backend = ["--backend", "openai", "--backend-arg", f"base_url={url}", "--backend-arg", "concurrency=1",
                   "--backend-arg", "max_retries=0"]
        # the second item the model writes copies a bank item with its options reordered: QC must catch it
        written = [
            {"question": "Which gas makes up most of the air we breathe at sea level?",
             "choices": ["oxygen", "nitrogen", "argon", "carbon dioxide"], "answer": "B"},
            {"question": "In bond markets, which term names the coupon paid on the maturity date?",   # a copy
             "choices": ["yield", "coupon", "maturity", "par"], "answer": "B"},
            {"question": "Who painted the ceiling of the Sistine Chapel in Rome?",
             "choices": ["Raphael", "Michelangelo", "Donatello", "Titian"], "answer": "B"}]
        state.reply = lambda prompt, n: "```json\n" + json.dumps({**written[n], "rationale": "r", "tags": {}}) + "\n```"
        out = _ok(bank, "generate", "topic", "domain=finance", "--n", "3", "--model", "writer", *backend)
        drafts = out["draft_ids"]
        assert out["drafts"] == 3
        # solvers: every one answers B (the stub's key), so every draft is 'trivial' and none 'key_suspect'
        state.reply = lambda prompt, n: "B"
        qc = _ok(bank, "qc", "--solver", "s1", "--solver", "s2", "--solver", "s3", "--mc-mode", "generate", *backend)
    assert qc["n_items"] == 3 and qc["flags"]["trivial"] == 3 and qc["flags"]["key_suspect"] == 0
    assert qc["flags"]["schema_error"] == 0
    with open_bank(bank) as b:
        flags = b.qc_flags(drafts)
    assert all(set(flags[d]) == {"schema", "near_duplicate", "leakage", "solvers"} for d in drafts)
    copied = [d for d in drafts if flags[d]["near_duplicate"]["flags"]]
    assert len(copied) == 1 and flags[copied[0]]["leakage"]["flags"] == ["leak"]
    assert flags[copied[0]]["leakage"]["detail"]["matches"][0]["source"] == "seed"
    assert qc["flags"]["near_duplicate"] == 1 and qc["flags"]["leak"] == 1

    server = make_server(opener_for(bank), port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        html = urllib.request.urlopen(server.url, timeout=30).read().decode()
        assert all(d in html for d in drafts) and "trivial" in html and "near_duplicate" in html
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, "action": "approve", "item": drafts[0], "seen": "draft",
                                       "reviewer": "ann", "reason": "checked by hand"}).encode()
        req = urllib.request.Request(server.url + "decide", data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded",
                                              "Origin": server.url.rstrip("/")})
        after = urllib.request.urlopen(req, timeout=30).read().decode()   # follows the 303 back to the queue
        assert "approved by ann" in after
    finally:
        server.shutdown()
        thread.join(timeout=10)

    form = _ok(bank, "sample", "--strategy", "all", "--filter", "source=generated", "--review-state", "approved",
               "--name", "grown")
    assert form["item_ids"] == [drafts[0]]
    audit = CliRunner().invoke(cli, ["--bank", str(bank), "audit", "item", drafts[0]])
    assert audit.exit_code == 0, audit.output
    for text in ("origin=model-generated", "generator=openai:writer", '"template": "gen-topic-en@1"',
                 '"check": "solvers"', '"check": "near_duplicate"', '"trivial"',
                 '"reviewer": "ann"', "approved"):
        assert text in audit.output, text
