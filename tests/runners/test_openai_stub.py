"""The openai backend's HTTP behaviour against a stub server on 127.0.0.1 (stdlib http.server).

The stub fails the first N requests in a chosen way (HTTP status, Retry-After, slow answer, dropped
connection), counts requests and concurrent requests, and records the Authorization header. Waits
are injected through ``sleep`` so the backoff schedule is checked exactly and the tests stay fast.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from adtbase.errors import RunnerError
from runners import Request, ScoringRule, create
from runners.openai_backend import OpenAIRunner


class Stub:
    """State shared with the handler: failure plan, counters, what was seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fail_first = 0
        self.fail_status = 503
        self.retry_after: str | None = None
        self.delay_first_s = 0.0
        self.delay_all_s = 0.0
        self.drop_first = 0
        self.no_completions = False
        self.bad_prompt = ""  # a prompt containing this gets a 400
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.auth: list[str | None] = []
        self.paths: list[str] = []
        self.bodies: list[dict[str, Any]] = []


def _completion_text(prompt: str) -> str:
    # Deterministic answers: "#### <number of characters>" so the numeric scorer can check them.
    return f" so #### {len(prompt)}\nQuestion: more"


class Handler(BaseHTTPRequestHandler):
    stub: Stub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default logging
        pass

    def _done(self) -> None:
        """The request stops counting as in flight once (before its answer is written: the client may send
        its next request the moment it has the answer, before this thread gets back to its ``finally``)."""
        if getattr(self, "_counted", False):
            self._counted = False
            with self.stub.lock:
                self.stub.in_flight -= 1

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._done()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        st = self.stub
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        with st.lock:
            st.requests += 1
            n = st.requests
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            self._counted = True
            st.auth.append(self.headers.get("Authorization"))
            st.paths.append(self.path)
            st.bodies.append(body)
        try:
            if n <= st.drop_first:
                self.connection.close()  # no answer at all: the client sees a dropped connection
                return
            if st.delay_all_s:
                time.sleep(st.delay_all_s)
            if n == 1 and st.delay_first_s:
                time.sleep(st.delay_first_s)
            if n <= st.fail_first:
                headers = {"Retry-After": st.retry_after} if st.retry_after else None
                self._send(st.fail_status, {"error": {"message": f"planned failure {n}"}}, headers)
                return
            self._answer(body)
        finally:
            self._done()

    def _answer(self, body: dict[str, Any]) -> None:
        st = self.stub
        if self.path == "/tokenize":
            self._send(404, {"detail": "Not Found"})
            return
        if self.path == "/v1/completions":
            if st.no_completions:
                self._send(404, {"detail": "Not Found"})
                return
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            if any(st.bad_prompt and st.bad_prompt in p for p in prompts):
                self._send(400, {"error": {"message": "prompt is too long for this model"}})
                return
            choices = []
            for i, p in enumerate(prompts):
                if body.get("echo"):
                    # One "token" per character, logprob -0.1 * (1 + position), then one generated token.
                    offsets = list(range(len(p) + 1))
                    lps: list[float | None] = [None] + [-0.1 * (k + 1) for k in range(1, len(p) + 1)]
                    choices.append({"index": i, "text": p + "x", "logprobs": {
                        "text_offset": offsets, "token_logprobs": lps, "tokens": list(p) + ["x"]}})
                else:
                    choices.append({"index": i, "text": _completion_text(p), "finish_reason": "stop"})
            self._send(200, {"choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
            return
        if self.path == "/v1/chat/completions":
            content = body["messages"][-1]["content"]
            self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "The answer is (B)"
                                                                   if "A." in content else _completion_text(content)},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": 4}})
            return
        self._send(404, {"detail": "Not Found"})


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # dropped connections are planned
        pass


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()
    handler = type("BoundHandler", (Handler,), {"stub": state})
    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def numeric(item_id: str, prompt: str) -> Request:
    return Request(item_id=item_id, prompt=prompt, item_type="numeric",
                   scoring=ScoringRule("numeric", str(len(prompt))), max_new_tokens=16, stop=("\nQuestion:",))


def mc(item_id: str) -> Request:
    return Request(item_id=item_id, prompt="Q?\nA. yes\nB. no\nAnswer:", item_type="mc",
                   scoring=ScoringRule("choice", "B"), choices=("yes", "no"))


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, s: float) -> None:
        self.calls.append(s)


def test_retries_with_exponential_backoff_then_succeeds(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.fail_first = 3
    sleeps = Sleeps()
    runner = OpenAIRunner("m", base_url=url, api="completions", max_retries=4, backoff_s=0.25,
                          max_backoff_s=0.6, sleep=sleeps)
    [res] = runner.score([numeric("n1", "Question: 1 + 2 = ?")])
    assert res.ok and res.score == 1.0 and res.extracted == str(len("Question: 1 + 2 = ?"))
    assert state.requests == 4
    assert sleeps.calls == [0.25, 0.5, 0.6]  # doubling, capped at max_backoff_s
    assert runner.retries == 3


def test_gives_up_after_max_retries_with_a_clear_error(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.fail_first = 100
    sleeps = Sleeps()
    runner = OpenAIRunner("m", base_url=url, api="completions", max_retries=2, backoff_s=0.01, sleep=sleeps)
    with pytest.raises(RunnerError, match=r"after 3 attempts: HTTP 503: planned failure 3"):
        runner.score([numeric("n1", "x")])
    assert state.requests == 3 and len(sleeps.calls) == 2


def test_retry_after_header_is_honoured_and_capped(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.fail_first, state.fail_status, state.retry_after = 2, 429, "7"
    sleeps = Sleeps()
    runner = OpenAIRunner("m", base_url=url, api="completions", backoff_s=0.01, max_backoff_s=5.0, sleep=sleeps)
    assert runner.score([numeric("n1", "x")])[0].ok
    assert sleeps.calls == [5.0, 5.0]


def test_timeout_is_retried(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.delay_first_s = 1.5
    sleeps = Sleeps()
    runner = OpenAIRunner("m", base_url=url, api="completions", timeout_s=0.3, max_retries=2, backoff_s=0.01,
                          sleep=sleeps)
    start = time.monotonic()
    [res] = runner.score([numeric("n1", "abc")])
    assert res.ok and res.score == 1.0
    assert state.requests == 2 and sleeps.calls == [0.01]
    assert time.monotonic() - start < 1.4  # the slow first answer was not waited for


def test_dropped_connection_is_retried(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.drop_first = 1
    runner = OpenAIRunner("m", base_url=url, api="completions", backoff_s=0.0, sleep=Sleeps())
    assert runner.score([numeric("n1", "abc")])[0].ok
    assert state.requests == 2


def test_client_error_is_the_items_error_and_not_retried(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.bad_prompt = "TOO-LONG"
    sleeps = Sleeps()
    runner = OpenAIRunner("m", base_url=url, api="completions", concurrency=1, sleep=sleeps)
    res = runner.score([numeric("a", "fine"), numeric("b", "TOO-LONG prompt"), numeric("c", "also fine")])
    assert [r.item_id for r in res] == ["a", "b", "c"]
    assert res[0].ok and res[2].ok
    assert res[1].error is not None and "HTTP 400" in res[1].error and "too long" in res[1].error
    assert res[1].score == 0.0 and state.requests == 3 and sleeps.calls == []


def test_concurrency_is_limited_and_order_kept(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.delay_all_s = 0.1
    runner = OpenAIRunner("m", base_url=url, api="completions", concurrency=3)
    reqs = [numeric(f"n{i}", "x" * (i + 1)) for i in range(12)]
    res = runner.score(reqs)
    assert [r.item_id for r in res] == [r.item_id for r in reqs]
    assert all(r.ok and r.score == 1.0 for r in res)  # each answer matches its own prompt's length
    assert 2 <= state.max_in_flight <= 3


def test_api_key_from_environment_is_sent_but_never_shown(stub: tuple[Stub, str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = stub
    secret = "sk-test-3f9a1c-never-print-me"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("ADT_OPENAI_API_KEY", secret)
    runner = create("openai", model="m", base_url=url, api="completions", max_retries=0)
    res = runner.score([numeric("n1", "abc")])
    assert state.auth == [f"Bearer {secret}"]
    assert secret not in repr(runner) and secret not in repr(res) and secret not in json.dumps(res[0].extra)
    state.fail_first = 10**6
    with pytest.raises(RunnerError) as info:
        runner.score([numeric("n2", "abc")])
    assert secret not in str(info.value)
    monkeypatch.delenv("ADT_OPENAI_API_KEY")
    state.fail_first = 0
    create("openai", model="m", base_url=url, api="completions").score([numeric("n3", "abc")])
    assert state.auth[-1] is None  # no key in the environment: no Authorization header


def test_echo_logprobs_sum_the_options_characters(stub: tuple[Stub, str]) -> None:
    state, url = stub
    runner = OpenAIRunner("m", base_url=url, loglik_method="auto")
    [res] = runner.score([mc("q")])
    prompt = "Q?\nA. yes\nB. no\nAnswer:"
    # The stub gives the character at position k (k >= 1) logprob -0.1 * (k + 1); " yes" / " no" are the
    # last characters of each echoed prompt.
    expect = [sum(-0.1 * (k + 1) for k in range(len(prompt), len(prompt) + len(opt))) for opt in (" yes", " no")]
    assert res.choice_logliks == pytest.approx(expect, abs=1e-9)
    assert res.extracted == "B" and res.score == 1.0 and res.extra["loglik_method"] == "echo"
    echo_bodies = [b for b, p in zip(state.bodies, state.paths, strict=True) if p == "/v1/completions"]
    assert echo_bodies[0]["echo"] is True and echo_bodies[0]["prompt"] == [prompt + " yes", prompt + " no"]


def test_chat_only_server_falls_back_to_chat(stub: tuple[Stub, str]) -> None:
    state, url = stub
    state.no_completions = True
    runner = OpenAIRunner("m", base_url=url, api="auto", concurrency=1)
    res = runner.score([numeric("n1", "abc"), mc("q")])
    assert res[0].ok and res[0].score == 1.0 and res[0].extra["api"] == "chat"
    assert res[1].extra["mc_mode"] == "generate" and res[1].extracted == "B" and res[1].score == 1.0
    strict = OpenAIRunner("m", base_url=url, api="chat", loglik_fallback="error")
    [err] = strict.score([mc("q")])
    assert err.error is not None and "log-likelihood" in err.error


def test_unreachable_server_fails_the_call() -> None:
    from runners.vllm_server import free_port

    runner = OpenAIRunner("m", base_url=f"http://127.0.0.1:{free_port()}/v1", api="completions", max_retries=1,
                          backoff_s=0.0, timeout_s=2.0)
    with pytest.raises(RunnerError, match="after 2 attempts"):
        runner.score([numeric("n1", "abc")])


def test_bad_arguments_are_input_errors() -> None:
    from adtbase.errors import InputError

    with pytest.raises(InputError, match="api"):
        create("openai", model="m", api="rest")
    with pytest.raises(InputError, match="base_url"):
        create("openai", model="m", base_url="ftp://127.0.0.1/v1")
