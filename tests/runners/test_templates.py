"""Prompt templates: versioned ids, deterministic hashes, few-shot, languages, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from adtbase.errors import InputError
from runners.templates import TEMPLATES, build_request, default_template_id, prompt_hash, render

MC = {"item_id": "it1", "question": "What is the capital of France?", "choices": ["Paris", "Rome", "Oslo"],
      "answer": "A", "item_type": "mc", "language": "en"}
SHOT = {"item_id": "ex1", "question": "2 + 2 = ?", "choices": ["3", "4"], "answer": 1, "item_type": "mc",
        "language": "en"}


def test_every_type_language_and_shot_count_has_a_versioned_template() -> None:
    for kind in ("mc", "open", "numeric"):
        for lang in ("en", "zh"):
            for shots in ("0shot", "fewshot"):
                assert f"{kind}-{lang}-{shots}@1" in TEMPLATES
    assert all("@" in tid for tid in TEMPLATES)


def test_zero_shot_mc_prompt_and_hash() -> None:
    prompt, digest = render(MC, "mc-en-0shot@1")
    assert prompt.endswith("Question: What is the capital of France?\nA. Paris\nB. Rome\nC. Oslo\nAnswer:")
    assert digest == prompt_hash(prompt) and len(digest) == 16
    assert render(dict(MC), "mc-en-0shot@1") == (prompt, digest)  # deterministic
    other = render({**MC, "question": "What is the capital of Italy?"}, "mc-en-0shot@1")[1]
    assert other != digest


def test_few_shot_shows_the_examples_answers() -> None:
    prompt, _ = render(MC, "mc-en-fewshot@1", [SHOT, {**SHOT, "item_id": "ex2", "answer": "A"}])
    assert "Question: 2 + 2 = ?\nA. 3\nB. 4\nAnswer: B" in prompt
    assert "Answer: A\n\nQuestion: What is the capital" in prompt
    num = {"item_id": "g", "question": "1+1?", "answer": "1 + 1 = 2\n#### 2", "item_type": "numeric",
           "language": "en"}
    p, _ = render({**num, "question": "2+3?"}, "numeric-en-fewshot@1", [num])
    assert "Question: 1+1?\nAnswer: 1 + 1 = 2\n#### 2\n\nQuestion: 2+3?\nAnswer:" in p


def test_chinese_templates() -> None:
    zh = {**MC, "language": "zh-CN", "question": "法国的首都是哪里？"}
    prompt, _ = render(zh, default_template_id(zh))
    assert "题目：法国的首都是哪里？" in prompt and prompt.endswith("答案：")
    with pytest.raises(InputError, match="language"):
        render(zh, "mc-en-0shot@1")


@pytest.mark.parametrize(("item", "tid", "fewshot", "message"), [
    (MC, "mc-en-0shot@2", (), "did you mean 'mc-en-0shot@1'"),
    (MC, "open-en-0shot@1", (), "item_type"),
    (MC, "mc-en-fewshot@1", (), "needs at least one example"),
    (MC, "mc-en-0shot@1", (SHOT,), "zero-shot"),
    ({**MC, "question": " "}, "mc-en-0shot@1", (), "question"),
    ({**MC, "choices": ["only one"]}, "mc-en-0shot@1", (), "needs >= 2"),
    (MC, "mc-en-fewshot@1", ({**SHOT, "answer": "Z"},), "answer"),
])
def test_bad_input_is_a_clear_error(item: dict, tid: str, fewshot: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message):
        render(item, tid, fewshot)


def test_build_request_carries_key_template_and_hash() -> None:
    req = build_request(MC)
    assert req.template_id == "mc-en-0shot@1" and req.prompt_hash == prompt_hash(req.prompt)
    assert req.scoring.answer == "A" and req.choice_labels == ("A", "B", "C")
    assert req.loglik_target == "label" and "answer" not in req.public()
    assert "<hidden>" in repr(req)
    gen = build_request({"item_id": "n", "question": "1+1?", "answer": "2", "item_type": "numeric",
                         "language": "en"})
    assert gen.scoring.kind == "numeric" and gen.stop and gen.max_new_tokens == 384


def test_real_mmlu_pro_and_cmmlu_items_render(shared_data: Path) -> None:
    import pandas as pd

    pro = pd.read_parquet(shared_data / "mmlu_pro" / "items.parquet").head(50)
    for row in pro.itertuples():
        item = {"item_id": str(row.question_id), "question": row.question, "choices": list(row.options),
                "answer": int(row.answer_index), "item_type": "mc", "language": "en"}
        req = build_request(item)
        assert req.scoring.answer == row.answer and len(req.choices) == len(row.options)
    cm = pd.read_parquet(shared_data / "cmmlu" / "items.parquet").head(20)
    for row in cm.itertuples():
        item = {"item_id": "c", "question": row.Question, "choices": [row.A, row.B, row.C, row.D],
                "answer": row.Answer, "item_type": "mc", "language": "zh"}
        req = build_request(item)
        assert req.template_id == "mc-zh-0shot@1" and req.prompt.endswith("答案：")
