"""The openai backend against a live OpenAI-compatible server: `vllm serve` of the tiny local model.

The server runs from .venv-vllm (the vLLM CPU build) on 127.0.0.1 with a free port, started once
for the module and stopped (process group) at its end; its start-up wait is bounded. Log-likelihoods
through the HTTP API must agree with the hf backend in float32 to 1e-3 nats, by both routes the
backend has (token ids + vLLM's prompt_logprobs, and text + echo logprobs).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runners import Request, ScoringRule, create
from runners.vllm_backend import DEFAULT_WORKER_PYTHON

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not DEFAULT_WORKER_PYTHON.exists(),
                       reason=f"{DEFAULT_WORKER_PYTHON} absent: `make install` builds the vLLM CPU environment"),
]

TOL = 1e-3


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path) -> Iterator[object]:
    from runners.vllm_server import LocalVLLMServer

    with LocalVLLMServer(tiny_model_dir, served_name="tiny", startup_timeout_s=420) as srv:
        yield srv


@pytest.fixture(scope="module")
def hf_runner(tiny_model_dir: Path) -> Iterator[object]:
    runner = create("hf", model=str(tiny_model_dir), dtype="float32", device="cpu")
    yield runner
    runner.close()


def requests() -> list[Request]:
    out = [Request(item_id=f"q{i}", prompt=f"Question: What is {i} + {3 * i}?\nA. {4 * i}\nB. {4 * i + 2}\nC. many cats\nAnswer:",
                   item_type="mc", scoring=ScoringRule("choice", "A"), choices=(str(4 * i), str(4 * i + 2), "many cats"))
           for i in range(5)]
    out.append(Request(item_id="zh", prompt="题目：水的化学式是什么？\nA. 水\nB. 电力\n答案：", item_type="mc",
                       scoring=ScoringRule("choice", "A"), choices=("水", "电力")))
    out.append(Request(item_id="lab", prompt="Question: Which city?\nA. paris\nB. rome\nAnswer:", item_type="mc",
                       scoring=ScoringRule("choice", "B"), choices=("paris", "rome"), loglik_target="label"))
    return out


@pytest.mark.parametrize("method", ["tokens", "echo"])
def test_choice_logliks_over_http_agree_with_hf(server, hf_runner, method: str) -> None:  # noqa: ANN001
    reqs = requests()
    runner = create("openai", model=server.served_name, base_url=server.base_url, loglik_method=method,
                    concurrency=4, timeout_s=60)
    got = runner.score(reqs)
    ref = hf_runner.score(reqs)
    for g, r in zip(got, ref, strict=True):
        assert g.ok, g.error
        assert g.extra["loglik_method"] == method
        assert g.choice_logliks == pytest.approx(r.choice_logliks, abs=TOL)
        assert g.extracted == r.extracted and g.score == r.score


def test_auto_uses_the_token_route_on_vllm(server) -> None:  # noqa: ANN001
    runner = create("openai", model=server.served_name, base_url=server.base_url)
    [res] = runner.score(requests()[:1])
    assert res.ok and res.extra["loglik_method"] == "tokens" and res.tokens_in > 10


def test_generation_over_http_matches_hf_greedy(server, hf_runner) -> None:  # noqa: ANN001
    prompts = ["Question: What is the capital city?\nAnswer:", "12 + 30 =", "The price of water"]
    reqs = [Request(item_id=f"g{i}", prompt=p, item_type="numeric", scoring=ScoringRule("numeric", "42"),
                    max_new_tokens=8) for i, p in enumerate(prompts)]
    got = create("openai", model=server.served_name, base_url=server.base_url).score(reqs)
    ref = hf_runner.score(reqs)
    assert all(g.ok and g.tokens_out == 8 and g.extra["api"] == "completions" for g in got)
    assert sum(g.raw_output == r.raw_output for g, r in zip(got, ref, strict=True)) >= len(reqs) - 1


def test_chat_endpoint_answers(server) -> None:  # noqa: ANN001
    # The tiny tokenizer carries a chat template, so vLLM serves /v1/chat/completions for it.
    from dataclasses import replace

    mc = replace(requests()[0], max_new_tokens=16)
    runner = create("openai", model=server.served_name, base_url=server.base_url, api="chat")
    [res] = runner.score([mc])
    assert res.ok and res.extra["api"] == "chat" and res.extra["mc_mode"] == "generate"
    assert res.tokens_in > 0 and 1 <= res.tokens_out <= mc.max_new_tokens
