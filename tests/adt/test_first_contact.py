"""First contact with a real bank (issue 12), through the CLI only.

A bank built the way an operator's is: single-choice, multi-select and numeric items (keys in scientific
notation, thousands, fractions, units; tolerances), custom tag keys ``topic`` (40 values) and ``difficulty``,
recorded answers of 33 models (one a random baseline, two items with a planted wrong key) and one more model
replayed from its record. One ``adt bank import`` (no ``--no-key`` split) to a report with per-topic slices;
every bad input on the way gets the informative message, and leaves the bank as it was.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from adt.cli import cli

BIG_TOPICS = ("algebra", "mechanics", "<i>organic</i> & bio", "genetics")   # markup: the report escapes it
SMALL_TOPICS = tuple(f"topic-{k:02d}" for k in range(36))
# numeric keys as written -> as stored (tolerance column where given)
NUMERIC = (("3.27E-22", None, "3.27e-22"), ("6.022×10^23", None, "6.022e23"), ("1,234", None, "1234"),
           ("3/4", None, "3/4"), ("-285.8 kJ/mol", None, "-285.8"), ("9.81", "0.05", "9.81 ± 0.05"),
           ("45%", None, "45"), ("2.5e3", "1%", "2.5e3 ± 1%"))
# multi-select keys in four accepted forms, all naming beta and delta -> stored "B,D"
MULTI = (["B", "D"], "B,D", [1, 3], ["beta", "delta"])
PLANTED = ("q011", "q056")          # single-choice items whose stored key is a distractor weak models pick
XSS = "Which is safe? <script>alert(1)</script>"
BASELINE = "random-baseline"
NEWCOMER = "new-model+ft"          # replayed from its record, not imported: a name with '+'
FORM = "round-1+extra"             # a form name with '+'


def make_items() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    topics = list(BIG_TOPICS) * 25 + [t for t in SMALL_TOPICS for _ in range(3)]
    for k, topic in enumerate(topics):
        kind = ("mc", "mc", "mc", "multi", "numeric")[k % 5]
        row: dict[str, Any] = {"id": f"q{k:03d}", "question": f"Question {k} about {topic}?", "type": kind,
                               "tags": {"topic": topic, "difficulty": "basic" if k % 2 == 0 else "advanced"}}
        if kind == "mc":
            row.update(choices=[f"option {k}-{j}" for j in range(4)], answer="ABCD"[k % 4])
        elif kind == "multi":
            row.update(question=f"Select all that apply ({k}, {topic})", choices=["alpha", "beta", "gamma", "delta"],
                       answer=MULTI[(k // 5) % len(MULTI)])
        else:
            raw, tol, _ = NUMERIC[(k // 5) % len(NUMERIC)]
            row["answer"] = raw
            if tol is not None:
                row["tolerance"] = tol
        rows.append(row)
    rows.append({"id": "xss", "question": XSS, "type": "mc", "choices": ["<b>bold</b>", "plain", "x", "y"],
                 "answer": "B", "tags": {"topic": "algebra", "difficulty": "basic"}})
    dup = dict(rows[0], id="q000-copy")     # the same content under another id: merged into q000's item
    rows.append(dup)
    return rows


def make_responses(items: list[dict[str, Any]], seed: int = 1) -> pd.DataFrame:
    """Recorded answers: 2PL-ish (guessing 1/n on single choice, none on multi/numeric), 32 models of spread
    ability plus a random baseline; the planted items are right mostly for weak models."""
    items = [r for r in items if r["id"] != "q000-copy"]
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0.2, 0.3, len(items))
    b = np.array([rng.normal(-0.8 if r["tags"]["difficulty"] == "basic" else 0.8, 0.6) for r in items])
    guess = np.array([1 / len(r["choices"]) if r["type"] == "mc" else 0.0 for r in items])
    models = [f"org/model-{k:02d}" for k in range(32)] + [NEWCOMER]
    thetas = np.linspace(-2.0, 2.5, len(models))
    rng.shuffle(thetas)
    out = []
    for model, theta in zip(models, thetas, strict=True):
        p = guess + (1 - guess) / (1 + np.exp(-a * (theta - b)))
        for i, r in enumerate(items):
            pi = 0.9 / (1 + np.exp(2.5 * theta)) if r["id"] in PLANTED else p[i]
            out.append((model, r["id"], float(rng.random() < pi)))
    for r in items:
        out.append((BASELINE, r["id"], float(rng.random() < (1 / len(r["choices"]) if r["type"] == "mc" else 0.01))))
    frame = pd.DataFrame(out, columns=["model", "question_id", "correct"])
    frame["pred"] = np.where(frame["correct"] > 0, "right", "wrong")
    frame["pred_missing"] = False
    return frame


def adt(bank: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--bank", str(bank), *args])


def ok(bank: Path, *args: str) -> str:
    res = adt(bank, *args)
    assert res.exit_code == 0, res.output
    return res.stdout


def fails(bank: Path, *args: str) -> str:
    """The one-line error of a user error (exit 1), the bank file unchanged."""
    before = bank.read_bytes()
    res = adt(bank, *args)
    assert res.exit_code == 1, res.output
    assert bank.read_bytes() == before
    # an error raised (AdtError) is its message; a command that prints its verdict and exits 1 is its output
    return res.output.strip() if isinstance(res.exception, SystemExit) else str(res.exception)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("first_contact")
    items = make_items()
    (tmp / "items.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items))
    record = make_responses(items)
    record.to_parquet(tmp / "record.parquet")                            # everything, for the replay
    record[record["model"] != NEWCOMER].to_parquet(tmp / "responses.parquet")
    bank = tmp / "bank.duckdb"
    ok(bank, "init")
    imported = ok(bank, "bank", "import", str(tmp / "items.jsonl"), "--source", "fc", "--extend-taxonomy")
    responses = ok(bank, "responses", "import", str(tmp / "responses.parquet"), "--source", "fc",
                   "--model-col", "model", "--item-col", "question_id", "--score-col", "correct")
    calibrated = ok(bank, "calibrate")
    return {"tmp": tmp, "bank": bank, "items": items, "imported": imported, "responses": responses,
            "calibrated": calibrated}


def est_observed(bank: Path) -> float:
    return float(json.loads(ok(bank, "estimate", "--model", NEWCOMER, "--json"))["observed_accuracy"])


def item(bank: Path, ref: str) -> dict[str, Any]:
    return json.loads(ok(bank, "bank", "show", ref, "--json"))


def test_one_import_stores_canonical_keys_and_names_the_merged_row(world: dict[str, Any]) -> None:
    bank = world["bank"]
    assert world["imported"].startswith("210 rows -> 209 items (209 new, 0 already in the bank")
    # the duplicate row is named (file, line, id), not only counted
    assert re.search(r"1 duplicate row merged into an earlier row of the same item \([^)]*items\.jsonl: line 210 "
                     r"\(id q000-copy\)\)",
                     world["imported"]), world["imported"]
    # re-importing the same file changes nothing, and --json lists the merged row with its item
    snap = ok(bank, "bank", "snapshot-id")
    again = json.loads(ok(bank, "bank", "import", str(world["tmp"] / "items.jsonl"), "--source", "fc", "--json"))
    assert again["batch_id"] is None and again["new_items"] == 0 and ok(bank, "bank", "snapshot-id") == snap
    first = item(bank, "fc:q000")
    path = str(world["tmp"] / "items.jsonl")
    assert again["merged_rows"] == [{"row": f"{path}: line 210", "file": path, "line": 210,
                                     "external_id": "q000-copy", "item_id": first["item_id"]}]
    assert sorted(first["aliases"]) == ["fc:q000", "fc:q000-copy"]
    # keys: multi-select in every form stored "B,D"; numeric notations stored canonically, tolerance in the key
    by_id = {r["id"]: r for r in world["items"]}
    for k in range(3, 200, 5):        # the multi-select items
        shown = item(bank, f"fc:q{k:03d}")
        assert (shown["item_type"], shown["answer"]) == ("multi", "B,D"), (by_id[f"q{k:03d}"]["answer"], shown)
    for k in range(4, 4 + 5 * len(NUMERIC), 5):
        raw, _, stored = NUMERIC[(k // 5) % len(NUMERIC)]
        shown = item(bank, f"fc:q{k:03d}")
        assert (shown["item_type"], shown["answer"]) == ("numeric", stored), raw
    assert item(bank, "fc:q000")["answer"] == "A" and item(bank, "fc:xss")["question"] == XSS
    topic = item(bank, "fc:q002")
    assert topic["tags"] == {"topic": ["<i>organic</i> & bio"], "difficulty": ["basic"]}
    # bank stats: the tier columns say what they count
    stats = json.loads(ok(bank, "bank", "stats", "--json"))
    assert list(stats[0]) == ["items", "freq_tier_low", "freq_tier_medium", "freq_tier_high"]
    assert stats[0]["items"] == 209 and stats[0]["freq_tier_high"] == 209   # every item answered by 33 runs
    assert "freq_tier_low  freq_tier_medium  freq_tier_high" in ok(bank, "bank", "stats")


def test_a_file_with_many_problems_reports_them_all_grouped_and_imports_nothing(world: dict[str, Any]) -> None:
    bank, tmp = world["bank"], world["tmp"]
    tags = {"topic": "algebra", "difficulty": "basic"}
    bad: list[dict[str, Any]] = [{"id": "b1", "question": "Q1?", "type": "mc", "choices": ["a", "b", "c", "d"], "answer": "E"},
           {"id": "b2", "question": "Q2?", "type": "numeric", "answer": "about five"},
           {"id": "b3", "question": "Q3?", "type": "numeric", "answer": "twelve"},
           {"id": "b4", "question": "Q4?", "type": "multi", "choices": ["a", "b", "c", "d"], "answer": ["B", "F"]},
           {"id": "b5", "question": "", "type": "mc", "choices": ["a", "b", "c", "d"], "answer": "A"},
           {"id": "b6", "question": "Q6?", "type": "numeric", "answer": "5", "tolerance": "lots"},
           {"id": "b7", "question": "Q7?", "type": "mc", "choices": ["a", "b", "c", "d"], "answer": "F"},
           {"id": "b8", "question": "Q8 is fine?", "type": "mc", "choices": ["a", "b", "c", "d"], "answer": "C"}]
    path = tmp / "bad.jsonl"
    path.write_text("".join(json.dumps({**r, "tags": tags}) + "\n" for r in bad))
    msg = fails(bank, "bank", "import", str(path), "--source", "more")
    lines = msg.splitlines()
    assert lines[0] == f"7 problems in {path}, of 5 kinds; nothing was imported:"
    assert "  not a multiple-choice answer key (field 'answer'): 2 rows" in lines
    assert f"    {path}: line 1: field 'answer': answer 'E' is not among the 4 choices (A-D)" in lines
    assert f"    {path}: line 7: field 'answer': answer 'F' is not among the 4 choices (A-D)" in lines
    assert "  not a numeric answer key (field 'answer'): 2 rows" in lines
    assert f"    {path}: line 2: field 'answer': answer 'about five' is not a number" in lines
    assert "  not a multi-select answer key (field 'answer'): 1 row" in lines
    assert f"    {path}: line 4: field 'answer': answer 'F' names a label not among the 4 choices (A-D)" in lines
    assert "  the question is empty (field 'question'): 1 row" in lines
    assert (f"    {path}: line 6: field 'tolerance': tolerance 'lots' is not a number or a percentage "
            "(like 0.01 or 1%)") in lines
    # the same as data
    res = adt(bank, "bank", "import", str(path), "--source", "more", "--json")
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["ok"] is False and data["problems"] == 7
    kinds = {(k["kind"], k["field"]): k for k in data["kinds"]}
    assert {kind: k["count"] for kind, k in kinds.items()} == {
        ("not a multiple-choice answer key", "answer"): 2, ("not a numeric answer key", "answer"): 2,
        ("not a multi-select answer key", "answer"): 1, ("the question is empty", "question"): 1,
        ("not a tolerance", "tolerance"): 1}
    first = kinds[("not a numeric answer key", "answer")]["first"]
    assert [(r["file"], r["line"], r["field"], r["value"]) for r in first] == [
        (str(path), 2, "answer", "about five"), (str(path), 3, "answer", "twelve")]



def test_custom_tag_keys_on_a_new_bank_say_how_to_add_them(world: dict[str, Any], tmp_path: Path) -> None:
    bank = tmp_path / "fresh.duckdb"
    ok(bank, "init")
    msg = fails(bank, "bank", "import", str(world["tmp"] / "items.jsonl"), "--source", "fc")
    lines = msg.splitlines()
    # one problem per unknown key (topic with its 40 values, difficulty with its 2), not one per value
    assert lines[0] == f"2 problems in {world['tmp'] / 'items.jsonl'}, of 1 kind; nothing was imported:"
    assert lines[1] == "  unknown tag key (field 'tags'): 2 rows"
    assert re.fullmatch(r"    .*items\.jsonl: line 1: field 'tags': unknown tag key 'topic'; known keys: ability, "
                        r"category, .*, task \(use --extend-taxonomy to add it\) \(39 more values of 'topic' in the "
                        r"files\)", lines[2]), lines[2]
    assert "unknown tag key 'difficulty'" in lines[3] and "(1 more value of 'difficulty' in the files)" in lines[3]
    assert len(lines) == 4


@pytest.mark.parametrize("args, head", [
    (["bank", "stats", "--filter", "topc=algebra"], "--filter topc: unknown key; did you mean 'topic'?"),
    (["bank", "stats", "--by", "dificulty"], "--by dificulty: unknown key; did you mean 'difficulty'?"),
    (["sample", "--strategy", "stratified", "--size", "20", "--name", "x", "--dry-run", "--quota", "topik=algebra:5"],
     "--quota topik: unknown key; did you mean 'topic'?"),
    (["sample", "--strategy", "stratified", "--size", "20", "--name", "x", "--dry-run", "--stratify-by", "topc"],
     "--stratify-by topc: unknown key; did you mean 'topic'?"),
    (["estimate", "--model", "org/model-01", "--by", "topics"], "--by topics: unknown key; did you mean 'topic'?"),
])
def test_misspelt_key_lists_the_banks_tag_keys_only(world: dict[str, Any], args: list[str], head: str) -> None:
    msg = fails(world["bank"], *args)
    assert msg.startswith(head), msg
    assert msg.endswith("tag keys of the bank's items: difficulty, topic; "
                        "built-in keys: language, item_type, frequency_tier, difficulty_band"), msg
    for column in ("question", "item_id", "choices", "answer"):
        assert column not in msg


def test_misspelt_values_model_head_and_names(world: dict[str, Any]) -> None:
    bank = world["bank"]
    msg = fails(bank, "sample", "--strategy", "stratified", "--size", "20", "--name", "x", "--dry-run",
                "--quota", "difficulty=basics:10")
    assert msg == "quota difficulty=basics: no item of the pool has difficulty 'basics'; did you mean 'basic'? " \
                  "difficulty has: advanced, basic"
    msg = fails(bank, "estimate", "--model", "org/model-01", "--filter", "topic=algebr")
    assert msg.startswith("--filter topic=algebr: no item has topic 'algebr'; did you mean 'algebra'? topic has: "
                          "<i>organic</i> & bio, algebra, genetics, mechanics, topic-00,"), msg
    assert msg.endswith("... (40 in all)"), msg
    msg = fails(bank, "estimate", "--model", "org/modle-01")
    assert msg.startswith("model 'org/modle-01' has no responses in the bank; did you mean 'org/model-01'? "
                          "models: org/model-00, org/model-01,"), msg
    assert msg.endswith("... (33 in all)"), msg
    # a head copied wrong: said to match no point of this history, not blamed on the history
    n = json.loads(ok(bank, "bank", "verify", "--json"))["n_events"]
    msg = fails(bank, "bank", "verify", "--head", f"{n // 2}:0123456789abcdef")
    assert msg.startswith(f"history does NOT verify: the given head {n // 2}:0123456789abcdef does not match any "
                          f"point of this history (the head the bank recorded at event {n} verifies"), msg
    assert "check that the head was copied from this bank, and in full" in msg and "None" not in msg
    # names: '+' is a name character; a space is not, and the rule is said
    msg = fails(bank, "sample", "--strategy", "random", "--size", "10", "--name", "round 1", "--dry-run")
    assert msg == "--name 'round 1' holds ' ': a name is 1 to 200 letters, digits and . _ - + : / @, " \
                  "starting with a letter or digit"


def test_flags_find_the_planted_keys_and_nothing_else(world: dict[str, Any]) -> None:
    """33 models simulated from the model itself: the two planted wrong keys are the only wrong_key flags,
    the random baseline makes no item misfit (an outfit t that points the other way is no flag)."""
    assert "(33 models, 33 runs, 209 items)" in world["calibrated"].splitlines()[0]
    flags = json.loads(ok(world["bank"], "calibration", "flags", "--json"))["flags"]
    wrong = sorted(a for f in flags if f["flag"] == "wrong_key" for a in f["aliases"])
    assert wrong == [f"fc:{q}" for q in PLANTED]
    assert not [f for f in flags if f["flag"].endswith("_misfit")], flags
    assert {f["flag"] for f in flags} <= {"wrong_key", "low_discrimination"}
    assert all(a in {f"fc:{q}" for q in PLANTED} for f in flags for a in f["aliases"]), flags


def test_import_to_report_with_topic_slices(world: dict[str, Any], tmp_path: Path) -> None:
    bank = tmp_path / "bank.duckdb"
    shutil.copyfile(world["bank"], bank)
    assert world["responses"].startswith("6897 rows: 6897 matched, 0 unknown; 33 runs, 6897 new responses")
    # a form: half basic, half advanced, topics in the bank's proportions (40 values: no empty '(other)' cell)
    drawn = json.loads(ok(bank, "sample", "--strategy", "stratified", "--size", "80", "--quota",
                          "difficulty=basic:40,advanced:40", "--stratify-by", "topic", "--seed", "3",
                          "--name", FORM, "--json"))
    assert drawn["stored"] and drawn["n_items"] == 80 and drawn["name"] == FORM
    assert sum(drawn["spec"]["quotas"]["topic"].values()) == pytest.approx(1.0)
    shown = json.loads(ok(bank, "form", "show", FORM, "--json"))["items"]
    levels = pd.Series([r["tags"]["difficulty"][0] for r in shown]).value_counts().to_dict()
    topics = pd.Series([r["tags"]["topic"][0] for r in shown]).value_counts()
    assert levels == {"basic": 40, "advanced": 40}
    assert set(topics.index) >= set(BIG_TOPICS) and topics.max() <= 11 and len(topics) == 40
    # the newcomer answers the form from its record (replay, mapped by the source's ids)
    run = json.loads(ok(bank, "run", "--form", FORM, "--model", NEWCOMER, "--backend", "replay", "--backend-arg",
                        f"path={world['tmp'] / 'record.parquet'}", "--backend-arg", "source=fc", "--no-progress",
                        "--json"))
    assert (run["run_id"], run["status"], run["n_scored"], run["n_missing"]) == (f"{FORM}:{NEWCOMER}", "finished", 80, 0)
    # the replayed scores are the record's
    record = pd.read_parquet(world["tmp"] / "record.parquet")
    mine = record[(record["model"] == NEWCOMER)].set_index("question_id")["correct"]
    form_ids = [sorted(r["aliases"])[0].removeprefix("fc:") for r in shown]
    assert est_observed(bank) == pytest.approx(mine.loc[form_ids].mean())
    est = json.loads(ok(bank, "estimate", "--model", NEWCOMER, "--by", "topic", "--json"))
    assert est["n_answered"] == 80 and est["by_key"] == "topic" and len(est["by"]) == 40
    rows = {r["topic"]: r for r in est["by"]}
    for topic in BIG_TOPICS:
        r = rows[topic]
        assert r["refused"] == "" and r["n_slice_items"] in (25, 26) and r["n_answered"] >= 10, r
        assert 0 <= r["pred_lo"] <= r["pred_acc"] <= r["pred_hi"] <= 1
    for topic in SMALL_TOPICS:
        r = rows[topic]
        assert r["n_slice_items"] == 3 and r["n_answered"] < 10, r
        n = r['n_answered']
        assert r["refused"] == f"{n} answered item{'' if n == 1 else 's'} (a sub-score needs at least 10)", r
    text = ok(bank, "estimate", "--model", NEWCOMER, "--by", "topic")
    assert "topic=topic-00: refused: " in text and "(a sub-score needs at least 10)" in text
    # the report: per-topic slices, the random baseline last, text escaped
    out = tmp_path / "report" / "report.html"
    ok(bank, "report", "--by", "topic", "--worlds", "20", "--out", str(out))
    page = out.read_text()
    assert "<h3>by topic</h3>" in page and 'data-testid="slice-topic"' in page
    header = page[page.index('data-testid="slice-topic"'):]
    header = header[:header.index("</thead>")]
    for topic in ("algebra", "genetics", "mechanics"):
        assert f"<th>{topic} (" in header, header
    assert "<th>&lt;i&gt;organic&lt;/i&gt; &amp; bio (25 items)</th>" in header, header
    assert "<i>organic</i>" not in page and "<script>alert(1)" not in page
    assert "36 value(s) with fewer than 10 items" in page
    board = re.findall(r'data-testid="leaderboard-row" data-model="([^"]+)"', page)
    assert len(board) == 34 and board[-1] == BASELINE and NEWCOMER in board, board
    for planted in PLANTED:
        assert f"fc:{planted}" in page


def test_import_help_documents_the_columns_and_answer_keys(tmp_path: Path) -> None:
    """The canonical columns and the key forms are in `adt bank import --help`, not only in the source."""
    text = ok(tmp_path / "none.duckdb", "bank", "import", "--help")
    for column in ("id", "question", "choices", "answer", "type", "language", "tags", "tolerance", "partial_credit"):
        assert re.search(rf"^\s+{column}\s", text, re.M), column
    for form in ('["B","D"]', "3.27E-22", "3/4", "9.81 +/- 0.05", "0-based", "#### 42"):
        assert form in text, form
