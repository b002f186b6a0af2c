"""Start and stop a local ``vllm serve`` (OpenAI-compatible server) on the loopback interface.

For the ``openai`` backend's tests and benches, and for scoring a local model through the server:
``with LocalVLLMServer(model_dir) as server: create("openai", model=server.served_name,
base_url=server.base_url)``. The server runs in its own process group, from ``.venv-vllm`` by
default (the vLLM CPU build that ``make install`` builds), bound to 127.0.0.1 on a free port; the
wait for it to answer ``/health`` and the wait for it to stop are both bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from adtbase.errors import RunnerError
from runners.vllm_backend import DEFAULT_WORKER_PYTHON


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalVLLMServer:
    """``vllm serve`` of ``model`` on 127.0.0.1; a context manager (``start`` / ``stop``)."""

    def __init__(self, model: str | Path, *, served_name: str = "local", python: str | Path | None = None,
                 dtype: str = "float32", max_model_len: int = 2048, port: int | None = None,
                 startup_timeout_s: float = 600.0, extra_args: tuple[str, ...] = ()) -> None:
        self.model = str(model)
        self.served_name = served_name
        self.python = str(python or DEFAULT_WORKER_PYTHON)
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.port = port or free_port()
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.tmpdir: Path | None = None
        self.startup_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, n: int = 40) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def start(self) -> LocalVLLMServer:
        if not Path(self.python).exists():
            raise RunnerError(f"vllm serve: interpreter {self.python} not found (make install builds .venv-vllm)")
        env = dict(os.environ)
        for key, value in (("VLLM_CPU_KVCACHE_SPACE", "1"), ("VLLM_HOST_IP", "127.0.0.1"),
                           ("VLLM_NO_USAGE_STATS", "1"), ("DO_NOT_TRACK", "1"), ("VLLM_LOGGING_LEVEL", "WARNING")):
            env.setdefault(key, value)
        if Path(self.model).is_dir():
            env.setdefault("HF_HUB_OFFLINE", "1")
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
               "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(self.port),
               "--dtype", self.dtype, "--max-model-len", str(self.max_model_len)]
        if self._cpu_build():  # what the CPU build needs, and one process instead of three (faster start)
            cmd += ["--gpu-memory-utilization", "0.05", "--enforce-eager", "--distributed-executor-backend", "uni"]
            env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        cmd += list(self.extra_args)
        self.tmpdir = Path(tempfile.mkdtemp(prefix="adt-vllm-serve-"))  # the server's temporary files and log
        env["TMPDIR"] = str(self.tmpdir)
        self.log_path = self.tmpdir / "serve.log"
        start = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        deadline = start + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RunnerError(f"vllm serve exited with code {self.proc.returncode}; log ends:\n{tail}")
            if self._healthy():
                self.startup_s = time.monotonic() - start
                return self
            time.sleep(1.0)
        tail = self.log_tail()
        self.stop()
        raise RunnerError(f"vllm serve did not answer /health within {self.startup_timeout_s:.0f} s; log ends:\n{tail}")

    def _cpu_build(self) -> bool:
        out = subprocess.run([self.python, "-c", "import importlib.metadata as m; m.distribution('vllm-cpu')"],
                             capture_output=True, timeout=60)
        return out.returncode == 0

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout_s``; removes its temporary files."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
            except ProcessLookupError:
                pass
        if proc is not None:
            try:  # children of the server (engine core, workers) share its process group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
            self.log_path = None

    def __enter__(self) -> LocalVLLMServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
