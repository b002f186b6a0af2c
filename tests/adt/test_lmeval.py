"""lm-eval interop: per-sample logs in (mmlu-, arc-, cmmlu-, mmlu-pro- and gsm8k-style), tasks and
--samples lists out, and a round trip through the real lm-eval package on a tiny local model."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from adt import lmeval
from adt.cli import cli
from adt.commands import lmeval as _lmeval_commands  # noqa: F401 - registers `adt lmeval`
from adtbase.errors import InputError
from itembank import open_bank


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def mc_record(doc_id: int, doc: dict, target: str, prompt: str, continuations: list[str], lls: list[float],
              acc: float) -> dict:
    """A multiple-choice line as lm-eval 0.4 writes it with --log_samples."""
    return {"doc_id": doc_id, "doc": doc, "target": target,
            "arguments": {f"gen_args_{i}": {"arg_0": prompt, "arg_1": c} for i, c in enumerate(continuations)},
            "resps": [[[str(x), "False"]] for x in lls], "filtered_resps": [[str(x), "False"] for x in lls],
            "filter": "none", "metrics": ["acc", "acc_norm"], "doc_hash": sha(json.dumps(doc, indent=2)),
            "prompt_hash": sha(prompt), "target_hash": sha(target), "acc": acc, "acc_norm": acc}


def gen_record(doc_id: int, doc: dict, target: str, prompt: str, output: str, extracted: str, em: float,
               filter_name: str = "strict-match") -> dict:
    return {"doc_id": doc_id, "doc": doc, "target": target,
            "arguments": {"gen_args_0": {"arg_0": prompt, "arg_1": {"until": ["Question:"], "do_sample": False}}},
            "resps": [[output]], "filtered_resps": [extracted], "filter": filter_name, "metrics": ["exact_match"],
            "doc_hash": sha(json.dumps(doc, indent=2)), "prompt_hash": sha(prompt + filter_name),
            "target_hash": sha(target), "exact_match": em}


def write_log(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_mmlu_style_log(bank_path: Path, tmp_path: Path) -> None:
    docs = [{"question": "2+2?", "subject": "math", "choices": ["3", "4", "5", "6"], "answer": 1},
            {"question": "Capital of Italy?", "subject": "geo", "choices": ["Rome", "Oslo", "Bern", "Riga"], "answer": 0},
            {"question": "2+2?", "subject": "math", "choices": ["3", "4", "5", "6"], "answer": 1}]   # a duplicate doc
    lls = [[-3.0, -1.0, -2.0, -4.0], [-2.0, -1.0, -3.0, -3.5], [-3.0, -1.0, -2.0, -4.0]]
    recs = [mc_record(i, d, str(d["answer"]), f"{d['question']}\nAnswer:", [" A", " B", " C", " D"], ll,
                      float(ll.index(max(ll)) == d["answer"])) for i, (d, ll) in enumerate(zip(docs, lls, strict=True))]
    log = write_log(tmp_path / "samples_mmlu_x.jsonl", recs)
    with open_bank(bank_path) as bank:
        rep = lmeval.import_log(bank, log, lmeval.LmevalImportOptions(task="mmlu_x", model="m1"))
        assert (rep.docs, rep.new_items, rep.metric, rep.filter) == (3, 2, "acc", "none")
        item = bank.item("lmeval/mmlu_x:1")
        assert item["choices"] == ["Rome", "Oslo", "Bern", "Riga"] and item["answer"] == "A"   # doc texts, not letters
        assert item["tags"] == {"subject": ["geo"], "task": ["mmlu_x"]}
        assert bank.resolve("lmeval/mmlu_x:0") == bank.resolve("lmeval/mmlu_x:2")      # duplicate docs: one item
        assert bank.resolve(f"lmeval/mmlu_x/doc_hash:{recs[1]['doc_hash']}") == item["item_id"]
        assert bank.resolve(f"lmeval/mmlu_x/prompt_hash:{recs[1]['prompt_hash']}") == item["item_id"]
        resp = bank.responses().set_index("item_id")
        assert resp.loc[item["item_id"], "score"] == 0.0 and resp.loc[bank.resolve("lmeval/mmlu_x:0"), "score"] == 1.0
        row = bank.conn.execute("SELECT choice_logliks, extracted, prompt_hash FROM responses WHERE item_id = ?",
                                [item["item_id"]]).fetchone()
        assert list(row[0]) == [-2.0, -1.0, -3.0, -3.5] and row[1] == "B" and row[2] == recs[1]["prompt_hash"]
        runs = bank.runs()
        config = json.loads(runs["config"].iat[0])
        assert config["target_hashes"]["1"] == recs[1]["target_hash"] and config["metric"] == "acc"
        again = lmeval.import_log(bank, log, lmeval.LmevalImportOptions(task="mmlu_x", model="m1"))
        assert again.new_items == 0 and again.new_responses == 0 and len(bank.runs()) == 1


def test_arc_cmmlu_and_mmlu_pro_shapes(bank_path: Path, tmp_path: Path) -> None:
    arc = {"id": "Mercury_1", "question": "Which is a metal?", "answerKey": "C",
           "choices": {"text": ["wood", "glass", "iron", "salt"], "label": ["A", "B", "C", "D"]}}
    cmmlu = {"Question": "中国的首都是哪里？", "A": "上海", "B": "北京", "C": "广州", "D": "深圳", "Answer": "B"}
    pro = {"question_id": 7, "question": "Pick the prime.", "options": ["4", "6", "7", "8", "9"], "answer": "C",
           "answer_index": 2, "category": "math", "src": "ori_mmlu-x"}
    with open_bank(bank_path) as bank:
        lmeval.import_log(bank, write_log(tmp_path / "a.jsonl", [mc_record(0, arc, "2", "Q", [" wood", " glass", " iron", " salt"],
                                                                  [-1, -2, -0.5, -3], 1.0)]),
                          lmeval.LmevalImportOptions(task="arc_x", model="m"))
        lmeval.import_log(bank, write_log(tmp_path / "c.jsonl", [mc_record(0, cmmlu, "1", "题", [" A", " B", " C", " D"],
                                                                  [-1, -2, -3, -4], 0.0)]),
                          lmeval.LmevalImportOptions(task="cmmlu_x", model="m"))
        lmeval.import_log(bank, write_log(tmp_path / "p.jsonl", [gen_record(0, pro, "C", "Q", "The answer is (C)", "C", 1.0,
                                                                   "custom-extract")]),
                          lmeval.LmevalImportOptions(task="mmlu_pro_x", model="m"))
        a, c, p = (bank.item(r) for r in ("lmeval/arc_x:0", "lmeval/cmmlu_x:0", "lmeval/mmlu_pro_x:0"))
    assert a["choices"] == ["wood", "glass", "iron", "salt"] and a["answer"] == "C"
    assert c["choices"] == ["上海", "北京", "广州", "深圳"] and c["answer"] == "B" and c["language"] == "zh"
    assert p["item_type"] == "mc" and p["answer"] == "C" and len(p["choices"]) == 5
    assert p["tags"]["category"] == ["math"] and p["tags"]["source_detail"] == ["ori_mmlu-x"]


def test_gsm8k_style_log_with_two_filters(bank_path: Path, tmp_path: Path) -> None:
    docs = [{"question": "Ann has 1,200 coins and finds 34. How many?", "answer": "1200+34=1234\n#### 1,234"},
            {"question": "Name the colour of the sky.", "answer": "blue"}]
    recs = []
    for f, ems in (("strict-match", [1.0, 0.0]), ("flexible-extract", [1.0, 1.0])):
        recs += [gen_record(i, d, d["answer"], f"Question: {d['question']}\nAnswer:", f"out{i}", f"ext{i}-{f}", em, f)
                 for i, (d, em) in enumerate(zip(docs, ems, strict=True))]
    log = write_log(tmp_path / "samples_gsm.jsonl", recs)
    with open_bank(bank_path) as bank:
        rep = lmeval.import_log(bank, log, lmeval.LmevalImportOptions(task="gsm_x", model="m"))
        assert rep.filter == "strict-match" and rep.filters_in_file == ("strict-match", "flexible-extract")
        assert rep.item_types == {"numeric": 1, "open": 1} and rep.mean_score == 0.5
        num = bank.item("lmeval/gsm_x:0")
        assert num["item_type"] == "numeric" and num["answer"] == "1234"
        flex = lmeval.import_log(bank, log, lmeval.LmevalImportOptions(task="gsm_x", model="m2", filter="flexible-extract"))
        assert flex.mean_score == 1.0 and flex.new_items == 0
        row = bank.conn.execute("SELECT raw_output, extracted FROM responses WHERE item_id = ? AND run_id = ?",
                                [num["item_id"], flex.run_id]).fetchone()
        assert row == ("out0", "ext0-flexible-extract")
        with pytest.raises(InputError, match="filter 'nope'"):
            lmeval.import_log(bank, log, lmeval.LmevalImportOptions(task="gsm_x", model="m", filter="nope"))


def test_bad_logs_name_line_and_field(bank_path: Path, tmp_path: Path) -> None:
    doc = {"question": "2+2?", "choices": ["3", "4"], "answer": 1}
    good = mc_record(0, doc, "1", "Q", [" 3", " 4"], [-1, -2], 0.0)
    with open_bank(bank_path) as bank:
        snap = bank.snapshot_id()
        cases = [
            ([good, {**mc_record(1, doc, "7", "Q", [" 3", " 4"], [-1, -2], 0.0)}], "line 2: field 'target'"),
            ([{**good, "acc": 3.0}], "line 1: field 'acc'"),
            ([{k: v for k, v in good.items() if k != "doc"}], "line 1: field 'doc' missing"),
            ([good, good], "line 2: doc_id 0 appears again"),
        ]
        for n, (records, message) in enumerate(cases):
            with pytest.raises(InputError, match=message):
                lmeval.import_log(bank, write_log(tmp_path / f"bad{n}.jsonl", records),
                                  lmeval.LmevalImportOptions(task="t", model="m"))
        (tmp_path / "garbled.jsonl").write_text(json.dumps(good) + "\n{not json\n")
        with pytest.raises(InputError, match="line 2: not valid JSON"):
            lmeval.import_log(bank, tmp_path / "garbled.jsonl", lmeval.LmevalImportOptions(task="t", model="m"))
        with pytest.raises(InputError, match="metric field 'f1'"):
            lmeval.import_log(bank, write_log(tmp_path / "ok.jsonl", [good]),
                              lmeval.LmevalImportOptions(task="t", model="m", metric="f1"))
        assert bank.snapshot_id() == snap   # nothing was written by any failed import


def _form(bank, name: str, refs: list[str]) -> list[str]:  # noqa: ANN001
    ids = [bank.resolve(r) for r in refs]
    bank.save_form(name, ids, spec={}, strategy="all", seed=0, snapshot_id=bank.snapshot_id(), calibration_id=None,
                   objectives={}, content_hash=name, n_uncalibrated=len(ids))
    return ids


def test_export_samples_and_missing_items(bank_path: Path, tmp_path: Path) -> None:
    docs = [{"question": f"q{i}?", "choices": ["x", "y"], "answer": i % 2} for i in range(5)]
    recs = [mc_record(i, d, str(d["answer"]), "Q", [" x", " y"], [-1, -2], 1.0) for i, d in enumerate(docs)]
    other = [{"question": "elsewhere?", "choices": ["x", "y"], "answer": 0}]
    with open_bank(bank_path) as bank:
        lmeval.import_log(bank, write_log(tmp_path / "a.jsonl", recs), lmeval.LmevalImportOptions(task="t1", model="m"))
        lmeval.import_log(bank, write_log(tmp_path / "b.jsonl", [mc_record(0, other[0], "0", "Q", [" x", " y"], [-1, -2], 1.0)]),
                          lmeval.LmevalImportOptions(task="t2", model="m"))
        _form(bank, "f", ["lmeval/t1:4", "lmeval/t1:1", "lmeval/t1:3"])
        _form(bank, "mixed", ["lmeval/t1:2", "lmeval/t2:0"])
        assert lmeval.export_samples(bank, "f", "t1").as_json() == {"t1": [1, 3, 4]}   # sorted, as lm-eval needs
        with pytest.raises(InputError, match="1 of its items have no document in task 't1'"):
            lmeval.export_samples(bank, "mixed", "t1")
        part = lmeval.export_samples(bank, "mixed", "t1", allow_missing=True)
        assert part.indices == (2,) and len(part.missing) == 1
    out = tmp_path / "s.json"
    result = CliRunner().invoke(cli, ["--bank", str(bank_path), "lmeval", "export-samples", "f", "--task", "t1",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == {"t1": [1, 3, 4]}


def test_export_task_files(bank_path: Path, tmp_path: Path) -> None:
    mc = [{"question": "2+2?", "choices": ["3", "4"], "answer": 1}]
    gen = [{"question": "3+4?", "answer": "#### 7"}, {"question": "Sky colour?", "answer": "blue"}]
    with open_bank(bank_path) as bank:
        lmeval.import_log(bank, write_log(tmp_path / "a.jsonl", [mc_record(0, mc[0], "1", "Q", [" 3", " 4"], [-1, -2], 0.0)]),
                          lmeval.LmevalImportOptions(task="a", model="m"))
        lmeval.import_log(bank, write_log(tmp_path / "g.jsonl", [gen_record(i, d, d["answer"], "Q", "o", "e", 0.0)
                                                                 for i, d in enumerate(gen)]),
                          lmeval.LmevalImportOptions(task="g", model="m"))
        ids = _form(bank, "mix", ["lmeval/g:1", "lmeval/a:0", "lmeval/g:0"])
        exp = lmeval.export_task(bank, "mix", tmp_path / "task")
    assert exp.task == "adt_mix" and exp.subtasks == {"adt_mix_mc": 1, "adt_mix_numeric": 1, "adt_mix_open": 1}
    group = yaml.safe_load((tmp_path / "task" / "adt_mix.yaml").read_text())
    assert group["group"] == "adt_mix" and group["task"] == list(exp.subtasks)
    mc_cfg = yaml.safe_load((tmp_path / "task" / "adt_mix_mc.yaml").read_text())
    assert mc_cfg["output_type"] == "multiple_choice" and Path(mc_cfg["dataset_kwargs"]["data_files"]["test"]).is_absolute()
    doc = json.loads((tmp_path / "task" / "adt_mix_mc.jsonl").read_text())
    assert doc["item_id"] == ids[1] and doc["answer_index"] == 1 and doc["choice_targets"] == ["A", "B"]
    assert doc["prompt"] == "2+2?\nA. 3\nB. 4\nAnswer:"
    num = json.loads((tmp_path / "task" / "adt_mix_numeric.jsonl").read_text())
    assert num["answer"] == "7" and num["position"] == 2


# -- the round trip through lm-eval itself ------------------------------------------------------------
ARC_DOCS = [
    {"id": f"arc_{i}", "question": q, "choices": {"text": ch, "label": ["A", "B", "C", "D"]}, "answerKey": key}
    for i, (q, ch, key) in enumerate([
        ("Which one is a city?", ["paris", "apple", "river", "energy"], "A"),
        ("Which one is a fruit?", ["law", "apple", "market", "cell"], "B"),
        ("Which one holds water?", ["theory", "history", "river", "value"], "C"),
        ("Which one is a number?", ["cats", "days", "hours", "third"], "D"),
        ("Which one is a capital?", ["rome", "water", "price", "cost"], "A"),
        ("Which one is a unit of time?", ["meters", "years", "dollars", "cats"], "B"),
    ])]
GSM_DOCS = [{"question": f"Tom has {i} apples and buys {i + 2}. How many apples?",
             "answer": f"{i} + {i + 2} = {2 * i + 2}\n#### {2 * i + 2}"} for i in range(3)]

ARC_TASK = """task: tiny_arc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices.text}}}}"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
metric_list:
  - metric: acc
"""
GSM_TASK = """task: tiny_gsm
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["Question:", "\\n\\n"]
  do_sample: false
  max_gen_toks: 12
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    ignore_case: true
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
"""


@pytest.fixture(scope="module")
def lm_eval_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("lm_eval")
    from runners.testing import build_tiny_model

    root = tmp_path_factory.mktemp("lmeval")
    model = build_tiny_model(root / "model", seed=0)
    tasks = root / "tasks"
    tasks.mkdir()
    for name, docs, template in (("tiny_arc", ARC_DOCS, ARC_TASK), ("tiny_gsm", GSM_DOCS, GSM_TASK)):
        data = write_log(root / f"{name}.jsonl", docs)
        (tasks / f"{name}.yaml").write_text(template.format(data=data))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(root / "hf_cache"), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
           "--tasks", "tiny_arc,tiny_gsm", "--include_path", str(tasks), "--device", "cpu", "--batch_size", "8",
           "--output_path", str(root / "out"), "--log_samples", "--seed", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = {name: next((root / "out").rglob(f"samples_{name}_*.jsonl")) for name in ("tiny_arc", "tiny_gsm")}
    return {"root": root, "env_cache": root / "hf_cache", **logs}


@pytest.mark.slow  # about 50 s: builds a model and runs lm-eval in a subprocess
def test_round_trip_through_lm_eval(lm_eval_run: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bank_path = tmp_path / "bank.duckdb"
    runner = CliRunner()

    def adt(*args: str) -> dict:
        result = runner.invoke(cli, ["--bank", str(bank_path), *args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    runner.invoke(cli, ["--bank", str(bank_path), "init"])
    arc = adt("lmeval", "import", str(lm_eval_run["tiny_arc"]), "--task", "tiny_arc", "--model", "tiny")
    gsm = adt("lmeval", "import", str(lm_eval_run["tiny_gsm"]), "--task", "tiny_gsm", "--model", "tiny")
    assert arc["docs"] == len(ARC_DOCS) and arc["item_types"] == {"mc": len(ARC_DOCS)}
    assert gsm["docs"] == len(GSM_DOCS) and gsm["item_types"] == {"numeric": len(GSM_DOCS)}
    log = [json.loads(line) for line in lm_eval_run["tiny_arc"].read_text().splitlines()]
    with open_bank(bank_path) as bank:
        for rec in log:
            item = bank.item(f"lmeval/tiny_arc:{rec['doc_id']}")
            doc = ARC_DOCS[rec["doc_id"]]
            assert item["question"] == doc["question"] and item["choices"] == doc["choices"]["text"]
            assert item["answer"] == doc["answerKey"]
            score, lls = bank.conn.execute("SELECT score, choice_logliks FROM responses WHERE item_id = ?",
                                           [item["item_id"]]).fetchone()
            assert score == rec["acc"]
            assert lls == pytest.approx([float(r[0]) for r in rec["filtered_resps"]])
        assert bank.item("lmeval/tiny_gsm:2")["answer"] == "6"
        _form(bank, "f1", ["lmeval/tiny_arc:4", "lmeval/tiny_gsm:1", "lmeval/tiny_arc:1"])
        expected = {r: bank.item(r) for r in ("lmeval/tiny_arc:4", "lmeval/tiny_gsm:1", "lmeval/tiny_arc:1")}

    # The exported task loads through lm-eval's own task loader, docs and targets intact.
    exp = adt("lmeval", "export-task", "f1", "--out", str(tmp_path / "task"), "--task", "adt_f1")
    samples_file = tmp_path / "samples.json"
    adt("lmeval", "export-samples", "f1", "--task", "tiny_arc", "--out", str(samples_file), "--allow-missing")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(lm_eval_run["env_cache"]))
    from lm_eval.tasks import TaskManager

    adt("lmeval", "export-task", "f1", "--out", str(tmp_path / "task_pq"), "--task", "adt_f1_pq", "--format", "parquet",
        "--mc-target", "text")
    manager = TaskManager(include_path=[str(tmp_path / "task"), str(tmp_path / "task_pq"),
                                        str(lm_eval_run["root"] / "tasks")], include_defaults=False)
    loaded = manager.load([exp["task"], "tiny_arc", "adt_f1_pq"])
    pq_mc = loaded["tasks"]["adt_f1_pq_mc"]
    pq_docs = list(pq_mc.eval_docs)
    assert [pq_mc.doc_to_choice(d) for d in pq_docs] == [expected[r]["choices"] for r in ("lmeval/tiny_arc:4",
                                                                                          "lmeval/tiny_arc:1")]
    assert loaded["group_map"][exp["task"]] == ["adt_f1_mc", "adt_f1_numeric"]
    tasks = loaded["tasks"]
    mc, num = tasks["adt_f1_mc"], tasks["adt_f1_numeric"]
    mc_docs = list(mc.eval_docs)
    assert [d["item_id"] for d in mc_docs] == [expected["lmeval/tiny_arc:4"]["item_id"],
                                                 expected["lmeval/tiny_arc:1"]["item_id"]]
    for doc, ref in zip(mc_docs, ("lmeval/tiny_arc:4", "lmeval/tiny_arc:1"), strict=True):
        item = expected[ref]
        assert mc.doc_to_choice(doc) == ["A", "B", "C", "D"]
        assert mc.doc_to_target(doc) == "ABCD".index(item["answer"])
        assert item["question"] in mc.doc_to_text(doc) and all(c in mc.doc_to_text(doc) for c in item["choices"])
    (num_doc,) = list(num.eval_docs)
    assert num.doc_to_target(num_doc) == expected["lmeval/tiny_gsm:1"]["answer"] == "4"
    # The --samples list picks the form's arc items out of the original task, in lm-eval's own iterator.
    indices = json.loads(samples_file.read_text())["tiny_arc"]
    picked = [doc["question"] for _, doc in tasks["tiny_arc"].doc_iterator(samples=indices)]
    assert sorted(picked) == sorted(expected[r]["question"] for r in ("lmeval/tiny_arc:4", "lmeval/tiny_arc:1"))



def test_real_mmlu_and_gsm8k_logs_merge_with_bank_imports(bank_path: Path, tmp_path: Path, shared_data: Path) -> None:
    """Docs in lm-eval's mmlu / gsm8k shapes are the same items as the bank's imports of the same data."""
    import pandas as pd

    from itembank import ImportOptions

    mmlu = pd.read_parquet(shared_data / "mmlu/items.parquet")
    mmlu = mmlu[(mmlu["subject"] == "anatomy") & (mmlu["split"] == "test")].reset_index(drop=True)
    gsm = pd.read_parquet(shared_data / "gsm8k/items.parquet").head(60)
    mmlu.to_parquet(tmp_path / "mmlu.parquet")
    gsm.to_parquet(tmp_path / "gsm.parquet")
    mmlu_recs = [mc_record(i, {"question": r.question, "subject": r.subject,
                               "choices": [r.choice0, r.choice1, r.choice2, r.choice3], "answer": int(r.answer)},
                           str(int(r.answer)), f"{r.question}\nAnswer:", [" A", " B", " C", " D"],
                           [-1.0, -2.0, -3.0, -4.0], float(int(r.answer) == 0)) for i, r in enumerate(mmlu.itertuples())]
    gsm_recs = [gen_record(i, {"question": r.question, "answer": r.answer}, r.answer, f"Question: {r.question}\nAnswer:",
                           "The answer is 18.", "[invalid]", 0.0) for i, r in enumerate(gsm.itertuples())]
    with open_bank(bank_path) as bank:
        bank_mmlu = bank.import_items([tmp_path / "mmlu.parquet"], ImportOptions(
            source="mmlu", language="en", id_cols=("subject", "split", "row_in_file"),
            choice_cols=("choice0", "choice1", "choice2", "choice3"), answer_format="index", tag_cols=(("subject", "subject"),)))
        bank.import_items([tmp_path / "gsm.parquet"], ImportOptions(source="gsm8k", language="en", item_type="numeric",
                                                                    answer_format="gsm8k"))
        rep_m = lmeval.import_log(bank, write_log(tmp_path / "m.jsonl", mmlu_recs),
                                  lmeval.LmevalImportOptions(task="mmlu_anatomy", model="m", language="en"))
        rep_g = lmeval.import_log(bank, write_log(tmp_path / "g.jsonl", gsm_recs),
                                  lmeval.LmevalImportOptions(task="gsm8k", model="m", language="en"))
        assert (rep_m.docs, rep_m.new_items, rep_m.existing_items) == (len(mmlu), 0, bank_mmlu.items_in_files)
        assert rep_g.new_items == 0 and rep_g.existing_items == len(gsm)
        assert bank.resolve("lmeval/gsm8k:0") == bank.resolve("gsm8k:0")
        row = mmlu.iloc[3]
        assert bank.resolve("lmeval/mmlu_anatomy:3") == bank.resolve(f"mmlu:anatomy/test/{row.row_in_file}")
        assert rep_m.mean_score == pytest.approx(float((mmlu["answer"] == 0).mean()))


def test_export_refuses_item_types_it_cannot_score(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A registered item type without an lm-eval rule (e.g. a new yes/no type) is refused by name, not dropped."""
    import pandas as pd

    items = pd.DataFrame({"item_id": ["it_1", "it_2"], "item_type": ["mc", "yesno"], "answer": ["A", "yes"],
                          "question": ["q1", "q2"], "choices": [["a", "b"], None]})
    monkeypatch.setattr(lmeval, "form_items", lambda bank, form: items)
    with pytest.raises(InputError, match=r"1 item\(s\) of type\(s\) \['yesno'\] have no lm-eval export.*it_2"):
        lmeval.export_task(None, "f1", tmp_path / "out")  # type: ignore[arg-type]
    assert not any((tmp_path / "out").glob("*.yaml"))
