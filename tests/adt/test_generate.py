"""``adt generate`` (issue 13, generation) against a scripted OpenAI-compatible server on 127.0.0.1: drafts with
provenance, malformed output kept as rejected items with the reason, the budget, a backend failing half way,
documents, variants, and generate -> review approve -> sample -> audit end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from gen_stub import StubState, good_item, stub_server

from adt.cli import cli
from adt.workflow import generate as gen
from adtbase.errors import BankBusy, RunnerError
from itembank import open_bank
from runners import Completion, create, prompt_hash


def _adt(bank: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args])


def _fails(bank: Path, *args: str) -> str:
    """The message of a refused command (exit 1; ``adt.cli.main`` prints it)."""
    res = _adt(bank, *args)
    assert res.exit_code == 1, res.output
    return res.output + ("" if isinstance(res.exception, SystemExit) else str(res.exception))


def _ok(bank: Path, *args: str) -> Any:
    res = _adt(bank, *args, "--json")
    assert res.exit_code == 0, res.output + repr(res.exception)
    return json.loads(res.output)


@pytest.fixture()
def bank(tmp_path: Path) -> Path:
    """Approved finance and law items (en), and one zh item, to draw exemplars and parents from."""
    path = tmp_path / "b.duckdb"
    assert _adt(path, "init").exit_code == 0
    rows = [{"id": f"f{k}", "question": f"Finance question {k}: which rate?", "choices": ["1%", "2%", "3%", "4%"],
             "answer": "ABCD"[k % 4], "language": "en", "tags": {"domain": "finance" if k < 5 else "law"}}
            for k in range(8)]
    rows.append({"id": "z0", "question": "一年有几个月？", "choices": ["10", "11", "12", "13"], "answer": "C",
                 "language": "zh", "tags": {"domain": "finance"}})
    f = tmp_path / "cur.jsonl"
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert _adt(path, "bank", "import", str(f), "--source", "cur").exit_code == 0
    return path


@pytest.fixture()
def stub() -> Iterator[tuple[StubState, str]]:
    with stub_server() as s:
        yield s


def _backend(url: str, *extra: str) -> list[str]:
    return ["--backend", "openai", "--model", "stub", "--backend-arg", f"base_url={url}",
            "--backend-arg", "concurrency=1", "--backend-arg", "max_retries=0", *extra]


def _record(bank: Path, item_id: str) -> dict[str, Any]:
    with open_bank(bank) as b:
        rec = b.item(item_id)
        row = b.execute("SELECT origin, generator, generator_params, parent_item_id FROM items WHERE item_id = ?",
                        [item_id]).fetchone()
        last = b.review_decisions([item_id]).get(item_id)
    assert row is not None
    return {**rec, "origin": row[0], "generator": row[1], "params": json.loads(row[2]), "parent": row[3],
            "last": last}


def _bank_bytes(bank: Path) -> bytes:
    return bank.read_bytes()


def test_topic_drafts_carry_provenance_and_malformed_output_is_kept_rejected(bank: Path, stub) -> None:  # noqa: ANN001
    state, url = stub
    state.reply = lambda prompt, n: "I cannot do that {" if n == 2 else good_item(n)
    out = _ok(bank, "generate", "topic", "domain=finance", "language=en", "--n", "4", "--seed", "5", *_backend(url))
    assert out["calls"] == 4 and out["drafts"] == 3 and out["rejected"] == 1 and out["duplicates"] == 0
    assert out["tokens_in"] == 40 and out["tokens_out"] == 80 and out["stopped"] is None and out["failed"] is None
    with open_bank(bank) as b:
        finance = set(b.items({"domain": ["finance"], "language": ["en"]})["item_id"])
    for number, item_id in enumerate(out["draft_ids"]):
        rec = _record(bank, item_id)
        p = rec["params"]
        assert rec["review_state"] == "draft" and rec["origin"] == "model-generated"
        assert rec["generator"] == "openai:stub" and rec["tags"]["domain"] == ["finance"]
        assert p["template"] == "gen-topic-en@1" and p["seed"] == 5 and p["method"] == "topic"
        k = [0, 1, 3][number]
        assert p["number"] == k and p["call_seed"] == 5 + k
        assert p["prompt_hash"] == prompt_hash(state.prompts[k])   # the hash of exactly what the model saw
        assert state.bodies[k]["seed"] == 5 + k and state.bodies[k]["temperature"] == 0.7
        assert p["rationale"].startswith(f"{k} + ") and p["model_tags"] == {"skill": "addition"}
        assert 1 <= len(p["exemplars"]) <= 3 and set(p["exemplars"]) <= finance
        assert rec["answer"] == "B" and rec["aliases"] == [f"generated:{out['batch']}-{k:05d}"]
    [bad] = out["rejected_ids"]
    rec = _record(bank, bad)
    assert rec["review_state"] == "rejected" and rec["question"] == "I cannot do that {"
    assert rec["last"]["reviewer"] == "adt generate"
    assert rec["last"]["reason"] == "malformed generator output: no JSON object in the output"
    assert rec["params"]["raw_output"] == "I cannot do that {" and rec["params"]["number"] == 2
    assert _ok(bank, "bank", "verify")["ok"]


def test_the_exemplars_come_from_the_approved_slice_with_the_seeded_generator() -> None:
    ex = [{"item_id": f"it_{k}", "question": f"q{k}", "choices": ["a", "b"], "answer": "A"} for k in range(6)]
    a = gen.topic_jobs({"domain": ["x"]}, ex, n=3, language="zh", item_type="mc", shots=2, rng=np.random.default_rng(1))
    b = gen.topic_jobs({"domain": ["x"]}, ex, n=3, language="zh", item_type="mc", shots=2, rng=np.random.default_rng(1))
    c = gen.topic_jobs({"domain": ["x"]}, ex, n=3, language="zh", item_type="mc", shots=2, rng=np.random.default_rng(2))
    assert [j.prompt for j in a] == [j.prompt for j in b] != [j.prompt for j in c]
    assert all(j.template == "gen-topic-zh@1" and "选择题" in j.prompt and len(j.extra["exemplars"]) == 2 for j in a)
    assert all(j.prompt_hash == prompt_hash(j.prompt) for j in a)


@pytest.mark.parametrize(("text", "problem"), [
    ("", "the output is empty"),
    ('{"question": "Q?", "choices": ["a", "b"], "rationale": "r"}', "'answer' is missing"),
    ('{"question": "Q?", "choices": ["a", "b"], "answer": "E"}', "answer 'E'"),
    ('{"question": " ", "choices": "a, b", "answer": "A"}', "'question' is missing or not text; 'choices' is not a list"),
    ('{"question": "Q?", "choices": ["a", "b"], "answer": "A", "tags": ["x"]}', "'tags' is not a mapping"),
])
def test_parse_output_names_every_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace("?", r"\?")):
        gen.parse_output(text, "mc")


def test_parse_output_takes_the_first_object_in_fences_and_braces_in_text() -> None:
    got = gen.parse_output('Here {not json}\n```json\n{"question": "Is {x} set?", "choices": ["yes", "no"], '
                           '"answer": 1, "rationale": "r", "tags": {"k": "v"}}\n```', "mc")
    assert got.question == "Is {x} set?" and got.choices == ("yes", "no") and got.answer == 1
    assert gen.parse_output('{"question": "2+2?", "choices": [], "answer": 4}', "numeric").answer == 4


def test_a_slice_the_bank_has_no_item_of_is_generated_zero_shot_and_typos_are_refused(bank: Path, stub) -> None:  # noqa: ANN001
    state, url = stub
    out = _ok(bank, "generate", "topic", "domain=insurance", "--n", "1", *_backend(url))
    assert out["drafts"] == 1 and "Example 1" not in state.prompts[0]
    assert _record(bank, out["draft_ids"][0])["params"]["exemplars"] == []
    assert "unknown tag key 'domian'" in _fails(bank, "generate", "topic", "domian=finance", *_backend(url))
    assert "scenario" in _fails(bank, "generate", "topic", "scenario=nonsense", *_backend(url))
    assert len(state.prompts) == 1


def test_the_budget_stops_generation_and_reports_what_was_used(bank: Path, stub) -> None:  # noqa: ANN001
    state, url = stub
    out = _ok(bank, "generate", "topic", "domain=finance", "--n", "10", "--batch-size", "2", "--max-calls", "3",
              *_backend(url))
    assert len(state.prompts) == 3 and out["calls"] == 3 and out["drafts"] == 3
    assert out["stopped"] == "call budget reached (3 of 3)"
    state.prompts.clear()
    out = _ok(bank, "generate", "topic", "domain=finance", "--n", "10", "--batch-size", "1", "--max-tokens", "50",
              "--seed", "9", *_backend(url))
    assert len(state.prompts) == 2 and out["tokens_in"] + out["tokens_out"] == 60   # checked before each batch
    assert out["stopped"] == "token budget reached (60 of 50)"


def test_a_backend_failing_half_way_loses_nothing_already_generated(bank: Path, stub) -> None:  # noqa: ANN001
    state, url = stub
    state.fail_from = 3
    msg = _fails(bank, "generate", "topic", "domain=finance", "--n", "6", "--batch-size", "2", *_backend(url))
    assert "the backend failed after 2 of 6 prompts (everything before kept)" in msg and "HTTP 500" in msg
    with open_bank(bank) as b:
        drafts = b.items({"review_state": ["draft"]})
    assert len(drafts) == 2 and set(drafts["origin"]) == {"model-generated"}   # the first batch, whole
    assert _ok(bank, "bank", "verify")["ok"]


def test_outputs_the_bank_cannot_take_are_kept_in_a_file(bank: Path, stub, monkeypatch) -> None:  # noqa: ANN001
    _, url = stub
    real = gen.write_rows
    seen: list[int] = []

    def busy_on_second(*args: Any, **kwargs: Any) -> None:
        seen.append(1)
        if len(seen) == 2:
            raise BankBusy(f"bank {bank} is held by pid 1 (a test) since now")
        real(*args, **kwargs)

    monkeypatch.setattr(gen, "write_rows", busy_on_second)
    msg = _fails(bank, "generate", "topic", "domain=finance", "--n", "6", "--batch-size", "2", *_backend(url))
    kept = bank.with_name(f"{bank.name}.{msg.split('(openai:stub, ')[1].split(')')[0]}-00002.jsonl")
    assert "is held by pid 1" in msg and f"this batch's 2 outputs were not written to the bank, kept in {kept}" in msg
    rows = [json.loads(line) for line in kept.read_text(encoding="utf-8").splitlines()]
    assert [r["generator_params"]["number"] for r in rows] == [2, 3] and rows[0]["question"] == "What is 2 + 3?"
    with open_bank(bank) as b:
        assert len(b.items({"review_state": ["draft"]})) == 2   # the first batch; the third was never asked for


def test_a_backend_returning_nothing_usable_leaves_only_rejected_items(bank: Path, stub) -> None:  # noqa: ANN001
    state, url = stub
    state.reply = lambda prompt, n: ""
    out = _ok(bank, "generate", "topic", "domain=finance", "--n", "3", *_backend(url))
    assert out["drafts"] == 0 and out["rejected"] == 1 and out["duplicates"] == 2   # three empty outputs: one item
    rec = _record(bank, out["rejected_ids"][0])
    assert rec["last"]["reason"] == "malformed generator output: the output is empty"
    with open_bank(bank) as b:
        assert b.items({"review_state": ["draft"]}).empty


def test_generation_needs_a_text_generating_backend() -> None:
    runner = create("simulated", theta=0.0, params={"it_x": (1.0, 0.0, 0.0, 1.0)}, rng=0)
    with pytest.raises(RunnerError, match="does not generate free text.*hf, vllm or openai"):
        runner.complete(["hello"])


def test_document_items_keep_their_source_span(bank: Path, stub, tmp_path: Path) -> None:  # noqa: ANN001
    state, url = stub
    doc = tmp_path / "policy.md"
    paras = [f"Paragraph {k}: the fee is {k} percent of the balance. " * 6 for k in range(4)]
    text = "\n\n".join(paras)
    doc.write_text(text, encoding="utf-8")
    out = _ok(bank, "generate", "document", str(doc), "--n", "3", "--chunk-chars", "400", "--tag", "domain=finance",
              *_backend(url))
    assert out["drafts"] == 3
    for k, item_id in enumerate(out["draft_ids"]):
        p = _record(bank, item_id)["params"]
        start, end = p["span"]
        assert p["source_file"] == str(doc) and len(p["source_sha256"]) == 64 and p["template"] == "gen-document-en@1"
        assert text[start:end] in state.prompts[k] and text[start:end].strip().startswith(f"Paragraph {k}")


def test_a_pdf_document_is_read_as_text(bank: Path, stub, tmp_path: Path) -> None:  # noqa: ANN001
    """A real PDF (written by matplotlib's PDF backend with embedded TrueType text), read by pypdf."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    state, url = stub
    doc = tmp_path / "rates.pdf"
    with matplotlib.rc_context({"pdf.fonttype": 42}):
        fig = plt.figure(figsize=(8.5, 11))
        fig.text(0.05, 0.9, "Interest rates rose by 2 percent in 2023.")
        fig.text(0.05, 0.85, "The central bank meets eight times a year.")
        fig.savefig(doc)
        plt.close(fig)
    out = _ok(bank, "generate", "document", str(doc), "--n", "1", "--tag", "domain=finance", *_backend(url))
    assert out["drafts"] == 1
    p = _record(bank, out["draft_ids"][0])["params"]
    assert p["source_file"] == str(doc)
    assert "The central bank meets eight times a year." in state.prompts[0]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.md", None, "no such file"),
    ("bad.txt", b"\xff\xfe\x00bad", "not UTF-8 text"),
    ("empty.md", b"  \n", "the document is empty"),
    ("doc.pdf", b"%PDF-1.4", "not a readable PDF"),
    ("doc.docx", b"x", "documents are .txt, .md"),
])
def test_an_unreadable_document_is_a_clear_error_and_writes_nothing(bank: Path, stub, tmp_path: Path, name: str,
                                                                     content: bytes | None, message: str) -> None:  # noqa: ANN001
    state, url = stub
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    before = _bank_bytes(bank)
    msg = _fails(bank, "generate", "document", str(path), "--n", "2", *_backend(url))
    assert message in msg and str(path) in msg
    assert state.prompts == [] and _bank_bytes(bank) == before


def test_variants_keep_the_parent_link_and_translate(bank: Path, stub) -> None:  # noqa: ANN001
    state, url = stub
    state.reply = lambda prompt, n: good_item(n, "zh" if "中文" in prompt else "en")
    out = _ok(bank, "generate", "variant", "--item", "cur:f1", "--item", "cur:f2", "--kind", "translate", "--n", "2",
              *_backend(url))
    assert out["drafts"] == 2
    with open_bank(bank) as b:
        parents = [b.resolve("cur:f1"), b.resolve("cur:f2")]
        derived = b.item(parents[0])["derived_items"]
    recs = [_record(bank, i) for i in out["draft_ids"]]
    assert [r["parent"] for r in recs] == parents and derived == [out["draft_ids"][0]]
    assert all(r["origin"] == "variant" and r["language"] == "zh" and r["params"]["variant"] == "translate"
               and r["params"]["template"] == "gen-translate-zh@1" for r in recs)
    assert "Finance question 1" in state.prompts[0]
    assert "already in zh" in _fails(bank, "generate", "variant", "--item", "cur:z0", "--kind", "translate",
                                     "--language", "zh", *_backend(url))


def test_rate_limit_paces_the_calls() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = gen.Pacer(120.0, clock=lambda: now[0], sleep=sleep)   # 2 calls a second
    for _ in range(3):
        pacer.wait(4)
    assert slept == [2.0, 2.0]


def test_budget_trims_a_batch_to_the_calls_left() -> None:
    b = gen.Budget(max_calls=5)
    assert b.calls_left(4) == 4
    b.spend([Completion("x", 1, 1)] * 4)
    assert b.calls_left(4) == 1 and b.stop_reason() is None
    b.spend([Completion("x", 1, 1)])
    assert b.calls_left(4) == 0 and b.stop_reason() == "call budget reached (5 of 5)"


def test_end_to_end_generate_review_sample_audit(bank: Path, stub) -> None:  # noqa: ANN001
    _, url = stub
    out = _ok(bank, "generate", "topic", "domain=finance", "--n", "2", *_backend(url))
    first, second = out["draft_ids"]
    # Drafts never enter a form by default.
    form = _ok(bank, "sample", "--strategy", "all", "--filter", "source=generated", "--name", "g0")
    assert form["item_ids"] == []
    assert _adt(bank, "review", "approve", first, "--reviewer", "ann").exit_code == 0
    form = _ok(bank, "sample", "--strategy", "all", "--filter", "source=generated", "--review-state", "approved",
               "--name", "g1")
    assert form["item_ids"] == [first]
    assert [row["item_id"] for row in _ok(bank, "form", "show", "g1")["items"]] == [first]
    audit = _adt(bank, "audit", "item", first)
    assert audit.exit_code == 0, audit.output
    for text in ("origin=model-generated", "generator=openai:stub", '"template": "gen-topic-en@1"',
                 f'"prompt_hash": "{_record(bank, first)["params"]["prompt_hash"]}"', "aliases: generated:gen_",
                 ' created {"content_hash"', ' approved {"from": "draft", "reviewer": "ann"}'):
        assert text in audit.output, text


@pytest.fixture()
def sums(bank: Path, tmp_path: Path) -> Path:
    """Two approved numeric items for renumbering."""
    f = tmp_path / "sums.jsonl"
    f.write_text(json.dumps({"id": "s0", "question": "A shop sells 12 pens and then 30 more. How many pens?",
                             "answer": "42", "type": "numeric", "language": "en"}) + "\n"
                 + json.dumps({"id": "s1", "question": "Tom has 7 apples and gets 5 more. How many apples?",
                               "answer": "12", "type": "numeric", "language": "en"}) + "\n", encoding="utf-8")
    assert _adt(bank, "bank", "import", str(f), "--source", "sums").exit_code == 0
    return bank


def test_renumber_runs_the_model_written_solver_in_the_sandbox(sums: Path, stub) -> None:  # noqa: ANN001
    state, url = stub
    state.reply = lambda prompt, n: ("Here:\n```python\ndef solve(n0, n1):\n    return n0 + n1\n```" if n == 0
                                     else "```python\ndef solve(n0, n1):\n    return n0 * n1\n```")
    out = _ok(sums, "generate", "variant", "--item", "sums:s0", "--item", "sums:s1", "--kind", "renumber",
              "--n", "2", "--seed", "3", *_backend(url))
    assert out["drafts"] == 1 and out["rejected"] == 1
    assert "def solve(n0, n1):" in state.prompts[0] and "n0=12, n1=30" in state.prompts[0]
    rec = _record(sums, out["draft_ids"][0])
    with open_bank(sums) as b:
        parent = b.resolve("sums:s0")
    numbers = rec["params"]["variant_params"]["numbers"]
    assert rec["parent"] == parent and rec["origin"] == "variant" and rec["generator"] == "openai:stub"
    assert rec["answer"] == str(int(numbers["n0"]) + int(numbers["n1"]))   # computed, not guessed
    assert rec["question"] != "A shop sells 12 pens and then 30 more. How many pens?"
    assert rec["params"]["template"] == "gen-solver-en@1" and rec["params"]["program"].startswith("def solve")
    bad = _record(sums, out["rejected_ids"][0])
    assert bad["last"]["reason"].startswith("solver program refused: ") and "program is wrong" in bad["last"]["reason"]
    calls = len(state.prompts)
    assert "has no numbers in its question" in _fails(sums, "generate", "variant", "--item", "cur:z0", "--kind",
                                                      "renumber", *_backend(url))
    assert len(state.prompts) == calls   # refused before any call


def test_shuffle_needs_no_model_and_the_key_follows(sums: Path) -> None:
    bank = sums
    out = _ok(bank, "generate", "variant", "--item", "cur:f1", "--kind", "shuffle", "--n", "2", "--seed", "1")
    assert out["calls"] == 0 and out["drafts"] == 2
    with open_bank(bank) as b:
        parent = b.item("cur:f1")
    for item_id in out["draft_ids"]:
        rec = _record(bank, item_id)
        assert rec["parent"] == parent["item_id"] and rec["generator"] == "variant:shuffle@1"
        assert rec["review_state"] == "draft" and rec["choices"] != parent["choices"]
        key = parent["choices"]["ABCD".index(parent["answer"])]
        assert rec["choices"]["ABCD".index(rec["answer"])] == key
    before = _bank_bytes(bank)
    assert "needs a choice item" in _fails(bank, "generate", "variant", "--item", "cur:f2", "--item", "sums:s0",
                                           "--kind", "shuffle")
    assert _bank_bytes(bank) == before
