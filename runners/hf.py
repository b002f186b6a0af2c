"""The ``hf`` backend: a transformers causal LM, batched, on the GPU when there is one.

Multiple choice by log-likelihood (``Request.uses_loglik``) packs each item into ONE sequence: the
context (question prompt) followed by all its options' continuation tokens. A 4-D attention mask lets
every option token see the context and the earlier tokens of its own option only, and position ids
restart after the context for each option, so each option is computed exactly as if it followed the
context alone, while the context is encoded once per item instead of once per option. The language
model head is applied only at the rows that predict option tokens (the last context token and every
option token but the last), in chunks, and each option's log-likelihood is the sum of its tokens'
log-probabilities (nats).

Tokenisation (shared with the vLLM backend through ``runners.base.loglik_continuations``): the
context is tokenised with the tokenizer's special tokens (BOS), each continuation separately without
them; the continuation carries the separator the prompt ended with, or one leading space (" Paris"),
so BPE tokenisers give it the word-initial tokens. With ``chat_template=True`` the prompt is first
wrapped as one user turn with the generation prompt, and is tokenised without extra special tokens
(the template writes them).

Open, numeric and ``mc_mode="generate"`` items are answered by greedy generation (left padding) with
the request's stop sequences, then scored by ``runners.scoring``. Batches are formed from requests
sorted by length, under a token budget (``batch_tokens`` = batch size x padded length), and results
are returned in request order. ``latency_s`` is the batch's wall time divided among its items.
``complete`` (free text for item generators) takes the same path without stops, greedy or sampled.

This module imports only torch, numpy and the light parts of ``runners`` and ``adt`` (no pandas or
duckdb), so GPU machines can run it alone; transformers is imported when a model is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from adtbase.errors import InputError, RunnerError
from runners.base import (
    Completion,
    Request,
    Result,
    Runner,
    check_completion_args,
    check_results,
    loglik_continuations,
)
from runners.scoring import score_logliks, score_request

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
           "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class PackedItem:
    """One multiple-choice item as a single packed sequence (host-side token ids)."""

    index: int  # the request's position in the batch given to ``score``
    ctx_ids: tuple[int, ...]
    option_ids: tuple[tuple[int, ...], ...]

    @property
    def length(self) -> int:
        return len(self.ctx_ids) + sum(len(o) for o in self.option_ids)


def pack_batch(items: Sequence[PackedItem], pad_id: int, pad_to_multiple: int = 1) -> dict[str, np.ndarray]:
    """Arrays for one forward pass over packed items (pure numpy; padded on the right).

    The padded width is rounded up to ``pad_to_multiple`` (GPU attention kernels want aligned masks).
    Returns ``input_ids``, ``position_ids``, ``segment`` (B, T): 0 for context tokens, j + 1 for
    option j, -1 for padding; ``rows`` (R, 2): (batch row, position) of each hidden state that
    predicts an option token, deduplicated (the last context token serves every option's first
    token); and per option token ``target`` (N,), ``row_of_target`` (N,) into ``rows`` and
    ``option_of_target`` (N,): a running option number over the batch, items in order.
    """
    width = max(it.length for it in items)
    width = -(-width // pad_to_multiple) * pad_to_multiple
    n = len(items)
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    position_ids = np.zeros((n, width), dtype=np.int64)
    segment = np.full((n, width), -1, dtype=np.int64)
    rows: list[tuple[int, int]] = []
    target: list[int] = []
    row_of_target: list[int] = []
    option_of_target: list[int] = []
    option_no = 0
    for b, it in enumerate(items):
        lc = len(it.ctx_ids)
        input_ids[b, :lc] = it.ctx_ids
        position_ids[b, :lc] = np.arange(lc)
        segment[b, :lc] = 0
        ctx_row = len(rows)
        rows.append((b, lc - 1))
        start = lc
        for j, opt in enumerate(it.option_ids):
            m = len(opt)
            input_ids[b, start:start + m] = opt
            position_ids[b, start:start + m] = np.arange(lc, lc + m)
            segment[b, start:start + m] = j + 1
            for t in range(m):
                target.append(opt[t])
                option_of_target.append(option_no)
                if t == 0:
                    row_of_target.append(ctx_row)
                else:
                    row_of_target.append(len(rows))
                    rows.append((b, start + t - 1))
            start += m
            option_no += 1
    return {
        "input_ids": input_ids, "position_ids": position_ids, "segment": segment,
        "rows": np.asarray(rows, dtype=np.int64).reshape(-1, 2), "target": np.asarray(target, dtype=np.int64),
        "row_of_target": np.asarray(row_of_target, dtype=np.int64),
        "option_of_target": np.asarray(option_of_target, dtype=np.int64),
    }


def packed_attention_mask(segment: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive (B, 1, T, T) mask: causal, and an option token sees the context and its own option only.

    Padding positions see only themselves (keeps softmax finite; their outputs are never read).
    """
    t = segment.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segment.device).tril()
    q, k = segment[:, :, None], segment[:, None, :]
    allowed = causal & ((k == q) | (k == 0)) & (q >= 0) & (k >= 0)
    allowed |= torch.eye(t, dtype=torch.bool, device=segment.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segment.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None, :, :]


def make_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int = 1024) -> list[list[int]]:
    """Indices sorted by length (longest first), cut so that size x longest <= ``batch_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and ((len(current) + 1) * width > batch_tokens or len(current) >= max_batch_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class HFRunner(Runner):
    """A transformers causal LM as a runner.

    ``model`` is a local path or hub id, or an already built ``PreTrainedModel`` (then ``tokenizer``
    must be given too, as a path or a tokenizer object). ``device``: "auto" (CUDA when available),
    "cpu", "cuda", "cuda:1"...; ``dtype``: "auto" (bfloat16 on CUDA, float32 on CPU), "float32",
    "bfloat16", "float16". ``batch_tokens`` bounds batch size x padded length; ``chat_template``
    wraps prompts for instruction-tuned models; ``max_length`` (default: the model's maximum
    positions) marks longer items as errors instead of truncating them.
    """

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any = None, *, device: str = "auto", dtype: str = "auto",
                 batch_tokens: int = 16384, chat_template: bool = False, system_prompt: str | None = None,
                 max_length: int | None = None, attn_implementation: str = "sdpa",
                 lm_head_chunk_rows: int = 4096, trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RunnerError(f"hf: device {device!r} asked for, but CUDA is not available here")
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        elif dtype in _DTYPES:
            torch_dtype = _DTYPES[dtype]
        else:
            raise InputError(f"hf: dtype {dtype!r} is not one of auto, {', '.join(_DTYPES)}")
        if batch_tokens < 1:
            raise InputError(f"hf: batch_tokens must be >= 1, got {batch_tokens}")
        self.device = torch.device(device)
        self.dtype = torch_dtype
        self.batch_tokens = int(batch_tokens)
        self.chat_template = bool(chat_template)
        self.system_prompt = system_prompt
        self.lm_head_chunk_rows = int(lm_head_chunk_rows)
        self.model: Any
        self.tokenizer: Any

        if isinstance(model, str):
            source = model
            try:
                tok_src = tokenizer if tokenizer is not None else model
                self.tokenizer = (AutoTokenizer.from_pretrained(tok_src, trust_remote_code=trust_remote_code)
                                  if isinstance(tok_src, str) else tok_src)
                self.model = AutoModelForCausalLM.from_pretrained(
                    model, dtype=torch_dtype, attn_implementation=attn_implementation,
                    trust_remote_code=trust_remote_code)
            except (OSError, ValueError) as exc:
                raise RunnerError(f"hf: could not load model {model!r}: {exc}") from exc
        else:
            source = type(model).__name__
            if tokenizer is None:
                raise InputError("hf: a model object needs its tokenizer (tokenizer=...)")
            self.tokenizer = (AutoTokenizer.from_pretrained(tokenizer) if isinstance(tokenizer, str)
                              else tokenizer)
            self.model = model.to(dtype=torch_dtype)
        self.model_name = source
        self.model.to(self.device)
        self.model.eval()
        if self.chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise InputError(f"hf: chat_template=True but the tokenizer of {source} has no chat template")
        if self.model.base_model is self.model:
            raise RunnerError(f"hf: {source} exposes no decoder body (base_model); the LM head cannot be "
                              "applied at option rows only")
        cfg = self.model.config
        self.max_length = int(max_length or getattr(cfg, "max_position_embeddings", 0) or 2**31 - 1)
        self.pad_id = self._pad_id()
        self.softcap = getattr(cfg, "final_logit_softcapping", None)

    def _pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, 0):
            if cand is not None:
                return int(cand[0] if isinstance(cand, list) else cand)
        return 0

    # ------------------------------------------------------------------ prompts and tokens

    def render_prompt(self, request: Request) -> str:
        """The text given to the model (the prompt, wrapped in the chat template when enabled)."""
        return self._render_text(request.prompt)

    def _render_text(self, prompt: str) -> str:
        if not self.chat_template:
            return prompt
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else [])
        messages.append({"role": "user", "content": prompt})
        return str(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def _encode(self, texts: Sequence[str], special: bool) -> list[list[int]]:
        if not texts:
            return []
        return [list(x) for x in self.tokenizer(list(texts), add_special_tokens=special)["input_ids"]]

    def tokenize_loglik(self, request: Request) -> PackedItem:
        """Context and continuation token ids of one log-likelihood request (see module doc)."""
        return self.tokenize_loglik_many([request])[0]

    def tokenize_loglik_many(self, requests: Sequence[Request], indices: Sequence[int] | None = None
                             ) -> list[PackedItem]:
        wrapped = [r.with_prompt(self.render_prompt(r)) if self.chat_template else r for r in requests]
        parts = [loglik_continuations(r) for r in wrapped]
        ctx = self._encode([p[0] for p in parts], special=not self.chat_template)
        flat = [c for p in parts for c in p[1]]
        conts = self._encode(flat, special=False)
        out, k = [], 0
        for i, (c_ids, p) in enumerate(zip(ctx, parts, strict=True)):
            n = len(p[1])
            opts = tuple(tuple(o) for o in conts[k:k + n])
            k += n
            out.append(PackedItem(indices[i] if indices is not None else i, tuple(c_ids), opts))
        return out

    # ------------------------------------------------------------------ scoring

    def score(self, requests: Sequence[Request]) -> list[Result]:
        results: list[Result | None] = [None] * len(requests)
        ll_idx = [i for i, r in enumerate(requests) if r.uses_loglik]
        gen_idx = [i for i, r in enumerate(requests) if not r.uses_loglik]
        if ll_idx:
            packed = self.tokenize_loglik_many([requests[i] for i in ll_idx], ll_idx)
            for item, (logliks, n_tokens, latency, error) in zip(packed, self._loglik_items(packed), strict=True):
                req = requests[item.index]
                if error is not None:
                    results[item.index] = Result(req.item_id, "", None, 0.0, tokens_in=n_tokens, error=error)
                    continue
                label, score = score_logliks(req, logliks)
                chosen = req.choice_labels.index(label)
                results[item.index] = Result(
                    req.item_id, str(req.choices[chosen]) if req.loglik_target == "text" else label, label, score,
                    choice_logliks=tuple(logliks), tokens_in=n_tokens, latency_s=latency)
        if gen_idx:
            for i, res in zip(gen_idx, self._generate([requests[i] for i in gen_idx]), strict=True):
                results[i] = res
        return check_results(requests, [r for r in results if r is not None], self.name)

    def choice_logliks(self, requests: Sequence[Request]) -> list[list[float]]:
        """Per-option log-likelihoods (nats) of log-likelihood requests, in request order."""
        packed = self.tokenize_loglik_many(requests)
        out = []
        for req, (logliks, _, _, error) in zip(requests, self._loglik_items(packed), strict=True):
            if error is not None:
                raise RunnerError(f"hf: item {req.item_id}: {error}")
            out.append(logliks)
        return out

    def _loglik_items(self, packed: Sequence[PackedItem]) -> list[tuple[list[float], int, float, str | None]]:
        """(logliks, tokens, latency, error) per packed item, in the given order."""
        out: list[tuple[list[float], int, float, str | None] | None] = [None] * len(packed)
        ok = []
        for pos, it in enumerate(packed):
            if any(len(o) == 0 for o in it.option_ids):
                out[pos] = ([], it.length, 0.0, "an option tokenises to no tokens")
            elif it.length > self.max_length:
                out[pos] = ([], it.length, 0.0, f"item is {it.length} tokens, over max_length {self.max_length}")
            else:
                ok.append(pos)
        for batch in make_batches([packed[p].length for p in ok], self.batch_tokens):
            members = [ok[b] for b in batch]
            t0 = time.perf_counter()
            logliks = self._forward_packed([packed[p] for p in members])
            latency = (time.perf_counter() - t0) / len(members)
            for p, ll in zip(members, logliks, strict=True):
                out[p] = (ll, packed[p].length, latency, None)
        return [o for o in out if o is not None]

    @torch.inference_mode()
    def _forward_packed(self, items: Sequence[PackedItem]) -> list[list[float]]:
        arrays = pack_batch(items, self.pad_id, pad_to_multiple=16 if self.device.type == "cuda" else 1)
        dev = self.device
        segment = torch.from_numpy(arrays["segment"]).to(dev)
        hidden = self.model.base_model(
            input_ids=torch.from_numpy(arrays["input_ids"]).to(dev),
            position_ids=torch.from_numpy(arrays["position_ids"]).to(dev),
            attention_mask=packed_attention_mask(segment, self.dtype), use_cache=False,
        ).last_hidden_state
        rows = torch.from_numpy(arrays["rows"]).to(dev)
        lp = self.token_logprobs(hidden[rows[:, 0], rows[:, 1]], torch.from_numpy(arrays["row_of_target"]).to(dev),
                                 torch.from_numpy(arrays["target"]).to(dev))
        n_options = sum(len(it.option_ids) for it in items)
        sums = np.zeros(n_options, dtype=np.float64)
        np.add.at(sums, arrays["option_of_target"], lp.double().cpu().numpy())
        out, k = [], 0
        for it in items:
            out.append(sums[k:k + len(it.option_ids)].tolist())
            k += len(it.option_ids)
        return out

    def token_logprobs(self, row_hidden: torch.Tensor, row_of_target: torch.Tensor,
                       target: torch.Tensor) -> torch.Tensor:
        """log p(target | row) for each target, applying the LM head to the given rows only, in chunks."""
        head = self.model.get_output_embeddings()
        result = torch.empty(target.shape[0], dtype=torch.float32, device=row_hidden.device)
        step = max(1, self.lm_head_chunk_rows)
        for r0 in range(0, row_hidden.shape[0], step):
            logits = head(row_hidden[r0:r0 + step]).float()
            if self.softcap:
                logits = torch.tanh(logits / self.softcap) * self.softcap
            lse = torch.logsumexp(logits, dim=-1)
            sel = ((row_of_target >= r0) & (row_of_target < r0 + step)).nonzero(as_tuple=True)[0]
            local = row_of_target[sel] - r0
            result[sel] = logits[local, target[sel]] - lse[local]
        return result

    # ------------------------------------------------------------------ generation

    def _generate(self, requests: Sequence[Request]) -> list[Result]:
        texts = [self.render_prompt(r) for r in requests]
        ids = self._encode(texts, special=not self.chat_template)
        results: list[Result | None] = [None] * len(requests)
        groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for i, r in enumerate(requests):
            if len(ids[i]) + r.max_new_tokens > self.max_length:
                results[i] = Result(r.item_id, "", None, 0.0, tokens_in=len(ids[i]),
                                    error=f"prompt of {len(ids[i])} tokens + {r.max_new_tokens} new tokens "
                                          f"exceeds max_length {self.max_length}")
                continue
            groups.setdefault((r.max_new_tokens, r.stop), []).append(i)
        for (max_new, stop), members in groups.items():
            lengths = [len(ids[i]) + max_new for i in members]
            for batch in make_batches(lengths, self.batch_tokens):
                idx = [members[b] for b in batch]
                t0 = time.perf_counter()
                outputs = self._generate_batch([ids[i] for i in idx], max_new, stop)
                latency = (time.perf_counter() - t0) / len(idx)
                for i, (text, n_out) in zip(idx, outputs, strict=True):
                    req = requests[i]
                    extracted, score = score_request(req, text)
                    results[i] = Result(req.item_id, text, extracted, score, tokens_in=len(ids[i]),
                                        tokens_out=n_out, latency_s=latency)
        return [r for r in results if r is not None]

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        """Free text per prompt (``Runner.complete``), batched as generation is; sampled above temperature 0
        from a torch RNG seeded with ``seed`` inside ``fork_rng`` (the caller's global RNG state is left as
        it was)."""
        check_completion_args(self.name, max_new_tokens, temperature)
        ids = self._encode([self._render_text(p) for p in prompts], special=not self.chat_template)
        out: list[Completion | None] = [None] * len(prompts)
        fits = []
        for i, x in enumerate(ids):
            if len(x) + max_new_tokens > self.max_length:
                out[i] = Completion("", len(x), 0, f"hf: prompt of {len(x)} tokens + {max_new_tokens} new tokens "
                                                   f"exceeds max_length {self.max_length}")
            else:
                fits.append(i)
        for batch in make_batches([len(ids[i]) + max_new_tokens for i in fits], self.batch_tokens):
            idx = [fits[b] for b in batch]
            texts = self._generate_batch([ids[i] for i in idx], max_new_tokens, (), temperature, seed)
            for i, (text, n_out) in zip(idx, texts, strict=True):
                out[i] = Completion(text, len(ids[i]), n_out)
        return [c for c in out if c is not None]

    @torch.inference_mode()
    def _generate_batch(self, batch_ids: Sequence[Sequence[int]], max_new: int, stop: tuple[str, ...],
                        temperature: float = 0.0, seed: int | None = None) -> list[tuple[str, int]]:
        width = max(len(x) for x in batch_ids)
        input_ids = torch.full((len(batch_ids), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch_ids), width), dtype=torch.long)
        for b, x in enumerate(batch_ids):  # left padding: every prompt ends at the last column
            input_ids[b, width - len(x):] = torch.tensor(list(x), dtype=torch.long)
            attention[b, width - len(x):] = 1
        eos = self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": False, "pad_token_id": self.pad_id,
                                  "eos_token_id": eos, "num_beams": 1}
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_k=0)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=temperature > 0):
            if temperature > 0 and seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(input_ids=input_ids.to(self.device),
                                      attention_mask=attention.to(self.device), **kwargs)
        new = out[:, width:].cpu().tolist()
        results = []
        for seq in new:
            n = len(seq)
            if eos is not None and eos in seq:
                n = seq.index(eos)
            text = str(self.tokenizer.decode(seq[:n], skip_special_tokens=True))
            cut = min((text.find(s) for s in stop if s and s in text), default=-1)
            results.append((text[:cut] if cut >= 0 else text, n))
        return results

    def close(self) -> None:
        model = getattr(self, "model", None)
        if model is not None:
            del self.model
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
