"""A scripted OpenAI-compatible server on 127.0.0.1 for the generation tests (stdlib http.server).

``/v1/completions`` and ``/v1/chat/completions`` answer each prompt with ``StubState.reply(prompt, n)`` (n =
the request's number, from 0), report ``usage`` tokens, and record every prompt; the first ``fail_from``
requests succeed and every later one gets HTTP 500 (a backend that dies half way).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def good_item(n: int, language: str = "en") -> str:
    q = f"What is {n} + {n + 1}?" if language == "en" else f"{n} 加 {n + 1} 等于多少？"
    return ("Sure.\n```json\n" + json.dumps({"question": q, "choices": [str(2 * n), str(2 * n + 1), str(2 * n + 2),
                                                                        str(2 * n + 3)],
                                              "answer": "B", "rationale": f"{n} + {n + 1} = {2 * n + 1}",
                                              "tags": {"skill": "addition"}}, ensure_ascii=False) + "\n```")


class StubState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prompts: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.reply: Callable[[str, int], str] = lambda prompt, n: good_item(n)
        self.fail_from: int | None = None
        self.usage = (10, 20)


class _Handler(BaseHTTPRequestHandler):
    state: StubState

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the default logging
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        st = self.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._send(404, {"detail": "Not Found"})
            return
        prompt = body["messages"][-1]["content"] if chat else body["prompt"]
        with st.lock:
            n = len(st.prompts)
            st.prompts.append(prompt)
            st.bodies.append(body)
        if st.fail_from is not None and n >= st.fail_from:
            self._send(500, {"error": {"message": "the stub is down"}})
            return
        text = st.reply(prompt, n)
        choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} if chat
                  else {"index": 0, "text": text, "finish_reason": "stop"})
        self._send(200, {"choices": [choice],
                         "usage": {"prompt_tokens": st.usage[0], "completion_tokens": st.usage[1]}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def stub_server() -> Iterator[tuple[StubState, str]]:
    state = StubState()
    server = _Server(("127.0.0.1", 0), type("Bound", (_Handler,), {"state": state}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
