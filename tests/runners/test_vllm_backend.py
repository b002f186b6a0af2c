"""The vllm backend for real: the vLLM CPU build (.venv-vllm) on the tiny local model, against hf.

The engine runs in the .venv-vllm interpreter (the main test environment has no vllm): VLLMRunner
starts it as a worker process there. One engine per module (model load takes seconds to minutes on
2 cores). Both backends run the model in float32, so choice log-likelihoods must agree to 1e-3 nats.
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

TOL = 1e-3  # nats


def mc_requests() -> list[Request]:
    """Multiple-choice items of many lengths: short, Chinese, label targets, and long few-shot prompts
    (over vLLM's 128-token cache block, so the shared question prefix is cached and reused)."""
    reqs = []
    for i in range(6):
        reqs.append(Request(
            item_id=f"en{i}", prompt=f"Question: What is {i} + {i * 7}?\nA. {i * 8}\nB. {i * 8 + 1}\nC. cats\nAnswer:",
            item_type="mc", scoring=ScoringRule("choice", "A"), choices=(str(i * 8), str(i * 8 + 1), "many cats")))
    reqs.append(Request(item_id="zh", prompt="题目：水的化学式是什么？\nA. 水\nB. 电力\n答案：", item_type="mc",
                        scoring=ScoringRule("choice", "A"), choices=("水", "电力")))
    reqs.append(Request(item_id="label", prompt="Question: Which city?\nA. paris\nB. rome\nC. berlin\nD. london\nAnswer:",
                        item_type="mc", scoring=ScoringRule("choice", "C"), choices=("paris", "rome", "berlin", "london"),
                        loglik_target="label"))
    shots = "\n\n".join(f"Question: The {w} of the river is more than the city?\nA. true\nB. false\nAnswer: {'AB'[k % 2]}"
                        for k, w in enumerate(["price", "energy", "value", "history", "water", "market", "theory",
                                               "law", "cell", "cost", "number", "total"]))
    for j in range(3):
        reqs.append(Request(
            item_id=f"long{j}", prompt=f"{shots}\n\nQuestion: Is {j} the first number?\nA. true\nB. false\nC. many\nAnswer:",
            item_type="mc", scoring=ScoringRule("choice", "B"), choices=("true", "false", "many"),
            choice_labels=("A", "B", "C"), loglik_target="label" if j == 2 else "text"))
    return reqs


@pytest.fixture(scope="module")
def hf_runner(tiny_model_dir: Path) -> Iterator[object]:
    runner = create("hf", model=str(tiny_model_dir), dtype="float32", device="cpu")
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def vllm_runner(tiny_model_dir: Path) -> Iterator[object]:
    runner = create("vllm", model=str(tiny_model_dir), dtype="float32", python=str(DEFAULT_WORKER_PYTHON))
    yield runner
    runner.close()


def test_choice_logliks_agree_with_hf_in_float32(vllm_runner, hf_runner) -> None:  # noqa: ANN001
    reqs = mc_requests()
    got = vllm_runner.score(reqs)
    ref = hf_runner.score(reqs)
    assert vllm_runner.info["cpu"] is True  # the vLLM CPU build really ran
    worst = 0.0
    for g, r, req in zip(got, ref, reqs, strict=True):
        assert g.ok, g.error
        assert g.item_id == req.item_id and len(g.choice_logliks) == len(req.choices)
        worst = max(worst, max(abs(a - b) for a, b in zip(g.choice_logliks, r.choice_logliks, strict=True)))
        assert g.extracted == r.extracted and g.score == r.score and g.raw_output == r.raw_output
    assert worst < TOL, f"max |vllm - hf| = {worst:.2e} nats"
    # The options differ (a random model still tells them apart): agreement is not two constant vectors.
    assert max(abs(a - b) for g in got for a, b in zip(g.choice_logliks[:-1], g.choice_logliks[1:], strict=True)) > 0.1


def test_shared_prefix_is_reused_and_gives_the_same_values(vllm_runner, hf_runner) -> None:  # noqa: ANN001
    reqs = [r for r in mc_requests() if r.item_id.startswith("long")]
    first = vllm_runner.score(reqs)
    again = vllm_runner.score(list(reversed(reqs)))[::-1]  # order restored whatever the input order
    cached = sum(r.extra["cached_tokens"] for r in first + again)
    assert cached >= 128, "no prompt tokens came from the prefix cache"
    ref = hf_runner.score(reqs)
    for a, b, r in zip(first, again, ref, strict=True):
        assert a.choice_logliks == pytest.approx(b.choice_logliks, abs=1e-4)
        assert a.choice_logliks == pytest.approx(r.choice_logliks, abs=TOL)


def _gen(item_id: str, prompt: str, stop: tuple[str, ...] = (), max_new: int = 10) -> Request:
    return Request(item_id=item_id, prompt=prompt, item_type="open", scoring=ScoringRule("exact", "paris"),
                   max_new_tokens=max_new, stop=stop)


def test_greedy_generation_and_stop_sequences_match_hf(vllm_runner, hf_runner) -> None:  # noqa: ANN001
    prompts = ["Question: What is the capital city?\nAnswer:", "12 + 30 =", "Question: How many days?",
               "题目：水是什么？\n答案：", "The price of water"]
    reqs = [_gen(f"g{i}", p) for i, p in enumerate(prompts)]
    got = vllm_runner.score(reqs)
    ref = hf_runner.score(reqs)
    same = [g.raw_output == r.raw_output for g, r in zip(got, ref, strict=True)]
    assert all(g.tokens_out == 10 and g.ok for g in got)
    assert sum(same) >= len(reqs) - 1, [(g.raw_output, r.raw_output) for g, r in zip(got, ref, strict=True)]
    # Stop sequences: cut at a piece of hf's own continuation; vLLM must stop right before it.
    stopped = []
    for i, r in enumerate(ref):
        text = r.raw_output
        cut = next((k for k in range(2, len(text) - 1) if text[k:k + 2].strip() and "\ufffd" not in text[:k + 2]), None)
        if cut is not None and same[i]:
            stopped.append((_gen(f"s{i}", prompts[i], stop=(text[cut:cut + 2],)), text[:text.find(text[cut:cut + 2])]))
    assert stopped, "no usable stop sequence found"
    res = vllm_runner.score([s[0] for s in stopped])
    for out, (_, expect) in zip(res, stopped, strict=True):
        assert out.raw_output == expect and out.extra["finish_reason"] == "stop"


def test_complete_matches_hf_greedy_and_sampling_repeats_under_a_seed(vllm_runner, hf_runner) -> None:  # noqa: ANN001
    prompts = ["Question: What is the capital city?\nAnswer:", "12 + 30 =", "题目：水是什么？\n答案："]
    got = vllm_runner.complete(prompts, max_new_tokens=10)
    ref = hf_runner.complete(prompts, max_new_tokens=10)
    assert all(g.ok and g.tokens_out == 10 and g.tokens_in == r.tokens_in for g, r in zip(got, ref, strict=True))
    assert sum(g.text == r.text for g, r in zip(got, ref, strict=True)) >= len(prompts) - 1
    a = vllm_runner.complete(prompts, max_new_tokens=10, temperature=1.0, seed=11)
    assert a == vllm_runner.complete(prompts, max_new_tokens=10, temperature=1.0, seed=11)
    assert [c.text for c in a] != [c.text for c in got]


def test_mc_by_generation_and_too_long_prompts(vllm_runner) -> None:  # noqa: ANN001
    gen_mc = Request(item_id="gm", prompt="Question: pick one\nA. x\nB. y\nAnswer:", item_type="mc",
                     scoring=ScoringRule("choice", "B"), choices=("x", "y"), mc_mode="generate", max_new_tokens=4)
    too_long = Request(item_id="big", prompt="cats " * 3000 + "Answer:", item_type="mc",
                       scoring=ScoringRule("choice", "A"), choices=("a", "b"))
    ok = _gen("fine", "Answer:")
    res = vllm_runner.score([too_long, gen_mc, ok])
    assert [r.item_id for r in res] == ["big", "gm", "fine"]
    assert res[0].error is not None and "max_model_len" in res[0].error and res[0].score == 0.0
    assert res[1].ok and res[1].choice_logliks is None and res[1].tokens_out >= 1
    assert res[2].ok


def test_chat_template_matches_hf(tiny_model_dir: Path) -> None:
    reqs = mc_requests()[:4] + [mc_requests()[7]]
    hf = create("hf", model=str(tiny_model_dir), dtype="float32", device="cpu", chat_template=True)
    ref = hf.score(reqs)
    with create("vllm", model=str(tiny_model_dir), dtype="float32", chat_template=True,
                python=str(DEFAULT_WORKER_PYTHON)) as runner:
        got = runner.score(reqs + [_gen("g", "Say hello", max_new=6)])
    plain = create("hf", model=str(tiny_model_dir), dtype="float32", device="cpu").score(reqs)
    for g, r, p in zip(got[:-1], ref, plain, strict=True):
        assert g.choice_logliks == pytest.approx(r.choice_logliks, abs=TOL)
        assert max(abs(a - b) for a, b in zip(g.choice_logliks, p.choice_logliks, strict=True)) > 1e-2
    assert got[-1].ok and got[-1].tokens_in > len("Say hello".split())  # template tokens were added


def test_a_missing_model_is_a_clear_error_and_the_worker_ends(tmp_path: Path) -> None:
    from adtbase.errors import RunnerError

    with pytest.raises(RunnerError, match="could not load model"):
        create("vllm", model=str(tmp_path / "no-such-model"), python=str(DEFAULT_WORKER_PYTHON),
               startup_timeout_s=300)
