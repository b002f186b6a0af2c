"""The ``openai`` backend: any OpenAI-compatible server (``vllm serve``, SGLang, hosted APIs).

Standard library only (``urllib`` and a thread pool); no client package.

- Generation (open, numeric, multiple choice by generation): ``/completions`` with greedy decoding
  and the request's stop sequences, or ``/chat/completions`` with the prompt as one user message
  (``api="chat"``, or ``api="auto"`` after the server answers 404 to ``/completions``).
- Multiple choice by log-likelihood, the same continuations as every backend
  (``runners.base.loglik_continuations``), one HTTP request per item with all its options:
  where the server has vLLM's ``/tokenize`` endpoint, the context and each continuation are tokenised
  there separately (exactly as the ``vllm`` and ``hf`` backends do) and sent as token-id prompts with
  vLLM's ``prompt_logprobs`` extra parameter; elsewhere, each option is sent as text with
  ``echo=true, logprobs=0`` and the log-probabilities of the tokens that lie in the option's characters
  (by ``text_offset``, counted back from the end of the echoed prompt) are summed. Chat-only servers
  cannot score continuations: with ``loglik_fallback="generate"`` (default) such items are answered by
  generation and letter extraction (``extra["mc_mode"] == "generate"``), with ``"error"`` they fail.
- Free text for item generators (``complete``): the same endpoints, with the caller's temperature and a
  per-prompt ``seed`` (OpenAI and vLLM honour it), no stop sequences.
- At most ``concurrency`` requests in flight; each HTTP call has a socket timeout of ``timeout_s`` and
  is retried up to ``max_retries`` times on connection errors, timeouts, 408/409/429 and 5xx, waiting
  ``min(max_backoff_s, backoff_s * 2**attempt)`` (or the server's ``Retry-After``, capped the same).
  Other 4xx answers are the item's error (e.g. a prompt longer than the model's context); a server that
  stays unreachable after the retries fails the whole call with ``RunnerError``.
- The API key comes from the environment only (``api_key_env``, else ``ADT_OPENAI_API_KEY``, else
  ``OPENAI_API_KEY``); it is sent in the Authorization header and never logged, stored in results or
  shown in ``repr`` or error messages.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal, TypeVar

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
from runners.finish import RawOutput, finish

Api = Literal["auto", "completions", "chat"]
T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
KEY_ENV_VARS = ("ADT_OPENAI_API_KEY", "OPENAI_API_KEY")


class _Unreachable(Exception):
    """Transport failure that survived every retry (the server, not the item, is the problem)."""


class _HttpFailure(Exception):
    """A non-retryable HTTP answer (status and the server's message, never our headers)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class OpenAIRunner(Runner):
    """``openai`` backend for ``model`` served at ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``)."""

    name = "openai"

    def __init__(self, model: str, *, base_url: str = "http://127.0.0.1:8000/v1", api: Api = "auto",
                 api_key_env: str | None = None, concurrency: int = 8, timeout_s: float = 120.0,
                 max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 loglik_method: Literal["auto", "tokens", "echo"] = "auto",
                 loglik_fallback: Literal["generate", "error"] = "generate", system_prompt: str | None = None,
                 extra_body: dict[str, Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if api not in ("auto", "completions", "chat"):
            raise InputError(f"openai backend: api {api!r} is not one of auto, completions, chat")
        if loglik_method not in ("auto", "tokens", "echo"):
            raise InputError(f"openai backend: loglik_method {loglik_method!r} is not one of auto, tokens, echo")
        if loglik_fallback not in ("generate", "error"):
            raise InputError(f"openai backend: loglik_fallback {loglik_fallback!r} is not generate or error")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise InputError("openai backend: concurrency >= 1, max_retries >= 0, timeout_s > 0, backoff_s >= 0")
        if not base_url.startswith(("http://", "https://")):
            raise InputError(f"openai backend: base_url {base_url!r} must start with http:// or https://")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api: Api = api
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.loglik_method = loglik_method
        self.loglik_fallback = loglik_fallback
        self.system_prompt = system_prompt
        self.extra_body = dict(extra_body or {})
        self._sleep = sleep
        self._key = self._key_from_env(api_key_env)
        self._lock = threading.Lock()
        self._has_tokenize: bool | None = None if loglik_method == "auto" else (loglik_method == "tokens")
        self.retries = 0  # HTTP retries made so far (for progress reports and tests)

    @staticmethod
    def _key_from_env(api_key_env: str | None) -> str | None:
        names = (api_key_env,) if api_key_env else KEY_ENV_VARS
        for name in names:
            value = os.environ.get(name)
            if value:
                return value
        return None

    def __repr__(self) -> str:
        return (f"OpenAIRunner(model={self.model!r}, base_url={self.base_url!r}, api={self.api!r}, "
                f"key={'set' if self._key else 'none'})")

    # ----------------------------------------------------------------- HTTP

    def _root_url(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON with retries and backoff; returns the decoded answer."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff_s, self.backoff_s * (2 ** attempt))
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) only
                    return dict(json.loads(resp.read().decode("utf-8")))
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in RETRY_STATUS:
                    raise _HttpFailure(exc.code, message) from None
                last = f"HTTP {exc.code}: {message}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after:
                    try:
                        wait = min(self.max_backoff_s, max(0.0, float(retry_after)))
                    except ValueError:
                        pass
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(exc).__name__}: {reason}"
            except json.JSONDecodeError as exc:
                last = f"answer is not JSON: {exc}"
            if attempt < self.max_retries:
                with self._lock:
                    self.retries += 1
                self._sleep(wait)
        raise _Unreachable(f"POST {url} failed after {self.max_retries + 1} attempts: {last}")

    # ----------------------------------------------------------------- jobs

    def _messages(self, prompt: str) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return msgs + [{"role": "user", "content": prompt}]

    def _generate(self, request: Request) -> RawOutput:
        return self._text(request.prompt, request.max_new_tokens, request.stop)

    def _text(self, prompt: str, max_tokens: int, stop: Sequence[str] = (), temperature: float = 0.0,
              seed: int | None = None) -> RawOutput:
        """One text generation (``/completions``, or ``/chat/completions`` on a chat-only server)."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "temperature": temperature,
                                **self.extra_body}
        if stop:
            body["stop"] = list(stop)
        if seed is not None:
            body["seed"] = seed
        start = time.perf_counter()
        if self.api != "chat":
            try:
                answer = self._post(f"{self.base_url}/completions", {**body, "prompt": prompt})
                text = str(answer["choices"][0].get("text") or "")
                return self._raw(text, answer, start, {"api": "completions",
                                                       "finish_reason": answer["choices"][0].get("finish_reason")})
            except _HttpFailure as exc:
                if not (self.api == "auto" and exc.status == 404):
                    raise
                self.api = "chat"  # the server has no /completions: use chat from now on
        answer = self._post(f"{self.base_url}/chat/completions", {**body, "messages": self._messages(prompt)})
        msg = answer["choices"][0].get("message") or {}
        return self._raw(str(msg.get("content") or ""), answer, start,
                         {"api": "chat", "finish_reason": answer["choices"][0].get("finish_reason")})

    @staticmethod
    def _raw(text: str, answer: dict[str, Any], start: float, extra: dict[str, Any]) -> RawOutput:
        usage = answer.get("usage") or {}
        return RawOutput(text=text, tokens_in=int(usage.get("prompt_tokens") or 0),
                         tokens_out=int(usage.get("completion_tokens") or 0),
                         latency_s=time.perf_counter() - start, extra=extra)

    def _tokenize(self, text: str, special: bool) -> list[int]:
        answer = self._post(f"{self._root_url()}/tokenize",
                            {"model": self.model, "prompt": text, "add_special_tokens": special})
        return [int(t) for t in answer["tokens"]]

    def _tokenize_available(self) -> bool:
        with self._lock:
            known = self._has_tokenize
        if known is not None:
            return known
        try:
            self._tokenize("a", False)
            ok = True
        except _HttpFailure:
            ok = False
        with self._lock:
            self._has_tokenize = ok
        return ok

    def _loglik(self, request: Request) -> RawOutput:
        context, continuations = loglik_continuations(request)
        start = time.perf_counter()
        if self._tokenize_available():
            ctx = self._tokenize(context, True)
            conts = [self._tokenize(c, False) for c in continuations]
            if any(not c for c in conts):
                return RawOutput(error="openai: a continuation encodes to no tokens")
            body = {"model": self.model, "prompt": [ctx + c for c in conts], "max_tokens": 1, "temperature": 0.0,
                    "prompt_logprobs": 0, **self.extra_body}
            answer = self._post(f"{self.base_url}/completions", body)
            choices = sorted(answer["choices"], key=lambda ch: int(ch.get("index", 0)))
            lls = []
            for ch, cont in zip(choices, conts, strict=True):
                plp = ch.get("prompt_logprobs")
                if not plp:
                    raise RunnerError("openai: the server has /tokenize but returned no prompt_logprobs; "
                                      "use loglik_method='echo'")
                total = 0.0
                for k, tid in enumerate(cont):
                    entry = plp[len(ctx) + k] or {}
                    lp = entry.get(str(tid))
                    if lp is None:
                        raise RunnerError(f"openai: prompt_logprobs lack token {tid} at position {len(ctx) + k}")
                    total += float(lp["logprob"] if isinstance(lp, dict) else lp)
                lls.append(total)
            return RawOutput(choice_logliks=tuple(lls), tokens_in=len(ctx) + sum(map(len, conts)),
                             latency_s=time.perf_counter() - start, extra={"loglik_method": "tokens"})
        # Text prompts with echo: the option is the last len(option) characters of each prompt.
        body = {"model": self.model, "prompt": [context + c for c in continuations], "max_tokens": 1,
                "temperature": 0.0, "echo": True, "logprobs": 0, **self.extra_body}
        answer = self._post(f"{self.base_url}/completions", body)
        choices = sorted(answer["choices"], key=lambda ch: int(ch.get("index", 0)))
        lls = []
        n_tokens = 0
        for ch, option in zip(choices, continuations, strict=True):
            lp = ch.get("logprobs") or {}
            offsets, values = lp.get("text_offset"), lp.get("token_logprobs")
            if not offsets or values is None or len(offsets) != len(values) or len(offsets) < 2:
                raise RunnerError("openai: the server does not echo prompt log-probabilities "
                                  "(completions with echo=true, logprobs=0)")
            end = offsets[-1]  # where the one generated token starts = the end of the echoed prompt
            first = end - len(option)
            picked = [v for off, v in zip(offsets[:-1], values[:-1], strict=True) if off >= first]
            if not picked or any(v is None for v in picked):
                raise RunnerError("openai: no echoed log-probabilities for an option's tokens")
            lls.append(float(sum(picked)))
            n_tokens += len(offsets) - 1
        return RawOutput(choice_logliks=tuple(lls), tokens_in=n_tokens, latency_s=time.perf_counter() - start,
                         extra={"loglik_method": "echo"})

    def _one(self, request: Request) -> RawOutput:
        try:
            if request.uses_loglik:
                if self.api != "chat":
                    try:
                        return self._loglik(request)
                    except _HttpFailure as exc:
                        if not (self.api == "auto" and exc.status == 404):
                            raise
                        self.api = "chat"
                if self.loglik_fallback == "error":
                    return RawOutput(error="openai: chat-only server cannot score choice log-likelihoods")
                raw = self._generate(request)
                return RawOutput(text=raw.text, tokens_in=raw.tokens_in, tokens_out=raw.tokens_out,
                                 latency_s=raw.latency_s, extra={**raw.extra, "mc_mode": "generate"})
            return self._generate(request)
        except _HttpFailure as exc:
            return RawOutput(error=f"openai: {exc}")

    # ----------------------------------------------------------------- the contract

    def score(self, requests: Sequence[Request]) -> list[Result]:
        if not requests:
            return []
        raws = self._in_flight([partial(self._one, r) for r in requests])
        results = [finish(r, raw, self.name) for r, raw in zip(requests, raws, strict=True)]
        return check_results(requests, results, self.name)


    def complete(self, prompts: Sequence[str], *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = None) -> list[Completion]:
        """Free text per prompt (``Runner.complete``), ``concurrency`` requests in flight, the same retries."""
        check_completion_args(self.name, max_new_tokens, temperature)
        if not prompts:
            return []

        def one(i: int) -> Completion:
            try:
                raw = self._text(prompts[i], max_new_tokens, (), temperature, None if seed is None else seed + i)
            except _HttpFailure as exc:
                return Completion("", error=f"openai: {exc}")
            return Completion(raw.text, raw.tokens_in, raw.tokens_out)

        return self._in_flight([partial(one, i) for i in range(len(prompts))])

    def _in_flight(self, calls: Sequence[Callable[[], T]]) -> list[T]:
        """``calls`` with ``concurrency`` in flight, results in order; an unreachable server or an answer of an
        unexpected shape cancels the rest and is one RunnerError naming the server."""
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(calls))) as pool:
            futures = [pool.submit(c) for c in calls]
            try:
                return [f.result() for f in futures]
            except _Unreachable as exc:
                for f in futures:
                    f.cancel()
                raise RunnerError(f"openai backend ({self.base_url}): {exc}") from None
            except (KeyError, IndexError, TypeError, ValueError) as exc:
                for f in futures:
                    f.cancel()
                raise RunnerError(f"openai backend ({self.base_url}): unexpected answer shape: {exc!r}") from None

def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's own error text (JSON ``error.message`` where given), shortened."""
    try:
        body = exc.read().decode("utf-8", errors="replace")
    except OSError:
        body = ""
    try:
        parsed = json.loads(body)
        err = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        msg = err.get("message", body) if isinstance(err, dict) else str(err)
    except ValueError:
        msg = body or str(exc.reason)
    return str(msg)[:300]
