"""The hf backend on the tiny local model, float32 on CPU.

Packed multiple-choice log-likelihoods are checked against the naive computation (each option its own
sequence, one full forward pass, log-softmax over every position), generation against a hand-written
greedy loop, and batching against scoring each request alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from runners.base import Request, ScoringRule, loglik_continuations  # noqa: E402
from runners.hf import HFRunner, PackedItem, make_batches, pack_batch, packed_attention_mask  # noqa: E402

QUESTIONS = [
    ("Question: What is the capital of France?\nAnswer:", ("Paris", "London", "Rome", "Berlin")),
    ("Question: Which of the following is a prime number?\nAnswer:", ("4", "9", "7 is prime", "15", "21", "1")),
    ("题目：中国的首都是哪里？\n答案：", ("北京", "上海市", "广州")),
    ("Question: 12 + 30 = ?\nAnswer: ", ("42", "forty two", "-3,000.5")),
    ("Question: the market theory of energy value in history and the law of water cells, "
     "therefore which one?\nAnswer:", ("A long option that has many words in it to be long", "B")),
]


def mc_requests(answer: str = "A", target: str = "text") -> list[Request]:
    return [Request(f"q{i}", prompt, "mc", ScoringRule("choice", answer), choices=choices,
                    loglik_target=target)  # type: ignore[arg-type]
            for i, (prompt, choices) in enumerate(QUESTIONS)]


@pytest.fixture(scope="module")
def runner(tiny_model_dir: Path) -> HFRunner:
    return HFRunner(str(tiny_model_dir), device="cpu", dtype="float32", batch_tokens=256)


def naive_logliks(runner: HFRunner, req: Request, chat: bool = False) -> list[float]:
    """Every option its own sequence: sum of log-softmax at its tokens, from a plain causal forward."""
    tok, model = runner.tokenizer, runner.model
    prompt = runner.render_prompt(req) if chat else req.prompt
    ctx, conts = loglik_continuations(req.with_prompt(prompt))
    ctx_ids = tok(ctx, add_special_tokens=not chat)["input_ids"]
    out = []
    for cont in conts:
        opt = tok(cont, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = model(torch.tensor([ctx_ids + opt])).logits[0].log_softmax(-1)
        out.append(sum(float(logp[len(ctx_ids) - 1 + t, o]) for t, o in enumerate(opt)))
    return out


def test_packed_logliks_equal_naive_per_option(runner: HFRunner) -> None:
    reqs = mc_requests() + mc_requests(target="label")
    results = runner.score(reqs)
    for req, res in zip(reqs, results, strict=True):
        ref = naive_logliks(runner, req)
        assert res.choice_logliks is not None
        np.testing.assert_allclose(res.choice_logliks, ref, atol=1e-4, rtol=0)
        assert res.extracted == req.choice_labels[int(np.argmax(ref))]
        assert res.tokens_in > 0 and res.error is None


def _packed_with(runner: HFRunner, item: PackedItem, segment: np.ndarray, positions: np.ndarray) -> np.ndarray:
    arrays = pack_batch([item], runner.pad_id)
    with torch.no_grad():
        hidden = runner.model.base_model(
            input_ids=torch.from_numpy(arrays["input_ids"]), position_ids=torch.from_numpy(positions),
            attention_mask=packed_attention_mask(torch.from_numpy(segment), torch.float32)).last_hidden_state
        rows = torch.from_numpy(arrays["rows"])
        lp = runner.token_logprobs(hidden[rows[:, 0], rows[:, 1]], torch.from_numpy(arrays["row_of_target"]),
                                   torch.from_numpy(arrays["target"]))
    sums = np.zeros(len(item.option_ids))
    np.add.at(sums, arrays["option_of_target"], lp.numpy())
    return sums


def test_mask_and_positions_are_what_make_them_equal(runner: HFRunner) -> None:
    """Guard against a vacuous comparison: a plain causal mask, or positions that run on, give other numbers."""
    req = mc_requests()[1]
    item = runner.tokenize_loglik(req)
    arrays = pack_batch([item], runner.pad_id)
    ref = np.array(naive_logliks(runner, req))
    right = _packed_with(runner, item, arrays["segment"], arrays["position_ids"])
    assert np.max(np.abs(right - ref)) < 1e-4
    causal_only = np.where(arrays["segment"] > 0, 0, arrays["segment"])  # options see earlier options
    assert np.max(np.abs(_packed_with(runner, item, causal_only, arrays["position_ids"]) - ref)) > 1e-2
    running = np.arange(arrays["segment"].shape[1])[None, :]  # positions do not restart
    assert np.max(np.abs(_packed_with(runner, item, arrays["segment"], running) - ref)) > 1e-2


def test_chat_template_packed_equals_naive(tiny_model_dir: Path) -> None:
    chat = HFRunner(str(tiny_model_dir), device="cpu", dtype="float32", chat_template=True,
                    system_prompt="Answer briefly.")
    req = mc_requests()[0]
    text = chat.render_prompt(req)
    assert text.startswith("<|system|>\nAnswer briefly.\n<|user|>\n") and text.endswith("<|assistant|>\n")
    res = chat.score([req])[0]
    np.testing.assert_allclose(res.choice_logliks, naive_logliks(chat, req, chat=True), atol=1e-4, rtol=0)


def test_results_in_request_order_whatever_the_batches(runner: HFRunner) -> None:
    reqs = mc_requests()
    rng = np.random.default_rng(3)
    shuffled = [reqs[i] for i in rng.permutation(len(reqs))]
    alone = {r.item_id: runner.score([r])[0] for r in reqs}
    together = runner.score(shuffled)  # batch_tokens=256 splits them into several batches
    assert [r.item_id for r in together] == [r.item_id for r in shuffled]
    for res in together:
        np.testing.assert_allclose(res.choice_logliks, alone[res.item_id].choice_logliks, atol=1e-4, rtol=0)


def test_make_batches_respects_the_token_budget() -> None:
    lengths = [5, 40, 17, 3, 40, 22, 9, 1]
    batches = make_batches(lengths, batch_tokens=60)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) * max(lengths[i] for i in b) <= 60 or len(b) == 1
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def test_pack_batch_layout() -> None:
    items = [PackedItem(0, (1, 2, 3), ((7, 8), (9,))), PackedItem(1, (4,), ((5, 6, 6),))]
    a = pack_batch(items, pad_id=0)
    assert a["input_ids"].tolist() == [[1, 2, 3, 7, 8, 9], [4, 5, 6, 6, 0, 0]]
    assert a["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3], [0, 1, 2, 3, 0, 0]]
    assert a["segment"].tolist() == [[0, 0, 0, 1, 1, 2], [0, 1, 1, 1, -1, -1]]
    # rows predicting option tokens: item 0 context end (0,2), then (0,3) for token 8; item 1 (1,0),(1,1),(1,2)
    assert a["rows"].tolist() == [[0, 2], [0, 3], [1, 0], [1, 1], [1, 2]]
    assert a["target"].tolist() == [7, 8, 9, 5, 6, 6]
    assert a["row_of_target"].tolist() == [0, 1, 0, 2, 3, 4]
    assert a["option_of_target"].tolist() == [0, 0, 1, 2, 2, 2]
    wide = pack_batch(items, pad_id=0, pad_to_multiple=4)
    assert wide["input_ids"].shape == (2, 8) and (wide["segment"][:, 6:] == -1).all()
    assert (wide["rows"] == a["rows"]).all() and (wide["target"] == a["target"]).all()
    mask = packed_attention_mask(torch.from_numpy(a["segment"]), torch.float32)[0, 0] == 0
    # option 2's token (position 5) sees the context (0-2) and itself, not option 1 (3-4)
    assert mask[5].tolist() == [True, True, True, False, False, True]
    assert mask[4].tolist() == [True, True, True, True, True, False]


def greedy_reference(runner: HFRunner, prompt: str, max_new: int) -> list[int]:
    """Greedy decoding by hand: full forward each step, argmax, until EOS or max_new tokens."""
    ids = runner.tokenizer(prompt)["input_ids"]
    out: list[int] = []
    for _ in range(max_new):
        with torch.no_grad():
            nxt = int(runner.model(torch.tensor([ids + out])).logits[0, -1].argmax())
        if nxt == runner.tokenizer.eos_token_id:
            break
        out.append(nxt)
    return out


def test_generation_matches_greedy_reference_in_a_padded_batch(runner: HFRunner) -> None:
    prompts = ["Question: what is 2 + 2?\nAnswer:", "Question: a much longer question about the "
               "history of the market and the energy of water, in many words?\nAnswer:", "题目：一加一？\n答案："]
    reqs = [Request(f"g{i}", p, "open", ScoringRule("exact", "x"), max_new_tokens=10)
            for i, p in enumerate(prompts)]
    wide = HFRunner(runner.model, runner.tokenizer, device="cpu", dtype="float32", batch_tokens=10_000)
    results = wide.score(reqs)  # one left-padded batch of three
    for req, res in zip(reqs, results, strict=True):
        ref = greedy_reference(runner, req.prompt, 10)
        assert res.raw_output == runner.tokenizer.decode(ref, skip_special_tokens=True)
        assert res.tokens_out == len(ref)
        assert res.tokens_in == len(runner.tokenizer(req.prompt)["input_ids"])


def test_stop_sequence_cuts_the_output(runner: HFRunner) -> None:
    prompt = "Question: the answer is\nAnswer:"
    free = runner.score([Request("s", prompt, "open", ScoringRule("exact", "x"), max_new_tokens=12)])[0]
    text = free.raw_output
    visible = [i for i in range(2, len(text) - 1) if text[i].strip() and text[i] != "\ufffd"]
    assert visible, f"generated text too short to test stops: {text!r}"
    stop = text[visible[0]:visible[0] + 2]
    cut = runner.score([Request("s", prompt, "open", ScoringRule("exact", "x"), max_new_tokens=12,
                                stop=(stop,))])[0]
    assert cut.raw_output == text[: text.find(stop)]
    assert cut.tokens_out <= free.tokens_out


def test_generation_is_scored_by_the_rule(runner: HFRunner) -> None:
    prompt = "Question: the answer is\nAnswer:"
    free = runner.score([Request("n", prompt, "open", ScoringRule("exact", "x"), max_new_tokens=8)])[0]
    same = runner.score([Request("n", prompt, "open", ScoringRule("exact", free.raw_output), max_new_tokens=8)])[0]
    if any(ch.isalnum() for ch in free.raw_output):
        assert same.score == 1.0
    assert runner.score([Request("n", prompt, "numeric", ScoringRule("numeric", "123456789"),
                                 max_new_tokens=8)])[0].score == 0.0


def test_mc_generate_mode_extracts_a_choice(runner: HFRunner) -> None:
    req = Request("m", "Question: pick one.\nA. x\nB. y\nAnswer:", "mc", ScoringRule("choice", "A"),
                  choices=("x", "y"), mc_mode="generate", max_new_tokens=6)
    res = runner.score([req])[0]
    assert res.choice_logliks is None and res.tokens_out >= 1
    assert res.extracted in (None, "A", "B")
    assert res.score == float(res.extracted == "A")


def test_too_long_items_are_errors_not_truncations(tiny_model_dir: Path) -> None:
    short = HFRunner(str(tiny_model_dir), device="cpu", dtype="float32", max_length=12)
    reqs = mc_requests()[:2]
    results = short.score(reqs)
    assert all(r.error is not None and "max_length 12" in r.error for r in results)


def test_cuda_request_without_cuda_is_a_clear_error(tiny_model_dir: Path) -> None:
    from adtbase.errors import InputError, RunnerError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RunnerError, match="CUDA is not available"):
        HFRunner(str(tiny_model_dir), device="cuda")
    with pytest.raises(InputError, match="dtype"):
        HFRunner(str(tiny_model_dir), dtype="float8")


def test_tiny_model_builder_is_seeded_and_shaped(tiny_model_dir: Path, tmp_path: Path) -> None:
    import json

    from runners.testing import build_tiny_model

    again = build_tiny_model(tmp_path / "again", seed=0)
    assert (again / "tokenizer.json").read_bytes() == (tiny_model_dir / "tokenizer.json").read_bytes()
    assert (again / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    other = build_tiny_model(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (tiny_model_dir / "model.safetensors").read_bytes()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["hidden_size"] == 128 and config["head_dim"] >= 32
    assert config["vocab_size"] == 512


def test_complete_is_greedy_generation_and_seeded_sampling(runner: HFRunner) -> None:
    """``complete`` (item generators): greedy text = the reference decoding; sampling repeats under one seed
    and leaves the caller's torch RNG as it was."""
    prompts = ["Question: what is 2 + 2?\nAnswer:", "题目：一加一？\n答案："]
    got = runner.complete(prompts, max_new_tokens=8)
    for prompt, c in zip(prompts, got, strict=True):
        ref = greedy_reference(runner, prompt, 8)
        assert c.ok and c.text == runner.tokenizer.decode(ref, skip_special_tokens=True) and c.tokens_out == len(ref)
        assert c.tokens_in == len(runner.tokenizer(prompt)["input_ids"])
    state = torch.random.get_rng_state()
    a = runner.complete(prompts, max_new_tokens=8, temperature=1.0, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == runner.complete(prompts, max_new_tokens=8, temperature=1.0, seed=3)
    assert [c.text for c in a] != [c.text for c in runner.complete(prompts, max_new_tokens=8, temperature=1.0, seed=4)]
    [long] = HFRunner(runner.model, runner.tokenizer, device="cpu", dtype="float32", max_length=12).complete(
        ["Question: a much longer question about the market?"], max_new_tokens=8)
    assert not long.ok and "exceeds max_length 12" in (long.error or "")
