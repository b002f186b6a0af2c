"""Multiple-choice log-likelihood throughput of the ``hf`` backend against a bare per-option loop.

For a machine with one NVIDIA H100 (Python 3.12, torch 2.11, transformers 5.x; no vLLM, duckdb,
pymoo or network). The script imports only the ``hf`` backend's module from the project (with the
light contract and template modules it stands on), builds a randomly initialised Llama-3.2-1B-shaped
model (bf16) and a byte-level BPE tokenizer (up to 32,000 tokens) trained here on the item text,
reads a copy of ``mmlu_pro/items.parquet`` (or a .jsonl export of it), and scores N items (all their
options) twice in the same run. Prompts are the project's "mc-en-0shot@1" template (question,
lettered options, "Answer:"); each option's text is the continuation scored.

- ``hf``: ``runners.hf.HFRunner.score`` (one packed sequence per item: question once, all options
  after it under a 4-D mask, positions restarting after the question);
- bare loop: every option its own sequence (question + option), sequences sorted by length, batches
  of about ``--batch-tokens`` tokens built on the host, the LM head applied only at the positions
  that predict option tokens, bf16.

It prints items/s, tokens/s, an estimate of the model FLOP/s (2 x parameters x tokens), peak GPU
memory, the hf/bare ratio (floor: >= 3x), the mean |difference| of per-option log-likelihoods (floor:
<= 0.05 nats) and the share of items where both choose the same option (floor: >= 99%).

Without CUDA it refuses (no CPU substitute figure). ``--smoke`` runs the same code path on the CPU
with a tiny model, 20 items and float32, to prove it works; its timings are not performance figures.

    python bench/runner_throughput.py /path/to/mmlu_pro/items.parquet            # on the H100
    python bench/runner_throughput.py --smoke                                    # anywhere
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Only the hf backend and the light modules it is built on (no pandas, duckdb, pymoo, vllm).
from runners import HFRunner, Request, build_request, loglik_continuations  # noqa: E402

DEFAULT_ITEMS = ROOT.parent / "shared" / "data" / "mmlu_pro" / "items.parquet"

# Llama-3.2-1B: 16 layers, hidden 2048, 32 heads of 64 (8 key/value heads), MLP 8192, vocab 128,256,
# tied embeddings, RoPE theta 500,000 -> 1.24 B parameters.
LLAMA_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=8192,
                tie_word_embeddings=True)
TINY = dict(vocab_size=1024, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=4096,
            tie_word_embeddings=False)


def read_items(path: Path, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` items drawn without replacement (seeded) from the parquet (pyarrow) or a .jsonl copy."""
    if not path.is_file():
        sys.exit(f"runner_throughput: items file {path} not found (pass a copy of mmlu_pro/items.parquet)")
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            sys.exit("runner_throughput: reading parquet needs pyarrow; install it or pass a .jsonl copy "
                     "(one object per line with question, options, answer)")
        rows = pq.read_table(path, columns=["question_id", "question", "options", "answer"]).to_pylist()
    for k, row in enumerate(rows):
        for field in ("question", "options", "answer"):
            if field not in row:
                sys.exit(f"runner_throughput: {path} row {k} has no field {field!r}")
    if n > len(rows):
        sys.exit(f"runner_throughput: {path} has {len(rows)} items, {n} asked for")
    pick = rng.choice(len(rows), size=n, replace=False)
    return [rows[i] for i in sorted(pick)]


def make_requests(items: list[dict]) -> list[Request]:
    """The project's zero-shot MC prompt (question with lettered options, "Answer:"), each option's text
    scored as its continuation."""
    reqs = []
    for k, it in enumerate(items):
        item = {"item_id": str(it.get("question_id", k)), "question": it["question"],
                "choices": [str(o) for o in it["options"]], "answer": str(it["answer"]), "item_type": "mc",
                "language": "en"}
        reqs.append(build_request(item, "mc-en-0shot@1", loglik_target="text"))
    return reqs


def build_tokenizer(items: list[dict], vocab_size: int):  # noqa: ANN201
    """A byte-level BPE trained on the items' text (BOS added), wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = (line for it in items for line in [it["question"], *map(str, it["options"])])
    tok.train_from_iterator(text, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def build_model(shape: dict, device: torch.device, dtype: torch.dtype, seed: int):  # noqa: ANN201
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with device:
            model: Any = LlamaForCausalLM(config)
            model = model.to(dtype)
    return model.eval()


def bare_loop(model, tokenizer, requests: list[Request], batch_tokens: int,  # noqa: ANN001
              device: torch.device) -> tuple[list[list[float]], int]:
    """Per-option log-likelihoods: every option its own sequence; returns (logliks, tokens read)."""
    seqs: list[tuple[int, int, list[int], int]] = []  # (item, option, ids, context length)
    for i, req in enumerate(requests):
        ctx, conts = loglik_continuations(req)
        ctx_ids = tokenizer(ctx)["input_ids"]
        for j, cont_ids in enumerate(tokenizer(list(conts), add_special_tokens=False)["input_ids"]):
            seqs.append((i, j, ctx_ids + cont_ids, len(ctx_ids)))
    seqs.sort(key=lambda s: -len(s[2]))
    out = [[0.0] * len(r.choices) for r in requests]
    head = model.get_output_embeddings()
    pad = tokenizer.pad_token_id
    start = 0
    with torch.inference_mode():
        while start < len(seqs):
            width = len(seqs[start][2])
            stop = min(len(seqs), start + max(1, batch_tokens // width))
            batch = seqs[start:stop]
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            rows_b, rows_t, targets, owner = [], [], [], []
            for b, (_, _, x, lc) in enumerate(batch):
                ids[b, : len(x)] = x
                mask[b, : len(x)] = 1
                for t in range(lc, len(x)):  # the hidden state at t - 1 predicts token t
                    rows_b.append(b)
                    rows_t.append(t - 1)
                    targets.append(x[t])
                    owner.append(b)
            hidden = model.base_model(input_ids=torch.from_numpy(ids).to(device),
                                      attention_mask=torch.from_numpy(mask).to(device), use_cache=False
                                      ).last_hidden_state
            h = hidden[torch.tensor(rows_b, device=device), torch.tensor(rows_t, device=device)]
            tgt = torch.tensor(targets, device=device)
            lp = torch.empty(len(targets), dtype=torch.float32, device=device)
            for r0 in range(0, len(targets), 4096):
                logits = head(h[r0:r0 + 4096]).float()
                lp[r0:r0 + 4096] = logits.gather(1, tgt[r0:r0 + 4096, None])[:, 0] - logits.logsumexp(-1)
            sums = np.zeros(len(batch))
            np.add.at(sums, np.asarray(owner), lp.double().cpu().numpy())
            for b, (i, j, _, _) in enumerate(batch):
                out[i][j] = float(sums[b])
            start = stop
    return out, sum(len(s[2]) for s in seqs)


def timed(fn, device: torch.device):  # noqa: ANN001, ANN201
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    value = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return value, time.perf_counter() - t0, peak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("items", nargs="?", type=Path, default=DEFAULT_ITEMS, help="mmlu_pro items.parquet or .jsonl")
    ap.add_argument("--n-items", type=int, default=None, help="items to score (default 1000; smoke: 20)")
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny model, 20 items, float32 on CPU: code path only")
    args = ap.parse_args(argv)

    if not args.smoke and not torch.cuda.is_available():
        print("runner_throughput: no CUDA device here. This bench measures the hf backend on an NVIDIA GPU "
              "(reference: one H100) and reports no CPU substitute figure; nothing was measured. "
              "Use --smoke to exercise the code path on the CPU.", file=sys.stderr)
        return 0
    device = torch.device("cpu" if args.smoke else "cuda")
    dtype = torch.float32 if args.smoke else torch.bfloat16
    n = args.n_items or (20 if args.smoke else 1000)
    rng = np.random.default_rng(args.seed)
    items = read_items(args.items, n, rng)
    requests = make_requests(items)

    t0 = time.perf_counter()
    tokenizer = build_tokenizer(items, vocab_size=1000 if args.smoke else 32000)
    model = build_model(TINY if args.smoke else LLAMA_1B, device, dtype, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    runner = HFRunner(model, tokenizer, device=str(device), dtype="float32" if args.smoke else "bfloat16",
                      batch_tokens=args.batch_tokens)
    where = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"setup {time.perf_counter() - t0:.1f} s: {where}, torch {torch.__version__}, "
          f"{n_params / 1e9:.3f} B parameters, {dtype}, tokenizer of {len(tokenizer)} tokens, "
          f"{len(requests)} items, {sum(len(r.choices) for r in requests)} options")

    warm = requests[: min(8, len(requests))]  # kernels, allocator and tokenizer caches
    runner.score(warm)
    bare_loop(model, tokenizer, warm, args.batch_tokens, device)

    results, t_hf, mem_hf = timed(lambda: runner.score(requests), device)
    (bare, bare_tokens), t_bare, mem_bare = timed(
        lambda: bare_loop(model, tokenizer, requests, args.batch_tokens, device), device)
    hf_tokens = sum(r.tokens_in for r in results)
    if any(r.error for r in results):
        bad = next(r for r in results if r.error)
        print(f"hf backend error on item {bad.item_id}: {bad.error}", file=sys.stderr)
        return 1

    diffs = np.concatenate([np.abs(np.asarray(r.choice_logliks) - np.asarray(b))
                            for r, b in zip(results, bare, strict=True)])
    same = np.mean([int(np.argmax(r.choice_logliks)) == int(np.argmax(b)) for r, b in zip(results, bare, strict=True)])
    ratio = t_bare / t_hf
    for name, secs, toks, mem in (("hf backend", t_hf, hf_tokens, mem_hf), ("bare loop", t_bare, bare_tokens, mem_bare)):
        print(f"{name:11s}: {n / secs:8.1f} items/s  {toks / secs / 1e3:8.1f} k tokens/s  "
              f"{toks / 1e6:6.3f} M tokens  ~{2 * n_params * toks / secs / 1e12:6.1f} TFLOP/s  "
              f"peak GPU memory {mem:5.1f} GiB  ({secs:.2f} s)")
    print(f"ratio hf / bare loop (items/s): {ratio:.2f}x   mean |diff| per-option loglik: {diffs.mean():.4f} nats "
          f"(max {diffs.max():.2e})   same choice: {100 * same:.1f}%")
    if args.smoke:
        print("smoke run (tiny model, CPU, float32): timings are not performance figures; "
              f"agreement check {'ok' if diffs.max() < 1e-3 and same == 1.0 else 'FAILED'}")
        return 0 if diffs.max() < 1e-3 and same == 1.0 else 1
    floors = {"ratio >= 3": ratio >= 3.0, "mean |diff| <= 0.05": diffs.mean() <= 0.05, "same >= 99%": same >= 0.99}
    print("floors: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in floors.items()))
    return 0 if all(floors.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
