"""``adt judge run`` end to end: a candidate's run on judge-scored items, then judges through the openai
backend against a stub OpenAI-compatible server on 127.0.0.1 that writes well-formed verdicts (both orders
stored, scores written, resumed after a real ``kill -9`` of the command without repeating a stored call).
The live tiny-model server (unparseable verdicts) is tests/runners/test_judge_live.py.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from adt.workflow.judge import (
    JudgeSpec,
    judge_run,
    judge_scores,
    parse_judge_flag,
    read_judges_file,
    win_rates,
    with_backend_args,
)
from adt.workflow.run import run_form
from adtbase.errors import InputError
from adtbase.verdicts import JUDGMENT_COLUMNS
from itembank import ImportOptions, open_bank, spool
from runners import prompt_hash

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from judge_server import JudgeStub, judge_server  # noqa: E402
from run_backends import coin  # noqa: E402

RUBRIC = {"version": 1, "criteria": [{"name": "accuracy", "levels": ["wrong", "partly", "right"]},
                                     {"name": "clarity", "levels": ["unclear", "clear"]}]}
CANDIDATE = "llama-3-8b"


def _items() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(6):
        rows.append({"id": f"p{i}", "question": f"Give advice number {i} on sleep.", "type": "pairwise",
                     "baseline": f"Baseline advice {i}.", "language": "en" if i % 3 else "zh"})
    for i in range(3):
        rows.append({"id": f"r{i}", "question": f"Explain idea {i}.", "type": "open", "reference": f"Idea {i} is x."})
        rows.append({"id": f"h{i}", "question": f"Write a line about {i}.", "type": "open", "rubric": RUBRIC})
    rows.append({"id": "plain", "question": "Capital of France?", "type": "open", "answer": "Paris"})
    rows.append({"id": "mc", "question": "2 + 2?", "choices": ["3", "4"], "answer": "B"})
    return rows


@pytest.fixture
def bank_path(tmp_path: Path) -> Path:
    """13 judge-scored items (6 pairwise en/zh, 3 reference, 3 rubric) and 2 rule-scored, on form f1, answered by a
    writing candidate (run f1:llama-3-8b)."""
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _items()) + "\n", encoding="utf-8")
    path = tmp_path / "bank.duckdb"
    with open_bank(path, create=True) as bank:
        bank.import_items([src], ImportOptions(source="toy"))
        ids = list(bank.item_ids())
        bank.save_form("f1", ids, spec={"strategy": "all"}, strategy="all", seed=1, snapshot_id=bank.snapshot_id(),
                       calibration_id=None, objectives={}, content_hash="test", n_uncalibrated=len(ids))
    report = run_form(path, "f1", CANDIDATE, "run_backends:Writer", {}, mc_mode="generate", progress=False)
    assert report.status == "finished" and report.n_responses == 14
    return path


@pytest.fixture
def stub() -> Iterator[JudgeStub]:
    with judge_server() as s:
        yield s


def _state(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with open_bank(path) as bank:
        resp = bank.conn.execute("""SELECT r.item_id, r.score, r.scored_by, i.item_type, i.answer AS key, r.extracted
                                    FROM responses r JOIN items i USING (item_id)""").df().set_index("item_id")
        return resp, bank.judgments(), bank.responses(scored=True)


def _good(item_id: str) -> bool:
    return bool(coin(0, item_id, 0.5))


def test_pending_answers_stay_out_of_scores_until_judged(bank_path: Path) -> None:
    resp, judgments, scored = _state(bank_path)
    judged = resp[resp["key"].str.startswith("judge:{")]
    assert len(judged) == 12 and set(judged["scored_by"]) == {"judge:pending"} and (judged["score"] == 0).all()
    assert set(resp.loc[~resp.index.isin(judged.index), "scored_by"]) == {"rule"}
    assert judgments.empty and list(judgments.columns) == list(JUDGMENT_COLUMNS)
    assert len(scored) == 2 and scored.attrs["n_judge_pending"] == 12
    assert all(a.startswith("This is a ") for a in judged["extracted"])   # the whole answer, for the judge


def test_stub_judge_both_orders_stored_and_panel_scores_written(bank_path: Path, stub: JudgeStub) -> None:
    judge = JudgeSpec("gpt", "openai", "gpt-4o", {"base_url": stub.url, "concurrency": 2})
    report = judge_run(bank_path, [judge], progress=False)
    assert (report.status, report.n_answers, report.n_calls, report.n_unparseable) == ("finished", 12, 18, 0)
    assert report.n_scored == 12 and report.n_pending == 0 and report.n_self_flagged == 0
    resp, judgments, scored = _state(bank_path)
    assert len(stub.prompts) == 18 and judgments["problem"].isna().all()
    assert sorted(judgments["prompt_hash"]) == sorted(prompt_hash(p) for p in stub.prompts)
    pair = judgments[judgments["template_id"].str.startswith("judge-pairwise")]
    assert len(pair) == 12 and all(sorted(g) == ["ab", "ba"] for _, g in pair.groupby("item_id")["order"])
    assert set(pair["template_id"]) == {"judge-pairwise-en@1", "judge-pairwise-zh@1"}
    assert (judgments["model"] == CANDIDATE).all() and (judgments["judge_model"] == "gpt-4o").all()
    for item_id, row in resp.iterrows():
        if row["item_type"] == "mc" or not row["key"].startswith("judge:{"):
            assert row["scored_by"] == "rule"
            continue
        assert row["scored_by"] == "panel"
        good = "good" in row["extracted"]
        calls = judgments[judgments["item_id"] == item_id].set_index("order")
        if row["item_type"] == "pairwise":
            # a good answer wins in both orders; otherwise the stub picks A: the orders disagree -> tie 0.5
            assert calls.loc["ab", "verdict"] == 1.0 and calls.loc["ba", "verdict"] == (1.0 if good else 0.0)
            assert row["score"] == (1.0 if good else 0.5)
        else:
            assert row["score"] == (1.0 if good else 0.0)
    assert report.n_inconsistent == sum(1 for i, r in resp.iterrows()
                                        if r["item_type"] == "pairwise" and "good" not in r["extracted"])
    assert len(scored) == 14 and scored.attrs["n_judge_pending"] == 0
    # Again: nothing pending, no call made.
    again = judge_run(bank_path, [judge], progress=False)
    assert (again.n_answers, again.n_calls) == (0, 0) and len(stub.prompts) == 18
    # Win rates on the six pairwise items: raw = the mean of their panel scores; the length-controlled one is
    # read at equal length, with intervals around both.
    with open_bank(bank_path) as bank:
        rates = win_rates(bank)
    pairwise = resp[resp["item_type"] == "pairwise"]
    assert list(rates["model"]) == [CANDIDATE] and rates.loc[0, "n"] == 6
    assert rates.loc[0, "raw"] == pytest.approx(pairwise["score"].mean())
    assert rates.loc[0, "raw_lo"] <= rates.loc[0, "raw"] <= rates.loc[0, "raw_hi"]
    assert 0.0 < rates.loc[0, "lc"] < 1.0 and rates.loc[0, "lc_lo"] <= rates.loc[0, "lc_hi"]


def test_self_family_judges_are_flagged_or_left_out(bank_path: Path, stub: JudgeStub) -> None:
    same = JudgeSpec("llama", "openai", "meta-llama/Llama-2-70b-chat", {"base_url": stub.url})
    other = JudgeSpec("gpt", "openai", "gpt-4o", {"base_url": stub.url})
    out = judge_run(bank_path, [same, other], exclude_self=True, orders=("ab",), progress=False)
    assert out.n_self_excluded == 12 and out.n_calls == 12 and out.n_self_flagged == 0
    _, judgments, _ = _state(bank_path)
    assert set(judgments["judge"]) == {"gpt"} and set(judgments["order"]) == {"ab", ""}


def test_self_family_flagged_by_default(bank_path: Path, stub: JudgeStub) -> None:
    same = JudgeSpec("llama", "openai", "Llama-2-70b", {"base_url": stub.url})
    out = judge_run(bank_path, [same], progress=False)
    assert out.n_self_flagged == 18 and out.n_self_excluded == 0 and out.n_scored == 12


def test_judge_scores_follow_the_position_and_panel_rules() -> None:
    def row(judge: str, order: str, verdict: float, item: str = "i1", model: str = "qwen2-7b",
            jm: str = "gpt-4") -> dict[str, Any]:
        return {"run_id": "r", "item_id": item, "model": model, "judge": judge, "judge_model": jm,
                "template_id": "t", "order": order, "verdict": verdict}
    frame = pd.DataFrame([row("a", "ab", 1.0), row("a", "ba", 0.0), row("b", "ab", 1.0), row("b", "ba", 1.0),
                          row("c", "ab", math.nan), row("c", "ba", math.nan),
                          row("q", "", 0.0, jm="Qwen2.5-72B"), row("a", "", math.nan, item="i2")])
    scores = judge_scores(frame).set_index("item_id")
    assert scores.loc["i1", "score"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert scores.loc["i1", "n_judges"] == 3 and scores.loc["i1", "n_inconsistent"] == 1
    assert scores.loc["i1", "n_self"] == 1 and math.isnan(scores.loc["i2", "score"])
    assert judge_scores(frame, exclude_self=True).set_index("item_id").loc["i1", "score"] == pytest.approx(0.75)


def test_judge_flags_files_and_args(tmp_path: Path) -> None:
    assert parse_judge_flag("g=openai:gpt-4o") == JudgeSpec("g", "openai", "gpt-4o")
    assert parse_judge_flag("s=run_backends:Writer:m:v1").backend == "run_backends:Writer"
    for bad in ("g", "g=openai", "=openai:m", "g=:m"):
        with pytest.raises(InputError, match="NAME=BACKEND:MODEL"):
            parse_judge_flag(bad)
    spec = with_backend_args([JudgeSpec("a", "openai", "m"), JudgeSpec("b", "openai", "n")],
                             {"base_url": "http://x/v1", "b.concurrency": 2})
    assert spec[0].args == {"base_url": "http://x/v1"} and spec[1].args == {"base_url": "http://x/v1", "concurrency": 2}
    with pytest.raises(InputError, match="no judge named 'c'"):
        with_backend_args(spec, {"c.k": 1})
    f = tmp_path / "judges.json"
    f.write_text(json.dumps([{"name": "a", "backend": "openai", "model": "m", "args": {"base_url": "http://h/v1"}},
                             {"name": "b", "backend": "openai"}, {"name": "c", "backend": "x", "model": "y", "zz": 1}]))
    with pytest.raises(InputError) as err:
        read_judges_file(f)
    assert "judge 2: field(s) model missing" in str(err.value) and "judge 3: unknown field(s) zz" in str(err.value)


# -- a real process, killed ---------------------------------------------------------------------------

def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])}


def _stored_or_spooled(path: Path, name: str) -> set[tuple[str, ...]]:
    with open_bank(path) as bank:
        stored = {tuple(r) for r in bank.judgments()[["run_id", "item_id", "judge", "template_id", "order"]]
                  .itertuples(index=False)}
    return stored | spool.spooled_judgments(path, f"judge:{name}")


def test_kill_9_mid_judge_run_resumes_without_repeating_a_stored_call(bank_path: Path, stub: JudgeStub) -> None:
    stub.delay_s = 0.15
    cmd = [sys.executable, "-m", "adt", "--bank", str(bank_path), "judge", "run", "--judge", "gpt=openai:gpt-4o",
           "--backend-arg", f"base_url={stub.url}", "--backend-arg", "concurrency=1", "--batch-size", "2",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(stub.prompts) < 7 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(4 * stub.delay_s)        # the request in flight when the client died still ends on the server
    answered_before = list(stub.prompts)
    kept = _stored_or_spooled(bank_path, "gpt")
    assert 7 <= len(answered_before) < 18
    assert len(kept) >= len(answered_before) - 4          # at most the batch in flight (2 answers, 4 calls) lost
    with open_bank(bank_path) as bank:
        kept_hashes = set(bank.judgments()["prompt_hash"])
        assert bank.responses(scored=True).attrs["n_judge_pending"] == 12   # nothing scored yet
    stub.delay_s = 0.0
    done = subprocess.run([*cmd, "--json"], env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    again = stub.prompts[len(answered_before):]
    assert report["resumed"] and report["n_calls_before"] == len(kept) and report["n_calls"] == 18 - len(kept)
    assert len(again) == 18 - len(kept)
    assert not kept_hashes & {prompt_hash(p) for p in again}                # no stored call made again
    resp, judgments, _ = _state(bank_path)
    assert len(judgments) == 18 and not judgments.duplicated(["run_id", "item_id", "judge", "template_id",
                                                               "order"]).any()
    assert set(resp.loc[resp["key"].str.startswith("judge:{"), "scored_by"]) == {"panel"}
    with open_bank(bank_path) as bank:
        assert bank.verify().ok


def test_exclude_self_policy_from_the_bank_settings(bank_path: Path, stub: JudgeStub) -> None:
    with open_bank(bank_path) as bank:
        with pytest.raises(InputError, match="not true or false"):
            bank.set_setting("judge_exclude_self", "yes")
        bank.set_setting("judge_exclude_self", "true")
    same = JudgeSpec("llama", "openai", "llama-3-70b", {"base_url": stub.url})
    out = judge_run(bank_path, [same], progress=False)
    assert out.n_self_excluded == 12 and out.n_calls == 0 and out.n_pending == 12 and not stub.prompts
    assert judge_run(bank_path, [same], exclude_self=False, progress=False).n_scored == 12   # the flag wins


def test_a_stored_rater_model_combines_the_judges_where_it_covers_them() -> None:
    # Three judges on 400 pairs: "sharp" right 90% of the time, "firsty" picks whatever is shown first 85% of the
    # time, "coin" random. The mean rule lets the two weak judges pull the panel; a rater model fitted on the
    # first 200 pairs' gold labels weighs them by what they are worth, and carries a confidence.
    from calibration import judges

    rng = np.random.default_rng(11)
    n = 400
    truth = rng.integers(0, 2, n).astype(float)
    rows = []
    for order in ("ab", "ba"):
        first = 1.0 if order == "ab" else 0.0
        for judge, v in (("sharp", np.where(rng.random(n) < 0.9, truth, 1 - truth)),
                         ("firsty", np.where(rng.random(n) < 0.85, first, truth)),
                         ("coin", rng.integers(0, 2, n).astype(float))):
            rows.append(pd.DataFrame({"run_id": "r", "item_id": [f"i{k:03d}" for k in range(n)], "model": "m",
                                      "judge": judge, "judge_model": judge, "template_id": "judge-pairwise-en@1",
                                      "order": order, "verdict": v, "n_levels": 2}))
    frame = pd.concat(rows, ignore_index=True)
    gold = np.where(np.arange(n) < 200, truth, np.nan)
    vd = judges.verdicts(frame)
    model = judges.RaterModel(n_classes=2, length=False).fit(vd, gold)

    mean = judge_scores(frame).set_index("item_id")
    rated = judge_scores(frame, rater_model=model).set_index("item_id")
    assert (rated["rule"] == "rater model").all() and (mean["rule"] == "mean").all()
    assert rated["confidence"].between(0.5, 1.0).all() and mean["confidence"].isna().all()
    held = [f"i{k:03d}" for k in range(200, n)]
    right = pd.Series(truth, index=[f"i{k:03d}" for k in range(n)])[held]
    acc_model = float(((rated.loc[held, "score"] > 0.5) == (right == 1)).mean())
    acc_mean = float(((mean.loc[held, "score"] > 0.5) == (right == 1)).mean())
    assert acc_model > acc_mean + 0.05 and acc_model > 0.85

    stranger = frame.assign(judge=frame["judge"].replace("coin", "newcomer"))
    fallback = judge_scores(stranger, rater_model=model)
    assert (fallback["rule"] == "mean").all()
    assert "newcomer" in fallback.attrs["rater_model_refused"]
