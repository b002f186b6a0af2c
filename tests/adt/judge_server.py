"""A stub OpenAI-compatible judge on 127.0.0.1 (stdlib http.server) that writes well-formed verdicts.

Its rule, read from the judge prompt it is sent: pairwise, the response that calls itself "good" wins, and
where neither does it picks A (a judge with a position bias, so the two orders disagree); pointwise, every
criterion gets its top score for a "good" answer and 0 otherwise. It records the prompt of every request it
answered, in order, and waits ``delay_s`` before each answer (so a judge run can be killed mid-way).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JudgeStub:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prompts: list[str] = []
        self.delay_s = 0.0
        self.url = ""


def verdict_for(prompt: str) -> str:
    zh = "[请求]" in prompt
    resp_a, resp_b, resp, request = (("[回答 A]", "[回答 B]", "[回答]\n", "[请求]") if zh else
                                     ("[Response A]", "[Response B]", "[Response]\n", "[Request]"))
    if resp_a in prompt:
        a = prompt.split(resp_a, 1)[1].split(resp_b, 1)[0]
        b = prompt.split(resp_b, 1)[1]
        pick = "A" if "good" in a else "B" if "good" in b else "A"
        return f"Comparing the two responses on helpfulness and accuracy.\nVERDICT: {pick}"
    answer = prompt.split(resp, 1)[1].split("\n\n", 1)[0]
    # each criterion's top level: the highest "  k:" line under its "Criterion n"/"标准 n" header
    blocks = re.split(r"^(?:Criterion|标准) \d+", prompt.split(request, 1)[0], flags=re.M)[1:]
    top_levels = [max(int(m.group(1)) for m in re.finditer(r"^  (\d+)[:：]", b, re.M)) for b in blocks]
    assert top_levels, "no rubric in the prompt"
    scores = [t if "good" in answer else 0 for t in top_levels]
    return "Scoring each criterion.\nVERDICT: " + ", ".join(str(s) for s in scores)


def _handler(stub: JudgeStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            if self.path != "/v1/completions":
                self._send(404, {"detail": "Not Found"})
                return
            time.sleep(stub.delay_s)
            prompt = body["prompt"]
            text = verdict_for(prompt)
            with stub.lock:
                stub.prompts.append(prompt)
            self._send(200, {"choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 12}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a killed client drops its connection
        pass


@contextmanager
def judge_server() -> Iterator[JudgeStub]:
    stub = JudgeStub()
    server = _Quiet(("127.0.0.1", 0), _handler(stub))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
